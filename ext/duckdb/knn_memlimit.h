/* Memory caps of index builds: parsing sizes as DuckDB writes them, estimating what rows will cost,
 * and refusing a build that would exceed an index's cap before it allocates. */
#ifndef KNN_MEMLIMIT_H
#define KNN_MEMLIMIT_H

#include <stddef.h>

#include "duckdb_extension.h"
#include "base/knn_error.h"
#include "index/knn_registry.h"

/* Parses "4GB", "1.5 GiB", "512 MB", "1000000" (bytes), as DuckDB's memory_limit accepts them
 * (KB/MB/GB/TB are powers of 1000, KiB/MiB/GiB/TiB of 1024); "none"/"unlimited"/"0" give 0 (no cap). */
knn_status knn_parse_bytes(const char *text, size_t *out, knn_error *err);

/* Fails (KNN_ENOMEM, a message naming the cap and the fix) when adding `rows` rows (labelled or not)
 * to the index would exceed its memory_limit. */
knn_status knn_memory_check(const knn_entry *e, size_t rows, int labelled, knn_error *err);

/* 80% of the machine's RAM in bytes (0 when the system cannot tell). */
size_t knn_memlimit_ram_cap(void);

/* Reads DuckDB's memory_limit through the connection DuckDB hands the extension at load, and makes it
 * the registry's default cap, at most knn_memlimit_ram_cap() (that alone when the setting cannot be read
 * or says unlimited). */
void knn_memlimit_init_default(duckdb_connection con, knn_registry *reg);

#endif
