#define _DEFAULT_SOURCE /* madvise; must precede the system headers */
#include <math.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "graph/graph_internal.h"
#include "base/knn_parallel.h"
#include "exact/knn_scan.h"
#include "base/knn_topk.h"

/* Both search heaps are max-heaps of knn_hitem (candidates store -distance). */

knn_graph_params knn_graph_default_params(void) {
    knn_graph_params p = {16, 200, 64, 42};
    return p;
}

/* ---- small helpers ------------------------------------------------------------------------------ */

static inline void node_lock(const knn_graph *g, uint32_t i) {
    while (atomic_exchange_explicit(&g->locks[i], 1, memory_order_acquire)) sched_yield();
}

static inline void node_unlock(const knn_graph *g, uint32_t i) {
    atomic_store_explicit(&g->locks[i], 0, memory_order_release);
}

static inline float vdist(const knn_graph *g, const float *a, const float *b) {
    float v;
    if (g->metric == KNN_METRIC_L2) {
        g->kern->l2sq_rows(a, b, 1, g->dim, &v);
        return v;
    }
    g->kern->dot_rows(a, b, 1, g->dim, &v);
    return g->metric == KNN_METRIC_COSINE ? 1.0f - v : -v;
}

/* Distances from q to n nodes in one kernel call: amortises dispatch and interleaves four rows. */
static inline void vdists(const knn_graph *g, const float *q, const uint32_t *nodes, size_t n, float *out) {
    const float *rows[513];
    for (size_t j = 0; j < n; j++) {
        rows[j] = knn_graph_vec(g, nodes[j]);
        __builtin_prefetch(rows[j]);
    }
    if (g->metric == KNN_METRIC_L2) {
        g->kern->l2sq_ptrs(q, rows, n, g->dim, out);
        return;
    }
    g->kern->dot_ptrs(q, rows, n, g->dim, out);
    const float base = g->metric == KNN_METRIC_COSINE ? 1.0f : 0.0f;
    for (size_t j = 0; j < n; j++) out[j] = base - out[j];
}

static inline size_t max_links(const knn_graph *g, int level) { return level == 0 ? g->m0 : g->p.m; }

static int heap_push(knn_hitem **a, size_t *n, size_t *cap, float key, uint32_t id) {
    if (*n == *cap) {
        size_t nc = *cap ? *cap * 2 : 64;
        knn_hitem *na = realloc(*a, nc * sizeof *na);
        if (na == NULL) return 0;
        *a = na;
        *cap = nc;
    }
    knn_hitem *h = *a;
    size_t i = (*n)++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (h[p].key >= key) break;
        h[i] = h[p];
        i = p;
    }
    h[i].key = key;
    h[i].id = id;
    return 1;
}

static void heap_pop(knn_hitem *h, size_t *n) {
    knn_hitem last = h[--(*n)];
    size_t i = 0, m = *n;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= m) break;
        if (c + 1 < m && h[c + 1].key > h[c].key) c++;
        if (h[c].key <= last.key) break;
        h[i] = h[c];
        i = c;
    }
    if (m) h[i] = last;
}

/* ---- search contexts (pooled, like hnswlib's VisitedListPool) ----------------------------------- */

static void ctx_free(knn_search_ctx *c) {
    if (c == NULL) return;
    free(c->marks);
    free(c->cand);
    free(c->top);
    free(c->qbuf);
    free(c);
}

static knn_search_ctx *ctx_acquire(knn_graph *g) {
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
    return c;
}

static void ctx_release(knn_graph *g, knn_search_ctx *c) {
    pthread_mutex_lock(&g->pool_lock);
    if (g->pool_n < KNN_VISITED_POOL) {
        g->pool[g->pool_n++] = c;
        c = NULL;
    }
    pthread_mutex_unlock(&g->pool_lock);
    ctx_free(c);
}

knn_search_ctx *knn_graph_ctx_acquire(knn_graph *g) { return ctx_acquire(g); }
void knn_graph_ctx_release(knn_graph *g, knn_search_ctx *c) { ctx_release(g, c); }

static void ctx_new_epoch(knn_search_ctx *c) {
    if (++c->epoch == 0) {
        memset(c->marks, 0, c->marks_cap * sizeof *c->marks);
        c->epoch = 1;
    }
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
    atomic_init(&g->calibrated, 0);
    atomic_init(&g->cal_rows, 0);
    atomic_init(&g->forced_plan, -1);
    atomic_init(&g->buckets, NULL);
    atomic_init(&g->buckets_tried, 0);
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

static void window_free(knn_window *w) {
    free(w->labels);
    free(w->filter);
    free(w->nodes);
    free(w->ids);
    free(w->vecs);
    free(w->pos);
    free(w->delta);
    knn_codes_free(&w->codes);
    memset(w, 0, sizeof *w);
}

static void free_nodes(knn_graph *g) {
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
    window_free(&g->win);
    knn_idmap_free(&g->map);
    free(g->vec_nodes);
    g->vec_nodes = NULL;
    knn_buckets_free(atomic_exchange(&g->buckets, NULL));
    atomic_store(&g->buckets_tried, 0);
}

void knn_graph_free(knn_graph *g) {
    if (g == NULL) return;
    free_nodes(g);
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
static void *slots_alloc(size_t bytes) {
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
    uint8_t *data0 = slots_alloc(cap * g->slot_bytes);
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

/* ---- layer search ------------------------------------------------------------------------------- */

/* Greedy walk on one upper layer: move to the nearest neighbour until none is nearer. */
/* lock_except: -1 reads links without locking (queries: writers are excluded by the rwlock); during a
 * parallel build, the id of the node being inserted, whose lock its inserter already holds. */
#define LOCK_NONE (-1)
static inline int must_lock(int64_t lock_except, uint32_t id) { return lock_except != LOCK_NONE && id != lock_except; }

static uint32_t greedy(const knn_graph *g, const float *q, uint32_t cur, float *curd, int level, int64_t lock_except) {
    uint32_t buf[257];
    float dist[257];
    for (int changed = 1; changed;) {
        changed = 0;
        int lk = must_lock(lock_except, cur);
        if (lk) node_lock(g, cur);
        const uint32_t *l = knn_graph_links(g, cur, level);
        uint32_t n = l[0];
        memcpy(buf, l + 1, n * sizeof *buf);
        if (lk) node_unlock(g, cur);
        vdists(g, q, buf, n, dist);
        for (uint32_t j = 0; j < n; j++) {
            if (dist[j] < *curd) {
                *curd = dist[j];
                cur = buf[j];
                changed = 1;
            }
        }
    }
    return cur;
}

/* Which nodes a search may return; the others still route it (as hnswlib's filter functor). */
typedef struct admit_rule {
    int skip_deleted;
    int windowed;
    double lo, hi;
} admit_rule;

static inline int admitted(const knn_graph *g, const admit_rule *r, uint32_t e) {
    if (r == NULL) return 1;
    if (r->skip_deleted && g->deleted[e]) return 0;
    return !r->windowed || (g->labels[e] >= r->lo && g->labels[e] <= r->hi);
}

/* Beam search of width ef on one layer; leaves the best ef admitted nodes in c->top (max-heap by
 * distance). Adds the number of distances computed to *visits when visits is not NULL. */
static int search_layer(const knn_graph *g, knn_search_ctx *c, const float *q, uint32_t ep, float epd, size_t ef,
                        int level, int64_t lock_except, const admit_rule *rule, size_t *ntop, size_t *visits) {
    size_t ncand = 0, spent = 0;
    *ntop = 0;
    uint32_t buf[513];
    float dist[513];
    ctx_new_epoch(c);
    c->marks[ep] = c->epoch;
    if (!heap_push(&c->cand, &ncand, &c->cand_cap, -epd, ep)) return 0;
    if (admitted(g, rule, ep) && !heap_push(&c->top, ntop, &c->top_cap, epd, ep)) return 0;
    float bound = *ntop ? epd : INFINITY;
    while (ncand) {
        knn_hitem best = c->cand[0];
        if (-best.key > bound && *ntop >= ef) break;
        heap_pop(c->cand, &ncand);
        int lk = must_lock(lock_except, best.id);
        if (lk) node_lock(g, best.id);
        const uint32_t *l = knn_graph_links(g, best.id, level);
        uint32_t n = l[0], fresh = 0;
        /* keep only unvisited neighbours, then score them in one batch */
        for (uint32_t j = 0; j < n; j++) {
            uint32_t e = l[1 + j];
            if (c->marks[e] == c->epoch) continue;
            c->marks[e] = c->epoch;
            buf[fresh++] = e;
        }
        if (lk) node_unlock(g, best.id);
        vdists(g, q, buf, fresh, dist);
        if (visits) *visits += fresh;
        spent += fresh;
        if (c->budget && spent > c->budget) {
            c->over = 1;
            break;
        }
        for (uint32_t j = 0; j < fresh; j++) {
            uint32_t e = buf[j];
            float d = dist[j];
            if (*ntop < ef || d < bound) {
                if (!heap_push(&c->cand, &ncand, &c->cand_cap, -d, e)) return 0;
                if (!admitted(g, rule, e)) continue;
                if (!heap_push(&c->top, ntop, &c->top_cap, d, e)) return 0;
                if (*ntop > ef) heap_pop(c->top, ntop);
                bound = c->top[0].key;
            }
        }
    }
    return 1;
}

/* Most in-window nodes one expansion may score; bounds the 2-hop fan-out (ACORN caps it similarly). */
#define WINDOW_FRESH_CAP 512

/* Collects the unvisited in-window nodes reachable from node in one or two hops (through
 * out-of-window neighbours), marking them visited; returns how many were written to out (at most
 * cap, as ACORN truncates the expanded neighbour list to its degree). */
static uint32_t window_neighbours(const knn_graph *g, knn_search_ctx *c, const admit_rule *rule, uint32_t node,
                                  uint32_t *out, uint32_t cap) {
    const uint32_t *l = knn_graph_links(g, node, 0);
    uint32_t fresh = 0;
    if (cap > WINDOW_FRESH_CAP) cap = WINDOW_FRESH_CAP;
    for (uint32_t j = 0; j < l[0] && fresh < cap; j++) {
        uint32_t e = l[1 + j];
        if (c->marks[e] == c->epoch) continue;
        c->marks[e] = c->epoch;
        if (admitted(g, rule, e)) {
            out[fresh++] = e;
            continue;
        }
        const uint32_t *l2 = knn_graph_links(g, e, 0);
        for (uint32_t t = 0; t < l2[0] && fresh < cap; t++) {
            uint32_t e2 = l2[1 + t];
            if (c->marks[e2] == c->epoch || !admitted(g, rule, e2)) continue;
            c->marks[e2] = c->epoch;
            out[fresh++] = e2;
        }
    }
    return fresh;
}

/* Window search on layer 0 in the manner of ACORN-1 (Patel et al., SIGMOD 2024): the beam holds only
 * in-window nodes, and out-of-window neighbours are crossed as bridges (their in-window neighbours are
 * taken directly), so distances are computed for in-window nodes only and the cost does not grow as
 * 1/selectivity. Seeds: the in-window neighbourhood of the descent's entry point plus nodes spread
 * over the window in label order (which also covers windows far from the query). */
static int search_window_layer(const knn_graph *g, knn_search_ctx *c, const float *q, uint32_t ep,
                               const uint32_t *seeds, size_t nseeds, size_t ef, uint32_t fanout,
                               const admit_rule *rule, size_t *ntop, size_t *visits) {
    uint32_t buf[WINDOW_FRESH_CAP + 64];
    float dist[WINDOW_FRESH_CAP + 64];
    size_t ncand = 0;
    *ntop = 0;
    ctx_new_epoch(c);
    uint32_t fresh = 0;
    c->marks[ep] = c->epoch;
    if (admitted(g, rule, ep)) buf[fresh++] = ep;
    fresh += window_neighbours(g, c, rule, ep, buf + fresh, WINDOW_FRESH_CAP);
    for (size_t i = 0; i < nseeds && fresh < WINDOW_FRESH_CAP + 64; i++) {
        if (c->marks[seeds[i]] == c->epoch) continue;
        c->marks[seeds[i]] = c->epoch;
        buf[fresh++] = seeds[i];
    }
    float bound = INFINITY;
    for (;;) {
        vdists(g, q, buf, fresh, dist);
        if (visits) *visits += fresh;
        for (uint32_t j = 0; j < fresh; j++) {
            if (*ntop < ef || dist[j] < bound) {
                if (!heap_push(&c->cand, &ncand, &c->cand_cap, -dist[j], buf[j])) return 0;
                if (!heap_push(&c->top, ntop, &c->top_cap, dist[j], buf[j])) return 0;
                if (*ntop > ef) heap_pop(c->top, ntop);
                bound = c->top[0].key;
            }
        }
        if (ncand == 0) break;
        knn_hitem best = c->cand[0];
        if (-best.key > bound && *ntop >= ef) break;
        heap_pop(c->cand, &ncand);
        fresh = window_neighbours(g, c, rule, best.id, buf, fanout);
    }
    return 1;
}

static int cmp_hitem_asc(const void *a, const void *b) {
    const knn_hitem *x = a, *y = b;
    if (x->key != y->key) return x->key < y->key ? -1 : 1;
    return (x->id > y->id) - (x->id < y->id);
}

/* Diversity heuristic (HNSW Algorithm 4): keep a candidate only if it is nearer to the base than to
 * every neighbour already kept. cand must be sorted ascending; returns how many were kept (in place). */
static size_t select_neighbors(const knn_graph *g, knn_hitem *cand, size_t n, size_t m) {
    size_t kept = 0;
    for (size_t i = 0; i < n && kept < m; i++) {
        const float *v = knn_graph_vec(g, cand[i].id);
        int good = 1;
        for (size_t j = 0; j < kept; j++) {
            if (vdist(g, v, knn_graph_vec(g, cand[j].id)) < cand[i].key) {
                good = 0;
                break;
            }
        }
        if (good) cand[kept++] = cand[i];
    }
    return kept;
}

/* ---- insertion ---------------------------------------------------------------------------------- */

/* Adds the back-link node -> e on `level`, pruning e's list with the heuristic when it is full. */
static void link_back(knn_graph *g, uint32_t e, uint32_t node, int level, knn_hitem *scratch) {
    size_t cap = max_links(g, level);
    node_lock(g, e);
    uint32_t *l = knn_graph_links(g, e, level);
    uint32_t n = l[0];
    for (uint32_t j = 0; j < n; j++) {
        if (l[1 + j] == node) {
            node_unlock(g, e);
            return;
        }
    }
    if (n < cap) {
        l[1 + n] = node;
        l[0] = n + 1;
    } else {
        const float *ev = knn_graph_vec(g, e);
        for (uint32_t j = 0; j < n; j++) {
            scratch[j].id = l[1 + j];
            scratch[j].key = vdist(g, ev, knn_graph_vec(g, l[1 + j]));
        }
        scratch[n].id = node;
        scratch[n].key = vdist(g, ev, knn_graph_vec(g, node));
        qsort(scratch, n + 1, sizeof *scratch, cmp_hitem_asc);
        size_t kept = select_neighbors(g, scratch, n + 1, cap);
        for (size_t j = 0; j < kept; j++) l[1 + j] = scratch[j].id;
        l[0] = (uint32_t)kept;
    }
    node_unlock(g, e);
}

static int insert_node(knn_graph *g, knn_search_ctx *c, uint32_t node) {
    const float *v = knn_graph_vec(g, node);
    int level = g->levels[node];
    knn_hitem scratch[513];
    knn_hitem merged[256 + 512 + 1];

    pthread_mutex_lock(&g->entry_lock);
    uint32_t ep = g->entry;
    int max_level = g->max_level;
    if (ep == KNN_NO_NODE) {
        g->entry = node;
        g->max_level = level;
        pthread_mutex_unlock(&g->entry_lock);
        return 1;
    }
    /* A node that raises the top level keeps the lock so no other insert sees a half-linked entry. */
    int holds = level > max_level;
    if (!holds) pthread_mutex_unlock(&g->entry_lock);

    float epd = vdist(g, v, knn_graph_vec(g, ep));
    for (int lev = max_level; lev > level; lev--) ep = greedy(g, v, ep, &epd, lev, node);
    for (int lev = level < max_level ? level : max_level; lev >= 0; lev--) {
        size_t ntop;
        if (!search_layer(g, c, v, ep, epd, g->p.ef_construction, lev, node, NULL, &ntop, NULL)) {
            if (holds) pthread_mutex_unlock(&g->entry_lock);
            return 0;
        }
        /* top holds the beam; sort ascending (excluding the node itself, which is not linked yet). */
        size_t n = 0;
        for (size_t j = 0; j < ntop; j++) {
            if (c->top[j].id != node) c->top[n++] = c->top[j];
        }
        qsort(c->top, n, sizeof *c->top, cmp_hitem_asc);
        if (n) {
            ep = c->top[0].id;
            epd = c->top[0].key;
        }
        size_t kept = select_neighbors(g, c->top, n, g->p.m);
        node_lock(g, node);
        uint32_t *l = knn_graph_links(g, node, lev);
        if (l[0] == 0) {
            for (size_t j = 0; j < kept; j++) l[1 + j] = c->top[j].id;
            l[0] = (uint32_t)kept;
        } else {
            /* Another thread already linked back to this node here (it found the node through an upper
             * layer): merge, never overwrite, or that in-link is lost and nodes become unreachable. */
            size_t cnt = 0, cap = max_links(g, lev);
            for (size_t j = 0; j < kept; j++) merged[cnt++] = c->top[j];
            for (uint32_t j = 0; j < l[0]; j++) {
                int dup = 0;
                for (size_t t = 0; t < kept && !dup; t++) dup = merged[t].id == l[1 + j];
                if (!dup) merged[cnt++] = (knn_hitem){vdist(g, v, knn_graph_vec(g, l[1 + j])), l[1 + j]};
            }
            if (cnt > cap) {
                qsort(merged, cnt, sizeof *merged, cmp_hitem_asc);
                cnt = select_neighbors(g, merged, cnt, cap);
            }
            for (size_t j = 0; j < cnt; j++) l[1 + j] = merged[j].id;
            l[0] = (uint32_t)cnt;
        }
        node_unlock(g, node);
        for (size_t j = 0; j < kept; j++) link_back(g, c->top[j].id, node, lev, scratch);
    }
    if (holds) {
        if (level > g->max_level) {
            g->entry = node;
            g->max_level = level;
        }
        pthread_mutex_unlock(&g->entry_lock);
    }
    return 1;
}

static uint64_t mix64(uint64_t seed, uint64_t seq) {
    uint64_t x = seed ^ (seq * 0x9e3779b97f4a7c15ULL);  /* splitmix64 of (seed, seq) */
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    x ^= x >> 31;
    return x;
}

static int draw_level(const knn_graph *g, uint64_t seq) {
    uint64_t x = mix64(g->p.seed, seq);
    double u = ((x >> 11) + 0.5) * (1.0 / 9007199254740992.0);
    int level = (int)floor(-log(u) * g->level_mult);
    return level > KNN_MAX_LEVEL ? KNN_MAX_LEVEL : level;
}

/* Nodes [first, last) are linked in the order first + order[i] (a seeded shuffle, see insertion_order;
 * row order when order is NULL). */
typedef struct build_job {
    knn_graph *g;
    uint32_t first, last;
    const uint32_t *order;
    _Atomic uint32_t next;
    _Atomic int failed;
} build_job;

/* Insertion order of a batch of n new nodes: a Fisher-Yates shuffle drawn from (seed, rows inserted
 * before the batch). Rows arriving grouped (sorted by a label, cluster by cluster, by time) and linked in
 * that order leave a poorly connected graph: each group's first rows are the only ones linked to earlier
 * groups, and back-link pruning later drops most of those links, so a search entering in one group
 * never reaches another (measured: 100 tight clusters inserted cluster by cluster gave recall@10 0.90 at
 * ef 256; the same rows shuffled 0.9995). Linking in a random order, as NSW/HNSW assume, makes the early
 * graph a uniform sample whose long links span every group. */
static void insertion_order(uint32_t *order, uint32_t n, uint64_t seed, uint64_t before) {
    for (uint32_t i = 0; i < n; i++) order[i] = i;
    for (uint32_t i = n; i > 1; i--) {
        uint32_t j = (uint32_t)(mix64(seed ^ 0x5851f42d4c957f2dULL, before + i) % i);
        uint32_t t = order[i - 1];
        order[i - 1] = order[j];
        order[j] = t;
    }
}

static void build_worker(void *arg, size_t t) {
    (void)t;
    build_job *job = arg;
    knn_search_ctx *c = ctx_acquire(job->g);
    if (c == NULL) {
        atomic_store(&job->failed, 1);
        return;
    }
    for (;;) {
        uint32_t i = atomic_fetch_add(&job->next, 1);
        if (i >= job->last - job->first || atomic_load(&job->failed)) break;
        uint32_t node = job->first + (job->order ? job->order[i] : i);
        if (!insert_node(job->g, c, node)) atomic_store(&job->failed, 1);
    }
    ctx_release(job->g, c);
}

/* Validates one vector; normalises into out for cosine. */
static knn_status prepare_vec(const knn_graph *g, const float *v, float *out, int64_t id, size_t row,
                              knn_error *err) {
    double nn = 0;
    for (size_t j = 0; j < g->dim; j++) {
        if (!isfinite(v[j])) {
            return knn_error_set(err, KNN_EDATA, "vector with id %lld (row %zu of this batch) has a NaN or Inf "
                                 "component; nothing was added", (long long)id, row);
        }
        nn += (double)v[j] * v[j];
    }
    if (!isfinite((float)nn)) {
        return knn_error_set(err, KNN_EDATA, "vector with id %lld (row %zu of this batch) has values too large "
                             "for float32 distances; nothing was added", (long long)id, row);
    }
    if (g->metric == KNN_METRIC_COSINE) {
        if (nn == 0) {
            return knn_error_set(err, KNN_EDATA, "vector with id %lld (row %zu of this batch) is the zero vector, "
                                 "which has no direction for metric 'cosine'; nothing was added", (long long)id, row);
        }
        float inv = (float)(1.0 / sqrt(nn));
        for (size_t j = 0; j < g->dim; j++) out[j] = v[j] * inv;
    } else {
        memcpy(out, v, g->dim * sizeof(float));
    }
    return KNN_OK;
}

static void window_index_update(knn_graph *g, size_t first);
static void window_forget(knn_graph *g, uint32_t node);

/* Sets up node `node` (its vector already in place): layer draw, id, label, empty links. */
static knn_status init_node(knn_graph *g, uint32_t node, uint64_t seq, int64_t id, double label, knn_error *err) {
    int level = draw_level(g, seq);
    g->levels[node] = (uint8_t)level;
    g->ids[node] = id;
    g->labels[node] = label;
    g->deleted[node] = 0;
    knn_graph_links(g, node, 0)[0] = 0;
    g->upper[node] = NULL;
    if (level > 0) {
        g->upper[node] = calloc((size_t)level * (g->p.m + 1), sizeof(uint32_t));
        if (g->upper[node] == NULL) return knn_error_set(err, KNN_ENOMEM, "out of memory for graph links");
    }
    return KNN_OK;
}

/* Links nodes [first, count) into the graph, in a seeded random order, on `threads` threads. */
static knn_status link_nodes(knn_graph *g, size_t first, size_t threads, knn_error *err) {
    size_t added = g->count - first;
    uint32_t *order = malloc((added ? added : 1) * sizeof *order); /* NULL: link in row order (still correct) */
    if (order) insertion_order(order, (uint32_t)added, g->p.seed, g->inserted);
    g->inserted += added;
    if (threads == 0) threads = knn_cpu_count();
    if (added < 2 * threads) threads = 1;
    build_job job = {g, (uint32_t)first, (uint32_t)g->count, order, 0, 0};
    double t0 = knn_now_ns();
    knn_parallel_run(threads, build_worker, &job);
    g->link_ns += knn_now_ns() - t0;
    free(order);
    if (atomic_load(&job.failed)) return knn_error_set(err, KNN_ENOMEM, "out of memory while linking the graph");
    return KNN_OK;
}

/* prepare: calibrate and build buckets afterwards (not for optimize's scratch graph, whose storage is
 * moved into the index: buckets would point at the scratch graph) */
static knn_status add_locked(knn_graph *g, const float *vecs, const int64_t *ids, const double *labels, size_t n,
                             size_t threads, int prepare, knn_error *err) {
    knn_idmap last = {0};
    knn_status s = KNN_OK;
    /* Within one batch the last occurrence of an id wins. */
    for (size_t i = 0; i < n; i++) {
        if ((s = knn_idmap_put(&last, ids[i], (uint32_t)i, err)) != KNN_OK) goto done;
    }
    if ((s = knn_graph_reserve(g, g->count + last.size, err)) != KNN_OK) goto done;
    size_t first = g->count;
    for (size_t i = 0; i < n; i++) {
        uint32_t at;
        knn_idmap_get(&last, ids[i], &at);
        if (at != i) continue;
        uint32_t node = (uint32_t)g->count;
        s = prepare_vec(g, vecs + i * g->dim, knn_graph_vec(g, node), ids[i], i, err);
        if (s != KNN_OK) goto rollback;
        s = init_node(g, node, g->inserted + (node - first), ids[i], labels ? labels[i] : NAN, err);
        if (s != KNN_OK) goto rollback;
        g->count++;
    }
    /* All rows are valid: retire replaced ids, then link the new nodes. */
    for (uint32_t node = (uint32_t)first; node < g->count; node++) {
        uint32_t old;
        if (knn_idmap_get(&g->map, g->ids[node], &old) && !g->deleted[old]) {
            g->deleted[old] = 1;
            g->n_deleted++;
            window_forget(g, old);
        }
        if ((s = knn_idmap_put(&g->map, g->ids[node], node, err)) != KNN_OK) goto done;
    }
    s = link_nodes(g, first, threads, err);
    window_index_update(g, first);
    if (s == KNN_OK && prepare) knn_graph_window_prepare(g);
    goto done;
rollback:
    while (g->count > first) {
        g->count--;
        free(g->upper[g->count]);
        g->upper[g->count] = NULL;
    }
done:
    knn_idmap_free(&last);
    return s;
}

knn_status knn_graph_add(knn_graph *g, const float *vecs, const int64_t *ids, const double *labels, size_t n,
                         size_t threads, knn_error *err) {
    if (n == 0) return KNN_OK;
    pthread_rwlock_wrlock(&g->rw);
    knn_status s = add_locked(g, vecs, ids, labels, n, threads, 1, err);
    pthread_rwlock_unlock(&g->rw);
    return s;
}

knn_status knn_graph_view_build(const knn_graph *src, uint32_t *nodes, size_t n, const knn_graph_params *p,
                                size_t threads, knn_graph **out, knn_error *err) {
    *out = NULL;
    knn_graph *g = NULL;
    knn_status s = knn_graph_alloc(src->dim, src->metric, p, &g, err);
    if (s != KNN_OK) {
        free(nodes);
        return s;
    }
    g->kern = src->kern;
    g->vec_src = src;
    g->vec_nodes = nodes;
    g->links_offset = 0; /* slots hold links only */
    g->slot_bytes = (1 + g->m0) * sizeof(uint32_t);
    if ((s = knn_graph_reserve(g, n ? n : 1, err)) != KNN_OK) goto fail;
    for (size_t i = 0; i < n; i++) {
        if ((s = init_node(g, (uint32_t)i, i, src->ids[nodes[i]], src->labels[nodes[i]], err)) != KNN_OK) goto fail;
        g->count++;
    }
    if ((s = link_nodes(g, 0, threads, err)) != KNN_OK) goto fail;
    *out = g;
    return KNN_OK;
fail:
    knn_graph_free(g);
    return s;
}

knn_status knn_graph_delete(knn_graph *g, const int64_t *ids, size_t n, size_t *removed, knn_error *err) {
    (void)err;
    size_t r = 0;
    pthread_rwlock_wrlock(&g->rw);
    for (size_t i = 0; i < n; i++) {
        uint32_t node;
        if (knn_idmap_get(&g->map, ids[i], &node) && !g->deleted[node]) {
            g->deleted[node] = 1;
            g->n_deleted++;
            window_forget(g, node);
            r++;
        }
    }
    pthread_rwlock_unlock(&g->rw);
    if (removed) *removed = r;
    return KNN_OK;
}

knn_status knn_graph_optimize(knn_graph *g, size_t threads, knn_error *err) {
    pthread_rwlock_wrlock(&g->rw);
    knn_status s = KNN_OK;
    size_t live = g->count - g->n_deleted;
    float *vecs = malloc((live ? live : 1) * g->dim * sizeof(float));
    int64_t *ids = malloc((live ? live : 1) * sizeof(int64_t));
    double *labels = malloc((live ? live : 1) * sizeof(double));
    knn_graph *fresh = NULL;
    if (vecs == NULL || ids == NULL || labels == NULL) {
        s = knn_error_set(err, KNN_ENOMEM, "out of memory optimizing a graph of %zu rows", live);
        goto done;
    }
    size_t m = 0;
    for (uint32_t i = 0; i < g->count; i++) {
        if (g->deleted[i]) continue;
        memcpy(vecs + m * g->dim, knn_graph_vec(g, i), g->dim * sizeof(float));
        labels[m] = g->labels[i];
        ids[m++] = g->ids[i];
    }
    if ((s = knn_graph_alloc(g->dim, g->metric, &g->p, &fresh, err)) != KNN_OK) goto done;
    fresh->inserted = 0;
    if ((s = add_locked(fresh, vecs, ids, labels, m, threads, 0, err)) != KNN_OK) goto done;
    /* Swap node storage; keep g's locks and pool (contexts stay valid: capacities only grow). */
    free_nodes(g);
    g->data0 = fresh->data0;
    g->upper = fresh->upper;
    g->levels = fresh->levels;
    g->ids = fresh->ids;
    g->deleted = fresh->deleted;
    g->locks = fresh->locks;
    g->labels = fresh->labels;
    g->win = fresh->win;
    g->count = fresh->count;
    g->capacity = fresh->capacity;
    g->n_deleted = 0;
    g->map = fresh->map;
    g->entry = fresh->entry;
    g->max_level = fresh->max_level;
    g->link_ns = fresh->link_ns;
    memset(&fresh->map, 0, sizeof fresh->map);
    fresh->data0 = NULL;
    fresh->upper = NULL;
    fresh->levels = NULL;
    fresh->ids = NULL;
    fresh->deleted = NULL;
    fresh->locks = NULL;
    fresh->labels = NULL;
    memset(&fresh->win, 0, sizeof fresh->win);
    fresh->count = 0;
    knn_graph_window_prepare(g); /* node numbers changed: free_nodes dropped the buckets; build them anew */
done:
    knn_graph_free(fresh);
    free(vecs);
    free(ids);
    free(labels);
    pthread_rwlock_unlock(&g->rw);
    return s;
}

/* ---- query search ------------------------------------------------------------------------------- */

/* Checks a query (finite; non-zero under cosine) and returns the vector to search with: the query
 * itself, or its unit-length copy in the context under cosine (stored rows are unit-length). */
/* Checks query number `index` (SIZE_MAX: the only one): finite, and non-zero under cosine, where its
 * unit-length copy goes to unit. */
static knn_status check_query(const knn_graph *g, const float *query, size_t index, float *unit, knn_error *err) {
    char which[32] = "query";
    if (index != SIZE_MAX) snprintf(which, sizeof which, "query %zu", index);
    float qn = 0;
    for (size_t j = 0; j < g->dim; j++) {
        if (!isfinite(query[j])) {
            return knn_error_set(err, KNN_EDATA, "%s has a NaN or Inf at position %zu; queries must be finite", which,
                                 j);
        }
        qn += query[j] * query[j];
    }
    if (g->metric == KNN_METRIC_COSINE) {
        if (qn == 0) {
            return knn_error_set(err, KNN_EDATA, "%s is the zero vector, which has no direction for metric 'cosine'",
                                 which);
        }
        float inv = 1.0f / sqrtf(qn);
        for (size_t j = 0; j < g->dim; j++) unit[j] = query[j] * inv;
    }
    return KNN_OK;
}

static knn_status prepare_query(const knn_graph *g, knn_search_ctx *c, const float *query, const float **q,
                                knn_error *err) {
    knn_status s = check_query(g, query, SIZE_MAX, c->qbuf, err);
    *q = g->metric == KNN_METRIC_COSINE ? c->qbuf : query;
    return s;
}

/* Exact scan of live nodes: used when the beam found fewer than k live rows (heavy deletion). */
static knn_status exact_live(const knn_graph *g, const float *q, size_t k, int64_t *out_ids, float *out_dists,
                             size_t *found, knn_error *err) {
    knn_topk t;
    knn_status s = knn_topk_init(&t, k, err);
    for (uint32_t i = 0; s == KNN_OK && i < g->count; i++) {
        if (g->deleted[i]) continue;
        s = knn_topk_offer(&t, vdist(g, q, knn_graph_vec(g, i)), g->ids[i], err);
    }
    if (s == KNN_OK) knn_topk_export(&t, out_ids, out_dists, found);
    knn_topk_free(&t);
    return s;
}

/* The unfiltered search (read lock held, live rows > 0, q prepared): descent, one beam of width ef over
 * layer 0 skipping tombstones only, an exact pass when the beam found fewer than min(k, live) rows. */
static knn_status plain_search(const knn_graph *g, knn_search_ctx *c, const float *q, size_t k, size_t ef,
                               int64_t *out_ids, float *out_dists, size_t *found, knn_error *err) {
    size_t live = g->count - g->n_deleted;
    if (ef == 0) ef = g->p.ef;
    if (ef < k) ef = k;
    uint32_t ep = g->entry;
    float epd = vdist(g, q, knn_graph_vec(g, ep));
    for (int lev = g->max_level; lev > 0; lev--) ep = greedy(g, q, ep, &epd, lev, LOCK_NONE);
    size_t ntop;
    admit_rule live_only = {1, 0, 0, 0};
    if (!search_layer(g, c, q, ep, epd, ef, 0, LOCK_NONE, g->n_deleted ? &live_only : NULL, &ntop, NULL)) {
        return knn_error_set(err, KNN_ENOMEM, "out of memory during search");
    }
    qsort(c->top, ntop, sizeof *c->top, cmp_hitem_asc);
    size_t want = k < live ? k : live;
    if (ntop < want) return exact_live(g, q, k, out_ids, out_dists, found, err);
    for (size_t j = 0; j < want; j++) {
        out_ids[j] = g->ids[c->top[j].id];
        out_dists[j] = c->top[j].key;
    }
    *found = want;
    return KNN_OK;
}

knn_status knn_graph_search(knn_graph *g, const float *query, size_t k, size_t ef, int64_t *out_ids,
                            float *out_dists, size_t *found, knn_error *err) {
    *found = 0;
    if (k == 0) return knn_error_set(err, KNN_EINVAL, "k must be >= 1, got 0");
    knn_status s = KNN_OK;
    pthread_rwlock_rdlock(&g->rw);
    size_t live = g->count - g->n_deleted;
    knn_search_ctx *c = NULL;
    if (live == 0) goto done;
    c = ctx_acquire(g);
    if (c == NULL) {
        s = knn_error_set(err, KNN_ENOMEM, "out of memory for a search context");
        goto done;
    }
    const float *q;
    if ((s = prepare_query(g, c, query, &q, err)) != KNN_OK) goto done;
    s = plain_search(g, c, q, k, ef, out_ids, out_dists, found, err);
done:
    if (c) ctx_release(g, c);
    pthread_rwlock_unlock(&g->rw);
    return s;
}

/* ---- exact many-query scan ---------------------------------------------------------------------- */

/* Exact k nearest live rows of a batch of queries, for refining approximate answers (knn_predict's
 * refine_ef) without copying the rows out: blocks of EXACT_BLOCK slots (~200 KiB at d = 784) are scored
 * against every query while they sit in cache, threads take interleaved blocks, and their per-query
 * heaps merge afterwards. Heaps break ties by id, so results do not depend on the thread count. */
#define EXACT_BLOCK 64

typedef struct exact_job {
    const knn_graph *g;
    const float *qs; /* nq x dim, checked and (cosine) normalised */
    size_t nq, nthreads, nblocks;
    knn_topk *heaps; /* nthreads x nq */
    knn_error *errs;
} exact_job;

static void exact_task(void *arg, size_t t) {
    exact_job *job = arg;
    const knn_graph *g = job->g;
    uint32_t nodes[EXACT_BLOCK];
    float dist[EXACT_BLOCK];
    knn_topk *heaps = job->heaps + t * job->nq;
    for (size_t b = t; b < job->nblocks; b += job->nthreads) {
        size_t n = 0;
        for (size_t i = b * EXACT_BLOCK; i < g->count && i < (b + 1) * EXACT_BLOCK; i++) {
            if (!g->deleted[i]) nodes[n++] = (uint32_t)i;
        }
        for (size_t q = 0; q < job->nq && n; q++) {
            vdists(g, job->qs + q * g->dim, nodes, n, dist);
            for (size_t j = 0; j < n; j++) {
                if (knn_topk_offer(&heaps[q], dist[j], g->ids[nodes[j]], &job->errs[t]) != KNN_OK) return;
            }
        }
    }
}

knn_status knn_graph_exact(knn_graph *g, const float *queries, size_t nq, size_t k, size_t threads,
                           int64_t *out_ids, float *out_dists, size_t *found, knn_error *err) {
    if (k == 0) return knn_error_set(err, KNN_EINVAL, "k must be >= 1, got 0");
    knn_status s = KNN_OK;
    pthread_rwlock_rdlock(&g->rw);
    const size_t d = g->dim;
    size_t nblocks = (g->count + EXACT_BLOCK - 1) / EXACT_BLOCK;
    size_t nt = threads ? threads : knn_cpu_count();
    if (nt > nblocks) nt = nblocks ? nblocks : 1;
    float *qs = malloc((nq ? nq : 1) * d * sizeof *qs);
    knn_topk *heaps = calloc(nt * (nq ? nq : 1), sizeof *heaps);
    knn_error *errs = calloc(nt, sizeof *errs);
    if (!qs || !heaps || !errs) {
        s = knn_error_set(err, KNN_ENOMEM, "out of memory for an exact scan of %zu queries", nq);
        goto done;
    }
    for (size_t q = 0; q < nq; q++) {
        if ((s = check_query(g, queries + q * d, q, qs + q * d, err)) != KNN_OK) goto done;
        if (g->metric != KNN_METRIC_COSINE) memcpy(qs + q * d, queries + q * d, d * sizeof *qs);
    }
    for (size_t i = 0; i < nt * nq; i++) {
        if ((s = knn_topk_init(&heaps[i], k, err)) != KNN_OK) goto done;
    }
    exact_job job = {g, qs, nq, nt, nblocks, heaps, errs};
    knn_parallel_run(nt, exact_task, &job);
    for (size_t t = 0; t < nt; t++) {
        if (errs[t].status != KNN_OK) {
            *err = errs[t];
            s = err->status;
            goto done;
        }
    }
    for (size_t q = 0; q < nq; q++) {
        knn_topk *h = &heaps[q];
        for (size_t t = 1; t < nt; t++) {
            if ((s = knn_topk_merge(h, &heaps[t * nq + q], err)) != KNN_OK) goto done;
        }
        knn_topk_sort(h);
        for (size_t j = 0; j < k; j++) {
            out_ids[q * k + j] = j < h->size ? h->heap[j].id : -1;
            out_dists[q * k + j] = j < h->size ? h->heap[j].dist : INFINITY;
        }
        found[q] = h->size;
    }
done:
    if (heaps) {
        for (size_t i = 0; i < nt * nq; i++) knn_topk_free(&heaps[i]);
    }
    free(heaps);
    free(errs);
    free(qs);
    pthread_rwlock_unlock(&g->rw);
    return s;
}

/* ---- introspection ------------------------------------------------------------------------------ */

size_t knn_graph_live(const knn_graph *g) { return g->count - g->n_deleted; }
size_t knn_graph_deleted(const knn_graph *g) { return g->n_deleted; }
size_t knn_graph_dim(const knn_graph *g) { return g->dim; }
knn_metric knn_graph_metric(const knn_graph *g) { return g->metric; }
knn_graph_params knn_graph_get_params(const knn_graph *g) { return g->p; }

size_t knn_graph_memory(const knn_graph *g) {
    size_t bytes = sizeof *g + g->capacity * (g->slot_bytes + sizeof(uint32_t *) + 1 + sizeof(int64_t) + 1 + 1);
    for (size_t i = 0; i < g->count; i++) bytes += (size_t)g->levels[i] * (g->p.m + 1) * sizeof(uint32_t);
    bytes += g->map.cap * (sizeof(int64_t) + sizeof(uint32_t));
    bytes += g->capacity * sizeof(double); /* labels */
    bytes += g->win.n * (2 * sizeof(double) + sizeof(uint32_t) + sizeof(int64_t) + g->dim * sizeof(float)) +
             g->win.pos_n * sizeof(uint32_t) + g->win.cap_delta * sizeof(uint32_t);
    if (g->win.codes.codes) {
        bytes += g->win.codes.nblocks * g->win.codes.npairs * 2 * KNN_CODE_BLOCK + g->win.n * sizeof(float) +
                 g->dim * sizeof(double);
    }
    if (g->vec_nodes) bytes += g->capacity * sizeof(uint32_t);
    const knn_buckets *b = atomic_load(&((knn_graph *)g)->buckets);
    if (b) bytes += b->bytes;
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

/* ---- window search -------------------------------------------------------------------------------
 *
 * Rows carry a numeric label. A window query [lo, hi] is planned per query over the window's row
 * count w, found by binary search in the label-sorted node list (plus a linear pass over the delta of
 * rows labelled since the last rebuild):
 *   - exact: score the w in-window nodes directly (the label-sorted list makes them one gather);
 *   - graph: beam search over the whole graph admitting only in-window nodes; the beam must collect
 *     ef admitted nodes, so it visits about (unfiltered visits) * n / w nodes.
 * The costs come from a calibration run on first use (ns per scanned row, ns per visited node and
 * nodes visited per unfiltered search on this index and machine), not from fixed thresholds. When a
 * graph search finds fewer than k rows, an exact pass over the window decides, so k rows come back
 * whenever k live rows lie in the window. */

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
    label_node *pairs = malloc((n ? n : 1) * sizeof *pairs);
    w.labels = malloc((n ? n : 1) * sizeof *w.labels);
    w.filter = malloc((n ? n : 1) * sizeof *w.filter);
    w.nodes = malloc((n ? n : 1) * sizeof *w.nodes);
    w.ids = malloc((n ? n : 1) * sizeof *w.ids);
    w.vecs = aligned_alloc(64, ((n ? n : 1) * g->dim * sizeof(float) + 63) / 64 * 64);
    w.pos = malloc((g->count ? g->count : 1) * sizeof *w.pos);
    if (!pairs || !w.labels || !w.filter || !w.nodes || !w.ids || !w.vecs || !w.pos) {
        free(pairs);
        window_free(&w); /* keep the old structure: still correct, only slower */
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
    window_free(&g->win);
    g->win = w;
}

/* Marks a deleted node's sorted copy so exact window scans skip it. */
static void window_forget(knn_graph *g, uint32_t node) {
    if (node < g->win.pos_n && g->win.pos[node] != UINT32_MAX) g->win.filter[g->win.pos[node]] = NAN;
    knn_buckets *b = atomic_load(&g->buckets);
    if (b) knn_buckets_forget(b, node);
}

/* Records nodes [first, count) after an add: into the delta, merged once it outgrows ~sqrt(n). */
static void window_index_update(knn_graph *g, size_t first) {
    knn_buckets *b = atomic_load(&g->buckets);
    if (b && g->count - b->built_count > b->built_count / 2) { /* too many late rows: rebuilt on a later query */
        knn_buckets_free(atomic_exchange(&g->buckets, NULL));
        atomic_store(&g->buckets_tried, 0);
    }
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


/* ---- screened exact window scan ---------------------------------------------------------------
 * The label-sorted copy carries 8-bit codes (knn_codes.h). With c the code distance of a row x,
 *     c - err(x) - err(q) <= d(x, q) <= c + err(x) + err(q).
 * The scan goes in spans of SCREEN_SPAN rows. A first pass reads only the span's codes (d bytes a row,
 * against 4d for the floats) into integer code distances, and keeps the k smallest upper bounds of the
 * window rows seen so far: k rows are known to lie within the k-th of them, so a row whose lower bound
 * is beyond it cannot be in the top k. A second pass reads float rows only for rows whose lower bound is
 * within that and within the current k-th float distance. Float rows are scored in the chunks and
 * groups of knn_scan_one (256-row chunks from the slice start, 8-row groups, which the kernels split
 * into their 4-row and one-row paths alike), so every scored row gets the very float the plain scan
 * gives it, and the result is the plain scan's, ties included: a skipped row is farther than k others
 * by more than KNN_CODES_SLACK, far beyond float rounding. Window slices are cold in cache on large
 * indexes, so the scan is bound by the bytes it reads; the upper bounds make the threshold tight from
 * the first chunk on, where a running top-k alone reads every float row of the first chunk. Both
 * passes test most rows by one compare of the integer distance against a cut (worked out with the
 * largest decoding error), and look at a row's own error and label only when it is close. */
/* Slices of fewer values (rows x d) are scanned plainly: the passes cost about as much as they save
 * there (GloVe-50: no gain below ~2,000 rows; at d = 784 a few hundred rows already pay). */
#define SCREEN_MIN_VALUES 100000
#define SCREEN_CHUNK 256    /* = knn_scan_one's block */
#define SCREEN_SPAN 4096    /* rows bounded ahead of their float pass (a multiple of SCREEN_CHUNK) */
#define SCREEN_UB_MAX 256   /* k up to this also bounds the k-th distance by the codes' upper bounds */

/* Euclidean distance bound from a scan distance (squared L2, or -<q, x> of unit rows under cosine). */
static inline float euclid_bound(knn_metric scan_metric, float dist) {
    if (isinf(dist)) return INFINITY;
    float e2 = scan_metric == KNN_METRIC_L2 ? dist : 2.0f + 2.0f * dist;
    return sqrtf(e2 > 0 ? e2 : 0) * (1.0f + (float)KNN_CODES_SLACK) + 1e-6f;
}

/* Keeps the k smallest upper bounds seen (a max-heap of at most k floats); returns the k-th smallest,
 * +inf while fewer than k are known. */
static float ub_offer(float *h, size_t *n, size_t k, float u) {
    if (*n < k) {
        size_t i = (*n)++;
        for (; i > 0 && h[(i - 1) / 2] < u; i = (i - 1) / 2) h[i] = h[(i - 1) / 2];
        h[i] = u;
    } else if (u < h[0]) {
        size_t i = 0;
        for (;;) {
            size_t l = 2 * i + 1, r = l + 1, m = i;
            float vm = u;
            if (l < k && h[l] > vm) m = l, vm = h[l];
            if (r < k && h[r] > vm) m = r;
            if (m == i) break;
            h[i] = h[m];
            i = m;
        }
        h[i] = u;
    }
    return *n < k ? INFINITY : h[0];
}

static inline int in_window(const knn_graph *g, size_t i, double lo, double hi) {
    const double lab = g->win.filter[i]; /* NaN once deleted */
    return lab >= lo && lab <= hi;
}

/* An integer cut for Euclidean reach r: every row with S * s2 < r^2 has S < the cut (it errs high). */
static inline uint32_t code_cut(float r, float s2) {
    if (!(r < INFINITY) || !(s2 > 0)) return INT32_MAX;
    if (!(r > 0)) return 0;
    double v = (double)r * (double)r / (double)s2 * (1.0 + 1e-6) + 1.0;
    return v >= (double)INT32_MAX ? INT32_MAX : (uint32_t)v;
}

/* Bits of rows o .. o+n-1 (n <= 8) of a run of 64-bit block masks. */
static inline uint32_t mask_bits(const uint64_t *m, size_t o, size_t n) {
    const size_t w = o / 64, b = o % 64;
    uint64_t v = m[w] >> b;
    if (b + n > 64) v |= m[w + 1] << (64 - b);
    return (uint32_t)(v & ((1u << n) - 1));
}

static knn_status scan_screened(const knn_graph *g, knn_metric scan_metric, const float *q, double lo, double hi,
                                size_t s, size_t e, knn_topk *t, knn_error *err) {
    const knn_codes *cd = &g->win.codes;
    const size_t d = g->dim, np2 = 2 * cd->npairs, k = t->k;
    uint8_t cq_stack[512], *cq = np2 <= sizeof cq_stack ? cq_stack : malloc(np2);
    if (cq == NULL) return knn_error_set(err, KNN_ENOMEM, "out of memory for a query's codes");
    const float qerr = knn_codes_encode(cd, q, cq);
    const float up = 1.0f + (float)KNN_CODES_SLACK, s2 = cd->scale2, slack = cd->err_max + qerr;
    const int use_ub = k <= SCREEN_UB_MAX;
    enum { NB = SCREEN_SPAN / KNN_CODE_BLOCK + 1 };
    uint32_t S[NB * KNN_CODE_BLOCK]; /* integer code distances of the span's blocks, S[i - sbase] for row i */
    uint64_t cand[NB + 1];           /* rows whose lower bound may be within the threshold */
    float ub_heap[SCREEN_UB_MAX], dist[8];
    float kth_ub = INFINITY; /* k window rows lie within this (the k-th smallest upper bound seen) */
    size_t ub_n = 0;
    knn_status st = KNN_OK;
    for (size_t a = s; a < e && st == KNN_OK; a += SCREEN_SPAN) {
        const size_t z = e - a < SCREEN_SPAN ? e : a + SCREEN_SPAN;
        const size_t bfirst = a / KNN_CODE_BLOCK, sbase = bfirst * KNN_CODE_BLOCK;
        /* pass 1: codes only. A row left out of cand has c >= thr + err_max + err(q) for a threshold no
         * lower than any later one, so its lower bound stays beyond every later threshold. */
        const float tb = euclid_bound(scan_metric, knn_topk_bound(t));
        size_t nb = 0;
        for (size_t b = bfirst; b * KNN_CODE_BLOCK < z; b++, nb++) {
            const float thr = tb < kth_ub ? tb : kth_ub;
            uint32_t *Sb = S + nb * KNN_CODE_BLOCK;
            uint64_t m = g->kern->u8_dist_block(cq, knn_codes_block(cd, b), cd->npairs, code_cut((thr + slack) * up, s2),
                                                Sb);
            const size_t b0 = b * KNN_CODE_BLOCK;
            if (b0 < a) m &= ~(uint64_t)0 << (a - b0);
            if (z - b0 < KNN_CODE_BLOCK) m &= ((uint64_t)1 << (z - b0)) - 1;
            cand[nb] = m;
            if (!use_ub) continue;
            uint32_t ub_cut = code_cut(kth_ub, s2); /* c >= kth_ub: this row's upper bound is no lower */
            for (; m; m &= m - 1) {
                const size_t r = (size_t)__builtin_ctzll(m);
                if (Sb[r] >= ub_cut || !in_window(g, b0 + r, lo, hi)) continue;
                const float c = sqrtf((float)Sb[r] * s2); /* s2 is rounded down: c is too */
                kth_ub = ub_offer(ub_heap, &ub_n, k, ((c * up + cd->err[b0 + r] + qerr) * up) * up + 1e-6f);
                ub_cut = code_cut(kth_ub, s2);
            }
        }
        cand[nb] = 0;
        /* pass 2: float rows for candidates still within the threshold, in knn_scan_one's chunks */
        float bound = NAN, thr = INFINITY;
        for (size_t c0 = a; c0 < z && st == KNN_OK; c0 += SCREEN_CHUNK) {
            const size_t m = z - c0 < SCREEN_CHUNK ? z - c0 : SCREEN_CHUNK;
            for (size_t i = 0; i < m && st == KNN_OK; i += 8) {
                const size_t n8 = m - i < 8 ? m - i : 8, row = c0 + i;
                uint32_t bits = mask_bits(cand, row - sbase, n8);
                if (!bits) continue;
                if (!(knn_topk_bound(t) == bound)) { /* the threshold moves only when the top k does */
                    bound = knn_topk_bound(t);
                    const float tt = euclid_bound(scan_metric, bound);
                    thr = tt < kth_ub ? tt : kth_ub;
                }
                int any = 0;
                for (; bits && !any; bits &= bits - 1) {
                    const size_t r = (size_t)__builtin_ctz(bits);
                    const float c = sqrtf((float)S[row - sbase + r] * s2);
                    any = c - cd->err[row + r] - qerr < thr && in_window(g, row + r, lo, hi);
                }
                if (!any) continue;
                const float *X = g->win.vecs + row * d;
                if (scan_metric == KNN_METRIC_L2) {
                    g->kern->l2sq_rows(q, X, n8, d, dist);
                } else {
                    g->kern->dot_rows(q, X, n8, d, dist);
                    for (size_t r = 0; r < n8; r++) dist[r] = -dist[r];
                }
                for (size_t r = 0; r < n8 && st == KNN_OK; r++) {
                    if (!(dist[r] <= knn_topk_bound(t)) || !in_window(g, row + r, lo, hi)) continue;
                    st = knn_topk_insert(t, dist[r], g->win.ids[row + r], err);
                }
            }
        }
    }
    if (cq != cq_stack) free(cq);
    return st;
}

/* Exact top-k over the window: one contiguous scan of the sorted slice [s, e) (deleted rows carry a NaN
 * filter label and are skipped), plus the in-window delta nodes. */
static knn_status exact_window(const knn_graph *g, const float *q, size_t k, double lo, double hi, size_t s, size_t e,
                               int64_t *out_ids, float *out_dists, size_t *found, int with_delta, knn_error *err) {
    knn_topk t;
    knn_status st = knn_topk_init(&t, k, err);
    /* stored rows are unit-length under cosine: scan by inner product, then shift by 1 */
    knn_metric scan_metric = g->metric == KNN_METRIC_COSINE ? KNN_METRIC_IP : g->metric;
    float shift = g->metric == KNN_METRIC_COSINE ? 1.0f : 0.0f;
    knn_rows rows = {g->win.vecs + s * g->dim, NULL, g->win.ids + s, 0, e - s, g->dim, g->win.filter + s, lo, hi};
    if (st == KNN_OK && e > s) {
        st = g->win.codes.codes && (e - s) * g->dim >= SCREEN_MIN_VALUES ? scan_screened(g, scan_metric, q, lo, hi, s, e, &t, err)
                                                            : knn_scan_one(g->kern, scan_metric, q, 1.0f, &rows, &t, err);
    }
    for (size_t i = 0; st == KNN_OK && with_delta && i < g->win.n_delta; i++) {
        uint32_t v = g->win.delta[i];
        if (g->deleted[v] || !(g->labels[v] >= lo && g->labels[v] <= hi)) continue;
        st = knn_topk_offer(&t, vdist(g, q, knn_graph_vec(g, v)) - shift, g->ids[v], err);
    }
    if (st == KNN_OK) {
        knn_topk_sort(&t);
        for (size_t j = 0; j < t.size; j++) {
            out_ids[j] = t.heap[j].id;
            float d = t.heap[j].dist + shift;
            out_dists[j] = d < 0.0f ? 0.0f : d;
        }
        *found = t.size;
    }
    knn_topk_free(&t);
    return st;
}

knn_status knn_graph_search_window(knn_graph *g, const float *query, size_t k, size_t ef, double lo, double hi,
                                   int64_t *out_ids, float *out_dists, size_t *found, int *plan, knn_error *err) {
    return knn_graph_search_window_plan(g, query, k, ef, lo, hi, atomic_load(&g->forced_plan), out_ids, out_dists, found,
                                        plan, err);
}

/* Runs one graph plan (KNN_PLAN_TWO_HOP or KNN_PLAN_POST) for the window [lo, hi] = sorted positions
 * [s, e) (all_live: the window holds every row and none is deleted); leaves the best ef in-window
 * nodes in c->top. The postfilter beam stops after `budget` distances (0: no limit), setting c->over.
 * Adds the distances computed to *visits (may be NULL). Returns 0 when out of memory. */
/* Greedy descent through the upper layers: the layer-0 entry point nearest the query and its distance. */
static void descend(const knn_graph *g, const float *q, uint32_t *ep, float *epd) {
    uint32_t e = g->entry;
    float d = vdist(g, q, knn_graph_vec(g, e));
    for (int lev = g->max_level; lev > 0; lev--) e = greedy(g, q, e, &d, lev, LOCK_NONE);
    *ep = e;
    *epd = d;
}

/* Local selectivity near the query: the share of in-window nodes among the descent's landing node and
 * its layer-0 neighbours, Laplace-smoothed ((hits + 1) / (nodes + 2)). NaviX (Sehgal and Salihoglu,
 * VLDB 2025) picks its filtered-search heuristic per node from the same local measure. */
static double local_fraction(const knn_graph *g, double lo, double hi, uint32_t ep) {
    admit_rule rule = {1, 1, lo, hi};
    const uint32_t *l = knn_graph_links(g, ep, 0);
    size_t hits = (size_t)admitted(g, &rule, ep);
    for (uint32_t j = 0; j < l[0]; j++) hits += (size_t)admitted(g, &rule, l[1 + j]);
    return ((double)hits + 1.0) / ((double)l[0] + 3.0);
}

/* ep / epd: the descent's result when the caller already ran it (ep != KNN_NO_NODE). */
static int window_beam(const knn_graph *g, knn_search_ctx *c, const float *q, int plan, double lo, double hi,
                       size_t s, size_t e, size_t ef, int all_live, size_t budget, uint32_t ep, float epd,
                       size_t *ntop, size_t *visits) {
    if (ep == KNN_NO_NODE) descend(g, q, &ep, &epd);
    admit_rule rule = {1, 1, lo, hi};
    if (plan == KNN_PLAN_POST) {
        /* a window holding every row (and no tombstones) filters nothing: the plain search */
        const admit_rule *r = all_live ? NULL : &rule;
        c->budget = budget;
        c->over = 0;
        int ok = search_layer(g, c, q, ep, epd, ef, 0, LOCK_NONE, r, ntop, visits);
        c->budget = 0;
        return ok;
    }
    /* seeds spread over the window in label order (they also reach windows far from the query) */
    uint32_t seeds[16];
    size_t nseeds = 0, span = e - s;
    for (size_t i = 0; span && i < 16; i++) {
        uint32_t v = g->win.nodes[s + (span * (2 * i + 1)) / 32];
        if (!g->deleted[v]) seeds[nseeds++] = v;
    }
    return search_window_layer(g, c, q, ep, seeds, nseeds, ef, (uint32_t)g->m0, &rule, ntop, NULL);
}

int knn_graph_post_beam(const knn_graph *g, knn_search_ctx *c, const float *q, double lo, double hi, size_t ef,
                        double min_local, size_t *ntop) {
    *ntop = 0;
    if (g->entry == KNN_NO_NODE) return 1;
    uint32_t ep;
    float epd;
    descend(g, q, &ep, &epd);
    if (min_local > 0 && local_fraction(g, lo, hi, ep) < min_local) return 2;
    return window_beam(g, c, q, KNN_PLAN_POST, lo, hi, 0, 0, ef, 0, 0, ep, epd, ntop, NULL);
}

float knn_graph_node_dist(const knn_graph *g, const float *q, uint32_t i) { return vdist(g, q, knn_graph_vec(g, i)); }

knn_status knn_graph_window_exact(const knn_graph *g, const float *q, size_t k, double lo, double hi, size_t s,
                                  size_t e, int64_t *out_ids, float *out_dists, size_t *found, int with_delta,
                                  knn_error *err) {
    return exact_window(g, q, k, lo, hi, s, e, out_ids, out_dists, found, with_delta, err);
}

/* Calibration window j: holds 2^-j of the sorted rows, at a position varying with the query number i. */
static void cal_window(const knn_graph *g, int j, size_t i, size_t *s, size_t *e) {
    size_t w = g->win.n >> j;
    if (w == 0) w = 1;
    size_t room = g->win.n - w;
    *s = room ? (i * 40503u + 12345u) % (room + 1) : 0;
    *e = *s + w;
}

/* Calibration query i at point j: a stored row spread over the index. */
static const float *cal_query(const knn_graph *g, int j, size_t i) {
    return knn_graph_vec(g, g->win.nodes[(i * 2654435761u + 7u * (size_t)j) % g->win.n]);
}

/* How many of the exact top-10 of calibration window (j, i) the graph plan finds; -1 when out of memory. */
static long cal_hits(const knn_graph *g, knn_search_ctx *c, int j, size_t i, int plan) {
    enum { K = 10 };
    size_t s, e, ntop, found = 0;
    int64_t truth[K], ids[K];
    float d[K];
    knn_error err;
    cal_window(g, j, i, &s, &e);
    const float *v = cal_query(g, j, i);
    double lo = g->win.labels[s], hi = g->win.labels[e - 1];
    if (exact_window(g, v, K, lo, hi, s, e, truth, d, &found, 1, &err) != KNN_OK) return -1;
    if (!window_beam(g, c, v, plan, lo, hi, s, e, g->p.ef, 0, 0, KNN_NO_NODE, 0, &ntop, NULL)) return -1;
    qsort(c->top, ntop, sizeof *c->top, cmp_hitem_asc);
    size_t n = ntop < K ? ntop : K;
    for (size_t t = 0; t < n; t++) ids[t] = g->ids[c->top[t].id];
    long hits = 0;
    for (size_t a = 0; a < found; a++) {
        for (size_t b = 0; b < n; b++) hits += truth[a] == ids[b];
    }
    return hits;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Rows per timed exact scan in the calibration. */
#define CAL_SCAN_ROWS 16384

/* Median of n timings (sorts them): robust to the few searches a shared machine preempts. */
static double median_ns(double *t, size_t n) {
    qsort(t, n, sizeof *t, cmp_double);
    return n % 2 ? t[n / 2] : 0.5 * (t[n / 2 - 1] + t[n / 2]);
}

/* Measures, once per index and machine, what each plan costs here: ns per row of the exact window
 * scan (contiguous, on the sorted copy), and ns per search of each graph plan at the default ef on
 * windows of 2^0 .. 2^-(KNN_CAL_POINTS-1) of the rows. Every search is timed on its own and the median
 * is kept; the two graph plans are timed interleaved on the same queries and windows, so load from
 * other processes skews neither against the other. Queries are stored rows spread over the index. */
static void calibrate(knn_graph *g, knn_search_ctx *c) {
    if (g->win.n == 0 || (atomic_load(&g->calibrated) && g->win.n < 2 * atomic_load(&g->cal_rows))) return;
    pthread_mutex_lock(&g->cal_lock);
    if (atomic_load(&g->calibrated) && g->win.n < 2 * g->cal_rows) {
        pthread_mutex_unlock(&g->cal_lock);
        return;
    }
    enum { SEARCHES = 9 };
    knn_error err;
    knn_topk t;
    double scan[SEARCHES], two[KNN_CAL_POINTS], post[KNN_CAL_POINTS], t2[SEARCHES], tp[SEARCHES];
    double dist_n[SEARCHES] = {0};
    unsigned char two_ok[KNN_CAL_POINTS] = {0};
    /* the exact plan as queries run it (screened when the structure has codes), on slices wide enough
     * for the screen to pay as it does on wide windows */
    size_t rows = g->win.n < CAL_SCAN_ROWS ? g->win.n : CAL_SCAN_ROWS;
    int ok = knn_topk_init(&t, 10, NULL) == KNN_OK;
    for (size_t i = 0; ok && i < SEARCHES; i++) {
        size_t s0 = g->win.n > rows ? (i * 40503u) % (g->win.n - rows + 1) : 0;
        const float *q = g->win.vecs + ((i * 2654435761u) % g->win.n) * g->dim;
        int64_t ids[10];
        float dists[10];
        size_t found;
        double t0 = knn_now_ns();
        exact_window(g, q, 10, -INFINITY, INFINITY, s0, s0 + rows, ids, dists, &found, 1, &err);
        scan[i] = (knn_now_ns() - t0) / (double)rows;
    }
    knn_topk_free(&t);
    double scan_ns_med = median_ns(scan, SEARCHES);
    int time_two = 1, time_post = 1;
    for (int j = 0; ok && j < KNN_CAL_POINTS; j++) {
        double exact_j = scan_ns_med * (double)(g->win.n >> j);
        if (!time_two && !time_post) { /* both beams already lost to the exact scan, which only gets cheaper */
            two[j] = two[j - 1];
            post[j] = 2 * post[j - 1];
            two_ok[j] = 0;
            continue;
        }
        for (size_t i = 0; ok && i < SEARCHES; i++) {
            size_t s, e, ntop;
            cal_window(g, j, i, &s, &e);
            const float *v = cal_query(g, j, i);
            double lo = g->win.labels[s], hi = g->win.labels[e - 1];
            double t0 = knn_now_ns();
            if (time_two) {
                ok = window_beam(g, c, v, KNN_PLAN_TWO_HOP, lo, hi, s, e, g->p.ef, 0, 0, KNN_NO_NODE, 0, &ntop, NULL);
            }
            double t1 = knn_now_ns();
            size_t vis = 0;
            if (time_post) {
                ok = ok && window_beam(g, c, v, KNN_PLAN_POST, lo, hi, s, e, g->p.ef, 0, 0, KNN_NO_NODE, 0, &ntop, &vis);
            }
            if (j == 0) dist_n[i] = (double)vis;
            t2[i] = time_two ? t1 - t0 : (j ? 2 * two[j - 1] : INFINITY);
            tp[i] = time_post ? knn_now_ns() - t1 : (j ? 2 * post[j - 1] : INFINITY);
        }
        two[j] = median_ns(t2, SEARCHES);
        post[j] = median_ns(tp, SEARCHES);
        /* a beam slower than the exact scan here stays slower on every smaller window: stop timing it */
        time_two = two[j] < exact_j;
        time_post = post[j] < exact_j;
        /* Where the two-hop beam is the cheaper beam it must also be as accurate: its hits against the
         * exact window top-10 may trail the postfilter's by at most one over these queries. */
        two_ok[j] = 0;
        if (ok && two[j] < post[j] && two[j] < exact_j) {
            long hits_two = 0, hits_post = 0;
            for (size_t i = 0; ok && i < SEARCHES; i++) {
                long h2 = cal_hits(g, c, j, i, KNN_PLAN_TWO_HOP), hp = cal_hits(g, c, j, i, KNN_PLAN_POST);
                if (h2 < 0 || hp < 0) ok = 0;
                hits_two += h2;
                hits_post += hp;
            }
            two_ok[j] = ok && hits_two + 1 >= hits_post;
        }
    }
    if (ok) {
        g->ns_scan = scan_ns_med > 0 ? scan_ns_med : 1e-3;
        for (int j = 0; j < KNN_CAL_POINTS; j++) {
            g->ns_two_hop[j] = two[j] > 0 ? two[j] : 1e-3;
            g->ns_post[j] = post[j] > 0 ? post[j] : 1e-3;
            g->two_hop_ok[j] = two_ok[j];
        }
        double nd = median_ns(dist_n, SEARCHES);
        g->ns_distance = nd > 0 ? g->ns_post[0] / nd : g->ns_scan;
        atomic_store(&g->cal_rows, g->win.n);
        atomic_store(&g->calibrated, 1);
        if (atomic_load(&g->buckets) == NULL) atomic_store(&g->buckets_tried, 0); /* costs changed: try again */
    }
    pthread_mutex_unlock(&g->cal_lock);
}

/* Builds the bucket graphs once the costs are known (under cal_lock). */
static void ensure_buckets(knn_graph *g) {
    if (atomic_load(&g->buckets_tried) || !atomic_load(&g->calibrated)) return;
    pthread_mutex_lock(&g->cal_lock);
    if (!atomic_load(&g->buckets_tried)) {
        atomic_store(&g->buckets, knn_buckets_build(g, 0));
        atomic_store(&g->buckets_tried, 1);
    }
    pthread_mutex_unlock(&g->cal_lock);
}

size_t knn_graph_force_buckets(knn_graph *g, size_t levels) {
    pthread_rwlock_wrlock(&g->rw);
    knn_buckets_free(atomic_exchange(&g->buckets, NULL));
    knn_search_ctx *c = g->win.n ? ctx_acquire(g) : NULL;
    size_t built = 0;
    if (c) {
        calibrate(g, c);
        ctx_release(g, c);
        pthread_mutex_lock(&g->cal_lock);
        knn_buckets *b = atomic_load(&g->calibrated) ? knn_buckets_build(g, levels) : NULL;
        atomic_store(&g->buckets, b);
        atomic_store(&g->buckets_tried, 1);
        built = b ? b->n_levels : 0;
        pthread_mutex_unlock(&g->cal_lock);
    }
    pthread_rwlock_unlock(&g->rw);
    return built;
}

void knn_graph_window_prepare(knn_graph *g) {
    if (g->win.n == 0) return;
    knn_search_ctx *c = ctx_acquire(g);
    if (c == NULL) return; /* the first window query calibrates instead */
    calibrate(g, c);
    ensure_buckets(g);
    ctx_release(g, c);
}

/* A graph plan's calibrated cost at window fraction f (0 < f <= 1): log-linear in log2 f between the
 * calibration points, extended beyond the last one along its last segment. */
static double plan_cost(const double *ns, double f) {
    double x = -log2(f); /* >= 0 */
    int j = (int)x;
    if (j >= KNN_CAL_POINTS - 1) j = KNN_CAL_POINTS - 2;
    double a = log(ns[j]), b = log(ns[j + 1]);
    return exp(a + (b - a) * (x - j));
}

/* Whether the calibration found the two-hop beam as accurate as the postfilter around fraction f. */
static int two_hop_allowed(const knn_graph *g, double f) {
    double x = -log2(f);
    int j = (int)x;
    if (j >= KNN_CAL_POINTS - 1) return g->two_hop_ok[KNN_CAL_POINTS - 1];
    return g->two_hop_ok[j] && (x == j || g->two_hop_ok[j + 1]);
}

/* The cheapest plan for a window of w rows (a fraction f of the live rows) at this ef, by the calibrated
 * costs (read under cal_lock: a recalibration may be rewriting them); the postfilter beam is costed at
 * fraction f_post (f, or the query's lower local selectivity), the two-hop beam only if allow_two. The two-hop beam is offered only
 * where the calibration found it as accurate as the postfilter, and only when the window holds at least
 * 4/m0 of the rows: below that, two-hop bridges no longer keep the in-window subgraph navigable. The
 * in-search postfilter stays accurate at any size; its cost grows as 1/f, which the calibration sees. */
static int choose_plan(knn_graph *g, size_t w, double f, double f_post, int allow_two, size_t ef, double lo,
                       double hi, int *bucket_level) {
    if (!atomic_load(&g->calibrated)) return KNN_PLAN_EXACT;
    double scale = (double)ef / (double)g->p.ef;
    pthread_mutex_lock(&g->cal_lock);
    double exact_cost = (double)w * g->ns_scan;
    double post_cost = plan_cost(g->ns_post, f_post) * scale;
    int two_ok = allow_two && f >= 4.0 / (double)g->m0 && two_hop_allowed(g, f);
    double two_cost = two_ok ? plan_cost(g->ns_two_hop, f) * scale : INFINITY;
    double bucket_cost = bucket_level ? knn_buckets_cost(g, atomic_load(&g->buckets), lo, hi, ef, 0, bucket_level)
                                      : INFINITY;
    pthread_mutex_unlock(&g->cal_lock);
    int chosen = KNN_PLAN_EXACT;
    double best = exact_cost;
    if (post_cost < best && post_cost <= two_cost) chosen = KNN_PLAN_POST, best = post_cost;
    if (two_cost < best) chosen = KNN_PLAN_TWO_HOP, best = two_cost;
    if (bucket_cost < best) chosen = KNN_PLAN_BUCKET;
    return chosen;
}

/* A window holding nearly every row (f >= NEAR_WHOLE): the plain search for a few more than k / f rows,
 * filtered, usually holds k in-window rows, as a doubling postfilter's first round does, without the
 * label test per candidate of the in-search postfilter (a cache miss each: measured 12% slower on
 * MiniLM, whose labels miss a few rows). Returns 1 when it answered (or failed, in *st), 0 to plan. */
#define NEAR_WHOLE 0.8
static int near_whole(knn_graph *g, knn_search_ctx *c, const float *q, size_t k, size_t ef, double lo, double hi,
                      double f, int64_t *out_ids, float *out_dists, size_t *found, knn_status *st) {
    enum { CAP = 256 };
    size_t kk = (size_t)ceil((double)k / f) + 2, nf = 0, m = 0;
    if (kk > CAP) return 0;
    int64_t ids[CAP];
    float d[CAP];
    knn_error err;
    if (plain_search(g, c, q, kk, ef > kk ? ef : kk, ids, d, &nf, &err) != KNN_OK) return 0;
    for (size_t j = 0; j < nf && m < k; j++) {
        uint32_t v;
        if (!knn_idmap_get(&g->map, ids[j], &v) || !(g->labels[v] >= lo && g->labels[v] <= hi)) continue;
        out_ids[m] = ids[j];
        out_dists[m++] = d[j];
    }
    if (m < k) return 0;
    *found = k;
    *st = KNN_OK;
    return 1;
}

knn_status knn_graph_search_window_plan(knn_graph *g, const float *query, size_t k, size_t ef, double lo, double hi,
                                        int force, int64_t *out_ids, float *out_dists, size_t *found, int *plan,
                                        knn_error *err) {
    *found = 0;
    if (plan) *plan = KNN_PLAN_EXACT;
    if (k == 0) return knn_error_set(err, KNN_EINVAL, "k must be >= 1, got 0");
    if (isnan(lo) || isnan(hi)) return knn_error_set(err, KNN_EINVAL, "window bounds must not be NaN");
    knn_status s = KNN_OK;
    knn_search_ctx *c = NULL;
    pthread_rwlock_rdlock(&g->rw);
    if (lo > hi || g->count - g->n_deleted == 0) goto done; /* an empty window: no rows */
    c = ctx_acquire(g);
    if (c == NULL) {
        s = knn_error_set(err, KNN_ENOMEM, "out of memory for a search context");
        goto done;
    }
    const float *q;
    if ((s = prepare_query(g, c, query, &q, err)) != KNN_OK) goto done;
    size_t lo_pos = knn_graph_label_bound(g->win.labels, g->win.n, lo, 0);
    size_t hi_pos = knn_graph_label_bound(g->win.labels, g->win.n, hi, 1);
    size_t w = hi_pos - lo_pos;
    for (size_t i = 0; i < g->win.n_delta; i++) {
        double l = g->labels[g->win.delta[i]];
        w += l >= lo && l <= hi;
    }
    if (w == 0) goto done;
    calibrate(g, c); /* once per index (redone when it doubles): the first window query pays for it */
    ensure_buckets(g);
    if (w == g->count && g->n_deleted == 0 && force < 0) {
        /* The window holds every row: nothing to filter, no plan to choose. Exactly the unfiltered search
         * (no label test per candidate, no budget), so it never trails a postfilter here. */
        if (plan) *plan = KNN_PLAN_POST;
        s = plain_search(g, c, q, k, ef, out_ids, out_dists, found, err);
        goto done;
    }
    if (ef == 0) ef = g->p.ef;
    if (ef < k) ef = k;
    double live = (double)(g->count - g->n_deleted);
    double f = (double)w / live;
    if (f > 1) f = 1; /* the sorted list may still count rows deleted since its rebuild */
    if (force < 0 && f >= NEAR_WHOLE && near_whole(g, c, q, k, ef, lo, hi, f, out_ids, out_dists, found, &s)) {
        if (plan) *plan = KNN_PLAN_POST;
        goto done;
    }
    int chosen = force, level = -1;
    uint32_t ep = KNN_NO_NODE;
    float epd = 0;
    if (chosen == KNN_PLAN_BUCKET) { /* forced: the cheapest level, when there are buckets */
        knn_buckets_cost(g, atomic_load(&g->buckets), lo, hi, ef, 1, &level);
        if (level < 0) chosen = KNN_PLAN_EXACT;
    } else if (chosen != KNN_PLAN_EXACT && chosen != KNN_PLAN_TWO_HOP && chosen != KNN_PLAN_POST) {
        chosen = choose_plan(g, w, f, f, 1, ef, lo, hi, &level);
        if (chosen != KNN_PLAN_EXACT) {
            /* The calibration timed typical queries, whose neighbourhood holds about a fraction f of
             * in-window rows. Where the query's holds far fewer (a window away from the query: label-
             * correlated data, the adversarial set), the postfilter beam must walk everything nearer than
             * the window, and both beams enter the window from afar with the recall of a far query. Cost
             * the postfilter at the local fraction then, without the two-hop beam: a beam is kept only
             * when it still beats the exact scan. The descent is reused by the beam. */
            descend(g, q, &ep, &epd);
            double fl = local_fraction(g, lo, hi, ep);
            if (fl < 0.5 * f) chosen = choose_plan(g, w, f, fl, 0, ef, lo, hi, NULL); /* buckets: far too */
        }
    }
    if (chosen == KNN_PLAN_EXACT) {
        s = exact_window(g, q, k, lo, hi, lo_pos, hi_pos, out_ids, out_dists, found, 1, err);
        goto done;
    }
    if (plan) *plan = chosen;
    if (chosen == KNN_PLAN_BUCKET) {
        s = knn_buckets_search(g, atomic_load(&g->buckets), level, force == KNN_PLAN_BUCKET, q, k, ef, lo, hi, out_ids,
                               out_dists, found, err);
        if (s == KNN_OK && *found < k) { /* the window decides exactly (it may hold fewer than k rows) */
            if (plan) *plan = KNN_PLAN_FALLBACK;
            s = exact_window(g, q, k, lo, hi, lo_pos, hi_pos, out_ids, out_dists, found, 1, err);
        }
        goto done;
    }
    size_t ntop;
    /* A query may be far harder than the calibration's (a window far from the query makes the postfilter
     * beam walk much of the graph): it stops once it has spent what the exact scan of the window costs,
     * and the exact scan answers, so no query costs more than about twice the exact plan. */
    size_t budget = 0;
    if (chosen == KNN_PLAN_POST && force < 0 && atomic_load(&g->calibrated)) {
        pthread_mutex_lock(&g->cal_lock);
        double b = (double)w * g->ns_scan / g->ns_distance;
        pthread_mutex_unlock(&g->cal_lock);
        budget = b < 1.0 ? 1 : b > 1e15 ? 0 : (size_t)b;
    }
    if (!window_beam(g, c, q, chosen, lo, hi, lo_pos, hi_pos, ef, g->n_deleted == 0 && w == g->count, budget, ep,
                     epd, &ntop, NULL)) {
        s = knn_error_set(err, KNN_ENOMEM, "out of memory during search");
        goto done;
    }
    if (ntop < k || (budget && c->over)) { /* the window decides exactly (it may hold fewer than k rows) */
        if (plan) *plan = KNN_PLAN_FALLBACK;
        s = exact_window(g, q, k, lo, hi, lo_pos, hi_pos, out_ids, out_dists, found, 1, err);
        goto done;
    }
    qsort(c->top, ntop, sizeof *c->top, cmp_hitem_asc);
    for (size_t j = 0; j < k; j++) {
        out_ids[j] = g->ids[c->top[j].id];
        out_dists[j] = c->top[j].key;
    }
    *found = k;
done:
    if (c) ctx_release(g, c);
    pthread_rwlock_unlock(&g->rw);
    return s;
}

uint32_t knn_graph_label_tag(const knn_graph *g) { return g->label_tag; }

void knn_graph_set_label_tag(knn_graph *g, uint32_t tag) { g->label_tag = tag; }

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

void knn_graph_force_window_plan(knn_graph *g, int plan) {
    int ok = plan == KNN_PLAN_EXACT || plan == KNN_PLAN_TWO_HOP || plan == KNN_PLAN_POST || plan == KNN_PLAN_BUCKET;
    atomic_store(&g->forced_plan, ok ? plan : -1);
}
