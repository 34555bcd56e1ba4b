/* test_layers.c - forward checks of conv, pooling and batchnorm against hand-computed values
 * (weights set through loom_model_params; conv W is (R*S*C, K), rows ordered (r, s, c)),
 * parser and shape errors, canonical model text, and bitwise-identical results for 1 and 2
 * threads. Inputs are (B, H, W, C) channels-last. */
#include "check.h"

#include "../src/model/model.h"
#include "../src/core/core.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Creates and prepares a model (for batches up to B) or returns NULL after a failed CHECK. */
static loom_model *make(const char *text, int H, int W, int C, int B) {
    loom_model *m = NULL;
    loom_error err = {0};
    loom_status st = loom_model_create(&m, text, "test", H, W, C, &err);
    CHECK_MSG(st == LOOM_OK, "%s: %s", text, err.msg);
    if (st)
        return NULL;
    st = loom_model_prepare(m, B, &err);
    CHECK_MSG(st == LOOM_OK, "%s: %s", text, err.msg);
    if (st) {
        loom_model_destroy(m);
        return NULL;
    }
    return m;
}

/* The 4x4 image 1..16 in row-major order, one channel. */
static void ramp16(float *x) {
    for (int i = 0; i < 16; i++)
        x[i] = (float)(i + 1);
}

/* 3x3 valid conv of the 4x4 ramp, two filters: all ones (+0.5), and w[r][s] = 3r + s (-1). */
static void test_conv_known_weights(void) {
    loom_model *m = make("conv 2 3x3, flatten", 4, 4, 1, 1);
    if (!m)
        return;
    CHECK(loom_model_n_params(m) == 9 * 2 + 2);
    float *p = loom_model_params(m); /* W (9, 2), b (2) */
    for (int r = 0; r < 3; r++)
        for (int s = 0; s < 3; s++) {
            p[(r * 3 + s) * 2 + 0] = 1.0f;
            p[(r * 3 + s) * 2 + 1] = (float)(3 * r + s);
        }
    p[18] = 0.5f;
    p[19] = -1.0f;
    float x[16];
    ramp16(x);
    const float *y = loom_model_forward(m, x, 1, false, NULL); /* (2, 2, 2) */
    /* window sums 54, 63, 90, 99; weighted: 294 at (0,0), +36 per column, +144 per row */
    const float want[8] = {54.5f, 293.0f, 63.5f, 329.0f, 90.5f, 437.0f, 99.5f, 473.0f};
    CHECK(loom_model_n_outputs(m) == 8);
    for (int i = 0; i < 8; i++)
        CHECK_NEAR(y[i], want[i], 1e-4);
    loom_model_destroy(m);
}

/* The im2col column order (r, s, c) matches the input's (h, w, c): with W[i] = i and a 3x3x2
 * input x[i] = i, the single output is sum i^2 over i < 18 = 1785. */
static void test_conv_channel_order(void) {
    loom_model *m = make("conv 1 3x3, flatten", 3, 3, 2, 2);
    if (!m)
        return;
    float *p = loom_model_params(m);
    for (int i = 0; i < 18; i++)
        p[i] = (float)i;
    p[18] = 0.0f;
    float x[36];
    for (int i = 0; i < 18; i++) {
        x[i] = (float)i;
        x[18 + i] = 1.0f; /* second example: sum of the weights, 153 */
    }
    const float *y = loom_model_forward(m, x, 2, false, NULL);
    CHECK_NEAR(y[0], 1785.0, 1e-3);
    CHECK_NEAR(y[1], 153.0, 1e-3);
    loom_model_destroy(m);
}

/* One filter of ones, bias 0, over the 4x4 ramp with the given padding; returns the output
 * (copied into out, n values). */
static void conv_ones(const char *text, int K2, float *out, int n) {
    loom_model *m = make(text, 4, 4, 1, 1);
    if (!m)
        return;
    CHECK(loom_model_n_outputs(m) == n);
    float *p = loom_model_params(m);
    for (int i = 0; i < K2; i++)
        p[i] = 1.0f;
    p[K2] = 0.0f;
    float x[16];
    ramp16(x);
    memcpy(out, loom_model_forward(m, x, 1, false, NULL), sizeof(float) * n);
    loom_model_destroy(m);
}

static void test_conv_same_padding(void) {
    float y[16];
    /* stride 1: 4x4 output, zero padding of one on every side */
    conv_ones("conv 1 3x3 same, flatten", 9, y, 16);
    CHECK_NEAR(y[0], 1 + 2 + 5 + 6, 1e-4);          /* corner */
    CHECK_NEAR(y[1], 1 + 2 + 3 + 5 + 6 + 7, 1e-4);  /* top edge */
    CHECK_NEAR(y[4], 1 + 2 + 5 + 6 + 9 + 10, 1e-4); /* left edge */
    CHECK_NEAR(y[5], 54, 1e-4);                     /* interior */
    CHECK_NEAR(y[15], 11 + 12 + 15 + 16, 1e-4);     /* bottom-right corner */
    /* stride 2: out = ceil(4/2) = 2, pad_total = 1 -> none on top/left, one row/column at the
     * bottom/right (TensorFlow's split) */
    conv_ones("conv 1 3x3 s2 same, flatten", 9, y, 4);
    CHECK_NEAR(y[0], 54, 1e-4);
    CHECK_NEAR(y[1], 3 + 4 + 7 + 8 + 11 + 12, 1e-4);
    CHECK_NEAR(y[2], 9 + 10 + 11 + 13 + 14 + 15, 1e-4);
    CHECK_NEAR(y[3], 11 + 12 + 15 + 16, 1e-4);
    /* even kernel, stride 1: pad_total = 1, all of it at the bottom/right */
    conv_ones("conv 1 2x2 same, flatten", 4, y, 16);
    CHECK_NEAR(y[0], 1 + 2 + 5 + 6, 1e-4);
    CHECK_NEAR(y[3], 4 + 8, 1e-4);
    CHECK_NEAR(y[12], 13 + 14, 1e-4);
    CHECK_NEAR(y[15], 16, 1e-4);
    /* 4x4 kernel: pad_total = 3 -> 1 on top/left, 2 at the bottom/right */
    conv_ones("conv 1 4x4 same, flatten", 16, y, 16);
    CHECK_NEAR(y[0], 1 + 2 + 3 + 5 + 6 + 7 + 9 + 10 + 11, 1e-4); /* rows/columns -1..2 */
    CHECK_NEAR(y[15], 11 + 12 + 15 + 16, 1e-4);                  /* rows/columns 2..5 */
}

static void test_conv_shapes(void) {
    struct {
        const char *text;
        int H, W, C, n_out;
        size_t n_params;
    } cases[] = {
        {"conv 32 3x3, flatten", 28, 28, 1, 26 * 26 * 32, 320},
        {"conv 64 3x3, flatten", 13, 13, 32, 11 * 11 * 64, 18496},
        {"conv 32 3x3 s2, flatten", 26, 26, 32, 12 * 12 * 32, 9248},
        {"conv 8 3x3 same, flatten", 7, 7, 1, 7 * 7 * 8, 80},
        {"conv 8 3x3 s2 same, flatten", 7, 7, 1, 4 * 4 * 8, 80},
        {"conv 8 3x3 s2 same, flatten", 8, 8, 1, 4 * 4 * 8, 80},
        {"conv 4 5x5 stride 2 valid tanh, flatten", 9, 9, 3, 3 * 3 * 4, 5 * 5 * 3 * 4 + 4},
        {"conv 4 1x3, flatten", 5, 5, 2, 5 * 3 * 4, 1 * 3 * 2 * 4 + 4},
        {"maxpool 2, flatten", 26, 26, 32, 13 * 13 * 32, 0},
        {"maxpool 2, flatten", 11, 11, 64, 5 * 5 * 64, 0},
        {"maxpool 3 stride 2, flatten", 7, 7, 2, 3 * 3 * 2, 0},
        {"avgpool 2 s1, flatten", 4, 4, 3, 3 * 3 * 3, 0},
        {"globalavgpool", 5, 5, 7, 7, 0},
        {"batchnorm, flatten", 5, 5, 7, 5 * 5 * 7, 14},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        loom_model *m = make(cases[i].text, cases[i].H, cases[i].W, cases[i].C, 1);
        if (!m)
            continue;
        CHECK_MSG(loom_model_n_outputs(m) == cases[i].n_out, "%s: %d outputs", cases[i].text,
                  loom_model_n_outputs(m));
        CHECK_MSG(loom_model_n_params(m) == cases[i].n_params, "%s: %zu params", cases[i].text,
                  loom_model_n_params(m));
        loom_model_destroy(m);
    }
    loom_model *m = make("conv 32 3x3, flatten", 28, 28, 1, 1);
    if (m) { /* 2 H'W' K R S C + H'W' K */
        CHECK_NEAR(loom_model_flops(m), 2.0 * 676 * 32 * 9 + 676 * 32, 0.5);
        loom_model_destroy(m);
    }
}

static void test_maxpool(void) {
    /* two channels: channel 0 the ramp, channel 1 its negative */
    loom_model *m = make("maxpool 2, flatten", 4, 4, 2, 1);
    if (!m)
        return;
    float x[32];
    for (int i = 0; i < 16; i++) {
        x[2 * i] = (float)(i + 1);
        x[2 * i + 1] = -(float)(i + 1);
    }
    const float *y = loom_model_forward(m, x, 1, false, NULL); /* (2, 2, 2) */
    const float want[8] = {6, -1, 8, -3, 14, -9, 16, -11};
    for (int i = 0; i < 8; i++)
        CHECK_NEAR(y[i], want[i], 0);
    loom_model_destroy(m);

    /* overlapping windows: 3x3 stride 2 over a 5x5 ramp -> maxima at (2,2), (2,4), ... */
    m = make("maxpool 3 stride 2, flatten", 5, 5, 1, 1);
    if (!m)
        return;
    float x5[25];
    for (int i = 0; i < 25; i++)
        x5[i] = (float)((i * 7) % 25); /* a permutation of 0..24 */
    y = loom_model_forward(m, x5, 1, false, NULL);
    for (int oh = 0; oh < 2; oh++)
        for (int ow = 0; ow < 2; ow++) {
            float best = -1;
            for (int p = 0; p < 3; p++)
                for (int q = 0; q < 3; q++) {
                    float v = x5[(oh * 2 + p) * 5 + ow * 2 + q];
                    best = v > best ? v : best;
                }
            CHECK_NEAR(y[oh * 2 + ow], best, 0);
        }
    loom_model_destroy(m);

    /* ties: the gradient goes to the first maximum in window order only */
    m = make("maxpool 2, flatten", 2, 2, 1, 1);
    if (!m)
        return;
    float xt[4] = {1, 3, 3, 3}, dy[1] = {2.0f}, dx[4];
    y = loom_model_forward(m, xt, 1, true, NULL);
    CHECK_NEAR(y[0], 3, 0);
    layer *l = &m->layers[0];
    l->ops->backward(l, xt, m->acts[0], dy, dx, 1);
    CHECK(dx[0] == 0 && dx[1] == 2 && dx[2] == 0 && dx[3] == 0);
    loom_model_destroy(m);
}

static void test_avgpool(void) {
    loom_model *m = make("avgpool 2, flatten", 4, 4, 1, 1);
    if (!m)
        return;
    float x[16];
    ramp16(x);
    const float *y = loom_model_forward(m, x, 1, false, NULL);
    const float want[4] = {3.5f, 5.5f, 11.5f, 13.5f};
    for (int i = 0; i < 4; i++)
        CHECK_NEAR(y[i], want[i], 1e-6);
    loom_model_destroy(m);

    m = make("globalavgpool", 4, 4, 2, 2);
    if (!m)
        return;
    float x2[64];
    for (int b = 0; b < 2; b++)
        for (int i = 0; i < 16; i++) {
            x2[b * 32 + 2 * i] = (float)(i + 1) * (b + 1);
            x2[b * 32 + 2 * i + 1] = 5.0f;
        }
    y = loom_model_forward(m, x2, 2, false, NULL); /* (2, 2) */
    CHECK_NEAR(y[0], 8.5, 1e-6);
    CHECK_NEAR(y[1], 5.0, 1e-6);
    CHECK_NEAR(y[2], 17.0, 1e-6);
    CHECK_NEAR(y[3], 5.0, 1e-6);
    loom_model_destroy(m);
}

/* Evaluation: y = gamma (x - running_mean) / sqrt(running_var + eps) + beta. */
static void test_batchnorm_eval(void) {
    loom_model *m = make("batchnorm, flatten", 2, 2, 2, 1);
    if (!m)
        return;
    CHECK(loom_model_n_params(m) == 4 && loom_model_n_state(m) == 4);
    loom_model_init(m, 1);
    float *p = loom_model_params(m), *s = loom_model_state(m);
    CHECK(p[0] == 1 && p[1] == 1 && p[2] == 0 && p[3] == 0); /* gamma 1, beta 0 */
    CHECK(s[0] == 0 && s[1] == 0 && s[2] == 1 && s[3] == 1); /* mean 0, var 1 */
    const float gamma[2] = {2, 1}, beta[2] = {0.5f, 0}, mean[2] = {1, -2}, var[2] = {4, 0.25f};
    memcpy(p, gamma, sizeof gamma);
    memcpy(p + 2, beta, sizeof beta);
    memcpy(s, mean, sizeof mean);
    memcpy(s + 2, var, sizeof var);
    float x[8] = {0, 1, 2, 3, -1, -2, 5, 0.5f};
    const float *y = loom_model_forward(m, x, 1, false, NULL);
    for (int i = 0; i < 8; i++) {
        int k = i % 2;
        double want = gamma[k] * (x[i] - mean[k]) / sqrt(var[k] + 1e-3) + beta[k];
        CHECK_NEAR(y[i], want, 1e-5);
    }
    CHECK_NEAR(y[0], 2 * (0 - 1) / sqrt(4.001) + 0.5, 1e-5);
    CHECK(s[0] == 1 && s[2] == 4); /* evaluation leaves the statistics alone */
    loom_model_destroy(m);
}

/* Training: per-channel output mean 0 and variance var/(var+eps) ~ 1; running statistics move
 * by (1 - momentum) towards the batch's biased statistics. */
static void test_batchnorm_train(void) {
    enum { B = 4, H = 3, W = 3, C = 3, M = B * H * W };
    loom_model *m = make("conv 3 1x1, batchnorm, flatten", H, W, C, B);
    if (!m)
        return;
    loom_model_init(m, 3);
    loom_rng rng;
    loom_rng_seed(&rng, 11);
    float x[M * C];
    for (int i = 0; i < M * C; i++)
        x[i] = 3.0f * loom_rng_normal(&rng) + (float)(i % C);
    float *p = loom_model_params(m);
    memset(p, 0, sizeof(float) * 12); /* conv: identity, bias (1, 2, 3) */
    for (int k = 0; k < 3; k++) {
        p[k * 3 + k] = 1.0f;
        p[9 + k] = (float)(k + 1);
    }
    const float *y = loom_model_forward(m, x, B, true, &rng);
    const float *s = loom_model_state(m);
    for (int k = 0; k < C; k++) {
        double mx = 0, vx = 0, my = 0, vy = 0;
        for (int i = 0; i < M; i++) {
            mx += x[i * C + k] + (k + 1);
            my += y[i * C + k];
        }
        mx /= M;
        my /= M;
        for (int i = 0; i < M; i++) {
            double dx = x[i * C + k] + (k + 1) - mx, dy = y[i * C + k] - my;
            vx += dx * dx;
            vy += dy * dy;
        }
        vx /= M;
        vy /= M;
        CHECK_NEAR(my, 0, 1e-5);
        CHECK_NEAR(vy, vx / (vx + 1e-3), 1e-4);
        CHECK_NEAR(vy, 1, 1e-3);
        CHECK_NEAR(s[k], 0.01 * mx, 1e-5);            /* running mean */
        CHECK_NEAR(s[C + k], 0.99 + 0.01 * vx, 1e-5); /* running (biased) variance */
    }
    loom_model_destroy(m);

    /* after dense: per feature over the batch */
    m = make("flatten, dense 4, batchnorm momentum 0.5", 2, 2, 1, 5);
    if (!m)
        return;
    loom_model_init(m, 5);
    float xd[20];
    for (int i = 0; i < 20; i++)
        xd[i] = loom_rng_normal(&rng);
    y = loom_model_forward(m, xd, 5, true, &rng);
    for (int k = 0; k < 4; k++) {
        double my = 0, vy = 0;
        for (int b = 0; b < 5; b++)
            my += y[b * 4 + k];
        my /= 5;
        for (int b = 0; b < 5; b++)
            vy += (y[b * 4 + k] - my) * (y[b * 4 + k] - my);
        CHECK_NEAR(my, 0, 1e-5);
        CHECK_NEAR(vy / 5, 1, 0.05); /* var/(var+eps) with var of order 0.1..1 */
    }
    loom_model_destroy(m);
}

static void test_bad_lines(void) {
    const char *bad[] = {
        "conv 0 3x3",
        "conv 32 3x3 s0",
        "conv 32 axb",
        "maxpool 0",
        "conv 32 3x3 bogus",
        "conv",
        "conv 32",
        "conv -4 3x3",
        "conv 32 0x3",
        "conv 32 3x3 stride",
        "conv 32 3x3 stride x",
        "conv 32 3x3 same valid",
        "conv 32 3x3 s2 s2",
        "conv 32 3x3 relu tanh",
        "conv 32 3x3 softmax",
        "conv 32 3x",
        "maxpool",
        "maxpool 2 stride 0",
        "maxpool 2 3",
        "maxpool 2 stride",
        "avgpool x",
        "globalavgpool 2",
        "batchnorm momentum 1.5",
        "batchnorm eps 0",
        "batchnorm foo",
        "batchnorm momentum",
        "batchnorm eps=-1",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        char text[128];
        snprintf(text, sizeof text, "%s, flatten, dense 2", bad[i]);
        loom_model *m = NULL;
        loom_error err = {0};
        loom_status st = loom_model_create(&m, text, "bad", 8, 8, 1, &err);
        CHECK_MSG(st == LOOM_ERR_FORMAT, "'%s' gave status %d: %s", bad[i], (int)st, err.msg);
        CHECK(m == NULL);
        loom_model_destroy(m);
    }
    /* the message names the offending word */
    loom_model *m = NULL;
    loom_error err = {0};
    loom_model_create(&m, "conv 32 3x3 bogus, flatten", "spec.txt", 8, 8, 1, &err);
    CHECK_MSG(strstr(err.msg, "'bogus'") && strstr(err.msg, "spec.txt:1"), "%s", err.msg);
    loom_model_create(&m, "conv 32 axb, flatten", "spec.txt", 8, 8, 1, &err);
    CHECK_MSG(strstr(err.msg, "'axb'"), "%s", err.msg);
}

static void test_shape_errors(void) {
    const char *bad[] = {
        "conv 4 5x5, flatten",             /* kernel larger than the 4x4 input */
        "conv 4 3x5, flatten",             /* wider than the input */
        "conv 4 3x3, conv 4 3x3, flatten", /* second conv sees 2x2 */
        "maxpool 5, flatten",              /* window larger than the input */
        "flatten, conv 4 1x1, flatten",    /* conv needs images */
        "flatten, maxpool 2, flatten",
        "flatten, globalavgpool",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        loom_model *m = NULL;
        loom_error err = {0};
        loom_status st = loom_model_create(&m, bad[i], "bad", 4, 4, 1, &err);
        CHECK_MSG(st == LOOM_ERR_SHAPE, "'%s' gave status %d: %s", bad[i], (int)st, err.msg);
        loom_model_destroy(m);
    }
    /* same padding accepts a kernel larger than the input, as TensorFlow does */
    loom_model *m = make("conv 2 5x5 same, flatten", 4, 4, 1, 1);
    if (m) {
        CHECK(loom_model_n_outputs(m) == 32);
        loom_model_destroy(m);
    }
}

/* Canonical text reads back to itself. */
static void test_describe(void) {
    const char *text = "conv 32 3x3 s2 same leaky_relu 0.2\n"
                       "conv 16 5x3 elu 0.5\n"
                       "conv 8 1x1 relu\n"
                       "batchnorm momentum 0.9 eps 1e-05\n"
                       "maxpool 3 stride 2\n"
                       "avgpool 2x3\n"
                       "batchnorm\n"
                       "globalavgpool\n"
                       "dense 10 softmax\n";
    loom_model *m = make("conv 32 3 stride 2 leaky_relu 0.2 same, conv 16 5x3 elu 0.5,"
                         "conv 8 1x1 valid relu, batchnorm eps=1e-5 momentum=0.9,"
                         "maxpool 3 s2, avgpool 2x3, batchnorm momentum 0.99,"
                         "globalavgpool, dense 10 softmax",
                         40, 40, 3, 1);
    if (!m)
        return;
    CHECK_MSG(strcmp(loom_model_text(m), text) == 0, "\n%s", loom_model_text(m));
    loom_model *m2 = make(loom_model_text(m), 40, 40, 3, 1);
    if (m2) {
        CHECK(strcmp(loom_model_text(m2), text) == 0);
        CHECK(loom_model_n_params(m2) == loom_model_n_params(m));
        loom_model_destroy(m2);
    }
    loom_model_destroy(m);
}

/* Forward and backward of a CNN over 64 examples: bitwise the same with 1 and 2 threads. */
static void run_cnn(const char *text, int threads, float *out, float *grads, float *state) {
    loom_set_threads(threads);
    enum { B = 64 };
    loom_model *m = make(text, 28, 28, 1, B);
    if (!m)
        return;
    loom_model_init(m, 42);
    float *x = malloc(sizeof(float) * B * 784), *d = malloc(sizeof(float) * B * 10);
    loom_rng rng;
    loom_rng_seed(&rng, 9);
    for (int i = 0; i < B * 784; i++)
        x[i] = loom_rng_uniform(&rng);
    for (int i = 0; i < B * 10; i++)
        d[i] = loom_rng_uniform(&rng) - 0.5f;
    loom_model_zero_grad(m);
    const float *y = loom_model_forward(m, x, B, true, &rng);
    memcpy(out, y, sizeof(float) * B * 10);
    loom_model_backward(m, d, B);
    memcpy(grads, loom_model_grads(m), sizeof(float) * loom_model_n_params(m));
    memcpy(state, loom_model_state(m), sizeof(float) * loom_model_n_state(m));
    free(x);
    free(d);
    loom_model_destroy(m);
}

static void test_thread_determinism(void) {
    const char *texts[] = {
        "conv 32 3x3 relu, maxpool 2, conv 64 3x3 relu, maxpool 2, flatten, dense 128 relu, "
        "dense 10",
        "conv 16 3x3 same relu, batchnorm, conv 16 3x3 s2 same, batchnorm, relu, avgpool 2, "
        "conv 8 1x1, globalavgpool, dense 10",
        /* a dense layer on 25,088 inputs: its forward product is split along the reduction */
        "conv 32 3x3 same relu, flatten, dense 10",
    };
    for (int t = 0; t < 3; t++) {
        loom_model *m = make(texts[t], 28, 28, 1, 1);
        if (!m)
            return;
        size_t np = loom_model_n_params(m), ns = loom_model_n_state(m) + 1;
        loom_model_destroy(m);
        float *o1 = calloc(640, sizeof(float)), *o2 = calloc(640, sizeof(float));
        float *g1 = calloc(np, sizeof(float)), *g2 = calloc(np, sizeof(float));
        float *s1 = calloc(ns, sizeof(float)), *s2 = calloc(ns, sizeof(float));
        run_cnn(texts[t], 1, o1, g1, s1);
        run_cnn(texts[t], 2, o2, g2, s2);
        CHECK_MSG(memcmp(o1, o2, sizeof(float) * 640) == 0, "model %d: outputs differ", t);
        CHECK_MSG(memcmp(g1, g2, sizeof(float) * np) == 0, "model %d: gradients differ", t);
        CHECK_MSG(memcmp(s1, s2, sizeof(float) * ns) == 0, "model %d: state differs", t);
        double gsum = 0;
        for (size_t i = 0; i < np; i++)
            gsum += fabs(g1[i]);
        CHECK(gsum > 0);
        free(o1), free(o2), free(g1), free(g2), free(s1), free(s2);
    }
    loom_set_threads(0);
}

/* gemm_par_ws against a product in double: split along K (few columns, a long reduction), with
 * and without work space, beta 0 and 1, on 1 and 2 threads (bitwise equal). */
static void test_gemm_split_k(void) {
    enum { M = 64, N = 100, K = 20000 };
    CHECK(gemm_splits_k(N, K));
    CHECK(!gemm_splits_k(128, K) && !gemm_splits_k(N, 4096));
    float *A = malloc(sizeof(float) * M * K), *Bm = malloc(sizeof(float) * K * N);
    float *C0 = malloc(sizeof(float) * M * N), *C1 = malloc(sizeof(float) * M * N);
    float *C2 = malloc(sizeof(float) * M * N), *C3 = malloc(sizeof(float) * M * N);
    float *work = malloc(sizeof(float) * M * N);
    double *ref = malloc(sizeof(double) * M * N);
    loom_rng rng;
    loom_rng_seed(&rng, 5);
    for (int i = 0; i < M * K; i++)
        A[i] = loom_rng_uniform(&rng) - 0.5f;
    for (int i = 0; i < K * N; i++)
        Bm[i] = loom_rng_uniform(&rng) - 0.5f;
    for (int beta = 0; beta < 2; beta++) {
        for (int i = 0; i < M; i++)
            for (int j = 0; j < N; j++) {
                double acc = beta ? 0.25 * (i - j) : 0.0;
                for (int k = 0; k < K; k++)
                    acc += 2.0 * A[(size_t)i * K + k] * Bm[(size_t)k * N + j];
                ref[i * N + j] = acc;
            }
        float *outs[4] = {C0, C1, C2, C3};
        for (int v = 0; v < 4; v++) {
            for (int i = 0; i < M * N; i++)
                outs[v][i] = 0.25f * (i / N - i % N);
            loom_set_threads(v == 3 ? 1 : 2);
            gemm_par_ws(M, N, K, 2.0f, A, K, Bm, N, beta ? 1.0f : 0.0f, outs[v], N,
                        v == 0 ? NULL : work);
        }
        loom_set_threads(0);
        double err0 = 0, err1 = 0;
        for (int i = 0; i < M * N; i++) {
            err0 = fmax(err0, fabs(C0[i] - ref[i]));
            err1 = fmax(err1, fabs(C1[i] - ref[i]));
        }
        CHECK_MSG(err0 < 1e-2 && err1 < 1e-2, "beta %d: max error %g without, %g with the split\n",
                  beta, err0, err1);
        CHECK(memcmp(C1, C2, sizeof(float) * M * N) == 0);
        CHECK_MSG(memcmp(C1, C3, sizeof(float) * M * N) == 0, "1 and 2 threads differ\n");
        CHECK(memcmp(C0, C1, sizeof(float) * M * N) != 0); /* the split did run */
    }
    free(A), free(Bm), free(C0), free(C1), free(C2), free(C3), free(work), free(ref);
}

/* Dropout outside training (and at rate 0) is passed through like a view: the model with it
 * gives the outputs and, on a backward pass after that forward, the gradients of the model
 * without it, bit for bit; the workspace path agrees; a training pass after it still drops. */
static void test_dropout_passed(void) {
    enum { B = 6 };
    const char *with = "conv 4 3x3 relu, dropout 0.5, flatten, dropout 0, dense 7 relu, "
                       "dropout 0.3, dense 3";
    const char *without = "conv 4 3x3 relu, flatten, dense 7 relu, dense 3";
    loom_model *a = make(with, 6, 6, 1, B), *b = make(without, 6, 6, 1, B);
    if (!a || !b) {
        loom_model_destroy(a), loom_model_destroy(b);
        return;
    }
    CHECK(loom_model_n_params(a) == loom_model_n_params(b));
    loom_model_init(a, 3);
    memcpy(loom_model_params(b), loom_model_params(a), sizeof(float) * loom_model_n_params(a));
    float x[B * 36], d[B * 3], ya[B * 3], yb[B * 3];
    loom_rng rng;
    loom_rng_seed(&rng, 4);
    for (int i = 0; i < B * 36; i++)
        x[i] = loom_rng_uniform(&rng);
    for (int i = 0; i < B * 3; i++)
        d[i] = loom_rng_uniform(&rng) - 0.5f;
    loom_model_forward(a, x, B, true, &rng); /* masks drawn first, then an eval pass */
    memcpy(ya, loom_model_forward(a, x, B, false, NULL), sizeof ya);
    /* passed, not copied: each dropout's output is its input's memory */
    CHECK(a->passed[1] && a->passed[3] && a->passed[5] && !a->passed[4]);
    CHECK(a->acts[1] == a->acts[0] && a->acts[5] == a->acts[4]);
    memcpy(yb, loom_model_forward(b, x, B, false, NULL), sizeof yb);
    CHECK(memcmp(ya, yb, sizeof ya) == 0);
    loom_model_zero_grad(a), loom_model_zero_grad(b);
    loom_model_backward(a, d, B);
    loom_model_backward(b, d, B);
    CHECK(memcmp(loom_model_grads(a), loom_model_grads(b),
                 sizeof(float) * loom_model_n_params(a)) == 0);
    size_t need = 0;
    model_forward_ws(a, x, B, NULL, 0, &need);
    float *ws = malloc(sizeof(float) * need);
    const float *yw = ws ? model_forward_ws(a, x, B, ws, need, NULL) : NULL;
    CHECK(yw && memcmp(yw, ya, sizeof ya) == 0);
    free(ws);
    /* training again: the layer's own buffer is back and the masks drop units */
    const float *yt = loom_model_forward(a, x, B, true, &rng);
    CHECK(memcmp(yt, ya, sizeof ya) != 0);
    CHECK(a->acts[1] != a->acts[0] && !a->passed[1] && a->passed[3]);
    loom_model_destroy(a), loom_model_destroy(b);
}

/* Inference in chunks (model_infer): each chunk's logits are those of a forward pass on that
 * chunk alone, bit for bit (so each chunk had a workspace of its own and the layers' shared
 * scratch held nothing over); close to one pass on the whole batch; the same on 1 and 2
 * threads; a model with a whole-batch layer is not chunked; a short workspace is refused. */
static void test_infer_chunks(void) {
    enum { B = 70 }; /* chunks of 32, 32 and 6 */
    const char *texts[] = {
        "flatten, dropout 0.2, dense 64 relu, dropout 0.3, dense 32 relu, dense 10",
        "conv 8 3x3 same relu, batchnorm, maxpool 2, conv 16 3x3 relu, avgpool 2, flatten, "
        "dense 10",
        "rows, lstm 16 recurrent-dropout 0.25, dense 10",
    };
    float *x = malloc(sizeof(float) * B * 784), *z1 = malloc(sizeof(float) * B * 10);
    float *z2 = malloc(sizeof(float) * B * 10), *one = malloc(sizeof(float) * B * 10);
    loom_rng rng;
    loom_rng_seed(&rng, 17);
    for (int i = 0; i < B * 784; i++)
        x[i] = loom_rng_uniform(&rng);
    for (int t = 0; t < 3; t++) {
        loom_set_threads(2);
        loom_model *m = make(texts[t], 28, 28, 1, B);
        if (!m)
            break;
        loom_model_init(m, 5);
        CHECK_MSG(m->iws != NULL, "model %d: not chunked", t);
        memcpy(z2, model_infer(m, x, B), sizeof(float) * B * 10);
        loom_set_threads(1);
        memcpy(z1, model_infer(m, x, B), sizeof(float) * B * 10);
        CHECK_MSG(memcmp(z1, z2, sizeof(float) * B * 10) == 0, "model %d: 1 and 2 threads", t);
        memcpy(one, loom_model_forward(m, x, B, false, NULL), sizeof(float) * B * 10);
        double worst = 0;
        for (int i = 0; i < B * 10; i++)
            worst = fmax(worst, fabs(one[i] - z2[i]));
        CHECK_MSG(worst < 1e-5, "model %d: chunks against the whole batch: %g", t, worst);
        for (int lo = 0; lo < B; lo += MODEL_CHUNK) {
            int b = B - lo < MODEL_CHUNK ? B - lo : MODEL_CHUNK;
            const float *y = loom_model_forward(m, x + (size_t)lo * 784, b, false, NULL);
            CHECK_MSG(memcmp(y, z2 + (size_t)lo * 10, sizeof(float) * b * 10) == 0,
                      "model %d: chunk at %d", t, lo);
        }
        size_t need = model_infer_floats(m, B, 2), one_slot = model_infer_floats(m, B, 1);
        CHECK(need == 2 * one_slot && one_slot > 0);
        float *ws = loom_xalloc(sizeof(float) * need), *out = malloc(sizeof(float) * B * 10);
        CHECK(model_infer_ws(m, x, B, ws, one_slot - 1, out) == NULL);
        loom_set_threads(2);
        CHECK(model_infer_ws(m, x, B, ws, one_slot, out) == out); /* one slot: one thread */
        CHECK(memcmp(out, z2, sizeof(float) * B * 10) == 0);
        free(ws), free(out);
        loom_model_destroy(m);
    }
    /* dense 10 on 16,384 inputs (training splits its reduction over the threads) infers in
     * chunks too, with the logits of one pass on the whole batch, bit for bit */
    loom_set_threads(2);
    loom_model *w = make("flatten, dense 10", 128, 128, 1, B);
    float *xw = malloc(sizeof(float) * B * 128 * 128);
    if (w && xw) {
        loom_model_init(w, 5);
        for (int i = 0; i < B * 128 * 128; i++)
            xw[i] = loom_rng_uniform(&rng);
        CHECK(w->iws != NULL);
        memcpy(z1, model_infer(w, xw, B), sizeof(float) * B * 10);
        CHECK(memcmp(z1, loom_model_forward(w, xw, B, false, NULL), sizeof(float) * B * 10) == 0);
    }
    free(xw);
    loom_model_destroy(w);
    loom_set_threads(0);
    free(x), free(z1), free(z2), free(one);
}

/* A few images at once (fewer than the conv layers' example split wants, one above all): the
 * conv layers split each image's output rows over the threads; every image's logits are those it
 * has inside a batch of 70 (chunks, each image whole on one thread), bit for bit, on 1 and 2
 * threads. Layers with valid and same padding, stride 2, filter counts with a 16-wide tail (24),
 * a half tail (8), and more than one block of 64 (80). */
static void test_infer_few_images(void) {
    enum { B = 70 };
    const char *texts[] = {
        "conv 8 3x3 relu, conv 24 3x3 same relu, maxpool 2, conv 80 3x3 s2 relu, flatten, "
        "dense 10",
        "conv 32 5x5 same relu, batchnorm, conv 64 3x3 s2 same, relu, flatten, dense 32 relu, "
        "dense 10",
        /* recurrent layers: their products at inference by gemm_fixed too (through the BLAS,
         * the second model's images gave other bits alone than inside the batch) */
        "rows, lstm 128, dense 10",
        "rows, gru 64 return-sequences, rnn 40, dense 10",
    };
    float *x = malloc(sizeof(float) * B * 784), *big = malloc(sizeof(float) * B * 10);
    loom_rng rng;
    loom_rng_seed(&rng, 23);
    for (int i = 0; i < B * 784; i++)
        x[i] = loom_rng_uniform(&rng);
    for (int t = 0; t < 4; t++) {
        loom_set_threads(2);
        loom_model *m = make(texts[t], 28, 28, 1, B);
        if (!m)
            break;
        loom_model_init(m, 9);
        memcpy(big, model_infer(m, x, B), sizeof(float) * B * 10);
        int n_bad = 0, n_tried = 0;
        for (int threads = 1; threads <= 2; threads++) {
            loom_set_threads(threads);
            for (int b = 1; b <= 3; b++)
                for (int lo = 0; lo + b <= B; lo += 29) {
                    const float *z = model_infer(m, x + (size_t)lo * 784, b);
                    n_tried++;
                    n_bad += memcmp(z, big + (size_t)lo * 10, sizeof(float) * b * 10) != 0;
                }
        }
        CHECK_MSG(n_bad == 0 && n_tried == 18, "model %d: %d of %d small batches differ", t, n_bad,
                  n_tried);
        double sum = 0;
        for (int i = 0; i < B * 10; i++)
            sum += fabs(big[i]);
        CHECK(sum > 0);
        loom_model_destroy(m);
    }
    loom_set_threads(0);
    free(x), free(big);
}

/* gemm_fixed: against a product in double; each row's bits the same whatever the rows around it
 * (M 1 and M 37), the threads (1 and 2) and the path (AVX-512 and plain C); columns not in the
 * product untouched. Shapes with tails in both directions, and one split over threads. */
static void test_gemm_fixed(void) {
    /* ... and 2-7 rows left under the 8-row tiles across several 64-column blocks; one column
     * block split into 8-row chunks over the threads (70 rows, 33 MFLOP) */
    const int shapes[][3] = {{37, 70, 33}, {9, 16, 5},    {40, 200, 300}, {1, 3, 1},
                             {6, 130, 40}, {3, 64, 2000}, {70, 48, 5000}, {15, 129, 7}};
    loom_rng rng;
    loom_rng_seed(&rng, 21);
    for (size_t t = 0; t < sizeof shapes / sizeof shapes[0]; t++) {
        int M = shapes[t][0], N = shapes[t][1], K = shapes[t][2], lda = K + 1, ldb = N + 3,
            ldc = N + 2;
        float *A = malloc(sizeof(float) * M * lda), *Bm = malloc(sizeof(float) * K * ldb);
        float *C[3];
        for (int v = 0; v < 3; v++)
            C[v] = malloc(sizeof(float) * M * ldc);
        for (int i = 0; i < M * lda; i++)
            A[i] = loom_rng_uniform(&rng) - 0.5f;
        for (int i = 0; i < K * ldb; i++)
            Bm[i] = loom_rng_uniform(&rng) - 0.5f;
        for (int v = 0; v < 3; v++)
            for (int i = 0; i < M * ldc; i++)
                C[v][i] = (float)(i % 5) - 2.0f;
        loom_set_threads(2);
        gemm_fixed(M, N, K, A, lda, Bm, ldb, C[0], ldc); /* all rows at once, 2 threads */
        loom_set_threads(1);
        for (int i = 0; i < M; i++) /* one row at a time */
            gemm_fixed(1, N, K, A + (size_t)i * lda, lda, Bm, ldb, C[1] + (size_t)i * ldc, ldc);
        gemm_fixed_force_portable(true);
        gemm_fixed(M, N, K, A, lda, Bm, ldb, C[2], ldc);
        gemm_fixed_force_portable(false);
        loom_set_threads(0);
        double worst = 0;
        for (int i = 0; i < M; i++)
            for (int j = 0; j < N; j++) {
                double ref = (i * ldc + j) % 5 - 2.0;
                for (int k = 0; k < K; k++)
                    ref += (double)A[i * lda + k] * Bm[k * ldb + j];
                worst = fmax(worst, fabs(C[0][i * ldc + j] - ref));
            }
        CHECK_MSG(worst < 1e-4, "M %d N %d K %d: max error %g", M, N, K, worst);
        CHECK_MSG(memcmp(C[0], C[1], sizeof(float) * M * ldc) == 0, "rows alone differ (t %zu)", t);
        CHECK_MSG(memcmp(C[0], C[2], sizeof(float) * M * ldc) == 0, "plain C differs (t %zu)", t);
        for (int i = 0; i < M; i++)
            for (int j = N; j < ldc; j++)
                CHECK(C[0][i * ldc + j] == (float)((i * ldc + j) % 5) - 2.0f);
        free(A), free(Bm);
        for (int v = 0; v < 3; v++)
            free(C[v]);
    }
}

/* gemm's own loop for the untransposed small products OpenBLAS would allocate for (N % 16 in
 * 1..8, M N K <= 10^6), and the shapes beside it, against a product in double. */
static void test_gemm_small_nn(void) {
    const int shapes[][3] = {{7, 24, 50},  {64, 100, 100}, {32, 17, 3}, {5, 8, 1},
                             {32, 10, 24}, {64, 24, 652},  {3, 16, 40}};
    /* the first four take gemm's own loop, the last three the BLAS */
    for (int t = 0; t < 7; t++)
        CHECK_MSG(gemm_nn_is_own(shapes[t][0], shapes[t][1], shapes[t][2]) == (t < 4), "shape %d",
                  t);
    loom_rng rng;
    loom_rng_seed(&rng, 12);
    for (size_t t = 0; t < sizeof shapes / sizeof shapes[0]; t++) {
        int M = shapes[t][0], N = shapes[t][1], K = shapes[t][2], lda = K + 3, ldb = N + 1,
            ldc = N + 2;
        float *A = malloc(sizeof(float) * M * lda), *Bm = malloc(sizeof(float) * K * ldb);
        float *C = malloc(sizeof(float) * M * ldc);
        for (int i = 0; i < M * lda; i++)
            A[i] = loom_rng_uniform(&rng) - 0.5f;
        for (int i = 0; i < K * ldb; i++)
            Bm[i] = loom_rng_uniform(&rng) - 0.5f;
        for (int beta = 0; beta < 2; beta++) {
            for (int i = 0; i < M * ldc; i++)
                C[i] = (float)(i % 7) - 3.0f;
            gemm(false, false, M, N, K, 1.5f, A, lda, Bm, ldb, beta ? 0.5f : 0.0f, C, ldc);
            double worst = 0;
            for (int i = 0; i < M; i++)
                for (int j = 0; j < N; j++) {
                    double ref = beta ? 0.5 * ((i * ldc + j) % 7 - 3.0) : 0.0;
                    for (int k = 0; k < K; k++)
                        ref += 1.5 * A[i * lda + k] * Bm[k * ldb + j];
                    worst = fmax(worst, fabs(C[i * ldc + j] - ref));
                }
            CHECK_MSG(worst < 1e-4, "M %d N %d K %d beta %d: max error %g", M, N, K, beta, worst);
            /* the padding between rows is not written */
            for (int i = 0; i < M; i++)
                for (int j = N; j < ldc; j++)
                    CHECK(C[i * ldc + j] == (float)((i * ldc + j) % 7) - 3.0f);
        }
        free(A), free(Bm), free(C);
    }
}

int main(void) {
    RUN(test_conv_known_weights);
    RUN(test_conv_channel_order);
    RUN(test_conv_same_padding);
    RUN(test_conv_shapes);
    RUN(test_maxpool);
    RUN(test_avgpool);
    RUN(test_batchnorm_eval);
    RUN(test_batchnorm_train);
    RUN(test_bad_lines);
    RUN(test_shape_errors);
    RUN(test_describe);
    RUN(test_thread_determinism);
    RUN(test_infer_chunks);
    RUN(test_infer_few_images);
    RUN(test_gemm_split_k);
    RUN(test_gemm_small_nn);
    RUN(test_gemm_fixed);
    RUN(test_dropout_passed);
    return check_report();
}
