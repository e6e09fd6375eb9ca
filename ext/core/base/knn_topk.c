#include "base/knn_topk.h"

#include <stdlib.h>

/* a is worse (farther) than b. */
static inline int worse(const knn_pair *a, const knn_pair *b) {
    return a->dist > b->dist || (a->dist == b->dist && a->id > b->id);
}

knn_status knn_topk_init(knn_topk *t, size_t k, knn_error *err) {
    t->heap = NULL;
    t->size = 0;
    t->cap = 0;
    t->k = k;
    if (k == 0) return knn_error_set(err, KNN_EINVAL, "k must be >= 1, got 0");
    return KNN_OK;
}

void knn_topk_free(knn_topk *t) {
    free(t->heap);
    t->heap = NULL;
    t->size = t->cap = 0;
}

void knn_topk_reset(knn_topk *t) { t->size = 0; }

static void sift_up(knn_pair *h, size_t i) {
    knn_pair v = h[i];
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!worse(&v, &h[p])) break;
        h[i] = h[p];
        i = p;
    }
    h[i] = v;
}

static void sift_down(knn_pair *h, size_t n, size_t i) {
    knn_pair v = h[i];
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && worse(&h[c + 1], &h[c])) c++;
        if (!worse(&h[c], &v)) break;
        h[i] = h[c];
        i = c;
    }
    h[i] = v;
}

knn_status knn_topk_insert(knn_topk *t, float dist, int64_t id, knn_error *err) {
    knn_pair p = {dist, id};
    if (t->size < t->k) {
        if (t->size == t->cap) {
            size_t cap = t->cap ? t->cap * 2 : 16;
            if (cap > t->k) cap = t->k;
            knn_pair *h = realloc(t->heap, cap * sizeof *h);
            if (h == NULL) return knn_error_set(err, KNN_ENOMEM, "out of memory growing a top-%zu list", t->k);
            t->heap = h;
            t->cap = cap;
        }
        t->heap[t->size] = p;
        sift_up(t->heap, t->size);
        t->size++;
        return KNN_OK;
    }
    if (worse(&p, &t->heap[0]) || (p.dist == t->heap[0].dist && p.id == t->heap[0].id)) return KNN_OK;
    t->heap[0] = p;
    sift_down(t->heap, t->size, 0);
    return KNN_OK;
}

knn_status knn_topk_merge(knn_topk *dst, const knn_topk *src, knn_error *err) {
    for (size_t i = 0; i < src->size; i++) {
        knn_status s = knn_topk_offer(dst, src->heap[i].dist, src->heap[i].id, err);
        if (s != KNN_OK) return s;
    }
    return KNN_OK;
}

static int cmp_pair(const void *a, const void *b) {
    const knn_pair *x = a, *y = b;
    if (worse(x, y)) return 1;
    if (worse(y, x)) return -1;
    return 0;
}

void knn_topk_sort(knn_topk *t) {
    if (t->size > 1) qsort(t->heap, t->size, sizeof *t->heap, cmp_pair);
}

void knn_topk_export(knn_topk *t, int64_t *ids, float *dists, size_t *found) {
    knn_topk_sort(t);
    for (size_t j = 0; j < t->size; j++) {
        ids[j] = t->heap[j].id;
        dists[j] = t->heap[j].dist;
    }
    *found = t->size;
}
