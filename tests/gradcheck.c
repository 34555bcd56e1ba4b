/* gradcheck.c - the finite-difference gradient checker (see gradcheck.h). It drives the
 * layers of a model directly so that it can also ask layer 0 for dL/d(input). */
#include "gradcheck.h"

#include "../src/model/model.h"
#include "check.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

float gradcheck_corrupt_scale = 1.0f;

static double loss_of(loom_model *m, const float *x, int B, const float *R, size_t n_out,
                      uint64_t seed) {
    loom_rng rng;
    loom_rng_seed(&rng, seed); /* same dropout mask on every evaluation */
    const float *y = loom_model_forward(m, x, B, true, &rng);
    double s = 0;
    for (size_t i = 0; i < n_out; i++)
        s += (double)y[i] * R[i];
    return s;
}

/* Compares analytic g[idx] with central differences of v[idx]; returns counts. */
static void check_tensor(const char *what, loom_model *m, float *v, const float *g, size_t n,
                         const float *x, int B, const float *R, size_t n_out, uint64_t seed,
                         int max_samples, loom_rng *pick, gradcheck_result *res) {
    const float h = 1e-3f;
    int bad = 0;
    double worst = 0;
    size_t count = n < (size_t)max_samples ? n : (size_t)max_samples;
    for (size_t s = 0; s < count; s++) {
        size_t i = n <= (size_t)max_samples ? s : loom_rng_below(pick, (uint32_t)n);
        float old = v[i];
        double l0 = loss_of(m, x, B, R, n_out, seed);
        v[i] = old + h;
        double lp = loss_of(m, x, B, R, n_out, seed);
        v[i] = old - h;
        double lm = loss_of(m, x, B, R, n_out, seed);
        v[i] = old;
        double hp = (double)(old + h) - old, hm = (double)old - (old - h);
        double sp = (lp - l0) / hp, sm = (l0 - lm) / hm;
        double num = (lp - lm) / (hp + hm), an = (double)g[i] * gradcheck_corrupt_scale;
        /* A kink between x-h and x+h makes the one-sided slopes differ; the central difference
         * is then off by up to |sp - sm| / 2. Skip exactly the entries where that could exceed
         * the tolerance below, and no others. */
        if (fabs(sp - sm) > 2 * (1e-2 * fmax(fabs(sp), fabs(sm)) + 3e-3)) {
            res->n_skipped++;
            continue;
        }
        double err = fabs(an - num), rel = err / fmax(fabs(an), fabs(num));
        res->n_checked++;
        if (err > 1e-2 * fmax(fabs(an), fabs(num)) + 3e-3) {
            if (bad < 3)
                fprintf(stderr, "    %s[%zu]: analytic %.6g, numeric %.6g\n", what, i, an, num);
            bad++;
        } else if (err > 3e-3 && rel > worst) {
            worst = rel;
        }
    }
    res->n_bad += bad;
    if (worst > res->worst_rel)
        res->worst_rel = worst;
}

gradcheck_result gradcheck_model(const char *text, int H, int W, int C, int B, uint64_t seed,
                                 int max_samples, bool is_positive) {
    gradcheck_result res = {0};
    loom_model *m = NULL;
    loom_error err = {0};
    if (loom_model_create(&m, text, "gradcheck", H, W, C, &err) || loom_model_prepare(m, B, &err)) {
        fprintf(stderr, "    gradcheck: %s\n", err.msg);
        loom_model_destroy(m);
        res.n_bad = 1;
        return res;
    }
    loom_model_init(m, seed);
    loom_rng rng;
    loom_rng_seed(&rng, seed + 17);
    /* nudge parameters off their initial symmetric values (zero biases, unit gammas) */
    for (size_t i = 0; i < m->n_params; i++)
        m->params[i] += 0.1f * (2.0f * loom_rng_uniform(&rng) - 1.0f);
    size_t n_in = (size_t)B * H * W * C;
    size_t n_out = (size_t)B * (size_t)loom_model_n_outputs(m);
    float *x = malloc(sizeof(float) * n_in), *R = malloc(sizeof(float) * n_out);
    float *dx = malloc(sizeof(float) * n_in);
    for (size_t i = 0; i < n_in; i++)
        x[i] = is_positive ? loom_rng_uniform(&rng) : 2.0f * loom_rng_uniform(&rng) - 1.0f;
    for (size_t i = 0; i < n_out; i++)
        R[i] = 2.0f * loom_rng_uniform(&rng) - 1.0f;

    /* analytic: forward, then backward layer by layer with dx for layer 0 */
    uint64_t fseed = seed + 99;
    loss_of(m, x, B, R, n_out, fseed);
    loom_model_zero_grad(m);
    int n = m->n_layers;
    float *cur = m->dbuf[0], *nxt = m->dbuf[1];
    memcpy(cur, R, sizeof(float) * n_out);
    for (int i = n - 1; i >= 0; i--) {
        layer *l = &m->layers[i];
        if (m->passed[i]) { /* as loom_model_backward: a passed layer's dx is its dy */
            if (i == 0)
                memcpy(dx, cur, sizeof(float) * n_in);
            continue;
        }
        l->ops->backward(l, i == 0 ? x : m->acts[i - 1], m->acts[i], cur, i > 0 ? nxt : dx, B);
        float *t = cur;
        cur = nxt;
        nxt = t;
    }
    float *g = malloc(sizeof(float) * (m->n_params + 1));
    memcpy(g, m->grads, sizeof(float) * m->n_params);

    loom_rng pick;
    loom_rng_seed(&pick, seed + 5);
    check_tensor("input", m, x, dx, n_in, x, B, R, n_out, fseed, max_samples, &pick, &res);
    for (int gi = 0; gi < m->n_groups; gi++) {
        const model_group *mg = &m->groups[gi];
        char what[64];
        snprintf(what, sizeof what, "layer%d.group%d", mg->layer + 1, gi);
        check_tensor(what, m, m->params + mg->off, g + mg->off, mg->len, x, B, R, n_out, fseed,
                     max_samples, &pick, &res);
    }
    free(g);
    free(x);
    free(R);
    free(dx);
    loom_model_destroy(m);
    return res;
}

void gradcheck_expect(const char *text, int H, int W, int C, int B) {
    gradcheck_result r = gradcheck_model(text, H, W, C, B, 1234, 200, false);
    CHECK_MSG(r.n_bad == 0 && r.n_checked > 0, "[%s] %d bad of %d checked", text, r.n_bad,
              r.n_checked);
    CHECK_MSG(r.n_skipped * 10 <= r.n_checked + r.n_skipped, "[%s] %d skipped of %d", text,
              r.n_skipped, r.n_checked + r.n_skipped);
}

void gradcheck_threads_expect(const char *text, int H, int W, int C, int B, int max_threads) {
    size_t D = (size_t)H * W * C;
    float *x = malloc(sizeof(float) * D * (size_t)B), *ref_y = NULL, *ref_g = NULL, *dl = NULL;
    loom_rng rng;
    loom_rng_seed(&rng, 3);
    for (size_t i = 0; x && i < D * (size_t)B; i++)
        x[i] = loom_rng_uniform(&rng);
    CHECK(x != NULL);
    int K = 0;
    size_t n = 0;
    for (int t = 1; x && t <= max_threads; t++) {
        loom_set_threads(t);
        loom_model *m = NULL;
        loom_error err = {0};
        CHECK_MSG(loom_model_create(&m, text, "threads", H, W, C, &err) == LOOM_OK, "%s", err.msg);
        if (!m)
            break;
        loom_model_init(m, 4);
        CHECK(loom_model_prepare(m, B, &err) == LOOM_OK);
        if (t == 1) { /* the same dL/dy for every thread count */
            K = loom_model_n_outputs(m);
            n = loom_model_n_params(m);
            dl = malloc(sizeof(float) * (size_t)K * B);
            ref_y = malloc(sizeof(float) * (size_t)K * B);
            ref_g = malloc(sizeof(float) * (n ? n : 1));
            for (int i = 0; dl && i < K * B; i++)
                dl[i] = loom_rng_uniform(&rng) - 0.5f;
        }
        if (!dl || !ref_y || !ref_g) {
            loom_model_destroy(m);
            CHECK(dl && ref_y && ref_g);
            break;
        }
        loom_rng r2; /* dropout masks: the same stream on every thread count */
        loom_rng_seed(&r2, 11);
        loom_model_zero_grad(m);
        const float *y = loom_model_forward(m, x, B, true, &r2);
        loom_model_backward(m, dl, B);
        if (t == 1) {
            memcpy(ref_y, y, sizeof(float) * (size_t)K * B);
            memcpy(ref_g, loom_model_grads(m), sizeof(float) * n);
        } else {
            CHECK_MSG(memcmp(ref_y, y, sizeof(float) * (size_t)K * B) == 0,
                      "[%s] outputs on %d threads differ", text, t);
            CHECK_MSG(memcmp(ref_g, loom_model_grads(m), sizeof(float) * n) == 0,
                      "[%s] gradients on %d threads differ", text, t);
        }
        loom_model_destroy(m);
    }
    loom_set_threads(0);
    free(x), free(dl), free(ref_y), free(ref_g);
}
