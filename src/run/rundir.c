/* rundir.c - the run directory, one owner for all who read or write it: config.txt (written
 * and read back through the settings table), history.csv, receipt.txt, what kind of run a
 * directory holds, and creating one without overwriting another. Below the plots, reports and
 * workflows that use it. */
#include "rundir.h"

#include <dirent.h>
#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <strings.h>
#include <stdarg.h>
#include <sys/stat.h>
#include <unistd.h>

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

static bool has_file(const char *dir, const char *name) {
    char p[2048];
    struct stat st;
    snprintf(p, sizeof p, "%s/%s", dir, name);
    return stat(p, &st) == 0;
}

loom_run_kind loom_run_dir_kind(const char *dir) {
    if (has_file(dir, "cv.csv"))
        return LOOM_RUN_CV;
    if (has_file(dir, "trials.csv") || has_file(dir, "tune.txt"))
        return LOOM_RUN_TUNE;
    if (has_file(dir, "model.loom") || has_file(dir, "history.csv") ||
        has_file(dir, "metrics.json") || has_file(dir, "config.txt"))
        return LOOM_RUN_TRAIN;
    return LOOM_RUN_NONE;
}

loom_status loom_run_create_dir(const char *dir, bool is_force, loom_error *err) {
    struct stat st;
    if (stat(dir, &st) == 0) {
        if (!S_ISDIR(st.st_mode))
            return loom_error_set(err, LOOM_ERR_IO, "%s: exists and is not a directory", dir);
        loom_remove_stale_tmp(dir, 2); /* a killed write's leftovers, fold_K/ and best/ too */
        if (is_force)
            return LOOM_OK;
        if (has_file(dir, "model.loom"))
            return loom_error_set(err, LOOM_ERR_EXISTS,
                                  "%s: a run already exists there: overwrite it or choose another "
                                  "directory",
                                  dir);
        return LOOM_OK;
    }
    return loom_mkdir_p(dir, err);
}

/* What train and cv write in a run directory (cv also fold_K/ holding a train run's files), and
 * the stems of the plots drawn there (.png, .svg). */
static const char *const run_files[] = {"config.txt",
                                        "train.log",
                                        "summary.txt",
                                        "history.csv",
                                        "model.loom",
                                        "receipt.txt",
                                        "predictions.csv",
                                        "metrics.json",
                                        "confusion.csv",
                                        "checkpoint.loomck",
                                        "checkpoint.loomck.prev",
                                        "cv.csv",
                                        "cv.json",
                                        "history_mean.csv",
                                        NULL};
static const char *const plot_stems[] = {"learning_curves", "confusion", "confusion_norm",
                                         "architecture",    "trials",    "samples",
                                         "misclassified",   NULL};

static bool is_run_file(const char *name) {
    for (int i = 0; run_files[i]; i++)
        if (strcmp(name, run_files[i]) == 0)
            return true;
    const char *dot = strrchr(name, '.');
    if (!dot || (strcmp(dot, ".png") && strcmp(dot, ".svg")))
        return false;
    for (int i = 0; plot_stems[i]; i++)
        if (strlen(plot_stems[i]) == (size_t)(dot - name) &&
            strncmp(name, plot_stems[i], (size_t)(dot - name)) == 0)
            return true;
    return false;
}

void loom_run_clear_dir(const char *dir) {
    DIR *d = opendir(dir);
    if (!d)
        return;
    for (struct dirent *e; (e = readdir(d));) {
        char p[4096];
        int k = 0;
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        if (is_run_file(e->d_name)) {
            unlink(p);
        } else if (sscanf(e->d_name, "fold_%d", &k) == 1 && k > 0) {
            loom_run_clear_dir(p);
            rmdir(p); /* only when nothing else is in it */
        }
    }
    closedir(d);
}

void loom_run_discard_dir(const char *dir, bool is_created) {
    loom_run_clear_dir(dir);
    if (is_created)
        rmdir(dir);
}

void loom_run_config_init(loom_run_config *rc) {
    memset(rc, 0, sizeof *rc);
    rc->val_split = 0.2;
    rc->split_mode = LOOM_SPLIT_STRATIFIED;
    loom_train_config_init(&rc->train);
}

loom_settings loom_run_settings(loom_run_config *rc) {
    return (loom_settings){.train = &rc->train,
                           .val_split = &rc->val_split,
                           .split_mode = &rc->split_mode,
                           .is_standardize = &rc->is_standardize,
                           .subset = &rc->subset,
                           .test_subset = &rc->test_subset,
                           .is_skip_test = &rc->is_skip_test};
}

char *loom_run_config_text(const loom_run_config *rc) {
    loom_run_config copy = *rc; /* the settings are bound through non-const pointers */
    loom_settings s = loom_run_settings(&copy);
    char *settings = loom_settings_text(&s);
    if (!settings)
        return NULL;
    const char *data_dir = rc->data_dir ? rc->data_dir : loom_default_data_dir();
    const char *cmd = rc->command_line;
    size_t len = strlen(settings) + strlen(rc->model ? rc->model : "") + strlen(data_dir) +
                 (cmd ? strlen(cmd) : 0) + 128;
    char *text = malloc(len);
    if (text)
        snprintf(text, len, "loom_version=%s\nmodel=%s\ndata_dir=%s\n%sthreads=%d\n%s%s%s",
                 LOOM_VERSION, rc->model ? rc->model : "", data_dir, settings, loom_get_threads(),
                 cmd ? "command=" : "", cmd ? cmd : "", cmd ? "\n" : "");
    free(settings);
    return text;
}

char *loom_config_with_classes(char *config, const loom_dataset *ds) {
    if (!config || !ds || !ds->class_names)
        return config;
    cJSON *a = cJSON_CreateArray();
    for (int k = 0; a && k < ds->n_classes; k++)
        if (!cJSON_AddItemToArray(a, cJSON_CreateString(ds->class_names[k]))) {
            cJSON_Delete(a);
            a = NULL;
        }
    char *json = a ? cJSON_PrintUnformatted(a) : NULL;
    cJSON_Delete(a);
    size_t len = json ? strlen(config) + strlen(json) + 16 : 0;
    char *out = json ? malloc(len) : NULL;
    if (out)
        snprintf(out, len, "%sclasses=%s\n", config, json);
    free(json);
    free(config);
    return out;
}

loom_status loom_run_config_load(loom_run_config *rc, const char *run_dir, char **owner,
                                 loom_error *err) {
    char path[2048];
    snprintf(path, sizeof path, "%s/config.txt", run_dir);
    *owner = NULL;
    struct stat sb;
    char *text = NULL;
    size_t len = 0;
    loom_status st = LOOM_OK;
    /* in a job of several processes rank 0 reads it and sends it (the others' hosts need not
     * see the run directory) */
    bool is_job = loom_dist_size() > 1;
    if (loom_dist_rank() == 0) {
        if (stat(path, &sb) != 0 && errno == ENOENT)
            st = loom_error_set(err, LOOM_ERR_ARG,
                                "%s: no config.txt: not a run directory, or a run stopped before "
                                "it was set up (start it again)",
                                run_dir);
        else
            st = loom_file_read_all(path, &text, &len, err);
    }
    if (is_job && (st = loom_dist_agree(st, err)) == LOOM_OK) {
        dist_bcast(&len, sizeof len, 0);
        if (loom_dist_rank() > 0 && !(text = calloc(len + 1, 1)))
            return loom_error_set(err, LOOM_ERR_NOMEM, "out of memory"); /* ends the job */
        dist_bcast(text, len, 0);
    }
    if (st)
        return st;
    loom_run_config_init(rc);
    loom_settings s = loom_run_settings(rc);
    /* split the text into NUL-terminated values in place: strings point into it */
    for (char *p = text; *p && st == LOOM_OK;) {
        char *eol = strchr(p, '\n');
        if (eol)
            *eol = '\0';
        char *eq = strchr(p, '=');
        if (eq) {
            *eq = '\0';
            const char *k = p, *v = eq + 1;
            int i = loom_setting_find(k);
            loom_error e2 = {0};
            if (i >= 0 && (st = loom_setting_set(&s, i, v, &e2)))
                loom_error_set(err, LOOM_ERR_FORMAT, "%s: %s", path, e2.msg);
            else if (!strcmp(k, "model"))
                rc->model = v;
            else if (!strcmp(k, "data_dir"))
                rc->data_dir = v;
            else if (!strcmp(k, "command"))
                rc->command_line = v;
        }
        if (!eol)
            break;
        p = eol + 1;
    }
    if (!st && !rc->model)
        st = loom_error_set(err, LOOM_ERR_FORMAT, "%s: no model= line", path);
    if (st) {
        free(text);
        return st;
    }
    rc->out_dir = run_dir;
    rc->is_resume = true;
    *owner = text;
    return LOOM_OK;
}

loom_status loom_history_write_csv(const loom_history *h, const char *path, loom_error *err) {
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (!f)
        return loom_error_set(err, LOOM_ERR_NOMEM, "%s: out of memory", path);
    fprintf(f, "epoch,loss,acc,val_loss,val_acc,lr,seconds\n");
    for (int i = 0; i < h->n_epochs; i++) {
        const loom_epoch *e = &h->epochs[i];
        fprintf(f, "%d,%.6f,%.6f,%.6f,%.6f,%.6g,%.3f\n", e->epoch, e->loss, e->acc, e->val_loss,
                e->val_acc, e->lr, e->seconds);
    }
    loom_status st = fclose(f) != 0 ? loom_error_set(err, LOOM_ERR_NOMEM, "%s: out of memory", path)
                                    : loom_file_write_atomic(path, text, len, err);
    free(text);
    return st;
}

/* One number of a history.csv cell: "" and "nan" are NaN where the column may be missing. */
static bool history_cell(const char *s, bool is_optional, double *out) {
    if (is_optional && (!*s || strcasecmp(s, "nan") == 0)) {
        *out = NAN;
        return true;
    }
    char *end = NULL;
    errno = 0;
    *out = strtod(s, &end);
    return *s && !*end && !errno;
}

loom_status loom_history_read_csv(const char *path, loom_history *h, loom_error *err) {
    memset(h, 0, sizeof *h);
    char *text = NULL;
    loom_status st = loom_file_read_all(path, &text, NULL, err);
    if (st)
        return st;
    /* columns: epoch, loss, acc required; val_loss, val_acc, lr, seconds optional */
    static const char *const names[7] = {"epoch",   "loss", "acc",    "val_loss",
                                         "val_acc", "lr",   "seconds"};
    int col[7] = {-1, -1, -1, -1, -1, -1, -1}, n_cols = 0, cap = 0, line = 0;
    char *save = NULL;
    for (char *l = strtok_r(text, "\n", &save); l && !st; l = strtok_r(NULL, "\n", &save)) {
        line++;
        l[strcspn(l, "\r")] = '\0';
        char *f[32];
        int n = 0;
        for (char *c = l;; c++) {
            if (n == 32)
                break;
            f[n++] = c;
            c = strchr(c, ',');
            if (!c)
                break;
            *c = '\0';
        }
        if (line == 1) {
            n_cols = n;
            for (int i = 0; i < n; i++)
                for (int k = 0; k < 7; k++)
                    if (strcmp(f[i], names[k]) == 0)
                        col[k] = i;
            if (col[0] < 0 || col[1] < 0 || col[2] < 0)
                st = loom_error_set(err, LOOM_ERR_FORMAT,
                                    "%s: expected a header with epoch, loss and acc", path);
            continue;
        }
        if (n != n_cols) {
            st = loom_error_set(err, LOOM_ERR_FORMAT, "%s:%d: %d fields, the header has %d", path,
                                line, n, n_cols);
            break;
        }
        if (h->n_epochs == cap) {
            cap = cap ? 2 * cap : 64;
            loom_epoch *e = realloc(h->epochs, sizeof *e * (size_t)cap);
            if (!e) {
                st = loom_error_set(err, LOOM_ERR_NOMEM, "%s: out of memory", path);
                break;
            }
            h->epochs = e;
        }
        double v[7];
        for (int k = 0; k < 7 && !st; k++) {
            if (col[k] < 0)
                v[k] = NAN;
            else if (!history_cell(f[col[k]], k >= 3, &v[k]))
                st = loom_error_set(err, LOOM_ERR_FORMAT, "%s:%d: %s '%s' is not a number", path,
                                    line, names[k], f[col[k]]);
        }
        if (st)
            break;
        h->epochs[h->n_epochs++] = (loom_epoch){.epoch = (int)v[0],
                                                .loss = v[1],
                                                .acc = v[2],
                                                .val_loss = v[3],
                                                .val_acc = v[4],
                                                .lr = v[5],
                                                .seconds = isnan(v[6]) ? 0 : v[6]};
    }
    if (!st && line == 0)
        st = loom_error_set(err, LOOM_ERR_FORMAT, "%s: empty", path);
    else if (!st && h->n_epochs == 0)
        st = loom_error_set(err, LOOM_ERR_FORMAT, "%s: no epochs after the header", path);
    free(text);
    if (st)
        loom_history_reset(h);
    for (int i = 0; !st && i < h->n_epochs; i++)
        h->seconds += h->epochs[i].seconds;
    return st;
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
