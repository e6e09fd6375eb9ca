/* Distance metrics: names as SQL and Python spell them, and the distance each returns. */
#ifndef KNN_METRIC_H
#define KNN_METRIC_H

#include "base/knn_error.h"

typedef enum knn_metric {
    KNN_METRIC_L2 = 0,     /* squared Euclidean distance */
    KNN_METRIC_COSINE = 1, /* 1 - cos(angle); 1.0 when the data vector has zero norm */
    KNN_METRIC_IP = 2      /* negative inner product, so smaller is nearer */
} knn_metric;

#define KNN_METRIC_NAMES "'l2' (squared Euclidean, alias 'l2sq'), 'cosine', 'ip' (negative inner product)"

/* Parses a metric name (case-insensitive; 'l2sq' is an alias of 'l2'). len is the name's byte length. */
knn_status knn_metric_parse(const char *name, size_t len, knn_metric *out, knn_error *err);

const char *knn_metric_name(knn_metric metric);

#endif
