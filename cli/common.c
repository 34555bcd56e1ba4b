/* common.c - console log, flag parsing and error reporting shared by the subcommands. */
#include "cli.h"

#include <errno.h>
#include <getopt.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

volatile int cli_stop_flag = 0;

const char *cli_hint_exists = "--force replaces it, --out DIR writes elsewhere";
const char *cli_hint_interrupted = NULL;

int cli_fail(const loom_error *err) {
    /* another process of the job failed (its own message says why), or all stopped alike (rank
     * 0 says where) */
    if (loom_dist_rank() > 0 &&
        (loom_dist_is_other_failure(err) || err->status == LOOM_ERR_INTERRUPTED ||
         err->status == LOOM_ERR_NUMERIC))
        return err->status == LOOM_ERR_ARG || err->status == LOOM_ERR_EXISTS ? EXIT_USAGE
                                                                             : EXIT_RUN;
    const char *hint = err->status == LOOM_ERR_EXISTS        ? cli_hint_exists
                       : err->status == LOOM_ERR_INTERRUPTED ? cli_hint_interrupted
                                                             : NULL;
    fprintf(stderr, "loom: error: %s%s%s%s\n",
            err->msg[0] ? err->msg : loom_status_str(err->status), hint ? " (" : "",
            hint ? hint : "", hint ? ")" : "");
    if (err->status == LOOM_ERR_INTERRUPTED) /* as the shell reports a command the signal ended */
        return 128 + (cli_stop_flag > 0 ? cli_stop_flag : SIGINT);
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
    if (loom_dist_job_rank() > 0) /* rank 0 speaks for the job */
        return;
    (void)user;
    if (kind == LOOM_LOG_PROGRESS) {
        cli_status_line(line);
        return;
    }
    cli_status_clear();
    /* the library's warnings read "warning: ..."; on the console they are loom's, as its errors */
    bool is_warning = kind == LOOM_LOG_WARN && strncmp(line, "warning: ", 9) == 0;
    fprintf(stderr, "%s%s\n", is_warning ? "loom: " : "", line);
}

static void on_signal(int sig) {
    if (cli_stop_flag) {
        signal(sig, SIG_DFL);
        raise(sig);
    }
    cli_stop_flag = sig;
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

/* The word the user typed for the option getopt_long is at ("--epochs", "-o"), without "=VALUE". */
static const char *option_word(const char *w, char *buf, size_t n) {
    snprintf(buf, n, "%s", w);
    char *eq = strchr(buf, '=');
    if (eq && buf[0] == '-' && buf[1] == '-')
        *eq = '\0';
    return buf;
}

int cli_getopt(const char *cmd, int argc, char **argv, const char *shorts,
               const struct option *opts) {
    /* -h or --help anywhere before "--" asks for the help, whatever else the line holds */
    int help = 'h';
    for (const struct option *o = opts; o->name; o++)
        if (strcmp(o->name, "help") == 0)
            help = o->val;
    for (int i = 1; i < argc && strcmp(argv[i], "--") != 0; i++)
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0)
            return help;
    char optstring[64], word[256];
    snprintf(optstring, sizeof optstring, ":%s", shorts ? shorts : ""); /* ':' = missing value */
    opterr = 0;
    int li = -1;
    int c = getopt_long(argc, argv, optstring, opts, &li);
    if (c == ':') { /* a value option at the end of the line */
        const char *w = option_word(argv[optind - 1], word, sizeof word);
        for (const struct option *o = opts; w[1] == '-' && o->name; o++)
            if (o->val == optopt && o->has_arg == required_argument)
                snprintf(word, sizeof word, "--%s", o->name);
        cli_usage_error(cmd, "%s needs a value", word);
        return '?';
    }
    if (c == '?') {
        if (optopt > 0 && optopt < 256 && argv[optind - 1][1] != '-')
            snprintf(word, sizeof word, "-%c", optopt);
        else
            option_word(argv[optind - 1], word, sizeof word);
        cli_usage_error(cmd, "unknown option '%s'", word);
        return '?';
    }
    /* a value taken from the next word that is itself an option ("--epochs --batch 32"): the
     * value is missing, not "--batch" */
    if (c != -1 && optarg && optind >= 2 && optarg == argv[optind - 1] &&
        strncmp(optarg, "--", 2) == 0) {
        if (li >= 0)
            snprintf(word, sizeof word, "--%s", opts[li].name);
        else
            option_word(argv[optind - 2], word, sizeof word);
        cli_usage_error(cmd, "%s needs a value (got the option '%s')", word, optarg);
        return '?';
    }
    return c;
}

void cli_set_threads(int n) {
    cpu_set_t cpus;
    int n_cores = sched_getaffinity(0, sizeof cpus, &cpus) == 0
                      ? CPU_COUNT(&cpus)
                      : (int)sysconf(_SC_NPROCESSORS_ONLN);
    if (n > n_cores && n_cores > 0)
        fprintf(stderr,
                "loom: warning: --threads %d is more than the %d core%s loom may use: as asked, "
                "but slower (the results do not change)\n",
                n, n_cores, PLURAL(n_cores));
    loom_set_threads(n);
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
