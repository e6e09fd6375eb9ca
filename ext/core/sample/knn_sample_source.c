/* Rows of a named index as a sampling input: live ids and vectors, optionally only those whose label
 * lies in [lo, hi] (the window). Cosine indexes store unit-length rows, so squared L2 on them ranks
 * like cosine distance. */
#include <stdlib.h>
#include <string.h>

#include "exact/knn_flat.h"
#include "graph/graph_internal.h"
#include "sample/knn_sample_source.h"

static const float *graph_row(const void *ctx, size_t i) { return knn_graph_vec(ctx, (uint32_t)i); }

static knn_status graph_export(knn_graph *g, int windowed, double lo, double hi, int64_t **ids, float **vecs,
                               size_t *n, knn_error *err) {
    pthread_rwlock_rdlock(&g->rw);
    knn_selector live = knn_selector_all();
    knn_selector_live(&live, g->deleted, 1.0);
    if (windowed) knn_selector_label(&live, g->labels, lo, hi, 1.0);
    size_t rows = windowed && g->labels == NULL ? 0 : g->count;
    knn_status s = knn_selector_gather(&live, rows, g->dim, g->ids, graph_row, g, ids, vecs, n, err);
    pthread_rwlock_unlock(&g->rw);
    return s;
}

knn_status knn_entry_export_rows(knn_entry *e, int windowed, double lo, double hi, int64_t **ids, float **vecs,
                                 size_t *n, knn_error *err) {
    *ids = NULL;
    *vecs = NULL;
    *n = 0;
    if (e->kind == KNN_KIND_GRAPH) return graph_export(e->graph, windowed, lo, hi, ids, vecs, n, err);
    return knn_flat_export_rows(e->flat, windowed, lo, hi, ids, vecs, n, err);
}
