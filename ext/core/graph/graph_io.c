/* Graph index <-> bytes.
 *
 * Layout (native little-endian, refused on a big-endian reader):
 *   "KNNGRAPH" | u32 version | u32 0x01020304 | u32 dim | u32 metric | u32 m | u32 ef_construction | u32 ef
 *   | u32 label tag | u64 seed | u64 count | u64 deleted | u64 inserted | u32 entry | i32 max_level
 *   then (version 3: a coded graph, quantization 'sq8' / 'sq4') u32 bits | u32 trained | f32 err_cut | u32 0
 *   | when trained: f32 lo[dim] | f32 step[dim]
 *   then per node: i64 id | f64 label (NaN: none) | u8 deleted | u8 level | u16 0 | the row: f32 vec[dim],
 *   or (version 3) its code row (codes, f32 decoding error, under l2 f32 decoded norm^2: graph_quant.c)
 *   | per level 0..level: u32 n | u32 links[n]
 *   then (version 2) u64 n | n bytes of attribute columns (attrs/knn_attrs.h's layout, count rows)
 *   then a u64 FNV-1a hash (over 8-byte words, then tail bytes) of every preceding byte.
 * Loading checks the checksum first, then every count, level and link against the header, and that
 * each upper-level link reaches a node present on that level; code rows must have their padding codes
 * zero, a finite error, and under l2 the norm their codes decode to. A coded graph's bytes hold no float
 * rows: the loader puts the decoded codes in their place and marks them missing, and the float rows come
 * from the table the index was built from (knn_graph_restore_vectors); searches wait for them. Float
 * graphs still write version 2. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "attrs/knn_attr_order.h"
#include "graph/graph_internal.h"

#define MAGIC "KNNGRAPH"
#define FORMAT_VERSION 2u /* 2 added the attribute columns; version 1 bytes still load */
#define CODED_VERSION 3u  /* 3: a coded graph (ranges and code rows instead of float rows) */
#define ENDIAN_MARK 0x01020304u

/* FNV-1a over 64-bit little-endian words (then the tail bytes): eight times fewer multiplies than the
 * bytewise form, so checking a 200 MB index costs a few tens of milliseconds. */
static uint64_t fnv1a(const uint8_t *p, size_t n) {
    uint64_t h = 0xcbf29ce484222325ULL;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, p + i, 8);
        h ^= w;
        h *= 0x100000001b3ULL;
    }
    for (; i < n; i++) {
        h ^= p[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

typedef struct writer {
    uint8_t *p;
} writer;

static void put(writer *w, const void *src, size_t n) {
    memcpy(w->p, src, n);
    w->p += n;
}
#define PUT(w, T, v)      \
    do {                  \
        T tmp_ = (v);     \
        put(w, &tmp_, sizeof tmp_); \
    } while (0)

static size_t header_bytes(void) { return 8 + 4 * 8 + 8 * 4 + 4 + 4; }

knn_status knn_graph_save(knn_graph *g, uint8_t **buf, size_t *len, knn_error *err) {
    pthread_rwlock_rdlock(&g->rw);
    const int coded = g->qbits != 0, trained = coded && g->sq.lo != NULL;
    const size_t row = coded ? knn_graph_code_row_bytes(g) : g->dim * sizeof(float);
    size_t total = header_bytes() + 8 + (coded ? 16 + (trained ? 2 * g->dim * sizeof(float) : 0) : 0);
    for (uint32_t i = 0; i < g->count; i++) {
        total += 8 + 8 + 4 + row;
        for (int lev = 0; lev <= g->levels[i]; lev++) total += 4 * (1 + (size_t)knn_graph_links(g, i, lev)[0]);
    }
    uint8_t *attrs = NULL;
    size_t attrs_len = 0;
    knn_status s = knn_attrs_save(&g->attrs, g->count, &attrs, &attrs_len, err);
    total += 8 + attrs_len;
    uint8_t *out = s == KNN_OK ? malloc(total) : NULL;
    if (out == NULL) {
        pthread_rwlock_unlock(&g->rw);
        free(attrs);
        if (s != KNN_OK) return s;
        return knn_error_set(err, KNN_ENOMEM, "out of memory serialising a graph index (%zu bytes)", total);
    }
    writer w = {out};
    put(&w, MAGIC, 8);
    PUT(&w, uint32_t, coded ? CODED_VERSION : FORMAT_VERSION);
    PUT(&w, uint32_t, ENDIAN_MARK);
    PUT(&w, uint32_t, (uint32_t)g->dim);
    PUT(&w, uint32_t, (uint32_t)g->metric);
    PUT(&w, uint32_t, (uint32_t)g->p.m);
    PUT(&w, uint32_t, (uint32_t)g->p.ef_construction);
    PUT(&w, uint32_t, (uint32_t)knn_graph_default_ef(g)); /* tuned or not: the loader calibrates at it */
    PUT(&w, uint32_t, g->label_tag);
    PUT(&w, uint64_t, g->p.seed);
    PUT(&w, uint64_t, (uint64_t)g->count);
    PUT(&w, uint64_t, (uint64_t)g->n_deleted);
    PUT(&w, uint64_t, g->inserted);
    PUT(&w, uint32_t, g->entry);
    PUT(&w, int32_t, g->max_level);
    if (coded) {
        PUT(&w, uint32_t, g->qbits);
        PUT(&w, uint32_t, (uint32_t)trained);
        PUT(&w, float, g->err_cut);
        PUT(&w, uint32_t, 0);
        if (trained) {
            put(&w, g->sq.lo, g->dim * sizeof(float));
            put(&w, g->sq.step, g->dim * sizeof(float));
        }
    }
    for (uint32_t i = 0; i < g->count; i++) {
        PUT(&w, int64_t, g->ids[i]);
        PUT(&w, double, g->labels[i]);
        PUT(&w, uint8_t, g->deleted[i]);
        PUT(&w, uint8_t, g->levels[i]);
        PUT(&w, uint16_t, 0);
        put(&w, coded ? (const void *)knn_graph_codes(g, i) : (const void *)knn_graph_vec(g, i), row);
        for (int lev = 0; lev <= g->levels[i]; lev++) {
            const uint32_t *l = knn_graph_links(g, i, lev);
            put(&w, l, 4 * (1 + (size_t)l[0]));
        }
    }
    PUT(&w, uint64_t, (uint64_t)attrs_len);
    put(&w, attrs, attrs_len);
    free(attrs);
    PUT(&w, uint64_t, fnv1a(out, (size_t)(w.p - out)));
    pthread_rwlock_unlock(&g->rw);
    *buf = out;
    *len = total;
    return KNN_OK;
}

typedef struct reader {
    const uint8_t *p, *end;
} reader;

static int take(reader *r, void *dst, size_t n) {
    if ((size_t)(r->end - r->p) < n) return 0;
    memcpy(dst, r->p, n);
    r->p += n;
    return 1;
}

#define CORRUPT(...) do { s = knn_error_set(err, KNN_EDATA, "corrupt graph index bytes: " __VA_ARGS__); goto fail; } while (0)

knn_status knn_graph_load(const uint8_t *buf, size_t len, knn_graph **out, knn_error *err) {
    return knn_graph_load_at(buf, len, NULL, out, err);
}

/* A coded graph's ranges and code-row settings (version 3). */
static knn_status load_coding(reader *r, knn_graph *g, const char *vectors_dir, knn_error *err) {
    knn_status s = KNN_OK;
    uint32_t bits, trained, reserved;
    float cut;
    float *lo = NULL, *step = NULL;
    if (!take(r, &bits, 4) || !take(r, &trained, 4) || !take(r, &cut, 4) || !take(r, &reserved, 4)) {
        CORRUPT("code settings truncated");
    }
    if ((bits != 8 && bits != 4) || trained > 1 || reserved != 0 || !isfinite(cut) || cut < 0) {
        CORRUPT("code settings invalid (%u bits, trained %u, error cut %g)", bits, trained, (double)cut);
    }
    if ((s = knn_graph_code_layout(g, bits, vectors_dir, err)) != KNN_OK) goto fail;
    g->err_cut = cut;
    if (trained) {
        lo = malloc(g->dim * sizeof *lo);
        step = malloc(g->dim * sizeof *step);
        if (!lo || !step) {
            s = knn_error_set(err, KNN_ENOMEM, "out of memory loading code ranges");
            goto fail;
        }
        if (!take(r, lo, g->dim * sizeof *lo) || !take(r, step, g->dim * sizeof *step)) CORRUPT("code ranges truncated");
        if (knn_sq_init(&g->sq, bits, g->dim, lo, step, err) != KNN_OK) {
            char why[KNN_ERROR_MSG_LEN];
            memcpy(why, err->msg, sizeof why);
            why[sizeof why - 1] = '\0';
            CORRUPT("%.200s", why);
        }
    }
fail:
    free(lo);
    free(step);
    return s;
}

/* Node i's code row: checked (padding codes zero, finite error, under l2 the norm its codes decode to),
 * stored, and its decoded codes put where its float row belongs until the table gives that back. */
static knn_status load_code_row(reader *r, knn_graph *g, uint32_t i, knn_error *err) {
    knn_status s = KNN_OK;
    uint8_t *row = g->codes + (size_t)i * g->code_stride;
    const size_t rb = g->sq.row_bytes;
    float e, n2 = 0;
    if (!take(r, row, knn_graph_code_row_bytes(g))) CORRUPT("node %u code row truncated", i);
    memcpy(&e, row + rb, sizeof e);
    if (g->metric == KNN_METRIC_L2) memcpy(&n2, row + rb + sizeof e, sizeof n2);
    if (!knn_sq_pad_clear(&g->sq, row)) CORRUPT("node %u has codes in its padding dimensions", i);
    if (!isfinite(e) || e < 0) CORRUPT("node %u has a decoding error of %g", i, (double)e);
    if (g->metric == KNN_METRIC_L2) {
        float want = knn_sq_decoded_norm2(&g->sq, row);
        if (memcmp(&want, &n2, sizeof n2) != 0) {
            CORRUPT("node %u: its codes decode to a squared norm of %g, the row says %g", i, (double)want, (double)n2);
        }
    }
    knn_sq_decode(&g->sq, row, knn_graph_vec(g, i));
    g->missing[i] = 1;
fail:
    return s;
}

knn_status knn_graph_load_at(const uint8_t *buf, size_t len, const char *vectors_dir, knn_graph **out, knn_error *err) {
    knn_status s = KNN_OK;
    knn_graph *g = NULL;
    *out = NULL;
    if (buf == NULL || len < header_bytes() + 8) {
        return knn_error_set(err, KNN_EDATA, "corrupt graph index bytes: %zu bytes is shorter than the header", len);
    }
    if (memcmp(buf, MAGIC, 8) != 0) return knn_error_set(err, KNN_EDATA, "not a knnsql graph index (bad magic)");
    uint64_t stored;
    memcpy(&stored, buf + len - 8, 8);
    if (stored != fnv1a(buf, len - 8)) {
        return knn_error_set(err, KNN_EDATA, "corrupt graph index bytes: checksum mismatch (truncated or damaged)");
    }
    reader r = {buf + 8, buf + len - 8};
    uint32_t version, endian, dim, metric, m, efc, ef, pad, entry;
    uint64_t seed, count, n_deleted, inserted;
    int32_t max_level;
    if (!take(&r, &version, 4) || !take(&r, &endian, 4)) CORRUPT("header truncated");
    if (endian != ENDIAN_MARK) CORRUPT("written on a machine of other byte order");
    if (version != FORMAT_VERSION && version != 1u && version != CODED_VERSION) {
        s = knn_error_set(err, KNN_EDATA, "graph index format version %u is not supported (this build reads 1 to %u)",
                          version, CODED_VERSION);
        goto fail;
    }
    if (!take(&r, &dim, 4) || !take(&r, &metric, 4) || !take(&r, &m, 4) || !take(&r, &efc, 4) || !take(&r, &ef, 4) ||
        !take(&r, &pad, 4) || !take(&r, &seed, 8) || !take(&r, &count, 8) || !take(&r, &n_deleted, 8) ||
        !take(&r, &inserted, 8) || !take(&r, &entry, 4) || !take(&r, &max_level, 4)) {
        CORRUPT("header truncated");
    }
    if (metric > KNN_METRIC_IP) CORRUPT("unknown metric code %u", metric);
    knn_graph_params p = {m, efc, ef, seed};
    if ((s = knn_graph_alloc(dim, (knn_metric)metric, &p, &g, err)) != KNN_OK) {
        /* Settings out of range in the bytes are damage, not a caller's mistake: say so. */
        if (s == KNN_EINVAL) {
            char why[KNN_ERROR_MSG_LEN];
            memcpy(why, err->msg, sizeof why);
            why[sizeof why - 1] = '\0';
            CORRUPT("header settings invalid (%.200s)", why);
        }
        goto fail;
    }
    if (count >= KNN_NO_NODE || n_deleted > count) CORRUPT("node counts %llu/%llu out of range",
                                                           (unsigned long long)count, (unsigned long long)n_deleted);
    if (version == CODED_VERSION) {
        if ((s = load_coding(&r, g, vectors_dir, err)) != KNN_OK) goto fail;
        if (count && g->sq.lo == NULL) CORRUPT("%llu code rows but no code ranges", (unsigned long long)count);
    }
    const uint64_t row_bytes = g->qbits ? knn_graph_code_row_bytes(g) : (uint64_t)dim * 4;
    /* Each node needs at least its fixed part: refuse counts the buffer cannot hold before allocating. */
    if (count > (uint64_t)(r.end - r.p) / (24 + row_bytes)) CORRUPT("node count %llu exceeds the data",
                                                                     (unsigned long long)count);
    if ((s = knn_graph_reserve(g, count ? count : 1, err)) != KNN_OK) goto fail;
    if (g->qbits && count && (g->missing = calloc(g->capacity, 1)) == NULL) {
        s = knn_error_set(err, KNN_ENOMEM, "out of memory loading a graph index");
        goto fail;
    }
    size_t deleted_seen = 0;
    for (uint32_t i = 0; i < count; i++) {
        uint8_t del, level;
        uint16_t pad16;
        if (!take(&r, &g->ids[i], 8) || !take(&r, &g->labels[i], 8) || !take(&r, &del, 1) || !take(&r, &level, 1) ||
            !take(&r, &pad16, 2)) {
            CORRUPT("node %u truncated", i);
        }
        if (del > 1 || level > KNN_MAX_LEVEL) CORRUPT("node %u has flag %u / level %u", i, del, level);
        g->deleted[i] = del;
        g->levels[i] = level;
        deleted_seen += del;
        if (g->qbits) {
            if ((s = load_code_row(&r, g, i, err)) != KNN_OK) goto fail;
        } else {
            float *v = knn_graph_vec(g, i);
            if (!take(&r, v, (size_t)dim * 4)) CORRUPT("node %u vector truncated", i);
            for (uint32_t j = 0; j < dim; j++) {
                if (!isfinite(v[j])) CORRUPT("node %u has a non-finite value", i);
            }
        }
        if (level > 0) {
            g->upper[i] = calloc((size_t)level * (m + 1), sizeof(uint32_t));
            if (g->upper[i] == NULL) {
                s = knn_error_set(err, KNN_ENOMEM, "out of memory loading a graph index");
                goto fail;
            }
        }
        g->count = i + 1; /* so fail: frees this node's links */
        for (int lev = 0; lev <= level; lev++) {
            uint32_t *l = knn_graph_links(g, i, lev);
            uint32_t n;
            if (!take(&r, &n, 4)) CORRUPT("node %u links truncated", i);
            if (n > (lev == 0 ? 2 * m : m)) CORRUPT("node %u has %u links on level %d", i, n, lev);
            if (!take(&r, l + 1, (size_t)n * 4)) CORRUPT("node %u links truncated", i);
            for (uint32_t j = 0; j < n; j++) {
                if (l[1 + j] >= count) CORRUPT("node %u links to node %u of %llu", i, l[1 + j], (unsigned long long)count);
            }
            l[0] = n;
        }
    }
    if (version >= 2u) {
        uint64_t alen;
        size_t used = 0;
        if (!take(&r, &alen, 8) || alen > (uint64_t)(r.end - r.p)) CORRUPT("attribute columns truncated");
        if ((s = knn_attrs_load(&g->attrs, r.p, (size_t)alen, count, &used, err)) != KNN_OK) goto fail;
        if (used != alen) CORRUPT("attribute columns: %zu of %llu bytes read", used, (unsigned long long)alen);
        r.p += alen;
        knn_attrs_order_refresh(&g->attrs); /* the sorted orders are rebuilt, not stored */
    }
    if (r.p != r.end) CORRUPT("%zu unexpected trailing bytes", (size_t)(r.end - r.p));
    /* A link on level lev must reach a node that has level lev: searches read the target's links there. */
    for (uint32_t i = 0; i < count; i++) {
        for (int lev = 1; lev <= g->levels[i]; lev++) {
            const uint32_t *l = knn_graph_links(g, i, lev);
            for (uint32_t j = 0; j < l[0]; j++) {
                if (g->levels[l[1 + j]] < lev) CORRUPT("node %u links on level %d to node %u of level %u", i, lev,
                                                       l[1 + j], g->levels[l[1 + j]]);
            }
        }
    }
    if (deleted_seen != n_deleted) CORRUPT("deleted count mismatch");
    if (count == 0) {
        if (entry != KNN_NO_NODE || max_level != -1) CORRUPT("empty index with an entry point");
    } else if (entry >= count || max_level != g->levels[entry]) {
        CORRUPT("entry point %u (level %d) invalid", entry, max_level);
    }
    g->count = count;
    g->label_tag = pad;
    g->n_deleted = n_deleted;
    g->inserted = inserted;
    g->entry = entry;
    g->max_level = max_level;
    if (g->missing) g->n_missing = count - n_deleted; /* every live row waits for its float row */
    for (uint32_t i = 0; i < count; i++) {
        if (g->deleted[i]) continue;
        uint32_t prev;
        if (knn_idmap_get(&g->map, g->ids[i], &prev)) CORRUPT("id %lld appears twice", (long long)g->ids[i]);
        if ((s = knn_idmap_put(&g->map, g->ids[i], i, err)) != KNN_OK) goto fail;
    }
    knn_graph_window_rebuild(g);
    *out = g;
    return KNN_OK;
fail:
    knn_graph_free(g);
    return s;
}
