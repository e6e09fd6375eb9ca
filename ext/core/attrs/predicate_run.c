/* Filter predicates, entry point (knn_predicate.h): sets up one evaluation (columns resolved into
 * leaves, scratch per tree level), then answers through the columns' sorted orders when a selective
 * conjunct allows it (predicate_order.c), else word by word over the whole store (predicate_eval.c). */
#include <stdlib.h>
#include <string.h>

#include "attrs/predicate_internal.h"
#include "kernels/knn_kernels.h"

knn_status knn_predicate_eval(const knn_predicate *p, const knn_attrs *a, size_t rows, uint64_t *match,
                              knn_error *err) {
    knn_status s = KNN_OK;
    if (p == NULL || a == NULL || (match == NULL && rows))
        return knn_error_set(err, KNN_EINVAL, "filter: evaluation needs a predicate, a store and an output bitmap");
    /* rows past the store's are NULL in every column (the contract asks rows <= a->rows) */
    ctx c = {p, a, rows, WORDS(a->rows), NULL, NULL, NULL, NULL, 0};
    c.wide = strcmp(knn_kernels_best()->name, "scalar") != 0;
    c.leaves = calloc(p->n ? p->n : 1, sizeof *c.leaves);
    c.scratch = malloc((size_t)(p->height + 1) * 2 * CHUNK * sizeof *c.scratch);
    c.order = malloc((p->n ? p->n : 1) * MAX_KIDS * sizeof *c.order);
    c.norder = calloc(p->n ? p->n : 1, sizeof *c.norder);
    if (c.leaves == NULL || c.scratch == NULL || c.order == NULL || c.norder == NULL) {
        s = knn_error_set(err, KNN_ENOMEM, "filter: out of memory");
        goto cleanup;
    }
    for (size_t i = 0; i < p->n; i++) {
        const pn_node *n = &p->nodes[i];
        if (n->kind >= PN_BOOLCOL && (s = knn_pred_resolve(&c, n, &c.leaves[i], err)) != KNN_OK) goto cleanup;
    }
    if (!knn_pred_eval_by_order(&c, match)) knn_pred_eval_words(&c, match);
cleanup:
    if (c.leaves) {
        for (size_t i = 0; i < p->n; i++) {
            free(c.leaves[i].iset);
            free(c.leaves[i].dset);
            free(c.leaves[i].tab);
        }
    }
    free(c.leaves);
    free(c.scratch);
    free(c.order);
    free(c.norder);
    return s;
}
