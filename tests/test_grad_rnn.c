/* test_grad_rnn.c - the sequence layers: finite-difference gradient checks of rnn, lstm and gru
 * (last step, return-sequences, stacked, bidirectional) behind `rows` / `columns` on short
 * sequences; forward against a plain double-precision reference of the PyTorch equations;
 * initialisation; parameter counts of the zoo shapes; parser errors; thread independence. */
#include "check.h"
#include "gradcheck.h"

#include "../src/layers/layer.h"

#include <stdlib.h>
#include <string.h>

/* The parsers, called directly below (declared in registry.c, not in a header). */
loom_status recurrent_parse(layer *l, int argc, char **argv, loom_error *err);
loom_status sequence_parse(layer *l, int argc, char **argv, loom_error *err);

static const char *const cells[] = {"rnn", "lstm", "gru"};

/* ---- gradient checks: image 4x3x1 -> T = 4 steps of N = 3 ---- */

static void test_grad_cells(void) {
    char text[256];
    for (int c = 0; c < 3; c++) {
        const char *k = cells[c];
        snprintf(text, sizeof text, "rows, %s 4, dense 3", k);
        gradcheck_expect(text, 4, 3, 1, 3);
        snprintf(text, sizeof text, "rows, %s 5", k); /* the layer's own output as logits */
        gradcheck_expect(text, 4, 3, 1, 2);
        snprintf(text, sizeof text, "rows, %s 4 return-sequences, flatten, dense 3", k);
        gradcheck_expect(text, 4, 3, 1, 3);
        snprintf(text, sizeof text, "rows, %s 5 return-sequences, %s 4, dense 3", k, k);
        gradcheck_expect(text, 4, 3, 1, 2);
        snprintf(text, sizeof text, "rows, %s 4 bidirectional, dense 3", k);
        gradcheck_expect(text, 4, 3, 1, 3);
        snprintf(text, sizeof text, "rows, %s 3 bidirectional return-sequences, flatten, dense 3",
                 k);
        gradcheck_expect(text, 4, 3, 1, 2);
        snprintf(text, sizeof text, "columns, %s 4, dense 3", k); /* T = 3 steps of N = 4*2 */
        gradcheck_expect(text, 4, 3, 2, 2);
    }
    gradcheck_expect("rows, lstm 5 return-sequences, lstm 4, dense 3", 4, 3, 1, 3);
    gradcheck_expect("rows, gru 4 return-sequences bidirectional, lstm 3 bidirectional, dense 3", 4,
                     3, 1, 2);
    gradcheck_expect("rows, rnn 4 activation relu, dense 3", 4, 3, 1, 3);
    gradcheck_expect("rows, rnn 4 return-sequences activation relu, rnn 3, dense 3", 4, 3, 1, 2);
    gradcheck_expect("rows, gru 3 bidirectional, dense 2", 1, 4, 1, 2); /* T = 1 */
    gradcheck_expect("rows, lstm 3 return-sequences, flatten, dense 2", 1, 4, 1, 2);
    /* longer sequence: gradients through 12 steps */
    gradcheck_expect("rows, lstm 4, dense 2", 12, 2, 1, 2);
    gradcheck_expect("rows, gru 4, dense 2", 12, 2, 1, 2);
}

/* Recurrent dropout: the mask is fixed by the seed gradcheck reuses for every evaluation, so
 * the masked recurrence is checked like any other (every cell, both directions, stacked, and a
 * high rate, so that many units are dropped). */
static void test_grad_recurrent_dropout(void) {
    char text[256];
    for (int c = 0; c < 3; c++) {
        snprintf(text, sizeof text, "rows, %s 5 recurrent-dropout 0.3, dense 3", cells[c]);
        gradcheck_expect(text, 4, 3, 1, 3);
        snprintf(text, sizeof text,
                 "rows, %s 4 return-sequences bidirectional recurrent-dropout 0.5, %s 3 "
                 "recurrent-dropout 0.2, dense 3",
                 cells[c], cells[c]);
        gradcheck_expect(text, 5, 3, 1, 2);
    }
    gradcheck_expect("rows, lstm 6 recurrent-dropout 0.8, dense 2", 8, 2, 1, 3);
}

/* A model of text on (T, N) sequences, prepared for B and initialised from seed 3. */
static loom_model *rd_model(const char *text, int T, int N, int B) {
    loom_model *m = NULL;
    loom_error err = {0};
    bool is_ok = loom_model_create(&m, text, "test", T, N, 1, &err) == LOOM_OK &&
                 loom_model_prepare(m, B, &err) == LOOM_OK;
    CHECK_MSG(is_ok, "%s", err.msg);
    if (!is_ok) {
        loom_model_destroy(m);
        return NULL;
    }
    loom_model_init(m, 3);
    return m;
}

/* ... it masks in training only, and a rate of 0 is no dropout, to the bit. */
static void test_recurrent_dropout_modes(void) {
    enum { B = 4, T = 5, N = 3 };
    float x[B * T * N], a[B * 2], b[B * 2];
    loom_rng rng;
    loom_rng_seed(&rng, 12);
    for (int i = 0; i < B * T * N; i++)
        x[i] = 2.0f * loom_rng_uniform(&rng) - 1.0f;
    const char *texts[] = {"rows, gru 6 recurrent-dropout 0.5, dense 2", "rows, gru 6, dense 2",
                           "rows, gru 6 recurrent-dropout 0, dense 2"};
    float out[3][2][B * 2]; /* [model][training?] */
    for (int i = 0; i < 3; i++) {
        loom_model *m = rd_model(texts[i], T, N, B);
        if (!m)
            return;
        for (int tr = 0; tr < 2; tr++) {
            loom_rng_seed(&rng, 5);
            memcpy(out[i][tr], loom_model_forward(m, x, B, tr == 1, &rng), sizeof a);
        }
        loom_model_destroy(m);
    }
    memcpy(a, out[0][0], sizeof a), memcpy(b, out[1][0], sizeof b);
    CHECK(memcmp(a, b, sizeof a) == 0);                 /* evaluation: no mask */
    CHECK(memcmp(out[0][1], out[1][1], sizeof a) != 0); /* training: masked */
    CHECK(memcmp(out[1][1], out[2][1], sizeof a) == 0); /* rate 0: off */

    /* a backward after an evaluation forward is the unmasked one: the gradients of the model
     * without recurrent dropout */
    float g[2][1024];
    size_t n = 0;
    for (int i = 0; i < 2; i++) {
        loom_model *m = rd_model(texts[i], T, N, B);
        if (!m)
            return;
        n = loom_model_n_params(m);
        CHECK(n <= 1024);
        loom_rng_seed(&rng, 5);
        loom_model_forward(m, x, B, true, &rng); /* a masked pass first, then an unmasked one */
        loom_model_zero_grad(m);
        loom_model_forward(m, x, B, false, &rng);
        float dl[B * 2];
        for (int j = 0; j < B * 2; j++)
            dl[j] = 0.1f * (float)(j % 5) - 0.2f;
        loom_model_backward(m, dl, B);
        memcpy(g[i], loom_model_grads(m), sizeof(float) * (n <= 1024 ? n : 1024));
        loom_model_destroy(m);
    }
    CHECK(memcmp(g[0], g[1], sizeof(float) * n) == 0);

    /* the canonical text keeps a rate's every digit */
    loom_model *m = NULL;
    loom_error err = {0};
    CHECK(loom_model_create(&m, "rows, lstm 3 recurrent-dropout 0.1234567, dense 2", "t", T, N, 1,
                            &err) == LOOM_OK);
    if (m) {
        const char *t = loom_model_text(m);
        const char *r = strstr(t, "recurrent-dropout ");
        CHECK_MSG(r && strtof(r + 18, NULL) == 0.1234567f, "%s", t);
    }
    loom_model_destroy(m);
}

static void test_grad_sequence(void) {
    gradcheck_expect("rows, flatten, dense 3", 3, 4, 2, 2);
    gradcheck_expect("columns, flatten, dense 3", 3, 4, 2, 2);
}

/* ---- forward against a reference ---- */

static double sigmoid_d(double x) { return 1.0 / (1.0 + exp(-x)); }

/* Plain reference of one direction of PyTorch's cells, double precision. Parameters p as the
 * layer stores them: W_ih (N, GH), W_hh (H, GH), b_ih (GH), b_hh (GH). x (T, N) one example;
 * out (T, H) the hidden state at each time t. */
static void reference_dir(int cell, bool is_relu, int T, int N, int H, const float *p,
                          const float *x, bool is_reverse, double *out) {
    int G = cell == 0 ? 1 : cell == 1 ? 4 : 3, GH = G * H;
    const float *Wih = p, *Whh = p + (size_t)N * GH, *bih = Whh + (size_t)H * GH, *bhh = bih + GH;
    double h[64] = {0}, c[64] = {0}, ax[256], ah[256];
    for (int s = 0; s < T; s++) {
        int t = is_reverse ? T - 1 - s : s;
        for (int k = 0; k < GH; k++) {
            ax[k] = bih[k];
            ah[k] = bhh[k];
            for (int i = 0; i < N; i++)
                ax[k] += (double)x[t * N + i] * Wih[i * GH + k];
            for (int i = 0; i < H; i++)
                ah[k] += h[i] * Whh[i * GH + k];
        }
        for (int j = 0; j < H; j++) {
            if (cell == 0) {
                double a = ax[j] + ah[j];
                h[j] = is_relu ? (a > 0 ? a : 0) : tanh(a);
            } else if (cell == 1) {
                double i = sigmoid_d(ax[j] + ah[j]), f = sigmoid_d(ax[H + j] + ah[H + j]);
                double g = tanh(ax[2 * H + j] + ah[2 * H + j]);
                double o = sigmoid_d(ax[3 * H + j] + ah[3 * H + j]);
                c[j] = f * c[j] + i * g;
                h[j] = o * tanh(c[j]);
            }
        }
        if (cell == 2) /* h[] is still h_prev while all units are computed */
            for (int j = 0; j < H; j++) {
                double r = sigmoid_d(ax[j] + ah[j]), z = sigmoid_d(ax[H + j] + ah[H + j]);
                double n = tanh(ax[2 * H + j] + r * ah[2 * H + j]);
                c[j] = (1 - z) * n + z * h[j]; /* c[] as the new state */
            }
        if (cell == 2)
            memcpy(h, c, sizeof(double) * H);
        memcpy(out + (size_t)t * H, h, sizeof(double) * H);
    }
}

static void check_reference(int cell, const char *extra, bool is_bidir, bool is_seq) {
    enum { T = 5, N = 3, H = 4, B = 3 };
    char text[128];
    snprintf(text, sizeof text, "rows, %s %d%s%s%s", cells[cell], H, extra,
             is_bidir ? " bidirectional" : "", is_seq ? " return-sequences, flatten" : "");
    loom_model *m = NULL;
    loom_error err = {0};
    if (loom_model_create(&m, text, "test", T, N, 1, &err) || loom_model_prepare(m, B, &err)) {
        CHECK_MSG(0, "%s: %s", text, err.msg);
        loom_model_destroy(m);
        return;
    }
    loom_model_init(m, 5);
    float *w = loom_model_params(m);
    loom_rng rng;
    loom_rng_seed(&rng, 11);
    for (size_t i = 0; i < loom_model_n_params(m); i++)
        w[i] += 0.3f * (2.0f * loom_rng_uniform(&rng) - 1.0f);
    float x[B * T * N];
    for (int i = 0; i < B * T * N; i++)
        x[i] = 2.0f * loom_rng_uniform(&rng) - 1.0f;
    const float *y = loom_model_forward(m, x, B, false, &rng);
    int D = is_bidir ? 2 : 1, G = cell == 0 ? 1 : cell == 1 ? 4 : 3;
    size_t P = (size_t)G * H * (N + H) + 2 * (size_t)G * H;
    CHECK(loom_model_n_params(m) == D * P);
    double worst = 0, ref[T * H];
    for (int b = 0; b < B; b++)
        for (int d = 0; d < D; d++) {
            reference_dir(cell, strstr(extra, "relu") != NULL, T, N, H, w + d * P, x + b * T * N,
                          d == 1, ref);
            for (int t = 0; t < T; t++) {
                if (!is_seq && t != (d == 1 ? 0 : T - 1))
                    continue;
                const float *yt = is_seq ? y + ((size_t)b * T + t) * D * H + d * H
                                         : y + (size_t)b * D * H + d * H;
                for (int j = 0; j < H; j++)
                    worst = fmax(worst, fabs(yt[j] - ref[t * H + j]));
            }
        }
    CHECK_MSG(worst < 1e-5, "[%s] forward differs from the reference by %g", text, worst);
    loom_model_destroy(m);
}

static void test_forward_reference(void) {
    for (int c = 0; c < 3; c++)
        for (int v = 0; v < 4; v++)
            check_reference(c, "", v & 1, v & 2);
    check_reference(0, " activation relu", true, true);
}

/* ---- initialisation ---- */

static void test_init(void) {
    enum { H = 6, N = 5 };
    for (int c = 0; c < 3; c++) {
        char text[64];
        snprintf(text, sizeof text, "rows, %s %d bidirectional", cells[c], H);
        loom_model *m = NULL;
        loom_error err = {0};
        CHECK(loom_model_create(&m, text, "test", 7, N, 1, &err) == LOOM_OK);
        if (!m)
            return;
        loom_model_init(m, 3);
        const float *w = loom_model_params(m);
        int G = c == 0 ? 1 : c == 1 ? 4 : 3, GH = G * H;
        size_t P = (size_t)GH * (N + H) + 2 * (size_t)GH;
        for (int d = 0; d < 2; d++) {
            const float *Wih = w + d * P, *Whh = Wih + N * GH, *bih = Whh + H * GH;
            const float *bhh = bih + GH;
            /* Glorot-uniform bound sqrt(6 / (N + GH)), not all zero */
            double lim = sqrt(6.0 / (N + GH)), mx = 0;
            for (int i = 0; i < N * GH; i++)
                mx = fmax(mx, fabs(Wih[i]));
            CHECK(mx <= lim && mx > 0.5 * lim);
            /* orthonormal rows: W_hh W_hh^T = I */
            double e = 0;
            for (int i = 0; i < H; i++)
                for (int j = 0; j < H; j++) {
                    double s = 0;
                    for (int k = 0; k < GH; k++)
                        s += (double)Whh[i * GH + k] * Whh[j * GH + k];
                    e = fmax(e, fabs(s - (i == j)));
                }
            CHECK_MSG(e < 1e-5, "%s: W_hh W_hh^T differs from I by %g", cells[c], e);
            for (int k = 0; k < GH; k++) {
                bool is_forget = c == 1 && k >= H && k < 2 * H;
                CHECK(bih[k] == (is_forget ? 1.0f : 0.0f));
                CHECK(bhh[k] == 0.0f);
            }
        }
        loom_model_destroy(m);
    }
}

/* ---- parameter counts on 28x28x1 (PyTorch: two bias vectors per gate) ---- */

static size_t count_of(const char *text) {
    loom_model *m = NULL;
    loom_error err = {0};
    if (loom_model_create(&m, text, "test", 28, 28, 1, &err) != LOOM_OK) {
        CHECK_MSG(0, "%s: %s", text, err.msg);
        return 0;
    }
    size_t n = loom_model_n_params(m);
    loom_model_destroy(m);
    return n;
}

static size_t torch_count(int G, int N, int H) {
    return (size_t)G * H * (N + H) + 2 * (size_t)G * H;
}

static void test_param_counts(void) {
    size_t dense = 128 * 10 + 10;
    CHECK(count_of("rows, rnn 128, dense 10") == torch_count(1, 28, 128) + dense);
    CHECK(count_of("rows, rnn 128, dense 10") == 128 * (28 + 128) + 2 * 128 + 128 * 10 + 10);
    CHECK(count_of("rows, rnn 128 return-sequences, rnn 128, dense 10") ==
          torch_count(1, 28, 128) + torch_count(1, 128, 128) + dense);
    CHECK(count_of("rows, lstm 128, dense 10") == torch_count(4, 28, 128) + dense);
    CHECK(count_of("rows, lstm 128 return-sequences, lstm 128, dense 10") ==
          torch_count(4, 28, 128) + torch_count(4, 128, 128) + dense);
    CHECK(count_of("rows, gru 128, dense 10") == torch_count(3, 28, 128) + dense);
    CHECK(count_of("columns, gru 64 bidirectional, dense 10") ==
          2 * torch_count(3, 28, 64) + 128 * 10 + 10);
    /* the figures quoted in the docs */
    CHECK(count_of("rows, rnn 128, dense 10") == 21514);
    CHECK(count_of("rows, rnn 128 return-sequences, rnn 128, dense 10") == 54538);
    CHECK(count_of("rows, lstm 128, dense 10") == 82186);
    CHECK(count_of("rows, lstm 128 return-sequences, lstm 128, dense 10") == 214282);
    CHECK(count_of("rows, gru 128, dense 10") == 61962);
}

/* ---- the model language ---- */

static void expect_error(const char *text, loom_status want) {
    loom_model *m = NULL;
    loom_error err = {0};
    loom_status st = loom_model_create(&m, text, "test", 28, 28, 1, &err);
    CHECK_MSG(st == want && m == NULL, "[%s] gave %d (%s)", text, (int)st, err.msg);
    loom_model_destroy(m);
}

static void test_parse(void) {
    expect_error("rows, lstm 0, dense 3", LOOM_ERR_FORMAT);
    expect_error("rows, lstm, dense 3", LOOM_ERR_FORMAT);
    expect_error("rows, lstm 8 sideways, dense 3", LOOM_ERR_FORMAT);
    expect_error("rows, gru 8 activation relu, dense 3", LOOM_ERR_FORMAT);
    expect_error("rows, rnn 8 activation sigmoid, dense 3", LOOM_ERR_FORMAT);
    expect_error("rows, rnn 8 activation, dense 3", LOOM_ERR_FORMAT);
    expect_error("rows 2, rnn 8, dense 3", LOOM_ERR_FORMAT);
    expect_error("lstm 8, dense 3", LOOM_ERR_SHAPE);
    expect_error("rows, rows, lstm 8, dense 3", LOOM_ERR_SHAPE);
    expect_error("rows, lstm 8 return-sequences", LOOM_ERR_SHAPE); /* must end in a vector */
    expect_error("rows, lstm 8 recurrent-dropout 1, dense 3", LOOM_ERR_FORMAT);
    expect_error("rows, lstm 8 recurrent-dropout -0.1, dense 3", LOOM_ERR_FORMAT);
    expect_error("rows, lstm 8 recurrent-dropout, dense 3", LOOM_ERR_FORMAT);
    expect_error("rows, lstm 8 recurrent-dropout 0.2x, dense 3", LOOM_ERR_FORMAT);
    expect_error("rows, lstm 8 recurrent-dropout 0.99999999, dense 3", LOOM_ERR_FORMAT); /* 1.0f */

    loom_model *m = NULL;
    loom_error err = {0};
    CHECK(loom_model_create(&m,
                            "Rows\nRNN 8 Bidirectional activation RELU return_sequences\n"
                            "lstm 4 return-sequences recurrent_dropout 0.25, gru 3, dense 2",
                            "test", 28, 28, 1, &err) == LOOM_OK);
    if (m)
        CHECK_MSG(strcmp(loom_model_text(m),
                         "rows\nrnn 8 return-sequences bidirectional activation relu\nlstm 4 "
                         "return-sequences recurrent-dropout 0.25\ngru 3\ndense 2\n") == 0,
                  "%s", loom_model_text(m));
    loom_model_destroy(m);

    /* the parsers directly: settings and describe */
    char w0[] = "lstm", w1[] = "7", w2[] = "bidirectional", *argv[] = {w0, w1, w2};
    layer l = {0};
    CHECK(recurrent_parse(&l, 3, argv, &err) == LOOM_OK);
    char buf[64] = "";
    if (l.ops)
        l.ops->describe(&l, buf, sizeof buf);
    CHECK(strcmp(buf, "lstm 7 bidirectional") == 0);
    free(l.cfg);
    char c0[] = "columns", *argv2[] = {c0};
    layer l2 = {0};
    CHECK(sequence_parse(&l2, 1, argv2, &err) == LOOM_OK);
    l2.in = shape3(28, 20, 3);
    CHECK(l2.ops && l2.ops->init(&l2, &err) == LOOM_OK && l2.out.rank == 2 && l2.out.d[0] == 20 &&
          l2.out.d[1] == 84);
    free(l2.cfg);
}

/* ---- a batch smaller than prepared; each example independent of the others ---- */

static void test_batch_independence(void) {
    enum { B = 5, T = 6, N = 4 };
    const char *text = "rows, lstm 6 return-sequences bidirectional, gru 5, dense 3";
    loom_model *m = NULL;
    loom_error err = {0};
    if (loom_model_create(&m, text, "test", T, N, 1, &err) || loom_model_prepare(m, 8, &err)) {
        CHECK_MSG(0, "%s", err.msg);
        loom_model_destroy(m);
        return;
    }
    loom_model_init(m, 2);
    float x[B * T * N], all[B * 3];
    loom_rng rng;
    loom_rng_seed(&rng, 8);
    for (int i = 0; i < B * T * N; i++)
        x[i] = 2.0f * loom_rng_uniform(&rng) - 1.0f;
    memcpy(all, loom_model_forward(m, x, B, false, &rng), sizeof all);
    double worst = 0;
    for (int b = 0; b < B; b++) {
        const float *y = loom_model_forward(m, x + b * T * N, 1, false, &rng);
        for (int k = 0; k < 3; k++)
            worst = fmax(worst, fabs(y[k] - all[b * 3 + k]));
    }
    CHECK_MSG(worst < 1e-5, "batch of %d vs one at a time: %g", B, worst);
    loom_model_destroy(m);
}

/* ---- the same numbers whatever the thread count ---- */

static void run_once(loom_model *m, const float *x, const int *y, int B, float *out, float *g) {
    loom_rng rng;
    loom_rng_seed(&rng, 1);
    loom_model_zero_grad(m);
    const float *z = loom_model_forward(m, x, B, true, &rng);
    float dz[64 * 10];
    int correct;
    loom_softmax_xent(z, y, B, 10, dz, &correct);
    memcpy(out, z, sizeof(float) * B * 10);
    loom_model_backward(m, dz, B);
    memcpy(g, loom_model_grads(m), sizeof(float) * loom_model_n_params(m));
}

static void test_threads(void) {
    enum { B = 64 };
    const char *text = "rows, lstm 128 return-sequences bidirectional recurrent-dropout 0.25, "
                       "gru 96 recurrent-dropout 0.1, dense 10";
    loom_model *m = NULL;
    loom_error err = {0};
    if (loom_model_create(&m, text, "test", 28, 28, 1, &err) || loom_model_prepare(m, B, &err)) {
        CHECK_MSG(0, "%s", err.msg);
        loom_model_destroy(m);
        return;
    }
    loom_model_init(m, 9);
    size_t n = loom_model_n_params(m);
    float *x = malloc(sizeof(float) * B * 28 * 28), *g1 = malloc(sizeof(float) * n);
    float *g2 = malloc(sizeof(float) * n), o1[B * 10], o2[B * 10];
    int y[B];
    loom_rng rng;
    loom_rng_seed(&rng, 4);
    for (int i = 0; i < B * 28 * 28; i++)
        x[i] = loom_rng_uniform(&rng);
    for (int i = 0; i < B; i++)
        y[i] = (int)loom_rng_below(&rng, 10);
    int saved = loom_get_threads();
    loom_set_threads(1);
    run_once(m, x, y, B, o1, g1);
    loom_set_threads(3);
    run_once(m, x, y, B, o2, g2);
    loom_set_threads(saved);
    CHECK(memcmp(o1, o2, sizeof o1) == 0);
    CHECK(memcmp(g1, g2, sizeof(float) * n) == 0);
    double s = 0;
    for (size_t i = 0; i < n; i++)
        s += fabs(g1[i]);
    CHECK(s > 0 && isfinite(s));
    free(x);
    free(g1);
    free(g2);
    loom_model_destroy(m);
}

int main(void) {
    RUN(test_grad_cells);
    RUN(test_grad_recurrent_dropout);
    RUN(test_recurrent_dropout_modes);
    RUN(test_grad_sequence);
    RUN(test_forward_reference);
    RUN(test_init);
    RUN(test_param_counts);
    RUN(test_parse);
    RUN(test_batch_independence);
    RUN(test_threads);
    return check_report();
}
