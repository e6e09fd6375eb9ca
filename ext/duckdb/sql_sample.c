/* Sampling and selection in SQL.
 *
 *   knn_sample_agg(id, vec, n, method [, seed [, options]])       aggregate over any relation
 *   knn_sample_weighted(id, weight, n [, seed [, replace]])         aggregate, weighted rows
 *       -> LIST(STRUCT(id BIGINT, weight DOUBLE, pick_order BIGINT, score DOUBLE, cluster BIGINT))
 *   knn_sample(name, n, method := 'kcenter', seed := 0, options := '', lo := NULL, hi := NULL)
 *       table function over a named index (window-aware through its labels)
 *       -> rows (id BIGINT, weight DOUBLE, pick_order BIGINT, score DOUBLE, cluster BIGINT)
 *
 * The aggregates collect (id, vector or weight) per group; DuckDB's parallel scan decides the row order
 * within a state, so finalize sorts rows by id first: a sample depends only on the set of rows, the
 * arguments and the seed. Ids must be unique within a group. NULL ids and NULL vectors are skipped; a
 * NULL weight is an error (a weight is required per row). The samplers are in ext/core/knn_sample_*.c;
 * options are the core's "key=value, ..." text, plus 'start=<id>/<id>/...' for kcenter (ids picked
 * first, e.g. an already labelled set), which this layer maps to row positions. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "duckdb_extension.h"
#include "knn_api.h"
#include "knn_glue.h"
#include "knn_kit.h"
#include "knn_memlimit.h"
#include "index/knn_registry.h"
#include "sample/knn_sample_source.h"
#include "sql_register.h"

DUCKDB_EXTENSION_EXTERN

#define METHOD_MAX 32
#define OPTIONS_MAX 4096

typedef struct sample_acc {
    int weighted;
    size_t dim;
    size_t rows, cap;
    int64_t *ids;
    float *vecs;     /* rows x dim (vector aggregate) */
    double *weights; /* rows (weighted aggregate) */
    int64_t n;
    int64_t seed;
    int replace;
    char method[METHOD_MAX + 1];
    char options[OPTIONS_MAX + 1];
    float *tmp; /* dim: conversion buffer */
} sample_acc;

static void acc_free(void *p) {
    sample_acc *a = p;
    free(a->ids);
    free(a->vecs);
    free(a->weights);
    free(a->tmp);
    free(a);
}

static knn_status acc_reserve(sample_acc *a, size_t need, knn_error *err) {
    if (need <= a->cap) return KNN_OK;
    size_t cap = a->cap ? a->cap : 1024;
    while (cap < need) cap *= 2;
    int64_t *ids = realloc(a->ids, cap * sizeof *ids);
    if (ids) a->ids = ids;
    if (a->weighted) {
        double *w = realloc(a->weights, cap * sizeof *w);
        if (w) a->weights = w;
        if (!ids || !w) return knn_error_set(err, KNN_ENOMEM, "out of memory collecting %zu rows", need);
    } else {
        float *v = realloc(a->vecs, cap * a->dim * sizeof *v);
        if (v) a->vecs = v;
        if (!ids || !v) return knn_error_set(err, KNN_ENOMEM, "out of memory collecting %zu rows", need);
    }
    a->cap = cap;
    return KNN_OK;
}

/* Per-group parameters of one row: n, method, seed, options (vector aggregate) or n, seed, replace. */
typedef struct row_params {
    int64_t n;
    int64_t seed;
    int replace;
    const char *method;
    size_t method_len;
    const char *options;
    size_t options_len;
} row_params;

static knn_status read_params(const char *fn, int weighted, duckdb_data_chunk input, idx_t row, row_params *p,
                              knn_error *err) {
    idx_t ncol = duckdb_data_chunk_get_column_count(input);
    memset(p, 0, sizeof *p);
    if (!knn_get_bigint(duckdb_data_chunk_get_vector(input, 2), row, &p->n)) {
        return knn_error_set(err, KNN_EINVAL, "%s: n must not be NULL; pass the number of rows to pick", fn);
    }
    if (p->n <= 0) {
        return knn_error_set(err, KNN_EINVAL, "%s: n must be >= 1, got %lld", fn, (long long)p->n);
    }
    idx_t seed_col = weighted ? 3 : 4;
    if (!weighted) {
        if (!knn_get_varchar(duckdb_data_chunk_get_vector(input, 3), row, &p->method, &p->method_len)) {
            return knn_error_set(err, KNN_EINVAL, "%s: method must not be NULL; use one of %s", fn,
                                 knn_sample_methods());
        }
        if (p->method_len > METHOD_MAX) {
            return knn_error_set(err, KNN_EINVAL, "%s: unknown sampling method '%.*s'; use one of %s", fn, 40,
                                 p->method, knn_sample_methods());
        }
    }
    if (ncol > seed_col && !knn_get_bigint(duckdb_data_chunk_get_vector(input, seed_col), row, &p->seed)) {
        return knn_error_set(err, KNN_EINVAL, "%s: seed must not be NULL; omit it for seed 0", fn);
    }
    if (ncol > seed_col + 1) {
        duckdb_vector v = duckdb_data_chunk_get_vector(input, seed_col + 1);
        if (weighted) {
            if (!knn_valid(duckdb_vector_get_validity(v), row)) {
                return knn_error_set(err, KNN_EINVAL, "%s: replace must not be NULL; pass true or false", fn);
            }
            p->replace = ((const bool *)duckdb_vector_get_data(v))[row] ? 1 : 0;
        } else if (knn_get_varchar(v, row, &p->options, &p->options_len)) {
            if (p->options_len > OPTIONS_MAX) {
                return knn_error_set(err, KNN_EINVAL, "%s: options are longer than %d bytes", fn, OPTIONS_MAX);
            }
        }
    }
    return KNN_OK;
}

static bool same_params(const sample_acc *a, const row_params *p) {
    if (a->n != p->n || a->seed != p->seed || a->replace != p->replace) return false;
    if (a->weighted) return true;
    return strlen(a->method) == p->method_len && memcmp(a->method, p->method, p->method_len) == 0 &&
           strlen(a->options) == p->options_len && (p->options_len == 0 || memcmp(a->options, p->options, p->options_len) == 0);
}

static sample_acc *acc_new(int weighted, size_t dim, const row_params *p, knn_error *err) {
    sample_acc *a = calloc(1, sizeof *a);
    if (a == NULL || (!weighted && (a->tmp = malloc(dim * sizeof(float))) == NULL)) {
        free(a);
        knn_error_set(err, KNN_ENOMEM, "out of memory");
        return NULL;
    }
    a->weighted = weighted;
    a->dim = dim;
    a->n = p->n;
    a->seed = p->seed;
    a->replace = p->replace;
    if (p->method) memcpy(a->method, p->method, p->method_len);
    if (p->options) memcpy(a->options, p->options, p->options_len);
    return a;
}

/* data of the two aggregates: whether rows carry a weight (else a vector) */
static const int by_weight = 1, by_vector = 0;

static knn_status sample_update(const knn_agg_ctx *cx, duckdb_data_chunk input, duckdb_aggregate_state *states,
                                knn_error *err) {
    const int weighted = *(const int *)cx->def->data;
    const char *fn = cx->def->name;
    idx_t n = duckdb_data_chunk_get_size(input);
    duckdb_vector idv = duckdb_data_chunk_get_vector(input, 0);
    const int64_t *id_data = duckdb_vector_get_data(idv);
    const uint64_t *id_valid = duckdb_vector_get_validity(idv);
    duckdb_vector second = duckdb_data_chunk_get_vector(input, 1);
    knn_vreader vr;
    const double *w_data = NULL;
    const uint64_t *w_valid = NULL;
    if (weighted) {
        w_data = duckdb_vector_get_data(second);
        w_valid = duckdb_vector_get_validity(second);
    } else if (knn_vreader_init(&vr, second, fn, "vec", err) != KNN_OK) {
        goto done;
    }
    for (idx_t i = 0; i < n; i++) {
        if (!knn_valid(id_valid, i)) continue;
        if (weighted && !knn_valid(w_valid, i)) {
            knn_error_set(err, KNN_EDATA, "%s: the weight of row id %lld is NULL; every row needs a weight "
                          "(filter NULLs out or COALESCE them)", fn, (long long)id_data[i]);
            goto done;
        }
        size_t len = weighted ? 0 : knn_vreader_len(&vr, i);
        if (!weighted && len == 0 && !knn_valid(vr.validity, i)) continue;
        knn_agg_state *st = knn_agg_at(states, i);
        row_params p;
        if (read_params(fn, weighted, input, i, &p, err) != KNN_OK) goto done;
        if (st->acc == NULL) {
            if (!weighted && len == 0) {
                knn_error_set(err, KNN_EDATA, "%s: the vector of row id %lld is empty", fn, (long long)id_data[i]);
                goto done;
            }
            st->acc = acc_new(weighted, len, &p, err);
            if (st->acc == NULL) goto done;
        } else if (!same_params(st->acc, &p)) {
            knn_error_set(err, KNN_EINVAL, "%s: n, method, seed and options must be the same for every row of a "
                          "group", fn);
            goto done;
        }
        sample_acc *a = st->acc;
        if (acc_reserve(a, a->rows + 1, err) != KNN_OK) goto done;
        if (weighted) {
            a->weights[a->rows] = w_data[i];
        } else {
            const float *v;
            size_t got = 0;
            knn_row_state rs = knn_vreader_get(&vr, i, a->dim, a->tmp, &v, &got);
            if (rs == KNN_ROW_NULL_ELEMENT) {
                knn_error_set(err, KNN_EDATA, "%s: the vector of row id %lld contains a NULL element; vectors must "
                              "be complete", fn, (long long)id_data[i]);
                goto done;
            }
            if (rs == KNN_ROW_DIM_MISMATCH) {
                knn_error_set(err, KNN_EDATA, "%s: dimension mismatch: the vector of row id %lld has %zu elements "
                              "but earlier rows have %zu; every vector must have the same dimension", fn,
                              (long long)id_data[i], got, a->dim);
                goto done;
            }
            memcpy(a->vecs + a->rows * a->dim, v, a->dim * sizeof(float));
        }
        a->ids[a->rows++] = id_data[i];
    }
done:
    return err->status;
}

static knn_status sample_merge(const knn_agg_ctx *cx, knn_agg_state *source, knn_agg_state *target, knn_error *err) {
    (void)cx;
    sample_acc *src = source->acc;
    if (target->acc == NULL) { /* take the source over: DuckDB destroys it afterwards, so leave it empty */
        target->acc = src;
        source->acc = NULL;
        return KNN_OK;
    }
    sample_acc *d = target->acc;
    row_params p = {src->n, src->seed, src->replace, src->method, strlen(src->method), src->options,
                    strlen(src->options)};
    if (!same_params(d, &p) || d->dim != src->dim) {
        knn_error_set(err, KNN_EINVAL, "n, method, seed, options and the dimension must be the same for every "
                      "row of a group");
    } else if (acc_reserve(d, d->rows + src->rows, err) == KNN_OK) {
        memcpy(d->ids + d->rows, src->ids, src->rows * sizeof *d->ids);
        if (d->weighted) memcpy(d->weights + d->rows, src->weights, src->rows * sizeof *d->weights);
        else memcpy(d->vecs + d->rows * d->dim, src->vecs, src->rows * d->dim * sizeof *d->vecs);
        d->rows += src->rows;
    }
    if (err->status != KNN_OK) knn_error_prefix("knn_sample_agg", err); /* both aggregates say knn_sample_agg */
    return err->status;
}

/* ---- running a sampler over collected rows ------------------------------------------------------ */

static const int64_t *find_id(const int64_t *sorted, size_t n, int64_t id) {
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (sorted[mid] < id) lo = mid + 1;
        else hi = mid;
    }
    return lo < n && sorted[lo] == id ? sorted + lo : NULL;
}

/* Splits 'start=a/b/c' out of options (into start positions against sorted ids); rest keeps the others. */
static knn_status take_start(const char *options, const int64_t *ids, size_t n, char *rest, size_t rest_cap,
                             int64_t **start, size_t *n_start, knn_error *err) {
    *start = NULL;
    *n_start = 0;
    snprintf(rest, rest_cap, "%s", options);
    char *p = strstr(rest, "start");
    while (p && p != rest && p[-1] != ',' && p[-1] != ' ') p = strstr(p + 1, "start");
    if (p == NULL) return KNN_OK;
    char *eq = p + 5;
    while (*eq == ' ') eq++;
    if (*eq != '=') return KNN_OK;
    char *end = strchr(eq, ',');
    size_t cnt = 1;
    for (char *q = eq + 1; q < (end ? end : eq + strlen(eq)); q++) cnt += *q == '/';
    int64_t *pos = malloc(cnt * sizeof *pos);
    if (pos == NULL) return knn_error_set(err, KNN_ENOMEM, "out of memory");
    char *q = eq + 1;
    size_t m = 0;
    while (m < cnt) {
        char *e2;
        long long id = strtoll(q, &e2, 10);
        if (e2 == q) {
            free(pos);
            return knn_error_set(err, KNN_EINVAL, "option 'start' takes ids separated by '/', e.g. 'start=3/17'");
        }
        const int64_t *hit = find_id(ids, n, id);
        if (hit == NULL) {
            free(pos);
            return knn_error_set(err, KNN_EINVAL, "starting id %lld is not among the rows sampled", id);
        }
        pos[m++] = hit - ids;
        while (*e2 == ' ') e2++;
        q = *e2 == '/' ? e2 + 1 : e2;
    }
    /* remove the item from rest */
    if (end) memmove(p, end + 1, strlen(end + 1) + 1);
    else *p = '\0';
    *start = pos;
    *n_start = cnt;
    return KNN_OK;
}

/* Sorts rows by id (checking uniqueness) and runs the sampler; ids/vecs/weights are reordered in place. */
static knn_status run_sampler(const char *fn, int64_t *ids, float *vecs, double *weights, size_t rows, size_t dim,
                              int64_t n, const char *method, uint64_t seed, const char *options,
                              knn_sample_result **out, knn_error *err) {
    *out = NULL;
    knn_status s = KNN_OK;
    knn_id_pos *order = malloc((rows ? rows : 1) * sizeof *order);
    float *sv = vecs ? malloc((rows ? rows : 1) * dim * sizeof *sv) : NULL;
    double *sw = weights ? malloc((rows ? rows : 1) * sizeof *sw) : NULL;
    int64_t *start = NULL;
    size_t n_start = 0;
    char *rest = malloc(OPTIONS_MAX + 1);
    if (!order || (vecs && !sv) || (weights && !sw) || !rest) {
        s = knn_error_set(err, KNN_ENOMEM, "%s: out of memory for %zu rows", fn, rows);
        goto cleanup;
    }
    for (size_t i = 0; i < rows; i++) order[i] = (knn_id_pos){ids[i], i};
    qsort(order, rows, sizeof *order, knn_id_pos_cmp);
    for (size_t i = 0; i < rows; i++) {
        if (i && order[i].id == order[i - 1].id) {
            s = knn_error_set(err, KNN_EDATA, "%s: id %lld appears more than once; ids must be unique within a group",
                              fn, (long long)order[i].id);
            goto cleanup;
        }
        if (sv) {
            const float *v = vecs + order[i].pos * dim;
            for (size_t j = 0; j < dim; j++) {
                if (!isfinite(v[j])) {
                    s = knn_error_set(err, KNN_EDATA, "%s: the vector of row id %lld has a NaN or Inf at element %zu; "
                                      "vectors must be finite", fn, (long long)order[i].id, j);
                    goto cleanup;
                }
            }
            memcpy(sv + i * dim, v, dim * sizeof *sv);
        }
        if (sw) {
            double w = weights[order[i].pos];
            if (!isfinite(w) || w < 0) {
                s = knn_error_set(err, KNN_EDATA, "%s: the weight of row id %lld is %g; weights must be finite and "
                                  ">= 0 (rows with weight 0 are never picked)", fn, (long long)order[i].id, w);
                goto cleanup;
            }
            sw[i] = w;
        }
    }
    for (size_t i = 0; i < rows; i++) ids[i] = order[i].id;
    s = take_start(options ? options : "", ids, rows, rest, OPTIONS_MAX + 1, &start, &n_start, err);
    if (s != KNN_OK) goto cleanup;
    char msg[KNN_ERROR_MSG_LEN];
    int rc = knn_sample_run(sv, rows, dim, sw, (size_t)n, method, seed, rest, start, n_start, 0, out, msg, sizeof msg);
    if (rc != 0) s = knn_error_set(err, (knn_status)rc, "%s: %s", fn, msg);
cleanup:
    free(order);
    free(sv);
    free(sw);
    free(start);
    free(rest);
    return s;
}

/* ---- writing picks ------------------------------------------------------------------------------- */

/* Picks [from, from + n) of r as rows [at, at + n) of the five columns id, weight, pick_order, score,
 * cluster (vectors of a result chunk, or the STRUCT children of a LIST). */
static void put_picks(duckdb_vector cols[5], idx_t at, const knn_sample_result *r, const int64_t *ids, size_t from,
                      size_t n) {
    int64_t *id_out = duckdb_vector_get_data(cols[0]);
    double *w_out = duckdb_vector_get_data(cols[1]);
    int64_t *ord_out = duckdb_vector_get_data(cols[2]);
    double *score_out = duckdb_vector_get_data(cols[3]);
    int64_t *clus_out = duckdb_vector_get_data(cols[4]);
    for (size_t i = 0; i < n; i++) {
        size_t p = from + i;
        idx_t pos = at + i;
        id_out[pos] = ids[r->index[p]];
        w_out[pos] = r->weight[p];
        ord_out[pos] = (int64_t)p + 1;
        if (isnan(r->score[p])) knn_set_null(cols[3], pos);
        else score_out[pos] = r->score[p];
        if (r->cluster[p] < 0) knn_set_null(cols[4], pos);
        else clus_out[pos] = r->cluster[p];
    }
}

/* Bytes a pick costs from the sampler's result to the output list: index, weight, score and cluster
 * (8 bytes each), then the list entry's struct fields in DuckDB's vectors. */
#define SAMPLE_PICK_BYTES 64.0

/* Bytes the sampler may fill: the registry's default cap (DuckDB's memory_limit as read at load, at most
 * 80% of the RAM, so a limit DuckDB reports as unlimited cannot let n alone size an allocation). */
static double memory_cap(knn_registry *reg) {
    size_t cap = knn_registry_default_memory_limit(reg);
    return cap ? (double)cap : (double)knn_memlimit_ram_cap();
}

/* One LIST(STRUCT) per state. */
static knn_status sample_finalize(const knn_agg_ctx *cx, knn_agg_state *st, duckdb_vector result, idx_t row,
                                  knn_error *err) {
    sample_acc *a = st->acc;
    if (a == NULL || a->rows == 0) {
        knn_result_null(result, row);
        return KNN_OK;
    }
    const char *fn = a->weighted ? "knn_sample_weighted" : "knn_sample_agg";
    /* Picks are bounded by the rows, except draws with replacement, which n alone sizes: check what they
     * will hold (result arrays, then the output list) against DuckDB's memory_limit before allocating. */
    size_t picks = a->weighted && a->replace ? (size_t)a->n : ((size_t)a->n < a->rows ? (size_t)a->n : a->rows);
    const double need = (double)picks * SAMPLE_PICK_BYTES, cap = memory_cap(cx->reg);
    if (cap > 0 && need > cap) {
        return knn_error_set(err, KNN_ENOMEM, "%s: %zu picks need about %.3g GB, over the %.3g GB this process may use "
                             "(DuckDB's memory_limit when knnsql loaded, at most 80%% of the RAM); ask for fewer picks "
                             "(n)", fn, picks, need / 1e9, cap / 1e9);
    }
    knn_sample_result *r = NULL;
    char opts[32];
    snprintf(opts, sizeof opts, "replace=%d", a->replace);
    if (run_sampler(fn, a->ids, a->weighted ? NULL : a->vecs, a->weighted ? a->weights : NULL, a->rows,
                    a->weighted ? 1 : a->dim, a->n, a->weighted ? "weighted" : a->method, (uint64_t)a->seed,
                    a->weighted ? opts : a->options, &r, err) != KNN_OK) {
        return err->status;
    }
    idx_t base;
    if (knn_list_begin(result, row, r->n, &base, err) != KNN_OK) {
        knn_sample_result_free(r);
        return err->status;
    }
    duckdb_vector cols[5];
    for (idx_t f = 0; f < 5; f++) cols[f] = knn_field_vec(result, f, true);
    put_picks(cols, base, r, a->ids, 0, r->n);
    knn_sample_result_free(r);
    return KNN_OK;
}

/* ---- knn_sample over an index ------------------------------------------------------------------- */

typedef struct index_bind {
    knn_index_ref ref;
    int64_t n;
    int64_t seed;
    char method[METHOD_MAX + 1];
    char options[OPTIONS_MAX + 1];
    bool windowed;
    double lo, hi;
} index_bind;

typedef struct index_state {
    int started;
    size_t pos;
    knn_sample_result *r;
    int64_t *ids;
} index_state;

static void index_state_free(void *p) {
    index_state *st = p;
    if (st == NULL) return;
    knn_sample_result_free(st->r);
    free(st->ids);
    free(st);
}

static void index_bind_fn(duckdb_bind_info info) {
    const char *fn = "knn_sample";
    knn_error err;
    index_bind *b = knn_bind_index_name(info, sizeof *b, fn, &err);
    duckdb_value nv = NULL;
    char *s = NULL;
    if (b == NULL) goto fail;
    nv = duckdb_bind_get_parameter(info, 1);
    if (nv == NULL || duckdb_is_null_value(nv)) {
        knn_error_set(&err, KNN_EINVAL, "%s: n must not be NULL; pass the number of rows to pick", fn);
        goto fail;
    }
    b->n = duckdb_get_int64(nv);
    if (b->n <= 0) {
        knn_error_set(&err, KNN_EINVAL, "%s: n must be >= 1, got %lld", fn, (long long)b->n);
        goto fail;
    }
    if (knn_bind_named_int(info, "seed", &b->seed) < 0) {
        knn_error_set(&err, KNN_EINVAL, "%s: seed must be an integer", fn);
        goto fail;
    }
    snprintf(b->method, sizeof b->method, "kcenter");
    s = knn_bind_named_varchar(info, "method");
    if (s) {
        if (strlen(s) > METHOD_MAX) {
            knn_error_set(&err, KNN_EINVAL, "%s: unknown sampling method '%.40s'; use one of %s", fn, s,
                          knn_sample_methods());
            goto fail;
        }
        snprintf(b->method, sizeof b->method, "%s", s);
        duckdb_free(s);
        s = NULL;
    }
    s = knn_bind_named_varchar(info, "options");
    if (s) {
        if (strlen(s) > OPTIONS_MAX) {
            knn_error_set(&err, KNN_EINVAL, "%s: options are longer than %d bytes", fn, OPTIONS_MAX);
            goto fail;
        }
        snprintf(b->options, sizeof b->options, "%s", s);
        duckdb_free(s);
        s = NULL;
    }
    if (strcmp(b->method, "weighted") == 0) {
        knn_error_set(&err, KNN_EINVAL, "%s: method 'weighted' needs a weight column; use the aggregate "
                      "knn_sample_weighted(id, weight, n)", fn);
        goto fail;
    }
    knn_entry *e = knn_registry_get(knn_bind_registry(info), b->ref.name, b->ref.len, &err);
    if (e == NULL) goto fail;
    knn_status st = knn_bind_window(info, e, fn, &b->windowed, &b->lo, &b->hi, &err);
    knn_entry_release(e);
    if (st != KNN_OK) goto fail;
    duckdb_destroy_value(&nv);
    knn_bind_column(info, "id", DUCKDB_TYPE_BIGINT);
    knn_bind_column(info, "weight", DUCKDB_TYPE_DOUBLE);
    knn_bind_column(info, "pick_order", DUCKDB_TYPE_BIGINT);
    knn_bind_column(info, "score", DUCKDB_TYPE_DOUBLE);
    knn_bind_column(info, "cluster", DUCKDB_TYPE_BIGINT);
    duckdb_bind_set_bind_data(info, b, free);
    return;
fail:
    if (s) duckdb_free(s);
    if (nv) duckdb_destroy_value(&nv);
    free(b);
    knn_fail_bind(info, fn, &err);
}

static void index_run(duckdb_function_info info, duckdb_data_chunk out) {
    index_bind *b = duckdb_function_get_bind_data(info);
    index_state *st = duckdb_function_get_init_data(info);
    knn_error err;
    knn_entry *e;
    if (knn_table_first(info, &e, &err)) {
        float *vecs = NULL;
        size_t rows = 0;
        knn_status s = e ? knn_entry_export_rows(e, b->windowed, b->lo, b->hi, &st->ids, &vecs, &rows, &err)
                         : err.status;
        size_t dim = e ? e->dim : 0;
        knn_entry_release(e);
        if (s == KNN_OK && rows == 0) {
            free(vecs);
            duckdb_data_chunk_set_size(out, 0);
            return;
        }
        if (s == KNN_OK) {
            s = run_sampler("knn_sample", st->ids, vecs, NULL, rows, dim, b->n, b->method, (uint64_t)b->seed,
                            b->options, &st->r, &err);
        }
        free(vecs);
        if (s != KNN_OK) return knn_fail_run(info, "knn_sample", &err);
    }
    if (st->r == NULL) {
        duckdb_data_chunk_set_size(out, 0);
        return;
    }
    idx_t rows = knn_chunk_rows(st->r->n, st->pos);
    duckdb_vector cols[5];
    for (idx_t c = 0; c < 5; c++) cols[c] = duckdb_data_chunk_get_vector(out, c);
    put_picks(cols, 0, st->r, st->ids, st->pos, rows);
    st->pos += rows;
    duckdb_data_chunk_set_size(out, rows);
}

/* ---- registration ------------------------------------------------------------------------------- */

static const knn_fields pick_fields = {5, {"id", "weight", "pick_order", "score", "cluster"},
                                       {DUCKDB_TYPE_BIGINT, DUCKDB_TYPE_DOUBLE, DUCKDB_TYPE_BIGINT, DUCKDB_TYPE_DOUBLE,
                                        DUCKDB_TYPE_BIGINT}};

#define SAMPLE_HOOKS .result = KNN_LIST_OF(DUCKDB_TYPE_STRUCT), .fields = &pick_fields, .free_acc = acc_free, \
                     .update = sample_update, .merge = sample_merge, .finalize = sample_finalize, \
                     .raw = KNN_RAW_COMBINE | KNN_RAW_FINALIZE

static const knn_agg_def sample_aggs[] = {
    {.name = "knn_sample_agg", .params = {DUCKDB_TYPE_BIGINT, DUCKDB_TYPE_ANY, DUCKDB_TYPE_BIGINT, DUCKDB_TYPE_VARCHAR,
                                          DUCKDB_TYPE_BIGINT, DUCKDB_TYPE_VARCHAR},
     .min_params = 4, .n_params = 6, SAMPLE_HOOKS, .data = &by_vector},
    {.name = "knn_sample_weighted", .params = {DUCKDB_TYPE_BIGINT, DUCKDB_TYPE_DOUBLE, DUCKDB_TYPE_BIGINT,
                                               DUCKDB_TYPE_BIGINT, DUCKDB_TYPE_BOOLEAN},
     .min_params = 3, .n_params = 5, SAMPLE_HOOKS, .data = &by_weight},
};

static const knn_table_def sample_table[] = {
    {.name = "knn_sample", .bind = index_bind_fn, .run = index_run, .positional = {DUCKDB_TYPE_VARCHAR, DUCKDB_TYPE_BIGINT},
     .n_positional = 2, .named = {"method", "seed", "options", "lo", "hi"},
     .named_types = {DUCKDB_TYPE_VARCHAR, DUCKDB_TYPE_BIGINT, DUCKDB_TYPE_VARCHAR, DUCKDB_TYPE_ANY, DUCKDB_TYPE_ANY},
     .state_size = sizeof(index_state), .state_free = index_state_free},
};

bool knn_register_sample(duckdb_connection con, knn_registry *reg, knn_error *err) {
    return knn_register_aggregates(con, reg, sample_aggs, 2, err) && knn_register_tables(con, reg, sample_table, 1, err);
}
