/* conv2d_bf16.c - training of 3x3 stride-1 conv layers with bf16 products (AVX-512 BF16,
 * vdpbf16ps): x, W and dz rounded to bf16 (round to nearest even), each product exact, the sums
 * in fp32 and the weights fp32 (the optimizer's master copy). Per example, with no im2col: the
 * forward and dx products read a zero-padded bf16 image (the input, or dz) row by row in place;
 * dW sums over pairs of horizontally adjacent pixels. x (B, H, W, C) channels-last, W (3*3*C, K)
 * rows (r, s, c), y and dz (B, Ho, Wo, K). vdpbf16ps multiplies pairs along the summed index, so
 * each operand is kept as 32-bit words of two bf16 values consecutive in that index
 * (docs/derivations/conv_bf16.md). Inference never comes here: conv2d.c's fp32 kernels serve it;
 * the working space is the layer's own col area and fixed scratch (conv2d.h). */
#include "conv2d.h"

#if defined(__x86_64__) && defined(__GNUC__)
#define CONV_BF16 1
#include <immintrin.h>
#define BF16_TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16")))
#endif

/* Floats of one example's backward working space: the pair image of x (Ho + 2, Wo + 2, C)
 * words, dz's pixel pairs (Ho, ceil(Wo / 2), K) words, the padded bf16 dz (H + 2, W + 2, K) and
 * one fp32 row (Wo + 3, C). */
static size_t bwd_floats(const conv_cfg *c) {
    size_t Hp = (size_t)c->Ho + 2, Wp = (size_t)c->Wo + 2, C = (size_t)c->C, K = (size_t)c->K;
    return Hp * Wp * C + (size_t)c->Ho * (((size_t)c->Wo + 1) / 2) * K +
           ((size_t)c->H + 2) * ((size_t)c->W + 2) * K / 2 + (Wp + 1) * C;
}

/* 3x3, stride 1, even C and K, and one example's col area (Ho*Wo, 9C) holds backward's working
 * space (true of the usual layers; not of a one-channel first layer). */
static bool fits(const conv_cfg *c) {
    return c->R == 3 && c->S == 3 && c->stride == 1 && c->C % 2 == 0 && c->K % 2 == 0 &&
           bwd_floats(c) <= (size_t)c->Ho * c->Wo * 9 * (size_t)c->C;
}

bool conv_set_bf16(layer *l, bool on) {
    if (!l->ops || strcmp(l->ops->kind, "conv") != 0)
        return false;
    conv_cfg *c = l->cfg;
    c->is_bf16 = on;
    return fits(c);
}

#ifdef CONV_BF16

bool conv_bf16_applies(const conv_cfg *c) {
    if (!c->is_bf16 || !fits(c))
        return false;
    loom_cpu f;
    loom_cpu_features(&f);
    return f.has_bf16;
}

/* ---- conversions: fp32 to bf16 by the CPU's own rounding (vcvtneps2bf16) ---- */

/* dst (n bf16) = src (n floats); dst may be src's own memory (it is written behind the reads). */
BF16_TARGET static void cvt_run(uint16_t *dst, const float *src, long n) {
    long j = 0;
    for (; j + 16 <= n; j += 16) {
        __m256bh v = _mm512_cvtneps_pbh(_mm512_loadu_ps(src + j));
        _mm256_storeu_si256((__m256i *)(dst + j), (__m256i)v);
    }
    if (j < n) {
        __mmask16 m = (__mmask16)((1u << (n - j)) - 1u);
        __m256bh v = _mm512_cvtneps_pbh(_mm512_maskz_loadu_ps(m, src + j));
        _mm256_mask_storeu_epi16(dst + j, m, (__m256i)v);
    }
}

/* dst (n words) = pairs (bf16(a[j]) low, bf16(b[j]) high); b NULL = zeros. */
BF16_TARGET static void pair_run(uint32_t *dst, const float *a, const float *b, int n) {
    /* cvtne2ps puts b's 16 values above a's; this interleaves them: a0 b0 a1 b1 ... */
    const __m512i idx = _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24,
                                         8, 23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
    for (int j = 0; j < n; j += 16) {
        __mmask16 m = n - j >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (n - j)) - 1u);
        __m512 va = _mm512_maskz_loadu_ps(m, a + j);
        __m512 vb = b ? _mm512_maskz_loadu_ps(m, b + j) : _mm512_setzero_ps();
        __m512i w = _mm512_permutexvar_epi16(idx, (__m512i)_mm512_cvtne2ps_pbh(vb, va));
        _mm512_mask_storeu_epi32(dst + j, m, w);
    }
}

/* ---- the product: C (M, N) (+)= A (M, n_out * n_in words) B (n_out * n_in, N words) ----
 * The summed index runs in two levels, so that A can be read where it lies: the rows of a
 * padded image (forward, dx: outer = kernel row, inner = (s, c) pairs) or the output rows of
 * pixel pairs (dW: outer = output row, inner = pairs along it). */

typedef struct {
    const uint32_t *a; /* word (i, o, n) at a[i * a_rs + o * a_os + n * a_ks] */
    long a_rs, a_os, a_ks;
    const uint32_t *b; /* word (o, n, col) at b[(o * n_in + n) * N + col] */
    float *c;          /* (M, ldc) */
    long ldc;
    int N, n_out, n_in;
    bool is_acc; /* add to C, else overwrite it */
} bf16_gemm;

/* NW rows by KZ vectors of 16 columns from (m0, n0); the last vector's lanes in mt. Each element
 * of C takes its pairs in (o, n) order: the result depends on the sizes only. */
#define DEF_BF16(NW, KZ)                                                                           \
    BF16_TARGET static void gemm_##NW##_##KZ(const bf16_gemm *g, int m0, int n0, __mmask16 mt) {   \
        __m512 acc[NW][KZ];                                                                        \
        float *c0 = g->c + (size_t)m0 * g->ldc + n0;                                               \
        _Pragma("GCC unroll 16") for (int j = 0; j < NW; j++) {                                    \
            _Pragma("GCC unroll 4") for (int z = 0; z < KZ; z++) {                                 \
                __mmask16 m = z == KZ - 1 ? mt : (__mmask16)0xffff;                                \
                acc[j][z] = g->is_acc ? _mm512_maskz_loadu_ps(m, c0 + j * g->ldc + 16 * z)         \
                                      : _mm512_setzero_ps();                                       \
            }                                                                                      \
        }                                                                                          \
        const uint32_t *bk = g->b + n0;                                                            \
        for (int o = 0; o < g->n_out; o++) {                                                       \
            const uint32_t *ak = g->a + (size_t)m0 * g->a_rs + (size_t)o * g->a_os;                \
            for (int n = 0; n < g->n_in; n++, ak += g->a_ks, bk += g->N) {                         \
                __m512i bv[KZ];                                                                    \
                _Pragma("GCC unroll 4") for (int z = 0; z < KZ; z++) bv[z] =                       \
                    z == KZ - 1 ? _mm512_maskz_loadu_epi32(mt, bk + 16 * z)                        \
                                : _mm512_loadu_si512(bk + 16 * z);                                 \
                _Pragma("GCC unroll 16") for (int j = 0; j < NW; j++) {                            \
                    __m512i av = _mm512_set1_epi32((int)ak[(size_t)j * g->a_rs]);                  \
                    _Pragma("GCC unroll 4") for (int z = 0; z < KZ; z++) acc[j][z] =               \
                        _mm512_dpbf16_ps(acc[j][z], (__m512bh)av, (__m512bh)bv[z]);                \
                }                                                                                  \
            }                                                                                      \
        }                                                                                          \
        _Pragma("GCC unroll 16") for (int j = 0; j < NW; j++) {                                    \
            _Pragma("GCC unroll 4") for (int z = 0; z < KZ; z++) {                                 \
                __mmask16 m = z == KZ - 1 ? mt : (__mmask16)0xffff;                                \
                _mm512_mask_storeu_ps(c0 + j * g->ldc + 16 * z, m, acc[j][z]);                     \
            }                                                                                      \
        }                                                                                          \
    }
DEF_BF16(12, 1)
DEF_BF16(8, 2)
DEF_BF16(6, 3)
DEF_BF16(6, 4)
DEF_BF16(4, 1)
DEF_BF16(4, 2)
DEF_BF16(4, 3)
DEF_BF16(4, 4)
DEF_BF16(1, 1)
DEF_BF16(1, 2)
DEF_BF16(1, 3)
DEF_BF16(1, 4)

typedef void (*gemm_fn)(const bf16_gemm *, int, int, __mmask16);
static const gemm_fn gemm_big[4] = {gemm_12_1, gemm_8_2, gemm_6_3, gemm_6_4};
static const gemm_fn gemm_four[4] = {gemm_4_1, gemm_4_2, gemm_4_3, gemm_4_4};
static const gemm_fn gemm_one[4] = {gemm_1_1, gemm_1_2, gemm_1_3, gemm_1_4};
static const int gemm_nw[4] = {12, 8, 6, 6};

/* C's M rows, in column blocks of up to 64 and row blocks of gemm_nw, then 4, then 1. */
static void gemm_bf16(const bf16_gemm *g, int M) {
    for (int n0 = 0; n0 < g->N; n0 += 64) {
        int left = g->N - n0, kz = left >= 64 ? 4 : (left + 15) / 16;
        int rem = left - 16 * (kz - 1);
        __mmask16 mt = rem >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << rem) - 1u);
        int nw = gemm_nw[kz - 1], m0 = 0;
        for (; m0 + nw <= M; m0 += nw)
            gemm_big[kz - 1](g, m0, n0, mt);
        for (; m0 + 4 <= M; m0 += 4)
            gemm_four[kz - 1](g, m0, n0, mt);
        for (; m0 < M; m0++)
            gemm_one[kz - 1](g, m0, n0, mt);
    }
}

/* ---- padded bf16 images ---- */

/* dst (Hp, Wp, C) bf16: src (H, W, C) placed at (top, left), zeros around. */
BF16_TARGET static void pad_bf16(const float *src, int H, int W, int C, int top, int left, int Hp,
                                 int Wp, uint16_t *dst) {
    memset(dst, 0, sizeof(uint16_t) * (size_t)Hp * Wp * C);
    for (int h = 0; h < H; h++)
        cvt_run(dst + ((size_t)(h + top) * Wp + left) * C, src + (size_t)h * W * C, (long)W * C);
}

/* dst (Hp, Wp, C) words: pairs (x[h][w][c], x[h][w + 1][c]) of the padded fp32 image of src
 * (H, W, C) at (top, left), zeros beyond it; rows (Hp*Wp floats of C) are built one at a time
 * in row (Wp + 1, C) floats. */
BF16_TARGET static void pair_image(const float *src, int H, int W, int C, int top, int left, int Hp,
                                   int Wp, float *row, uint32_t *dst) {
    for (int h = 0; h < Hp; h++) {
        int ih = h - top;
        memset(row, 0, sizeof(float) * (size_t)(Wp + 1) * C);
        if (ih >= 0 && ih < H)
            memcpy(row + (size_t)left * C, src + (size_t)ih * W * C, sizeof(float) * (size_t)W * C);
        for (int w = 0; w < Wp; w++)
            pair_run(dst + ((size_t)h * Wp + w) * C, row + (size_t)w * C, row + (size_t)(w + 1) * C,
                     C);
    }
}

/* ---- forward and backward, one example at a time ---- */

/* The example groups (as conv2d.c's cache path): *per examples each, the count returned. */
static int groups(const conv_cfg *c, int B, int *per) {
    size_t col_sz = (size_t)c->Ho * c->Wo * c->R * c->S * c->C;
    long g = (long)(CONV_GROUP_FLOATS / (col_sz ? col_sz : 1));
    if (g < 1)
        g = 1;
    if ((B + g - 1) / g > CONV_MAX_CHUNKS)
        g = (B + CONV_MAX_CHUNKS - 1) / CONV_MAX_CHUNKS;
    *per = (int)g;
    return (int)((B + g - 1) / g);
}

typedef struct {
    layer *l;
    const float *x, *y;
    float *out, *dy, *dx;
    int B, per;
    const uint32_t *wp; /* forward: W as (RSC/2, K) words; backward: flipped W^T (3, 3, K/2, C) */
    float *pw, *pb;     /* backward: (CONV_SETS, RSC, K) dW and (CONV_SETS, K) db partials */
} bf16_job;

/* The fixed scratch's flipped-kernel area (RSC*K floats), which holds the packed weights. */
static float *weight_area(const layer *l) {
    const conv_cfg *c = l->cfg;
    size_t RSC = (size_t)c->R * c->S * c->C, K = (size_t)c->K;
    return l->scratch + l->scratch_per_example * (size_t)l->max_batch + CONV_MAX_CHUNKS * K +
           CONV_SETS * (RSC * K + K);
}

/* Forward of examples [lo, hi): y (Ho, Wo, K) row by row, each row's Wo pixels the product's
 * rows: A the padded bf16 input (Ho + 2, Wo + 2, C) read in place, 3 kernel rows of 3C/2 words. */
BF16_TARGET static void forward_examples(void *ctx, long lo, long hi, int k) {
    (void)k;
    const bf16_job *j = ctx;
    const conv_cfg *c = j->l->cfg;
    int C = c->C, K = c->K, Hp = c->Ho + 2, Wp = c->Wo + 2, HWo = c->Ho * c->Wo;
    size_t in_sz = (size_t)c->H * c->W * C, col_sz = (size_t)HWo * 9 * C;
    const float *b = j->l->w + (size_t)9 * C * K;
    for (long e = lo; e < hi; e++) {
        uint16_t *xb = (uint16_t *)(j->l->scratch + (size_t)e * col_sz);
        pad_bf16(j->x + e * in_sz, c->H, c->W, C, c->pad_top, c->pad_left, Hp, Wp, xb);
        float *ye = j->out + (size_t)e * HWo * K;
        for (int i = 0; i < HWo; i++)
            memcpy(ye + (size_t)i * K, b, sizeof(float) * K);
        for (int oh = 0; oh < c->Ho; oh++) {
            bf16_gemm g = {.a = (const uint32_t *)xb + (size_t)oh * Wp * C / 2,
                           .a_rs = C / 2,
                           .a_os = (long)Wp * C / 2,
                           .a_ks = 1,
                           .b = j->wp,
                           .c = ye + (size_t)oh * c->Wo * K,
                           .ldc = K,
                           .N = K,
                           .n_out = 3,
                           .n_in = 3 * C / 2,
                           .is_acc = true};
            gemm_bf16(&g, c->Wo);
        }
        act_forward(c->act, c->alpha, ye, (size_t)HWo * K);
    }
}

void conv_bf16_forward(layer *l, const float *x, float *y, int B) {
    const conv_cfg *c = l->cfg;
    int RSC = 9 * c->C, K = c->K;
    uint32_t *wp = (uint32_t *)weight_area(l); /* (RSC/2, K) words: rows 2i and 2i+1 of W */
    for (int i = 0; i < RSC / 2; i++)
        pair_run(wp + (size_t)i * K, l->w + (size_t)2 * i * K, l->w + (size_t)(2 * i + 1) * K, K);
    bf16_job j = {.l = l, .x = x, .out = y, .B = B, .wp = wp};
    par_for(B, par_n_chunks(B, 1), forward_examples, &j);
}

/* Reduction set st: the examples of groups [g0, g1) in order: dz = dy f'(y) and db; dW += from
 * the pair image of x (pixels (w, w + 1)) and dz's pixel pairs, kernel row by kernel row; dx
 * from the padded bf16 dz (H + 2, W + 2, K) and the flipped kernel, input row by input row. */
BF16_TARGET static void backward_set(void *ctx, long g0, long g1, int st) {
    const bf16_job *j = ctx;
    const conv_cfg *c = j->l->cfg;
    int C = c->C, K = c->K, RSC = 9 * C, HWo = c->Ho * c->Wo;
    int Hp = c->Ho + 2, Wp = c->Wo + 2, Wo2 = (c->Wo + 1) / 2;
    size_t in_sz = (size_t)c->H * c->W * C, col_sz = (size_t)HWo * RSC;
    float *pws = j->pw + (size_t)st * RSC * K, *pbs = j->pb + (size_t)st * K;
    memset(pbs, 0, sizeof(float) * K);
    memset(pws, 0, sizeof(float) * RSC * K);
    int e0 = (int)g0 * j->per, e1 = imin(j->B, (int)g1 * j->per);
    for (int e = e0; e < e1; e++) {
        float *dz = j->dy + (size_t)e * HWo * K;
        const float *ye = j->y + (size_t)e * HWo * K;
        act_backward(c->act, c->alpha, ye, dz, (size_t)HWo * K);
        for (int i = 0; i < HWo; i++)
#pragma omp simd
            for (int k = 0; k < K; k++)
                pbs[k] += dz[(size_t)i * K + k];
        float *area = j->l->scratch + (size_t)e * col_sz;
        uint32_t *xp = (uint32_t *)area;          /* (Hp, Wp, C) pixel pairs of x */
        uint32_t *dzp = xp + (size_t)Hp * Wp * C; /* (Ho, Wo2, K) pixel pairs of dz */
        uint16_t *dzb = (uint16_t *)(dzp + (size_t)c->Ho * Wo2 * K);       /* (H + 2, W + 2, K) */
        float *row = (float *)(dzb + (size_t)(c->H + 2) * (c->W + 2) * K); /* (Wp + 1, C) */
        pair_image(j->x + e * in_sz, c->H, c->W, C, c->pad_top, c->pad_left, Hp, Wp, row, xp);
        for (int oh = 0; oh < c->Ho; oh++)
            for (int i = 0; i < Wo2; i++) {
                const float *d0 = dz + ((size_t)oh * c->Wo + 2 * i) * K;
                pair_run(dzp + ((size_t)oh * Wo2 + i) * K, d0, 2 * i + 1 < c->Wo ? d0 + K : NULL,
                         K);
            }
        for (int r = 0; r < 3; r++) { /* dW rows (r, s, c): 3C of them per kernel row */
            bf16_gemm g = {.a = xp + (size_t)r * Wp * C,
                           .a_rs = 1,
                           .a_os = (long)Wp * C,
                           .a_ks = 2L * C,
                           .b = dzp,
                           .c = pws + (size_t)r * 3 * C * K,
                           .ldc = K,
                           .N = K,
                           .n_out = c->Ho,
                           .n_in = Wo2,
                           .is_acc = true};
            gemm_bf16(&g, 3 * C);
        }
        if (!j->dx)
            continue;
        /* dx[ih][iw] = sum over (r', s') of dz padded by 2 - pad at (ih + r', iw + s') times
         * W[2 - r'][2 - s'] transposed */
        pad_bf16(dz, c->Ho, c->Wo, K, 2 - c->pad_top, 2 - c->pad_left, c->H + 2, c->W + 2, dzb);
        float *dxe = j->dx + e * in_sz;
        for (int ih = 0; ih < c->H; ih++) {
            bf16_gemm g = {.a = (const uint32_t *)dzb + (size_t)ih * (c->W + 2) * K / 2,
                           .a_rs = K / 2,
                           .a_os = (long)(c->W + 2) * K / 2,
                           .a_ks = 1,
                           .b = j->wp,
                           .c = dxe + (size_t)ih * c->W * C,
                           .ldc = C,
                           .N = C,
                           .n_out = 3,
                           .n_in = 3 * K / 2,
                           .is_acc = false};
            gemm_bf16(&g, c->W);
        }
    }
}

BF16_TARGET void conv_bf16_backward(layer *l, const float *x, const float *y, float *dy, float *dx,
                                    int B) {
    const conv_cfg *c = l->cfg;
    int C = c->C, RSC = 9 * C, K = c->K;
    float *pw = l->scratch + l->scratch_per_example * (size_t)l->max_batch +
                (size_t)CONV_MAX_CHUNKS * K;      /* (CONV_SETS, RSC, K) */
    float *pb = pw + (size_t)CONV_SETS * RSC * K; /* (CONV_SETS, K) */
    uint32_t *wt = (uint32_t *)weight_area(l);    /* (3, 3, K/2, C) words, then W in bf16 */
    if (dx) {
        uint16_t *wb = (uint16_t *)(wt + (size_t)RSC * K / 2); /* (RSC, K) */
        cvt_run(wb, l->w, (long)RSC * K);
        const uint32_t *wbw = (const uint32_t *)wb; /* (RSC, K/2) words */
        for (int rs = 0; rs < 9; rs++)
            for (int kp = 0; kp < K / 2; kp++)
                for (int ch = 0; ch < C; ch++)
                    wt[((size_t)rs * (K / 2) + kp) * C + ch] =
                        wbw[((size_t)(8 - rs) * C + ch) * (K / 2) + kp];
    }
    int per, ng = groups(c, B, &per), ns = ng < CONV_SETS ? ng : CONV_SETS;
    bf16_job j = {.l = l,
                  .x = x,
                  .y = y,
                  .dy = dy,
                  .dx = dx,
                  .B = B,
                  .per = per,
                  .wp = wt,
                  .pw = pw,
                  .pb = pb};
    par_for(ng, ns, backward_set, &j);
    conv_dw_sum(l->dw, pw, (size_t)RSC * K, ns);
    float *db = l->dw + (size_t)RSC * K;
    for (int st = 0; st < ns; st++)
        for (int k = 0; k < K; k++)
            db[k] += pb[(size_t)st * K + k];
}

#else /* no AVX-512 BF16 in this compiler's reach: never applies */

bool conv_bf16_applies(const conv_cfg *c) {
    (void)c;
    return false;
}
void conv_bf16_forward(layer *l, const float *x, float *y, int B) {
    (void)l, (void)x, (void)y, (void)B;
}
void conv_bf16_backward(layer *l, const float *x, const float *y, float *dy, float *dx, int B) {
    (void)l, (void)x, (void)y, (void)dy, (void)dx, (void)B;
}

#endif
