/* batchnorm.c - batch normalisation over the last axis (channels after conv, features after
 * dense, N of a sequence). x viewed as (M, C) with M = B*H*W (or B*T, or B) rows:
 * y = gamma * (x - mean) / sqrt(var + eps) + beta, per channel. Training: batch statistics;
 * evaluation: the running statistics. gamma, beta (C) are parameters; running mean and
 * variance (C each) are state. Backward: docs/derivations/batchnorm.md. */
#include "layer.h"

#include <math.h>

typedef struct {
    float momentum; /* running = momentum * running + (1 - momentum) * batch (Keras) */
    float eps;
    int C; /* channels: the last axis of the input; set by init */
} bn_cfg;

/* Maximum number of row chunks (par_n_chunks never returns more). */
#define BN_MAX_CHUNKS 64

/* Views into the layer's scratch. Fixed part first (so the doubles are aligned), then xhat. */
typedef struct {
    double *part;        /* (BN_MAX_CHUNKS, 2, C) per-chunk partial sums */
    double *s0, *s1;     /* (C) each: the two sums of the current pass, over all rows */
    float *inv_std;      /* (C) 1 / sqrt(var + eps) of the last training forward */
    float *t0, *t1, *t2; /* (C) each: per-channel coefficients of the current pass */
    float *xhat;         /* (M, C) normalised input of the last training forward */
} bn_views;

static size_t bn_fixed_floats(int C) {
    return 2 * ((size_t)2 * BN_MAX_CHUNKS * C + 2 * (size_t)C) + 4 * (size_t)C;
}

static bn_views bn_scratch(const layer *l, int C) {
    bn_views v;
    v.part = (double *)l->scratch;
    v.s0 = v.part + (size_t)2 * BN_MAX_CHUNKS * C;
    v.s1 = v.s0 + C;
    v.inv_std = (float *)(v.s1 + C);
    v.t0 = v.inv_std + C;
    v.t1 = v.t0 + C;
    v.t2 = v.t1 + C;
    v.xhat = l->scratch + bn_fixed_floats(C);
    return v;
}

static loom_status bn_init(layer *l, loom_error *err) {
    bn_cfg *c = l->cfg;
    if (l->in.rank < 1 || l->in.rank > 3) {
        return loom_error_set(err, LOOM_ERR_SHAPE, "batchnorm: unsupported input rank %d",
                              l->in.rank);
    }
    int C = l->in.d[l->in.rank - 1];
    c->C = C;
    l->out = l->in;
    l->n_params = 2 * (size_t)C;
    l->n_state = 2 * (size_t)C; /* running mean (C), running variance (C) */
    l->groups[0] = (param_group){0, (size_t)C, GROUP_BN_GAMMA, C, C};
    l->groups[1] = (param_group){(size_t)C, (size_t)C, GROUP_BN_BETA, C, C};
    l->n_groups = 2;
    l->scratch_per_example = shape_size(l->in); /* xhat */
    l->scratch_fixed = bn_fixed_floats(C);
    l->flops = 2.0 * (double)shape_size(l->in); /* y = a x + b at inference */
    return LOOM_OK;
}

static void bn_init_params(layer *l, loom_rng *rng) {
    (void)rng;
    int C = ((const bn_cfg *)l->cfg)->C;
    for (int k = 0; k < C; k++) {
        l->w[k] = 1.0f;         /* gamma */
        l->w[C + k] = 0.0f;     /* beta */
        l->state[k] = 0.0f;     /* running mean */
        l->state[C + k] = 1.0f; /* running variance */
    }
}

/* Row chunks: at least 4k values each, at most BN_MAX_CHUNKS; depends on sizes only. */
static int bn_chunks(long M, int C) { return par_n_chunks(M, 4096 / C + 1); }

/* s (C) = the sum over the nc chunks of half h (0 or 1) of their (2, C) partial blocks,
 * added in chunk order. */
static void sum_parts(const double *part, int nc, int C, int h, double *s) {
    for (int k = 0; k < C; k++)
        s[k] = 0.0;
    for (int q = 0; q < nc; q++) {
        const double *p = part + ((size_t)q * 2 + h) * C;
        for (int k = 0; k < C; k++)
            s[k] += p[k];
    }
}

/* One pass over the (M, C) rows, in row chunks (par_for): what its chunks read and write.
 * Chunk q's partial sums go to part (q, 2, C). */
typedef struct {
    int C;
    const float *x;            /* (M, C): the input, or dy in backward */
    float *xhat;               /* (M, C): read in backward, written by the normalising pass */
    float *y;                  /* (M, C): the output, or dx in backward */
    const float *k0, *k1, *k2; /* (C) each: the pass's per-channel coefficients */
    const float *k3;           /* (C) */
    const double *mean;        /* (C) */
    double *part;              /* (BN_MAX_CHUNKS, 2, C) */
} bn_pass;

/* y = k0 x + k1 (evaluation: the running statistics folded into one scale and shift) */
static void bn_affine_rows(void *ctx, long lo, long hi, int q) {
    (void)q;
    const bn_pass *p = ctx;
    int C = p->C;
    for (long i = lo; i < hi; i++) {
        const float *xi = p->x + i * C;
        float *yi = p->y + i * C;
#pragma omp simd
        for (int k = 0; k < C; k++)
            yi[k] = p->k0[k] * xi[k] + p->k1[k];
    }
}

/* part[q][0] = sum of x over the chunk's rows */
static void bn_sum_rows(void *ctx, long lo, long hi, int q) {
    const bn_pass *p = ctx;
    int C = p->C;
    double *p0 = p->part + (size_t)q * 2 * C;
    for (int k = 0; k < C; k++)
        p0[k] = 0.0;
    for (long i = lo; i < hi; i++) {
        const float *xi = p->x + i * C;
#pragma omp simd
        for (int k = 0; k < C; k++)
            p0[k] += xi[k];
    }
}

/* part[q][0] = sum of (x - mean)^2 over the chunk's rows */
static void bn_sqdev_rows(void *ctx, long lo, long hi, int q) {
    const bn_pass *p = ctx;
    int C = p->C;
    const double *mean = p->mean;
    double *p0 = p->part + (size_t)q * 2 * C;
    for (int k = 0; k < C; k++)
        p0[k] = 0.0;
    for (long i = lo; i < hi; i++) {
        const float *xi = p->x + i * C;
#pragma omp simd
        for (int k = 0; k < C; k++) {
            double d = xi[k] - mean[k];
            p0[k] += d * d;
        }
    }
}

/* xhat = (x - k0) * k1 (k0 the mean, k1 the inverse std), y = k2 xhat + k3 (gamma, beta) */
static void bn_norm_rows(void *ctx, long lo, long hi, int q) {
    (void)q;
    const bn_pass *p = ctx;
    int C = p->C;
    const float *mean_f = p->k0, *inv_std = p->k1, *gamma = p->k2, *beta = p->k3;
    float *xhat = p->xhat;
    for (long i = lo; i < hi; i++) {
        const float *xi = p->x + i * C;
        float *hi_ = xhat + i * C, *yi = p->y + i * C;
#pragma omp simd
        for (int k = 0; k < C; k++) {
            hi_[k] = (xi[k] - mean_f[k]) * inv_std[k];
            yi[k] = gamma[k] * hi_[k] + beta[k];
        }
    }
}

static void bn_forward(layer *l, const fwd_ctx *ctx, const float *x, float *y, int B) {
    const bn_cfg *c = l->cfg;
    int C = c->C;
    long M = (long)B * (long)(shape_size(l->in) / (size_t)C);
    const float *gamma = l->w, *beta = l->w + C;
    float *run_mean = l->state, *run_var = l->state + C;
    bn_views v = bn_scratch(l, C);
    int nc = bn_chunks(M, C);
    bn_pass p = {.C = C, .x = x, .y = y, .part = v.part};

    if (!ctx->is_training) {
        /* y = a x + b with a = gamma / sqrt(running var + eps), b = beta - running mean * a */
        float *a = v.t0, *b = v.t1;
        for (int k = 0; k < C; k++) {
            double ak = gamma[k] / sqrt((double)run_var[k] + c->eps);
            a[k] = (float)ak;
            b[k] = (float)(beta[k] - run_mean[k] * ak);
        }
        p.k0 = a, p.k1 = b;
        par_for(M, nc, bn_affine_rows, &p);
        return;
    }

    /* pass 1: mean = sum(x) / M, from per-chunk sums in double added in chunk order */
    par_for(M, nc, bn_sum_rows, &p);
    sum_parts(v.part, nc, C, 0, v.s0);
    double *mean = v.s0; /* (C) */
    for (int k = 0; k < C; k++) {
        mean[k] /= (double)M;
    }

    /* pass 2: biased variance = sum((x - mean)^2) / M (two passes, for accuracy) */
    p.mean = mean;
    par_for(M, nc, bn_sqdev_rows, &p);
    double *var = v.s1; /* (C) */
    sum_parts(v.part, nc, C, 0, var);
    /* Keras (tf.nn.moments, keras.ops.moments) normalises with the biased batch variance and
     * feeds the same biased variance to the moving average; so do we. (tf.keras with
     * fused=True scaled the moving-average input by M/(M-1), tensorflow#55545: negligible at
     * M = B*H*W.) */
    double mo = c->momentum;
    for (int k = 0; k < C; k++) {
        var[k] /= (double)M;
        v.inv_std[k] = (float)(1.0 / sqrt(var[k] + c->eps));
        v.t0[k] = (float)mean[k];
        run_mean[k] = (float)(mo * run_mean[k] + (1.0 - mo) * mean[k]);
        run_var[k] = (float)(mo * run_var[k] + (1.0 - mo) * var[k]);
    }

    /* pass 3: xhat = (x - mean) * inv_std (kept for backward), y = gamma * xhat + beta */
    p.xhat = v.xhat; /* (M, C) */
    p.k0 = v.t0, p.k1 = v.inv_std, p.k2 = gamma, p.k3 = beta;
    par_for(M, nc, bn_norm_rows, &p);
}

/* part[q] = (sum of dy, sum of dy * xhat) over the chunk's rows */
static void bn_dsum_rows(void *ctx, long lo, long hi, int q) {
    const bn_pass *p = ctx;
    int C = p->C;
    double *p0 = p->part + (size_t)q * 2 * C, *p1 = p0 + C;
    for (int k = 0; k < C; k++)
        p0[k] = p1[k] = 0.0;
    for (long i = lo; i < hi; i++) {
        const float *di = p->x + i * C, *hi_ = p->xhat + i * C;
#pragma omp simd
        for (int k = 0; k < C; k++) {
            p0[k] += di[k];
            p1[k] += (double)di[k] * hi_[k];
        }
    }
}

/* dx = k0 (dy - k1 - xhat k2) */
static void bn_dx_rows(void *ctx, long lo, long hi, int q) {
    (void)q;
    const bn_pass *p = ctx;
    int C = p->C;
    const float *g = p->k0, *m1 = p->k1, *m2 = p->k2;
    for (long i = lo; i < hi; i++) {
        const float *di = p->x + i * C, *hi_ = p->xhat + i * C;
        float *xi = p->y + i * C;
#pragma omp simd
        for (int k = 0; k < C; k++)
            xi[k] = g[k] * (di[k] - m1[k] - hi_[k] * m2[k]);
    }
}

/* Training-mode backward (docs/derivations/batchnorm.md), per channel over the M rows:
 *   dbeta += sum(dy); dgamma += sum(dy * xhat);
 *   dx = (gamma * inv_std / M) * (M * dy - sum(dy) - xhat * sum(dy * xhat)).
 * The sums are per-chunk partials in double, added in chunk order. */
static void bn_backward(layer *l, const float *x, const float *y, float *dy, float *dx, int B) {
    (void)x, (void)y;
    const bn_cfg *c = l->cfg;
    int C = c->C;
    long M = (long)B * (long)(shape_size(l->in) / (size_t)C);
    const float *gamma = l->w;
    float *dgamma = l->dw, *dbeta = l->dw + C;
    bn_views v = bn_scratch(l, C);
    int nc = bn_chunks(M, C);
    bn_pass p = {.C = C, .x = dy, .xhat = v.xhat, .y = dx, .part = v.part};

    par_for(M, nc, bn_dsum_rows, &p);
    double *sdy = v.s0, *sdyx = v.s1; /* (C) each */
    sum_parts(v.part, nc, C, 0, sdy);
    sum_parts(v.part, nc, C, 1, sdyx);
    for (int k = 0; k < C; k++) {
        dbeta[k] += (float)sdy[k];
        dgamma[k] += (float)sdyx[k];
    }
    if (!dx)
        return;
    /* dx = g * (dy - m1 - xhat * m2): g = gamma * inv_std, m1 = sum(dy) / M,
     * m2 = sum(dy * xhat) / M */
    float *g = v.t0, *m1 = v.t1, *m2 = v.t2;
    for (int k = 0; k < C; k++) {
        g[k] = gamma[k] * v.inv_std[k];
        m1[k] = (float)(sdy[k] / (double)M);
        m2[k] = (float)(sdyx[k] / (double)M);
    }
    p.k0 = g, p.k1 = m1, p.k2 = m2;
    par_for(M, nc, bn_dx_rows, &p);
}

/* Shortest "%g"-style text of f that reads back as the same float. */
static void fmt_float(char *buf, size_t n, float f) {
    for (int prec = 6; prec <= 9; prec++) {
        snprintf(buf, n, "%.*g", prec, f);
        if (strtof(buf, NULL) == f)
            return;
    }
}

#define BN_MOMENTUM_DEFAULT 0.99f
#define BN_EPS_DEFAULT 1e-3f

static void bn_describe(const layer *l, char *buf, size_t n) {
    const bn_cfg *c = l->cfg;
    char mo[48] = "", ep[48] = "", t[24];
    if (c->momentum != BN_MOMENTUM_DEFAULT) {
        fmt_float(t, sizeof t, c->momentum);
        snprintf(mo, sizeof mo, " momentum %s", t);
    }
    if (c->eps != BN_EPS_DEFAULT) {
        fmt_float(t, sizeof t, c->eps);
        snprintf(ep, sizeof ep, " eps %s", t);
    }
    snprintf(buf, n, "batchnorm%s%s", mo, ep);
}

static void bn_lower(const layer *l, layer_lowering *out) {
    *out = (layer_lowering){.kind = LOWER_BATCHNORM, .eps = ((const bn_cfg *)l->cfg)->eps};
}

static const layer_ops bn_ops = {
    .kind = "batchnorm",
    .init = bn_init,
    .init_params = bn_init_params,
    .forward = bn_forward,
    .backward = bn_backward,
    .describe = bn_describe,
    .lower = bn_lower,
};

/* batchnorm [momentum M] [eps E]; also "momentum=M", "eps=E" ("epsilon" for "eps"). */
loom_status batchnorm_parse(layer *l, int argc, char **argv, loom_error *err);
loom_status batchnorm_parse(layer *l, int argc, char **argv, loom_error *err) {
    bn_cfg c = {.momentum = BN_MOMENTUM_DEFAULT, .eps = BN_EPS_DEFAULT};
    for (int i = 1; i < argc;) {
        char key[16];
        const char *w = argv[i], *val, *eq = strchr(w, '=');
        size_t klen = eq ? (size_t)(eq - w) : strlen(w);
        if (klen >= sizeof key)
            return loom_error_set(err, LOOM_ERR_FORMAT, "batchnorm: unexpected word '%s'", w);
        memcpy(key, w, klen);
        key[klen] = '\0';
        bool is_momentum = strcmp(key, "momentum") == 0;
        if (!is_momentum && strcmp(key, "eps") != 0 && strcmp(key, "epsilon") != 0)
            return loom_error_set(err, LOOM_ERR_FORMAT, "batchnorm: unexpected word '%s'", w);
        val = eq ? eq + 1 : i + 1 < argc ? argv[i + 1] : "";
        float f;
        if (!parse_float(val, &f) || (is_momentum ? !(f >= 0.0f && f < 1.0f) : !(f > 0.0f)))
            return loom_error_set(err, LOOM_ERR_FORMAT, "batchnorm: %s must be %s, found '%s'", key,
                                  is_momentum ? "in [0, 1)" : "> 0", val);
        *(is_momentum ? &c.momentum : &c.eps) = f;
        i += eq ? 1 : 2;
    }
    bn_cfg *p = malloc(sizeof *p);
    if (!p)
        return loom_error_set(err, LOOM_ERR_NOMEM, "batchnorm: out of memory");
    *p = c;
    l->ops = &bn_ops;
    l->cfg = p;
    return LOOM_OK;
}
