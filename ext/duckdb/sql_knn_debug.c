/* knn_debug(): version, C API version and SIMD level, for bug reports and test skips. */
#include <stdio.h>
#include <string.h>

#include "duckdb_extension.h"
#include "knn_api.h"
#include "knn_kit.h"
#include "index/knn_registry.h"
#include "sql_register.h"

DUCKDB_EXTENSION_EXTERN

static void sql_knn_debug(duckdb_function_info info, duckdb_data_chunk input, duckdb_vector output) {
    (void)info;
    char text[256];
    snprintf(text, sizeof text, "knnsql %s; duckdb_c_api %s; simd %s (cpu best %s)", knn_version(),
             DUCKDB_EXTENSION_API_VERSION_STRING, knn_simd_name(), knn_simd_best());
    idx_t n = duckdb_data_chunk_get_size(input);
    if (n == 0) n = 1;
    for (idx_t i = 0; i < n; i++) duckdb_vector_assign_string_element(output, i, text);
}

/* knn_registry_handle(): this database's index registry as a number, for the Python package's direct
 * search path (knnsql/_direct.py hands it to knn_registry_ref through cffi, in the same process). */
static void sql_registry_handle(duckdb_function_info info, duckdb_data_chunk input, duckdb_vector output) {
    uint64_t h = (uint64_t)(uintptr_t)knn_scalar_registry(info);
    idx_t n = duckdb_data_chunk_get_size(input);
    if (n == 0) n = 1;
    for (idx_t i = 0; i < n; i++) ((uint64_t *)duckdb_vector_get_data(output))[i] = h;
}

/* Volatile: the SIMD level follows KNNSQL_SIMD at call time, so the result must not be folded. */
static const knn_scalar_def debug_scalar[] = {
    {.name = "knn_debug", .run = sql_knn_debug, .arities = {0}, .n_arities = 1, .result = DUCKDB_TYPE_VARCHAR,
     .is_volatile = true},
    {.name = "knn_registry_handle", .run = sql_registry_handle, .arities = {0}, .n_arities = 1,
     .result = DUCKDB_TYPE_UBIGINT, .is_volatile = true},
};

bool knn_register_debug(duckdb_connection con, knn_registry *reg, knn_error *err) {
    return knn_register_scalars(con, reg, debug_scalar, 2, err);
}
