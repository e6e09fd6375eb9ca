/* Finalisers of the kNN analytics aggregates: each turns one group's sorted rows into core calls
 * (ext/core/knn_analytics_*.c) and writes the result. Signatures and result types are in the spec
 * table at the end; sql/reference/knn_analytics.md documents them. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "analytics/knn_analytics.h"
#include "knn_glue.h"
#include "index/knn_registry.h"
#include "sql_analytics.h"

DUCKDB_EXTENSION_EXTERN

#define MSG 512

static knn_status core(int st, const char *msg, knn_error *err) {
    if (st == 0) return KNN_OK;
    return knn_error_set(err, (knn_status)st, "%s", msg);
}

static bool sel_aux(const an_acc *a, size_t r) { return a->has_aux[r] && a->ival[r] != 0; }
static bool sel_no_aux(const an_acc *a, size_t r) { return !a->has_aux[r] || a->ival[r] == 0; }
static bool sel_labelled(const an_acc *a, size_t r) { return a->has_aux[r]; }
static bool sel_unlabelled(const an_acc *a, size_t r) { return !a->has_aux[r]; }

static void *field(duckdb_vector list_or_struct, idx_t f, bool is_list) {
    duckdb_vector child = is_list ? duckdb_list_vector_get_child(list_or_struct) : list_or_struct;
    return duckdb_vector_get_data(duckdb_struct_vector_get_child(child, f));
}

static duckdb_vector field_vec(duckdb_vector v, idx_t f, bool is_list) {
    duckdb_vector child = is_list ? duckdb_list_vector_get_child(v) : v;
    return duckdb_struct_vector_get_child(child, f);
}

/* ---- neighbours from an index named in the options --------------------------------------------------- */

static int cmp_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

typedef struct id_pos {
    int64_t id;
    size_t pos;
} id_pos;

static int cmp_idpos(const void *a, const void *b) {
    const id_pos *x = a, *y = b;
    return (x->id > y->id) - (x->id < y->id);
}

/* k neighbours of each query through the named index, mapped to positions of the training rows
 * (train_ids sorted ascending, as the canonical order gives them). drop_self: query q is training row q
 * and is left out (k + 1 searched). ef: the graph's beam; ef = EXACT_SCAN: an exact scan of the
 * graph's rows instead. need_graph: refuse a flat index (refine_ef). */
#define EXACT_SCAN ((size_t)-1)
static knn_status index_neighbors(const an_rows *rows, const int64_t *train_ids, size_t n_train, const float *Q,
                                  size_t nq, size_t k, int drop_self, size_t ef, int need_graph, int64_t *out_ids,
                                  float *out_dists, knn_error *err) {
    const char *fn = rows->acc->spec->name;
    knn_entry *e = knn_registry_get(rows->acc->reg, rows->opts.index, strlen(rows->opts.index), err);
    if (!e) return err->status;
    knn_status s = KNN_OK;
    size_t kk = k + (drop_self ? 1 : 0);
    id_pos *map = malloc(n_train * sizeof *map);
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
    for (size_t i = 0; i < n_train; i++) map[i] = (id_pos){train_ids[i], i};
    qsort(map, n_train, sizeof *map, cmp_idpos);
    /* one batch: the graph's threaded query path, or the flat index's blocked many-query scan */
    all_ids = malloc((nq ? nq : 1) * kk * sizeof *all_ids);
    all_ds = malloc((nq ? nq : 1) * kk * sizeof *all_ds);
    found = malloc((nq ? nq : 1) * sizeof *found);
    if (!all_ids || !all_ds || !found) {
        s = knn_error_set(err, KNN_ENOMEM, "%s: out of memory", fn);
        goto done;
    }
    if (e->kind == KNN_KIND_GRAPH) {
        char msg[MSG];
        if (ef == EXACT_SCAN) {
            s = core(knn_graph_query_exact(e->graph, Q, nq, kk, 0, all_ids, all_ds, found, msg, MSG), msg, err);
        } else {
            s = core(knn_graph_query(e->graph, Q, nq, kk, ef, 0, all_ids, all_ds, found, msg, MSG), msg, err);
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
            id_pos key = {qi[j], 0};
            id_pos *hit = bsearch(&key, map, n_train, sizeof *map, cmp_idpos);
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
    char msg[MSG];
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
        s = core(knn_an_unsettled(nbr, dist, nq, kk, k, codes, nt, n_classes, o->metric, o->weighting, o->temperature,
                                  KNN_REFINE_FLIPS, flag, msg, MSG), msg, err);
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
        s = core(knn_an_unsettled(n2, d2, ns, kk, k, codes, nt, n_classes, o->metric, o->weighting, o->temperature,
                                  KNN_REFINE_FLIPS, flag, msg, MSG), msg, err);
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
    char msg[MSG];
    float *Xt = NULL, *Xq = NULL;
    int64_t *tid = NULL, *qid = NULL, *nbr = NULL, *tnbr = NULL, *classes = NULL;
    size_t *tsrc = NULL, *kq = NULL, nt = 0, nq = 0;
    float *dist = NULL, *tdist = NULL;
    int32_t *codes = NULL, *lab = NULL;
    double *y = NULL, *prob = NULL, *val = NULL;
    knn_status s;
    size_t k = (size_t)a->k;
    if ((s = an_gather(rows, sel_labelled, &Xt, &tid, &tsrc, &nt, err))) goto done;
    if ((s = an_gather(rows, sel_unlabelled, &Xq, &qid, NULL, &nq, err))) goto done;
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
            s = core(knn_an_neighbors(Xt, nt, Xq, nq, a->dim, o->metric, kk, 0, 0, nbr, dist, msg, MSG), msg, err);
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
            s = core(knn_an_neighbors(Xt, nt, NULL, 0, a->dim, o->metric, k, 1, 0, tnbr, tdist, msg, MSG), msg, err);
        }
        if (s) goto done;
        s = core(knn_an_adaptive_k(tnbr, tdist, nt, k, codes, n_classes, nbr, nq, kk, k, (size_t)o->support,
                                   o->metric, o->weighting, o->temperature, kq, msg, MSG), msg, err);
        if (s) goto done;
    }
    if (nq) {
        if (regress) {
            s = core(knn_an_regress(nbr, dist, nq, kk, k, y, nt, o->metric, o->weighting, o->temperature, kq, val, msg,
                                    MSG), msg, err);
        } else {
            s = core(knn_an_classify(nbr, dist, nq, kk, k, codes, nt, n_classes, o->metric, o->weighting,
                                     o->temperature, kq, lab, prob, NULL, msg, MSG), msg, err);
        }
        if (s) goto done;
    }
    idx_t base;
    if ((s = an_list_begin(result, out_row, nq, &base, err))) goto done;
    int64_t *f_id = field(result, 0, true);
    for (size_t q = 0; q < nq; q++) f_id[base + q] = qid[q];
    if (regress) {
        double *f_v = field(result, 1, true);
        int32_t *f_k = field(result, 2, true);
        for (size_t q = 0; q < nq; q++) {
            f_v[base + q] = val[q];
            f_k[base + q] = (int32_t)kq[q];
        }
    } else {
        int64_t *f_l = field(result, 1, true);
        double *f_p = field(result, 2, true);
        int32_t *f_k = field(result, 3, true);
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
    char msg[MSG];
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
    if ((s = an_gather(rows, sel_labelled, &Xd, NULL, &dsrc, &nd, err))) goto done;
    if ((s = an_gather(rows, sel_unlabelled, &Xq, &qid, NULL, &nq, err))) goto done;
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
        s = core(knn_an_neighbors(Xd, nd, Xq, nq, a->dim, o->metric, k, 0, 0, nbr, dist, msg, MSG), msg, err);
        if (s) goto done;
        s = core(knn_an_impute(nbr, dist, nq, k, k, y, nd, o->metric, o->weighting, nd_draws, o->seed, o->q_lo, o->q_hi,
                               mean, nd_draws ? draws : NULL, lo, hi, msg, MSG), msg, err);
        if (s) goto done;
    }
    idx_t base;
    if ((s = an_list_begin(result, out_row, nq, &base, err))) goto done;
    int64_t *f_id = field(result, 0, true);
    double *f_v = field(result, 1, true), *f_lo = field(result, 2, true), *f_hi = field(result, 3, true);
    duckdb_vector dv = field_vec(result, 4, true);
    idx_t dbase = duckdb_list_vector_get_size(dv);
    if (duckdb_list_vector_reserve(dv, dbase + nq * nd_draws) != DuckDBSuccess) {
        s = knn_error_set(err, KNN_ENOMEM, "could not reserve the draws lists");
        goto done;
    }
    duckdb_list_vector_set_size(dv, dbase + nq * nd_draws);
    double *dd = duckdb_vector_get_data(duckdb_list_vector_get_child(dv));
    duckdb_list_entry *de = duckdb_vector_get_data(dv);
    for (size_t q = 0; q < nq; q++) {
        f_id[base + q] = qid[q];
        f_v[base + q] = mean[q];
        f_lo[base + q] = lo[q];
        f_hi[base + q] = hi[q];
        de[base + q].offset = dbase + q * nd_draws;
        de[base + q].length = nd_draws;
        for (size_t r = 0; r < nd_draws; r++) dd[dbase + q * nd_draws + r] = draws[q * nd_draws + r];
    }
done:
    free(Xd); free(Xq); free(dist); free(qid); free(nbr); free(dsrc); free(y); free(mean); free(draws); free(lo);
    free(hi);
    return s;
}

/* ---- knn_smote ---------------------------------------------------------------------------------------- */

static knn_status smote_fin(const an_rows *rows, duckdb_vector result, idx_t out_row, knn_error *err) {
    const an_acc *a = rows->acc;
    const an_opts *o = &rows->opts;
    char msg[MSG];
    float *X = NULL, *dist = NULL, *out = NULL;
    int64_t *ids = NULL, *nbr = NULL, *par = NULL, *nb = NULL;
    double *gap = NULL;
    size_t n = 0, k = (size_t)a->k, m = (size_t)a->count_param, d = a->dim;
    knn_status s;
    if ((s = an_gather(rows, NULL, &X, &ids, NULL, &n, err))) goto done;
    if (k >= n) {
        s = knn_error_set(err, KNN_EINVAL, "k = %zu needs at least k + 1 = %zu minority rows, got %zu; lower k", k,
                          k + 1, n);
        goto done;
    }
    nbr = malloc(n * k * sizeof *nbr);
    dist = malloc(n * k * sizeof *dist);
    out = malloc((m ? m : 1) * d * sizeof *out);
    par = malloc((m ? m : 1) * sizeof *par);
    nb = malloc((m ? m : 1) * sizeof *nb);
    gap = malloc((m ? m : 1) * sizeof *gap);
    if (!nbr || !dist || !out || !par || !nb || !gap) {
        s = knn_error_set(err, KNN_ENOMEM, "out of memory for %zu synthetic rows", m);
        goto done;
    }
    s = core(knn_an_neighbors(X, n, NULL, 0, d, o->metric, k, 1, 0, nbr, dist, msg, MSG), msg, err);
    if (s) goto done;
    if (m) {
        s = core(knn_an_smote(X, n, d, nbr, k, k, m, o->seed, out, par, nb, gap, msg, MSG), msg, err);
        if (s) goto done;
    }
    idx_t base;
    if ((s = an_list_begin(result, out_row, m, &base, err))) goto done;
    int64_t *f_p = field(result, 0, true), *f_n = field(result, 1, true);
    double *f_g = field(result, 2, true);
    duckdb_vector vv = field_vec(result, 3, true);
    idx_t vbase = duckdb_list_vector_get_size(vv);
    if (duckdb_list_vector_reserve(vv, vbase + m * d) != DuckDBSuccess) {
        s = knn_error_set(err, KNN_ENOMEM, "could not reserve the synthetic vectors");
        goto done;
    }
    duckdb_list_vector_set_size(vv, vbase + m * d);
    float *vd = duckdb_vector_get_data(duckdb_list_vector_get_child(vv));
    duckdb_list_entry *ve = duckdb_vector_get_data(vv);
    for (size_t r = 0; r < m; r++) {
        f_p[base + r] = ids[par[r]];
        f_n[base + r] = ids[nb[r]];
        f_g[base + r] = gap[r];
        ve[base + r].offset = vbase + r * d;
        ve[base + r].length = d;
        memcpy(vd + vbase + r * d, out + r * d, d * sizeof(float));
    }
done:
    free(X); free(dist); free(out); free(ids); free(nbr); free(par); free(nb); free(gap);
    return s;
}

/* ---- knn_lid / knn_lid_estimate --------------------------------------------------------------------------- */

static knn_status lid_common(const an_rows *rows, int64_t **ids, double **lid, double **rk, double *table,
                             size_t *n, knn_error *err) {
    const an_acc *a = rows->acc;
    char msg[MSG];
    float *X = NULL, *dist = NULL;
    int64_t *nbr = NULL;
    size_t k = (size_t)a->k;
    knn_status s;
    *lid = *rk = NULL;
    if ((s = an_gather(rows, NULL, &X, ids, NULL, n, err))) return s;
    if (k < 2) {
        s = knn_error_set(err, KNN_EINVAL, "k must be >= 2 (the estimate uses ratios of neighbour distances), got %zu", k);
        goto done;
    }
    if (k >= *n) {
        s = knn_error_set(err, KNN_EINVAL, "k = %zu needs at least k + 1 = %zu rows, got %zu; lower k", k, k + 1, *n);
        goto done;
    }
    nbr = malloc(*n * k * sizeof *nbr);
    dist = malloc(*n * k * sizeof *dist);
    *lid = malloc(*n * sizeof **lid);
    *rk = malloc(*n * sizeof **rk);
    if (!nbr || !dist || !*lid || !*rk) {
        s = knn_error_set(err, KNN_ENOMEM, "out of memory");
        goto done;
    }
    s = core(knn_an_neighbors(X, *n, NULL, 0, a->dim, rows->opts.metric, k, 1, 0, nbr, dist, msg, MSG), msg, err);
    if (s) goto done;
    s = core(knn_an_lid(dist, *n, k, k, rows->opts.metric, *lid, *rk, table, msg, MSG), msg, err);
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
    if (s == KNN_OK && (s = an_list_begin(result, out_row, n, &base, err)) == KNN_OK) {
        int64_t *f_id = field(result, 0, true);
        double *f_l = field(result, 1, true), *f_r = field(result, 2, true);
        duckdb_vector lv = field_vec(result, 1, true);
        for (size_t i = 0; i < n; i++) {
            f_id[base + i] = ids[i];
            f_l[base + i] = lid[i];
            if (isnan(lid[i])) an_set_null(lv, base + i);
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
        if (isnan(table)) an_set_null(result, out_row);
    }
    free(ids);
    free(lid);
    free(rk);
    return s;
}

/* ---- two-set estimators ------------------------------------------------------------------------------------ */

static knn_status divergence_fin(const an_rows *rows, duckdb_vector result, idx_t out_row, knn_error *err) {
    char msg[MSG];
    float *P = NULL, *Q = NULL;
    size_t n = 0, m = 0;
    double out = NAN;
    knn_status s;
    if ((s = an_gather(rows, sel_aux, &P, NULL, NULL, &n, err))) goto done;
    if ((s = an_gather(rows, sel_no_aux, &Q, NULL, NULL, &m, err))) goto done;
    s = core(knn_an_divergence(P, n, Q, m, rows->acc->dim, (size_t)rows->acc->k, rows->opts.method, rows->opts.alpha,
                               0, &out, msg, MSG), msg, err);
    if (s == KNN_OK) ((double *)duckdb_vector_get_data(result))[out_row] = out;
done:
    free(P);
    free(Q);
    return s;
}

static knn_status genpr_fin(const an_rows *rows, duckdb_vector result, idx_t out_row, knn_error *err) {
    char msg[MSG];
    float *R = NULL, *F = NULL;
    size_t n = 0, m = 0;
    double out[8];
    knn_status s;
    if ((s = an_gather(rows, sel_no_aux, &R, NULL, NULL, &n, err))) goto done;
    if ((s = an_gather(rows, sel_aux, &F, NULL, NULL, &m, err))) goto done;
    s = core(knn_an_precision_recall(R, n, F, m, rows->acc->dim, rows->opts.metric, (size_t)rows->acc->k, 0, out,
                                     msg, MSG), msg, err);
    if (s == KNN_OK) {
        for (idx_t f = 0; f < 8; f++) ((double *)field(result, f, false))[out_row] = out[f];
    }
done:
    free(R);
    free(F);
    return s;
}

static knn_status iid_fin(const an_rows *rows, duckdb_vector result, idx_t out_row, knn_error *err) {
    const an_acc *a = rows->acc;
    char msg[MSG];
    float *X = NULL, *dist = NULL;
    int64_t *nbr = NULL;
    size_t n = 0, k = (size_t)a->k;
    double stat = NAN, p = NAN;
    knn_status s;
    /* rows arrive sorted by (id = 0, order key): the order of the test */
    if ((s = an_gather(rows, NULL, &X, NULL, NULL, &n, err))) goto done;
    if (k >= n) {
        s = knn_error_set(err, KNN_EINVAL, "k = %zu needs at least k + 1 = %zu rows, got %zu; lower k", k, k + 1, n);
        goto done;
    }
    nbr = malloc(n * k * sizeof *nbr);
    dist = malloc(n * k * sizeof *dist);
    if (!nbr || !dist) {
        s = knn_error_set(err, KNN_ENOMEM, "out of memory");
        goto done;
    }
    s = core(knn_an_neighbors(X, n, NULL, 0, a->dim, rows->opts.metric, k, 1, 0, nbr, dist, msg, MSG), msg, err);
    if (s) goto done;
    s = core(knn_an_iid_test(nbr, n, k, k, (size_t)rows->opts.permutations, rows->opts.seed, &stat, &p, NULL, msg, MSG),
             msg, err);
    if (s) goto done;
    ((double *)field(result, 0, false))[out_row] = stat;
    ((double *)field(result, 1, false))[out_row] = p;
    ((bool *)field(result, 2, false))[out_row] = p < rows->opts.significance;
done:
    free(X);
    free(dist);
    free(nbr);
    return s;
}

/* Per-row scores of the drift test: mean position gap to the row's neighbours over its IID expectation. */
static knn_status iid_scores_fin(const an_rows *rows, duckdb_vector result, idx_t out_row, knn_error *err) {
    const an_acc *a = rows->acc;
    char msg[MSG];
    float *X = NULL, *dist = NULL;
    int64_t *nbr = NULL;
    size_t *src = NULL, n = 0, k = (size_t)a->k;
    double *scores = NULL, stat, p;
    knn_status s;
    if ((s = an_gather(rows, NULL, &X, NULL, &src, &n, err))) goto done;
    if (k >= n) {
        s = knn_error_set(err, KNN_EINVAL, "k = %zu needs at least k + 1 = %zu rows, got %zu; lower k", k, k + 1, n);
        goto done;
    }
    nbr = malloc(n * k * sizeof *nbr);
    dist = malloc(n * k * sizeof *dist);
    scores = malloc(n * sizeof *scores);
    if (!nbr || !dist || !scores) {
        s = knn_error_set(err, KNN_ENOMEM, "out of memory");
        goto done;
    }
    s = core(knn_an_neighbors(X, n, NULL, 0, a->dim, rows->opts.metric, k, 1, 0, nbr, dist, msg, MSG), msg, err);
    if (s) goto done;
    s = core(knn_an_iid_test(nbr, n, k, k, 1, 0, &stat, &p, scores, msg, MSG), msg, err);
    if (s) goto done;
    idx_t base;
    if ((s = an_list_begin(result, out_row, n, &base, err))) goto done;
    int64_t *f_pos = field(result, 0, true);
    double *f_s = field(result, 1, true);
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

/* ---- sampling ------------------------------------------------------------------------------------------------ */

static knn_status write_sample(duckdb_vector result, idx_t out_row, const int64_t *ids, const double *logw,
                               const int64_t *rank, size_t n, knn_error *err) {
    idx_t base;
    knn_status s = an_list_begin(result, out_row, n, &base, err);
    if (s) return s;
    int64_t *f_id = field(result, 0, true), *f_pick = field(result, 2, true);
    double *f_w = field(result, 1, true);
    duckdb_vector pv = field_vec(result, 2, true);
    for (size_t i = 0; i < n; i++) {
        f_id[base + i] = ids[i];
        f_w[base + i] = logw[i];
        f_pick[base + i] = rank[i] + 1;
        if (rank[i] < 0) an_set_null(pv, base + i);
    }
    return KNN_OK;
}

static knn_status importance_fin(const an_rows *rows, duckdb_vector result, idx_t out_row, knn_error *err) {
    const an_acc *a = rows->acc;
    char msg[MSG];
    float *R = NULL, *T = NULL, *Z = NULL, *dist = NULL;
    int64_t *rid = NULL, *nbr = NULL, *rank = NULL;
    double *logw = NULL;
    size_t nr = 0, nt = 0, k = (size_t)a->k, d = a->dim;
    knn_status s;
    if ((s = an_gather(rows, sel_no_aux, &R, &rid, NULL, &nr, err))) goto done;
    if ((s = an_gather(rows, sel_aux, &T, NULL, NULL, &nt, err))) goto done;
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
    nbr = malloc((nr + nt) * k * sizeof *nbr);
    dist = malloc((nr + nt) * k * sizeof *dist);
    logw = malloc(nr * sizeof *logw);
    rank = malloc(nr * sizeof *rank);
    if (!Z || !nbr || !dist || !logw || !rank) {
        s = knn_error_set(err, KNN_ENOMEM, "out of memory");
        goto done;
    }
    memcpy(Z, R, nr * d * sizeof *Z);
    memcpy(Z + nr * d, T, nt * d * sizeof *Z);
    s = core(knn_an_neighbors(Z, nr + nt, NULL, 0, d, rows->opts.metric, k, 1, 0, nbr, dist, msg, MSG), msg, err);
    if (s) goto done;
    s = core(knn_an_importance(nbr, nr, k, k, nt, logw, msg, MSG), msg, err);
    if (s) goto done;
    s = core(knn_an_gumbel_topk(logw, nr, (size_t)a->count_param, rows->opts.seed, rank, msg, MSG), msg, err);
    if (s) goto done;
    s = write_sample(result, out_row, rid, logw, rank, nr, err);
done:
    free(R); free(T); free(Z); free(dist); free(rid); free(nbr); free(rank); free(logw);
    return s;
}

static knn_status density_fin(const an_rows *rows, duckdb_vector result, idx_t out_row, knn_error *err) {
    const an_acc *a = rows->acc;
    char msg[MSG];
    float *X = NULL, *dist = NULL;
    int64_t *ids = NULL, *nbr = NULL, *rank = NULL;
    double *logw = NULL;
    size_t n = 0, k = (size_t)a->k;
    knn_status s;
    if ((s = an_gather(rows, NULL, &X, &ids, NULL, &n, err))) goto done;
    if (k >= n) {
        s = knn_error_set(err, KNN_EINVAL, "k = %zu needs at least k + 1 = %zu rows, got %zu; lower k", k, k + 1, n);
        goto done;
    }
    if ((size_t)a->count_param > n) {
        s = knn_error_set(err, KNN_EINVAL, "n = %lld is larger than the %zu rows; lower n", (long long)a->count_param, n);
        goto done;
    }
    nbr = malloc(n * k * sizeof *nbr);
    dist = malloc(n * k * sizeof *dist);
    logw = malloc(n * sizeof *logw);
    rank = malloc(n * sizeof *rank);
    if (!nbr || !dist || !logw || !rank) {
        s = knn_error_set(err, KNN_ENOMEM, "out of memory");
        goto done;
    }
    s = core(knn_an_neighbors(X, n, NULL, 0, a->dim, rows->opts.metric, k, 1, 0, nbr, dist, msg, MSG), msg, err);
    if (s) goto done;
    s = core(knn_an_density_logw(dist, n, k, k, rows->opts.metric, rows->opts.alpha, logw, msg, MSG), msg, err);
    if (s) goto done;
    s = core(knn_an_gumbel_topk(logw, n, (size_t)a->count_param, rows->opts.seed, rank, msg, MSG), msg, err);
    if (s) goto done;
    s = write_sample(result, out_row, ids, logw, rank, n, err);
done:
    free(X); free(dist); free(ids); free(nbr); free(rank); free(logw);
    return s;
}

/* ---- result types and the spec table ------------------------------------------------------------------------ */

static duckdb_logical_type struct_of(size_t n, const char *const *names, const duckdb_type *types, bool list) {
    duckdb_logical_type t[10];
    for (size_t i = 0; i < n; i++) {
        if (types[i] == DUCKDB_TYPE_LIST || types[i] == DUCKDB_TYPE_ARRAY) {
            /* LIST marks DOUBLE[], ARRAY marks FLOAT[] */
            duckdb_logical_type e = duckdb_create_logical_type(types[i] == DUCKDB_TYPE_LIST ? DUCKDB_TYPE_DOUBLE
                                                                                             : DUCKDB_TYPE_FLOAT);
            t[i] = duckdb_create_list_type(e);
            duckdb_destroy_logical_type(&e);
        } else {
            t[i] = duckdb_create_logical_type(types[i]);
        }
    }
    duckdb_logical_type st = duckdb_create_struct_type(t, (const char **)names, n);
    for (size_t i = 0; i < n; i++) duckdb_destroy_logical_type(&t[i]);
    if (!list) return st;
    duckdb_logical_type l = duckdb_create_list_type(st);
    duckdb_destroy_logical_type(&st);
    return l;
}

static duckdb_logical_type predict_type(bool regress) {
    if (regress) {
        const char *n[] = {"id", "value", "k_used"};
        const duckdb_type t[] = {DUCKDB_TYPE_BIGINT, DUCKDB_TYPE_DOUBLE, DUCKDB_TYPE_INTEGER};
        return struct_of(3, n, t, true);
    }
    const char *n[] = {"id", "label", "prob", "k_used"};
    const duckdb_type t[] = {DUCKDB_TYPE_BIGINT, DUCKDB_TYPE_BIGINT, DUCKDB_TYPE_DOUBLE, DUCKDB_TYPE_INTEGER};
    return struct_of(4, n, t, true);
}

static duckdb_logical_type impute_type(bool unused) {
    (void)unused;
    const char *n[] = {"id", "value", "lo", "hi", "draws"};
    const duckdb_type t[] = {DUCKDB_TYPE_BIGINT, DUCKDB_TYPE_DOUBLE, DUCKDB_TYPE_DOUBLE, DUCKDB_TYPE_DOUBLE,
                             DUCKDB_TYPE_LIST};
    return struct_of(5, n, t, true);
}

static duckdb_logical_type smote_type(bool unused) {
    (void)unused;
    const char *n[] = {"parent_id", "neighbor_id", "gap", "vec"};
    const duckdb_type t[] = {DUCKDB_TYPE_BIGINT, DUCKDB_TYPE_BIGINT, DUCKDB_TYPE_DOUBLE, DUCKDB_TYPE_ARRAY};
    return struct_of(4, n, t, true);
}

static duckdb_logical_type lid_type(bool unused) {
    (void)unused;
    const char *n[] = {"id", "lid", "r_k"};
    const duckdb_type t[] = {DUCKDB_TYPE_BIGINT, DUCKDB_TYPE_DOUBLE, DUCKDB_TYPE_DOUBLE};
    return struct_of(3, n, t, true);
}

static duckdb_logical_type double_type(bool unused) {
    (void)unused;
    return duckdb_create_logical_type(DUCKDB_TYPE_DOUBLE);
}

static duckdb_logical_type genpr_type(bool unused) {
    (void)unused;
    const char *n[] = {"precision", "recall", "density", "coverage", "p_precision", "p_recall", "sym_precision",
                       "sym_recall"};
    const duckdb_type t[] = {DUCKDB_TYPE_DOUBLE, DUCKDB_TYPE_DOUBLE, DUCKDB_TYPE_DOUBLE, DUCKDB_TYPE_DOUBLE,
                             DUCKDB_TYPE_DOUBLE, DUCKDB_TYPE_DOUBLE, DUCKDB_TYPE_DOUBLE, DUCKDB_TYPE_DOUBLE};
    return struct_of(8, n, t, false);
}

static duckdb_logical_type iid_type(bool unused) {
    (void)unused;
    const char *n[] = {"statistic", "p_value", "non_iid"};
    const duckdb_type t[] = {DUCKDB_TYPE_DOUBLE, DUCKDB_TYPE_DOUBLE, DUCKDB_TYPE_BOOLEAN};
    return struct_of(3, n, t, false);
}

static duckdb_logical_type iid_scores_type(bool unused) {
    (void)unused;
    const char *n[] = {"pos", "score"};
    const duckdb_type t[] = {DUCKDB_TYPE_BIGINT, DUCKDB_TYPE_DOUBLE};
    return struct_of(2, n, t, true);
}

static duckdb_logical_type sample_type(bool unused) {
    (void)unused;
    const char *n[] = {"id", "log_weight", "pick"};
    const duckdb_type t[] = {DUCKDB_TYPE_BIGINT, DUCKDB_TYPE_DOUBLE, DUCKDB_TYPE_BIGINT};
    return struct_of(3, n, t, true);
}

/* name, id, vec, aux, k, count columns; aux kind; option keys; finaliser; result type.
 * Overloads of one name are adjacent. */
const an_spec an_specs[] = {
    {"knn_predict", 0, 1, 2, 3, -1, AN_AUX_BIGINT, "metric,weighting,temperature,adaptive,support,index,ef,refine_ef",
     predict_fin, predict_type},
    {"knn_predict", 0, 1, 2, 3, -1, AN_AUX_DOUBLE, "metric,weighting,temperature,index,ef,refine_ef", predict_fin, predict_type},
    {"knn_impute", 0, 1, 2, 3, -1, AN_AUX_DOUBLE, "metric,weighting,draws,seed,lo,hi", impute_fin, impute_type},
    {"knn_smote", 0, 1, -1, 3, 2, AN_AUX_NONE, "metric,seed", smote_fin, smote_type},
    {"knn_lid", 0, 1, -1, 2, -1, AN_AUX_NONE, "metric", lid_fin, lid_type},
    {"knn_lid_estimate", -1, 0, -1, 1, -1, AN_AUX_NONE, "metric", lid_estimate_fin, double_type},
    {"knn_divergence", -1, 0, 1, 2, -1, AN_AUX_BOOL, "method,alpha", divergence_fin, double_type},
    {"knn_precision_recall", -1, 0, 1, 2, -1, AN_AUX_BOOL, "metric", genpr_fin, genpr_type},
    {"knn_iid_test", -1, 1, 0, 2, -1, AN_AUX_ORDER, "metric,permutations,seed,significance", iid_fin, iid_type},
    {"knn_iid_scores", -1, 1, 0, 2, -1, AN_AUX_ORDER, "metric", iid_scores_fin, iid_scores_type},
    {"knn_importance_sample", 0, 1, 2, 4, 3, AN_AUX_BOOL, "metric,seed", importance_fin, sample_type},
    {"knn_density_sample", 0, 1, -1, 3, 2, AN_AUX_NONE, "metric,alpha,seed", density_fin, sample_type},
};
const size_t an_n_specs = sizeof an_specs / sizeof an_specs[0];
