/* search.c - hyperparameter search over a space (space.c): random search and successive
 * halving; each execution trains from scratch on one validation split or K folds and is
 * recorded (trials_io.c) as soon as it ends, so that a killed search resumes with the same
 * result; then the best trial is retrained (refit.c). */
#include "search.h"

#include <math.h>
#include <stdarg.h>
#include <unistd.h>

/* ---- the search ---- */

#define POINT_ATTEMPTS 50 /* redraws of a point that repeats an earlier one */

static void fmt_time(double sec, char *buf, size_t n) {
    if (sec >= 3600)
        snprintf(buf, n, "%dh%02dm", (int)(sec / 3600), (int)fmod(sec / 60, 60));
    else if (sec >= 60)
        snprintf(buf, n, "%dm%02ds", (int)(sec / 60), (int)fmod(sec, 60));
    else
        snprintf(buf, n, "%.1fs", sec);
}

/* A number as executions.csv holds it, so that a resumed search computes with the same bits. */
static double as_recorded(double v) {
    char b[40];
    snprintf(b, sizeof b, "%.10g", v);
    return strtod(b, NULL);
}

static bool same_point(const loom_space_point *a, const loom_space_point *b) {
    for (int i = 0; i < a->n_values; i++) {
        const char *x = a->values[i], *y = b->values[i];
        if ((x == NULL) != (y == NULL) || (x && strcmp(x, y) != 0))
            return false;
    }
    return true;
}

/* Point t: drawn from its own stream; redrawn (deterministically) when it repeats a point. */
static loom_status make_point(search *s, int t, loom_error *err) {
    uint64_t base =
        loom_seed_derive(loom_seed_derive(s->tc->train.seed, STREAM_POINT), (uint64_t)t);
    loom_space_point *pt = &s->points[t];
    for (int a = 0; a < POINT_ATTEMPTS; a++) {
        loom_space_point_reset(pt);
        loom_status st = loom_space_sample(s->space, loom_seed_derive(base, (uint64_t)a), pt, err);
        if (st)
            return st;
        bool is_new = true;
        for (int u = 0; u < t && is_new; u++)
            is_new = !same_point(pt, &s->points[u]);
        if (is_new)
            break;
    }
    s->n_points = t + 1;
    return LOOM_OK;
}

static const exec_rec *find_exec(const search *s, int t, int rung, int e) {
    for (int i = 0; i < s->n_done; i++)
        if (s->done[i].trial == t && s->done[i].rung == rung && s->done[i].exec == e)
            return &s->done[i];
    return NULL;
}

/* One execution: trains point t from scratch (on the split, or on each fold) and scores it
 * into x (not recorded). */
static loom_status compute_exec(search *s, int t, int rung, int e, int epochs, exec_rec *x,
                                loom_error *err) {
    const loom_tune_config *tc = s->tc;
    char sched[64];
    loom_train_config c;
    loom_status st = trial_config(s, &s->points[t], epochs, &c, sched, sizeof sched, err);
    if (st)
        return st;
    memset(x, 0, sizeof *x);
    x->trial = t;
    x->rung = rung;
    x->exec = e;
    x->epochs = c.epochs;
    x->seed = exec_seed(s, t, e);
    int n_fits = s->n_folds > 0 ? s->n_folds : 1;
    for (int k = 0; k < n_fits && st == LOOM_OK; k++) {
        c.seed = s->n_folds > 0 ? loom_seed_derive(x->seed, (uint64_t)k) : x->seed;
        loom_history h = {0};
        loom_metrics val = {0};
        st = tune_fit(s->points[t].model_text, s->source, s->ds,
                      s->n_folds > 0 ? &s->folds[k] : &s->split, tc->is_standardize, &c, &h, &val,
                      NULL, err);
        double acc = NAN, loss = NAN;
        for (int i = 0; i < h.n_epochs; i++) {
            if (isnan(acc) || h.epochs[i].val_acc > acc)
                acc = h.epochs[i].val_acc;
            if (isnan(loss) || h.epochs[i].val_loss < loss)
                loss = h.epochs[i].val_loss;
        }
        double f1 = st == LOOM_OK ? val.macro_f1 : NAN;
        x->seconds += h.seconds;
        loom_history_reset(&h);
        loom_metrics_reset(&val);
        if (st == LOOM_ERR_NUMERIC) {
            /* a diverging point scores NaN and ranks last; the search goes on */
            slog(s, LOOM_LOG_WARN, "%s%s: scored NaN", s->prefix, err->msg);
            acc = loss = f1 = NAN;
            st = LOOM_OK;
        }
        x->val_acc += acc / n_fits;
        x->val_loss += loss / n_fits;
        x->val_f1 += f1 / n_fits;
    }
    if (st)
        return st;
    x->val_acc = as_recorded(x->val_acc);
    x->val_loss = as_recorded(x->val_loss);
    x->val_f1 = as_recorded(x->val_f1);
    x->score = tc->objective == LOOM_OBJECTIVE_VAL_LOSS ? x->val_loss
               : tc->objective == LOOM_OBJECTIVE_VAL_F1 ? x->val_f1
                                                        : x->val_acc;
    x->seconds = as_recorded(round(x->seconds * 1000) / 1000);
    x->is_new = true;
    return LOOM_OK;
}

/* compute_exec, then recorded in executions.csv. */
static loom_status run_exec(search *s, int t, int rung, int e, int epochs, exec_rec *x,
                            loom_error *err) {
    loom_status st = compute_exec(s, t, rung, e, epochs, x, err);
    return st ? st : record_exec(s, x, err);
}

/* A signal arrived, or (tests) the allowed number of new executions has run. */
static bool should_stop(const search *s) {
    const loom_tune_config *tc = s->tc;
    return (tc->stop_after > 0 && s->n_new >= tc->stop_after) ||
           (tc->train.stop_flag && *tc->train.stop_flag);
}

static loom_status stopped(search *s, loom_error *err) {
    return loom_error_set(err, LOOM_ERR_INTERRUPTED,
                          "search stopped: %d execution%s %s recorded in %s/executions.csv; "
                          "the search can be resumed",
                          s->n_done, PLURAL(s->n_done), s->n_done == 1 ? "is" : "are", s->dir);
}

/* Evaluates point t at round rung with epochs (0 = its own): every execution, recorded or run;
 * appends the trial to res. *is_replayed: all its executions were already recorded. */
static loom_status run_trial(search *s, int t, int rung, int epochs, bool *is_replayed,
                             loom_error *err) {
    const loom_tune_config *tc = s->tc;
    loom_tune_result *res = s->res;
    double sum = 0, seconds = 0;
    int ep = epochs;
    *is_replayed = true;
    for (int e = 0; e < tc->executions; e++) {
        const exec_rec *rec = find_exec(s, t, rung, e);
        exec_rec x;
        if (rec) {
            x = *rec;
            *is_replayed = *is_replayed && !rec->is_new;
        } else {
            *is_replayed = false;
            snprintf(s->prefix, sizeof s->prefix, "trial %d exec %d/%d: ", t + 1, e + 1,
                     tc->executions);
            loom_status st = run_exec(s, t, rung, e, epochs, &x, err);
            if (st == LOOM_ERR_INTERRUPTED)
                return stopped(s, err);
            if (st) {
                char msg[sizeof err->msg];
                snprintf(msg, sizeof msg, "%s", err->msg);
                return loom_error_set(err, st, "trial %d: %s", t + 1, msg);
            }
            s->n_new++;
        }
        sum += x.score;
        seconds += x.seconds;
        ep = x.epochs;
        /* after the last execution the trial is finished: the caller records it first */
        if (e < tc->executions - 1 && should_stop(s))
            return stopped(s, err);
    }
    loom_tune_trial *more = realloc(res->trials, sizeof *more * (size_t)(res->n_trials + 1));
    if (!more)
        return loom_error_set(err, LOOM_ERR_NOMEM, "out of memory");
    res->trials = more;
    loom_tune_trial *tr = &res->trials[res->n_trials];
    memset(tr, 0, sizeof *tr);
    tr->trial = t;
    tr->rung = rung;
    tr->epochs = ep;
    tr->score = sum / tc->executions;
    tr->seconds = seconds;
    tr->values = calloc((size_t)res->n_hp + 1, sizeof *tr->values);
    if (!tr->values)
        return loom_error_set(err, LOOM_ERR_NOMEM, "out of memory");
    res->n_trials++;
    for (int i = 0; i < res->n_hp; i++)
        if (s->points[t].values[i] && !(tr->values[i] = strdup(s->points[t].values[i])))
            return loom_error_set(err, LOOM_ERR_NOMEM, "out of memory");
    return LOOM_OK;
}

static void update_best(search *s) {
    loom_tune_result *res = s->res;
    res->best = -1;
    const loom_tune_trial **r = ranked(s->tc, res);
    if (r && res->n_trials > 0)
        res->best = (int)(r[0] - res->trials);
    free(r);
}

/* "trial 3/5: val_acc 87.12%, best 88.01% (trial 1), 34.2 s, elapsed 1m41s | name=v [best] ..." */
static void trial_line(search *s, const loom_tune_trial *tr, int n_total, bool is_replayed) {
    const loom_tune_result *res = s->res;
    const loom_tune_trial *b = &res->trials[res->best];
    char line[4096], el[32], round_s[64] = "";
    fmt_time(loom_now() - s->t_start, el, sizeof el);
    if (s->tc->algorithm == LOOM_TUNE_HYPERBAND)
        snprintf(round_s, sizeof round_s, " round %d (%d epoch%s)", tr->rung + 1, tr->epochs,
                 PLURAL(tr->epochs));
    char sc[32], bsc[32];
    loom_objective_fmt(s->tc->objective, tr->score, sc, sizeof sc);
    loom_objective_fmt(s->tc->objective, b->score, bsc, sizeof bsc);
    size_t used =
        (size_t)snprintf(line, sizeof line,
                         "trial %d/%d%s: %s %s, best %s (trial %d), %.1f s%s, "
                         "elapsed %s |",
                         tr->trial + 1, n_total, round_s, loom_objective_str(s->tc->objective), sc,
                         bsc, b->trial + 1, tr->seconds, is_replayed ? " (recorded)" : "", el);
    for (int i = 0; i < res->n_hp && used < sizeof line; i++) {
        const char *v = tr->values[i], *bv = b->values[i];
        if (!v && !bv)
            continue;
        bool is_same = v && bv && strcmp(v, bv) == 0;
        if (is_same || b == tr)
            used += (size_t)snprintf(line + used, sizeof line - used, " %s=%s", res->hp_names[i],
                                     v ? v : "-");
        else
            used += (size_t)snprintf(line + used, sizeof line - used, " %s=%s [%s]",
                                     res->hp_names[i], v ? v : "-", bv ? bv : "-");
    }
    slog(s, LOOM_LOG_INFO, "%s", line);
}

/* ---- the algorithms ---- */

static bool budget_spent(search *s) {
    if (s->tc->budget_minutes <= 0 || loom_now() - s->t_start < 60 * s->tc->budget_minutes)
        return false;
    if (!s->res->is_budget_reached)
        slog(s, LOOM_LOG_INFO, "the budget of %g minutes is spent: no new trials",
             s->tc->budget_minutes);
    s->res->is_budget_reached = true;
    return true;
}

static loom_status after_trial(search *s, int n_total, bool is_replayed, loom_error *err) {
    update_best(s);
    trial_line(s, &s->res->trials[s->res->n_trials - 1], n_total, is_replayed);
    loom_status st = loom_dist_rank() == 0 ? write_trials(s, err) : LOOM_OK;
    if (st == LOOM_OK && should_stop(s))
        st = stopped(s, err); /* the finished trial is in trials.csv */
    return st;
}

/* ---- executions shared by the job's processes ----
 * Under mpirun the executions of a round (every trial of a random search; the points alive in a
 * round of successive halving) are handed out to the processes, largest first, each trained by
 * one process alone; rank 0 records each as it arrives. The search then goes on as in one
 * process, finding every execution recorded: the same trials, tables and pictures. */

typedef struct {
    search *s;
    const int *trials; /* the round's points */
    int rung, epochs;
} share_ctx;

static loom_status share_run(void *ctx, int u, void *out, loom_error *err) {
    share_ctx *c = ctx;
    search *s = c->s;
    int E = s->tc->executions, t = c->trials[u / E], e = u % E;
    exec_rec *x = out;
    memset(x, 0, sizeof *x);
    if (budget_spent(s)) { /* not run: the budget is spent */
        x->trial = -1;
        return LOOM_OK;
    }
    snprintf(s->prefix, sizeof s->prefix, "trial %d exec %d/%d: ", t + 1, e + 1, E);
    return compute_exec(s, t, c->rung, e, c->epochs, x, err);
}

static loom_status share_record(void *ctx, int u, const void *out, loom_error *err) {
    (void)u;
    search *s = ((share_ctx *)ctx)->s;
    const exec_rec *x = out;
    if (x->trial < 0)
        return LOOM_OK;
    s->n_new++;
    return record_exec(s, x, err);
}

/* The cost of training point t for epochs (0: its own), to hand out the largest first. */
static double point_cost(search *s, int t, int epochs) {
    char sched[64];
    loom_train_config c;
    loom_error e = {0};
    loom_model *m = NULL;
    if (trial_config(s, &s->points[t], epochs, &c, sched, sizeof sched, &e) ||
        loom_model_create(&m, s->points[t].model_text, s->source, s->ds->H, s->ds->W, s->ds->C, &e))
        return 0;
    double cost = (double)c.epochs * (loom_model_flops(m) + 1);
    loom_model_destroy(m);
    return cost;
}

/* Units by cost, the largest first (ties: in order); costs is qsort_r's argument. */
static int by_cost(const void *a, const void *b, void *costs) {
    const double *c = costs;
    double ca = c[*(const int *)a], cb = c[*(const int *)b];
    return ca < cb ? 1 : ca > cb ? -1 : *(const int *)a - *(const int *)b;
}

/* Trains the executions of trials (n of them) at round rung that are not recorded yet, over the
 * job's processes. Nothing to do in a world of one: the search trains them in turn. */
static loom_status share_round(search *s, const int *trials, int n, int rung, int epochs,
                               loom_error *err) {
    if (loom_dist_size() <= 1)
        return LOOM_OK;
    int E = s->tc->executions, n_units = n * E;
    exec_rec *outs = calloc((size_t)n_units, sizeof *outs);
    bool *is_done = calloc((size_t)n_units, sizeof *is_done);
    bool *was_done = calloc((size_t)n_units, sizeof *was_done);
    int *order = malloc(sizeof *order * (size_t)n_units);
    double *cost = malloc(sizeof *cost * (size_t)n_units);
    loom_status st = LOOM_OK;
    if (!outs || !is_done || !was_done || !order || !cost) {
        st = loom_error_set(err, LOOM_ERR_NOMEM, "out of memory");
        goto done;
    }
    for (int u = 0; u < n_units; u++) {
        was_done[u] = is_done[u] = find_exec(s, trials[u / E], rung, u % E) != NULL;
        cost[u] = u % E == 0 ? point_cost(s, trials[u / E], epochs) : cost[u - 1];
        order[u] = u;
    }
    qsort_r(order, (size_t)n_units, sizeof *order, by_cost, cost);
    share_ctx ctx = {s, trials, rung, epochs};
    dist_share_job j = {.n_units = n_units,
                        .order = order,
                        .out_bytes = sizeof *outs,
                        .outs = outs,
                        .is_done = is_done,
                        .run = share_run,
                        .record = share_record,
                        .ctx = &ctx};
    st = dist_share(&j, err);
    /* the other processes learn what rank 0 recorded */
    for (int u = 0; u < n_units && loom_dist_rank() > 0; u++)
        if (is_done[u] && !was_done[u] && outs[u].trial >= 0) {
            if (!grow((void **)&s->done, &s->cap_done, s->n_done + 1, sizeof *s->done)) {
                loom_dist_abort(1);
                break;
            }
            s->done[s->n_done++] = outs[u];
        }
    if (st == LOOM_ERR_INTERRUPTED)
        st = stopped(s, err);
done:
    free(outs);
    free(is_done);
    free(was_done);
    free(order);
    free(cost);
    return st;
}

/* Whether every execution of trial t at round rung is recorded. */
static bool is_recorded(const search *s, int t, int rung) {
    for (int e = 0; e < s->tc->executions; e++)
        if (!find_exec(s, t, rung, e))
            return false;
    return true;
}

static loom_status random_search(search *s, loom_error *err) {
    int N = s->tc->trials;
    bool is_shared = loom_dist_size() > 1;
    if (is_shared) { /* every point first, then their executions over the processes */
        int *all = malloc(sizeof(int) * (size_t)N);
        loom_status st = all ? LOOM_OK : loom_error_set(err, LOOM_ERR_NOMEM, "out of memory");
        for (int t = 0; t < N && st == LOOM_OK; t++) {
            all[t] = t;
            st = make_point(s, t, err);
        }
        if (st == LOOM_OK)
            st = share_round(s, all, N, 0, 0, err);
        free(all);
        if (st)
            return st;
    }
    for (int t = 0; t < N; t++) {
        loom_status st = make_point(s, t, err);
        if (st)
            return st;
        /* shared: the trials the processes did not reach within the budget */
        if (is_shared ? !is_recorded(s, t, 0) : budget_spent(s))
            break;
        bool is_replayed;
        if ((st = run_trial(s, t, 0, 0, &is_replayed, err)) ||
            (st = after_trial(s, N, is_replayed, err)))
            return st;
    }
    return LOOM_OK;
}

/* Successive halving: every point gets few epochs; the best 1/eta go on with eta x the epochs,
 * retrained from scratch, until the last round trains for the full epochs. */
static loom_status hyperband(search *s, loom_error *err) {
    int N = s->tc->trials, eta = s->tc->eta, E = s->base_epochs;
    int R = 1; /* rounds: while both the points and the epochs can shrink by eta */
    for (long p = eta; N / p >= 1 && E / p >= 1; p *= eta)
        R++;
    int *alive = malloc(sizeof(int) * (size_t)N);
    if (!alive)
        return loom_error_set(err, LOOM_ERR_NOMEM, "out of memory");
    loom_status st = LOOM_OK;
    for (int t = 0; t < N && st == LOOM_OK; t++) {
        alive[t] = t;
        st = make_point(s, t, err);
    }
    slog(s, LOOM_LOG_INFO, "successive halving: %d round%s, eta %d, up to %d epoch%s", R, PLURAL(R),
         eta, E, PLURAL(E));
    int n_alive = N;
    for (int r = 0; r < R && st == LOOM_OK; r++) {
        double div = pow(eta, R - 1 - r);
        int epochs = (int)lround(E / div);
        if (epochs < 1)
            epochs = 1;
        int first = s->res->n_trials;
        bool is_shared = loom_dist_size() > 1;
        if (is_shared && (st = share_round(s, alive, n_alive, r, epochs, err)))
            break;
        for (int i = 0; i < n_alive && st == LOOM_OK; i++) {
            bool is_replayed;
            if (is_shared ? !is_recorded(s, alive[i], r) : budget_spent(s))
                goto done;
            if ((st = run_trial(s, alive[i], r, epochs, &is_replayed, err)) == LOOM_OK)
                st = after_trial(s, N, is_replayed, err);
        }
        if (st || r == R - 1)
            break;
        /* keep the best n / eta of this round */
        int n_keep = (int)(N / pow(eta, r + 1));
        if (n_keep < 1)
            n_keep = 1;
        loom_tune_result this_round = *s->res;
        this_round.trials = s->res->trials + first;
        this_round.n_trials = s->res->n_trials - first;
        const loom_tune_trial **rk = ranked(s->tc, &this_round);
        if (!rk) {
            st = loom_error_set(err, LOOM_ERR_NOMEM, "out of memory");
            break;
        }
        for (int i = 0; i < n_keep; i++)
            alive[i] = rk[i]->trial;
        free(rk);
        n_alive = n_keep;
        int next = (int)lround(E / pow(eta, R - 2 - r));
        slog(s, LOOM_LOG_INFO, "round %d done: %d point%s go%s on to %d epoch%s", r + 1, n_keep,
             PLURAL(n_keep), n_keep == 1 ? "es" : "", next, PLURAL(next));
    }
done:
    free(alive);
    return st;
}

/* ---- entry points ---- */

void loom_tune_config_init(loom_tune_config *tc) {
    memset(tc, 0, sizeof *tc);
    tc->trials = 10;
    tc->executions = 1;
    tc->eta = 3;
    tc->val_split = 0.2;
    loom_train_config_init(&tc->train);
}

void loom_tune_result_reset(loom_tune_result *r) {
    for (int t = 0; r->trials && t < r->n_trials; t++) {
        for (int i = 0; r->trials[t].values && i < r->n_hp; i++)
            free(r->trials[t].values[i]);
        free(r->trials[t].values);
    }
    for (int i = 0; r->hp_names && i < r->n_hp; i++)
        free(r->hp_names[i]);
    free(r->hp_names);
    free(r->trials);
    free(r->summary);
    loom_metrics_reset(&r->test);
    memset(r, 0, sizeof *r);
}

static loom_status check_config(const loom_tune_config *tc, loom_error *err) {
    if (tc->trials < 1 || tc->trials > 100000)
        return loom_error_set(err, LOOM_ERR_ARG, "trials must be from 1 to 100000, got %d",
                              tc->trials);
    if (tc->executions < 1 || tc->executions > 1000)
        return loom_error_set(err, LOOM_ERR_ARG,
                              "executions per trial must be from 1 to 1000, got %d",
                              tc->executions);
    if (tc->algorithm == LOOM_TUNE_HYPERBAND && (tc->eta < 2 || tc->eta > 100))
        return loom_error_set(err, LOOM_ERR_ARG, "eta must be from 2 to 100, got %d", tc->eta);
    if (tc->cv_folds == 1 || tc->cv_folds < 0 || tc->cv_folds > 100)
        return loom_error_set(err, LOOM_ERR_ARG,
                              "cv folds must be 0 (off) or from 2 to 100, got %d", tc->cv_folds);
    if (!(tc->val_split > 0 && tc->val_split < 1))
        return loom_error_set(err, LOOM_ERR_ARG, "val_split must be in (0, 1), got %g",
                              tc->val_split);
    if (!(tc->budget_minutes >= 0))
        return loom_error_set(err, LOOM_ERR_ARG, "the budget in minutes must be >= 0");
    return LOOM_OK;
}

/* A searched setting cannot also be fixed on the command line; hyperband owns the epochs. */
static loom_status check_overrides(search *s, loom_error *err) {
    const loom_space *sp = s->space;
    for (int i = 0; i < sp->n_items; i++) {
        const space_item *it = &sp->items[i];
        if (!it->is_setting || it->hp[1] < 0)
            continue;
        const char *key = it->words[0];
        if (s->tc->algorithm == LOOM_TUNE_HYPERBAND && strcmp(key, "epochs") == 0)
            return loom_error_set(err, LOOM_ERR_ARG,
                                  "%s:%d: successive halving sets the epochs: they cannot be "
                                  "searched",
                                  s->source, it->line);
        for (const char *l = s->tc->train_overrides; l && *l;) {
            size_t n = strcspn(l, "=\n");
            if (n == strlen(key) && strncmp(l, key, n) == 0)
                return loom_error_set(err, LOOM_ERR_ARG,
                                      "the command line sets %s, which %s:%d searches", key,
                                      s->source, it->line);
            l += strcspn(l, "\n");
            l += *l == '\n';
        }
    }
    return LOOM_OK;
}

static loom_status prepare_data(search *s, const loom_dataset *train, loom_dataset **sub,
                                loom_error *err) {
    const loom_tune_config *tc = s->tc;
    loom_status st;
    s->ds = train;
    if (tc->subset > 0 && tc->subset < train->n) {
        if ((st = loom_dataset_subset(sub, train, tc->subset, tc->train.seed, err)))
            return st;
        s->ds = *sub;
    }
    uint64_t split_seed = loom_seed_derive(tc->train.seed, STREAM_SPLIT);
    if ((st = loom_split_create(&s->split, s->ds, tc->val_split, LOOM_SPLIT_STRATIFIED, split_seed,
                                err)))
        return st;
    if (tc->cv_folds > 0) {
        if (!(s->folds = calloc((size_t)tc->cv_folds, sizeof *s->folds)))
            return loom_error_set(err, LOOM_ERR_NOMEM, "out of memory");
        for (int k = 0; k < tc->cv_folds; k++, s->n_folds++)
            if ((st = loom_split_kfold(&s->folds[k], s->ds, tc->cv_folds, k, split_seed, err)))
                return st;
    }
    return LOOM_OK;
}

/* res's hyperparameter names (the space's) and room for the trials' points. */
static loom_status init_result(search *s, loom_error *err) {
    loom_tune_result *res = s->res;
    res->n_hp = s->space->n_hp;
    res->hp_names = calloc((size_t)res->n_hp + 1, sizeof *res->hp_names);
    s->points = calloc((size_t)s->tc->trials, sizeof *s->points);
    if (!res->hp_names || !s->points)
        return loom_error_set(err, LOOM_ERR_NOMEM, "out of memory");
    for (int i = 0; i < res->n_hp; i++)
        if (!(res->hp_names[i] = strdup(s->space->hps[i].name)))
            return loom_error_set(err, LOOM_ERR_NOMEM, "out of memory");
    return LOOM_OK;
}

/* The epochs every point trains for (successive halving's last round): point 0's. */
static loom_status find_base_epochs(search *s, loom_error *err) {
    loom_status st = make_point(s, 0, err);
    if (st)
        return st;
    char sched[64];
    loom_train_config c;
    if ((st = trial_config(s, &s->points[0], 0, &c, sched, sizeof sched, err)))
        return st;
    s->base_epochs = c.epochs;
    return LOOM_OK;
}

/* The search directory: --out, or runs/tune-<the space file's name without extension>. */
static void choose_dir(search *s) {
    if (s->tc->out_dir) {
        snprintf(s->dir, sizeof s->dir, "%s", s->tc->out_dir);
    } else {
        char stem[256];
        const char *slash = strrchr(s->source, '/');
        snprintf(stem, sizeof stem, "%s", slash ? slash + 1 : s->source);
        stem[strcspn(stem, ".")] = '\0';
        default_run_dir(s->dir, sizeof s->dir, "tune-", stem);
    }
    snprintf(s->res->out_dir, sizeof s->res->out_dir, "%s", s->dir);
}

/* The search's opening lines: what is searched, on what, for what. */
static void log_start(search *s) {
    const loom_tune_config *tc = s->tc;
    const char *algorithm = tc->algorithm == LOOM_TUNE_HYPERBAND ? "hyperband" : "random";
    if (s->n_folds > 0)
        slog(s, LOOM_LOG_INFO,
             "loom %s: %s search over %d hyperparameters of %s on %d examples, %d-fold CV; "
             "objective %s, %d trial%s x %d execution%s, seed %llu",
             LOOM_VERSION, algorithm, s->res->n_hp, s->source, s->ds->n, s->n_folds,
             loom_objective_str(tc->objective), tc->trials, PLURAL(tc->trials), tc->executions,
             PLURAL(tc->executions), (unsigned long long)tc->train.seed);
    else
        slog(s, LOOM_LOG_INFO,
             "loom %s: %s search over %d hyperparameters of %s on %d examples (%d validation); "
             "objective %s, %d trial%s x %d execution%s, seed %llu",
             LOOM_VERSION, algorithm, s->res->n_hp, s->source, s->split.n_train, s->split.n_val,
             loom_objective_str(tc->objective), tc->trials, PLURAL(tc->trials), tc->executions,
             PLURAL(tc->executions), (unsigned long long)tc->train.seed);
    if (tc->subset > s->ds->n)
        slog(s, LOOM_LOG_WARN,
             "warning: subset %d is more than the %d training examples: all of them are used",
             tc->subset, s->ds->n);
    if (loom_dist_size() > 1)
        slog(s, LOOM_LOG_INFO, "the executions shared by %d processes x %d threads",
             loom_dist_size(), loom_get_threads());
    slog(s, LOOM_LOG_INFO, "each trial: its values, and [the best trial's] where they differ");
}

/* The search itself once set up: the trials, the results table, the best retrained. */
static loom_status search_and_refit(search *s, loom_error *err) {
    const loom_tune_config *tc = s->tc;
    loom_status st =
        tc->algorithm == LOOM_TUNE_HYPERBAND ? hyperband(s, err) : random_search(s, err);
    if (st)
        return st;
    if (s->res->n_trials == 0)
        return loom_error_set(err, LOOM_ERR_ARG, "no trial finished within the budget");
    if (loom_dist_rank() > 0) /* rank 0 writes the results and retrains the best */
        return LOOM_OK;
    if ((st = write_summary(s, err)))
        return st;
    return tc->is_skip_best ? LOOM_OK : retrain_best(s, err);
}

/* Rank 0's recorded executions (a resumed search's), sent to the other processes. */
static loom_status share_recorded(search *s, loom_error *err) {
    int n = s->n_done;
    dist_bcast(&n, sizeof n, 0);
    if (loom_dist_rank() > 0 && !grow((void **)&s->done, &s->cap_done, n, sizeof *s->done)) {
        loom_dist_abort(1);
        return loom_error_set(err, LOOM_ERR_NOMEM, "out of memory");
    }
    dist_bcast(s->done, sizeof *s->done * (size_t)n, 0);
    s->n_done = n;
    return LOOM_OK;
}

/* Closes the search's files and frees what it holds (not res). */
static void search_free(search *s) {
    if (s->exec_fd >= 0)
        close(s->exec_fd);
    if (s->log_file)
        fclose(s->log_file);
    for (int t = 0; s->points && t < s->n_points; t++)
        loom_space_point_reset(&s->points[t]);
    free(s->points);
    for (int k = 0; k < s->n_folds; k++)
        loom_split_reset(&s->folds[k]);
    free(s->folds);
    loom_split_reset(&s->split);
    free(s->done);
    loom_space_destroy(s->space);
}

loom_status loom_tune_run(const loom_tune_config *tc, const loom_dataset *train,
                          const loom_dataset *test, loom_tune_result *res, loom_error *err) {
    loom_error own; /* err may be NULL; the search reads the messages it gets back */
    if (!err)
        err = &own;
    memset(res, 0, sizeof *res);
    res->best = -1;
    search s = {0};
    s.tc = tc;
    s.res = res;
    s.test = tc->is_skip_best ? NULL : test;
    s.exec_fd = -1;
    s.t_start = loom_now();
    s.source = tc->space_file ? tc->space_file : "space";
    char *file_text = NULL, *settings = NULL;
    loom_dataset *sub = NULL;
    const char *text = tc->space_text;
    loom_status st = check_config(tc, err);
    if (st == LOOM_OK)
        st = loom_dataset_check_test(train, s.test, err);
    if (st)
        return st;
    if (!text) {
        if (!tc->space_file)
            return loom_error_set(err, LOOM_ERR_ARG, "no search space given");
        if ((st = loom_file_read_all(tc->space_file, &file_text, NULL, err)))
            return st;
        text = file_text;
    }
    if ((st = loom_space_parse(&s.space, text, s.source, err)) || (st = check_overrides(&s, err)) ||
        (st = init_result(&s, err)) || (st = find_base_epochs(&s, err)) ||
        (st = prepare_data(&s, train, &sub, err)) || tc->is_check_only)
        goto done;
    choose_dir(&s);
    if (!(settings = settings_text(&s, text))) {
        st = loom_error_set(err, LOOM_ERR_NOMEM, "out of memory");
        goto done;
    }
    /* rank 0 keeps the search's files; the others learn what is recorded */
    st = loom_dist_rank() == 0 ? open_state(&s, settings, err) : LOOM_OK;
    if ((st = loom_dist_agree(st, err)))
        goto done;
    if (loom_dist_size() > 1 && (st = share_recorded(&s, err)))
        goto done;
    log_start(&s);
    st = search_and_refit(&s, err);
done:
    if (st == LOOM_ERR_INTERRUPTED && s.log_file)
        fprintf(s.log_file, "%s\n", err->msg);
    search_free(&s);
    loom_dataset_destroy(sub);
    free(file_text);
    free(settings);
    return st;
}

loom_status loom_tune(const loom_tune_config *tc, loom_tune_result *res, loom_error *err) {
    memset(res, 0, sizeof *res);
    loom_dataset *train = NULL, *test = NULL;
    loom_status st = load_data(tc->data_dir, !tc->is_skip_best, &train, &test, err);
    if (st == LOOM_OK)
        st = loom_tune_run(tc, train, test, res, err);
    loom_dataset_destroy(train);
    loom_dataset_destroy(test);
    return st;
}
