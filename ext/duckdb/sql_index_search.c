/* Searching a named index: knn_search (table function, one query) and knn (scalar, a query per row).
 *
 *   knn_search(name, query, k := 10, ef := NULL, lo := NULL, hi := NULL, filter := NULL, attributes := false,
 *              rerank := NULL)
 *                                  -> rows (id BIGINT, distance FLOAT, rank INTEGER [, attribute columns])
 *   knn(name, query, k [, lo, hi [, ef]])  -> LIST(STRUCT(id BIGINT, distance FLOAT))
 *   knn(name, query, k, filter)             -> the same, among the rows the filter accepts
 *
 * lo/hi restrict results to rows whose label lies in [lo, hi] (inclusive; NULL leaves a side open;
 * lo > hi is an empty window). filter is a boolean expression over the index's attribute columns
 * (attrs/knn_predicate.h), parsed once per statement (knn_search) or per chunk (knn), evaluated inside
 * the index; with a window, a row must pass both. attributes := true adds the index's attribute
 * columns to each hit (their values as stored in the index), so a search needs no join back to its
 * table when those are the columns it wants.
 *
 * knn fans the rows of each chunk out over the machine's cores, so a batch join over a query table
 * runs in parallel even when DuckDB hands it a single chunk. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "duckdb_extension.h"
#include "knn_glue.h"
#include "knn_kit.h"
#include "attrs/knn_predicate.h"
#include "base/knn_parallel.h"
#include "index/knn_registry.h"
#include "sql_register.h"

DUCKDB_EXTENSION_EXTERN

static knn_status check_dim(const knn_entry *e, size_t dim, const char *fn, knn_error *err) {
    if (dim == e->dim) return KNN_OK;
    return knn_error_set(err, KNN_EDATA, "%s: dimension mismatch: the query has %zu elements but index '%s' has dim %zu",
                         fn, dim, e->name, e->dim);
}

/* ---- knn_search --------------------------------------------------------------------------------- */

typedef struct search_bind {
    knn_index_ref ref;
    float *query;
    size_t dim;
    size_t k, ef, rerank;
    bool windowed;
    double lo, hi;
    knn_predicate *filter; /* NULL: none */
    size_t nattrs;         /* attribute columns output after rank (attributes := true) */
    char attr_names[KNN_ATTR_COLS_MAX][KNN_ATTR_NAME_MAX + 1];
    knn_attr_type attr_types[KNN_ATTR_COLS_MAX];
} search_bind;

typedef struct search_state {
    int started;
    size_t pos, n;
    int64_t *ids;
    float *dists;
} search_state;

static void search_bind_free(void *p) {
    search_bind *b = p;
    if (b) free(b->query);
    if (b) knn_predicate_free(b->filter);
    free(b);
}

static void search_state_free(void *p) {
    search_state *st = p;
    if (st == NULL) return;
    free(st->ids);
    free(st->dists);
    free(st);
}

static duckdb_type sql_type(knn_attr_type t) {
    switch (t) {
    case KNN_ATTR_BIGINT: return DUCKDB_TYPE_BIGINT;
    case KNN_ATTR_DOUBLE: return DUCKDB_TYPE_DOUBLE;
    case KNN_ATTR_BOOLEAN: return DUCKDB_TYPE_BOOLEAN;
    case KNN_ATTR_DATE: return DUCKDB_TYPE_DATE;
    case KNN_ATTR_TIMESTAMP: return DUCKDB_TYPE_TIMESTAMP;
    default: return DUCKDB_TYPE_VARCHAR;
    }
}

/* attributes := true: the index's attribute columns (but those named like the fixed outputs). */
static knn_status bind_attributes(duckdb_bind_info info, knn_entry *e, search_bind *b, knn_error *err) {
    duckdb_value v = duckdb_bind_get_named_parameter(info, "attributes");
    bool on = v != NULL && !duckdb_is_null_value(v) && duckdb_get_bool(v);
    if (v) duckdb_destroy_value(&v);
    b->nattrs = 0;
    if (!on) return KNN_OK;
    if (e->kind != KNN_KIND_GRAPH) {
        return knn_error_set(err, KNN_EINVAL, "knn_search: index '%s' is flat and holds no attribute columns; drop "
                             "attributes := true", e->name);
    }
    char names[KNN_ATTR_COLS_MAX][KNN_ATTR_NAME_MAX + 1];
    knn_attr_type types[KNN_ATTR_COLS_MAX];
    size_t n = knn_graph_attr_columns(e->graph, names, types, KNN_ATTR_COLS_MAX);
    for (size_t c = 0; c < n; c++) {
        if (strcasecmp(names[c], "id") == 0 || strcasecmp(names[c], "distance") == 0 ||
            strcasecmp(names[c], "rank") == 0) {
            continue;
        }
        memcpy(b->attr_names[b->nattrs], names[c], sizeof names[c]);
        b->attr_types[b->nattrs++] = types[c];
    }
    return KNN_OK;
}

/* Writes attribute column c of output rows [0, rows) for hits ids[0..rows). */
static void emit_attribute(knn_entry *e, const search_bind *b, size_t c, const int64_t *ids, idx_t rows,
                           duckdb_vector out, knn_error *err) {
    int64_t *i64 = malloc(rows * sizeof *i64);
    double *f64 = malloc(rows * sizeof *f64);
    const char **strs = malloc(rows * sizeof *strs);
    uint32_t *lens = malloc(rows * sizeof *lens);
    uint8_t *valid = malloc(rows);
    knn_attr_type held = (knn_attr_type)0;
    const char *name = b->attr_names[c];
    if (i64 && f64 && strs && lens && valid) {
        knn_graph_attr_gather(e->graph, ids, rows, name, strlen(name), &held, i64, f64, strs, lens, valid, err);
    } else if (valid) {
        memset(valid, 0, rows);
    }
    void *data = duckdb_vector_get_data(out);
    for (idx_t r = 0; r < rows; r++) {
        /* a column whose type changed since bind (dropped and re-created index) reads as NULL */
        if (valid == NULL || !valid[r] || held != b->attr_types[c]) {
            knn_set_null(out, r);
            continue;
        }
        switch (b->attr_types[c]) {
        case KNN_ATTR_BIGINT: case KNN_ATTR_TIMESTAMP: ((int64_t *)data)[r] = i64[r]; break;
        case KNN_ATTR_DOUBLE: ((double *)data)[r] = f64[r]; break;
        case KNN_ATTR_BOOLEAN: ((bool *)data)[r] = i64[r] != 0; break;
        case KNN_ATTR_DATE: ((int32_t *)data)[r] = (int32_t)i64[r]; break;
        default: duckdb_vector_assign_string_element_len(out, r, strs[r], lens[r]);
        }
    }
    free(i64);
    free(f64);
    free(strs);
    free(lens);
    free(valid);
}

static void search_bind_fn(duckdb_bind_info info) {
    const char *fn = "knn_search";
    knn_error err;
    search_bind *b = knn_bind_index_name(info, sizeof *b, fn, &err);
    duckdb_value qv = NULL;
    if (b == NULL) goto fail;
    qv = duckdb_bind_get_parameter(info, 1);
    if (!knn_value_to_floats(qv, &b->query, &b->dim, fn, &err)) goto fail;
    int64_t v = 10;
    knn_bind_named_int(info, "k", &v);
    if (v < 1) {
        knn_error_set(&err, KNN_EINVAL, "%s: k must be >= 1, got %lld", fn, (long long)v);
        goto fail;
    }
    b->k = (size_t)v;
    v = 0;
    if (knn_bind_named_int(info, "ef", &v) == 1 && v < 1) {
        knn_error_set(&err, KNN_EINVAL, "%s: ef must be >= 1, got %lld", fn, (long long)v);
        goto fail;
    }
    b->ef = (size_t)v;
    v = 0;
    if (knn_bind_named_int(info, "rerank", &v) == 1 && v < 1) {
        knn_error_set(&err, KNN_EINVAL, "%s: rerank must be >= 1, got %lld", fn, (long long)v);
        goto fail;
    }
    b->rerank = (size_t)v;
    char *filter = knn_bind_named_varchar(info, "filter");
    if (filter) {
        knn_status ps = knn_predicate_parse(filter, strlen(filter), &b->filter, &err);
        duckdb_free(filter);
        if (ps != KNN_OK) goto fail;
    }
    knn_entry *e = knn_registry_get(knn_bind_registry(info), b->ref.name, b->ref.len, &err);
    if (e == NULL) goto fail;
    knn_status s = check_dim(e, b->dim, fn, &err);
    if (s == KNN_OK) s = knn_bind_window(info, e, fn, &b->windowed, &b->lo, &b->hi, &err);
    if (s == KNN_OK) s = bind_attributes(info, e, b, &err);
    knn_entry_release(e);
    if (s != KNN_OK) goto fail;
    if (qv) duckdb_destroy_value(&qv);
    knn_bind_column(info, "id", DUCKDB_TYPE_BIGINT);
    knn_bind_column(info, "distance", DUCKDB_TYPE_FLOAT);
    knn_bind_column(info, "rank", DUCKDB_TYPE_INTEGER);
    for (size_t c = 0; c < b->nattrs; c++) knn_bind_column(info, b->attr_names[c], sql_type(b->attr_types[c]));
    duckdb_bind_set_bind_data(info, b, search_bind_free);
    return;
fail:
    if (qv) duckdb_destroy_value(&qv);
    search_bind_free(b);
    knn_fail_bind(info, fn, &err);
}

static void search_run(duckdb_function_info info, duckdb_data_chunk out) {
    search_bind *b = duckdb_function_get_bind_data(info);
    search_state *st = duckdb_function_get_init_data(info);
    knn_error err;
    knn_entry *e;
    if (knn_table_first(info, &e, &err)) {
        size_t cap = 0;
        if (e) {
            cap = b->k < knn_entry_count(e) ? b->k : knn_entry_count(e);
            if (cap == 0) cap = 1;
            st->ids = malloc(cap * sizeof *st->ids);
            st->dists = malloc(cap * sizeof *st->dists);
        }
        if (e == NULL || check_dim(e, b->dim, "knn_search", &err) != KNN_OK ||
            (!st->ids || !st->dists ? knn_error_set(&err, KNN_ENOMEM, "out of memory for %zu results", cap)
             : b->filter ? knn_entry_search_filter(e, b->query, 1, cap, b->ef, b->rerank, b->filter, b->windowed, b->lo, b->hi, 1,
                                                   st->ids, st->dists, &st->n, NULL, &err)
             : b->windowed ? knn_entry_search_window(e, b->query, cap, b->ef, b->rerank, b->lo, b->hi, st->ids, st->dists, &st->n,
                                                     &err)
                           : knn_entry_search(e, b->query, cap, b->ef, b->rerank, st->ids, st->dists, &st->n, &err)) != KNN_OK) {
            knn_entry_release(e);
            return knn_fail_run(info, "knn_search", &err);
        }
        knn_entry_release(e);
    }
    idx_t rows = knn_chunk_rows(st->n, st->pos);
    int64_t *id_out = duckdb_vector_get_data(duckdb_data_chunk_get_vector(out, 0));
    float *dist_out = duckdb_vector_get_data(duckdb_data_chunk_get_vector(out, 1));
    int32_t *rank_out = duckdb_vector_get_data(duckdb_data_chunk_get_vector(out, 2));
    for (idx_t r = 0; r < rows; r++) {
        id_out[r] = st->ids[st->pos + r];
        dist_out[r] = st->dists[st->pos + r];
        rank_out[r] = (int32_t)(st->pos + r + 1);
    }
    if (b->nattrs && rows) {
        knn_entry *e = knn_registry_get(knn_table_registry(info), b->ref.name, b->ref.len, &err);
        if (e == NULL) return knn_fail_run(info, "knn_search", &err);
        for (size_t c = 0; c < b->nattrs; c++) {
            emit_attribute(e, b, c, st->ids + st->pos, rows, duckdb_data_chunk_get_vector(out, 3 + c), &err);
        }
        knn_entry_release(e);
    }
    st->pos += rows;
    duckdb_data_chunk_set_size(out, rows);
}

/* ---- knn (scalar) ------------------------------------------------------------------------------- */

typedef struct batch_job {
    knn_entry *e;
    const float *queries; /* n x dim, converted */
    const unsigned char *skip;
    const double *lo, *hi; /* per-row window, NULL without one */
    const unsigned char *win; /* row has a window (a non-NULL bound) */
    const size_t *k, *ef, *offset;
    size_t n, dim, nthreads;
    int64_t *ids;
    float *dists;
    size_t *found;
    knn_error *errs;
} batch_job;

static void batch_task(void *arg, size_t t) {
    batch_job *job = arg;
    for (size_t i = t; i < job->n; i += job->nthreads) {
        job->found[i] = 0;
        if (job->skip[i]) continue;
        const float *q = job->queries + i * job->dim;
        knn_status s = job->lo && job->win[i] ? knn_entry_search_window(job->e, q, job->k[i], job->ef[i], 0, job->lo[i], job->hi[i],
                                                         job->ids + job->offset[i], job->dists + job->offset[i],
                                                         &job->found[i], &job->errs[t])
                               : knn_entry_search(job->e, q, job->k[i], job->ef[i], 0, job->ids + job->offset[i],
                                                  job->dists + job->offset[i], &job->found[i], &job->errs[t]);
        if (s != KNN_OK) return;
    }
}

/* The filter of one knn(...) chunk: the same text on every row (NULL rows: no filter is not allowed,
 * as a NULL filter would silently mean "all rows" on some rows only), parsed once. */
static knn_status scalar_filter(duckdb_vector v, idx_t n, const char *fn, knn_predicate **out, knn_error *err) {
    const char *text = NULL;
    size_t len = 0;
    duckdb_logical_type t = duckdb_vector_get_column_type(v);
    bool is_text = duckdb_get_type_id(t) == DUCKDB_TYPE_VARCHAR;
    duckdb_destroy_logical_type(&t);
    if (!is_text) {
        return knn_error_set(err, KNN_EINVAL, "%s: with four arguments the fourth is a filter string, e.g. "
                             "knn(name, q, 10, 'price < 5'); for a window give lo and hi: knn(name, q, k, lo, hi)", fn);
    }
    for (idx_t i = 0; i < n; i++) {
        const char *t;
        size_t l;
        if (!knn_get_varchar(v, i, &t, &l)) {
            return knn_error_set(err, KNN_EINVAL, "%s: the filter must not be NULL; use knn(name, query, k) for no "
                                 "filter", fn);
        }
        if (text == NULL) {
            text = t;
            len = l;
        } else if (l != len || memcmp(t, text, l) != 0) {
            return knn_error_set(err, KNN_EINVAL, "%s: every row of one call must use the same filter; search "
                                 "per filter value with separate statements, or use knn_among", fn);
        }
    }
    return text ? knn_predicate_parse(text, len, out, err) : KNN_OK;
}

static void knn_scalar(duckdb_function_info info, duckdb_data_chunk input, duckdb_vector output) {
    const char *fn = "knn";
    knn_error err;
    knn_error_clear(&err);
    idx_t n = duckdb_data_chunk_get_size(input);
    duckdb_vector names = duckdb_data_chunk_get_vector(input, 0);
    duckdb_vector kv = duckdb_data_chunk_get_vector(input, 2);
    idx_t ncols = duckdb_data_chunk_get_column_count(input);
    bool windowed = ncols >= 5;
    duckdb_vector filter_v = ncols == 4 ? duckdb_data_chunk_get_vector(input, 3) : NULL;
    knn_predicate *filter = NULL;
    duckdb_vector efv = ncols > 5 ? duckdb_data_chunk_get_vector(input, 5) : NULL;
    knn_label_col lo_col = {0}, hi_col = {0};
    double *los = NULL, *his = NULL;
    unsigned char *win = NULL;
    knn_entry *e = NULL;
    float *queries = NULL;
    unsigned char *skip = NULL;
    size_t *ks = NULL, *efs = NULL, *offsets = NULL, *found = NULL;
    int64_t *ids = NULL;
    float *dists = NULL;
    knn_error *errs = NULL;
    knn_vreader qr;
    if (n == 0) return;
    if (knn_vreader_init(&qr, duckdb_data_chunk_get_vector(input, 1), fn, "query", &err) != KNN_OK) goto done;
    if (windowed && (knn_label_col_init(&lo_col, duckdb_data_chunk_get_vector(input, 3), fn, "lo", &err) != KNN_OK ||
                     knn_label_col_init(&hi_col, duckdb_data_chunk_get_vector(input, 4), fn, "hi", &err) != KNN_OK)) {
        goto done;
    }
    /* One index per call: find it from the first non-NULL name. */
    const char *name0 = NULL;
    size_t len0 = 0;
    for (idx_t i = 0; i < n && name0 == NULL; i++) knn_get_varchar(names, i, &name0, &len0);
    if (name0 == NULL) goto done; /* every row NULL: NULL results */
    if (filter_v && scalar_filter(filter_v, n, fn, &filter, &err) != KNN_OK) goto done;
    e = knn_registry_get(knn_scalar_registry(info), name0, len0, &err);
    if (e == NULL) goto done;
    const size_t d = e->dim, live = knn_entry_count(e);
    queries = malloc(n * d * sizeof *queries);
    skip = calloc(n, 1);
    ks = malloc(n * sizeof *ks);
    efs = malloc(n * sizeof *efs);
    offsets = malloc((n + 1) * sizeof *offsets);
    found = calloc(n, sizeof *found);
    if (windowed) {
        los = malloc(n * sizeof *los);
        his = malloc(n * sizeof *his);
        win = calloc(n, 1);
    }
    if (!queries || !skip || !ks || !efs || !offsets || !found || (windowed && (!los || !his || !win))) {
        knn_error_set(&err, KNN_ENOMEM, "out of memory for %llu queries", (unsigned long long)n);
        goto done;
    }
    offsets[0] = 0;
    for (idx_t i = 0; i < n; i++) {
        const char *nm;
        size_t len;
        int64_t k = 0, ef = 0;
        ks[i] = efs[i] = 0;
        if (!knn_get_varchar(names, i, &nm, &len) || !knn_valid(qr.validity, i)) {
            skip[i] = 1;
        } else if (len != len0 || memcmp(nm, name0, len) != 0) {
            knn_error_set(&err, KNN_EINVAL, "every row of one knn(...) call must name the same index ('%s' and "
                          "'%.*s' differ); split the query per index", e->name, (int)(len > 64 ? 64 : len), nm);
            goto done;
        } else if (!knn_get_bigint(kv, i, &k) || k < 1) {
            knn_error_set(&err, KNN_EINVAL, "k must be >= 1 (got %s)", knn_valid(duckdb_vector_get_validity(kv), i) ? "a smaller value" : "NULL");
            goto done;
        } else if (efv && knn_get_bigint(efv, i, &ef) && ef < 1) {
            knn_error_set(&err, KNN_EINVAL, "ef must be >= 1, got %lld", (long long)ef);
            goto done;
        } else {
            const float *q;
            size_t got = 0;
            knn_row_state rs = knn_vreader_get(&qr, i, d, queries + i * d, &q, &got);
            if (rs == KNN_ROW_DIM_MISMATCH) {
                check_dim(e, got, fn, &err);
                goto done;
            }
            if (rs == KNN_ROW_NULL_ELEMENT) {
                knn_error_set(&err, KNN_EDATA, "query of row %llu contains a NULL element", (unsigned long long)i);
                goto done;
            }
            if (q != queries + i * d) memcpy(queries + i * d, q, d * sizeof(float));
            if (windowed) {
                unsigned kind = atomic_load(&e->label_kind);
                double x;
                los[i] = -INFINITY;
                his[i] = INFINITY;
                /* NULL bounds leave a side open; with both NULL the row searches without a window */
                if (knn_label_at(&lo_col, i, &x)) {
                    win[i] = 1;
                    if (knn_label_bound(x, lo_col.kind, kind, true, fn, "lo", &los[i], &err) != KNN_OK) goto done;
                }
                if (knn_label_at(&hi_col, i, &x)) {
                    win[i] = 1;
                    if (knn_label_bound(x, hi_col.kind, kind, false, fn, "hi", &his[i], &err) != KNN_OK) goto done;
                }
            }
            ks[i] = (size_t)k < live ? (size_t)k : live;
            efs[i] = (size_t)ef;
            if (ks[i] == 0) skip[i] = 2; /* empty index: empty list */
        }
        offsets[i + 1] = offsets[i] + ks[i];
    }
    ids = malloc((offsets[n] ? offsets[n] : 1) * sizeof *ids);
    dists = malloc((offsets[n] ? offsets[n] : 1) * sizeof *dists);
    size_t nthreads = knn_cpu_count();
    if (nthreads > n) nthreads = n;
    errs = calloc(nthreads, sizeof *errs);
    if (!ids || !dists || !errs) {
        knn_error_set(&err, KNN_ENOMEM, "out of memory for %zu results", offsets[n]);
        goto done;
    }
    /* A flat index without windows answers the whole chunk in one blocked pass over its rows (the
     * GEMM-style kernel) instead of one full scan per query. */
    size_t kk = 0, m = 0;
    bool same_k = true;
    for (idx_t i = 0; i < n; i++) {
        if (skip[i]) continue;
        if (kk == 0) kk = ks[i];
        same_k = same_k && ks[i] == kk;
        if (i != m) memmove(queries + m * d, queries + i * d, d * sizeof(float));
        m++;
    }
    if (filter) {
        /* one bitmap for the chunk, every query searched among it (k: the largest asked, cut per row) */
        size_t kmax = 1;
        for (idx_t i = 0; i < n; i++) kmax = !skip[i] && ks[i] > kmax ? ks[i] : kmax;
        int64_t *bids = malloc((m ? m : 1) * kmax * sizeof *bids);
        float *bdists = malloc((m ? m : 1) * kmax * sizeof *bdists);
        size_t *bfound = malloc((m ? m : 1) * sizeof *bfound);
        knn_status bs = !bids || !bdists || !bfound
                            ? knn_error_set(&err, KNN_ENOMEM, "out of memory for %zu results", m * kmax)
                            : knn_entry_search_filter(e, queries, m, kmax, 0, 0, filter, 0, 0, 0, 0, bids, bdists, bfound,
                                                      NULL, &err);
        for (idx_t i = 0, r = 0; bs == KNN_OK && i < n; i++) {
            if (skip[i]) continue;
            found[i] = bfound[r] < ks[i] ? bfound[r] : ks[i];
            memcpy(ids + offsets[i], bids + r * kmax, found[i] * sizeof *ids);
            memcpy(dists + offsets[i], bdists + r * kmax, found[i] * sizeof *dists);
            r++;
        }
        free(bids);
        free(bdists);
        free(bfound);
        if (bs != KNN_OK) goto done;
    } else if (e->kind == KNN_KIND_FLAT && !windowed && same_k && m > 1) {
        size_t got = 0;
        int64_t *bids = malloc(m * kk * sizeof *bids);
        float *bdists = malloc(m * kk * sizeof *bdists);
        knn_status bs = !bids || !bdists ? knn_error_set(&err, KNN_ENOMEM, "out of memory for %zu results", m * kk)
                                         : knn_entry_search_flat_batch(e, queries, m, kk, bids, bdists, &got, &err);
        for (idx_t i = 0, r = 0; bs == KNN_OK && i < n; i++) {
            if (skip[i]) continue;
            memcpy(ids + offsets[i], bids + r * kk, got * sizeof *ids);
            memcpy(dists + offsets[i], bdists + r * kk, got * sizeof *dists);
            found[i] = got;
            r++;
        }
        free(bids);
        free(bdists);
        if (bs != KNN_OK) goto done;
    } else {
        /* restore the row layout the per-row search expects */
        for (idx_t i = n, r = m; i-- > 0;) {
            if (skip[i]) continue;
            r--;
            if (i != r) memmove(queries + i * d, queries + r * d, d * sizeof(float));
        }
        batch_job job = {e, queries, skip, los, his, win, ks, efs, offsets, n, d, nthreads, ids, dists, found, errs};
        knn_parallel_run(nthreads, batch_task, &job);
        if (knn_error_first(errs, nthreads, &err) != KNN_OK) goto done;
    }
    /* Write LIST(STRUCT(id, distance)) rows. */
    size_t total = 0;
    for (idx_t i = 0; i < n; i++) total += found[i];
    idx_t base = duckdb_list_vector_get_size(output);
    if (duckdb_list_vector_reserve(output, base + total) != DuckDBSuccess) {
        knn_error_set(&err, KNN_ENOMEM, "could not reserve %zu results", total);
        goto done;
    }
    duckdb_vector child = duckdb_list_vector_get_child(output);
    int64_t *id_out = duckdb_vector_get_data(duckdb_struct_vector_get_child(child, 0));
    float *dist_out = duckdb_vector_get_data(duckdb_struct_vector_get_child(child, 1));
    duckdb_list_entry *entries = duckdb_vector_get_data(output);
    idx_t pos = base;
    for (idx_t i = 0; i < n; i++) {
        entries[i].offset = pos;
        entries[i].length = found[i];
        if (skip[i] == 1) {
            knn_set_null(output, i);
            continue;
        }
        memcpy(id_out + pos, ids + offsets[i], found[i] * sizeof *id_out);
        memcpy(dist_out + pos, dists + offsets[i], found[i] * sizeof *dist_out);
        pos += found[i];
    }
    duckdb_list_vector_set_size(output, pos);
done:
    if (err.status == KNN_OK && e == NULL) {
        /* all names NULL */
        for (idx_t i = 0; i < n; i++) knn_set_null(output, i);
    }
    knn_entry_release(e);
    free(queries);
    free(skip);
    free(ks);
    free(efs);
    free(offsets);
    free(found);
    free(ids);
    free(dists);
    free(errs);
    free(los);
    free(his);
    free(win);
    knn_predicate_free(filter);
    if (err.status != KNN_OK) knn_fail_scalar(info, fn, &err);
}

static const knn_fields hit_fields = {2, {"id", "distance"}, {DUCKDB_TYPE_BIGINT, DUCKDB_TYPE_FLOAT}};

static const knn_table_def search_table[] = {
    {.name = "knn_search", .bind = search_bind_fn, .run = search_run,
     .positional = {DUCKDB_TYPE_VARCHAR, DUCKDB_TYPE_LIST}, .n_positional = 2, .named = {"k", "ef", "lo", "hi", "filter", "attributes", "rerank"},
     .named_types = {DUCKDB_TYPE_BIGINT, DUCKDB_TYPE_BIGINT, DUCKDB_TYPE_ANY, DUCKDB_TYPE_ANY, DUCKDB_TYPE_VARCHAR,
                     DUCKDB_TYPE_BOOLEAN, DUCKDB_TYPE_BIGINT},
     .state_size = sizeof(search_state), .state_free = search_state_free},
};

/* Results depend on the index's contents, not only on the arguments: never constant-fold. */
static const knn_scalar_def search_scalar[] = {
    {.name = "knn", .run = knn_scalar, .params = {DUCKDB_TYPE_VARCHAR, DUCKDB_TYPE_ANY, DUCKDB_TYPE_BIGINT,
                                                  DUCKDB_TYPE_ANY, DUCKDB_TYPE_ANY, DUCKDB_TYPE_BIGINT},
     .arities = {3, 4, 5, 6}, .n_arities = 4, /* (name, query, k [, lo, hi [, ef]]) or (name, query, k, filter) */
     .result = KNN_LIST_OF(DUCKDB_TYPE_STRUCT), .fields = &hit_fields, .is_volatile = true, .special_nulls = true},
};

bool knn_register_index_search(duckdb_connection con, knn_registry *reg, knn_error *err) {
    return knn_register_tables(con, reg, search_table, 1, err) && knn_register_scalars(con, reg, search_scalar, 1, err);
}
