/* test_grad_conv.c - finite-difference checks of conv (valid/same, strides, non-square and 1x1
 * kernels, every fused activation), the pooling kinds and batchnorm (training mode, after conv
 * and after dense), and a small full CNN. Inputs are (B, H, W, C) with H, W 6..9, C 1..3. */
#include "check.h"
#include "gradcheck.h"

#include <math.h>
#include <string.h>

static void test_conv_valid(void) {
    gradcheck_expect("conv 3 3x3, flatten, dense 4", 6, 6, 2, 2);
    gradcheck_expect("conv 2 3x3, flatten", 5, 7, 3, 3);
}

static void test_conv_stride(void) {
    gradcheck_expect("conv 3 3x3 s2, flatten, dense 4", 7, 7, 2, 2);
    gradcheck_expect("conv 2 3x3 stride 2, flatten", 8, 8, 1, 3); /* floor: (8-3)/2+1 = 3 */
    gradcheck_expect("conv 2 2x2 s3, flatten", 8, 7, 2, 2);
}

static void test_conv_same(void) {
    gradcheck_expect("conv 3 3x3 same, flatten, dense 4", 7, 7, 2, 2); /* odd, stride 1 */
    gradcheck_expect("conv 3 3x3 same, flatten, dense 4", 6, 6, 2, 2); /* even, stride 1 */
    gradcheck_expect("conv 2 3x3 s2 same, flatten", 7, 7, 2, 2);       /* odd, stride 2 */
    gradcheck_expect("conv 2 3x3 s2 same, flatten", 8, 6, 2, 3);       /* even, stride 2 */
    gradcheck_expect("conv 2 4x4 same, flatten", 6, 7, 1, 2);          /* even kernel */
    gradcheck_expect("conv 2 5x5 s2 same, flatten", 6, 6, 2, 2);
}

static void test_conv_kernels(void) {
    gradcheck_expect("conv 3 2x3, flatten, dense 3", 6, 7, 2, 2);
    gradcheck_expect("conv 2 3x1 same, flatten", 6, 6, 3, 2);
    gradcheck_expect("conv 4 1x1, flatten", 6, 6, 3, 2); /* no im2col */
    gradcheck_expect("conv 4 1, flatten, dense 3", 6, 6, 3, 2);
    gradcheck_expect("conv 3 1x1 s2, flatten", 7, 7, 2, 2);
    gradcheck_expect("conv 3 6x6, flatten", 6, 6, 2, 3); /* kernel = input: (1, 1, 3) */
}

static void test_conv_activations(void) {
    gradcheck_expect("conv 3 3x3 relu, flatten", 6, 6, 2, 2);
    gradcheck_expect("conv 3 3x3 leaky_relu 0.2, flatten", 6, 6, 2, 2);
    gradcheck_expect("conv 3 3x3 elu, flatten", 6, 6, 2, 2);
    gradcheck_expect("conv 3 3x3 same tanh, flatten", 6, 6, 2, 2);
    gradcheck_expect("conv 3 3x3 s2 sigmoid, flatten", 7, 7, 2, 2);
    gradcheck_expect("conv 3 1x1 relu, flatten", 6, 6, 2, 2);
}

static void test_pool(void) {
    gradcheck_expect("maxpool 2, flatten", 6, 6, 2, 2);
    gradcheck_expect("maxpool 2, flatten", 7, 7, 3, 2); /* floor drops the last row/column */
    gradcheck_expect("maxpool 3 stride 2, flatten", 7, 7, 2, 2); /* overlapping windows */
    gradcheck_expect("maxpool 2x3 s1, flatten", 6, 6, 1, 2);
    gradcheck_expect("avgpool 2, flatten", 6, 6, 2, 2);
    gradcheck_expect("avgpool 3 stride 2, flatten", 7, 7, 2, 2);
    gradcheck_expect("globalavgpool", 6, 6, 3, 2);
    gradcheck_expect("conv 4 3x3, globalavgpool, dense 3", 7, 7, 2, 2);
}

static void test_batchnorm(void) {
    gradcheck_expect("conv 3 3x3, batchnorm, flatten", 6, 6, 2, 3);
    gradcheck_expect("conv 3 3x3 same, batchnorm momentum 0.9 eps 1e-2, flatten, dense 4", 6, 6, 2,
                     2);
    gradcheck_expect("flatten, dense 5, batchnorm, dense 3", 6, 6, 1, 4);
    gradcheck_expect("batchnorm, flatten", 6, 6, 3, 2);
}

static void test_cnn(void) {
    gradcheck_expect("conv 4 3x3 relu, maxpool 2, conv 6 3x3 same, batchnorm, relu, "
                     "dropout 0.25, flatten, dense 10 softmax",
                     9, 9, 1, 3);
    gradcheck_expect("conv 4 3x3 same relu, conv 4 3x3 s2 elu, avgpool 2, flatten, dense 5", 9, 9,
                     2, 2);
}

/* The cache path (src/layers/conv2d.c): inputs large enough that a group holds one or two
 * examples (about 128k im2col floats each), so the batch is cut into several groups; with 18
 * examples of two, 9 groups fall into 8 reduction sets, one of them with two groups. */
static void test_conv_groups(void) {
    gradcheck_expect("conv 3 3x3 same relu, globalavgpool", 44, 44, 8, 3); /* 1 per group */
    gradcheck_expect("conv 2 3x3 s2 tanh, globalavgpool", 30, 30, 8, 5);   /* 2, 2, 1 */
    gradcheck_expect("conv 2 3x3, globalavgpool", 30, 30, 8, 18);          /* 9 groups */
}

/* The cache path gives bit-identical gradients for any thread count. */
static void test_conv_groups_threads(void) {
    gradcheck_threads_expect("conv 4 3x3 relu, maxpool 2, conv 3 3x3 same, flatten, dense 5", 30,
                             30, 8, 18, 3);
}

/* The direct AVX-512 kernels (forward, weight gradient, dx; src/layers/conv2d.c): tiles of
 * 1 to 4 filter vectors (16, 24 = 1.5, 70 = 64 + 6 filters, so masked lanes and two filter
 * blocks), rows of several pixel tiles with a remainder, and an input of 20 channels whose
 * gradient rows come in several tiles. Without AVX-512 these are more GEMM-path checks. */
void conv_set_direct(bool on); /* src/layers/layer.h */

static void test_conv_direct(void) {
    gradcheck_expect("conv 16 3x3 relu, globalavgpool", 14, 14, 1, 2);
    gradcheck_expect("conv 24 3x3 same, globalavgpool", 13, 13, 2, 2);
    gradcheck_expect("conv 70 3x3 s2, globalavgpool", 11, 11, 3, 2);
    gradcheck_expect("conv 20 3x3 tanh, conv 18 3x3 s2 same, globalavgpool", 15, 15, 1, 2);
    /* dx of stride-1 layers: the full convolution with the flipped kernel, valid and same,
     * odd and even kernels */
    gradcheck_expect("conv 5 3x3 tanh, conv 20 3x3, globalavgpool", 13, 12, 2, 2);
    gradcheck_expect("conv 3 3x3 elu, conv 17 3x3 same relu, globalavgpool", 12, 12, 1, 2);
    gradcheck_expect("conv 4 2x2 tanh, conv 6 4x4 same, globalavgpool", 11, 10, 2, 2);
    /* stride larger than the kernel in one axis; an even kernel strided with 'same' (odd
     * top padding); an input of 70 channels, so dx's inner convolution has two filter blocks */
    gradcheck_expect("conv 3 3x3 tanh, conv 8 1x3 s2 same, globalavgpool", 9, 10, 1, 2);
    gradcheck_expect("conv 3 3x3 tanh, conv 5 4x4 s2 same, globalavgpool", 11, 10, 1, 2);
    gradcheck_expect("conv 70 3x3 tanh, conv 5 3x3, globalavgpool", 8, 8, 1, 2);
}

/* ... and they agree with the GEMM path on zoo-sized layers: outputs and every gradient. */
static void test_conv_direct_vs_gemm(void) {
    enum { B = 5, H = 28 };
    const char *text = "conv 32 3x3 relu, conv 24 3x3 s2 same elu, conv 40 3x3 relu, "
                       "maxpool 2, conv 70 3x3 same relu, globalavgpool, dense 10";
    static float x[B * H * H], dl[B * 10], out[2][B * 10], g[2][65536];
    loom_rng rng;
    loom_rng_seed(&rng, 3);
    for (size_t i = 0; i < sizeof x / sizeof *x; i++)
        x[i] = loom_rng_uniform(&rng);
    for (size_t i = 0; i < sizeof dl / sizeof *dl; i++)
        dl[i] = loom_rng_uniform(&rng) - 0.5f;
    size_t n = 0;
    for (int d = 0; d < 2; d++) {
        conv_set_direct(d == 0);
        loom_model *m = NULL;
        loom_error err = {0};
        CHECK(loom_model_create(&m, text, "direct", H, H, 1, &err) == LOOM_OK);
        if (!m)
            break;
        loom_model_init(m, 6);
        CHECK(loom_model_prepare(m, B, &err) == LOOM_OK);
        n = loom_model_n_params(m);
        CHECK(n <= 65536);
        loom_model_zero_grad(m);
        memcpy(out[d], loom_model_forward(m, x, B, true, NULL), sizeof out[d]);
        loom_model_backward(m, dl, B);
        memcpy(g[d], loom_model_grads(m), sizeof(float) * (n <= 65536 ? n : 65536));
        loom_model_destroy(m);
    }
    conv_set_direct(true);
    double worst = 0, gmax = 0;
    for (int i = 0; i < B * 10; i++)
        worst = fmax(worst, fabs(out[0][i] - out[1][i]));
    CHECK_MSG(worst < 1e-5, "outputs differ by %.3g", worst);
    worst = 0;
    for (size_t i = 0; i < n; i++) {
        worst = fmax(worst, fabs(g[0][i] - g[1][i]));
        gmax = fmax(gmax, fabs(g[1][i]));
    }
    CHECK_MSG(gmax > 1e-4 && worst < 1e-5 * gmax, "gradients differ by %.3g (largest %.3g)", worst,
              gmax);
}

int main(void) {
    RUN(test_conv_valid);
    RUN(test_conv_stride);
    RUN(test_conv_same);
    RUN(test_conv_kernels);
    RUN(test_conv_activations);
    RUN(test_pool);
    RUN(test_batchnorm);
    RUN(test_cnn);
    RUN(test_conv_groups);
    RUN(test_conv_groups_threads);
    RUN(test_conv_direct);
    RUN(test_conv_direct_vs_gemm);
    return check_report();
}
