/* gemm.c - matrix products through CBLAS and the deterministic parallel split.
 * All products are row-major. The BLAS itself runs single-threaded; parallelism comes from
 * fixed chunks of rows handed to OpenMP threads, so results never depend on the thread count. */
#include "core.h"

#include <cblas.h>
#include <omp.h>

static int g_threads = 0;

void loom_set_threads(int n) {
    if (n <= 0)
        n = omp_get_num_procs();
    g_threads = n;
    omp_set_num_threads(n);
#ifndef LOOM_BLAS_BLIS
    openblas_set_num_threads(1);
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

bool par_is_serial(void) { return loom_get_threads() == 1 || omp_get_max_threads() == 1; }

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

/* C[:, lo:hi) of the product: columns lo..hi-1 of op(B) and of C. */
static void gemm_cols(bool ta, bool tb, int M, int lo, int hi, int K, float alpha, const float *A,
                      int lda, const float *B, int ldb, float beta, float *C, int ldc) {
    const float *Bc = tb ? B + (size_t)lo * ldb : B + lo;
    gemm(ta, tb, M, hi - lo, K, alpha, A, lda, Bc, ldb, beta, C + lo, ldc);
}

void gemm_par(bool ta, bool tb, int M, int N, int K, float alpha, const float *A, int lda,
              const float *B, int ldb, float beta, float *C, int ldc) {
    /* A batch-sized product (few rows, many columns: a dense layer's forward pass and dx) is
     * split by columns, in blocks of 64: split by rows, every thread would pack all of B. */
    if (M <= 128 && N >= 128 && 2.0 * M * N * K >= 4e6) {
        int nb = (N + 63) / 64, nc = nb < 16 ? nb : 16;
        if (par_is_serial()) { /* the same chunks in a plain loop */
            for (int c = 0; c < nc; c++)
                gemm_cols(ta, tb, M, (int)par_chunk_lo(nb, nc, c) * 64,
                          (int)imin_(N, (int)par_chunk_lo(nb, nc, c + 1) * 64), K, alpha, A, lda, B,
                          ldb, beta, C, ldc);
            return;
        }
#pragma omp parallel for schedule(static)
        for (int c = 0; c < nc; c++)
            gemm_cols(ta, tb, M, (int)par_chunk_lo(nb, nc, c) * 64,
                      (int)imin_(N, (int)par_chunk_lo(nb, nc, c + 1) * 64), K, alpha, A, lda, B,
                      ldb, beta, C, ldc);
        return;
    }
    /* Chunks of >= 32 rows, and enough work per chunk (about 2 MFLOP) to pay for a task. */
    long work_per_row = 2L * N * (K > 0 ? K : 1);
    long min_rows = 32;
    if (work_per_row * min_rows < 2000000L)
        min_rows = 2000000L / (work_per_row > 0 ? work_per_row : 1);
    int nc = par_n_chunks(M, min_rows);
    if (nc > 16)
        nc = 16;
    if (nc == 1 || par_is_serial()) {
        /* Same chunks, run in order: identical numbers whatever the thread count. */
        for (int c = 0; c < nc; c++) {
            int lo = (int)par_chunk_lo(M, nc, c), hi = (int)par_chunk_lo(M, nc, c + 1);
            const float *Ac = ta ? A + lo : A + (size_t)lo * lda;
            gemm(ta, tb, hi - lo, N, K, alpha, Ac, lda, B, ldb, beta, C + (size_t)lo * ldc, ldc);
        }
        return;
    }
#pragma omp parallel for schedule(static)
    for (int c = 0; c < nc; c++) {
        int lo = (int)par_chunk_lo(M, nc, c), hi = (int)par_chunk_lo(M, nc, c + 1);
        const float *Ac = ta ? A + lo : A + (size_t)lo * lda;
        gemm(ta, tb, hi - lo, N, K, alpha, Ac, lda, B, ldb, beta, C + (size_t)lo * ldc, ldc);
    }
}

bool gemm_splits_k(int N, int K) { return N < 128 && K >= 16384; }

/* Half c of a K-split product: A0 B0 with beta into C, or A1 B1 into work. */
static void gemm_k_half(int c, int M, int N, int K, float alpha, const float *A, int lda,
                        const float *B, int ldb, float beta, float *C, int ldc, float *work) {
    int k0 = K / 2;
    if (c == 0)
        gemm(false, false, M, N, k0, alpha, A, lda, B, ldb, beta, C, ldc);
    else
        gemm(false, false, M, N, K - k0, alpha, A + k0, lda, B + (size_t)k0 * ldb, ldb, 0.0f, work,
             N);
}

void gemm_par_ws(int M, int N, int K, float alpha, const float *A, int lda, const float *B, int ldb,
                 float beta, float *C, int ldc, float *work) {
    if (!work || M > 128 || M <= 0 || !gemm_splits_k(N, K) || 2.0 * M * N * K < 4e6) {
        gemm_par(false, false, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
        return;
    }
    /* measured on keras-v1's dense 100 forward (M 64): 3.1 ms split by rows, 2.5 split by K */
    if (par_is_serial()) {
        for (int c = 0; c < 2; c++)
            gemm_k_half(c, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, work);
    } else {
#pragma omp parallel for schedule(static)
        for (int c = 0; c < 2; c++)
            gemm_k_half(c, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, work);
    }
    for (int i = 0; i < M; i++) {
        float *c = C + (size_t)i * ldc;
        const float *w = work + (size_t)i * N;
#pragma omp simd
        for (int j = 0; j < N; j++)
            c[j] += w[j];
    }
}
