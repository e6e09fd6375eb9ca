/* kNN estimators: knn_entropy (Kozachenko-Leonenko entropy and the MEE diversity score), knn_kde (kernel
 * density, exact or kNN-truncated), knn_prototype (nearest class mean) and knn_interpolate (inverse-
 * distance-weighted kNN values). Each finaliser turns one group's sorted rows into core calls
 * (ext/core/analytics); the kit entries at the end give signatures and result types;
 * sql/reference/knn_estimators.md documents them. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "analytics/knn_analytics.h"
#include "knn_glue.h"
#include "knn_kit.h"
#include "sql_analytics.h"
#include "sql_register.h"

DUCKDB_EXTENSION_EXTERN

static int cmp_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* ---- knn_entropy ---------------------------------------------------------------------------------- */

static knn_status entropy_fin(const an_rows *rows, duckdb_vector result, idx_t out_row, knn_error *err) {
    float *X = NULL;
    size_t n = 0;
    double out[2];
    knn_status s = an_gather(rows, NULL, &X, NULL, NULL, &n, err);
    if (s == KNN_OK) s = knn_an_entropy(X, n, rows->acc->dim, (size_t)rows->acc->k, 0, out, err);
    if (s == KNN_OK) {
        ((double *)knn_field(result, 0, false))[out_row] = out[0];
        ((double *)knn_field(result, 1, false))[out_row] = out[1];
        ((int64_t *)knn_field(result, 2, false))[out_row] = (int64_t)n;
    }
    free(X);
    return s;
}

/* ---- knn_kde -------------------------------------------------------------------------------------- */

static knn_status kde_fin(const an_rows *rows, duckdb_vector result, idx_t out_row, knn_error *err) {
    const an_acc *a = rows->acc;
    const bool split = a->spec->aux == AN_AUX_BOOL;
    float *R = NULL, *Q = NULL;
    int64_t *qid = NULL;
    double *lg = NULL, *ess = NULL, *te = NULL, h = rows->opts.bandwidth;
    size_t nr = 0, nq = 0;
    knn_status s;
    /* with a side column: queries are the rows flagged true, the reference the others; else every row is both */
    if ((s = an_gather(rows, split ? an_sel_no_aux : NULL, &R, NULL, NULL, &nr, err))) goto done;
    if ((s = an_gather(rows, split ? an_sel_aux : NULL, &Q, &qid, NULL, &nq, err))) goto done;
    if (nr == 0) {
        s = knn_error_set(err, KNN_EINVAL, "no reference rows: the density is estimated from the rows whose flag is "
                          "false; got %zu query rows and none false", nq);
        goto done;
    }
    if ((s = knn_an_kde_bandwidth(R, nr, a->dim, rows->opts.bw_rule, &h, err))) goto done;
    lg = malloc((nq ? nq : 1) * sizeof *lg);
    ess = malloc((nq ? nq : 1) * sizeof *ess);
    te = malloc((nq ? nq : 1) * sizeof *te);
    if (!lg || !ess || !te) {
        s = knn_error_set(err, KNN_ENOMEM, "out of memory");
        goto done;
    }
    if ((s = knn_an_kde(R, nr, Q, nq, a->dim, (size_t)a->k, h, 0, lg, ess, te, err))) goto done;
    idx_t base;
    if ((s = knn_list_begin(result, out_row, nq, &base, err))) goto done;
    int64_t *f_id = knn_field(result, 0, true);
    double *f_l = knn_field(result, 1, true), *f_e = knn_field(result, 2, true), *f_t = knn_field(result, 3, true);
    double *f_h = knn_field(result, 4, true);
    for (size_t q = 0; q < nq; q++) {
        f_id[base + q] = qid[q];
        f_l[base + q] = lg[q];
        f_e[base + q] = ess[q];
        f_t[base + q] = te[q];
        f_h[base + q] = h;
    }
done:
    free(R); free(Q); free(qid); free(lg); free(ess); free(te);
    return s;
}

/* ---- knn_prototype -------------------------------------------------------------------------------- */

static knn_status prototype_fin(const an_rows *rows, duckdb_vector result, idx_t out_row, knn_error *err) {
    const an_acc *a = rows->acc;
    const an_opts *o = &rows->opts;
    float *Xt = NULL, *Xq = NULL;
    int64_t *qid = NULL, *classes = NULL;
    size_t *tsrc = NULL, nt = 0, nq = 0, n_classes = 0;
    int32_t *codes = NULL, *lab = NULL;
    double *dist = NULL, *prob = NULL;
    knn_metric m;
    knn_status s;
    if ((s = knn_metric_parse(o->metric, strlen(o->metric), &m, err))) goto done;
    if ((s = an_gather(rows, an_sel_labelled, &Xt, NULL, &tsrc, &nt, err))) goto done;
    if ((s = an_gather(rows, an_sel_unlabelled, &Xq, &qid, NULL, &nq, err))) goto done;
    if (nt == 0) {
        s = knn_error_set(err, KNN_EINVAL, "no row has a label: give labelled rows (non-NULL label) to form the class "
                          "means; rows with a NULL label are the ones classified");
        goto done;
    }
    classes = malloc(nt * sizeof *classes);
    codes = malloc(nt * sizeof *codes);
    lab = malloc((nq ? nq : 1) * sizeof *lab);
    dist = malloc((nq ? nq : 1) * sizeof *dist);
    prob = malloc((nq ? nq : 1) * sizeof *prob);
    if (!classes || !codes || !lab || !dist || !prob) {
        s = knn_error_set(err, KNN_ENOMEM, "out of memory");
        goto done;
    }
    for (size_t i = 0; i < nt; i++) classes[i] = a->ival[tsrc[i]];
    qsort(classes, nt, sizeof *classes, cmp_i64);
    for (size_t i = 0; i < nt; i++) {
        if (i == 0 || classes[i] != classes[n_classes - 1]) classes[n_classes++] = classes[i];
    }
    for (size_t i = 0; i < nt; i++) {
        int64_t v = a->ival[tsrc[i]];
        int64_t *hit = bsearch(&v, classes, n_classes, sizeof *classes, cmp_i64);
        codes[i] = (int32_t)(hit - classes);
    }
    if ((s = knn_an_prototype(Xt, nt, codes, n_classes, Xq, nq, a->dim, m, o->temperature, lab, dist, prob, err))) {
        goto done;
    }
    idx_t base;
    if ((s = knn_list_begin(result, out_row, nq, &base, err))) goto done;
    int64_t *f_id = knn_field(result, 0, true), *f_l = knn_field(result, 1, true);
    double *f_d = knn_field(result, 2, true), *f_p = knn_field(result, 3, true);
    for (size_t q = 0; q < nq; q++) {
        f_id[base + q] = qid[q];
        f_l[base + q] = classes[lab[q]];
        f_d[base + q] = dist[q];
        f_p[base + q] = prob[q];
    }
done:
    free(Xt); free(Xq); free(qid); free(classes); free(tsrc); free(codes); free(lab); free(dist); free(prob);
    return s;
}

/* ---- knn_interpolate ------------------------------------------------------------------------------ */

static knn_status interpolate_fin(const an_rows *rows, duckdb_vector result, idx_t out_row, knn_error *err) {
    const an_acc *a = rows->acc;
    const an_opts *o = &rows->opts;
    char msg[AN_MSG];
    float *Xs = NULL, *Xq = NULL, *dist = NULL;
    int64_t *qid = NULL, *nbr = NULL;
    size_t *ssrc = NULL, ns = 0, nq = 0, k = (size_t)a->k;
    double *y = NULL, *val = NULL, *reach = NULL;
    knn_metric m;
    knn_status s;
    if ((s = knn_metric_parse(o->metric, strlen(o->metric), &m, err))) goto done;
    if (m == KNN_METRIC_IP) {
        s = knn_error_set(err, KNN_EINVAL, "metric=ip gives negative distances, which inverse-distance weights cannot "
                          "use; use metric=l2 or cosine");
        goto done;
    }
    if ((s = an_gather(rows, an_sel_labelled, &Xs, NULL, &ssrc, &ns, err))) goto done;
    if ((s = an_gather(rows, an_sel_unlabelled, &Xq, &qid, NULL, &nq, err))) goto done;
    if (ns == 0) {
        s = knn_error_set(err, KNN_EINVAL, "no row has a value: give source rows with a non-NULL value (rows with a "
                          "NULL value are the ones interpolated)");
        goto done;
    }
    if (k > ns) {
        s = knn_error_set(err, KNN_EINVAL, "k = %zu is larger than the %zu rows with a value; lower k", k, ns);
        goto done;
    }
    nbr = malloc((nq ? nq : 1) * k * sizeof *nbr);
    dist = malloc((nq ? nq : 1) * k * sizeof *dist);
    y = malloc(ns * sizeof *y);
    val = malloc((nq ? nq : 1) * sizeof *val);
    reach = malloc((nq ? nq : 1) * sizeof *reach);
    if (!nbr || !dist || !y || !val || !reach) {
        s = knn_error_set(err, KNN_ENOMEM, "out of memory");
        goto done;
    }
    for (size_t i = 0; i < ns; i++) y[i] = a->dval[ssrc[i]];
    if (nq) {
        s = an_core(knn_an_neighbors(Xs, ns, Xq, nq, a->dim, o->metric, k, 0, 0, nbr, dist, msg, AN_MSG), msg, err);
        if (s) goto done;
    }
    if ((s = knn_an_interpolate(nbr, dist, nq, k, y, ns, m, o->power, val, reach, err))) goto done;
    idx_t base;
    if ((s = knn_list_begin(result, out_row, nq, &base, err))) goto done;
    int64_t *f_id = knn_field(result, 0, true);
    double *f_v = knn_field(result, 1, true), *f_r = knn_field(result, 2, true);
    for (size_t q = 0; q < nq; q++) {
        f_id[base + q] = qid[q];
        f_v[base + q] = val[q];
        f_r[base + q] = reach[q];
    }
done:
    free(Xs); free(Xq); free(dist); free(qid); free(nbr); free(ssrc); free(y); free(val); free(reach);
    return s;
}

/* ---- registration ---------------------------------------------------------------------------------------- */

/* id, vec, aux, k, count columns; aux kind; option keys; finaliser */
static const an_spec entropy = {-1, 0, -1, 1, -1, AN_AUX_NONE, "", entropy_fin, 0};
static const an_spec kde_self = {0, 1, -1, 2, -1, AN_AUX_NONE, "bandwidth", kde_fin, 0};
static const an_spec kde_query = {0, 1, 2, 3, -1, AN_AUX_BOOL, "bandwidth", kde_fin, 0};
static const an_spec prototype = {0, 1, 2, -1, -1, AN_AUX_BIGINT, "metric,temperature", prototype_fin, 0};
static const an_spec interpolate = {0, 1, 2, 3, -1, AN_AUX_DOUBLE, "metric,power", interpolate_fin, 0};

static const knn_fields entropy_fields = {3, {"entropy", "mee", "n"},
                                          {DUCKDB_TYPE_DOUBLE, DUCKDB_TYPE_DOUBLE, DUCKDB_TYPE_BIGINT}};
static const knn_fields kde_fields = {5, {"id", "log_density", "ess", "trunc_err", "bandwidth"},
                                      {DUCKDB_TYPE_BIGINT, DUCKDB_TYPE_DOUBLE, DUCKDB_TYPE_DOUBLE, DUCKDB_TYPE_DOUBLE,
                                       DUCKDB_TYPE_DOUBLE}};
static const knn_fields prototype_fields = {4, {"id", "label", "distance", "prob"},
                                            {DUCKDB_TYPE_BIGINT, DUCKDB_TYPE_BIGINT, DUCKDB_TYPE_DOUBLE,
                                             DUCKDB_TYPE_DOUBLE}};
static const knn_fields interpolate_fields = {3, {"id", "value", "reach"},
                                              {DUCKDB_TYPE_BIGINT, DUCKDB_TYPE_DOUBLE, DUCKDB_TYPE_DOUBLE}};

#define LIST_OF_STRUCT .result = KNN_LIST_OF(DUCKDB_TYPE_STRUCT), AN_HOOKS

static const knn_agg_def estimator_defs[] = {
    {.name = "knn_entropy", .params = {DUCKDB_TYPE_ANY, DUCKDB_TYPE_BIGINT}, .min_params = 2, .n_params = 2,
     .result = DUCKDB_TYPE_STRUCT, .fields = &entropy_fields, AN_HOOKS, .data = &entropy},
    {.name = "knn_kde", .params = {DUCKDB_TYPE_BIGINT, DUCKDB_TYPE_ANY, DUCKDB_TYPE_BIGINT, DUCKDB_TYPE_VARCHAR},
     .min_params = 3, .n_params = 4, LIST_OF_STRUCT, .fields = &kde_fields, .data = &kde_self},
    {.name = "knn_kde", .params = {DUCKDB_TYPE_BIGINT, DUCKDB_TYPE_ANY, DUCKDB_TYPE_BOOLEAN, DUCKDB_TYPE_BIGINT,
                                   DUCKDB_TYPE_VARCHAR},
     .min_params = 4, .n_params = 5, LIST_OF_STRUCT, .fields = &kde_fields, .data = &kde_query},
    {.name = "knn_prototype", .params = {DUCKDB_TYPE_BIGINT, DUCKDB_TYPE_ANY, DUCKDB_TYPE_BIGINT, DUCKDB_TYPE_VARCHAR},
     .min_params = 3, .n_params = 4, LIST_OF_STRUCT, .fields = &prototype_fields, .data = &prototype},
    {.name = "knn_interpolate", .params = {DUCKDB_TYPE_BIGINT, DUCKDB_TYPE_ANY, DUCKDB_TYPE_DOUBLE, DUCKDB_TYPE_BIGINT,
                                           DUCKDB_TYPE_VARCHAR},
     .min_params = 4, .n_params = 5, LIST_OF_STRUCT, .fields = &interpolate_fields, .data = &interpolate},
};

bool knn_register_analytics_estimators(duckdb_connection con, knn_registry *reg, knn_error *err) {
    return knn_register_aggregates(con, reg, estimator_defs, sizeof estimator_defs / sizeof estimator_defs[0], err);
}
