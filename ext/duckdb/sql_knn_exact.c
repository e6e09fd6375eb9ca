/* knn_exact and knn_exact_join: exact kNN as aggregates over any relation.
 *
 *   knn_exact(id, vec, query, k [, metric])      -> LIST(STRUCT(id BIGINT, distance FLOAT))
 *   knn_exact_join(id, vec, queries, k [, metric])
 *       -> LIST(STRUCT(query_id BIGINT, id BIGINT, distance FLOAT, rank INTEGER))
 *
 * Each aggregate state keeps the query (or queries), k, the metric and one bounded heap per query.
 * DuckDB feeds chunks from parallel scans into per-thread states and merges them with combine.
 * NULL policy: rows whose id or vector is NULL are skipped; rows whose query is NULL are skipped, and
 * a group that never saw a non-NULL query (or no rows at all) yields NULL. A NULL element inside a
 * vector, a NaN/Inf, or a length that differs from the query's is an error. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "duckdb_extension.h"
#include "kernels/knn_kernels.h"
#include "knn_glue.h"
#include "knn_kit.h"
#include "base/knn_metric.h"
#include "exact/knn_scan.h"
#include "base/knn_topk.h"
#include "base/knn_parallel.h"
#include "sql_register.h"

/* knn_exact_join splits each chunk's queries over up to this many threads: DuckDB parallelises by row
 * group, so a table under ~122k rows would otherwise be joined on one core. */
#define KNN_JOIN_THREADS 8

DUCKDB_EXTENSION_EXTERN

typedef struct exact_acc {
    const knn_kernels *kern;
    knn_metric metric;
    size_t dim;
    size_t k;
    size_t nq;
    float *queries;  /* nq x dim */
    float *q_norm2;  /* nq */
    int64_t *qids;   /* nq; query ids for knn_exact_join */
    knn_topk *heaps; /* nq */
    knn_scan_ws ws[KNN_JOIN_THREADS]; /* one per worker of a chunk */
    float *buf;      /* gather buffer: buf_rows x dim */
    int64_t *idbuf;  /* buf_rows */
    size_t buf_rows;
    float *qtmp;     /* dim; converts one DOUBLE query for comparison */
} exact_acc;

static void acc_free(void *p) {
    exact_acc *a = p;
    if (a == NULL) return;
    if (a->heaps) {
        for (size_t q = 0; q < a->nq; q++) knn_topk_free(&a->heaps[q]);
    }
    free(a->heaps);
    free(a->queries);
    free(a->q_norm2);
    free(a->qids);
    for (size_t t = 0; t < KNN_JOIN_THREADS; t++) knn_scan_ws_free(&a->ws[t]);
    free(a->buf);
    free(a->idbuf);
    free(a->qtmp);
    free(a);
}

/* Allocates an accumulator for nq queries of dimension dim (queries left for the caller to fill). */
static exact_acc *acc_new(size_t nq, size_t dim, size_t k, knn_metric metric, knn_error *err) {
    exact_acc *a = calloc(1, sizeof *a);
    if (a == NULL) goto oom;
    a->kern = knn_kernels_best();
    a->metric = metric;
    a->dim = dim;
    a->k = k;
    a->nq = nq;
    a->queries = malloc(nq * dim * sizeof(float));
    a->q_norm2 = malloc(nq * sizeof(float));
    a->qids = malloc(nq * sizeof(int64_t));
    a->heaps = calloc(nq, sizeof(knn_topk));
    a->qtmp = malloc(dim * sizeof(float));
    if (!a->queries || !a->q_norm2 || !a->qids || !a->heaps || !a->qtmp) goto oom;
    for (size_t q = 0; q < nq; q++) knn_topk_init(&a->heaps[q], k, NULL);
    return a;
oom:
    acc_free(a);
    knn_error_set(err, KNN_ENOMEM, "out of memory for %zu queries of dimension %zu", nq, dim);
    return NULL;
}

static knn_status acc_reserve_buf(exact_acc *a, size_t rows, knn_error *err) {
    if (a->buf_rows >= rows) return KNN_OK;
    float *buf = realloc(a->buf, rows * a->dim * sizeof(float));
    if (buf) a->buf = buf;
    int64_t *ids = realloc(a->idbuf, rows * sizeof(int64_t));
    if (ids) a->idbuf = ids;
    if (!buf || !ids) return knn_error_set(err, KNN_ENOMEM, "out of memory for a %zu-row gather buffer", rows);
    a->buf_rows = rows;
    return KNN_OK;
}

/* Arguments shared by both aggregates, read once per chunk. */
typedef struct exact_args {
    const char *fn;
    idx_t n;
    duckdb_vector ids, vecs, queries, k, metric;
    knn_vreader vr;
    const int64_t *id_data;
    const uint64_t *id_valid;
    const char *seen_metric; /* last metric text already checked against the state, to skip re-parsing */
    size_t seen_metric_len;
} exact_args;

static knn_status args_read(exact_args *a, const char *fn, duckdb_data_chunk input, knn_error *err) {
    a->fn = fn;
    a->n = duckdb_data_chunk_get_size(input);
    a->ids = duckdb_data_chunk_get_vector(input, 0);
    a->vecs = duckdb_data_chunk_get_vector(input, 1);
    a->queries = duckdb_data_chunk_get_vector(input, 2);
    a->k = duckdb_data_chunk_get_vector(input, 3);
    a->metric = duckdb_data_chunk_get_column_count(input) > 4 ? duckdb_data_chunk_get_vector(input, 4) : NULL;
    a->id_data = (const int64_t *)duckdb_vector_get_data(a->ids);
    a->id_valid = duckdb_vector_get_validity(a->ids);
    a->seen_metric = NULL;
    a->seen_metric_len = 0;
    return knn_vreader_init(&a->vr, a->vecs, fn, "vec", err);
}

/* k and metric of one row, validated. */
static knn_status row_params(const exact_args *a, idx_t row, size_t *k, knn_metric *metric, knn_error *err) {
    int64_t kv;
    if (!knn_get_bigint(a->k, row, &kv)) {
        return knn_error_set(err, KNN_EINVAL, "%s: k must not be NULL; pass a positive integer such as 10", a->fn);
    }
    if (kv <= 0) return knn_error_set(err, KNN_EINVAL, "%s: k must be >= 1, got %lld", a->fn, (long long)kv);
    *k = (size_t)kv;
    *metric = KNN_METRIC_L2;
    if (a->metric) {
        const char *s;
        size_t len;
        if (!knn_get_varchar(a->metric, row, &s, &len)) {
            return knn_error_set(err, KNN_EINVAL, "%s: metric must not be NULL; use one of " KNN_METRIC_NAMES,
                                 a->fn);
        }
        if (knn_metric_parse(s, len, metric, err) != KNN_OK) {
            char msg[KNN_ERROR_MSG_LEN];
            memcpy(msg, err->msg, sizeof msg);
            return knn_error_set(err, KNN_EINVAL, "%s: %s", a->fn, msg);
        }
    }
    return KNN_OK;
}

static knn_status params_changed(const exact_args *a, knn_error *err) {
    return knn_error_set(err, KNN_EINVAL,
                         "%s: k, metric and the query must be the same for every row of a group; to search "
                         "several queries at once use knn_exact_join or GROUP BY the query",
                         a->fn);
}

/* Checks that a row's k and metric equal the state's; the common constant case costs two compares. */
static knn_status check_same_params(exact_args *a, const exact_acc *acc, idx_t row, knn_error *err) {
    int64_t kv;
    const char *ms = NULL;
    size_t mlen = 0;
    if (knn_get_bigint(a->k, row, &kv) && kv > 0 && (size_t)kv == acc->k &&
        (a->metric == NULL || (knn_get_varchar(a->metric, row, &ms, &mlen) && a->seen_metric &&
                               mlen == a->seen_metric_len && memcmp(ms, a->seen_metric, mlen) == 0))) {
        return KNN_OK;
    }
    size_t k;
    knn_metric metric;
    knn_status s = row_params(a, row, &k, &metric, err);
    if (s != KNN_OK) return s;
    if (k != acc->k || metric != acc->metric) return params_changed(a, err);
    a->seen_metric = ms;
    a->seen_metric_len = mlen;
    return KNN_OK;
}

static knn_status row_error(const exact_args *a, const char *arg, knn_row_state st, int64_t id, size_t want,
                            size_t got, knn_error *err) {
    if (st == KNN_ROW_NULL_ELEMENT) {
        return knn_error_set(err, KNN_EDATA, "%s: '%s' of row id %lld contains a NULL element; vectors must be "
                             "complete (filter the row out or fill the gap)", a->fn, arg, (long long)id);
    }
    return knn_error_set(err, KNN_EDATA,
                         "%s: dimension mismatch: '%s' of row id %lld has %zu elements but the query has %zu; "
                         "every vector must have the query's dimension", a->fn, arg, (long long)id, got, want);
}

/* One worker's share of a chunk in knn_exact_join: a contiguous range of the queries. */
typedef struct join_job {
    exact_acc *acc;
    const knn_rows *rows;
    size_t nthreads;
    knn_error errs[KNN_JOIN_THREADS];
} join_job;

static void join_task(void *arg, size_t t) {
    join_job *job = arg;
    exact_acc *a = job->acc;
    size_t lo = a->nq * t / job->nthreads, hi = a->nq * (t + 1) / job->nthreads;
    knn_error_clear(&job->errs[t]);
    knn_scan_many(a->kern, a->metric, a->queries + lo * a->dim, a->q_norm2 + lo, hi - lo, job->rows, a->heaps + lo,
                  &a->ws[t], &job->errs[t]);
}

/* Scans the rows [lo, hi) of one run that shares an initialised accumulator; skip[i] marks rows whose
 * query was NULL. */
static knn_status scan_run(const exact_args *a, exact_acc *acc, idx_t lo, idx_t hi, const unsigned char *skip,
                           bool any_skip, knn_error *err) {
    const size_t d = acc->dim;
    bool ids_valid = true;
    for (idx_t i = lo; i < hi && ids_valid; i++) ids_valid = knn_valid(a->id_valid, i);
    const float *base = NULL;
    knn_rows rows = {0};
    rows.d = d;
    if (ids_valid && !any_skip && knn_vreader_contiguous(&a->vr, lo, hi, d, &base)) {
        rows.vecs = base;
        rows.ids = a->id_data + lo;
        rows.n = hi - lo;
    } else {
        knn_status s = acc_reserve_buf(acc, hi - lo, err);
        if (s != KNN_OK) return s;
        size_t m = 0;
        for (idx_t i = lo; i < hi; i++) {
            if (skip[i - lo] || !knn_valid(a->id_valid, i)) continue;
            const float *v;
            size_t got = 0;
            knn_row_state st = knn_vreader_get(&a->vr, i, d, acc->buf + m * d, &v, &got);
            if (st == KNN_ROW_NULL) continue;
            if (st != KNN_ROW_OK) return row_error(a, "vec", st, a->id_data[i], d, got, err);
            if (v != acc->buf + m * d) memcpy(acc->buf + m * d, v, d * sizeof(float));
            acc->idbuf[m++] = a->id_data[i];
        }
        rows.vecs = acc->buf;
        rows.ids = acc->idbuf;
        rows.n = m;
    }
    if (rows.n == 0) return KNN_OK;
    if (acc->nq == 1) return knn_scan_one(acc->kern, acc->metric, acc->queries, acc->q_norm2[0], &rows, acc->heaps, err);
    size_t nthreads = knn_cpu_count();
    if (nthreads > KNN_JOIN_THREADS) nthreads = KNN_JOIN_THREADS;
    /* Below ~4M multiply-adds per thread a chunk is not worth splitting. */
    if (nthreads > acc->nq / 8) nthreads = acc->nq / 8;
    if (nthreads > rows.n * acc->nq * acc->dim / (1u << 22)) nthreads = rows.n * acc->nq * acc->dim / (1u << 22);
    if (nthreads <= 1) {
        return knn_scan_many(acc->kern, acc->metric, acc->queries, acc->q_norm2, acc->nq, &rows, acc->heaps, &acc->ws[0],
                             err);
    }
    join_job job = {acc, &rows, nthreads, {{0}}};
    knn_parallel_run(nthreads, join_task, &job);
    return knn_error_first(job.errs, nthreads, err);
}

/* ---- knn_exact ---------------------------------------------------------------------------------- */

static knn_status exact_update(const knn_agg_ctx *cx, duckdb_data_chunk input, duckdb_aggregate_state *states,
                               knn_error *err) {
    (void)cx;
    exact_args a;
    knn_vreader qr;
    unsigned char *skip = NULL;
    if (args_read(&a, "knn_exact", input, err) != KNN_OK) goto done;
    if (knn_vreader_init(&qr, a.queries, a.fn, "query", err) != KNN_OK) goto done;
    duckdb_list_entry checked = {UINT64_MAX, 0};
    const exact_acc *checked_acc = NULL;
    skip = malloc(a.n ? a.n : 1);
    if (skip == NULL) {
        knn_error_set(err, KNN_ENOMEM, "knn_exact: out of memory");
        goto done;
    }
    for (idx_t lo = 0; lo < a.n;) {
        knn_agg_state *st = knn_agg_at(states, lo);
        idx_t hi = lo + 1;
        while (hi < a.n && states[hi] == states[lo]) hi++;
        bool any_skip = false;
        for (idx_t i = lo; i < hi; i++) {
            skip[i - lo] = 0;
            size_t qdim = knn_vreader_len(&qr, i);
            if (qdim == 0 && !knn_valid(qr.validity, i)) {
                skip[i - lo] = 1;
                any_skip = true;
                continue;
            }
            const float *q;
            size_t got = 0;
            if (st->acc == NULL) {
                size_t k;
                knn_metric metric;
                if (row_params(&a, i, &k, &metric, err) != KNN_OK) goto done;
                if (qdim == 0) {
                    knn_error_set(err, KNN_EINVAL, "knn_exact: query is an empty list; give a vector");
                    goto done;
                }
                exact_acc *acc = acc_new(1, qdim, k, metric, err);
                if (acc == NULL) goto done;
                knn_row_state rs = knn_vreader_get(&qr, i, qdim, acc->qtmp, &q, &got);
                if (rs != KNN_ROW_OK) {
                    acc_free(acc);
                    knn_error_set(err, KNN_EDATA, "knn_exact: query contains a NULL element");
                    goto done;
                }
                memcpy(acc->queries, q, qdim * sizeof(float));
                acc->qids[0] = 1;
                if (knn_query_check(acc->queries, qdim, metric, "knn_exact: query", &acc->q_norm2[0], err) != KNN_OK) {
                    acc_free(acc);
                    goto done;
                }
                st->acc = acc;
                continue;
            }
            exact_acc *acc = st->acc;
            if (check_same_params(&a, acc, i, err) != KNN_OK) goto done;
            /* A constant query reaches every row as the same list entry: compare its floats once. */
            if (qr.entries && qr.entries[i].offset == checked.offset && qr.entries[i].length == checked.length &&
                checked_acc == acc) {
                continue;
            }
            knn_row_state rs = knn_vreader_get(&qr, i, acc->dim, acc->qtmp, &q, &got);
            if (rs == KNN_ROW_DIM_MISMATCH || rs == KNN_ROW_NULL_ELEMENT ||
                memcmp(q, acc->queries, acc->dim * sizeof(float)) != 0) {
                params_changed(&a, err);
                goto done;
            }
            if (qr.entries) {
                checked = qr.entries[i];
                checked_acc = acc;
            }
        }
        if (st->acc && scan_run(&a, st->acc, lo, hi, skip, any_skip, err) != KNN_OK) goto done;
        lo = hi;
    }
done:
    free(skip);
    return err->status;
}

/* ---- knn_exact_join ----------------------------------------------------------------------------- */

/* Builds an accumulator from the query list of one row. */
static knn_status join_acc_new(const exact_args *a, const knn_qlist *ql, idx_t row, exact_acc **out,
                               knn_error *err) {
    size_t k;
    knn_metric metric;
    knn_status s = row_params(a, row, &k, &metric, err);
    if (s != KNN_OK) return s;
    duckdb_list_entry e = ql->entries[row];
    if (e.length == 0) {
        return knn_error_set(err, KNN_EINVAL, "knn_exact_join: 'queries' is an empty list; give at least one query");
    }
    size_t dim = knn_vreader_len(&ql->vecs, e.offset);
    if (dim == 0) {
        return knn_error_set(err, KNN_EDATA, "knn_exact_join: query 1 is NULL or empty; every query needs a vector");
    }
    exact_acc *acc = acc_new((size_t)e.length, dim, k, metric, err);
    if (acc == NULL) return err->status;
    for (size_t q = 0; q < acc->nq; q++) {
        idx_t pos = e.offset + q;
        const float *v;
        size_t got = 0;
        knn_row_state st = knn_vreader_get(&ql->vecs, pos, dim, acc->queries + q * dim, &v, &got);
        if (st != KNN_ROW_OK) {
            acc_free(acc);
            if (st == KNN_ROW_DIM_MISMATCH) {
                return knn_error_set(err, KNN_EDATA, "knn_exact_join: dimension mismatch: query %zu has %zu "
                                     "elements but query 1 has %zu", q + 1, got, dim);
            }
            return knn_error_set(err, KNN_EDATA, "knn_exact_join: query %zu is NULL or contains a NULL element", q + 1);
        }
        if (v != acc->queries + q * dim) memcpy(acc->queries + q * dim, v, dim * sizeof(float));
        if (ql->qid_data) {
            if (!knn_valid(ql->qid_valid, pos)) {
                acc_free(acc);
                return knn_error_set(err, KNN_EDATA, "knn_exact_join: the id of query %zu is NULL", q + 1);
            }
            acc->qids[q] = ql->qid_is_int32 ? ((const int32_t *)ql->qid_data)[pos] : ((const int64_t *)ql->qid_data)[pos];
        } else {
            acc->qids[q] = (int64_t)q + 1;
        }
        char what[64];
        snprintf(what, sizeof what, "knn_exact_join: query %zu", q + 1);
        if (knn_query_check(acc->queries + q * dim, dim, metric, what, &acc->q_norm2[q], err) != KNN_OK) {
            acc_free(acc);
            return err->status;
        }
    }
    *out = acc;
    return KNN_OK;
}

/* True when row's query list equals the accumulator's. */
static bool join_same_queries(const knn_qlist *ql, idx_t row, exact_acc *acc) {
    duckdb_list_entry e = ql->entries[row];
    if (e.length != acc->nq) return false;
    for (size_t q = 0; q < acc->nq; q++) {
        const float *v;
        size_t got;
        if (knn_vreader_get(&ql->vecs, e.offset + q, acc->dim, acc->qtmp, &v, &got) != KNN_ROW_OK) return false;
        if (memcmp(v, acc->queries + q * acc->dim, acc->dim * sizeof(float)) != 0) return false;
    }
    return true;
}

static knn_status join_update(const knn_agg_ctx *cx, duckdb_data_chunk input, duckdb_aggregate_state *states,
                              knn_error *err) {
    (void)cx;
    exact_args a;
    knn_qlist ql;
    unsigned char *skip = NULL;
    if (args_read(&a, "knn_exact_join", input, err) != KNN_OK) goto done;
    if (knn_qlist_init(&ql, a.queries, "knn_exact_join", err) != KNN_OK) goto done;
    skip = malloc(a.n ? a.n : 1);
    if (skip == NULL) {
        knn_error_set(err, KNN_ENOMEM, "knn_exact_join: out of memory");
        goto done;
    }
    for (idx_t lo = 0; lo < a.n;) {
        knn_agg_state *st = knn_agg_at(states, lo);
        idx_t hi = lo + 1;
        while (hi < a.n && states[hi] == states[lo]) hi++;
        bool any_skip = false;
        /* A constant query list gives every row the same list entry: compare contents once per entry. */
        duckdb_list_entry checked = {UINT64_MAX, 0};
        for (idx_t i = lo; i < hi; i++) {
            skip[i - lo] = 0;
            if (!knn_valid(ql.validity, i)) {
                skip[i - lo] = 1;
                any_skip = true;
                continue;
            }
            if (st->acc == NULL) {
                exact_acc *acc = NULL;
                if (join_acc_new(&a, &ql, i, &acc, err) != KNN_OK) goto done;
                st->acc = acc;
                checked = ql.entries[i];
                continue;
            }
            if (check_same_params(&a, st->acc, i, err) != KNN_OK) goto done;
            duckdb_list_entry e = ql.entries[i];
            if (e.offset == checked.offset && e.length == checked.length) continue;
            if (!join_same_queries(&ql, i, st->acc)) {
                params_changed(&a, err);
                goto done;
            }
            checked = e;
        }
        if (st->acc && scan_run(&a, st->acc, lo, hi, skip, any_skip, err) != KNN_OK) goto done;
        lo = hi;
    }
done:
    free(skip);
    return err->status;
}

/* ---- combine and finalize (shared) -------------------------------------------------------------- */

static exact_acc *acc_clone(const exact_acc *src, knn_error *err) {
    exact_acc *a = acc_new(src->nq, src->dim, src->k, src->metric, err);
    if (a == NULL) return NULL;
    memcpy(a->queries, src->queries, src->nq * src->dim * sizeof(float));
    memcpy(a->q_norm2, src->q_norm2, src->nq * sizeof(float));
    memcpy(a->qids, src->qids, src->nq * sizeof(int64_t));
    for (size_t q = 0; q < src->nq; q++) {
        if (knn_topk_merge(&a->heaps[q], &src->heaps[q], err) != KNN_OK) {
            acc_free(a);
            return NULL;
        }
    }
    return a;
}

static knn_status exact_merge(const knn_agg_ctx *cx, knn_agg_state *source, knn_agg_state *target, knn_error *err) {
    (void)cx;
    const exact_acc *src = source->acc;
    if (target->acc == NULL) {
        target->acc = acc_clone(src, err);
        return err->status;
    }
    exact_acc *d = target->acc;
    if (d->nq != src->nq || d->dim != src->dim || d->k != src->k || d->metric != src->metric ||
        memcmp(d->queries, src->queries, d->nq * d->dim * sizeof(float)) != 0) {
        return knn_error_set(err, KNN_EINVAL, "k, metric and the query must be the same for every row of a group");
    }
    for (size_t q = 0; q < d->nq; q++) {
        if (knn_topk_merge(&d->heaps[q], &src->heaps[q], err) != KNN_OK) return err->status;
    }
    return KNN_OK;
}

static int cmp_pairs(const void *x, const void *y) {
    const knn_pair *a = x, *b = y;
    if (a->dist != b->dist) return a->dist < b->dist ? -1 : 1;
    return (a->id > b->id) - (a->id < b->id);
}

/* Writes a state's sorted results as one list; knn_exact_join adds query_id and rank fields. */
static knn_status exact_finalize(const knn_agg_ctx *cx, knn_agg_state *st, duckdb_vector result, idx_t row,
                                 knn_error *err) {
    const bool join = cx->def->data != NULL;
    const exact_acc *a = st->acc;
    if (a == NULL) {
        knn_result_null(result, row);
        return KNN_OK;
    }
    size_t total = 0, widest = 0;
    for (size_t q = 0; q < a->nq; q++) {
        total += a->heaps[q].size;
        if (a->heaps[q].size > widest) widest = a->heaps[q].size;
    }
    knn_pair *sorted = malloc((widest ? widest : 1) * sizeof *sorted);
    if (sorted == NULL) return knn_error_set(err, KNN_ENOMEM, "out of memory sorting kNN results");
    idx_t pos;
    if (knn_list_begin(result, row, total, &pos, err) != KNN_OK) {
        free(sorted);
        return knn_error_set(err, KNN_ENOMEM, "could not reserve the kNN result list");
    }
    int f = 0;
    int64_t *qid_out = join ? knn_field(result, f++, true) : NULL;
    int64_t *id_out = knn_field(result, f++, true);
    float *dist_out = knn_field(result, f++, true);
    int32_t *rank_out = join ? knn_field(result, f++, true) : NULL;
    for (size_t q = 0; q < a->nq; q++) {
        const knn_topk *h = &a->heaps[q];
        if (h->size == 0) continue;
        memcpy(sorted, h->heap, h->size * sizeof *sorted);
        qsort(sorted, h->size, sizeof *sorted, cmp_pairs);
        for (size_t r = 0; r < h->size; r++, pos++) {
            if (qid_out) qid_out[pos] = a->qids[q];
            id_out[pos] = sorted[r].id;
            dist_out[pos] = sorted[r].dist;
            if (rank_out) rank_out[pos] = (int32_t)r + 1;
        }
    }
    free(sorted);
    return KNN_OK;
}

/* ---- registration ------------------------------------------------------------------------------- */

static const knn_fields exact_fields = {2, {"id", "distance"}, {DUCKDB_TYPE_BIGINT, DUCKDB_TYPE_FLOAT}};
static const knn_fields join_fields = {4, {"query_id", "id", "distance", "rank"},
                                       {DUCKDB_TYPE_BIGINT, DUCKDB_TYPE_BIGINT, DUCKDB_TYPE_FLOAT, DUCKDB_TYPE_INTEGER}};
static const bool joining = true;

#define EXACT_PARAMS(query) {DUCKDB_TYPE_BIGINT, DUCKDB_TYPE_ANY, query, DUCKDB_TYPE_BIGINT, DUCKDB_TYPE_VARCHAR}
#define EXACT_HOOKS .min_params = 4, .n_params = 5, .result = KNN_LIST_OF(DUCKDB_TYPE_STRUCT), .free_acc = acc_free, \
                    .merge = exact_merge, .finalize = exact_finalize, .raw = KNN_RAW_COMBINE | KNN_RAW_FINALIZE

/* knn_exact types its query FLOAT[] (and DOUBLE[]) so DuckDB casts a constant query once and every row
 * shares one list entry; an ARRAY constant would be copied into every row of every chunk. The ANY
 * overload catches the rest so the error names the supported types. */
static const knn_agg_def exact_defs[] = {
    {.name = "knn_exact", .params = EXACT_PARAMS(KNN_LIST_OF(DUCKDB_TYPE_FLOAT)), EXACT_HOOKS,
     .update = exact_update, .fields = &exact_fields},
    {.name = "knn_exact", .params = EXACT_PARAMS(KNN_LIST_OF(DUCKDB_TYPE_DOUBLE)), EXACT_HOOKS,
     .update = exact_update, .fields = &exact_fields},
    {.name = "knn_exact", .params = EXACT_PARAMS(DUCKDB_TYPE_ANY), EXACT_HOOKS, .update = exact_update,
     .fields = &exact_fields},
    {.name = "knn_exact_join", .params = EXACT_PARAMS(DUCKDB_TYPE_ANY), EXACT_HOOKS, .update = join_update,
     .fields = &join_fields, .data = &joining},
};

bool knn_register_exact(duckdb_connection con, knn_registry *reg, knn_error *err) {
    return knn_register_aggregates(con, reg, exact_defs, sizeof exact_defs / sizeof exact_defs[0], err);
}
