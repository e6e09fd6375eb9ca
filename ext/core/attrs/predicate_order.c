/* Filter predicates, part 3: selective leaves answered through their column's sorted order.
 *
 * When the predicate is a comparison, BETWEEN or IN on one column (a leaf), or an AND with such leaves
 * among its conjuncts, and that column has a sorted order (knn_attr_order.h), the leaf's TRUE rows are
 * one interval of the order per literal, found by binary search: a range is one interval, BETWEEN the
 * intersection of two, IN one per member, and on VARCHAR one per dictionary code the leaf keeps. The
 * conjunct with the fewest such rows is chosen; under 1/ORDER_SHARE of the rows its rows are set in the
 * bitmap directly (rows appended since the order was built are scanned), and the other conjuncts are
 * evaluated only on the words that still hold a row (predicate_eval.c's word skipping). Above that
 * share a scan of the column costs no more, so the plain evaluation answers. NOT, OR, <>, IS NULL and
 * bare BOOLEAN columns are never answered this way: their TRUE rows are not a few intervals. */
#include <stdlib.h>
#include <string.h>

#include "attrs/knn_attr_order.h"
#include "attrs/predicate_internal.h"

#define ORDER_SHARE 16 /* the chosen conjunct keeps under rows / ORDER_SHARE rows */
#define MAX_SPANS 256  /* intervals of one leaf (IN members, VARCHAR codes) */

typedef struct span {
    size_t lo, hi; /* positions [lo, hi) of the column's order */
} span;

/* Sign of (value of row) - (the atom's literal) in the filters' order (DuckDB's NaN order). */
static int sign_of(const knn_attr_col *c, uint32_t row, const atom *at) {
    if (at->kind == A_I) {
        int64_t x = c->i64[row];
        return (x > at->iv) - (x < at->iv);
    }
    double x = knn_attr_physical(c->type) == 'f' ? c->f64[row] : (double)c->i64[row];
    return d_lt(x, at->dv) ? -1 : d_eq(x, at->dv) ? 0 : 1;
}

static int at_least(const knn_attr_col *c, uint32_t row, const void *arg) { return sign_of(c, row, arg) >= 0; }
static int above(const knn_attr_col *c, uint32_t row, const void *arg) { return sign_of(c, row, arg) > 0; }
static int code_at_least(const knn_attr_col *c, uint32_t row, const void *arg) {
    return c->code[row] >= *(const uint32_t *)arg;
}
static int code_above(const knn_attr_col *c, uint32_t row, const void *arg) {
    return c->code[row] > *(const uint32_t *)arg;
}

/* The positions where one atom holds, as one interval; 0 when they are not one (<>). */
static int atom_span(const knn_attr_col *c, const atom *at, span *s) {
    const size_t n = c->norder;
    if (at->kind == A_NULL || at->kind == A_NEVER) { s->lo = s->hi = 0; return 1; }
    if (at->kind == A_ALWAYS) { s->lo = 0; s->hi = n; return 1; }
    switch (at->op) {
    case OP_LT: s->lo = 0; s->hi = knn_attr_order_first(c, at_least, at); return 1;
    case OP_LE: s->lo = 0; s->hi = knn_attr_order_first(c, above, at); return 1;
    case OP_GT: s->lo = knn_attr_order_first(c, above, at); s->hi = n; return 1;
    case OP_GE: s->lo = knn_attr_order_first(c, at_least, at); s->hi = n; return 1;
    case OP_EQ:
        s->lo = knn_attr_order_first(c, at_least, at);
        s->hi = knn_attr_order_first(c, above, at);
        return 1;
    default: return 0;
    }
}

/* The intervals of the order holding a leaf's TRUE rows, and how many rows they hold; 0 when the leaf
 * cannot be answered this way. */
static int leaf_spans(const pn_node *n, const leaf *lf, span *out, size_t *nout, size_t *rows) {
    const knn_attr_col *c = lf->col;
    size_t k = 0;
    if (n->neg || c == NULL || c->order == NULL) return 0;
    if (lf->mode == M_ATOMS) {
        span s = {0, c->norder};
        for (int i = 0; i < lf->nat; i++) {
            span t;
            if (!atom_span(c, &lf->at[i], &t)) return 0;
            if (t.lo > s.lo) s.lo = t.lo;
            if (t.hi < s.hi) s.hi = t.hi;
        }
        if (s.hi < s.lo) s.hi = s.lo;
        out[k++] = s;
    } else if (lf->mode == M_SET && knn_attr_physical(c->type) != 's') {
        if (lf->ni + lf->nd > MAX_SPANS) return 0;
        for (size_t i = 0; i < lf->ni + lf->nd; i++) {
            atom at = {0};
            at.op = OP_EQ;
            if (i < lf->ni) { at.kind = A_I; at.iv = lf->iset[i]; }
            else { at.kind = A_D; at.dv = lf->dset[i - lf->ni]; }
            atom_span(c, &at, &out[k++]);
        }
    } else if (lf->mode == M_TAB) {
        for (size_t code = 0; code < lf->ntab; code++) {
            if (lf->tab[code] != 1) continue;
            if (k == MAX_SPANS) return 0;
            uint32_t cv = (uint32_t)code;
            out[k].lo = knn_attr_order_first(c, code_at_least, &cv);
            out[k].hi = knn_attr_order_first(c, code_above, &cv);
            k++;
        }
    } else {
        return 0;
    }
    size_t m = 0;
    for (size_t i = 0; i < k; i++) m += out[i].hi - out[i].lo;
    *nout = k;
    *rows = m;
    return 1;
}

int knn_pred_eval_by_order(ctx *c, uint64_t *match) {
    const knn_predicate *p = c->p;
    const pn_node *root = &p->nodes[p->root];
    if (c->a->order_policy < 0) return 0;
    int32_t kids[MAX_KIDS];
    size_t nk = 0;
    if (root->kind == PN_AND) {
        for (int32_t k = root->first; k >= 0; k = p->nodes[k].next) {
            if (nk == MAX_KIDS) return 0;
            kids[nk++] = k;
        }
    } else if (root->kind >= PN_BOOLCOL) {
        kids[nk++] = p->root;
    } else {
        return 0;
    }
    span spans[MAX_SPANS], best_spans[MAX_SPANS];
    size_t nbest = 0, best_rows = SIZE_MAX;
    int32_t best = -1;
    for (size_t j = 0; j < nk; j++) {
        const pn_node *n = &p->nodes[kids[j]];
        if (n->kind < PN_BOOLCOL) continue;
        const leaf *lf = &c->leaves[kids[j]];
        size_t ns, m;
        if (lf->col == NULL || lf->col->ordered > c->rows || !leaf_spans(n, lf, spans, &ns, &m)) continue;
        m += c->rows - lf->col->ordered; /* the unordered tail is scanned */
        if (m < best_rows) {
            best = kids[j];
            best_rows = m;
            nbest = ns;
            memcpy(best_spans, spans, ns * sizeof *spans);
        }
    }
    if (best < 0 || (c->a->order_policy == 0 && best_rows > c->rows / ORDER_SHARE)) return 0;

    const size_t words = WORDS(c->rows);
    const leaf *lf = &c->leaves[best];
    const knn_attr_col *col = lf->col;
    memset(match, 0, words * sizeof *match);
    for (size_t i = 0; i < nbest; i++) {
        for (size_t at = best_spans[i].lo; at < best_spans[i].hi; at++) {
            uint32_t r = col->order[at];
            match[r / 64] |= (uint64_t)1 << (r % 64);
        }
    }
    for (size_t w = col->ordered / 64; w < words; w++) { /* rows appended since the order was built */
        uint64_t t, f;
        knn_pred_eval_leaf(c, &p->nodes[best], lf, w, &t, &f);
        if (w * 64 < col->ordered) t &= ~(((uint64_t)1 << (col->ordered - w * 64)) - 1);
        match[w] |= t;
    }
    uint64_t *T2 = c->scratch, *F2 = T2 + CHUNK; /* level 0: this function stands in for the root */
    for (size_t j = 0; j < nk; j++) {
        if (kids[j] == best) continue;
        for (size_t w0 = 0; w0 < words; w0 += CHUNK) {
            size_t nw = words - w0 < CHUNK ? words - w0 : CHUNK;
            knn_pred_eval_node(c, kids[j], w0, nw, T2, F2, 1, match + w0, 0);
            for (size_t i = 0; i < nw; i++) match[w0 + i] &= T2[i];
        }
    }
    return 1;
}
