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
size_t knn_flat_bytes(const knn_flat *index);
/* k nearest rows for each of nq queries, sorted by (distance, id), into out_ids / out_dists (row
 * stride k); *found = min(k, count) entries per row are valid. threads = 0 uses every core. */
int knn_flat_search(const knn_flat *index, const float *queries, size_t nq, size_t k, size_t threads,
                    int64_t *out_ids, float *out_dists, size_t *found, char *errmsg, size_t errmsg_len);

typedef struct knn_graph knn_graph;

/* Graph (HNSW) index; m, ef_construction, ef = 0 take the defaults (16, 200, 64). */
int knn_graph_new(size_t dim, const char *metric, size_t m, size_t ef_construction, size_t ef, uint64_t seed,
                  knn_graph **out, char *errmsg, size_t errmsg_len);
void knn_graph_destroy(knn_graph *index);
/* Adds rows; an id already present is replaced. labels may be NULL (NaN: no label). threads = 0
 * uses every core. */
int knn_graph_add_rows(knn_graph *index, const float *vecs, const int64_t *ids, const double *labels, size_t n,
                       size_t threads, char *errmsg, size_t errmsg_len);
/* Tombstones ids (unknown ids are ignored); *removed counts those that were live. */
int knn_graph_remove(knn_graph *index, const int64_t *ids, size_t n, size_t *removed, char *errmsg,
                     size_t errmsg_len);
/* Rebuilds the graph from live rows, reclaiming tombstones. */
int knn_graph_rebuild(knn_graph *index, size_t threads, char *errmsg, size_t errmsg_len);
/* k nearest live rows per query; ef = 0 uses the index default, ef < k is raised to k. Row stride k;
 * found[q] results are valid, the rest are id -1 and distance +inf. */
int knn_graph_query(knn_graph *index, const float *queries, size_t nq, size_t k, size_t ef, size_t threads,
                    int64_t *out_ids, float *out_dists, size_t *found, char *errmsg, size_t errmsg_len);
/* As knn_graph_query, counting only rows whose label is in [lo, hi]; plans[q] (may be NULL) reports the
 * plan of each query: 0 exact scan of the window, 1 two-hop filtered beam, 2 a beam then the exact
 * fallback, 3 in-search postfilter (plain beam admitting only in-window rows). */
int knn_graph_query_window(knn_graph *index, const float *queries, size_t nq, size_t k, size_t ef, double lo,
                           double hi, size_t threads, int64_t *out_ids, float *out_dists, size_t *found, int *plans,
                           char *errmsg, size_t errmsg_len);
/* Sets the plan window queries use: -1 the cost model (default), 0 always exact, 1 always the two-hop
 * beam, 3 always the in-search postfilter (other values: the cost model).
 * A benchmarking and testing knob; kept per index. */
void knn_graph_force_window_plan(knn_graph *index, int plan);
size_t knn_graph_count(const knn_graph *index);
size_t knn_graph_tombstones(const knn_graph *index);
size_t knn_graph_bytes(const knn_graph *index);
size_t knn_graph_dimension(const knn_graph *index);
const char *knn_graph_metric_name(const knn_graph *index);
/* m, ef_construction, ef into out[0..2]. */
void knn_graph_settings(const knn_graph *index, size_t *out);
/* Live ids (out holds knn_graph_count entries). */
void knn_graph_list_ids(knn_graph *index, int64_t *out);
/* Serialised bytes (free with knn_bytes_free) and back. */
int knn_graph_to_bytes(knn_graph *index, uint8_t **buf, size_t *len, char *errmsg, size_t errmsg_len);
int knn_graph_from_bytes(const uint8_t *buf, size_t len, knn_graph **out, char *errmsg, size_t errmsg_len);
void knn_bytes_free(uint8_t *buf);
/* cffi-end */

#endif
