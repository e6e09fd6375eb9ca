/* kNN prediction: classification and regression from neighbour lists, and adaptive k.
 *
 * Weights (the scheme names SQL and Python use):
 *   uniform           every neighbour counts 1 (scikit-learn weights='uniform');
 *   distance          1 / distance, with distance on the Euclidean scale (sqrt of squared L2) as
 *                     scikit-learn's weights='distance'; when some neighbours are at distance 0, they alone
 *                     vote, with weight 1 each (scikit-learn's rule);
 *   softmax           exp(-distance / temperature), the kNN-LM / "Rethinking nearest neighbours" vote
 *                     (Wu et al.; Xu et al.): with cosine, exp(sim / T) up to a constant factor.
 * Classes are codes 0..C-1 (callers map labels to codes in sorted order); ties go to the smaller code,
 * i.e. the smaller label, as scikit-learn's argmax over sorted classes does.
 *
 * Adaptive k follows "Adaptive kNN using Expected Accuracy" (digest C7): for each training row and
 * each k in 1..kmax, whether its leave-one-out k-vote is right; a query takes the k with the best mean
 * correctness over its `support` nearest training rows (ties: smaller k).
 *
 * Settled votes (knn_an_unsettled) drive the refinement of approximate neighbour lists (the Python
 * and SQL layers' refine_ef): a vote is unsettled when replacing `flips` of its k neighbours could
 * change the winner. With uniform weights that is a margin (winner's votes minus runner-up's) of at
 * most 2 * flips; with weights, the winner loses its `flips` heaviest voters and the runner-up gains
 * `flips` voters of the largest weight among the k. Graph search misses concentrate in a few queries
 * (those of high local intrinsic dimension; Aumueller & Ceccarello, "The role of local intrinsic
 * dimensionality in benchmarking nearest neighbor search", 2019), and only a miss in an unsettled
 * vote can change a prediction, so re-searching those queries buys the accuracy of exact search where
 * it matters (a per-query beam, as "learned adaptive early termination" (Li et al., SIGMOD 2020) spends
 * more search on hard queries, with the vote as the signal instead of a learned model). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "analytics/knn_analytics.h"

/* Weights of the first k neighbours of one query into w; returns 0 on success. */
static void weights(knn_metric m, const float *dist, size_t k, int scheme, double temperature, double *w) {
    if (scheme == KNN_W_UNIFORM) {
        for (size_t j = 0; j < k; j++) w[j] = 1.0;
        return;
    }
    if (scheme == KNN_W_DISTANCE) {
        int zero = 0;
        for (size_t j = 0; j < k; j++) zero |= knn_an_scale(m, dist[j]) == 0.0;
        for (size_t j = 0; j < k; j++) {
            double s = knn_an_scale(m, dist[j]);
            w[j] = zero ? (s == 0.0 ? 1.0 : 0.0) : 1.0 / s;
        }
        return;
    }
    /* softmax, shifted by the nearest distance so exp never underflows to all zeros */
    double d0 = dist[0];
    for (size_t j = 1; j < k; j++) d0 = dist[j] < d0 ? dist[j] : d0;
    for (size_t j = 0; j < k; j++) w[j] = exp(-((double)dist[j] - d0) / temperature);
}

/* Every training row's class code in 0..n_classes-1, and at least one class. */
static knn_status check_classes(const char *fn, const int32_t *codes, size_t n_train, size_t n_classes,
                                knn_error *err) {
    if (n_classes == 0) {
        return knn_error_set(err, KNN_EINVAL, "%s: no labelled training rows; give at least one row with a label", fn);
    }
    for (size_t i = 0; i < n_train; i++) {
        if (codes[i] < 0 || (size_t)codes[i] >= n_classes) {
            return knn_error_set(err, KNN_EINVAL, "%s: class code %d of training row %zu is outside 0..%zu", fn,
                                 codes[i], i, n_classes - 1);
        }
    }
    return KNN_OK;
}

static knn_status check_common(const char *fn, int scheme, double temperature, knn_error *err) {
    if (scheme < KNN_W_UNIFORM || scheme > KNN_W_SOFTMAX) {
        return knn_error_set(err, KNN_EINVAL, "%s: unknown weighting %d; use 0 uniform, 1 distance, 2 softmax", fn,
                             scheme);
    }
    if (scheme == KNN_W_SOFTMAX && !(temperature > 0 && isfinite(temperature))) {
        return knn_error_set(err, KNN_EINVAL, "%s: temperature must be a positive number, got %g", fn, temperature);
    }
    return KNN_OK;
}

/* k of query q (k_per_query[q], else k), checked to lie in 1..k; 0, with err set, when it does not. */
static size_t query_k(const char *fn, const size_t *k_per_query, size_t q, size_t k, knn_error *err) {
    size_t kq = k_per_query ? k_per_query[q] : k;
    if (kq >= 1 && kq <= k) return kq;
    knn_error_set(err, KNN_EINVAL, "%s: k of query %zu is %zu, outside 1..%zu", fn, q, kq, k);
    return 0;
}

int knn_an_classify(const int64_t *nbr, const float *dist, size_t nq, size_t stride, size_t k, const int32_t *codes,
                    size_t n_train, size_t n_classes, const char *metric, int weighting, double temperature,
                    const size_t *k_per_query, int32_t *out_label, double *out_prob, double *out_probs,
                    char *errmsg, size_t errmsg_len) {
    knn_error err;
    knn_error_clear(&err);
    knn_metric m;
    double *w = NULL, *acc = NULL;
    const char *fn = "knn_predict";
    if (knn_an_metric(fn, metric, &m, &err) != KNN_OK) goto cleanup;
    if (check_common(fn, weighting, temperature, &err) != KNN_OK) goto cleanup;
    if (check_classes(fn, codes, n_train, n_classes, &err) != KNN_OK) goto cleanup;
    if (knn_an_check_nbrs(fn, nbr, nq, stride, k, n_train, &err) != KNN_OK) goto cleanup;
    w = malloc(k * sizeof *w);
    acc = calloc(n_classes, sizeof *acc);
    if (!w || !acc) {
        knn_error_set(&err, KNN_ENOMEM, "%s: out of memory", fn);
        goto cleanup;
    }
    for (size_t q = 0; q < nq; q++) {
        size_t kq = query_k(fn, k_per_query, q, k, &err);
        if (kq == 0) goto cleanup;
        const int64_t *ni = nbr + q * stride;
        weights(m, dist + q * stride, kq, weighting, temperature, w);
        double total = 0;
        for (size_t j = 0; j < kq; j++) {
            acc[codes[ni[j]]] += w[j];
            total += w[j];
        }
        int32_t best = 0;
        for (size_t c = 1; c < n_classes; c++) {
            if (acc[c] > acc[best]) best = (int32_t)c;
        }
        out_label[q] = best;
        if (out_prob) out_prob[q] = total > 0 ? acc[best] / total : 0.0;
        if (out_probs) {
            for (size_t c = 0; c < n_classes; c++) out_probs[q * n_classes + c] = total > 0 ? acc[c] / total : 0.0;
        }
        for (size_t j = 0; j < kq; j++) acc[codes[ni[j]]] = 0;
    }
cleanup:
    free(w);
    free(acc);
    return knn_error_export(&err, errmsg, errmsg_len);
}

int knn_an_regress(const int64_t *nbr, const float *dist, size_t nq, size_t stride, size_t k, const double *y,
                   size_t n_train, const char *metric, int weighting, double temperature, const size_t *k_per_query,
                   double *out, char *errmsg, size_t errmsg_len) {
    knn_error err;
    knn_error_clear(&err);
    knn_metric m;
    double *w = NULL;
    const char *fn = "knn_predict";
    if (knn_an_metric(fn, metric, &m, &err) != KNN_OK) goto cleanup;
    if (check_common(fn, weighting, temperature, &err) != KNN_OK) goto cleanup;
    if (n_train == 0) {
        knn_error_set(&err, KNN_EINVAL, "%s: no labelled training rows; give at least one row with a value", fn);
        goto cleanup;
    }
    if (knn_an_check_nbrs(fn, nbr, nq, stride, k, n_train, &err) != KNN_OK) goto cleanup;
    w = malloc(k * sizeof *w);
    if (!w) {
        knn_error_set(&err, KNN_ENOMEM, "%s: out of memory", fn);
        goto cleanup;
    }
    for (size_t q = 0; q < nq; q++) {
        size_t kq = query_k(fn, k_per_query, q, k, &err);
        if (kq == 0) goto cleanup;
        const int64_t *ni = nbr + q * stride;
        weights(m, dist + q * stride, kq, weighting, temperature, w);
        double s = 0, total = 0;
        for (size_t j = 0; j < kq; j++) {
            s += w[j] * y[ni[j]];
            total += w[j];
        }
        out[q] = total > 0 ? s / total : NAN;
    }
cleanup:
    free(w);
    return knn_error_export(&err, errmsg, errmsg_len);
}

int knn_an_adaptive_k(const int64_t *train_nbr, const float *train_dist, size_t n_train, size_t tstride,
                      const int32_t *codes, size_t n_classes, const int64_t *query_nbr, size_t nq, size_t qstride,
                      size_t kmax, size_t support, const char *metric, int weighting, double temperature,
                      size_t *out_k, char *errmsg, size_t errmsg_len) {
    knn_error err;
    knn_error_clear(&err);
    knn_metric m;
    unsigned char *right = NULL; /* n_train x kmax: LOO vote with k = j+1 neighbours is right */
    double *w = NULL, *acc = NULL, *score = NULL;
    const char *fn = "knn_predict (adaptive k)";
    if (knn_an_metric(fn, metric, &m, &err) != KNN_OK) goto cleanup;
    if (check_common(fn, weighting, temperature, &err) != KNN_OK) goto cleanup;
    if (support == 0) {
        knn_error_set(&err, KNN_EINVAL, "%s: support must be >= 1, got 0", fn);
        goto cleanup;
    }
    if (support > qstride) {
        knn_error_set(&err, KNN_EINVAL, "%s: support %zu needs query neighbour lists of at least that length, got %zu",
                      fn, support, qstride);
        goto cleanup;
    }
    if (n_classes == 0) {
        knn_error_set(&err, KNN_EINVAL, "%s: no labelled training rows", fn);
        goto cleanup;
    }
    if (knn_an_check_nbrs(fn, train_nbr, n_train, tstride, kmax, n_train, &err) != KNN_OK) goto cleanup;
    if (knn_an_check_nbrs(fn, query_nbr, nq, qstride, support, n_train, &err) != KNN_OK) goto cleanup;
    right = malloc(n_train * kmax);
    w = malloc(kmax * sizeof *w);
    acc = calloc(n_classes, sizeof *acc);
    score = malloc(kmax * sizeof *score);
    if (!right || !w || !acc || !score) {
        knn_error_set(&err, KNN_ENOMEM, "%s: out of memory for %zu x %zu vote table", fn, n_train, kmax);
        goto cleanup;
    }
    for (size_t i = 0; i < n_train; i++) {
        const int64_t *ni = train_nbr + i * tstride;
        int32_t best = -1;
        for (size_t j = 0; j < kmax; j++) {
            /* weights depend on the whole prefix under 'distance' (zero-distance rule): recompute per k */
            if (weighting == KNN_W_UNIFORM) {
                int32_t c = codes[ni[j]];
                acc[c] += 1.0;
                if (best < 0 || acc[c] > acc[best] || (acc[c] == acc[best] && c < best)) best = c;
            } else {
                weights(m, train_dist + i * tstride, j + 1, weighting, temperature, w);
                for (size_t t = 0; t <= j; t++) acc[codes[ni[t]]] = 0;
                for (size_t t = 0; t <= j; t++) acc[codes[ni[t]]] += w[t];
                best = codes[ni[0]];
                for (size_t t = 0; t <= j; t++) {
                    int32_t c = codes[ni[t]];
                    if (acc[c] > acc[best] || (acc[c] == acc[best] && c < best)) best = c;
                }
            }
            right[i * kmax + j] = best == codes[i];
        }
        for (size_t j = 0; j < kmax; j++) acc[codes[ni[j]]] = 0;
    }
    for (size_t q = 0; q < nq; q++) {
        for (size_t j = 0; j < kmax; j++) score[j] = 0;
        for (size_t s = 0; s < support; s++) {
            const unsigned char *r = right + (size_t)query_nbr[q * qstride + s] * kmax;
            for (size_t j = 0; j < kmax; j++) score[j] += r[j];
        }
        size_t bj = 0;
        for (size_t j = 1; j < kmax; j++) {
            if (score[j] > score[bj]) bj = j;
        }
        out_k[q] = bj + 1;
    }
cleanup:
    free(right);
    free(w);
    free(acc);
    free(score);
    return knn_error_export(&err, errmsg, errmsg_len);
}

int knn_an_unsettled(const int64_t *nbr, const float *dist, size_t nq, size_t stride, size_t k, const int32_t *codes,
                     size_t n_train, size_t n_classes, const char *metric, int weighting, double temperature,
                     size_t flips, uint8_t *out, char *errmsg, size_t errmsg_len) {
    knn_error err;
    knn_error_clear(&err);
    knn_metric m;
    double *w = NULL, *acc = NULL, *mine = NULL;
    const char *fn = "knn_predict (refine)";
    if (knn_an_metric(fn, metric, &m, &err) != KNN_OK) goto cleanup;
    if (check_common(fn, weighting, temperature, &err) != KNN_OK) goto cleanup;
    if (flips == 0) {
        knn_error_set(&err, KNN_EINVAL, "%s: flips must be >= 1, got 0", fn);
        goto cleanup;
    }
    if (check_classes(fn, codes, n_train, n_classes, &err) != KNN_OK) goto cleanup;
    if (knn_an_check_nbrs(fn, nbr, nq, stride, k, n_train, &err) != KNN_OK) goto cleanup;
    w = malloc(k * sizeof *w);
    mine = malloc(k * sizeof *mine);
    acc = calloc(n_classes, sizeof *acc);
    if (!w || !mine || !acc) {
        knn_error_set(&err, KNN_ENOMEM, "%s: out of memory", fn);
        goto cleanup;
    }
    for (size_t q = 0; q < nq; q++) {
        const int64_t *ni = nbr + q * stride;
        weights(m, dist + q * stride, k, weighting, temperature, w);
        double wmax = 0;
        for (size_t j = 0; j < k; j++) {
            acc[codes[ni[j]]] += w[j];
            wmax = w[j] > wmax ? w[j] : wmax;
        }
        int32_t best = codes[ni[0]];
        for (size_t j = 1; j < k; j++) {
            int32_t c = codes[ni[j]];
            if (acc[c] > acc[best] || (acc[c] == acc[best] && c < best)) best = c;
        }
        double second = 0;
        size_t nm = 0;
        for (size_t j = 0; j < k; j++) {
            int32_t c = codes[ni[j]];
            if (c != best && acc[c] > second) second = acc[c];
            if (c == best) mine[nm++] = w[j];
        }
        /* the winner's `flips` heaviest voters (partial selection: flips is small) */
        double lost = 0;
        for (size_t f = 0; f < flips && f < nm; f++) {
            size_t at = f;
            for (size_t j = f + 1; j < nm; j++) at = mine[j] > mine[at] ? j : at;
            double t = mine[f];
            mine[f] = mine[at];
            mine[at] = t;
            lost += mine[f];
        }
        out[q] = acc[best] - lost <= second + (double)flips * wmax;
        for (size_t j = 0; j < k; j++) acc[codes[ni[j]]] = 0;
    }
cleanup:
    free(w);
    free(mine);
    free(acc);
    return knn_error_export(&err, errmsg, errmsg_len);
}
