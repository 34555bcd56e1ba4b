/* test_import.c - the doors back in: loom_import_onnx and loom_import_safetensors. Every zoo model
 * and models holding every layer kind go loom -> ONNX -> loom and loom -> safetensors -> loom with
 * the same model text and bit-identical parameters and state; what loom cannot express is refused
 * in one line naming the node and its op type; truncated, corrupted and lying files are errors,
 * never crashes. PyTorch's own files are tests/data/import.sh. */
#include "check.h"

#include "../src/model/model.h"
#include "onnx.pb-c.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* A model of text with random weights and state (batch-norm variances and stds positive). */
static loom_model *model(const char *text, uint64_t seed) {
    loom_model *m = NULL;
    loom_error err = {0};
    CHECK_MSG(loom_model_create(&m, text, "test", 28, 28, 1, &err) == LOOM_OK, "%s", err.msg);
    if (!m)
        return NULL;
    loom_model_init(m, seed);
    loom_rng rng;
    loom_rng_seed(&rng, seed + 1);
    for (size_t i = 0; i < m->n_state; i++)
        m->state[i] = 0.05f + loom_rng_uniform(&rng);
    for (size_t i = 0; i < m->n_params; i += 7) /* biases too, not only zeros */
        m->params[i] += 0.01f * loom_rng_normal(&rng);
    return m;
}

static bool same_model(const loom_model *a, const loom_model *b) {
    return strcmp(a->text, b->text) == 0 && a->n_params == b->n_params &&
           a->n_state == b->n_state &&
           memcmp(a->params, b->params, sizeof(float) * a->n_params) == 0 &&
           memcmp(a->state, b->state, sizeof(float) * a->n_state) == 0;
}

static void round_trip(const char *what, const char *text) {
    loom_model *m = model(text, 11), *back = NULL, *fresh = NULL;
    if (!m)
        return;
    loom_error err = {0};
    char *config = NULL;
    CHECK_MSG(loom_export_onnx(m, tmp_path("rt.onnx"), &err) == LOOM_OK, "%s", err.msg);
    loom_status st = loom_import_onnx(&back, &config, tmp_path("rt.onnx"), &err);
    CHECK_MSG(st == LOOM_OK, "%s: %s", what, err.msg);
    CHECK_MSG(back && same_model(m, back), "%s: onnx round trip differs:\n%s---\n%s", what, m->text,
              back ? back->text : "");
    CHECK(config != NULL);
    CHECK_MSG(loom_export_safetensors(m, tmp_path("rt.safetensors"), &err) == LOOM_OK, "%s",
              err.msg);
    CHECK(loom_model_create(&fresh, m->text, "test", 28, 28, 1, &err) == LOOM_OK);
    if (fresh) {
        st = loom_import_safetensors(fresh, tmp_path("rt.safetensors"), &err);
        CHECK_MSG(st == LOOM_OK, "%s: %s", what, err.msg);
        CHECK_MSG(same_model(m, fresh), "%s: safetensors round trip differs", what);
    }
    free(config);
    loom_model_destroy(fresh);
    loom_model_destroy(back);
    loom_model_destroy(m);
}

/* A model with residual blocks leaves loom as ONNX (Add nodes) but does not come back from it:
 * the import takes chains only, and says so in one line. Through safetensors it goes and comes
 * back bit for bit, the blocks' tensors named as PyTorch's state_dict of a module holding the
 * body (a Sequential) and the projection (the zoo's resnet: module 5 is the first block with
 * one, 32 filters from 16). */
static void residual_round_trip(const char *what, const char *text) {
    loom_model *m = model(text, 11), *back = NULL;
    if (!m)
        return;
    loom_error err = {0};
    char *config = NULL;
    CHECK_MSG(loom_export_onnx(m, tmp_path("rt.onnx"), &err) == LOOM_OK, "%s", err.msg);
    CHECK(loom_import_onnx(&back, &config, tmp_path("rt.onnx"), &err) == LOOM_ERR_FORMAT);
    CHECK_MSG(strstr(err.msg, "(Add)") != NULL, "%s: %s", what, err.msg);
    CHECK_MSG(loom_export_safetensors(m, tmp_path("rt.safetensors"), &err) == LOOM_OK, "%s: %s",
              what, err.msg);
    loom_model *fresh = NULL;
    CHECK(loom_model_create(&fresh, m->text, "test", 28, 28, 1, &err) == LOOM_OK);
    if (fresh) {
        loom_status st = loom_import_safetensors(fresh, tmp_path("rt.safetensors"), &err);
        CHECK_MSG(st == LOOM_OK, "%s: %s", what, err.msg);
        CHECK_MSG(same_model(m, fresh), "%s: safetensors round trip differs", what);
    }
    char *buf = NULL;
    size_t len = 0;
    CHECK(loom_file_read_all(tmp_path("rt.safetensors"), &buf, &len, &err) == LOOM_OK);
    if (buf && strcmp(what, "resnet") == 0) {
        const char *want[] = {"\"5.proj.weight\":{\"shape\":[32,16,1,1]",
                              "\"5.body.0.weight\":{\"shape\":[32,16,3,3]",
                              "\"3.body.4.running_var\"", "\"11.weight\":{\"shape\":[10,64]"};
        for (int i = 0; i < 4; i++)
            CHECK_MSG(memmem(buf, len, want[i], strlen(want[i])), "%s", want[i]);
        CHECK(!memmem(buf, len, "\"3.proj.", 8));
    }
    free(buf);
    loom_model_destroy(fresh);
    free(config);
    loom_model_destroy(back);
    loom_model_destroy(m);
}

static void test_zoo_round_trip(void) {
    int n_blocks = 0;
    for (int i = 0; i < loom_zoo_count(); i++) {
        const loom_zoo_entry *z = loom_zoo_get(i);
        if (strstr(z->text, "residual")) {
            residual_round_trip(z->name, z->text);
            n_blocks++;
        } else {
            round_trip(z->name, z->text);
        }
    }
    CHECK(n_blocks == 1); /* the zoo's one residual model: safetensors only; the other 15 both */
}

static void test_kinds_round_trip(void) {
    for (int i = 0; i < check_n_kinds; i++)
        round_trip(check_kinds[i], check_kinds[i]);
}

static void test_class_names(void) {
    loom_model *m = model(loom_zoo_find("mlp")->text, 3), *back = NULL;
    char *config = NULL;
    loom_error err = {0};
    if (!m)
        return;
    CHECK(loom_export_onnx(m, tmp_path("cn.onnx"), &err) == LOOM_OK);
    CHECK(loom_import_onnx(&back, &config, tmp_path("cn.onnx"), &err) == LOOM_OK);
    CHECK(config && strstr(config, "classes=[\"T-shirt/top\",") != NULL);
    free(config);
    loom_model_destroy(back);
    loom_model_destroy(m);
}

/* The exported bytes of a small model, malloc'd. */
static uint8_t *exported(const char *text, size_t *len) {
    loom_model *m = model(text, 5);
    loom_error err = {0};
    char *buf = NULL;
    if (m && loom_export_onnx(m, tmp_path("x.onnx"), &err) == LOOM_OK) {
        FILE *f = fopen(tmp_path("x.onnx"), "rb");
        buf = malloc(1 << 22);
        *len = f && buf ? fread(buf, 1, 1 << 22, f) : 0;
        if (f)
            fclose(f);
    }
    loom_model_destroy(m);
    return (uint8_t *)buf;
}

static void test_truncated_and_corrupt(void) {
    size_t len = 0;
    uint8_t *buf = exported("conv 2 3x3 relu\nbatchnorm\nmaxpool 2\nflatten\ndense 4\n"
                            "dense 3 softmax\n",
                            &len);
    CHECK(buf != NULL);
    if (!buf)
        return;
    int n_err = 0, n = 0;
    for (size_t cut = 0; cut < len; cut += 1 + cut / 16, n++) {
        loom_model *m = NULL;
        loom_error err = {0};
        if (loom_import_onnx_buffer(&m, NULL, buf, cut, "cut.onnx", &err) != LOOM_OK) {
            n_err++;
            CHECK(m == NULL && strncmp(err.msg, "cut.onnx: ", 10) == 0);
        }
        loom_model_destroy(m);
    }
    CHECK_MSG(n_err == n, "%d of %d truncated files were refused", n_err, n);
    loom_rng rng;
    loom_rng_seed(&rng, 9);
    uint8_t *copy = malloc(len);
    for (int trial = 0; copy && trial < 300; trial++) {
        memcpy(copy, buf, len);
        for (int k = 0; k < 4; k++)
            copy[loom_rng_below(&rng, (uint32_t)len)] = (uint8_t)loom_rng_below(&rng, 256);
        loom_model *m = NULL;
        loom_error err = {0};
        loom_import_onnx_buffer(&m, NULL, copy, len, "flip.onnx", &err); /* any answer: no crash */
        loom_model_destroy(m);
    }
    free(copy);
    free(buf);
}

/* The exported model of text with one node changed by edit, then imported: the error. */
static void refused(const char *text, void (*edit)(Onnx__ModelProto *), const char *want) {
    size_t len = 0;
    uint8_t *buf = exported(text, &len);
    Onnx__ModelProto *mp = buf ? onnx__model_proto__unpack(NULL, len, buf) : NULL;
    CHECK(mp != NULL);
    if (mp) {
        edit(mp);
        size_t n = onnx__model_proto__get_packed_size(mp);
        uint8_t *out = malloc(n);
        onnx__model_proto__pack(mp, out);
        loom_model *m = NULL;
        loom_error err = {0};
        loom_status st = loom_import_onnx_buffer(&m, NULL, out, n, "m.onnx", &err);
        CHECK_MSG(st == LOOM_ERR_FORMAT && strstr(err.msg, want) && !strchr(err.msg, '\n'),
                  "wanted '%s', got '%s'", want, err.msg);
        loom_model_destroy(m);
        free(out);
        onnx__model_proto__free_unpacked(mp, NULL);
    }
    free(buf);
}

static Onnx__NodeProto *node_of(Onnx__ModelProto *mp, const char *op) {
    for (size_t i = 0; i < mp->graph->n_node; i++)
        if (strcmp(mp->graph->node[i]->op_type, op) == 0)
            return mp->graph->node[i];
    return NULL;
}

static void selu(Onnx__ModelProto *mp) {
    Onnx__NodeProto *n = node_of(mp, "Relu");
    if (n)
        strcpy(n->op_type, "Selu");
}

static void gru_lbr0(Onnx__ModelProto *mp) {
    Onnx__NodeProto *n = node_of(mp, "GRU");
    for (size_t i = 0; n && i < n->n_attribute; i++)
        if (strcmp(n->attribute[i]->name, "linear_before_reset") == 0)
            n->attribute[i]->i = 0;
}

static void conv_group(Onnx__ModelProto *mp) {
    Onnx__NodeProto *n = node_of(mp, "Conv");
    for (size_t i = 0; n && i < n->n_attribute; i++)
        if (strcmp(n->attribute[i]->name, "strides") == 0)
            n->attribute[i]->ints[1] = 1;
}

static void short_weight(Onnx__ModelProto *mp) {
    for (size_t i = 0; i < mp->graph->n_initializer; i++)
        if (mp->graph->initializer[i]->n_dims == 2) {
            mp->graph->initializer[i]->dims[0] = 1000000; /* dims larger than the data */
            return;
        }
}

static void branch(Onnx__ModelProto *mp) {
    Onnx__NodeProto *n = node_of(mp, "Gemm");
    if (n) { /* reads the image again */
        free(n->input[0]);
        n->input[0] = strdup(mp->graph->input[0]->name);
    }
}

static void test_refusals(void) {
    refused("flatten\ndense 4 relu\ndense 3 softmax\n", selu,
            "node 'l2_relu' (Selu): loom has no layer for Selu");
    refused("rows\ngru 4\ndense 3 softmax\n", gru_lbr0,
            "(GRU): linear_before_reset = 0: loom's gru applies the reset gate after");
    refused("conv 2 3x3 s2\nflatten\ndense 3 softmax\n", conv_group,
            "(Conv): strides: loom's conv takes one stride for both axes");
    refused("flatten\ndense 4 relu\ndense 3 softmax\n", short_weight, "does not fit its");
    refused("flatten\ndense 4 relu\ndense 3 softmax\n", branch, "loom's layers form one chain");
}

/* A safetensors file: header text, then data bytes. */
static void write_st(const char *path, const char *header, size_t n_data) {
    FILE *f = fopen(path, "wb");
    if (!f)
        return;
    uint64_t n = strlen(header);
    for (int k = 0; k < 8; k++)
        fputc((int)(n >> (8 * k)) & 0xff, f);
    fputs(header, f);
    for (size_t i = 0; i < n_data; i++)
        fputc(0, f);
    fclose(f);
}

static void st_refused(const char *header, size_t n_data, const char *want) {
    loom_model *m = model("flatten\ndense 3 softmax\n", 2);
    if (!m)
        return;
    float w0 = m->params[0];
    write_st(tmp_path("lie.safetensors"), header, n_data);
    loom_error err = {0};
    loom_status st = loom_import_safetensors(m, tmp_path("lie.safetensors"), &err);
    CHECK_MSG(st == LOOM_ERR_FORMAT && strstr(err.msg, want) && !strchr(err.msg, '\n'),
              "wanted '%s', got '%s'", want, err.msg);
    CHECK(m->params[0] == w0); /* left as it was */
    loom_model_destroy(m);
}

static void test_safetensors_lies(void) {
    const char *good_b =
        "\"1.bias\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[9408,9420]}";
    char h[512];
    snprintf(h, sizeof h,
             "{\"1.weight\":{\"dtype\":\"F32\",\"shape\":[3,784],\"data_offsets\":[0,9408]},%s}",
             good_b);
    st_refused(h, 9000, "'1.weight': data_offsets out of range");
    snprintf(h, sizeof h,
             "{\"1.weight\":{\"dtype\":\"F16\",\"shape\":[3,784],\"data_offsets\":[0,4704]},%s}",
             good_b);
    st_refused(h, 9420, "'1.weight': dtype F16");
    snprintf(h, sizeof h,
             "{\"1.weight\":{\"dtype\":\"F32\",\"shape\":[784,3],\"data_offsets\":[0,9408]},%s}",
             good_b);
    st_refused(h, 9420, "does not fit the model, which needs [3, 784]");
    st_refused("{\"1.bias\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,12]}}", 12,
               "'1.weight': missing");
    snprintf(h, sizeof h,
             "{\"1.weight\":{\"dtype\":\"F32\",\"shape\":[3,784],\"data_offsets\":[0,9408]},%s,"
             "\"2.weight\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}",
             good_b);
    st_refused(h, 9420, "'2.weight' is not a parameter of the model");
    st_refused("{\"a\":", 0, "the header is not a JSON object");
    FILE *f = fopen(tmp_path("lie.safetensors"), "wb");
    if (f) {
        fwrite("\xff\xff\xff\xff\x00\x00\x00\x00{}", 1, 10, f);
        fclose(f);
    }
    loom_model *m = model("flatten\ndense 3 softmax\n", 2);
    loom_error err = {0};
    CHECK(m && loom_import_safetensors(m, tmp_path("lie.safetensors"), &err) == LOOM_ERR_FORMAT &&
          strstr(err.msg, "exceeds"));
    loom_model_destroy(m);
}

int main(void) {
    RUN(test_zoo_round_trip);
    RUN(test_kinds_round_trip);
    RUN(test_class_names);
    RUN(test_truncated_and_corrupt);
    RUN(test_refusals);
    RUN(test_safetensors_lies);
    return check_report();
}
