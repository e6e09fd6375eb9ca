/* Per-dimension scalar codes for graph traversal (see quant/knn_sq.h).
 *
 * What it implements. The scalar quantiser of FAISS's ScalarQuantizer (QT_8bit / QT_4bit: an offset and
 * a step per dimension, trained from the smallest and largest value of a sample, RS_minmax; for 4-bit
 * codes a share of each tail is cut first, as its RS_quantiles does), scored asymmetrically: the query
 * stays float and each row is compared through its decoded values x^_j = lo_j + step_j c_j. FAISS decodes
 * every component to float before its multiply-add; here the query's per-dimension weights q_j step_j
 * are rounded once per search to integers (int16 against 8-bit codes, int8 against 4-bit codes) with one
 * shared unit alpha, so
 *     <q, x^> = <q, lo> + sum_j q_j step_j c_j ~ base + alpha * sum_j w_j c_j,
 * and the per-row work is an integer dot product of bytes against weights: pmovzxbw + pmaddwd for 8-bit
 * codes, nibble masks + pmaddubsw for 4-bit ones (kernels/: sq8_dot_ptrs, sq4_dot_ptrs, with a scalar twin
 * giving the same integers). The query-side rounding is far below the codes' own: int16 weights keep
 * 15 bits where the codes keep 8, int8 weights 7 where the codes keep 4. L2 adds the query's and the
 * decoded row's squared norms (the latter stored per row); cosine rows are unit-length, so 1 - <q, x^>.
 *
 * Sums stay inside 32 bits: |w_j| <= W with 255 * W * dpad < 2^31 (8-bit), 15 * 127 * dpad (4-bit).
 * Where the codes come from and what they serve: graph/graph_quant.c. */
#include "quant/knn_sq.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void knn_sq_free(knn_sq *s) {
    free(s->lo);
    free(s->step);
    memset(s, 0, sizeof *s);
}

void knn_sq_query_free(knn_sq_query *qq) {
    free(qq->w);
    memset(qq, 0, sizeof *qq);
}

static knn_status shape(knn_sq *s, unsigned bits, size_t d, knn_error *err) {
    memset(s, 0, sizeof *s);
    if (bits != 8 && bits != 4) return knn_error_set(err, KNN_EINVAL, "codes have 8 or 4 bits, not %u", bits);
    if (d == 0 || d > 65536) return knn_error_set(err, KNN_EINVAL, "dim must be between 1 and 65536, got %zu", d);
    s->bits = bits;
    s->d = d;
    s->dpad = bits == 8 ? (d + 15) / 16 * 16 : (d + 63) / 64 * 64;
    s->row_bytes = bits == 8 ? s->dpad : s->dpad / 2;
    s->lo = malloc(d * sizeof *s->lo);
    s->step = malloc(d * sizeof *s->step);
    if (!s->lo || !s->step) {
        knn_sq_free(s);
        return knn_error_set(err, KNN_ENOMEM, "out of memory for the ranges of %zu dimensions", d);
    }
    return KNN_OK;
}

static int cmp_float(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

knn_status knn_sq_train(knn_sq *s, unsigned bits, const float *X, size_t n, size_t d, double trim, knn_error *err) {
    knn_status st = shape(s, bits, d, err);
    if (st != KNN_OK) return st;
    if (n == 0) {
        knn_sq_free(s);
        return knn_error_set(err, KNN_EINVAL, "codes need at least one row to train their ranges");
    }
    const double levels = bits == 8 ? 255.0 : 15.0;
    size_t cut = bits == 4 && trim > 0 ? (size_t)(trim * (double)n) : 0;
    if (2 * cut >= n) cut = 0;
    float *col = cut ? malloc(n * sizeof *col) : NULL;
    if (cut && !col) {
        knn_sq_free(s);
        return knn_error_set(err, KNN_ENOMEM, "out of memory training codes on %zu rows", n);
    }
    for (size_t j = 0; j < d; j++) {
        float a, b;
        if (cut) {
            for (size_t i = 0; i < n; i++) col[i] = X[i * d + j];
            qsort(col, n, sizeof *col, cmp_float);
            a = col[cut];
            b = col[n - 1 - cut];
        } else {
            a = b = X[j];
            for (size_t i = 1; i < n; i++) {
                float v = X[i * d + j];
                a = v < a ? v : a;
                b = v > b ? v : b;
            }
        }
        s->lo[j] = a;
        s->step[j] = b > a ? (float)(((double)b - (double)a) / levels) : 0.0f;
    }
    free(col);
    return KNN_OK;
}

knn_status knn_sq_init(knn_sq *s, unsigned bits, size_t d, const float *lo, const float *step, knn_error *err) {
    knn_status st = shape(s, bits, d, err);
    if (st != KNN_OK) return st;
    for (size_t j = 0; j < d; j++) {
        if (!isfinite(lo[j]) || !isfinite(step[j]) || step[j] < 0) {
            knn_sq_free(s);
            return knn_error_set(err, KNN_EDATA, "code range of dimension %zu is invalid (offset %g, step %g)", j,
                                 (double)lo[j], (double)step[j]);
        }
    }
    memcpy(s->lo, lo, d * sizeof *lo);
    memcpy(s->step, step, d * sizeof *step);
    return KNN_OK;
}

static inline unsigned code_of(const knn_sq *s, size_t j, float x, unsigned top) {
    if (!(s->step[j] > 0)) return 0;
    double c = nearbyint(((double)x - (double)s->lo[j]) / (double)s->step[j]);
    return c <= 0 ? 0u : c >= top ? top : (unsigned)c;
}

float knn_sq_encode(const knn_sq *s, const float *x, uint8_t *out, float *err) {
    double n2 = 0, e2 = 0;
    memset(out, 0, s->row_bytes);
    if (s->bits == 8) {
        for (size_t j = 0; j < s->d; j++) {
            unsigned c = code_of(s, j, x[j], 255);
            out[j] = (uint8_t)c;
            double v = (double)s->lo[j] + (double)s->step[j] * c;
            n2 += v * v;
            e2 += ((double)x[j] - v) * ((double)x[j] - v);
        }
    } else {
        for (size_t j = 0; j < s->d; j++) {
            unsigned c = code_of(s, j, x[j], 15);
            out[knn_sq4_byte(j)] |= (uint8_t)(c << knn_sq4_shift(j));
            double v = (double)s->lo[j] + (double)s->step[j] * c;
            n2 += v * v;
            e2 += ((double)x[j] - v) * ((double)x[j] - v);
        }
    }
    if (err) *err = (float)sqrt(e2);
    return (float)n2;
}

static inline unsigned code_at(const knn_sq *s, const uint8_t *codes, size_t j) {
    return s->bits == 8 ? codes[j] : (codes[knn_sq4_byte(j)] >> knn_sq4_shift(j)) & 15u;
}

float knn_sq_decoded_norm2(const knn_sq *s, const uint8_t *codes) {
    double n2 = 0;
    for (size_t j = 0; j < s->d; j++) {
        double v = (double)s->lo[j] + (double)s->step[j] * code_at(s, codes, j);
        n2 += v * v;
    }
    return (float)n2;
}

int knn_sq_pad_clear(const knn_sq *s, const uint8_t *codes) {
    for (size_t j = s->d; j < s->dpad; j++) {
        if (code_at(s, codes, j)) return 0;
    }
    return 1;
}

void knn_sq_decode(const knn_sq *s, const uint8_t *codes, float *out) {
    for (size_t j = 0; j < s->d; j++) {
        unsigned c = s->bits == 8 ? codes[j] : (codes[knn_sq4_byte(j)] >> knn_sq4_shift(j)) & 15u;
        out[j] = (float)((double)s->lo[j] + (double)s->step[j] * c);
    }
}

int knn_sq_prepare(const knn_sq *s, const float *q, knn_sq_query *out) {
    const size_t wbytes = s->dpad * (s->bits == 8 ? sizeof(int16_t) : sizeof(int8_t));
    if (out->cap < wbytes) {
        void *w = realloc(out->w, wbytes);
        if (w == NULL) return -1;
        out->w = w;
        out->cap = wbytes;
    }
    double base = 0, qn = 0, wmax = 0;
    for (size_t j = 0; j < s->d; j++) {
        base += (double)q[j] * s->lo[j];
        qn += (double)q[j] * q[j];
        double w = fabs((double)q[j] * s->step[j]);
        wmax = w > wmax ? w : wmax;
    }
    /* the largest weight that keeps every sum within 31 bits */
    double top = s->bits == 8 ? floor(2147483647.0 / (255.0 * (double)s->dpad)) : 127.0;
    if (top > 32767.0) top = 32767.0;
    double alpha = wmax > 0 ? wmax / top : 0;
    for (size_t j = 0; j < s->dpad; j++) {
        double w = j < s->d && alpha > 0 ? nearbyint((double)q[j] * s->step[j] / alpha) : 0;
        w = w > top ? top : w < -top ? -top : w;
        if (s->bits == 8) {
            ((int16_t *)out->w)[j] = (int16_t)w;
        } else {
            ((int8_t *)out->w)[j] = (int8_t)w;
        }
    }
    out->base = base;
    out->alpha = (float)alpha;
    out->qnorm2 = (float)qn;
    return 0;
}
