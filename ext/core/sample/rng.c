/* Random streams and weighted sampling primitives for the samplers.
 *
 * - PRNG: xoshiro256** (Blackman & Vigna 2018), state filled by splitmix64 from (seed, stream), so each
 *   sampler stage draws from its own reproducible stream.
 * - knn_exp_neg: exp(x) for x <= 0 by range reduction x = k ln2 + r and a degree-6 polynomial on r,
 *   written branch-free so the compiler vectorises it; the kernel-thinning inner loop needs millions.
 * - Alias table: Vose's O(n) construction of Walker's alias method; O(1) draws with replacement.
 * - Weighted sampling without replacement: Efraimidis & Spirakis (2006) keys u^(1/w), taken here as
 *   log(u)/w (equivalently Gumbel-top-k on log w): the m largest keys are a successive-sampling draw
 *   with probability proportional to w. Selection is a bounded min-heap, O(n log m). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "sample/knn_sample.h"

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

void knn_rng_init(knn_rng *r, uint64_t seed, uint64_t stream) {
    uint64_t x = seed ^ (stream * 0xd1342543de82ef95ull + 0x2545f4914f6cdd1dull);
    for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&x);
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t knn_rng_next(knn_rng *r) {
    uint64_t *s = r->s;
    uint64_t out = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return out;
}

double knn_rng_uniform(knn_rng *r) { return (double)(knn_rng_next(r) >> 11) * 0x1.0p-53; }

double knn_rng_open(knn_rng *r) { return ((double)(knn_rng_next(r) >> 11) + 0.5) * 0x1.0p-53; }

uint64_t knn_rng_below(knn_rng *r, uint64_t n) {
    __uint128_t m = (__uint128_t)knn_rng_next(r) * n;
    uint64_t lo = (uint64_t)m;
    if (lo < n) {
        uint64_t t = (0 - n) % n;
        while (lo < t) {
            m = (__uint128_t)knn_rng_next(r) * n;
            lo = (uint64_t)m;
        }
    }
    return (uint64_t)(m >> 64);
}

double knn_rng_normal(knn_rng *r) {
    double u = knn_rng_open(r), v = knn_rng_uniform(r);
    return sqrt(-2.0 * log(u)) * cos(6.283185307179586 * v);
}

void knn_rng_shuffle(knn_rng *r, int64_t *idx, size_t n) {
    for (size_t i = n; i > 1; i--) {
        size_t j = (size_t)knn_rng_below(r, i);
        int64_t t = idx[i - 1];
        idx[i - 1] = idx[j];
        idx[j] = t;
    }
}

void knn_exp_neg(float *v, size_t n) {
    for (size_t i = 0; i < n; i++) {
        float x = v[i];
        x = x < -87.0f ? -87.0f : x;
        float kf = __builtin_roundf(x * 1.44269504f);
        float rr = x - kf * 0.693145752f - kf * 1.42860677e-6f;
        float p = 1.0f + rr * (1.0f + rr * (0.5f + rr * (0.166666672f + rr * (0.0416666716f +
                                                  rr * (0.00833333377f + rr * 0.00138888892f)))));
        int32_t ki = (int32_t)kf;
        union { float f; int32_t i; } u;
        u.i = (ki + 127) << 23;
        v[i] = p * u.f;
    }
}

knn_status knn_alias_build(knn_alias *a, const double *w, size_t n, knn_error *err) {
    memset(a, 0, sizeof *a);
    double total = 0;
    for (size_t i = 0; i < n; i++) total += w[i];
    if (n == 0 || !(total > 0) || !isfinite(total)) {
        return knn_error_set(err, KNN_EINVAL, "weights must have a positive finite sum");
    }
    a->prob = malloc(n * sizeof *a->prob);
    a->alias = malloc(n * sizeof *a->alias);
    uint32_t *small = malloc(n * sizeof *small), *large = malloc(n * sizeof *large);
    if (!a->prob || !a->alias || !small || !large) {
        free(small);
        free(large);
        knn_alias_free(a);
        return knn_error_set(err, KNN_ENOMEM, "out of memory for an alias table of %zu rows", n);
    }
    a->n = n;
    size_t ns = 0, nl = 0;
    for (size_t i = 0; i < n; i++) {
        a->prob[i] = w[i] * (double)n / total;
        a->alias[i] = (uint32_t)i;
        if (a->prob[i] < 1.0) small[ns++] = (uint32_t)i;
        else large[nl++] = (uint32_t)i;
    }
    while (ns && nl) {
        uint32_t s = small[--ns], l = large[nl - 1];
        a->alias[s] = l;
        a->prob[l] -= 1.0 - a->prob[s];
        if (a->prob[l] < 1.0) {
            nl--;
            small[ns++] = l;
        }
    }
    while (nl) a->prob[large[--nl]] = 1.0;
    while (ns) a->prob[small[--ns]] = 1.0; /* rounding leftovers */
    free(small);
    free(large);
    return KNN_OK;
}

size_t knn_alias_draw(const knn_alias *a, knn_rng *r) {
    size_t i = (size_t)knn_rng_below(r, a->n);
    return knn_rng_uniform(r) < a->prob[i] ? i : a->alias[i];
}

void knn_alias_free(knn_alias *a) {
    free(a->prob);
    free(a->alias);
    a->prob = NULL;
    a->alias = NULL;
    a->n = 0;
}

/* Min-heap on key of (key, pos) pairs. */
typedef struct keyed {
    double key;
    int64_t pos;
} keyed;

static inline int keyed_less(const keyed *a, const keyed *b) {
    return a->key < b->key || (a->key == b->key && a->pos > b->pos);
}

static void sift_down(keyed *h, size_t n, size_t i) {
    for (;;) {
        size_t l = 2 * i + 1, m = i;
        if (l < n && keyed_less(&h[l], &h[m])) m = l;
        if (l + 1 < n && keyed_less(&h[l + 1], &h[m])) m = l + 1;
        if (m == i) return;
        keyed t = h[i];
        h[i] = h[m];
        h[m] = t;
        i = m;
    }
}

static int keyed_desc(const void *x, const void *y) {
    const keyed *a = x, *b = y;
    if (a->key != b->key) return a->key > b->key ? -1 : 1;
    return (a->pos > b->pos) - (a->pos < b->pos);
}

knn_status knn_weighted_topk(const double *w, size_t n, size_t m, knn_rng *r, int64_t *out, knn_error *err) {
    keyed *h = malloc((m ? m : 1) * sizeof *h);
    if (h == NULL) return knn_error_set(err, KNN_ENOMEM, "out of memory for %zu weighted picks", m);
    size_t size = 0;
    for (size_t i = 0; i < n; i++) {
        double u = knn_rng_open(r); /* one draw per row, whatever its weight: streams stay aligned */
        if (!(w[i] > 0)) continue;
        keyed k = {log(u) / w[i], (int64_t)i};
        if (size < m) {
            h[size++] = k;
            if (size == m) {
                for (size_t j = m / 2; j-- > 0;) sift_down(h, m, j);
            }
        } else if (keyed_less(&h[0], &k)) {
            h[0] = k;
            sift_down(h, m, 0);
        }
    }
    if (size < m) {
        free(h);
        return knn_error_set(err, KNN_EINVAL, "only %zu rows have a positive weight, fewer than the %zu requested",
                             size, m);
    }
    qsort(h, m, sizeof *h, keyed_desc);
    for (size_t j = 0; j < m; j++) out[j] = h[j].pos;
    free(h);
    return KNN_OK;
}
