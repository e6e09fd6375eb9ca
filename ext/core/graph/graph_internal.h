/* Internal layout of knn_graph, shared by knn_graph.c (build/search) and knn_graph_io.c (bytes). */
#ifndef KNN_GRAPH_INTERNAL_H
#define KNN_GRAPH_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

#include "kernels/knn_kernels.h"
#include "quant/knn_codes.h"
#include "graph/knn_graph.h"
#include "base/knn_idmap.h"

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
    float *vecs;       /* n x dim, 64-byte aligned */
    uint32_t *pos;     /* pos_n: node -> position in the sorted arrays, UINT32_MAX when absent */
    size_t pos_n;
    uint32_t *delta;
    size_t n_delta, cap_delta;
    knn_codes codes;   /* 8-bit codes of vecs for the screened exact scan (codes.codes NULL: plain scan) */
    uint64_t gen;      /* rebuilds so far: sorted positions are stable while it stays */
} knn_window;

/* Monotonic clock in ns (calibrations and build budgets). */
static inline double knn_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

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
} knn_search_ctx;

/* Bucket graphs for mid-size windows (knn_graph_buckets.c): per level, the label-sorted rows cut into
 * buckets of `rows` consecutive rows, each with its own graph over the parent's vectors. */
#define KNN_BUCKET_LEVELS 4
#define KNN_BUCKET_M 16 /* most links per node in a bucket graph (layer 0 keeps 2x); the parent's m if lower */
/* Most bytes a row costs in one bucket level: links, id, label, level, flags, upper-link pointer and
 * share, the vector reference (memory projections use it; the build keeps the links within the graph's
 * own slot bytes). */
#define KNN_BUCKET_ROW_BYTES ((2 * KNN_BUCKET_M + 1) * 4 + 8 + 8 + 3 + 8 + 8 + 4)
typedef struct knn_bucket_level {
    size_t rows;           /* rows per bucket (the last one may hold fewer) */
    size_t nb;             /* buckets */
    struct knn_graph **g;  /* nb graphs; node i of bucket b is snapshot position b * rows + i */
    double *first, *last;  /* nb: label range of each bucket */
    double ns_beam[2];     /* calibrated ns per beam search at in-bucket fractions 1/2 and 1/4 */
    int accurate;          /* its beams found the exact neighbours as well as the whole graph's: offered */
} knn_bucket_level;

typedef struct knn_buckets {
    size_t n_levels;
    knn_bucket_level lv[KNN_BUCKET_LEVELS];
    uint32_t *pos;         /* built_count: node -> snapshot position, UINT32_MAX when not in it */
    size_t built_count;    /* nodes from here on came later: a bucket search scans them exactly */
    uint64_t gen;          /* the sorted list's generation they were cut from */
    size_t bytes;
} knn_buckets;

struct knn_graph {
    size_t dim;
    knn_metric metric;
    knn_graph_params p;
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
    _Atomic(knn_buckets *) buckets; /* built with the calibration (under cal_lock); dropped under rw */
    _Atomic int buckets_tried; /* a build ran since the buckets were last dropped (set under cal_lock) */
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
    if (g->vec_src) return (float *)(g->vec_src->data0 + (size_t)g->vec_nodes[i] * g->vec_src->slot_bytes);
    return (float *)(g->data0 + (size_t)i * g->slot_bytes);
}

static inline uint32_t *knn_graph_links(const knn_graph *g, uint32_t i, int level) {
    if (level == 0) return (uint32_t *)(g->data0 + (size_t)i * g->slot_bytes + g->links_offset);
    return g->upper[i] + (size_t)(level - 1) * (g->p.m + 1);
}

/* Allocates an empty graph shell with these settings (shared by create and load). */
knn_status knn_graph_alloc(size_t dim, knn_metric metric, const knn_graph_params *p, knn_graph **out,
                           knn_error *err);
/* Rebuilds the label-sorted node list (after a load). */
void knn_graph_window_rebuild(knn_graph *g);
/* Calibrates the window cost model and builds the bucket graphs where they pay, if not done yet for
 * this size (after a build or a load, so the first window query does not pay for them). */
void knn_graph_window_prepare(knn_graph *g);
/* Ensures room for `need` nodes. */
knn_status knn_graph_reserve(knn_graph *g, size_t need, knn_error *err);

/* ---- shared with knn_graph_buckets.c ---- */
/* An empty graph over n of src's nodes (nodes[i] becomes node i, with src's id and label; nodes is
 * taken over), linked with params p on `threads` threads. Keeps no vectors of its own. */
knn_status knn_graph_view_build(const knn_graph *src, uint32_t *nodes, size_t n, const knn_graph_params *p,
                                size_t threads, knn_graph **out, knn_error *err);
knn_search_ctx *knn_graph_ctx_acquire(knn_graph *g);
void knn_graph_ctx_release(knn_graph *g, knn_search_ctx *c);
/* The in-search postfilter beam (descent, then layer 0 admitting only live nodes labelled in [lo, hi]);
 * leaves up to ef nodes in c->top (a max-heap by distance). Returns 0 when out of memory, 2 (no beam
 * run) when the in-window share around the descent's landing node is below min_local (the window lies
 * away from the query), else 1. */
int knn_graph_post_beam(const knn_graph *g, knn_search_ctx *c, const float *q, double lo, double hi, size_t ef,
                        double min_local, size_t *ntop);
/* First position with label >= x (strict = 0) or > x (strict = 1) in an ascending array of n. */
size_t knn_graph_label_bound(const double *a, size_t n, double x, int strict);
/* The exact plan: top k of sorted positions [s, e) in [lo, hi], plus the delta when with_delta. */
knn_status knn_graph_window_exact(const knn_graph *g, const float *q, size_t k, double lo, double hi, size_t s,
                                  size_t e, int64_t *out_ids, float *out_dists, size_t *found, int with_delta,
                                  knn_error *err);
/* Distance from q (prepared: unit-length under cosine) to node i, in the graph's metric. */
float knn_graph_node_dist(const knn_graph *g, const float *q, uint32_t i);
/* Buckets (knn_graph_buckets.c). */
void knn_buckets_free(knn_buckets *b);
/* Builds the levels the calibrated costs say pay (under cal_lock, with the read lock held), or exactly
 * forced_levels levels when that is not 0 (tests, benchmarks); NULL when none does or memory is short. */
knn_buckets *knn_buckets_build(knn_graph *g, size_t forced_levels);
/* Cheapest bucket plan for the window [lo, hi]: its estimated ns (INFINITY when none) and level; only
 * levels the calibration found accurate unless any. */
double knn_buckets_cost(const knn_graph *g, const knn_buckets *b, double lo, double hi, size_t ef, int any,
                        int *level);
/* The k nearest live rows in [lo, hi] through level `level`'s buckets (each part by a beam, or by an
 * exact pass where that is cheaper unless all_beams) plus the rows added after the build (scanned
 * exactly); *found may fall short of k, and is 0 when a part lies away from the query (the caller then
 * scans the window exactly). */
knn_status knn_buckets_search(knn_graph *g, const knn_buckets *b, int level, int all_beams, const float *q, size_t k,
                              size_t ef, double lo, double hi, int64_t *out_ids, float *out_dists, size_t *found,
                              knn_error *err);
/* Marks a deleted node in every level (under the write lock). */
void knn_buckets_forget(knn_buckets *b, uint32_t node);

#endif
