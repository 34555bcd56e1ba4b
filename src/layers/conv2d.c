/* conv2d.c - 2-D convolution (cross-correlation, as Keras computes it) with a fused activation.
 * x (B, H, W, C) channels-last; W (R*S*C, K) row-major, its rows ordered (r, s, c) like the
 * im2col rows; b (K); y (B, H', W', K) = f(col W + b) with col (B*H'*W', R*S*C) the im2col
 * of the whole batch, so the product is already the NHWC output.
 * Backward: dz = dy*f'(y); dW += col^T dz; db += column sums of dz; dx = col2im(dz W^T).
 *
 * Batches of two or more example groups take the cache path: the batch is cut into fixed groups
 * of whole examples (about 128k col floats each, so a group's col stays in L2), and each group
 * is im2col'd and multiplied at once, in forward and again in backward (im2col is recomputed
 * from x, which is R*S times smaller than col, rather than streamed back from memory). The
 * weight gradient of each reduction set of groups is summed in its own buffer, and the sets are
 * added in a fixed order: the grouping depends on the sizes only, never on the thread count. */
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
} conv_cfg;

/* Maximum number of row chunks (par_n_chunks never returns more). */
#define CONV_MAX_CHUNKS 64
/* The cache path: col floats per example group, and the number of reduction sets. */
#define CONV_GROUP_FLOATS 131072
#define CONV_SETS 8

static inline int imin(int a, int b) { return a < b ? a : b; }
static inline int imax(int a, int b) { return a > b ? a : b; }

/* ---- shape ---- */

static loom_status conv_init(layer *l, loom_error *err) {
    conv_cfg *c = l->cfg;
    char s[64];
    shape_format(l->in, s, sizeof s);
    if (l->in.rank != 3)
        return loom_error_set(err, LOOM_ERR_SHAPE,
                              "conv %d %dx%d: input is %s; conv needs images (H, W, C)", c->K, c->R,
                              c->S, s);
    c->H = l->in.d[0];
    c->W = l->in.d[1];
    c->C = l->in.d[2];
    if (c->is_same) {
        /* TensorFlow: out = ceil(in / stride); pad_total = max((out-1)*stride + R - in, 0),
         * pad_top = pad_total / 2 (the extra row, if any, goes to the bottom). */
        c->Ho = (c->H + c->stride - 1) / c->stride;
        c->Wo = (c->W + c->stride - 1) / c->stride;
        c->pad_top = imax((c->Ho - 1) * c->stride + c->R - c->H, 0) / 2;
        c->pad_left = imax((c->Wo - 1) * c->stride + c->S - c->W, 0) / 2;
    } else {
        if (c->H < c->R || c->W < c->S)
            return loom_error_set(err, LOOM_ERR_SHAPE,
                                  "conv %d %dx%d: kernel is larger than the input %s "
                                  "(use 'same' padding or a smaller kernel)",
                                  c->K, c->R, c->S, s);
        c->Ho = (c->H - c->R) / c->stride + 1;
        c->Wo = (c->W - c->S) / c->stride + 1;
        c->pad_top = c->pad_left = 0;
    }
    c->is_pointwise = c->R == 1 && c->S == 1 && c->stride == 1;
    if ((double)c->R * c->S * (c->C > c->K ? c->C : c->K) > 2147483647.0)
        return loom_error_set(err, LOOM_ERR_SHAPE, "conv %d %dx%d on %s: the kernel is too large",
                              c->K, c->R, c->S, s);
    int RSC = c->R * c->S * c->C, K = c->K;
    l->out = shape3(c->Ho, c->Wo, K);
    l->n_params = (size_t)RSC * K + K;
    /* Keras's Glorot fans for a conv kernel: fan_in = R*S*C, fan_out = R*S*K */
    l->groups[0] = (param_group){0, (size_t)RSC * K, GROUP_WEIGHT, RSC, c->R * c->S * K};
    l->groups[1] = (param_group){(size_t)RSC * K, (size_t)K, GROUP_BIAS, RSC, c->R * c->S * K};
    l->n_groups = 2;
    /* per example: col (H'*W', R*S*C), reused by backward for dcol; fixed: db partial sums
     * (CONV_MAX_CHUNKS, K), then the cache path's dW partials (CONV_SETS, RSC, K) and db
     * partials (CONV_SETS, K) */
    l->scratch_per_example = c->is_pointwise ? 0 : (size_t)c->Ho * c->Wo * RSC;
    l->scratch_fixed = (size_t)CONV_MAX_CHUNKS * K;
    if (!c->is_pointwise)
        l->scratch_fixed += (size_t)CONV_SETS * ((size_t)RSC * K + K);
    double HWo = (double)c->Ho * c->Wo;
    l->flops = 2.0 * HWo * K * RSC + HWo * K;
    return LOOM_OK;
}

/* ---- im2col / col2im, one example at a time ---- */

/* A copy of n floats: short ones (a first layer's window rows are S*C = 3 floats) inline. */
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
    memcpy(dst, src, sizeof(float) * (size_t)n);
#endif
}

static inline void zero_floats(float *dst, int n) {
#ifdef __AVX512F__
    int j = 0;
    for (; j + 16 <= n; j += 16)
        _mm512_storeu_ps(dst + j, _mm512_setzero_ps());
    if (j < n)
        _mm512_mask_storeu_ps(dst + j, (__mmask16)((1u << (n - j)) - 1u), _mm512_setzero_ps());
#else
    memset(dst, 0, sizeof(float) * (size_t)n);
#endif
}

/* col (H'*W', R*S*C) of one example x (H, W, C); rows (oh, ow), columns (r, s, c). Zero where
 * the window hangs over the padding. For each (oh, ow, r) the in-range part is S*C contiguous
 * floats of x, so this is a few block copies per output pixel. */
#if defined(__GNUC__) && !defined(__clang__)
#define NO_LIBCALLS __attribute__((optimize("no-tree-loop-distribute-patterns")))
#else
#define NO_LIBCALLS
#endif

NO_LIBCALLS static void im2col_one(const conv_cfg *c, const float *x, float *col) {
    int C = c->C, S = c->S, SC = S * C, RSC = c->R * SC;
    for (int oh = 0; oh < c->Ho; oh++) {
        int ih0 = oh * c->stride - c->pad_top;
        for (int ow = 0; ow < c->Wo; ow++) {
            int iw0 = ow * c->stride - c->pad_left;
            int s_lo = imax(0, -iw0), s_hi = imin(S, c->W - iw0);
            float *dst = col + ((size_t)oh * c->Wo + ow) * RSC;
            for (int r = 0; r < c->R; r++, dst += SC) {
                int ih = ih0 + r;
                if (ih < 0 || ih >= c->H || s_lo >= s_hi) {
                    zero_floats(dst, SC);
                    continue;
                }
                const float *src = x + ((size_t)ih * c->W + iw0 + s_lo) * C;
                if (s_lo > 0)
                    zero_floats(dst, s_lo * C);
                copy_floats(dst + s_lo * C, src, (s_hi - s_lo) * C);
                if (s_hi < S)
                    zero_floats(dst + s_hi * C, (S - s_hi) * C);
            }
        }
    }
}

/* dx (H, W, C) of one example = scatter-add of dcol (H'*W', R*S*C); padding entries dropped.
 * Sequential within the example, so the order of additions is fixed. */
static void col2im_one(const conv_cfg *c, const float *dcol, float *dx) {
    int C = c->C, S = c->S, SC = S * C, RSC = c->R * SC;
    memset(dx, 0, sizeof(float) * (size_t)c->H * c->W * C);
    for (int oh = 0; oh < c->Ho; oh++) {
        int ih0 = oh * c->stride - c->pad_top;
        for (int ow = 0; ow < c->Wo; ow++) {
            int iw0 = ow * c->stride - c->pad_left;
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

/* Example chunks for the per-example loops: about 32k floats of work per chunk. Each example
 * is handled whole by one thread, so the chunking only affects speed, never the numbers. */
static int example_chunks(int B, size_t per_example) {
    long min_b = (long)(32768 / (per_example + 1)) + 1;
    return par_n_chunks(B, min_b);
}

static void im2col_batch(const conv_cfg *c, const float *x, float *col, int B) {
    size_t in_sz = (size_t)c->H * c->W * c->C;
    size_t col_sz = (size_t)c->Ho * c->Wo * c->R * c->S * c->C;
    int nc = example_chunks(B, col_sz);
#pragma omp parallel for schedule(static) if (nc > 1)
    for (int k = 0; k < nc; k++)
        for (long b = par_chunk_lo(B, nc, k); b < par_chunk_lo(B, nc, k + 1); b++)
            im2col_one(c, x + b * in_sz, col + b * col_sz);
}

static void col2im_batch(const conv_cfg *c, const float *dcol, float *dx, int B) {
    size_t in_sz = (size_t)c->H * c->W * c->C;
    size_t col_sz = (size_t)c->Ho * c->Wo * c->R * c->S * c->C;
    int nc = example_chunks(B, col_sz);
#pragma omp parallel for schedule(static) if (nc > 1)
    for (int k = 0; k < nc; k++)
        for (long b = par_chunk_lo(B, nc, k); b < par_chunk_lo(B, nc, k + 1); b++)
            col2im_one(c, dcol + b * col_sz, dx + b * in_sz);
}

/* ---- forward / backward ---- */

/* Row chunks for elementwise passes over y (M, K): at least 8k floats each. */
static int row_chunks(long M, int K) { return par_n_chunks(M, 8192 / K + 1); }

/* The cache path's example groups: *per_group examples each, the count returned (at most
 * CONV_MAX_CHUNKS; 1 means the whole-batch path). Sizes only. */
static int conv_groups(const conv_cfg *c, int B, int *per_group) {
    size_t col_sz = (size_t)c->Ho * c->Wo * c->R * c->S * c->C;
    long g = (long)(CONV_GROUP_FLOATS / (col_sz ? col_sz : 1));
    if (g < 1)
        g = 1;
    if ((B + g - 1) / g > CONV_MAX_CHUNKS)
        g = (B + CONV_MAX_CHUNKS - 1) / CONV_MAX_CHUNKS;
    *per_group = (int)g;
    return c->is_pointwise ? 1 : (int)((B + g - 1) / g);
}

/* y += b, then the activation, on rows [lo, hi) of y (M, K). */
static void bias_act(const conv_cfg *c, const float *b, float *y, long lo, long hi) {
    int K = c->K;
    for (long i = lo; i < hi; i++) {
        float *yi = y + i * K;
#pragma omp simd
        for (int j = 0; j < K; j++)
            yi[j] += b[j];
    }
    act_forward(c->act, c->alpha, y + lo * K, (size_t)(hi - lo) * K);
}

static void conv_forward_groups(layer *l, const float *x, float *y, int B, int ng, int per) {
    conv_cfg *c = l->cfg;
    int RSC = c->R * c->S * c->C, K = c->K, HWo = c->Ho * c->Wo;
    size_t in_sz = (size_t)c->H * c->W * c->C, col_sz = (size_t)HWo * RSC;
    const float *Wt = l->w, *b = l->w + (size_t)RSC * K;
#pragma omp parallel for schedule(static) if (loom_get_threads() > 1)
    for (int g = 0; g < ng; g++) {
        int b0 = g * per, b1 = imin(B, b0 + per);
        float *col = l->scratch + (size_t)b0 * col_sz;
        for (int e = b0; e < b1; e++)
            im2col_one(c, x + e * in_sz, col + (size_t)(e - b0) * col_sz);
        long M = (long)(b1 - b0) * HWo;
        float *yg = y + (size_t)b0 * HWo * K;
        for (long i = 0; i < M; i++) /* y = b, then y += col W: no separate bias pass */
            memcpy(yg + i * K, b, sizeof(float) * K);
        gemm(false, false, (int)M, K, RSC, 1.0f, col, RSC, Wt, K, 1.0f, yg, K);
        act_forward(c->act, c->alpha, yg, (size_t)M * K);
    }
}

/* Backward of the cache path. The groups are split into min(ng, CONV_SETS) runs of consecutive
 * groups, the reduction sets; each set runs its groups in order (dz, db and dW partials, dcol,
 * col2im), then the sets' partials are added to db and dW in set order. */
static void conv_backward_groups(layer *l, const float *x, const float *y, float *dy, float *dx,
                                 int B, int ng, int per) {
    conv_cfg *c = l->cfg;
    int RSC = c->R * c->S * c->C, K = c->K, HWo = c->Ho * c->Wo;
    size_t in_sz = (size_t)c->H * c->W * c->C, col_sz = (size_t)HWo * RSC;
    float *dW = l->dw, *db = l->dw + (size_t)RSC * K;
    float *pw = l->scratch + l->scratch_per_example * (size_t)l->max_batch +
                (size_t)CONV_MAX_CHUNKS * K;      /* (CONV_SETS, RSC, K) */
    float *pb = pw + (size_t)CONV_SETS * RSC * K; /* (CONV_SETS, K) */
    int ns = ng < CONV_SETS ? ng : CONV_SETS;
#pragma omp parallel for schedule(static) if (loom_get_threads() > 1)
    for (int st = 0; st < ns; st++) {
        int g0 = (int)par_chunk_lo(ng, ns, st), g1 = (int)par_chunk_lo(ng, ns, st + 1);
        float *pws = pw + (size_t)st * RSC * K, *pbs = pb + (size_t)st * K;
        memset(pbs, 0, sizeof(float) * K);
        for (int g = g0; g < g1; g++) {
            int b0 = g * per, b1 = imin(B, b0 + per);
            long M = (long)(b1 - b0) * HWo;
            float *col = l->scratch + (size_t)b0 * col_sz;
            float *dz = dy + (size_t)b0 * HWo * K;
            const float *yg = y + (size_t)b0 * HWo * K;
            for (long i = 0; i < M; i++) { /* dz = dy f'(y) and its column sums, row by row */
                float *d = dz + i * K;
                act_backward(c->act, c->alpha, yg + i * K, d, (size_t)K);
#pragma omp simd
                for (int j = 0; j < K; j++)
                    pbs[j] += d[j];
            }
            for (int e = b0; e < b1; e++)
                im2col_one(c, x + e * in_sz, col + (size_t)(e - b0) * col_sz);
            gemm(true, false, RSC, K, (int)M, 1.0f, col, RSC, dz, K, g == g0 ? 0.0f : 1.0f, pws, K);
            if (dx) {
                gemm(false, true, (int)M, RSC, K, 1.0f, dz, K, l->w, K, 0.0f, col, RSC);
                for (int e = b0; e < b1; e++)
                    col2im_one(c, col + (size_t)(e - b0) * col_sz, dx + e * in_sz);
            }
        }
    }
    size_t nw = (size_t)RSC * K;
    long nwc = par_n_chunks((long)nw, 16384);
#pragma omp parallel for schedule(static) if (nwc > 1 && loom_get_threads() > 1)
    for (long k = 0; k < nwc; k++) {
        size_t lo = (size_t)par_chunk_lo((long)nw, (int)nwc, (int)k);
        size_t hi = (size_t)par_chunk_lo((long)nw, (int)nwc, (int)k + 1);
        for (int st = 0; st < ns; st++) {
            const float *p = pw + (size_t)st * nw;
#pragma omp simd
            for (size_t i = lo; i < hi; i++)
                dW[i] += p[i];
        }
    }
    for (int st = 0; st < ns; st++)
#pragma omp simd
        for (int j = 0; j < K; j++)
            db[j] += pb[(size_t)st * K + j];
}

static void conv_forward(layer *l, const fwd_ctx *ctx, const float *x, float *y, int B) {
    (void)ctx;
    conv_cfg *c = l->cfg;
    int per, ng = conv_groups(c, B, &per);
    if (ng > 1) {
        conv_forward_groups(l, x, y, B, ng, per);
        return;
    }
    int RSC = c->R * c->S * c->C, K = c->K;
    long M = (long)B * c->Ho * c->Wo;
    const float *Wt = l->w, *b = l->w + (size_t)RSC * K; /* (RSC, K), (K) */
    const float *col = x;                                /* (M, RSC) */
    if (!c->is_pointwise) {
        im2col_batch(c, x, l->scratch, B);
        col = l->scratch;
    }
    gemm_par(false, false, (int)M, K, RSC, 1.0f, col, RSC, Wt, K, 0.0f, y, K);
    /* y += b, then the activation, over fixed row chunks */
    int nc = row_chunks(M, K);
#pragma omp parallel for schedule(static) if (nc > 1)
    for (int k = 0; k < nc; k++)
        bias_act(c, b, y, par_chunk_lo(M, nc, k), par_chunk_lo(M, nc, k + 1));
}

/* dW (RSC, K) += col^T (RSC, M) dz (M, K). The product is tiled over the rows and columns
 * of dW (never over M), so the sum over the batch stays inside one BLAS call per tile and the
 * tiling depends only on the sizes: bitwise identical for any thread count. Column tiles help
 * when RSC is small (a first layer has R*S*C = 9 rows). */
static void dw_accumulate(int RSC, int K, long M, const float *col, const float *dz, float *dW) {
    int nr = par_n_chunks(RSC, 32);
    while (nr & (nr - 1)) /* a power of two: even shares on 2, 4, 8 threads */
        nr &= nr - 1;
    int nk = nr >= 4 ? 1 : imin(imax(K / 16, 1), 4);
    if (2.0 * RSC * K * M < 4e6) /* too small to share */
        nr = nk = 1;
#pragma omp parallel for schedule(static) if (nr * nk > 1)
    for (int t = 0; t < nr * nk; t++) {
        int r0 = (int)par_chunk_lo(RSC, nr, t / nk), r1 = (int)par_chunk_lo(RSC, nr, t / nk + 1);
        int k0 = (int)par_chunk_lo(K, nk, t % nk), k1 = (int)par_chunk_lo(K, nk, t % nk + 1);
        gemm(true, false, r1 - r0, k1 - k0, (int)M, 1.0f, col + r0, RSC, dz + k0, K, 1.0f,
             dW + (size_t)r0 * K + k0, K);
    }
}

/* Overwrites the im2col buffer with dcol: backward is the last use of col from the forward. */
static void conv_backward(layer *l, const float *x, const float *y, float *dy, float *dx, int B) {
    conv_cfg *c = l->cfg;
    int per, ng = conv_groups(c, B, &per);
    if (ng > 1) {
        conv_backward_groups(l, x, y, dy, dx, B, ng, per);
        return;
    }
    int RSC = c->R * c->S * c->C, K = c->K;
    long M = (long)B * c->Ho * c->Wo;
    float *dW = l->dw, *db = l->dw + (size_t)RSC * K;                         /* (RSC, K), (K) */
    float *part = l->scratch + l->scratch_per_example * (size_t)l->max_batch; /* (nc, K) */
    float *col = c->is_pointwise ? NULL : l->scratch;                         /* (M, RSC) */

    /* dz = dy * f'(y) in place, and per-chunk column sums of dz, added in chunk order */
    int nc = row_chunks(M, K);
#pragma omp parallel for schedule(static) if (nc > 1)
    for (int k = 0; k < nc; k++) {
        long lo = par_chunk_lo(M, nc, k), hi = par_chunk_lo(M, nc, k + 1);
        act_backward(c->act, c->alpha, y + lo * K, dy + lo * K, (size_t)(hi - lo) * K);
        float *p = part + (size_t)k * K;
        memset(p, 0, sizeof(float) * K);
        for (long i = lo; i < hi; i++) {
            const float *d = dy + i * K;
#pragma omp simd
            for (int j = 0; j < K; j++)
                p[j] += d[j];
        }
    }
    for (int k = 0; k < nc; k++)
#pragma omp simd
        for (int j = 0; j < K; j++)
            db[j] += part[(size_t)k * K + j];

    dw_accumulate(RSC, K, M, c->is_pointwise ? x : col, dy, dW);
    if (!dx)
        return;
    if (c->is_pointwise) {
        gemm_par(false, true, (int)M, RSC, K, 1.0f, dy, K, l->w, K, 0.0f, dx, RSC);
        return;
    }
    /* dcol (M, RSC) = dz (M, K) W^T (K, RSC), into the col buffer; then scatter into dx */
    gemm_par(false, true, (int)M, RSC, K, 1.0f, dy, K, l->w, K, 0.0f, col, RSC);
    col2im_batch(c, col, dx, B);
}

/* ---- model language ---- */

static void conv_describe(const layer *l, char *buf, size_t n) {
    const conv_cfg *c = l->cfg;
    int len = snprintf(buf, n, "conv %d %dx%d", c->K, c->R, c->S);
    if (c->stride != 1 && len >= 0 && (size_t)len < n)
        len += snprintf(buf + len, n - (size_t)len, " s%d", c->stride);
    if (c->is_same && len >= 0 && (size_t)len < n)
        len += snprintf(buf + len, n - (size_t)len, " same");
    if (c->act != ACT_NONE && len >= 0 && (size_t)len < n) {
        if (c->act == ACT_LEAKY_RELU || c->act == ACT_ELU)
            snprintf(buf + len, n - (size_t)len, " %s %g", act_name(c->act), c->alpha);
        else
            snprintf(buf + len, n - (size_t)len, " %s", act_name(c->act));
    }
}

static const layer_ops conv_ops = {
    .kind = "conv",
    .init = conv_init,
    .forward = conv_forward,
    .backward = conv_backward,
    .describe = conv_describe,
};

loom_status parse_activation(int argc, char **argv, int *i, act_kind *act, float *alpha,
                             bool *is_softmax, loom_error *err);

/* conv K RxS [stride N | sN] [same | valid] [activation [alpha]], options in any order. */
loom_status conv_parse(layer *l, int argc, char **argv, loom_error *err);
loom_status conv_parse(layer *l, int argc, char **argv, loom_error *err) {
    conv_cfg c = {.stride = 1};
    if (argc < 2 || !parse_int(argv[1], &c.K) || c.K < 1 || c.K > 65536)
        return loom_error_set(err, LOOM_ERR_FORMAT,
                              "conv: expected a number of filters from 1 to 65536, found '%s'",
                              argc < 2 ? "" : argv[1]);
    if (argc < 3 || !parse_kernel(argv[2], &c.R, &c.S) || c.R > 255 || c.S > 255)
        return loom_error_set(err, LOOM_ERR_FORMAT,
                              "conv: expected a kernel size like 3x3 or 3, found '%s'",
                              argc < 3 ? "" : argv[2]);
    bool has_stride = false, has_padding = false, has_act = false;
    for (int i = 3; i < argc;) {
        const char *w = argv[i];
        if (strcmp(w, "same") == 0 || strcmp(w, "valid") == 0) {
            if (has_padding)
                return loom_error_set(err, LOOM_ERR_FORMAT, "conv: padding given twice ('%s')", w);
            has_padding = true;
            c.is_same = w[0] == 's';
            i++;
            continue;
        }
        bool is_short = w[0] == 's' && w[1] >= '0' && w[1] <= '9'; /* "s2" */
        if (is_short || strcmp(w, "stride") == 0) {
            const char *num = is_short ? w + 1 : i + 1 < argc ? argv[i + 1] : "";
            if (has_stride)
                return loom_error_set(err, LOOM_ERR_FORMAT, "conv: stride given twice ('%s')", w);
            if (!parse_int(num, &c.stride) || c.stride < 1)
                return loom_error_set(err, LOOM_ERR_FORMAT,
                                      "conv: expected a positive stride, found '%s'",
                                      is_short ? w : num);
            has_stride = true;
            i += is_short ? 1 : 2;
            continue;
        }
        int i0 = i;
        act_kind act;
        float alpha;
        loom_status s = parse_activation(argc, argv, &i, &act, &alpha, NULL, err);
        if (s)
            return s;
        if (i == i0)
            return loom_error_set(err, LOOM_ERR_FORMAT, "conv: unexpected word '%s'", w);
        if (has_act)
            return loom_error_set(err, LOOM_ERR_FORMAT, "conv: a second activation '%s'", w);
        has_act = true;
        c.act = act;
        c.alpha = alpha;
    }
    conv_cfg *p = malloc(sizeof *p);
    if (!p)
        return loom_error_set(err, LOOM_ERR_NOMEM, "conv: out of memory");
    *p = c;
    l->ops = &conv_ops;
    l->cfg = p;
    return LOOM_OK;
}
