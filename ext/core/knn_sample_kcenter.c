/* k-center by greedy farthest-point selection (Gonzalez 1985; "FPS" in PointNet++), and the
 * nearest-center cover it shares with k-means++.
 *
 * FPS starts from given rows (an already labelled set) or one seeded random row, then repeatedly picks
 * the row farthest from every pick so far. Its covering radius is at most twice the optimal k-center
 * radius (Gonzalez). The score of each pick is the covering radius (Euclidean, not squared) after it.
 *
 * Speed: a step is one pass over fixed 64-row blocks split across threads. The 8-bit screen
 * (knn_sample_screen.c, design note at knn_screen in knn_sample.h) reads one byte per coordinate and
 * proves, for all but the few rows near the new center, that they keep their center; only those rows get
 * an exact float distance. FPS and k-means++ on GloVe-50 (400k rows) recompute under 1% of the rows per
 * step, so the pass costs about what reading 50 bytes a row costs. Without the screen (its memory could
 * not be had) a block is skipped when no row in it can move by the triangle inequality (see
 * knn_sample.h). The farthest row is the max over block maxima. Picks are those of plain FPS (exact
 * distances, same tie rule: lowest row), for any thread count, with or without the screen. */
#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "knn_parallel.h"
#include "knn_sample.h"

#define COVER_BLOCK 64
_Static_assert(COVER_BLOCK == KNN_CODE_BLOCK, "the screen codes rows in cover blocks");
/* Slack on pruning tests so float rounding never skips a row that could move. */
#define PRUNE_SLACK 1.001f
/* Below this many floats a pass runs on one thread (thread start-up would dominate). */
#define PAR_MIN_FLOATS (1u << 20)
/* Blocks a thread claims at a time. Threads take chunks from a shared counter rather than fixed
 * shares, so a thread the OS holds back (a busy machine) does not stall the pass; every block's work
 * is the same whoever does it, so results do not change. */
#define CLAIM_BLOCKS 16

/* Runs fn(job, b) for every block b on the cover's threads, which claim CLAIM_BLOCKS at a time. */
typedef void (*block_fn)(void *job, size_t b);
typedef struct block_run {
    block_fn fn;
    void *job;
    size_t nblocks;
    atomic_size_t next; /* next unclaimed block */
} block_run;

static void block_run_task(void *arg, size_t t) {
    (void)t;
    block_run *r = arg;
    for (;;) {
        size_t b0 = atomic_fetch_add_explicit(&r->next, CLAIM_BLOCKS, memory_order_relaxed);
        if (b0 >= r->nblocks) return;
        size_t b1 = b0 + CLAIM_BLOCKS < r->nblocks ? b0 + CLAIM_BLOCKS : r->nblocks;
        for (size_t b = b0; b < b1; b++) r->fn(r->job, b);
    }
}

static void run_blocks(const knn_cover *c, block_fn fn, void *job) {
    block_run r = {fn, job, c->nblocks, 0};
    knn_parallel_run(c->threads, block_run_task, &r);
}

knn_status knn_cover_init(knn_cover *c, const float *X, size_t n, size_t d, size_t cap, size_t threads,
                          const knn_kernels *kern, knn_error *err) {
    memset(c, 0, sizeof *c);
    c->X = X;
    c->n = n;
    c->d = d;
    c->kern = kern;
    c->cap = cap;
    c->threads = threads ? threads : 1;
    if (n * d < PAR_MIN_FLOATS) c->threads = 1;
    c->nblocks = (n + COVER_BLOCK - 1) / COVER_BLOCK;
    c->mind = malloc(n * sizeof *c->mind);
    c->owner = malloc(n * sizeof *c->owner);
    c->C = malloc(cap * d * sizeof *c->C);
    c->cidx = malloc(cap * sizeof *c->cidx);
    c->dcc = malloc(cap * sizeof *c->dcc);
    c->bsum = calloc(c->nblocks, sizeof *c->bsum);
    c->bmax = malloc(c->nblocks * sizeof *c->bmax);
    c->barg = malloc(c->nblocks * sizeof *c->barg);
    if (!c->mind || !c->owner || !c->C || !c->cidx || !c->dcc || !c->bsum || !c->bmax || !c->barg) {
        knn_cover_free(c);
        return knn_error_set(err, KNN_ENOMEM, "out of memory for the center cover of %zu rows", n);
    }
    knn_screen_build(c);
    return KNN_OK;
}

void knn_cover_free(knn_cover *c) {
    free(c->mind);
    free(c->owner);
    free(c->C);
    free(c->cidx);
    free(c->dcc);
    free(c->bsum);
    free(c->bmax);
    free(c->barg);
    knn_screen_free(&c->screen);
    memset(c, 0, sizeof *c);
}

static void block_stats(knn_cover *c, size_t b) {
    size_t lo = b * COVER_BLOCK, hi = lo + COVER_BLOCK < c->n ? lo + COVER_BLOCK : c->n;
    double s = 0;
    float mx = -1.0f;
    int64_t arg = -1;
    for (size_t i = lo; i < hi; i++) {
        float v = c->mind[i];
        if (v < 0) continue;
        s += v;
        if (v > mx) {
            mx = v;
            arg = (int64_t)i;
        }
    }
    c->bsum[b] = s;
    c->bmax[b] = mx;
    c->barg[b] = arg;
}

typedef struct cover_job {
    knn_cover *c;
    const float *q;
    int32_t slot;    /* the new center's slot */
    int first;
    const uint8_t *cq; /* the new center's codes (screen on) */
    float cerr;        /* and its decoding error */
} cover_job;

/* Rows of block b that the screen cannot rule out for a center with codes cq and error cerr. */
static size_t block_screen(const knn_cover *c, size_t b, const uint8_t *cq, float cerr, uint8_t *sel) {
    const knn_screen *sc = &c->screen;
    uint64_t m = c->kern->u8_screen_block(cq, sc->codes + b * sc->npairs * 2 * KNN_CODE_BLOCK, sc->npairs,
                                          sc->reach + b * KNN_CODE_BLOCK, cerr, sc->scale2);
    size_t cnt = 0;
    for (; m; m &= m - 1) sel[cnt++] = (uint8_t)__builtin_ctzll(m);
    return cnt;
}

/* Rows of block [lo, hi) that could move to a center whose squared distances to the centers are dcc:
 * their offsets into sel, count returned; every row on the first pass. */
static size_t block_select(const knn_cover *c, const float *dcc, size_t lo, size_t hi, int first, uint8_t *sel) {
    size_t cnt = 0;
    for (size_t i = lo; i < hi; i++) {
        float m = c->mind[i];
        if (first || (m > 0 && dcc[c->owner[i]] < 4.0f * m * PRUNE_SLACK)) sel[cnt++] = (uint8_t)(i - lo);
    }
    return cnt;
}

/* Distances from q to the selected rows of a block, buf[k] for sel[k]. One kernel call per row, so a
 * row's distance is the same float whichever rows were selected with it (the kernels' four-row paths
 * round differently from their one-row path): the screen then changes no pick, bit for bit. */
static void block_distances(const knn_cover *c, const float *q, size_t lo, const uint8_t *sel, size_t cnt,
                            float *buf) {
    for (size_t k = 0; k < cnt; k++) {
        const float *row = c->X + (lo + sel[k]) * c->d;
        c->kern->l2sq_ptrs(q, &row, 1, c->d, buf + k);
    }
}

static void cover_block(void *arg, size_t b) {
    cover_job *j = arg;
    knn_cover *c = j->c;
    float buf[COVER_BLOCK];
    uint8_t sel[COVER_BLOCK];
    size_t lo = b * COVER_BLOCK, hi = lo + COVER_BLOCK < c->n ? lo + COVER_BLOCK : c->n;
    size_t cnt = c->screen.codes && !j->first ? block_screen(c, b, j->cq, j->cerr, sel)
                                              : block_select(c, c->dcc, lo, hi, j->first, sel);
    if (cnt == 0) return;
    block_distances(c, j->q, lo, sel, cnt, buf);
    int changed = 0;
    for (size_t k = 0; k < cnt; k++) {
        size_t i = lo + sel[k];
        float v = buf[k];
        if (j->first || v < c->mind[i]) {
            c->mind[i] = v;
            c->owner[i] = j->slot;
            if (c->screen.codes) knn_screen_touch(c, i);
            changed = 1;
        }
    }
    if (changed) block_stats(c, b);
}

static void cover_pass(knn_cover *c, cover_job *job) { run_blocks(c, cover_block, job); }

knn_status knn_cover_add(knn_cover *c, int64_t row, knn_error *err) {
    if (c->nc >= c->cap) return knn_error_set(err, KNN_ESTATE, "center cover is full (%zu centers)", c->cap);
    const size_t d = c->d, slot = c->nc;
    const float *q = c->X + (size_t)row * d;
    memcpy(c->C + slot * d, q, d * sizeof(float));
    c->cidx[slot] = row;
    if (slot > 0 && !c->screen.codes) c->kern->l2sq_rows(q, c->C, slot, d, c->dcc);
    /* the new center leaves its block's statistics first, so it is never drawn or moved again */
    uint8_t cq_stack[256], *cq = NULL;
    float cerr = 0;
    if (c->screen.codes) {
        cq = 2 * c->screen.npairs <= sizeof cq_stack ? cq_stack : malloc(2 * c->screen.npairs);
        if (cq == NULL) return knn_error_set(err, KNN_ENOMEM, "out of memory for a center's codes");
        knn_screen_codes(c, (size_t)row, cq);
        cerr = c->screen.err[row];
    }
    cover_job job = {c, q, (int32_t)slot, slot == 0, cq, cerr};
    cover_pass(c, &job);
    if (cq != cq_stack) free(cq);
    c->mind[row] = -1.0f;
    c->owner[row] = (int32_t)slot;
    if (c->screen.codes) knn_screen_touch(c, (size_t)row);
    block_stats(c, (size_t)row / COVER_BLOCK);
    c->nc++;
    return KNN_OK;
}

double knn_cover_potential(const knn_cover *c) {
    double s = 0;
    for (size_t b = 0; b < c->nblocks; b++) s += c->bsum[b];
    return s;
}

/* Potentials of several candidates in one pass: each block is read once while every candidate is
 * scored against it (it stays in L1), instead of one pass over the rows per candidate. */
typedef struct multi_job {
    knn_cover *c;
    const int64_t *rows;
    size_t m;
    const float *dccs; /* m x nc */
    double *bpots;     /* m x nblocks */
    const uint8_t *cqs; /* m x 2*npairs codes (screen on) */
} multi_job;

static void multi_block(void *arg, size_t b) {
    multi_job *j = arg;
    const knn_cover *c = j->c;
    float buf[COVER_BLOCK];
    uint8_t sel[COVER_BLOCK];
    size_t lo = b * COVER_BLOCK, hi = lo + COVER_BLOCK < c->n ? lo + COVER_BLOCK : c->n;
    for (size_t q = 0; q < j->m; q++) {
        double *out = j->bpots + q * c->nblocks + b;
        size_t cnt = j->cqs ? block_screen(c, b, j->cqs + q * 2 * c->screen.npairs, c->screen.err[j->rows[q]], sel)
                            : block_select(c, j->dccs + q * c->nc, lo, hi, 0, sel);
        double s = c->bsum[b];
        if (cnt) block_distances(c, c->X + (size_t)j->rows[q] * c->d, lo, sel, cnt, buf);
        for (size_t k = 0; k < cnt; k++) {
            size_t i = lo + sel[k];
            float mi = c->mind[i];
            float v = (int64_t)i == j->rows[q] ? 0.0f : buf[k];
            if (v < mi) s -= (double)mi - (double)v;
        }
        *out = s;
    }
}

knn_status knn_cover_potentials(knn_cover *c, const int64_t *rows, size_t m, double *out, knn_error *err) {
    const int screen = c->screen.codes != NULL;
    float *dccs = screen ? NULL : malloc((m * c->nc + 1) * sizeof *dccs);
    uint8_t *cqs = screen ? malloc(m * 2 * c->screen.npairs) : NULL;
    double *bpots = malloc((m * c->nblocks + 1) * sizeof *bpots);
    if (!(dccs || cqs) || !bpots) {
        free(dccs);
        free(cqs);
        free(bpots);
        return knn_error_set(err, KNN_ENOMEM, "out of memory scoring %zu k-means++ candidates", m);
    }
    for (size_t q = 0; q < m; q++) {
        if (screen) {
            knn_screen_codes(c, (size_t)rows[q], cqs + q * 2 * c->screen.npairs);
        } else {
            c->kern->l2sq_rows(c->X + (size_t)rows[q] * c->d, c->C, c->nc, c->d, dccs + q * c->nc);
        }
    }
    multi_job job = {c, rows, m, dccs, bpots, cqs};
    run_blocks(c, multi_block, &job);
    for (size_t q = 0; q < m; q++) {
        double s = 0;
        for (size_t b = 0; b < c->nblocks; b++) s += bpots[q * c->nblocks + b];
        out[q] = s;
    }
    free(dccs);
    free(cqs);
    free(bpots);
    return KNN_OK;
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
    size_t b = 0, last = 0;
    for (; b < c->nblocks; b++) {
        if (c->bsum[b] > 0) last = b;
        if (u < c->bsum[b]) break;
        u -= c->bsum[b];
    }
    if (b == c->nblocks) { /* rounding: take the last block with mass */
        b = last;
        u = c->bsum[b] * 0.5;
    }
    size_t lo = b * COVER_BLOCK, hi = lo + COVER_BLOCK < c->n ? lo + COVER_BLOCK : c->n;
    int64_t pick = -1;
    for (size_t i = lo; i < hi; i++) {
        float v = c->mind[i];
        if (v <= 0) continue;
        pick = (int64_t)i;
        if (u < v) return pick;
        u -= v;
    }
    return pick;
}

int64_t knn_cover_farthest(const knn_cover *c, float *dist2) {
    float best = -1.0f;
    int64_t arg = -1;
    for (size_t b = 0; b < c->nblocks; b++) {
        if (c->bmax[b] > best) { /* blocks in row order, so ties keep the lowest row */
            best = c->bmax[b];
            arg = c->barg[b];
        }
    }
    if (dist2) *dist2 = best < 0 ? 0 : best;
    return arg;
}

void knn_cover_sizes(const knn_cover *c, double *sizes) {
    for (size_t j = 0; j < c->nc; j++) sizes[j] = 0;
    for (size_t i = 0; i < c->n; i++) {
        if (c->mind[i] >= 0) sizes[c->owner[i]] += 1;
    }
}

knn_status knn_sample_kcenter(const knn_sample_in *in, knn_sample_result *r, knn_error *err) {
    size_t want = in->target;
    if (want > in->n - in->n_start) want = in->n - in->n_start; /* documented: n > rows gives every row */
    knn_cover c;
    knn_status s = knn_cover_init(&c, in->X, in->n, in->d, in->n_start + want, in->threads, in->kern, err);
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
    double *sizes = s == KNN_OK ? malloc((c.nc ? c.nc : 1) * sizeof *sizes) : NULL;
    if (s == KNN_OK && sizes == NULL) s = knn_error_set(err, KNN_ENOMEM, "out of memory for cluster sizes");
    if (s == KNN_OK) {
        knn_cover_sizes(&c, sizes);
        for (size_t p = 0; p < r->n; p++) r->weight[p] = 1.0 + sizes[in->n_start + p];
        float rad2;
        knn_cover_farthest(&c, &rad2);
        r->cost = sqrt((double)rad2);
    }
    free(sizes);
    knn_cover_free(&c);
    return s;
}
