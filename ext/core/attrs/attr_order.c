/* Sorted orders of attribute columns (knn_attr_order.h): building, keeping, searching.
 *
 * Keys: every value maps to a uint64 whose unsigned order is the SQL order the filters use. int64:
 * the sign bit flipped. double: every NaN the largest key, then the IEEE trick (positive: sign bit
 * set; negative: all bits flipped), which puts -0.0 just before 0.0: the searches compare values, to
 * which the two are equal and adjacent, so that is harmless. VARCHAR: the dictionary code (equality and IN
 * look codes up; a string range becomes the set of codes it keeps). The sort is LSD radix over the key
 * bytes that vary, stable, so equal values keep their rows ascending (bitmap writes then run forward). */
#include "attrs/knn_attr_order.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static uint64_t key_of(const knn_attr_col *c, size_t row) {
    switch (c->type) {
    case KNN_ATTR_VARCHAR: return c->code[row];
    case KNN_ATTR_DOUBLE: {
        double x = c->f64[row];
        if (isnan(x)) return UINT64_MAX; /* any NaN, even one with the sign bit set */
        uint64_t b;
        memcpy(&b, &x, sizeof b);
        return (b >> 63) ? ~b : b | ((uint64_t)1 << 63);
    }
    default: return (uint64_t)c->i64[row] ^ ((uint64_t)1 << 63); /* the int64-backed types */
    }
}

void knn_attr_order_drop(knn_attr_col *c) {
    free(c->order);
    c->order = NULL;
    c->norder = c->ordered = 0;
}

void knn_attrs_order_drop_all(knn_attrs *a) {
    for (size_t i = 0; i < a->ncols; i++) knn_attr_order_drop(&a->cols[i]);
}

/* Sorts the valid rows of [0, rows) by key into a new order; 0 when out of memory. */
static int build(knn_attr_col *c, size_t rows) {
    size_t n = 0;
    for (size_t w = 0; w < (rows + 63) / 64; w++) n += (size_t)__builtin_popcountll(c->valid[w]);
    uint64_t *keys = malloc((n ? n : 1) * 2 * sizeof *keys);
    uint32_t *rowv = malloc((n ? n : 1) * 2 * sizeof *rowv);
    if (keys == NULL || rowv == NULL) {
        free(keys);
        free(rowv);
        return 0;
    }
    uint64_t *k0 = keys, *k1 = keys + (n ? n : 1);
    uint32_t *r0 = rowv, *r1 = rowv + (n ? n : 1);
    size_t j = 0;
    uint64_t all_or = 0, all_and = UINT64_MAX;
    for (size_t w = 0; w < (rows + 63) / 64; w++) {
        for (uint64_t b = c->valid[w]; b; b &= b - 1) {
            size_t r = w * 64 + (size_t)__builtin_ctzll(b);
            uint64_t k = key_of(c, r);
            all_or |= k;
            all_and &= k;
            k0[j] = k;
            r0[j++] = (uint32_t)r;
        }
    }
    for (int shift = 0; shift < 64; shift += 8) {
        if ((((all_or ^ all_and) >> shift) & 0xff) == 0) continue; /* this byte is the same in every key */
        size_t count[257] = {0};
        for (size_t i = 0; i < n; i++) count[((k0[i] >> shift) & 0xff) + 1]++;
        for (int d = 0; d < 256; d++) count[d + 1] += count[d];
        for (size_t i = 0; i < n; i++) {
            size_t at = count[(k0[i] >> shift) & 0xff]++;
            k1[at] = k0[i];
            r1[at] = r0[i];
        }
        uint64_t *tk = k0; k0 = k1; k1 = tk;
        uint32_t *tr = r0; r0 = r1; r1 = tr;
    }
    uint32_t *order = malloc((n ? n : 1) * sizeof *order);
    if (order != NULL) memcpy(order, r0, n * sizeof *order);
    free(keys);
    free(rowv);
    if (order == NULL) return 0;
    free(c->order);
    c->order = order;
    c->norder = n;
    c->ordered = rows;
    return 1;
}

void knn_attrs_order_refresh(knn_attrs *a) {
    if (a->rows < (a->order_min_rows ? a->order_min_rows : KNN_ATTR_ORDER_MIN_ROWS) || a->rows > UINT32_MAX) return;
    for (size_t i = 0; i < a->ncols; i++) {
        knn_attr_col *c = &a->cols[i];
        if (c->ordered > a->rows) knn_attr_order_drop(c);
        if (c->order != NULL && a->rows - c->ordered <= c->ordered / 8) continue;
        if (!build(c, a->rows)) knn_attr_order_drop(c); /* no memory: scans answer instead */
    }
}

size_t knn_attr_order_first(const knn_attr_col *c, int (*above)(const knn_attr_col *c, uint32_t row, const void *arg),
                            const void *arg) {
    size_t lo = 0, hi = c->norder;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (above(c, c->order[mid], arg)) hi = mid;
        else lo = mid + 1;
    }
    return lo;
}
