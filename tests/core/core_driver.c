/* C-level test driver of the core, run under AddressSanitizer, UndefinedBehaviorSanitizer and
 * LeakSanitizer by scripts/sanitize.sh (DuckDB and CPython are not sanitized, so leak checking of the
 * extension inside Python would drown in their allocations; this driver links the core alone).
 *
 * It walks every public path of ext/core/knn_api.h: flat and graph build, search (plain, batched,
 * windowed, k beyond the row count), delete, optimize, serialise, load, and load of damaged bytes
 * (truncations, bit flips with the checksum patched so the structural checks run), checking answers
 * against a brute-force reference. Exit status 0 means every check held; a sanitizer report aborts. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attrs/knn_attr_order.h"
#include "base/knn_options.h"
#include "sample/symeig.h"
#include "attrs/knn_attrs.h"
#include "attrs/knn_predicate.h"
#include "attrs/predicate_internal.h"
#include "knn_api.h"
#include "sample/knn_sample.h"
#include "select/knn_selector.h"

#define ERR 512
static int failures;

#define CHECK(cond, ...)                                   \
    do {                                                   \
        if (!(cond)) {                                     \
            fprintf(stderr, "%s:%d: ", __FILE__, __LINE__); \
            fprintf(stderr, __VA_ARGS__);                  \
            fputc('\n', stderr);                           \
            failures++;                                    \
        }                                                  \
    } while (0)
#define OK(call)                                                        \
    do {                                                                \
        char errbuf_[ERR];                                              \
        int st_ = (call);                                               \
        CHECK(st_ == 0, "%s failed (%d): %s", #call, st_, errbuf_);     \
    } while (0)
/* OK() passes errbuf_; calls name it as the message buffer. */
#define EB errbuf_, ERR

static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;
static float frand(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (float)((rng_state >> 11) * (1.0 / 9007199254740992.0)) * 2.0f - 1.0f;
}

static float l2(const float *a, const float *b, size_t d) {
    double s = 0;
    for (size_t i = 0; i < d; i++) s += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
    return (float)s;
}

/* Brute-force k-th distance among live rows (live[i] != 0). */
static float kth_ref(const float *X, const unsigned char *live, size_t n, size_t d, const float *q, size_t k) {
    float *ds = malloc(n * sizeof *ds);
    size_t m = 0;
    for (size_t i = 0; i < n; i++) if (live[i]) ds[m++] = l2(X + i * d, q, d);
    for (size_t i = 0; i < m && i < k; i++) { /* partial selection sort */
        size_t best = i;
        for (size_t j = i + 1; j < m; j++) if (ds[j] < ds[best]) best = j;
        float t = ds[i]; ds[i] = ds[best]; ds[best] = t;
    }
    float out = m == 0 ? INFINITY : ds[(k < m ? k : m) - 1];
    free(ds);
    return out;
}

static void test_flat(void) {
    const size_t n = 600, d = 17, k = 10, nq = 7;
    float *X = malloc(n * d * sizeof *X), *Q = malloc(nq * d * sizeof *Q);
    int64_t *ids = malloc(n * sizeof *ids);
    double *labels = malloc(n * sizeof *labels);
    unsigned char *live = malloc(n);
    for (size_t i = 0; i < n * d; i++) X[i] = frand();
    for (size_t i = 0; i < nq * d; i++) Q[i] = frand();
    for (size_t i = 0; i < n; i++) { ids[i] = (int64_t)i; labels[i] = (double)i; live[i] = 1; }
    knn_flat *f = NULL;
    OK(knn_flat_new(d, "l2", &f, EB));
    OK(knn_flat_add_labeled(f, X, ids, labels, n, EB));
    int64_t oid[7 * 10];
    float od[7 * 10];
    size_t found = 0, fpq[7];
    OK(knn_flat_search(f, Q, nq, k, 2, oid, od, &found, EB));
    for (size_t q = 0; q < nq; q++) {
        float kth = kth_ref(X, live, n, d, Q + q * d, k);
        CHECK(fabsf(od[q * k + k - 1] - kth) <= 1e-4f * (1 + kth), "flat k-th distance %g vs %g", od[q * k + k - 1], kth);
        for (size_t j = 0; j < k; j++) {
            float want = l2(X + (size_t)oid[q * k + j] * d, Q + q * d, d);
            CHECK(fabsf(od[q * k + j] - want) <= 1e-4f * (1 + want), "flat distance of id %lld", (long long)oid[q * k + j]);
        }
    }
    /* window [100, 109] holds exactly 10 rows */
    OK(knn_flat_search_window(f, Q, nq, k, 1, 1, 100.0, 109.0, oid, od, &found, fpq, EB));
    for (size_t q = 0; q < nq; q++) {
        CHECK(fpq[q] == 10, "flat window found %zu", fpq[q]);
        for (size_t j = 0; j < fpq[q]; j++) CHECK(oid[q * k + j] >= 100 && oid[q * k + j] <= 109, "flat window id");
    }
    size_t removed = 0;
    int64_t gone[3] = {0, 5, 99999};
    OK(knn_flat_remove(f, gone, 3, &removed, EB));
    CHECK(removed == 2 && knn_flat_count(f) == n - 2, "flat remove %zu", removed);
    /* k beyond the row count: every row comes back */
    size_t bigk = n + 50;
    int64_t *bid = malloc(bigk * sizeof *bid);
    float *bd = malloc(bigk * sizeof *bd);
    OK(knn_flat_search(f, Q, 1, bigk, 1, bid, bd, &found, EB));
    CHECK(found == n - 2, "flat big k found %zu", found);
    int64_t *listed = malloc(knn_flat_count(f) * sizeof *listed);
    knn_flat_list_ids(f, listed);
    free(listed);
    /* bad input: NaN row, wrong metric, zero dim */
    float bad[17];
    for (size_t i = 0; i < d; i++) bad[i] = NAN;
    int64_t bid1 = 1;
    char eb[ERR];
    CHECK(knn_flat_add(f, bad, &bid1, 1, eb, ERR) != 0 && strstr(eb, "NaN") != NULL, "NaN accepted: %s", eb);
    knn_flat *f2 = NULL;
    CHECK(knn_flat_new(d, "nope", &f2, eb, ERR) != 0 && f2 == NULL, "bad metric accepted");
    CHECK(knn_flat_new(0, "l2", &f2, eb, ERR) != 0 && f2 == NULL, "dim 0 accepted");
    knn_flat_destroy(f);
    /* empty flat index */
    OK(knn_flat_new(d, "cosine", &f, EB));
    OK(knn_flat_search(f, Q, 1, k, 1, oid, od, &found, EB));
    CHECK(found == 0, "empty flat found %zu", found);
    knn_flat_list_ids(f, oid); /* copied nothing from a never-allocated id array (was UB: memcpy from NULL) */
    OK(knn_flat_search_window(f, Q, 1, k, 1, 1, 0.0, 1.0, oid, od, &found, fpq, EB));
    OK(knn_flat_remove(f, gone, 3, &removed, EB));
    CHECK(removed == 0, "empty flat removed %zu", removed);
    knn_flat_destroy(f);
    free(bid); free(bd); free(X); free(Q); free(ids); free(labels); free(live);
}

/* Patches the trailing FNV-1a checksum so damaged bytes reach the structural checks. */
static void patch_checksum(uint8_t *b, size_t len) {
    if (len < 8) return;
    uint64_t h = 0xcbf29ce484222325ULL;
    size_t i = 0, n = len - 8;
    for (; i + 8 <= n; i += 8) { uint64_t w; memcpy(&w, b + i, 8); h ^= w; h *= 0x100000001b3ULL; }
    for (; i < n; i++) { h ^= b[i]; h *= 0x100000001b3ULL; }
    memcpy(b + n, &h, 8);
}

static void test_graph(void) {
    const size_t n = 1500, d = 12, k = 10, nq = 5;
    float *X = malloc(n * d * sizeof *X), *Q = malloc(nq * d * sizeof *Q);
    int64_t *ids = malloc(n * sizeof *ids);
    double *labels = malloc(n * sizeof *labels);
    unsigned char *live = malloc(n);
    for (size_t i = 0; i < n * d; i++) X[i] = frand();
    for (size_t i = 0; i < nq * d; i++) Q[i] = frand();
    for (size_t i = 0; i < n; i++) { ids[i] = (int64_t)i; labels[i] = (double)(i % 100); live[i] = 1; }
    knn_graph *g = NULL;
    OK(knn_graph_new(d, "l2", 8, 64, 64, 7, &g, EB));
    OK(knn_graph_add_rows(g, X, ids, labels, n / 2, 2, EB));            /* bulk */
    OK(knn_graph_add_rows(g, X + n / 2 * d, ids + n / 2, labels + n / 2, n - n / 2, 1, EB)); /* incremental */
    CHECK(knn_graph_count(g) == n, "graph count %zu", knn_graph_count(g));
    int64_t oid[5 * 10];
    float od[5 * 10];
    size_t found[5];
    int plans[5];
    OK(knn_graph_query(g, Q, nq, k, 200, 2, oid, od, found, EB));
    for (size_t q = 0; q < nq; q++) {
        CHECK(found[q] == k, "graph found %zu", found[q]);
        for (size_t j = 0; j < found[q]; j++) {
            float want = l2(X + (size_t)oid[q * k + j] * d, Q + q * d, d);
            CHECK(fabsf(od[q * k + j] - want) <= 1e-4f * (1 + want), "graph distance");
        }
    }
    /* delete a third, search must not return them */
    int64_t *del = malloc(n / 3 * sizeof *del);
    for (size_t i = 0; i < n / 3; i++) { del[i] = (int64_t)(3 * i); live[3 * i] = 0; }
    size_t removed = 0;
    OK(knn_graph_remove(g, del, n / 3, &removed, EB));
    CHECK(removed == n / 3, "graph removed %zu", removed);
    OK(knn_graph_query_window(g, Q, nq, k, 0, 10.0, 19.0, 2, oid, od, found, plans, EB));
    for (size_t q = 0; q < nq; q++) {
        CHECK(found[q] == k, "graph window found %zu", found[q]);
        for (size_t j = 0; j < found[q]; j++) {
            int64_t id = oid[q * k + j];
            CHECK(live[id] && labels[id] >= 10 && labels[id] <= 19, "graph window returned id %lld", (long long)id);
        }
    }
    for (int plan = 0; plan <= 1; plan++) {
        knn_graph_force_window_plan(g, plan);
        OK(knn_graph_query_window(g, Q, nq, k, 0, 42.0, 42.0, 1, oid, od, found, plans, EB));
        for (size_t q = 0; q < nq; q++) CHECK(found[q] == k, "forced plan %d found %zu", plan, found[q]);
    }
    knn_graph_force_window_plan(g, -1);
    /* allow-lists (knn_graph_query_among): a few ids (exact plan), most ids (beam), unknown, repeated
     * and deleted ids; every answer is allowed and live */
    for (int wide = 0; wide <= 1; wide++) {
        size_t na = 0;
        int64_t *allow = malloc((n + 3) * sizeof *allow);
        for (size_t i = 0; i < n; i++) {
            if (wide ? i % 10 != 0 : i % 50 == 1) allow[na++] = (int64_t)i;
        }
        allow[na++] = -5;
        allow[na++] = (int64_t)n * 10;
        allow[na++] = allow[0];
        size_t matched = 0;
        OK(knn_graph_query_among(g, Q, nq, k, 0, allow, na, wide ? 2 : 1, oid, od, found, plans, &matched, EB));
        for (size_t q = 0; q < nq; q++) {
            CHECK(found[q] == k, "among found %zu", found[q]);
            for (size_t j = 0; j < k; j++) {
                int64_t id = oid[q * k + j];
                CHECK(id >= 0 && live[id] && (wide ? id % 10 != 0 : id % 50 == 1), "among returned id %lld", (long long)id);
            }
        }
        free(allow);
    }
    OK(knn_graph_rebuild(g, 2, EB));
    CHECK(knn_graph_tombstones(g) == 0 && knn_graph_count(g) == n - n / 3, "optimize left %zu tombstones",
          knn_graph_tombstones(g));
    /* exhaustive search after optimize is exact (ef >= rows) */
    OK(knn_graph_query(g, Q, nq, k, n, 1, oid, od, found, EB));
    for (size_t q = 0; q < nq; q++) {
        float kth = kth_ref(X, live, n, d, Q + q * d, k);
        CHECK(fabsf(od[q * k + k - 1] - kth) <= 1e-4f * (1 + kth), "graph exhaustive k-th %g vs %g", od[q * k + k - 1], kth);
        for (size_t j = 0; j < k; j++) CHECK(live[oid[q * k + j]], "deleted id %lld returned", (long long)oid[q * k + j]);
    }
    /* k beyond the row count */
    size_t bigk = n * 2;
    int64_t *bid = malloc(bigk * sizeof *bid);
    float *bd = malloc(bigk * sizeof *bd);
    OK(knn_graph_query(g, Q, 1, bigk, 0, 1, bid, bd, found, EB));
    CHECK(found[0] == n - n / 3, "graph big k found %zu", found[0]);
    free(bid); free(bd);
    int64_t *listed = malloc(knn_graph_count(g) * sizeof *listed);
    knn_graph_list_ids(g, listed);
    free(listed);

    /* serialise, load, compare */
    uint8_t *bytes = NULL;
    size_t len = 0;
    OK(knn_graph_to_bytes(g, &bytes, &len, EB));
    knn_graph *h = NULL;
    OK(knn_graph_from_bytes(bytes, len, &h, EB));
    if (h) {
        int64_t oid2[5 * 10];
        float od2[5 * 10];
        size_t found2[5];
        OK(knn_graph_query(g, Q, nq, k, 64, 1, oid, od, found, EB));
        OK(knn_graph_query(h, Q, nq, k, 64, 1, oid2, od2, found2, EB));
        CHECK(memcmp(oid, oid2, sizeof oid) == 0, "loaded graph answers differently");
        knn_graph_destroy(h);
    }
    /* damaged bytes: every truncation length class, and bit flips with a patched checksum */
    uint8_t *copy = malloc(len);
    char eb[ERR];
    size_t rejected = 0, accepted = 0;
    for (size_t cut = 0; cut < len; cut += 1 + cut / 3) {
        h = NULL;
        if (knn_graph_from_bytes(bytes, cut, &h, eb, ERR) == 0) { accepted++; knn_graph_destroy(h); } else rejected++;
        CHECK(h == NULL || accepted, "truncated load");
    }
    CHECK(accepted == 0, "a truncated buffer loaded");
    for (size_t trial = 0; trial < 400; trial++) {
        memcpy(copy, bytes, len);
        size_t pos = (size_t)((frand() + 1.0f) * 0.5f * (float)(len - 9));
        if (trial < 120) pos = 8 + trial % 72; /* the header, field by field */
        copy[pos] ^= (uint8_t)(1u << (trial % 8));
        if (trial % 2) patch_checksum(copy, len);
        h = NULL;
        if (knn_graph_from_bytes(copy, len, &h, eb, ERR) == 0) {
            /* a flip the format cannot see (a vector value, a label): the index must still be usable */
            OK(knn_graph_query(h, Q, nq, k, 0, 1, oid, od, found, EB));
            knn_graph_destroy(h);
        } else {
            CHECK(h == NULL && strstr(eb, "graph index") != NULL, "load error message: %s", eb);
        }
    }
    CHECK(rejected > 0, "no truncation rejected");
    free(copy);
    knn_bytes_free(bytes);
    knn_graph_destroy(g);

    /* empty and single-row graphs, serialised too */
    OK(knn_graph_new(d, "cosine", 0, 0, 0, 1, &g, EB));
    OK(knn_graph_query(g, Q, 1, k, 0, 1, oid, od, found, EB));
    CHECK(found[0] == 0, "empty graph found %zu", found[0]);
    OK(knn_graph_to_bytes(g, &bytes, &len, EB));
    OK(knn_graph_from_bytes(bytes, len, &h, EB));
    knn_graph_destroy(h);
    knn_bytes_free(bytes);
    OK(knn_graph_add_rows(g, X, ids, NULL, 1, 1, EB));
    OK(knn_graph_query(g, Q, 1, k, 0, 1, oid, od, found, EB));
    CHECK(found[0] == 1 && oid[0] == 0, "single-row graph found %zu", found[0]);
    /* error paths must not leak */
    float zero[12] = {0};
    int64_t zid = 77;
    CHECK(knn_graph_add_rows(g, zero, &zid, NULL, 1, 1, eb, ERR) != 0, "zero vector accepted under cosine");
    CHECK(knn_graph_from_bytes((const uint8_t *)"KNNGRAPH", 8, &h, eb, ERR) != 0, "8 bytes loaded");
    knn_graph_destroy(g);
    knn_graph *bad = NULL;
    CHECK(knn_graph_new(0, "l2", 0, 0, 0, 1, &bad, eb, ERR) != 0 && bad == NULL, "dim 0 graph accepted");
    free(del); free(X); free(Q); free(ids); free(labels); free(live);
}

/* The 8-bit screen of the center cover only skips work: with and without it, every potential of a
 * candidate and every row's nearest center agree bit for bit, for each kernel level this CPU runs. */
static void test_cover_screen(void) {
    const size_t n = 1500, d = 27, cap = 40, m = 6;
    float *X = malloc(n * d * sizeof *X);
    for (size_t i = 0; i < n; i++) {
        for (size_t j = 0; j < d; j++) X[i * d + j] = i % 5 == 4 ? X[(i - 1) * d + j] : frand() * (j == 2 ? 50.0f : 1.0f);
    }
    knn_isa levels[] = {KNN_ISA_SCALAR, KNN_ISA_AVX2, KNN_ISA_AVX512};
    for (size_t lv = 0; lv < 3; lv++) {
        const knn_kernels *kern = knn_kernels_for(levels[lv]);
        if (kern == NULL) continue;
        knn_cover a, b;
        knn_error err;
        CHECK(knn_cover_init(&a, X, n, d, cap, 1, kern, &err) == KNN_OK, "cover init: %s", err.msg);
        CHECK(knn_cover_init(&b, X, n, d, cap, 2, kern, &err) == KNN_OK, "cover init: %s", err.msg);
        CHECK(a.screen.q.codes != NULL, "no screen at d = %zu", d);
        knn_screen_free(&b.screen); /* b runs the unscreened passes */
        int64_t next = 11;
        for (size_t step = 0; step < cap && !failures; step++) {
            CHECK(knn_cover_add(&a, next, &err) == KNN_OK && knn_cover_add(&b, next, &err) == KNN_OK, "add: %s", err.msg);
            CHECK(memcmp(a.mind, b.mind, n * sizeof *a.mind) == 0, "%s: mind differs after %zu centers", kern->name, step + 1);
            CHECK(memcmp(a.owner, b.owner, n * sizeof *a.owner) == 0, "%s: owners differ", kern->name);
            if (step + 1 == cap) break;
            int64_t cand[6];
            double pa[6], pb[6];
            for (size_t t = 0; t < m; t++) {
                size_t r = (step * 7919 + t * 104729 + 3) % n;
                while (a.mind[r] < 0) r = (r + 1) % n;
                cand[t] = (int64_t)r;
            }
            CHECK(knn_cover_potentials(&a, cand, m, pa, &err) == KNN_OK, "potentials: %s", err.msg);
            CHECK(knn_cover_potentials(&b, cand, m, pb, &err) == KNN_OK, "potentials: %s", err.msg);
            size_t best = 0;
            for (size_t t = 0; t < m; t++) {
                CHECK(pa[t] == pb[t], "%s: potential %zu differs: %.17g vs %.17g", kern->name, t, pa[t], pb[t]);
                if (pa[t] < pa[best]) best = t;
            }
            next = step % 3 == 0 ? knn_cover_farthest(&a, NULL) : cand[best];
        }
        knn_cover_free(&a);
        knn_cover_free(&b);
    }
    free(X);
}

/* Bucket graphs: forced levels, the bucket plan forced; every answer in the window and live, close to
 * brute force; deleted rows never come back; rows added after the build are found. */
static void test_buckets(void) {
    const size_t n = 6000, d = 9, k = 10;
    float *X = malloc((n + 50) * d * sizeof *X);
    int64_t *ids = malloc((n + 50) * sizeof *ids);
    double *labels = malloc((n + 50) * sizeof *labels);
    unsigned char *live = malloc(n + 50);
    for (size_t i = 0; i < (n + 50) * d; i++) X[i] = frand();
    for (size_t i = 0; i < n + 50; i++) {
        ids[i] = (int64_t)i;
        labels[i] = (double)(i % 1000); /* six rows per label: ties at every bound */
        live[i] = i < n;
    }
    knn_graph *g = NULL;
    OK(knn_graph_new(d, "l2", 8, 60, 32, 7, &g, EB));
    OK(knn_graph_add_rows(g, X, ids, labels, n, 2, EB));
    CHECK(knn_graph_force_buckets(g, 2) == 2, "two bucket levels not built");
    size_t rows[4];
    CHECK(knn_graph_bucket_info(g, rows, NULL, 4) == 2 && rows[0] == n / 4 && rows[1] == n / 8, "bucket rows");
    int64_t gone[200];
    for (size_t i = 0; i < 200; i++) {
        gone[i] = (int64_t)(i * 29 % n);
        live[gone[i]] = 0;
    }
    size_t removed = 0;
    OK(knn_graph_remove(g, gone, 200, &removed, EB));
    OK(knn_graph_add_rows(g, X + n * d, ids + n, labels + n, 50, 1, EB)); /* late rows: labels 0 .. 49 */
    for (size_t i = n; i < n + 50; i++) live[i] = 1;
    knn_graph_force_window_plan(g, 4);
    int64_t oid[10];
    float od[10];
    size_t found[1];
    int plans[1];
    unsigned char *in = malloc(n + 50);
    for (size_t t = 0; t < 40; t++) {
        double lo = (double)((t * 37) % 900), hi = lo + 20 + (double)(t % 5) * 40;
        const float *q = X + ((t * 131) % (n + 50)) * d;
        OK(knn_graph_query_window(g, q, 1, k, 64, lo, hi, 1, oid, od, found, plans, EB));
        for (size_t i = 0; i < n + 50; i++) in[i] = live[i] && labels[i] >= lo && labels[i] <= hi;
        float kth = kth_ref(X, in, n + 50, d, q, k);
        CHECK(found[0] == k, "bucket plan found %zu", found[0]);
        CHECK(plans[0] == 4 || plans[0] == 2, "plan %d, not the bucket plan", plans[0]);
        for (size_t j = 0; j < found[0]; j++) {
            CHECK(oid[j] >= 0 && (size_t)oid[j] < n + 50 && in[oid[j]], "bucket plan returned id %lld", (long long)oid[j]);
        }
        CHECK(od[k - 1] <= kth * 1.5f + 1e-3f, "bucket plan k-th %g far above brute force %g", od[k - 1], kth);
    }
    /* a late row sits at the query itself: it must come first */
    OK(knn_graph_query_window(g, X + (n + 7) * d, 1, k, 64, 0.0, 300.0, 1, oid, od, found, plans, EB));
    CHECK(found[0] == k && oid[0] == (int64_t)(n + 7), "late row not found first (got %lld)", (long long)oid[0]);
    OK(knn_graph_rebuild(g, 2, EB)); /* renumbers nodes: the buckets go, the cost model's come back */
    OK(knn_graph_query_window(g, X, 1, k, 64, 0.0, 300.0, 1, oid, od, found, plans, EB));
    CHECK(found[0] == k, "after optimize found %zu", found[0]);
    knn_graph_force_window_plan(g, -1);
    knn_graph_destroy(g);
    free(in); free(X); free(ids); free(labels); free(live);
}

/* The code-distance kernel: exact integer sums, and bit r set exactly when S_r < cut, at every level. */
/* The code dot-product kernels of the quantized graph (quant/knn_sq.h): every ISA gives the scalar
 * integers, on 1..9 rows (the four-row groups and their tails) and the extreme weights. */
static void test_sq_kernels(void) {
    enum { DPAD = 192, ROWS = 9 };
    static uint8_t rows8[ROWS][DPAD], rows4[ROWS][DPAD / 2];
    int16_t w8[DPAD];
    int8_t w4[DPAD];
    const int16_t top8 = (int16_t)(2147483647.0 / (255.0 * DPAD));
    for (size_t j = 0; j < DPAD; j++) {
        w8[j] = j % 11 == 0 ? top8 : j % 13 == 0 ? (int16_t)-top8 : (int16_t)(frand() * top8);
        w4[j] = j % 11 == 0 ? 127 : j % 13 == 0 ? -127 : (int8_t)(frand() * 127);
    }
    for (size_t r = 0; r < ROWS; r++) {
        for (size_t j = 0; j < DPAD; j++) rows8[r][j] = r == 0 ? 255 : (uint8_t)((frand() + 1.0f) * 127.5f);
        for (size_t j = 0; j < DPAD / 2; j++) rows4[r][j] = r == 0 ? 0xff : (uint8_t)((frand() + 1.0f) * 127.5f);
    }
    const uint8_t *p8[ROWS], *p4[ROWS];
    int32_t want8[ROWS], want4[ROWS];
    for (size_t r = 0; r < ROWS; r++) {
        p8[r] = rows8[r];
        p4[r] = rows4[r];
        int64_t a = 0, b = 0;
        for (size_t j = 0; j < DPAD; j++) {
            a += (int64_t)w8[j] * rows8[r][j];
            size_t byte = (j / 64) * 32 + j % 32;
            b += (int64_t)w4[j] * ((rows4[r][byte] >> ((j % 64) >= 32 ? 4 : 0)) & 15);
        }
        want8[r] = (int32_t)a;
        want4[r] = (int32_t)b;
    }
    knn_isa levels[] = {KNN_ISA_SCALAR, KNN_ISA_AVX2, KNN_ISA_AVX512};
    for (size_t lv = 0; lv < 3; lv++) {
        const knn_kernels *kern = knn_kernels_for(levels[lv]);
        if (kern == NULL) continue;
        for (size_t n = 1; n <= ROWS; n++) {
            int32_t got[ROWS];
            kern->sq8_dot_ptrs(w8, p8, n, DPAD, got);
            CHECK(memcmp(got, want8, n * sizeof *got) == 0, "%s sq8 dot of %zu rows", kern->name, n);
            kern->sq4_dot_ptrs(w4, p4, n, DPAD, got);
            CHECK(memcmp(got, want4, n * sizeof *got) == 0, "%s sq4 dot of %zu rows", kern->name, n);
        }
    }
}

/* A coded graph (quantization 'sq8' / 'sq4'): answers against brute force (exact distances through the
 * re-rank), deletes, windows under every plan, allow-lists, optimize, the re-rank knob. */
static void test_graph_quant(void) {
    const size_t n = 1200, d = 20, k = 8, nq = 4;
    float *X = malloc(n * d * sizeof *X), *Q = malloc(nq * d * sizeof *Q);
    int64_t *ids = malloc(n * sizeof *ids);
    double *labels = malloc(n * sizeof *labels);
    unsigned char *live = malloc(n);
    for (size_t i = 0; i < n * d; i++) X[i] = frand();
    for (size_t i = 0; i < nq * d; i++) Q[i] = frand();
    for (size_t i = 0; i < n; i++) { ids[i] = (int64_t)i; labels[i] = (double)(i % 100); live[i] = 1; }
    const char *kinds[] = {"sq8", "sq4"};
    for (size_t kind = 0; kind < 2; kind++) {
        knn_graph *g = NULL;
        OK(knn_graph_new(d, "l2", 8, 64, 64, 7, &g, EB));
        OK(knn_graph_storage(g, kinds[kind], NULL, EB));
        CHECK(strcmp(knn_graph_quantization(g), kinds[kind]) == 0, "quantization %s", knn_graph_quantization(g));
        OK(knn_graph_add_rows(g, X, ids, labels, n / 2, 2, EB));
        OK(knn_graph_add_rows(g, X + (n / 2) * d, ids + n / 2, labels + n / 2, n - n / 2, 1, EB)); /* clamps */
        char eb[ERR];
        CHECK(knn_graph_storage(g, "sq4", NULL, eb, ERR) != 0, "storage changed after rows");
        CHECK(knn_graph_disk_bytes(g) >= n * d * sizeof(float), "disk bytes %zu", knn_graph_disk_bytes(g));
        int64_t oid[8 * 4];
        float od[8 * 4];
        size_t found[4];
        OK(knn_graph_query_rerank(g, Q, nq, k, n, 0, 0, 0, 0, 1, oid, od, found, EB)); /* ef = n: exact */
        for (size_t q = 0; q < nq; q++) {
            float kth = kth_ref(X, live, n, d, Q + q * d, k);
            CHECK(found[q] == k && fabsf(od[q * k + k - 1] - kth) <= 1e-4f * (1 + kth), "%s k-th %g vs %g", kinds[kind],
                  od[q * k + k - 1], kth);
            for (size_t j = 0; j < k; j++) {
                float want = l2(X + oid[q * k + j] * d, Q + q * d, d);
                CHECK(fabsf(od[q * k + j] - want) <= 1e-4f * (1 + want), "%s re-ranked distance", kinds[kind]);
            }
        }
        OK(knn_graph_query_rerank(g, Q, nq, k, 16, 3, 0, 0, 0, 1, oid, od, found, EB)); /* rerank < k: raised */
        for (size_t q = 0; q < nq; q++) CHECK(found[q] == k, "%s shallow re-rank found %zu", kinds[kind], found[q]);
        /* bytes: codes and links come back without float rows; searches wait for them, then answer alike */
        uint8_t *raw = NULL, *again = NULL;
        size_t len = 0, len2 = 0, taken = 0;
        OK(knn_graph_to_bytes(g, &raw, &len, EB));
        knn_graph *h = NULL;
        OK(knn_graph_from_bytes_at(raw, len, NULL, &h, EB));
        CHECK(knn_graph_missing_vectors(h) == n, "%s missing %zu", kinds[kind], knn_graph_missing_vectors(h));
        int64_t hid[8 * 4];
        float hd[8 * 4];
        size_t hfound[4];
        CHECK(knn_graph_query(h, Q, nq, k, 16, 1, hid, hd, hfound, eb, ERR) != 0 && strstr(eb, "float rows") != NULL,
              "%s search before restore: %s", kinds[kind], eb);
        OK(knn_graph_fill_vectors(h, X, ids, n, &taken, EB));
        CHECK(taken == n && knn_graph_missing_vectors(h) == 0, "%s restored %zu", kinds[kind], taken);
        OK(knn_graph_query_rerank(g, Q, nq, k, 16, 0, 0, 0, 0, 1, oid, od, found, EB));
        OK(knn_graph_query_rerank(h, Q, nq, k, 16, 0, 0, 0, 0, 1, hid, hd, hfound, EB));
        CHECK(memcmp(oid, hid, sizeof oid) == 0 && memcmp(od, hd, sizeof od) == 0, "%s restored answers", kinds[kind]);
        OK(knn_graph_to_bytes(h, &again, &len2, EB));
        CHECK(len2 == len && memcmp(raw, again, len) == 0, "%s bytes differ after a restore", kinds[kind]);
        knn_bytes_free(again);
        knn_graph_destroy(h);
        for (size_t t = 0; t < 400; t++) { /* damaged code sections: errors, never a crash */
            size_t at = 96 + (size_t)((frand() + 1.0f) * 0.5f * (float)(len - 104));
            raw[at < len - 8 ? at : len - 9] ^= (uint8_t)(1u << (t % 8));
            patch_checksum(raw, len);
            h = NULL;
            if (knn_graph_from_bytes_at(raw, len, NULL, &h, eb, ERR) == 0) {
                CHECK(knn_graph_query(h, Q, 1, k, 16, 1, hid, hd, hfound, eb, ERR) != 0 || knn_graph_count(h) == 0,
                      "%s damaged bytes searched without float rows", kinds[kind]);
                knn_graph_destroy(h);
            }
        }
        knn_bytes_free(raw);
        int64_t del[300];
        size_t nd = 0, removed;
        for (size_t i = 0; i < n; i += 4) { del[nd++] = (int64_t)i; live[i] = 0; }
        OK(knn_graph_remove(g, del, nd, &removed, EB));
        for (int plan = -1; plan <= 4; plan++) {
            if (plan == 2) continue;
            knn_graph_force_window_plan(g, plan);
            OK(knn_graph_query_rerank(g, Q, nq, k, 32, 0, 1, 10, 19, 1, oid, od, found, EB));
            for (size_t q = 0; q < nq; q++) {
                CHECK(found[q] == k, "%s plan %d found %zu", kinds[kind], plan, found[q]);
                for (size_t j = 0; j < found[q]; j++) {
                    int64_t id = oid[q * k + j];
                    CHECK(id >= 0 && live[id] && labels[id] >= 10 && labels[id] <= 19, "%s plan %d id %lld", kinds[kind],
                          plan, (long long)id);
                    if (id >= 0) {
                        float want = l2(X + id * d, Q + q * d, d);
                        CHECK(fabsf(od[q * k + j] - want) <= 1e-4f * (1 + want), "%s plan %d distance", kinds[kind], plan);
                    }
                }
            }
        }
        knn_graph_force_window_plan(g, -1);
        int64_t allow[100];
        for (size_t i = 0; i < 100; i++) allow[i] = (int64_t)(i * 7 + 1);
        int plans[4];
        OK(knn_graph_query_among(g, Q, nq, k, 32, allow, 100, 1, oid, od, found, plans, NULL, EB));
        for (size_t q = 0; q < nq; q++) {
            CHECK(found[q] == k, "%s among found %zu", kinds[kind], found[q]);
            for (size_t j = 0; j < found[q]; j++) CHECK(oid[q * k + j] % 7 == 1 && live[oid[q * k + j]], "%s among id", kinds[kind]);
        }
        OK(knn_graph_rebuild(g, 1, EB));
        CHECK(knn_graph_tombstones(g) == 0 && knn_graph_count(g) == n - nd, "%s optimize", kinds[kind]);
        OK(knn_graph_query_rerank(g, Q, nq, k, n, 0, 0, 0, 0, 1, oid, od, found, EB));
        for (size_t q = 0; q < nq; q++) {
            float kth = kth_ref(X, live, n, d, Q + q * d, k);
            CHECK(fabsf(od[q * k + k - 1] - kth) <= 1e-4f * (1 + kth), "%s optimized k-th %g vs %g", kinds[kind],
                  od[q * k + k - 1], kth);
        }
        for (size_t i = 0; i < n; i++) live[i] = 1;
        knn_graph_destroy(g);
    }
    free(X);
    free(Q);
    free(ids);
    free(labels);
    free(live);
}

static void test_code_dist_kernel(void) {
    enum { NPAIRS = 21, B = KNN_CODE_BLOCK };
    static uint8_t block[NPAIRS * 2 * B];
    uint8_t cq[2 * NPAIRS];
    for (size_t i = 0; i < sizeof block; i++) block[i] = (uint8_t)((frand() + 1.0f) * 127.5f);
    for (size_t j = 0; j < 2 * NPAIRS; j++) cq[j] = j % 7 == 0 ? 255 : (uint8_t)((frand() + 1.0f) * 127.5f);
    uint32_t want[B];
    for (size_t r = 0; r < B; r++) {
        uint32_t sum = 0;
        for (size_t j = 0; j < 2 * NPAIRS; j++) {
            int32_t diff = (int32_t)block[(j / 2) * 2 * B + 2 * r + j % 2] - (int32_t)cq[j];
            sum += (uint32_t)(diff * diff);
        }
        want[r] = sum;
    }
    knn_isa levels[] = {KNN_ISA_SCALAR, KNN_ISA_AVX2, KNN_ISA_AVX512};
    for (size_t lv = 0; lv < 3; lv++) {
        const knn_kernels *kern = knn_kernels_for(levels[lv]);
        if (kern == NULL) continue;
        uint32_t cuts[] = {0, want[5], want[5] + 1, want[40], 1u << 30, INT32_MAX};
        for (size_t c = 0; c < sizeof cuts / sizeof *cuts; c++) {
            uint32_t got[B];
            uint64_t mask = kern->u8_dist_block(cq, block, NPAIRS, cuts[c], got);
            for (size_t r = 0; r < B; r++) {
                CHECK(got[r] == want[r], "%s: code distance of row %zu: %u, want %u", kern->name, r, got[r], want[r]);
                CHECK(((mask >> r) & 1) == (want[r] < cuts[c]), "%s: mask bit %zu wrong at cut %u", kern->name, r,
                      cuts[c]);
            }
        }
    }
}

/* The row selector: each part alone, their conjunction, the estimated share, and the gather. */
static int odd_rows(const void *ctx, size_t row) {
    (void)ctx;
    return (int)(row % 2);
}

static const float *sel_row(const void *ctx, size_t row) { return (const float *)ctx + row * 2; }

static void test_selector(void) {
    enum { N = 130 };
    uint8_t dead[N] = {0};
    double labels[N];
    uint64_t allow[3] = {0};
    for (size_t i = 0; i < N; i++) labels[i] = (double)i;
    labels[7] = NAN;
    dead[9] = 1;
    for (size_t i = 0; i < N; i += 3) allow[i / 64] |= (uint64_t)1 << (i % 64);
    knn_selector all = knn_selector_all();
    CHECK(knn_selector_admits(&all, 129) && knn_selector_admits(NULL, 0) && knn_selector_fraction(&all) == 1.0,
          "empty selector");
    knn_selector s = knn_selector_all();
    knn_selector_live(&s, dead, 1.0);
    knn_selector_label(&s, labels, 5.0, 100.0, 0.5);
    knn_selector_allow(&s, allow, N);
    knn_selector_predicate(&s, odd_rows, NULL, 0.5);
    size_t admitted = 0;
    for (size_t i = 0; i < N; i++) {
        int want = !dead[i] && !isnan(labels[i]) && labels[i] >= 5 && labels[i] <= 100 && i % 3 == 0 && i % 2 == 1;
        CHECK(knn_selector_admits(&s, i) == want, "selector row %zu", i);
        admitted += (size_t)want;
    }
    CHECK(admitted == 15, "selector admitted %zu", admitted);
    knn_selector only_allow = knn_selector_all();
    knn_selector_allow(&only_allow, allow, N);
    CHECK(knn_selector_admits(&only_allow, 129) && !knn_selector_admits(&only_allow, N + 5),
          "allow-list bounds");
    double share = 0.5 * (44.0 / N) * 0.5; /* label, allow-list (44 of 130 bits), predicate */
    CHECK(fabs(knn_selector_fraction(&s) - share) < 1e-12, "selector share %g vs %g", knn_selector_fraction(&s), share);
    float rows[N * 2];
    int64_t ids[N];
    for (size_t i = 0; i < N; i++) {
        rows[2 * i] = rows[2 * i + 1] = (float)i;
        ids[i] = (int64_t)i + 1000;
    }
    int64_t *gi = NULL;
    float *gv = NULL;
    size_t gn = 0;
    knn_error err;
    CHECK(knn_selector_gather(&s, N, 2, ids, sel_row, rows, &gi, &gv, &gn, &err) == KNN_OK && gn == admitted,
          "gather %zu rows", gn);
    for (size_t j = 0; j < gn; j++) CHECK(gv[2 * j] == (float)(gi[j] - 1000), "gathered row %zu", j);
    free(gi);
    free(gv);
}

/* ---- attribute columns (attrs/knn_attrs.h) ---- */

static uint64_t urand(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

/* Two stores hold the same columns, types, dictionaries (as strings) and values on rows [0, rows). */
static int attrs_same(const knn_attrs *x, const knn_attrs *y, size_t rows) {
    if (x->ncols != y->ncols) return 0;
    for (size_t c = 0; c < x->ncols; c++) {
        const knn_attr_col *a = &x->cols[c], *b = &y->cols[c];
        if (strcmp(a->name, b->name) != 0 || a->type != b->type) return 0;
        for (size_t r = 0; r < rows; r++) {
            int va = r < x->rows && knn_attrs_is_valid(a, r), vb = r < y->rows && knn_attrs_is_valid(b, r);
            if (va != vb) return 0;
            if (!va) continue;
            switch (knn_attr_physical(a->type)) {
            case 'i': if (a->i64[r] != b->i64[r]) return 0; break;
            case 'f': if (memcmp(&a->f64[r], &b->f64[r], 8) != 0) return 0; break;
            default:
                if (a->dict.lens[a->code[r]] != b->dict.lens[b->code[r]] ||
                    memcmp(a->dict.strs[a->code[r]], b->dict.strs[b->code[r]], a->dict.lens[a->code[r]]) != 0)
                    return 0;
            }
        }
    }
    return 1;
}

/* The option tokenizer shared by every option string (base/knn_options.h). */
/* The symmetric eigensolver of the k-DPP (sample/symeig.c): A V = V diag(w), V^T V = I. */
static void test_symeig(void) {
    const size_t sizes[] = {1, 2, 3, 17, 64};
    for (size_t t = 0; t < sizeof sizes / sizeof sizes[0]; t++) {
        for (int kind = 0; kind < 3; kind++) { /* random, diagonal, zero */
            size_t m = sizes[t];
            double *A = calloc(m * m, sizeof *A), *B = calloc(m * m, sizeof *B), *w = calloc(m, sizeof *w),
                   *V = calloc(m * m, sizeof *V);
            for (size_t i = 0; i < m; i++) {
                for (size_t j = i; j < m; j++) {
                    double x = kind == 0 ? (double)(urand() % 2001) / 1000.0 - 1.0 : kind == 1 && i == j ? (double)(i % 5) : 0;
                    A[i * m + j] = A[j * m + i] = x;
                }
            }
            memcpy(B, A, m * m * sizeof *A);
            knn_error err;
            CHECK(knn_symeig(B, m, w, V, &err) == KNN_OK, "symeig %zu: %s", m, err.msg);
            double worst = 0, orth = 0;
            for (size_t i = 0; i < m; i++) {
                for (size_t j = 0; j < m; j++) {
                    double av = 0, vv = 0;
                    for (size_t a = 0; a < m; a++) {
                        av += A[i * m + a] * V[a * m + j];
                        vv += V[a * m + i] * V[a * m + j];
                    }
                    double r = fabs(av - V[i * m + j] * w[j]);
                    if (r > worst) worst = r;
                    double o = fabs(vv - (i == j));
                    if (o > orth) orth = o;
                }
            }
            CHECK(worst < 1e-9 && orth < 1e-9, "symeig m=%zu kind %d: residual %g, orthogonality %g", m, kind, worst, orth);
            free(A);
            free(B);
            free(w);
            free(V);
        }
    }
}

static void test_options(void) {
    const char *text = " a = 1 ,, B=two words ,flag, =x, levels=100/ 10 /,  ";
    size_t at = 0, len = strlen(text), n = 0;
    knn_span item, k, v;
    char buf[32];
    const char *want_k[] = {"a", "b", "", "", "levels"}, *want_v[] = {"1", "two words", "", "x", "100/ 10 /"};
    int want_kv[] = {1, 1, 0, 1, 1};
    while (knn_option_next(text, len, ',', &at, &item)) {
        CHECK(n < 5, "more items than written");
        if (n >= 5) break;
        int kv = knn_option_split(item, &k, &v);
        CHECK(kv == want_kv[n], "item %zu: split %d", n, kv);
        if (kv) {
            CHECK(knn_span_copy(k, buf, sizeof buf, 1) && strcmp(buf, want_k[n]) == 0, "item %zu key '%s'", n, buf);
            CHECK(knn_span_copy(v, buf, sizeof buf, 0) && strcmp(buf, want_v[n]) == 0, "item %zu value '%s'", n, buf);
        } else {
            CHECK(knn_span_copy(item, buf, sizeof buf, 0) && strcmp(buf, "flag") == 0, "item %zu '%s'", n, buf);
        }
        n++;
    }
    CHECK(n == 5, "%zu items, want 5", n);
    /* a sub-list, and a span that does not fit */
    const char *lv = "100/ 10 /";
    size_t nl = 0;
    at = 0;
    while (knn_option_next(lv, strlen(lv), '/', &at, &item)) nl++;
    CHECK(nl == 2, "levels: %zu parts", nl);
    knn_span big = {text, len};
    CHECK(!knn_span_copy(big, buf, 8, 0), "an oversized span was copied");
    CHECK(!knn_option_next("", 0, ',', &(size_t){0}, &item), "an item in empty text");
}

static void test_attrs(void) {
    knn_error err;
    knn_attrs a;
    knn_attrs_init(&a);
    size_t cb, cd, cs, cz;
    CHECK(knn_attrs_column(&a, "Price", 5, KNN_ATTR_DOUBLE, &cd, &err) == KNN_OK, "column: %s", err.msg);
    CHECK(knn_attrs_column(&a, "n", 1, KNN_ATTR_BIGINT, &cb, &err) == KNN_OK, "column: %s", err.msg);
    CHECK(knn_attrs_grow(&a, 200, &err) == KNN_OK && a.rows == 200 && a.cap % 64 == 0, "grow: %s", err.msg);
    CHECK(knn_attrs_column(&a, "cat", 3, KNN_ATTR_VARCHAR, &cs, &err) == KNN_OK, "column: %s", err.msg);
    CHECK(knn_attrs_find(&a, "PRICE", 5) == (long)cd && knn_attrs_find(&a, "pric", 4) == -1, "find ignores case");
    CHECK(knn_attrs_column(&a, "price", 5, KNN_ATTR_DOUBLE, &cz, &err) == KNN_OK && cz == cd, "column found again");
    CHECK(knn_attrs_column(&a, "price", 5, KNN_ATTR_BIGINT, &cz, &err) == KNN_EINVAL &&
          strstr(err.msg, "is DOUBLE, not BIGINT") != NULL, "type clash: %s", err.msg);
    CHECK(knn_attrs_column(&a, "", 0, KNN_ATTR_BIGINT, &cz, &err) == KNN_EINVAL, "empty name accepted");
    char longname[80];
    memset(longname, 'x', sizeof longname);
    CHECK(knn_attrs_column(&a, longname, 65, KNN_ATTR_BIGINT, &cz, &err) == KNN_EINVAL && strstr(err.msg, "at most 64"),
          "long name: %s", err.msg);
    CHECK(knn_attrs_column(&a, "a\0b", 3, KNN_ATTR_BIGINT, &cz, &err) == KNN_EINVAL, "NUL in name accepted");
    CHECK(knn_attrs_column(&a, "t", 1, (knn_attr_type)9, &cz, &err) == KNN_EINVAL, "type 9 accepted");
    for (size_t r = 0; r < 200; r++) {
        if (r % 7) knn_attrs_set_f64(&a, cd, r, r % 11 == 0 ? NAN : (double)r / 4);
        if (r % 5) knn_attrs_set_i64(&a, cb, r, (int64_t)r - 100);
        char s[16];
        int l = snprintf(s, sizeof s, "v%zu", r % 13);
        if (r % 3) CHECK(knn_attrs_set_str(&a, cs, r, s, (size_t)l, &err) == KNN_OK, "set_str: %s", err.msg);
    }
    CHECK(a.cols[cs].dict.n == 13, "dictionary of %zu strings", a.cols[cs].dict.n);
    CHECK(knn_attr_dict_find(&a.cols[cs].dict, "v12", 3) >= 0 && knn_attr_dict_find(&a.cols[cs].dict, "v13", 3) == -1,
          "dict find");
    knn_attrs_set_null(&a, cb, 1);
    CHECK(!knn_attrs_is_valid(&a.cols[cb], 1) && knn_attrs_is_valid(&a.cols[cb], 2), "set_null");
    CHECK(knn_attrs_bytes(&a) > 200 * (8 + 8 + 4), "bytes %zu", knn_attrs_bytes(&a));
    /* a batch: new columns, a column the batch lacks becomes NULL on the rows it writes */
    int64_t flags[3] = {1, 0, 7}, days[3] = {19753, -1, 0};
    const char *names[3] = {"x", "", "v3"};
    uint32_t lens[3] = {1, 0, 2};
    uint64_t some = 0x5; /* rows 0 and 2 valid */
    knn_attr_input in[4] = {
        {.name = "flag", .name_len = 4, .type = KNN_ATTR_BOOLEAN, .i64 = flags},
        {.name = "day", .name_len = 3, .type = KNN_ATTR_DATE, .i64 = days, .valid = &some},
        {.name = "CAT", .name_len = 3, .type = KNN_ATTR_VARCHAR, .strs = names, .str_lens = lens},
        {.name = "price", .name_len = 5, .type = KNN_ATTR_DOUBLE, .f64 = NULL},
    };
    knn_attr_batch b = {in, 3};
    CHECK(knn_attrs_check(&a, &b, &err) == KNN_OK, "check: %s", err.msg);
    CHECK(knn_attrs_grow(&a, 203, &err) == KNN_OK, "grow: %s", err.msg);
    for (size_t i = 0; i < 3; i++) CHECK(knn_attrs_write(&a, &b, i, 200 + i, &err) == KNN_OK, "write: %s", err.msg);
    long cf = knn_attrs_find(&a, "flag", 4), cy = knn_attrs_find(&a, "day", 3);
    CHECK(cf >= 0 && cy >= 0 && a.ncols == 5, "batch columns added");
    CHECK(a.cols[cf].i64[202] == 1 && a.cols[cf].i64[201] == 0, "BOOLEAN written as 0/1");
    CHECK(knn_attrs_is_valid(&a.cols[cy], 200) && !knn_attrs_is_valid(&a.cols[cy], 201), "batch validity");
    CHECK(!knn_attrs_is_valid(&a.cols[cd], 200) && !knn_attrs_is_valid(&a.cols[cf], 5), "missing -> NULL");
    CHECK(a.cols[cs].dict.n == 15 && a.cols[cs].code[202] == (uint32_t)knn_attr_dict_find(&a.cols[cs].dict, "v3", 2),
          "batch strings interned");
    /* batch errors */
    knn_attr_input twice[2] = {in[0], in[0]};
    twice[1].name = "FLAG";
    knn_attr_batch bad = {twice, 2};
    CHECK(knn_attrs_check(&a, &bad, &err) == KNN_EINVAL && strstr(err.msg, "given twice"), "dup: %s", err.msg);
    knn_attr_input wrong = in[0];
    wrong.name = "cat";
    wrong.name_len = 3;
    bad = (knn_attr_batch){&wrong, 1};
    CHECK(knn_attrs_check(&a, &bad, &err) == KNN_EINVAL && strstr(err.msg, "is VARCHAR in the index but BOOLEAN"),
          "type: %s", err.msg);
    bad = (knn_attr_batch){&in[3], 1};
    CHECK(knn_attrs_check(&a, &bad, &err) == KNN_EINVAL && strstr(err.msg, "has no values"), "no values: %s", err.msg);
    wrong = in[0];
    wrong.type = (knn_attr_type)0;
    bad = (knn_attr_batch){&wrong, 1};
    CHECK(knn_attrs_check(&a, &bad, &err) == KNN_EINVAL && strstr(err.msg, "unknown type"), "type 0: %s", err.msg);
    wrong = in[0];
    wrong.name_len = 0;
    bad = (knn_attr_batch){&wrong, 1};
    CHECK(knn_attrs_check(&a, &bad, &err) == KNN_EINVAL && strstr(err.msg, "empty"), "empty: %s", err.msg);
    {
        knn_attr_input many[KNN_ATTR_COLS_MAX];
        char nm[KNN_ATTR_COLS_MAX][8];
        for (int i = 0; i < KNN_ATTR_COLS_MAX; i++) {
            many[i] = in[0];
            many[i].name = nm[i];
            many[i].name_len = (size_t)snprintf(nm[i], sizeof nm[i], "m%d", i);
        }
        bad = (knn_attr_batch){many, KNN_ATTR_COLS_MAX};
        CHECK(knn_attrs_check(&a, &bad, &err) == KNN_EINVAL && strstr(err.msg, "at most 64"), "too many: %s", err.msg);
    }
    /* save -> load (with extra NULL rows) -> equal; save again -> identical bytes */
    uint8_t *bytes = NULL, *again = NULL;
    size_t blen = 0, alen = 0, used = 0;
    CHECK(knn_attrs_save(&a, a.rows + 70, &bytes, &blen, &err) == KNN_OK, "save: %s", err.msg);
    CHECK(knn_attrs_save(&a, a.rows - 1, &again, &alen, &err) == KNN_EINVAL && again == NULL, "short save accepted");
    knn_attrs l;
    knn_attrs_init(&l);
    CHECK(knn_attrs_load(&l, bytes, blen, a.rows + 70, &used, &err) == KNN_OK && used == blen, "load: %s", err.msg);
    CHECK(l.rows == a.rows + 70 && attrs_same(&a, &l, a.rows + 70), "loaded store differs");
    CHECK(knn_attrs_save(&l, l.rows, &again, &alen, &err) == KNN_OK && alen == blen && memcmp(again, bytes, blen) == 0,
          "re-saved bytes differ");
    free(again);
    CHECK(knn_attrs_load(&l, bytes, blen, a.rows + 70, &used, &err) == KNN_ESTATE, "load into a full store");
    knn_attrs_free(&l);
    /* every truncation fails with KNN_EDATA and leaves the store empty */
    size_t accepted = 0;
    for (size_t cut = 0; cut < blen; cut += (cut < 400 ? 1 : 97)) {
        knn_status s = knn_attrs_load(&l, bytes, cut, a.rows + 70, &used, &err);
        if (s == KNN_OK) accepted++;
        CHECK(s == KNN_OK || (s == KNN_EDATA && l.ncols == 0 && l.cols == NULL && strstr(err.msg, "corrupt")),
              "truncated load: %d %s", (int)s, err.msg);
        knn_attrs_free(&l);
    }
    CHECK(accepted == 0, "%zu truncated buffers loaded", accepted);
    /* mutations: each either loads (then saves back to a buffer that loads) or fails with KNN_EDATA */
    uint8_t *mut = malloc(blen);
    size_t rejected = 0;
    for (int t = 0; t < 3000; t++) {
        memcpy(mut, bytes, blen);
        size_t at = t < 600 ? (size_t)t : (size_t)(urand() % blen);
        mut[at] ^= (uint8_t)(1u << (urand() % 8));
        if (t % 3 == 0) mut[urand() % blen] = (uint8_t)urand();
        knn_status s = knn_attrs_load(&l, mut, blen, a.rows + 70, &used, &err);
        if (s == KNN_OK) {
            CHECK(knn_attrs_save(&l, l.rows, &again, &alen, &err) == KNN_OK, "save of a loaded store");
            knn_attrs m;
            knn_attrs_init(&m);
            CHECK(knn_attrs_load(&m, again, alen, l.rows, &used, &err) == KNN_OK && attrs_same(&l, &m, l.rows),
                  "reload of a mutated store");
            knn_attrs_free(&m);
            free(again);
        } else {
            rejected++;
            CHECK(s == KNN_EDATA && l.ncols == 0 && err.msg[0], "mutated load: %d %s", (int)s, err.msg);
        }
        knn_attrs_free(&l);
    }
    CHECK(rejected > 100, "only %zu mutations rejected", rejected);
    free(mut);
    /* specific corruptions */
    {
        uint8_t hdr[64];
        size_t n = 0;
        memset(hdr, 0, sizeof hdr);
        hdr[0] = 65; /* 65 columns */
        CHECK(knn_attrs_load(&l, hdr, 4, 0, &used, &err) == KNN_EDATA && strstr(err.msg, "65 columns"), "%s", err.msg);
        hdr[0] = 1; hdr[4] = 6; hdr[8] = 1; hdr[12] = 's'; /* VARCHAR "s", 2 strings "a", "a" */
        hdr[13] = 2; n = 21;
        hdr[n] = 1; hdr[n + 4] = 'a'; hdr[n + 5] = 1; hdr[n + 9] = 'a'; n += 10;
        CHECK(knn_attrs_load(&l, hdr, n + 8 + 4, 1, &used, &err) == KNN_EDATA && strstr(err.msg, "repeats"), "%s", err.msg);
        hdr[n - 1] = 'b'; /* distinct now; row 0 valid with code 5 */
        hdr[n] = 1; hdr[n + 8] = 5;
        CHECK(knn_attrs_load(&l, hdr, n + 12, 1, &used, &err) == KNN_EDATA && strstr(err.msg, "code 5"), "%s", err.msg);
        hdr[n + 8] = 1;
        CHECK(knn_attrs_load(&l, hdr, n + 12, 1, &used, &err) == KNN_OK && used == n + 12 &&
              strcmp(l.cols[0].dict.strs[l.cols[0].code[0]], "b") == 0, "hand-made load: %s", err.msg);
        knn_attrs_free(&l);
        hdr[n] = 3; /* a validity bit past the last row */
        CHECK(knn_attrs_load(&l, hdr, n + 12, 1, &used, &err) == KNN_EDATA && strstr(err.msg, "past row"), "%s", err.msg);
        hdr[4] = 3; /* BOOLEAN with a dictionary */
        CHECK(knn_attrs_load(&l, hdr, n + 12, 1, &used, &err) == KNN_EDATA && strstr(err.msg, "dictionary"), "%s", err.msg);
        hdr[4] = 7;
        CHECK(knn_attrs_load(&l, hdr, n + 12, 1, &used, &err) == KNN_EDATA && strstr(err.msg, "type code 7"), "%s", err.msg);
        hdr[4] = 6; hdr[8] = 0;
        CHECK(knn_attrs_load(&l, hdr, n + 12, 1, &used, &err) == KNN_EDATA && strstr(err.msg, "name length"), "%s", err.msg);
        hdr[8] = 1; hdr[13] = 0xff; hdr[14] = 0xff; hdr[20] = 0xff; /* a huge dictionary size */
        CHECK(knn_attrs_load(&l, hdr, n + 12, 1, &used, &err) == KNN_EDATA && strstr(err.msg, "exceeds"), "%s", err.msg);
        CHECK(knn_attrs_load(&l, hdr, n + 12, (size_t)1 << 40, &used, &err) == KNN_EDATA && strstr(err.msg, "cannot fit"),
              "%s", err.msg);
        CHECK(l.ncols == 0 && l.cols == NULL, "store not empty after failures");
    }
    /* compact: keep rows r % 3 != 0, compare against the saved copy */
    knn_attrs before;
    knn_attrs_init(&before);
    CHECK(knn_attrs_load(&before, bytes, blen, a.rows + 70, &used, &err) == KNN_OK, "load: %s", err.msg);
    uint8_t *drop = calloc(a.rows, 1);
    size_t keep = 0;
    for (size_t r = 0; r < a.rows; r++) {
        drop[r] = r % 3 == 0;
        keep += !drop[r];
    }
    size_t old_rows = a.rows;
    CHECK(knn_attrs_compact(&a, drop, &err) == KNN_OK && a.rows == keep, "compact rows %zu", a.rows);
    int same = 1;
    for (size_t c = 0; c < a.ncols; c++) {
        const knn_attr_col *x = &a.cols[c], *y = &before.cols[c];
        char k = knn_attr_physical(x->type);
        for (size_t r = 0, j = 0; r < old_rows; r++) {
            if (drop[r]) continue;
            int v = knn_attrs_is_valid(y, r);
            if (knn_attrs_is_valid(x, j) != v) same = 0;
            if (v && k == 'i' && x->i64[j] != y->i64[r]) same = 0;
            if (v && k == 'f' && memcmp(&x->f64[j], &y->f64[r], 8) != 0) same = 0;
            if (v && k == 's' && strcmp(x->dict.strs[x->code[j]], y->dict.strs[y->code[r]]) != 0) same = 0;
            j++;
        }
        for (size_t r = keep; r < old_rows; r++) if (knn_attrs_is_valid(x, r)) same = 0;
    }
    CHECK(same, "compacted rows differ");
    CHECK(knn_attrs_grow(&a, keep + 5, &err) == KNN_OK && !knn_attrs_is_valid(&a.cols[cb], keep + 2), "regrown row valid");
    /* truncate (an insert rolled back): the rows given up come back NULL */
    knn_attrs_truncate(&a, 10);
    CHECK(a.rows == 10 && knn_attrs_grow(&a, 80, &err) == KNN_OK, "truncate to 10 rows: %zu", a.rows);
    for (size_t c = 0; c < a.ncols; c++)
        for (size_t r = 10; r < 80; r++) CHECK(!knn_attrs_is_valid(&a.cols[c], r), "truncated row %zu of column %zu valid", r, c);
    free(drop);
    knn_attrs_free(&before);
    free(bytes);
    /* an empty store saves and loads */
    knn_attrs e;
    knn_attrs_init(&e);
    CHECK(knn_attrs_save(&e, 10, &bytes, &blen, &err) == KNN_OK && blen == 4, "empty save %zu", blen);
    CHECK(knn_attrs_load(&l, bytes, blen, 10, &used, &err) == KNN_OK && l.rows == 10 && l.ncols == 0, "empty load");
    knn_attrs_free(&l);
    free(bytes);
    knn_attrs_free(&a);
}

/* ---- filter predicates (attrs/knn_predicate.h) against a row-by-row reference ---- */

#define PR 300 /* rows of the predicate fixture */
#define PR_ORDERED 270 /* of them, the rows its sorted orders cover */
#define DAY_US 86400000000LL

/* Days since 1970-01-01 by counting (independent of the core's era arithmetic). */
static int64_t ref_days(int y, int m, int d) {
    static const int ml[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int64_t n = 0;
    for (int k = 1970; k < y; k++) n += 365 + ((k % 4 == 0 && k % 100 != 0) || k % 400 == 0);
    for (int k = 1; k < m; k++) n += ml[k - 1] + (k == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0));
    return n + d - 1;
}

/* The fixture: per-row values kept here too, as plain arrays, for the reference. */
typedef struct pfix {
    knn_attrs a;
    int nul[6][PR]; /* price n flag d ts cat */
    double price[PR];
    int64_t n[PR], flag[PR], d[PR], ts[PR];
    const char *cat[PR];
} pfix;

static const char *const CATS[] = {"a", "abc", "ab", "b", "It's", "x_y", "", "\xc3\xa9", "aXc", "abcabc", "zz"};
static const int64_t NVALS[] = {-5, -1, 0, 1, 2, 3, 7, INT64_MAX, INT64_MIN, 9007199254740993LL, 9007199254740992LL};

static void pfix_build(pfix *f) {
    knn_error err;
    knn_attrs_init(&f->a);
    size_t c;
    static const char *const names[6] = {"price", "n", "flag", "d", "ts", "cat"};
    static const knn_attr_type types[6] = {KNN_ATTR_DOUBLE, KNN_ATTR_BIGINT, KNN_ATTR_BOOLEAN, KNN_ATTR_DATE,
                                           KNN_ATTR_TIMESTAMP, KNN_ATTR_VARCHAR};
    for (int k = 0; k < 6; k++) CHECK(knn_attrs_column(&f->a, names[k], strlen(names[k]), types[k], &c, &err) == KNN_OK, "%s", err.msg);
    /* rows [0, PR_ORDERED) are written, the sorted orders built over them, then the rest appended, so
     * the orders' evaluation also meets an unordered tail */
    f->a.order_min_rows = 1;
    CHECK(knn_attrs_grow(&f->a, PR_ORDERED, &err) == KNN_OK, "%s", err.msg);
    static const double PV[] = {1.5, 2, 10, -1, 0.0, -0.0, 2.5, 1e300, -3.25, 1e1};
    int64_t d0 = ref_days(2024, 1, 28);
    for (size_t r = 0; r < PR; r++) {
        if (r == PR_ORDERED) {
            knn_attrs_order_refresh(&f->a);
            for (int k = 0; k < 6; k++) CHECK(f->a.cols[k].order && f->a.cols[k].ordered == PR_ORDERED, "no order built");
            CHECK(knn_attrs_grow(&f->a, PR, &err) == KNN_OK, "%s", err.msg);
        }
        for (int k = 0; k < 6; k++) f->nul[k][r] = urand() % 5 == 0;
        f->price[r] = urand() % 9 == 0 ? (urand() & 1 ? NAN : -NAN) : PV[urand() % 10]; /* NaN of either sign */
        f->n[r] = NVALS[urand() % 11];
        f->flag[r] = (int64_t)(urand() % 2);
        f->d[r] = d0 + (int64_t)(urand() % 8);
        f->ts[r] = (d0 + (int64_t)(urand() % 8)) * DAY_US + (urand() % 3 == 0 ? 0 : (int64_t)(urand() % 4) * 21600000000LL + 500000);
        f->cat[r] = CATS[urand() % 11];
        if (!f->nul[0][r]) knn_attrs_set_f64(&f->a, 0, r, f->price[r]);
        if (!f->nul[1][r]) knn_attrs_set_i64(&f->a, 1, r, f->n[r]);
        if (!f->nul[2][r]) knn_attrs_set_i64(&f->a, 2, r, f->flag[r]);
        if (!f->nul[3][r]) knn_attrs_set_i64(&f->a, 3, r, f->d[r]);
        if (!f->nul[4][r]) knn_attrs_set_i64(&f->a, 4, r, f->ts[r]);
        if (!f->nul[5][r]) knn_attrs_set_str(&f->a, 5, r, f->cat[r], strlen(f->cat[r]), &err);
    }
}

/* A literal for the generator: its text and its value as the reference reads it. */
typedef struct rlit {
    const char *text;
    int kind; /* 0 NULL, 1 int, 2 double, 3 string, 4 bool, 5 date (days), 6 timestamp (us) */
    int64_t i;
    double d;
    const char *s;
} rlit;

static int ref_sign_d(double a, double b) { /* DuckDB order: NaN == NaN, NaN above everything */
    if (isnan(a) || isnan(b)) return isnan(a) && isnan(b) ? 0 : isnan(a) ? 1 : -1;
    return a < b ? -1 : a > b ? 1 : 0;
}
static int ref_sign_i(int64_t a, int64_t b) { return a < b ? -1 : a > b ? 1 : 0; }
static int ref_holds(int op, int sg) {
    return op == 0 ? sg == 0 : op == 1 ? sg != 0 : op == 2 ? sg < 0 : op == 3 ? sg <= 0 : op == 4 ? sg > 0 : sg >= 0;
}

/* row r of column col compared with literal l: the sign of (value - literal); col and literal not NULL. */
static int ref_sign(const pfix *f, int col, size_t r, const rlit *l) {
    switch (col) {
    case 0: return ref_sign_d(f->price[r], l->kind == 1 ? (double)l->i : l->d);
    case 1: return l->kind == 1 ? ref_sign_i(f->n[r], l->i) : ref_sign_d((double)f->n[r], l->d);
    case 2: return ref_sign_i(f->flag[r], l->i);
    case 3: /* a date against a timestamp: the date's midnight */
        return l->kind == 6 ? ref_sign_i(f->d[r] * DAY_US, l->i) : ref_sign_i(f->d[r], l->i);
    case 4: return ref_sign_i(f->ts[r], l->kind == 5 ? l->i * DAY_US : l->i);
    default: {
        int c = strcmp(f->cat[r], l->s); /* no NUL bytes in the fixture's strings */
        return c < 0 ? -1 : c > 0;
    }
    }
}

/* LIKE by recursion over code points (the core uses a backtracking loop). */
static int ref_like(const char *s, const char *p) {
    if (*p == '\0') return *s == '\0';
    if (*p == '%') return ref_like(s, p + 1) || (*s && ref_like(s + 1, p));
    if (*s == '\0') return 0;
    if (*p == '_') {
        size_t k = ((unsigned char)*s & 0xE0) == 0xC0 ? 2 : 1;
        return ref_like(s + k, p + 1);
    }
    return *p == *s && ref_like(s + 1, p + 1);
}

static const char *const OPS[] = {"=", "<>", "<", "<=", ">", ">="};
static const char *const OPS2[] = {"==", "!=", "<", "<=", ">", ">="};
static const char *const COLS[] = {"price", "n", "flag", "d", "ts", "cat"};

static const rlit *pick_lit(int col) {
    static rlit L[6][10];
    static int init;
    if (!init) {
        init = 1;
        int64_t j31 = ref_days(2024, 1, 31), f1 = ref_days(2024, 2, 1);
        rlit p[] = {{"NULL", 0, 0, 0, 0}, {"2", 1, 2, 0, 0}, {"-1", 1, -1, 0, 0}, {"1.5", 2, 0, 1.5, 0},
                    {"-0.0", 2, 0, -0.0, 0}, {"1e1", 2, 0, 10, 0}, {"10", 1, 10, 0, 0}, {"2.25", 2, 0, 2.25, 0},
                    {"-3.25", 2, 0, -3.25, 0}, {"0", 1, 0, 0, 0}};
        rlit n[] = {{"NULL", 0, 0, 0, 0}, {"3", 1, 3, 0, 0}, {"-5", 1, -5, 0, 0}, {"9223372036854775807", 1, INT64_MAX, 0, 0},
                    {"-9223372036854775808", 1, INT64_MIN, 0, 0}, {"2.5", 2, 0, 2.5, 0}, {"9007199254740993", 1, 9007199254740993LL, 0, 0},
                    {"1e0", 2, 0, 1, 0}, {"0", 1, 0, 0, 0}, {"9223372036854775808", 2, 0, 9223372036854775808.0, 0}};
        rlit b[] = {{"TRUE", 4, 1, 0, 0}, {"FALSE", 4, 0, 0, 0}, {"NULL", 0, 0, 0, 0}, {"true", 4, 1, 0, 0},
                    {"False", 4, 0, 0, 0}, {"TRUE", 4, 1, 0, 0}, {"FALSE", 4, 0, 0, 0}, {"NULL", 0, 0, 0, 0},
                    {"TRUE", 4, 1, 0, 0}, {"FALSE", 4, 0, 0, 0}};
        rlit d[] = {{"NULL", 0, 0, 0, 0}, {"DATE '2024-01-31'", 5, j31, 0, 0}, {"'2024-02-01'", 5, f1, 0, 0},
                    {"TIMESTAMP '2024-01-31 12:00:00.5'", 6, j31 * DAY_US + 43200500000LL, 0, 0},
                    {"TIMESTAMP '2024-02-01 00:00:00'", 6, f1 * DAY_US, 0, 0}, {"date '2024-1-29'", 5, j31 - 2, 0, 0},
                    {"DATE '2024-02-04'", 5, f1 + 3, 0, 0}, {"'2024-01-28'", 5, j31 - 3, 0, 0},
                    {"TIMESTAMP '2024-01-29T23:59'", 6, (j31 - 2) * DAY_US + 86340000000LL, 0, 0}, {"DATE '2024-02-02'", 5, f1 + 1, 0, 0}};
        rlit t[] = {{"NULL", 0, 0, 0, 0}, {"TIMESTAMP '2024-01-31 12:00:00.5'", 6, j31 * DAY_US + 43200500000LL, 0, 0},
                    {"DATE '2024-01-31'", 5, j31, 0, 0}, {"'2024-02-01 06:00:00.5'", 6, f1 * DAY_US + 21600500000LL, 0, 0},
                    {"'2024-02-02'", 6, (f1 + 1) * DAY_US, 0, 0}, {"TIMESTAMP '2024-01-30 18:00:00.500000'", 6, (j31 - 1) * DAY_US + 64800500000LL, 0, 0},
                    {"DATE '2024-02-03'", 5, f1 + 2, 0, 0}, {"TIMESTAMP '2024-01-28'", 6, (j31 - 3) * DAY_US, 0, 0},
                    {"'2024-01-29 12:00'", 6, (j31 - 2) * DAY_US + 43200000000LL, 0, 0}, {"DATE '2024-02-04'", 5, f1 + 3, 0, 0}};
        rlit s[] = {{"NULL", 0, 0, 0, 0}, {"'a'", 3, 0, 0, "a"}, {"'abc'", 3, 0, 0, "abc"}, {"'It''s'", 3, 0, 0, "It's"},
                    {"'zzz'", 3, 0, 0, "zzz"}, {"''", 3, 0, 0, ""}, {"'\xc3\xa9'", 3, 0, 0, "\xc3\xa9"}, {"'ab'", 3, 0, 0, "ab"},
                    {"'b'", 3, 0, 0, "b"}, {"'aXc'", 3, 0, 0, "aXc"}};
        memcpy(L[0], p, sizeof p); memcpy(L[1], n, sizeof n); memcpy(L[2], b, sizeof b);
        memcpy(L[3], d, sizeof d); memcpy(L[4], t, sizeof t); memcpy(L[5], s, sizeof s);
    }
    return &L[col][urand() % 10];
}

static int8_t ref_cmp(const pfix *f, int col, size_t r, const rlit *l, int op) {
    if (f->nul[col][r] || l->kind == 0) return 2;
    return (int8_t)ref_holds(op, ref_sign(f, col, r, l));
}
static int8_t and3(int8_t x, int8_t y) { return x == 0 || y == 0 ? 0 : x == 2 || y == 2 ? 2 : 1; }
static int8_t or3(int8_t x, int8_t y) { return x == 1 || y == 1 ? 1 : x == 2 || y == 2 ? 2 : 0; }
static int8_t not3(int8_t x) { return x == 2 ? 2 : !x; }

#define CAT(...) (at += (size_t)snprintf(buf + at, cap - at, __VA_ARGS__))

/* Writes a random leaf's text at buf+at and its per-row truth (0, 1, 2 = NULL) into res. */
static size_t gen_leaf(const pfix *f, char *buf, size_t at, size_t cap, int8_t *res) {
    int col = (int)(urand() % 6), form = (int)(urand() % 8), op = (int)(urand() % 6);
    const rlit *l1 = pick_lit(col), *l2 = pick_lit(col);
    static const char *const PATS[] = {"'a%'", "'%c'", "'a_c'", "'%'", "'_'", "'It''%'", "'%b%'", "'x_y'", "'_b%'", "''", "'%a%c%'"};
    static const char *const RAW[] = {"a%", "%c", "a_c", "%", "_", "It'%", "%b%", "x_y", "_b%", "", "%a%c%"};
    if (col == 2 && form >= 6) { /* bare BOOLEAN column */
        int neg = form == 7;
        CAT("%sflag", neg ? "NOT " : "");
        for (size_t r = 0; r < PR; r++) res[r] = f->nul[2][r] ? 2 : (int8_t)(neg ? !f->flag[r] : f->flag[r] != 0);
        return at;
    }
    if (col == 5 && form >= 6) { /* LIKE */
        int pi = (int)(urand() % 11), neg = form == 7;
        CAT("cat %sLIKE %s", neg ? "NOT " : "", PATS[pi]);
        for (size_t r = 0; r < PR; r++) res[r] = f->nul[5][r] ? 2 : (int8_t)(ref_like(f->cat[r], RAW[pi]) != neg);
        return at;
    }
    switch (form) {
    case 0: case 1:
        CAT("%s %s %s", COLS[col], (urand() & 1 ? OPS : OPS2)[op], l1->text);
        for (size_t r = 0; r < PR; r++) res[r] = ref_cmp(f, col, r, l1, op);
        break;
    case 2: { /* literal op column: flipped */
        static const int flip[] = {0, 1, 4, 5, 2, 3};
        CAT("%s %s %s", l1->text, OPS[op], COLS[col]);
        for (size_t r = 0; r < PR; r++) res[r] = ref_cmp(f, col, r, l1, flip[op]);
        break;
    }
    case 3: {
        int neg = (int)(urand() & 1);
        CAT("%s %sBETWEEN %s AND %s", COLS[col], neg ? "NOT " : "", l1->text, l2->text);
        for (size_t r = 0; r < PR; r++) {
            int8_t v = and3(ref_cmp(f, col, r, l1, 5), ref_cmp(f, col, r, l2, 3));
            res[r] = neg ? not3(v) : v;
        }
        break;
    }
    case 4: {
        int neg = (int)(urand() & 1), nl = 1 + (int)(urand() % 3);
        const rlit *ls[3] = {l1, l2, pick_lit(col)};
        CAT("%s %sIN (", COLS[col], neg ? "NOT " : "");
        for (int k = 0; k < nl; k++) CAT("%s%s", k ? ", " : "", ls[k]->text);
        CAT(")");
        for (size_t r = 0; r < PR; r++) {
            int8_t v = 0;
            for (int k = 0; k < nl; k++) v = or3(v, ref_cmp(f, col, r, ls[k], 0));
            res[r] = neg ? not3(v) : v;
        }
        break;
    }
    default: {
        int neg = (int)(urand() & 1);
        CAT("%s IS %sNULL", COLS[col], neg ? "NOT " : "");
        for (size_t r = 0; r < PR; r++) res[r] = (int8_t)(f->nul[col][r] != neg);
        break;
    }
    }
    return at;
}

static size_t gen_expr(const pfix *f, int depth, char *buf, size_t at, size_t cap, int8_t *res) {
    int kind = depth <= 0 ? 0 : (int)(urand() % 5);
    if (kind <= 1) return gen_leaf(f, buf, at, cap, res);
    int8_t *other = malloc(PR);
    if (kind == 2) {
        CAT("NOT (");
        at = gen_expr(f, depth - 1, buf, at, cap, res);
        CAT(")");
        for (size_t r = 0; r < PR; r++) res[r] = not3(res[r]);
    } else {
        int is_and = kind == 3;
        CAT("(");
        at = gen_expr(f, depth - 1, buf, at, cap, res);
        CAT(is_and ? (urand() & 1 ? " AND " : " and ") : (urand() & 1 ? " OR " : " Or "));
        at = gen_expr(f, depth - 1, buf, at, cap, other);
        CAT(")");
        for (size_t r = 0; r < PR; r++) res[r] = is_and ? and3(res[r], other[r]) : or3(res[r], other[r]);
    }
    free(other);
    return at;
}

/* Parses and evaluates text over rows [0, rows); returns the status, the bitmap in out. */
static knn_status pred_run(const knn_attrs *a, const char *text, size_t rows, uint64_t *out, knn_error *err) {
    knn_predicate *p = NULL;
    knn_status s = knn_predicate_parse(text, strlen(text), &p, err);
    if (s != KNN_OK) {
        CHECK(p == NULL && err->msg[0], "failed parse left a predicate or no message");
        return s;
    }
    s = knn_predicate_eval(p, a, rows, out, err);
    knn_predicate_free(p);
    return s;
}

static void pred_expect_error(const knn_attrs *a, const char *text, const char *want) {
    knn_error err;
    uint64_t out[(PR + 63) / 64];
    knn_error_clear(&err);
    knn_status s = pred_run(a, text, PR, out, &err);
    CHECK(s != KNN_OK && strstr(err.msg, want) != NULL, "filter \"%.60s\": want error containing \"%s\", got %d \"%s\"",
          text, want, (int)s, err.msg);
}

/* Rows matching text, as a count; -1 on an error. */
static long pred_count(const knn_attrs *a, const char *text, size_t rows) {
    knn_error err;
    uint64_t *out = calloc((rows + 63) / 64 + 1, 8);
    long n = -1;
    if (pred_run(a, text, rows, out, &err) == KNN_OK) {
        n = 0;
        for (size_t w = 0; w < (rows + 63) / 64; w++) n += __builtin_popcountll(out[w]);
    } else {
        CHECK(0, "filter \"%s\": %s", text, err.msg);
    }
    free(out);
    return n;
}

static void test_predicate(void) {
    pfix *f = calloc(1, sizeof *f);
    pfix_build(f);
    knn_error err;
    /* random expressions against the reference, on all rows and on a prefix */
    char *buf = malloc(8192);
    int8_t *res = malloc(PR);
    uint64_t out[(PR + 63) / 64 + 1];
    int bad = 0;
    for (int t = 0; t < 3000 && bad < 5; t++) {
        size_t at = gen_expr(f, t % 5, buf, 0, 8192, res);
        (void)at;
        size_t rows = t % 3 == 0 ? PR - (size_t)(urand() % 100) : PR;
        /* the columns' sorted orders answer: where selective (0), wherever they can (1), never (-1) */
        f->a.order_policy = (t / 3) % 3 - 1;
        out[(rows + 63) / 64] = 0xdeadbeef;
        knn_status s = pred_run(&f->a, buf, rows, out, &err);
        if (s != KNN_OK) {
            CHECK(0, "filter \"%s\" failed: %s", buf, err.msg);
            bad++;
            continue;
        }
        CHECK(out[(rows + 63) / 64] == 0xdeadbeef, "eval wrote past its bitmap");
        for (size_t r = 0; r < (rows + 63) / 64 * 64; r++) {
            int got = (int)((out[r / 64] >> (r % 64)) & 1u), want = r < rows && res[r] == 1;
            if (got != want) {
                CHECK(0, "filter \"%s\": row %zu got %d want %d (ref %d)", buf, r, got, want, r < rows ? res[r] : -1);
                bad++;
                break;
            }
        }
    }
    free(buf);
    free(res);
    /* a write to an ordered row drops that column's order (the graph only appends; other owners may not) */
    CHECK(f->a.cols[1].order != NULL, "order of n missing");
    knn_attrs_set_i64(&f->a, 1, 3, 42);
    CHECK(f->a.cols[1].order == NULL && f->a.cols[0].order != NULL, "in-place write kept a stale order");
    f->a.order_policy = 1;
    CHECK(pred_count(&f->a, "n = 42", PR) == 1, "n = 42 after the in-place write");
    knn_attrs_order_refresh(&f->a);
    CHECK(f->a.cols[1].order != NULL && pred_count(&f->a, "n = 42", PR) == 1, "n = 42 through the rebuilt order");
    f->a.order_policy = 0;
    /* named semantics on a small store: x <> 'a' skips NULLs, NOT of NULL, IN with NULL, NOT IN */
    knn_attrs s;
    knn_attrs_init(&s);
    size_t cc, cx, cw;
    knn_attrs_column(&s, "c", 1, KNN_ATTR_VARCHAR, &cc, &err);
    knn_attrs_column(&s, "x", 1, KNN_ATTR_BIGINT, &cx, &err);
    knn_attrs_column(&s, "we\"ird", 6, KNN_ATTR_DOUBLE, &cw, &err);
    knn_attrs_grow(&s, 4, &err);
    knn_attrs_set_str(&s, cc, 0, "a", 1, &err);
    knn_attrs_set_str(&s, cc, 1, "b", 1, &err);
    knn_attrs_set_str(&s, cc, 2, "It's", 4, &err); /* row 3: NULL */
    knn_attrs_set_i64(&s, cx, 0, 1);
    knn_attrs_set_i64(&s, cx, 1, 2); /* rows 2, 3: NULL */
    knn_attrs_set_f64(&s, cw, 3, NAN);
    CHECK(pred_count(&s, "c <> 'a'", 4) == 2, "<> counts NULL rows");
    CHECK(pred_count(&s, "NOT (c = 'a')", 4) == 2, "NOT of NULL is not TRUE");
    CHECK(pred_count(&s, "NOT (x > 5)", 4) == 2, "NOT (x > 5) on NULLs");
    CHECK(pred_count(&s, "x IN (1, NULL)", 4) == 1 && pred_count(&s, "x NOT IN (1, NULL)", 4) == 0, "IN with NULL");
    CHECK(pred_count(&s, "x NOT IN (1)", 4) == 1 && pred_count(&s, "x IS NULL", 4) == 2, "NOT IN, IS NULL");
    CHECK(pred_count(&s, "c = 'It''s'", 4) == 1 && pred_count(&s, "c LIKE 'It''_'", 4) == 1, "escaped quote");
    CHECK(pred_count(&s, "c = 'nope'", 4) == 0 && pred_count(&s, "c <> 'nope'", 4) == 3, "absent literal");
    CHECK(pred_count(&s, "x = NULL", 4) == 0 && pred_count(&s, "NOT (x = NULL)", 4) == 0, "= NULL is never TRUE");
    CHECK(pred_count(&s, "x IS NULL OR x = 1", 4) == 3 && pred_count(&s, "x = 1 AND x IS NOT NULL", 4) == 1, "AND/OR");
    CHECK(pred_count(&s, "TRUE", 4) == 4 && pred_count(&s, "FALSE OR NULL", 4) == 0 && pred_count(&s, "NOT NULL", 4) == 0,
          "constants");
    CHECK(pred_count(&s, "\"we\"\"ird\" = 1 OR \"WE\"\"IRD\" > 1e300", 4) == 1, "quoted name, NaN above all");
    CHECK(pred_count(&s, "X BETWEEN 1 AnD 2 oR NoT c iS NuLl", 4) == 3, "keywords ignore case");
    CHECK(pred_count(&s, "x >= -9223372036854775808 AND x < 9223372036854775807", 4) == 2, "int64 bounds");
    CHECK(pred_count(&s, "x = 1", 1) == 1 && pred_count(&s, "x = 1", 0) == 0, "short evaluations");
    CHECK(pred_count(&s, "x = 1 OR c = 'b'", 9) == 2, "rows past the store are NULL");
    /* DATE parsing: leap years, against the counting reference */
    int64_t v;
    CHECK(knn_pred_datetime("2024-02-29", 10, 0, &v) == NULL && v == ref_days(2024, 2, 29), "leap day");
    CHECK(knn_pred_datetime("2000-02-29", 10, 0, &v) == NULL && v == ref_days(2000, 2, 29), "2000 is leap");
    CHECK(knn_pred_datetime("1900-02-29", 10, 0, &v) != NULL && knn_pred_datetime("2023-02-29", 10, 0, &v) != NULL,
          "no leap day");
    CHECK(knn_pred_datetime("1969-12-31", 10, 0, &v) == NULL && v == -1, "1969-12-31 is %lld", (long long)v);
    CHECK(knn_pred_datetime("2024-03-01 00:00:01.000001", 26, 1, &v) == NULL && v == ref_days(2024, 3, 1) * DAY_US + 1000001,
          "timestamp");
    CHECK(knn_pred_datetime("2024-03-01 24:00", 16, 1, &v) != NULL && knn_pred_datetime("2024-03-01 1:00", 15, 0, &v) != NULL,
          "bad times");
    /* columns */
    knn_predicate *p = NULL;
    const char *two = "price < 3 AND PRICE > 1 OR cat = 'a' OR \"n\" IS NULL";
    CHECK(knn_predicate_parse(two, strlen(two), &p, &err) == KNN_OK, "%s", err.msg);
    char cols[64];
    knn_predicate_columns(p, cols, sizeof cols);
    CHECK(strcmp(cols, "price, cat, n") == 0, "columns '%s'", cols);
    knn_predicate_columns(p, cols, 9);
    CHECK(strcmp(cols, "price") == 0, "truncated columns '%s'", cols);
    knn_predicate_free(p);
    /* not NUL-terminated text: the length bounds it */
    CHECK(knn_predicate_parse("flag = TRUE garbage", 11, &p, &err) == KNN_OK, "%s", err.msg);
    knn_predicate_free(p);
    /* errors: every message names the problem and the fix */
    pred_expect_error(&f->a, "prise < 3", "unknown column 'prise'; the index has columns price, n, flag, d, ts, cat");
    pred_expect_error(&s, "y = 1", "unknown column 'y'; the index has columns c, x, we\"ird");
    pred_expect_error(&f->a, "cat = 3", "column 'cat' is VARCHAR but the literal 3 is a number; quote it ('3')");
    pred_expect_error(&f->a, "cat IN ('a', 3)", "quote it ('3')");
    pred_expect_error(&f->a, "cat = DATE '2024-01-01'", "is a DATE; compare it with a plain string");
    pred_expect_error(&f->a, "lower(cat) = 'a'",
                      "function calls (lower(...)) are not supported in an index filter; filter in SQL with knn_among(...) instead");
    pred_expect_error(&f->a, "cat = upper('a')", "function calls (upper(...))");
    pred_expect_error(&f->a, "price < 10 AND (n > 3))", "unexpected ')' at byte 22");
    pred_expect_error(&f->a, "price < 10 AND n > )", "unexpected ')' at byte 19; expected a literal");
    pred_expect_error(&f->a, "price <", "unexpected end of the filter at byte 7; expected a literal");
    pred_expect_error(&f->a, "price + 1 > 3", "arithmetic operators (+ - * / % ||) are not supported in an index filter (found '+' at byte 6)");
    pred_expect_error(&f->a, "price > 3 * 2", "found '*' at byte 10");
    pred_expect_error(&f->a, "price > 3 - 2", "arithmetic operators");
    pred_expect_error(&f->a, "2 / price > 3", "arithmetic operators");
    pred_expect_error(&f->a, "cat || 'x' = 'ax'", "arithmetic operators");
    pred_expect_error(&f->a, "price::INTEGER = 3", "casts (:: and CAST) are not supported");
    pred_expect_error(&f->a, "price = 3::DOUBLE", "casts (:: and CAST)");
    pred_expect_error(&f->a, "CAST(price AS INTEGER) = 3", "casts (:: and CAST)");
    pred_expect_error(&f->a, "n IN (SELECT 1)", "subqueries (SELECT ...) are not supported");
    pred_expect_error(&f->a, "(SELECT 1) = n", "subqueries");
    pred_expect_error(&f->a, "EXISTS (SELECT 1)", "subqueries");
    pred_expect_error(&f->a, "price < n", "comparing two columns (price and n, byte 8) is not supported");
    pred_expect_error(&f->a, "n BETWEEN 1 AND price", "comparing two columns");
    pred_expect_error(&f->a, "cat ILIKE 'a%'", "'ILIKE' (byte 4) is not supported in an index filter; use LIKE");
    pred_expect_error(&f->a, "cat SIMILAR TO 'a'", "'SIMILAR' (byte 4) is not supported");
    pred_expect_error(&f->a, "cat GLOB 'a*'", "'GLOB' (byte 4) is not supported");
    pred_expect_error(&f->a, "cat ~ 'a.*'", "'~' (byte 4) is not supported");
    pred_expect_error(&f->a, "cat NOT ILIKE 'a'", "'ILIKE' (byte 8) is not supported");
    pred_expect_error(&f->a, "regexp_matches(cat, 'a')", "function calls (regexp_matches(...))");
    pred_expect_error(&f->a, "", "the filter is empty");
    pred_expect_error(&f->a, " \n\t", "the filter is empty");
    pred_expect_error(&f->a, "cat = 'abc", "the string starting at byte 6 is not closed");
    pred_expect_error(&f->a, "\"cat = 'a'", "the quoted name starting at byte 0 is not closed");
    pred_expect_error(&f->a, "d = DATE '2024-02-30'", "DATE '2024-02-30' at byte 4 is not a valid DATE (no such day in that month)");
    pred_expect_error(&f->a, "ts > TIMESTAMP '2024-01-01 25:00'", "is not a valid TIMESTAMP (no such time of day)");
    pred_expect_error(&f->a, "d = '2024-13-01'", "column 'd' is DATE but '2024-13-01' is not a valid DATE (no such month)");
    pred_expect_error(&f->a, "d = '2024-01-01 10:00'", "a DATE has no time of day");
    pred_expect_error(&f->a, "d = 3", "column 'd' is DATE but the literal 3 is a number; write DATE 'YYYY-MM-DD'");
    pred_expect_error(&f->a, "price LIKE 'a%'", "LIKE needs a VARCHAR column, but 'price' is DOUBLE");
    pred_expect_error(&f->a, "price", "column 'price' is DOUBLE, not BOOLEAN");
    pred_expect_error(&f->a, "NOT n AND flag", "column 'n' is BIGINT, not BOOLEAN");
    pred_expect_error(&f->a, "flag = 1", "column 'flag' is BOOLEAN but the literal 1 is a number; use TRUE or FALSE");
    pred_expect_error(&f->a, "price = 'abc'", "column 'price' is DOUBLE but the literal 'abc' is a string; compare it with a number");
    pred_expect_error(&f->a, "n > TRUE", "is a boolean");
    pred_expect_error(&f->a, "n = 1e999", "the number 1e999 at byte 4 is out of range for DOUBLE");
    pred_expect_error(&f->a, "3", "the literal 3 at byte 0 is not a condition; compare it with a column (col = 3)");
    pred_expect_error(&f->a, "3 = 4", "a second literal at byte 4");
    pred_expect_error(&f->a, "t.price = 3", "qualified names (t.x, byte 1)");
    pred_expect_error(&f->a, "price BETWEEN 1 3", "expected AND in BETWEEN");
    pred_expect_error(&f->a, "n IN 1", "expected '(' after IN");
    pred_expect_error(&f->a, "n IN (1 2)", "expected ',' or ')' in the IN list");
    pred_expect_error(&f->a, "n IN ()", "unexpected ')' at byte 6; expected a literal");
    pred_expect_error(&f->a, "cat IS 'a'", "expected NULL or NOT after IS");
    pred_expect_error(&f->a, "price NOT 3", "expected BETWEEN, IN or LIKE after NOT");
    pred_expect_error(&f->a, "cat LIKE 3", "expected a 'pattern' string after LIKE");
    pred_expect_error(&f->a, "\"\" = 3", "the column name at byte 0 is 0 bytes; names have 1 to 64");
    pred_expect_error(&f->a, "price = 3abc", "unexpected '3a' at byte 8; expected a number");
    pred_expect_error(&f->a, "price = -'a'", "expected a number after '-'");
    pred_expect_error(&f->a, "price = 3 n = 4", "unexpected 'n' at byte 10; expected AND, OR or the end of the filter");
    pred_expect_error(&f->a, "price = 3;", "unexpected ';' at byte 9");
    pred_expect_error(&f->a, "AND price = 3", "unexpected 'AND' at byte 0; expected a condition");
    pred_expect_error(&f->a, "price < 3 AND nope", "unknown column 'nope'");
    {
        char big[KNN_PREDICATE_MAX_LEN + 16];
        memset(big, ' ', sizeof big);
        big[sizeof big - 1] = '\0';
        memcpy(big, "flag", 4);
        pred_expect_error(&f->a, big, "at most 65536");
        size_t at = 0;
        for (int i = 0; i < 70; i++) big[at++] = '(';
        memcpy(big + at, "flag", 5);
        pred_expect_error(&f->a, big, "nesting deeper than 64 levels");
        at = 0;
        for (int i = 0; i < 70; i++) at += (size_t)sprintf(big + at, "NOT ");
        sprintf(big + at, "flag");
        pred_expect_error(&f->a, big, "nesting deeper than 64 levels");
        at = 0;
        for (int i = 0; i < 30; i++) at += (size_t)sprintf(big + at, "NOT (");
        at += (size_t)sprintf(big + at, "flag");
        for (int i = 0; i < 30; i++) big[at++] = ')';
        big[at] = '\0';
        CHECK(pred_count(&f->a, big, PR) >= 0, "60 levels (30 NOT and 30 parentheses)");
        at = 0;
        for (int i = 0; i < 4200; i++) at += (size_t)sprintf(big + at, "%sflag", i ? " AND " : "");
        pred_expect_error(&f->a, big, "more than 4096 conditions");
        at = 0; /* a long flat chain within the bounds evaluates (n-ary AND, no deep recursion) */
        for (int i = 0; i < 4000; i++) at += (size_t)sprintf(big + at, "%sflag", i ? " OR " : "");
        long all = pred_count(&f->a, "flag", PR);
        CHECK(pred_count(&f->a, big, PR) == all, "4000-term chain");
        at = (size_t)sprintf(big, "n IN (");
        for (int i = 0; i < 5000; i++) at += (size_t)sprintf(big + at, "%s%d", i ? "," : "", i - 2500);
        sprintf(big + at, ")");
        CHECK(pred_count(&f->a, big, PR) == pred_count(&f->a, "n BETWEEN -2500 AND 2499", PR), "5000-value IN");
    }
    knn_attrs_free(&s);
    knn_attrs_truncate(&f->a, 100);
    CHECK(f->a.cols[0].order == NULL, "truncate below the ordered rows kept the order");
    knn_attrs_free(&f->a);
    free(f);
}

int main(void) {
    /* KNN_DRIVER_ONLY=predicate: only the attribute and predicate tests (scripts/sanitize.sh runs them
     * again on the portable scan) */
    const char *only = getenv("KNN_DRIVER_ONLY");
    test_options();
    test_symeig();
    test_attrs();
    test_predicate();
    if (only && strcmp(only, "predicate") == 0) {
        if (failures) {
            fprintf(stderr, "core_driver (predicate): %d check(s) failed\n", failures);
            return 1;
        }
        printf("core_driver (predicate): all checks passed\n");
        return 0;
    }
    test_selector();
    test_flat();
    test_graph();
    test_cover_screen();
    test_code_dist_kernel();
    test_sq_kernels();
    test_graph_quant();
    test_buckets();
    if (failures) {
        fprintf(stderr, "core_driver: %d check(s) failed\n", failures);
        return 1;
    }
    printf("core_driver: all checks passed\n");
    return 0;
}
