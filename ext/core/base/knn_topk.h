/* Bounded top-k: a max-heap of (distance, id) that keeps the k smallest distances seen.
 *
 * Ties are broken by id (smaller id wins), so results do not depend on the order rows arrive in or on
 * how work was split across threads. Storage grows on demand up to k, so a huge k over a small input
 * costs only what the input needs. */
#ifndef KNN_TOPK_H
#define KNN_TOPK_H

#include <stddef.h>
#include <stdint.h>

#include "base/knn_error.h"

typedef struct knn_pair {
    float dist;
    int64_t id;
} knn_pair;

typedef struct knn_topk {
    knn_pair *heap; /* heap[0] is the worst kept pair once size == k */
    size_t size;
    size_t cap;
    size_t k;
} knn_topk;

knn_status knn_topk_init(knn_topk *t, size_t k, knn_error *err);
void knn_topk_free(knn_topk *t);
void knn_topk_reset(knn_topk *t);

/* Slow path of knn_topk_offer: inserts, growing storage if needed. */
knn_status knn_topk_insert(knn_topk *t, float dist, int64_t id, knn_error *err);

/* Largest distance that can still enter (+inf until k pairs are kept). */
static inline float knn_topk_bound(const knn_topk *t) {
    return t->size < t->k ? __builtin_inff() : t->heap[0].dist;
}

/* Offers one pair; cheap rejection inline, insertion out of line. */
static inline knn_status knn_topk_offer(knn_topk *t, float dist, int64_t id, knn_error *err) {
    if (t->size == t->k && dist > t->heap[0].dist) return KNN_OK;
    return knn_topk_insert(t, dist, id, err);
}

/* Adds every pair of src into dst. */
knn_status knn_topk_merge(knn_topk *dst, const knn_topk *src, knn_error *err);

/* Sorts the kept pairs by (distance, id) ascending; the heap is unusable afterwards until reset. */
void knn_topk_sort(knn_topk *t);
/* Sorts, then writes the kept pairs, nearest first, to ids / dists; *found = how many. */
void knn_topk_export(knn_topk *t, int64_t *ids, float *dists, size_t *found);

#endif
