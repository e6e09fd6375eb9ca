/* knn_recall(name, query, k [, ef [, lo, hi]]) -> DOUBLE: recall@k of the named graph index for one
 * query against an exact scan of the same index's live rows (optionally inside the label window
 * [lo, hi], in the label's unit), the recall audit of ext/core/knn_analytics_recall.c as a scalar, so
 * it runs over any query relation: SELECT avg(knn_recall('docs', emb, 10, 64)) FROM sample_queries.
 * A flat index is exact: its recall is 1. NULL name, query or k gives NULL. */
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

bool knn_register_recall(duckdb_connection con, knn_registry *reg, knn_error *err) {
    return knn_register_scalars(con, reg, recall_scalar, 1, err);
}
