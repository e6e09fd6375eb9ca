/* Writing to a named index from any relation: knn_index_insert and knn_index_delete aggregates.
 *
 *   knn_index_insert(name, id, vec [, label] [, attrs]) -> BIGINT rows added (bulk: one parallel graph build
 *                                                         at the end)
 *   knn_index_delete(name, id)      -> BIGINT rows removed
 *
 * Rows are buffered per thread, merged by combine, and applied once in finalize, so a bulk load builds
 * the graph in one parallel batch. Re-inserting an id that the index holds replaces it; the same id
 * twice within one call is an error (which row should win is not defined by SQL). Rows whose id or
 * vector is NULL are skipped; the returned count says how many were added. A label (number, TIMESTAMP
 * or DATE) makes the row eligible for window searches; a NULL label leaves it out of every window.
 * The first labelled insert fixes the index's label type. `attrs`, a STRUCT such as {'price': price,
 * 'cat': cat}, gives the row attribute columns that knn_search(..., filter := '...') evaluates inside the
 * index (graph indexes; knn_attr_cols.h says which types it takes). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "duckdb_extension.h"
#include "knn_attr_cols.h"
#include "knn_glue.h"
#include "knn_kit.h"
#include "base/knn_idmap.h"
#include "knn_memlimit.h"
#include "index/knn_registry.h"
#include "sql_register.h"

DUCKDB_EXTENSION_EXTERN

typedef struct write_acc {
    knn_entry *e; /* retained */
    float *vecs;  /* insert only: n x dim */
    double *labels; /* insert with labels only */
    bool had_labels; /* labels[0..n) are filled (combine may meet unlabelled partial states) */
    int64_t *ids;
    size_t n, cap;
    knn_attr_acc attrs; /* insert with attributes only: columns and one buffered row per id */
    bool has_attrs;
} write_acc;

static void acc_free(void *p) {
    write_acc *a = p;
    knn_entry_release(a->e);
    free(a->vecs);
    free(a->labels);
    free(a->ids);
    knn_attr_acc_free(&a->attrs);
    free(a);
}

static knn_status acc_reserve(write_acc *a, size_t need, bool with_vecs, bool with_labels, knn_error *err) {
    if (need <= a->cap && (!with_labels || a->labels)) return KNN_OK;
    /* An insert that would outgrow the index's memory cap stops while buffering, before the build. */
    if (with_vecs && knn_memory_check(a->e, need, with_labels, err) != KNN_OK) return err->status;
    size_t cap = a->cap ? a->cap : 1024;
    while (cap < need) cap *= 2;
    int64_t *ids = realloc(a->ids, cap * sizeof *ids);
    if (ids) a->ids = ids;
    float *vecs = with_vecs ? realloc(a->vecs, cap * a->e->dim * sizeof *vecs) : NULL;
    if (vecs) a->vecs = vecs;
    double *labels = with_labels ? realloc(a->labels, cap * sizeof *labels) : NULL;
    if (labels) a->labels = labels;
    if (!ids || (with_vecs && !vecs) || (with_labels && !labels)) {
        return knn_error_set(err, KNN_ENOMEM, "out of memory buffering %zu rows", cap);
    }
    a->cap = cap;
    return KNN_OK;
}

/* The accumulator of a state, created on its first row from the index name. */
static write_acc *acc_for(knn_agg_state *st, knn_registry *reg, const char *name, size_t len, knn_error *err) {
    write_acc *a = st->acc;
    if (a) {
        if (strlen(a->e->name) != len || memcmp(a->e->name, name, len) != 0) {
            knn_error_set(err, KNN_EINVAL, "every row of one call must name the same index");
            return NULL;
        }
        return a;
    }
    a = calloc(1, sizeof *a);
    if (a == NULL) {
        knn_error_set(err, KNN_ENOMEM, "out of memory");
        return NULL;
    }
    a->e = knn_registry_get(reg, name, len, err);
    if (a->e == NULL) {
        free(a);
        return NULL;
    }
    st->acc = a;
    return a;
}

/* data of the two table entries: whether the function inserts (else deletes) */
static const bool inserting = true, deleting = false;

static knn_status write_update(const knn_agg_ctx *cx, duckdb_data_chunk input, duckdb_aggregate_state *states,
                               knn_error *err) {
    const bool insert = *(const bool *)cx->def->data;
    const char *fn = cx->def->name;
    idx_t n = duckdb_data_chunk_get_size(input);
    duckdb_vector names = duckdb_data_chunk_get_vector(input, 0);
    duckdb_vector idv = duckdb_data_chunk_get_vector(input, 1);
    const int64_t *id_data = duckdb_vector_get_data(idv);
    const uint64_t *id_valid = duckdb_vector_get_validity(idv);
    knn_vreader vr;
    if (insert && knn_vreader_init(&vr, duckdb_data_chunk_get_vector(input, 2), fn, "vec", err) != KNN_OK) {
        return err->status;
    }
    idx_t ncol = duckdb_data_chunk_get_column_count(input);
    /* (name, id, vec, attrs) or (name, id, vec, label [, attrs]): a STRUCT is the attributes */
    duckdb_vector attr_vec = NULL;
    if (insert && ncol > 3) {
        duckdb_vector last = duckdb_data_chunk_get_vector(input, ncol - 1);
        duckdb_logical_type lt = duckdb_vector_get_column_type(last);
        bool is_struct = duckdb_get_type_id(lt) == DUCKDB_TYPE_STRUCT;
        duckdb_destroy_logical_type(&lt);
        if (is_struct) {
            attr_vec = last;
        } else if (ncol > 4) {
            return knn_error_set(err, KNN_EINVAL, "%s: the fifth argument must be a STRUCT of attribute columns, e.g. "
                                 "{'price': price, 'cat': cat}", fn);
        }
    }
    bool labelled = insert && ncol > 3 && !(attr_vec && ncol == 4);
    knn_label_col lab = {0};
    if (labelled && knn_label_col_init(&lab, duckdb_data_chunk_get_vector(input, 3), fn, "label", err) != KNN_OK) {
        return err->status;
    }
    knn_label_kind lab_kind = lab.kind;
    for (idx_t i = 0; i < n; i++) {
        const char *name;
        size_t len;
        if (!knn_get_varchar(names, i, &name, &len)) {
            return knn_error_set(err, KNN_EINVAL, "index name must not be NULL");
        }
        write_acc *a = acc_for(knn_agg_at(states, i), cx->reg, name, len, err);
        if (a == NULL) return err->status;
        if (attr_vec && !a->has_attrs) {
            if (knn_attr_acc_init(&a->attrs, attr_vec, fn, err) != KNN_OK) return err->status;
            a->has_attrs = true;
        }
        if (labelled && lab_kind != KNN_LABEL_NONE) {
            unsigned held = knn_entry_claim_label_kind(a->e, lab_kind);
            if (held != lab_kind) {
                return knn_error_set(err, KNN_EINVAL, "index '%s' has %s labels; this insert gives %s ones (cast the "
                                     "label)", a->e->name, knn_label_kind_name(held), knn_label_kind_name(lab_kind));
            }
        }
        if (!knn_valid(id_valid, i)) continue;
        if (acc_reserve(a, a->n + 1, insert, labelled, err) != KNN_OK) return err->status;
        if (labelled && !knn_label_at(&lab, i, &a->labels[a->n])) a->labels[a->n] = NAN;
        if (labelled) a->had_labels = true;
        if (insert) {
            const size_t d = a->e->dim;
            const float *v;
            size_t got = 0;
            knn_row_state rs = knn_vreader_get(&vr, i, d, a->vecs + a->n * d, &v, &got);
            if (rs == KNN_ROW_NULL) continue; /* a NULL vector: the row is skipped */
            if (rs == KNN_ROW_DIM_MISMATCH) {
                return knn_error_set(err, KNN_EDATA, "dimension mismatch: the vector of id %lld has %zu elements but "
                                     "index '%s' has dim %zu", (long long)id_data[i], got, a->e->name, d);
            }
            if (rs == KNN_ROW_NULL_ELEMENT) {
                return knn_error_set(err, KNN_EDATA, "the vector of id %lld contains a NULL element",
                                     (long long)id_data[i]);
            }
            if (v != a->vecs + a->n * d) memcpy(a->vecs + a->n * d, v, d * sizeof(float));
        }
        if (attr_vec && knn_attr_acc_push(&a->attrs, attr_vec, i, err) != KNN_OK) return err->status;
        a->ids[a->n++] = id_data[i];
    }
    return KNN_OK;
}

static knn_status write_merge(const knn_agg_ctx *cx, knn_agg_state *source, knn_agg_state *target, knn_error *err) {
    const bool insert = *(const bool *)cx->def->data;
    write_acc *src = source->acc;
    if (src->n == 0) return KNN_OK;
    if (target->acc == NULL) {
        write_acc *a = calloc(1, sizeof *a);
        if (a == NULL) return knn_error_set(err, KNN_ENOMEM, "out of memory");
        a->e = src->e;
        atomic_fetch_add(&src->e->refs, 1);
        target->acc = a;
    } else if (((write_acc *)target->acc)->e != src->e) {
        return knn_error_set(err, KNN_EINVAL, "every row of one call must name the same index");
    }
    write_acc *d = target->acc;
    if (src->has_attrs && !d->has_attrs) {
        if (d->n > 0) return knn_error_set(err, KNN_EINVAL, "%s: every row of one call must give the same attributes",
                                           cx->def->name);
        if (knn_attr_acc_like(&d->attrs, &src->attrs, err) != KNN_OK) return err->status;
        d->has_attrs = true;
    }
    if (d->has_attrs && knn_attr_acc_append(&d->attrs, &src->attrs, err) != KNN_OK) return err->status;
    bool labels = src->labels || d->labels;
    size_t old = d->n;
    if (acc_reserve(d, d->n + src->n, insert, labels, err) != KNN_OK) return err->status;
    if (labels && d->labels && old > 0 && !d->had_labels) {
        for (size_t j = 0; j < old; j++) d->labels[j] = NAN;
    }
    d->had_labels = d->had_labels || labels;
    memcpy(d->ids + d->n, src->ids, src->n * sizeof *d->ids);
    if (insert) memcpy(d->vecs + d->n * d->e->dim, src->vecs, src->n * d->e->dim * sizeof(float));
    if (labels) {
        for (size_t j = 0; j < src->n; j++) d->labels[old + j] = src->labels ? src->labels[j] : NAN;
    }
    d->n += src->n;
    return KNN_OK;
}

static knn_status write_finalize(const knn_agg_ctx *cx, knn_agg_state *st, duckdb_vector result, idx_t row,
                                 knn_error *err) {
    write_acc *a = st->acc;
    int64_t *out = duckdb_vector_get_data(result);
    out[row] = 0;
    if (a == NULL || a->n == 0) return KNN_OK;
    if (*(const bool *)cx->def->data) {
        int64_t dup;
        int found = knn_ids_find_duplicate(a->ids, a->n, &dup, err);
        if (found < 0) return err->status;
        if (found) {
            return knn_error_set(err, KNN_EINVAL, "id %lld appears more than once in this call; ids must be unique "
                                 "within one knn_index_insert (inserting an id again in a later call replaces it)",
                                 (long long)dup);
        }
        if (knn_memory_check(a->e, a->n, a->had_labels, err) != KNN_OK) return err->status;
        knn_attr_batch batch = {0};
        if (a->has_attrs && knn_attr_acc_batch(&a->attrs, &batch, err) != KNN_OK) return err->status;
        knn_status s = knn_entry_add_attrs(a->e, a->vecs, a->ids, a->had_labels ? a->labels : NULL,
                                           a->has_attrs ? &batch : NULL, a->n, err);
        knn_attr_batch_free_views(&batch);
        if (s != KNN_OK) return s;
        out[row] = (int64_t)a->n;
    } else {
        size_t removed = 0;
        if (knn_entry_delete(a->e, a->ids, a->n, &removed, err) != KNN_OK) return err->status;
        out[row] = (int64_t)removed;
    }
    a->n = 0; /* applied once, even if finalize were called again */
    return KNN_OK;
}

#define WRITE_HOOKS .result = DUCKDB_TYPE_BIGINT, .free_acc = acc_free, .update = write_update, \
                    .merge = write_merge, .finalize = write_finalize

static const knn_agg_def write_defs[] = {
    {.name = "knn_index_insert",
     .params = {DUCKDB_TYPE_VARCHAR, DUCKDB_TYPE_BIGINT, DUCKDB_TYPE_ANY, DUCKDB_TYPE_ANY, DUCKDB_TYPE_ANY},
     .min_params = 3, .n_params = 5, WRITE_HOOKS, .data = &inserting},
    {.name = "knn_index_delete", .params = {DUCKDB_TYPE_VARCHAR, DUCKDB_TYPE_BIGINT}, .min_params = 2, .n_params = 2,
     WRITE_HOOKS, .data = &deleting},
};

bool knn_register_index_write(duckdb_connection con, knn_registry *reg, knn_error *err) {
    return knn_register_aggregates(con, reg, write_defs, sizeof write_defs / sizeof write_defs[0], err);
}
