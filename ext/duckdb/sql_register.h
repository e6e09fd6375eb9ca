/* One registration function per SQL area; the entrypoint calls each in turn. Each hands its table of
 * functions to the kit (knn_kit.h). */
#ifndef SQL_REGISTER_H
#define SQL_REGISTER_H

#include <stdbool.h>

#include "duckdb_extension.h"
#include "base/knn_error.h"
#include "index/knn_registry.h"

/* reg is the database's index registry; every function registered retains its own reference. */
bool knn_register_exact(duckdb_connection con, knn_registry *reg, knn_error *err);
bool knn_register_debug(duckdb_connection con, knn_registry *reg, knn_error *err);
bool knn_register_index_admin(duckdb_connection con, knn_registry *reg, knn_error *err);
bool knn_register_index_write(duckdb_connection con, knn_registry *reg, knn_error *err);
bool knn_register_index_search(duckdb_connection con, knn_registry *reg, knn_error *err);
bool knn_register_among(duckdb_connection con, knn_registry *reg, knn_error *err);
bool knn_register_index_dump(duckdb_connection con, knn_registry *reg, knn_error *err);
bool knn_register_sample(duckdb_connection con, knn_registry *reg, knn_error *err);
/* kNN analytics aggregates (sql_analytics_<topic>.c over the collector sql_analytics.c) and knn_recall. */
bool knn_register_analytics_predict(duckdb_connection con, knn_registry *reg, knn_error *err);
bool knn_register_analytics_drift(duckdb_connection con, knn_registry *reg, knn_error *err);
bool knn_register_analytics_sampling(duckdb_connection con, knn_registry *reg, knn_error *err);
bool knn_register_analytics_depth(duckdb_connection con, knn_registry *reg, knn_error *err);
bool knn_register_analytics_estimators(duckdb_connection con, knn_registry *reg, knn_error *err);
bool knn_register_recall(duckdb_connection con, knn_registry *reg, knn_error *err);

#endif
