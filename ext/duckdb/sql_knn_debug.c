/* knn_debug(): version, C API version and SIMD level, for bug reports and test skips. */
#include <stdio.h>
#include <string.h>

#include "duckdb_extension.h"
#include "knn_api.h"
#include "knn_kit.h"
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

/* Volatile: the SIMD level follows KNNSQL_SIMD at call time, so the result must not be folded. */
static const knn_scalar_def debug_scalar[] = {
    {.name = "knn_debug", .run = sql_knn_debug, .arities = {0}, .n_arities = 1, .result = DUCKDB_TYPE_VARCHAR,
     .is_volatile = true},
};

bool knn_register_debug(duckdb_connection con, knn_registry *reg, knn_error *err) {
    return knn_register_scalars(con, reg, debug_scalar, 1, err);
}
