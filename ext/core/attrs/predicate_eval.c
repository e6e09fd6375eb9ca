/* Filter predicates, part 2: evaluation over a knn_attrs store, column-at-a-time, 64 rows a word.
 *
 * SQL's three-valued logic on bitmaps: every node yields a TRUE word and a FALSE word per 64 rows (a
 * row in neither is NULL): AND gives T = T1 & T2, F = F1 | F2; OR gives T = T1 | T2, F = F1 & F2; NOT
 * swaps them; a comparison is neither on a NULL row, and on every row when its literal is NULL; IS NULL
 * gives T = !valid, F = valid. The result is the TRUE bitmap of the root, as in the vectorised filter
 * kernels of DuckDB and Lance's scalar indices (bitmaps, not row-at-a-time interpretation).
 *
 * Columns are resolved when evaluating (so a parsed filter survives schema changes) into leaves:
 * numeric comparisons become one or two atoms (exact int64, or double with DuckDB's NaN order: NaN
 * equals NaN and is above every other value); IN lists become sorted sets searched per valid row;
 * anything on a VARCHAR column (comparisons, IN, LIKE) is decided once per dictionary string into a
 * per-code truth table and then looked up per row, so '=' with a string absent from the dictionary
 * matches nothing at the cost of one table. Rows are processed in blocks of CHUNK words with one
 * scratch pair per tree level, so memory is bounded by the tree height, not by the row count. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#if defined(__SSE2__) && !defined(KNN_PREDICATE_SCALAR)
#include <emmintrin.h>
#endif

#include "attrs/predicate_internal.h"
#include "kernels/knn_kernels.h"


/* ---- values ---- */


static int d_order(const void *x, const void *y) {
    double a = *(const double *)x, b = *(const double *)y;
    return d_lt(a, b) ? -1 : d_lt(b, a) ? 1 : 0;
}

static int i_order(const void *x, const void *y) {
    int64_t a = *(const int64_t *)x, b = *(const int64_t *)y;
    return (a > b) - (a < b);
}

static int s_order(const char *a, size_t an, const char *b, size_t bn) {
    int c = memcmp(a, b, an < bn ? an : bn);
    return c ? c : (an > bn) - (an < bn);
}

static int op_holds(int op, int c) { /* c: sign of value - literal */
    switch (op) {
    case OP_EQ: return c == 0;
    case OP_NE: return c != 0;
    case OP_LT: return c < 0;
    case OP_LE: return c <= 0;
    case OP_GT: return c > 0;
    default: return c >= 0;
    }
}

static size_t utf8_step(const char *s, size_t i, size_t n) {
    unsigned char c = (unsigned char)s[i];
    size_t k = c < 0xC0 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : c < 0xF8 ? 4 : 1;
    return k > n - i ? n - i : k;
}

/* SQL LIKE: % any run, _ one character (UTF-8), everything else itself; no escape character. One
 * backtrack point (the last %) suffices, so the cost is O(len(s) * len(p)) at worst. */
static int like(const char *s, size_t n, const char *p, size_t m) {
    size_t i = 0, j = 0, star = (size_t)-1, mark = 0;
    while (i < n) {
        if (j < m && p[j] == '%') {
            star = ++j;
            mark = i;
        } else if (j < m && p[j] == '_') {
            i += utf8_step(s, i, n);
            j++;
        } else if (j < m && p[j] == s[i]) {
            i++;
            j++;
        } else if (star != (size_t)-1) {
            j = star;
            mark += utf8_step(s, mark, n);
            i = mark;
        } else {
            return 0;
        }
    }
    while (j < m && p[j] == '%') j++;
    return j == m;
}

/* ---- resolution ---- */

static const char *lit_kind_name(pn_lit_kind k) {
    switch (k) {
    case LIT_INT: case LIT_DBL: return "a number";
    case LIT_STR: return "a string";
    case LIT_BOOL: return "a boolean";
    case LIT_DATE: return "a DATE";
    case LIT_TS: return "a TIMESTAMP";
    default: return "NULL";
    }
}

static knn_status type_error(const ctx *c, const knn_attr_col *col, const pn_lit *l, knn_error *err) {
    const char *src = c->p->text + l->pos;
    int n = (int)(l->span > 48 ? 48 : l->span);
    char hint[96];
    switch (col->type) {
    case KNN_ATTR_VARCHAR:
        if (l->kind == LIT_DATE || l->kind == LIT_TS) snprintf(hint, sizeof hint, "compare it with a plain string ('...')");
        else snprintf(hint, sizeof hint, "quote it ('%.*s')", n > 40 ? 40 : n, src);
        break;
    case KNN_ATTR_BOOLEAN: snprintf(hint, sizeof hint, "use TRUE or FALSE"); break;
    case KNN_ATTR_DATE:
    case KNN_ATTR_TIMESTAMP:
        snprintf(hint, sizeof hint, "write DATE 'YYYY-MM-DD' or TIMESTAMP 'YYYY-MM-DD HH:MM:SS'");
        break;
    default: snprintf(hint, sizeof hint, "compare it with a number, without quotes"); break;
    }
    return knn_error_set(err, KNN_EINVAL, "filter: column '%s' is %s but the literal %.*s is %s; %s", col->name,
                         knn_attr_type_name(col->type), n, src, lit_kind_name(l->kind), hint);
}

/* One comparison `col op literal` on a non-VARCHAR column as an atom. */
static knn_status to_atom(const ctx *c, const knn_attr_col *col, const pn_lit *l, int op, atom *out, knn_error *err) {
    memset(out, 0, sizeof *out);
    out->op = (uint8_t)op;
    if (l->kind == LIT_NULL) {
        out->kind = A_NULL;
        return KNN_OK;
    }
    int64_t v = l->i;
    pn_lit_kind k = l->kind;
    if (k == LIT_STR && (col->type == KNN_ATTR_DATE || col->type == KNN_ATTR_TIMESTAMP)) {
        int ts = col->type == KNN_ATTR_TIMESTAMP;
        const char *why = knn_pred_datetime(c->p->pool + l->str, l->len, ts, &v);
        if (why)
            return knn_error_set(err, KNN_EINVAL, "filter: column '%s' is %s but %.*s is not a valid %s (%s); write %s",
                                 col->name, knn_attr_type_name(col->type), (int)(l->span > 48 ? 48 : l->span),
                                 c->p->text + l->pos, knn_attr_type_name(col->type), why,
                                 ts ? "'YYYY-MM-DD HH:MM:SS[.ffffff]'" : "'YYYY-MM-DD'");
        k = ts ? LIT_TS : LIT_DATE;
    }
    switch (col->type) {
    case KNN_ATTR_BIGINT:
        if (k == LIT_INT) { out->kind = A_I; out->iv = v; return KNN_OK; }
        if (k == LIT_DBL) { out->kind = A_D; out->dv = l->d; return KNN_OK; }
        break;
    case KNN_ATTR_DOUBLE:
        if (k == LIT_INT || k == LIT_DBL) { out->kind = A_D; out->dv = k == LIT_INT ? (double)v : l->d; return KNN_OK; }
        break;
    case KNN_ATTR_BOOLEAN:
        if (k == LIT_BOOL) { out->kind = A_I; out->iv = v; return KNN_OK; }
        break;
    case KNN_ATTR_TIMESTAMP:
        if (k == LIT_DATE || k == LIT_TS) { out->kind = A_I; out->iv = k == LIT_DATE ? v * KNN_PRED_DAY_US : v; return KNN_OK; }
        break;
    case KNN_ATTR_DATE:
        if (k == LIT_DATE) { out->kind = A_I; out->iv = v; return KNN_OK; }
        if (k == LIT_TS) { /* a day's midnight against an instant: split the instant into day q + r */
            int64_t q = v / KNN_PRED_DAY_US, r = v % KNN_PRED_DAY_US;
            if (r < 0) { q--; r += KNN_PRED_DAY_US; }
            out->kind = A_I;
            out->iv = q;
            if (r == 0) return KNN_OK;
            if (op == OP_EQ) out->kind = A_NEVER;
            else if (op == OP_NE) out->kind = A_ALWAYS;
            else out->op = op == OP_LT || op == OP_LE ? OP_LE : OP_GT;
            return KNN_OK;
        }
        break;
    default: break;
    }
    return type_error(c, col, l, err);
}

/* A string literal (or NULL) for a VARCHAR column; *is_null set for NULL. */
static knn_status str_lit(const ctx *c, const knn_attr_col *col, const pn_lit *l, int *is_null, knn_error *err) {
    *is_null = l->kind == LIT_NULL;
    if (*is_null || l->kind == LIT_STR) return KNN_OK;
    return type_error(c, col, l, err);
}

knn_status knn_pred_resolve(const ctx *c, const pn_node *n, leaf *lf, knn_error *err) {
    const knn_predicate *p = c->p;
    const knn_attrs *a = c->a;
    long ci = knn_attrs_find(a, p->pool + n->name, n->name_len);
    if (ci < 0) {
        char list[360];
        size_t at = 0;
        list[0] = '\0';
        for (size_t i = 0; i < a->ncols && at < sizeof list; i++) {
            int w = snprintf(list + at, sizeof list - at, "%s%s", i ? ", " : "", a->cols[i].name);
            if (w < 0 || (size_t)w >= sizeof list - at) { snprintf(list + (at > sizeof list - 6 ? sizeof list - 6 : at), 6, ", ..."); break; }
            at += (size_t)w;
        }
        return knn_error_set(err, KNN_EINVAL, "filter: unknown column '%.*s'; %s%s", (int)n->name_len, p->pool + n->name,
                             a->ncols ? "the index has columns " : "the index has no attribute columns", list);
    }
    const knn_attr_col *col = lf->col = &a->cols[ci];
    const pn_lit *lits = p->lits ? p->lits + n->lit : NULL; /* NULL: a node without literals */
    knn_status s;
    if (n->kind == PN_ISNULL) { lf->mode = M_ISNULL; return KNN_OK; }
    if (n->kind == PN_BOOLCOL) {
        if (col->type != KNN_ATTR_BOOLEAN)
            return knn_error_set(err, KNN_EINVAL, "filter: column '%s' is %s, not BOOLEAN, so it is not a condition by "
                                 "itself; compare it (%s = ...) or test %s IS NOT NULL", col->name,
                                 knn_attr_type_name(col->type), col->name, col->name);
        lf->mode = M_BOOL;
        return KNN_OK;
    }
    if (n->kind == PN_LIKE && col->type != KNN_ATTR_VARCHAR)
        return knn_error_set(err, KNN_EINVAL, "filter: LIKE needs a VARCHAR column, but '%s' is %s; compare it with =, <, "
                             "> or BETWEEN instead", col->name, knn_attr_type_name(col->type));
    if (col->type == KNN_ATTR_VARCHAR) {
        const knn_attr_dict *d = &col->dict;
        lf->mode = M_TAB;
        lf->ntab = d->n ? d->n : 1;
        lf->tab = calloc(lf->ntab, 1);
        if (lf->tab == NULL) return knn_error_set(err, KNN_ENOMEM, "filter: out of memory");
        int null0 = 0, null1 = 0;
        if ((s = str_lit(c, col, &lits[0], &null0, err)) != KNN_OK) return s;
        if (n->kind == PN_BETWEEN && (s = str_lit(c, col, &lits[1], &null1, err)) != KNN_OK) return s;
        if (n->kind == PN_IN) {
            int has_null = 0;
            for (uint32_t i = 0; i < n->nlit; i++) {
                int isn;
                if ((s = str_lit(c, col, &lits[i], &isn, err)) != KNN_OK) return s;
                has_null |= isn;
            }
            memset(lf->tab, has_null ? 2 : 0, lf->ntab);
            for (uint32_t i = 0; i < n->nlit; i++) {
                if (lits[i].kind != LIT_STR) continue;
                long code = knn_attr_dict_find(d, p->pool + lits[i].str, lits[i].len);
                if (code >= 0) lf->tab[code] = 1;
            }
            return KNN_OK;
        }
        const char *l0 = p->pool + lits[0].str, *l1 = n->kind == PN_BETWEEN ? p->pool + lits[1].str : NULL;
        for (size_t k = 0; k < d->n; k++) {
            const char *v = d->strs[k];
            size_t vn = d->lens[k];
            uint8_t t;
            if (n->kind == PN_LIKE) {
                t = (uint8_t)like(v, vn, l0, lits[0].len);
            } else if (n->kind == PN_CMP) {
                t = null0 ? 2 : (uint8_t)op_holds(n->op, s_order(v, vn, l0, lits[0].len));
            } else { /* BETWEEN: (v >= lo) AND (v <= hi) in three-valued logic */
                int ge = null0 ? 2 : s_order(v, vn, l0, lits[0].len) >= 0;
                int le = null1 ? 2 : s_order(v, vn, l1, lits[1].len) <= 0;
                t = (uint8_t)(ge == 0 || le == 0 ? 0 : ge == 2 || le == 2 ? 2 : 1);
            }
            lf->tab[k] = t;
        }
        if (d->n == 0) lf->tab[0] = 2;
        return KNN_OK;
    }
    if (n->kind == PN_IN) {
        lf->mode = M_SET;
        lf->iset = malloc(n->nlit * sizeof *lf->iset);
        lf->dset = malloc(n->nlit * sizeof *lf->dset);
        if (lf->iset == NULL || lf->dset == NULL) return knn_error_set(err, KNN_ENOMEM, "filter: out of memory");
        for (uint32_t i = 0; i < n->nlit; i++) {
            atom t;
            if ((s = to_atom(c, col, &lits[i], OP_EQ, &t, err)) != KNN_OK) return s;
            if (t.kind == A_NULL) lf->has_null = 1;
            else if (t.kind == A_I) lf->iset[lf->ni++] = t.iv;
            else if (t.kind == A_D) lf->dset[lf->nd++] = t.dv;
        }
        qsort(lf->iset, lf->ni, sizeof *lf->iset, i_order);
        qsort(lf->dset, lf->nd, sizeof *lf->dset, d_order);
        return KNN_OK;
    }
    lf->mode = M_ATOMS;
    if (n->kind == PN_CMP) {
        lf->nat = 1;
        return to_atom(c, col, &lits[0], n->op, &lf->at[0], err);
    }
    lf->nat = 2; /* BETWEEN */
    if ((s = to_atom(c, col, &lits[0], OP_GE, &lf->at[0], err)) != KNN_OK) return s;
    return to_atom(c, col, &lits[1], OP_LE, &lf->at[1], err);
}

/* ---- words ---- */

/* A word of 64 conditions, built so the compiler vectorises it: one byte per row (0 or 1), then eight
 * bytes packed into eight bits at a time by one multiply (byte j lands on bit j). About 8x faster than
 * shifting each condition into place, which kept the loop scalar. */
static inline uint64_t pack64(const uint8_t *m) {
    uint64_t r = 0;
    for (int i = 0; i < 8; i++) {
        uint64_t w;
        memcpy(&w, m + 8 * i, 8);
        r |= ((w * 0x0102040810204080ULL) >> 56) << (8 * i);
    }
    return r;
}

#define SCAN(cond)                                   \
    do {                                             \
        uint8_t m_[64];                              \
        for (int b = 0; b < 64; b++) m_[b] = (cond); \
        r = pack64(m_);                              \
    } while (0)

/* Bits of the 64 rows from x where `x op v` holds (rows' validity is applied by the caller). */
static uint64_t scan_i(const int64_t *x, int op, int64_t v) {
    uint64_t r = 0;
    switch (op) {
    case OP_EQ: SCAN(x[b] == v); break;
    case OP_NE: SCAN(x[b] != v); break;
    case OP_LT: SCAN(x[b] < v); break;
    case OP_LE: SCAN(x[b] <= v); break;
    case OP_GT: SCAN(x[b] > v); break;
    default: SCAN(x[b] >= v); break;
    }
    return r;
}

#if (defined(__x86_64__) || defined(__i386__)) && !defined(KNN_PREDICATE_SCALAR)
#include <immintrin.h>
#define KNN_SCAN_AVX2 1
/* scan_i with AVX2 (four rows a compare; SSE2 has no 64-bit compare), taken when the kernel dispatch
 * says the CPU has it (and KNNSQL_SIMD does not cap it below). */
__attribute__((target("avx2"))) static uint64_t scan_i_avx2(const int64_t *x, int op, int64_t v) {
    const __m256i vv = _mm256_set1_epi64x(v);
    uint64_t r = 0;
    for (int b = 0; b < 64; b += 4) {
        const __m256i xx = _mm256_loadu_si256((const __m256i *)(x + b));
        __m256i m;
        switch (op) {
        case OP_EQ: m = _mm256_cmpeq_epi64(xx, vv); break;
        case OP_NE: m = _mm256_xor_si256(_mm256_cmpeq_epi64(xx, vv), _mm256_set1_epi64x(-1)); break;
        case OP_LT: m = _mm256_cmpgt_epi64(vv, xx); break;
        case OP_LE: m = _mm256_xor_si256(_mm256_cmpgt_epi64(xx, vv), _mm256_set1_epi64x(-1)); break;
        case OP_GT: m = _mm256_cmpgt_epi64(xx, vv); break;
        default: m = _mm256_xor_si256(_mm256_cmpgt_epi64(vv, xx), _mm256_set1_epi64x(-1)); break;
        }
        r |= (uint64_t)(unsigned)_mm256_movemask_pd(_mm256_castsi256_pd(m)) << b;
    }
    return r;
}
#endif

/* DuckDB orders NaN above every number and equal to itself; a NaN literal (rare) takes d_lt / d_eq. */
static uint64_t scan_d(const double *x, int op, double v) {
    uint64_t r = 0;
    if (isnan(v)) {
        switch (op) {
        case OP_EQ: SCAN(d_eq(x[b], v)); break;
        case OP_NE: SCAN(!d_eq(x[b], v)); break;
        case OP_LT: SCAN(d_lt(x[b], v)); break;
        case OP_LE: SCAN(!d_lt(v, x[b])); break;
        case OP_GT: SCAN(d_lt(v, x[b])); break;
        default: SCAN(!d_lt(x[b], v)); break;
        }
        return r;
    }
#if defined(__SSE2__) && !defined(KNN_PREDICATE_SCALAR)
    /* two rows a compare and a movemask: the baseline x86-64 vector unit, no dispatch needed */
    const __m128d vv = _mm_set1_pd(v);
#define SSE_SCAN(m)                                                   \
    for (int b = 0; b < 64; b += 2) {                                 \
        const __m128d xx = _mm_loadu_pd(x + b);                       \
        r |= (uint64_t)_mm_movemask_pd(m) << b;                       \
    }
    switch (op) {
    case OP_EQ: SSE_SCAN(_mm_cmpeq_pd(xx, vv)); break;
    case OP_NE: SSE_SCAN(_mm_cmpneq_pd(xx, vv)); break;
    case OP_LT: SSE_SCAN(_mm_cmplt_pd(xx, vv)); break;
    case OP_LE: SSE_SCAN(_mm_cmple_pd(xx, vv)); break;
    case OP_GT: SSE_SCAN(_mm_or_pd(_mm_cmpgt_pd(xx, vv), _mm_cmpunord_pd(xx, xx))); break;
    default: SSE_SCAN(_mm_or_pd(_mm_cmpge_pd(xx, vv), _mm_cmpunord_pd(xx, xx))); break;
    }
#undef SSE_SCAN
    return r;
#endif
    switch (op) { /* v is a number: x < v is false for a NaN x, x > v true */
    case OP_EQ: SCAN(x[b] == v); break;
    case OP_NE: SCAN(x[b] != v); break;
    case OP_LT: SCAN(x[b] < v); break;
    case OP_LE: SCAN(x[b] <= v); break;
    case OP_GT: SCAN((x[b] > v) | (x[b] != x[b])); break;
    default: SCAN((x[b] >= v) | (x[b] != x[b])); break;
    }
    return r;
}

/* scan_i on the widest unit the dispatch allows (c->wide: AVX2 and up). */
static inline uint64_t scan_int(const ctx *c, const int64_t *x, int op, int64_t v) {
#ifdef KNN_SCAN_AVX2
    if (c->wide) return scan_i_avx2(x, op, v);
#endif
    (void)c;
    return scan_i(x, op, v);
}

static uint64_t scan_id(const int64_t *x, int op, double v) {
    double y[64];
    for (int b = 0; b < 64; b++) y[b] = (double)x[b];
    return scan_d(y, op, v);
}

static int in_i(const int64_t *set, size_t n, int64_t x) {
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (set[mid] < x) lo = mid + 1;
        else hi = mid;
    }
    return lo < n && set[lo] == x;
}

static int in_d(const double *set, size_t n, double x) {
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (d_lt(set[mid], x)) lo = mid + 1;
        else hi = mid;
    }
    return lo < n && d_eq(set[lo], x);
}

uint64_t knn_pred_row_mask(const ctx *c, size_t w) {
    size_t first = w * 64;
    if (first + 64 <= c->rows) return ~(uint64_t)0;
    return c->rows > first ? ((uint64_t)1 << (c->rows - first)) - 1 : 0;
}

void knn_pred_eval_leaf(const ctx *c, const pn_node *n, const leaf *lf, size_t w, uint64_t *T, uint64_t *F) {
    const knn_attr_col *col = lf->col;
    uint64_t rm = knn_pred_row_mask(c, w), V = w < c->have ? col->valid[w] & rm : 0, t = 0, f = 0;
    size_t base = w * 64;
    if (lf->mode == M_ISNULL) {
        t = rm & ~V;
        f = V;
    } else if (V == 0) {
        t = f = 0;
    } else if (lf->mode == M_BOOL) {
        t = scan_int(c, col->i64 + base, OP_NE, 0) & V;
        f = V & ~t;
    } else if (lf->mode == M_TAB) {
        for (uint64_t m = V; m; m &= m - 1) {
            int b = __builtin_ctzll(m);
            uint32_t code = col->code[base + (size_t)b];
            uint8_t v = code < lf->ntab ? lf->tab[code] : 2;
            t |= (uint64_t)(v == 1) << b;
            f |= (uint64_t)(v == 0) << b;
        }
    } else if (lf->mode == M_SET && lf->nd == 0 && lf->ni <= 8 && col->type != KNN_ATTR_DOUBLE) {
        for (size_t k = 0; k < lf->ni; k++) t |= scan_int(c, col->i64 + base, OP_EQ, lf->iset[k]); /* short list */
        t &= V;
        f = lf->has_null ? 0 : V & ~t;
    } else if (lf->mode == M_SET) {
        for (uint64_t m = V; m; m &= m - 1) {
            int b = __builtin_ctzll(m);
            size_t r = base + (size_t)b;
            int hit;
            if (col->type == KNN_ATTR_DOUBLE) hit = in_d(lf->dset, lf->nd, col->f64[r]);
            else hit = in_i(lf->iset, lf->ni, col->i64[r]) || (lf->nd && in_d(lf->dset, lf->nd, (double)col->i64[r]));
            t |= (uint64_t)hit << b;
        }
        f = lf->has_null ? 0 : V & ~t;
    } else { /* M_ATOMS: one comparison, or BETWEEN's two joined by AND */
        t = V;
        f = 0;
        for (int k = 0; k < lf->nat; k++) {
            const atom *at = &lf->at[k];
            uint64_t kt, kf;
            if (at->kind == A_NULL) kt = kf = 0;
            else if (at->kind == A_NEVER) { kt = 0; kf = V; }
            else if (at->kind == A_ALWAYS) { kt = V; kf = 0; }
            else {
                uint64_t r = at->kind == A_I ? scan_int(c, col->i64 + base, at->op, at->iv)
                             : col->type == KNN_ATTR_DOUBLE ? scan_d(col->f64 + base, at->op, at->dv)
                                                            : scan_id(col->i64 + base, at->op, at->dv);
                kt = r & V;
                kf = ~r & V;
            }
            t &= kt;
            f |= kf;
        }
    }
    if (n->neg) { *T = f; *F = t; }
    else { *T = t; *F = f; }
}

/* Evaluates node ni over words [w0, w0 + nw) into T / F. only (may be NULL): the words anything above
 * still needs; others come back as 0. need_f = 0 when nothing above reads F (the root, and AND / OR
 * below it): then an AND evaluates its children sparsest first (ordered by their TRUE bits in the
 * first block) and each only on the words where the ones before left a TRUE bit, so a selective
 * conjunct makes the others nearly free. */
void knn_pred_eval_node(ctx *c, int32_t ni, size_t w0, size_t nw, uint64_t *T, uint64_t *F, int level,
                        const uint64_t *only, int need_f) {
    const pn_node *n = &c->p->nodes[ni];
    switch (n->kind) {
    case PN_TRUE: case PN_FALSE: case PN_NULL:
        for (size_t i = 0; i < nw; i++) {
            uint64_t rm = knn_pred_row_mask(c, w0 + i);
            T[i] = n->kind == PN_TRUE ? rm : 0;
            F[i] = n->kind == PN_FALSE ? rm : 0;
        }
        return;
    case PN_NOT:
        knn_pred_eval_node(c, n->first, w0, nw, F, T, level, only, 1);
        return;
    case PN_AND: case PN_OR: {
        uint64_t *T2 = c->scratch + (size_t)level * 2 * CHUNK, *F2 = T2 + CHUNK;
        const int truth_only = n->kind == PN_AND && !need_f;
        const int ordered = truth_only && c->norder[ni] > 0;
        int32_t kids[MAX_KIDS];
        uint64_t dens[MAX_KIDS];
        uint32_t nk = 0;
        if (ordered) { /* sparsest first, as measured on the first block */
            for (uint32_t j = 0; j < c->norder[ni]; j++) kids[nk++] = c->order[(size_t)ni * MAX_KIDS + j];
        } else {
            for (int32_t k = n->first; k >= 0; k = c->p->nodes[k].next) {
                if (nk == MAX_KIDS) { /* wider than we reorder: evaluate in written order */
                    nk = 0;
                    break;
                }
                kids[nk++] = k;
            }
        }
        if (nk == 0) { /* the plain way: every child over every word */
            knn_pred_eval_node(c, n->first, w0, nw, T, F, level + 1, only, need_f);
            for (int32_t k = c->p->nodes[n->first].next; k >= 0; k = c->p->nodes[k].next) {
                knn_pred_eval_node(c, k, w0, nw, T2, F2, level + 1, only, need_f);
                if (n->kind == PN_AND) for (size_t i = 0; i < nw; i++) { T[i] &= T2[i]; F[i] |= F2[i]; }
                else for (size_t i = 0; i < nw; i++) { T[i] |= T2[i]; F[i] &= F2[i]; }
            }
            return;
        }
        const int measure = truth_only && !ordered;
        for (uint32_t j = 0; j < nk; j++) {
            uint64_t *t = j ? T2 : T, *f = j ? F2 : F;
            /* an AND whose FALSE bits nobody reads skips the words the children before left without TRUE */
            knn_pred_eval_node(c, kids[j], w0, nw, t, f, level + 1, j && truth_only ? T : only, need_f);
            if (measure) {
                dens[j] = 0;
                for (size_t i = 0; i < nw; i++) dens[j] += (uint64_t)__builtin_popcountll(t[i]);
            }
            if (j == 0) continue;
            if (n->kind == PN_AND) for (size_t i = 0; i < nw; i++) { T[i] &= T2[i]; F[i] |= F2[i]; }
            else for (size_t i = 0; i < nw; i++) { T[i] |= T2[i]; F[i] &= F2[i]; }
        }
        if (measure) { /* remember the children by their TRUE bits in this first block, fewest first */
            int32_t *ord = &c->order[(size_t)ni * MAX_KIDS];
            uint32_t idx[MAX_KIDS];
            for (uint32_t j = 0; j < nk; j++) {
                uint32_t at = j;
                for (; at > 0 && dens[idx[at - 1]] > dens[j]; at--) idx[at] = idx[at - 1];
                idx[at] = j;
            }
            for (uint32_t j = 0; j < nk; j++) ord[j] = kids[idx[j]];
            c->norder[ni] = nk;
        }
        return;
    }
    default:
        for (size_t i = 0; i < nw; i++) {
            if (only && only[i] == 0) {
                T[i] = F[i] = 0;
                continue;
            }
            knn_pred_eval_leaf(c, n, &c->leaves[ni], w0 + i, &T[i], &F[i]);
        }
        return;
    }
}

void knn_pred_eval_words(ctx *c, uint64_t *match) {
    uint64_t fbuf[CHUNK];
    size_t words = WORDS(c->rows);
    for (size_t w0 = 0; w0 < words; w0 += CHUNK) {
        size_t nw = words - w0 < CHUNK ? words - w0 : CHUNK;
        knn_pred_eval_node(c, c->p->root, w0, nw, match + w0, fbuf, 0, NULL, 0);
    }
}
