/* simple.c - parameter-free layers: flatten, dropout and the standalone activations
 * (relu, leaky_relu, elu, tanh, sigmoid). Shapes: x (B, in) -> y (B, out), same size. */
#include "layer.h"

#ifdef __AVX512F__
#include <immintrin.h>
#endif

#include <math.h>

/* ---- flatten: (H, W, C) or (T, N) -> (H*W*C); a copy, the memory order is unchanged ---- */

static loom_status flatten_init(layer *l, loom_error *err) {
    (void)err;
    l->out = shape1((int)shape_size(l->in));
    return LOOM_OK;
}
static void flatten_forward(layer *l, const fwd_ctx *ctx, const float *x, float *y, int B) {
    (void)ctx;
    memcpy(y, x, sizeof(float) * shape_size(l->in) * (size_t)B);
}
static void flatten_backward(layer *l, const float *x, const float *y, float *dy, float *dx,
                             int B) {
    (void)x, (void)y;
    if (dx)
        memcpy(dx, dy, sizeof(float) * shape_size(l->in) * (size_t)B);
}
static void flatten_describe(const layer *l, char *buf, size_t n) {
    (void)l;
    snprintf(buf, n, "flatten");
}
static void flatten_lower(const layer *l, layer_lowering *out) {
    (void)l;
    *out = (layer_lowering){.kind = LOWER_FLATTEN};
}
static const layer_ops flatten_ops = {.kind = "flatten",
                                      .lower = flatten_lower,
                                      .init = flatten_init,
                                      .forward = flatten_forward,
                                      .backward = flatten_backward,
                                      .describe = flatten_describe,
                                      .is_view = true};

loom_status flatten_parse(layer *l, int argc, char **argv, loom_error *err);
loom_status flatten_parse(layer *l, int argc, char **argv, loom_error *err) {
    if (argc > 1)
        return loom_error_set(err, LOOM_ERR_FORMAT, "flatten: unexpected word '%s'", argv[1]);
    l->ops = &flatten_ops;
    l->cfg = NULL;
    return LOOM_OK;
}

/* ---- dropout (inverted): training y = x * m, m = 1/(1-p) with probability 1-p else 0;
 * evaluation y = x. scratch: the mask (B, in). ---- */

typedef struct {
    float rate;
} dropout_cfg;

static loom_status dropout_init(layer *l, loom_error *err) {
    (void)err;
    l->out = l->in;
    l->scratch_per_example = shape_size(l->in);
    return LOOM_OK;
}

/* What a training forward's chunks share. */
typedef struct {
    const float *x;
    float *y, *mask;
    uint64_t base; /* the draw the chunk streams derive from */
    uint32_t thresh;
    float scale;
} dropout_job;

/* Chunk ch: elements [lo, hi), from the chunk's own stream. */
static void dropout_chunk(void *ctx, long lo, long hi, int ch) {
    const dropout_job *j = ctx;
    const float *x = j->x;
    float *y = j->y, *mask = j->mask, scale = j->scale;
    uint32_t thresh = j->thresh;
    size_t i = (size_t)lo, end = (size_t)hi;
    loom_rng r;
    loom_rng_seed(&r, loom_seed_derive(j->base, (uint64_t)ch));
#ifdef __AVX512F__
    /* 16 values per 4 draws: the draws' 16-bit fields, in memory order, are the same
     * uniforms in the same order as the scalar loop below takes them */
    __m512i t16 = _mm512_set1_epi32((int)thresh);
    __m512 s16 = _mm512_set1_ps(scale);
    for (; i + 16 <= end; i += 16) {
        uint64_t bits[4] = {rng_next(&r), rng_next(&r), rng_next(&r), rng_next(&r)};
        __m512i u = _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)bits));
        __m512 m = _mm512_maskz_mov_ps(_mm512_cmplt_epu32_mask(u, t16), s16);
        _mm512_storeu_ps(mask + i, m);
        _mm512_storeu_ps(y + i, _mm512_mul_ps(_mm512_loadu_ps(x + i), m));
    }
#endif
    for (; i + 4 <= end; i += 4) {
        uint64_t bits = rng_next(&r);
        for (int k = 0; k < 4; k++) {
            float m = (uint32_t)((bits >> (16 * k)) & 0xffff) < thresh ? scale : 0.0f;
            mask[i + k] = m;
            y[i + k] = x[i + k] * m;
        }
    }
    if (i < end) {
        uint64_t bits = rng_next(&r);
        for (int k = 0; i + k < end; k++) {
            float m = (uint32_t)((bits >> (16 * k)) & 0xffff) < thresh ? scale : 0.0f;
            mask[i + k] = m;
            y[i + k] = x[i + k] * m;
        }
    }
}

static void dropout_forward(layer *l, const fwd_ctx *ctx, const float *x, float *y, int B) {
    dropout_cfg *c = l->cfg;
    size_t n = shape_size(l->in) * (size_t)B;
    float *mask = l->scratch;
    if (!ctx->is_training || c->rate <= 0.0f) {
        memcpy(y, x, sizeof(float) * n);
        for (size_t i = 0; i < n; i++)
            mask[i] = 1.0f;
        return;
    }
    float keep = 1.0f - c->rate;
    /* 16-bit uniforms, four per 64-bit draw, from one stream per fixed chunk: the chunk
     * streams derive from one draw of the layer's RNG, so the mask is a pure function of the
     * RNG state whatever the thread count. */
    dropout_job j = {.x = x,
                     .y = y,
                     .mask = mask,
                     .base = loom_rng_next(ctx->rng),
                     .thresh = (uint32_t)lroundf(keep * 65536.0f),
                     .scale = 1.0f / keep};
    par_for((long)n, par_n_chunks((long)n, 16384), dropout_chunk, &j);
}
static void dropout_backward(layer *l, const float *x, const float *y, float *dy, float *dx,
                             int B) {
    (void)x, (void)y;
    if (!dx)
        return;
    size_t n = shape_size(l->in) * (size_t)B;
    const float *mask = l->scratch;
#pragma omp simd
    for (size_t j = 0; j < n; j++)
        dx[j] = dy[j] * mask[j];
}
static void dropout_describe(const layer *l, char *buf, size_t n) {
    snprintf(buf, n, "dropout %g", ((const dropout_cfg *)l->cfg)->rate);
}
static bool dropout_is_identity(const layer *l, bool is_training) {
    return !is_training || ((const dropout_cfg *)l->cfg)->rate <= 0.0f;
}
static void dropout_lower(const layer *l, layer_lowering *out) {
    (void)l;
    *out = (layer_lowering){.kind = LOWER_DROPOUT};
}
static const layer_ops dropout_ops = {.kind = "dropout",
                                      .lower = dropout_lower,
                                      .init = dropout_init,
                                      .forward = dropout_forward,
                                      .backward = dropout_backward,
                                      .describe = dropout_describe,
                                      .is_identity = dropout_is_identity};

loom_status dropout_parse(layer *l, int argc, char **argv, loom_error *err);
loom_status dropout_parse(layer *l, int argc, char **argv, loom_error *err) {
    float rate;
    if (argc != 2 || !parse_float(argv[1], &rate) || rate < 0.0f || rate >= 1.0f)
        return loom_error_set(err, LOOM_ERR_FORMAT,
                              "dropout: expected one rate in [0, 1), found '%s'",
                              argc < 2 ? "" : argv[1]);
    dropout_cfg *c = malloc(sizeof *c);
    if (!c)
        return loom_error_set(err, LOOM_ERR_NOMEM, "dropout: out of memory");
    c->rate = rate;
    l->ops = &dropout_ops;
    l->cfg = c;
    return LOOM_OK;
}

/* ---- standalone activation: y = f(x) elementwise ---- */

typedef struct {
    act_kind act;
    float alpha;
} act_cfg;

static loom_status act_init(layer *l, loom_error *err) {
    (void)err;
    l->out = l->in;
    l->flops = (double)shape_size(l->in);
    return LOOM_OK;
}
static void act_layer_forward(layer *l, const fwd_ctx *ctx, const float *x, float *y, int B) {
    (void)ctx;
    act_cfg *c = l->cfg;
    size_t n = shape_size(l->in) * (size_t)B;
    memcpy(y, x, sizeof(float) * n);
    act_forward(c->act, c->alpha, y, n);
}
static void act_layer_backward(layer *l, const float *x, const float *y, float *dy, float *dx,
                               int B) {
    (void)x;
    act_cfg *c = l->cfg;
    size_t n = shape_size(l->in) * (size_t)B;
    act_backward(c->act, c->alpha, y, dy, n);
    if (dx)
        memcpy(dx, dy, sizeof(float) * n);
}
static void act_layer_describe(const layer *l, char *buf, size_t n) {
    const act_cfg *c = l->cfg;
    if (c->act == ACT_LEAKY_RELU || c->act == ACT_ELU)
        snprintf(buf, n, "%s %g", act_name(c->act), c->alpha);
    else
        snprintf(buf, n, "%s", act_name(c->act));
}
static void act_layer_lower(const layer *l, layer_lowering *out) {
    const act_cfg *c = l->cfg;
    *out = (layer_lowering){.kind = LOWER_ACTIVATION, .act = c->act, .alpha = c->alpha};
}
static const layer_ops act_ops = {.kind = "activation",
                                  .lower = act_layer_lower,
                                  .init = act_init,
                                  .forward = act_layer_forward,
                                  .backward = act_layer_backward,
                                  .describe = act_layer_describe};

loom_status activation_parse(layer *l, int argc, char **argv, loom_error *err);
loom_status activation_parse(layer *l, int argc, char **argv, loom_error *err) {
    act_cfg c = {0};
    if (!act_parse(argv[0], &c.act) || c.act == ACT_NONE)
        return loom_error_set(err, LOOM_ERR_FORMAT, "unknown activation '%s'", argv[0]);
    int i = 1;
    if (c.act == ACT_LEAKY_RELU || c.act == ACT_ELU) {
        c.alpha = c.act == ACT_ELU ? 1.0f : 0.01f;
        if (argc > 1) {
            if (!parse_float(argv[1], &c.alpha) || !(c.alpha > 0.0f))
                return loom_error_set(err, LOOM_ERR_FORMAT,
                                      "%s: expected a positive alpha, found '%s'", argv[0],
                                      argv[1]);
            i = 2;
        }
    }
    if (i < argc)
        return loom_error_set(err, LOOM_ERR_FORMAT, "%s: unexpected word '%s'", argv[0], argv[i]);
    act_cfg *p = malloc(sizeof *p);
    if (!p)
        return loom_error_set(err, LOOM_ERR_NOMEM, "activation: out of memory");
    *p = c;
    l->ops = &act_ops;
    l->cfg = p;
    return LOOM_OK;
}

/* ---- standardize: y = (x - mean) / std per input value; mean and std are state (fitted on
 * the training data by the run, saved with the model), never trained. ---- */

static loom_status std_init(layer *l, loom_error *err) {
    (void)err;
    l->out = l->in;
    l->n_state = 2 * shape_size(l->in);
    l->flops = 2.0 * (double)shape_size(l->in);
    return LOOM_OK;
}
static void std_init_params(layer *l, loom_rng *rng) {
    (void)rng;
    size_t D = shape_size(l->in);
    for (size_t i = 0; i < D; i++) {
        l->state[i] = 0.0f;
        l->state[D + i] = 1.0f;
    }
}
static void std_forward(layer *l, const fwd_ctx *ctx, const float *x, float *y, int B) {
    (void)ctx;
    size_t D = shape_size(l->in);
    const float *mean = l->state, *sd = l->state + D;
    for (int b = 0; b < B; b++) {
        const float *xb = x + (size_t)b * D;
        float *yb = y + (size_t)b * D;
#pragma omp simd
        for (size_t i = 0; i < D; i++)
            yb[i] = (xb[i] - mean[i]) / sd[i];
    }
}
static void std_backward(layer *l, const float *x, const float *y, float *dy, float *dx, int B) {
    (void)x, (void)y;
    if (!dx)
        return;
    size_t D = shape_size(l->in);
    const float *sd = l->state + D;
    for (int b = 0; b < B; b++)
#pragma omp simd
        for (size_t i = 0; i < D; i++)
            dx[(size_t)b * D + i] = dy[(size_t)b * D + i] / sd[i];
}
static void std_describe(const layer *l, char *buf, size_t n) {
    (void)l;
    snprintf(buf, n, "standardize");
}
static void std_lower(const layer *l, layer_lowering *out) {
    (void)l;
    *out = (layer_lowering){.kind = LOWER_STANDARDIZE};
}
static const layer_ops std_ops = {.kind = "standardize",
                                  .lower = std_lower,
                                  .init = std_init,
                                  .init_params = std_init_params,
                                  .forward = std_forward,
                                  .backward = std_backward,
                                  .describe = std_describe};

loom_status standardize_parse(layer *l, int argc, char **argv, loom_error *err);
loom_status standardize_parse(layer *l, int argc, char **argv, loom_error *err) {
    if (argc > 1)
        return loom_error_set(err, LOOM_ERR_FORMAT, "standardize: unexpected word '%s'", argv[1]);
    l->ops = &std_ops;
    l->cfg = NULL;
    return LOOM_OK;
}
