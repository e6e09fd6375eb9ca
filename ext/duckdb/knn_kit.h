/* The function kit: how a SQL function of the glue is declared, registered and reports errors.
 *
 * A SQL area writes its own logic (a bind/run pair, a scalar callback, or an aggregate's update /
 * merge / finalize hooks) plus one entry in a static table, and hands the table to
 * knn_register_scalars / knn_register_tables / knn_register_aggregates. The kit owns the rest: the
 * overloads, parameter and result types, the registry reference every function carries, aggregate
 * state lifecycle (size, init, destroy, the combine and finalize loops), table-function state, and the
 * one error path ("fn: message", unless the message already names fn). The kit calls no SQL area. */
#ifndef KNN_KIT_H
#define KNN_KIT_H

#include <stdbool.h>
#include <stddef.h>

#include "duckdb_extension.h"
#include "base/knn_error.h"
#include "index/knn_registry.h"

/* Type codes of parameters and result fields: a DuckDB type, or KNN_LIST_OF(t) for t[]. */
#define KNN_LIST_FLAG 0x10000
#define KNN_LIST_OF(t) ((duckdb_type)(KNN_LIST_FLAG | (int)(t)))
#define KNN_MAX_PARAMS 12
#define KNN_MAX_FIELDS 10

/* The fields of a STRUCT result (result type DUCKDB_TYPE_STRUCT or KNN_LIST_OF(DUCKDB_TYPE_STRUCT)). */
typedef struct knn_fields {
    size_t n;
    const char *names[KNN_MAX_FIELDS];
    duckdb_type types[KNN_MAX_FIELDS];
} knn_fields;

duckdb_logical_type knn_logical_type(duckdb_type code, const knn_fields *fields);

/* ---- errors ---------------------------------------------------------------------------------------- */

/* err->msg as the user sees it: "fn: msg", or msg alone when it already starts with fn (or fn is NULL). */
void knn_error_text(char *out, size_t cap, const char *fn, const knn_error *err);
/* Rewrites err->msg in place as knn_error_text does. */
void knn_error_prefix(const char *fn, knn_error *err);
void knn_fail_bind(duckdb_bind_info info, const char *fn, const knn_error *err);
void knn_fail_init(duckdb_init_info info, const char *fn, const knn_error *err);
void knn_fail_run(duckdb_function_info info, const char *fn, const knn_error *err);    /* table function */
void knn_fail_scalar(duckdb_function_info info, const char *fn, const knn_error *err);
void knn_fail_aggregate(duckdb_function_info info, const char *fn, const knn_error *err);

/* ---- results --------------------------------------------------------------------------------------- */

void knn_set_null(duckdb_vector v, idx_t row);
/* NULL result for row; a LIST result also gets a well-formed empty entry. */
void knn_result_null(duckdb_vector result, idx_t row);
/* Appends a list of n entries for row of a LIST vector; *base is the first child position. */
knn_status knn_list_begin(duckdb_vector list, idx_t row, size_t n, idx_t *base, knn_error *err);
/* Gives rows [first, first + rows) of a LIST vector consecutive lists of per_row entries each and returns
 * the child data of the first (of element size elem); NULL with "could not reserve the <what>". */
void *knn_list_rows(duckdb_vector list, idx_t first, size_t rows, size_t per_row, size_t elem, const char *what,
                    knn_error *err);
/* Data of field f of a STRUCT vector, or of the STRUCT children of a LIST vector. */
duckdb_vector knn_field_vec(duckdb_vector v, idx_t f, bool is_list);
void *knn_field(duckdb_vector v, idx_t f, bool is_list);
/* Rows of the next output chunk of a cursor at pos over n rows. */
idx_t knn_chunk_rows(size_t n, size_t pos);

/* ---- every function's extra info ------------------------------------------------------------------- */

/* The database's index registry (retained by each function) and the function's table entry. */
typedef struct knn_fn_extra {
    knn_registry *reg;
    const void *def;
} knn_fn_extra;

knn_registry *knn_bind_registry(duckdb_bind_info info);
knn_registry *knn_table_registry(duckdb_function_info info);
knn_registry *knn_scalar_registry(duckdb_function_info info);

/* ---- scalar functions ------------------------------------------------------------------------------ */

typedef struct knn_scalar_def {
    const char *name;
    duckdb_scalar_function_t run;
    duckdb_type params[KNN_MAX_PARAMS];
    size_t arities[4], n_arities; /* one overload per arity: that many leading params */
    duckdb_type result;
    const knn_fields *fields;
    bool is_volatile;   /* depends on more than its arguments (an index, the environment) */
    bool special_nulls; /* the callback sees NULL arguments */
} knn_scalar_def;

bool knn_register_scalars(duckdb_connection con, knn_registry *reg, const knn_scalar_def *defs, size_t n,
                          knn_error *err);

/* ---- table functions ------------------------------------------------------------------------------- */

typedef struct knn_table_def {
    const char *name;
    duckdb_table_function_bind_t bind;
    duckdb_table_function_t run;
    /* Positional parameters; DUCKDB_TYPE_LIST marks a query vector, taken as ANY and read by
     * knn_value_to_floats, so FLOAT[d] arrays, DOUBLE and DECIMAL lists and prepared lists all work. */
    duckdb_type positional[4];
    size_t n_positional;
    const char *named[KNN_MAX_PARAMS + 1]; /* NULL-terminated */
    duckdb_type named_types[KNN_MAX_PARAMS];
    /* Per-execution state the kit allocates zeroed; state_free (default free) releases it. */
    size_t state_size;
    void (*state_free)(void *state);
} knn_table_def;

/* On a table function's first call (its state starts with an int "started" flag): marks it started and,
 * when e is not NULL, opens the index its bind data names (the bind data starts with a knn_index_ref)
 * into *e (NULL with err set). False on every later call. */
bool knn_table_first(duckdb_function_info info, knn_entry **e, knn_error *err);

bool knn_register_tables(duckdb_connection con, knn_registry *reg, const knn_table_def *defs, size_t n,
                         knn_error *err);

/* ---- aggregates ------------------------------------------------------------------------------------ */

/* One group's state: the function's accumulator (NULL until its first row) and how to free it. */
typedef struct knn_agg_state {
    void *acc;
    void (*free_acc)(void *acc);
} knn_agg_state;

static inline knn_agg_state *knn_agg_at(duckdb_aggregate_state *states, idx_t i) {
    return (knn_agg_state *)states[i];
}

typedef struct knn_agg_def knn_agg_def;

typedef struct knn_agg_ctx {
    const knn_agg_def *def;
    knn_registry *reg;
} knn_agg_ctx;

/* Errors of these steps are reported as the hook wrote them (no "fn: " prefix). */
#define KNN_RAW_COMBINE 1u
#define KNN_RAW_FINALIZE 2u

struct knn_agg_def {
    const char *name;
    duckdb_type params[KNN_MAX_PARAMS];
    size_t min_params, n_params; /* one overload per arity */
    duckdb_type result;
    const knn_fields *fields;
    void (*free_acc)(void *acc);
    /* One chunk of rows; states[i] is row i's group. */
    knn_status (*update)(const knn_agg_ctx *cx, duckdb_data_chunk input, duckdb_aggregate_state *states,
                         knn_error *err);
    /* Folds src (acc not NULL) into dst; may take src->acc over (leave src->acc NULL then). */
    knn_status (*merge)(const knn_agg_ctx *cx, knn_agg_state *src, knn_agg_state *dst, knn_error *err);
    /* Writes st's result at row of result (st->acc may be NULL). */
    knn_status (*finalize)(const knn_agg_ctx *cx, knn_agg_state *st, duckdb_vector result, idx_t row,
                           knn_error *err);
    unsigned raw;     /* KNN_RAW_* */
    const void *data; /* the function's own description, for shared hooks */
};

/* Adjacent entries with the same name become overloads of one function. */
bool knn_register_aggregates(duckdb_connection con, knn_registry *reg, const knn_agg_def *defs, size_t n,
                             knn_error *err);

#endif
