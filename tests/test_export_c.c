/* test_export_c.c - the C export (loom_export_c): the files and their macros, a prefix of one's
 * own, errors (a missing directory, a file for a directory, a bad prefix, a weight that is not
 * finite) that leave nothing behind; and, where a C compiler is at hand, small models over every
 * layer kind compiled as C99 with -lm alone and run against loom_predict to 1e-5.
 * (Every zoo model on real data: tests/data/cexport.sh.) */
#include "check.h"

#include "loom.h"
#include "../src/core/core.h"

#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* A model from text for (H, W, C) inputs, initialised from seed, its state (batchnorm statistics,
 * standardize mean and std) set to values in [0.5, 1.5] so that none of it is the identity. */
static loom_model *make_model(const char *text, int H, int W, int C, uint64_t seed) {
    loom_model *m = NULL;
    loom_error err = {0};
    if (loom_model_create(&m, text, "test", H, W, C, &err)) {
        fprintf(stderr, "    %s\n", err.msg);
        return NULL;
    }
    loom_model_init(m, seed);
    float *s = loom_model_state(m);
    loom_rng rng;
    loom_rng_seed(&rng, seed + 1);
    for (size_t i = 0; i < loom_model_n_state(m); i++)
        s[i] = 0.5f + loom_rng_uniform(&rng);
    return m;
}

/* A fresh empty directory under the test's temporary directory. */
static void fresh_dir(char *dir, size_t n, const char *name) {
    snprintf(dir, n, "%s/%s", check_tmpdir(), name);
    mkdir(dir, 0755);
}

/* The number of entries of dir besides . and .. (-1 when it cannot be read). */
static int n_entries(const char *dir) {
    DIR *d = opendir(dir);
    if (!d)
        return -1;
    int n = 0;
    for (struct dirent *e; (e = readdir(d));)
        n += strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
    closedir(d);
    return n;
}

static bool file_has(const char *path, const char *text) {
    char *buf = NULL;
    loom_error err = {0};
    if (loom_file_read_all(path, &buf, NULL, &err))
        return false;
    bool is_found = strstr(buf, text) != NULL;
    free(buf);
    return is_found;
}

static void test_files_and_macros(void) {
    loom_model *m =
        make_model("conv 4 3x3 same relu, maxpool 2, flatten, dense 10 softmax", 8, 8, 1, 7);
    CHECK(m != NULL);
    if (!m)
        return;
    char dir[512], path[600];
    loom_error err = {0};
    fresh_dir(dir, sizeof dir, "default");
    CHECK_MSG(loom_export_c(m, dir, NULL, &err) == LOOM_OK, "%s", err.msg);
    CHECK(n_entries(dir) == 2); /* model.c and model.h, no temporaries */
    snprintf(path, sizeof path, "%s/model.h", dir);
    CHECK(file_has(path, "#define MODEL_INPUT_H 8\n"));
    CHECK(file_has(path, "#define MODEL_INPUT_C 1\n"));
    CHECK(file_has(path, "#define MODEL_N_CLASSES 10\n"));
    CHECK(file_has(path, "\"T-shirt/top\", \"Trouser\""));
    CHECK(file_has(path, "#define MODEL_WEIGHT_BYTES 2760L\n")); /* (9*4 + 4 + 64*10 + 10) * 4 */
    CHECK(file_has(path, "#define MODEL_WORK_FLOATS 512L\n"));   /* 2 x (8, 8, 4) */
    CHECK(file_has(path, "int model_predict_ws(const float *image, float *probabilities, "
                         "float *work);"));
    snprintf(path, sizeof path, "%s/model.c", dir);
    CHECK(file_has(path, "static const float model_l0[40] = {"));
    CHECK(!file_has(path, "malloc"));

    fresh_dir(dir, sizeof dir, "prefix");
    CHECK_MSG(loom_export_c(m, dir, "shoe_v2", &err) == LOOM_OK, "%s", err.msg);
    snprintf(path, sizeof path, "%s/shoe_v2.h", dir);
    CHECK(file_has(path, "#define SHOE_V2_N_CLASSES 10\n"));
    CHECK(file_has(path, "const char *shoe_v2_class_name(int k);"));
    /* a second export replaces the files */
    CHECK(loom_export_c(m, dir, "shoe_v2", &err) == LOOM_OK);
    CHECK(n_entries(dir) == 2);
    loom_model_destroy(m);
}

static void test_errors_leave_nothing(void) {
    loom_model *m = make_model("flatten, dense 3", 4, 4, 1, 1);
    CHECK(m != NULL);
    if (!m)
        return;
    char dir[512], path[600];
    loom_error err = {0};
    fresh_dir(dir, sizeof dir, "errors");
    snprintf(path, sizeof path, "%s/missing/deeper", dir);
    CHECK(loom_export_c(m, path, "model", &err) == LOOM_ERR_IO);
    CHECK_MSG(strstr(err.msg, "missing/deeper: not a directory") && !strchr(err.msg, '\n'), "%s",
              err.msg);
    CHECK(n_entries(dir) == 0);

    snprintf(path, sizeof path, "%s/a_file", dir);
    CHECK(loom_file_write_atomic(path, "x", 1, &err) == LOOM_OK);
    CHECK(loom_export_c(m, path, "model", &err) == LOOM_ERR_IO);
    CHECK(n_entries(dir) == 1);
    remove(path);

    const char *bad[] = {"9lives", "my-model", "a b", "x.y"};
    for (int i = 0; i < 4; i++) {
        CHECK(loom_export_c(m, dir, bad[i], &err) == LOOM_ERR_ARG);
        CHECK_MSG(strstr(err.msg, "is not a C identifier"), "%s", err.msg);
    }
    CHECK(loom_export_c(NULL, dir, "model", &err) == LOOM_ERR_ARG);
    CHECK(n_entries(dir) == 0);

    /* a weight that is not finite, found halfway through writing: no file left, no temporary */
    loom_model_params(m)[5] = NAN;
    CHECK(loom_export_c(m, dir, "model", &err) == LOOM_ERR_NUMERIC);
    CHECK_MSG(strstr(err.msg, "layer 1: value 5 of its weights is not finite"), "%s", err.msg);
    CHECK(n_entries(dir) == 0);
    loom_model_destroy(m);
}

/* The program around an export for the compile test: reads n images of n_in floats (0-255) from
 * argv[1] and prints the class and the probabilities. */
static const char main_text[] =
    "#include \"net.h\"\n#include <stdio.h>\n#include <stdlib.h>\n"
    "#define N_IN (NET_INPUT_H * NET_INPUT_W * NET_INPUT_C)\n"
    "static float work[NET_WORK_FLOATS];\n"
    "int main(int argc, char **argv) {\n"
    "    float x[N_IN], p[NET_N_CLASSES];\n"
    "    int j, k;\n"
    "    FILE *f = argc == 2 ? fopen(argv[1], \"rb\") : NULL;\n"
    "    if (!f)\n        return 1;\n"
    "    while (fread(x, sizeof(float), N_IN, f) == N_IN) {\n"
    "        k = net_predict_ws(x, p, work);\n"
    "        printf(\"%d\", k);\n"
    "        for (j = 0; j < NET_N_CLASSES; j++)\n            printf(\" %.9g\", p[j]);\n"
    "        printf(\"\\n\");\n    }\n"
    "    fclose(f);\n    return 0;\n}\n";

/* Exports text's model, compiles it with the C compiler (C99, warnings as errors, -lm) and
 * compares its classes and probabilities on n random images with loom_predict's. */
static void compile_and_compare(const char *name, const char *text, int H, int W, int C) {
    loom_model *m = make_model(text, H, W, C, 3);
    CHECK(m != NULL);
    if (!m)
        return;
    char dir[512], path[700], cmd[2400];
    loom_error err = {0};
    fresh_dir(dir, sizeof dir, name);
    CHECK_MSG(loom_export_c(m, dir, "net", &err) == LOOM_OK, "%s", err.msg);
    snprintf(path, sizeof path, "%s/main.c", dir);
    CHECK(loom_file_write_atomic(path, main_text, strlen(main_text), &err) == LOOM_OK);
    snprintf(cmd, sizeof cmd,
             "cc -std=c99 -O1 -Wall -Wextra -Werror -pedantic -o '%s/prog' '%s/net.c' '%s/main.c' "
             "-lm",
             dir, dir, dir);
    CHECK_MSG(system(cmd) == 0, "%s", cmd);

    enum { N = 20 };
    int K = loom_model_n_outputs(m), n_in = H * W * C;
    float *x = malloc(sizeof(float) * N * n_in), *x255 = malloc(sizeof(float) * N * n_in);
    float *probs = malloc(sizeof(float) * N * K);
    loom_rng rng;
    loom_rng_seed(&rng, 11);
    for (int i = 0; i < N * n_in; i++) {
        x255[i] = (float)loom_rng_below(&rng, 256);
        x[i] = x255[i] / 255.0f;
    }
    CHECK(loom_predict(m, x, N, probs, &err) == LOOM_OK);
    snprintf(path, sizeof path, "%s/images.f32", dir);
    CHECK(loom_file_write_atomic(path, x255, sizeof(float) * N * n_in, &err) == LOOM_OK);
    snprintf(cmd, sizeof cmd, "'%s/prog' '%s'", dir, path);
    FILE *p = popen(cmd, "r");
    CHECK(p != NULL);
    int rows = 0, agree = 0;
    double max_diff = 0;
    for (int i = 0; p && i < N; i++) {
        int cls = -1, best = 0;
        if (fscanf(p, "%d", &cls) != 1)
            break;
        for (int k = 0; k < K; k++) {
            float v = NAN;
            if (fscanf(p, "%f", &v) != 1)
                v = NAN;
            double d = fabs((double)v - probs[i * K + k]);
            max_diff = d > max_diff || isnan(d) ? d : max_diff;
            best = probs[i * K + k] > probs[i * K + best] ? k : best;
        }
        rows++;
        agree += cls == best;
    }
    CHECK(p && pclose(p) == 0);
    CHECK_MSG(rows == N && agree == N && max_diff <= 1e-5, "%s: %d rows, %d agree, max diff %g",
              name, rows, agree, max_diff);
    free(x);
    free(x255);
    free(probs);
    loom_model_destroy(m);
}

static void test_compiled_matches_loom(void) {
    if (system("cc --version >/dev/null 2>&1") != 0) {
        fprintf(stderr, "    no C compiler 'cc': compile test skipped\n");
        return;
    }
    /* standardize, strides, padding, batchnorm folded (after a linear conv or dense) and applied
     * (after an activation), every activation, both poolings, dropout, logits without softmax */
    compile_and_compare(
        "kinds_image",
        "standardize\nconv 4 3x3 s2 same\nbatchnorm\nleaky_relu 0.2\n"
        "conv 5 2x2 elu\nbatchnorm\navgpool 2 stride 1\nmaxpool 2\nflatten\ndense 6\n"
        "batchnorm\ntanh\ndropout 0.5\ndense 3 sigmoid\ndense 4 relu\n",
        9, 9, 1);
    compile_and_compare("kinds_pool", "conv 3 3x3 same relu\nglobalavgpool\ndense 4\n", 6, 5, 2);
    /* columns, stacked and bidirectional cells, rnn relu, sequences and last states */
    compile_and_compare("kinds_seq",
                        "columns\ngru 5 return-sequences bidirectional\nlstm 4 return-sequences\n"
                        "rnn 3 bidirectional activation relu\ndense 3 softmax\n",
                        6, 7, 2);
}

int main(void) {
    RUN(test_files_and_macros);
    RUN(test_errors_leave_nothing);
    RUN(test_compiled_matches_loom);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", check_tmpdir());
    if (system(cmd) != 0)
        fprintf(stderr, "    could not remove %s\n", check_tmpdir());
    return check_report();
}
