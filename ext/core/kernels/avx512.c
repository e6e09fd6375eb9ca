/* AVX-512F kernels. Every function carries its own target attribute, so this file compiles without
 * -mavx512f and the dispatcher only calls it on CPUs that report AVX-512F. */
#include "kernels/knn_kernels.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>

#define TARGET __attribute__((target("avx512f,avx2,fma")))

/* Lanes valid in the tail of a row: the low (d % 16) bits set. */
TARGET static inline __mmask16 tail_mask(size_t rem) { return (__mmask16)((1u << rem) - 1u); }

TARGET static inline float l2sq_one(const float *q, const float *x, size_t d) {
    __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
    size_t j = 0;
    for (; j + 32 <= d; j += 32) {
        __m512 t0 = _mm512_sub_ps(_mm512_loadu_ps(q + j), _mm512_loadu_ps(x + j));
        __m512 t1 = _mm512_sub_ps(_mm512_loadu_ps(q + j + 16), _mm512_loadu_ps(x + j + 16));
        a0 = _mm512_fmadd_ps(t0, t0, a0);
        a1 = _mm512_fmadd_ps(t1, t1, a1);
    }
    for (; j + 16 <= d; j += 16) {
        __m512 t = _mm512_sub_ps(_mm512_loadu_ps(q + j), _mm512_loadu_ps(x + j));
        a0 = _mm512_fmadd_ps(t, t, a0);
    }
    if (j < d) {
        __mmask16 m = tail_mask(d - j);
        __m512 t = _mm512_sub_ps(_mm512_maskz_loadu_ps(m, q + j), _mm512_maskz_loadu_ps(m, x + j));
        a1 = _mm512_fmadd_ps(t, t, a1);
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(a0, a1));
}

TARGET static inline float dot_one(const float *q, const float *x, size_t d) {
    __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
    size_t j = 0;
    for (; j + 32 <= d; j += 32) {
        a0 = _mm512_fmadd_ps(_mm512_loadu_ps(q + j), _mm512_loadu_ps(x + j), a0);
        a1 = _mm512_fmadd_ps(_mm512_loadu_ps(q + j + 16), _mm512_loadu_ps(x + j + 16), a1);
    }
    for (; j + 16 <= d; j += 16) a0 = _mm512_fmadd_ps(_mm512_loadu_ps(q + j), _mm512_loadu_ps(x + j), a0);
    if (j < d) {
        __mmask16 m = tail_mask(d - j);
        a1 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, q + j), _mm512_maskz_loadu_ps(m, x + j), a1);
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(a0, a1));
}

/* Short rows whose length is not a multiple of 16 (GloVe's 50, say) spend much of their time in
 * the masked 512-bit tail; measured on Zen 4, the AVX2 kernels are faster there, so use them. */
static inline int short_ragged(size_t d) { return d < 128 && d % 16 != 0; }

/* Horizontal sums of four accumulators at once: [sum(a), sum(b), sum(c), sum(d)]. */
TARGET static inline __m128 reduce4(__m512 a, __m512 b, __m512 c, __m512 d) {
#define HALF_SUM(v) _mm256_add_ps(_mm512_castps512_ps256(v), \
                                  _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)))
    __m256 ab = _mm256_hadd_ps(HALF_SUM(a), HALF_SUM(b));
    __m256 cd = _mm256_hadd_ps(HALF_SUM(c), HALF_SUM(d));
#undef HALF_SUM
    __m256 abcd = _mm256_hadd_ps(ab, cd);
    return _mm_add_ps(_mm256_castps256_ps128(abcd), _mm256_extractf128_ps(abcd, 1));
}

/* Rows go four at a time: the query chunk is loaded once for four rows, four independent FMA chains
 * hide latency, and one shuffle tree reduces all four (it matters for small d such as 50). */
TARGET static inline __m128 l2sq4(const float *q, const float *x0, const float *x1, const float *x2,
                                  const float *x3, size_t d) {
    __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
    __m512 a2 = _mm512_setzero_ps(), a3 = _mm512_setzero_ps();
    size_t j = 0;
    for (; j + 16 <= d; j += 16) {
        __m512 qv = _mm512_loadu_ps(q + j);
        __m512 t0 = _mm512_sub_ps(qv, _mm512_loadu_ps(x0 + j));
        __m512 t1 = _mm512_sub_ps(qv, _mm512_loadu_ps(x1 + j));
        __m512 t2 = _mm512_sub_ps(qv, _mm512_loadu_ps(x2 + j));
        __m512 t3 = _mm512_sub_ps(qv, _mm512_loadu_ps(x3 + j));
        a0 = _mm512_fmadd_ps(t0, t0, a0);
        a1 = _mm512_fmadd_ps(t1, t1, a1);
        a2 = _mm512_fmadd_ps(t2, t2, a2);
        a3 = _mm512_fmadd_ps(t3, t3, a3);
    }
    if (j < d) {
        __mmask16 m = tail_mask(d - j);
        __m512 qv = _mm512_maskz_loadu_ps(m, q + j);
        __m512 t0 = _mm512_sub_ps(qv, _mm512_maskz_loadu_ps(m, x0 + j));
        __m512 t1 = _mm512_sub_ps(qv, _mm512_maskz_loadu_ps(m, x1 + j));
        __m512 t2 = _mm512_sub_ps(qv, _mm512_maskz_loadu_ps(m, x2 + j));
        __m512 t3 = _mm512_sub_ps(qv, _mm512_maskz_loadu_ps(m, x3 + j));
        a0 = _mm512_fmadd_ps(t0, t0, a0);
        a1 = _mm512_fmadd_ps(t1, t1, a1);
        a2 = _mm512_fmadd_ps(t2, t2, a2);
        a3 = _mm512_fmadd_ps(t3, t3, a3);
    }
    return reduce4(a0, a1, a2, a3);
}

TARGET static inline __m128 dot4(const float *q, const float *x0, const float *x1, const float *x2,
                                 const float *x3, size_t d) {
    __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
    __m512 a2 = _mm512_setzero_ps(), a3 = _mm512_setzero_ps();
    size_t j = 0;
    for (; j + 16 <= d; j += 16) {
        __m512 qv = _mm512_loadu_ps(q + j);
        a0 = _mm512_fmadd_ps(qv, _mm512_loadu_ps(x0 + j), a0);
        a1 = _mm512_fmadd_ps(qv, _mm512_loadu_ps(x1 + j), a1);
        a2 = _mm512_fmadd_ps(qv, _mm512_loadu_ps(x2 + j), a2);
        a3 = _mm512_fmadd_ps(qv, _mm512_loadu_ps(x3 + j), a3);
    }
    if (j < d) {
        __mmask16 m = tail_mask(d - j);
        __m512 qv = _mm512_maskz_loadu_ps(m, q + j);
        a0 = _mm512_fmadd_ps(qv, _mm512_maskz_loadu_ps(m, x0 + j), a0);
        a1 = _mm512_fmadd_ps(qv, _mm512_maskz_loadu_ps(m, x1 + j), a1);
        a2 = _mm512_fmadd_ps(qv, _mm512_maskz_loadu_ps(m, x2 + j), a2);
        a3 = _mm512_fmadd_ps(qv, _mm512_maskz_loadu_ps(m, x3 + j), a3);
    }
    return reduce4(a0, a1, a2, a3);
}

TARGET static void l2sq_rows_avx512(const float *q, const float *X, size_t n, size_t d, float *out) {
    if (short_ragged(d)) {
        knn_kernels_avx2.l2sq_rows(q, X, n, d, out);
        return;
    }
    size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        const float *x = X + i * d;
        _mm_storeu_ps(out + i, l2sq4(q, x, x + d, x + 2 * d, x + 3 * d, d));
    }
    for (; i < n; i++) out[i] = l2sq_one(q, X + i * d, d);
}

TARGET static void dot_rows_avx512(const float *q, const float *X, size_t n, size_t d, float *out) {
    if (short_ragged(d)) {
        knn_kernels_avx2.dot_rows(q, X, n, d, out);
        return;
    }
    size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        const float *x = X + i * d;
        _mm_storeu_ps(out + i, dot4(q, x, x + d, x + 2 * d, x + 3 * d, d));
    }
    for (; i < n; i++) out[i] = dot_one(q, X + i * d, d);
}

TARGET static void l2sq_ptrs_avx512(const float *q, const float *const *rows, size_t n, size_t d, float *out) {
    if (short_ragged(d)) {
        knn_kernels_avx2.l2sq_ptrs(q, rows, n, d, out);
        return;
    }
    size_t i = 0;
    for (; i + 4 <= n; i += 4) _mm_storeu_ps(out + i, l2sq4(q, rows[i], rows[i + 1], rows[i + 2], rows[i + 3], d));
    for (; i < n; i++) out[i] = l2sq_one(q, rows[i], d);
}

TARGET static void dot_ptrs_avx512(const float *q, const float *const *rows, size_t n, size_t d, float *out) {
    if (short_ragged(d)) {
        knn_kernels_avx2.dot_ptrs(q, rows, n, d, out);
        return;
    }
    size_t i = 0;
    for (; i + 4 <= n; i += 4) _mm_storeu_ps(out + i, dot4(q, rows[i], rows[i + 1], rows[i + 2], rows[i + 3], d));
    for (; i < n; i++) out[i] = dot_one(q, rows[i], d);
}

TARGET static void dot_norm_rows_avx512(const float *q, const float *X, size_t n, size_t d, float *dot,
                                        float *norm2) {
    if (short_ragged(d)) {
        knn_kernels_avx2.dot_norm_rows(q, X, n, d, dot, norm2);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        const float *x = X + i * d;
        __m512 a = _mm512_setzero_ps(), b = _mm512_setzero_ps();
        size_t j = 0;
        for (; j + 16 <= d; j += 16) {
            __m512 xv = _mm512_loadu_ps(x + j);
            a = _mm512_fmadd_ps(_mm512_loadu_ps(q + j), xv, a);
            b = _mm512_fmadd_ps(xv, xv, b);
        }
        if (j < d) {
            __mmask16 m = tail_mask(d - j);
            __m512 xv = _mm512_maskz_loadu_ps(m, x + j);
            a = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, q + j), xv, a);
            b = _mm512_fmadd_ps(xv, xv, b);
        }
        dot[i] = _mm512_reduce_add_ps(a);
        norm2[i] = _mm512_reduce_add_ps(b);
    }
}

/* 4 queries x 16 packed rows: per dimension one panel load, four broadcasts, four FMAs. */
TARGET static void dot_panel_avx512(const float *Q, size_t nq, const float *panel, size_t d, float *out) {
    if (nq == KNN_TILE_QUERIES) {
        const float *q0 = Q, *q1 = Q + d, *q2 = Q + 2 * d, *q3 = Q + 3 * d;
        __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
        __m512 a2 = _mm512_setzero_ps(), a3 = _mm512_setzero_ps();
        for (size_t j = 0; j < d; j++) {
            __m512 p = _mm512_loadu_ps(panel + j * KNN_PANEL_ROWS);
            a0 = _mm512_fmadd_ps(_mm512_set1_ps(q0[j]), p, a0);
            a1 = _mm512_fmadd_ps(_mm512_set1_ps(q1[j]), p, a1);
            a2 = _mm512_fmadd_ps(_mm512_set1_ps(q2[j]), p, a2);
            a3 = _mm512_fmadd_ps(_mm512_set1_ps(q3[j]), p, a3);
        }
        _mm512_storeu_ps(out, a0);
        _mm512_storeu_ps(out + 16, a1);
        _mm512_storeu_ps(out + 32, a2);
        _mm512_storeu_ps(out + 48, a3);
        return;
    }
    for (size_t i = 0; i < nq; i++) {
        const float *q = Q + i * d;
        __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
        size_t j = 0;
        for (; j + 2 <= d; j += 2) {
            a0 = _mm512_fmadd_ps(_mm512_set1_ps(q[j]), _mm512_loadu_ps(panel + j * KNN_PANEL_ROWS), a0);
            a1 = _mm512_fmadd_ps(_mm512_set1_ps(q[j + 1]), _mm512_loadu_ps(panel + (j + 1) * KNN_PANEL_ROWS), a1);
        }
        if (j < d) a0 = _mm512_fmadd_ps(_mm512_set1_ps(q[j]), _mm512_loadu_ps(panel + j * KNN_PANEL_ROWS), a0);
        _mm512_storeu_ps(out + i * KNN_PANEL_ROWS, _mm512_add_ps(a0, a1));
    }
}

const knn_kernels knn_kernels_avx512 = {
    KNN_ISA_AVX512, "avx512", l2sq_rows_avx512, dot_rows_avx512, dot_norm_rows_avx512, dot_panel_avx512,
    l2sq_ptrs_avx512, dot_ptrs_avx512, knn_u8_screen_block_avx2, knn_u8_dist_block_avx2, knn_sq8_dot_ptrs_avx2,
    knn_sq4_dot_ptrs_avx2,
};

#else
/* Not an x86-64 GCC/Clang build: the dispatcher never selects this table; it aliases scalar. */
const knn_kernels knn_kernels_avx512 = {
    KNN_ISA_SCALAR, "scalar", 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
};
#endif
