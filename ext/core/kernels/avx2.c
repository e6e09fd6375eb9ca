/* AVX2+FMA kernels. Every function carries its own target attribute, so this file compiles without
 * -mavx2 and the dispatcher only calls it on CPUs that report AVX2 and FMA. */
#include "kernels/knn_kernels.h"

#include <stdint.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>

#define TARGET __attribute__((target("avx2,fma")))

/* Lane mask with the low rem (< 8) lanes set, for maskload of a row's tail. */
TARGET static inline __m256i tail_mask(size_t rem) {
    static const int32_t lanes[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};
    return _mm256_loadu_si256((const __m256i *)(lanes + 8 - rem));
}

TARGET static inline float hsum256(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

TARGET static inline float l2sq_one(const float *q, const float *x, size_t d) {
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
    size_t j = 0;
    for (; j + 16 <= d; j += 16) {
        __m256 t0 = _mm256_sub_ps(_mm256_loadu_ps(q + j), _mm256_loadu_ps(x + j));
        __m256 t1 = _mm256_sub_ps(_mm256_loadu_ps(q + j + 8), _mm256_loadu_ps(x + j + 8));
        a0 = _mm256_fmadd_ps(t0, t0, a0);
        a1 = _mm256_fmadd_ps(t1, t1, a1);
    }
    for (; j + 8 <= d; j += 8) {
        __m256 t = _mm256_sub_ps(_mm256_loadu_ps(q + j), _mm256_loadu_ps(x + j));
        a0 = _mm256_fmadd_ps(t, t, a0);
    }
    float acc = hsum256(_mm256_add_ps(a0, a1));
    for (; j < d; j++) {
        float t = q[j] - x[j];
        acc += t * t;
    }
    return acc;
}

TARGET static inline float dot_one(const float *q, const float *x, size_t d) {
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
    size_t j = 0;
    for (; j + 16 <= d; j += 16) {
        a0 = _mm256_fmadd_ps(_mm256_loadu_ps(q + j), _mm256_loadu_ps(x + j), a0);
        a1 = _mm256_fmadd_ps(_mm256_loadu_ps(q + j + 8), _mm256_loadu_ps(x + j + 8), a1);
    }
    for (; j + 8 <= d; j += 8) a0 = _mm256_fmadd_ps(_mm256_loadu_ps(q + j), _mm256_loadu_ps(x + j), a0);
    float acc = hsum256(_mm256_add_ps(a0, a1));
    for (; j < d; j++) acc += q[j] * x[j];
    return acc;
}

/* Horizontal sums of four accumulators at once: [sum(a), sum(b), sum(c), sum(d)]. */
TARGET static inline __m128 reduce4(__m256 a, __m256 b, __m256 c, __m256 d) {
    __m256 abcd = _mm256_hadd_ps(_mm256_hadd_ps(a, b), _mm256_hadd_ps(c, d));
    return _mm_add_ps(_mm256_castps256_ps128(abcd), _mm256_extractf128_ps(abcd, 1));
}

/* Four rows at a time (shared query loads, four FMA chains, one reduction); see avx512.c. */
TARGET static inline __m128 l2sq4(const float *q, const float *x0, const float *x1, const float *x2,
                                  const float *x3, size_t d) {
    const size_t d8 = d & ~(size_t)7;
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
    __m256 a2 = _mm256_setzero_ps(), a3 = _mm256_setzero_ps();
    for (size_t j = 0; j < d8; j += 8) {
        __m256 qv = _mm256_loadu_ps(q + j);
        __m256 t0 = _mm256_sub_ps(qv, _mm256_loadu_ps(x0 + j));
        __m256 t1 = _mm256_sub_ps(qv, _mm256_loadu_ps(x1 + j));
        __m256 t2 = _mm256_sub_ps(qv, _mm256_loadu_ps(x2 + j));
        __m256 t3 = _mm256_sub_ps(qv, _mm256_loadu_ps(x3 + j));
        a0 = _mm256_fmadd_ps(t0, t0, a0);
        a1 = _mm256_fmadd_ps(t1, t1, a1);
        a2 = _mm256_fmadd_ps(t2, t2, a2);
        a3 = _mm256_fmadd_ps(t3, t3, a3);
    }
    if (d8 < d) {
        __m256i m = tail_mask(d - d8);
        __m256 qv = _mm256_maskload_ps(q + d8, m);
        __m256 t0 = _mm256_sub_ps(qv, _mm256_maskload_ps(x0 + d8, m));
        __m256 t1 = _mm256_sub_ps(qv, _mm256_maskload_ps(x1 + d8, m));
        __m256 t2 = _mm256_sub_ps(qv, _mm256_maskload_ps(x2 + d8, m));
        __m256 t3 = _mm256_sub_ps(qv, _mm256_maskload_ps(x3 + d8, m));
        a0 = _mm256_fmadd_ps(t0, t0, a0);
        a1 = _mm256_fmadd_ps(t1, t1, a1);
        a2 = _mm256_fmadd_ps(t2, t2, a2);
        a3 = _mm256_fmadd_ps(t3, t3, a3);
    }
    return reduce4(a0, a1, a2, a3);
}

TARGET static inline __m128 dot4(const float *q, const float *x0, const float *x1, const float *x2,
                                 const float *x3, size_t d) {
    const size_t d8 = d & ~(size_t)7;
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
    __m256 a2 = _mm256_setzero_ps(), a3 = _mm256_setzero_ps();
    for (size_t j = 0; j < d8; j += 8) {
        __m256 qv = _mm256_loadu_ps(q + j);
        a0 = _mm256_fmadd_ps(qv, _mm256_loadu_ps(x0 + j), a0);
        a1 = _mm256_fmadd_ps(qv, _mm256_loadu_ps(x1 + j), a1);
        a2 = _mm256_fmadd_ps(qv, _mm256_loadu_ps(x2 + j), a2);
        a3 = _mm256_fmadd_ps(qv, _mm256_loadu_ps(x3 + j), a3);
    }
    if (d8 < d) {
        __m256i m = tail_mask(d - d8);
        __m256 qv = _mm256_maskload_ps(q + d8, m);
        a0 = _mm256_fmadd_ps(qv, _mm256_maskload_ps(x0 + d8, m), a0);
        a1 = _mm256_fmadd_ps(qv, _mm256_maskload_ps(x1 + d8, m), a1);
        a2 = _mm256_fmadd_ps(qv, _mm256_maskload_ps(x2 + d8, m), a2);
        a3 = _mm256_fmadd_ps(qv, _mm256_maskload_ps(x3 + d8, m), a3);
    }
    return reduce4(a0, a1, a2, a3);
}

TARGET static void l2sq_rows_avx2(const float *q, const float *X, size_t n, size_t d, float *out) {
    size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        const float *x = X + i * d;
        _mm_storeu_ps(out + i, l2sq4(q, x, x + d, x + 2 * d, x + 3 * d, d));
    }
    for (; i < n; i++) out[i] = l2sq_one(q, X + i * d, d);
}

TARGET static void dot_rows_avx2(const float *q, const float *X, size_t n, size_t d, float *out) {
    size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        const float *x = X + i * d;
        _mm_storeu_ps(out + i, dot4(q, x, x + d, x + 2 * d, x + 3 * d, d));
    }
    for (; i < n; i++) out[i] = dot_one(q, X + i * d, d);
}

TARGET static void l2sq_ptrs_avx2(const float *q, const float *const *rows, size_t n, size_t d, float *out) {
    size_t i = 0;
    for (; i + 4 <= n; i += 4) _mm_storeu_ps(out + i, l2sq4(q, rows[i], rows[i + 1], rows[i + 2], rows[i + 3], d));
    for (; i < n; i++) out[i] = l2sq_one(q, rows[i], d);
}

TARGET static void dot_ptrs_avx2(const float *q, const float *const *rows, size_t n, size_t d, float *out) {
    size_t i = 0;
    for (; i + 4 <= n; i += 4) _mm_storeu_ps(out + i, dot4(q, rows[i], rows[i + 1], rows[i + 2], rows[i + 3], d));
    for (; i < n; i++) out[i] = dot_one(q, rows[i], d);
}

/* Four rows at a time, as above, with a second set of accumulators for the rows' squared norms. */
TARGET static void dot_norm_rows_avx2(const float *q, const float *X, size_t n, size_t d, float *dot,
                                      float *norm2) {
    size_t i = 0;
    const size_t d8 = d & ~(size_t)7;
    for (; i + 4 <= n; i += 4) {
        const float *x0 = X + i * d, *x1 = x0 + d, *x2 = x1 + d, *x3 = x2 + d;
        __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
        __m256 a2 = _mm256_setzero_ps(), a3 = _mm256_setzero_ps();
        __m256 b0 = _mm256_setzero_ps(), b1 = _mm256_setzero_ps();
        __m256 b2 = _mm256_setzero_ps(), b3 = _mm256_setzero_ps();
        for (size_t j = 0; j <= d; j += 8) {
            __m256 qv, v0, v1, v2, v3;
            if (j < d8) {
                qv = _mm256_loadu_ps(q + j);
                v0 = _mm256_loadu_ps(x0 + j);
                v1 = _mm256_loadu_ps(x1 + j);
                v2 = _mm256_loadu_ps(x2 + j);
                v3 = _mm256_loadu_ps(x3 + j);
            } else if (j < d) {
                __m256i m = tail_mask(d - j);
                qv = _mm256_maskload_ps(q + j, m);
                v0 = _mm256_maskload_ps(x0 + j, m);
                v1 = _mm256_maskload_ps(x1 + j, m);
                v2 = _mm256_maskload_ps(x2 + j, m);
                v3 = _mm256_maskload_ps(x3 + j, m);
            } else {
                break;
            }
            a0 = _mm256_fmadd_ps(qv, v0, a0); b0 = _mm256_fmadd_ps(v0, v0, b0);
            a1 = _mm256_fmadd_ps(qv, v1, a1); b1 = _mm256_fmadd_ps(v1, v1, b1);
            a2 = _mm256_fmadd_ps(qv, v2, a2); b2 = _mm256_fmadd_ps(v2, v2, b2);
            a3 = _mm256_fmadd_ps(qv, v3, a3); b3 = _mm256_fmadd_ps(v3, v3, b3);
        }
        _mm_storeu_ps(dot + i, reduce4(a0, a1, a2, a3));
        _mm_storeu_ps(norm2 + i, reduce4(b0, b1, b2, b3));
    }
    for (; i < n; i++) {
        const float *x = X + i * d;
        float sa = 0, sb = 0;
        for (size_t j = 0; j < d; j++) {
            sa += q[j] * x[j];
            sb += x[j] * x[j];
        }
        dot[i] = sa;
        norm2[i] = sb;
    }
}

/* 4 queries x 16 packed rows (two ymm halves): two panel loads, four broadcasts, eight FMAs. */
TARGET static void dot_panel_avx2(const float *Q, size_t nq, const float *panel, size_t d, float *out) {
    size_t i = 0;
    for (; i + 4 <= nq; i += 4) {
        const float *q0 = Q + i * d, *q1 = q0 + d, *q2 = q1 + d, *q3 = q2 + d;
        __m256 a0 = _mm256_setzero_ps(), b0 = _mm256_setzero_ps();
        __m256 a1 = _mm256_setzero_ps(), b1 = _mm256_setzero_ps();
        __m256 a2 = _mm256_setzero_ps(), b2 = _mm256_setzero_ps();
        __m256 a3 = _mm256_setzero_ps(), b3 = _mm256_setzero_ps();
        for (size_t j = 0; j < d; j++) {
            __m256 lo = _mm256_loadu_ps(panel + j * KNN_PANEL_ROWS);
            __m256 hi = _mm256_loadu_ps(panel + j * KNN_PANEL_ROWS + 8);
            __m256 s0 = _mm256_broadcast_ss(q0 + j), s1 = _mm256_broadcast_ss(q1 + j);
            __m256 s2 = _mm256_broadcast_ss(q2 + j), s3 = _mm256_broadcast_ss(q3 + j);
            a0 = _mm256_fmadd_ps(s0, lo, a0); b0 = _mm256_fmadd_ps(s0, hi, b0);
            a1 = _mm256_fmadd_ps(s1, lo, a1); b1 = _mm256_fmadd_ps(s1, hi, b1);
            a2 = _mm256_fmadd_ps(s2, lo, a2); b2 = _mm256_fmadd_ps(s2, hi, b2);
            a3 = _mm256_fmadd_ps(s3, lo, a3); b3 = _mm256_fmadd_ps(s3, hi, b3);
        }
        float *o = out + i * KNN_PANEL_ROWS;
        _mm256_storeu_ps(o, a0); _mm256_storeu_ps(o + 8, b0);
        _mm256_storeu_ps(o + 16, a1); _mm256_storeu_ps(o + 24, b1);
        _mm256_storeu_ps(o + 32, a2); _mm256_storeu_ps(o + 40, b2);
        _mm256_storeu_ps(o + 48, a3); _mm256_storeu_ps(o + 56, b3);
    }
    for (; i < nq; i++) {
        const float *q = Q + i * d;
        __m256 a = _mm256_setzero_ps(), b = _mm256_setzero_ps();
        for (size_t j = 0; j < d; j++) {
            __m256 s = _mm256_broadcast_ss(q + j);
            a = _mm256_fmadd_ps(s, _mm256_loadu_ps(panel + j * KNN_PANEL_ROWS), a);
            b = _mm256_fmadd_ps(s, _mm256_loadu_ps(panel + j * KNN_PANEL_ROWS + 8), b);
        }
        _mm256_storeu_ps(out + i * KNN_PANEL_ROWS, a);
        _mm256_storeu_ps(out + i * KNN_PANEL_ROWS + 8, b);
    }
}

/* Eight rows per 256-bit register: a row's two codes of a dimension pair widen to adjacent 16-bit
 * lanes, so one madd squares and sums the pair into that row's 32-bit lane. */
/* acc[k] lane l = S_{8k+l}: each 16-byte load is 8 rows' codes of one dimension pair, widened to 16
 * bits, and pmaddwd squares and adds the pair into 32-bit lanes. */
TARGET static inline void code_sums(const uint8_t *cq, const uint8_t *block, size_t npairs, __m256i *acc) {
    for (size_t k = 0; k < KNN_CODE_BLOCK / 8; k++) acc[k] = _mm256_setzero_si256();
    for (size_t p = 0; p < npairs; p++) {
        const uint8_t *src = block + p * 2 * KNN_CODE_BLOCK;
        __m256i c = _mm256_set1_epi32((int32_t)((uint32_t)cq[2 * p] | ((uint32_t)cq[2 * p + 1] << 16)));
        for (size_t k = 0; k < KNN_CODE_BLOCK / 8; k++) {
            __m256i x = _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)(src + 16 * k)));
            __m256i t = _mm256_sub_epi16(x, c);
            acc[k] = _mm256_add_epi32(acc[k], _mm256_madd_epi16(t, t));
        }
    }
}

TARGET uint64_t knn_u8_dist_block_avx2(const uint8_t *cq, const uint8_t *block, size_t npairs, uint32_t cut,
                                       uint32_t *out) {
    __m256i acc[KNN_CODE_BLOCK / 8];
    code_sums(cq, block, npairs, acc);
    const __m256i c = _mm256_set1_epi32((int32_t)cut); /* sums and cut fit 31 bits: signed compares hold */
    uint64_t mask = 0;
    for (size_t k = 0; k < KNN_CODE_BLOCK / 8; k++) {
        _mm256_storeu_si256((__m256i *)(out + 8 * k), acc[k]);
        __m256i lt = _mm256_cmpgt_epi32(c, acc[k]);
        mask |= (uint64_t)(uint32_t)_mm256_movemask_ps(_mm256_castsi256_ps(lt)) << (8 * k);
    }
    return mask;
}

TARGET uint64_t knn_u8_screen_block_avx2(const uint8_t *cq, const uint8_t *block, size_t npairs, const float *reach,
                                         float cerr, float scale2) {
    __m256i acc[KNN_CODE_BLOCK / 8];
    code_sums(cq, block, npairs, acc);
    const __m256 s2 = _mm256_set1_ps(scale2), ce = _mm256_set1_ps(cerr), zero = _mm256_setzero_ps();
    uint64_t mask = 0;
    for (size_t k = 0; k < KNN_CODE_BLOCK / 8; k++) {
        __m256 r = _mm256_loadu_ps(reach + 8 * k);
        __m256 t = _mm256_add_ps(r, ce);
        __m256 lhs = _mm256_mul_ps(_mm256_cvtepi32_ps(acc[k]), s2);
        __m256 keep = _mm256_and_ps(_mm256_cmp_ps(lhs, _mm256_mul_ps(t, t), _CMP_LT_OQ),
                                    _mm256_cmp_ps(r, zero, _CMP_GE_OQ));
        mask |= (uint64_t)(uint32_t)_mm256_movemask_ps(keep) << (8 * k);
    }
    return mask;
}

/* Sums of four 8 x int32 accumulators at once: [sum(a), sum(b), sum(c), sum(d)]. */
TARGET static inline __m128i reduce4_epi32(__m256i a, __m256i b, __m256i c, __m256i d) {
    __m256i s = _mm256_hadd_epi32(_mm256_hadd_epi32(a, b), _mm256_hadd_epi32(c, d));
    return _mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
}

TARGET static inline __m256i sq8_step(const uint8_t *r, __m256i wv) {
    return _mm256_madd_epi16(_mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)r)), wv);
}

/* 8-bit codes: 16 codes widened to int16 and multiplied pairwise into int32 (pmaddwd); four rows share
 * each load of the weights. */
TARGET void knn_sq8_dot_ptrs_avx2(const int16_t *w, const uint8_t *const *rows, size_t n, size_t dpad, int32_t *out) {
    size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        const uint8_t *r0 = rows[i], *r1 = rows[i + 1], *r2 = rows[i + 2], *r3 = rows[i + 3];
        __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
        for (size_t j = 0; j < dpad; j += 16) {
            __m256i wv = _mm256_loadu_si256((const __m256i *)(w + j));
            a0 = _mm256_add_epi32(a0, sq8_step(r0 + j, wv));
            a1 = _mm256_add_epi32(a1, sq8_step(r1 + j, wv));
            a2 = _mm256_add_epi32(a2, sq8_step(r2 + j, wv));
            a3 = _mm256_add_epi32(a3, sq8_step(r3 + j, wv));
        }
        _mm_storeu_si128((__m128i *)(out + i), reduce4_epi32(a0, a1, a2, a3));
    }
    for (; i < n; i++) {
        __m256i a = _mm256_setzero_si256();
        for (size_t j = 0; j < dpad; j += 16) a = _mm256_add_epi32(a, sq8_step(rows[i] + j, _mm256_loadu_si256((const __m256i *)(w + j))));
        __m128i s = _mm_add_epi32(_mm256_castsi256_si128(a), _mm256_extracti128_si256(a, 1));
        s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
        s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
        out[i] = _mm_cvtsi128_si32(s);
    }
}

/* One 64-dimension group of a 4-bit row: low and high nibbles of 32 bytes against their 32 weights each
 * (pmaddubsw: at most 2 * 15 * 127 a pair, no saturation), widened to int32. */
TARGET static inline __m256i sq4_step(const uint8_t *r, __m256i wl, __m256i wh, __m256i nib, __m256i ones) {
    __m256i v = _mm256_loadu_si256((const __m256i *)r);
    __m256i lo = _mm256_and_si256(v, nib), hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), nib);
    __m256i p = _mm256_add_epi16(_mm256_maddubs_epi16(lo, wl), _mm256_maddubs_epi16(hi, wh));
    return _mm256_madd_epi16(p, ones);
}

TARGET void knn_sq4_dot_ptrs_avx2(const int8_t *w, const uint8_t *const *rows, size_t n, size_t dpad, int32_t *out) {
    const __m256i nib = _mm256_set1_epi8(0x0f), ones = _mm256_set1_epi16(1);
    size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        const uint8_t *r0 = rows[i], *r1 = rows[i + 1], *r2 = rows[i + 2], *r3 = rows[i + 3];
        __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
        for (size_t g = 0; g < dpad / 64; g++) {
            __m256i wl = _mm256_loadu_si256((const __m256i *)(w + 64 * g));
            __m256i wh = _mm256_loadu_si256((const __m256i *)(w + 64 * g + 32));
            a0 = _mm256_add_epi32(a0, sq4_step(r0 + 32 * g, wl, wh, nib, ones));
            a1 = _mm256_add_epi32(a1, sq4_step(r1 + 32 * g, wl, wh, nib, ones));
            a2 = _mm256_add_epi32(a2, sq4_step(r2 + 32 * g, wl, wh, nib, ones));
            a3 = _mm256_add_epi32(a3, sq4_step(r3 + 32 * g, wl, wh, nib, ones));
        }
        _mm_storeu_si128((__m128i *)(out + i), reduce4_epi32(a0, a1, a2, a3));
    }
    for (; i < n; i++) {
        __m256i a = _mm256_setzero_si256();
        for (size_t g = 0; g < dpad / 64; g++) {
            a = _mm256_add_epi32(a, sq4_step(rows[i] + 32 * g, _mm256_loadu_si256((const __m256i *)(w + 64 * g)),
                                             _mm256_loadu_si256((const __m256i *)(w + 64 * g + 32)), nib, ones));
        }
        __m128i s = _mm_add_epi32(_mm256_castsi256_si128(a), _mm256_extracti128_si256(a, 1));
        s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
        s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
        out[i] = _mm_cvtsi128_si32(s);
    }
}

const knn_kernels knn_kernels_avx2 = {
    KNN_ISA_AVX2, "avx2", l2sq_rows_avx2, dot_rows_avx2, dot_norm_rows_avx2, dot_panel_avx2,
    l2sq_ptrs_avx2, dot_ptrs_avx2, knn_u8_screen_block_avx2, knn_u8_dist_block_avx2, knn_sq8_dot_ptrs_avx2,
    knn_sq4_dot_ptrs_avx2,
};

#else
const knn_kernels knn_kernels_avx2 = {
    KNN_ISA_SCALAR, "scalar", 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
};
#endif
