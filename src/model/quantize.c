/* quantize.c - post-training int8 quantization: a float model and calibration images in, a new
 * model out whose dense and conv layers are int8 layers (src/layers/quantized.c). The weights get
 * one symmetric scale per output column (max |w| / 127); each int8 layer's input gets one scale
 * per tensor from the calibration images: the given percentile of |x| over every value that
 * reaches the layer (100: the maximum), mapped to 255 when the input is never negative (after a
 * ReLU) and to 127 around a zero point of 128 otherwise. Every other layer is copied as it is. */
#include "../layers/quantized.h"
#include "model.h"

#include <math.h>

enum { HIST_BINS = 4096, CALIB_BATCH = 100 };

bool loom_model_is_quantized(const loom_model *m) {
    for (int i = 0; i < m->n_layers; i++)
        if (layer_is_int8(&m->layers[i]))
            return true;
    return false;
}

/* Whether layer l becomes an int8 layer: dense and conv, with a reduction int32 sums allow. */
static bool is_target(const layer *l) {
    if (!l->ops->lower)
        return false;
    layer_lowering lw;
    l->ops->lower(l, &lw);
    if (lw.kind == LOWER_DENSE)
        return l->in.d[0] <= INT8_MAX_REDUCTION;
    if (lw.kind == LOWER_CONV)
        return (double)lw.kh * lw.kw * l->in.d[2] <= INT8_MAX_REDUCTION;
    return false;
}

/* The statistics of each target layer's input over the calibration images. */
typedef struct {
    float amax[MODEL_MAX_LAYERS];
    bool has_negative[MODEL_MAX_LAYERS];
    uint64_t *hist; /* (n_layers, HIST_BINS) counts of |x| in [0, amax] */
} calib_stats;

/* Runs the calibration images through m (batches of CALIB_BATCH); pass 0 gathers the maxima,
 * pass 1 the histograms. */
static void calib_pass(loom_model *m, const bool *target, const float *x, int n, int pass,
                       calib_stats *cs) {
    size_t D = shape_size(m->in);
    for (int b0 = 0; b0 < n; b0 += CALIB_BATCH) {
        int B = n - b0 < CALIB_BATCH ? n - b0 : CALIB_BATCH;
        const float *xb = x + (size_t)b0 * D;
        loom_model_forward(m, xb, B, false, NULL);
        for (int i = 0; i < m->n_layers; i++) {
            if (!target[i])
                continue;
            const float *in = i == 0 ? xb : m->acts[i - 1];
            size_t len = shape_size(m->layers[i].in) * (size_t)B;
            if (pass == 0) {
                float amax = cs->amax[i];
                bool neg = cs->has_negative[i];
                for (size_t j = 0; j < len; j++) {
                    float v = fabsf(in[j]);
                    amax = v > amax ? v : amax;
                    neg |= in[j] < 0.0f;
                }
                cs->amax[i] = amax;
                cs->has_negative[i] = neg;
            } else if (cs->amax[i] > 0.0f) {
                uint64_t *h = cs->hist + (size_t)i * HIST_BINS;
                float to_bin = HIST_BINS / cs->amax[i];
                for (size_t j = 0; j < len; j++) {
                    int k = (int)(fabsf(in[j]) * to_bin);
                    h[k < HIST_BINS ? k : HIST_BINS - 1]++;
                }
            }
        }
    }
}

/* The clipping point: the upper edge of the bin where the count reaches percentile %. */
static float clip_at(const uint64_t *h, float amax, double percentile) {
    uint64_t total = 0;
    for (int k = 0; k < HIST_BINS; k++)
        total += h[k];
    double want = percentile / 100.0 * (double)total, cum = 0;
    for (int k = 0; k < HIST_BINS; k++) {
        cum += (double)h[k];
        if (cum >= want)
            return amax * (float)(k + 1) / HIST_BINS;
    }
    return amax;
}

loom_status loom_model_quantize(loom_model **out, loom_model *m, const float *x, int n,
                                double percentile, loom_error *err) {
    *out = NULL;
    if (loom_model_is_quantized(m))
        return loom_error_set(err, LOOM_ERR_ARG,
                              "quantize: the model is already quantized (it has int8 layers)");
    if (n < 1 || !x)
        return loom_error_set(err, LOOM_ERR_ARG, "quantize: no calibration images");
    if (!(percentile > 50.0 && percentile <= 100.0))
        return loom_error_set(err, LOOM_ERR_ARG, "quantize: percentile %g is outside (50, 100]",
                              percentile);
    bool target[MODEL_MAX_LAYERS] = {false};
    int n_target = 0;
    for (int i = 0; i < m->n_layers; i++) {
        target[i] = is_target(&m->layers[i]);
        n_target += target[i];
    }
    if (n_target == 0)
        return loom_error_set(err, LOOM_ERR_ARG,
                              "quantize: the model has no dense or conv layer to quantize");
    calib_stats cs = {0};
    char *text = NULL;
    loom_model *q = NULL;
    loom_status st = loom_model_prepare(m, n < CALIB_BATCH ? n : CALIB_BATCH, err);
    if (st)
        return st;
    calib_pass(m, target, x, n, 0, &cs);
    if (percentile < 100.0) {
        cs.hist = calloc((size_t)m->n_layers * HIST_BINS, sizeof *cs.hist);
        if (!cs.hist) {
            st = loom_error_set(err, LOOM_ERR_NOMEM, "quantize: out of memory");
            goto done;
        }
        calib_pass(m, target, x, n, 1, &cs);
    }
    /* the text: "int8 " before each target's line */
    size_t cap = 64, used = 0;
    for (int i = 0; i < m->n_layers; i++)
        cap += 256 + 8;
    text = malloc(cap);
    if (!text) {
        st = loom_error_set(err, LOOM_ERR_NOMEM, "quantize: out of memory");
        goto done;
    }
    text[0] = '\0';
    for (int i = 0; i < m->n_layers; i++) {
        char line[256];
        m->layers[i].ops->describe(&m->layers[i], line, sizeof line);
        used += (size_t)snprintf(text + used, cap - used, "%s%s\n", target[i] ? "int8 " : "", line);
    }
    int H = m->in.d[0], W = m->in.d[1], C = m->in.d[2];
    if ((st = loom_model_create(&q, text, "quantized model", H, W, C, err)))
        goto done;
    for (int i = 0; i < m->n_layers; i++) {
        const layer *l = &m->layers[i];
        layer *lq = &q->layers[i];
        if (!target[i]) {
            memcpy(lq->w, l->w, sizeof(float) * l->n_params);
            memcpy(lq->state, l->state, sizeof(float) * l->n_state);
            continue;
        }
        int N, K, zp = cs.has_negative[i] ? 128 : 0;
        int8_shape(lq, &N, &K);
        float clip =
            cs.hist ? clip_at(cs.hist + (size_t)i * HIST_BINS, cs.amax[i], percentile) : cs.amax[i];
        int8_fill(lq, l->w, l->w + (size_t)N * K, clip / (zp ? 127.0f : 255.0f), zp);
    }
    *out = q;
    q = NULL;
done:
    loom_model_destroy(q);
    free(text);
    free(cs.hist);
    return st;
}
