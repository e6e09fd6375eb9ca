/* The window planner: per query, the cheapest plan for the k nearest live rows labelled in [lo, hi].
 *
 * Rows carry a numeric label. A window query [lo, hi] is planned per query over the window's row
 * count w, found by binary search in the label-sorted node list (plus a linear pass over the delta of
 * rows labelled since the last rebuild):
 *   - exact: score the w in-window nodes directly (the label-sorted list makes them one gather);
 *   - graph: beam search over the whole graph admitting only in-window nodes; the beam must collect
 *     ef admitted nodes, so it visits about (unfiltered visits) * n / w nodes.
 * The costs come from a calibration run on first use (ns per scanned row, ns per visited node and
 * nodes visited per unfiltered search on this index and machine), not from fixed thresholds. When a
 * graph search finds fewer than k rows, an exact pass over the window decides, so k rows come back
 * whenever k live rows lie in the window. The window is handed to every plan as one row selector (select/knn_selector.h). */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include "window/window_internal.h"

/* A window holding nearly every row (f >= NEAR_WHOLE): the plain search for a few more than k / f rows,
 * filtered, usually holds k in-window rows, as a doubling postfilter's first round does, without the
 * label test per candidate of the in-search postfilter (a cache miss each: measured 12% slower on
 * MiniLM, whose labels miss a few rows). Returns 1 when it answered (or failed, in *st), 0 to plan. */
#define NEAR_WHOLE 0.8
knn_status knn_graph_search_window(knn_graph *g, const float *query, size_t k, size_t ef, double lo, double hi,
                                   int64_t *out_ids, float *out_dists, size_t *found, int *plan, knn_error *err) {
    return knn_graph_search_window_plan(g, query, k, ef, 0, lo, hi, atomic_load(&g->forced_plan), out_ids, out_dists,
                                        found, plan, err);
}

knn_status knn_graph_search_window_rerank(knn_graph *g, const float *query, size_t k, size_t ef, size_t rerank,
                                          double lo, double hi, int64_t *out_ids, float *out_dists, size_t *found,
                                          int *plan, knn_error *err) {
    return knn_graph_search_window_plan(g, query, k, ef, rerank, lo, hi, atomic_load(&g->forced_plan), out_ids,
                                        out_dists, found, plan, err);
}

static int near_whole(knn_graph *g, knn_search_ctx *c, const float *q, size_t k, size_t ef, const knn_selector *sel,
                      int64_t *out_ids, float *out_dists, size_t *found, knn_status *st) {
    const double f = knn_selector_fraction(sel);
    enum { CAP = 256 };
    size_t kk = (size_t)ceil((double)k / f) + 2, nf = 0, m = 0;
    if (kk > CAP) return 0;
    int64_t ids[CAP];
    float d[CAP];
    knn_error err;
    if (knn_graph_plain_search(g, c, q, kk, ef > kk ? ef : kk, ids, d, &nf, &err) != KNN_OK) return 0;
    for (size_t j = 0; j < nf && m < k; j++) {
        uint32_t v;
        if (!knn_idmap_get(&g->map, ids[j], &v) || !knn_selector_admits(sel, v)) continue;
        out_ids[m] = ids[j];
        out_dists[m++] = d[j];
    }
    if (m < k) return 0;
    *found = k;
    *st = KNN_OK;
    return 1;
}

knn_status knn_graph_search_window_plan(knn_graph *g, const float *query, size_t k, size_t ef, size_t rerank,
                                        double lo, double hi, int force, int64_t *out_ids, float *out_dists,
                                        size_t *found, int *plan, knn_error *err) {
    *found = 0;
    if (plan) *plan = KNN_PLAN_EXACT;
    if (k == 0) return knn_error_set(err, KNN_EINVAL, "k must be >= 1, got 0");
    if (isnan(lo) || isnan(hi)) return knn_error_set(err, KNN_EINVAL, "window bounds must not be NaN");
    knn_status s = KNN_OK;
    knn_search_ctx *c = NULL;
    pthread_rwlock_rdlock(&g->rw);
    if (lo > hi || g->count - g->n_deleted == 0) goto done; /* an empty window: no rows */
    const float *q;
    if ((s = knn_graph_query_begin(g, query, &c, &q, err)) != KNN_OK) goto done;
    c->rerank = rerank;
    size_t lo_pos = knn_graph_label_bound(g->win.labels, g->win.n, lo, 0);
    size_t hi_pos = knn_graph_label_bound(g->win.labels, g->win.n, hi, 1);
    size_t w = hi_pos - lo_pos;
    for (size_t i = 0; i < g->win.n_delta; i++) {
        double l = g->labels[g->win.delta[i]];
        w += l >= lo && l <= hi;
    }
    if (w == 0) goto done;
    knn_window_calibrate(g, c); /* once per index (redone when it doubles): the first window query pays for it */
    knn_window_ensure_buckets(g);
    if (w == g->count && g->n_deleted == 0 && force < 0) {
        /* The window holds every row: nothing to filter, no plan to choose. Exactly the unfiltered search
         * (no label test per candidate, no budget), so it never trails a postfilter here. */
        if (plan) *plan = KNN_PLAN_POST;
        s = knn_graph_plain_search(g, c, q, k, ef, out_ids, out_dists, found, err);
        goto done;
    }
    if (ef == 0) ef = knn_graph_default_ef(g);
    if (ef < k) ef = k;
    if (c->coded && c->rerank > ef) ef = c->rerank; /* the beam holds every row to re-rank */
    /* the window's rows as a selector, its share the exact count (clamped to 1: the sorted list may still
     * count rows deleted since its rebuild) */
    knn_selector sel = knn_graph_window_selector(g, lo, hi, (double)w / (double)(g->count - g->n_deleted));
    const double f = knn_selector_fraction(&sel);
    if (force < 0 && f >= NEAR_WHOLE && near_whole(g, c, q, k, ef, &sel, out_ids, out_dists, found, &s)) {
        if (plan) *plan = KNN_PLAN_POST;
        goto done;
    }
    int chosen = force, level = -1;
    uint32_t ep = KNN_NO_NODE;
    float epd = 0;
    if (chosen == KNN_PLAN_BUCKET || chosen == KNN_FORCE_BUCKET_PARTS) { /* forced: the cheapest level, if any */
        knn_buckets_cost(g, atomic_load(&g->buckets), lo, hi, ef, 1, &level);
        chosen = level < 0 ? KNN_PLAN_EXACT : KNN_PLAN_BUCKET;
    } else if (chosen != KNN_PLAN_EXACT && chosen != KNN_PLAN_TWO_HOP && chosen != KNN_PLAN_POST) {
        chosen = knn_window_choose_plan(g, w, f, f, 1, ef, lo, hi, &level);
        if (chosen != KNN_PLAN_EXACT) {
            /* The calibration timed typical queries, whose neighbourhood holds about a fraction f of
             * in-window rows. Where the query's holds far fewer (a window away from the query: label-
             * correlated data, the adversarial set), the postfilter beam must walk everything nearer than
             * the window, and both beams enter the window from afar with the recall of a far query. Cost
             * the postfilter at the local fraction then, without the two-hop beam: a beam is kept only
             * when it still beats the exact scan. The descent is reused by the beam. */
            knn_graph_descend(g, c, q, &ep, &epd);
            double fl = knn_graph_local_fraction(g, &sel, ep);
            if (fl < 0.5 * f) chosen = knn_window_choose_plan(g, w, f, fl, 0, ef, lo, hi, NULL); /* buckets: far too */
        }
    }
    if (chosen == KNN_PLAN_EXACT) {
        s = knn_window_exact(g, q, k, lo, hi, lo_pos, hi_pos, out_ids, out_dists, found, 1, err);
        goto done;
    }
    if (plan) *plan = chosen;
    if (chosen == KNN_PLAN_BUCKET) {
        s = knn_buckets_search(g, atomic_load(&g->buckets), level, force == KNN_PLAN_BUCKET, q, k, ef, rerank, lo, hi,
                               out_ids, out_dists, found, err);
        if (s == KNN_OK && *found < k) { /* the window decides exactly (it may hold fewer than k rows) */
            if (plan) *plan = KNN_PLAN_FALLBACK;
            s = knn_window_exact(g, q, k, lo, hi, lo_pos, hi_pos, out_ids, out_dists, found, 1, err);
        }
        goto done;
    }
    size_t ntop;
    /* A query may be far harder than the calibration's (a window far from the query makes the postfilter
     * beam walk much of the graph): it stops once it has spent what the exact scan of the window costs,
     * and the exact scan answers, so no query costs more than about twice the exact plan. */
    size_t budget = 0;
    if (chosen == KNN_PLAN_POST && force < 0 && atomic_load(&g->calibrated)) {
        pthread_mutex_lock(&g->cal_lock);
        double b = (double)w * g->ns_scan / g->ns_distance;
        pthread_mutex_unlock(&g->cal_lock);
        budget = b < 1.0 ? 1 : b > 1e15 ? 0 : (size_t)b;
    }
    if (!knn_window_beam(g, c, q, chosen, &sel, lo_pos, hi_pos, ef, g->n_deleted == 0 && w == g->count, budget, ep,
                     epd, &ntop, NULL)) {
        s = knn_error_set(err, KNN_ENOMEM, "out of memory during search");
        goto done;
    }
    if (ntop < k || (budget && c->over)) { /* the window decides exactly (it may hold fewer than k rows) */
        if (plan) *plan = KNN_PLAN_FALLBACK;
        s = knn_window_exact(g, q, k, lo, hi, lo_pos, hi_pos, out_ids, out_dists, found, 1, err);
        goto done;
    }
    if (knn_graph_top_finish(g, c, q, ntop, k) == SIZE_MAX) {
        s = knn_error_set(err, KNN_ENOMEM, "out of memory during search");
        goto done;
    }
    for (size_t j = 0; j < k; j++) {
        out_ids[j] = g->ids[c->top[j].id];
        out_dists[j] = c->top[j].key;
    }
    *found = k;
done:
    if (c) knn_graph_ctx_release(g, c);
    pthread_rwlock_unlock(&g->rw);
    return s;
}

void knn_graph_force_window_plan(knn_graph *g, int plan) {
    int ok = plan == KNN_PLAN_EXACT || plan == KNN_PLAN_TWO_HOP || plan == KNN_PLAN_POST || plan == KNN_PLAN_BUCKET ||
             plan == KNN_FORCE_BUCKET_PARTS;
    atomic_store(&g->forced_plan, ok ? plan : -1);
}
