/* test_conv_bf16.c - training of 3x3 stride-1 conv layers with bf16 products
 * (src/layers/conv2d_bf16.c): forward, dW, db and dx against a reference that rounds x, W and
 * dz to bf16 and sums in double (tight), against fp32 and finite differences of the fp32 layer
 * (the function bf16 approximates: within bf16's rounding), on odd shapes (filters not a multiple
 * of 16 or past 64, an odd width, valid and same padding, many example groups); the
 * same bits on 1 and 2 threads; which layers take it (inside residual blocks too); inference
 * stays fp32; a CPU without AVX-512 BF16 is refused in one line. */
#include "check.h"

#include "../src/model/model.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* x rounded to bf16 as the CPU rounds (to nearest, ties to even; normal numbers here). */
static double bf(float x) {
    uint32_t u;
    memcpy(&u, &x, 4);
    u = (u + 0x7fffu + ((u >> 16) & 1u)) & 0xffff0000u;
    float r;
    memcpy(&r, &u, 4);
    return r;
}

typedef struct {
    int H, W, C, K, B;
    bool is_same;
} shape;

typedef struct {
    loom_model *m;
    int Ho, Wo, pad_t, pad_l;
    float *x, *y, *dy, *dx, *dw; /* the layer's input, output, output gradient, results */
} run;

/* One conv layer "conv K 3x3 [same]" on random inputs; forward (training) and the layer's
 * backward with a random dy; outputs copied out. precision as asked. */
static run run_layer(shape s, loom_precision p, uint64_t seed) {
    run r = {0};
    char text[64];
    snprintf(text, sizeof text, "conv %d 3x3%s, flatten", s.K, s.is_same ? " same" : "");
    loom_error err = {0};
    CHECK_MSG(loom_model_create(&r.m, text, "test", s.H, s.W, s.C, &err) == LOOM_OK, "%s", err.msg);
    if (!r.m)
        return r;
    loom_model_init(r.m, seed);
    CHECK(loom_model_set_precision(r.m, p, NULL, &err) == LOOM_OK);
    CHECK(loom_model_prepare(r.m, s.B, &err) == LOOM_OK);
    layer *l = &r.m->layers[0];
    loom_rng rng;
    loom_rng_seed(&rng, seed + 1);
    for (size_t i = 0; i < r.m->n_params; i++) /* biases too */
        r.m->params[i] = 0.5f * loom_rng_normal(&rng);
    r.Ho = l->out.d[0];
    r.Wo = l->out.d[1];
    r.pad_t = s.is_same ? 1 : 0;
    r.pad_l = s.is_same ? 1 : 0;
    size_t n_in = (size_t)s.B * s.H * s.W * s.C, n_out = (size_t)s.B * r.Ho * r.Wo * s.K;
    r.x = malloc(sizeof(float) * n_in);
    r.dx = malloc(sizeof(float) * n_in);
    r.y = malloc(sizeof(float) * n_out);
    r.dy = malloc(sizeof(float) * n_out);
    r.dw = malloc(sizeof(float) * r.m->n_params);
    float *d = malloc(sizeof(float) * n_out);
    for (size_t i = 0; i < n_in; i++)
        r.x[i] = loom_rng_uniform(&rng) * 2 - 1;
    for (size_t i = 0; i < n_out; i++)
        r.dy[i] = loom_rng_normal(&rng);
    memcpy(d, r.dy, sizeof(float) * n_out);
    loom_rng drop;
    loom_rng_seed(&drop, 1);
    const float *y = loom_model_forward(r.m, r.x, s.B, true, &drop);
    memcpy(r.y, y, sizeof(float) * n_out);
    loom_model_zero_grad(r.m);
    l->ops->backward(l, r.x, y, d, r.dx, s.B);
    memcpy(r.dw, loom_model_grads(r.m), sizeof(float) * r.m->n_params);
    free(d);
    return r;
}

static void run_free(run *r) {
    loom_model_destroy(r->m);
    free(r->x), free(r->y), free(r->dy), free(r->dx), free(r->dw);
}

/* x at (b, ih, iw, c), 0 over the padding. */
static double xat(const run *r, shape s, int b, int ih, int iw, int c) {
    if (ih < 0 || ih >= s.H || iw < 0 || iw >= s.W)
        return 0;
    return r->x[(((size_t)b * s.H + ih) * s.W + iw) * s.C + c];
}

/* Worst |got - want| / (scale + tiny) over a tensor; scale: the sum of |terms| of each entry. */
typedef struct {
    double worst;    /* against the bf16 reference, relative to the entry's sum of |terms| */
    double num, den; /* ||got - fp32 reference||^2 and ||fp32 reference||^2 */
} cmp;

static void cmp_add(cmp *c, double got, double want_bf, double want_fp, double scale) {
    double e = fabs(got - want_bf) / (scale + 1e-12);
    if (e > c->worst)
        c->worst = e;
    c->num += (got - want_fp) * (got - want_fp);
    c->den += want_fp * want_fp;
}

/* The bf16 layer against the references: tight to the bf16 one (only the order of the fp32
 * sums differs), within bf16's rounding of the fp32 one, and not equal to it. */
static void check_shape(shape s) {
    run r = run_layer(s, LOOM_PRECISION_BF16, 5);
    if (!r.m)
        return;
    int C = s.C, K = s.K, RSC = 9 * C, HWo = r.Ho * r.Wo;
    const float *W = r.m->params, *bias = W + (size_t)RSC * K;
    cmp cy = {0}, cw = {0}, cb = {0}, cx = {0};
    double *dxb = calloc((size_t)s.B * s.H * s.W * C, sizeof(double));
    double *dxf = calloc((size_t)s.B * s.H * s.W * C, sizeof(double));
    double *dxs = calloc((size_t)s.B * s.H * s.W * C, sizeof(double));
    double *dwb = calloc((size_t)RSC * K, sizeof(double)), *dwf = calloc((size_t)RSC * K, 8);
    double *dws = calloc((size_t)RSC * K, sizeof(double));
    for (int b = 0; b < s.B; b++)
        for (int p = 0; p < HWo; p++) {
            int oh = p / r.Wo, ow = p % r.Wo;
            for (int k = 0; k < K; k++) {
                double vb = bias[k], vf = bias[k], sc = fabs(bias[k]);
                double g = r.dy[((size_t)b * HWo + p) * K + k];
                for (int q = 0; q < 9; q++)
                    for (int c = 0; c < C; c++) {
                        int ih = oh + q / 3 - r.pad_t, iw = ow + q % 3 - r.pad_l;
                        double xv = xat(&r, s, b, ih, iw, c);
                        size_t wi = ((size_t)q * C + c) * K + k;
                        vb += bf((float)xv) * bf(W[wi]);
                        vf += xv * W[wi];
                        sc += fabs(xv * W[wi]);
                        dwb[wi] += bf((float)xv) * bf((float)g);
                        dwf[wi] += xv * g;
                        dws[wi] += fabs(xv * g);
                        if (ih >= 0 && ih < s.H && iw >= 0 && iw < s.W) {
                            size_t xi = (((size_t)b * s.H + ih) * s.W + iw) * C + c;
                            dxb[xi] += bf((float)g) * bf(W[wi]);
                            dxf[xi] += g * W[wi];
                            dxs[xi] += fabs(g * W[wi]);
                        }
                    }
                cmp_add(&cy, r.y[((size_t)b * HWo + p) * K + k], vb, vf, sc);
            }
        }
    for (size_t i = 0; i < (size_t)RSC * K; i++)
        cmp_add(&cw, r.dw[i], dwb[i], dwf[i], dws[i]);
    for (int k = 0; k < K; k++) {
        double db = 0, sc = 0;
        for (int i = 0; i < s.B * HWo; i++) {
            db += r.dy[(size_t)i * K + k];
            sc += fabs(r.dy[(size_t)i * K + k]);
        }
        cmp_add(&cb, r.dw[(size_t)RSC * K + k], db, db, sc);
    }
    for (size_t i = 0; i < (size_t)s.B * s.H * s.W * C; i++)
        cmp_add(&cx, r.dx[i], dxb[i], dxf[i], dxs[i]);
    const char *what[4] = {"y", "dW", "db", "dx"};
    cmp *all[4] = {&cy, &cw, &cb, &cx};
    for (int t = 0; t < 4; t++) {
        double rel = sqrt(all[t]->num / all[t]->den);
        CHECK_MSG(all[t]->worst < 2e-6, "%dx%dx%d K %d B %d: %s: %.3g from the bf16 reference", s.H,
                  s.W, C, K, s.B, what[t], all[t]->worst);
        CHECK_MSG(rel < 1e-2 && (t == 2 || rel > 1e-5),
                  "%dx%dx%d K %d: %s: relative difference from fp32 %.3g", s.H, s.W, C, K, what[t],
                  rel);
    }
    free(dxb), free(dxf), free(dxs), free(dwb), free(dwf), free(dws);
    run_free(&r);
}

static bool has_bf16(void) {
    loom_cpu f;
    loom_cpu_features(&f);
    if (!f.has_bf16)
        fprintf(stderr, "    (no AVX-512 BF16 on this CPU: the bf16 path is not run)\n");
    return f.has_bf16;
}

static void test_against_references(void) {
    if (!has_bf16())
        return;
    check_shape((shape){7, 5, 8, 18, 3, true});     /* K 18, 35 pixels (an odd width), 3 examples */
    check_shape((shape){6, 6, 16, 16, 2, false});   /* valid: 4x4 out */
    check_shape((shape){9, 8, 2, 4, 5, true});      /* small K: one masked vector */
    check_shape((shape){5, 5, 16, 66, 2, true});    /* K past 64: a second block of columns */
    check_shape((shape){28, 28, 16, 16, 10, true}); /* one example per group, 8 reduction sets */
}

/* L = sum(y R) of the fp32 layer in double, for finite differences. */
static double loss_fp32(loom_model *m, const float *x, const float *R, int B, size_t n_out) {
    loom_rng drop;
    loom_rng_seed(&drop, 1);
    const float *y = loom_model_forward(m, x, B, true, &drop);
    double L = 0;
    for (size_t i = 0; i < n_out; i++)
        L += (double)y[i] * R[i];
    return L;
}

/* The bf16 gradients (dW, db, dx of a relu layer's loss sum(y R)) against central differences
 * of the fp32 layer, sampled: within bf16's rounding (norm-wise 1e-2). */
static void test_finite_differences(void) {
    if (!has_bf16())
        return;
    shape s = {6, 7, 4, 6, 2, true};
    run r = run_layer(s, LOOM_PRECISION_BF16, 9); /* for its x and dy (= R) */
    loom_model *m = NULL;
    loom_error err = {0};
    CHECK(loom_model_create(&m, "conv 6 3x3 same, flatten", "test", 6, 7, 4, &err) == LOOM_OK);
    if (!m || !r.m) {
        run_free(&r);
        loom_model_destroy(m);
        return;
    }
    CHECK(loom_model_prepare(m, s.B, &err) == LOOM_OK);
    memcpy(m->params, r.m->params, sizeof(float) * m->n_params);
    size_t n_out = (size_t)s.B * r.Ho * r.Wo * s.K, n_in = (size_t)s.B * 6 * 7 * 4;
    double num = 0, den = 0;
    const double h = 1e-3;
    for (size_t i = 0; i < m->n_params; i += 3) {
        float keep = m->params[i];
        m->params[i] = keep + (float)h;
        double up = loss_fp32(m, r.x, r.dy, s.B, n_out);
        m->params[i] = keep - (float)h;
        double down = loss_fp32(m, r.x, r.dy, s.B, n_out);
        m->params[i] = keep;
        double fd = (up - down) / (2 * h);
        num += (r.dw[i] - fd) * (r.dw[i] - fd);
        den += fd * fd;
    }
    for (size_t i = 0; i < n_in; i += 5) {
        float keep = r.x[i];
        r.x[i] = keep + (float)h;
        double up = loss_fp32(m, r.x, r.dy, s.B, n_out);
        r.x[i] = keep - (float)h;
        double down = loss_fp32(m, r.x, r.dy, s.B, n_out);
        r.x[i] = keep;
        double fd = (up - down) / (2 * h);
        num += (r.dx[i] - fd) * (r.dx[i] - fd);
        den += fd * fd;
    }
    CHECK_MSG(den > 0 && sqrt(num / den) < 1e-2 && sqrt(num / den) > 1e-6,
              "bf16 gradients against finite differences of fp32: %.3g", sqrt(num / den));
    run_free(&r);
    loom_model_destroy(m);
}

/* A training forward and backward of a residual net in bf16: the same outputs and gradients, bit
 * for bit, on 1 and 2 threads; its two inner 3x3 stride-1 layers (one in a nested block) take
 * bf16; the first (one channel), the strided one, the odd K and the projection do not; training in
 * bf16 differs from fp32, inference does not. */
static void test_threads_and_blocks(void) {
    if (!has_bf16())
        return;
    const char *text = "conv 8 3x3 same relu, residual { conv 8 3x3 same, batchnorm, relu, "
                       "residual { conv 8 3x3 same } } relu, residual { conv 12 3x3 s2 same } "
                       "relu, conv 5 3x3, flatten, dense 10 softmax";
    enum { B = 24 };
    float *x = malloc(sizeof(float) * B * 14 * 14);
    float *dl = malloc(sizeof(float) * B * 10);
    float *out[3], *grads[3];
    loom_rng rng;
    loom_rng_seed(&rng, 4);
    for (int i = 0; i < B * 14 * 14; i++)
        x[i] = loom_rng_uniform(&rng);
    for (int i = 0; i < B * 10; i++)
        dl[i] = loom_rng_normal(&rng);
    size_t np = 0;
    for (int t = 0; t < 3; t++) { /* bf16 on 1 and 2 threads, fp32 */
        loom_set_threads(t == 1 ? 2 : 1);
        loom_model *m = NULL;
        loom_error err = {0};
        CHECK(loom_model_create(&m, text, "test", 14, 14, 1, &err) == LOOM_OK);
        out[t] = grads[t] = NULL;
        if (!m)
            continue;
        loom_model_init(m, 2);
        int n = -1;
        CHECK(loom_model_set_precision(m, t < 2 ? LOOM_PRECISION_BF16 : LOOM_PRECISION_FP32, &n,
                                       &err) == LOOM_OK);
        CHECK_MSG(n == (t < 2 ? 2 : 0), "%d layers take bf16", n);
        CHECK(loom_model_prepare(m, B, &err) == LOOM_OK);
        loom_rng drop;
        loom_rng_seed(&drop, 1);
        np = m->n_params;
        out[t] = malloc(sizeof(float) * B * 10 * 2);
        grads[t] = malloc(sizeof(float) * np);
        /* inference first: the training pass moves batchnorm's running statistics */
        memcpy(out[t] + B * 10, loom_model_forward(m, x, B, false, &drop), sizeof(float) * B * 10);
        memcpy(out[t], loom_model_forward(m, x, B, true, &drop), sizeof(float) * B * 10);
        loom_model_zero_grad(m);
        loom_model_backward(m, dl, B);
        memcpy(grads[t], loom_model_grads(m), sizeof(float) * np);
        loom_model_destroy(m);
    }
    loom_set_threads(0);
    if (out[0] && out[1] && out[2]) {
        CHECK(memcmp(out[0], out[1], sizeof(float) * B * 20) == 0);
        CHECK(memcmp(grads[0], grads[1], sizeof(float) * np) == 0);
        CHECK(memcmp(out[0], out[2], sizeof(float) * B * 10) != 0); /* training: bf16 */
        CHECK(memcmp(grads[0], grads[2], sizeof(float) * np) != 0);
        CHECK(memcmp(out[0] + B * 10, out[2] + B * 10, sizeof(float) * B * 10) == 0); /* fp32 */
    }
    for (int t = 0; t < 3; t++)
        free(out[t]), free(grads[t]);
    free(x), free(dl);
}

/* Which layers take it, and a CPU without AVX-512 BF16: refused in one line, fp32 accepted. */
static void test_layers_and_refusal(void) {
    loom_model *m = NULL;
    loom_error err = {0};
    CHECK(loom_model_create(&m,
                            "conv 4 3x3, conv 5 3x3 same, conv 4 3x3 s2, conv 4 5x5 same, "
                            "conv 6 1x1, conv 6 3x3 same, flatten",
                            "test", 16, 16, 1, &err) == LOOM_OK);
    if (!m)
        return;
    loom_cpu none = {0}, cpu;
    loom_cpu_features(&cpu);
    int n = -1;
    if (cpu.has_bf16) {
        CHECK(loom_model_set_precision(m, LOOM_PRECISION_BF16, &n, &err) == LOOM_OK);
        CHECK_MSG(n == 1, "%d", n); /* the last: 3x3, stride 1, even C and K (the first: C 1) */
    }
    CHECK(model_set_precision_on(m, LOOM_PRECISION_BF16, &none, &n, &err) == LOOM_ERR_ARG);
    CHECK(strstr(err.msg, "AVX-512 BF16") && !strchr(err.msg, '\n'));
    CHECK(model_set_precision_on(m, LOOM_PRECISION_FP32, &none, &n, &err) == LOOM_OK && n == 0);
    loom_precision p;
    CHECK(loom_precision_parse("bf16", &p, &err) == LOOM_OK && p == LOOM_PRECISION_BF16);
    CHECK(loom_precision_parse("fp16", &p, &err) == LOOM_ERR_ARG);
    CHECK(strcmp(loom_precision_str(LOOM_PRECISION_BF16), "bf16") == 0);
    loom_model_destroy(m);
}

static volatile int stop_flag; /* set on the first iteration line */
static void stop_log(void *user, loom_log_kind kind, const char *line) {
    (void)user;
    if (kind == LOOM_LOG_INFO && strncmp(line, "Iteration", 9) == 0)
        stop_flag = 1;
}

/* loom_train of a small conv net (its second conv in bf16 when asked) on a synthetic task: 3
 * epochs of 10 steps; stop_at and resume as test_mix's. The weights (malloc'd), or NULL. */
static float *train_small(loom_precision p, const char *ck, int stop_at, bool resume, size_t *n) {
    loom_dataset *ds = check_dataset(600, 8, 8, 4);
    loom_rng rng;
    loom_rng_seed(&rng, 3);
    for (int i = 0; i < 600; i++) {
        int k = (int)loom_rng_below(&rng, 4);
        ds->y[i] = (uint8_t)k;
        for (int j = 0; j < 64; j++)
            ds->x[i * 64 + j] = (uint8_t)((int)loom_rng_below(&rng, 120) +
                                          ((j / 32) * 2 + (j % 8) / 4 == k ? 100 : 0));
    }
    int idx[600];
    for (int i = 0; i < 600; i++)
        idx[i] = i;
    loom_model *m = NULL;
    loom_error err = {0};
    float *w = NULL;
    if (loom_model_create(&m, "conv 4 3x3 same relu, conv 8 3x3 same relu, flatten, dense 4", "t",
                          8, 8, 1, &err) == LOOM_OK) {
        loom_model_init(m, 4);
        loom_train_config c;
        loom_train_config_init(&c);
        c.epochs = 3;
        c.batch = 50;
        c.opt.lr = 0.01f;
        c.precision = p;
        c.checkpoint_path = ck;
        c.is_resume = resume;
        c.stop_flag = &stop_flag;
        c.log_every = stop_at;
        c.log = stop_log;
        stop_flag = 0;
        loom_history h = {0};
        loom_status st = loom_train(m, &c, ds, idx, 500, ds, idx + 500, 100, NULL, &h, &err);
        *n = loom_model_n_params(m);
        if (st == LOOM_OK || (stop_at && st == LOOM_ERR_INTERRUPTED)) {
            w = malloc(sizeof(float) * *n);
            memcpy(w, loom_model_params(m), sizeof(float) * *n);
        }
        CHECK_MSG(st == LOOM_OK || st == LOOM_ERR_INTERRUPTED, "%s", err.msg);
        if (st == LOOM_OK)
            CHECK_MSG(h.epochs[h.n_epochs - 1].val_acc > 0.9, "val_acc %.3f (%s)",
                      h.epochs[h.n_epochs - 1].val_acc, loom_precision_str(p));
        loom_history_reset(&h);
    }
    loom_model_destroy(m);
    loom_dataset_destroy(ds);
    return w;
}

/* Training in bf16 learns, differs from fp32, and a run stopped after step 7 and resumed ends
 * with the same weights to the bit. */
static void test_train_resume(void) {
    if (!has_bf16())
        return;
    size_t n = 0;
    float *full = train_small(LOOM_PRECISION_BF16, NULL, 0, false, &n);
    float *fp = train_small(LOOM_PRECISION_FP32, NULL, 0, false, &n);
    const char *ck = tmp_path("bf16.loomck");
    remove(ck);
    float *part = train_small(LOOM_PRECISION_BF16, ck, 7, false, &n);
    float *resumed = train_small(LOOM_PRECISION_BF16, ck, 0, true, &n);
    CHECK(full && fp && memcmp(full, fp, sizeof(float) * n) != 0);
    CHECK(full && resumed && memcmp(full, resumed, sizeof(float) * n) == 0);
    CHECK(part && full && memcmp(part, full, sizeof(float) * n) != 0);
    free(full), free(fp), free(part), free(resumed);
}

int main(void) {
    RUN(test_against_references);
    RUN(test_finite_differences);
    RUN(test_threads_and_blocks);
    RUN(test_layers_and_refusal);
    RUN(test_train_resume);
    return check_report();
}
