/* Bucket graphs for mid-size windows: super-postfiltering (Engels et al., "Approximate Nearest
 * Neighbor Search with Window Filters", ICML 2024), over the label-sorted rows of a graph index.
 *
 * What it implements. Level l (l = 2, 3, ...) cuts the label-sorted rows into buckets of ceil(n / 2^l)
 * consecutive rows and gives each bucket its own small HNSW graph (nodes point at the parent's vectors:
 * a bucket graph stores links only). A window of w rows lies in one or two buckets of each level; at a
 * level whose buckets hold 2-4 times w, the window is a quarter to a half of each bucket it touches, so
 * the in-search postfilter beam inside that bucket (knn_graph_post_beam: out-of-window nodes route,
 * only in-window ones are returned) finds it for about two plain searches of a small graph, where the
 * exact scan of the window costs w rows and the beam over the whole graph grows as n / w. Engels'
 * super-postfiltering keeps buckets of every power-of-two size, overlapping by half; here buckets tile
 * each level (one copy of the links per level, half the memory and build) and a window that straddles
 * two buckets is answered from both, a part too small for a beam by a scan of that slice.
 *
 * Which levels exist comes from the index's own calibration: a level is built only where the exact
 * scan of a quarter bucket costs more than a plain search of the whole graph, while its links fit in the
 * graph's own slot bytes, and while the bucket builds stay within BUCKET_BUILD_BUDGET of the graph's own
 * link time. Each level then times its beams at in-bucket fractions 1/2 and 1/4 (median of 9) and is
 * offered only if, at a narrow beam, it finds the exact neighbours as well as the whole graph's
 * postfilter beam does. The planner compares the bucket plan with the exact scan and the whole-graph
 * beams per query. A query far from the part it would search (few in-window rows around its landing
 * node) gives the plan up for the exact scan, as the whole-graph beams do.
 *
 * Freshness. The buckets are a snapshot of the sorted rows when they were built. Rows added later
 * (nodes from built_count on) are scanned exactly by every bucket search, and their cost is part of the
 * plan's estimate; once they reach half the snapshot the buckets are dropped and rebuilt at the next
 * build step or window query. Deletes mark the bucket nodes deleted. knn_graph_optimize renumbers nodes
 * and rebuilds them. Buckets are not saved: a load builds them with its calibration. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "window/window_internal.h"
#include "base/knn_clock.h"
#include "base/knn_topk.h"

#define BUCKET_MIN_ROWS 4096 /* smaller buckets hold windows the exact scan answers as fast */
#define BUCKET_EF_BUILD 64
#define BUCKET_BUILD_BUDGET 0.6 /* bucket builds take at most this share of the graph's own link time */
#define BUCKET_MAX_SPAN 3    /* a level is considered for a window touching at most this many buckets */
#define BUCKET_CAL 9

static void buckets_free(knn_buckets *b) {
    if (b == NULL) return;
    for (size_t l = 0; l < b->n_levels; l++) {
        knn_bucket_level *lv = &b->lv[l];
        for (size_t i = 0; lv->g && i < lv->nb; i++) knn_graph_free(lv->g[i]);
        free(lv->g);
        free(lv->first);
        free(lv->last);
    }
    free(b->pos);
    free(b);
}

/* ns of one bucket beam at in-bucket fraction f: log-linear in log2(1/f) through the two calibrated
 * points (1/2 and 1/4), extended along that line. */
static double beam_ns(const knn_bucket_level *lv, double f) {
    double x = -log2(f > 1 ? 1 : f);
    double a = log(lv->ns_beam[0]), b = log(lv->ns_beam[1]);
    return exp(a + (b - a) * (x - 1.0));
}

/* Cost of answering `part` in-window rows of a bucket of `len` rows: a beam, or an exact pass over the
 * part. While the sorted list is the one the buckets were cut from, the part is a slice of it (the
 * screened scan); after a rebuild it is a gather of scattered rows, a cache miss each (~20x a slice). */
static double part_ns(const knn_graph *g, const knn_buckets *b, const knn_bucket_level *lv, size_t part, size_t len,
                      double scale, int *beam) {
    double exact = (b->gen == g->win.gen ? 1.0 : 20.0) * g->ns_scan * (double)part;
    double bm = beam_ns(lv, (double)part / (double)len) * scale;
    *beam = bm < exact;
    return *beam ? bm : exact;
}

/* Buckets of level lv touching [lo, hi]: [*b0, *b1). */
static void touched(const knn_bucket_level *lv, double lo, double hi, size_t *b0, size_t *b1) {
    size_t s = knn_graph_label_bound(lv->last, lv->nb, lo, 0); /* first bucket whose last label >= lo */
    size_t e = s;
    while (e < lv->nb && lv->first[e] <= hi) e++;
    *b0 = s;
    *b1 = e;
}

/* In-window rows of bucket graph h: node range [*i0, *i1) (its labels ascend). */
static void part_range(const knn_graph *h, double lo, double hi, size_t *i0, size_t *i1) {
    *i0 = knn_graph_label_bound(h->labels, h->count, lo, 0);
    *i1 = knn_graph_label_bound(h->labels, h->count, hi, 1);
}

double knn_buckets_cost(const knn_graph *g, const knn_buckets *b, double lo, double hi, size_t ef, int any,
                        int *level) {
    if (level) *level = -1;
    if (b == NULL) return INFINITY;
    double scale = (double)ef / (double)g->p.ef;
    double late = (double)(g->count - b->built_count) * g->ns_scan, best = INFINITY;
    for (size_t l = 0; l < b->n_levels; l++) {
        const knn_bucket_level *lv = &b->lv[l];
        if (!lv->accurate && !any) continue;
        size_t b0, b1;
        touched(lv, lo, hi, &b0, &b1);
        if (b1 == b0 || b1 - b0 > BUCKET_MAX_SPAN) continue;
        double cost = late;
        int beams = 0;
        for (size_t i = b0; i < b1; i++) {
            size_t i0, i1;
            int beam = 0;
            part_range(lv->g[i], lo, hi, &i0, &i1);
            if (i1 > i0) cost += part_ns(g, b, lv, i1 - i0, lv->g[i]->count, scale, &beam);
            beams += beam;
        }
        if (beams == 0 && !any) continue; /* exact parts only: the exact plan does that in one pass */
        if (cost < best) {
            best = cost;
            if (level) *level = (int)l;
        }
    }
    return best;
}

knn_status knn_buckets_search(knn_graph *g, const knn_buckets *b, int level, int all_beams, const float *q, size_t k,
                              size_t ef, size_t rerank, double lo, double hi, int64_t *out_ids, float *out_dists,
                              size_t *found, knn_error *err) {
    *found = 0;
    knn_topk t;
    knn_status st = knn_topk_init(&t, k, err);
    if (st != KNN_OK) return st;
    const knn_bucket_level *lv = &b->lv[level];
    double scale = (double)ef / (double)g->p.ef;
    size_t b0, b1;
    touched(lv, lo, hi, &b0, &b1);
    for (size_t bi = b0; bi < b1 && st == KNN_OK; bi++) {
        knn_graph *h = lv->g[bi];
        size_t i0, i1;
        int beam;
        part_range(h, lo, hi, &i0, &i1);
        if (i1 == i0) continue;
        part_ns(g, b, lv, i1 - i0, h->count, scale, &beam);
        beam |= all_beams;
        if (!beam && b->gen == g->win.gen) { /* the part is a slice of the sorted list: scan it (no delta) */
            size_t p0 = bi * lv->rows, nf = 0;
            st = knn_window_exact(g, q, k, lo, hi, p0 + i0, p0 + i1, out_ids, out_dists, &nf, 0, err);
            for (size_t j = 0; st == KNN_OK && j < nf; j++) st = knn_topk_offer(&t, out_dists[j], out_ids[j], err);
            continue;
        }
        if (!beam) {
            for (size_t i = i0; i < i1 && st == KNN_OK; i++) {
                if (!h->deleted[i]) st = knn_topk_offer(&t, knn_graph_node_dist(h, q, (uint32_t)i), h->ids[i], err);
            }
            continue;
        }
        knn_search_ctx *c = knn_graph_ctx_acquire(h);
        size_t ntop = 0;
        /* A query far from this part (the window's rows sit away from it, as when labels follow clusters)
         * enters it from afar and finds it poorly: where the in-window share around the landing node is
         * under half the part's, the plan is given up and the caller scans the window exactly. */
        double share = (double)(i1 - i0) / (double)h->count;
        knn_selector part = knn_graph_window_selector(h, lo, hi, share);
        if (c) c->rerank = rerank;
        int r = c ? knn_graph_post_beam(h, c, q, &part, ef, 0.5 * share, &ntop) : 0;
        /* a coded beam's rows get float distances before they meet the exact parts' */
        if (r == 1 && c->coded && (ntop = knn_graph_top_finish(h, c, q, ntop, k)) == SIZE_MAX) r = 0;
        if (r == 0) st = knn_error_set(err, KNN_ENOMEM, "out of memory during a bucket search");
        for (size_t j = 0; st == KNN_OK && r == 1 && j < ntop; j++) {
            st = knn_topk_offer(&t, c->top[j].key, h->ids[c->top[j].id], err);
        }
        if (c) knn_graph_ctx_release(h, c);
        if (r == 2) {
            knn_topk_free(&t);
            *found = 0;
            return KNN_OK;
        }
    }
    knn_selector late = knn_graph_window_selector(g, lo, hi, 1.0);
    for (size_t v = b->built_count; st == KNN_OK && v < g->count; v++) { /* rows added since the build */
        if (!knn_selector_admits(&late, v)) continue;
        st = knn_topk_offer(&t, knn_graph_node_dist(g, q, (uint32_t)v), g->ids[v], err);
    }
    if (st == KNN_OK) knn_topk_export(&t, out_ids, out_dists, found);
    knn_topk_free(&t);
    return st;
}

static void buckets_forget(knn_buckets *b, uint32_t node) {
    if (node >= b->built_count || b->pos[node] == UINT32_MAX) return;
    size_t p = b->pos[node];
    for (size_t l = 0; l < b->n_levels; l++) {
        knn_graph *h = b->lv[l].g[p / b->lv[l].rows];
        size_t i = p % b->lv[l].rows;
        if (!h->deleted[i]) {
            h->deleted[i] = 1;
            h->n_deleted++;
        }
    }
}

/* How many of the exact top 10 (truth[0..n)) a beam's ntop nodes of graph h hold. */
static long beam_hits(const knn_graph *h, const knn_search_ctx *c, size_t ntop, const int64_t *truth, size_t n) {
    long hits = 0;
    for (size_t j = 0; j < ntop; j++) {
        for (size_t t = 0; t < n; t++) hits += h->ids[c->top[j].id] == truth[t];
    }
    return hits;
}

/* Times level lv's beams at in-bucket fractions 1/2 and 1/4 (median of BUCKET_CAL each, stored rows as
 * queries), and checks them at a narrow beam (ef = 16, top 10) against the whole graph's postfilter beam
 * on the same windows: a level whose beams find fewer of the exact neighbours (by more than one in all)
 * would need a wider beam than the cost model assumes, and is not offered. Returns 0 when out of memory. */
static int calibrate_level(knn_graph *g, knn_bucket_level *lv) {
    enum { K = 10, EF_CHECK = 16 };
    long hits_bucket = 0, hits_whole = 0;
    knn_search_ctx *cg = knn_graph_ctx_acquire(g);
    if (cg == NULL) return 0;
    for (int j = 0; j < 2; j++) {
        double t[BUCKET_CAL];
        for (size_t i = 0; i < BUCKET_CAL; i++) {
            size_t bi = (i * 7919u) % lv->nb;
            knn_graph *h = lv->g[bi];
            size_t len = h->count >> (j + 1), room = h->count - len;
            size_t s = room ? (i * 40503u + 17u) % (room + 1) : 0;
            const float *q = g->win.vecs + ((i * 2654435761u + 11u * (size_t)j) % g->win.n) * g->dim;
            double lo = h->labels[s], hi = h->labels[s + len - 1];
            knn_selector part = knn_graph_window_selector(h, lo, hi, 1.0), whole = knn_graph_window_selector(g, lo, hi, 1.0);
            knn_search_ctx *c = knn_graph_ctx_acquire(h);
            if (c == NULL) goto oom;
            size_t ntop;
            double t0 = knn_now_ns();
            int ok = knn_graph_post_beam(h, c, q, &part, g->p.ef, 0, &ntop);
            if (ok && c->coded) ok = knn_graph_top_finish(h, c, q, ntop, K) != SIZE_MAX; /* as searches pay it */
            t[i] = knn_now_ns() - t0;
            int64_t truth[K];
            float d[K];
            size_t found = 0, p0 = bi * lv->rows;
            knn_error err;
            ok = ok && knn_window_exact(g, q, K, lo, hi, p0 + s, p0 + s + len, truth, d, &found, 0, &err) == KNN_OK;
            ok = ok && knn_graph_post_beam(h, c, q, &part, EF_CHECK, 0, &ntop);
            if (ok && c->coded) ok = (ntop = knn_graph_top_finish(h, c, q, ntop, K)) != SIZE_MAX;
            if (ok) hits_bucket += beam_hits(h, c, ntop < K ? ntop : K, truth, found);
            ok = ok && knn_graph_post_beam(g, cg, q, &whole, EF_CHECK, 0, &ntop);
            if (ok && cg->coded) ok = (ntop = knn_graph_top_finish(g, cg, q, ntop, K)) != SIZE_MAX;
            if (ok) hits_whole += beam_hits(g, cg, ntop < K ? ntop : K, truth, found);
            knn_graph_ctx_release(h, c);
            if (!ok) goto oom;
        }
        double med = knn_median(t, BUCKET_CAL);
        lv->ns_beam[j] = med > 0 ? med : 1.0;
    }
    knn_graph_ctx_release(g, cg);
    if (lv->ns_beam[1] < lv->ns_beam[0]) lv->ns_beam[1] = lv->ns_beam[0]; /* a smaller share never costs less */
    lv->accurate = hits_bucket + 1 >= hits_whole;
    return 1;
oom:
    knn_graph_ctx_release(g, cg);
    return 0;
}

static int build_level(knn_graph *g, knn_buckets *b, knn_bucket_level *lv, size_t level) {
    const size_t n = g->win.n;
    lv->nb = (n + lv->rows - 1) / lv->rows;
    lv->g = calloc(lv->nb, sizeof *lv->g);
    lv->first = malloc(lv->nb * sizeof *lv->first);
    lv->last = malloc(lv->nb * sizeof *lv->last);
    if (!lv->g || !lv->first || !lv->last) return 0;
    knn_graph_params p = g->p;
    if (p.m > KNN_BUCKET_M) p.m = KNN_BUCKET_M;
    if (p.ef_construction > BUCKET_EF_BUILD) p.ef_construction = BUCKET_EF_BUILD;
    for (size_t bi = 0; bi < lv->nb; bi++) {
        size_t s = bi * lv->rows, e = s + lv->rows < n ? s + lv->rows : n;
        uint32_t *nodes = malloc((e - s) * sizeof *nodes);
        if (nodes == NULL) return 0;
        memcpy(nodes, g->win.nodes + s, (e - s) * sizeof *nodes);
        p.seed = g->p.seed ^ (0x9e3779b97f4a7c15ULL * (level * 1000003u + bi + 1));
        knn_error err;
        if (knn_graph_view_build(g, nodes, e - s, &p, 0, &lv->g[bi], &err) != KNN_OK) return 0;
        for (size_t i = s; i < e; i++) { /* rows deleted since the sorted list was rebuilt */
            if (isnan(g->win.filter[i])) {
                lv->g[bi]->deleted[i - s] = 1;
                lv->g[bi]->n_deleted++;
            }
        }
        lv->first[bi] = g->win.labels[s];
        lv->last[bi] = g->win.labels[e - 1];
        b->bytes += knn_graph_memory(lv->g[bi]) + 2 * sizeof(double);
    }
    return calibrate_level(g, lv);
}

/* ---- what the graph calls (knn_graph_overlay_ops) ---- */

/* Too many rows came after the build: a bucket search would scan them all exactly. */
static int buckets_stale(const knn_buckets *b, size_t count) { return count - b->built_count > b->built_count / 2; }

static size_t buckets_bytes(const knn_buckets *b) { return b->bytes; }

static const knn_graph_overlay_ops bucket_ops = {buckets_free, buckets_forget, buckets_stale, buckets_bytes};

knn_buckets *knn_buckets_build(knn_graph *g, size_t forced_levels) {
    const size_t n = g->win.n, min_rows = forced_levels ? 256 : BUCKET_MIN_ROWS;
    if (n < 4 * min_rows) return NULL;
    knn_buckets *b = calloc(1, sizeof *b);
    if (b == NULL) return NULL;
    /* the delta holds every labelled node added since the sorted list was rebuilt: from its first node on,
     * nodes are scanned as late rows */
    b->built_count = g->count;
    b->gen = g->win.gen;
    for (size_t i = 0; i < g->win.n_delta; i++) {
        if (g->win.delta[i] < b->built_count) b->built_count = g->win.delta[i];
    }
    b->pos = malloc(g->count * sizeof *b->pos);
    if (b->pos == NULL) goto fail;
    for (size_t i = 0; i < g->count; i++) b->pos[i] = UINT32_MAX;
    for (size_t i = 0; i < n; i++) b->pos[g->win.nodes[i]] = (uint32_t)i;
    b->bytes = sizeof *b + g->count * sizeof *b->pos;
    /* Levels start at buckets of n/4 rows: windows of n/8 and more are served as well by the whole
     * graph's postfilter beam (at most 8x a plain search). A level pays where the exact scan of its
     * smallest typical window (a quarter bucket) costs more than a plain beam over the whole graph; one
     * level's links cost about m0 words a row, kept within the graph's own slot bytes. */
    const double plain = g->ns_post[0];
    const size_t m = g->p.m < KNN_BUCKET_M ? g->p.m : KNN_BUCKET_M;
    const size_t graph_bytes = g->capacity * g->slot_bytes, level_bytes = n * (2 * m + 1) * sizeof(uint32_t);
    const double t_start = knn_now_ns();
    double last = 0;
    for (size_t l = 2; b->n_levels < KNN_BUCKET_LEVELS; l++) {
        size_t rows = (n + ((size_t)1 << l) - 1) >> l;
        if (rows < min_rows) break;
        if (forced_levels ? b->n_levels == forced_levels
                          : g->ns_scan * (double)rows / 4.0 < plain || (b->n_levels + 1) * level_bytes > graph_bytes) {
            break;
        }
        /* build time: a level costs about what the previous one did (the first, a fifth of the graph's);
         * a loaded graph, whose link time is unknown, builds one level */
        double spent = knn_now_ns() - t_start, next = b->n_levels ? last : 0.2 * g->link_ns;
        int over = g->link_ns > 0 ? spent + next > BUCKET_BUILD_BUDGET * g->link_ns : b->n_levels >= 1;
        if (!forced_levels && over) break;
        knn_bucket_level *lv = &b->lv[b->n_levels++];
        lv->rows = rows;
        double t_level = knn_now_ns();
        if (!build_level(g, b, lv, l)) goto fail;
        last = knn_now_ns() - t_level;
    }
    if (b->n_levels == 0) goto fail;
    g->buckets_ops = &bucket_ops;
    return b;
fail:
    buckets_free(b);
    return NULL;
}

size_t knn_graph_bucket_info(knn_graph *g, size_t *rows, double *ns_beam, size_t cap) {
    pthread_rwlock_rdlock(&g->rw);
    const knn_buckets *b = atomic_load(&g->buckets);
    size_t n = b ? b->n_levels : 0;
    for (size_t l = 0; l < n && l < cap; l++) {
        rows[l] = b->lv[l].rows;
        if (ns_beam) {
            ns_beam[2 * l] = b->lv[l].ns_beam[0];
            ns_beam[2 * l + 1] = b->lv[l].ns_beam[1];
        }
    }
    pthread_rwlock_unlock(&g->rw);
    return n;
}
