/* One registration function per SQL area; the entrypoint calls each in turn. */
#ifndef SQL_REGISTER_H
#define SQL_REGISTER_H

#include <stdbool.h>

#include "duckdb_extension.h"
#include "knn_error.h"

bool knn_register_exact(duckdb_connection con, knn_error *err);
bool knn_register_debug(duckdb_connection con, knn_error *err);

#endif
