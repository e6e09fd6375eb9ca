/* Graph construction: HNSW insertion (Malkov & Yashunin, Algorithm 1) with the diversity heuristic
 * (Algorithm 4), seeded layer draws, a shuffled insertion order, and a parallel build with per-node
 * spinlocks on the link lists (as hnswlib's). Also builds the link-only views the bucket graphs use. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attrs/knn_attr_order.h"
#include "graph/graph_internal.h"
#include "base/knn_parallel.h"

static inline size_t max_links(const knn_graph *g, int level) { return level == 0 ? g->m0 : g->p.m; }

/* Diversity heuristic (HNSW Algorithm 4): keep a candidate only if it is nearer to the base than to
 * every neighbour already kept. cand must be sorted ascending; returns how many were kept (in place). */
static size_t select_neighbors(const knn_graph *g, knn_hitem *cand, size_t n, size_t m) {
    size_t kept = 0;
    for (size_t i = 0; i < n && kept < m; i++) {
        const float *v = knn_graph_vec(g, cand[i].id);
        int good = 1;
        for (size_t j = 0; j < kept; j++) {
            if (knn_vdist(g, v, knn_graph_vec(g, cand[j].id)) < cand[i].key) {
                good = 0;
                break;
            }
        }
        if (good) cand[kept++] = cand[i];
    }
    return kept;
}


/* Adds the back-link node -> e on `level`, pruning e's list with the heuristic when it is full. */
static void link_back(knn_graph *g, uint32_t e, uint32_t node, int level, knn_hitem *scratch) {
    size_t cap = max_links(g, level);
    knn_node_lock(g, e);
    uint32_t *l = knn_graph_links(g, e, level);
    uint32_t n = l[0];
    for (uint32_t j = 0; j < n; j++) {
        if (l[1 + j] == node) {
            knn_node_unlock(g, e);
            return;
        }
    }
    if (n < cap) {
        l[1 + n] = node;
        l[0] = n + 1;
    } else {
        const float *ev = knn_graph_vec(g, e);
        for (uint32_t j = 0; j < n; j++) {
            scratch[j].id = l[1 + j];
            scratch[j].key = knn_vdist(g, ev, knn_graph_vec(g, l[1 + j]));
        }
        scratch[n].id = node;
        scratch[n].key = knn_vdist(g, ev, knn_graph_vec(g, node));
        qsort(scratch, n + 1, sizeof *scratch, knn_hitem_cmp);
        size_t kept = select_neighbors(g, scratch, n + 1, cap);
        for (size_t j = 0; j < kept; j++) l[1 + j] = scratch[j].id;
        l[0] = (uint32_t)kept;
    }
    knn_node_unlock(g, e);
}

static int insert_node(knn_graph *g, knn_search_ctx *c, uint32_t node) {
    const float *v = knn_graph_vec(g, node);
    int level = g->levels[node];
    knn_hitem scratch[513];
    knn_hitem merged[256 + 512 + 1];

    pthread_mutex_lock(&g->entry_lock);
    uint32_t ep = g->entry;
    int max_level = g->max_level;
    if (ep == KNN_NO_NODE) {
        g->entry = node;
        g->max_level = level;
        pthread_mutex_unlock(&g->entry_lock);
        return 1;
    }
    /* A node that raises the top level keeps the lock so no other insert sees a half-linked entry. */
    int holds = level > max_level;
    if (!holds) pthread_mutex_unlock(&g->entry_lock);

    float epd = knn_vdist(g, v, knn_graph_vec(g, ep));
    for (int lev = max_level; lev > level; lev--) ep = knn_graph_greedy(g, c, v, ep, &epd, lev, node);
    for (int lev = level < max_level ? level : max_level; lev >= 0; lev--) {
        size_t ntop;
        if (!knn_graph_search_layer(g, c, v, ep, epd, g->p.ef_construction, lev, node, NULL, &ntop, NULL)) {
            if (holds) pthread_mutex_unlock(&g->entry_lock);
            return 0;
        }
        /* top holds the beam; sort ascending (excluding the node itself, which is not linked yet). */
        size_t n = 0;
        for (size_t j = 0; j < ntop; j++) {
            if (c->top[j].id != node) c->top[n++] = c->top[j];
        }
        qsort(c->top, n, sizeof *c->top, knn_hitem_cmp);
        if (n) {
            ep = c->top[0].id;
            epd = c->top[0].key;
        }
        size_t kept = select_neighbors(g, c->top, n, g->p.m);
        knn_node_lock(g, node);
        uint32_t *l = knn_graph_links(g, node, lev);
        if (l[0] == 0) {
            for (size_t j = 0; j < kept; j++) l[1 + j] = c->top[j].id;
            l[0] = (uint32_t)kept;
        } else {
            /* Another thread already linked back to this node here (it found the node through an upper
             * layer): merge, never overwrite, or that in-link is lost and nodes become unreachable. */
            size_t cnt = 0, cap = max_links(g, lev);
            for (size_t j = 0; j < kept; j++) merged[cnt++] = c->top[j];
            for (uint32_t j = 0; j < l[0]; j++) {
                int dup = 0;
                for (size_t t = 0; t < kept && !dup; t++) dup = merged[t].id == l[1 + j];
                if (!dup) merged[cnt++] = (knn_hitem){knn_vdist(g, v, knn_graph_vec(g, l[1 + j])), l[1 + j]};
            }
            if (cnt > cap) {
                qsort(merged, cnt, sizeof *merged, knn_hitem_cmp);
                cnt = select_neighbors(g, merged, cnt, cap);
            }
            for (size_t j = 0; j < cnt; j++) l[1 + j] = merged[j].id;
            l[0] = (uint32_t)cnt;
        }
        knn_node_unlock(g, node);
        for (size_t j = 0; j < kept; j++) link_back(g, c->top[j].id, node, lev, scratch);
    }
    if (holds) {
        if (level > g->max_level) {
            g->entry = node;
            g->max_level = level;
        }
        pthread_mutex_unlock(&g->entry_lock);
    }
    return 1;
}

static uint64_t mix64(uint64_t seed, uint64_t seq) {
    uint64_t x = seed ^ (seq * 0x9e3779b97f4a7c15ULL);  /* splitmix64 of (seed, seq) */
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    x ^= x >> 31;
    return x;
}

static int draw_level(const knn_graph *g, uint64_t seq) {
    uint64_t x = mix64(g->p.seed, seq);
    double u = ((x >> 11) + 0.5) * (1.0 / 9007199254740992.0);
    int level = (int)floor(-log(u) * g->level_mult);
    return level > KNN_MAX_LEVEL ? KNN_MAX_LEVEL : level;
}

/* Nodes [first, last) are linked in the order first + order[i] (a seeded shuffle, see insertion_order;
 * row order when order is NULL). */
typedef struct build_job {
    knn_graph *g;
    uint32_t first, last;
    const uint32_t *order;
    _Atomic uint32_t next;
    _Atomic int failed;
} build_job;

/* Insertion order of a batch of n new nodes: a Fisher-Yates shuffle drawn from (seed, rows inserted
 * before the batch). Rows arriving grouped (sorted by a label, cluster by cluster, by time) and linked in
 * that order leave a poorly connected graph: each group's first rows are the only ones linked to earlier
 * groups, and back-link pruning later drops most of those links, so a search entering in one group
 * never reaches another (measured: 100 tight clusters inserted cluster by cluster gave recall@10 0.90 at
 * ef 256; the same rows shuffled 0.9995). Linking in a random order, as NSW/HNSW assume, makes the early
 * graph a uniform sample whose long links span every group. */
static void insertion_order(uint32_t *order, uint32_t n, uint64_t seed, uint64_t before) {
    for (uint32_t i = 0; i < n; i++) order[i] = i;
    for (uint32_t i = n; i > 1; i--) {
        uint32_t j = (uint32_t)(mix64(seed ^ 0x5851f42d4c957f2dULL, before + i) % i);
        uint32_t t = order[i - 1];
        order[i - 1] = order[j];
        order[j] = t;
    }
}

static void build_worker(void *arg, size_t t) {
    (void)t;
    build_job *job = arg;
    knn_search_ctx *c = knn_graph_ctx_acquire(job->g);
    if (c == NULL) {
        atomic_store(&job->failed, 1);
        return;
    }
    c->coded = 0; /* links are chosen by float distances, on a coded graph too (read from its file) */
    for (;;) {
        uint32_t i = atomic_fetch_add(&job->next, 1);
        if (i >= job->last - job->first || atomic_load(&job->failed)) break;
        uint32_t node = job->first + (job->order ? job->order[i] : i);
        if (!insert_node(job->g, c, node)) atomic_store(&job->failed, 1);
    }
    knn_graph_ctx_release(job->g, c);
}

knn_status knn_graph_prepare_vec(const knn_graph *g, const float *v, float *out, int64_t id, size_t row,
                                knn_error *err) {
    double nn = 0;
    for (size_t j = 0; j < g->dim; j++) {
        if (!isfinite(v[j])) {
            return knn_error_set(err, KNN_EDATA, "vector with id %lld (row %zu of this batch) has a NaN or Inf "
                                 "component; nothing was added", (long long)id, row);
        }
        nn += (double)v[j] * v[j];
    }
    if (!isfinite((float)nn)) {
        return knn_error_set(err, KNN_EDATA, "vector with id %lld (row %zu of this batch) has values too large "
                             "for float32 distances; nothing was added", (long long)id, row);
    }
    if (g->metric == KNN_METRIC_COSINE) {
        if (nn == 0) {
            return knn_error_set(err, KNN_EDATA, "vector with id %lld (row %zu of this batch) is the zero vector, "
                                 "which has no direction for metric 'cosine'; nothing was added", (long long)id, row);
        }
        float inv = (float)(1.0 / sqrt(nn));
        for (size_t j = 0; j < g->dim; j++) out[j] = v[j] * inv;
    } else {
        memcpy(out, v, g->dim * sizeof(float));
    }
    return KNN_OK;
}

/* Sets up node `node` (its vector already in place): layer draw, id, label, empty links. */
static knn_status init_node(knn_graph *g, uint32_t node, uint64_t seq, int64_t id, double label, knn_error *err) {
    int level = draw_level(g, seq);
    g->levels[node] = (uint8_t)level;
    g->ids[node] = id;
    g->labels[node] = label;
    g->deleted[node] = 0;
    knn_graph_links(g, node, 0)[0] = 0;
    g->upper[node] = NULL;
    if (level > 0) {
        g->upper[node] = calloc((size_t)level * (g->p.m + 1), sizeof(uint32_t));
        if (g->upper[node] == NULL) return knn_error_set(err, KNN_ENOMEM, "out of memory for graph links");
    }
    return KNN_OK;
}

/* Links nodes [first, count) into the graph, in a seeded random order, on `threads` threads. */
static knn_status link_nodes(knn_graph *g, size_t first, size_t threads, knn_error *err) {
    size_t added = g->count - first;
    uint32_t *order = malloc((added ? added : 1) * sizeof *order); /* NULL: link in row order (still correct) */
    if (order) insertion_order(order, (uint32_t)added, g->p.seed, g->inserted);
    g->inserted += added;
    if (threads == 0) threads = knn_cpu_count();
    if (added < 2 * threads) threads = 1;
    build_job job = {g, (uint32_t)first, (uint32_t)g->count, order, 0, 0};
    double t0 = knn_now_ns();
    knn_parallel_run(threads, build_worker, &job);
    g->link_ns += knn_now_ns() - t0;
    free(order);
    if (atomic_load(&job.failed)) return knn_error_set(err, KNN_ENOMEM, "out of memory while linking the graph");
    return KNN_OK;
}

knn_status knn_graph_add_locked(knn_graph *g, const float *vecs, const int64_t *ids, const double *labels,
                                const knn_attr_batch *attrs, size_t n, size_t threads, knn_error *err) {
    knn_idmap last = {0};
    knn_status s = KNN_OK;
    if (attrs && attrs->ncols && (s = knn_attrs_check(&g->attrs, attrs, err)) != KNN_OK) return s;
    /* Within one batch the last occurrence of an id wins. */
    for (size_t i = 0; i < n; i++) {
        if ((s = knn_idmap_put(&last, ids[i], (uint32_t)i, err)) != KNN_OK) goto done;
    }
    if ((s = knn_graph_reserve(g, g->count + last.size, err)) != KNN_OK) goto done;
    size_t first = g->count;
    for (size_t i = 0; i < n; i++) {
        uint32_t at;
        knn_idmap_get(&last, ids[i], &at);
        if (at != i) continue;
        uint32_t node = (uint32_t)g->count;
        s = knn_graph_prepare_vec(g, vecs + i * g->dim, knn_graph_vec(g, node), ids[i], i, err);
        if (s != KNN_OK) goto rollback;
        s = init_node(g, node, g->inserted + (node - first), ids[i], labels ? labels[i] : NAN, err);
        if (s != KNN_OK) goto rollback;
        g->count++;
        /* Node `node` takes row i's attributes; a node with none is NULL everywhere (rows past attrs.rows). */
        if (attrs && attrs->ncols) {
            if ((s = knn_attrs_grow(&g->attrs, g->count, err)) != KNN_OK) goto rollback;
            if ((s = knn_attrs_write(&g->attrs, attrs, i, node, err)) != KNN_OK) goto rollback;
        }
    }
    /* Once an index has attribute columns they span every node (rows of nodes added without any: NULL). */
    if (g->attrs.ncols && (s = knn_attrs_grow(&g->attrs, g->count, err)) != KNN_OK) goto rollback;
    /* a coded graph codes its new rows (the first batch trains the ranges) */
    if (g->qbits && (s = knn_graph_encode_nodes(g, first, err)) != KNN_OK) goto rollback;
    /* All rows are valid: retire replaced ids, then link the new nodes. */
    for (uint32_t node = (uint32_t)first; node < g->count; node++) {
        uint32_t old;
        if (knn_idmap_get(&g->map, g->ids[node], &old) && !g->deleted[old]) knn_graph_tombstone(g, old);
        if ((s = knn_idmap_put(&g->map, g->ids[node], node, err)) != KNN_OK) goto done;
    }
    s = link_nodes(g, first, threads, err);
    knn_graph_drop_stale_buckets(g);
    knn_graph_labels_update(g, first);
    knn_attrs_order_refresh(&g->attrs);
    goto done;
rollback:
    knn_attrs_truncate(&g->attrs, first);
    while (g->count > first) {
        g->count--;
        free(g->upper[g->count]);
        g->upper[g->count] = NULL;
    }
done:
    knn_idmap_free(&last);
    return s;
}

knn_status knn_graph_add(knn_graph *g, const float *vecs, const int64_t *ids, const double *labels, size_t n,
                         size_t threads, knn_error *err) {
    return knn_graph_add_with_attrs(g, vecs, ids, labels, NULL, n, threads, err);
}

knn_status knn_graph_add_with_attrs(knn_graph *g, const float *vecs, const int64_t *ids, const double *labels,
                              const knn_attr_batch *attrs, size_t n, size_t threads, knn_error *err) {
    if (n == 0) return KNN_OK;
    pthread_rwlock_wrlock(&g->rw);
    knn_status s = knn_graph_add_locked(g, vecs, ids, labels, attrs, n, threads, err);
    pthread_rwlock_unlock(&g->rw);
    return s;
}

knn_status knn_graph_view_build(const knn_graph *src, uint32_t *nodes, size_t n, const knn_graph_params *p,
                                size_t threads, knn_graph **out, knn_error *err) {
    *out = NULL;
    knn_graph *g = NULL;
    knn_status s = knn_graph_alloc(src->dim, src->metric, p, &g, err);
    if (s != KNN_OK) {
        free(nodes);
        return s;
    }
    g->kern = src->kern;
    g->vec_src = src;
    g->vec_nodes = nodes;
    g->links_offset = 0; /* slots hold links only */
    g->slot_bytes = (1 + g->m0) * sizeof(uint32_t);
    if ((s = knn_graph_reserve(g, n ? n : 1, err)) != KNN_OK) goto fail;
    for (size_t i = 0; i < n; i++) {
        if ((s = init_node(g, (uint32_t)i, i, src->ids[nodes[i]], src->labels[nodes[i]], err)) != KNN_OK) goto fail;
        g->count++;
    }
    if ((s = link_nodes(g, 0, threads, err)) != KNN_OK) goto fail;
    *out = g;
    return KNN_OK;
fail:
    knn_graph_free(g);
    return s;
}

