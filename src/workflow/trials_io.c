/* trials_io.c - the files of a search directory: tune.txt (the settings --resume must find
 * unchanged), executions.csv (one synced line per execution, read back on --resume), trials.csv,
 * trials.json and summary.md (the results table, best first). */
#include "search.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#define EXEC_HEADER "trial,rung,execution,epochs,seed,val_acc,val_loss,val_f1,score,seconds"

/* ---- the state: tune.txt and executions.csv ---- */

loom_status record_exec(search *s, const exec_rec *x, loom_error *err) {
    char line[512];
    int n = snprintf(line, sizeof line, "%d,%d,%d,%d,%llu,%.10g,%.10g,%.10g,%.10g,%.3f\n",
                     x->trial + 1, x->rung + 1, x->exec + 1, x->epochs, (unsigned long long)x->seed,
                     x->val_acc, x->val_loss, x->val_f1, x->score, x->seconds);
    if (write(s->exec_fd, line, (size_t)n) != n || fsync(s->exec_fd) != 0)
        return loom_error_set(err, LOOM_ERR_IO, "%s/executions.csv: write failed: %s", s->dir,
                              strerror(errno));
    if (!grow((void **)&s->done, &s->cap_done, s->n_done + 1, sizeof *s->done))
        return loom_error_set(err, LOOM_ERR_NOMEM, "out of memory");
    s->done[s->n_done++] = *x;
    return LOOM_OK;
}

/* Settings that must match for --resume: a search is a function of these. */
char *settings_text(search *s, const char *text) {
    const loom_tune_config *tc = s->tc;
    const loom_train_config *b = &tc->train;
    text_out t;
    if (!text_open(&t))
        return NULL;
    fprintf(t.f, "space_crc32=%08x\nalgorithm=%s\nobjective=%s\nseed=%llu\n",
            (unsigned)loom_crc32(0, text, strlen(text)),
            tc->algorithm == LOOM_TUNE_HYPERBAND ? "hyperband" : "random",
            loom_objective_str(tc->objective), (unsigned long long)b->seed);
    fprintf(t.f, "executions=%d\ncv_folds=%d\nval_split=%g\nsubset=%d\nstandardize=%d\n",
            tc->executions, tc->cv_folds, tc->val_split, tc->subset, tc->is_standardize);
    fprintf(t.f, "defaults=epochs %d, batch %d, %s lr %g, momentum %g, l2 %g, early stopping %d\n",
            b->epochs, b->batch, loom_opt_kind_str(b->opt.kind), (double)b->opt.lr,
            (double)b->opt.momentum, (double)b->opt.l2, b->early_stopping);
    fprintf(t.f, "overrides=");
    for (const char *c = tc->train_overrides; c && *c; c++)
        fputc(*c == '\n' ? ';' : *c, t.f);
    fputc('\n', t.f);
    if (tc->algorithm == LOOM_TUNE_HYPERBAND)
        fprintf(t.f, "trials=%d\neta=%d\n", tc->trials, tc->eta);
    fflush(t.f);
    char *out = t.buf ? strndup(t.buf, t.len) : NULL;
    text_discard(&t);
    return out;
}

/* --resume: the recorded settings must match; reads executions.csv, drops a torn last line. */
static loom_status load_state(search *s, const char *settings, loom_error *err) {
    char path[2048], *old = NULL, *text = NULL;
    size_t len = 0;
    loom_status st =
        loom_file_read_all(path_join(path, sizeof path, s->dir, "tune.txt"), &old, NULL, err);
    if (st)
        return st;
    for (const char *l = settings; *l;) {
        size_t n = strcspn(l, "\n"), kl = strcspn(l, "=");
        const char *next = l + n + (l[n] == '\n');
        if (kl >= n) { /* not a key=value line */
            l = next;
            continue;
        }
        char key[64], now[1024], was[1024];
        snprintf(key, sizeof key, "%.*s", (int)kl, l);
        snprintf(now, sizeof now, "%.*s", (int)(n - kl - 1), l + kl + 1);
        l = next;
        if (!loom_config_get(old, key, was, sizeof was) || strcmp(was, now) != 0) {
            st = loom_error_set(err, LOOM_ERR_ARG,
                                "%s: cannot resume: %s was '%s', now '%s' (start over "
                                "instead)",
                                s->dir, key, loom_config_get(old, key, was, sizeof was) ? was : "",
                                now);
            break;
        }
    }
    free(old);
    if (st)
        return st;
    path_join(path, sizeof path, s->dir, "executions.csv");
    if ((st = loom_file_read_all(path, &text, &len, err)))
        return st;
    size_t hl = strlen(EXEC_HEADER);
    if (strncmp(text, EXEC_HEADER "\n", hl + 1) != 0) {
        free(text);
        return loom_error_set(err, LOOM_ERR_FORMAT, "%s: expected the header '%s'", path,
                              EXEC_HEADER);
    }
    size_t good = hl + 1; /* bytes up to the last complete line */
    int line_no = 2;
    for (char *l = text + hl + 1; *l; line_no++) {
        char *eol = strchr(l, '\n');
        if (!eol)
            break; /* torn by a kill: that execution is run again */
        *eol = '\0';
        char *f[12];
        exec_rec x = {0};
        int n = csv_split(l, f, 12);
        bool ok = n == 10;
        if (ok) {
            x.trial = atoi(f[0]) - 1;
            x.rung = atoi(f[1]) - 1;
            x.exec = atoi(f[2]) - 1;
            x.epochs = atoi(f[3]);
            x.seed = strtoull(f[4], NULL, 10);
            x.val_acc = strtod(f[5], NULL);
            x.val_loss = strtod(f[6], NULL);
            x.val_f1 = strtod(f[7], NULL);
            x.score = strtod(f[8], NULL);
            x.seconds = strtod(f[9], NULL);
            ok = x.trial >= 0 && x.rung >= 0 && x.exec >= 0 && x.epochs > 0;
        }
        if (!ok) {
            free(text);
            return loom_error_set(err, LOOM_ERR_FORMAT, "%s:%d: malformed execution line", path,
                                  line_no);
        }
        if (!grow((void **)&s->done, &s->cap_done, s->n_done + 1, sizeof *s->done)) {
            free(text);
            return loom_error_set(err, LOOM_ERR_NOMEM, "out of memory");
        }
        s->done[s->n_done++] = x;
        l = eol + 1;
        good = (size_t)(l - text);
    }
    free(text);
    if (good < len && truncate(path, (off_t)good) != 0)
        return loom_error_set(err, LOOM_ERR_IO, "%s: cannot drop the torn last line: %s", path,
                              strerror(errno));
    return LOOM_OK;
}

/* Creates or reopens the search directory: tune.txt, executions.csv, tune.log. */
loom_status open_state(search *s, const char *settings, loom_error *err) {
    const loom_tune_config *tc = s->tc;
    char path[2048];
    struct stat sb;
    bool has_search = stat(path_join(path, sizeof path, s->dir, "tune.txt"), &sb) == 0;
    bool is_resume = tc->is_resume && has_search;
    if (has_search && !tc->is_resume && !tc->is_force)
        return loom_error_set(err, LOOM_ERR_EXISTS,
                              "%s: a search is already there: resume it or start over", s->dir);
    loom_status st = loom_run_create_dir(s->dir, true, err);
    if (st)
        return st;
    if (is_resume) {
        st = load_state(s, settings, err);
    } else {
        /* a new search replaces the old one: its tables, plots and retrained best */
        const char *stale[] = {"trials.csv", "trials.json", "summary.md", "best/model.txt"};
        for (int i = 0; i < 4; i++) {
            char sp[2048];
            unlink(path_join(sp, sizeof sp, s->dir, stale[i]));
        }
        char best[2048];
        loom_run_discard_dir(path_join(best, sizeof best, s->dir, "best"), true);
        loom_run_clear_dir(s->dir);
        text_out t;
        if (!text_open(&t))
            return loom_error_set(err, LOOM_ERR_NOMEM, "out of memory");
        fprintf(t.f, "%sspace_file=%s\nloom_version=%s\ncommand=%s\n", settings, s->source,
                LOOM_VERSION, tc->command_line ? tc->command_line : "");
        st = text_save(&t, path, err);
        if (st == LOOM_OK)
            st = loom_file_write_atomic(path_join(path, sizeof path, s->dir, "executions.csv"),
                                        EXEC_HEADER "\n", strlen(EXEC_HEADER) + 1, err);
    }
    if (st)
        return st;
    path_join(path, sizeof path, s->dir, "executions.csv");
    s->exec_fd = open(path, O_WRONLY | O_APPEND);
    if (s->exec_fd < 0)
        return loom_error_set(err, LOOM_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    s->log_file = fopen(path_join(path, sizeof path, s->dir, "tune.log"), is_resume ? "a" : "w");
    if (!s->log_file)
        return loom_error_set(err, LOOM_ERR_IO, "%s: cannot create: %s", path, strerror(errno));
    if (tc->is_resume && !has_search)
        slog(s, LOOM_LOG_INFO, "%s: no search to resume; starting one", s->dir);
    else if (is_resume)
        slog(s, LOOM_LOG_INFO, "resuming the search in %s: %d execution%s recorded", s->dir,
             s->n_done, PLURAL(s->n_done));
    return LOOM_OK;
}

/* ---- the results ---- */

loom_status write_trials(search *s, loom_error *err) {
    const loom_tune_result *res = s->res;
    bool is_hb = s->tc->algorithm == LOOM_TUNE_HYPERBAND;
    char path[2048];
    text_out t;
    if (!text_open(&t))
        return loom_error_set(err, LOOM_ERR_NOMEM, "out of memory");
    fprintf(t.f, "trial,score");
    for (int i = 0; i < res->n_hp; i++)
        fprintf(t.f, ",%s", res->hp_names[i]);
    fprintf(t.f, "%s,seconds\n", is_hb ? ",epochs" : "");
    for (int r = 0; r < res->n_trials; r++) {
        const loom_tune_trial *tr = &res->trials[r];
        fprintf(t.f, "%d,%.6f", tr->trial + 1, tr->score);
        for (int i = 0; i < res->n_hp; i++)
            fprintf(t.f, ",%s", tr->values[i] ? tr->values[i] : "");
        if (is_hb)
            fprintf(t.f, ",%d", tr->epochs);
        fprintf(t.f, ",%.3f\n", tr->seconds);
    }
    loom_status st = text_save(&t, path_join(path, sizeof path, s->dir, "trials.csv"), err);
    if (st)
        return st;

    cJSON *root = cJSON_CreateArray();
    bool ok = root != NULL;
    for (int r = 0; ok && r < res->n_trials; r++) {
        const loom_tune_trial *tr = &res->trials[r];
        cJSON *o = cJSON_CreateObject(), *hp = NULL;
        ok = o && cJSON_AddItemToArray(root, o);
        if (!ok) {
            cJSON_Delete(o);
            break;
        }
        ok = cJSON_AddNumberToObject(o, "trial", tr->trial + 1) &&
             cJSON_AddNumberToObject(o, "round", tr->rung + 1) &&
             cJSON_AddNumberToObject(o, "epochs", tr->epochs) &&
             cJSON_AddNumberToObject(o, "score", tr->score) &&
             cJSON_AddNumberToObject(o, "seconds", tr->seconds) &&
             (hp = cJSON_AddObjectToObject(o, "hyperparameters")) &&
             cJSON_AddStringToObject(o, "model", s->points[tr->trial].model_text) &&
             cJSON_AddStringToObject(o, "training", s->points[tr->trial].train_text);
        for (int i = 0; ok && i < res->n_hp; i++) {
            const char *v = tr->values[i];
            double d;
            if (v)
                ok = parse_number(v, &d) ? cJSON_AddNumberToObject(hp, res->hp_names[i], d) != NULL
                                         : cJSON_AddStringToObject(hp, res->hp_names[i], v) != NULL;
        }
    }
    return json_save(root, ok, path_join(path, sizeof path, s->dir, "trials.json"), err);
}

/* The results table, best first (Markdown), into res->summary and summary.md. */
loom_status write_summary(search *s, loom_error *err) {
    loom_tune_result *res = s->res;
    bool is_hb = s->tc->algorithm == LOOM_TUNE_HYPERBAND;
    const loom_tune_trial **r = ranked(s->tc, res);
    text_out t;
    if (!r || !text_open(&t)) {
        free(r);
        return loom_error_set(err, LOOM_ERR_NOMEM, "out of memory");
    }
    fprintf(t.f, "| rank | trial |%s %s |", is_hb ? " round | epochs |" : "",
            loom_objective_str(s->tc->objective));
    for (int i = 0; i < res->n_hp; i++)
        fprintf(t.f, " %s |", res->hp_names[i]);
    fprintf(t.f, " seconds |\n|---|---|%s---|", is_hb ? "---|---|" : "");
    for (int i = 0; i < res->n_hp; i++)
        fprintf(t.f, "---|");
    fprintf(t.f, "---|\n");
    for (int k = 0; k < res->n_trials; k++) {
        const loom_tune_trial *tr = r[k];
        fprintf(t.f, "| %d | %d |", k + 1, tr->trial + 1);
        if (is_hb)
            fprintf(t.f, " %d | %d |", tr->rung + 1, tr->epochs);
        char sc[32];
        fprintf(t.f, " %s |", loom_objective_fmt(s->tc->objective, tr->score, sc, sizeof sc));
        for (int i = 0; i < res->n_hp; i++)
            fprintf(t.f, " %s |", tr->values[i] ? tr->values[i] : "-");
        fprintf(t.f, " %.1f |\n", tr->seconds);
    }
    free(r);
    fflush(t.f);
    free(res->summary);
    res->summary = t.buf ? strndup(t.buf, t.len) : NULL;
    char path[2048];
    loom_status st = text_save(&t, path_join(path, sizeof path, s->dir, "summary.md"), err);
    if (st == LOOM_OK && !res->summary)
        st = loom_error_set(err, LOOM_ERR_NOMEM, "out of memory");
    return st;
}
