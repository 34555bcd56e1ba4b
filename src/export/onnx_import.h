/* onnx_import.h - what the ONNX import's three files share (internal): the walk's state, the
 * values beside the chain, and the helpers and per-op handlers. onnx_import.c decodes the file,
 * walks the nodes and builds the loom model; onnx_import_layers.c turns the ops that change
 * layouts or carry numbers into loom layers. */
#ifndef LOOM_ONNX_IMPORT_H
#define LOOM_ONNX_IMPORT_H

#include "../model/model.h"

#include "onnx.pb-c.h"

#define IMP_MAX_NODES 10000
#define IMP_MAX_RANK 8
#define IMP_MAX_DIM 65536
#define IMP_MAX_INPUT (1 << 22) /* values per example: 2048 x 2048 images, far above the need */

/* ---- values: constants, zeros and shape arithmetic beside the chain ---- */

typedef enum { V_TENSOR = 0, V_ZEROS, V_SIDE } vkind;

typedef struct {
    const char *name;
    vkind kind;
    const Onnx__TensorProto *t; /* V_TENSOR: checked by check_tensor */
    size_t n;                   /* V_TENSOR: number of values */
} cval;

/* The forms of the current value: its ONNX layout against loom's shape sh. */
typedef enum {
    F_IMG,  /* (N, C, H, W), sh (H, W, C) */
    F_NHWC, /* (N, H, W, C): a flatten or rows must follow */
    F_NWHC, /* (N, W, H, C): columns must follow */
    F_GAP,  /* (N, C, 1, 1) after GlobalAveragePool, sh (C) */
    F_VEC,  /* (N, F), sh (F); features in (c, h, w) order of img when img.rank == 3 */
    F_SEQ,  /* (N, T, F), sh (T, F) */
    F_TNF,  /* (T, N, F) */
    F_NFT,  /* (N, F, T) */
    F_RNN,  /* a recurrent node's outputs: Y (T, D, N, H) is cur, Y_h (D, N, H) cur_h */
    F_Y,    /* (T, D, N, H) */
    F_YH,   /* (D, N, H) */
    F_YT,   /* (N, T, D, H) */
    F_TNDH, /* (T, N, D, H) */
    F_NDH,  /* (N, D, H) */
} form;

typedef struct {
    layer_lowering lw;
    bool has_momentum; /* batchnorm */
    float momentum;
    float *w, *s; /* params and state in loom's layout, owned */
    size_t n_w, n_s;
} imp_layer;

typedef struct {
    const char *src;
    loom_error *err;
    cval *vals;
    size_t n_vals, cap_vals;
    imp_layer layers[MODEL_MAX_LAYERS];
    int n_layers;
    const char *cur, *cur_h;
    form f;
    loom_shape sh, img;
    int T, D, H; /* recurrent forms */
    int fusable; /* the dense/conv layer whose direct output cur is, or -1 */
    int bias_of; /* a MatMul's dense layer waiting for its Add, or -1 */
    bool is_scaled, has_chain_op, is_done;
    const cval *mean; /* a Sub's constant waiting for its Div */
    const Onnx__NodeProto *node;
    int node_i;
} imp;

static inline int imp_int_max(int a, int b) { return a > b ? a : b; }

/* Input i of n, "" when absent. */
static inline const char *imp_in_at(const Onnx__NodeProto *n, size_t i) {
    return i < n->n_input && n->input[i] ? n->input[i] : "";
}

/* Helpers (onnx_import.c). imp_fail: one line "SRC: node 'NAME' (Op): message", LOOM_ERR_FORMAT. */
loom_status imp_fail(imp *s, const char *fmt, ...);
loom_status imp_nomem(imp *s);
float imp_f32(const Onnx__TensorProto *t, size_t i);
int64_t imp_i64(const Onnx__TensorProto *t, size_t i);
const cval *imp_find(const imp *s, const char *name);
const cval *imp_fconst(imp *s, const char *name);
/* A tensor's values are there, as many as its dims say (float32 or int64, raw little-endian or
 * typed, no external data); *n gets the count. Refuses otherwise, naming what. */
loom_status imp_check_tensor(imp *s, const Onnx__TensorProto *t, const char *what, size_t *n);
/* Records the value name as kind, from tensor t (checked). */
loom_status imp_add_val(imp *s, const char *name, vkind kind, const Onnx__TensorProto *t);
loom_status imp_want(imp *s, const char *name, const char *what, int rank, const int64_t *d,
                     const cval **out);
const Onnx__AttributeProto *imp_attr(const Onnx__NodeProto *n, const char *key);
int64_t imp_attr_i(const Onnx__NodeProto *n, const char *key, int64_t def);
float imp_attr_f(const Onnx__NodeProto *n, const char *key, float def);
bool imp_attr_ints(const Onnx__NodeProto *n, const char *key, int count, const int64_t *def,
                   int64_t *out);
bool imp_attr_s_is(const Onnx__NodeProto *n, const char *key, const char *a1, const char *a2);
loom_status imp_emit(imp *s, layer_lowering lw, size_t n_w, size_t n_s, imp_layer **out);
loom_status imp_emit_plain(imp *s, lower_kind kind);
size_t imp_feature(loom_shape img, size_t j);

/* The ops (onnx_import_layers.c): each reads the current value and updates the walk's form. */
loom_status imp_op_transpose(imp *s, const Onnx__NodeProto *n);
loom_status imp_op_shape(imp *s, const Onnx__NodeProto *n, const char *op);
loom_status imp_op_conv(imp *s, const Onnx__NodeProto *n);
loom_status imp_op_pool(imp *s, const Onnx__NodeProto *n, bool is_max);
loom_status imp_op_batchnorm(imp *s, const Onnx__NodeProto *n);
loom_status imp_op_dense(imp *s, const Onnx__NodeProto *n, bool is_gemm);
loom_status imp_op_add(imp *s, const Onnx__NodeProto *n, int bias_of, const char *other);
loom_status imp_op_act(imp *s, act_kind act, float alpha, int fusable);
loom_status imp_op_standardize(imp *s, const cval *std);
loom_status imp_op_gather(imp *s, const Onnx__NodeProto *n);
loom_status imp_op_recurrent(imp *s, const Onnx__NodeProto *n, const char *op);
bool imp_is_zeros(const imp *s, const char *name);

#endif
