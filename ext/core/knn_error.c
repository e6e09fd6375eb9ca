#include "knn_error.h"

#include <stdarg.h>
#include <stdio.h>

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
