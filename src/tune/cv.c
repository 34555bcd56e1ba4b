/* cv.c - stratified k-fold cross-validation: each fold trained from scratch with its own seed,
 * per-fold and mean +- std metrics (cv.csv, cv.json, history_mean.csv), the best fold's model
 * kept; and the pieces the search shares with it: one training on a split, training settings
 * by name, stratified subsets, mean and sample standard deviation, in-memory text files. */
#include "tune.h"
#include "../train/receipt.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stddef.h>

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
    if (s) {
        *s = *ds;
        s->n = m;
        s->x = malloc(D * (size_t)(m > 0 ? m : 1));
        s->y = malloc((size_t)(m > 0 ? m : 1));
    }
    if (!s || !s->x || !s->y) {
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

/* ---- training settings by name ---- */

typedef enum {
    SET_FLOAT,
    SET_INT,
    SET_BOOL,
    SET_OPTIMIZER,
    SET_SCHEDULE,
    SET_AUGMENT,
    SET_SEED
} set_kind;

typedef struct {
    const char *key;
    set_kind kind;
    size_t off; /* of the float or int in loom_train_config */
    double lo, hi;
} setting;

static const setting settings[] = {
    {"lr", SET_FLOAT, offsetof(loom_train_config, opt.lr), 1e-12, 100},
    {"batch", SET_INT, offsetof(loom_train_config, batch), 1, 65536},
    {"epochs", SET_INT, offsetof(loom_train_config, epochs), 1, 100000},
    {"optimizer", SET_OPTIMIZER, 0, 0, 0},
    {"momentum", SET_FLOAT, offsetof(loom_train_config, opt.momentum), 0, 0.9999},
    {"nesterov", SET_BOOL, 0, 0, 1},
    {"l2", SET_FLOAT, offsetof(loom_train_config, opt.l2), 0, 10},
    {"weight_decay", SET_FLOAT, offsetof(loom_train_config, opt.weight_decay), 0, 10},
    {"clip_norm", SET_FLOAT, offsetof(loom_train_config, opt.clip_norm), 0, 1e9},
    {"lr_schedule", SET_SCHEDULE, 0, 0, 0},
    {"early_stopping", SET_INT, offsetof(loom_train_config, early_stopping), 0, 100000},
    {"label_smoothing", SET_FLOAT, offsetof(loom_train_config, label_smoothing), 0, 0.99},
    {"ema", SET_FLOAT, offsetof(loom_train_config, ema), 0, 0.9999},
    {"augment", SET_AUGMENT, 0, 0, 0},
    {"seed", SET_SEED, 0, 0, 0},
};

#define N_SETTINGS ((int)(sizeof settings / sizeof *settings))
_Static_assert(N_SETTINGS < TRAIN_SETTINGS_MAX, "raise TRAIN_SETTINGS_MAX");

int train_setting_index(const char *key) {
    for (int i = 0; i < N_SETTINGS; i++)
        if (strcmp(settings[i].key, key) == 0)
            return i;
    return -1;
}

loom_status loom_train_config_set(loom_train_config *c, const char **lr_schedule, const char *key,
                                  const char *value, loom_error *err) {
    int i_set = train_setting_index(key);
    if (i_set < 0) {
        char known[512] = "";
        for (int i = 0; i < N_SETTINGS; i++) {
            size_t used = strlen(known);
            snprintf(known + used, sizeof known - used, "%s%s", i ? ", " : "", settings[i].key);
        }
        return loom_error_set(err, LOOM_ERR_ARG, "unknown training setting '%s' (%s)", key, known);
    }
    const setting *s = &settings[i_set];
    char *end = NULL;
    errno = 0;
    switch (s->kind) {
    case SET_FLOAT: {
        double v = strtod(value, &end);
        if (!*value || *end || errno || !(v >= s->lo && v <= s->hi))
            return loom_error_set(err, LOOM_ERR_ARG,
                                  "%s: expected a number from %g to %g, got '%s'", key, s->lo,
                                  s->hi, value);
        *(float *)((char *)c + s->off) = (float)v;
        return LOOM_OK;
    }
    case SET_INT: {
        long v = strtol(value, &end, 10);
        if (!*value || *end || errno || v < s->lo || v > s->hi)
            return loom_error_set(err, LOOM_ERR_ARG,
                                  "%s: expected a whole number from %g to %g, got '%s'", key, s->lo,
                                  s->hi, value);
        *(int *)((char *)c + s->off) = (int)v;
        return LOOM_OK;
    }
    case SET_BOOL:
        if (strcmp(value, "0") != 0 && strcmp(value, "1") != 0)
            return loom_error_set(err, LOOM_ERR_ARG, "%s: expected 0 or 1, got '%s'", key, value);
        c->opt.is_nesterov = value[0] == '1';
        return LOOM_OK;
    case SET_OPTIMIZER: {
        loom_status st = loom_opt_kind_parse(value, &c->opt.kind, err);
        if (st)
            return st;
        if (c->opt.kind == LOOM_OPT_SGD && c->opt.momentum == 0.0f)
            c->opt.momentum = 0.9f; /* as `loom train` does */
        c->opt.beta2 = c->opt.kind == LOOM_OPT_RMSPROP ? 0.9f : 0.999f;
        return LOOM_OK;
    }
    case SET_SCHEDULE: {
        loom_status st = loom_sched_parse(value, &c->sched, err);
        if (st == LOOM_OK && lr_schedule)
            *lr_schedule = value;
        return st;
    }
    case SET_AUGMENT: return loom_augment_parse(value, c, err);
    case SET_SEED: {
        unsigned long long v = strtoull(value, &end, 10);
        if (!*value || *end || errno || value[0] == '-')
            return loom_error_set(err, LOOM_ERR_ARG,
                                  "seed: expected a non-negative whole number, got '%s'", value);
        c->seed = v;
        return LOOM_OK;
    }
    }
    return loom_error_set(err, LOOM_ERR_ARG, "%s: cannot be set", key);
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
    if (st == LOOM_OK && rc.model && loom_zoo_find(rc.model)) {
        cc->train = rc.train;
        cc->lr_schedule = rc.lr_schedule;
    }
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
    rc.lr_schedule = cc->lr_schedule;
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
    double v[256];
    int n = r->n_folds < 256 ? r->n_folds : 256;
    for (int k = 0; k < n; k++)
        v[k] = *(const double *)((const char *)&r->folds[k] + off);
    loom_mean_std(v, n, mean, sd);
}

loom_status loom_cv_run(const loom_cv_config *cc, const loom_dataset *train,
                        const loom_dataset *test, loom_cv_result *res, loom_error *err) {
    memset(res, 0, sizeof *res);
    res->best_fold = -1;
    int K = cc->folds;
    loom_train_config tc = cc->train;
    char *text = NULL, *config = NULL;
    loom_dataset *sub = NULL;
    loom_model *best = NULL, *m = NULL;
    loom_split sp = {0};
    loom_metrics val = {0}, tm = {0};
    char path[2048], dir[1200];
    fold_log fl = {.fn = cc->train.log,
                   .user = cc->train.log_user,
                   .progress = cc->train.progress,
                   .progress_user = cc->train.progress_user};

    if (!cc->model)
        return loom_error_set(err, LOOM_ERR_ARG, "no model given");
    if (K < 2 || K > 1000)
        return loom_error_set(err, LOOM_ERR_ARG, "--folds must be from 2 to 1000, got %d", K);
    if (cc->is_test && !test)
        return loom_error_set(err, LOOM_ERR_ARG, "cv: testing the folds needs the test set");
    loom_status st = cc->lr_schedule ? loom_sched_parse(cc->lr_schedule, &tc.sched, err) : LOOM_OK;
    if (st || (st = loom_model_resolve(cc->model, &text, NULL, err)))
        return st;
    if (cc->out_dir)
        snprintf(res->run_dir, sizeof res->run_dir, "%s", cc->out_dir);
    else
        default_run_dir(res->run_dir, sizeof res->run_dir, "cv-", cc->model);
    const loom_dataset *ds = train;
    if (cc->subset > 0 && cc->subset < train->n) {
        if ((st = loom_dataset_subset(&sub, train, cc->subset, tc.seed, err)))
            goto done;
        ds = sub;
    }
    if (K > ds->n) {
        st = loom_error_set(err, LOOM_ERR_ARG, "%d folds of %d examples: too many folds", K, ds->n);
        goto done;
    }
    if ((st = loom_run_create_dir(res->run_dir, cc->is_force, err)))
        goto done;
    res->folds = calloc((size_t)K, sizeof *res->folds);
    config = cv_config_text(cc, -1);
    if (!res->folds || !config) {
        st = loom_error_set(err, LOOM_ERR_NOMEM, "cv: out of memory");
        goto done;
    }
    res->n_folds = K;
    if ((st = loom_file_write_atomic(path_join(path, sizeof path, res->run_dir, "config.txt"),
                                     config, strlen(config), err)))
        goto done;
    if (fl.fn) {
        tc.log = fold_line;
        tc.log_user = &fl;
    }
    if (fl.progress) {
        tc.progress = fold_progress;
        tc.progress_user = &fl;
    }
    log_printf(cc->train.log, cc->train.log_user, LOOM_LOG_INFO,
               "loom %s: %d-fold cross-validation of %s on %d examples, seed %llu; %s lr %g, "
               "batch %d, %d epochs",
               LOOM_VERSION, K, cc->model, ds->n, (unsigned long long)cc->train.seed,
               loom_opt_kind_str(tc.opt.kind), (double)tc.opt.lr, tc.batch, tc.epochs);
    for (int k = 0; k < K; k++) {
        loom_cv_fold *f = &res->folds[k];
        f->test_acc = f->test_f1 = NAN;
        snprintf(fl.prefix, sizeof fl.prefix, "fold %d/%d: ", k + 1, K);
        snprintf(dir, sizeof dir, "%s/fold_%d", res->run_dir, k + 1);
        if ((st = loom_run_create_dir(dir, true, err)))
            goto done;
        /* the folds depend on the seed only; each fold's training has its own stream */
        if ((st = loom_split_kfold(&sp, ds, K, k, cc->train.seed, err)))
            goto done;
        tc.seed = loom_seed_derive(cc->train.seed, (uint64_t)k);
        st = tune_fit(text, cc->model, ds, &sp, cc->is_standardize, &tc, &f->hist, &val, &m, err);
        loom_split_reset(&sp);
        if (st)
            goto done;
        f->seconds = f->hist.seconds;
        f->weights_hash = receipt_weights(m);
        f->val_acc = val.accuracy;
        f->val_f1 = val.macro_f1;
        f->val_loss = val.loss;
        loom_metrics_reset(&val);
        res->n_params = loom_model_n_params(m) + loom_model_n_state(m);
        if ((st = loom_history_write_csv(&f->hist, path_join(path, sizeof path, dir, "history.csv"),
                                         err)))
            goto done;
        char tail[96] = "";
        if (cc->is_test) {
            if ((st = loom_run_write_test(m, test, cc->test_subset, tc.batch, dir, &tm, err)))
                goto done;
            f->test_acc = tm.accuracy;
            f->test_f1 = tm.macro_f1;
            loom_metrics_reset(&tm);
            snprintf(tail, sizeof tail, "; test accuracy %.4f, macro F1 %.4f", f->test_acc,
                     f->test_f1);
        }
        log_printf(cc->train.log, cc->train.log_user, LOOM_LOG_INFO,
                   "fold %d/%d: val accuracy %.4f, macro F1 %.4f, loss %.4f (%d epochs, %.1f s)%s",
                   k + 1, K, f->val_acc, f->val_f1, f->val_loss, f->hist.n_epochs, f->seconds,
                   tail);
        if (res->best_fold < 0 || f->val_acc > res->folds[res->best_fold].val_acc) {
            loom_model_destroy(best);
            best = m;
            res->best_fold = k;
        } else {
            loom_model_destroy(m);
        }
        m = NULL;
        if ((st = write_cv_csv(res, k + 1, cc->is_test,
                               path_join(path, sizeof path, res->run_dir, "cv.csv"), err)))
            goto done;
    }
    fold_stats(res, offsetof(loom_cv_fold, val_acc), &res->val_acc_mean, &res->val_acc_sd);
    fold_stats(res, offsetof(loom_cv_fold, val_f1), &res->val_f1_mean, &res->val_f1_sd);
    fold_stats(res, offsetof(loom_cv_fold, val_loss), &res->val_loss_mean, &res->val_loss_sd);
    fold_stats(res, offsetof(loom_cv_fold, test_acc), &res->test_acc_mean, &res->test_acc_sd);
    fold_stats(res, offsetof(loom_cv_fold, test_f1), &res->test_f1_mean, &res->test_f1_sd);
    if ((st = write_cv_json(cc, res, path_join(path, sizeof path, res->run_dir, "cv.json"), err)))
        goto done;
    if ((st = write_history_mean(
             res, path_join(path, sizeof path, res->run_dir, "history_mean.csv"), err)))
        goto done;
    free(config);
    if (!(config = cv_config_text(cc, res->best_fold))) {
        st = loom_error_set(err, LOOM_ERR_NOMEM, "cv: out of memory");
        goto done;
    }
    if ((st = loom_file_write_atomic(path_join(path, sizeof path, res->run_dir, "config.txt"),
                                     config, strlen(config), err)))
        goto done;
    if ((st = loom_model_save(best, config,
                              path_join(path, sizeof path, res->run_dir, "model.loom"), err)))
        goto done;
    {
        /* the receipt: the inputs, every fold's weights, and the saved (best) model's */
        receipt_in rin = receipt_inputs(text, config, ds, cc->is_test ? test : NULL);
        res->inputs_hash = rin.inputs;
        char *extra = malloc((size_t)K * 40 + 1), *e = extra; /* one line per fold */
        if (!extra) {
            st = loom_error_set(err, LOOM_ERR_NOMEM, "cv: out of memory");
            goto done;
        }
        *e = '\0';
        for (int k = 0; k < K; k++)
            e += sprintf(e, "fold_%d_weights_crc32=%08x\n", k + 1, res->folds[k].weights_hash);
        st = receipt_write(res->run_dir, rin, extra, res->folds[res->best_fold].weights_hash, err);
        free(extra);
        if (st)
            goto done;
    }
    if (cc->is_test) {
        st = loom_run_write_test(best, test, cc->test_subset, tc.batch, res->run_dir, &tm, err);
        loom_metrics_reset(&tm);
        if (st)
            goto done;
    }
    log_printf(cc->train.log, cc->train.log_user, LOOM_LOG_INFO,
               "mean +- std over %d folds: val accuracy %.4f +- %.4f, macro F1 %.4f +- %.4f, "
               "loss %.4f +- %.4f; best fold %d saved in %s/model.loom",
               K, res->val_acc_mean, res->val_acc_sd, res->val_f1_mean, res->val_f1_sd,
               res->val_loss_mean, res->val_loss_sd, res->best_fold + 1, res->run_dir);
done:
    loom_split_reset(&sp);
    loom_metrics_reset(&val);
    loom_metrics_reset(&tm);
    loom_model_destroy(m);
    loom_model_destroy(best);
    loom_dataset_destroy(sub);
    free(text);
    free(config);
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
