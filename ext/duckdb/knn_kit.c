#include "knn_kit.h"
#include "knn_glue.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

DUCKDB_EXTENSION_EXTERN

/* ---- types ----------------------------------------------------------------------------------------- */

duckdb_logical_type knn_logical_type(duckdb_type code, const knn_fields *fields) {
    if ((int)code & KNN_LIST_FLAG) {
        duckdb_logical_type e = knn_logical_type((duckdb_type)((int)code & ~KNN_LIST_FLAG), fields);
        duckdb_logical_type l = duckdb_create_list_type(e);
        duckdb_destroy_logical_type(&e);
        return l;
    }
    if (code != DUCKDB_TYPE_STRUCT) return duckdb_create_logical_type(code);
    duckdb_logical_type t[KNN_MAX_FIELDS];
    for (size_t i = 0; i < fields->n; i++) t[i] = knn_logical_type(fields->types[i], NULL);
    duckdb_logical_type st = duckdb_create_struct_type(t, (const char **)fields->names, fields->n);
    for (size_t i = 0; i < fields->n; i++) duckdb_destroy_logical_type(&t[i]);
    return st;
}

/* ---- errors ---------------------------------------------------------------------------------------- */

void knn_error_text(char *out, size_t cap, const char *fn, const knn_error *err) {
    if (fn == NULL || strncmp(err->msg, fn, strlen(fn)) == 0) {
        snprintf(out, cap, "%s", err->msg);
    } else {
        snprintf(out, cap, "%s: %s", fn, err->msg);
    }
}

void knn_error_prefix(const char *fn, knn_error *err) {
    char msg[KNN_ERROR_MSG_LEN];
    knn_error_text(msg, sizeof msg, fn, err);
    memcpy(err->msg, msg, sizeof msg);
}

#define FAIL_WITH(setter)                                   \
    do {                                                    \
        char msg[KNN_ERROR_MSG_LEN + 64];                   \
        knn_error_text(msg, sizeof msg, fn, err);           \
        setter(info, msg);                                  \
    } while (0)

void knn_fail_bind(duckdb_bind_info info, const char *fn, const knn_error *err) { FAIL_WITH(duckdb_bind_set_error); }
void knn_fail_init(duckdb_init_info info, const char *fn, const knn_error *err) { FAIL_WITH(duckdb_init_set_error); }
void knn_fail_run(duckdb_function_info info, const char *fn, const knn_error *err) {
    FAIL_WITH(duckdb_function_set_error);
}
void knn_fail_scalar(duckdb_function_info info, const char *fn, const knn_error *err) {
    FAIL_WITH(duckdb_scalar_function_set_error);
}
void knn_fail_aggregate(duckdb_function_info info, const char *fn, const knn_error *err) {
    FAIL_WITH(duckdb_aggregate_function_set_error);
}

/* ---- results --------------------------------------------------------------------------------------- */

void knn_set_null(duckdb_vector v, idx_t row) {
    duckdb_vector_ensure_validity_writable(v);
    duckdb_validity_set_row_invalid(duckdb_vector_get_validity(v), row);
}

void knn_result_null(duckdb_vector result, idx_t row) {
    knn_set_null(result, row);
    duckdb_logical_type t = duckdb_vector_get_column_type(result);
    if (duckdb_get_type_id(t) == DUCKDB_TYPE_LIST) {
        duckdb_list_entry *e = (duckdb_list_entry *)duckdb_vector_get_data(result);
        e[row].offset = duckdb_list_vector_get_size(result);
        e[row].length = 0;
    }
    duckdb_destroy_logical_type(&t);
}

knn_status knn_list_begin(duckdb_vector list, idx_t row, size_t n, idx_t *base, knn_error *err) {
    idx_t b = duckdb_list_vector_get_size(list);
    if (duckdb_list_vector_reserve(list, b + n) != DuckDBSuccess) {
        return knn_error_set(err, KNN_ENOMEM, "could not reserve a result list of %zu entries", n);
    }
    duckdb_list_vector_set_size(list, b + n);
    duckdb_list_entry *e = (duckdb_list_entry *)duckdb_vector_get_data(list);
    e[row].offset = b;
    e[row].length = n;
    *base = b;
    return KNN_OK;
}

void *knn_list_rows(duckdb_vector list, idx_t first, size_t rows, size_t per_row, size_t elem, const char *what,
                    knn_error *err) {
    idx_t base = duckdb_list_vector_get_size(list);
    if (duckdb_list_vector_reserve(list, base + rows * per_row) != DuckDBSuccess) {
        knn_error_set(err, KNN_ENOMEM, "could not reserve the %s", what);
        return NULL;
    }
    duckdb_list_vector_set_size(list, base + rows * per_row);
    duckdb_list_entry *e = duckdb_vector_get_data(list);
    for (size_t r = 0; r < rows; r++) e[first + r] = (duckdb_list_entry){base + r * per_row, per_row};
    return (char *)duckdb_vector_get_data(duckdb_list_vector_get_child(list)) + base * elem;
}

duckdb_vector knn_field_vec(duckdb_vector v, idx_t f, bool is_list) {
    return duckdb_struct_vector_get_child(is_list ? duckdb_list_vector_get_child(v) : v, f);
}

void *knn_field(duckdb_vector v, idx_t f, bool is_list) { return duckdb_vector_get_data(knn_field_vec(v, f, is_list)); }

idx_t knn_chunk_rows(size_t n, size_t pos) {
    size_t left = n - pos;
    return left < duckdb_vector_size() ? (idx_t)left : duckdb_vector_size();
}

/* ---- extra info ------------------------------------------------------------------------------------ */

static void extra_free(void *p) {
    knn_fn_extra *x = p;
    knn_registry_release(x->reg);
    free(x);
}

static knn_fn_extra *extra_new(knn_registry *reg, const void *def) {
    knn_fn_extra *x = malloc(sizeof *x);
    if (x == NULL) return NULL;
    knn_registry_retain(reg);
    x->reg = reg;
    x->def = def;
    return x;
}

knn_registry *knn_bind_registry(duckdb_bind_info info) {
    return ((knn_fn_extra *)duckdb_bind_get_extra_info(info))->reg;
}

knn_registry *knn_table_registry(duckdb_function_info info) {
    return ((knn_fn_extra *)duckdb_function_get_extra_info(info))->reg;
}

knn_registry *knn_scalar_registry(duckdb_function_info info) {
    return ((knn_fn_extra *)duckdb_scalar_function_get_extra_info(info))->reg;
}

static bool created(bool ok, const char *name, knn_error *err) {
    if (!ok) knn_error_set(err, KNN_ESTATE, "Error creating function %s", name);
    return ok;
}

/* Parameters (the first arity of d->params) and return type of one overload f of a scalar or aggregate. */
#define SIGNATURE(kind, f, d, arity)                                          \
    do {                                                                      \
        for (size_t p = 0; p < (arity); p++) {                                \
            duckdb_logical_type t = knn_logical_type((d)->params[p], NULL);   \
            duckdb_##kind##_function_add_parameter(f, t);                     \
            duckdb_destroy_logical_type(&t);                                  \
        }                                                                     \
        duckdb_logical_type rt = knn_logical_type((d)->result, (d)->fields);  \
        duckdb_##kind##_function_set_return_type(f, rt);                      \
        duckdb_destroy_logical_type(&rt);                                     \
    } while (0)

/* ---- scalar functions ------------------------------------------------------------------------------ */

static bool register_scalar(duckdb_connection con, knn_registry *reg, const knn_scalar_def *d) {
    duckdb_scalar_function_set set = duckdb_create_scalar_function_set(d->name);
    bool ok = set != NULL;
    for (size_t a = 0; ok && a < d->n_arities; a++) {
        duckdb_scalar_function f = duckdb_create_scalar_function();
        duckdb_scalar_function_set_name(f, d->name);
        SIGNATURE(scalar, f, d, d->arities[a]);
        duckdb_scalar_function_set_function(f, d->run);
        if (d->special_nulls) duckdb_scalar_function_set_special_handling(f);
        if (d->is_volatile) duckdb_scalar_function_set_volatile(f);
        knn_fn_extra *x = extra_new(reg, d);
        ok = x != NULL;
        if (ok) duckdb_scalar_function_set_extra_info(f, x, extra_free);
        if (ok) ok = duckdb_add_scalar_function_to_set(set, f) == DuckDBSuccess;
        duckdb_destroy_scalar_function(&f);
    }
    if (ok) ok = duckdb_register_scalar_function_set(con, set) == DuckDBSuccess;
    if (set) duckdb_destroy_scalar_function_set(&set);
    return ok;
}

bool knn_register_scalars(duckdb_connection con, knn_registry *reg, const knn_scalar_def *defs, size_t n,
                          knn_error *err) {
    for (size_t i = 0; i < n; i++) {
        if (!created(register_scalar(con, reg, &defs[i]), defs[i].name, err)) return false;
    }
    return true;
}

/* ---- table functions ------------------------------------------------------------------------------- */

static void table_init(duckdb_init_info info) {
    const knn_table_def *d = ((knn_fn_extra *)duckdb_init_get_extra_info(info))->def;
    void *st = calloc(1, d->state_size);
    if (st == NULL) {
        knn_error err;
        knn_error_set(&err, KNN_ENOMEM, "out of memory");
        knn_fail_init(info, d->name, &err);
        return;
    }
    duckdb_init_set_init_data(info, st, d->state_free ? d->state_free : free);
}

bool knn_table_first(duckdb_function_info info, knn_entry **e, knn_error *err) {
    int *started = duckdb_function_get_init_data(info);
    if (*started) return false;
    *started = 1;
    knn_error_clear(err);
    if (e) {
        const knn_index_ref *ref = duckdb_function_get_bind_data(info);
        *e = knn_registry_get(knn_table_registry(info), ref->name, ref->len, err);
    }
    return true;
}

static bool register_table(duckdb_connection con, knn_registry *reg, const knn_table_def *d) {
    duckdb_table_function f = duckdb_create_table_function();
    duckdb_table_function_set_name(f, d->name);
    for (size_t i = 0; i < d->n_positional; i++) {
        duckdb_type p = d->positional[i] == DUCKDB_TYPE_LIST ? DUCKDB_TYPE_ANY : d->positional[i];
        duckdb_logical_type t = duckdb_create_logical_type(p);
        duckdb_table_function_add_parameter(f, t);
        duckdb_destroy_logical_type(&t);
    }
    for (size_t i = 0; d->named[i]; i++) {
        duckdb_logical_type t = duckdb_create_logical_type(d->named_types[i]);
        duckdb_table_function_add_named_parameter(f, d->named[i], t);
        duckdb_destroy_logical_type(&t);
    }
    knn_fn_extra *x = extra_new(reg, d);
    bool ok = x != NULL;
    if (ok) {
        duckdb_table_function_set_extra_info(f, x, extra_free);
        duckdb_table_function_set_bind(f, d->bind);
        duckdb_table_function_set_init(f, table_init);
        duckdb_table_function_set_function(f, d->run);
        ok = duckdb_register_table_function(con, f) == DuckDBSuccess;
    }
    duckdb_destroy_table_function(&f);
    return ok;
}

bool knn_register_tables(duckdb_connection con, knn_registry *reg, const knn_table_def *defs, size_t n,
                         knn_error *err) {
    for (size_t i = 0; i < n; i++) {
        if (!created(register_table(con, reg, &defs[i]), defs[i].name, err)) return false;
    }
    return true;
}

/* ---- aggregates ------------------------------------------------------------------------------------ */

static const knn_agg_def *agg_def(duckdb_function_info info, knn_agg_ctx *cx) {
    knn_fn_extra *x = duckdb_aggregate_function_get_extra_info(info);
    cx->def = x->def;
    cx->reg = x->reg;
    return cx->def;
}

static idx_t agg_size(duckdb_function_info info) {
    (void)info;
    return sizeof(knn_agg_state);
}

static void agg_init(duckdb_function_info info, duckdb_aggregate_state state) {
    knn_agg_ctx cx;
    knn_agg_state *s = (knn_agg_state *)state;
    s->acc = NULL;
    s->free_acc = agg_def(info, &cx)->free_acc;
}

static void agg_destroy(duckdb_aggregate_state *states, idx_t count) {
    for (idx_t i = 0; i < count; i++) {
        knn_agg_state *s = knn_agg_at(states, i);
        if (s->acc) s->free_acc(s->acc);
        s->acc = NULL;
    }
}

static void agg_report(duckdb_function_info info, const knn_agg_def *d, unsigned step, const knn_error *err) {
    if (err->status != KNN_OK) knn_fail_aggregate(info, d->raw & step ? NULL : d->name, err);
}

static void agg_update(duckdb_function_info info, duckdb_data_chunk input, duckdb_aggregate_state *states) {
    knn_agg_ctx cx;
    const knn_agg_def *d = agg_def(info, &cx);
    knn_error err;
    knn_error_clear(&err);
    d->update(&cx, input, states, &err);
    agg_report(info, d, 0, &err);
}

static void agg_combine(duckdb_function_info info, duckdb_aggregate_state *source, duckdb_aggregate_state *target,
                        idx_t count) {
    knn_agg_ctx cx;
    const knn_agg_def *d = agg_def(info, &cx);
    knn_error err;
    knn_error_clear(&err);
    for (idx_t i = 0; i < count; i++) {
        knn_agg_state *src = knn_agg_at(source, i);
        if (src->acc == NULL) continue;
        if (d->merge(&cx, src, knn_agg_at(target, i), &err) != KNN_OK) break;
    }
    agg_report(info, d, KNN_RAW_COMBINE, &err);
}

static void agg_finalize(duckdb_function_info info, duckdb_aggregate_state *source, duckdb_vector result, idx_t count,
                         idx_t offset) {
    knn_agg_ctx cx;
    const knn_agg_def *d = agg_def(info, &cx);
    knn_error err;
    knn_error_clear(&err);
    for (idx_t i = 0; i < count; i++) {
        if (d->finalize(&cx, knn_agg_at(source, i), result, offset + i, &err) != KNN_OK) break;
    }
    agg_report(info, d, KNN_RAW_FINALIZE, &err);
}

static bool add_overloads(duckdb_aggregate_function_set set, knn_registry *reg, const knn_agg_def *d) {
    bool ok = true;
    for (size_t arity = d->min_params; ok && arity <= d->n_params; arity++) {
        duckdb_aggregate_function f = duckdb_create_aggregate_function();
        duckdb_aggregate_function_set_name(f, d->name);
        SIGNATURE(aggregate, f, d, arity);
        duckdb_aggregate_function_set_functions(f, agg_size, agg_init, agg_update, agg_combine, agg_finalize);
        duckdb_aggregate_function_set_destructor(f, agg_destroy);
        duckdb_aggregate_function_set_special_handling(f);
        knn_fn_extra *x = extra_new(reg, d);
        ok = x != NULL;
        if (ok) duckdb_aggregate_function_set_extra_info(f, x, extra_free);
        if (ok) ok = duckdb_add_aggregate_function_to_set(set, f) == DuckDBSuccess;
        duckdb_destroy_aggregate_function(&f);
    }
    return ok;
}

bool knn_register_aggregates(duckdb_connection con, knn_registry *reg, const knn_agg_def *defs, size_t n,
                             knn_error *err) {
    for (size_t i = 0; i < n;) {
        duckdb_aggregate_function_set set = duckdb_create_aggregate_function_set(defs[i].name);
        bool ok = set != NULL;
        size_t j = i;
        for (; j < n && strcmp(defs[j].name, defs[i].name) == 0; j++) {
            if (ok) ok = add_overloads(set, reg, &defs[j]);
        }
        if (ok) ok = duckdb_register_aggregate_function_set(con, set) == DuckDBSuccess;
        if (set) duckdb_destroy_aggregate_function_set(&set);
        if (!created(ok, defs[i].name, err)) return false;
        i = j;
    }
    return true;
}
