/* Row selector parts and their estimated shares (knn_selector.h). */
#include <stdlib.h>
#include <string.h>

#include "select/knn_selector.h"

static double clamp_share(double share) {
    if (!(share >= 0)) return 0; /* NaN counts as nothing admitted */
    return share > 1 ? 1 : share;
}

knn_selector knn_selector_all(void) {
    knn_selector s = {0};
    s.fraction = 1.0;
    return s;
}

void knn_selector_live(knn_selector *s, const uint8_t *tombstones, double share) {
    s->parts |= KNN_SEL_LIVE;
    s->tombstones = tombstones;
    s->fraction *= clamp_share(share);
}

void knn_selector_label(knn_selector *s, const double *labels, double lo, double hi, double share) {
    s->parts |= KNN_SEL_LABEL;
    s->labels = labels;
    s->lo = lo;
    s->hi = hi;
    s->fraction *= clamp_share(share);
}

void knn_selector_allow(knn_selector *s, const uint64_t *bits, size_t rows) {
    size_t set = 0;
    for (size_t w = 0; w < (rows + 63) / 64; w++) {
        uint64_t v = bits[w];
        if (w == rows / 64) v &= ((uint64_t)1 << (rows % 64)) - 1; /* the last, partial word */
        set += (size_t)__builtin_popcountll(v);
    }
    s->parts |= KNN_SEL_ALLOW;
    s->allow = bits;
    s->allow_rows = rows;
    s->fraction *= rows ? (double)set / (double)rows : 0.0;
}

void knn_selector_predicate(knn_selector *s, knn_row_predicate match, const void *ctx, double share) {
    s->parts |= KNN_SEL_PREDICATE;
    s->match = match;
    s->match_ctx = ctx;
    s->fraction *= clamp_share(share);
}

knn_status knn_selector_gather(const knn_selector *s, size_t rows, size_t dim, const int64_t *row_ids,
                               const float *(*row_vec)(const void *ctx, size_t row), const void *ctx, int64_t **ids,
                               float **vecs, size_t *n, knn_error *err) {
    size_t cap = rows ? rows : 1, m = 0;
    int64_t *oi = malloc(cap * sizeof *oi);
    float *ov = malloc(cap * dim * sizeof *ov);
    if (oi == NULL || ov == NULL) {
        free(oi);
        free(ov);
        return knn_error_set(err, KNN_ENOMEM, "out of memory copying %zu rows", cap);
    }
    for (size_t i = 0; i < rows; i++) {
        if (!knn_selector_admits(s, i)) continue;
        oi[m] = row_ids[i];
        memcpy(ov + m * dim, row_vec(ctx, i), dim * sizeof(float));
        m++;
    }
    *ids = oi;
    *vecs = ov;
    *n = m;
    return KNN_OK;
}
