/* kNN estimators of differential entropy: Kozachenko-Leonenko in Kraskov's digamma form, and the
 * manifold-entropy diversity score of MEE.
 *
 * Kozachenko & Leonenko (Probl. Inf. Transm. 1987), in the form of Kraskov, Stoegbauer & Grassberger
 * ("Estimating mutual information", Phys. Rev. E 2004, eq. 20, Euclidean norm):
 *     H^ = psi(n) - psi(k) + log V_d + (d / n) sum_i log r_i,
 * r_i the Euclidean distance from row i to its k-th nearest neighbour among the other rows, V_d =
 * pi^(d/2) / Gamma(d/2 + 1) the volume of the unit d-ball, psi the digamma function; in nats. (The
 * 1987 paper has log(n - 1) for psi(n) and k = 1; the difference is O(1/n).) Consistent for fixed k as
 * n grows; in high dimension it is biased low by the curse of dimensionality (Gao, Ver Steeg & Galstyan,
 * AISTATS 2015), so compare values of one table and one k, not against closed forms in d >> 10.
 * A row whose k-th neighbour lies at distance 0 (k or more copies of it) makes log r_i = -infinity: that
 * is an error naming the count, not a silent -inf (raise k above the largest number of copies, or
 * deduplicate).
 *
 * MEE (Liu et al., "Combating Mode Collapse in GANs via Manifold Entropy Estimation", AAAI 2023; the
 * authors' code computes it in `enrtopy_loss`): each embedding's smallest mean squared difference to the
 * others (||x - y||^2 / d), averaged over the batch, in log: log(mean_i r_i^2 / d). Generalised here to
 * the k-th neighbour (k = 1 is theirs). It is a diversity score for comparing sets of one dimension (higher
 * = more spread, mode collapse drives it down), not an entropy in nats. */
#include <math.h>
#include <stdlib.h>

#include "analytics/knn_analytics.h"

double knn_an_digamma(double x) {
    double acc = 0.0;
    while (x < 6.0) { /* psi(x) = psi(x + 1) - 1 / x */
        acc -= 1.0 / x;
        x += 1.0;
    }
    double f = 1.0 / (x * x);
    return acc + log(x) - 0.5 / x - f * (1.0 / 12 - f * (1.0 / 120 - f * (1.0 / 252 - f * (1.0 / 240 - f / 132))));
}

knn_status knn_an_entropy(const float *X, size_t n, size_t d, size_t k, size_t threads, double out[2],
                          knn_error *err) {
    int64_t *ids = NULL;
    float *dist = NULL;
    out[0] = out[1] = NAN;
    if (k == 0) return knn_error_set(err, KNN_EINVAL, "k must be >= 1, got 0");
    if (n <= k) {
        return knn_error_set(err, KNN_EINVAL, "k = %zu needs at least k + 1 = %zu rows (each row's neighbours leave "
                             "the row out), got %zu; lower k or add rows", k, k + 1, n);
    }
    ids = malloc(n * k * sizeof *ids);
    dist = malloc(n * k * sizeof *dist);
    if (!ids || !dist) {
        knn_error_set(err, KNN_ENOMEM, "out of memory for the neighbour lists of %zu rows (k = %zu)", n, k);
        goto cleanup;
    }
    if (knn_an_neighbors_e(X, n, NULL, 0, d, KNN_METRIC_L2, k, 1, threads, ids, dist, err) != KNN_OK) goto cleanup;
    double slog = 0.0, ssq = 0.0;
    size_t zero = 0;
    for (size_t i = 0; i < n; i++) {
        double r2 = dist[i * k + k - 1];
        if (!(r2 > 0)) {
            zero++;
            continue;
        }
        slog += 0.5 * log(r2);
        ssq += r2;
    }
    if (zero) {
        knn_error_set(err, KNN_EDATA, "%zu of the %zu rows have their k-th nearest neighbour at distance 0 (k = %zu or "
                      "more copies of one vector), and log 0 is -infinity; raise k above the largest number of "
                      "copies, or remove duplicates (SELECT DISTINCT)", zero, n, k);
        goto cleanup;
    }
    const double dd = (double)d, dn = (double)n;
    const double log_vd = 0.5 * dd * 1.1447298858494002 /* log pi */ - lgamma(0.5 * dd + 1.0);
    out[0] = knn_an_digamma(dn) - knn_an_digamma((double)k) + log_vd + dd / dn * slog;
    out[1] = log(ssq / dn / dd);
cleanup:
    free(ids);
    free(dist);
    return err->status;
}
