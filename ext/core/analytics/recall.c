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
 * The self-check (knn_an_graph_self_recall) runs over the stored vectors of nq live rows spread evenly, each
 * left out of its own answer (k + 1 searched, its row dropped); tuning (knn_an_graph_tune_ef) over held-out
 * queries the caller gives. Rows of the graph are still far easier queries than unseen
 * ones: the beam reaches the row's node, whose links are its neighbours (MiniLM-60k, ef 10: 0.97 from rows
 * against 0.75 on held-out queries), so tuning takes held-out queries only. The exact side is computed
 * once per query; tuning then walks ef up a geometric ladder (x1.08, from k) re-running only the graph
 * searches, and stops at the first width whose mean recall minus one standard error of that mean reaches
 * the target: the held-out sample is a few hundred queries, and without that margin the width lands
 * below the target on other queries about half the time (measured: 0.894 for 0.9 on MiniLM). */
#define TUNE_STEP 1.08
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


/* Queries with their exact k-th distance: rows of the graph (each left out: the (k+1)-th, its own row among
 * the k + 1 nearest at distance 0) or held-out vectors the caller gives (given: the k-th). */
typedef struct query_set {
    size_t n, k;
    int given;      /* the caller's held-out queries: nothing left out, k searched */
    float *Q;
    int64_t *ids;
    float *kth;
} query_set;

static void query_set_free(query_set *s) {
    free(s->Q);
    free(s->ids);
    free(s->kth);
}

/* Held-out queries given by the caller (nq x dim): copied, with their exact k-th distance; no row is left
 * out of any answer. */
static knn_status given_set_build(knn_graph *g, size_t k, const float *Q, size_t nq, query_set *s, knn_error *err) {
    memset(s, 0, sizeof *s);
    s->k = k;
    s->given = 1;
    s->Q = malloc((nq ? nq : 1) * g->dim * sizeof *s->Q);
    s->ids = malloc((nq ? nq : 1) * sizeof *s->ids);
    s->kth = malloc((nq ? nq : 1) * sizeof *s->kth);
    float *qbuf = malloc(g->dim * sizeof *qbuf);
    if (!s->Q || !s->ids || !s->kth || !qbuf) {
        free(qbuf);
        query_set_free(s);
        return knn_error_set(err, KNN_ENOMEM, "knn_index_recall: out of memory");
    }
    memcpy(s->Q, Q, nq * g->dim * sizeof *s->Q);
    s->n = nq;
    for (size_t q = 0; q < nq; q++) {
        size_t found = 0;
        s->ids[q] = 0; /* unused: given queries leave nothing out */
        if (exact_scan(g, s->Q + q * g->dim, k, 0, 0, 0, &s->kth[q], &found, qbuf, err) != KNN_OK) {
            free(qbuf);
            query_set_free(s);
            return err->status;
        }
        if (found == 0) s->kth[q] = NAN;
    }
    free(qbuf);
    return KNN_OK;
}

static knn_status rows_set_build(knn_graph *g, size_t k, size_t nq, query_set *s, knn_error *err) {
    memset(s, 0, sizeof *s);
    s->k = k;
    pthread_rwlock_rdlock(&g->rw);
    size_t live = 0;
    for (uint32_t i = 0; i < g->count; i++) live += !g->deleted[i];
    size_t take = nq < live ? nq : live;
    if (take) {
        s->Q = malloc(take * g->dim * sizeof *s->Q);
        s->ids = malloc(take * sizeof *s->ids);
        s->kth = malloc(take * sizeof *s->kth);
    }
    if (take && (!s->Q || !s->ids || !s->kth)) {
        pthread_rwlock_unlock(&g->rw);
        query_set_free(s);
        return knn_error_set(err, KNN_ENOMEM, "knn_index_recall: out of memory");
    }
    size_t seen = 0;
    for (uint32_t i = 0; i < g->count && s->n < take; i++) {
        if (g->deleted[i]) continue;
        if (seen++ * take / live == s->n) { /* the n-th of take rows spread evenly over the live ones */
            memcpy(s->Q + s->n * g->dim, knn_graph_vec(g, i), g->dim * sizeof *s->Q);
            s->ids[s->n++] = g->ids[i];
        }
    }
    pthread_rwlock_unlock(&g->rw);
    float *qbuf = malloc(g->dim * sizeof *qbuf);
    if (!qbuf) {
        query_set_free(s);
        return knn_error_set(err, KNN_ENOMEM, "knn_index_recall: out of memory");
    }
    for (size_t q = 0; q < s->n; q++) {
        size_t found = 0;
        if (exact_scan(g, s->Q + q * g->dim, k + 1, 0, 0, 0, &s->kth[q], &found, qbuf, err) != KNN_OK) {
            free(qbuf);
            query_set_free(s);
            return err->status;
        }
        if (found < 2) s->kth[q] = NAN; /* nothing besides itself: recall undefined */
    }
    free(qbuf);
    return KNN_OK;
}

/* Mean recall@k of the graph at width ef over the set (rows as queries: each left out of its own answer);
 * *used the queries that count. */
static knn_status query_set_recall(knn_graph *g, const query_set *s, size_t ef, double *mean, double *se, size_t *used,
                                  knn_error *err) {
    const size_t kk = s->given ? s->k : s->k + 1;
    if (ef == 0) ef = knn_graph_default_ef(g);
    int64_t *ids = malloc(kk * sizeof *ids);
    float *dists = malloc(kk * sizeof *dists);
    if (!ids || !dists) {
        free(ids);
        free(dists);
        return knn_error_set(err, KNN_ENOMEM, "knn_index_recall: out of memory");
    }
    double sum = 0, sum2 = 0;
    size_t n = 0;
    knn_status st = KNN_OK;
    for (size_t q = 0; q < s->n && st == KNN_OK; q++) {
        if (isnan(s->kth[q])) continue;
        size_t found = 0;
        st = knn_graph_search(g, s->Q + q * g->dim, kk, ef < kk ? kk : ef, ids, dists, &found, err);
        if (st != KNN_OK) break;
        float tol = s->kth[q] + 1e-5f * fabsf(s->kth[q]) + 1e-6f;
        size_t hits = 0, others = 0;
        for (size_t r = 0; r < found && others < s->k; r++) {
            if (!s->given && ids[r] == s->ids[q]) continue; /* the query's own row */
            others++;
            hits += dists[r] <= tol;
        }
        double r = (double)hits / (double)s->k;
        sum += r;
        sum2 += r * r;
        n++;
    }
    free(ids);
    free(dists);
    *mean = n ? sum / (double)n : NAN;
    double var = n > 1 ? (sum2 - sum * sum / (double)n) / (double)(n - 1) : 0.0;
    *se = n ? sqrt(var > 0 ? var : 0) / sqrt((double)n) : NAN; /* standard error of the mean */
    *used = n;
    return st;
}

knn_status knn_an_graph_self_recall(knn_graph *g, size_t k, size_t nq, size_t ef, double *out_mean, size_t *out_used,
                                    knn_error *err) {
    *out_mean = NAN;
    *out_used = 0;
    if (k == 0 || nq == 0) return knn_error_set(err, KNN_EINVAL, "knn_index_recall: k and queries must be >= 1");
    query_set s;
    if (rows_set_build(g, k, nq, &s, err) != KNN_OK) return err->status;
    double se;
    knn_status st = query_set_recall(g, &s, ef, out_mean, &se, out_used, err);
    query_set_free(&s);
    return st;
}

knn_status knn_an_graph_tune_ef(knn_graph *g, size_t k, const float *Q, size_t nq, double target, size_t max_ef,
                                size_t *out_ef, double *out_recall, size_t *out_used, knn_error *err) {
    *out_ef = 0;
    *out_recall = NAN;
    *out_used = 0;
    if (k == 0 || nq == 0 || !Q) return knn_error_set(err, KNN_EINVAL, "knn_index_tune: k and queries must be >= 1");
    if (!(target > 0 && target <= 1)) {
        return knn_error_set(err, KNN_EINVAL, "knn_index_tune: target_recall must be in (0, 1], got %g", target);
    }
    query_set s;
    if (given_set_build(g, k, Q, nq, &s, err) != KNN_OK) return err->status;
    knn_status st = KNN_OK;
    for (double e = (double)k; st == KNN_OK; e = ceil(e * TUNE_STEP)) {
        size_t ef = (size_t)e > max_ef ? max_ef : (size_t)e;
        double r, se;
        size_t used;
        st = query_set_recall(g, &s, ef, &r, &se, &used, err);
        if (st != KNN_OK) break;
        *out_ef = ef;
        *out_recall = r;
        *out_used = used;
        /* met with one standard error to spare (or nothing to measure), or the ladder's top */
        if (!(r - se < target) || ef >= max_ef) break;
    }
    query_set_free(&s);
    return st;
}
