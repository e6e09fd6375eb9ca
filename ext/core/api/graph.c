/* Public (cffi) wrappers of the graph index: status codes plus a caller-owned message buffer. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "knn_api.h"
#include "graph/knn_graph.h"
#include "window/knn_window.h"
#include "filter/knn_filter.h"
#include "base/knn_parallel.h"


int knn_graph_new(size_t dim, const char *metric, size_t m, size_t ef_construction, size_t ef, uint64_t seed,
                  knn_graph **out, char *errmsg, size_t errmsg_len) {
    knn_error err;
    knn_error_clear(&err);
    knn_metric met;
    knn_graph_params p = knn_graph_default_params();
    if (m) p.m = m;
    if (ef_construction) p.ef_construction = ef_construction;
    if (ef) p.ef = ef;
    p.seed = seed;
    if (knn_metric_parse(metric, metric ? strlen(metric) : 0, &met, &err) == KNN_OK) {
        knn_graph_create(dim, met, &p, out, &err);
    }
    return knn_error_export(&err, errmsg, errmsg_len);
}

void knn_graph_destroy(knn_graph *index) { knn_graph_free(index); }

int knn_graph_add_rows(knn_graph *index, const float *vecs, const int64_t *ids, const double *labels, size_t n,
                       size_t threads, char *errmsg, size_t errmsg_len) {
    knn_error err;
    knn_error_clear(&err);
    if (knn_graph_add(index, vecs, ids, labels, n, threads, &err) == KNN_OK) knn_window_prepare(index);
    return knn_error_export(&err, errmsg, errmsg_len);
}

int knn_graph_remove(knn_graph *index, const int64_t *ids, size_t n, size_t *removed, char *errmsg,
                     size_t errmsg_len) {
    knn_error err;
    knn_error_clear(&err);
    knn_graph_delete(index, ids, n, removed, &err);
    return knn_error_export(&err, errmsg, errmsg_len);
}

int knn_graph_rebuild(knn_graph *index, size_t threads, char *errmsg, size_t errmsg_len) {
    knn_error err;
    knn_error_clear(&err);
    if (knn_graph_optimize(index, threads, &err) == KNN_OK) knn_window_prepare(index);
    return knn_error_export(&err, errmsg, errmsg_len);
}

typedef struct query_job {
    knn_graph *g;
    const float *queries;
    size_t nq, k, ef, rerank, nthreads, dim;
    int64_t *ids;
    float *dists;
    size_t *found;
    knn_error *errs;
    int windowed;
    double lo, hi;
    int *plans;
} query_job;

static void query_task(void *arg, size_t t) {
    query_job *job = arg;
    for (size_t q = t; q < job->nq; q += job->nthreads) {
        int64_t *ids = job->ids + q * job->k;
        float *dists = job->dists + q * job->k;
        knn_status s;
        if (job->windowed) {
            s = knn_graph_search_window_rerank(job->g, job->queries + q * job->dim, job->k, job->ef, job->rerank,
                                               job->lo, job->hi, ids, dists, &job->found[q],
                                               job->plans ? &job->plans[q] : NULL, &job->errs[t]);
        } else {
            s = knn_graph_search_rerank(job->g, job->queries + q * job->dim, job->k, job->ef, job->rerank, ids, dists,
                                        &job->found[q], &job->errs[t]);
        }
        if (s != KNN_OK) return;
        for (size_t j = job->found[q]; j < job->k; j++) {
            ids[j] = -1;
            dists[j] = INFINITY;
        }
    }
}

static int run_queries(knn_graph *index, const float *queries, size_t nq, size_t k, size_t ef, size_t rerank,
                       int windowed, double lo, double hi, size_t threads, int64_t *out_ids, float *out_dists, size_t *found,
                       int *plans, char *errmsg, size_t errmsg_len) {
    knn_error err;
    knn_error_clear(&err);
    if (k == 0) {
        knn_error_set(&err, KNN_EINVAL, "k must be >= 1, got 0");
        return knn_error_export(&err, errmsg, errmsg_len);
    }
    /* one query never needs the CPU count (sysconf reads /sys: microseconds, more than a small search) */
    size_t nthreads = nq <= 1 ? 1 : threads ? threads : knn_cpu_count();
    if (nthreads > nq) nthreads = nq ? nq : 1;
    knn_error *errs = calloc(nthreads, sizeof *errs);
    if (errs == NULL) {
        knn_error_set(&err, KNN_ENOMEM, "out of memory for %zu search threads", nthreads);
        return knn_error_export(&err, errmsg, errmsg_len);
    }
    query_job job = {index, queries, nq, k, ef, rerank, nthreads, knn_graph_dim(index), out_ids, out_dists, found, errs,
                     windowed, lo, hi, plans};
    knn_parallel_run(nthreads, query_task, &job);
    knn_error_first(errs, nthreads, &err);
    free(errs);
    return knn_error_export(&err, errmsg, errmsg_len);
}

int knn_graph_query(knn_graph *index, const float *queries, size_t nq, size_t k, size_t ef, size_t threads,
                    int64_t *out_ids, float *out_dists, size_t *found, char *errmsg, size_t errmsg_len) {
    return run_queries(index, queries, nq, k, ef, 0, 0, 0, 0, threads, out_ids, out_dists, found, NULL, errmsg,
                       errmsg_len);
}

int knn_graph_query_rerank(knn_graph *index, const float *queries, size_t nq, size_t k, size_t ef, size_t rerank,
                           int windowed, double lo, double hi, size_t threads, int64_t *out_ids, float *out_dists,
                           size_t *found, char *errmsg, size_t errmsg_len) {
    return run_queries(index, queries, nq, k, ef, rerank, windowed, lo, hi, threads, out_ids, out_dists, found, NULL,
                       errmsg, errmsg_len);
}

int knn_graph_storage(knn_graph *index, const char *quantization, const char *vectors_dir, char *errmsg,
                      size_t errmsg_len) {
    knn_error err;
    knn_error_clear(&err);
    knn_graph_set_storage(index, quantization, vectors_dir, &err);
    return knn_error_export(&err, errmsg, errmsg_len);
}

int knn_graph_fill_vectors(knn_graph *index, const float *vecs, const int64_t *ids, size_t n, size_t *filled,
                           char *errmsg, size_t errmsg_len) {
    knn_error err;
    knn_error_clear(&err);
    if (knn_graph_restore_vectors(index, vecs, ids, n, filled, &err) == KNN_OK) knn_window_prepare(index);
    return knn_error_export(&err, errmsg, errmsg_len);
}

int knn_graph_query_window(knn_graph *index, const float *queries, size_t nq, size_t k, size_t ef, double lo,
                           double hi, size_t threads, int64_t *out_ids, float *out_dists, size_t *found, int *plans,
                           char *errmsg, size_t errmsg_len) {
    return run_queries(index, queries, nq, k, ef, 0, 1, lo, hi, threads, out_ids, out_dists, found, plans, errmsg,
                       errmsg_len);
}

long knn_graph_query_one(knn_graph *index, const float *query, size_t k, size_t ef, int windowed, double lo, double hi,
                         int64_t *out_ids, float *out_dists, char *errmsg, size_t errmsg_len) {
    knn_error err;
    knn_error_clear(&err);
    size_t found = 0;
    knn_status s = windowed ? knn_graph_search_window(index, query, k, ef, lo, hi, out_ids, out_dists, &found, NULL, &err)
                            : knn_graph_search(index, query, k, ef, out_ids, out_dists, &found, &err);
    if (s != KNN_OK) {
        knn_error_export(&err, errmsg, errmsg_len);
        return -1;
    }
    for (size_t j = found; j < k; j++) {
        out_ids[j] = -1;
        out_dists[j] = INFINITY;
    }
    size_t live = knn_graph_live(index);
    return (long)(found > live ? found : live < k ? live : k);
}

int knn_graph_query_exact(knn_graph *index, const float *queries, size_t nq, size_t k, size_t threads,
                          int64_t *out_ids, float *out_dists, size_t *found, char *errmsg, size_t errmsg_len) {
    knn_error err;
    knn_error_clear(&err);
    knn_graph_exact(index, queries, nq, k, threads, out_ids, out_dists, found, &err);
    return knn_error_export(&err, errmsg, errmsg_len);
}

size_t knn_graph_count(const knn_graph *index) { return knn_graph_live(index); }
size_t knn_graph_tombstones(const knn_graph *index) { return knn_graph_deleted(index); }
size_t knn_graph_bytes(const knn_graph *index) { return knn_graph_memory(index); }
size_t knn_graph_dimension(const knn_graph *index) { return knn_graph_dim(index); }
const char *knn_graph_metric_name(const knn_graph *index) { return knn_metric_name(knn_graph_metric(index)); }

void knn_graph_settings(const knn_graph *index, size_t *out) {
    knn_graph_params p = knn_graph_get_params(index);
    out[0] = p.m;
    out[1] = p.ef_construction;
    out[2] = p.ef;
}

void knn_graph_list_ids(knn_graph *index, int64_t *out) { knn_graph_ids(index, out, knn_graph_live(index)); }

int knn_graph_to_bytes(knn_graph *index, uint8_t **buf, size_t *len, char *errmsg, size_t errmsg_len) {
    knn_error err;
    knn_error_clear(&err);
    knn_graph_save(index, buf, len, &err);
    return knn_error_export(&err, errmsg, errmsg_len);
}

int knn_graph_from_bytes(const uint8_t *buf, size_t len, knn_graph **out, char *errmsg, size_t errmsg_len) {
    return knn_graph_from_bytes_at(buf, len, NULL, out, errmsg, errmsg_len);
}

int knn_graph_from_bytes_at(const uint8_t *buf, size_t len, const char *vectors_dir, knn_graph **out, char *errmsg,
                            size_t errmsg_len) {
    knn_error err;
    knn_error_clear(&err);
    if (knn_graph_load_at(buf, len, vectors_dir, out, &err) == KNN_OK) knn_window_prepare(*out);
    return knn_error_export(&err, errmsg, errmsg_len);
}

void knn_bytes_free(uint8_t *buf) { free(buf); }

int knn_graph_query_among(knn_graph *index, const float *queries, size_t nq, size_t k, size_t ef, const int64_t *ids,
                          size_t n_ids, size_t threads, int64_t *out_ids, float *out_dists, size_t *found, int *plans,
                          size_t *matched, char *errmsg, size_t errmsg_len) {
    knn_error err;
    knn_error_clear(&err);
    knn_graph_search_among(index, queries, nq, k, ef, 0, ids, n_ids, threads, out_ids, out_dists, found, plans, matched,
                           &err);
    return knn_error_export(&err, errmsg, errmsg_len);
}
