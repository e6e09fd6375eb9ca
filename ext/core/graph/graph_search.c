/* Graph search: the greedy descent, the layer beam of HNSW (Malkov & Yashunin, Algorithm 2) with a row
 * selector deciding which nodes it may return, the plain k-NN query, and the exact many-query scan of
 * the graph's own rows (knn_predict's refine_ef). */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "graph/graph_internal.h"
#include "base/knn_parallel.h"
#include "base/knn_topk.h"

/* ---- layer search ------------------------------------------------------------------------------- */

void knn_graph_descend(const knn_graph *g, knn_search_ctx *c, const float *q, uint32_t *ep, float *epd) {
    uint32_t e = g->entry;
    float d;
    knn_graph_dists(g, c, q, &e, 1, &d);
    for (int lev = g->max_level; lev > 0; lev--) e = knn_graph_greedy(g, c, q, e, &d, lev, KNN_LOCK_NONE);
    *ep = e;
    *epd = d;
}

static inline int must_lock(int64_t lock_except, uint32_t id) { return lock_except != KNN_LOCK_NONE && id != lock_except; }

uint32_t knn_graph_greedy(const knn_graph *g, knn_search_ctx *c, const float *q, uint32_t cur, float *curd, int level,
                          int64_t lock_except) {
    uint32_t buf[257];
    float dist[257];
    for (int changed = 1; changed;) {
        changed = 0;
        int lk = must_lock(lock_except, cur);
        if (lk) knn_node_lock(g, cur);
        const uint32_t *l = knn_graph_links(g, cur, level);
        uint32_t n = l[0];
        memcpy(buf, l + 1, n * sizeof *buf);
        if (lk) knn_node_unlock(g, cur);
        knn_graph_dists(g, c, q, buf, n, dist);
        for (uint32_t j = 0; j < n; j++) {
            if (dist[j] < *curd) {
                *curd = dist[j];
                cur = buf[j];
                changed = 1;
            }
        }
    }
    return cur;
}

/* Beam search of width ef on one layer; leaves the best ef admitted nodes in c->top (max-heap by
 * distance). Adds the number of distances computed to *visits when visits is not NULL. */
int knn_graph_search_layer(const knn_graph *g, knn_search_ctx *c, const float *q, uint32_t ep, float epd, size_t ef,
                           int level, int64_t lock_except, const knn_selector *sel, size_t *ntop, size_t *visits) {
    size_t ncand = 0, spent = 0;
    *ntop = 0;
    uint32_t buf[513];
    float dist[513];
    knn_ctx_new_epoch(c);
    c->marks[ep] = c->epoch;
    if (!knn_heap_push(&c->cand, &ncand, &c->cand_cap, -epd, ep)) return 0;
    if (knn_selector_admits(sel, ep) && !knn_heap_push(&c->top, ntop, &c->top_cap, epd, ep)) return 0;
    float bound = *ntop ? epd : INFINITY;
    while (ncand) {
        knn_hitem best = c->cand[0];
        if (-best.key > bound && *ntop >= ef) break;
        knn_heap_pop(c->cand, &ncand);
        int lk = must_lock(lock_except, best.id);
        if (lk) knn_node_lock(g, best.id);
        const uint32_t *l = knn_graph_links(g, best.id, level);
        uint32_t n = l[0], fresh = 0;
        /* keep only unvisited neighbours, then score them in one batch */
        for (uint32_t j = 0; j < n; j++) {
            uint32_t e = l[1 + j];
            if (c->marks[e] == c->epoch) continue;
            c->marks[e] = c->epoch;
            buf[fresh++] = e;
        }
        if (lk) knn_node_unlock(g, best.id);
        knn_graph_dists(g, c, q, buf, fresh, dist);
        if (visits) *visits += fresh;
        spent += fresh;
        if (c->budget && spent > c->budget) {
            c->over = 1;
            break;
        }
        for (uint32_t j = 0; j < fresh; j++) {
            uint32_t e = buf[j];
            float d = dist[j];
            if (*ntop < ef || d < bound) {
                if (!knn_heap_push(&c->cand, &ncand, &c->cand_cap, -d, e)) return 0;
                if (!knn_selector_admits(sel, e)) continue;
                if (!knn_heap_push(&c->top, ntop, &c->top_cap, d, e)) return 0;
                if (*ntop > ef) knn_heap_pop(c->top, ntop);
                bound = c->top[0].key;
            }
        }
    }
    return 1;
}

int knn_hitem_cmp(const void *a, const void *b) {
    const knn_hitem *x = a, *y = b;
    if (x->key != y->key) return x->key < y->key ? -1 : 1;
    return (x->id > y->id) - (x->id < y->id);
}

/* Checks query number `index` (SIZE_MAX: the only one): finite, and non-zero under cosine, where its
 * unit-length copy goes to unit. */
static knn_status check_query(const knn_graph *g, const float *query, size_t index, float *unit, knn_error *err) {
    char which[32] = "query";
    if (index != SIZE_MAX) snprintf(which, sizeof which, "query %zu", index);
    float qn = 0;
    for (size_t j = 0; j < g->dim; j++) {
        if (!isfinite(query[j])) {
            return knn_error_set(err, KNN_EDATA, "%s has a NaN or Inf at position %zu; queries must be finite", which,
                                 j);
        }
        qn += query[j] * query[j];
    }
    if (g->metric == KNN_METRIC_COSINE) {
        if (qn == 0) {
            return knn_error_set(err, KNN_EDATA, "%s is the zero vector, which has no direction for metric 'cosine'",
                                 which);
        }
        float inv = 1.0f / sqrtf(qn);
        for (size_t j = 0; j < g->dim; j++) unit[j] = query[j] * inv;
    }
    return KNN_OK;
}

knn_status knn_graph_prepare_query(const knn_graph *g, knn_search_ctx *c, const float *query, const float **q,
                                   knn_error *err) {
    if (g->n_missing) {
        return knn_error_set(err, KNN_ESTATE, "the index was restored without its float rows and %zu live rows still "
                             "lack theirs; give them from the table it was built from (SQL: SELECT "
                             "knn_index_restore_vectors(name, id, vector) FROM that table; Python: "
                             "Index.restore_vectors(X, ids))", g->n_missing);
    }
    knn_status s = check_query(g, query, SIZE_MAX, c->qbuf, err);
    *q = g->metric == KNN_METRIC_COSINE ? c->qbuf : query;
    c->coded_q = NULL; /* the buffer may hold a new query at an old address */
    return s;
}

/* Exact scan of live nodes: used when the beam found fewer than k live rows (heavy deletion). */
static knn_status exact_live(const knn_graph *g, const float *q, size_t k, int64_t *out_ids, float *out_dists,
                             size_t *found, knn_error *err) {
    knn_topk t;
    knn_status s = knn_topk_init(&t, k, err);
    for (uint32_t i = 0; s == KNN_OK && i < g->count; i++) {
        if (g->deleted[i]) continue;
        s = knn_topk_offer(&t, knn_vdist(g, q, knn_graph_vec(g, i)), g->ids[i], err);
    }
    if (s == KNN_OK) knn_topk_export(&t, out_ids, out_dists, found);
    knn_topk_free(&t);
    return s;
}

knn_status knn_graph_query_begin(knn_graph *g, const float *query, knn_search_ctx **c, const float **q,
                                 knn_error *err) {
    *c = knn_graph_ctx_acquire(g);
    if (*c == NULL) return knn_error_set(err, KNN_ENOMEM, "out of memory for a search context");
    return knn_graph_prepare_query(g, *c, query, q, err);
}

knn_status knn_graph_plain_search(const knn_graph *g, knn_search_ctx *c, const float *q, size_t k, size_t ef,
                                  int64_t *out_ids, float *out_dists, size_t *found, knn_error *err) {
    size_t live = g->count - g->n_deleted;
    if (ef == 0) ef = knn_graph_default_ef(g);
    if (ef < k) ef = k;
    if (c->coded && c->rerank > ef) ef = c->rerank; /* the beam holds every row to re-rank */
    uint32_t ep;
    float epd;
    knn_graph_descend(g, c, q, &ep, &epd);
    size_t ntop;
    knn_selector live_only = knn_selector_all();
    knn_selector_live(&live_only, g->deleted, 1.0);
    if (!knn_graph_search_layer(g, c, q, ep, epd, ef, 0, KNN_LOCK_NONE, g->n_deleted ? &live_only : NULL, &ntop, NULL)) {
        return knn_error_set(err, KNN_ENOMEM, "out of memory during search");
    }
    size_t want = k < live ? k : live;
    if ((ntop = knn_graph_top_finish(g, c, q, ntop, want)) == SIZE_MAX) {
        return knn_error_set(err, KNN_ENOMEM, "out of memory during search");
    }
    if (ntop < want) return exact_live(g, q, k, out_ids, out_dists, found, err);
    for (size_t j = 0; j < want; j++) {
        out_ids[j] = g->ids[c->top[j].id];
        out_dists[j] = c->top[j].key;
    }
    *found = want;
    return KNN_OK;
}

knn_status knn_graph_search(knn_graph *g, const float *query, size_t k, size_t ef, int64_t *out_ids,
                            float *out_dists, size_t *found, knn_error *err) {
    return knn_graph_search_rerank(g, query, k, ef, 0, out_ids, out_dists, found, err);
}

knn_status knn_graph_search_rerank(knn_graph *g, const float *query, size_t k, size_t ef, size_t rerank,
                                   int64_t *out_ids, float *out_dists, size_t *found, knn_error *err) {
    *found = 0;
    if (k == 0) return knn_error_set(err, KNN_EINVAL, "k must be >= 1, got 0");
    knn_status s = KNN_OK;
    pthread_rwlock_rdlock(&g->rw);
    size_t live = g->count - g->n_deleted;
    knn_search_ctx *c = NULL;
    if (live == 0) goto done;
    const float *q;
    if ((s = knn_graph_query_begin(g, query, &c, &q, err)) != KNN_OK) goto done;
    c->rerank = rerank;
    s = knn_graph_plain_search(g, c, q, k, ef, out_ids, out_dists, found, err);
done:
    if (c) knn_graph_ctx_release(g, c);
    pthread_rwlock_unlock(&g->rw);
    return s;
}

/* ---- exact many-query scan ---------------------------------------------------------------------- */

/* Exact k nearest live rows of a batch of queries, for refining approximate answers (knn_predict's
 * refine_ef) without copying the rows out: blocks of EXACT_BLOCK slots (~200 KiB at d = 784) are scored
 * against every query while they sit in cache, threads take interleaved blocks, and their per-query
 * heaps merge afterwards. Heaps break ties by id, so results do not depend on the thread count. */
#define EXACT_BLOCK 64

typedef struct exact_job {
    const knn_graph *g;
    const float *qs; /* nq x dim, checked and (cosine) normalised */
    size_t nq, nthreads, nblocks;
    knn_topk *heaps; /* nthreads x nq */
    knn_error *errs;
} exact_job;

static void exact_task(void *arg, size_t t) {
    exact_job *job = arg;
    const knn_graph *g = job->g;
    uint32_t nodes[EXACT_BLOCK];
    float dist[EXACT_BLOCK];
    knn_topk *heaps = job->heaps + t * job->nq;
    for (size_t b = t; b < job->nblocks; b += job->nthreads) {
        size_t n = 0;
        for (size_t i = b * EXACT_BLOCK; i < g->count && i < (b + 1) * EXACT_BLOCK; i++) {
            if (!g->deleted[i]) nodes[n++] = (uint32_t)i;
        }
        for (size_t q = 0; q < job->nq && n; q++) {
            knn_vdists(g, job->qs + q * g->dim, nodes, n, dist);
            for (size_t j = 0; j < n; j++) {
                if (knn_topk_offer(&heaps[q], dist[j], g->ids[nodes[j]], &job->errs[t]) != KNN_OK) return;
            }
        }
    }
}

knn_status knn_graph_exact(knn_graph *g, const float *queries, size_t nq, size_t k, size_t threads,
                           int64_t *out_ids, float *out_dists, size_t *found, knn_error *err) {
    if (k == 0) return knn_error_set(err, KNN_EINVAL, "k must be >= 1, got 0");
    knn_status s = KNN_OK;
    pthread_rwlock_rdlock(&g->rw);
    const size_t d = g->dim;
    if (g->n_missing) {
        s = knn_error_set(err, KNN_ESTATE, "the index was restored without its float rows (%zu live rows lack them); "
                          "give them first (knn_index_restore_vectors)", g->n_missing);
        pthread_rwlock_unlock(&g->rw);
        return s;
    }
    size_t nblocks = (g->count + EXACT_BLOCK - 1) / EXACT_BLOCK;
    size_t nt = threads ? threads : knn_cpu_count();
    if (nt > nblocks) nt = nblocks ? nblocks : 1;
    float *qs = malloc((nq ? nq : 1) * d * sizeof *qs);
    knn_topk *heaps = calloc(nt * (nq ? nq : 1), sizeof *heaps);
    knn_error *errs = calloc(nt, sizeof *errs);
    if (!qs || !heaps || !errs) {
        s = knn_error_set(err, KNN_ENOMEM, "out of memory for an exact scan of %zu queries", nq);
        goto done;
    }
    for (size_t q = 0; q < nq; q++) {
        if ((s = check_query(g, queries + q * d, q, qs + q * d, err)) != KNN_OK) goto done;
        if (g->metric != KNN_METRIC_COSINE) memcpy(qs + q * d, queries + q * d, d * sizeof *qs);
    }
    for (size_t i = 0; i < nt * nq; i++) {
        if ((s = knn_topk_init(&heaps[i], k, err)) != KNN_OK) goto done;
    }
    exact_job job = {g, qs, nq, nt, nblocks, heaps, errs};
    knn_parallel_run(nt, exact_task, &job);
    for (size_t t = 0; t < nt; t++) {
        if (errs[t].status != KNN_OK) {
            *err = errs[t];
            s = err->status;
            goto done;
        }
    }
    for (size_t q = 0; q < nq; q++) {
        knn_topk *h = &heaps[q];
        for (size_t t = 1; t < nt; t++) {
            if ((s = knn_topk_merge(h, &heaps[t * nq + q], err)) != KNN_OK) goto done;
        }
        knn_topk_sort(h);
        for (size_t j = 0; j < k; j++) {
            out_ids[q * k + j] = j < h->size ? h->heap[j].id : -1;
            out_dists[q * k + j] = j < h->size ? h->heap[j].dist : INFINITY;
        }
        found[q] = h->size;
    }
done:
    if (heaps) {
        for (size_t i = 0; i < nt * nq; i++) knn_topk_free(&heaps[i]);
    }
    free(heaps);
    free(errs);
    free(qs);
    pthread_rwlock_unlock(&g->rw);
    return s;
}
float knn_graph_node_dist(const knn_graph *g, const float *q, uint32_t i) { return knn_vdist(g, q, knn_graph_vec(g, i)); }

