/* Predicate search over a graph index (knn_filter.h): the rows on which a filter over the index's own
 * attribute columns is TRUE, found column-at-a-time into a bitmap over node numbers (the columns are
 * stored by node, so no id lookups), optionally intersected with a label window, and searched by the
 * per-query planner of filter_plan.c. The bitmap costs one pass over the filter's columns per call
 * (about 0.1-0.3 ms for 400k rows and one column), paid once for a whole batch of queries. */
#include <stdio.h>
#include <stdlib.h>

#include "filter/filter_internal.h"

static knn_status rows_from_predicate(knn_graph *g, const knn_predicate *pred, int windowed, double lo, double hi,
                                      knn_filter_rows *a, knn_error *err) {
    knn_status s = knn_filter_rows_alloc(g, a, err);
    if (s != KNN_OK) return s;
    if (g->attrs.ncols == 0) {
        char cols[256];
        knn_predicate_columns(pred, cols, sizeof cols);
        return knn_error_set(err, KNN_EINVAL, "filter: the index has no attribute columns (the filter reads %s); give "
                             "them at insert, e.g. knn_index_insert(name, id, vec, {'%s': col}), or filter in SQL with "
                             "knn_among(...)", cols[0] ? cols : "none", cols[0] ? cols : "col");
    }
    if ((s = knn_predicate_eval(pred, &g->attrs, g->count, a->bits, err)) != KNN_OK) return s;
    if (windowed) {
        for (size_t w = 0; w < a->words; w++) {
            for (uint64_t b = a->bits[w]; b; b &= b - 1) {
                size_t v = w * 64 + (size_t)__builtin_ctzll(b);
                if (!(g->labels[v] >= lo && g->labels[v] <= hi)) a->bits[w] &= ~((uint64_t)1 << (v % 64));
            }
        }
    }
    knn_filter_rows_finish(g, a);
    return KNN_OK;
}

knn_status knn_graph_search_filter(knn_graph *g, const float *queries, size_t nq, size_t k, size_t ef, size_t rerank,
                                   const knn_predicate *pred, int windowed, double lo, double hi, size_t threads,
                                   int64_t *out_ids, float *out_dists, size_t *found, int *plans, size_t *matched,
                                   knn_error *err) {
    if (k == 0) return knn_error_set(err, KNN_EINVAL, "k must be >= 1, got 0");
    if (pred == NULL) return knn_error_set(err, KNN_EINVAL, "filter: no predicate given");
    knn_filter_clear_out(nq, k, out_ids, out_dists, found, plans);
    if (matched) *matched = 0;
    knn_filter_rows a = {0};
    pthread_rwlock_rdlock(&g->rw);
    knn_status s = rows_from_predicate(g, pred, windowed, lo, hi, &a, err);
    if (s == KNN_OK) s = knn_filter_run(g, &a, queries, nq, k, ef, rerank, threads, out_ids, out_dists, found, plans, err);
    if (matched) *matched = a.m;
    pthread_rwlock_unlock(&g->rw);
    free(a.bits);
    return s;
}
