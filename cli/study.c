/* study.c - `loom study`: the whole set of studies from one plain-text study file. Each step is
 * one loom command run as a child process (so a step is isolated, killable and resumable on
 * its own) writing its own run directory; the report is made in-process at the end. */
#include "study.h"
#include "../src/core/core.h"

#include <ctype.h>
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <fcntl.h>
#include <unistd.h>

static const char builtin_study[] =
    "# loom's built-in study: every model of SEED-MODELS.md with its zoo defaults, the 5-fold\n"
    "# cross-validation of the RNN and the LSTM, and the keras-tuner random search of the MLP\n"
    "# (5 trials x 2 executions). One loom command per line; '#' starts a comment.\n"
    "train mlp\n"
    "train conv-maxpool\n"
    "train strided-conv\n"
    "train small-conv\n"
    "train drop-norm-l2\n"
    "train keras-v1\n"
    "train keras-v2\n"
    "train cnn1\n"
    "train cnn2\n"
    "train cnn3\n"
    "train rnn\n"
    "train rnn2\n"
    "train lstm\n"
    "train lstm2\n"
    "train gru\n"
    "cv rnn --folds 5\n"
    "cv lstm --folds 5\n"
    "tune builtin:mlp-space --trials 5 --executions-per-trial 2 --standardize --refit all\n";

static const char builtin_mlp_space[] =
    "# The study's MLP search space (keras-tuner random search): 1 to 4 hidden blocks of\n"
    "# dense units from 512/256/128/64/32 with ReLU and dropout 0 to 0.4, input dropout 0 to\n"
    "# 0.3, learning rate 1e-2 or 1e-3 (Adam, decayed by a cosine over 40 epochs).\n"
    "flatten\n"
    "dropout {0.0..0.3 step 0.1 name=input_dropout}\n"
    "repeat {1..4 name=num_layers} {\n"
    "    dense {512|256|128|64|32 name=units} relu\n"
    "    dropout {0.0..0.4 step 0.1 name=dropout}\n"
    "}\n"
    "dense 10 softmax\n"
    "lr {1e-2|1e-3}\n"
    "optimizer adam\n"
    "batch 64\n"
    "epochs 40\n"
    "lr_schedule cosine\n";

const char *cli_study_builtin(void) { return builtin_study; }
const char *cli_space_builtin_mlp(void) { return builtin_mlp_space; }

#define MAX_STEPS 64
#define MAX_ARGS 48

typedef struct {
    char *argv[MAX_ARGS]; /* the command and its words, pointing into the study text copy */
    int argc;
    char slug[160]; /* its directory name under out_dir */
    int line;
} step;

static bool file_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

/* Parses the study text into steps; errors name source:line and the word. */
static loom_status parse_study(char *text, const char *source, step *steps, int *n_steps,
                               loom_error *err) {
    int n = 0, line = 0;
    for (char *p = text; p && *p;) {
        line++;
        char *eol = strchr(p, '\n');
        if (eol)
            *eol = '\0';
        char *hash = strchr(p, '#');
        if (hash)
            *hash = '\0';
        step st = {.line = line};
        for (char *w = strtok(p, " \t\r"); w; w = strtok(NULL, " \t\r")) {
            if (st.argc == MAX_ARGS - 1)
                return loom_error_set(err, LOOM_ERR_FORMAT, "%s:%d: too many words", source, line);
            st.argv[st.argc++] = w;
        }
        if (st.argc > 0) {
            const char *cmd = st.argv[0];
            if (strcmp(cmd, "train") != 0 && strcmp(cmd, "cv") != 0 && strcmp(cmd, "tune") != 0)
                return loom_error_set(err, LOOM_ERR_FORMAT,
                                      "%s:%d: '%s': a step is train, cv or tune", source, line,
                                      cmd);
            if (st.argc < 2 || st.argv[1][0] == '-')
                return loom_error_set(err, LOOM_ERR_FORMAT, "%s:%d: '%s' needs a model or space",
                                      source, line, cmd);
            for (int i = 2; i < st.argc; i++)
                if (strcmp(st.argv[i], "--out") == 0 || strcmp(st.argv[i], "--data") == 0)
                    return loom_error_set(err, LOOM_ERR_FORMAT,
                                          "%s:%d: '%s': the study sets it for every step", source,
                                          line, st.argv[i]);
            if (n == MAX_STEPS)
                return loom_error_set(err, LOOM_ERR_FORMAT, "%s:%d: more than %d steps", source,
                                      line, MAX_STEPS);
            /* the step's directory: model (train), cv-model, tune-space; made unique */
            const char *base = strrchr(st.argv[1], '/');
            base = base ? base + 1 : st.argv[1];
            if (strncmp(base, "builtin:", 8) == 0)
                base += 8;
            char name[128];
            snprintf(name, sizeof name, "%s", base);
            char *dot = strrchr(name, '.');
            if (dot && dot != name)
                *dot = '\0';
            if (strcmp(cmd, "train") == 0)
                snprintf(st.slug, sizeof st.slug, "%s", name);
            else
                snprintf(st.slug, sizeof st.slug, "%s-%s", cmd, name);
            int dup = 1;
            for (int i = 0; i < n; i++)
                if (strncmp(steps[i].slug, st.slug, strlen(st.slug)) == 0)
                    dup++;
            if (dup > 1) {
                size_t l = strlen(st.slug);
                snprintf(st.slug + l, sizeof st.slug - l, "-%d", dup);
            }
            steps[n++] = st;
        }
        p = eol ? eol + 1 : NULL;
    }
    if (n == 0)
        return loom_error_set(err, LOOM_ERR_FORMAT, "%s: no steps", source);
    *n_steps = n;
    return LOOM_OK;
}

/* Runs argv (NULL-terminated) with stdout and stderr to log_path; returns the exit status, or
 * -1 when it could not start. While it runs, a stop request is passed on as SIGINT. */
static int run_child(char *const argv[], const char *log_path, volatile int *stop_flag) {
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        /* a step is a plain loom run of its own, not a member of this process's MPI job */
        for (char **e = environ; *e;) {
            if (strncmp(*e, "OMPI_", 5) == 0 || strncmp(*e, "PMIX_", 5) == 0 ||
                strncmp(*e, "PMI_", 4) == 0) {
                char name[256];
                snprintf(name, sizeof name, "%.*s", (int)strcspn(*e, "="), *e);
                unsetenv(name); /* environ shifts down: look at this slot again */
            } else {
                e++;
            }
        }
        int fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
            close(fd);
        }
        execv(argv[0], argv);
        _exit(127);
    }
    bool is_forwarded = false;
    for (;;) {
        int status;
        pid_t r = waitpid(pid, &status, 0);
        if (r == pid)
            return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        if (r < 0 && errno != EINTR)
            return -1;
        if (stop_flag && *stop_flag && !is_forwarded) {
            kill(pid, SIGINT);
            is_forwarded = true;
        }
    }
}

static void fmt_dur(double s, char *buf, size_t n) {
    if (s >= 3600)
        snprintf(buf, n, "%dh%02dm", (int)(s / 3600), (int)(s / 60) % 60);
    else if (s >= 60)
        snprintf(buf, n, "%dm%02ds", (int)(s / 60), (int)s % 60);
    else
        snprintf(buf, n, "%.0fs", s);
}

/* The built-in MLP space's text into buf (quick: 3 epochs). */
static void space_text(const cli_study_config *sc, char *buf, size_t n) {
    snprintf(buf, n, "%s", builtin_mlp_space);
    char *e = sc->is_quick ? strstr(buf, "epochs 40") : NULL;
    if (e)
        memcpy(e, "epochs 3 ", 9);
}

/* The study directory: refuses one that holds a study unless resuming or forced; writes
 * study.txt (the study's text) and mlp-space.txt (the built-in space; quick: 3 epochs). */
static loom_status prepare_dir(const cli_study_config *sc, const char *out, char *space_path,
                               size_t n_space, loom_error *err) {
    char marker[2300];
    snprintf(marker, sizeof marker, "%s/study.txt", out);
    if (file_exists(marker) && !sc->is_resume && !sc->is_force)
        return loom_error_set(err, LOOM_ERR_EXISTS, "%s: a study is already there", out);
    char *src = NULL;
    if (sc->study_file)
        loom_file_read_all(sc->study_file, &src, NULL, err);
    const char *body = src ? src : builtin_study;
    snprintf(space_path, n_space, "%s/mlp-space.txt", out);
    char sp[sizeof builtin_mlp_space + 16];
    space_text(sc, sp, sizeof sp);
    /* a resumed study is the same study: its steps and --quick as in its first session */
    char *old = NULL, *old_space = NULL;
    loom_status st = LOOM_OK;
    if (sc->is_resume && loom_file_read_all(marker, &old, NULL, NULL) == LOOM_OK &&
        strcmp(old, body) != 0)
        st = loom_error_set(err, LOOM_ERR_ARG,
                            "%s: the study file changed since the study began: restore it, or "
                            "start over with --force",
                            marker);
    else if (sc->is_resume && loom_file_read_all(space_path, &old_space, NULL, NULL) == LOOM_OK &&
             strcmp(old_space, sp) != 0)
        st = loom_error_set(err, LOOM_ERR_ARG,
                            "%s: the study began %s --quick: resume it the same way", out,
                            sc->is_quick ? "without" : "with");
    free(old);
    free(old_space);
    if (st == LOOM_OK)
        st = loom_mkdir_p(out, err);
    if (st) {
        free(src);
        return st;
    }
    loom_remove_stale_tmp(out, 0); /* each step cleans its own directory */
    st = loom_file_write_atomic(marker, body, strlen(body), err);
    free(src);
    if (st)
        return st;
    return loom_file_write_atomic(space_path, sp, strlen(sp), err);
}

/* The command line of step s into argv (MAX_ARGS + 24 entries, NULL-terminated): the step's own
 * words writing into dir, or `train --resume dir` for a training a checkpoint can continue. Its
 * strings point into s, sc, dir, space_path and threads. Sets *is_resumed for a continued one. */
static void step_argv(const cli_study_config *sc, const step *s, const char *dir,
                      const char *space_path, const char *threads, char **argv, bool *is_resumed) {
    int a = 0;
    char ck[2400];
    snprintf(ck, sizeof ck, "%s/checkpoint.loomck", dir);
    bool is_train = strcmp(s->argv[0], "train") == 0;
    argv[a++] = (char *)sc->exe;
    *is_resumed = is_train && sc->is_resume && file_exists(ck);
    if (*is_resumed) {
        argv[a++] = "train";
        argv[a++] = "--resume";
        argv[a++] = (char *)dir;
    } else {
        argv[a++] = s->argv[0];
        argv[a++] = strncmp(s->argv[1], "builtin:", 8) == 0 ? (char *)space_path : s->argv[1];
        for (int k = 2; k < s->argc; k++)
            argv[a++] = s->argv[k];
        if (sc->is_quick) {
            argv[a++] = "--subset";
            argv[a++] = "10000";
            if (strcmp(s->argv[0], "tune") != 0) {
                argv[a++] = "--epochs";
                argv[a++] = "3";
            }
        }
        argv[a++] = "--out";
        argv[a++] = (char *)dir;
        argv[a++] = "--force";
        if (sc->data_dir) {
            argv[a++] = "--data";
            argv[a++] = (char *)sc->data_dir;
        }
        argv[a++] = "--quiet";
    }
    argv[a++] = "--threads";
    argv[a++] = (char *)threads;
    argv[a] = NULL;
}

/* A temporary file's path (in $TMPDIR), made empty; false when none could be made. */
static bool temp_file(char *path, size_t n, const char *text) {
    const char *tmp = getenv("TMPDIR");
    snprintf(path, n, "%s/loom-study-XXXXXX", tmp && *tmp ? tmp : P_tmpdir);
    int fd = mkstemp(path);
    if (fd < 0)
        return false;
    size_t len = strlen(text);
    bool is_ok = write(fd, text, len) == (ssize_t)len;
    close(fd);
    if (!is_ok)
        unlink(path);
    return is_ok;
}

/* Every step checked before the first one runs: each step's command with --check (its model or
 * space, settings and data; nothing is written), so that a mistake on the last line costs
 * seconds, not the hours of the steps before it. An error names the study's line. */
static loom_status check_steps(const cli_study_config *sc, const char *source, const char *out,
                               const step *steps, int n, loom_error *err) {
    char space_path[512], log_path[512], threads[16];
    char sp[sizeof builtin_mlp_space + 16];
    space_text(sc, sp, sizeof sp);
    if (!temp_file(space_path, sizeof space_path, sp))
        return loom_error_set(err, LOOM_ERR_IO, "study: cannot write a temporary file: %s",
                              strerror(errno));
    if (!temp_file(log_path, sizeof log_path, "")) {
        unlink(space_path);
        return loom_error_set(err, LOOM_ERR_IO, "study: cannot write a temporary file: %s",
                              strerror(errno));
    }
    snprintf(threads, sizeof threads, "%d", sc->threads);
    loom_status st = LOOM_OK;
    for (int i = 0; i < n && !st; i++) {
        char dir[2300], *argv[MAX_ARGS + 25];
        bool is_resumed = false;
        snprintf(dir, sizeof dir, "%s/%s", out, steps[i].slug);
        char done_path[2400];
        snprintf(done_path, sizeof done_path, "%s/.done", dir);
        if (sc->is_resume && file_exists(done_path))
            continue; /* finished earlier: it will be skipped */
        step_argv(sc, &steps[i], dir, space_path, threads, argv, &is_resumed);
        int a = 0;
        while (argv[a])
            a++;
        argv[a++] = "--check";
        argv[a] = NULL;
        if (truncate(log_path, 0) != 0) {
            st = loom_error_set(err, LOOM_ERR_IO, "study: cannot write a temporary file");
            break;
        }
        int rc = run_child(argv, log_path, sc->stop_flag);
        if (sc->stop_flag && *sc->stop_flag) {
            st = loom_error_set(err, LOOM_ERR_INTERRUPTED, "study interrupted while checking");
            break;
        }
        if (rc == 0)
            continue;
        /* the step's own error line, without its "loom: error: " */
        char *text = NULL, msg[600] = "";
        if (loom_file_read_all(log_path, &text, NULL, NULL) == LOOM_OK) {
            char *e = strstr(text, "loom: error: ");
            if (e) {
                e += strlen("loom: error: ");
                size_t k = strcspn(e, "\n");
                snprintf(msg, sizeof msg, ": %.*s", (int)(k < 590 ? k : 590), e);
            }
        }
        free(text);
        if (!msg[0])
            snprintf(msg, sizeof msg, " (exit %d)", rc);
        st = loom_error_set(err, LOOM_ERR_ARG, "%s:%d: '%s %s' cannot run%s", source, steps[i].line,
                            steps[i].argv[0], steps[i].argv[1], msg);
    }
    unlink(space_path);
    unlink(log_path);
    return st;
}

/* What the steps loop keeps between steps (for the ETA and the report's provenance). */
typedef struct {
    double t0, spent; /* the study's start; seconds of the steps run in this session */
    int n_run;        /* steps run in this session */
    int n_earlier;    /* steps finished (or begun) in an earlier session */
} study_clock;

/* Runs step i of n (or skips it when it finished earlier) as a child loom process. */
static loom_status run_step(const cli_study_config *sc, const char *out, const step *s, int i,
                            int n, const char *space_path, study_clock *ck, loom_error *err) {
    char dir[2300], done_path[2400], log_path[2400], threads[16];
    snprintf(dir, sizeof dir, "%s/%s", out, s->slug);
    snprintf(done_path, sizeof done_path, "%s/.done", dir);
    snprintf(log_path, sizeof log_path, "%s/%s.log", out, s->slug);
    snprintf(threads, sizeof threads, "%d", sc->threads);
    if (sc->is_resume && file_exists(done_path)) {
        log_printf(sc->log, sc->log_user, LOOM_LOG_INFO, "[%d/%d] %s %s: finished earlier, skipped",
                   i + 1, n, s->argv[0], s->argv[1]);
        ck->n_earlier++;
        return LOOM_OK;
    }
    char *argv[MAX_ARGS + 24];
    bool is_resumed = false;
    step_argv(sc, s, dir, space_path, threads, argv, &is_resumed);
    ck->n_earlier += is_resumed;
    char eta[32] = "?", el[32];
    fmt_dur(loom_now() - ck->t0, el, sizeof el);
    if (ck->n_run > 0)
        fmt_dur(ck->spent / ck->n_run * (n - i), eta, sizeof eta);
    log_printf(sc->log, sc->log_user, LOOM_LOG_INFO, "[%d/%d] %s %s (elapsed %s, ETA %s; log: %s)",
               i + 1, n, s->argv[0], s->argv[1], el, eta, log_path);
    double ts = loom_now();
    int rc = run_child(argv, log_path, sc->stop_flag);
    double dt = loom_now() - ts;
    /* a step that finished is recorded even when a signal came as it ended: its checkpoint is
     * gone, so --resume would otherwise train it again from the start */
    loom_status st = rc == 0 ? loom_file_write_atomic(done_path, "", 0, err) : LOOM_OK;
    if (st)
        return st;
    if (sc->stop_flag && *sc->stop_flag)
        return loom_error_set(err, LOOM_ERR_INTERRUPTED,
                              "study interrupted in step %d (%s %s): continue with 'loom study "
                              "--resume --out %s'",
                              i + 1, s->argv[0], s->argv[1], out);
    if (rc != 0)
        return loom_error_set(err, LOOM_ERR_IO,
                              "study step %d (%s %s, line %d) failed with exit %d: see %s", i + 1,
                              s->argv[0], s->argv[1], s->line, rc, log_path);
    ck->spent += dt;
    ck->n_run++;
    char d[32];
    fmt_dur(dt, d, sizeof d);
    log_printf(sc->log, sc->log_user, LOOM_LOG_INFO, "[%d/%d] %s %s: done in %s", i + 1, n,
               s->argv[0], s->argv[1], d);
    return LOOM_OK;
}

/* The steps: in turn, or under mpirun handed out to the processes (the searches first, then
 * the cross-validations, then the trainings: the largest first), each run by one of them as a
 * child process of its own; the directories are then where every process can see them (one
 * host, or a shared filesystem). */
typedef struct {
    const cli_study_config *sc;
    const char *out, *space_path;
    const step *steps;
    int n;
    study_clock *ck;
} steps_ctx;

static loom_status share_step(void *ctx, int i, void *out, loom_error *err) {
    (void)out;
    steps_ctx *c = ctx;
    return run_step(c->sc, c->out, &c->steps[i], i, c->n, c->space_path, c->ck, err);
}

static int step_weight(const step *s) {
    return strcmp(s->argv[0], "tune") == 0 ? 3 : strcmp(s->argv[0], "cv") == 0 ? 2 : 1;
}

static loom_status run_steps(const cli_study_config *sc, const char *out, const step *steps, int n,
                             const char *space_path, study_clock *ck, loom_error *err) {
    if (loom_dist_size() == 1) {
        loom_status st = LOOM_OK;
        for (int i = 0; i < n && !st; i++)
            st = run_step(sc, out, &steps[i], i, n, space_path, ck, err);
        return st;
    }
    int order[MAX_STEPS], k = 0;
    bool is_done[MAX_STEPS] = {0};
    char unused[MAX_STEPS];
    for (int w = 3; w >= 1; w--)
        for (int i = 0; i < n; i++)
            if (step_weight(&steps[i]) == w)
                order[k++] = i;
    steps_ctx c = {sc, out, space_path, steps, n, ck};
    dist_share_job j = {.n_units = n,
                        .order = order,
                        .out_bytes = 1,
                        .outs = unused,
                        .is_done = is_done,
                        .run = share_step,
                        .ctx = &c};
    return dist_share(&j, err);
}

/* REPORT.md over every step's directory. */
static loom_status write_report(const cli_study_config *sc, const char *out, const step *steps,
                                int n, const study_clock *ck, loom_error *err) {
    size_t n_dirs = n > 0 ? (size_t)n : 1; /* parse_study guarantees n >= 1 */
    const char **dirs = calloc(n_dirs, sizeof *dirs);
    char(*dir_buf)[2048] = calloc(n_dirs, sizeof *dir_buf);
    loom_status st = LOOM_OK;
    if (!dirs || !dir_buf) {
        st = loom_error_set(err, LOOM_ERR_NOMEM, "study: out of memory");
        goto done;
    }
    for (int i = 0; i < n; i++) {
        snprintf(dir_buf[i], sizeof dir_buf[i], "%s/%s", out, steps[i].slug);
        dirs[i] = dir_buf[i];
    }
    log_printf(sc->log, sc->log_user, LOOM_LOG_INFO, "writing the report");
    loom_report_config rc = {
        .run_dirs = dirs,
        .n_runs = n,
        .out_dir = out,
        .data_dir = sc->data_dir,
        .title = "loom study report",
        .note = sc->is_quick ? "Quick study (loom study --quick): every step on a stratified "
                               "subset of 10,000 training images for 3 epochs (the search: 3 "
                               "epochs per execution). The figures show that everything works, "
                               "not what the models can reach: see docs/RESULTS.md for that."
                             : NULL,
        .command_line = sc->command_line,
        .wall_seconds = loom_now() - ck->t0,
        .n_earlier = ck->n_earlier,
        .log = sc->log,
        .log_user = sc->log_user,
    };
    st = loom_report(&rc, err);
done:
    free(dirs);
    free(dir_buf);
    return st;
}

loom_status cli_study_run(const cli_study_config *sc, loom_error *err) {
    const char *out = sc->out_dir ? sc->out_dir : "runs/study";
    char *text = NULL, space_path[2300];
    step *steps = calloc(MAX_STEPS, sizeof *steps);
    if (!steps)
        return loom_error_set(err, LOOM_ERR_NOMEM, "study: out of memory");
    loom_status st = LOOM_OK;
    if (sc->study_file)
        st = loom_file_read_all(sc->study_file, &text, NULL, err);
    else if (!(text = strdup(builtin_study)))
        st = loom_error_set(err, LOOM_ERR_NOMEM, "study: out of memory");
    int n = 0;
    if (!st)
        st = parse_study(text, sc->study_file ? sc->study_file : "builtin study", steps, &n, err);
    /* rank 0 checks every step and makes the directory; the others wait for its verdict */
    if (!st && loom_dist_rank() == 0)
        st = check_steps(sc, sc->study_file ? sc->study_file : "builtin study", out, steps, n, err);
    if (!st && loom_dist_rank() == 0)
        st = prepare_dir(sc, out, space_path, sizeof space_path, err);
    st = loom_dist_agree(st, err);
    if (!st && loom_dist_rank() > 0) /* the same path as rank 0's */
        snprintf(space_path, sizeof space_path, "%s/mlp-space.txt", out);
    study_clock ck = {.t0 = loom_now()};
    if (!st)
        st = run_steps(sc, out, steps, n, space_path, &ck, err);
    if (!st && loom_dist_rank() == 0)
        st = write_report(sc, out, steps, n, &ck, err);
    free(text);
    free(steps);
    return st;
}

loom_status study_parse_text(const char *text, const char *source, int *n_steps, loom_error *err) {
    char *copy = strdup(text);
    step *steps = calloc(MAX_STEPS, sizeof *steps);
    loom_status st = copy && steps
                         ? parse_study(copy, source ? source : "study", steps, n_steps, err)
                         : loom_error_set(err, LOOM_ERR_NOMEM, "study: out of memory");
    free(steps);
    free(copy);
    return st;
}
