/* train.c - the training loop: seeded shuffling, mini-batches filled into buffers allocated
 * once, forward/backward/update, per-epoch validation, history, schedules, early stopping
 * with best-weight restore, NaN/Inf detection with rollback to the epoch's starting weights. */
#include "../model/model.h"
#include "checkpoint.h"

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
}

void loom_history_reset(loom_history *h) {
    free(h->epochs);
    memset(h, 0, sizeof *h);
}

static void fmt_eta(double s, char *buf, size_t n) {
    if (s >= 3600)
        snprintf(buf, n, "%dh%02dm", (int)(s / 3600), (int)fmod(s / 60, 60));
    else if (s >= 60)
        snprintf(buf, n, "%dm%02ds", (int)(s / 60), (int)fmod(s, 60));
    else
        snprintf(buf, n, "%.0fs", s);
}

void optim_state(loom_optim *o, float **m, float **v, long **t);

loom_status loom_augment_parse(const char *s, loom_train_config *cfg, loom_error *err) {
    cfg->is_augment_flip = false;
    cfg->augment_shift = 0;
    if (!s || !*s || strcmp(s, "none") == 0)
        return LOOM_OK;
    char buf[128];
    snprintf(buf, sizeof buf, "%s", s);
    for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ",")) {
        int k;
        char tail;
        if (strcmp(tok, "flip") == 0)
            cfg->is_augment_flip = true;
        else if (sscanf(tok, "shift:%d%c", &k, &tail) == 1 && k >= 0 && k <= 8)
            cfg->augment_shift = k;
        else
            return loom_error_set(err, LOOM_ERR_ARG,
                                  "augment: bad item '%s': use none, flip, shift:N (N 0..8)", tok);
    }
    return LOOM_OK;
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

/* Random horizontal flip and translation (zero fill) of each image of x (B, H, W, C) in place;
 * tmp holds one image. The draws come from rng in a fixed order. */
static void augment_batch(float *x, int B, int H, int W, int C, const loom_train_config *cfg,
                          loom_rng *rng, float *tmp) {
    int s = cfg->augment_shift;
    size_t D = (size_t)H * W * C;
    for (int b = 0; b < B; b++) {
        uint64_t r = loom_rng_next(rng);
        bool is_flip = cfg->is_augment_flip && (r & 1);
        int dy = s ? (int)((r >> 8) % (uint64_t)(2 * s + 1)) - s : 0;
        int dx = s ? (int)((r >> 24) % (uint64_t)(2 * s + 1)) - s : 0;
        if (!is_flip && dx == 0 && dy == 0)
            continue;
        float *img = x + (size_t)b * D;
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

loom_status loom_train(loom_model *m, const loom_train_config *cfg, const loom_dataset *train,
                       const int *idx_train, int n_train, const loom_dataset *val,
                       const int *idx_val, int n_val, const loom_norm *nrm, loom_history *hist,
                       loom_error *err) {
    loom_error own; /* err may be NULL (ckpt_load copies an error into it) */
    if (!err)
        err = &own;
    memset(hist, 0, sizeof *hist);
    double t_start = loom_now();
    if (cfg->epochs < 1 || cfg->batch < 1)
        return loom_error_set(err, LOOM_ERR_ARG, "epochs and batch size must be >= 1");
    if (!(cfg->ema >= 0.0f && cfg->ema <= 0.9999f))
        return loom_error_set(err, LOOM_ERR_ARG, "ema must be from 0 to 0.9999, got %g",
                              (double)cfg->ema);
    if (n_train < 1)
        return loom_error_set(err, LOOM_ERR_ARG, "no training examples");
    int K = loom_model_n_outputs(m);
    if (train->n_classes > K)
        return loom_error_set(err, LOOM_ERR_SHAPE,
                              "the model has %d outputs but the data has %d classes", K,
                              train->n_classes);
    if (train->H != m->in.d[0] || train->W != m->in.d[1] || train->C != m->in.d[2])
        return loom_error_set(err, LOOM_ERR_SHAPE,
                              "the model expects %dx%dx%d images, the data has %dx%dx%d",
                              m->in.d[0], m->in.d[1], m->in.d[2], train->H, train->W, train->C);
    int bs = cfg->batch < n_train ? cfg->batch : n_train;
    loom_status st = loom_model_prepare(m, bs, err);
    if (st)
        return st;
    size_t D = (size_t)train->H * train->W * train->C;
    size_t np = m->n_params, ns = m->n_state;
    float *x = loom_xalloc(sizeof(float) * D * bs);               /* (bs, H, W, C) */
    int *y = malloc(sizeof(int) * (size_t)bs);                    /* (bs) */
    float *dlogits = loom_xalloc(sizeof(float) * (size_t)K * bs); /* (bs, K) */
    int *order = malloc(sizeof(int) * (size_t)n_train);           /* (n_train) */
    float *good = loom_xalloc(sizeof(float) * (np + ns));         /* weights at epoch start */
    float *best = loom_xalloc(sizeof(float) * (np + ns));         /* best validation weights */
    float *aug_tmp = loom_xalloc(sizeof(float) * D);              /* one image (augmentation) */
    bool is_ema = cfg->ema > 0.0f;
    float *ema = is_ema ? loom_xalloc(sizeof(float) * (np ? np : 1)) : NULL; /* averaged weights */
    hist->epochs = calloc((size_t)cfg->epochs, sizeof *hist->epochs);
    loom_optim *opt = NULL;
    if (!x || !y || !dlogits || !order || !good || !best || !aug_tmp || !hist->epochs ||
        (is_ema && !ema)) {
        st = loom_error_set(err, LOOM_ERR_NOMEM, "training buffers: out of memory");
        goto done;
    }
    st = loom_optim_create(&opt, &cfg->opt, np, err);
    if (st)
        goto done;
    memcpy(order, idx_train, sizeof(int) * (size_t)n_train);
    if (is_ema)
        memcpy(ema, m->params, sizeof(float) * np);

    /* everything that a checkpoint must carry lives in ck.pos or behind ck's pointers */
    uint32_t ema_bits = 0; /* off: 0 (also for -0) */
    if (is_ema)
        memcpy(&ema_bits, &cfg->ema, 4);
    ckpt_state ck = {.sizes = {np, ns, n_train, bs, cfg->epochs, ema_bits},
                     .order = order,
                     .params = m->params,
                     .state = m->state,
                     .best = best,
                     .good = good,
                     .ema = ema,
                     .hist = hist->epochs};
    long *opt_t;
    optim_state(opt, &ck.opt_m, &ck.opt_v, &opt_t);
    ckpt_pos *p = &ck.pos;
    loom_rng_seed(&p->rng_shuffle, loom_seed_derive(cfg->seed, 1001));
    loom_rng_seed(&p->rng_drop, loom_seed_derive(cfg->seed, 1002));
    loom_rng_seed(&p->rng_aug, loom_seed_derive(cfg->seed, 1003));
    p->best_score = INFINITY;
    p->best_epoch = -1;
    p->lr_plateau = cfg->opt.lr;
    if (cfg->is_resume && cfg->checkpoint_path) {
        char warning[1200];
        if ((st = ckpt_load(cfg->checkpoint_path, &ck, warning, sizeof warning, err)))
            goto done;
        if (warning[0])
            log_printf(cfg->log, cfg->log_user, LOOM_LOG_WARN, "%s", warning);
        *opt_t = p->opt_t;
        hist->n_epochs = p->n_hist;
        log_printf(cfg->log, cfg->log_user, LOOM_LOG_INFO, "resuming at epoch %d, step %d",
                   p->epoch + 1, p->step + 1);
    }
    int ck_every = cfg->checkpoint_every > 0 ? cfg->checkpoint_every : 1;

    int steps = (n_train + bs - 1) / bs;
    for (; p->epoch < cfg->epochs; p->epoch++, p->step = 0) {
        int e = p->epoch;
        double t0 = loom_now(), t_last = t0;
        if (p->step == 0) { /* a fresh epoch (not one resumed in its middle) */
            p->lr_epoch = cfg->sched.kind == LOOM_SCHED_PLATEAU
                              ? p->lr_plateau
                              : loom_sched_lr(&cfg->sched, cfg->opt.lr, e, cfg->epochs);
            memcpy(good, m->params, sizeof(float) * np);
            memcpy(good + np, m->state, sizeof(float) * ns);
            loom_shuffle_int(order, n_train, &p->rng_shuffle);
            p->loss_sum = p->pen_sum = 0;
            p->seen = p->correct = 0;
        }
        float lr = p->lr_epoch;
        for (; p->step < steps; p->step++) {
            int s = p->step;
            int lo = s * bs, B = n_train - lo < bs ? n_train - lo : bs;
            loom_batch_fill(train, order + lo, B, nrm, x, y);
            if (cfg->is_augment_flip || cfg->augment_shift > 0)
                augment_batch(x, B, train->H, train->W, train->C, cfg, &p->rng_aug, aug_tmp);
            loom_model_zero_grad(m);
            const float *logits = loom_model_forward(m, x, B, true, &p->rng_drop);
            int nc = 0;
            double L =
                loom_softmax_xent_smooth(logits, y, B, K, cfg->label_smoothing, dlogits, &nc);
            int bad_out = isfinite(L) ? -1 : model_first_nonfinite_output(m, B);
            int bad_grad = -1;
            if (isfinite(L)) {
                loom_model_backward(m, dlogits, B);
                bad_grad = model_first_nonfinite_grad(m);
            }
            if (!isfinite(L) || bad_grad >= 0) {
                /* roll back to the last good weights and say where the trouble started */
                memcpy(m->params, good, sizeof(float) * np);
                memcpy(m->state, good + np, sizeof(float) * ns);
                char where[256] = "the loss";
                if (bad_out >= 0 || bad_grad >= 0) {
                    char nm[200];
                    model_layer_name(m, bad_out >= 0 ? bad_out : bad_grad, nm, sizeof nm);
                    snprintf(where, sizeof where, "%s of %s",
                             bad_out >= 0 ? "the output" : "the gradient", nm);
                }
                st = loom_error_set(err, LOOM_ERR_NUMERIC,
                                    "%s became %s at epoch %d, step %d (first non-finite: %s); "
                                    "weights rolled back to the start of the epoch: lower lr or "
                                    "set clip_norm",
                                    bad_grad >= 0 ? "a gradient" : "the loss",
                                    bad_grad >= 0 || isnan(L) ? "NaN" : "Inf", e + 1, s + 1, where);
                if (cfg->checkpoint_path && p->epoch > 0)
                    log_printf(cfg->log, cfg->log_user, LOOM_LOG_WARN,
                               "the last good checkpoint is %s", cfg->checkpoint_path);
                goto done;
            }
            if (cfg->opt.l2 > 0.0f)
                p->pen_sum += cfg->opt.l2 * loom_model_l2_apply(m, cfg->opt.l2, true) * B;
            loom_optim_step(opt, m, lr);
            if (is_ema)
                ema_update(ema, m->params, np, cfg->ema, *opt_t);
            p->loss_sum += L;
            p->correct += nc;
            p->seen += B;
            double now = loom_now();
            if (cfg->log_every > 0 && (s + 1) % cfg->log_every == 0)
                log_printf(cfg->log, cfg->log_user, LOOM_LOG_INFO,
                           "Iteration: %d. Loss: %.4f. Accuracy: %.2f", e * steps + s + 1, L / B,
                           100.0 * nc / B);
            if (cfg->is_progress && (now - t_last > 0.25 || s + 1 == steps)) {
                t_last = now;
                char eta[32], bar[31];
                fmt_eta((now - t0) / (s + 1) * (steps - s - 1), eta, sizeof eta);
                int fill = (int)(30.0 * (s + 1) / steps);
                for (int i = 0; i < 30; i++)
                    bar[i] = i < fill ? '=' : i == fill ? '>' : '.';
                bar[30] = '\0';
                log_printf(cfg->log, cfg->log_user, LOOM_LOG_PROGRESS,
                           "Epoch %d/%d %5d/%d [%s] - ETA: %s - loss: %.4f - acc: %.4f", e + 1,
                           cfg->epochs, s + 1, steps, bar, eta,
                           (p->loss_sum + p->pen_sum) / p->seen, (double)p->correct / p->seen);
            }
            bool is_stop = cfg->stop_flag && *cfg->stop_flag;
            bool is_ck_step =
                cfg->checkpoint_steps > 0 && (s + 1) % cfg->checkpoint_steps == 0 && s + 1 < steps;
            if (cfg->checkpoint_path && (is_stop || is_ck_step)) {
                p->step = s + 1;
                p->opt_t = *opt_t;
                p->n_hist = hist->n_epochs;
                if ((st = ckpt_save(cfg->checkpoint_path, &ck, err)))
                    goto done;
                p->step = s;
            }
            if (is_stop) {
                st = loom_error_set(err, LOOM_ERR_INTERRUPTED, "interrupted at epoch %d, step %d%s",
                                    e + 1, s + 1, cfg->checkpoint_path ? "; checkpoint saved" : "");
                goto done;
            }
        }
        loom_epoch *h = &hist->epochs[hist->n_epochs++];
        h->epoch = e + 1;
        h->loss = (p->loss_sum + p->pen_sum) / p->seen;
        h->acc = (double)p->correct / p->seen;
        h->lr = lr;
        h->val_loss = h->val_acc = NAN;
        if (val && n_val > 0) {
            loom_metrics mt = {0};
            if (is_ema)
                ema_swap(m->params, ema, np);
            st = loom_evaluate(m, val, idx_val, n_val, nrm, bs, &mt, NULL, NULL, err);
            if (is_ema)
                ema_swap(m->params, ema, np);
            if (st)
                goto done;
            h->val_loss = mt.loss;
            h->val_acc = mt.accuracy;
            loom_metrics_reset(&mt);
        }
        h->seconds = loom_now() - t0;
        char tail[160] = "";
        if (val && n_val > 0)
            snprintf(tail, sizeof tail, " - val_loss: %.4f - val_acc: %.4f", h->val_loss,
                     h->val_acc);
        log_printf(cfg->log, cfg->log_user, LOOM_LOG_EPOCH,
                   "Epoch %d/%d - %.1fs - loss: %.4f - acc: %.4f%s - lr: %.3g", e + 1, cfg->epochs,
                   h->seconds, h->loss, h->acc, tail, (double)lr);
        if (steps >= 50 && fabs(h->loss - log((double)K)) < 0.02 && h->acc < 1.5 / K)
            log_printf(
                cfg->log, cfg->log_user, LOOM_LOG_WARN,
                "warning: the training loss stayed at ln(%d) = %.2f for epoch %d: the model is "
                "not learning; check the learning rate and optimizer",
                K, log((double)K), e + 1);
        /* monitor: validation loss when there is validation data, else training loss */
        double score = isnan(h->val_loss) ? h->loss : h->val_loss;
        bool is_last = false;
        if (score < p->best_score) {
            p->best_score = score;
            p->best_epoch = e;
            p->since_best = 0;
            p->plateau_wait = 0;
            if (cfg->early_stopping > 0) {
                /* the weights that were scored: the average when it was validated */
                memcpy(best, is_ema && val && n_val > 0 ? ema : m->params, sizeof(float) * np);
                memcpy(best + np, m->state, sizeof(float) * ns);
            }
        } else {
            p->since_best++;
            if (cfg->sched.kind == LOOM_SCHED_PLATEAU && ++p->plateau_wait >= cfg->sched.patience) {
                p->lr_plateau = fmaxf(p->lr_plateau * cfg->sched.gamma, cfg->sched.lr_min);
                p->plateau_wait = 0;
            }
            if (cfg->early_stopping > 0 && p->since_best >= cfg->early_stopping) {
                hist->is_stopped_early = true;
                log_printf(cfg->log, cfg->log_user, LOOM_LOG_INFO,
                           "early stopping: no improvement for %d epochs; restoring epoch %d",
                           p->since_best, p->best_epoch + 1);
                is_last = true;
            }
        }
        if (cfg->checkpoint_path && !is_last && e + 1 < cfg->epochs && (e + 1) % ck_every == 0) {
            ckpt_pos saved = *p;
            p->epoch = e + 1;
            p->step = 0;
            p->opt_t = *opt_t;
            p->n_hist = hist->n_epochs;
            st = ckpt_save(cfg->checkpoint_path, &ck, err);
            *p = saved;
            if (st)
                goto done;
        }
        if (is_last)
            break;
    }
    hist->best_epoch = p->best_epoch;
    if (is_ema) /* the model is the averaged weights */
        memcpy(m->params, ema, sizeof(float) * np);
    if (cfg->early_stopping > 0 && p->best_epoch >= 0 && p->best_epoch != hist->n_epochs - 1) {
        memcpy(m->params, best, sizeof(float) * np);
        memcpy(m->state, best + np, sizeof(float) * ns);
    }
done:
    /* interrupted or stopped by a NaN: the weights left for model.loom are the average too (it
     * is finite: a failed step never reaches it); the checkpoint already holds both */
    if (is_ema && ema && (st == LOOM_ERR_INTERRUPTED || st == LOOM_ERR_NUMERIC))
        memcpy(m->params, ema, sizeof(float) * np);
    hist->seconds = loom_now() - t_start;
    loom_optim_destroy(opt);
    free(x);
    free(y);
    free(dlogits);
    free(order);
    free(good);
    free(best);
    free(aug_tmp);
    free(ema);
    return st;
}
