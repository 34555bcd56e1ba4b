/* quantized.h - what the int8 layer (quantized.c) offers the quantizer (src/model/quantize.c).
 * Internal to the library. */
#ifndef LOOM_QUANTIZED_H
#define LOOM_QUANTIZED_H

#include "layer.h"

/* The longest reduction whose int32 sums cannot overflow: 255 * 127 * N < 2^31. */
#define INT8_MAX_REDUCTION 66000

loom_status int8_parse(layer *l, int argc, char **argv, loom_error *err);
bool layer_is_int8(const layer *l);
/* Fills an int8 layer from the float layer it replaces: Wf (N, K) row-major and bias (K) (the
 * dense or conv parameters as they lie), the activation scale sx and zero point zp (0 or 128). */
void int8_fill(layer *l, const float *Wf, const float *bias, float sx, int zp);
/* The reduction length N and the columns K of an int8 layer. */
void int8_shape(const layer *l, int *N, int *K);

/* What the doors to other systems (ONNX, generated C) need of an int8 layer: the float layer's
 * lowering (kind, units, kernel, strides, padding, activation), N and K, the input's scale sx
 * and zero point zp (0 or 128), the weight scales sw (K) and the bias (K), views into the
 * layer. The weights through int8_weight. */
typedef struct {
    layer_lowering lw;
    int N, K, zp;
    float sx;
    const float *sw, *bias;
} int8_info;
void int8_info_of(const layer *l, int8_info *out);
/* q[n, k] of an int8 layer (n < N, k < K): rows in the float kernel's order. */
int int8_weight(const layer *l, int n, int k);

#endif
