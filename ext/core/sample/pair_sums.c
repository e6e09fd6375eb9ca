/* Sums over all (query, reference) pairs of a function of their Euclidean distance, one sum per query:
 * the O(nq * nr * d) pass behind exact statistical depth (sample/depth.c: the mean distance of a row to
 * the reference set) and exact kernel density (analytics/kde.c: a sum of Gaussian kernels).
 *
 * It is the GEMM pattern of exact/knn_scan.c and the k-means assignment (sample/kmeans.c): reference rows
 * packed dimension-major into 16-row panels, the 4 x 16 inner-product micro-kernel of the kernel table
 * (dot_panel), and the squared distance ||q||^2 + ||r||^2 - 2 <q, r> (clamped at 0) per pair. The
 * reference goes in chunks of panels that fit L2 (about 256 KiB); queries go in blocks of 64, each block
 * running over the chunk, a panel staying in L1 for the block's 16 tiles. On GloVe-50 at 100k rows that
 * reads the reference from memory 100 times instead of 1,600 (once per query block). Nothing is
 * materialised per pair: the terms go straight into per-query lane sums.
 *
 * Terms:
 *   KNN_PAIR_DIST   sqrt(d2)                                  (and its square, d2, into the second sum)
 *   KNN_PAIR_GAUSS  exp(-(d2 - shift[q]) * scale), for x <= 0 by knn_exp_neg (rel. error ~2e-7), clamped
 *                   at exp(0) when rounding puts d2 below the shift (and its square into the second sum)
 * A pair whose query id equals the reference id (both id arrays given, each ascending) is skipped: the
 * leave-one-out sums of a set against itself, or against a sample of itself. Ascending ids let a tile
 * test two bounds instead of 16 ids; the rare tiles holding the query, and the last panel's padding,
 * take a 0/1 column mask.
 *
 * Determinism: a query's sum runs over the panels in order, whatever thread holds the query, so results
 * do not depend on the thread count. Each query keeps 16 float lane sums (one per panel column, so the
 * term loops vectorise), folded into double after each chunk. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/knn_parallel.h"
#include "sample/knn_sample.h"

#define QUERY_BLOCK 64
#define TILE (KNN_TILE_QUERIES * KNN_PANEL_ROWS)

typedef struct pair_job {
    const knn_pair_in *in;
    const float *pack;  /* npanels x d x 16 */
    const float *rn;    /* npanels * 16 squared norms */
    size_t npanels, nblocks, nthreads;
    double *sum, *sum2;
} pair_job;

/* Four-lane vectors (GCC/Clang vector extensions: SSE2 registers at the baseline ISA, no intrinsics). The
 * per-pair terms are written on them because the autovectoriser leaves these short loops scalar. */
typedef float v4f __attribute__((vector_size(16)));
typedef int32_t v4i __attribute__((vector_size(16)));

static inline v4f v4_load(const float *p) {
    v4f v;
    memcpy(&v, p, sizeof v);
    return v;
}

static inline v4f v4_splat(float x) { return (v4f){x, x, x, x}; }

/* max(x, 0) (and 0 for NaN) */
static inline v4f v4_clamp0(v4f x) {
    v4i keep = x > v4_splat(0.0f);
    return (v4f)(keep & (v4i)x);
}

/* sqrt(x) for x >= 0. sqrtf itself would stay scalar: with math errno on (the build's default) GCC keeps a
 * sqrtss-plus-libcall path for it. On x86-64, SSE's sqrtps is part of the baseline ISA (no dispatch);
 * elsewhere x * rsqrt(x): the classic bit-level first guess and three Newton steps (relative error
 * 3e-2 -> 2e-3 -> 5e-6 -> float rounding; measured within 2.4e-7 of sqrt), 0 at 0. */
static inline v4f v4_sqrt0(v4f x) {
#if defined(__GNUC__) && defined(__SSE__)
    return __builtin_ia32_sqrtps(x);
#else
    v4i u = (v4i)x;
    v4f y = (v4f)((v4i){0x5f375a86, 0x5f375a86, 0x5f375a86, 0x5f375a86} - (u >> 1));
    const v4f h = v4_splat(0.5f) * x, three_half = v4_splat(1.5f);
    y = y * (three_half - h * y * y);
    y = y * (three_half - h * y * y);
    y = y * (three_half - h * y * y);
    return x * y;
#endif
}

/* Adds one tile row's terms (a query against one panel) into the query's 16 lane accumulators a, b.
 * mask (NULL: all 16 columns count) zeroes the columns past the panel's live rows and the query's own. */
static inline void tile_terms(knn_pair_fn fn, const float *dot, const float *rn, float qn, float shift, float scale,
                              const float *mask, float *restrict a, float *restrict b) {
    const v4f q = v4_splat(qn), two = v4_splat(2.0f);
    if (fn == KNN_PAIR_DIST) {
        for (size_t c = 0; c < KNN_PANEL_ROWS; c += 4) {
            v4f d2 = v4_clamp0(q + v4_load(rn + c) - two * v4_load(dot + c));
            v4f s = v4_sqrt0(d2);
            if (mask) {
                v4f m = v4_load(mask + c);
                s *= m;
                d2 *= m;
            }
            v4f va = v4_load(a + c) + s, vb = v4_load(b + c) + d2;
            memcpy(a + c, &va, sizeof va);
            memcpy(b + c, &vb, sizeof vb);
        }
        return;
    }
    float buf[KNN_PANEL_ROWS];
    const v4f sh = v4_splat(shift), sc = v4_splat(scale);
    for (size_t c = 0; c < KNN_PANEL_ROWS; c += 4) {
        v4f d2 = v4_clamp0(q + v4_load(rn + c) - two * v4_load(dot + c));
        v4f x = -v4_clamp0((d2 - sh) * sc); /* -(d2 - shift) * scale, at most 0 */
        memcpy(buf + c, &x, sizeof x);
    }
    knn_exp_neg(buf, KNN_PANEL_ROWS);
    for (size_t c = 0; c < KNN_PANEL_ROWS; c += 4) {
        v4f v = v4_load(buf + c);
        if (mask) v *= v4_load(mask + c);
        v4f va = v4_load(a + c) + v, vb = v4_load(b + c) + v * v;
        memcpy(a + c, &va, sizeof va);
        memcpy(b + c, &vb, sizeof vb);
    }
}

/* Reference panels are taken a chunk at a time (about 256 KiB, at most 64 panels), and every query block
 * of the thread runs over the chunk while it sits in L2; each query's 16 float lane sums cover one chunk
 * (at most 64 terms a lane) and are then folded into its double sums. */
#define CHUNK_BYTES (256u * 1024u)
#define CHUNK_MAX 64

static void pair_task(void *arg, size_t t) {
    pair_job *j = arg;
    const knn_pair_in *in = j->in;
    const size_t d = in->d;
    float tile[TILE], tail[KNN_PANEL_ROWS], own[KNN_PANEL_ROWS];
    float la[QUERY_BLOCK][KNN_PANEL_ROWS], lb[QUERY_BLOCK][KNN_PANEL_ROWS];
    float qn[QUERY_BLOCK];
    const size_t tail_live = in->nr % KNN_PANEL_ROWS;
    for (size_t c = 0; c < KNN_PANEL_ROWS; c++) tail[c] = c < tail_live;
    size_t chunk = CHUNK_BYTES / (KNN_PANEL_ROWS * sizeof(float) * d);
    chunk = chunk < 1 ? 1 : chunk > CHUNK_MAX ? CHUNK_MAX : chunk;
    for (size_t b = t; b < j->nblocks; b += j->nthreads) {
        const size_t q0 = b * QUERY_BLOCK, q1 = q0 + QUERY_BLOCK < in->nq ? q0 + QUERY_BLOCK : in->nq;
        for (size_t q = q0; q < q1; q++) {
            j->sum[q] = 0.0;
            if (j->sum2) j->sum2[q] = 0.0;
        }
    }
    for (size_t p0 = 0; p0 < j->npanels; p0 += chunk) {
        const size_t p1 = p0 + chunk < j->npanels ? p0 + chunk : j->npanels;
        for (size_t b = t; b < j->nblocks; b += j->nthreads) {
            const size_t q0 = b * QUERY_BLOCK, q1 = q0 + QUERY_BLOCK < in->nq ? q0 + QUERY_BLOCK : in->nq;
            const size_t nb = q1 - q0;
            for (size_t i = 0; i < nb; i++) {
                const float *q = in->Q + (q0 + i) * d;
                double s = 0;
                for (size_t k = 0; k < d; k++) s += (double)q[k] * q[k];
                qn[i] = (float)s;
            }
            memset(la, 0, sizeof la);
            memset(lb, 0, sizeof lb);
            for (size_t p = p0; p < p1; p++) {
                const float *panel = j->pack + p * d * KNN_PANEL_ROWS;
                const float *rn = j->rn + p * KNN_PANEL_ROWS;
                const size_t base = p * KNN_PANEL_ROWS;
                const size_t live = in->nr - base < KNN_PANEL_ROWS ? in->nr - base : KNN_PANEL_ROWS;
                const int64_t *rid = in->rid ? in->rid + base : NULL;
                for (size_t i = 0; i < nb; i += KNN_TILE_QUERIES) {
                    const size_t tq = nb - i < KNN_TILE_QUERIES ? nb - i : KNN_TILE_QUERIES;
                    in->kern->dot_panel(in->Q + (q0 + i) * d, tq, panel, d, tile);
                    for (size_t r = 0; r < tq; r++) {
                        const size_t qi = q0 + i + r;
                        const float *mask = live < KNN_PANEL_ROWS ? tail : NULL;
                        if (rid && in->qid && in->qid[qi] >= rid[0] && in->qid[qi] <= rid[live - 1]) {
                            /* ids ascend: the query can only be this panel's row when it lies in its id range */
                            for (size_t c = 0; c < KNN_PANEL_ROWS; c++) own[c] = c < live && rid[c] != in->qid[qi];
                            mask = own;
                        }
                        tile_terms(in->fn, tile + r * KNN_PANEL_ROWS, rn, qn[i + r],
                                   in->shift ? (float)in->shift[qi] : 0.0f, (float)in->scale, mask, la[i + r],
                                   lb[i + r]);
                    }
                }
            }
            for (size_t i = 0; i < nb; i++) {
                double s1 = 0.0, s2 = 0.0;
                for (size_t c = 0; c < KNN_PANEL_ROWS; c++) {
                    s1 += la[i][c];
                    s2 += lb[i][c];
                }
                j->sum[q0 + i] += s1;
                if (j->sum2) j->sum2[q0 + i] += s2;
            }
        }
    }
}

knn_status knn_pair_sums(const knn_pair_in *in, double *sum, double *sum2, knn_error *err) {
    if (in->d == 0) return knn_error_set(err, KNN_EINVAL, "vectors must have at least one dimension");
    for (size_t i = 1; in->rid && in->qid && i < in->nr; i++) {
        if (in->rid[i] <= in->rid[i - 1]) return knn_error_set(err, KNN_EINVAL, "reference ids must ascend");
    }
    for (size_t i = 1; in->rid && in->qid && i < in->nq; i++) {
        if (in->qid[i] < in->qid[i - 1]) return knn_error_set(err, KNN_EINVAL, "query ids must not descend");
    }
    if (in->nr == 0 || in->nq == 0) {
        for (size_t q = 0; q < in->nq; q++) {
            sum[q] = 0.0;
            if (sum2) sum2[q] = 0.0;
        }
        return KNN_OK;
    }
    const size_t d = in->d;
    const size_t npanels = (in->nr + KNN_PANEL_ROWS - 1) / KNN_PANEL_ROWS;
    if (npanels > SIZE_MAX / KNN_PANEL_ROWS / sizeof(float) / d) {
        return knn_error_set(err, KNN_EINVAL, "%zu reference rows of dimension %zu are too many to pack", in->nr, d);
    }
    const size_t bytes = (npanels * d * KNN_PANEL_ROWS * sizeof(float) + 63) / 64 * 64;
    float *pack = aligned_alloc(64, bytes);
    float *rn = malloc(npanels * KNN_PANEL_ROWS * sizeof *rn);
    if (!pack || !rn) {
        free(pack);
        free(rn);
        return knn_error_set(err, KNN_ENOMEM, "out of memory packing %zu reference rows of dimension %zu", in->nr, d);
    }
    memset(pack, 0, bytes);
    for (size_t r = 0; r < npanels * KNN_PANEL_ROWS; r++) {
        float *dst = pack + (r / KNN_PANEL_ROWS) * d * KNN_PANEL_ROWS + r % KNN_PANEL_ROWS;
        if (r >= in->nr) {
            rn[r] = 0.0f;
            continue;
        }
        const float *v = in->R + r * d;
        double s = 0;
        for (size_t k = 0; k < d; k++) {
            dst[k * KNN_PANEL_ROWS] = v[k];
            s += (double)v[k] * v[k];
        }
        rn[r] = (float)s;
    }
    const size_t nblocks = (in->nq + QUERY_BLOCK - 1) / QUERY_BLOCK;
    size_t nt = in->threads ? in->threads : knn_cpu_count();
    /* below ~4M multiply-adds a thread, starting it costs more than it saves */
    const double work = (double)in->nq * (double)in->nr * (double)d;
    if ((double)nt * (1u << 22) > work) nt = (size_t)(work / (1u << 22)) + 1;
    if (nt > nblocks) nt = nblocks;
    pair_job job = {in, pack, rn, npanels, nblocks, nt, sum, sum2};
    knn_parallel_run(nt, pair_task, &job);
    free(pack);
    free(rn);
    return KNN_OK;
}
