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

/* Ranges from n rows: per-dimension offsets and one shared scale (1 for data on a 0..255 integer grid). */
int knn_codes_train(knn_codes *c, const float *X, size_t n, size_t d) {
    const size_t np = (d + 1) / 2;
    memset(c, 0, sizeof *c);
    if (n == 0 || d == 0 || np > 16384) return -1;
    double *hi = malloc(d * sizeof *hi);
    c->lo = malloc(d * sizeof *c->lo);
    if (!hi || !c->lo) {
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
    c->d = d;
    c->npairs = np;
    c->scale = integral && range <= 255 ? 1.0 : range > 0 ? range / 255.0 : 1.0;
    c->scale2 = (float)(c->scale * c->scale * (1.0 - KNN_CODES_SLACK));
    c->err_max = 0.0f;
    return 0;
}

int knn_codes_reserve(knn_codes *c, size_t rows) {
    const size_t B = KNN_CODE_BLOCK, nb = (rows + B - 1) / B, block_bytes = c->npairs * 2 * B;
    if (nb <= c->nblocks) return 0;
    size_t grow = c->nblocks ? c->nblocks * 2 : nb; /* the first reservation is exact */
    size_t want = nb > grow ? nb : grow;
    uint8_t *codes = realloc(c->codes, want * block_bytes);
    if (!codes) return -1;
    c->codes = codes;
    memset(codes + c->nblocks * block_bytes, 0, (want - c->nblocks) * block_bytes);
    float *err = realloc(c->err, want * B * sizeof *err);
    if (!err) return -1; /* codes grew, nblocks did not: harmless */
    c->err = err;
    c->nblocks = want;
    return 0;
}

void knn_codes_put(knn_codes *c, size_t i, const float *x) {
    c->err[i] = encode(c, x, c->codes + code_offset(c->npairs, i), 2 * KNN_CODE_BLOCK);
    if (c->err[i] > c->err_max) c->err_max = c->err[i];
    if (i + 1 > c->n) c->n = i + 1;
}

void knn_codes_copy_row(knn_codes *c, size_t dst, size_t src) {
    uint8_t *a = c->codes + code_offset(c->npairs, dst);
    const uint8_t *b = c->codes + code_offset(c->npairs, src);
    for (size_t p = 0; p < c->npairs; p++) {
        a[p * 2 * KNN_CODE_BLOCK] = b[p * 2 * KNN_CODE_BLOCK];
        a[p * 2 * KNN_CODE_BLOCK + 1] = b[p * 2 * KNN_CODE_BLOCK + 1];
    }
    c->err[dst] = c->err[src];
}

size_t knn_codes_bytes(const knn_codes *c) {
    return c->nblocks * KNN_CODE_BLOCK * (c->npairs * 2 + sizeof *c->err) + c->d * sizeof *c->lo;
}

int knn_codes_build(knn_codes *c, const float *X, size_t n, size_t d) {
    if (knn_codes_train(c, X, n, d) != 0) return -1;
    if (knn_codes_reserve(c, n) != 0) {
        knn_codes_free(c);
        return -1;
    }
    for (size_t i = 0; i < n; i++) knn_codes_put(c, i, X + i * d);
    return 0;
}
