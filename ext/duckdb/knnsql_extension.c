/* Entrypoint of the knnsql DuckDB extension: registers each SQL area and reports failures. */
#define DUCKDB_EXTENSION_NAME knnsql
#include "duckdb_extension.h"
#include "knn_error.h"
#include "sql_register.h"

typedef bool (*register_fn)(duckdb_connection, knn_error *);

static const register_fn areas[] = {
    knn_register_exact,
    knn_register_debug,
};

DUCKDB_EXTENSION_ENTRYPOINT(duckdb_connection connection, duckdb_extension_info info,
                            struct duckdb_extension_access *access) {
    knn_error err;
    knn_error_clear(&err);
    for (size_t i = 0; i < sizeof areas / sizeof areas[0]; i++) {
        if (!areas[i](connection, &err)) {
            access->set_error(info, err.msg);
            return false;
        }
    }
    return true;
}
