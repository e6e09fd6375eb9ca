/* Coded graph storage: HNSW over per-dimension 8- or 4-bit codes (quant/knn_sq.h), float rows off the heap.
 *
 * What it implements. The layout DiskANN (Subramanya et al., NeurIPS 2019) uses and FAISS's
 * IndexHNSWSQ approximates in memory: the graph walks compressed codes held in RAM, and the exact float
 * rows, kept outside the heap, are read only to re-rank the final candidates. Here the float rows live in
 * an unlinked, preallocated file mapping (base/knn_mapped.h), so the kernel pages them like a cache; the
 * heap holds the links (level-0 slots of [count | 2m links], as a bucket graph's), the code rows (a row's
 * codes, its decoding error, under l2 the decoded row's squared norm), ids and labels.
 *   - Build: a new row's float vector goes to the file and its codes to the heap (ranges trained on up to
 *     TRAIN_ROWS rows of the first batch; later rows clamp to them, and each row keeps its own decoding
 *     error, as quant/knn_codes.c's growable codes do). Linking runs on float distances read from the
 *     file, as the float graph links (a build context has `coded` cleared), so the graph is the float
 *     graph's graph.
 *   - Search: the descent and the layer-0 beam (and every filtered beam) score by codes: the query is
 *     turned once into integer weights (knn_sq_prepare), and each batch of unvisited neighbours is one
 *     integer dot-product kernel call over their code rows. A row whose decoding error is over twice the
 *     worst of the training rows (values far outside the trained ranges, clamped) is scored by its float
 *     row instead, so rows added after a drift stay findable. knn_graph_top_finish then re-ranks: the best
 *     `rerank` beam rows by code distance get float distances from the file, and the k nearest come back
 *     sorted by (distance, id), with distances equal to the float graph's for the same rows.
 * Why codes in their own array and not in the slots: a slot of codes plus links would pad each row to
 * 64 bytes (a 4-bit row of 384 dimensions is 192 bytes, its links 132), and a search reads a neighbour's
 * codes and the expanded node's links at different addresses anyway, so splitting costs no extra miss. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "graph/graph_internal.h"

/* Rows of the first batch the ranges are trained on (spread evenly over the batch). */
#define TRAIN_ROWS 16384
/* Share of each tail left out of a 4-bit range (quant/knn_sq.h's trim), measured on MiniLM and
 * Fashion-MNIST (benchmarks/results/quant.md). */
#define SQ4_TRIM 0.001

typedef struct knn_ritem {
    float key;
    uint32_t node;
    int64_t id;
} knn_ritem;

static int ritem_cmp(const void *a, const void *b) {
    const knn_ritem *x = a, *y = b;
    if (x->key != y->key) return x->key < y->key ? -1 : 1;
    return (x->id > y->id) - (x->id < y->id);
}

knn_status knn_graph_set_storage(knn_graph *g, const char *quantization, const char *vectors_dir, knn_error *err) {
    unsigned bits;
    if (quantization == NULL || strcmp(quantization, "none") == 0 || strcmp(quantization, "f32") == 0) {
        bits = 0;
    } else if (strcmp(quantization, "sq8") == 0) {
        bits = 8;
    } else if (strcmp(quantization, "sq4") == 0) {
        bits = 4;
    } else {
        return knn_error_set(err, KNN_EINVAL, "quantization '%.40s' is not known for a graph index; use 'sq8' or "
                             "'sq4' (8- or 4-bit codes in memory, float rows in a file) or 'none'", quantization);
    }
    pthread_rwlock_wrlock(&g->rw);
    knn_status s = KNN_OK;
    if (g->count || g->capacity || g->vec_src) {
        s = knn_error_set(err, KNN_ESTATE, "the storage of a graph index is chosen before its first rows are added");
    } else if (bits) {
        s = knn_graph_code_layout(g, bits, vectors_dir, err);
    }
    pthread_rwlock_unlock(&g->rw);
    return s;
}

knn_status knn_graph_code_layout(knn_graph *g, unsigned qbits, const char *vectors_dir, knn_error *err) {
    const char *dir = vectors_dir && vectors_dir[0] ? vectors_dir : ".";
    size_t len = strlen(dir);
    char *copy = malloc(len + 1);
    if (copy == NULL) return knn_error_set(err, KNN_ENOMEM, "out of memory");
    memcpy(copy, dir, len + 1);
    free(g->vectors_dir);
    g->vectors_dir = copy;
    g->qbits = qbits;
    /* code rows: 16-byte multiples (the 8-bit kernel steps 16 codes, the 4-bit one 64), plus the norm */
    size_t dpad = qbits == 8 ? (g->dim + 15) / 16 * 16 : (g->dim + 63) / 64 * 64;
    size_t row = qbits == 8 ? dpad : dpad / 2;
    g->code_stride = (row + (g->metric == KNN_METRIC_L2 ? 2 : 1) * sizeof(float) + 15) / 16 * 16;
    g->links_offset = 0; /* slots hold links only */
    g->slot_bytes = (1 + g->m0) * sizeof(uint32_t);
    return KNN_OK;
}

/* Code rows grow like the slots (huge-page advice included: the same random reads). */
knn_status knn_graph_code_reserve(knn_graph *g, size_t cap, knn_error *err) {
    if (knn_mapped_grow(&g->fvecs, g->vectors_dir, cap * g->dim * sizeof(float), err) != KNN_OK) return err->status;
    uint8_t *codes = knn_graph_big_alloc(cap * g->code_stride);
    if (codes == NULL) return knn_error_set(err, KNN_ENOMEM, "out of memory growing a graph's codes to %zu rows", cap);
    if (g->count) memcpy(codes, g->codes, g->count * g->code_stride);
    free(g->codes);
    g->codes = codes;
    if (g->missing) {
        uint8_t *m = realloc(g->missing, cap);
        if (m == NULL) return knn_error_set(err, KNN_ENOMEM, "out of memory growing a graph to %zu rows", cap);
        memset(m + g->capacity, 0, cap - g->capacity);
        g->missing = m;
    }
    return KNN_OK;
}

/* The code row of float row x: codes, decoding error, (l2) decoded norm^2. Returns the error. */
static float encode_row(const knn_graph *g, const float *x, uint8_t *row) {
    float err, n2 = knn_sq_encode(&g->sq, x, row, &err);
    memcpy(row + g->sq.row_bytes, &err, sizeof err);
    if (g->metric == KNN_METRIC_L2) memcpy(row + g->sq.row_bytes + sizeof err, &n2, sizeof n2);
    return err;
}

knn_status knn_graph_encode_nodes(knn_graph *g, size_t first, knn_error *err) {
    const size_t n = g->count - first, d = g->dim;
    if (n == 0) return KNN_OK;
    if (g->sq.lo == NULL) {
        const size_t m = n < TRAIN_ROWS ? n : TRAIN_ROWS;
        float *sample = malloc(m * d * sizeof *sample);
        if (sample == NULL) return knn_error_set(err, KNN_ENOMEM, "out of memory training the codes of a graph index");
        for (size_t r = 0; r < m; r++) memcpy(sample + r * d, knn_graph_vec(g, (uint32_t)(first + r * n / m)), d * 4);
        knn_status s = knn_sq_train(&g->sq, g->qbits, sample, m, d, SQ4_TRIM, err);
        free(sample);
        if (s != KNN_OK) return s;
        /* the trained rows' worst decoding error sets which later rows decode too badly to rank by */
        float worst = 0;
        for (size_t r = 0; r < m; r++) {
            float e = encode_row(g, knn_graph_vec(g, (uint32_t)(first + r * n / m)), g->codes + first * g->code_stride);
            worst = e > worst ? e : worst;
        }
        g->err_cut = 2.0f * worst;
    }
    for (size_t i = first; i < g->count; i++) encode_row(g, knn_graph_vec(g, (uint32_t)i), g->codes + i * g->code_stride);
    return KNN_OK;
}

void knn_graph_code_dists(const knn_graph *g, knn_search_ctx *c, const float *q, const uint32_t *nodes, size_t n,
                          float *out) {
    const knn_graph *s = knn_graph_store(g);
    if (c->coded_q != q) {
        if (knn_sq_prepare(&s->sq, q, &c->cq) != 0) { /* no memory for the weights: score by floats */
            c->coded = 0;
            knn_vdists(g, q, nodes, n, out);
            return;
        }
        c->coded_q = q;
    }
    enum { CHUNK = 256 };
    const uint8_t *rows[CHUNK];
    int32_t S[CHUNK];
    const float alpha = c->cq.alpha, base = (float)c->cq.base, qn = c->cq.qnorm2;
    const size_t rb = s->sq.row_bytes;
    for (size_t at = 0; at < n; at += CHUNK) {
        const size_t m = n - at < CHUNK ? n - at : CHUNK;
        for (size_t j = 0; j < m; j++) {
            rows[j] = knn_graph_codes(g, nodes[at + j]);
            __builtin_prefetch(rows[j]);
            __builtin_prefetch(rows[j] + 64);
        }
        if (s->sq.bits == 8) {
            s->kern->sq8_dot_ptrs(c->cq.w, rows, m, s->sq.dpad, S);
        } else {
            s->kern->sq4_dot_ptrs(c->cq.w, rows, m, s->sq.dpad, S);
        }
        float *o = out + at;
        switch (s->metric) {
        case KNN_METRIC_L2:
            for (size_t j = 0; j < m; j++) {
                float n2;
                memcpy(&n2, rows[j] + rb + sizeof(float), sizeof n2);
                o[j] = qn + n2 - 2.0f * (base + alpha * (float)S[j]);
            }
            break;
        case KNN_METRIC_COSINE:
            for (size_t j = 0; j < m; j++) o[j] = 1.0f - (base + alpha * (float)S[j]);
            break;
        default:
            for (size_t j = 0; j < m; j++) o[j] = -(base + alpha * (float)S[j]);
        }
        /* rows whose codes decode far worse than the trained rows' (clamped outliers) rank by their floats */
        for (size_t j = 0; j < m; j++) {
            float e;
            memcpy(&e, rows[j] + rb, sizeof e);
            if (e > s->err_cut) o[j] = knn_vdist(s, q, knn_graph_vec(g, nodes[at + j]));
        }
    }
}

size_t knn_graph_top_finish(const knn_graph *g, knn_search_ctx *c, const float *q, size_t ntop, size_t want) {
    qsort(c->top, ntop, sizeof *c->top, knn_hitem_cmp);
    if (!c->coded || ntop == 0) return ntop;
    size_t r = c->rerank ? (c->rerank > want ? c->rerank : want) : ntop;
    if (r > ntop) r = ntop;
    if (c->ritems_cap < r) {
        knn_ritem *it = realloc(c->ritems, r * sizeof *it);
        if (it == NULL) return SIZE_MAX;
        c->ritems = it;
        c->ritems_cap = r;
    }
    enum { CHUNK = 256 };
    uint32_t nodes[CHUNK];
    float dist[CHUNK];
    for (size_t at = 0; at < r; at += CHUNK) {
        const size_t m = r - at < CHUNK ? r - at : CHUNK;
        for (size_t j = 0; j < m; j++) nodes[j] = c->top[at + j].id;
        knn_vdists(g, q, nodes, m, dist);
        for (size_t j = 0; j < m; j++) c->ritems[at + j] = (knn_ritem){dist[j], nodes[j], g->ids[nodes[j]]};
    }
    qsort(c->ritems, r, sizeof *c->ritems, ritem_cmp);
    for (size_t j = 0; j < r; j++) c->top[j] = (knn_hitem){c->ritems[j].key, c->ritems[j].node};
    return r;
}

size_t knn_graph_code_row_bytes(const knn_graph *g) {
    return g->sq.row_bytes + (g->metric == KNN_METRIC_L2 ? 2 : 1) * sizeof(float);
}

size_t knn_graph_code_bytes(const knn_graph *g) {
    if (!g->qbits) return 0;
    return g->capacity * g->code_stride + (g->missing ? g->capacity : 0) + 2 * g->dim * sizeof(float);
}

size_t knn_graph_file_bytes(const knn_graph *g) { return g->qbits ? g->fvecs.bytes + g->win.vmap.bytes : 0; }

size_t knn_graph_disk_bytes(const knn_graph *g) { return knn_graph_file_bytes(g); }

const char *knn_graph_quantization(const knn_graph *g) { return g->qbits == 8 ? "sq8" : g->qbits == 4 ? "sq4" : "none"; }

void knn_graph_code_free(knn_graph *g) {
    free(g->codes);
    g->codes = NULL;
    free(g->missing);
    g->missing = NULL;
    g->n_missing = 0;
    knn_mapped_free(&g->fvecs);
}

size_t knn_graph_missing_vectors(const knn_graph *g) { return g->n_missing; }

/* ---- float rows after a restore ----------------------------------------------------------------- */

knn_status knn_graph_restore_vectors(knn_graph *g, const float *vecs, const int64_t *ids, size_t n, size_t *filled,
                                     knn_error *err) {
    if (filled) *filled = 0;
    knn_status s = KNN_OK;
    pthread_rwlock_wrlock(&g->rw);
    const size_t d = g->dim;
    uint8_t *code = g->qbits ? malloc(g->code_stride) : NULL;
    float *row = g->qbits ? malloc(d * sizeof *row) : NULL;
    size_t taken = 0;
    if (!g->qbits) {
        s = knn_error_set(err, KNN_EINVAL, "the index keeps its float rows itself (quantization 'none'); there are no "
                          "float rows to restore");
        goto done;
    }
    if (g->missing == NULL) goto done; /* nothing to take: every row has its float row */
    if (!code || !row) {
        s = knn_error_set(err, KNN_ENOMEM, "out of memory restoring float rows");
        goto done;
    }
    /* First check every row against the codes the index holds, then write: a failure changes nothing. */
    for (int pass = 0; pass < 2 && s == KNN_OK; pass++) {
        for (size_t i = 0; i < n; i++) {
            uint32_t node;
            if (!knn_idmap_get(&g->map, ids[i], &node) || g->deleted[node] || !g->missing[node]) continue;
            if ((s = knn_graph_prepare_vec(g, vecs + i * d, row, ids[i], i, err)) != KNN_OK) break;
            if (pass == 0) {
                encode_row(g, row, code);
                if (memcmp(code, g->codes + (size_t)node * g->code_stride, knn_graph_code_row_bytes(g)) != 0) {
                    s = knn_error_set(err, KNN_EDATA, "the row given for id %lld (row %zu of this batch) is not the "
                                      "row the index was saved with (it codes differently); give rows from the table "
                                      "as it was when the index was saved, and re-insert changed rows with "
                                      "knn_index_insert afterwards; nothing was restored", (long long)ids[i], i);
                    break;
                }
                continue;
            }
            memcpy(knn_graph_vec(g, node), row, d * sizeof *row);
            g->missing[node] = 0;
            g->n_missing--;
            taken++;
        }
    }
    if (s == KNN_OK && taken) {
        /* the sorted copy and the cost model were made from stand-in rows: both again */
        knn_graph_window_rebuild(g);
        knn_graph_drop_buckets(g);
        atomic_store(&g->calibrated, 0);
    }
    if (s == KNN_OK && g->n_missing == 0) {
        size_t still = 0;
        for (size_t i = 0; i < g->count; i++) still += g->missing[i];
        if (still == 0) { /* deleted rows too: no row is missing any longer */
            free(g->missing);
            g->missing = NULL;
        }
    }
done:
    pthread_rwlock_unlock(&g->rw);
    free(code);
    free(row);
    if (filled) *filled = taken;
    return s;
}
