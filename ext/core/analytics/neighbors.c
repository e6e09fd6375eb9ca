/* Exact neighbour lists for the analytics family: k nearest rows of a set X for a batch of queries,
 * optionally X against itself with each row's own index left out (the leave-one-out graph that SMOTE,
 * LID, the drift test and the divergence estimators need).
 *
 * It reuses the flat index (exact/knn_flat.c): rows copied into one aligned block, searched by the blocked
 * many-query (GEMM-style) scan of exact/knn_scan.c, ties broken by id, so results are the same whatever the
 * thread count. Ids are the row indices 0..n-1. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "analytics/knn_analytics.h"
#include "exact/knn_flat.h"

knn_status knn_an_metric(const char *fn, const char *metric, knn_metric *out, knn_error *err) {
    if (metric == NULL) {
        *out = KNN_METRIC_L2;
        return KNN_OK;
    }
    if (knn_metric_parse(metric, strlen(metric), out, err) != KNN_OK) {
        char msg[KNN_ERROR_MSG_LEN];
        memcpy(msg, err->msg, sizeof msg);
        return knn_error_set(err, KNN_EINVAL, "%s: %s", fn, msg);
    }
    return KNN_OK;
}

knn_status knn_an_check_nbrs(const char *fn, const int64_t *nbr, size_t nq, size_t stride, size_t k, size_t n,
                             knn_error *err) {
    if (k == 0) return knn_error_set(err, KNN_EINVAL, "%s: k must be >= 1, got 0", fn);
    if (stride < k) return knn_error_set(err, KNN_EINVAL, "%s: row stride %zu is smaller than k = %zu", fn, stride, k);
    for (size_t q = 0; q < nq; q++) {
        for (size_t j = 0; j < k; j++) {
            int64_t id = nbr[q * stride + j];
            if (id < 0 || (uint64_t)id >= n) {
                return knn_error_set(err, KNN_EINVAL,
                                     "%s: neighbour %zu of query %zu is row %lld, outside the %zu reference rows "
                                     "(an index whose ids are not row positions 0..n-1, or fewer than k rows found)",
                                     fn, j, q, (long long)id, n);
            }
        }
    }
    return KNN_OK;
}

knn_status knn_an_neighbors_e(const float *X, size_t n, const float *Q, size_t nq, size_t d, knn_metric metric,
                              size_t k, int self, size_t threads, int64_t *out_ids, float *out_dists,
                              knn_error *err) {
    knn_flat *ix = NULL;
    int64_t *ids = NULL, *tids = NULL;
    float *tdist = NULL;
    char msg[KNN_ERROR_MSG_LEN];
    if (d == 0) return knn_error_set(err, KNN_EINVAL, "vectors must have at least one dimension");
    if (k == 0) return knn_error_set(err, KNN_EINVAL, "k must be >= 1, got 0");
    if (n == 0) return knn_error_set(err, KNN_EINVAL, "the reference set is empty; give at least %zu rows", k + (self != 0));
    if (self && k >= n) {
        return knn_error_set(err, KNN_EINVAL, "k = %zu needs at least k + 1 = %zu rows (each row's own neighbour list "
                             "leaves the row out), got %zu; lower k or add rows", k, k + 1, n);
    }
    if (!self && k > n) {
        return knn_error_set(err, KNN_EINVAL, "k = %zu is larger than the %zu reference rows; lower k or add rows", k, n);
    }
    if (self) {
        Q = X;
        nq = n;
    }
    size_t kk = self ? k + 1 : k;
    const char *mname = knn_metric_name(metric);
    if (knn_flat_new(d, mname, &ix, msg, sizeof msg) != 0) return knn_error_set(err, KNN_EINVAL, "%s", msg);
    ids = malloc(n * sizeof *ids);
    tids = malloc((nq ? nq : 1) * kk * sizeof *tids);
    tdist = malloc((nq ? nq : 1) * kk * sizeof *tdist);
    if (!ids || !tids || !tdist) {
        knn_error_set(err, KNN_ENOMEM, "out of memory for neighbour lists of %zu queries (k = %zu)", nq, k);
        goto cleanup;
    }
    for (size_t i = 0; i < n; i++) ids[i] = (int64_t)i;
    int st = knn_flat_add(ix, X, ids, n, msg, sizeof msg);
    if (st != 0) {
        knn_error_set(err, (knn_status)st, "%s", msg);
        goto cleanup;
    }
    size_t found = 0;
    st = knn_flat_search(ix, Q, nq, kk, threads, tids, tdist, &found, msg, sizeof msg);
    if (st != 0) {
        knn_error_set(err, (knn_status)st, "%s", msg);
        goto cleanup;
    }
    for (size_t q = 0; q < nq; q++) {
        const int64_t *si = tids + q * kk;
        const float *sd = tdist + q * kk;
        size_t o = 0;
        int dropped = !self;
        for (size_t j = 0; j < kk && o < k; j++) {
            if (!dropped && si[j] == (int64_t)q) {
                dropped = 1;
                continue;
            }
            out_ids[q * k + o] = si[j];
            out_dists[q * k + o] = sd[j];
            o++;
        }
    }
cleanup:
    knn_flat_destroy(ix);
    free(ids);
    free(tids);
    free(tdist);
    return err->status;
}

int knn_an_neighbors(const float *X, size_t n, const float *Q, size_t nq, size_t d, const char *metric, size_t k,
                     int self, size_t threads, int64_t *out_ids, float *out_dists, char *errmsg, size_t errmsg_len) {
    knn_error err;
    knn_error_clear(&err);
    knn_metric m;
    if (knn_an_metric("knn_an_neighbors", metric, &m, &err) == KNN_OK) {
        knn_an_neighbors_e(X, n, Q, nq, d, m, k, self, threads, out_ids, out_dists, &err);
    }
    return knn_error_export(&err, errmsg, errmsg_len);
}
