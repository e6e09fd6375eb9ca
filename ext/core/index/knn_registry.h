/* Named indexes of one database, and the operations SQL needs on any kind of index.
 *
 * The DuckDB glue hangs one registry on the extra_info of its index functions, so it lives exactly as
 * long as the database. Entries are reference-counted: a search holding an entry keeps its index
 * alive even if another connection drops the name meanwhile. */
#ifndef KNN_REGISTRY_H
#define KNN_REGISTRY_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "attrs/knn_predicate.h"
#include "exact/knn_flat.h"
#include "base/knn_error.h"
#include "graph/knn_graph.h"
#include "base/knn_metric.h"

#define KNN_NAME_MAX 128
#define KNN_SOURCE_MAX 255 /* bytes of a source table name */
#define KNN_DIR_MAX 1023   /* bytes of a directory for vector files */

typedef enum knn_kind { KNN_KIND_FLAT = 0, KNN_KIND_GRAPH = 1 } knn_kind;

typedef struct knn_entry {
    char name[KNN_NAME_MAX + 1];
    knn_kind kind;
    knn_flat *flat;
    knn_graph *graph;
    size_t dim;
    knn_metric metric;
    _Atomic double last_optimize; /* unix seconds of the last optimize, 0 when never */
    _Atomic unsigned label_kind;  /* the SQL label type of this index (glue's code), 0 until labelled */
    _Atomic size_t memory_limit;  /* bytes an insert may grow the index to; 0: no cap */
    _Atomic long refs;
    /* The last knn_index_recall measurement (recall NaN: never measured): mean recall@recall_k at search
     * width recall_ef, when the index held recall_rows rows. Stored field by field: a reader racing a
     * measurement may pair fields of two measurements, which knn_indexes() tolerates. */
    _Atomic double recall;
    _Atomic size_t recall_k, recall_ef, recall_rows;
    char source[KNN_SOURCE_MAX + 1]; /* the table its rows came from, as knn_index_create was told ("": none);
                                      * set once before the entry is shared, read-only after */
} knn_entry;

typedef struct knn_registry knn_registry;

knn_registry *knn_registry_new(void);
void knn_registry_retain(knn_registry *r);
/* Drops one reference; the last one frees every index. */
void knn_registry_release(knn_registry *r);

/* Memory cap new entries start with (0: none); the SQL layer sets it from DuckDB's memory_limit. */
void knn_registry_set_default_memory_limit(knn_registry *r, size_t bytes);
size_t knn_registry_default_memory_limit(knn_registry *r);
/* Directory new 'sq8' indexes create their vector files in unless told otherwise ("": the working
 * directory); the SQL layer sets it from DuckDB's temp_directory at load. */
void knn_registry_set_vectors_dir(knn_registry *r, const char *dir);
const char *knn_registry_vectors_dir(knn_registry *r);

/* Checks an index name: 1..128 bytes. */
knn_status knn_name_check(const char *name, size_t len, knn_error *err);

/* Creates and registers a new index; fails when the name exists. */
knn_status knn_registry_create(knn_registry *r, const char *name, size_t len, knn_kind kind, size_t dim,
                               knn_metric metric, const knn_graph_params *params, knn_error *err);
/* Registers an index built elsewhere (restore); takes ownership of graph even on failure. */
knn_status knn_registry_adopt(knn_registry *r, const char *name, size_t len, knn_graph *graph, knn_error *err);
/* The entry, retained (release with knn_entry_release), or NULL with an error naming the index. */
knn_entry *knn_registry_get(knn_registry *r, const char *name, size_t len, knn_error *err);
/* Unregisters; returns 1 when the name existed. The index is freed when its last user releases it. */
int knn_registry_drop(knn_registry *r, const char *name, size_t len);
/* Retained entries sorted by name; caller releases each and frees the array. */
size_t knn_registry_list(knn_registry *r, knn_entry ***out);

void knn_entry_release(knn_entry *e);

/* Operations on any kind of entry. */
/* labels may be NULL (no labels); NaN means no label for that row. */
knn_status knn_entry_add(knn_entry *e, const float *vecs, const int64_t *ids, const double *labels, size_t n,
                         knn_error *err);
/* knn_entry_add with attribute columns (graph indexes only; a flat index refuses a batch with columns). */
knn_status knn_entry_add_attrs(knn_entry *e, const float *vecs, const int64_t *ids, const double *labels,
                               const knn_attr_batch *attrs, size_t n, knn_error *err);
knn_status knn_entry_delete(knn_entry *e, const int64_t *ids, size_t n, size_t *removed, knn_error *err);
knn_status knn_entry_optimize(knn_entry *e, knn_error *err);
/* One query: up to k results into ids/dists; *found how many. ef = 0: index default (graph only); rerank:
 * a coded graph's re-rank depth (0: the whole beam; knn_graph_search_rerank). */
knn_status knn_entry_search(knn_entry *e, const float *q, size_t k, size_t ef, size_t rerank, int64_t *ids,
                            float *dists, size_t *found, knn_error *err);
/* Many queries against a flat index in one blocked pass (row stride k); *found results per query.
 * Fails with KNN_EINVAL for other kinds. */
knn_status knn_entry_search_flat_batch(knn_entry *e, const float *Q, size_t nq, size_t k, int64_t *ids, float *dists,
                                       size_t *found, knn_error *err);
/* Window search: only rows whose label is in [lo, hi]. */
knn_status knn_entry_search_window(knn_entry *e, const float *q, size_t k, size_t ef, size_t rerank, double lo,
                                   double hi, int64_t *ids, float *dists, size_t *found, knn_error *err);
/* nq queries answered among the rows a predicate over the attribute columns accepts (and, windowed, whose
 * label is in [lo, hi]); rows of ids/dists have stride k; plans may be NULL (filter/knn_filter.h). */
knn_status knn_entry_search_filter(knn_entry *e, const float *queries, size_t nq, size_t k, size_t ef, size_t rerank,
                                   const knn_predicate *pred, int windowed, double lo, double hi, size_t threads,
                                   int64_t *ids, float *dists, size_t *found, int *plans, knn_error *err);
size_t knn_entry_count(const knn_entry *e);
/* Sets the label kind on first use; returns the kind in force (which may differ from kind). */
unsigned knn_entry_claim_label_kind(knn_entry *e, unsigned kind);
/* Label range of live rows; 0 when none has a label. */
int knn_entry_label_range(knn_entry *e, double *lo, double *hi);
size_t knn_entry_deleted(const knn_entry *e);
size_t knn_entry_memory(const knn_entry *e);
/* Bytes of the files an index maps its float rows from (a quantized index; 0 otherwise). */
size_t knn_entry_disk_bytes(const knn_entry *e);
/* "sq8", "sq4" or "none". */
const char *knn_entry_quantization(const knn_entry *e);
/* Estimated knn_entry_memory after adding `rows` new rows (labelled or not): the storage growth the
 * index would make (flat doubles, graph grows by half), upper links, id map and window copy, plus the
 * insert's own buffer of the rows. Errs on the high side; used to refuse builds over a memory cap. */
double knn_entry_bytes_after(knn_entry *e, size_t rows, int labelled);
/* Live ids: malloc'd array (free with free()), count in *n. */
knn_status knn_entry_ids(knn_entry *e, int64_t **out, size_t *n, knn_error *err);
const char *knn_kind_name(knn_kind kind);

#endif
