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
/* One query on the caller's thread (no thread start, no CPU count): as knn_graph_query, or as
 * knn_graph_query_window when windowed; missing entries are id -1 and distance +inf. Returns the result
 * width min(k, live rows), or -1 with errmsg set. The per-call path of Index.search for one vector. */
long knn_graph_query_one(knn_graph *index, const float *query, size_t k, size_t ef, int windowed, double lo, double hi,
                         int64_t *out_ids, float *out_dists, char *errmsg, size_t errmsg_len);
/* Bucket levels of a window-capable graph (built with its first window query): returns how many, with
 * the rows per bucket of the first cap levels in rows[] and their calibrated ns per beam at in-bucket
 * fractions 1/2 and 1/4 in ns_beam[2l], ns_beam[2l+1] (ns_beam may be NULL). Introspection. */
size_t knn_graph_bucket_info(knn_graph *index, size_t *rows, double *ns_beam, size_t cap);
/* Rebuilds the bucket graphs with exactly `levels` levels (0: the levels the cost model picks), whatever
 * they cost; returns the levels built. A testing and benchmarking knob. */
size_t knn_graph_force_buckets(knn_graph *index, size_t levels);
/* Sets the plan window queries use: -1 the cost model (default), 0 always exact, 1 always the two-hop
 * beam, 3 always the in-search postfilter, 4 the bucket graphs when built (other values: the cost model).
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
/* Sampling and selection (knn_api_sample.c). Picks are row positions 0..rows-1 in pick order. */
typedef struct knn_sample_result {
    size_t n;            /* number of picks */
    int64_t *index;      /* row position of each pick */
    double *weight;      /* rows each pick stands for (coreset weight) */
    double *score;       /* per pick: kcenter covering radius after it; weighted key; kt/dpp NaN */
    int64_t *cluster;    /* cluster of each pick, -1 when the method has none */
    float *centroids;    /* kmeans: n_centroids x dim, else NULL */
    size_t n_centroids;
    int32_t *assign;     /* kmeans and k-means++ (D2): nearest pick/centroid of every row, else NULL */
    double cost;         /* k-means family: sum of squared distances to the nearest center (NaN when
                            not computed); kcenter: final covering radius */
    size_t iters;        /* kmeans: Lloyd iterations run */
    double bandwidth;    /* kernel_thinning / dpp rbf: the Gaussian sigma used */
} knn_sample_result;

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
/* ---- kNN analytics (knn_analytics_*.c; sql/reference/knn_analytics.md) ----
 * Neighbour ids are row positions of the reference set. Weighting: 0 uniform, 1 inverse distance,
 * 2 softmax(-distance / temperature). seed-driven draws depend on (seed, position) only. */
/* Exact k nearest rows of X (n x d) for nq queries Q (row stride k). self = 1: Q is X (Q, nq ignored) and
 * each row's own position is left out. */
int knn_an_neighbors(const float *X, size_t n, const float *Q, size_t nq, size_t d, const char *metric, size_t k,
                     int self, size_t threads, int64_t *out_ids, float *out_dists, char *errmsg, size_t errmsg_len);
/* Class votes: codes[n_train] in 0..n_classes-1; k_per_query may be NULL; out_probs (nq x n_classes) may be NULL. */
int knn_an_classify(const int64_t *nbr, const float *dist, size_t nq, size_t stride, size_t k, const int32_t *codes,
                    size_t n_train, size_t n_classes, const char *metric, int weighting, double temperature,
                    const size_t *k_per_query, int32_t *out_label, double *out_prob, double *out_probs,
                    char *errmsg, size_t errmsg_len);
/* out[q] = 1 when replacing `flips` of query q's k neighbours could change its class vote (see
 * knn_analytics_predict.c); the queries an approximate search should look at again. */
int knn_an_unsettled(const int64_t *nbr, const float *dist, size_t nq, size_t stride, size_t k, const int32_t *codes,
                     size_t n_train, size_t n_classes, const char *metric, int weighting, double temperature,
                     size_t flips, uint8_t *out, char *errmsg, size_t errmsg_len);
int knn_an_regress(const int64_t *nbr, const float *dist, size_t nq, size_t stride, size_t k, const double *y,
                   size_t n_train, const char *metric, int weighting, double temperature, const size_t *k_per_query,
                   double *out, char *errmsg, size_t errmsg_len);
/* k per query in 1..kmax by expected accuracy over the query's `support` nearest training rows;
 * train_nbr: leave-one-out neighbours of the training rows (stride tstride >= kmax). */
int knn_an_adaptive_k(const int64_t *train_nbr, const float *train_dist, size_t n_train, size_t tstride,
                      const int32_t *codes, size_t n_classes, const int64_t *query_nbr, size_t nq, size_t qstride,
                      size_t kmax, size_t support, const char *metric, int weighting, double temperature,
                      size_t *out_k, char *errmsg, size_t errmsg_len);
/* Mean (weighting 0/1), draws (nq x draws) and [q_lo, q_hi] quantiles of the neighbours' values; any output may be NULL. */
int knn_an_impute(const int64_t *nbr, const float *dist, size_t nq, size_t stride, size_t k, const double *y,
                  size_t n_donors, const char *metric, int weighting, size_t draws, uint64_t seed, double q_lo,
                  double q_hi, double *out_mean, double *out_draws, double *out_lo, double *out_hi, char *errmsg,
                  size_t errmsg_len);
/* n_new synthetic rows from minority rows X and their leave-one-out minority neighbours. */
int knn_an_smote(const float *X, size_t n, size_t d, const int64_t *nbr, size_t stride, size_t k, size_t n_new,
                 uint64_t seed, float *out_vecs, int64_t *out_parent, int64_t *out_neighbor, double *out_gap,
                 char *errmsg, size_t errmsg_len);
/* D(P || Q): method 0 KL (Wang et al.), 1 Renyi-alpha (Poczos & Schneider), 2 KL and 3 Renyi by the
 * nearest-neighbour-ratio estimator (Noshad et al.). Euclidean distances. */
int knn_an_divergence(const float *P, size_t n, const float *Q, size_t m, size_t d, size_t k, int method,
                      double alpha, size_t threads, double *out, char *errmsg, size_t errmsg_len);
/* Levina-Bickel LID per row from leave-one-out neighbour distances; out_rk, out_table may be NULL. */
int knn_an_lid(const float *dist, size_t n, size_t stride, size_t k, const char *metric, double *out_lid,
               double *out_rk, double *out_table, char *errmsg, size_t errmsg_len);
/* out[8]: precision, recall, density, coverage, p_precision, p_recall, sym_precision, sym_recall. */
int knn_an_precision_recall(const float *R, size_t n, const float *F, size_t m, size_t d, const char *metric,
                            size_t k, size_t threads, double *out, char *errmsg, size_t errmsg_len);
/* kNN drift test over row order 0..n-1 (neighbours without self); out_scores (n) may be NULL. */
int knn_an_iid_test(const int64_t *nbr, size_t n, size_t stride, size_t k, size_t permutations, uint64_t seed,
                    double *out_stat, double *out_p, double *out_scores, char *errmsg, size_t errmsg_len);
/* log importance weights of raw rows 0..n_raw-1 from neighbours in raw ++ target (ids >= n_raw are target). */
int knn_an_importance(const int64_t *nbr, size_t n_raw, size_t stride, size_t k, size_t n_target, double *out_logw,
                      char *errmsg, size_t errmsg_len);
/* log weights alpha * log r_k for density (coverage) sampling. */
int knn_an_density_logw(const float *dist, size_t n, size_t stride, size_t k, const char *metric, double alpha,
                        double *out_logw, char *errmsg, size_t errmsg_len);
/* Gumbel-top-k: out_rank[i] = draw order (0-based) of the n picked rows, -1 for the rest. */
int knn_an_gumbel_topk(const double *logw, size_t m, size_t n, uint64_t seed, int64_t *out_rank, char *errmsg,
                       size_t errmsg_len);
/* recall@k of a graph index per query vs an exact scan of its live rows (windowed: labels in [lo, hi]). */
int knn_an_graph_recall(knn_graph *g, const float *Q, size_t nq, size_t k, size_t ef, int windowed, double lo,
                        double hi, size_t threads, double *out_recall, char *errmsg, size_t errmsg_len);
/* Smallest and largest label of live rows of a graph; 0 when none has a label. */
int knn_graph_label_range(knn_graph *g, double *lo, double *hi);
/* cffi-end */

#endif
