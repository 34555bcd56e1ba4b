/* cli.h - shared pieces of the command-line program: the subcommands, the console log
 * (live progress on a terminal, plain lines in a pipe), flag parsing with clear errors. */
#ifndef LOOM_CLI_H
#define LOOM_CLI_H

#include "loom.h"

int cmd_train(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_summary(int argc, char **argv);
int cmd_models(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_report(int argc, char **argv);
int cmd_study(int argc, char **argv);
int cmd_cv(int argc, char **argv);
int cmd_tune(int argc, char **argv);
int cmd_compare(int argc, char **argv);
int cmd_plot(int argc, char **argv);
int cmd_predict(int argc, char **argv);

/* Exit codes: 0 success, 1 the run failed, 2 usage error. */
enum { EXIT_RUN = 1, EXIT_USAGE = 2 };

/* Prints "loom: error: MSG" to stderr; returns the exit code for the status. */
int cli_fail(const loom_error *err);
int cli_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* After getopt_long returned '?': names the unknown option or the missing value. */
int cli_bad_option(const char *cmd, char **argv);

/* Flag value parsers: print a usage error naming the flag and return false on bad input. */
bool cli_int(const char *cmd, const char *flag, const char *s, int lo, int hi, int *out);
bool cli_double(const char *cmd, const char *flag, const char *s, double lo, double hi,
                double *out);
bool cli_u64(const char *cmd, const char *flag, const char *s, uint64_t *out);

/* The console log callback: user is NULL. Progress lines are redrawn in place on a
 * terminal and dropped in a pipe; other lines go to stderr. */
void cli_log(void *user, loom_log_kind kind, const char *line);

/* progress.c: the live status line, redrawn in place on a terminal and dropped in a pipe or on
 * TERM=dumb; cli_status_clear wipes it before an ordinary line. */
void cli_status_line(const char *line);
void cli_status_clear(void);
/* The progress callback (user is NULL): the Keras-style bar of each epoch on the status line,
 * redrawn at most every 0.25 s and at the epoch's last step. */
void cli_progress(void *user, const loom_progress *p);

/* SIGINT/SIGTERM set this flag (once); a second signal exits at once. */
extern volatile int cli_stop_flag;
void cli_install_signals(void);

/* True when loom found another job keeping a core busy at start and runs with OpenMP workers
 * that sleep between parallel regions (OMP_WAIT_POLICY=passive; main.c). */
extern bool cli_is_passive_auto;

/* False when --no-plots was given (main.c takes it out of argv for train, cv and tune). */
extern bool cli_is_plots;
/* Draws every plot of a finished run (loom_plot_run); a failure is only a warning. */
void cli_make_plots(const char *run_dir);

/* The command line joined with spaces (for config.txt). */
const char *cli_command_line(int argc, char **argv);

/* The training flags cv and tune share with train (cmd_cv.c): --epochs, --batch, --optimizer,
 * --lr, --momentum, --nesterov, --l2, --weight-decay, --clip-norm, --lr-schedule,
 * --early-stopping, named as loom_train_config_set's settings with '-' for '_'. */
struct option;
/* Copies the command's options (mine, NULL-terminated) then the training flags into out
 * (cap entries, terminated); the training flags get the codes CLI_TRAIN_FLAG + i. */
enum { CLI_TRAIN_FLAG = 1000 };
void cli_train_options(struct option *out, int cap, const struct option *mine);
/* Applies training flag code to t (and *lr_schedule); when overrides is not NULL, also appends
 * "key=value\n" to it (n bytes). Prints a usage error and returns false on a bad value. */
bool cli_train_flag(const char *cmd, int code, const char *arg, loom_train_config *t,
                    const char **lr_schedule, char *overrides, size_t n);
void cli_train_help(void); /* the help lines of the training flags */

#endif
