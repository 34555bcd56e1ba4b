/* checkpoint.h - the trainer's resumable state (internal). */
#ifndef LOOM_CHECKPOINT_H
#define LOOM_CHECKPOINT_H

#include "../core/core.h"

typedef struct { /* must match on resume */
    uint64_t n_params, n_state;
    int32_t n_train, batch, max_epochs;
    uint32_t ema_bits; /* the --ema decay's float bits, 0 = off (then no average follows);
                        * this word was padding, always 0, before --ema existed */
} ckpt_sizes;

typedef struct {         /* where the trainer stands */
    int32_t epoch, step; /* next step to run: epoch (0-based) and step within it */
    int32_t n_hist, best_epoch, since_best, plateau_wait;
    double loss_sum, pen_sum, best_score;
    int64_t seen, correct, opt_t;
    float lr_plateau, lr_epoch;
    loom_rng rng_shuffle, rng_drop, rng_aug;
} ckpt_pos;

typedef struct {
    ckpt_sizes sizes;
    ckpt_pos pos;
    int *order;            /* (n_train) the current epoch's order */
    float *params, *state; /* (n_params), (n_state) */
    float *opt_m, *opt_v;  /* (n_params) each */
    float *best, *good;    /* (n_params + n_state) each */
    float *ema;            /* (n_params) when sizes.ema_bits, else unused */
    loom_epoch *hist;      /* (n_hist) */
} ckpt_state;

loom_status ckpt_save(const char *path, const ckpt_state *s, loom_error *err);
/* Loads path into s (arrays preallocated to sizes); falls back to path.prev with a warning. */
loom_status ckpt_load(const char *path, ckpt_state *s, char *warning, size_t n_warning,
                      loom_error *err);
/* Sends root's loaded state to every process of the job (all of them call it). */
void ckpt_bcast(ckpt_state *s, int root);

#endif
