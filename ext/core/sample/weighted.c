/* Weighted sampling from a weight column.
 *
 * - Without replacement (default): Efraimidis-Spirakis / Gumbel-top-k (sample/rng.c). The picks are
 *   a successive-sampling draw: the first pick has probability w_i / W, the next is drawn the same way
 *   from the rest, and so on. pick_order follows that draw; score is w_i / W (the first-draw probability); weight is the
 *   row's input weight. n larger than the rows with a positive weight returns all of them.
 * - With replacement (replace=1): n independent draws from a Walker/Vose alias table; a row may repeat.
 *   weight is the Hansen-Hurwitz factor W / (n w_i), so sum(weight * f) estimates the column total of f. */
#include <math.h>
#include <stdlib.h>

#include "sample/knn_sample.h"

knn_status knn_sample_weighted(const knn_sample_in *in, knn_sample_result *r, knn_error *err) {
    const double *w = in->weights;
    knn_rng rng;
    knn_rng_init(&rng, in->seed, 4);
    double total = 0;
    size_t positive = 0;
    for (size_t i = 0; i < in->n; i++) {
        total += w[i];
        positive += w[i] > 0;
    }
    if (in->opts.replace) {
        knn_alias al;
        knn_status s = knn_alias_build(&al, w, in->n, err);
        if (s != KNN_OK) return s;
        for (size_t p = 0; p < in->target; p++) {
            size_t i = knn_alias_draw(&al, &rng);
            r->index[p] = (int64_t)i;
            r->weight[p] = total / ((double)in->target * w[i]);
            r->score[p] = w[i] / total;
            r->cluster[p] = -1;
        }
        r->n = in->target;
        knn_alias_free(&al);
        return KNN_OK;
    }
    size_t m = in->target < positive ? in->target : positive;
    knn_status s = knn_weighted_topk(w, in->n, m, &rng, r->index, err);
    if (s != KNN_OK) return s;
    for (size_t p = 0; p < m; p++) {
        r->weight[p] = w[r->index[p]];
        r->score[p] = w[r->index[p]] / total;
        r->cluster[p] = -1;
    }
    r->n = m;
    return KNN_OK;
}
