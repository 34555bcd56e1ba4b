/* residual.c - the residual block: y = f(F(x) + S(x)), where F is the block's inner layers run in
 * order, S the shortcut (the identity, or a 1x1 convolution with a stride when the shapes differ
 * or "proj" asks for it) and f an optional activation after the addition. Input (B, in), output
 * (B, out), out = F's output. The inner layers live in the block: their parameters and state at
 * fixed offsets in the block's (inner layers in order, then the projection), their activations,
 * scratch and gradients in the block's scratch (carve). Backward: dL/dx = F'(x)^T g + S'(x)^T g
 * with g = dL/dy * f'(.). The model language builds blocks in src/model/model.c (braces). */
#include "layer.h"

loom_status conv_parse(layer *l, int argc, char **argv, loom_error *err);

#define RES_ALIGN 16 /* floats: every scratch region starts 64-byte aligned */

typedef struct {
    layer *inner; /* (n) owned, with their cfg */
    int n;
    layer proj;          /* ops NULL: the identity shortcut */
    bool is_proj_forced; /* "proj" was written */
    act_kind act;        /* after the addition */
    float alpha;
    size_t w_off[RESIDUAL_MAX_LAYERS + 1], s_off[RESIDUAL_MAX_LAYERS + 1]; /* proj: [n] */
    size_t n_grad; /* floats per example of each gradient buffer: the largest of in and outs */
} res_cfg;

/* The block's scratch for a batch of at most mb: per inner layer its output (mb, out_j) and its
 * own scratch, then the projection's output (mb, out) and scratch, then two gradient buffers
 * (mb, n_grad). */
typedef struct {
    float *act[RESIDUAL_MAX_LAYERS + 1], *scr[RESIDUAL_MAX_LAYERS + 1]; /* proj: [n] */
    float *g[2];
} res_views;

static bool shape_equal(loom_shape a, loom_shape b) {
    if (a.rank != b.rank)
        return false;
    for (int k = 0; k < a.rank; k++)
        if (a.d[k] != b.d[k])
            return false;
    return true;
}

static size_t round_up(size_t n) { return (n + RES_ALIGN - 1) / RES_ALIGN * RES_ALIGN; }

static size_t layer_scratch(const layer *l, size_t mb) {
    return l->scratch_per_example * mb + l->scratch_fixed;
}

static res_views carve(const layer *l) {
    const res_cfg *c = l->cfg;
    size_t mb = (size_t)l->max_batch;
    float *p = l->scratch;
    res_views v = {0};
    for (int j = 0; j <= c->n; j++) {
        const layer *q = j < c->n ? &c->inner[j] : &c->proj;
        if (!q->ops)
            continue;
        v.act[j] = p;
        p += round_up(shape_size(q->out) * mb);
        v.scr[j] = p;
        p += round_up(layer_scratch(q, mb));
    }
    v.g[0] = p;
    p += round_up(c->n_grad * mb);
    v.g[1] = p;
    return v;
}

/* Inner layer j (n: the projection) as a layer of its own over the block's buffers. */
static layer part(const layer *l, const res_views *v, int j) {
    const res_cfg *c = l->cfg;
    layer q = j < c->n ? c->inner[j] : c->proj;
    q.w = l->w ? l->w + c->w_off[j] : NULL;
    q.dw = l->dw ? l->dw + c->w_off[j] : NULL;
    q.state = l->state ? l->state + c->s_off[j] : NULL;
    q.scratch = v ? v->scr[j] : NULL;
    q.max_batch = l->max_batch;
    return q;
}

int residual_parts(const layer *l, layer *parts, int max, layer *proj) {
    const res_cfg *c = l->cfg;
    for (int j = 0; j < c->n && j < max; j++)
        parts[j] = part(l, NULL, j);
    if (proj)
        *proj = c->proj.ops ? part(l, NULL, c->n) : (layer){0};
    return c->n;
}

static void release(layer *q) {
    if (q->ops && q->ops->destroy)
        q->ops->destroy(q);
    else
        free(q->cfg);
    q->cfg = NULL;
    q->ops = NULL;
}

static void res_destroy(layer *l) {
    res_cfg *c = l->cfg;
    if (!c)
        return;
    for (int j = 0; j < c->n; j++)
        release(&c->inner[j]);
    release(&c->proj);
    free(c->inner);
    free(c);
    l->cfg = NULL;
}

/* Adds q's groups, shifted by off, to l's. */
static loom_status add_groups(layer *l, const layer *q, size_t off, loom_error *err) {
    if (l->n_groups + q->n_groups > LAYER_MAX_GROUPS)
        return loom_error_set(err, LOOM_ERR_SHAPE,
                              "residual: more than %d parameter groups in one block; split it "
                              "into blocks that follow each other",
                              LAYER_MAX_GROUPS);
    for (int g = 0; g < q->n_groups; g++) {
        param_group pg = q->groups[g];
        pg.off += off;
        l->groups[l->n_groups++] = pg;
    }
    return LOOM_OK;
}

/* The shortcut for in -> out: a 1x1 convolution whose stride s maps in's height and width onto
 * out's (ceil(H / s) = H'), with out's channels. */
static loom_status make_proj(layer *l, res_cfg *c, loom_error *err) {
    char sin[64], sout[64];
    shape_format(l->in, sin, sizeof sin);
    shape_format(l->out, sout, sizeof sout);
    if (l->in.rank != 3 || l->out.rank != 3)
        return loom_error_set(err, LOOM_ERR_SHAPE,
                              "residual: the shortcut cannot map %s onto %s (a projection needs "
                              "images (H, W, C) on both sides)",
                              sin, sout);
    int H = l->in.d[0], W = l->in.d[1], Ho = l->out.d[0], Wo = l->out.d[1], s = 1;
    while (s <= H && ((H + s - 1) / s != Ho || (W + s - 1) / s != Wo))
        s++;
    if (s > H)
        return loom_error_set(err, LOOM_ERR_SHAPE,
                              "residual: no stride maps %s onto %s for the shortcut's 1x1 "
                              "convolution",
                              sin, sout);
    char k[16], st[16], one[] = "1x1", word[] = "conv";
    snprintf(k, sizeof k, "%d", l->out.d[2]);
    snprintf(st, sizeof st, "s%d", s);
    char *argv[] = {word, k, one, st};
    release(&c->proj);
    memset(&c->proj, 0, sizeof c->proj);
    loom_status r = conv_parse(&c->proj, 4, argv, err);
    if (r)
        return r;
    c->proj.in = l->in;
    r = c->proj.ops->init(&c->proj, err);
    if (r)
        return r;
    if (!shape_equal(c->proj.out, l->out))
        return loom_error_set(err, LOOM_ERR_SHAPE,
                              "residual: the shortcut's 1x1 convolution s%d maps %s elsewhere "
                              "than %s",
                              s, sin, sout);
    return LOOM_OK;
}

static void res_describe(const layer *l, char *buf, size_t n);

static loom_status res_init(layer *l, loom_error *err) {
    res_cfg *c = l->cfg;
    loom_shape s = l->in;
    l->n_params = l->n_state = 0;
    l->n_groups = 0;
    l->scratch_per_example = 0;
    l->scratch_fixed = 0;
    l->flops = 0;
    size_t n_grad = shape_size(l->in);
    /* the inner layers in order, then (j = n) the projection when the shortcut needs one */
    for (int j = 0; j <= c->n; j++) {
        layer *q = j < c->n ? &c->inner[j] : &c->proj;
        if (j == c->n) {
            l->out = s;
            if (!c->is_proj_forced && shape_equal(l->in, l->out)) {
                release(&c->proj);
                break;
            }
            loom_status r = make_proj(l, c, err);
            if (r)
                return r;
        } else {
            q->in = s;
            loom_error e2 = {0};
            loom_status r = q->ops->init(q, &e2);
            if (r)
                return loom_error_set(err, r, "residual's layer %d (%s): %s", j + 1, q->ops->kind,
                                      e2.msg);
            if (shape_size(q->out) == 0)
                return loom_error_set(err, LOOM_ERR_SHAPE,
                                      "residual's layer %d (%s): output is empty", j + 1,
                                      q->ops->kind);
            s = q->out;
        }
        c->w_off[j] = l->n_params;
        c->s_off[j] = l->n_state;
        loom_status r = add_groups(l, q, l->n_params, err);
        if (r)
            return r;
        l->n_params += q->n_params;
        l->n_state += q->n_state;
        l->scratch_per_example += shape_size(q->out) + q->scratch_per_example;
        l->scratch_fixed += q->scratch_fixed + 2 * RES_ALIGN;
        l->flops += q->flops;
        if (shape_size(q->out) > n_grad)
            n_grad = shape_size(q->out);
    }
    c->n_grad = n_grad;
    /* the model text holds the block on one line: it must fit, to read back the same */
    char *line = malloc(RESIDUAL_DESCRIBE_MAX);
    if (!line)
        return loom_error_set(err, LOOM_ERR_NOMEM, "residual: out of memory");
    res_describe(l, line, RESIDUAL_DESCRIBE_MAX);
    size_t len = strlen(line);
    free(line);
    if (len + 1 >= RESIDUAL_DESCRIBE_MAX)
        return loom_error_set(err, LOOM_ERR_FORMAT,
                              "residual: the block's one-line text is longer than %d characters",
                              RESIDUAL_DESCRIBE_MAX - 2);
    l->scratch_per_example += 2 * n_grad;
    l->scratch_fixed += 2 * RES_ALIGN;
    l->flops += (double)shape_size(l->out) * (c->act == ACT_NONE ? 1 : 2);
    return LOOM_OK;
}

/* Each part its own stream, as the model seeds each layer: the model's default fill (Glorot
 * weights, unit gammas, zero biases) where the kind has none of its own. */
static void res_init_params(layer *l, loom_rng *rng) {
    const res_cfg *c = l->cfg;
    uint64_t seed = loom_rng_next(rng);
    for (int j = 0; j <= c->n; j++) {
        if (j == c->n && !c->proj.ops)
            break;
        layer q = part(l, NULL, j);
        loom_rng r;
        loom_rng_seed(&r, loom_seed_derive(seed, (uint64_t)j));
        layer_init_params(&q, &r);
    }
}

static void add_into(float *y, const float *a, size_t n) {
    for (size_t i = 0; i < n; i++)
        y[i] += a[i];
}

static void res_forward(layer *l, const fwd_ctx *ctx, const float *x, float *y, int B) {
    const res_cfg *c = l->cfg;
    res_views v = carve(l);
    const float *cur = x;
    for (int j = 0; j < c->n; j++) {
        layer q = part(l, &v, j);
        q.ops->forward(&q, ctx, cur, v.act[j], B);
        cur = v.act[j];
    }
    size_t n = shape_size(l->out) * (size_t)B;
    memcpy(y, cur, sizeof(float) * n);
    if (c->proj.ops) {
        layer q = part(l, &v, c->n);
        q.ops->forward(&q, ctx, x, v.act[c->n], B);
        add_into(y, v.act[c->n], n);
    } else {
        add_into(y, x, n);
    }
    act_forward(c->act, c->alpha, y, n);
}

static void res_backward(layer *l, const float *x, const float *y, float *dy, float *dx, int B) {
    const res_cfg *c = l->cfg;
    res_views v = carve(l);
    size_t n = shape_size(l->out) * (size_t)B, n_in = shape_size(l->in) * (size_t)B;
    act_backward(c->act, c->alpha, y, dy, n); /* dy: dL/d(F(x) + S(x)) from here on */
    float *cur = v.g[0], *nxt = v.g[1];
    memcpy(cur, dy, sizeof(float) * n); /* the inner layers may overwrite their dy */
    for (int j = c->n - 1; j >= 0; j--) {
        layer q = part(l, &v, j);
        float *to = j > 0 ? nxt : dx ? dx : nxt;
        q.ops->backward(&q, j > 0 ? v.act[j - 1] : x, v.act[j], cur, to, B);
        nxt = cur;
        cur = to;
    }
    if (c->proj.ops) {
        layer q = part(l, &v, c->n);
        q.ops->backward(&q, x, v.act[c->n], dy, v.g[0], B);
        if (dx)
            add_into(dx, v.g[0], n_in);
    } else if (dx) {
        add_into(dx, dy, n_in);
    }
}

static void put(char *buf, size_t n, size_t *used, const char *s) {
    size_t k = strlen(s);
    if (*used + k >= n)
        k = *used + 1 < n ? n - *used - 1 : 0;
    memcpy(buf + *used, s, k);
    *used += k;
    buf[*used] = '\0';
}

/* "residual [proj] { inner, inner, ... } [activation]" on one line: the model language reads it
 * back to the same block. */
static void res_describe(const layer *l, char *buf, size_t n) {
    const res_cfg *c = l->cfg;
    size_t used = 0;
    if (n == 0)
        return;
    buf[0] = '\0';
    put(buf, n, &used, c->proj.ops ? "residual proj {" : "residual {");
    char *line = malloc(RESIDUAL_DESCRIBE_MAX);
    for (int j = 0; j < c->n && line; j++) {
        c->inner[j].ops->describe(&c->inner[j], line, RESIDUAL_DESCRIBE_MAX);
        put(buf, n, &used, j ? ", " : " ");
        put(buf, n, &used, line);
    }
    free(line);
    put(buf, n, &used, " }");
    if (c->act != ACT_NONE) {
        char a[48];
        if (c->act == ACT_LEAKY_RELU || c->act == ACT_ELU)
            snprintf(a, sizeof a, " %s %g", act_name(c->act), c->alpha);
        else
            snprintf(a, sizeof a, " %s", act_name(c->act));
        put(buf, n, &used, a);
    }
}

static void res_lower(const layer *l, layer_lowering *out) {
    const res_cfg *c = l->cfg;
    *out = (layer_lowering){.kind = LOWER_RESIDUAL, .act = c->act, .alpha = c->alpha};
}

static const layer_ops residual_ops = {
    .kind = "residual",
    .init = res_init,
    .init_params = res_init_params,
    .forward = res_forward,
    .backward = res_backward,
    .describe = res_describe,
    .destroy = res_destroy,
    .lower = res_lower,
};

bool layer_is_residual(const layer *l) { return l->ops == &residual_ops; }

loom_status residual_make(layer *l, layer *inner, int n, bool is_proj_forced, act_kind act,
                          float alpha, loom_error *err) {
    if (n < 1 || n > RESIDUAL_MAX_LAYERS) {
        for (int j = 0; j < n; j++)
            release(&inner[j]);
        return loom_error_set(err, LOOM_ERR_FORMAT,
                              n < 1 ? "residual: an empty block"
                                    : "residual: more than " RESIDUAL_MAX_LAYERS_TEXT
                                      " layers in one block");
    }
    res_cfg *c = calloc(1, sizeof *c);
    layer *copy = malloc(sizeof(layer) * (size_t)n);
    if (!c || !copy) {
        free(c);
        free(copy);
        for (int j = 0; j < n; j++)
            release(&inner[j]);
        return loom_error_set(err, LOOM_ERR_NOMEM, "residual: out of memory");
    }
    memcpy(copy, inner, sizeof(layer) * (size_t)n);
    c->inner = copy;
    c->n = n;
    c->is_proj_forced = is_proj_forced;
    c->act = act;
    c->alpha = alpha;
    l->ops = &residual_ops;
    l->cfg = c;
    return LOOM_OK;
}
