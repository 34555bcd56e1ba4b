/* conv2d_direct.c - the conv layer's direct AVX-512 kernels, one example at a time and no im2col:
 * forward y (Ho, Wo, K) = bias + conv(x), the weight gradient dW (R*S*C, K) += from x and dz,
 * and dx (H, W, C) by the forward kernel on dz (Ho, Wo, K). x (H, W, C) channels-last, W rows
 * ordered (r, s, c). Two macros generate the register-tiled kernels; tables pick them by size. */
#include "conv2d.h"

#ifdef CONV_DIRECT

/* ---- direct forward (AVX-512) ----
 * y (Ho, Wo, K) of one example computed straight from the (padded) input: a tile of NW
 * output pixels of one row times up to 64 filters (KZ vectors of 16) sits in NW*KZ vector
 * registers, starts at the bias and takes one FMA per input value and filter vector, over
 * (r, s, c) in order. No im2col copy and no packing: the layers with few channels, where the
 * GEMM of the col matrix runs far below peak, gain most. The sum's order is fixed by the
 * shapes, so the result does not depend on the thread count. */

/* Vector z of a block of kz filter vectors at p: the block's last one holds only the lanes in
 * m (the K % 16 filters left over), so it is loaded and stored under the mask. */
static inline __m512 kvec_load(const float *p, int z, int kz, __mmask16 m) {
    return z == kz - 1 ? _mm512_maskz_loadu_ps(m, p + 16 * z) : _mm512_loadu_ps(p + 16 * z);
}
static inline void kvec_store(float *p, int z, int kz, __mmask16 m, __m512 v) {
    if (z == kz - 1)
        _mm512_mask_storeu_ps(p + 16 * z, m, v);
    else
        _mm512_storeu_ps(p + 16 * z, v);
}

typedef struct {
    const float *wt, *bias; /* (RSC, K) from the block's first filter, (K) likewise */
    int K, C, R, S, stride;
    int ldx;     /* floats between input rows */
    __mmask16 m; /* lanes of the block's last filter vector */
} direct_args;

/* A block's last filter vector (its "tail", under the mask a->m): a 512-bit vector (Z) or, when
 * it holds 1-8 filters and AVX-512VL is there, a 256-bit one (Y). Zen 4 runs a 512-bit FMA as
 * two 256-bit halves, so a masked 16-lane vector of 8 filters costs a full one and a 256-bit one
 * half (keras-v1's 8 and 24 filters, and the dx of its 24- and 48-filter layers). Each lane
 * takes the same FMAs in the same order either way: the same results. */
typedef __m512 tail_Z;
static inline __m512 tail_load_Z(const float *p, __mmask16 m) {
    return _mm512_maskz_loadu_ps(m, p);
}
static inline void tail_store_Z(float *p, __mmask16 m, __m512 v) { _mm512_mask_storeu_ps(p, m, v); }
static inline __m512 tail_fma_Z(__m512 x, __m512 w, __m512 acc) {
    return _mm512_fmadd_ps(x, w, acc);
}
#ifdef __AVX512VL__
typedef __m256 tail_Y;
static inline __m256 tail_load_Y(const float *p, __mmask16 m) {
    return _mm256_maskz_loadu_ps((__mmask8)m, p);
}
static inline void tail_store_Y(float *p, __mmask16 m, __m256 v) {
    _mm256_mask_storeu_ps(p, (__mmask8)m, v);
}
static inline __m256 tail_fma_Y(__m512 x, __m256 w, __m256 acc) {
    return _mm256_fmadd_ps(_mm512_castps512_ps256(x), w, acc);
}
#endif

/* NAME: NW pixels by KF full filter vectors and a tail of type T. */
#define DEF_DIRECT(NAME, NW, KF, T)                                                                \
    static void NAME(const direct_args *a, const float *x0, float *y0) {                           \
        __m512 acc[NW][KF + 1];                                                                    \
        tail_##T acct[NW];                                                                         \
        _Pragma("GCC unroll 16") for (int z = 0; z < KF; z++) {                                    \
            __m512 b = _mm512_loadu_ps(a->bias + 16 * z);                                          \
            _Pragma("GCC unroll 16") for (int j = 0; j < NW; j++) acc[j][z] = b;                   \
        }                                                                                          \
        tail_##T bt = tail_load_##T(a->bias + 16 * KF, a->m);                                      \
        _Pragma("GCC unroll 16") for (int j = 0; j < NW; j++) acct[j] = bt;                        \
        int C = a->C, K = a->K, sc = a->stride * C;                                                \
        for (int r = 0; r < a->R; r++)                                                             \
            for (int s = 0; s < a->S; s++) {                                                       \
                const float *xp = x0 + (size_t)r * a->ldx + (size_t)s * C;                         \
                const float *wp = a->wt + (size_t)(r * a->S + s) * C * K;                          \
                for (int c = 0; c < C; c++, wp += K) {                                             \
                    __m512 w[KF + 1];                                                              \
                    _Pragma("GCC unroll 16") for (int z = 0; z < KF; z++) w[z] =                   \
                        _mm512_loadu_ps(wp + 16 * z);                                              \
                    tail_##T wt = tail_load_##T(wp + 16 * KF, a->m);                               \
                    _Pragma("GCC unroll 16") for (int j = 0; j < NW; j++) {                        \
                        __m512 xb = _mm512_set1_ps(xp[j * sc + c]);                                \
                        _Pragma("GCC unroll 16") for (int z = 0; z < KF; z++) acc[j][z] =          \
                            _mm512_fmadd_ps(xb, w[z], acc[j][z]);                                  \
                        acct[j] = tail_fma_##T(xb, wt, acct[j]);                                   \
                    }                                                                              \
                }                                                                                  \
            }                                                                                      \
        _Pragma("GCC unroll 16") for (int j = 0; j < NW; j++) {                                    \
            _Pragma("GCC unroll 16") for (int z = 0; z < KF; z++)                                  \
                _mm512_storeu_ps(y0 + (size_t)j * K + 16 * z, acc[j][z]);                          \
            tail_store_##T(y0 + (size_t)j * K + 16 * KF, a->m, acct[j]);                           \
        }                                                                                          \
    }
DEF_DIRECT(direct_1_1, 1, 0, Z)
DEF_DIRECT(direct_2_1, 2, 0, Z)
DEF_DIRECT(direct_3_1, 3, 0, Z)
DEF_DIRECT(direct_4_1, 4, 0, Z)
DEF_DIRECT(direct_5_1, 5, 0, Z)
DEF_DIRECT(direct_6_1, 6, 0, Z)
DEF_DIRECT(direct_7_1, 7, 0, Z)
DEF_DIRECT(direct_8_1, 8, 0, Z)
DEF_DIRECT(direct_9_1, 9, 0, Z)
DEF_DIRECT(direct_10_1, 10, 0, Z)
DEF_DIRECT(direct_11_1, 11, 0, Z)
DEF_DIRECT(direct_12_1, 12, 0, Z)
DEF_DIRECT(direct_1_2, 1, 1, Z)
DEF_DIRECT(direct_2_2, 2, 1, Z)
DEF_DIRECT(direct_3_2, 3, 1, Z)
DEF_DIRECT(direct_4_2, 4, 1, Z)
DEF_DIRECT(direct_5_2, 5, 1, Z)
DEF_DIRECT(direct_6_2, 6, 1, Z)
DEF_DIRECT(direct_7_2, 7, 1, Z)
DEF_DIRECT(direct_8_2, 8, 1, Z)
DEF_DIRECT(direct_1_3, 1, 2, Z)
DEF_DIRECT(direct_2_3, 2, 2, Z)
DEF_DIRECT(direct_3_3, 3, 2, Z)
DEF_DIRECT(direct_4_3, 4, 2, Z)
DEF_DIRECT(direct_5_3, 5, 2, Z)
DEF_DIRECT(direct_6_3, 6, 2, Z)
DEF_DIRECT(direct_1_4, 1, 3, Z)
DEF_DIRECT(direct_2_4, 2, 3, Z)
DEF_DIRECT(direct_3_4, 3, 3, Z)
DEF_DIRECT(direct_4_4, 4, 3, Z)
DEF_DIRECT(direct_5_4, 5, 3, Z)
DEF_DIRECT(direct_6_4, 6, 3, Z)
#ifdef __AVX512VL__
DEF_DIRECT(direct_h_1_0, 1, 0, Y)
DEF_DIRECT(direct_h_2_0, 2, 0, Y)
DEF_DIRECT(direct_h_3_0, 3, 0, Y)
DEF_DIRECT(direct_h_4_0, 4, 0, Y)
DEF_DIRECT(direct_h_5_0, 5, 0, Y)
DEF_DIRECT(direct_h_6_0, 6, 0, Y)
DEF_DIRECT(direct_h_7_0, 7, 0, Y)
DEF_DIRECT(direct_h_8_0, 8, 0, Y)
DEF_DIRECT(direct_h_9_0, 9, 0, Y)
DEF_DIRECT(direct_h_10_0, 10, 0, Y)
DEF_DIRECT(direct_h_11_0, 11, 0, Y)
DEF_DIRECT(direct_h_12_0, 12, 0, Y)
DEF_DIRECT(direct_h_1_1, 1, 1, Y)
DEF_DIRECT(direct_h_2_1, 2, 1, Y)
DEF_DIRECT(direct_h_3_1, 3, 1, Y)
DEF_DIRECT(direct_h_4_1, 4, 1, Y)
DEF_DIRECT(direct_h_5_1, 5, 1, Y)
DEF_DIRECT(direct_h_6_1, 6, 1, Y)
DEF_DIRECT(direct_h_7_1, 7, 1, Y)
DEF_DIRECT(direct_h_8_1, 8, 1, Y)
DEF_DIRECT(direct_h_1_2, 1, 2, Y)
DEF_DIRECT(direct_h_2_2, 2, 2, Y)
DEF_DIRECT(direct_h_3_2, 3, 2, Y)
DEF_DIRECT(direct_h_4_2, 4, 2, Y)
DEF_DIRECT(direct_h_5_2, 5, 2, Y)
DEF_DIRECT(direct_h_6_2, 6, 2, Y)
DEF_DIRECT(direct_h_1_3, 1, 3, Y)
DEF_DIRECT(direct_h_2_3, 2, 3, Y)
DEF_DIRECT(direct_h_3_3, 3, 3, Y)
DEF_DIRECT(direct_h_4_3, 4, 3, Y)
DEF_DIRECT(direct_h_5_3, 5, 3, Y)
DEF_DIRECT(direct_h_6_3, 6, 3, Y)
#endif

/* direct_tab[KZ - 1][NW - 1]: NW pixels by KZ filter vectors, NW up to direct_nw[KZ - 1] (the
 * accumulators NW*KZ stay within 24 of the 32 vector registers) */
typedef void (*direct_fn)(const direct_args *, const float *, float *);
static const int direct_nw[4] = {12, 8, 6, 6};
static const direct_fn direct_tab[4][12] = {
    {direct_1_1, direct_2_1, direct_3_1, direct_4_1, direct_5_1, direct_6_1, direct_7_1, direct_8_1,
     direct_9_1, direct_10_1, direct_11_1, direct_12_1},
    {direct_1_2, direct_2_2, direct_3_2, direct_4_2, direct_5_2, direct_6_2, direct_7_2,
     direct_8_2},
    {direct_1_3, direct_2_3, direct_3_3, direct_4_3, direct_5_3, direct_6_3},
    {direct_1_4, direct_2_4, direct_3_4, direct_4_4, direct_5_4, direct_6_4},
};
#ifdef __AVX512VL__
/* direct_h_tab[KF][NW - 1]: KF full filter vectors and a half one, NW as direct_tab's */
static const direct_fn direct_h_tab[4][12] = {
    {direct_h_1_0, direct_h_2_0, direct_h_3_0, direct_h_4_0, direct_h_5_0, direct_h_6_0,
     direct_h_7_0, direct_h_8_0, direct_h_9_0, direct_h_10_0, direct_h_11_0, direct_h_12_0},
    {direct_h_1_1, direct_h_2_1, direct_h_3_1, direct_h_4_1, direct_h_5_1, direct_h_6_1,
     direct_h_7_1, direct_h_8_1},
    {direct_h_1_2, direct_h_2_2, direct_h_3_2, direct_h_4_2, direct_h_5_2, direct_h_6_2},
    {direct_h_1_3, direct_h_2_3, direct_h_3_3, direct_h_4_3, direct_h_5_3, direct_h_6_3},
};
#endif

/* The weight gradient straight from the input: rows j0 .. j0+TB-1 of one kernel row r of dW
 * (RSC, K) (consecutive (s, c) pairs, so consecutive floats of each input row) times KZ filter
 * vectors sit in TB*KZ registers, loaded from and stored back to dw, and take one FMA per
 * output pixel, pixels in order. x0: the input at (r, j0) for pixel (0, 0); dz (Ho*Wo, K) from
 * the block's first filter. */
typedef struct {
    int K, Ho, Wo, stride, C, ldx;
    __mmask16 m; /* lanes of the block's last filter vector */
} direct_dw_args;

#define DEF_DIRECT_DW(TB, KZ)                                                                      \
    static void direct_dw_##TB##_##KZ(const direct_dw_args *a, const float *x0, const float *dz,   \
                                      float *dw) {                                                 \
        __m512 acc[TB][KZ];                                                                        \
        int K = a->K;                                                                              \
        _Pragma("GCC unroll 32") for (int t = 0; t < TB; t++)                                      \
            _Pragma("GCC unroll 4") for (int z = 0; z < KZ; z++) acc[t][z] =                       \
                kvec_load(dw + (size_t)t * K, z, KZ, a->m);                                        \
        int sc = a->stride * a->C;                                                                 \
        for (int oh = 0; oh < a->Ho; oh++) {                                                       \
            const float *xp = x0 + (size_t)oh * a->stride * a->ldx;                                \
            const float *dp = dz + (size_t)oh * a->Wo * K;                                         \
            for (int ow = 0; ow < a->Wo; ow++, xp += sc, dp += K) {                                \
                __m512 d[KZ];                                                                      \
                _Pragma("GCC unroll 4") for (int z = 0; z < KZ; z++) d[z] =                        \
                    kvec_load(dp, z, KZ, a->m);                                                    \
                _Pragma("GCC unroll 32") for (int t = 0; t < TB; t++) {                            \
                    __m512 xb = _mm512_set1_ps(xp[t]);                                             \
                    _Pragma("GCC unroll 4") for (int z = 0; z < KZ; z++) acc[t][z] =               \
                        _mm512_fmadd_ps(xb, d[z], acc[t][z]);                                      \
                }                                                                                  \
            }                                                                                      \
        }                                                                                          \
        _Pragma("GCC unroll 32") for (int t = 0; t < TB; t++)                                      \
            _Pragma("GCC unroll 4") for (int z = 0; z < KZ; z++)                                   \
                kvec_store(dw + (size_t)t * K, z, KZ, a->m, acc[t][z]);                            \
    }
DEF_DIRECT_DW(1, 1)
DEF_DIRECT_DW(2, 1)
DEF_DIRECT_DW(3, 1)
DEF_DIRECT_DW(4, 1)
DEF_DIRECT_DW(5, 1)
DEF_DIRECT_DW(6, 1)
DEF_DIRECT_DW(7, 1)
DEF_DIRECT_DW(8, 1)
DEF_DIRECT_DW(9, 1)
DEF_DIRECT_DW(10, 1)
DEF_DIRECT_DW(11, 1)
DEF_DIRECT_DW(12, 1)
DEF_DIRECT_DW(13, 1)
DEF_DIRECT_DW(14, 1)
DEF_DIRECT_DW(15, 1)
DEF_DIRECT_DW(16, 1)
DEF_DIRECT_DW(17, 1)
DEF_DIRECT_DW(18, 1)
DEF_DIRECT_DW(19, 1)
DEF_DIRECT_DW(20, 1)
DEF_DIRECT_DW(21, 1)
DEF_DIRECT_DW(22, 1)
DEF_DIRECT_DW(23, 1)
DEF_DIRECT_DW(24, 1)
DEF_DIRECT_DW(1, 2)
DEF_DIRECT_DW(2, 2)
DEF_DIRECT_DW(3, 2)
DEF_DIRECT_DW(4, 2)
DEF_DIRECT_DW(5, 2)
DEF_DIRECT_DW(6, 2)
DEF_DIRECT_DW(7, 2)
DEF_DIRECT_DW(8, 2)
DEF_DIRECT_DW(9, 2)
DEF_DIRECT_DW(10, 2)
DEF_DIRECT_DW(11, 2)
DEF_DIRECT_DW(12, 2)
DEF_DIRECT_DW(1, 3)
DEF_DIRECT_DW(2, 3)
DEF_DIRECT_DW(3, 3)
DEF_DIRECT_DW(4, 3)
DEF_DIRECT_DW(5, 3)
DEF_DIRECT_DW(6, 3)
DEF_DIRECT_DW(7, 3)
DEF_DIRECT_DW(8, 3)
DEF_DIRECT_DW(1, 4)
DEF_DIRECT_DW(2, 4)
DEF_DIRECT_DW(3, 4)
DEF_DIRECT_DW(4, 4)
DEF_DIRECT_DW(5, 4)
DEF_DIRECT_DW(6, 4)

/* direct_dw_tab[KZ - 1][TB - 1], TB up to direct_dw_tb[KZ - 1] (TB*KZ accumulators <= 24) */
typedef void (*direct_dw_fn)(const direct_dw_args *, const float *, const float *, float *);
static const int direct_dw_tb[4] = {24, 12, 8, 6};
static const direct_dw_fn direct_dw_tab[4][24] = {
    {direct_dw_1_1,  direct_dw_2_1,  direct_dw_3_1,  direct_dw_4_1,  direct_dw_5_1,
     direct_dw_6_1,  direct_dw_7_1,  direct_dw_8_1,  direct_dw_9_1,  direct_dw_10_1,
     direct_dw_11_1, direct_dw_12_1, direct_dw_13_1, direct_dw_14_1, direct_dw_15_1,
     direct_dw_16_1, direct_dw_17_1, direct_dw_18_1, direct_dw_19_1, direct_dw_20_1,
     direct_dw_21_1, direct_dw_22_1, direct_dw_23_1, direct_dw_24_1},
    {direct_dw_1_2, direct_dw_2_2, direct_dw_3_2, direct_dw_4_2, direct_dw_5_2, direct_dw_6_2,
     direct_dw_7_2, direct_dw_8_2, direct_dw_9_2, direct_dw_10_2, direct_dw_11_2, direct_dw_12_2},
    {direct_dw_1_3, direct_dw_2_3, direct_dw_3_3, direct_dw_4_3, direct_dw_5_3, direct_dw_6_3,
     direct_dw_7_3, direct_dw_8_3},
    {direct_dw_1_4, direct_dw_2_4, direct_dw_3_4, direct_dw_4_4, direct_dw_5_4, direct_dw_6_4},
};

/* The input rows the direct kernel reads: x itself for "valid" padding, else x copied into
 * pad (Hp, Wp, C) with its zero border. Returns the rows and sets *ldx. */
static bool direct_in_place(const conv_cfg *c) {
    return c->pad_top == 0 && c->pad_left == 0 && (c->Ho - 1) * c->stride + c->R <= c->H &&
           (c->Wo - 1) * c->stride + c->S <= c->W;
}

static const float *direct_input(const conv_cfg *c, const float *x, float *pad, int *ldx) {
    if (direct_in_place(c)) {
        *ldx = c->W * c->C;
        return x;
    }
    int Hp = (c->Ho - 1) * c->stride + c->R, Wp = (c->Wo - 1) * c->stride + c->S, C = c->C;
    memset(pad, 0, sizeof(float) * (size_t)Hp * Wp * C);
    for (int h = 0; h < c->H && h + c->pad_top < Hp; h++)
        memcpy(pad + ((size_t)(h + c->pad_top) * Wp + c->pad_left) * C, x + (size_t)h * c->W * C,
               sizeof(float) * (size_t)imin(c->W, Wp - c->pad_left) * C);
    *ldx = Wp * C;
    return pad;
}

/* Floats of the padded copy of one example (0 when the input is read in place). */
size_t conv_direct_pad_floats(const conv_cfg *c) {
    if (direct_in_place(c))
        return 0;
    return (size_t)((c->Ho - 1) * c->stride + c->R) * ((c->Wo - 1) * c->stride + c->S) * c->C;
}

int conv_direct_ldx(const conv_cfg *c) {
    return direct_in_place(c) ? c->W * c->C : ((c->Wo - 1) * c->stride + c->S) * c->C;
}

const float *conv_direct_input(const conv_cfg *c, const float *x, float *pad, int *ldx) {
    return direct_input(c, x, pad, ldx);
}

/* Output rows [oh0, oh1) of y (Ho, Wo, K) = bias + conv(x): xp the rows conv_direct_input gave. */
void conv_direct_rows(const conv_cfg *c, const float *Wt, const float *bias, const float *xp,
                      int ldx, float *y, int oh0, int oh1) {
    int K = c->K, Wo = c->Wo, st = c->stride;
    for (int kb = 0; kb < K; kb += 64) {
        int kw = imin(64, K - kb), kz = (kw + 15) / 16;
        direct_args a = {
            Wt + kb, bias + kb, K,
            c->C,    c->R,      c->S,
            st,      ldx,       (__mmask16)(kw % 16 ? (1u << (kw % 16)) - 1u : 0xffffu)};
        int nw = imin(direct_nw[kz - 1], Wo), rem = Wo % nw;
#ifdef __AVX512VL__
        const direct_fn *fns =
            kw % 16 >= 1 && kw % 16 <= 8 ? direct_h_tab[kz - 1] : direct_tab[kz - 1];
#else
        const direct_fn *fns = direct_tab[kz - 1];
#endif
        for (int oh = oh0; oh < oh1; oh++) {
            const float *xr = xp + (size_t)oh * st * ldx;
            float *yr = y + (size_t)oh * Wo * K + kb;
            int ow = 0;
            for (; ow + nw <= Wo; ow += nw)
                fns[nw - 1](&a, xr + (size_t)ow * st * c->C, yr + (size_t)ow * K);
            if (rem)
                fns[rem - 1](&a, xr + (size_t)ow * st * c->C, yr + (size_t)ow * K);
        }
    }
}

/* y (Ho, Wo, K) = bias + conv(x) of one example; pad: scratch of conv_direct_pad_floats(c). */
void conv_direct_one(const conv_cfg *c, const float *Wt, const float *bias, const float *x,
                     float *pad, float *y) {
    int ldx;
    const float *xp = direct_input(c, x, pad, &ldx);
    conv_direct_rows(c, Wt, bias, xp, ldx, y, 0, c->Ho);
}

/* dw (RSC, K) += the weight gradient of one example: x its input, dz (Ho, Wo, K) its output
 * gradient (after the activation); pad: scratch of conv_direct_pad_floats(c). */
void conv_direct_dw_one(const conv_cfg *c, const float *x, const float *dz, float *pad, float *dw) {
    int ldx, K = c->K, SC = c->S * c->C;
    const float *xp = direct_input(c, x, pad, &ldx);
    for (int kb = 0; kb < K; kb += 64) {
        int kw = imin(64, K - kb), kz = (kw + 15) / 16;
        direct_dw_args a = {K,
                            c->Ho,
                            c->Wo,
                            c->stride,
                            c->C,
                            ldx,
                            (__mmask16)(kw % 16 ? (1u << (kw % 16)) - 1u : 0xffffu)};
        int tb = imin(direct_dw_tb[kz - 1], SC);
        for (int r = 0; r < c->R; r++)
            for (int j = 0; j < SC; j += tb) {
                int n = imin(tb, SC - j);
                direct_dw_tab[kz - 1][n - 1](&a, xp + (size_t)r * ldx + j, dz + kb,
                                             dw + ((size_t)r * SC + j) * K + kb);
            }
    }
}

/* dx by the forward kernel. In the padded input frame, the rows i = st*q + a (phase a of the
 * stride st) receive dz row q - u through kernel row a + st*u only, and likewise for columns:
 * each phase (a, b) is the "full" stride-1 convolution of dz with the sub-kernel of taps
 * (a + st*u, b + st*v), flipped in space and transposed in channels (K in, C out):
 *   out[q, p] = sum_{u,v,k} dz[q - u, p - v, k] W[a + st*u, b + st*v, c, k]
 * computed as a valid convolution of dz padded by (Ru-1, Sv-1) zeros, and written to the
 * frame's pixel (st*q + a, st*p + b) when that pixel is inside the input. Stride 1 is one
 * phase with the whole kernel. */
static inline int phase_taps(int R, int st, int a) { return a < R ? (R - a + st - 1) / st : 0; }

/* Floats of one example's working space: the padded dz and full output of the largest phase. */
size_t conv_direct_dx_floats(const conv_cfg *c) {
    int Ru = phase_taps(c->R, c->stride, 0), Sv = phase_taps(c->S, c->stride, 0);
    size_t Hd = (size_t)c->Ho + 2 * (Ru - 1), Wd = (size_t)c->Wo + 2 * (Sv - 1);
    size_t Hf = (size_t)c->Ho + Ru - 1, Wf = (size_t)c->Wo + Sv - 1;
    return Hd * Wd * c->K + Hf * Wf * c->C + c->C;
}

/* wf: the flipped, transposed sub-kernels of the phases (a, b) in order, each (Ru, Sv, K, C);
 * R*S*C*K floats in all. */
void conv_direct_flip(const conv_cfg *c, const float *w, float *wf) {
    int st = c->stride, C = c->C, K = c->K;
    for (int a = 0; a < st; a++)
        for (int b = 0; b < st; b++) {
            int Ru = phase_taps(c->R, st, a), Sv = phase_taps(c->S, st, b);
            for (int u = 0; u < Ru; u++)
                for (int v = 0; v < Sv; v++) {
                    int r = a + st * (Ru - 1 - u), s = b + st * (Sv - 1 - v);
                    const float *src = w + (size_t)(r * c->S + s) * C * K;
                    for (int ci = 0; ci < C; ci++)
                        for (int k = 0; k < K; k++)
                            wf[(size_t)k * C + ci] = src[(size_t)ci * K + k];
                    wf += (size_t)K * C;
                }
        }
}

/* dx (H, W, C) of one example from dz (Ho, Wo, K); tmp holds conv_direct_dx_floats(c). */
NO_LIBCALLS void conv_direct_dx_one(const conv_cfg *c, const float *wf, const float *dz, float *tmp,
                                    float *dx) {
    int st = c->stride, K = c->K, C = c->C;
    if (st > 1)
        memset(dx, 0, sizeof(float) * (size_t)c->H * c->W * C); /* pixels no tap reaches */
    for (int a = 0; a < st; a++)
        for (int b = 0; b < st; b++) {
            int Ru = phase_taps(c->R, st, a), Sv = phase_taps(c->S, st, b);
            if (Ru == 0 || Sv == 0)
                continue;
            int Hd = c->Ho + 2 * (Ru - 1), Wd = c->Wo + 2 * (Sv - 1);
            int Hf = c->Ho + Ru - 1, Wf = c->Wo + Sv - 1;
            float *dzp = tmp, *full = tmp + (size_t)Hd * Wd * K, *zero = full + (size_t)Hf * Wf * C;
            memset(dzp, 0, sizeof(float) * (size_t)Hd * Wd * K);
            for (int oh = 0; oh < c->Ho; oh++)
                memcpy(dzp + ((size_t)(oh + Ru - 1) * Wd + Sv - 1) * K, dz + (size_t)oh * c->Wo * K,
                       sizeof(float) * (size_t)c->Wo * K);
            memset(zero, 0, sizeof(float) * (size_t)C);
            conv_cfg t = {.K = C,
                          .R = Ru,
                          .S = Sv,
                          .stride = 1,
                          .H = Hd,
                          .W = Wd,
                          .C = K,
                          .Ho = Hf,
                          .Wo = Wf};
            conv_direct_one(&t, wf, zero, dzp, NULL, full);
            wf += (size_t)Ru * Sv * K * C;
            for (int q = 0; q < Hf; q++) {
                int h = st * q + a - c->pad_top;
                if (h < 0 || h >= c->H)
                    continue;
                for (int p = 0; p < Wf; p++) {
                    int w = st * p + b - c->pad_left;
                    if (w >= 0 && w < c->W) /* C floats: inline, not a call per pixel */
                        copy_floats(dx + ((size_t)h * c->W + w) * C,
                                    full + ((size_t)q * Wf + p) * C, C);
                }
            }
        }
}
#endif
