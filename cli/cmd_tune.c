/* cmd_tune.c - `loom tune SPACE_FILE [options]`: fills a loom_tune_config (the training flags
 * become overrides of the space's settings) and calls loom_tune; prints the results table,
 * best first, and where the retrained best model went. */
#include "cli.h"

#include <getopt.h>
#include <string.h>

/* The training settings go to a copy that checks them (they become overrides of the space's
 * lines, applied in the search); the data settings to tc itself. */
static loom_settings tune_settings(loom_tune_config *tc, loom_train_config *check) {
    return (loom_settings){.train = check,
                           .val_split = &tc->val_split,
                           .is_standardize = &tc->is_standardize,
                           .subset = &tc->subset,
                           .test_subset = &tc->test_subset};
}

static void help(void) {
    loom_tune_config tc;
    loom_tune_config_init(&tc);
    loom_settings s = tune_settings(&tc, &tc.train);
    printf("usage: loom tune SPACE_FILE [options]\n"
           "Searches the hyperparameters of a search-space file (docs/SEARCH-SPACE.md; example:\n"
           "examples/mlp-space.txt), then retrains the best trial and tests it.\n\n"
           "  --algorithm A            random (default) | hyperband (successive halving)\n"
           "  --trials N               trials (default 10); hyperband: points in round one\n"
           "  --executions-per-trial E trainings per trial, score = their mean (default 1)\n"
           "  --objective O            val_acc (default) | val_loss | val_f1\n"
           "  --cv K                   score each execution by K-fold cross-validation\n"
           "  --eta N                  hyperband: keep 1/N, give them N x the epochs (3)\n"
           "  --budget-minutes M       start no trial after M minutes\n"
           "  --resume                 continue the search in --out (same settings)\n"
           "  --force                  start over where a search already is\n"
           "  --no-best                do not retrain and test the best trial\n"
           "  --refit split|all        retrain the best on the search's training split\n"
           "                           (default: execution 1 again) or on all training images\n"
           "  --out DIR                search directory (default runs/tune-SPACE)\n"
           "  --data DIR               IDX data directory (default $LOOM_DATA or %s)\n"
           "  --threads N              worker threads (results do not change)\n"
           "  --quiet                  no progress bar\n"
           "  --verbose                print every training epoch\n"
           "  --check                  check the space, settings and data, then stop (nothing\n"
           "                           is written)\n",
           loom_default_data_dir());
    printf("The settings (as 'loom train'; the seed is the search's, --val-split applies without\n"
           "--cv; the training ones set what the space does not search, over its own lines):\n");
    cli_settings_help(&s, LOOM_SETTING_TRAINING | LOOM_SETTING_DATA);
}

enum {
    O_ALGO = 256,
    O_TRIALS,
    O_EXEC,
    O_OBJ,
    O_CV,
    O_ETA,
    O_BUDGET,
    O_RESUME,
    O_FORCE,
    O_NOBEST,
    O_REFIT,
    O_OUT,
    O_DATA,
    O_THREADS,
    O_QUIET,
    O_VERBOSE,
    O_HELP,
    O_CHECK
};

static const struct option tune_opts[] = {
    {"algorithm", 1, 0, O_ALGO},
    {"trials", 1, 0, O_TRIALS},
    {"executions-per-trial", 1, 0, O_EXEC},
    {"objective", 1, 0, O_OBJ},
    {"cv", 1, 0, O_CV},
    {"eta", 1, 0, O_ETA},
    {"budget-minutes", 1, 0, O_BUDGET},
    {"resume", 0, 0, O_RESUME},
    {"force", 0, 0, O_FORCE},
    {"no-best", 0, 0, O_NOBEST},
    {"refit", 1, 0, O_REFIT},
    {"out", 1, 0, O_OUT},
    {"data", 1, 0, O_DATA},
    {"threads", 1, 0, O_THREADS},
    {"quiet", 0, 0, O_QUIET},
    {"verbose", 0, 0, O_VERBOSE},
    {"help", 0, 0, O_HELP},
    {"check", 0, 0, O_CHECK},
    {0, 0, 0, 0},
};

int cmd_tune(int argc, char **argv) {
    struct option opts[96];
    loom_tune_config tc;
    loom_tune_config_init(&tc);
    loom_train_config check; /* the training flags are checked here, applied in the search */
    loom_train_config_init(&check);
    loom_settings set = tune_settings(&tc, &check);
    cli_setting_options(opts, 96, tune_opts, &set, LOOM_SETTING_TRAINING | LOOM_SETTING_DATA);
    const char *cmdline = cli_command_line(argc + 1, argv - 1); /* before getopt permutes */
    static char overrides[4096];
    overrides[0] = '\0';
    loom_train_config *t = &tc.train;
    t->progress = cli_progress;
    loom_error err = {0};
    int c, threads = 0;
    optind = 1;
    while ((c = cli_getopt("tune", argc, argv, NULL, opts)) != -1) {
        switch (c) {
        case O_ALGO:
            if (strcmp(optarg, "random") == 0)
                tc.algorithm = LOOM_TUNE_RANDOM;
            else if (strcmp(optarg, "hyperband") == 0)
                tc.algorithm = LOOM_TUNE_HYPERBAND;
            else
                return cli_usage_error("tune", "--algorithm must be random or hyperband, got '%s'",
                                       optarg);
            break;
        case O_TRIALS:
            if (!cli_int("tune", "--trials", optarg, 1, 100000, &tc.trials))
                return EXIT_USAGE;
            break;
        case O_EXEC:
            if (!cli_int("tune", "--executions-per-trial", optarg, 1, 1000, &tc.executions))
                return EXIT_USAGE;
            break;
        case O_OBJ:
            if (loom_objective_parse(optarg, &tc.objective, &err))
                return cli_fail(&err);
            break;
        case O_CV:
            if (!cli_int("tune", "--cv", optarg, 2, 100, &tc.cv_folds))
                return EXIT_USAGE;
            break;
        case O_ETA:
            if (!cli_int("tune", "--eta", optarg, 2, 100, &tc.eta))
                return EXIT_USAGE;
            break;
        case O_BUDGET:
            if (!cli_double("tune", "--budget-minutes", optarg, 0, 1e7, &tc.budget_minutes))
                return EXIT_USAGE;
            break;
        case O_RESUME: tc.is_resume = true; break;
        case O_FORCE: tc.is_force = true; break;
        case O_NOBEST: tc.is_skip_best = true; break;
        case O_REFIT:
            if (strcmp(optarg, "all") && strcmp(optarg, "split"))
                return cli_usage_error("tune", "--refit '%s': use split or all", optarg);
            tc.is_refit_all = strcmp(optarg, "all") == 0;
            break;
        case O_OUT: tc.out_dir = optarg; break;
        case O_DATA: tc.data_dir = optarg; break;
        case O_THREADS:
            if (!cli_int("tune", "--threads", optarg, 0, 1024, &threads))
                return EXIT_USAGE;
            break;
        case O_QUIET: t->progress = NULL; break;
        case O_VERBOSE: tc.is_verbose = true; break;
        case O_CHECK: tc.is_check_only = true; break;
        case O_HELP: help(); return 0;
        default:
            if (c >= CLI_SETTING) {
                /* a searchable setting overrides the space; the seed is the search's own */
                bool is_override =
                    loom_setting_info_at(c - CLI_SETTING)->flags & LOOM_SETTING_SEARCHABLE;
                if (!cli_setting("tune", c, optarg, &set, is_override ? overrides : NULL,
                                 sizeof overrides))
                    return EXIT_USAGE;
                if (!is_override)
                    t->seed = check.seed;
                break;
            }
            return EXIT_USAGE;
        }
    }
    if (optind >= argc)
        return cli_usage_error("tune", "no search-space file given");
    if (optind + 1 < argc)
        return cli_usage_error("tune", "unexpected argument '%s'", argv[optind + 1]);
    if (tc.is_resume && tc.is_force)
        return cli_usage_error("tune", "--resume and --force exclude each other");
    tc.space_file = argv[optind];
    tc.train_overrides = overrides;
    cli_set_threads(threads);
    t->log = cli_log;
    t->stop_flag = &cli_stop_flag;
    tc.command_line = cmdline;
    cli_install_signals();
    cli_hint_exists = "--resume continues it, --force starts over";
    cli_hint_interrupted = "continue with --resume";

    loom_tune_result res;
    loom_status st = loom_tune(&tc, &res, &err);
    if (st == LOOM_OK && tc.is_check_only) {
        printf("%s: space, settings and data checked\n", tc.space_file);
    } else if (st == LOOM_OK) {
        printf("%s", res.summary);
        const loom_tune_trial *b = &res.trials[res.best];
        char sc[32];
        printf("\nbest: trial %d, %s %s", b->trial + 1, loom_objective_str(tc.objective),
               loom_objective_fmt(tc.objective, b->score, sc, sizeof sc));
        if (res.has_test)
            printf("; retrained: test accuracy %.2f%%, macro F1 %.2f%% -> %s/best",
                   100 * res.test.accuracy, 100 * res.test.macro_f1, res.out_dir);
        printf("%s\n", res.is_budget_reached ? " (the budget ended the search)" : "");
        cli_make_plots(res.out_dir);
    }
    loom_tune_result_reset(&res);
    return st ? cli_fail(&err) : 0;
}
