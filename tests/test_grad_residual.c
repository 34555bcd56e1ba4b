/* test_grad_residual.c - finite-difference checks of residual blocks (src/layers/residual.c): the
 * identity shortcut, the projection (stride 2 and a channel change, chosen or forced), an
 * activation after the addition, nested blocks, batchnorm and dropout inside; the same gradients
 * on 1 and 2 threads; the model language's braces and repeat (errors name line and token). */
#include "../src/model/model.h"
#include "check.h"
#include "gradcheck.h"

#include <string.h>

static void test_identity(void) {
    gradcheck_expect("conv 3 3x3 same, residual { conv 3 3x3 same tanh, conv 3 3x3 same }, "
                     "flatten, dense 4",
                     6, 6, 2, 2);
    gradcheck_expect("residual { conv 2 3x3 same } tanh, flatten", 5, 5, 2, 3);
    gradcheck_expect("flatten, dense 6, residual { dense 6 tanh, dense 6 } elu, dense 3", 4, 4, 1,
                     2);
}

static void test_projection(void) {
    /* stride 2 and 2 -> 4 channels: the 1x1 s2 shortcut chosen by the shapes */
    gradcheck_expect("residual { conv 4 3x3 s2 same tanh, conv 4 3x3 same } tanh, flatten", 7, 7, 2,
                     2);
    gradcheck_expect("residual { conv 4 3x3 s2 same, conv 4 3x3 same }, flatten, dense 3", 8, 8, 2,
                     2);
    /* a channel change alone, and a projection asked for on equal shapes */
    gradcheck_expect("residual { conv 5 3x3 same sigmoid }, flatten", 6, 6, 3, 2);
    gradcheck_expect("residual proj { conv 3 3x3 same tanh }, flatten", 6, 6, 3, 2);
}

static void test_nested(void) {
    gradcheck_expect("conv 3 3x3 same, residual { residual { conv 3 3x3 same tanh } tanh, "
                     "residual proj { conv 4 3x3 s2 same } }, flatten, dense 3",
                     7, 7, 1, 2);
    gradcheck_expect("repeat 2 { residual { conv 2 3x3 same tanh, conv 2 3x3 same } tanh }, "
                     "globalavgpool, dense 3",
                     6, 6, 2, 2);
}

static void test_batchnorm_dropout(void) {
    gradcheck_expect("conv 3 3x3 same, residual { conv 3 3x3 same, batchnorm, tanh, "
                     "conv 3 3x3 same, batchnorm } tanh, flatten, dense 4",
                     6, 6, 2, 3);
    gradcheck_expect("residual { conv 4 3x3 s2 same, batchnorm, dropout 0.3, tanh } , flatten, "
                     "dense 3",
                     7, 7, 2, 3);
    gradcheck_expect(
        "flatten, dense 8, residual { dense 8, batchnorm, dropout 0.25, dense 8 }, dense 3", 5, 5,
        1, 4);
}

/* Same gradients and outputs on 1 and 2 threads, bit for bit. */
static void test_threads(void) {
    gradcheck_threads_expect("conv 8 3x3 same, batchnorm, relu\n"
                             "residual { conv 8 3x3 same, batchnorm, relu, conv 8 3x3 same, "
                             "batchnorm } relu\n"
                             "residual { conv 16 3x3 s2 same, batchnorm, relu, dropout 0.1, "
                             "conv 16 3x3 same, batchnorm } relu\n"
                             "globalavgpool, dense 10 softmax",
                             12, 12, 2, 6, 2);
}

/* The text round-trips; inference in chunks and on a workspace equals the training forward. */
static void test_text_and_inference(void) {
    const char *text = "conv 4 3x3 same\n"
                       "repeat 2 {\n"
                       "  residual {   # a comment\n"
                       "    conv 4 3x3 same + batchnorm\n"
                       "    relu\n"
                       "  } relu\n"
                       "}\n"
                       "residual { conv 6 3x3 s2 same, residual { conv 6 3x3 same } }\n"
                       "relu\n"
                       "globalavgpool\ndense 3";
    loom_model *m = NULL, *m2 = NULL;
    loom_error err = {0};
    CHECK(loom_model_create(&m, text, "text", 9, 9, 1, &err) == LOOM_OK);
    if (!m) {
        fprintf(stderr, "    %s\n", err.msg);
        return;
    }
    CHECK(m->n_layers == 7);
    const char *want = "conv 4 3x3 same\n"
                       "residual { conv 4 3x3 same, batchnorm, relu } relu\n"
                       "residual { conv 4 3x3 same, batchnorm, relu } relu\n"
                       "residual proj { conv 6 3x3 s2 same, residual { conv 6 3x3 same } }\n"
                       "relu\nglobalavgpool\ndense 3\n";
    CHECK_MSG(strcmp(loom_model_text(m), want) == 0, "text:\n%s", loom_model_text(m));
    CHECK(loom_model_create(&m2, loom_model_text(m), "again", 9, 9, 1, &err) == LOOM_OK);
    if (m2) {
        CHECK(strcmp(loom_model_text(m2), want) == 0);
        CHECK(loom_model_n_params(m2) == loom_model_n_params(m));
        CHECK(loom_model_n_state(m2) == loom_model_n_state(m));
    }
    loom_model_destroy(m2);
    enum { B = 70 };
    static float x[B * 81], ref[B * 3];
    loom_rng rng;
    loom_rng_seed(&rng, 5);
    for (int i = 0; i < B * 81; i++)
        x[i] = loom_rng_uniform(&rng);
    loom_model_init(m, 2);
    CHECK(loom_model_prepare(m, B, &err) == LOOM_OK);
    memcpy(ref, loom_model_forward(m, x, B, false, NULL), sizeof ref);
    const float *z = model_infer(m, x, B);
    CHECK(memcmp(z, ref, sizeof ref) == 0);
    size_t need = 0;
    model_forward_ws(m, NULL, B, NULL, 0, &need);
    float *ws = loom_xalloc(sizeof(float) * need);
    z = model_forward_ws(m, x, B, ws, need, NULL);
    CHECK(z && memcmp(z, ref, sizeof ref) == 0);
    free(ws);
    loom_model_destroy(m);
}

/* save -> load: the same text (nesting, projections, the activations after the additions), the
 * same parameters and batchnorm state, bitwise-identical outputs. */
static void test_save_load(void) {
    enum { B = 5 };
    const char *text = "conv 4 3x3 same, batchnorm, relu, repeat 2 { residual { conv 4 3x3 same, "
                       "batchnorm, relu, conv 4 3x3 same, batchnorm } relu }, residual { conv 6 "
                       "3x3 s2 same, residual proj { conv 6 3x3 same } elu 0.5 } leaky_relu 0.2, "
                       "globalavgpool, dense 3 softmax";
    loom_model *m = NULL, *m2 = NULL;
    loom_error err = {0};
    CHECK(loom_model_create(&m, text, "save", 10, 10, 1, &err) == LOOM_OK);
    if (!m)
        return;
    loom_model_init(m, 8);
    static float x[B * 100], y1[B * 3];
    loom_rng rng;
    loom_rng_seed(&rng, 9);
    for (int i = 0; i < B * 100; i++)
        x[i] = loom_rng_uniform(&rng);
    CHECK(loom_model_prepare(m, B, &err) == LOOM_OK);
    loom_model_forward(m, x, B, true, &rng); /* moves the running statistics off their start */
    memcpy(y1, loom_model_forward(m, x, B, false, NULL), sizeof y1);
    char path[1100];
    snprintf(path, sizeof path, "%.1000s/residual.loom", check_tmpdir());
    CHECK(loom_model_save(m, "model=x\n", path, &err) == LOOM_OK);
    CHECK_MSG(loom_model_load(&m2, NULL, path, &err) == LOOM_OK, "%s", err.msg);
    remove(path);
    if (m2) {
        CHECK(strcmp(loom_model_text(m2), loom_model_text(m)) == 0);
        CHECK(loom_model_n_params(m2) == loom_model_n_params(m));
        CHECK(memcmp(loom_model_params(m2), loom_model_params(m),
                     sizeof(float) * loom_model_n_params(m)) == 0);
        CHECK(memcmp(loom_model_state(m2), loom_model_state(m),
                     sizeof(float) * loom_model_n_state(m)) == 0);
        CHECK(loom_model_prepare(m2, B, &err) == LOOM_OK);
        CHECK(memcmp(loom_model_forward(m2, x, B, false, NULL), y1, sizeof y1) == 0);
    }
    loom_model_destroy(m);
    loom_model_destroy(m2);
}

/* Random erasing: parsed and formatted back to the same values, and drawn in place. */
static void test_erase_setting(void) {
    loom_train_config cfg = {0};
    loom_error err = {0};
    char buf[128];
    CHECK(loom_augment_parse("flip,shift:2,erase", &cfg, &err) == LOOM_OK);
    CHECK(cfg.is_augment_flip && cfg.augment_shift == 2 && cfg.erase_p == 0.5f);
    loom_augment_format(&cfg, buf, sizeof buf);
    CHECK_MSG(strcmp(buf, "flip,shift:2,erase:0.5:0.02-0.4:0.3") == 0, "%s", buf);
    CHECK(loom_augment_parse("erase:0.25:0.1-0.2:0.5", &cfg, &err) == LOOM_OK);
    loom_augment_format(&cfg, buf, sizeof buf);
    CHECK_MSG(strcmp(buf, "shift:0,erase:0.25:0.1-0.2:0.5") == 0, "%s", buf);
    loom_train_config c2 = {0};
    CHECK(loom_augment_parse(buf, &c2, &err) == LOOM_OK);
    CHECK(c2.erase_p == cfg.erase_p && c2.erase_area_min == cfg.erase_area_min &&
          c2.erase_area_max == cfg.erase_area_max && c2.erase_aspect == cfg.erase_aspect);
    CHECK(loom_augment_parse("erase:1.5", &cfg, &err) == LOOM_ERR_ARG);
    CHECK(strstr(err.msg, "'erase:1.5'") != NULL);
    CHECK(loom_augment_parse("erase:0.5:0.4-0.1", &cfg, &err) == LOOM_ERR_ARG);
    CHECK(loom_augment_parse("erase:0.5:0.1", &cfg, &err) == LOOM_ERR_ARG);
    CHECK(loom_augment_parse("flip", &cfg, &err) == LOOM_OK && cfg.erase_p == 0.0f);
    loom_augment_format(&cfg, buf, sizeof buf);
    CHECK(strcmp(buf, "flip,shift:0") == 0);
}

static void expect_error(const char *text, const char *part) {
    loom_model *m = NULL;
    loom_error err = {0};
    CHECK(loom_model_create(&m, text, "spec.txt", 8, 8, 1, &err) != LOOM_OK);
    CHECK_MSG(strstr(err.msg, part) != NULL, "[%s] gave '%s'", text, err.msg);
    loom_model_destroy(m);
}

static void test_errors(void) {
    expect_error("residual { conv 2 3x3 same\nflatten, dense 3", "spec.txt:1: 'residual {' is not");
    expect_error("conv 2 3x3\n}\nflatten, dense 3", "spec.txt:2: '}' without");
    expect_error("residual {}\nflatten, dense 3", "empty block");
    expect_error("residual\nconv 2 3x3\nflatten, dense 3", "expected '{' after 'residual'");
    expect_error("residual fast { conv 2 3x3 same }, flatten, dense 3", "'fast'");
    expect_error("residual { conv 2 3x3 same } dense 4, flatten, dense 3", "not an activation");
    expect_error("repeat 0 { conv 2 3x3 same }, flatten, dense 3", "found '0'");
    expect_error("flatten\nresidual { dense 4 }\ndense 3", "needs images");
    expect_error("residual { conv 2 3x3 same, bogus 3 }, flatten, dense 3",
                 "spec.txt:1: unknown layer kind 'bogus'");
    expect_error("{ conv 2 3x3 }, flatten, dense 3", "without 'residual' or 'repeat N'");
    expect_error("repeat 1000 { repeat 1000 { repeat 1000 { } } }, flatten, dense 3",
                 "spec.txt:1: repeat: an empty block");
    expect_error("flatten, dense 3, residual { repeat 60 { residual { repeat 60 { tanh } } } }",
                 "longer than");
}

int main(void) {
    RUN(test_identity);
    RUN(test_projection);
    RUN(test_nested);
    RUN(test_batchnorm_dropout);
    RUN(test_threads);
    RUN(test_text_and_inference);
    RUN(test_save_load);
    RUN(test_erase_setting);
    RUN(test_errors);
    return check_report();
}
