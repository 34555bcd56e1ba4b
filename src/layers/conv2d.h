/* conv2d.h - what the conv layer (conv2d.c) and its direct AVX-512 kernels (conv2d_direct.c)
 * share: the layer's settings, the short-run float copy, and the direct kernels' entry points.
 * Per example: x (H, W, C) channels-last, W (R*S*C, K) with rows (r, s, c), y and dz (Ho, Wo, K),
 * dx (H, W, C). Internal to src/layers/. */
#ifndef LOOM_CONV2D_H
#define LOOM_CONV2D_H

#include "layer.h"

#ifdef __AVX512F__
#include <immintrin.h>
#endif

typedef struct {
    int K, R, S, stride; /* filters, kernel height and width, stride (both axes) */
    bool is_same;        /* TensorFlow "same" padding, else "valid" */
    act_kind act;
    float alpha; /* leaky-relu slope / elu alpha */
    /* set by init */
    int H, W, C, Ho, Wo;   /* input (H, W, C), output (Ho, Wo, K) */
    int pad_top, pad_left; /* zero rows above / columns left of the input */
    bool is_pointwise;     /* 1x1 stride 1: col is x itself, no im2col */
    bool is_bf16;          /* training in bf16 products where conv2d_bf16.c applies */
} conv_cfg;

/* Maximum number of row chunks (par_n_chunks never returns more). */
#define CONV_MAX_CHUNKS 64
/* The cache path: col floats per example group, and the number of reduction sets. The scratch
 * (conv_init): per example the col area (Ho*Wo, R*S*C); fixed: db partials (CONV_MAX_CHUNKS, K),
 * dW partials (CONV_SETS, RSC, K), db partials (CONV_SETS, K), the flipped kernel (RSC*K). */
#define CONV_GROUP_FLOATS 131072
#define CONV_SETS 8

static inline int imin(int a, int b) { return a < b ? a : b; }
static inline int imax(int a, int b) { return a > b ? a : b; }

/* The runs im2col moves are short (S*C floats: 3 for a 1-channel 3x3 layer, 48 for 16
 * channels), so a library call per run costs more than the copy: with AVX-512, 16 floats per
 * move and one masked move for the tail; n = 0 writes nothing. (GCC turns such loops back
 * into memcpy/memset calls unless the caller is built with no-tree-loop-distribute-patterns:
 * NO_LIBCALLS below.) */
static inline void copy_floats(float *restrict dst, const float *restrict src, int n) {
#ifdef __AVX512F__
    int j = 0;
    for (; j + 16 <= n; j += 16)
        _mm512_storeu_ps(dst + j, _mm512_loadu_ps(src + j));
    if (j < n) {
        __mmask16 m = (__mmask16)((1u << (n - j)) - 1u);
        _mm512_mask_storeu_ps(dst + j, m, _mm512_maskz_loadu_ps(m, src + j));
    }
#else
    if (n >= 64) {
        memcpy(dst, src, sizeof(float) * (size_t)n);
        return;
    }
    for (int j = 0; j < n; j++)
        dst[j] = src[j];
#endif
}

/* (GCC) no-tree-loop-distribute-patterns: keeps copy_floats' loops from becoming library calls */
#if defined(__GNUC__) && !defined(__clang__)
#define NO_LIBCALLS __attribute__((optimize("no-tree-loop-distribute-patterns")))
#else
#define NO_LIBCALLS
#endif

/* ---- bf16 training (conv2d_bf16.c) ---- */
/* Whether c trains in bf16: is_bf16 set, 3x3 stride 1, an even K, the CPU has AVX-512 BF16 and
 * the working space fits the col area. */
bool conv_bf16_applies(const conv_cfg *c);
/* Training forward and backward of conv_bf16_applies's layers, the contract of layer_ops. */
/* dW (nw) += ns sets of dW partials (ns of nw each, set after set), in set order over the
 * threads: the sum of the per-thread weight gradients of a backward pass. */
void conv_dw_sum(float *dW, const float *pw, size_t nw, int ns);
void conv_bf16_forward(layer *l, const float *x, float *y, int B);
void conv_bf16_backward(layer *l, const float *x, const float *y, float *dy, float *dx, int B);

/* ---- the direct kernels (conv2d_direct.c), where AVX-512 is there ---- */
#ifdef __AVX512F__
#define CONV_DIRECT 1

/* Floats of the padded copy of one example the direct kernels read (0 when x is read in place). */
size_t conv_direct_pad_floats(const conv_cfg *c);
/* y (Ho, Wo, K) = bias + conv(x) of one example; pad: scratch of conv_direct_pad_floats(c). */
void conv_direct_one(const conv_cfg *c, const float *Wt, const float *bias, const float *x,
                     float *pad, float *y);
/* The input rows the direct kernels read for one example: x itself, or x copied with its zero
 * border into pad (conv_direct_pad_floats(c)); *ldx: floats between rows. */
const float *conv_direct_input(const conv_cfg *c, const float *x, float *pad, int *ldx);
/* The *ldx conv_direct_input sets. */
int conv_direct_ldx(const conv_cfg *c);
/* Output rows [oh0, oh1) of y (Ho, Wo, K) = bias + conv(x), from conv_direct_input's rows: each
 * output value is summed as conv_direct_one sums it, whatever the rows asked. */
void conv_direct_rows(const conv_cfg *c, const float *Wt, const float *bias, const float *xp,
                      int ldx, float *y, int oh0, int oh1);
/* dw (RSC, K) += the weight gradient of one example: x its input, dz (Ho, Wo, K) its output
 * gradient (after the activation); pad: scratch of conv_direct_pad_floats(c). */
void conv_direct_dw_one(const conv_cfg *c, const float *x, const float *dz, float *pad, float *dw);
/* Floats of one example's working space of conv_direct_dx_one. */
size_t conv_direct_dx_floats(const conv_cfg *c);
/* wf (R*S*C*K floats): the flipped, transposed sub-kernels of the stride's phases, for dx. */
void conv_direct_flip(const conv_cfg *c, const float *w, float *wf);
/* dx (H, W, C) of one example from dz (Ho, Wo, K); tmp holds conv_direct_dx_floats(c). */
void conv_direct_dx_one(const conv_cfg *c, const float *wf, const float *dz, float *tmp, float *dx);
#endif

#endif
