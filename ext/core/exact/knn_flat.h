/* Flat (exact) index: vectors in one 64-byte-aligned row-major block, searched by brute force.
 * Backs knnsql.Index(kind="flat") and is the recall oracle for approximate indexes. */
#ifndef KNN_FLAT_H
#define KNN_FLAT_H

#include "knn_api.h"
#include "base/knn_error.h"

/* Smallest and largest label; returns 0 when no row has one. */
int knn_flat_label_range(knn_flat *index, double *lo, double *hi);

/* Copies up to cap ids in storage order; returns how many were copied. */
size_t knn_flat_ids_bounded(knn_flat *index, int64_t *out, size_t cap);

/* Copies live rows (those labelled in [lo, hi] when windowed) into malloc'd ids / vecs (free both). */
knn_status knn_flat_export_rows(knn_flat *index, int windowed, double lo, double hi, int64_t **ids, float **vecs,
                                size_t *n, knn_error *err);
/* Rows the storage holds before it grows (it doubles, from 1024). */
size_t knn_flat_capacity(const knn_flat *ix);

#endif
