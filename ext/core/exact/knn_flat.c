/* Flat (exact) index; design notes in exact/knn_flat.h.
 *
 * 8-bit storage (knn_flat_set_storage(ix, "sq8", dir)): the rows' 8-bit codes (quant/knn_codes.h, ranges
 * trained on the first batch) stay on the heap, the float rows move to an unlinked file mapped from dir
 * (base/knn_mapped.h), and a search reads codes first: exact/knn_screened.h's provable bound skips every
 * float row that cannot enter the top k, so results are the float scan's, ties included, while the heap
 * holds about a quarter of the bytes. */
#include "exact/knn_flat.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/knn_kernels.h"
#include "base/knn_error.h"
#include "base/knn_idmap.h"
#include "base/knn_metric.h"
#include "base/knn_parallel.h"
#include "exact/knn_scan.h"
#include "base/knn_mapped.h"
#include "quant/knn_codes.h"
#include "exact/knn_screened.h"

/* Below this many floats per thread a search runs on one thread (thread start-up would dominate). */
#define MIN_FLOATS_PER_THREAD (1u << 18)
/* From this many queries per thread, threads split the queries; below it, they split the rows. */
#define MIN_QUERIES_PER_THREAD 8

struct knn_flat {
    size_t dim;
    knn_metric metric;
    /* Under cosine, rows are stored unit-length and searched by inner product (1 + (-dot) = cosine
     * distance), which spares a square root and a division per row. */
    knn_metric scan_metric;
    const knn_kernels *kern;
    float *vecs;    /* cap x dim, 64-byte aligned */
    float *norm2;   /* squared norm of each row */
    int64_t *ids;
    double *labels; /* NaN: no label */
    size_t count;
    size_t cap;
    knn_idmap slots; /* id -> row */
    int coded;          /* 8-bit storage: codes on the heap, vecs in `mapped` */
    knn_codes codes;    /* trained on the first batch (codes.lo NULL before) */
    knn_mapped mapped;
    char *vectors_dir;
    pthread_rwlock_t rw; /* searches share it; add and remove take it exclusively */
};


int knn_flat_new(size_t dim, const char *metric, knn_flat **out, char *errmsg, size_t errmsg_len) {
    knn_error err;
    knn_error_clear(&err);
    knn_metric m;
    *out = NULL;
    if (dim == 0 || dim > 65536) {
        knn_error_set(&err, KNN_EINVAL, "dim must be between 1 and 65536, got %zu", dim);
        return knn_error_export(&err, errmsg, errmsg_len);
    }
    if (knn_metric_parse(metric, metric ? strlen(metric) : 0, &m, &err) != KNN_OK) {
        return knn_error_export(&err, errmsg, errmsg_len);
    }
    knn_flat *ix = calloc(1, sizeof *ix);
    if (ix == NULL) {
        knn_error_set(&err, KNN_ENOMEM, "out of memory creating a flat index");
        return knn_error_export(&err, errmsg, errmsg_len);
    }
    ix->dim = dim;
    ix->metric = m;
    ix->scan_metric = m == KNN_METRIC_COSINE ? KNN_METRIC_IP : m;
    ix->kern = knn_kernels_best();
    ix->mapped = knn_mapped_none();
    pthread_rwlock_init(&ix->rw, NULL);
    *out = ix;
    return KNN_OK;
}

void knn_flat_destroy(knn_flat *ix) {
    if (ix == NULL) return;
    if (ix->coded) {
        knn_mapped_free(&ix->mapped);
        knn_codes_free(&ix->codes);
        free(ix->vectors_dir);
    } else {
        free(ix->vecs);
    }
    free(ix->norm2);
    free(ix->ids);
    free(ix->labels);
    knn_idmap_free(&ix->slots);
    pthread_rwlock_destroy(&ix->rw);
    free(ix);
}

int knn_flat_remove(knn_flat *ix, const int64_t *ids, size_t n, size_t *removed, char *errmsg, size_t errmsg_len) {
    size_t r = 0;
    pthread_rwlock_wrlock(&ix->rw);
    for (size_t i = 0; i < n; i++) {
        uint32_t slot;
        if (!knn_idmap_get(&ix->slots, ids[i], &slot)) continue;
        knn_idmap_del(&ix->slots, ids[i]);
        size_t last = ix->count - 1;
        if (slot != last) { /* move the last row into the hole */
            memcpy(ix->vecs + (size_t)slot * ix->dim, ix->vecs + last * ix->dim, ix->dim * sizeof(float));
            ix->norm2[slot] = ix->norm2[last];
            ix->ids[slot] = ix->ids[last];
            ix->labels[slot] = ix->labels[last];
            if (ix->coded) knn_codes_copy_row(&ix->codes, slot, last);
            knn_idmap_put(&ix->slots, ix->ids[slot], slot, NULL); /* replaces in place: no allocation */
        }
        ix->count--;
        r++;
    }
    pthread_rwlock_unlock(&ix->rw);
    if (removed) *removed = r;
    if (errmsg && errmsg_len) errmsg[0] = '\0';
    return KNN_OK;
}

size_t knn_flat_ids_bounded(knn_flat *ix, int64_t *out, size_t cap) {
    pthread_rwlock_rdlock(&ix->rw);
    size_t n = ix->count < cap ? ix->count : cap;
    if (n) memcpy(out, ix->ids, n * sizeof *out); /* ids is NULL before the first add */
    pthread_rwlock_unlock(&ix->rw);
    return n;
}

void knn_flat_list_ids(const knn_flat *ix, int64_t *out) { knn_flat_ids_bounded((knn_flat *)ix, out, ix->count); }

int knn_flat_label_range(knn_flat *ix, double *lo, double *hi) {
    int any = 0;
    double a = INFINITY, b = -INFINITY;
    pthread_rwlock_rdlock(&ix->rw);
    for (size_t i = 0; i < ix->count; i++) {
        double l = ix->labels[i];
        if (isnan(l)) continue;
        any = 1;
        if (l < a) a = l;
        if (l > b) b = l;
    }
    pthread_rwlock_unlock(&ix->rw);
    *lo = a;
    *hi = b;
    return any;
}

size_t knn_flat_bytes(const knn_flat *ix) {
    size_t vec_bytes = ix->coded ? 0 : ix->cap * ix->dim * sizeof(float);
    return sizeof *ix + vec_bytes + ix->cap * (sizeof(float) + sizeof(int64_t) + sizeof(double)) +
           ix->slots.cap * (sizeof(int64_t) + sizeof(uint32_t)) + (ix->coded ? knn_codes_bytes(&ix->codes) : 0);
}

size_t knn_flat_disk_bytes(const knn_flat *ix) { return ix->coded ? ix->mapped.bytes : 0; }

const char *knn_flat_storage(const knn_flat *ix) { return ix->coded ? "sq8" : "f32"; }

int knn_flat_set_storage(knn_flat *ix, const char *quantization, const char *vectors_dir, char *errmsg,
                         size_t errmsg_len) {
    knn_error err;
    knn_error_clear(&err);
    int coded = 0;
    if (quantization == NULL || strcmp(quantization, "none") == 0 || strcmp(quantization, "f32") == 0) {
        coded = 0;
    } else if (strcmp(quantization, "sq8") == 0) {
        coded = 1;
    } else {
        knn_error_set(&err, KNN_EINVAL, "quantization '%.40s' is not known for a flat index; use 'sq8' (8-bit codes in "
                      "memory, float rows in a file, exact results) or 'none'", quantization);
        return knn_error_export(&err, errmsg, errmsg_len);
    }
    pthread_rwlock_wrlock(&ix->rw);
    if (ix->count || ix->cap) {
        knn_error_set(&err, KNN_ESTATE, "the storage of a flat index is chosen before its first rows are added");
    } else if (coded && ix->metric == KNN_METRIC_IP) {
        knn_error_set(&err, KNN_EINVAL, "quantization 'sq8' bounds Euclidean distances, so it serves metric 'l2' or "
                      "'cosine', not 'ip'; use one of those (cosine on normalised rows ranks as ip does) or 'none'");
    } else if (coded) {
        const char *dir = vectors_dir && vectors_dir[0] ? vectors_dir : ".";
        ix->vectors_dir = malloc(strlen(dir) + 1);
        if (!ix->vectors_dir) {
            knn_error_set(&err, KNN_ENOMEM, "out of memory");
        } else {
            memcpy(ix->vectors_dir, dir, strlen(dir) + 1);
            ix->coded = 1;
        }
    }
    pthread_rwlock_unlock(&ix->rw);
    return knn_error_export(&err, errmsg, errmsg_len);
}

size_t knn_flat_capacity(const knn_flat *ix) { return ix->cap; }

size_t knn_flat_count(const knn_flat *ix) { return ix->count; }
size_t knn_flat_dim(const knn_flat *ix) { return ix->dim; }
const char *knn_flat_metric(const knn_flat *ix) { return knn_metric_name(ix->metric); }
const char *knn_flat_simd(const knn_flat *ix) { return ix->kern->name; }

static knn_status reserve(knn_flat *ix, size_t need, knn_error *err) {
    if (need <= ix->cap) return KNN_OK;
    if (need >= KNN_IDMAP_EMPTY) {
        return knn_error_set(err, KNN_EINVAL, "a flat index holds at most %u rows", KNN_IDMAP_EMPTY - 1u);
    }
    size_t cap = ix->cap ? ix->cap : 1024;
    while (cap < need) cap *= 2;
    size_t bytes = (cap * ix->dim * sizeof(float) + 63) / 64 * 64;
    if (ix->coded) { /* the mapping keeps its rows as it grows; the codes grow beside it */
        if (knn_mapped_grow(&ix->mapped, ix->vectors_dir, bytes, err) != KNN_OK) return err->status;
        ix->vecs = ix->mapped.p; /* it may have moved */
        if (ix->codes.lo && knn_codes_reserve(&ix->codes, cap) != 0) {
            return knn_error_set(err, KNN_ENOMEM, "out of memory growing a flat index's codes to %zu rows", cap);
        }
    }
    float *vecs = ix->coded ? NULL : aligned_alloc(64, bytes);
    float *norm2 = malloc(cap * sizeof *norm2);
    int64_t *ids = malloc(cap * sizeof *ids);
    double *labels = malloc(cap * sizeof *labels);
    if ((vecs == NULL && !ix->coded) || norm2 == NULL || ids == NULL || labels == NULL) {
        free(vecs);
        free(norm2);
        free(ids);
        free(labels);
        return knn_error_set(err, KNN_ENOMEM, "out of memory growing a flat index to %zu rows", cap);
    }
    if (ix->coded) vecs = ix->mapped.p;
    if (ix->count) {
        if (!ix->coded) memcpy(vecs, ix->vecs, ix->count * ix->dim * sizeof(float));
        memcpy(norm2, ix->norm2, ix->count * sizeof *norm2);
        memcpy(ids, ix->ids, ix->count * sizeof *ids);
        memcpy(labels, ix->labels, ix->count * sizeof *labels);
    }
    if (!ix->coded) free(ix->vecs);
    free(ix->norm2);
    free(ix->ids);
    free(ix->labels);
    ix->vecs = vecs;
    ix->norm2 = norm2;
    ix->ids = ids;
    ix->labels = labels;
    ix->cap = cap;
    return KNN_OK;
}

/* Trains the code ranges on up to TRAIN_ROWS rows of the first batch, spread evenly, as they will be
 * stored (unit-length under cosine), and makes room for the index's capacity; nothing changes on failure. */
#define TRAIN_ROWS 16384
static knn_status train_codes(knn_flat *ix, const float *vecs, const float *norms, size_t n, knn_error *err) {
    const size_t d = ix->dim, m = n < TRAIN_ROWS ? n : TRAIN_ROWS;
    float *sample = malloc(m * d * sizeof *sample);
    if (!sample) return knn_error_set(err, KNN_ENOMEM, "out of memory training the codes of a flat index");
    for (size_t r = 0; r < m; r++) {
        size_t i = r * n / m;
        float inv = ix->metric == KNN_METRIC_COSINE ? 1.0f / sqrtf(norms[i]) : 1.0f;
        for (size_t j = 0; j < d; j++) sample[r * d + j] = vecs[i * d + j] * inv;
    }
    int bad = knn_codes_train(&ix->codes, sample, m, d) != 0 || knn_codes_reserve(&ix->codes, ix->cap) != 0;
    free(sample);
    if (bad) {
        knn_codes_free(&ix->codes);
        return knn_error_set(err, KNN_ENOMEM, "out of memory for the codes of a flat index (dim %zu)", d);
    }
    return KNN_OK;
}

int knn_flat_add(knn_flat *ix, const float *vecs, const int64_t *ids, size_t n, char *errmsg, size_t errmsg_len) {
    return knn_flat_add_labeled(ix, vecs, ids, NULL, n, errmsg, errmsg_len);
}

int knn_flat_add_labeled(knn_flat *ix, const float *vecs, const int64_t *ids, const double *labels, size_t n,
                         char *errmsg, size_t errmsg_len) {
    knn_error err;
    knn_error_clear(&err);
    float *norms = NULL;
    int locked = 0;
    const size_t d = ix->dim;
    if (n == 0) return KNN_OK;
    norms = malloc(n * sizeof *norms);
    if (norms == NULL) {
        knn_error_set(&err, KNN_ENOMEM, "out of memory adding %zu rows", n);
        goto cleanup;
    }
    /* Validate everything before changing anything: a NaN/Inf row makes its squared norm non-finite. */
    for (size_t i = 0; i < n; i++) {
        float dot;
        ix->kern->dot_norm_rows(vecs + i * d, vecs + i * d, 1, d, &dot, &norms[i]);
        if (ix->coded && ix->metric == KNN_METRIC_COSINE && !(norms[i] > 0)) {
            knn_error_set(&err, KNN_EDATA, "vector with id %lld (row %zu of this batch) is the zero vector, which has "
                          "no direction for metric 'cosine' in an 'sq8' flat index; nothing was added",
                          (long long)ids[i], i);
            goto cleanup;
        }
        if (!isfinite(norms[i])) {
            knn_error_set(&err, KNN_EDATA,
                          "vector with id %lld (row %zu of this batch) has a NaN or Inf component, or values too "
                          "large for float32 distances; nothing was added",
                          (long long)ids[i], i);
            goto cleanup;
        }
    }
    pthread_rwlock_wrlock(&ix->rw);
    locked = 1;
    if (reserve(ix, ix->count + n, &err) != KNN_OK) goto cleanup;
    if (ix->coded && !ix->codes.lo && train_codes(ix, vecs, norms, n, &err) != KNN_OK) goto cleanup;
    for (size_t i = 0; i < n; i++) {
        uint32_t slot;
        if (!knn_idmap_get(&ix->slots, ids[i], &slot)) {
            slot = (uint32_t)ix->count;
            if (knn_idmap_put(&ix->slots, ids[i], slot, &err) != KNN_OK) goto cleanup;
            ix->ids[slot] = ids[i];
            ix->count++;
        }
        ix->labels[slot] = labels ? labels[i] : NAN;
        float *dst = ix->vecs + (size_t)slot * d;
        if (ix->metric == KNN_METRIC_COSINE) {
            /* zero rows stay zero: their dot is 0, their cosine distance 1 */
            float inv = norms[i] > 0 ? 1.0f / sqrtf(norms[i]) : 0.0f;
            for (size_t j = 0; j < d; j++) dst[j] = vecs[i * d + j] * inv;
            ix->norm2[slot] = norms[i] > 0 ? 1.0f : 0.0f;
        } else {
            memcpy(dst, vecs + i * d, d * sizeof(float));
            ix->norm2[slot] = norms[i];
        }
        if (ix->coded && ix->codes.lo) knn_codes_put(&ix->codes, slot, dst);
    }
cleanup:
    if (locked) pthread_rwlock_unlock(&ix->rw);
    free(norms);
    return knn_error_export(&err, errmsg, errmsg_len);
}

/* One thread's share of a search: queries [q_lo, q_hi) against rows [r_lo, r_hi). */
typedef struct search_task {
    const knn_flat *ix;
    const float *queries;
    const float *q_norm2;
    size_t q_lo, q_hi, r_lo, r_hi;
    knn_topk *heaps; /* one per query of the whole search, owned by this task */
    int windowed;
    knn_selector window; /* rows labelled in [lo, hi], when windowed */
    knn_error err;
} search_task;

typedef struct search_job {
    search_task *tasks;
} search_job;

static void run_task(void *arg, size_t t) {
    search_task *task = &((search_job *)arg)->tasks[t];
    const knn_flat *ix = task->ix;
    const size_t d = ix->dim;
    knn_rows rows = {ix->vecs + task->r_lo * d, ix->norm2 + task->r_lo, ix->ids + task->r_lo, 0,
                     task->r_hi - task->r_lo, d, NULL, 0};
    size_t nq = task->q_hi - task->q_lo;
    if (nq == 0 || rows.n == 0) return;
    if (ix->coded && ix->codes.lo && ix->codes.n >= ix->count && rows.n * d >= KNN_SCREEN_MIN_VALUES) {
        /* codes first, one query at a time: float rows are read only where the bound lets a row in */
        knn_screen_rows src = {&ix->codes, ix->vecs, ix->ids, d};
        knn_selector all = knn_selector_all();
        for (size_t q = task->q_lo; q < task->q_hi; q++) {
            if (knn_scan_screened(ix->kern, ix->scan_metric, task->queries + q * d, &src,
                                  task->windowed ? &task->window : &all, task->r_lo, task->r_hi, &task->heaps[q],
                                  &task->err) != KNN_OK) {
                return;
            }
        }
        return;
    }
    if (task->windowed) { /* the label filter lives in the one-query scan: run it per query */
        rows.sel = &task->window;
        rows.first_row = task->r_lo;
        for (size_t q = task->q_lo; q < task->q_hi; q++) {
            if (knn_scan_one(ix->kern, ix->scan_metric, task->queries + q * d, task->q_norm2[q], &rows, &task->heaps[q],
                             &task->err) != KNN_OK) {
                return;
            }
        }
        return;
    }
    if (nq == 1) {
        knn_scan_one(ix->kern, ix->scan_metric, task->queries + task->q_lo * d, task->q_norm2[task->q_lo], &rows,
                     &task->heaps[task->q_lo], &task->err);
        return;
    }
    knn_scan_ws ws = {0};
    knn_scan_many(ix->kern, ix->scan_metric, task->queries + task->q_lo * d, task->q_norm2 + task->q_lo, nq, &rows,
                  &task->heaps[task->q_lo], &ws, &task->err);
    knn_scan_ws_free(&ws);
}

int knn_flat_search(const knn_flat *ix, const float *queries, size_t nq, size_t k, size_t threads, int64_t *out_ids,
                    float *out_dists, size_t *out_found, char *errmsg, size_t errmsg_len) {
    return knn_flat_search_window(ix, queries, nq, k, threads, 0, 0, 0, out_ids, out_dists, out_found, NULL, errmsg,
                                  errmsg_len);
}

int knn_flat_search_window(const knn_flat *ix, const float *queries, size_t nq, size_t k, size_t threads,
                           int windowed, double lo, double hi, int64_t *out_ids, float *out_dists, size_t *out_found,
                           size_t *found_per_query, char *errmsg, size_t errmsg_len) {
    knn_error err;
    knn_error_clear(&err);
    const size_t d = ix->dim;
    float *q_norm2 = NULL;
    float *unit = NULL; /* unit-length copies of the queries under cosine */
    search_task *tasks = NULL;
    size_t nthreads = 0;
    pthread_rwlock_t *rw = (pthread_rwlock_t *)&ix->rw;
    int locked = 0;

    if (out_found) *out_found = 0;
    if (found_per_query) memset(found_per_query, 0, nq * sizeof *found_per_query);
    if (k == 0) {
        knn_error_set(&err, KNN_EINVAL, "k must be >= 1, got 0");
        goto cleanup;
    }
    pthread_rwlock_rdlock(rw);
    locked = 1;
    if (nq == 0 || ix->count == 0) goto cleanup;
    q_norm2 = malloc(nq * sizeof *q_norm2);
    if (q_norm2 == NULL) {
        knn_error_set(&err, KNN_ENOMEM, "out of memory for %zu queries", nq);
        goto cleanup;
    }
    for (size_t i = 0; i < nq; i++) {
        char what[48];
        if (nq == 1) {
            snprintf(what, sizeof what, "query");
        } else {
            snprintf(what, sizeof what, "query %zu", i);
        }
        if (knn_query_check(queries + i * d, d, ix->metric, what, &q_norm2[i], &err) != KNN_OK) goto cleanup;
    }
    if (ix->metric == KNN_METRIC_COSINE) {
        unit = malloc(nq * d * sizeof *unit);
        if (unit == NULL) {
            knn_error_set(&err, KNN_ENOMEM, "out of memory for %zu queries", nq);
            goto cleanup;
        }
        for (size_t i = 0; i < nq; i++) {
            float inv = 1.0f / sqrtf(q_norm2[i]);
            for (size_t j = 0; j < d; j++) unit[i * d + j] = queries[i * d + j] * inv;
            q_norm2[i] = 1.0f;
        }
        queries = unit;
    }

    nthreads = threads ? threads : knn_cpu_count();
    size_t work = ix->count * d * nq;
    if (nthreads > work / MIN_FLOATS_PER_THREAD) nthreads = work / MIN_FLOATS_PER_THREAD;
    if (nthreads < 1) nthreads = 1;
    int split_queries = nq >= nthreads * MIN_QUERIES_PER_THREAD;

    tasks = calloc(nthreads, sizeof *tasks);
    if (tasks == NULL) {
        knn_error_set(&err, KNN_ENOMEM, "out of memory for %zu search tasks", nthreads);
        goto cleanup;
    }
    for (size_t t = 0; t < nthreads; t++) {
        search_task *task = &tasks[t];
        task->ix = ix;
        task->queries = queries;
        task->q_norm2 = q_norm2;
        if (split_queries) {
            task->q_lo = nq * t / nthreads;
            task->q_hi = nq * (t + 1) / nthreads;
            task->r_lo = 0;
            task->r_hi = ix->count;
        } else {
            task->q_lo = 0;
            task->q_hi = nq;
            task->r_lo = ix->count * t / nthreads;
            task->r_hi = ix->count * (t + 1) / nthreads;
        }
        knn_error_clear(&task->err);
        task->windowed = windowed;
        task->window = knn_selector_all();
        knn_selector_label(&task->window, ix->labels, lo, hi, 1.0);
        task->heaps = calloc(nq, sizeof *task->heaps);
        if (task->heaps == NULL) {
            knn_error_set(&err, KNN_ENOMEM, "out of memory for %zu result lists", nq);
            goto cleanup;
        }
        for (size_t q = 0; q < nq; q++) knn_topk_init(&task->heaps[q], k, NULL);
    }
    search_job job = {tasks};
    knn_parallel_run(nthreads, run_task, &job);
    for (size_t t = 0; t < nthreads; t++) {
        if (tasks[t].err.status != KNN_OK) {
            err = tasks[t].err;
            goto cleanup;
        }
    }
    /* Merge per-thread lists into task 0's, then emit. */
    size_t kk = k < ix->count ? k : ix->count;
    if (out_found) *out_found = kk;
    for (size_t q = 0; q < nq; q++) {
        knn_topk *dst = &tasks[0].heaps[q];
        for (size_t t = 1; t < nthreads; t++) {
            if (knn_topk_merge(dst, &tasks[t].heaps[q], &err) != KNN_OK) goto cleanup;
        }
        knn_topk_sort(dst);
        if (found_per_query) found_per_query[q] = dst->size;
        for (size_t i = dst->size; i < kk; i++) { /* a window may hold fewer than k rows */
            out_ids[q * k + i] = -1;
            out_dists[q * k + i] = INFINITY;
        }
        for (size_t i = 0; i < kk && i < dst->size; i++) {
            out_ids[q * k + i] = dst->heap[i].id;
            float dist = dst->heap[i].dist;
            if (ix->metric == KNN_METRIC_COSINE) dist = dist + 1.0f < 0.0f ? 0.0f : dist + 1.0f;
            out_dists[q * k + i] = dist;
        }
    }
cleanup:
    if (tasks) {
        for (size_t t = 0; t < nthreads; t++) {
            if (tasks[t].heaps) {
                for (size_t q = 0; q < nq; q++) knn_topk_free(&tasks[t].heaps[q]);
                free(tasks[t].heaps);
            }
        }
        free(tasks);
    }
    if (locked) pthread_rwlock_unlock(rw);
    free(unit);
    free(q_norm2);
    return knn_error_export(&err, errmsg, errmsg_len);
}

static const float *flat_row(const void *ctx, size_t i) {
    const knn_flat *ix = ctx;
    return ix->vecs + i * ix->dim;
}

knn_status knn_flat_export_rows(knn_flat *ix, int windowed, double lo, double hi, int64_t **ids, float **vecs,
                                size_t *n, knn_error *err) {
    pthread_rwlock_rdlock(&ix->rw);
    knn_selector window = knn_selector_all();
    knn_selector_label(&window, ix->labels, lo, hi, 1.0);
    /* an index without labels has no row in any window */
    size_t rows = windowed && ix->labels == NULL ? 0 : ix->count;
    knn_status s = knn_selector_gather(windowed ? &window : NULL, rows, ix->dim, ix->ids, flat_row, ix, ids, vecs, n, err);
    pthread_rwlock_unlock(&ix->rw);
    return s;
}
