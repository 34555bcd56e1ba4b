/* layer.h - the layer interface. Each kind is one file in src/layers/ that defines one
 * `const layer_ops` table and a parser for its line of the model language.
 * Batches are row-major with the batch first: x (B, in), y (B, out), per-example shapes in
 * l->in / l->out (images channels-last (H, W, C), sequences (T, N), vectors (N)). */
#ifndef LOOM_LAYER_H
#define LOOM_LAYER_H

#include "../core/core.h"

typedef enum {
    GROUP_WEIGHT = 0, /* conv/dense/recurrent kernels: L2 applies */
    GROUP_BIAS,
    GROUP_BN_GAMMA,
    GROUP_BN_BETA,
    GROUP_RECURRENT, /* recurrent kernels: L2 applies */
} group_kind;

typedef struct {
    size_t off, len; /* within the layer's parameters */
    group_kind kind;
    int fan_in, fan_out; /* for initialisation */
} param_group;

#define LAYER_MAX_GROUPS 48 /* a residual block holds its inner layers' groups */

typedef struct {
    bool is_training;
    loom_rng *rng; /* dropout masks; used on the calling thread only */
} fwd_ctx;

typedef struct layer layer;

/* What a door to another system (ONNX, safetensors, generated C) needs to know of a layer,
 * format-neutral: its kind and settings. The door reads the numbers from l->w and l->state in
 * the layout the kind's file states at its top, and maps them to its own. */
typedef enum {
    LOWER_DENSE = 0,     /* w: W (N, K), b (K) */
    LOWER_CONV,          /* w: W (R*S*C, K) rows (r, s, c), b (K) */
    LOWER_MAXPOOL,       /* no padding, floor */
    LOWER_AVGPOOL,       /* no padding, floor */
    LOWER_GLOBALAVGPOOL, /* (H, W, C) -> (C) */
    LOWER_BATCHNORM,     /* w: gamma (C), beta (C); state: running mean (C), variance (C) */
    LOWER_DROPOUT,       /* the identity at inference */
    LOWER_FLATTEN,       /* memory order unchanged: (H, W, C) flattens channels fastest */
    LOWER_ACTIVATION,    /* act, alpha */
    LOWER_STANDARDIZE,   /* state: mean (in), std (in); y = (x - mean) / std */
    LOWER_RNN,           /* w per direction: W_ih (N, G*H), W_hh (H, G*H), b_ih, b_hh (G*H) */
    LOWER_LSTM,          /* as rnn, G = 4 gates in the order i f g o */
    LOWER_GRU,           /* as rnn, G = 3 gates in the order r z n, n's b_hh inside r * (.) */
    LOWER_ROWS,          /* (H, W, C) -> (T = H, W*C), memory order unchanged */
    LOWER_COLUMNS,       /* (H, W, C) -> (T = W, H*C): y[w, h*C + c] = x[h, w, c] */
    LOWER_RESIDUAL,      /* y = act(F(x) + S(x)): F the inner layers, S the identity or the
                          * projection (a conv 1x1 with a stride), both from residual_parts */
} lower_kind;

/* Activation functions shared by dense/conv (fused) and the standalone activation layers. */
typedef enum { ACT_NONE = 0, ACT_RELU, ACT_LEAKY_RELU, ACT_ELU, ACT_TANH, ACT_SIGMOID } act_kind;

typedef struct {
    lower_kind kind;
    act_kind act;    /* dense/conv fused, activation layers; rnn: ACT_TANH or ACT_RELU */
    float alpha;     /* leaky-relu slope / elu alpha */
    bool is_softmax; /* dense: the outputs are logits for the softmax */
    int units;       /* dense/conv K, recurrent H */
    int kh, kw;      /* conv kernel, pool window */
    int sh, sw;      /* strides */
    int pad[4];      /* conv: zero rows above, columns left, rows below, columns right */
    bool is_sequences, is_bidirectional; /* recurrent: output every step; D = 2 directions */
    float eps;                           /* batchnorm */
} layer_lowering;

typedef struct {
    const char *kind; /* "dense", "conv", ... as in the model language */
    /* l->in and the layer's private cfg are set; set l->out, n_params, n_state, groups,
     * scratch_per_example (floats per example kept from forward to backward or used as
     * workspace), scratch_fixed (floats regardless of batch), flops (forward, per example).
     * Shape mismatch: return LOOM_ERR_SHAPE with a message naming the layer. */
    loom_status (*init)(layer *l, loom_error *err);
    /* Initialise l->w (n_params) and l->state (n_state). Default: Glorot-uniform weights,
     * zero biases (when NULL). */
    void (*init_params)(layer *l, loom_rng *rng);
    /* x (B, in) -> y (B, out). l->scratch has scratch_per_example * max_batch + scratch_fixed. */
    void (*forward)(layer *l, const fwd_ctx *ctx, const float *x, float *y, int B);
    /* Given x, y from the last forward and dy = dL/dy, write dx = dL/dx (dx NULL when the layer
     * is first) and ADD dL/dparams into l->dw. dy may be overwritten. */
    void (*backward)(layer *l, const float *x, const float *y, float *dy, float *dx, int B);
    /* The layer's line in the model language, e.g. "conv 32 3x3 same relu". */
    void (*describe)(const layer *l, char *buf, size_t n);
    void (*destroy)(layer *l); /* frees cfg; may be NULL (then free(cfg)) */
    /* The output is the input, element for element (flatten): the model neither runs nor
     * allocates it, passing the input's memory on as the output and dy on as dx. forward and
     * backward are still defined (copies) for callers that run the layer on its own. */
    bool is_view;
    /* May be NULL. True when this pass's output would equal the input (dropout outside
     * training, or at rate 0): the model then passes the input on as for a view, without the
     * copy, and the backward pass after it passes dy on as dx. */
    bool (*is_identity)(const layer *l, bool is_training);
    /* The layer's kind and settings for the doors to other systems (after init). */
    void (*lower)(const layer *l, layer_lowering *out);
} layer_ops;

struct layer {
    const layer_ops *ops;
    void *cfg;          /* kind's private settings */
    loom_shape in, out; /* per-example */
    size_t n_params, n_state;
    param_group groups[LAYER_MAX_GROUPS];
    int n_groups;
    float *w, *dw; /* (n_params) views into the model's buffers */
    float *state;  /* (n_state) view */
    /* int8 layers: their packed weights and column sums, a view into the model's byte buffer
     * (saved with the model, never trained); n_bytes is a multiple of 64, 0 for other kinds */
    size_t n_bytes;
    uint8_t *bytes;
    size_t scratch_per_example, scratch_fixed;
    float *scratch; /* arena view */
    int max_batch;
    double flops; /* forward FLOPs per example */
};

const char *act_name(act_kind a);
bool act_parse(const char *s, act_kind *out);
/* y = f(x) in place over n values (alpha: leaky slope / elu alpha). */
void act_forward(act_kind a, float alpha, float *y, size_t n);
/* conv: the direct (AVX-512) kernels on or off, process-wide (a test hook: tests compare them
 * with the GEMM path; on by default). */
void conv_set_direct(bool on);
/* conv: bf16 products in training (conv2d_bf16.c) on or off for l (a no-op for other kinds);
 * returns whether l is a conv layer bf16 training applies to (3x3, stride 1, even K). */
bool conv_set_bf16(layer *l, bool on);
/* dy *= f'(.) given the activation output y (all supported f have f' expressible in y). */
void act_backward(act_kind a, float alpha, const float *y, float *dy, size_t n);

/* Model-language parsing: a layer line split into words. Each kind provides
 * `loom_status <kind>_parse(layer *l, int argc, char **argv, loom_error *err)` that sets
 * l->ops and l->cfg; the table of kinds lives in src/layers/registry.c. Errors name the word;
 * the caller prefixes "source:line:". */
typedef loom_status (*layer_parse_fn)(layer *l, int argc, char **argv, loom_error *err);
typedef struct {
    const char *word;
    layer_parse_fn parse;
} layer_kind_entry;
extern const layer_kind_entry loom_layer_kinds[];

/* Which convolution kernels this build runs where they apply ("AVX-512 direct kernels" or
 * "im2col + GEMM"): chosen at build time by the compiler's target (-march). */
const char *conv_kernels_describe(void);

/* Helpers for parsers. */
bool parse_int(const char *s, int *out);            /* whole string, decimal */
bool parse_float(const char *s, float *out);        /* whole string */
bool parse_kernel(const char *s, int *kh, int *kw); /* "3x3" or "3" */

/* Residual blocks (src/layers/residual.c). The model language's braces (src/model/model.c) build
 * a block from its inner layers (parsed, not yet initialised; residual_make takes them over, also
 * on error): "proj" forces the 1x1 projection shortcut, which is chosen anyway when the inner
 * layers change the shape; act follows the addition. residual_parts copies the inner layers
 * (at most max) into parts with w, dw and state pointing into the block's, and the projection
 * into *proj (ops NULL for the identity); returns the number of inner layers. */
#define RESIDUAL_MAX_LAYERS 64
#define RESIDUAL_MAX_LAYERS_TEXT "64"
#define RESIDUAL_DESCRIBE_MAX 8192 /* bytes of a block's one-line description */
loom_status residual_make(layer *l, layer *inner, int n, bool is_proj_forced, act_kind act,
                          float alpha, loom_error *err);
int residual_parts(const layer *l, layer *parts, int max, layer *proj);
bool layer_is_residual(const layer *l);
/* The parameters and state of one layer (w, state set): the kind's init_params, or the default
 * (Glorot-uniform weights, unit batchnorm gammas, zeros elsewhere). */
void layer_init_params(layer *l, loom_rng *rng);

/* Glorot-uniform fill of n values with given fans. */
void init_glorot_uniform(float *w, size_t n, int fan_in, int fan_out, loom_rng *rng);
void init_he_normal(float *w, size_t n, int fan_in, loom_rng *rng);
void init_orthogonal(float *w, int rows, int cols, loom_rng *rng);

#endif
