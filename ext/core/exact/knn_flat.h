/* Flat (exact) index: vectors in one 64-byte-aligned row-major block, searched by brute force.
 * Backs knnsql.Index(kind="flat") and is the recall oracle for approximate indexes. */
#ifndef KNN_FLAT_H
#define KNN_FLAT_H

#include <stddef.h>
#include <stdint.h>

#include "base/knn_error.h"

/* The public (cffi) face of the flat index; knn_api.h gathers it. */
/* cffi-begin */
typedef struct knn_flat knn_flat;

/* Each call returns 0 on success or a knn_status code, with a message written into errmsg
 * (errmsg_len bytes, always NUL-terminated). */

int knn_flat_new(size_t dim, const char *metric, knn_flat **out, char *errmsg, size_t errmsg_len);
void knn_flat_destroy(knn_flat *index);
size_t knn_flat_count(const knn_flat *index);
size_t knn_flat_dim(const knn_flat *index);
const char *knn_flat_metric(const knn_flat *index);
const char *knn_flat_simd(const knn_flat *index);
/* Adds n rows (row-major float32, n x dim) with ids; an id already present is replaced, and within
 * one call the last occurrence wins. Rejects the whole call, changing nothing, on NaN/Inf. */
int knn_flat_add(knn_flat *index, const float *vecs, const int64_t *ids, size_t n, char *errmsg,
                 size_t errmsg_len);
/* As knn_flat_add with a label per row (labels may be NULL; NaN means no label). */
int knn_flat_add_labeled(knn_flat *index, const float *vecs, const int64_t *ids, const double *labels, size_t n,
                         char *errmsg, size_t errmsg_len);
/* As knn_flat_search counting only rows whose label is in [lo, hi] (when windowed is 1);
 * found_per_query[q] results are valid in row q, the rest are id -1 and distance +inf. */
int knn_flat_search_window(const knn_flat *index, const float *queries, size_t nq, size_t k, size_t threads,
                           int windowed, double lo, double hi, int64_t *out_ids, float *out_dists, size_t *found,
                           size_t *found_per_query, char *errmsg, size_t errmsg_len);
/* Removes ids (unknown ids are ignored); *removed counts those that were present. */
int knn_flat_remove(knn_flat *index, const int64_t *ids, size_t n, size_t *removed, char *errmsg,
                    size_t errmsg_len);
/* Ids in storage order (out holds knn_flat_count entries). */
void knn_flat_list_ids(const knn_flat *index, int64_t *out);
/* Heap bytes the index holds (an 'sq8' index's float rows are in its file, not counted here). */
size_t knn_flat_bytes(const knn_flat *index);
/* Bytes of the file an 'sq8' index maps its float rows from (0 for 'none'). */
size_t knn_flat_disk_bytes(const knn_flat *index);
/* "sq8" or "f32". */
const char *knn_flat_storage(const knn_flat *index);
/* Chooses how an empty index stores rows: quantization "none" (float rows on the heap, the default) or
 * "sq8" (8-bit codes on the heap, float rows in an unlinked file created in vectors_dir, "." when NULL or
 * empty; metric l2 or cosine). Searches stay exact either way: an 'sq8' search reads the codes and only
 * the float rows the codes' distance bound cannot rule out. */
int knn_flat_set_storage(knn_flat *index, const char *quantization, const char *vectors_dir, char *errmsg,
                         size_t errmsg_len);
/* k nearest rows for each of nq queries, sorted by (distance, id), into out_ids / out_dists (row
 * stride k); *found = min(k, count) entries per row are valid. threads = 0 uses every core. */
int knn_flat_search(const knn_flat *index, const float *queries, size_t nq, size_t k, size_t threads,
                    int64_t *out_ids, float *out_dists, size_t *found, char *errmsg, size_t errmsg_len);
/* cffi-end */

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
