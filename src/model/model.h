/* model.h - the model container (internal): an ordered list of layers, one contiguous
 * parameter buffer with a gradient buffer of the same layout, a state buffer (batch-norm
 * running statistics), and one activation arena sized for a maximum batch. */
#ifndef LOOM_MODEL_H
#define LOOM_MODEL_H

#include "../layers/layer.h"

#define MODEL_MAX_LAYERS 64

typedef struct {
    size_t off, len; /* into params */
    group_kind kind;
    int layer;
} model_group;

struct loom_model {
    layer layers[MODEL_MAX_LAYERS];
    int n_layers;
    loom_shape in;         /* per-example input shape (H, W, C) */
    char *text;            /* canonical model text, one layer per line, owned */
    float *params, *grads; /* (n_params) owned */
    float *state;          /* (n_state) owned */
    size_t n_params, n_state;
    uint8_t *bytes; /* (n_bytes) owned: the int8 layers' bytes, 64-byte aligned views */
    size_t n_bytes;
    model_group *groups; /* (n_groups) owned */
    int n_groups;
    /* arena: own[i] (max_batch, out_i) for every layer but views, two gradient buffers of the
     * largest activation, then each layer's scratch. acts[i] is own[i], or the layer's input
     * when the last forward passed the layer (views; dropout outside training) */
    arena mem;
    int max_batch;
    float *acts[MODEL_MAX_LAYERS];
    float *own[MODEL_MAX_LAYERS];  /* the arena buffers; NULL for views */
    bool passed[MODEL_MAX_LAYERS]; /* whether the last forward passed layer i */
    float *dbuf[2];
    const float *x_in; /* the input of the last forward (caller's memory) */
    int last_B;
    /* when not NULL (loom bench --layers), forward and backward add each layer's seconds to
     * prof[2 i] and prof[2 i + 1]; (2 n_layers) owned by whoever set it */
    double *prof;
    /* model_infer's logits (max_batch, n_out) and workspace (n_iws floats, one slot per
     * thread), in the arena: the workspace lies over the activations and scratch. NULL when
     * the model infers on the whole batch */
    float *iws, *ilogits;
    size_t n_iws;
    /* the class names the model was trained with (an image folder's, from its file's config
     * "classes=" line), or NULL: Fashion-MNIST's for 10 outputs, else the numbers */
    char **class_names;
    int n_class_names;
};

/* loom_model_set_precision as if the CPU were cpu (tests: a CPU without AVX-512 BF16). */
loom_status model_set_precision_on(loom_model *m, loom_precision p, const loom_cpu *cpu,
                                   int *n_layers, loom_error *err);

/* Builds layers from parsed text without allocating parameters (used by create and tests). */
loom_status model_parse(loom_model *m, const char *text, const char *source, loom_error *err);
/* The parameter and state counts text would give for inputs (H, W, C), with the errors of
 * loom_model_create, allocating no parameters: lets a loader bound them by its file's size. */
loom_status model_count(const char *text, const char *source, int H, int W, int C, size_t *n_params,
                        size_t *n_state, size_t *n_bytes, loom_error *err);

/* Numerical trouble: the first layer (0-based) whose last forward output (B examples) holds a
 * NaN or Inf, or whose parameter gradients do; -1 when all are finite. */
int model_first_nonfinite_output(const loom_model *m, int B);
int model_first_nonfinite_grad(const loom_model *m);
/* "layer 3 (dense 128 relu)" for error messages. */
void model_layer_name(const loom_model *m, int i, char *buf, size_t n);

/* Inference forward pass on caller-owned memory (ws, n_ws floats): the model is only read, so
 * several threads may run one model at once. *n_need (may be NULL) receives the floats needed
 * for B examples; returns the logits inside ws, or NULL when n_ws is short. */
const float *model_forward_ws(const loom_model *m, const float *x, int B, float *ws, size_t n_ws,
                              size_t *n_need);

/* Inference in chunks: B examples split into chunks of MODEL_CHUNK (the last shorter), each
 * chunk through the whole model on one thread with its own workspace slot, so the threads meet
 * once per batch instead of at every layer. The chunks do not depend on the thread count, so
 * neither do the numbers. Every model: at inference a dense layer multiplies through gemm_fixed,
 * which never splits the reduction over the threads, so no layer needs the whole batch (a
 * whole-batch pass wrote each conv layer's output for all B images, 93 MB for keras-v1 at 1,000,
 * where a chunk's stays in cache). */
#define MODEL_CHUNK 32
/* Floats of workspace for batches up to max_batch on up to threads threads at once. */
size_t model_infer_floats(const loom_model *m, int max_batch, int threads);
/* Logits (B, n_out) in out, or inside ws for a single chunk or a whole-batch model; NULL when
 * ws holds less than one slot. Runs on the caller's team size (omp_get_max_threads), at most one
 * thread per slot that ws holds. The model is only read. */
const float *model_infer_ws(const loom_model *m, const float *x, int B, float *ws, size_t n_ws,
                            float *out);
/* The same in the model's arena (set up by loom_model_prepare); loom_model_forward for
 * whole-batch models. The logits are valid until the next pass. It overwrites the layers'
 * activations and scratch: no backward pass after it. */
const float *model_infer(loom_model *m, const float *x, int B);

#endif
