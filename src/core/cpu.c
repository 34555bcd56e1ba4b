/* cpu.c - what this CPU can do, asked of the CPU itself (its feature flags, not a table of model
 * names), and its arithmetic peak measured in the running process: fp32 FMA, bf16 dot products
 * (AVX-512 BF16) and int8 dot products (AVX-512 VNNI), on every worker thread at once. A peak is
 * the rate of independent multiply-add chains that keep every vector unit busy; benchmarks
 * report their GFLOP/s as a share of it, measured in the same run, never a fixed number. */
#include "core.h"

#include <immintrin.h>

#if defined(__GNUC__) && defined(__x86_64__)
#define HAS_X86 1
#endif

/* Independent accumulators per thread: more than the FMA latency times the units, so that the
 * chains never wait on each other. */
enum { CHAINS = 12, ROUNDS = 1 << 16 };

#ifdef HAS_X86
__attribute__((target("avx512f"))) static double fma512(long rounds) {
    __m512 acc[CHAINS];
    __m512 a = _mm512_set1_ps(1.0000001f), b = _mm512_set1_ps(-1e-7f);
    for (int c = 0; c < CHAINS; c++)
        acc[c] = _mm512_set1_ps((float)c);
    for (long r = 0; r < rounds; r++)
        for (int c = 0; c < CHAINS; c++)
            acc[c] = _mm512_fmadd_ps(acc[c], a, b);
    float s = 0;
    for (int c = 0; c < CHAINS; c++)
        s += _mm512_reduce_add_ps(acc[c]);
    return s;
}

__attribute__((target("avx2,fma"))) static double fma256(long rounds) {
    __m256 acc[CHAINS];
    __m256 a = _mm256_set1_ps(1.0000001f), b = _mm256_set1_ps(-1e-7f);
    for (int c = 0; c < CHAINS; c++)
        acc[c] = _mm256_set1_ps((float)c);
    for (long r = 0; r < rounds; r++)
        for (int c = 0; c < CHAINS; c++)
            acc[c] = _mm256_fmadd_ps(acc[c], a, b);
    float t[8], s = 0;
    for (int c = 0; c < CHAINS; c++) {
        _mm256_storeu_ps(t, acc[c]);
        for (int k = 0; k < 8; k++)
            s += t[k];
    }
    return s;
}

__attribute__((target("avx512f,avx512bf16"))) static double bf16_512(long rounds) {
    __m512 acc[CHAINS];
    __m512bh a = (__m512bh)_mm512_set1_epi16(0x3f80), b = (__m512bh)_mm512_set1_epi16(0x3380);
    for (int c = 0; c < CHAINS; c++)
        acc[c] = _mm512_set1_ps((float)c);
    for (long r = 0; r < rounds; r++)
        for (int c = 0; c < CHAINS; c++)
            acc[c] = _mm512_dpbf16_ps(acc[c], a, b);
    float s = 0;
    for (int c = 0; c < CHAINS; c++)
        s += _mm512_reduce_add_ps(acc[c]);
    return s;
}

__attribute__((target("avx512f,avx512vnni"))) static double int8_512(long rounds) {
    __m512i acc[CHAINS];
    __m512i a = _mm512_set1_epi8(1), b = _mm512_set1_epi8(-1);
    for (int c = 0; c < CHAINS; c++)
        acc[c] = _mm512_set1_epi32(c);
    for (long r = 0; r < rounds; r++)
        for (int c = 0; c < CHAINS; c++)
            acc[c] = _mm512_dpbusd_epi32(acc[c], a, b);
    long s = 0;
    for (int c = 0; c < CHAINS; c++)
        s += _mm512_reduce_add_epi32(acc[c]);
    return (double)s;
}
#endif

void loom_cpu_features(loom_cpu *out) {
    memset(out, 0, sizeof *out);
#ifdef HAS_X86
    __builtin_cpu_init();
    out->has_avx2_fma = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    out->has_avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                      __builtin_cpu_supports("avx512vl");
    out->has_bf16 = out->has_avx512 && __builtin_cpu_supports("avx512bf16");
    out->has_vnni = out->has_avx512 && __builtin_cpu_supports("avx512vnni");
#endif
}

/* The kernel a peak is measured with, and the operations one round of it does per thread. */
typedef struct {
    double (*fn)(long rounds);
    double ops_per_round;
    volatile double sink; /* keeps the results alive */
} peak_job;

static void peak_chunk(void *ctx, long lo, long hi, int c) {
    (void)lo;
    (void)hi;
    (void)c;
    peak_job *j = ctx;
    j->sink += j->fn(ROUNDS);
}

/* Operations per second of j's kernel on every worker thread at once: the best of several timed
 * runs after a warm-up, each about seconds / 4 long. */
static double measure(peak_job *j, double seconds) {
    int T = loom_get_threads();
    peak_chunk(j, 0, 1, 0); /* warm-up: clocks and caches */
    double t0 = loom_now(), best = 0;
    do {
        double t = loom_now();
        par_for(T, T, peak_chunk, j);
        double dt = loom_now() - t;
        double rate = j->ops_per_round * ROUNDS * T / dt;
        if (rate > best)
            best = rate;
    } while (loom_now() - t0 < seconds);
    return best / 1e9;
}

void loom_cpu_peak(loom_peak *p, double seconds) {
    memset(p, 0, sizeof *p);
    p->threads = loom_get_threads();
    loom_cpu f;
    loom_cpu_features(&f);
    (void)seconds;
#ifdef HAS_X86
    double s = seconds > 0 ? seconds : 0.2;
    if (f.has_avx512) {
        p->fp32 = measure(&(peak_job){fma512, 2.0 * 16 * CHAINS, 0}, s);
        p->fp32_width = 512;
    } else if (f.has_avx2_fma) {
        p->fp32 = measure(&(peak_job){fma256, 2.0 * 8 * CHAINS, 0}, s);
        p->fp32_width = 256;
    }
    if (f.has_avx512) /* the 256-bit rate too: a CPU that splits 512-bit work shows it here */
        p->fp32_256 = measure(&(peak_job){fma256, 2.0 * 8 * CHAINS, 0}, s);
    if (f.has_bf16)
        p->bf16 = measure(&(peak_job){bf16_512, 2.0 * 32 * CHAINS, 0}, s);
    if (f.has_vnni)
        p->int8 = measure(&(peak_job){int8_512, 2.0 * 64 * CHAINS, 0}, s);
#endif
}
