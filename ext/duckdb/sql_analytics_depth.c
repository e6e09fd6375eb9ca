/* Statistical depth aggregates: knn_depth (per-row TTE depth, relative to the group or to its reference
 * rows) and knn_depth_test (the rank-sum test between a reference and a candidate set). Each finaliser
 * turns one group's sorted rows into core calls (sample/depth.c, analytics/rank_test.c); the kit entries
 * at the end give signatures and result types; sql/reference/knn_depth.md documents them. Depth-ranked
 * selection is method 'depth' of knn_sample_agg (sql_sample.c). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "analytics/knn_analytics.h"
#include "knn_glue.h"
#include "knn_kit.h"
#include "sample/knn_sample.h"
#include "sql_analytics.h"
#include "sql_register.h"

DUCKDB_EXTENSION_EXTERN

/* The depth metric of the options: cosine unless metric= says chord or l2 (ip has no depth). */
static knn_status depth_metric(const an_opts *o, knn_depth_metric *m, knn_error *err) {
    if (!o->metric_set || (!o->chord && strcmp(o->metric, "cosine") == 0)) *m = KNN_DEPTH_COSINE;
    else if (o->chord) *m = KNN_DEPTH_CHORD;
    else if (strcmp(o->metric, "l2") == 0) *m = KNN_DEPTH_L2;
    else return knn_error_set(err, KNN_EINVAL, "metric must be cosine (default), chord or l2 for depth, got '%s'",
                              o->metric);
    return KNN_OK;
}

/* Every row's depth (rows sorted canonically); is_ref from the side column when the spec has one:
 * sel_ref(row) true marks a reference row. */
static knn_status depths(const an_rows *rows, bool (*sel_ref)(const an_acc *, size_t), float **X, int64_t **ids,
                         uint8_t **is_ref, double **out, size_t *n, knn_error *err) {
    const an_acc *a = rows->acc;
    size_t *src = NULL;
    knn_depth_metric m;
    knn_status s;
    *X = NULL;
    *ids = NULL;
    *is_ref = NULL;
    *out = NULL;
    if ((s = depth_metric(&rows->opts, &m, err))) return s;
    if ((s = an_gather(rows, NULL, X, ids, &src, n, err))) return s;
    *out = malloc((*n ? *n : 1) * sizeof **out);
    if (sel_ref) *is_ref = malloc(*n ? *n : 1);
    if (!*out || (sel_ref && !*is_ref)) {
        s = knn_error_set(err, KNN_ENOMEM, "out of memory");
        goto done;
    }
    for (size_t i = 0; sel_ref && i < *n; i++) (*is_ref)[i] = sel_ref(a, src[i]);
    for (size_t i = 0; m != KNN_DEPTH_L2 && i < *n; i++) { /* name a zero vector by its id, not its position */
        const float *x = *X + i * a->dim;
        size_t j = 0;
        while (j < a->dim && x[j] == 0.0f) j++;
        if (j == a->dim) {
            char who[48];
            if (*ids && a->spec->id_col >= 0) snprintf(who, sizeof who, "the vector of row %lld", (long long)(*ids)[i]);
            else snprintf(who, sizeof who, "a row's vector");
            s = knn_error_set(err, KNN_EDATA, "%s is the zero vector, which has no direction for %s depth; drop it "
                              "or use metric=l2", who, m == KNN_DEPTH_CHORD ? "chord" : "cosine");
            goto done;
        }
    }
    s = knn_depth_compute(*X, *n, a->dim, *is_ref, m, (size_t)rows->opts.sample, rows->opts.seed, 0,
                          knn_kernels_best(), *out, err);
done:
    free(src);
    return s;
}

/* ---- knn_depth ------------------------------------------------------------------------------------ */

static knn_status depth_fin(const an_rows *rows, duckdb_vector result, idx_t out_row, knn_error *err) {
    float *X = NULL;
    int64_t *ids = NULL;
    uint8_t *is_ref = NULL;
    double *dep = NULL;
    size_t n = 0;
    bool two = rows->acc->spec->aux == AN_AUX_BOOL;
    knn_status s = depths(rows, two ? an_sel_aux : NULL, &X, &ids, &is_ref, &dep, &n, err);
    idx_t base;
    if (s == KNN_OK && (s = knn_list_begin(result, out_row, n, &base, err)) == KNN_OK) {
        int64_t *f_id = knn_field(result, 0, true);
        double *f_d = knn_field(result, 1, true);
        for (size_t i = 0; i < n; i++) {
            f_id[base + i] = ids[i];
            f_d[base + i] = dep[i];
        }
    }
    free(X);
    free(ids);
    free(is_ref);
    free(dep);
    return s;
}

/* ---- knn_depth_test ------------------------------------------------------------------------------- */

static knn_status depth_test_fin(const an_rows *rows, duckdb_vector result, idx_t out_row, knn_error *err) {
    float *X = NULL;
    int64_t *ids = NULL;
    uint8_t *is_ref = NULL;
    double *dep = NULL, *x = NULL, *y = NULL, out[4];
    size_t n = 0, nx = 0, ny = 0;
    /* the side column marks candidate rows (G); the others are the reference (F) */
    knn_status s = depths(rows, an_sel_no_aux, &X, &ids, &is_ref, &dep, &n, err);
    if (s) goto done;
    x = malloc((n ? n : 1) * sizeof *x);
    y = malloc((n ? n : 1) * sizeof *y);
    if (!x || !y) {
        s = knn_error_set(err, KNN_ENOMEM, "out of memory");
        goto done;
    }
    for (size_t i = 0; i < n; i++) {
        if (is_ref[i]) x[nx++] = dep[i];
        else y[ny++] = dep[i];
    }
    if (ny == 0) {
        s = knn_error_set(err, KNN_EINVAL, "no candidate rows: the test compares the rows whose flag is true with the "
                          "reference rows (flag false); got %zu reference rows and none flagged true", nx);
        goto done;
    }
    if ((s = knn_an_rank_sum(x, nx, y, ny, rows->opts.alternative, out, err))) goto done;
    ((double *)knn_field(result, 0, false))[out_row] = out[0];
    ((double *)knn_field(result, 1, false))[out_row] = out[1];
    ((double *)knn_field(result, 2, false))[out_row] = out[2];
    ((double *)knn_field(result, 3, false))[out_row] = out[3];
    ((int64_t *)knn_field(result, 4, false))[out_row] = (int64_t)nx;
    ((int64_t *)knn_field(result, 5, false))[out_row] = (int64_t)ny;
done:
    free(X);
    free(ids);
    free(is_ref);
    free(dep);
    free(x);
    free(y);
    return s;
}

/* ---- registration ---------------------------------------------------------------------------------------- */

/* id, vec, aux, k, count columns; aux kind; option keys; finaliser; flags */
static const an_spec depth_self = {0, 1, -1, -1, -1, AN_AUX_NONE, "metric,sample,seed", depth_fin, AN_CHORD};
static const an_spec depth_ref = {0, 1, 2, -1, -1, AN_AUX_BOOL, "metric,sample,seed", depth_fin, AN_CHORD};
static const an_spec depth_test = {-1, 0, 1, -1, -1, AN_AUX_BOOL, "metric,sample,seed,alternative", depth_test_fin,
                                   AN_CHORD};

static const knn_fields depth_fields = {2, {"id", "depth"}, {DUCKDB_TYPE_BIGINT, DUCKDB_TYPE_DOUBLE}};
static const knn_fields test_fields = {6, {"q", "w", "p_value", "u", "n_ref", "n_cand"},
                                       {DUCKDB_TYPE_DOUBLE, DUCKDB_TYPE_DOUBLE, DUCKDB_TYPE_DOUBLE, DUCKDB_TYPE_DOUBLE,
                                        DUCKDB_TYPE_BIGINT, DUCKDB_TYPE_BIGINT}};

static const knn_agg_def depth_defs[] = {
    {.name = "knn_depth", .params = {DUCKDB_TYPE_BIGINT, DUCKDB_TYPE_ANY, DUCKDB_TYPE_VARCHAR}, .min_params = 2,
     .n_params = 3, .result = KNN_LIST_OF(DUCKDB_TYPE_STRUCT), .fields = &depth_fields, AN_HOOKS, .data = &depth_self},
    {.name = "knn_depth", .params = {DUCKDB_TYPE_BIGINT, DUCKDB_TYPE_ANY, DUCKDB_TYPE_BOOLEAN, DUCKDB_TYPE_VARCHAR},
     .min_params = 3, .n_params = 4, .result = KNN_LIST_OF(DUCKDB_TYPE_STRUCT), .fields = &depth_fields, AN_HOOKS,
     .data = &depth_ref},
    {.name = "knn_depth_test", .params = {DUCKDB_TYPE_ANY, DUCKDB_TYPE_BOOLEAN, DUCKDB_TYPE_VARCHAR}, .min_params = 2,
     .n_params = 3, .result = DUCKDB_TYPE_STRUCT, .fields = &test_fields, AN_HOOKS, .data = &depth_test},
};

bool knn_register_analytics_depth(duckdb_connection con, knn_registry *reg, knn_error *err) {
    return knn_register_aggregates(con, reg, depth_defs, sizeof depth_defs / sizeof depth_defs[0], err);
}
