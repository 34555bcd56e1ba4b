/* test_seq_task.c - a memory task only a working recurrence can learn: T = 12 steps of N = 4
 * noisy one-hot symbols, class 1 when the marker symbol 0 appears in the first 3 steps. The
 * marker also appears later as a distractor, so the last step's state must carry what happened
 * early. Inputs are images (T, N, 1) read by `rows`; trained with Adam through the public API. */
#include "check.h"

#include "loom.h"

#include <stdlib.h>
#include <string.h>

enum { T = 12, N = 4, EARLY = 3, N_TRAIN = 1024, N_TEST = 512, BATCH = 32 };

/* One example x (T, N) and its label. */
static int make_example(float *x, loom_rng *rng) {
    int y = (int)loom_rng_below(rng, 2);
    int sym[T];
    for (int t = 0; t < T; t++)
        sym[t] = 1 + (int)loom_rng_below(rng, N - 1); /* a non-marker symbol */
    if (y == 1)
        sym[loom_rng_below(rng, EARLY)] = 0;
    if (loom_rng_below(rng, 2)) /* distractor: a marker after the window, either class */
        sym[EARLY + (int)loom_rng_below(rng, T - EARLY)] = 0;
    for (int t = 0; t < T; t++)
        for (int i = 0; i < N; i++)
            x[t * N + i] = (i == sym[t] ? 1.0f : 0.0f) + 0.1f * loom_rng_normal(rng);
    return y;
}

static double accuracy(loom_model *m, const float *x, const int *y, int n) {
    int correct = 0;
    for (int i = 0; i < n; i += BATCH) {
        int B = n - i < BATCH ? n - i : BATCH, c;
        const float *z = loom_model_forward(m, x + (size_t)i * T * N, B, false, NULL);
        loom_softmax_xent(z, y + i, B, 2, NULL, &c);
        correct += c;
    }
    return (double)correct / n;
}

/* Trains `text` on the task; returns the test accuracy (best of the epoch-end checks). */
static double train_task(const char *text, int max_epochs, double target) {
    loom_model *m = NULL;
    loom_optim *o = NULL;
    loom_error err = {0};
    float *x = malloc(sizeof(float) * (N_TRAIN + N_TEST) * T * N);
    int *y = malloc(sizeof(int) * (N_TRAIN + N_TEST)), *idx = malloc(sizeof(int) * N_TRAIN);
    float *xb = malloc(sizeof(float) * BATCH * T * N);
    double acc = 0;
    if (!x || !y || !idx || !xb)
        goto done;
    loom_rng rng;
    loom_rng_seed(&rng, 2024);
    for (int i = 0; i < N_TRAIN + N_TEST; i++)
        y[i] = make_example(x + (size_t)i * T * N, &rng);
    loom_train_config tc;
    loom_train_config_init(&tc);
    tc.opt.lr = 1e-2f;
    if (loom_model_create(&m, text, "seq-task", T, N, 1, &err) ||
        loom_model_prepare(m, BATCH, &err) ||
        loom_optim_create(&o, &tc.opt, loom_model_n_params(m), &err)) {
        CHECK_MSG(0, "%s: %s", text, err.msg);
        goto done;
    }
    loom_model_init(m, 7);
    for (int i = 0; i < N_TRAIN; i++)
        idx[i] = i;
    float dz[BATCH * 2];
    int yb[BATCH];
    int e = 0;
    for (; e < max_epochs && acc < target; e++) {
        loom_shuffle_int(idx, N_TRAIN, &rng);
        for (int i = 0; i + BATCH <= N_TRAIN; i += BATCH) {
            for (int b = 0; b < BATCH; b++) {
                memcpy(xb + (size_t)b * T * N, x + (size_t)idx[i + b] * T * N,
                       sizeof(float) * T * N);
                yb[b] = y[idx[i + b]];
            }
            int c;
            loom_model_zero_grad(m);
            const float *z = loom_model_forward(m, xb, BATCH, true, &rng);
            loom_softmax_xent(z, yb, BATCH, 2, dz, &c);
            loom_model_backward(m, dz, BATCH);
            loom_optim_step(o, m, tc.opt.lr);
        }
        acc = accuracy(m, x + (size_t)N_TRAIN * T * N, y + N_TRAIN, N_TEST);
    }
    fprintf(stderr, "    %-50s test accuracy %.3f after %d epochs\n", text, acc, e);
done:
    loom_optim_destroy(o);
    loom_model_destroy(m);
    free(x);
    free(y);
    free(idx);
    free(xb);
    return acc;
}

/* Each stops at 97% test accuracy; with 8 seeds tried, all got there within 9 epochs. */
static void test_lstm(void) { CHECK(train_task("rows, lstm 16, dense 2", 40, 0.97) >= 0.90); }
static void test_gru(void) { CHECK(train_task("rows, gru 16, dense 2", 40, 0.97) >= 0.90); }
static void test_rnn(void) { CHECK(train_task("rows, rnn 16, dense 2", 40, 0.97) >= 0.90); }
static void test_stacked(void) {
    CHECK(train_task("rows, lstm 12 return-sequences, lstm 12, dense 2", 40, 0.97) >= 0.90);
}
/* (Easier: the backward direction reads the early steps last.) */
static void test_bidirectional(void) {
    CHECK(train_task("rows, gru 8 bidirectional, dense 2", 40, 0.97) >= 0.90);
}

int main(void) {
    RUN(test_lstm);
    RUN(test_gru);
    RUN(test_rnn);
    RUN(test_bidirectional);
    RUN(test_stacked);
    return check_report();
}
