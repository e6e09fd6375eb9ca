/* The kNN non-IID / drift test over a row order (Cummings, Mueller et al., "Detecting Dataset Drift and
 * Non-IID Sampling via k-Nearest Neighbors"; cleanlab's NonIIDIssueManager; digest C2).
 *
 * Given the kNN graph of rows at positions 0..n-1, every (row, neighbour) pair has an index distance
 * |i - j| in 1..n-1. Under IID ordering a pair's index distance follows P(t) = 2(n - t) / (n(n - 1)),
 * whose CDF is F(t) = (2nt - t(t + 1)) / (n(n - 1)). The statistic is the Kolmogorov-Smirnov distance
 * between the pairs' empirical CDF and F. Drift (or any order where neighbours sit close in the order)
 * piles index distances near 1.
 *
 * p-value: a permutation test (the graph fixed, positions permuted uniformly, the statistic recomputed);
 * p = (1 + #{KS_perm >= KS_obs}) / (1 + permutations), exact under exchangeability. cleanlab smooths the
 * permuted values with a Gaussian KDE instead; the plain count keeps the test's level exact.
 * Permutation b is a Fisher-Yates shuffle driven by hash(seed, b, step).
 *
 * Per-row score (this implementation's own, simpler than cleanlab's): the mean index distance to a
 * row's neighbours divided by its expectation for a uniformly random other row; ~1 under IID, << 1 for
 * rows whose neighbours sit next to them in the order. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "analytics/knn_analytics.h"

static double ks_stat(const size_t *hist, size_t n, size_t pairs) {
    double cum = 0, best = 0, nn1 = (double)n * (double)(n - 1);
    for (size_t t = 1; t < n; t++) {
        cum += (double)hist[t];
        double ecdf = cum / (double)pairs;
        double f = (2.0 * (double)n * (double)t - (double)t * (double)(t + 1)) / nn1;
        double diff = fabs(ecdf - f);
        if (diff > best) best = diff; /* both CDFs are step functions on the integers */
    }
    return best;
}

int knn_an_iid_test(const int64_t *nbr, size_t n, size_t stride, size_t k, size_t permutations, uint64_t seed,
                    double *out_stat, double *out_p, double *out_scores, char *errmsg, size_t errmsg_len) {
    knn_error err;
    knn_error_clear(&err);
    const char *fn = "knn_iid_test";
    size_t *hist = NULL, *perm = NULL;
    *out_stat = NAN;
    *out_p = NAN;
    if (n < 3) {
        knn_error_set(&err, KNN_EINVAL, "%s: needs at least 3 rows, got %zu", fn, n);
        goto cleanup;
    }
    if (knn_an_check_nbrs(fn, nbr, n, stride, k, n, &err) != KNN_OK) goto cleanup;
    hist = calloc(n, sizeof *hist);
    perm = malloc(n * sizeof *perm);
    if (!hist || !perm) {
        knn_error_set(&err, KNN_ENOMEM, "%s: out of memory", fn);
        goto cleanup;
    }
    size_t pairs = 0;
    for (size_t i = 0; i < n; i++) {
        double sum = 0;
        for (size_t j = 0; j < k; j++) {
            size_t o = (size_t)nbr[i * stride + j];
            if (o == i) continue;
            size_t t = o > i ? o - i : i - o;
            hist[t]++;
            pairs++;
            sum += (double)t;
        }
        if (out_scores) {
            /* E|i - J| for J uniform over the other n - 1 rows */
            double a = (double)i, b = (double)(n - 1 - i);
            double expect = (a * (a + 1) / 2 + b * (b + 1) / 2) / (double)(n - 1);
            out_scores[i] = sum / (double)k / expect;
        }
    }
    if (pairs == 0) {
        knn_error_set(&err, KNN_EINVAL, "%s: no neighbour pairs (every neighbour is the row itself)", fn);
        goto cleanup;
    }
    double obs = ks_stat(hist, n, pairs);
    size_t ge = 0;
    for (size_t b = 0; b < permutations; b++) {
        for (size_t i = 0; i < n; i++) perm[i] = i;
        for (size_t i = n - 1; i > 0; i--) {
            size_t j = (size_t)knn_below3(seed, b, i, i + 1);
            size_t tmp = perm[i];
            perm[i] = perm[j];
            perm[j] = tmp;
        }
        memset(hist, 0, n * sizeof *hist);
        for (size_t i = 0; i < n; i++) {
            for (size_t j = 0; j < k; j++) {
                size_t o = (size_t)nbr[i * stride + j];
                if (o == i) continue;
                size_t pi = perm[i], po = perm[o];
                hist[pi > po ? pi - po : po - pi]++;
            }
        }
        ge += ks_stat(hist, n, pairs) >= obs;
    }
    *out_stat = obs;
    *out_p = (1.0 + (double)ge) / (1.0 + (double)permutations);
cleanup:
    free(hist);
    free(perm);
    return knn_error_export(&err, errmsg, errmsg_len);
}
