/* Precision / recall of a generated set F against a real set R, from kNN balls.
 *
 * Each point's ball has as radius the distance to its k-th neighbour in its own set (itself left out).
 *   precision  share of F inside the union of R's balls          (Kynkäänniemi et al., NeurIPS 2019)
 *   recall     share of R inside the union of F's balls          (same)
 *   density    (1 / (k |F|)) sum over F of the number of R balls holding it  (Naeem et al., ICML 2020)
 *   coverage   share of R whose ball holds at least one point of F          (same)
 *   p_precision, p_recall: P-precision / P-recall (Park & Kim, ICCV 2023; digest C4). A reference point x
 *              supports y with probability max(0, 1 - |y - x| / rho), rho = a * mean k-NN distance of the
 *              reference set (a = 1.2 here); P-precision = mean over F of 1 - prod_x (1 - P_x(y)) with R as
 *              reference, P-recall the same with the roles swapped.
 *   sym_precision, sym_recall: Khayatkhoei & AbdAlmageed (ICML 2023, digest C5), who show the ball metrics
 *              turn asymmetric in high dimension: sym_precision = min(precision, comp_precision), comp_precision
 *              the share of F whose own ball holds a point of R; sym_recall = min(recall, coverage). Checked
 *              equal to the paper's public code (manifmetric.py) in tests/core/test_analytics.py; that code
 *              uses open balls (<), ours are closed (<=) as in Kynkäänniemi's: they differ only for points
 *              exactly on a ball's edge (duplicates, integer grids).
 * Ball membership compares distances in the metric (squared L2 for l2); P-scores use Euclidean scale.
 * Every pairwise distance is computed once per direction with the row kernels, queries split over
 * threads; each query's result depends only on its own row, so results do not depend on threads. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/knn_kernels.h"
#include "analytics/knn_analytics.h"
#include "base/knn_parallel.h"

#define PP_A 1.2
#define PASS_BLOCK 1024

typedef struct pass_task {
    const knn_kernels *kern;
    knn_metric metric;
    const float *A, *B;
    const float *b_norm2;
    size_t na, nb, d, nthreads;
    const float *rB;      /* ball radii of B (metric units) */
    double rho;           /* P-score radius (Euclidean scale) */
    size_t *inside;       /* na: balls of B holding a */
    float *mind;          /* na: distance to the nearest b */
    double *logmiss;      /* na: sum log(1 - P_b(a)) */
    int oom;
} pass_task;

static void pass_run(void *arg, size_t t) {
    pass_task *p = arg;
    size_t lo = p->na * t / p->nthreads, hi = p->na * (t + 1) / p->nthreads;
    float *buf = malloc(PASS_BLOCK * sizeof *buf);
    if (!buf) {
        p->oom = 1;
        return;
    }
    for (size_t i = lo; i < hi; i++) {
        const float *a = p->A + i * p->d;
        float an = 0, dummy;
        p->kern->dot_norm_rows(a, a, 1, p->d, &dummy, &an);
        size_t inside = 0;
        float mind = INFINITY;
        double lm = 0;
        for (size_t b0 = 0; b0 < p->nb; b0 += PASS_BLOCK) {
            size_t nb = p->nb - b0 < PASS_BLOCK ? p->nb - b0 : PASS_BLOCK;
            const float *B = p->B + b0 * p->d;
            if (p->metric == KNN_METRIC_L2) {
                p->kern->l2sq_rows(a, B, nb, p->d, buf);
            } else {
                p->kern->dot_rows(a, B, nb, p->d, buf);
                for (size_t j = 0; j < nb; j++) {
                    if (p->metric == KNN_METRIC_IP) {
                        buf[j] = -buf[j];
                    } else {
                        float xn = p->b_norm2[b0 + j];
                        float c = (xn > 0 && an > 0) ? buf[j] / sqrtf(an * xn) : 0.0f;
                        float dd = 1.0f - c;
                        buf[j] = dd < 0 ? 0 : dd;
                    }
                }
            }
            for (size_t j = 0; j < nb; j++) {
                float dj = buf[j];
                inside += dj <= p->rB[b0 + j];
                if (dj < mind) mind = dj;
                double pj = 1.0 - knn_an_scale(p->metric, dj) / p->rho;
                if (pj > 0) lm += pj >= 1.0 ? -INFINITY : log1p(-pj);
            }
        }
        p->inside[i] = inside;
        p->mind[i] = mind;
        p->logmiss[i] = lm;
    }
    free(buf);
}

static knn_status ball_pass(const knn_kernels *kern, knn_metric metric, const float *A, size_t na, const float *B,
                            size_t nb, size_t d, const float *rB, double rho, size_t threads, size_t *inside,
                            float *mind, double *logmiss, knn_error *err) {
    float *bn = NULL;
    if (metric == KNN_METRIC_COSINE) {
        bn = malloc(nb * sizeof *bn);
        if (!bn) return knn_error_set(err, KNN_ENOMEM, "knn_precision_recall: out of memory");
        for (size_t j = 0; j < nb; j++) {
            float dummy;
            kern->dot_norm_rows(B + j * d, B + j * d, 1, d, &dummy, &bn[j]);
        }
    }
    size_t nt = threads ? threads : knn_cpu_count();
    if (nt > na) nt = na ? na : 1;
    pass_task p = {kern, metric, A, B, bn, na, nb, d, nt, rB, rho, inside, mind, logmiss, 0};
    knn_parallel_run(nt, pass_run, &p);
    free(bn);
    if (p.oom) return knn_error_set(err, KNN_ENOMEM, "knn_precision_recall: out of memory");
    return KNN_OK;
}

int knn_an_precision_recall(const float *R, size_t n, const float *F, size_t m, size_t d, const char *metric,
                            size_t k, size_t threads, double *out, char *errmsg, size_t errmsg_len) {
    knn_error err;
    knn_error_clear(&err);
    knn_metric met;
    const char *fn = "knn_precision_recall";
    int64_t *ids = NULL;
    float *dr = NULL, *df = NULL, *rR = NULL, *rF = NULL, *mindF = NULL, *mindR = NULL;
    size_t *inF = NULL, *inR = NULL;
    double *lmF = NULL, *lmR = NULL;
    for (int i = 0; i < 8; i++) out[i] = NAN;
    if (knn_an_metric(fn, metric, &met, &err) != KNN_OK) goto cleanup;
    if (n == 0 || m == 0) {
        knn_error_set(&err, KNN_EINVAL, "%s: both the real and the generated set need rows (got %zu and %zu)", fn, n, m);
        goto cleanup;
    }
    if (k == 0 || k >= n || k >= m) {
        knn_error_set(&err, KNN_EINVAL, "%s: k must be >= 1 and smaller than both set sizes (got k = %zu, %zu real, "
                      "%zu generated rows)", fn, k, n, m);
        goto cleanup;
    }
    size_t big = n > m ? n : m;
    ids = malloc(big * k * sizeof *ids);
    dr = malloc(n * k * sizeof *dr);
    df = malloc(m * k * sizeof *df);
    rR = malloc(n * sizeof *rR);
    rF = malloc(m * sizeof *rF);
    mindF = malloc(m * sizeof *mindF);
    mindR = malloc(n * sizeof *mindR);
    inF = malloc(m * sizeof *inF);
    inR = malloc(n * sizeof *inR);
    lmF = malloc(m * sizeof *lmF);
    lmR = malloc(n * sizeof *lmR);
    if (!ids || !dr || !df || !rR || !rF || !mindF || !mindR || !inF || !inR || !lmF || !lmR) {
        knn_error_set(&err, KNN_ENOMEM, "%s: out of memory", fn);
        goto cleanup;
    }
    if (knn_an_neighbors_e(R, n, NULL, 0, d, met, k, 1, threads, ids, dr, &err) != KNN_OK) goto cleanup;
    if (knn_an_neighbors_e(F, m, NULL, 0, d, met, k, 1, threads, ids, df, &err) != KNN_OK) goto cleanup;
    double rhoR = 0, rhoF = 0;
    for (size_t i = 0; i < n; i++) {
        rR[i] = dr[i * k + k - 1];
        rhoR += knn_an_scale(met, rR[i]);
    }
    for (size_t i = 0; i < m; i++) {
        rF[i] = df[i * k + k - 1];
        rhoF += knn_an_scale(met, rF[i]);
    }
    rhoR = PP_A * rhoR / (double)n;
    rhoF = PP_A * rhoF / (double)m;
    if (!(rhoR > 0)) rhoR = 1e-30;
    if (!(rhoF > 0)) rhoF = 1e-30;
    const knn_kernels *kern = knn_kernels_best();
    /* fakes against real balls, reals against fake balls */
    if (ball_pass(kern, met, F, m, R, n, d, rR, rhoR, threads, inF, mindF, lmF, &err) != KNN_OK) goto cleanup;
    if (ball_pass(kern, met, R, n, F, m, d, rF, rhoF, threads, inR, mindR, lmR, &err) != KNN_OK) goto cleanup;
    double prec = 0, dens = 0, pp = 0, own = 0;
    for (size_t j = 0; j < m; j++) {
        prec += inF[j] > 0;
        dens += (double)inF[j];
        pp += 1.0 - exp(lmF[j]);
        own += mindF[j] <= rF[j];
    }
    double rec = 0, cov = 0, pr = 0;
    for (size_t i = 0; i < n; i++) {
        rec += inR[i] > 0;
        cov += mindR[i] <= rR[i];
        pr += 1.0 - exp(lmR[i]);
    }
    out[0] = prec / (double)m;
    out[1] = rec / (double)n;
    out[2] = dens / ((double)k * (double)m);
    out[3] = cov / (double)n;
    out[4] = pp / (double)m;
    out[5] = pr / (double)n;
    out[6] = fmin(out[0], own / (double)m);
    out[7] = fmin(out[1], out[3]);
cleanup:
    free(ids);
    free(dr);
    free(df);
    free(rR);
    free(rF);
    free(mindF);
    free(mindR);
    free(inF);
    free(inR);
    free(lmF);
    free(lmR);
    return knn_error_export(&err, errmsg, errmsg_len);
}
