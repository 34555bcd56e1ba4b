/* conv2d.c - the conv layer: 2-D convolution (cross-correlation, as Keras computes it) with a
 * fused activation; shape, the im2col/GEMM path, forward/backward orchestration, the model
 * language. x (B, H, W, C) channels-last; W (R*S*C, K), rows (r, s, c) like im2col's; b (K);
 * y (B, H', W', K) = f(col W + b), col (B*H'*W', R*S*C). Backward: dz = dy*f'(y); dW += col^T dz;
 * db += column sums of dz; dx = col2im(dz W^T). The direct AVX-512 kernels: conv2d_direct.c. */
#include "conv2d.h"

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
    /* per example: col (H'*W', R*S*C): im2col and dcol on the GEMM path, the padded input and
     * dx's working space on the direct path; fixed: db partial sums (CONV_MAX_CHUNKS, K), then
     * the cache path's dW partials (CONV_SETS, RSC, K) and db partials (CONV_SETS, K), then the
     * flipped kernel of the direct dx (R, S, K, C) */
    l->scratch_per_example = c->is_pointwise ? 0 : (size_t)c->Ho * c->Wo * RSC;
    l->scratch_fixed = (size_t)CONV_MAX_CHUNKS * K;
    if (!c->is_pointwise)
        l->scratch_fixed += (size_t)CONV_SETS * ((size_t)RSC * K + K) + (size_t)RSC * K;
    double HWo = (double)c->Ho * c->Wo;
    l->flops = 2.0 * HWo * K * RSC + HWo * K;
    return LOOM_OK;
}

/* ---- im2col / col2im, one example at a time ---- */

/* n zeros at dst, by vector moves like copy_floats (conv2d.h): no library call per short run. */
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

/* Example chunks for the per-example loops: about 32k floats of work per chunk, an even count
 * (21 chunks on 2 threads is 11 against 10). Each example is handled whole by one thread, so
 * the chunking only affects speed, never the numbers. */
static int example_chunks(int B, size_t per_example) {
    long min_b = (long)(32768 / (per_example + 1)) + 1;
    int nc = par_n_chunks(B, min_b);
    return nc > 1 && nc % 2 && nc < B && nc < 64 ? nc + 1 : nc;
}

/* A copy between the input (B, H, W, C) and the col matrix (B, Ho Wo, R S C). */
typedef struct {
    const conv_cfg *c;
    const float *src;
    float *dst;
    size_t in_sz, col_sz;
} col_copy;

static void im2col_examples(void *ctx, long lo, long hi, int k) {
    (void)k;
    const col_copy *p = ctx;
    for (long b = lo; b < hi; b++)
        im2col_one(p->c, p->src + b * p->in_sz, p->dst + b * p->col_sz);
}

static void col2im_examples(void *ctx, long lo, long hi, int k) {
    (void)k;
    const col_copy *p = ctx;
    for (long b = lo; b < hi; b++)
        col2im_one(p->c, p->src + b * p->col_sz, p->dst + b * p->in_sz);
}

/* B examples from src to dst by im2col_examples or col2im_examples, in example chunks. */
static void col_copy_batch(const conv_cfg *c, const float *src, float *dst, int B, par_body fn) {
    col_copy p = {.c = c,
                  .src = src,
                  .dst = dst,
                  .in_sz = (size_t)c->H * c->W * c->C,
                  .col_sz = (size_t)c->Ho * c->Wo * c->R * c->S * c->C};
    par_for(B, example_chunks(B, p.col_sz), fn, &p);
}

/* Whether conv layers use the direct kernels (forward, dW, dx) where they apply: a test hook,
 * process-wide, so tests can compare them with the GEMM path; always on otherwise. */
static bool conv_direct_on = true;
void conv_set_direct(bool on) { conv_direct_on = on; }

static bool conv_use_direct(const conv_cfg *c) {
#ifdef CONV_DIRECT
    return conv_direct_on && !c->is_pointwise &&
           conv_direct_pad_floats(c) <= (size_t)c->Ho * c->Wo * c->R * c->S * c->C;
#else
    (void)c;
    return false;
#endif
}

/* ... and dx too (the padded dz and full output of a phase fit an example's col area). */
static bool conv_use_direct_dx(const conv_cfg *c) {
#ifdef CONV_DIRECT
    return conv_use_direct(c) &&
           conv_direct_dx_floats(c) <= (size_t)c->Ho * c->Wo * c->R * c->S * c->C;
#else
    (void)c;
    return false;
#endif
}

/* ---- forward / backward ---- */

/* Batches of two or more example groups take the cache path: the batch is cut into fixed groups
 * of whole examples (about 128k col floats each, so a group's col stays in L2), and each group
 * is im2col'd and multiplied at once, in forward and again in backward (im2col is recomputed
 * from x, which is R*S times smaller than col, rather than streamed back from memory). The
 * weight gradient of each reduction set of groups is summed in its own buffer, and the sets are
 * added in a fixed order: the grouping depends on the sizes only, never on the thread count. */

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

/* What a pass's chunks share (par_for): the cache path's groups and reduction sets, the direct
 * forward's examples, the whole-batch path's row chunks (bias and activation; dz). */
typedef struct {
    layer *l;
    const float *x, *y;
    float *out;      /* forward: y */
    float *dy, *dx;  /* backward */
    int B, per;      /* batch, examples per group */
    float *pw;       /* backward, sets: (sets, RSC, K) dW partials */
    float *pb;       /* backward: db partials, (sets, K) or, whole batch, (row chunks, K) */
    const float *wf; /* backward, direct dx: the flipped kernel */
    bool is_direct, is_direct_dx;
} conv_job;

/* Groups [lo, hi): im2col, y = b + col W, the activation; each group on its own col area. */
static void conv_forward_group(void *ctx, long lo, long hi, int k) {
    (void)k;
    const conv_job *j = ctx;
    layer *l = j->l;
    conv_cfg *c = l->cfg;
    int RSC = c->R * c->S * c->C, K = c->K, HWo = c->Ho * c->Wo, B = j->B, per = j->per;
    size_t in_sz = (size_t)c->H * c->W * c->C, col_sz = (size_t)HWo * RSC;
    const float *Wt = l->w, *b = l->w + (size_t)RSC * K, *x = j->x;
    float *y = j->out;
    for (int g = (int)lo; g < (int)hi; g++) {
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

static void conv_forward_groups(layer *l, const float *x, float *y, int B, int ng, int per) {
    conv_job j = {.l = l, .x = x, .out = y, .B = B, .per = per};
    par_for(ng, ng, conv_forward_group, &j);
}

/* Reduction set st: groups [g0, g1) in order (dz, db and dW partials into set st's own, dcol,
 * col2im). */
static void conv_backward_set(void *ctx, long g0, long g1, int st) {
    const conv_job *j = ctx;
    layer *l = j->l;
    conv_cfg *c = l->cfg;
    int RSC = c->R * c->S * c->C, K = c->K, HWo = c->Ho * c->Wo, B = j->B, per = j->per;
    size_t in_sz = (size_t)c->H * c->W * c->C, col_sz = (size_t)HWo * RSC;
    const float *x = j->x, *y = j->y;
    float *dy = j->dy, *dx = j->dx;
    float *pws = j->pw + (size_t)st * RSC * K, *pbs = j->pb + (size_t)st * K;
    memset(pbs, 0, sizeof(float) * K);
    for (int g = (int)g0; g < (int)g1; g++) {
        int b0 = g * per, b1 = imin(B, b0 + per);
        long M = (long)(b1 - b0) * HWo;
        float *col = l->scratch + (size_t)b0 * col_sz;
        float *dz = dy + (size_t)b0 * HWo * K;
        const float *yg = y + (size_t)b0 * HWo * K;
        for (long i = 0; i < M; i++) { /* dz = dy f'(y) and its column sums, row by row */
            float *d = dz + i * K;
            act_backward(c->act, c->alpha, yg + i * K, d, (size_t)K);
#pragma omp simd
            for (int jj = 0; jj < K; jj++)
                pbs[jj] += d[jj];
        }
#ifdef CONV_DIRECT
        if (j->is_direct) { /* dW partial straight from x, example by example, in order */
            if (g == g0)
                memset(pws, 0, sizeof(float) * RSC * K);
            for (int e = b0; e < b1; e++)
                conv_direct_dw_one(c, x + e * in_sz, dy + (size_t)e * HWo * K, col, pws);
        } else
#endif
        {
            for (int e = b0; e < b1; e++)
                im2col_one(c, x + e * in_sz, col + (size_t)(e - b0) * col_sz);
            gemm(true, false, RSC, K, (int)M, 1.0f, col, RSC, dz, K, g == g0 ? 0.0f : 1.0f, pws, K);
        }
#ifdef CONV_DIRECT
        if (j->is_direct_dx) {
            for (int e = b0; e < b1; e++)
                conv_direct_dx_one(c, j->wf, dy + (size_t)e * HWo * K, col, dx + e * in_sz);
            continue;
        }
#endif
        if (dx) {
            gemm(false, true, (int)M, RSC, K, 1.0f, dz, K, l->w, K, 0.0f, col, RSC);
            for (int e = b0; e < b1; e++)
                col2im_one(c, col + (size_t)(e - b0) * col_sz, dx + e * in_sz);
        }
    }
}

/* The sets' dW partials (ns of nw each) to add into dW. */
typedef struct {
    float *dW;
    const float *pw;
    size_t nw;
    int ns;
} dw_sum;

/* dW[lo, hi) += the ns sets' partials, in set order. */
static void dw_sum_range(void *ctx, long lo, long hi, int k) {
    (void)k;
    const dw_sum *p = ctx;
    for (int st = 0; st < p->ns; st++) {
        const float *q = p->pw + (size_t)st * p->nw;
        float *dW = p->dW;
#pragma omp simd
        for (long i = lo; i < hi; i++)
            dW[i] += q[i];
    }
}

void conv_dw_sum(float *dW, const float *pw, size_t nw, int ns) {
    dw_sum p = {.dW = dW, .pw = pw, .nw = nw, .ns = ns};
    par_for((long)nw, par_n_chunks((long)nw, 16384), dw_sum_range, &p);
}

/* Backward of the cache path. The groups are split into min(ng, CONV_SETS) runs of consecutive
 * groups, the reduction sets; each set runs its groups in order (dz, db and dW partials, dcol,
 * col2im), then the sets' partials are added to db and dW in set order. */
static void conv_backward_groups(layer *l, const float *x, const float *y, float *dy, float *dx,
                                 int B, int ng, int per) {
    conv_cfg *c = l->cfg;
    int RSC = c->R * c->S * c->C, K = c->K;
    float *dW = l->dw, *db = l->dw + (size_t)RSC * K;
    float *pw = l->scratch + l->scratch_per_example * (size_t)l->max_batch +
                (size_t)CONV_MAX_CHUNKS * K;      /* (CONV_SETS, RSC, K) */
    float *pb = pw + (size_t)CONV_SETS * RSC * K; /* (CONV_SETS, K) */
    int ns = ng < CONV_SETS ? ng : CONV_SETS;
    float *wf = pb + (size_t)CONV_SETS * K; /* (R, S, K, C) the flipped kernel */
    conv_job j = {.l = l,
                  .x = x,
                  .y = y,
                  .dy = dy,
                  .dx = dx,
                  .B = B,
                  .per = per,
                  .pw = pw,
                  .pb = pb,
                  .wf = wf,
                  .is_direct = conv_use_direct(c),
                  .is_direct_dx = dx && conv_use_direct_dx(c)};
#ifdef CONV_DIRECT
    if (j.is_direct_dx)
        conv_direct_flip(c, l->w, wf);
#endif
    par_for(ng, ns, conv_backward_set, &j);
    conv_dw_sum(dW, pw, (size_t)RSC * K, ns);
    for (int st = 0; st < ns; st++)
#pragma omp simd
        for (int k = 0; k < K; k++)
            db[k] += pb[(size_t)st * K + k];
}

#ifdef CONV_DIRECT
/* Examples [lo, hi) by the direct kernel, each padding into its own col area. */
static void conv_direct_examples(void *ctx, long lo, long hi, int k) {
    (void)k;
    const conv_job *j = ctx;
    layer *l = j->l;
    const conv_cfg *c = l->cfg;
    int RSC = c->R * c->S * c->C, K = c->K;
    size_t in_sz = (size_t)c->H * c->W * c->C, out_sz = (size_t)c->Ho * c->Wo * K;
    size_t col_sz = out_sz / K * RSC;
    const float *Wt = l->w, *b = l->w + (size_t)RSC * K;
    for (long e = lo; e < hi; e++) {
        conv_direct_one(c, Wt, b, j->x + e * in_sz, l->scratch + e * col_sz, j->out + e * out_sz);
        act_forward(c->act, c->alpha, j->out + e * out_sz, out_sz);
    }
}

/* Output rows [lo, hi) of the batch (B * Ho rows, example-major) by the direct kernel, after
 * conv_direct_rows_batch padded each example into its col area; then the activation. */
static void conv_direct_row_range(void *ctx, long lo, long hi, int k) {
    (void)k;
    const conv_job *j = ctx;
    const layer *l = j->l;
    const conv_cfg *c = l->cfg;
    int RSC = c->R * c->S * c->C, K = c->K, Ho = c->Ho, ldx = conv_direct_ldx(c);
    size_t in_sz = (size_t)c->H * c->W * c->C, out_sz = (size_t)Ho * c->Wo * K;
    size_t col_sz = out_sz / K * RSC;
    bool is_padded = conv_direct_pad_floats(c) > 0;
    for (long u = lo; u < hi;) {
        long e = u / Ho;
        int oh0 = (int)(u - e * Ho), oh1 = (int)imin(Ho, oh0 + (int)(hi - u));
        const float *xe = j->x + e * in_sz;
        const float *xp = is_padded ? l->scratch + e * col_sz : xe; /* padded already */
        float *ye = j->out + e * out_sz;
        conv_direct_rows(c, l->w, l->w + (size_t)RSC * K, xp, ldx, ye, oh0, oh1);
        act_forward(c->act, c->alpha, ye + (size_t)oh0 * c->Wo * K,
                    (size_t)(oh1 - oh0) * c->Wo * K);
        u += oh1 - oh0;
    }
}

/* A few examples (fewer than CONV_ROWS_BELOW, one image above all): each example's output rows
 * are split over the threads, so that one image uses both cores; every value is summed as the
 * per-example path sums it. */
enum { CONV_ROWS_BELOW = 4 };

/* Row chunks for B examples: about 1 MFLOP each (as gemm_fixed's), so that a small layer, whose
 * work is a few microseconds, does not wake a sleeping thread for it; 1 means no split. */
static int conv_row_chunks(const conv_cfg *c, int B) {
    double flops = 2.0 * B * c->Ho * c->Wo * c->K * c->R * c->S * c->C;
    long rows = (long)B * c->Ho, nc = (long)(flops / 1e6);
    return (int)(nc < 1 ? 1 : nc > rows ? rows : nc > 64 ? 64 : nc);
}
static void conv_direct_rows_batch(layer *l, const float *x, float *y, int B) {
    const conv_cfg *c = l->cfg;
    size_t RSC = (size_t)c->R * c->S * c->C, in_sz = (size_t)c->H * c->W * c->C;
    size_t col_sz = (size_t)c->Ho * c->Wo * RSC;
    int ldx;
    if (conv_direct_pad_floats(c) > 0)
        for (int e = 0; e < B; e++)
            conv_direct_input(c, x + e * in_sz, l->scratch + e * col_sz, &ldx);
    conv_job j = {.l = l, .x = x, .out = y, .B = B};
    long rows = (long)B * c->Ho;
    par_for(rows, conv_row_chunks(c, B), conv_direct_row_range, &j);
}
#endif

/* Rows [lo, hi) of y (M, K): y += b, then the activation. */
static void bias_act_rows(void *ctx, long lo, long hi, int k) {
    (void)k;
    const conv_job *j = ctx;
    const conv_cfg *c = j->l->cfg;
    bias_act(c, j->l->w + (size_t)c->R * c->S * c->C * c->K, j->out, lo, hi);
}

static void conv_forward(layer *l, const fwd_ctx *ctx, const float *x, float *y, int B) {
    conv_cfg *c = l->cfg;
    if (ctx && ctx->is_training && conv_bf16_applies(c)) { /* conv2d_bf16.c */
        conv_bf16_forward(l, x, y, B);
        return;
    }
#ifdef CONV_DIRECT
    if (conv_use_direct(c) && B < CONV_ROWS_BELOW && !par_is_serial() &&
        conv_row_chunks(c, B) > 1) {
        conv_direct_rows_batch(l, x, y, B);
        return;
    }
    if (conv_use_direct(c)) { /* examples in fixed chunks; each pads into its own col area */
        size_t RSC = (size_t)c->R * c->S * c->C, out_sz = (size_t)c->Ho * c->Wo * c->K;
        conv_job j = {.l = l, .x = x, .out = y};
        par_for(B, example_chunks(B, out_sz * RSC / 16), conv_direct_examples, &j);
        return;
    }
#endif
    int per, ng = conv_groups(c, B, &per);
    if (ng > 1) {
        conv_forward_groups(l, x, y, B, ng, per);
        return;
    }
    int RSC = c->R * c->S * c->C, K = c->K;
    long M = (long)B * c->Ho * c->Wo;
    const float *Wt = l->w; /* (RSC, K), then the bias (K) */
    const float *col = x;   /* (M, RSC) */
    if (!c->is_pointwise) {
        col_copy_batch(c, x, l->scratch, B, im2col_examples);
        col = l->scratch;
    }
    gemm_par(false, false, (int)M, K, RSC, 1.0f, col, RSC, Wt, K, 0.0f, y, K);
    /* y += b, then the activation, over fixed row chunks */
    conv_job j = {.l = l, .out = y};
    par_for(M, row_chunks(M, K), bias_act_rows, &j);
}

/* One product of dw_accumulate per tile t of nr x nk. */
typedef struct {
    int RSC, K, nr, nk;
    long M;
    const float *col, *dz;
    float *dW;
} dw_tiles;

static void dw_tile(void *ctx, long lo, long hi, int t) {
    (void)lo, (void)hi;
    const dw_tiles *p = ctx;
    int RSC = p->RSC, K = p->K, nr = p->nr, nk = p->nk;
    int r0 = (int)par_chunk_lo(RSC, nr, t / nk), r1 = (int)par_chunk_lo(RSC, nr, t / nk + 1);
    int k0 = (int)par_chunk_lo(K, nk, t % nk), k1 = (int)par_chunk_lo(K, nk, t % nk + 1);
    gemm(true, false, r1 - r0, k1 - k0, (int)p->M, 1.0f, p->col + r0, RSC, p->dz + k0, K, 1.0f,
         p->dW + (size_t)r0 * K + k0, K);
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
    dw_tiles p = {.RSC = RSC, .K = K, .nr = nr, .nk = nk, .M = M, .col = col, .dz = dz, .dW = dW};
    par_for(nr * nk, nr * nk, dw_tile, &p);
}

/* Rows [lo, hi) of chunk k: dz = dy f'(y) in place, and the chunk's column sums of dz into
 * pb (k, K). */
static void dz_rows(void *ctx, long lo, long hi, int k) {
    const conv_job *j = ctx;
    const conv_cfg *c = j->l->cfg;
    int K = c->K;
    act_backward(c->act, c->alpha, j->y + lo * K, j->dy + lo * K, (size_t)(hi - lo) * K);
    float *p = j->pb + (size_t)k * K;
    memset(p, 0, sizeof(float) * K);
    for (long i = lo; i < hi; i++) {
        const float *d = j->dy + i * K;
#pragma omp simd
        for (int jj = 0; jj < K; jj++)
            p[jj] += d[jj];
    }
}

/* Overwrites the im2col buffer with dcol: backward is the last use of col from the forward. */
static void conv_backward(layer *l, const float *x, const float *y, float *dy, float *dx, int B) {
    conv_cfg *c = l->cfg;
    if (conv_bf16_applies(c)) { /* conv2d_bf16.c: after its training forward */
        conv_bf16_backward(l, x, y, dy, dx, B);
        return;
    }
    int per, ng = conv_groups(c, B, &per);
    if (ng > 1 || conv_use_direct(c)) { /* the direct kernels run in the groups' structure */
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
    conv_job job = {.l = l, .y = y, .dy = dy, .pb = part};
    par_for(M, nc, dz_rows, &job);
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
    col_copy_batch(c, col, dx, B, col2im_examples);
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

static void conv_lower(const layer *l, layer_lowering *out) {
    const conv_cfg *c = l->cfg;
    /* the padding below and right: whatever the output's last window reaches past the input */
    int pad_bottom = imax((c->Ho - 1) * c->stride + c->R - c->H - c->pad_top, 0);
    int pad_right = imax((c->Wo - 1) * c->stride + c->S - c->W - c->pad_left, 0);
    *out = (layer_lowering){.kind = LOWER_CONV,
                            .act = c->act,
                            .alpha = c->alpha,
                            .units = c->K,
                            .kh = c->R,
                            .kw = c->S,
                            .sh = c->stride,
                            .sw = c->stride,
                            .pad = {c->pad_top, c->pad_left, pad_bottom, pad_right}};
}

static const layer_ops conv_ops = {
    .kind = "conv",
    .init = conv_init,
    .forward = conv_forward,
    .backward = conv_backward,
    .describe = conv_describe,
    .lower = conv_lower,
};

loom_status parse_activation(int argc, char **argv, int *i, act_kind *act, float *alpha,
                             bool *is_softmax, loom_error *err);

/* conv K RxS [stride N | sN] [same | valid] [activation [alpha]], options in any order. */
const char *conv_kernels_describe(void) {
#ifdef CONV_DIRECT
#ifdef __AVX512VL__
    return "direct AVX-512 kernels (256-bit last filter vector), else im2col + GEMM";
#else
    return "direct AVX-512 kernels, else im2col + GEMM";
#endif
#else
    return "im2col + GEMM (no AVX-512 in this build)";
#endif
}

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
