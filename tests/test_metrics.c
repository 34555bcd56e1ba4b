/* test_metrics.c - accuracy, per-class precision/recall/F1 and their averages against confusion
 * matrices worked by hand (rows = true class, columns = predicted); the report, JSON and CSV
 * outputs read back; loom_evaluate on a tiny model whose logits are known exactly. */
#include "check.h"

#include "loom.h"
#include "../src/core/core.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

/* Fills mt (K classes) from a K x K confusion matrix given as counts. */
static void fill(loom_metrics *mt, int K, const int *cm) {
    loom_error err = {0};
    CHECK(loom_metrics_init(mt, K, &err) == LOOM_OK);
    for (int t = 0; t < K; t++)
        for (int p = 0; p < K; p++)
            for (int c = 0; c < cm[t * K + p]; c++)
                loom_metrics_confusion_add(mt, t, p);
    loom_metrics_compute(mt);
}

/* Three classes; class 2 is never predicted.
 *            pred 0  pred 1  pred 2   support
 *   true 0      2       1       0        3
 *   true 1      1       3       0        4
 *   true 2      1       1       0        2
 *   predicted   4       5       0        n = 9, correct = 2 + 3 = 5, accuracy = 5/9
 * P0 = 2/4 = 0.5, R0 = 2/3, F1_0 = 2*2/(3+4) = 4/7
 * P1 = 3/5 = 0.6, R1 = 3/4, F1_1 = 2*3/(4+5) = 2/3
 * P2 = 0/0 -> 0,  R2 = 0/2 = 0, F1_2 = 0
 * macro:    P = (0.5 + 0.6 + 0)/3 = 11/30, R = (2/3 + 3/4 + 0)/3 = 17/36,
 *           F1 = (4/7 + 2/3 + 0)/3 = 26/63
 * weighted: P = (3*0.5 + 4*0.6 + 2*0)/9 = 3.9/9 = 13/30, R = (2 + 3 + 0)/9 = 5/9,
 *           F1 = (3*4/7 + 4*2/3 + 0)/9 = 92/189 */
static const int CM3[9] = {2, 1, 0, 1, 3, 0, 1, 1, 0};

static void test_three_classes(void) {
    loom_metrics mt;
    fill(&mt, 3, CM3);
    const double tol = 1e-12;
    CHECK(mt.n == 9);
    CHECK_NEAR(mt.accuracy, 5.0 / 9, tol);
    CHECK(mt.support[0] == 3 && mt.support[1] == 4 && mt.support[2] == 2);
    CHECK_NEAR(mt.precision[0], 0.5, tol);
    CHECK_NEAR(mt.recall[0], 2.0 / 3, tol);
    CHECK_NEAR(mt.f1[0], 4.0 / 7, tol);
    CHECK_NEAR(mt.precision[1], 0.6, tol);
    CHECK_NEAR(mt.recall[1], 0.75, tol);
    CHECK_NEAR(mt.f1[1], 2.0 / 3, tol);
    CHECK(mt.precision[2] == 0 && mt.recall[2] == 0 && mt.f1[2] == 0);
    CHECK_NEAR(mt.macro_p, 11.0 / 30, tol);
    CHECK_NEAR(mt.macro_r, 17.0 / 36, tol);
    CHECK_NEAR(mt.macro_f1, 26.0 / 63, tol);
    CHECK_NEAR(mt.weighted_p, 13.0 / 30, tol);
    CHECK_NEAR(mt.weighted_r, 5.0 / 9, tol);
    CHECK_NEAR(mt.weighted_f1, 92.0 / 189, tol);
    CHECK(mt.cm[1 * 3 + 1] == 3 && mt.cm[2 * 3 + 0] == 1);
    CHECK(isnan(mt.loss)); /* unknown until evaluate measures it */
    loom_metrics_reset(&mt);
    CHECK(mt.cm == NULL);
}

/* A class with no true examples but one prediction: recall 0/0 -> 0, precision 0/1 = 0; it
 * still counts in the macro average (over all classes) but weighs nothing in the weighted one.
 *            pred 0  pred 1  pred 2
 *   true 0      2       0       1      P0 = 2/2 = 1, R0 = 2/3, F1_0 = 4/5
 *   true 1      0       2       0      P1 = 1,       R1 = 1,   F1_1 = 1
 *   true 2      0       0       0      P2 = 0,       R2 = 0,   F1_2 = 0
 * accuracy 4/5; macro P = 2/3, R = 5/9, F1 = 3/5; weighted P = 1, R = 4/5, F1 = 22/25 */
static void test_zero_support(void) {
    static const int cm[9] = {2, 0, 1, 0, 2, 0, 0, 0, 0};
    loom_metrics mt;
    fill(&mt, 3, cm);
    const double tol = 1e-12;
    CHECK_NEAR(mt.accuracy, 0.8, tol);
    CHECK(mt.support[2] == 0);
    CHECK(mt.precision[2] == 0 && mt.recall[2] == 0 && mt.f1[2] == 0);
    CHECK_NEAR(mt.f1[0], 0.8, tol);
    CHECK_NEAR(mt.macro_p, 2.0 / 3, tol);
    CHECK_NEAR(mt.macro_r, 5.0 / 9, tol);
    CHECK_NEAR(mt.macro_f1, 0.6, tol);
    CHECK_NEAR(mt.weighted_p, 1.0, tol);
    CHECK_NEAR(mt.weighted_r, 0.8, tol);
    CHECK_NEAR(mt.weighted_f1, 0.88, tol);
    loom_metrics_reset(&mt);
}

/* Binary: TN = 3, FP = 1, FN = 2, TP = 4.
 * class 1: P = 4/5, R = 4/6, F1 = 8/11; class 0: P = 3/5, R = 3/4, F1 = 6/9 = 2/3;
 * accuracy 7/10; macro F1 = (8/11 + 2/3)/2 = 23/33; weighted F1 = (4*2/3 + 6*8/11)/10 = 232/330 */
static void test_binary(void) {
    static const int cm[4] = {3, 1, 2, 4};
    loom_metrics mt;
    fill(&mt, 2, cm);
    const double tol = 1e-12;
    CHECK_NEAR(mt.accuracy, 0.7, tol);
    CHECK_NEAR(mt.precision[1], 0.8, tol);
    CHECK_NEAR(mt.recall[1], 4.0 / 6, tol);
    CHECK_NEAR(mt.f1[1], 8.0 / 11, tol);
    CHECK_NEAR(mt.precision[0], 0.6, tol);
    CHECK_NEAR(mt.recall[0], 0.75, tol);
    CHECK_NEAR(mt.f1[0], 2.0 / 3, tol);
    CHECK_NEAR(mt.macro_f1, 23.0 / 33, tol);
    CHECK_NEAR(mt.weighted_f1, 232.0 / 330, tol);
    CHECK_NEAR(mt.weighted_r, 0.7, tol); /* weighted recall is always the accuracy */
    loom_metrics_reset(&mt);
}

static void test_perfect_and_empty(void) {
    static const int cm[16] = {5, 0, 0, 0, 0, 1, 0, 0, 0, 0, 7, 0, 0, 0, 0, 2};
    loom_metrics mt;
    fill(&mt, 4, cm);
    CHECK(mt.accuracy == 1.0 && mt.n == 15);
    for (int k = 0; k < 4; k++)
        CHECK(mt.precision[k] == 1.0 && mt.recall[k] == 1.0 && mt.f1[k] == 1.0);
    CHECK(mt.macro_p == 1.0 && mt.macro_r == 1.0 && mt.macro_f1 == 1.0);
    CHECK(mt.weighted_p == 1.0 && mt.weighted_r == 1.0 && mt.weighted_f1 == 1.0);
    loom_metrics_reset(&mt);

    /* nothing counted: every number is 0, none is NaN */
    static const int none[4] = {0};
    fill(&mt, 2, none);
    CHECK(mt.n == 0 && mt.accuracy == 0 && mt.macro_f1 == 0 && mt.weighted_f1 == 0);
    CHECK(mt.precision[0] == 0 && mt.recall[1] == 0);
    loom_metrics_reset(&mt);
    loom_metrics_reset(&mt); /* a reset struct can be reset again */
    loom_metrics_reset(NULL);

    loom_error err = {0};
    CHECK(loom_metrics_init(&mt, 0, &err) == LOOM_ERR_ARG);
    CHECK(loom_metrics_init(&mt, LOOM_MAX_CLASSES + 1, &err) == LOOM_ERR_ARG);
    CHECK(mt.cm == NULL);
    CHECK(loom_metrics_init(&mt, LOOM_MAX_CLASSES, &err) == LOOM_OK);
    loom_metrics_reset(&mt);
}

/* The report printed to a string (caller frees). */
static char *report_text(const loom_metrics *mt, const loom_dataset *ds) {
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (!f)
        return NULL;
    loom_metrics_report(mt, ds, f);
    fclose(f);
    return text;
}

static void test_report(void) {
    loom_metrics mt;
    fill(&mt, 3, CM3);
    char *r = report_text(&mt, NULL);
    CHECK(r != NULL);
    if (r) {
        /* scikit-learn's layout: names right-aligned to 12 ("weighted avg"), 9-wide columns;
         * percent with two decimals, as every accuracy loom prints */
        CHECK(strstr(r, "              precision    recall  f1-score   support\n\n") == r);
        CHECK(strstr(r, "\n           0     50.00%    66.67%    57.14%         3\n"));
        CHECK(strstr(r, "\n           2      0.00%     0.00%     0.00%         2\n\n"));
        CHECK(strstr(r, "\n    accuracy                         55.56%         9\n"));
        CHECK(strstr(r, "\n   macro avg     36.67%    47.22%    41.27%         9\n"));
        CHECK(strstr(r, "\nweighted avg     43.33%    55.56%    48.68%         9\n"));
        CHECK(strstr(r, "true \\ pred    0    1    2\n0              2    1    0\n"));
        CHECK(strstr(r, "\n1           0.25 0.75 0.00\n"));
        CHECK(strstr(r, "\n2           0.50 0.50 0.00\n"));
    }
    free(r);
    loom_metrics_reset(&mt);

    /* Fashion-MNIST names, the longest wider than "weighted avg" */
    loom_dataset ds = {.n_classes = 10, .is_fashion = true};
    int cm[100] = {0};
    for (int k = 0; k < 10; k++)
        cm[k * 10 + k] = 100 + k;
    cm[6 * 10 + 0] = 1234; /* shirts taken for T-shirts */
    fill(&mt, 10, cm);
    r = report_text(&mt, &ds);
    CHECK(r != NULL);
    if (r) {
        CHECK(strstr(r, "T-shirt/top"));
        CHECK(strstr(r, "Ankle boot"));
        CHECK(strstr(r, "     Sneaker    100.00%   100.00%   100.00%       107\n"));
        CHECK(strstr(r, "true \\ pred T-shirt/  Trouser Pullover"));
        CHECK(strstr(r, "\nShirt           1234        0"));
    }
    free(r);
    loom_metrics_reset(&mt);
}

static void test_json(void) {
    loom_metrics mt;
    loom_error err = {0};
    fill(&mt, 3, CM3);
    const char *path = tmp_path("metrics.json");
    CHECK(loom_metrics_write_json(&mt, NULL, path, &err) == LOOM_OK);
    char *text = NULL;
    CHECK(loom_file_read_all(path, &text, NULL, &err) == LOOM_OK);
    cJSON *j = text ? cJSON_Parse(text) : NULL;
    CHECK_MSG(j != NULL, "%s", text ? text : "(no file)");
    if (j) {
        CHECK(cJSON_GetObjectItem(j, "n")->valuedouble == 9);
        CHECK_NEAR(cJSON_GetObjectItem(j, "accuracy")->valuedouble, 5.0 / 9, 1e-15);
        CHECK(cJSON_IsNull(cJSON_GetObjectItem(j, "loss")));
        CHECK_NEAR(cJSON_GetObjectItem(j, "macro_f1")->valuedouble, 26.0 / 63, 1e-15);
        CHECK_NEAR(cJSON_GetObjectItem(j, "weighted_precision")->valuedouble, 13.0 / 30, 1e-15);
        cJSON *classes = cJSON_GetObjectItem(j, "classes");
        CHECK(cJSON_GetArraySize(classes) == 3);
        cJSON *c1 = cJSON_GetArrayItem(classes, 1);
        CHECK(c1 && strcmp(cJSON_GetObjectItem(c1, "name")->valuestring, "1") == 0);
        CHECK(c1 && cJSON_GetObjectItem(c1, "precision")->valuedouble == 0.6);
        CHECK(c1 && cJSON_GetObjectItem(c1, "recall")->valuedouble == 0.75);
        CHECK(c1 && cJSON_GetObjectItem(c1, "support")->valuedouble == 4);
        cJSON *cm = cJSON_GetObjectItem(j, "confusion_matrix");
        CHECK(cJSON_GetArraySize(cm) == 3);
        for (int t = 0; t < 3; t++)
            for (int p = 0; p < 3; p++)
                CHECK(cJSON_GetArrayItem(cJSON_GetArrayItem(cm, t), p)->valuedouble ==
                      CM3[t * 3 + p]);
    }
    cJSON_Delete(j);
    free(text);

    /* a known loss is a number; Fashion-MNIST names are written */
    loom_metrics_reset(&mt);
    int cm10[100] = {0};
    cm10[0] = 1;
    fill(&mt, 10, cm10);
    mt.loss = 0.25;
    loom_dataset ds = {.n_classes = 10, .is_fashion = true};
    CHECK(loom_metrics_write_json(&mt, &ds, path, &err) == LOOM_OK);
    CHECK(loom_file_read_all(path, &text, NULL, &err) == LOOM_OK);
    CHECK(text && strstr(text, "\"T-shirt/top\"") && strstr(text, "\"Ankle boot\""));
    j = text ? cJSON_Parse(text) : NULL;
    CHECK(j && cJSON_GetObjectItem(j, "loss")->valuedouble == 0.25);
    cJSON_Delete(j);
    free(text);

    CHECK(loom_metrics_write_json(&mt, &ds, tmp_path("no-dir/m.json"), &err) == LOOM_ERR_IO);
    loom_metrics_reset(&mt);
}

static void test_csv(void) {
    loom_metrics mt;
    loom_error err = {0};
    fill(&mt, 3, CM3);
    const char *path = tmp_path("confusion.csv");
    CHECK(loom_metrics_write_confusion_csv(&mt, NULL, path, &err) == LOOM_OK);
    char *text = NULL;
    CHECK(loom_file_read_all(path, &text, NULL, &err) == LOOM_OK);
    CHECK_MSG(text && strcmp(text, "true\\pred,0,1,2\n0,2,1,0\n1,1,3,0\n2,1,1,0\n") == 0, "%s",
              text ? text : "(no file)");
    free(text);
    loom_metrics_reset(&mt);

    int cm10[100] = {0};
    cm10[9 * 10 + 7] = 42;
    fill(&mt, 10, cm10);
    loom_dataset ds = {.n_classes = 10, .is_fashion = true};
    CHECK(loom_metrics_write_confusion_csv(&mt, &ds, path, &err) == LOOM_OK);
    CHECK(loom_file_read_all(path, &text, NULL, &err) == LOOM_OK);
    CHECK(text && strncmp(text, "true\\pred,T-shirt/top,Trouser,Pullover,", 39) == 0);
    CHECK(text && strstr(text, "\nAnkle boot,0,0,0,0,0,0,0,42,0,0\n"));
    free(text);
    loom_metrics_reset(&mt);
}

/* ---- loom_evaluate ---- */

/* A 1x1x3 "image" per example and a dense layer W = 255 I, b = 0, so the logits are the pixel
 * values: z = (10,0,0) -> 0, (0,5,0) -> 1, (0,0,3) -> 2 (true 1), (2,0,0) -> 0 (true 2). */
static uint8_t eval_x[12] = {10, 0, 0, 0, 5, 0, 0, 0, 3, 2, 0, 0};
static uint8_t eval_y[4] = {0, 1, 1, 2};

static loom_model *identity_model(void) {
    loom_model *m = NULL;
    loom_error err = {0};
    CHECK_MSG(loom_model_create(&m, "flatten\ndense 3", "test", 1, 1, 3, &err) == LOOM_OK, "%s",
              err.msg);
    if (!m)
        return NULL;
    float *w = loom_model_params(m); /* W (3, 3) then b (3) */
    CHECK(loom_model_n_params(m) == 12);
    memset(w, 0, sizeof(float) * 12);
    for (int k = 0; k < 3; k++)
        w[k * 3 + k] = 255.0f;
    return m;
}

static void test_evaluate(void) {
    loom_dataset ds = {.n = 4, .H = 1, .W = 1, .C = 3, .x = eval_x, .y = eval_y, .n_classes = 3};
    loom_model *m = identity_model();
    if (!m)
        return;
    loom_metrics mt;
    loom_error err = {0};
    int pred[4] = {-1, -1, -1, -1};
    float prob[4] = {0};
    /* batch 3: one full batch and one of a single example */
    loom_status st = loom_evaluate(m, &ds, NULL, 0, NULL, 3, &mt, pred, prob, &err);
    CHECK_MSG(st == LOOM_OK, "%s", err.msg);
    CHECK(pred[0] == 0 && pred[1] == 1 && pred[2] == 2 && pred[3] == 0);
    CHECK(mt.n == 4 && mt.n_classes == 3);
    CHECK_NEAR(mt.accuracy, 0.5, 1e-12);
    CHECK(mt.cm[0] == 1 && mt.cm[4] == 1 && mt.cm[5] == 1 && mt.cm[6] == 1);
    /* loss_i = log(sum_k exp z_k) - z_y */
    double e = exp(1.0);
    double loss_sum = log(1 + 2 * exp(-10.0)) + log(1 + 2 * exp(-5.0)); /* both right */
    loss_sum += log(2 + e * e * e) + log(e * e + 2);                    /* both wrong */
    double loss = loss_sum / 4;
    CHECK_NEAR(mt.loss, loss, 1e-5);
    CHECK_NEAR(prob[0], 1 / (1 + 2 * exp(-10.0)), 1e-6);
    CHECK_NEAR(prob[2], e * e * e / (2 + e * e * e), 1e-5);
    CHECK_NEAR(prob[3], e * e / (e * e + 2), 1e-5);
    /* per-class numbers come with it: class 0 predicted twice, right once */
    CHECK_NEAR(mt.precision[0], 0.5, 1e-12);
    loom_metrics_reset(&mt);

    /* a subset, batch 1, no outputs asked for */
    int idx[2] = {3, 0};
    st = loom_evaluate(m, &ds, idx, 2, NULL, 1, &mt, NULL, NULL, &err);
    CHECK_MSG(st == LOOM_OK, "%s", err.msg);
    CHECK(mt.n == 2 && mt.cm[0] == 1 && mt.cm[2 * 3 + 0] == 1);
    CHECK_NEAR(mt.loss, (log(1 + 2 * exp(-10.0)) + log(e * e + 2)) / 2, 1e-5);
    loom_metrics_reset(&mt);

    /* pred without prob */
    st = loom_evaluate(m, &ds, idx, 2, NULL, 4, &mt, pred, NULL, &err);
    CHECK(st == LOOM_OK && pred[0] == 0 && pred[1] == 0);
    loom_metrics_reset(&mt);
    loom_model_destroy(m);
}

/* Test-time augmentation by flips, by hand: 1x2 images (a, b) and a dense layer with
 * z = (2a, b), so the mirror (b, a) gives z' = (2b, a). (3, 1): z = (6, 1), z' = (2, 3): q0 =
 * (s(5) + s(-1)) / 2 = 0.631 with s the logistic function, still class 0. (1, 4): z = (2, 4)
 * (class 1, right), z' = (8, 1): q0 = (s(-2) + s(7)) / 2 = 0.559, so the average says 0 (wrong).
 * The plain figure is unchanged; batch 1 and 2 agree. */
static void test_evaluate_tta(void) {
    static uint8_t x[4] = {3, 1, 1, 4};
    static uint8_t y[2] = {0, 1};
    loom_dataset ds = {.n = 2, .H = 1, .W = 2, .C = 1, .x = x, .y = y, .n_classes = 2};
    loom_model *m = NULL;
    loom_error err = {0};
    CHECK_MSG(loom_model_create(&m, "flatten\ndense 2", "test", 1, 2, 1, &err) == LOOM_OK, "%s",
              err.msg);
    if (!m)
        return;
    float *w = loom_model_params(m); /* W (2, 2) then b (2) */
    memset(w, 0, sizeof(float) * 6);
    w[0] = 2 * 255.0f; /* z0 = 2 a */
    w[3] = 255.0f;     /* z1 = b */
    loom_metrics mt, mp;
    int pred[2] = {-1, -1};
    float prob[2] = {0};
    CHECK(loom_evaluate(m, &ds, NULL, 0, NULL, 2, &mp, NULL, NULL, &err) == LOOM_OK);
    CHECK_NEAR(mp.accuracy, 1.0, 1e-12);
    loom_metrics_reset(&mp);
    double q0a = 0.5 * (1 / (1 + exp(-5.0)) + 1 / (1 + exp(1.0)));
    double q0b = 0.5 * (1 / (1 + exp(2.0)) + 1 / (1 + exp(-7.0)));
    for (int batch = 1; batch <= 2; batch++) {
        loom_status st = loom_evaluate_tta(m, &ds, NULL, 0, NULL, batch, &mt, pred, prob, &err);
        CHECK_MSG(st == LOOM_OK, "%s", err.msg);
        CHECK(pred[0] == 0 && pred[1] == 0);
        CHECK_NEAR(mt.accuracy, 0.5, 1e-12);
        CHECK_NEAR(prob[0], q0a, 1e-6);
        CHECK_NEAR(prob[1], q0b, 1e-6);
        CHECK_NEAR(mt.loss, (-log(q0a) - log(1 - q0b)) / 2, 1e-6);
        CHECK(mt.cm[0] == 1 && mt.cm[2] == 1);
        loom_metrics_reset(&mt);
    }
    loom_model_params(m)[4] = NAN;
    CHECK(loom_evaluate_tta(m, &ds, NULL, 0, NULL, 2, &mt, NULL, NULL, &err) == LOOM_ERR_NUMERIC);
    CHECK(mt.cm == NULL);
    loom_model_destroy(m);
}

static void test_evaluate_errors(void) {
    loom_dataset ds = {.n = 4, .H = 1, .W = 1, .C = 3, .x = eval_x, .y = eval_y, .n_classes = 4};
    loom_model *m = identity_model();
    if (!m)
        return;
    loom_metrics mt;
    loom_error err = {0};
    CHECK(loom_evaluate(m, &ds, NULL, 0, NULL, 2, &mt, NULL, NULL, &err) == LOOM_ERR_SHAPE);
    CHECK_MSG(strcmp(err.msg, "model has 3 outputs but the dataset has 4 classes") == 0, "%s",
              err.msg);
    CHECK(mt.cm == NULL);
    loom_metrics_reset(&mt);
    ds.n_classes = 3;
    CHECK(loom_evaluate(m, &ds, NULL, 0, NULL, 0, &mt, NULL, NULL, &err) == LOOM_ERR_ARG);
    loom_metrics_reset(&mt);
    loom_model_params(m)[9] = NAN; /* bias of class 0 */
    CHECK(loom_evaluate(m, &ds, NULL, 0, NULL, 2, &mt, NULL, NULL, &err) == LOOM_ERR_NUMERIC);
    CHECK(mt.cm == NULL);
    loom_metrics_reset(&mt);
    loom_model_destroy(m);
}

int main(void) {
    RUN(test_three_classes);
    RUN(test_zero_support);
    RUN(test_binary);
    RUN(test_perfect_and_empty);
    RUN(test_report);
    RUN(test_json);
    RUN(test_csv);
    RUN(test_evaluate);
    RUN(test_evaluate_tta);
    RUN(test_evaluate_errors);
    return check_report();
}
