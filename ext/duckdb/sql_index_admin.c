/* Index lifecycle table functions: knn_index_create, knn_index_drop, knn_index_optimize, knn_indexes,
 * knn_index_ids. Each validates at bind and acts once when executed. */
#include <stdint.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "duckdb_extension.h"
#include "knn_glue.h"
#include "knn_kit.h"
#include "knn_memlimit.h"
#include "index/knn_registry.h"
#include "sql_register.h"

DUCKDB_EXTENSION_EXTERN

typedef struct admin_bind {
    knn_index_ref ref;
    size_t dim;
    knn_metric metric;
    knn_kind kind;
    knn_graph_params params;
    int has_memory_limit;
    size_t memory_limit;
    char source[KNN_SOURCE_MAX + 1]; /* source := (empty: none) */
    char quant[8];                   /* quantization := 'sq8' / 'sq4' ("": none) */
    char vectors_dir[KNN_DIR_MAX + 1]; /* vectors_dir := (empty: the registry's default) */
} admin_bind;

/* Per-execution state: a cursor over rows produced on the first call. */
typedef struct admin_state {
    int started;
    size_t pos, n;
    knn_entry **entries; /* knn_indexes */
    int64_t *ids;        /* knn_index_ids */
} admin_state;

/* The one-row admin functions emit their row on the first call and end the scan on the next. */
static bool first_call(duckdb_function_info info, duckdb_data_chunk out) {
    knn_error err;
    if (knn_table_first(info, NULL, &err)) return true;
    duckdb_data_chunk_set_size(out, 0);
    return false;
}

static void admin_state_free(void *p) {
    admin_state *st = p;
    for (size_t i = 0; i < st->n && st->entries; i++) knn_entry_release(st->entries[i]);
    free(st->entries);
    free(st->ids);
    free(st);
}

/* ---- knn_index_create --------------------------------------------------------------------------- */

/* Messages not yet naming knn_index_create get its name. */
static void fail_bind(duckdb_bind_info info, admin_bind *b, const knn_error *err) {
    free(b);
    knn_fail_bind(info, "knn_index_create", err);
}

static void create_bind(duckdb_bind_info info) {
    knn_error err;
    const char *fn = "knn_index_create";
    admin_bind *b = knn_bind_index_name(info, sizeof *b, fn, &err);
    if (b == NULL) return knn_fail_bind(info, NULL, &err);
    int64_t v;
    int got = knn_bind_named_int(info, "dim", &v);
    if (got == 0) {
        knn_error_set(&err, KNN_EINVAL, "%s: dim is required, e.g. knn_index_create('%s', dim := 384)", fn, b->ref.name);
        return fail_bind(info, b, &err);
    }
    if (v < 1 || v > 65536) {
        knn_error_set(&err, KNN_EINVAL, "%s: dim must be between 1 and 65536, got %lld", fn, (long long)v);
        return fail_bind(info, b, &err);
    }
    b->dim = (size_t)v;
    b->metric = KNN_METRIC_L2;
    char *metric = knn_bind_named_varchar(info, "metric");
    if (metric) {
        knn_status s = knn_metric_parse(metric, strlen(metric), &b->metric, &err);
        duckdb_free(metric);
        if (s != KNN_OK) return fail_bind(info, b, &err);
    }
    b->kind = KNN_KIND_GRAPH;
    char *kind = knn_bind_named_varchar(info, "kind");
    if (kind) {
        if (strcmp(kind, "graph") == 0 || strcmp(kind, "hnsw") == 0) {
            b->kind = KNN_KIND_GRAPH;
        } else if (strcmp(kind, "flat") == 0) {
            b->kind = KNN_KIND_FLAT;
        } else {
            knn_error_set(&err, KNN_EINVAL, "%s: unknown kind '%.32s'; use 'graph' (HNSW, approximate) or 'flat' "
                          "(exact scan)", fn, kind);
            duckdb_free(kind);
            return fail_bind(info, b, &err);
        }
        duckdb_free(kind);
    }
    b->params = knn_graph_default_params();
    struct { const char *key; size_t *dst; int64_t lo, hi; } opts[] = {
        {"m", &b->params.m, 2, 256},
        {"ef_construction", &b->params.ef_construction, 1, 100000},
        {"ef", &b->params.ef, 1, 100000},
    };
    for (size_t i = 0; i < sizeof opts / sizeof opts[0]; i++) {
        if (knn_bind_named_int(info, opts[i].key, &v) != 1) continue;
        if (b->kind == KNN_KIND_FLAT) {
            knn_error_set(&err, KNN_EINVAL, "%s: '%s' applies to kind 'graph' only", fn, opts[i].key);
            return fail_bind(info, b, &err);
        }
        if (v < opts[i].lo || v > opts[i].hi) {
            knn_error_set(&err, KNN_EINVAL, "%s: '%s' must be between %lld and %lld, got %lld", fn, opts[i].key,
                          (long long)opts[i].lo, (long long)opts[i].hi, (long long)v);
            return fail_bind(info, b, &err);
        }
        *opts[i].dst = (size_t)v;
    }
    if (knn_bind_named_int(info, "seed", &v) == 1) b->params.seed = (uint64_t)v;
    char *source = knn_bind_named_varchar(info, "source");
    if (source) {
        size_t len = strlen(source);
        if (len == 0 || len > KNN_SOURCE_MAX) {
            knn_error_set(&err, KNN_EINVAL, "%s: source must name the table the rows come from (1 to %d bytes), got %zu "
                          "bytes", fn, KNN_SOURCE_MAX, len);
            duckdb_free(source);
            return fail_bind(info, b, &err);
        }
        memcpy(b->source, source, len + 1);
        duckdb_free(source);
    }
    char *quant = knn_bind_named_varchar(info, "quantization");
    if (quant) {
        int none = strcmp(quant, "none") == 0, sq8 = strcmp(quant, "sq8") == 0, sq4 = strcmp(quant, "sq4") == 0;
        if (sq8 || sq4) memcpy(b->quant, quant, 4);
        knn_error_clear(&err);
        if (!none && !sq8 && !sq4) {
            knn_error_set(&err, KNN_EINVAL, "%s: quantization '%.32s' is not known; use 'sq8' or 'sq4' (8- or 4-bit "
                          "codes in memory, float rows in a file; 'sq4' needs kind := 'graph') or 'none'", fn, quant);
        } else if (sq4 && b->kind == KNN_KIND_FLAT) {
            knn_error_set(&err, KNN_EINVAL, "%s: quantization 'sq4' is built for kind := 'graph' (a flat index's exact "
                          "scan screens with 8-bit codes); use 'sq8' for a flat index, or kind := 'graph'", fn);
        } else if (sq8 && b->kind == KNN_KIND_FLAT && b->metric == KNN_METRIC_IP) {
            knn_error_set(&err, KNN_EINVAL, "%s: quantization 'sq8' of a flat index bounds Euclidean distances: use "
                          "metric 'l2' or 'cosine' (on normalised rows cosine ranks as 'ip' does), or kind := 'graph'",
                          fn);
        }
        duckdb_free(quant);
        if (err.status != KNN_OK) return fail_bind(info, b, &err);
    }
    char *dir = knn_bind_named_varchar(info, "vectors_dir");
    if (dir) {
        size_t len = strlen(dir);
        int ok = len > 0 && len <= KNN_DIR_MAX && b->quant[0];
        if (ok) memcpy(b->vectors_dir, dir, len + 1);
        duckdb_free(dir);
        if (!ok) {
            knn_error_set(&err, KNN_EINVAL, b->quant[0] ? "%s: vectors_dir must name a directory (1 to %d bytes)"
                                                        : "%s: vectors_dir applies to quantization := 'sq8' or 'sq4' "
                                                          "only", fn, KNN_DIR_MAX);
            return fail_bind(info, b, &err);
        }
    }
    char *cap = knn_bind_named_varchar(info, "memory_limit");
    if (cap) {
        knn_status s = knn_parse_bytes(cap, &b->memory_limit, &err);
        duckdb_free(cap);
        if (s != KNN_OK) return fail_bind(info, b, &err);
        b->has_memory_limit = 1;
    }
    knn_bind_column(info, "name", DUCKDB_TYPE_VARCHAR);
    knn_bind_column(info, "kind", DUCKDB_TYPE_VARCHAR);
    knn_bind_column(info, "dim", DUCKDB_TYPE_INTEGER);
    knn_bind_column(info, "metric", DUCKDB_TYPE_VARCHAR);
    duckdb_bind_set_bind_data(info, b, free);
}

static void create_run(duckdb_function_info info, duckdb_data_chunk out) {
    admin_bind *b = duckdb_function_get_bind_data(info);
    if (!first_call(info, out)) return;
    knn_error err;
    knn_error_clear(&err);
    if (knn_registry_create(knn_table_registry(info), b->ref.name, b->ref.len, b->kind, b->dim, b->metric, &b->params, &err) !=
        KNN_OK) {
        return knn_fail_run(info, "knn_index_create", &err);
    }
    if (b->quant[0]) {
        knn_entry *e = knn_registry_get(knn_table_registry(info), b->ref.name, b->ref.len, &err);
        const char *dir = b->vectors_dir[0] ? b->vectors_dir : knn_registry_vectors_dir(knn_table_registry(info));
        knn_status s = e == NULL ? err.status
                       : e->kind == KNN_KIND_GRAPH ? knn_graph_set_storage(e->graph, b->quant, dir, &err)
                                                   : (knn_status)knn_flat_set_storage(e->flat, b->quant, dir, err.msg,
                                                                                      sizeof err.msg);
        knn_entry_release(e);
        if (s != KNN_OK) {
            err.status = s;
            knn_registry_drop(knn_table_registry(info), b->ref.name, b->ref.len);
            return knn_fail_run(info, "knn_index_create", &err);
        }
    }
    if (b->has_memory_limit || b->source[0]) {
        knn_entry *e = knn_registry_get(knn_table_registry(info), b->ref.name, b->ref.len, &err);
        if (e && b->has_memory_limit) atomic_store(&e->memory_limit, b->memory_limit);
        if (e) memcpy(e->source, b->source, sizeof e->source); /* before any search can read it: just created */
        knn_entry_release(e);
    }
    duckdb_vector_assign_string_element(duckdb_data_chunk_get_vector(out, 0), 0, b->ref.name);
    duckdb_vector_assign_string_element(duckdb_data_chunk_get_vector(out, 1), 0, knn_kind_name(b->kind));
    ((int32_t *)duckdb_vector_get_data(duckdb_data_chunk_get_vector(out, 2)))[0] = (int32_t)b->dim;
    duckdb_vector_assign_string_element(duckdb_data_chunk_get_vector(out, 3), 0, knn_metric_name(b->metric));
    duckdb_data_chunk_set_size(out, 1);
}

/* ---- knn_index_drop / knn_index_optimize -------------------------------------------------------- */

/* Binds the index name; the result columns are "name" then col (when not NULL), or col alone. */
static void name_only_bind(duckdb_bind_info info, const char *fn, const char *col, duckdb_type type, bool with_name) {
    knn_error err;
    admin_bind *b = knn_bind_index_name(info, sizeof *b, fn, &err);
    if (b == NULL) return knn_fail_bind(info, NULL, &err);
    if (with_name) knn_bind_column(info, "name", DUCKDB_TYPE_VARCHAR);
    knn_bind_column(info, col, type);
    duckdb_bind_set_bind_data(info, b, free);
}

static void drop_bind(duckdb_bind_info info) { name_only_bind(info, "knn_index_drop", "dropped", DUCKDB_TYPE_BOOLEAN, true); }

static void drop_run(duckdb_function_info info, duckdb_data_chunk out) {
    admin_bind *b = duckdb_function_get_bind_data(info);
    if (!first_call(info, out)) return;
    bool dropped = knn_registry_drop(knn_table_registry(info), b->ref.name, b->ref.len);
    duckdb_vector_assign_string_element(duckdb_data_chunk_get_vector(out, 0), 0, b->ref.name);
    ((bool *)duckdb_vector_get_data(duckdb_data_chunk_get_vector(out, 1)))[0] = dropped;
    duckdb_data_chunk_set_size(out, 1);
}

static void optimize_bind(duckdb_bind_info info) { name_only_bind(info, "knn_index_optimize", "rows", DUCKDB_TYPE_BIGINT, true); }

static void optimize_run(duckdb_function_info info, duckdb_data_chunk out) {
    admin_bind *b = duckdb_function_get_bind_data(info);
    if (!first_call(info, out)) return;
    knn_error err;
    knn_error_clear(&err);
    knn_entry *e = knn_registry_get(knn_table_registry(info), b->ref.name, b->ref.len, &err);
    if (e == NULL || knn_entry_optimize(e, &err) != KNN_OK) {
        knn_entry_release(e);
        return knn_fail_run(info, "knn_index_optimize", &err);
    }
    duckdb_vector_assign_string_element(duckdb_data_chunk_get_vector(out, 0), 0, b->ref.name);
    ((int64_t *)duckdb_vector_get_data(duckdb_data_chunk_get_vector(out, 1)))[0] = (int64_t)knn_entry_count(e);
    knn_entry_release(e);
    duckdb_data_chunk_set_size(out, 1);
}

/* ---- knn_indexes -------------------------------------------------------------------------------- */

static void indexes_bind(duckdb_bind_info info) {
    static const struct { const char *name; duckdb_type type; } cols[] = {
        {"name", DUCKDB_TYPE_VARCHAR},  {"kind", DUCKDB_TYPE_VARCHAR},         {"dim", DUCKDB_TYPE_INTEGER},
        {"metric", DUCKDB_TYPE_VARCHAR}, {"rows", DUCKDB_TYPE_BIGINT},          {"deleted", DUCKDB_TYPE_BIGINT},
        {"memory_bytes", DUCKDB_TYPE_BIGINT}, {"m", DUCKDB_TYPE_INTEGER},       {"ef_construction", DUCKDB_TYPE_INTEGER},
        {"ef", DUCKDB_TYPE_INTEGER},    {"last_optimize", DUCKDB_TYPE_TIMESTAMP},
        {"label_type", DUCKDB_TYPE_VARCHAR}, {"label_min", DUCKDB_TYPE_DOUBLE}, {"label_max", DUCKDB_TYPE_DOUBLE},
        {"memory_limit", DUCKDB_TYPE_BIGINT}, {"source", DUCKDB_TYPE_VARCHAR},
        /* the last knn_index_recall: recall@recall_k at recall_ef, measured with recall_rows rows */
        {"recall", DUCKDB_TYPE_DOUBLE}, {"recall_k", DUCKDB_TYPE_INTEGER}, {"recall_ef", DUCKDB_TYPE_INTEGER},
        {"recall_rows", DUCKDB_TYPE_BIGINT},
        /* storage: memory_bytes is the heap; a quantized index maps its float rows from files of disk_bytes */
        {"quantization", DUCKDB_TYPE_VARCHAR}, {"disk_bytes", DUCKDB_TYPE_BIGINT},
    };
    for (size_t i = 0; i < sizeof cols / sizeof cols[0]; i++) knn_bind_column(info, cols[i].name, cols[i].type);
}

static void indexes_run(duckdb_function_info info, duckdb_data_chunk out) {
    admin_state *st = duckdb_function_get_init_data(info);
    if (!st->started) {
        st->started = 1;
        st->n = knn_registry_list(knn_table_registry(info), &st->entries);
    }
    idx_t rows = 0, cap = duckdb_vector_size();
    duckdb_vector v[22];
    for (int c = 0; c < 22; c++) v[c] = duckdb_data_chunk_get_vector(out, c);
    for (; st->pos < st->n && rows < cap; st->pos++, rows++) {
        knn_entry *e = st->entries[st->pos];
        duckdb_vector_assign_string_element(v[0], rows, e->name);
        duckdb_vector_assign_string_element(v[1], rows, knn_kind_name(e->kind));
        ((int32_t *)duckdb_vector_get_data(v[2]))[rows] = (int32_t)e->dim;
        duckdb_vector_assign_string_element(v[3], rows, knn_metric_name(e->metric));
        ((int64_t *)duckdb_vector_get_data(v[4]))[rows] = (int64_t)knn_entry_count(e);
        ((int64_t *)duckdb_vector_get_data(v[5]))[rows] = (int64_t)knn_entry_deleted(e);
        ((int64_t *)duckdb_vector_get_data(v[6]))[rows] = (int64_t)knn_entry_memory(e);
        if (e->kind == KNN_KIND_GRAPH) {
            knn_graph_params p = knn_graph_get_params(e->graph);
            ((int32_t *)duckdb_vector_get_data(v[7]))[rows] = (int32_t)p.m;
            ((int32_t *)duckdb_vector_get_data(v[8]))[rows] = (int32_t)p.ef_construction;
            ((int32_t *)duckdb_vector_get_data(v[9]))[rows] = (int32_t)p.ef;
        } else {
            knn_set_null(v[7], rows);
            knn_set_null(v[8], rows);
            knn_set_null(v[9], rows);
        }
        double t = atomic_load(&e->last_optimize);
        if (t > 0) {
            ((int64_t *)duckdb_vector_get_data(v[10]))[rows] = (int64_t)(t * 1e6);
        } else {
            knn_set_null(v[10], rows);
        }
        const char *label_type = knn_label_kind_name(atomic_load(&e->label_kind));
        double lmin, lmax;
        if (label_type) {
            duckdb_vector_assign_string_element(v[11], rows, label_type);
        } else {
            knn_set_null(v[11], rows);
        }
        if (label_type && knn_entry_label_range(e, &lmin, &lmax)) {
            ((double *)duckdb_vector_get_data(v[12]))[rows] = lmin;
            ((double *)duckdb_vector_get_data(v[13]))[rows] = lmax;
        } else {
            knn_set_null(v[12], rows);
            knn_set_null(v[13], rows);
        }
        size_t cap = atomic_load(&e->memory_limit);
        if (cap) {
            ((int64_t *)duckdb_vector_get_data(v[14]))[rows] = cap > INT64_MAX ? INT64_MAX : (int64_t)cap;
        } else {
            knn_set_null(v[14], rows);
        }
        if (e->source[0]) {
            duckdb_vector_assign_string_element(v[15], rows, e->source);
        } else {
            knn_set_null(v[15], rows);
        }
        double recall = atomic_load(&e->recall);
        if (isnan(recall)) {
            for (int c = 16; c < 20; c++) knn_set_null(v[c], rows);
        } else {
            size_t ref = atomic_load(&e->recall_ef);
            ((double *)duckdb_vector_get_data(v[16]))[rows] = recall;
            ((int32_t *)duckdb_vector_get_data(v[17]))[rows] = (int32_t)atomic_load(&e->recall_k);
            if (ref) {
                ((int32_t *)duckdb_vector_get_data(v[18]))[rows] = (int32_t)ref;
            } else {
                knn_set_null(v[18], rows);
            }
            ((int64_t *)duckdb_vector_get_data(v[19]))[rows] = (int64_t)atomic_load(&e->recall_rows);
        }
        duckdb_vector_assign_string_element(v[20], rows, knn_entry_quantization(e));
        ((int64_t *)duckdb_vector_get_data(v[21]))[rows] = (int64_t)knn_entry_disk_bytes(e);
    }
    duckdb_data_chunk_set_size(out, rows);
}

/* ---- knn_index_ids ------------------------------------------------------------------------------ */

static void ids_bind(duckdb_bind_info info) { name_only_bind(info, "knn_index_ids", "id", DUCKDB_TYPE_BIGINT, false); }

static void ids_run(duckdb_function_info info, duckdb_data_chunk out) {
    admin_state *st = duckdb_function_get_init_data(info);
    knn_error err;
    knn_entry *e;
    if (knn_table_first(info, &e, &err)) {
        if (e == NULL || knn_entry_ids(e, &st->ids, &st->n, &err) != KNN_OK) {
            knn_entry_release(e);
            return knn_fail_run(info, "knn_index_ids", &err);
        }
        knn_entry_release(e);
    }
    idx_t rows = knn_chunk_rows(st->n, st->pos);
    memcpy(duckdb_vector_get_data(duckdb_data_chunk_get_vector(out, 0)), st->ids + st->pos, rows * sizeof(int64_t));
    st->pos += rows;
    duckdb_data_chunk_set_size(out, rows);
}

/* ---- registration ------------------------------------------------------------------------------- */

#define ADMIN_STATE .state_size = sizeof(admin_state), .state_free = admin_state_free
#define NAME_PARAM .positional = {DUCKDB_TYPE_VARCHAR}, .n_positional = 1

static const knn_table_def admin_tables[] = {
    {.name = "knn_index_create", .bind = create_bind, .run = create_run, NAME_PARAM, ADMIN_STATE,
     .named = {"dim", "metric", "kind", "m", "ef_construction", "ef", "seed", "memory_limit", "source", "quantization",
               "vectors_dir"},
     .named_types = {DUCKDB_TYPE_BIGINT, DUCKDB_TYPE_VARCHAR, DUCKDB_TYPE_VARCHAR, DUCKDB_TYPE_BIGINT,
                     DUCKDB_TYPE_BIGINT, DUCKDB_TYPE_BIGINT, DUCKDB_TYPE_BIGINT, DUCKDB_TYPE_VARCHAR,
                     DUCKDB_TYPE_VARCHAR, DUCKDB_TYPE_VARCHAR, DUCKDB_TYPE_VARCHAR}},
    {.name = "knn_index_drop", .bind = drop_bind, .run = drop_run, NAME_PARAM, ADMIN_STATE},
    {.name = "knn_index_optimize", .bind = optimize_bind, .run = optimize_run, NAME_PARAM, ADMIN_STATE},
    {.name = "knn_indexes", .bind = indexes_bind, .run = indexes_run, ADMIN_STATE},
    {.name = "knn_index_ids", .bind = ids_bind, .run = ids_run, NAME_PARAM, ADMIN_STATE},
};

/* DuckDB's temp_directory as the default home of 'sq8' vector files (beside a file database: <db>.tmp). */
static void init_vectors_dir(duckdb_connection con, knn_registry *reg) {
    duckdb_result res;
    if (duckdb_query(con, "SELECT current_setting('temp_directory')::VARCHAR", &res) == DuckDBSuccess) {
        duckdb_data_chunk chunk = duckdb_fetch_chunk(res);
        const char *text;
        size_t len;
        if (chunk && duckdb_data_chunk_get_size(chunk) > 0 &&
            knn_get_varchar(duckdb_data_chunk_get_vector(chunk, 0), 0, &text, &len) && len <= KNN_DIR_MAX) {
            char buf[KNN_DIR_MAX + 1];
            memcpy(buf, text, len);
            buf[len] = '\0';
            knn_registry_set_vectors_dir(reg, buf);
        }
        if (chunk) duckdb_destroy_data_chunk(&chunk);
    }
    duckdb_destroy_result(&res);
}

bool knn_register_index_admin(duckdb_connection con, knn_registry *reg, knn_error *err) {
    knn_memlimit_init_default(con, reg); /* the default cap of knn_index_create: DuckDB's memory_limit now */
    init_vectors_dir(con, reg);
    return knn_register_tables(con, reg, admin_tables, sizeof admin_tables / sizeof admin_tables[0], err);
}
