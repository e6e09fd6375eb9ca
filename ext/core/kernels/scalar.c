/* Portable kernels: plain C loops, the reference every SIMD path is tested against. */
#include "knn_kernels.h"

static void l2sq_rows_scalar(const float *q, const float *X, size_t n, size_t d, float *out) {
    for (size_t i = 0; i < n; i++) {
        const float *x = X + i * d;
        float acc = 0.0f;
        for (size_t j = 0; j < d; j++) {
            float t = q[j] - x[j];
            acc += t * t;
        }
        out[i] = acc;
    }
}

static void dot_rows_scalar(const float *q, const float *X, size_t n, size_t d, float *out) {
    for (size_t i = 0; i < n; i++) {
        const float *x = X + i * d;
        float acc = 0.0f;
        for (size_t j = 0; j < d; j++) acc += q[j] * x[j];
        out[i] = acc;
    }
}

static void dot_norm_rows_scalar(const float *q, const float *X, size_t n, size_t d, float *dot, float *norm2) {
    for (size_t i = 0; i < n; i++) {
        const float *x = X + i * d;
        float a = 0.0f, b = 0.0f;
        for (size_t j = 0; j < d; j++) {
            a += q[j] * x[j];
            b += x[j] * x[j];
        }
        dot[i] = a;
        norm2[i] = b;
    }
}

static void dot_panel_scalar(const float *Q, size_t nq, const float *panel, size_t d, float *out) {
    for (size_t i = 0; i < nq; i++) {
        float acc[KNN_PANEL_ROWS] = {0};
        const float *q = Q + i * d;
        for (size_t j = 0; j < d; j++) {
            const float *p = panel + j * KNN_PANEL_ROWS;
            for (size_t r = 0; r < KNN_PANEL_ROWS; r++) acc[r] += q[j] * p[r];
        }
        for (size_t r = 0; r < KNN_PANEL_ROWS; r++) out[i * KNN_PANEL_ROWS + r] = acc[r];
    }
}

static void l2sq_ptrs_scalar(const float *q, const float *const *rows, size_t n, size_t d, float *out) {
    for (size_t i = 0; i < n; i++) l2sq_rows_scalar(q, rows[i], 1, d, &out[i]);
}

static void dot_ptrs_scalar(const float *q, const float *const *rows, size_t n, size_t d, float *out) {
    for (size_t i = 0; i < n; i++) dot_rows_scalar(q, rows[i], 1, d, &out[i]);
}

const knn_kernels knn_kernels_scalar = {
    KNN_ISA_SCALAR, "scalar", l2sq_rows_scalar, dot_rows_scalar, dot_norm_rows_scalar, dot_panel_scalar,
    l2sq_ptrs_scalar, dot_ptrs_scalar,
};
