/* Graph maintenance: deletes are tombstones (they still route searches, never appear in results), and
 * optimize rebuilds the graph from the live rows to reclaim them. Node numbers change there, so the
 * buckets overlay is dropped with the old nodes; the caller prepares the window layer again
 * (knn_window_prepare). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "attrs/knn_attr_order.h"
#include "graph/graph_internal.h"

knn_status knn_graph_delete(knn_graph *g, const int64_t *ids, size_t n, size_t *removed, knn_error *err) {
    (void)err;
    size_t r = 0;
    pthread_rwlock_wrlock(&g->rw);
    for (size_t i = 0; i < n; i++) {
        uint32_t node;
        if (knn_idmap_get(&g->map, ids[i], &node) && !g->deleted[node]) {
            knn_graph_tombstone(g, node);
            r++;
        }
    }
    pthread_rwlock_unlock(&g->rw);
    if (removed) *removed = r;
    return KNN_OK;
}

knn_status knn_graph_optimize(knn_graph *g, size_t threads, knn_error *err) {
    pthread_rwlock_wrlock(&g->rw);
    knn_status s = KNN_OK;
    size_t live = g->count - g->n_deleted;
    /* a coded graph copies its live float rows to a file too, not to the heap */
    knn_mapped tmp = knn_mapped_none();
    float *vecs = NULL;
    int64_t *ids = malloc((live ? live : 1) * sizeof(int64_t));
    double *labels = malloc((live ? live : 1) * sizeof(double));
    knn_graph *fresh = NULL;
    if (g->n_missing) {
        s = knn_error_set(err, KNN_ESTATE, "%zu live rows of this restored index still lack their float rows; give "
                          "them first (knn_index_restore_vectors), then optimize", g->n_missing);
        goto done;
    }
    if (g->qbits) {
        if ((s = knn_mapped_grow(&tmp, g->vectors_dir, (live ? live : 1) * g->dim * sizeof(float), err)) != KNN_OK) {
            goto done;
        }
        vecs = tmp.p;
    } else {
        vecs = malloc((live ? live : 1) * g->dim * sizeof(float));
    }
    if (vecs == NULL || ids == NULL || labels == NULL) {
        s = knn_error_set(err, KNN_ENOMEM, "out of memory optimizing a graph of %zu rows", live);
        goto done;
    }
    size_t m = 0;
    for (uint32_t i = 0; i < g->count; i++) {
        if (g->deleted[i]) continue;
        memcpy(vecs + m * g->dim, knn_graph_vec(g, i), g->dim * sizeof(float));
        labels[m] = g->labels[i];
        ids[m++] = g->ids[i];
    }
    if ((s = knn_graph_alloc(g->dim, g->metric, &g->p, &fresh, err)) != KNN_OK) goto done;
    /* a coded graph's fresh copy trains its ranges again, on the live rows */
    if (g->qbits && (s = knn_graph_code_layout(fresh, g->qbits, g->vectors_dir, err)) != KNN_OK) goto done;
    fresh->inserted = 0;
    if ((s = knn_graph_add_locked(fresh, vecs, ids, labels, NULL, m, threads, err)) != KNN_OK) goto done;
    /* The fresh graph numbers the live nodes in their old order: the attribute rows follow by dropping
     * the tombstoned ones (rows past attrs.rows stay implicitly NULL). */
    if ((s = knn_attrs_compact(&g->attrs, g->deleted, err)) != KNN_OK) goto done;
    knn_attrs_order_refresh(&g->attrs);
    /* Swap node storage; keep g's locks and pool (contexts stay valid: capacities only grow). */
    knn_graph_free_nodes(g);
    g->data0 = fresh->data0;
    g->upper = fresh->upper;
    g->levels = fresh->levels;
    g->ids = fresh->ids;
    g->deleted = fresh->deleted;
    g->locks = fresh->locks;
    g->labels = fresh->labels;
    g->win = fresh->win;
    g->count = fresh->count;
    g->capacity = fresh->capacity;
    g->n_deleted = 0;
    g->map = fresh->map;
    g->entry = fresh->entry;
    g->max_level = fresh->max_level;
    g->link_ns = fresh->link_ns;
    g->codes = fresh->codes;
    g->err_cut = fresh->err_cut;
    g->fvecs = fresh->fvecs;
    knn_sq_free(&g->sq);
    g->sq = fresh->sq;
    fresh->codes = NULL;
    fresh->fvecs = knn_mapped_none();
    memset(&fresh->sq, 0, sizeof fresh->sq);
    memset(&fresh->map, 0, sizeof fresh->map);
    fresh->data0 = NULL;
    fresh->upper = NULL;
    fresh->levels = NULL;
    fresh->ids = NULL;
    fresh->deleted = NULL;
    fresh->locks = NULL;
    fresh->labels = NULL;
    memset(&fresh->win, 0, sizeof fresh->win);
    fresh->win.vmap = knn_mapped_none();
    fresh->count = 0;
done:
    knn_graph_free(fresh);
    if (g->qbits) {
        knn_mapped_free(&tmp);
    } else {
        free(vecs);
    }
    free(ids);
    free(labels);
    pthread_rwlock_unlock(&g->rw);
    return s;
}
