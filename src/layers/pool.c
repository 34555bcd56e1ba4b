/* pool.c - pooling over image windows: maxpool and avgpool (PxQ windows, valid padding,
 * floor), and globalavgpool. x (B, H, W, C) channels-last; y (B, H', W', C) for the windowed
 * kinds, (B, C) for globalavgpool. Every inner loop runs over C, the contiguous axis.
 * Maxpool keeps the argmax of each output (an offset into the example, ties -> first). */
#include "layer.h"

typedef enum { POOL_MAX = 0, POOL_AVG, POOL_GLOBAL_AVG } pool_kind;

typedef struct {
    pool_kind kind;
    int P, Q;   /* window height, width */
    int sh, sw; /* strides; default to the window size, as in Keras */
    /* set by init */
    int H, W, C, Ho, Wo;
} pool_cfg;

static const char *const pool_words[] = {"maxpool", "avgpool", "globalavgpool"};

static loom_status pool_init(layer *l, loom_error *err) {
    pool_cfg *c = l->cfg;
    char s[64];
    shape_format(l->in, s, sizeof s);
    if (l->in.rank != 3)
        return loom_error_set(err, LOOM_ERR_SHAPE,
                              "%s: input is %s; pooling needs images "
                              "(H, W, C)",
                              pool_words[c->kind], s);
    c->H = l->in.d[0];
    c->W = l->in.d[1];
    c->C = l->in.d[2];
    if (c->kind == POOL_GLOBAL_AVG) {
        l->out = shape1(c->C);
        l->flops = (double)c->H * c->W * c->C;
        return LOOM_OK;
    }
    if (c->H < c->P || c->W < c->Q)
        return loom_error_set(err, LOOM_ERR_SHAPE, "%s %dx%d: window is larger than the input %s",
                              pool_words[c->kind], c->P, c->Q, s);
    c->Ho = (c->H - c->P) / c->sh + 1;
    c->Wo = (c->W - c->Q) / c->sw + 1;
    l->out = shape3(c->Ho, c->Wo, c->C);
    /* maxpool: argmax offsets (H'*W'*C) per example, stored as int32 in the float scratch */
    if (c->kind == POOL_MAX)
        l->scratch_per_example = (size_t)c->Ho * c->Wo * c->C;
    l->flops = (double)c->Ho * c->Wo * c->C * c->P * c->Q;
    return LOOM_OK;
}

/* Example chunks: about 16k input floats per chunk. Each example is computed whole by one
 * thread, so the chunking only affects speed, never the numbers. */
static int example_chunks(int B, size_t per_example) {
    return par_n_chunks(B, (long)(16384 / (per_example + 1)) + 1);
}

/* One example: y (H', W', C) = max over each window of x (H, W, C); arg (H', W', C) = offset
 * in x of the first maximum. */
static void maxpool_one(const pool_cfg *c, const float *x, float *y, int32_t *arg) {
    int C = c->C;
    for (int oh = 0; oh < c->Ho; oh++)
        for (int ow = 0; ow < c->Wo; ow++) {
            size_t o = ((size_t)oh * c->Wo + ow) * C;
            float *yo = y + o;
            int32_t *ao = arg + o;
            int32_t off0 = (int32_t)(((size_t)oh * c->sh * c->W + (size_t)ow * c->sw) * C);
#pragma omp simd
            for (int k = 0; k < C; k++) {
                yo[k] = x[off0 + k];
                ao[k] = off0 + k;
            }
            for (int p = 0; p < c->P; p++)
                for (int q = 0; q < c->Q; q++) {
                    if (p == 0 && q == 0)
                        continue;
                    int32_t off = off0 + (int32_t)(((size_t)p * c->W + q) * C);
                    const float *xp = x + off;
#pragma omp simd
                    for (int k = 0; k < C; k++) {
                        bool is_more = xp[k] > yo[k]; /* strict: ties keep the first */
                        yo[k] = is_more ? xp[k] : yo[k];
                        ao[k] = is_more ? off + k : ao[k];
                    }
                }
        }
}

/* One example: y (H', W', C) = mean over each PxQ window of x (H, W, C). */
static void avgpool_one(const pool_cfg *c, const float *x, float *y) {
    int C = c->C;
    float inv = 1.0f / (float)(c->P * c->Q);
    for (int oh = 0; oh < c->Ho; oh++)
        for (int ow = 0; ow < c->Wo; ow++) {
            float *yo = y + ((size_t)oh * c->Wo + ow) * C;
            memset(yo, 0, sizeof(float) * C);
            for (int p = 0; p < c->P; p++)
                for (int q = 0; q < c->Q; q++) {
                    const float *xp =
                        x + (((size_t)oh * c->sh + p) * c->W + (size_t)ow * c->sw + q) * C;
#pragma omp simd
                    for (int k = 0; k < C; k++)
                        yo[k] += xp[k];
                }
#pragma omp simd
            for (int k = 0; k < C; k++)
                yo[k] *= inv;
        }
}

/* One example: y (C) = mean over H*W of x (H, W, C), summed in pixel order. */
static void globalavg_one(const pool_cfg *c, const float *x, float *y) {
    int C = c->C, HW = c->H * c->W;
    memset(y, 0, sizeof(float) * C);
    for (int i = 0; i < HW; i++) {
        const float *xp = x + (size_t)i * C;
#pragma omp simd
        for (int k = 0; k < C; k++)
            y[k] += xp[k];
    }
    float inv = 1.0f / (float)HW;
#pragma omp simd
    for (int k = 0; k < C; k++)
        y[k] *= inv;
}

/* A pass over the examples: src is x (forward) or dy (backward), dst y or dx. */
typedef struct {
    layer *l;
    const float *src;
    float *dst;
} pool_job;

static void pool_forward_examples(void *ctx, long lo, long hi, int k) {
    (void)k;
    const pool_job *j = ctx;
    const pool_cfg *c = j->l->cfg;
    size_t in_sz = shape_size(j->l->in), out_sz = shape_size(j->l->out);
    int32_t *arg = (int32_t *)j->l->scratch; /* maxpool: (B, H', W', C) */
    for (long b = lo; b < hi; b++) {
        const float *xb = j->src + b * in_sz;
        float *yb = j->dst + b * out_sz;
        if (c->kind == POOL_MAX)
            maxpool_one(c, xb, yb, arg + b * out_sz);
        else if (c->kind == POOL_AVG)
            avgpool_one(c, xb, yb);
        else
            globalavg_one(c, xb, yb);
    }
}

static void pool_forward(layer *l, const fwd_ctx *ctx, const float *x, float *y, int B) {
    (void)ctx;
    pool_job j = {.l = l, .src = x, .dst = y};
    par_for(B, example_chunks(B, shape_size(l->in)), pool_forward_examples, &j);
}

/* dx (H, W, C) of one example from dy (H', W', C). maxpool: dx[arg] += dy; avgpool: every
 * window position gets dy / (P*Q) (added, as windows may overlap); global: dy / (H*W). */
static void pool_backward_one(const pool_cfg *c, const float *dy, float *dx, const int32_t *arg,
                              size_t in_sz, size_t out_sz) {
    int C = c->C;
    if (c->kind == POOL_GLOBAL_AVG) {
        float inv = 1.0f / (float)(c->H * c->W);
        for (int i = 0; i < c->H * c->W; i++)
#pragma omp simd
            for (int k = 0; k < C; k++)
                dx[(size_t)i * C + k] = dy[k] * inv;
        return;
    }
    memset(dx, 0, sizeof(float) * in_sz);
    if (c->kind == POOL_MAX) {
        for (size_t j = 0; j < out_sz; j++)
            dx[arg[j]] += dy[j];
        return;
    }
    float inv = 1.0f / (float)(c->P * c->Q);
    for (int oh = 0; oh < c->Ho; oh++)
        for (int ow = 0; ow < c->Wo; ow++) {
            const float *d = dy + ((size_t)oh * c->Wo + ow) * C;
            for (int p = 0; p < c->P; p++)
                for (int q = 0; q < c->Q; q++) {
                    float *xp = dx + (((size_t)oh * c->sh + p) * c->W + (size_t)ow * c->sw + q) * C;
#pragma omp simd
                    for (int k = 0; k < C; k++)
                        xp[k] += d[k] * inv;
                }
        }
}

static void pool_backward_examples(void *ctx, long lo, long hi, int k) {
    (void)k;
    const pool_job *j = ctx;
    const pool_cfg *c = j->l->cfg;
    size_t in_sz = shape_size(j->l->in), out_sz = shape_size(j->l->out);
    const int32_t *arg = (const int32_t *)j->l->scratch; /* maxpool: (B, H', W', C) */
    for (long b = lo; b < hi; b++)
        pool_backward_one(c, j->src + b * out_sz, j->dst + b * in_sz,
                          c->kind == POOL_MAX ? arg + b * out_sz : NULL, in_sz, out_sz);
}

static void pool_backward(layer *l, const float *x, const float *y, float *dy, float *dx, int B) {
    (void)x, (void)y;
    if (!dx)
        return;
    pool_job j = {.l = l, .src = dy, .dst = dx};
    par_for(B, example_chunks(B, shape_size(l->in)), pool_backward_examples, &j);
}

static void pool_describe(const layer *l, char *buf, size_t n) {
    const pool_cfg *c = l->cfg;
    const char *w = pool_words[c->kind];
    if (c->kind == POOL_GLOBAL_AVG) {
        snprintf(buf, n, "%s", w);
        return;
    }
    char win[32], st[32] = "";
    if (c->P == c->Q)
        snprintf(win, sizeof win, "%d", c->P);
    else
        snprintf(win, sizeof win, "%dx%d", c->P, c->Q);
    if (c->sh != c->P || c->sw != c->Q)
        snprintf(st, sizeof st, " stride %d", c->sh);
    snprintf(buf, n, "%s %s%s", w, win, st);
}

/* One table per word so that messages and summaries name the layer as written. */
static void pool_lower(const layer *l, layer_lowering *out) {
    const pool_cfg *c = l->cfg;
    static const lower_kind kinds[] = {LOWER_MAXPOOL, LOWER_AVGPOOL, LOWER_GLOBALAVGPOOL};
    *out =
        (layer_lowering){.kind = kinds[c->kind], .kh = c->P, .kw = c->Q, .sh = c->sh, .sw = c->sw};
}

static const layer_ops pool_ops[] = {
    {.kind = "maxpool",
     .init = pool_init,
     .forward = pool_forward,
     .backward = pool_backward,
     .describe = pool_describe,
     .lower = pool_lower},
    {.kind = "avgpool",
     .init = pool_init,
     .forward = pool_forward,
     .backward = pool_backward,
     .describe = pool_describe,
     .lower = pool_lower},
    {.kind = "globalavgpool",
     .init = pool_init,
     .forward = pool_forward,
     .backward = pool_backward,
     .describe = pool_describe,
     .lower = pool_lower},
};

/* maxpool P [stride S | sS], avgpool P [stride S | sS] (P may be PxQ), globalavgpool. */
loom_status pool_parse(layer *l, int argc, char **argv, loom_error *err);
loom_status pool_parse(layer *l, int argc, char **argv, loom_error *err) {
    pool_cfg c = {0};
    const char *word = argv[0];
    if (strcmp(word, "maxpool") == 0)
        c.kind = POOL_MAX;
    else if (strcmp(word, "avgpool") == 0)
        c.kind = POOL_AVG;
    else if (strcmp(word, "globalavgpool") == 0)
        c.kind = POOL_GLOBAL_AVG;
    else
        return loom_error_set(err, LOOM_ERR_FORMAT, "unknown pooling kind '%s'", word);
    if (c.kind == POOL_GLOBAL_AVG) {
        if (argc > 1)
            return loom_error_set(err, LOOM_ERR_FORMAT, "%s: unexpected word '%s'", word, argv[1]);
    } else {
        if (argc < 2 || !parse_kernel(argv[1], &c.P, &c.Q))
            return loom_error_set(err, LOOM_ERR_FORMAT,
                                  "%s: expected a positive window size like 2 or 2x2, found '%s'",
                                  word, argc < 2 ? "" : argv[1]);
        c.sh = c.P;
        c.sw = c.Q;
        int i = 2;
        if (i < argc) {
            const char *w = argv[i];
            bool is_short = w[0] == 's' && w[1] >= '0' && w[1] <= '9'; /* "s2" */
            if (!is_short && strcmp(w, "stride") != 0)
                return loom_error_set(err, LOOM_ERR_FORMAT, "%s: unexpected word '%s'", word, w);
            const char *num = is_short ? w + 1 : i + 1 < argc ? argv[i + 1] : "";
            int s;
            if (!parse_int(num, &s) || s < 1)
                return loom_error_set(err, LOOM_ERR_FORMAT,
                                      "%s: expected a positive stride, found '%s'", word,
                                      is_short ? w : num);
            c.sh = c.sw = s;
            i += is_short ? 1 : 2;
        }
        if (i < argc)
            return loom_error_set(err, LOOM_ERR_FORMAT, "%s: unexpected word '%s'", word, argv[i]);
    }
    pool_cfg *p = malloc(sizeof *p);
    if (!p)
        return loom_error_set(err, LOOM_ERR_NOMEM, "%s: out of memory", word);
    *p = c;
    l->ops = &pool_ops[c.kind];
    l->cfg = p;
    return LOOM_OK;
}
