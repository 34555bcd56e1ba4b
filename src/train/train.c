/* train.c - the training loop: seeded shuffling, mini-batches filled into buffers allocated
 * once, forward/backward/update, per-epoch validation, history, schedules, early stopping
 * with best-weight restore, NaN/Inf detection with rollback to the epoch's starting weights.
 * x (B, H, W, C) batches, logits and dlogits (B, K). Nothing is printed here: the caller gets
 * log lines (cfg->log) and progress events (cfg->progress) to show as it likes. */
#include "../model/model.h"
#include "checkpoint.h"
#include "mix.h"
#include "shards.h"

#include <math.h>
#include <stdarg.h>

void loom_train_config_init(loom_train_config *c) {
    memset(c, 0, sizeof *c);
    c->epochs = 10;
    c->batch = 64;
    c->opt = (loom_opt_config){.kind = LOOM_OPT_ADAM,
                               .lr = 1e-3f,
                               .momentum = NAN,
                               .beta1 = 0.9f,
                               .beta2 = NAN,
                               .eps = 1e-7f};
    c->sched.kind = LOOM_SCHED_CONSTANT;
    c->seed = 42;
    c->shards = 1;
}

void loom_history_reset(loom_history *h) {
    free(h->epochs);
    memset(h, 0, sizeof *h);
}

void optim_state(loom_optim *o, float **m, float **v, long **t);

/* "erase[:P[:AMIN-AMAX[:R]]]" into cfg (defaults 0.5, 0.02-0.4, 0.3, as Zhong et al.). */
static bool parse_erase(const char *tok, loom_train_config *cfg) {
    float v[4] = {0.5f, 0.02f, 0.4f, 0.3f};
    if (strncmp(tok, "erase", 5) != 0)
        return false;
    const char *p = tok + 5;
    int k = 0;
    for (; *p && k < 4; k++) {
        if (*p != (k == 2 ? '-' : ':'))
            return false;
        char *end;
        v[k] = strtof(p + 1, &end);
        if (end == p + 1)
            return false;
        p = end;
    }
    if (*p || k == 2 || !(v[0] > 0.0f && v[0] <= 1.0f) ||
        !(v[1] > 0.0f && v[1] <= v[2] && v[2] < 1.0f) || !(v[3] > 0.0f && v[3] <= 1.0f))
        return false;
    cfg->erase_p = v[0];
    cfg->erase_area_min = v[1];
    cfg->erase_area_max = v[2];
    cfg->erase_aspect = v[3];
    return true;
}

/* "mixup[:A]" / "cutmix[:A]" (A > 0, default 1 as both papers' CIFAR runs) into *alpha. */
static bool parse_mix(const char *tok, const char *word, float *alpha) {
    size_t n = strlen(word);
    if (strncmp(tok, word, n) != 0)
        return false;
    if (tok[n] == '\0') {
        *alpha = 1.0f;
        return true;
    }
    char *end;
    float a = tok[n] == ':' ? strtof(tok + n + 1, &end) : 0.0f;
    if (tok[n] != ':' || end == tok + n + 1 || *end || !(a > 0.0f && a <= 100.0f))
        return false;
    *alpha = a;
    return true;
}

loom_status loom_augment_parse(const char *s, loom_train_config *cfg, loom_error *err) {
    cfg->is_augment_flip = false;
    cfg->augment_shift = 0;
    cfg->erase_p = 0.0f;
    cfg->mixup_alpha = cfg->cutmix_alpha = 0.0f;
    if (!s || !*s || strcmp(s, "none") == 0)
        return LOOM_OK;
    char buf[128];
    snprintf(buf, sizeof buf, "%s", s);
    char *save = NULL;
    for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        int k;
        char tail;
        if (strcmp(tok, "flip") == 0)
            cfg->is_augment_flip = true;
        else if (sscanf(tok, "shift:%d%c", &k, &tail) == 1 && k >= 0 && k <= 8)
            cfg->augment_shift = k;
        else if (!parse_erase(tok, cfg) && !parse_mix(tok, "mixup", &cfg->mixup_alpha) &&
                 !parse_mix(tok, "cutmix", &cfg->cutmix_alpha))
            return loom_error_set(err, LOOM_ERR_ARG,
                                  "augment: bad item '%s': use none, flip, shift:N (N 0..8), "
                                  "erase[:P[:AMIN-AMAX[:R]]] (P in (0, 1], 0 < AMIN <= AMAX < 1, "
                                  "R in (0, 1]), mixup[:A], cutmix[:A] (A in (0, 100])",
                                  tok);
    }
    return LOOM_OK;
}

/* v with the fewest digits that read back to the same float. */
static void short_float(float v, char *buf, size_t n) {
    for (int d = 1; d <= 9; d++) {
        snprintf(buf, n, "%.*g", d, (double)v);
        if (strtof(buf, NULL) == v)
            return;
    }
}

void loom_augment_format(const loom_train_config *cfg, char *buf, size_t n) {
    snprintf(buf, n, "%sshift:%d", cfg->is_augment_flip ? "flip," : "", cfg->augment_shift);
    if (cfg->erase_p > 0.0f) {
        char v[4][24];
        short_float(cfg->erase_p, v[0], sizeof v[0]);
        short_float(cfg->erase_area_min, v[1], sizeof v[1]);
        short_float(cfg->erase_area_max, v[2], sizeof v[2]);
        short_float(cfg->erase_aspect, v[3], sizeof v[3]);
        size_t used = strlen(buf);
        snprintf(buf + used, n > used ? n - used : 0, ",erase:%s:%s-%s:%s", v[0], v[1], v[2], v[3]);
    }
    const float alpha[2] = {cfg->mixup_alpha, cfg->cutmix_alpha};
    for (int i = 0; i < 2; i++)
        if (alpha[i] > 0.0f) {
            char v[24];
            short_float(alpha[i], v, sizeof v);
            size_t used = strlen(buf);
            snprintf(buf + used, n > used ? n - used : 0, ",%s:%s", i ? "cutmix" : "mixup", v);
        }
}

/* avg = d * avg + (1 - d) * w over the trainable weights (--ema), after optimizer step t
 * (1, 2, ...), with d = min(decay, (1 + t) / (10 + t)): the usual warm-up, so that the average
 * does not hold on to the random initial weights for thousands of steps. */
static void ema_update(float *restrict avg, const float *restrict w, size_t n, float decay,
                       long t) {
    float warm = (float)(1 + t) / (float)(10 + t);
    float keep = decay < warm ? decay : warm, take = 1.0f - keep;
    for (size_t i = 0; i < n; i++)
        avg[i] = keep * avg[i] + take * w[i];
}

/* Exchanges the weights with their average, so evaluation sees the averaged ones. */
static void ema_swap(float *restrict a, float *restrict b, size_t n) {
    for (size_t i = 0; i < n; i++) {
        float t = a[i];
        a[i] = b[i];
        b[i] = t;
    }
}

/* Random erasing of one image (H, W, C) in place: with probability erase_p, up to 10 tries to
 * place a rectangle of the drawn area and aspect ratio inside the image; the first that fits
 * is filled with uniform [0, 1) noise. The draws follow the image's flip/shift draw. */
static void erase_one(float *img, int H, int W, int C, const loom_train_config *cfg,
                      loom_rng *rng) {
    if (loom_rng_uniform(rng) >= cfg->erase_p)
        return;
    double lr = log((double)cfg->erase_aspect);
    for (int attempt = 0; attempt < 10; attempt++) {
        double area = (double)H * W *
                      (cfg->erase_area_min +
                       (cfg->erase_area_max - cfg->erase_area_min) * loom_rng_uniform(rng));
        double aspect = exp(lr + (-2.0 * lr) * loom_rng_uniform(rng)); /* lr <= 0 */
        int he = (int)lround(sqrt(area * aspect)), we = (int)lround(sqrt(area / aspect));
        if (he < 1 || we < 1 || he >= H || we >= W)
            continue;
        int y0 = (int)loom_rng_below(rng, (uint32_t)(H - he + 1));
        int x0 = (int)loom_rng_below(rng, (uint32_t)(W - we + 1));
        for (int h = y0; h < y0 + he; h++)
            for (size_t j = 0; j < (size_t)we * C; j++)
                img[((size_t)h * W + x0) * C + j] = loom_rng_uniform(rng);
        return;
    }
}

/* Random horizontal flip and translation (zero fill) of each image of x (B, H, W, C) in place,
 * the flip and shift applied after the erasing; tmp holds one image. The draws come from rng in
 * a fixed order: per image the flip/shift draw, then the erasing's (when on). */
static void augment_batch(float *x, int B, int H, int W, int C, const loom_train_config *cfg,
                          loom_rng *rng, float *tmp) {
    int s = cfg->augment_shift;
    size_t D = (size_t)H * W * C;
    for (int b = 0; b < B; b++) {
        uint64_t r = loom_rng_next(rng);
        bool is_flip = cfg->is_augment_flip && (r & 1);
        int dy = s ? (int)((r >> 8) % (uint64_t)(2 * s + 1)) - s : 0;
        int dx = s ? (int)((r >> 24) % (uint64_t)(2 * s + 1)) - s : 0;
        float *img = x + (size_t)b * D;
        if (cfg->erase_p > 0.0f)
            erase_one(img, H, W, C, cfg, rng);
        if (!is_flip && dx == 0 && dy == 0)
            continue;
        memcpy(tmp, img, sizeof(float) * D);
        for (int h = 0; h < H; h++) {
            int sh = h - dy;
            for (int w = 0; w < W; w++) {
                int sw = (is_flip ? W - 1 - w : w) - dx;
                float *dst = img + ((size_t)h * W + w) * C;
                if (sh < 0 || sh >= H || sw < 0 || sw >= W)
                    memset(dst, 0, sizeof(float) * C);
                else
                    memcpy(dst, tmp + ((size_t)sh * W + sw) * C, sizeof(float) * C);
            }
        }
    }
}

/* One training run: the caller's arguments, the buffers allocated once, the optimizer and the
 * checkpointable state (everything a checkpoint must carry lives in ck.pos or behind ck's
 * pointers). */
typedef struct {
    loom_model *m;
    const loom_train_config *cfg;
    const loom_dataset *train, *val;
    const int *idx_val;
    int n_train, n_val;
    const loom_norm *nrm;
    loom_history *hist;
    loom_error *err;
    int K;          /* the model's outputs */
    int bs, steps;  /* batch size, steps per epoch */
    size_t np, ns;  /* parameter and state floats */
    float *x;       /* (bs, H, W, C) */
    int *y;         /* (bs) */
    float *dlogits; /* (bs, K) */
    int *order;     /* (n_train) */
    float *good;    /* (np + ns) weights at epoch start */
    float *best;    /* (np + ns) best validation weights */
    float *aug_tmp; /* (H, W, C) one image (augmentation) */
    bool is_mix;    /* mixup or cutmix */
    float *mix_x;   /* (bs, H, W, C) the batch before mixing, when is_mix */
    int *mix_perm;  /* (bs) the partners, when is_mix */
    int *mix_y;     /* (bs) the partners' labels, when is_mix */
    float mix_lam;  /* the step's weight of each example's own label, when is_mix */
    bool is_ema;
    float *ema; /* (np) averaged weights, when is_ema */
    loom_optim *opt;
    long *opt_t; /* the optimizer's step count */
    ckpt_state ck;
    /* shards (cfg->shards > 1): this process's share, the exact sum, the state at the step's
     * start, each shard's scalars (SC_N doubles: this process's, then every shard's) */
    bool is_sharded, is_dist;
    shard_sum sh;
    float *s0;
    double *sc_mine, *sc_all;
    bool is_stop_agreed; /* the job's processes agreed to stop after this step */
} trainer;

/* A shard's scalars, gathered from every process in shard order. */
enum { SC_LOSS, SC_CORRECT, SC_BAD_OUT, SC_BAD_GRAD, SC_N };
/* The flags maximum-reduced after the exponents: a stop was asked, a value is not finite. */
enum { FLAG_STOP, FLAG_NONFINITE, N_FLAGS };

/* The settings and shapes loom_train needs before it allocates anything. */
static loom_status check_args(const loom_model *m, const loom_train_config *cfg,
                              const loom_dataset *train, int n_train, loom_error *err) {
    if (cfg->epochs < 1 || cfg->batch < 1)
        return loom_error_set(err, LOOM_ERR_ARG, "epochs and batch size must be >= 1");
    if (!(cfg->ema >= 0.0f && cfg->ema <= 0.9999f))
        return loom_error_set(err, LOOM_ERR_ARG, "ema must be from 0 to 0.9999, got %g",
                              (double)cfg->ema);
    if (n_train < 1)
        return loom_error_set(err, LOOM_ERR_ARG, "no training examples");
    int S = cfg->shards, N = cfg->is_data_parallel ? loom_dist_size() : 1;
    int bs = cfg->batch < n_train ? cfg->batch : n_train;
    if (S < 1 || S > bs)
        return loom_error_set(err, LOOM_ERR_ARG,
                              "shards must be from 1 to the batch size (%d), got %d", bs, S);
    if (S % N != 0)
        return loom_error_set(
            err, LOOM_ERR_ARG,
            "shards: %d processes share each batch's shards: set shards to a multiple of %d "
            "(12 runs on 1, 2, 3, 4, 6 or 12 processes with the same numbers)",
            N, N);
    int K = loom_model_n_outputs(m);
    if (train->n_classes > K)
        return loom_error_set(err, LOOM_ERR_SHAPE,
                              "the model has %d outputs but the data has %d classes", K,
                              train->n_classes);
    if (train->H != m->in.d[0] || train->W != m->in.d[1] || train->C != m->in.d[2])
        return loom_error_set(err, LOOM_ERR_SHAPE,
                              "the model expects %dx%dx%d images, the data has %dx%dx%d",
                              m->in.d[0], m->in.d[1], m->in.d[2], train->H, train->W, train->C);
    return LOOM_OK;
}

/* The buffers, the optimizer and the starting position (seeded streams, or the checkpoint's
 * when resuming). t's caller fields, K, bs and steps are set; the model is prepared for bs. */
static loom_status trainer_setup(trainer *t, const int *idx_train) {
    const loom_train_config *cfg = t->cfg;
    loom_model *m = t->m;
    size_t D = (size_t)t->train->H * t->train->W * t->train->C, np = m->n_params, ns = m->n_state;
    int bs = t->bs;
    t->np = np;
    t->ns = ns;
    t->x = loom_xalloc(sizeof(float) * D * bs);
    t->y = malloc(sizeof(int) * (size_t)bs);
    t->dlogits = loom_xalloc(sizeof(float) * (size_t)t->K * bs);
    t->order = malloc(sizeof(int) * (size_t)t->n_train);
    t->good = loom_xalloc(sizeof(float) * (np + ns));
    t->best = loom_xalloc(sizeof(float) * (np + ns));
    t->aug_tmp = loom_xalloc(sizeof(float) * D);
    t->is_ema = cfg->ema > 0.0f;
    t->ema = t->is_ema ? loom_xalloc(sizeof(float) * (np ? np : 1)) : NULL;
    t->is_mix = cfg->mixup_alpha > 0.0f || cfg->cutmix_alpha > 0.0f;
    if (t->is_mix) {
        t->mix_x = loom_xalloc(sizeof(float) * D * bs);
        t->mix_perm = malloc(sizeof(int) * (size_t)bs);
        t->mix_y = malloc(sizeof(int) * (size_t)bs);
        if (!t->mix_x || !t->mix_perm || !t->mix_y)
            return loom_error_set(t->err, LOOM_ERR_NOMEM, "training buffers: out of memory");
    }
    t->hist->epochs = calloc((size_t)cfg->epochs, sizeof *t->hist->epochs);
    if (!t->x || !t->y || !t->dlogits || !t->order || !t->good || !t->best || !t->aug_tmp ||
        !t->hist->epochs || (t->is_ema && !t->ema))
        return loom_error_set(t->err, LOOM_ERR_NOMEM, "training buffers: out of memory");
    loom_status st = loom_optim_create(&t->opt, &cfg->opt, np, t->err);
    if (st)
        return st;
    t->is_sharded = cfg->shards > 1;
    t->is_dist = cfg->is_data_parallel && loom_dist_size() > 1;
    if (t->is_sharded) {
        int N = t->is_dist ? loom_dist_size() : 1, r = t->is_dist ? loom_dist_rank() : 0;
        int per = cfg->shards / N;
        t->s0 = loom_xalloc(sizeof(float) * (ns ? ns : 1));
        t->sc_mine = malloc(sizeof(double) * SC_N * (size_t)per);
        t->sc_all = malloc(sizeof(double) * SC_N * (size_t)cfg->shards);
        if (!t->s0 || !t->sc_mine || !t->sc_all)
            return loom_error_set(t->err, LOOM_ERR_NOMEM, "shard buffers: out of memory");
        if ((st = shard_sum_init(&t->sh, cfg->shards, r * per, (r + 1) * per, np + ns, N_FLAGS,
                                 t->err)))
            return st;
    }
    memcpy(t->order, idx_train, sizeof(int) * (size_t)t->n_train);
    if (t->is_ema)
        memcpy(t->ema, m->params, sizeof(float) * np);

    uint32_t ema_bits = 0; /* off: 0 (also for -0) */
    if (t->is_ema)
        memcpy(&ema_bits, &cfg->ema, 4);
    t->ck = (ckpt_state){.sizes = {np, ns, t->n_train, bs, cfg->epochs, ema_bits},
                         .order = t->order,
                         .params = m->params,
                         .state = m->state,
                         .best = t->best,
                         .good = t->good,
                         .ema = t->ema,
                         .hist = t->hist->epochs};
    optim_state(t->opt, &t->ck.opt_m, &t->ck.opt_v, &t->opt_t);
    ckpt_pos *p = &t->ck.pos;
    loom_rng_seed(&p->rng_shuffle, loom_seed_derive(cfg->seed, 1001));
    loom_rng_seed(&p->rng_drop, loom_seed_derive(cfg->seed, 1002));
    loom_rng_seed(&p->rng_aug, loom_seed_derive(cfg->seed, 1003));
    p->best_score = INFINITY;
    p->best_epoch = -1;
    p->lr_plateau = cfg->opt.lr;
    /* in a data-parallel job only rank 0 loads the checkpoint (and sends it: loom_train) */
    if (cfg->is_resume && cfg->checkpoint_path && (!t->is_dist || loom_dist_rank() == 0)) {
        char warning[1200];
        if ((st = ckpt_load(cfg->checkpoint_path, &t->ck, warning, sizeof warning, t->err)))
            return st;
        if (warning[0])
            log_printf(cfg->log, cfg->log_user, LOOM_LOG_WARN, "%s", warning);
        *t->opt_t = p->opt_t;
        t->hist->n_epochs = p->n_hist;
        log_printf(cfg->log, cfg->log_user, LOOM_LOG_INFO, "resuming at epoch %d, step %d",
                   p->epoch + 1, p->step + 1);
    }
    return LOOM_OK;
}

/* A progress event (cfg->progress is set) with the epoch's running loss and accuracy. */
static void report_progress(const trainer *t, loom_progress_kind kind, int step, float lr,
                            double seconds, double val_loss, double val_acc) {
    const ckpt_pos *p = &t->ck.pos;
    loom_progress ev = {.kind = kind,
                        .label = "",
                        .epoch = p->epoch + 1,
                        .n_epochs = t->cfg->epochs,
                        .step = step,
                        .n_steps = t->steps,
                        .loss = (p->loss_sum + p->pen_sum) / p->seen,
                        .acc = (double)p->correct / p->seen,
                        .seconds = seconds,
                        .val_loss = val_loss,
                        .val_acc = val_acc,
                        .lr = lr};
    t->cfg->progress(t->cfg->progress_user, &ev);
}

/* Step s's loss L or a gradient is not finite: roll back to the epoch's starting weights and
 * say where the trouble started (bad_out, bad_grad: the first such layer, or -1). */
static loom_status step_failed(trainer *t, int s, double L, int bad_out, int bad_grad) {
    const loom_train_config *cfg = t->cfg;
    loom_model *m = t->m;
    memcpy(m->params, t->good, sizeof(float) * t->np);
    memcpy(m->state, t->good + t->np, sizeof(float) * t->ns);
    char where[256] = "the loss";
    if (bad_out >= 0 || bad_grad >= 0) {
        char nm[200];
        model_layer_name(m, bad_out >= 0 ? bad_out : bad_grad, nm, sizeof nm);
        snprintf(where, sizeof where, "%s of %s", bad_out >= 0 ? "the output" : "the gradient", nm);
    }
    loom_status st = loom_error_set(
        t->err, LOOM_ERR_NUMERIC,
        "%s became %s at epoch %d, step %d (first non-finite: %s); "
        "weights rolled back to the start of the epoch: lower lr or set clip_norm",
        bad_grad >= 0 ? "a gradient" : "the loss", bad_grad >= 0 || isnan(L) ? "NaN" : "Inf",
        t->ck.pos.epoch + 1, s + 1, where);
    if (cfg->checkpoint_path && t->ck.pos.epoch > 0)
        log_printf(cfg->log, cfg->log_user, LOOM_LOG_WARN, "the last good checkpoint is %s",
                   cfg->checkpoint_path);
    return st;
}

/* After step s: a checkpoint every cfg->checkpoint_steps steps inside the epoch, and one when
 * stop_flag is set (then LOOM_ERR_INTERRUPTED). The checkpoint resumes at step s + 1. */
static loom_status checkpoint_step(trainer *t, int s) {
    const loom_train_config *cfg = t->cfg;
    ckpt_pos *p = &t->ck.pos;
    /* a data-parallel job stops where its processes agreed to, whoever saw the signal */
    bool is_stop = t->is_dist ? t->is_stop_agreed : cfg->stop_flag && *cfg->stop_flag;
    bool is_ck_step =
        cfg->checkpoint_steps > 0 && (s + 1) % cfg->checkpoint_steps == 0 && s + 1 < t->steps;
    if (cfg->checkpoint_path && (is_stop || is_ck_step)) {
        p->step = s + 1;
        p->opt_t = *t->opt_t;
        p->n_hist = t->hist->n_epochs;
        loom_status st = ckpt_save(cfg->checkpoint_path, &t->ck, t->err);
        if (st)
            return st;
        p->step = s;
    }
    if (is_stop)
        return loom_error_set(t->err, LOOM_ERR_INTERRUPTED, "interrupted at epoch %d, step %d%s",
                              p->epoch + 1, s + 1,
                              cfg->checkpoint_path ? "; checkpoint saved" : "");
    return LOOM_OK;
}

double softmax_xent_part(const float *logits, const int *y, int B, int N, float smoothing,
                         int denom, float *dlogits, int *n_correct);
double softmax_xent_mix_part(const float *logits, const int *y, const int *y2, float lam, int B,
                             int N, float smoothing, int denom, float *dlogits, int *n_correct);

/* Forward and backward of examples [a, b) of the batch x/y of B (dropout drawing from rng): the
 * loss summed (L), the correct count (nc), the first layer with a non-finite output or
 * gradient (or -1). The gradients are those of the batch's mean loss. */
static void pass(trainer *t, int a, int b, int B, loom_rng *rng, double *L, int *nc, int *bad_out,
                 int *bad_grad) {
    loom_model *m = t->m;
    size_t D = (size_t)t->train->H * t->train->W * t->train->C;
    loom_model_zero_grad(m);
    const float *logits = loom_model_forward(m, t->x + D * (size_t)a, b - a, true, rng);
    *L = t->is_mix ? softmax_xent_mix_part(logits, t->y + a, t->mix_y + a, t->mix_lam, b - a, t->K,
                                           t->cfg->label_smoothing, B, t->dlogits, nc)
                   : softmax_xent_part(logits, t->y + a, b - a, t->K, t->cfg->label_smoothing, B,
                                       t->dlogits, nc);
    *bad_out = isfinite(*L) ? -1 : model_first_nonfinite_output(m, b - a);
    *bad_grad = -1;
    if (isfinite(*L)) {
        loom_model_backward(m, t->dlogits, b - a);
        *bad_grad = model_first_nonfinite_grad(m);
    }
}

/* The sharded forward and backward of a batch of B: this process's shards one after the other,
 * each from the state at the step's start, with its own dropout stream; then every shard's
 * gradient and (weighted) state change summed exactly over the job into the model's gradients
 * and state, and the shards' scalars summed in shard order. Returns false with *L, *bad_out,
 * *bad_grad of the first failing shard when a value is not finite anywhere. */
static bool pass_sharded(trainer *t, int B, double *L, int *nc, int *bad_out, int *bad_grad) {
    loom_model *m = t->m;
    shard_sum *sh = &t->sh;
    int S = sh->n_shards;
    size_t np = t->np, ns = t->ns;
    uint64_t base = loom_rng_next(&t->ck.pos.rng_drop); /* one draw per step, on every process */
    memcpy(t->s0, m->state, sizeof(float) * ns);
    bool is_finite = true;
    for (int k = sh->lo; k < sh->hi; k++) {
        int a = (int)((long)B * k / S), b = (int)((long)B * (k + 1) / S);
        float *v = shard_sum_vec(sh, k);
        double *sc = t->sc_mine + SC_N * (size_t)(k - sh->lo);
        double l = 0;
        int c = 0, bo = -1, bg = -1;
        memcpy(m->state, t->s0, sizeof(float) * ns);
        if (b > a) {
            loom_rng rng;
            loom_rng_seed(&rng, loom_seed_derive(base, (uint64_t)k));
            pass(t, a, b, B, &rng, &l, &c, &bo, &bg);
        }
        if (b == a) {
            memset(v, 0, sizeof(float) * (np + ns));
        } else {
            memcpy(v, m->grads, sizeof(float) * np);
            float w = (float)(b - a) / (float)B;
            for (size_t i = 0; i < ns; i++)
                v[np + i] = (m->state[i] - t->s0[i]) * w;
        }
        is_finite = is_finite && isfinite(l) && bg < 0;
        sc[SC_LOSS] = l;
        sc[SC_CORRECT] = c;
        sc[SC_BAD_OUT] = bo;
        sc[SC_BAD_GRAD] = bg;
    }
    if (is_finite)
        shard_sum_exponents(sh);
    else
        memset(sh->ex, 0, sizeof(int32_t) * sh->nb);
    int32_t *flags = sh->ex + sh->nb;
    flags[FLAG_STOP] = t->cfg->stop_flag && *t->cfg->stop_flag;
    flags[FLAG_NONFINITE] = !is_finite;
    if (t->is_dist) {
        dist_max_i32(sh->ex, sh->nb + N_FLAGS);
        loom_dist_allgather(t->sc_mine, sizeof(double) * SC_N * (size_t)(sh->hi - sh->lo),
                            t->sc_all);
    } else {
        memcpy(t->sc_all, t->sc_mine, sizeof(double) * SC_N * (size_t)S);
    }
    t->is_stop_agreed = flags[FLAG_STOP] != 0;
    if (t->is_dist && (flags[FLAG_STOP] || flags[FLAG_NONFINITE]))
        dist_mark_agreed();
    *L = 0;
    *nc = 0;
    for (int k = 0; k < S; k++) {
        const double *sc = t->sc_all + SC_N * (size_t)k;
        if (flags[FLAG_NONFINITE] && (!isfinite(sc[SC_LOSS]) || sc[SC_BAD_GRAD] >= 0)) {
            *L = sc[SC_LOSS];
            *bad_out = (int)sc[SC_BAD_OUT];
            *bad_grad = (int)sc[SC_BAD_GRAD];
            return false;
        }
        *L += sc[SC_LOSS];
        *nc += (int)sc[SC_CORRECT];
    }
    if (flags[FLAG_NONFINITE]) { /* cannot happen: some shard said so */
        *L = NAN;
        *bad_out = *bad_grad = -1;
        return false;
    }
    float *sum = t->sh.v; /* reused as the output: the local vectors are consumed first */
    shard_sum_reduce(sh, t->is_dist, sum);
    memcpy(m->grads, sum, sizeof(float) * np);
    for (size_t i = 0; i < ns; i++)
        m->state[i] = t->s0[i] + sum[np + i];
    return true;
}

/* Step s of the current epoch at rate lr: one batch forward, backward (whole, or in shards) and
 * update (and the average); then the iteration line, the progress event (t0: the epoch's start)
 * and any checkpoint. */
static loom_status train_step(trainer *t, int s, float lr, double t0) {
    const loom_train_config *cfg = t->cfg;
    loom_model *m = t->m;
    ckpt_pos *p = &t->ck.pos;
    int lo = s * t->bs, B = t->n_train - lo < t->bs ? t->n_train - lo : t->bs;
    loom_batch_fill(t->train, t->order + lo, B, t->nrm, t->x, t->y);
    if (cfg->is_augment_flip || cfg->augment_shift > 0 || cfg->erase_p > 0.0f)
        augment_batch(t->x, B, t->train->H, t->train->W, t->train->C, cfg, &p->rng_aug, t->aug_tmp);
    if (t->is_mix) /* mixup/cutmix: the weight of each example's own label, for pass() */
        t->mix_lam =
            mix_batch(t->x, t->y, B, t->train->H, t->train->W, t->train->C, cfg->mixup_alpha,
                      cfg->cutmix_alpha, &p->rng_aug, t->mix_perm, t->mix_x, t->mix_y);
    double L = 0;
    int nc = 0, bad_out = -1, bad_grad = -1;
    if (t->is_sharded) {
        if (!pass_sharded(t, B, &L, &nc, &bad_out, &bad_grad))
            return step_failed(t, s, L, bad_out, bad_grad);
    } else {
        pass(t, 0, B, B, &p->rng_drop, &L, &nc, &bad_out, &bad_grad);
        if (!isfinite(L) || bad_grad >= 0)
            return step_failed(t, s, L, bad_out, bad_grad);
    }
    if (cfg->opt.l2 > 0.0f)
        p->pen_sum += cfg->opt.l2 * loom_model_l2_apply(m, cfg->opt.l2, true) * B;
    loom_optim_step(t->opt, m, lr);
    if (t->is_ema)
        ema_update(t->ema, m->params, t->np, cfg->ema, *t->opt_t);
    p->loss_sum += L;
    p->correct += nc;
    p->seen += B;
    if (cfg->log_every > 0 && (s + 1) % cfg->log_every == 0)
        log_printf(cfg->log, cfg->log_user, LOOM_LOG_INFO,
                   "Iteration: %d. Loss: %.4f. Accuracy: %.2f%%", p->epoch * t->steps + s + 1,
                   L / B, 100.0 * nc / B);
    if (cfg->progress)
        report_progress(t, LOOM_PROGRESS_STEP, s + 1, lr, loom_now() - t0, NAN, NAN);
    return checkpoint_step(t, s);
}

loom_status evaluate_shared(loom_model *m, const loom_dataset *ds, const int *idx, int n,
                            const loom_norm *nrm, int batch, loom_metrics *mt, loom_error *err);

/* h's validation loss and accuracy, of the averaged weights when there is an average (in a
 * data-parallel job each process infers a share of the examples). */
static loom_status validate(trainer *t, loom_epoch *h) {
    loom_metrics mt = {0};
    if (t->is_ema)
        ema_swap(t->m->params, t->ema, t->np);
    loom_status st =
        t->is_dist ? evaluate_shared(t->m, t->val, t->idx_val, t->n_val, t->nrm, t->bs, &mt, t->err)
                   : loom_evaluate(t->m, t->val, t->idx_val, t->n_val, t->nrm, t->bs, &mt, NULL,
                                   NULL, t->err);
    if (t->is_ema)
        ema_swap(t->m->params, t->ema, t->np);
    if (st)
        return st;
    h->val_loss = mt.loss;
    h->val_acc = mt.accuracy;
    loom_metrics_reset(&mt);
    return LOOM_OK;
}

/* Scores the finished epoch h: keeps the best weights (for early stopping), lowers the plateau
 * schedule's rate, and returns true when early stopping ends the training here. */
static bool monitor(trainer *t, loom_epoch *h) {
    const loom_train_config *cfg = t->cfg;
    ckpt_pos *p = &t->ck.pos;
    size_t np = t->np;
    /* monitor: validation loss when there is validation data, else training loss */
    double score = isnan(h->val_loss) ? h->loss : h->val_loss;
    if (score < p->best_score) {
        p->best_score = score;
        p->best_epoch = p->epoch;
        p->since_best = 0;
        p->plateau_wait = 0;
        if (cfg->early_stopping > 0) {
            /* the weights that were scored: the average when it was validated */
            memcpy(t->best, t->is_ema && t->val && t->n_val > 0 ? t->ema : t->m->params,
                   sizeof(float) * np);
            memcpy(t->best + np, t->m->state, sizeof(float) * t->ns);
        }
        return false;
    }
    p->since_best++;
    if (cfg->sched.kind == LOOM_SCHED_PLATEAU && ++p->plateau_wait >= cfg->sched.patience) {
        p->lr_plateau = fmaxf(p->lr_plateau * cfg->sched.gamma, cfg->sched.lr_min);
        p->plateau_wait = 0;
    }
    if (cfg->early_stopping > 0 && p->since_best >= cfg->early_stopping) {
        t->hist->is_stopped_early = true;
        log_printf(cfg->log, cfg->log_user, LOOM_LOG_INFO,
                   "early stopping: no improvement for %d epoch%s; restoring epoch %d",
                   p->since_best, PLURAL(p->since_best), p->best_epoch + 1);
        return true;
    }
    return false;
}

/* The checkpoint every checkpoint_every epochs, positioned at the next epoch's start. */
static loom_status checkpoint_epoch(trainer *t) {
    ckpt_pos *p = &t->ck.pos, saved = *p;
    p->epoch = saved.epoch + 1;
    p->step = 0;
    p->opt_t = *t->opt_t;
    p->n_hist = t->hist->n_epochs;
    loom_status st = ckpt_save(t->cfg->checkpoint_path, &t->ck, t->err);
    *p = saved;
    return st;
}

/* The end of an epoch trained at rate lr since t0: its history row, validation, the progress
 * event and epoch line, the monitor, the epoch checkpoint. *is_last: no epoch follows. */
static loom_status end_epoch(trainer *t, float lr, double t0, bool *is_last) {
    const loom_train_config *cfg = t->cfg;
    ckpt_pos *p = &t->ck.pos;
    int e = p->epoch, K = t->K;
    bool has_val = t->val && t->n_val > 0;
    loom_epoch *h = &t->hist->epochs[t->hist->n_epochs++];
    h->epoch = e + 1;
    h->loss = (p->loss_sum + p->pen_sum) / p->seen;
    h->acc = (double)p->correct / p->seen;
    h->lr = lr;
    h->val_loss = h->val_acc = NAN;
    loom_status st = has_val ? validate(t, h) : LOOM_OK;
    if (st)
        return st;
    h->seconds = loom_now() - t0;
    if (cfg->progress)
        report_progress(t, LOOM_PROGRESS_EPOCH_END, t->steps, lr, h->seconds, h->val_loss,
                        h->val_acc);
    char tail[160] = "";
    if (has_val)
        snprintf(tail, sizeof tail, " - val_loss: %.4f - val_acc: %.2f%%", h->val_loss,
                 100 * h->val_acc);
    log_printf(cfg->log, cfg->log_user, LOOM_LOG_EPOCH,
               "Epoch %d/%d - %.1fs - loss: %.4f - acc: %.2f%%%s - lr: %.3g", e + 1, cfg->epochs,
               h->seconds, h->loss, 100 * h->acc, tail, (double)lr);
    if (t->steps >= 50 && fabs(h->loss - log((double)K)) < 0.02 && h->acc < 1.5 / K)
        log_printf(cfg->log, cfg->log_user, LOOM_LOG_WARN,
                   "warning: the training loss stayed at ln(%d) = %.2f for epoch %d: the model is "
                   "not learning; check the learning rate and optimizer",
                   K, log((double)K), e + 1);
    *is_last = monitor(t, h);
    int ck_every = cfg->checkpoint_every > 0 ? cfg->checkpoint_every : 1;
    if (cfg->checkpoint_path && !*is_last && e + 1 < cfg->epochs && (e + 1) % ck_every == 0)
        return checkpoint_epoch(t);
    return LOOM_OK;
}

/* One epoch from step p->step (0, or where a resumed checkpoint stood). A fresh epoch first
 * sets its rate, keeps the weights for a rollback and shuffles. *is_last as end_epoch's. */
static loom_status train_epoch(trainer *t, bool *is_last) {
    const loom_train_config *cfg = t->cfg;
    ckpt_pos *p = &t->ck.pos;
    double t0 = loom_now();
    if (p->step == 0) { /* a fresh epoch (not one resumed in its middle) */
        p->lr_epoch = cfg->sched.kind == LOOM_SCHED_PLATEAU
                          ? p->lr_plateau
                          : loom_sched_lr(&cfg->sched, cfg->opt.lr, p->epoch, cfg->epochs);
        memcpy(t->good, t->m->params, sizeof(float) * t->np);
        memcpy(t->good + t->np, t->m->state, sizeof(float) * t->ns);
        loom_shuffle_int(t->order, t->n_train, &p->rng_shuffle);
        p->loss_sum = p->pen_sum = 0;
        p->seen = p->correct = 0;
    }
    float lr = p->lr_epoch;
    for (; p->step < t->steps; p->step++) {
        loom_status st = train_step(t, p->step, lr, t0);
        if (st)
            return st;
    }
    return end_epoch(t, lr, t0, is_last);
}

/* The weights the training leaves: the average (--ema), or the best epoch's (early stopping). */
static void finish(trainer *t) {
    loom_model *m = t->m;
    loom_history *hist = t->hist;
    int best_epoch = t->ck.pos.best_epoch;
    hist->best_epoch = best_epoch;
    if (t->is_ema) /* the model is the averaged weights */
        memcpy(m->params, t->ema, sizeof(float) * t->np);
    if (t->cfg->early_stopping > 0 && best_epoch >= 0 && best_epoch != hist->n_epochs - 1) {
        memcpy(m->params, t->best, sizeof(float) * t->np);
        memcpy(m->state, t->best + t->np, sizeof(float) * t->ns);
    }
}

loom_status loom_train(loom_model *m, const loom_train_config *cfg, const loom_dataset *train,
                       const int *idx_train, int n_train, const loom_dataset *val,
                       const int *idx_val, int n_val, const loom_norm *nrm, loom_history *hist,
                       loom_error *err) {
    loom_error own; /* err may be NULL (ckpt_load copies an error into it) */
    if (!err)
        err = &own;
    memset(hist, 0, sizeof *hist);
    double t_start = loom_now();
    loom_status st = check_args(m, cfg, train, n_train, err);
    if (cfg->is_data_parallel)
        st = loom_dist_agree(st, err);
    if (st)
        return st;
    int n_bf16 = 0;
    if ((st = loom_model_set_precision(m, cfg->precision, &n_bf16, err)))
        return st;
    if (cfg->precision == LOOM_PRECISION_BF16 && n_bf16 == 0)
        log_printf(
            cfg->log, cfg->log_user, LOOM_LOG_WARN,
            "warning: precision bf16: no layer takes it (3x3 stride-1 convolutions with even "
            "channel and filter counts): the model trains in fp32");
    int bs = cfg->batch < n_train ? cfg->batch : n_train;
    if ((st = loom_model_prepare(m, bs, err)))
        return st;
    trainer t = {.m = m,
                 .cfg = cfg,
                 .train = train,
                 .val = val,
                 .idx_val = idx_val,
                 .n_train = n_train,
                 .n_val = n_val,
                 .nrm = nrm,
                 .hist = hist,
                 .err = err,
                 .K = loom_model_n_outputs(m),
                 .bs = bs,
                 .steps = (n_train + bs - 1) / bs};
    st = trainer_setup(&t, idx_train);
    if (cfg->is_data_parallel)
        st = loom_dist_agree(st, err);
    if (st == LOOM_OK && t.is_dist && cfg->is_resume) { /* rank 0's checkpoint, to all */
        ckpt_bcast(&t.ck, 0);
        *t.opt_t = t.ck.pos.opt_t;
        hist->n_epochs = t.ck.pos.n_hist;
    }
    /* what watches the validation loss watches the training loss when there is none: say so */
    bool is_val = val && n_val > 0;
    if (st == LOOM_OK && !is_val &&
        (cfg->early_stopping > 0 || cfg->sched.kind == LOOM_SCHED_PLATEAU))
        log_printf(cfg->log, cfg->log_user, LOOM_LOG_WARN,
                   "warning: no validation examples: %s watch%s the training loss instead",
                   cfg->early_stopping > 0 && cfg->sched.kind == LOOM_SCHED_PLATEAU
                       ? "early_stopping and the plateau schedule"
                   : cfg->early_stopping > 0 ? "early_stopping"
                                             : "the plateau schedule",
                   cfg->early_stopping > 0 && cfg->sched.kind == LOOM_SCHED_PLATEAU ? "" : "es");
    ckpt_pos *p = &t.ck.pos;
    for (; st == LOOM_OK && p->epoch < cfg->epochs; p->epoch++, p->step = 0) {
        bool is_last = false;
        st = train_epoch(&t, &is_last);
        if (st || is_last)
            break;
    }
    if (st == LOOM_OK)
        finish(&t);
    /* interrupted or stopped by a NaN: the weights left for model.loom are the average too (it
     * is finite: a failed step never reaches it); the checkpoint already holds both */
    if (t.is_ema && t.ema && (st == LOOM_ERR_INTERRUPTED || st == LOOM_ERR_NUMERIC))
        memcpy(m->params, t.ema, sizeof(float) * t.np);
    hist->seconds = loom_now() - t_start;
    loom_optim_destroy(t.opt);
    free(t.x);
    free(t.y);
    free(t.dlogits);
    free(t.order);
    free(t.good);
    free(t.best);
    free(t.aug_tmp);
    free(t.ema);
    free(t.mix_x);
    free(t.mix_perm);
    free(t.mix_y);
    free(t.s0);
    free(t.sc_mine);
    free(t.sc_all);
    shard_sum_free(&t.sh);
    return st;
}
