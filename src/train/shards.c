/* shards.c - the sum of the shards' gradients, exact and independent of the processes.
 *
 * Floating-point addition is not associative: summing the same shard gradients in another order
 * (another number of processes, another MPI reduction tree) would change the last bits, and then
 * the whole training. So every value is first written in 64-bit fixed point and the integers are
 * summed, which is exact in any order. The fixed point is chosen per block of SHARD_BLOCK
 * elements from the block's largest magnitude over all shards (a maximum, also order-free): with
 * E its binary exponent (|v| < 2^E) and S shards, a value becomes trunc(v * 2^(62 - k - E)),
 * k = ceil(log2 S), so that the sum of S of them stays below 2^62. The error of a value is below
 * 2^(E + k - 62): sixty bits under the block's largest, far finer than the float's own rounding
 * of any value within 2^-36 of it. The sum goes back to a float with one rounding. */
#include "shards.h"

#include <math.h>

loom_status shard_sum_init(shard_sum *s, int n_shards, int lo, int hi, size_t n, int n_flags,
                           loom_error *err) {
    memset(s, 0, sizeof *s);
    s->n_shards = n_shards;
    s->lo = lo;
    s->hi = hi;
    s->n = n;
    s->nb = (n + SHARD_BLOCK - 1) / SHARD_BLOCK;
    s->n_flags = n_flags;
    s->v = loom_xalloc(sizeof(float) * (n ? n : 1) * (size_t)(hi - lo));
    s->ex = malloc(sizeof(int32_t) * (s->nb + (size_t)n_flags + 1));
    s->acc = loom_xalloc(sizeof(int64_t) * (n ? n : 1));
    if (!s->v || !s->ex || !s->acc) {
        shard_sum_free(s);
        return loom_error_set(err, LOOM_ERR_NOMEM, "shard buffers: out of memory");
    }
    return LOOM_OK;
}

void shard_sum_free(shard_sum *s) {
    free(s->v);
    free(s->ex);
    free(s->acc);
    memset(s, 0, sizeof *s);
}

/* The biased exponent field of f (0 for zeros and subnormals, 255 for NaN and Inf). */
static inline int32_t bexp(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return (int32_t)((u >> 23) & 0xff);
}

/* Blocks [lo, hi) of shard_sum_exponents (a par_for body). */
static void exponents_chunk(void *ctx, long lo, long hi, int c) {
    (void)c;
    shard_sum *s = ctx;
    for (size_t b = (size_t)lo; b < (size_t)hi; b++) {
        size_t i0 = b * SHARD_BLOCK, i1 = i0 + SHARD_BLOCK < s->n ? i0 + SHARD_BLOCK : s->n;
        int32_t e = 0;
        for (int k = s->lo; k < s->hi; k++) {
            const float *v = shard_sum_vec(s, k);
            for (size_t i = i0; i < i1; i++) {
                int32_t x = bexp(v[i]);
                e = x > e ? x : e;
            }
        }
        s->ex[b] = e;
    }
}

void shard_sum_exponents(shard_sum *s) {
    par_for((long)s->nb, par_n_chunks((long)s->nb, 256), exponents_chunk, s);
}

/* ceil(log2(n)), n >= 1 */
static int ceil_log2(int n) {
    int k = 0;
    while ((1 << k) < n)
        k++;
    return k;
}

/* Blocks [lo, hi) of shard_sum_quantize or shard_sum_unquantize (a par_for body): integer
 * sums are exact, so how the blocks are split cannot change a bit. */
typedef struct {
    shard_sum *s;
    float *out; /* NULL: quantize */
    int k2;
} quant_job;

static void quant_chunk(void *ctx, long lo, long hi, int c) {
    (void)c;
    const quant_job *j = ctx;
    shard_sum *s = j->s;
    for (size_t b = (size_t)lo; b < (size_t)hi; b++) {
        size_t i0 = b * SHARD_BLOCK, i1 = i0 + SHARD_BLOCK < s->n ? i0 + SHARD_BLOCK : s->n;
        /* |v| < 2^E with E = biased - 126 (also for zeros and subnormals: E = -126) */
        int sh = 62 - j->k2 - (s->ex[b] - 126);
        int64_t *a = s->acc;
        if (j->out) {
            double unscale = ldexp(1.0, -sh);
            for (size_t i = i0; i < i1; i++)
                j->out[i] = (float)((double)a[i] * unscale);
            continue;
        }
        double scale = ldexp(1.0, sh);
        for (size_t i = i0; i < i1; i++)
            a[i] = 0;
        for (int k = s->lo; k < s->hi; k++) {
            const float *v = shard_sum_vec(s, k);
#pragma omp simd
            for (size_t i = i0; i < i1; i++)
                a[i] += (int64_t)((double)v[i] * scale);
        }
    }
}

void shard_sum_quantize(shard_sum *s) {
    quant_job j = {s, NULL, ceil_log2(s->n_shards)};
    par_for((long)s->nb, par_n_chunks((long)s->nb, 256), quant_chunk, &j);
}

void shard_sum_unquantize(const shard_sum *s, float *out) {
    quant_job j = {(shard_sum *)s, out, ceil_log2(s->n_shards)};
    par_for((long)s->nb, par_n_chunks((long)s->nb, 256), quant_chunk, &j);
}

void shard_sum_reduce(shard_sum *s, bool is_dist, float *out) {
    shard_sum_quantize(s);
    if (is_dist)
        dist_sum_i64(s->acc, s->n);
    shard_sum_unquantize(s, out);
}
