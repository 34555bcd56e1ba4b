/* cmd_quantize.c - `loom quantize MODEL_FILE -o OUT [--calibrate N] [--data DIR]`: post-training
 * int8 quantization of a model file, calibrated on a stratified subset of the training images. */
#include "cli.h"

#include <getopt.h>
#include <stdlib.h>
#include <string.h>

static void help(void) {
    printf("usage: loom quantize MODEL_FILE -o OUT [options]\n\n"
           "Writes an int8 copy of a model file: dense and conv layers get int8 weights (one\n"
           "scale per output channel) and int8 inputs (one scale per tensor, calibrated on\n"
           "training images), int32 sums and fp32 biases; every other layer stays fp32.\n"
           "loom eval, predict and summary read the result like any model file.\n\n"
           "  -o, --out FILE      the int8 model file to write (required)\n"
           "  --calibrate N       calibrate on a stratified subset of N training images\n"
           "                      (default 1000)\n"
           "  --percentile P      activation scale from the P-th percentile of |x| at each\n"
           "                      int8 layer's input, 50 < P <= 100 (default %g: the maximum)\n"
           "  --seed N            seed of the calibration subset (default 1)\n"
           "  --data DIR          data directory (default $LOOM_DATA or %s)\n"
           "  --threads N         worker threads\n",
           LOOM_QUANT_PERCENTILE, loom_default_data_dir());
}

int cmd_quantize(int argc, char **argv) {
    static const struct option opts[] = {{"out", 1, 0, 'o'},        {"calibrate", 1, 0, 'n'},
                                         {"percentile", 1, 0, 'p'}, {"seed", 1, 0, 's'},
                                         {"data", 1, 0, 'd'},       {"threads", 1, 0, 't'},
                                         {"help", 0, 0, 'h'},       {0, 0, 0, 0}};
    loom_quantize_config qc = {.seed = 1};
    int threads = 0, c, seed = 1;
    optind = 1;
    while ((c = cli_getopt("quantize", argc, argv, "o:", opts)) != -1) {
        switch (c) {
        case 'o': qc.out_path = optarg; break;
        case 'n':
            if (!cli_int("quantize", "--calibrate", optarg, 1, 10000000, &qc.calibrate))
                return EXIT_USAGE;
            break;
        case 'p':
            if (!cli_double("quantize", "--percentile", optarg, 50.000001, 100, &qc.percentile))
                return EXIT_USAGE;
            break;
        case 's':
            if (!cli_int("quantize", "--seed", optarg, 0, 2147483647, &seed))
                return EXIT_USAGE;
            qc.seed = (uint64_t)seed;
            break;
        case 'd': qc.data_dir = optarg; break;
        case 't':
            if (!cli_int("quantize", "--threads", optarg, 0, 1024, &threads))
                return EXIT_USAGE;
            break;
        case 'h': help(); return 0;
        default: return EXIT_USAGE;
        }
    }
    if (optind >= argc)
        return cli_usage_error("quantize", "no model file given");
    if (optind + 1 < argc)
        return cli_usage_error("quantize", "unexpected argument '%s'", argv[optind + 1]);
    if (!qc.out_path)
        return cli_usage_error("quantize", "no output file given (-o OUT)");
    qc.model_file = argv[optind];
    cli_set_threads(threads);
    loom_error err = {0};
    if (loom_run_quantize(&qc, &err))
        return cli_fail(&err);
    printf("%s: int8 model written to %s\n", qc.model_file, qc.out_path);
    return 0;
}
