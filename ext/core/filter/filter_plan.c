/* The per-query planner of the filtered searches (knn_filter.h), over the matching rows of one call.
 *
 * What it implements. Per query, the planner compares the two plans by the distances each computes:
 *   - exact: m distances, one per matching row, gathered in batches of EXACT_BATCH nodes from the
 *     bitmap (words with no bit set cost one load each);
 *   - postfilter: an unfiltered beam computes about d0 distances (d0 from the window calibration when the
 *     index has one, else ef * m0), and a beam that keeps only a share s = m / live of what it meets must
 *     walk about d0 / s of them before it holds ef matching rows.
 * So exact is planned when m < d0 * live / m, i.e. m^2 < d0 * live: for 400k rows and d0 ~ 2,000 that is
 * below ~28k matching rows (7%). Measured with each plan forced (benchmarks/results/filter-plans.md,
 * GloVe-400k): on random rows the two cross between 3% and 6% of the rows (exact 0.97 / 1.98 ms, beam
 * 2.35 / 1.69 ms), where the rule switches. Otherwise the postfilter runs with a budget of m distances,
 * what the exact plan costs: a filter correlated with the query (its rows far away, so the beam finds few
 * of them) spends the budget and hands over to the exact plan, so no query costs much more than twice the
 * exact plan, and a beam that finds fewer than min(k, m) rows does the same, which keeps the k-rows
 * guarantee. Before the beam, the share of matching rows around the descent's landing node is looked at
 * (knn_graph_local_fraction): under half the global share, the rows lie away from the query and the exact
 * plan answers at once (the rows farthest from the queries at 1/4 of GloVe: 4.1 ms, against 13.6 ms
 * through the budget). ACORN-1's two-hop traversal (plan 1) is measured but not planned: its recall on
 * this graph fell to 0.66-0.73 on the far rows and under 0.5 below 2^-8 of random rows.
 * This is the Milvus/Weaviate strategy switch by selectivity, with the window search's budget and
 * fallback (window/window_plan.c) carried over to any set of rows. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "filter/filter_internal.h"
#include "base/knn_parallel.h"
#include "base/knn_topk.h"

#define EXACT_BATCH 256 /* nodes scored per kernel call (knn_vdists takes up to 513) */

knn_status knn_filter_rows_alloc(const knn_graph *g, knn_filter_rows *a, knn_error *err) {
    a->words = (g->count + 63) / 64;
    a->m = 0;
    a->bits = calloc(a->words ? a->words : 1, sizeof *a->bits);
    if (a->bits == NULL) return knn_error_set(err, KNN_ENOMEM, "out of memory for a filter bitmap of %zu rows", g->count);
    return KNN_OK;
}

void knn_filter_rows_finish(const knn_graph *g, knn_filter_rows *a) {
    size_t m = 0;
    for (size_t w = 0; w < a->words; w++) {
        uint64_t bits = a->bits[w];
        if (bits == 0) continue;
        /* deleted nodes are rare: test only the set bits */
        for (uint64_t b = bits; b; b &= b - 1) {
            size_t v = w * 64 + (size_t)__builtin_ctzll(b);
            if (v >= g->count || g->deleted[v]) bits &= ~((uint64_t)1 << (v % 64));
        }
        a->bits[w] = bits;
        m += (size_t)__builtin_popcountll(bits);
    }
    a->m = m;
    a->sel = knn_selector_all();
    knn_selector_live(&a->sel, g->deleted, 1.0);
    knn_selector_allow(&a->sel, a->bits, g->count);
}

void knn_filter_clear_out(size_t nq, size_t k, int64_t *out_ids, float *out_dists, size_t *found, int *plans) {
    for (size_t i = 0; i < nq * k; i++) {
        out_ids[i] = -1;
        out_dists[i] = INFINITY;
    }
    for (size_t i = 0; i < nq; i++) {
        found[i] = 0;
        if (plans) plans[i] = KNN_AMONG_EXACT;
    }
}

/* The exact plan: every matching row scored, the k nearest kept (ties by id). */
static knn_status among_exact(const knn_graph *g, const knn_filter_rows *a, const float *q, size_t k, int64_t *out_ids,
                              float *out_dists, size_t *found, knn_error *err) {
    knn_topk t;
    knn_status s = knn_topk_init(&t, k, err);
    uint32_t nodes[EXACT_BATCH];
    float dist[EXACT_BATCH];
    size_t n = 0;
    for (size_t w = 0; s == KNN_OK && w <= a->words; w++) {
        uint64_t bits = w < a->words ? a->bits[w] : 0;
        for (; bits; bits &= bits - 1) nodes[n++] = (uint32_t)(w * 64 + (size_t)__builtin_ctzll(bits));
        /* score a full batch, and whatever is left after the last word */
        if (n + 64 > EXACT_BATCH || (w == a->words && n)) {
            knn_vdists(g, q, nodes, n, dist);
            for (size_t j = 0; s == KNN_OK && j < n; j++) s = knn_topk_offer(&t, dist[j], g->ids[nodes[j]], err);
            n = 0;
        }
    }
    if (s == KNN_OK) knn_topk_export(&t, out_ids, out_dists, found);
    knn_topk_free(&t);
    return s;
}

/* The postfilter plan with a budget; 1 when it answered, 0 when the exact plan must (budget spent, or
 * fewer than min(k, m) rows found, or fewer than min_local of the rows around the descent's landing
 * node match: the matching rows lie away from the query), -1 when out of memory. */
static int among_post(const knn_graph *g, knn_search_ctx *c, const knn_filter_rows *a, const float *q, size_t k, size_t ef,
                      size_t budget, double min_local, int64_t *out_ids, float *out_dists, size_t *found) {
    uint32_t ep;
    float epd;
    size_t ntop;
    knn_graph_descend(g, c, q, &ep, &epd);
    if (min_local > 0 && knn_graph_local_fraction(g, &a->sel, ep) < min_local) return 0;
    c->budget = budget;
    c->over = 0;
    int ok = knn_graph_search_layer(g, c, q, ep, epd, ef, 0, KNN_LOCK_NONE, &a->sel, &ntop, NULL);
    c->budget = 0;
    if (!ok) return -1;
    size_t want = k < a->m ? k : a->m;
    if (c->over || ntop < want) return 0;
    if (knn_graph_top_finish(g, c, q, ntop, want) == SIZE_MAX) return -1;
    for (size_t j = 0; j < want; j++) {
        out_ids[j] = g->ids[c->top[j].id];
        out_dists[j] = c->top[j].key;
    }
    *found = want;
    return 1;
}

/* Up to n matching nodes spread evenly through the bitmap: the two-hop plan's extra seeds, so a beam
 * whose landing node has no matching neighbour still starts among matching rows. */
static size_t spread_seeds(const knn_filter_rows *a, uint32_t *out, size_t n) {
    if (a->m == 0 || n == 0) return 0;
    const size_t step = a->m / n ? a->m / n : 1;
    size_t seen = 0, got = 0, next = step / 2;
    for (size_t w = 0; w < a->words && got < n; w++) {
        uint64_t bits = a->bits[w];
        size_t cnt = (size_t)__builtin_popcountll(bits);
        for (; bits && seen + cnt > next && got < n; bits &= bits - 1, seen++, cnt--) {
            if (seen == next) {
                out[got++] = (uint32_t)(w * 64 + (size_t)__builtin_ctzll(bits));
                next += step;
            }
        }
        seen += cnt;
    }
    return got;
}

/* The two-hop plan (ACORN-1's traversal, graph/graph_filter.c): the beam holds matching rows only and
 * crosses the others as bridges, so distances go to matching rows only. 1 when it answered, 0 when the
 * exact plan must (it scored more than `budget` rows, or found fewer than min(k, m)), -1 out of memory. */
static int among_two_hop(const knn_graph *g, knn_search_ctx *c, const knn_filter_rows *a, const float *q, size_t k,
                         size_t ef, size_t budget, int64_t *out_ids, float *out_dists, size_t *found) {
    uint32_t ep, seeds[16];
    float epd;
    size_t ntop = 0, visits = 0;
    knn_graph_descend(g, c, q, &ep, &epd);
    size_t ns = spread_seeds(a, seeds, sizeof seeds / sizeof seeds[0]);
    if (!knn_graph_two_hop_layer(g, c, q, ep, seeds, ns, ef, (uint32_t)g->m0, &a->sel, &ntop, &visits)) return -1;
    size_t want = k < a->m ? k : a->m;
    if ((budget && visits > budget) || ntop < want) return 0;
    if (knn_graph_top_finish(g, c, q, ntop, want) == SIZE_MAX) return -1;
    for (size_t j = 0; j < want; j++) {
        out_ids[j] = g->ids[c->top[j].id];
        out_dists[j] = c->top[j].key;
    }
    *found = want;
    return 1;
}

/* Distances an unfiltered beam of width ef computes on this index (see the design note). */
static double plain_distances(knn_graph *g, size_t ef) {
    double d0 = (double)ef * (double)g->m0;
    if (atomic_load(&g->calibrated)) {
        pthread_mutex_lock(&g->cal_lock);
        if (g->ns_distance > 0) d0 = g->ns_post[0] / g->ns_distance * (double)ef / (double)g->p.ef;
        pthread_mutex_unlock(&g->cal_lock);
    }
    return d0;
}

/* One query (read lock held, c from the pool). */
static knn_status among_one(knn_graph *g, knn_search_ctx *c, const knn_filter_rows *a, double d0, const float *query,
                            size_t k, size_t ef, int64_t *out_ids, float *out_dists, size_t *found, int *plan,
                            knn_error *err) {
    const float *q;
    knn_status s = knn_graph_prepare_query(g, c, query, &q, err);
    size_t live = g->count - g->n_deleted;
    *found = 0;
    if (s != KNN_OK || a->m == 0) return s;
    if (a->m == live) {
        *plan = KNN_AMONG_ALL;
        return knn_graph_plain_search(g, c, q, k, ef, out_ids, out_dists, found, err);
    }
    *plan = KNN_AMONG_EXACT;
    /* knn_graph_force_window_plan's knob forces a plan here too (0 exact, 1 two-hop, 3 the beam without a budget):
     * how benchmarks/filter_plans_forced.py measures each plan on its own */
    const int forced = atomic_load(&g->forced_plan);
    if (forced == 1) {
        int r = among_two_hop(g, c, a, q, k, ef, 0, out_ids, out_dists, found);
        if (r < 0) return knn_error_set(err, KNN_ENOMEM, "out of memory during search");
        *plan = r ? KNN_AMONG_TWO_HOP : KNN_AMONG_FALLBACK;
        if (r) return KNN_OK;
        return among_exact(g, a, q, k, out_ids, out_dists, found, err);
    }
    const int post = forced == 3 || (forced != 0 && (double)a->m * (double)a->m >= d0 * (double)live);
    if (post) {
        /* a share of matching rows around the query under half the global share: the beam would walk far
         * before it met them (measured on GloVe-400k, rows farthest from the queries: 3-6x the exact
         * scan at 1/4 .. 1/8 of the rows), so the exact scan answers straight away */
        const double local = forced == 3 ? 0 : 0.5 * (double)a->m / (double)live;
        int r = among_post(g, c, a, q, k, ef, forced == 3 ? 0 : a->m, local, out_ids, out_dists, found);
        if (r < 0) return knn_error_set(err, KNN_ENOMEM, "out of memory during search");
        *plan = r ? KNN_AMONG_POST : KNN_AMONG_FALLBACK;
        if (r) return KNN_OK;
    }
    return among_exact(g, a, q, k, out_ids, out_dists, found, err);
}

/* The queries of one call split over threads, each with its own search context. */
typedef struct among_job {
    knn_graph *g;
    const knn_filter_rows *a;
    double d0;
    const float *queries;
    size_t nq, k, ef, rerank, nthreads;
    int64_t *out_ids;
    float *out_dists;
    size_t *found;
    int *plans;
    knn_error *errs;
} among_job;

static void among_task(void *arg, size_t t) {
    among_job *j = arg;
    knn_search_ctx *c = knn_graph_ctx_acquire(j->g);
    if (c == NULL) {
        knn_error_set(&j->errs[t], KNN_ENOMEM, "out of memory for a search context");
        return;
    }
    c->rerank = j->rerank;
    for (size_t i = t; i < j->nq && j->errs[t].status == KNN_OK; i += j->nthreads) {
        int plan = KNN_AMONG_EXACT;
        among_one(j->g, c, j->a, j->d0, j->queries + i * j->g->dim, j->k, j->ef, j->out_ids + i * j->k,
                  j->out_dists + i * j->k, &j->found[i], &plan, &j->errs[t]);
        if (j->plans) j->plans[i] = plan;
    }
    knn_graph_ctx_release(j->g, c);
}

knn_status knn_filter_run(knn_graph *g, const knn_filter_rows *a, const float *queries, size_t nq, size_t k,
                          size_t ef, size_t rerank, size_t threads, int64_t *out_ids, float *out_dists, size_t *found,
                          int *plans, knn_error *err) {
    if (nq == 0) return KNN_OK;
    /* one thread per ~8 queries at most: a single query never pays for a thread start */
    size_t nt = threads ? threads : (nq > 1 ? knn_cpu_count() : 1);
    if (nt > (nq + 7) / 8) nt = (nq + 7) / 8;
    if (nt == 0) nt = 1;
    knn_error *errs = calloc(nt, sizeof *errs);
    if (errs == NULL) return knn_error_set(err, KNN_ENOMEM, "out of memory for %zu search threads", nt);
    if (ef == 0) ef = knn_graph_default_ef(g);
    if (ef < k) ef = k;
    if (g->qbits && rerank > ef) ef = rerank; /* the beam holds every row to re-rank */
    among_job job = {g, a, plain_distances(g, ef), queries, nq, k, ef, rerank, nt, out_ids, out_dists, found, plans,
                     errs};
    knn_parallel_run(nt, among_task, &job);
    knn_status s = knn_error_first(errs, nt, err);
    free(errs);
    return s;
}
