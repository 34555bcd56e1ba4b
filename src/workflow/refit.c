/* refit.c - the best trial of a search, retrained from scratch (on the search's training split,
 * or on every training example with --refit all) into DIR/best: model.txt, model.loom,
 * history.csv, config.txt, the receipt, and its test metrics. */
#include "search.h"
#include "../run/rundir.h"

/* --refit all: every training example, none held out, into *all; early stopping, with no
 * validation data to stop on, is turned off (c->epochs are trained in full). */
static loom_status refit_all_split(search *s, loom_train_config *c, loom_split *all,
                                   loom_error *err) {
    loom_status st = loom_split_create(all, s->ds, 0.0, LOOM_SPLIT_KERAS, 0, err);
    if (st)
        return st;
    if (c->early_stopping > 0)
        slog(s, LOOM_LOG_WARN,
             "refit on all examples: early stopping needs validation data; training %d epoch%s",
             c->epochs, PLURAL(c->epochs));
    c->early_stopping = 0;
    return LOOM_OK;
}

/* model.txt (at path): the best point's model text, headed by its score and the flags that
 * train it again with 'loom train'. */
static loom_status write_model_txt(search *s, const loom_train_config *c, const char *sched,
                                   const char *path, loom_error *err) {
    const loom_tune_config *tc = s->tc;
    const loom_tune_trial *b = &s->res->trials[s->res->best];
    text_out mt;
    if (!text_open(&mt))
        return loom_error_set(err, LOOM_ERR_NOMEM, "out of memory");
    char sc[32];
    fprintf(mt.f, "# trial %d of %s: %s %s\n", b->trial + 1, s->source,
            loom_objective_str(tc->objective),
            loom_objective_fmt(tc->objective, b->score, sc, sizeof sc));
    /* the settings by their names (config.txt's keys) */
    float momentum = loom_opt_config_resolved(&c->opt).momentum;
    fprintf(mt.f, "# trained with: epochs=%d batch=%d optimizer=%s lr=%g lr_schedule=%s", c->epochs,
            c->batch, loom_opt_kind_str(c->opt.kind), (double)c->opt.lr, sched);
    if (momentum > 0)
        fprintf(mt.f, " momentum=%g", (double)momentum);
    if (c->opt.l2 > 0)
        fprintf(mt.f, " l2=%g", (double)c->opt.l2);
    if (c->early_stopping > 0)
        fprintf(mt.f, " early_stopping=%d", c->early_stopping);
    fprintf(mt.f, "%s%s\n%s", tc->is_standardize ? " standardize=1" : "",
            tc->is_refit_all ? " val_split=0" : "", s->points[b->trial].model_text);
    return text_save(&mt, path, err);
}

/* The best's config.txt into cfg (zeroed by the caller, which discards it): a training run's
 * keys, then the search, trial and hyperparameters it comes from. */
static loom_status best_config(search *s, const loom_train_config *c, const char *model_txt,
                               text_out *cfg, loom_error *err) {
    const loom_tune_config *tc = s->tc;
    const loom_tune_result *res = s->res;
    const loom_tune_trial *b = &res->trials[res->best];
    loom_run_config rc;
    loom_run_config_init(&rc);
    rc.model = model_txt;
    rc.data_dir = tc->data_dir;
    rc.val_split = tc->is_refit_all ? 0.0 : tc->val_split;
    rc.is_standardize = tc->is_standardize;
    rc.subset = tc->subset;
    rc.test_subset = tc->test_subset;
    rc.is_skip_test = s->test == NULL;
    rc.train = *c;
    rc.command_line = tc->command_line;
    char *base = loom_run_config_text(&rc);
    if (!base || !text_open(cfg)) {
        free(base);
        return loom_error_set(err, LOOM_ERR_NOMEM, "out of memory");
    }
    fprintf(cfg->f,
            "%stune_dir=%s\ntune_trial=%d\ntune_objective=%s\ntune_score=%.6f\ntune_refit=%s\n",
            base, s->dir, b->trial + 1, loom_objective_str(tc->objective), b->score,
            tc->is_refit_all ? "all" : "split");
    free(base);
    for (int i = 0; i < res->n_hp; i++)
        if (b->values[i])
            fprintf(cfg->f, "hp.%s=%s\n", res->hp_names[i], b->values[i]);
    fflush(cfg->f);
    if (!cfg->buf)
        return loom_error_set(err, LOOM_ERR_NOMEM, "out of memory");
    return LOOM_OK;
}

/* Saves the fitted best m into dir (model.loom with cfg's text, the receipt, config.txt; cfg is
 * freed) and tests it when there is a test set. */
static loom_status save_best(search *s, loom_model *m, text_out *cfg, int batch, const char *dir,
                             loom_error *err) {
    loom_tune_result *res = s->res;
    const loom_space_point *pt = &s->points[res->trials[res->best].trial];
    char path[2048];
    loom_status st =
        loom_model_save(m, cfg->buf, path_join(path, sizeof path, dir, "model.loom"), err);
    if (st)
        return st;
    res->weights_hash = receipt_weights(m);
    if ((st = receipt_write(dir, receipt_inputs(pt->model_text, cfg->buf, s->ds, s->test), NULL,
                            res->weights_hash, err)))
        return st;
    if ((st = text_save(cfg, path_join(path, sizeof path, dir, "config.txt"), err)))
        return st;
    if (s->test) {
        if ((st = loom_run_write_test(m, s->test, s->tc->test_subset, batch, dir,
                                      s->tc->train.stop_flag, &res->test, err)))
            return st;
        res->has_test = true;
    }
    return LOOM_OK;
}

/* The closing line: what the best was fitted and judged on, its test metrics, where it is. */
static void log_best(search *s, int n_train, double val_acc, const char *dir) {
    const loom_tune_result *res = s->res;
    const loom_tune_trial *b = &res->trials[res->best];
    char fit[64];
    if (s->tc->is_refit_all)
        snprintf(fit, sizeof fit, "trained on all %d examples", n_train);
    else
        snprintf(fit, sizeof fit, "validation accuracy %.2f%%", 100 * val_acc);
    if (s->test)
        slog(s, LOOM_LOG_INFO, "best: trial %d, %s; test accuracy %.2f%%, macro F1 %.2f%% -> %s",
             b->trial + 1, fit, 100 * res->test.accuracy, 100 * res->test.macro_f1, dir);
    else
        slog(s, LOOM_LOG_INFO, "best: trial %d, %s -> %s", b->trial + 1, fit, dir);
}

loom_status retrain_best(search *s, loom_error *err) {
    const loom_tune_config *tc = s->tc;
    const loom_tune_trial *b = &s->res->trials[s->res->best];
    const loom_space_point *pt = &s->points[b->trial];
    char dir[1200], path[2048], model_txt[2048], sched[64];
    loom_train_config c;
    loom_model *m = NULL;
    loom_history h = {0};
    loom_metrics val = {0};
    text_out cfg = {0};
    snprintf(dir, sizeof dir, "%s/best", s->dir);
    loom_status st = loom_run_create_dir(dir, true, err);
    if (st || (st = trial_config(s, pt, b->epochs, &c, sched, sizeof sched, err)))
        return st;
    c.seed = exec_seed(s, b->trial, 0); /* without cv: execution 1 of the trial, bit for bit */
    loom_split all = {0};               /* --refit all: every training example, none held out */
    const loom_split *fit_split = &s->split;
    if (tc->is_refit_all) {
        if ((st = refit_all_split(s, &c, &all, err)))
            goto done;
        fit_split = &all;
    }
    snprintf(s->prefix, sizeof s->prefix, "best (trial %d): ", b->trial + 1);
    if ((st = write_model_txt(s, &c, sched,
                              path_join(model_txt, sizeof model_txt, dir, "model.txt"), err)))
        goto done;
    char sc[32];
    slog(s, LOOM_LOG_INFO, "retraining the best, trial %d (%s %s), for %d epoch%s on %d examples",
         b->trial + 1, loom_objective_str(tc->objective),
         loom_objective_fmt(tc->objective, b->score, sc, sizeof sc), c.epochs, PLURAL(c.epochs),
         fit_split->n_train);
    if ((st = tune_fit(pt->model_text, s->source, s->ds, fit_split, tc->is_standardize, &c, &h,
                       &val, &m, err)) ||
        (st = loom_history_write_csv(&h, path_join(path, sizeof path, dir, "history.csv"), err)) ||
        (st = best_config(s, &c, model_txt, &cfg, err)) ||
        (st = save_best(s, m, &cfg, c.batch, dir, err)))
        goto done;
    log_best(s, fit_split->n_train, val.accuracy, dir);
done:
    loom_split_reset(&all);
    text_discard(&cfg);
    loom_history_reset(&h);
    loom_metrics_reset(&val);
    loom_model_destroy(m);
    return st;
}
