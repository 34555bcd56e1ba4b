/* common.c - console log, flag parsing and error reporting shared by the subcommands. */
#include "cli.h"

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

volatile int cli_stop_flag = 0;

const char *cli_hint_exists = "--force replaces it, --out DIR writes elsewhere";
const char *cli_hint_interrupted = NULL;

int cli_fail(const loom_error *err) {
    const char *hint = err->status == LOOM_ERR_EXISTS        ? cli_hint_exists
                       : err->status == LOOM_ERR_INTERRUPTED ? cli_hint_interrupted
                                                             : NULL;
    fprintf(stderr, "loom: error: %s%s%s%s\n",
            err->msg[0] ? err->msg : loom_status_str(err->status), hint ? " (" : "",
            hint ? hint : "", hint ? ")" : "");
    return err->status == LOOM_ERR_ARG || err->status == LOOM_ERR_EXISTS ? EXIT_USAGE : EXIT_RUN;
}

int cli_usage_error(const char *cmd, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "loom: error: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, " (see 'loom %s --help')\n", cmd);
    va_end(ap);
    return EXIT_USAGE;
}

bool cli_int(const char *cmd, const char *flag, const char *s, int lo, int hi, int *out) {
    char *end;
    errno = 0;
    long v = s ? strtol(s, &end, 10) : 0;
    if (!s || !*s || *end || errno || v < lo || v > hi) {
        cli_usage_error(cmd, "%s expects a whole number from %d to %d, got '%s'", flag, lo, hi,
                        s ? s : "");
        return false;
    }
    *out = (int)v;
    return true;
}

bool cli_double(const char *cmd, const char *flag, const char *s, double lo, double hi,
                double *out) {
    char *end;
    errno = 0;
    double v = s ? strtod(s, &end) : 0;
    if (!s || !*s || *end || errno || !(v >= lo && v <= hi)) {
        cli_usage_error(cmd, "%s expects a number from %g to %g, got '%s'", flag, lo, hi,
                        s ? s : "");
        return false;
    }
    *out = v;
    return true;
}

bool cli_u64(const char *cmd, const char *flag, const char *s, uint64_t *out) {
    char *end;
    errno = 0;
    unsigned long long v = s ? strtoull(s, &end, 10) : 0;
    if (!s || !*s || *end || errno || s[0] == '-') {
        cli_usage_error(cmd, "%s expects a non-negative whole number, got '%s'", flag, s ? s : "");
        return false;
    }
    *out = v;
    return true;
}

void cli_log(void *user, loom_log_kind kind, const char *line) {
    (void)user;
    if (kind == LOOM_LOG_PROGRESS) {
        cli_status_line(line);
        return;
    }
    cli_status_clear();
    fprintf(stderr, "%s\n", line);
}

static void on_signal(int sig) {
    if (cli_stop_flag) {
        signal(sig, SIG_DFL);
        raise(sig);
    }
    cli_stop_flag = 1;
}

void cli_install_signals(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

const char *cli_command_line(int argc, char **argv) {
    static char buf[2048];
    size_t used = 0;
    buf[0] = '\0';
    for (int i = 0; i < argc && used + 2 < sizeof buf; i++) {
        int n = snprintf(buf + used, sizeof buf - used, "%s%s", i ? " " : "", argv[i]);
        if (n < 0)
            break;
        used += (size_t)n;
    }
    if (used >= sizeof buf)
        buf[sizeof buf - 1] = '\0';
    return buf;
}

int cli_bad_option(const char *cmd, char **argv) {
    const char *opt = argv[optind - 1];
    if (optopt != 0) /* a known option without its value */
        return cli_usage_error(cmd, "option '%s' needs a value", opt);
    return cli_usage_error(cmd, "unknown option '%s'", opt);
}

bool cli_is_plots = true;
bool cli_is_passive_auto = false;

typedef struct {
    int n_files;
} plot_count;

static void count_plots(void *user, loom_log_kind kind, const char *line) {
    if (kind == LOOM_LOG_INFO)
        ((plot_count *)user)->n_files++;
    else
        cli_log(NULL, kind, line);
}

void cli_make_plots(const char *run_dir) {
    if (!cli_is_plots)
        return;
    plot_count pc = {0};
    loom_error err = {0};
    if (loom_plot_run(run_dir, false, count_plots, &pc, &err) != LOOM_OK)
        fprintf(stderr, "loom: warning: plots: %s\n", err.msg);
    if (pc.n_files > 0)
        fprintf(stderr, "plots: %d PNG files in %s (loom plot %s --svg for SVG too)\n", pc.n_files,
                run_dir, run_dir);
}
