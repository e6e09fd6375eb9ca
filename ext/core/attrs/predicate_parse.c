/* Filter predicates, part 1: tokenizer and recursive-descent parser (grammar in knn_predicate.h).
 *
 * The text is read once into a node array: AND/OR are n-ary (a chain `a AND b AND c` is one node with
 * three children, so the tree's height is bounded by the nesting, not by the number of conditions),
 * NOT and parentheses count towards KNN_PREDICATE_MAX_DEPTH, nodes towards KNN_PREDICATE_MAX_NODES.
 * Names and string values are unescaped into one pool sized by the text. Nothing is resolved against
 * columns here; that happens at evaluation (predicate_eval.c), so a parsed filter outlives schema
 * changes. Constructs SQL allows but an index filter does not (function calls, arithmetic, casts,
 * subqueries, two columns compared, ILIKE/SIMILAR/GLOB/regex) are recognised and named in the error,
 * with what to do instead; plain syntax errors give the byte offset (from 0) and what was expected. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attrs/predicate_internal.h"

typedef enum tk {
    T_EOF, T_IDENT, T_QIDENT, T_STRING, T_NUMBER, T_LPAREN, T_RPAREN, T_COMMA, T_CMP,
    T_ARITH, T_CAST, T_DOT, T_REGEX, T_OTHER
} tk;

typedef struct tok {
    tk kind;
    int op;           /* T_CMP: pn_op */
    size_t pos, end;  /* text[pos .. end) */
} tok;

typedef struct parser {
    const char *s;
    size_t len;
    tok cur;
    knn_predicate *p;
    knn_error *err;
    int depth;
} parser;

static const char *const ALT = "filter in SQL with knn_among(...) instead";

static int ident_start(char c) { return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_'; }
static int ident_char(char c) { return ident_start(c) || (c >= '0' && c <= '9'); }
static int digit(char c) { return c >= '0' && c <= '9'; }

/* The token starting at or after `at`. Quoted tokens that do not close run to the end (checked by
 * the parser, which then names the opening byte). */
static tok lex(const char *s, size_t len, size_t at) {
    while (at < len && (s[at] == ' ' || s[at] == '\t' || s[at] == '\n' || s[at] == '\r' || s[at] == '\f' ||
                        s[at] == '\v'))
        at++;
    tok t = {T_EOF, 0, at, at};
    if (at >= len) return t;
    char c = s[at], d = at + 1 < len ? s[at + 1] : '\0';
    size_t e = at + 1;
    if (ident_start(c)) {
        while (e < len && ident_char(s[e])) e++;
        t.kind = T_IDENT;
    } else if (c == '"' || c == '\'') {
        t.kind = c == '"' ? T_QIDENT : T_STRING;
        for (;;) {
            if (e >= len) { e = len + 1; break; } /* unterminated: end past the text */
            if (s[e] == c) {
                if (e + 1 < len && s[e + 1] == c) { e += 2; continue; }
                e++;
                break;
            }
            e++;
        }
    } else if (digit(c) || (c == '.' && digit(d))) {
        while (e < len && digit(s[e])) e++;
        if (c != '.' && e < len && s[e] == '.') for (e++; e < len && digit(s[e]);) e++;
        if (e < len && (s[e] == 'e' || s[e] == 'E')) {
            size_t f = e + 1;
            if (f < len && (s[f] == '+' || s[f] == '-')) f++;
            if (f < len && digit(s[f])) for (e = f; e < len && digit(s[e]);) e++;
        }
        t.kind = T_NUMBER;
    } else if (c == '(') t.kind = T_LPAREN;
    else if (c == ')') t.kind = T_RPAREN;
    else if (c == ',') t.kind = T_COMMA;
    else if (c == '.') t.kind = T_DOT;
    else if (c == ':' && d == ':') { t.kind = T_CAST; e++; }
    else if (c == '=') { t.kind = T_CMP; t.op = OP_EQ; if (d == '=') e++; }
    else if (c == '<') {
        t.kind = T_CMP;
        t.op = d == '=' ? OP_LE : d == '>' ? OP_NE : OP_LT;
        if (d == '=' || d == '>') e++;
    } else if (c == '>') { t.kind = T_CMP; t.op = d == '=' ? OP_GE : OP_GT; if (d == '=') e++; }
    else if (c == '!' && d == '=') { t.kind = T_CMP; t.op = OP_NE; e++; }
    else if (c == '!' && d == '~') { t.kind = T_REGEX; e++; if (e < len && s[e] == '~') e++; }
    else if (c == '~') { t.kind = T_REGEX; if (d == '~' || d == '*') e++; }
    else if (c == '+' || c == '-' || c == '*' || c == '/' || c == '%' || (c == '|' && d == '|')) {
        t.kind = T_ARITH;
        if (c == '|') e++;
    } else t.kind = T_OTHER;
    t.end = e;
    return t;
}

static void advance(parser *P) { P->cur = lex(P->s, P->len, P->cur.end); }
static tok peek(const parser *P) { return lex(P->s, P->len, P->cur.end); }

static int kw(const parser *P, const tok *t, const char *word) {
    size_t n = strlen(word);
    if (t->kind != T_IDENT || t->end - t->pos != n) return 0;
    for (size_t i = 0; i < n; i++) {
        char c = P->s[t->pos + i];
        if (c >= 'a' && c <= 'z') c = (char)(c - 32);
        if (c != word[i]) return 0;
    }
    return 1;
}

static int reserved(const parser *P, const tok *t) {
    static const char *const words[] = {"AND", "OR", "NOT", "IS", "NULL", "TRUE", "FALSE", "BETWEEN", "IN", "LIKE"};
    for (size_t i = 0; i < sizeof words / sizeof *words; i++) if (kw(P, t, words[i])) return 1;
    return 0;
}

/* "'text'" of a token for messages (at most 32 bytes of it), or "end of the filter". */
static const char *show(const parser *P, const tok *t, char *buf, size_t cap) {
    if (t->kind == T_EOF) return "end of the filter";
    size_t n = (t->end > P->len ? P->len : t->end) - t->pos;
    snprintf(buf, cap, "'%.*s%s'", (int)(n > 32 ? 32 : n), P->s + t->pos, n > 32 ? "..." : "");
    return buf;
}

/* The error for an unexpected token: a named unsupported construct, else a syntax error. */
static knn_status unexpected(parser *P, const tok *t, const char *expected) {
    char b[48];
    const char *w = show(P, t, b, sizeof b);
    if (t->kind == T_ARITH)
        return knn_error_set(P->err, KNN_EINVAL, "filter: arithmetic operators (+ - * / %% ||) are not supported in an "
                             "index filter (found %s at byte %zu); compare a column with a literal, or %s", w, t->pos, ALT);
    if (t->kind == T_CAST || kw(P, t, "CAST"))
        return knn_error_set(P->err, KNN_EINVAL, "filter: casts (:: and CAST) are not supported in an index filter (found "
                             "%s at byte %zu); write the literal in the column's type, e.g. DATE '2024-01-31'", w, t->pos);
    if (kw(P, t, "SELECT") || kw(P, t, "EXISTS"))
        return knn_error_set(P->err, KNN_EINVAL, "filter: subqueries (SELECT ...) are not supported in an index filter "
                             "(byte %zu); %s", t->pos, ALT);
    if (t->kind == T_REGEX || kw(P, t, "ILIKE") || kw(P, t, "SIMILAR") || kw(P, t, "GLOB") || kw(P, t, "REGEXP") ||
        kw(P, t, "RLIKE"))
        return knn_error_set(P->err, KNN_EINVAL, "filter: %s (byte %zu) is not supported in an index filter; use LIKE "
                             "(case-sensitive, %% and _ wildcards), or %s", w, t->pos, ALT);
    if (t->kind == T_STRING && t->end > P->len)
        return knn_error_set(P->err, KNN_EINVAL, "filter: the string starting at byte %zu is not closed; end it with ' "
                             "(write '' for a quote inside it)", t->pos);
    if (t->kind == T_QIDENT && t->end > P->len)
        return knn_error_set(P->err, KNN_EINVAL, "filter: the quoted name starting at byte %zu is not closed; end it "
                             "with \"", t->pos);
    return knn_error_set(P->err, KNN_EINVAL, "filter: unexpected %s at byte %zu; expected %s", w, t->pos, expected);
}

static knn_status too_big(parser *P) {
    return knn_error_set(P->err, KNN_EINVAL, "filter: more than %d conditions and values; split the filter, or %s",
                         KNN_PREDICATE_MAX_NODES, ALT);
}

/* Room for one more item in *items, an array of `size`-byte items holding n (capacity *cap, at most max):
 * doubles the capacity from 16 when it is full (as knn_grow does in the DuckDB glue). */
static knn_status room_for_one(parser *P, void **items, size_t n, size_t *cap, size_t size, size_t max) {
    if (n >= max) return too_big(P);
    if (n < *cap) return KNN_OK;
    size_t c = *cap ? *cap * 2 : 16;
    void *grown = realloc(*items, c * size);
    if (grown == NULL) return knn_error_set(P->err, KNN_ENOMEM, "filter: out of memory");
    *items = grown;
    *cap = c;
    return KNN_OK;
}

static knn_status new_node(parser *P, pn_kind kind, uint32_t pos, int32_t *out) {
    knn_predicate *p = P->p;
    knn_status s = room_for_one(P, (void **)&p->nodes, p->n, &p->ncap, sizeof *p->nodes, KNN_PREDICATE_MAX_NODES);
    if (s != KNN_OK) return s;
    pn_node *n = &p->nodes[p->n];
    memset(n, 0, sizeof *n);
    n->kind = (uint8_t)kind;
    n->first = n->next = -1;
    n->pos = pos;
    *out = (int32_t)p->n++;
    return KNN_OK;
}

/* Unescapes a quoted token (doubled quote -> one) into the pool; returns its offset. */
static uint32_t pool_unquote(parser *P, const tok *t, uint32_t *len) {
    knn_predicate *p = P->p;
    uint32_t at = (uint32_t)p->pool_len;
    char q = P->s[t->pos];
    for (size_t i = t->pos + 1; i + 1 < t->end; i++) {
        p->pool[p->pool_len++] = P->s[i];
        if (P->s[i] == q) i++;
    }
    *len = (uint32_t)(p->pool_len - at);
    return at;
}

/* The current token as a column name into node n; 0 when it is not one. */
static knn_status column_name(parser *P, int32_t n) {
    tok t = P->cur;
    pn_node *node = &P->p->nodes[n];
    node->pos = (uint32_t)t.pos;
    if (t.kind == T_QIDENT) {
        if (t.end > P->len) return unexpected(P, &t, "a column");
        node->name = pool_unquote(P, &t, &node->name_len);
    } else {
        node->name = (uint32_t)P->p->pool_len;
        node->name_len = (uint32_t)(t.end - t.pos);
        memcpy(P->p->pool + P->p->pool_len, P->s + t.pos, node->name_len);
        P->p->pool_len += node->name_len;
    }
    if (node->name_len == 0 || node->name_len > KNN_ATTR_NAME_MAX)
        return knn_error_set(P->err, KNN_EINVAL, "filter: the column name at byte %zu is %u bytes; names have 1 to %d",
                             t.pos, node->name_len, KNN_ATTR_NAME_MAX);
    advance(P);
    return KNN_OK;
}

static int is_column(const parser *P, const tok *t) {
    return t->kind == T_QIDENT || (t->kind == T_IDENT && !reserved(P, t));
}

/* An identifier in a literal's place: a function call, a cast, a subquery, or a second column. */
static knn_status not_a_literal(parser *P, const char *lhs) {
    tok t = P->cur, nx = peek(P);
    if (t.kind == T_IDENT && nx.kind == T_LPAREN && !kw(P, &t, "CAST"))
        return knn_error_set(P->err, KNN_EINVAL, "filter: function calls (%.*s(...)) are not supported in an index "
                             "filter; %s", (int)(t.end - t.pos > 32 ? 32 : t.end - t.pos), P->s + t.pos, ALT);
    if (t.kind == T_LPAREN && kw(P, &nx, "SELECT")) return unexpected(P, &nx, "");
    if (is_column(P, &t) && !kw(P, &t, "CAST") && !kw(P, &t, "SELECT"))
        return knn_error_set(P->err, KNN_EINVAL, "filter: comparing two columns (%s and %.*s, byte %zu) is not "
                             "supported in an index filter; compare a column with a literal, or %s", lhs,
                             (int)(t.end - t.pos > 32 ? 32 : t.end - t.pos), P->s + t.pos, t.pos, ALT);
    return unexpected(P, &t, "a literal");
}

/* literal := ['-'] number | 'string' | TRUE | FALSE | NULL | DATE 'x' | TIMESTAMP 'x' */
static knn_status literal(parser *P, const char *lhs) {
    knn_predicate *p = P->p;
    knn_status s = room_for_one(P, (void **)&p->lits, p->nlits, &p->lcap, sizeof *p->lits, KNN_PREDICATE_MAX_LEN);
    if (s != KNN_OK) return s;
    pn_lit *l = &p->lits[p->nlits];
    memset(l, 0, sizeof *l);
    tok t = P->cur;
    l->pos = (uint32_t)t.pos;
    int neg = 0;
    if (t.kind == T_ARITH && P->s[t.pos] == '-') {
        tok nx = peek(P);
        if (nx.kind != T_NUMBER) return unexpected(P, &nx, "a number after '-'");
        neg = 1;
        advance(P);
        t = P->cur;
    }
    if (t.kind == T_NUMBER) {
        if (t.end < P->len && (ident_char(P->s[t.end]) || P->s[t.end] == '.')) {
            tok bad = {T_OTHER, 0, t.pos, t.end + 1};
            return unexpected(P, &bad, "a number");
        }
        size_t n = t.end - t.pos;
        int integer = memchr(P->s + t.pos, '.', n) == NULL && memchr(P->s + t.pos, 'e', n) == NULL &&
                      memchr(P->s + t.pos, 'E', n) == NULL;
        uint64_t mag = 0;
        for (size_t i = 0; integer && i < n; i++) {
            uint64_t dgt = (uint64_t)(P->s[t.pos + i] - '0');
            if (mag > (UINT64_MAX - dgt) / 10) integer = 0;
            else mag = mag * 10 + dgt;
        }
        if (integer && mag <= (uint64_t)INT64_MAX + (uint64_t)neg) {
            l->kind = LIT_INT;
            l->i = mag == (uint64_t)INT64_MAX + 1 ? INT64_MIN : neg ? -(int64_t)mag : (int64_t)mag;
        } else {
            char nb[320];
            if (n + 2 > sizeof nb)
                return knn_error_set(P->err, KNN_EINVAL, "filter: the number at byte %zu has %zu characters; at most %zu",
                                     t.pos, n, sizeof nb - 2);
            nb[0] = neg ? '-' : '+';
            memcpy(nb + 1, P->s + t.pos, n);
            nb[n + 1] = '\0';
            l->kind = LIT_DBL;
            l->d = strtod(nb, NULL);
            if (!isfinite(l->d))
                return knn_error_set(P->err, KNN_EINVAL, "filter: the number %s at byte %zu is out of range for DOUBLE",
                                     nb + !neg, t.pos);
        }
    } else if (t.kind == T_STRING) {
        if (t.end > P->len) return unexpected(P, &t, "a literal");
        l->kind = LIT_STR;
        l->str = pool_unquote(P, &t, &l->len);
    } else if (kw(P, &t, "TRUE") || kw(P, &t, "FALSE")) {
        l->kind = LIT_BOOL;
        l->i = kw(P, &t, "TRUE");
    } else if (kw(P, &t, "NULL")) {
        l->kind = LIT_NULL;
    } else if ((kw(P, &t, "DATE") || kw(P, &t, "TIMESTAMP")) && peek(P).kind == T_STRING) {
        int ts = kw(P, &t, "TIMESTAMP");
        advance(P);
        tok st = P->cur;
        if (st.end > P->len) return unexpected(P, &st, "a literal");
        l->kind = ts ? LIT_TS : LIT_DATE;
        l->str = pool_unquote(P, &st, &l->len);
        const char *why = knn_pred_datetime(p->pool + l->str, l->len, ts, &l->i);
        if (why)
            return knn_error_set(P->err, KNN_EINVAL, "filter: %.*s at byte %zu is not a valid %s (%s); write %s", 
                                 (int)((st.end - t.pos) > 64 ? 64 : st.end - t.pos), P->s + t.pos, t.pos, ts ? "TIMESTAMP" : "DATE",
                                 why, ts ? "TIMESTAMP 'YYYY-MM-DD HH:MM:SS[.ffffff]'" : "DATE 'YYYY-MM-DD'");
        t = st;
    } else {
        return not_a_literal(P, lhs);
    }
    l->span = (uint32_t)(t.end - l->pos);
    p->nlits++;
    advance(P);
    if (P->cur.kind == T_ARITH || P->cur.kind == T_CAST) return unexpected(P, &P->cur, "");
    return KNN_OK;
}

static knn_status expr(parser *P, int32_t *out);

static knn_status enter(parser *P, size_t pos) {
    if (++P->depth > KNN_PREDICATE_MAX_DEPTH)
        return knn_error_set(P->err, KNN_EINVAL, "filter: nesting deeper than %d levels (parentheses and NOT) at byte %zu; "
                             "simplify the filter", KNN_PREDICATE_MAX_DEPTH, pos);
    return KNN_OK;
}

/* The rest of a predicate after its column (node n holds the column). */
static knn_status after_column(parser *P, int32_t n) {
    knn_status s;
    pn_node *node = &P->p->nodes[n];
    char lhs[80];
    snprintf(lhs, sizeof lhs, "%.*s", (int)node->name_len, P->p->pool + node->name);
    tok t = P->cur;
    if (t.kind == T_CMP) {
        node->kind = PN_CMP;
        node->op = (uint8_t)t.op;
        node->lit = (uint32_t)P->p->nlits;
        node->nlit = 1;
        advance(P);
        return literal(P, lhs);
    }
    if (t.kind == T_LPAREN)
        return knn_error_set(P->err, KNN_EINVAL, "filter: function calls (%s(...)) are not supported in an index filter; "
                             "%s", lhs, ALT);
    if (t.kind == T_DOT)
        return knn_error_set(P->err, KNN_EINVAL, "filter: qualified names (%s.x, byte %zu) are not supported in an index "
                             "filter; write the bare column name", lhs, t.pos);
    if (kw(P, &t, "IS")) {
        advance(P);
        if (kw(P, &P->cur, "NOT")) {
            node->neg = 1;
            advance(P);
        }
        if (!kw(P, &P->cur, "NULL")) return unexpected(P, &P->cur, node->neg ? "NULL after IS NOT" : "NULL or NOT after IS");
        node->kind = PN_ISNULL;
        advance(P);
        return KNN_OK;
    }
    if (kw(P, &t, "NOT")) {
        node->neg = 1;
        advance(P);
        t = P->cur;
        if (!kw(P, &t, "BETWEEN") && !kw(P, &t, "IN") && !kw(P, &t, "LIKE"))
            return unexpected(P, &t, "BETWEEN, IN or LIKE after NOT");
    }
    node->lit = (uint32_t)P->p->nlits;
    if (kw(P, &t, "BETWEEN")) {
        node->kind = PN_BETWEEN;
        node->nlit = 2;
        advance(P);
        if ((s = literal(P, lhs)) != KNN_OK) return s;
        if (!kw(P, &P->cur, "AND")) return unexpected(P, &P->cur, "AND in BETWEEN ... AND ...");
        advance(P);
        return literal(P, lhs);
    }
    if (kw(P, &t, "IN")) {
        node->kind = PN_IN;
        advance(P);
        if (P->cur.kind != T_LPAREN) return unexpected(P, &P->cur, "'(' after IN");
        advance(P);
        if (kw(P, &P->cur, "SELECT")) return unexpected(P, &P->cur, "");
        for (;;) {
            if ((s = literal(P, lhs)) != KNN_OK) return s;
            P->p->nodes[n].nlit++;
            if (P->cur.kind == T_RPAREN) break;
            if (P->cur.kind != T_COMMA) return unexpected(P, &P->cur, "',' or ')' in the IN list");
            advance(P);
        }
        advance(P);
        return KNN_OK;
    }
    if (kw(P, &t, "LIKE")) {
        node->kind = PN_LIKE;
        node->nlit = 1;
        advance(P);
        if (P->cur.kind != T_STRING || P->cur.end > P->len) return unexpected(P, &P->cur, "a 'pattern' string after LIKE");
        return literal(P, lhs);
    }
    if (t.kind == T_ARITH || t.kind == T_CAST || t.kind == T_REGEX || kw(P, &t, "ILIKE") || kw(P, &t, "SIMILAR") ||
        kw(P, &t, "GLOB") || kw(P, &t, "REGEXP") || kw(P, &t, "RLIKE"))
        return unexpected(P, &t, "");
    node->kind = PN_BOOLCOL; /* a bare column: BOOLEAN, checked at evaluation */
    return KNN_OK;
}

/* pred := '(' expr ')' | literal-led | column-led */
static knn_status pred(parser *P, int32_t *out) {
    knn_status s;
    tok t = P->cur;
    if (t.kind == T_LPAREN) {
        tok nx = peek(P);
        if (kw(P, &nx, "SELECT")) return unexpected(P, &nx, "");
        if ((s = enter(P, t.pos)) != KNN_OK) return s;
        advance(P);
        if ((s = expr(P, out)) != KNN_OK) return s;
        if (P->cur.kind != T_RPAREN) return unexpected(P, &P->cur, "')' or AND/OR");
        P->depth--;
        advance(P);
        return KNN_OK;
    }
    if (is_column(P, &t) && !((kw(P, &t, "DATE") || kw(P, &t, "TIMESTAMP")) && peek(P).kind == T_STRING)) {
        tok nx = peek(P);
        if (kw(P, &t, "CAST") && nx.kind == T_LPAREN) return unexpected(P, &t, "");
        if ((kw(P, &t, "SELECT") || kw(P, &t, "EXISTS")) && t.kind == T_IDENT) return unexpected(P, &t, "");
        if ((s = new_node(P, PN_BOOLCOL, (uint32_t)t.pos, out)) != KNN_OK) return s;
        if ((s = column_name(P, *out)) != KNN_OK) return s;
        return after_column(P, *out);
    }
    /* a literal first: TRUE / FALSE / NULL alone, or literal cmp column */
    size_t lit = P->p->nlits;
    if (t.kind == T_RPAREN || t.kind == T_EOF || t.kind == T_COMMA || kw(P, &t, "AND") || kw(P, &t, "OR") ||
        kw(P, &t, "IS") || kw(P, &t, "BETWEEN") || kw(P, &t, "IN") || kw(P, &t, "LIKE"))
        return unexpected(P, &t, "a condition");
    if ((s = literal(P, "a literal")) != KNN_OK) return s;
    const pn_lit *l = &P->p->lits[lit];
    if (P->cur.kind != T_CMP) {
        if (l->kind == LIT_BOOL || l->kind == LIT_NULL) {
            P->p->nlits--;
            return new_node(P, l->kind == LIT_NULL ? PN_NULL : l->i ? PN_TRUE : PN_FALSE, l->pos, out);
        }
        return knn_error_set(P->err, KNN_EINVAL, "filter: the literal %.*s at byte %u is not a condition; compare it "
                             "with a column (col = %.*s)", (int)(l->span > 32 ? 32 : l->span), P->s + l->pos, l->pos,
                             (int)(l->span > 32 ? 32 : l->span), P->s + l->pos);
    }
    static const uint8_t flip[] = {OP_EQ, OP_NE, OP_GT, OP_GE, OP_LT, OP_LE};
    int op = P->cur.op;
    advance(P);
    tok c = P->cur;
    if (!is_column(P, &c) || peek(P).kind == T_LPAREN) {
        if (c.kind == T_IDENT && peek(P).kind == T_LPAREN) return not_a_literal(P, "");
        return knn_error_set(P->err, KNN_EINVAL, "filter: %s at byte %zu: a literal must be compared with a column, e.g. "
                             "price < 10", c.kind == T_EOF ? "the end of the filter" : "a second literal", c.pos);
    }
    if ((s = new_node(P, PN_CMP, (uint32_t)c.pos, out)) != KNN_OK) return s;
    pn_node *node = &P->p->nodes[*out];
    node->op = flip[op];
    node->lit = (uint32_t)lit;
    node->nlit = 1;
    if ((s = column_name(P, *out)) != KNN_OK) return s;
    t = P->cur;
    if (t.kind == T_ARITH || t.kind == T_CAST || t.kind == T_LPAREN || t.kind == T_DOT) return after_column(P, *out);
    return KNN_OK;
}

static knn_status not_(parser *P, int32_t *out) {
    knn_status s;
    if (!kw(P, &P->cur, "NOT")) return pred(P, out);
    if ((s = enter(P, P->cur.pos)) != KNN_OK) return s;
    int32_t n, child;
    if ((s = new_node(P, PN_NOT, (uint32_t)P->cur.pos, &n)) != KNN_OK) return s;
    advance(P);
    if ((s = not_(P, &child)) != KNN_OK) return s;
    P->p->nodes[n].first = child;
    P->depth--;
    *out = n;
    return KNN_OK;
}

/* or := and (OR and)*, and := not (AND not)*: one n-ary node per chain, or the lone child. */
static knn_status chain(parser *P, int is_or, int32_t *out) {
    knn_status s;
    int32_t first, last;
    if ((s = is_or ? chain(P, 0, &first) : not_(P, &first)) != KNN_OK) return s;
    if (!kw(P, &P->cur, is_or ? "OR" : "AND")) {
        *out = first;
        return KNN_OK;
    }
    int32_t n;
    if ((s = new_node(P, is_or ? PN_OR : PN_AND, (uint32_t)P->cur.pos, &n)) != KNN_OK) return s;
    P->p->nodes[n].first = last = first;
    while (kw(P, &P->cur, is_or ? "OR" : "AND")) {
        advance(P);
        int32_t c;
        if ((s = is_or ? chain(P, 0, &c) : not_(P, &c)) != KNN_OK) return s;
        P->p->nodes[last].next = c;
        last = c;
    }
    *out = n;
    return KNN_OK;
}

static knn_status expr(parser *P, int32_t *out) { return chain(P, 1, out); }

static int height(const knn_predicate *p, int32_t n) {
    int h = 0;
    for (int32_t c = p->nodes[n].first; c >= 0; c = p->nodes[c].next) {
        int k = height(p, c);
        if (k > h) h = k;
    }
    return h + 1;
}

knn_status knn_predicate_parse(const char *text, size_t len, knn_predicate **out, knn_error *err) {
    knn_status s = KNN_OK;
    *out = NULL;
    if (text == NULL && len) return knn_error_set(err, KNN_EINVAL, "filter: no text given");
    if (len > KNN_PREDICATE_MAX_LEN)
        return knn_error_set(err, KNN_EINVAL, "filter: the filter is %zu bytes; at most %d", len, KNN_PREDICATE_MAX_LEN);
    /* one block: the predicate, then its copy of the text and the pool (len + 1 bytes each) */
    knn_predicate *p = calloc(1, sizeof *p + 2 * (len + 1));
    if (p == NULL) return knn_error_set(err, KNN_ENOMEM, "filter: out of memory");
    p->text = (char *)(p + 1);
    p->pool = p->text + len + 1;
    if (len) memcpy(p->text, text, len);
    p->text[len] = '\0';
    p->text_len = len;
    parser P = {p->text, len, {T_EOF, 0, 0, 0}, p, err, 0};
    P.cur = lex(P.s, len, 0);
    if (P.cur.kind == T_EOF) {
        s = knn_error_set(err, KNN_EINVAL, "filter: the filter is empty; write a condition such as price < 10");
        goto cleanup;
    }
    if ((s = expr(&P, &p->root)) != KNN_OK) goto cleanup;
    if (P.cur.kind != T_EOF) {
        s = unexpected(&P, &P.cur, P.cur.kind == T_RPAREN ? "no ')' here (it closes no '(')" : "AND, OR or the end of the filter");
        goto cleanup;
    }
    p->height = height(p, p->root);
    *out = p;
    return KNN_OK;
cleanup:
    knn_predicate_free(p);
    return s;
}

void knn_predicate_free(knn_predicate *p) {
    if (p == NULL) return;
    free(p->nodes);
    free(p->lits);
    free(p); /* the text and the pool with it */
}

void knn_predicate_columns(const knn_predicate *p, char *buf, size_t len) {
    if (len == 0) return;
    buf[0] = '\0';
    if (p == NULL) return;
    size_t at = 0;
    for (size_t i = 0; i < p->n; i++) {
        const pn_node *n = &p->nodes[i];
        if (n->name_len == 0) continue;
        int seen = 0;
        for (size_t j = 0; j < i && !seen; j++) {
            const pn_node *m = &p->nodes[j];
            if (m->name_len != n->name_len) continue;
            seen = 1;
            for (uint32_t k = 0; k < n->name_len && seen; k++) {
                char a = p->pool[n->name + k], b = p->pool[m->name + k];
                if (a >= 'A' && a <= 'Z') a = (char)(a + 32);
                if (b >= 'A' && b <= 'Z') b = (char)(b + 32);
                seen = a == b;
            }
        }
        if (seen) continue;
        int w = snprintf(buf + at, len - at, "%s%.*s", at ? ", " : "", (int)n->name_len, p->pool + n->name);
        if (w < 0 || (size_t)w >= len - at) {
            buf[at] = '\0'; /* keep whole names only */
            return;
        }
        at += (size_t)w;
    }
}
