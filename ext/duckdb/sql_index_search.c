/* Searching a named index: knn_search (table function, one query) and knn (scalar, a query per row).
 *
 *   knn_search(name, query, k := 10, ef := NULL, lo := NULL, hi := NULL)
 *                                  -> rows (id BIGINT, distance FLOAT, rank INTEGER)
 *   knn(name, query, k [, lo, hi [, ef]])  -> LIST(STRUCT(id BIGINT, distance FLOAT))
 *
 * lo/hi restrict results to rows whose label lies in [lo, hi] (inclusive; NULL leaves a side open;
 * lo > hi is an empty window).
 *
 * knn fans the rows of each chunk out over the machine's cores, so a batch join over a query table
 * runs in parallel even when DuckDB hands it a single chunk. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "duckdb_extension.h"
#include "knn_glue.h"
#include "knn_kit.h"
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
    size_t k, ef;
    bool windowed;
    double lo, hi;
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
    free(b);
}

static void search_state_free(void *p) {
    search_state *st = p;
    if (st == NULL) return;
    free(st->ids);
    free(st->dists);
    free(st);
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
    knn_entry *e = knn_registry_get(knn_bind_registry(info), b->ref.name, b->ref.len, &err);
    if (e == NULL) goto fail;
    knn_status s = check_dim(e, b->dim, fn, &err);
    if (s == KNN_OK) s = knn_bind_window(info, e, fn, &b->windowed, &b->lo, &b->hi, &err);
    knn_entry_release(e);
    if (s != KNN_OK) goto fail;
    if (qv) duckdb_destroy_value(&qv);
    knn_bind_column(info, "id", DUCKDB_TYPE_BIGINT);
    knn_bind_column(info, "distance", DUCKDB_TYPE_FLOAT);
    knn_bind_column(info, "rank", DUCKDB_TYPE_INTEGER);
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
             : b->windowed ? knn_entry_search_window(e, b->query, cap, b->ef, b->lo, b->hi, st->ids, st->dists, &st->n,
                                                     &err)
                           : knn_entry_search(e, b->query, cap, b->ef, st->ids, st->dists, &st->n, &err)) != KNN_OK) {
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
        knn_status s = job->lo && job->win[i] ? knn_entry_search_window(job->e, q, job->k[i], job->ef[i], job->lo[i], job->hi[i],
                                                         job->ids + job->offset[i], job->dists + job->offset[i],
                                                         &job->found[i], &job->errs[t])
                               : knn_entry_search(job->e, q, job->k[i], job->ef[i], job->ids + job->offset[i],
                                                  job->dists + job->offset[i], &job->found[i], &job->errs[t]);
        if (s != KNN_OK) return;
    }
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
    if (e->kind == KNN_KIND_FLAT && !windowed && same_k && m > 1) {
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
        for (size_t t = 0; t < nthreads; t++) {
            if (errs[t].status != KNN_OK) {
                err = errs[t];
                goto done;
            }
        }
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
    if (err.status != KNN_OK) knn_fail_scalar(info, fn, &err);
}

static const knn_fields hit_fields = {2, {"id", "distance"}, {DUCKDB_TYPE_BIGINT, DUCKDB_TYPE_FLOAT}};

static const knn_table_def search_table[] = {
    {.name = "knn_search", .bind = search_bind_fn, .run = search_run,
     .positional = {DUCKDB_TYPE_VARCHAR, DUCKDB_TYPE_LIST}, .n_positional = 2, .named = {"k", "ef", "lo", "hi"},
     .named_types = {DUCKDB_TYPE_BIGINT, DUCKDB_TYPE_BIGINT, DUCKDB_TYPE_ANY, DUCKDB_TYPE_ANY},
     .state_size = sizeof(search_state), .state_free = search_state_free},
};

/* Results depend on the index's contents, not only on the arguments: never constant-fold. */
static const knn_scalar_def search_scalar[] = {
    {.name = "knn", .run = knn_scalar, .params = {DUCKDB_TYPE_VARCHAR, DUCKDB_TYPE_ANY, DUCKDB_TYPE_BIGINT,
                                                  DUCKDB_TYPE_ANY, DUCKDB_TYPE_ANY, DUCKDB_TYPE_BIGINT},
     .arities = {3, 5, 6}, .n_arities = 3, /* (name, query, k [, lo, hi [, ef]]) */
     .result = KNN_LIST_OF(DUCKDB_TYPE_STRUCT), .fields = &hit_fields, .is_volatile = true, .special_nulls = true},
};

bool knn_register_index_search(duckdb_connection con, knn_registry *reg, knn_error *err) {
    return knn_register_tables(con, reg, search_table, 1, err) && knn_register_scalars(con, reg, search_scalar, 1, err);
}
