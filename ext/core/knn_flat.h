/* Flat (exact) index: vectors in one 64-byte-aligned row-major block, searched by brute force.
 * Backs knnsql.Index(kind="flat") and is the recall oracle for approximate indexes. */
#ifndef KNN_FLAT_H
#define KNN_FLAT_H

#include "knn_api.h"

#endif
