/* Weighted sampling driven by kNN: importance resampling toward a target set and density (coverage)
 * sampling, both selected without replacement by Gumbel-top-k.
 *
 * Importance (DSIR, Xie et al. 2023, digest B4, with the density ratio of digest C1): in the joint set
 * raw ∪ target, a raw row's k neighbours (itself left out) hold N_t target rows and N_r raw rows;
 *     w = eta (N_t + 1/2) / (N_r + 1),   eta = n_raw / n_target,
 * estimates p_target / p_raw there (the 1/2 keeps rows with no target neighbour possible but unlikely).
 * Density (Sachdeva et al., "How to Train Data-Efficient LLMs", digest B5): the kNN density estimate is
 * k / (n V_d r_k^d), so p ∝ density^(-alpha/d) = r_k^alpha, r_k the Euclidean distance to the k-th
 * neighbour; alpha = 0 is uniform, alpha = d is p ∝ 1/density, larger alpha favours sparse regions more.
 * Gumbel-top-k (Vieira 2014; Kool et al. 2019): keys log w_i + G_i, G_i = -log(-log U_i) with
 * U_i = hash(seed, i); the n largest keys are a sample without replacement with probabilities ∝ w,
 * drawn in sequence. Item i's noise depends only on (seed, i). */
#include <math.h>
#include <stdlib.h>

#include "analytics/knn_analytics.h"

int knn_an_importance(const int64_t *nbr, size_t n_raw, size_t stride, size_t k, size_t n_target, double *out_logw,
                      char *errmsg, size_t errmsg_len) {
    knn_error err;
    knn_error_clear(&err);
    const char *fn = "knn_importance";
    if (n_raw == 0 || n_target == 0) {
        knn_error_set(&err, KNN_EINVAL, "%s: both the raw set and the target set need rows (got %zu and %zu)", fn,
                      n_raw, n_target);
        goto cleanup;
    }
    if (knn_an_check_nbrs(fn, nbr, n_raw, stride, k, n_raw + n_target, &err) != KNN_OK) goto cleanup;
    double eta = (double)n_raw / (double)n_target;
    for (size_t i = 0; i < n_raw; i++) {
        size_t nt = 0;
        for (size_t j = 0; j < k; j++) nt += (size_t)nbr[i * stride + j] >= n_raw;
        out_logw[i] = log(eta) + log((double)nt + 0.5) - log((double)(k - nt) + 1.0);
    }
cleanup:
    return knn_error_export(&err, errmsg, errmsg_len);
}

int knn_an_density_logw(const float *dist, size_t n, size_t stride, size_t k, const char *metric, double alpha,
                        double *out_logw, char *errmsg, size_t errmsg_len) {
    knn_error err;
    knn_error_clear(&err);
    knn_metric m;
    const char *fn = "knn_density_sample";
    if (knn_an_metric(fn, metric, &m, &err) != KNN_OK) goto cleanup;
    if (k == 0 || stride < k) {
        knn_error_set(&err, KNN_EINVAL, "%s: k must be between 1 and the row stride %zu, got %zu", fn, stride, k);
        goto cleanup;
    }
    if (!isfinite(alpha)) {
        knn_error_set(&err, KNN_EINVAL, "%s: alpha must be finite, got %g", fn, alpha);
        goto cleanup;
    }
    /* zero radius (duplicates): the smallest positive radius stands in, so weights stay finite */
    double floor_r = INFINITY;
    for (size_t i = 0; i < n; i++) {
        double r = knn_an_scale(m, dist[i * stride + k - 1]);
        if (r > 0 && r < floor_r) floor_r = r;
    }
    if (!isfinite(floor_r)) floor_r = 1.0;
    for (size_t i = 0; i < n; i++) {
        double r = knn_an_scale(m, dist[i * stride + k - 1]);
        out_logw[i] = alpha * log(r > 0 ? r : floor_r);
    }
cleanup:
    return knn_error_export(&err, errmsg, errmsg_len);
}

typedef struct keyed {
    double key;
    size_t i;
} keyed;

static int cmp_key_desc(const void *a, const void *b) {
    const keyed *x = a, *y = b;
    if (x->key != y->key) return x->key < y->key ? 1 : -1;
    return (x->i > y->i) - (x->i < y->i);
}

int knn_an_gumbel_topk(const double *logw, size_t m, size_t n, uint64_t seed, int64_t *out_rank, char *errmsg,
                       size_t errmsg_len) {
    knn_error err;
    knn_error_clear(&err);
    keyed *keys = NULL;
    if (n > m) {
        knn_error_set(&err, KNN_EINVAL, "sample size n = %zu is larger than the %zu candidate rows; lower n", n, m);
        goto cleanup;
    }
    keys = malloc((m ? m : 1) * sizeof *keys);
    if (!keys) {
        knn_error_set(&err, KNN_ENOMEM, "out of memory for %zu sample keys", m);
        goto cleanup;
    }
    for (size_t i = 0; i < m; i++) {
        if (isnan(logw[i]) || logw[i] == INFINITY) {
            knn_error_set(&err, KNN_EDATA, "log weight %zu is %g; weights must be finite and non-negative", i, logw[i]);
            goto cleanup;
        }
        double u = knn_unif3(seed, i, 0x5eed);
        if (u <= 0) u = 0x1.0p-60;
        keys[i].key = logw[i] - log(-log(u));
        keys[i].i = i;
        out_rank[i] = -1;
    }
    qsort(keys, m, sizeof *keys, cmp_key_desc);
    for (size_t r = 0; r < n; r++) out_rank[keys[r].i] = (int64_t)r;
cleanup:
    free(keys);
    return knn_error_export(&err, errmsg, errmsg_len);
}
