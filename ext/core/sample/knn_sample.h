/* Sampling and selection: the internal interface shared by the knn_sample_*.c families.
 *
 * Every sampler reads n rows of dimension d (row-major float32, already validated finite), optional
 * per-row weights, a target size and parsed options, and fills a knn_sample_result (below) whose
 * picks are row positions 0..n-1 in pick order. The public entry (api/sample.c) validates input,
 * parses the method and options, and dispatches here. Each family lives in its own file with a design
 * note at the top:
 *   sample/rng.c              PRNG streams, fast exp, alias table, Efraimidis-Spirakis / Gumbel-top-k
 *   sample/kcenter.c          greedy farthest-point (k-center) with triangle-inequality pruning
 *   sample/kmeans.c           k-means++ (D2, greedy, rejection sampling), Lloyd's k-means, assignment
 *   sample/coreset.c          sensitivity-sampling coreset, hierarchical k-means balanced curation
 *   sample/kernel_thinning.c  kernel thinning (KT-SPLIT halving + KT-SWAP) and Compress++
 *   sample/dpp.c              k-DPP over a linear kernel or random Fourier features
 *   sample/depth.c            statistical (TTE) depth and depth-ranked selection
 *   sample/pair_sums.c        sums over all row pairs of a function of their distance (exact depth, KDE)
 *
 * Determinism: every random draw comes from a knn_rng derived from (seed, stream); threaded passes
 * split rows at fixed 64-row boundaries and reduce in a fixed order, so outputs do not depend on the
 * thread count. */
#ifndef KNN_SAMPLE_H
#define KNN_SAMPLE_H

#include <stddef.h>
#include <stdint.h>

#include "kernels/knn_kernels.h"
#include "quant/knn_codes.h"
#include "base/knn_error.h"

/* What a sampler returns (the public functions are in knn_api.h). */
/* cffi-begin */
typedef struct knn_sample_result {
    size_t n;            /* number of picks */
    int64_t *index;      /* row position of each pick */
    double *weight;      /* rows each pick stands for (coreset weight) */
    double *score;       /* per pick: kcenter covering radius after it; weighted key; kt/dpp NaN */
    int64_t *cluster;    /* cluster of each pick, -1 when the method has none */
    float *centroids;    /* kmeans: n_centroids x dim, else NULL */
    size_t n_centroids;
    int32_t *assign;     /* kmeans and k-means++ (D2): nearest pick/centroid of every row, else NULL */
    double cost;         /* k-means family: sum of squared distances to the nearest center (NaN when
                            not computed); kcenter: final covering radius */
    size_t iters;        /* kmeans: Lloyd iterations run */
    double bandwidth;    /* kernel_thinning / dpp rbf: the Gaussian sigma used */
} knn_sample_result;
/* cffi-end */

/* ---- options ----------------------------------------------------------------------------------- */

typedef enum knn_kpp_variant {
    KNN_KPP_AUTO = 0,      /* rejection sampling when n*k is large, else D2 */
    KNN_KPP_D2 = 1,        /* exact D2 sampling, one candidate per step */
    KNN_KPP_GREEDY = 2,    /* D2 with local trials (scikit-learn's greedy k-means++) */
    KNN_KPP_REJECTION = 3  /* rejection sampling (Shah et al.), O(nnz(X) + beta k^2 d) */
} knn_kpp_variant;

#define KNN_SAMPLE_MAX_LEVELS 8

typedef struct knn_sample_opts {
    size_t k;           /* clusters for sensitivity/balanced; 0 = method default */
    size_t iters;       /* Lloyd iterations; 0 = default (20) */
    size_t trials;      /* k-means++ local trials (greedy) or rejection trials; 0 = default */
    knn_kpp_variant variant;
    int cosine;         /* 1: rows are normalised to unit length first */
    int replace;        /* weighted: with replacement (alias table) */
    double bandwidth;   /* Gaussian kernel sigma; 0 = median heuristic */
    int g;              /* Compress++ oversampling; -1 = plain KT (no Compress) */
    int kt_swap;        /* KT-SWAP refinement (default 1) */
    size_t rank;        /* k-DPP random-feature count (rbf); 0 = default */
    int dpp_rbf;        /* k-DPP kernel: 0 linear, 1 rbf (random Fourier features) */
    size_t levels[KNN_SAMPLE_MAX_LEVELS]; /* balanced: clusters per level, finest first */
    size_t n_levels;
    int assign;         /* k-means++: assign every row to report weights and cost (default 1) */
    int closest;        /* balanced: pick the rows closest to leaf centroids instead of random ones */
    int depth_metric;   /* depth: knn_depth_metric (default cosine) */
    int shallowest;     /* depth: pick the shallowest rows (outliers) instead of the deepest */
    size_t ref_sample;  /* depth: reference rows sampled per row's mean distance (0: all) */
} knn_sample_opts;

void knn_sample_opts_default(knn_sample_opts *o);

/* ---- input ------------------------------------------------------------------------------------- */

typedef struct knn_sample_in {
    const float *X;          /* n x d, 64-byte aligned copy owned by the entry */
    size_t n, d;
    const double *weights;   /* NULL or n positive finite weights */
    size_t target;           /* requested picks, >= 1 */
    uint64_t seed;
    size_t threads;          /* >= 1 */
    const int64_t *start;    /* kcenter: row positions picked first */
    size_t n_start;
    knn_sample_opts opts;
    const knn_kernels *kern;
} knn_sample_in;

/* ---- PRNG (xoshiro256**, seeded through splitmix64) ---------------------------------------------- */

typedef struct knn_rng {
    uint64_t s[4];
} knn_rng;

/* Independent stream `stream` of `seed`. */
void knn_rng_init(knn_rng *r, uint64_t seed, uint64_t stream);
uint64_t knn_rng_next(knn_rng *r);
/* Uniform in [0, 1) with 53 random bits. */
double knn_rng_uniform(knn_rng *r);
/* Uniform in (0, 1). */
double knn_rng_open(knn_rng *r);
/* Uniform integer in [0, n), n >= 1 (Lemire's multiply-shift with rejection). */
uint64_t knn_rng_below(knn_rng *r, uint64_t n);
/* Standard normal (Box-Muller, one value per call). */
double knn_rng_normal(knn_rng *r);
/* In-place Fisher-Yates shuffle of idx[0..n). */
void knn_rng_shuffle(knn_rng *r, int64_t *idx, size_t n);

/* exp(x) for x <= 0 to ~2e-7 relative error; a loop over it vectorises (no libm call). */
void knn_exp_neg(float *v, size_t n);

/* Alias table (Walker/Vose) over n non-negative weights with a positive sum. */
typedef struct knn_alias {
    double *prob;
    uint32_t *alias;
    size_t n;
} knn_alias;

knn_status knn_alias_build(knn_alias *a, const double *w, size_t n, knn_error *err);
size_t knn_alias_draw(const knn_alias *a, knn_rng *r);
void knn_alias_free(knn_alias *a);

/* m distinct positions drawn with probability proportional to w (successive sampling without
 * replacement), by Efraimidis-Spirakis keys log(u)/w (the Gumbel-top-k trick); out in draw order
 * (largest key first). m <= number of positive weights. */
knn_status knn_weighted_topk(const double *w, size_t n, size_t m, knn_rng *r, int64_t *out, knn_error *err);

/* ---- result helpers ---------------------------------------------------------------------------- */

/* Allocates a result with room for cap picks (index, weight, score, cluster). */
knn_sample_result *knn_sample_result_new(size_t cap, knn_error *err);

/* ---- nearest-center cover (sample/kcenter.c) --------------------------------------------------
 * Keeps, for a growing set of centers (rows of X), every row's squared distance to its nearest center
 * (mind) and that center (owner). Rows are scanned in fixed 64-row blocks, each with the sum and the
 * maximum of its rows' mind, so drawing a row by D^2 and finding the farthest row cost O(n/64 + 64).
 * Adding a center recomputes the exact distance of a row only when the 8-bit screen (knn_screen) cannot
 * rule it out. Without the screen, a block is rescanned only when one of its rows could move: x can get
 * nearer to a new center c than to its own c_j only if d(c, c_j) < 2 d(x, c_j) (triangle inequality),
 * which in high dimension (GloVe-50) rules out almost nothing. Rows that are centers carry mind = -1. */
/* 8-bit screen of the cover (sample/screen.c): X's codes (quant/knn_codes.h), and for each row
 * reach[i] = sqrt(mind[i]) + err[i], rounded up (-1 for centers). A center c can take row i only if
 *     scale * ||q(i) - q(c)|| < reach[i] + err(c),
 * so a pass recomputes the exact distance of those rows alone; every other row provably keeps its
 * center, and picks are exactly those of the unscreened pass. */
typedef struct knn_screen {
    knn_codes q;      /* q.codes == NULL: screen off */
    float *reach;     /* nblocks * KNN_CODE_BLOCK, padding rows -1 */
} knn_screen;

typedef struct knn_cover {
    const float *X;
    size_t n, d, threads;
    const knn_kernels *kern;
    float *mind;      /* n */
    int32_t *owner;   /* n: center slot */
    float *C;         /* cap x d */
    int64_t *cidx;    /* cap: row of each center */
    size_t *stamp;    /* per block: centers [0, stamp) are applied to its rows */
    uint8_t *ccodes;  /* cap x 2*npairs: the centers' codes (screen on) */
    float *cerr;      /* cap: their decoding errors */
    size_t nblocks;
    double *bsum;     /* per block: sum of mind over non-center rows */
    float *bmax;      /* per block: largest mind (-1 when every row is a center) */
    int64_t *barg;    /* its row */
    size_t nc, cap;
    knn_screen screen; /* 8-bit lower-bound screen (screen.codes == NULL when off) */
} knn_cover;

knn_status knn_cover_init(knn_cover *c, const float *X, size_t n, size_t d, size_t cap, size_t threads,
                          const knn_kernels *kern, knn_error *err);
/* Adds row as a new center (row must not be one already) and brings every row up to date. */
knn_status knn_cover_add(knn_cover *c, int64_t row, knn_error *err);
/* Adds row as a new center without touching the other rows: blocks catch up when refreshed. */
knn_status knn_cover_add_lazy(knn_cover *c, int64_t row, knn_error *err);
/* Brings every block up to date with every center (threads over blocks). */
void knn_cover_refresh(knn_cover *c);
double knn_cover_potential(const knn_cover *c);
/* Potentials of m candidate rows at once (one pass over the rows), into out[0..m). */
knn_status knn_cover_potentials(knn_cover *c, const int64_t *rows, size_t m, double *out, knn_error *err);
/* A non-center row drawn with probability proportional to mind (uniform over non-centers when all are 0). */
int64_t knn_cover_draw(const knn_cover *c, knn_rng *r);
/* The non-center row farthest from the centers (ties: lowest row); -1 when every row is a center. */
int64_t knn_cover_farthest(const knn_cover *c, float *dist2);
/* Rows owned by each center (excluding the center itself) into sizes[0..nc). */
void knn_cover_sizes(const knn_cover *c, double *sizes);
void knn_cover_free(knn_cover *c);

/* Builds the screen for c's rows (knn_cover_init calls it). Leaves the screen off, without error, when
 * its memory cannot be had or d > 32768. */
void knn_screen_build(knn_cover *c);
void knn_screen_free(knn_screen *s);
/* Refreshes reach[i] after mind[i] changed. */
void knn_screen_touch(knn_cover *c, size_t i);

/* ---- families ---------------------------------------------------------------------------------- */

knn_status knn_sample_kcenter(const knn_sample_in *in, knn_sample_result *r, knn_error *err);
knn_status knn_sample_kmeanspp(const knn_sample_in *in, knn_sample_result *r, knn_error *err);
knn_status knn_sample_kmeans(const knn_sample_in *in, knn_sample_result *r, knn_error *err);
knn_status knn_sample_weighted(const knn_sample_in *in, knn_sample_result *r, knn_error *err);
knn_status knn_sample_sensitivity(const knn_sample_in *in, knn_sample_result *r, knn_error *err);
knn_status knn_sample_balanced(const knn_sample_in *in, knn_sample_result *r, knn_error *err);
knn_status knn_sample_kernel_thin(const knn_sample_in *in, knn_sample_result *r, knn_error *err);
knn_status knn_sample_dpp(const knn_sample_in *in, knn_sample_result *r, knn_error *err);
knn_status knn_sample_depth(const knn_sample_in *in, knn_sample_result *r, knn_error *err);

/* ---- sums over all pairs (sample/pair_sums.c) ---------------------------------------------------- */

typedef enum knn_pair_fn {
    KNN_PAIR_DIST = 0,  /* sum of Euclidean distances (second sum: of squared distances) */
    KNN_PAIR_GAUSS = 1  /* sum of exp(-(d2 - shift[q]) * scale), terms capped at 1 (second sum: of squares) */
} knn_pair_fn;

typedef struct knn_pair_in {
    const float *R;      /* nr reference rows (row-major, d) */
    size_t nr;
    const int64_t *rid;  /* ids of the reference rows, ascending, or NULL */
    const float *Q;      /* nq query rows */
    size_t nq;
    const int64_t *qid;  /* ids of the queries, not descending, or NULL; a pair with qid == rid is left out */
    size_t d;
    knn_pair_fn fn;
    double scale;        /* KNN_PAIR_GAUSS: 1 / (2 h^2) */
    const double *shift; /* KNN_PAIR_GAUSS: per-query squared distance subtracted (its nearest), or NULL */
    size_t threads;      /* 0: every core */
    const knn_kernels *kern;
} knn_pair_in;

/* sum[q] (and sum2[q], when not NULL) over the reference rows, for every query. Results do not depend on
 * the thread count. */
knn_status knn_pair_sums(const knn_pair_in *in, double *sum, double *sum2, knn_error *err);

/* ---- statistical depth (sample/depth.c) -------------------------------------------------------- */

typedef enum knn_depth_metric { KNN_DEPTH_COSINE = 0, KNN_DEPTH_CHORD = 1, KNN_DEPTH_L2 = 2 } knn_depth_metric;

/* 'cosine' (NULL too), 'chord' or 'l2'. */
knn_status knn_depth_parse(const char *name, knn_depth_metric *out, knn_error *err);
const char *knn_depth_metric_name(knn_depth_metric m);

/* Depth of each of the n rows X (n x d) relative to the reference rows, those with is_ref[i] != 0 (all
 * rows when is_ref is NULL); a reference row's own distance is left out of its mean. sample (chord, l2):
 * the mean runs over that many reference rows drawn with seed (0: all of them). Needs 2 reference rows;
 * cosine and chord refuse zero vectors. */
knn_status knn_depth_compute(const float *X, size_t n, size_t d, const uint8_t *is_ref, knn_depth_metric metric,
                             size_t sample, uint64_t seed, size_t threads, const knn_kernels *kern, double *out,
                             knn_error *err);

/* ---- k-means building blocks (sample/kmeans.c) ---------------------------------------------- */

/* k-means++ seeds: k row positions into centers_idx (pick order). */
knn_status knn_kmeanspp_seed(const float *X, size_t n, size_t d, size_t k, knn_kpp_variant variant, size_t trials,
                             knn_rng *rng, size_t threads, const knn_kernels *kern, int64_t *centers_idx,
                             knn_error *err);

/* Nearest centroid of every row (ties: lower centroid), by a panel (GEMM-style) kernel, then the exact
 * squared distance to it. assign/dist2 may be NULL. threads >= 1; results do not depend on it. */
knn_status knn_kmeans_assign(const float *X, size_t n, size_t d, const float *C, size_t k, size_t threads,
                             const knn_kernels *kern, int32_t *assign, float *dist2, double *cost, knn_error *err);

/* Lloyd's algorithm from k-means++ seeds: centroids (k x d), assignment, cost, iterations run. */
typedef struct knn_kmeans_fit {
    float *C;        /* k x d */
    int32_t *assign; /* n */
    float *dist2;    /* n */
    double cost;
    size_t k;
    size_t iters;
} knn_kmeans_fit;

knn_status knn_kmeans_run(const float *X, size_t n, size_t d, size_t k, size_t iters, knn_kpp_variant init,
                          size_t trials, knn_rng *rng, size_t threads, const knn_kernels *kern, knn_kmeans_fit *fit,
                          knn_error *err);
void knn_kmeans_fit_free(knn_kmeans_fit *fit);

#endif
