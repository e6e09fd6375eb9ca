/* Public entry of the samplers (knn_sample_run): validates rows, weights and sizes, parses the method
 * and its "key=value, ..." options once, and dispatches to the family in knn_sample_*.c. SQL and
 * Python both come through here, so every bad input is reported the same way. */
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "knn_api.h"
#include "base/knn_error.h"
#include "base/knn_options.h"
#include "base/knn_parallel.h"
#include "sample/knn_sample.h"

typedef knn_status (*sample_fn)(const knn_sample_in *, knn_sample_result *, knn_error *);

typedef struct method_def {
    const char *name;
    sample_fn fn;
    int needs_vectors;
    int needs_weights;
    const char *keys; /* options it accepts, space separated */
} method_def;

static const method_def methods[] = {
    {"kcenter", knn_sample_kcenter, 1, 0, "metric"},
    {"kmeans++", knn_sample_kmeanspp, 1, 0, "metric variant trials assign"},
    {"kmeans", knn_sample_kmeans, 1, 0, "metric iters variant trials"},
    {"weighted", knn_sample_weighted, 0, 1, "replace"},
    {"sensitivity", knn_sample_sensitivity, 1, 0, "metric k iters"},
    {"balanced", knn_sample_balanced, 1, 0, "metric levels iters pick"},
    {"kernel_thinning", knn_sample_kernel_thin, 1, 0, "metric bandwidth g swap"},
    {"dpp", knn_sample_dpp, 1, 0, "metric kernel bandwidth rank"},
    {"depth", knn_sample_depth, 1, 0, "metric order sample"},
};
#define N_METHODS (sizeof methods / sizeof methods[0])

const char *knn_sample_methods(void) {
    return "kcenter, kmeans++, kmeans, weighted, sensitivity, balanced, kernel_thinning, dpp, depth";
}

void knn_sample_opts_default(knn_sample_opts *o) {
    memset(o, 0, sizeof *o);
    o->variant = KNN_KPP_AUTO;
    o->g = 4;
    o->kt_swap = 1;
    o->assign = 1;
}

static const method_def *find_method(const char *name, knn_error *err) {
    if (name == NULL) name = "";
    const char *alias = strcmp(name, "kmeanspp") == 0 ? "kmeans++" : strcmp(name, "fps") == 0 ? "kcenter"
                        : strcmp(name, "kt") == 0 ? "kernel_thinning" : strcmp(name, "k-dpp") == 0 ? "dpp" : name;
    for (size_t i = 0; i < N_METHODS; i++) {
        if (strcmp(methods[i].name, alias) == 0) return &methods[i];
    }
    knn_error_set(err, KNN_EINVAL, "unknown sampling method '%s'; use one of %s", name, knn_sample_methods());
    return NULL;
}

static int key_allowed(const char *keys, const char *key) {
    size_t len = strlen(key);
    for (const char *p = keys; *p;) {
        const char *e = strchr(p, ' ');
        size_t l = e ? (size_t)(e - p) : strlen(p);
        if (l == len && strncmp(p, key, len) == 0) return 1;
        if (!e) break;
        p = e + 1;
    }
    return 0;
}

static knn_status parse_size(const char *key, const char *v, size_t lo, size_t hi, size_t *out, knn_error *err) {
    char *end;
    long long x = strtoll(v, &end, 10);
    if (*v == '\0' || *end != '\0' || x < (long long)lo || (unsigned long long)x > hi) {
        return knn_error_set(err, KNN_EINVAL, "option '%s' must be an integer between %zu and %zu, got '%s'", key, lo,
                             hi, v);
    }
    *out = (size_t)x;
    return KNN_OK;
}

static knn_status parse_option(const method_def *m, const char *key, const char *v, knn_sample_opts *o,
                               knn_error *err) {
    if (!key_allowed(m->keys, key)) {
        return knn_error_set(err, KNN_EINVAL, "method '%s' has no option '%s'; its options are: %s", m->name, key,
                             m->keys);
    }
    size_t x = 0;
    if (m->fn == knn_sample_depth) { /* depth has its own metrics (cosine by default) and keys */
        if (strcmp(key, "metric") == 0) {
            knn_depth_metric dm;
            knn_status s = knn_depth_parse(v, &dm, err);
            o->depth_metric = (int)dm;
            return s;
        }
        if (strcmp(key, "order") == 0) {
            if (strcmp(v, "deepest") == 0) o->shallowest = 0;
            else if (strcmp(v, "shallowest") == 0) o->shallowest = 1;
            else return knn_error_set(err, KNN_EINVAL, "option 'order' must be 'deepest' (representatives) or "
                                      "'shallowest' (outliers), got '%s'", v);
            return KNN_OK;
        }
        return parse_size(key, v, 2, (size_t)INT32_MAX, &o->ref_sample, err); /* sample */
    }
    if (strcmp(key, "metric") == 0) {
        if (strcmp(v, "l2") == 0 || strcmp(v, "l2sq") == 0) o->cosine = 0;
        else if (strcmp(v, "cosine") == 0) o->cosine = 1;
        else return knn_error_set(err, KNN_EINVAL, "option 'metric' must be 'l2' or 'cosine', got '%s'", v);
        return KNN_OK;
    }
    if (strcmp(key, "iters") == 0) return parse_size(key, v, 1, 10000, &o->iters, err);
    if (strcmp(key, "trials") == 0) return parse_size(key, v, 1, 1000000, &o->trials, err);
    if (strcmp(key, "k") == 0) return parse_size(key, v, 1, 1u << 24, &o->k, err);
    if (strcmp(key, "rank") == 0) return parse_size(key, v, 1, 4096, &o->rank, err);
    if (strcmp(key, "replace") == 0 || strcmp(key, "swap") == 0 || strcmp(key, "assign") == 0) {
        knn_status s = parse_size(key, v, 0, 1, &x, err);
        if (s != KNN_OK) return s;
        if (key[0] == 'r') o->replace = (int)x;
        else if (key[0] == 's') o->kt_swap = (int)x;
        else o->assign = (int)x;
        return KNN_OK;
    }
    if (strcmp(key, "g") == 0) {
        if (strcmp(v, "none") == 0) {
            o->g = -1;
            return KNN_OK;
        }
        knn_status s = parse_size(key, v, 0, 8, &x, err);
        o->g = (int)x;
        return s;
    }
    if (strcmp(key, "variant") == 0) {
        if (strcmp(v, "auto") == 0) o->variant = KNN_KPP_AUTO;
        else if (strcmp(v, "d2") == 0) o->variant = KNN_KPP_D2;
        else if (strcmp(v, "greedy") == 0) o->variant = KNN_KPP_GREEDY;
        else if (strcmp(v, "rejection") == 0) o->variant = KNN_KPP_REJECTION;
        else return knn_error_set(err, KNN_EINVAL, "option 'variant' must be auto, d2, greedy or rejection, got '%s'", v);
        return KNN_OK;
    }
    if (strcmp(key, "kernel") == 0) {
        if (strcmp(v, "linear") == 0) o->dpp_rbf = 0;
        else if (strcmp(v, "rbf") == 0 || strcmp(v, "gaussian") == 0) o->dpp_rbf = 1;
        else return knn_error_set(err, KNN_EINVAL, "option 'kernel' must be 'linear' or 'rbf', got '%s'", v);
        return KNN_OK;
    }
    if (strcmp(key, "pick") == 0) {
        if (strcmp(v, "random") == 0) o->closest = 0;
        else if (strcmp(v, "closest") == 0) o->closest = 1;
        else return knn_error_set(err, KNN_EINVAL, "option 'pick' must be 'random' or 'closest', got '%s'", v);
        return KNN_OK;
    }
    if (strcmp(key, "bandwidth") == 0) {
        char *end;
        double b = strtod(v, &end);
        if (*v == '\0' || *end != '\0' || !(b > 0) || !isfinite(b)) {
            return knn_error_set(err, KNN_EINVAL, "option 'bandwidth' must be a positive number, got '%s'", v);
        }
        o->bandwidth = b;
        return KNN_OK;
    }
    if (strcmp(key, "levels") == 0) { /* e.g. levels=100/10: 100 leaf clusters grouped into 10 */
        o->n_levels = 0;
        size_t at = 0, len = strlen(v);
        knn_span tok;
        char num[64];
        while (knn_option_next(v, len, '/', &at, &tok)) {
            if (o->n_levels == KNN_SAMPLE_MAX_LEVELS) {
                return knn_error_set(err, KNN_EINVAL, "option 'levels' takes at most %d levels",
                                     KNN_SAMPLE_MAX_LEVELS);
            }
            if (!knn_span_copy(tok, num, sizeof num, 0)) {
                return knn_error_set(err, KNN_EINVAL, "option 'levels' must be cluster counts like '100/10', got '%s'", v);
            }
            knn_status s = parse_size("levels", num, 1, 1u << 24, &o->levels[o->n_levels], err);
            if (s != KNN_OK) return s;
            if (o->n_levels && o->levels[o->n_levels] >= o->levels[o->n_levels - 1]) {
                return knn_error_set(err, KNN_EINVAL, "option 'levels' must decrease from the finest level, e.g. "
                                     "'levels=100/10', got '%s'", v);
            }
            o->n_levels++;
        }
        if (o->n_levels == 0) return knn_error_set(err, KNN_EINVAL, "option 'levels' is empty; e.g. 'levels=100/10'");
        return KNN_OK;
    }
    return knn_error_set(err, KNN_EINVAL, "unknown option '%s'", key);
}

/* "key=value, ..." through the shared reentrant tokenizer (base/knn_options.h). */
static knn_status parse_options(const method_def *m, const char *text, knn_sample_opts *o, knn_error *err) {
    knn_sample_opts_default(o);
    if (text == NULL || *text == '\0') return KNN_OK;
    size_t len = strlen(text);
    if (len > 4096) return knn_error_set(err, KNN_EINVAL, "options text is longer than 4096 bytes");
    char *val = malloc(len + 1);
    if (val == NULL) return knn_error_set(err, KNN_ENOMEM, "out of memory parsing options");
    knn_status s = KNN_OK;
    size_t at = 0;
    knn_span item, k, v;
    char key[64];
    while (s == KNN_OK && knn_option_next(text, len, ',', &at, &item)) {
        if (!knn_option_split(item, &k, &v)) {
            s = knn_error_set(err, KNN_EINVAL, "option '%.*s' needs a value: write key=value, e.g. 'iters=20'",
                              (int)(item.n > 64 ? 64 : item.n), item.p);
            break;
        }
        if (!knn_span_copy(k, key, sizeof key, 1)) {
            s = knn_error_set(err, KNN_EINVAL, "unknown option '%.*s'", (int)(k.n > 64 ? 64 : k.n), k.p);
            break;
        }
        knn_span_copy(v, val, len + 1, 0);
        s = parse_option(m, key, val, o, err);
    }
    free(val);
    return s;
}

knn_sample_result *knn_sample_result_new(size_t cap, knn_error *err) {
    knn_sample_result *r = calloc(1, sizeof *r);
    if (r) {
        size_t c = cap ? cap : 1;
        r->index = malloc(c * sizeof *r->index);
        r->weight = malloc(c * sizeof *r->weight);
        r->score = malloc(c * sizeof *r->score);
        r->cluster = malloc(c * sizeof *r->cluster);
        r->cost = NAN;
        r->bandwidth = NAN;
        if (r->index && r->weight && r->score && r->cluster) {
            for (size_t i = 0; i < c; i++) {
                r->score[i] = NAN;
                r->cluster[i] = -1;
            }
            return r;
        }
        knn_sample_result_free(r);
    }
    knn_error_set(err, KNN_ENOMEM, "out of memory for %zu sample picks", cap);
    return NULL;
}

void knn_sample_result_free(knn_sample_result *r) {
    if (r == NULL) return;
    free(r->index);
    free(r->weight);
    free(r->score);
    free(r->cluster);
    free(r->centroids);
    free(r->assign);
    free(r);
}

/* Upper bound on the picks a method returns for this input. */
static size_t result_cap(const method_def *m, const knn_sample_opts *o, size_t rows, size_t n) {
    if (m->fn == knn_sample_weighted && o->replace) return n;
    return n < rows ? n : rows;
}

int knn_sample_run(const float *X, size_t rows, size_t dim, const double *weights, size_t n, const char *method,
                   uint64_t seed, const char *options, const int64_t *start, size_t n_start, size_t threads,
                   knn_sample_result **out, char *errmsg, size_t errmsg_len) {
    knn_error err;
    knn_error_clear(&err);
    knn_sample_result *r = NULL;
    float *copy = NULL;
    *out = NULL;
    const method_def *m = find_method(method, &err);
    knn_sample_in in;
    memset(&in, 0, sizeof in);
    if (m == NULL) goto done;
    if (parse_options(m, options, &in.opts, &err) != KNN_OK) goto done;
    if (n == 0) {
        knn_error_set(&err, KNN_EINVAL, "n must be >= 1, got 0; ask for at least one row");
        goto done;
    }
    if (n > (size_t)INT32_MAX) {
        knn_error_set(&err, KNN_EINVAL, "n must be at most %d, got %zu", INT32_MAX, n);
        goto done;
    }
    if (rows == 0) {
        knn_error_set(&err, KNN_EINVAL, "no rows to sample from");
        goto done;
    }
    if (rows > (size_t)INT32_MAX) {
        knn_error_set(&err, KNN_EINVAL, "at most %d rows can be sampled at once, got %zu", INT32_MAX, rows);
        goto done;
    }
    if (m->needs_vectors && (dim == 0 || dim > 65536)) {
        knn_error_set(&err, KNN_EINVAL, "dim must be between 1 and 65536, got %zu", dim);
        goto done;
    }
    if (m->needs_weights) {
        if (weights == NULL) {
            knn_error_set(&err, KNN_EINVAL, "method 'weighted' needs a weight per row; pass a weight column");
            goto done;
        }
        size_t positive = 0;
        for (size_t i = 0; i < rows; i++) {
            double w = weights[i];
            if (!isfinite(w) || w < 0) {
                knn_error_set(&err, KNN_EDATA, "weight of row %zu is %g; weights must be finite and >= 0 (rows "
                              "with weight 0 are never picked)", i, w);
                goto done;
            }
            positive += w > 0;
        }
        if (positive == 0) {
            knn_error_set(&err, KNN_EDATA, "every weight is 0; at least one row needs a positive weight");
            goto done;
        }
    } else if (weights != NULL) {
        knn_error_set(&err, KNN_EINVAL, "method '%s' takes no weights; weights are for method 'weighted'", m->name);
        goto done;
    }
    if (start != NULL && n_start > 0 && m->fn != knn_sample_kcenter) {
        knn_error_set(&err, KNN_EINVAL, "starting rows are only used by method 'kcenter'");
        goto done;
    }
    for (size_t i = 0; i < n_start; i++) {
        if (start[i] < 0 || (size_t)start[i] >= rows) {
            knn_error_set(&err, KNN_EINVAL, "starting row %lld is outside 0..%zu", (long long)start[i], rows - 1);
            goto done;
        }
        for (size_t j = 0; j < i; j++) {
            if (start[j] == start[i]) {
                knn_error_set(&err, KNN_EINVAL, "starting row %lld is given twice", (long long)start[i]);
                goto done;
            }
        }
    }
    if (m->needs_vectors) {
        if (X == NULL) {
            knn_error_set(&err, KNN_EINVAL, "method '%s' needs vectors", m->name);
            goto done;
        }
        copy = aligned_alloc(64, (rows * dim * sizeof(float) + 63) / 64 * 64);
        if (copy == NULL) {
            knn_error_set(&err, KNN_ENOMEM, "out of memory copying %zu x %zu vectors", rows, dim);
            goto done;
        }
        for (size_t i = 0; i < rows; i++) {
            const float *x = X + i * dim;
            float *y = copy + i * dim;
            double s = 0;
            for (size_t j = 0; j < dim; j++) {
                if (!isfinite(x[j])) {
                    knn_error_set(&err, KNN_EDATA, "row %zu has a NaN or Inf at element %zu; vectors must be finite",
                                  i, j);
                    goto done;
                }
                y[j] = x[j];
                s += (double)x[j] * x[j];
            }
            if (in.opts.cosine) {
                if (s == 0) {
                    knn_error_set(&err, KNN_EDATA, "row %zu is a zero vector, which has no direction for "
                                  "metric=cosine", i);
                    goto done;
                }
                float inv = (float)(1.0 / sqrt(s));
                for (size_t j = 0; j < dim; j++) y[j] *= inv;
            }
        }
    }
    r = knn_sample_result_new(result_cap(m, &in.opts, rows, n), &err);
    if (r == NULL) goto done;
    in.X = copy;
    in.n = rows;
    in.d = m->needs_vectors ? dim : 0;
    in.weights = weights;
    in.target = n;
    in.seed = seed;
    in.threads = threads ? threads : knn_cpu_count();
    in.start = start;
    in.n_start = n_start;
    in.kern = knn_kernels_best();
    if (m->fn(&in, r, &err) != KNN_OK) goto done;
    *out = r;
    r = NULL;
done:
    free(copy);
    knn_sample_result_free(r);
    if (err.status != KNN_OK && m != NULL) {
        char msg[KNN_ERROR_MSG_LEN];
        memcpy(msg, err.msg, sizeof msg);
        knn_error_set(&err, err.status, "%s: %s", m->name, msg);
    }
    return knn_error_export(&err, errmsg, errmsg_len);
}

int knn_sample_assign(const float *X, size_t rows, size_t dim, const float *C, size_t k, size_t threads,
                      int32_t *assign, float *dist2, double *cost, char *errmsg, size_t errmsg_len) {
    knn_error err;
    knn_error_clear(&err);
    if (rows == 0 || k == 0 || dim == 0) {
        knn_error_set(&err, KNN_EINVAL, "assign needs rows, centroids and dim >= 1 (got %zu, %zu, %zu)", rows, k, dim);
    } else {
        knn_kmeans_assign(X, rows, dim, C, k, threads ? threads : knn_cpu_count(), knn_kernels_best(), assign, dist2,
                          cost, &err);
    }
    return knn_error_export(&err, errmsg, errmsg_len);
}
