/* cmd_cv.c - `loom cv MODEL --folds K [options]`: fills a loom_cv_config (zoo defaults first,
 * then the flags given), calls loom_cv, prints the per-fold table and the mean ± std line. */
#include "cli.h"

#include <getopt.h>
#include <math.h>
#include <string.h>

/* ---- loom cv ---- */

static loom_settings cv_settings(loom_cv_config *cc) {
    return (loom_settings){.train = &cc->train,
                           .is_standardize = &cc->is_standardize,
                           .subset = &cc->subset,
                           .test_subset = &cc->test_subset};
}

static void help(void) {
    loom_cv_config cc;
    loom_cv_config_init(&cc);
    loom_settings s = cv_settings(&cc);
    printf("usage: loom cv MODEL [options]\n"
           "Stratified K-fold cross-validation of MODEL (a zoo name or a model-text file) on the\n"
           "training set: every fold trained from scratch, its own seed derived from --seed.\n\n"
           "  --folds K             folds (default 5)\n"
           "  --test                also evaluate every fold's model on the test set\n"
           "  --out DIR             run directory (default runs/cv-MODEL)\n"
           "  --force               replace an existing run (its files go first)\n"
           "  --data DIR            IDX data directory (default $LOOM_DATA or %s)\n"
           "  --threads N           worker threads (results do not change)\n"
           "  --quiet               no progress bar\n"
           "  --check               check the model, settings and data, then stop (nothing is "
           "written)\n",
           loom_default_data_dir());
    printf("The settings (as 'loom train'; the seed also makes the folds, the standardisation is\n"
           "fitted on each fold's training part):\n");
    cli_settings_help(&s, LOOM_SETTING_TRAINING | LOOM_SETTING_DATA);
    printf("\nWrites DIR/cv.csv, cv.json, history_mean.csv, fold_K/history.csv, config.txt and\n"
           "the best fold's model.loom.\n");
}

enum { O_FOLDS = 256, O_TEST, O_OUT, O_FORCE, O_DATA, O_THREADS, O_QUIET, O_HELP, O_CHECK };

static const struct option cv_opts[] = {
    {"folds", 1, 0, O_FOLDS}, {"test", 0, 0, O_TEST},
    {"out", 1, 0, O_OUT},     {"force", 0, 0, O_FORCE},
    {"data", 1, 0, O_DATA},   {"threads", 1, 0, O_THREADS},
    {"quiet", 0, 0, O_QUIET}, {"help", 0, 0, O_HELP},
    {"check", 0, 0, O_CHECK}, {0, 0, 0, 0},
};

static void print_result(const loom_cv_config *cc, const loom_cv_result *r) {
    printf("fold  val acc  macro F1  val loss  epochs  seconds%s\n",
           cc->is_test ? "  test acc  test F1" : "");
    for (int k = 0; k < r->n_folds; k++) {
        const loom_cv_fold *f = &r->folds[k];
        printf("%4d  %6.2f%%  %7.2f%%  %8.4f  %6d  %7.1f", k + 1, 100 * f->val_acc, 100 * f->val_f1,
               f->val_loss, f->hist.n_epochs, f->seconds);
        if (cc->is_test)
            printf("  %7.2f%%  %6.2f%%", 100 * f->test_acc, 100 * f->test_f1);
        printf("%s\n", k == r->best_fold ? "  (best)" : "");
    }
    printf("mean ± std: val acc %.2f ± %.2f%%, macro F1 %.2f ± %.2f%%, loss %.4f ± %.4f",
           100 * r->val_acc_mean, 100 * r->val_acc_sd, 100 * r->val_f1_mean, 100 * r->val_f1_sd,
           r->val_loss_mean, r->val_loss_sd);
    if (cc->is_test)
        printf("; test acc %.2f ± %.2f%%, F1 %.2f ± %.2f%%", 100 * r->test_acc_mean,
               100 * r->test_acc_sd, 100 * r->test_f1_mean, 100 * r->test_f1_sd);
    printf("\n%s: %d folds, best fold %d -> %s/model.loom\n", cc->model, r->n_folds,
           r->best_fold + 1, r->run_dir);
    cli_make_plots(r->run_dir);
}

int cmd_cv(int argc, char **argv) {
    struct option opts[96];
    loom_cv_config cc;
    loom_cv_config_init(&cc);
    loom_settings set = cv_settings(&cc);
    cli_setting_options(opts, 96, cv_opts, &set, LOOM_SETTING_TRAINING | LOOM_SETTING_DATA);
    const char *cmdline = cli_command_line(argc + 1, argv - 1); /* before getopt permutes */
    int c, threads = 0;
    optind = 1;
    while ((c = cli_getopt("cv", argc, argv, NULL, opts)) != -1) {
        if (c == '?')
            return EXIT_USAGE;
        if (c == O_HELP) {
            help();
            return 0;
        }
    }
    if (optind >= argc)
        return cli_usage_error("cv", "no model given");
    if (optind + 1 < argc)
        return cli_usage_error("cv", "unexpected argument '%s'", argv[optind + 1]);

    cc.model = argv[optind];
    loom_error err = {0};
    if (loom_cv_apply_zoo_defaults(&cc, &err))
        return cli_fail(&err);
    loom_train_config *t = &cc.train;
    t->progress = cli_progress;
    optind = 1;
    while ((c = cli_getopt("cv", argc, argv, NULL, opts)) != -1) {
        switch (c) {
        case O_FOLDS:
            if (!cli_int("cv", "--folds", optarg, 2, 1000, &cc.folds))
                return EXIT_USAGE;
            break;
        case O_TEST: cc.is_test = true; break;
        case O_OUT: cc.out_dir = optarg; break;
        case O_FORCE: cc.is_force = true; break;
        case O_DATA: cc.data_dir = optarg; break;
        case O_THREADS:
            if (!cli_int("cv", "--threads", optarg, 0, 1024, &threads))
                return EXIT_USAGE;
            break;
        case O_QUIET: t->progress = NULL; break;
        case O_CHECK: cc.is_check_only = true; break;
        default:
            if (c >= CLI_SETTING) {
                if (!cli_setting("cv", c, optarg, &set, NULL, 0))
                    return EXIT_USAGE;
                break;
            }
            return EXIT_USAGE;
        }
    }
    cli_set_threads(threads);
    t->log = cli_log;
    t->stop_flag = &cli_stop_flag;
    cc.command_line = cmdline;
    cli_install_signals();

    loom_cv_result res;
    loom_status st = loom_cv(&cc, &res, &err);
    if (st == LOOM_OK && cc.is_check_only)
        printf("%s: model, settings and data checked\n", cc.model);
    else if (st == LOOM_OK)
        print_result(&cc, &res);
    loom_cv_result_reset(&res);
    return st ? cli_fail(&err) : 0;
}
