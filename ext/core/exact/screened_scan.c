/* Screened exact scan (see exact/knn_screened.h): the top k of a run of rows that carry 8-bit codes
 * (quant/knn_codes.h) next to their floats; the window plan's label-sorted copy and the 8-bit flat index use it.
 * With c the code distance of a row x,
 *     c - err(x) - err(q) <= d(x, q) <= c + err(x) + err(q).
 * The scan goes in spans of SCREEN_SPAN rows. A first pass reads only the span's codes (d bytes a row,
 * against 4d for the floats) into integer code distances, and keeps the k smallest upper bounds of the
 * window rows seen so far: k rows are known to lie within the k-th of them, so a row whose lower bound
 * is beyond it cannot be in the top k. A second pass reads float rows only for rows whose lower bound is
 * within that and within the current k-th float distance. Float rows are scored in the chunks and
 * groups of knn_scan_one (256-row chunks from the slice start, 8-row groups, which the kernels split
 * into their 4-row and one-row paths alike), so every scored row gets the very float the plain scan
 * gives it, and the result is the plain scan's, ties included: a skipped row is farther than k others
 * by more than KNN_CODES_SLACK, far beyond float rounding. Window slices are cold in cache on large
 * indexes, so the scan is bound by the bytes it reads; the upper bounds make the threshold tight from
 * the first chunk on, where a running top-k alone reads every float row of the first chunk. Both
 * passes test most rows by one compare of the integer distance against a cut (worked out with the
 * largest decoding error), and look at a row's own error and label only when it is close. */
#include "exact/knn_screened.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#define SCREEN_CHUNK 256    /* = knn_scan_one's block */
#define SCREEN_SPAN 4096    /* rows bounded ahead of their float pass (a multiple of SCREEN_CHUNK) */
#define SCREEN_UB_MAX 256   /* k up to this also bounds the k-th distance by the codes' upper bounds */

/* Euclidean distance bound from a scan distance (squared L2, or -<q, x> of unit rows under cosine). */
static inline float euclid_bound(knn_metric scan_metric, float dist) {
    if (isinf(dist)) return INFINITY;
    float e2 = scan_metric == KNN_METRIC_L2 ? dist : 2.0f + 2.0f * dist;
    return sqrtf(e2 > 0 ? e2 : 0) * (1.0f + (float)KNN_CODES_SLACK) + 1e-6f;
}

/* Keeps the k smallest upper bounds seen (a max-heap of at most k floats); returns the k-th smallest,
 * +inf while fewer than k are known. */
static float ub_offer(float *h, size_t *n, size_t k, float u) {
    if (*n < k) {
        size_t i = (*n)++;
        for (; i > 0 && h[(i - 1) / 2] < u; i = (i - 1) / 2) h[i] = h[(i - 1) / 2];
        h[i] = u;
    } else if (u < h[0]) {
        size_t i = 0;
        for (;;) {
            size_t l = 2 * i + 1, r = l + 1, m = i;
            float vm = u;
            if (l < k && h[l] > vm) m = l, vm = h[l];
            if (r < k && h[r] > vm) m = r;
            if (m == i) break;
            h[i] = h[m];
            i = m;
        }
        h[i] = u;
    }
    return *n < k ? INFINITY : h[0];
}


/* An integer cut for Euclidean reach r: every row with S * s2 < r^2 has S < the cut (it errs high). */
static inline uint32_t code_cut(float r, float s2) {
    if (!(r < INFINITY) || !(s2 > 0)) return INT32_MAX;
    if (!(r > 0)) return 0;
    double v = (double)r * (double)r / (double)s2 * (1.0 + 1e-6) + 1.0;
    return v >= (double)INT32_MAX ? INT32_MAX : (uint32_t)v;
}

/* Bits of rows o .. o+n-1 (n <= 8) of a run of 64-bit block masks. */
static inline uint32_t mask_bits(const uint64_t *m, size_t o, size_t n) {
    const size_t w = o / 64, b = o % 64;
    uint64_t v = m[w] >> b;
    if (b + n > 64) v |= m[w + 1] << (64 - b);
    return (uint32_t)(v & ((1u << n) - 1));
}

knn_status knn_scan_screened(const knn_kernels *kern, knn_metric scan_metric, const float *q, const knn_screen_rows *src,
                             const knn_selector *sel, size_t s, size_t e, knn_topk *t, knn_error *err) {
    const knn_codes *cd = src->codes;
    const size_t d = src->d, np2 = 2 * cd->npairs, k = t->k;
    uint8_t cq_stack[512], *cq = np2 <= sizeof cq_stack ? cq_stack : malloc(np2);
    if (cq == NULL) return knn_error_set(err, KNN_ENOMEM, "out of memory for a query's codes");
    const float qerr = knn_codes_encode(cd, q, cq);
    const float up = 1.0f + (float)KNN_CODES_SLACK, s2 = cd->scale2, slack = cd->err_max + qerr;
    const int use_ub = k <= SCREEN_UB_MAX;
    enum { NB = SCREEN_SPAN / KNN_CODE_BLOCK + 1 };
    uint32_t S[NB * KNN_CODE_BLOCK]; /* integer code distances of the span's blocks, S[i - sbase] for row i */
    uint64_t cand[NB + 1];           /* rows whose lower bound may be within the threshold */
    float ub_heap[SCREEN_UB_MAX], dist[8];
    float kth_ub = INFINITY; /* k window rows lie within this (the k-th smallest upper bound seen) */
    size_t ub_n = 0;
    knn_status st = KNN_OK;
    for (size_t a = s; a < e && st == KNN_OK; a += SCREEN_SPAN) {
        const size_t z = e - a < SCREEN_SPAN ? e : a + SCREEN_SPAN;
        const size_t bfirst = a / KNN_CODE_BLOCK, sbase = bfirst * KNN_CODE_BLOCK;
        /* pass 1: codes only. A row left out of cand has c >= thr + err_max + err(q) for a threshold no
         * lower than any later one, so its lower bound stays beyond every later threshold. */
        const float tb = euclid_bound(scan_metric, knn_topk_bound(t));
        size_t nb = 0;
        for (size_t b = bfirst; b * KNN_CODE_BLOCK < z; b++, nb++) {
            const float thr = tb < kth_ub ? tb : kth_ub;
            uint32_t *Sb = S + nb * KNN_CODE_BLOCK;
            uint64_t m = kern->u8_dist_block(cq, knn_codes_block(cd, b), cd->npairs, code_cut((thr + slack) * up, s2),
                                                Sb);
            const size_t b0 = b * KNN_CODE_BLOCK;
            if (b0 < a) m &= ~(uint64_t)0 << (a - b0);
            if (z - b0 < KNN_CODE_BLOCK) m &= ((uint64_t)1 << (z - b0)) - 1;
            cand[nb] = m;
            if (!use_ub) continue;
            uint32_t ub_cut = code_cut(kth_ub, s2); /* c >= kth_ub: this row's upper bound is no lower */
            for (; m; m &= m - 1) {
                const size_t r = (size_t)__builtin_ctzll(m);
                if (Sb[r] >= ub_cut || !knn_selector_admits(sel, b0 + r)) continue;
                const float c = sqrtf((float)Sb[r] * s2); /* s2 is rounded down: c is too */
                kth_ub = ub_offer(ub_heap, &ub_n, k, ((c * up + cd->err[b0 + r] + qerr) * up) * up + 1e-6f);
                ub_cut = code_cut(kth_ub, s2);
            }
        }
        cand[nb] = 0;
        /* pass 2: float rows for candidates still within the threshold, in knn_scan_one's chunks */
        float bound = NAN, thr = INFINITY;
        for (size_t c0 = a; c0 < z && st == KNN_OK; c0 += SCREEN_CHUNK) {
            const size_t m = z - c0 < SCREEN_CHUNK ? z - c0 : SCREEN_CHUNK;
            for (size_t i = 0; i < m && st == KNN_OK; i += 8) {
                const size_t n8 = m - i < 8 ? m - i : 8, row = c0 + i;
                uint32_t bits = mask_bits(cand, row - sbase, n8);
                if (!bits) continue;
                if (!(knn_topk_bound(t) == bound)) { /* the threshold moves only when the top k does */
                    bound = knn_topk_bound(t);
                    const float tt = euclid_bound(scan_metric, bound);
                    thr = tt < kth_ub ? tt : kth_ub;
                }
                int any = 0;
                for (; bits && !any; bits &= bits - 1) {
                    const size_t r = (size_t)__builtin_ctz(bits);
                    const float c = sqrtf((float)S[row - sbase + r] * s2);
                    any = c - cd->err[row + r] - qerr < thr && knn_selector_admits(sel, row + r);
                }
                if (!any) continue;
                const float *X = src->vecs + row * d;
                if (scan_metric == KNN_METRIC_L2) {
                    kern->l2sq_rows(q, X, n8, d, dist);
                } else {
                    kern->dot_rows(q, X, n8, d, dist);
                    for (size_t r = 0; r < n8; r++) dist[r] = -dist[r];
                }
                for (size_t r = 0; r < n8 && st == KNN_OK; r++) {
                    if (!(dist[r] <= knn_topk_bound(t)) || !knn_selector_admits(sel, row + r)) continue;
                    st = knn_topk_insert(t, dist[r], src->ids[row + r], err);
                }
            }
        }
    }
    if (cq != cq_stack) free(cq);
    return st;
}

