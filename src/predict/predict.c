/* predict.c - prediction with a loaded model: predictors (a per-thread workspace, so one model
 * serves many threads), softmax probabilities (n, K), top-k, class names, and loom_run_predict,
 * which preprocesses image files (or takes IDX images as they are) and reports the top classes.
 * Inputs are (n, H, W, C) of the model's input shape; floats are pixel/255. */
#include "../model/model.h"

#include <assert.h>
#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <omp.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#define PREDICT_BATCH 64        /* batch of loom_predict and of IDX files */
#define PREDICT_SMALL_FLOPS 2e7 /* below this per batch, no worker threads */

struct loom_predictor {
    const loom_model *m;
    int max_batch;
    int K;       /* outputs */
    size_t n_in; /* H * W * C */
    float *ws;   /* (n_ws) activations and scratch, one slot per thread */
    size_t n_ws;
    float *x;      /* (max_batch, n_in) converted uint8 input */
    float *logits; /* (max_batch, K) */
};

loom_status loom_predictor_create(loom_predictor **out, const loom_model *m, int max_batch,
                                  loom_error *err) {
    if (!out || !m)
        return loom_error_set(err, LOOM_ERR_ARG, "predictor: NULL argument");
    *out = NULL;
    if (max_batch < 1)
        return loom_error_set(err, LOOM_ERR_ARG, "predictor: batch size must be >= 1, got %d",
                              max_batch);
    loom_get_threads(); /* settles the thread count here, not in a race between callers */
    loom_predictor *p = calloc(1, sizeof *p);
    if (!p)
        return loom_error_set(err, LOOM_ERR_NOMEM, "predictor: out of memory");
    int H, W, C;
    loom_model_input_shape(m, &H, &W, &C);
    p->m = m;
    p->max_batch = max_batch;
    p->K = loom_model_n_outputs(m);
    p->n_in = (size_t)H * W * C;
    p->n_ws = model_infer_floats(m, max_batch, loom_get_threads());
    p->ws = loom_xalloc(sizeof(float) * p->n_ws);
    p->x = loom_xalloc(sizeof(float) * p->n_in * (size_t)max_batch);
    p->logits = loom_xalloc(sizeof(float) * (size_t)p->K * (size_t)max_batch);
    if (!p->ws || !p->x || !p->logits) {
        loom_predictor_destroy(p);
        return loom_error_set(err, LOOM_ERR_NOMEM,
                              "predictor: cannot allocate a workspace for batches of %d",
                              max_batch);
    }
    *out = p;
    return LOOM_OK;
}

void loom_predictor_destroy(loom_predictor *p) {
    if (!p)
        return;
    free(p->ws);
    free(p->x);
    free(p->logits);
    free(p);
}

/* probs (B, K) = softmax of logits z (B, K): p_k = exp(z_k - max) / sum_j exp(z_j - max). */
static loom_status softmax_rows(const float *z, int B, int K, float *probs, int first,
                                loom_error *err) {
    for (int i = 0; i < B; i++) {
        const float *zi = z + (size_t)i * K;
        float *pi = probs + (size_t)i * K;
        double zmax = zi[0], s = 0;
        for (int k = 1; k < K; k++)
            zmax = zi[k] > zmax ? zi[k] : zmax;
        for (int k = 0; k < K; k++)
            s += exp((double)zi[k] - zmax);
        if (!isfinite(s) || !isfinite(zmax))
            return loom_error_set(err, LOOM_ERR_NUMERIC,
                                  "predict: the model's output for image %d is not finite",
                                  first + i);
        for (int k = 0; k < K; k++)
            pi[k] = (float)(exp((double)zi[k] - zmax) / s);
    }
    return LOOM_OK;
}

/* Runs x (n, n_in) floats, or px (n, n_in) bytes when x is NULL, in batches of max_batch. */
static loom_status run_batches(loom_predictor *p, const float *x, const uint8_t *px, int n,
                               float *probs, loom_error *err) {
    if (!p || (!x && !px) || !probs)
        return loom_error_set(err, LOOM_ERR_ARG, "predict: NULL argument");
    if (n < 1)
        return loom_error_set(err, LOOM_ERR_ARG, "predict: image count must be >= 1, got %d", n);
    for (int i0 = 0; i0 < n; i0 += p->max_batch) {
        int B = n - i0 < p->max_batch ? n - i0 : p->max_batch;
        const float *xb;
        if (x) {
            xb = x + (size_t)i0 * p->n_in;
        } else {
            const uint8_t *src = px + (size_t)i0 * p->n_in;
            for (size_t j = 0; j < (size_t)B * p->n_in; j++)
                p->x[j] = (float)src[j] / 255.0f; /* as loom_batch_fill */
            xb = p->x;
        }
        /* The team size is a per-thread setting, so it is set here for the calling thread (a
         * thread of the caller's does not inherit loom_set_threads) and restored after. A small
         * batch runs on the calling thread alone: waking a team costs more than the work (far
         * more on a busy machine). Results do not depend on it. */
        bool is_small = loom_model_flops(p->m) * B < PREDICT_SMALL_FLOPS;
        int n_saved = omp_get_max_threads();
        omp_set_num_threads(is_small ? 1 : loom_get_threads());
        const float *logits = model_infer_ws(p->m, xb, B, p->ws, p->n_ws, p->logits);
        assert(logits); /* ws was sized for max_batch */
        omp_set_num_threads(n_saved);
        loom_status st = softmax_rows(logits, B, p->K, probs + (size_t)i0 * p->K, i0, err);
        if (st)
            return st;
    }
    return LOOM_OK;
}

loom_status loom_predictor_run(loom_predictor *p, const float *x, int n, float *probs,
                               loom_error *err) {
    if (!x)
        return loom_error_set(err, LOOM_ERR_ARG, "predict: NULL argument");
    return run_batches(p, x, NULL, n, probs, err);
}

loom_status loom_predictor_run_u8(loom_predictor *p, const uint8_t *px, int n, float *probs,
                                  loom_error *err) {
    if (!px)
        return loom_error_set(err, LOOM_ERR_ARG, "predict: NULL argument");
    return run_batches(p, NULL, px, n, probs, err);
}

/* loom_predict and loom_predict_u8: a predictor for the call. */
static loom_status predict_once(const loom_model *m, const float *x, const uint8_t *px, int n,
                                float *probs, loom_error *err) {
    if (!m || (!x && !px) || !probs)
        return loom_error_set(err, LOOM_ERR_ARG, "predict: NULL argument");
    if (n < 1)
        return loom_error_set(err, LOOM_ERR_ARG, "predict: image count must be >= 1, got %d", n);
    loom_predictor *p = NULL;
    loom_status st = loom_predictor_create(&p, m, n < PREDICT_BATCH ? n : PREDICT_BATCH, err);
    if (st)
        return st;
    st = run_batches(p, x, px, n, probs, err);
    loom_predictor_destroy(p);
    return st;
}

loom_status loom_predict(const loom_model *m, const float *x, int n, float *probs,
                         loom_error *err) {
    if (!x)
        return loom_error_set(err, LOOM_ERR_ARG, "predict: NULL argument");
    return predict_once(m, x, NULL, n, probs, err);
}

loom_status loom_predict_u8(const loom_model *m, const uint8_t *px, int n, float *probs,
                            loom_error *err) {
    if (!px)
        return loom_error_set(err, LOOM_ERR_ARG, "predict: NULL argument");
    return predict_once(m, NULL, px, n, probs, err);
}

int loom_top_k(const float *probs, int n, int k, int *top) {
    if (k > n)
        k = n;
    if (k < 0)
        k = 0;
    for (int i = 0; i < k; i++) { /* selection: k is small */
        int best = -1;
        for (int j = 0; j < n; j++) {
            bool is_taken = false;
            for (int t = 0; t < i && !is_taken; t++)
                is_taken = top[t] == j;
            if (!is_taken && (best < 0 || probs[j] > probs[best]))
                best = j;
        }
        top[i] = best;
    }
    return k;
}

/* ---- loom predict ---- */

void loom_predict_config_init(loom_predict_config *pc) {
    *pc = (loom_predict_config){.top_k = 3};
    loom_preprocess_config_init(&pc->pre);
}

/* "dir/name.png" -> "name". */
static void stem_of(const char *path, char *buf, size_t n) {
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    snprintf(buf, n, "%s", base);
    char *dot = strrchr(buf, '.');
    if (dot && dot != buf)
        *dot = '\0';
}

/* Writer state of one run: text lines or a JSON array of results. */
typedef struct {
    const loom_predict_config *pc;
    const loom_model *m;
    FILE *out;
    cJSON *items; /* JSON: the array of results */
    int K, top_k;
    int n_failed;
    loom_status first_st;
    loom_error first_err;
} report;

static void report_failure(report *r, const char *name, const loom_error *e) {
    if (r->n_failed++ == 0) {
        r->first_st = e->status;
        r->first_err = *e;
    }
    if (r->pc->log) {
        char line[700];
        snprintf(line, sizeof line, "%s", e->msg);
        r->pc->log(r->pc->log_user, LOOM_LOG_WARN, line);
    }
    if (r->items) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "file", name);
        cJSON_AddStringToObject(o, "error", e->msg);
        cJSON_AddItemToArray(r->items, o);
    }
}

/* One result: probs (K); index >= 0 for IDX examples; info NULL for IDX examples. */
static void report_result(report *r, const char *name, int index, const float *probs,
                          const loom_preprocess_info *info) {
    int top[LOOM_MAX_CLASSES];
    char buf[16];
    int k = loom_top_k(probs, r->K, r->top_k, top);
    if (!r->items) {
        if (index >= 0)
            fprintf(r->out, "%s[%d]:", name, index);
        else
            fprintf(r->out, "%s:", name);
        for (int i = 0; i < k; i++)
            fprintf(r->out, "%s %s %.4f", i ? "," : "", loom_model_class_name(r->m, top[i], buf),
                    (double)probs[top[i]]);
        fputc('\n', r->out);
        return;
    }
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "file", name);
    if (index >= 0)
        cJSON_AddNumberToObject(o, "index", index);
    cJSON_AddNumberToObject(o, "class", top[0]);
    cJSON_AddStringToObject(o, "name", loom_model_class_name(r->m, top[0], buf));
    cJSON *arr = cJSON_AddArrayToObject(o, "top");
    for (int i = 0; i < k; i++) {
        cJSON *t = cJSON_CreateObject();
        cJSON_AddNumberToObject(t, "class", top[i]);
        cJSON_AddStringToObject(t, "name", loom_model_class_name(r->m, top[i], buf));
        cJSON_AddNumberToObject(t, "prob", round((double)probs[top[i]] * 1e6) / 1e6);
        cJSON_AddItemToArray(arr, t);
    }
    if (info) {
        cJSON_AddBoolToObject(o, "inverted", info->is_inverted);
        int box[4] = {info->crop_x, info->crop_y, info->crop_w, info->crop_h};
        cJSON_AddItemToObject(o, "crop", cJSON_CreateIntArray(box, 4));
    }
    cJSON_AddItemToArray(r->items, o);
}

/* Writes the preprocessed image px (H, W) as save_dir/<stem>[-index].png. */
static loom_status save_input(const loom_predict_config *pc, const char *name, int index,
                              const uint8_t *px, int H, int W, loom_error *err) {
    char stem[1024], path[4096];
    stem_of(name, stem, sizeof stem);
    int len = index >= 0 ? snprintf(path, sizeof path, "%s/%s-%d.png", pc->save_dir, stem, index)
                         : snprintf(path, sizeof path, "%s/%s.png", pc->save_dir, stem);
    if (len < 0 || (size_t)len >= sizeof path)
        return loom_error_set(err, LOOM_ERR_ARG, "%s: path too long", pc->save_dir);
    return loom_image_save_png(path, px, W, H, 1, err);
}

static loom_status predict_files(report *r, loom_predictor *p, int H, int W, uint8_t *px,
                                 float *probs, loom_error *err) {
    const loom_predict_config *pc = r->pc;
    for (int i = 0; i < pc->n_images; i++) {
        const char *name = pc->images[i];
        loom_image *img = NULL;
        loom_preprocess_info info;
        loom_error e = {0};
        loom_status st = loom_image_load(&img, name, &e);
        if (!st)
            st = loom_image_preprocess(img, &pc->pre, H, W, px, &info, &e);
        loom_image_destroy(img);
        if (!st && pc->save_dir)
            st = save_input(pc, name, -1, px, H, W, &e);
        if (st == LOOM_ERR_NOMEM)
            return loom_error_set(err, st, "%s", e.msg);
        if (st) {
            report_failure(r, name, &e);
            continue;
        }
        st = loom_predictor_run_u8(p, px, 1, probs, err);
        if (st)
            return st;
        report_result(r, name, -1, probs, &info);
    }
    return LOOM_OK;
}

static loom_status predict_idx(report *r, loom_predictor *p, int H, int W, int C, float *probs,
                               loom_error *err) {
    const loom_predict_config *pc = r->pc;
    loom_dataset *ds = NULL;
    loom_status st = loom_dataset_load_idx(&ds, pc->idx_path, NULL, err);
    if (st)
        return st;
    if (ds->H != H || ds->W != W || ds->C != C) {
        st = loom_error_set(err, LOOM_ERR_SHAPE,
                            "%s: images are %dx%dx%d, the model expects %dx%dx%d", pc->idx_path,
                            ds->H, ds->W, ds->C, H, W, C);
        goto done;
    }
    size_t n_in = (size_t)H * W * C;
    for (int i0 = 0; i0 < ds->n; i0 += PREDICT_BATCH) {
        int B = ds->n - i0 < PREDICT_BATCH ? ds->n - i0 : PREDICT_BATCH;
        const uint8_t *px = ds->x + (size_t)i0 * n_in;
        if ((st = loom_predictor_run_u8(p, px, B, probs, err)))
            goto done;
        for (int i = 0; i < B; i++) {
            if (pc->save_dir && C == 1 &&
                (st = save_input(pc, pc->idx_path, i0 + i, px + i * n_in, H, W, err)))
                goto done;
            report_result(r, pc->idx_path, i0 + i, probs + (size_t)i * r->K, NULL);
        }
    }
done:
    loom_dataset_destroy(ds);
    return st;
}

loom_status loom_run_predict(const loom_predict_config *pc, FILE *out, loom_error *err) {
    if (!pc || !pc->model_file || !out || (pc->n_images > 0 && !pc->images))
        return loom_error_set(err, LOOM_ERR_ARG, "predict: NULL argument");
    if (pc->n_images < 1 && !pc->idx_path)
        return loom_error_set(err, LOOM_ERR_ARG, "predict: no images given");
    if (pc->top_k < 1)
        return loom_error_set(err, LOOM_ERR_ARG, "predict: top-k must be >= 1, got %d", pc->top_k);
    loom_model *m = NULL;
    loom_predictor *p = NULL;
    uint8_t *px = NULL;  /* (H, W) one preprocessed image */
    float *probs = NULL; /* (PREDICT_BATCH, K) */
    report r = {.pc = pc, .out = out};
    loom_status st = loom_model_load(&m, NULL, pc->model_file, err);
    if (st)
        return st;
    int H, W, C;
    loom_model_input_shape(m, &H, &W, &C);
    r.m = m;
    r.K = loom_model_n_outputs(m);
    r.top_k = pc->top_k < r.K ? pc->top_k : r.K;
    r.top_k = r.top_k < LOOM_MAX_CLASSES ? r.top_k : LOOM_MAX_CLASSES;
    if (pc->n_images > 0 && C != 1) {
        st = loom_error_set(err, LOOM_ERR_SHAPE,
                            "%s: the model takes %d-channel inputs; image files are turned into "
                            "1-channel images",
                            pc->model_file, C);
        goto done;
    }
    if (pc->save_dir && mkdir(pc->save_dir, 0777) != 0 && errno != EEXIST) {
        st = loom_error_set(err, LOOM_ERR_IO, "%s: cannot create: %s", pc->save_dir,
                            strerror(errno));
        goto done;
    }
    /* image files go one at a time: a workspace for one image (for a large CNN, a batch's
     * would be tens of MB, zeroed page by page: most of a one-image command's time) */
    if ((st = loom_predictor_create(&p, m, pc->idx_path ? PREDICT_BATCH : 1, err)))
        goto done;
    px = malloc((size_t)H * W);
    probs = malloc(sizeof(float) * PREDICT_BATCH * (size_t)r.K);
    if (pc->is_json)
        r.items = cJSON_CreateArray();
    if (!px || !probs || (pc->is_json && !r.items)) {
        st = loom_error_set(err, LOOM_ERR_NOMEM, "predict: out of memory");
        goto done;
    }
    if ((st = predict_files(&r, p, H, W, px, probs, err)))
        goto done;
    if (pc->idx_path && (st = predict_idx(&r, p, H, W, C, probs, err)))
        goto done;
    if (r.items) {
        cJSON *doc = cJSON_CreateObject();
        cJSON_AddStringToObject(doc, "model", pc->model_file);
        cJSON_AddItemToObject(doc, "predictions", r.items);
        r.items = NULL;
        char *text = cJSON_Print(doc);
        cJSON_Delete(doc);
        if (!text) {
            st = loom_error_set(err, LOOM_ERR_NOMEM, "predict: out of memory");
            goto done;
        }
        fprintf(out, "%s\n", text);
        cJSON_free(text);
    }
    if (fflush(out) != 0 || ferror(out)) {
        st = loom_error_set(err, LOOM_ERR_IO, "predict: cannot write the results: %s",
                            strerror(errno));
        goto done;
    }
    if (r.n_failed > 0) {
        int n_all = pc->n_images;
        st = loom_error_set(err, r.first_st, "%d of %d images could not be used (first: %s)",
                            r.n_failed, n_all, r.first_err.msg);
    }
done:
    cJSON_Delete(r.items);
    free(px);
    free(probs);
    loom_predictor_destroy(p);
    loom_model_destroy(m);
    return st;
}
