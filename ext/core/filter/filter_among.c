/* Allow-list search over a graph index (knn_filter.h): the ids become a bitmap over node numbers (a
 * lookup in the index's id map each, a sequential read for rows inserted in id order), searched by the
 * per-query planner of filter_plan.c (its note says how it picks a plan). */
#include <stdlib.h>

#include "filter/filter_internal.h"

/* The allow-list of one call from ids. */
static knn_status rows_build(knn_graph *g, const int64_t *ids, size_t n_ids, knn_filter_rows *a, knn_error *err) {
    knn_status s = knn_filter_rows_alloc(g, a, err);
    if (s != KNN_OK) return s;
    enum { BLOCK = 256 };
    int64_t miss[BLOCK];
    uint32_t nodes[BLOCK];
    for (size_t b = 0; b < n_ids; b += BLOCK) {
        size_t n = n_ids - b < BLOCK ? n_ids - b : BLOCK, nm = 0, nn = 0;
        /* Rows inserted in id order sit at node id: one sequential read; the rest go through the map. */
        for (size_t i = b; i < b + n; i++) {
            const int64_t id = ids[i];
            if (id >= 0 && (uint64_t)id < g->count && g->ids[id] == id && !g->deleted[id]) {
                nodes[nn++] = (uint32_t)id;
            } else {
                miss[nm++] = id;
            }
        }
        knn_idmap_get_many(&g->map, miss, nm, nodes + nn);
        for (size_t j = 0; j < nn + nm; j++) {
            const uint32_t v = nodes[j];
            if (v == KNN_IDMAP_EMPTY || g->deleted[v]) continue;
            const uint64_t bit = (uint64_t)1 << (v % 64);
            a->bits[v / 64] |= bit; /* a repeated id sets it again */
        }
    }
    knn_filter_rows_finish(g, a);
    return KNN_OK;
}

knn_status knn_graph_search_among(knn_graph *g, const float *queries, size_t nq, size_t k, size_t ef, size_t rerank,
                                  const int64_t *ids, size_t n_ids, size_t threads, int64_t *out_ids, float *out_dists,
                                  size_t *found, int *plans, size_t *matched, knn_error *err) {
    if (k == 0) return knn_error_set(err, KNN_EINVAL, "k must be >= 1, got 0");
    knn_filter_clear_out(nq, k, out_ids, out_dists, found, plans);
    if (matched) *matched = 0;
    knn_filter_rows a = {0};
    pthread_rwlock_rdlock(&g->rw);
    knn_status s = rows_build(g, ids, n_ids, &a, err);
    if (s == KNN_OK) s = knn_filter_run(g, &a, queries, nq, k, ef, rerank, threads, out_ids, out_dists, found, plans, err);
    if (matched) *matched = a.m;
    pthread_rwlock_unlock(&g->rw);
    free(a.bits);
    return s;
}
