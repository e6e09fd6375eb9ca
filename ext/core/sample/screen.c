/* The 8-bit lower-bound screen of the nearest-center cover (design note at knn_screen in
 * knn_sample.h; the codes and their bound in quant/knn_codes.c). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "sample/knn_sample.h"


void knn_screen_free(knn_screen *s) {
    knn_codes_free(&s->q);
    free(s->reach);
    memset(s, 0, sizeof *s);
}

void knn_screen_touch(knn_cover *c, size_t i) {
    float m = c->mind[i];
    c->screen.reach[i] = m < 0 ? -1.0f : (sqrtf(m) + c->screen.q.err[i]) * (float)(1.0 + KNN_CODES_SLACK);
}

void knn_screen_build(knn_cover *c) {
    knn_screen *s = &c->screen;
    memset(s, 0, sizeof *s);
    if (knn_codes_build(&s->q, c->X, c->n, c->d) != 0) return; /* the cover works without it, slower */
    s->reach = malloc(s->q.nblocks * KNN_CODE_BLOCK * sizeof *s->reach);
    if (s->reach == NULL) {
        knn_screen_free(s);
        return;
    }
    for (size_t i = 0; i < s->q.nblocks * KNN_CODE_BLOCK; i++) s->reach[i] = -1.0f; /* padding rows stay -1 */
}
