/* Aggregates that produce rows: knn_smote (synthetic minority rows), knn_importance_sample and
 * knn_density_sample (weighted picks). Each finaliser turns one group's sorted rows into core calls
 * (ext/core/analytics); the kit entries at the end give signatures and result types. */
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

/* ---- knn_smote ---------------------------------------------------------------------------------------- */

static knn_status smote_fin(const an_rows *rows, duckdb_vector result, idx_t out_row, knn_error *err) {
    const an_acc *a = rows->acc;
    const an_opts *o = &rows->opts;
    char msg[AN_MSG];
    float *X = NULL, *dist = NULL, *out = NULL;
    int64_t *ids = NULL, *nbr = NULL, *par = NULL, *nb = NULL;
    double *gap = NULL;
    size_t n = 0, k = (size_t)a->k, m = (size_t)a->count_param, d = a->dim;
    knn_status s;
    if ((s = an_gather(rows, NULL, &X, &ids, NULL, &n, err))) goto done;
    if ((s = an_self_knn(rows, X, n, k, "minority rows", &nbr, &dist, err))) goto done;
    out = malloc((m ? m : 1) * d * sizeof *out);
    par = malloc((m ? m : 1) * sizeof *par);
    nb = malloc((m ? m : 1) * sizeof *nb);
    gap = malloc((m ? m : 1) * sizeof *gap);
    if (!out || !par || !nb || !gap) {
        s = knn_error_set(err, KNN_ENOMEM, "out of memory for %zu synthetic rows", m);
        goto done;
    }
    if (m) {
        s = an_core(knn_an_smote(X, n, d, nbr, k, k, m, o->seed, out, par, nb, gap, msg, AN_MSG), msg, err);
        if (s) goto done;
    }
    idx_t base;
    if ((s = knn_list_begin(result, out_row, m, &base, err))) goto done;
    int64_t *f_p = knn_field(result, 0, true), *f_n = knn_field(result, 1, true);
    double *f_g = knn_field(result, 2, true);
    float *vd = knn_list_rows(knn_field_vec(result, 3, true), base, m, d, sizeof *vd, "synthetic vectors", err);
    if (vd == NULL) {
        s = err->status;
        goto done;
    }
    if (m) memcpy(vd, out, m * d * sizeof *vd);
    for (size_t r = 0; r < m; r++) {
        f_p[base + r] = ids[par[r]];
        f_n[base + r] = ids[nb[r]];
        f_g[base + r] = gap[r];
    }
done:
    free(X); free(dist); free(out); free(ids); free(nbr); free(par); free(nb); free(gap);
    return s;
}

/* ---- sampling ------------------------------------------------------------------------------------------------ */

/* Draws n_pick of the n rows by their log weights (Gumbel top-k) and writes every row as
 * (id, log_weight, pick), pick NULL for rows not drawn. */
static knn_status pick_and_write(const an_rows *rows, duckdb_vector result, idx_t out_row, const int64_t *ids,
                                 const double *logw, size_t n, knn_error *err) {
    char msg[AN_MSG];
    int64_t *rank = malloc((n ? n : 1) * sizeof *rank);
    if (!rank) return knn_error_set(err, KNN_ENOMEM, "out of memory");
    idx_t base;
    knn_status s = an_core(knn_an_gumbel_topk(logw, n, (size_t)rows->acc->count_param, rows->opts.seed, rank, msg,
                                              AN_MSG), msg, err);
    if (s == KNN_OK) s = knn_list_begin(result, out_row, n, &base, err);
    if (s == KNN_OK) {
        int64_t *f_id = knn_field(result, 0, true), *f_pick = knn_field(result, 2, true);
        double *f_w = knn_field(result, 1, true);
        duckdb_vector pv = knn_field_vec(result, 2, true);
        for (size_t i = 0; i < n; i++) {
            f_id[base + i] = ids[i];
            f_w[base + i] = logw[i];
            f_pick[base + i] = rank[i] + 1;
            if (rank[i] < 0) knn_set_null(pv, base + i);
        }
    }
    free(rank);
    return s;
}

static knn_status importance_fin(const an_rows *rows, duckdb_vector result, idx_t out_row, knn_error *err) {
    const an_acc *a = rows->acc;
    char msg[AN_MSG];
    float *R = NULL, *T = NULL, *Z = NULL, *dist = NULL;
    int64_t *rid = NULL, *nbr = NULL;
    double *logw = NULL;
    size_t nr = 0, nt = 0, k = (size_t)a->k, d = a->dim;
    knn_status s;
    if ((s = an_gather(rows, an_sel_no_aux, &R, &rid, NULL, &nr, err))) goto done;
    if ((s = an_gather(rows, an_sel_aux, &T, NULL, NULL, &nt, err))) goto done;
    if (nr == 0 || nt == 0) {
        s = knn_error_set(err, KNN_EINVAL, "both sets need rows: got %zu raw rows (is_target false) and %zu target rows "
                          "(is_target true)", nr, nt);
        goto done;
    }
    if (k >= nr + nt) {
        s = knn_error_set(err, KNN_EINVAL, "k = %zu needs more than k rows in the two sets together; lower k", k);
        goto done;
    }
    if ((size_t)a->count_param > nr) {
        s = knn_error_set(err, KNN_EINVAL, "n = %lld is larger than the %zu raw rows; lower n", (long long)a->count_param,
                          nr);
        goto done;
    }
    Z = malloc((nr + nt) * d * sizeof *Z);
    logw = malloc(nr * sizeof *logw);
    if (!Z || !logw) {
        s = knn_error_set(err, KNN_ENOMEM, "out of memory");
        goto done;
    }
    memcpy(Z, R, nr * d * sizeof *Z);
    memcpy(Z + nr * d, T, nt * d * sizeof *Z);
    if ((s = an_self_knn(rows, Z, nr + nt, k, "rows", &nbr, &dist, err))) goto done;
    s = an_core(knn_an_importance(nbr, nr, k, k, nt, logw, msg, AN_MSG), msg, err);
    if (s == KNN_OK) s = pick_and_write(rows, result, out_row, rid, logw, nr, err);
done:
    free(R); free(T); free(Z); free(dist); free(rid); free(nbr); free(logw);
    return s;
}

static knn_status density_fin(const an_rows *rows, duckdb_vector result, idx_t out_row, knn_error *err) {
    const an_acc *a = rows->acc;
    char msg[AN_MSG];
    float *X = NULL, *dist = NULL;
    int64_t *ids = NULL, *nbr = NULL;
    double *logw = NULL;
    size_t n = 0, k = (size_t)a->k;
    knn_status s;
    if ((s = an_gather(rows, NULL, &X, &ids, NULL, &n, err))) goto done;
    if ((s = an_self_knn(rows, X, n, k, "rows", &nbr, &dist, err))) goto done;
    if ((size_t)a->count_param > n) {
        s = knn_error_set(err, KNN_EINVAL, "n = %lld is larger than the %zu rows; lower n", (long long)a->count_param, n);
        goto done;
    }
    logw = malloc(n * sizeof *logw);
    if (!logw) {
        s = knn_error_set(err, KNN_ENOMEM, "out of memory");
        goto done;
    }
    s = an_core(knn_an_density_logw(dist, n, k, k, rows->opts.metric, rows->opts.alpha, logw, msg, AN_MSG), msg, err);
    if (s == KNN_OK) s = pick_and_write(rows, result, out_row, ids, logw, n, err);
done:
    free(X); free(dist); free(ids); free(nbr); free(logw);
    return s;
}

/* ---- registration ---------------------------------------------------------------------------------------- */

/* id, vec, aux, k, count columns; aux kind; option keys; finaliser */
static const an_spec smote = {0, 1, -1, 3, 2, AN_AUX_NONE, "metric,seed", smote_fin, 0};
static const an_spec importance = {0, 1, 2, 4, 3, AN_AUX_BOOL, "metric,seed", importance_fin, 0};
static const an_spec density = {0, 1, -1, 3, 2, AN_AUX_NONE, "metric,alpha,seed", density_fin, 0};

static const knn_fields smote_fields = {4, {"parent_id", "neighbor_id", "gap", "vec"},
                                        {DUCKDB_TYPE_BIGINT, DUCKDB_TYPE_BIGINT, DUCKDB_TYPE_DOUBLE,
                                         KNN_LIST_OF(DUCKDB_TYPE_FLOAT)}};
static const knn_fields pick_fields = {3, {"id", "log_weight", "pick"},
                                       {DUCKDB_TYPE_BIGINT, DUCKDB_TYPE_DOUBLE, DUCKDB_TYPE_BIGINT}};

/* (id, vec, n, k [, options]) */
#define ID_VEC_N_K .params = {DUCKDB_TYPE_BIGINT, DUCKDB_TYPE_ANY, DUCKDB_TYPE_BIGINT, DUCKDB_TYPE_BIGINT, \
                              DUCKDB_TYPE_VARCHAR}, .min_params = 4, .n_params = 5
#define LIST_OF_STRUCT .result = KNN_LIST_OF(DUCKDB_TYPE_STRUCT), AN_HOOKS

static const knn_agg_def sampling_defs[] = {
    {.name = "knn_smote", ID_VEC_N_K, LIST_OF_STRUCT, .fields = &smote_fields, .data = &smote},
    {.name = "knn_importance_sample", .params = {DUCKDB_TYPE_BIGINT, DUCKDB_TYPE_ANY, DUCKDB_TYPE_BOOLEAN,
                                                 DUCKDB_TYPE_BIGINT, DUCKDB_TYPE_BIGINT, DUCKDB_TYPE_VARCHAR},
     .min_params = 5, .n_params = 6, LIST_OF_STRUCT, .fields = &pick_fields, .data = &importance},
    {.name = "knn_density_sample", ID_VEC_N_K, LIST_OF_STRUCT, .fields = &pick_fields, .data = &density},
};

bool knn_register_analytics_sampling(duckdb_connection con, knn_registry *reg, knn_error *err) {
    return knn_register_aggregates(con, reg, sampling_defs, sizeof sampling_defs / sizeof sampling_defs[0], err);
}
