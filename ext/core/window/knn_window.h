/* Window search over a graph index: the k nearest live rows whose label lies in [lo, hi].
 *
 * The window layer sits on the graph (graph/) and is the only part of the core that plans a filtered
 * search: per query, a calibrated cost model picks the exact scan of the label-sorted slice
 * (window_scan.c), the two-hop filtered beam or the in-search postfilter beam (graph/graph_filter.c),
 * or beams in the bucket graphs over label ranges (window_buckets.c). Each plan is handed a row
 * selector (select/knn_selector.h) whose estimated share is the window's exact row count. The
 * calibration and the plan choice are in window_cost.c, the per-query planner in window_plan.c. */
#ifndef KNN_WINDOW_H
#define KNN_WINDOW_H

#include "graph/knn_graph.h"

/* Bucket graphs (window_buckets.c): at most this many levels; memory projections use the row cost. */
#define KNN_BUCKET_LEVELS 4
#define KNN_BUCKET_M 16 /* most links per node in a bucket graph (layer 0 keeps 2x); the parent's m if lower */
/* Most bytes a row costs in one bucket level: links, id, label, level, flags, upper-link pointer and
 * share, the vector reference (memory projections use it; the build keeps the links within the graph's
 * own slot bytes). */
#define KNN_BUCKET_ROW_BYTES ((2 * KNN_BUCKET_M + 1) * 4 + 8 + 8 + 3 + 8 + 8 + 4)
/* Window plans (reported per query, and the values knn_graph_search_window_plan may force). */
enum {
    KNN_PLAN_EXACT = 0,    /* exact scan of the label-sorted window slice */
    KNN_PLAN_TWO_HOP = 1,  /* beam over in-window nodes, crossing out-of-window ones two hops at a time */
    KNN_PLAN_FALLBACK = 2, /* a beam found fewer than k rows: the exact scan decided (reported only) */
    KNN_PLAN_POST = 3,     /* plain beam over the whole graph admitting only in-window rows (in-search postfilter) */
    KNN_PLAN_BUCKET = 4,   /* postfilter beams in the label buckets covering the window (mid-size windows) */
    KNN_FORCE_BUCKET_PARTS = 5 /* a forcing value only: the bucket plan, each bucket's part planned by its cost
                                * (small parts scanned exactly) instead of every part a beam; reported as 4 */
};

/* Window search: the k nearest live rows whose label lies in [lo, hi] (inclusive; pass -inf / +inf for
 * an open side). A calibrated cost model picks, per query, the cheapest of the exact window scan, the
 * two-hop filtered beam and the in-search postfilter; either way k rows come back whenever k rows are in
 * the window. *plan (may be NULL) reports the choice as a KNN_PLAN_* code. */
knn_status knn_graph_search_window(knn_graph *g, const float *query, size_t k, size_t ef, double lo, double hi,
                                   int64_t *out_ids, float *out_dists, size_t *found, int *plan, knn_error *err);
/* knn_graph_search_window with a re-rank depth for a coded graph (see knn_graph_search_rerank). */
knn_status knn_graph_search_window_rerank(knn_graph *g, const float *query, size_t k, size_t ef, size_t rerank,
                                          double lo, double hi, int64_t *out_ids, float *out_dists, size_t *found,
                                          int *plan, knn_error *err);
/* As knn_graph_search_window_rerank with the plan forced (KNN_PLAN_EXACT, _TWO_HOP or _POST; for
 * benchmarks and tests); -1 lets the cost model choose. */
knn_status knn_graph_search_window_plan(knn_graph *g, const float *query, size_t k, size_t ef, size_t rerank,
                                        double lo, double hi, int force, int64_t *out_ids, float *out_dists,
                                        size_t *found, int *plan, knn_error *err);

/* Calibrates the window cost model and builds the bucket graphs where they pay, if not done yet for
 * this size: after a build, an optimize or a load, so the first window query does not pay for them
 * (without it, that query does). Takes the read lock. */
void knn_window_prepare(knn_graph *g);

/* Introspection and knobs (their public, cffi face; knn_api.h gathers it). */
/* cffi-begin */
/* Bucket levels of a window-capable graph (built with its first window query): returns how many, with
 * the rows per bucket of the first cap levels in rows[] and their calibrated ns per beam at in-bucket
 * fractions 1/2 and 1/4 in ns_beam[2l], ns_beam[2l+1] (ns_beam may be NULL). Introspection. */
size_t knn_graph_bucket_info(knn_graph *index, size_t *rows, double *ns_beam, size_t cap);
/* Rebuilds the bucket graphs with exactly `levels` levels (0: the levels the cost model picks), whatever
 * they cost; returns the levels built. A testing and benchmarking knob. */
size_t knn_graph_force_buckets(knn_graph *index, size_t levels);
/* Sets the plan window queries use: -1 the cost model (default), 0 always exact, 1 always the two-hop
 * beam, 3 always the in-search postfilter, 4 the bucket graphs when built (other values: the cost model).
 * Filtered searches (filter/knn_filter.h) follow it too: 0 the exact scan, 3 the postfilter beam with no
 * budget. A benchmarking and testing knob; kept per index. */
void knn_graph_force_window_plan(knn_graph *index, int plan);
/* cffi-end */

#endif
