/* Graph ANN index (HNSW).
 *
 * Implements Hierarchical Navigable Small World graphs (Malkov & Yashunin, TPAMI 2018): a layered
 * proximity graph searched greedily from the top layer down, with a beam of width ef on layer 0.
 * Neighbours are chosen with the paper's diversity heuristic (Algorithm 4). Layout follows hnswlib's
 * idea of one flat level-0 block, but each node's slot is [count | M0 links | vector] padded to 64
 * bytes, so expanding a node touches one contiguous region. Under cosine, vectors are stored
 * normalised and compared by inner product.
 *
 * Concurrency: searches take a shared lock; add/delete/optimize take it exclusively. A batch add runs
 * on several threads with per-node spinlocks on the link lists, as hnswlib's parallel build does.
 * Deletes are tombstones: deleted nodes still route searches but never appear in results, and
 * knn_graph_optimize rebuilds the graph from the live rows to reclaim them. */
#ifndef KNN_GRAPH_H
#define KNN_GRAPH_H

#include <stddef.h>
#include <stdint.h>

#include "attrs/knn_attrs.h"
#include "base/knn_error.h"
#include "base/knn_metric.h"

typedef struct knn_graph knn_graph;

typedef struct knn_graph_params {
    size_t m;               /* links per node on upper layers; layer 0 gets 2*m */
    size_t ef_construction; /* beam width while building */
    size_t ef;              /* default beam width while searching */
    uint64_t seed;          /* layer draws */
} knn_graph_params;

/* Defaults: m=16, ef_construction=200, ef=64, seed=42. */
knn_graph_params knn_graph_default_params(void);

knn_status knn_graph_create(size_t dim, knn_metric metric, const knn_graph_params *params, knn_graph **out,
                            knn_error *err);
void knn_graph_free(knn_graph *g);

/* Adds n vectors; an id already present is replaced (old node tombstoned). threads = 0: all cores.
 * labels (may be NULL) gives each row a numeric label for window searches; NaN means no label (such
 * rows are never in a window). Validates everything (NaN/Inf vectors, cosine zero vectors) before
 * changing anything. */
knn_status knn_graph_add(knn_graph *g, const float *vecs, const int64_t *ids, const double *labels, size_t n,
                         size_t threads, knn_error *err);

/* knn_graph_add with attribute columns (attrs/knn_attrs.h): node of input row i gets batch row i's values
 * (attrs NULL or without columns: the new rows are NULL in every column). A batch whose types clash with
 * the index's columns is refused before anything changes. */
knn_status knn_graph_add_with_attrs(knn_graph *g, const float *vecs, const int64_t *ids, const double *labels,
                              const knn_attr_batch *attrs, size_t n, size_t threads, knn_error *err);
/* Attribute columns of the index as "name TYPE" pairs, comma-separated, into buf ("" when none). */
void knn_graph_attr_schema(knn_graph *g, char *buf, size_t len);
/* Names and types of up to cap attribute columns; returns how many. */
size_t knn_graph_attr_columns(knn_graph *g, char names[][KNN_ATTR_NAME_MAX + 1], knn_attr_type *types, size_t cap);
/* Values of attribute column `name` for the live rows with the given ids: valid[i] = 0 for NULL, a row
 * not in the index, or a column the index lacks (*type = 0 then). By the column's physical kind, i64[i],
 * f64[i] or strs[i] / lens[i] (pointers into the index's dictionary, valid while the index lives). */
knn_status knn_graph_attr_gather(knn_graph *g, const int64_t *ids, size_t n, const char *name, size_t len,
                                 knn_attr_type *type, int64_t *i64, double *f64, const char **strs, uint32_t *lens,
                                 uint8_t *valid, knn_error *err);

/* Tombstones the given ids; unknown ids are ignored. *removed counts the ids that were live. */
knn_status knn_graph_delete(knn_graph *g, const int64_t *ids, size_t n, size_t *removed, knn_error *err);

/* Rebuilds the graph from live rows, dropping tombstones. */
knn_status knn_graph_optimize(knn_graph *g, size_t threads, knn_error *err);

/* k nearest live rows of one query. ef = 0 uses the index default; ef < k is raised to k. Writes up
 * to k results and sets *found; fewer than k only when fewer live rows exist. */
/* Exact k nearest live rows of nq queries (rows of `queries`), scanning the index's own rows on
 * `threads` threads (0: all cores); found[q] = min(k, live), missing entries are id -1 / +inf. */
knn_status knn_graph_exact(knn_graph *g, const float *queries, size_t nq, size_t k, size_t threads,
                           int64_t *out_ids, float *out_dists, size_t *found, knn_error *err);
knn_status knn_graph_search(knn_graph *g, const float *query, size_t k, size_t ef, int64_t *out_ids,
                            float *out_dists, size_t *found, knn_error *err);
/* knn_graph_search with a re-rank depth for a coded graph (knn_graph_set_storage): the best `rerank` rows
 * of the beam by code distance are re-scored with float distances and the k nearest of them returned,
 * sorted by (distance, id); 0 re-ranks the whole beam, a depth above ef widens the beam to it. Float
 * graphs ignore it. */
knn_status knn_graph_search_rerank(knn_graph *g, const float *query, size_t k, size_t ef, size_t rerank,
                                   int64_t *out_ids, float *out_dists, size_t *found, knn_error *err);

/* An opaque tag saying what labels mean (kept in the byte format); 0 until set. */
uint32_t knn_graph_label_tag(const knn_graph *g);
void knn_graph_set_label_tag(knn_graph *g, uint32_t tag);
/* Smallest and largest label of live rows; returns 0 when no live row has a label. */
int knn_graph_label_range(knn_graph *g, double *lo, double *hi);
/* Window searches over the labels live in window/knn_window.h. */

size_t knn_graph_live(const knn_graph *g);    /* live rows */
size_t knn_graph_deleted(const knn_graph *g); /* tombstoned rows */
size_t knn_graph_dim(const knn_graph *g);
knn_metric knn_graph_metric(const knn_graph *g);
/* The settings; ef is the default search width (the tuned one when knn_graph_set_default_ef set it). */
knn_graph_params knn_graph_get_params(const knn_graph *g);
/* Width a search uses when it is given ef = 0. */
size_t knn_graph_default_ef(const knn_graph *g);
/* Sets that width (>= 1); the cost models keep the width they were calibrated at. Saved with the graph. */
void knn_graph_set_default_ef(knn_graph *g, size_t ef);
size_t knn_graph_memory(const knn_graph *g);  /* bytes held */

/* Copies up to cap live ids in internal order; returns how many were copied. */
size_t knn_graph_ids(knn_graph *g, int64_t *out, size_t cap);

/* Storage of an empty graph: quantization "none" (float rows in the graph, the default), "sq8" or "sq4"
 * (8- or 4-bit codes per dimension in memory, ranges trained on the first batch; float rows in an unlinked
 * file created in vectors_dir, "." when NULL or empty). Searches walk the graph by code distances and
 * re-rank the beam with float distances; builds link by float distances. Refused once rows exist. */
knn_status knn_graph_set_storage(knn_graph *g, const char *quantization, const char *vectors_dir, knn_error *err);
/* "sq8", "sq4" or "none". */
const char *knn_graph_quantization(const knn_graph *g);
/* Bytes of the files a coded graph maps its float rows from (0 for a float graph). */
size_t knn_graph_disk_bytes(const knn_graph *g);
/* Gives a restored coded graph the float rows of live ids (rows of vecs, as added: normalised here under
 * cosine). Each row must code to the codes the index holds for its id, or the call fails and changes
 * nothing; ids the index does not hold, or whose row it already has, are skipped. *filled counts the rows
 * taken. Searches run once no live row lacks its float row. */
knn_status knn_graph_restore_vectors(knn_graph *g, const float *vecs, const int64_t *ids, size_t n, size_t *filled,
                                     knn_error *err);
/* Live rows still without their float row (0 unless restored without them). */
size_t knn_graph_missing_vectors(const knn_graph *g);

/* Serialises to a malloc'd buffer (free with free()). Format: magic, version, endianness, header,
 * nodes, FNV-1a checksum; see graph/graph_io.c. */
knn_status knn_graph_save(knn_graph *g, uint8_t **buf, size_t *len, knn_error *err);
/* Rebuilds an index from bytes; every length and link is bounds-checked, corrupt input is an error. */
knn_status knn_graph_load(const uint8_t *buf, size_t len, knn_graph **out, knn_error *err);
/* knn_graph_load with the directory a coded graph's float-row file is created in ("." when NULL or empty).
 * A coded graph comes back with its codes, ranges and links, not re-encoded, and without its float rows:
 * knn_graph_restore_vectors gives them back (searches are refused until then). */
knn_status knn_graph_load_at(const uint8_t *buf, size_t len, const char *vectors_dir, knn_graph **out,
                             knn_error *err);

#endif
