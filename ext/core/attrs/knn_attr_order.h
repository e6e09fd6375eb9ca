/* Sorted orders of attribute columns: the scalar index behind selective filters.
 *
 * A column's order lists the rows that have a value, sorted by it (DuckDB's NaN order for doubles: NaN
 * above every number and equal to itself; dictionary codes for VARCHAR), over the
 * rows [0, ordered) that existed when it was built; rows appended later are not in it and the reader
 * scans them. A range, an equality or an IN list then finds its rows by binary search instead of a scan
 * of the whole column (a filter keeping 0.1% of 400k rows: ~0.3 ms of scanning against a few µs), as
 * the B-tree / sorted scalar indexes of LanceDB, Qdrant's payload indexes and every row store do.
 *
 * Who keeps it: the owner of the store calls knn_attrs_order_refresh after a write batch (a graph index
 * does after each insert, optimize and load, under its write lock). Refresh builds the order of a column
 * of at least KNN_ATTR_ORDER_MIN_ROWS rows, and rebuilds it when the unordered tail has grown past an
 * eighth of the rows, so appends cost O(log n) amortised sort work per row. A write to an ordered row
 * (never done by a graph index, which appends) drops that column's order until the next refresh.
 * Building is an LSD radix sort of (key, row) pairs, 8 bits a pass, passes whose byte is constant
 * skipped; failing to allocate leaves the column without an order (it is only an accelerator). */
#ifndef KNN_ATTR_ORDER_H
#define KNN_ATTR_ORDER_H

#include <stddef.h>
#include <stdint.h>

#include "attrs/knn_attrs.h"

#define KNN_ATTR_ORDER_MIN_ROWS 4096

/* Builds or rebuilds the orders that are missing or stale (see above). */
void knn_attrs_order_refresh(knn_attrs *a);
/* Forgets every column's order (the rows were renumbered or cut). */
void knn_attrs_order_drop_all(knn_attrs *a);
void knn_attr_order_drop(knn_attr_col *c);

/* First position p in [0, c->norder) at which above(c, c->order[p], arg) holds, for an `above` that is
 * monotone along the order (false, then true); c->norder when it never holds. */
size_t knn_attr_order_first(const knn_attr_col *c, int (*above)(const knn_attr_col *c, uint32_t row, const void *arg),
                            const void *arg);

#endif
