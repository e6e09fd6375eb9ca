/* k-means++ seeding and Lloyd's k-means.
 *
 * k-means++ (Arthur & Vassilvitskii 2007): the first center is a uniform row, each next one a row drawn
 * with probability proportional to D^2, its squared distance to the nearest center so far. Variants:
 * - d2:        one D^2 draw per step (the textbook algorithm, O(log k)-competitive in expectation).
 * - greedy:    `trials` D^2 candidates per step (default 2 + ln k), keeping the one that lowers the
 *              potential most; what scikit-learn's kmeans_plusplus does.
 * - rejection: RS-k-means++ (Shah, Agrawal & Jaiswal, "A New Rejection Sampling Approach to k-means++
 *              With Improved Trade-Offs"). With mu the mean and s_i = ||x_i - mu||^2, propose i with
 *              probability proportional to s_i + s_c1 (a mixture of an alias-table draw on s and a uniform
 *              draw) and accept with probability D^2(x_i)/(2(s_i + s_c1)) <= 1; accepted rows follow D^2
 *              exactly. A step costs O(|C| d) per trial instead of O(n d): O(nnz(X) + beta k^2 d) overall.
 *              After `trials` (default 1000) rejections a uniform row is taken (the paper's fallback).
 * - auto:      greedy when n*k <= 2^24 (it reaches a lower cost, and its O(n k d trials) is cheap
 *              there), rejection above (it never scans all rows per step).
 * d2 and greedy run on the nearest-center cover (sample/kcenter.c): a step is one threaded pass
 * whose 8-bit screen leaves exact distances to the few rows a center can take (greedy scores all its
 * candidates in the same pass); D^2 draws use per-block sums.
 *
 * Lloyd (1982): assign each row to its nearest centroid, move each centroid to its rows' mean; an
 * empty cluster takes the row farthest from its centroid (as scikit-learn does). Assignment is the
 * GEMM pattern of knn_scan: centroids packed dimension-major into 16-row panels, a 4x16 micro-kernel
 * of inner products, argmin of ||c||^2 - 2<x,c>, then the exact distance to the winner. Rows are split
 * over threads at fixed 64-row boundaries and sums are reduced in row order (double), so results do not
 * depend on the thread count. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/knn_parallel.h"
#include "sample/knn_sample.h"

#define ROW_BLOCK 64
#define AUTO_GREEDY_MAX (1u << 24)
#define RS_DEFAULT_TRIALS 1000

/* ---- assignment -------------------------------------------------------------------------------- */

typedef struct assign_job {
    const float *X;
    size_t n, d, k, npanels;
    const float *pack; /* npanels x d x 16 */
    const float *cn;   /* npanels*16 squared norms (+inf for padding) */
    const float *C;
    const knn_kernels *kern;
    int32_t *assign;
    float *dist2;
    double *block_cost; /* per ROW_BLOCK */
    size_t nthreads;
} assign_job;

static void assign_task(void *arg, size_t t) {
    assign_job *j = arg;
    const size_t nb = (j->n + ROW_BLOCK - 1) / ROW_BLOCK;
    const size_t b0 = nb * t / j->nthreads, b1 = nb * (t + 1) / j->nthreads;
    const size_t d = j->d;
    float tile[KNN_TILE_QUERIES * KNN_PANEL_ROWS];
    float pad[KNN_TILE_QUERIES * 1024];
    for (size_t b = b0; b < b1; b++) {
        size_t lo = b * ROW_BLOCK, hi = lo + ROW_BLOCK < j->n ? lo + ROW_BLOCK : j->n;
        double bc = 0;
        for (size_t r = lo; r < hi; r += KNN_TILE_QUERIES) {
            size_t nq = hi - r < KNN_TILE_QUERIES ? hi - r : KNN_TILE_QUERIES;
            const float *Q = j->X + r * d;
            if (nq < KNN_TILE_QUERIES && d <= 1024) { /* pad the tail so every row uses the 4-row tile */
                for (size_t i = 0; i < KNN_TILE_QUERIES; i++) {
                    memcpy(pad + i * d, j->X + (r + (i < nq ? i : nq - 1)) * d, d * sizeof(float));
                }
                Q = pad;
            }
            size_t tq = d <= 1024 ? KNN_TILE_QUERIES : nq;
            float best[KNN_TILE_QUERIES];
            int32_t arg[KNN_TILE_QUERIES];
            for (size_t i = 0; i < KNN_TILE_QUERIES; i++) {
                best[i] = INFINITY;
                arg[i] = 0;
            }
            for (size_t p = 0; p < j->npanels; p++) {
                j->kern->dot_panel(Q, tq, j->pack + p * d * KNN_PANEL_ROWS, d, tile);
                const float *cn = j->cn + p * KNN_PANEL_ROWS;
                for (size_t i = 0; i < nq; i++) {
                    for (size_t c = 0; c < KNN_PANEL_ROWS; c++) {
                        float v = cn[c] - 2.0f * tile[i * KNN_PANEL_ROWS + c];
                        if (v < best[i]) {
                            best[i] = v;
                            arg[i] = (int32_t)(p * KNN_PANEL_ROWS + c);
                        }
                    }
                }
            }
            for (size_t i = 0; i < nq; i++) {
                float dv;
                j->kern->l2sq_rows(j->X + (r + i) * d, j->C + (size_t)arg[i] * d, 1, d, &dv);
                if (j->assign) j->assign[r + i] = arg[i];
                if (j->dist2) j->dist2[r + i] = dv;
                bc += dv;
            }
        }
        j->block_cost[b] = bc;
    }
}

knn_status knn_kmeans_assign(const float *X, size_t n, size_t d, const float *C, size_t k, size_t threads,
                             const knn_kernels *kern, int32_t *assign, float *dist2, double *cost, knn_error *err) {
    size_t npanels = (k + KNN_PANEL_ROWS - 1) / KNN_PANEL_ROWS;
    size_t nb = (n + ROW_BLOCK - 1) / ROW_BLOCK;
    float *pack = calloc(npanels * d * KNN_PANEL_ROWS, sizeof *pack);
    float *cn = malloc(npanels * KNN_PANEL_ROWS * sizeof *cn);
    double *bcost = calloc(nb ? nb : 1, sizeof *bcost);
    if (!pack || !cn || !bcost) {
        free(pack);
        free(cn);
        free(bcost);
        return knn_error_set(err, KNN_ENOMEM, "out of memory assigning %zu rows to %zu centroids", n, k);
    }
    for (size_t c = 0; c < npanels * KNN_PANEL_ROWS; c++) {
        if (c >= k) {
            cn[c] = INFINITY;
            continue;
        }
        const float *v = C + c * d;
        double s = 0;
        for (size_t j = 0; j < d; j++) {
            pack[(c / KNN_PANEL_ROWS) * d * KNN_PANEL_ROWS + j * KNN_PANEL_ROWS + c % KNN_PANEL_ROWS] = v[j];
            s += (double)v[j] * v[j];
        }
        cn[c] = (float)s;
    }
    size_t nt = threads ? threads : 1;
    /* below ~2M multiply-adds per thread, threads cost more than they save */
    size_t cap = n * k * d / (1u << 21);
    if (nt > cap) nt = cap ? cap : 1;
    if (nt > nb) nt = nb ? nb : 1;
    assign_job job = {X, n, d, k, npanels, pack, cn, C, kern, assign, dist2, bcost, nt};
    knn_parallel_run(nt, assign_task, &job);
    double total = 0;
    for (size_t b = 0; b < nb; b++) total += bcost[b];
    if (cost) *cost = total;
    free(pack);
    free(cn);
    free(bcost);
    return KNN_OK;
}

/* ---- seeding ----------------------------------------------------------------------------------- */

static knn_status seed_cover(knn_cover *cv, size_t k, int greedy, size_t trials, knn_rng *rng, int64_t *out,
                             knn_error *err) {
    knn_status s = knn_cover_add(cv, (int64_t)knn_rng_below(rng, cv->n), err);
    if (s != KNN_OK) return s;
    out[0] = cv->cidx[0];
    size_t m = greedy && trials > 1 ? trials : 1;
    int64_t *cand = malloc(m * sizeof *cand);
    double *pot = malloc(m * sizeof *pot);
    if (!cand || !pot) {
        free(cand);
        free(pot);
        return knn_error_set(err, KNN_ENOMEM, "out of memory for k-means++ candidates");
    }
    for (size_t i = 1; i < k && s == KNN_OK; i++) {
        for (size_t t = 0; t < m; t++) cand[t] = knn_cover_draw(cv, rng);
        int64_t pick = cand[0];
        if (pick < 0) {
            s = knn_error_set(err, KNN_ESTATE, "k-means++ ran out of rows at center %zu", i);
            break;
        }
        if (m > 1) {
            s = knn_cover_potentials(cv, cand, m, pot, err);
            if (s != KNN_OK) break;
            double best = pot[0];
            for (size_t t = 1; t < m; t++) {
                if (pot[t] < best) {
                    best = pot[t];
                    pick = cand[t];
                }
            }
        }
        s = knn_cover_add(cv, pick, err);
        out[i] = pick;
    }
    free(cand);
    free(pot);
    return s;
}

static knn_status seed_rejection(const float *X, size_t n, size_t d, size_t k, size_t trials, knn_rng *rng,
                                 const knn_kernels *kern, int64_t *out, knn_error *err) {
    knn_status st = KNN_OK;
    double *mu = calloc(d, sizeof *mu);
    double *s = malloc(n * sizeof *s);
    float *muf = calloc(d, sizeof *muf);
    float *C = malloc(k * d * sizeof *C);
    float *buf = malloc(k * sizeof *buf);
    float *sf = malloc(n * sizeof *sf);
    unsigned char *taken = calloc(n, 1);
    knn_alias al = {0};
    if (!mu || !s || !muf || !C || !buf || !sf || !taken) {
        st = knn_error_set(err, KNN_ENOMEM, "out of memory for rejection-sampling k-means++ on %zu rows", n);
        goto cleanup;
    }
    for (size_t i = 0; i < n; i++) {
        const float *x = X + i * d;
        for (size_t j = 0; j < d; j++) mu[j] += x[j];
    }
    for (size_t j = 0; j < d; j++) muf[j] = (float)(mu[j] / (double)n);
    kern->l2sq_rows(muf, X, n, d, sf);
    double F = 0;
    for (size_t i = 0; i < n; i++) {
        s[i] = sf[i];
        F += s[i];
    }
    if (F > 0) {
        st = knn_alias_build(&al, s, n, err);
        if (st != KNN_OK) goto cleanup;
    }
    size_t c1 = (size_t)knn_rng_below(rng, n);
    out[0] = (int64_t)c1;
    taken[c1] = 1;
    memcpy(C, X + c1 * d, d * sizeof(float));
    const double sc1 = s[c1];
    const double p_alias = F > 0 ? F / (F + (double)n * sc1) : 0.0;
    for (size_t i = 1; i < k; i++) {
        int64_t pick = -1;
        for (size_t t = 0; t < trials && pick < 0; t++) {
            size_t cand = knn_rng_uniform(rng) < p_alias ? knn_alias_draw(&al, rng) : (size_t)knn_rng_below(rng, n);
            double u = knn_rng_uniform(rng);
            if (taken[cand]) continue;
            kern->l2sq_rows(X + cand * d, C, i, d, buf);
            float dmin = buf[0];
            for (size_t j = 1; j < i; j++) dmin = buf[j] < dmin ? buf[j] : dmin;
            double denom = 2.0 * (s[cand] + sc1);
            if (denom > 0 && u * denom < (double)dmin) pick = (int64_t)cand;
        }
        if (pick < 0) { /* fallback: a uniform row not yet taken */
            do pick = (int64_t)knn_rng_below(rng, n);
            while (taken[pick]);
        }
        taken[pick] = 1;
        out[i] = pick;
        memcpy(C + i * d, X + (size_t)pick * d, d * sizeof(float));
    }
cleanup:
    knn_alias_free(&al);
    free(mu);
    free(s);
    free(muf);
    free(C);
    free(buf);
    free(sf);
    free(taken);
    return st;
}

static knn_kpp_variant resolve_variant(knn_kpp_variant v, size_t n, size_t k) {
    if (v != KNN_KPP_AUTO) return v;
    return (double)n * (double)k <= (double)AUTO_GREEDY_MAX ? KNN_KPP_GREEDY : KNN_KPP_REJECTION;
}

static size_t greedy_trials(size_t trials, size_t k) { return trials ? trials : 2 + (size_t)log((double)k); }

knn_status knn_kmeanspp_seed(const float *X, size_t n, size_t d, size_t k, knn_kpp_variant variant, size_t trials,
                             knn_rng *rng, size_t threads, const knn_kernels *kern, int64_t *centers_idx,
                             knn_error *err) {
    variant = resolve_variant(variant, n, k);
    if (variant == KNN_KPP_REJECTION) {
        return seed_rejection(X, n, d, k, trials ? trials : RS_DEFAULT_TRIALS, rng, kern, centers_idx, err);
    }
    knn_cover cv;
    knn_status s = knn_cover_init(&cv, X, n, d, k, threads, kern, err);
    if (s != KNN_OK) return s;
    s = seed_cover(&cv, k, variant == KNN_KPP_GREEDY, greedy_trials(trials, k), rng, centers_idx, err);
    knn_cover_free(&cv);
    return s;
}

knn_status knn_sample_kmeanspp(const knn_sample_in *in, knn_sample_result *r, knn_error *err) {
    size_t k = in->target < in->n ? in->target : in->n;
    knn_rng rng;
    knn_rng_init(&rng, in->seed, 2);
    knn_kpp_variant v = resolve_variant(in->opts.variant, in->n, k);
    knn_status s = KNN_OK;
    if (v == KNN_KPP_REJECTION) {
        s = knn_kmeanspp_seed(in->X, in->n, in->d, k, v, in->opts.trials, &rng, in->threads, in->kern, r->index, err);
        if (s != KNN_OK) return s;
        r->n = k;
        for (size_t i = 0; i < k; i++) {
            r->cluster[i] = (int64_t)i;
            r->weight[i] = (double)in->n / (double)k;
        }
        r->cost = NAN;
        if (!in->opts.assign) return KNN_OK;
        float *C = malloc(k * in->d * sizeof *C);
        r->assign = malloc(in->n * sizeof *r->assign);
        if (!C || !r->assign) {
            free(C);
            return knn_error_set(err, KNN_ENOMEM, "out of memory assigning rows to k-means++ centers");
        }
        for (size_t i = 0; i < k; i++) memcpy(C + i * in->d, in->X + (size_t)r->index[i] * in->d, in->d * sizeof(float));
        s = knn_kmeans_assign(in->X, in->n, in->d, C, k, in->threads, in->kern, r->assign, NULL, &r->cost, err);
        free(C);
        if (s != KNN_OK) return s;
        for (size_t i = 0; i < k; i++) r->weight[i] = 0;
        for (size_t i = 0; i < in->n; i++) r->weight[r->assign[i]] += 1;
        return KNN_OK;
    }
    knn_cover cv;
    s = knn_cover_init(&cv, in->X, in->n, in->d, k, in->threads, in->kern, err);
    if (s != KNN_OK) return s;
    s = seed_cover(&cv, k, v == KNN_KPP_GREEDY, greedy_trials(in->opts.trials, k), &rng, r->index, err);
    if (s == KNN_OK) {
        r->n = k;
        knn_cover_sizes(&cv, r->weight);
        for (size_t i = 0; i < k; i++) {
            r->cluster[i] = (int64_t)i;
            r->weight[i] += 1.0;
        }
        r->cost = knn_cover_potential(&cv);
        if (in->opts.assign) {
            r->assign = malloc(in->n * sizeof *r->assign);
            if (r->assign == NULL) s = knn_error_set(err, KNN_ENOMEM, "out of memory for the assignment");
            else memcpy(r->assign, cv.owner, in->n * sizeof *r->assign);
        }
    }
    knn_cover_free(&cv);
    return s;
}

/* ---- Lloyd ------------------------------------------------------------------------------------- */

void knn_kmeans_fit_free(knn_kmeans_fit *fit) {
    free(fit->C);
    free(fit->assign);
    free(fit->dist2);
    memset(fit, 0, sizeof *fit);
}

knn_status knn_kmeans_run(const float *X, size_t n, size_t d, size_t k, size_t iters, knn_kpp_variant init,
                          size_t trials, knn_rng *rng, size_t threads, const knn_kernels *kern, knn_kmeans_fit *fit,
                          knn_error *err) {
    memset(fit, 0, sizeof *fit);
    if (k > n) k = n;
    fit->k = k;
    fit->C = malloc(k * d * sizeof *fit->C);
    fit->assign = malloc(n * sizeof *fit->assign);
    fit->dist2 = malloc(n * sizeof *fit->dist2);
    int64_t *seeds = malloc(k * sizeof *seeds);
    double *sums = malloc(k * d * sizeof *sums);
    size_t *counts = malloc(k * sizeof *counts);
    knn_status s = KNN_OK;
    if (!fit->C || !fit->assign || !fit->dist2 || !seeds || !sums || !counts) {
        s = knn_error_set(err, KNN_ENOMEM, "out of memory for k-means with k = %zu on %zu rows", k, n);
        goto cleanup;
    }
    s = knn_kmeanspp_seed(X, n, d, k, init, trials, rng, threads, kern, seeds, err);
    if (s != KNN_OK) goto cleanup;
    for (size_t c = 0; c < k; c++) memcpy(fit->C + c * d, X + (size_t)seeds[c] * d, d * sizeof(float));
    for (size_t it = 0; it < iters; it++) {
        s = knn_kmeans_assign(X, n, d, fit->C, k, threads, kern, fit->assign, fit->dist2, &fit->cost, err);
        if (s != KNN_OK) goto cleanup;
        memset(sums, 0, k * d * sizeof *sums);
        memset(counts, 0, k * sizeof *counts);
        for (size_t i = 0; i < n; i++) {
            size_t a = (size_t)fit->assign[i];
            const float *x = X + i * d;
            double *sm = sums + a * d;
            for (size_t j = 0; j < d; j++) sm[j] += x[j];
            counts[a]++;
        }
        for (size_t c = 0; c < k; c++) {
            if (counts[c] == 0) { /* relocate to the row farthest from its centroid */
                size_t far = 0;
                for (size_t i = 1; i < n; i++) {
                    if (fit->dist2[i] > fit->dist2[far]) far = i;
                }
                fit->dist2[far] = -1.0f;
                memcpy(fit->C + c * d, X + far * d, d * sizeof(float));
                continue;
            }
            for (size_t j = 0; j < d; j++) fit->C[c * d + j] = (float)(sums[c * d + j] / (double)counts[c]);
        }
        fit->iters = it + 1;
    }
    s = knn_kmeans_assign(X, n, d, fit->C, k, threads, kern, fit->assign, fit->dist2, &fit->cost, err);
cleanup:
    free(seeds);
    free(sums);
    free(counts);
    if (s != KNN_OK) knn_kmeans_fit_free(fit);
    return s;
}

knn_status knn_sample_kmeans(const knn_sample_in *in, knn_sample_result *r, knn_error *err) {
    knn_rng rng;
    knn_rng_init(&rng, in->seed, 3);
    knn_kmeans_fit fit;
    size_t iters = in->opts.iters ? in->opts.iters : 20;
    knn_status s = knn_kmeans_run(in->X, in->n, in->d, in->target, iters, in->opts.variant, in->opts.trials, &rng,
                                  in->threads, in->kern, &fit, err);
    if (s != KNN_OK) return s;
    /* the sample: the row nearest each centroid, weighted by its cluster's size */
    const size_t k = fit.k;
    int64_t *near = malloc(k * sizeof *near);
    float *nd = malloc(k * sizeof *nd);
    double *cnt = calloc(k, sizeof *cnt);
    if (!near || !nd || !cnt) {
        free(near);
        free(nd);
        free(cnt);
        knn_kmeans_fit_free(&fit);
        return knn_error_set(err, KNN_ENOMEM, "out of memory for k-means picks");
    }
    for (size_t c = 0; c < k; c++) {
        near[c] = -1;
        nd[c] = INFINITY;
    }
    for (size_t i = 0; i < in->n; i++) {
        size_t a = (size_t)fit.assign[i];
        cnt[a] += 1;
        if (fit.dist2[i] < nd[a]) {
            nd[a] = fit.dist2[i];
            near[a] = (int64_t)i;
        }
    }
    for (size_t c = 0; c < k; c++) {
        if (near[c] < 0) continue; /* an empty final cluster has no row to stand for it */
        r->index[r->n] = near[c];
        r->weight[r->n] = cnt[c];
        r->score[r->n] = sqrt((double)nd[c]);
        r->cluster[r->n] = (int64_t)c;
        r->n++;
    }
    free(near);
    free(nd);
    free(cnt);
    r->centroids = fit.C;
    r->n_centroids = k;
    r->assign = fit.assign;
    r->cost = fit.cost;
    r->iters = fit.iters;
    fit.C = NULL;
    fit.assign = NULL;
    knn_kmeans_fit_free(&fit);
    return KNN_OK;
}
