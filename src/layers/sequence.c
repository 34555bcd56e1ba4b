/* sequence.c - image to sequence: `rows` reads an image (H, W, C) top to bottom as T = H steps
 * of N = W*C values (channels-last memory makes this a plain copy); `columns` reads it left to
 * right as T = W steps of N = H*C values, y[b, w, h*C + c] = x[b, h, w, c] (a transpose per
 * example). Input (B, H, W, C), output (B, T, N); backward applies the inverse permutation. */
#include "layer.h"

typedef struct {
    bool is_columns; /* false: rows */
} sequence_cfg;

static loom_status sequence_init(layer *l, loom_error *err) {
    const sequence_cfg *c = l->cfg;
    const char *word = c->is_columns ? "columns" : "rows";
    if (l->in.rank != 3) {
        char s[64];
        shape_format(l->in, s, sizeof s);
        return loom_error_set(err, LOOM_ERR_SHAPE, "%s: input is %s, expected an image (H, W, C)",
                              word, s);
    }
    int H = l->in.d[0], W = l->in.d[1], C = l->in.d[2];
    l->out = c->is_columns ? shape2(W, H * C) : shape2(H, W * C);
    return LOOM_OK;
}

/* dst (B, W, H*C) from src (B, H, W, C): one (H, W) -> (W, H) transpose of C-vectors each. */
static void to_columns(const float *src, float *dst, int B, int H, int W, int C) {
    size_t D = (size_t)H * W * C;
    for (int b = 0; b < B; b++) {
        const float *s = src + (size_t)b * D;
        float *d = dst + (size_t)b * D;
        for (int h = 0; h < H; h++)
            for (int w = 0; w < W; w++)
                memcpy(d + ((size_t)w * H + h) * C, s + ((size_t)h * W + w) * C, sizeof(float) * C);
    }
}

/* dst (B, H, W, C) from src (B, W, H*C): the inverse of to_columns. */
static void from_columns(const float *src, float *dst, int B, int H, int W, int C) {
    size_t D = (size_t)H * W * C;
    for (int b = 0; b < B; b++) {
        const float *s = src + (size_t)b * D;
        float *d = dst + (size_t)b * D;
        for (int h = 0; h < H; h++)
            for (int w = 0; w < W; w++)
                memcpy(d + ((size_t)h * W + w) * C, s + ((size_t)w * H + h) * C, sizeof(float) * C);
    }
}

static void sequence_forward(layer *l, const fwd_ctx *ctx, const float *x, float *y, int B) {
    (void)ctx;
    const sequence_cfg *c = l->cfg;
    if (c->is_columns)
        to_columns(x, y, B, l->in.d[0], l->in.d[1], l->in.d[2]);
    else
        memcpy(y, x, sizeof(float) * shape_size(l->in) * (size_t)B);
}

static void sequence_backward(layer *l, const float *x, const float *y, float *dy, float *dx,
                              int B) {
    (void)x, (void)y;
    const sequence_cfg *c = l->cfg;
    if (!dx)
        return;
    if (c->is_columns)
        from_columns(dy, dx, B, l->in.d[0], l->in.d[1], l->in.d[2]);
    else
        memcpy(dx, dy, sizeof(float) * shape_size(l->in) * (size_t)B);
}

static void sequence_describe(const layer *l, char *buf, size_t n) {
    snprintf(buf, n, "%s", ((const sequence_cfg *)l->cfg)->is_columns ? "columns" : "rows");
}

static void sequence_lower(const layer *l, layer_lowering *out) {
    bool is_columns = ((const sequence_cfg *)l->cfg)->is_columns;
    *out = (layer_lowering){.kind = is_columns ? LOWER_COLUMNS : LOWER_ROWS};
}

static const layer_ops sequence_ops = {
    .kind = "sequence",
    .init = sequence_init,
    .forward = sequence_forward,
    .backward = sequence_backward,
    .describe = sequence_describe,
    .lower = sequence_lower,
};

loom_status sequence_parse(layer *l, int argc, char **argv, loom_error *err);
loom_status sequence_parse(layer *l, int argc, char **argv, loom_error *err) {
    bool is_columns = strcmp(argv[0], "columns") == 0;
    if (!is_columns && strcmp(argv[0], "rows") != 0)
        return loom_error_set(err, LOOM_ERR_FORMAT, "unknown sequence layer '%s'", argv[0]);
    if (argc > 1)
        return loom_error_set(err, LOOM_ERR_FORMAT, "%s: unexpected word '%s'", argv[0], argv[1]);
    sequence_cfg *c = malloc(sizeof *c);
    if (!c)
        return loom_error_set(err, LOOM_ERR_NOMEM, "%s: out of memory", argv[0]);
    c->is_columns = is_columns;
    l->ops = &sequence_ops;
    l->cfg = c;
    return LOOM_OK;
}
