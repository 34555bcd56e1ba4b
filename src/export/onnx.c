/* onnx.c - the door to ONNX: a loom model written as an ONNX model (IR version 8, opset 13)
 * through protobuf-c and ONNX's own schema (onnx.proto, compiled at build time). The graph takes
 * "image" (N, C, H, W) float raw pixels 0..255 and gives "probabilities" (N, classes). Layouts:
 * images NCHW in the graph (loom keeps (H, W, C)), sequences (N, T, F), vectors (N, F); the
 * mapping per layer kind is written out in docs/FORMATS.md, "ONNX". */
#include "../layers/quantized.h"
#include "../model/model.h"

#include "onnx.pb-c.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>

#define ONNX_IR_VERSION 8
#define ONNX_OPSET 13

/* The graph under construction. Every allocation goes through the pool and is freed with it;
 * an allocation that fails jumps back to loom_export_onnx (on_nomem). */
typedef struct {
    void **blocks; /* (n_blocks) owned allocations */
    size_t n_blocks, cap_blocks;
    Onnx__NodeProto **nodes; /* (n_nodes) in the pool */
    size_t n_nodes, cap_nodes;
    Onnx__TensorProto **inits; /* (n_inits) initializers, in the pool */
    size_t n_inits, cap_inits;
    jmp_buf on_nomem;
} graph;

static void *pool_alloc(graph *g, size_t n) {
    if (g->n_blocks == g->cap_blocks) {
        size_t cap = g->cap_blocks ? 2 * g->cap_blocks : 256;
        void **b = realloc(g->blocks, cap * sizeof *b);
        if (!b)
            longjmp(g->on_nomem, 1);
        g->blocks = b;
        g->cap_blocks = cap;
    }
    void *p = calloc(1, n ? n : 1);
    if (!p)
        longjmp(g->on_nomem, 1);
    g->blocks[g->n_blocks++] = p;
    return p;
}

static void pool_free(graph *g) {
    for (size_t i = 0; i < g->n_blocks; i++)
        free(g->blocks[i]);
    free(g->blocks);
    free(g->nodes);
    free(g->inits);
}

/* Appends p to the array *a (*n entries, *cap slots), growing it by realloc. */
static void push(graph *g, void ***a, size_t *n, size_t *cap, void *p) {
    if (*n == *cap) {
        size_t c = *cap ? 2 * *cap : 64;
        void **b = realloc(*a, c * sizeof *b);
        if (!b)
            longjmp(g->on_nomem, 1);
        *a = b;
        *cap = c;
    }
    (*a)[(*n)++] = p;
}

static char *name(graph *g, const char *fmt, ...) {
    char buf[128];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    char *s = pool_alloc(g, strlen(buf) + 1);
    memcpy(s, buf, strlen(buf) + 1);
    return s;
}

/* ---- nodes and their attributes ---- */

/* A node op(in...) -> out; n_in inputs, then n_out outputs, as strings ("" skips an optional
 * output). */
static Onnx__NodeProto *node(graph *g, const char *op, const char *node_name, int n_in, int n_out,
                             ...) {
    Onnx__NodeProto *n = pool_alloc(g, sizeof *n);
    onnx__node_proto__init(n);
    n->op_type = name(g, "%s", op);
    n->name = name(g, "%s", node_name);
    n->n_input = (size_t)n_in;
    n->input = pool_alloc(g, sizeof(char *) * (size_t)n_in);
    n->n_output = (size_t)n_out;
    n->output = pool_alloc(g, sizeof(char *) * (size_t)n_out);
    va_list ap;
    va_start(ap, n_out);
    for (int i = 0; i < n_in; i++)
        n->input[i] = name(g, "%s", va_arg(ap, const char *));
    for (int i = 0; i < n_out; i++)
        n->output[i] = name(g, "%s", va_arg(ap, const char *));
    va_end(ap);
    push(g, (void ***)&g->nodes, &g->n_nodes, &g->cap_nodes, n);
    return n;
}

static Onnx__AttributeProto *attr(graph *g, Onnx__NodeProto *n, const char *key,
                                  Onnx__AttributeProto__AttributeType type) {
    Onnx__AttributeProto *a = pool_alloc(g, sizeof *a);
    onnx__attribute_proto__init(a);
    a->name = name(g, "%s", key);
    a->has_type = true;
    a->type = type;
    Onnx__AttributeProto **list = pool_alloc(g, sizeof *list * (n->n_attribute + 1));
    if (n->n_attribute)
        memcpy(list, n->attribute, sizeof *list * n->n_attribute);
    list[n->n_attribute++] = a;
    n->attribute = list;
    return a;
}

static void attr_int(graph *g, Onnx__NodeProto *n, const char *key, int64_t v) {
    Onnx__AttributeProto *a = attr(g, n, key, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT);
    a->has_i = true;
    a->i = v;
}

static void attr_float(graph *g, Onnx__NodeProto *n, const char *key, float v) {
    Onnx__AttributeProto *a = attr(g, n, key, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT);
    a->has_f = true;
    a->f = v;
}

static void attr_string(graph *g, Onnx__NodeProto *n, const char *key, const char *v) {
    Onnx__AttributeProto *a = attr(g, n, key, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRING);
    a->has_s = true;
    a->s.len = strlen(v);
    a->s.data = (uint8_t *)name(g, "%s", v);
}

static void attr_strings(graph *g, Onnx__NodeProto *n, const char *key, int count, const char *v) {
    Onnx__AttributeProto *a = attr(g, n, key, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRINGS);
    a->n_strings = (size_t)count;
    a->strings = pool_alloc(g, sizeof *a->strings * (size_t)count);
    for (int i = 0; i < count; i++)
        a->strings[i] = (ProtobufCBinaryData){strlen(v), (uint8_t *)name(g, "%s", v)};
}

static void attr_ints(graph *g, Onnx__NodeProto *n, const char *key, int count, const int *v) {
    Onnx__AttributeProto *a = attr(g, n, key, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS);
    a->n_ints = (size_t)count;
    a->ints = pool_alloc(g, sizeof *a->ints * (size_t)count);
    for (int i = 0; i < count; i++)
        a->ints[i] = v[i];
}

/* ---- initializers: raw little-endian data ---- */

static Onnx__TensorProto *tensor(graph *g, const char *tname, int type, int rank, const int *dims,
                                 size_t n_bytes) {
    Onnx__TensorProto *t = pool_alloc(g, sizeof *t);
    onnx__tensor_proto__init(t);
    t->name = name(g, "%s", tname);
    t->has_data_type = true;
    t->data_type = type;
    t->n_dims = (size_t)rank;
    t->dims = pool_alloc(g, sizeof *t->dims * (size_t)(rank ? rank : 1));
    for (int i = 0; i < rank; i++)
        t->dims[i] = dims[i];
    t->has_raw_data = true;
    t->raw_data.len = n_bytes;
    t->raw_data.data = pool_alloc(g, n_bytes);
    push(g, (void ***)&g->inits, &g->n_inits, &g->cap_inits, t);
    return t;
}

/* A float initializer of the given dims; returns its data (to fill) as floats' bytes. */
static uint8_t *init_f32(graph *g, const char *tname, int rank, const int *dims) {
    size_t n = 1;
    for (int i = 0; i < rank; i++)
        n *= (size_t)dims[i];
    return tensor(g, tname, ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, rank, dims, 4 * n)->raw_data.data;
}

static void put_f32(uint8_t *raw, size_t i, float v) {
    uint32_t u;
    memcpy(&u, &v, 4);
    for (int k = 0; k < 4; k++)
        raw[4 * i + (size_t)k] = (uint8_t)(u >> (8 * k));
}

/* A 1-D int64 initializer (Reshape's target shape). */
static void init_i64(graph *g, const char *tname, int n, const int64_t *v) {
    uint8_t *raw =
        tensor(g, tname, ONNX__TENSOR_PROTO__DATA_TYPE__INT64, 1, &n, 8 * (size_t)n)->raw_data.data;
    for (int i = 0; i < n; i++)
        for (int k = 0; k < 8; k++)
            raw[8 * i + k] = (uint8_t)((uint64_t)v[i] >> (8 * k));
}

/* A scalar uint8 initializer (a zero point). */
static void init_u8(graph *g, const char *tname, uint8_t v) {
    tensor(g, tname, ONNX__TENSOR_PROTO__DATA_TYPE__UINT8, 0, NULL, 1)->raw_data.data[0] = v;
}

/* ---- lowering, layer by layer ---- */

/* Names of layer i's values: "l<i>_<what>", inside residual blocks "l<i>.<j>..._<what>" (sub
 * holds ".<j>..."). The current value is in *cur. */
typedef struct {
    graph *g;
    int i;
    char sub[96];
    char *cur;
} emit;

static char *val(emit *e, const char *what) { return name(e->g, "l%d%s_%s", e->i, e->sub, what); }

/* cur = op(cur) with a fresh output named l<i>_<what>; returns the node. */
static Onnx__NodeProto *unary(emit *e, const char *op, const char *what) {
    char *y = val(e, what);
    Onnx__NodeProto *n = node(e->g, op, y, 1, 1, e->cur, y);
    e->cur = y;
    return n;
}

static void transpose(emit *e, const char *what, int rank, const int *perm) {
    attr_ints(e->g, unary(e, "Transpose", what), "perm", rank, perm);
}

/* cur reshaped to (batch, dims...): Reshape with 0 for the batch (copied from the input). */
static void reshape(emit *e, const char *what, int rank, const int *dims) {
    int64_t shape[4] = {0};
    for (int k = 0; k < rank; k++)
        shape[k + 1] = dims[k];
    char *s = val(e, "shape"), *y = val(e, what);
    init_i64(e->g, s, rank + 1, shape);
    node(e->g, "Reshape", y, 2, 1, e->cur, s, y);
    e->cur = y;
}

/* cur = op(cur, constant) for an elementwise op with a per-example constant t. */
static void binary(emit *e, const char *op, const char *what, const char *t) {
    char *y = val(e, what);
    node(e->g, op, y, 2, 1, e->cur, t, y);
    e->cur = y;
}

static void activation(emit *e, act_kind act, float alpha) {
    switch (act) {
    case ACT_NONE: break;
    case ACT_RELU: unary(e, "Relu", "relu"); break;
    case ACT_LEAKY_RELU:
        attr_float(e->g, unary(e, "LeakyRelu", "leaky_relu"), "alpha", alpha);
        break;
    case ACT_ELU: attr_float(e->g, unary(e, "Elu", "elu"), "alpha", alpha); break;
    case ACT_TANH: unary(e, "Tanh", "tanh"); break;
    case ACT_SIGMOID: unary(e, "Sigmoid", "sigmoid"); break;
    }
}

/* A per-example constant of shape s in the graph's layout of it: images (H, W, C) become
 * (C, H, W), the rest stays. v (shape_size(s)) in loom's layout. */
static char *per_example(emit *e, const char *what, loom_shape s, const float *v) {
    char *t = val(e, what);
    if (s.rank == 3) {
        int H = s.d[0], W = s.d[1], C = s.d[2], dims[3] = {C, H, W};
        uint8_t *raw = init_f32(e->g, t, 3, dims);
        for (int h = 0; h < H; h++)
            for (int w = 0; w < W; w++)
                for (int c = 0; c < C; c++)
                    put_f32(raw, ((size_t)c * H + h) * W + w, v[((size_t)h * W + w) * C + c]);
    } else {
        uint8_t *raw = init_f32(e->g, t, s.rank, s.d);
        for (size_t j = 0; j < shape_size(s); j++)
            put_f32(raw, j, v[j]);
    }
    return t;
}

static void lower_dense(emit *e, const layer *l, const layer_lowering *lw) {
    int N = l->in.d[0], K = lw->units, dims[2] = {N, K};
    char *wn = val(e, "weight"), *bn = val(e, "bias"), *y = val(e, "dense");
    uint8_t *W = init_f32(e->g, wn, 2, dims), *b = init_f32(e->g, bn, 1, &K);
    for (size_t j = 0; j < (size_t)N * K; j++) /* (N, K) as loom keeps it: Gemm's B */
        put_f32(W, j, l->w[j]);
    for (int k = 0; k < K; k++)
        put_f32(b, (size_t)k, l->w[(size_t)N * K + k]);
    node(e->g, "Gemm", y, 3, 1, e->cur, wn, bn, y);
    e->cur = y;
    if (!lw->is_softmax) /* the softmax closes the graph */
        activation(e, lw->act, lw->alpha);
}

static void lower_conv(emit *e, const layer *l, const layer_lowering *lw) {
    int C = l->in.d[2], K = lw->units, R = lw->kh, S = lw->kw;
    int dims[4] = {K, C, R, S};
    char *wn = val(e, "weight"), *bn = val(e, "bias"), *y = val(e, "conv");
    uint8_t *W = init_f32(e->g, wn, 4, dims), *b = init_f32(e->g, bn, 1, &K);
    /* ONNX W[k][c][r][s] = loom W[(r S + s) C + c][k] */
    for (int k = 0; k < K; k++)
        for (int c = 0; c < C; c++)
            for (int r = 0; r < R; r++)
                for (int s = 0; s < S; s++)
                    put_f32(W, (((size_t)k * C + c) * R + r) * S + s,
                            l->w[(((size_t)r * S + s) * C + c) * K + k]);
    for (int k = 0; k < K; k++)
        put_f32(b, (size_t)k, l->w[(size_t)R * S * C * K + k]);
    Onnx__NodeProto *n = node(e->g, "Conv", y, 3, 1, e->cur, wn, bn, y);
    int kernel[2] = {R, S}, strides[2] = {lw->sh, lw->sw};
    attr_ints(e->g, n, "kernel_shape", 2, kernel);
    attr_ints(e->g, n, "strides", 2, strides);
    attr_ints(e->g, n, "pads", 4, lw->pad); /* top, left, bottom, right */
    e->cur = y;
    activation(e, lw->act, lw->alpha);
}

/* An int8 layer in ONNX's integer operators, bit for bit as loom computes it (docs/FORMATS.md):
 * the input x * (1 / sx) (Mul), clipped to -127..127 when the zero point is 128 (Clip),
 * QuantizeLinear with scale 1 (round half to even, saturate to 0..255) and loom's zero point;
 * ConvInteger or MatMulInteger with the weights as uint8 q + 128 around the zero point 128 (the
 * uint8 x uint8 form every onnxruntime runs; the int32 sum is the same); then Cast to float,
 * Mul by sx sw[k] and Add the bias (three roundings, as loom's epilogue), and the activation. */
static void lower_int8(emit *e, const layer *l) {
    int8_info q;
    int8_info_of(l, &q);
    bool is_conv = q.lw.kind == LOWER_CONV;
    int K = q.K;
    char *inv = val(e, "inv_scale");
    put_f32(init_f32(e->g, inv, 0, NULL), 0, q.sx > 0 ? 1.0f / q.sx : 0.0f);
    binary(e, "Mul", "scaled", inv);
    if (q.zp) {
        char *lo = val(e, "min"), *hi = val(e, "max"), *y = val(e, "clipped");
        put_f32(init_f32(e->g, lo, 0, NULL), 0, -127.0f);
        put_f32(init_f32(e->g, hi, 0, NULL), 0, 127.0f);
        node(e->g, "Clip", y, 3, 1, e->cur, lo, hi, y);
        e->cur = y;
    }
    char *one = val(e, "unit_scale"), *xzp = val(e, "x_zero_point");
    char *wzp = val(e, "w_zero_point"), *u = val(e, "quantized");
    put_f32(init_f32(e->g, one, 0, NULL), 0, 1.0f);
    init_u8(e->g, xzp, (uint8_t)q.zp);
    init_u8(e->g, wzp, 128);
    node(e->g, "QuantizeLinear", u, 3, 1, e->cur, one, xzp, u);
    char *wn = val(e, "weight_q"), *acc = val(e, "acc");
    if (is_conv) {
        int C = l->in.d[2], R = q.lw.kh, S = q.lw.kw, dims[4] = {K, C, R, S};
        uint8_t *W =
            tensor(e->g, wn, ONNX__TENSOR_PROTO__DATA_TYPE__UINT8, 4, dims, (size_t)K * C * R * S)
                ->raw_data.data;
        /* ONNX W[k][c][r][s] = q[(r S + s) C + c][k] */
        for (int k = 0; k < K; k++)
            for (int c = 0; c < C; c++)
                for (int r = 0; r < R; r++)
                    for (int s = 0; s < S; s++)
                        W[(((size_t)k * C + c) * R + r) * S + s] =
                            (uint8_t)(int8_weight(l, (r * S + s) * C + c, k) + 128);
        Onnx__NodeProto *n = node(e->g, "ConvInteger", acc, 4, 1, u, wn, xzp, wzp, acc);
        int kernel[2] = {R, S}, strides[2] = {q.lw.sh, q.lw.sw};
        attr_ints(e->g, n, "kernel_shape", 2, kernel);
        attr_ints(e->g, n, "strides", 2, strides);
        attr_ints(e->g, n, "pads", 4, q.lw.pad);
    } else {
        int dims[2] = {q.N, K};
        uint8_t *W =
            tensor(e->g, wn, ONNX__TENSOR_PROTO__DATA_TYPE__UINT8, 2, dims, (size_t)q.N * K)
                ->raw_data.data;
        for (int n = 0; n < q.N; n++)
            for (int k = 0; k < K; k++)
                W[(size_t)n * K + k] = (uint8_t)(int8_weight(l, n, k) + 128);
        node(e->g, "MatMulInteger", acc, 4, 1, u, wn, xzp, wzp, acc);
    }
    e->cur = acc;
    attr_int(e->g, unary(e, "Cast", "acc_float"), "to", ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT);
    int dims[3] = {K, 1, 1};
    char *sn = val(e, "scale"), *bn = val(e, "bias");
    uint8_t *sc = init_f32(e->g, sn, is_conv ? 3 : 1, dims);
    uint8_t *b = init_f32(e->g, bn, is_conv ? 3 : 1, dims);
    for (int k = 0; k < K; k++) {
        put_f32(sc, (size_t)k, q.sx * q.sw[k]);
        put_f32(b, (size_t)k, q.bias[k]);
    }
    binary(e, "Mul", "rescaled", sn);
    binary(e, "Add", is_conv ? "conv" : "dense", bn);
    if (is_conv || !q.lw.is_softmax) /* the softmax closes the graph */
        activation(e, q.lw.act, q.lw.alpha);
}

static void lower_pool(emit *e, const layer_lowering *lw) {
    if (lw->kind == LOWER_GLOBALAVGPOOL) {
        unary(e, "GlobalAveragePool", "gap");
        attr_int(e->g, unary(e, "Flatten", "flat"), "axis", 1);
        return;
    }
    bool is_max = lw->kind == LOWER_MAXPOOL;
    Onnx__NodeProto *n =
        unary(e, is_max ? "MaxPool" : "AveragePool", is_max ? "maxpool" : "avgpool");
    int kernel[2] = {lw->kh, lw->kw}, strides[2] = {lw->sh, lw->sw};
    attr_ints(e->g, n, "kernel_shape", 2, kernel);
    attr_ints(e->g, n, "strides", 2, strides);
}

/* BatchNormalization (inference form) with gamma, beta, the running mean and variance and eps as
 * loom keeps them, so that an import gives them back bit for bit. ONNX normalises axis 1: an NCHW
 * image's channels and a vector's features as loom does; a sequence (N, T, F) is transposed to
 * (N, F, T) around it, since loom normalises its last axis. */
static void lower_batchnorm(emit *e, const layer *l, const layer_lowering *lw) {
    int C = l->in.d[l->in.rank - 1];
    const float *src[4] = {l->w, l->w + C, l->state, l->state + C};
    const char *what[4] = {"gamma", "beta", "mean", "var"};
    char *names[4];
    for (int i = 0; i < 4; i++) {
        names[i] = val(e, what[i]);
        uint8_t *raw = init_f32(e->g, names[i], 1, &C);
        for (int k = 0; k < C; k++)
            put_f32(raw, (size_t)k, src[i][k]);
    }
    bool is_seq = l->in.rank == 2;
    if (is_seq)
        transpose(e, "nft", 3, (const int[]){0, 2, 1});
    char *y = val(e, "batchnorm");
    Onnx__NodeProto *n = node(e->g, "BatchNormalization", y, 5, 1, e->cur, names[0], names[1],
                              names[2], names[3], y);
    attr_float(e->g, n, "epsilon", lw->eps);
    e->cur = y;
    if (is_seq)
        transpose(e, "ntf", 3, (const int[]){0, 2, 1});
}

/* To (batch, flattened) in loom's order: an NCHW image goes back to NHWC first. */
static void lower_flatten(emit *e, const layer *l) {
    if (l->in.rank == 1)
        return;
    if (l->in.rank == 3)
        transpose(e, "nhwc", 4, (const int[]){0, 2, 3, 1});
    attr_int(e->g, unary(e, "Flatten", "flat"), "axis", 1);
}

static void lower_standardize(emit *e, const layer *l) {
    size_t D = shape_size(l->in);
    binary(e, "Sub", "centred", per_example(e, "mean", l->in, l->state));
    binary(e, "Div", "standardized", per_example(e, "std", l->in, l->state + D));
}

/* rows: (N, C, H, W) -> NHWC -> (N, H, W*C); columns: -> (N, W, H, C) -> (N, W, H*C). */
static void lower_sequence(emit *e, const layer *l, bool is_columns) {
    int H = l->in.d[0], W = l->in.d[1], C = l->in.d[2];
    if (is_columns) {
        transpose(e, "nwhc", 4, (const int[]){0, 3, 2, 1});
        reshape(e, "columns", 2, (const int[]){W, H * C});
    } else {
        transpose(e, "nhwc", 4, (const int[]){0, 2, 3, 1});
        reshape(e, "rows", 2, (const int[]){H, W * C});
    }
}

/* rnn, lstm, gru over x (N, T, F): transposed to ONNX's (T, N, F); W (D, G*H, F), R (D, G*H, H),
 * B (D, 2*G*H) in ONNX's gate order (lstm i o f c, gru z r h) from loom's (lstm i f g o, gru
 * r z n) kept (F, G*H) as Keras does; the output Y (T, D, N, H) or Y_h (D, N, H) back to
 * (N, T, D*H) or (N, D*H), the forward direction's H values first. */
static void lower_recurrent(emit *e, const layer *l, const layer_lowering *lw) {
    static const int rnn_gates[] = {0}, lstm_gates[] = {0, 3, 1, 2}, gru_gates[] = {1, 0, 2};
    const int *loom_gate = lw->kind == LOWER_LSTM  ? lstm_gates
                           : lw->kind == LOWER_GRU ? gru_gates
                                                   : rnn_gates; /* onnx gate -> loom gate */
    int G = lw->kind == LOWER_LSTM ? 4 : lw->kind == LOWER_GRU ? 3 : 1;
    int T = l->in.d[0], F = l->in.d[1], H = lw->units, GH = G * H, D = lw->is_bidirectional ? 2 : 1;
    char *wn = val(e, "W"), *rn = val(e, "R"), *bn = val(e, "B");
    uint8_t *W = init_f32(e->g, wn, 3, (const int[]){D, GH, F});
    uint8_t *R = init_f32(e->g, rn, 3, (const int[]){D, GH, H});
    uint8_t *B = init_f32(e->g, bn, 2, (const int[]){D, 2 * GH});
    for (int d = 0; d < D; d++) {
        /* loom's direction d: W_ih (F, GH), W_hh (H, GH), b_ih (GH), b_hh (GH) */
        const float *wih = l->w + (size_t)d * ((size_t)GH * (F + H) + 2 * (size_t)GH);
        const float *whh = wih + (size_t)F * GH, *bih = whh + (size_t)H * GH, *bhh = bih + GH;
        for (int go = 0; go < G; go++) {
            int gl = loom_gate[go];
            for (int j = 0; j < H; j++) {
                size_t row = (size_t)d * GH + (size_t)go * H + j, col = (size_t)gl * H + j;
                for (int f = 0; f < F; f++)
                    put_f32(W, row * F + f, wih[(size_t)f * GH + col]);
                for (int h = 0; h < H; h++)
                    put_f32(R, row * H + h, whh[(size_t)h * GH + col]);
                put_f32(B, (size_t)d * 2 * GH + (size_t)go * H + j, bih[col]);
                put_f32(B, (size_t)d * 2 * GH + GH + (size_t)go * H + j, bhh[col]);
            }
        }
    }
    transpose(e, "tnf", 3, (const int[]){1, 0, 2});
    const char *op = lw->kind == LOWER_LSTM ? "LSTM" : lw->kind == LOWER_GRU ? "GRU" : "RNN";
    char *y = val(e, "Y"), *yh = val(e, "Y_h");
    Onnx__NodeProto *n = node(e->g, op, val(e, op), 4, 2, e->cur, wn, rn, bn,
                              lw->is_sequences ? y : "", lw->is_sequences ? "" : yh);
    attr_int(e->g, n, "hidden_size", H);
    attr_string(e->g, n, "direction", D == 2 ? "bidirectional" : "forward");
    if (lw->kind == LOWER_GRU)
        attr_int(e->g, n, "linear_before_reset", 1);
    if (lw->kind == LOWER_RNN)
        attr_strings(e->g, n, "activations", D, lw->act == ACT_RELU ? "Relu" : "Tanh");
    if (lw->is_sequences) {
        e->cur = y;
        transpose(e, "ntdh", 4, (const int[]){2, 0, 1, 3});
        reshape(e, "seq", 2, (const int[]){T, D * H});
    } else {
        e->cur = yh;
        transpose(e, "ndh", 3, (const int[]){1, 0, 2});
        reshape(e, "last", 1, (const int[]){D * H});
    }
}

/* ---- the model ---- */

static Onnx__ValueInfoProto *value_info(graph *g, const char *vname, int rank, const int *dims) {
    Onnx__ValueInfoProto *v = pool_alloc(g, sizeof *v);
    Onnx__TypeProto *t = pool_alloc(g, sizeof *t);
    Onnx__TypeProto__Tensor *tt = pool_alloc(g, sizeof *tt);
    Onnx__TensorShapeProto *s = pool_alloc(g, sizeof *s);
    onnx__value_info_proto__init(v);
    onnx__type_proto__init(t);
    onnx__type_proto__tensor__init(tt);
    onnx__tensor_shape_proto__init(s);
    s->n_dim = (size_t)rank + 1;
    s->dim = pool_alloc(g, sizeof *s->dim * s->n_dim);
    for (int i = 0; i <= rank; i++) {
        Onnx__TensorShapeProto__Dimension *d = pool_alloc(g, sizeof *d);
        onnx__tensor_shape_proto__dimension__init(d);
        if (i == 0) { /* the batch: any size */
            d->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM;
            d->dim_param = name(g, "N");
        } else {
            d->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
            d->dim_value = dims[i - 1];
        }
        s->dim[i] = d;
    }
    tt->has_elem_type = true;
    tt->elem_type = ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT;
    tt->shape = s;
    t->value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE;
    t->tensor_type = tt;
    v->name = name(g, "%s", vname);
    v->type = t;
    return v;
}

static Onnx__StringStringEntryProto *meta(graph *g, const char *key, const char *value) {
    Onnx__StringStringEntryProto *p = pool_alloc(g, sizeof *p);
    onnx__string_string_entry_proto__init(p);
    p->key = name(g, "%s", key);
    p->value = pool_alloc(g, strlen(value) + 1);
    memcpy(p->value, value, strlen(value) + 1);
    return p;
}

/* The class names as a JSON array of strings, malloc'd (NULL when out of memory). */
static char *class_names_json(const loom_model *m) {
    cJSON *a = cJSON_CreateArray();
    char buf[16];
    for (int k = 0; a && k < loom_model_n_outputs(m); k++) {
        cJSON *s = cJSON_CreateString(loom_model_class_name(m, k, buf));
        if (!s || !cJSON_AddItemToArray(a, s)) {
            cJSON_Delete(s);
            cJSON_Delete(a);
            return NULL;
        }
    }
    char *text = a ? cJSON_PrintUnformatted(a) : NULL;
    cJSON_Delete(a);
    return text;
}

/* Layer l after e->cur; false when it (or a layer inside it) has no lowering. A residual
 * block: its inner layers from the block's input (their values named l<i>.<j>_...), the
 * shortcut from that same input (the projection's Conv as l<i>.proj_...), then Add and the
 * activation. */
static bool lower_layer(emit *e, const layer *l) {
    layer_lowering lw;
    if (layer_is_int8(l)) {
        lower_int8(e, l);
        return true;
    }
    if (!l->ops->lower)
        return false;
    l->ops->lower(l, &lw);
    switch (lw.kind) {
    case LOWER_DENSE: lower_dense(e, l, &lw); break;
    case LOWER_CONV: lower_conv(e, l, &lw); break;
    case LOWER_MAXPOOL:
    case LOWER_AVGPOOL:
    case LOWER_GLOBALAVGPOOL: lower_pool(e, &lw); break;
    case LOWER_BATCHNORM: lower_batchnorm(e, l, &lw); break;
    case LOWER_DROPOUT: break; /* the identity at inference */
    case LOWER_FLATTEN: lower_flatten(e, l); break;
    case LOWER_ACTIVATION: activation(e, lw.act, lw.alpha); break;
    case LOWER_STANDARDIZE: lower_standardize(e, l); break;
    case LOWER_RNN:
    case LOWER_LSTM:
    case LOWER_GRU: lower_recurrent(e, l, &lw); break;
    case LOWER_ROWS:
    case LOWER_COLUMNS: lower_sequence(e, l, lw.kind == LOWER_COLUMNS); break;
    case LOWER_RESIDUAL: {
        layer *parts = pool_alloc(e->g, sizeof(layer) * RESIDUAL_MAX_LAYERS), proj;
        int n = residual_parts(l, parts, RESIDUAL_MAX_LAYERS, &proj);
        char *x = e->cur, sub[sizeof e->sub];
        memcpy(sub, e->sub, sizeof sub);
        size_t len = strlen(sub);
        for (int j = 0; j < n; j++) {
            snprintf(e->sub + len, sizeof e->sub - len, ".%d", j + 1);
            if (!lower_layer(e, &parts[j]))
                return false;
        }
        char *fx = e->cur, *sx = x;
        if (proj.ops) {
            snprintf(e->sub + len, sizeof e->sub - len, ".proj");
            e->cur = x;
            if (!lower_layer(e, &proj))
                return false;
            sx = e->cur;
        }
        memcpy(e->sub, sub, sizeof sub);
        char *y = val(e, "add");
        node(e->g, "Add", y, 2, 1, fx, sx, y);
        e->cur = y;
        activation(e, lw.act, lw.alpha);
        break;
    }
    }
    return true;
}

/* Builds the graph into g and model (all of it in g's pool); classes: the class names' JSON.
 * Returns LOOM_ERR_ARG with a message naming the first layer that has no ONNX lowering. */
static loom_status build(graph *g, const loom_model *m, const char *classes,
                         Onnx__ModelProto *model, Onnx__GraphProto *gp, loom_error *err) {
    int H, W, C;
    loom_model_input_shape(m, &H, &W, &C);
    emit e = {.g = g, .i = 0, .cur = name(g, "image")};
    /* raw pixels to loom's pixel/255 (a correctly rounded division, as loom_batch_fill) */
    char *scale = name(g, "pixel_scale");
    put_f32(init_f32(g, scale, 0, NULL), 0, 255.0f);
    binary(&e, "Div", "pixels", scale);
    for (int i = 0; i < m->n_layers; i++) {
        e.i = i + 1;
        e.sub[0] = '\0';
        if (!lower_layer(&e, &m->layers[i])) {
            char desc[128];
            model_layer_name(m, i, desc, sizeof desc);
            return loom_error_set(err, LOOM_ERR_ARG, "onnx: %s has no ONNX form", desc);
        }
    }
    const layer *last = &m->layers[m->n_layers - 1];
    if (last->out.rank != 1)
        return loom_error_set(err, LOOM_ERR_ARG, "onnx: the model's output is not a vector");
    int K = last->out.d[0];
    Onnx__NodeProto *sm = node(g, "Softmax", "probabilities", 1, 1, e.cur, "probabilities");
    attr_int(g, sm, "axis", -1);

    gp->name = name(g, "loom");
    gp->n_node = g->n_nodes;
    gp->node = g->nodes;
    gp->n_initializer = g->n_inits;
    gp->initializer = g->inits;
    gp->n_input = 1;
    gp->input = pool_alloc(g, sizeof *gp->input);
    gp->input[0] = value_info(g, "image", 3, (const int[]){C, H, W});
    gp->n_output = 1;
    gp->output = pool_alloc(g, sizeof *gp->output);
    gp->output[0] = value_info(g, "probabilities", 1, &K);

    Onnx__OperatorSetIdProto *ops = pool_alloc(g, sizeof *ops);
    onnx__operator_set_id_proto__init(ops);
    ops->domain = name(g, "");
    ops->has_version = true;
    ops->version = ONNX_OPSET;
    model->has_ir_version = true;
    model->ir_version = ONNX_IR_VERSION;
    model->n_opset_import = 1;
    model->opset_import = pool_alloc(g, sizeof *model->opset_import);
    model->opset_import[0] = ops;
    model->producer_name = name(g, "loom");
    model->producer_version = name(g, "%s", LOOM_VERSION);
    model->graph = gp;
    model->n_metadata_props = 3;
    model->metadata_props = pool_alloc(g, sizeof *model->metadata_props * 3);
    model->metadata_props[0] = meta(g, "class_names", classes);
    model->metadata_props[1] = meta(g, "loom_version", LOOM_VERSION);
    model->metadata_props[2] = meta(g, "loom_model", m->text);
    return LOOM_OK;
}

/* build, with the pool's out-of-memory jump landing here: nothing of this function's own changes
 * after setjmp, so nothing is lost by the jump (g is the caller's). */
static loom_status build_or_nomem(graph *g, const loom_model *m, const char *classes,
                                  Onnx__ModelProto *model, Onnx__GraphProto *gp, loom_error *err) {
    if (setjmp(g->on_nomem))
        return loom_error_set(err, LOOM_ERR_NOMEM, "onnx: out of memory");
    return build(g, m, classes, model, gp, err);
}

loom_status loom_export_onnx(const loom_model *m, const char *path, loom_error *err) {
    if (!m || !path)
        return loom_error_set(err, LOOM_ERR_ARG, "onnx: NULL argument");
    graph g = {0};
    Onnx__ModelProto model;
    Onnx__GraphProto gp;
    onnx__model_proto__init(&model);
    onnx__graph_proto__init(&gp);
    uint8_t *buf = NULL;
    char *classes = class_names_json(m);
    loom_status st = classes ? build_or_nomem(&g, m, classes, &model, &gp, err)
                             : loom_error_set(err, LOOM_ERR_NOMEM, "onnx: out of memory");
    if (st)
        goto done;
    size_t len = onnx__model_proto__get_packed_size(&model);
    buf = malloc(len ? len : 1);
    if (!buf) {
        st = loom_error_set(err, LOOM_ERR_NOMEM, "onnx: out of memory (%zu bytes)", len);
        goto done;
    }
    onnx__model_proto__pack(&model, buf);
    st = loom_file_write_atomic(path, buf, len, err);
done:
    free(buf);
    cJSON_free(classes);
    pool_free(&g);
    return st;
}
