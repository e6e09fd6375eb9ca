/* Attribute columns (knn_attrs.h): a typed, nullable, columnar store beside an index's rows.
 *
 * Layout as in column stores (DuckDB vectors, Arrow arrays): one value array per column plus a validity
 * bitmap, 64 rows a word; strings are dictionary-encoded (one code per row, each distinct string held
 * once, found through an open-addressing hash with linear probing, FNV-1a keys, load <= 1/2).
 * Invariants the readers (predicate evaluation) rely on: `cap` is a multiple of 64, and every slot at or
 * past `rows` holds value 0 and validity 0, so a reader may load whole 64-row words without bounds
 * tests. Growth is geometric (x1.5); a new distinct string costs one allocation; nothing else allocates
 * per row. The byte form is checked field by field on load before anything is sized from it. */
#include "attrs/knn_attrs.h"

#include "attrs/knn_attr_order.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WORDS(n) (((n) + 63) / 64)

char knn_attr_physical(knn_attr_type t) {
    switch (t) {
    case KNN_ATTR_DOUBLE: return 'f';
    case KNN_ATTR_VARCHAR: return 's';
    default: return 'i';
    }
}

const char *knn_attr_type_name(knn_attr_type t) {
    switch (t) {
    case KNN_ATTR_BIGINT: return "BIGINT";
    case KNN_ATTR_DOUBLE: return "DOUBLE";
    case KNN_ATTR_BOOLEAN: return "BOOLEAN";
    case KNN_ATTR_DATE: return "DATE";
    case KNN_ATTR_TIMESTAMP: return "TIMESTAMP";
    case KNN_ATTR_VARCHAR: return "VARCHAR";
    }
    return "?";
}

static int type_known(uint32_t t) { return t >= KNN_ATTR_BIGINT && t <= KNN_ATTR_VARCHAR; }

static size_t value_width(knn_attr_type t) { return knn_attr_physical(t) == 's' ? 4 : 8; }

void knn_attrs_init(knn_attrs *a) { memset(a, 0, sizeof *a); }

static void dict_free(knn_attr_dict *d) {
    for (size_t i = 0; i < d->n; i++) free(d->strs[i]);
    free(d->strs);
    free(d->lens);
    free(d->slots);
    memset(d, 0, sizeof *d);
}

void knn_attrs_free(knn_attrs *a) {
    for (size_t c = 0; c < a->ncols; c++) {
        knn_attr_col *col = &a->cols[c];
        free(col->i64);
        free(col->f64);
        free(col->code);
        free(col->valid);
        dict_free(&col->dict);
        knn_attr_order_drop(col);
    }
    free(a->cols);
    knn_attrs_init(a);
}

static int name_eq(const char *a, const char *b, size_t len) {
    for (size_t i = 0; i < len; i++) {
        unsigned char x = (unsigned char)a[i], y = (unsigned char)b[i];
        if (x >= 'A' && x <= 'Z') x = (unsigned char)(x + 32);
        if (y >= 'A' && y <= 'Z') y = (unsigned char)(y + 32);
        if (x != y) return 0;
    }
    return 1;
}

long knn_attrs_find(const knn_attrs *a, const char *name, size_t len) {
    for (size_t c = 0; c < a->ncols; c++) {
        const char *n = a->cols[c].name;
        if (strlen(n) == len && name_eq(n, name, len)) return (long)c;
    }
    return -1;
}

static knn_status check_name(const char *name, size_t len, knn_error *err) {
    if (name == NULL || len == 0) return knn_error_set(err, KNN_EINVAL, "attrs: a column name is empty");
    if (len > KNN_ATTR_NAME_MAX)
        return knn_error_set(err, KNN_EINVAL, "attrs: column name '%.*s...' is %zu bytes; at most %d", 16, name, len,
                             KNN_ATTR_NAME_MAX);
    if (memchr(name, '\0', len) != NULL)
        return knn_error_set(err, KNN_EINVAL, "attrs: column name '%.*s' contains a NUL byte", (int)len, name);
    return KNN_OK;
}

/* ---- dictionary ---- */

static uint64_t str_hash(const char *s, size_t len) {
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)s[i];
        h *= 0x100000001b3ULL;
    }
    return h ^ (h >> 29);
}

long knn_attr_dict_find(const knn_attr_dict *d, const char *s, size_t len) {
    if (d->nslots == 0) return -1;
    size_t mask = d->nslots - 1;
    for (size_t i = (size_t)str_hash(s, len) & mask;; i = (i + 1) & mask) {
        uint32_t v = d->slots[i];
        if (v == 0) return -1;
        uint32_t code = v - 1;
        if (d->lens[code] == len && memcmp(d->strs[code], s, len) == 0) return (long)code;
    }
}

static void dict_place(knn_attr_dict *d, uint32_t code) {
    size_t mask = d->nslots - 1;
    size_t i = (size_t)str_hash(d->strs[code], d->lens[code]) & mask;
    while (d->slots[i] != 0) i = (i + 1) & mask;
    d->slots[i] = code + 1;
}

/* The code of s, added when absent. */
static knn_status dict_intern(knn_attr_dict *d, const char *s, size_t len, uint32_t *code, knn_error *err) {
    long f = knn_attr_dict_find(d, s, len);
    if (f >= 0) {
        *code = (uint32_t)f;
        return KNN_OK;
    }
    if (len > UINT32_MAX - 1) return knn_error_set(err, KNN_EINVAL, "attrs: a string of %zu bytes is too long", len);
    if (d->n >= (size_t)UINT32_MAX - 1)
        return knn_error_set(err, KNN_EINVAL, "attrs: a VARCHAR column holds more than 2^32 - 2 distinct strings");
    if (d->n == d->cap) {
        size_t cap = d->cap ? d->cap * 2 : 16;
        char **strs = realloc(d->strs, cap * sizeof *strs);
        if (strs == NULL) return knn_error_set(err, KNN_ENOMEM, "attrs: out of memory growing a dictionary");
        d->strs = strs;
        uint32_t *lens = realloc(d->lens, cap * sizeof *lens);
        if (lens == NULL) return knn_error_set(err, KNN_ENOMEM, "attrs: out of memory growing a dictionary");
        d->lens = lens;
        d->cap = cap;
    }
    if ((d->n + 1) * 2 > d->nslots) {
        size_t ns = d->nslots ? d->nslots * 2 : 32;
        uint32_t *slots = calloc(ns, sizeof *slots);
        if (slots == NULL) return knn_error_set(err, KNN_ENOMEM, "attrs: out of memory growing a dictionary");
        free(d->slots);
        d->slots = slots;
        d->nslots = ns;
        for (size_t c = 0; c < d->n; c++) dict_place(d, (uint32_t)c);
    }
    char *copy = malloc(len + 1);
    if (copy == NULL) return knn_error_set(err, KNN_ENOMEM, "attrs: out of memory copying a string");
    if (len) memcpy(copy, s, len);
    copy[len] = '\0';
    d->strs[d->n] = copy;
    d->lens[d->n] = (uint32_t)len;
    dict_place(d, (uint32_t)d->n);
    *code = (uint32_t)d->n++;
    return KNN_OK;
}

/* ---- columns and rows ---- */

/* Resizes one column's arrays from old_cap to cap rows (cap > old_cap), zeroing the new part. */
static knn_status col_resize(knn_attr_col *c, size_t old_cap, size_t cap, knn_error *err) {
    size_t w = value_width(c->type);
    void **arr = knn_attr_physical(c->type) == 'i' ? (void **)&c->i64
                 : knn_attr_physical(c->type) == 'f' ? (void **)&c->f64 : (void **)&c->code;
    void *p = realloc(*arr, cap * w);
    if (p == NULL) return knn_error_set(err, KNN_ENOMEM, "attrs: out of memory growing column '%s' to %zu rows", c->name, cap);
    memset((char *)p + old_cap * w, 0, (cap - old_cap) * w);
    *arr = p;
    uint64_t *v = realloc(c->valid, WORDS(cap) * sizeof *v);
    if (v == NULL) return knn_error_set(err, KNN_ENOMEM, "attrs: out of memory growing column '%s' to %zu rows", c->name, cap);
    memset(v + WORDS(old_cap), 0, (WORDS(cap) - WORDS(old_cap)) * sizeof *v);
    c->valid = v;
    return KNN_OK;
}

knn_status knn_attrs_grow(knn_attrs *a, size_t rows, knn_error *err) {
    if (rows <= a->rows) return KNN_OK;
    if (rows > a->cap) {
        if (rows > (SIZE_MAX / 16) - 64) return knn_error_set(err, KNN_EINVAL, "attrs: %zu rows are too many", rows);
        size_t cap = a->cap + a->cap / 2;
        if (cap < rows) cap = rows;
        if (cap < 64) cap = 64;
        cap = (cap + 63) / 64 * 64;
        if (cap > (SIZE_MAX / 16) - 64) cap = (rows + 63) / 64 * 64;
        for (size_t c = 0; c < a->ncols; c++) {
            /* a column that fails keeps a usable (larger or old) size; cap moves only when all succeed */
            knn_status s = col_resize(&a->cols[c], a->cap, cap, err);
            if (s != KNN_OK) return s; /* columns already resized keep valid (larger, zeroed) arrays */
        }
        a->cap = cap;
    }
    a->rows = rows;
    return KNN_OK;
}

knn_status knn_attrs_column(knn_attrs *a, const char *name, size_t len, knn_attr_type t, size_t *col,
                            knn_error *err) {
    knn_status s = check_name(name, len, err);
    if (s != KNN_OK) return s;
    if (!type_known((uint32_t)t)) return knn_error_set(err, KNN_EINVAL, "attrs: unknown column type code %d", (int)t);
    long f = knn_attrs_find(a, name, len);
    if (f >= 0) {
        if (a->cols[f].type != t)
            return knn_error_set(err, KNN_EINVAL, "attrs: column '%s' is %s, not %s", a->cols[f].name,
                                 knn_attr_type_name(a->cols[f].type), knn_attr_type_name(t));
        *col = (size_t)f;
        return KNN_OK;
    }
    if (a->ncols >= KNN_ATTR_COLS_MAX)
        return knn_error_set(err, KNN_EINVAL, "attrs: an index holds at most %d attribute columns", KNN_ATTR_COLS_MAX);
    knn_attr_col *cols = realloc(a->cols, (a->ncols + 1) * sizeof *cols);
    if (cols == NULL) return knn_error_set(err, KNN_ENOMEM, "attrs: out of memory adding a column");
    a->cols = cols;
    knn_attr_col *c = &cols[a->ncols];
    memset(c, 0, sizeof *c);
    memcpy(c->name, name, len);
    c->name[len] = '\0';
    c->type = t;
    if (a->cap && (s = col_resize(c, 0, a->cap, err)) != KNN_OK) {
        free(c->i64);
        free(c->f64);
        free(c->code);
        free(c->valid);
        return s;
    }
    *col = a->ncols++;
    return KNN_OK;
}

/* A row already in the column's sorted order changes value: the order no longer holds. */
static void unorder(knn_attr_col *c, size_t row) {
    if (row < c->ordered) knn_attr_order_drop(c);
}

void knn_attrs_set_null(knn_attrs *a, size_t col, size_t row) {
    knn_attr_col *c = &a->cols[col];
    unorder(c, row);
    c->valid[row / 64] &= ~((uint64_t)1 << (row % 64));
    switch (knn_attr_physical(c->type)) {
    case 'i': c->i64[row] = 0; break;
    case 'f': c->f64[row] = 0; break;
    default: c->code[row] = 0; break;
    }
}

void knn_attrs_set_i64(knn_attrs *a, size_t col, size_t row, int64_t v) {
    knn_attr_col *c = &a->cols[col];
    unorder(c, row);
    c->i64[row] = v;
    c->valid[row / 64] |= (uint64_t)1 << (row % 64);
}

void knn_attrs_set_f64(knn_attrs *a, size_t col, size_t row, double v) {
    knn_attr_col *c = &a->cols[col];
    unorder(c, row);
    c->f64[row] = v;
    c->valid[row / 64] |= (uint64_t)1 << (row % 64);
}

knn_status knn_attrs_set_str(knn_attrs *a, size_t col, size_t row, const char *s, size_t len, knn_error *err) {
    knn_attr_col *c = &a->cols[col];
    uint32_t code;
    knn_status st = dict_intern(&c->dict, s ? s : "", s ? len : 0, &code, err);
    if (st != KNN_OK) return st;
    unorder(c, row);
    c->code[row] = code;
    c->valid[row / 64] |= (uint64_t)1 << (row % 64);
    return KNN_OK;
}

/* ---- insert batches ---- */

knn_status knn_attrs_check(const knn_attrs *a, const knn_attr_batch *b, knn_error *err) {
    if (b == NULL || b->ncols == 0) return KNN_OK;
    if (b->cols == NULL) return knn_error_set(err, KNN_EINVAL, "attrs: a batch of %zu columns has no columns array", b->ncols);
    if (b->ncols > KNN_ATTR_COLS_MAX)
        return knn_error_set(err, KNN_EINVAL, "attrs: %zu attribute columns given; an index holds at most %d", b->ncols,
                             KNN_ATTR_COLS_MAX);
    size_t added = 0;
    for (size_t i = 0; i < b->ncols; i++) {
        const knn_attr_input *in = &b->cols[i];
        knn_status s = check_name(in->name, in->name_len, err);
        if (s != KNN_OK) return s;
        if (!type_known((uint32_t)in->type))
            return knn_error_set(err, KNN_EINVAL, "attrs: column '%.*s' has unknown type code %d", (int)in->name_len,
                                 in->name, (int)in->type);
        char k = knn_attr_physical(in->type);
        if ((k == 'i' && in->i64 == NULL) || (k == 'f' && in->f64 == NULL) ||
            (k == 's' && (in->strs == NULL || in->str_lens == NULL)))
            return knn_error_set(err, KNN_EINVAL, "attrs: column '%.*s' (%s) has no values", (int)in->name_len, in->name,
                                 knn_attr_type_name(in->type));
        for (size_t j = 0; j < i; j++) {
            if (b->cols[j].name_len == in->name_len && name_eq(b->cols[j].name, in->name, in->name_len))
                return knn_error_set(err, KNN_EINVAL, "attrs: column '%.*s' is given twice (names ignore case)",
                                     (int)in->name_len, in->name);
        }
        long f = knn_attrs_find(a, in->name, in->name_len);
        if (f < 0) {
            added++;
        } else if (a->cols[f].type != in->type) {
            return knn_error_set(err, KNN_EINVAL, "attrs: column '%s' is %s in the index but %s here; insert %s values "
                                 "(cast the column) or use another name", a->cols[f].name,
                                 knn_attr_type_name(a->cols[f].type), knn_attr_type_name(in->type),
                                 knn_attr_type_name(a->cols[f].type));
        }
    }
    if (a->ncols + added > KNN_ATTR_COLS_MAX)
        return knn_error_set(err, KNN_EINVAL, "attrs: the index has %zu attribute columns and this insert adds %zu; at "
                             "most %d", a->ncols, added, KNN_ATTR_COLS_MAX);
    return KNN_OK;
}

knn_status knn_attrs_write(knn_attrs *a, const knn_attr_batch *b, size_t src, size_t row, knn_error *err) {
    uint64_t written = 0; /* bit c: store column c got a value or NULL from the batch */
    size_t nb = b ? b->ncols : 0;
    for (size_t i = 0; i < nb; i++) {
        const knn_attr_input *in = &b->cols[i];
        size_t c;
        knn_status s = knn_attrs_column(a, in->name, in->name_len, in->type, &c, err);
        if (s != KNN_OK) return s;
        written |= (uint64_t)1 << c;
        if (in->valid && !((in->valid[src / 64] >> (src % 64)) & 1u)) {
            knn_attrs_set_null(a, c, row);
            continue;
        }
        switch (knn_attr_physical(in->type)) {
        case 'i': knn_attrs_set_i64(a, c, row, in->type == KNN_ATTR_BOOLEAN ? in->i64[src] != 0 : in->i64[src]); break;
        case 'f': knn_attrs_set_f64(a, c, row, in->f64[src]); break;
        default:
            if ((s = knn_attrs_set_str(a, c, row, in->strs[src], in->str_lens[src], err)) != KNN_OK) return s;
            break;
        }
    }
    for (size_t c = 0; c < a->ncols; c++) {
        if (!((written >> c) & 1u)) knn_attrs_set_null(a, c, row);
    }
    return KNN_OK;
}

/* ---- compaction, size ---- */

knn_status knn_attrs_compact(knn_attrs *a, const uint8_t *drop, knn_error *err) {
    (void)err;
    if (a->rows == 0) return KNN_OK;
    size_t keep = 0;
    for (size_t r = 0; r < a->rows; r++) keep += drop[r] == 0;
    knn_attrs_order_drop_all(a); /* rows renumbered; the owner refreshes */
    for (size_t c = 0; c < a->ncols; c++) {
        knn_attr_col *col = &a->cols[c];
        char k = knn_attr_physical(col->type);
        size_t j = 0;
        /* in place: position j <= r, so every read bit/value is still the original one */
        for (size_t r = 0; r < a->rows; r++) {
            if (drop[r]) continue;
            uint64_t bit = (col->valid[r / 64] >> (r % 64)) & 1u;
            col->valid[j / 64] = (col->valid[j / 64] & ~((uint64_t)1 << (j % 64))) | (bit << (j % 64));
            if (k == 'i') col->i64[j] = col->i64[r];
            else if (k == 'f') col->f64[j] = col->f64[r];
            else col->code[j] = col->code[r];
            j++;
        }
    }
    knn_attrs_truncate(a, keep); /* the rows past `keep` return to zero and NULL */
    return KNN_OK;
}

void knn_attrs_truncate(knn_attrs *a, size_t rows) {
    if (rows >= a->rows) return;
    for (size_t c = 0; c < a->ncols; c++) {
        knn_attr_col *col = &a->cols[c];
        char k = knn_attr_physical(col->type);
        size_t tail = a->rows - rows;
        if (rows < col->ordered) knn_attr_order_drop(col);
        if (k == 'i') memset(col->i64 + rows, 0, tail * sizeof *col->i64);
        else if (k == 'f') memset(col->f64 + rows, 0, tail * sizeof *col->f64);
        else memset(col->code + rows, 0, tail * sizeof *col->code);
        if (rows % 64) col->valid[rows / 64] &= ((uint64_t)1 << (rows % 64)) - 1;
        for (size_t w = (rows + 63) / 64; w < WORDS(a->rows); w++) col->valid[w] = 0;
    }
    a->rows = rows;
}

size_t knn_attrs_bytes(const knn_attrs *a) {
    size_t total = sizeof *a + a->ncols * sizeof(knn_attr_col);
    for (size_t c = 0; c < a->ncols; c++) {
        const knn_attr_col *col = &a->cols[c];
        total += a->cap * value_width(col->type) + WORDS(a->cap) * 8;
        const knn_attr_dict *d = &col->dict;
        total += d->cap * (sizeof(char *) + sizeof(uint32_t)) + d->nslots * sizeof(uint32_t);
        for (size_t i = 0; i < d->n; i++) total += (size_t)d->lens[i] + 1;
        total += col->norder * sizeof *col->order;
    }
    return total;
}

/* ---- bytes ---- */

static uint8_t *put32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
    return p + 4;
}

static uint8_t *put64(uint8_t *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
    return p + 8;
}

static uint32_t get32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t get64(const uint8_t *p) { return (uint64_t)get32(p) | (uint64_t)get32(p + 4) << 32; }

/* adds b to *sum; 0 on overflow */
static int add_size(size_t *sum, size_t b) {
    if (*sum > SIZE_MAX - b) return 0;
    *sum += b;
    return 1;
}

knn_status knn_attrs_save(const knn_attrs *a, size_t rows, uint8_t **buf, size_t *len, knn_error *err) {
    *buf = NULL;
    *len = 0;
    if (rows < a->rows) return knn_error_set(err, KNN_EINVAL, "attrs: save of %zu rows from a store of %zu", rows, a->rows);
    if (rows > SIZE_MAX / 16 - 64) return knn_error_set(err, KNN_EINVAL, "attrs: %zu rows are too many to save", rows);
    size_t total = 4, words = WORDS(rows);
    for (size_t c = 0; c < a->ncols; c++) {
        const knn_attr_col *col = &a->cols[c];
        int ok = add_size(&total, 16 + strlen(col->name)) && add_size(&total, words * 8) &&
                 add_size(&total, rows * value_width(col->type));
        for (size_t i = 0; ok && i < col->dict.n; i++) ok = add_size(&total, 4 + (size_t)col->dict.lens[i]);
        if (!ok) return knn_error_set(err, KNN_EINVAL, "attrs: the store is too large to save");
    }
    uint8_t *out = malloc(total), *p = out;
    if (out == NULL) return knn_error_set(err, KNN_ENOMEM, "attrs: out of memory saving %zu bytes", total);
    p = put32(p, (uint32_t)a->ncols);
    for (size_t c = 0; c < a->ncols; c++) {
        const knn_attr_col *col = &a->cols[c];
        size_t nl = strlen(col->name);
        p = put32(p, (uint32_t)col->type);
        p = put32(p, (uint32_t)nl);
        memcpy(p, col->name, nl);
        p += nl;
        p = put64(p, (uint64_t)col->dict.n);
        for (size_t i = 0; i < col->dict.n; i++) {
            p = put32(p, col->dict.lens[i]);
            if (col->dict.lens[i]) memcpy(p, col->dict.strs[i], col->dict.lens[i]);
            p += col->dict.lens[i];
        }
        size_t have = WORDS(a->rows);
        for (size_t w = 0; w < words; w++) p = put64(p, w < have ? col->valid[w] : 0);
        char k = knn_attr_physical(col->type);
        for (size_t r = 0; r < rows; r++) {
            int live = r < a->rows && knn_attrs_is_valid(col, r);
            if (k == 's') {
                p = put32(p, live ? col->code[r] : 0);
            } else if (k == 'f') {
                uint64_t bits = 0;
                if (live) memcpy(&bits, &col->f64[r], 8);
                p = put64(p, bits);
            } else {
                p = put64(p, live ? (uint64_t)col->i64[r] : 0);
            }
        }
    }
    *buf = out;
    *len = (size_t)(p - out);
    return KNN_OK;
}

#define CORRUPT(...)                                                   \
    do {                                                               \
        char why_[KNN_ERROR_MSG_LEN - 64];                             \
        snprintf(why_, sizeof why_, __VA_ARGS__);                      \
        s = knn_error_set(err, KNN_EDATA, "attrs: corrupt bytes: %s", why_); \
        goto fail;                                                     \
    } while (0)

knn_status knn_attrs_load(knn_attrs *a, const uint8_t *buf, size_t len, size_t rows, size_t *used, knn_error *err) {
    knn_status s = KNN_OK;
    knn_attrs t;
    knn_attrs_init(&t);
    if (used) *used = 0;
    if (a->ncols != 0) return knn_error_set(err, KNN_ESTATE, "attrs: load into a store that has columns");
    if (buf == NULL && len != 0) return knn_error_set(err, KNN_EINVAL, "attrs: load from no buffer");
    size_t at = 0, words = WORDS(rows);
    if (len < 4) CORRUPT("%zu bytes, fewer than the 4 of the column count", len);
    uint32_t ncols = get32(buf);
    at = 4;
    if (ncols > KNN_ATTR_COLS_MAX) CORRUPT("%u columns; at most %d", ncols, KNN_ATTR_COLS_MAX);
    if (ncols > 0) {
        /* every column needs its validity words and 4+ bytes a row: bound rows before sizing anything */
        if (rows > (len - at) / 4 || words > (len - at) / 8)
            CORRUPT("%zu rows cannot fit in the %zu bytes left", rows, len - at);
    }
    if ((s = knn_attrs_grow(&t, rows, err)) != KNN_OK) goto fail;
    for (uint32_t c = 0; c < ncols; c++) {
        if (len - at < 8) CORRUPT("column %u header truncated", c);
        uint32_t type = get32(buf + at), nl = get32(buf + at + 4);
        at += 8;
        if (!type_known(type)) CORRUPT("column %u has unknown type code %u", c, type);
        if (nl == 0 || nl > KNN_ATTR_NAME_MAX) CORRUPT("column %u name length %u not in 1..%d", c, nl, KNN_ATTR_NAME_MAX);
        if (len - at < nl) CORRUPT("column %u name truncated", c);
        const char *name = (const char *)buf + at;
        if (memchr(name, '\0', nl)) CORRUPT("column %u name contains a NUL byte", c);
        if (knn_attrs_find(&t, name, nl) >= 0) CORRUPT("column name '%.*s' repeats", (int)nl, name);
        size_t col;
        if ((s = knn_attrs_column(&t, name, nl, (knn_attr_type)type, &col, err)) != KNN_OK) goto fail;
        at += nl;
        knn_attr_col *cp = &t.cols[col];
        if (len - at < 8) CORRUPT("column '%s' dictionary size truncated", cp->name);
        uint64_t dn = get64(buf + at);
        at += 8;
        if (type != KNN_ATTR_VARCHAR && dn != 0) CORRUPT("column '%s' is %s but has %llu dictionary strings", cp->name,
                                                        knn_attr_type_name(cp->type), (unsigned long long)dn);
        if (dn > (len - at) / 4) CORRUPT("column '%s' dictionary of %llu strings exceeds the bytes left", cp->name,
                                         (unsigned long long)dn);
        for (uint64_t i = 0; i < dn; i++) {
            if (len - at < 4) CORRUPT("column '%s' string %llu truncated", cp->name, (unsigned long long)i);
            uint32_t sl = get32(buf + at);
            at += 4;
            if (len - at < sl) CORRUPT("column '%s' string %llu of %u bytes truncated", cp->name, (unsigned long long)i, sl);
            const char *str = (const char *)buf + at;
            if (knn_attr_dict_find(&cp->dict, str, sl) >= 0)
                CORRUPT("column '%s' dictionary string %llu repeats", cp->name, (unsigned long long)i);
            uint32_t code;
            if ((s = dict_intern(&cp->dict, str, sl, &code, err)) != KNN_OK) goto fail;
            at += sl;
        }
        size_t w = value_width(cp->type);
        if ((len - at) / 8 < words || (len - at - words * 8) / w < rows)
            CORRUPT("column '%s' values truncated (%zu rows)", cp->name, rows);
        for (size_t i = 0; i < words; i++) cp->valid[i] = get64(buf + at + i * 8);
        at += words * 8;
        if (rows % 64 && (cp->valid[words - 1] >> (rows % 64)) != 0)
            CORRUPT("column '%s' validity has bits past row %zu", cp->name, rows);
        for (size_t r = 0; r < rows; r++, at += w) {
            int live = knn_attrs_is_valid(cp, r);
            if (type == KNN_ATTR_VARCHAR) {
                uint32_t code = get32(buf + at);
                if (live && code >= cp->dict.n)
                    CORRUPT("column '%s' row %zu has code %u of a %zu-string dictionary", cp->name, r, code, cp->dict.n);
                cp->code[r] = live ? code : 0;
            } else if (type == KNN_ATTR_DOUBLE) {
                uint64_t bits = get64(buf + at);
                double v;
                memcpy(&v, &bits, 8);
                cp->f64[r] = live ? v : 0;
            } else {
                int64_t v = (int64_t)get64(buf + at);
                if (live && type == KNN_ATTR_BOOLEAN && v != 0 && v != 1)
                    CORRUPT("column '%s' row %zu holds %lld, not a BOOLEAN 0 or 1", cp->name, r, (long long)v);
                cp->i64[r] = live ? v : 0;
            }
        }
    }
    knn_attrs_free(a);
    *a = t;
    if (used) *used = at;
    return KNN_OK;
fail:
    knn_attrs_free(&t);
    knn_attrs_free(a);
    return s;
}
