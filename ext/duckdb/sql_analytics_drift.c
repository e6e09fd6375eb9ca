/* Estimators of a set's shape and of drift between sets: knn_lid, knn_lid_estimate, knn_divergence,
 * knn_precision_recall, knn_iid_test, knn_iid_scores. Each finaliser turns one group's sorted rows into
 * core calls (ext/core/analytics); the kit entries at the end give signatures and result types. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "analytics/knn_analytics.h"
#include "knn_glue.h"
#include "knn_kit.h"
#include "index/knn_registry.h"
#include "sql_analytics.h"
#include "sql_register.h"

DUCKDB_EXTENSION_EXTERN

/* ---- knn_lid / knn_lid_estimate --------------------------------------------------------------------------- */

static knn_status lid_common(const an_rows *rows, int64_t **ids, double **lid, double **rk, double *table,
                             size_t *n, knn_error *err) {
    char msg[AN_MSG];
    float *X = NULL, *dist = NULL;
    int64_t *nbr = NULL;
    size_t k = (size_t)rows->acc->k;
    knn_status s;
    *lid = *rk = NULL;
    if ((s = an_gather(rows, NULL, &X, ids, NULL, n, err))) return s;
    if (k < 2) {
        s = knn_error_set(err, KNN_EINVAL, "k must be >= 2 (the estimate uses ratios of neighbour distances), got %zu", k);
        goto done;
    }
    if ((s = an_self_knn(rows, X, *n, k, "rows", &nbr, &dist, err))) goto done;
    *lid = malloc(*n * sizeof **lid);
    *rk = malloc(*n * sizeof **rk);
    if (!*lid || !*rk) {
        s = knn_error_set(err, KNN_ENOMEM, "out of memory");
        goto done;
    }
    s = an_core(knn_an_lid(dist, *n, k, k, rows->opts.metric, *lid, *rk, table, msg, AN_MSG), msg, err);
done:
    free(X);
    free(dist);
    free(nbr);
    return s;
}

static knn_status lid_fin(const an_rows *rows, duckdb_vector result, idx_t out_row, knn_error *err) {
    int64_t *ids = NULL;
    double *lid = NULL, *rk = NULL, table;
    size_t n = 0;
    knn_status s = lid_common(rows, &ids, &lid, &rk, &table, &n, err);
    idx_t base;
    if (s == KNN_OK && (s = knn_list_begin(result, out_row, n, &base, err)) == KNN_OK) {
        int64_t *f_id = knn_field(result, 0, true);
        double *f_l = knn_field(result, 1, true), *f_r = knn_field(result, 2, true);
        duckdb_vector lv = knn_field_vec(result, 1, true);
        for (size_t i = 0; i < n; i++) {
            f_id[base + i] = ids[i];
            f_l[base + i] = lid[i];
            if (isnan(lid[i])) knn_set_null(lv, base + i);
            f_r[base + i] = rk[i];
        }
    }
    free(ids);
    free(lid);
    free(rk);
    return s;
}

static knn_status lid_estimate_fin(const an_rows *rows, duckdb_vector result, idx_t out_row, knn_error *err) {
    int64_t *ids = NULL;
    double *lid = NULL, *rk = NULL, table = NAN;
    size_t n = 0;
    knn_status s = lid_common(rows, &ids, &lid, &rk, &table, &n, err);
    if (s == KNN_OK) {
        ((double *)duckdb_vector_get_data(result))[out_row] = table;
        if (isnan(table)) knn_set_null(result, out_row);
    }
    free(ids);
    free(lid);
    free(rk);
    return s;
}

/* ---- two-set estimators ------------------------------------------------------------------------------------ */

static knn_status divergence_fin(const an_rows *rows, duckdb_vector result, idx_t out_row, knn_error *err) {
    char msg[AN_MSG];
    float *P = NULL, *Q = NULL;
    size_t n = 0, m = 0;
    double out = NAN;
    knn_status s;
    if ((s = an_gather(rows, an_sel_aux, &P, NULL, NULL, &n, err))) goto done;
    if ((s = an_gather(rows, an_sel_no_aux, &Q, NULL, NULL, &m, err))) goto done;
    s = an_core(knn_an_divergence(P, n, Q, m, rows->acc->dim, (size_t)rows->acc->k, rows->opts.method, rows->opts.alpha,
                               0, &out, msg, AN_MSG), msg, err);
    if (s == KNN_OK) ((double *)duckdb_vector_get_data(result))[out_row] = out;
done:
    free(P);
    free(Q);
    return s;
}

static knn_status genpr_fin(const an_rows *rows, duckdb_vector result, idx_t out_row, knn_error *err) {
    char msg[AN_MSG];
    float *R = NULL, *F = NULL;
    size_t n = 0, m = 0;
    double out[8];
    knn_status s;
    if ((s = an_gather(rows, an_sel_no_aux, &R, NULL, NULL, &n, err))) goto done;
    if ((s = an_gather(rows, an_sel_aux, &F, NULL, NULL, &m, err))) goto done;
    s = an_core(knn_an_precision_recall(R, n, F, m, rows->acc->dim, rows->opts.metric, (size_t)rows->acc->k, 0, out,
                                     msg, AN_MSG), msg, err);
    if (s == KNN_OK) {
        for (idx_t f = 0; f < 8; f++) ((double *)knn_field(result, f, false))[out_row] = out[f];
    }
done:
    free(R);
    free(F);
    return s;
}

static knn_status iid_fin(const an_rows *rows, duckdb_vector result, idx_t out_row, knn_error *err) {
    char msg[AN_MSG];
    float *X = NULL, *dist = NULL;
    int64_t *nbr = NULL;
    size_t n = 0, k = (size_t)rows->acc->k;
    double stat = NAN, p = NAN;
    knn_status s;
    /* rows arrive sorted by (id = 0, order key): the order of the test */
    if ((s = an_gather(rows, NULL, &X, NULL, NULL, &n, err))) goto done;
    if ((s = an_self_knn(rows, X, n, k, "rows", &nbr, &dist, err))) goto done;
    s = an_core(knn_an_iid_test(nbr, n, k, k, (size_t)rows->opts.permutations, rows->opts.seed, &stat, &p, NULL, msg,
                                AN_MSG), msg, err);
    if (s) goto done;
    ((double *)knn_field(result, 0, false))[out_row] = stat;
    ((double *)knn_field(result, 1, false))[out_row] = p;
    ((bool *)knn_field(result, 2, false))[out_row] = p < rows->opts.significance;
done:
    free(X);
    free(dist);
    free(nbr);
    return s;
}

/* Per-row scores of the drift test: mean position gap to the row's neighbours over its IID expectation. */
static knn_status iid_scores_fin(const an_rows *rows, duckdb_vector result, idx_t out_row, knn_error *err) {
    const an_acc *a = rows->acc;
    char msg[AN_MSG];
    float *X = NULL, *dist = NULL;
    int64_t *nbr = NULL;
    size_t *src = NULL, n = 0, k = (size_t)a->k;
    double *scores = NULL, stat, p;
    knn_status s;
    if ((s = an_gather(rows, NULL, &X, NULL, &src, &n, err))) goto done;
    if ((s = an_self_knn(rows, X, n, k, "rows", &nbr, &dist, err))) goto done;
    scores = malloc(n * sizeof *scores);
    if (!scores) {
        s = knn_error_set(err, KNN_ENOMEM, "out of memory");
        goto done;
    }
    s = an_core(knn_an_iid_test(nbr, n, k, k, 1, 0, &stat, &p, scores, msg, AN_MSG), msg, err);
    if (s) goto done;
    idx_t base;
    if ((s = knn_list_begin(result, out_row, n, &base, err))) goto done;
    int64_t *f_pos = knn_field(result, 0, true);
    double *f_s = knn_field(result, 1, true);
    for (size_t i = 0; i < n; i++) {
        f_pos[base + i] = a->ival[src[i]];
        f_s[base + i] = scores[i];
    }
done:
    free(X);
    free(dist);
    free(nbr);
    free(src);
    free(scores);
    return s;
}

/* ---- registration ---------------------------------------------------------------------------------------- */

/* id, vec, aux, k, count columns; aux kind; option keys; finaliser */
static const an_spec lid = {0, 1, -1, 2, -1, AN_AUX_NONE, "metric", lid_fin, 0};
static const an_spec lid_estimate = {-1, 0, -1, 1, -1, AN_AUX_NONE, "metric", lid_estimate_fin, 0};
static const an_spec divergence = {-1, 0, 1, 2, -1, AN_AUX_BOOL, "method,alpha", divergence_fin, 0};
static const an_spec genpr = {-1, 0, 1, 2, -1, AN_AUX_BOOL, "metric", genpr_fin, 0};
static const an_spec iid = {-1, 1, 0, 2, -1, AN_AUX_ORDER, "metric,permutations,seed,significance", iid_fin, 0};
static const an_spec iid_scores = {-1, 1, 0, 2, -1, AN_AUX_ORDER, "metric", iid_scores_fin, 0};

static const knn_fields lid_fields = {3, {"id", "lid", "r_k"}, {DUCKDB_TYPE_BIGINT, DUCKDB_TYPE_DOUBLE, DUCKDB_TYPE_DOUBLE}};
static const knn_fields genpr_fields = {8, {"precision", "recall", "density", "coverage", "p_precision", "p_recall",
                                            "sym_precision", "sym_recall"},
                                        {DUCKDB_TYPE_DOUBLE, DUCKDB_TYPE_DOUBLE, DUCKDB_TYPE_DOUBLE, DUCKDB_TYPE_DOUBLE,
                                         DUCKDB_TYPE_DOUBLE, DUCKDB_TYPE_DOUBLE, DUCKDB_TYPE_DOUBLE, DUCKDB_TYPE_DOUBLE}};
static const knn_fields iid_fields = {3, {"statistic", "p_value", "non_iid"},
                                      {DUCKDB_TYPE_DOUBLE, DUCKDB_TYPE_DOUBLE, DUCKDB_TYPE_BOOLEAN}};
static const knn_fields iid_score_fields = {2, {"pos", "score"}, {DUCKDB_TYPE_BIGINT, DUCKDB_TYPE_DOUBLE}};

/* Three leading arguments (then k and the options): (a, b, k [, options]) */
#define ARGS3(a, b) .params = {a, b, DUCKDB_TYPE_BIGINT, DUCKDB_TYPE_VARCHAR}, .min_params = 3, .n_params = 4, AN_HOOKS
#define LIST_OF_STRUCT .result = KNN_LIST_OF(DUCKDB_TYPE_STRUCT)

static const knn_agg_def drift_defs[] = {
    {.name = "knn_lid", ARGS3(DUCKDB_TYPE_BIGINT, DUCKDB_TYPE_ANY), LIST_OF_STRUCT, .fields = &lid_fields, .data = &lid},
    {.name = "knn_lid_estimate", .params = {DUCKDB_TYPE_ANY, DUCKDB_TYPE_BIGINT, DUCKDB_TYPE_VARCHAR}, .min_params = 2,
     .n_params = 3, AN_HOOKS, .result = DUCKDB_TYPE_DOUBLE, .data = &lid_estimate},
    {.name = "knn_divergence", ARGS3(DUCKDB_TYPE_ANY, DUCKDB_TYPE_BOOLEAN), .result = DUCKDB_TYPE_DOUBLE,
     .data = &divergence},
    {.name = "knn_precision_recall", ARGS3(DUCKDB_TYPE_ANY, DUCKDB_TYPE_BOOLEAN), .result = DUCKDB_TYPE_STRUCT,
     .fields = &genpr_fields, .data = &genpr},
    {.name = "knn_iid_test", ARGS3(DUCKDB_TYPE_BIGINT, DUCKDB_TYPE_ANY), .result = DUCKDB_TYPE_STRUCT,
     .fields = &iid_fields, .data = &iid},
    {.name = "knn_iid_scores", ARGS3(DUCKDB_TYPE_BIGINT, DUCKDB_TYPE_ANY), LIST_OF_STRUCT, .fields = &iid_score_fields,
     .data = &iid_scores},
};

bool knn_register_analytics_drift(duckdb_connection con, knn_registry *reg, knn_error *err) {
    return knn_register_aggregates(con, reg, drift_defs, sizeof drift_defs / sizeof drift_defs[0], err);
}
