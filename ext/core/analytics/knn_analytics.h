/* Shared helpers of the kNN analytics family (knn_analytics_*.c): counter-based random numbers and
 * the exact neighbour lists every estimator starts from.
 *
 * Randomness is a hash of (seed, item, draw) — splitmix64's finaliser — never a sequential stream, so a
 * result depends only on the seed and the item's position, not on thread count or evaluation order. */
#ifndef KNN_ANALYTICS_H
#define KNN_ANALYTICS_H

#include <stddef.h>
#include <stdint.h>

#include "graph/knn_graph.h"
#include "base/knn_error.h"
#include "base/knn_metric.h"

static inline uint64_t knn_mix64(uint64_t x) {
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

/* A 64-bit hash of (seed, a, b). */
static inline uint64_t knn_hash3(uint64_t seed, uint64_t a, uint64_t b) {
    return knn_mix64(knn_mix64(knn_mix64(seed) ^ a) ^ (b * 0xd6e8feb86659fd93ULL));
}

/* Uniform double in [0, 1) from (seed, a, b). */
static inline double knn_unif3(uint64_t seed, uint64_t a, uint64_t b) {
    return (double)(knn_hash3(seed, a, b) >> 11) * 0x1.0p-53;
}

/* Uniform integer in [0, n) from (seed, a, b) (n >= 1; bias below 2^-40 for n < 2^24). */
static inline uint64_t knn_below3(uint64_t seed, uint64_t a, uint64_t b, uint64_t n) {
    return (uint64_t)(knn_unif3(seed, a, b) * (double)n);
}

/* Weighting schemes of knn_an_classify / knn_an_regress / knn_an_impute. */
enum { KNN_W_UNIFORM = 0, KNN_W_DISTANCE = 1, KNN_W_SOFTMAX = 2 };

/* Metric parsed from a C string, with the caller's function name in the error. */
knn_status knn_an_metric(const char *fn, const char *metric, knn_metric *out, knn_error *err);

/* Euclidean-scale distance: sqrt of a squared-L2 distance, the distance itself otherwise. */
static inline double knn_an_scale(knn_metric m, float dist) {
    double x = dist < 0 ? 0.0 : (double)dist;
    return m == KNN_METRIC_L2 ? __builtin_sqrt(x) : x;
}

/* knn_predict's refine_ef: a vote is unsettled when replacing this many of its k neighbours could
 * change it (knn_an_unsettled; knnsql/analytics.py's REFINE_FLIPS is the same number). */
#define KNN_REFINE_FLIPS 2

/* knn_an_neighbors with a knn_error (the core entry of every estimator). */
knn_status knn_an_neighbors_e(const float *X, size_t n, const float *Q, size_t nq, size_t d, knn_metric metric,
                              size_t k, int self, size_t threads, int64_t *out_ids, float *out_dists, knn_error *err);

/* Checks a neighbour list: every id of the first k columns (stride) in [0, n). */
knn_status knn_an_check_nbrs(const char *fn, const int64_t *nbr, size_t nq, size_t stride, size_t k, size_t n,
                             knn_error *err);

/* knn_an_graph_recall with a knn_error (the SQL glue's entry). */
struct knn_graph;
knn_status knn_an_graph_recall_e(struct knn_graph *g, const float *Q, size_t nq, size_t k, size_t ef, int windowed,
                                 double lo, double hi, size_t threads, double *out_recall, knn_error *err);
/* Mean recall@k of a graph index over the stored vectors of up to nq live rows, spread evenly, each left out
 * of its own answer (an upper bound: see recall.c); ef 0: the index's default. *out_used the queries
 * measured (0 and NaN when none has a neighbour). */
knn_status knn_an_graph_self_recall(struct knn_graph *g, size_t k, size_t nq, size_t ef, double *out_mean,
                                    size_t *out_used, knn_error *err);
/* The smallest ef on the ladder k, x1.08, ... (at most max_ef) whose recall@k over the held-out queries Q
 * (nq x dim), less one standard error, reaches target, with that recall; max_ef and its recall when none does. */
knn_status knn_an_graph_tune_ef(struct knn_graph *g, size_t k, const float *Q, size_t nq, double target,
                                size_t max_ef, size_t *out_ef, double *out_recall, size_t *out_used, knn_error *err);

/* ---- wave-2 estimators (internal: SQL calls them; Python reaches them through SQL) ----------------- */

/* Rank-sum test of reference scores x (n) against candidate scores y (m) (analytics/rank_test.c):
 * out = {Q (Liu-Singh), z (scipy ranksums), p (alternative 0 greater, 1 less, 2 two-sided), U (Mann-Whitney U of x)}. */
knn_status knn_an_rank_sum(const double *x, size_t n, const double *y, size_t m, int alternative, double out[4],
                           knn_error *err);

/* Digamma function psi(x), x > 0. */
double knn_an_digamma(double x);
/* Kozachenko-Leonenko entropy (nats, Kraskov's digamma form) and the MEE diversity score log(mean r_k^2 / d)
 * of the n rows X (analytics/entropy.c): out = {entropy, mee}. */
knn_status knn_an_entropy(const float *X, size_t n, size_t d, size_t k, size_t threads, double out[2],
                          knn_error *err);

/* Bandwidth rules of knn_an_kde (analytics/kde.c). */
enum { KNN_KDE_GIVEN = 0, KNN_KDE_SCOTT = 1, KNN_KDE_SILVERMAN = 2 };
/* *h: checked when given, else computed by the rule from the n reference rows R. */
knn_status knn_an_kde_bandwidth(const float *R, size_t n, size_t d, int rule, double *h, knn_error *err);
/* Gaussian KDE log density at nq queries Q from nr reference rows R, over each query's k nearest reference rows
 * (k >= nr: every row, exactly); out_ess (effective rows) and out_err (bound on the truncation's log error) may be NULL. */
knn_status knn_an_kde(const float *R, size_t nr, const float *Q, size_t nq, size_t d, size_t k, double h,
                      size_t threads, double *out_log, double *out_ess, double *out_err, knn_error *err);

/* Nearest class mean (analytics/prototype.c): codes[n] in 0..n_classes-1 (every class present); per query the
 * class code, its distance and softmax(-dist / temperature) probability (out_dist, out_prob may be NULL). */
knn_status knn_an_prototype(const float *X, size_t n, const int32_t *codes, size_t n_classes, const float *Q,
                            size_t nq, size_t d, knn_metric metric, double temperature, int32_t *out_label,
                            double *out_dist, double *out_prob, knn_error *err);

/* Inverse-distance-weighted kNN interpolation (analytics/interpolate.c) over neighbour lists (row stride k) into
 * n_src source values; out_reach (farthest neighbour's distance) may be NULL. */
knn_status knn_an_interpolate(const int64_t *nbr, const float *dist, size_t nq, size_t k, const double *y, size_t n_src,
                              knn_metric metric, double power, double *out_value, double *out_reach, knn_error *err);

/* The analytics entry points (their public, cffi face; knn_api.h gathers it). */
/* cffi-begin */
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
 * analytics/predict.c); the queries an approximate search should look at again. */
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
/* cffi-end */

#endif
