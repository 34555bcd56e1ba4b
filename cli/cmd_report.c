/* cmd_report.c - `loom report RUN_DIR... -o DIR`: the study report of a set of runs. */
#include "cli.h"

#include <getopt.h>
#include <string.h>

int cmd_report(int argc, char **argv) {
    static const struct option opts[] = {
        {"out", 1, 0, 'o'}, {"data", 1, 0, 'd'}, {"help", 0, 0, 'h'}, {0, 0, 0, 0}};
    const char *cmdline = cli_command_line(argc + 1, argv - 1);
    loom_report_config rc = {0};
    int c;
    optind = 1;
    while ((c = cli_getopt("report", argc, argv, "o:", opts)) != -1) {
        switch (c) {
        case 'o': rc.out_dir = optarg; break;
        case 'd': rc.data_dir = optarg; break;
        case 'h':
            printf(
                "usage: loom report RUN_DIR... -o DIR [--data DIR]\n"
                "Writes DIR/REPORT.md and its pictures in DIR/img/: the dataset, the comparison\n"
                "table with the published figures, and per run its summary, architecture,\n"
                "learning curves, confusion heatmaps, per-class report and mistakes; CV and\n"
                "tuning tables where present.\n");
            return 0;
        default: return EXIT_USAGE;
        }
    }
    if (optind >= argc)
        return cli_usage_error("report", "no run directories given");
    if (!rc.out_dir)
        return cli_usage_error("report", "no output directory: -o DIR");
    rc.run_dirs = (const char *const *)(argv + optind);
    rc.n_runs = argc - optind;
    rc.command_line = cmdline;
    rc.log = cli_log;
    loom_error err = {0};
    if (loom_report(&rc, &err))
        return cli_fail(&err);
    printf("%s/REPORT.md\n", rc.out_dir);
    return 0;
}
