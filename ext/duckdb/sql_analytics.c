/* The collector behind the kNN analytics aggregates (knn_predict, knn_impute, knn_smote, knn_lid,
 * knn_divergence, knn_precision_recall, knn_iid_test, knn_importance_sample, knn_density_sample): the
 * kit hooks an_update (append rows to the group's accumulator), an_merge (concatenate) and an_finalize
 * (sort the rows into a canonical order and call the function's finaliser, sql_analytics_<topic>.c).
 * Arguments that configure the call (k, n, options) must be the same on every row of a group. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "analytics/knn_analytics.h"
#include "base/knn_options.h"
#include "knn_glue.h"
#include "sql_analytics.h"

DUCKDB_EXTENSION_EXTERN

void an_acc_free(void *p) {
    an_acc *a = p;
    free(a->vecs);
    free(a->ids);
    free(a->dval);
    free(a->ival);
    free(a->has_aux);
    free(a);
}

static knn_status acc_reserve(an_acc *a, size_t need, knn_error *err) {
    if (need <= a->cap) return KNN_OK;
    size_t cap = a->cap ? a->cap : 256;
    while (cap < need) cap *= 2;
    float *v = realloc(a->vecs, cap * a->dim * sizeof *v);
    if (v) a->vecs = v;
    int64_t *ids = realloc(a->ids, cap * sizeof *ids);
    if (ids) a->ids = ids;
    double *dv = realloc(a->dval, cap * sizeof *dv);
    if (dv) a->dval = dv;
    int64_t *iv = realloc(a->ival, cap * sizeof *iv);
    if (iv) a->ival = iv;
    unsigned char *h = realloc(a->has_aux, cap);
    if (h) a->has_aux = h;
    if (!v || !ids || !dv || !iv || !h) {
        return knn_error_set(err, KNN_ENOMEM, "out of memory collecting %zu rows of dimension %zu", cap, a->dim);
    }
    a->cap = cap;
    return KNN_OK;
}

/* ---- options -------------------------------------------------------------------------------------- */

static bool key_allowed(const char *keys, const char *key, size_t len) {
    const char *p = keys;
    while (*p) {
        const char *e = strchr(p, ',');
        size_t l = e ? (size_t)(e - p) : strlen(p);
        if (l == len && strncasecmp(p, key, len) == 0) return true;
        if (!e) break;
        p = e + 1;
    }
    return false;
}

static knn_status num_opt(const char *fn, const char *key, const char *val, double lo, double hi, double *out,
                          knn_error *err) {
    char *end;
    double x = strtod(val, &end);
    while (*end == ' ') end++;
    if (end == val || *end || !(x >= lo && x <= hi)) {
        return knn_error_set(err, KNN_EINVAL, "%s: option '%s' must be a number in [%g, %g], got '%s'", fn, key, lo,
                             hi, val);
    }
    *out = x;
    return KNN_OK;
}

knn_status an_opts_parse(const an_spec *spec, const char *fn, const char *text, an_opts *o, knn_error *err) {
    memset(o, 0, sizeof *o);
    strcpy(o->metric, "l2");
    o->weighting = 0;
    o->temperature = 1.0;
    o->seed = 0;
    o->draws = 0;
    o->support = 25;
    o->alpha = spec->aux == AN_AUX_BOOL ? 0.5 : 1.0;
    o->permutations = 100;
    o->q_lo = 0.05;
    o->q_hi = 0.95;
    o->significance = 0.05;
    o->bw_rule = KNN_KDE_SCOTT;
    o->power = 2.0;
    if (text == NULL) return KNN_OK;
    /* the shared reentrant tokenizer (base/knn_options.h): spans over text, nothing truncated */
    const size_t len = strlen(text);
    size_t at = 0;
    knn_span item, ks, vs;
    char tok[64], val[512];
    while (knn_option_next(text, len, ',', &at, &item)) {
        if (!knn_option_split(item, &ks, &vs)) {
            return knn_error_set(err, KNN_EINVAL, "%s: option '%.*s' needs a value, as in 'key=value'; accepted keys: %s",
                                 fn, (int)(item.n > 64 ? 64 : item.n), item.p, spec->keys);
        }
        if (!knn_span_copy(ks, tok, sizeof tok, 0) || !key_allowed(spec->keys, tok, strlen(tok))) {
            return knn_error_set(err, KNN_EINVAL, "%s: unknown option '%.*s'; accepted keys: %s", fn,
                                 (int)(ks.n > 64 ? 64 : ks.n), ks.p, spec->keys);
        }
        if (!knn_span_copy(vs, val, sizeof val, 0)) {
            return knn_error_set(err, KNN_EINVAL, "%s: the value of option '%s' is longer than %zu bytes", fn, tok,
                                 sizeof val - 1);
        }
        size_t vl = vs.n;
        double x = 0;
        if (!strcasecmp(tok, "metric") && (spec->flags & AN_CHORD) && !strcasecmp(val, "chord")) {
            o->metric_set = o->chord = true;
            strcpy(o->metric, "cosine");
        } else if (!strcasecmp(tok, "metric")) {
            knn_metric m;
            if (knn_metric_parse(val, vl, &m, err) != KNN_OK) {
                return knn_error_set(err, KNN_EINVAL, "%s: unknown metric '%s'; use %s", fn, val, KNN_METRIC_NAMES);
            }
            snprintf(o->metric, sizeof o->metric, "%s", knn_metric_name(m));
            o->metric_set = true;
            o->chord = false;
        } else if (!strcasecmp(tok, "alternative")) {
            if (!strcasecmp(val, "greater")) o->alternative = 0;
            else if (!strcasecmp(val, "less")) o->alternative = 1;
            else if (!strcasecmp(val, "two-sided") || !strcasecmp(val, "two_sided")) o->alternative = 2;
            else return knn_error_set(err, KNN_EINVAL, "%s: alternative must be greater, less or two-sided, got '%s'",
                                      fn, val);
        } else if (!strcasecmp(tok, "bandwidth")) {
            if (!strcasecmp(val, "scott")) o->bw_rule = KNN_KDE_SCOTT;
            else if (!strcasecmp(val, "silverman")) o->bw_rule = KNN_KDE_SILVERMAN;
            else {
                char *end;
                double h = strtod(val, &end);
                while (*end == ' ') end++;
                if (end == val || *end || !(h > 0) || !isfinite(h)) {
                    return knn_error_set(err, KNN_EINVAL, "%s: bandwidth must be a positive number, 'scott' or "
                                         "'silverman', got '%s'", fn, val);
                }
                o->bw_rule = KNN_KDE_GIVEN;
                o->bandwidth = h;
            }
        } else if (!strcasecmp(tok, "weighting")) {
            if (!strcasecmp(val, "uniform")) o->weighting = 0;
            else if (!strcasecmp(val, "distance") || !strcasecmp(val, "inverse_distance")) o->weighting = 1;
            else if (!strcasecmp(val, "softmax")) o->weighting = 2;
            else return knn_error_set(err, KNN_EINVAL, "%s: weighting must be uniform, distance or softmax, got '%s'",
                                      fn, val);
        } else if (!strcasecmp(tok, "method")) {
            if (!strcasecmp(val, "kl")) o->method = 0;
            else if (!strcasecmp(val, "renyi")) o->method = 1;
            else if (!strcasecmp(val, "ratio_kl")) o->method = 2;
            else if (!strcasecmp(val, "ratio_renyi")) o->method = 3;
            else return knn_error_set(err, KNN_EINVAL, "%s: method must be kl, renyi, ratio_kl or ratio_renyi, got '%s'",
                                      fn, val);
        } else if (!strcasecmp(tok, "adaptive")) {
            if (!strcasecmp(val, "true") || !strcmp(val, "1")) o->adaptive = true;
            else if (!strcasecmp(val, "false") || !strcmp(val, "0")) o->adaptive = false;
            else return knn_error_set(err, KNN_EINVAL, "%s: adaptive must be true or false, got '%s'", fn, val);
        } else if (!strcasecmp(tok, "index")) {
            if (knn_name_check(val, vl, err) != KNN_OK) return err->status; /* vl <= KNN_NAME_MAX */
            memcpy(o->index, val, vl);
            o->index[vl] = '\0';
        } else {
            if (!strcasecmp(tok, "temperature")) {
                if (num_opt(fn, tok, val, 1e-300, 1e300, &o->temperature, err)) return err->status;
            } else if (!strcasecmp(tok, "alpha")) {
                if (num_opt(fn, tok, val, -1e6, 1e6, &o->alpha, err)) return err->status;
            } else if (!strcasecmp(tok, "lo")) {
                if (num_opt(fn, tok, val, 0, 1, &o->q_lo, err)) return err->status;
            } else if (!strcasecmp(tok, "hi")) {
                if (num_opt(fn, tok, val, 0, 1, &o->q_hi, err)) return err->status;
            } else if (!strcasecmp(tok, "significance")) {
                if (num_opt(fn, tok, val, 0, 1, &o->significance, err)) return err->status;
            } else if (!strcasecmp(tok, "seed")) {
                if (num_opt(fn, tok, val, 0, 9.2e18, &x, err)) return err->status;
                o->seed = (uint64_t)x;
            } else if (!strcasecmp(tok, "draws")) {
                if (num_opt(fn, tok, val, 0, 10000, &x, err)) return err->status;
                o->draws = (int64_t)x;
            } else if (!strcasecmp(tok, "support")) {
                if (num_opt(fn, tok, val, 1, 1e6, &x, err)) return err->status;
                o->support = (int64_t)x;
            } else if (!strcasecmp(tok, "permutations")) {
                if (num_opt(fn, tok, val, 1, 1e6, &x, err)) return err->status;
                o->permutations = (int64_t)x;
            } else if (!strcasecmp(tok, "ef")) {
                if (num_opt(fn, tok, val, 1, 1e6, &x, err)) return err->status;
                o->ef = (int64_t)x;
            } else if (!strcasecmp(tok, "refine_ef")) {
                if (num_opt(fn, tok, val, 1, 1e6, &x, err)) return err->status;
                o->refine_ef = (int64_t)x;
            } else if (!strcasecmp(tok, "sample")) {
                if (num_opt(fn, tok, val, 2, 2147483647.0, &x, err)) return err->status;
                o->sample = (int64_t)x;
            } else if (!strcasecmp(tok, "power")) {
                if (num_opt(fn, tok, val, 0, 1e3, &o->power, err)) return err->status;
            }
        }
    }
    return KNN_OK;
}

/* ---- update / combine ----------------------------------------------------------------------------- */

/* How errors name a row: by its id when the function takes one. */
static const char *row_name(const an_spec *sp, int64_t id, char *buf, size_t cap) {
    if (sp->id_col < 0) return "a row";
    snprintf(buf, cap, "row %lld", (long long)id);
    return buf;
}

knn_status an_update(const knn_agg_ctx *cx, duckdb_data_chunk input, duckdb_aggregate_state *states, knn_error *err) {
    const an_spec *sp = cx->def->data;
    idx_t n = duckdb_data_chunk_get_size(input);
    idx_t ncols = duckdb_data_chunk_get_column_count(input);
    int opt_col = -1;
    {
        int last = sp->vec_col;
        if (sp->id_col > last) last = sp->id_col;
        if (sp->aux_col > last) last = sp->aux_col;
        if (sp->k_col > last) last = sp->k_col;
        if (sp->count_col > last) last = sp->count_col;
        if ((idx_t)(last + 1) < ncols) opt_col = last + 1;
    }
    knn_vreader vr;
    float *tmp = NULL;
    size_t tmp_dim = 0;
    if (knn_vreader_init(&vr, duckdb_data_chunk_get_vector(input, sp->vec_col), cx->def->name, "vec", err)) goto done;
    duckdb_vector idv = sp->id_col >= 0 ? duckdb_data_chunk_get_vector(input, sp->id_col) : NULL;
    duckdb_vector auxv = sp->aux_col >= 0 ? duckdb_data_chunk_get_vector(input, sp->aux_col) : NULL;
    duckdb_vector kv = sp->k_col >= 0 ? duckdb_data_chunk_get_vector(input, sp->k_col) : NULL;
    duckdb_vector cv = sp->count_col >= 0 ? duckdb_data_chunk_get_vector(input, sp->count_col) : NULL;
    duckdb_vector ov = opt_col >= 0 ? duckdb_data_chunk_get_vector(input, opt_col) : NULL;
    const uint64_t *aux_valid = auxv ? duckdb_vector_get_validity(auxv) : NULL;
    const void *aux_data = auxv ? duckdb_vector_get_data(auxv) : NULL;
    for (idx_t i = 0; i < n; i++) {
        knn_agg_state *st = knn_agg_at(states, i);
        int64_t id = 0; /* functions without ids order rows by their values alone */
        if (idv && !knn_get_bigint(idv, i, &id)) continue;
        bool has_aux = auxv && knn_valid(aux_valid, i);
        if ((sp->aux == AN_AUX_BOOL || sp->aux == AN_AUX_ORDER) && !has_aux) continue;
        size_t len = knn_vreader_len(&vr, i);
        if (!knn_valid(vr.validity, i)) continue; /* NULL vector: row skipped */
        int64_t k = 0, cnt = 0;
        if (kv && !knn_get_bigint(kv, i, &k)) {
            knn_error_set(err, KNN_EINVAL, "k must not be NULL; pass a positive integer such as 10");
            goto done;
        }
        if (kv && k <= 0) {
            knn_error_set(err, KNN_EINVAL, "k must be >= 1, got %lld", (long long)k);
            goto done;
        }
        if (cv) {
            if (!knn_get_bigint(cv, i, &cnt)) {
                knn_error_set(err, KNN_EINVAL, "n must not be NULL; pass the number of rows to produce");
                goto done;
            }
            if (cnt < 0) {
                knn_error_set(err, KNN_EINVAL, "n must be >= 0, got %lld", (long long)cnt);
                goto done;
            }
        }
        const char *os = NULL;
        size_t ol = 0;
        bool has_o = ov && knn_get_varchar(ov, i, &os, &ol);
        if (st->acc == NULL) {
            an_acc *a = calloc(1, sizeof *a);
            if (!a) {
                knn_error_set(err, KNN_ENOMEM, "out of memory");
                goto done;
            }
            a->spec = sp;
            a->fn = cx->def->name;
            a->reg = cx->reg;
            a->dim = len;
            a->k = k;
            a->count_param = cnt;
            a->has_opts = has_o;
            if (has_o) {
                if (ol >= sizeof a->opt_text) {
                    free(a);
                    knn_error_set(err, KNN_EINVAL, "the options string is longer than %zu bytes",
                                  sizeof a->opt_text - 1);
                    goto done;
                }
                memcpy(a->opt_text, os, ol);
                a->opt_text[ol] = '\0';
                an_opts o;
                if (an_opts_parse(sp, a->fn, a->opt_text, &o, err) != KNN_OK) {
                    free(a);
                    goto done;
                }
            }
            if (len == 0) {
                free(a);
                knn_error_set(err, KNN_EDATA, "the vector of row %lld is empty; vectors need at least one element",
                              (long long)id);
                goto done;
            }
            st->acc = a;
        } else {
            an_acc *a = st->acc;
            if (a->k != k || a->count_param != cnt || a->has_opts != has_o ||
                (has_o && (strlen(a->opt_text) != ol || memcmp(a->opt_text, os, ol) != 0))) {
                knn_error_set(err, KNN_EINVAL, "k, n and the options must be the same for every row of a group; "
                              "pass constants");
                goto done;
            }
        }
        an_acc *a = st->acc;
        char rn[48];
        if (tmp_dim < a->dim) {
            free(tmp);
            tmp = malloc(a->dim * sizeof *tmp);
            tmp_dim = a->dim;
            if (!tmp) {
                knn_error_set(err, KNN_ENOMEM, "out of memory");
                goto done;
            }
        }
        const float *v;
        size_t got = 0;
        knn_row_state rs = knn_vreader_get(&vr, i, a->dim, tmp, &v, &got);
        if (rs == KNN_ROW_DIM_MISMATCH) {
            knn_error_set(err, KNN_EDATA, "dimension mismatch: the vector of %s has %zu elements but the first "
                          "row's has %zu; every vector of a group needs the same dimension",
                          row_name(sp, id, rn, sizeof rn), got, a->dim);
            goto done;
        }
        if (rs == KNN_ROW_NULL_ELEMENT) {
            knn_error_set(err, KNN_EDATA, "the vector of %s contains a NULL element", row_name(sp, id, rn, sizeof rn));
            goto done;
        }
        for (size_t j = 0; j < a->dim; j++) {
            if (!isfinite(v[j])) {
                knn_error_set(err, KNN_EDATA, "the vector of %s has a NaN or Inf at position %zu; vectors "
                              "must be finite", row_name(sp, id, rn, sizeof rn), j);
                goto done;
            }
        }
        if (acc_reserve(a, a->n + 1, err) != KNN_OK) goto done;
        size_t r = a->n++;
        memcpy(a->vecs + r * a->dim, v, a->dim * sizeof(float));
        a->ids[r] = id;
        a->has_aux[r] = has_aux;
        a->dval[r] = 0;
        a->ival[r] = 0;
        if (has_aux) {
            switch (sp->aux) {
            case AN_AUX_DOUBLE: {
                double x = ((const double *)aux_data)[i];
                if (!isfinite(x)) {
                    knn_error_set(err, KNN_EDATA, "the value of %s is NaN or Inf; use NULL for a missing "
                                  "value", row_name(sp, id, rn, sizeof rn));
                    goto done;
                }
                a->dval[r] = x;
                break;
            }
            case AN_AUX_BIGINT:
            case AN_AUX_ORDER:
                a->ival[r] = ((const int64_t *)aux_data)[i];
                a->dval[r] = (double)a->ival[r];
                break;
            case AN_AUX_BOOL:
                a->ival[r] = ((const bool *)aux_data)[i] ? 1 : 0;
                a->dval[r] = (double)a->ival[r];
                break;
            default:
                break;
            }
        }
    }
done:
    free(tmp);
    return err->status;
}

knn_status an_merge(const knn_agg_ctx *cx, knn_agg_state *source, knn_agg_state *target, knn_error *err) {
    (void)cx;
    an_acc *src = source->acc;
    if (src->n == 0) return KNN_OK;
    if (target->acc == NULL) {
        an_acc *a = calloc(1, sizeof *a);
        if (!a) return knn_error_set(err, KNN_ENOMEM, "out of memory");
        *a = *src;
        a->vecs = NULL;
        a->ids = NULL;
        a->dval = NULL;
        a->ival = NULL;
        a->has_aux = NULL;
        a->n = a->cap = 0;
        target->acc = a;
    }
    an_acc *d = target->acc;
    if (d->dim != src->dim) {
        return knn_error_set(err, KNN_EDATA, "dimension mismatch: vectors of %zu and %zu elements in one group",
                             d->dim, src->dim);
    }
    if (d->k != src->k || d->count_param != src->count_param || d->has_opts != src->has_opts ||
        strcmp(d->opt_text, src->opt_text) != 0) {
        return knn_error_set(err, KNN_EINVAL, "k, n and the options must be the same for every row of a group");
    }
    if (acc_reserve(d, d->n + src->n, err) != KNN_OK) return err->status;
    memcpy(d->vecs + d->n * d->dim, src->vecs, src->n * src->dim * sizeof(float));
    memcpy(d->ids + d->n, src->ids, src->n * sizeof(int64_t));
    memcpy(d->dval + d->n, src->dval, src->n * sizeof(double));
    memcpy(d->ival + d->n, src->ival, src->n * sizeof(int64_t));
    memcpy(d->has_aux + d->n, src->has_aux, src->n);
    d->n += src->n;
    return KNN_OK;
}

/* ---- finalize -------------------------------------------------------------------------------------- */

typedef struct sort_key {
    const an_acc *a;
    size_t row;
} sort_key;

static int cmp_rows(const void *x, const void *y) {
    const sort_key *p = x, *q = y;
    const an_acc *a = p->a;
    size_t i = p->row, j = q->row;
    if (a->ids[i] != a->ids[j]) return a->ids[i] < a->ids[j] ? -1 : 1;
    if (a->has_aux[i] != a->has_aux[j]) return a->has_aux[i] < a->has_aux[j] ? -1 : 1;
    if (a->dval[i] != a->dval[j]) return a->dval[i] < a->dval[j] ? -1 : 1;
    if (a->ival[i] != a->ival[j]) return a->ival[i] < a->ival[j] ? -1 : 1;
    int c = memcmp(a->vecs + i * a->dim, a->vecs + j * a->dim, a->dim * sizeof(float));
    if (c) return c;
    return (i > j) - (i < j);
}

knn_status an_gather(const an_rows *rows, bool (*sel)(const an_acc *, size_t), float **vecs, int64_t **ids,
                     size_t **src, size_t *n, knn_error *err) {
    const an_acc *a = rows->acc;
    size_t m = 0;
    for (size_t i = 0; i < a->n; i++) m += sel == NULL || sel(a, rows->perm[i]);
    *n = m;
    float *v = vecs ? malloc((m ? m : 1) * a->dim * sizeof *v) : NULL;
    int64_t *id = ids ? malloc((m ? m : 1) * sizeof *id) : NULL;
    size_t *s = src ? malloc((m ? m : 1) * sizeof *s) : NULL;
    if ((vecs && !v) || (ids && !id) || (src && !s)) {
        free(v);
        free(id);
        free(s);
        return knn_error_set(err, KNN_ENOMEM, "out of memory gathering %zu rows", m);
    }
    size_t o = 0;
    for (size_t i = 0; i < a->n; i++) {
        size_t r = rows->perm[i];
        if (sel && !sel(a, r)) continue;
        if (v) memcpy(v + o * a->dim, a->vecs + r * a->dim, a->dim * sizeof(float));
        if (id) id[o] = a->ids[r];
        if (s) s[o] = r;
        o++;
    }
    if (vecs) *vecs = v;
    if (ids) *ids = id;
    if (src) *src = s;
    return KNN_OK;
}

bool an_sel_aux(const an_acc *a, size_t r) { return a->has_aux[r] && a->ival[r] != 0; }
bool an_sel_no_aux(const an_acc *a, size_t r) { return !a->has_aux[r] || a->ival[r] == 0; }
bool an_sel_labelled(const an_acc *a, size_t r) { return a->has_aux[r]; }
bool an_sel_unlabelled(const an_acc *a, size_t r) { return !a->has_aux[r]; }

knn_status an_core(int status, const char *msg, knn_error *err) {
    if (status == 0) return KNN_OK;
    return knn_error_set(err, (knn_status)status, "%s", msg);
}

knn_status an_self_knn(const an_rows *rows, const float *X, size_t n, size_t k, const char *what, int64_t **nbr,
                       float **dist, knn_error *err) {
    *nbr = NULL;
    *dist = NULL;
    if (k >= n) {
        return knn_error_set(err, KNN_EINVAL, "k = %zu needs at least k + 1 = %zu %s, got %zu; lower k", k, k + 1,
                             what, n);
    }
    *nbr = malloc(n * k * sizeof **nbr);
    *dist = malloc(n * k * sizeof **dist);
    if (!*nbr || !*dist) return knn_error_set(err, KNN_ENOMEM, "out of memory");
    char msg[AN_MSG];
    return an_core(knn_an_neighbors(X, n, NULL, 0, rows->acc->dim, rows->opts.metric, k, 1, 0, *nbr, *dist, msg,
                                    AN_MSG), msg, err);
}

knn_status an_finalize(const knn_agg_ctx *cx, knn_agg_state *st, duckdb_vector result, idx_t row, knn_error *err) {
    const an_spec *sp = cx->def->data;
    const an_acc *a = st->acc;
    if (a == NULL || a->n == 0) {
        knn_result_null(result, row);
        return KNN_OK;
    }
    an_rows rows;
    memset(&rows, 0, sizeof rows);
    rows.acc = a;
    sort_key *keys = malloc(a->n * sizeof *keys);
    rows.perm = malloc(a->n * sizeof *rows.perm);
    if (!keys || !rows.perm) {
        free(keys);
        free(rows.perm);
        return knn_error_set(err, KNN_ENOMEM, "out of memory sorting %zu rows", a->n);
    }
    for (size_t r = 0; r < a->n; r++) keys[r] = (sort_key){a, r};
    qsort(keys, a->n, sizeof *keys, cmp_rows);
    for (size_t r = 0; r < a->n; r++) rows.perm[r] = keys[r].row;
    free(keys);
    if (an_opts_parse(sp, a->fn, a->has_opts ? a->opt_text : NULL, &rows.opts, err) == KNN_OK) {
        sp->finalize(&rows, result, row, err);
    }
    free(rows.perm);
    return err->status;
}
