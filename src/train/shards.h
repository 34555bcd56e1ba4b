/* shards.h - the exact sum of per-shard vectors across the job's processes (internal). */
#ifndef LOOM_SHARDS_H
#define LOOM_SHARDS_H

#include "../core/core.h"

/* The vectors (n floats each) of shards lo .. hi-1 of n_shards, held by this process. Their sum
 * over all shards is computed in 64-bit fixed point, per block of SHARD_BLOCK elements scaled to
 * the block's largest magnitude over every shard: integer sums are exact, so the result has the
 * same bits whichever process holds which shards and in whatever order MPI adds them. */
#define SHARD_BLOCK 64
typedef struct {
    int n_shards, lo, hi;
    size_t n;     /* floats per vector */
    size_t nb;    /* blocks: ceil(n / SHARD_BLOCK) */
    float *v;     /* (hi - lo, n) the local shards' vectors */
    int32_t *ex;  /* (nb + n_flags) per block the largest biased exponent, then the flags */
    int n_flags;  /* ints after the exponents, maximum-reduced with them */
    int64_t *acc; /* (n) */
} shard_sum;

loom_status shard_sum_init(shard_sum *s, int n_shards, int lo, int hi, size_t n, int n_flags,
                           loom_error *err);
void shard_sum_free(shard_sum *s);
/* Shard k's vector (lo <= k < hi). */
static inline float *shard_sum_vec(shard_sum *s, int k) {
    return s->v + (size_t)(k - s->lo) * s->n;
}
/* Each block's largest biased exponent over the local vectors into ex (255: a NaN or Inf). */
void shard_sum_exponents(shard_sum *s);
/* The pieces of shard_sum_reduce: the local vectors into acc, in the fixed point of ex; acc
 * (summed over the processes) back to floats. */
void shard_sum_quantize(shard_sum *s);
void shard_sum_unquantize(const shard_sum *s, float *out);
/* With ex holding every process's maxima (is_dist: dist_max_i32 done): the sum of every shard's
 * vector into out (n floats), through the processes when is_dist. */
void shard_sum_reduce(shard_sum *s, bool is_dist, float *out);

#endif
