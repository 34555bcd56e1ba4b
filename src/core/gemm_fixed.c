/* gemm_fixed.c - a matrix product whose every element is summed in one fixed order, whatever the
 * number of rows, the blocking or the threads: C (M, N) += A (M, K) B (K, N), row-major, element
 * (i, j) = C[i][j] + a[i][0] b[0][j] + a[i][1] b[1][j] + ... in k order, one fused multiply-add
 * at a time. A BLAS picks its kernels by the product's shape (OpenBLAS's small-matrix kernel below
 * 10^6 multiply-adds sums in another order than its large one), so an image's logits would depend
 * on how many images share its batch; with this product they do not. Inference uses it. Kernels:
 * AVX-512 (8 rows x 32 columns of accumulators) where the CPU has it, else portable C with fmaf:
 * the same bits on both. */
#include "core.h"

#include <immintrin.h>
#include <math.h>

#if defined(__GNUC__) && defined(__x86_64__)
#define HAS_X86 1
#endif

/* Rows [i0, i1) and columns [j0, j1) in plain C: the reference order. */
static void fixed_portable(int i0, int i1, int j0, int j1, int K, const float *A, int lda,
                           const float *B, int ldb, float *C, int ldc) {
    for (int i = i0; i < i1; i++) {
        const float *a = A + (size_t)i * lda;
        float *c = C + (size_t)i * ldc;
        for (int j = j0; j < j1; j++) {
            float s = c[j];
            for (int k = 0; k < K; k++)
                s = fmaf(a[k], B[(size_t)k * ldb + j], s);
            c[j] = s;
        }
    }
}

#ifdef HAS_X86
/* R rows (1..7, a constant where it is inlined) by up to 64 columns starting at j (masks m[0..3]
 * for the four 16-lane quarters): each accumulator lane is one element of C, its sum taken in k
 * order. Four vectors per row, so that even one row (one image) keeps four independent chains of
 * FMAs and two loads of B per FMA pair in flight. */
__attribute__((target("avx512f"), always_inline)) static inline void
fixed_rows(const int R, int j, const __mmask16 *m, int K, const float *A, int lda, const float *B,
           int ldb, float *C, int ldc) {
    __m512 c[7][4];
    for (int r = 0; r < R; r++)
        for (int v = 0; v < 4; v++)
            c[r][v] = _mm512_maskz_loadu_ps(m[v], C + (size_t)r * ldc + j + 16 * v);
    for (int k = 0; k < K; k++) {
        const float *b = B + (size_t)k * ldb + j;
        __m512 bv[4];
        for (int v = 0; v < 4; v++)
            bv[v] = _mm512_maskz_loadu_ps(m[v], b + 16 * v);
        for (int r = 0; r < R; r++) {
            __m512 a = _mm512_set1_ps(A[(size_t)r * lda + k]);
            for (int v = 0; v < 4; v++)
                c[r][v] = _mm512_fmadd_ps(a, bv[v], c[r][v]);
        }
    }
    for (int r = 0; r < R; r++)
        for (int v = 0; v < 4; v++)
            _mm512_mask_storeu_ps(C + (size_t)r * ldc + j + 16 * v, m[v], c[r][v]);
}

/* The rows left under a full tile, R = 1..7, over columns [j0, j1) in steps of 64. */
__attribute__((target("avx512f"))) static void fixed_rest(int R, int j0, int j1, int K,
                                                          const float *A, int lda, const float *B,
                                                          int ldb, float *C, int ldc) {
    for (int j = j0; j < j1; j += 64) {
        int w = j1 - j < 64 ? j1 - j : 64;
        __mmask16 m[4];
        for (int v = 0; v < 4; v++) {
            int n = w - 16 * v;
            m[v] = (__mmask16)(n >= 16 ? 0xFFFF : n > 0 ? (1u << n) - 1 : 0);
        }
        switch (R) {
        case 1: fixed_rows(1, j, m, K, A, lda, B, ldb, C, ldc); break;
        case 2: fixed_rows(2, j, m, K, A, lda, B, ldb, C, ldc); break;
        case 3: fixed_rows(3, j, m, K, A, lda, B, ldb, C, ldc); break;
        case 4: fixed_rows(4, j, m, K, A, lda, B, ldb, C, ldc); break;
        case 5: fixed_rows(5, j, m, K, A, lda, B, ldb, C, ldc); break;
        case 6: fixed_rows(6, j, m, K, A, lda, B, ldb, C, ldc); break;
        default: fixed_rows(7, j, m, K, A, lda, B, ldb, C, ldc); break;
        }
    }
}

/* The full 8-row tile, its 16 accumulators named so that they stay in registers. */
#define TILE_ROW(r)                                                                                \
    __m512 x##r##0 = _mm512_maskz_loadu_ps(m0, C + (size_t)(r)*ldc + j),                           \
           x##r##1 = _mm512_maskz_loadu_ps(m1, C + (size_t)(r)*ldc + j + 16)
#define TILE_FMA(r)                                                                                \
    do {                                                                                           \
        __m512 a = _mm512_set1_ps(A[(size_t)(r)*lda + k]);                                         \
        x##r##0 = _mm512_fmadd_ps(a, b0, x##r##0);                                                 \
        x##r##1 = _mm512_fmadd_ps(a, b1, x##r##1);                                                 \
    } while (0)
#define TILE_STORE(r)                                                                              \
    do {                                                                                           \
        _mm512_mask_storeu_ps(C + (size_t)(r)*ldc + j, m0, x##r##0);                               \
        _mm512_mask_storeu_ps(C + (size_t)(r)*ldc + j + 16, m1, x##r##1);                          \
    } while (0)

__attribute__((target("avx512f"))) static void fixed_tile8(int j, __mmask16 m0, __mmask16 m1, int K,
                                                           const float *A, int lda, const float *B,
                                                           int ldb, float *C, int ldc) {
    TILE_ROW(0);
    TILE_ROW(1);
    TILE_ROW(2);
    TILE_ROW(3);
    TILE_ROW(4);
    TILE_ROW(5);
    TILE_ROW(6);
    TILE_ROW(7);
    for (int k = 0; k < K; k++) {
        const float *b = B + (size_t)k * ldb + j;
        __m512 b0 = _mm512_maskz_loadu_ps(m0, b), b1 = _mm512_maskz_loadu_ps(m1, b + 16);
        TILE_FMA(0);
        TILE_FMA(1);
        TILE_FMA(2);
        TILE_FMA(3);
        TILE_FMA(4);
        TILE_FMA(5);
        TILE_FMA(6);
        TILE_FMA(7);
    }
    TILE_STORE(0);
    TILE_STORE(1);
    TILE_STORE(2);
    TILE_STORE(3);
    TILE_STORE(4);
    TILE_STORE(5);
    TILE_STORE(6);
    TILE_STORE(7);
}

__attribute__((target("avx512f"))) static void fixed_avx512(int i0, int i1, int j0, int j1, int K,
                                                            const float *A, int lda, const float *B,
                                                            int ldb, float *C, int ldc) {
    int i8 = i0 + (i1 - i0) / 8 * 8; /* full 8-row tiles up to i8, then the rest */
    for (int j = j0; j < j1 && i8 > i0; j += 32) {
        int w = j1 - j < 32 ? j1 - j : 32;
        __mmask16 m0 = (__mmask16)(w >= 16 ? 0xFFFF : (1u << w) - 1);
        __mmask16 m1 = (__mmask16)(w >= 32 ? 0xFFFF : w > 16 ? (1u << (w - 16)) - 1 : 0);
        for (int i = i0; i < i8; i += 8)
            fixed_tile8(j, m0, m1, K, A + (size_t)i * lda, lda, B, ldb, C + (size_t)i * ldc, ldc);
    }
    if (i8 < i1)
        fixed_rest(i1 - i8, j0, j1, K, A + (size_t)i8 * lda, lda, B, ldb, C + (size_t)i8 * ldc,
                   ldc);
}
#endif

static bool has_avx512(void) {
    static int known = -1;
    if (known < 0) {
        loom_cpu f;
        loom_cpu_features(&f);
        known = f.has_avx512;
    }
    return known;
}

/* Gives the portable path to the tests (the two must agree bit for bit). */
static bool g_force_portable = false;
void gemm_fixed_force_portable(bool on) { g_force_portable = on; }

/* A block of the product: rows [i0, i1), columns [j0, j1). */
static void fixed_block(int i0, int i1, int j0, int j1, int K, const float *A, int lda,
                        const float *B, int ldb, float *C, int ldc) {
#ifdef HAS_X86
    if (!g_force_portable && has_avx512()) {
        fixed_avx512(i0, i1, j0, j1, K, A, lda, B, ldb, C, ldc);
        return;
    }
#endif
    fixed_portable(i0, i1, j0, j1, K, A, lda, B, ldb, C, ldc);
}

typedef struct {
    int M, N, K, lda, ldb, ldc, n_col_blocks;
    const float *A, *B;
    float *C;
} fixed_job;

/* Chunk c: column blocks of 64 (all rows), or when there is one column block, blocks of 8 rows
 * (whole tiles: a chunk of a row or two would stream B once per row). */
static void fixed_chunk(void *ctx, long lo, long hi, int c) {
    (void)c;
    const fixed_job *g = ctx;
    if (g->n_col_blocks > 1) {
        int j0 = (int)lo * 64, j1 = (int)hi * 64 < g->N ? (int)hi * 64 : g->N;
        fixed_block(0, g->M, j0, j1, g->K, g->A, g->lda, g->B, g->ldb, g->C, g->ldc);
    } else {
        int i0 = (int)lo * 8, i1 = (int)hi * 8 < g->M ? (int)hi * 8 : g->M;
        fixed_block(i0, i1, 0, g->N, g->K, g->A, g->lda, g->B, g->ldb, g->C, g->ldc);
    }
}

void gemm_fixed(int M, int N, int K, const float *A, int lda, const float *B, int ldb, float *C,
                int ldc) {
    if (M <= 0 || N <= 0 || K <= 0)
        return;
    fixed_job g = {M, N, K, lda, ldb, ldc, (N + 63) / 64, A, B, C};
    /* enough work per chunk (about 1 MFLOP) to pay for a task; the split never changes a sum */
    double work = 2.0 * M * N * K;
    int by_work = (int)(work / 1e6);
    int units = g.n_col_blocks > 1 ? g.n_col_blocks : (M + 7) / 8;
    if (par_is_serial()) { /* one thread: the whole product, no chunks to cut its tiles */
        fixed_block(0, M, 0, N, K, A, lda, B, ldb, C, ldc);
        return;
    }
    int nc = by_work < units ? by_work : units;
    if (nc > 16)
        nc = 16;
    par_for(units, nc < 1 ? 1 : nc, fixed_chunk, &g);
}
