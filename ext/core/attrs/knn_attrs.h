/* Attribute columns: typed, columnar, nullable values held next to an index's rows, for filters that the
 * index evaluates itself (knn_search(..., filter := '<expression>')).
 *
 * A store is a set of named columns over rows 0 .. rows-1; the owner decides what a row is (a graph
 * index uses its node numbers, so a matching-row bitmap is directly a selector over nodes). Each column
 * has one logical type and one physical array:
 *   BIGINT     int64 i64[]   (every SQL integer type)
 *   DOUBLE     double f64[]  (FLOAT, DOUBLE, DECIMAL; NaN is a value, as in DuckDB, and sorts above all)
 *   BOOLEAN    int64 i64[]   (0 or 1)
 *   DATE       int64 i64[]   (days since 1970-01-01)
 *   TIMESTAMP  int64 i64[]   (microseconds since 1970-01-01 00:00:00, no time zone)
 *   VARCHAR    uint32 code[] (dictionary codes: dict.strs[code]; the dictionary only grows, so a code
 *                             keeps its string for the store's life)
 * plus a validity bitmap (bit r of word r/64 set: row r is not NULL). Rows past a column's writes, and
 * rows of columns added after them, are NULL.
 *
 * Not thread-safe by itself: the owner's lock guards it (the graph's read/write lock). */
#ifndef KNN_ATTRS_H
#define KNN_ATTRS_H

#include <stddef.h>
#include <stdint.h>

#include "base/knn_error.h"

#define KNN_ATTR_NAME_MAX 64 /* bytes in a column name */
#define KNN_ATTR_COLS_MAX 64 /* columns in one store */

typedef enum knn_attr_type {
    KNN_ATTR_BIGINT = 1,
    KNN_ATTR_DOUBLE = 2,
    KNN_ATTR_BOOLEAN = 3,
    KNN_ATTR_DATE = 4,
    KNN_ATTR_TIMESTAMP = 5,
    KNN_ATTR_VARCHAR = 6
} knn_attr_type;

/* Strings of a VARCHAR column, each once, with an open-addressing hash from string to code. */
typedef struct knn_attr_dict {
    char **strs;      /* n strings, each NUL-terminated (the NUL is not part of the value) */
    uint32_t *lens;   /* n byte lengths (a value may contain NUL bytes) */
    size_t n, cap;
    uint32_t *slots;  /* nslots (a power of two): code + 1, 0 when empty */
    size_t nslots;
} knn_attr_dict;

typedef struct knn_attr_col {
    char name[KNN_ATTR_NAME_MAX + 1]; /* as given at creation; matched case-insensitively */
    knn_attr_type type;
    int64_t *i64;     /* BIGINT, BOOLEAN, DATE, TIMESTAMP */
    double *f64;      /* DOUBLE */
    uint32_t *code;   /* VARCHAR */
    uint64_t *valid;  /* (cap + 63) / 64 words */
    knn_attr_dict dict; /* VARCHAR */
    uint32_t *order;  /* rows with a value among [0, ordered), sorted by it (knn_attr_order.h); NULL: none */
    size_t norder;    /* entries in order */
    size_t ordered;   /* rows the order covers; 0 with order NULL */
} knn_attr_col;

typedef struct knn_attrs {
    knn_attr_col *cols;
    size_t ncols;
    size_t rows, cap; /* rows in use, rows allocated in every column */
    /* Knobs of the sorted orders (knn_attr_order.h) for tests and tuning, 0 = the defaults: the rows
     * below which a refresh builds none (KNN_ATTR_ORDER_MIN_ROWS); which filter conjuncts the orders
     * answer (1: every one they can, -1: none, 0: the selective ones). */
    size_t order_min_rows;
    int order_policy;
} knn_attrs;

/* Physical kind of a logical type: 'i' (i64), 'f' (f64) or 's' (dictionary code). */
char knn_attr_physical(knn_attr_type t);
/* SQL name of a type ("BIGINT", "DOUBLE", ...); "?" for an unknown code. */
const char *knn_attr_type_name(knn_attr_type t);

void knn_attrs_init(knn_attrs *a);
void knn_attrs_free(knn_attrs *a);

/* Index of the column named name[0..len) (ASCII case-insensitive), or -1. */
long knn_attrs_find(const knn_attrs *a, const char *name, size_t len);
/* The column named name of type t: found (an error naming both types when it has another type) or
 * added (all NULL); its index in *col. Names: 1..KNN_ATTR_NAME_MAX bytes, no NUL. */
knn_status knn_attrs_column(knn_attrs *a, const char *name, size_t len, knn_attr_type t, size_t *col,
                            knn_error *err);
/* Makes the store `rows` rows long (never shorter): new rows are NULL in every column. */
knn_status knn_attrs_grow(knn_attrs *a, size_t rows, knn_error *err);

/* Writes one value (row < a->rows; the type must match the column's physical kind). */
void knn_attrs_set_null(knn_attrs *a, size_t col, size_t row);
void knn_attrs_set_i64(knn_attrs *a, size_t col, size_t row, int64_t v);
void knn_attrs_set_f64(knn_attrs *a, size_t col, size_t row, double v);
knn_status knn_attrs_set_str(knn_attrs *a, size_t col, size_t row, const char *s, size_t len, knn_error *err);

static inline int knn_attrs_is_valid(const knn_attr_col *c, size_t row) {
    return (int)((c->valid[row / 64] >> (row % 64)) & 1u);
}

/* The code of a string in a dictionary, or -1 when absent. */
long knn_attr_dict_find(const knn_attr_dict *d, const char *s, size_t len);

/* Values of one column for a batch of n rows, as an insert hands them over (one array set, by the
 * physical kind of `type`; valid NULL: no NULLs, else bit i of word i/64 set when row i is not NULL). */
typedef struct knn_attr_input {
    const char *name;
    size_t name_len;
    knn_attr_type type;
    const int64_t *i64;
    const double *f64;
    const char *const *strs;
    const uint32_t *str_lens;
    const uint64_t *valid;
} knn_attr_input;

typedef struct knn_attr_batch {
    const knn_attr_input *cols;
    size_t ncols;
} knn_attr_batch;

/* Checks a batch against the store before anything is written: names valid and distinct, types known,
 * each column's type equal to the stored column's of that name, the column count within
 * KNN_ATTR_COLS_MAX. */
knn_status knn_attrs_check(const knn_attrs *a, const knn_attr_batch *b, knn_error *err);
/* Writes batch row `src` into store row `row` (row < a->rows), adding missing columns; columns the
 * batch lacks are set NULL on that row. Call knn_attrs_check first: then only out of memory can fail. */
knn_status knn_attrs_write(knn_attrs *a, const knn_attr_batch *b, size_t src, size_t row, knn_error *err);

/* Keeps the rows r with drop[r] == 0, in order (a graph's optimize renumbers its live nodes that way). */
knn_status knn_attrs_compact(knn_attrs *a, const uint8_t *drop, knn_error *err);

/* Gives up the rows at and past `rows` (their slots return to zero and NULL): an insert rolled back. */
void knn_attrs_truncate(knn_attrs *a, size_t rows);

/* Bytes held. */
size_t knn_attrs_bytes(const knn_attrs *a);

/* Serialises the store as `rows` rows (rows >= a->rows: the rows past a->rows are written as NULL) into a
 * malloc'd buffer.
 * Layout (little-endian): u32 ncols | per column: u32 type | u32 name length | name | u64 dict size
 * | per string: u32 length | bytes | then the validity words ((rows + 63) / 64 u64) and the values
 * (rows x 8 bytes for i64/f64, rows x 4 for codes). */
knn_status knn_attrs_save(const knn_attrs *a, size_t rows, uint8_t **buf, size_t *len, knn_error *err);
/* Reads what knn_attrs_save wrote into an empty store of `rows` rows, checking every length, type code,
 * name, dictionary entry (no repeats) and code (< dictionary size) against the buffer; *used is the
 * bytes consumed. Corrupt bytes: KNN_EDATA with the reason, and the store left empty. */
knn_status knn_attrs_load(knn_attrs *a, const uint8_t *buf, size_t len, size_t rows, size_t *used, knn_error *err);

#endif
