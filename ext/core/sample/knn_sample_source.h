/* Live rows of a registry entry, copied out for the samplers (knn_sample over an index). */
#ifndef KNN_SAMPLE_SOURCE_H
#define KNN_SAMPLE_SOURCE_H

#include <stddef.h>
#include <stdint.h>

#include "base/knn_error.h"
#include "index/knn_registry.h"

/* Copies live rows (only those labelled in [lo, hi] when windowed) into malloc'd ids (n) and vecs
 * (n x dim); free both. */
knn_status knn_entry_export_rows(knn_entry *e, int windowed, double lo, double hi, int64_t **ids, float **vecs,
                                 size_t *n, knn_error *err);

#endif
