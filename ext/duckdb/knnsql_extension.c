/* Entrypoint of the knnsql DuckDB extension: creates the database's index registry, registers each
 * SQL area and reports failures. */
#define DUCKDB_EXTENSION_NAME knnsql
#include "duckdb_extension.h"
#include "base/knn_error.h"
#include "index/knn_registry.h"
#include "sql_register.h"

typedef bool (*register_fn)(duckdb_connection, knn_registry *, knn_error *);

static const register_fn areas[] = {
    knn_register_exact,       knn_register_debug,        knn_register_index_admin,
    knn_register_index_write, knn_register_index_search, knn_register_among, knn_register_index_dump,
    knn_register_sample,      knn_register_analytics_predict, knn_register_analytics_drift,
    knn_register_analytics_sampling, knn_register_analytics_depth, knn_register_analytics_estimators,
    knn_register_recall,
};

DUCKDB_EXTENSION_ENTRYPOINT(duckdb_connection connection, duckdb_extension_info info,
                            struct duckdb_extension_access *access) {
    knn_error err;
    knn_error_clear(&err);
    /* The registry lives as long as the functions that hold it, i.e. as long as the database. */
    knn_registry *reg = knn_registry_new();
    if (reg == NULL) {
        access->set_error(info, "knnsql: out of memory creating the index registry");
        return false;
    }
    bool ok = true;
    for (size_t i = 0; ok && i < sizeof areas / sizeof areas[0]; i++) ok = areas[i](connection, reg, &err);
    knn_registry_release(reg);
    if (!ok) access->set_error(info, err.msg);
    return ok;
}
