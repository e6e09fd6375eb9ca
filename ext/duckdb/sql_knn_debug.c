/* knn_debug(): version, C API version and SIMD level, for bug reports and test skips. */
#include <stdio.h>
#include <string.h>

#include "duckdb_extension.h"
#include "knn_api.h"
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

bool knn_register_debug(duckdb_connection con, knn_registry *reg, knn_error *err) {
    (void)reg;
    duckdb_scalar_function f = duckdb_create_scalar_function();
    duckdb_scalar_function_set_name(f, "knn_debug");
    duckdb_logical_type t = duckdb_create_logical_type(DUCKDB_TYPE_VARCHAR);
    duckdb_scalar_function_set_return_type(f, t);
    duckdb_destroy_logical_type(&t);
    duckdb_scalar_function_set_function(f, sql_knn_debug);
    /* Volatile: the SIMD level follows KNNSQL_SIMD at call time, so the result must not be folded. */
    duckdb_scalar_function_set_volatile(f);
    bool ok = duckdb_register_scalar_function(con, f) == DuckDBSuccess;
    duckdb_destroy_scalar_function(&f);
    if (!ok) knn_error_set(err, KNN_ESTATE, "Error creating function knn_debug");
    return ok;
}
