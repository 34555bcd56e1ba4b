/* bench.c - throughput of training steps and inference batches on random images: the
 * median of several timed repeats after a warm-up, so that the noisy machine is measured fairly. */
#include "../model/model.h"

#include <math.h>

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

enum { BENCH_BATCHES = 8 }; /* distinct batches cycled through */

/* One training step on batch s of ds (the bench's loop body). */
static void bench_step(loom_model *m, loom_optim *opt, const loom_dataset *ds, const int *idx,
                       int s, int batch, float *x, int *y, float *dl, loom_rng *rng,
                       double *t_update) {
    int K = loom_model_n_outputs(m);
    loom_batch_fill(ds, idx + (s % BENCH_BATCHES) * batch, batch, NULL, x, y);
    loom_model_zero_grad(m);
    const float *z = loom_model_forward(m, x, batch, true, rng);
    loom_softmax_xent(z, y, batch, K, dl, NULL);
    loom_model_backward(m, dl, batch);
    double t = t_update ? loom_now() : 0;
    loom_optim_step(opt, m, 1e-4f);
    if (t_update)
        *t_update += loom_now() - t;
}

void loom_cpu_describe(char *buf, size_t n) {
    loom_cpu f;
    loom_cpu_features(&f);
    char blas[200];
    gemm_describe(blas, sizeof blas);
    snprintf(buf, n, "CPU %s%s%s; products: %s; convolutions: %s",
             f.has_avx512     ? "AVX-512F/BW/VL"
             : f.has_avx2_fma ? "AVX2+FMA"
                              : "without AVX2",
             f.has_bf16 ? ", AVX-512 BF16" : "", f.has_vnni ? ", AVX-512 VNNI" : "", blas,
             conv_kernels_describe());
}

/* Inference images/s of q over the bench's batches: the median of repeats of steps batches. */
static double bench_infer(loom_model *q, const loom_dataset *ds, const int *idx, int batch,
                          int repeats, int steps, float *x, int *y, double *t) {
    for (int rep = -1; rep < repeats; rep++) { /* rep -1: warm-up */
        double a = loom_now();
        for (int s = 0; s < steps; s++) {
            loom_batch_fill(ds, idx + (s % BENCH_BATCHES) * batch, batch, NULL, x, y);
            model_infer(q, x, batch);
        }
        if (rep >= 0)
            t[rep] = (double)steps * batch / (loom_now() - a);
    }
    qsort(t, (size_t)repeats, sizeof(double), cmp_double);
    return repeats % 2 ? t[repeats / 2] : 0.5 * (t[repeats / 2 - 1] + t[repeats / 2]);
}

/* The median of n sorted values. */
static double median_sorted(const double *v, int n) {
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* One more repeat of steps training steps timed layer by layer (r->layers), after the others, so
 * that the clock reads do not touch their figures. */
static void bench_layers(loom_model *m, loom_optim *opt, const loom_dataset *ds, const int *idx,
                         int steps, int batch, float *x, int *y, float *dl, loom_rng *rng,
                         loom_bench_result *r) {
    _Static_assert(sizeof r->layers / sizeof r->layers[0] >= MODEL_MAX_LAYERS,
                   "loom_bench_result holds every layer");
    double prof[2 * MODEL_MAX_LAYERS] = {0}, t_update = 0;
    m->prof = prof;
    double a = loom_now();
    for (int s = 0; s < steps; s++)
        bench_step(m, opt, ds, idx, s, batch, x, y, dl, rng, &t_update);
    double total = loom_now() - a, layers = 0;
    m->prof = NULL;
    r->n_layers = m->n_layers;
    for (int i = 0; i < m->n_layers; i++) {
        m->layers[i].ops->describe(&m->layers[i], r->layers[i].name, sizeof r->layers[i].name);
        r->layers[i].forward_ms = 1e3 * prof[2 * i] / steps;
        r->layers[i].backward_ms = 1e3 * prof[2 * i + 1] / steps;
        layers += prof[2 * i] + prof[2 * i + 1];
    }
    r->update_ms = 1e3 * t_update / steps;
    r->other_ms = 1e3 * (total - layers - t_update) / steps;
}

/* m quantized (calibrated on the first bench batch, random pixels) and its inference timed as
 * the float model's was: r->infer_int8_ips. */
static loom_status bench_int8(loom_model *m, const loom_dataset *ds, const int *idx, int batch,
                              int repeats, int steps, float *x, int *y, double *t_inf,
                              loom_bench_result *r, loom_error *err) {
    loom_model *q = NULL;
    loom_batch_fill(ds, idx, batch, NULL, x, y);
    loom_status st = loom_model_quantize(&q, m, x, batch, LOOM_QUANT_PERCENTILE, err);
    if (st == LOOM_OK)
        st = loom_model_prepare(q, batch, err);
    if (st == LOOM_OK)
        r->infer_int8_ips = bench_infer(q, ds, idx, batch, repeats, steps, x, y, t_inf);
    loom_model_destroy(q);
    return st;
}

loom_status loom_bench(const char *model, int batch, int repeats, double seconds_per_repeat,
                       bool is_layers, bool is_int8, loom_precision precision, loom_bench_result *r,
                       loom_error *err) {
    memset(r, 0, sizeof *r);
    if (batch < 1 || repeats < 1 || repeats > 100)
        return loom_error_set(err, LOOM_ERR_ARG, "bench: batch >= 1 and 1..100 repeats");
    char *text = NULL;
    loom_status st = loom_model_resolve(model, &text, NULL, err);
    if (st)
        return st;
    loom_model *m = NULL;
    loom_optim *opt = NULL;
    size_t D = 28 * 28;
    uint8_t *pix = malloc(D * (size_t)batch * BENCH_BATCHES);
    uint8_t *lab = malloc((size_t)batch * BENCH_BATCHES);
    float *x = loom_xalloc(sizeof(float) * D * (size_t)batch);
    int *y = malloc(sizeof(int) * (size_t)batch);
    double *t_train = calloc((size_t)repeats, sizeof(double));
    double *t_inf = calloc((size_t)repeats, sizeof(double));
    float *dl = NULL;
    if (!pix || !lab || !x || !y || !t_train || !t_inf) {
        st = loom_error_set(err, LOOM_ERR_NOMEM, "bench: out of memory");
        goto done;
    }
    if ((st = loom_model_create(&m, text, model, 28, 28, 1, err)) ||
        (st = loom_model_set_precision(m, precision, NULL, err)) ||
        (st = loom_model_prepare(m, batch, err)))
        goto done;
    loom_model_init(m, 1);
    int K = loom_model_n_outputs(m);
    dl = loom_xalloc(sizeof(float) * (size_t)K * batch);
    loom_opt_config oc = {
        .kind = LOOM_OPT_ADAM, .lr = 1e-4f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-7f};
    if (!dl) {
        st = loom_error_set(err, LOOM_ERR_NOMEM, "bench: out of memory");
        goto done;
    }
    if ((st = loom_optim_create(&opt, &oc, m->n_params, err)))
        goto done;
    loom_rng rng;
    loom_rng_seed(&rng, 7);
    for (size_t i = 0; i < D * (size_t)batch * BENCH_BATCHES; i++)
        pix[i] = (uint8_t)loom_rng_below(&rng, 256);
    for (int i = 0; i < batch * BENCH_BATCHES; i++)
        lab[i] = (uint8_t)loom_rng_below(&rng, (uint32_t)K);
    loom_dataset ds = {
        .n = batch * BENCH_BATCHES, .H = 28, .W = 28, .C = 1, .x = pix, .y = lab, .n_classes = K};
    int *idx = malloc(sizeof(int) * (size_t)batch * BENCH_BATCHES);
    if (!idx) {
        st = loom_error_set(err, LOOM_ERR_NOMEM, "bench: out of memory");
        goto done;
    }
    for (int i = 0; i < batch * BENCH_BATCHES; i++)
        idx[i] = i;

    /* steps per repeat from a calibration step, so each repeat lasts about the asked time */
    double t0 = loom_now();
    for (int s = 0; s < 2; s++)
        bench_step(m, opt, &ds, idx, s, batch, x, y, dl, &rng, NULL);
    double per_step = (loom_now() - t0) / 2;
    int steps = (int)ceil(seconds_per_repeat / fmax(per_step, 1e-6));
    if (steps < 3)
        steps = 3;
    for (int rep = -1; rep < repeats; rep++) { /* rep -1: warm-up */
        double a = loom_now();
        for (int s = 0; s < steps; s++)
            bench_step(m, opt, &ds, idx, s, batch, x, y, dl, &rng, NULL);
        double b = loom_now();
        for (int s = 0; s < steps; s++) {
            loom_batch_fill(&ds, idx + (s % BENCH_BATCHES) * batch, batch, NULL, x, y);
            model_infer(m, x, batch);
        }
        double c = loom_now();
        if (rep >= 0) {
            t_train[rep] = (double)steps * batch / (b - a);
            t_inf[rep] = (double)steps * batch / (c - b);
        }
    }
    if (is_layers)
        bench_layers(m, opt, &ds, idx, steps, batch, x, y, dl, &rng, r);
    qsort(t_train, (size_t)repeats, sizeof(double), cmp_double);
    qsort(t_inf, (size_t)repeats, sizeof(double), cmp_double);
    r->train_ips = median_sorted(t_train, repeats);
    r->infer_ips = median_sorted(t_inf, repeats);
    if (is_int8 && (st = bench_int8(m, &ds, idx, batch, repeats, steps, x, y, t_inf, r, err))) {
        free(idx);
        goto done;
    }
    free(idx);
    r->train_min_ips = t_train[0];
    r->train_max_ips = t_train[repeats - 1];
    double fl = loom_model_flops(m);
    r->train_gflops = 3 * fl * r->train_ips / 1e9;
    r->infer_gflops = fl * r->infer_ips / 1e9;
    r->repeats = repeats;
    r->steps = steps;
    r->batch = batch;
done:
    loom_optim_destroy(opt);
    loom_model_destroy(m);
    free(text);
    free(pix);
    free(lab);
    free(x);
    free(y);
    free(dl);
    free(t_train);
    free(t_inf);
    return st;
}

/* The model to time for loom_bench_infer: a model file with its weights, else a zoo name or a
 * model-text file with seed-1 weights (as loom_bench's). */
static loom_status bench_open(const char *model, loom_model **m, loom_error *err) {
    if (!loom_zoo_find(model)) {
        loom_error e2 = {0};
        loom_status st = loom_model_load(m, NULL, model, &e2);
        if (st != LOOM_ERR_FORMAT) {
            if (st && err)
                *err = e2;
            return st;
        }
    }
    char *text = NULL;
    loom_status st = loom_model_resolve(model, &text, NULL, err);
    if (st == LOOM_OK && (st = loom_model_create(m, text, model, 28, 28, 1, err)) == LOOM_OK)
        loom_model_init(*m, 1);
    free(text);
    return st;
}

loom_status loom_bench_infer(const char *model, int batch, int repeats, double seconds_per_repeat,
                             loom_bench_result *r, loom_error *err) {
    memset(r, 0, sizeof *r);
    if (batch < 1 || repeats < 1 || repeats > 100)
        return loom_error_set(err, LOOM_ERR_ARG, "bench: batch >= 1 and 1..100 repeats");
    loom_model *m = NULL;
    loom_status st = bench_open(model, &m, err);
    if (st)
        return st;
    size_t D = shape_size(m->in);
    uint8_t *pix = malloc(D * (size_t)batch * BENCH_BATCHES);
    uint8_t *lab = calloc((size_t)batch * BENCH_BATCHES, 1);
    int *idx = malloc(sizeof(int) * (size_t)batch * BENCH_BATCHES);
    float *x = loom_xalloc(sizeof(float) * D * (size_t)batch);
    int *y = malloc(sizeof(int) * (size_t)batch);
    double *t_inf = calloc((size_t)repeats, sizeof(double));
    if (!pix || !lab || !idx || !x || !y || !t_inf) {
        st = loom_error_set(err, LOOM_ERR_NOMEM, "bench: out of memory");
        goto done;
    }
    if ((st = loom_model_prepare(m, batch, err)))
        goto done;
    loom_rng rng;
    loom_rng_seed(&rng, 7);
    for (size_t i = 0; i < D * (size_t)batch * BENCH_BATCHES; i++)
        pix[i] = (uint8_t)loom_rng_below(&rng, 256);
    for (int i = 0; i < batch * BENCH_BATCHES; i++)
        idx[i] = i;
    loom_dataset ds = {.n = batch * BENCH_BATCHES,
                       .H = m->in.d[0],
                       .W = m->in.d[1],
                       .C = m->in.d[2],
                       .x = pix,
                       .y = lab,
                       .n_classes = loom_model_n_outputs(m)};
    /* batches per repeat from two calibration batches */
    double t0 = loom_now();
    for (int s = 0; s < 2; s++) {
        loom_batch_fill(&ds, idx + s * batch, batch, NULL, x, y);
        model_infer(m, x, batch);
    }
    int steps = (int)ceil(seconds_per_repeat / fmax((loom_now() - t0) / 2, 1e-7));
    if (steps < 3)
        steps = 3;
    r->infer_ips = bench_infer(m, &ds, idx, batch, repeats, steps, x, y, t_inf);
    r->infer_gflops = loom_model_flops(m) * r->infer_ips / 1e9;
    r->repeats = repeats;
    r->steps = steps;
    r->batch = batch;
done:
    loom_model_destroy(m);
    free(pix);
    free(lab);
    free(idx);
    free(x);
    free(y);
    free(t_inf);
    return st;
}
