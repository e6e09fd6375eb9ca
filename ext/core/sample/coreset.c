/* Clustering-based selection: a sensitivity-sampling coreset and balanced hierarchical curation.
 *
 * sensitivity (Axiotis et al., "Data-Efficient Learning via Clustering-Based Sensitivity Sampling";
 * the classic k-means sensitivity bound of Feldman & Langberg / Bachem et al.): run k-means (k default
 * min(100, max(1, n_picks/4)), 10 Lloyd iterations), then give row i the sensitivity
 *     s_i = cost_i / Phi + 1 / (k_eff |C(i)|)      (cost_i = ||x_i - c(i)||^2, Phi = sum of cost_i),
 * draw n rows i.i.d. with p_i = s_i / sum s (alias table), and weight each draw 1 / (n p_i). A row drawn
 * more than once appears once with the summed weight, so sum(weight * f(x)) is an unbiased estimate of
 * sum f(x) over all rows (for the k-means cost of any centers, within (1 +- eps) w.h.p. for n ~ k/eps^2).
 *
 * balanced (Vo et al., "Automatic Data Curation for Self-Supervised Learning: A Clustering-Based
 * Approach"): k-means on the rows (the finest level), then k-means on that level's centroids for each
 * coarser level, giving a tree. The budget is split top-down: each node shares its budget equally among
 * its children, a child smaller than its share gives all its rows and the surplus goes to the others
 * (water-filling, children taken from smallest). Leaves pick random rows (default) or those closest to
 * the centroid. weight = leaf size / picks in the leaf; picks are ordered round-robin over leaves so any
 * prefix stays balanced. Default levels: one level of ~sqrt(n) clusters (at most n/4). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "sample/knn_sample.h"

knn_status knn_sample_sensitivity(const knn_sample_in *in, knn_sample_result *r, knn_error *err) {
    size_t k = in->opts.k ? in->opts.k : in->target / 4;
    if (k > 100 && !in->opts.k) k = 100;
    if (k < 1) k = 1;
    if (k > in->n) k = in->n;
    knn_rng rng;
    knn_rng_init(&rng, in->seed, 5);
    knn_kmeans_fit fit;
    knn_status s = knn_kmeans_run(in->X, in->n, in->d, k, in->opts.iters ? in->opts.iters : 10, KNN_KPP_AUTO, 0, &rng,
                                  in->threads, in->kern, &fit, err);
    if (s != KNN_OK) return s;
    double *p = malloc(in->n * sizeof *p);
    double *size = calloc(fit.k, sizeof *size);
    double *wsum = calloc(in->n, sizeof *wsum);
    knn_alias al = {0};
    if (!p || !size || !wsum) {
        s = knn_error_set(err, KNN_ENOMEM, "out of memory for sensitivities of %zu rows", in->n);
        goto cleanup;
    }
    size_t nonempty = 0;
    for (size_t i = 0; i < in->n; i++) size[fit.assign[i]] += 1;
    for (size_t c = 0; c < fit.k; c++) nonempty += size[c] > 0;
    double phi = fit.cost;
    double total = 0;
    for (size_t i = 0; i < in->n; i++) {
        double si = 1.0 / ((double)nonempty * size[fit.assign[i]]);
        if (phi > 0) si += fit.dist2[i] / phi;
        p[i] = si;
        total += si;
    }
    for (size_t i = 0; i < in->n; i++) p[i] /= total;
    s = knn_alias_build(&al, p, in->n, err);
    if (s != KNN_OK) goto cleanup;
    const double m = (double)in->target;
    for (size_t t = 0; t < in->target; t++) {
        size_t i = knn_alias_draw(&al, &rng);
        if (wsum[i] == 0) {
            r->index[r->n] = (int64_t)i;
            r->cluster[r->n] = fit.assign[i];
            r->score[r->n] = p[i];
            r->n++;
        }
        wsum[i] += 1.0 / (m * p[i]);
    }
    for (size_t j = 0; j < r->n; j++) r->weight[j] = wsum[r->index[j]];
    r->cost = fit.cost;
cleanup:
    knn_alias_free(&al);
    free(p);
    free(size);
    free(wsum);
    knn_kmeans_fit_free(&fit);
    return s;
}

/* ---- balanced ---------------------------------------------------------------------------------- */

typedef struct child_ref {
    size_t cap;
    size_t id;
} child_ref;

static int child_cmp(const void *x, const void *y) {
    const child_ref *a = x, *b = y;
    if (a->cap != b->cap) return a->cap < b->cap ? -1 : 1;
    return (a->id > b->id) - (a->id < b->id);
}

/* Water-filling split of budget over children (capacities cap): out[id] = share. */
static void split_budget(child_ref *ch, size_t nch, size_t budget, size_t *out) {
    qsort(ch, nch, sizeof *ch, child_cmp);
    size_t left = budget;
    for (size_t i = 0; i < nch; i++) {
        size_t rem = nch - i;
        size_t share = (left + rem - 1) / rem;
        size_t take = ch[i].cap < share ? ch[i].cap : share;
        out[ch[i].id] = take;
        left -= take;
    }
}

typedef struct pick_rank {
    size_t rank, leaf;
    int64_t row;
} pick_rank;

static int pick_cmp(const void *x, const void *y) {
    const pick_rank *a = x, *b = y;
    if (a->rank != b->rank) return a->rank < b->rank ? -1 : 1;
    return (a->leaf > b->leaf) - (a->leaf < b->leaf);
}

typedef struct dist_row {
    float dist;
    int32_t row;
} dist_row;

static int dist_row_cmp(const void *x, const void *y) {
    const dist_row *a = x, *b = y;
    if (a->dist != b->dist) return a->dist < b->dist ? -1 : 1;
    return (a->row > b->row) - (a->row < b->row);
}

knn_status knn_sample_balanced(const knn_sample_in *in, knn_sample_result *r, knn_error *err) {
    const size_t n = in->n;
    size_t levels[KNN_SAMPLE_MAX_LEVELS];
    size_t nl = in->opts.n_levels;
    if (nl) {
        memcpy(levels, in->opts.levels, nl * sizeof *levels);
    } else {
        size_t k1 = (size_t)ceil(sqrt((double)n));
        if (k1 > n / 4) k1 = n / 4;
        if (k1 < 1) k1 = 1;
        levels[0] = k1;
        nl = 1;
    }
    if (levels[0] > n) levels[0] = n;
    for (size_t l = 1; l < nl; l++) {
        if (levels[l] > levels[l - 1]) levels[l] = levels[l - 1];
    }
    knn_rng rng;
    knn_rng_init(&rng, in->seed, 6);
    knn_kmeans_fit fits[KNN_SAMPLE_MAX_LEVELS];
    memset(fits, 0, sizeof fits);
    size_t iters = in->opts.iters ? in->opts.iters : 10;
    knn_status s = KNN_OK;
    size_t *cap[KNN_SAMPLE_MAX_LEVELS] = {0}, *bud[KNN_SAMPLE_MAX_LEVELS] = {0};
    child_ref *ch = NULL;
    int32_t *order = NULL, *start = NULL;
    dist_row *tmp = NULL;
    pick_rank *picks = NULL;
    size_t *leaf_n = NULL;
    for (size_t l = 0; l < nl && s == KNN_OK; l++) {
        const float *X = l == 0 ? in->X : fits[l - 1].C;
        size_t rows = l == 0 ? n : fits[l - 1].k;
        s = knn_kmeans_run(X, rows, in->d, levels[l], iters, KNN_KPP_AUTO, 0, &rng, in->threads, in->kern, &fits[l],
                           err);
    }
    if (s != KNN_OK) goto cleanup;
    /* capacities: rows under each node */
    for (size_t l = 0; l < nl; l++) {
        cap[l] = calloc(fits[l].k, sizeof **cap);
        bud[l] = calloc(fits[l].k, sizeof **bud);
        if (!cap[l] || !bud[l]) goto oom;
    }
    for (size_t i = 0; i < n; i++) cap[0][fits[0].assign[i]]++;
    for (size_t l = 1; l < nl; l++) {
        for (size_t c = 0; c < fits[l - 1].k; c++) cap[l][fits[l].assign[c]] += cap[l - 1][c];
    }
    size_t widest = n > fits[0].k ? n : fits[0].k;
    ch = malloc(widest * sizeof *ch);
    if (!ch) goto oom;
    size_t budget = in->target < n ? in->target : n;
    {
        size_t top = nl - 1, m = 0;
        for (size_t c = 0; c < fits[top].k; c++) ch[m++] = (child_ref){cap[top][c], c};
        split_budget(ch, m, budget, bud[top]);
    }
    for (size_t l = nl - 1; l > 0; l--) {
        for (size_t p = 0; p < fits[l].k; p++) {
            size_t m = 0;
            for (size_t c = 0; c < fits[l - 1].k; c++) {
                if ((size_t)fits[l].assign[c] == p) ch[m++] = (child_ref){cap[l - 1][c], c};
            }
            split_budget(ch, m, bud[l][p], bud[l - 1]);
        }
    }
    /* leaves: rows grouped by leaf (counting sort), then random or closest picks */
    const size_t k0 = fits[0].k;
    order = malloc(n * sizeof *order);
    start = calloc(k0 + 1, sizeof *start);
    tmp = malloc(n * sizeof *tmp);
    picks = malloc(budget * sizeof *picks);
    leaf_n = calloc(k0, sizeof *leaf_n);
    if (!order || !start || !tmp || !picks || !leaf_n) goto oom;
    for (size_t i = 0; i < n; i++) start[fits[0].assign[i] + 1]++;
    for (size_t c = 0; c < k0; c++) start[c + 1] += start[c];
    {
        size_t *fill = leaf_n; /* reused as a cursor, reset below */
        for (size_t i = 0; i < n; i++) {
            size_t c = (size_t)fits[0].assign[i];
            order[start[c] + fill[c]++] = (int32_t)i;
        }
        memset(leaf_n, 0, k0 * sizeof *leaf_n);
    }
    size_t np = 0;
    for (size_t c = 0; c < k0; c++) {
        size_t sz = (size_t)(start[c + 1] - start[c]), take = bud[0][c];
        if (take == 0) continue;
        int32_t *mem = order + start[c];
        if (in->opts.closest) {
            for (size_t i = 0; i < sz; i++) tmp[i] = (dist_row){fits[0].dist2[mem[i]], mem[i]};
            qsort(tmp, sz, sizeof *tmp, dist_row_cmp);
            for (size_t i = 0; i < sz; i++) mem[i] = tmp[i].row;
        } else {
            for (size_t i = 0; i < take; i++) { /* partial Fisher-Yates */
                size_t j = i + (size_t)knn_rng_below(&rng, sz - i);
                int32_t t = mem[i];
                mem[i] = mem[j];
                mem[j] = t;
            }
        }
        for (size_t i = 0; i < take; i++) picks[np++] = (pick_rank){i, c, mem[i]};
        leaf_n[c] = take;
    }
    qsort(picks, np, sizeof *picks, pick_cmp);
    for (size_t i = 0; i < np; i++) {
        size_t c = picks[i].leaf;
        r->index[i] = picks[i].row;
        r->cluster[i] = (int64_t)c;
        r->weight[i] = (double)(start[c + 1] - start[c]) / (double)leaf_n[c];
        r->score[i] = sqrt((double)fits[0].dist2[picks[i].row]);
    }
    r->n = np;
    r->cost = fits[0].cost;
    goto cleanup;
oom:
    s = knn_error_set(err, KNN_ENOMEM, "out of memory for balanced sampling of %zu rows", n);
cleanup:
    for (size_t l = 0; l < KNN_SAMPLE_MAX_LEVELS; l++) {
        knn_kmeans_fit_free(&fits[l]);
        free(cap[l]);
        free(bud[l]);
    }
    free(ch);
    free(order);
    free(start);
    free(tmp);
    free(picks);
    free(leaf_n);
    return s;
}
