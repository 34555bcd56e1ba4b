/* split.c - train/validation index splits (stratified or Keras-style), stratified k-fold,
 * per-pixel standardisation statistics and batch filling. Examples are (H, W, C) uint8
 * pixels; a filled batch is x (n, H, W, C) floats = pixel/255, standardised when asked. */
#include "../core/core.h"

#include <assert.h>
#include <math.h>

#define NORM_STD_FLOOR 1e-3

static int *alloc_ints(int n) { return malloc(sizeof(int) * (size_t)(n > 0 ? n : 1)); }

/* order (n) = example indices grouped by class, file order within a class; start
 * (n_classes + 1) = where each class's run begins. */
static void group_by_class(const loom_dataset *ds, int *order, int *start) {
    memset(start, 0, sizeof *start * (size_t)(ds->n_classes + 1));
    for (int i = 0; i < ds->n; i++)
        start[ds->y[i] + 1]++;
    for (int c = 0; c < ds->n_classes; c++)
        start[c + 1] += start[c];
    int fill[LOOM_MAX_CLASSES];
    memcpy(fill, start, sizeof *fill * (size_t)ds->n_classes);
    for (int i = 0; i < ds->n; i++)
        order[fill[ds->y[i]]++] = i;
}

/* The loader guarantees these; a hand-built dataset might not, and they index arrays here. */
static loom_status check_dataset(const loom_dataset *ds, const char *what, loom_error *err) {
    if (!ds || ds->n <= 0 || !ds->y || ds->n_classes < 1 || ds->n_classes > LOOM_MAX_CLASSES)
        return loom_error_set(err, LOOM_ERR_ARG, "%s: empty or invalid dataset", what);
    for (int i = 0; i < ds->n; i++)
        if (ds->y[i] >= ds->n_classes)
            return loom_error_set(err, LOOM_ERR_ARG, "%s: example %d has label %d, expected < %d",
                                  what, i, ds->y[i], ds->n_classes);
    return LOOM_OK;
}

/* Groups the examples by class and shuffles each class's run with rng, class 0 first, so that
 * every later choice is a prefix or a deal of a random per-class order. */
static loom_status shuffled_classes(const loom_dataset *ds, loom_rng *rng, int **order_out,
                                    int *start, loom_error *err) {
    int *order = alloc_ints(ds->n);
    if (!order)
        return loom_error_set(err, LOOM_ERR_NOMEM, "split: cannot allocate %d indices", ds->n);
    group_by_class(ds, order, start);
    for (int c = 0; c < ds->n_classes; c++)
        loom_shuffle_int(order + start[c], start[c + 1] - start[c], rng);
    *order_out = order;
    return LOOM_OK;
}

static loom_status alloc_split(loom_split *s, int n_train, int n_val, loom_error *err) {
    s->n_train = n_train;
    s->n_val = n_val;
    s->train = alloc_ints(n_train);
    s->val = alloc_ints(n_val);
    if (!s->train || !s->val)
        return loom_error_set(err, LOOM_ERR_NOMEM, "split: cannot allocate %d indices",
                              n_train + n_val);
    return LOOM_OK;
}

loom_status loom_split_create(loom_split *out, const loom_dataset *ds, double val_frac,
                              loom_split_mode mode, uint64_t seed, loom_error *err) {
    loom_status st = LOOM_OK;
    int *order = NULL;               /* (n) examples grouped by class, shuffled per class */
    int start[LOOM_MAX_CLASSES + 1]; /* (n_classes + 1) class run boundaries in order */
    int n_val_of[LOOM_MAX_CLASSES];  /* (n_classes) validation examples taken per class */
    loom_split s = {0};

    if (!out)
        return loom_error_set(err, LOOM_ERR_ARG, "split: NULL output");
    *out = s;
    st = check_dataset(ds, "split", err);
    if (st != LOOM_OK)
        return st;
    if (!(val_frac >= 0.0 && val_frac < 1.0))
        return loom_error_set(err, LOOM_ERR_ARG, "validation fraction %g: expected 0 <= f < 1",
                              val_frac);

    if (mode == LOOM_SPLIT_KERAS) {
        /* Keras validation_split: the last floor(n * f) examples in file order. */
        int n_val = (int)floor((double)ds->n * val_frac);
        if (n_val >= ds->n)
            n_val = ds->n - 1;
        st = alloc_split(&s, ds->n - n_val, n_val, err);
        if (st != LOOM_OK)
            goto cleanup;
        for (int i = 0; i < s.n_train; i++)
            s.train[i] = i;
        for (int i = 0; i < n_val; i++)
            s.val[i] = s.n_train + i;
    } else if (mode == LOOM_SPLIT_STRATIFIED) {
        /* Per class, round(f * count) examples of a seeded shuffle go to validation; then both
         * lists are shuffled, with the same generator, so neither is ordered by class. */
        loom_rng rng;
        loom_rng_seed(&rng, seed);
        st = shuffled_classes(ds, &rng, &order, start, err);
        if (st != LOOM_OK)
            goto cleanup;
        int n_val = 0;
        for (int c = 0; c < ds->n_classes; c++) {
            n_val_of[c] = (int)floor(val_frac * (start[c + 1] - start[c]) + 0.5);
            n_val += n_val_of[c];
        }
        if (n_val >= ds->n) {
            st = loom_error_set(err, LOOM_ERR_ARG,
                                "validation fraction %g leaves no training examples out of %d",
                                val_frac, ds->n);
            goto cleanup;
        }
        st = alloc_split(&s, ds->n - n_val, n_val, err);
        if (st != LOOM_OK)
            goto cleanup;
        int it = 0, iv = 0;
        for (int c = 0; c < ds->n_classes; c++) {
            for (int p = start[c]; p < start[c + 1]; p++) {
                if (p - start[c] < n_val_of[c])
                    s.val[iv++] = order[p];
                else
                    s.train[it++] = order[p];
            }
        }
        assert(it == s.n_train && iv == s.n_val);
        loom_shuffle_int(s.train, s.n_train, &rng);
        loom_shuffle_int(s.val, s.n_val, &rng);
    } else {
        st = loom_error_set(err, LOOM_ERR_ARG, "split mode %d: unknown", (int)mode);
        goto cleanup;
    }
    *out = s;
    s = (loom_split){0};
cleanup:
    loom_split_reset(&s);
    free(order);
    return st;
}

loom_status loom_split_kfold(loom_split *out, const loom_dataset *ds, int K, int k, uint64_t seed,
                             loom_error *err) {
    loom_status st = LOOM_OK;
    int *order = NULL;               /* (n) examples grouped by class, shuffled per class */
    int *fold_of = NULL;             /* (n) fold of each example */
    int start[LOOM_MAX_CLASSES + 1]; /* (n_classes + 1) class run boundaries in order */
    loom_split s = {0};

    if (!out)
        return loom_error_set(err, LOOM_ERR_ARG, "k-fold: NULL output");
    *out = s;
    st = check_dataset(ds, "k-fold", err);
    if (st != LOOM_OK)
        return st;
    if (K < 2 || K > ds->n)
        return loom_error_set(err, LOOM_ERR_ARG, "k-fold: %d folds: expected 2 to %d", K, ds->n);
    if (k < 0 || k >= K)
        return loom_error_set(err, LOOM_ERR_ARG, "k-fold: fold %d: expected 0 to %d", k, K - 1);

    loom_rng rng;
    loom_rng_seed(&rng, seed);
    st = shuffled_classes(ds, &rng, &order, start, err);
    if (st != LOOM_OK)
        goto cleanup;
    fold_of = alloc_ints(ds->n);
    if (!fold_of) {
        st = loom_error_set(err, LOOM_ERR_NOMEM, "k-fold: cannot allocate %d indices", ds->n);
        goto cleanup;
    }
    /* Deal the class-grouped order round-robin, continuing across classes: every fold gets
     * each class's count / K within one, and fold sizes differ by at most one. */
    int n_val = 0;
    for (int p = 0; p < ds->n; p++) {
        fold_of[order[p]] = p % K;
        n_val += p % K == k;
    }
    st = alloc_split(&s, ds->n - n_val, n_val, err);
    if (st != LOOM_OK)
        goto cleanup;
    /* Both lists ascending: canonical, and the trainer shuffles for itself. */
    int it = 0, iv = 0;
    for (int i = 0; i < ds->n; i++) {
        if (fold_of[i] == k)
            s.val[iv++] = i;
        else
            s.train[it++] = i;
    }
    *out = s;
    s = (loom_split){0};
cleanup:
    loom_split_reset(&s);
    free(order);
    free(fold_of);
    return st;
}

void loom_split_reset(loom_split *s) {
    if (!s)
        return;
    free(s->train);
    free(s->val);
    *s = (loom_split){0};
}

loom_status loom_norm_fit(loom_norm *out, const loom_dataset *ds, const int *idx, int n,
                          loom_error *err) {
    loom_status st = LOOM_OK;
    loom_norm nrm = {0};
    uint64_t *sum = NULL;    /* (D) sum of pixels, exact */
    uint64_t *sum_sq = NULL; /* (D) sum of squared pixels, exact */

    if (!out)
        return loom_error_set(err, LOOM_ERR_ARG, "standardisation: NULL output");
    *out = nrm;
    if (!ds || !ds->x || ds->n <= 0)
        return loom_error_set(err, LOOM_ERR_ARG, "standardisation: empty or invalid dataset");
    if (!idx)
        n = ds->n;
    if (n <= 0)
        return loom_error_set(err, LOOM_ERR_ARG, "standardisation: no examples to fit on");
    size_t D = (size_t)ds->H * (size_t)ds->W * (size_t)ds->C;
    sum = calloc(D, sizeof *sum);
    sum_sq = calloc(D, sizeof *sum_sq);
    nrm.mean = malloc(D * sizeof *nrm.mean);
    nrm.std = malloc(D * sizeof *nrm.std);
    if (!sum || !sum_sq || !nrm.mean || !nrm.std) {
        st = loom_error_set(err, LOOM_ERR_NOMEM, "standardisation: cannot allocate %zu pixels", D);
        goto cleanup;
    }
    for (int i = 0; i < n; i++) {
        int e = idx ? idx[i] : i;
        if (e < 0 || e >= ds->n) {
            st = loom_error_set(err, LOOM_ERR_ARG, "standardisation: example %d out of 0..%d", e,
                                ds->n - 1);
            goto cleanup;
        }
        const uint8_t *px = ds->x + (size_t)e * D; /* (H, W, C) */
        for (size_t j = 0; j < D; j++) {
            sum[j] += px[j];
            sum_sq[j] += (uint64_t)px[j] * px[j];
        }
    }
    /* Integer sums are exact; mean and variance of pixel/255 follow in double:
     * mean = S / (255 n), var = (Q / n - (S / n)^2) / 255^2. */
    for (size_t j = 0; j < D; j++) {
        double m = (double)sum[j] / n;
        double var = ((double)sum_sq[j] / n - m * m) / (255.0 * 255.0);
        double sd = sqrt(var > 0.0 ? var : 0.0);
        nrm.mean[j] = (float)(m / 255.0);
        nrm.std[j] = (float)(sd > NORM_STD_FLOOR ? sd : NORM_STD_FLOOR);
    }
    nrm.is_on = true;
    *out = nrm;
    nrm = (loom_norm){0};
cleanup:
    loom_norm_reset(&nrm);
    free(sum);
    free(sum_sq);
    return st;
}

void loom_norm_reset(loom_norm *nrm) {
    if (!nrm)
        return;
    free(nrm->mean);
    free(nrm->std);
    *nrm = (loom_norm){0};
}

void loom_batch_fill(const loom_dataset *ds, const int *idx, int n, const loom_norm *nrm, float *x,
                     int *y) {
    size_t D = (size_t)ds->H * (size_t)ds->W * (size_t)ds->C;
    bool is_std = nrm && nrm->is_on && nrm->mean && nrm->std;
    for (int i = 0; i < n; i++) {
        int e = idx ? idx[i] : i;
        assert(e >= 0 && e < ds->n);
        const uint8_t *px = ds->x + (size_t)e * D; /* (H, W, C) */
        float *row = x + (size_t)i * D;            /* (H, W, C) */
        /* px / 255 as a vector division (correctly rounded, so the same values as one
         * division per pixel; a 256-entry table lookup does not vectorise) */
        if (is_std) {
#pragma omp simd
            for (size_t j = 0; j < D; j++)
                row[j] = ((float)px[j] / 255.0f - nrm->mean[j]) / nrm->std[j];
        } else {
#pragma omp simd
            for (size_t j = 0; j < D; j++)
                row[j] = (float)px[j] / 255.0f;
        }
        if (y)
            y[i] = ds->y[e];
    }
}
