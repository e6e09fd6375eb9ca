/* Nearest-class-mean (prototype) classification: Prototypical Networks (Snell, Swersky & Zemel, NeurIPS
 * 2017; digest papers-1 C8). Each class's prototype is the mean of its labelled rows; a query takes the
 * class of the nearest prototype, with
 *     p(c | x) = softmax_c(-dist(x, mean_c) / temperature)
 * over the classes, the paper's classifier with its squared Euclidean distance (metric l2, the default;
 * with temperature 1 it is exactly theirs). cosine compares directions (1 - cos to the class mean, whose
 * direction is the mean of the unnormalised rows), ip uses -<x, mean_c>. The label is scikit-learn's
 * NearestCentroid's (Euclidean): the squared distance has the same argmin. Ties go to the smaller class
 * code, i.e. the smaller label. Means accumulate in double; distances use the SIMD row kernels. O(n d)
 * for the means and O(nq C d) for the queries. */
#include <math.h>
#include <stdlib.h>

#include "analytics/knn_analytics.h"
#include "kernels/knn_kernels.h"

knn_status knn_an_prototype(const float *X, size_t n, const int32_t *codes, size_t n_classes, const float *Q,
                            size_t nq, size_t d, knn_metric metric, double temperature, int32_t *out_label,
                            double *out_dist, double *out_prob, knn_error *err) {
    double *sum = NULL, *cnt = NULL, *p = NULL;
    float *M = NULL, *buf = NULL, *qn = NULL;
    if (n_classes == 0 || n == 0) {
        return knn_error_set(err, KNN_EINVAL, "no labelled rows: give at least one row with a label (rows with a NULL "
                             "label are the ones classified)");
    }
    if (d == 0) return knn_error_set(err, KNN_EINVAL, "vectors must have at least one dimension");
    if (!(temperature > 0) || !isfinite(temperature)) {
        return knn_error_set(err, KNN_EINVAL, "temperature must be a positive number, got %g", temperature);
    }
    sum = calloc(n_classes * d, sizeof *sum);
    cnt = calloc(n_classes, sizeof *cnt);
    M = malloc(n_classes * d * sizeof *M);
    buf = malloc(n_classes * sizeof *buf);
    p = malloc(n_classes * sizeof *p);
    qn = malloc(d * sizeof *qn);
    if (!sum || !cnt || !M || !buf || !p || !qn) {
        knn_error_set(err, KNN_ENOMEM, "out of memory for %zu class means of dimension %zu", n_classes, d);
        goto cleanup;
    }
    for (size_t i = 0; i < n; i++) {
        if (codes[i] < 0 || (size_t)codes[i] >= n_classes) {
            knn_error_set(err, KNN_EINVAL, "class code %d of row %zu is outside 0..%zu", codes[i], i, n_classes - 1);
            goto cleanup;
        }
        double *s = sum + (size_t)codes[i] * d;
        for (size_t j = 0; j < d; j++) s[j] += X[i * d + j];
        cnt[codes[i]] += 1.0;
    }
    for (size_t c = 0; c < n_classes; c++) {
        if (cnt[c] == 0) {
            knn_error_set(err, KNN_EINVAL, "class code %zu has no rows", c);
            goto cleanup;
        }
        double nrm = 0.0;
        for (size_t j = 0; j < d; j++) {
            double v = sum[c * d + j] / cnt[c];
            sum[c * d + j] = v;
            nrm += v * v;
        }
        if (metric == KNN_METRIC_COSINE && !(nrm > 0)) {
            knn_error_set(err, KNN_EDATA, "the mean of class code %zu is the zero vector, which has no direction for "
                          "metric=cosine; use metric=l2", c);
            goto cleanup;
        }
        const double inv = metric == KNN_METRIC_COSINE ? 1.0 / sqrt(nrm) : 1.0;
        for (size_t j = 0; j < d; j++) M[c * d + j] = (float)(sum[c * d + j] * inv);
    }
    const knn_kernels *kern = knn_kernels_best();
    for (size_t q = 0; q < nq; q++) {
        const float *x = Q + q * d;
        if (metric == KNN_METRIC_L2) {
            kern->l2sq_rows(x, M, n_classes, d, buf);
        } else {
            double s = 0.0;
            for (size_t j = 0; j < d; j++) s += (double)x[j] * x[j];
            if (metric == KNN_METRIC_COSINE && !(s > 0)) {
                knn_error_set(err, KNN_EDATA, "query row %zu is a zero vector, which has no direction for "
                              "metric=cosine", q);
                goto cleanup;
            }
            const double inv = metric == KNN_METRIC_COSINE ? 1.0 / sqrt(s) : 1.0;
            for (size_t j = 0; j < d; j++) qn[j] = (float)(x[j] * inv);
            kern->dot_rows(qn, M, n_classes, d, buf);
            for (size_t c = 0; c < n_classes; c++) buf[c] = metric == KNN_METRIC_COSINE ? 1.0f - buf[c] : -buf[c];
        }
        size_t best = 0;
        for (size_t c = 1; c < n_classes; c++) best = buf[c] < buf[best] ? c : best;
        double z = 0.0;
        for (size_t c = 0; c < n_classes; c++) {
            p[c] = exp(-((double)buf[c] - buf[best]) / temperature);
            z += p[c];
        }
        out_label[q] = (int32_t)best;
        if (out_dist) out_dist[q] = buf[best];
        if (out_prob) out_prob[q] = 1.0 / z;
    }
cleanup:
    free(sum);
    free(cnt);
    free(M);
    free(buf);
    free(p);
    free(qn);
    return err->status;
}
