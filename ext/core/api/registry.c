/* Public (cffi) access to a database's named indexes without a SQL statement: the Python tables API
 * searches through these once it holds the registry (from SQL's knn_registry_handle()), so a search
 * costs the core's time plus a Python call, not a statement's parse, bind and result conversion. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "knn_api.h"
#include "index/knn_registry.h"
#include "attrs/knn_predicate.h"

knn_registry *knn_registry_ref(uint64_t handle) {
    knn_registry *r = (knn_registry *)(uintptr_t)handle;
    if (r != NULL) knn_registry_retain(r);
    return r;
}

void knn_registry_unref(knn_registry *r) {
    if (r != NULL) knn_registry_release(r);
}

int knn_registry_query(knn_registry *r, const char *name, const float *queries, size_t nq, size_t dim, size_t k,
                       size_t ef, const char *filter, size_t threads, int64_t *out_ids, float *out_dists,
                       size_t *found, char *errmsg, size_t errmsg_len) {
    knn_error err;
    knn_error_clear(&err);
    knn_predicate *pred = NULL;
    knn_entry *e = knn_registry_get(r, name, strlen(name), &err);
    if (e == NULL) return knn_error_export(&err, errmsg, errmsg_len);
    for (size_t i = 0; i < nq * k; i++) {
        out_ids[i] = -1;
        out_dists[i] = INFINITY;
    }
    if (dim != e->dim) {
        knn_error_set(&err, KNN_EDATA, "dimension mismatch: the query has %zu elements but index '%s' has dim %zu", dim,
                      e->name, e->dim);
    } else if (k == 0) {
        knn_error_set(&err, KNN_EINVAL, "k must be >= 1, got 0");
    } else if (filter != NULL) {
        if (knn_predicate_parse(filter, strlen(filter), &pred, &err) == KNN_OK) {
            knn_entry_search_filter(e, queries, nq, k, ef, 0, pred, 0, 0, 0, threads, out_ids, out_dists, found, NULL,
                                    &err);
        }
    } else if (e->kind == KNN_KIND_GRAPH) {
        if (nq == 1) {
            knn_entry_search(e, queries, k, ef, 0, out_ids, out_dists, found, &err);
        } else {
            char msg[KNN_ERROR_MSG_LEN];
            err.status = (knn_status)knn_graph_query(e->graph, queries, nq, k, ef, threads, out_ids, out_dists, found,
                                                     msg, sizeof msg);
            if (err.status != KNN_OK) knn_error_set(&err, err.status, "%s", msg);
        }
    } else {
        size_t got = 0;
        if (knn_entry_search_flat_batch(e, queries, nq, k, out_ids, out_dists, &got, &err) == KNN_OK) {
            for (size_t q = 0; q < nq; q++) found[q] = got;
        }
    }
    knn_predicate_free(pred);
    knn_entry_release(e);
    return knn_error_export(&err, errmsg, errmsg_len);
}

int knn_registry_attr_values(knn_registry *r, const char *name, const int64_t *ids, size_t n, const char *column,
                             int *type, int64_t *i64, double *f64, const char **strs, uint32_t *lens, uint8_t *valid,
                             char *errmsg, size_t errmsg_len) {
    knn_error err;
    knn_error_clear(&err);
    *type = 0;
    knn_entry *e = knn_registry_get(r, name, strlen(name), &err);
    if (e == NULL) return knn_error_export(&err, errmsg, errmsg_len);
    if (e->kind != KNN_KIND_GRAPH) {
        memset(valid, 0, n);
    } else {
        knn_attr_type t = (knn_attr_type)0;
        knn_graph_attr_gather(e->graph, ids, n, column, strlen(column), &t, i64, f64, strs, lens, valid, &err);
        *type = (int)t;
    }
    knn_entry_release(e);
    return knn_error_export(&err, errmsg, errmsg_len);
}
