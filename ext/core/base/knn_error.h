/* Status codes and the caller-owned error buffer every core function fills. */
#ifndef KNN_ERROR_H
#define KNN_ERROR_H

#include <stddef.h>

typedef enum knn_status {
    KNN_OK = 0,
    KNN_EINVAL = 1,  /* bad argument from the caller */
    KNN_ENOMEM = 2,  /* allocation failed */
    KNN_EDATA = 3,   /* bad data: NaN/Inf, wrong dimension, corrupt bytes */
    KNN_ESTATE = 4   /* call not valid in the object's current state */
} knn_status;

#define KNN_ERROR_MSG_LEN 512

typedef struct knn_error {
    knn_status status;
    char msg[KNN_ERROR_MSG_LEN];
} knn_error;

/* Records status and a printf-style message (truncated to fit); returns status. */
knn_status knn_error_set(knn_error *err, knn_status status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

void knn_error_clear(knn_error *err);

/* Copies the message into a caller's buffer (len bytes, NUL-terminated) and returns the status as int:
 * the convention of the public (cffi) API. */
int knn_error_export(const knn_error *err, char *buf, size_t len);

/* The first failure among errs[0..n) (e.g. the per-thread errors of a parallel run) copied into *err;
 * returns its status, or KNN_OK when none failed (then *err is left as it was). */
knn_status knn_error_first(const knn_error *errs, size_t n, knn_error *err);

#endif
