/* One registration function per SQL area; the entrypoint calls each in turn. */
#ifndef SQL_REGISTER_H
#define SQL_REGISTER_H

#include <stdbool.h>

#include "duckdb_extension.h"
#include "base/knn_error.h"
#include "index/knn_registry.h"

/* reg is the database's index registry; areas that keep it retain their own reference. */
bool knn_register_exact(duckdb_connection con, knn_registry *reg, knn_error *err);
bool knn_register_debug(duckdb_connection con, knn_registry *reg, knn_error *err);
bool knn_register_index_admin(duckdb_connection con, knn_registry *reg, knn_error *err);
bool knn_register_index_write(duckdb_connection con, knn_registry *reg, knn_error *err);
bool knn_register_index_search(duckdb_connection con, knn_registry *reg, knn_error *err);
bool knn_register_index_dump(duckdb_connection con, knn_registry *reg, knn_error *err);
bool knn_register_sample(duckdb_connection con, knn_registry *reg, knn_error *err);
/* kNN analytics aggregates and knn_recall (sql_analytics*.c). */
bool knn_register_analytics(duckdb_connection con, knn_registry *reg, knn_error *err);

/* Registers a table function whose extra_info is reg (retained). A positional DUCKDB_TYPE_LIST marks
 * the query vector (registered as ANY). named is NULL-terminated, with named_types alongside. */
bool knn_register_table_function(duckdb_connection con, knn_registry *reg, const char *name,
                                 duckdb_table_function_bind_t bind, duckdb_table_function_init_t init,
                                 duckdb_table_function_t run, const duckdb_type *positional, size_t n_positional,
                                 const char *const *named, const duckdb_type *named_types);

/* Registers an aggregate returning BIGINT whose extra_info is reg (retained), with one overload per
 * arity from min_params to n_params (the leading parameters of params). */
bool knn_register_aggregate(duckdb_connection con, knn_registry *reg, const char *name, const duckdb_type *params,
                            size_t min_params, size_t n_params, duckdb_aggregate_state_size size,
                            duckdb_aggregate_init_t init, duckdb_aggregate_update_t update,
                            duckdb_aggregate_combine_t combine, duckdb_aggregate_finalize_t finalize,
                            duckdb_aggregate_destroy_t destroy);

#endif
