#include "index/knn_registry.h"
#include "window/knn_window.h"
#include "filter/knn_filter.h"

#include "exact/knn_flat.h"
#include "graph/graph_internal.h"

#include <pthread.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct knn_registry {
    pthread_mutex_t mu;
    knn_entry **items;
    size_t n, cap;
    _Atomic long refs;
    _Atomic size_t default_memory_limit;
    char vectors_dir[KNN_DIR_MAX + 1]; /* set once at load, before the registry is shared */
};

knn_registry *knn_registry_new(void) {
    knn_registry *r = calloc(1, sizeof *r);
    if (r == NULL) return NULL;
    pthread_mutex_init(&r->mu, NULL);
    atomic_init(&r->refs, 1);
    return r;
}

void knn_registry_set_default_memory_limit(knn_registry *r, size_t bytes) {
    atomic_store(&r->default_memory_limit, bytes);
}

size_t knn_registry_default_memory_limit(knn_registry *r) { return atomic_load(&r->default_memory_limit); }

void knn_registry_set_vectors_dir(knn_registry *r, const char *dir) {
    size_t len = dir ? strlen(dir) : 0;
    if (len > KNN_DIR_MAX) len = 0; /* too long to be a usable default: the working directory */
    memcpy(r->vectors_dir, dir ? dir : "", len);
    r->vectors_dir[len] = '\0';
}

const char *knn_registry_vectors_dir(knn_registry *r) { return r->vectors_dir; }

void knn_registry_retain(knn_registry *r) { atomic_fetch_add(&r->refs, 1); }

void knn_registry_release(knn_registry *r) {
    if (r == NULL || atomic_fetch_sub(&r->refs, 1) != 1) return;
    for (size_t i = 0; i < r->n; i++) knn_entry_release(r->items[i]);
    free(r->items);
    pthread_mutex_destroy(&r->mu);
    free(r);
}

void knn_entry_release(knn_entry *e) {
    if (e == NULL || atomic_fetch_sub(&e->refs, 1) != 1) return;
    knn_flat_destroy(e->flat);
    knn_graph_free(e->graph);
    free(e);
}

knn_status knn_name_check(const char *name, size_t len, knn_error *err) {
    if (name == NULL || len == 0) return knn_error_set(err, KNN_EINVAL, "index name must not be empty");
    if (len > KNN_NAME_MAX) {
        return knn_error_set(err, KNN_EINVAL, "index name is %zu bytes; the limit is %d", len, KNN_NAME_MAX);
    }
    return KNN_OK;
}

/* Position of name, or -1. Caller holds mu. */
static long find(const knn_registry *r, const char *name, size_t len) {
    for (size_t i = 0; i < r->n; i++) {
        if (strlen(r->items[i]->name) == len && memcmp(r->items[i]->name, name, len) == 0) return (long)i;
    }
    return -1;
}

static knn_status insert(knn_registry *r, knn_entry *e, knn_error *err) {
    knn_status s = KNN_OK;
    pthread_mutex_lock(&r->mu);
    if (find(r, e->name, strlen(e->name)) >= 0) {
        s = knn_error_set(err, KNN_EINVAL, "index '%s' already exists; drop it first with knn_index_drop('%s')",
                          e->name, e->name);
    } else if (r->n == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 8;
        knn_entry **items = realloc(r->items, cap * sizeof *items);
        if (items == NULL) {
            s = knn_error_set(err, KNN_ENOMEM, "out of memory registering index '%s'", e->name);
        } else {
            r->items = items;
            r->cap = cap;
        }
    }
    if (s == KNN_OK) r->items[r->n++] = e;
    pthread_mutex_unlock(&r->mu);
    return s;
}

static knn_entry *entry_new(const char *name, size_t len, knn_error *err) {
    if (knn_name_check(name, len, err) != KNN_OK) return NULL;
    knn_entry *e = calloc(1, sizeof *e);
    if (e == NULL) {
        knn_error_set(err, KNN_ENOMEM, "out of memory creating an index");
        return NULL;
    }
    memcpy(e->name, name, len);
    e->name[len] = '\0';
    atomic_init(&e->refs, 1);
    atomic_init(&e->last_optimize, 0.0);
    atomic_init(&e->label_kind, 0u);
    atomic_init(&e->memory_limit, (size_t)0);
    atomic_init(&e->recall, (double)NAN);
    atomic_init(&e->recall_k, (size_t)0);
    atomic_init(&e->recall_ef, (size_t)0);
    atomic_init(&e->recall_rows, (size_t)0);
    return e;
}

knn_status knn_registry_create(knn_registry *r, const char *name, size_t len, knn_kind kind, size_t dim,
                               knn_metric metric, const knn_graph_params *params, knn_error *err) {
    knn_entry *e = entry_new(name, len, err);
    if (e) atomic_store(&e->memory_limit, atomic_load(&r->default_memory_limit));
    if (e == NULL) return err->status;
    e->kind = kind;
    e->dim = dim;
    e->metric = metric;
    knn_status s;
    if (kind == KNN_KIND_GRAPH) {
        s = knn_graph_create(dim, metric, params, &e->graph, err);
    } else {
        s = (knn_status)knn_flat_new(dim, knn_metric_name(metric), &e->flat, err->msg, sizeof err->msg);
        err->status = s;
    }
    if (s == KNN_OK) s = insert(r, e, err);
    if (s != KNN_OK) knn_entry_release(e);
    return s;
}

knn_status knn_registry_adopt(knn_registry *r, const char *name, size_t len, knn_graph *graph, knn_error *err) {
    knn_entry *e = entry_new(name, len, err);
    if (e) atomic_store(&e->memory_limit, atomic_load(&r->default_memory_limit));
    if (e == NULL) {
        knn_graph_free(graph);
        return err->status;
    }
    knn_window_prepare(graph); /* calibration and buckets are not saved: measured here */
    e->kind = KNN_KIND_GRAPH;
    e->graph = graph;
    e->dim = knn_graph_dim(graph);
    e->metric = knn_graph_metric(graph);
    atomic_store(&e->label_kind, knn_graph_label_tag(graph));
    knn_status s = insert(r, e, err);
    if (s != KNN_OK) knn_entry_release(e);
    return s;
}

knn_entry *knn_registry_get(knn_registry *r, const char *name, size_t len, knn_error *err) {
    knn_entry *e = NULL;
    pthread_mutex_lock(&r->mu);
    long i = find(r, name, len);
    if (i >= 0) {
        e = r->items[i];
        atomic_fetch_add(&e->refs, 1);
    }
    pthread_mutex_unlock(&r->mu);
    if (e == NULL) {
        int shown = len > 64 ? 64 : (int)len;
        knn_error_set(err, KNN_EINVAL, "unknown index '%.*s'; create it with knn_index_create('%.*s', dim := ...) "
                      "or list indexes with knn_indexes()", shown, name, shown, name);
    }
    return e;
}

int knn_registry_drop(knn_registry *r, const char *name, size_t len) {
    knn_entry *e = NULL;
    pthread_mutex_lock(&r->mu);
    long i = find(r, name, len);
    if (i >= 0) {
        e = r->items[i];
        r->items[i] = r->items[--r->n];
    }
    pthread_mutex_unlock(&r->mu);
    knn_entry_release(e);
    return e != NULL;
}

static int cmp_entries(const void *a, const void *b) {
    return strcmp((*(knn_entry *const *)a)->name, (*(knn_entry *const *)b)->name);
}

size_t knn_registry_list(knn_registry *r, knn_entry ***out) {
    pthread_mutex_lock(&r->mu);
    size_t n = r->n;
    knn_entry **items = malloc((n ? n : 1) * sizeof *items);
    if (items == NULL) n = 0;
    for (size_t i = 0; i < n; i++) {
        items[i] = r->items[i];
        atomic_fetch_add(&items[i]->refs, 1);
    }
    pthread_mutex_unlock(&r->mu);
    if (items) qsort(items, n, sizeof *items, cmp_entries);
    *out = items;
    return n;
}

/* ---- operations --------------------------------------------------------------------------------- */

static knn_status from_public(int status, knn_error *err) {
    err->status = (knn_status)status;
    return err->status;
}

knn_status knn_entry_add(knn_entry *e, const float *vecs, const int64_t *ids, const double *labels, size_t n,
                         knn_error *err) {
    return knn_entry_add_attrs(e, vecs, ids, labels, NULL, n, err);
}

knn_status knn_entry_add_attrs(knn_entry *e, const float *vecs, const int64_t *ids, const double *labels,
                               const knn_attr_batch *attrs, size_t n, knn_error *err) {
    if (e->kind != KNN_KIND_GRAPH && attrs && attrs->ncols) {
        return knn_error_set(err, KNN_EINVAL, "index '%s' is flat; attribute columns need a graph index (create it "
                             "with kind := 'graph'), or filter a flat index in SQL with knn_exact(...) over a WHERE",
                             e->name);
    }
    if (e->kind == KNN_KIND_GRAPH) {
        knn_status s = knn_graph_add_with_attrs(e->graph, vecs, ids, labels, attrs, n, 0, err);
        if (s == KNN_OK) knn_window_prepare(e->graph);
        return s;
    }
    return from_public(knn_flat_add_labeled(e->flat, vecs, ids, labels, n, err->msg, sizeof err->msg), err);
}

knn_status knn_entry_delete(knn_entry *e, const int64_t *ids, size_t n, size_t *removed, knn_error *err) {
    if (e->kind == KNN_KIND_GRAPH) return knn_graph_delete(e->graph, ids, n, removed, err);
    return from_public(knn_flat_remove(e->flat, ids, n, removed, err->msg, sizeof err->msg), err);
}

knn_status knn_entry_optimize(knn_entry *e, knn_error *err) {
    knn_status s = KNN_OK;
    if (e->kind == KNN_KIND_GRAPH) s = knn_graph_optimize(e->graph, 0, err);
    if (e->kind == KNN_KIND_GRAPH && s == KNN_OK) knn_window_prepare(e->graph); /* node numbers changed */
    if (s == KNN_OK) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        atomic_store(&e->last_optimize, (double)ts.tv_sec + ts.tv_nsec * 1e-9);
    }
    return s;
}

knn_status knn_entry_search(knn_entry *e, const float *q, size_t k, size_t ef, size_t rerank, int64_t *ids,
                            float *dists, size_t *found, knn_error *err) {
    if (e->kind == KNN_KIND_GRAPH) return knn_graph_search_rerank(e->graph, q, k, ef, rerank, ids, dists, found, err);
    return from_public(knn_flat_search(e->flat, q, 1, k, 1, ids, dists, found, err->msg, sizeof err->msg), err);
}

knn_status knn_entry_search_flat_batch(knn_entry *e, const float *Q, size_t nq, size_t k, int64_t *ids, float *dists,
                                       size_t *found, knn_error *err) {
    if (e->kind != KNN_KIND_FLAT) return knn_error_set(err, KNN_EINVAL, "a batched exact search needs a flat index");
    return from_public(knn_flat_search(e->flat, Q, nq, k, 0, ids, dists, found, err->msg, sizeof err->msg), err);
}

knn_status knn_entry_search_window(knn_entry *e, const float *q, size_t k, size_t ef, size_t rerank, double lo,
                                   double hi, int64_t *ids, float *dists, size_t *found, knn_error *err) {
    if (e->kind == KNN_KIND_GRAPH) {
        return knn_graph_search_window_rerank(e->graph, q, k, ef, rerank, lo, hi, ids, dists, found, NULL, err);
    }
    size_t kk = 0;
    knn_status s = from_public(knn_flat_search_window(e->flat, q, 1, k, 1, 1, lo, hi, ids, dists, &kk, found,
                                                      err->msg, sizeof err->msg), err);
    return s;
}

knn_status knn_entry_search_filter(knn_entry *e, const float *queries, size_t nq, size_t k, size_t ef, size_t rerank,
                                   const knn_predicate *pred, int windowed, double lo, double hi, size_t threads,
                                   int64_t *ids, float *dists, size_t *found, int *plans, knn_error *err) {
    if (e->kind != KNN_KIND_GRAPH) {
        return knn_error_set(err, KNN_EINVAL, "index '%s' is flat; filter := needs a graph index with attribute "
                             "columns (kind := 'graph'), or filter in SQL with knn_exact(...) over a WHERE", e->name);
    }
    return knn_graph_search_filter(e->graph, queries, nq, k, ef, rerank, pred, windowed, lo, hi, threads, ids, dists,
                                   found, plans, NULL, err);
}

size_t knn_entry_count(const knn_entry *e) {
    return e->kind == KNN_KIND_GRAPH ? knn_graph_live(e->graph) : knn_flat_count(e->flat);
}

unsigned knn_entry_claim_label_kind(knn_entry *e, unsigned kind) {
    unsigned expected = 0;
    if (atomic_compare_exchange_strong(&e->label_kind, &expected, kind)) {
        if (e->kind == KNN_KIND_GRAPH) knn_graph_set_label_tag(e->graph, kind);
        return kind;
    }
    return expected;
}

int knn_entry_label_range(knn_entry *e, double *lo, double *hi) {
    if (e->kind == KNN_KIND_GRAPH) return knn_graph_label_range(e->graph, lo, hi);
    return knn_flat_label_range(e->flat, lo, hi);
}

size_t knn_entry_deleted(const knn_entry *e) { return e->kind == KNN_KIND_GRAPH ? knn_graph_deleted(e->graph) : 0; }

size_t knn_entry_memory(const knn_entry *e) {
    return e->kind == KNN_KIND_GRAPH ? knn_graph_memory(e->graph) : knn_flat_bytes(e->flat);
}

size_t knn_entry_disk_bytes(const knn_entry *e) {
    return e->kind == KNN_KIND_GRAPH ? knn_graph_disk_bytes(e->graph) : knn_flat_disk_bytes(e->flat);
}

const char *knn_entry_quantization(const knn_entry *e) {
    if (e->kind == KNN_KIND_GRAPH) return knn_graph_quantization(e->graph);
    return strcmp(knn_flat_storage(e->flat), "sq8") == 0 ? "sq8" : "none";
}

double knn_entry_bytes_after(knn_entry *e, size_t rows, int labelled) {
    double vec = (double)e->dim * sizeof(float);
    double buffered = vec + 2 * sizeof(int64_t); /* the insert's copy: vector, id, label */
    double idmap = 48;                          /* id map: 12-byte slots, up to 4 per row after it doubles */
    double have = (double)knn_entry_memory(e);
    if (e->kind == KNN_KIND_GRAPH) {
        knn_graph *g = e->graph;
        pthread_rwlock_rdlock(&g->rw);
        size_t count = g->count, cap = g->capacity, m = g->p.m, slot = g->slot_bytes;
        size_t coded = g->qbits ? g->code_stride : 0; /* a coded graph's codes; its float rows are in files */
        pthread_rwlock_unlock(&g->rw);
        size_t need = count + rows, grown = cap;
        if (need > cap) { /* as knn_graph_reserve */
            grown = cap + cap / 2;
            if (grown < need) grown = need;
            if (grown < 64) grown = 64;
        }
        double per_slot = (double)slot + (double)coded + sizeof(uint32_t *) + 1 + sizeof(int64_t) + 1 + 1 +
                          sizeof(double);
        /* a node has upper levels with probability 1/(m-1) on average, each of m+1 words */
        double upper = m > 1 ? (double)(m + 1) * sizeof(uint32_t) / (double)(m - 1) : 0;
        /* the label-sorted copy with its 8-bit codes and their errors; bucket graphs, at most as many levels
         * as fit their links in the graph's own slot bytes */
        size_t levels = slot / ((2 * KNN_BUCKET_M + 1) * sizeof(uint32_t));
        if (levels > KNN_BUCKET_LEVELS) levels = KNN_BUCKET_LEVELS;
        double window = labelled ? (coded ? 0 : vec) + 2 * sizeof(double) + 2 * sizeof(uint32_t) + sizeof(int64_t) +
                                       (double)e->dim + sizeof(float) + sizeof(uint32_t) +
                                       (double)levels * KNN_BUCKET_ROW_BYTES
                                 : 0;
        return have + (double)(grown - cap) * per_slot + (double)rows * (upper + idmap + window + buffered);
    }
    size_t count = knn_flat_count(e->flat), cap = knn_flat_capacity(e->flat), need = count + rows, grown = cap;
    if (need > cap) { /* as the flat index grows: doubling from 1024 */
        grown = cap ? cap : 1024;
        while (grown < need) grown *= 2;
    }
    /* an 'sq8' flat index keeps codes and their errors on the heap, its floats in a file */
    double row_vec = strcmp(knn_flat_storage(e->flat), "sq8") == 0 ? (double)(e->dim + 1) + sizeof(float) : vec;
    double per_slot = row_vec + sizeof(float) + sizeof(int64_t) + sizeof(double);
    return have + (double)(grown - cap) * per_slot + (double)rows * (idmap + buffered);
}

knn_status knn_entry_ids(knn_entry *e, int64_t **out, size_t *n, knn_error *err) {
    /* The count may change between sizing and copying under concurrent writes: size generously and
     * let the index copy what it has under its own lock. */
    size_t cap = knn_entry_count(e) + 1024;
    int64_t *ids = malloc(cap * sizeof *ids);
    if (ids == NULL) return knn_error_set(err, KNN_ENOMEM, "out of memory listing %zu ids", cap);
    if (e->kind == KNN_KIND_GRAPH) {
        *n = knn_graph_ids(e->graph, ids, cap);
    } else {
        *n = knn_flat_ids_bounded(e->flat, ids, cap);
    }
    *out = ids;
    return KNN_OK;
}

const char *knn_kind_name(knn_kind kind) { return kind == KNN_KIND_GRAPH ? "graph" : "flat"; }
