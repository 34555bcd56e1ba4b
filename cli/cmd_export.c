/* cmd_export.c - `loom export MODEL_FILE -o OUT [--format onnx|safetensors|c] [--int8]`: writes
 * a model in another system's format. The format comes from --format or else OUT's extension;
 * each format is one library function (src/export/). A quantized model (loom quantize) is written
 * with its int8 weights; --int8 insists on one. */
#include "cli.h"

#include <errno.h>
#include <getopt.h>
#include <string.h>
#include <sys/stat.h>

/* The formats: name, file extension (none: OUT is a directory), writer (prefix: C only). */
typedef struct {
    const char *name, *ext;
    loom_status (*write)(const loom_model *m, const char *out, const char *prefix, loom_error *err);
} export_format;

static loom_status write_onnx(const loom_model *m, const char *out, const char *prefix,
                              loom_error *err) {
    (void)prefix;
    return loom_export_onnx(m, out, err);
}

static loom_status write_safetensors(const loom_model *m, const char *out, const char *prefix,
                                     loom_error *err) {
    (void)prefix;
    return loom_export_safetensors(m, out, err);
}

/* The C files go into the directory OUT, made if it is not there (one level, like mkdir). */
static loom_status write_c(const loom_model *m, const char *out, const char *prefix,
                           loom_error *err) {
    if (mkdir(out, 0777) != 0 && errno != EEXIST)
        return loom_error_set(err, LOOM_ERR_IO, "%s: cannot create the directory: %s", out,
                              strerror(errno));
    return loom_export_c(m, out, prefix, err);
}

static const export_format formats[] = {
    {"onnx", ".onnx", write_onnx},
    {"safetensors", ".safetensors", write_safetensors},
    {"c", NULL, write_c},
};
#define N_FORMATS ((int)(sizeof formats / sizeof *formats))

static void help(void) {
    printf(
        "usage: loom export MODEL_FILE -o OUT [options]\n\n"
        "Writes a trained model for use elsewhere:\n"
        "  onnx          an ONNX model (IR 8, opset 13): input \"image\" float (N, 1, 28, 28)\n"
        "                of raw pixels 0-255, output \"probabilities\" (N, classes)\n"
        "  safetensors   the weights, named as PyTorch's state_dict of the same layers\n"
        "  c             OUT/PREFIX.c and OUT/PREFIX.h: standalone C99, libm only, no malloc\n"
        "A quantized model (loom quantize) is written as int8: onnx as integer operators\n"
        "(QuantizeLinear, ConvInteger, MatMulInteger), c with int8 weights and int32 sums;\n"
        "both give loom's own numbers.\n\n"
        "  -o, --out OUT    the file (or, for c, the directory) to write; replaced atomically\n"
        "  --format F       onnx | safetensors | c (default: from OUT's extension)\n"
        "  --prefix NAME    c: the files' and symbols' prefix (default model)\n"
        "  --int8           refuse a model that is not quantized (make one with loom quantize)\n");
}

static const export_format *format_of_path(const char *path) {
    size_t n = strlen(path);
    for (int i = 0; i < N_FORMATS; i++) {
        if (!formats[i].ext)
            continue;
        size_t e = strlen(formats[i].ext);
        if (n > e && strcmp(path + n - e, formats[i].ext) == 0)
            return &formats[i];
    }
    return NULL;
}

int cmd_export(int argc, char **argv) {
    static const struct option opts[] = {{"out", 1, 0, 'o'},    {"format", 1, 0, 'f'},
                                         {"prefix", 1, 0, 'p'}, {"int8", 0, 0, 'i'},
                                         {"help", 0, 0, 'h'},   {0, 0, 0, 0}};
    const char *out = NULL, *format = NULL, *prefix = NULL;
    int c;
    bool is_int8 = false;
    optind = 1;
    while ((c = cli_getopt("export", argc, argv, "o:", opts)) != -1) {
        switch (c) {
        case 'o': out = optarg; break;
        case 'f': format = optarg; break;
        case 'p': prefix = optarg; break;
        case 'i': is_int8 = true; break;
        case 'h': help(); return 0;
        default: return EXIT_USAGE;
        }
    }
    if (optind >= argc)
        return cli_usage_error("export", "no model file given");
    if (optind + 1 < argc)
        return cli_usage_error("export", "unexpected argument '%s'", argv[optind + 1]);
    if (!out)
        return cli_usage_error("export", "no output file given (-o OUT)");
    const export_format *f = NULL;
    if (format) {
        for (int i = 0; i < N_FORMATS && !f; i++)
            if (strcmp(format, formats[i].name) == 0)
                f = &formats[i];
        if (!f)
            return cli_usage_error("export", "--format expects onnx, safetensors or c, got '%s'",
                                   format);
    } else if (!(f = format_of_path(out))) {
        return cli_usage_error("export", "cannot tell the format from '%s': give --format", out);
    }
    loom_model *m = NULL;
    loom_error err = {0};
    if (prefix && f->write != write_c)
        return cli_usage_error("export", "--prefix is for --format c");
    if (loom_model_load(&m, NULL, argv[optind], &err)) {
        loom_model_destroy(m);
        return cli_fail(&err);
    }
    if (is_int8 && !loom_model_is_quantized(m)) {
        loom_model_destroy(m);
        return cli_usage_error("export",
                               "--int8: %s is not quantized: make an int8 model first with loom "
                               "quantize %s -o MODEL-int8.loom",
                               argv[optind], argv[optind]);
    }
    if (f->write(m, out, prefix, &err)) {
        loom_model_destroy(m);
        return cli_fail(&err);
    }
    loom_model_destroy(m);
    return 0;
}
