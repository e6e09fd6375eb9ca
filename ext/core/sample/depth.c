/* Statistical depth of embeddings: TTE depth (Seegmiller & Preum, "Statistical Depth for Ranking and
 * Characterizing Transformer-Based Text Embeddings", EMNLP 2023; the authors' package tte_depth), and
 * depth-ranked selection (the deepest rows are a set's representatives, the shallowest its outliers).
 *
 * Definition. For a reference set F = {h_1..h_n} and a distance delta bounded in [0, 2],
 *     D(x, F) = 2 - E_{H ~ Uniform(F)} delta(x, H),
 * the mean taken over the n - 1 other rows when x is itself a row of F (leave-one-out), over all n
 * otherwise. Metrics:
 *   cosine  delta = 1 - cos(x, h)                         (the paper's default)
 *   chord   delta = sqrt(2 (1 - cos(x, h))) = ||x^ - h^||  (tte_depth's second distance; x^ = x / ||x||)
 *   l2      the L2 depth of Zuo & Serfling (Ann. Statist. 2000), D(x, F) = 1 / (1 + E ||x - H||), for
 *           raw (unnormalised) rows, where the Euclidean distance has no bound to subtract from.
 *
 * Cosine in O(n d) (our derivation; checked against the O(n^2 d) definition in tests/core). With
 * S = sum_j h^_j over F,
 *     sum_{j != i} (1 - x^_i . h^_j) = (n - 1) - (x^_i . S - x^_i . x^_i),
 * so for a row of F
 *     D(x_i) = 2 - [(n - 1) - x^_i . S + x^_i . x^_i] / (n - 1) = 1 + (x^_i . S - x^_i . x^_i) / (n - 1),
 * and for any other x, D(x) = 2 - (n - x^ . S) / n = 1 + x^ . S / n. (x^_i . x^_i is 1 up to rounding;
 * we use its computed value so the identity holds to double precision.) One pass for S, one for the dot
 * products. The ranking equals the ranking by cosine similarity to the mean of the normalised rows.
 *
 * Chord and l2 have no such form: the exact depth sums all n^2 distances (sample/pair_sums.c, the blocked
 * inner-product kernel; l2 rows are centred first, which leaves distances unchanged and keeps the
 * expanded ||x||^2 + ||h||^2 - 2 x.h free of cancellation). With sample = m, the mean runs over m
 * reference rows drawn uniformly without replacement (seeded; a row drawn into the sample is left out
 * of its own mean): O(n m d). Each row's mean distance is then a without-replacement sample mean of
 * distances in [0, 2] (chord), so by Hoeffding's inequality (which holds without replacement too)
 * P(|D_m(x) - D(x)| >= t) <= 2 exp(-m t^2 / 2): |error| < 0.05 with probability 0.99 at m = 4,300, and
 * the standard error is at most 1 / sqrt(m). For l2 the same holds for the mean distance with 2 replaced
 * by the largest distance; the depth 1/(1 + mean) moves by at most as much.
 *
 * Selection (method 'depth' of knn_sample_run): every row's depth relative to the whole set, then the
 * n deepest (order=deepest, the default) or shallowest rows; ties go to the lower row. Weight rows / n,
 * score the depth. Per-group selection is the SQL aggregate under GROUP BY. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "sample/knn_sample.h"

knn_status knn_depth_parse(const char *name, knn_depth_metric *out, knn_error *err) {
    if (name == NULL || strcmp(name, "cosine") == 0) *out = KNN_DEPTH_COSINE;
    else if (strcmp(name, "chord") == 0) *out = KNN_DEPTH_CHORD;
    else if (strcmp(name, "l2") == 0 || strcmp(name, "l2sq") == 0 || strcmp(name, "euclidean") == 0) *out = KNN_DEPTH_L2;
    else return knn_error_set(err, KNN_EINVAL, "depth metric must be 'cosine', 'chord' or 'l2', got '%s'", name);
    return KNN_OK;
}

const char *knn_depth_metric_name(knn_depth_metric m) {
    return m == KNN_DEPTH_CHORD ? "chord" : m == KNN_DEPTH_L2 ? "l2" : "cosine";
}

/* ||x||, or an error naming the row when it is 0 (no direction). */
static knn_status row_norm(const float *x, size_t d, size_t row, double *out, knn_error *err) {
    double s = 0;
    for (size_t k = 0; k < d; k++) s += (double)x[k] * x[k];
    if (!(s > 0)) {
        return knn_error_set(err, KNN_EDATA, "row %zu is a zero vector, which has no direction for cosine or chord "
                             "depth; drop it or use metric=l2", row);
    }
    *out = sqrt(s);
    return KNN_OK;
}

static knn_status depth_cosine(const float *X, size_t n, size_t d, const uint8_t *is_ref, size_t nref, double *out,
                               knn_error *err) {
    double *S = calloc(d, sizeof *S), *inv = malloc(n * sizeof *inv);
    if (!S || !inv) {
        free(S);
        free(inv);
        return knn_error_set(err, KNN_ENOMEM, "out of memory for the depth of %zu rows", n);
    }
    for (size_t i = 0; i < n; i++) { /* 1 / ||x_i||, and S over the reference rows */
        double nrm = 1.0;
        if (row_norm(X + i * d, d, i, &nrm, err) != KNN_OK) goto cleanup;
        inv[i] = 1.0 / nrm;
        if (is_ref && !is_ref[i]) continue;
        const float *x = X + i * d;
        for (size_t k = 0; k < d; k++) S[k] += x[k] * inv[i];
    }
    for (size_t i = 0; i < n; i++) {
        const float *x = X + i * d;
        double dot = 0, sq = 0;
        for (size_t k = 0; k < d; k++) {
            dot += x[k] * S[k];
            sq += (double)x[k] * x[k];
        }
        dot *= inv[i];
        const double self = sq * inv[i] * inv[i]; /* x^ . x^, 1 up to rounding */
        if (!is_ref || is_ref[i]) out[i] = 1.0 + (dot - self) / (double)(nref - 1);
        else out[i] = 1.0 + dot / (double)nref;
    }
cleanup:
    free(S);
    free(inv);
    return err->status;
}

knn_status knn_depth_compute(const float *X, size_t n, size_t d, const uint8_t *is_ref, knn_depth_metric metric,
                             size_t sample, uint64_t seed, size_t threads, const knn_kernels *kern, double *out,
                             knn_error *err) {
    float *Q = NULL, *R = NULL;
    int64_t *qid = NULL, *rid = NULL, *pick = NULL;
    double *sum = NULL, *mu = NULL;
    uint8_t *in_r = NULL;
    if (d == 0) return knn_error_set(err, KNN_EINVAL, "vectors must have at least one dimension");
    size_t nref = 0;
    for (size_t i = 0; i < n; i++) nref += !is_ref || is_ref[i];
    if (nref < 2) {
        return knn_error_set(err, KNN_EINVAL, "depth needs at least 2 reference rows (a reference row's depth "
                             "leaves the row itself out), got %zu", nref);
    }
    for (size_t i = 0; i < n * d; i++) {
        if (!isfinite(X[i])) {
            return knn_error_set(err, KNN_EDATA, "row %zu has a NaN or Inf at element %zu; vectors must be finite",
                                 i / d, i % d);
        }
    }
    if (metric == KNN_DEPTH_COSINE) {
        if (sample) {
            return knn_error_set(err, KNN_EINVAL, "sample applies to metric=chord or l2; cosine depth is exact in "
                                 "O(n d) without it (drop sample)");
        }
        return depth_cosine(X, n, d, is_ref, nref, out, err);
    }
    if (sample == 1) return knn_error_set(err, KNN_EINVAL, "sample must be >= 2 reference rows, got 1");
    size_t m = sample && sample < nref ? sample : nref;
    Q = malloc(n * d * sizeof *Q);
    qid = malloc(n * sizeof *qid);
    R = malloc(m * d * sizeof *R);
    rid = malloc(m * sizeof *rid);
    pick = malloc(nref * sizeof *pick);
    sum = malloc(n * sizeof *sum);
    mu = calloc(d, sizeof *mu);
    in_r = calloc(n, 1);
    if (!Q || !qid || !R || !rid || !pick || !sum || !mu || !in_r) {
        knn_error_set(err, KNN_ENOMEM, "out of memory for the depth of %zu rows of dimension %zu", n, d);
        goto cleanup;
    }
    /* queries: every row, normalised (chord) or centred on the reference mean (l2) */
    if (metric == KNN_DEPTH_CHORD) {
        for (size_t i = 0; i < n; i++) {
            double nrm = 1.0;
            if (row_norm(X + i * d, d, i, &nrm, err) != KNN_OK) goto cleanup;
            for (size_t k = 0; k < d; k++) Q[i * d + k] = (float)(X[i * d + k] / nrm);
        }
    } else {
        for (size_t i = 0; i < n; i++) {
            if (is_ref && !is_ref[i]) continue;
            for (size_t k = 0; k < d; k++) mu[k] += X[i * d + k];
        }
        for (size_t k = 0; k < d; k++) mu[k] /= (double)nref;
        for (size_t i = 0; i < n; i++) {
            for (size_t k = 0; k < d; k++) Q[i * d + k] = (float)(X[i * d + k] - mu[k]);
        }
    }
    for (size_t i = 0; i < n; i++) qid[i] = (int64_t)i;
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (!is_ref || is_ref[i]) pick[o++] = (int64_t)i;
    }
    if (m < nref) { /* m of the reference rows, uniformly without replacement, kept in row order */
        knn_rng rng;
        knn_rng_init(&rng, seed, 0x6465707468ull); /* stream "depth" */
        for (size_t j = 0; j < m; j++) {
            size_t r = j + (size_t)knn_rng_below(&rng, nref - j);
            int64_t t = pick[j];
            pick[j] = pick[r];
            pick[r] = t;
        }
        /* back into row order: mark the m picks, then sweep */
        for (size_t j = 0; j < m; j++) in_r[pick[j]] = 1;
        o = 0;
        for (size_t i = 0; i < n; i++) {
            if (in_r[i]) pick[o++] = (int64_t)i;
        }
    }
    memset(in_r, 0, n);
    for (size_t j = 0; j < m; j++) {
        memcpy(R + j * d, Q + (size_t)pick[j] * d, d * sizeof *R);
        rid[j] = pick[j];
    }
    knn_pair_in pin = {R, m, rid, Q, n, qid, d, KNN_PAIR_DIST, 0.0, NULL, threads, kern};
    if (knn_pair_sums(&pin, sum, NULL, err) != KNN_OK) goto cleanup;
    /* rows drawn into the reference sample left themselves out of their own mean */
    for (size_t j = 0; j < m; j++) in_r[rid[j]] = 1;
    for (size_t i = 0; i < n; i++) {
        double mean = sum[i] / (double)(m - in_r[i]);
        out[i] = metric == KNN_DEPTH_CHORD ? 2.0 - mean : 1.0 / (1.0 + mean);
    }
cleanup:
    free(Q);
    free(qid);
    free(R);
    free(rid);
    free(pick);
    free(sum);
    free(mu);
    free(in_r);
    return err->status;
}

typedef struct depth_key {
    double depth;
    int64_t row;
} depth_key;

static int cmp_deep(const void *a, const void *b) {
    const depth_key *x = a, *y = b;
    if (x->depth != y->depth) return x->depth > y->depth ? -1 : 1;
    return (x->row > y->row) - (x->row < y->row);
}

static int cmp_shallow(const void *a, const void *b) {
    const depth_key *x = a, *y = b;
    if (x->depth != y->depth) return x->depth < y->depth ? -1 : 1;
    return (x->row > y->row) - (x->row < y->row);
}

knn_status knn_sample_depth(const knn_sample_in *in, knn_sample_result *r, knn_error *err) {
    double *depth = malloc(in->n * sizeof *depth);
    depth_key *keys = malloc(in->n * sizeof *keys);
    if (!depth || !keys) {
        free(depth);
        free(keys);
        return knn_error_set(err, KNN_ENOMEM, "out of memory for the depth of %zu rows", in->n);
    }
    if (knn_depth_compute(in->X, in->n, in->d, NULL, (knn_depth_metric)in->opts.depth_metric, in->opts.ref_sample,
                          in->seed, in->threads, in->kern, depth, err) == KNN_OK) {
        for (size_t i = 0; i < in->n; i++) keys[i] = (depth_key){depth[i], (int64_t)i};
        qsort(keys, in->n, sizeof *keys, in->opts.shallowest ? cmp_shallow : cmp_deep);
        size_t picks = in->target < in->n ? in->target : in->n;
        for (size_t j = 0; j < picks; j++) {
            r->index[j] = keys[j].row;
            r->weight[j] = (double)in->n / (double)picks;
            r->score[j] = keys[j].depth;
            r->cluster[j] = -1;
        }
        r->n = picks;
    }
    free(depth);
    free(keys);
    return err->status;
}
