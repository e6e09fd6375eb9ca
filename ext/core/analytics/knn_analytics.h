/* Shared helpers of the kNN analytics family (knn_analytics_*.c): counter-based random numbers and
 * the exact neighbour lists every estimator starts from.
 *
 * Randomness is a hash of (seed, item, draw) — splitmix64's finaliser — never a sequential stream, so a
 * result depends only on the seed and the item's position, not on thread count or evaluation order. */
#ifndef KNN_ANALYTICS_H
#define KNN_ANALYTICS_H

#include <stddef.h>
#include <stdint.h>

#include "knn_api.h"
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

#endif
