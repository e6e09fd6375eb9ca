/* Filter predicates over attribute columns: the `filter := '<expression>'` of knn_search.
 *
 * A predicate is parsed once from SQL text into a small tree (knn_predicate_parse: syntax errors name
 * the position and what was expected), then evaluated against a store (knn_predicate_eval), which
 * resolves column names and types at that moment and writes the bitmap of rows for which the
 * expression is TRUE. Evaluation is column-at-a-time over 64-row words with SQL's three-valued logic:
 * each node yields a TRUE bitmap and a FALSE bitmap (a NULL row is in neither), so NOT, AND, OR and
 * IS [NOT] NULL follow SQL exactly and a row matches only when the whole expression is TRUE.
 *
 * Grammar (keywords case-insensitive; identifiers bare or "double-quoted", matched case-insensitively):
 *   expr    := or
 *   or      := and (OR and)*
 *   and     := not (AND not)*
 *   not     := NOT not | pred
 *   pred    := '(' expr ')' | TRUE | FALSE
 *            | column                                        -- a BOOLEAN column
 *            | column cmp literal | literal cmp column       -- cmp: = == <> != < <= > >=
 *            | column [NOT] BETWEEN literal AND literal
 *            | column [NOT] IN '(' literal (',' literal)* ')'
 *            | column IS [NOT] NULL
 *            | column [NOT] LIKE 'pattern'                   -- VARCHAR; % and _ wildcards
 *   literal := number | 'string' ('' escapes a quote) | TRUE | FALSE | NULL
 *            | DATE 'YYYY-MM-DD' | TIMESTAMP 'YYYY-MM-DD[ HH:MM[:SS[.ffffff]]]'
 * A string literal compared with a DATE or TIMESTAMP column is read as one; a DATE literal against a
 * TIMESTAMP column is its midnight. Anything else (functions, arithmetic, casts, subqueries, two
 * columns compared) is an error naming the construct and what to do instead (the allow-list path).
 *
 * The text is bounded (KNN_PREDICATE_MAX_LEN bytes, KNN_PREDICATE_MAX_DEPTH nesting, KNN_PREDICATE_MAX_NODES
 * nodes) so hostile input costs bounded time and stack. */
#ifndef KNN_PREDICATE_H
#define KNN_PREDICATE_H

#include <stddef.h>
#include <stdint.h>

#include "attrs/knn_attrs.h"
#include "base/knn_error.h"

#define KNN_PREDICATE_MAX_LEN 65536
#define KNN_PREDICATE_MAX_DEPTH 64
#define KNN_PREDICATE_MAX_NODES 4096

typedef struct knn_predicate knn_predicate;

/* Parses text[0..len) (need not be NUL-terminated). On error *out is NULL and err says where and why. */
knn_status knn_predicate_parse(const char *text, size_t len, knn_predicate **out, knn_error *err);
void knn_predicate_free(knn_predicate *p);

/* Writes match[0 .. (rows + 63) / 64): bit r set when the predicate is TRUE on row r of a (rows <=
 * a->rows; bits past `rows` in the last word are 0). Errors (nothing useful in match): a column the
 * store lacks (the message lists the columns it has), a literal of the wrong type for its column, LIKE
 * on a non-VARCHAR column, a bare non-BOOLEAN column, out of memory. */
knn_status knn_predicate_eval(const knn_predicate *p, const knn_attrs *a, size_t rows, uint64_t *match,
                              knn_error *err);

/* Names of the columns the predicate reads, comma-separated, into buf (for messages and planners). */
void knn_predicate_columns(const knn_predicate *p, char *buf, size_t len);

#endif
