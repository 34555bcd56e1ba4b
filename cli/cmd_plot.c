/* cmd_plot.c - `loom plot RUN_DIR [--svg]`: every plot the run's files allow, one line per file
 * written on stdout; `loom plot --overlay OUT.png RUN_DIR...`: one history column of several runs
 * on one plot, labelled by model name. */
#include "cli.h"

#include <getopt.h>
#include <string.h>

static void help(void) {
    printf("usage: loom plot RUN_DIR [--svg]\n"
           "       loom plot --overlay OUT.png RUN_DIR... [--column C]\n\n"
           "Makes every plot the run's files allow (PNG, through PLplot):\n"
           "  learning_curves  history.csv: loss and accuracy per epoch, training vs validation\n"
           "  confusion        confusion.csv: heatmap of counts (confusion_norm: per true class)\n"
           "  architecture     summary.txt: one box per layer\n"
           "  trials           trials.csv of a tuning run: score against each hyperparameter\n"
           "  samples          config.txt data_dir: images of every class\n"
           "  misclassified    predictions.csv and the test set: the most confident mistakes\n\n"
           "  --svg             also write an .svg beside each .png\n"
           "  --overlay OUT     draw the runs' validation accuracy per epoch into OUT (.png or\n"
           "                    .svg); a directory of fold runs is drawn as mean ± std\n"
           "  --column C        with --overlay: val_acc (default), acc, val_loss or loss\n");
}

/* Files written go to stdout, warnings to stderr. */
static void plot_log(void *user, loom_log_kind kind, const char *line) {
    (void)user;
    if (kind == LOOM_LOG_INFO)
        printf("%s\n", line);
    else if (kind == LOOM_LOG_WARN)
        fprintf(stderr, "loom: warning: %s\n", line);
}

int cmd_plot(int argc, char **argv) {
    static const struct option opts[] = {{"svg", 0, 0, 's'},
                                         {"overlay", 1, 0, 'o'},
                                         {"column", 1, 0, 'c'},
                                         {"help", 0, 0, 'h'},
                                         {0, 0, 0, 0}};
    bool is_svg = false;
    const char *overlay = NULL, *column = NULL;
    int c;
    optind = 1;
    while ((c = cli_getopt("plot", argc, argv, NULL, opts)) != -1) {
        switch (c) {
        case 's': is_svg = true; break;
        case 'o': overlay = optarg; break;
        case 'c': column = optarg; break;
        case 'h': help(); return 0;
        default: return EXIT_USAGE;
        }
    }
    loom_error err = {0};
    if (overlay) {
        if (optind >= argc)
            return cli_usage_error("plot", "--overlay needs at least one run directory");
        if (is_svg)
            return cli_usage_error("plot", "--svg does not apply to --overlay: name OUT .svg");
        if (loom_plot_overlay_runs(overlay, (const char *const *)(argv + optind), argc - optind,
                                   column, &err))
            return cli_fail(&err);
        printf("%s\n", overlay);
        return 0;
    }
    if (column)
        return cli_usage_error("plot", "--column applies to --overlay only");
    if (optind >= argc)
        return cli_usage_error("plot", "no run directory given");
    if (optind + 1 < argc)
        return cli_usage_error("plot", "unexpected argument '%s' (several runs: --overlay OUT)",
                               argv[optind + 1]);
    if (loom_plot_run(argv[optind], is_svg, plot_log, NULL, &err)) {
        fflush(stdout);
        return cli_fail(&err);
    }
    return 0;
}
