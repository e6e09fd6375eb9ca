/* Exact (brute-force) kNN over a block of contiguous rows.
 *
 * knn_scan_one streams rows through a distance kernel and a bounded heap: memory-bound, so it
 * reads each row once. knn_scan_many serves many queries at once the way a GEMM does: it packs a
 * block of rows dimension-major into 16-row panels that stay in cache, computes 4x16 tiles of inner
 * products with a register-blocked micro-kernel, turns them into distances with precomputed norms,
 * and recomputes squared-L2 candidates directly so reported distances carry no cancellation error
 * (||x||^2 + ||q||^2 - 2<x,q> loses precision for near neighbours). Same results as knn_scan_one. */
#ifndef KNN_SCAN_H
#define KNN_SCAN_H

#include <stddef.h>
#include <stdint.h>

#include "kernels/knn_kernels.h"
#include "base/knn_error.h"
#include "base/knn_metric.h"
#include "base/knn_topk.h"
#include "select/knn_selector.h"

/* n contiguous row vectors of dimension d. Row i has id ids[i], or id_base + i when ids is NULL.
 * norm2 (squared norms) may be NULL; it is computed where a metric needs it. */
typedef struct knn_rows {
    const float *vecs;
    const float *norm2;
    const int64_t *ids;
    int64_t id_base;
    size_t n;
    size_t d;
    /* Optional row selector (knn_scan_one only): when sel is not NULL, row i is scanned only when sel
     * admits row first_row + i (the selector's numbering of this block's first row). */
    const knn_selector *sel;
    size_t first_row;
} knn_rows;

/* Scratch memory for knn_scan_many, reusable across calls; zero-initialise, free with knn_scan_ws_free. */
typedef struct knn_scan_ws {
    float *pack;   /* packed panels of one row block */
    float *norms;  /* squared norms of that block */
    size_t cap_rows;
    size_t cap_d;
} knn_scan_ws;

void knn_scan_ws_free(knn_scan_ws *ws);

/* Validates a query (finite; non-zero for cosine) and returns its squared norm. what names it in errors. */
knn_status knn_query_check(const float *q, size_t d, knn_metric metric, const char *what, float *norm2,
                           knn_error *err);

/* One query against rows; adds to out. Fails with KNN_EDATA naming the row id on a NaN/Inf row. */
knn_status knn_scan_one(const knn_kernels *kern, knn_metric metric, const float *q, float q_norm2,
                        const knn_rows *rows, knn_topk *out, knn_error *err);

/* nq queries (row-major, stride d, squared norms q_norm2) against rows; adds to outs[0..nq). */
knn_status knn_scan_many(const knn_kernels *kern, knn_metric metric, const float *Q, const float *q_norm2,
                         size_t nq, const knn_rows *rows, knn_topk *outs, knn_scan_ws *ws, knn_error *err);

/* Distance of one pair computed the direct way (what knn_scan_one reports). */
float knn_distance(const knn_kernels *kern, knn_metric metric, const float *q, float q_norm2, const float *x,
                   size_t d);

#endif
