/* qgemm.c - the int8 matrix product of the quantized layers: y (M, K) = f32(acc - zp colsum) *
 * scale + bias, acc (M, K) int32 = a (M, N4 * 4) u8 times w (N4 * 4, K) s8, accumulated exactly
 * in int32. The weights are packed for AVX-512 VNNI's vpdpbusd, (N4, Kp, 4): 4 consecutive rows
 * of a column side by side, Kp = K rounded up to 16, zero beyond K and N. Two paths, chosen at run
 * time by the CPU's feature flags (loom_cpu_features): VNNI and portable C. Both compute the same
 * integer, then the same float epilogue (convert, multiply, add: three roundings, no fused
 * multiply-add), so they give the same bits; rows are independent, so batch size and threads do
 * not change them either. */
#include "core.h"

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

/* One output value: the epilogue both paths share, value for value. */
static inline float epilogue(int32_t acc, int32_t corr, float scale, float bias) {
    float v = (float)(acc - corr);
    v = v * scale;
    return v + bias;
}

/* Portable C: one row at a time, acc (Kp) int32 work. */
static void rows_c(const qgemm_args *g, long lo, long hi, int32_t *acc) {
    for (long m = lo; m < hi; m++) {
        const uint8_t *a = g->a + (size_t)m * g->lda;
        memset(acc, 0, sizeof(int32_t) * (size_t)g->Kp);
        for (int n4 = 0; n4 < g->N4; n4++) {
            const int8_t *w = g->w + (size_t)n4 * g->Kp * 4;
            int a0 = a[4 * n4], a1 = a[4 * n4 + 1], a2 = a[4 * n4 + 2], a3 = a[4 * n4 + 3];
            for (int k = 0; k < g->K; k++)
                acc[k] += a0 * w[4 * k] + a1 * w[4 * k + 1] + a2 * w[4 * k + 2] + a3 * w[4 * k + 3];
        }
        float *y = g->y + (size_t)m * g->ldy;
        for (int k = 0; k < g->K; k++)
            y[k] = epilogue(acc[k], g->zp * g->colsum[k], g->scale[k], g->bias[k]);
    }
}

#ifdef QGEMM_X86
/* MR rows (1..4) by NB blocks of 16 columns (1..4) from column k0: MR * NB accumulators. */
__attribute__((target("avx512f,avx512bw,avx512vnni"), always_inline)) static inline void
tile_vnni(const qgemm_args *g, long m0, int MR, int k0, int NB) {
    __m512i acc[4][4];
    for (int r = 0; r < MR; r++)
        for (int j = 0; j < NB; j++)
            acc[r][j] = _mm512_setzero_si512();
    const uint8_t *a[4];
    for (int r = 0; r < MR; r++)
        a[r] = g->a + (size_t)(m0 + r) * g->lda;
    const int8_t *w = g->w + (size_t)k0 * 4;
    size_t wstep = (size_t)g->Kp * 4;
    for (int n4 = 0; n4 < g->N4; n4++, w += wstep) {
        __m512i b[4];
        for (int j = 0; j < NB; j++)
            b[j] = _mm512_loadu_si512((const void *)(w + 64 * j));
        for (int r = 0; r < MR; r++) {
            int32_t q;
            memcpy(&q, a[r] + 4 * n4, 4);
            __m512i av = _mm512_set1_epi32(q);
            for (int j = 0; j < NB; j++)
                acc[r][j] = _mm512_dpbusd_epi32(acc[r][j], av, b[j]);
        }
    }
    __m512i zp = _mm512_set1_epi32(g->zp);
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
TILE(4, 4)
TILE(4, 1)
TILE(1, 4)
TILE(1, 1)

static void rows_vnni(const qgemm_args *g, long lo, long hi) {
    long m = lo;
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
#endif

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
    /* chunks of whole rows (at least 4 per chunk, about 1 M multiply-adds each) */
    long per_row = (long)g->N4 * 4 * g->Kp + 1;
    long min_rows = 1000000L / per_row + 1;
    int nc = par_n_chunks(g->M, min_rows < 4 ? 4 : min_rows);
    if (nc > QGEMM_MAX_CHUNKS)
        nc = QGEMM_MAX_CHUNKS;
    par_for(g->M, nc, rows_body, (void *)g);
}
