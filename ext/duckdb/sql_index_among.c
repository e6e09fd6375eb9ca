/* knn_among: a named graph index searched among the rows of any relation (the allow-list path).
 *
 *   knn_among(index, query, k, id [, ef]) -> LIST(STRUCT(id BIGINT, distance FLOAT))
 *
 * An aggregate over the rows a query's FROM / WHERE keeps: DuckDB evaluates any predicate (joins,
 * subqueries, functions), the aggregate collects the ids of the rows that pass, and finalize searches
 * the index among those ids only (core: filter/knn_filter.h), in the same statement:
 *
 *   SELECT unnest(knn_among('docs_emb', [0.6, 0.8], 10, id), recursive := true)
 *   FROM docs WHERE lang = 'en' AND id IN (SELECT doc FROM clicks);
 *
 * index, query, k and ef must be the same for every row of a group (GROUP BY the query to search several).
 * Rows whose id is NULL are skipped; ids the index does not hold are ignored. A group with no rows gives
 * NULL; a group whose ids match no live row of the index gives an empty list. */
#include <stdlib.h>
#include <string.h>

#include "duckdb_extension.h"
#include "filter/knn_filter.h"
#include "knn_glue.h"
#include "knn_kit.h"
#include "index/knn_registry.h"
#include "sql_register.h"

DUCKDB_EXTENSION_EXTERN

#define FN "knn_among"
#define FN_JOIN "knn_among_join"

typedef struct among_acc {
    char *index;  /* the index name of the group's first row */
    size_t index_len;
    float *query; /* nq x dim floats */
    int64_t *qids; /* knn_among_join: nq query ids */
    size_t nq, dim, k, ef;
    int64_t *ids;
    size_t n, cap;
} among_acc;

static void acc_free(void *p) {
    among_acc *a = p;
    if (a == NULL) return;
    free(a->index);
    free(a->query);
    free(a->qids);
    free(a->ids);
    free(a);
}

static knn_status ids_reserve(among_acc *a, size_t need, knn_error *err) {
    return knn_grow((void **)&a->ids, &a->cap, need, sizeof *a->ids, "ids", err);
}

static knn_status changed(knn_error *err) {
    return knn_error_set(err, KNN_EINVAL, "index, query, k and ef must be the same for every row of a group; "
                         "GROUP BY the query to search several queries");
}

/* One input chunk's columns, read once (a C API call per row would cost more than the rest of the row). */
typedef struct among_chunk {
    idx_t n;
    duckdb_string_t *names;
    uint64_t *names_valid;
    bool join;      /* knn_among_join: the query column is a list of queries (ql), else one vector (qr) */
    knn_vreader qr;
    knn_qlist ql;
    const int64_t *k, *ef, *ids; /* ef NULL when not given */
    uint64_t *k_valid, *ef_valid, *ids_valid;
} among_chunk;

static knn_status chunk_read(duckdb_data_chunk input, bool join, among_chunk *c, knn_error *err) {
    duckdb_vector v[5];
    idx_t cols = duckdb_data_chunk_get_column_count(input);
    for (idx_t j = 0; j < 5; j++) v[j] = j < cols ? duckdb_data_chunk_get_vector(input, j) : NULL;
    c->n = duckdb_data_chunk_get_size(input);
    c->names = duckdb_vector_get_data(v[0]);
    c->names_valid = duckdb_vector_get_validity(v[0]);
    c->k = duckdb_vector_get_data(v[2]);
    c->k_valid = duckdb_vector_get_validity(v[2]);
    c->ids = duckdb_vector_get_data(v[3]);
    c->ids_valid = duckdb_vector_get_validity(v[3]);
    c->ef = v[4] ? duckdb_vector_get_data(v[4]) : NULL;
    c->ef_valid = v[4] ? duckdb_vector_get_validity(v[4]) : NULL;
    c->join = join;
    return join ? knn_qlist_init(&c->ql, v[1], FN_JOIN, err) : knn_vreader_init(&c->qr, v[1], FN, "query", err);
}

/* The settings of row i: index name, k, ef. */
static knn_status row_settings(const among_chunk *c, idx_t i, const char **name, size_t *len, size_t *k, size_t *ef,
                               knn_error *err) {
    if (!knn_valid(c->names_valid, i)) return knn_error_set(err, KNN_EINVAL, "the index name must not be NULL");
    *len = duckdb_string_t_length(c->names[i]);
    *name = duckdb_string_t_data(&c->names[i]);
    if (!knn_valid(c->k_valid, i) || c->k[i] < 1 || c->k[i] > 100000) {
        return knn_error_set(err, KNN_EINVAL, "k must be between 1 and 100000");
    }
    int64_t e = c->ef ? c->ef[i] : 0;
    if (c->ef && (!knn_valid(c->ef_valid, i) || e < 0 || e > 100000)) {
        return knn_error_set(err, KNN_EINVAL, "ef must be between 0 (the index default) and 100000");
    }
    *k = (size_t)c->k[i];
    *ef = (size_t)e;
    return KNN_OK;
}

/* An accumulator for nq queries of dim floats (with query ids when join), settings from row i. */
static among_acc *acc_alloc(const among_chunk *c, idx_t i, size_t nq, size_t dim, bool join, knn_error *err) {
    const char *name;
    size_t len, k, ef;
    if (row_settings(c, i, &name, &len, &k, &ef, err) != KNN_OK) return NULL;
    among_acc *a = calloc(1, sizeof *a);
    if (a) a->index = malloc(len + 1);
    if (a) a->query = malloc(nq * dim * sizeof *a->query);
    if (a && join) a->qids = malloc(nq * sizeof *a->qids);
    if (a == NULL || a->index == NULL || a->query == NULL || (join && a->qids == NULL)) {
        acc_free(a);
        knn_error_set(err, KNN_ENOMEM, "out of memory");
        return NULL;
    }
    memcpy(a->index, name, len);
    a->index[len] = 0;
    *a = (among_acc){.index = a->index, .index_len = len, .query = a->query, .qids = a->qids, .nq = nq, .dim = dim,
                     .k = k, .ef = ef};
    return a;
}

/* A new accumulator from row i. */
static among_acc *acc_new(const among_chunk *c, idx_t i, knn_error *err) {
    size_t dim = knn_vreader_len(&c->qr, i);
    if (dim == 0) { /* a bad setting is reported first, as for any other row */
        const char *name;
        size_t len, k, ef;
        if (row_settings(c, i, &name, &len, &k, &ef, err) == KNN_OK) {
            knn_error_set(err, KNN_EINVAL, "the query must be a non-empty vector");
        }
        return NULL;
    }
    among_acc *a = acc_alloc(c, i, 1, dim, false, err);
    if (a == NULL) return NULL;
    const float *q;
    size_t got;
    if (knn_vreader_get(&c->qr, i, dim, a->query, &q, &got) != KNN_ROW_OK) {
        acc_free(a);
        knn_error_set(err, KNN_EDATA, "the query contains a NULL element");
        return NULL;
    }
    if (q != a->query) memcpy(a->query, q, dim * sizeof *q);
    return a;
}

/* A new knn_among_join accumulator from row i: every query of its list, with its id. */
static among_acc *join_acc_new(const among_chunk *c, idx_t i, knn_error *err) {
    const knn_qlist *ql = &c->ql;
    duckdb_list_entry e = ql->entries[i];
    if (!knn_valid(ql->validity, i) || e.length == 0) {
        knn_error_set(err, KNN_EINVAL, "'queries' is NULL or an empty list; give at least one query");
        return NULL;
    }
    size_t dim = knn_vreader_len(&ql->vecs, e.offset);
    if (dim == 0) {
        knn_error_set(err, KNN_EDATA, "query 1 is NULL or empty; every query needs a vector");
        return NULL;
    }
    among_acc *a = acc_alloc(c, i, e.length, dim, true, err);
    if (a == NULL) return NULL;
    for (size_t q = 0; q < a->nq; q++) {
        const idx_t pos = e.offset + q;
        const float *v;
        size_t got;
        if (knn_vreader_get(&ql->vecs, pos, dim, a->query + q * dim, &v, &got) != KNN_ROW_OK) {
            acc_free(a);
            knn_error_set(err, KNN_EDATA, "query %zu is NULL, contains a NULL element, or has %zu elements where "
                          "query 1 has %zu", q + 1, got, dim);
            return NULL;
        }
        if (v != a->query + q * dim) memcpy(a->query + q * dim, v, dim * sizeof *v);
        if (ql->qid_data && !knn_valid(ql->qid_valid, pos)) {
            acc_free(a);
            knn_error_set(err, KNN_EDATA, "the id of query %zu is NULL", q + 1);
            return NULL;
        }
        a->qids[q] = !ql->qid_data ? (int64_t)q + 1
                     : ql->qid_is_int32 ? ((const int32_t *)ql->qid_data)[pos] : ((const int64_t *)ql->qid_data)[pos];
    }
    return a;
}

/* Whether row i's query list equals the accumulator's queries and ids. */
static bool join_same_queries(const among_acc *a, const knn_qlist *ql, idx_t i, float *tmp) {
    duckdb_list_entry e = ql->entries[i];
    if (!knn_valid(ql->validity, i) || e.length != a->nq) return false;
    for (size_t q = 0; q < a->nq; q++) {
        const idx_t pos = e.offset + q;
        const float *v;
        size_t got;
        if (knn_vreader_get(&ql->vecs, pos, a->dim, tmp, &v, &got) != KNN_ROW_OK ||
            memcmp(v, a->query + q * a->dim, a->dim * sizeof *v) != 0) {
            return false;
        }
        if (ql->qid_data) {
            int64_t id = ql->qid_is_int32 ? ((const int32_t *)ql->qid_data)[pos] : ((const int64_t *)ql->qid_data)[pos];
            if (!knn_valid(ql->qid_valid, pos) || id != a->qids[q]) return false;
        }
    }
    return true;
}

/* Whether row i carries the accumulator's settings and query (a constant query is one list entry that
 * every row shares: its floats are compared once). */
static bool row_matches(const among_acc *a, const among_chunk *c, idx_t i, idx_t *last_ok, duckdb_list_entry *checked,
                        float *tmp, knn_error *err) {
    const char *name;
    size_t len, k, ef, got;
    /* the same settings as the last row that matched: same string bytes (inline or pointer), same k, ef */
    const idx_t p = *last_ok;
    bool same = p != UINT64_MAX && knn_valid(c->names_valid, i) && knn_valid(c->k_valid, i) &&
                memcmp(&c->names[i], &c->names[p], sizeof c->names[i]) == 0 && c->k[i] == c->k[p] &&
                (c->ef == NULL || (knn_valid(c->ef_valid, i) && c->ef[i] == c->ef[p]));
    if (!same) {
        if (row_settings(c, i, &name, &len, &k, &ef, err) != KNN_OK) return false;
        if (len != a->index_len || memcmp(name, a->index, len) != 0 || k != a->k || ef != a->ef) return false;
    }
    const duckdb_list_entry *entries = c->join ? c->ql.entries : c->qr.entries;
    if (entries && entries[i].offset == checked->offset && entries[i].length == checked->length) {
        *last_ok = i;
        return true;
    }
    if (c->join) {
        if (!join_same_queries(a, &c->ql, i, tmp)) return false;
        *checked = entries[i];
        *last_ok = i;
        return true;
    }
    const knn_vreader *qr = &c->qr;
    const float *q;
    if (knn_vreader_len(qr, i) != a->dim || knn_vreader_get(qr, i, a->dim, tmp, &q, &got) != KNN_ROW_OK ||
        memcmp(q, a->query, a->dim * sizeof *q) != 0) {
        return false;
    }
    if (qr->entries) *checked = qr->entries[i];
    *last_ok = i;
    return true;
}

static knn_status among_update(const knn_agg_ctx *cx, duckdb_data_chunk input, duckdb_aggregate_state *states,
                               knn_error *err) {
    const bool join = cx->def->data != NULL;
    among_chunk c;
    if (chunk_read(input, join, &c, err) != KNN_OK) return err->status;
    duckdb_list_entry checked = {UINT64_MAX, 0};
    float *tmp = NULL;
    for (idx_t lo = 0; lo < c.n && err->status == KNN_OK;) { /* runs of rows of one group */
        idx_t hi = lo + 1;
        while (hi < c.n && states[hi] == states[lo]) hi++;
        knn_agg_state *st = knn_agg_at(states, lo);
        checked = (duckdb_list_entry){UINT64_MAX, 0};
        idx_t last_ok = UINT64_MAX;
        for (idx_t i = lo; i < hi && err->status == KNN_OK; i++) {
            if (!knn_valid(c.ids_valid, i)) continue;
            among_acc *a = st->acc;
            if (a == NULL) {
                if ((st->acc = join ? join_acc_new(&c, i, err) : acc_new(&c, i, err)) == NULL) break;
                continue;
            }
            if (tmp == NULL && (tmp = malloc(a->dim * sizeof *tmp)) == NULL) {
                knn_error_set(err, KNN_ENOMEM, "out of memory");
                break;
            }
            if (!row_matches(a, &c, i, &last_ok, &checked, tmp, err) && err->status == KNN_OK) changed(err);
        }
        among_acc *a = st->acc;
        if (err->status != KNN_OK || a == NULL || ids_reserve(a, a->n + (hi - lo), err) != KNN_OK) break;
        for (idx_t i = lo; i < hi; i++) {
            if (knn_valid(c.ids_valid, i)) a->ids[a->n++] = c.ids[i];
        }
        lo = hi;
    }
    free(tmp);
    return err->status;
}

static knn_status among_merge(const knn_agg_ctx *cx, knn_agg_state *source, knn_agg_state *target, knn_error *err) {
    (void)cx;
    among_acc *src = source->acc, *dst = target->acc;
    if (dst == NULL) {
        target->acc = src;
        source->acc = NULL;
        return KNN_OK;
    }
    if (strcmp(src->index, dst->index) != 0 || src->k != dst->k || src->ef != dst->ef || src->dim != dst->dim ||
        src->nq != dst->nq || memcmp(src->query, dst->query, dst->nq * dst->dim * sizeof *dst->query) != 0 ||
        (dst->qids && memcmp(src->qids, dst->qids, dst->nq * sizeof *dst->qids) != 0)) {
        return changed(err);
    }
    if (ids_reserve(dst, dst->n + src->n, err) != KNN_OK) return err->status;
    memcpy(dst->ids + dst->n, src->ids, src->n * sizeof *src->ids);
    dst->n += src->n;
    return KNN_OK;
}

/* Searches the group's queries among its ids: out_ids / out_dists (nq x k) and found (nq), or err. */
static knn_status group_search(const knn_agg_ctx *cx, const among_acc *a, int64_t *ids, float *dists, size_t *found,
                               knn_error *err) {
    knn_entry *e = knn_registry_get(cx->reg, a->index, a->index_len, err);
    if (e == NULL) return err->status;
    knn_status s;
    if (e->kind != KNN_KIND_GRAPH) {
        s = knn_error_set(err, KNN_EINVAL, "index '%s' is a flat index; %s searches graph indexes (for a flat "
                          "index, knn_exact over the same rows gives the same answer)", a->index, cx->def->name);
    } else if (a->dim != e->dim) {
        s = knn_error_set(err, KNN_EDATA, "dimension mismatch: the query has %zu elements but index '%s' has dim %zu",
                          a->dim, a->index, e->dim);
    } else {
        s = knn_graph_search_among(e->graph, a->query, a->nq, a->k, a->ef, 0, a->ids, a->n, 0, ids, dists, found, NULL,
                                   NULL, err);
    }
    knn_entry_release(e);
    return s;
}

static knn_status among_finalize(const knn_agg_ctx *cx, knn_agg_state *st, duckdb_vector result, idx_t row,
                                 knn_error *err) {
    among_acc *a = st->acc;
    if (a == NULL) {
        knn_result_null(result, row);
        return KNN_OK;
    }
    const bool join = a->qids != NULL;
    int64_t *ids = malloc(a->nq * a->k * sizeof *ids);
    float *dists = malloc(a->nq * a->k * sizeof *dists);
    size_t *found = malloc(a->nq * sizeof *found);
    size_t total = 0;
    idx_t base;
    if (ids == NULL || dists == NULL || found == NULL) {
        knn_error_set(err, KNN_ENOMEM, "out of memory");
    } else if (group_search(cx, a, ids, dists, found, err) == KNN_OK) {
        for (size_t q = 0; q < a->nq; q++) total += found[q];
    }
    if (err->status == KNN_OK && knn_list_begin(result, row, total, &base, err) == KNN_OK) {
        int64_t *out_q = join ? knn_field(result, 0, true) : NULL;
        int64_t *out_ids = knn_field(result, join ? 1 : 0, true);
        float *out_dists = knn_field(result, join ? 2 : 1, true);
        int32_t *out_rank = join ? knn_field(result, 3, true) : NULL;
        for (size_t q = 0, at = base; q < a->nq; q++) {
            for (size_t j = 0; j < found[q]; j++, at++) {
                out_ids[at] = ids[q * a->k + j];
                out_dists[at] = dists[q * a->k + j];
                if (join) {
                    out_q[at] = a->qids[q];
                    out_rank[at] = (int32_t)j + 1;
                }
            }
        }
    }
    free(ids);
    free(dists);
    free(found);
    return err->status;
}

static const knn_fields among_fields = {2, {"id", "distance"}, {DUCKDB_TYPE_BIGINT, DUCKDB_TYPE_FLOAT}};

#define AMONG_PARAMS(query) {DUCKDB_TYPE_VARCHAR, query, DUCKDB_TYPE_BIGINT, DUCKDB_TYPE_BIGINT, DUCKDB_TYPE_BIGINT}
#define AMONG_HOOKS .min_params = 4, .n_params = 5, .result = KNN_LIST_OF(DUCKDB_TYPE_STRUCT), .fields = &among_fields, \
                    .free_acc = acc_free, .update = among_update, .merge = among_merge, .finalize = among_finalize

/* The query is typed FLOAT[] (and DOUBLE[]) so a constant query is cast once and shared by every row, as
 * knn_exact does; with no ANY overload, DuckDB casts arrays and DECIMAL / integer lists to these. */
static const knn_fields join_fields = {4, {"query_id", "id", "distance", "rank"},
                                       {DUCKDB_TYPE_BIGINT, DUCKDB_TYPE_BIGINT, DUCKDB_TYPE_FLOAT, DUCKDB_TYPE_INTEGER}};
static const bool joining = true;

static const knn_agg_def among_defs[] = {
    {.name = FN, .params = AMONG_PARAMS(KNN_LIST_OF(DUCKDB_TYPE_FLOAT)), AMONG_HOOKS},
    {.name = FN, .params = AMONG_PARAMS(KNN_LIST_OF(DUCKDB_TYPE_DOUBLE)), AMONG_HOOKS},
    /* knn_among_join: the queries as knn_exact_join takes them (a LIST of vectors, or of STRUCT(id, vector)) */
    {.name = FN_JOIN, .params = AMONG_PARAMS(DUCKDB_TYPE_ANY), .min_params = 4, .n_params = 5,
     .result = KNN_LIST_OF(DUCKDB_TYPE_STRUCT), .fields = &join_fields, .free_acc = acc_free, .update = among_update,
     .merge = among_merge, .finalize = among_finalize, .data = &joining},
};

bool knn_register_among(duckdb_connection con, knn_registry *reg, knn_error *err) {
    return knn_register_aggregates(con, reg, among_defs, sizeof among_defs / sizeof among_defs[0], err);
}
