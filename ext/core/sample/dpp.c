/* k-DPP sampling (Kulesza & Taskar, "k-DPPs: Fixed-Size Determinantal Point Processes", ICML 2011;
 * digest: Nouy & Michel's DPP/volume sampling for weighted least squares).
 *
 * The kernel is low rank, L = F F^T with features F (n x r): the rows themselves for kernel=linear
 * (r = d), or r random Fourier features of the Gaussian kernel for kernel=rbf (Rahimi & Recht 2007;
 * r default max(64, 2 n_picks) capped at 1024, sigma by the median heuristic). Sampling is exact for L:
 *   1. eigendecompose the dual C = F^T F (r x r, Householder + implicit QL, double: sample/symeig.c);
 *   2. choose k eigenvectors by the elementary symmetric polynomials of the eigenvalues (their
 *      Algorithm 8; long double, eigenvalues scaled to mean 1, which leaves a k-DPP unchanged);
 *   3. map them to the primal, V = F v / sqrt(lambda) (n x k, orthonormal), and draw rows one by one
 *      with probability ||V_i||^2 / |V|, projecting V onto the complement of e_i each time (their
 *      Algorithm 1), O(n k^2) per draw.
 * With fewer rows than features, L's n x n eigendecomposition gives n equivalent features first (the
 * same kernel), so small inputs never pay for a large rank. An explicit rank over 1024 is an error.
 * n_picks larger than the kernel's rank returns rank rows. cost reports log det(L_S) of the picks, the
 * quantity a DPP favours. V needs n * n_picks floats, limited to 2^27; sample a subset first beyond it. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "sample/knn_sample.h"
#include "sample/symeig.h"

#define DPP_MAX_RANK 1024
#define DPP_MAX_V (1u << 27)

static int float_cmp(const void *x, const void *y) {
    float a = *(const float *)x, b = *(const float *)y;
    return (a > b) - (a < b);
}

static double median_dist(const float *X, size_t n, size_t d, const knn_kernels *kern, knn_rng *rng) {
    size_t m = 2048;
    float v[2048];
    if (n < 2) return 1.0;
    for (size_t i = 0; i < m; i++) {
        size_t a = (size_t)knn_rng_below(rng, n), b = (size_t)knn_rng_below(rng, n - 1);
        if (b >= a) b++;
        kern->l2sq_rows(X + a * d, X + b * d, 1, d, &v[i]);
    }
    qsort(v, m, sizeof *v, float_cmp);
    return v[m / 2] > 0 ? sqrt((double)v[m / 2]) : 1.0;
}

/* log det of F_S F_S^T (k x k) by Cholesky; -inf when singular. */
static double logdet_picks(const float *F, size_t r, const int64_t *S, size_t k) {
    double *G = malloc(k * k * sizeof *G);
    if (G == NULL) return NAN;
    for (size_t a = 0; a < k; a++)
        for (size_t b = 0; b <= a; b++) {
            double s = 0;
            const float *x = F + (size_t)S[a] * r, *y = F + (size_t)S[b] * r;
            for (size_t j = 0; j < r; j++) s += (double)x[j] * y[j];
            G[a * k + b] = G[b * k + a] = s;
        }
    double ld = 0;
    for (size_t j = 0; j < k; j++) {
        double s = G[j * k + j];
        for (size_t p = 0; p < j; p++) s -= G[j * k + p] * G[j * k + p];
        if (!(s > 0)) {
            free(G);
            return -INFINITY;
        }
        double l = sqrt(s);
        G[j * k + j] = l;
        ld += 2 * log(l);
        for (size_t i = j + 1; i < k; i++) {
            double t = G[i * k + j];
            for (size_t p = 0; p < j; p++) t -= G[i * k + p] * G[j * k + p];
            G[i * k + j] = t / l;
        }
    }
    free(G);
    return ld;
}

knn_status knn_sample_dpp(const knn_sample_in *in, knn_sample_result *r, knn_error *err) {
    const size_t n = in->n, d = in->d;
    knn_rng rng;
    knn_rng_init(&rng, in->seed, 8);
    size_t rank = in->opts.dpp_rbf ? (in->opts.rank ? in->opts.rank : 2 * in->target) : d;
    if (in->opts.dpp_rbf && rank < 64) rank = 64;
    if (rank > DPP_MAX_RANK) {
        if (!in->opts.dpp_rbf) {
            return knn_error_set(err, KNN_EINVAL, "kernel=linear needs dim <= %d, got %zu; use kernel=rbf with a "
                                 "rank", DPP_MAX_RANK, d);
        }
        if (in->opts.rank) { /* asked for: refuse rather than quietly give less */
            return knn_error_set(err, KNN_EINVAL, "rank=%zu is over the limit of %d random features; pass rank <= %d",
                                 in->opts.rank, DPP_MAX_RANK, DPP_MAX_RANK);
        }
        rank = DPP_MAX_RANK; /* the default (2 x picks) capped */
    }
    size_t k = in->target < n ? in->target : n;
    if (k > rank) k = rank;
    if ((double)n * (double)k > (double)DPP_MAX_V) {
        return knn_error_set(err, KNN_EINVAL, "dpp of %zu picks over %zu rows needs %zu x %zu floats, over the "
                             "limit of 2^27; sample a subset first", k, n, n, k);
    }
    knn_status s = KNN_OK;
    float *F = NULL, *V = NULL;
    double *C = NULL, *w = NULL, *E = NULL, *evec = NULL, *p = NULL;
    long double *esp = NULL;
    size_t *sel = NULL;
    const float *Fp = in->X;
    double sigma = NAN;
    if (in->opts.dpp_rbf) {
        sigma = in->opts.bandwidth > 0 ? in->opts.bandwidth : median_dist(in->X, n, d, in->kern, &rng);
        F = malloc(n * rank * sizeof *F);
        float *W = malloc(rank * d * sizeof *W), *b = malloc(rank * sizeof *b);
        if (!F || !W || !b) {
            free(W);
            free(b);
            goto oom;
        }
        for (size_t j = 0; j < rank; j++) {
            for (size_t t = 0; t < d; t++) W[j * d + t] = (float)(knn_rng_normal(&rng) / sigma);
            b[j] = (float)(knn_rng_uniform(&rng) * 6.283185307179586);
        }
        const float scale = (float)sqrt(2.0 / (double)rank);
        float *dots = malloc(rank * sizeof *dots);
        if (!dots) {
            free(W);
            free(b);
            goto oom;
        }
        for (size_t i = 0; i < n; i++) {
            in->kern->dot_rows(in->X + i * d, W, rank, d, dots);
            for (size_t j = 0; j < rank; j++) F[i * rank + j] = scale * cosf(dots[j] + b[j]);
        }
        free(dots);
        free(W);
        free(b);
        Fp = F;
    }
    if (n < rank) {
        /* More features than rows: L = F F^T has rank <= n, so work with n features instead, the rows of
         * U sqrt(Lambda) for L = U Lambda U^T (n x n Jacobi). Same kernel, so the same k-DPP, at O(n^3)
         * instead of O(rank^3): 50 rows at rank 512 took a minute through the dual. */
        double *L = calloc(n * n, sizeof *L), *lw = malloc(n * sizeof *lw), *U = malloc(n * n * sizeof *U);
        float *G = malloc(n * n * sizeof *G);
        if (!L || !lw || !U || !G) {
            free(L);
            free(lw);
            free(U);
            free(G);
            goto oom;
        }
        for (size_t i = 0; i < n; i++) {
            for (size_t j = i; j < n; j++) {
                double t = 0;
                for (size_t a = 0; a < rank; a++) t += (double)Fp[i * rank + a] * Fp[j * rank + a];
                L[i * n + j] = L[j * n + i] = t;
            }
        }
        knn_status es = knn_symeig(L, n, lw, U, err);
        if (es != KNN_OK) {
            free(L);
            free(lw);
            free(U);
            free(G);
            s = es;
            goto cleanup;
        }
        for (size_t i = 0; i < n; i++)
            for (size_t j = 0; j < n; j++) G[i * n + j] = (float)(U[i * n + j] * sqrt(lw[j] > 0 ? lw[j] : 0));
        free(L);
        free(lw);
        free(U);
        free(F);
        F = G;
        Fp = F;
        rank = n;
        if (k > rank) k = rank;
    }
    C = calloc(rank * rank, sizeof *C);
    w = malloc(rank * sizeof *w);
    evec = malloc(rank * rank * sizeof *evec);
    if (!C || !w || !evec) goto oom;
    for (size_t i = 0; i < n; i++) {
        const float *f = Fp + i * rank;
        for (size_t a = 0; a < rank; a++) {
            double fa = f[a];
            if (fa == 0) continue;
            double *row = C + a * rank;
            for (size_t b2 = a; b2 < rank; b2++) row[b2] += fa * f[b2];
        }
    }
    for (size_t a = 0; a < rank; a++)
        for (size_t b2 = 0; b2 < a; b2++) C[a * rank + b2] = C[b2 * rank + a];
    if ((s = knn_symeig(C, rank, w, evec, err)) != KNN_OK) goto cleanup;
    double wmax = 0, wsum = 0;
    for (size_t j = 0; j < rank; j++) wmax = w[j] > wmax ? w[j] : wmax;
    size_t pos = 0;
    for (size_t j = 0; j < rank; j++) {
        if (w[j] > 1e-9 * wmax) {
            pos++;
            wsum += w[j];
        } else {
            w[j] = 0;
        }
    }
    if (pos == 0) {
        s = knn_error_set(err, KNN_EDATA, "the kernel matrix is zero (all rows zero?); nothing to sample");
        goto cleanup;
    }
    if (k > pos) k = pos;
    /* elementary symmetric polynomials e_l over the first m eigenvalues, scaled to mean 1 */
    esp = malloc((k + 1) * (rank + 1) * sizeof *esp);
    sel = malloc(k * sizeof *sel);
    if (!esp || !sel) goto oom;
    const double mean = wsum / (double)pos;
#define ESP(l, m) esp[(size_t)(l) * (rank + 1) + (m)]
    for (size_t m = 0; m <= rank; m++) ESP(0, m) = 1.0L;
    for (size_t l = 1; l <= k; l++) {
        ESP(l, 0) = 0.0L;
        for (size_t m = 1; m <= rank; m++) ESP(l, m) = ESP(l, m - 1) + (long double)(w[m - 1] / mean) * ESP(l - 1, m - 1);
    }
    size_t need = k, ns = 0;
    for (size_t m = rank; m > 0 && need > 0; m--) {
        long double lam = (long double)(w[m - 1] / mean);
        long double pm = lam * ESP(need - 1, m - 1) / ESP(need, m);
        if ((long double)knn_rng_uniform(&rng) < pm) {
            sel[ns++] = m - 1;
            need--;
        }
    }
#undef ESP
    k = ns;
    V = malloc(n * (k ? k : 1) * sizeof *V);
    p = malloc(n * sizeof *p);
    double *col = malloc((k ? k : 1) * sizeof *col);
    if (!V || !p || !col) {
        free(col);
        goto oom;
    }
    for (size_t c = 0; c < k; c++) {
        size_t j = sel[c];
        double inv = 1.0 / sqrt(w[j]);
        for (size_t i = 0; i < n; i++) {
            const float *f = Fp + i * rank;
            double sum = 0;
            for (size_t a = 0; a < rank; a++) sum += (double)f[a] * evec[a * rank + j];
            V[i * k + c] = (float)(sum * inv);
        }
    }
    /* sequential draws; V holds `cols` orthonormal columns in its first positions */
    size_t cols = k;
    for (size_t t = 0; t < k; t++) {
        double total = 0;
        for (size_t i = 0; i < n; i++) {
            double q = 0;
            for (size_t c = 0; c < cols; c++) q += (double)V[i * k + c] * V[i * k + c];
            p[i] = q;
            total += q;
        }
        double u = knn_rng_uniform(&rng) * total;
        size_t pick = n - 1;
        for (size_t i = 0; i < n; i++) {
            if (u < p[i]) {
                pick = i;
                break;
            }
            u -= p[i];
        }
        r->index[t] = (int64_t)pick;
        r->weight[t] = (double)n / (double)k;
        r->score[t] = p[pick];
        r->n = t + 1;
        /* eliminate: the column with the largest |V[pick, c]| absorbs e_pick */
        size_t jc = 0;
        for (size_t c = 1; c < cols; c++) {
            if (fabsf(V[pick * k + c]) > fabsf(V[pick * k + jc])) jc = c;
        }
        double vj = V[pick * k + jc];
        for (size_t c = 0; c < cols; c++) col[c] = V[pick * k + c] / vj;
        for (size_t i = 0; i < n; i++) {
            float *row = V + i * k;
            float a = row[jc];
            for (size_t c = 0; c < cols; c++) row[c] -= (float)(a * col[c]);
            row[jc] = row[cols - 1];
        }
        cols--;
        /* re-orthonormalise the remaining columns (modified Gram-Schmidt) */
        for (size_t c = 0; c < cols; c++) {
            for (size_t e = 0; e < c; e++) {
                double dot = 0;
                for (size_t i = 0; i < n; i++) dot += (double)V[i * k + c] * V[i * k + e];
                for (size_t i = 0; i < n; i++) V[i * k + c] -= (float)(dot * V[i * k + e]);
            }
            double nn = 0;
            for (size_t i = 0; i < n; i++) nn += (double)V[i * k + c] * V[i * k + c];
            double inv = nn > 0 ? 1.0 / sqrt(nn) : 0;
            for (size_t i = 0; i < n; i++) V[i * k + c] *= (float)inv;
        }
    }
    free(col);
    r->cost = logdet_picks(Fp, rank, r->index, r->n);
    r->bandwidth = sigma;
    goto cleanup;
oom:
    s = knn_error_set(err, KNN_ENOMEM, "out of memory for a k-DPP over %zu rows", n);
cleanup:
    free(F);
    free(V);
    free(C);
    free(w);
    free(E);
    free(evec);
    free(p);
    free(esp);
    free(sel);
    return s;
}
