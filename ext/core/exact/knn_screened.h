/* Exact top-k over rows that carry 8-bit codes (quant/knn_codes.h) beside their floats: the codes give
 * every row a provable lower bound on its distance, so float rows that cannot enter the top k are never
 * read, and the result equals knn_scan_one's over the same rows, ties included (design note in
 * exact/screened_scan.c). Used by the window plan's exact scan and by the 8-bit flat index. */
#ifndef KNN_SCREENED_H
#define KNN_SCREENED_H

#include <stddef.h>
#include <stdint.h>

#include "base/knn_error.h"
#include "base/knn_metric.h"
#include "base/knn_topk.h"
#include "kernels/knn_kernels.h"
#include "quant/knn_codes.h"
#include "select/knn_selector.h"

/* Runs of fewer values (rows x d) are better scanned plainly: the passes cost about as much as they save
 * there (GloVe-50: no gain below ~2,000 rows; at d = 784 a few hundred rows already pay). */
#define KNN_SCREEN_MIN_VALUES 100000

/* Rows 0.. of one store: codes of row i, float row i at vecs + i * d (as scanned: unit rows under cosine),
 * id i. */
typedef struct knn_screen_rows {
    const knn_codes *codes;
    const float *vecs;
    const int64_t *ids;
    size_t d;
} knn_screen_rows;

/* Offers rows [s, e) that sel admits to t (scan_metric: squared L2, or IP of unit rows, distances -<q, x>). */
knn_status knn_scan_screened(const knn_kernels *kern, knn_metric scan_metric, const float *q, const knn_screen_rows *src,
                             const knn_selector *sel, size_t s, size_t e, knn_topk *t, knn_error *err);

#endif
