/* cmd_train.c - `loom train MODEL [options]`: fills a loom_run_config (zoo defaults first,
 * then the flags given) and calls loom_run_train. */
#include "cli.h"

#include <getopt.h>
#include <stdlib.h>
#include <string.h>

static void help(void) {
    loom_run_config rc;
    loom_run_config_init(&rc);
    loom_settings s = loom_run_settings(&rc);
    printf(
        "usage: loom train MODEL [options]\n"
        "MODEL is a zoo name (loom models) or a model-text file; its zoo defaults come first.\n\n");
    cli_settings_help(&s, ~0u);
    printf("  --log-every N         print an iteration line every N steps\n"
           "  --threads N           worker threads (default: all cores; results do not change)\n"
           "  --out DIR             run directory (default runs/MODEL)\n"
           "  --force               replace an existing run (its files go first)\n"
           "  --data DIR            IDX data directory (default $LOOM_DATA or %s)\n"
           "  --quiet               no progress bar\n"
           "  --no-plots            do not draw the run's plots at the end\n"
           "  --check               check the model, settings and data, then stop (nothing is "
           "written)\n"
           "  --resume RUN_DIR      continue an interrupted run exactly where it stopped\n"
           "                        (usage: loom train --resume RUN_DIR)\n",
           loom_default_data_dir());
}

enum { O_THREADS = 256, O_OUT, O_FORCE, O_DATA, O_LOGEVERY, O_QUIET, O_HELP, O_RESUME, O_CHECK };

static const struct option own_opts[] = {
    {"threads", 1, 0, O_THREADS},    {"out", 1, 0, O_OUT},
    {"force", 0, 0, O_FORCE},        {"data", 1, 0, O_DATA},
    {"log-every", 1, 0, O_LOGEVERY}, {"quiet", 0, 0, O_QUIET},
    {"help", 0, 0, O_HELP},          {"resume", 1, 0, O_RESUME},
    {"check", 0, 0, O_CHECK},        {0, 0, 0, 0},
};

/* A resumed run continues bit for bit with its own settings: a flag that would change one (or
 * the data) is refused, naming the setting and its value in the run. 0 when nothing changes. */
static int resume_changes(const char *before, loom_settings *set, const char *data_before,
                          const char *data_after, const char *run) {
    char *after = loom_settings_text(set);
    if (!before || !after) {
        free(after);
        loom_error err = {0};
        loom_error_set(&err, LOOM_ERR_NOMEM, "train: out of memory");
        return cli_fail(&err);
    }
    int code = 0;
    for (const char *a = before, *b = after; *a && *b && !code;) {
        size_t la = strcspn(a, "\n"), lb = strcspn(b, "\n");
        if (la != lb || strncmp(a, b, la) != 0) {
            char flag[64];
            size_t k = strcspn(a, "=");
            snprintf(flag, sizeof flag, "--%.*s", (int)(k < 60 ? k : 60), a);
            for (char *p = flag + 2; *p; p++)
                if (*p == '_')
                    *p = '-';
            code =
                cli_usage_error("train",
                                "%s: a resumed run keeps its own settings (%.*s in %s/config.txt): "
                                "start a new run to change it",
                                flag, (int)la, a, run);
        }
        a += la + (a[la] == '\n');
        b += lb + (b[lb] == '\n');
    }
    free(after);
    if (!code && data_before && data_after && strcmp(data_before, data_after) != 0) {
        char ra[4096], rb[4096];
        if (!realpath(data_before, ra) || !realpath(data_after, rb) || strcmp(ra, rb) != 0)
            code = cli_usage_error("train",
                                   "--data: a resumed run keeps its own data (data_dir=%s in "
                                   "%s/config.txt): start a new run to change it",
                                   data_before, run);
    }
    return code;
}

int cmd_train(int argc, char **argv) {
    /* pass 1: find the model so that its zoo defaults come before the flags */
    struct option opts[96];
    loom_run_config rc;
    loom_run_config_init(&rc);
    loom_settings set = loom_run_settings(&rc);
    cli_setting_options(opts, 96, own_opts, &set, ~0u);
    const char *cmdline = cli_command_line(argc + 1, argv - 1); /* before getopt permutes */
    const char *model = NULL, *resume = NULL;
    optind = 1;
    int c;
    while ((c = cli_getopt("train", argc, argv, NULL, opts)) != -1) {
        if (c == '?')
            return EXIT_USAGE;
        if (c == O_HELP) {
            help();
            return 0;
        }
        if (c == O_RESUME)
            resume = optarg;
    }
    if (optind < argc)
        model = argv[optind];
    if (!model && !resume)
        return cli_usage_error("train", "no model given");
    if (optind + (model ? 1 : 0) < argc)
        return cli_usage_error("train", "unexpected argument '%s'", argv[optind + 1]);

    loom_error err = {0};
    char *owner = NULL;
    if (resume) {
        /* the run's own configuration; flags given below still apply */
        if (loom_run_config_load(&rc, resume, &owner, &err))
            return cli_fail(&err);
        cmdline = rc.command_line;
    } else {
        loom_run_config_init(&rc);
        rc.model = model;
        if (loom_run_apply_zoo_defaults(&rc, &err))
            return cli_fail(&err);
    }
    loom_train_config *t = &rc.train;
    t->progress = cli_progress;
    set = loom_run_settings(&rc);
    char *before = resume ? loom_settings_text(&set) : NULL; /* the run's own settings */
    const char *data_before = rc.data_dir;
    int threads = 0, i;
    optind = 1;
    while ((c = cli_getopt("train", argc, argv, NULL, opts)) != -1) {
        switch (c) {
        case O_THREADS:
            if (!cli_int("train", "--threads", optarg, 0, 1024, &threads))
                return EXIT_USAGE;
            break;
        case O_OUT: rc.out_dir = optarg; break;
        case O_FORCE: rc.is_force = true; break;
        case O_DATA: rc.data_dir = optarg; break;
        case O_LOGEVERY:
            if (!cli_int("train", "--log-every", optarg, 1, 100000000, &i))
                return EXIT_USAGE;
            t->log_every = i;
            break;
        case O_QUIET: t->progress = NULL; break;
        case O_RESUME: break;
        case O_CHECK: rc.is_check_only = true; break;
        default:
            if (c >= CLI_SETTING) {
                if (!cli_setting("train", c, optarg, &set, NULL, 0))
                    return EXIT_USAGE;
                break;
            }
            return EXIT_USAGE;
        }
    }
    if (resume && (model || optind < argc)) {
        free(before);
        return cli_usage_error("train", "--resume RUN_DIR takes no model: the run names it");
    }
    if (resume) {
        int bad = resume_changes(before, &set, data_before, rc.data_dir, resume);
        free(before);
        if (bad)
            return bad;
    }
    cli_set_threads(threads);
    t->log = cli_log;
    t->stop_flag = &cli_stop_flag;
    rc.command_line = cmdline;
    cli_install_signals();

    loom_run_result res;
    loom_status st = loom_run_train(&rc, &res, &err);
    if (st) {
        static char hint[1200];
        snprintf(hint, sizeof hint, "continue with 'loom train --resume %s'", res.run_dir);
        cli_hint_interrupted = hint;
        if (st == LOOM_ERR_INTERRUPTED) {
            /* train.log says how to go on too (the library logged where it stopped) */
            char path[1200];
            snprintf(path, sizeof path, "%s/train.log", res.run_dir);
            FILE *f = fopen(path, "a");
            if (f) {
                fprintf(f, "%s\n", hint);
                fclose(f);
            }
        }
        loom_run_result_reset(&res);
        free(owner);
        return cli_fail(&err);
    }
    if (rc.is_check_only) {
        printf("%s: model, settings and data checked\n", rc.model);
        loom_run_result_reset(&res);
        free(owner);
        return 0;
    }
    cli_make_plots(res.run_dir);
    if (res.has_test) {
        printf("%s: test accuracy %.2f%%, macro F1 %.2f%% (%d epoch%s, %.1f s) -> %s\n", rc.model,
               100 * res.test.accuracy, 100 * res.test.macro_f1, res.hist.n_epochs,
               PLURAL(res.hist.n_epochs), res.hist.seconds, res.run_dir);
    } else {
        printf("%s: trained %d epoch%s in %.1f s -> %s\n", rc.model, res.hist.n_epochs,
               PLURAL(res.hist.n_epochs), res.hist.seconds, res.run_dir);
    }
    loom_run_result_reset(&res);
    free(owner);
    return 0;
}
