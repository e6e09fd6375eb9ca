/* The parsed form of a filter predicate, shared by predicate_parse.c (which builds it) and
 * predicate_eval.c (which reads it). Not part of the core's interface: only knn_predicate.h is. */
#ifndef KNN_PREDICATE_INTERNAL_H
#define KNN_PREDICATE_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

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

#endif
