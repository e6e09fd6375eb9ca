/* STRUCT argument -> attribute batch (knn_attr_cols.h). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "knn_attr_cols.h"
#include "knn_glue.h"

DUCKDB_EXTENSION_EXTERN

/* The core type of a SQL type id, or 0 when it has none. */
static knn_attr_type core_type(duckdb_type id) {
    switch (id) {
    case DUCKDB_TYPE_TINYINT: case DUCKDB_TYPE_SMALLINT: case DUCKDB_TYPE_INTEGER: case DUCKDB_TYPE_BIGINT:
    case DUCKDB_TYPE_UTINYINT: case DUCKDB_TYPE_USMALLINT: case DUCKDB_TYPE_UINTEGER: case DUCKDB_TYPE_UBIGINT:
        return KNN_ATTR_BIGINT;
    case DUCKDB_TYPE_FLOAT: case DUCKDB_TYPE_DOUBLE: case DUCKDB_TYPE_DECIMAL: return KNN_ATTR_DOUBLE;
    case DUCKDB_TYPE_BOOLEAN: return KNN_ATTR_BOOLEAN;
    case DUCKDB_TYPE_DATE: return KNN_ATTR_DATE;
    case DUCKDB_TYPE_TIMESTAMP: case DUCKDB_TYPE_TIMESTAMP_TZ: case DUCKDB_TYPE_TIMESTAMP_S:
    case DUCKDB_TYPE_TIMESTAMP_MS: case DUCKDB_TYPE_TIMESTAMP_NS: return KNN_ATTR_TIMESTAMP;
    case DUCKDB_TYPE_VARCHAR: return KNN_ATTR_VARCHAR;
    default: return (knn_attr_type)0;
    }
}

void knn_attr_acc_free(knn_attr_acc *a) {
    for (size_t c = 0; c < a->ncols; c++) {
        knn_attr_buf *b = &a->cols[c];
        free(b->i64);
        free(b->f64);
        free(b->soff);
        free(b->slen);
        free(b->arena);
        free(b->valid);
    }
    free(a->cols);
    memset(a, 0, sizeof *a);
}

knn_status knn_attr_acc_init(knn_attr_acc *a, duckdb_vector v, const char *fn, knn_error *err) {
    memset(a, 0, sizeof *a);
    duckdb_logical_type t = duckdb_vector_get_column_type(v);
    knn_status s = KNN_OK;
    idx_t n = duckdb_struct_type_child_count(t);
    if (n == 0 || n > KNN_ATTR_COLS_MAX) {
        s = knn_error_set(err, KNN_EINVAL, "%s: the attributes STRUCT must have 1 to %d fields, got %llu", fn,
                          KNN_ATTR_COLS_MAX, (unsigned long long)n);
        goto done;
    }
    a->cols = calloc(n, sizeof *a->cols);
    if (a->cols == NULL) {
        s = knn_error_set(err, KNN_ENOMEM, "out of memory");
        goto done;
    }
    a->ncols = n;
    for (idx_t c = 0; c < n && s == KNN_OK; c++) {
        knn_attr_buf *b = &a->cols[c];
        char *name = duckdb_struct_type_child_name(t, c);
        duckdb_logical_type ct = duckdb_struct_type_child_type(t, c);
        duckdb_type id = duckdb_get_type_id(ct);
        size_t len = name ? strlen(name) : 0;
        b->type = core_type(id);
        b->storage = id;
        b->scale = 1.0;
        if (len == 0 || len > KNN_ATTR_NAME_MAX) {
            s = knn_error_set(err, KNN_EINVAL, "%s: attribute names must be 1 to %d bytes, got '%.64s'", fn,
                              KNN_ATTR_NAME_MAX, name ? name : "");
        } else if (b->type == 0) {
            char tn[96];
            knn_type_name(ct, tn, sizeof tn);
            s = knn_error_set(err, KNN_EINVAL, "%s: attribute '%s' has type %s, which an index cannot hold; cast it to "
                              "BIGINT, DOUBLE, BOOLEAN, DATE, TIMESTAMP or VARCHAR, e.g. {'%s': %s::VARCHAR}", fn, name,
                              tn, name, name);
        } else {
            memcpy(b->name, name, len + 1);
            if (id == DUCKDB_TYPE_DECIMAL) {
                b->storage = duckdb_decimal_internal_type(ct);
                b->scale = pow(10.0, (double)duckdb_decimal_scale(ct));
            }
        }
        for (idx_t p = 0; p < c && s == KNN_OK; p++) {
            if (strcasecmp(a->cols[p].name, b->name) == 0) {
                s = knn_error_set(err, KNN_EINVAL, "%s: attribute '%s' is given twice", fn, b->name);
            }
        }
        if (name) duckdb_free(name);
        duckdb_destroy_logical_type(&ct);
    }
done:
    duckdb_destroy_logical_type(&t);
    if (s != KNN_OK) knn_attr_acc_free(a);
    return s;
}

knn_status knn_attr_acc_like(knn_attr_acc *a, const knn_attr_acc *src, knn_error *err) {
    memset(a, 0, sizeof *a);
    a->cols = calloc(src->ncols ? src->ncols : 1, sizeof *a->cols);
    if (a->cols == NULL) return knn_error_set(err, KNN_ENOMEM, "out of memory");
    a->ncols = src->ncols;
    for (size_t c = 0; c < src->ncols; c++) {
        memcpy(a->cols[c].name, src->cols[c].name, sizeof a->cols[c].name);
        a->cols[c].type = src->cols[c].type;
        a->cols[c].storage = src->cols[c].storage;
        a->cols[c].scale = src->cols[c].scale;
    }
    return KNN_OK;
}

/* Room for `need` rows in every column. */
static knn_status reserve(knn_attr_acc *a, size_t need, knn_error *err) {
    if (need <= a->cap) return KNN_OK;
    size_t cap = a->cap ? a->cap * 2 : 1024;
    while (cap < need) cap *= 2;
    for (size_t c = 0; c < a->ncols; c++) {
        knn_attr_buf *b = &a->cols[c];
        char phys = knn_attr_physical(b->type);
        void *p;
        if (phys == 'i' && (p = realloc(b->i64, cap * sizeof *b->i64)) != NULL) b->i64 = p;
        else if (phys == 'f' && (p = realloc(b->f64, cap * sizeof *b->f64)) != NULL) b->f64 = p;
        else if (phys == 's' && (p = realloc(b->soff, cap * sizeof *b->soff)) != NULL) {
            b->soff = p;
            if ((p = realloc(b->slen, cap * sizeof *b->slen)) == NULL) goto oom;
            b->slen = p;
        } else {
            goto oom;
        }
        size_t words = (cap + 63) / 64, old = (a->cap + 63) / 64;
        if ((p = realloc(b->valid, words * sizeof *b->valid)) == NULL) goto oom;
        b->valid = p;
        memset(b->valid + old, 0, (words - old) * sizeof *b->valid);
    }
    a->cap = cap;
    return KNN_OK;
oom:
    return knn_error_set(err, KNN_ENOMEM, "out of memory buffering %zu attribute rows", cap);
}

static knn_status put_string(knn_attr_buf *b, size_t row, const char *s, size_t len, knn_error *err) {
    if (len > UINT32_MAX) return knn_error_set(err, KNN_EINVAL, "attribute '%s': a string of %zu bytes is too long",
                                               b->name, len);
    if (knn_grow((void **)&b->arena, &b->arena_cap, b->arena_n + len + 1, 1, "attribute bytes", err) != KNN_OK) {
        return err->status;
    }
    memcpy(b->arena + b->arena_n, s, len);
    b->arena[b->arena_n + len] = '\0';
    b->soff[row] = b->arena_n;
    b->slen[row] = (uint32_t)len;
    b->arena_n += len + 1;
    return KNN_OK;
}

static void set_valid(knn_attr_buf *b, size_t row, bool on) {
    const uint64_t bit = (uint64_t)1 << (row % 64);
    if (on) b->valid[row / 64] |= bit;
    else b->valid[row / 64] &= ~bit;
}

static void set_null(knn_attr_buf *b, size_t row) {
    set_valid(b, row, false);
    if (b->slen) b->slen[row] = 0;
}

/* Seconds or milliseconds to microseconds; values past the microsecond range (DuckDB's 'infinity'
 * timestamps among them) saturate instead of overflowing. */
static int64_t scale_time(int64_t v, int64_t by) {
    if (v > INT64_MAX / by) return INT64_MAX;
    if (v < INT64_MIN / by) return INT64_MIN;
    return v * by;
}

/* One field of one row into column b at buffer row `at`. */
static knn_status read_field(knn_attr_buf *b, duckdb_vector child, idx_t row, size_t at, knn_error *err) {
    if (!knn_valid(duckdb_vector_get_validity(child), row)) {
        set_null(b, at);
        return KNN_OK;
    }
    const void *d = duckdb_vector_get_data(child);
    int64_t i = 0;
    double f = 0;
    switch (b->storage) {
    case DUCKDB_TYPE_BOOLEAN: i = ((const bool *)d)[row]; break;
    case DUCKDB_TYPE_TINYINT: i = ((const int8_t *)d)[row]; f = (double)i; break;
    case DUCKDB_TYPE_SMALLINT: i = ((const int16_t *)d)[row]; f = (double)i; break;
    case DUCKDB_TYPE_INTEGER: case DUCKDB_TYPE_DATE: i = ((const int32_t *)d)[row]; f = (double)i; break;
    case DUCKDB_TYPE_BIGINT: case DUCKDB_TYPE_TIMESTAMP: case DUCKDB_TYPE_TIMESTAMP_TZ:
        i = ((const int64_t *)d)[row];
        f = (double)i;
        break;
    case DUCKDB_TYPE_TIMESTAMP_S: i = scale_time(((const int64_t *)d)[row], 1000000); break;
    case DUCKDB_TYPE_TIMESTAMP_MS: i = scale_time(((const int64_t *)d)[row], 1000); break;
    case DUCKDB_TYPE_TIMESTAMP_NS: {
        int64_t ns = ((const int64_t *)d)[row];
        i = ns / 1000 - (ns % 1000 < 0); /* floor */
        break;
    }
    case DUCKDB_TYPE_UTINYINT: i = ((const uint8_t *)d)[row]; f = (double)i; break;
    case DUCKDB_TYPE_USMALLINT: i = ((const uint16_t *)d)[row]; f = (double)i; break;
    case DUCKDB_TYPE_UINTEGER: i = ((const uint32_t *)d)[row]; f = (double)i; break;
    case DUCKDB_TYPE_UBIGINT: {
        uint64_t u = ((const uint64_t *)d)[row];
        if (u > (uint64_t)INT64_MAX) {
            return knn_error_set(err, KNN_EINVAL, "attribute '%s': %llu does not fit a BIGINT; cast the field to "
                                 "DOUBLE", b->name, (unsigned long long)u);
        }
        i = (int64_t)u;
        break;
    }
    case DUCKDB_TYPE_HUGEINT: f = duckdb_hugeint_to_double(((const duckdb_hugeint *)d)[row]); break;
    case DUCKDB_TYPE_FLOAT: f = ((const float *)d)[row]; break;
    case DUCKDB_TYPE_DOUBLE: f = ((const double *)d)[row]; break;
    case DUCKDB_TYPE_VARCHAR: {
        const char *s;
        size_t len;
        knn_get_varchar(child, row, &s, &len);
        if (put_string(b, at, s, len, err) != KNN_OK) return err->status;
        set_valid(b, at, true);
        return KNN_OK;
    }
    default: return knn_error_set(err, KNN_EINVAL, "attribute '%s': unsupported storage type", b->name);
    }
    if (knn_attr_physical(b->type) == 'f') {
        b->f64[at] = b->scale != 1.0 ? f / b->scale : f;
    } else {
        b->i64[at] = i;
    }
    set_valid(b, at, true);
    return KNN_OK;
}

knn_status knn_attr_acc_push(knn_attr_acc *a, duckdb_vector v, idx_t row, knn_error *err) {
    if (reserve(a, a->n + 1, err) != KNN_OK) return err->status;
    bool whole = knn_valid(duckdb_vector_get_validity(v), row);
    for (size_t c = 0; c < a->ncols; c++) {
        if (!whole) {
            set_null(&a->cols[c], a->n);
            continue;
        }
        if (read_field(&a->cols[c], duckdb_struct_vector_get_child(v, c), row, a->n, err) != KNN_OK) return err->status;
    }
    a->n++;
    return KNN_OK;
}

knn_status knn_attr_acc_append(knn_attr_acc *dst, const knn_attr_acc *src, knn_error *err) {
    if (src->n == 0) return KNN_OK;
    if (reserve(dst, dst->n + src->n, err) != KNN_OK) return err->status;
    for (size_t c = 0; c < dst->ncols; c++) {
        knn_attr_buf *d = &dst->cols[c];
        const knn_attr_buf *s = &src->cols[c];
        for (size_t r = 0; r < src->n; r++) {
            bool on = (s->valid[r / 64] >> (r % 64)) & 1u;
            if (!on) {
                set_null(d, dst->n + r);
                continue;
            }
            set_valid(d, dst->n + r, true);
            char phys = knn_attr_physical(d->type);
            if (phys == 'i') d->i64[dst->n + r] = s->i64[r];
            else if (phys == 'f') d->f64[dst->n + r] = s->f64[r];
            else if (put_string(d, dst->n + r, s->arena + s->soff[r], s->slen[r], err) != KNN_OK) return err->status;
        }
    }
    dst->n += src->n;
    return KNN_OK;
}

knn_status knn_attr_acc_batch(const knn_attr_acc *a, knn_attr_batch *b, knn_error *err) {
    b->ncols = 0;
    knn_attr_input *in = calloc(a->ncols ? a->ncols : 1, sizeof *in);
    if (in == NULL) return knn_error_set(err, KNN_ENOMEM, "out of memory");
    b->cols = in;
    for (size_t c = 0; c < a->ncols; c++) {
        const knn_attr_buf *s = &a->cols[c];
        in[c].name = s->name;
        in[c].name_len = strlen(s->name);
        in[c].type = s->type;
        in[c].i64 = s->i64;
        in[c].f64 = s->f64;
        in[c].valid = s->valid;
        in[c].str_lens = s->slen;
        if (knn_attr_physical(s->type) == 's') {
            const char **strs = malloc((a->n ? a->n : 1) * sizeof *strs);
            if (strs == NULL) {
                b->ncols = c;
                knn_attr_batch_free_views(b);
                return knn_error_set(err, KNN_ENOMEM, "out of memory");
            }
            for (size_t r = 0; r < a->n; r++) strs[r] = (s->valid[r / 64] >> (r % 64)) & 1u ? s->arena + s->soff[r] : "";
            in[c].strs = strs;
        }
        b->ncols = c + 1;
    }
    return KNN_OK;
}

void knn_attr_batch_free_views(knn_attr_batch *b) {
    knn_attr_input *in = (knn_attr_input *)b->cols;
    for (size_t c = 0; in && c < b->ncols; c++) free((void *)in[c].strs);
    free(in);
    b->cols = NULL;
    b->ncols = 0;
}
