/* kNN analytics aggregates: the shared collector (sql_analytics.c) and the per-function finalisers
 * (sql_analytics_predict.c, sql_analytics_drift.c, sql_analytics_sampling.c), each of which registers
 * its functions through the kit (knn_kit.h) with the collector's hooks, AN_HOOKS.
 *
 * Every analytics aggregate gathers its whole input — (id, vector, role column) rows — into one
 * accumulator per group, merges accumulators of parallel scans in combine, and in finalize sorts the
 * rows by (id, role value, vector bytes) so that the result does not depend on how DuckDB split the
 * scan, then hands contiguous arrays to the core (ext/core/knn_analytics_*.c). */
#ifndef SQL_ANALYTICS_H
#define SQL_ANALYTICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "duckdb_extension.h"
#include "base/knn_error.h"
#include "index/knn_registry.h"
#include "knn_api.h"
#include "knn_kit.h"

/* What the role column holds. */
typedef enum an_aux {
    AN_AUX_NONE = 0,
    AN_AUX_BIGINT = 1, /* class label; NULL marks a row to predict */
    AN_AUX_DOUBLE = 2, /* value; NULL marks a row to predict / impute */
    AN_AUX_BOOL = 3,   /* side flag; NULL rows are skipped */
    AN_AUX_ORDER = 4   /* BIGINT order key; NULL rows are skipped */
} an_aux;

/* Options given as one 'key=value, key=value' string (aggregates take no named parameters). */
typedef struct an_opts {
    char metric[16];
    int weighting;
    double temperature;
    uint64_t seed;
    int64_t draws;
    bool adaptive;
    int64_t support;
    double alpha;
    int method;
    int64_t permutations;
    double q_lo, q_hi;
    char index[KNN_NAME_MAX + 1];
    int64_t ef;
    double significance;
    int64_t refine_ef; /* knn_predict over a graph index: second beam for unsettled votes (0: none) */
    bool metric_set;   /* metric given (functions whose default is not l2 read this) */
    bool chord;        /* metric=chord (functions with AN_CHORD only; metric then reads "cosine") */
    int64_t sample;    /* knn_depth: reference rows sampled per mean distance (0: all) */
    int alternative;   /* knn_depth_test: 0 greater, 1 less, 2 two-sided */
    double bandwidth;  /* knn_kde: the bandwidth when bw_rule is KNN_KDE_GIVEN */
    int bw_rule;       /* knn_kde: KNN_KDE_GIVEN, KNN_KDE_SCOTT (default), KNN_KDE_SILVERMAN */
    double power;      /* knn_interpolate: inverse-distance power (default 2) */
} an_opts;

typedef struct an_spec an_spec;

/* All rows of one group. */
typedef struct an_acc {
    const an_spec *spec;
    const char *fn; /* the SQL function's name, for messages */
    knn_registry *reg;
    size_t dim, n, cap;
    float *vecs;
    int64_t *ids;
    double *dval;
    int64_t *ival;
    unsigned char *has_aux;
    int64_t k, count_param;
    char opt_text[512];
    bool has_opts;
} an_acc;

/* Rows in canonical order: perm[i] is the accumulator row at sorted position i. */
typedef struct an_rows {
    const an_acc *acc;
    size_t *perm;
    an_opts opts;
} an_rows;

typedef knn_status (*an_finalize_fn)(const an_rows *rows, duckdb_vector result, idx_t out_row, knn_error *err);

/* an_spec flags */
#define AN_CHORD 1u /* metric=chord is accepted */

/* One overload's argument layout; it is the kit entry's data. */
struct an_spec {
    int id_col, vec_col, aux_col, k_col, count_col; /* -1 when absent (k then reads 0); the options column
                                                       follows the last */
    an_aux aux;
    const char *keys;            /* option keys accepted, comma-separated */
    an_finalize_fn finalize;
    unsigned flags;              /* AN_* */
};

/* Parses opts text for spec (defaults first); errors name the bad key and the accepted ones. */
knn_status an_opts_parse(const an_spec *spec, const char *fn, const char *text, an_opts *o, knn_error *err);

/* Contiguous copies of the rows at sorted positions selected by sel (NULL: all), count *n. */
knn_status an_gather(const an_rows *rows, bool (*sel)(const an_acc *, size_t), float **vecs, int64_t **ids,
                     size_t **src, size_t *n, knn_error *err);

/* Row selectors for an_gather: the role column set and true / not true; labelled / unlabelled. */
bool an_sel_aux(const an_acc *a, size_t r);
bool an_sel_no_aux(const an_acc *a, size_t r);
bool an_sel_labelled(const an_acc *a, size_t r);
bool an_sel_unlabelled(const an_acc *a, size_t r);

/* A core call's (status, message) as a knn_status. */
#define AN_MSG 512
knn_status an_core(int status, const char *msg, knn_error *err);

/* k neighbours of each of the n rows X among the others (the row itself left out): fails unless
 * k < n, then allocates *nbr and *dist (n x k; the caller frees them). what names the rows. */
knn_status an_self_knn(const an_rows *rows, const float *X, size_t n, size_t k, const char *what, int64_t **nbr,
                       float **dist, knn_error *err);

/* The kit hooks every analytics aggregate shares. */
void an_acc_free(void *acc);
knn_status an_update(const knn_agg_ctx *cx, duckdb_data_chunk input, duckdb_aggregate_state *states, knn_error *err);
knn_status an_merge(const knn_agg_ctx *cx, knn_agg_state *src, knn_agg_state *dst, knn_error *err);
knn_status an_finalize(const knn_agg_ctx *cx, knn_agg_state *st, duckdb_vector result, idx_t row, knn_error *err);
#define AN_HOOKS .free_acc = an_acc_free, .update = an_update, .merge = an_merge, .finalize = an_finalize

#endif
