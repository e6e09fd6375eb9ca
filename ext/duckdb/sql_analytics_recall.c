/* knn_recall(name, query, k [, ef [, lo, hi]]) -> DOUBLE: recall@k of the named graph index for one
 * query against an exact scan of the same index's live rows (optionally inside the label window
 * [lo, hi], in the label's unit), the recall audit of ext/core/knn_analytics_recall.c as a scalar, so
 * it runs over any query relation: SELECT avg(knn_recall('docs', emb, 10, 64)) FROM sample_queries.
 * A flat index is exact: its recall is 1. NULL name, query or k gives NULL.
 *
 * knn_index_recall(name, k := 10, queries := 100, ef := 0) -> one row (name, recall, k, ef, queries, rows):
 * the index measures itself (ext/core/analytics/recall.c's self-check: stored rows spread evenly as
 * queries, at its default ef unless ef := says otherwise) and keeps the figure, which knn_indexes()
 * then shows beside the row count it was measured at. */
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
        !named_positive(info, "queries", 100, 1000000, &b->queries, &err) ||
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
        if (knn_an_graph_self_recall(e->graph, b->k, b->queries, ef, 0, &recall, &used, &err) != KNN_OK) {
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

static const knn_table_def self_table[] = {
    {.name = "knn_index_recall", .bind = self_bind_fn, .run = self_run, .positional = {DUCKDB_TYPE_VARCHAR},
     .n_positional = 1, .named = {"k", "queries", "ef"},
     .named_types = {DUCKDB_TYPE_BIGINT, DUCKDB_TYPE_BIGINT, DUCKDB_TYPE_BIGINT}, .state_size = sizeof(self_state)},
};

bool knn_register_recall(duckdb_connection con, knn_registry *reg, knn_error *err) {
    return knn_register_scalars(con, reg, recall_scalar, 1, err) && knn_register_tables(con, reg, self_table, 1, err);
}
