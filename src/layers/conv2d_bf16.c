/* conv2d_bf16.c - training of 3x3 stride-1 conv layers with bf16 products (AVX-512 BF16,
 * vdpbf16ps): x, W and dz rounded to bf16 (round to nearest even), each product exact, the sums
 * in fp32 and the weights fp32 (the optimizer's master copy). Three products, each on the col
 * matrix of conv2d.c's cache path: y = b + col W, dW += col^T dz, dcol = dz W^T (then col2im).
 * x (B, H, W, C) channels-last, W (R*S*C, K) rows (r, s, c), col (Ho*Wo, R*S*C) per example.
 * vdpbf16ps multiplies pairs along the summed index, so each operand is kept as 32-bit words of
 * two bf16 values consecutive in that index (docs/derivations/conv_bf16.md). Inference never
 * comes here: conv2d.c's fp32 kernels serve it. */
#include "conv2d.h"

#if defined(__x86_64__) && defined(__GNUC__)
#define CONV_BF16 1
#include <immintrin.h>
#define BF16_TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16")))
#endif

/* The padded row length of col in bf16 values: R*S*C rounded up to even (a zero at the end). */
static int rsc_pad(const conv_cfg *c) { return (c->R * c->S * c->C + 1) / 2 * 2; }

/* Words of backward's working space for a group of M col rows, before its two fp32 rows. */
static size_t bwd_words(const conv_cfg *c, long M) {
    return (size_t)((M + 1) / 2) * (size_t)(rsc_pad(c) + c->K);
}

/* 3x3, stride 1, an even K, and one example's col area holds backward's pairs and two fp32
 * rows (true of the usual layers: K up to about 5 C). */
static bool fits(const conv_cfg *c) {
    long HWo = (long)c->Ho * c->Wo;
    return c->R == 3 && c->S == 3 && c->stride == 1 && c->K % 2 == 0 &&
           bwd_words(c, HWo) + 2 * (size_t)rsc_pad(c) <= (size_t)HWo * c->R * c->S * c->C;
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

/* ---- the product: C (M, N) (+)= A (M, Kp words) B (Kp, N words) ---- */

typedef struct {
    const uint32_t *a; /* word (i, kp) at a[i * a_rs + kp * a_ks] */
    long a_rs, a_ks;
    const uint32_t *b; /* word (kp, n) at b[kp * N + n] */
    float *c;          /* (M, ldc) */
    long ldc;
    int N, Kp;
    bool is_acc; /* add to C, else overwrite it */
} bf16_gemm;

/* NW rows by KZ vectors of 16 columns from (m0, n0); the last vector's lanes in mt. Each element
 * of C takes its pairs in kp order: the result depends on the sizes only. */
#define DEF_BF16(NW, KZ)                                                                           \
    BF16_TARGET static void gemm_##NW##_##KZ(const bf16_gemm *g, int m0, int n0, __mmask16 mt) {  \
        __m512 acc[NW][KZ];                                                                        \
        float *c0 = g->c + (size_t)m0 * g->ldc + n0;                                               \
        _Pragma("GCC unroll 16") for (int j = 0; j < NW; j++) {                                    \
            _Pragma("GCC unroll 4") for (int z = 0; z < KZ; z++) {                                 \
                __mmask16 m = z == KZ - 1 ? mt : (__mmask16)0xffff;                                \
                acc[j][z] = g->is_acc ? _mm512_maskz_loadu_ps(m, c0 + j * g->ldc + 16 * z)         \
                                      : _mm512_setzero_ps();                                       \
            }                                                                                      \
        }                                                                                          \
        const uint32_t *a0 = g->a + (size_t)m0 * g->a_rs, *b0 = g->b + n0;                         \
        for (int kp = 0; kp < g->Kp; kp++) {                                                       \
            __m512i bv[KZ];                                                                        \
            const uint32_t *bk = b0 + (size_t)kp * g->N;                                           \
            _Pragma("GCC unroll 4") for (int z = 0; z < KZ; z++) bv[z] =                           \
                z == KZ - 1 ? _mm512_maskz_loadu_epi32(mt, bk + 16 * z)                            \
                            : _mm512_loadu_si512(bk + 16 * z);                                     \
            const uint32_t *ak = a0 + (size_t)kp * g->a_ks;                                        \
            _Pragma("GCC unroll 16") for (int j = 0; j < NW; j++) {                                \
                __m512i av = _mm512_set1_epi32((int)ak[(size_t)j * g->a_rs]);                      \
                _Pragma("GCC unroll 4") for (int z = 0; z < KZ; z++) acc[j][z] =                   \
                    _mm512_dpbf16_ps(acc[j][z], (__m512bh)av, (__m512bh)bv[z]);                    \
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
DEF_BF16(1, 1)
DEF_BF16(1, 2)
DEF_BF16(1, 3)
DEF_BF16(1, 4)

typedef void (*gemm_fn)(const bf16_gemm *, int, int, __mmask16);
static const gemm_fn gemm_big[4] = {gemm_12_1, gemm_8_2, gemm_6_3, gemm_6_4};
static const gemm_fn gemm_one[4] = {gemm_1_1, gemm_1_2, gemm_1_3, gemm_1_4};
static const int gemm_nw[4] = {12, 8, 6, 6};

/* C's M rows, in column blocks of up to 64 and row blocks of gemm_nw. */
static void gemm_bf16(const bf16_gemm *g, int M) {
    for (int n0 = 0; n0 < g->N; n0 += 64) {
        int left = g->N - n0, kz = left >= 64 ? 4 : (left + 15) / 16;
        int rem = left - 16 * (kz - 1);
        __mmask16 mt = rem >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << rem) - 1u);
        int nw = gemm_nw[kz - 1], m0 = 0;
        for (; m0 + nw <= M; m0 += nw)
            gemm_big[kz - 1](g, m0, n0, mt);
        for (; m0 < M; m0++)
            gemm_one[kz - 1](g, m0, n0, mt);
    }
}

/* ---- col rows ---- */

/* Row p (output pixel (oh, ow)) of one example's col as fp32 (R*S*C), zeros over the padding. */
static void col_row(const conv_cfg *c, const float *x, int oh, int ow, float *row) {
    int C = c->C, S = c->S, SC = S * C;
    int ih0 = oh - c->pad_top, iw0 = ow - c->pad_left;
    int s_lo = imax(0, -iw0), s_hi = imin(S, c->W - iw0);
    for (int r = 0; r < c->R; r++, row += SC) {
        int ih = ih0 + r;
        if (ih < 0 || ih >= c->H || s_lo >= s_hi) {
            memset(row, 0, sizeof(float) * (size_t)SC);
            continue;
        }
        memset(row, 0, sizeof(float) * (size_t)s_lo * C);
        memcpy(row + s_lo * C, x + ((size_t)ih * c->W + iw0 + s_lo) * C,
               sizeof(float) * (size_t)(s_hi - s_lo) * C);
        memset(row + s_hi * C, 0, sizeof(float) * (size_t)(S - s_hi) * C);
    }
}

/* One example's col in bf16, rows of rsc_pad(c) values (the pad a zero). */
BF16_TARGET static void im2col_bf16_one(const conv_cfg *c, const float *x, uint16_t *col) {
    int C = c->C, S = c->S, SC = S * C, RSC = c->R * SC, RSCp = rsc_pad(c);
    for (int oh = 0; oh < c->Ho; oh++) {
        int ih0 = oh - c->pad_top;
        for (int ow = 0; ow < c->Wo; ow++) {
            int iw0 = ow - c->pad_left;
            int s_lo = imax(0, -iw0), s_hi = imin(S, c->W - iw0);
            uint16_t *dst = col + ((size_t)oh * c->Wo + ow) * RSCp;
            for (int r = 0; r < c->R; r++, dst += SC) {
                int ih = ih0 + r;
                if (ih < 0 || ih >= c->H || s_lo >= s_hi) {
                    memset(dst, 0, sizeof(uint16_t) * (size_t)SC);
                    continue;
                }
                memset(dst, 0, sizeof(uint16_t) * (size_t)s_lo * C);
                cvt_run(dst + s_lo * C, x + ((size_t)ih * c->W + iw0 + s_lo) * C,
                        (long)(s_hi - s_lo) * C);
                memset(dst + s_hi * C, 0, sizeof(uint16_t) * (size_t)(S - s_hi) * C);
            }
            if (RSCp > RSC)
                dst[0] = 0;
        }
    }
}

/* dx (H, W, C) of one example = scatter-add of dcol (Ho*Wo, R*S*C), as conv2d.c's col2im. */
static void col2im_one(const conv_cfg *c, const float *dcol, float *dx) {
    int C = c->C, S = c->S, SC = S * C, RSC = c->R * SC;
    memset(dx, 0, sizeof(float) * (size_t)c->H * c->W * C);
    for (int oh = 0; oh < c->Ho; oh++) {
        int ih0 = oh - c->pad_top;
        for (int ow = 0; ow < c->Wo; ow++) {
            int iw0 = ow - c->pad_left;
            int s_lo = imax(0, -iw0), s_hi = imin(S, c->W - iw0);
            if (s_lo >= s_hi)
                continue;
            const float *src = dcol + ((size_t)oh * c->Wo + ow) * RSC + s_lo * C;
            int n = (s_hi - s_lo) * C;
            for (int r = 0; r < c->R; r++, src += SC) {
                int ih = ih0 + r;
                if (ih < 0 || ih >= c->H)
                    continue;
                float *d = dx + ((size_t)ih * c->W + iw0 + s_lo) * C;
#pragma omp simd
                for (int j = 0; j < n; j++)
                    d[j] += src[j];
            }
        }
    }
}

/* ---- forward and backward over example groups ---- */

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
    const uint32_t *wp; /* forward: W as (RSCp/2, K) words; backward: W^T as (K/2, RSC) words */
    float *pw, *pb;     /* backward: (CONV_SETS, RSC, K) dW and (CONV_SETS, K) db partials */
} bf16_job;

/* The fixed scratch's flipped-kernel area (RSC*K floats), which holds the packed weights. */
static float *weight_area(const layer *l) {
    const conv_cfg *c = l->cfg;
    size_t RSC = (size_t)c->R * c->S * c->C, K = (size_t)c->K;
    return l->scratch + l->scratch_per_example * (size_t)l->max_batch + CONV_MAX_CHUNKS * K +
           CONV_SETS * (RSC * K + K);
}

BF16_TARGET static void forward_groups(void *ctx, long lo, long hi, int k) {
    (void)k;
    const bf16_job *j = ctx;
    const conv_cfg *c = j->l->cfg;
    int RSC = c->R * c->S * c->C, RSCp = rsc_pad(c), K = c->K, HWo = c->Ho * c->Wo;
    size_t in_sz = (size_t)c->H * c->W * c->C, col_sz = (size_t)HWo * RSC;
    const float *b = j->l->w + (size_t)RSC * K;
    for (int g = (int)lo; g < (int)hi; g++) {
        int b0 = g * j->per, b1 = imin(j->B, b0 + j->per);
        uint16_t *col = (uint16_t *)(j->l->scratch + (size_t)b0 * col_sz);
        for (int e = b0; e < b1; e++)
            im2col_bf16_one(c, j->x + e * in_sz, col + (size_t)(e - b0) * HWo * RSCp);
        long M = (long)(b1 - b0) * HWo;
        float *yg = j->out + (size_t)b0 * HWo * K;
        for (long i = 0; i < M; i++)
            memcpy(yg + i * K, b, sizeof(float) * K);
        bf16_gemm gm = {.a = (const uint32_t *)col,
                        .a_rs = RSCp / 2,
                        .a_ks = 1,
                        .b = j->wp,
                        .c = yg,
                        .ldc = K,
                        .N = K,
                        .Kp = RSCp / 2,
                        .is_acc = true};
        gemm_bf16(&gm, (int)M);
        act_forward(c->act, c->alpha, yg, (size_t)M * K);
    }
}

void conv_bf16_forward(layer *l, const float *x, float *y, int B) {
    const conv_cfg *c = l->cfg;
    int RSC = c->R * c->S * c->C, RSCp = rsc_pad(c), K = c->K;
    uint32_t *wp = (uint32_t *)weight_area(l); /* (RSCp/2, K) words: rows 2i and 2i+1 of W */
    for (int i = 0; i < RSCp / 2; i++)
        pair_run(wp + (size_t)i * K, l->w + (size_t)2 * i * K,
                 2 * i + 1 < RSC ? l->w + (size_t)(2 * i + 1) * K : NULL, K);
    int per, ng = groups(c, B, &per);
    bf16_job j = {.l = l, .x = x, .out = y, .B = B, .per = per, .wp = wp};
    par_for(ng, ng, forward_groups, &j);
}

/* Reduction set st: groups [g0, g1) in order: dz = dy f'(y) and db; dW += col^T dz from the
 * pairs of col rows and of dz rows; dcol = dz W^T from dz in bf16 (in dy's own memory), col2im. */
BF16_TARGET static void backward_set(void *ctx, long g0, long g1, int st) {
    const bf16_job *j = ctx;
    const conv_cfg *c = j->l->cfg;
    int RSC = c->R * c->S * c->C, RSCp = rsc_pad(c), K = c->K, HWo = c->Ho * c->Wo;
    size_t in_sz = (size_t)c->H * c->W * c->C, col_sz = (size_t)HWo * RSC;
    float *pws = j->pw + (size_t)st * RSC * K, *pbs = j->pb + (size_t)st * K;
    memset(pbs, 0, sizeof(float) * K);
    memset(pws, 0, sizeof(float) * RSC * K);
    for (int g = (int)g0; g < (int)g1; g++) {
        int b0 = g * j->per, b1 = imin(j->B, b0 + j->per);
        long M = (long)(b1 - b0) * HWo, Mp = (M + 1) / 2;
        float *dz = j->dy + (size_t)b0 * HWo * K;
        const float *yg = j->y + (size_t)b0 * HWo * K;
        for (long i = 0; i < M; i++) {
            float *d = dz + i * K;
            act_backward(c->act, c->alpha, yg + i * K, d, (size_t)K);
#pragma omp simd
            for (int k = 0; k < K; k++)
                pbs[k] += d[k];
        }
        float *area = j->l->scratch + (size_t)b0 * col_sz; /* (b1 - b0) col areas */
        uint32_t *colp = (uint32_t *)area;                 /* (Mp, RSCp) pairs of col rows */
        uint32_t *dzp = colp + (size_t)Mp * RSCp;          /* (Mp, K) pairs of dz rows */
        float *ra = (float *)(dzp + (size_t)Mp * K), *rb = ra + RSCp; /* two col rows */
        for (long i = 0; i < Mp; i++) {
            long p = 2 * i;
            bool has_b = p + 1 < M;
            pair_run(dzp + i * K, dz + p * K, has_b ? dz + (p + 1) * K : NULL, K);
            col_row(c, j->x + (size_t)(b0 + p / HWo) * in_sz, (int)(p % HWo / c->Wo),
                    (int)(p % HWo % c->Wo), ra);
            if (has_b)
                col_row(c, j->x + (size_t)(b0 + (p + 1) / HWo) * in_sz,
                        (int)((p + 1) % HWo / c->Wo), (int)((p + 1) % HWo % c->Wo), rb);
            pair_run(colp + i * RSCp, ra, has_b ? rb : NULL, RSC);
            if (RSCp > RSC)
                colp[i * RSCp + RSC] = 0;
        }
        bf16_gemm gw = {.a = colp,
                        .a_rs = 1,
                        .a_ks = RSCp,
                        .b = dzp,
                        .c = pws,
                        .ldc = K,
                        .N = K,
                        .Kp = (int)Mp,
                        .is_acc = true};
        gemm_bf16(&gw, RSC);
        if (!j->dx)
            continue;
        cvt_run((uint16_t *)dz, dz, M * K); /* dz (M, K) in bf16, over its own first half */
        bf16_gemm gx = {.a = (const uint32_t *)dz,
                        .a_rs = K / 2,
                        .a_ks = 1,
                        .b = j->wp,
                        .c = area,
                        .ldc = RSC,
                        .N = RSC,
                        .Kp = K / 2,
                        .is_acc = false};
        gemm_bf16(&gx, (int)M);
        for (int e = b0; e < b1; e++)
            col2im_one(c, area + (size_t)(e - b0) * col_sz, j->dx + e * in_sz);
    }
}

typedef struct {
    float *dW;
    const float *pw;
    size_t nw;
    int ns;
} dw_sum;

static void dw_sum_range(void *ctx, long lo, long hi, int k) {
    (void)k;
    const dw_sum *p = ctx;
    for (int st = 0; st < p->ns; st++) {
        const float *q = p->pw + (size_t)st * p->nw;
#pragma omp simd
        for (long i = lo; i < hi; i++)
            p->dW[i] += q[i];
    }
}

BF16_TARGET void conv_bf16_backward(layer *l, const float *x, const float *y, float *dy, float *dx,
                                    int B) {
    const conv_cfg *c = l->cfg;
    int RSC = c->R * c->S * c->C, K = c->K;
    float *pw = l->scratch + l->scratch_per_example * (size_t)l->max_batch +
                (size_t)CONV_MAX_CHUNKS * K;      /* (CONV_SETS, RSC, K) */
    float *pb = pw + (size_t)CONV_SETS * RSC * K; /* (CONV_SETS, K) */
    uint32_t *wt = (uint32_t *)weight_area(l);    /* (K/2, RSC) words, then W in bf16 */
    if (dx) {
        uint16_t *wb = (uint16_t *)(wt + (size_t)RSC * K / 2); /* (RSC, K) */
        cvt_run(wb, l->w, (long)RSC * K);
        const uint32_t *wbw = (const uint32_t *)wb; /* (RSC, K/2) words */
        for (int i = 0; i < K / 2; i++)
            for (int r = 0; r < RSC; r++)
                wt[(size_t)i * RSC + r] = wbw[(size_t)r * (K / 2) + i];
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
    dw_sum p = {.dW = l->dw, .pw = pw, .nw = (size_t)RSC * K, .ns = ns};
    par_for((long)p.nw, par_n_chunks((long)p.nw, 16384), dw_sum_range, &p);
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
void conv_bf16_forward(layer *l, const float *x, float *y, int B) { (void)l, (void)x, (void)y, (void)B; }
void conv_bf16_backward(layer *l, const float *x, const float *y, float *dy, float *dx, int B) {
    (void)l, (void)x, (void)y, (void)dy, (void)dx, (void)B;
}

#endif
