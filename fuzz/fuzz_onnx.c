/* fuzz_onnx.c - libFuzzer harness for the ONNX import (loom_import_onnx_buffer): each input is
 * imported as it is. Whatever the bytes, the import must answer with a model or one error, within
 * the fuzzer's memory limit (protobuf-c decodes through a size-limited allocator; tensor sizes
 * are checked against their data). A model that imports must be usable: it predicts one image
 * and survives loom -> ONNX -> loom with the same text. */
#include "loom.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_FORWARD_FLOPS 2e7 /* skip the forward pass of larger (valid) models: speed only */

static void use(loom_model *m) {
    int H, W, C;
    loom_model_input_shape(m, &H, &W, &C);
    int K = loom_model_n_outputs(m);
    loom_error err = {0};
    if (loom_model_flops(m) <= MAX_FORWARD_FLOPS) {
        float *x = calloc((size_t)H * W * C, sizeof *x), *p = calloc((size_t)K, sizeof *p);
        if (x && p)
            loom_predict(m, x, 1, p, &err);
        free(x);
        free(p);
    }
    /* the export writes a file: in $TMPDIR, else the C library's temporary directory */
    const char *dir = getenv("TMPDIR");
    char path[1100];
    snprintf(path, sizeof path, "%.1000s/fuzz_onnx.%d.onnx", dir && *dir ? dir : P_tmpdir,
             (int)getpid());
    loom_model *back = NULL;
    if (loom_export_onnx(m, path, &err) == LOOM_OK) {
        if (loom_import_onnx(&back, NULL, path, &err) != LOOM_OK ||
            strcmp(loom_model_text(back), loom_model_text(m)) != 0)
            abort(); /* loom's own export must come back */
        unlink(path);
    }
    loom_model_destroy(back);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    loom_model *m = NULL;
    char *config = NULL;
    loom_error err = {0};
    if (loom_import_onnx_buffer(&m, &config, data, size, "fuzz.onnx", &err) == LOOM_OK) {
        if (!m || !config)
            abort();
        use(m);
    } else if (m || config || !err.msg[0]) {
        abort(); /* a failure leaves nothing behind and says why */
    }
    free(config);
    loom_model_destroy(m);
    return 0;
}
