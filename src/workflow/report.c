/* report.c - `loom report`: one Markdown report of a set of runs with its pictures. Reads only
 * the files the runs wrote (config.txt, summary.txt, history.csv, metrics.json, confusion.csv,
 * predictions.csv, cv.csv/cv.json, trials.csv) and draws through the plot module. */
#include "../core/core.h"
#include "../run/rundir.h"
#include "../plot/plot.h"
#include "tune.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

typedef enum { RUN_TRAIN, RUN_CV, RUN_TUNE } run_kind;

typedef struct {
    const char *dir;
    run_kind kind;
    char name[128]; /* model name (config.txt model=) or the directory's base name */
    char slug[160]; /* unique file-name prefix for its pictures */
    bool is_dup;    /* another run has the same directory name */
    char *config;   /* config.txt, may be NULL */
} run_info;

static bool exists(const char *dir, const char *file) {
    char p[2048];
    struct stat st;
    snprintf(p, sizeof p, "%s/%s", dir, file);
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

static char *read_opt(const char *dir, const char *file) {
    char p[2048], *text = NULL;
    snprintf(p, sizeof p, "%s/%s", dir, file);
    loom_error e = {0};
    if (loom_file_read_all(p, &text, NULL, &e) != LOOM_OK)
        return NULL;
    return text;
}

/* The Markdown line of a picture drawn into out_dir/img/<slug>_<what>.png, or a note saying
 * why it was not drawn. */
static void picture(FILE *md, const loom_report_config *rc, const char *slug, const char *what,
                    const char *caption, loom_status st_or_draw, const loom_error *e) {
    (void)rc;
    if (st_or_draw == LOOM_OK)
        fprintf(md, "![%s](img/%s_%s.png)\n\n", caption, slug, what);
    else
        fprintf(md, "_(%s: not drawn: %s)_\n\n", caption, e->msg);
}

static void img_path(const loom_report_config *rc, const char *slug, const char *what, char *buf,
                     size_t n) {
    snprintf(buf, n, "%s/img/%s_%s.png", rc->out_dir, slug, what);
}

/* ---- tables from the runs' files ---- */

static void per_class_table(FILE *md, const char *metrics_json) {
    cJSON *root = cJSON_Parse(metrics_json);
    if (!root)
        return;
    cJSON *classes = cJSON_GetObjectItem(root, "classes");
    fprintf(md, "| class | precision | recall | F1 | support |\n|---|---|---|---|---|\n");
    cJSON *c;
    cJSON_ArrayForEach(c, classes) {
        cJSON *nm = cJSON_GetObjectItem(c, "name");
        fprintf(md, "| %s | %.2f%% | %.2f%% | %.2f%% | %d |\n",
                cJSON_IsString(nm) ? nm->valuestring : "?",
                100 * cJSON_GetNumberValue(cJSON_GetObjectItem(c, "precision")),
                100 * cJSON_GetNumberValue(cJSON_GetObjectItem(c, "recall")),
                100 * cJSON_GetNumberValue(cJSON_GetObjectItem(c, "f1")),
                (int)cJSON_GetNumberValue(cJSON_GetObjectItem(c, "support")));
    }
    fprintf(md, "| **macro avg** | %.2f%% | %.2f%% | %.2f%% | |\n",
            100 * cJSON_GetNumberValue(cJSON_GetObjectItem(root, "macro_precision")),
            100 * cJSON_GetNumberValue(cJSON_GetObjectItem(root, "macro_recall")),
            100 * cJSON_GetNumberValue(cJSON_GetObjectItem(root, "macro_f1")));
    int n_test = (int)cJSON_GetNumberValue(cJSON_GetObjectItem(root, "n"));
    fprintf(md, "\nTest accuracy **%.2f%%** on %d image%s.\n\n",
            100 * cJSON_GetNumberValue(cJSON_GetObjectItem(root, "accuracy")), n_test,
            PLURAL(n_test));
    cJSON_Delete(root);
}

/* How a CSV column reads in the report: accuracies, F1 and a score other than a loss in percent
 * with two decimals, losses with four, seconds with one; anything else as written. */
typedef enum { COL_TEXT, COL_PERCENT, COL_LOSS, COL_SECONDS } col_kind;

static col_kind column_kind(const char *name, bool is_score_loss) {
    if (strcmp(name, "seconds") == 0)
        return COL_SECONDS;
    if (strstr(name, "loss") || (strcmp(name, "score") == 0 && is_score_loss))
        return COL_LOSS;
    if (strstr(name, "acc") || strstr(name, "f1") || strcmp(name, "score") == 0)
        return COL_PERCENT;
    return COL_TEXT;
}

static void cell(FILE *md, const char *v, col_kind kind) {
    char *end;
    double x = strtod(v, &end);
    bool is_num = *v && *end == '\0';
    if (is_num && kind == COL_PERCENT)
        fprintf(md, "%.2f%%", 100 * x);
    else if (is_num && kind == COL_LOSS)
        fprintf(md, "%.4f", x);
    else if (is_num && kind == COL_SECONDS)
        fprintf(md, "%.1f", x);
    else
        fputs(v, md);
}

/* A CSV file as a Markdown table (at most max_rows data rows), its numbers as people read them
 * (column_kind; is_score_loss: a "score" column holds a loss). */
static void csv_table(FILE *md, const char *path, int max_rows, bool is_score_loss) {
    plot_csv t = {0};
    loom_error e = {0};
    if (plot_csv_load(&t, path, &e) != LOOM_OK) {
        fprintf(md, "_(%s)_\n\n", e.msg);
        plot_csv_reset(&t);
        return;
    }
    col_kind kinds[128];
    int nc = t.n_cols < 128 ? t.n_cols : 128;
    fputs("|", md);
    for (int c = 0; c < nc; c++) {
        kinds[c] = column_kind(t.cells[c], is_score_loss);
        fprintf(md, " %s |", t.cells[c]);
    }
    fputs("\n|", md);
    for (int c = 0; c < nc; c++)
        fputs(kinds[c] == COL_TEXT ? "---|" : "---:|", md);
    fputs("\n", md);
    for (int r = 0; r < t.n_rows && r < max_rows; r++) {
        fputs("|", md);
        for (int c = 0; c < nc; c++) {
            fputs(" ", md);
            cell(md, plot_csv_cell(&t, r, c), kinds[c]);
            fputs(" |", md);
        }
        fputs("\n", md);
    }
    fputc('\n', md);
    plot_csv_reset(&t);
}

static void fenced(FILE *md, const char *text) {
    fprintf(md, "```\n%s%s```\n\n", text, text[0] && text[strlen(text) - 1] == '\n' ? "" : "\n");
}

/* The seconds a run's own files record: its epochs (history.csv), its folds (cv.csv), or its
 * executions and the best trial's retraining (executions.csv, best/history.csv); 0 if none. */
static double csv_seconds(const char *dir, const char *file, const char *column) {
    char p[2048];
    snprintf(p, sizeof p, "%s/%s", dir, file);
    plot_csv t = {0};
    loom_error e = {0};
    double s = 0;
    if (plot_csv_load(&t, p, &e) == LOOM_OK) {
        int c = plot_csv_col(&t, column);
        for (int r = 0; c >= 0 && r < t.n_rows; r++)
            s += atof(plot_csv_cell(&t, r, c));
    }
    plot_csv_reset(&t);
    return s;
}

static double run_seconds(const char *dir) {
    if (exists(dir, "cv.csv"))
        return csv_seconds(dir, "cv.csv", "seconds");
    if (exists(dir, "executions.csv"))
        return csv_seconds(dir, "executions.csv", "seconds") +
               csv_seconds(dir, "best/history.csv", "seconds");
    return csv_seconds(dir, "history.csv", "seconds");
}

/* A duration as people read it: "42.5 s", "12.3 min", "2.1 h". */
static const char *fmt_duration(double s, char *buf, size_t n) {
    if (s < 60)
        snprintf(buf, n, "%.1f s", s);
    else if (s < 3600)
        snprintf(buf, n, "%.1f min", s / 60);
    else
        snprintf(buf, n, "%.1f h", s / 3600);
    return buf;
}

/* The report's title: the one given, else the runs' names ("loom report: a, b and c"). */
static void report_title(const loom_report_config *rc, const run_info *runs, char *buf, size_t n) {
    if (rc->title) {
        snprintf(buf, n, "%s", rc->title);
        return;
    }
    size_t len = (size_t)snprintf(buf, n, "loom report: ");
    int shown = rc->n_runs <= 6 ? rc->n_runs : 5;
    for (int i = 0; i < shown && len < n; i++)
        len += (size_t)snprintf(buf + len, n - len, "%s%s",
                                i == 0                ? ""
                                : i == rc->n_runs - 1 ? " and "
                                                      : ", ",
                                runs[i].slug);
    if (shown < rc->n_runs && len < n)
        snprintf(buf + len, n - len, " and %d more runs", rc->n_runs - shown);
}

/* ---- sections ---- */

static void provenance(FILE *md, const loom_report_config *rc, const run_info *runs, int n) {
    char host[256] = "?", cpu[256] = "?";
    gethostname(host, sizeof host);
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (f) {
        char line[512];
        while (fgets(line, sizeof line, f))
            if (strncmp(line, "model name", 10) == 0) {
                char *c = strchr(line, ':');
                if (c) {
                    snprintf(cpu, sizeof cpu, "%s", c + 2);
                    cpu[strcspn(cpu, "\n")] = '\0';
                }
                break;
            }
        fclose(f);
    }
    time_t now = time(NULL);
    char when[64];
    strftime(when, sizeof when, "%Y-%m-%d %H:%M UTC", gmtime(&now));
    fprintf(md, "## How these numbers were produced\n\n");
    fprintf(md, "- loom %s, report written %s on %s (%s, %ld cores).\n", LOOM_VERSION, when, host,
            cpu, sysconf(_SC_NPROCESSORS_ONLN));
    if (rc->command_line)
        fprintf(md, "- Report command: `%s`\n", rc->command_line);
    double train = 0;
    for (int i = 0; i < n; i++)
        train += run_seconds(runs[i].dir);
    if (rc->wall_seconds > 0 && rc->n_earlier == 0)
        fprintf(md, "- Wall time of the whole study: %.0f s (%.1f min).\n", rc->wall_seconds,
                rc->wall_seconds / 60);
    else if (rc->wall_seconds > 0)
        fprintf(md,
                "- The study ran in several sessions (`--resume`): %d of its %d step%s had "
                "finished or begun before the last session, which took %.0f s (%.1f min).\n",
                rc->n_earlier, n, PLURAL(n), rc->wall_seconds, rc->wall_seconds / 60);
    char d[32];
    if (train > 0)
        fprintf(md,
                "- Training and validation time recorded by the runs themselves (epochs, folds, "
                "executions; the whole of each run, whatever the session): %s.\n",
                fmt_duration(train, d, sizeof d));
    fprintf(md, "- Every run's full configuration is in its `config.txt` (a search's in `tune.txt` "
                "and `best/config.txt`); the commands:\n\n");
    fprintf(md, "| run | kind | seed | threads | training time | command |\n"
                "|---|---|---:|---:|---:|---|\n");
    for (int i = 0; i < n; i++) {
        const run_info *r = &runs[i];
        char seed[64] = "?", thr[32] = "?", cmd[1024] = "?";
        /* a search: its seed in tune.txt, the threads and its command in its best's config */
        char *own = r->kind == RUN_TUNE ? read_opt(r->dir, "tune.txt") : NULL;
        char *best = r->kind == RUN_TUNE ? read_opt(r->dir, "best/config.txt") : NULL;
        const char *cfg = r->kind == RUN_TUNE ? best : r->config;
        if (cfg) {
            loom_config_get(cfg, "seed", seed, sizeof seed);
            loom_config_get(cfg, "threads", thr, sizeof thr);
            loom_config_get(cfg, "command", cmd, sizeof cmd);
        }
        if (own)
            loom_config_get(own, "seed", seed, sizeof seed);
        if (own && !best) /* no retrained best (--no-best): the search's own command */
            loom_config_get(own, "command", cmd, sizeof cmd);
        free(own);
        free(best);
        double s = run_seconds(r->dir);
        fprintf(md, "| %s | %s | %s | %s | %s | `%s` |\n", r->slug,
                r->kind == RUN_TUNE ? "search"
                : r->kind == RUN_CV ? "cross-validation"
                                    : "training",
                seed, thr, s > 0 ? fmt_duration(s, d, sizeof d) : "-", cmd);
    }
    fprintf(md, "\n");
}

static void dataset_section(FILE *md, const loom_report_config *rc, const char *data_dir) {
    fprintf(md, "## The data\n\n");
    loom_dataset *train = NULL, *test = NULL;
    loom_error e = {0};
    if (loom_dataset_load_dir(&train, data_dir, "train", &e) ||
        loom_dataset_load_dir(&test, data_dir, "test", &e)) {
        fprintf(md, "_(dataset not readable: %s)_\n\n", e.msg);
        loom_dataset_destroy(train);
        return;
    }
    fprintf(md, "`%s`: %d training and %d test images of %dx%dx%d, %d classes.\n\n", data_dir,
            train->n, test->n, train->H, train->W, train->C, train->n_classes);
    int ctr[LOOM_MAX_CLASSES] = {0}, cte[LOOM_MAX_CLASSES] = {0};
    loom_dataset_class_counts(train, NULL, train->n, ctr);
    loom_dataset_class_counts(test, NULL, test->n, cte);
    fprintf(md, "| label | class | training | test |\n|---|---|---|---|\n");
    for (int k = 0; k < train->n_classes; k++) {
        char b[32];
        fprintf(md, "| %d | %s | %d | %d |\n", k, loom_class_name(train, k, b), ctr[k], cte[k]);
    }
    fprintf(md, "\n");
    char out[2048];
    img_path(rc, "data", "samples", out, sizeof out);
    loom_status st = loom_plot_samples(train, 10, out, &e);
    if (st == LOOM_OK)
        log_printf(rc->log, rc->log_user, LOOM_LOG_INFO, "%s", out);
    picture(md, rc, "data", "samples", "ten training images of each class", st, &e);
    loom_dataset_destroy(train);
    loom_dataset_destroy(test);
}

static void train_section(FILE *md, const loom_report_config *rc, const run_info *r,
                          const loom_dataset *test) {
    char out[2048], src[2048];
    loom_error e = {0};
    loom_status st;
    fprintf(md, "### %s%s\n\n", r->slug, r->kind == RUN_CV ? " (cross-validation)" : "");
    /* the training's augmentation and arithmetic, when not the plain ones (config.txt) */
    char aug[512], prec[32];
    if (r->config && loom_config_get(r->config, "augment", aug, sizeof aug) &&
        strcmp(aug, "shift:0") != 0)
        fprintf(md, "Augmentation: `%s`.\n\n", aug);
    if (r->config && loom_config_get(r->config, "precision", prec, sizeof prec) &&
        strcmp(prec, "fp32") != 0)
        fprintf(md, "Precision of the 3x3 stride-1 convolutions in training: `%s`.\n\n", prec);
    char *summary = read_opt(r->dir, "summary.txt");
    if (summary) {
        fenced(md, summary);
        free(summary);
        img_path(rc, r->slug, "architecture", out, sizeof out);
        snprintf(src, sizeof src, "%s/summary.txt", r->dir);
        st = loom_plot_architecture(src, out, &e);
        picture(md, rc, r->slug, "architecture", "architecture", st, &e);
    }
    if (exists(r->dir, "history.csv") || r->kind == RUN_CV) {
        img_path(rc, r->slug, "curves", out, sizeof out);
        st = loom_plot_history(r->dir, out, &e);
        picture(md, rc, r->slug, "curves",
                r->kind == RUN_CV ? "learning curves, mean and std over the folds"
                                  : "learning curves",
                st, &e);
    }
    char *metrics = read_opt(r->dir, "metrics.json");
    if (metrics) {
        fprintf(md, "Per-class report on the test set:\n\n");
        per_class_table(md, metrics);
        free(metrics);
    }
    if (exists(r->dir, "confusion.csv")) {
        snprintf(src, sizeof src, "%s/confusion.csv", r->dir);
        img_path(rc, r->slug, "confusion", out, sizeof out);
        st = loom_plot_confusion(src, false, out, &e);
        picture(md, rc, r->slug, "confusion", "confusion matrix, counts", st, &e);
        img_path(rc, r->slug, "confusion_norm", out, sizeof out);
        st = loom_plot_confusion(src, true, out, &e);
        picture(md, rc, r->slug, "confusion_norm", "confusion matrix, row-normalised", st, &e);
    }
    if (test && exists(r->dir, "predictions.csv")) {
        snprintf(src, sizeof src, "%s/predictions.csv", r->dir);
        img_path(rc, r->slug, "misclassified", out, sizeof out);
        st = loom_plot_misclassified(test, src, 24, out, &e);
        picture(md, rc, r->slug, "misclassified", "the most confident mistakes", st, &e);
    }
}

static void cv_section(FILE *md, const run_info *r) {
    if (exists(r->dir, "cv.csv")) {
        char path[2048];
        snprintf(path, sizeof path, "%s/cv.csv", r->dir);
        fprintf(md, "Cross-validation, one row per fold:\n\n");
        csv_table(md, path, 1000, false);
    }
    char *js = read_opt(r->dir, "cv.json");
    if (js) {
        cJSON *root = cJSON_Parse(js);
        cJSON *mean = root ? cJSON_GetObjectItem(root, "mean") : NULL;
        cJSON *std = root ? cJSON_GetObjectItem(root, "std") : NULL;
        cJSON *m = mean ? cJSON_GetObjectItem(mean, "val_acc") : NULL;
        cJSON *sd = std ? cJSON_GetObjectItem(std, "val_acc") : NULL;
        if (cJSON_IsNumber(m) && cJSON_IsNumber(sd))
            fprintf(md, "Mean validation accuracy **%.2f%% ± %.2f%%**.\n\n", 100 * m->valuedouble,
                    100 * sd->valuedouble);
        cJSON_Delete(root);
        free(js);
    }
}

static void tune_section(FILE *md, const loom_report_config *rc, const run_info *r) {
    if (!exists(r->dir, "trials.csv"))
        return;
    char out[2048], src[2048], objective[32] = "val_acc";
    loom_error e = {0};
    char *settings = read_opt(r->dir, "tune.txt");
    if (settings)
        loom_config_get(settings, "objective", objective, sizeof objective);
    free(settings);
    snprintf(src, sizeof src, "%s/trials.csv", r->dir);
    fprintf(md,
            "Every trial of the search (score: %s, the mean over executions of the best "
            "epoch):\n\n",
            objective);
    csv_table(md, src, 200, strcmp(objective, "val_loss") == 0);
    img_path(rc, r->slug, "trials", out, sizeof out);
    loom_status st = loom_plot_trials(src, out, &e);
    picture(md, rc, r->slug, "trials", "score against each hyperparameter", st, &e);
    char *best_text = read_opt(r->dir, "best/model.txt");
    if (best_text) {
        fprintf(md, "The best trial's model, retrained:\n\n");
        fenced(md, best_text);
        free(best_text);
    }
}

/* Reads what kind of run each directory holds, its config.txt, name and slug. */
static loom_status read_runs(const loom_report_config *rc, run_info *runs, loom_error *err) {
    for (int i = 0; i < rc->n_runs; i++) {
        run_info *r = &runs[i];
        r->dir = rc->run_dirs[i];
        loom_run_kind kind = loom_run_dir_kind(r->dir);
        if (kind == LOOM_RUN_NONE)
            return loom_error_set(err, LOOM_ERR_IO,
                                  "%s: not a run directory (no history.csv, cv.csv or trials.csv)",
                                  r->dir);
        r->kind = kind == LOOM_RUN_CV ? RUN_CV : kind == LOOM_RUN_TUNE ? RUN_TUNE : RUN_TRAIN;
        r->config = read_opt(r->dir, "config.txt");
        const char *base = strrchr(r->dir, '/');
        base = base && base[1] ? base + 1 : r->dir;
        if (!r->config || !loom_config_get(r->config, "model", r->name, sizeof r->name))
            snprintf(r->name, sizeof r->name, "%s", base);
        snprintf(r->slug, sizeof r->slug, "%s", base);
    }
    /* two runs of one name (p1/run, p2/run) are named by their paths, so that neither's
     * pictures replace the other's; still the same (a directory given twice): numbered */
    for (int i = 0; i < rc->n_runs; i++) {
        for (int j = 0; j < rc->n_runs; j++)
            runs[i].is_dup = runs[i].is_dup || (j != i && strcmp(runs[i].slug, runs[j].slug) == 0);
    }
    for (int i = 0; i < rc->n_runs; i++) {
        if (!runs[i].is_dup)
            continue;
        const char *d = runs[i].dir;
        while (d[0] == '.' && d[1] == '/')
            d += 2;
        snprintf(runs[i].slug, sizeof runs[i].slug, "%s", d);
        size_t len = strlen(runs[i].slug);
        while (len > 1 && runs[i].slug[len - 1] == '/')
            runs[i].slug[--len] = '\0';
    }
    for (int i = rc->n_runs - 1; i >= 0; i--) { /* from the end: earlier slugs still unnumbered */
        run_info *r = &runs[i];
        int same = 0;
        for (int j = 0; j < i; j++)
            same += strcmp(runs[j].slug, r->slug) == 0;
        size_t len = strlen(r->slug);
        if (same > 0 && len + 12 < sizeof r->slug)
            snprintf(r->slug + len, sizeof r->slug - len, "-%d", same + 1);
    }
    for (int i = 0; i < rc->n_runs; i++)
        for (char *c = runs[i].slug; *c; c++)
            if (*c == '/' || *c == ' ')
                *c = '_';
    return LOOM_OK;
}

/* McNemar's p-value of every pair as a picture, when there are three pairs or more. */
static void pvalue_picture(FILE *md, const loom_report_config *rc, const loom_compare_result *cr) {
    int n = cr->n_runs;
    if (cr->n_pairs < 3 || n > 64)
        return;
    double *p = malloc(sizeof(double) * (size_t)n * n);
    const char **labels = malloc(sizeof *labels * (size_t)n);
    loom_error e = {0};
    loom_status st = LOOM_ERR_NOMEM;
    char out[2048];
    if (p && labels) {
        for (int i = 0; i < n * n; i++)
            p[i] = NAN;
        for (int i = 0; i < cr->n_pairs; i++) {
            int a = cr->pairs[i][0], b = cr->pairs[i][1];
            p[(size_t)a * n + b] = p[(size_t)b * n + a] = cr->tests[i].p;
        }
        for (int i = 0; i < n; i++)
            labels[i] = cr->labels[i];
        img_path(rc, "all", "mcnemar", out, sizeof out);
        st = loom_plot_pvalues(out, labels, n, p, 0.05, &e);
    } else {
        loom_error_set(&e, st, "out of memory");
    }
    picture(md, rc, "all", "mcnemar", "McNemar's test, p-value of every pair", st, &e);
    free(p);
    free(labels);
}

/* The comparison table and the overlays of validation accuracy (every run; the sequence
 * models on their own). Failures become notes in the report, not errors. */
static void results_section(FILE *md, const loom_report_config *rc, const run_info *runs) {
    loom_error e = {0};
    fprintf(md, "## Results\n\n");
    loom_compare_config cc = {rc->run_dirs, rc->n_runs, rc->out_dir, 0.05};
    loom_compare_result cr = {0};
    if (loom_compare(&cc, &cr, &e) == LOOM_OK && cr.markdown) {
        fprintf(md, "%s\n", cr.markdown);
        pvalue_picture(md, rc, &cr);
    } else {
        fprintf(md, "_(comparison not made: %s)_\n\n", e.msg);
    }
    loom_compare_result_reset(&cr);
    const char *dirs[20], *seq[20];
    int nd = 0, ns = 0;
    for (int i = 0; i < rc->n_runs && nd < 20; i++) {
        if (runs[i].kind == RUN_TUNE)
            continue;
        dirs[nd++] = runs[i].dir;
        if (strstr(runs[i].name, "rnn") || strstr(runs[i].name, "lstm") ||
            strstr(runs[i].name, "gru"))
            seq[ns++] = runs[i].dir;
    }
    char out[2048];
    if (nd > 1) {
        img_path(rc, "all", "val_acc", out, sizeof out);
        loom_status st = loom_plot_overlay_runs(out, dirs, nd, "val_acc", &e);
        picture(md, rc, "all", "val_acc", "validation accuracy per epoch, every run", st, &e);
    }
    if (ns > 1) {
        img_path(rc, "sequence", "val_acc", out, sizeof out);
        loom_status st = loom_plot_overlay_runs(out, seq, ns, "val_acc", &e);
        picture(md, rc, "sequence", "val_acc", "validation accuracy per epoch, sequence models", st,
                &e);
    }
}

/* One section per run: a search's own and its retrained best's, a training's, a cv's. */
static void runs_section(FILE *md, const loom_report_config *rc, const run_info *runs,
                         const loom_dataset *test) {
    fprintf(md, "## The runs\n\n");
    for (int i = 0; i < rc->n_runs; i++) {
        const run_info *r = &runs[i];
        if (r->kind == RUN_TUNE) {
            fprintf(md, "### %s (hyperparameter search)\n\n", r->slug);
            tune_section(md, rc, r);
            char best[2048];
            snprintf(best, sizeof best, "%s/best", r->dir);
            struct stat sb;
            if (stat(best, &sb) == 0) {
                run_info b = *r;
                b.dir = best;
                b.kind = RUN_TRAIN;
                snprintf(b.slug, sizeof b.slug, "%.150s_best", r->slug);
                train_section(md, rc, &b, test);
            }
            continue;
        }
        train_section(md, rc, r, test);
        if (r->kind == RUN_CV)
            cv_section(md, r);
    }
}

loom_status loom_report(const loom_report_config *rc, loom_error *err) {
    if (rc->n_runs < 1)
        return loom_error_set(err, LOOM_ERR_ARG, "report: no run directories given");
    run_info *runs = calloc((size_t)rc->n_runs, sizeof *runs);
    char *md_text = NULL;
    size_t md_len = 0;
    FILE *md = NULL;
    loom_dataset *test = NULL;
    loom_status st = LOOM_OK;
    if (!runs)
        return loom_error_set(err, LOOM_ERR_NOMEM, "report: out of memory");
    /* the runs are read before the report's directory is made: a bad one leaves nothing */
    char img[2048];
    snprintf(img, sizeof img, "%s/img", rc->out_dir);
    if ((st = read_runs(rc, runs, err)))
        goto done;
    /* the data: a directory given is checked here, before anything is made; the runs' own
     * (it may have moved since) becomes a note in the report when it cannot be read */
    char data_dir[1024];
    if (rc->data_dir)
        snprintf(data_dir, sizeof data_dir, "%s", rc->data_dir);
    else if (!runs[0].config ||
             !loom_config_get(runs[0].config, "data_dir", data_dir, sizeof data_dir))
        snprintf(data_dir, sizeof data_dir, "%s", loom_default_data_dir());
    loom_error e = {0};
    if (loom_dataset_load_dir(&test, data_dir, "test", &e) != LOOM_OK) {
        test = NULL;
        if (rc->data_dir) {
            st = loom_error_set(err, e.status, "%s", e.msg);
            goto done;
        }
    }
    if ((st = loom_mkdir_p(img, err)))
        goto done;
    loom_remove_stale_tmp(rc->out_dir, 1);
    md = open_memstream(&md_text, &md_len);
    if (!md) {
        st = loom_error_set(err, LOOM_ERR_NOMEM, "report: out of memory");
        goto done;
    }
    char title[1024];
    report_title(rc, runs, title, sizeof title);
    fprintf(md, "# %s\n\n", title);
    if (rc->note)
        fprintf(md, "> %s\n\n", rc->note);
    fprintf(md, "Runs: ");
    for (int i = 0; i < rc->n_runs; i++)
        fprintf(md, "%s`%s`", i ? ", " : "", runs[i].dir);
    fprintf(md, ".\n\n");
    dataset_section(md, rc, data_dir);
    results_section(md, rc, runs);
    runs_section(md, rc, runs, test);
    provenance(md, rc, runs, rc->n_runs);
    if (fclose(md) != 0) {
        md = NULL;
        st = loom_error_set(err, LOOM_ERR_NOMEM, "report: out of memory");
        goto done;
    }
    md = NULL;
    char path[2048];
    snprintf(path, sizeof path, "%s/REPORT.md", rc->out_dir);
    st = loom_file_write_atomic(path, md_text, md_len, err);
    if (st == LOOM_OK)
        log_printf(rc->log, rc->log_user, LOOM_LOG_INFO, "%s", path);
    int n_missing = 0;
    if (st == LOOM_OK &&
        (st = report_html_write(md_text, md_len, rc->out_dir, title, &n_missing, err)) == LOOM_OK) {
        if (n_missing > 0)
            log_printf(rc->log, rc->log_user, LOOM_LOG_WARN,
                       "REPORT.html: %d pictures could not be read and stay links", n_missing);
        log_printf(rc->log, rc->log_user, LOOM_LOG_INFO, "%s/REPORT.html", rc->out_dir);
    }
done:
    if (md)
        fclose(md);
    free(md_text);
    for (int i = 0; i < rc->n_runs; i++)
        free(runs[i].config);
    free(runs);
    loom_dataset_destroy(test);
    return st;
}
