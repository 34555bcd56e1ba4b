/* test_quantize.c - int8 quantization (loom_model_quantize, the int8 layer, qgemm): the same bits
 * on the VNNI and the portable path, on 1 and 2 threads and at any batch size; close to the float
 * model; saved and loaded whole; bad input refused with one line. */
#include "../src/layers/quantized.h"
#include "../src/model/model.h"
#include "check.h"

#include <math.h>

#include <stdio.h>
#include <string.h>

/* conv with padding and strides, pooling, dense with a long and a short reduction, an odd K */
#define CONV_MODEL                                                                                 \
    "conv 8 3x3 same relu\nmaxpool 2\nconv 20 3x3 s2 relu\nbatchnorm\nflatten\ndense 37 "          \
    "relu\ndense 10 softmax"
/* standardize: inputs with both signs reach the first dense (zero point 128) */
#define DENSE_MODEL "standardize\nflatten\ndense 70 tanh\ndense 10 softmax"

enum { H = 12, W = 12, D = H * W, N_CAL = 64, N_TEST = 70 };

static float *random_images(int n, uint64_t seed) {
    float *x = malloc(sizeof(float) * (size_t)n * D);
    loom_rng rng;
    loom_rng_seed(&rng, seed);
    for (size_t i = 0; x && i < (size_t)n * D; i++)
        x[i] = (float)loom_rng_below(&rng, 256) / 255.0f;
    return x;
}

static loom_model *float_model(const char *text) {
    loom_model *m = NULL;
    loom_error err = {0};
    CHECK_MSG(loom_model_create(&m, text, "test", H, W, 1, &err) == LOOM_OK, "%s", err.msg);
    if (!m)
        return NULL;
    loom_model_init(m, 3);
    float *st = loom_model_state(m);
    for (size_t i = 0; i < loom_model_n_state(m); i++) /* means near 0.5, stds near 0.3 */
        st[i] = i < (size_t)D ? 0.5f : i < 2 * (size_t)D ? 0.3f : (i % 2 ? 1.2f : 0.1f);
    return m;
}

static loom_model *quantized(loom_model *m, double pct) {
    float *cal = random_images(N_CAL, 11);
    loom_model *q = NULL;
    loom_error err = {0};
    CHECK_MSG(loom_model_quantize(&q, m, cal, N_CAL, pct, &err) == LOOM_OK, "%s", err.msg);
    free(cal);
    return q;
}

/* Logits of n images, one model_forward_ws call per chunk of b examples (b = n: one call). */
static float *logits(const loom_model *m, const float *x, int n, int b) {
    size_t need = 0;
    model_forward_ws(m, NULL, b, NULL, 0, &need);
    float *ws = loom_xalloc(sizeof(float) * need), *out = malloc(sizeof(float) * 10 * (size_t)n);
    for (int i = 0; ws && out && i < n; i += b) {
        int nb = n - i < b ? n - i : b;
        const float *z = model_forward_ws(m, x + (size_t)i * D, nb, ws, need, NULL);
        memcpy(out + (size_t)i * 10, z, sizeof(float) * 10 * (size_t)nb);
    }
    free(ws);
    return out;
}

/* The same bits by every path: batch 1, 7, 70 (in chunks, over the threads), 1 and 2 threads,
 * VNNI and portable; and close to the float model. */
static void check_same_numbers(const char *text) {
    loom_model *m = float_model(text), *q = m ? quantized(m, 100.0) : NULL;
    if (!q) {
        loom_model_destroy(m);
        return;
    }
    CHECK(loom_model_is_quantized(q) && !loom_model_is_quantized(m));
    CHECK(strstr(loom_model_text(q), "int8 dense 10 softmax") != NULL);
    float *x = random_images(N_TEST, 99);
    loom_set_threads(2);
    float *ref = logits(q, x, N_TEST, N_TEST);
    float *b1 = logits(q, x, N_TEST, 1), *b7 = logits(q, x, N_TEST, 7);
    CHECK(memcmp(ref, b1, sizeof(float) * 10 * N_TEST) == 0);
    CHECK(memcmp(ref, b7, sizeof(float) * 10 * N_TEST) == 0);
    /* inference in chunks over the threads, and on one thread */
    loom_error err = {0};
    CHECK(loom_model_prepare(q, N_TEST, &err) == LOOM_OK);
    const float *z2 = model_infer(q, x, N_TEST);
    CHECK(memcmp(ref, z2, sizeof(float) * 10 * N_TEST) == 0);
    loom_set_threads(1);
    float *t1 = logits(q, x, N_TEST, N_TEST);
    CHECK(memcmp(ref, t1, sizeof(float) * 10 * N_TEST) == 0);
    loom_set_threads(2);
    /* the portable path */
    bool had_vnni = qgemm_has_vnni();
    qgemm_set_vnni(false);
    CHECK(!qgemm_has_vnni());
    float *pc = logits(q, x, N_TEST, N_TEST);
    qgemm_set_vnni(true);
    CHECK(qgemm_has_vnni() == had_vnni);
    CHECK_MSG(memcmp(ref, pc, sizeof(float) * 10 * N_TEST) == 0, "VNNI %s vs portable",
              had_vnni ? "on" : "absent");
    if (!had_vnni)
        fprintf(stderr,
                "  (this CPU has no AVX-512 VNNI: the portable path was compared with itself)\n");
    /* close to the float model: the same class for nearly all, logits within a few percent */
    float *f = logits(m, x, N_TEST, N_TEST);
    int same = 0;
    double num = 0, den = 0;
    for (int i = 0; i < N_TEST; i++) {
        int a = 0, b = 0;
        for (int k = 1; k < 10; k++) {
            a = f[i * 10 + k] > f[i * 10 + a] ? k : a;
            b = ref[i * 10 + k] > ref[i * 10 + b] ? k : b;
        }
        same += a == b;
        for (int k = 0; k < 10; k++) {
            double d = ref[i * 10 + k] - f[i * 10 + k];
            num += d * d;
            den += (double)f[i * 10 + k] * f[i * 10 + k];
        }
    }
    CHECK_MSG(sqrt(num / den) < 0.05, "relative logit error %.4f", sqrt(num / den));
    CHECK_MSG(same >= N_TEST - 3, "%d of %d agree", same, N_TEST);
    free(x);
    free(ref);
    free(b1);
    free(b7);
    free(t1);
    free(pc);
    free(f);
    loom_model_destroy(q);
    loom_model_destroy(m);
}

static void test_conv_same_numbers(void) { check_same_numbers(CONV_MODEL); }
static void test_dense_signed_same_numbers(void) { check_same_numbers(DENSE_MODEL); }

/* A percentile below 100 clips: still close. */
static void test_percentile(void) {
    loom_model *m = float_model(CONV_MODEL), *q = m ? quantized(m, 99.99) : NULL;
    CHECK(q != NULL);
    loom_model_destroy(q);
    loom_model_destroy(m);
}

/* Save and load: the same outputs, a smaller file; version 2 on disk. */
static void test_save_load(void) {
    loom_model *m = float_model(CONV_MODEL), *q = m ? quantized(m, 100.0) : NULL, *q2 = NULL;
    if (!q) {
        loom_model_destroy(m);
        return;
    }
    char pf[512], pq[512];
    snprintf(pf, sizeof pf, "%s/f.loom", check_tmpdir());
    snprintf(pq, sizeof pq, "%s/q.loom", check_tmpdir());
    loom_error err = {0};
    CHECK(loom_model_save(m, "seed=1\n", pf, &err) == LOOM_OK);
    CHECK(loom_model_save(q, "seed=1\n", pq, &err) == LOOM_OK);
    char *config = NULL;
    CHECK_MSG(loom_model_load(&q2, &config, pq, &err) == LOOM_OK, "%s", err.msg);
    if (q2) {
        CHECK(loom_model_is_quantized(q2) && strcmp(config, "seed=1\n") == 0);
        float *x = random_images(N_TEST, 5);
        float *a = logits(q, x, N_TEST, N_TEST), *b = logits(q2, x, N_TEST, N_TEST);
        CHECK(memcmp(a, b, sizeof(float) * 10 * N_TEST) == 0);
        free(x);
        free(a);
        free(b);
        /* quantizing a quantized model: one line */
        loom_model *qq = NULL;
        float *cal = random_images(4, 1);
        CHECK(loom_model_quantize(&qq, q2, cal, 4, 100.0, &err) == LOOM_ERR_ARG && !qq);
        CHECK(strstr(err.msg, "already quantized") != NULL && !strchr(err.msg, '\n'));
        free(cal);
    }
    char *fb = NULL, *qb = NULL;
    size_t nf = 0, nq = 0;
    CHECK(loom_file_read_all(pf, &fb, &nf, &err) == LOOM_OK);
    CHECK(loom_file_read_all(pq, &qb, &nq, &err) == LOOM_OK);
    CHECK(fb && qb && fb[8] == 2 && qb[8] == 2);
    CHECK_MSG(nq < nf * 0.6, "%zu of %zu bytes", nq, nf); /* small model: the texts weigh */
    free(fb);
    free(qb);
    free(config);
    loom_model_destroy(q2);
    loom_model_destroy(q);
    loom_model_destroy(m);
}

/* Every int8 layer against the formula of docs/FORMATS.md written out plainly: the input
 * quantized value by value, the int32 sum over the kernel's in-range taps (padding is the zero
 * point: adds nothing), the epilogue's three roundings, the activation. The convs take both of
 * the product's ways: C = 1 and S C = 18 through a byte im2col, S C = 24 and 36 straight from
 * the padded image; strides 1 and 2, 'same' and 'valid', zero points 0 and 128 (after tanh);
 * on the VNNI and the portable path, 1 and 2 threads. */
static void test_layers_by_formula(void) {
    const char *text = "conv 8 3x3 same relu\nconv 12 3x3 s2 same tanh\nconv 6 2x3 relu\n"
                       "conv 5 3x3 same\nflatten\ndense 9 relu\ndense 10 softmax";
    loom_model *m = float_model(text), *q = m ? quantized(m, 100.0) : NULL;
    if (!q) {
        loom_model_destroy(m);
        return;
    }
    enum { B = 5 };
    float *x = random_images(B, 7);
    loom_error err = {0};
    CHECK(loom_model_prepare(q, B, &err) == LOOM_OK);
    bool had_vnni = qgemm_has_vnni();
    for (int pass = 0; pass < 4; pass++) {
        qgemm_set_vnni(pass < 2);
        loom_set_threads(pass % 2 ? 1 : 2);
        loom_model_forward(q, x, B, false, NULL);
        int n_int8 = 0, n_bad = 0;
        for (int i = 0; i < q->n_layers; i++) {
            const layer *l = &q->layers[i];
            if (!layer_is_int8(l))
                continue;
            n_int8++;
            int8_info f;
            int8_info_of(l, &f);
            const float *in = i == 0 ? x : q->acts[i - 1], *out = q->acts[i];
            size_t n_in = shape_size(l->in), n_out = shape_size(l->out);
            bool is_conv = f.lw.kind == LOWER_CONV;
            int Hi = is_conv ? l->in.d[0] : 1, Wi = is_conv ? l->in.d[1] : 1;
            int C = is_conv ? l->in.d[2] : f.N, R = is_conv ? f.lw.kh : 1;
            int S = is_conv ? f.lw.kw : 1, Ho = is_conv ? l->out.d[0] : 1;
            int Wo = is_conv ? l->out.d[1] : 1, st = is_conv ? f.lw.sh : 1;
            float inv = 1.0f / f.sx, lo = f.zp ? -127.0f : 0.0f, hi = f.zp ? 127.0f : 255.0f;
            int *u = malloc(sizeof(int) * n_in);
            float *y = malloc(sizeof(float) * n_out);
            for (int b = 0; u && y && b < B; b++) {
                for (size_t j = 0; j < n_in; j++) {
                    float v = in[(size_t)b * n_in + j] * inv;
                    v = v < lo ? lo : v > hi ? hi : v;
                    u[j] = (int)nearbyintf(v); /* u - zp */
                }
                for (int oh = 0; oh < Ho; oh++)
                    for (int ow = 0; ow < Wo; ow++)
                        for (int k = 0; k < f.K; k++) {
                            int32_t acc = 0;
                            for (int r = 0; r < R; r++)
                                for (int s = 0; s < S; s++) {
                                    int ih = oh * st - (is_conv ? f.lw.pad[0] : 0) + r;
                                    int iw = ow * st - (is_conv ? f.lw.pad[1] : 0) + s;
                                    if (ih < 0 || ih >= Hi || iw < 0 || iw >= Wi)
                                        continue;
                                    for (int c = 0; c < C; c++)
                                        acc += u[((size_t)ih * Wi + iw) * C + c] *
                                               int8_weight(l, (r * S + s) * C + c, k);
                                }
                            float v = (float)acc;
                            v = v * (f.sx * f.sw[k]);
                            y[((size_t)oh * Wo + ow) * f.K + k] = v + f.bias[k];
                        }
                act_forward(f.lw.is_softmax ? ACT_NONE : f.lw.act, f.lw.alpha, y, n_out);
                n_bad += memcmp(y, out + (size_t)b * n_out, sizeof(float) * n_out) != 0;
            }
            free(u);
            free(y);
        }
        CHECK_MSG(n_int8 == 6 && n_bad == 0, "pass %d: %d int8 layers, %d outputs differ", pass,
                  n_int8, n_bad);
    }
    qgemm_set_vnni(true);
    loom_set_threads(2);
    CHECK(qgemm_has_vnni() == had_vnni);
    free(x);
    loom_model_destroy(q);
    loom_model_destroy(m);
}

/* Bad input: one line each, nothing made. */
static void test_bad_input(void) {
    loom_model *m = float_model(CONV_MODEL), *q = NULL;
    if (!m)
        return;
    loom_error err = {0};
    float *cal = random_images(4, 1);
    CHECK(loom_model_quantize(&q, m, cal, 0, 100.0, &err) == LOOM_ERR_ARG && !q);
    CHECK(loom_model_quantize(&q, m, cal, 4, 50.0, &err) == LOOM_ERR_ARG && !q);
    CHECK(strstr(err.msg, "percentile") != NULL);
    CHECK(loom_model_quantize(&q, m, cal, 4, 100.5, &err) == LOOM_ERR_ARG && !q);
    loom_model *r = NULL;
    CHECK(loom_model_create(&r, "rows\nrnn 8\nbatchnorm", "t", H, W, 1, &err) != LOOM_OK ||
          (loom_model_quantize(&q, r, cal, 4, 100.0, &err) == LOOM_ERR_ARG && !q));
    loom_model_destroy(r);
    /* a model text that asks for int8 of something else */
    CHECK(loom_model_create(&r, "flatten\nint8 batchnorm", "t", H, W, 1, &err) == LOOM_ERR_FORMAT);
    CHECK(strstr(err.msg, "expected 'dense' or 'conv'") != NULL);
    free(cal);
    loom_model_destroy(m);
}

int main(void) {
    RUN(test_conv_same_numbers);
    RUN(test_dense_signed_same_numbers);
    RUN(test_layers_by_formula);
    RUN(test_percentile);
    RUN(test_save_load);
    RUN(test_bad_input);
    return check_report();
}
