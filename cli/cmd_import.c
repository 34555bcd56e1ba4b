/* cmd_import.c - `loom import MODEL.onnx -o OUT.loom` and `loom import MODEL --weights
 * F.safetensors -o OUT.loom`: a model trained elsewhere as a loom model file. ONNX brings its
 * own layers; with --weights, MODEL (a zoo name or a model-text file) gives the layers and the
 * safetensors file their numbers. Each is one library function (src/export/). */
#include "cli.h"

#include <getopt.h>
#include <stdlib.h>
#include <string.h>

static void help(void) {
    printf("usage: loom import MODEL.onnx -o OUT.loom\n"
           "       loom import MODEL --weights F.safetensors -o OUT.loom\n\n"
           "Brings a model trained elsewhere into loom:\n"
           "  MODEL.onnx       an ONNX model whose nodes loom's layers express (Conv, Gemm,\n"
           "                   pools, BatchNormalization, activations, RNN/LSTM/GRU, ...);\n"
           "                   anything else is refused with one line naming the node\n"
           "  MODEL            with --weights: a zoo name or a model-text file\n\n"
           "  -o, --out OUT        the model file to write; replaced atomically\n"
           "  --weights F          safetensors named as PyTorch's state_dict of MODEL's\n"
           "                       nn.Sequential (see loom export)\n"
           "  --input HxWxC        with --weights: the input shape (default 28x28x1)\n");
}

int cmd_import(int argc, char **argv) {
    static const struct option opts[] = {{"out", 1, 0, 'o'},
                                         {"weights", 1, 0, 'w'},
                                         {"input", 1, 0, 'i'},
                                         {"help", 0, 0, 'h'},
                                         {0, 0, 0, 0}};
    const char *out = NULL, *weights = NULL, *input = NULL;
    int c;
    optind = 1;
    while ((c = cli_getopt("import", argc, argv, "o:", opts)) != -1) {
        switch (c) {
        case 'o': out = optarg; break;
        case 'w': weights = optarg; break;
        case 'i': input = optarg; break;
        case 'h': help(); return 0;
        default: return EXIT_USAGE;
        }
    }
    if (optind >= argc)
        return cli_usage_error("import", "no model given");
    if (optind + 1 < argc)
        return cli_usage_error("import", "unexpected argument '%s'", argv[optind + 1]);
    if (!out)
        return cli_usage_error("import", "no output file given (-o OUT)");
    int H = 28, W = 28, C = 1;
    char tail;
    if (input && (!weights || sscanf(input, "%dx%dx%d%c", &H, &W, &C, &tail) != 3 || H < 1 ||
                  W < 1 || C < 1))
        return cli_usage_error(
            "import",
            weights ? "--input expects HxWxC, got '%s'" : "--input is for --weights ('%s')", input);
    loom_model *m = NULL;
    loom_error err = {0};
    char *config = NULL, *text = NULL;
    loom_status st;
    if (weights) {
        st = loom_model_resolve(argv[optind], &text, NULL, &err);
        if (!st)
            st = loom_model_create(&m, text, argv[optind], H, W, C, &err);
        if (!st)
            st = loom_import_safetensors(m, weights, &err);
    } else {
        st = loom_import_onnx(&m, &config, argv[optind], &err);
    }
    if (!st)
        st = loom_model_save(m, weights ? "imported=safetensors\n" : config, out, &err);
    free(text);
    free(config);
    loom_model_destroy(m);
    return st ? cli_fail(&err) : 0;
}
