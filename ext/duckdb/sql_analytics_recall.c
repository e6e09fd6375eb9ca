/* knn_recall(name, query, k [, ef [, lo, hi]]) -> DOUBLE: recall@k of the named graph index for one
 * query against an exact scan of the same index's live rows (optionally inside the label window
 * [lo, hi], in the label's unit), the recall audit of ext/core/knn_analytics_recall.c as a scalar, so
 * it runs over any query relation: SELECT avg(knn_recall('docs', emb, 10, 64)) FROM sample_queries.
 * A flat index is exact: its recall is 1. NULL name, query or k gives NULL.
 *
 * knn_index_recall(name, k := 10, sample := 100, ef := 0) -> one row (name, recall, k, ef, queries, rows):
 * recall@k over `sample` of the index's own rows spread evenly, each left out of its own answer (an
 * optimistic figure: ext/core/analytics/recall.c; knn_recall over held-out queries is the realistic one),
 * at the default ef unless ef := says otherwise; the figure is kept, and knn_indexes() shows it beside the
 * row count it was measured at.
 *
 * knn_index_tune(name, query, target_recall [, k [, max_ef]]) -> BIGINT ef, an aggregate over held-out queries
 * (SELECT knn_index_tune('docs', emb, 0.95) FROM held_out; k 10, max_ef 4096 by default): the smallest search width on a x1.08 ladder from k whose recall@k over
 * the held-out queries, less one standard error, reaches the target becomes the index's default ef (searches without ef := use it;
 * saved with the index), and the recall is kept as above. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "analytics/knn_analytics.h"
#include "knn_glue.h"
#include "index/knn_registry.h"
#include "knn_kit.h"
#include "sql_register.h"

DUCKDB_EXTENSION_EXTERN

static void sql_knn_recall(duckdb_function_info info, duckdb_data_chunk input, duckdb_vector output) {
    knn_error err;
    knn_error_clear(&err);
    idx_t n = duckdb_data_chunk_get_size(input);
    idx_t ncols = duckdb_data_chunk_get_column_count(input);
    knn_registry *reg = knn_scalar_registry(info);
    duckdb_vector names = duckdb_data_chunk_get_vector(input, 0);
    duckdb_vector kv = duckdb_data_chunk_get_vector(input, 2);
    duckdb_vector efv = ncols > 3 ? duckdb_data_chunk_get_vector(input, 3) : NULL;
    duckdb_vector lov = ncols > 5 ? duckdb_data_chunk_get_vector(input, 4) : NULL;
    duckdb_vector hiv = ncols > 5 ? duckdb_data_chunk_get_vector(input, 5) : NULL;
    double *out = duckdb_vector_get_data(output);
    knn_vreader vr;
    knn_entry *e = NULL;
    float *buf = NULL;
    if (knn_vreader_init(&vr, duckdb_data_chunk_get_vector(input, 1), "knn_recall", "query", &err)) goto done;
    for (idx_t i = 0; i < n; i++) {
        const char *nm;
        size_t len;
        int64_t k, ef = 0;
        if (!knn_get_varchar(names, i, &nm, &len) || !knn_get_bigint(kv, i, &k) || !knn_valid(vr.validity, i)) {
            knn_set_null(output, i);
            continue;
        }
        if (k <= 0) {
            knn_error_set(&err, KNN_EINVAL, "k must be >= 1, got %lld", (long long)k);
            goto done;
        }
        if (efv && knn_get_bigint(efv, i, &ef) && ef <= 0) {
            knn_error_set(&err, KNN_EINVAL, "ef must be >= 1, got %lld", (long long)ef);
            goto done;
        }
        if (e == NULL || strlen(e->name) != len || memcmp(e->name, nm, len) != 0) {
            if (e) knn_entry_release(e);
            e = knn_registry_get(reg, nm, len, &err);
            if (!e) goto done;
            free(buf);
            buf = malloc(e->dim * sizeof *buf);
            if (!buf) {
                knn_error_set(&err, KNN_ENOMEM, "out of memory");
                goto done;
            }
        }
        const float *q;
        size_t got = 0;
        knn_row_state rs = knn_vreader_get(&vr, i, e->dim, buf, &q, &got);
        if (rs == KNN_ROW_DIM_MISMATCH) {
            knn_error_set(&err, KNN_EDATA, "dimension mismatch: the query has %zu elements, index '%s' has dimension %zu",
                          got, e->name, e->dim);
            goto done;
        }
        if (rs != KNN_ROW_OK) {
            knn_error_set(&err, KNN_EDATA, "the query contains a NULL element");
            goto done;
        }
        int windowed = 0;
        double lo = -INFINITY, hi = INFINITY;
        if (lov) {
            windowed = 1;
            if (!knn_get_double(lov, i, &lo)) lo = -INFINITY;
            if (!knn_get_double(hiv, i, &hi)) hi = INFINITY;
        }
        if (e->kind != KNN_KIND_GRAPH) {
            out[i] = 1.0; /* a flat index is exact */
            continue;
        }
        double r;
        if (knn_an_graph_recall_e(e->graph, q, 1, (size_t)k, (size_t)ef, windowed, lo, hi, 1, &r, &err) != KNN_OK) {
            goto done;
        }
        out[i] = r;
        if (isnan(r)) knn_set_null(output, i);
    }
done:
    if (e) knn_entry_release(e);
    free(buf);
    if (err.status != KNN_OK) knn_fail_scalar(info, "knn_recall", &err);
}

static const knn_scalar_def recall_scalar[] = {
    {.name = "knn_recall", .run = sql_knn_recall, .params = {DUCKDB_TYPE_VARCHAR, DUCKDB_TYPE_ANY, DUCKDB_TYPE_BIGINT,
                                                             DUCKDB_TYPE_BIGINT, DUCKDB_TYPE_DOUBLE, DUCKDB_TYPE_DOUBLE},
     .arities = {3, 4, 6}, .n_arities = 3, .result = DUCKDB_TYPE_DOUBLE, .is_volatile = true, .special_nulls = true},
};

/* ---- knn_index_recall --------------------------------------------------------------------------- */

typedef struct self_bind {
    knn_index_ref ref;
    size_t k, queries, ef;
} self_bind;

typedef struct self_state {
    int started;
} self_state;

/* A positive named integer, or def when absent; false with an error when given and not >= 1. */
static bool named_positive(duckdb_bind_info info, const char *name, size_t def, size_t max, size_t *out,
                           knn_error *err) {
    int64_t v;
    int got = knn_bind_named_int(info, name, &v);
    if (got < 0 || (got == 1 && (v < 1 || (uint64_t)v > max))) {
        knn_error_set(err, KNN_EINVAL, "knn_index_recall: %s must be an integer from 1 to %zu", name, max);
        return false;
    }
    *out = got == 1 ? (size_t)v : def;
    return true;
}

static void self_bind_fn(duckdb_bind_info info) {
    knn_error err;
    knn_error_clear(&err);
    self_bind *b = knn_bind_index_name(info, sizeof *b, "knn_index_recall", &err);
    if (b == NULL) return knn_fail_bind(info, NULL, &err);
    if (!named_positive(info, "k", 10, 10000, &b->k, &err) ||
        !named_positive(info, "sample", 100, 1000000, &b->queries, &err) ||
        !named_positive(info, "ef", 0, 1 << 20, &b->ef, &err)) {
        free(b);
        return knn_fail_bind(info, NULL, &err);
    }
    static const struct { const char *name; duckdb_type type; } cols[] = {
        {"name", DUCKDB_TYPE_VARCHAR}, {"recall", DUCKDB_TYPE_DOUBLE},  {"k", DUCKDB_TYPE_INTEGER},
        {"ef", DUCKDB_TYPE_INTEGER},   {"queries", DUCKDB_TYPE_INTEGER}, {"rows", DUCKDB_TYPE_BIGINT},
    };
    for (size_t i = 0; i < sizeof cols / sizeof cols[0]; i++) knn_bind_column(info, cols[i].name, cols[i].type);
    duckdb_bind_set_bind_data(info, b, free);
}

static void self_run(duckdb_function_info info, duckdb_data_chunk out) {
    self_bind *b = duckdb_function_get_bind_data(info);
    knn_error err;
    knn_error_clear(&err);
    knn_entry *e = NULL;
    if (!knn_table_first(info, &e, &err)) {
        duckdb_data_chunk_set_size(out, 0);
        return;
    }
    if (e == NULL) return knn_fail_run(info, "knn_index_recall", &err);
    double recall = 1.0; /* a flat index is exact */
    size_t used = 0, ef = 0, rows = knn_entry_count(e);
    if (e->kind == KNN_KIND_GRAPH) {
        ef = b->ef ? b->ef : knn_graph_get_params(e->graph).ef;
        if (ef < b->k) ef = b->k; /* the search widens ef to k */
        if (knn_an_graph_self_recall(e->graph, b->k, b->queries, ef, &recall, &used, &err) != KNN_OK) {
            knn_entry_release(e);
            return knn_fail_run(info, "knn_index_recall", &err);
        }
    } else {
        used = rows < b->queries ? rows : b->queries;
        if (used == 0) recall = NAN;
    }
    atomic_store(&e->recall, recall);
    atomic_store(&e->recall_k, b->k);
    atomic_store(&e->recall_ef, ef);
    atomic_store(&e->recall_rows, rows);
    duckdb_vector v[6];
    for (int c = 0; c < 6; c++) v[c] = duckdb_data_chunk_get_vector(out, c);
    duckdb_vector_assign_string_element(v[0], 0, e->name);
    if (isnan(recall)) {
        knn_set_null(v[1], 0);
    } else {
        ((double *)duckdb_vector_get_data(v[1]))[0] = recall;
    }
    ((int32_t *)duckdb_vector_get_data(v[2]))[0] = (int32_t)b->k;
    if (e->kind == KNN_KIND_GRAPH) {
        ((int32_t *)duckdb_vector_get_data(v[3]))[0] = (int32_t)ef;
    } else {
        knn_set_null(v[3], 0);
    }
    ((int32_t *)duckdb_vector_get_data(v[4]))[0] = (int32_t)used;
    ((int64_t *)duckdb_vector_get_data(v[5]))[0] = (int64_t)rows;
    knn_entry_release(e);
    duckdb_data_chunk_set_size(out, 1);
}

/* ---- knn_index_tune (aggregate over held-out queries) ------------------------------------------ */

typedef struct tune_acc {
    char name[KNN_NAME_MAX + 1];
    size_t dim, k, max_ef;
    double target;
    float *Q; /* n x dim held-out queries */
    size_t n, cap;
} tune_acc;

static void tune_acc_free(void *p) {
    tune_acc *a = p;
    free(a->Q);
    free(a);
}

/* The group's accumulator for this row's (name, target, k, max_ef), which must not change within a call. */
static tune_acc *tune_acc_for(const knn_agg_ctx *cx, knn_agg_state *st, const char *name, size_t len, double target,
                              int64_t k, int64_t max_ef, knn_error *err) {
    tune_acc *a = st->acc;
    if (a) {
        if (strlen(a->name) != len || memcmp(a->name, name, len) != 0 || a->target != target ||
            a->k != (size_t)k || a->max_ef != (size_t)max_ef) {
            knn_error_set(err, KNN_EINVAL, "every row of one call must give the same index, target_recall, k and "
                          "max_ef");
            return NULL;
        }
        return a;
    }
    if (!(target > 0 && target <= 1)) {
        knn_error_set(err, KNN_EINVAL, "target_recall must be in (0, 1], e.g. 0.95; got %g", target);
        return NULL;
    }
    if (k < 1 || k > 10000 || max_ef < 1 || max_ef > (1 << 20)) {
        knn_error_set(err, KNN_EINVAL, "k must be 1 to 10000 and max_ef 1 to 1048576 (got %lld and %lld)",
                      (long long)k, (long long)max_ef);
        return NULL;
    }
    knn_entry *e = knn_registry_get(cx->reg, name, len, err);
    if (e == NULL) return NULL;
    size_t dim = e->dim;
    int graph = e->kind == KNN_KIND_GRAPH;
    knn_entry_release(e);
    if (!graph) {
        knn_error_set(err, KNN_EINVAL, "index '%.*s' is flat: it is exact, there is nothing to tune", (int)len, name);
        return NULL;
    }
    a = calloc(1, sizeof *a);
    if (a == NULL) {
        knn_error_set(err, KNN_ENOMEM, "out of memory");
        return NULL;
    }
    memcpy(a->name, name, len);
    a->dim = dim;
    a->k = (size_t)k;
    a->max_ef = (size_t)max_ef;
    a->target = target;
    st->acc = a;
    return a;
}

static knn_status tune_add(tune_acc *a, const float *q, knn_error *err) {
    if (knn_grow((void **)&a->Q, &a->cap, (a->n + 1) * a->dim, sizeof *a->Q, "held-out queries", err) != KNN_OK) {
        return err->status;
    }
    memcpy(a->Q + a->n * a->dim, q, a->dim * sizeof *q);
    a->n++;
    return KNN_OK;
}

static knn_status tune_update(const knn_agg_ctx *cx, duckdb_data_chunk input, duckdb_aggregate_state *states,
                              knn_error *err) {
    idx_t n = duckdb_data_chunk_get_size(input), ncols = duckdb_data_chunk_get_column_count(input);
    duckdb_vector names = duckdb_data_chunk_get_vector(input, 0);
    duckdb_vector targets = duckdb_data_chunk_get_vector(input, 2);
    knn_vreader vr;
    if (knn_vreader_init(&vr, duckdb_data_chunk_get_vector(input, 1), "knn_index_tune", "query", err) != KNN_OK) {
        return err->status;
    }
    float *buf = NULL;
    size_t buf_dim = 0;
    knn_status s = KNN_OK;
    for (idx_t i = 0; i < n && s == KNN_OK; i++) {
        const char *name;
        size_t len;
        double target;
        int64_t k = 10, max_ef = 4096;
        if (!knn_get_varchar(names, i, &name, &len) || !knn_get_double(targets, i, &target)) {
            s = knn_error_set(err, KNN_EINVAL, "index name and target_recall must not be NULL");
            break;
        }
        if (ncols > 3) (void)knn_get_bigint(duckdb_data_chunk_get_vector(input, 3), i, &k);
        if (ncols > 4) (void)knn_get_bigint(duckdb_data_chunk_get_vector(input, 4), i, &max_ef);
        tune_acc *a = tune_acc_for(cx, knn_agg_at(states, i), name, len, target, k, max_ef, err);
        if (a == NULL) {
            s = err->status;
            break;
        }
        if (buf_dim != a->dim) {
            free(buf);
            buf = malloc(a->dim * sizeof *buf);
            buf_dim = a->dim;
            if (buf == NULL) {
                s = knn_error_set(err, KNN_ENOMEM, "out of memory");
                break;
            }
        }
        const float *q;
        size_t got = 0;
        knn_row_state rs = knn_vreader_get(&vr, i, a->dim, buf, &q, &got);
        if (rs == KNN_ROW_NULL) continue; /* a NULL query is skipped, as NULL rows are everywhere */
        if (rs == KNN_ROW_DIM_MISMATCH) {
            s = knn_error_set(err, KNN_EDATA, "dimension mismatch: a query has %zu elements, index '%s' has dimension "
                              "%zu", got, a->name, a->dim);
        } else if (rs != KNN_ROW_OK) {
            s = knn_error_set(err, KNN_EDATA, "a query contains a NULL element");
        } else {
            s = tune_add(a, q, err);
        }
    }
    free(buf);
    return s;
}

static knn_status tune_merge(const knn_agg_ctx *cx, knn_agg_state *source, knn_agg_state *target, knn_error *err) {
    tune_acc *src = source->acc;
    tune_acc *dst = tune_acc_for(cx, target, src->name, strlen(src->name), src->target, (int64_t)src->k,
                                 (int64_t)src->max_ef, err);
    for (size_t i = 0; dst && i < src->n && err->status == KNN_OK; i++) tune_add(dst, src->Q + i * src->dim, err);
    return err->status;
}

static knn_status tune_finalize(const knn_agg_ctx *cx, knn_agg_state *st, duckdb_vector result, idx_t row,
                                knn_error *err) {
    tune_acc *a = st->acc;
    size_t ef = 0, used = 0;
    double recall = NAN;
    knn_entry *e = a && a->n ? knn_registry_get(cx->reg, a->name, strlen(a->name), err) : NULL;
    if (e == NULL) { /* no query row (NULL), or the index is gone (the error) */
        if (a == NULL || a->n == 0) knn_result_null(result, row);
        return err->status;
    }
    knn_status s = knn_an_graph_tune_ef(e->graph, a->k, a->Q, a->n, a->target, a->max_ef, &ef, &recall, &used, err);
    if (s == KNN_OK && used > 0) {
        knn_graph_set_default_ef(e->graph, ef);
        atomic_store(&e->recall, recall);
        atomic_store(&e->recall_k, a->k);
        atomic_store(&e->recall_ef, ef);
        atomic_store(&e->recall_rows, knn_entry_count(e));
        ((int64_t *)duckdb_vector_get_data(result))[row] = (int64_t)ef;
    } else if (s == KNN_OK) {
        knn_result_null(result, row); /* the index is empty: nothing to tune */
    }
    knn_entry_release(e);
    return s;
}

static const knn_agg_def tune_agg[] = {
    {.name = "knn_index_tune", .params = {DUCKDB_TYPE_VARCHAR, DUCKDB_TYPE_ANY, DUCKDB_TYPE_DOUBLE, DUCKDB_TYPE_BIGINT,
                                          DUCKDB_TYPE_BIGINT},
     .min_params = 3, .n_params = 5, .result = DUCKDB_TYPE_BIGINT, .free_acc = tune_acc_free, .update = tune_update,
     .merge = tune_merge, .finalize = tune_finalize},
};

static const knn_table_def self_table[] = {
    {.name = "knn_index_recall", .bind = self_bind_fn, .run = self_run, .positional = {DUCKDB_TYPE_VARCHAR},
     .n_positional = 1, .named = {"k", "sample", "ef"},
     .named_types = {DUCKDB_TYPE_BIGINT, DUCKDB_TYPE_BIGINT, DUCKDB_TYPE_BIGINT},
     .state_size = sizeof(self_state)},
};

bool knn_register_recall(duckdb_connection con, knn_registry *reg, knn_error *err) {
    return knn_register_scalars(con, reg, recall_scalar, 1, err) && knn_register_tables(con, reg, self_table, 1, err) &&
           knn_register_aggregates(con, reg, tune_agg, 1, err);
}
