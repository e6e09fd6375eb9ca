/* Portable kernels: plain C loops, the reference every SIMD path is tested against. */
#include "kernels/knn_kernels.h"

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

static void code_sums_scalar(const uint8_t *cq, const uint8_t *block, size_t npairs, uint32_t *S) {
    for (size_t r = 0; r < KNN_CODE_BLOCK; r++) S[r] = 0;
    for (size_t p = 0; p < npairs; p++) {
        const uint8_t *src = block + p * 2 * KNN_CODE_BLOCK;
        int32_t c0 = cq[2 * p], c1 = cq[2 * p + 1];
        for (size_t r = 0; r < KNN_CODE_BLOCK; r++) {
            int32_t a = (int32_t)src[2 * r] - c0, b = (int32_t)src[2 * r + 1] - c1;
            S[r] += (uint32_t)(a * a + b * b);
        }
    }
}

static uint64_t u8_dist_block_scalar(const uint8_t *cq, const uint8_t *block, size_t npairs, uint32_t cut,
                                     uint32_t *S) {
    code_sums_scalar(cq, block, npairs, S);
    uint64_t mask = 0;
    for (size_t r = 0; r < KNN_CODE_BLOCK; r++) mask |= (uint64_t)(S[r] < cut) << r;
    return mask;
}

static uint64_t u8_screen_block_scalar(const uint8_t *cq, const uint8_t *block, size_t npairs, const float *reach,
                                       float cerr, float scale2) {
    uint32_t S[KNN_CODE_BLOCK];
    code_sums_scalar(cq, block, npairs, S);
    uint64_t mask = 0;
    for (size_t r = 0; r < KNN_CODE_BLOCK; r++) {
        float t = reach[r] + cerr;
        if (reach[r] >= 0 && (float)S[r] * scale2 < t * t) mask |= (uint64_t)1 << r;
    }
    return mask;
}

static void sq8_dot_ptrs_scalar(const int16_t *w, const uint8_t *const *rows, size_t n, size_t dpad, int32_t *out) {
    for (size_t i = 0; i < n; i++) {
        int32_t acc = 0;
        for (size_t j = 0; j < dpad; j++) acc += (int32_t)w[j] * (int32_t)rows[i][j];
        out[i] = acc;
    }
}

static void sq4_dot_ptrs_scalar(const int8_t *w, const uint8_t *const *rows, size_t n, size_t dpad, int32_t *out) {
    for (size_t i = 0; i < n; i++) {
        int32_t acc = 0;
        for (size_t g = 0; g < dpad / 64; g++) {
            const uint8_t *b = rows[i] + 32 * g;
            const int8_t *wl = w + 64 * g, *wh = wl + 32;
            for (size_t t = 0; t < 32; t++) acc += (int32_t)wl[t] * (b[t] & 15) + (int32_t)wh[t] * (b[t] >> 4);
        }
        out[i] = acc;
    }
}

const knn_kernels knn_kernels_scalar = {
    KNN_ISA_SCALAR, "scalar", l2sq_rows_scalar, dot_rows_scalar, dot_norm_rows_scalar, dot_panel_scalar,
    l2sq_ptrs_scalar, dot_ptrs_scalar, u8_screen_block_scalar, u8_dist_block_scalar, sq8_dot_ptrs_scalar,
    sq4_dot_ptrs_scalar,
};
