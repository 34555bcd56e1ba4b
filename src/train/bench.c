/* bench.c - throughput of training steps and inference batches on random images: the
 * median of several timed repeats after a warm-up, so that the noisy machine is measured fairly. */
#include "../model/model.h"

#include <math.h>

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

loom_status loom_bench(const char *model, int batch, int repeats, double seconds_per_repeat,
                       loom_bench_result *r, loom_error *err) {
    memset(r, 0, sizeof *r);
    if (batch < 1 || repeats < 1 || repeats > 100)
        return loom_error_set(err, LOOM_ERR_ARG, "bench: batch >= 1 and 1..100 repeats");
    char *text = NULL;
    loom_status st = loom_model_resolve(model, &text, NULL, err);
    if (st)
        return st;
    loom_model *m = NULL;
    loom_optim *opt = NULL;
    enum { NB = 8 }; /* distinct batches cycled through */
    size_t D = 28 * 28;
    uint8_t *pix = malloc(D * (size_t)batch * NB);
    uint8_t *lab = malloc((size_t)batch * NB);
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
    for (size_t i = 0; i < D * (size_t)batch * NB; i++)
        pix[i] = (uint8_t)loom_rng_below(&rng, 256);
    for (int i = 0; i < batch * NB; i++)
        lab[i] = (uint8_t)loom_rng_below(&rng, (uint32_t)K);
    loom_dataset ds = {
        .n = batch * NB, .H = 28, .W = 28, .C = 1, .x = pix, .y = lab, .n_classes = K};
    int *idx = malloc(sizeof(int) * (size_t)batch * NB);
    if (!idx) {
        st = loom_error_set(err, LOOM_ERR_NOMEM, "bench: out of memory");
        goto done;
    }
    for (int i = 0; i < batch * NB; i++)
        idx[i] = i;

    /* steps per repeat from a calibration step, so each repeat lasts about the asked time */
    double t0 = loom_now();
    for (int s = 0; s < 2; s++) {
        loom_batch_fill(&ds, idx + (s % NB) * batch, batch, NULL, x, y);
        loom_model_zero_grad(m);
        const float *z = loom_model_forward(m, x, batch, true, &rng);
        loom_softmax_xent(z, y, batch, K, dl, NULL);
        loom_model_backward(m, dl, batch);
        loom_optim_step(opt, m, 1e-4f);
    }
    double per_step = (loom_now() - t0) / 2;
    int steps = (int)ceil(seconds_per_repeat / fmax(per_step, 1e-6));
    if (steps < 3)
        steps = 3;
    for (int rep = -1; rep < repeats; rep++) { /* rep -1: warm-up */
        double a = loom_now();
        for (int s = 0; s < steps; s++) {
            loom_batch_fill(&ds, idx + (s % NB) * batch, batch, NULL, x, y);
            loom_model_zero_grad(m);
            const float *z = loom_model_forward(m, x, batch, true, &rng);
            loom_softmax_xent(z, y, batch, K, dl, NULL);
            loom_model_backward(m, dl, batch);
            loom_optim_step(opt, m, 1e-4f);
        }
        double b = loom_now();
        for (int s = 0; s < steps; s++) {
            loom_batch_fill(&ds, idx + (s % NB) * batch, batch, NULL, x, y);
            loom_model_forward(m, x, batch, false, NULL);
        }
        double c = loom_now();
        if (rep >= 0) {
            t_train[rep] = (double)steps * batch / (b - a);
            t_inf[rep] = (double)steps * batch / (c - b);
        }
    }
    free(idx);
    qsort(t_train, (size_t)repeats, sizeof(double), cmp_double);
    qsort(t_inf, (size_t)repeats, sizeof(double), cmp_double);
    r->train_ips = repeats % 2 ? t_train[repeats / 2]
                               : 0.5 * (t_train[repeats / 2 - 1] + t_train[repeats / 2]);
    r->infer_ips =
        repeats % 2 ? t_inf[repeats / 2] : 0.5 * (t_inf[repeats / 2 - 1] + t_inf[repeats / 2]);
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
