/* Option strings (knn_options.h): spans over the caller's text, no state outside the call. */
#include "base/knn_options.h"

#include <ctype.h>

static knn_span trimmed(const char *p, size_t n) {
    while (n && isspace((unsigned char)*p)) { p++; n--; }
    while (n && isspace((unsigned char)p[n - 1])) n--;
    knn_span s = {p, n};
    return s;
}

int knn_option_next(const char *text, size_t len, char sep, size_t *at, knn_span *item) {
    while (*at < len) {
        size_t start = *at, end = start;
        while (end < len && text[end] != sep) end++;
        *at = end < len ? end + 1 : end;
        *item = trimmed(text + start, end - start);
        if (item->n) return 1;
    }
    return 0;
}

int knn_option_split(knn_span item, knn_span *key, knn_span *value) {
    for (size_t i = 0; i < item.n; i++) {
        if (item.p[i] != '=') continue;
        *key = trimmed(item.p, i);
        *value = trimmed(item.p + i + 1, item.n - i - 1);
        return 1;
    }
    return 0;
}

int knn_span_copy(knn_span s, char *buf, size_t cap, int lower) {
    if (cap == 0 || s.n >= cap) return 0;
    for (size_t i = 0; i < s.n; i++) buf[i] = lower ? (char)tolower((unsigned char)s.p[i]) : s.p[i];
    buf[s.n] = '\0';
    return 1;
}
