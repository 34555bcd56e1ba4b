/* metrics.c - classification metrics from a confusion matrix (rows = true class, columns =
 * predicted): accuracy, per-class precision/recall/F1 (0 where undefined, as scikit-learn's
 * zero_division=0), macro and support-weighted averages; the text report, JSON and CSV files;
 * and loom_evaluate, which runs a model over a dataset in batches (logits (B, K)). */
#include "../model/model.h"

#include <assert.h>
#include <cjson/cJSON.h>
#include <math.h>

/* Class name for column k: the dataset's names, or "k" when there is no dataset or the model
 * has more outputs than the dataset has classes. buf has at least 16 bytes. */
static const char *class_name(const loom_dataset *ds, int k, char *buf) {
    if (!ds || k >= ds->n_classes) {
        snprintf(buf, 16, "%d", k);
        return buf;
    }
    return loom_class_name(ds, k, buf);
}

/* ---- the confusion matrix and the numbers computed from it ---- */

loom_status loom_metrics_init(loom_metrics *mt, int n_classes, loom_error *err) {
    memset(mt, 0, sizeof *mt);
    if (n_classes < 1 || n_classes > LOOM_MAX_CLASSES)
        return loom_error_set(err, LOOM_ERR_ARG, "metrics: %d classes, expected 1 to %d", n_classes,
                              LOOM_MAX_CLASSES);
    mt->cm = calloc((size_t)n_classes * (size_t)n_classes, sizeof *mt->cm);
    if (!mt->cm)
        return loom_error_set(err, LOOM_ERR_NOMEM, "metrics: out of memory");
    mt->n_classes = n_classes;
    mt->loss = NAN; /* unknown until someone measures it */
    return LOOM_OK;
}

void loom_metrics_reset(loom_metrics *mt) {
    if (!mt)
        return;
    free(mt->cm);
    memset(mt, 0, sizeof *mt);
}

void loom_metrics_confusion_add(loom_metrics *mt, int y_true, int y_pred) {
    int K = mt->n_classes;
    assert(y_true >= 0 && y_true < K && y_pred >= 0 && y_pred < K);
    if (y_true < 0 || y_true >= K || y_pred < 0 || y_pred >= K)
        return;
    mt->cm[(size_t)y_true * K + y_pred]++;
}

static double ratio(double num, double den) { return den > 0 ? num / den : 0.0; }

/* precision_k = tp / (column sum), recall_k = tp / (row sum), F1_k = 2 tp / (row + column sum)
 * (the same as 2PR / (P + R), and 0 when both are 0); weighted averages use the row sums. */
void loom_metrics_compute(loom_metrics *mt) {
    int K = mt->n_classes;
    long n = 0, n_correct = 0;
    long predicted[LOOM_MAX_CLASSES] = {0}; /* (K) column sums */
    for (int t = 0; t < K; t++) {
        mt->support[t] = 0;
        for (int p = 0; p < K; p++) {
            long c = mt->cm[(size_t)t * K + p];
            mt->support[t] += c;
            predicted[p] += c;
        }
        n += mt->support[t];
        n_correct += mt->cm[(size_t)t * K + t];
    }
    mt->n = n;
    mt->accuracy = ratio((double)n_correct, (double)n);
    double sp = 0, sr = 0, sf = 0, wp = 0, wr = 0, wf = 0;
    for (int k = 0; k < K; k++) {
        double tp = (double)mt->cm[(size_t)k * K + k];
        mt->precision[k] = ratio(tp, (double)predicted[k]);
        mt->recall[k] = ratio(tp, (double)mt->support[k]);
        mt->f1[k] = ratio(2 * tp, (double)(predicted[k] + mt->support[k]));
        sp += mt->precision[k];
        sr += mt->recall[k];
        sf += mt->f1[k];
        wp += (double)mt->support[k] * mt->precision[k];
        wr += (double)mt->support[k] * mt->recall[k];
        wf += (double)mt->support[k] * mt->f1[k];
    }
    for (int k = K; k < LOOM_MAX_CLASSES; k++) {
        mt->precision[k] = mt->recall[k] = mt->f1[k] = 0;
        mt->support[k] = 0;
    }
    mt->macro_p = sp / K;
    mt->macro_r = sr / K;
    mt->macro_f1 = sf / K;
    mt->weighted_p = ratio(wp, (double)n);
    mt->weighted_r = ratio(wr, (double)n);
    mt->weighted_f1 = ratio(wf, (double)n);
}

/* ---- evaluation of a model ---- */

/* Softmax of logits z (K) into p (K), in double; false when z is not finite. */
static bool softmax_double(const float *z, int K, double *p) {
    float zmax = z[0];
    for (int k = 1; k < K; k++)
        if (z[k] > zmax)
            zmax = z[k];
    double s = 0;
    for (int k = 0; k < K; k++)
        s += p[k] = exp((double)z[k] - zmax);
    if (!isfinite(s) || !isfinite(zmax))
        return false;
    for (int k = 0; k < K; k++)
        p[k] /= s;
    return true;
}

/* x (B, H, W, C) mirrored left to right in place. */
static void flip_batch(float *x, int B, int H, int W, int C) {
    for (long r = 0; r < (long)B * H; r++) {
        float *row = x + (size_t)r * W * C;
        for (int a = 0, b = W - 1; a < b; a++, b--)
            for (int c = 0; c < C; c++) {
                float t = row[(size_t)a * C + c];
                row[(size_t)a * C + c] = row[(size_t)b * C + c];
                row[(size_t)b * C + c] = t;
            }
    }
}

/* loom_evaluate and, is_tta, loom_evaluate_tta: the same batches, each example scored alone
 * (the model's inference gives the same logits for any batch size), so the figures do not
 * depend on batch. The plain pass takes the loss from the logits; the flip pass averages the
 * two softmaxes (q, in double) and scores -log q_y. */
static loom_status evaluate_impl(loom_model *m, const loom_dataset *ds, const int *idx, int n,
                                 const loom_norm *nrm, int batch, bool is_tta, loom_metrics *mt,
                                 int *pred, float *prob, loom_error *err) {
    float *x = NULL;  /* (batch, H, W, C) */
    int *y = NULL;    /* (batch) labels */
    int *ibuf = NULL; /* (batch) example indices when idx is NULL */
    double *q = NULL; /* (batch, K) the plain pass's softmax (is_tta) */
    double loss_sum = 0;
    memset(mt, 0, sizeof *mt);
    if (!idx && (n <= 0 || n > ds->n))
        n = ds->n; /* idx NULL: the first n examples (all when n is out of range) */
    if (n < 0)
        return loom_error_set(err, LOOM_ERR_ARG, "evaluate: negative example count %d", n);
    if (batch < 1)
        return loom_error_set(err, LOOM_ERR_ARG, "evaluate: batch size must be >= 1, got %d",
                              batch);
    int K = loom_model_n_outputs(m);
    if (K < ds->n_classes)
        return loom_error_set(err, LOOM_ERR_SHAPE,
                              "model has %d outputs but the dataset has %d classes", K,
                              ds->n_classes);
    int H, W, C;
    loom_model_input_shape(m, &H, &W, &C);
    if (H != ds->H || W != ds->W || C != ds->C)
        return loom_error_set(err, LOOM_ERR_SHAPE,
                              "the model expects %dx%dx%d images, the data has %dx%dx%d", H, W, C,
                              ds->H, ds->W, ds->C);
    loom_status st = loom_metrics_init(mt, K, err);
    if (st)
        return st;
    st = loom_model_prepare(m, batch, err);
    if (st)
        goto done;
    size_t per_example = (size_t)ds->H * (size_t)ds->W * (size_t)ds->C;
    x = loom_xalloc(sizeof(float) * per_example * (size_t)batch);
    y = malloc(sizeof(int) * (size_t)batch);
    ibuf = malloc(sizeof(int) * (size_t)batch);
    q = malloc(sizeof(double) * (size_t)batch * (size_t)K * 2);
    if (!x || !y || !ibuf || !q) {
        st = loom_error_set(err, LOOM_ERR_NOMEM, "evaluate: cannot allocate a batch of %d", batch);
        goto done;
    }
    for (int i0 = 0; i0 < n; i0 += batch) {
        int B = n - i0 < batch ? n - i0 : batch;
        const int *bidx = idx ? idx + i0 : ibuf;
        if (!idx)
            for (int i = 0; i < B; i++)
                ibuf[i] = i0 + i;
        loom_batch_fill(ds, bidx, B, nrm, x, y);
        const float *logits = model_infer(m, x, B); /* (B, K) */
        if (is_tta) {
            for (int i = 0; i < B; i++)
                if (!softmax_double(logits + (size_t)i * K, K, q + (size_t)i * K)) {
                    st = loom_error_set(err, LOOM_ERR_NUMERIC,
                                        "evaluate: the model's output for example %d is not finite",
                                        bidx[i]);
                    goto done;
                }
            flip_batch(x, B, H, W, C);
            logits = model_infer(m, x, B);
        }
        for (int i = 0; i < B; i++) {
            const float *z = logits + (size_t)i * K;
            if (is_tta) {
                double *qi = q + (size_t)i * K, *pi = q + (size_t)(batch + i) * K;
                if (!softmax_double(z, K, pi)) {
                    st = loom_error_set(err, LOOM_ERR_NUMERIC,
                                        "evaluate: the model's output for example %d (flipped) "
                                        "is not finite",
                                        bidx[i]);
                    goto done;
                }
                int best = 0;
                for (int k = 0; k < K; k++) {
                    qi[k] = 0.5 * (qi[k] + pi[k]);
                    if (qi[k] > qi[best])
                        best = k;
                }
                loss_sum -= log(qi[y[i]] > 1e-300 ? qi[y[i]] : 1e-300);
                loom_metrics_confusion_add(mt, y[i], best);
                if (pred)
                    pred[i0 + i] = best;
                if (prob)
                    prob[i0 + i] = (float)qi[best];
                continue;
            }
            /* p_k = exp(z_k - max) / s with s = sum_j exp(z_j - max); loss = log s - (z_y - max) */
            int best = 0;
            for (int k = 1; k < K; k++)
                if (z[k] > z[best])
                    best = k;
            double zmax = z[best], s = 0;
            for (int k = 0; k < K; k++)
                s += exp((double)z[k] - zmax);
            if (!isfinite(s) || !isfinite(zmax)) {
                st = loom_error_set(err, LOOM_ERR_NUMERIC,
                                    "evaluate: the model's output for example %d is not finite",
                                    bidx[i]);
                goto done;
            }
            loss_sum += log(s) - ((double)z[y[i]] - zmax);
            loom_metrics_confusion_add(mt, y[i], best);
            if (pred)
                pred[i0 + i] = best;
            if (prob)
                prob[i0 + i] = (float)(1.0 / s);
        }
    }
    loom_metrics_compute(mt);
    mt->loss = n > 0 ? loss_sum / n : NAN;
done:
    free(x);
    free(y);
    free(ibuf);
    free(q);
    if (st)
        loom_metrics_reset(mt);
    return st;
}

loom_status loom_evaluate(loom_model *m, const loom_dataset *ds, const int *idx, int n,
                          const loom_norm *nrm, int batch, loom_metrics *mt, int *pred, float *prob,
                          loom_error *err) {
    return evaluate_impl(m, ds, idx, n, nrm, batch, false, mt, pred, prob, err);
}

loom_status loom_evaluate_tta(loom_model *m, const loom_dataset *ds, const int *idx, int n,
                              const loom_norm *nrm, int batch, loom_metrics *mt, int *pred,
                              float *prob, loom_error *err) {
    return evaluate_impl(m, ds, idx, n, nrm, batch, true, mt, pred, prob, err);
}

/* ---- the text report ---- */

/* Width of the first column: the longest class name, at least "weighted avg". */
static int name_width(const loom_metrics *mt, const loom_dataset *ds) {
    char buf[16];
    int w = (int)strlen("weighted avg");
    for (int k = 0; k < mt->n_classes; k++) {
        int len = (int)strlen(class_name(ds, k, buf));
        if (len > w)
            w = len;
    }
    return w;
}

#define SHORT_NAME 8 /* characters of a class name in the confusion-matrix header */

/* The confusion matrix, as counts (is_ratio false) or as fractions of each row. */
static void report_confusion(const loom_metrics *mt, const loom_dataset *ds, FILE *f,
                             bool is_ratio) {
    int K = mt->n_classes;
    char buf[16];
    int rw = (int)strlen("true \\ pred"), cw = 4; /* row-label and column widths */
    for (int k = 0; k < K; k++) {
        int len = (int)strlen(class_name(ds, k, buf));
        if (len > rw)
            rw = len;
        if ((len < SHORT_NAME ? len : SHORT_NAME) > cw)
            cw = len < SHORT_NAME ? len : SHORT_NAME;
    }
    long max_count = 0;
    for (size_t i = 0; i < (size_t)K * K; i++)
        if (mt->cm[i] > max_count)
            max_count = mt->cm[i];
    int digits = snprintf(NULL, 0, "%ld", max_count);
    if (digits > cw)
        cw = digits;
    fprintf(f, "%-*s", rw, "true \\ pred");
    for (int k = 0; k < K; k++)
        fprintf(f, " %*.*s", cw, SHORT_NAME, class_name(ds, k, buf));
    fputc('\n', f);
    for (int t = 0; t < K; t++) {
        fprintf(f, "%-*s", rw, class_name(ds, t, buf));
        for (int p = 0; p < K; p++) {
            long c = mt->cm[(size_t)t * K + p];
            if (is_ratio)
                fprintf(f, " %*.2f", cw, ratio((double)c, (double)mt->support[t]));
            else
                fprintf(f, " %*ld", cw, c);
        }
        fputc('\n', f);
    }
}

void loom_metrics_report(const loom_metrics *mt, const loom_dataset *ds, FILE *f) {
    int w = name_width(mt, ds);
    char buf[16];
    /* scikit-learn's layout: name right-aligned to w, then 9-wide columns, 2 decimals */
    fprintf(f, "%*s  %9s %9s %9s %9s\n\n", w, "", "precision", "recall", "f1-score", "support");
    for (int k = 0; k < mt->n_classes; k++)
        fprintf(f, "%*s  %9.2f %9.2f %9.2f %9ld\n", w, class_name(ds, k, buf), mt->precision[k],
                mt->recall[k], mt->f1[k], mt->support[k]);
    fputc('\n', f);
    fprintf(f, "%*s  %9s %9s %9.2f %9ld\n", w, "accuracy", "", "", mt->accuracy, mt->n);
    fprintf(f, "%*s  %9.2f %9.2f %9.2f %9ld\n", w, "macro avg", mt->macro_p, mt->macro_r,
            mt->macro_f1, mt->n);
    fprintf(f, "%*s  %9.2f %9.2f %9.2f %9ld\n", w, "weighted avg", mt->weighted_p, mt->weighted_r,
            mt->weighted_f1, mt->n);
    fprintf(f, "\nConfusion matrix (rows = true class, columns = predicted), counts:\n");
    report_confusion(mt, ds, f, false);
    fprintf(f, "\nConfusion matrix, each row divided by the class's support:\n");
    report_confusion(mt, ds, f, true);
}

/* ---- files ---- */

/* Adds a number; returns false when cJSON could not allocate. */
static bool json_num(cJSON *obj, const char *key, double v) {
    return cJSON_AddNumberToObject(obj, key, v) != NULL;
}

static cJSON *metrics_to_json(const loom_metrics *mt, const loom_dataset *ds) {
    int K = mt->n_classes;
    char buf[16];
    cJSON *root = cJSON_CreateObject();
    if (!root)
        return NULL;
    bool ok = json_num(root, "n", (double)mt->n) && json_num(root, "accuracy", mt->accuracy);
    /* loss is NaN when unknown; cJSON writes NaN as null */
    ok = ok && json_num(root, "loss", mt->loss) && json_num(root, "n_classes", K);
    ok = ok && json_num(root, "macro_precision", mt->macro_p) &&
         json_num(root, "macro_recall", mt->macro_r) && json_num(root, "macro_f1", mt->macro_f1);
    ok = ok && json_num(root, "weighted_precision", mt->weighted_p) &&
         json_num(root, "weighted_recall", mt->weighted_r) &&
         json_num(root, "weighted_f1", mt->weighted_f1);
    cJSON *classes = ok ? cJSON_AddArrayToObject(root, "classes") : NULL;
    ok = classes != NULL;
    for (int k = 0; ok && k < K; k++) {
        cJSON *c = cJSON_CreateObject();
        ok = c && cJSON_AddItemToArray(classes, c);
        if (!ok) {
            cJSON_Delete(c);
            break;
        }
        ok = cJSON_AddStringToObject(c, "name", class_name(ds, k, buf)) &&
             json_num(c, "precision", mt->precision[k]) && json_num(c, "recall", mt->recall[k]) &&
             json_num(c, "f1", mt->f1[k]) && json_num(c, "support", (double)mt->support[k]);
    }
    cJSON *cm = ok ? cJSON_AddArrayToObject(root, "confusion_matrix") : NULL;
    ok = cm != NULL;
    for (int t = 0; ok && t < K; t++) {
        cJSON *row = cJSON_CreateArray();
        ok = row && cJSON_AddItemToArray(cm, row);
        if (!ok) {
            cJSON_Delete(row);
            break;
        }
        for (int p = 0; ok && p < K; p++) {
            cJSON *v = cJSON_CreateNumber((double)mt->cm[(size_t)t * K + p]);
            ok = v && cJSON_AddItemToArray(row, v);
            if (!ok)
                cJSON_Delete(v);
        }
    }
    if (!ok) {
        cJSON_Delete(root);
        return NULL;
    }
    return root;
}

loom_status loom_metrics_write_json(const loom_metrics *mt, const loom_dataset *ds,
                                    const char *path, loom_error *err) {
    char *text = NULL;
    cJSON *root = metrics_to_json(mt, ds);
    if (root)
        text = cJSON_Print(root);
    cJSON_Delete(root);
    if (!text)
        return loom_error_set(err, LOOM_ERR_NOMEM, "%s: out of memory", path);
    size_t len = strlen(text);
    char *out = malloc(len + 1); /* the text and a final newline, in one write */
    if (out) {
        memcpy(out, text, len);
        out[len] = '\n';
    }
    cJSON_free(text);
    if (!out)
        return loom_error_set(err, LOOM_ERR_NOMEM, "%s: out of memory", path);
    loom_status st = loom_file_write_atomic(path, out, len + 1, err);
    free(out);
    return st;
}

/* Writes s as one CSV field, quoted (with doubled quotes) when it holds , " or a line break. */
static void csv_field(FILE *f, const char *s) {
    if (!strpbrk(s, ",\"\r\n")) {
        fputs(s, f);
        return;
    }
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"')
            fputc('"', f);
        fputc(*s, f);
    }
    fputc('"', f);
}

loom_status loom_metrics_write_confusion_csv(const loom_metrics *mt, const loom_dataset *ds,
                                             const char *path, loom_error *err) {
    int K = mt->n_classes;
    char buf[16];
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (!f)
        return loom_error_set(err, LOOM_ERR_NOMEM, "%s: out of memory", path);
    fputs("true\\pred", f);
    for (int k = 0; k < K; k++) {
        fputc(',', f);
        csv_field(f, class_name(ds, k, buf));
    }
    fputc('\n', f);
    for (int t = 0; t < K; t++) {
        csv_field(f, class_name(ds, t, buf));
        for (int p = 0; p < K; p++)
            fprintf(f, ",%ld", mt->cm[(size_t)t * K + p]);
        fputc('\n', f);
    }
    bool bad = ferror(f) != 0;
    if (fclose(f) != 0 || bad || !text) {
        free(text);
        return loom_error_set(err, LOOM_ERR_NOMEM, "%s: out of memory", path);
    }
    loom_status st = loom_file_write_atomic(path, text, len, err);
    free(text);
    return st;
}
