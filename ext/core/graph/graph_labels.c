/* The label-sorted copy of a graph's rows (window support kept with the graph's storage).
 *
 * Live labelled nodes as of the last rebuild, sorted by label, with their vectors and ids copied in that
 * order so an exact window scan reads one contiguous slice (as Engels et al. permute points by label),
 * plus the nodes labelled since (the delta, scanned linearly and merged once it grows past ~sqrt(n)).
 * The window layer (window/) plans and scans over it; the graph only keeps it in step with adds,
 * deletes and loads. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "graph/graph_internal.h"

/* The per-row arrays of n sorted rows share one allocation, owned through w->labels: labels, filter
 * labels, ids, then nodes (each part 8-byte aligned). */
static int rows_alloc(knn_window *w, size_t n) {
    double *block = malloc(n * (2 * sizeof(double) + sizeof(int64_t) + sizeof(uint32_t)));
    if (block == NULL) return 0;
    w->labels = block;
    w->filter = block + n;
    w->ids = (int64_t *)(w->filter + n);
    w->nodes = (uint32_t *)(w->ids + n);
    return 1;
}

void knn_graph_labels_free(knn_window *w) {
    free(w->labels); /* and filter, ids, nodes (rows_alloc) */
    if (w->vmap.p) {
        knn_mapped_free(&w->vmap); /* a coded graph's copy: in a file */
    } else {
        free(w->vecs);
    }
    free(w->pos);
    free(w->delta);
    knn_codes_free(&w->codes);
    memset(w, 0, sizeof *w);
    w->vmap = knn_mapped_none();
}

typedef struct label_node {
    double label;
    uint32_t node;
} label_node;

static int cmp_label_node(const void *a, const void *b) {
    const label_node *x = a, *y = b;
    if (x->label != y->label) return x->label < y->label ? -1 : 1;
    return (x->node > y->node) - (x->node < y->node);
}

/* Window structures with fewer rows keep no 8-bit codes (their exact scans sit in cache). */
#define SCREEN_MIN_ROWS 4096

/* Rebuilds the sorted list from every live labelled node; on failure keeps the delta (still correct). */
void knn_graph_window_rebuild(knn_graph *g) {
    size_t n = 0;
    for (uint32_t i = 0; i < g->count; i++) n += !g->deleted[i] && !isnan(g->labels[i]);
    knn_window w = {0};
    w.vmap = knn_mapped_none();
    label_node *pairs = malloc((n ? n : 1) * sizeof *pairs);
    int rows_ok = rows_alloc(&w, n ? n : 1);
    const size_t vbytes = ((n ? n : 1) * g->dim * sizeof(float) + 63) / 64 * 64;
    if (g->qbits && n) { /* a coded graph keeps float rows off the heap: the sorted copy too */
        knn_error err;
        if (knn_mapped_grow(&w.vmap, g->vectors_dir, vbytes, &err) == KNN_OK) {
            w.vecs = w.vmap.p;
        } else {
            knn_mapped_free(&w.vmap);
        }
    } else {
        w.vecs = aligned_alloc(64, vbytes);
    }
    w.pos = malloc((g->count ? g->count : 1) * sizeof *w.pos);
    if (!pairs || !rows_ok || !w.vecs || !w.pos) {
        free(pairs);
        knn_graph_labels_free(&w); /* keep the old structure: still correct, only slower */
        return;
    }
    size_t m = 0;
    for (uint32_t i = 0; i < g->count; i++) {
        if (!g->deleted[i] && !isnan(g->labels[i])) pairs[m++] = (label_node){g->labels[i], i};
    }
    qsort(pairs, m, sizeof *pairs, cmp_label_node);
    w.pos_n = g->count;
    for (size_t i = 0; i < g->count; i++) w.pos[i] = UINT32_MAX;
    for (size_t i = 0; i < m; i++) {
        uint32_t v = pairs[i].node;
        w.labels[i] = w.filter[i] = pairs[i].label;
        w.nodes[i] = v;
        w.ids[i] = g->ids[v];
        w.pos[v] = (uint32_t)i;
        memcpy(w.vecs + i * g->dim, knn_graph_vec(g, v), g->dim * sizeof(float));
    }
    free(pairs);
    w.n = m;
    /* codes for the screened exact scan (l2 and cosine: the screen bounds Euclidean distance); without
     * them the scan is plain, only slower */
    if (g->metric != KNN_METRIC_IP && m >= SCREEN_MIN_ROWS) (void)knn_codes_build(&w.codes, w.vecs, m, g->dim);
    w.gen = g->win.gen + 1;
    /* the delta buffer survives (emptied): it is reused by later adds */
    w.delta = g->win.delta;
    w.cap_delta = g->win.cap_delta;
    g->win.delta = NULL;
    knn_graph_labels_free(&g->win);
    g->win = w;
}

void knn_graph_labels_forget(knn_graph *g, uint32_t node) {
    if (node < g->win.pos_n && g->win.pos[node] != UINT32_MAX) g->win.filter[g->win.pos[node]] = NAN;
}

void knn_graph_labels_update(knn_graph *g, size_t first) {
    size_t limit = 256 + (size_t)(8.0 * sqrt((double)g->count));
    size_t add = 0;
    for (size_t i = first; i < g->count; i++) add += !isnan(g->labels[i]);
    if (add == 0) return;
    if (g->win.n_delta + add > limit) {
        knn_graph_window_rebuild(g);
        if (g->win.n_delta == 0) return;
    }
    if (g->win.n_delta + add > g->win.cap_delta) {
        size_t cap = (g->win.n_delta + add) * 2;
        uint32_t *d = realloc(g->win.delta, cap * sizeof *d);
        if (d == NULL) {
            knn_graph_window_rebuild(g); /* no room for a delta: fold everything into the sorted list */
            return;
        }
        g->win.delta = d;
        g->win.cap_delta = cap;
    }
    for (size_t i = first; i < g->count; i++) {
        if (!isnan(g->labels[i])) g->win.delta[g->win.n_delta++] = (uint32_t)i;
    }
}

size_t knn_graph_label_bound(const double *a, size_t n, double x, int strict) {
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (strict ? a[mid] <= x : a[mid] < x) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return lo;
}


int knn_graph_label_range(knn_graph *g, double *lo, double *hi) {
    int any = 0;
    pthread_rwlock_rdlock(&g->rw);
    double a = INFINITY, b = -INFINITY;
    /* the sorted list may hold rows deleted since its rebuild: walk in from both ends */
    for (size_t i = 0; i < g->win.n; i++) {
        if (!g->deleted[g->win.nodes[i]]) {
            a = g->win.labels[i];
            any = 1;
            break;
        }
    }
    for (size_t i = g->win.n; i-- > 0;) {
        if (!g->deleted[g->win.nodes[i]]) {
            b = g->win.labels[i];
            break;
        }
    }
    for (size_t i = 0; i < g->win.n_delta; i++) {
        uint32_t v = g->win.delta[i];
        if (g->deleted[v]) continue;
        any = 1;
        if (g->labels[v] < a) a = g->labels[v];
        if (g->labels[v] > b) b = g->labels[v];
    }
    pthread_rwlock_unlock(&g->rw);
    *lo = a;
    *hi = b;
    return any;
}

