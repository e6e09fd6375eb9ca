/* Prediction and imputation aggregates, knn_predict and knn_impute: each finaliser turns one group's
 * sorted rows into core calls (ext/core/analytics) and writes the result; the kit entries at the end
 * give signatures and result types; sql/reference/knn_analytics.md documents them. Neighbours come
 * from an exact scan of the labelled rows, or from an index named in the options. */
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

/* ---- neighbours from an index named in the options --------------------------------------------------- */

static int cmp_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* k neighbours of each query through the named index, mapped to positions of the training rows
 * (train_ids sorted ascending, as the canonical order gives them). drop_self: query q is training row q
 * and is left out (k + 1 searched). ef: the graph's beam; ef = EXACT_SCAN: an exact scan of the
 * graph's rows instead. need_graph: refuse a flat index (refine_ef). */
#define EXACT_SCAN ((size_t)-1)
static knn_status index_neighbors(const an_rows *rows, const int64_t *train_ids, size_t n_train, const float *Q,
                                  size_t nq, size_t k, int drop_self, size_t ef, int need_graph, int64_t *out_ids,
                                  float *out_dists, knn_error *err) {
    const char *fn = rows->acc->fn;
    knn_entry *e = knn_registry_get(rows->acc->reg, rows->opts.index, strlen(rows->opts.index), err);
    if (!e) return err->status;
    knn_status s = KNN_OK;
    size_t kk = k + (drop_self ? 1 : 0);
    knn_id_pos *map = malloc(n_train * sizeof *map);
    int64_t *all_ids = NULL;
    float *all_ds = NULL;
    size_t *found = NULL;
    if (!map) {
        s = knn_error_set(err, KNN_ENOMEM, "%s: out of memory", fn);
        goto done;
    }
    if (e->dim != rows->acc->dim) {
        s = knn_error_set(err, KNN_EDATA, "%s: dimension mismatch: index '%s' has dimension %zu, the vectors %zu", fn,
                          e->name, e->dim, rows->acc->dim);
        goto done;
    }
    if (strcmp(knn_metric_name(e->metric), rows->opts.metric) != 0) {
        s = knn_error_set(err, KNN_EINVAL, "%s: index '%s' uses metric '%s' but the call uses '%s'; pass metric=%s", fn,
                          e->name, knn_metric_name(e->metric), rows->opts.metric, knn_metric_name(e->metric));
        goto done;
    }
    if (need_graph && e->kind != KNN_KIND_GRAPH) {
        s = knn_error_set(err, KNN_EINVAL, "%s: refine_ef re-searches a graph index, but index '%s' is flat (exact); "
                          "drop refine_ef or use a graph index", fn, e->name);
        goto done;
    }
    for (size_t i = 0; i < n_train; i++) map[i] = (knn_id_pos){train_ids[i], i};
    qsort(map, n_train, sizeof *map, knn_id_pos_cmp);
    /* one batch: the graph's threaded query path, or the flat index's blocked many-query scan */
    all_ids = malloc((nq ? nq : 1) * kk * sizeof *all_ids);
    all_ds = malloc((nq ? nq : 1) * kk * sizeof *all_ds);
    found = malloc((nq ? nq : 1) * sizeof *found);
    if (!all_ids || !all_ds || !found) {
        s = knn_error_set(err, KNN_ENOMEM, "%s: out of memory", fn);
        goto done;
    }
    if (e->kind == KNN_KIND_GRAPH) {
        char msg[AN_MSG];
        if (ef == EXACT_SCAN) {
            s = an_core(knn_graph_query_exact(e->graph, Q, nq, kk, 0, all_ids, all_ds, found, msg, AN_MSG), msg, err);
        } else {
            s = an_core(knn_graph_query(e->graph, Q, nq, kk, ef, 0, all_ids, all_ds, found, msg, AN_MSG), msg, err);
        }
    } else {
        size_t f = 0;
        s = knn_entry_search_flat_batch(e, Q, nq, kk, all_ids, all_ds, &f, err);
        for (size_t q = 0; q < nq; q++) found[q] = f;
    }
    for (size_t q = 0; q < nq && s == KNN_OK; q++) {
        const int64_t *qi = all_ids + q * kk;
        const float *qd = all_ds + q * kk;
        size_t o = 0;
        for (size_t j = 0; j < found[q] && o < k; j++) {
            if (drop_self && qi[j] == train_ids[q]) continue;
            knn_id_pos key = {qi[j], 0};
            knn_id_pos *hit = bsearch(&key, map, n_train, sizeof *map, knn_id_pos_cmp);
            if (!hit) {
                s = knn_error_set(err, KNN_EDATA, "%s: index '%s' returned id %lld, which is not among the labelled "
                                  "rows of the input; build the index over the same rows", fn, e->name,
                                  (long long)qi[j]);
                break;
            }
            out_ids[q * k + o] = (int64_t)hit->pos;
            out_dists[q * k + o] = qd[j];
            o++;
        }
        if (s == KNN_OK && o < k) {
            s = knn_error_set(err, KNN_EINVAL, "%s: index '%s' returned %zu neighbours, fewer than k = %zu", fn,
                              e->name, o, k);
        }
    }
done:
    free(map);
    free(all_ids);
    free(all_ds);
    free(found);
    knn_entry_release(e);
    return s;
}

/* ---- knn_predict ------------------------------------------------------------------------------------ */

/* The refine_ef cascade over first-beam neighbours nbr / dist (nq x kk, updated in place), as
 * knnsql/analytics.py's _refine: queries whose vote is unsettled (knn_an_unsettled; every query when
 * regressing, codes NULL) get a second beam of width refine_ef; those whose k-th distance it lowered
 * and whose vote is still unsettled get an exact scan of the index's rows. */
static knn_status refine_neighbors(const an_rows *rows, const int64_t *tid, size_t nt,
                                   const float *Xq, size_t nq, size_t kk, size_t k, const int32_t *codes,
                                   size_t n_classes, int64_t *nbr, float *dist, knn_error *err) {
    const an_opts *o = &rows->opts;
    const size_t d = rows->acc->dim;
    char msg[AN_MSG];
    knn_status s = KNN_OK;
    uint8_t *flag = malloc(nq ? nq : 1);
    size_t *sel = malloc((nq ? nq : 1) * sizeof *sel);
    float *Qs = NULL, *d2 = NULL;
    int64_t *n2 = NULL;
    if (!flag || !sel) {
        s = knn_error_set(err, KNN_ENOMEM, "out of memory");
        goto done;
    }
    if (codes) {
        s = an_core(knn_an_unsettled(nbr, dist, nq, kk, k, codes, nt, n_classes, o->metric, o->weighting, o->temperature,
                                  KNN_REFINE_FLIPS, flag, msg, AN_MSG), msg, err);
        if (s) goto done;
    } else {
        memset(flag, 1, nq);
    }
    size_t ns = 0;
    for (size_t q = 0; q < nq; q++) {
        if (flag[q]) sel[ns++] = q;
    }
    if (ns == 0) goto done;
    Qs = malloc(ns * d * sizeof *Qs);
    n2 = malloc(ns * kk * sizeof *n2);
    d2 = malloc(ns * kk * sizeof *d2);
    if (!Qs || !n2 || !d2) {
        s = knn_error_set(err, KNN_ENOMEM, "out of memory");
        goto done;
    }
    for (size_t i = 0; i < ns; i++) memcpy(Qs + i * d, Xq + sel[i] * d, d * sizeof *Qs);
    if ((s = index_neighbors(rows, tid, nt, Qs, ns, kk, 0, (size_t)o->refine_ef, 1, n2, d2, err))) goto done;
    if (codes) {
        s = an_core(knn_an_unsettled(n2, d2, ns, kk, k, codes, nt, n_classes, o->metric, o->weighting, o->temperature,
                                  KNN_REFINE_FLIPS, flag, msg, AN_MSG), msg, err);
        if (s) goto done;
    } else {
        memset(flag, 1, ns);
    }
    /* take the second beam's lists; keep (compacted to the front of sel / Qs) the queries to scan */
    size_t ne = 0;
    for (size_t i = 0; i < ns; i++) {
        size_t q = sel[i];
        int moved = d2[i * kk + k - 1] < dist[q * kk + k - 1];
        memcpy(nbr + q * kk, n2 + i * kk, kk * sizeof *nbr);
        memcpy(dist + q * kk, d2 + i * kk, kk * sizeof *dist);
        if (moved && flag[i]) {
            sel[ne] = q;
            memmove(Qs + ne * d, Qs + i * d, d * sizeof *Qs);
            ne++;
        }
    }
    if (ne == 0) goto done;
    if ((s = index_neighbors(rows, tid, nt, Qs, ne, kk, 0, EXACT_SCAN, 1, n2, d2, err))) goto done;
    for (size_t i = 0; i < ne; i++) {
        memcpy(nbr + sel[i] * kk, n2 + i * kk, kk * sizeof *nbr);
        memcpy(dist + sel[i] * kk, d2 + i * kk, kk * sizeof *dist);
    }
done:
    free(flag);
    free(sel);
    free(Qs);
    free(n2);
    free(d2);
    return s;
}

static knn_status predict_fin(const an_rows *rows, duckdb_vector result, idx_t out_row, knn_error *err) {
    const an_acc *a = rows->acc;
    const an_opts *o = &rows->opts;
    const bool regress = a->spec->aux == AN_AUX_DOUBLE;
    char msg[AN_MSG];
    float *Xt = NULL, *Xq = NULL;
    int64_t *tid = NULL, *qid = NULL, *nbr = NULL, *tnbr = NULL, *classes = NULL;
    size_t *tsrc = NULL, *kq = NULL, nt = 0, nq = 0;
    float *dist = NULL, *tdist = NULL;
    int32_t *codes = NULL, *lab = NULL;
    double *y = NULL, *prob = NULL, *val = NULL;
    knn_status s;
    size_t k = (size_t)a->k;
    if ((s = an_gather(rows, an_sel_labelled, &Xt, &tid, &tsrc, &nt, err))) goto done;
    if ((s = an_gather(rows, an_sel_unlabelled, &Xq, &qid, NULL, &nq, err))) goto done;
    if (nt == 0) {
        s = knn_error_set(err, KNN_EINVAL, "no row has a label: give training rows with a non-NULL label (rows with a "
                          "NULL label are the ones predicted)");
        goto done;
    }
    if (k > nt) {
        s = knn_error_set(err, KNN_EINVAL, "k = %zu is larger than the %zu labelled rows; lower k", k, nt);
        goto done;
    }
    if (o->adaptive && regress) {
        s = knn_error_set(err, KNN_EINVAL, "adaptive k applies to classification (BIGINT labels) only");
        goto done;
    }
    size_t kk = o->adaptive && (size_t)o->support > k ? (size_t)o->support : k;
    if (kk > nt) {
        s = knn_error_set(err, KNN_EINVAL, "support = %zu is larger than the %zu labelled rows", kk, nt);
        goto done;
    }
    if (o->adaptive && k >= nt) {
        s = knn_error_set(err, KNN_EINVAL, "adaptive k needs k < %zu labelled rows (leave-one-out votes)", nt);
        goto done;
    }
    if (o->refine_ef && !o->index[0]) {
        s = knn_error_set(err, KNN_EINVAL, "refine_ef re-searches the queries of a graph index search; add "
                          "'index=<graph index>' (exact search needs no refinement)");
        goto done;
    }
    if (o->refine_ef && o->adaptive) {
        s = knn_error_set(err, KNN_EINVAL, "refine_ef and adaptive=true cannot be combined; use one of them");
        goto done;
    }
    nbr = malloc((nq ? nq : 1) * kk * sizeof *nbr);
    dist = malloc((nq ? nq : 1) * kk * sizeof *dist);
    kq = malloc((nq ? nq : 1) * sizeof *kq);
    y = malloc(nt * sizeof *y);
    codes = malloc(nt * sizeof *codes);
    classes = malloc(nt * sizeof *classes);
    lab = malloc((nq ? nq : 1) * sizeof *lab);
    prob = malloc((nq ? nq : 1) * sizeof *prob);
    val = malloc((nq ? nq : 1) * sizeof *val);
    if (!nbr || !dist || !kq || !y || !codes || !classes || !lab || !prob || !val) {
        s = knn_error_set(err, KNN_ENOMEM, "out of memory");
        goto done;
    }
    size_t n_classes = 0;
    for (size_t i = 0; i < nt; i++) y[i] = a->dval[tsrc[i]];
    if (!regress) {
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
    }
    if (nq) {
        if (o->index[0]) {
            s = index_neighbors(rows, tid, nt, Xq, nq, kk, 0, (size_t)o->ef, 0, nbr, dist, err);
            if (!s && o->refine_ef) {
                s = refine_neighbors(rows, tid, nt, Xq, nq, kk, k, regress ? NULL : codes, n_classes, nbr, dist,
                                     err);
            }
        } else {
            s = an_core(knn_an_neighbors(Xt, nt, Xq, nq, a->dim, o->metric, kk, 0, 0, nbr, dist, msg, AN_MSG), msg, err);
        }
        if (s) goto done;
    }
    for (size_t q = 0; q < nq; q++) kq[q] = k;
    if (nq && o->adaptive) {
        tnbr = malloc(nt * k * sizeof *tnbr);
        tdist = malloc(nt * k * sizeof *tdist);
        if (!tnbr || !tdist) {
            s = knn_error_set(err, KNN_ENOMEM, "out of memory");
            goto done;
        }
        if (o->index[0]) {
            s = index_neighbors(rows, tid, nt, Xt, nt, k, 1, (size_t)o->ef, 0, tnbr, tdist, err);
        } else {
            s = an_core(knn_an_neighbors(Xt, nt, NULL, 0, a->dim, o->metric, k, 1, 0, tnbr, tdist, msg, AN_MSG), msg, err);
        }
        if (s) goto done;
        s = an_core(knn_an_adaptive_k(tnbr, tdist, nt, k, codes, n_classes, nbr, nq, kk, k, (size_t)o->support,
                                   o->metric, o->weighting, o->temperature, kq, msg, AN_MSG), msg, err);
        if (s) goto done;
    }
    if (nq) {
        if (regress) {
            s = an_core(knn_an_regress(nbr, dist, nq, kk, k, y, nt, o->metric, o->weighting, o->temperature, kq, val, msg,
                                    AN_MSG), msg, err);
        } else {
            s = an_core(knn_an_classify(nbr, dist, nq, kk, k, codes, nt, n_classes, o->metric, o->weighting,
                                     o->temperature, kq, lab, prob, NULL, msg, AN_MSG), msg, err);
        }
        if (s) goto done;
    }
    idx_t base;
    if ((s = knn_list_begin(result, out_row, nq, &base, err))) goto done;
    int64_t *f_id = knn_field(result, 0, true);
    for (size_t q = 0; q < nq; q++) f_id[base + q] = qid[q];
    if (regress) {
        double *f_v = knn_field(result, 1, true);
        int32_t *f_k = knn_field(result, 2, true);
        for (size_t q = 0; q < nq; q++) {
            f_v[base + q] = val[q];
            f_k[base + q] = (int32_t)kq[q];
        }
    } else {
        int64_t *f_l = knn_field(result, 1, true);
        double *f_p = knn_field(result, 2, true);
        int32_t *f_k = knn_field(result, 3, true);
        for (size_t q = 0; q < nq; q++) {
            f_l[base + q] = classes[lab[q]];
            f_p[base + q] = prob[q];
            f_k[base + q] = (int32_t)kq[q];
        }
    }
done:
    free(Xt); free(Xq); free(tid); free(qid); free(nbr); free(tnbr); free(classes); free(tsrc); free(kq);
    free(dist); free(tdist); free(codes); free(lab); free(y); free(prob); free(val);
    return s;
}

/* ---- knn_impute -------------------------------------------------------------------------------------- */

static knn_status impute_fin(const an_rows *rows, duckdb_vector result, idx_t out_row, knn_error *err) {
    const an_acc *a = rows->acc;
    const an_opts *o = &rows->opts;
    char msg[AN_MSG];
    float *Xd = NULL, *Xq = NULL, *dist = NULL;
    int64_t *qid = NULL, *nbr = NULL;
    size_t *dsrc = NULL, nd = 0, nq = 0;
    double *y = NULL, *mean = NULL, *draws = NULL, *lo = NULL, *hi = NULL;
    knn_status s;
    size_t k = (size_t)a->k, nd_draws = (size_t)o->draws;
    if (o->weighting == 2) {
        s = knn_error_set(err, KNN_EINVAL, "weighting must be uniform or distance");
        goto done;
    }
    if ((s = an_gather(rows, an_sel_labelled, &Xd, NULL, &dsrc, &nd, err))) goto done;
    if ((s = an_gather(rows, an_sel_unlabelled, &Xq, &qid, NULL, &nq, err))) goto done;
    if (nd == 0) {
        s = knn_error_set(err, KNN_EINVAL, "no row has an observed (non-NULL) value to impute from");
        goto done;
    }
    if (k > nd) {
        s = knn_error_set(err, KNN_EINVAL, "k = %zu is larger than the %zu rows with an observed value; lower k", k, nd);
        goto done;
    }
    size_t m = nq ? nq : 1;
    nbr = malloc(m * k * sizeof *nbr);
    dist = malloc(m * k * sizeof *dist);
    y = malloc(nd * sizeof *y);
    mean = malloc(m * sizeof *mean);
    lo = malloc(m * sizeof *lo);
    hi = malloc(m * sizeof *hi);
    draws = malloc(m * (nd_draws ? nd_draws : 1) * sizeof *draws);
    if (!nbr || !dist || !y || !mean || !lo || !hi || !draws) {
        s = knn_error_set(err, KNN_ENOMEM, "out of memory");
        goto done;
    }
    for (size_t i = 0; i < nd; i++) y[i] = a->dval[dsrc[i]];
    if (nq) {
        s = an_core(knn_an_neighbors(Xd, nd, Xq, nq, a->dim, o->metric, k, 0, 0, nbr, dist, msg, AN_MSG), msg, err);
        if (s) goto done;
        s = an_core(knn_an_impute(nbr, dist, nq, k, k, y, nd, o->metric, o->weighting, nd_draws, o->seed, o->q_lo, o->q_hi,
                               mean, nd_draws ? draws : NULL, lo, hi, msg, AN_MSG), msg, err);
        if (s) goto done;
    }
    idx_t base;
    if ((s = knn_list_begin(result, out_row, nq, &base, err))) goto done;
    int64_t *f_id = knn_field(result, 0, true);
    double *f_v = knn_field(result, 1, true), *f_lo = knn_field(result, 2, true), *f_hi = knn_field(result, 3, true);
    double *dd = knn_list_rows(knn_field_vec(result, 4, true), base, nq, nd_draws, sizeof *dd, "draws lists", err);
    if (dd == NULL) {
        s = err->status;
        goto done;
    }
    if (nq && nd_draws) memcpy(dd, draws, nq * nd_draws * sizeof *dd);
    for (size_t q = 0; q < nq; q++) {
        f_id[base + q] = qid[q];
        f_v[base + q] = mean[q];
        f_lo[base + q] = lo[q];
        f_hi[base + q] = hi[q];
    }
done:
    free(Xd); free(Xq); free(dist); free(qid); free(nbr); free(dsrc); free(y); free(mean); free(draws); free(lo);
    free(hi);
    return s;
}


/* ---- registration ---------------------------------------------------------------------------------------- */

/* id, vec, aux, k, count columns; aux kind; option keys; finaliser */
static const an_spec predict_class = {0, 1, 2, 3, -1, AN_AUX_BIGINT,
                                      "metric,weighting,temperature,adaptive,support,index,ef,refine_ef", predict_fin, 0};
static const an_spec predict_value = {0, 1, 2, 3, -1, AN_AUX_DOUBLE, "metric,weighting,temperature,index,ef,refine_ef",
                                      predict_fin, 0};
static const an_spec impute = {0, 1, 2, 3, -1, AN_AUX_DOUBLE, "metric,weighting,draws,seed,lo,hi", impute_fin, 0};

static const knn_fields class_fields = {4, {"id", "label", "prob", "k_used"},
                                        {DUCKDB_TYPE_BIGINT, DUCKDB_TYPE_BIGINT, DUCKDB_TYPE_DOUBLE, DUCKDB_TYPE_INTEGER}};
static const knn_fields value_fields = {3, {"id", "value", "k_used"},
                                        {DUCKDB_TYPE_BIGINT, DUCKDB_TYPE_DOUBLE, DUCKDB_TYPE_INTEGER}};
static const knn_fields impute_fields = {5, {"id", "value", "lo", "hi", "draws"},
                                         {DUCKDB_TYPE_BIGINT, DUCKDB_TYPE_DOUBLE, DUCKDB_TYPE_DOUBLE, DUCKDB_TYPE_DOUBLE,
                                          KNN_LIST_OF(DUCKDB_TYPE_DOUBLE)}};

/* (id, vec, label or value, k [, options]) */
#define PREDICT_ARGS(aux) .params = {DUCKDB_TYPE_BIGINT, DUCKDB_TYPE_ANY, aux, DUCKDB_TYPE_BIGINT, DUCKDB_TYPE_VARCHAR}, \
                          .min_params = 4, .n_params = 5, .result = KNN_LIST_OF(DUCKDB_TYPE_STRUCT), AN_HOOKS

static const knn_agg_def predict_defs[] = {
    {.name = "knn_predict", PREDICT_ARGS(DUCKDB_TYPE_BIGINT), .fields = &class_fields, .data = &predict_class},
    {.name = "knn_predict", PREDICT_ARGS(DUCKDB_TYPE_DOUBLE), .fields = &value_fields, .data = &predict_value},
    {.name = "knn_impute", PREDICT_ARGS(DUCKDB_TYPE_DOUBLE), .fields = &impute_fields, .data = &impute},
};

bool knn_register_analytics_predict(duckdb_connection con, knn_registry *reg, knn_error *err) {
    return knn_register_aggregates(con, reg, predict_defs, sizeof predict_defs / sizeof predict_defs[0], err);
}
