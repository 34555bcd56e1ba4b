/* cli.h - shared pieces of the command-line program: the subcommands, the console log
 * (live progress on a terminal, plain lines in a pipe), flag parsing with clear errors. */
#ifndef LOOM_CLI_H
#define LOOM_CLI_H

#include "loom.h"
#include "../src/core/core.h"

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
int cmd_export(int argc, char **argv);
int cmd_quantize(int argc, char **argv);
int cmd_import(int argc, char **argv);

/* Exit codes: 0 success, 1 the run failed, 2 usage error; a run stopped by SIGINT or SIGTERM
 * (LOOM_ERR_INTERRUPTED) exits 128 + the signal, as the shell reports a command it ended. */
enum { EXIT_RUN = 1, EXIT_USAGE = 2 };

/* Prints "loom: error: MSG" to stderr, with the command's hint for an output that exists or an
 * interruption (how to go on, in flags); returns the exit code for the status. */
int cli_fail(const loom_error *err);
extern const char *cli_hint_exists;      /* for LOOM_ERR_EXISTS */
extern const char *cli_hint_interrupted; /* for LOOM_ERR_INTERRUPTED, NULL = none */
int cli_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* getopt_long for every command (set optind = 1 before a scan): returns the option's code (its
 * val), -1 at the end, or '?' after printing one usage error naming the option: unknown, or a
 * value option without its value (at the end of the line, or followed by another option:
 * "--epochs --batch 32" is "--epochs needs a value", never epochs = "--batch"). -h or --help
 * anywhere returns the code of opts' "help" entry ('h' when it has none). shorts: the short
 * options as for getopt ("o:"), or NULL. */
struct option;
int cli_getopt(const char *cmd, int argc, char **argv, const char *shorts,
               const struct option *opts);

/* Flag value parsers: print a usage error naming the flag and return false on bad input. */
bool cli_int(const char *cmd, const char *flag, const char *s, int lo, int hi, int *out);
bool cli_double(const char *cmd, const char *flag, const char *s, double lo, double hi,
                double *out);
bool cli_u64(const char *cmd, const char *flag, const char *s, uint64_t *out);

/* loom_set_threads(n) (0: all cores), with one warning line when n is more than the cores this
 * process may run on: done as asked, only slower. */
void cli_set_threads(int n);

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

/* SIGINT/SIGTERM set this flag to the signal's number (once); a second signal exits at once. */
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

/* The run settings as flags (settings.c): one long option per setting of the library's table
 * that s binds and whose flags meet groups (LOOM_SETTING_*), named as the setting with '-' for
 * '_'. cli_setting_options copies the command's own options (mine, NULL-terminated) then those
 * into out (cap entries, terminated); the settings get the codes CLI_SETTING + i. */
enum { CLI_SETTING = 1000 };
void cli_setting_options(struct option *out, int cap, const struct option *mine,
                         const loom_settings *s, unsigned groups);
/* Applies the setting of code to s; when overrides is not NULL, also appends "name=value\n" to it
 * (n bytes). Prints a usage error naming the flag and returns false on a bad value. */
bool cli_setting(const char *cmd, int code, const char *arg, const loom_settings *s,
                 char *overrides, size_t n);
/* One help line per setting that s binds and groups selects. */
void cli_settings_help(const loom_settings *s, unsigned groups);

#endif
