/* Attribute columns from SQL: a STRUCT argument of knn_index_insert, e.g.
 *   knn_index_insert('docs', id, emb, {'price': price, 'cat': cat, 'ts': ts})
 * read chunk by chunk into typed buffers (strings copied out of DuckDB's vectors), merged across
 * threads, and handed to the core as one knn_attr_batch (attrs/knn_attrs.h).
 *
 * SQL types map to the core's: every integer type -> BIGINT, FLOAT/DOUBLE/DECIMAL -> DOUBLE, BOOLEAN,
 * DATE, TIMESTAMP (and TIMESTAMP WITH TIME ZONE, _S, _MS, _NS as microseconds), VARCHAR. Anything else
 * is an error naming the field and a cast that fixes it. */
#ifndef KNN_ATTR_COLS_H
#define KNN_ATTR_COLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "duckdb_extension.h"
#include "attrs/knn_attrs.h"
#include "base/knn_error.h"

typedef struct knn_attr_buf {
    char name[KNN_ATTR_NAME_MAX + 1];
    knn_attr_type type;
    duckdb_type storage;  /* the SQL physical type read (DECIMAL: its internal integer type) */
    double scale;         /* DECIMAL: 10^scale */
    int64_t *i64;
    double *f64;
    size_t *soff;         /* string start in arena */
    uint32_t *slen;
    char *arena;
    size_t arena_n, arena_cap;
    uint64_t *valid;      /* bit per row */
} knn_attr_buf;

typedef struct knn_attr_acc {
    knn_attr_buf *cols;
    size_t ncols;
    size_t n, cap;        /* rows buffered, rows allocated */
} knn_attr_acc;

/* Reads the field names and types of a STRUCT vector's type into an empty acc (no rows). */
knn_status knn_attr_acc_init(knn_attr_acc *a, duckdb_vector v, const char *fn, knn_error *err);
/* An empty acc with the same columns as src. */
knn_status knn_attr_acc_like(knn_attr_acc *a, const knn_attr_acc *src, knn_error *err);
/* Appends row `row` of the STRUCT vector v (a NULL struct: every field NULL). */
knn_status knn_attr_acc_push(knn_attr_acc *a, duckdb_vector v, idx_t row, knn_error *err);
/* Appends every row of src (same columns). */
knn_status knn_attr_acc_append(knn_attr_acc *dst, const knn_attr_acc *src, knn_error *err);
/* A batch over the buffered rows; *inputs and *strs are malloc'd views the caller frees (free_views). */
knn_status knn_attr_acc_batch(const knn_attr_acc *a, knn_attr_batch *b, knn_error *err);
void knn_attr_batch_free_views(knn_attr_batch *b);
void knn_attr_acc_free(knn_attr_acc *a);

#endif
