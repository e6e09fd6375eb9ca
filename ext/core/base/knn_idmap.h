/* Hash map from external 64-bit ids to internal u32 slots (open addressing, linear probing). */
#ifndef KNN_IDMAP_H
#define KNN_IDMAP_H

#include <stddef.h>
#include <stdint.h>

#include "base/knn_error.h"

#define KNN_IDMAP_EMPTY UINT32_MAX

typedef struct knn_idmap {
    int64_t *keys;
    uint32_t *vals; /* KNN_IDMAP_EMPTY marks a free bucket */
    size_t cap;     /* power of two, or 0 */
    size_t size;
} knn_idmap;

/* Sets id -> slot (slot < KNN_IDMAP_EMPTY), replacing any previous slot. */
knn_status knn_idmap_put(knn_idmap *m, int64_t id, uint32_t slot, knn_error *err);

/* Returns 1 and sets *slot when id is present, else 0. */
int knn_idmap_get(const knn_idmap *m, int64_t id, uint32_t *slot);

/* Looks up n ids at once (slots[i] = KNN_IDMAP_EMPTY when ids[i] is absent), prefetching the buckets
 * of later ids while earlier ones are compared: a large map misses the cache on every lookup. */
void knn_idmap_get_many(const knn_idmap *m, const int64_t *ids, size_t n, uint32_t *slots);

/* Removes id; returns 1 when it was present. */
int knn_idmap_del(knn_idmap *m, int64_t id);

void knn_idmap_free(knn_idmap *m);

/* Finds an id that occurs twice in ids[0..n): returns 1 and sets *dup, 0 when all are distinct,
 * or -1 with err set when memory runs out. */
int knn_ids_find_duplicate(const int64_t *ids, size_t n, int64_t *dup, knn_error *err);

#endif
