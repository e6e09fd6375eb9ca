/* kNN interpolation of values: inverse-distance-weighted mean of the k nearest source rows' values, the
 * feature propagation of PointNet++ (Qi et al., NeurIPS 2017) that SymPoint (Liu et al., ICLR 2024;
 * digest papers-4 C1) uses to carry primitive-level masks between resolutions:
 *     v^(q) = sum_j w_j v_j / sum_j w_j,   w_j = 1 / dist(q, x_j)^power,
 * distances on the Euclidean scale (the square root of squared l2) or cosine distances (ip distances
 * can be negative and are refused by the callers). power 2 is PointNet++'s default, power 1 is scikit-learn's
 * KNeighborsRegressor(weights='distance'), power 0 the plain mean. PointNet++ adds 1e-8 to the distance;
 * we take scikit-learn's rule instead: when some neighbours are at distance 0, they alone count, equally
 * (an exact match returns its own value, or the mean of the coinciding rows' values). Reported with each
 * value: the distance of the farthest neighbour used, the radius the interpolation reached. Weights are
 * computed as (nearest / dist)^power, the same ratios without overflow for any power. */
#include <math.h>

#include "analytics/knn_analytics.h"

knn_status knn_an_interpolate(const int64_t *nbr, const float *dist, size_t nq, size_t k, const double *y, size_t n_src,
                              knn_metric metric, double power, double *out_value, double *out_reach, knn_error *err) {
    if (!(power >= 0) || !isfinite(power)) {
        return knn_error_set(err, KNN_EINVAL, "power must be a number >= 0 (2 inverse square distance, 1 inverse "
                             "distance, 0 plain mean), got %g", power);
    }
    if (n_src == 0) return knn_error_set(err, KNN_EINVAL, "no source row has a value to interpolate from");
    if (knn_an_check_nbrs("knn_interpolate", nbr, nq, k, k, n_src, err) != KNN_OK) return err->status;
    for (size_t i = 0; i < n_src; i++) {
        if (!isfinite(y[i])) {
            return knn_error_set(err, KNN_EDATA, "value %zu is NaN or Inf; use NULL for a value to interpolate", i);
        }
    }
    for (size_t q = 0; q < nq; q++) {
        const int64_t *ni = nbr + q * k;
        const float *di = dist + q * k;
        double reach = 0.0, near = INFINITY;
        for (size_t j = 0; j < k; j++) {
            double s = knn_an_scale(metric, di[j]);
            reach = s > reach ? s : reach;
            near = s < near ? s : near;
        }
        const int zero = near <= 0.0;
        double num = 0.0, den = 0.0;
        for (size_t j = 0; j < k; j++) {
            /* (near / s)^power: the same ratios as s^-power, never overflowing */
            double s = knn_an_scale(metric, di[j]);
            double w = zero ? (s <= 0.0 ? 1.0 : 0.0) : (power == 0 ? 1.0 : pow(near / s, power));
            num += w * y[ni[j]];
            den += w;
        }
        out_value[q] = num / den;
        if (out_reach) out_reach[q] = reach;
    }
    return KNN_OK;
}
