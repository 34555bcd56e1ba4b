/* common.c - shared pieces of the layer kinds: activation functions (used fused inside
 * dense/conv and as standalone layers), number parsing for the model language, and the
 * weight initialisers (Glorot uniform, He normal, orthogonal). */
#include "layer.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>

static const char *const act_names[] = {"linear", "relu", "leaky_relu", "elu", "tanh", "sigmoid"};

const char *act_name(act_kind a) { return act_names[a]; }

bool act_parse(const char *s, act_kind *out) {
    for (int i = 0; i < (int)(sizeof act_names / sizeof *act_names); i++)
        if (strcmp(s, act_names[i]) == 0) {
            *out = (act_kind)i;
            return true;
        }
    if (strcmp(s, "leakyrelu") == 0 || strcmp(s, "leaky-relu") == 0) {
        *out = ACT_LEAKY_RELU;
        return true;
    }
    if (strcmp(s, "none") == 0) {
        *out = ACT_NONE;
        return true;
    }
    return false;
}

void act_forward(act_kind a, float alpha, float *y, size_t n) {
    switch (a) {
    case ACT_NONE: break;
    case ACT_RELU:
#pragma omp simd
        for (size_t i = 0; i < n; i++)
            y[i] = y[i] > 0.0f ? y[i] : 0.0f;
        break;
    case ACT_LEAKY_RELU:
#pragma omp simd
        for (size_t i = 0; i < n; i++)
            y[i] = y[i] > 0.0f ? y[i] : alpha * y[i];
        break;
    case ACT_ELU:
        for (size_t i = 0; i < n; i++)
            y[i] = y[i] > 0.0f ? y[i] : alpha * expm1f(y[i]);
        break;
    case ACT_TANH:
        for (size_t i = 0; i < n; i++)
            y[i] = tanhf(y[i]);
        break;
    case ACT_SIGMOID:
        for (size_t i = 0; i < n; i++)
            y[i] = 1.0f / (1.0f + expf(-y[i]));
        break;
    }
}

void act_backward(act_kind a, float alpha, const float *y, float *dy, size_t n) {
    switch (a) {
    case ACT_NONE: break;
    case ACT_RELU:
#pragma omp simd
        for (size_t i = 0; i < n; i++)
            dy[i] = y[i] > 0.0f ? dy[i] : 0.0f;
        break;
    case ACT_LEAKY_RELU: /* alpha > 0: sign of y is the sign of the input */
#pragma omp simd
        for (size_t i = 0; i < n; i++)
            dy[i] = y[i] > 0.0f ? dy[i] : alpha * dy[i];
        break;
    case ACT_ELU: /* y = alpha (e^x - 1) for x <= 0, so f' = y + alpha */
#pragma omp simd
        for (size_t i = 0; i < n; i++)
            dy[i] = y[i] > 0.0f ? dy[i] : (y[i] + alpha) * dy[i];
        break;
    case ACT_TANH:
#pragma omp simd
        for (size_t i = 0; i < n; i++)
            dy[i] *= 1.0f - y[i] * y[i];
        break;
    case ACT_SIGMOID:
#pragma omp simd
        for (size_t i = 0; i < n; i++)
            dy[i] *= y[i] * (1.0f - y[i]);
        break;
    }
}

bool parse_int(const char *s, int *out) {
    if (!s || !*s)
        return false;
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (*end || errno || v < -2147483647L || v > 2147483647L)
        return false;
    *out = (int)v;
    return true;
}

bool parse_float(const char *s, float *out) {
    if (!s || !*s)
        return false;
    char *end;
    errno = 0;
    float v = strtof(s, &end);
    if (*end || errno || !isfinite(v))
        return false;
    *out = v;
    return true;
}

bool parse_kernel(const char *s, int *kh, int *kw) {
    char buf[32];
    if (strlen(s) >= sizeof buf)
        return false;
    strcpy(buf, s);
    char *x = strchr(buf, 'x');
    if (!x)
        return parse_int(buf, kh) && (*kw = *kh) > 0;
    *x = '\0';
    return parse_int(buf, kh) && parse_int(x + 1, kw) && *kh > 0 && *kw > 0;
}

void init_glorot_uniform(float *w, size_t n, int fan_in, int fan_out, loom_rng *rng) {
    float limit = sqrtf(6.0f / (float)(fan_in + fan_out));
    for (size_t i = 0; i < n; i++)
        w[i] = (2.0f * loom_rng_uniform(rng) - 1.0f) * limit;
}

void init_he_normal(float *w, size_t n, int fan_in, loom_rng *rng) {
    float sd = sqrtf(2.0f / (float)fan_in);
    for (size_t i = 0; i < n; i++)
        w[i] = sd * loom_rng_normal(rng);
}

/* Rows x cols matrix with orthonormal rows (rows <= cols) or columns, by modified Gram-Schmidt
 * on a Gaussian matrix, in double for stability. */
void init_orthogonal(float *w, int rows, int cols, loom_rng *rng) {
    bool tr = rows > cols; /* orthonormalise the shorter side */
    int r = tr ? cols : rows, c = tr ? rows : cols;
    double *a = malloc(sizeof(double) * (size_t)r * (size_t)c);
    if (!a) { /* fall back to scaled Gaussian; only reached when memory is exhausted */
        for (size_t i = 0; i < (size_t)rows * cols; i++)
            w[i] = loom_rng_normal(rng) / sqrtf((float)cols);
        return;
    }
    for (size_t i = 0; i < (size_t)r * c; i++)
        a[i] = loom_rng_normal(rng);
    for (int i = 0; i < r; i++) {
        double *ai = a + (size_t)i * c;
        for (int j = 0; j < i; j++) {
            double *aj = a + (size_t)j * c, dot = 0;
            for (int k = 0; k < c; k++)
                dot += ai[k] * aj[k];
            for (int k = 0; k < c; k++)
                ai[k] -= dot * aj[k];
        }
        double nrm = 0;
        for (int k = 0; k < c; k++)
            nrm += ai[k] * ai[k];
        nrm = sqrt(nrm) + 1e-12;
        for (int k = 0; k < c; k++)
            ai[k] /= nrm;
    }
    for (int i = 0; i < rows; i++)
        for (int j = 0; j < cols; j++)
            w[(size_t)i * cols + j] = (float)(tr ? a[(size_t)j * c + i] : a[(size_t)i * c + j]);
    free(a);
}

void layer_init_params(layer *l, loom_rng *rng) {
    if (l->ops->init_params) {
        l->ops->init_params(l, rng);
        return;
    }
    for (int g = 0; g < l->n_groups; g++) {
        param_group *pg = &l->groups[g];
        float *w = l->w + pg->off;
        if (pg->kind == GROUP_WEIGHT)
            init_glorot_uniform(w, pg->len, pg->fan_in, pg->fan_out, rng);
        else if (pg->kind == GROUP_BN_GAMMA)
            for (size_t j = 0; j < pg->len; j++)
                w[j] = 1.0f;
        else
            memset(w, 0, sizeof(float) * pg->len);
    }
}
