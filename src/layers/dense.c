/* dense.c - fully connected layer with an optional fused activation.
 * x (B, N), W (N, K) row-major as Keras stores it, b (K), y (B, K) = f(x W + b).
 * Backward: dz = dy * f'(y); dW += x^T dz; db += sum_b dz; dx = dz W^T. */
#include "layer.h"

typedef struct {
    int units;
    act_kind act;
    float alpha;     /* leaky-relu slope / elu alpha */
    bool is_softmax; /* last layer: logits feed softmax + cross-entropy */
} dense_cfg;

static loom_status dense_init(layer *l, loom_error *err) {
    dense_cfg *c = l->cfg;
    if (l->in.rank != 1) {
        char s[64];
        shape_format(l->in, s, sizeof s);
        return loom_error_set(err, LOOM_ERR_SHAPE, "dense %d: input is %s; put 'flatten' before it",
                              c->units, s);
    }
    int N = l->in.d[0], K = c->units;
    l->out = shape1(K);
    l->n_params = (size_t)N * K + K;
    l->groups[0] = (param_group){0, (size_t)N * K, GROUP_WEIGHT, N, K};
    l->groups[1] = (param_group){(size_t)N * K, (size_t)K, GROUP_BIAS, N, K};
    l->n_groups = 2;
    l->flops = 2.0 * N * K + K;
    /* the forward product's second half of the reduction, when it is split (gemm_par_ws) */
    l->scratch_per_example = gemm_splits_k(K, N) ? (size_t)K : 0;
    return LOOM_OK;
}

static void dense_forward(layer *l, const fwd_ctx *ctx, const float *x, float *y, int B) {
    dense_cfg *c = l->cfg;
    int N = l->in.d[0], K = c->units;
    const float *W = l->w, *b = l->w + (size_t)N * K;
    for (int i = 0; i < B; i++)
        memcpy(y + (size_t)i * K, b, sizeof(float) * K);
    /* inference: each example's output the same bits whatever batch it comes in */
    if (ctx && !ctx->is_training)
        gemm_fixed(B, K, N, x, N, W, K, y, K);
    else
        gemm_par_ws(B, K, N, 1.0f, x, N, W, K, 1.0f, y, K,
                    l->scratch_per_example ? l->scratch : NULL);
    act_forward(c->act, c->alpha, y, (size_t)B * K);
}

static void dense_backward(layer *l, const float *x, const float *y, float *dy, float *dx, int B) {
    dense_cfg *c = l->cfg;
    int N = l->in.d[0], K = c->units;
    act_backward(c->act, c->alpha, y, dy, (size_t)B * K);
    float *dW = l->dw, *db = l->dw + (size_t)N * K;
    gemm_par(true, false, N, K, B, 1.0f, x, N, dy, K, 1.0f, dW, K);
    for (int i = 0; i < B; i++) {
        const float *d = dy + (size_t)i * K;
#pragma omp simd
        for (int k = 0; k < K; k++)
            db[k] += d[k];
    }
    if (dx)
        gemm_par(false, true, B, N, K, 1.0f, dy, K, l->w, K, 0.0f, dx, N);
}

static void dense_describe(const layer *l, char *buf, size_t n) {
    const dense_cfg *c = l->cfg;
    if (c->is_softmax)
        snprintf(buf, n, "dense %d softmax", c->units);
    else if (c->act == ACT_NONE)
        snprintf(buf, n, "dense %d", c->units);
    else if (c->act == ACT_LEAKY_RELU || c->act == ACT_ELU)
        snprintf(buf, n, "dense %d %s %g", c->units, act_name(c->act), c->alpha);
    else
        snprintf(buf, n, "dense %d %s", c->units, act_name(c->act));
}

static void dense_lower(const layer *l, layer_lowering *out) {
    const dense_cfg *c = l->cfg;
    *out = (layer_lowering){.kind = LOWER_DENSE,
                            .act = c->act,
                            .alpha = c->alpha,
                            .is_softmax = c->is_softmax,
                            .units = c->units};
}

static const layer_ops dense_ops = {
    .kind = "dense",
    .lower = dense_lower,
    .init = dense_init,
    .forward = dense_forward,
    .backward = dense_backward,
    .describe = dense_describe,
};

/* Parses the activation words shared by dense and conv: [act [alpha]] | softmax. */
loom_status parse_activation(int argc, char **argv, int *i, act_kind *act, float *alpha,
                             bool *is_softmax, loom_error *err);
loom_status parse_activation(int argc, char **argv, int *i, act_kind *act, float *alpha,
                             bool *is_softmax, loom_error *err) {
    *act = ACT_NONE;
    *alpha = 0.0f;
    if (is_softmax)
        *is_softmax = false;
    if (*i >= argc)
        return LOOM_OK;
    const char *w = argv[*i];
    if (strcmp(w, "softmax") == 0) {
        if (!is_softmax)
            return loom_error_set(err, LOOM_ERR_FORMAT, "'softmax' is only allowed on dense");
        *is_softmax = true;
        (*i)++;
        return LOOM_OK;
    }
    if (!act_parse(w, act))
        return LOOM_OK; /* not an activation word: the caller decides */
    (*i)++;
    if (*act == ACT_LEAKY_RELU || *act == ACT_ELU) {
        *alpha = *act == ACT_ELU ? 1.0f : 0.01f;
        if (*i < argc && parse_float(argv[*i], alpha)) {
            if (!(*alpha > 0.0f))
                return loom_error_set(err, LOOM_ERR_FORMAT, "'%s': alpha must be > 0", w);
            (*i)++;
        }
    }
    return LOOM_OK;
}

loom_status dense_parse(layer *l, int argc, char **argv, loom_error *err);
loom_status dense_parse(layer *l, int argc, char **argv, loom_error *err) {
    dense_cfg c = {0};
    if (argc < 2 || !parse_int(argv[1], &c.units) || c.units < 1 || c.units > LOOM_MAX_VALUES)
        return loom_error_set(err, LOOM_ERR_FORMAT,
                              "dense: expected a number of units from 1 to %d, found '%s'",
                              LOOM_MAX_VALUES, argc < 2 ? "" : argv[1]);
    int i = 2;
    loom_status s = parse_activation(argc, argv, &i, &c.act, &c.alpha, &c.is_softmax, err);
    if (s)
        return s;
    if (i < argc)
        return loom_error_set(err, LOOM_ERR_FORMAT, "dense: unexpected word '%s'", argv[i]);
    dense_cfg *p = malloc(sizeof *p);
    if (!p)
        return loom_error_set(err, LOOM_ERR_NOMEM, "dense: out of memory");
    *p = c;
    l->ops = &dense_ops;
    l->cfg = p;
    return LOOM_OK;
}

bool dense_is_softmax(const layer *l);
bool dense_is_softmax(const layer *l) {
    return l->ops == &dense_ops && ((const dense_cfg *)l->cfg)->is_softmax;
}
