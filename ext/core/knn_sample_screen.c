/* The 8-bit lower-bound screen of the nearest-center cover (design note in knn_sample.h, knn_screen).
 *
 * Scalar quantisation with a per-dimension offset and one shared scale keeps the decoded geometry a
 * scaled copy of the code geometry, so the integer code distance (kernels: u8_l2sq_block) converts to an
 * exact distance between decoded points; each row's own decoding error, measured once here, turns that
 * into a provable lower bound on the true distance. The same idea drives the quantised candidate
 * filters of FAISS's IVF-SQ and ScaNN; here the bound is kept conservative so the screen never changes
 * a result, it only skips work. Data already on a 0..255 integer grid (Fashion-MNIST pixels) is coded
 * exactly (scale 1, every error 0). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "knn_sample.h"

/* Relative slack on the bound's pieces: far above float rounding in the kernels and in the compare. */
#define SCREEN_SLACK 1e-4

void knn_screen_free(knn_screen *s) {
    free(s->codes);
    free(s->err);
    free(s->reach);
    memset(s, 0, sizeof *s);
}

void knn_screen_touch(knn_cover *c, size_t i) {
    float m = c->mind[i];
    c->screen.reach[i] = m < 0 ? -1.0f : (sqrtf(m) + c->screen.err[i]) * (float)(1.0 + SCREEN_SLACK);
}

void knn_screen_codes(const knn_cover *c, size_t i, uint8_t *out) {
    const size_t B = KNN_CODE_BLOCK, np = c->screen.npairs;
    const uint8_t *blk = c->screen.codes + (i / B) * np * 2 * B + 2 * (i % B);
    for (size_t p = 0; p < np; p++) {
        out[2 * p] = blk[p * 2 * B];
        out[2 * p + 1] = blk[p * 2 * B + 1];
    }
}

void knn_screen_build(knn_cover *c) {
    const size_t n = c->n, d = c->d, B = KNN_CODE_BLOCK, np = (d + 1) / 2;
    knn_screen *s = &c->screen;
    memset(s, 0, sizeof *s);
    if (n == 0 || np > 16384) return;
    double *lo = malloc(d * sizeof *lo), *hi = malloc(d * sizeof *hi);
    s->codes = calloc(c->nblocks * np * 2 * B, 1);
    s->err = malloc(n * sizeof *s->err);
    s->reach = malloc(c->nblocks * B * sizeof *s->reach); /* padded: rows past n stay -1 */
    if (!lo || !hi || !s->codes || !s->err || !s->reach) {
        free(lo);
        free(hi);
        knn_screen_free(s);
        return; /* the cover works without the screen, only slower */
    }
    int integral = 1;
    for (size_t j = 0; j < d; j++) lo[j] = hi[j] = c->X[j];
    for (size_t i = 0; i < n; i++) {
        const float *x = c->X + i * d;
        for (size_t j = 0; j < d; j++) {
            if (x[j] < lo[j]) lo[j] = x[j];
            if (x[j] > hi[j]) hi[j] = x[j];
            integral &= x[j] == floorf(x[j]);
        }
    }
    double range = 0;
    for (size_t j = 0; j < d; j++) range = hi[j] - lo[j] > range ? hi[j] - lo[j] : range;
    double scale = integral && range <= 255 ? 1.0 : range > 0 ? range / 255.0 : 1.0;
    for (size_t i = 0; i < n; i++) {
        const float *x = c->X + i * d;
        uint8_t *blk = s->codes + (i / B) * np * 2 * B + 2 * (i % B);
        double e2 = 0;
        for (size_t j = 0; j < d; j++) {
            double q = nearbyint((x[j] - lo[j]) / scale);
            q = q < 0 ? 0 : q > 255 ? 255 : q;
            double t = x[j] - (lo[j] + scale * q);
            e2 += t * t;
            blk[(j / 2) * 2 * B + (j & 1)] = (uint8_t)q;
        }
        /* the padding dimension of an odd d stays 0 in every row and every center */
        s->err[i] = e2 > 0 ? (float)(sqrt(e2) * (1.0 + SCREEN_SLACK)) : 0.0f;
        s->reach[i] = -1.0f;
    }
    for (size_t i = n; i < c->nblocks * B; i++) s->reach[i] = -1.0f;
    s->npairs = np;
    s->scale2 = (float)(scale * scale * (1.0 - SCREEN_SLACK));
    free(lo);
    free(hi);
}
