/* run.c - a training run as one library call: resolve the model, load and split the data,
 * train, save the model file and write the run directory (config, history, log, metrics);
 * and the evaluation of a saved model on any split. The CLI only fills the configs. */
#include "receipt.h"

#include <assert.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <sys/stat.h>

loom_status loom_model_resolve(const char *name, char **text_out, const loom_zoo_entry **zoo_out,
                               loom_error *err) {
    *text_out = NULL;
    if (zoo_out)
        *zoo_out = NULL;
    const loom_zoo_entry *z = loom_zoo_find(name);
    if (z) {
        *text_out = strdup(z->text);
        if (zoo_out)
            *zoo_out = z;
        return *text_out ? LOOM_OK : loom_error_set(err, LOOM_ERR_NOMEM, "out of memory");
    }
    struct stat st;
    if (stat(name, &st) != 0)
        return loom_error_set(err, LOOM_ERR_ARG,
                              "unknown model '%s': not a zoo name (see 'loom models') and no "
                              "such file",
                              name);
    return loom_file_read_all(name, text_out, NULL, err);
}

loom_status loom_run_config_load(loom_run_config *rc, const char *run_dir, char **owner,
                                 loom_error *err) {
    char path[2048];
    snprintf(path, sizeof path, "%s/config.txt", run_dir);
    *owner = NULL;
    char *text = NULL;
    loom_status st = loom_file_read_all(path, &text, NULL, err);
    if (st)
        return st;
    loom_run_config_init(rc);
    /* split the text into NUL-terminated values in place: strings point into it */
    for (char *p = text; *p;) {
        char *eol = strchr(p, '\n');
        if (eol)
            *eol = '\0';
        char *eq = strchr(p, '=');
        if (eq) {
            *eq = '\0';
            const char *k = p, *v = eq + 1;
            loom_train_config *t = &rc->train;
            if (!strcmp(k, "model"))
                rc->model = v;
            else if (!strcmp(k, "data_dir"))
                rc->data_dir = v;
            else if (!strcmp(k, "seed"))
                t->seed = strtoull(v, NULL, 10);
            else if (!strcmp(k, "epochs"))
                t->epochs = atoi(v);
            else if (!strcmp(k, "batch"))
                t->batch = atoi(v);
            else if (!strcmp(k, "optimizer"))
                st = loom_opt_kind_parse(v, &t->opt.kind, err);
            else if (!strcmp(k, "lr"))
                t->opt.lr = strtof(v, NULL);
            else if (!strcmp(k, "momentum"))
                t->opt.momentum = strtof(v, NULL);
            else if (!strcmp(k, "nesterov"))
                t->opt.is_nesterov = atoi(v) != 0;
            else if (!strcmp(k, "l2"))
                t->opt.l2 = strtof(v, NULL);
            else if (!strcmp(k, "weight_decay"))
                t->opt.weight_decay = strtof(v, NULL);
            else if (!strcmp(k, "clip_norm"))
                t->opt.clip_norm = strtof(v, NULL);
            else if (!strcmp(k, "lr_schedule"))
                rc->lr_schedule = v;
            else if (!strcmp(k, "early_stopping"))
                t->early_stopping = atoi(v);
            else if (!strcmp(k, "label_smoothing"))
                t->label_smoothing = strtof(v, NULL);
            else if (!strcmp(k, "ema"))
                t->ema = strtof(v, NULL);
            else if (!strcmp(k, "val_split"))
                rc->val_split = atof(v);
            else if (!strcmp(k, "split_mode"))
                rc->split_mode = strcmp(v, "keras") == 0 ? LOOM_SPLIT_KERAS : LOOM_SPLIT_STRATIFIED;
            else if (!strcmp(k, "standardize"))
                rc->is_standardize = atoi(v) != 0;
            else if (!strcmp(k, "subset"))
                rc->subset = atoi(v);
            else if (!strcmp(k, "test_subset"))
                rc->test_subset = atoi(v);
            else if (!strcmp(k, "no_test"))
                rc->is_skip_test = atoi(v) != 0;
            else if (!strcmp(k, "augment"))
                st = loom_augment_parse(v, t, err);
            else if (!strcmp(k, "checkpoint_every"))
                t->checkpoint_every = atoi(v);
            else if (!strcmp(k, "checkpoint_steps"))
                t->checkpoint_steps = atoi(v);
            else if (!strcmp(k, "command"))
                rc->command_line = v;
        }
        if (!eol || st)
            break;
        p = eol + 1;
    }
    if (!st && !rc->model)
        st = loom_error_set(err, LOOM_ERR_FORMAT, "%s: no model= line", path);
    if (!st && rc->train.opt.kind == LOOM_OPT_RMSPROP)
        rc->train.opt.beta2 = 0.9f;
    if (st) {
        free(text);
        return st;
    }
    rc->out_dir = run_dir;
    rc->is_resume = true;
    *owner = text;
    return LOOM_OK;
}

void loom_run_config_init(loom_run_config *rc) {
    memset(rc, 0, sizeof *rc);
    rc->val_split = 0.2;
    rc->split_mode = LOOM_SPLIT_STRATIFIED;
    loom_train_config_init(&rc->train);
}

loom_status loom_run_apply_zoo_defaults(loom_run_config *rc, loom_error *err) {
    const loom_zoo_entry *z = rc->model ? loom_zoo_find(rc->model) : NULL;
    if (!z)
        return LOOM_OK;
    loom_status st = loom_opt_kind_parse(z->optimizer, &rc->train.opt.kind, err);
    if (st)
        return st;
    rc->train.opt.lr = (float)z->lr;
    rc->train.batch = z->batch;
    rc->train.epochs = z->epochs;
    rc->train.opt.l2 = (float)z->l2;
    rc->train.early_stopping = z->early_stopping;
    rc->lr_schedule = z->lr_schedule;
    return loom_augment_parse(z->augment, &rc->train, err);
}

void loom_run_result_reset(loom_run_result *r) {
    loom_history_reset(&r->hist);
    loom_metrics_reset(&r->test);
    memset(r, 0, sizeof *r);
}

const char *loom_config_get(const char *config, const char *key, char *buf, size_t n) {
    size_t kl = strlen(key);
    for (const char *p = config; p && *p;) {
        const char *eol = strchr(p, '\n');
        size_t len = eol ? (size_t)(eol - p) : strlen(p);
        if (len > kl && strncmp(p, key, kl) == 0 && p[kl] == '=') {
            size_t vl = len - kl - 1;
            if (vl >= n)
                vl = n - 1;
            memcpy(buf, p + kl + 1, vl);
            buf[vl] = '\0';
            return buf;
        }
        p = eol ? eol + 1 : NULL;
    }
    return NULL;
}

/* ---- the run's log: every line to train.log, and on to the caller's callback ---- */

typedef struct {
    FILE *f;
    loom_log_fn fn;
    void *user;
} tee_log;

static void tee(void *user, loom_log_kind k, const char *line) {
    tee_log *t = user;
    if (t->f && k != LOOM_LOG_PROGRESS) {
        fprintf(t->f, "%s\n", line);
        fflush(t->f);
    }
    if (t->fn)
        t->fn(t->user, k, line);
}

/* ---- growable text buffer for the files we write ---- */

typedef struct {
    char *s;
    size_t len, cap;
    bool is_oom;
} sbuf;

static void sb_printf(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(sbuf *b, const char *fmt, ...) {
    if (b->is_oom)
        return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->s ? b->s + b->len : NULL, b->s ? b->cap - b->len : 0, fmt, ap);
        va_end(ap);
        if (n < 0) {
            b->is_oom = true;
            return;
        }
        if (b->s && b->len + (size_t)n < b->cap) {
            b->len += (size_t)n;
            return;
        }
        size_t cap = (b->cap + (size_t)n + 256) * 2;
        char *t = realloc(b->s, cap);
        if (!t) {
            b->is_oom = true;
            return;
        }
        b->s = t;
        b->cap = cap;
    }
}

static loom_status sb_write(sbuf *b, const char *dir, const char *name, loom_error *err) {
    char path[2048];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    if (b->is_oom)
        return loom_error_set(err, LOOM_ERR_NOMEM, "%s: out of memory", path);
    return loom_file_write_atomic(path, b->s ? b->s : "", b->len, err);
}

static const char *split_mode_str(loom_split_mode m) {
    return m == LOOM_SPLIT_KERAS ? "keras" : "stratified";
}

/* A setting as short as %g writes it when that reads back to the same value, else with all the
 * digits it needs: a resumed run must get the very same numbers (an --ema decay or a learning
 * rate of 8 significant digits would otherwise come back rounded). */
typedef struct {
    char s[40];
} num_text;
static num_text fnum(float v) {
    num_text t;
    float_text(v, t.s, sizeof t.s);
    return t;
}
static num_text dnum(double v) {
    num_text t;
    snprintf(t.s, sizeof t.s, "%g", v);
    if (strtod(t.s, NULL) != v)
        snprintf(t.s, sizeof t.s, "%.17g", v);
    return t;
}

static void config_text(const loom_run_config *rc, const char *data_dir, sbuf *b) {
    const loom_train_config *t = &rc->train;
    sb_printf(b, "loom_version=%s\nmodel=%s\ndata_dir=%s\nseed=%llu\nepochs=%d\nbatch=%d\n",
              LOOM_VERSION, rc->model, data_dir, (unsigned long long)t->seed, t->epochs, t->batch);
    sb_printf(b, "optimizer=%s\nlr=%s\nmomentum=%s\nnesterov=%d\nl2=%s\nweight_decay=%s\n",
              loom_opt_kind_str(t->opt.kind), fnum(t->opt.lr).s, fnum(t->opt.momentum).s,
              t->opt.is_nesterov, fnum(t->opt.l2).s, fnum(t->opt.weight_decay).s);
    sb_printf(b, "clip_norm=%s\nlr_schedule=%s\nearly_stopping=%d\nlabel_smoothing=%s\n",
              fnum(t->opt.clip_norm).s, rc->lr_schedule ? rc->lr_schedule : "constant",
              t->early_stopping, fnum(t->label_smoothing).s);
    sb_printf(b, "ema=%s\nval_split=%s\n", fnum(t->ema).s, dnum(rc->val_split).s);
    sb_printf(b, "split_mode=%s\nstandardize=%d\nsubset=%d\ntest_subset=%d\nno_test=%d\n",
              split_mode_str(rc->split_mode), rc->is_standardize, rc->subset, rc->test_subset,
              rc->is_skip_test);
    sb_printf(b, "augment=%s%s%s%d\n", t->is_augment_flip ? "flip" : "",
              t->is_augment_flip ? "," : "", "shift:", t->augment_shift);
    sb_printf(b, "checkpoint_every=%d\ncheckpoint_steps=%d\nthreads=%d\n", t->checkpoint_every,
              t->checkpoint_steps, loom_get_threads());
    if (rc->command_line)
        sb_printf(b, "command=%s\n", rc->command_line);
}

/* The training examples a run uses: all, or a stratified subset; then the train/val split. */
static loom_status make_split(const loom_dataset *ds, int subset, double val_split,
                              loom_split_mode mode, uint64_t seed, loom_split *out,
                              loom_error *err) {
    memset(out, 0, sizeof *out);
    if (subset <= 0 || subset >= ds->n)
        return loom_split_create(out, ds, val_split, mode, seed, err);
    loom_split pick = {0};
    loom_status st = loom_split_create(&pick, ds, (double)subset / ds->n, LOOM_SPLIT_STRATIFIED,
                                       loom_seed_derive(seed, 77), err);
    if (st)
        return st;
    /* pick.val is the stratified subset; split it again into train / validation */
    int nv = (int)lround(val_split * pick.n_val);
    out->train = malloc(sizeof(int) * (size_t)(pick.n_val - nv + 1));
    out->val = malloc(sizeof(int) * (size_t)(nv + 1));
    if (!out->train || !out->val) {
        loom_split_reset(&pick);
        loom_split_reset(out);
        return loom_error_set(err, LOOM_ERR_NOMEM, "split: out of memory");
    }
    out->n_train = pick.n_val - nv;
    out->n_val = nv;
    memcpy(out->train, pick.val, sizeof(int) * (size_t)out->n_train);
    memcpy(out->val, pick.val + out->n_train, sizeof(int) * (size_t)nv);
    loom_split_reset(&pick);
    return LOOM_OK;
}

static loom_status ensure_dir(const char *dir, bool is_force, loom_error *err) {
    struct stat st;
    if (stat(dir, &st) == 0) {
        if (!S_ISDIR(st.st_mode))
            return loom_error_set(err, LOOM_ERR_IO, "%s: exists and is not a directory", dir);
        if (is_force)
            return LOOM_OK;
        char p[2048];
        snprintf(p, sizeof p, "%s/model.loom", dir);
        if (stat(p, &st) == 0)
            return loom_error_set(err, LOOM_ERR_ARG,
                                  "%s: a run already exists there: pass --force to overwrite "
                                  "it or --out DIR for a new one",
                                  dir);
        return LOOM_OK;
    }
    return loom_mkdir_p(dir, err);
}

/* ---- pieces of a run that cross-validation and the search (src/tune/) reuse ---- */

loom_status loom_run_create_dir(const char *dir, bool is_force, loom_error *err) {
    return ensure_dir(dir, is_force, err);
}

char *loom_run_config_text(const loom_run_config *rc) {
    sbuf b = {0};
    config_text(rc, rc->data_dir ? rc->data_dir : loom_default_data_dir(), &b);
    if (b.is_oom) {
        free(b.s);
        return NULL;
    }
    return b.s ? b.s : strdup("");
}

loom_status loom_model_build(loom_model **out, const char *text, const char *source,
                             const loom_dataset *ds, const int *idx, int n, bool is_standardize,
                             uint64_t seed, loom_error *err) {
    *out = NULL;
    size_t len = strlen(text) + 16;
    char *full = malloc(len);
    if (!full)
        return loom_error_set(err, LOOM_ERR_NOMEM, "%s: out of memory", source);
    snprintf(full, len, "%s%s", is_standardize ? "standardize\n" : "", text);
    loom_model *m = NULL;
    loom_status st = loom_model_create(&m, full, source, ds->H, ds->W, ds->C, err);
    free(full);
    if (st)
        return st;
    loom_model_init(m, seed);
    if (is_standardize) {
        loom_norm nrm = {0};
        if ((st = loom_norm_fit(&nrm, ds, idx, n, err))) {
            loom_model_destroy(m);
            return st;
        }
        /* the standardize layer's state: mean (D) then std (D) */
        size_t D = (size_t)ds->H * ds->W * ds->C;
        memcpy(m->layers[0].state, nrm.mean, sizeof(float) * D);
        memcpy(m->layers[0].state + D, nrm.std, sizeof(float) * D);
        loom_norm_reset(&nrm);
    }
    *out = m;
    return LOOM_OK;
}

loom_status loom_history_write_csv(const loom_history *h, const char *path, loom_error *err) {
    sbuf b = {0};
    sb_printf(&b, "epoch,loss,acc,val_loss,val_acc,lr,seconds\n");
    for (int i = 0; i < h->n_epochs; i++) {
        const loom_epoch *e = &h->epochs[i];
        sb_printf(&b, "%d,%.6f,%.6f,%.6f,%.6f,%.6g,%.3f\n", e->epoch, e->loss, e->acc, e->val_loss,
                  e->val_acc, e->lr, e->seconds);
    }
    loom_status st = b.is_oom ? loom_error_set(err, LOOM_ERR_NOMEM, "%s: out of memory", path)
                              : loom_file_write_atomic(path, b.s ? b.s : "", b.len, err);
    free(b.s);
    return st;
}

/* Evaluates m on the examples idx[0..n) of ds (the first n when idx is NULL) into mt and writes
 * DIR/predictions.csv (index in ds, true class, predicted class, its probability),
 * DIR/metrics.json and DIR/confusion.csv. */
static loom_status eval_write(loom_model *m, const loom_dataset *ds, const int *idx, int n,
                              int batch, const char *dir, loom_metrics *mt, loom_error *err) {
    assert(n >= 1 && n <= ds->n); /* callers pass the count (loom_evaluate reads n <= 0 as all) */
    int *pred = malloc(sizeof(int) * (size_t)(n > 0 ? n : 1));     /* (n) */
    float *prob = malloc(sizeof(float) * (size_t)(n > 0 ? n : 1)); /* (n) */
    sbuf pb = {0};
    char path[2048];
    loom_status st = LOOM_OK;
    if (!pred || !prob) {
        st = loom_error_set(err, LOOM_ERR_NOMEM, "out of memory");
        goto done;
    }
    if ((st = loom_evaluate(m, ds, idx, n, NULL, batch, mt, pred, prob, err)))
        goto done;
    sb_printf(&pb, "index,true,pred,prob\n");
    for (int i = 0; i < n; i++) {
        int k = idx ? idx[i] : i;
        sb_printf(&pb, "%d,%d,%d,%.5f\n", k, ds->y[k], pred[i], (double)prob[i]);
    }
    if ((st = sb_write(&pb, dir, "predictions.csv", err)))
        goto done;
    snprintf(path, sizeof path, "%s/metrics.json", dir);
    if ((st = loom_metrics_write_json(mt, ds, path, err)))
        goto done;
    snprintf(path, sizeof path, "%s/confusion.csv", dir);
    st = loom_metrics_write_confusion_csv(mt, ds, path, err);
done:
    free(pred);
    free(prob);
    free(pb.s);
    return st;
}

loom_status loom_run_write_test(loom_model *m, const loom_dataset *test, int n, int batch,
                                const char *dir, loom_metrics *mt, loom_error *err) {
    return eval_write(m, test, NULL, n > 0 && n < test->n ? n : test->n, batch, dir, mt, err);
}

receipt_in receipt_inputs(const char *model_text, const char *config, const loom_dataset *train,
                          const loom_dataset *test) {
    receipt_in r = {0, 0};
    const loom_dataset *sets[2] = {train, test};
    for (int i = 0; i < 2; i++)
        if (sets[i]) {
            size_t D = (size_t)sets[i]->H * sets[i]->W * sets[i]->C;
            r.data = loom_crc32(r.data, sets[i]->x, D * (size_t)sets[i]->n);
            r.data = loom_crc32(r.data, sets[i]->y, (size_t)sets[i]->n);
        }
    r.inputs = loom_crc32(0, LOOM_VERSION, strlen(LOOM_VERSION));
    r.inputs = loom_crc32(r.inputs, model_text, strlen(model_text));
    for (const char *p = config; p && *p;) {
        const char *eol = strchr(p, '\n');
        size_t len = eol ? (size_t)(eol - p) + 1 : strlen(p);
        /* not inputs: how it was typed, the thread count, where the outputs went, where the
         * model text came from (the text itself is hashed) */
        if (strncmp(p, "command=", 8) != 0 && strncmp(p, "threads=", 8) != 0 &&
            strncmp(p, "tune_dir=", 9) != 0 && strncmp(p, "model=", 6) != 0)
            r.inputs = loom_crc32(r.inputs, p, len);
        p += len;
    }
    r.inputs = loom_crc32(r.inputs, &r.data, sizeof r.data);
    return r;
}

uint32_t receipt_weights(const loom_model *m) {
    uint32_t w = loom_crc32(0, m->params, sizeof(float) * m->n_params);
    return loom_crc32(w, m->state, sizeof(float) * m->n_state);
}

loom_status receipt_write(const char *dir, receipt_in in, const char *extra, uint32_t weights,
                          loom_error *err) {
    size_t n_extra = extra ? strlen(extra) : 0;
    char *text = malloc(n_extra + 256);
    if (!text)
        return loom_error_set(err, LOOM_ERR_NOMEM, "%s/receipt.txt: out of memory", dir);
    int n = snprintf(text, n_extra + 256,
                     "loom_version=%s\ninputs_crc32=%08x\ndata_crc32=%08x\n%sweights_crc32=%08x\n",
                     LOOM_VERSION, in.inputs, in.data, extra ? extra : "", weights);
    char path[2048];
    snprintf(path, sizeof path, "%s/receipt.txt", dir);
    loom_status st = loom_file_write_atomic(path, text, (size_t)n, err);
    free(text);
    return st;
}

loom_status loom_run_train(const loom_run_config *rc, loom_run_result *res, loom_error *err) {
    memset(res, 0, sizeof *res);
    loom_status st = LOOM_OK;
    char *text = NULL;
    loom_dataset *train = NULL, *test = NULL;
    loom_model *m = NULL;
    loom_split sp = {0};
    sbuf cfg = {0};
    tee_log tl = {NULL, rc->train.log, rc->train.log_user};
    loom_train_config tc = rc->train;
    const char *data_dir = rc->data_dir ? rc->data_dir : loom_default_data_dir();

    if (!rc->model)
        return loom_error_set(err, LOOM_ERR_ARG, "no model given");
    if (rc->lr_schedule && (st = loom_sched_parse(rc->lr_schedule, &tc.sched, err)))
        return st;
    if (!(rc->val_split >= 0.0 && rc->val_split < 1.0))
        return loom_error_set(err, LOOM_ERR_ARG, "--val-split must be in [0, 1), got %g",
                              rc->val_split);
    if ((st = loom_model_resolve(rc->model, &text, NULL, err)))
        return st;
    if (rc->out_dir)
        snprintf(res->run_dir, sizeof res->run_dir, "%s", rc->out_dir);
    else
        snprintf(res->run_dir, sizeof res->run_dir, "runs/%s", rc->model);
    for (char *p = res->run_dir + 5; !rc->out_dir && *p; p++)
        if (*p == '/')
            *p = '_';
    if ((st = loom_dataset_load_dir(&train, data_dir, "train", err)))
        goto done;
    if (!rc->is_skip_test && (st = loom_dataset_load_dir(&test, data_dir, "test", err)))
        goto done;
    if ((st = ensure_dir(res->run_dir, rc->is_force || rc->is_resume, err)))
        goto done;
    char path[2048], ck_path[2048];
    snprintf(ck_path, sizeof ck_path, "%s/checkpoint.loomck", res->run_dir);
    tc.checkpoint_path = ck_path;
    tc.is_resume = rc->is_resume;
    snprintf(path, sizeof path, "%s/train.log", res->run_dir);
    tl.f = fopen(path, rc->is_resume ? "a" : "w");
    if (!tl.f) {
        st = loom_error_set(err, LOOM_ERR_IO, "%s: cannot create: %s", path, strerror(errno));
        goto done;
    }
    tc.log = tee;
    tc.log_user = &tl;

    if ((st = make_split(train, rc->subset, rc->val_split, rc->split_mode, tc.seed, &sp, err)))
        goto done;
    if ((st = loom_model_build(&m, text, rc->model, train, sp.train, sp.n_train, rc->is_standardize,
                               tc.seed, err)))
        goto done;
    res->n_params = m->n_params;
    config_text(rc, data_dir, &cfg);
    if ((st = sb_write(&cfg, res->run_dir, "config.txt", err)))
        goto done;
    {
        char *sum = NULL;
        size_t sum_len = 0;
        FILE *mf = open_memstream(&sum, &sum_len);
        if (mf) {
            loom_model_summary(m, mf);
            fclose(mf);
            sbuf sb = {sum, sum_len, sum_len + 1, false};
            st = sb_write(&sb, res->run_dir, "summary.txt", err);
            free(sum);
            if (st)
                goto done;
        }
    }
    log_printf(tee, &tl, LOOM_LOG_INFO,
               "loom %s: training %s (%zu parameters) on %d examples, validating on %d; "
               "%s lr %g, batch %d, %d epochs, seed %llu, %d threads",
               LOOM_VERSION, rc->model, m->n_params, sp.n_train, sp.n_val,
               loom_opt_kind_str(tc.opt.kind), (double)tc.opt.lr, tc.batch, tc.epochs,
               (unsigned long long)tc.seed, loom_get_threads());
    st = loom_train(m, &tc, train, sp.train, sp.n_train, train, sp.val, sp.n_val, NULL, &res->hist,
                    err);
    if (st == LOOM_ERR_INTERRUPTED)
        log_printf(tee, &tl, LOOM_LOG_WARN,
                   "checkpoint saved: continue with 'loom train --resume %s'", res->run_dir);
    if (st == LOOM_ERR_NUMERIC || st == LOOM_ERR_INTERRUPTED) {
        /* keep what was learned: the trainer rolled back to the last good weights */
        loom_error e2 = {0};
        char mp[2048];
        snprintf(mp, sizeof mp, "%s/model.loom", res->run_dir);
        if (loom_model_save(m, cfg.s, mp, &e2) == LOOM_OK)
            log_printf(tee, &tl, LOOM_LOG_WARN, "the last good weights are in %s", mp);
    }
    if (st)
        goto done;
    snprintf(path, sizeof path, "%s/history.csv", res->run_dir);
    if ((st = loom_history_write_csv(&res->hist, path, err)))
        goto done;
    snprintf(path, sizeof path, "%s/model.loom", res->run_dir);
    if ((st = loom_model_save(m, cfg.s, path, err)))
        goto done;
    log_printf(tee, &tl, LOOM_LOG_INFO, "saved %s (%.1f s of training)", path, res->hist.seconds);
    receipt_in rin = receipt_inputs(m->text, cfg.s, train, test);
    res->inputs_hash = rin.inputs;
    res->weights_hash = receipt_weights(m);
    log_printf(tee, &tl, LOOM_LOG_INFO, "receipt: inputs %08x, data %08x, weights %08x", rin.inputs,
               rin.data, res->weights_hash);
    if ((st = receipt_write(res->run_dir, rin, NULL, res->weights_hash, err)))
        goto done;
    remove(ck_path); /* finished: the model file supersedes the checkpoint */
    {
        char prev[2100];
        snprintf(prev, sizeof prev, "%s.prev", ck_path);
        remove(prev);
    }
    if (!rc->is_skip_test) {
        if ((st = loom_run_write_test(m, test, rc->test_subset, tc.batch, res->run_dir, &res->test,
                                      err)))
            goto done;
        res->has_test = true;
        log_printf(tee, &tl, LOOM_LOG_INFO,
                   "test: accuracy %.2f%%, macro F1 %.2f%%, loss %.4f (%ld images)",
                   100 * res->test.accuracy, 100 * res->test.macro_f1, res->test.loss, res->test.n);
    }
done:
    if (tl.f)
        fclose(tl.f);
    free(cfg.s);
    free(text);
    loom_split_reset(&sp);
    loom_model_destroy(m);
    loom_dataset_destroy(train);
    loom_dataset_destroy(test);
    return st;
}

loom_status loom_run_eval(const loom_eval_config *ec, loom_metrics *mt, loom_dataset **ds_out,
                          loom_error *err) {
    if (ds_out)
        *ds_out = NULL;
    loom_model *m = NULL;
    char *config = NULL;
    loom_dataset *ds = NULL;
    loom_split sp = {0};
    loom_status st = loom_model_load(&m, &config, ec->model_file, err);
    if (st)
        return st;
    const char *split = ec->split ? ec->split : "test";
    const char *dir = ec->data_dir ? ec->data_dir : loom_default_data_dir();
    const int *idx = NULL;
    int n = 0;
    if (ec->images || ec->labels) {
        if (!ec->images || !ec->labels) {
            st = loom_error_set(err, LOOM_ERR_ARG, "--images and --labels go together");
            goto done;
        }
        st = loom_dataset_load_idx(&ds, ec->images, ec->labels, err);
    } else if (strcmp(split, "test") == 0) {
        st = loom_dataset_load_dir(&ds, dir, "test", err);
    } else if (strcmp(split, "train") == 0 || strcmp(split, "val") == 0) {
        st = loom_dataset_load_dir(&ds, dir, "train", err);
        if (st)
            goto done;
        /* rebuild the run's split from the configuration stored in the model file */
        char b[64];
        uint64_t seed = strtoull(loom_config_get(config, "seed", b, sizeof b) ?: "42", NULL, 10);
        double vs = atof(loom_config_get(config, "val_split", b, sizeof b) ?: "0.2");
        int subset = atoi(loom_config_get(config, "subset", b, sizeof b) ?: "0");
        const char *mode = loom_config_get(config, "split_mode", b, sizeof b) ?: "stratified";
        st = make_split(ds, subset, vs,
                        strcmp(mode, "keras") == 0 ? LOOM_SPLIT_KERAS : LOOM_SPLIT_STRATIFIED, seed,
                        &sp, err);
        bool is_val = strcmp(split, "val") == 0;
        idx = is_val ? sp.val : sp.train;
        n = is_val ? sp.n_val : sp.n_train;
    } else {
        st = loom_error_set(err, LOOM_ERR_ARG, "--split must be test, train or val, got '%s'",
                            split);
    }
    if (st)
        goto done;
    if (!idx)
        n = ds->n;
    if (ds->H != m->in.d[0] || ds->W != m->in.d[1] || ds->C != m->in.d[2]) {
        st =
            loom_error_set(err, LOOM_ERR_SHAPE, "%s expects %dx%dx%d images, the data has %dx%dx%d",
                           ec->model_file, m->in.d[0], m->in.d[1], m->in.d[2], ds->H, ds->W, ds->C);
        goto done;
    }
    int batch = ec->batch > 0 ? ec->batch : 256;
    if (ec->out_dir && (st = loom_mkdir_p(ec->out_dir, err)))
        goto done;
    st = ec->out_dir ? eval_write(m, ds, idx, n, batch, ec->out_dir, mt, err)
                     : loom_evaluate(m, ds, idx, n, NULL, batch, mt, NULL, NULL, err);
done:
    if (st == LOOM_OK && ds_out) {
        *ds_out = ds;
        ds = NULL;
    }
    loom_split_reset(&sp);
    loom_dataset_destroy(ds);
    loom_model_destroy(m);
    free(config);
    return st;
}
