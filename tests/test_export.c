/* test_export.c - the doors to other systems on synthetic models: loom_export_onnx and
 * loom_export_safetensors write every layer kind, the files start as their formats say, a layer
 * kind without a lowering is refused by name, and a bad path leaves nothing behind. The
 * comparison against onnxruntime on real data is tests/data/onnx.sh. */
#include "check.h"

#include "../src/model/model.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static loom_model *model(const char *text) {
    loom_model *m = NULL;
    loom_error err = {0};
    CHECK_MSG(loom_model_create(&m, text, "test", 24, 20, 1, &err) == LOOM_OK, "%s", err.msg);
    if (m)
        loom_model_init(m, 7);
    return m;
}

static void test_every_kind(void) {
    for (int i = 0; i < check_n_kinds; i++) {
        loom_model *m = model(check_kinds[i]);
        if (!m)
            continue;
        loom_error err = {0};
        CHECK_MSG(loom_export_onnx(m, tmp_path("m.onnx"), &err) == LOOM_OK, "%s", err.msg);
        CHECK_MSG(loom_export_safetensors(m, tmp_path("m.safetensors"), &err) == LOOM_OK, "%s",
                  err.msg);
        char *buf = NULL;
        size_t len = 0;
        CHECK(loom_file_read_all(tmp_path("m.onnx"), &buf, &len, &err) == LOOM_OK);
        /* ModelProto field 1 (ir_version, varint) = 8 comes first */
        CHECK(buf && len > 100 && buf[0] == 0x08 && buf[1] == 8);
        CHECK(buf && memmem(buf, len, "probabilities", 13) != NULL);
        free(buf);
        buf = NULL;
        CHECK(loom_file_read_all(tmp_path("m.safetensors"), &buf, &len, &err) == LOOM_OK);
        uint64_t n = 0;
        for (int k = 0; buf && len >= 8 && k < 8; k++)
            n |= (uint64_t)(uint8_t)buf[k] << (8 * k);
        CHECK(buf && n % 8 == 0 && 8 + n <= len && buf[8] == '{');
        CHECK(buf && n <= len && memmem(buf, len, "\"format\":\"pt\"", 13) != NULL);
        free(buf);
        loom_model_destroy(m);
    }
}

static void test_refused(void) {
    loom_model *m = model("flatten\ndense 3 softmax\n");
    if (!m)
        return;
    /* a kind no door knows: the dense layer's operations without a lowering */
    layer_ops ops = *m->layers[1].ops;
    ops.lower = NULL;
    const layer_ops *saved = m->layers[1].ops;
    m->layers[1].ops = &ops;
    loom_error err = {0};
    CHECK(loom_export_onnx(m, tmp_path("r.onnx"), &err) == LOOM_ERR_ARG);
    CHECK(strstr(err.msg, "dense 3 softmax") != NULL && strchr(err.msg, '\n') == NULL);
    CHECK(loom_export_safetensors(m, tmp_path("r.safetensors"), &err) == LOOM_ERR_ARG);
    CHECK(strstr(err.msg, "layer 2") != NULL);
    FILE *f = fopen(tmp_path("r.onnx"), "rb");
    CHECK(f == NULL);
    if (f)
        fclose(f);
    m->layers[1].ops = saved;
    CHECK(loom_export_onnx(m, "/nonexistent-dir/x.onnx", &err) == LOOM_ERR_IO);
    CHECK(loom_export_onnx(NULL, tmp_path("n.onnx"), &err) == LOOM_ERR_ARG);
    loom_model_destroy(m);
}

int main(void) {
    RUN(test_every_kind);
    RUN(test_refused);
    return check_report();
}
