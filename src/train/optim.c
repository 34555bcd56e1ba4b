/* optim.c - optimizers over the model's one parameter buffer: SGD (momentum, Nesterov), Adam,
 * AdamW, RMSprop; decoupled weight decay, global-norm gradient clipping (after the trainer has
 * added the L2 term's gradient); learning-rate schedules. Moments are buffers of n_params. */
#include "../model/model.h"

#include <math.h>

struct loom_optim {
    loom_opt_config cfg;
    size_t n;
    float *m, *v; /* (n) first / second moments (sgd: velocity in m) */
    long t;       /* steps taken */
};

loom_status loom_optim_create(loom_optim **out, const loom_opt_config *cfg, size_t n_params,
                              loom_error *err) {
    *out = NULL;
    if (!(cfg->lr > 0.0f) || !isfinite(cfg->lr))
        return loom_error_set(err, LOOM_ERR_ARG, "learning rate must be > 0, got %g", cfg->lr);
    loom_optim *o = calloc(1, sizeof *o);
    if (!o)
        return loom_error_set(err, LOOM_ERR_NOMEM, "optimizer: out of memory");
    o->cfg = loom_opt_config_resolved(cfg);
    o->n = n_params;
    o->m = loom_xalloc(sizeof(float) * n_params);
    o->v = loom_xalloc(sizeof(float) * n_params);
    if (!o->m || !o->v) {
        loom_optim_destroy(o);
        return loom_error_set(err, LOOM_ERR_NOMEM, "optimizer: cannot allocate moments");
    }
    *out = o;
    return LOOM_OK;
}

/* Checkpoint access: the moments (n each) and the step count. */
void optim_state(loom_optim *o, float **m, float **v, long **t);
void optim_state(loom_optim *o, float **m, float **v, long **t) {
    *m = o->m;
    *v = o->v;
    *t = &o->t;
}

void loom_optim_destroy(loom_optim *o) {
    if (!o)
        return;
    free(o->m);
    free(o->v);
    free(o);
}

/* The optimizers by loom_opt_kind: name and the defaults of the settings they read. */
static const struct {
    const char *name;
    float momentum, beta2;
} opt_table[] = {
    [LOOM_OPT_SGD] = {"sgd", 0.9f, 0.999f},
    [LOOM_OPT_ADAM] = {"adam", 0.0f, 0.999f},
    [LOOM_OPT_ADAMW] = {"adamw", 0.0f, 0.999f},
    [LOOM_OPT_RMSPROP] = {"rmsprop", 0.0f, 0.9f},
};
#define N_OPT ((int)(sizeof opt_table / sizeof *opt_table))

const char *loom_opt_kind_str(loom_opt_kind k) {
    return k >= 0 && (int)k < N_OPT ? opt_table[k].name : "?";
}

loom_opt_config loom_opt_config_resolved(const loom_opt_config *c) {
    loom_opt_config r = *c;
    int k = c->kind >= 0 && (int)c->kind < N_OPT ? (int)c->kind : LOOM_OPT_ADAM;
    if (isnan(r.momentum))
        r.momentum = opt_table[k].momentum;
    if (isnan(r.beta2))
        r.beta2 = opt_table[k].beta2;
    return r;
}

loom_status loom_opt_kind_parse(const char *s, loom_opt_kind *out, loom_error *err) {
    for (int i = 0; i < N_OPT; i++)
        if (strcmp(s, opt_table[i].name) == 0) {
            *out = (loom_opt_kind)i;
            return LOOM_OK;
        }
    return loom_error_set(err, LOOM_ERR_ARG,
                          "unknown optimizer '%s': use sgd, adam, adamw or rmsprop", s);
}

/* Step-wide scalars shared by every chunk of the update. */
typedef struct {
    float lr, wd; /* learning rate; decoupled decay already multiplied by lr */
    float a, e;   /* adam: bias-corrected step size and epsilon */
} step_scalars;

/* The update of elements [lo, hi): elementwise, so any split gives the same numbers. */
static void update_range(const loom_opt_config *c, const step_scalars *k, float *restrict w,
                         const float *restrict g, float *restrict m, float *restrict v, size_t lo,
                         size_t hi) {
    float lr = k->lr, wd = k->wd;
    switch (c->kind) {
    case LOOM_OPT_SGD: {
        float mu = c->momentum;
        if (mu == 0.0f) {
#pragma omp simd
            for (size_t i = lo; i < hi; i++)
                w[i] -= lr * g[i] + wd * w[i];
        } else if (c->is_nesterov) { /* Keras: v = mu v - lr g; w += mu v - lr g */
#pragma omp simd
            for (size_t i = lo; i < hi; i++) {
                m[i] = mu * m[i] - lr * g[i];
                w[i] += mu * m[i] - lr * g[i] - wd * w[i];
            }
        } else {
#pragma omp simd
            for (size_t i = lo; i < hi; i++) {
                m[i] = mu * m[i] - lr * g[i];
                w[i] += m[i] - wd * w[i];
            }
        }
        break;
    }
    case LOOM_OPT_ADAM:
    case LOOM_OPT_ADAMW: {
        float b1 = c->beta1, b2 = c->beta2, a = k->a, e = k->e;
#pragma omp simd
        for (size_t i = lo; i < hi; i++) {
            m[i] = b1 * m[i] + (1.0f - b1) * g[i];
            v[i] = b2 * v[i] + (1.0f - b2) * g[i] * g[i];
            w[i] -= a * m[i] / (sqrtf(v[i]) + e) + wd * w[i];
        }
        break;
    }
    case LOOM_OPT_RMSPROP: {
        float rho = c->beta2, eps = c->eps, mu = c->momentum;
#pragma omp simd
        for (size_t i = lo; i < hi; i++) {
            v[i] = rho * v[i] + (1.0f - rho) * g[i] * g[i];
            float step = lr * g[i] / (sqrtf(v[i]) + eps);
            if (mu > 0.0f) {
                m[i] = mu * m[i] + step;
                step = m[i];
            }
            w[i] -= step + wd * w[i];
        }
        break;
    }
    }
}

/* Elements per parallel chunk: fixed, so results never depend on the thread count. */
#define OPT_CHUNK 32768

/* What a step's chunks read and write. */
typedef struct {
    const loom_opt_config *c;
    const step_scalars *k;
    float *w, *g, *m, *v;
    double *part; /* clipping: each chunk's sum of squares */
} optim_job;

/* part[p] = sum of g^2 over elements [lo, hi) */
static void sumsq_chunk(void *ctx, long lo, long hi, int p) {
    const optim_job *j = ctx;
    double q = 0;
    for (long i = lo; i < hi; i++)
        q += (double)j->g[i] * j->g[i];
    j->part[p] = q;
}

/* the update of elements [lo, hi) */
static void update_chunk(void *ctx, long lo, long hi, int ch) {
    (void)ch;
    const optim_job *j = ctx;
    update_range(j->c, j->k, j->w, j->g, j->m, j->v, (size_t)lo, (size_t)hi);
}

void loom_optim_step(loom_optim *o, loom_model *mdl, float lr) {
    const loom_opt_config *c = &o->cfg;
    float *w = mdl->params, *g = mdl->grads;
    size_t n = o->n;
    int nc = (int)((n + OPT_CHUNK - 1) / OPT_CHUNK);
    if (c->clip_norm > 0.0f) {
        double part[1024], s = 0;
        int nparts = nc < 1024 ? nc : 1024;
        optim_job j = {.g = g, .part = part};
        par_for((long)n, nparts, sumsq_chunk, &j);
        for (int p = 0; p < nparts; p++) /* fixed order */
            s += part[p];
        double nrm = sqrt(s);
        if (nrm > c->clip_norm) {
            float f = (float)(c->clip_norm / nrm);
            for (size_t i = 0; i < n; i++)
                g[i] *= f;
        }
    }
    o->t++;
    step_scalars k = {lr, c->weight_decay > 0.0f ? lr * c->weight_decay : 0.0f, 0, 0};
    if (c->kind == LOOM_OPT_ADAM || c->kind == LOOM_OPT_ADAMW) {
        double bc1 = 1.0 - pow(c->beta1, (double)o->t), bc2 = 1.0 - pow(c->beta2, (double)o->t);
        k.a = (float)(lr * sqrt(bc2) / bc1); /* Keras/TF form: eps added to sqrt(v_hat) */
        k.e = (float)(c->eps * sqrt(bc2));
        if (c->kind == LOOM_OPT_ADAMW && k.wd == 0.0f)
            k.wd = lr * 0.01f; /* AdamW without --weight-decay: the usual 0.01 */
    }
    optim_job j = {.c = c, .k = &k, .w = w, .g = g, .m = o->m, .v = o->v};
    par_for((long)n, nc, update_chunk, &j);
}

/* "constant" | "step[:EVERY[:GAMMA]]" | "exp[:GAMMA]" | "cosine[:WARMUP[:LR_MIN]]" |
 * "plateau[:PATIENCE[:GAMMA]]" */
loom_status loom_sched_parse(const char *s, loom_sched_config *out, loom_error *err) {
    loom_sched_config c = {LOOM_SCHED_CONSTANT, 10, 0.1f, 0, 0.0f, 3};
    char name[32] = {0};
    double a = NAN, b = NAN;
    char tail[64] = {0};
    int n = sscanf(s, "%31[a-z]:%lf:%lf%63s", name, &a, &b, tail);
    if (n < 1 || tail[0])
        goto bad;
    /* counts (every, warmup, patience) are whole numbers of epochs, at most 10^6 */
    int whole = n < 2 || (a >= 0 && a <= 1e6 && a == floor(a));
    if (strcmp(name, "constant") == 0) {
        if (n > 1)
            goto bad;
    } else if (strcmp(name, "step") == 0) {
        c.kind = LOOM_SCHED_STEP;
        if (!whole)
            goto bad;
        if (n >= 2)
            c.step_every = (int)a;
        if (n >= 3)
            c.gamma = (float)b;
        if (c.step_every < 1 || !(c.gamma > 0 && c.gamma <= 1))
            goto bad;
    } else if (strcmp(name, "exp") == 0) {
        c.kind = LOOM_SCHED_EXP;
        c.gamma = 0.9f;
        if (n >= 2)
            c.gamma = (float)a;
        if (n >= 3 || !(c.gamma > 0 && c.gamma <= 1))
            goto bad;
    } else if (strcmp(name, "cosine") == 0) {
        c.kind = LOOM_SCHED_COSINE;
        if (!whole)
            goto bad;
        if (n >= 2)
            c.warmup_epochs = (int)a;
        if (n >= 3)
            c.lr_min = (float)b;
        if (c.warmup_epochs < 0 || !(c.lr_min >= 0 && c.lr_min < 1e6f))
            goto bad;
    } else if (strcmp(name, "plateau") == 0) {
        c.kind = LOOM_SCHED_PLATEAU;
        c.patience = 2;
        c.gamma = 0.5f;
        c.lr_min = 1e-6f;
        if (!whole)
            goto bad;
        if (n >= 2)
            c.patience = (int)a;
        if (n >= 3)
            c.gamma = (float)b;
        if (c.patience < 1 || !(c.gamma > 0 && c.gamma < 1))
            goto bad;
    } else {
        goto bad;
    }
    *out = c;
    return LOOM_OK;
bad:
    return loom_error_set(err, LOOM_ERR_ARG,
                          "lr_schedule: bad value '%s': use constant, step[:EVERY[:GAMMA]], "
                          "exp[:GAMMA], cosine[:WARMUP[:LR_MIN]] or plateau[:PATIENCE[:GAMMA]]",
                          s);
}

float loom_sched_lr(const loom_sched_config *s, float lr, int e, int n_epochs) {
    switch (s->kind) {
    case LOOM_SCHED_CONSTANT:
    case LOOM_SCHED_PLATEAU: return lr;
    case LOOM_SCHED_STEP: return lr * powf(s->gamma, (float)(e / s->step_every));
    case LOOM_SCHED_EXP: return lr * powf(s->gamma, (float)e);
    case LOOM_SCHED_COSINE: {
        if (e < s->warmup_epochs)
            return lr * (float)(e + 1) / (float)(s->warmup_epochs + 1);
        int span = n_epochs - s->warmup_epochs;
        double p = span > 0 ? (double)(e - s->warmup_epochs) / span : 0.0; /* last > lr_min */
        return (float)(s->lr_min + 0.5 * (lr - s->lr_min) * (1.0 + cos(M_PI * p)));
    }
    }
    return lr;
}
