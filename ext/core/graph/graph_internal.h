/* Internal layout of knn_graph and the functions its files share (graph_store.c, graph_search.c,
 * graph_filter.c, graph_build.c, graph_maintain.c, graph_labels.c, graph_io.c), plus what the window
 * layer (window/) reads of it. Nothing here calls into window/. */
#ifndef KNN_GRAPH_INTERNAL_H
#define KNN_GRAPH_INTERNAL_H

#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <stdatomic.h>
#include <time.h>

#include "attrs/knn_attrs.h"
#include "kernels/knn_kernels.h"
#include "quant/knn_codes.h"
#include "quant/knn_sq.h"
#include "graph/knn_graph.h"
#include "select/knn_selector.h"
#include "base/knn_clock.h"
#include "base/knn_idmap.h"
#include "base/knn_mapped.h"

#define KNN_NO_NODE UINT32_MAX
#define KNN_MAX_LEVEL 31
#define KNN_VISITED_POOL 64
#define KNN_CAL_POINTS 6 /* window fractions 2^0 .. 2^-5 timed by the window cost model */

/* Window support: live labelled nodes as of the last rebuild, sorted by label, with their vectors and
 * ids copied in that order so an exact window scan reads one contiguous slice (as Engels et al. permute
 * points by label); plus the nodes labelled since (the delta, scanned linearly and merged once it grows
 * past ~sqrt(n)). Deleting a sorted node sets its filter label to NaN, which no window matches. */
typedef struct knn_window {
    size_t n;
    double *labels;    /* n, ascending (binary search) */
    double *filter;    /* n, labels again, NaN once the node is deleted (scan filter) */
    uint32_t *nodes;   /* n */
    int64_t *ids;      /* n */
    float *vecs;       /* n x dim, 64-byte aligned (a coded graph's in vmap, off the heap) */
    knn_mapped vmap;   /* coded graphs: the file mapping vecs lives in (vmap.p NULL otherwise) */
    uint32_t *pos;     /* pos_n: node -> position in the sorted arrays, UINT32_MAX when absent */
    size_t pos_n;
    uint32_t *delta;
    size_t n_delta, cap_delta;
    knn_codes codes;   /* 8-bit codes of vecs for the screened exact scan (codes.codes NULL: plain scan) */
    uint64_t gen;      /* rebuilds so far: sorted positions are stable while it stays */
} knn_window;

/* A (distance, node) pair of the search heaps. */
typedef struct knn_hitem {
    float key;
    uint32_t id;
} knn_hitem;

/* Per-search scratch: visited marks by epoch (no clearing between searches), two heaps, query copy. */
typedef struct knn_search_ctx {
    uint16_t *marks;
    size_t marks_cap;
    uint16_t epoch;
    struct knn_hitem *cand, *top;
    size_t cand_cap, top_cap;
    float *qbuf;
    size_t budget; /* most distances a layer search may compute (0: no limit); window plans only */
    int over;      /* set when a search stopped at the budget */
    /* Coded graphs (graph_quant.c): searches score by the codes (coded = 1, the default a context is
     * handed out with on such a graph; builds clear it and link by float distances), with the query
     * prepared once for the codes (cq, for the query at coded_q; NULL: none yet), and re-rank the best
     * `rerank` rows of a beam (0: all of them) with float distances. */
    int coded;
    const float *coded_q;
    knn_sq_query cq;
    size_t rerank;
    struct knn_ritem *ritems; /* re-rank scratch */
    size_t ritems_cap;
} knn_search_ctx;

/* A structure the window layer builds over a graph's nodes (its bucket graphs, window/window_buckets.h)
 * and that must follow them. The graph calls these when a node is tombstoned, when its nodes are
 * renumbered or freed, when rows were added, and to count memory; it knows nothing else of it, so the
 * dependency points one way (window -> graph). */
struct knn_buckets;
typedef struct knn_graph_overlay_ops {
    void (*free)(struct knn_buckets *b);
    void (*forget)(struct knn_buckets *b, uint32_t node);      /* node tombstoned (write lock held) */
    int (*stale)(const struct knn_buckets *b, size_t count);   /* too many rows came after it was built */
    size_t (*bytes)(const struct knn_buckets *b);
} knn_graph_overlay_ops;

struct knn_graph {
    size_t dim;
    knn_metric metric;
    knn_graph_params p;   /* p.ef: the width the cost models were calibrated at */
    _Atomic size_t tuned_ef; /* the default search width when set (knn_index_tune), else p.ef; 0: not set */
    size_t m0;            /* layer-0 link slots (2m) */
    double level_mult;    /* 1/ln(m) */
    const knn_kernels *kern;
    size_t slot_bytes;    /* level-0 slot: vector, then count and m0 links; multiple of 64 */
    size_t links_offset;  /* byte offset of the count word in a slot */
    uint8_t *data0;       /* capacity slots, 64-byte aligned */
    uint32_t **upper;     /* per node: levels 1..L, each [count | m links]; NULL when level 0 */
    uint8_t *levels;
    int64_t *ids;
    uint8_t *deleted;
    _Atomic unsigned char *locks; /* per-node spinlocks guarding link lists during parallel build */
    size_t count;         /* nodes (live and deleted) */
    size_t capacity;
    size_t n_deleted;
    knn_idmap map;        /* id -> live node */
    uint32_t entry;
    int max_level;
    uint64_t inserted;    /* nodes ever inserted: the layer draw of node number s uses (seed, s) */
    double link_ns;       /* wall time spent linking the graph's current nodes (the bucket build budget) */
    double *labels;       /* per node; NaN when the row has no label */
    uint32_t label_tag;   /* what the labels mean, opaque to the core (the SQL layer's label type) */
    knn_attrs attrs;      /* attribute columns by node number (filters); attrs.rows == count once a column exists */
    knn_window win;
    /* Cost model, calibrated at the end of a build or load (else on the first window search) and again
     * whenever the sorted rows have doubled since (under cal_lock, published by `calibrated`):
     * ns per row of the exact window scan, and ns per search of each graph plan at the default ef on
     * windows holding 2^-j of the labelled rows, j = 0 .. KNN_CAL_POINTS-1, and whether the two-hop
     * beam was as accurate as the in-search postfilter there. */
    _Atomic int calibrated;
    double ns_scan;
    double ns_two_hop[KNN_CAL_POINTS], ns_post[KNN_CAL_POINTS];
    double ns_distance; /* ns per distance the postfilter beam computes (plain search at the default ef) */
    unsigned char two_hop_ok[KNN_CAL_POINTS]; /* the two-hop beam matched the postfilter's recall there */
    _Atomic size_t cal_rows; /* sorted rows at the last calibration; redone once the index has doubled */
    pthread_mutex_t cal_lock;
    _Atomic int forced_plan; /* -1: cost model; else a KNN_PLAN_* code (benchmark and test knob) */
    _Atomic(struct knn_buckets *) buckets; /* built with the calibration (under cal_lock); dropped under rw */
    const knn_graph_overlay_ops *buckets_ops; /* set by the window layer with the first buckets it builds */
    _Atomic int buckets_tried; /* a build ran since the buckets were last dropped (set under cal_lock) */
    /* Coded storage (quantization 'sq8' / 'sq4', graph_quant.c): the level-0 slots hold links only, each
     * row's codes sit in `codes` (then, under l2, the decoded row's squared norm as a float), and the float
     * rows live in an unlinked file mapping (fvecs, node order, unit-length under cosine), read to build,
     * to re-rank and by exact scans. A restore brings codes and links; the float rows come afterwards
     * (knn_graph_restore_vectors): until then `missing` marks the nodes without theirs (decoded codes
     * stand in) and searches are refused while a live one lacks it. */
    unsigned qbits;       /* 0: float rows in the slots; 8 or 4 */
    knn_sq sq;            /* ranges: sq.lo NULL until the first batch trains them */
    uint8_t *codes;       /* capacity x code_stride: a row's codes, its decoding error, under l2 its decoded norm^2 */
    size_t code_stride;
    float err_cut;        /* rows decoding worse than this (twice the worst trained row) rank by float rows */
    knn_mapped fvecs;
    char *vectors_dir;
    uint8_t *missing;     /* capacity flags, NULL when no row is missing */
    size_t n_missing;     /* live nodes without their float row */
    /* A bucket graph keeps no vectors: node i's vector is vec_src's node vec_nodes[i]. */
    const struct knn_graph *vec_src;
    uint32_t *vec_nodes;
    pthread_rwlock_t rw;
    pthread_mutex_t entry_lock;
    pthread_mutex_t pool_lock;
    knn_search_ctx *pool[KNN_VISITED_POOL];
    size_t pool_n;
};

static inline float *knn_graph_vec(const knn_graph *g, uint32_t i) {
    if (g->vec_src) {
        i = g->vec_nodes[i];
        g = g->vec_src;
    }
    if (g->qbits) return (float *)g->fvecs.p + (size_t)i * g->dim;
    return (float *)(g->data0 + (size_t)i * g->slot_bytes);
}

/* The graph whose rows a graph reads (a bucket graph's parent, else the graph itself). */
static inline const knn_graph *knn_graph_store(const knn_graph *g) { return g->vec_src ? g->vec_src : g; }

/* Node i's codes (coded graphs). */
static inline const uint8_t *knn_graph_codes(const knn_graph *g, uint32_t i) {
    if (g->vec_src) {
        i = g->vec_nodes[i];
        g = g->vec_src;
    }
    return g->codes + (size_t)i * g->code_stride;
}

static inline uint32_t *knn_graph_links(const knn_graph *g, uint32_t i, int level) {
    if (level == 0) return (uint32_t *)(g->data0 + (size_t)i * g->slot_bytes + g->links_offset);
    return g->upper[i] + (size_t)(level - 1) * (g->p.m + 1);
}

/* ---- small inline helpers shared by the graph's files ---------------------------------------- */

static inline void knn_node_lock(const knn_graph *g, uint32_t i) {
    while (atomic_exchange_explicit(&g->locks[i], 1, memory_order_acquire)) sched_yield();
}

static inline void knn_node_unlock(const knn_graph *g, uint32_t i) {
    atomic_store_explicit(&g->locks[i], 0, memory_order_release);
}

/* Distance between two stored-form vectors in the graph's metric (cosine rows are unit-length). */
static inline float knn_vdist(const knn_graph *g, const float *a, const float *b) {
    float v;
    if (g->metric == KNN_METRIC_L2) {
        g->kern->l2sq_rows(a, b, 1, g->dim, &v);
        return v;
    }
    g->kern->dot_rows(a, b, 1, g->dim, &v);
    return g->metric == KNN_METRIC_COSINE ? 1.0f - v : -v;
}

/* Distances from q to n (<= 513) nodes in one kernel call: amortises dispatch and interleaves four rows. */
static inline void knn_vdists(const knn_graph *g, const float *q, const uint32_t *nodes, size_t n, float *out) {
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

/* Code distances from the query q (prepared: unit-length under cosine) to n nodes, through the context's
 * prepared query (graph_quant.c). */
void knn_graph_code_dists(const knn_graph *g, knn_search_ctx *c, const float *q, const uint32_t *nodes, size_t n,
                          float *out);

/* Distances a search ranks by: code distances on a coded search, else float ones. */
static inline void knn_graph_dists(const knn_graph *g, knn_search_ctx *c, const float *q, const uint32_t *nodes,
                                   size_t n, float *out) {
    if (c && c->coded) {
        knn_graph_code_dists(g, c, q, nodes, n, out);
    } else {
        knn_vdists(g, q, nodes, n, out);
    }
}

/* Both search heaps are max-heaps of knn_hitem (candidates store -distance). Returns 0 when out of memory. */
static inline int knn_heap_push(knn_hitem **a, size_t *n, size_t *cap, float key, uint32_t id) {
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

static inline void knn_heap_pop(knn_hitem *h, size_t *n) {
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

/* A fresh visited epoch (marks are cleared only when the 16-bit epoch wraps). */
static inline void knn_ctx_new_epoch(knn_search_ctx *c) {
    if (++c->epoch == 0) {
        memset(c->marks, 0, c->marks_cap * sizeof *c->marks);
        c->epoch = 1;
    }
}

/* qsort order of knn_hitem: ascending distance, then node. */
int knn_hitem_cmp(const void *a, const void *b);

/* ---- store (graph_store.c) ---------------------------------------------------------------------- */

/* Tombstones a live node (write lock held): counts, the sorted copy, the buckets, a missing float row. */
void knn_graph_tombstone(knn_graph *g, uint32_t node);

/* Allocates an empty graph shell with these settings (shared by create, load and optimize). */
knn_status knn_graph_alloc(size_t dim, knn_metric metric, const knn_graph_params *p, knn_graph **out,
                           knn_error *err);
/* Memory for arrays read at random by searches (level-0 slots, code rows): 64-byte aligned, and from
 * 4 MiB on 2 MiB-aligned with transparent huge pages asked for. Free with free(). */
void *knn_graph_big_alloc(size_t bytes);
/* Ensures room for `need` nodes. */
knn_status knn_graph_reserve(knn_graph *g, size_t need, knn_error *err);
/* Frees every per-node array, the label-sorted copy and the buckets (the shell stays). */
void knn_graph_free_nodes(knn_graph *g);
/* Search contexts from the graph's pool (NULL when out of memory). */
knn_search_ctx *knn_graph_ctx_acquire(knn_graph *g);
void knn_graph_ctx_release(knn_graph *g, knn_search_ctx *c);
/* The buckets overlay: dropped (built again later), told of a tombstone, dropped when stale. */
void knn_graph_drop_buckets(knn_graph *g);
void knn_graph_buckets_forget(knn_graph *g, uint32_t node);
void knn_graph_drop_stale_buckets(knn_graph *g);

/* ---- layer search (graph_search.c) -------------------------------------------------------------- */

/* lock_except: KNN_LOCK_NONE reads links without locking (queries: writers are excluded by the rwlock);
 * during a parallel build, the node being inserted, whose lock its inserter already holds. */
#define KNN_LOCK_NONE (-1)
/* Greedy walk on one upper layer: moves to the nearest neighbour until none is nearer (distances as c ranks
 * them; c may be NULL: float distances). */
uint32_t knn_graph_greedy(const knn_graph *g, knn_search_ctx *c, const float *q, uint32_t cur, float *curd, int level,
                          int64_t lock_except);
/* Beam search of width ef on one layer; leaves the best ef nodes `sel` admits (NULL: all) in c->top
 * (a max-heap by distance). Adds the distances computed to *visits when not NULL. Stops once c->budget
 * distances are spent (0: no limit), setting c->over. Returns 0 when out of memory. */
int knn_graph_search_layer(const knn_graph *g, knn_search_ctx *c, const float *q, uint32_t ep, float epd, size_t ef,
                           int level, int64_t lock_except, const knn_selector *sel, size_t *ntop, size_t *visits);
/* Greedy descent through the upper layers: the layer-0 entry point nearest the query and its distance (as c
 * ranks distances). */
void knn_graph_descend(const knn_graph *g, knn_search_ctx *c, const float *q, uint32_t *ep, float *epd);
/* Checks a query (finite; non-zero under cosine) and sets *q to the vector to search with: the query, or
 * its unit-length copy in c->qbuf under cosine (stored rows are unit-length). */
knn_status knn_graph_prepare_query(const knn_graph *g, knn_search_ctx *c, const float *query, const float **q,
                                   knn_error *err);
/* Starts a query (read lock held): a search context from the pool and the prepared query vector. On
 * failure *c may still hold a context for the caller to release. */
knn_status knn_graph_query_begin(knn_graph *g, const float *query, knn_search_ctx **c, const float **q,
                                 knn_error *err);
/* The unfiltered search (read lock held, live rows > 0, q prepared): descent, one beam of width ef over
 * layer 0 skipping tombstones only, an exact pass when the beam found fewer than min(k, live) rows. */
knn_status knn_graph_plain_search(const knn_graph *g, knn_search_ctx *c, const float *q, size_t k, size_t ef,
                                  int64_t *out_ids, float *out_dists, size_t *found, knn_error *err);
/* Distance from q (prepared: unit-length under cosine) to node i, in the graph's metric. */
float knn_graph_node_dist(const knn_graph *g, const float *q, uint32_t i);

/* ---- coded storage (graph_quant.c) -------------------------------------------------------------- */

/* Orders the ntop rows a beam left in c->top (a heap by distance) for output, nearest first, and returns
 * how many lead it in that order. A coded search re-ranks: the best max(c->rerank, want) by code distance
 * (all ntop when c->rerank is 0) get float distances from the float rows, sorted by (distance, id); the
 * rest are dropped. Otherwise all ntop, sorted by (distance, node). Returns SIZE_MAX when out of memory. */
size_t knn_graph_top_finish(const knn_graph *g, knn_search_ctx *c, const float *q, size_t ntop, size_t want);
/* Slot layout and code room of a coded graph with no rows yet (qbits 8 or 4). */
knn_status knn_graph_code_layout(knn_graph *g, unsigned qbits, const char *vectors_dir, knn_error *err);
/* Room for `cap` rows of codes and float rows (knn_graph_reserve calls it). */
knn_status knn_graph_code_reserve(knn_graph *g, size_t cap, knn_error *err);
/* Codes nodes [first, count), training the ranges on them first when none are set. */
knn_status knn_graph_encode_nodes(knn_graph *g, size_t first, knn_error *err);
/* Bytes of a code row that carry data (codes, error, l2 norm; the rest of code_stride pads). */
size_t knn_graph_code_row_bytes(const knn_graph *g);
/* Heap bytes of the codes and ranges; bytes of the float rows' file mappings. */
size_t knn_graph_code_bytes(const knn_graph *g);
size_t knn_graph_file_bytes(const knn_graph *g);
/* Frees the codes, ranges and float rows (knn_graph_free_nodes keeps the settings). */
void knn_graph_code_free(knn_graph *g);

/* ---- filtered beams (graph_filter.c) ------------------------------------------------------------ */

/* Two-hop filtered traversal of layer 0 (ACORN-1): the beam holds only rows `sel` admits, crossing
 * others as bridges. Seeds: ep's admitted neighbourhood plus `seeds`. Returns 0 when out of memory. */
int knn_graph_two_hop_layer(const knn_graph *g, knn_search_ctx *c, const float *q, uint32_t ep, const uint32_t *seeds,
                            size_t nseeds, size_t ef, uint32_t fanout, const knn_selector *sel, size_t *ntop,
                            size_t *visits);
/* Local selectivity near the query: the Laplace-smoothed share of admitted rows among node ep and its
 * layer-0 neighbours. */
double knn_graph_local_fraction(const knn_graph *g, const knn_selector *sel, uint32_t ep);
/* The in-search postfilter beam (descent, then layer 0 admitting only rows `sel` admits); leaves up to
 * ef nodes in c->top (a max-heap by distance). Returns 0 when out of memory, 2 (no beam run) when the
 * admitted share around the descent's landing node is below min_local (the rows lie away from the
 * query), else 1. */
int knn_graph_post_beam(const knn_graph *g, knn_search_ctx *c, const float *q, const knn_selector *sel, size_t ef,
                        double min_local, size_t *ntop);
/* The selector of live rows labelled in [lo, hi], over node numbers (share: the caller's estimate). */
knn_selector knn_graph_window_selector(const knn_graph *g, double lo, double hi, double share);

/* ---- insertion (graph_build.c) ------------------------------------------------------------------ */

/* Validates one vector (finite; non-zero under cosine) and writes its stored form to out (unit-length under
 * cosine); errors name the id and its row in the batch. */
knn_status knn_graph_prepare_vec(const knn_graph *g, const float *v, float *out, int64_t id, size_t row,
                                knn_error *err);

/* Adds rows with the write lock held (knn_graph_add without the lock). */
knn_status knn_graph_add_locked(knn_graph *g, const float *vecs, const int64_t *ids, const double *labels,
                                const knn_attr_batch *attrs, size_t n, size_t threads, knn_error *err);
/* An empty graph over n of src's nodes (nodes[i] becomes node i, with src's id and label; nodes is
 * taken over), linked with params p on `threads` threads. Keeps no vectors of its own. */
knn_status knn_graph_view_build(const knn_graph *src, uint32_t *nodes, size_t n, const knn_graph_params *p,
                                size_t threads, knn_graph **out, knn_error *err);

/* ---- label-sorted copy (graph_labels.c) --------------------------------------------------------- */

/* Frees a label-sorted copy. */
void knn_graph_labels_free(knn_window *w);
/* Rebuilds the sorted list from every live labelled node (after a load); on failure keeps the delta. */
void knn_graph_window_rebuild(knn_graph *g);
/* Records nodes [first, count) after an add: into the delta, merged once it outgrows ~sqrt(n). */
void knn_graph_labels_update(knn_graph *g, size_t first);
/* Marks a tombstoned node's sorted copy so exact window scans skip it. */
void knn_graph_labels_forget(knn_graph *g, uint32_t node);
/* First position with label >= x (strict = 0) or > x (strict = 1) in an ascending array of n. */
size_t knn_graph_label_bound(const double *a, size_t n, double x, int strict);

#endif
