/* The rank-sum test between two samples of scores, as TTE depth uses it to ask whether two corpora
 * differ in embedding space (Seegmiller & Preum, EMNLP 2023, after Liu & Singh, JASA 1993): depths of
 * the reference corpus F and of the candidate corpus G, both relative to F, ranked together.
 *
 *   W (the Wilcoxon rank-sum statistic as a z-score, scipy.stats.ranksums): R_F the sum of F's ranks in
 *     the pooled sample (ties get their mid-rank), z = (R_F - n (n + m + 1) / 2) / sqrt(n m (n + m + 1) / 12),
 *     with no tie correction, as ranksums and the authors' tte_depth compute it.
 *   p: from the normal approximation; alternative 'greater' (the paper's: F ranks deeper, i.e. G is more
 *     outlying) is P(Z >= z), 'less' P(Z <= z), 'two-sided' twice the smaller tail.
 *   U: the Mann-Whitney statistic of F, R_F - n (n + 1) / 2 (scipy.stats.mannwhitneyu's statistic).
 *   Q: Liu & Singh's quality index, the share of (x in F, y in G) pairs with D(x) <= D(y), ties counted
 *     half: Q = 1 - U / (n m). Q ~ 0.5 when F and G come from one distribution; Q < 0.5 when G is more
 *     outlying than F.
 * Sorting dominates: O((n + m) log(n + m)). */
#include <math.h>
#include <stdlib.h>

#include "analytics/knn_analytics.h"

typedef struct ranked {
    double v;
    int from_x;
} ranked;

static int cmp_ranked(const void *a, const void *b) {
    const ranked *p = a, *q = b;
    return (p->v > q->v) - (p->v < q->v);
}

knn_status knn_an_rank_sum(const double *x, size_t n, const double *y, size_t m, int alternative, double out[4],
                           knn_error *err) {
    for (int i = 0; i < 4; i++) out[i] = NAN;
    if (n == 0 || m == 0) {
        return knn_error_set(err, KNN_EINVAL, "the rank-sum test needs rows on both sides (got %zu reference and %zu "
                             "candidate rows)", n, m);
    }
    if (alternative < 0 || alternative > 2) {
        return knn_error_set(err, KNN_EINVAL, "alternative must be 0 greater, 1 less or 2 two-sided, got %d",
                             alternative);
    }
    const size_t N = n + m;
    ranked *all = malloc(N * sizeof *all);
    if (!all) return knn_error_set(err, KNN_ENOMEM, "out of memory ranking %zu scores", N);
    for (size_t i = 0; i < n; i++) all[i] = (ranked){x[i], 1};
    for (size_t j = 0; j < m; j++) all[n + j] = (ranked){y[j], 0};
    for (size_t i = 0; i < N; i++) {
        if (isnan(all[i].v)) {
            const int ref = all[i].from_x;
            free(all);
            return knn_error_set(err, KNN_EDATA, "score %zu of the %s side is NaN; ranks need numbers",
                                 ref ? i : i - n, ref ? "reference" : "candidate");
        }
    }
    qsort(all, N, sizeof *all, cmp_ranked);
    double rx = 0; /* sum of the reference side's ranks (1-based, mid-ranks for ties) */
    for (size_t i = 0; i < N;) {
        size_t j = i;
        size_t cx = 0;
        while (j < N && all[j].v == all[i].v) cx += (size_t)all[j++].from_x;
        double mid = 0.5 * ((double)(i + 1) + (double)j);
        rx += mid * (double)cx;
        i = j;
    }
    free(all);
    const double dn = (double)n, dm = (double)m;
    const double z = (rx - dn * (dn + dm + 1) / 2) / sqrt(dn * dm * (dn + dm + 1) / 12);
    const double upper = 0.5 * erfc(z / sqrt(2.0)), lower = 0.5 * erfc(-z / sqrt(2.0));
    const double u = rx - dn * (dn + 1) / 2;
    out[0] = 1.0 - u / (dn * dm);
    out[1] = z;
    out[2] = alternative == 0 ? upper : alternative == 1 ? lower : fmin(1.0, 2.0 * fmin(upper, lower));
    out[3] = u;
    return KNN_OK;
}
