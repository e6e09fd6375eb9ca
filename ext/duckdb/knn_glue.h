/* Shared translation helpers between DuckDB vectors and the core. The only headers that see
 * duckdb_extension.h are in ext/duckdb. */
#ifndef KNN_GLUE_H
#define KNN_GLUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "duckdb_extension.h"
#include "base/knn_error.h"
#include "index/knn_registry.h"

/* Element types a vector may have; anything but FLOAT is converted to float32 on read. */
typedef enum knn_elem {
    KNN_ELEM_F32 = 0, KNN_ELEM_F64, KNN_ELEM_I8, KNN_ELEM_I16, KNN_ELEM_I32, KNN_ELEM_I64,
    KNN_ELEM_U8, KNN_ELEM_U16, KNN_ELEM_U32
} knn_elem;

#define KNN_VECTOR_TYPES "FLOAT[d] (best), FLOAT[], or DOUBLE / integer arrays and lists (converted)"

/* Reads vectors (ARRAY or LIST of FLOAT, DOUBLE or integers) out of one DuckDB vector, row by row. */
typedef struct knn_vreader {
    bool is_array;          /* ARRAY (fixed size) rather than LIST */
    knn_elem elem;          /* element type */
    size_t array_dim;       /* ARRAY size */
    uint64_t *validity;     /* row validity, NULL when every row is valid */
    duckdb_list_entry *entries; /* LIST only */
    const void *elems;      /* element data */
    uint64_t *elem_validity;/* element validity, NULL when no element is NULL */
} knn_vreader;

typedef enum knn_row_state {
    KNN_ROW_OK = 0,
    KNN_ROW_NULL = 1,         /* the vector itself is NULL */
    KNN_ROW_NULL_ELEMENT = 2, /* one element inside it is NULL */
    KNN_ROW_DIM_MISMATCH = 3  /* its length differs from the expected dimension */
} knn_row_state;

/* Inspects the vector's type; on an unsupported type writes an error naming fn and arg. */
knn_status knn_vreader_init(knn_vreader *r, duckdb_vector v, const char *fn, const char *arg, knn_error *err);

/* Length of row's vector (0 for a NULL row). */
size_t knn_vreader_len(const knn_vreader *r, idx_t row);

/* Row's vector as float32: points *out into the vector's memory (FLOAT) or converts into buf, which
 * must hold dim floats (other element types). Checks NULLs and that the length equals dim (*got_dim says what it was). */
knn_row_state knn_vreader_get(const knn_vreader *r, idx_t row, size_t dim, float *buf, const float **out,
                              size_t *got_dim);

/* True when rows [lo, hi) are dim-long FLOAT arrays with no NULLs, laid out back to back. */
bool knn_vreader_contiguous(const knn_vreader *r, idx_t lo, idx_t hi, size_t dim, const float **base);

static inline bool knn_valid(const uint64_t *mask, idx_t row) {
    return mask == NULL || ((mask[row >> 6] >> (row & 63)) & 1);
}

/* Grows *p (an array of elem-byte items, capacity *cap) to hold need items, doubling from 1024; an
 * out-of-memory error names `what`. */
knn_status knn_grow(void **p, size_t *cap, size_t need, size_t elem, const char *what, knn_error *err);

/* Where the queries of one row live: a LIST of vectors, or a LIST of STRUCT(query id, vector). */
typedef struct knn_qlist {
    duckdb_list_entry *entries;
    const uint64_t *validity;
    knn_vreader vecs;
    const void *qid_data; /* NULL: query ids are 1-based positions */
    bool qid_is_int32;
    const uint64_t *qid_valid;
} knn_qlist;

/* Reads the query list column of a *_join aggregate; errors name fn. */
knn_status knn_qlist_init(knn_qlist *ql, duckdb_vector v, const char *fn, knn_error *err);

/* Reads a BIGINT argument of row (false when NULL). */
bool knn_get_bigint(duckdb_vector v, idx_t row, int64_t *out);

/* Reads a DOUBLE argument of row (false when NULL). */
bool knn_get_double(duckdb_vector v, idx_t row, double *out);

/* Reads a VARCHAR argument of row (false when NULL); *s is not NUL-terminated. */
bool knn_get_varchar(duckdb_vector v, idx_t row, const char **s, size_t *len);

/* Table-function bind helpers. A positional VARCHAR parameter copied into out (NUL-terminated);
 * false with an error when NULL or too long. */
bool knn_bind_varchar(duckdb_bind_info info, idx_t index, char *out, size_t cap, size_t *len, const char *fn,
                      const char *what, knn_error *err);
/* An id and the row position it came from; knn_id_pos_cmp orders by id (qsort, bsearch). */
typedef struct knn_id_pos { int64_t id; size_t pos; } knn_id_pos;
int knn_id_pos_cmp(const void *a, const void *b);

/* An index named by a table function's first positional parameter. */
typedef struct knn_index_ref {
    char name[KNN_NAME_MAX + 1];
    size_t len;
} knn_index_ref;
/* A zeroed bind struct of size bytes that starts with a knn_index_ref, filled from parameter 0; NULL with
 * an error (naming fn) when out of memory or the name is NULL, empty or too long. */
void *knn_bind_index_name(duckdb_bind_info info, size_t size, const char *fn, knn_error *err);
/* The lo / hi named parameters of a windowed table function, as bounds in the index's label unit;
 * *windowed is false when neither is given. */
knn_status knn_bind_window(duckdb_bind_info info, knn_entry *e, const char *fn, bool *windowed, double *lo,
                           double *hi, knn_error *err);
/* Named integer parameter: 0 when absent or NULL, 1 when read, -1 with an error when not an integer. */
int knn_bind_named_int(duckdb_bind_info info, const char *name, int64_t *out);
/* Named VARCHAR parameter (duckdb_free the result); NULL when absent or NULL. */
char *knn_bind_named_varchar(duckdb_bind_info info, const char *name);
/* Reads a LIST(FLOAT) value into a malloc'd float array; false with an error on NULL/empty/NULL elements. */
bool knn_value_to_floats(duckdb_value v, float **out, size_t *dim, const char *fn, knn_error *err);

/* Adds a named column of a simple type to a table function's result. */
void knn_bind_column(duckdb_bind_info info, const char *name, duckdb_type type);

/* Labels for window search. Every label is stored as a double in its type's natural unit: numbers as
 * themselves, TIMESTAMP as microseconds since the epoch, DATE as days since the epoch. An index takes
 * the kind of its first labelled insert; bounds of another kind are converted (DATE <-> TIMESTAMP) or
 * rejected (a number against a time). */
typedef enum knn_label_kind {
    KNN_LABEL_NONE = 0,
    KNN_LABEL_NUMBER = 1,
    KNN_LABEL_TIMESTAMP = 2,
    KNN_LABEL_DATE = 3
} knn_label_kind;

#define KNN_LABEL_TYPES "DOUBLE, FLOAT, an integer type, TIMESTAMP or DATE"

const char *knn_label_kind_name(unsigned kind);
/* Kind of a DuckDB type; KNN_LABEL_NONE when it cannot be a label. DECIMAL counts as a number. */
knn_label_kind knn_label_kind_of(duckdb_type id);

/* How to read one label column: its type, and for DECIMAL the storage type and scale. */
typedef struct knn_label_col {
    duckdb_vector v;
    duckdb_type id;
    duckdb_type storage;
    double scale;
    knn_label_kind kind;
} knn_label_col;

/* Inspects a label column; on an unsupported type writes an error naming fn and arg. */
knn_status knn_label_col_init(knn_label_col *c, duckdb_vector v, const char *fn, const char *arg, knn_error *err);
/* Label of one row, in the kind's unit; false when NULL. */
bool knn_label_at(const knn_label_col *c, idx_t row, double *out);
/* Converts a window bound x of kind `from` into the index's kind `to`. DATE bounds against TIMESTAMP
 * labels become midnight; TIMESTAMP bounds against DATE labels round inward (lo up, hi down). */
knn_status knn_label_bound(double x, knn_label_kind from, unsigned to, bool is_lo, const char *fn, const char *what,
                           double *out, knn_error *err);
/* A bound given as a constant (a table-function parameter): NULL value means open. */
knn_status knn_value_bound(duckdb_value v, unsigned index_kind, bool is_lo, const char *fn, double *out,
                           knn_error *err);

/* Readable name of a DuckDB type for messages, e.g. "INTEGER[3]". */
void knn_type_name(duckdb_logical_type t, char *buf, size_t len);

#endif
