/* Attribute columns of a graph index, as its callers see them: the schema for messages and catalogs.
 * The columns themselves live in g->attrs (attrs/knn_attrs.h), one row per node; graph_build.c writes
 * them with the nodes, graph_maintain.c compacts them with the nodes, graph_io.c saves them. */
#include <stdio.h>
#include <string.h>

#include "graph/graph_internal.h"

void knn_graph_attr_schema(knn_graph *g, char *buf, size_t len) {
    if (len == 0) return;
    buf[0] = '\0';
    pthread_rwlock_rdlock(&g->rw);
    size_t at = 0;
    for (size_t c = 0; c < g->attrs.ncols && at < len; c++) {
        int w = snprintf(buf + at, len - at, "%s%s %s", c ? ", " : "", g->attrs.cols[c].name,
                         knn_attr_type_name(g->attrs.cols[c].type));
        if (w < 0) break;
        at += (size_t)w;
    }
    pthread_rwlock_unlock(&g->rw);
}

knn_status knn_graph_attr_gather(knn_graph *g, const int64_t *ids, size_t n, const char *name, size_t len,
                                 knn_attr_type *type, int64_t *i64, double *f64, const char **strs, uint32_t *lens,
                                 uint8_t *valid, knn_error *err) {
    (void)err;
    pthread_rwlock_rdlock(&g->rw);
    long c = knn_attrs_find(&g->attrs, name, len);
    *type = c < 0 ? (knn_attr_type)0 : g->attrs.cols[c].type;
    for (size_t i = 0; i < n; i++) {
        uint32_t node;
        valid[i] = 0;
        if (c < 0 || !knn_idmap_get(&g->map, ids[i], &node) || g->deleted[node] || node >= g->attrs.rows) continue;
        const knn_attr_col *col = &g->attrs.cols[c];
        if (!knn_attrs_is_valid(col, node)) continue;
        valid[i] = 1;
        switch (knn_attr_physical(col->type)) {
        case 'i': i64[i] = col->i64[node]; break;
        case 'f': f64[i] = col->f64[node]; break;
        default:
            /* dictionary strings never move or go while the index lives (the dictionary only grows) */
            strs[i] = col->dict.strs[col->code[node]];
            lens[i] = col->dict.lens[col->code[node]];
        }
    }
    pthread_rwlock_unlock(&g->rw);
    return KNN_OK;
}

size_t knn_graph_attr_columns(knn_graph *g, char names[][KNN_ATTR_NAME_MAX + 1], knn_attr_type *types, size_t cap) {
    pthread_rwlock_rdlock(&g->rw);
    size_t n = g->attrs.ncols < cap ? g->attrs.ncols : cap;
    for (size_t c = 0; c < n; c++) {
        memcpy(names[c], g->attrs.cols[c].name, sizeof names[c]);
        types[c] = g->attrs.cols[c].type;
    }
    pthread_rwlock_unlock(&g->rw);
    return n;
}
