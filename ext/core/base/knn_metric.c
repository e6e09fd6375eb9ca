#include "base/knn_metric.h"

#include <ctype.h>
#include <string.h>

static int name_equals(const char *name, size_t len, const char *want) {
    size_t n = strlen(want);
    if (len != n) return 0;
    for (size_t i = 0; i < n; i++) {
        if (tolower((unsigned char)name[i]) != want[i]) return 0;
    }
    return 1;
}

knn_status knn_metric_parse(const char *name, size_t len, knn_metric *out, knn_error *err) {
    if (name == NULL) {
        return knn_error_set(err, KNN_EINVAL, "metric must not be NULL; use one of " KNN_METRIC_NAMES);
    }
    if (name_equals(name, len, "l2") || name_equals(name, len, "l2sq")) {
        *out = KNN_METRIC_L2;
    } else if (name_equals(name, len, "cosine")) {
        *out = KNN_METRIC_COSINE;
    } else if (name_equals(name, len, "ip")) {
        *out = KNN_METRIC_IP;
    } else {
        int shown = len > 64 ? 64 : (int)len;
        return knn_error_set(err, KNN_EINVAL, "unknown metric '%.*s'; use one of " KNN_METRIC_NAMES, shown,
                             name);
    }
    return KNN_OK;
}

const char *knn_metric_name(knn_metric metric) {
    switch (metric) {
    case KNN_METRIC_L2: return "l2";
    case KNN_METRIC_COSINE: return "cosine";
    case KNN_METRIC_IP: return "ip";
    }
    return "unknown";
}
