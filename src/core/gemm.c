/* gemm.c - matrix products through CBLAS and the deterministic parallel split.
 * All products are row-major. The BLAS itself runs single-threaded; parallelism comes from
 * fixed chunks of rows handed to OpenMP threads, so results never depend on the thread count. */
#include "core.h"

#include <cblas.h>
#include <omp.h>

static int g_threads = 0;

void loom_set_threads(int n) {
    if (n <= 0)
        n = loom_dist_default_threads();
    g_threads = n;
    omp_set_num_threads(n);
#ifndef LOOM_BLAS_BLIS
    openblas_set_num_threads(1);
#endif
}

void gemm_describe(char *buf, size_t n) {
#ifdef LOOM_BLAS_BLIS
    snprintf(buf, n, "BLIS");
#else
    /* the configuration string starts "OpenBLAS 0.3.21 ...": its first two words */
    const char *corename = openblas_get_corename(), *config = openblas_get_config();
    int len = 0;
    for (int words = 0; config && config[len] && words < 2; len++)
        words += config[len + 1] == ' ' || config[len + 1] == '\0';
    snprintf(buf, n, "%.*s, %s kernels", config ? len : 8, config ? config : "OpenBLAS",
             corename ? corename : "?");
#endif
}

int loom_get_threads(void) {
    if (g_threads == 0)
        loom_set_threads(0);
    return g_threads;
}

/* OpenBLAS 0.3.21's small-matrix kernel for untransposed products (its SkylakeX/Cooperlake
 * builds, Debian's on this CPU) calls malloc on every call when N % 16 is 1..8 and M N K is at
 * most 10^6 (a dense 24 or 100 on a small input): such products run here instead, row by row,
 * so that no training step allocates (tests/test_alloc.c counts). */
bool gemm_nn_is_own(int M, int N, int K) {
    int r = N % 16;
    return r >= 1 && r <= 8 && (double)M * N * K <= 1e6;
}

static void gemm_nn_own(int M, int N, int K, float alpha, const float *A, int lda, const float *B,
                        int ldb, float beta, float *C, int ldc) {
    for (int i = 0; i < M; i++) {
        float *c = C + (size_t)i * ldc;
        const float *a = A + (size_t)i * lda;
        for (int j = 0; j < N; j++)
            c[j] = beta == 0.0f ? 0.0f : beta * c[j];
        for (int k = 0; k < K; k++) {
            float s = alpha * a[k];
            const float *b = B + (size_t)k * ldb;
#pragma omp simd
            for (int j = 0; j < N; j++)
                c[j] += s * b[j];
        }
    }
}

void gemm(bool ta, bool tb, int M, int N, int K, float alpha, const float *A, int lda,
          const float *B, int ldb, float beta, float *C, int ldc) {
    if (M <= 0 || N <= 0)
        return;
    if (K <= 0) {
        for (int i = 0; i < M; i++)
            for (int j = 0; j < N; j++)
                C[(size_t)i * ldc + j] = beta == 0.0f ? 0.0f : beta * C[(size_t)i * ldc + j];
        return;
    }
    if (!ta && !tb && gemm_nn_is_own(M, N, K)) {
        gemm_nn_own(M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
        return;
    }
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, M, N,
                K, alpha, A, lda, B, ldb, beta, C, ldc);
}

bool par_is_serial(void) {
    return loom_get_threads() == 1 || omp_get_max_threads() == 1 || omp_in_parallel();
}

void par_for(long n, int nc, par_body body, void *ctx) {
    if (nc <= 1 || par_is_serial()) {
        for (int c = 0; c < nc; c++)
            body(ctx, par_chunk_lo(n, nc, c), par_chunk_lo(n, nc, c + 1), c);
        return;
    }
#pragma omp parallel for schedule(static)
    for (int c = 0; c < nc; c++)
        body(ctx, par_chunk_lo(n, nc, c), par_chunk_lo(n, nc, c + 1), c);
}

static inline int imin_(int a, int b) { return a < b ? a : b; }

int par_n_chunks(long n, long min_chunk) {
    if (min_chunk < 1)
        min_chunk = 1;
    long nc = n / min_chunk;
    if (nc < 1)
        nc = 1;
    if (nc > 64)
        nc = 64;
    return (int)nc;
}

/* A product's arguments, for the chunk bodies below. */
typedef struct {
    bool ta, tb;
    int M, N, K, lda, ldb, ldc;
    float alpha, beta;
    const float *A, *B;
    float *C, *work;
} gemm_args;

/* Column blocks [lo, hi) of 64 of the product: columns of op(B) and of C. */
static void gemm_cols_body(void *ctx, long lo, long hi, int c) {
    (void)c;
    const gemm_args *g = ctx;
    int j0 = (int)lo * 64, j1 = imin_(g->N, (int)hi * 64);
    const float *Bc = g->tb ? g->B + (size_t)j0 * g->ldb : g->B + j0;
    gemm(g->ta, g->tb, g->M, j1 - j0, g->K, g->alpha, g->A, g->lda, Bc, g->ldb, g->beta, g->C + j0,
         g->ldc);
}

/* Rows [lo, hi) of the product: rows of op(A) and of C. */
static void gemm_rows_body(void *ctx, long lo, long hi, int c) {
    (void)c;
    const gemm_args *g = ctx;
    const float *Ac = g->ta ? g->A + lo : g->A + (size_t)lo * g->lda;
    gemm(g->ta, g->tb, (int)(hi - lo), g->N, g->K, g->alpha, Ac, g->lda, g->B, g->ldb, g->beta,
         g->C + (size_t)lo * g->ldc, g->ldc);
}

bool gemm_splits_k(int N, int K) { return N < 128 && K >= 16384; }

/* Half c of a K-split product: A0 B0 with beta into C, or A1 B1 into work. */
static void gemm_k_half(void *ctx, long lo, long hi, int c) {
    (void)lo, (void)hi;
    const gemm_args *g = ctx;
    int k0 = g->K / 2;
    if (c == 0)
        gemm(false, false, g->M, g->N, k0, g->alpha, g->A, g->lda, g->B, g->ldb, g->beta, g->C,
             g->ldc);
    else
        gemm(false, false, g->M, g->N, g->K - k0, g->alpha, g->A + k0, g->lda,
             g->B + (size_t)k0 * g->ldb, g->ldb, 0.0f, g->work, g->N);
}

/* gemm_par, or with work (gemm_par_ws) the split along K when it applies. */
static void gemm_par_any(bool ta, bool tb, int M, int N, int K, float alpha, const float *A,
                         int lda, const float *B, int ldb, float beta, float *C, int ldc,
                         float *work) {
    gemm_args g = {.ta = ta,
                   .tb = tb,
                   .M = M,
                   .N = N,
                   .K = K,
                   .lda = lda,
                   .ldb = ldb,
                   .ldc = ldc,
                   .alpha = alpha,
                   .beta = beta,
                   .A = A,
                   .B = B,
                   .C = C,
                   .work = work};
    if (work && !ta && !tb && M <= 128 && M > 0 && gemm_splits_k(N, K) && 2.0 * M * N * K >= 4e6) {
        /* measured on keras-v1's dense 100 forward (M 64): 3.1 ms split by rows, 2.5 split by K */
        par_for(2, 2, gemm_k_half, &g);
        for (int i = 0; i < M; i++) {
            float *c = C + (size_t)i * ldc;
            const float *w = work + (size_t)i * N;
#pragma omp simd
            for (int j = 0; j < N; j++)
                c[j] += w[j];
        }
        return;
    }
    /* A batch-sized product (few rows, many columns: a dense layer's forward pass and dx) is
     * split by columns, in blocks of 64: split by rows, every thread would pack all of B. */
    if (M <= 128 && N >= 128 && 2.0 * M * N * K >= 4e6) {
        int nb = (N + 63) / 64;
        par_for(nb, nb < 16 ? nb : 16, gemm_cols_body, &g);
        return;
    }
    /* Chunks of >= 32 rows, and enough work per chunk (about 2 MFLOP) to pay for a task. */
    long work_per_row = 2L * N * (K > 0 ? K : 1);
    long min_rows = 32;
    if (work_per_row * min_rows < 2000000L)
        min_rows = 2000000L / (work_per_row > 0 ? work_per_row : 1);
    int nc = par_n_chunks(M, min_rows);
    par_for(M, nc > 16 ? 16 : nc, gemm_rows_body, &g);
}

void gemm_par(bool ta, bool tb, int M, int N, int K, float alpha, const float *A, int lda,
              const float *B, int ldb, float beta, float *C, int ldc) {
    gemm_par_any(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, NULL);
}

void gemm_par_ws(int M, int N, int K, float alpha, const float *A, int lda, const float *B, int ldb,
                 float beta, float *C, int ldc, float *work) {
    gemm_par_any(false, false, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, work);
}
