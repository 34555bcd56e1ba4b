/* precision.c - the arithmetic a model trains in: fp32 everywhere (the default), or bf16
 * products in the 3x3 stride-1 conv layers (src/layers/conv2d_bf16.c), residual blocks'
 * inner layers included. A property of the model object, not of its file: inference is fp32. */
#include "model.h"

/* Sets every conv among ls (n), inside blocks too; the count that bf16 applies to. */
static int set_layers(layer *ls, int n, bool on) {
    int count = 0;
    for (int i = 0; i < n; i++) {
        layer *l = &ls[i];
        if (!layer_is_residual(l)) {
            count += conv_set_bf16(l, on);
            continue;
        }
        layer *parts = malloc(sizeof *parts * RESIDUAL_MAX_LAYERS), proj;
        if (!parts)
            continue; /* parts share their settings with the block's: none is set */
        int np = residual_parts(l, parts, RESIDUAL_MAX_LAYERS, &proj);
        count += set_layers(parts, np, on);
        if (proj.ops)
            count += conv_set_bf16(&proj, on);
        free(parts);
    }
    return count;
}

const char *loom_precision_str(loom_precision p) {
    return p == LOOM_PRECISION_BF16 ? "bf16" : "fp32";
}

loom_status loom_precision_parse(const char *s, loom_precision *out, loom_error *err) {
    if (s && strcmp(s, "fp32") == 0)
        *out = LOOM_PRECISION_FP32;
    else if (s && strcmp(s, "bf16") == 0)
        *out = LOOM_PRECISION_BF16;
    else
        return loom_error_set(err, LOOM_ERR_ARG, "precision: expected fp32 or bf16, got '%s'",
                              s ? s : "");
    return LOOM_OK;
}

loom_status model_set_precision_on(loom_model *m, loom_precision p, const loom_cpu *cpu,
                                   int *n_layers, loom_error *err) {
    if (p == LOOM_PRECISION_BF16 && !cpu->has_bf16)
        return loom_error_set(err, LOOM_ERR_ARG,
                              "precision bf16: this CPU has no AVX-512 BF16 (vdpbf16ps); use "
                              "precision fp32");
    int n = set_layers(m->layers, m->n_layers, p == LOOM_PRECISION_BF16);
    if (n_layers)
        *n_layers = p == LOOM_PRECISION_BF16 ? n : 0;
    return LOOM_OK;
}

loom_status loom_model_set_precision(loom_model *m, loom_precision p, int *n_layers,
                                     loom_error *err) {
    loom_cpu cpu;
    loom_cpu_features(&cpu);
    return model_set_precision_on(m, p, &cpu, n_layers, err);
}
