/* test_grad_core.c - finite-difference checks of dense, the activations, dropout, flatten,
 * and the softmax cross-entropy loss. */
#include "check.h"
#include "gradcheck.h"

#include <stdlib.h>
#include <string.h>

static void test_dense(void) {
    gradcheck_expect("flatten, dense 7", 3, 2, 2, 4);
    gradcheck_expect("flatten, dense 6 relu, dense 5", 3, 3, 1, 5);
    gradcheck_expect("flatten, dense 6 tanh, dense 3 softmax", 2, 2, 3, 3);
}

static void test_activations(void) {
    gradcheck_expect("flatten, dense 8, sigmoid, dense 4", 2, 3, 1, 3);
    gradcheck_expect("flatten, dense 8, elu, dense 4", 2, 3, 1, 3);
    gradcheck_expect("flatten, dense 8, elu 0.5, dense 4", 2, 3, 1, 3);
    gradcheck_expect("flatten, dense 8, leaky_relu 0.1, dense 4", 2, 3, 1, 3);
    gradcheck_expect("flatten, dense 8 leaky_relu, dense 4 sigmoid", 2, 3, 1, 3);
    gradcheck_expect("flatten, tanh, dense 4 elu", 2, 3, 1, 3);
}

static void test_dropout(void) {
    gradcheck_expect("flatten, dropout 0.5, dense 6 relu, dropout 0.3, dense 3", 2, 4, 1, 4);
}

enum { XB = 3, XN = 5 };

/* The loss under test: the plain function at smoothing 0, else the smoothed one. */
static double xent(const float *z, const int *y, float smoothing, float *dz, int *correct) {
    return smoothing > 0 ? loom_softmax_xent_smooth(z, y, XB, XN, smoothing, dz, correct)
                         : loom_softmax_xent(z, y, XB, XN, dz, correct);
}

/* z (XB, XN) filled from seed, then analytic dlogits against central differences of the mean
 * loss. */
static void check_xent_differences(float smoothing, const int *y, uint64_t seed, float *z) {
    float dz[XB * XN];
    loom_rng rng;
    loom_rng_seed(&rng, seed);
    for (int i = 0; i < XB * XN; i++)
        z[i] = 4.0f * loom_rng_uniform(&rng) - 2.0f;
    int correct;
    CHECK(xent(z, y, smoothing, dz, &correct) > 0);
    for (int i = 0; i < XB * XN; i++) {
        float old = z[i];
        z[i] = old + 1e-3f;
        double lp = xent(z, y, smoothing, NULL, &correct) / XB;
        z[i] = old - 1e-3f;
        double lm = xent(z, y, smoothing, NULL, &correct) / XB;
        z[i] = old;
        CHECK_NEAR(dz[i], (lp - lm) / 2e-3, 2e-3);
    }
}

static void test_softmax_xent(void) {
    float z[XB * XN];
    int y[XB] = {0, 3, 4}, correct;
    check_xent_differences(0.0f, y, 7, z);
    /* hand-worked: logits (0, ln 3) with label 1 -> p = (1/4, 3/4), loss = -ln(3/4) */
    float z2[2] = {0.0f, logf(3.0f)};
    int y2[1] = {1};
    float d2[2];
    CHECK_NEAR(loom_softmax_xent(z2, y2, 1, 2, d2, &correct), -log(0.75), 1e-6);
    CHECK_NEAR(d2[0], 0.25, 1e-6);
    CHECK_NEAR(d2[1], -0.25, 1e-6);
    CHECK(correct == 1);
}

/* Label smoothing: central differences at eps 0.2, and a hand-worked case. */
static void test_softmax_xent_smooth(void) {
    enum { B = XB, N = XN };
    float z[B * N], dz0[B * N], dz1[B * N];
    int y[B] = {1, 0, 4}, correct;
    check_xent_differences(0.2f, y, 11, z);
    /* smoothing 0 is the plain loss, to the bit */
    double L0 = loom_softmax_xent(z, y, B, N, dz0, NULL);
    double L1 = loom_softmax_xent_smooth(z, y, B, N, 0.0f, dz1, NULL);
    CHECK(L0 == L1 && memcmp(dz0, dz1, sizeof dz0) == 0);
    /* hand-worked: logits (0, ln 3), label 1, eps 0.2 -> target (0.1, 0.9), p = (1/4, 3/4):
     * loss = -(0.1 ln 1/4 + 0.9 ln 3/4) = 0.3975427, dlogits = p - target = (0.15, -0.15) */
    float z2[2] = {0.0f, logf(3.0f)};
    int y2[1] = {1};
    float d2[2];
    CHECK_NEAR(loom_softmax_xent_smooth(z2, y2, 1, 2, 0.2f, d2, &correct), 0.3975427, 1e-6);
    CHECK_NEAR(d2[0], 0.15, 1e-6);
    CHECK_NEAR(d2[1], -0.15, 1e-6);
    CHECK(correct == 1);
}

/* The checker itself must fail on a wrong gradient: a sanity check of the test. */
static void test_checker_detects_errors(void) {
    gradcheck_result r = gradcheck_model("flatten, dense 4", 2, 2, 1, 2, 1, 50, false);
    CHECK(r.n_bad == 0 && r.n_checked > 0);
    gradcheck_corrupt_scale = 1.1f;
    r = gradcheck_model("flatten, dense 4", 2, 2, 1, 2, 1, 50, false);
    gradcheck_corrupt_scale = 1.0f;
    CHECK(r.n_bad > r.n_checked / 2);
}

int main(void) {
    RUN(test_dense);
    RUN(test_activations);
    RUN(test_dropout);
    RUN(test_softmax_xent);
    RUN(test_softmax_xent_smooth);
    RUN(test_checker_detects_errors);
    return check_report();
}
