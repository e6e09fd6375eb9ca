/* Per-dimension scalar codes for graph traversal: 8 or 4 bits a value, scored against a float query by
 * one integer multiply-add pass (design note in quant/knn_sq.c).
 *
 * A value is coded as c_j = round((x_j - lo_j) / step_j), clamped to 0..255 (8-bit) or 0..15 (4-bit), with
 * its own offset and step per dimension; the decoded row is x^_j = lo_j + step_j c_j. A query q is turned
 * once into integer weights w_j ~ q_j step_j / alpha, so <q, x^> ~ base + alpha * sum_j w_j c_j, one
 * integer dot product per row (kernels: sq8_dot_ptrs / sq4_dot_ptrs). Unlike quant/knn_codes.h (one
 * scale for every dimension, a provable bound, for exact screens) these codes carry no bound: they rank
 * graph neighbours, and the candidates are re-ranked with float distances. */
#ifndef KNN_SQ_H
#define KNN_SQ_H

#include <stddef.h>
#include <stdint.h>

#include "base/knn_error.h"
#include "base/knn_metric.h"

typedef struct knn_sq {
    unsigned bits;    /* 8 or 4 */
    size_t d;         /* dimensions */
    size_t dpad;      /* dimensions padded to the kernels' step: 16 (8-bit) or 64 (4-bit) */
    size_t row_bytes; /* code bytes a row: dpad (8-bit) or dpad / 2 (4-bit) */
    float *lo, *step; /* d each */
} knn_sq;

/* A query prepared for one index's codes (buffers reused from query to query). */
typedef struct knn_sq_query {
    void *w;      /* dpad integer weights: int16_t (8-bit codes) or int8_t (4-bit codes) */
    size_t cap;   /* bytes at w */
    double base;  /* <q, lo> */
    float alpha;  /* <q, x^> ~ base + alpha * sum_j w_j c_j */
    float qnorm2; /* ||q||^2 */
} knn_sq_query;

/* Layout of 4-bit rows: byte 32g + b holds dimension 64g + b (low nibble) and 64g + 32 + b (high nibble). */
static inline size_t knn_sq4_byte(size_t j) { return (j / 64) * 32 + (j % 32); }
static inline unsigned knn_sq4_shift(size_t j) { return (j % 64) >= 32 ? 4u : 0u; }

/* Sets up codes of `bits` (8 or 4) bits over d dimensions with ranges from n sample rows of X (n x d):
 * per dimension the smallest and largest value (for 4-bit codes, with the `trim` share of the sample cut
 * from each end first: a 4-bit step over the full range spends levels on a few outliers). */
knn_status knn_sq_train(knn_sq *s, unsigned bits, const float *X, size_t n, size_t d, double trim, knn_error *err);
/* Ranges given directly (loading saved codes); lo/step are copied. Checks them: finite, step >= 0. */
knn_status knn_sq_init(knn_sq *s, unsigned bits, size_t d, const float *lo, const float *step, knn_error *err);
void knn_sq_free(knn_sq *s);
/* Codes x into out (row_bytes bytes, padding zero); values outside the ranges clamp. Returns the squared
 * norm of the decoded row; *err (may be NULL) gets the row's decoding error ||x - x^||. */
float knn_sq_encode(const knn_sq *s, const float *x, uint8_t *out, float *err);
/* The squared norm of the decoded row (what knn_sq_encode returns, bit for bit). */
float knn_sq_decoded_norm2(const knn_sq *s, const uint8_t *codes);
/* 1 when the codes of the padding dimensions (d .. dpad-1) are zero, as knn_sq_encode writes them. */
int knn_sq_pad_clear(const knn_sq *s, const uint8_t *codes);
/* The decoded row of codes into out (d floats). */
void knn_sq_decode(const knn_sq *s, const uint8_t *codes, float *out);
/* Prepares query q (d floats, finite) for code distances; 0, or -1 when memory is short. */
int knn_sq_prepare(const knn_sq *s, const float *q, knn_sq_query *out);
void knn_sq_query_free(knn_sq_query *qq);

#endif
