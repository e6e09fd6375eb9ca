/* Option strings ("key=value, key=value", "100/10"): one reentrant tokenizer for every parser.
 *
 * Items are spans into the caller's text (nothing is modified, nothing global is kept, so two threads
 * parse at once safely; strtok's hidden state did not allow that). Spaces around items, keys and values
 * are trimmed; empty items are skipped. */
#ifndef KNN_OPTIONS_H
#define KNN_OPTIONS_H

#include <stddef.h>

typedef struct knn_span {
    const char *p;
    size_t n;
} knn_span;

/* The next non-empty item of text[*at .. len) ending at sep (or the end), trimmed; *at moves past it.
 * 0 when no item is left. */
int knn_option_next(const char *text, size_t len, char sep, size_t *at, knn_span *item);

/* Splits an item at its first '=' into a trimmed key and value; 0 when it has no '='. */
int knn_option_split(knn_span item, knn_span *key, knn_span *value);

/* Copies a span into buf (NUL-terminated), lowercased when lower != 0; 0 when it does not fit. */
int knn_span_copy(knn_span s, char *buf, size_t cap, int lower);

#endif
