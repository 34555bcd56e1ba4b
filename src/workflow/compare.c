/* compare.c - one table for several runs (train, cv or tune directories): model, parameters,
 * epochs, seconds per epoch, train/validation/test accuracy, macro precision/recall/F1 (mean
 * +- sample std for cross-validation), the published figure; and McNemar's test for every pair
 * of runs with predictions on the same test set. Markdown, CSV and JSON. */
#include "tune.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <sys/stat.h>

#define MCNEMAR_EXACT_BELOW 25 /* b + c below this: exact binomial test */

loom_mcnemar loom_mcnemar_test(long b, long c) {
    loom_mcnemar r = {.b = b, .c = c, .chi2 = 0, .p_chi2 = 1, .p_exact = 1, .p = 1};
    long n = b + c;
    r.is_exact = n < MCNEMAR_EXACT_BELOW;
    if (n <= 0)
        return r;
    /* Edwards' continuity correction; chi-square with 1 dof: P(X >= x) = erfc(sqrt(x / 2)) */
    double d = fabs((double)(b - c)) - 1.0;
    r.chi2 = d * d / (double)n;
    r.p_chi2 = erfc(sqrt(r.chi2 / 2.0));
    /* two-sided exact: 2 P(X <= min(b, c)), X ~ Bin(n, 1/2), terms in logs */
    long k = b < c ? b : c;
    double sum = 0;
    for (long i = 0; i <= k; i++)
        sum += exp(lgamma((double)n + 1) - lgamma((double)i + 1) - lgamma((double)(n - i) + 1) -
                   (double)n * log(2.0));
    r.p_exact = fmin(1.0, 2.0 * sum);
    r.p = r.is_exact ? r.p_exact : r.p_chi2;
    return r;
}

/* ---- what one run directory holds ---- */

typedef struct {
    double mean, sd; /* sd NaN for a single run; both NaN when unknown */
} figure;

typedef struct {
    char label[256];
    char dir[1024]; /* where the files are: the directory, or a search's best/ */
    char model[512];
    const char *published;
    int folds;                            /* 0: a single run */
    double params, epochs, sec_per_epoch; /* NaN when unknown */
    figure train_acc, val_acc, test_acc, precision, recall, f1;
    int *y_true, *y_pred; /* (n_pred) test predictions, or NULL */
    int n_pred;
} run_info;

static figure one(double v) { return (figure){v, NAN}; }
static const figure unknown = {NAN, NAN};

static bool exists(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0;
}

typedef struct {
    int n_epochs;
    double acc, val_acc, seconds; /* the row the model comes from; seconds summed */
} hist_row;

/* history.csv: the epoch count, total seconds and the row of the final model (the lowest
 * val_loss when early stopping restored the best epoch, else the last). */
static loom_status read_history(const char *path, bool is_best_row, hist_row *out,
                                loom_error *err) {
    memset(out, 0, sizeof *out);
    out->acc = out->val_acc = NAN;
    loom_history h;
    loom_status st = loom_history_read_csv(path, &h, err);
    if (st)
        return st;
    double best_loss = INFINITY;
    out->n_epochs = h.n_epochs;
    out->seconds = h.seconds;
    for (int i = 0; i < h.n_epochs; i++) {
        const loom_epoch *e = &h.epochs[i];
        if (!is_best_row || e->val_loss < best_loss) {
            best_loss = e->val_loss;
            out->acc = e->acc;
            out->val_acc = e->val_acc;
        }
    }
    loom_history_reset(&h);
    return LOOM_OK;
}

static loom_status read_json(const char *path, cJSON **out, loom_error *err) {
    char *text = NULL;
    loom_status st = loom_file_read_all(path, &text, NULL, err);
    if (st)
        return st;
    *out = cJSON_Parse(text);
    free(text);
    return *out ? LOOM_OK : loom_error_set(err, LOOM_ERR_FORMAT, "%s: not valid JSON", path);
}

static double json_num(const cJSON *o, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

/* metrics.json: accuracy and macro precision, recall, F1 into v[0..3]. */
static loom_status read_metrics(const char *path, double v[4], loom_error *err) {
    cJSON *j = NULL;
    loom_status st = read_json(path, &j, err);
    if (st)
        return st;
    v[0] = json_num(j, "accuracy");
    v[1] = json_num(j, "macro_precision");
    v[2] = json_num(j, "macro_recall");
    v[3] = json_num(j, "macro_f1");
    cJSON_Delete(j);
    return LOOM_OK;
}

/* predictions.csv: index,true,pred,prob, one row per test image in index order. */
static loom_status read_predictions(const char *path, run_info *r, loom_error *err) {
    char *text = NULL;
    loom_status st = loom_file_read_all(path, &text, NULL, err);
    if (st)
        return st;
    int cap = 0, line_no = 0;
    char *save = NULL;
    for (char *l = strtok_r(text, "\n", &save); l && st == LOOM_OK;
         l = strtok_r(NULL, "\n", &save)) {
        if (line_no++ == 0)
            continue; /* the header */
        char *f[8];
        int n = csv_split(l, f, 8);
        if (n < 3 || atoi(f[0]) != r->n_pred) {
            st = loom_error_set(err, LOOM_ERR_FORMAT, "%s:%d: expected index,true,pred,prob", path,
                                line_no);
            break;
        }
        if (r->n_pred == cap) {
            cap = cap ? 2 * cap : 1024;
            int *t = realloc(r->y_true, sizeof(int) * (size_t)cap);
            if (t)
                r->y_true = t;
            int *p = t ? realloc(r->y_pred, sizeof(int) * (size_t)cap) : NULL;
            if (p)
                r->y_pred = p;
            if (!t || !p) {
                st = loom_error_set(err, LOOM_ERR_NOMEM, "%s: out of memory", path);
                break;
            }
        }
        r->y_true[r->n_pred] = atoi(f[1]);
        r->y_pred[r->n_pred++] = atoi(f[2]);
    }
    free(text);
    return st;
}

static figure stats_of(const double *v, int n) {
    figure f;
    loom_mean_std(v, n, &f.mean, &f.sd);
    return f;
}

/* A cross-validation directory: cv.json and each fold's history (and metrics when tested). */
static loom_status read_cv(run_info *r, bool is_best_row, loom_error *err) {
    char path[2048];
    cJSON *j = NULL;
    loom_status st = read_json(path_join(path, sizeof path, r->dir, "cv.json"), &j, err);
    if (st)
        return st;
    const cJSON *mean = cJSON_GetObjectItemCaseSensitive(j, "mean");
    const cJSON *sd = cJSON_GetObjectItemCaseSensitive(j, "std");
    r->val_acc = (figure){json_num(mean, "val_acc"), json_num(sd, "val_acc")};
    r->params = json_num(j, "n_params");
    cJSON_Delete(j);
    double acc[256], m[4][256], epochs = 0, seconds = 0;
    int K = r->folds < 256 ? r->folds : 256, n_tested = 0;
    for (int k = 0; k < K; k++) {
        char fold[1100];
        snprintf(fold, sizeof fold, "%s/fold_%d", r->dir, k + 1);
        hist_row h;
        st = read_history(path_join(path, sizeof path, fold, "history.csv"), is_best_row, &h, err);
        if (st)
            return st;
        acc[k] = h.acc;
        epochs += h.n_epochs;
        seconds += h.seconds;
        double v[4];
        path_join(path, sizeof path, fold, "metrics.json");
        if (exists(path)) {
            if ((st = read_metrics(path, v, err)))
                return st;
            for (int c = 0; c < 4; c++)
                m[c][n_tested] = v[c];
            n_tested++;
        }
    }
    r->train_acc = stats_of(acc, K);
    r->epochs = epochs / K;
    r->sec_per_epoch = epochs > 0 ? seconds / epochs : NAN;
    if (n_tested > 0) {
        r->test_acc = stats_of(m[0], n_tested);
        r->precision = stats_of(m[1], n_tested);
        r->recall = stats_of(m[2], n_tested);
        r->f1 = stats_of(m[3], n_tested);
    }
    return LOOM_OK;
}

static loom_status read_run(const char *given, run_info *r, loom_error *err) {
    char path[2048], buf[512], *config = NULL;
    memset(r, 0, sizeof *r);
    r->params = r->epochs = r->sec_per_epoch = NAN;
    r->train_acc = r->val_acc = r->test_acc = r->precision = r->recall = r->f1 = unknown;
    snprintf(r->dir, sizeof r->dir, "%s", given);
    if (loom_run_dir_kind(r->dir) == LOOM_RUN_TUNE) /* a search: its retrained best */
        snprintf(r->dir, sizeof r->dir, "%s/best", given);
    if (!exists(path_join(path, sizeof path, r->dir, "config.txt")))
        return loom_error_set(err, LOOM_ERR_ARG,
                              "%s: not a run directory (no config.txt, nor best/config.txt)",
                              given);
    loom_status st = loom_file_read_all(path, &config, NULL, err);
    if (st)
        return st;
    snprintf(r->model, sizeof r->model, "%s",
             loom_config_get(config, "model", buf, sizeof buf) ?: "?");
    const loom_zoo_entry *z = loom_zoo_find(r->model);
    r->published = z ? z->published : NULL;
    bool is_best_row = atoi(loom_config_get(config, "early_stopping", buf, sizeof buf) ?: "0") > 0;
    r->folds = atoi(loom_config_get(config, "cv_folds", buf, sizeof buf) ?: "0");
    free(config);
    const char *slash = strrchr(given, '/');
    snprintf(r->label, sizeof r->label, "%s", slash && slash[1] ? slash + 1 : given);

    if (r->folds > 0) {
        st = read_cv(r, is_best_row, err);
    } else {
        hist_row h;
        if ((st = read_history(path_join(path, sizeof path, r->dir, "history.csv"), is_best_row, &h,
                               err)))
            return st;
        r->epochs = h.n_epochs;
        r->sec_per_epoch = h.n_epochs > 0 ? h.seconds / h.n_epochs : NAN;
        r->train_acc = one(h.acc);
        r->val_acc = one(h.val_acc);
        double v[4];
        if (exists(path_join(path, sizeof path, r->dir, "metrics.json"))) {
            if ((st = read_metrics(path, v, err)))
                return st;
            r->test_acc = one(v[0]);
            r->precision = one(v[1]);
            r->recall = one(v[2]);
            r->f1 = one(v[3]);
        }
        loom_model *m = NULL;
        loom_error e2 = {0};
        if (loom_model_load(&m, NULL, path_join(path, sizeof path, r->dir, "model.loom"), &e2) ==
            LOOM_OK)
            r->params = (double)(loom_model_n_params(m) + loom_model_n_state(m));
        loom_model_destroy(m);
    }
    if (st == LOOM_OK && exists(path_join(path, sizeof path, r->dir, "predictions.csv")))
        st = read_predictions(path, r, err);
    return st;
}

/* ---- the tables ---- */

/* "91.14" or "89.93 ± 0.41" (percent), "-" when unknown. */
static void fmt_pct(figure f, char *buf, size_t n) {
    if (isnan(f.mean))
        snprintf(buf, n, "-");
    else if (isnan(f.sd))
        snprintf(buf, n, "%.2f", 100 * f.mean);
    else
        snprintf(buf, n, "%.2f ± %.2f", 100 * f.mean, 100 * f.sd);
}

static void markdown_runs(FILE *f, const run_info *runs, int n) {
    fprintf(f,
            "| run | model | params | epochs | s/epoch | train acc %% | val acc %% | test acc %% "
            "| precision %% | recall %% | F1 %% | published |\n");
    fprintf(f, "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|\n");
    for (int i = 0; i < n; i++) {
        const run_info *r = &runs[i];
        char p[32] = "-", e[32] = "-", s[32] = "-", c[6][48];
        if (!isnan(r->params))
            snprintf(p, sizeof p, "%.0f", r->params);
        if (!isnan(r->epochs))
            snprintf(e, sizeof e, r->folds > 0 ? "%.1f" : "%.0f", r->epochs);
        if (!isnan(r->sec_per_epoch))
            snprintf(s, sizeof s, "%.1f", r->sec_per_epoch);
        const figure fs[6] = {r->train_acc, r->val_acc, r->test_acc,
                              r->precision, r->recall,  r->f1};
        for (int k = 0; k < 6; k++)
            fmt_pct(fs[k], c[k], sizeof c[k]);
        char label[300];
        if (r->folds > 0)
            snprintf(label, sizeof label, "%s (%d-fold CV)", r->label, r->folds);
        else
            snprintf(label, sizeof label, "%s", r->label);
        fprintf(f, "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", label,
                r->model, p, e, s, c[0], c[1], c[2], c[3], c[4], c[5],
                r->published ? r->published : "-");
    }
}

/* Text for a CSV field: commas and quotes would break the columns. */
static void csv_text(FILE *f, const char *s) {
    for (; *s; s++)
        fputc(*s == ',' ? ';' : *s == '"' ? '\'' : *s, f);
}

static void csv_num(FILE *f, double v, const char *fmt) {
    fputc(',', f);
    if (!isnan(v))
        fprintf(f, fmt, v);
}

static loom_status write_csv(const run_info *runs, int n, const char *path, loom_error *err) {
    text_out t;
    if (!text_open(&t))
        return loom_error_set(err, LOOM_ERR_NOMEM, "%s: out of memory", path);
    fprintf(t.f, "run,dir,model,folds,params,epochs,sec_per_epoch,train_acc,train_acc_std,"
                 "val_acc,val_acc_std,test_acc,test_acc_std,precision,precision_std,recall,"
                 "recall_std,f1,f1_std,published\n");
    for (int i = 0; i < n; i++) {
        const run_info *r = &runs[i];
        csv_text(t.f, r->label);
        fputc(',', t.f);
        csv_text(t.f, r->dir);
        fputc(',', t.f);
        csv_text(t.f, r->model);
        fprintf(t.f, ",%d", r->folds);
        csv_num(t.f, r->params, "%.0f");
        csv_num(t.f, r->epochs, "%g");
        csv_num(t.f, r->sec_per_epoch, "%.3f");
        const figure fs[6] = {r->train_acc, r->val_acc, r->test_acc,
                              r->precision, r->recall,  r->f1};
        for (int k = 0; k < 6; k++) {
            csv_num(t.f, fs[k].mean, "%.6f");
            csv_num(t.f, fs[k].sd, "%.6f");
        }
        fputc(',', t.f);
        csv_text(t.f, r->published ? r->published : "");
        fputc('\n', t.f);
    }
    return text_save(&t, path, err);
}

static bool add_figure(cJSON *o, const char *key, figure f) {
    char k[64];
    snprintf(k, sizeof k, "%s_std", key);
    return cJSON_AddNumberToObject(o, key, f.mean) && cJSON_AddNumberToObject(o, k, f.sd);
}

static loom_status write_json(const run_info *runs, int n, const loom_compare_result *res,
                              double alpha, const char *path, loom_error *err) {
    cJSON *root = cJSON_CreateObject();
    cJSON *jr = root ? cJSON_AddArrayToObject(root, "runs") : NULL;
    bool ok = jr != NULL;
    for (int i = 0; ok && i < n; i++) {
        const run_info *r = &runs[i];
        cJSON *o = cJSON_CreateObject();
        ok = o && cJSON_AddItemToArray(jr, o);
        if (!ok) {
            cJSON_Delete(o);
            break;
        }
        ok = cJSON_AddStringToObject(o, "run", r->label) &&
             cJSON_AddStringToObject(o, "dir", r->dir) &&
             cJSON_AddStringToObject(o, "model", r->model) &&
             cJSON_AddNumberToObject(o, "folds", r->folds) &&
             cJSON_AddNumberToObject(o, "params", r->params) &&
             cJSON_AddNumberToObject(o, "epochs", r->epochs) &&
             cJSON_AddNumberToObject(o, "sec_per_epoch", r->sec_per_epoch) &&
             add_figure(o, "train_acc", r->train_acc) && add_figure(o, "val_acc", r->val_acc) &&
             add_figure(o, "test_acc", r->test_acc) && add_figure(o, "precision", r->precision) &&
             add_figure(o, "recall", r->recall) && add_figure(o, "f1", r->f1) &&
             (r->published ? cJSON_AddStringToObject(o, "published", r->published)
                           : cJSON_AddNullToObject(o, "published"));
    }
    cJSON *jm = ok ? cJSON_AddArrayToObject(root, "mcnemar") : NULL;
    ok = ok && jm && cJSON_AddNumberToObject(root, "alpha", alpha);
    for (int i = 0; ok && i < res->n_pairs; i++) {
        const loom_mcnemar *m = &res->tests[i];
        cJSON *o = cJSON_CreateObject();
        ok = o && cJSON_AddItemToArray(jm, o);
        if (!ok) {
            cJSON_Delete(o);
            break;
        }
        ok = cJSON_AddStringToObject(o, "a", runs[res->pairs[i][0]].label) &&
             cJSON_AddStringToObject(o, "b", runs[res->pairs[i][1]].label) &&
             cJSON_AddNumberToObject(o, "n", runs[res->pairs[i][0]].n_pred) &&
             cJSON_AddNumberToObject(o, "a_right_b_wrong", (double)m->b) &&
             cJSON_AddNumberToObject(o, "a_wrong_b_right", (double)m->c) &&
             cJSON_AddNumberToObject(o, "chi2", m->chi2) &&
             cJSON_AddNumberToObject(o, "p_chi2", m->p_chi2) &&
             cJSON_AddNumberToObject(o, "p_exact", m->p_exact) &&
             cJSON_AddNumberToObject(o, "p", m->p) &&
             cJSON_AddBoolToObject(o, "is_exact", m->is_exact) &&
             cJSON_AddBoolToObject(o, "is_significant", m->p < alpha);
    }
    return json_save(root, ok, path, err);
}

/* Two runs can be paired when they predicted the same test images with the same labels. */
static bool same_test_set(const run_info *a, const run_info *b) {
    return a->y_true && b->y_true && a->n_pred == b->n_pred &&
           memcmp(a->y_true, b->y_true, sizeof(int) * (size_t)a->n_pred) == 0;
}

static loom_status pair_tests(run_info *runs, int n, loom_compare_result *res, loom_error *err) {
    int max = n * (n - 1) / 2;
    res->tests = calloc((size_t)max + 1, sizeof *res->tests);
    res->pairs = calloc((size_t)max + 1, sizeof *res->pairs);
    if (!res->tests || !res->pairs)
        return loom_error_set(err, LOOM_ERR_NOMEM, "out of memory");
    for (int i = 0; i < n; i++)
        for (int j = i + 1; j < n; j++) {
            if (!same_test_set(&runs[i], &runs[j]))
                continue;
            long b = 0, c = 0;
            for (int k = 0; k < runs[i].n_pred; k++) {
                bool is_a = runs[i].y_pred[k] == runs[i].y_true[k];
                bool is_b = runs[j].y_pred[k] == runs[j].y_true[k];
                b += is_a && !is_b;
                c += !is_a && is_b;
            }
            res->tests[res->n_pairs] = loom_mcnemar_test(b, c);
            res->pairs[res->n_pairs][0] = i;
            res->pairs[res->n_pairs][1] = j;
            res->n_pairs++;
        }
    return LOOM_OK;
}

/* The paired run with the highest test accuracy (the first on ties), -1 when none is paired. */
static int best_paired(const run_info *runs, const loom_compare_result *res) {
    int best = -1;
    for (int i = 0; i < res->n_pairs; i++)
        for (int s = 0; s < 2; s++) {
            int r = res->pairs[i][s];
            if (best < 0 || runs[r].test_acc.mean > runs[best].test_acc.mean ||
                (runs[r].test_acc.mean == runs[best].test_acc.mean && r < best))
                best = r;
        }
    return best;
}

/* Pairs beyond which the Markdown keeps only each run against the best one (the picture and
 * mcnemar.csv have them all). */
enum { MCNEMAR_MD_PAIRS = 6 };

static void markdown_tests(FILE *f, const run_info *runs, const loom_compare_result *res,
                           double alpha) {
    fprintf(f,
            "\nMcNemar's test on the test-set predictions (b: A right and B wrong, c: A "
            "wrong and B right; chi-square with continuity correction, exact binomial when "
            "b + c < %d)",
            MCNEMAR_EXACT_BELOW);
    if (res->n_pairs == 0) {
        fprintf(f, ":\n\nno two runs have predictions.csv on the same test set.\n");
        return;
    }
    bool is_short = res->n_pairs > MCNEMAR_MD_PAIRS && res->best >= 0;
    if (is_short)
        fprintf(f, ", each run against the best one, %s (all %d pairs: mcnemar.csv)",
                runs[res->best].label, res->n_pairs);
    fprintf(f, ":\n\n| A | B | n | b | c | chi² | p | test | significant (α = %g) |\n", alpha);
    fprintf(f, "|---|---|---:|---:|---:|---:|---:|---|---|\n");
    for (int i = 0; i < res->n_pairs; i++) {
        const loom_mcnemar *m = &res->tests[i];
        if (is_short && res->pairs[i][0] != res->best && res->pairs[i][1] != res->best)
            continue;
        const run_info *a = &runs[res->pairs[i][0]], *b = &runs[res->pairs[i][1]];
        fprintf(f, "| %s | %s | %d | %ld | %ld | %.3f | %.4g | %s | %s |\n", a->label, b->label,
                a->n_pred, m->b, m->c, m->chi2, m->p, m->is_exact ? "exact" : "chi²",
                m->p < alpha ? "yes" : "no");
    }
}

/* Every pair's test: mcnemar.csv. */
static loom_status write_mcnemar_csv(const run_info *runs, const loom_compare_result *res,
                                     double alpha, const char *path, loom_error *err) {
    text_out t;
    if (!text_open(&t))
        return loom_error_set(err, LOOM_ERR_NOMEM, "%s: out of memory", path);
    fprintf(t.f, "a,b,n,b_count,c_count,chi2,p,test,significant\n");
    for (int i = 0; i < res->n_pairs; i++) {
        const loom_mcnemar *m = &res->tests[i];
        const run_info *a = &runs[res->pairs[i][0]], *b = &runs[res->pairs[i][1]];
        csv_text(t.f, a->label);
        fputc(',', t.f);
        csv_text(t.f, b->label);
        fprintf(t.f, ",%d,%ld,%ld,%.6g,%.6g,%s,%d\n", a->n_pred, m->b, m->c, m->chi2, m->p,
                m->is_exact ? "exact" : "chi2", m->p < alpha);
    }
    return text_save(&t, path, err);
}

void loom_compare_result_reset(loom_compare_result *r) {
    free(r->labels);
    free(r->markdown);
    free(r->tests);
    free(r->pairs);
    memset(r, 0, sizeof *r);
}

loom_status loom_compare(const loom_compare_config *cc, loom_compare_result *res, loom_error *err) {
    memset(res, 0, sizeof *res);
    int n = cc->n_runs;
    double alpha = cc->alpha > 0 ? cc->alpha : 0.05;
    if (n < 1)
        return loom_error_set(err, LOOM_ERR_ARG, "no run directories given");
    run_info *runs = calloc((size_t)n, sizeof *runs);
    if (!runs)
        return loom_error_set(err, LOOM_ERR_NOMEM, "out of memory");
    loom_status st = LOOM_OK;
    for (int i = 0; i < n && st == LOOM_OK; i++)
        st = read_run(cc->run_dirs[i], &runs[i], err);
    /* labels are directory names; where two are the same, the paths as given */
    for (int i = 0; i < n && st == LOOM_OK; i++)
        for (int j = 0; j < n; j++)
            if (i != j && strcmp(runs[i].label, runs[j].label) == 0) {
                snprintf(runs[i].label, sizeof runs[i].label, "%s", cc->run_dirs[i]);
                break;
            }
    if (st == LOOM_OK)
        st = pair_tests(runs, n, res, err);
    res->best = st == LOOM_OK ? best_paired(runs, res) : -1;
    if (st == LOOM_OK && !(res->labels = calloc((size_t)n, sizeof *res->labels)))
        st = loom_error_set(err, LOOM_ERR_NOMEM, "out of memory");
    for (int i = 0; i < n && st == LOOM_OK; i++)
        snprintf(res->labels[i], sizeof res->labels[i], "%s", runs[i].label);
    text_out md = {0};
    if (st == LOOM_OK && !text_open(&md))
        st = loom_error_set(err, LOOM_ERR_NOMEM, "out of memory");
    if (st == LOOM_OK) {
        markdown_runs(md.f, runs, n);
        markdown_tests(md.f, runs, res, alpha);
        fflush(md.f);
        res->n_runs = n;
        if (!md.buf || !(res->markdown = strndup(md.buf, md.len)))
            st = loom_error_set(err, LOOM_ERR_NOMEM, "out of memory");
    }
    char path[2048];
    if (st == LOOM_OK && cc->out_dir) {
        st = loom_run_create_dir(cc->out_dir, true, err);
        if (st == LOOM_OK)
            st = text_save(&md, path_join(path, sizeof path, cc->out_dir, "compare.md"), err);
        if (st == LOOM_OK)
            st = write_csv(runs, n, path_join(path, sizeof path, cc->out_dir, "compare.csv"), err);
        if (st == LOOM_OK)
            st = write_json(runs, n, res, alpha,
                            path_join(path, sizeof path, cc->out_dir, "compare.json"), err);
        if (st == LOOM_OK)
            st = write_mcnemar_csv(runs, res, alpha,
                                   path_join(path, sizeof path, cc->out_dir, "mcnemar.csv"), err);
    }
    text_discard(&md);
    for (int i = 0; i < n; i++) {
        free(runs[i].y_true);
        free(runs[i].y_pred);
    }
    free(runs);
    if (st)
        loom_compare_result_reset(res);
    return st;
}
