/* core.h - internal helpers shared by every module: shapes, the arena, matrix products
 * through CBLAS, deterministic parallel chunking, small utilities. Not installed. */
#ifndef LOOM_CORE_H
#define LOOM_CORE_H

#include "loom.h"

#include <stdlib.h>
#include <string.h>

/* Per-example shape, batch excluded. rank 1: (N); rank 2: (T, N); rank 3: (H, W, C). */
typedef struct {
    int rank;
    int d[3];
} loom_shape;

/* The most values one example may have at any layer (input or output): 2^24, far above any image
 * classifier's needs, and low enough that products of dimensions inside a layer's shape
 * arithmetic stay within int. */
#define LOOM_MAX_VALUES (1 << 24)

/* The plural ending of a counted noun in text for people: "%d epoch%s", n, PLURAL(n). */
#define PLURAL(n) ((n) == 1 ? "" : "s")

static inline size_t shape_size(loom_shape s) {
    size_t n = 1;
    for (int i = 0; i < s.rank; i++)
        n *= (size_t)s.d[i];
    return n;
}
static inline loom_shape shape1(int n) { return (loom_shape){1, {n, 1, 1}}; }
static inline loom_shape shape2(int t, int n) { return (loom_shape){2, {t, n, 1}}; }
static inline loom_shape shape3(int h, int w, int c) { return (loom_shape){3, {h, w, c}}; }
/* "(26, 26, 32)" */
void shape_format(loom_shape s, char *buf, size_t n);

/* C (M, N) += A (M, K) B (K, N), row-major, every element summed in k order from C's value, one
 * fused multiply-add at a time: the same bits whatever M, the threads or the CPU's vector width
 * (gemm_fixed.c). gemm_fixed_force_portable(true) runs the plain C path (tests). */
void gemm_fixed(int M, int N, int K, const float *A, int lda, const float *B, int ldb, float *C,
                int ldc);
void gemm_fixed_force_portable(bool on);

/* The library that runs the matrix products and the kernel it chose ("OpenBLAS 0.3.21,
 * Cooperlake kernels, single-threaded calls"). */
void gemm_describe(char *buf, size_t n);

/* ---- collectives of the job's processes (dist.c; no-ops in a world of one) ---- */
void dist_sum_i64(int64_t *v, size_t n); /* element-wise sum over the processes, in place */
void dist_max_i32(int32_t *v, size_t n); /* element-wise maximum, in place */
void dist_bcast(void *buf, size_t bytes, int root);
/* all holds n units of unit bytes; process r has filled units [n r / P, n (r + 1) / P): every
 * process gets every unit. */
void dist_allgather_parts(void *all, size_t unit, long n);
void dist_mark_agreed(void); /* the failure being reported is known to every process */
/* Units of work shared by the job's processes: each takes the next unit of order (n_units
 * indices, largest first; NULL: 0, 1, ...) from a shared counter as soon as it is free, skips
 * those is_done already, runs it alone (loom_dist_size() is 1 inside run) into its out_bytes of
 * outs, and sends the result to rank 0, which records it (record: in the order they finish,
 * rank 0 only) as soon as it is between units of its own. At the end every process has every
 * result in outs and is_done. run returning LOOM_ERR_INTERRUPTED stops this process taking
 * units; the call then returns LOOM_ERR_INTERRUPTED everywhere, after recording what finished.
 * In a world of one the units run in order, each recorded at once. */
typedef struct {
    int n_units;
    const int *order;
    size_t out_bytes;
    void *outs;    /* (n_units, out_bytes) */
    bool *is_done; /* (n_units) */
    loom_status (*run)(void *ctx, int unit, void *out, loom_error *err);
    loom_status (*record)(void *ctx, int unit, const void *out, loom_error *err);
    void *ctx;
} dist_share_job;
loom_status dist_share(const dist_share_job *j, loom_error *err);

/* ---- arena: one block, bump allocation, 64-byte aligned, reset not freed ---- */
typedef struct {
    char *base;
    size_t size, used;
} arena;
loom_status arena_init(arena *a, size_t bytes, loom_error *err);
void arena_free(arena *a);
/* n floats from the arena (zeroed at init only); NULL when it does not fit (a sizing bug). */
float *arena_floats(arena *a, size_t n);
static inline size_t arena_round(size_t bytes) { return (bytes + 63) & ~(size_t)63; }

/* ---- matrix products (row-major CBLAS, single-threaded BLAS per call) ---- */
/* C(M,N) = alpha * op(A) op(B) + beta * C, row-major, op = transpose when ta/tb. */
void gemm(bool ta, bool tb, int M, int N, int K, float alpha, const float *A, int lda,
          const float *B, int ldb, float beta, float *C, int ldc);
/* Same, with the M rows of C split into fixed chunks run on the worker threads. The chunking
 * depends only on M, never on the thread count, so the result is bitwise reproducible. */
void gemm_par(bool ta, bool tb, int M, int N, int K, float alpha, const float *A, int lda,
              const float *B, int ldb, float beta, float *C, int ldc);
/* Whether gemm_par_ws splits a product of N columns and a K-long reduction in two along K: few
 * columns and a long reduction, as a dense layer of a few units on a large flattened input
 * (keras-v1: 100 units on 23,232 inputs). Split by rows, each thread would stream all of B. */
bool gemm_splits_k(int N, int K);
/* gemm_par for op(A) = A and op(B) = B with work space for M*N floats (may be NULL: no split):
 * when gemm_splits_k(N, K), M <= 128 and the product is 4 MFLOP or more (gemm_par's threshold),
 * C = (beta*C + alpha A0 B0) + alpha A1 B1 over the two
 * halves of K, the second half into work, in that order whatever the thread count. */
void gemm_par_ws(int M, int N, int K, float alpha, const float *A, int lda, const float *B, int ldb,
                 float beta, float *C, int ldc, float *work);
/* Whether gemm runs an untransposed product of these sizes in its own loop rather than the
 * BLAS (whose small-matrix kernel would allocate on each call; see gemm.c). */
bool gemm_nn_is_own(int M, int N, int K);
/* True when a parallel region here would run on one thread: loom_set_threads(1), a caller
 * that set a team of one (an inference chunk, predict's small batches), or a caller already
 * inside a parallel region (whose nested regions run on one thread at libgomp's default of one
 * active level; loom never asks for more). Such a path runs its chunks in
 * a plain loop: a parallel region of one thread still makes (mallocs) a team on every call. */
bool par_is_serial(void);
/* Fixed chunking: number of chunks for n items with at least min_chunk per chunk (max 64). */
int par_n_chunks(long n, long min_chunk);
static inline long par_chunk_lo(long n, int nc, int c) { return n * c / nc; }
/* One chunk of a par_for: items [lo, hi) of n, chunk c of nc. */
typedef void (*par_body)(void *ctx, long lo, long hi, int c);
/* body(ctx, lo, hi, c) for the nc fixed chunks of n items (c = 0 .. nc-1, lo/hi by
 * par_chunk_lo): over the threads, each chunk whole on one thread, or in order in a plain loop
 * when nc <= 1 or par_is_serial(). The chunks do not depend on the thread count, so neither
 * do the numbers; only a chunk's own work may depend on c. The one way loops here go parallel. */
void par_for(long n, int nc, par_body body, void *ctx);

/* ---- int8 products (qgemm.c): the quantized layers' y = (acc - zp colsum) scale + bias ---- */
#define QGEMM_MAX_CHUNKS 64
typedef struct {
    int M, N4, K, Kp; /* rows; reduction in groups of 4; columns, and Kp = K rounded to 16 */
    const uint8_t *a; /* (M, lda) activations, u8, N4 * 4 used per row */
    size_t lda;
    const int8_t *w;       /* (N4, Kp, 4) packed weights, zero beyond K and the reduction */
    const int32_t *colsum; /* (K) column sums of the int8 weights */
    int32_t zp;            /* the activations' zero point (0 or 128) */
    const float *scale;    /* (K) the activation scale times each column's weight scale */
    const float *bias;     /* (K) */
    float *y;              /* (M, ldy) output */
    size_t ldy;
    int32_t *work; /* (QGEMM_MAX_CHUNKS, Kp) for the portable path */
} qgemm_args;
/* The product over the worker threads in fixed row chunks: the same bits on every path, thread
 * count and row count. */
void qgemm(const qgemm_args *g);
/* Whether qgemm runs its AVX-512 VNNI kernel (the CPU has it, and the test hook allows it). */
bool qgemm_has_vnni(void);
/* Test hook: off makes qgemm run the portable C path, process-wide; on by default. */
void qgemm_set_vnni(bool on);

/* ---- misc ---- */
/* Formats one line and hands it to fn (does nothing when fn is NULL). */
void log_printf(loom_log_fn fn, void *user, loom_log_kind kind, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
uint32_t loom_crc32(uint32_t crc, const void *data, size_t len);
double loom_now(void);           /* monotonic seconds */
void *loom_xalloc(size_t bytes); /* 64-byte aligned, zeroed; NULL on failure */
/* xoshiro256** (loom_rng_next), inlined for the hot loops that draw per value (dropout). */
static inline uint64_t rng_rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
static inline uint64_t rng_next(loom_rng *rng) {
    uint64_t *s = rng->s;
    uint64_t result = rng_rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rng_rotl(s[3], 45);
    return result;
}
/* v as short as %g writes it when that reads back (strtof) to the same float, else with the 9
 * digits a float needs: texts that are read again (config.txt, model text) keep every value. */
void float_text(float v, char *buf, size_t n);
/* mkdir -p: dir and its missing parents (0755); LOOM_ERR_IO naming dir when it cannot be made. */
loom_status loom_mkdir_p(const char *dir, loom_error *err);
/* Removes the leftovers of atomic writes (NAME.tmp.PID, by loom_file_write_atomic and the plots)
 * in dir and its subdirectories (depth levels) whose process is gone: a process killed during a
 * write (kill -9) leaves one. Every loom command that writes into an existing directory calls it
 * first. Returns how many were removed. */
int loom_remove_stale_tmp(const char *dir, int depth);

/* Image folders (src/data/folder.c): whether dir/which is a directory; the dataset it holds. */
bool folder_has(const char *dir, const char *which);
loom_status folder_load(loom_dataset **out, const char *dir, const char *which, loom_error *err);

/* Files (files.c). */
/* Writes len bytes to path atomically: path.tmp.PID, fsync, rename; on failure the old file is
 * left as it was. Errors: LOOM_ERR_IO, LOOM_ERR_ARG (path too long). */
loom_status loom_file_write_atomic(const char *path, const void *data, size_t len, loom_error *err);
/* Reads a whole file into *out (malloc'd, NUL-terminated, the caller frees it); *len_out may be
 * NULL. Errors: LOOM_ERR_IO (cannot open or read, a directory), LOOM_ERR_NOMEM. */
loom_status loom_file_read_all(const char *path, char **out, size_t *len_out, loom_error *err);

#endif
