/* cmd_study.c - `loom study [STUDY_FILE]`: loom's main job, every study in one command. */
#include "cli.h"
#include "study.h"

#include <getopt.h>
#include <string.h>

static void help(void) {
    printf("usage: loom study [STUDY_FILE] [--quick] [--resume] [--force] [--out DIR]\n"
           "                  [--data DIR] [--threads N] [--print]\n\n"
           "Runs every step of the study (default: the built-in one: every zoo model, 5-fold CV\n"
           "of rnn and lstm, the MLP random search), then writes DIR/REPORT.md (default DIR\n"
           "runs/study). A study file has one step per line: train MODEL [flags], cv MODEL\n"
           "[flags] or tune SPACE_FILE [flags]; '#' comments. --print shows the built-in one.\n\n"
           "  --quick    a 10,000-image subset and 3 epochs per step (about 4 minutes on 2 cores)\n"
           "  --resume   skip finished steps and continue an interrupted one\n"
           "  --force    start over in an existing study directory\n");
}

int cmd_study(int argc, char **argv) {
    static const struct option opts[] = {
        {"quick", 0, 0, 'q'}, {"resume", 0, 0, 'r'}, {"force", 0, 0, 'f'},
        {"out", 1, 0, 'o'},   {"data", 1, 0, 'd'},   {"threads", 1, 0, 't'},
        {"print", 0, 0, 'p'}, {"help", 0, 0, 'h'},   {0, 0, 0, 0}};
    const char *cmdline = cli_command_line(argc + 1, argv - 1);
    cli_study_config sc = {0};
    int c;
    optind = 1;
    while ((c = cli_getopt("study", argc, argv, NULL, opts)) != -1) {
        switch (c) {
        case 'q': sc.is_quick = true; break;
        case 'r': sc.is_resume = true; break;
        case 'f': sc.is_force = true; break;
        case 'o': sc.out_dir = optarg; break;
        case 'd': sc.data_dir = optarg; break;
        case 't':
            if (!cli_int("study", "--threads", optarg, 0, 1024, &sc.threads))
                return EXIT_USAGE;
            break;
        case 'p': fputs(cli_study_builtin(), stdout); return 0;
        case 'h': help(); return 0;
        default: return EXIT_USAGE;
        }
    }
    if (optind < argc)
        sc.study_file = argv[optind++];
    if (optind < argc)
        return cli_usage_error("study", "unexpected argument '%s'", argv[optind]);
    sc.exe = "/proc/self/exe";
    sc.command_line = cmdline;
    sc.log = cli_log;
    sc.stop_flag = &cli_stop_flag;
    cli_install_signals();
    cli_hint_exists = "--resume continues it, --force starts over";
    loom_error err = {0};
    if (cli_study_run(&sc, &err))
        return cli_fail(&err);
    printf("%s/REPORT.md\n", sc.out_dir ? sc.out_dir : "runs/study");
    return 0;
}
