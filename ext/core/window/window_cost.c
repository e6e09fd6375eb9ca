/* The window cost model: what each plan costs on this index and machine, measured rather than assumed.
 *
 * The calibration (at the end of a build, optimize or load, through knn_window_prepare, and again when
 * the sorted rows have doubled) times the exact window scan per row and each graph beam per search on
 * windows holding 2^0 .. 2^-5 of the rows, checks that the two-hop beam is as accurate as the
 * postfilter where it is cheaper, and builds the bucket graphs where they pay. knn_window_choose_plan
 * turns those timings and a window's share of rows into the cheapest plan. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include "window/window_internal.h"
#include "base/knn_topk.h"

int knn_window_beam(const knn_graph *g, knn_search_ctx *c, const float *q, int plan, const knn_selector *sel,
                    size_t s, size_t e, size_t ef, int all_live, size_t budget, uint32_t ep, float epd, size_t *ntop,
                    size_t *visits) {
    if (ep == KNN_NO_NODE) knn_graph_descend(g, c, q, &ep, &epd);
    if (plan == KNN_PLAN_POST) {
        c->budget = budget;
        c->over = 0;
        /* a window holding every row (and no tombstones) filters nothing: the plain search */
        int ok = knn_graph_search_layer(g, c, q, ep, epd, ef, 0, KNN_LOCK_NONE, all_live ? NULL : sel, ntop, visits);
        c->budget = 0;
        return ok;
    }
    /* seeds spread over the window in label order (they also reach windows far from the query) */
    uint32_t seeds[16];
    size_t nseeds = 0, span = e - s;
    for (size_t i = 0; span && i < 16; i++) {
        uint32_t v = g->win.nodes[s + (span * (2 * i + 1)) / 32];
        if (!g->deleted[v]) seeds[nseeds++] = v;
    }
    return knn_graph_two_hop_layer(g, c, q, ep, seeds, nseeds, ef, (uint32_t)g->m0, sel, ntop, NULL);
}

/* Calibration window j: holds 2^-j of the sorted rows, at a position varying with the query number i. */
static void cal_window(const knn_graph *g, int j, size_t i, size_t *s, size_t *e) {
    size_t w = g->win.n >> j;
    if (w == 0) w = 1;
    size_t room = g->win.n - w;
    *s = room ? (i * 40503u + 12345u) % (room + 1) : 0;
    *e = *s + w;
}

/* Calibration query i at point j: a stored row spread over the index. */
static const float *cal_query(const knn_graph *g, int j, size_t i) {
    return knn_graph_vec(g, g->win.nodes[(i * 2654435761u + 7u * (size_t)j) % g->win.n]);
}

/* How many of the exact top-10 of calibration window (j, i) the graph plan finds; -1 when out of memory. */
static long cal_hits(const knn_graph *g, knn_search_ctx *c, int j, size_t i, int plan) {
    enum { K = 10 };
    size_t s, e, ntop, found = 0;
    int64_t truth[K], ids[K];
    float d[K];
    knn_error err;
    cal_window(g, j, i, &s, &e);
    const float *v = cal_query(g, j, i);
    double lo = g->win.labels[s], hi = g->win.labels[e - 1];
    knn_selector sel = knn_graph_window_selector(g, lo, hi, 1.0);
    if (knn_window_exact(g, v, K, lo, hi, s, e, truth, d, &found, 1, &err) != KNN_OK) return -1;
    if (!knn_window_beam(g, c, v, plan, &sel, s, e, g->p.ef, 0, 0, KNN_NO_NODE, 0, &ntop, NULL)) return -1;
    if ((ntop = knn_graph_top_finish(g, c, v, ntop, K)) == SIZE_MAX) return -1;
    size_t n = ntop < K ? ntop : K;
    for (size_t t = 0; t < n; t++) ids[t] = g->ids[c->top[t].id];
    long hits = 0;
    for (size_t a = 0; a < found; a++) {
        for (size_t b = 0; b < n; b++) hits += truth[a] == ids[b];
    }
    return hits;
}

/* Rows per timed exact scan in the calibration. */
#define CAL_SCAN_ROWS 16384

/* Measures, once per index and machine, what each plan costs here: ns per row of the exact window
 * scan (contiguous, on the sorted copy), and ns per search of each graph plan at the default ef on
 * windows of 2^0 .. 2^-(KNN_CAL_POINTS-1) of the rows. Every search is timed on its own and the median
 * is kept; the two graph plans are timed interleaved on the same queries and windows, so load from
 * other processes skews neither against the other. Queries are stored rows spread over the index. */
void knn_window_calibrate(knn_graph *g, knn_search_ctx *c) {
    if (g->win.n == 0 || (atomic_load(&g->calibrated) && g->win.n < 2 * atomic_load(&g->cal_rows))) return;
    pthread_mutex_lock(&g->cal_lock);
    if (atomic_load(&g->calibrated) && g->win.n < 2 * g->cal_rows) {
        pthread_mutex_unlock(&g->cal_lock);
        return;
    }
    enum { SEARCHES = 9 };
    knn_error err;
    knn_topk t;
    double scan[SEARCHES], two[KNN_CAL_POINTS], post[KNN_CAL_POINTS], t2[SEARCHES], tp[SEARCHES];
    double dist_n[SEARCHES] = {0};
    unsigned char two_ok[KNN_CAL_POINTS] = {0};
    /* the exact plan as queries run it (screened when the structure has codes), on slices wide enough
     * for the screen to pay as it does on wide windows */
    size_t rows = g->win.n < CAL_SCAN_ROWS ? g->win.n : CAL_SCAN_ROWS;
    int ok = knn_topk_init(&t, 10, NULL) == KNN_OK;
    for (size_t i = 0; ok && i < SEARCHES; i++) {
        size_t s0 = g->win.n > rows ? (i * 40503u) % (g->win.n - rows + 1) : 0;
        const float *q = g->win.vecs + ((i * 2654435761u) % g->win.n) * g->dim;
        int64_t ids[10];
        float dists[10];
        size_t found;
        double t0 = knn_now_ns();
        knn_window_exact(g, q, 10, -INFINITY, INFINITY, s0, s0 + rows, ids, dists, &found, 1, &err);
        scan[i] = (knn_now_ns() - t0) / (double)rows;
    }
    knn_topk_free(&t);
    double scan_ns_med = knn_median(scan, SEARCHES);
    int time_two = 1, time_post = 1;
    for (int j = 0; ok && j < KNN_CAL_POINTS; j++) {
        double exact_j = scan_ns_med * (double)(g->win.n >> j);
        if (!time_two && !time_post) { /* both beams already lost to the exact scan, which only gets cheaper */
            two[j] = two[j - 1];
            post[j] = 2 * post[j - 1];
            two_ok[j] = 0;
            continue;
        }
        for (size_t i = 0; ok && i < SEARCHES; i++) {
            size_t s, e, ntop;
            cal_window(g, j, i, &s, &e);
            const float *v = cal_query(g, j, i);
            double lo = g->win.labels[s], hi = g->win.labels[e - 1];
            knn_selector sel = knn_graph_window_selector(g, lo, hi, 1.0);
            double t0 = knn_now_ns();
            if (time_two) {
                ok = knn_window_beam(g, c, v, KNN_PLAN_TWO_HOP, &sel, s, e, g->p.ef, 0, 0, KNN_NO_NODE, 0, &ntop, NULL);
                if (ok && c->coded) ok = knn_graph_top_finish(g, c, v, ntop, 10) != SIZE_MAX;
            }
            double t1 = knn_now_ns();
            size_t vis = 0;
            if (time_post) {
                ok = ok && knn_window_beam(g, c, v, KNN_PLAN_POST, &sel, s, e, g->p.ef, 0, 0, KNN_NO_NODE, 0, &ntop, &vis);
                /* a coded search pays its re-rank too */
                if (ok && c->coded) ok = knn_graph_top_finish(g, c, v, ntop, 10) != SIZE_MAX;
            }
            if (j == 0) dist_n[i] = (double)vis;
            t2[i] = time_two ? t1 - t0 : (j ? 2 * two[j - 1] : INFINITY);
            tp[i] = time_post ? knn_now_ns() - t1 : (j ? 2 * post[j - 1] : INFINITY);
        }
        two[j] = knn_median(t2, SEARCHES);
        post[j] = knn_median(tp, SEARCHES);
        /* a beam slower than the exact scan here stays slower on every smaller window: stop timing it */
        time_two = two[j] < exact_j;
        time_post = post[j] < exact_j;
        /* Where the two-hop beam is the cheaper beam it must also be as accurate: its hits against the
         * exact window top-10 may trail the postfilter's by at most one over these queries. */
        two_ok[j] = 0;
        if (ok && two[j] < post[j] && two[j] < exact_j) {
            long hits_two = 0, hits_post = 0;
            for (size_t i = 0; ok && i < SEARCHES; i++) {
                long h2 = cal_hits(g, c, j, i, KNN_PLAN_TWO_HOP), hp = cal_hits(g, c, j, i, KNN_PLAN_POST);
                if (h2 < 0 || hp < 0) ok = 0;
                hits_two += h2;
                hits_post += hp;
            }
            two_ok[j] = ok && hits_two + 1 >= hits_post;
        }
    }
    if (ok) {
        g->ns_scan = scan_ns_med > 0 ? scan_ns_med : 1e-3;
        for (int j = 0; j < KNN_CAL_POINTS; j++) {
            g->ns_two_hop[j] = two[j] > 0 ? two[j] : 1e-3;
            g->ns_post[j] = post[j] > 0 ? post[j] : 1e-3;
            g->two_hop_ok[j] = two_ok[j];
        }
        double nd = knn_median(dist_n, SEARCHES);
        g->ns_distance = nd > 0 ? g->ns_post[0] / nd : g->ns_scan;
        atomic_store(&g->cal_rows, g->win.n);
        atomic_store(&g->calibrated, 1);
        if (atomic_load(&g->buckets) == NULL) atomic_store(&g->buckets_tried, 0); /* costs changed: try again */
    }
    pthread_mutex_unlock(&g->cal_lock);
}

/* Builds the bucket graphs once the costs are known (under cal_lock). */
void knn_window_ensure_buckets(knn_graph *g) {
    if (atomic_load(&g->buckets_tried) || !atomic_load(&g->calibrated)) return;
    pthread_mutex_lock(&g->cal_lock);
    if (!atomic_load(&g->buckets_tried)) {
        atomic_store(&g->buckets, knn_buckets_build(g, 0));
        atomic_store(&g->buckets_tried, 1);
    }
    pthread_mutex_unlock(&g->cal_lock);
}

size_t knn_graph_force_buckets(knn_graph *g, size_t levels) {
    pthread_rwlock_wrlock(&g->rw);
    knn_graph_drop_buckets(g);
    knn_search_ctx *c = g->win.n ? knn_graph_ctx_acquire(g) : NULL;
    size_t built = 0;
    if (c) {
        knn_window_calibrate(g, c);
        knn_graph_ctx_release(g, c);
        pthread_mutex_lock(&g->cal_lock);
        knn_buckets *b = atomic_load(&g->calibrated) ? knn_buckets_build(g, levels) : NULL;
        atomic_store(&g->buckets, b);
        atomic_store(&g->buckets_tried, 1);
        built = b ? b->n_levels : 0;
        pthread_mutex_unlock(&g->cal_lock);
    }
    pthread_rwlock_unlock(&g->rw);
    return built;
}

void knn_window_prepare(knn_graph *g) {
    pthread_rwlock_rdlock(&g->rw); /* as a window query: writers wait, calibrations serialise on cal_lock */
    knn_search_ctx *c = g->win.n ? knn_graph_ctx_acquire(g) : NULL;
    if (c) { /* else nothing to calibrate, or out of memory: the first window query calibrates instead */
        knn_window_calibrate(g, c);
        knn_window_ensure_buckets(g);
        knn_graph_ctx_release(g, c);
    }
    pthread_rwlock_unlock(&g->rw);
}

/* A graph plan's calibrated cost at window fraction f (0 < f <= 1): log-linear in log2 f between the
 * calibration points, extended beyond the last one along its last segment. */
static double plan_cost(const double *ns, double f) {
    double x = -log2(f); /* >= 0 */
    int j = (int)x;
    if (j >= KNN_CAL_POINTS - 1) j = KNN_CAL_POINTS - 2;
    double a = log(ns[j]), b = log(ns[j + 1]);
    return exp(a + (b - a) * (x - j));
}

/* Whether the calibration found the two-hop beam as accurate as the postfilter around fraction f. */
static int two_hop_allowed(const knn_graph *g, double f) {
    double x = -log2(f);
    int j = (int)x;
    if (j >= KNN_CAL_POINTS - 1) return g->two_hop_ok[KNN_CAL_POINTS - 1];
    return g->two_hop_ok[j] && (x == j || g->two_hop_ok[j + 1]);
}

/* The cheapest plan for a window of w rows (a fraction f of the live rows) at this ef, by the calibrated
 * costs (read under cal_lock: a recalibration may be rewriting them); the postfilter beam is costed at
 * fraction f_post (f, or the query's lower local selectivity), the two-hop beam only if allow_two. The two-hop beam is offered only
 * where the calibration found it as accurate as the postfilter, and only when the window holds at least
 * 4/m0 of the rows: below that, two-hop bridges no longer keep the in-window subgraph navigable. The
 * in-search postfilter stays accurate at any size; its cost grows as 1/f, which the calibration sees. */
int knn_window_choose_plan(knn_graph *g, size_t w, double f, double f_post, int allow_two, size_t ef, double lo,
                           double hi, int *bucket_level) {
    if (!atomic_load(&g->calibrated)) return KNN_PLAN_EXACT;
    double scale = (double)ef / (double)g->p.ef;
    pthread_mutex_lock(&g->cal_lock);
    double exact_cost = (double)w * g->ns_scan;
    double post_cost = plan_cost(g->ns_post, f_post) * scale;
    int two_ok = allow_two && f >= 4.0 / (double)g->m0 && two_hop_allowed(g, f);
    double two_cost = two_ok ? plan_cost(g->ns_two_hop, f) * scale : INFINITY;
    double bucket_cost = bucket_level ? knn_buckets_cost(g, atomic_load(&g->buckets), lo, hi, ef, 0, bucket_level)
                                      : INFINITY;
    pthread_mutex_unlock(&g->cal_lock);
    int chosen = KNN_PLAN_EXACT;
    double best = exact_cost;
    if (post_cost < best && post_cost <= two_cost) chosen = KNN_PLAN_POST, best = post_cost;
    if (two_cost < best) chosen = KNN_PLAN_TWO_HOP, best = two_cost;
    if (bucket_cost < best) chosen = KNN_PLAN_BUCKET;
    return chosen;
}

