/* Row selector: which rows a search may return.
 *
 * One value that every filtered path takes: the exact scans (a flat index, the window's label-sorted
 * copy), the graph beams (plain, in-search postfilter, two-hop), the bucket beams, and the exports that
 * sampling over an index reads. It is FAISS's IDSelector idea in plain C: a selector is the conjunction
 * of the parts that are set (tombstones, a label range, an allow-list bitmap, a compiled predicate), and
 * knn_selector_admits tests one row. Adding a filter kind adds a part here, not a search path.
 *
 * Rows are positions in the structure being searched (graph nodes, flat slots, sorted-copy positions);
 * the arrays a selector points at are indexed the same way. Rows outside the selector still route a
 * graph search (as hnswlib's filter functor): they are never returned.
 *
 * A selector also carries the estimated share of rows it admits, which the planners read to choose
 * between an exact scan of the matching rows and a beam (the window planner sets it from the exact
 * count of the label-sorted list; an allow-list counts its bits; a predicate brings its own estimate;
 * parts multiply, as if independent). */
#ifndef KNN_SELECTOR_H
#define KNN_SELECTOR_H

#include <stddef.h>
#include <stdint.h>

#include "base/knn_error.h"

enum {
    KNN_SEL_LIVE = 1u,      /* rows whose tombstone byte is 0 */
    KNN_SEL_LABEL = 2u,     /* rows whose label lies in [lo, hi] (a NaN label never does) */
    KNN_SEL_ALLOW = 4u,     /* rows whose bit is set in an allow-list bitmap */
    KNN_SEL_PREDICATE = 8u  /* rows a compiled predicate accepts */
};

/* A compiled predicate over a structure's rows: nonzero when row `row` matches. */
typedef int (*knn_row_predicate)(const void *ctx, size_t row);

typedef struct knn_selector {
    unsigned parts;             /* KNN_SEL_* bits; 0 admits every row */
    const uint8_t *tombstones;  /* KNN_SEL_LIVE */
    const double *labels;       /* KNN_SEL_LABEL */
    double lo, hi;
    const uint64_t *allow;      /* KNN_SEL_ALLOW: bit r of word r / 64; rows past allow_rows are out */
    size_t allow_rows;
    knn_row_predicate match;    /* KNN_SEL_PREDICATE */
    const void *match_ctx;
    double fraction;            /* estimated share of rows admitted, in [0, 1] */
} knn_selector;

/* A selector admitting every row (no parts, fraction 1). */
knn_selector knn_selector_all(void);

/* Each adds one part to s (a conjunction with what s already selects) and scales s->fraction by the
 * part's estimated share: `share` for tombstones, labels and predicates (the caller knows it, or
 * passes 1), the bitmap's own bit count for an allow-list. */
void knn_selector_live(knn_selector *s, const uint8_t *tombstones, double share);
void knn_selector_label(knn_selector *s, const double *labels, double lo, double hi, double share);
void knn_selector_allow(knn_selector *s, const uint64_t *bits, size_t rows);
void knn_selector_predicate(knn_selector *s, knn_row_predicate match, const void *ctx, double share);

/* Copies the rows of a structure that s admits (NULL: all) into malloc'd arrays: ids and vectors
 * (dim floats a row, read through row_vec), *n of them; the caller holds the structure's lock. */
knn_status knn_selector_gather(const knn_selector *s, size_t rows, size_t dim, const int64_t *row_ids,
                               const float *(*row_vec)(const void *ctx, size_t row), const void *ctx, int64_t **ids,
                               float **vecs, size_t *n, knn_error *err);

/* The estimated share of rows s admits (the planners' input). */
static inline double knn_selector_fraction(const knn_selector *s) { return s ? s->fraction : 1.0; }

/* Whether s (NULL: every row) admits row `row`. Inline: graph beams call it per visited node. */
static inline int knn_selector_admits(const knn_selector *s, size_t row) {
    if (s == NULL) return 1;
    const unsigned p = s->parts;
    if ((p & KNN_SEL_LIVE) && s->tombstones[row]) return 0;
    if ((p & KNN_SEL_LABEL) && !(s->labels[row] >= s->lo && s->labels[row] <= s->hi)) return 0;
    if ((p & KNN_SEL_ALLOW) && (row >= s->allow_rows || !((s->allow[row / 64] >> (row % 64)) & 1u))) return 0;
    if ((p & KNN_SEL_PREDICATE) && !s->match(s->match_ctx, row)) return 0;
    return 1;
}

#endif
