/* Persistence inside the database file: knn_index_dump and knn_index_restore.
 *
 *   CREATE TABLE docs_idx AS SELECT * FROM knn_index_dump('docs');       -- rows (part INTEGER, bytes BLOB)
 *   SELECT knn_index_restore('docs', part, bytes) FROM docs_idx;         -- BIGINT rows restored
 *
 * The bytes are the core's versioned, checksummed graph format (knn_graph_io.c), cut into parts of
 * at most 16 MiB so no single BLOB grows unwieldy. Restore reassembles the parts in part order, and
 * checks that none is missing, before any byte is parsed. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "duckdb_extension.h"
#include "knn_glue.h"
#include "index/knn_registry.h"
#include "sql_register.h"

DUCKDB_EXTENSION_EXTERN

#define PART_BYTES ((size_t)16 << 20)

/* ---- knn_index_dump ----------------------------------------------------------------------------- */

typedef struct dump_bind {
    char name[KNN_NAME_MAX + 1];
    size_t name_len;
} dump_bind;

typedef struct dump_state {
    int started;
    uint8_t *bytes;
    size_t len, pos;
    int32_t part;
} dump_state;

static void dump_state_free(void *p) {
    dump_state *st = p;
    if (st) free(st->bytes);
    free(st);
}

static void dump_bind_fn(duckdb_bind_info info) {
    knn_error err;
    knn_error_clear(&err);
    dump_bind *b = calloc(1, sizeof *b);
    if (b == NULL || !knn_bind_varchar(info, 0, b->name, sizeof b->name, &b->name_len, "knn_index_dump", "index name",
                                       &err)) {
        free(b);
        duckdb_bind_set_error(info, b ? err.msg : "knn_index_dump: out of memory");
        return;
    }
    knn_bind_column(info, "part", DUCKDB_TYPE_INTEGER);
    knn_bind_column(info, "bytes", DUCKDB_TYPE_BLOB);
    duckdb_bind_set_bind_data(info, b, free);
}

static void dump_init(duckdb_init_info info) {
    dump_state *st = calloc(1, sizeof *st);
    if (st == NULL) {
        duckdb_init_set_error(info, "knn_index_dump: out of memory");
        return;
    }
    duckdb_init_set_init_data(info, st, dump_state_free);
}

static void dump_run(duckdb_function_info info, duckdb_data_chunk out) {
    dump_bind *b = duckdb_function_get_bind_data(info);
    dump_state *st = duckdb_function_get_init_data(info);
    if (!st->started) {
        st->started = 1;
        knn_error err;
        knn_error_clear(&err);
        knn_entry *e = knn_registry_get(duckdb_function_get_extra_info(info), b->name, b->name_len, &err);
        if (e && e->kind != KNN_KIND_GRAPH) {
            knn_error_set(&err, KNN_EINVAL, "index '%s' is flat; only graph indexes are dumped (a flat index is "
                          "rebuilt from its table by one knn_index_insert)", e->name);
        } else if (e) {
            knn_graph_save(e->graph, &st->bytes, &st->len, &err);
        }
        knn_entry_release(e);
        if (err.status != KNN_OK) {
            char msg[KNN_ERROR_MSG_LEN + 32];
            snprintf(msg, sizeof msg, "knn_index_dump: %s", err.msg);
            duckdb_function_set_error(info, msg);
            return;
        }
    }
    duckdb_vector parts = duckdb_data_chunk_get_vector(out, 0);
    duckdb_vector blobs = duckdb_data_chunk_get_vector(out, 1);
    idx_t rows = 0;
    /* A few parts per chunk keeps each output chunk's string heap modest. */
    while (st->pos < st->len && rows < 4) {
        size_t n = st->len - st->pos < PART_BYTES ? st->len - st->pos : PART_BYTES;
        ((int32_t *)duckdb_vector_get_data(parts))[rows] = st->part++;
        duckdb_vector_assign_string_element_len(blobs, rows, (const char *)st->bytes + st->pos, n);
        st->pos += n;
        rows++;
    }
    duckdb_data_chunk_set_size(out, rows);
}

/* ---- knn_index_restore -------------------------------------------------------------------------- */

typedef struct part_buf {
    int64_t part;
    uint8_t *bytes;
    size_t len;
} part_buf;

typedef struct restore_acc {
    char name[KNN_NAME_MAX + 1];
    part_buf *parts;
    size_t n, cap;
} restore_acc;

typedef struct restore_state {
    restore_acc *acc;
} restore_state;

static void restore_acc_free(restore_acc *a) {
    if (a == NULL) return;
    for (size_t i = 0; i < a->n; i++) free(a->parts[i].bytes);
    free(a->parts);
    free(a);
}

static idx_t restore_size(duckdb_function_info info) {
    (void)info;
    return sizeof(restore_state);
}

static void restore_init(duckdb_function_info info, duckdb_aggregate_state state) {
    (void)info;
    ((restore_state *)state)->acc = NULL;
}

static void restore_destroy(duckdb_aggregate_state *states, idx_t count) {
    for (idx_t i = 0; i < count; i++) {
        restore_acc_free(((restore_state *)states[i])->acc);
        ((restore_state *)states[i])->acc = NULL;
    }
}

static knn_status add_part(restore_acc *a, int64_t part, const void *bytes, size_t len, knn_error *err) {
    if (a->n == a->cap) {
        size_t cap = a->cap ? a->cap * 2 : 8;
        part_buf *p = realloc(a->parts, cap * sizeof *p);
        if (p == NULL) return knn_error_set(err, KNN_ENOMEM, "out of memory");
        a->parts = p;
        a->cap = cap;
    }
    uint8_t *copy = malloc(len ? len : 1);
    if (copy == NULL) return knn_error_set(err, KNN_ENOMEM, "out of memory for a %zu-byte part", len);
    memcpy(copy, bytes, len);
    a->parts[a->n++] = (part_buf){part, copy, len};
    return KNN_OK;
}

static restore_acc *restore_acc_for(restore_state *st, const char *name, size_t len, knn_error *err) {
    if (st->acc) {
        if (strlen(st->acc->name) != len || memcmp(st->acc->name, name, len) != 0) {
            knn_error_set(err, KNN_EINVAL, "every row of one call must name the same index");
            return NULL;
        }
        return st->acc;
    }
    if (knn_name_check(name, len, err) != KNN_OK) return NULL;
    restore_acc *a = calloc(1, sizeof *a);
    if (a == NULL) {
        knn_error_set(err, KNN_ENOMEM, "out of memory");
        return NULL;
    }
    memcpy(a->name, name, len);
    st->acc = a;
    return a;
}

static void restore_report(duckdb_function_info info, const knn_error *err) {
    char msg[KNN_ERROR_MSG_LEN + 32];
    snprintf(msg, sizeof msg, "knn_index_restore: %s", err->msg);
    duckdb_aggregate_function_set_error(info, msg);
}

static void restore_update(duckdb_function_info info, duckdb_data_chunk input, duckdb_aggregate_state *states) {
    knn_error err;
    knn_error_clear(&err);
    idx_t n = duckdb_data_chunk_get_size(input);
    duckdb_vector names = duckdb_data_chunk_get_vector(input, 0);
    duckdb_vector partv = duckdb_data_chunk_get_vector(input, 1);
    duckdb_vector blobv = duckdb_data_chunk_get_vector(input, 2);
    const uint64_t *blob_valid = duckdb_vector_get_validity(blobv);
    duckdb_string_t *blobs = duckdb_vector_get_data(blobv);
    for (idx_t i = 0; i < n; i++) {
        const char *name;
        size_t len;
        int64_t part;
        if (!knn_get_varchar(names, i, &name, &len)) {
            knn_error_set(&err, KNN_EINVAL, "index name must not be NULL");
            break;
        }
        if (!knn_get_bigint(partv, i, &part) || !knn_valid(blob_valid, i)) {
            knn_error_set(&err, KNN_EDATA, "part and bytes must not be NULL (rows come from knn_index_dump)");
            break;
        }
        restore_acc *a = restore_acc_for((restore_state *)states[i], name, len, &err);
        if (a == NULL) break;
        if (add_part(a, part, duckdb_string_t_data(&blobs[i]), duckdb_string_t_length(blobs[i]), &err) != KNN_OK) break;
    }
    if (err.status != KNN_OK) restore_report(info, &err);
}

static void restore_combine(duckdb_function_info info, duckdb_aggregate_state *source, duckdb_aggregate_state *target,
                            idx_t count) {
    knn_error err;
    knn_error_clear(&err);
    for (idx_t i = 0; i < count && err.status == KNN_OK; i++) {
        restore_acc *src = ((restore_state *)source[i])->acc;
        if (src == NULL) continue;
        restore_acc *dst = restore_acc_for((restore_state *)target[i], src->name, strlen(src->name), &err);
        for (size_t j = 0; dst && j < src->n && err.status == KNN_OK; j++) {
            add_part(dst, src->parts[j].part, src->parts[j].bytes, src->parts[j].len, &err);
        }
    }
    if (err.status != KNN_OK) restore_report(info, &err);
}

static int cmp_parts(const void *a, const void *b) {
    int64_t x = ((const part_buf *)a)->part, y = ((const part_buf *)b)->part;
    return (x > y) - (x < y);
}

static void restore_finalize(duckdb_function_info info, duckdb_aggregate_state *source, duckdb_vector result,
                             idx_t count, idx_t offset) {
    knn_error err;
    knn_error_clear(&err);
    knn_registry *reg = duckdb_aggregate_function_get_extra_info(info);
    int64_t *out = duckdb_vector_get_data(result);
    for (idx_t i = 0; i < count && err.status == KNN_OK; i++) {
        restore_acc *a = ((restore_state *)source[i])->acc;
        out[offset + i] = 0;
        if (a == NULL || a->n == 0) continue;
        qsort(a->parts, a->n, sizeof *a->parts, cmp_parts);
        size_t total = 0;
        for (size_t j = 0; j < a->n; j++) {
            if (a->parts[j].part != (int64_t)j) {
                knn_error_set(&err, KNN_EDATA, "parts of index '%s' must be numbered 0..%zu without gaps or repeats; "
                              "found part %lld at position %zu", a->name, a->n - 1, (long long)a->parts[j].part, j);
                break;
            }
            total += a->parts[j].len;
        }
        if (err.status != KNN_OK) break;
        size_t cap = knn_registry_default_memory_limit(reg);
        if (cap && total > cap) { /* the loaded index takes at least its byte size */
            knn_error_set(&err, KNN_ENOMEM, "index '%s' is %zu bytes, over the memory_limit of %zu bytes in force when "
                          "knnsql was loaded; SET memory_limit higher before loading knnsql", a->name, total, cap);
            break;
        }
        uint8_t *all = malloc(total ? total : 1);
        if (all == NULL) {
            knn_error_set(&err, KNN_ENOMEM, "out of memory for %zu bytes", total);
            break;
        }
        size_t pos = 0;
        for (size_t j = 0; j < a->n; j++) {
            memcpy(all + pos, a->parts[j].bytes, a->parts[j].len);
            pos += a->parts[j].len;
        }
        knn_graph *g = NULL;
        knn_status s = knn_graph_load(all, total, &g, &err);
        free(all);
        if (s != KNN_OK) break;
        size_t rows = knn_graph_live(g);
        if (knn_registry_adopt(reg, a->name, strlen(a->name), g, &err) != KNN_OK) break;
        out[offset + i] = (int64_t)rows;
        for (size_t j = 0; j < a->n; j++) free(a->parts[j].bytes);
        a->n = 0;
    }
    if (err.status != KNN_OK) restore_report(info, &err);
}

bool knn_register_index_dump(duckdb_connection con, knn_registry *reg, knn_error *err) {
    const duckdb_type name_param[1] = {DUCKDB_TYPE_VARCHAR};
    if (!knn_register_table_function(con, reg, "knn_index_dump", dump_bind_fn, dump_init, dump_run, name_param, 1,
                                     NULL, NULL)) {
        knn_error_set(err, KNN_ESTATE, "Error creating function knn_index_dump");
        return false;
    }
    const duckdb_type params[3] = {DUCKDB_TYPE_VARCHAR, DUCKDB_TYPE_BIGINT, DUCKDB_TYPE_BLOB};
    if (!knn_register_aggregate(con, reg, "knn_index_restore", params, 3, 3, restore_size, restore_init, restore_update,
                                restore_combine, restore_finalize, restore_destroy)) {
        knn_error_set(err, KNN_ESTATE, "Error creating function knn_index_restore");
        return false;
    }
    return true;
}
