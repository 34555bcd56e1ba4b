/* trial.c - what the search's rooms share, below them: the objectives, the search's log, a
 * trial's training settings (the search's defaults, the space's lines, the command line's
 * overrides, through the settings table), the executions' seeds and the ranking of trials. */
#include "search.h"

#include <math.h>
#include <stdarg.h>

static bool is_better(loom_objective o, double a, double b) {
    if (isnan(a))
        return false;
    if (isnan(b))
        return true;
    return o == LOOM_OBJECTIVE_VAL_LOSS ? a < b : a > b;
}

/* ---- objectives ---- */

static const char *const objective_names[] = {"val_acc", "val_loss", "val_f1"};

loom_status loom_objective_parse(const char *s, loom_objective *out, loom_error *err) {
    for (int i = 0; i < 3; i++)
        if (strcmp(s, objective_names[i]) == 0) {
            *out = (loom_objective)i;
            return LOOM_OK;
        }
    return loom_error_set(err, LOOM_ERR_ARG,
                          "unknown objective '%s': expected val_acc, val_loss or val_f1", s);
}

const char *loom_objective_str(loom_objective o) {
    return o >= 0 && (int)o < 3 ? objective_names[o] : "?";
}

const char *loom_objective_fmt(loom_objective o, double score, char *buf, size_t n) {
    if (o == LOOM_OBJECTIVE_VAL_LOSS)
        snprintf(buf, n, "%.4f", score);
    else
        snprintf(buf, n, "%.2f%%", 100 * score);
    return buf;
}

void slog(search *s, loom_log_kind kind, const char *fmt, ...) {
    char line[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (s->log_file && kind != LOOM_LOG_PROGRESS) {
        fprintf(s->log_file, "%s\n", line);
        fflush(s->log_file);
    }
    if (s->tc->train.log)
        s->tc->train.log(s->tc->train.log_user, kind, line);
}

/* The trainer's lines during an execution: live progress (epochs too, unless verbose). */
static void exec_line(void *user, loom_log_kind kind, const char *line) {
    search *s = user;
    if (kind == LOOM_LOG_EPOCH && !s->tc->is_verbose)
        kind = LOOM_LOG_PROGRESS;
    else if (kind == LOOM_LOG_INFO && !s->tc->is_verbose)
        return;
    slog(s, kind, "%s%s", s->prefix, line);
}

/* The trainer's progress events during an execution, with its prefix in front. */
static void exec_progress(void *user, const loom_progress *p) {
    search *s = user;
    char label[256];
    snprintf(label, sizeof label, "%s%s", s->prefix, p->label);
    loom_progress q = *p;
    q.label = label;
    s->tc->train.progress(s->tc->train.progress_user, &q);
}

/* Applies "key=value" lines to c; the schedule's text is copied into sched (n bytes). */
static loom_status apply_lines(loom_train_config *c, const char *lines, char *sched, size_t n,
                               const char *what, loom_error *err) {
    if (!lines)
        return LOOM_OK;
    char *copy = strdup(lines);
    if (!copy)
        return loom_error_set(err, LOOM_ERR_NOMEM, "out of memory");
    loom_status st = LOOM_OK;
    char *save = NULL;
    for (char *l = strtok_r(copy, "\n", &save); l && st == LOOM_OK;
         l = strtok_r(NULL, "\n", &save)) {
        char *eq = strchr(l, '=');
        if (!eq) {
            st = loom_error_set(err, LOOM_ERR_ARG, "%s: expected key=value, got '%s'", what, l);
            break;
        }
        *eq = '\0';
        loom_error e2 = {0};
        st = loom_settings_set(&(loom_settings){.train = c}, l, eq + 1, &e2);
        if (st)
            loom_error_set(err, st, "%s: %s", what, e2.msg);
        else if (strcmp(l, "lr_schedule") == 0)
            snprintf(sched, n, "%s", eq + 1);
        c->lr_schedule = sched; /* the setter pointed it into copy, freed below */
    }
    free(copy);
    return st;
}

/* The training settings of a point: the search's defaults, the space's lines, the overrides. */
loom_status trial_config(search *s, const loom_space_point *pt, int epochs, loom_train_config *c,
                         char *sched, size_t n, loom_error *err) {
    *c = s->tc->train;
    snprintf(sched, n, "constant");
    c->lr_schedule = sched;
    loom_status st = apply_lines(c, pt->train_text, sched, n, s->source, err);
    if (st == LOOM_OK)
        st = apply_lines(c, s->tc->train_overrides, sched, n, "command line", err);
    if (epochs > 0)
        c->epochs = epochs;
    c->log = exec_line;
    c->log_user = s;
    if (c->progress) {
        c->progress = exec_progress;
        c->progress_user = s;
    }
    return st;
}

uint64_t exec_seed(const search *s, int t, int e) {
    return loom_seed_derive(
        loom_seed_derive(loom_seed_derive(s->tc->train.seed, STREAM_EXEC), (uint64_t)t),
        (uint64_t)e);
}

/* Ranking: a later round first, then the better score, then the earlier trial. */
static int rank_cmp(const void *pa, const void *pb, void *user) {
    const loom_tune_config *tc = user;
    const loom_tune_trial *a = *(const loom_tune_trial *const *)pa;
    const loom_tune_trial *b = *(const loom_tune_trial *const *)pb;
    if (a->rung != b->rung)
        return b->rung - a->rung;
    if (is_better(tc->objective, a->score, b->score))
        return -1;
    if (is_better(tc->objective, b->score, a->score))
        return 1;
    return a->trial - b->trial;
}

/* res->trials ranked (pointers, malloc'd). */
const loom_tune_trial **ranked(const loom_tune_config *tc, const loom_tune_result *res) {
    const loom_tune_trial **r = malloc(sizeof *r * (size_t)(res->n_trials + 1));
    if (!r)
        return NULL;
    for (int i = 0; i < res->n_trials; i++)
        r[i] = &res->trials[i];
    qsort_r(r, (size_t)res->n_trials, sizeof *r, rank_cmp, (void *)tc);
    return r;
}
