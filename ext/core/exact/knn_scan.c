#include "exact/knn_scan.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Rows per distance block in knn_scan_one (stack buffers). */
#define SCAN_BLOCK 256

static inline int64_t row_id(const knn_rows *rows, size_t i) {
    return rows->ids ? rows->ids[i] : rows->id_base + (int64_t)i;
}

static knn_status bad_row(const knn_rows *rows, size_t i, knn_error *err) {
    return knn_error_set(err, KNN_EDATA,
                         "vector of row id %lld has a NaN or Inf component (or values too large for float32 "
                         "distances); fix or filter out that row",
                         (long long)row_id(rows, i));
}

static inline float cosine_from(float dot, float qn, float xn) {
    if (xn <= 0.0f) return 1.0f; /* zero data vector: no direction, treated as orthogonal */
    float c = dot / sqrtf(qn * xn);
    float dist = 1.0f - c;
    return dist < 0.0f ? 0.0f : dist;
}

knn_status knn_query_check(const float *q, size_t d, knn_metric metric, const char *what, float *norm2,
                           knn_error *err) {
    double acc = 0.0;
    for (size_t j = 0; j < d; j++) {
        if (!isfinite(q[j])) {
            return knn_error_set(err, KNN_EDATA, "%s has a NaN or Inf at position %zu; queries must be finite",
                                 what, j);
        }
        acc += (double)q[j] * q[j];
    }
    if (!isfinite((float)acc)) {
        return knn_error_set(err, KNN_EDATA, "%s has values too large for float32 distances", what);
    }
    if (metric == KNN_METRIC_COSINE && acc == 0.0) {
        return knn_error_set(err, KNN_EDATA,
                             "%s is the zero vector, which has no direction for metric 'cosine'; use a non-zero "
                             "query or metric 'l2'", what);
    }
    *norm2 = (float)acc;
    return KNN_OK;
}

float knn_distance(const knn_kernels *kern, knn_metric metric, const float *q, float q_norm2, const float *x,
                   size_t d) {
    float dist, dot, xn;
    switch (metric) {
    case KNN_METRIC_L2:
        kern->l2sq_rows(q, x, 1, d, &dist);
        return dist;
    case KNN_METRIC_COSINE:
        kern->dot_norm_rows(q, x, 1, d, &dot, &xn);
        return cosine_from(dot, q_norm2, xn);
    case KNN_METRIC_IP:
        kern->dot_rows(q, x, 1, d, &dot);
        return -dot;
    }
    return NAN;
}

knn_status knn_scan_one(const knn_kernels *kern, knn_metric metric, const float *q, float q_norm2,
                        const knn_rows *rows, knn_topk *out, knn_error *err) {
    float dist[SCAN_BLOCK], norm[SCAN_BLOCK];
    const size_t d = rows->d;
    for (size_t b = 0; b < rows->n; b += SCAN_BLOCK) {
        size_t m = rows->n - b < SCAN_BLOCK ? rows->n - b : SCAN_BLOCK;
        const float *X = rows->vecs + b * d;
        switch (metric) {
        case KNN_METRIC_L2:
            kern->l2sq_rows(q, X, m, d, dist);
            break;
        case KNN_METRIC_COSINE:
            if (rows->norm2) {
                kern->dot_rows(q, X, m, d, dist);
                memcpy(norm, rows->norm2 + b, m * sizeof *norm);
            } else {
                kern->dot_norm_rows(q, X, m, d, dist, norm);
            }
            /* Branch-free so the compiler vectorises the square roots and divisions. */
            for (size_t i = 0; i < m; i++) {
                float xn = norm[i];
                float c = 1.0f - dist[i] / sqrtf(q_norm2 * (xn > 0.0f ? xn : 1.0f));
                c = c < 0.0f ? 0.0f : c;
                dist[i] = xn > 0.0f ? c : (xn == 0.0f ? 1.0f : NAN);
            }
            break;
        case KNN_METRIC_IP:
            kern->dot_rows(q, X, m, d, dist);
            for (size_t i = 0; i < m; i++) dist[i] = -dist[i];
            break;
        }
        float bound = knn_topk_bound(out);
        const knn_selector *sel = rows->sel;
        const size_t row0 = rows->first_row + b;
        for (size_t i = 0; i < m; i++) {
            float v = dist[i];
            if (sel && !knn_selector_admits(sel, row0 + i)) continue;
            if (v < bound || v == bound) {
                if (!isfinite(v)) return bad_row(rows, b + i, err);
                knn_status s = knn_topk_insert(out, v, row_id(rows, b + i), err);
                if (s != KNN_OK) return s;
                bound = knn_topk_bound(out);
            } else if (!(v == v) || isinf(v)) {
                return bad_row(rows, b + i, err);
            }
        }
    }
    return KNN_OK;
}

void knn_scan_ws_free(knn_scan_ws *ws) {
    free(ws->pack);
    free(ws->norms);
    memset(ws, 0, sizeof *ws);
}

/* Rows per packed block: as many 16-row panels as fit in about 256 KiB (L2-resident). */
static size_t block_rows(size_t d) {
    size_t rows = (256u * 1024u) / (d * sizeof(float));
    rows = rows / KNN_PANEL_ROWS * KNN_PANEL_ROWS;
    if (rows < KNN_PANEL_ROWS) rows = KNN_PANEL_ROWS;
    if (rows > 1024) rows = 1024;
    return rows;
}

static knn_status ws_reserve(knn_scan_ws *ws, size_t rows, size_t d, knn_error *err) {
    if (ws->pack && ws->cap_rows >= rows && ws->cap_d == d) return KNN_OK;
    knn_scan_ws_free(ws);
    ws->pack = aligned_alloc(64, ((rows * d * sizeof(float)) + 63) / 64 * 64);
    ws->norms = malloc(rows * sizeof(float));
    if (ws->pack == NULL || ws->norms == NULL) {
        knn_scan_ws_free(ws);
        return knn_error_set(err, KNN_ENOMEM, "out of memory for a %zu x %zu scan block", rows, d);
    }
    ws->cap_rows = rows;
    ws->cap_d = d;
    return KNN_OK;
}

/* Packs m rows (m <= block) into panels; rows past m in the last panel are zero. */
static void pack_block(const float *X, size_t m, size_t d, float *pack) {
    size_t panels = (m + KNN_PANEL_ROWS - 1) / KNN_PANEL_ROWS;
    for (size_t p = 0; p < panels; p++) {
        float *dst = pack + p * KNN_PANEL_ROWS * d;
        size_t r0 = p * KNN_PANEL_ROWS;
        size_t rn = m - r0 < KNN_PANEL_ROWS ? m - r0 : KNN_PANEL_ROWS;
        if (rn < KNN_PANEL_ROWS) memset(dst, 0, KNN_PANEL_ROWS * d * sizeof(float));
        for (size_t r = 0; r < rn; r++) {
            const float *x = X + (r0 + r) * d;
            for (size_t j = 0; j < d; j++) dst[j * KNN_PANEL_ROWS + r] = x[j];
        }
    }
}

static void block_norms(const knn_kernels *kern, const float *X, size_t m, size_t d, float *norms) {
    for (size_t i = 0; i < m; i++) {
        float dot;
        kern->dot_norm_rows(X + i * d, X + i * d, 1, d, &dot, &norms[i]);
    }
}

knn_status knn_scan_many(const knn_kernels *kern, knn_metric metric, const float *Q, const float *q_norm2,
                         size_t nq, const knn_rows *rows, knn_topk *outs, knn_scan_ws *ws, knn_error *err) {
    const size_t d = rows->d;
    const size_t bsz = block_rows(d);
    knn_status s = ws_reserve(ws, bsz, d, err);
    if (s != KNN_OK) return s;
    float tile[KNN_TILE_QUERIES * KNN_PANEL_ROWS];

    for (size_t b = 0; b < rows->n; b += bsz) {
        size_t m = rows->n - b < bsz ? rows->n - b : bsz;
        const float *X = rows->vecs + b * d;
        pack_block(X, m, d, ws->pack);
        const float *norms = ws->norms;
        if (rows->norm2) {
            norms = rows->norm2 + b;
        } else if (metric != KNN_METRIC_IP) {
            block_norms(kern, X, m, d, ws->norms);
        }
        if (metric != KNN_METRIC_IP) {
            for (size_t i = 0; i < m; i++) {
                if (!isfinite(norms[i])) return bad_row(rows, b + i, err);
            }
        }
        for (size_t q0 = 0; q0 < nq; q0 += KNN_TILE_QUERIES) {
            size_t tq = nq - q0 < KNN_TILE_QUERIES ? nq - q0 : KNN_TILE_QUERIES;
            for (size_t p0 = 0; p0 < m; p0 += KNN_PANEL_ROWS) {
                size_t pr = m - p0 < KNN_PANEL_ROWS ? m - p0 : KNN_PANEL_ROWS;
                kern->dot_panel(Q + q0 * d, tq, ws->pack + p0 * d, d, tile);
                for (size_t qi = 0; qi < tq; qi++) {
                    knn_topk *t = &outs[q0 + qi];
                    const float *qv = Q + (q0 + qi) * d;
                    const float qn = q_norm2[q0 + qi];
                    const float *dots = tile + qi * KNN_PANEL_ROWS;
                    float bound = knn_topk_bound(t);
                    for (size_t r = 0; r < pr; r++) {
                        size_t row = b + p0 + r;
                        float v;
                        if (metric == KNN_METRIC_L2) {
                            float xn = norms[p0 + r];
                            float approx = xn + qn - 2.0f * dots[r];
                            /* The expanded form can be off by a few ulps of (xn + qn): filter with
                             * that margin, then let the direct distance decide. */
                            if (!(approx <= bound + 1e-5f * (xn + qn))) continue;
                            kern->l2sq_rows(qv, rows->vecs + row * d, 1, d, &v);
                        } else if (metric == KNN_METRIC_COSINE) {
                            v = cosine_from(dots[r], qn, norms[p0 + r]);
                        } else {
                            v = -dots[r];
                        }
                        if (v < bound || v == bound) {
                            if (!isfinite(v)) return bad_row(rows, row, err);
                            s = knn_topk_insert(t, v, row_id(rows, row), err);
                            if (s != KNN_OK) return s;
                            bound = knn_topk_bound(t);
                        } else if (!(v == v) || isinf(v)) {
                            return bad_row(rows, row, err);
                        }
                    }
                }
            }
        }
    }
    return KNN_OK;
}
