/* The parsed form of a filter predicate, shared by predicate_parse.c (which builds it) and
 * predicate_eval.c (which reads it). Not part of the core's interface: only knn_predicate.h is. */
#ifndef KNN_PREDICATE_INTERNAL_H
#define KNN_PREDICATE_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include <math.h>

#include "attrs/knn_predicate.h"

typedef enum pn_kind {
    PN_TRUE, PN_FALSE, PN_NULL, /* constants */
    PN_AND, PN_OR, PN_NOT,      /* children first .. next */
    PN_BOOLCOL,                 /* a bare BOOLEAN column */
    PN_CMP,                     /* column op literal (literal op column is flipped at parse) */
    PN_BETWEEN,                 /* column [NOT] BETWEEN lit AND lit */
    PN_IN,                      /* column [NOT] IN (lit, ...) */
    PN_ISNULL,                  /* column IS [NOT] NULL */
    PN_LIKE                     /* column [NOT] LIKE 'pattern' */
} pn_kind;

typedef enum pn_op { OP_EQ, OP_NE, OP_LT, OP_LE, OP_GT, OP_GE } pn_op;

typedef enum pn_lit_kind { LIT_NULL, LIT_INT, LIT_DBL, LIT_STR, LIT_BOOL, LIT_DATE, LIT_TS } pn_lit_kind;

typedef struct pn_lit {
    pn_lit_kind kind;
    int64_t i;          /* INT; BOOL 0/1; DATE days since 1970-01-01; TS microseconds since then */
    double d;           /* DBL */
    uint32_t str, len;  /* STR: bytes pool[str .. str+len) (quotes removed, '' unescaped) */
    uint32_t pos, span; /* where it is written: text[pos .. pos+span), for messages */
} pn_lit;

typedef struct pn_node {
    uint8_t kind, op, neg;   /* neg: NOT BETWEEN / NOT IN / NOT LIKE / IS NOT NULL */
    int32_t first, next;     /* first child; next sibling (-1: none) */
    uint32_t name, name_len; /* column: pool[name .. name+name_len) (0 length: no column) */
    uint32_t pos;            /* byte offset of the column (or the node) in the text */
    uint32_t lit, nlit;      /* literals lits[lit .. lit+nlit) */
} pn_node;

struct knn_predicate {
    pn_node *nodes;
    size_t n, ncap;
    pn_lit *lits;
    size_t nlits, lcap;
    char *pool; /* names and string values, unescaped */
    size_t pool_len;
    char *text; /* a copy of the source, for messages */
    size_t text_len;
    int32_t root;
    int height; /* levels of the tree (bounded by KNN_PREDICATE_MAX_DEPTH) */
};

/* Reads a DATE ('YYYY-MM-DD', want_ts 0: *out in days) or a TIMESTAMP ('YYYY-MM-DD[ HH:MM[:SS[.ffffff]]]',
 * 'T' also separates; want_ts 1: *out in microseconds) from s[0..n) (spaces around are ignored).
 * Returns NULL, or why the text is not one (a phrase for a message). */
const char *knn_pred_datetime(const char *s, size_t n, int want_ts, int64_t *out);

#define KNN_PRED_DAY_US 86400000000LL

/* ---- evaluation state (predicate_run.c sets it up; predicate_eval.c and predicate_order.c read it) ---- */

#define CHUNK 64 /* words per block: 4096 rows */
#define WORDS(n) (((n) + 63) / 64)

typedef enum atom_kind { A_NULL, A_NEVER, A_ALWAYS, A_I, A_D } atom_kind;
typedef struct atom {
    uint8_t kind, op;
    int64_t iv;
    double dv;
} atom;

typedef enum leaf_mode { M_NONE, M_ATOMS, M_SET, M_TAB, M_BOOL, M_ISNULL } leaf_mode;
typedef struct leaf {
    leaf_mode mode;
    const knn_attr_col *col;
    atom at[2];
    int nat;
    int64_t *iset; /* IN: exact int64 members, sorted */
    size_t ni;
    double *dset;  /* IN: members compared as double, sorted in NaN-last order */
    size_t nd;
    int has_null;  /* IN: the list holds a NULL */
    uint8_t *tab;  /* VARCHAR: per code 0 FALSE, 1 TRUE, 2 NULL */
    size_t ntab;
} leaf;

typedef struct ctx {
    const knn_predicate *p;
    const knn_attrs *a;
    size_t rows, have; /* rows evaluated; words of the store's rows */
    leaf *leaves;
    uint64_t *scratch;
    int32_t *order;  /* per AND node whose FALSE bits nobody reads: its children, sparsest first */
    uint32_t *norder; /* children in order for that node (0: not measured yet) */
    int wide;         /* integer scans may use AVX2 (the kernel dispatch's level, KNNSQL_SIMD honoured) */
} ctx;

#define MAX_KIDS 16 /* children of one AND that are reordered; a wider one keeps its written order */

static inline int d_lt(double a, double b) { return isnan(b) ? !isnan(a) : a < b; } /* NaN above all */
static inline int d_eq(double a, double b) { return a == b || (isnan(a) && isnan(b)); }

/* A leaf's column and literals resolved against the store (types checked, IN lists sorted, VARCHAR
 * truth tables built). */
knn_status knn_pred_resolve(const ctx *c, const pn_node *n, leaf *lf, knn_error *err);
/* The whole predicate over every word of c->rows into match (the plain path). */
void knn_pred_eval_words(ctx *c, uint64_t *match);
/* Rows of word w that exist (below c->rows). */
uint64_t knn_pred_row_mask(const ctx *c, size_t w);
/* One leaf over word w into T / F. */
void knn_pred_eval_leaf(const ctx *c, const pn_node *n, const leaf *lf, size_t w, uint64_t *T, uint64_t *F);
/* Node ni over words [w0, w0 + nw) (see predicate_eval.c). */
void knn_pred_eval_node(ctx *c, int32_t ni, size_t w0, size_t nw, uint64_t *T, uint64_t *F, int level,
                        const uint64_t *only, int need_f);
/* predicate_order.c: when the root (or a conjunct of a root AND) is a selective leaf on a column with a
 * sorted order, writes the TRUE bitmap over c->rows into match through the order and returns 1; else 0
 * (nothing written). */
int knn_pred_eval_by_order(ctx *c, uint64_t *match);

#endif
