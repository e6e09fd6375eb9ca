/* Library-level entry points of the public API (version and SIMD reporting). */
#include "kernels/knn_kernels.h"
#include "knn_api.h"
#include "base/knn_version.h"

const char *knn_version(void) { return KNN_VERSION; }

const char *knn_simd_name(void) { return knn_kernels_best()->name; }

const char *knn_simd_best(void) { return knn_kernels_for(knn_cpu_detect())->name; }
