/* 8-bit codes with a provable lower bound (see quant/knn_codes.h).
 *
 * Scalar quantisation with a per-dimension offset and one shared scale keeps the decoded geometry a
 * scaled copy of the code geometry, so the integer code distance (kernels: u8_screen_block) converts to
 * an exact distance between decoded points; each row's own decoding error, measured once here, turns
 * that into a provable lower bound on the true distance. The same idea drives the quantised candidate
 * filters of FAISS's IVF-SQ and ScaNN; here the bound is kept conservative so a screen built on it never
 * changes a result, it only skips work. Data already on a 0..255 integer grid (Fashion-MNIST pixels) is
 * coded exactly (scale 1, every error 0). */
#include "quant/knn_codes.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>


void knn_codes_free(knn_codes *c) {
    free(c->codes);
    free(c->err);
    free(c->lo);
    memset(c, 0, sizeof *c);
}

/* Where row i's codes start; its pair p sits 2 * KNN_CODE_BLOCK * p bytes further on. */
static size_t code_offset(size_t npairs, size_t i) {
    return (i / KNN_CODE_BLOCK) * npairs * 2 * KNN_CODE_BLOCK + 2 * (i % KNN_CODE_BLOCK);
}

void knn_codes_row(const knn_codes *c, size_t i, uint8_t *out) {
    const uint8_t *row = c->codes + code_offset(c->npairs, i);
    for (size_t p = 0; p < c->npairs; p++) {
        out[2 * p] = row[p * 2 * KNN_CODE_BLOCK];
        out[2 * p + 1] = row[p * 2 * KNN_CODE_BLOCK + 1];
    }
}

/* Codes x into out (2 * npairs bytes, the padding dimension of an odd d stays 0); returns err(x). */
static float encode(const knn_codes *c, const float *x, uint8_t *out, size_t stride) {
    double e2 = 0;
    for (size_t j = 0; j < c->d; j++) {
        double q = nearbyint((x[j] - c->lo[j]) / c->scale);
        q = q < 0 ? 0 : q > 255 ? 255 : q;
        double t = x[j] - (c->lo[j] + c->scale * q);
        e2 += t * t;
        out[(j / 2) * stride + (j & 1)] = (uint8_t)q;
    }
    return e2 > 0 ? (float)(sqrt(e2) * (1.0 + KNN_CODES_SLACK)) : 0.0f;
}

float knn_codes_encode(const knn_codes *c, const float *q, uint8_t *out) {
    memset(out, 0, 2 * c->npairs);
    return encode(c, q, out, 2);
}

int knn_codes_build(knn_codes *c, const float *X, size_t n, size_t d) {
    const size_t B = KNN_CODE_BLOCK, np = (d + 1) / 2;
    memset(c, 0, sizeof *c);
    if (n == 0 || d == 0 || np > 16384) return -1;
    double *hi = malloc(d * sizeof *hi);
    c->lo = malloc(d * sizeof *c->lo);
    c->nblocks = (n + B - 1) / B;
    c->codes = calloc(c->nblocks * np * 2 * B, 1);
    c->err = malloc(n * sizeof *c->err);
    if (!hi || !c->lo || !c->codes || !c->err) {
        free(hi);
        knn_codes_free(c);
        return -1;
    }
    int integral = 1;
    for (size_t j = 0; j < d; j++) c->lo[j] = hi[j] = X[j];
    for (size_t i = 0; i < n; i++) {
        const float *x = X + i * d;
        for (size_t j = 0; j < d; j++) {
            if (x[j] < c->lo[j]) c->lo[j] = x[j];
            if (x[j] > hi[j]) hi[j] = x[j];
            integral &= x[j] == floorf(x[j]);
        }
    }
    double range = 0;
    for (size_t j = 0; j < d; j++) range = hi[j] - c->lo[j] > range ? hi[j] - c->lo[j] : range;
    free(hi);
    c->n = n;
    c->d = d;
    c->npairs = np;
    c->scale = integral && range <= 255 ? 1.0 : range > 0 ? range / 255.0 : 1.0;
    c->scale2 = (float)(c->scale * c->scale * (1.0 - KNN_CODES_SLACK));
    c->err_max = 0.0f;
    for (size_t i = 0; i < n; i++) {
        c->err[i] = encode(c, X + i * d, c->codes + code_offset(np, i), 2 * B);
        if (c->err[i] > c->err_max) c->err_max = c->err[i];
    }
    return 0;
}
