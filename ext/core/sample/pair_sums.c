/* Sums over all (query, reference) pairs of a function of their Euclidean distance, one sum per query:
 * the O(nq * nr * d) pass behind exact statistical depth (sample/depth.c: the mean distance of a row to
 * the reference set) and exact kernel density (analytics/kde.c: a sum of Gaussian kernels).
 *
 * It is the GEMM pattern of exact/knn_scan.c and the k-means assignment (sample/kmeans.c): reference rows
 * packed dimension-major into 16-row panels, the 4 x 16 inner-product micro-kernel of the kernel table
 * (dot_panel), and the squared distance ||q||^2 + ||r||^2 - 2 <q, r> (clamped at 0) per pair. Queries go
 * in blocks of 64 that stay in L2 while every panel streams past once; a panel stays in L1 for the
 * block's 16 tiles. Nothing is materialised per pair: each tile's 64 terms are reduced at once.
 *
 * Terms:
 *   KNN_PAIR_DIST   sqrt(d2)                                  (and its square, d2, into the second sum)
 *   KNN_PAIR_GAUSS  exp(-(d2 - shift[q]) * scale), for x <= 0 by knn_exp_neg (rel. error ~2e-7), clamped
 *                   at exp(0) when rounding puts d2 below the shift (and its square into the second sum)
 * A pair whose query id equals the reference id (both id arrays given) is skipped: the leave-one-out sums
 * of a set against itself, or against a sample of itself.
 *
 * Determinism: a query's sum runs over the panels in order, whatever thread holds the query, so results
 * do not depend on the thread count. Partial sums of a tile are float (16 terms), added into double. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/knn_parallel.h"
#include "sample/knn_sample.h"

#define QUERY_BLOCK 64
#define TILE (KNN_TILE_QUERIES * KNN_PANEL_ROWS)

/* The loops below have no call that sets errno when their argument is clamped at >= 0; let GCC vectorise
 * sqrtf there (it otherwise keeps a scalar path for math errno). */
#if defined(__GNUC__) && !defined(__clang__)
#define NO_ERRNO __attribute__((optimize("no-math-errno")))
#else
#define NO_ERRNO
#endif

typedef struct pair_job {
    const knn_pair_in *in;
    const float *pack;  /* npanels x d x 16 */
    const float *rn;    /* npanels * 16 squared norms */
    size_t npanels, nblocks, nthreads;
    double *sum, *sum2;
} pair_job;

/* The two sums of one tile row's terms: a query against one panel's first `live` rows, column `skip`
 * (the query itself; -1: none) left out. buf: 16 floats of scratch. */
static NO_ERRNO void tile_terms(knn_pair_fn fn, const float *dot, const float *rn, float qn, float shift,
                                float scale, size_t live, long skip, float *buf, float *s1, float *s2) {
    for (size_t c = 0; c < KNN_PANEL_ROWS; c++) {
        float d2 = qn + rn[c] - 2.0f * dot[c];
        buf[c] = d2 > 0.0f ? d2 : 0.0f;
    }
    float a = 0.0f, b = 0.0f;
    if (fn == KNN_PAIR_DIST) {
        for (size_t c = 0; c < KNN_PANEL_ROWS; c++) {
            float v = c < live && (long)c != skip ? buf[c] : 0.0f;
            a += sqrtf(v);
            b += v;
        }
    } else {
        for (size_t c = 0; c < KNN_PANEL_ROWS; c++) {
            float x = -(buf[c] - shift) * scale;
            buf[c] = x < 0.0f ? x : 0.0f;
        }
        knn_exp_neg(buf, KNN_PANEL_ROWS);
        for (size_t c = 0; c < KNN_PANEL_ROWS; c++) {
            float v = c < live && (long)c != skip ? buf[c] : 0.0f;
            a += v;
            b += v * v;
        }
    }
    *s1 = a;
    *s2 = b;
}

static void pair_task(void *arg, size_t t) {
    pair_job *j = arg;
    const knn_pair_in *in = j->in;
    const size_t d = in->d;
    float tile[TILE], buf[KNN_PANEL_ROWS];
    double acc[QUERY_BLOCK], acc2[QUERY_BLOCK];
    float qn[QUERY_BLOCK];
    for (size_t b = t; b < j->nblocks; b += j->nthreads) {
        const size_t q0 = b * QUERY_BLOCK, q1 = q0 + QUERY_BLOCK < in->nq ? q0 + QUERY_BLOCK : in->nq;
        const size_t nb = q1 - q0;
        for (size_t i = 0; i < nb; i++) {
            const float *q = in->Q + (q0 + i) * d;
            double s = 0;
            for (size_t k = 0; k < d; k++) s += (double)q[k] * q[k];
            qn[i] = (float)s;
            acc[i] = acc2[i] = 0.0;
        }
        for (size_t p = 0; p < j->npanels; p++) {
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
                    long skip = -1;
                    if (rid && in->qid) {
                        const int64_t id = in->qid[qi];
                        for (size_t c = 0; c < live; c++) skip = rid[c] == id ? (long)c : skip;
                    }
                    float s1, s2;
                    tile_terms(in->fn, tile + r * KNN_PANEL_ROWS, rn, qn[i + r], in->shift ? (float)in->shift[qi] : 0.0f,
                               (float)in->scale, live, skip, buf, &s1, &s2);
                    acc[i + r] += s1;
                    acc2[i + r] += s2;
                }
            }
        }
        for (size_t i = 0; i < nb; i++) {
            j->sum[q0 + i] = acc[i];
            if (j->sum2) j->sum2[q0 + i] = acc2[i];
        }
    }
}

knn_status knn_pair_sums(const knn_pair_in *in, double *sum, double *sum2, knn_error *err) {
    if (in->d == 0) return knn_error_set(err, KNN_EINVAL, "vectors must have at least one dimension");
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
