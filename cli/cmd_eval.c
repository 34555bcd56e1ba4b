/* cmd_eval.c - `loom eval MODEL_FILE [--split test|val|train] [--images F --labels F]`
 * [--tta flip]: prints the classification report and confusion matrix (and those of the
 * flip-averaged evaluation, on their own), writes metrics.json/confusion.csv. */
#include "cli.h"

#include <getopt.h>
#include <string.h>

static void help(void) {
    printf("usage: loom eval MODEL_FILE [options]\n\n"
           "  --split S         test (default) | val | train (the run's own split)\n"
           "  --images F --labels F   any IDX image/label pair instead\n"
           "  --data DIR        data directory (default $LOOM_DATA or %s)\n"
           "  --out DIR         write metrics.json, confusion.csv and predictions.csv there\n"
           "  --batch N         evaluation batch size (default 256)\n"
           "  --tta flip        also test-time augmentation: the average of the softmax of each\n"
           "                    image and its mirror, reported on its own line (and as\n"
           "                    metrics_tta.json etc. with --out); the plain figure is unchanged\n"
           "  --threads N       worker threads\n",
           loom_default_data_dir());
}

int cmd_eval(int argc, char **argv) {
    static const struct option opts[] = {
        {"split", 1, 0, 's'}, {"images", 1, 0, 'i'}, {"labels", 1, 0, 'l'},  {"data", 1, 0, 'd'},
        {"out", 1, 0, 'o'},   {"batch", 1, 0, 'b'},  {"threads", 1, 0, 't'}, {"tta", 1, 0, 'a'},
        {"help", 0, 0, 'h'},  {0, 0, 0, 0}};
    loom_eval_config ec = {0};
    int threads = 0, c;
    optind = 1;
    while ((c = cli_getopt("eval", argc, argv, NULL, opts)) != -1) {
        switch (c) {
        case 's': ec.split = optarg; break;
        case 'i': ec.images = optarg; break;
        case 'l': ec.labels = optarg; break;
        case 'd': ec.data_dir = optarg; break;
        case 'o': ec.out_dir = optarg; break;
        case 'a': ec.tta = optarg; break;
        case 'b':
            if (!cli_int("eval", "--batch", optarg, 1, 65536, &ec.batch))
                return EXIT_USAGE;
            break;
        case 't':
            if (!cli_int("eval", "--threads", optarg, 0, 1024, &threads))
                return EXIT_USAGE;
            break;
        case 'h': help(); return 0;
        default: return EXIT_USAGE;
        }
    }
    if (optind >= argc)
        return cli_usage_error("eval", "no model file given");
    if (optind + 1 < argc)
        return cli_usage_error("eval", "unexpected argument '%s'", argv[optind + 1]);
    ec.model_file = argv[optind];
    cli_set_threads(threads);
    loom_metrics mt = {0}, mt_tta = {0};
    loom_dataset *ds = NULL;
    loom_error err = {0};
    if (loom_run_eval(&ec, &mt, &mt_tta, &ds, &err)) {
        loom_metrics_reset(&mt);
        loom_metrics_reset(&mt_tta);
        return cli_fail(&err);
    }
    const char *on = ec.images ? ec.images : (ec.split ? ec.split : "test");
    printf("%s on %s: accuracy %.2f%%, loss %.4f, %ld image%s\n", ec.model_file, on,
           100 * mt.accuracy, mt.loss, mt.n, PLURAL(mt.n));
    if (mt_tta.n > 0)
        printf("%s on %s with tta flip (image and mirror averaged): accuracy %.2f%%, loss %.4f, "
               "%ld image%s\n",
               ec.model_file, on, 100 * mt_tta.accuracy, mt_tta.loss, mt_tta.n, PLURAL(mt_tta.n));
    printf("\n");
    loom_metrics_report(&mt, ds, stdout);
    if (mt_tta.n > 0) {
        printf("\nwith tta flip:\n");
        loom_metrics_report(&mt_tta, ds, stdout);
    }
    loom_metrics_reset(&mt);
    loom_metrics_reset(&mt_tta);
    loom_dataset_destroy(ds);
    return 0;
}
