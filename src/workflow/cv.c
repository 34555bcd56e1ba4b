/* cv.c - stratified k-fold cross-validation: each fold trained from scratch with its own seed,
 * per-fold and mean ± std metrics (cv.csv, cv.json, history_mean.csv), the best fold's model
 * kept; and the pieces the search shares with it: one training on a split, training settings
 * by name, stratified subsets, mean and sample standard deviation, in-memory text files. */
#include "tune.h"
#include "../model/model.h"
#include "../run/rundir.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <sys/stat.h>

/* ---- small shared helpers ---- */

bool text_open(text_out *t) {
    t->buf = NULL;
    t->len = 0;
    t->f = open_memstream(&t->buf, &t->len);
    return t->f != NULL;
}

void text_discard(text_out *t) {
    if (t->f)
        fclose(t->f);
    free(t->buf);
    memset(t, 0, sizeof *t);
}

loom_status text_save(text_out *t, const char *path, loom_error *err) {
    bool is_bad = !t->f || ferror(t->f) != 0;
    if (t->f && fclose(t->f) != 0)
        is_bad = true;
    t->f = NULL;
    loom_status st = is_bad || !t->buf
                         ? loom_error_set(err, LOOM_ERR_NOMEM, "%s: out of memory", path)
                         : loom_file_write_atomic(path, t->buf, t->len, err);
    text_discard(t);
    return st;
}

loom_status json_save(cJSON *root, bool is_ok, const char *path, loom_error *err) {
    char *s = is_ok && root ? cJSON_Print(root) : NULL;
    cJSON_Delete(root);
    text_out t;
    if (!s || !text_open(&t)) {
        cJSON_free(s);
        return loom_error_set(err, LOOM_ERR_NOMEM, "%s: out of memory", path);
    }
    fprintf(t.f, "%s\n", s);
    cJSON_free(s);
    return text_save(&t, path, err);
}

loom_status load_data(const char *data_dir, bool is_test, loom_dataset **train, loom_dataset **test,
                      loom_error *err) {
    const char *dir = data_dir ? data_dir : loom_default_data_dir();
    *train = *test = NULL;
    loom_status st = loom_dataset_load_dir(train, dir, "train", err);
    if (st == LOOM_OK && is_test)
        st = loom_dataset_load_dir(test, dir, "test", err);
    return st;
}

const char *path_join(char *buf, size_t n, const char *dir, const char *name) {
    snprintf(buf, n, "%s/%s", dir, name);
    return buf;
}

void default_run_dir(char *buf, size_t n, const char *prefix, const char *name) {
    int at = snprintf(buf, n, "runs/%s", prefix);
    snprintf(buf + at, n - (size_t)at, "%s", name);
    for (char *p = buf + at; *p; p++)
        if (*p == '/')
            *p = '_';
}

int csv_split(char *line, char **fields, int max) {
    int n = 0;
    for (char *p = line;;) {
        if (n == max)
            return -1;
        fields[n++] = p;
        char *comma = strchr(p, ',');
        if (!comma)
            break;
        *comma = '\0';
        p = comma + 1;
    }
    char *last = fields[n - 1];
    last[strcspn(last, "\r\n")] = '\0';
    return n;
}

void loom_mean_std(const double *x, int n, double *mean, double *sd) {
    double sum = 0;
    int m = 0;
    for (int i = 0; i < n; i++)
        if (isfinite(x[i])) {
            sum += x[i];
            m++;
        }
    if (m == 0) {
        *mean = *sd = NAN;
        return;
    }
    double mu = sum / m, ss = 0;
    for (int i = 0; i < n; i++)
        if (isfinite(x[i]))
            ss += (x[i] - mu) * (x[i] - mu);
    *mean = mu;
    *sd = m > 1 ? sqrt(ss / (m - 1)) : 0.0; /* sample std: n - 1 in the denominator */
}

loom_status loom_dataset_subset(loom_dataset **out, const loom_dataset *ds, int n, uint64_t seed,
                                loom_error *err) {
    *out = NULL;
    loom_split pick = {0};
    const int *idx = NULL;
    int m = ds->n;
    if (n > 0 && n < ds->n) {
        /* the stratified validation part of a split holding n/N of the examples */
        loom_status st = loom_split_create(&pick, ds, (double)n / ds->n, LOOM_SPLIT_STRATIFIED,
                                           loom_seed_derive(seed, 77), err);
        if (st)
            return st;
        idx = pick.val;
        m = pick.n_val;
    }
    size_t D = (size_t)ds->H * ds->W * ds->C;
    loom_dataset *s = calloc(1, sizeof *s);
    bool is_names_ok = true;
    if (s) {
        *s = *ds;
        s->n = m;
        s->x = malloc(D * (size_t)(m > 0 ? m : 1));
        s->y = malloc((size_t)(m > 0 ? m : 1));
        s->class_names = ds->class_names ? calloc((size_t)ds->n_classes, sizeof(char *)) : NULL;
        is_names_ok = !ds->class_names || s->class_names;
        for (int k = 0; s->class_names && k < ds->n_classes; k++)
            is_names_ok &= (s->class_names[k] = strdup(ds->class_names[k])) != NULL;
    }
    if (!s || !s->x || !s->y || !is_names_ok) {
        loom_dataset_destroy(s);
        loom_split_reset(&pick);
        return loom_error_set(err, LOOM_ERR_NOMEM, "subset of %d examples: out of memory", m);
    }
    for (int i = 0; i < m; i++) {
        int e = idx ? idx[i] : i;
        memcpy(s->x + (size_t)i * D, ds->x + (size_t)e * D, D);
        s->y[i] = ds->y[e];
    }
    loom_split_reset(&pick);
    *out = s;
    return LOOM_OK;
}

/* ---- one training from scratch on a split ---- */

loom_status tune_fit(const char *text, const char *source, const loom_dataset *ds,
                     const loom_split *sp, bool is_standardize, const loom_train_config *tc,
                     loom_history *hist, loom_metrics *val, loom_model **m_out, loom_error *err) {
    loom_model *m = NULL;
    memset(hist, 0, sizeof *hist);
    memset(val, 0, sizeof *val);
    if (m_out)
        *m_out = NULL;
    loom_status st = loom_model_build(&m, text, source, ds, sp->train, sp->n_train, is_standardize,
                                      tc->seed, err);
    if (st)
        return st;
    st = loom_train(m, tc, ds, sp->train, sp->n_train, ds, sp->val, sp->n_val, NULL, hist, err);
    if (st == LOOM_OK && sp->n_val > 0)
        st = loom_evaluate(m, ds, sp->val, sp->n_val, NULL, tc->batch, val, NULL, NULL, err);
    if (st == LOOM_OK && m_out) {
        *m_out = m;
        m = NULL;
    }
    loom_model_destroy(m);
    return st;
}

/* ---- cross-validation ---- */

void loom_cv_config_init(loom_cv_config *cc) {
    memset(cc, 0, sizeof *cc);
    cc->folds = 5;
    loom_train_config_init(&cc->train);
}

loom_status loom_cv_apply_zoo_defaults(loom_cv_config *cc, loom_error *err) {
    loom_run_config rc;
    loom_run_config_init(&rc);
    rc.model = cc->model;
    rc.train = cc->train;
    loom_status st = loom_run_apply_zoo_defaults(&rc, err);
    if (st == LOOM_OK && rc.model && loom_zoo_find(rc.model))
        cc->train = rc.train;
    return st;
}

void loom_cv_result_reset(loom_cv_result *r) {
    for (int k = 0; r->folds && k < r->n_folds; k++)
        loom_history_reset(&r->folds[k].hist);
    free(r->folds);
    memset(r, 0, sizeof *r);
}

/* Forwards the trainer's lines and progress events with "fold k/K: " in front. */
typedef struct {
    loom_log_fn fn;
    void *user;
    loom_progress_fn progress;
    void *progress_user;
    char prefix[32];
} fold_log;

static void fold_progress(void *user, const loom_progress *p) {
    fold_log *fl = user;
    char label[160];
    snprintf(label, sizeof label, "%s%s", fl->prefix, p->label);
    loom_progress q = *p;
    q.label = label;
    fl->progress(fl->progress_user, &q);
}

static void fold_line(void *user, loom_log_kind kind, const char *line) {
    fold_log *fl = user;
    char buf[1024];
    snprintf(buf, sizeof buf, "%s%s", fl->prefix, line);
    fl->fn(fl->user, kind, buf);
}

/* config.txt of the CV run: a training run's keys (val_split = 1/K) and cv_folds, cv_best_fold. */
static char *cv_config_text(const loom_cv_config *cc, int best_fold) {
    loom_run_config rc;
    loom_run_config_init(&rc);
    rc.model = cc->model;
    rc.data_dir = cc->data_dir;
    rc.val_split = 1.0 / cc->folds;
    rc.is_standardize = cc->is_standardize;
    rc.subset = cc->subset;
    rc.test_subset = cc->test_subset;
    rc.is_skip_test = !cc->is_test;
    rc.train = cc->train;
    rc.command_line = cc->command_line;
    char *base = loom_run_config_text(&rc);
    if (!base)
        return NULL;
    size_t len = strlen(base) + 64;
    char *text = malloc(len);
    if (text)
        snprintf(text, len, "%scv_folds=%d\ncv_best_fold=%d\n", base, cc->folds, best_fold + 1);
    free(base);
    return text;
}

static loom_status write_cv_csv(const loom_cv_result *r, int n_done, bool is_test, const char *path,
                                loom_error *err) {
    text_out t;
    if (!text_open(&t))
        return loom_error_set(err, LOOM_ERR_NOMEM, "%s: out of memory", path);
    fprintf(t.f, "fold,val_acc,val_macro_f1,val_loss,epochs,seconds%s\n",
            is_test ? ",test_acc,test_f1" : "");
    for (int k = 0; k < n_done; k++) {
        const loom_cv_fold *f = &r->folds[k];
        fprintf(t.f, "%d,%.6f,%.6f,%.6f,%d,%.3f", k + 1, f->val_acc, f->val_f1, f->val_loss,
                f->hist.n_epochs, f->seconds);
        if (is_test)
            fprintf(t.f, ",%.6f,%.6f", f->test_acc, f->test_f1);
        fputc('\n', t.f);
    }
    return text_save(&t, path, err);
}

/* Per epoch, the mean and std over the folds that reached it (early stopping may end some). */
static loom_status write_history_mean(const loom_cv_result *r, const char *path, loom_error *err) {
    int n_epochs = 0, K = r->n_folds;
    for (int k = 0; k < K; k++)
        if (r->folds[k].hist.n_epochs > n_epochs)
            n_epochs = r->folds[k].hist.n_epochs;
    double *v = malloc(sizeof(double) * (size_t)K); /* (K) one column's values at one epoch */
    text_out t;
    if (!v || !text_open(&t)) {
        free(v);
        return loom_error_set(err, LOOM_ERR_NOMEM, "%s: out of memory", path);
    }
    fprintf(t.f, "epoch,n,loss_mean,loss_std,acc_mean,acc_std,val_loss_mean,val_loss_std,"
                 "val_acc_mean,val_acc_std\n");
    for (int e = 0; e < n_epochs; e++) {
        int n = 0;
        for (int k = 0; k < K; k++)
            n += e < r->folds[k].hist.n_epochs;
        fprintf(t.f, "%d,%d", e + 1, n);
        for (int col = 0; col < 4; col++) {
            int m = 0;
            for (int k = 0; k < K; k++) {
                const loom_history *h = &r->folds[k].hist;
                if (e >= h->n_epochs)
                    continue;
                const loom_epoch *ep = &h->epochs[e];
                v[m++] = col == 0   ? ep->loss
                         : col == 1 ? ep->acc
                         : col == 2 ? ep->val_loss
                                    : ep->val_acc;
            }
            double mean, sd;
            loom_mean_std(v, m, &mean, &sd);
            fprintf(t.f, ",%.6f,%.6f", mean, sd);
        }
        fputc('\n', t.f);
    }
    free(v);
    return text_save(&t, path, err);
}

static bool json_add(cJSON *o, const char *key, double v) {
    return cJSON_AddNumberToObject(o, key, v) != NULL;
}

static loom_status write_cv_json(const loom_cv_config *cc, const loom_cv_result *r,
                                 const char *path, loom_error *err) {
    cJSON *root = cJSON_CreateObject();
    bool ok =
        root && cJSON_AddStringToObject(root, "model", cc->model) &&
        json_add(root, "folds", r->n_folds) && json_add(root, "seed", (double)cc->train.seed) &&
        json_add(root, "subset", cc->subset) && json_add(root, "n_params", (double)r->n_params) &&
        json_add(root, "best_fold", r->best_fold + 1);
    cJSON *per = ok ? cJSON_AddArrayToObject(root, "per_fold") : NULL;
    ok = per != NULL;
    for (int k = 0; ok && k < r->n_folds; k++) {
        const loom_cv_fold *f = &r->folds[k];
        cJSON *o = cJSON_CreateObject();
        ok = o && cJSON_AddItemToArray(per, o);
        if (!ok) {
            cJSON_Delete(o);
            break;
        }
        ok = json_add(o, "fold", k + 1) && json_add(o, "val_acc", f->val_acc) &&
             json_add(o, "val_macro_f1", f->val_f1) && json_add(o, "val_loss", f->val_loss) &&
             json_add(o, "epochs", f->hist.n_epochs) && json_add(o, "seconds", f->seconds) &&
             json_add(o, "test_acc", f->test_acc) && json_add(o, "test_f1", f->test_f1);
    }
    cJSON *mean = ok ? cJSON_AddObjectToObject(root, "mean") : NULL;
    cJSON *sd = mean ? cJSON_AddObjectToObject(root, "std") : NULL;
    ok = sd && json_add(mean, "val_acc", r->val_acc_mean) &&
         json_add(sd, "val_acc", r->val_acc_sd) && json_add(mean, "val_macro_f1", r->val_f1_mean) &&
         json_add(sd, "val_macro_f1", r->val_f1_sd) &&
         json_add(mean, "val_loss", r->val_loss_mean) && json_add(sd, "val_loss", r->val_loss_sd) &&
         json_add(mean, "test_acc", r->test_acc_mean) && json_add(sd, "test_acc", r->test_acc_sd) &&
         json_add(mean, "test_f1", r->test_f1_mean) && json_add(sd, "test_f1", r->test_f1_sd);
    return json_save(root, ok, path, err);
}

/* Mean and std of one field over the folds. */
static void fold_stats(const loom_cv_result *r, size_t off, double *mean, double *sd) {
    double v[256] = {0};
    int n = r->n_folds < 256 ? r->n_folds : 256;
    for (int k = 0; k < n; k++)
        v[k] = *(const double *)((const char *)&r->folds[k] + off);
    loom_mean_std(v, n, mean, sd);
}

/* One cross-validation, shared by its steps. */
typedef struct {
    const loom_cv_config *cc;
    const loom_dataset *ds;   /* the training data (a subset when asked) */
    const loom_dataset *test; /* may be NULL */
    loom_cv_result *res;
    loom_train_config tc; /* cc->train with the schedule parsed and the log through fl */
    fold_log fl;
    char *text;       /* the model's text */
    char *config;     /* config.txt */
    loom_model *best; /* the best fold's model so far */
    size_t n_weights; /* the model's parameters and state */
    bool is_dir_ours; /* run_dir was made (is_created) or reused by this run */
    bool is_created;
} cv_run;

/* Checks cc, resolves the model and the run directory, takes the subset (into *sub), creates
 * the directory and writes a first config.txt (no best fold yet). */
static loom_status cv_prepare(cv_run *r, const loom_dataset *train, loom_dataset **sub,
                              loom_error *err) {
    const loom_cv_config *cc = r->cc;
    loom_cv_result *res = r->res;
    int K = cc->folds;
    char path[2048];
    if (!cc->model)
        return loom_error_set(err, LOOM_ERR_ARG, "no model given");
    if (K < 2 || K > 1000)
        return loom_error_set(err, LOOM_ERR_ARG, "folds must be from 2 to 1000, got %d", K);
    if (cc->is_test && !r->test)
        return loom_error_set(err, LOOM_ERR_ARG, "cv: testing the folds needs the test set");
    loom_status st =
        r->tc.lr_schedule ? loom_sched_parse(r->tc.lr_schedule, &r->tc.sched, err) : LOOM_OK;
    if (st || (st = loom_model_resolve(cc->model, &r->text, NULL, err)))
        return st;
    if (cc->out_dir)
        snprintf(res->run_dir, sizeof res->run_dir, "%s", cc->out_dir);
    else
        default_run_dir(res->run_dir, sizeof res->run_dir, "cv-", cc->model);
    r->ds = train;
    if (cc->subset > 0 && cc->subset < train->n) {
        if ((st = loom_dataset_subset(sub, train, cc->subset, r->tc.seed, err)))
            return st;
        r->ds = *sub;
    }
    if (K > r->ds->n)
        return loom_error_set(err, LOOM_ERR_ARG, "%d folds of %d examples: too many folds", K,
                              r->ds->n);
    /* the model text fails here, before the run directory is made */
    loom_model *m = NULL;
    if ((st = loom_model_create(&m, r->text, cc->model, r->ds->H, r->ds->W, r->ds->C, err)))
        return st;
    r->n_weights = m->n_params + m->n_state +
                   (cc->is_standardize ? 2 * (size_t)r->ds->H * r->ds->W * r->ds->C : 0);
    loom_model_destroy(m);
    res->folds = calloc((size_t)K, sizeof *res->folds);
    r->config = cv_config_text(cc, -1);
    if (!res->folds || !r->config)
        return loom_error_set(err, LOOM_ERR_NOMEM, "cv: out of memory");
    res->n_folds = K;
    if (cc->is_check_only || loom_dist_rank() > 0) /* rank 0 writes the run directory */
        return LOOM_OK;
    struct stat sb;
    r->is_created = stat(res->run_dir, &sb) != 0;
    if ((st = loom_run_create_dir(res->run_dir, cc->is_force, err)))
        return st;
    r->is_dir_ours = true;
    if (cc->is_force) /* a new run replaces the old one, files and all */
        loom_run_clear_dir(res->run_dir);
    return loom_file_write_atomic(path_join(path, sizeof path, res->run_dir, "config.txt"),
                                  r->config, strlen(r->config), err);
}

/* What training fold k leaves, sent whole between the job's processes: the scores, the history
 * rows (epochs of them at most) and the final weights and state. */
typedef struct {
    double val_acc, val_f1, val_loss, seconds;
    int n_epochs, best_epoch;
    bool is_stopped_early;
} fold_head;

static size_t fold_out_bytes(const cv_run *r) {
    return sizeof(fold_head) + sizeof(loom_epoch) * (size_t)r->tc.epochs +
           sizeof(float) * r->n_weights;
}

/* Fold k trained from scratch into out (fold_out_bytes). */
static loom_status fold_train(void *ctx, int k, void *out, loom_error *err) {
    cv_run *r = ctx;
    const loom_cv_config *cc = r->cc;
    loom_model *m = NULL;
    loom_split sp = {0};
    loom_metrics val = {0};
    loom_history h = {0};
    snprintf(r->fl.prefix, sizeof r->fl.prefix, "fold %d/%d: ", k + 1, cc->folds);
    /* the folds depend on the seed only; each fold's training has its own stream */
    loom_status st = loom_split_kfold(&sp, r->ds, cc->folds, k, cc->train.seed, err);
    loom_train_config tc = r->tc;
    tc.seed = loom_seed_derive(cc->train.seed, (uint64_t)k);
    if (st == LOOM_OK)
        st = tune_fit(r->text, cc->model, r->ds, &sp, cc->is_standardize, &tc, &h, &val, &m, err);
    if (st == LOOM_OK) {
        fold_head *fh = out;
        *fh = (fold_head){.val_acc = val.accuracy,
                          .val_f1 = val.macro_f1,
                          .val_loss = val.loss,
                          .seconds = h.seconds,
                          .n_epochs = h.n_epochs,
                          .best_epoch = h.best_epoch,
                          .is_stopped_early = h.is_stopped_early};
        loom_epoch *rows = (loom_epoch *)(fh + 1);
        memcpy(rows, h.epochs, sizeof(loom_epoch) * (size_t)h.n_epochs);
        float *w = (float *)(rows + r->tc.epochs);
        memcpy(w, m->params, sizeof(float) * m->n_params);
        memcpy(w + m->n_params, m->state, sizeof(float) * m->n_state);
    }
    loom_split_reset(&sp);
    loom_metrics_reset(&val);
    loom_history_reset(&h);
    loom_model_destroy(m);
    return st;
}

/* Fold k's results (out, from fold_train) recorded: run_dir/fold_k written, tested, logged,
 * kept when the best so far; cv.csv rewritten with the folds done. */
static loom_status fold_record(void *ctx, int k, const void *out, loom_error *err) {
    cv_run *r = ctx;
    const loom_cv_config *cc = r->cc;
    loom_cv_result *res = r->res;
    int K = cc->folds;
    loom_cv_fold *f = &res->folds[k];
    const fold_head *fh = out;
    const loom_epoch *rows = (const loom_epoch *)(fh + 1);
    const float *w = (const float *)(rows + r->tc.epochs);
    loom_model *m = NULL;
    loom_metrics tm = {0};
    char path[2048], dir[1200];
    f->test_acc = f->test_f1 = NAN;
    snprintf(dir, sizeof dir, "%s/fold_%d", res->run_dir, k + 1);
    loom_status st = loom_run_create_dir(dir, true, err);
    if (st == LOOM_OK)
        /* the weights and state come next (the standardisation's too) */
        st = loom_model_build(&m, r->text, cc->model, r->ds, NULL, 1, cc->is_standardize, 0, err);
    if (st)
        goto done;
    memcpy(m->params, w, sizeof(float) * m->n_params);
    memcpy(m->state, w + m->n_params, sizeof(float) * m->n_state);
    f->hist = (loom_history){.epochs = malloc(sizeof(loom_epoch) * (size_t)(fh->n_epochs + 1)),
                             .n_epochs = fh->n_epochs,
                             .best_epoch = fh->best_epoch,
                             .seconds = fh->seconds,
                             .is_stopped_early = fh->is_stopped_early};
    if (!f->hist.epochs) {
        st = loom_error_set(err, LOOM_ERR_NOMEM, "cv: out of memory");
        goto done;
    }
    memcpy(f->hist.epochs, rows, sizeof(loom_epoch) * (size_t)fh->n_epochs);
    f->seconds = fh->seconds;
    f->weights_hash = receipt_weights(m);
    f->val_acc = fh->val_acc;
    f->val_f1 = fh->val_f1;
    f->val_loss = fh->val_loss;
    res->n_params = loom_model_n_params(m) + loom_model_n_state(m);
    if ((st = loom_history_write_csv(&f->hist, path_join(path, sizeof path, dir, "history.csv"),
                                     err)))
        goto done;
    char tail[96] = "";
    if (cc->is_test) {
        if ((st = loom_run_write_test(m, r->test, cc->test_subset, r->tc.batch, dir,
                                      r->tc.stop_flag, &tm, err)))
            goto done;
        f->test_acc = tm.accuracy;
        f->test_f1 = tm.macro_f1;
        snprintf(tail, sizeof tail, "; test accuracy %.2f%%, macro F1 %.2f%%", 100 * f->test_acc,
                 100 * f->test_f1);
    }
    log_printf(cc->train.log, cc->train.log_user, LOOM_LOG_INFO,
               "fold %d/%d: val accuracy %.2f%%, macro F1 %.2f%%, loss %.4f (%d epoch%s, %.1f s)%s",
               k + 1, K, 100 * f->val_acc, 100 * f->val_f1, f->val_loss, f->hist.n_epochs,
               PLURAL(f->hist.n_epochs), f->seconds, tail);
    if (res->best_fold < 0 || f->val_acc > res->folds[res->best_fold].val_acc) {
        loom_model_destroy(r->best);
        r->best = m;
        res->best_fold = k;
        m = NULL;
    }
    st = write_cv_csv(res, k + 1, cc->is_test, path_join(path, sizeof path, res->run_dir, "cv.csv"),
                      err);
done:
    loom_metrics_reset(&tm);
    loom_model_destroy(m);
    return st;
}

/* The folds: in turn in one process, each recorded as it ends; shared by the processes of a
 * job (largest first is any order: the folds cost alike), then recorded in order by rank 0. */
static loom_status cv_folds(cv_run *r, loom_error *err) {
    int K = r->cc->folds;
    bool is_job = loom_dist_size() > 1;
    size_t bytes = fold_out_bytes(r);
    char *outs = malloc(bytes * (size_t)(is_job ? K : 1));
    bool *is_done = calloc((size_t)K, sizeof *is_done);
    loom_status st = LOOM_OK;
    if (!outs || !is_done) {
        st = loom_error_set(err, LOOM_ERR_NOMEM, "cv: out of memory");
    } else if (!is_job) {
        /* each fold's directory is there while it trains, as its log says */
        for (int k = 0; k < K && st == LOOM_OK; k++) {
            char dir[1200];
            snprintf(dir, sizeof dir, "%s/fold_%d", r->res->run_dir, k + 1);
            if ((st = loom_run_create_dir(dir, true, err)) == LOOM_OK &&
                (st = fold_train(r, k, outs, err)) == LOOM_OK)
                st = fold_record(r, k, outs, err);
        }
    } else {
        dist_share_job j = {.n_units = K,
                            .out_bytes = bytes,
                            .outs = outs,
                            .is_done = is_done,
                            .run = fold_train,
                            .ctx = r};
        st = dist_share(&j, err);
        for (int k = 0; k < K && loom_dist_rank() == 0 && is_done[k]; k++) {
            loom_status sk = fold_record(r, k, outs + bytes * (size_t)k, err);
            if (sk) {
                st = sk;
                break;
            }
        }
    }
    free(outs);
    free(is_done);
    return st;
}

/* receipt.txt of the run: the inputs, every fold's weights, and the saved (best) model's. */
static loom_status write_cv_receipt(cv_run *r, loom_error *err) {
    loom_cv_result *res = r->res;
    int K = res->n_folds;
    receipt_in rin = receipt_inputs(r->text, r->config, r->ds, r->cc->is_test ? r->test : NULL);
    res->inputs_hash = rin.inputs;
    char *extra = malloc((size_t)K * 40 + 1), *e = extra; /* one line per fold */
    if (!extra)
        return loom_error_set(err, LOOM_ERR_NOMEM, "cv: out of memory");
    *e = '\0';
    for (int k = 0; k < K; k++)
        e += sprintf(e, "fold_%d_weights_crc32=%08x\n", k + 1, res->folds[k].weights_hash);
    loom_status st =
        receipt_write(res->run_dir, rin, extra, res->folds[res->best_fold].weights_hash, err);
    free(extra);
    return st;
}

/* After the folds: mean ± std, cv.json, history_mean.csv, the final config.txt, the best
 * fold's model (saved, receipted, tested) and the closing line. */
static loom_status cv_finish(cv_run *r, loom_error *err) {
    const loom_cv_config *cc = r->cc;
    loom_cv_result *res = r->res;
    char path[2048];
    fold_stats(res, offsetof(loom_cv_fold, val_acc), &res->val_acc_mean, &res->val_acc_sd);
    fold_stats(res, offsetof(loom_cv_fold, val_f1), &res->val_f1_mean, &res->val_f1_sd);
    fold_stats(res, offsetof(loom_cv_fold, val_loss), &res->val_loss_mean, &res->val_loss_sd);
    fold_stats(res, offsetof(loom_cv_fold, test_acc), &res->test_acc_mean, &res->test_acc_sd);
    fold_stats(res, offsetof(loom_cv_fold, test_f1), &res->test_f1_mean, &res->test_f1_sd);
    loom_status st =
        write_cv_json(cc, res, path_join(path, sizeof path, res->run_dir, "cv.json"), err);
    if (st || (st = write_history_mean(
                   res, path_join(path, sizeof path, res->run_dir, "history_mean.csv"), err)))
        return st;
    free(r->config);
    if (!(r->config = cv_config_text(cc, res->best_fold)))
        return loom_error_set(err, LOOM_ERR_NOMEM, "cv: out of memory");
    if ((st = loom_file_write_atomic(path_join(path, sizeof path, res->run_dir, "config.txt"),
                                     r->config, strlen(r->config), err)) ||
        (st = loom_model_save(r->best, r->config,
                              path_join(path, sizeof path, res->run_dir, "model.loom"), err)) ||
        (st = write_cv_receipt(r, err)))
        return st;
    if (cc->is_test) {
        loom_metrics tm = {0};
        st = loom_run_write_test(r->best, r->test, cc->test_subset, r->tc.batch, res->run_dir,
                                 r->tc.stop_flag, &tm, err);
        loom_metrics_reset(&tm);
        if (st)
            return st;
    }
    log_printf(cc->train.log, cc->train.log_user, LOOM_LOG_INFO,
               "mean ± std over %d folds: val accuracy %.2f ± %.2f%%, macro F1 %.2f ± %.2f%%, "
               "loss %.4f ± %.4f; best fold %d saved in %s/model.loom",
               res->n_folds, 100 * res->val_acc_mean, 100 * res->val_acc_sd, 100 * res->val_f1_mean,
               100 * res->val_f1_sd, res->val_loss_mean, res->val_loss_sd, res->best_fold + 1,
               res->run_dir);
    return LOOM_OK;
}

loom_status loom_cv_run(const loom_cv_config *cc, const loom_dataset *train,
                        const loom_dataset *test, loom_cv_result *res, loom_error *err) {
    memset(res, 0, sizeof *res);
    res->best_fold = -1;
    cv_run r = {.cc = cc, .test = test, .res = res, .tc = cc->train};
    r.fl = (fold_log){.fn = cc->train.log,
                      .user = cc->train.log_user,
                      .progress = cc->train.progress,
                      .progress_user = cc->train.progress_user};
    loom_dataset *sub = NULL;
    loom_status st = loom_dataset_check_test(train, cc->is_test ? test : NULL, err);
    if (st == LOOM_OK)
        st = cv_prepare(&r, train, &sub, err);
    if (!cc->is_check_only) /* a check runs in each process alone */
        st = loom_dist_agree(st, err);
    if (st || cc->is_check_only)
        goto done;
    if (r.fl.fn) {
        r.tc.log = fold_line;
        r.tc.log_user = &r.fl;
    }
    if (r.fl.progress) {
        r.tc.progress = fold_progress;
        r.tc.progress_user = &r.fl;
    }
    log_printf(cc->train.log, cc->train.log_user, LOOM_LOG_INFO,
               "loom %s: %d-fold cross-validation of %s on %d examples, seed %llu; %s lr %g, "
               "batch %d, %d epoch%s",
               LOOM_VERSION, cc->folds, cc->model, r.ds->n, (unsigned long long)cc->train.seed,
               loom_opt_kind_str(r.tc.opt.kind), (double)r.tc.opt.lr, r.tc.batch, r.tc.epochs,
               PLURAL(r.tc.epochs));
    if (loom_dist_size() > 1)
        log_printf(cc->train.log, cc->train.log_user, LOOM_LOG_INFO,
                   "the folds shared by %d processes x %d thread%s", loom_dist_size(),
                   loom_get_threads(), PLURAL(loom_get_threads()));
    if (cc->subset > r.ds->n)
        log_printf(cc->train.log, cc->train.log_user, LOOM_LOG_WARN,
                   "warning: subset %d is more than the %d training examples: all of them are used",
                   cc->subset, r.ds->n);
    st = cv_folds(&r, err);
    if (st == LOOM_OK && loom_dist_rank() == 0)
        st = cv_finish(&r, err);
done:;
    /* a failed cross-validation that finished no fold leaves nothing behind (an interrupted one
     * keeps what it did) */
    char cv_csv[2048];
    struct stat sb;
    if (st && st != LOOM_ERR_INTERRUPTED && r.is_dir_ours &&
        stat(path_join(cv_csv, sizeof cv_csv, res->run_dir, "cv.csv"), &sb) != 0)
        loom_run_discard_dir(res->run_dir, r.is_created);
    loom_model_destroy(r.best);
    loom_dataset_destroy(sub);
    free(r.text);
    free(r.config);
    return st;
}

loom_status loom_cv(const loom_cv_config *cc, loom_cv_result *res, loom_error *err) {
    memset(res, 0, sizeof *res);
    loom_dataset *train = NULL, *test = NULL;
    loom_status st = load_data(cc->data_dir, cc->is_test, &train, &test, err);
    if (st == LOOM_OK)
        st = loom_cv_run(cc, train, test, res, err);
    loom_dataset_destroy(train);
    loom_dataset_destroy(test);
    return st;
}
