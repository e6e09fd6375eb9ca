/* Float32 distance kernels and their runtime dispatch.
 *
 * Each ISA file (scalar.c, avx2.c, avx512.c) fills one knn_kernels table; its functions carry
 * per-function target attributes, so one binary runs on any x86-64 CPU and picks the best table
 * the CPU supports at run time. KNNSQL_SIMD=scalar|avx2|avx512 caps the level (for tests). */
#ifndef KNN_KERNELS_H
#define KNN_KERNELS_H

#include <stddef.h>
#include <stdint.h>

/* Rows per packed panel in the batch (GEMM-style) kernel, for every ISA. */
#define KNN_PANEL_ROWS 16
/* Queries per micro-tile of the batch kernel. */
#define KNN_TILE_QUERIES 4
/* Rows per block of the 8-bit code layout (u8_l2sq_block). */
#define KNN_CODE_BLOCK 64

typedef enum knn_isa { KNN_ISA_SCALAR = 0, KNN_ISA_AVX2 = 1, KNN_ISA_AVX512 = 2 } knn_isa;

typedef struct knn_kernels {
    knn_isa isa;
    const char *name;
    /* out[i] = ||q - X[i]||^2 for n contiguous rows of dimension d. */
    void (*l2sq_rows)(const float *q, const float *X, size_t n, size_t d, float *out);
    /* out[i] = <q, X[i]>. */
    void (*dot_rows)(const float *q, const float *X, size_t n, size_t d, float *out);
    /* dot[i] = <q, X[i]>, norm2[i] = ||X[i]||^2, in one pass over X. */
    void (*dot_norm_rows)(const float *q, const float *X, size_t n, size_t d, float *dot, float *norm2);
    /* One micro-tile of the batch kernel: nq <= KNN_TILE_QUERIES queries (rows of Q, stride d)
     * against one panel of KNN_PANEL_ROWS rows packed dimension-major (panel[j*16 + r] = X[r][j]).
     * out[i*KNN_PANEL_ROWS + r] = <Q[i], X[r]>. */
    void (*dot_panel)(const float *Q, size_t nq, const float *panel, size_t d, float *out);
    /* As l2sq_rows / dot_rows for n rows given by pointer (graph neighbours scattered in memory). */
    void (*l2sq_ptrs)(const float *q, const float *const *rows, size_t n, size_t d, float *out);
    void (*dot_ptrs)(const float *q, const float *const *rows, size_t n, size_t d, float *out);
    /* The 8-bit screen of one block of KNN_CODE_BLOCK code rows against one code vector cq. Codes are
     * bytes grouped by dimension pairs: block[p*2*KNN_CODE_BLOCK + 2*r + t] is row r's code of dimension
     * 2p+t, cq[2p+t] the query's. With S_r = sum_j (row_j - cq_j)^2 (exact, in integers), bit r of the
     * result is set when reach[r] >= 0 and S_r * scale2 < (reach[r] + cerr)^2. npairs <= 16384 keeps
     * every S_r inside 31 bits. */
    uint64_t (*u8_screen_block)(const uint8_t *cq, const uint8_t *block, size_t npairs, const float *reach,
                                float cerr, float scale2);
    /* The integer sums S_r of u8_screen_block for the block's KNN_CODE_BLOCK rows, into out; bit r of
     * the result is set when S_r < cut (cut <= INT32_MAX). */
    uint64_t (*u8_dist_block)(const uint8_t *cq, const uint8_t *block, size_t npairs, uint32_t cut, uint32_t *out);
    /* Integer dot products of n rows of 8-bit codes given by pointer (dpad bytes each, dpad a multiple of
     * 16) with int16 weights: out[i] = sum_j w[j] * rows[i][j]. The caller keeps every sum within 32 bits
     * (quant/knn_sq.h). */
    void (*sq8_dot_ptrs)(const int16_t *w, const uint8_t *const *rows, size_t n, size_t dpad, int32_t *out);
    /* The same over rows of 4-bit codes (dpad / 2 bytes, dpad a multiple of 64; byte 32g + b holds dimension
     * 64g + b in its low nibble and 64g + 32 + b in its high one) with int8 weights, |w| <= 127. */
    void (*sq4_dot_ptrs)(const int8_t *w, const uint8_t *const *rows, size_t n, size_t dpad, int32_t *out);
} knn_kernels;

extern const knn_kernels knn_kernels_scalar;
extern const knn_kernels knn_kernels_avx2;
extern const knn_kernels knn_kernels_avx512;

/* Highest ISA this CPU supports. */
knn_isa knn_cpu_detect(void);

/* The kernels to use: the best the CPU supports, capped by KNNSQL_SIMD if set.
 * Reads the CPU and environment on every call; callers resolve once and keep the pointer. */
const knn_kernels *knn_kernels_best(void);

/* The kernels of one ISA, or NULL when this CPU cannot run them. */
const knn_kernels *knn_kernels_for(knn_isa isa);

/* The AVX2 screen kernel, shared by the AVX-512 table (every AVX-512 CPU runs AVX2). */
uint64_t knn_u8_screen_block_avx2(const uint8_t *cq, const uint8_t *block, size_t npairs, const float *reach,
                                  float cerr, float scale2);
uint64_t knn_u8_dist_block_avx2(const uint8_t *cq, const uint8_t *block, size_t npairs, uint32_t cut, uint32_t *out);
/* The AVX2 code dot products, shared by the AVX-512 table the same way. */
void knn_sq8_dot_ptrs_avx2(const int16_t *w, const uint8_t *const *rows, size_t n, size_t dpad, int32_t *out);
void knn_sq4_dot_ptrs_avx2(const int8_t *w, const uint8_t *const *rows, size_t n, size_t dpad, int32_t *out);

#endif
