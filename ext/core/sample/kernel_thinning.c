/* Kernel thinning with a Gaussian target kernel, made near-linear by Compress++.
 *
 * Target kernel k(x, y) = exp(-||x - y||^2 / (2 sigma^2)); sigma defaults to the median heuristic (the
 * median distance over up to 4096 random pairs of rows).
 *
 * Halving (KT-SPLIT for one round; Dwivedi & Mackey, "Kernel Thinning"; target KT per Dwivedi & Mackey,
 * "Generalized Kernel Thinning"): points are taken in consecutive pairs (a, b); one goes to the kept half
 * by a self-balancing Hilbert walk on psi = sum_kept k(c,.) - sum_dropped k(c,.):
 *     b2 = k(a,a) + k(b,b) - 2k(a,b),  alpha = psi(a) - psi(b),
 *     thresh = max(sqrt(sigma_w^2 * b2 * 2 log(2m/delta)), b2),
 *     keep a with probability (1 - alpha/thresh) / 2, else keep b,
 * with the walk's sub-Gaussian constant sigma_w^2 updated as in the reference implementation
 * (goodpoints, ktc.pyx). psi is kept for the points not yet paired, so a halving of m points costs
 * m^2 / 2 kernel evaluations done as SIMD distance rows plus a vectorised exp. To reach an exact size c
 * from s points (s/2 <= c < s), only the first 2(s - c) points are paired.
 *
 * Compress++ (Shetty, Dwivedi & Mackey, "Distribution Compression in Near-linear Time"): Compress(S, c)
 * splits S into four quarters, compresses each to c/2, and halves their union to c; Compress++ runs
 * Compress to 2^g n points (g = 4 by default; 'g=none' thins the whole input directly, O(n^2)) and then
 * halves g more times to n. Quarters get their own random streams and the top split runs on threads,
 * so output is the same for every thread count.
 *
 * KT-SWAP: each slot of the final coreset is replaced by the candidate of the compressed set that
 * lowers MMD to that set most (O(n * |S'|) kernel columns). The input is shuffled by the seed first
 * (rows arrive in table order, which need not be random). Each pick has weight rows / n. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/knn_parallel.h"
#include "sample/knn_sample.h"

#define KT_DELTA 0.5
#define KT_MEDIAN_PAIRS 4096
/* Sweeps of KT-SWAP over the coreset slots (goodpoints does one; a second lowers MMD further). */
#define KT_SWAP_PASSES 2

typedef struct kt_ctx {
    const float *X;
    size_t d;
    float gamma; /* 1 / (2 sigma^2) */
    const knn_kernels *kern;
    uint64_t seed;
} kt_ctx;

/* Kernel row: out[i] = k(q, G[i]) for m rows of G. */
static void kernel_row(const kt_ctx *c, const float *q, const float *G, size_t m, float *out) {
    c->kern->l2sq_rows(q, G, m, c->d, out);
    for (size_t i = 0; i < m; i++) out[i] *= -c->gamma;
    knn_exp_neg(out, m);
}

static void gather(const kt_ctx *c, const int64_t *idx, size_t m, float *G) {
    for (size_t i = 0; i < m; i++) memcpy(G + i * c->d, c->X + (size_t)idx[i] * c->d, c->d * sizeof(float));
}

/* Reduces idx[0..s) in place to its first `target` entries (s/2 <= target <= s); the dropped points follow. */
static knn_status halve_to(const kt_ctx *c, int64_t *idx, size_t s, size_t target, knn_rng *rng, knn_error *err) {
    if (target >= s) return KNN_OK;
    size_t pairs = s - target, m = 2 * pairs;
    float *G = malloc(m * (c->d + 2) * sizeof *G), *ka = G + m * c->d, *kb = ka + m; /* the points, two kernel rows */
    double *psi = calloc(m, sizeof *psi);
    int64_t *kept = malloc(2 * pairs * sizeof *kept), *dropped = kept + pairs;
    knn_status status = KNN_OK;
    if (!G || !psi || !kept) {
        status = knn_error_set(err, KNN_ENOMEM, "out of memory halving %zu points", m);
        goto done;
    }
    gather(c, idx, m, G);
    const double log_mult = 2.0 * log(2.0 * (double)m / KT_DELTA);
    double sig2 = 0;
    for (size_t i = 0; i < pairs; i++) {
        size_t a = 2 * i, b = a + 1, rest = m - a;
        kernel_row(c, G + a * c->d, G + a * c->d, rest, ka);
        kernel_row(c, G + b * c->d, G + a * c->d, rest, kb);
        double b2 = (double)ka[0] + (double)kb[1] - 2.0 * (double)ka[1];
        if (b2 < 0) b2 = 0;
        double thresh = sqrt(sig2 * b2 * log_mult);
        if (b2 > thresh) thresh = b2;
        if (sig2 == 0) {
            sig2 = b2;
        } else if (thresh != 0) {
            double upd = 1.0 + (b2 / thresh - 2.0) * sig2 / thresh;
            if (upd > 0) sig2 += b2 * upd;
        }
        if (thresh == 0) thresh = 1.0;
        double alpha = psi[a] - psi[b];
        double prob_a = 0.5 * (1.0 - alpha / thresh);
        double sign = knn_rng_uniform(rng) < prob_a ? 1.0 : -1.0;
        kept[i] = sign > 0 ? idx[a] : idx[b];
        dropped[i] = sign > 0 ? idx[b] : idx[a];
        for (size_t y = 2; y < rest; y++) psi[a + y] += sign * ((double)ka[y] - (double)kb[y]);
    }
    /* kept pair winners first, then the unpaired tail, then the dropped points (idx stays a permutation) */
    memmove(idx + pairs, idx + m, (s - m) * sizeof *idx);
    memcpy(idx, kept, pairs * sizeof *idx);
    memcpy(idx + target, dropped, pairs * sizeof *idx);
done:
    free(G);
    free(psi);
    free(kept);
    return status;
}

static knn_status compress(const kt_ctx *c, int64_t *idx, size_t s, size_t target, uint64_t node, size_t threads,
                           knn_error *err);

typedef struct quarter_job {
    const kt_ctx *c;
    int64_t *idx[4];
    size_t s[4], t[4];
    uint64_t node;
    size_t nthreads;
    knn_error errs[4];
} quarter_job;

static void quarter_task(void *arg, size_t t) {
    quarter_job *j = arg;
    for (size_t q = t; q < 4; q += j->nthreads) {
        knn_error_clear(&j->errs[q]);
        compress(j->c, j->idx[q], j->s[q], j->t[q], 4 * j->node + q + 1, 1, &j->errs[q]);
    }
}

/* Compress idx[0..s) to its first `target` entries. */
static knn_status compress(const kt_ctx *c, int64_t *idx, size_t s, size_t target, uint64_t node, size_t threads,
                           knn_error *err) {
    if (s <= target) return KNN_OK;
    knn_rng rng;
    knn_rng_init(&rng, c->seed, 1000 + node);
    if (s <= 2 * target) return halve_to(c, idx, s, target, &rng, err);
    quarter_job job;
    memset(&job, 0, sizeof job);
    job.c = c;
    job.node = node;
    size_t off = 0, given = 0;
    for (size_t q = 0; q < 4; q++) {
        size_t sq = s * (q + 1) / 4 - s * q / 4;
        size_t tq = q == 3 ? 2 * target - given : (2 * target * sq) / s;
        job.idx[q] = idx + off;
        job.s[q] = sq;
        job.t[q] = tq;
        off += sq;
        given += tq;
    }
    job.nthreads = threads > 4 ? 4 : threads ? threads : 1;
    knn_parallel_run(job.nthreads, quarter_task, &job);
    if (knn_error_first(job.errs, 4, err) != KNN_OK) return err->status;
    /* gather the four compressed quarters to the front */
    size_t w = 0;
    for (size_t q = 0; q < 4; q++) {
        memmove(idx + w, job.idx[q], job.t[q] * sizeof *idx);
        w += job.t[q];
    }
    return halve_to(c, idx, w, target, &rng, err);
}

/* KT-SWAP of the first n entries of T[0..N) against the empirical measure of T. */
static knn_status kt_swap(const kt_ctx *c, int64_t *T, size_t N, size_t n, knn_error *err) {
    float *G = malloc(N * c->d * sizeof *G);
    float *col = malloc(N * sizeof *col);
    double *meanK = calloc(N, sizeof *meanK), *sumC = calloc(N, sizeof *sumC);
    unsigned char *in = calloc(N, 1);
    size_t *slot = malloc(n * sizeof *slot);
    int64_t *perm = NULL; /* the result, written at the end */
    knn_status status = KNN_OK;
    if (!G || !col || !meanK || !sumC || !in || !slot) {
        status = knn_error_set(err, KNN_ENOMEM, "out of memory for KT-SWAP over %zu points", N);
        goto done;
    }
    gather(c, T, N, G);
    for (size_t t = 0; t < N; t++) {
        kernel_row(c, G + t * c->d, G, N, col);
        double s = 0;
        for (size_t u = 0; u < N; u++) s += col[u];
        meanK[t] = s / (double)N;
    }
    for (size_t j = 0; j < n; j++) {
        slot[j] = j;
        in[j] = 1;
        kernel_row(c, G + j * c->d, G, N, col);
        for (size_t u = 0; u < N; u++) sumC[u] += col[u];
    }
    const double inv_n = 1.0 / (double)n;
    for (size_t pass = 0; pass < KT_SWAP_PASSES * n; pass++) {
        size_t j = pass % n;
        size_t cur = slot[j];
        kernel_row(c, G + cur * c->d, G, N, col);
        for (size_t u = 0; u < N; u++) sumC[u] -= col[u];
        size_t best = cur;
        double best_v = 2.0 * sumC[cur] * inv_n * inv_n - 2.0 * meanK[cur] * inv_n;
        for (size_t u = 0; u < N; u++) {
            if (in[u]) continue;
            double v = 2.0 * sumC[u] * inv_n * inv_n - 2.0 * meanK[u] * inv_n;
            if (v < best_v) {
                best_v = v;
                best = u;
            }
        }
        if (best != cur) {
            in[cur] = 0;
            in[best] = 1;
            slot[j] = best;
            kernel_row(c, G + best * c->d, G, N, col);
        }
        for (size_t u = 0; u < N; u++) sumC[u] += col[u];
    }
    /* write the swapped coreset to the front of T (keeping the rest as a permutation) */
    perm = malloc(N * sizeof *perm);
    if (!perm) {
        status = knn_error_set(err, KNN_ENOMEM, "out of memory for KT-SWAP");
    } else {
        size_t w = 0;
        for (size_t j = 0; j < n; j++) perm[w++] = T[slot[j]];
        for (size_t u = 0; u < N; u++) {
            if (!in[u]) perm[w++] = T[u];
        }
        memcpy(T, perm, w * sizeof *T);
    }
done:
    free(perm);
    free(G);
    free(col);
    free(meanK);
    free(sumC);
    free(in);
    free(slot);
    return status;
}

static int float_cmp(const void *x, const void *y) {
    float a = *(const float *)x, b = *(const float *)y;
    return (a > b) - (a < b);
}

/* Median pairwise distance over random pairs (the median heuristic). */
static double median_distance(const float *X, size_t n, size_t d, const knn_kernels *kern, knn_rng *rng) {
    size_t m = n * (n - 1) / 2 < KT_MEDIAN_PAIRS ? n * (n - 1) / 2 : KT_MEDIAN_PAIRS;
    if (m == 0) return 1.0;
    float *v = malloc(m * sizeof *v);
    if (v == NULL) return 1.0;
    for (size_t i = 0; i < m; i++) {
        size_t a = (size_t)knn_rng_below(rng, n), b = (size_t)knn_rng_below(rng, n - 1);
        if (b >= a) b++;
        kern->l2sq_rows(X + a * d, X + b * d, 1, d, &v[i]);
    }
    qsort(v, m, sizeof *v, float_cmp);
    double med = sqrt((double)v[m / 2]);
    free(v);
    return med > 0 ? med : 1.0;
}

knn_status knn_sample_kernel_thin(const knn_sample_in *in, knn_sample_result *r, knn_error *err) {
    const size_t n = in->n;
    size_t out_n = in->target < n ? in->target : n;
    knn_rng rng;
    knn_rng_init(&rng, in->seed, 7);
    double sigma = in->opts.bandwidth > 0 ? in->opts.bandwidth : median_distance(in->X, n, in->d, in->kern, &rng);
    kt_ctx c = {in->X, in->d, (float)(1.0 / (2.0 * sigma * sigma)), in->kern, in->seed};
    int64_t *idx = malloc(n * sizeof *idx);
    if (idx == NULL) return knn_error_set(err, KNN_ENOMEM, "out of memory for kernel thinning of %zu rows", n);
    for (size_t i = 0; i < n; i++) idx[i] = (int64_t)i;
    knn_rng_shuffle(&rng, idx, n);
    knn_status s = KNN_OK;
    size_t size = n;
    if (out_n < n) {
        if (in->opts.g >= 0) {
            double cap = ldexp((double)out_n, in->opts.g);
            size_t c0 = cap < (double)n ? (size_t)cap : n;
            s = compress(&c, idx, n, c0, 0, in->threads, err);
            size = c0;
        }
        size_t T = size; /* the swap target: the compressed set (or everything) */
        for (uint64_t round = 0; s == KNN_OK && size > out_n; round++) {
            size_t next = (size + 1) / 2 > out_n ? (size + 1) / 2 : out_n;
            knn_rng hr;
            knn_rng_init(&hr, in->seed, 500 + round);
            s = halve_to(&c, idx, size, next, &hr, err);
            size = next;
        }
        if (s == KNN_OK && in->opts.kt_swap) s = kt_swap(&c, idx, T, out_n, err);
    }
    if (s == KNN_OK) {
        for (size_t i = 0; i < out_n; i++) {
            r->index[i] = idx[i];
            r->weight[i] = (double)n / (double)out_n;
        }
        r->n = out_n;
        r->bandwidth = sigma;
    }
    free(idx);
    return s;
}
