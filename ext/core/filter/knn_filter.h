/* Filtered search: the k nearest live rows of a graph index among given ids, or among the rows a predicate
 * over its attribute columns accepts.
 *
 * The path for predicates the index cannot evaluate itself (joins, subqueries, functions): DuckDB
 * evaluates the WHERE over the relation and hands the matching ids over in the same statement (the
 * knn_among aggregate), and the index searches only those rows. The ids become an allow-list bitmap over
 * node numbers, one row selector (select/knn_selector.h) for every query of the call, and a planner per
 * query picks between two plans by the selector's share (the design note is in filter_among.c):
 *   - exact: score the m matching rows, gathered from the bitmap;
 *   - postfilter: the plain beam admitting only matching rows (non-matching rows still route it), given
 *     a budget of distances equal to the exact plan's; if it runs out, or finds fewer than k rows, the
 *     exact plan answers.
 * Either way, k rows come back whenever k live rows match. */
#ifndef KNN_FILTER_H
#define KNN_FILTER_H

#include <stddef.h>
#include <stdint.h>

#include "base/knn_error.h"
#include "attrs/knn_predicate.h"
#include "graph/knn_graph.h"

/* Plans as knn_graph_search_among reports them (the window plans' codes where they mean the same). */
enum {
    KNN_AMONG_EXACT = 0,    /* scan of the matching rows */
    KNN_AMONG_TWO_HOP = 1,  /* two-hop traversal (ACORN-1) over the matching rows */
    KNN_AMONG_FALLBACK = 2, /* the postfilter beam gave up (budget, or fewer than k rows): exact answered */
    KNN_AMONG_POST = 3,     /* in-search postfilter beam */
    KNN_AMONG_ALL = 5       /* every live row matches: the unfiltered search */
};

/* nq queries (rows of `queries`), each answered with its k nearest live rows whose id is one of
 * ids[0..n_ids) (ids not in the index, and repeats, are ignored), on `threads` threads (0: every core for
 * a batch, the caller's thread for one query). ef = 0: the index default. Writes row q
 * of out_ids / out_dists (stride k) and found[q] (missing entries: id -1, distance +inf); plans[q] (plans
 * may be NULL) is a KNN_AMONG_* code. rerank: a coded graph's re-rank depth
 * (knn_graph_search_rerank; 0: the whole beam). *matched (may be NULL) is the number of live rows the ids name. */
knn_status knn_graph_search_among(knn_graph *g, const float *queries, size_t nq, size_t k, size_t ef, size_t rerank,
                                  const int64_t *ids, size_t n_ids, size_t threads, int64_t *out_ids, float *out_dists,
                                  size_t *found, int *plans, size_t *matched, knn_error *err);

/* knn_graph_search_among for the rows on which a predicate over the index's attribute columns is TRUE
 * (attrs/knn_predicate.h; evaluated once per call, under the read lock, into the same bitmap), and, when
 * `windowed`, whose label lies in [lo, hi]. Errors from the predicate (unknown column, type mismatch)
 * come back before any search; an index without attribute columns says how to add them. */
knn_status knn_graph_search_filter(knn_graph *g, const float *queries, size_t nq, size_t k, size_t ef, size_t rerank,
                                   const knn_predicate *pred, int windowed, double lo, double hi, size_t threads,
                                   int64_t *out_ids, float *out_dists, size_t *found, int *plans, size_t *matched,
                                   knn_error *err);

#endif
