/* quantized.c - the int8 layer: a dense or conv layer with int8 weights, written "int8 dense 128
 * relu" or "int8 conv 32 3x3 same relu" (the model line it replaces after the word int8); made by
 * loom_model_quantize, inference only. x (B, in) float, quantized per tensor at the input:
 * u = clamp(round(x / sx), lo, hi) + zp (zp 0: 0..255 for inputs never negative; zp 128: -127..127
 * shifted to 1..255); W (N, K) per output column symmetric: q = round(W / sw[k]) in -127..127;
 * y = f((sum_n u q - zp colsum[k]) * (sx sw[k]) + b[k]), the sum exact in int32 (qgemm.c).
 * Conv: N = R*S*C, the input quantized into a padded image (padding = zp, the quantized zero),
 * which the product reads directly: each kernel row's S C bytes are contiguous there, so group n4
 * of an output pixel is 4 bytes at a fixed offset from the pixel's window (an implicit im2col, no
 * column matrix). When S C is not a multiple of 4 each kernel row is widened to Sg = S C rounded
 * up to 4 with zero weights (repacked per call from the stored packing, which stays as the file
 * has it); the up to 3 bytes read past a window then count nothing. Relu is applied in the
 * product's epilogue.
 * Parameters: b (K). State: sw (K), sx, zp. Bytes: colsum (Kp) int32, then the packed weights
 * (N4, Kp, 4) s8 (qgemm.c), each part padded to 64 bytes; N4 = ceil(N / 4), Kp = K up to 16. */
#include "quantized.h"

#include <math.h>

typedef struct {
    layer inner;         /* the dense or conv layer it stands for: settings and shapes only */
    layer_lowering lw;   /* inner's */
    bool is_conv;        /* else dense */
    int N, N4, K, Kp;    /* reduction length and its groups of 4; columns and K up to 16 */
    int H, W, C, Ho, Wo; /* conv: input (H, W, C), output (Ho, Wo, K) */
    int Hp, Wp;          /* conv: the padded input (Hp, Wp, C), the input at (pad[0], pad[1]) */
    int Sg;              /* conv: a kernel row's bytes S C rounded up to 4 */
    int N4i;             /* the product's groups of 4: conv R Sg / 4, dense N4 */
    bool is_repacked;    /* conv: Sg > S C: the weights widened per kernel row at each call */
    size_t colsum_bytes; /* the colsum part of the bytes, padded to 64 */
    size_t xq_bytes;     /* per example: the padded quantized input (conv), or row (dense) */
} int8_cfg;

static size_t round64(size_t n) { return (n + 63) & ~(size_t)63; }

static loom_status int8_init(layer *l, loom_error *err) {
    int8_cfg *c = l->cfg;
    c->inner.in = l->in;
    loom_status st = c->inner.ops->init(&c->inner, err);
    if (st)
        return st;
    c->inner.ops->lower(&c->inner, &c->lw);
    c->is_conv = c->lw.kind == LOWER_CONV;
    c->K = c->lw.units;
    if (c->is_conv) {
        c->H = l->in.d[0];
        c->W = l->in.d[1];
        c->C = l->in.d[2];
        c->Ho = c->inner.out.d[0];
        c->Wo = c->inner.out.d[1];
        c->N = c->lw.kh * c->lw.kw * c->C;
    } else {
        c->N = l->in.d[0];
    }
    /* the int32 sum: up to 255 * 127 per product */
    if (c->N > INT8_MAX_REDUCTION)
        return loom_error_set(err, LOOM_ERR_SHAPE,
                              "int8: a reduction of %d values is longer than int32 sums allow "
                              "(%d)",
                              c->N, INT8_MAX_REDUCTION);
    c->N4 = (c->N + 3) / 4;
    c->Kp = (c->K + 15) / 16 * 16;
    l->out = c->inner.out;
    l->n_params = (size_t)c->K;
    l->groups[0] = (param_group){0, (size_t)c->K, GROUP_BIAS, c->N, c->K};
    l->n_groups = 1;
    l->n_state = (size_t)c->K + 2;
    c->colsum_bytes = round64(sizeof(int32_t) * (size_t)c->Kp);
    l->n_bytes = c->colsum_bytes + round64((size_t)c->N4 * c->Kp * 4);
    if (c->is_conv) {
        int hp = (c->Ho - 1) * c->lw.sh + c->lw.kh, wp = (c->Wo - 1) * c->lw.sw + c->lw.kw;
        c->Hp = c->H + c->lw.pad[0] > hp ? c->H + c->lw.pad[0] : hp;
        c->Wp = c->W + c->lw.pad[1] > wp ? c->W + c->lw.pad[1] : wp;
        c->Sg = (c->lw.kw * c->C + 3) / 4 * 4;
        c->N4i = c->lw.kh * c->Sg / 4;
        c->is_repacked = c->Sg != c->lw.kw * c->C;
        c->xq_bytes = (size_t)c->Hp * c->Wp * c->C;
    } else {
        c->N4i = c->N4;
        c->xq_bytes = (size_t)c->N4 * 4;
    }
    /* one more group of 4 bytes, so that the last window's widened reads stay inside */
    l->scratch_per_example = (c->xq_bytes + 3) / 4 + 1;
    /* the combined scales (Kp), the portable path's int32 sums (QGEMM_MAX_CHUNKS, Kp), the
     * offsets (N4i), the widened weights (N4i, Kp, 4) */
    l->scratch_fixed = (size_t)c->Kp * (QGEMM_MAX_CHUNKS + 1) + (size_t)c->N4i +
                       (c->is_repacked ? (size_t)c->N4i * c->Kp : 0) + 16;
    l->flops = c->inner.flops;
    return LOOM_OK;
}

typedef struct {
    const int8_cfg *c;
    const float *x;
    uint8_t *xq;
    float inv;
    int zp;
} quant_job;

/* dense: row b of x to N4 * 4 bytes (the padding zp: its weights are 0) */
static void quant_rows(void *ctx, long lo, long hi, int k) {
    (void)k;
    const quant_job *j = ctx;
    const int8_cfg *c = j->c;
    for (long b = lo; b < hi; b++) {
        const float *x = j->x + (size_t)b * c->N;
        uint8_t *u = j->xq + (size_t)b * c->N4 * 4;
        qgemm_quantize(x, u, (size_t)c->N, j->inv, j->zp);
        for (int n = c->N; n < c->N4 * 4; n++)
            u[n] = (uint8_t)j->zp;
    }
}

/* conv: example b quantized into its padded image (Hp, Wp, C), the border zp */
static void quant_images(void *ctx, long lo, long hi, int k) {
    (void)k;
    const quant_job *j = ctx;
    const int8_cfg *c = j->c;
    int C = c->C;
    int pt = c->lw.pad[0], pl = c->lw.pad[1], Wp = c->Wp;
    size_t row = (size_t)Wp * C, in_row = (size_t)c->W * C;
    uint8_t z = (uint8_t)j->zp;
    for (long b = lo; b < hi; b++) {
        const float *x = j->x + (size_t)b * c->H * in_row;
        uint8_t *xq = j->xq + (size_t)b * c->xq_bytes;
        if (pt > 0)
            memset(xq, z, (size_t)pt * row);
        for (int h = 0; h < c->H; h++) {
            uint8_t *dst = xq + (size_t)(h + pt) * row;
            memset(dst, z, (size_t)pl * C);
            qgemm_quantize(x + h * in_row, dst + (size_t)pl * C, in_row, j->inv, j->zp);
            memset(dst + (size_t)pl * C + in_row, z, row - (size_t)pl * C - in_row);
        }
        if (c->Hp > c->H + pt)
            memset(xq + (size_t)(c->H + pt) * row, z, (size_t)(c->Hp - c->H - pt) * row);
    }
}

/* The stored weights (N4, Kp, 4), rows (r, s, c), widened to (N4i, Kp, 4): kernel row r's S C
 * rows at r Sg, zeros after them. */
static void widen_weights(const int8_cfg *c, const int8_t *w, int8_t *wi) {
    int SC = c->lw.kw * c->C, Kp = c->Kp;
    memset(wi, 0, (size_t)c->N4i * Kp * 4);
    for (int r = 0; r < c->lw.kh; r++)
        for (int j = 0; j < SC; j++) {
            int n = r * SC + j, ni = r * c->Sg + j;
            for (int k = 0; k < c->K; k++)
                wi[((size_t)(ni / 4) * Kp + k) * 4 + ni % 4] =
                    w[((size_t)(n / 4) * Kp + k) * 4 + n % 4];
        }
}

static void int8_forward(layer *l, const fwd_ctx *ctx, const float *x, float *y, int B) {
    (void)ctx;
    const int8_cfg *c = l->cfg;
    const float *sw = l->state, sx = l->state[c->K];
    int zp = (int)l->state[c->K + 1];
    float *scale = l->scratch;
    for (int k = 0; k < c->K; k++)
        scale[k] = sx * sw[k];
    int32_t *work = (int32_t *)(l->scratch + c->Kp);
    int32_t *koff = work + (size_t)c->Kp * QGEMM_MAX_CHUNKS;
    int8_t *wi = (int8_t *)(koff + c->N4i);
    uint8_t *xq = (uint8_t *)(koff + c->N4i + (c->is_repacked ? (size_t)c->N4i * c->Kp : 0) + 16);
    quant_job j = {.c = c, .x = x, .xq = xq, .inv = sx > 0 ? 1.0f / sx : 0.0f, .zp = zp};
    size_t per = c->xq_bytes;
    int nc = par_n_chunks(B, (long)(65536 / (per + 1)) + 1);
    bool is_relu = c->lw.act == ACT_RELU && !c->lw.is_softmax;
    qgemm_args g = {.N4 = c->N4,
                    .K = c->K,
                    .Kp = c->Kp,
                    .lda = (size_t)c->N4 * 4,
                    .koff = koff,
                    .w = (const int8_t *)(l->bytes + c->colsum_bytes),
                    .colsum = (const int32_t *)l->bytes,
                    .zp = zp,
                    .scale = scale,
                    .bias = l->w,
                    .is_relu = is_relu,
                    .y = y,
                    .ldy = (size_t)c->K,
                    .work = work};
    for (int n4 = 0; n4 < c->N4; n4++)
        koff[n4] = 4 * n4;
    if (c->is_conv) {
        par_for(B, nc, quant_images, &j);
        memset(xq + (size_t)B * c->xq_bytes, zp, 4); /* what the last window's widened reads see */
        /* group n4: kernel row n4 / (Sg / 4), 4 bytes at its offset in the window */
        int per_r = c->Sg / 4;
        for (int n4 = 0; n4 < c->N4i; n4++)
            koff[n4] = (n4 / per_r) * c->Wp * c->C + 4 * (n4 % per_r);
        if (c->is_repacked) {
            widen_weights(c, g.w, wi);
            g.w = wi;
        }
        g.N4 = c->N4i;
        g.M = B * c->Ho * c->Wo;
        g.a = xq;
        g.HWo = c->Ho * c->Wo;
        g.Wo = c->Wo;
        g.img = c->xq_bytes;
        g.rs = (size_t)c->lw.sh * c->Wp * c->C;
        g.cs = (size_t)c->lw.sw * c->C;
    } else {
        par_for(B, nc, quant_rows, &j);
        g.M = B;
        g.a = xq;
    }
    qgemm(&g);
    if (!is_relu)
        act_forward(c->lw.act, c->lw.alpha, y, (size_t)B * shape_size(l->out));
}

/* Inference only: no gradient flows through an int8 layer. */
static void int8_backward(layer *l, const float *x, const float *y, float *dy, float *dx, int B) {
    (void)x;
    (void)y;
    (void)dy;
    if (dx)
        memset(dx, 0, sizeof(float) * shape_size(l->in) * (size_t)B);
}

static void int8_describe(const layer *l, char *buf, size_t n) {
    const int8_cfg *c = l->cfg;
    char inner[200];
    c->inner.ops->describe(&c->inner, inner, sizeof inner);
    snprintf(buf, n, "int8 %s", inner);
}

static void int8_destroy(layer *l) {
    int8_cfg *c = l->cfg;
    if (!c)
        return;
    if (c->inner.ops && c->inner.ops->destroy)
        c->inner.ops->destroy(&c->inner);
    else
        free(c->inner.cfg);
    free(c);
}

static const layer_ops int8_ops = {
    .kind = "int8",
    .init = int8_init,
    .forward = int8_forward,
    .backward = int8_backward,
    .describe = int8_describe,
    .destroy = int8_destroy,
};

loom_status dense_parse(layer *l, int argc, char **argv, loom_error *err);
loom_status conv_parse(layer *l, int argc, char **argv, loom_error *err);

loom_status int8_parse(layer *l, int argc, char **argv, loom_error *err) {
    if (argc < 2 || (strcmp(argv[1], "dense") != 0 && strcmp(argv[1], "conv") != 0))
        return loom_error_set(err, LOOM_ERR_FORMAT, "int8: expected 'dense' or 'conv', found '%s'",
                              argc < 2 ? "" : argv[1]);
    int8_cfg *c = calloc(1, sizeof *c);
    if (!c)
        return loom_error_set(err, LOOM_ERR_NOMEM, "int8: out of memory");
    loom_status st = argv[1][0] == 'd' ? dense_parse(&c->inner, argc - 1, argv + 1, err)
                                       : conv_parse(&c->inner, argc - 1, argv + 1, err);
    if (st) {
        free(c);
        return st;
    }
    l->ops = &int8_ops;
    l->cfg = c;
    return LOOM_OK;
}

bool layer_is_int8(const layer *l) { return l->ops == &int8_ops; }

void int8_fill(layer *l, const float *Wf, const float *bias, float sx, int zp) {
    const int8_cfg *c = l->cfg;
    int N = c->N, K = c->K, Kp = c->Kp;
    float *sw = l->state;
    int32_t *colsum = (int32_t *)l->bytes;
    int8_t *wp = (int8_t *)(l->bytes + c->colsum_bytes);
    memset(l->bytes, 0, l->n_bytes);
    for (int k = 0; k < K; k++) {
        float amax = 0.0f;
        for (int n = 0; n < N; n++)
            amax = fmaxf(amax, fabsf(Wf[(size_t)n * K + k]));
        sw[k] = amax / 127.0f;
        int32_t sum = 0;
        for (int n = 0; amax > 0.0f && n < N; n++) {
            float v = nearbyintf(Wf[(size_t)n * K + k] / sw[k]);
            int q = v > 127.0f ? 127 : v < -127.0f ? -127 : (int)v;
            wp[((size_t)(n / 4) * Kp + k) * 4 + n % 4] = (int8_t)q;
            sum += q;
        }
        colsum[k] = sum;
        l->w[k] = bias[k];
    }
    l->state[K] = sx;
    l->state[K + 1] = (float)zp;
}

void int8_shape(const layer *l, int *N, int *K) {
    const int8_cfg *c = l->cfg;
    *N = c->N;
    *K = c->K;
}

void int8_info_of(const layer *l, int8_info *out) {
    const int8_cfg *c = l->cfg;
    out->lw = c->lw;
    out->N = c->N;
    out->K = c->K;
    out->sx = l->state[c->K];
    out->zp = (int)l->state[c->K + 1];
    out->sw = l->state;
    out->bias = l->w;
}

int int8_weight(const layer *l, int n, int k) {
    const int8_cfg *c = l->cfg;
    const int8_t *wp = (const int8_t *)(l->bytes + c->colsum_bytes);
    return wp[((size_t)(n / 4) * c->Kp + k) * 4 + n % 4];
}
