#include "knn_glue.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

DUCKDB_EXTENSION_EXTERN

static const char *type_id_name(duckdb_type id) {
    switch (id) {
    case DUCKDB_TYPE_BOOLEAN: return "BOOLEAN";
    case DUCKDB_TYPE_TINYINT: return "TINYINT";
    case DUCKDB_TYPE_SMALLINT: return "SMALLINT";
    case DUCKDB_TYPE_INTEGER: return "INTEGER";
    case DUCKDB_TYPE_BIGINT: return "BIGINT";
    case DUCKDB_TYPE_UTINYINT: return "UTINYINT";
    case DUCKDB_TYPE_USMALLINT: return "USMALLINT";
    case DUCKDB_TYPE_UINTEGER: return "UINTEGER";
    case DUCKDB_TYPE_UBIGINT: return "UBIGINT";
    case DUCKDB_TYPE_HUGEINT: return "HUGEINT";
    case DUCKDB_TYPE_FLOAT: return "FLOAT";
    case DUCKDB_TYPE_DOUBLE: return "DOUBLE";
    case DUCKDB_TYPE_DECIMAL: return "DECIMAL";
    case DUCKDB_TYPE_VARCHAR: return "VARCHAR";
    case DUCKDB_TYPE_BLOB: return "BLOB";
    case DUCKDB_TYPE_DATE: return "DATE";
    case DUCKDB_TYPE_TIMESTAMP: return "TIMESTAMP";
    case DUCKDB_TYPE_STRUCT: return "STRUCT";
    case DUCKDB_TYPE_MAP: return "MAP";
    case DUCKDB_TYPE_SQLNULL: return "NULL";
    default: return "an unsupported type";
    }
}

void knn_type_name(duckdb_logical_type t, char *buf, size_t len) {
    duckdb_type id = duckdb_get_type_id(t);
    if (id == DUCKDB_TYPE_ARRAY || id == DUCKDB_TYPE_LIST) {
        duckdb_logical_type child =
            id == DUCKDB_TYPE_ARRAY ? duckdb_array_type_child_type(t) : duckdb_list_type_child_type(t);
        char inner[64];
        knn_type_name(child, inner, sizeof inner);
        duckdb_destroy_logical_type(&child);
        if (id == DUCKDB_TYPE_ARRAY) {
            snprintf(buf, len, "%s[%llu]", inner, (unsigned long long)duckdb_array_type_array_size(t));
        } else {
            snprintf(buf, len, "%s[]", inner);
        }
        return;
    }
    snprintf(buf, len, "%s", type_id_name(id));
}

knn_status knn_vreader_init(knn_vreader *r, duckdb_vector v, const char *fn, const char *arg, knn_error *err) {
    memset(r, 0, sizeof *r);
    duckdb_logical_type t = duckdb_vector_get_column_type(v);
    duckdb_type id = duckdb_get_type_id(t);
    duckdb_logical_type child = NULL;
    knn_status status = KNN_OK;
    if (id == DUCKDB_TYPE_ARRAY) {
        child = duckdb_array_type_child_type(t);
        r->is_array = true;
        r->array_dim = (size_t)duckdb_array_type_array_size(t);
    } else if (id == DUCKDB_TYPE_LIST) {
        child = duckdb_list_type_child_type(t);
    }
    duckdb_type cid = child ? duckdb_get_type_id(child) : DUCKDB_TYPE_INVALID;
    switch (cid) {
    case DUCKDB_TYPE_FLOAT: r->elem = KNN_ELEM_F32; break;
    case DUCKDB_TYPE_DOUBLE: r->elem = KNN_ELEM_F64; break;
    case DUCKDB_TYPE_TINYINT: r->elem = KNN_ELEM_I8; break;
    case DUCKDB_TYPE_SMALLINT: r->elem = KNN_ELEM_I16; break;
    case DUCKDB_TYPE_INTEGER: r->elem = KNN_ELEM_I32; break;
    case DUCKDB_TYPE_BIGINT: r->elem = KNN_ELEM_I64; break;
    case DUCKDB_TYPE_UTINYINT: r->elem = KNN_ELEM_U8; break;
    case DUCKDB_TYPE_USMALLINT: r->elem = KNN_ELEM_U16; break;
    case DUCKDB_TYPE_UINTEGER: r->elem = KNN_ELEM_U32; break;
    default: {
        char name[96];
        knn_type_name(t, name, sizeof name);
        status = knn_error_set(err, KNN_EINVAL, "%s: '%s' must be a vector: " KNN_VECTOR_TYPES "; got %s; cast it, "
                               "e.g. %s::FLOAT[d]", fn, arg, name, arg);
        goto cleanup;
    }
    }
    r->validity = duckdb_vector_get_validity(v);
    duckdb_vector cv;
    if (r->is_array) {
        cv = duckdb_array_vector_get_child(v);
    } else {
        r->entries = (duckdb_list_entry *)duckdb_vector_get_data(v);
        cv = duckdb_list_vector_get_child(v);
    }
    r->elems = duckdb_vector_get_data(cv);
    r->elem_validity = duckdb_vector_get_validity(cv);
cleanup:
    if (child) duckdb_destroy_logical_type(&child);
    duckdb_destroy_logical_type(&t);
    return status;
}

static inline void row_span(const knn_vreader *r, idx_t row, size_t *start, size_t *len) {
    if (r->is_array) {
        *start = (size_t)row * r->array_dim;
        *len = r->array_dim;
    } else {
        *start = (size_t)r->entries[row].offset;
        *len = (size_t)r->entries[row].length;
    }
}

size_t knn_vreader_len(const knn_vreader *r, idx_t row) {
    if (!knn_valid(r->validity, row)) return 0;
    size_t start, len;
    row_span(r, row, &start, &len);
    return len;
}

knn_row_state knn_vreader_get(const knn_vreader *r, idx_t row, size_t dim, float *buf, const float **out,
                              size_t *got_dim) {
    if (!knn_valid(r->validity, row)) return KNN_ROW_NULL;
    size_t start, len;
    row_span(r, row, &start, &len);
    *got_dim = len;
    if (len != dim) return KNN_ROW_DIM_MISMATCH;
    if (r->elem_validity) {
        for (size_t j = 0; j < len; j++) {
            if (!knn_valid(r->elem_validity, start + j)) return KNN_ROW_NULL_ELEMENT;
        }
    }
    if (r->elem == KNN_ELEM_F32) {
        *out = (const float *)r->elems + start;
        return KNN_ROW_OK;
    }
#define CONVERT(T)                                                        \
    do {                                                                  \
        const T *src = (const T *)r->elems + start;                       \
        for (size_t j = 0; j < len; j++) buf[j] = (float)src[j];          \
    } while (0)
    switch (r->elem) {
    case KNN_ELEM_F64: CONVERT(double); break;
    case KNN_ELEM_I8: CONVERT(int8_t); break;
    case KNN_ELEM_I16: CONVERT(int16_t); break;
    case KNN_ELEM_I32: CONVERT(int32_t); break;
    case KNN_ELEM_I64: CONVERT(int64_t); break;
    case KNN_ELEM_U8: CONVERT(uint8_t); break;
    case KNN_ELEM_U16: CONVERT(uint16_t); break;
    case KNN_ELEM_U32: CONVERT(uint32_t); break;
    case KNN_ELEM_F32: break;
    }
#undef CONVERT
    *out = buf;
    return KNN_ROW_OK;
}

bool knn_vreader_contiguous(const knn_vreader *r, idx_t lo, idx_t hi, size_t dim, const float **base) {
    if (r->elem != KNN_ELEM_F32 || r->elem_validity) return false;
    for (idx_t i = lo; i < hi; i++) {
        if (!knn_valid(r->validity, i)) return false;
    }
    if (r->is_array) {
        if (r->array_dim != dim) return false;
        *base = (const float *)r->elems + (size_t)lo * dim;
        return true;
    }
    size_t expect = (size_t)r->entries[lo].offset;
    for (idx_t i = lo; i < hi; i++) {
        if (r->entries[i].length != dim || r->entries[i].offset != expect) return false;
        expect += dim;
    }
    *base = (const float *)r->elems + (size_t)r->entries[lo].offset;
    return true;
}

bool knn_get_bigint(duckdb_vector v, idx_t row, int64_t *out) {
    if (!knn_valid(duckdb_vector_get_validity(v), row)) return false;
    *out = ((const int64_t *)duckdb_vector_get_data(v))[row];
    return true;
}

bool knn_get_double(duckdb_vector v, idx_t row, double *out) {
    if (!knn_valid(duckdb_vector_get_validity(v), row)) return false;
    *out = ((const double *)duckdb_vector_get_data(v))[row];
    return true;
}

knn_status knn_grow(void **p, size_t *cap, size_t need, size_t elem, const char *what, knn_error *err) {
    if (need <= *cap) return KNN_OK;
    size_t c = *cap ? *cap : 1024;
    while (c < need) c *= 2;
    void *np = realloc(*p, c * elem);
    if (np == NULL) return knn_error_set(err, KNN_ENOMEM, "out of memory for %zu %s", need, what);
    *p = np;
    *cap = c;
    return KNN_OK;
}

knn_status knn_qlist_init(knn_qlist *ql, duckdb_vector v, const char *fn, knn_error *err) {
    memset(ql, 0, sizeof *ql);
    duckdb_logical_type t = duckdb_vector_get_column_type(v);
    duckdb_type id = duckdb_get_type_id(t);
    knn_status s = KNN_OK;
    char usage[320];
    snprintf(usage, sizeof usage, "%s: 'queries' must be a LIST of query vectors, e.g. (SELECT list(emb) FROM q), "
             "or a LIST of STRUCT(query id, vector), e.g. (SELECT list({'qid': qid, 'emb': emb}) FROM q)", fn);
    if (id != DUCKDB_TYPE_LIST) {
        char name[96];
        knn_type_name(t, name, sizeof name);
        s = knn_error_set(err, KNN_EINVAL, "%s; got %s", usage, name);
        goto cleanup;
    }
    ql->entries = (duckdb_list_entry *)duckdb_vector_get_data(v);
    ql->validity = duckdb_vector_get_validity(v);
    duckdb_vector child = duckdb_list_vector_get_child(v);
    duckdb_logical_type ct = duckdb_list_type_child_type(t);
    if (duckdb_get_type_id(ct) == DUCKDB_TYPE_STRUCT) {
        bool ok = duckdb_struct_type_child_count(ct) == 2;
        duckdb_type qid_type = DUCKDB_TYPE_INVALID;
        if (ok) {
            duckdb_logical_type it = duckdb_struct_type_child_type(ct, 0);
            qid_type = duckdb_get_type_id(it);
            duckdb_destroy_logical_type(&it);
            ok = qid_type == DUCKDB_TYPE_BIGINT || qid_type == DUCKDB_TYPE_INTEGER;
        }
        if (!ok) {
            s = knn_error_set(err, KNN_EINVAL, "%s; the STRUCT must have two fields: an INTEGER or BIGINT query id, "
                              "then the vector", usage);
        } else {
            duckdb_vector idv = duckdb_struct_vector_get_child(child, 0);
            ql->qid_data = duckdb_vector_get_data(idv);
            ql->qid_valid = duckdb_vector_get_validity(idv);
            ql->qid_is_int32 = qid_type == DUCKDB_TYPE_INTEGER;
            s = knn_vreader_init(&ql->vecs, duckdb_struct_vector_get_child(child, 1), fn, "queries", err);
        }
    } else {
        s = knn_vreader_init(&ql->vecs, child, fn, "queries", err);
    }
    duckdb_destroy_logical_type(&ct);
cleanup:
    duckdb_destroy_logical_type(&t);
    return s;
}

bool knn_get_varchar(duckdb_vector v, idx_t row, const char **s, size_t *len) {
    if (!knn_valid(duckdb_vector_get_validity(v), row)) return false;
    duckdb_string_t *str = (duckdb_string_t *)duckdb_vector_get_data(v) + row;
    *len = duckdb_string_t_length(*str);
    *s = duckdb_string_t_data(str);
    return true;
}

bool knn_bind_varchar(duckdb_bind_info info, idx_t index, char *out, size_t cap, size_t *len, const char *fn,
                      const char *what, knn_error *err) {
    duckdb_value v = duckdb_bind_get_parameter(info, index);
    bool ok = false;
    if (v == NULL || duckdb_is_null_value(v)) {
        knn_error_set(err, KNN_EINVAL, "%s: %s must not be NULL", fn, what);
    } else {
        char *s = duckdb_get_varchar(v);
        size_t n = s ? strlen(s) : 0;
        if (n == 0) {
            knn_error_set(err, KNN_EINVAL, "%s: %s must not be empty", fn, what);
        } else if (n >= cap) {
            knn_error_set(err, KNN_EINVAL, "%s: %s is %zu bytes; the limit is %zu", fn, what, n, cap - 1);
        } else {
            memcpy(out, s, n + 1);
            *len = n;
            ok = true;
        }
        if (s) duckdb_free(s);
    }
    if (v) duckdb_destroy_value(&v);
    return ok;
}

int knn_id_pos_cmp(const void *a, const void *b) {
    int64_t x = ((const knn_id_pos *)a)->id, y = ((const knn_id_pos *)b)->id;
    return (x > y) - (x < y);
}

void *knn_bind_index_name(duckdb_bind_info info, size_t size, const char *fn, knn_error *err) {
    knn_index_ref *ref = calloc(1, size);
    if (ref == NULL) {
        knn_error_set(err, KNN_ENOMEM, "%s: out of memory", fn);
        return NULL;
    }
    if (!knn_bind_varchar(info, 0, ref->name, sizeof ref->name, &ref->len, fn, "index name", err)) {
        free(ref);
        return NULL;
    }
    return ref;
}

knn_status knn_bind_window(duckdb_bind_info info, knn_entry *e, const char *fn, bool *windowed, double *lo,
                           double *hi, knn_error *err) {
    duckdb_value lv = duckdb_bind_get_named_parameter(info, "lo");
    duckdb_value hv = duckdb_bind_get_named_parameter(info, "hi");
    *windowed = lv != NULL || hv != NULL;
    unsigned kind = atomic_load(&e->label_kind);
    knn_status s = KNN_OK;
    if (*windowed) s = knn_value_bound(lv, kind, true, fn, lo, err);
    if (s == KNN_OK && *windowed) s = knn_value_bound(hv, kind, false, fn, hi, err);
    if (lv) duckdb_destroy_value(&lv);
    if (hv) duckdb_destroy_value(&hv);
    return s;
}

int knn_bind_named_int(duckdb_bind_info info, const char *name, int64_t *out) {
    duckdb_value v = duckdb_bind_get_named_parameter(info, name);
    if (v == NULL) return 0;
    int r = 0;
    if (!duckdb_is_null_value(v)) {
        *out = duckdb_get_int64(v);
        r = 1;
    }
    duckdb_destroy_value(&v);
    return r;
}

char *knn_bind_named_varchar(duckdb_bind_info info, const char *name) {
    duckdb_value v = duckdb_bind_get_named_parameter(info, name);
    if (v == NULL) return NULL;
    char *s = duckdb_is_null_value(v) ? NULL : duckdb_get_varchar(v);
    duckdb_destroy_value(&v);
    return s;
}

/* ARRAY values have no element accessors in the v1.2 C API; their text form ("[1.0, 2.5, NULL]") is
 * exact for FLOAT (shortest round-trip digits) and correctly rounded for DOUBLE, so parse that. */
static bool array_text_to_floats(duckdb_value v, float **out, size_t *dim, const char *fn, knn_error *err) {
    char *text = duckdb_get_varchar(v);
    bool ok = false;
    float *q = NULL;
    size_t n = 0, cap = 0;
    if (text == NULL || text[0] != '[') {
        knn_error_set(err, KNN_EINVAL, "%s: could not read the query array", fn);
        goto done;
    }
    for (const char *p = text + 1; *p && *p != ']';) {
        while (*p == ' ' || *p == ',') p++;
        if (*p == ']') break;
        if (strncmp(p, "NULL", 4) == 0) {
            knn_error_set(err, KNN_EDATA, "%s: query contains a NULL element at position %zu", fn, n);
            goto done;
        }
        char *end;
        float x = strtof(p, &end);
        if (end == p) {
            knn_error_set(err, KNN_EINVAL, "%s: query must be a numeric vector", fn);
            goto done;
        }
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            float *nq = realloc(q, cap * sizeof *nq);
            if (nq == NULL) {
                knn_error_set(err, KNN_ENOMEM, "%s: out of memory for the query", fn);
                goto done;
            }
            q = nq;
        }
        q[n++] = x;
        p = end;
    }
    if (n == 0) {
        knn_error_set(err, KNN_EINVAL, "%s: query is an empty list; give a vector", fn);
        goto done;
    }
    ok = true;
done:
    if (text) duckdb_free(text);
    if (!ok) {
        free(q);
        q = NULL;
    }
    *out = q;
    *dim = n;
    return ok;
}

bool knn_value_to_floats(duckdb_value v, float **out, size_t *dim, const char *fn, knn_error *err) {
    *out = NULL;
    if (v == NULL || duckdb_is_null_value(v)) {
        knn_error_set(err, KNN_EINVAL, "%s: query must not be NULL", fn);
        return false;
    }
    duckdb_logical_type t = duckdb_get_value_type(v); /* owned by the value: not destroyed here */
    duckdb_type id = duckdb_get_type_id(t);
    if (id == DUCKDB_TYPE_ARRAY) return array_text_to_floats(v, out, dim, fn, err);
    if (id != DUCKDB_TYPE_LIST) {
        char name[96];
        knn_type_name(t, name, sizeof name);
        knn_error_set(err, KNN_EINVAL, "%s: query must be a vector: " KNN_VECTOR_TYPES "; got %s", fn, name);
        return false;
    }
    idx_t n = duckdb_get_list_size(v);
    if (n == 0) {
        knn_error_set(err, KNN_EINVAL, "%s: query is an empty list; give a vector", fn);
        return false;
    }
    float *q = malloc(n * sizeof *q);
    if (q == NULL) {
        knn_error_set(err, KNN_ENOMEM, "%s: out of memory for a %llu-element query", fn, (unsigned long long)n);
        return false;
    }
    for (idx_t i = 0; i < n; i++) {
        duckdb_value e = duckdb_get_list_child(v, i);
        bool null = e == NULL || duckdb_is_null_value(e);
        if (!null) q[i] = duckdb_get_float(e);
        if (e) duckdb_destroy_value(&e);
        if (null) {
            free(q);
            knn_error_set(err, KNN_EDATA, "%s: query contains a NULL element at position %llu", fn,
                          (unsigned long long)i);
            return false;
        }
    }
    *out = q;
    *dim = (size_t)n;
    return true;
}

void knn_bind_column(duckdb_bind_info info, const char *name, duckdb_type type) {
    duckdb_logical_type t = duckdb_create_logical_type(type);
    duckdb_bind_add_result_column(info, name, t);
    duckdb_destroy_logical_type(&t);
}

const char *knn_label_kind_name(unsigned kind) {
    switch (kind) {
    case KNN_LABEL_NUMBER: return "DOUBLE";
    case KNN_LABEL_TIMESTAMP: return "TIMESTAMP";
    case KNN_LABEL_DATE: return "DATE";
    default: return NULL;
    }
}

knn_label_kind knn_label_kind_of(duckdb_type id) {
    switch (id) {
    case DUCKDB_TYPE_TINYINT: case DUCKDB_TYPE_SMALLINT: case DUCKDB_TYPE_INTEGER: case DUCKDB_TYPE_BIGINT:
    case DUCKDB_TYPE_UTINYINT: case DUCKDB_TYPE_USMALLINT: case DUCKDB_TYPE_UINTEGER: case DUCKDB_TYPE_UBIGINT:
    case DUCKDB_TYPE_FLOAT: case DUCKDB_TYPE_DOUBLE: case DUCKDB_TYPE_DECIMAL: case DUCKDB_TYPE_HUGEINT:
        return KNN_LABEL_NUMBER;
    case DUCKDB_TYPE_TIMESTAMP: case DUCKDB_TYPE_TIMESTAMP_TZ: case DUCKDB_TYPE_TIMESTAMP_S:
    case DUCKDB_TYPE_TIMESTAMP_MS: case DUCKDB_TYPE_TIMESTAMP_NS:
        return KNN_LABEL_TIMESTAMP;
    case DUCKDB_TYPE_DATE:
        return KNN_LABEL_DATE;
    default:
        return KNN_LABEL_NONE;
    }
}

knn_status knn_label_col_init(knn_label_col *c, duckdb_vector v, const char *fn, const char *arg, knn_error *err) {
    duckdb_logical_type t = duckdb_vector_get_column_type(v);
    c->v = v;
    c->id = duckdb_get_type_id(t);
    c->storage = c->id;
    c->scale = 1.0;
    c->kind = knn_label_kind_of(c->id);
    knn_status s = KNN_OK;
    if (c->id == DUCKDB_TYPE_DECIMAL) {
        c->storage = duckdb_decimal_internal_type(t);
        c->scale = pow(10.0, (double)duckdb_decimal_scale(t));
    } else if (c->kind == KNN_LABEL_NONE && c->id != DUCKDB_TYPE_SQLNULL) {
        char name[96];
        knn_type_name(t, name, sizeof name);
        s = knn_error_set(err, KNN_EINVAL, "%s: '%s' must be " KNN_LABEL_TYPES ", got %s; cast it, e.g. %s::DOUBLE", fn,
                          arg, name, arg);
    }
    duckdb_destroy_logical_type(&t);
    return s;
}

bool knn_label_at(const knn_label_col *c, idx_t row, double *out) {
    if (c->kind == KNN_LABEL_NONE || !knn_valid(duckdb_vector_get_validity(c->v), row)) return false;
    const void *d = duckdb_vector_get_data(c->v);
    double x;
    switch (c->storage) {
    case DUCKDB_TYPE_TINYINT: x = ((const int8_t *)d)[row]; break;
    case DUCKDB_TYPE_SMALLINT: x = ((const int16_t *)d)[row]; break;
    case DUCKDB_TYPE_INTEGER: x = ((const int32_t *)d)[row]; break;
    case DUCKDB_TYPE_BIGINT: x = (double)((const int64_t *)d)[row]; break;
    case DUCKDB_TYPE_HUGEINT: x = duckdb_hugeint_to_double(((const duckdb_hugeint *)d)[row]); break;
    case DUCKDB_TYPE_UTINYINT: x = ((const uint8_t *)d)[row]; break;
    case DUCKDB_TYPE_USMALLINT: x = ((const uint16_t *)d)[row]; break;
    case DUCKDB_TYPE_UINTEGER: x = ((const uint32_t *)d)[row]; break;
    case DUCKDB_TYPE_UBIGINT: x = (double)((const uint64_t *)d)[row]; break;
    case DUCKDB_TYPE_FLOAT: x = ((const float *)d)[row]; break;
    case DUCKDB_TYPE_DOUBLE: x = ((const double *)d)[row]; break;
    case DUCKDB_TYPE_TIMESTAMP: case DUCKDB_TYPE_TIMESTAMP_TZ: x = (double)((const int64_t *)d)[row]; break;
    case DUCKDB_TYPE_TIMESTAMP_S: x = (double)((const int64_t *)d)[row] * 1e6; break;
    case DUCKDB_TYPE_TIMESTAMP_MS: x = (double)((const int64_t *)d)[row] * 1e3; break;
    case DUCKDB_TYPE_TIMESTAMP_NS: x = floor((double)((const int64_t *)d)[row] / 1e3); break;
    case DUCKDB_TYPE_DATE: x = ((const int32_t *)d)[row]; break;
    default: return false;
    }
    *out = c->id == DUCKDB_TYPE_DECIMAL ? x / c->scale : x;
    return true;
}

#define MICROS_PER_DAY 86400000000.0

knn_status knn_label_bound(double x, knn_label_kind from, unsigned to, bool is_lo, const char *fn, const char *what,
                           double *out, knn_error *err) {
    if (to == KNN_LABEL_NONE) {
        return knn_error_set(err, KNN_EINVAL, "%s: the index has no labels, so '%s' cannot apply; insert rows with "
                             "knn_index_insert(name, id, vec, label) to search windows", fn, what);
    }
    if (isnan(x)) return knn_error_set(err, KNN_EINVAL, "%s: '%s' must not be NaN; use NULL for an open side", fn, what);
    if (from == to) {
        *out = x;
    } else if (from == KNN_LABEL_DATE && to == KNN_LABEL_TIMESTAMP) {
        *out = x * MICROS_PER_DAY;
    } else if (from == KNN_LABEL_TIMESTAMP && to == KNN_LABEL_DATE) {
        *out = is_lo ? ceil(x / MICROS_PER_DAY) : floor(x / MICROS_PER_DAY);
    } else {
        return knn_error_set(err, KNN_EINVAL, "%s: '%s' is a %s but the index's labels are %s; give a %s bound", fn,
                             what, knn_label_kind_name(from), knn_label_kind_name(to), knn_label_kind_name(to));
    }
    return KNN_OK;
}

knn_status knn_value_bound(duckdb_value v, unsigned index_kind, bool is_lo, const char *fn, double *out,
                           knn_error *err) {
    const char *what = is_lo ? "lo" : "hi";
    *out = is_lo ? -INFINITY : INFINITY;
    if (v == NULL || duckdb_is_null_value(v)) return KNN_OK;
    duckdb_type id = duckdb_get_type_id(duckdb_get_value_type(v));
    knn_label_kind kind = knn_label_kind_of(id);
    double x;
    if (kind == KNN_LABEL_NUMBER) {
        x = duckdb_get_double(v);
    } else if (kind == KNN_LABEL_TIMESTAMP) {
        x = (double)duckdb_get_timestamp(v).micros;
    } else if (kind == KNN_LABEL_DATE) {
        x = (double)duckdb_get_date(v).days;
    } else {
        return knn_error_set(err, KNN_EINVAL, "%s: '%s' must be " KNN_LABEL_TYPES " (or NULL for an open side)", fn,
                             what);
    }
    return knn_label_bound(x, kind, index_kind, is_lo, fn, what, out, err);
}
