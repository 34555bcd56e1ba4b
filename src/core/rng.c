/* rng.c - xoshiro256** seeded through splitmix64; derived seeds for folds and trials. */
#include "core.h"

#include <math.h>

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

void loom_rng_seed(loom_rng *rng, uint64_t seed) {
    uint64_t x = seed;
    for (int i = 0; i < 4; i++)
        rng->s[i] = splitmix64(&x);
}

uint64_t loom_rng_next(loom_rng *rng) { return rng_next(rng); }

float loom_rng_uniform(loom_rng *rng) { return (float)(loom_rng_next(rng) >> 40) * 0x1.0p-24f; }

float loom_rng_normal(loom_rng *rng) {
    /* Box-Muller; one value per call keeps the stream simple to reason about. */
    double u1 = ((double)(loom_rng_next(rng) >> 11) + 1.0) * 0x1.0p-53;
    double u2 = (double)(loom_rng_next(rng) >> 11) * 0x1.0p-53;
    return (float)(sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2));
}

uint32_t loom_rng_below(loom_rng *rng, uint32_t n) {
    /* Lemire's multiply-shift with rejection: unbiased. */
    uint64_t m = (uint64_t)(uint32_t)(loom_rng_next(rng) >> 32) * n;
    uint32_t lo = (uint32_t)m;
    if (lo < n) {
        uint32_t t = (uint32_t)(-n) % n;
        while (lo < t) {
            m = (uint64_t)(uint32_t)(loom_rng_next(rng) >> 32) * n;
            lo = (uint32_t)m;
        }
    }
    return (uint32_t)(m >> 32);
}

uint64_t loom_seed_derive(uint64_t seed, uint64_t stream) {
    uint64_t x = seed ^ (0xd1b54a32d192ed03ULL * (stream + 1));
    splitmix64(&x);
    return splitmix64(&x);
}

void loom_shuffle_int(int *a, int n, loom_rng *rng) {
    for (int i = n - 1; i > 0; i--) {
        int j = (int)loom_rng_below(rng, (uint32_t)i + 1);
        int t = a[i];
        a[i] = a[j];
        a[j] = t;
    }
}
