/* run.c - a training run as one library call: resolve the model, load and split the data,
 * train, save the model file and write the run directory (config, history, log, metrics);
 * and the evaluation of a saved model on any split. The CLI only fills the configs. */
#include "../core/core.h"
#include "../run/rundir.h"

#include <assert.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <sys/stat.h>

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
    loom_settings set = loom_run_settings(rc);
    if ((st = loom_settings_set(&set, "lr_schedule", z->lr_schedule, err)))
        return st;
    if ((st = loom_settings_set(&set, "augment", z->augment, err)))
        return st;
    /* "name=value ..." (numbers and switches: nothing keeps a pointer into the copy) */
    char buf[256];
    snprintf(buf, sizeof buf, "%s", z->settings ? z->settings : "");
    char *save = NULL;
    for (char *w = strtok_r(buf, " ", &save); w && !st; w = strtok_r(NULL, " ", &save)) {
        char *eq = strchr(w, '=');
        if (!eq)
            return loom_error_set(err, LOOM_ERR_ARG, "zoo %s: bad setting '%s'", z->name, w);
        *eq = '\0';
        st = loom_settings_set(&set, w, eq + 1, err);
    }
    return st;
}

void loom_run_result_reset(loom_run_result *r) {
    loom_history_reset(&r->hist);
    loom_metrics_reset(&r->test);
    memset(r, 0, sizeof *r);
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

/* loom_evaluate of ds[idx[0..n)] (the first n when idx is NULL) in chunks of EVAL_CHUNK images,
 * a stop request (stop_flag set) honoured between them: the same predictions as one call
 * (inference does not depend on the batch), the counts and losses summed. */
#define EVAL_CHUNK 1000
static loom_status evaluate_stoppable(loom_model *m, const loom_dataset *ds, const int *idx, int n,
                                      int batch, volatile int *stop_flag, loom_metrics *mt,
                                      int *pred, float *prob, loom_error *err) {
    if (!stop_flag || n <= EVAL_CHUNK)
        return loom_evaluate(m, ds, idx, n, NULL, batch, mt, pred, prob, err);
    int *all = NULL; /* (n) the examples, when idx is NULL */
    if (!idx) {
        if (!(all = malloc(sizeof(int) * (size_t)n)))
            return loom_error_set(err, LOOM_ERR_NOMEM, "out of memory");
        for (int i = 0; i < n; i++)
            all[i] = i;
        idx = all;
    }
    loom_metrics part = {0};
    double loss_sum = 0;
    loom_status st = LOOM_OK;
    for (int at = 0; at < n && st == LOOM_OK; at += EVAL_CHUNK) {
        int len = n - at < EVAL_CHUNK ? n - at : EVAL_CHUNK;
        if (*stop_flag) {
            st = loom_error_set(err, LOOM_ERR_INTERRUPTED,
                                "interrupted during the test evaluation (%d of %d images done)", at,
                                n);
            break;
        }
        loom_metrics *into = at == 0 ? mt : &part;
        st = loom_evaluate(m, ds, idx + at, len, NULL, batch, into, pred + at,
                           prob ? prob + at : NULL, err);
        if (st)
            break;
        loss_sum += into->loss * (double)into->n;
        if (into != mt) {
            for (size_t k = 0; k < (size_t)mt->n_classes * (size_t)mt->n_classes; k++)
                mt->cm[k] += part.cm[k];
            mt->n += part.n;
            loom_metrics_reset(&part);
        }
    }
    loom_metrics_reset(&part);
    if (st == LOOM_OK) {
        mt->loss = loss_sum / (double)mt->n;
        loom_metrics_compute(mt);
    } else {
        loom_metrics_reset(mt);
    }
    free(all);
    return st;
}

/* Evaluates m on the examples idx[0..n) of ds (the first n when idx is NULL) into mt and writes
 * DIR/predictions.csv (index in ds, true class, predicted class, its probability),
 * DIR/metrics.json and DIR/confusion.csv; stop_flag (may be NULL) stops it before any file.
 * is_tta: loom_evaluate_tta's figures instead, into predictions_tta.csv, metrics_tta.json and
 * confusion_tta.csv (never stopped between chunks: loom eval's). */
static loom_status eval_write_as(loom_model *m, const loom_dataset *ds, const int *idx, int n,
                                 int batch, bool is_tta, const char *dir, volatile int *stop_flag,
                                 loom_metrics *mt, loom_error *err) {
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
    if ((st = is_tta ? loom_evaluate_tta(m, ds, idx, n, NULL, batch, mt, pred, prob, err)
                     : evaluate_stoppable(m, ds, idx, n, batch, stop_flag, mt, pred, prob, err)))
        goto done;
    const char *tail = is_tta ? "_tta" : "";
    sb_printf(&pb, "index,true,pred,prob\n");
    for (int i = 0; i < n; i++) {
        int k = idx ? idx[i] : i;
        sb_printf(&pb, "%d,%d,%d,%.5f\n", k, ds->y[k], pred[i], (double)prob[i]);
    }
    char name[32];
    snprintf(name, sizeof name, "predictions%s.csv", tail);
    if ((st = sb_write(&pb, dir, name, err)))
        goto done;
    snprintf(path, sizeof path, "%s/metrics%s.json", dir, tail);
    if ((st = loom_metrics_write_json(mt, ds, path, err)))
        goto done;
    snprintf(path, sizeof path, "%s/confusion%s.csv", dir, tail);
    st = loom_metrics_write_confusion_csv(mt, ds, path, err);
done:
    free(pred);
    free(prob);
    free(pb.s);
    return st;
}

static loom_status eval_write(loom_model *m, const loom_dataset *ds, const int *idx, int n,
                              int batch, const char *dir, volatile int *stop_flag, loom_metrics *mt,
                              loom_error *err) {
    return eval_write_as(m, ds, idx, n, batch, false, dir, stop_flag, mt, err);
}

loom_status loom_run_write_test(loom_model *m, const loom_dataset *test, int n, int batch,
                                const char *dir, volatile int *stop_flag, loom_metrics *mt,
                                loom_error *err) {
    return eval_write(m, test, NULL, n > 0 && n < test->n ? n : test->n, batch, dir, stop_flag, mt,
                      err);
}

static bool run_has(const char *dir, const char *name) {
    char p[2200];
    struct stat sb;
    snprintf(p, sizeof p, "%s/%s", dir, name);
    return stat(p, &sb) == 0;
}

/* One training run, shared by its steps. */
typedef struct {
    const loom_run_config *rc;
    loom_run_result *res;
    loom_train_config tc; /* rc->train with the schedule parsed, checkpoints and log set */
    const char *data_dir;
    char *text; /* the model text */
    char *cfg;  /* config.txt */
    loom_dataset *train, *test;
    loom_model *m;
    loom_split sp;
    tee_log tl;
    bool is_resume;    /* continue from the checkpoint */
    bool is_restart;   /* asked to resume, but no checkpoint yet: from step 0 */
    bool is_test_only; /* asked to resume a run trained but stopped during its test */
    bool is_dir_ours;  /* the run directory was made or taken over here */
    bool is_created;   /* ... and did not exist before */
    char ck_path[2048];
} train_run;

/* Everything that can fail on the inputs, before the run directory is made: the settings, the
 * model's text, the directory's name, resume or restart, the data, the split, the model. */
static loom_status run_prepare(train_run *r, loom_error *err) {
    const loom_run_config *rc = r->rc;
    loom_run_result *res = r->res;
    loom_status st;
    if (!rc->model)
        return loom_error_set(err, LOOM_ERR_ARG, "no model given");
    if (r->tc.lr_schedule && (st = loom_sched_parse(r->tc.lr_schedule, &r->tc.sched, err)))
        return st;
    if (!(rc->val_split >= 0.0 && rc->val_split < 1.0))
        return loom_error_set(err, LOOM_ERR_ARG, "val_split must be in [0, 1), got %g",
                              rc->val_split);
    if ((st = loom_model_resolve(rc->model, &r->text, NULL, err)))
        return st;
    if (rc->out_dir)
        snprintf(res->run_dir, sizeof res->run_dir, "%s", rc->out_dir);
    else
        snprintf(res->run_dir, sizeof res->run_dir, "runs/%s", rc->model);
    for (char *p = res->run_dir + 5; !rc->out_dir && *p; p++)
        if (*p == '/')
            *p = '_';
    /* resuming: a finished run has nothing to resume; a run stopped before its first checkpoint
     * starts again from step 0 (with its own settings, so it ends as an uninterrupted one) */
    r->is_resume = rc->is_resume;
    if (r->is_resume && !run_has(res->run_dir, "checkpoint.loomck") &&
        !run_has(res->run_dir, "checkpoint.loomck.prev")) {
        bool is_trained = run_has(res->run_dir, "model.loom") &&
                          run_has(res->run_dir, "history.csv") &&
                          run_has(res->run_dir, "receipt.txt");
        if (is_trained && (rc->is_skip_test || run_has(res->run_dir, "metrics.json")))
            return loom_error_set(err, LOOM_ERR_ARG,
                                  "%s: the run is finished (its model is %s/model.loom): nothing "
                                  "to resume",
                                  res->run_dir, res->run_dir);
        r->is_resume = false;
        r->is_test_only = is_trained; /* stopped during its test: the test is what is left */
        r->is_restart = !is_trained;
    }
    if ((st = loom_dataset_load_dir(&r->train, r->data_dir, "train", err)))
        return st;
    if (!rc->is_skip_test && (st = loom_dataset_load_dir(&r->test, r->data_dir, "test", err)))
        return st;
    if ((st = loom_dataset_check_test(r->train, r->test, err)))
        return st;
    if ((st = make_split(r->train, rc->subset, rc->val_split, rc->split_mode, r->tc.seed, &r->sp,
                         err)))
        return st;
    if (r->sp.n_train < 1)
        return loom_error_set(err, LOOM_ERR_ARG,
                              "val_split %g of %d examples leaves none to train on: lower it",
                              rc->val_split, r->sp.n_train + r->sp.n_val);
    return loom_model_build(&r->m, r->text, rc->model, r->train, r->sp.train, r->sp.n_train,
                            rc->is_standardize, r->tc.seed, err);
}

/* The run directory: made (or replaced with force), config.txt (not yet for a resumed run: only
 * once its checkpoint was taken), train.log opened, summary.txt. */
static loom_status run_open_dir(train_run *r, loom_error *err) {
    const loom_run_config *rc = r->rc;
    const char *dir = r->res->run_dir;
    struct stat dir_st;
    r->is_created = stat(dir, &dir_st) != 0;
    loom_status st = loom_run_create_dir(dir, rc->is_force || rc->is_resume, err);
    if (st)
        return st;
    r->is_dir_ours = true;
    if (rc->is_force && !rc->is_resume) /* a new run replaces the old one, files and all */
        loom_run_clear_dir(dir);
    snprintf(r->ck_path, sizeof r->ck_path, "%s/checkpoint.loomck", dir);
    r->tc.checkpoint_path = r->ck_path;
    r->tc.is_resume = r->is_resume;
    r->res->n_params = r->m->n_params;
    loom_run_config full = *rc;
    full.data_dir = r->data_dir;
    if (!(r->cfg = loom_config_with_classes(loom_run_config_text(&full), r->train)))
        return loom_error_set(err, LOOM_ERR_NOMEM, "%s/config.txt: out of memory", dir);
    char path[2048];
    snprintf(path, sizeof path, "%s/config.txt", dir);
    if (!r->is_resume && (st = loom_file_write_atomic(path, r->cfg, strlen(r->cfg), err)))
        return st;
    snprintf(path, sizeof path, "%s/train.log", dir);
    r->tl.f = fopen(path, rc->is_resume ? "a" : "w");
    if (!r->tl.f)
        return loom_error_set(err, LOOM_ERR_IO, "%s: cannot create: %s", path, strerror(errno));
    r->tc.log = tee;
    r->tc.log_user = &r->tl;
    char *sum = NULL;
    size_t sum_len = 0;
    FILE *mf = open_memstream(&sum, &sum_len);
    if (!mf)
        return LOOM_OK;
    loom_model_summary(r->m, mf);
    fclose(mf);
    sbuf sb = {sum, sum_len, sum_len + 1, false};
    st = sb_write(&sb, dir, "summary.txt", err);
    free(sum);
    return st;
}

/* The job's processes agree before anything is written: every one prepared the run (st is this
 * one's status), rank 0's resume decision holds for all, and every process has the same inputs
 * (settings, model text, data: the receipt's hashes), else none starts. */
static loom_status job_check(train_run *r, loom_status st, loom_error *err) {
    if ((st = loom_dist_agree(st, err)))
        return st;
    bool flags[3] = {r->is_resume, r->is_restart, r->is_test_only};
    dist_bcast(flags, sizeof flags, 0);
    r->is_resume = flags[0];
    r->is_restart = flags[1];
    r->is_test_only = flags[2];
    loom_run_config full = *r->rc;
    full.data_dir = ""; /* the data may live elsewhere on each host: its contents are compared */
    char *text = loom_run_config_text(&full);
    receipt_in mine = receipt_inputs(r->text, text, r->train, r->test);
    free(text);
    int n = loom_dist_size();
    receipt_in *all = malloc(sizeof *all * (size_t)n);
    if (!text || !all) /* the others wait in the gather: the job cannot go on */
        loom_dist_abort(1);
    loom_dist_allgather(&mine, sizeof mine, all);
    int S = r->tc.shards;
    if (loom_dist_rank() == 0 && S % n != 0)
        st = loom_error_set(err, LOOM_ERR_ARG,
                            "shards: %d processes share each batch's shards: set shards to a "
                            "multiple of %d (12 runs on 1, 2, 3, 4, 6 or 12 processes with the "
                            "same numbers)",
                            n, n);
    /* the inputs' hash covers the data's: name the data when they differ */
    for (int i = 1; i < n && st == LOOM_OK && loom_dist_rank() == 0; i++) {
        bool is_data = all[i].data != all[0].data;
        if (is_data || all[i].inputs != all[0].inputs)
            st = loom_error_set(err, LOOM_ERR_ARG,
                                "process %d's %s differ from process 0's (%08x, not %08x): start "
                                "every process with the same loom, flags and data",
                                i, is_data ? "data" : "settings",
                                is_data ? all[i].data : all[i].inputs,
                                is_data ? all[0].data : all[0].inputs);
    }
    free(all);
    return loom_dist_agree(st, err); /* rank 0 says why; the others that it failed */
}

/* "2 threads", or "3 processes x 2 threads" in a data-parallel job. */
static void format_workers(char *buf, size_t n) {
    int t = loom_get_threads(), p = loom_dist_size();
    if (p > 1)
        snprintf(buf, n, "%d processes x %d thread%s", p, t, t == 1 ? "" : "s");
    else
        snprintf(buf, n, "%d thread%s", t, t == 1 ? "" : "s");
}

/* The log's opening lines: what is trained on what, and the warnings about the settings. */
static void run_log_start(train_run *r) {
    const loom_run_config *rc = r->rc;
    const loom_train_config *tc = &r->tc;
    char workers[64];
    format_workers(workers, sizeof workers);
    log_printf(tee, &r->tl, LOOM_LOG_INFO,
               "loom %s: training %s (%zu parameters) on %d examples, validating on %d; "
               "%s lr %g, batch %d, %d epoch%s, seed %llu, %s",
               LOOM_VERSION, rc->model, r->m->n_params, r->sp.n_train, r->sp.n_val,
               loom_opt_kind_str(tc->opt.kind), (double)tc->opt.lr, tc->batch, tc->epochs,
               PLURAL(tc->epochs), (unsigned long long)tc->seed, workers);
    if (tc->shards > 1)
        log_printf(tee, &r->tl, LOOM_LOG_INFO,
                   "each batch in %d shards summed exactly: the same numbers on any number of "
                   "processes that divides %d",
                   tc->shards, tc->shards);
    if (rc->subset > r->train->n)
        log_printf(tee, &r->tl, LOOM_LOG_WARN,
                   "warning: subset %d is more than the %d training examples: all of them are used",
                   rc->subset, r->train->n);
    for (int t = 0; t < 2; t++) {
        const loom_dataset *ds = t ? r->test : r->train;
        if (ds && ds->n_skipped > 0)
            log_printf(tee, &r->tl, LOOM_LOG_WARN,
                       "warning: %d unreadable %s images left out (%d read)", ds->n_skipped,
                       t ? "test" : "training", ds->n);
    }
    if (r->is_restart)
        log_printf(tee, &r->tl, LOOM_LOG_WARN,
                   "%s: no checkpoint (the run stopped before its first one): starting again from "
                   "step 0",
                   r->res->run_dir);
}

/* After the training: a resumed run's config.txt; an interrupted or diverged run keeps what it
 * learned (the trainer rolled back to the last good weights). */
static loom_status run_after_training(train_run *r, loom_status st, loom_error *err) {
    const char *dir = r->res->run_dir;
    char path[2048];
    if (r->is_resume && (st == LOOM_OK || st == LOOM_ERR_INTERRUPTED || st == LOOM_ERR_NUMERIC)) {
        loom_error e2 = {0}; /* the checkpoint was taken: the run now has these settings */
        snprintf(path, sizeof path, "%s/config.txt", dir);
        if (loom_file_write_atomic(path, r->cfg, strlen(r->cfg), st ? &e2 : err) && !st)
            st = err->status;
    }
    if (st == LOOM_ERR_INTERRUPTED)
        log_printf(tee, &r->tl, LOOM_LOG_WARN, "stopped: %s in %s: the run can be resumed",
                   err->msg, dir);
    if (st == LOOM_ERR_NUMERIC || st == LOOM_ERR_INTERRUPTED) {
        loom_error e2 = {0};
        snprintf(path, sizeof path, "%s/model.loom", dir);
        if (loom_model_save(r->m, r->cfg, path, &e2) == LOOM_OK)
            log_printf(tee, &r->tl, LOOM_LOG_WARN, "the last good weights are in %s", path);
    }
    return st;
}

static loom_status run_test(train_run *r, loom_error *err);

/* A finished training: history.csv, model.loom, receipt.txt, the checkpoint gone, the test. */
static loom_status run_finish(train_run *r, loom_error *err) {
    loom_run_result *res = r->res;
    const char *dir = res->run_dir;
    char path[2048];
    snprintf(path, sizeof path, "%s/history.csv", dir);
    loom_status st = loom_history_write_csv(&res->hist, path, err);
    snprintf(path, sizeof path, "%s/model.loom", dir);
    if (st || (st = loom_model_save(r->m, r->cfg, path, err)))
        return st;
    log_printf(tee, &r->tl, LOOM_LOG_INFO, "saved %s (%.1f s of training)", path,
               res->hist.seconds);
    receipt_in rin = receipt_inputs(r->m->text, r->cfg, r->train, r->test);
    res->inputs_hash = rin.inputs;
    res->weights_hash = receipt_weights(r->m);
    log_printf(tee, &r->tl, LOOM_LOG_INFO, "receipt: inputs %08x, data %08x, weights %08x",
               rin.inputs, rin.data, res->weights_hash);
    if ((st = receipt_write(dir, rin, NULL, res->weights_hash, err)))
        return st;
    remove(r->ck_path); /* finished: the model file supersedes the checkpoint */
    char prev[2100];
    snprintf(prev, sizeof prev, "%s.prev", r->ck_path);
    remove(prev);
    if (r->rc->is_skip_test)
        return LOOM_OK;
    return run_test(r, err);
}

/* The test of a trained model: metrics.json, confusion.csv, predictions.csv and the log line. A
 * stop request ends it with nothing written; `--resume` then runs the test alone. */
static loom_status run_test(train_run *r, loom_error *err) {
    loom_run_result *res = r->res;
    const char *dir = res->run_dir;
    loom_status st = loom_run_write_test(r->m, r->test, r->rc->test_subset, r->tc.batch, dir,
                                         r->tc.stop_flag, &res->test, err);
    if (st == LOOM_ERR_INTERRUPTED)
        log_printf(tee, &r->tl, LOOM_LOG_WARN,
                   "stopped: %s; the model is complete in %s/model.loom; the test can be resumed",
                   err->msg, dir);
    if (st)
        return st;
    res->has_test = true;
    log_printf(tee, &r->tl, LOOM_LOG_INFO,
               "test: accuracy %.2f%%, macro F1 %.2f%%, loss %.4f (%ld image%s)",
               100 * res->test.accuracy, 100 * res->test.macro_f1, res->test.loss, res->test.n,
               PLURAL(res->test.n));
    return LOOM_OK;
}

/* A run trained to its end but stopped during its test: the saved model tested, its history
 * read for the result, train.log continued. */
static loom_status run_test_only(train_run *r, loom_error *err) {
    const char *dir = r->res->run_dir;
    char path[2048];
    loom_model *m = NULL;
    snprintf(path, sizeof path, "%s/model.loom", dir);
    loom_status st = loom_model_load(&m, NULL, path, err);
    if (st)
        return st;
    loom_model_destroy(r->m);
    r->m = m;
    snprintf(path, sizeof path, "%s/history.csv", dir);
    if ((st = loom_history_read_csv(path, &r->res->hist, err)))
        return st;
    snprintf(path, sizeof path, "%s/train.log", dir);
    if (!(r->tl.f = fopen(path, "a")))
        return loom_error_set(err, LOOM_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    log_printf(tee, &r->tl, LOOM_LOG_INFO, "%s: trained; resuming its test", dir);
    return run_test(r, err);
}

loom_status loom_run_train(const loom_run_config *rc, loom_run_result *res, loom_error *err) {
    memset(res, 0, sizeof *res);
    train_run r = {.rc = rc,
                   .res = res,
                   .tc = rc->train,
                   .data_dir = rc->data_dir ? rc->data_dir : loom_default_data_dir(),
                   .tl = {NULL, rc->train.log, rc->train.log_user}};
    /* a data-parallel job: every process prepares and trains; rank 0 alone writes */
    bool is_job = loom_dist_size() > 1, is_root = loom_dist_rank() == 0;
    loom_status st = run_prepare(&r, err);
    if (st == LOOM_OK && rc->is_check_only)
        goto done;
    if (is_job)
        st = job_check(&r, st, err);
    if (st == LOOM_OK && r.is_test_only) { /* rank 0 tests; the others wait for its verdict */
        st = is_root ? run_test_only(&r, err) : LOOM_OK;
        if (is_job)
            st = loom_dist_agree(st, err);
        goto done;
    }
    if (st == LOOM_OK && is_root)
        st = run_open_dir(&r, err);
    if (is_job)
        st = loom_dist_agree(st, err);
    if (st == LOOM_OK) {
        r.tc.is_data_parallel = is_job;
        if (is_root) {
            run_log_start(&r);
        } else {
            r.tc.is_resume = r.is_resume;
            r.tc.checkpoint_path = NULL;
            r.tc.log = NULL;
            r.tc.progress = NULL;
        }
        st = loom_train(r.m, &r.tc, r.train, r.sp.train, r.sp.n_train, r.train, r.sp.val,
                        r.sp.n_val, NULL, &res->hist, err);
        if (is_root)
            st = run_after_training(&r, st, err);
    }
    if (st == LOOM_OK && is_root)
        st = run_finish(&r, err);
    if (r.tl.f)
        fclose(r.tl.f);
    /* a run that failed before it made a model file or a checkpoint leaves nothing behind; an
     * interrupted run keeps its checkpoint, a diverged one its last good weights */
    if (st && r.is_dir_ours && !rc->is_resume && st != LOOM_ERR_INTERRUPTED &&
        st != LOOM_ERR_NUMERIC && !run_has(res->run_dir, "model.loom") &&
        !run_has(res->run_dir, "checkpoint.loomck") &&
        !run_has(res->run_dir, "checkpoint.loomck.prev"))
        loom_run_discard_dir(res->run_dir, r.is_created);
done:
    if (r.tl.f && r.is_test_only)
        fclose(r.tl.f);
    free(r.cfg);
    free(r.text);
    loom_split_reset(&r.sp);
    loom_model_destroy(r.m);
    loom_dataset_destroy(r.train);
    loom_dataset_destroy(r.test);
    return st;
}

loom_status loom_run_eval(const loom_eval_config *ec, loom_metrics *mt, loom_metrics *mt_tta,
                          loom_dataset **ds_out, loom_error *err) {
    if (ds_out)
        *ds_out = NULL;
    bool is_tta = ec->tta && strcmp(ec->tta, "none") != 0;
    if (is_tta && strcmp(ec->tta, "flip") != 0)
        return loom_error_set(err, LOOM_ERR_ARG, "tta: expected none or flip, got '%s'", ec->tta);
    if (is_tta && !mt_tta)
        return loom_error_set(err, LOOM_ERR_ARG, "tta: no place for its metrics");
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
            st = loom_error_set(err, LOOM_ERR_ARG,
                                "evaluation images and labels go together: give both");
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
        st = loom_error_set(err, LOOM_ERR_ARG, "split must be test, train or val, got '%s'", split);
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
    if (loom_model_n_outputs(m) < ds->n_classes) { /* before any output directory is made */
        st = loom_error_set(err, LOOM_ERR_SHAPE,
                            "%s has %d classes, the data's labels go up to %d: give data of the "
                            "model's classes",
                            ec->model_file, loom_model_n_outputs(m), ds->n_classes - 1);
        goto done;
    }
    int batch = ec->batch > 0 ? ec->batch : 256;
    if (ec->out_dir && (st = loom_mkdir_p(ec->out_dir, err)))
        goto done;
    if (ec->out_dir)
        loom_remove_stale_tmp(ec->out_dir, 0);
    st = ec->out_dir ? eval_write(m, ds, idx, n, batch, ec->out_dir, NULL, mt, err)
                     : loom_evaluate(m, ds, idx, n, NULL, batch, mt, NULL, NULL, err);
    if (st == LOOM_OK && is_tta)
        st = ec->out_dir ? eval_write_as(m, ds, idx, n, batch, true, ec->out_dir, NULL, mt_tta, err)
                         : loom_evaluate_tta(m, ds, idx, n, NULL, batch, mt_tta, NULL, NULL, err);
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
