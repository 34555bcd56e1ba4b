/* cmd_compare.c - `loom compare RUN_DIR... [--out DIR]`: fills a loom_compare_config and calls
 * loom_compare; prints the Markdown tables (runs, then McNemar's test for each pair). */
#include "cli.h"

#include <getopt.h>
#include <string.h>

static void help(void) {
    printf("usage: loom compare RUN_DIR... [options]\n"
           "One table of train, cv and tune (best/) run directories: model, parameters, epochs,\n"
           "seconds per epoch, train/validation/test accuracy, macro precision, recall and F1\n"
           "(mean ± std for cross-validation), the published figure; then McNemar's test for\n"
           "every pair of runs with predictions.csv on the same test set.\n\n"
           "  --out DIR     also write DIR/compare.md, compare.csv and compare.json\n"
           "  --alpha X     significance level (default 0.05)\n");
}

int cmd_compare(int argc, char **argv) {
    static const struct option opts[] = {
        {"out", 1, 0, 'o'}, {"alpha", 1, 0, 'a'}, {"help", 0, 0, 'h'}, {0, 0, 0, 0}};
    loom_compare_config cc = {0};
    cc.alpha = 0.05;
    int c;
    optind = 1;
    while ((c = cli_getopt("compare", argc, argv, NULL, opts)) != -1) {
        switch (c) {
        case 'o': cc.out_dir = optarg; break;
        case 'a':
            if (!cli_double("compare", "--alpha", optarg, 1e-9, 0.5, &cc.alpha))
                return EXIT_USAGE;
            break;
        case 'h': help(); return 0;
        default: return EXIT_USAGE;
        }
    }
    if (optind >= argc)
        return cli_usage_error("compare", "no run directories given");
    cc.run_dirs = (const char *const *)(argv + optind);
    cc.n_runs = argc - optind;
    loom_compare_result res;
    loom_error err = {0};
    if (loom_compare(&cc, &res, &err))
        return cli_fail(&err);
    printf("%s", res.markdown);
    loom_compare_result_reset(&res);
    return 0;
}
