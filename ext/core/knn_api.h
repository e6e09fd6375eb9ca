/* knnsql core: the public face, the functions Python reaches through cffi (ABI mode, dlopen of the
 * extension file) and that C users (the DuckDB glue, the fuzzers, the sanitized driver) call.
 *
 * Each area declares its own public functions in a cffi block of its header (between the cffi
 * markers); this header includes them and adds the entry points implemented in api/. ext/build.py
 * reads the blocks in the order this file names them (an included header's block where its include
 * stands) into knnsql/_cdef.h, so each block must stay in the C subset cffi parses: no macros, no
 * includes, every type declared by an earlier block. Nothing below api/ includes this file. */
#ifndef KNN_API_H
#define KNN_API_H

#include <stddef.h>
#include <stdint.h>

#include "exact/knn_flat.h"
#include "sample/knn_sample.h"

/* cffi-begin */
/* Library version, e.g. "0.1.0". */
const char *knn_version(void);
/* Kernel set the core would use now: "scalar", "avx2" or "avx512" (honours KNNSQL_SIMD). */
const char *knn_simd_name(void);
/* Best kernel set this CPU supports, ignoring KNNSQL_SIMD. */
const char *knn_simd_best(void);

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
/* Exact k nearest live rows of each query by a scan of the graph's own rows (0 threads: all cores);
 * found[q] = min(k, live rows); missing entries are id -1 and distance +inf. */
int knn_graph_query_exact(knn_graph *index, const float *queries, size_t nq, size_t k, size_t threads,
                          int64_t *out_ids, float *out_dists, size_t *found, char *errmsg, size_t errmsg_len);
int knn_graph_query(knn_graph *index, const float *queries, size_t nq, size_t k, size_t ef, size_t threads,
                    int64_t *out_ids, float *out_dists, size_t *found, char *errmsg, size_t errmsg_len);
/* As knn_graph_query, counting only rows whose label is in [lo, hi]; plans[q] (may be NULL) reports the
 * plan of each query: 0 exact scan of the window, 1 two-hop filtered beam, 2 a beam then the exact
 * fallback, 3 in-search postfilter (plain beam admitting only in-window rows), 4 postfilter beams in the
 * label buckets covering the window. */
int knn_graph_query_window(knn_graph *index, const float *queries, size_t nq, size_t k, size_t ef, double lo,
                           double hi, size_t threads, int64_t *out_ids, float *out_dists, size_t *found, int *plans,
                           char *errmsg, size_t errmsg_len);
/* As knn_graph_query, among the rows whose id is one of ids[0..n_ids) only (an allow-list; ids the index
 * does not hold are ignored); plans[q] (may be NULL): 0 exact scan of the matching rows, 2 the postfilter
 * beam gave up and the exact scan answered, 3 in-search postfilter beam, 5 every live row matches (the
 * plain search). *matched (may be NULL): live rows the ids name. */
int knn_graph_query_among(knn_graph *index, const float *queries, size_t nq, size_t k, size_t ef, const int64_t *ids,
                          size_t n_ids, size_t threads, int64_t *out_ids, float *out_dists, size_t *found, int *plans,
                          size_t *matched, char *errmsg, size_t errmsg_len);
/* One query on the caller's thread (no thread start, no CPU count): as knn_graph_query, or as
 * knn_graph_query_window when windowed; missing entries are id -1 and distance +inf. Returns the result
 * width min(k, live rows), or -1 with errmsg set. The per-call path of Index.search for one vector. */
long knn_graph_query_one(knn_graph *index, const float *query, size_t k, size_t ef, int windowed, double lo, double hi,
                         int64_t *out_ids, float *out_dists, char *errmsg, size_t errmsg_len);
/* As knn_graph_query (windowed: knn_graph_query_window, without plans) with a re-rank depth for a coded
 * graph: the best `rerank` beam rows by code distance are re-scored with float distances (0: the whole
 * beam; a depth above ef widens the beam). */
int knn_graph_query_rerank(knn_graph *index, const float *queries, size_t nq, size_t k, size_t ef, size_t rerank,
                           int windowed, double lo, double hi, size_t threads, int64_t *out_ids, float *out_dists,
                           size_t *found, char *errmsg, size_t errmsg_len);
/* Storage of an empty graph: quantization "none" (float rows in memory), "sq8" or "sq4" (8- or 4-bit codes
 * per dimension in memory, float rows in an unlinked file created in vectors_dir); see knn_graph.h. */
int knn_graph_storage(knn_graph *index, const char *quantization, const char *vectors_dir, char *errmsg,
                      size_t errmsg_len);
/* "sq8", "sq4" or "none". */
const char *knn_graph_quantization(const knn_graph *g);
/* Bytes of the files a coded graph maps its float rows from (0 for a float graph). */
size_t knn_graph_disk_bytes(const knn_graph *g);
/* Gives a coded graph restored from bytes the float rows of its live ids (rows as added); each row must
 * code to what the index holds for its id. *filled counts the rows taken; searches run once none is
 * missing (knn_graph_missing_vectors). */
int knn_graph_fill_vectors(knn_graph *index, const float *vecs, const int64_t *ids, size_t n, size_t *filled,
                           char *errmsg, size_t errmsg_len);
size_t knn_graph_missing_vectors(const knn_graph *g);
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
/* As knn_graph_from_bytes, a coded graph's float-row file created in vectors_dir; it comes back without its
 * float rows (knn_graph_fill_vectors gives them). */
int knn_graph_from_bytes_at(const uint8_t *buf, size_t len, const char *vectors_dir, knn_graph **out, char *errmsg,
                            size_t errmsg_len);
void knn_bytes_free(uint8_t *buf);
/* Sampling and selection (api/sample.c). Picks are row positions 0..rows-1 in pick order. */
/* Runs sampler `method` (see knn_sample_methods) on rows x dim float32 rows X. weights (may be NULL)
 * are required by 'weighted'. options is "key=value, ..." (may be NULL or empty). start (kcenter only)
 * holds row positions picked first. threads = 0 uses every core; output never depends on it. */
int knn_sample_run(const float *X, size_t rows, size_t dim, const double *weights, size_t n, const char *method,
                   uint64_t seed, const char *options, const int64_t *start, size_t n_start, size_t threads,
                   knn_sample_result **out, char *errmsg, size_t errmsg_len);
void knn_sample_result_free(knn_sample_result *r);
/* Comma-separated list of the method names knn_sample_run accepts. */
const char *knn_sample_methods(void);
/* Nearest of k centroids C (k x dim) for every row; assign/dist2 may be NULL; *cost = sum of dist2. */
int knn_sample_assign(const float *X, size_t rows, size_t dim, const float *C, size_t k, size_t threads,
                      int32_t *assign, float *dist2, double *cost, char *errmsg, size_t errmsg_len);
/* Smallest and largest label of live rows of a graph; 0 when none has a label. */
int knn_graph_label_range(knn_graph *g, double *lo, double *hi);

/* A database's named indexes (api/registry.c), reached from the value SQL's knn_registry_handle()
 * returns; retained until knn_registry_unref. */
typedef struct knn_registry knn_registry;
knn_registry *knn_registry_ref(uint64_t handle);
void knn_registry_unref(knn_registry *r);
/* nq queries (dim floats each) against the named index, k results each (row stride k; found[q] valid,
 * the rest id -1 and distance +inf); filter (NULL: none) as knn_search's filter :=; ef 0: the index
 * default; threads 0: every core for a batch, the caller's thread for one query. */
int knn_registry_query(knn_registry *r, const char *name, const float *queries, size_t nq, size_t dim, size_t k,
                       size_t ef, const char *filter, size_t threads, int64_t *out_ids, float *out_dists,
                       size_t *found, char *errmsg, size_t errmsg_len);
/* Attribute column `column` of the named graph index for n ids: *type 1 BIGINT, 2 DOUBLE, 3 BOOLEAN,
 * 4 DATE (days), 5 TIMESTAMP (microseconds), 6 VARCHAR (strs/lens point into the index), 0 when the
 * index lacks it; valid[i] = 0 for NULL or an id the index does not hold. */
int knn_registry_attr_values(knn_registry *r, const char *name, const int64_t *ids, size_t n, const char *column,
                             int *type, int64_t *i64, double *f64, const char **strs, uint32_t *lens, uint8_t *valid,
                             char *errmsg, size_t errmsg_len);
/* cffi-end */

#include "window/knn_window.h"
#include "filter/knn_filter.h"
#include "analytics/knn_analytics.h"

#endif
