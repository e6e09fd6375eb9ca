/* What the window layer's files share (window_scan.c, window_buckets.c, window_cost.c, window_plan.c):
 * the bucket graphs over label ranges, the exact window scan, the plan beams and the cost model. */
#ifndef KNN_WINDOW_INTERNAL_H
#define KNN_WINDOW_INTERNAL_H

#include "graph/graph_internal.h"
#include "window/knn_window.h"

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

/* Builds the levels the calibrated costs say pay (under cal_lock, with the read lock held), or exactly
 * forced_levels levels when that is not 0 (tests, benchmarks); NULL when none does or memory is short.
 * Sets g->buckets_ops. */
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
                              size_t ef, size_t rerank, double lo, double hi, int64_t *out_ids, float *out_dists,
                              size_t *found, knn_error *err);

/* ---- exact window scan (window_scan.c) ---- */
/* The exact plan: top k of sorted positions [s, e) in [lo, hi], plus the delta when with_delta. */
knn_status knn_window_exact(const knn_graph *g, const float *q, size_t k, double lo, double hi, size_t s, size_t e,
                            int64_t *out_ids, float *out_dists, size_t *found, int with_delta, knn_error *err);

/* ---- plan beams and cost model (window_cost.c) ---- */
/* Runs one graph plan (KNN_PLAN_TWO_HOP or KNN_PLAN_POST) for the window [lo, hi] = sorted positions
 * [s, e) (all_live: the window holds every row and none is deleted); leaves the best ef in-window
 * nodes in c->top. The postfilter beam stops after `budget` distances (0: no limit), setting c->over.
 * ep / epd: the descent's result when the caller already ran it (ep != KNN_NO_NODE). Adds the distances
 * computed to *visits (may be NULL). Returns 0 when out of memory. */
int knn_window_beam(const knn_graph *g, knn_search_ctx *c, const float *q, int plan, const knn_selector *sel,
                    size_t s, size_t e, size_t ef, int all_live, size_t budget, uint32_t ep, float epd, size_t *ntop,
                    size_t *visits);
/* Measures what each plan costs on this index and machine, once per size (see window_cost.c). */
void knn_window_calibrate(knn_graph *g, knn_search_ctx *c);
/* Builds the bucket graphs once the costs are known (under cal_lock). */
void knn_window_ensure_buckets(knn_graph *g);
/* The cheapest plan for a window of sel's rows (w rows, estimated share f) at this ef, by the calibrated
 * costs; the postfilter beam is costed at share f_post, the two-hop beam only if allow_two; the bucket
 * plan only when bucket_level is not NULL (its level is written there). */
int knn_window_choose_plan(knn_graph *g, size_t w, double f, double f_post, int allow_two, size_t ef, double lo,
                           double hi, int *bucket_level);

#endif
