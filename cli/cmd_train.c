/* cmd_train.c - `loom train MODEL [options]`: fills a loom_run_config (zoo defaults first,
 * then the flags given) and calls loom_run_train. */
#include "cli.h"

#include <getopt.h>
#include <stdlib.h>
#include <string.h>

static void help(void) {
    printf("usage: loom train MODEL [options]\n"
           "MODEL is a zoo name (loom models) or a model-text file.\n\n"
           "  --epochs N            epochs (zoo default)\n"
           "  --batch N             batch size (zoo default)\n"
           "  --optimizer NAME      sgd | adam | adamw | rmsprop\n"
           "  --lr X                learning rate\n"
           "  --momentum X          sgd/rmsprop momentum (sgd default 0.9 when given sgd)\n"
           "  --nesterov            Nesterov momentum (sgd)\n"
           "  --l2 X                Keras-style L2: X*sum(w^2) added to the loss, weights only\n"
           "  --weight-decay X      decoupled weight decay\n"
           "  --clip-norm X         clip the global gradient norm to X\n"
           "  --lr-schedule S       constant | step[:EVERY[:GAMMA]] | exp[:GAMMA] |\n"
           "                        cosine[:WARMUP[:LR_MIN]] | plateau[:PATIENCE[:GAMMA]]\n"
           "  --early-stopping P    stop after P epochs without a better val_loss; restore best\n"
           "  --label-smoothing E   train against (1-E) one-hot + E/classes (default 0; the\n"
           "                        validation and test losses stay plain cross-entropy)\n"
           "  --ema D               keep an exponential moving average of the weights (decay D\n"
           "                        per step, e.g. 0.999); validate on it and save it\n"
           "  --seed N              random seed (default 42)\n"
           "  --threads N           worker threads (default: all cores; results do not change)\n"
           "  --out DIR             run directory (default runs/MODEL)\n"
           "  --force               overwrite an existing run directory\n"
           "  --data DIR            IDX data directory (default $LOOM_DATA or %s)\n"
           "  --val-split X         validation fraction (default 0.2)\n"
           "  --split-mode M        stratified (default) | keras (last X of the file, unshuffled)\n"
           "  --standardize         per-pixel standardisation (statistics saved in the model)\n"
           "  --augment LIST        none | flip,shift:N (random flips, shifts of up to N px)\n"
           "  --subset N            train on a stratified subset of N examples\n"
           "  --test-subset N       evaluate on the first N test images\n"
           "  --no-test             skip the test-set evaluation at the end\n"
           "  --log-every N         print an iteration line every N steps\n"
           "  --quiet               no progress bar\n"
           "  --no-plots            do not draw the run's plots at the end\n"
           "  --checkpoint-every N  write RUN/checkpoint.loomck every N epochs (default 1)\n"
           "  --checkpoint-steps N  also every N steps inside an epoch\n"
           "  --resume RUN_DIR      continue an interrupted run exactly where it stopped\n"
           "                        (usage: loom train --resume RUN_DIR)\n",
           loom_default_data_dir());
}

enum {
    O_EPOCHS = 256,
    O_BATCH,
    O_OPT,
    O_LR,
    O_MOM,
    O_NEST,
    O_L2,
    O_WD,
    O_CLIP,
    O_SMOOTH,
    O_EMA,
    O_SCHED,
    O_ES,
    O_SEED,
    O_THREADS,
    O_OUT,
    O_FORCE,
    O_DATA,
    O_VAL,
    O_SPLITMODE,
    O_STD,
    O_SUBSET,
    O_TSUB,
    O_NOTEST,
    O_LOGEVERY,
    O_QUIET,
    O_HELP,
    O_CKE,
    O_CKS,
    O_RESUME,
    O_AUG
};

static const struct option opts[] = {
    {"epochs", 1, 0, O_EPOCHS},
    {"batch", 1, 0, O_BATCH},
    {"optimizer", 1, 0, O_OPT},
    {"lr", 1, 0, O_LR},
    {"momentum", 1, 0, O_MOM},
    {"nesterov", 0, 0, O_NEST},
    {"l2", 1, 0, O_L2},
    {"weight-decay", 1, 0, O_WD},
    {"clip-norm", 1, 0, O_CLIP},
    {"label-smoothing", 1, 0, O_SMOOTH},
    {"ema", 1, 0, O_EMA},
    {"lr-schedule", 1, 0, O_SCHED},
    {"early-stopping", 1, 0, O_ES},
    {"seed", 1, 0, O_SEED},
    {"threads", 1, 0, O_THREADS},
    {"out", 1, 0, O_OUT},
    {"force", 0, 0, O_FORCE},
    {"data", 1, 0, O_DATA},
    {"val-split", 1, 0, O_VAL},
    {"split-mode", 1, 0, O_SPLITMODE},
    {"standardize", 0, 0, O_STD},
    {"subset", 1, 0, O_SUBSET},
    {"test-subset", 1, 0, O_TSUB},
    {"no-test", 0, 0, O_NOTEST},
    {"log-every", 1, 0, O_LOGEVERY},
    {"quiet", 0, 0, O_QUIET},
    {"help", 0, 0, O_HELP},
    {"checkpoint-every", 1, 0, O_CKE},
    {"checkpoint-steps", 1, 0, O_CKS},
    {"resume", 1, 0, O_RESUME},
    {"augment", 1, 0, O_AUG},
    {0, 0, 0, 0},
};

int cmd_train(int argc, char **argv) {
    /* pass 1: find the model so that its zoo defaults come before the flags */
    const char *cmdline = cli_command_line(argc + 1, argv - 1); /* before getopt permutes */
    const char *model = NULL, *resume = NULL;
    int threads = 0;
    optind = 1;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
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

    loom_run_config rc;
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
    bool has_momentum = false;
    double d;
    int i;

    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case O_EPOCHS:
            if (!cli_int("train", "--epochs", optarg, 1, 100000, &t->epochs))
                return EXIT_USAGE;
            break;
        case O_BATCH:
            if (!cli_int("train", "--batch", optarg, 1, 65536, &t->batch))
                return EXIT_USAGE;
            break;
        case O_OPT:
            if (loom_opt_kind_parse(optarg, &t->opt.kind, &err))
                return cli_fail(&err);
            break;
        case O_LR:
            if (!cli_double("train", "--lr", optarg, 1e-12, 100, &d))
                return EXIT_USAGE;
            t->opt.lr = (float)d;
            break;
        case O_MOM:
            if (!cli_double("train", "--momentum", optarg, 0, 0.9999, &d))
                return EXIT_USAGE;
            t->opt.momentum = (float)d;
            has_momentum = true;
            break;
        case O_NEST: t->opt.is_nesterov = true; break;
        case O_L2:
            if (!cli_double("train", "--l2", optarg, 0, 10, &d))
                return EXIT_USAGE;
            t->opt.l2 = (float)d;
            break;
        case O_WD:
            if (!cli_double("train", "--weight-decay", optarg, 0, 10, &d))
                return EXIT_USAGE;
            t->opt.weight_decay = (float)d;
            break;
        case O_CLIP:
            if (!cli_double("train", "--clip-norm", optarg, 0, 1e9, &d))
                return EXIT_USAGE;
            t->opt.clip_norm = (float)d;
            break;
        case O_SMOOTH:
            if (!cli_double("train", "--label-smoothing", optarg, 0, 0.99, &d))
                return EXIT_USAGE;
            t->label_smoothing = (float)d;
            break;
        case O_EMA:
            if (!cli_double("train", "--ema", optarg, 0, 0.9999, &d))
                return EXIT_USAGE;
            t->ema = (float)d;
            break;
        case O_SCHED: {
            loom_sched_config sc;
            if (loom_sched_parse(optarg, &sc, &err))
                return cli_fail(&err);
            rc.lr_schedule = optarg;
            break;
        }
        case O_ES:
            if (!cli_int("train", "--early-stopping", optarg, 0, 100000, &t->early_stopping))
                return EXIT_USAGE;
            break;
        case O_SEED:
            if (!cli_u64("train", "--seed", optarg, &t->seed))
                return EXIT_USAGE;
            break;
        case O_THREADS:
            if (!cli_int("train", "--threads", optarg, 0, 1024, &threads))
                return EXIT_USAGE;
            break;
        case O_OUT: rc.out_dir = optarg; break;
        case O_FORCE: rc.is_force = true; break;
        case O_DATA: rc.data_dir = optarg; break;
        case O_VAL:
            if (!cli_double("train", "--val-split", optarg, 0, 0.99, &rc.val_split))
                return EXIT_USAGE;
            break;
        case O_SPLITMODE:
            if (strcmp(optarg, "keras") == 0)
                rc.split_mode = LOOM_SPLIT_KERAS;
            else if (strcmp(optarg, "stratified") == 0)
                rc.split_mode = LOOM_SPLIT_STRATIFIED;
            else
                return cli_usage_error("train", "--split-mode must be stratified or keras");
            break;
        case O_STD: rc.is_standardize = true; break;
        case O_SUBSET:
            if (!cli_int("train", "--subset", optarg, 10, 100000000, &rc.subset))
                return EXIT_USAGE;
            break;
        case O_TSUB:
            if (!cli_int("train", "--test-subset", optarg, 1, 100000000, &rc.test_subset))
                return EXIT_USAGE;
            break;
        case O_NOTEST: rc.is_skip_test = true; break;
        case O_LOGEVERY:
            if (!cli_int("train", "--log-every", optarg, 1, 100000000, &i))
                return EXIT_USAGE;
            t->log_every = i;
            break;
        case O_QUIET: t->progress = NULL; break;
        case O_RESUME: break;
        case O_AUG:
            if (loom_augment_parse(optarg, t, &err))
                return cli_fail(&err);
            break;
        case O_CKE:
            if (!cli_int("train", "--checkpoint-every", optarg, 1, 100000, &t->checkpoint_every))
                return EXIT_USAGE;
            break;
        case O_CKS:
            if (!cli_int("train", "--checkpoint-steps", optarg, 1, 100000000, &t->checkpoint_steps))
                return EXIT_USAGE;
            break;
        default: return cli_bad_option("train", argv);
        }
    }
    if (resume && (model || optind < argc))
        return cli_usage_error("train", "--resume RUN_DIR takes no model: the run names it");
    if (t->opt.kind == LOOM_OPT_SGD && !has_momentum && !resume)
        t->opt.momentum = 0.9f;
    if (t->opt.kind == LOOM_OPT_RMSPROP) {
        t->opt.beta2 = 0.9f;
    }
    loom_set_threads(threads);
    t->log = cli_log;
    t->stop_flag = &cli_stop_flag;
    rc.command_line = cmdline;
    cli_install_signals();

    loom_run_result res;
    loom_status st = loom_run_train(&rc, &res, &err);
    if (st) {
        loom_run_result_reset(&res);
        free(owner);
        return cli_fail(&err);
    }
    cli_make_plots(res.run_dir);
    if (res.has_test) {
        printf("%s: test accuracy %.2f%%, macro F1 %.2f%% (%d epochs, %.1f s) -> %s\n", rc.model,
               100 * res.test.accuracy, 100 * res.test.macro_f1, res.hist.n_epochs,
               res.hist.seconds, res.run_dir);
    } else {
        printf("%s: trained %d epochs in %.1f s -> %s\n", rc.model, res.hist.n_epochs,
               res.hist.seconds, res.run_dir);
    }
    loom_run_result_reset(&res);
    free(owner);
    return 0;
}
