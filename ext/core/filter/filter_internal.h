/* What the filtered searches of this folder share: the matching rows of one call as a bitmap over node
 * numbers (from an id list, filter_among.c, or a predicate over the attribute columns,
 * filter_predicate.c), and the per-query planner that searches them (filter_plan.c). */
#ifndef KNN_FILTER_INTERNAL_H
#define KNN_FILTER_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "filter/knn_filter.h"
#include "graph/graph_internal.h"

/* The matching rows of one call: bitmap over node numbers (live nodes only), its count, and the
 * selector built on it (tombstones and the bitmap). */
typedef struct knn_filter_rows {
    uint64_t *bits;
    size_t words, m;
    knn_selector sel;
} knn_filter_rows;

/* An all-clear bitmap for g's nodes (calloc'd), m = 0. */
knn_status knn_filter_rows_alloc(const knn_graph *g, knn_filter_rows *a, knn_error *err);
/* Clears deleted nodes out of the bitmap, counts it, and builds the selector. */
void knn_filter_rows_finish(const knn_graph *g, knn_filter_rows *a);

/* Answers nq queries against the rows (read lock held by the caller) on `threads` threads, each with
 * the per-query plan of knn_filter.h; outputs as knn_graph_search_among. */
knn_status knn_filter_run(knn_graph *g, const knn_filter_rows *a, const float *queries, size_t nq, size_t k,
                          size_t ef, size_t rerank, size_t threads, int64_t *out_ids, float *out_dists, size_t *found,
                          int *plans, knn_error *err);

/* Fills the outputs with "nothing found" (id -1, +inf, found 0, plan exact). */
void knn_filter_clear_out(size_t nq, size_t k, int64_t *out_ids, float *out_dists, size_t *found, int *plans);

#endif
