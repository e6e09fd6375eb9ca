/* Memory caps of index builds (see knn_memlimit.h).
 *
 * The cap of an index is `memory_limit :=` given to knn_index_create, or else DuckDB's memory_limit
 * as it was when the extension was loaded (read once, in init, through the connection DuckDB passes
 * there: no hidden connection is kept), never more than 80% of the RAM: DuckDB 1.3 reports an unlimited
 * memory_limit as 1638 PiB, which must not turn the default cap off. Inserts check the projected size while they buffer rows and
 * again before the build, so a build that cannot fit fails before it allocates the index. The
 * estimate (knn_entry_bytes_after, in the core) follows the storage layouts and growth policies. */
#include "knn_memlimit.h"

#include <ctype.h>
#include <stdio.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "knn_glue.h"
#include "graph/knn_graph.h"

DUCKDB_EXTENSION_EXTERN

knn_status knn_parse_bytes(const char *text, size_t *out, knn_error *err) {
    const char *p = text;
    while (*p && isspace((unsigned char)*p)) p++;
    if (strcasecmp(p, "none") == 0 || strcasecmp(p, "unlimited") == 0) {
        *out = 0;
        return KNN_OK;
    }
    char *end = NULL;
    double v = strtod(p, &end);
    if (end == p || !isfinite(v) || v < 0) goto bad;
    while (*end && isspace((unsigned char)*end)) end++;
    static const struct { const char *unit; double scale; } units[] = {
        {"", 1},      {"b", 1},        {"byte", 1},     {"bytes", 1},   {"k", 1e3},      {"kb", 1e3},
        {"m", 1e6},   {"mb", 1e6},     {"g", 1e9},      {"gb", 1e9},    {"t", 1e12},     {"tb", 1e12},
        {"kib", 1024.0}, {"mib", 1048576.0}, {"gib", 1073741824.0}, {"tib", 1099511627776.0},
    };
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
        if (strcasecmp(end, units[i].unit) == 0) {
            double bytes = v * units[i].scale;
            if (bytes >= 18446744073709551615.0) goto bad;
            *out = (size_t)bytes;
            return KNN_OK;
        }
    }
bad:
    return knn_error_set(err, KNN_EINVAL, "memory_limit '%.40s' is not a size; write e.g. '4GB', '512 MiB', a number "
                         "of bytes, or 'none' for no cap", text);
}

/* "12.3 MB"-style text of a byte count, into buf. */
static const char *human(double bytes, char *buf, size_t len) {
    static const char *units[] = {"bytes", "KB", "MB", "GB", "TB", "PB"};
    size_t u = 0;
    while (bytes >= 1000.0 && u + 1 < sizeof units / sizeof units[0]) {
        bytes /= 1000.0;
        u++;
    }
    snprintf(buf, len, u == 0 ? "%.0f %s" : "%.1f %s", bytes, units[u]);
    return buf;
}

knn_status knn_memory_check(const knn_entry *e, size_t rows, int labelled, knn_error *err) {
    size_t cap = atomic_load(&((knn_entry *)e)->memory_limit);
    if (cap == 0 || rows == 0) return KNN_OK;
    size_t have = knn_entry_memory(e);
    double need = knn_entry_bytes_after((knn_entry *)e, rows, labelled);
    if (need <= (double)cap) return KNN_OK;
    char a[32], b[32], c[32];
    return knn_error_set(err, KNN_ENOMEM, "index '%s' (dim %zu) would grow to about %s with the %zu rows buffered so far (%s "
                         "held now), "
                         "over its memory_limit of %s; insert fewer rows per call, raise the cap with "
                         "knn_index_create(..., memory_limit := '8GB') (or 'none'), or SET memory_limit before "
                         "loading knnsql", e->name, e->dim, human(need, a, sizeof a), rows,
                         human((double)have, b, sizeof b), human((double)cap, c, sizeof c));
}

size_t knn_memlimit_ram_cap(void) {
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    if (pages <= 0 || page <= 0) return 0;
    double ram = 0.8 * (double)pages * (double)page;
    return ram >= 18446744073709551615.0 ? 0 : (size_t)ram;
}

void knn_memlimit_init_default(duckdb_connection con, knn_registry *reg) {
    size_t ram = knn_memlimit_ram_cap();
    knn_registry_set_default_memory_limit(reg, ram);
    duckdb_result res;
    if (duckdb_query(con, "SELECT current_setting('memory_limit')::VARCHAR", &res) != DuckDBSuccess) {
        duckdb_destroy_result(&res);
        return;
    }
    duckdb_data_chunk chunk = duckdb_fetch_chunk(res);
    const char *text;
    size_t len;
    if (chunk && duckdb_data_chunk_get_size(chunk) > 0 &&
        knn_get_varchar(duckdb_data_chunk_get_vector(chunk, 0), 0, &text, &len) && len < 64) {
        char buf[64];
        memcpy(buf, text, len);
        buf[len] = '\0';
        size_t bytes;
        knn_error err;
        knn_error_clear(&err);
        if (knn_parse_bytes(buf, &bytes, &err) == KNN_OK && bytes > 0 && (ram == 0 || bytes < ram)) {
            knn_registry_set_default_memory_limit(reg, bytes);
        }
    }
    if (chunk) duckdb_destroy_data_chunk(&chunk);
    duckdb_destroy_result(&res);
}
