/* Rows of a named index as a sampling input: live ids and vectors, optionally only those whose label
 * lies in [lo, hi] (the window). Cosine indexes store unit-length rows, so squared L2 on them ranks
 * like cosine distance. */
#include <stdlib.h>
#include <string.h>

#include "exact/knn_flat.h"
#include "graph/graph_internal.h"
#include "sample/knn_sample_source.h"

static knn_status graph_export(knn_graph *g, int windowed, double lo, double hi, int64_t **ids, float **vecs,
                               size_t *n, knn_error *err) {
    pthread_rwlock_rdlock(&g->rw);
    size_t cap = g->count ? g->count : 1, m = 0;
    int64_t *oi = malloc(cap * sizeof *oi);
    float *ov = malloc(cap * g->dim * sizeof *ov);
    if (oi == NULL || ov == NULL) {
        pthread_rwlock_unlock(&g->rw);
        free(oi);
        free(ov);
        return knn_error_set(err, KNN_ENOMEM, "out of memory copying %zu rows", cap);
    }
    for (size_t i = 0; i < g->count; i++) {
        if (g->deleted[i]) continue;
        if (windowed && !(g->labels && g->labels[i] >= lo && g->labels[i] <= hi)) continue;
        oi[m] = g->ids[i];
        memcpy(ov + m * g->dim, knn_graph_vec(g, (uint32_t)i), g->dim * sizeof(float));
        m++;
    }
    pthread_rwlock_unlock(&g->rw);
    *ids = oi;
    *vecs = ov;
    *n = m;
    return KNN_OK;
}

knn_status knn_entry_export_rows(knn_entry *e, int windowed, double lo, double hi, int64_t **ids, float **vecs,
                                 size_t *n, knn_error *err) {
    *ids = NULL;
    *vecs = NULL;
    *n = 0;
    if (e->kind == KNN_KIND_GRAPH) return graph_export(e->graph, windowed, lo, hi, ids, vecs, n, err);
    return knn_flat_export_rows(e->flat, windowed, lo, hi, ids, vecs, n, err);
}
