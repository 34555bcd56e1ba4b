/* loom.h - the public API of libloom, a small neural-network workbench.
 * Tensors are float32, row-major, batch first. Images are stored channels-last:
 * a batch of images is (B, H, W, C); a batch of sequences is (B, T, N); a batch of
 * vectors is (B, N). Every function that can fail returns a loom_status and fills the
 * caller's loom_error with a one-line message; the library never prints or exits. */
#ifndef LOOM_H
#define LOOM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* The functions of this header are libloom.so's interface: built with hidden visibility, the
 * library exports these alone. */
#define LOOM_API __attribute__((visibility("default")))

#ifdef __cplusplus
extern "C" {
#endif

#define LOOM_VERSION "0.1.0"

/* ---- status and errors ------------------------------------------------------------------ */

typedef enum {
    LOOM_OK = 0,
    LOOM_ERR_IO,          /* a file could not be opened, read or written */
    LOOM_ERR_FORMAT,      /* a file or text is malformed */
    LOOM_ERR_SHAPE,       /* tensor shapes do not fit together */
    LOOM_ERR_NOMEM,       /* an allocation failed */
    LOOM_ERR_ARG,         /* a bad argument or option value */
    LOOM_ERR_NUMERIC,     /* NaN or Inf appeared */
    LOOM_ERR_INTERRUPTED, /* stopped by a signal; state was saved */
    LOOM_ERR_EXISTS,      /* an output exists and would be overwritten */
} loom_status;

typedef struct {
    loom_status status;
    char msg[512]; /* one line: names the thing and the reason */
} loom_error;

/* Text for a status code ("I/O error", ...). Never NULL. */
LOOM_API const char *loom_status_str(loom_status s);
/* Fills err (may be NULL) with status s and a printf-style message; returns s. */
LOOM_API loom_status loom_error_set(loom_error *err, loom_status s, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* ---- random numbers (xoshiro256**, seeded through splitmix64) ----------------------------- */

typedef struct {
    uint64_t s[4];
} loom_rng;

/* Seeds rng, caller-owned state (no allocation): the same seed gives the same stream. An rng is
 * not thread-safe: one per thread. */
LOOM_API void loom_rng_seed(loom_rng *rng, uint64_t seed);
LOOM_API uint64_t loom_rng_next(loom_rng *rng);              /* the next 64 random bits */
LOOM_API float loom_rng_uniform(loom_rng *rng);              /* [0, 1) */
LOOM_API float loom_rng_normal(loom_rng *rng);               /* N(0, 1) */
LOOM_API uint32_t loom_rng_below(loom_rng *rng, uint32_t n); /* uniform integer in [0, n) */
/* A seed derived from a parent seed and a stream number (fold, trial, ...). */
LOOM_API uint64_t loom_seed_derive(uint64_t seed, uint64_t stream);
/* Fisher-Yates shuffle of n ints. */
LOOM_API void loom_shuffle_int(int *a, int n, loom_rng *rng);

/* ---- threads ----------------------------------------------------------------------------- */

/* Sets the number of worker threads (0 = all cores). Results never depend on it. Process-wide:
 * call it before starting threads of your own. */
LOOM_API void loom_set_threads(int n);
LOOM_API int loom_get_threads(void); /* the current number (all cores until set) */

/* ---- processes: one job over MPI ---------------------------------------------------------- */

/* Joins the job when a launcher (mpirun) started this process; a plain run is a world of one
 * process and no MPI call is made. Call once, first thing in main; loom_dist_finalize at exit. */
LOOM_API loom_status loom_dist_init(int *argc, char ***argv, loom_error *err);
LOOM_API void loom_dist_finalize(void);
/* Ends every process of the job with exit code code (a failure the others cannot know of). */
LOOM_API void loom_dist_abort(int code);
LOOM_API int loom_dist_rank(void); /* 0 .. size - 1; rank 0 writes the outputs */
LOOM_API int loom_dist_size(void);
/* Solo: this process works alone (a unit taken from a shared queue): loom_dist_rank and
 * loom_dist_size then say 0 and 1, and the collectives are no-ops; the job's own numbers stay
 * in loom_dist_job_rank and loom_dist_job_size. */
LOOM_API void loom_dist_set_solo(bool on);
LOOM_API int loom_dist_job_rank(void);
LOOM_API int loom_dist_job_size(void);
/* True once a failure known to every process was reported (loom_dist_agree, an agreed stop):
 * the processes then end on their own, no loom_dist_abort needed. */
LOOM_API bool loom_dist_is_agreed(void);
/* Worker threads per process by default: this process's cores, shared with the job's other
 * processes on the same host when they are not bound to cores of their own. */
LOOM_API int loom_dist_default_threads(void);
/* The job-wide status: st where it failed here, the worst status of any process otherwise (err
 * then says another process failed: loom_dist_is_other_failure). Every process must call it. */
LOOM_API loom_status loom_dist_agree(loom_status st, loom_error *err);
LOOM_API bool loom_dist_is_other_failure(const loom_error *err);
LOOM_API void loom_dist_barrier(void);
/* Every process's bytes of mine into all (size x bytes, by rank); collective. */
LOOM_API void loom_dist_allgather(const void *mine, size_t bytes, void *all);
/* A work queue shared by the processes: loom_dist_queue_next returns 0, 1, 2, ... across the
 * whole job, each number to one process, whichever asks first (in a world of one, (*local)++).
 * open and close are collective. */
LOOM_API void loom_dist_queue_open(void);
LOOM_API long loom_dist_queue_next(long *local);
LOOM_API void loom_dist_queue_close(void);

/* ---- the CPU: what it can do, and its measured peak ------------------------------------------ */

typedef struct {
    bool has_avx2_fma; /* 256-bit fp32 FMA */
    bool has_avx512;   /* AVX-512 F, BW and VL */
    bool has_bf16;     /* AVX-512 BF16 dot products */
    bool has_vnni;     /* AVX-512 VNNI int8 dot products */
} loom_cpu;
/* The running CPU's feature flags (asked of the CPU, not looked up by model name). */
LOOM_API void loom_cpu_features(loom_cpu *out);

typedef struct {
    double fp32;     /* GFLOP/s of fp32 FMAs at the widest vector the CPU has (0: no FMA) */
    int fp32_width;  /* that width in bits: 512 or 256 */
    double fp32_256; /* with 256-bit vectors when the widest is 512 (0 otherwise) */
    double bf16;     /* GFLOP/s of AVX-512 BF16 dot products (0: not there) */
    double int8;     /* GOP/s of AVX-512 VNNI int8 dot products (0: not there) */
    int threads;     /* worker threads that ran at once (loom_get_threads) */
} loom_peak;
/* Measures the arithmetic peaks in this process, every worker thread at once, each for about
 * seconds (0: 0.2), best of the timed runs. Nothing to free. */
LOOM_API void loom_cpu_peak(loom_peak *p, double seconds);
/* One line: the CPU's features and the kernels loom runs on it (products, convolutions). */
LOOM_API void loom_cpu_describe(char *buf, size_t n);

/* ---- datasets ------------------------------------------------------------------------------ */

#define LOOM_MAX_CLASSES 256

typedef struct {
    int n;              /* number of images */
    int H, W, C;        /* image shape; C = 1 for IDX files */
    uint8_t *x;         /* (n, H, W, C) pixels, owned */
    uint8_t *y;         /* (n) labels in [0, n_classes), owned */
    int n_classes;      /* max label + 1, at least 2; 10 for Fashion-MNIST */
    bool is_fashion;    /* class names are Fashion-MNIST's */
    char **class_names; /* (n_classes) owned, an image folder's class folders; NULL otherwise */
    int n_skipped;      /* image folders: unreadable images left out (loom_set_skip_bad_images) */
} loom_dataset;

/* Reads an IDX image file and an IDX label file (each plain or gzip). Validates magic,
 * dimensions, sizes against the bytes present, label range and count agreement. labels_path NULL
 * reads the images alone (every label 0), e.g. for prediction. On success *out is a new dataset
 * owned by the caller (loom_dataset_destroy). Errors: LOOM_ERR_ARG (NULL argument), LOOM_ERR_IO
 * (cannot open or read), LOOM_ERR_FORMAT (bad magic or sizes, truncated, trailing data, corrupt
 * gzip, counts differ), LOOM_ERR_NOMEM. */
LOOM_API loom_status loom_dataset_load_idx(loom_dataset **out, const char *images_path,
                                           const char *labels_path, loom_error *err);
/* Image folders (docs/FORMATS.md): when dir holds train/ or test/, loom_dataset_load_dir reads
 * dir/WHICH/CLASS/IMAGE (png, jpg) instead of IDX files. An unreadable image is an error naming it,
 * unless this is on (process-wide, off by default): then it is left out and counted in
 * n_skipped. */
LOOM_API void loom_set_skip_bad_images(bool on);
/* Loads the train or test pair from dir: {train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz].
 * which is "train" or "test" (else LOOM_ERR_ARG); a missing file is LOOM_ERR_IO; otherwise the
 * errors of loom_dataset_load_idx. */
LOOM_API loom_status loom_dataset_load_dir(loom_dataset **out, const char *dir, const char *which,
                                           loom_error *err);
LOOM_API void loom_dataset_destroy(loom_dataset *ds); /* frees ds and its arrays; accepts NULL */
/* A test set that fits its training set: the same image size and no label beyond the training
 * set's classes (fewer classes present is fine). LOOM_OK when either is NULL; else LOOM_ERR_SHAPE,
 * naming both sizes or the class counts. Called before any work by every command that trains. */
LOOM_API loom_status loom_dataset_check_test(const loom_dataset *train, const loom_dataset *test,
                                             loom_error *err);
/* The default data directory: $LOOM_DATA, else /usr/share/datasets/fashion-mnist. */
LOOM_API const char *loom_default_data_dir(void);
/* Class name for label k ("T-shirt/top" ... for Fashion-MNIST, "0".. otherwise).
 * Returns a pointer to static storage or into buf (size >= 16). */
LOOM_API const char *loom_class_name(const loom_dataset *ds, int k, char *buf);
/* Number of examples of each class among idx[0..n) (idx NULL = all). counts has n_classes. */
LOOM_API void loom_dataset_class_counts(const loom_dataset *ds, const int *idx, int n, int *counts);

/* An index split of a dataset. Arrays are owned by the split. */
typedef struct {
    int *train;
    int n_train;
    int *val;
    int n_val;
} loom_split;

typedef enum { LOOM_SPLIT_STRATIFIED = 0, LOOM_SPLIT_KERAS } loom_split_mode;

/* Splits ds into train/validation: stratified and seeded, or Keras-style (the last
 * val_frac of the examples in file order, unshuffled). val_frac in [0, 1). The arrays are
 * owned by *out (loom_split_reset). Errors: LOOM_ERR_ARG (bad fraction, mode or dataset),
 * LOOM_ERR_NOMEM. */
LOOM_API loom_status loom_split_create(loom_split *out, const loom_dataset *ds, double val_frac,
                                       loom_split_mode mode, uint64_t seed, loom_error *err);
/* Stratified k-fold: fold k of K as validation, the rest as training. Same seed, same folds.
 * Ownership and errors as loom_split_create (LOOM_ERR_ARG: K outside 2..n, k outside 0..K-1). */
LOOM_API loom_status loom_split_kfold(loom_split *out, const loom_dataset *ds, int K, int k,
                                      uint64_t seed, loom_error *err);
LOOM_API void loom_split_reset(loom_split *s); /* frees the arrays; accepts a zeroed split */

/* Per-pixel standardisation statistics (mean, std of pixel/255 over the given examples). */
typedef struct {
    bool is_on;
    float *mean; /* (H*W*C) owned */
    float *std;  /* (H*W*C) owned, floored at 1e-3 */
} loom_norm;
/* Fits the statistics on ds[idx[0..n)] (idx NULL = all of ds) and sets is_on; the arrays are
 * owned by *out (loom_norm_reset). Errors: LOOM_ERR_ARG (no examples, index out of range),
 * LOOM_ERR_NOMEM. */
LOOM_API loom_status loom_norm_fit(loom_norm *out, const loom_dataset *ds, const int *idx, int n,
                                   loom_error *err);
LOOM_API void loom_norm_reset(loom_norm *nrm); /* frees the arrays; accepts a zeroed struct */

/* Converts examples idx[0..n) to floats in x (n, H, W, C): pixel/255, then standardised when
 * nrm is on (nrm may be NULL); writes their labels to y (may be NULL). No allocation. */
LOOM_API void loom_batch_fill(const loom_dataset *ds, const int *idx, int n, const loom_norm *nrm,
                              float *x, int *y);

/* ---- models --------------------------------------------------------------------------------- */

typedef struct loom_model loom_model;

/* Parses a model text (the model language: one layer per line or comma-separated) for inputs
 * of shape (H, W, C). source names the text in errors ("model.txt", "zoo:cnn1").
 * The model's parameters are allocated but not initialised (see loom_model_init). On success
 * *out is owned by the caller (loom_model_destroy). Errors: LOOM_ERR_FORMAT (unknown word or
 * bad number, as "source:line: ..."), LOOM_ERR_SHAPE (the layers do not fit the input),
 * LOOM_ERR_ARG (bad input shape), LOOM_ERR_NOMEM. */
LOOM_API loom_status loom_model_create(loom_model **out, const char *text, const char *source,
                                       int H, int W, int C, loom_error *err);
LOOM_API void loom_model_destroy(loom_model *m); /* frees m and all it owns; accepts NULL */
/* Initialises parameters (Glorot/He as the frameworks do) and state from seed. */
LOOM_API void loom_model_init(loom_model *m, uint64_t seed);

/* The arithmetic of training: fp32 (the default), or bf16 products in the 3x3 stride-1 conv
 * layers with an even number of filters (AVX-512 BF16 vdpbf16ps: x, W and dz rounded to bf16,
 * sums and weights fp32), residual blocks' layers included, where the bf16 working space fits
 * the layer's col area (not a one-channel first layer). Inference is always fp32. */
typedef enum { LOOM_PRECISION_FP32 = 0, LOOM_PRECISION_BF16 } loom_precision;
LOOM_API const char *loom_precision_str(loom_precision p); /* "fp32" or "bf16" */
/* "fp32" or "bf16" into *out; LOOM_ERR_ARG otherwise. */
LOOM_API loom_status loom_precision_parse(const char *s, loom_precision *out, loom_error *err);
/* Sets the model's training precision; *n_layers (may be NULL) receives the number of layers
 * that train in bf16. Errors: LOOM_ERR_ARG (bf16 on a CPU without AVX-512 BF16, one line). */
LOOM_API loom_status loom_model_set_precision(loom_model *m, loom_precision p, int *n_layers,
                                              loom_error *err);
/* Sizes the activation arena for batches of up to max_batch examples. Call before forward.
 * Errors: LOOM_ERR_ARG (max_batch < 1), LOOM_ERR_NOMEM. */
LOOM_API loom_status loom_model_prepare(loom_model *m, int max_batch, loom_error *err);
/* Forward pass of B <= max_batch examples x (B, H, W, C); returns the logits (B, n_out), a view
 * into the arena valid until the next forward. rng is used by dropout when is_training. Not
 * thread-safe (the arena is the model's): for concurrent inference see loom_predict. */
LOOM_API const float *loom_model_forward(loom_model *m, const float *x, int B, bool is_training,
                                         loom_rng *rng);
/* Backward pass after a training forward: dlogits (B, n_out) -> adds into the gradients. */
LOOM_API void loom_model_backward(loom_model *m, const float *dlogits, int B);
LOOM_API void
loom_model_zero_grad(loom_model *m); /* gradients accumulate: zero them once per step */

LOOM_API size_t loom_model_n_params(const loom_model *m); /* trainable parameters */
LOOM_API size_t loom_model_n_state(const loom_model *m);  /* non-trainable state (BN statistics) */
LOOM_API float *loom_model_params(loom_model *m);         /* (n_params) view */
LOOM_API float *loom_model_grads(loom_model *m);          /* (n_params) view */
LOOM_API float *loom_model_state(loom_model *m);          /* (n_state) view */
LOOM_API int loom_model_n_outputs(const loom_model *m);   /* the last layer's size: the classes */
/* The per-example input shape (H, W, C) the model was created for. */
LOOM_API void loom_model_input_shape(const loom_model *m, int *H, int *W, int *C);
LOOM_API int loom_model_n_layers(const loom_model *m);
LOOM_API const char *loom_model_text(const loom_model *m); /* canonical model text */
LOOM_API double loom_model_flops(const loom_model *m);     /* forward FLOPs per example */
/* Sum over weight groups (conv, dense, recurrent kernels) of w^2, and adds 2*l2*w into grads. */
LOOM_API double loom_model_l2_apply(loom_model *m, float l2, bool add_grad);
/* Writes the Keras-style summary table (layer, output shape, parameters, totals, FLOPs). */
LOOM_API void loom_model_summary(const loom_model *m, FILE *f);

/* The built-in model zoo. */
typedef struct {
    const char *name;
    const char *description;
    const char *text;      /* model language */
    const char *optimizer; /* default training settings */
    double lr;
    int batch;
    int epochs;
    double l2;
    const char *lr_schedule;
    int early_stopping;    /* patience, 0 = off */
    const char *published; /* figure to beat, or NULL */
    const char *augment;   /* training augmentation, e.g. "flip,shift:2"; "" = none */
    /* more default settings as "name=value ..." (numbers and switches), or NULL */
    const char *settings;
} loom_zoo_entry;

/* Entries are static. The entry named name, or NULL; entry i of loom_zoo_count() (NULL out of
 * range). */
LOOM_API const loom_zoo_entry *loom_zoo_find(const char *name);
LOOM_API int loom_zoo_count(void);
LOOM_API const loom_zoo_entry *loom_zoo_get(int i);

/* ---- doors to other systems (docs/FORMATS.md) ------------------------------------------------ */

/* Writes m as an ONNX model (IR version 8, opset 13): input "image" float32 (N, C, H, W) of raw
 * pixels 0..255 (the /255 and any standardize layer are in the graph), output "probabilities"
 * (N, classes); metadata class_names (a JSON array), loom_version, loom_model. Written through a
 * temporary file renamed into place. Errors: LOOM_ERR_ARG (NULL argument, or a layer kind with no
 * ONNX form, named), LOOM_ERR_IO, LOOM_ERR_NOMEM. */
LOOM_API loom_status loom_export_onnx(const loom_model *m, const char *path, loom_error *err);
/* Writes m's parameters and state as safetensors (u64 LE header length, JSON header, raw LE
 * float32), named and laid out as PyTorch's state_dict of the equivalent nn.Sequential; written
 * like loom_export_onnx. Errors: LOOM_ERR_ARG, LOOM_ERR_IO, LOOM_ERR_NOMEM. */
LOOM_API loom_status loom_export_safetensors(const loom_model *m, const char *path,
                                             loom_error *err);

/* Reads an ONNX model (a file, or size bytes at data named source in messages) into a new loom
 * model: a chain of the nodes loom's layers express (docs/FORMATS.md, "ONNX import"), input
 * (N, C, H, W) images or (N, T, F) sequences, a leading Div by 255 taken as loom's own pixel
 * scaling. A file written by loom_export_onnx comes back with the same model text and
 * bit-identical parameters and state. *config_out (may be NULL) receives key=value lines for
 * loom_model_save (classes= from the metadata's class_names), malloc'd. On success *out is owned by
 * the caller (loom_model_destroy). Errors: LOOM_ERR_FORMAT (not ONNX, truncated, a tensor whose
 * data does not fit its dims, or a node loom cannot express: one line naming the node, its op type
 * and what loom lacks), LOOM_ERR_IO, LOOM_ERR_NOMEM. Never allocates more than about 16 times
 * the file's size for the decoded message. */
LOOM_API loom_status loom_import_onnx(loom_model **out, char **config_out, const char *path,
                                      loom_error *err);
LOOM_API loom_status loom_import_onnx_buffer(loom_model **out, char **config_out, const void *data,
                                             size_t size, const char *source, loom_error *err);
/* Sets m's parameters and state from a safetensors file named and laid out as
 * loom_export_safetensors writes them (PyTorch's state_dict of the equivalent nn.Sequential).
 * Every tensor the model needs must be there as F32 with the expected shape, and no other (an
 * I64 num_batches_tracked is allowed); on any error m is left as it was. Errors: LOOM_ERR_FORMAT
 * (a header that lies: offsets out of range, another dtype, a missing, extra or misshapen
 * tensor, named), LOOM_ERR_IO, LOOM_ERR_NOMEM. */
LOOM_API loom_status loom_import_safetensors(loom_model *m, const char *path, loom_error *err);

/* ---- model files ---------------------------------------------------------------------------- */

/* Writes model text, config text (key=value lines, may be NULL), parameters and state with a
 * CRC-32, through a temporary file renamed into place (a failed save leaves any old file as it
 * was). Errors: LOOM_ERR_IO, LOOM_ERR_ARG (texts too long), LOOM_ERR_NOMEM. */
LOOM_API loom_status loom_model_save(const loom_model *m, const char *config, const char *path,
                                     loom_error *err);
/* Loads a model file; *config_out (may be NULL) receives a malloc'd copy of the config text.
 * On success *out is owned by the caller (loom_model_destroy), *config_out too (free). Errors:
 * LOOM_ERR_IO (cannot read), LOOM_ERR_FORMAT (not a model file, a newer version, corrupt:
 * checksum, sizes, or a model text that does not build), LOOM_ERR_NOMEM. */
LOOM_API loom_status loom_model_load(loom_model **out, char **config_out, const char *path,
                                     loom_error *err);

/* ---- int8 quantization ---------------------------------------------------------------------- */

/* The default activation calibration: the maximum |x| at each int8 layer's input (docs/RESULTS.md,
 * "int8": the 99.999th, 99.99th and 99.9th percentiles were within noise of it, none better in
 * test loss, so the simplest rule stays). */
#define LOOM_QUANT_PERCENTILE 100.0
/* Post-training int8 quantization: *out is a new model (the caller destroys it) whose dense and
 * conv layers are int8 layers ("int8 conv 32 3x3 relu": per-output-channel symmetric int8
 * weights, int8 activations with one scale per tensor, int32 sums, fp32 bias); every other layer
 * is copied. x (n, H, W, C) are calibration inputs as loom_batch_fill makes them; the activation
 * scale is the percentile (in (50, 100], 100 = the maximum) of |x| at each int8 layer's input. m's
 * arena is used (loom_model_prepare). Errors: LOOM_ERR_ARG (m already quantized, no dense or conv
 * layer, no images, percentile out of range), LOOM_ERR_NOMEM. */
LOOM_API loom_status loom_model_quantize(loom_model **out, loom_model *m, const float *x, int n,
                                         double percentile, loom_error *err);
/* Whether m has int8 layers (made by loom_model_quantize, or loaded from such a file). */
LOOM_API bool loom_model_is_quantized(const loom_model *m);

typedef struct {
    const char *model_file; /* a float model file */
    const char *out_path;   /* the int8 model file to write (temporary file + rename) */
    const char *data_dir;   /* the training images to calibrate on; NULL = default */
    int calibrate;          /* a stratified subset of this many training images; 0 = 1,000 */
    double percentile;      /* 0 = LOOM_QUANT_PERCENTILE */
    uint64_t seed;          /* of the stratified subset */
} loom_quantize_config;
/* loom quantize: loads the model, calibrates on the subset, quantizes, saves (the config text is
 * kept). Nothing is written on failure. Errors: those of loom_model_load, the data,
 * loom_model_quantize and loom_model_save; LOOM_ERR_ARG (calibrate outside 1..the training
 * images), LOOM_ERR_SHAPE (the images do not fit the model). */
LOOM_API loom_status loom_run_quantize(const loom_quantize_config *qc, loom_error *err);

/* ---- training ------------------------------------------------------------------------------- */

typedef enum { LOOM_OPT_SGD = 0, LOOM_OPT_ADAM, LOOM_OPT_ADAMW, LOOM_OPT_RMSPROP } loom_opt_kind;
typedef enum {
    LOOM_SCHED_CONSTANT = 0,
    LOOM_SCHED_STEP,
    LOOM_SCHED_EXP,
    LOOM_SCHED_COSINE,
    LOOM_SCHED_PLATEAU
} loom_sched_kind;

typedef struct {
    loom_opt_kind kind;
    float lr;
    float momentum;          /* sgd; rmsprop (NaN: the optimizer's default) */
    bool is_nesterov;        /* sgd */
    float beta1, beta2, eps; /* adam; rmsprop uses beta2 as rho (NaN: the default) */
    float weight_decay;      /* decoupled (adamw, or any optimizer) */
    float l2;                /* Keras-style l2 in the loss, weight groups only */
    float clip_norm;         /* global gradient norm clip, 0 = off */
} loom_opt_config;

/* Optimizer state (moments) for n_params parameters; *out is owned by the caller
 * (loom_optim_destroy, accepts NULL). Errors: LOOM_ERR_ARG (lr <= 0), LOOM_ERR_NOMEM. */
typedef struct loom_optim loom_optim;
LOOM_API loom_status loom_optim_create(loom_optim **out, const loom_opt_config *cfg,
                                       size_t n_params, loom_error *err);
LOOM_API void loom_optim_destroy(loom_optim *o);
/* One update of params from grads (grads are per-example means). lr overrides cfg->lr. */
LOOM_API void loom_optim_step(loom_optim *o, loom_model *m, float lr);
/* "sgd", "adam", "adamw" or "rmsprop" -> *out; anything else is LOOM_ERR_ARG. */
LOOM_API loom_status loom_opt_kind_parse(const char *s, loom_opt_kind *out, loom_error *err);
LOOM_API const char *loom_opt_kind_str(loom_opt_kind k); /* static text, never NULL */
/* c with the optimizer's defaults filled in where c leaves them NaN: momentum (sgd 0.9, others
 * 0) and beta2 (rmsprop's rho 0.9, others 0.999). */
LOOM_API loom_opt_config loom_opt_config_resolved(const loom_opt_config *c);

typedef struct {
    loom_sched_kind kind;
    int step_every;    /* step: epochs between decays */
    float gamma;       /* step/exp/plateau decay factor */
    int warmup_epochs; /* cosine */
    float lr_min;      /* cosine floor; plateau floor */
    int patience;      /* plateau */
} loom_sched_config;
/* Parses constant | step[:EVERY[:GAMMA]] | exp[:GAMMA] | cosine[:WARMUP[:LR_MIN]] |
 * plateau[:PATIENCE[:GAMMA]] into *out; LOOM_ERR_ARG names the bad part. */
LOOM_API loom_status loom_sched_parse(const char *s, loom_sched_config *out, loom_error *err);
/* Learning rate for epoch e (0-based) of n_epochs from base lr (not plateau). */
LOOM_API float loom_sched_lr(const loom_sched_config *s, float lr, int e, int n_epochs);

/* Softmax + cross-entropy over logits (B, N) and labels (B). Writes dlogits = (p - onehot)/B
 * (may be NULL); returns the summed loss (not the mean) and counts correct argmaxes. */
LOOM_API double loom_softmax_xent(const float *logits, const int *y, int B, int N, float *dlogits,
                                  int *n_correct);
/* The same with label smoothing in [0, 1): the target is (1 - smoothing) onehot(y) +
 * smoothing / N, and dlogits = (p - target) / B. smoothing 0 is loom_softmax_xent. */
LOOM_API double loom_softmax_xent_smooth(const float *logits, const int *y, int B, int N,
                                         float smoothing, float *dlogits, int *n_correct);
/* The same against soft targets of two labels (mixup, cutmix): the target is lam t(y) +
 * (1 - lam) t(y2), t the (smoothed) one-hot target above; dlogits = (p - target) / B; a correct
 * argmax is the label of the larger weight (y when lam >= 0.5). */
LOOM_API double loom_softmax_xent_mix(const float *logits, const int *y, const int *y2, float lam,
                                      int B, int N, float smoothing, float *dlogits,
                                      int *n_correct);

/* One epoch's history row. */
typedef struct {
    int epoch;
    double loss, acc, val_loss, val_acc, lr, seconds;
} loom_epoch;

typedef enum { LOOM_LOG_INFO = 0, LOOM_LOG_WARN, LOOM_LOG_PROGRESS, LOOM_LOG_EPOCH } loom_log_kind;
typedef void (*loom_log_fn)(void *user, loom_log_kind kind, const char *line);

/* A training progress event, for a live display (the CLI draws a Keras-style bar from it): after
 * every step (LOOM_PROGRESS_STEP) and at each epoch's end, after validation and just before the
 * epoch's LOOM_LOG_EPOCH line (LOOM_PROGRESS_EPOCH_END). The library itself never prints. */
typedef enum { LOOM_PROGRESS_STEP = 0, LOOM_PROGRESS_EPOCH_END } loom_progress_kind;
typedef struct {
    loom_progress_kind kind;
    const char *label;        /* "" from loom_train; cv and tune put "fold k/K: " and the like */
    int epoch, n_epochs;      /* 1-based epoch, and the epochs asked for */
    int step, n_steps;        /* steps done in this epoch (1-based), steps per epoch */
    double loss, acc;         /* the epoch's running means so far (loss with any L2 penalty) */
    double seconds;           /* since the epoch (or its resumed part) started */
    double val_loss, val_acc; /* EPOCH_END with validation data, else NaN */
    double lr;                /* the epoch's learning rate */
} loom_progress;
typedef void (*loom_progress_fn)(void *user, const loom_progress *p);

typedef struct {
    int epochs;
    int batch;
    loom_opt_config opt;
    loom_sched_config sched;
    int early_stopping;    /* patience in epochs, 0 = off; restores best weights */
    float label_smoothing; /* in [0, 1): training targets (1 - e) onehot + e / classes; 0 = off.
                            * Validation and test losses stay plain cross-entropy. */
    float ema; /* in [0, 1): after every step, avg = ema * avg + (1 - ema) * weights (trainable
                * weights only; avg starts at the initial weights). Validation, early stopping
                * and the final model use the averaged weights. 0 = off. */
    uint64_t seed;
    int log_every;   /* iteration lines every N steps, 0 = off */
    loom_log_fn log; /* may be NULL */
    void *log_user;
    loom_progress_fn progress; /* progress events; NULL = none */
    void *progress_user;
    volatile int *stop_flag; /* set non-zero (by a signal handler) to stop after this step */
    bool is_augment_flip;    /* random horizontal flips of training images */
    int augment_shift;       /* random translations of up to this many pixels, 0 = off */
    /* random erasing (Zhong et al. 2017): with probability erase_p a rectangle of erase_area_min
     * to erase_area_max of the image, aspect ratio erase_aspect to 1/erase_aspect (log-uniform),
     * is filled with uniform [0, 1) noise; erase_p 0 = off */
    float erase_p, erase_area_min, erase_area_max, erase_aspect;
    /* mixup and cutmix (src/train/mix.c): Beta(alpha, alpha) mixing weights, 0 = off; with both
     * on, each batch takes one of them; the loss is against the mixed (soft) targets */
    float mixup_alpha, cutmix_alpha;
    const char *checkpoint_path; /* NULL = no checkpoints; else written atomically there */
    int checkpoint_every;        /* epochs between checkpoints (0 = 1) */
    int checkpoint_steps;        /* also every N steps inside an epoch, 0 = off */
    bool is_resume;          /* continue from checkpoint_path (bit-identical to no interruption) */
    const char *lr_schedule; /* sched's text form (config.txt), NULL = constant; not owned */
    /* Shards: each batch is split into this many fixed parts (1 = the whole batch at once),
     * each run forward and backward on its own (batch norm normalises within a shard) and their
     * gradients summed exactly, so the result does not depend on which process computed which
     * part. is_data_parallel: the job's processes (loom_dist_size()) share the shards, which
     * must then be a multiple of their number; every process calls loom_train alike. */
    int shards;
    bool is_data_parallel;
    loom_precision precision; /* the 3x3 stride-1 convolutions' products in training */
} loom_train_config;

/* Defaults: adam 1e-3, batch 64, 10 epochs, seed 42; momentum and beta2 are the optimizer's
 * own defaults (NaN until loom_opt_config_resolved fills them). */
LOOM_API void loom_train_config_init(loom_train_config *c);

/* ---- settings by name ---------------------------------------------------------------------- */
/* One table names every setting of a run (the config.txt key, e.g. "weight_decay"), its value's
 * kind and range and a help line; the CLI's flags are the names with '-' for '_'. A command binds
 * the table to its own variables with a loom_settings: the settings whose pointer is NULL are not
 * the command's. */
typedef struct {
    loom_train_config *train;    /* epochs ... checkpoint_steps; required */
    double *val_split;           /* fraction held out for validation */
    loom_split_mode *split_mode; /* stratified | keras */
    bool *is_standardize;        /* per-pixel standardisation */
    int *subset;                 /* a stratified subset of the training examples, 0 = all */
    int *test_subset;            /* the first N test examples, 0 = all */
    bool *is_skip_test;          /* no test-set evaluation */
} loom_settings;

enum {
    LOOM_SETTING_TRAINING = 1,   /* how the model is trained (train, cv, tune) */
    LOOM_SETTING_DATA = 2,       /* which data a run uses and how it is split */
    LOOM_SETTING_CHECKPOINT = 4, /* when checkpoints are written */
    LOOM_SETTING_SEARCHABLE = 8  /* a search space may fix or search it */
};
typedef struct {
    const char *name; /* "weight_decay": the config.txt key */
    const char *arg;  /* the value's placeholder for help ("N", "X", "LIST"); NULL: a switch */
    const char *help; /* one line */
    unsigned flags;   /* LOOM_SETTING_* */
} loom_setting_info;

LOOM_API int loom_setting_count(void);
LOOM_API const loom_setting_info *loom_setting_info_at(int i); /* static; NULL out of range */
LOOM_API int loom_setting_find(const char *name);              /* index, or -1 */
LOOM_API bool loom_setting_is_bound(const loom_settings *s, int i);
/* Parses value into setting i of s (NULL value: a switch turned on). Text settings (lr_schedule)
 * keep a pointer to value: keep it alive. Errors: LOOM_ERR_ARG "name: reason". */
LOOM_API loom_status loom_setting_set(const loom_settings *s, int i, const char *value,
                                      loom_error *err);
/* The same by name; an unknown or unbound name is LOOM_ERR_ARG listing the names s takes. */
LOOM_API loom_status loom_settings_set(const loom_settings *s, const char *name, const char *value,
                                       loom_error *err);
/* Setting i's value as config.txt writes it (reads back to the same value); "" when unbound. */
LOOM_API void loom_setting_format(const loom_settings *s, int i, char *buf, size_t n);
/* "name=value\n" lines of every bound setting, in table order (malloc'd; NULL: out of memory). */
LOOM_API char *loom_settings_text(const loom_settings *s);

typedef struct {
    loom_epoch *epochs; /* (n_epochs) owned */
    int n_epochs;
    int best_epoch; /* 0-based index of the best validation epoch */
    double seconds;
    bool is_stopped_early;
} loom_history;
LOOM_API void loom_history_reset(loom_history *h); /* frees the rows; accepts a zeroed history */

/* Trains m on train[idx_train] and validates on val[idx_val] (val may be NULL) each epoch.
 * m must be initialised. hist is filled (the caller resets it, also on failure). Errors:
 * LOOM_ERR_ARG (bad settings, no examples), LOOM_ERR_SHAPE (the data does not fit the model),
 * LOOM_ERR_NOMEM, LOOM_ERR_NUMERIC (the loss is not finite), LOOM_ERR_INTERRUPTED (stop_flag; a
 * checkpoint is written when configured), LOOM_ERR_IO, LOOM_ERR_FORMAT (checkpoints). */
LOOM_API loom_status loom_train(loom_model *m, const loom_train_config *cfg,
                                const loom_dataset *train, const int *idx_train, int n_train,
                                const loom_dataset *val, const int *idx_val, int n_val,
                                const loom_norm *nrm, loom_history *hist, loom_error *err);

/* ---- evaluation ----------------------------------------------------------------------------- */

typedef struct {
    int n_classes;
    long *cm; /* (n_classes, n_classes) counts, rows = true, columns = predicted; owned */
    long n;
    double loss; /* mean loss when known */
    double accuracy;
    double precision[LOOM_MAX_CLASSES], recall[LOOM_MAX_CLASSES], f1[LOOM_MAX_CLASSES];
    long support[LOOM_MAX_CLASSES];
    double macro_p, macro_r, macro_f1;
    double weighted_p, weighted_r, weighted_f1;
} loom_metrics;

/* Zeroes mt and allocates its confusion matrix, owned by mt (loom_metrics_reset). Errors:
 * LOOM_ERR_ARG (n_classes outside 1..LOOM_MAX_CLASSES), LOOM_ERR_NOMEM. */
LOOM_API loom_status loom_metrics_init(loom_metrics *mt, int n_classes, loom_error *err);
LOOM_API void loom_metrics_reset(loom_metrics *mt); /* frees the matrix; accepts a zeroed struct */
/* Counts one example; labels outside [0, n_classes) are ignored (asserted in debug builds). */
LOOM_API void loom_metrics_confusion_add(loom_metrics *mt, int y_true, int y_pred);
/* Computes accuracy, per-class and averaged P/R/F1 from the confusion matrix (0 where undefined).
 */
LOOM_API void loom_metrics_compute(loom_metrics *mt);
/* Runs m over ds[idx] (idx NULL = the first n examples; all when n <= 0) in batches; fills mt
 * (initialised here: the caller resets it; on failure it is reset here) and, if pred is not NULL,
 * pred (n) predicted labels and prob (n) their probabilities (may be NULL). Runs
 * loom_model_forward: not concurrently on one model. Errors: LOOM_ERR_ARG, LOOM_ERR_SHAPE (the
 * data does not fit the model), LOOM_ERR_NOMEM, LOOM_ERR_NUMERIC (a non-finite output). */
LOOM_API loom_status loom_evaluate(loom_model *m, const loom_dataset *ds, const int *idx, int n,
                                   const loom_norm *nrm, int batch, loom_metrics *mt, int *pred,
                                   float *prob, loom_error *err);
/* loom_evaluate with test-time augmentation by flips: each image and its horizontal mirror are
 * run, their softmaxes averaged; the prediction, its probability and the loss (-log of the
 * averaged probability of the true class) come from the average. A figure of its own, never
 * mixed into loom_evaluate's. Same errors; the same results for any batch and thread count. */
LOOM_API loom_status loom_evaluate_tta(loom_model *m, const loom_dataset *ds, const int *idx, int n,
                                       const loom_norm *nrm, int batch, loom_metrics *mt, int *pred,
                                       float *prob, loom_error *err);
/* scikit-learn-style classification report to f; ds (may be NULL) names the classes. */
LOOM_API void loom_metrics_report(const loom_metrics *mt, const loom_dataset *ds, FILE *f);
/* Writes metrics.json-style JSON / confusion CSV (via temp file + rename). Errors: LOOM_ERR_IO,
 * LOOM_ERR_ARG (path too long), LOOM_ERR_NOMEM. */
LOOM_API loom_status loom_metrics_write_json(const loom_metrics *mt, const loom_dataset *ds,
                                             const char *path, loom_error *err);
LOOM_API loom_status loom_metrics_write_confusion_csv(const loom_metrics *mt,
                                                      const loom_dataset *ds, const char *path,
                                                      loom_error *err);

/* ---- files ---------------------------------------------------------------------------------- */

/* ---- plots: PNG or SVG through PLplot's cairo driver --------------------------------------- */
/* Every plot writes out (".svg": SVG, else PNG) through out.tmp.PID renamed into place, never
 * prints, and returns LOOM_ERR_IO for missing or unwritable files, LOOM_ERR_FORMAT for malformed
 * ones, LOOM_ERR_ARG for bad arguments (counts out of range, an unknown column, a path too long),
 * LOOM_ERR_NOMEM. Calls are serialised inside (PLplot keeps global state); any thread may call
 * them. */

/* One curve: n points (x[i], y[i]); std (n) or NULL draws a y +- std band; NaN breaks a line. */
typedef struct {
    const char *label; /* legend text */
    const double *x, *y, *std;
    int n;
} loom_plot_series;

/* Up to 20 series on one plot (the second ten dashed), legend to the right. The arrays stay
 * the caller's. */
LOOM_API loom_status loom_plot_overlay(const char *out, const char *title, const char *x_label,
                                       const char *y_label, const loom_plot_series *series,
                                       int n_series, loom_error *err);
/* One column of history.csv ("val_acc" when NULL; "acc", "loss", "val_loss") per epoch of up
 * to 20 runs, labelled by their model names (config.txt model=). A directory without a
 * history.csv whose subdirectories hold one (the folds of a CV run) is drawn as the mean with
 * a +-std band. */
LOOM_API loom_status loom_plot_overlay_runs(const char *out, const char *const *run_dirs,
                                            int n_runs, const char *column, loom_error *err);
/* Loss and accuracy per epoch, training vs validation, in two panels. src is a history.csv, a
 * run directory, or a directory of fold runs (mean +- std). */
LOOM_API loom_status loom_plot_history(const char *src, const char *out, loom_error *err);
/* Heatmap of a confusion.csv (header "true\pred,<class names>", one row of counts per true
 * class): counts, or row-normalised ratios when is_normalized; a colour bar and every value. */
LOOM_API loom_status loom_plot_confusion(const char *confusion_csv, bool is_normalized,
                                         const char *out, loom_error *err);
/* per_class (1..16) images of every class of ds, one row per class named on the left. */
LOOM_API loom_status loom_plot_samples(const loom_dataset *ds, int per_class, const char *out,
                                       loom_error *err);
/* Up to max_images (1..64) of the most confident mistakes in predictions_csv ("index,true,pred,
 * prob", index into ds, the test set), captioned "true → pred (confidence)". */
LOOM_API loom_status loom_plot_misclassified(const loom_dataset *ds, const char *predictions_csv,
                                             int max_images, const char *out, loom_error *err);
/* One box per layer (its text, output shape, parameters) from summary.txt, a run directory
 * holding one, or any file with loom_model_summary's table. */
LOOM_API loom_status loom_plot_architecture(const char *src, const char *out, loom_error *err);
/* Score against each hyperparameter of a trials.csv (columns trial, score, then one per
 * hyperparameter; numeric or categorical), one panel each, the best trial marked. */
LOOM_API loom_status loom_plot_trials(const char *trials_csv, const char *out, loom_error *err);
/* McNemar's p-values between every pair of n runs (2..64) as a heatmap: p (n, n) symmetric, NaN
 * on the diagonal and for pairs not tested; '*' marks p < alpha. */
LOOM_API loom_status loom_plot_pvalues(const char *out, const char *const *labels, int n,
                                       const double *p, double alpha, loom_error *err);
/* Every plot run_dir's files allow: learning_curves, confusion, confusion_norm, architecture,
 * trials, samples and misclassified (.png, and .svg too when is_svg); files that are absent
 * are skipped. The image grids load config.txt's data_dir (else the default data directory).
 * Logs each file written (LOOM_LOG_INFO, the path) and each grid skipped for want of data
 * (LOOM_LOG_WARN); a corrupt file does not stop the others, and the first error is returned;
 * LOOM_ERR_IO when run_dir holds nothing to plot. */
LOOM_API loom_status loom_plot_run(const char *run_dir, bool is_svg, loom_log_fn log, void *user,
                                   loom_error *err);

/* ---- experiments: k-fold cross-validation, hyperparameter search, comparing runs ------------ */
/* Seeds: folds come from train.seed, fold k trains with loom_seed_derive(seed, k); trial t of a
 * search draws its point and its executions' seeds from streams derived from the search seed.
 * The same seed gives the same folds, trials and numbers for any thread count. */

typedef struct {
    long b, c;      /* discordant pairs: b = A right and B wrong, c = A wrong and B right */
    double chi2;    /* (|b - c| - 1)^2 / (b + c), continuity-corrected; 0 when b + c = 0 */
    double p_chi2;  /* P(chi-square with 1 dof >= chi2) = erfc(sqrt(chi2 / 2)) */
    double p_exact; /* two-sided exact binomial: min(1, 2 P(X <= min(b, c))), X ~ Bin(b + c, 1/2) */
    double p;       /* p_exact when b + c < 25, else p_chi2 */
    bool is_exact;
} loom_mcnemar;
/* McNemar's test of two classifiers scored on the same examples. */
LOOM_API loom_mcnemar loom_mcnemar_test(long b, long c);

/* Cross-validation: `loom cv`. */
typedef struct {
    const char *model;        /* zoo name or model-text file */
    const char *data_dir;     /* NULL = loom_default_data_dir() (loom_cv only) */
    const char *out_dir;      /* NULL = runs/cv-<model> */
    int folds;                /* K >= 2, default 5 */
    int subset;               /* cross-validate a stratified subset of N training images, 0 = all */
    int test_subset;          /* test on the first N test images, 0 = all */
    bool is_test;             /* evaluate every fold's model on the test set */
    bool is_standardize;      /* per-pixel standardisation, fitted on each fold's training part */
    bool is_force;            /* overwrite an existing run directory */
    bool is_check_only;       /* check the settings, model and data, then stop: nothing is made */
    loom_train_config train;  /* train.seed makes the folds; fold k trains with derive(seed, k) */
    const char *command_line; /* recorded in config.txt */
} loom_cv_config;

/* 5 folds, loom_train_config_init's settings; then, when model is a zoo name, its defaults. */
LOOM_API void loom_cv_config_init(loom_cv_config *cc);
/* Errors as loom_run_apply_zoo_defaults. */
LOOM_API loom_status loom_cv_apply_zoo_defaults(loom_cv_config *cc, loom_error *err);

typedef struct {
    loom_history hist;
    double val_acc, val_f1, val_loss; /* the fold's final model on its validation part */
    double test_acc, test_f1;         /* on the test set, NaN when not tested */
    double seconds;
    uint32_t weights_hash; /* receipt: CRC-32 of the fold's final weights and state */
} loom_cv_fold;

typedef struct {
    loom_cv_fold *folds; /* (n_folds) owned */
    int n_folds;
    int best_fold; /* 0-based: highest validation accuracy, the first on ties */
    double val_acc_mean, val_acc_sd, val_f1_mean, val_f1_sd, val_loss_mean, val_loss_sd;
    double test_acc_mean, test_acc_sd, test_f1_mean, test_f1_sd; /* NaN when not tested */
    size_t n_params;
    uint32_t inputs_hash; /* receipt (receipt.txt): version, model text, settings, data */
    char run_dir[1024];
} loom_cv_result;
LOOM_API void
loom_cv_result_reset(loom_cv_result *r); /* frees the folds; accepts a zeroed result */

/* Stratified K-fold cross-validation of cc->model over train (test: the test set, needed when
 * cc->is_test, else may be NULL), each fold trained from scratch. Writes the run directory:
 * fold_<k>/history.csv (k from 1; and the fold's test files when tested), cv.csv, cv.json,
 * history_mean.csv, config.txt and the best fold's model.loom (and its test files).
 * Reset res (loom_cv_result_reset) after the call, also on failure. Errors: LOOM_ERR_ARG (no or
 * unknown model, folds outside 2..1000 or above the examples, is_test without test, a bad
 * lr_schedule, a run in out_dir without is_force), LOOM_ERR_IO, the model text's and training's. */
LOOM_API loom_status loom_cv_run(const loom_cv_config *cc, const loom_dataset *train,
                                 const loom_dataset *test, loom_cv_result *res, loom_error *err);
/* What `loom cv` does: loads the data from cc->data_dir (the test set only when is_test), then
 * loom_cv_run; its ownership and errors, and those of loom_dataset_load_dir. */
LOOM_API loom_status loom_cv(const loom_cv_config *cc, loom_cv_result *res, loom_error *err);

/* Search spaces (docs/SEARCH-SPACE.md): the model language with {ranges} and {choices}, repeat
 * blocks and training settings. */
typedef struct loom_space loom_space;
/* Parses a space; on success *out is owned by the caller (loom_space_destroy). Errors:
 * LOOM_ERR_FORMAT, reading "source:line: 'token': reason"; LOOM_ERR_NOMEM. */
LOOM_API loom_status loom_space_parse(loom_space **out, const char *text, const char *source,
                                      loom_error *err);
LOOM_API void loom_space_destroy(loom_space *s);                     /* accepts NULL */
LOOM_API int loom_space_n_hp(const loom_space *s);                   /* hyperparameters */
LOOM_API const char *loom_space_hp_name(const loom_space *s, int i); /* "dense_1_units", or name= */
/* "int 1..4", "float 0..0.3 step 0.1", "float 0.0001..0.01 log", "choice 512|256|128". */
LOOM_API void loom_space_hp_describe(const loom_space *s, int i, char *buf, size_t n);

typedef struct {
    char **values; /* (n_values = n_hp) values as text; NULL when inactive (a repetition
                    * beyond the drawn count) */
    int n_values;
    char *model_text; /* the model, one layer per line */
    char *train_text; /* training settings, "key=value" lines */
} loom_space_point;
/* Draws one point from seed. Every hyperparameter is drawn, in order, active or not, so a seed
 * always gives the same point. out is overwritten, not freed: the caller resets it
 * (loom_space_point_reset). Errors: LOOM_ERR_NOMEM (out is then reset). */
LOOM_API loom_status loom_space_sample(const loom_space *s, uint64_t seed, loom_space_point *out,
                                       loom_error *err);
LOOM_API void
loom_space_point_reset(loom_space_point *p); /* frees all it owns; accepts a zeroed point */

/* The search: `loom tune`. */
typedef enum { LOOM_TUNE_RANDOM = 0, LOOM_TUNE_HYPERBAND } loom_tune_algorithm;
typedef enum {
    LOOM_OBJECTIVE_VAL_ACC = 0, /* best epoch's validation accuracy, maximised */
    LOOM_OBJECTIVE_VAL_LOSS,    /* best epoch's validation loss, minimised */
    LOOM_OBJECTIVE_VAL_F1       /* the final model's validation macro F1, maximised */
} loom_objective;
/* "val_acc", "val_loss" or "val_f1" -> *out; anything else is LOOM_ERR_ARG. */
LOOM_API loom_status loom_objective_parse(const char *s, loom_objective *out, loom_error *err);
LOOM_API const char *loom_objective_str(loom_objective o); /* static text; "?" out of range */
/* A score as people read it, into buf (n bytes): accuracy and F1 in percent with two decimals
 * ("87.12%"), a loss with four ("0.3521"). Returns buf. */
LOOM_API const char *loom_objective_fmt(loom_objective o, double score, char *buf, size_t n);

typedef struct {
    const char *space_file; /* the search-space file */
    const char *space_text; /* or its text (space_file then only names it), may be NULL */
    const char *data_dir;   /* NULL = loom_default_data_dir() (loom_tune only) */
    const char *out_dir;    /* NULL = runs/tune-<space file name without extension> */
    loom_tune_algorithm algorithm;
    loom_objective objective;
    int trials;            /* random: trials (10); hyperband: points in the first round */
    int executions;        /* trainings per trial (1); the score is their mean */
    int eta;               /* hyperband: keep the best 1/eta with eta x the epochs (3) */
    int cv_folds;          /* score each execution by K-fold CV; 0 = one validation split */
    double val_split;      /* validation fraction without cv (0.2) */
    double budget_minutes; /* start no trial after this long (this session), 0 = none */
    int subset;            /* search on a stratified subset of the training set, 0 = all */
    int test_subset;       /* test the best on the first N test images, 0 = all */
    bool is_standardize;
    bool is_resume;              /* continue the search recorded in out_dir */
    bool is_force;               /* start over in an out_dir that holds a search */
    bool is_skip_best;           /* do not retrain and test the best trial */
    bool is_check_only;          /* check the space, settings and data, then stop: nothing made */
    bool is_refit_all;           /* retrain the best on the whole training set (training and
                                  * validation examples), for its epochs without early stopping;
                                  * default: execution 1 of the best trial, on the same split */
    bool is_verbose;             /* log every training epoch */
    loom_train_config train;     /* every trial's defaults; train.seed seeds the search */
    const char *train_overrides; /* "key=value" lines applied after the space's (command line) */
    int stop_after;              /* tests: stop as if killed after N new executions, 0 = off */
    const char *command_line;    /* recorded in tune.txt */
} loom_tune_config;
/* Defaults: random search for val_acc, 10 trials x 1 execution, eta 3, val_split 0.2, and
 * loom_train_config_init's training settings. */
LOOM_API void loom_tune_config_init(loom_tune_config *tc);

typedef struct {
    int trial; /* 0-based point number */
    int rung;  /* hyperband round, 0-based (0 in random search) */
    int epochs;
    double score;   /* mean over executions of each one's objective */
    double seconds; /* training time, summed over executions */
    char **values;  /* (n_hp) NULL when inactive; owned */
} loom_tune_trial;

typedef struct {
    int n_hp;
    char **hp_names;         /* (n_hp) owned */
    loom_tune_trial *trials; /* (n_trials) in the order they finished, owned */
    int n_trials;
    int best;          /* index into trials, -1 when none finished */
    loom_metrics test; /* the best trial retrained, on the test set, when has_test */
    bool has_test;
    bool is_budget_reached;
    uint32_t weights_hash; /* receipt of best/ (best/receipt.txt): its final weights */
    char *summary;         /* the results table (Markdown), best first, owned */
    char out_dir[1024];
} loom_tune_result;
LOOM_API void
loom_tune_result_reset(loom_tune_result *r); /* frees all it owns; accepts a zeroed result */

/* Searches tc's space on train and writes out_dir: tune.txt (settings), executions.csv (one line
 * appended and synced per finished execution), trials.csv, trials.json, summary.md, tune.log,
 * and best/ (the best trial retrained: model.loom, model.txt, config.txt, history.csv, and
 * tested on test when test is not NULL). LOOM_ERR_INTERRUPTED when stopped: rerun with
 * is_resume to continue; finished executions are kept and the result is the same.
 * Reset res (loom_tune_result_reset) after the call, also on failure. Errors: LOOM_ERR_ARG
 * (bad settings; out_dir holds a search and not is_resume/is_force, or one with other settings;
 * no trial finished), LOOM_ERR_FORMAT (the space, executions.csv), LOOM_ERR_IO, training's. */
LOOM_API loom_status loom_tune_run(const loom_tune_config *tc, const loom_dataset *train,
                                   const loom_dataset *test, loom_tune_result *res,
                                   loom_error *err);
/* What `loom tune` does: loads the data from tc->data_dir (the test set unless is_skip_best),
 * then loom_tune_run; its ownership and errors, and those of loom_dataset_load_dir. */
LOOM_API loom_status loom_tune(const loom_tune_config *tc, loom_tune_result *res, loom_error *err);

/* Comparing runs: `loom compare`. */
typedef struct {
    const char *const *run_dirs; /* (n_runs) train, cv or tune (its best/) directories */
    int n_runs;
    const char *out_dir; /* compare.md, compare.csv, compare.json; NULL = none */
    double alpha;        /* significance level of McNemar's test, 0.05 */
} loom_compare_config;

typedef struct {
    char *markdown; /* the tables, owned */
    int n_runs;
    int n_pairs;         /* pairs tested with McNemar's test */
    loom_mcnemar *tests; /* (n_pairs) owned */
    int (*pairs)[2];     /* (n_pairs) run indices, owned */
    char (*labels)[256]; /* (n_runs) each run's label in the tables, owned */
    int best;            /* the paired run with the highest test accuracy, -1 when none */
} loom_compare_result;
LOOM_API void loom_compare_result_reset(loom_compare_result *r); /* accepts a zeroed result */
/* Reads each run's config.txt, history.csv, metrics.json (cv.json for cross-validation) and
 * predictions.csv; tests every pair with predictions of the same test set. On success res is the
 * caller's (loom_compare_result_reset); on failure it is reset here. Errors: LOOM_ERR_ARG (no
 * runs, a directory without config.txt or best/config.txt), LOOM_ERR_IO (a missing history.csv or
 * cv.json, writing out_dir), LOOM_ERR_FORMAT (malformed files), LOOM_ERR_NOMEM. */
LOOM_API loom_status loom_compare(const loom_compare_config *cc, loom_compare_result *res,
                                  loom_error *err);
/* ---- prediction ------------------------------------------------------------------------------ */

/* Prediction with a loaded model (loom_model_load). The model is only read: any number of threads
 * may predict with one model at the same time, each call on its own workspace, as long as no
 * thread trains it or runs loom_model_forward on it meanwhile. Call loom_set_threads (if at all)
 * before starting threads. Inputs have the model's input shape (loom_model_input_shape): float
 * pixels are pixel/255 as in training (a model trained with standardisation applies it itself),
 * uint8 pixels are 0..255. Outputs are class probabilities (n, loom_model_n_outputs(m)): the
 * softmax of the logits. Errors: LOOM_ERR_ARG (NULL pointer, n < 1), LOOM_ERR_NOMEM,
 * LOOM_ERR_NUMERIC (the model's output is not finite). */

/* Probabilities for n images x (n, H, W, C). Allocates a workspace for the call, frees it. */
LOOM_API loom_status loom_predict(const loom_model *m, const float *x, int n, float *probs,
                                  loom_error *err);
/* The same for uint8 pixels px (n, H, W, C), converted as pixel/255. */
LOOM_API loom_status loom_predict_u8(const loom_model *m, const uint8_t *px, int n, float *probs,
                                     loom_error *err);

/* A predictor: a workspace for batches of up to max_batch images with one model, reused across
 * calls so that no call allocates. Use one predictor per thread; many predictors may share a
 * model, which must outlive them. On success *out is owned by the caller
 * (loom_predictor_destroy). Errors: LOOM_ERR_ARG (NULL argument, max_batch < 1), LOOM_ERR_NOMEM. */
typedef struct loom_predictor loom_predictor;
LOOM_API loom_status loom_predictor_create(loom_predictor **out, const loom_model *m, int max_batch,
                                           loom_error *err);
LOOM_API void loom_predictor_destroy(loom_predictor *p); /* accepts NULL */
/* Probabilities for n >= 1 images, any n (run in batches of max_batch). */
LOOM_API loom_status loom_predictor_run(loom_predictor *p, const float *x, int n, float *probs,
                                        loom_error *err);
LOOM_API loom_status loom_predictor_run_u8(loom_predictor *p, const uint8_t *px, int n,
                                           float *probs, loom_error *err);

/* Name of output k of m: the class names it was trained with when its file records them (image
 * folders), else Fashion-MNIST's when m has 10 outputs, else "k" written into buf (at least 16
 * bytes). Returns storage of m, static storage or buf; never NULL. */
LOOM_API const char *loom_model_class_name(const loom_model *m, int k, char *buf);
/* Indices of the k largest of probs[0..n), largest first (ties: lower index first), into top;
 * k is clipped to n. Returns the number written. */
LOOM_API int loom_top_k(const float *probs, int n, int k, int *top);

/* An 8-bit image in memory. */
typedef struct {
    int W, H;    /* size in pixels */
    int C;       /* 1 (gray) or 3 (RGB) */
    uint8_t *px; /* (H, W, C) owned */
} loom_image;

/* Reads a PNG, JPEG or PGM/PPM (P2, P3, P5, P6) file, recognised by its content, of any bit
 * depth and colour type, into 8-bit gray or RGB (palette expanded, 16-bit scaled, alpha
 * composited on white, a JPEG's EXIF orientation applied). Sizes in the header are checked against
 * the file's length before any allocation; at most 65535 pixels a side and 2^26 pixels. On success
 * *out is owned by the caller (loom_image_destroy). Errors: LOOM_ERR_IO (cannot read),
 * LOOM_ERR_FORMAT (unknown, malformed, truncated or too large), LOOM_ERR_NOMEM. */
LOOM_API loom_status loom_image_load(loom_image **out, const char *path, loom_error *err);
LOOM_API void loom_image_destroy(loom_image *img); /* accepts NULL */
/* Writes px (H, W, C), C = 1 (gray) or 3 (RGB), as an 8-bit PNG, atomically (temporary file and
 * rename). Errors: LOOM_ERR_ARG (bad size), LOOM_ERR_IO, LOOM_ERR_NOMEM. */
LOOM_API loom_status loom_image_save_png(const char *path, const uint8_t *px, int W, int H, int C,
                                         loom_error *err);

typedef enum { LOOM_INVERT_AUTO = 0, LOOM_INVERT_ALWAYS, LOOM_INVERT_NEVER } loom_invert_mode;
/* How a colour image becomes one channel: BT.601 luma (0.299 R + 0.587 G + 0.114 B), the plain
 * mean of R, G and B, or one channel taken as it is. Gray images are used as they are. */
typedef enum {
    LOOM_GRAY_LUMA = 0,
    LOOM_GRAY_MEAN,
    LOOM_GRAY_RED,
    LOOM_GRAY_GREEN,
    LOOM_GRAY_BLUE
} loom_gray_mode;
/* Parses luma|mean|red|green|blue (also r, g, b); false when s is none of them. */
LOOM_API bool loom_gray_mode_parse(const char *s, loom_gray_mode *out);

/* Preprocessing to the Fashion-MNIST convention (a light garment on black, filling the frame). */
typedef struct {
    loom_invert_mode invert; /* auto: invert when the border is light (mean > 127) */
    bool is_crop;            /* crop to the object's bounding box */
    bool is_fit;             /* scale the longer side to the frame, keep the aspect ratio and
                              * centre; false: stretch to the frame */
    float crop_threshold;    /* object pixels exceed bg + this * (max - bg), bg = the border's
                              * median (after inversion) */
    loom_gray_mode gray;     /* colour to one channel (default luma) */
} loom_preprocess_config;
/* Defaults: luma, auto invert, crop, fit, threshold 0.05 (the dataset's own trimming used 5%). */
LOOM_API void loom_preprocess_config_init(loom_preprocess_config *c);

typedef struct {
    bool is_inverted;
    int crop_x, crop_y, crop_w, crop_h; /* the part of the image that was kept */
} loom_preprocess_info;

/* Turns img into out (H, W) uint8: gray (luma 0.299 R + 0.587 G + 0.114 B), inverted as
 * configured, cropped, then fitted with area averaging (a box filter) on a black frame. info
 * (may be NULL) says what was done. Errors: LOOM_ERR_ARG, LOOM_ERR_NOMEM (temporaries). */
LOOM_API loom_status loom_image_preprocess(const loom_image *img, const loom_preprocess_config *cfg,
                                           int H, int W, uint8_t *out, loom_preprocess_info *info,
                                           loom_error *err);

/* What `loom predict` does. */
typedef struct {
    const char *model_file;
    const char *const *images; /* (n_images) image files, preprocessed as `pre` says */
    int n_images;
    const char *idx_path; /* an IDX image file (plain or gzip): predicted as is; NULL = none */
    int top_k;            /* classes reported per image (default 3) */
    bool is_json;         /* one JSON document instead of one line per image */
    const char *save_dir; /* write each 28x28 input as DIR/<name>.png; NULL = don't */
    loom_preprocess_config pre;
    loom_log_fn log; /* per-image failures (LOOM_LOG_WARN); may be NULL */
    void *log_user;
} loom_predict_config;
LOOM_API void
loom_predict_config_init(loom_predict_config *pc); /* top_k 3, preprocessing defaults */

/* Loads the model and predicts every image and IDX example, writing the results to out: text
 * lines "NAME: CLASS P, CLASS P, ..." or one JSON document. An image that cannot be read is
 * logged and reported, and the others go on; the status is then that of the first failure, with
 * a message counting them. Errors: LOOM_ERR_ARG (nothing to predict, bad top_k), the model
 * file's and images' errors, LOOM_ERR_SHAPE (the model does not take 1-channel images, or the IDX
 * images have another size), LOOM_ERR_IO (writing). */
LOOM_API loom_status loom_run_predict(const loom_predict_config *pc, FILE *out, loom_error *err);

/* ---- generated C: a model as standalone C99 source ------------------------------------------ */

/* Writes out_dir/PREFIX.h and out_dir/PREFIX.c: the model m as C99 that needs only libm (weights
 * as static const arrays, no malloc, no global mutable state): int PREFIX_predict_ws(image,
 * probabilities, work) takes raw 0-255 pixels (H, W, C) and returns the class (layout:
 * docs/FORMATS.md, "Generated C"). prefix NULL or "" is "model". Both files are written as
 * temporaries in out_dir and renamed into place when whole (existing ones are replaced); on failure
 * neither is left. Errors: LOOM_ERR_ARG (NULL model or directory, a prefix that is not a C
 * identifier, a layer kind the export cannot write, named), LOOM_ERR_IO (out_dir is not a
 * writable directory), LOOM_ERR_NUMERIC (a weight is not finite), LOOM_ERR_NOMEM. */
LOOM_API loom_status loom_export_c(const loom_model *m, const char *out_dir, const char *prefix,
                                   loom_error *err);

/* ---- the study report: `loom report` ---------------------------------------------------- */

typedef struct {
    const char *const *run_dirs; /* (n_runs) train, cv and tune run directories */
    int n_runs;
    const char *out_dir;      /* REPORT.md and img/ go here (created) */
    const char *data_dir;     /* dataset section; NULL = the first run's, else the default */
    const char *title;        /* the report's title; NULL: "loom report: " and the runs' names */
    const char *note;         /* a line put at the top (e.g. "quick study: ..."), may be NULL */
    const char *command_line; /* how the report was made, may be NULL */
    double wall_seconds;      /* the study's wall time when known, else 0 */
    int n_earlier;   /* steps finished or begun in earlier sessions of a resumed study: then
                      * wall_seconds is the last session's only */
    loom_log_fn log; /* a line per file written, may be NULL */
    void *log_user;
} loom_report_config;

/* Writes out_dir/REPORT.md with its pictures in out_dir/img/: how it was produced, the dataset
 * (counts per class, sample grid), the comparison table with the published figures and
 * McNemar's tests, then per run its summary, architecture diagram, learning curves, confusion
 * heatmaps, per-class report and misclassified gallery; CV and tuning tables; overlays of the
 * validation accuracy of all runs. Missing optional files are skipped; a run directory with
 * nothing readable is an error naming it. Also writes compare.md, compare.csv and compare.json
 * there (loom_compare). Errors: LOOM_ERR_ARG (no runs), LOOM_ERR_IO (a directory without
 * history.csv, metrics.json, cv.csv or trials.csv; creating out_dir/img; writing),
 * LOOM_ERR_NOMEM. */
LOOM_API loom_status loom_report(const loom_report_config *rc, loom_error *err);

/* ---- the study: `loom study` ------------------------------------------------------------ */

/* ---- runs: what `loom train` / `loom eval` do, as library calls ------------------------------ */

/* Resolves a model name: a zoo name (looked up first), or a file holding model text (not parsed
 * here). *text_out is malloc'd, the caller frees it; *zoo_out (may be NULL) is set to the static
 * entry for zoo names, else NULL. Errors: LOOM_ERR_ARG (neither a zoo name nor a file),
 * LOOM_ERR_IO (cannot read the file), LOOM_ERR_NOMEM. */
LOOM_API loom_status loom_model_resolve(const char *name, char **text_out,
                                        const loom_zoo_entry **zoo_out, loom_error *err);

typedef struct {
    const char *model;    /* zoo name or model-text file */
    const char *data_dir; /* NULL = loom_default_data_dir() */
    const char *out_dir;  /* run directory; NULL = runs/<model> */
    double val_split;     /* fraction held out for validation, default 0.2 */
    loom_split_mode split_mode;
    bool is_standardize; /* per-pixel standardisation (statistics saved in the model) */
    int subset;          /* use only this many training examples (stratified), 0 = all */
    int test_subset;     /* evaluate on the first N test examples, 0 = all */
    bool is_force;       /* overwrite an existing run directory */
    bool is_skip_test;   /* do not evaluate on the test set at the end */
    bool is_resume;      /* continue the run in out_dir from its checkpoint */
    bool is_check_only;  /* check the settings, model and data, then stop: nothing is made */
    loom_train_config train;
    const char *command_line; /* recorded in config.txt */
} loom_run_config;

/* The settings table bound to rc's variables: every setting of a training run. */
LOOM_API loom_settings loom_run_settings(loom_run_config *rc);

/* Reads RUN_DIR/config.txt back into rc (for --resume): rc is initialised first, then out_dir =
 * run_dir (not copied) and is_resume are set. Strings in rc point into *owner, which the caller
 * frees (free) after the run; NULL on failure. Errors: those of loom_file_read_all, LOOM_ERR_ARG
 * (a bad optimizer or augment value), LOOM_ERR_FORMAT (no model= line). */
LOOM_API loom_status loom_run_config_load(loom_run_config *rc, const char *run_dir, char **owner,
                                          loom_error *err);

/* Parses an augmentation list ("none", "flip", "shift:N", comma-separated) into cfg; NULL or ""
 * is none. Errors: LOOM_ERR_ARG (an unknown item, N outside 0..8). Not thread-safe (strtok), nor
 * are its callers: loom_run_config_load, loom_run_apply_zoo_defaults, loom_cv_apply_zoo_defaults,
 * loom_setting_set, loom_space_parse, loom_tune_run. */
LOOM_API loom_status loom_augment_parse(const char *s, loom_train_config *cfg, loom_error *err);
/* The augmentation of cfg as loom_augment_parse reads it back to the same values. */
LOOM_API void loom_augment_format(const loom_train_config *cfg, char *buf, size_t n);

/* Defaults for rc; if model names a zoo entry its training defaults are applied (other names
 * are left alone; LOOM_ERR_ARG only for a zoo entry with a bad optimizer or augment value). */
LOOM_API void loom_run_config_init(loom_run_config *rc);
LOOM_API loom_status loom_run_apply_zoo_defaults(loom_run_config *rc, loom_error *err);

typedef struct {
    loom_history hist;
    loom_metrics test; /* valid when has_test */
    bool has_test;
    size_t n_params;
    uint32_t inputs_hash;  /* receipt: CRC-32 over version, model text, settings, data */
    uint32_t weights_hash; /* receipt: CRC-32 of the final weights and state */
    char run_dir[1024];
} loom_run_result;
LOOM_API void
loom_run_result_reset(loom_run_result *r); /* frees hist and test; accepts a zeroed result */

/* Trains rc->model and writes the run directory: model.loom, config.txt, history.csv,
 * checkpoint.loomck (every epoch, and every train.checkpoint_steps steps; on SIGINT/SIGTERM;
 * removed when the run finishes), train.log (every log line), summary.txt, receipt.txt
 * (reproducibility hashes), and for the test set metrics.json, confusion.csv and
 * predictions.csv (index,true,pred,prob per test image). Reset res (loom_run_result_reset) after
 * the call, also on failure. Errors: LOOM_ERR_ARG (no or unknown model, bad val_split or
 * lr_schedule, a run in out_dir without is_force or is_resume), LOOM_ERR_IO, the data's, the model
 * text's and loom_train's (after LOOM_ERR_NUMERIC or LOOM_ERR_INTERRUPTED model.loom is saved). */
LOOM_API loom_status loom_run_train(const loom_run_config *rc, loom_run_result *res,
                                    loom_error *err);

typedef struct {
    const char *model_file;
    const char *data_dir;        /* NULL = default */
    const char *split;           /* "test" (default), "train", "val" (the run's validation split) */
    const char *images, *labels; /* any IDX pair instead of data_dir/split */
    const char *out_dir; /* metrics.json, confusion.csv, predictions.csv here (created if need
                          * be); NULL = none */
    int batch;
    const char *tta; /* test-time augmentation: NULL or "none", or "flip" (loom_evaluate_tta) */
} loom_eval_config;
/* Evaluates a model file; fills mt (and, with ec->tta "flip", mt_tta with the flip-averaged
 * figures, written as metrics_tta.json, confusion_tta.csv and predictions_tta.csv beside the
 * plain files; mt is the plain evaluation either way): pass them zeroed and reset both
 * (loom_metrics_reset) after the call, also on failure. On success ds_out (may be NULL) receives
 * the dataset used (the caller destroys it, loom_dataset_destroy) so that class names can be
 * printed. Errors: those of loom_model_load, the data and loom_evaluate; LOOM_ERR_ARG (a bad split,
 * images without labels or labels without images), LOOM_ERR_SHAPE (the images do not fit the
 * model), LOOM_ERR_IO. */
LOOM_API loom_status loom_run_eval(const loom_eval_config *ec, loom_metrics *mt,
                                   loom_metrics *mt_tta, loom_dataset **ds_out, loom_error *err);

/* ---- benchmark ------------------------------------------------------------------------------ */

typedef struct {
    double train_ips, infer_ips;       /* images per second, median of the repeats */
    double train_gflops, infer_gflops; /* achieved, counting a training step as 3x forward */
    double train_min_ips, train_max_ips;
    int repeats, steps, batch;
    /* with is_layers: milliseconds per training step of each layer's forward and backward, of
     * the optimizer update, and of the rest (batch fill, loss), from one more repeat timed per
     * layer after the others (the clock reads do not touch the figures above) */
    int n_layers;
    struct {
        char name[96]; /* the layer as the model language writes it */
        double forward_ms, backward_ms;
    } layers[64];
    double update_ms, other_ms;
    double infer_int8_ips; /* with is_int8: inference of the int8 copy (loom_model_quantize) */
} loom_bench_result;

/* Times training steps (forward, backward, Adam update) and inference batches of model (zoo
 * name or model-text file) on random 28x28x1 images, median of repeats after one warm-up; a
 * repeat runs as many steps as take about seconds_per_repeat (at least 3); with is_layers, one
 * more repeat is timed layer by layer (r->layers); with is_int8, the model (its random weights) is
 * quantized on the fly, calibrated on the bench's random images, and its inference timed the same
 * way (r->infer_int8_ips); precision: the training steps' (loom_model_set_precision). Nothing to
 * free.
 * Errors: LOOM_ERR_ARG (batch < 1, repeats outside 1..100, an unknown model), those of the model
 * file and text (LOOM_ERR_IO, LOOM_ERR_FORMAT, LOOM_ERR_SHAPE), LOOM_ERR_NOMEM. */
LOOM_API loom_status loom_bench(const char *model, int batch, int repeats,
                                double seconds_per_repeat, bool is_layers, bool is_int8,
                                loom_precision precision, loom_bench_result *r, loom_error *err);
/* Times inference alone (as loom_bench's, the same random images and repeats) of model: a model
 * file with its weights, or a zoo name or model-text file with seed-1 weights. Sets
 * r->infer_ips, infer_gflops, repeats, steps and batch. Nothing to free. Errors: those of
 * loom_bench and of loom_model_load. */
LOOM_API loom_status loom_bench_infer(const char *model, int batch, int repeats,
                                      double seconds_per_repeat, loom_bench_result *r,
                                      loom_error *err);

#ifdef __cplusplus
}
#endif
#endif
