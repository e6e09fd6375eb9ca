/* Persistence inside the database file: knn_index_dump and knn_index_restore.
 *
 *   CREATE TABLE docs_idx AS SELECT * FROM knn_index_dump('docs');       -- rows (part INTEGER, bytes BLOB)
 *   SELECT knn_index_restore('docs', part, bytes) FROM docs_idx;         -- BIGINT rows restored
 *   SELECT knn_index_restore('docs', part, bytes, 'docs') FROM docs_idx; -- and the source table
 *   SELECT knn_index_restore('docs', part, bytes, 'docs', '/ssd/vec') FROM docs_idx; -- and a vectors_dir
 *
 * The optional fourth argument sets the restored index's source table (knn_indexes().source), which the
 * bytes do not hold: the same name for every row. The fifth is where a quantized graph's float-row file is
 * created (default: DuckDB's temp_directory, as for knn_index_create).
 *
 * The bytes are the core's versioned, checksummed graph format (knn_graph_io.c), cut into parts of
 * at most 16 MiB so no single BLOB grows unwieldy. Restore reassembles the parts in part order, and
 * checks that none is missing, before any byte is parsed.
 *
 * A quantized graph (quantization := 'sq8' / 'sq4') dumps its codes, ranges and links, not its float rows:
 * those are in the table it was built from, as a flat index's are. After knn_index_restore, give them back
 * (each row must code to what the index holds for its id; searches wait until no live row lacks one):
 *   SELECT knn_index_restore_vectors('docs', id, emb) FROM docs;        -- BIGINT rows taken
 * Rows are taken a chunk at a time (nothing is buffered); ids the index does not hold are skipped. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "duckdb_extension.h"
#include "knn_glue.h"
#include "knn_kit.h"
#include "index/knn_registry.h"
#include "window/knn_window.h"
#include "sql_register.h"

DUCKDB_EXTENSION_EXTERN

#define PART_BYTES ((size_t)16 << 20)

/* ---- knn_index_dump ----------------------------------------------------------------------------- */

typedef struct dump_bind {
    knn_index_ref ref;
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
    dump_bind *b = knn_bind_index_name(info, sizeof *b, "knn_index_dump", &err);
    if (b == NULL) return knn_fail_bind(info, NULL, &err);
    knn_bind_column(info, "part", DUCKDB_TYPE_INTEGER);
    knn_bind_column(info, "bytes", DUCKDB_TYPE_BLOB);
    duckdb_bind_set_bind_data(info, b, free);
}

static void dump_run(duckdb_function_info info, duckdb_data_chunk out) {
    dump_state *st = duckdb_function_get_init_data(info);
    knn_error err;
    knn_entry *e;
    if (knn_table_first(info, &e, &err)) {
        if (e && e->kind != KNN_KIND_GRAPH) {
            knn_error_set(&err, KNN_EINVAL, "index '%s' is flat; only graph indexes are dumped (a flat index is "
                          "rebuilt from its table by one knn_index_insert)", e->name);
        } else if (e) {
            knn_graph_save(e->graph, &st->bytes, &st->len, &err);
        }
        knn_entry_release(e);
        if (err.status != KNN_OK) return knn_fail_run(info, "knn_index_dump", &err);
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
    char source[KNN_SOURCE_MAX + 1]; /* "" : none given */
    char dir[KNN_DIR_MAX + 1];       /* "" : none given */
    part_buf *parts;
    size_t n, cap;
} restore_acc;

static void restore_acc_free(void *p) {
    restore_acc *a = p;
    for (size_t i = 0; i < a->n; i++) free(a->parts[i].bytes);
    free(a->parts);
    free(a);
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

static restore_acc *restore_acc_for(knn_agg_state *st, const char *name, size_t len, knn_error *err) {
    restore_acc *a = st->acc;
    if (a) {
        if (strlen(a->name) != len || memcmp(a->name, name, len) != 0) {
            knn_error_set(err, KNN_EINVAL, "every row of one call must name the same index");
            return NULL;
        }
        return a;
    }
    if (knn_name_check(name, len, err) != KNN_OK) return NULL;
    a = calloc(1, sizeof *a);
    if (a == NULL) {
        knn_error_set(err, KNN_ENOMEM, "out of memory");
        return NULL;
    }
    memcpy(a->name, name, len);
    st->acc = a;
    return a;
}

/* Records the optional source argument; every row must give the same one. */
static knn_status restore_source(restore_acc *a, const char *src, size_t len, knn_error *err) {
    if (len == 0 || len > KNN_SOURCE_MAX) {
        return knn_error_set(err, KNN_EINVAL, "knn_index_restore: source must name the table the rows come from (1 to "
                             "%d bytes), got %zu bytes", KNN_SOURCE_MAX, len);
    }
    if (a->source[0] && (strlen(a->source) != len || memcmp(a->source, src, len) != 0)) {
        return knn_error_set(err, KNN_EINVAL, "knn_index_restore: every row of one call must give the same source");
    }
    memcpy(a->source, src, len);
    a->source[len] = 0;
    return KNN_OK;
}

/* Records the optional vectors_dir argument; every row must give the same one. */
static knn_status restore_dir(restore_acc *a, const char *dir, size_t len, knn_error *err) {
    if (len == 0 || len > KNN_DIR_MAX) {
        return knn_error_set(err, KNN_EINVAL, "knn_index_restore: vectors_dir must name a directory (1 to %d bytes), "
                             "got %zu bytes", KNN_DIR_MAX, len);
    }
    if (a->dir[0] && (strlen(a->dir) != len || memcmp(a->dir, dir, len) != 0)) {
        return knn_error_set(err, KNN_EINVAL, "knn_index_restore: every row of one call must give the same vectors_dir");
    }
    memcpy(a->dir, dir, len);
    a->dir[len] = 0;
    return KNN_OK;
}

static knn_status restore_update(const knn_agg_ctx *cx, duckdb_data_chunk input, duckdb_aggregate_state *states,
                                 knn_error *err) {
    (void)cx;
    idx_t n = duckdb_data_chunk_get_size(input);
    duckdb_vector sourcev = duckdb_data_chunk_get_column_count(input) > 3 ? duckdb_data_chunk_get_vector(input, 3) : NULL;
    duckdb_vector dirv = duckdb_data_chunk_get_column_count(input) > 4 ? duckdb_data_chunk_get_vector(input, 4) : NULL;
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
            return knn_error_set(err, KNN_EINVAL, "index name must not be NULL");
        }
        if (!knn_get_bigint(partv, i, &part) || !knn_valid(blob_valid, i)) {
            return knn_error_set(err, KNN_EDATA, "part and bytes must not be NULL (rows come from knn_index_dump)");
        }
        restore_acc *a = restore_acc_for(knn_agg_at(states, i), name, len, err);
        if (a == NULL) return err->status;
        const char *src;
        size_t src_len;
        if (sourcev && knn_get_varchar(sourcev, i, &src, &src_len) && restore_source(a, src, src_len, err) != KNN_OK) {
            return err->status;
        }
        if (dirv && knn_get_varchar(dirv, i, &src, &src_len) && restore_dir(a, src, src_len, err) != KNN_OK) {
            return err->status;
        }
        if (add_part(a, part, duckdb_string_t_data(&blobs[i]), duckdb_string_t_length(blobs[i]), err) != KNN_OK) {
            return err->status;
        }
    }
    return KNN_OK;
}

static knn_status restore_merge(const knn_agg_ctx *cx, knn_agg_state *source, knn_agg_state *target, knn_error *err) {
    (void)cx;
    restore_acc *src = source->acc;
    restore_acc *dst = restore_acc_for(target, src->name, strlen(src->name), err);
    if (dst && src->source[0]) restore_source(dst, src->source, strlen(src->source), err);
    if (dst && src->dir[0] && err->status == KNN_OK) restore_dir(dst, src->dir, strlen(src->dir), err);
    for (size_t j = 0; dst && j < src->n && err->status == KNN_OK; j++) {
        add_part(dst, src->parts[j].part, src->parts[j].bytes, src->parts[j].len, err);
    }
    return err->status;
}

static int cmp_parts(const void *a, const void *b) {
    int64_t x = ((const part_buf *)a)->part, y = ((const part_buf *)b)->part;
    return (x > y) - (x < y);
}

static knn_status restore_finalize(const knn_agg_ctx *cx, knn_agg_state *st, duckdb_vector result, idx_t row,
                                   knn_error *err) {
    restore_acc *a = st->acc;
    int64_t *out = duckdb_vector_get_data(result);
    out[row] = 0;
    if (a == NULL || a->n == 0) return KNN_OK;
    qsort(a->parts, a->n, sizeof *a->parts, cmp_parts);
    size_t total = 0;
    for (size_t j = 0; j < a->n; j++) {
        if (a->parts[j].part != (int64_t)j) {
            return knn_error_set(err, KNN_EDATA, "parts of index '%s' must be numbered 0..%zu without gaps or "
                                 "repeats; found part %lld at position %zu", a->name, a->n - 1,
                                 (long long)a->parts[j].part, j);
        }
        total += a->parts[j].len;
    }
    size_t cap = knn_registry_default_memory_limit(cx->reg);
    if (cap && total > cap) { /* the loaded index takes at least its byte size */
        return knn_error_set(err, KNN_ENOMEM, "index '%s' is %zu bytes, over the memory_limit of %zu bytes in force "
                             "when knnsql was loaded; SET memory_limit higher before loading knnsql", a->name, total,
                             cap);
    }
    uint8_t *all = malloc(total ? total : 1);
    if (all == NULL) return knn_error_set(err, KNN_ENOMEM, "out of memory for %zu bytes", total);
    size_t pos = 0;
    for (size_t j = 0; j < a->n; j++) {
        memcpy(all + pos, a->parts[j].bytes, a->parts[j].len);
        pos += a->parts[j].len;
    }
    knn_graph *g = NULL;
    knn_status s = knn_graph_load_at(all, total, a->dir[0] ? a->dir : knn_registry_vectors_dir(cx->reg), &g, err);
    free(all);
    if (s != KNN_OK) return s;
    size_t rows = knn_graph_live(g);
    if (knn_registry_adopt(cx->reg, a->name, strlen(a->name), g, err) != KNN_OK) return err->status;
    if (a->source[0]) {
        knn_entry *e = knn_registry_get(cx->reg, a->name, strlen(a->name), err);
        if (e) memcpy(e->source, a->source, sizeof e->source); /* just adopted: no search has it yet */
        knn_entry_release(e);
        if (!e) return err->status;
    }
    out[row] = (int64_t)rows;
    for (size_t j = 0; j < a->n; j++) free(a->parts[j].bytes);
    a->n = 0;
    return KNN_OK;
}

/* ---- knn_index_restore_vectors ----------------------------------------------------------------- */

typedef struct vectors_acc {
    knn_entry *e; /* retained */
    int64_t taken;
} vectors_acc;

static void vectors_acc_free(void *p) {
    vectors_acc *a = p;
    knn_entry_release(a->e);
    free(a);
}

/* Takes the chunk's rows as they come: rows of one index, applied per chunk, so no table is buffered. */
static knn_status vectors_update(const knn_agg_ctx *cx, duckdb_data_chunk input, duckdb_aggregate_state *states,
                                 knn_error *err) {
    const char *fn = cx->def->name;
    idx_t n = duckdb_data_chunk_get_size(input);
    duckdb_vector names = duckdb_data_chunk_get_vector(input, 0);
    duckdb_vector idv = duckdb_data_chunk_get_vector(input, 1);
    const int64_t *id_data = duckdb_vector_get_data(idv);
    const uint64_t *id_valid = duckdb_vector_get_validity(idv);
    knn_vreader vr;
    if (knn_vreader_init(&vr, duckdb_data_chunk_get_vector(input, 2), fn, "vec", err) != KNN_OK) return err->status;
    vectors_acc *a = NULL;
    float *vecs = NULL;
    int64_t *ids = NULL;
    size_t m = 0;
    knn_status s = KNN_OK;
    for (idx_t i = 0; i < n && s == KNN_OK; i++) {
        const char *name;
        size_t len;
        if (!knn_get_varchar(names, i, &name, &len)) {
            s = knn_error_set(err, KNN_EINVAL, "index name must not be NULL");
            break;
        }
        knn_agg_state *st = knn_agg_at(states, i);
        if (st->acc == NULL) {
            vectors_acc *fresh = calloc(1, sizeof *fresh);
            if (fresh == NULL || (fresh->e = knn_registry_get(cx->reg, name, len, err)) == NULL) {
                if (fresh == NULL) knn_error_set(err, KNN_ENOMEM, "out of memory");
                free(fresh);
                s = err->status;
                break;
            }
            if (fresh->e->kind != KNN_KIND_GRAPH) {
                s = knn_error_set(err, KNN_EINVAL, "index '%s' is flat: it keeps its float rows and is rebuilt from its "
                                  "table by one knn_index_insert", fresh->e->name);
                vectors_acc_free(fresh);
                break;
            }
            st->acc = fresh;
        }
        vectors_acc *ai = st->acc;
        if (a == NULL) {
            a = ai;
            vecs = malloc(n * a->e->dim * sizeof *vecs);
            ids = malloc(n * sizeof *ids);
            if (!vecs || !ids) s = knn_error_set(err, KNN_ENOMEM, "out of memory for %llu rows", (unsigned long long)n);
        }
        if (s != KNN_OK) break;
        if (ai->e != a->e) {
            s = knn_error_set(err, KNN_EINVAL, "every row of one call must name the same index");
            break;
        }
        if (!knn_valid(id_valid, i)) continue;
        const size_t d = a->e->dim;
        const float *v;
        size_t got = 0;
        knn_row_state rs = knn_vreader_get(&vr, i, d, vecs + m * d, &v, &got);
        if (rs == KNN_ROW_NULL) continue;
        if (rs == KNN_ROW_DIM_MISMATCH) {
            s = knn_error_set(err, KNN_EDATA, "dimension mismatch: the vector of id %lld has %zu elements but index "
                              "'%s' has dim %zu", (long long)id_data[i], got, a->e->name, d);
        } else if (rs == KNN_ROW_NULL_ELEMENT) {
            s = knn_error_set(err, KNN_EDATA, "the vector of id %lld contains a NULL element", (long long)id_data[i]);
        } else {
            if (v != vecs + m * d) memcpy(vecs + m * d, v, d * sizeof(float));
            ids[m++] = id_data[i];
        }
    }
    if (s == KNN_OK && a && m) {
        size_t taken = 0;
        s = knn_graph_restore_vectors(a->e->graph, vecs, ids, m, &taken, err);
        a->taken += (int64_t)taken;
        if (s == KNN_OK && knn_graph_missing_vectors(a->e->graph) == 0) knn_window_prepare(a->e->graph);
    }
    free(vecs);
    free(ids);
    return s;
}

static knn_status vectors_merge(const knn_agg_ctx *cx, knn_agg_state *source, knn_agg_state *target, knn_error *err) {
    (void)cx;
    vectors_acc *src = source->acc;
    if (target->acc == NULL) {
        target->acc = src;
        source->acc = NULL;
        return KNN_OK;
    }
    vectors_acc *dst = target->acc;
    if (dst->e != src->e) return knn_error_set(err, KNN_EINVAL, "every row of one call must name the same index");
    dst->taken += src->taken;
    return KNN_OK;
}

static knn_status vectors_finalize(const knn_agg_ctx *cx, knn_agg_state *st, duckdb_vector result, idx_t row,
                                   knn_error *err) {
    (void)cx;
    (void)err;
    vectors_acc *a = st->acc;
    ((int64_t *)duckdb_vector_get_data(result))[row] = a ? a->taken : 0;
    return KNN_OK;
}

static const knn_table_def dump_table[] = {
    {.name = "knn_index_dump", .bind = dump_bind_fn, .run = dump_run, .positional = {DUCKDB_TYPE_VARCHAR},
     .n_positional = 1, .state_size = sizeof(dump_state), .state_free = dump_state_free},
};

static const knn_agg_def restore_agg[] = {
    {.name = "knn_index_restore", .params = {DUCKDB_TYPE_VARCHAR, DUCKDB_TYPE_BIGINT, DUCKDB_TYPE_BLOB,
                                             DUCKDB_TYPE_VARCHAR, DUCKDB_TYPE_VARCHAR},
     .min_params = 3, .n_params = 5, .result = DUCKDB_TYPE_BIGINT, .free_acc = restore_acc_free,
     .update = restore_update, .merge = restore_merge, .finalize = restore_finalize},
    {.name = "knn_index_restore_vectors", .params = {DUCKDB_TYPE_VARCHAR, DUCKDB_TYPE_BIGINT, DUCKDB_TYPE_ANY},
     .min_params = 3, .n_params = 3, .result = DUCKDB_TYPE_BIGINT, .free_acc = vectors_acc_free,
     .update = vectors_update, .merge = vectors_merge, .finalize = vectors_finalize},
};

bool knn_register_index_dump(duckdb_connection con, knn_registry *reg, knn_error *err) {
    return knn_register_tables(con, reg, dump_table, 1, err) &&
           knn_register_aggregates(con, reg, restore_agg, sizeof restore_agg / sizeof restore_agg[0], err);
}
