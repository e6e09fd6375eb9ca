/* Memory backed by a file instead of the heap: an index keeps its float rows here, and the kernel pages
 * them in and out like a cache, so they count as file-backed pages, reclaimable under memory pressure,
 * not as the process's anonymous memory (the DiskANN layout: compressed codes in RAM, full vectors on
 * disk for the exact re-rank). The file is created unlinked in a directory the caller names, so it
 * disappears with its last mapping, even after a crash. */
#ifndef KNN_MAPPED_H
#define KNN_MAPPED_H

#include <stddef.h>

#include "base/knn_error.h"

typedef struct knn_mapped {
    void *p;      /* NULL until the first grow */
    size_t bytes; /* mapped length */
    int fd;       /* -1 until created */
} knn_mapped;

/* An empty mapping (nothing created yet). */
static inline knn_mapped knn_mapped_none(void) { return (knn_mapped){NULL, 0, -1}; }
/* Grows (or creates, in dir) the mapping to at least bytes, keeping its contents; the address may move. */
knn_status knn_mapped_grow(knn_mapped *m, const char *dir, size_t bytes, knn_error *err);
void knn_mapped_free(knn_mapped *m);

#endif
