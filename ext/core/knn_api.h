/* knnsql core: the functions Python reaches through cffi (ABI mode, dlopen of the extension file).
 *
 * The block between the cffi markers is read by knnsql/_ffi.py as its cdef, so it must stay in
 * the C subset cffi parses: no macros, no includes. */
#ifndef KNN_API_H
#define KNN_API_H

#include <stddef.h>
#include <stdint.h>

/* cffi-begin */
typedef struct knn_flat knn_flat;

/* Library version, e.g. "0.1.0". */
const char *knn_version(void);
/* Kernel set the core would use now: "scalar", "avx2" or "avx512" (honours KNNSQL_SIMD). */
const char *knn_simd_name(void);
/* Best kernel set this CPU supports, ignoring KNNSQL_SIMD. */
const char *knn_simd_best(void);

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
/* k nearest rows for each of nq queries. Writes min(k, count) results per query, row stride
 * min(k, count), into out_ids / out_dists, sorted by (distance, id). threads = 0 uses every core. */
int knn_flat_search(const knn_flat *index, const float *queries, size_t nq, size_t k, size_t threads,
                    int64_t *out_ids, float *out_dists, char *errmsg, size_t errmsg_len);
/* cffi-end */

#endif
