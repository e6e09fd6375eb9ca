#include "base/knn_error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

knn_status knn_error_set(knn_error *err, knn_status status, const char *fmt, ...) {
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
        err->status = status;
    }
    return status;
}

void knn_error_clear(knn_error *err) {
    if (err) {
        err->status = KNN_OK;
        err->msg[0] = '\0';
    }
}

int knn_error_export(const knn_error *err, char *buf, size_t len) {
    if (buf && len) {
        size_t n = strlen(err->msg);
        if (n >= len) n = len - 1;
        memcpy(buf, err->msg, n);
        buf[n] = '\0';
    }
    return (int)err->status;
}

knn_status knn_error_first(const knn_error *errs, size_t n, knn_error *err) {
    for (size_t i = 0; i < n; i++) {
        if (errs[i].status != KNN_OK) {
            *err = errs[i];
            return err->status;
        }
    }
    return KNN_OK;
}
