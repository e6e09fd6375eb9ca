/* Graph storage: the shell and its settings, per-node arrays and their growth, the pool of search
 * contexts (as hnswlib's VisitedListPool), the buckets overlay's lifecycle hooks, and introspection. */
#define _DEFAULT_SOURCE /* madvise; must precede the system headers */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "graph/graph_internal.h"



knn_graph_params knn_graph_default_params(void) {
    knn_graph_params p = {16, 200, 64, 42};
    return p;
}

static void ctx_free(knn_search_ctx *c) {
    if (c == NULL) return;
    free(c->marks);
    free(c->cand);
    free(c->top);
    free(c->qbuf);
    knn_sq_query_free(&c->cq);
    free(c->ritems);
    free(c);
}

knn_search_ctx *knn_graph_ctx_acquire(knn_graph *g) {
    knn_search_ctx *c = NULL;
    pthread_mutex_lock(&g->pool_lock);
    if (g->pool_n) c = g->pool[--g->pool_n];
    pthread_mutex_unlock(&g->pool_lock);
    if (c == NULL) {
        c = calloc(1, sizeof *c);
        if (c == NULL) return NULL;
        c->qbuf = malloc(g->dim * sizeof(float));
        if (c->qbuf == NULL) {
            free(c);
            return NULL;
        }
    }
    if (c->marks_cap < g->capacity) {
        free(c->marks);
        c->marks = calloc(g->capacity, sizeof *c->marks);
        c->marks_cap = c->marks ? g->capacity : 0;
        c->epoch = 0;
        if (c->marks == NULL) {
            ctx_free(c);
            return NULL;
        }
    }
    /* a coded graph's searches score by codes; a build clears this to link by float distances */
    c->coded = knn_graph_store(g)->qbits != 0;
    c->coded_q = NULL;
    c->rerank = 0;
    return c;
}

void knn_graph_ctx_release(knn_graph *g, knn_search_ctx *c) {
    pthread_mutex_lock(&g->pool_lock);
    if (g->pool_n < KNN_VISITED_POOL) {
        g->pool[g->pool_n++] = c;
        c = NULL;
    }
    pthread_mutex_unlock(&g->pool_lock);
    ctx_free(c);
}



/* ---- allocation --------------------------------------------------------------------------------- */
knn_status knn_graph_alloc(size_t dim, knn_metric metric, const knn_graph_params *p, knn_graph **out,
                           knn_error *err) {
    *out = NULL;
    if (dim == 0 || dim > 65536) return knn_error_set(err, KNN_EINVAL, "dim must be between 1 and 65536, got %zu", dim);
    if (p->m < 2 || p->m > 256) return knn_error_set(err, KNN_EINVAL, "'m' must be between 2 and 256, got %zu", p->m);
    if (p->ef_construction < 1 || p->ef_construction > 100000) {
        return knn_error_set(err, KNN_EINVAL, "'ef_construction' must be between 1 and 100000, got %zu",
                             p->ef_construction);
    }
    if (p->ef < 1 || p->ef > 100000) return knn_error_set(err, KNN_EINVAL, "'ef' must be between 1 and 100000, got %zu", p->ef);
    knn_graph *g = calloc(1, sizeof *g);
    if (g == NULL) return knn_error_set(err, KNN_ENOMEM, "out of memory creating a graph index");
    g->dim = dim;
    g->metric = metric;
    g->p = *p;
    g->m0 = 2 * p->m;
    g->level_mult = 1.0 / log((double)p->m);
    g->kern = knn_kernels_best();
    g->links_offset = dim * sizeof(float);
    g->slot_bytes = (g->links_offset + (1 + g->m0) * sizeof(uint32_t) + 63) / 64 * 64;
    g->entry = KNN_NO_NODE;
    g->max_level = -1;
    g->fvecs = knn_mapped_none();
    g->win.vmap = knn_mapped_none();
    knn_attrs_init(&g->attrs);
    atomic_init(&g->calibrated, 0);
    atomic_init(&g->cal_rows, 0);
    atomic_init(&g->forced_plan, -1);
    atomic_init(&g->buckets, NULL);
    atomic_init(&g->buckets_tried, 0);
    g->buckets_ops = NULL;
    pthread_mutex_init(&g->cal_lock, NULL);
    pthread_rwlock_init(&g->rw, NULL);
    pthread_mutex_init(&g->entry_lock, NULL);
    pthread_mutex_init(&g->pool_lock, NULL);
    *out = g;
    return KNN_OK;
}

knn_status knn_graph_create(size_t dim, knn_metric metric, const knn_graph_params *params, knn_graph **out,
                            knn_error *err) {
    knn_graph_params p = params ? *params : knn_graph_default_params();
    return knn_graph_alloc(dim, metric, &p, out, err);
}
void knn_graph_free_nodes(knn_graph *g) {
    if (g->upper) {
        for (size_t i = 0; i < g->count; i++) free(g->upper[i]);
    }
    free(g->data0);
    free(g->upper);
    free(g->levels);
    free(g->ids);
    free(g->deleted);
    free((void *)g->locks);
    free(g->labels);
    knn_graph_labels_free(&g->win);
    knn_idmap_free(&g->map);
    free(g->vec_nodes);
    g->vec_nodes = NULL;
    knn_graph_code_free(g);
    knn_graph_drop_buckets(g);
}

void knn_graph_free(knn_graph *g) {
    if (g == NULL) return;
    knn_graph_free_nodes(g);
    knn_attrs_free(&g->attrs); /* not a node array: optimize compacts it in place */
    knn_sq_free(&g->sq);
    free(g->vectors_dir);
    for (size_t i = 0; i < g->pool_n; i++) ctx_free(g->pool[i]);
    pthread_rwlock_destroy(&g->rw);
    pthread_mutex_destroy(&g->entry_lock);
    pthread_mutex_destroy(&g->pool_lock);
    pthread_mutex_destroy(&g->cal_lock);
    free(g);
}

#define GROW(ptr, type, n)                                          \
    do {                                                            \
        type *np_ = realloc((void *)(ptr), (n) * sizeof(type));     \
        if (np_ == NULL) goto oom;                                  \
        (ptr) = np_;                                                \
    } while (0)

/* Level-0 storage. A search reads a few hundred slots at random addresses (about 550 per query on
 * Fashion-MNIST, d = 784, ef = 64), so arrays of 4 MiB and more ask Linux for transparent huge pages:
 * one TLB entry then maps 2 MiB of slots instead of 4 KiB (measured: about 15% faster searches at
 * d = 784). The advice is best effort; without it, or elsewhere, the pages are ordinary ones. */
void *knn_graph_big_alloc(size_t bytes) {
    const size_t huge = (size_t)1 << 21;
    if (bytes < 2 * huge) return aligned_alloc(64, (bytes + 63) / 64 * 64);
    size_t len = (bytes + huge - 1) / huge * huge;
    void *p = aligned_alloc(huge, len);
#ifdef MADV_HUGEPAGE
    if (p) (void)madvise(p, len, MADV_HUGEPAGE);
#endif
    return p;
}

knn_status knn_graph_reserve(knn_graph *g, size_t need, knn_error *err) {
    if (need <= g->capacity) return KNN_OK;
    if (need >= KNN_NO_NODE) return knn_error_set(err, KNN_EINVAL, "a graph index holds at most %u rows", KNN_NO_NODE - 1u);
    /* Grow by half for incremental adds, but take a bulk load's size exactly: doubling past it would
     * leave up to half the slots (a whole vector each) unused. */
    size_t cap = g->capacity + g->capacity / 2;
    if (cap < need) cap = need;
    if (cap < 64) cap = 64;
    if (g->qbits && knn_graph_code_reserve(g, cap, err) != KNN_OK) return err->status;
    uint8_t *data0 = knn_graph_big_alloc(cap * g->slot_bytes);
    if (data0 == NULL) goto oom;
    if (g->count) memcpy(data0, g->data0, g->count * g->slot_bytes);
    free(g->data0);
    g->data0 = data0;
    GROW(g->upper, uint32_t *, cap);
    GROW(g->levels, uint8_t, cap);
    GROW(g->ids, int64_t, cap);
    GROW(g->deleted, uint8_t, cap);
    GROW(g->locks, _Atomic unsigned char, cap);
    GROW(g->labels, double, cap);
    for (size_t i = g->capacity; i < cap; i++) {
        g->upper[i] = NULL;
        atomic_init(&g->locks[i], 0);
    }
    g->capacity = cap;
    return KNN_OK;
oom:
    return knn_error_set(err, KNN_ENOMEM, "out of memory growing a graph index to %zu rows", cap);
}
/* ---- introspection ------------------------------------------------------------------------------ */

size_t knn_graph_live(const knn_graph *g) { return g->count - g->n_deleted; }
size_t knn_graph_deleted(const knn_graph *g) { return g->n_deleted; }
size_t knn_graph_dim(const knn_graph *g) { return g->dim; }
knn_metric knn_graph_metric(const knn_graph *g) { return g->metric; }
knn_graph_params knn_graph_get_params(const knn_graph *g) {
    knn_graph_params p = g->p;
    p.ef = knn_graph_default_ef(g);
    return p;
}

size_t knn_graph_default_ef(const knn_graph *g) {
    size_t t = atomic_load(&((knn_graph *)g)->tuned_ef);
    return t ? t : g->p.ef;
}

void knn_graph_set_default_ef(knn_graph *g, size_t ef) { atomic_store(&g->tuned_ef, ef); }

size_t knn_graph_memory(const knn_graph *g) {
    size_t bytes = sizeof *g + g->capacity * (g->slot_bytes + sizeof(uint32_t *) + 1 + sizeof(int64_t) + 1 + 1);
    for (size_t i = 0; i < g->count; i++) bytes += (size_t)g->levels[i] * (g->p.m + 1) * sizeof(uint32_t);
    bytes += g->map.cap * (sizeof(int64_t) + sizeof(uint32_t));
    bytes += g->capacity * sizeof(double); /* labels */
    bytes += knn_graph_code_bytes(g);       /* a coded graph's codes (its float rows are in files) */
    bytes += g->win.n * (2 * sizeof(double) + sizeof(uint32_t) + sizeof(int64_t) +
                         (g->win.vmap.p ? 0 : g->dim * sizeof(float))) +
             g->win.pos_n * sizeof(uint32_t) + g->win.cap_delta * sizeof(uint32_t);
    if (g->win.codes.codes) {
        bytes += g->win.codes.nblocks * g->win.codes.npairs * 2 * KNN_CODE_BLOCK + g->win.n * sizeof(float) +
                 g->dim * sizeof(double);
    }
    if (g->vec_nodes) bytes += g->capacity * sizeof(uint32_t);
    bytes += knn_attrs_bytes(&g->attrs);
    const struct knn_buckets *b = atomic_load(&((knn_graph *)g)->buckets);
    if (b) bytes += g->buckets_ops->bytes(b);
    return bytes;
}

size_t knn_graph_ids(knn_graph *g, int64_t *out, size_t cap) {
    size_t m = 0;
    pthread_rwlock_rdlock(&g->rw);
    for (size_t i = 0; i < g->count && m < cap; i++) {
        if (!g->deleted[i]) out[m++] = g->ids[i];
    }
    pthread_rwlock_unlock(&g->rw);
    return m;
}

uint32_t knn_graph_label_tag(const knn_graph *g) { return g->label_tag; }

void knn_graph_set_label_tag(knn_graph *g, uint32_t tag) { g->label_tag = tag; }


void knn_graph_tombstone(knn_graph *g, uint32_t node) {
    g->deleted[node] = 1;
    g->n_deleted++;
    if (g->missing && g->missing[node]) g->n_missing--; /* a deleted row never needs its float row */
    knn_graph_labels_forget(g, node);
    knn_graph_buckets_forget(g, node);
}

/* ---- the buckets overlay (built by the window layer; see knn_graph_overlay_ops) ------------------ */

void knn_graph_drop_buckets(knn_graph *g) {
    struct knn_buckets *b = atomic_exchange(&g->buckets, NULL);
    if (b) g->buckets_ops->free(b);
    atomic_store(&g->buckets_tried, 0);
}

void knn_graph_buckets_forget(knn_graph *g, uint32_t node) {
    struct knn_buckets *b = atomic_load(&g->buckets);
    if (b) g->buckets_ops->forget(b, node);
}

/* Rows added since the buckets were cut are scanned exactly by every bucket search; past half the
 * snapshot they are dropped and built again on a later query. */
void knn_graph_drop_stale_buckets(knn_graph *g) {
    struct knn_buckets *b = atomic_load(&g->buckets);
    if (b && g->buckets_ops->stale(b, g->count)) knn_graph_drop_buckets(g);
}
