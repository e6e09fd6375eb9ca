#include "base/knn_idmap.h"

#include <stdlib.h>

static inline size_t hash_id(int64_t id) {
    uint64_t x = (uint64_t)id;  /* splitmix64 finaliser */
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    x ^= x >> 31;
    return (size_t)x;
}

static void raw_put(int64_t *keys, uint32_t *vals, size_t cap, int64_t id, uint32_t slot) {
    size_t i = hash_id(id) & (cap - 1);
    while (vals[i] != KNN_IDMAP_EMPTY && keys[i] != id) i = (i + 1) & (cap - 1);
    keys[i] = id;
    vals[i] = slot;
}

static knn_status grow(knn_idmap *m, knn_error *err) {
    size_t cap = m->cap ? m->cap * 2 : 64;
    int64_t *keys = malloc(cap * sizeof *keys);
    uint32_t *vals = malloc(cap * sizeof *vals);
    if (keys == NULL || vals == NULL) {
        free(keys);
        free(vals);
        return knn_error_set(err, KNN_ENOMEM, "out of memory growing the id map to %zu buckets", cap);
    }
    for (size_t i = 0; i < cap; i++) vals[i] = KNN_IDMAP_EMPTY;
    for (size_t i = 0; i < m->cap; i++) {
        if (m->vals[i] != KNN_IDMAP_EMPTY) raw_put(keys, vals, cap, m->keys[i], m->vals[i]);
    }
    free(m->keys);
    free(m->vals);
    m->keys = keys;
    m->vals = vals;
    m->cap = cap;
    return KNN_OK;
}

knn_status knn_idmap_put(knn_idmap *m, int64_t id, uint32_t slot, knn_error *err) {
    if ((m->size + 1) * 2 > m->cap) {
        knn_status s = grow(m, err);
        if (s != KNN_OK) return s;
    }
    size_t i = hash_id(id) & (m->cap - 1);
    while (m->vals[i] != KNN_IDMAP_EMPTY && m->keys[i] != id) i = (i + 1) & (m->cap - 1);
    if (m->vals[i] == KNN_IDMAP_EMPTY) m->size++;
    m->keys[i] = id;
    m->vals[i] = slot;
    return KNN_OK;
}

int knn_idmap_get(const knn_idmap *m, int64_t id, uint32_t *slot) {
    if (m->cap == 0) return 0;
    size_t i = hash_id(id) & (m->cap - 1);
    while (m->vals[i] != KNN_IDMAP_EMPTY) {
        if (m->keys[i] == id) {
            *slot = m->vals[i];
            return 1;
        }
        i = (i + 1) & (m->cap - 1);
    }
    return 0;
}

void knn_idmap_get_many(const knn_idmap *m, const int64_t *ids, size_t n, uint32_t *slots) {
    enum { AHEAD = 8 };
    for (size_t i = 0; i < n; i++) {
        if (m->cap && i + AHEAD < n) {
            size_t b = hash_id(ids[i + AHEAD]) & (m->cap - 1);
            __builtin_prefetch(&m->vals[b]);
            __builtin_prefetch(&m->keys[b]);
        }
        if (!knn_idmap_get(m, ids[i], &slots[i])) slots[i] = KNN_IDMAP_EMPTY;
    }
}

int knn_idmap_del(knn_idmap *m, int64_t id) {
    if (m->cap == 0) return 0;
    size_t mask = m->cap - 1, i = hash_id(id) & mask;
    while (m->vals[i] != KNN_IDMAP_EMPTY && m->keys[i] != id) i = (i + 1) & mask;
    if (m->vals[i] == KNN_IDMAP_EMPTY) return 0;
    /* Backward-shift deletion keeps every probe chain unbroken without tombstones. */
    for (size_t j = (i + 1) & mask; m->vals[j] != KNN_IDMAP_EMPTY; j = (j + 1) & mask) {
        size_t home = hash_id(m->keys[j]) & mask;
        /* Move j into the hole at i unless its home lies cyclically in (i, j]. */
        int stays = i <= j ? (home > i && home <= j) : (home > i || home <= j);
        if (!stays) {
            m->keys[i] = m->keys[j];
            m->vals[i] = m->vals[j];
            i = j;
        }
    }
    m->vals[i] = KNN_IDMAP_EMPTY;
    m->size--;
    return 1;
}

void knn_idmap_free(knn_idmap *m) {
    free(m->keys);
    free(m->vals);
    m->keys = NULL;
    m->vals = NULL;
    m->cap = m->size = 0;
}

int knn_ids_find_duplicate(const int64_t *ids, size_t n, int64_t *dup, knn_error *err) {
    knn_idmap seen = {0};
    int found = 0;
    for (size_t i = 0; i < n && !found; i++) {
        uint32_t slot;
        if (knn_idmap_get(&seen, ids[i], &slot)) {
            *dup = ids[i];
            found = 1;
        } else if (knn_idmap_put(&seen, ids[i], 0, err) != KNN_OK) {
            found = -1;
        }
    }
    knn_idmap_free(&seen);
    return found;
}
