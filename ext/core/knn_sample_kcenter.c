/* k-center by greedy farthest-point selection (Gonzalez 1985; "FPS" in PointNet++), and the
 * nearest-center cover it shares with k-means++.
 *
 * FPS starts from given rows (an already labelled set) or one seeded random row, then repeatedly picks
 * the row farthest from every pick so far. Its covering radius is at most twice the optimal k-center
 * radius (Gonzalez). The score of each pick is the covering radius (Euclidean, not squared) after it.
 *
 * Speed: a plain FPS step reads all n rows. The cover keeps rows grouped by their nearest center with
 * each group's radius; a new center c can only capture members of group j when d(c, c_j) < 2 r_j, and a
 * member x only when d(c, c_j) < 2 d(x, c_j) (triangle inequality), so late steps touch a few groups.
 * The picks are those of plain FPS (exact distances, same tie rule: lowest row). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "knn_sample.h"

#define COVER_BLOCK 256
/* Slack on pruning tests so float rounding never skips a row that could move. */
#define PRUNE_SLACK 1.001f

static knn_status oom(knn_error *err, const char *what) {
    return knn_error_set(err, KNN_ENOMEM, "out of memory for %s", what);
}

knn_status knn_cover_init(knn_cover *c, const float *X, size_t n, size_t d, size_t cap, const knn_kernels *kern,
                          knn_error *err) {
    memset(c, 0, sizeof *c);
    c->X = X;
    c->n = n;
    c->d = d;
    c->kern = kern;
    c->cap = cap;
    c->mind = malloc(n * sizeof *c->mind);
    c->owner = malloc(n * sizeof *c->owner);
    c->C = malloc(cap * d * sizeof *c->C);
    c->cidx = malloc(cap * sizeof *c->cidx);
    c->mem = calloc(cap, sizeof *c->mem);
    c->mem_n = calloc(cap, sizeof *c->mem_n);
    c->mem_cap = calloc(cap, sizeof *c->mem_cap);
    c->csum = calloc(cap, sizeof *c->csum);
    c->cmax = calloc(cap, sizeof *c->cmax);
    c->cargmax = malloc(cap * sizeof *c->cargmax);
    c->dcc = malloc(cap * sizeof *c->dcc);
    c->dist = malloc((n > COVER_BLOCK ? n : COVER_BLOCK) * sizeof *c->dist);
    c->ptrs = malloc(COVER_BLOCK * sizeof *c->ptrs);
    c->moved = malloc(n * sizeof *c->moved);
    if (!c->mind || !c->owner || !c->C || !c->cidx || !c->mem || !c->mem_n || !c->mem_cap || !c->csum || !c->cmax ||
        !c->cargmax || !c->dcc || !c->dist || !c->ptrs || !c->moved) {
        knn_cover_free(c);
        return oom(err, "the center cover");
    }
    return KNN_OK;
}

void knn_cover_free(knn_cover *c) {
    if (c->mem) {
        for (size_t j = 0; j < c->cap; j++) free(c->mem[j]);
    }
    free(c->mind);
    free(c->owner);
    free(c->C);
    free(c->cidx);
    free(c->mem);
    free(c->mem_n);
    free(c->mem_cap);
    free(c->csum);
    free(c->cmax);
    free(c->cargmax);
    free(c->dcc);
    free(c->dist);
    free(c->ptrs);
    free(c->moved);
    memset(c, 0, sizeof *c);
}

/* Recomputes a group's sum, radius and farthest member. */
static void group_stats(knn_cover *c, size_t j) {
    double s = 0;
    float mx = -1.0f;
    int64_t arg = -1;
    const int32_t *m = c->mem[j];
    for (size_t i = 0; i < c->mem_n[j]; i++) {
        float v = c->mind[m[i]];
        s += v;
        if (v > mx || (v == mx && m[i] < arg)) {
            mx = v;
            arg = m[i];
        }
    }
    c->csum[j] = s;
    c->cmax[j] = mx < 0 ? 0 : mx;
    c->cargmax[j] = arg;
}

/* Distances from q to the rows listed in idx[0..cnt), into out. */
static void score_rows(knn_cover *c, const float *q, const int32_t *idx, size_t cnt, float *out) {
    for (size_t b = 0; b < cnt; b += COVER_BLOCK) {
        size_t m = cnt - b < COVER_BLOCK ? cnt - b : COVER_BLOCK;
        for (size_t i = 0; i < m; i++) c->ptrs[i] = c->X + (size_t)idx[b + i] * c->d;
        c->kern->l2sq_ptrs(q, c->ptrs, m, c->d, out + b);
    }
}

knn_status knn_cover_add(knn_cover *c, int64_t row, knn_error *err) {
    if (c->nc >= c->cap) return knn_error_set(err, KNN_ESTATE, "center cover is full (%zu centers)", c->cap);
    const size_t d = c->d, j_new = c->nc;
    const float *q = c->X + (size_t)row * d;
    memcpy(c->C + j_new * d, q, d * sizeof(float));
    c->cidx[j_new] = row;
    size_t nmoved = 0;
    const int32_t orig = j_new > 0 ? c->owner[row] : -1;
    if (j_new == 0) {
        c->kern->l2sq_rows(q, c->X, c->n, d, c->mind);
        for (size_t i = 0; i < c->n; i++) {
            c->owner[i] = 0;
            if ((int64_t)i != row) c->moved[nmoved++] = (int32_t)i;
        }
    } else {
        c->kern->l2sq_rows(q, c->C, j_new, d, c->dcc);
        for (size_t j = 0; j < j_new; j++) {
            float dcc = c->dcc[j];
            if (c->mem_n[j] == 0 || dcc >= 4.0f * c->cmax[j] * PRUNE_SLACK) continue;
            int32_t *m = c->mem[j];
            size_t cnt = c->mem_n[j];
            /* members that might move: d(c, c_j) < 2 d(x, c_j) */
            size_t nc = 0;
            for (size_t i = 0; i < cnt; i++) {
                if (m[i] != row && dcc < 4.0f * c->mind[m[i]] * PRUNE_SLACK) c->moved[nmoved + nc++] = m[i];
            }
            if (nc == 0) continue;
            score_rows(c, q, c->moved + nmoved, nc, c->dist);
            size_t took = 0;
            for (size_t i = 0; i < nc; i++) {
                int32_t x = c->moved[nmoved + i];
                if (c->dist[i] < c->mind[x]) {
                    c->mind[x] = c->dist[i];
                    c->owner[x] = (int32_t)j_new;
                    c->moved[nmoved + took++] = x;
                }
            }
            if (took == 0) continue;
            size_t keep = 0;
            for (size_t i = 0; i < cnt; i++) {
                if (c->owner[m[i]] == (int32_t)j) m[keep++] = m[i];
            }
            c->mem_n[j] = keep;
            nmoved += took;
            group_stats(c, j);
        }
    }
    /* the new center leaves its group */
    if (j_new > 0) {
        size_t j = (size_t)orig;
        int32_t *m = c->mem[j];
        size_t keep = 0;
        for (size_t i = 0; i < c->mem_n[j]; i++) {
            if (m[i] != row) m[keep++] = m[i];
        }
        c->mem_n[j] = keep;
        group_stats(c, j);
    }
    c->mind[row] = -1.0f;
    c->owner[row] = (int32_t)j_new;
    if (nmoved > c->mem_cap[j_new]) {
        int32_t *m = realloc(c->mem[j_new], nmoved * sizeof *m);
        if (m == NULL) return oom(err, "a center's member list");
        c->mem[j_new] = m;
        c->mem_cap[j_new] = nmoved;
    }
    if (nmoved) memcpy(c->mem[j_new], c->moved, nmoved * sizeof(int32_t));
    c->mem_n[j_new] = nmoved;
    c->nc++;
    group_stats(c, j_new);
    return KNN_OK;
}

double knn_cover_potential(const knn_cover *c) {
    double s = 0;
    for (size_t j = 0; j < c->nc; j++) s += c->csum[j];
    return s;
}

double knn_cover_potential_with(knn_cover *c, int64_t row) {
    const size_t d = c->d;
    const float *q = c->X + (size_t)row * d;
    c->kern->l2sq_rows(q, c->C, c->nc, d, c->dcc);
    double total = 0;
    for (size_t j = 0; j < c->nc; j++) {
        float dcc = c->dcc[j];
        if (c->mem_n[j] == 0 || dcc >= 4.0f * c->cmax[j] * PRUNE_SLACK) {
            total += c->csum[j];
            continue;
        }
        const int32_t *m = c->mem[j];
        size_t cnt = c->mem_n[j], nc = 0;
        double s = 0;
        for (size_t i = 0; i < cnt; i++) {
            if (dcc < 4.0f * c->mind[m[i]] * PRUNE_SLACK) c->moved[nc++] = m[i];
            else s += c->mind[m[i]];
        }
        score_rows(c, q, c->moved, nc, c->dist);
        for (size_t i = 0; i < nc; i++) {
            float v = c->mind[c->moved[i]];
            float dn = (int64_t)c->moved[i] == row ? 0.0f : c->dist[i];
            s += dn < v ? dn : v;
        }
        total += s;
    }
    return total;
}

int64_t knn_cover_draw(const knn_cover *c, knn_rng *r) {
    double total = knn_cover_potential(c);
    size_t free_rows = c->n - c->nc;
    if (free_rows == 0) return -1;
    if (!(total > 0)) {
        /* every remaining row sits on a center: uniform over the non-centers */
        size_t t = (size_t)knn_rng_below(r, free_rows);
        for (size_t i = 0; i < c->n; i++) {
            if (c->mind[i] >= 0 && t-- == 0) return (int64_t)i;
        }
        return -1;
    }
    double u = knn_rng_uniform(r) * total;
    size_t j = 0, last = 0;
    for (; j < c->nc; j++) {
        if (c->csum[j] > 0) last = j;
        if (u < c->csum[j]) break;
        u -= c->csum[j];
    }
    if (j == c->nc) { /* rounding: take the last group with mass */
        j = last;
        u = c->csum[j] * 0.5;
    }
    const int32_t *m = c->mem[j];
    int64_t pick = -1;
    for (size_t i = 0; i < c->mem_n[j]; i++) {
        float v = c->mind[m[i]];
        if (v > 0) pick = m[i];
        if (u < v) return m[i];
        u -= v;
    }
    return pick;
}

int64_t knn_cover_farthest(const knn_cover *c, float *dist2) {
    float best = -1.0f;
    int64_t arg = -1;
    for (size_t j = 0; j < c->nc; j++) {
        if (c->cargmax[j] < 0) continue;
        if (c->cmax[j] > best || (c->cmax[j] == best && c->cargmax[j] < arg)) {
            best = c->cmax[j];
            arg = c->cargmax[j];
        }
    }
    if (dist2) *dist2 = best < 0 ? 0 : best;
    return arg;
}

knn_status knn_sample_kcenter(const knn_sample_in *in, knn_sample_result *r, knn_error *err) {
    size_t want = in->target;
    if (want > in->n - in->n_start) want = in->n - in->n_start; /* documented: n > rows gives every row */
    knn_cover c;
    knn_status s = knn_cover_init(&c, in->X, in->n, in->d, in->n_start + want, in->kern, err);
    if (s != KNN_OK) return s;
    knn_rng rng;
    knn_rng_init(&rng, in->seed, 1);
    for (size_t i = 0; i < in->n_start && s == KNN_OK; i++) s = knn_cover_add(&c, in->start[i], err);
    for (size_t p = 0; p < want && s == KNN_OK; p++) {
        int64_t row;
        if (c.nc == 0) {
            row = (int64_t)knn_rng_below(&rng, in->n);
        } else {
            row = knn_cover_farthest(&c, NULL);
            if (row < 0) break;
        }
        s = knn_cover_add(&c, row, err);
        if (s != KNN_OK) break;
        float rad2;
        knn_cover_farthest(&c, &rad2);
        r->index[r->n] = row;
        r->score[r->n] = sqrt((double)rad2);
        r->cluster[r->n] = (int64_t)r->n;
        r->n++;
    }
    if (s == KNN_OK) {
        for (size_t p = 0; p < r->n; p++) r->weight[p] = 1.0 + (double)c.mem_n[in->n_start + p];
        float rad2;
        knn_cover_farthest(&c, &rad2);
        r->cost = sqrt((double)rad2);
    }
    knn_cover_free(&c);
    return s;
}
