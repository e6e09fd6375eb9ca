/* Writing to a named index from any relation: knn_index_insert and knn_index_delete aggregates.
 *
 *   knn_index_insert(name, id, vec [, label]) -> BIGINT rows added (bulk: one parallel graph build at the end)
 *   knn_index_delete(name, id)      -> BIGINT rows removed
 *
 * Rows are buffered per thread, merged by combine, and applied once in finalize, so a bulk load builds
 * the graph in one parallel batch. Re-inserting an id that the index holds replaces it; the same id
 * twice within one call is an error (which row should win is not defined by SQL). Rows whose id or
 * vector is NULL are skipped; the returned count says how many were added. A label (number, TIMESTAMP
 * or DATE) makes the row eligible for window searches; a NULL label leaves it out of every window.
 * The first labelled insert fixes the index's label type. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "duckdb_extension.h"
#include "knn_glue.h"
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
} write_acc;

typedef struct write_state {
    write_acc *acc;
} write_state;

static void acc_free(write_acc *a) {
    if (a == NULL) return;
    knn_entry_release(a->e);
    free(a->vecs);
    free(a->labels);
    free(a->ids);
    free(a);
}

static idx_t write_state_size(duckdb_function_info info) {
    (void)info;
    return sizeof(write_state);
}

static void write_init(duckdb_function_info info, duckdb_aggregate_state state) {
    (void)info;
    ((write_state *)state)->acc = NULL;
}

static void write_destroy(duckdb_aggregate_state *states, idx_t count) {
    for (idx_t i = 0; i < count; i++) {
        acc_free(((write_state *)states[i])->acc);
        ((write_state *)states[i])->acc = NULL;
    }
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
static write_acc *acc_for(write_state *st, knn_registry *reg, const char *name, size_t len, knn_error *err) {
    if (st->acc) {
        if (strlen(st->acc->e->name) != len || memcmp(st->acc->e->name, name, len) != 0) {
            knn_error_set(err, KNN_EINVAL, "every row of one call must name the same index");
            return NULL;
        }
        return st->acc;
    }
    write_acc *a = calloc(1, sizeof *a);
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

static void report(duckdb_function_info info, const char *fn, knn_error *err) {
    char msg[KNN_ERROR_MSG_LEN + 32];
    if (strncmp(err->msg, fn, strlen(fn)) == 0) {
        snprintf(msg, sizeof msg, "%s", err->msg);
    } else {
        snprintf(msg, sizeof msg, "%s: %s", fn, err->msg);
    }
    duckdb_aggregate_function_set_error(info, msg);
}

static void write_update(duckdb_function_info info, duckdb_data_chunk input, duckdb_aggregate_state *states,
                         bool insert) {
    const char *fn = insert ? "knn_index_insert" : "knn_index_delete";
    knn_error err;
    knn_error_clear(&err);
    knn_registry *reg = duckdb_aggregate_function_get_extra_info(info);
    idx_t n = duckdb_data_chunk_get_size(input);
    duckdb_vector names = duckdb_data_chunk_get_vector(input, 0);
    duckdb_vector idv = duckdb_data_chunk_get_vector(input, 1);
    const int64_t *id_data = duckdb_vector_get_data(idv);
    const uint64_t *id_valid = duckdb_vector_get_validity(idv);
    knn_vreader vr;
    if (insert && knn_vreader_init(&vr, duckdb_data_chunk_get_vector(input, 2), fn, "vec", &err) != KNN_OK) goto done;
    bool labelled = insert && duckdb_data_chunk_get_column_count(input) > 3;
    knn_label_col lab = {0};
    if (labelled && knn_label_col_init(&lab, duckdb_data_chunk_get_vector(input, 3), fn, "label", &err) != KNN_OK) {
        goto done;
    }
    knn_label_kind lab_kind = lab.kind;
    for (idx_t i = 0; i < n; i++) {
        const char *name;
        size_t len;
        if (!knn_get_varchar(names, i, &name, &len)) {
            knn_error_set(&err, KNN_EINVAL, "index name must not be NULL");
            goto done;
        }
        write_acc *a = acc_for((write_state *)states[i], reg, name, len, &err);
        if (a == NULL) goto done;
        if (labelled && lab_kind != KNN_LABEL_NONE) {
            unsigned held = knn_entry_claim_label_kind(a->e, lab_kind);
            if (held != lab_kind) {
                knn_error_set(&err, KNN_EINVAL, "index '%s' has %s labels; this insert gives %s ones (cast the label)",
                              a->e->name, knn_label_kind_name(held), knn_label_kind_name(lab_kind));
                goto done;
            }
        }
        if (!knn_valid(id_valid, i)) continue;
        if (acc_reserve(a, a->n + 1, insert, labelled, &err) != KNN_OK) goto done;
        if (labelled && !knn_label_at(&lab, i, &a->labels[a->n])) a->labels[a->n] = NAN;
        if (labelled) a->had_labels = true;
        if (insert) {
            const size_t d = a->e->dim;
            const float *v;
            size_t got = 0;
            knn_row_state rs = knn_vreader_get(&vr, i, d, a->vecs + a->n * d, &v, &got);
            if (rs == KNN_ROW_NULL) continue; /* a NULL vector: the row is skipped */
            if (rs == KNN_ROW_DIM_MISMATCH) {
                knn_error_set(&err, KNN_EDATA, "dimension mismatch: the vector of id %lld has %zu elements but index "
                              "'%s' has dim %zu", (long long)id_data[i], got, a->e->name, d);
                goto done;
            }
            if (rs == KNN_ROW_NULL_ELEMENT) {
                knn_error_set(&err, KNN_EDATA, "the vector of id %lld contains a NULL element", (long long)id_data[i]);
                goto done;
            }
            if (v != a->vecs + a->n * d) memcpy(a->vecs + a->n * d, v, d * sizeof(float));
        }
        a->ids[a->n++] = id_data[i];
    }
done:
    if (err.status != KNN_OK) report(info, fn, &err);
}

static void insert_update(duckdb_function_info info, duckdb_data_chunk input, duckdb_aggregate_state *states) {
    write_update(info, input, states, true);
}

static void delete_update(duckdb_function_info info, duckdb_data_chunk input, duckdb_aggregate_state *states) {
    write_update(info, input, states, false);
}

static void write_combine(duckdb_function_info info, duckdb_aggregate_state *source, duckdb_aggregate_state *target,
                          idx_t count, bool insert) {
    knn_error err;
    knn_error_clear(&err);
    for (idx_t i = 0; i < count && err.status == KNN_OK; i++) {
        write_acc *src = ((write_state *)source[i])->acc;
        write_state *dst = (write_state *)target[i];
        if (src == NULL || src->n == 0) continue;
        if (dst->acc == NULL) {
            dst->acc = calloc(1, sizeof *dst->acc);
            if (dst->acc == NULL) {
                knn_error_set(&err, KNN_ENOMEM, "out of memory");
                break;
            }
            dst->acc->e = src->e;
            atomic_fetch_add(&src->e->refs, 1);
        } else if (dst->acc->e != src->e) {
            knn_error_set(&err, KNN_EINVAL, "every row of one call must name the same index");
            break;
        }
        write_acc *d = dst->acc;
        bool labels = src->labels || d->labels;
        size_t old = d->n;
        if (acc_reserve(d, d->n + src->n, insert, labels, &err) != KNN_OK) break;
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
    }
    if (err.status != KNN_OK) report(info, insert ? "knn_index_insert" : "knn_index_delete", &err);
}

static void insert_combine(duckdb_function_info info, duckdb_aggregate_state *s, duckdb_aggregate_state *t, idx_t c) {
    write_combine(info, s, t, c, true);
}

static void delete_combine(duckdb_function_info info, duckdb_aggregate_state *s, duckdb_aggregate_state *t, idx_t c) {
    write_combine(info, s, t, c, false);
}

static void write_finalize(duckdb_function_info info, duckdb_aggregate_state *source, duckdb_vector result,
                           idx_t count, idx_t offset, bool insert) {
    const char *fn = insert ? "knn_index_insert" : "knn_index_delete";
    knn_error err;
    knn_error_clear(&err);
    int64_t *out = duckdb_vector_get_data(result);
    for (idx_t i = 0; i < count; i++) {
        write_acc *a = ((write_state *)source[i])->acc;
        out[offset + i] = 0;
        if (a == NULL || a->n == 0) continue;
        if (insert) {
            int64_t dup;
            int found = knn_ids_find_duplicate(a->ids, a->n, &dup, &err);
            if (found < 0) break;
            if (found) {
                knn_error_set(&err, KNN_EINVAL, "id %lld appears more than once in this call; ids must be unique "
                              "within one knn_index_insert (inserting an id again in a later call replaces it)",
                              (long long)dup);
                break;
            }
            if (knn_memory_check(a->e, a->n, a->had_labels, &err) != KNN_OK) break;
            if (knn_entry_add(a->e, a->vecs, a->ids, a->had_labels ? a->labels : NULL, a->n, &err) != KNN_OK) break;
            out[offset + i] = (int64_t)a->n;
        } else {
            size_t removed = 0;
            if (knn_entry_delete(a->e, a->ids, a->n, &removed, &err) != KNN_OK) break;
            out[offset + i] = (int64_t)removed;
        }
        a->n = 0; /* applied once, even if finalize were called again */
    }
    if (err.status != KNN_OK) report(info, fn, &err);
}

static void insert_finalize(duckdb_function_info info, duckdb_aggregate_state *s, duckdb_vector r, idx_t c, idx_t o) {
    write_finalize(info, s, r, c, o, true);
}

static void delete_finalize(duckdb_function_info info, duckdb_aggregate_state *s, duckdb_vector r, idx_t c, idx_t o) {
    write_finalize(info, s, r, c, o, false);
}

static void registry_release_cb(void *p) { knn_registry_release(p); }

bool knn_register_aggregate(duckdb_connection con, knn_registry *reg, const char *name, const duckdb_type *params,
                            size_t min_params, size_t n_params, duckdb_aggregate_state_size size,
                            duckdb_aggregate_init_t init, duckdb_aggregate_update_t update,
                            duckdb_aggregate_combine_t combine, duckdb_aggregate_finalize_t finalize,
                            duckdb_aggregate_destroy_t destroy) {
    duckdb_aggregate_function_set set = duckdb_create_aggregate_function_set(name);
    bool ok = set != NULL;
    for (size_t arity = min_params; ok && arity <= n_params; arity++) {
        duckdb_aggregate_function f = duckdb_create_aggregate_function();
        duckdb_aggregate_function_set_name(f, name);
        for (size_t p = 0; p < arity; p++) {
            duckdb_logical_type t = duckdb_create_logical_type(params[p]);
            duckdb_aggregate_function_add_parameter(f, t);
            duckdb_destroy_logical_type(&t);
        }
        duckdb_logical_type rt = duckdb_create_logical_type(DUCKDB_TYPE_BIGINT);
        duckdb_aggregate_function_set_return_type(f, rt);
        duckdb_destroy_logical_type(&rt);
        duckdb_aggregate_function_set_functions(f, size, init, update, combine, finalize);
        duckdb_aggregate_function_set_destructor(f, destroy);
        duckdb_aggregate_function_set_special_handling(f);
        knn_registry_retain(reg);
        duckdb_aggregate_function_set_extra_info(f, reg, registry_release_cb);
        ok = duckdb_add_aggregate_function_to_set(set, f) == DuckDBSuccess;
        duckdb_destroy_aggregate_function(&f);
    }
    if (ok) ok = duckdb_register_aggregate_function_set(con, set) == DuckDBSuccess;
    if (set) duckdb_destroy_aggregate_function_set(&set);
    return ok;
}

bool knn_register_index_write(duckdb_connection con, knn_registry *reg, knn_error *err) {
    const duckdb_type ins[4] = {DUCKDB_TYPE_VARCHAR, DUCKDB_TYPE_BIGINT, DUCKDB_TYPE_ANY, DUCKDB_TYPE_ANY};
    const duckdb_type del[2] = {DUCKDB_TYPE_VARCHAR, DUCKDB_TYPE_BIGINT};
    if (!knn_register_aggregate(con, reg, "knn_index_insert", ins, 3, 4, write_state_size, write_init, insert_update,
                                insert_combine, insert_finalize, write_destroy)) {
        knn_error_set(err, KNN_ESTATE, "Error creating function knn_index_insert");
        return false;
    }
    if (!knn_register_aggregate(con, reg, "knn_index_delete", del, 2, 2, write_state_size, write_init, delete_update,
                                delete_combine, delete_finalize, write_destroy)) {
        knn_error_set(err, KNN_ESTATE, "Error creating function knn_index_delete");
        return false;
    }
    return true;
}
