/* Eigendecomposition of a dense symmetric matrix (for the k-DPP's kernel, sample/dpp.c). */
#ifndef KNN_SYMEIG_H
#define KNN_SYMEIG_H

#include <stddef.h>

#include "base/knn_error.h"

/* A: m x m symmetric, row-major (overwritten). w: m eigenvalues (unordered); V: m x m row-major with the
 * eigenvectors as columns (V[a * m + j] is component a of vector j), orthonormal. O(m^3). */
knn_status knn_symeig(double *A, size_t m, double *w, double *V, knn_error *err);

#endif
