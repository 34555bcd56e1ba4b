/* plot_run.c - loom_plot_run: every plot a run directory's files allow (curves, confusion
 * matrices, architecture, trials, samples, mistakes), each through its plot file. */
#include "plot.h"
#include "../core/core.h"

#include <string.h>

/* ---- everything a run directory allows --------------------------------------------------------
 */

typedef struct {
    const char *dir;
    bool is_svg;
    loom_log_fn log;
    void *user;
    loom_status first;
    loom_error *err;
    int n_written;
} run_ctx;

/* Records a plot's outcome: the first error is kept, every file written is logged. */
static void run_note(run_ctx *r, loom_status st, const loom_error *e, const char *out) {
    if (st) {
        if (!r->first) {
            r->first = st;
            if (r->err)
                *r->err = *e;
        } else
            log_printf(r->log, r->user, LOOM_LOG_WARN, "%s", e->msg);
        return;
    }
    r->n_written++;
    log_printf(r->log, r->user, LOOM_LOG_INFO, "%s", out);
}

typedef loom_status (*run_plot_fn)(run_ctx *r, const void *arg, const char *out, loom_error *err);

/* Calls fn for name.png and, with --svg, name.svg. */
static void run_plot(run_ctx *r, const char *name, run_plot_fn fn, const void *arg) {
    const char *exts[2] = {".png", ".svg"};
    for (int e = 0; e < (r->is_svg ? 2 : 1); e++) {
        char out[2048];
        snprintf(out, sizeof out, "%s/%s%s", r->dir, name, exts[e]);
        loom_error e1 = {0};
        loom_status st = fn(r, arg, out, &e1);
        run_note(r, st, &e1, out);
        if (st)
            return;
    }
}

static loom_status rp_history(run_ctx *r, const void *arg, const char *out, loom_error *err) {
    (void)arg;
    return loom_plot_history(r->dir, out, err);
}
static loom_status rp_confusion(run_ctx *r, const void *arg, const char *out, loom_error *err) {
    (void)arg;
    char in[2048];
    return loom_plot_confusion(plot_path(in, sizeof in, r->dir, "confusion.csv"), false, out, err);
}
static loom_status rp_confusion_norm(run_ctx *r, const void *arg, const char *out,
                                     loom_error *err) {
    (void)arg;
    char in[2048];
    return loom_plot_confusion(plot_path(in, sizeof in, r->dir, "confusion.csv"), true, out, err);
}
static loom_status rp_arch(run_ctx *r, const void *arg, const char *out, loom_error *err) {
    (void)arg;
    return loom_plot_architecture(r->dir, out, err);
}
static loom_status rp_trials(run_ctx *r, const void *arg, const char *out, loom_error *err) {
    (void)arg;
    char in[2048];
    return loom_plot_trials(plot_path(in, sizeof in, r->dir, "trials.csv"), out, err);
}

/* The dataset plots: arg is the dataset (training set for the samples, test set for the
 * mistakes, whose predictions.csv is in the run directory). */
static loom_status rp_samples(run_ctx *r, const void *arg, const char *out, loom_error *err) {
    (void)r;
    return loom_plot_samples(arg, 8, out, err);
}
static loom_status rp_mistakes(run_ctx *r, const void *arg, const char *out, loom_error *err) {
    char in[2048];
    return loom_plot_misclassified(arg, plot_path(in, sizeof in, r->dir, "predictions.csv"), 30,
                                   out, err);
}

/* The run's dataset part; when its data_dir is gone (a run from another machine), the default
 * data directory ($LOOM_DATA). A warning and a status when neither loads. */
static loom_status load_data(const char *data_dir, const char *part, loom_dataset **ds,
                             run_ctx *r) {
    loom_error e = {0};
    loom_status st = loom_dataset_load_dir(ds, data_dir, part, &e);
    const char *def = loom_default_data_dir();
    if (st && strcmp(def, data_dir) != 0 && loom_dataset_load_dir(ds, def, part, NULL) == LOOM_OK) {
        log_printf(r->log, r->user, LOOM_LOG_WARN, "%s; using %s instead", e.msg, def);
        return LOOM_OK;
    }
    if (st)
        log_printf(r->log, r->user, LOOM_LOG_WARN, "no %s: %s",
                   strcmp(part, "test") ? "sample grid" : "misclassified grid", e.msg);
    return st;
}

loom_status loom_plot_run(const char *run_dir, bool is_svg, loom_log_fn log, void *user,
                          loom_error *err) {
    if (!plot_is_dir(run_dir))
        return loom_error_set(err, LOOM_ERR_IO, "%s: not a directory", run_dir);
    run_ctx r = {run_dir, is_svg, log, user, LOOM_OK, err, 0};
    char path[2048], data_dir[1024];
    bool has_any = false;

    if (plot_has_history(run_dir)) {
        has_any = true;
        run_plot(&r, "learning_curves", rp_history, NULL);
    }
    if (plot_exists(plot_path(path, sizeof path, run_dir, "confusion.csv"))) {
        has_any = true;
        run_plot(&r, "confusion", rp_confusion, NULL);
        run_plot(&r, "confusion_norm", rp_confusion_norm, NULL);
    }
    if (plot_exists(plot_path(path, sizeof path, run_dir, "summary.txt"))) {
        has_any = true;
        run_plot(&r, "architecture", rp_arch, NULL);
    }
    if (plot_exists(plot_path(path, sizeof path, run_dir, "trials.csv"))) {
        has_any = true;
        run_plot(&r, "trials", rp_trials, NULL);
    }
    if (plot_run_config(run_dir, "data_dir", data_dir, sizeof data_dir)) {
        has_any = true;
        plot_path(path, sizeof path, run_dir, "predictions.csv");
        bool has_pred = plot_exists(path);
        for (int part = 0; part < (has_pred ? 2 : 1); part++) {
            loom_dataset *ds = NULL;
            loom_status st = load_data(data_dir, part ? "test" : "train", &ds, &r);
            if (st)
                continue;
            if (part == 0)
                run_plot(&r, "samples", rp_samples, ds);
            else
                run_plot(&r, "misclassified", rp_mistakes, ds);
            loom_dataset_destroy(ds);
        }
    }
    if (!has_any && !r.first)
        return loom_error_set(err, LOOM_ERR_IO,
                              "%s: nothing to plot: no history.csv, confusion.csv, summary.txt, "
                              "trials.csv or config.txt there",
                              run_dir);
    return r.first;
}
