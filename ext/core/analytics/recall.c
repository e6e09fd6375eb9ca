/* Recall audit of a graph (HNSW) index against exact search over the same live rows (digest papers-4
 * A1: recall depends on the data, its intrinsic dimension and insertion order, so it must be measured,
 * per query and per label window, before an index is trusted).
 *
 * recall@k of one query = (number of approximate results whose distance is within the k-th exact
 * distance) / (number of exact results), the ann-benchmarks convention, which counts ties as hits.
 * The exact side scans every live node (in the window when one is given) with the graph's own distance
 * function, so both sides see identical distances. Queries are independent: results do not depend on
 * the thread count.
 *
 * Self-check (knn_an_graph_self_recall): the queries are the stored vectors of nq live rows spread evenly
 * over the insertion order (each finds itself at distance 0 on both sides, as a table row used as a query
 * would), so an index can report its own recall without a query set. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "analytics/knn_analytics.h"
#include "graph/graph_internal.h"
#include "window/knn_window.h"
#include "base/knn_parallel.h"
#include "base/knn_topk.h"

/* Exact k nearest live nodes (optionally only labels in [lo, hi]); distances as the graph reports them. */
static knn_status exact_scan(knn_graph *g, const float *query, size_t k, int windowed, double lo, double hi,
                             float *kth, size_t *found, float *qbuf, knn_error *err) {
    const float *q = query;
    if (g->metric == KNN_METRIC_COSINE) {
        float qn = 0;
        for (size_t j = 0; j < g->dim; j++) qn += query[j] * query[j];
        if (!(qn > 0)) return knn_error_set(err, KNN_EDATA, "query is the zero vector, which has no direction for 'cosine'");
        float inv = 1.0f / sqrtf(qn);
        for (size_t j = 0; j < g->dim; j++) qbuf[j] = query[j] * inv;
        q = qbuf;
    }
    knn_topk t;
    knn_status s = knn_topk_init(&t, k, err);
    pthread_rwlock_rdlock(&g->rw);
    for (uint32_t i = 0; s == KNN_OK && i < g->count; i++) {
        if (g->deleted[i]) continue;
        if (windowed && !(g->labels[i] >= lo && g->labels[i] <= hi)) continue;
        const float *x = knn_graph_vec(g, i);
        float dist;
        if (g->metric == KNN_METRIC_L2) {
            g->kern->l2sq_rows(q, x, 1, g->dim, &dist);
        } else {
            g->kern->dot_rows(q, x, 1, g->dim, &dist);
            dist = g->metric == KNN_METRIC_COSINE ? 1.0f - dist : -dist;
        }
        s = knn_topk_offer(&t, dist, g->ids[i], err);
    }
    pthread_rwlock_unlock(&g->rw);
    if (s == KNN_OK) {
        *found = t.size;
        float worst = -INFINITY;
        for (size_t j = 0; j < t.size; j++) worst = t.heap[j].dist > worst ? t.heap[j].dist : worst;
        *kth = worst;
    }
    knn_topk_free(&t);
    return s;
}

typedef struct recall_job {
    knn_graph *g;
    const float *Q;
    size_t nq, k, ef, nthreads;
    int windowed;
    double lo, hi;
    double *recall;
    knn_error *errs; /* one per thread */
} recall_job;

static void recall_run(void *arg, size_t t) {
    recall_job *j = arg;
    knn_error *err = &j->errs[t];
    size_t lo = j->nq * t / j->nthreads, hi = j->nq * (t + 1) / j->nthreads;
    int64_t *ids = malloc(j->k * sizeof *ids);
    float *dists = malloc(j->k * sizeof *dists);
    float *qbuf = malloc(j->g->dim * sizeof *qbuf);
    if (!ids || !dists || !qbuf) {
        knn_error_set(err, KNN_ENOMEM, "knn_recall: out of memory");
        goto done;
    }
    for (size_t q = lo; q < hi; q++) {
        const float *query = j->Q + q * j->g->dim;
        size_t found = 0, efound = 0;
        float kth = 0;
        knn_status s = j->windowed
                           ? knn_graph_search_window(j->g, query, j->k, j->ef, j->lo, j->hi, ids, dists, &found, NULL, err)
                           : knn_graph_search(j->g, query, j->k, j->ef, ids, dists, &found, err);
        if (s != KNN_OK) goto done;
        if (exact_scan(j->g, query, j->k, j->windowed, j->lo, j->hi, &kth, &efound, qbuf, err) != KNN_OK) goto done;
        if (efound == 0) {
            j->recall[q] = NAN; /* nothing to find: recall undefined */
            continue;
        }
        float tol = kth + 1e-5f * fabsf(kth) + 1e-6f;
        size_t hits = 0;
        for (size_t r = 0; r < found; r++) hits += dists[r] <= tol;
        j->recall[q] = (double)(hits < efound ? hits : efound) / (double)efound;
    }
done:
    free(ids);
    free(dists);
    free(qbuf);
}

knn_status knn_an_graph_recall_e(knn_graph *g, const float *Q, size_t nq, size_t k, size_t ef, int windowed,
                                 double lo, double hi, size_t threads, double *out_recall, knn_error *err) {
    if (k == 0) return knn_error_set(err, KNN_EINVAL, "knn_recall: k must be >= 1, got 0");
    if (windowed && (isnan(lo) || isnan(hi))) {
        return knn_error_set(err, KNN_EINVAL, "knn_recall: window bounds must not be NaN");
    }
    size_t nt = threads ? threads : knn_cpu_count();
    if (nt > 64) nt = 64;
    if (nt > nq) nt = nq ? nq : 1;
    knn_error *errs = calloc(nt, sizeof *errs);
    if (!errs) return knn_error_set(err, KNN_ENOMEM, "knn_recall: out of memory");
    recall_job j = {g, Q, nq, k, ef, nt, windowed, lo, hi, out_recall, errs};
    knn_parallel_run(nt, recall_run, &j);
    knn_status s = knn_error_first(errs, nt, err);
    free(errs);
    return s;
}

int knn_an_graph_recall(knn_graph *g, const float *Q, size_t nq, size_t k, size_t ef, int windowed, double lo,
                        double hi, size_t threads, double *out_recall, char *errmsg, size_t errmsg_len) {
    knn_error err;
    knn_error_clear(&err);
    knn_an_graph_recall_e(g, Q, nq, k, ef, windowed, lo, hi, threads, out_recall, &err);
    return knn_error_export(&err, errmsg, errmsg_len);
}

knn_status knn_an_graph_self_recall(knn_graph *g, size_t k, size_t nq, size_t ef, size_t threads, double *out_mean,
                                    size_t *out_used, knn_error *err) {
    *out_mean = NAN;
    *out_used = 0;
    if (k == 0 || nq == 0) return knn_error_set(err, KNN_EINVAL, "knn_index_recall: k and queries must be >= 1");
    pthread_rwlock_rdlock(&g->rw);
    size_t live = 0;
    for (uint32_t i = 0; i < g->count; i++) live += !g->deleted[i];
    size_t take = nq < live ? nq : live;
    float *Q = take ? malloc(take * g->dim * sizeof *Q) : NULL;
    if (take && !Q) {
        pthread_rwlock_unlock(&g->rw);
        return knn_error_set(err, KNN_ENOMEM, "knn_index_recall: out of memory");
    }
    size_t seen = 0, got = 0;
    for (uint32_t i = 0; i < g->count && got < take; i++) {
        if (g->deleted[i]) continue;
        if (seen++ * take / live == got) { /* the got-th of take rows spread evenly over the live ones */
            memcpy(Q + got * g->dim, knn_graph_vec(g, i), g->dim * sizeof *Q);
            got++;
        }
    }
    pthread_rwlock_unlock(&g->rw);
    if (got == 0) {
        free(Q);
        return KNN_OK; /* no rows: nothing to measure */
    }
    double *r = malloc(got * sizeof *r);
    if (!r) {
        free(Q);
        return knn_error_set(err, KNN_ENOMEM, "knn_index_recall: out of memory");
    }
    knn_status s = knn_an_graph_recall_e(g, Q, got, k, ef, 0, 0, 0, threads, r, err);
    if (s == KNN_OK) {
        double sum = 0;
        size_t n = 0;
        for (size_t i = 0; i < got; i++) {
            if (!isnan(r[i])) {
                sum += r[i];
                n++;
            }
        }
        *out_mean = n ? sum / (double)n : NAN;
        *out_used = n;
    }
    free(r);
    free(Q);
    return s;
}
