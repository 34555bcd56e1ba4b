/* qgemm.c - the int8 matrix product of the quantized layers: y (M, K) = f32(acc - zp colsum) *
 * scale + bias (then relu when asked), acc (M, K) int32 = a (M, N4 * 4) u8 times w (N4 * 4, K)
 * s8, accumulated exactly in int32. The rows of a are a matrix's or a conv's implicit im2col
 * (each row's groups of 4 bytes found by offsets into a padded image: no column matrix). The
 * weights are packed for AVX-512 VNNI's vpdpbusd, (N4, Kp, 4): 4 consecutive rows of a column
 * side by side, Kp = K rounded up to 16, zero beyond K and N. Two paths, chosen at run time by
 * the CPU's feature flags (loom_cpu_features): VNNI and portable C. Both compute the same
 * integer, then the same float epilogue (convert, multiply, add: three roundings, no fused
 * multiply-add), so they give the same bits; rows are independent, so batch size and threads do
 * not change them either. Also the quantizer of the layers' inputs, on the same two paths. */
#include "core.h"

#include <math.h>

#ifdef __x86_64__
#include <immintrin.h>
#define QGEMM_X86 1
#endif

/* Whether the VNNI path may run (a test hook turns it off to compare it with the C path). */
static int vnni_state = -1; /* -1: not asked yet */
static bool vnni_allowed = true;

bool qgemm_has_vnni(void) {
    if (vnni_state < 0) {
        loom_cpu f;
        loom_cpu_features(&f);
        vnni_state = f.has_vnni ? 1 : 0;
    }
    return vnni_state == 1 && vnni_allowed;
}

void qgemm_set_vnni(bool on) { vnni_allowed = on; }

/* Row m of the activations (see qgemm_args). */
static inline const uint8_t *row_of(const qgemm_args *g, long m) {
    if (!g->HWo)
        return g->a + (size_t)m * g->lda;
    long b = m / g->HWo, p = m % g->HWo;
    return g->a + (size_t)b * g->img + (size_t)(p / g->Wo) * g->rs + (size_t)(p % g->Wo) * g->cs;
}

/* One output value: the epilogue both paths share, value for value. */
static inline float epilogue(int32_t acc, int32_t corr, float scale, float bias, bool is_relu) {
    float v = (float)(acc - corr);
    v = v * scale;
    v = v + bias;
    return is_relu ? (v > 0.0f ? v : 0.0f) : v;
}

/* Portable C: one row at a time, acc (Kp) int32 work. */
static void rows_c(const qgemm_args *g, long lo, long hi, int32_t *acc) {
    for (long m = lo; m < hi; m++) {
        const uint8_t *a = row_of(g, m);
        memset(acc, 0, sizeof(int32_t) * (size_t)g->Kp);
        for (int n4 = 0; n4 < g->N4; n4++) {
            const int8_t *w = g->w + (size_t)n4 * g->Kp * 4;
            const uint8_t *an = a + g->koff[n4];
            int a0 = an[0], a1 = an[1], a2 = an[2], a3 = an[3];
            for (int k = 0; k < g->K; k++)
                acc[k] += a0 * w[4 * k] + a1 * w[4 * k + 1] + a2 * w[4 * k + 2] + a3 * w[4 * k + 3];
        }
        float *y = g->y + (size_t)m * g->ldy;
        for (int k = 0; k < g->K; k++)
            y[k] = epilogue(acc[k], g->zp * g->colsum[k], g->scale[k], g->bias[k], g->is_relu);
    }
}

/* One value to its byte, as qgemm_quantize's header says. */
static inline uint8_t quant_one(float x, float inv, int zp) {
    float lo = zp ? -127.0f : 0.0f, hi = zp ? 127.0f : 255.0f;
    float v = x * inv;
    v = !(v >= lo) ? lo : v > hi ? hi : v;
    return (uint8_t)((int)nearbyintf(v) + zp);
}

#ifdef QGEMM_X86
/* MR rows (1..8) by NB blocks of 16 columns (1..4) from column k0: MR * NB accumulators. */
__attribute__((target("avx512f,avx512bw,avx512vnni"), always_inline)) static inline void
tile_vnni(const qgemm_args *g, long m0, int MR, int k0, int NB) {
    __m512i acc[8][4];
    for (int r = 0; r < MR; r++)
        for (int j = 0; j < NB; j++)
            acc[r][j] = _mm512_setzero_si512();
    const uint8_t *a[8];
    for (int r = 0; r < MR; r++)
        a[r] = row_of(g, m0 + r);
    const int8_t *w = g->w + (size_t)k0 * 4;
    size_t wstep = (size_t)g->Kp * 4;
    for (int n4 = 0; n4 < g->N4; n4++, w += wstep) {
        __m512i b[4];
        for (int j = 0; j < NB; j++)
            b[j] = _mm512_loadu_si512((const void *)(w + 64 * j));
        int32_t off = g->koff[n4];
        for (int r = 0; r < MR; r++) {
            int32_t q;
            memcpy(&q, a[r] + off, 4);
            __m512i av = _mm512_set1_epi32(q);
            for (int j = 0; j < NB; j++)
                acc[r][j] = _mm512_dpbusd_epi32(acc[r][j], av, b[j]);
        }
    }
    __m512i zp = _mm512_set1_epi32(g->zp);
    __m512 zero = _mm512_setzero_ps();
    for (int j = 0; j < NB; j++) {
        int k = k0 + 16 * j;
        int left = g->K - k;
        if (left <= 0)
            break;
        __mmask16 mk = left >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << left) - 1u);
        __m512i corr =
            _mm512_mullo_epi32(zp, _mm512_maskz_loadu_epi32(mk, (const void *)(g->colsum + k)));
        __m512 sc = _mm512_maskz_loadu_ps(mk, g->scale + k);
        __m512 bi = _mm512_maskz_loadu_ps(mk, g->bias + k);
        for (int r = 0; r < MR; r++) {
            __m512 v = _mm512_cvtepi32_ps(_mm512_sub_epi32(acc[r][j], corr));
            v = _mm512_add_ps(_mm512_mul_ps(v, sc), bi);
            if (g->is_relu) /* max(v, 0): 0 for NaN and -0, as v > 0 ? v : 0 */
                v = _mm512_max_ps(v, zero);
            _mm512_mask_storeu_ps(g->y + (size_t)(m0 + r) * g->ldy + k, mk, v);
        }
    }
}

/* Each tile shape its own function, so that the accumulators stay in registers. */
#define TILE(MR, NB)                                                                               \
    __attribute__((target("avx512f,avx512bw,avx512vnni"))) static void tile_##MR##_##NB(           \
        const qgemm_args *g, long m0, int k0) {                                                    \
        tile_vnni(g, m0, MR, k0, NB);                                                              \
    }
TILE(8, 2)
TILE(8, 1)
TILE(4, 4)
TILE(4, 1)
TILE(1, 4)
TILE(1, 1)

/* Rows in groups of 8 (columns 32 at a time: 16 accumulators), then 4 (64 at a time), then
 * one by one. */
static void rows_vnni(const qgemm_args *g, long lo, long hi) {
    long m = lo;
    for (; m + 8 <= hi; m += 8) {
        int k0 = 0;
        for (; k0 + 32 <= g->Kp; k0 += 32)
            tile_8_2(g, m, k0);
        for (; k0 < g->Kp; k0 += 16)
            tile_8_1(g, m, k0);
    }
    for (; m + 4 <= hi; m += 4) {
        int k0 = 0;
        for (; k0 + 64 <= g->Kp; k0 += 64)
            tile_4_4(g, m, k0);
        for (; k0 < g->Kp; k0 += 16)
            tile_4_1(g, m, k0);
    }
    for (; m < hi; m++) {
        int k0 = 0;
        for (; k0 + 64 <= g->Kp; k0 += 64)
            tile_1_4(g, m, k0);
        for (; k0 < g->Kp; k0 += 16)
            tile_1_1(g, m, k0);
    }
}

/* 16 values a step: max with the low end first (a NaN takes it, as in quant_one), then min;
 * the conversion rounds half to even (MXCSR's default), as nearbyintf. */
__attribute__((target("avx512f,avx512bw,avx512vnni"))) static void
quantize_avx512(const float *x, uint8_t *u, size_t n, float inv, int zp) {
    __m512 vinv = _mm512_set1_ps(inv);
    __m512 lo = _mm512_set1_ps(zp ? -127.0f : 0.0f), hi = _mm512_set1_ps(zp ? 127.0f : 255.0f);
    __m512i z = _mm512_set1_epi32(zp);
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512 v = _mm512_mul_ps(_mm512_loadu_ps(x + i), vinv);
        v = _mm512_min_ps(_mm512_max_ps(v, lo), hi);
        __m512i q = _mm512_add_epi32(_mm512_cvtps_epi32(v), z);
        _mm_storeu_si128((__m128i *)(void *)(u + i), _mm512_cvtepi32_epi8(q));
    }
    for (; i < n; i++)
        u[i] = quant_one(x[i], inv, zp);
}
#endif

void qgemm_quantize(const float *x, uint8_t *u, size_t n, float inv, int zp) {
#ifdef QGEMM_X86
    if (qgemm_has_vnni()) {
        quantize_avx512(x, u, n, inv, zp);
        return;
    }
#endif
    for (size_t i = 0; i < n; i++)
        u[i] = quant_one(x[i], inv, zp);
}

static void rows_body(void *ctx, long lo, long hi, int c) {
    const qgemm_args *g = ctx;
#ifdef QGEMM_X86
    if (qgemm_has_vnni()) {
        rows_vnni(g, lo, hi);
        return;
    }
#endif
    rows_c(g, lo, hi, g->work + (size_t)c * g->Kp);
}

void qgemm(const qgemm_args *g) {
    /* chunks of whole rows (at least 8 per chunk, about 1 M multiply-adds each) */
    long per_row = (long)g->N4 * 4 * g->Kp + 1;
    long min_rows = 1000000L / per_row + 1;
    int nc = par_n_chunks(g->M, min_rows < 8 ? 8 : min_rows);
    if (nc > QGEMM_MAX_CHUNKS)
        nc = QGEMM_MAX_CHUNKS;
    par_for(g->M, nc, rows_body, (void *)g);
}
