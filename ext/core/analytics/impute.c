/* kNN imputation and SMOTE: two data-preparation steps on neighbour lists.
 *
 * Imputation. A receiver row (missing value) has k neighbours among the donor rows (value observed).
 *   mean mode: the (weighted) mean of the donors' values — scikit-learn's KNNImputer when the covariates
 *              are complete (its nan-Euclidean distance then orders donors as the Euclidean one does);
 *   draws:     kNNSampler (digest C3; SAP/knn-sampler): each draw is the value of one neighbour chosen
 *              uniformly, which samples the conditional distribution rather than its mean; repeated draws
 *              give multiple imputation. The interval is the [q_lo, q_hi] quantile of the k neighbour
 *              values (linear interpolation, numpy's default).
 * Draw r of receiver q picks neighbour hash(seed, q, r) mod k: reproducible at any thread count.
 *
 * SMOTE (Chawla et al., JAIR 2002; digest papers-2 C1): each synthetic row takes a minority parent x
 * and one of its k nearest minority neighbours x' (the row itself left out) and emits
 * x + gap * (x' - x) with one gap ~ U[0, 1) per row, i.e. a point on the segment (the imbalanced-learn
 * convention, not the per-attribute box of the published pseudo-code). Parents are drawn uniformly with
 * replacement, as imbalanced-learn does. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "analytics/knn_analytics.h"

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double quantile_sorted(const double *v, size_t n, double q) {
    double pos = q * (double)(n - 1);
    size_t lo = (size_t)pos;
    if (lo >= n - 1) return v[n - 1];
    double f = pos - (double)lo;
    return v[lo] + (v[lo + 1] - v[lo]) * f;
}

int knn_an_impute(const int64_t *nbr, const float *dist, size_t nq, size_t stride, size_t k, const double *y,
                  size_t n_donors, const char *metric, int weighting, size_t draws, uint64_t seed, double q_lo,
                  double q_hi, double *out_mean, double *out_draws, double *out_lo, double *out_hi, char *errmsg,
                  size_t errmsg_len) {
    knn_error err;
    knn_error_clear(&err);
    knn_metric m;
    double *v = NULL;
    const char *fn = "knn_impute";
    if (knn_an_metric(fn, metric, &m, &err) != KNN_OK) goto cleanup;
    if (weighting != KNN_W_UNIFORM && weighting != KNN_W_DISTANCE) {
        knn_error_set(&err, KNN_EINVAL, "%s: weighting must be 0 (uniform) or 1 (distance), got %d", fn, weighting);
        goto cleanup;
    }
    if (!(q_lo >= 0 && q_lo <= q_hi && q_hi <= 1)) {
        knn_error_set(&err, KNN_EINVAL, "%s: interval quantiles must satisfy 0 <= lo <= hi <= 1, got %g and %g", fn,
                      q_lo, q_hi);
        goto cleanup;
    }
    if (n_donors == 0) {
        knn_error_set(&err, KNN_EINVAL, "%s: no row has an observed value to impute from", fn);
        goto cleanup;
    }
    if (knn_an_check_nbrs(fn, nbr, nq, stride, k, n_donors, &err) != KNN_OK) goto cleanup;
    for (size_t i = 0; i < n_donors; i++) {
        if (!isfinite(y[i])) {
            knn_error_set(&err, KNN_EDATA, "%s: donor value %zu is NaN or Inf; donors must have finite values", fn, i);
            goto cleanup;
        }
    }
    v = malloc(k * sizeof *v);
    if (!v) {
        knn_error_set(&err, KNN_ENOMEM, "%s: out of memory", fn);
        goto cleanup;
    }
    for (size_t q = 0; q < nq; q++) {
        const int64_t *ni = nbr + q * stride;
        const float *di = dist + q * stride;
        if (out_mean) {
            double s = 0, total = 0;
            int zero = 0;
            if (weighting == KNN_W_DISTANCE) {
                for (size_t j = 0; j < k; j++) zero |= knn_an_scale(m, di[j]) == 0.0;
            }
            for (size_t j = 0; j < k; j++) {
                double w = 1.0;
                if (weighting == KNN_W_DISTANCE) {
                    double sd = knn_an_scale(m, di[j]);
                    w = zero ? (sd == 0.0 ? 1.0 : 0.0) : 1.0 / sd;
                }
                s += w * y[ni[j]];
                total += w;
            }
            out_mean[q] = s / total;
        }
        for (size_t r = 0; out_draws && r < draws; r++) {
            out_draws[q * draws + r] = y[ni[knn_below3(seed, q, r, k)]];
        }
        if (out_lo || out_hi) {
            for (size_t j = 0; j < k; j++) v[j] = y[ni[j]];
            qsort(v, k, sizeof *v, cmp_double);
            if (out_lo) out_lo[q] = quantile_sorted(v, k, q_lo);
            if (out_hi) out_hi[q] = quantile_sorted(v, k, q_hi);
        }
    }
cleanup:
    free(v);
    return knn_error_export(&err, errmsg, errmsg_len);
}

int knn_an_smote(const float *X, size_t n, size_t d, const int64_t *nbr, size_t stride, size_t k, size_t n_new,
                 uint64_t seed, float *out_vecs, int64_t *out_parent, int64_t *out_neighbor, double *out_gap,
                 char *errmsg, size_t errmsg_len) {
    knn_error err;
    knn_error_clear(&err);
    const char *fn = "knn_smote";
    if (n < 2) {
        knn_error_set(&err, KNN_EINVAL, "%s: the minority set has %zu row(s); SMOTE needs at least k + 1 rows", fn, n);
        goto cleanup;
    }
    if (knn_an_check_nbrs(fn, nbr, n, stride, k, n, &err) != KNN_OK) goto cleanup;
    for (size_t s = 0; s < n_new; s++) {
        size_t p = (size_t)knn_below3(seed, s, 0, n);
        size_t j = (size_t)knn_below3(seed, s, 1, k);
        double gap = knn_unif3(seed, s, 2);
        size_t o = (size_t)nbr[p * stride + j];
        const float *a = X + p * d, *b = X + o * d;
        float *dst = out_vecs + s * d;
        for (size_t t = 0; t < d; t++) dst[t] = (float)(a[t] + gap * ((double)b[t] - a[t]));
        out_parent[s] = (int64_t)p;
        out_neighbor[s] = (int64_t)o;
        out_gap[s] = gap;
    }
cleanup:
    return knn_error_export(&err, errmsg, errmsg_len);
}
