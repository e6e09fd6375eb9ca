/* Runtime CPU dispatch: probe the CPU, honour the KNNSQL_SIMD cap, hand out a kernel table. */
#include "kernels/knn_kernels.h"

#include <stdlib.h>
#include <string.h>

knn_isa knn_cpu_detect(void) {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    /* __builtin_cpu_supports also checks that the OS saves the wider registers (XCR0). */
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f")) return KNN_ISA_AVX512;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return KNN_ISA_AVX2;
#endif
    return KNN_ISA_SCALAR;
}

/* KNNSQL_SIMD caps the level; an unknown value is ignored (the best level is used). */
static knn_isa env_cap(void) {
    const char *v = getenv("KNNSQL_SIMD");
    if (v == NULL) return KNN_ISA_AVX512;
    if (strcmp(v, "scalar") == 0) return KNN_ISA_SCALAR;
    if (strcmp(v, "avx2") == 0) return KNN_ISA_AVX2;
    return KNN_ISA_AVX512;
}

const knn_kernels *knn_kernels_for(knn_isa isa) {
    if (isa > knn_cpu_detect()) return NULL;
    switch (isa) {
    case KNN_ISA_AVX512: return &knn_kernels_avx512;
    case KNN_ISA_AVX2: return &knn_kernels_avx2;
    case KNN_ISA_SCALAR: return &knn_kernels_scalar;
    }
    return NULL;
}

const knn_kernels *knn_kernels_best(void) {
    knn_isa isa = knn_cpu_detect();
    knn_isa cap = env_cap();
    if (cap < isa) isa = cap;
    return knn_kernels_for(isa);
}
