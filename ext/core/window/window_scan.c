/* The exact window plan: the k nearest rows of a window from the label-sorted copy.
 *
 * Slices large enough are scanned through their 8-bit codes first (exact/knn_screened.h: a provable lower
 * bound skips float rows that cannot make the top k, and the result is the plain scan's, ties included);
 * smaller ones by knn_scan_one. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include "window/window_internal.h"
#include "exact/knn_scan.h"
#include "base/knn_topk.h"
#include "exact/knn_screened.h"

/* Exact top-k over the window: one contiguous scan of the sorted slice [s, e) (deleted rows carry a NaN
 * filter label and are skipped), plus the in-window delta nodes. */
knn_status knn_window_exact(const knn_graph *g, const float *q, size_t k, double lo, double hi, size_t s, size_t e,
                            int64_t *out_ids, float *out_dists, size_t *found, int with_delta, knn_error *err) {
    knn_topk t;
    knn_status st = knn_topk_init(&t, k, err);
    /* stored rows are unit-length under cosine: scan by inner product, then shift by 1 */
    knn_metric scan_metric = g->metric == KNN_METRIC_COSINE ? KNN_METRIC_IP : g->metric;
    float shift = g->metric == KNN_METRIC_COSINE ? 1.0f : 0.0f;
    /* the sorted copy's filter labels are NaN once a row is deleted: one label part selects live rows */
    knn_selector sorted = knn_selector_all();
    knn_selector_label(&sorted, g->win.filter, lo, hi, 1.0);
    knn_rows rows = {g->win.vecs + s * g->dim, NULL, g->win.ids + s, 0, e - s, g->dim, &sorted, s};
    if (st == KNN_OK && e > s) {
        knn_screen_rows src = {&g->win.codes, g->win.vecs, g->win.ids, g->dim};
        st = g->win.codes.codes && (e - s) * g->dim >= KNN_SCREEN_MIN_VALUES
                 ? knn_scan_screened(g->kern, scan_metric, q, &src, &sorted, s, e, &t, err)
                 : knn_scan_one(g->kern, scan_metric, q, 1.0f, &rows, &t, err);
    }
    knn_selector nodes = knn_graph_window_selector(g, lo, hi, 1.0); /* the delta is in node numbers */
    for (size_t i = 0; st == KNN_OK && with_delta && i < g->win.n_delta; i++) {
        uint32_t v = g->win.delta[i];
        if (!knn_selector_admits(&nodes, v)) continue;
        st = knn_topk_offer(&t, knn_vdist(g, q, knn_graph_vec(g, v)) - shift, g->ids[v], err);
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
