/* libFuzzer harness: filter predicates (attrs/knn_predicate.h) and attribute-column bytes
 * (attrs/knn_attrs.h), the two inputs of knn_search(..., filter := '...') that come from outside.
 *
 * The first input byte picks the mode: even -> the rest is filter text: parsed, and when it parses,
 * evaluated against a fixed store (a column of each type, NULLs, a dictionary with quotes, an empty
 * string and UTF-8) over all rows and over a prefix; the bits past the rows must stay 0, and the filter
 * wrapped in NOT (...) must never share a TRUE row with it (three-valued logic). Odd -> bytes 1-2 give a
 * row count (< 4096) and the rest goes to knn_attrs_load: a failure must leave the store empty with
 * a message; a success must save to bytes that load to the same bytes again, evaluate a few filters
 * and survive compaction. Build and run: scripts/fuzz.sh predicate. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attrs/knn_attrs.h"
#include "attrs/knn_predicate.h"

#define ROWS 200

static void build(knn_attrs *a) {
    static const char *const names[] = {"price", "n", "flag", "d", "ts", "cat", "Odd \"name\""};
    static const knn_attr_type types[] = {KNN_ATTR_DOUBLE, KNN_ATTR_BIGINT, KNN_ATTR_BOOLEAN, KNN_ATTR_DATE,
                                          KNN_ATTR_TIMESTAMP, KNN_ATTR_VARCHAR, KNN_ATTR_BIGINT};
    static const char *const cats[] = {"a", "abc", "It's", "", "\xc3\xa9t\xc3\xa9", "x_y", "100%", "B"};
    static const double prices[] = {1.5, -2, 0, 10, 1e300, -0.0, 3.25};
    knn_error err;
    size_t c;
    knn_attrs_init(a);
    for (size_t k = 0; k < sizeof names / sizeof *names; k++)
        if (knn_attrs_column(a, names[k], strlen(names[k]), types[k], &c, &err) != KNN_OK) abort();
    if (knn_attrs_grow(a, ROWS, &err) != KNN_OK) abort();
    uint64_t x = 0x243f6a8885a308d3ULL;
    for (size_t r = 0; r < ROWS; r++) {
        for (size_t k = 0; k < 7; k++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            if (x % 6 == 0) continue; /* NULL */
            switch (types[k]) {
            case KNN_ATTR_DOUBLE: knn_attrs_set_f64(a, k, r, x % 11 == 0 ? NAN : prices[x % 7]); break;
            case KNN_ATTR_BIGINT: knn_attrs_set_i64(a, k, r, x % 13 == 0 ? INT64_MIN : (int64_t)(x % 21) - 10); break;
            case KNN_ATTR_BOOLEAN: knn_attrs_set_i64(a, k, r, (int64_t)(x & 1)); break;
            case KNN_ATTR_DATE: knn_attrs_set_i64(a, k, r, 19750 + (int64_t)(x % 30)); break;
            case KNN_ATTR_TIMESTAMP: knn_attrs_set_i64(a, k, r, (19750 + (int64_t)(x % 30)) * 86400000000LL + (int64_t)(x % 7) * 3600000000LL); break;
            default:
                if (knn_attrs_set_str(a, k, r, cats[x % 8], strlen(cats[x % 8]), &err) != KNN_OK) abort();
            }
        }
    }
}

static const knn_attrs *store(void) {
    static knn_attrs a; /* built once, read only afterwards */
    static int ready;
    if (!ready) {
        build(&a);
        ready = 1;
    }
    return &a;
}

static void check_eval(const knn_predicate *p, const knn_attrs *a, size_t rows, uint64_t *out, size_t words_cap) {
    knn_error err;
    size_t words = (rows + 63) / 64;
    if (words + 1 > words_cap) abort();
    out[words] = 0x5a5a5a5a5a5a5a5aULL;
    if (knn_predicate_eval(p, a, rows, out, &err) == KNN_OK) {
        if (rows % 64 && (out[words - 1] >> (rows % 64)) != 0) abort(); /* bits past rows */
    } else if (err.msg[0] == '\0') {
        abort();
    }
    if (out[words] != 0x5a5a5a5a5a5a5a5aULL) abort(); /* wrote past the bitmap */
}

static void filter_mode(const uint8_t *data, size_t size) {
    const knn_attrs *a = store();
    knn_predicate *p = NULL;
    knn_error err;
    char cols[96];
    if (knn_predicate_parse((const char *)data, size, &p, &err) != KNN_OK) {
        if (p != NULL || err.msg[0] == '\0') abort();
        return;
    }
    knn_predicate_columns(p, cols, sizeof cols);
    knn_predicate_columns(p, cols, 7);
    if (strlen(cols) >= 7) abort();
    uint64_t t[(ROWS + 63) / 64 + 1], u[(ROWS + 63) / 64 + 1];
    check_eval(p, a, 77, t, sizeof t / 8);
    check_eval(p, a, ROWS, t, sizeof t / 8);
    knn_status st = knn_predicate_eval(p, a, ROWS, t, &err);
    knn_predicate_free(p);
    if (st != KNN_OK || size > 4000) return;
    char wrapped[4096 + 16];
    int n = snprintf(wrapped, sizeof wrapped, "NOT (%.*s\n)", (int)size, (const char *)data);
    if (n < 0 || memchr(data, '\0', size)) return;
    if (knn_predicate_parse(wrapped, (size_t)n, &p, &err) != KNN_OK) return; /* e.g. a trailing '--' style mismatch */
    if (knn_predicate_eval(p, a, ROWS, u, &err) == KNN_OK) {
        for (size_t w = 0; w < (ROWS + 63) / 64; w++)
            if (t[w] & u[w]) abort(); /* p and NOT p both TRUE on a row */
    }
    knn_predicate_free(p);
}

static void load_mode(const uint8_t *data, size_t size) {
    if (size < 2) return;
    size_t rows = ((size_t)data[0] | (size_t)data[1] << 8) & 0xfff;
    data += 2;
    size -= 2;
    knn_attrs a, b;
    knn_error err;
    size_t used = 0;
    knn_attrs_init(&a);
    knn_attrs_init(&b);
    if (knn_attrs_load(&a, data, size, rows, &used, &err) != KNN_OK) {
        if (a.ncols != 0 || a.cols != NULL || err.msg[0] == '\0') abort();
        return;
    }
    if (used > size || a.rows != rows) abort();
    uint8_t *one = NULL, *two = NULL;
    size_t n1 = 0, n2 = 0;
    if (knn_attrs_save(&a, rows, &one, &n1, &err) != KNN_OK) abort();
    if (knn_attrs_load(&b, one, n1, rows, &used, &err) != KNN_OK || used != n1) abort(); /* our own bytes */
    if (knn_attrs_save(&b, rows, &two, &n2, &err) != KNN_OK || n1 != n2 || memcmp(one, two, n1) != 0) abort();
    static const char *const filters[] = {"price > 1 OR n IS NULL", "cat LIKE '%a_' AND NOT flag",
                                          "d BETWEEN DATE '2024-01-01' AND '2024-12-31' OR ts < DATE '2024-02-01'",
                                          "n IN (1, 2, NULL) OR cat <> 'x'"};
    uint64_t *out = malloc(((rows + 63) / 64 + 1) * 8);
    for (size_t i = 0; out && i < sizeof filters / sizeof *filters; i++) {
        knn_predicate *p = NULL;
        if (knn_predicate_parse(filters[i], strlen(filters[i]), &p, &err) != KNN_OK) abort();
        check_eval(p, &a, rows, out, (rows + 63) / 64 + 1);
        knn_predicate_free(p);
    }
    free(out);
    uint8_t *drop = malloc(rows ? rows : 1);
    if (drop) {
        for (size_t r = 0; r < rows; r++) drop[r] = (uint8_t)(r % 3 == 1);
        if (knn_attrs_compact(&a, drop, &err) != KNN_OK) abort();
        (void)knn_attrs_bytes(&a);
        free(drop);
    }
    free(one);
    free(two);
    knn_attrs_free(&a);
    knn_attrs_free(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    if (data[0] & 1) load_mode(data + 1, size - 1);
    else filter_mode(data + 1, size - 1);
    return 0;
}
