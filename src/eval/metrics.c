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

/* The checks and setup both evaluations share: n resolved, mt initialised, K and D. */
static loom_status eval_begin(loom_model *m, const loom_dataset *ds, const int *idx, int *n,
                              int batch, loom_metrics *mt, int *K, loom_error *err) {
    memset(mt, 0, sizeof *mt);
    if (!idx && (*n <= 0 || *n > ds->n))
        *n = ds->n; /* idx NULL: the first n examples (all when n is out of range) */
    if (*n < 0)
        return loom_error_set(err, LOOM_ERR_ARG, "evaluate: negative example count %d", *n);
    if (batch < 1)
        return loom_error_set(err, LOOM_ERR_ARG, "evaluate: batch size must be >= 1, got %d",
                              batch);
    *K = loom_model_n_outputs(m);
    if (*K < ds->n_classes)
        return loom_error_set(err, LOOM_ERR_SHAPE,
                              "model has %d outputs but the dataset has %d classes", *K,
                              ds->n_classes);
    int H, W, C;
    loom_model_input_shape(m, &H, &W, &C);
    if (H != ds->H || W != ds->W || C != ds->C)
        return loom_error_set(err, LOOM_ERR_SHAPE,
                              "the model expects %dx%dx%d images, the data has %dx%dx%d", H, W, C,
                              ds->H, ds->W, ds->C);
    return loom_metrics_init(mt, *K, err);
}

/* Scores example i (ex: its index in ds, for messages) from its logits z (K) and label y: the
 * confusion, the loss, its prediction and the probability of it. False: not finite. */
static bool score_one(loom_metrics *mt, const float *z, int K, int y, int i, int *pred, float *prob,
                      double *loss_sum) {
    /* p_k = exp(z_k - max) / s with s = sum_j exp(z_j - max); loss = log s - (z_y - max) */
    int best = 0;
    for (int k = 1; k < K; k++)
        if (z[k] > z[best])
            best = k;
    double zmax = z[best], s = 0;
    for (int k = 0; k < K; k++)
        s += exp((double)z[k] - zmax);
    if (!isfinite(s) || !isfinite(zmax))
        return false;
    *loss_sum += log(s) - ((double)z[y] - zmax);
    loom_metrics_confusion_add(mt, y, best);
    if (pred)
        pred[i] = best;
    if (prob)
        prob[i] = (float)(1.0 / s);
    return true;
}

/* Infers examples [lo, hi) of idx (or of ds when idx is NULL) in batches, calling back with each
 * batch's logits: a loom_evaluate pass, or a share of evaluate_shared's. */
typedef bool (*logits_fn)(void *user, int i0, int B, float *x, const float *logits, const int *y,
                          const int *bidx);
static loom_status infer_range(loom_model *m, const loom_dataset *ds, const int *idx, int lo,
                               int hi, const loom_norm *nrm, int batch, logits_fn fn, void *user,
                               loom_error *err) {
    loom_status st = loom_model_prepare(m, batch, err);
    if (st)
        return st;
    size_t per_example = (size_t)ds->H * (size_t)ds->W * (size_t)ds->C;
    float *x = loom_xalloc(sizeof(float) * per_example * (size_t)batch); /* (batch, H, W, C) */
    int *y = malloc(sizeof(int) * (size_t)batch);
    int *ibuf = malloc(sizeof(int) * (size_t)batch); /* example indices when idx is NULL */
    if (!x || !y || !ibuf) {
        st = loom_error_set(err, LOOM_ERR_NOMEM, "evaluate: cannot allocate a batch of %d", batch);
        goto done;
    }
    for (int i0 = lo; i0 < hi; i0 += batch) {
        int B = hi - i0 < batch ? hi - i0 : batch;
        const int *bidx = idx ? idx + i0 : ibuf;
        if (!idx)
            for (int i = 0; i < B; i++)
                ibuf[i] = i0 + i;
        loom_batch_fill(ds, bidx, B, nrm, x, y);
        if (!fn(user, i0, B, x, model_infer(m, x, B), y, bidx)) {
            st = LOOM_ERR_NUMERIC;
            break;
        }
    }
done:
    free(x);
    free(y);
    free(ibuf);
    return st;
}

typedef struct {
    loom_metrics *mt;
    int K, *pred, bad;
    float *prob, *all; /* evaluate_shared: every example's logits */
    double loss_sum;
    loom_model *m;          /* the flip pass: the model, */
    const loom_dataset *ds; /* the images' shape */
    double *q;              /* and (2, B, K) the two passes' softmaxes */
} eval_acc;

static bool score_batch(void *user, int i0, int B, float *x, const float *logits, const int *y,
                        const int *bidx) {
    (void)x;
    eval_acc *a = user;
    for (int i = 0; i < B; i++)
        if (!score_one(a->mt, logits + (size_t)i * a->K, a->K, y[i], i0 + i, a->pred, a->prob,
                       &a->loss_sum)) {
            a->bad = bidx[i];
            return false;
        }
    return true;
}

static bool keep_logits(void *user, int i0, int B, float *x, const float *logits, const int *y,
                        const int *bidx) {
    (void)x;
    (void)y;
    (void)bidx;
    eval_acc *a = user;
    memcpy(a->all + (size_t)i0 * a->K, logits, sizeof(float) * (size_t)B * a->K);
    return true;
}

static loom_status eval_end(eval_acc *a, loom_status st, int n, loom_error *err) {
    if (st == LOOM_ERR_NUMERIC)
        st = loom_error_set(err, LOOM_ERR_NUMERIC,
                            "evaluate: the model's output for example %d is not finite", a->bad);
    if (st) {
        loom_metrics_reset(a->mt);
        return st;
    }
    loom_metrics_compute(a->mt);
    a->mt->loss = n > 0 ? a->loss_sum / n : NAN;
    return LOOM_OK;
}

loom_status loom_evaluate(loom_model *m, const loom_dataset *ds, const int *idx, int n,
                          const loom_norm *nrm, int batch, loom_metrics *mt, int *pred, float *prob,
                          loom_error *err) {
    eval_acc a = {.mt = mt, .pred = pred, .prob = prob};
    loom_status st = eval_begin(m, ds, idx, &n, batch, mt, &a.K, err);
    if (st)
        return st;
    st = infer_range(m, ds, idx, 0, n, nrm, batch, score_batch, &a, err);
    return eval_end(&a, st, n, err);
}

/* loom_evaluate shared by the processes of a job: each infers its slice of the examples, every
 * one then scores all of them in order from the gathered logits. The same numbers as
 * loom_evaluate (inference does not depend on the batch), in a fraction of the time. */
loom_status evaluate_shared(loom_model *m, const loom_dataset *ds, const int *idx, int n,
                            const loom_norm *nrm, int batch, loom_metrics *mt, loom_error *err);
loom_status evaluate_shared(loom_model *m, const loom_dataset *ds, const int *idx, int n,
                            const loom_norm *nrm, int batch, loom_metrics *mt, loom_error *err) {
    eval_acc a = {.mt = mt};
    loom_status st = eval_begin(m, ds, idx, &n, batch, mt, &a.K, err);
    if (st)
        return st;
    int P = loom_dist_size(), r = loom_dist_rank();
    int lo = (int)((long)n * r / P), hi = (int)((long)n * (r + 1) / P);
    a.all = loom_xalloc(sizeof(float) * ((size_t)n * a.K + 1));
    /* every process takes part in the gather whatever happened here: a failure of memory or
     * preparation ends the job (the others would wait) */
    if (!a.all)
        loom_dist_abort(1);
    st = infer_range(m, ds, idx, lo, hi, nrm, batch, keep_logits, &a, err);
    if (st && st != LOOM_ERR_NUMERIC)
        loom_dist_abort(1);
    dist_allgather_parts(a.all, sizeof(float) * (size_t)a.K, n);
    for (int i = 0; i < n && st == LOOM_OK; i++) {
        int ex = idx ? idx[i] : i;
        if (!score_one(mt, a.all + (size_t)i * a.K, a.K, ds->y[ex], i, NULL, NULL, &a.loss_sum)) {
            a.bad = ex;
            st = LOOM_ERR_NUMERIC;
        }
    }
    free(a.all);
    return eval_end(&a, st, n, err);
}

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

/* A batch of the flip pass: its softmaxes, then the mirrored batch's, averaged (q, in double) and
 * scored by -log q_y; each example scored alone (inference gives the same logits for any batch
 * size), so the figures do not depend on batch. */
static bool score_flipped(void *user, int i0, int B, float *x, const float *logits, const int *y,
                          const int *bidx) {
    eval_acc *a = user;
    int K = a->K;
    double *q = a->q, *p = a->q + (size_t)B * K;
    for (int i = 0; i < B; i++)
        if (!softmax_double(logits + (size_t)i * K, K, q + (size_t)i * K)) {
            a->bad = bidx[i];
            return false;
        }
    flip_batch(x, B, a->ds->H, a->ds->W, a->ds->C);
    logits = model_infer(a->m, x, B);
    for (int i = 0; i < B; i++) {
        double *qi = q + (size_t)i * K, *pi = p + (size_t)i * K;
        if (!softmax_double(logits + (size_t)i * K, K, pi)) {
            a->bad = bidx[i];
            return false;
        }
        int best = 0;
        for (int k = 0; k < K; k++) {
            qi[k] = 0.5 * (qi[k] + pi[k]);
            if (qi[k] > qi[best])
                best = k;
        }
        a->loss_sum -= log(qi[y[i]] > 1e-300 ? qi[y[i]] : 1e-300);
        loom_metrics_confusion_add(a->mt, y[i], best);
        if (a->pred)
            a->pred[i0 + i] = best;
        if (a->prob)
            a->prob[i0 + i] = (float)qi[best];
    }
    return true;
}

/* The flip pass: each batch inferred as it is and mirrored, the two softmaxes averaged. */
loom_status loom_evaluate_tta(loom_model *m, const loom_dataset *ds, const int *idx, int n,
                              const loom_norm *nrm, int batch, loom_metrics *mt, int *pred,
                              float *prob, loom_error *err) {
    eval_acc a = {.mt = mt, .pred = pred, .prob = prob, .m = m, .ds = ds};
    loom_status st = eval_begin(m, ds, idx, &n, batch, mt, &a.K, err);
    if (st)
        return st;
    if (!(a.q = malloc(sizeof(double) * (size_t)batch * (size_t)a.K * 2)))
        st = loom_error_set(err, LOOM_ERR_NOMEM, "evaluate: cannot allocate a batch of %d", batch);
    else
        st = infer_range(m, ds, idx, 0, n, nrm, batch, score_flipped, &a, err);
    free(a.q);
    return eval_end(&a, st, n, err);
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
    /* scikit-learn's layout (name right-aligned to w, then 9-wide columns), in percent with 2
     * decimals like every accuracy loom prints */
    fprintf(f, "%*s  %9s %9s %9s %9s\n\n", w, "", "precision", "recall", "f1-score", "support");
    for (int k = 0; k < mt->n_classes; k++)
        fprintf(f, "%*s  %8.2f%% %8.2f%% %8.2f%% %9ld\n", w, class_name(ds, k, buf),
                100 * mt->precision[k], 100 * mt->recall[k], 100 * mt->f1[k], mt->support[k]);
    fputc('\n', f);
    fprintf(f, "%*s  %9s %9s %8.2f%% %9ld\n", w, "accuracy", "", "", 100 * mt->accuracy, mt->n);
    fprintf(f, "%*s  %8.2f%% %8.2f%% %8.2f%% %9ld\n", w, "macro avg", 100 * mt->macro_p,
            100 * mt->macro_r, 100 * mt->macro_f1, mt->n);
    fprintf(f, "%*s  %8.2f%% %8.2f%% %8.2f%% %9ld\n", w, "weighted avg", 100 * mt->weighted_p,
            100 * mt->weighted_r, 100 * mt->weighted_f1, mt->n);
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
