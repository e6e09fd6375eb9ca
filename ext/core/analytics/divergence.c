/* kNN estimators of divergence between two samples, and of local intrinsic dimensionality.
 *
 * KL (method 0): Wang, Kulkarni & Verdú, "Divergence estimation for multidimensional densities via
 * k-nearest-neighbor distances" (IEEE Trans. IT 2009):
 *     D(P||Q) ~ (d/n) sum_i log(nu_k(i) / rho_k(i)) + log(m / (n - 1)),
 * rho_k(i) the Euclidean distance from P_i to its k-th neighbour in P (itself left out), nu_k(i) to its
 * k-th neighbour in Q; consistent for fixed k.
 * Renyi-alpha (method 1): Póczos & Schneider, "On the estimation of alpha-divergences" (AISTATS 2011):
 *     D_a ~ 1/(a - 1) log( (1/n) sum_i [(n - 1) rho_k^d / (m nu_k^d)]^(1 - a) B_{k,a} ),
 *     B_{k,a} = Gamma(k)^2 / (Gamma(k - a + 1) Gamma(k + a - 1)), evaluated in log space.
 * Ratio (method 2, KL) and (method 3, Renyi): the nearest-neighbour-ratio estimator of Noshad, Moon,
 * Yasaei Sekeh & Hero (digest C1): in the joint set, a Q row's k neighbours hold N_j rows of P and M_j
 * of Q; R_j = eta N_j / (M_j + 1), eta = m / n, estimates dP/dQ at Q_j; KL = mean_j R_j log R_j (R = 0
 * contributes 0). It needs no dimension. Renyi = 1/(a-1) log mean_j T_j with T_j estimating (dP/dQ)^a:
 *   0 < a < 1: T_j = eta^a Gamma(N+1) / Gamma(N+1-a) * Gamma(M+1) / Gamma(M+1+a), M = k - N. The plug-in R_j^a
 *     is biased at every n for fixed k (N is Binomial(k, pi), dP/dQ = eta pi / (1 - pi), and x -> x^a is
 *     concave: +0.17 at k = 10 on two unit Gaussians one apart). For integer a this T_j has expectation
 *     exactly (eta pi / (1 - pi))^a P(Binomial(k, pi) <= k - a) (sum C(k, N - a) pi^N (1-pi)^(k-N)), and at
 *     a = 1 it is the estimator's own R_j; for 0 < a < 1 the bias falls to ~0.02 at k = 10 (our derivation,
 *     checked by simulation in tests/core/test_analytics.py).
 *   a > 1: T_j = R_j^a. The mean of (dP/dQ)^a is then carried by rows where P dominates and R_j saturates
 *     at eta k, so every finite-k form reads low or high by O(1/k); use k of order sqrt(n + m) or the
 *     distance estimator (method 1) there. Documented in knnsql.analytics.divergence.
 * d is the ambient dimension, distances are Euclidean; duplicated rows (a zero distance) are an error
 * for methods 0 and 1.
 *
 * LID (Levina & Bickel, NIPS 2004; Amsaleg et al. KDD 2015): per row
 *     m_k(x) = [ 1/(k-1) sum_{j<k} log(r_k / r_j) ]^-1
 * over its k nearest neighbours (itself left out), and for the table MacKay & Ghahramani's pooled
 * estimate [mean_x 1/m_k(x)]^-1. Rows with a zero distance among their neighbours get NaN. */
#include <math.h>
#include <stdlib.h>

#include "analytics/knn_analytics.h"

static knn_status div_check(const char *fn, size_t n, size_t m, size_t d, size_t k, int method, double alpha,
                            knn_error *err) {
    if (n == 0 || m == 0) {
        return knn_error_set(err, KNN_EINVAL, "%s: both sets need rows (got %zu in P and %zu in Q)", fn, n, m);
    }
    if (d == 0) return knn_error_set(err, KNN_EINVAL, "%s: vectors must have at least one dimension", fn);
    if (k == 0) return knn_error_set(err, KNN_EINVAL, "%s: k must be >= 1, got 0", fn);
    if (method < 0 || method > 3) {
        return knn_error_set(err, KNN_EINVAL, "%s: unknown method %d; use 0 kl, 1 renyi, 2 ratio-kl, 3 ratio-renyi",
                             fn, method);
    }
    if ((method == 0 || method == 1) && (k >= n || k > m)) {
        return knn_error_set(err, KNN_EINVAL, "%s: k = %zu needs more than k rows in P and at least k in Q "
                             "(got %zu and %zu); lower k", fn, k, n, m);
    }
    if (method >= 2 && k >= n + m) {
        return knn_error_set(err, KNN_EINVAL, "%s: k = %zu needs more than k rows in P and Q together", fn, k);
    }
    if (method == 1 || method == 3) {
        if (!(alpha > 0) || alpha == 1 || !isfinite(alpha)) {
            return knn_error_set(err, KNN_EINVAL, "%s: alpha must be positive and not 1 (alpha = 1 is KL), got %g", fn,
                                 alpha);
        }
        if (method == 1 && !((double)k - alpha + 1 > 0 && (double)k + alpha - 1 > 0)) {
            return knn_error_set(err, KNN_EINVAL, "%s: the Renyi estimator needs k > alpha - 1; raise k", fn);
        }
    }
    return KNN_OK;
}

int knn_an_divergence(const float *P, size_t n, const float *Q, size_t m, size_t d, size_t k, int method,
                      double alpha, size_t threads, double *out, char *errmsg, size_t errmsg_len) {
    knn_error err;
    knn_error_clear(&err);
    const char *fn = "knn_divergence";
    int64_t *ids = NULL;
    float *rho = NULL, *nu = NULL, *Z = NULL;
    *out = NAN;
    if (div_check(fn, n, m, d, k, method, alpha, &err) != KNN_OK) goto cleanup;
    if (method <= 1) {
        ids = malloc(n * k * sizeof *ids);
        rho = malloc(n * k * sizeof *rho);
        nu = malloc(n * k * sizeof *nu);
        if (!ids || !rho || !nu) {
            knn_error_set(&err, KNN_ENOMEM, "%s: out of memory", fn);
            goto cleanup;
        }
        if (knn_an_neighbors_e(P, n, NULL, 0, d, KNN_METRIC_L2, k, 1, threads, ids, rho, &err) != KNN_OK) goto cleanup;
        if (knn_an_neighbors_e(Q, m, P, n, d, KNN_METRIC_L2, k, 0, threads, ids, nu, &err) != KNN_OK) goto cleanup;
        double acc = 0, lmax = -INFINITY;
        double *terms = (double *)malloc(n * sizeof *terms);
        if (!terms) {
            knn_error_set(&err, KNN_ENOMEM, "%s: out of memory", fn);
            goto cleanup;
        }
        for (size_t i = 0; i < n; i++) {
            double r = rho[i * k + k - 1], v = nu[i * k + k - 1];
            if (!(r > 0) || !(v > 0)) {
                free(terms);
                knn_error_set(&err, KNN_EDATA, "%s: row %zu of P has a k-th neighbour at distance 0 (duplicated "
                              "rows); raise k or remove duplicates", fn, i);
                goto cleanup;
            }
            double lr = 0.5 * log(r), lv = 0.5 * log(v); /* squared L2 -> log Euclidean */
            if (method == 0) {
                acc += lv - lr;
            } else {
                terms[i] = (1 - alpha) * (log((double)(n - 1)) - log((double)m) + (double)d * (lr - lv));
                if (terms[i] > lmax) lmax = terms[i];
            }
        }
        if (method == 0) {
            *out = (double)d / (double)n * acc + log((double)m / (double)(n - 1));
        } else {
            double s = 0;
            for (size_t i = 0; i < n; i++) s += exp(terms[i] - lmax);
            double logb = 2 * lgamma((double)k) - lgamma((double)k - alpha + 1) - lgamma((double)k + alpha - 1);
            *out = (lmax + log(s / (double)n) + logb) / (alpha - 1);
        }
        free(terms);
    } else {
        size_t nz = n + m;
        Z = malloc(nz * d * sizeof *Z);
        ids = malloc(nz * k * sizeof *ids);
        rho = malloc(nz * k * sizeof *rho);
        if (!Z || !ids || !rho) {
            knn_error_set(&err, KNN_ENOMEM, "%s: out of memory", fn);
            goto cleanup;
        }
        for (size_t i = 0; i < n * d; i++) Z[i] = P[i];
        for (size_t i = 0; i < m * d; i++) Z[n * d + i] = Q[i];
        if (knn_an_neighbors_e(Z, nz, NULL, 0, d, KNN_METRIC_L2, k, 1, threads, ids, rho, &err) != KNN_OK) {
            goto cleanup;
        }
        double eta = (double)m / (double)n, acc = 0;
        for (size_t j = n; j < nz; j++) {
            size_t np = 0;
            for (size_t t = 0; t < k; t++) np += (size_t)ids[j * k + t] < n;
            double R = eta * (double)np / (double)(k - np + 1);
            if (method == 2) {
                acc += R > 0 ? R * log(R) : 0.0;
            } else if (alpha < 1) {
                double M = (double)(k - np), N = (double)np;
                acc += exp(alpha * log(eta) + lgamma(N + 1) - lgamma(N + 1 - alpha) + lgamma(M + 1) -
                           lgamma(M + 1 + alpha));
            } else {
                acc += pow(R, alpha);
            }
        }
        acc /= (double)m;
        *out = method == 2 ? acc : log(acc) / (alpha - 1);
    }
cleanup:
    free(ids);
    free(rho);
    free(nu);
    free(Z);
    return knn_error_export(&err, errmsg, errmsg_len);
}

int knn_an_lid(const float *dist, size_t n, size_t stride, size_t k, const char *metric, double *out_lid,
               double *out_rk, double *out_table, char *errmsg, size_t errmsg_len) {
    knn_error err;
    knn_error_clear(&err);
    knn_metric m;
    const char *fn = "knn_lid";
    if (knn_an_metric(fn, metric, &m, &err) != KNN_OK) goto cleanup;
    if (k < 2) {
        knn_error_set(&err, KNN_EINVAL, "%s: k must be >= 2 (the estimate uses the ratios r_k / r_j, j < k), got %zu",
                      fn, k);
        goto cleanup;
    }
    if (stride < k) {
        knn_error_set(&err, KNN_EINVAL, "%s: row stride %zu is smaller than k = %zu", fn, stride, k);
        goto cleanup;
    }
    double inv_sum = 0;
    size_t used = 0;
    for (size_t i = 0; i < n; i++) {
        const float *di = dist + i * stride;
        double rk = knn_an_scale(m, di[k - 1]);
        double s = 0;
        int ok = rk > 0 && isfinite(rk);
        for (size_t j = 0; ok && j + 1 < k; j++) {
            double r = knn_an_scale(m, di[j]);
            if (!(r > 0)) ok = 0;
            else s += log(rk / r);
        }
        double inv = s / (double)(k - 1); /* 1 / m_k */
        if (out_rk) out_rk[i] = rk;
        if (ok && inv > 0) {
            out_lid[i] = 1.0 / inv;
            inv_sum += inv;
            used++;
        } else {
            out_lid[i] = NAN;
        }
    }
    if (out_table) *out_table = used && inv_sum > 0 ? (double)used / inv_sum : NAN;
cleanup:
    return knn_error_export(&err, errmsg, errmsg_len);
}
