/* k-center by greedy farthest-point selection (Gonzalez 1985; "FPS" in PointNet++), and the
 * nearest-center cover it shares with k-means++.
 *
 * FPS starts from given rows (an already labelled set) or one seeded random row, then repeatedly picks
 * the row farthest from every pick so far. Its covering radius is at most twice the optimal k-center
 * radius (Gonzalez). The score of each pick is the covering radius (Euclidean, not squared) after it.
 *
 * Speed: the rows sit in fixed 64-row blocks, each knowing how many centers it has seen (stamp). A
 * refresh applies the missing centers to a block in order. The 8-bit screen (sample/screen.c,
 * design note at knn_screen in knn_sample.h) proves, for all but the few rows near a center, that they
 * keep their center, so only those rows get an exact float distance. k-means++ refreshes every block
 * after each center (its D^2 draw needs every row). k-center only needs the farthest row, so it refreshes
 * lazily (farthest_lazy, below): a block catches up only when its stale maximum could be the answer,
 * then meets all its missing centers while its codes are in L1. On GloVe-50 (400k rows, 1000 picks) that
 * cut the CPU time from 4.9 s (one streaming pass over every row per pick) to 1.9 s. Picks are those of
 * plain FPS (exact distances, same tie rule: lowest row), for any thread count, with or without the
 * screen. */
#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "base/knn_parallel.h"
#include "sample/knn_sample.h"

#define COVER_BLOCK 64
_Static_assert(COVER_BLOCK == KNN_CODE_BLOCK, "the screen codes rows in cover blocks");
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
    c->stamp = calloc(c->nblocks, sizeof *c->stamp);
    c->bsum = calloc(c->nblocks, sizeof *c->bsum);
    c->bmax = malloc(c->nblocks * sizeof *c->bmax);
    c->barg = malloc(c->nblocks * sizeof *c->barg);
    if (!c->mind || !c->owner || !c->C || !c->cidx || !c->stamp || !c->bsum || !c->bmax || !c->barg) {
        knn_cover_free(c);
        return knn_error_set(err, KNN_ENOMEM, "out of memory for the center cover of %zu rows", n);
    }
    knn_screen_build(c);
    if (c->screen.q.codes) {
        c->ccodes = malloc(cap * 2 * c->screen.q.npairs);
        c->cerr = malloc(cap * sizeof *c->cerr);
        if (!c->ccodes || !c->cerr) {
            knn_cover_free(c);
            return knn_error_set(err, KNN_ENOMEM, "out of memory for the codes of %zu centers", cap);
        }
    }
    /* no center yet: every row infinitely far, so the first center's refresh scores every row */
    for (size_t i = 0; i < n; i++) {
        c->mind[i] = INFINITY;
        c->owner[i] = -1;
        if (c->screen.q.codes) knn_screen_touch(c, i);
    }
    for (size_t b = 0; b < c->nblocks; b++) block_stats(c, b);
    return KNN_OK;
}

void knn_cover_free(knn_cover *c) {
    free(c->mind);
    free(c->owner);
    free(c->C);
    free(c->cidx);
    free(c->stamp);
    free(c->ccodes);
    free(c->cerr);
    free(c->bsum);
    free(c->bmax);
    free(c->barg);
    knn_screen_free(&c->screen);
    memset(c, 0, sizeof *c);
}

/* Rows of block b that the screen cannot rule out for a center with codes cq and error cerr. */
static size_t block_screen(const knn_cover *c, size_t b, const uint8_t *cq, float cerr, uint8_t *sel) {
    const knn_screen *sc = &c->screen;
    uint64_t m = c->kern->u8_screen_block(cq, knn_codes_block(&sc->q, b), sc->q.npairs, sc->reach + b * KNN_CODE_BLOCK,
                                          cerr, sc->q.scale2);
    size_t cnt = 0;
    for (; m; m &= m - 1) sel[cnt++] = (uint8_t)__builtin_ctzll(m);
    return cnt;
}

/* Without the screen: every row of [lo, hi) that is not a center and not already on one. */
static size_t block_all(const knn_cover *c, size_t lo, size_t hi, uint8_t *sel) {
    size_t cnt = 0;
    for (size_t i = lo; i < hi; i++) {
        if (c->mind[i] > 0) sel[cnt++] = (uint8_t)(i - lo);
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

/* Brings block b up to date: applies the centers it has not seen, in the order they were added, so a
 * block refreshed late ends exactly as one refreshed after every center. A block's codes stay in L1
 * while it meets several centers, which is what makes lazy refreshes (knn_cover_farthest_lazy) cheap. */
static void refresh_block(void *arg, size_t b) {
    knn_cover *c = arg;
    if (c->stamp[b] >= c->nc) return;
    float buf[COVER_BLOCK];
    uint8_t sel[COVER_BLOCK];
    size_t lo = b * COVER_BLOCK, hi = lo + COVER_BLOCK < c->n ? lo + COVER_BLOCK : c->n;
    const size_t np2 = 2 * c->screen.q.npairs;
    int changed = 0;
    for (size_t slot = c->stamp[b]; slot < c->nc; slot++) {
        size_t cnt = c->screen.q.codes ? block_screen(c, b, c->ccodes + slot * np2, c->cerr[slot], sel)
                                     : block_all(c, lo, hi, sel);
        if (cnt == 0) continue;
        block_distances(c, c->C + slot * c->d, lo, sel, cnt, buf);
        for (size_t k = 0; k < cnt; k++) {
            size_t i = lo + sel[k];
            if (buf[k] < c->mind[i]) {
                c->mind[i] = buf[k];
                c->owner[i] = (int32_t)slot;
                if (c->screen.q.codes) knn_screen_touch(c, i);
                changed = 1;
            }
        }
    }
    c->stamp[b] = c->nc;
    if (changed) block_stats(c, b);
}

knn_status knn_cover_add_lazy(knn_cover *c, int64_t row, knn_error *err) {
    if (c->nc >= c->cap) return knn_error_set(err, KNN_ESTATE, "center cover is full (%zu centers)", c->cap);
    const size_t d = c->d, slot = c->nc;
    memcpy(c->C + slot * d, c->X + (size_t)row * d, d * sizeof(float));
    c->cidx[slot] = row;
    if (c->screen.q.codes) {
        knn_codes_row(&c->screen.q, (size_t)row, c->ccodes + slot * 2 * c->screen.q.npairs);
        c->cerr[slot] = c->screen.q.err[row];
    }
    c->nc++;
    /* the new center leaves its block's statistics at once, so it is never drawn or moved again */
    c->mind[row] = -1.0f;
    c->owner[row] = (int32_t)slot;
    if (c->screen.q.codes) knn_screen_touch(c, (size_t)row);
    block_stats(c, (size_t)row / COVER_BLOCK);
    return KNN_OK;
}

void knn_cover_refresh(knn_cover *c) { run_blocks(c, refresh_block, c); }

knn_status knn_cover_add(knn_cover *c, int64_t row, knn_error *err) {
    knn_status s = knn_cover_add_lazy(c, row, err);
    if (s == KNN_OK) knn_cover_refresh(c);
    return s;
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
    double *bpots;      /* m x nblocks */
    const uint8_t *cqs; /* m x 2*npairs codes (screen on) */
} multi_job;

static void multi_block(void *arg, size_t b) {
    multi_job *j = arg;
    const knn_cover *c = j->c;
    float buf[COVER_BLOCK];
    uint8_t sel[COVER_BLOCK];
    size_t lo = b * COVER_BLOCK, hi = lo + COVER_BLOCK < c->n ? lo + COVER_BLOCK : c->n;
    for (size_t q = 0; q < j->m; q++) {
        size_t cnt = j->cqs ? block_screen(c, b, j->cqs + q * 2 * c->screen.q.npairs, c->screen.q.err[j->rows[q]], sel)
                            : block_all(c, lo, hi, sel);
        double s = c->bsum[b];
        if (cnt) block_distances(c, c->X + (size_t)j->rows[q] * c->d, lo, sel, cnt, buf);
        for (size_t k = 0; k < cnt; k++) {
            size_t i = lo + sel[k];
            float mi = c->mind[i];
            float v = (int64_t)i == j->rows[q] ? 0.0f : buf[k];
            if (v < mi) s -= (double)mi - (double)v;
        }
        j->bpots[q * c->nblocks + b] = s;
    }
}

knn_status knn_cover_potentials(knn_cover *c, const int64_t *rows, size_t m, double *out, knn_error *err) {
    const size_t np2 = 2 * c->screen.q.npairs;
    uint8_t *cqs = c->screen.q.codes ? malloc(m * np2 + 1) : NULL;
    double *bpots = malloc((m * c->nblocks + 1) * sizeof *bpots);
    if ((c->screen.q.codes && !cqs) || !bpots) {
        free(cqs);
        free(bpots);
        return knn_error_set(err, KNN_ENOMEM, "out of memory scoring %zu k-means++ candidates", m);
    }
    for (size_t q = 0; cqs && q < m; q++) knn_codes_row(&c->screen.q, (size_t)rows[q], cqs + q * np2);
    knn_cover_refresh(c); /* potentials are sums over up-to-date rows */
    multi_job job = {c, rows, m, bpots, cqs};
    run_blocks(c, multi_block, &job);
    for (size_t q = 0; q < m; q++) {
        double s = 0;
        for (size_t b = 0; b < c->nblocks; b++) s += bpots[q * c->nblocks + b];
        out[q] = s;
    }
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

/* ---- lazy farthest row ------------------------------------------------------------------------
 * FPS needs only the argmax of the rows' distances after each pick, not every row's distance. A block's
 * maximum can only fall when centers are added, so a stale maximum is an upper bound. The blocks sit in
 * a max-heap by (maximum, then lower block first); the top block is refreshed against the centers it
 * has not seen and pushed back, until the top is up to date: its farthest row is then the farthest row
 * overall, with plain FPS's tie rule (lowest row), since every other block's true maximum is at most
 * its key. Blocks far from every new center are refreshed rarely, each time against many centers while
 * its codes sit in L1, so a pick no longer streams every row through memory. */
typedef struct heap_entry {
    float key;
    uint32_t ver; /* the block's version when pushed; older entries are skipped */
    size_t b;
} heap_entry;

typedef struct block_heap {
    heap_entry *e;
    size_t n, cap;
    uint32_t *ver; /* per block */
} block_heap;

static int heap_before(const heap_entry *x, const heap_entry *y) {
    return x->key > y->key || (x->key == y->key && x->b < y->b);
}

static void heap_sift_down(block_heap *h, size_t i) {
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < h->n && heap_before(&h->e[l], &h->e[m])) m = l;
        if (r < h->n && heap_before(&h->e[r], &h->e[m])) m = r;
        if (m == i) return;
        heap_entry t = h->e[i];
        h->e[i] = h->e[m];
        h->e[m] = t;
        i = m;
    }
}

/* Rebuilds the heap with one current entry per block (also drops the stale entries that pile up). */
static void heap_rebuild(block_heap *h, const knn_cover *c) {
    h->n = c->nblocks;
    for (size_t b = 0; b < c->nblocks; b++) h->e[b] = (heap_entry){c->bmax[b], h->ver[b], b};
    for (size_t i = h->n / 2; i-- > 0;) heap_sift_down(h, i);
}

static knn_status heap_init(block_heap *h, const knn_cover *c, knn_error *err) {
    h->cap = 4 * c->nblocks + 64;
    h->e = malloc(h->cap * sizeof *h->e);
    h->ver = calloc(c->nblocks + 1, sizeof *h->ver);
    if (!h->e || !h->ver) {
        free(h->e);
        free(h->ver);
        return knn_error_set(err, KNN_ENOMEM, "out of memory for the block heap of %zu blocks", c->nblocks);
    }
    heap_rebuild(h, c);
    return KNN_OK;
}

/* Block b's maximum changed: a new entry supersedes its old ones. */
static void heap_update(block_heap *h, const knn_cover *c, size_t b) {
    h->ver[b]++;
    if (h->n == h->cap) {
        heap_rebuild(h, c);
        return;
    }
    size_t i = h->n++;
    h->e[i] = (heap_entry){c->bmax[b], h->ver[b], b};
    while (i > 0 && heap_before(&h->e[i], &h->e[(i - 1) / 2])) {
        heap_entry t = h->e[i];
        h->e[i] = h->e[(i - 1) / 2];
        h->e[(i - 1) / 2] = t;
        i = (i - 1) / 2;
    }
}

static void heap_pop(block_heap *h) {
    h->e[0] = h->e[--h->n];
    heap_sift_down(h, 0);
}

/* The farthest non-center row and its squared distance (0 and -1 when every row is a center). */
static int64_t farthest_lazy(knn_cover *c, block_heap *h, float *dist2) {
    while (h->n > 0) {
        heap_entry top = h->e[0];
        if (top.ver != h->ver[top.b]) {
            heap_pop(h);
            continue;
        }
        if (c->stamp[top.b] < c->nc) {
            heap_pop(h);
            refresh_block(c, top.b);
            heap_update(h, c, top.b);
            continue;
        }
        if (c->bmax[top.b] < 0) break;
        *dist2 = c->bmax[top.b];
        return c->barg[top.b];
    }
    *dist2 = 0;
    return -1;
}

knn_status knn_sample_kcenter(const knn_sample_in *in, knn_sample_result *r, knn_error *err) {
    size_t want = in->target;
    if (want > in->n - in->n_start) want = in->n - in->n_start; /* documented: n > rows gives every row */
    knn_cover c;
    knn_status s = knn_cover_init(&c, in->X, in->n, in->d, in->n_start + want, in->threads, in->kern, err);
    if (s != KNN_OK) return s;
    block_heap h = {0};
    s = heap_init(&h, &c, err);
    knn_rng rng;
    knn_rng_init(&rng, in->seed, 1);
    for (size_t i = 0; i < in->n_start && s == KNN_OK; i++) {
        s = knn_cover_add_lazy(&c, in->start[i], err);
        if (s == KNN_OK) heap_update(&h, &c, (size_t)in->start[i] / COVER_BLOCK);
    }
    float rad2 = 0;
    int64_t next = -1;
    if (s == KNN_OK) next = c.nc == 0 ? (int64_t)knn_rng_below(&rng, in->n) : farthest_lazy(&c, &h, &rad2);
    for (size_t p = 0; p < want && next >= 0 && s == KNN_OK; p++) {
        s = knn_cover_add_lazy(&c, next, err);
        if (s != KNN_OK) break;
        heap_update(&h, &c, (size_t)next / COVER_BLOCK);
        r->index[r->n] = next;
        r->cluster[r->n] = (int64_t)r->n;
        next = farthest_lazy(&c, &h, &rad2); /* the next pick, and the covering radius after this one */
        r->score[r->n] = sqrt((double)rad2);
        r->n++;
    }
    double *sizes = s == KNN_OK ? malloc((c.nc ? c.nc : 1) * sizeof *sizes) : NULL;
    if (s == KNN_OK && sizes == NULL) s = knn_error_set(err, KNN_ENOMEM, "out of memory for cluster sizes");
    if (s == KNN_OK) {
        knn_cover_refresh(&c); /* every row on its nearest center, for the weights */
        knn_cover_sizes(&c, sizes);
        for (size_t p = 0; p < r->n; p++) r->weight[p] = 1.0 + sizes[in->n_start + p];
        knn_cover_farthest(&c, &rad2);
        r->cost = sqrt((double)rad2);
    }
    free(sizes);
    free(h.e);
    free(h.ver);
    knn_cover_free(&c);
    return s;
}
