/* quantize_run.c - `loom quantize` as one call: a float model file and a stratified subset of the
 * training images in, an int8 model file out (loom_model_quantize), written through a temporary
 * file renamed into place, so a failure leaves nothing behind. */
#include "../model/model.h"

#include <math.h>

loom_status loom_run_quantize(const loom_quantize_config *qc, loom_error *err) {
    loom_model *m = NULL, *q = NULL;
    loom_dataset *ds = NULL;
    loom_split pick = {0};
    char *config = NULL;
    float *x = NULL;
    int N = qc->calibrate ? qc->calibrate : 1000;
    double pct = qc->percentile > 0 ? qc->percentile : LOOM_QUANT_PERCENTILE;
    if (N < 1)
        return loom_error_set(err, LOOM_ERR_ARG, "calibrate: %d images; expected at least 1", N);
    loom_status st = loom_model_load(&m, &config, qc->model_file, err);
    if (st)
        goto done;
    if (loom_model_is_quantized(m)) {
        st = loom_error_set(err, LOOM_ERR_ARG, "%s: already quantized (it has int8 layers)",
                            qc->model_file);
        goto done;
    }
    const char *dir = qc->data_dir ? qc->data_dir : loom_default_data_dir();
    if ((st = loom_dataset_load_dir(&ds, dir, "train", err)))
        goto done;
    if (ds->H != m->in.d[0] || ds->W != m->in.d[1] || ds->C != m->in.d[2]) {
        st = loom_error_set(
            err, LOOM_ERR_SHAPE, "%s expects %dx%dx%d images, the calibration data has %dx%dx%d",
            qc->model_file, m->in.d[0], m->in.d[1], m->in.d[2], ds->H, ds->W, ds->C);
        goto done;
    }
    if (N > ds->n) {
        st = loom_error_set(err, LOOM_ERR_ARG,
                            "calibrate: %d images, but the training set has %d (1 to %d)", N, ds->n,
                            ds->n);
        goto done;
    }
    const int *idx = NULL; /* all of them */
    if (N < ds->n) {
        if ((st = loom_split_create(&pick, ds, (double)N / ds->n, LOOM_SPLIT_STRATIFIED,
                                    loom_seed_derive(qc->seed, 77), err)))
            goto done;
        idx = pick.val;
        N = pick.n_val;
    }
    x = malloc(sizeof(float) * shape_size(m->in) * (size_t)N);
    if (!x) {
        st = loom_error_set(err, LOOM_ERR_NOMEM, "quantize: out of memory");
        goto done;
    }
    if (idx) {
        loom_batch_fill(ds, idx, N, NULL, x, NULL);
    } else {
        for (int i = 0; i < N; i++)
            loom_batch_fill(ds, &i, 1, NULL, x + (size_t)i * shape_size(m->in), NULL);
    }
    if ((st = loom_model_quantize(&q, m, x, N, pct, err)))
        goto done;
    st = loom_model_save(q, config, qc->out_path, err);
done:
    loom_model_destroy(m);
    loom_model_destroy(q);
    loom_dataset_destroy(ds);
    loom_split_reset(&pick);
    free(config);
    free(x);
    return st;
}
