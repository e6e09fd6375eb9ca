/* Filtered graph traversal: the beams that return only the rows a selector admits.
 *
 * Two strategies, both predicate-agnostic (they see rows only through knn_selector_admits):
 *   - the in-search postfilter beam: the plain layer-0 beam, where rows outside the selector still
 *     route the search but are never kept (as hnswlib's filter functor); its cost grows as 1/share;
 *   - the two-hop traversal of ACORN-1 (Patel et al., SIGMOD 2024): the beam holds admitted rows only
 *     and crosses others as bridges, so distances are computed for admitted rows only.
 * The planners (window/) choose between them and the exact scan by the selector's estimated share and
 * the local share around the query (knn_graph_local_fraction). */
#include <math.h>
#include <stdint.h>

#include "graph/graph_internal.h"

/* Most in-window nodes one expansion may score; bounds the 2-hop fan-out (ACORN caps it similarly). */
#define WINDOW_FRESH_CAP 512

/* Collects the unvisited in-window nodes reachable from node in one or two hops (through
 * out-of-window neighbours), marking them visited; returns how many were written to out (at most
 * cap, as ACORN truncates the expanded neighbour list to its degree). */
static uint32_t window_neighbours(const knn_graph *g, knn_search_ctx *c, const knn_selector *sel, uint32_t node,
                                  uint32_t *out, uint32_t cap) {
    const uint32_t *l = knn_graph_links(g, node, 0);
    uint32_t fresh = 0;
    if (cap > WINDOW_FRESH_CAP) cap = WINDOW_FRESH_CAP;
    for (uint32_t j = 0; j < l[0] && fresh < cap; j++) {
        uint32_t e = l[1 + j];
        if (c->marks[e] == c->epoch) continue;
        c->marks[e] = c->epoch;
        if (knn_selector_admits(sel, e)) {
            out[fresh++] = e;
            continue;
        }
        const uint32_t *l2 = knn_graph_links(g, e, 0);
        for (uint32_t t = 0; t < l2[0] && fresh < cap; t++) {
            uint32_t e2 = l2[1 + t];
            if (c->marks[e2] == c->epoch || !knn_selector_admits(sel, e2)) continue;
            c->marks[e2] = c->epoch;
            out[fresh++] = e2;
        }
    }
    return fresh;
}

/* Window search on layer 0 in the manner of ACORN-1 (Patel et al., SIGMOD 2024): the beam holds only
 * in-window nodes, and out-of-window neighbours are crossed as bridges (their in-window neighbours are
 * taken directly), so distances are computed for in-window nodes only and the cost does not grow as
 * 1/selectivity. Seeds: the in-window neighbourhood of the descent's entry point plus nodes spread
 * over the window in label order (which also covers windows far from the query). */
int knn_graph_two_hop_layer(const knn_graph *g, knn_search_ctx *c, const float *q, uint32_t ep, const uint32_t *seeds,
                            size_t nseeds, size_t ef, uint32_t fanout, const knn_selector *sel, size_t *ntop,
                            size_t *visits) {
    uint32_t buf[WINDOW_FRESH_CAP + 64];
    float dist[WINDOW_FRESH_CAP + 64];
    size_t ncand = 0;
    *ntop = 0;
    knn_ctx_new_epoch(c);
    uint32_t fresh = 0;
    c->marks[ep] = c->epoch;
    if (knn_selector_admits(sel, ep)) buf[fresh++] = ep;
    fresh += window_neighbours(g, c, sel, ep, buf + fresh, WINDOW_FRESH_CAP);
    for (size_t i = 0; i < nseeds && fresh < WINDOW_FRESH_CAP + 64; i++) {
        if (c->marks[seeds[i]] == c->epoch) continue;
        c->marks[seeds[i]] = c->epoch;
        buf[fresh++] = seeds[i];
    }
    float bound = INFINITY;
    for (;;) {
        knn_graph_dists(g, c, q, buf, fresh, dist);
        if (visits) *visits += fresh;
        for (uint32_t j = 0; j < fresh; j++) {
            if (*ntop < ef || dist[j] < bound) {
                if (!knn_heap_push(&c->cand, &ncand, &c->cand_cap, -dist[j], buf[j])) return 0;
                if (!knn_heap_push(&c->top, ntop, &c->top_cap, dist[j], buf[j])) return 0;
                if (*ntop > ef) knn_heap_pop(c->top, ntop);
                bound = c->top[0].key;
            }
        }
        if (ncand == 0) break;
        knn_hitem best = c->cand[0];
        if (-best.key > bound && *ntop >= ef) break;
        knn_heap_pop(c->cand, &ncand);
        fresh = window_neighbours(g, c, sel, best.id, buf, fanout);
    }
    return 1;
}
/* Local selectivity near the query: the share of admitted nodes among the descent's landing node and
 * its layer-0 neighbours, Laplace-smoothed ((hits + 1) / (nodes + 2)). NaviX (Sehgal and Salihoglu,
 * VLDB 2025) picks its filtered-search heuristic per node from the same local measure. */
double knn_graph_local_fraction(const knn_graph *g, const knn_selector *sel, uint32_t ep) {
    const uint32_t *l = knn_graph_links(g, ep, 0);
    size_t hits = (size_t)knn_selector_admits(sel, ep);
    for (uint32_t j = 0; j < l[0]; j++) hits += (size_t)knn_selector_admits(sel, l[1 + j]);
    return ((double)hits + 1.0) / ((double)l[0] + 3.0);
}

int knn_graph_post_beam(const knn_graph *g, knn_search_ctx *c, const float *q, const knn_selector *sel, size_t ef,
                        double min_local, size_t *ntop) {
    *ntop = 0;
    if (g->entry == KNN_NO_NODE) return 1;
    uint32_t ep;
    float epd;
    knn_graph_descend(g, c, q, &ep, &epd);
    if (min_local > 0 && knn_graph_local_fraction(g, sel, ep) < min_local) return 2;
    c->budget = 0;
    c->over = 0;
    return knn_graph_search_layer(g, c, q, ep, epd, ef, 0, KNN_LOCK_NONE, sel, ntop, NULL);
}

knn_selector knn_graph_window_selector(const knn_graph *g, double lo, double hi, double share) {
    knn_selector s = knn_selector_all();
    knn_selector_live(&s, g->deleted, 1.0);
    knn_selector_label(&s, g->labels, lo, hi, share);
    return s;
}
