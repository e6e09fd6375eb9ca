/* Gaussian kernel density estimates at query rows, exact or truncated to the k nearest reference rows,
 * in log space, with the diagnostics that tell which regime the estimate is in.
 *
 *     log p^(x) = log sum_i exp(-||x - y_i||^2 / (2 h^2)) - log n - d log h - (d/2) log(2 pi)
 * (scikit-learn's KernelDensity(kernel='gaussian', bandwidth=h); in one dimension scipy's gaussian_kde
 * with h = its factor times the sample standard deviation). The sum is shifted by the nearest neighbour's
 * squared distance, so it never underflows, whatever d and h.
 *
 * High dimension (Biroli & Mezard, "Kernel Density Estimators in Large Dimensions", 2024; digest C2):
 * with alpha = log(n) / d small, as in embedding tables, the estimate at sensible bandwidths leaves the
 * central-limit regime and, below a bandwidth h_G(alpha), is governed by extreme-value statistics: a few
 * nearest points carry the whole sum. We follow that guidance in three ways:
 *   - truncation to the k nearest reference rows (found by the exact blocked scan), which in that regime
 *     drops nothing that matters, at O(n k) instead of the O(n^2 d) of the full sum, and with a bound on
 *     what it drops: the n - k rows left out are each at least as far as the k-th, so the log density is
 *     low by at most log(1 + (n - k) w_k / sum_kept w) (w_k the k-th kernel weight), reported per row as
 *     `trunc_err` (0 for the exact sum);
 *   - the effective number of contributing rows ESS = (sum w)^2 / sum w^2 per row: ~1-5 is the
 *     extreme-value regime of the paper, where truncation is exact in effect; ESS near k means k is too
 *     small for that bandwidth (trunc_err says by how much);
 *   - k >= n gives the exact full sum (sample/pair_sums.c, the blocked inner-product kernel), for low
 *     dimension and checks.
 * Bandwidth: a number, or Scott's rule sigma n^(-1/(d+4)) or Silverman's sigma (n (d+2) / 4)^(-1/(d+4)),
 * with sigma the root mean per-dimension variance (ddof 1) of the reference rows: scipy's factors for an
 * isotropic kernel. Those rules target the classical regime; in high dimension they give h near sigma and
 * an ESS in the thousands, which the diagnostics make visible. Rows are centred on the reference mean
 * first (distances unchanged; the expanded form of the full sum then keeps its precision). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "analytics/knn_analytics.h"
#include "base/knn_parallel.h"
#include "sample/knn_sample.h"

knn_status knn_an_kde_bandwidth(const float *R, size_t n, size_t d, int rule, double *h, knn_error *err) {
    if (rule == KNN_KDE_GIVEN) {
        if (!(*h > 0) || !isfinite(*h)) {
            return knn_error_set(err, KNN_EINVAL, "bandwidth must be a positive number, 'scott' or 'silverman', got %g",
                                 *h);
        }
        return KNN_OK;
    }
    if (n < 2) {
        return knn_error_set(err, KNN_EINVAL, "the %s bandwidth needs at least 2 reference rows, got %zu; give "
                             "bandwidth=<number>", rule == KNN_KDE_SCOTT ? "scott" : "silverman", n);
    }
    double *mu = calloc(d, sizeof *mu), var = 0.0;
    if (!mu) return knn_error_set(err, KNN_ENOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) {
        for (size_t k = 0; k < d; k++) mu[k] += R[i * d + k];
    }
    for (size_t k = 0; k < d; k++) mu[k] /= (double)n;
    for (size_t i = 0; i < n; i++) {
        for (size_t k = 0; k < d; k++) {
            double t = R[i * d + k] - mu[k];
            var += t * t;
        }
    }
    free(mu);
    var /= (double)(n - 1);
    const double sigma = sqrt(var / (double)d), dd = (double)d, dn = (double)n;
    if (!(sigma > 0)) {
        return knn_error_set(err, KNN_EDATA, "every reference row is the same vector, so the %s bandwidth is 0; give "
                             "bandwidth=<number>", rule == KNN_KDE_SCOTT ? "scott" : "silverman");
    }
    *h = rule == KNN_KDE_SCOTT ? sigma * pow(dn, -1.0 / (dd + 4)) : sigma * pow(dn * (dd + 2) / 4, -1.0 / (dd + 4));
    return KNN_OK;
}

knn_status knn_an_kde(const float *R, size_t nr, const float *Q, size_t nq, size_t d, size_t k, double h,
                      size_t threads, double *out_log, double *out_ess, double *out_err, knn_error *err) {
    float *Rc = NULL, *Qc = NULL, *dist = NULL;
    int64_t *ids = NULL;
    double *mu = NULL, *shift = NULL, *s1 = NULL, *s2 = NULL;
    if (nr == 0) return knn_error_set(err, KNN_EINVAL, "no reference rows to estimate a density from");
    if (d == 0) return knn_error_set(err, KNN_EINVAL, "vectors must have at least one dimension");
    if (k == 0) return knn_error_set(err, KNN_EINVAL, "k must be >= 1, got 0");
    if (!(h > 0) || !isfinite(h)) return knn_error_set(err, KNN_EINVAL, "bandwidth must be positive, got %g", h);
    if (nq == 0) return KNN_OK;
    const int full = k >= nr;
    const size_t kk = full ? 1 : k;
    Rc = malloc(nr * d * sizeof *Rc);
    Qc = malloc(nq * d * sizeof *Qc);
    mu = calloc(d, sizeof *mu);
    ids = malloc(nq * kk * sizeof *ids);
    dist = malloc(nq * kk * sizeof *dist);
    if (!Rc || !Qc || !mu || !ids || !dist) {
        knn_error_set(err, KNN_ENOMEM, "out of memory for the density of %zu rows (k = %zu)", nq, kk);
        goto cleanup;
    }
    for (size_t i = 0; i < nr; i++) {
        for (size_t j = 0; j < d; j++) mu[j] += R[i * d + j];
    }
    for (size_t j = 0; j < d; j++) mu[j] /= (double)nr;
    for (size_t i = 0; i < nr; i++) {
        for (size_t j = 0; j < d; j++) Rc[i * d + j] = (float)(R[i * d + j] - mu[j]);
    }
    for (size_t i = 0; i < nq; i++) {
        for (size_t j = 0; j < d; j++) Qc[i * d + j] = (float)(Q[i * d + j] - mu[j]);
    }
    if (knn_an_neighbors_e(Rc, nr, Qc, nq, d, KNN_METRIC_L2, kk, 0, threads, ids, dist, err) != KNN_OK) goto cleanup;
    const double scale = 0.5 / (h * h);
    const double norm = -log((double)nr) - (double)d * log(h) - 0.5 * (double)d * log(2.0 * 3.14159265358979323846);
    if (full) {
        shift = malloc(nq * sizeof *shift);
        s1 = malloc(nq * sizeof *s1);
        s2 = malloc(nq * sizeof *s2);
        if (!shift || !s1 || !s2) {
            knn_error_set(err, KNN_ENOMEM, "out of memory for the density of %zu rows", nq);
            goto cleanup;
        }
        for (size_t q = 0; q < nq; q++) shift[q] = dist[q];
        knn_pair_in pin = {Rc, nr, NULL, Qc, nq, NULL, d, KNN_PAIR_GAUSS, scale, shift,
                           threads ? threads : knn_cpu_count(), knn_kernels_best()};
        if (knn_pair_sums(&pin, s1, s2, err) != KNN_OK) goto cleanup;
        for (size_t q = 0; q < nq; q++) {
            /* the nearest row's term is 1, so the sum is >= 1 up to float rounding */
            const double s = s1[q] > 1.0 ? s1[q] : 1.0;
            out_log[q] = -shift[q] * scale + log(s) + norm;
            if (out_ess) out_ess[q] = s1[q] * s1[q] / (s2[q] > 0 ? s2[q] : 1.0);
            if (out_err) out_err[q] = 0.0;
        }
    } else {
        for (size_t q = 0; q < nq; q++) {
            const float *dq = dist + q * k;
            const double sh = dq[0];
            double a = 0.0, b = 0.0, wk = 0.0;
            for (size_t j = 0; j < k; j++) {
                double w = exp(-((double)dq[j] - sh) * scale);
                a += w;
                b += w * w;
                wk = w;
            }
            out_log[q] = -sh * scale + log(a) + norm;
            if (out_ess) out_ess[q] = a * a / b;
            if (out_err) out_err[q] = log1p((double)(nr - k) * wk / a);
        }
    }
cleanup:
    free(Rc);
    free(Qc);
    free(mu);
    free(ids);
    free(dist);
    free(shift);
    free(s1);
    free(s2);
    return err->status;
}
