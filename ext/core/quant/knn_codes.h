/* 8-bit codes of float rows with a provable distance lower bound (design note in quant/knn_codes.c).
 *
 * Rows are coded per dimension as q = round((x - lo_j) / scale), clamped to 0..255, with one scale for
 * every dimension, so scale * ||q(x) - q(y)|| is the exact distance between the decoded points and
 *     d(x, y) >= scale * ||q(x) - q(y)|| - err(x) - err(y),   err(x) = ||x - decode(q(x))||.
 * Codes sit in blocks of KNN_CODE_BLOCK rows grouped by dimension pairs, the layout of the
 * knn_kernels.u8_screen_block kernel. Used by the sampling cover and the graph's exact window scan. */
#ifndef KNN_CODES_H
#define KNN_CODES_H

#include <stddef.h>
#include <stdint.h>

#include "kernels/knn_kernels.h"

/* Relative slack on every rounded piece of the bound: far above float rounding in the kernels and in
 * the compares, so a screen built on the bound never skips a row that could count. */
#define KNN_CODES_SLACK 1e-4

typedef struct knn_codes {
    uint8_t *codes; /* nblocks x npairs x 2*KNN_CODE_BLOCK */
    float *err;     /* n: decoding error of each row, rounded up */
    float err_max;  /* the largest of them */
    double *lo;     /* d: per-dimension offsets */
    double scale;
    float scale2;   /* scale^2, rounded down */
    size_t n, d, npairs, nblocks; /* nblocks: blocks allocated (rows n..nblocks*KNN_CODE_BLOCK-1 are room) */
} knn_codes;

/* Codes the n rows of X (n x d). Returns 0, or -1 (codes left empty) when memory is short or
 * d > 32768 (sums would leave 31 bits). */
int knn_codes_build(knn_codes *c, const float *X, size_t n, size_t d);

/* Codes that grow with an index: the ranges are trained once on n sample rows of X (no row is coded),
 * rows are then coded one by one as they arrive. A value outside the trained range clamps; the row's own
 * decoding error records it, so the bound stays provable, only looser. Same returns as knn_codes_build. */
int knn_codes_train(knn_codes *c, const float *X, size_t n, size_t d);
/* Room for rows 0..rows-1 (whole blocks); 0, or -1 when memory is short (the codes are unchanged). */
int knn_codes_reserve(knn_codes *c, size_t rows);
/* Codes x as row i (i below the reserved rows); raises c->n to i + 1 and err_max as needed. */
void knn_codes_put(knn_codes *c, size_t i, const float *x);
/* Row src's codes and error into row dst (a delete that moves the last row into the hole). */
void knn_codes_copy_row(knn_codes *c, size_t dst, size_t src);
/* Bytes the codes hold. */
size_t knn_codes_bytes(const knn_codes *c);
void knn_codes_free(knn_codes *c);
/* Row i's 2 * npairs codes into out. */
void knn_codes_row(const knn_codes *c, size_t i, uint8_t *out);
/* Codes any vector q (values outside the coded range clamp) into out; returns its decoding error,
 * rounded up. */
float knn_codes_encode(const knn_codes *c, const float *q, uint8_t *out);
/* Codes of block b. */
static inline const uint8_t *knn_codes_block(const knn_codes *c, size_t b) {
    return c->codes + b * c->npairs * 2 * KNN_CODE_BLOCK;
}

#endif
