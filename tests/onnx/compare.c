/* compare.c - `onnx_compare MODEL_FILE IMAGES_IDX N OTHER.bin TOL`: loom's probabilities for
 * the first N images of an IDX file against another implementation's (OTHER.bin: raw
 * little-endian float32 (N, classes), e.g. onnxruntime's run of the exported model). Prints
 * "max_abs_diff D same_class S/N" and exits 0 when D <= TOL and every top class agrees, else 1.
 * Used by tests/data/onnx.sh (built as BUILD/tests/onnx_compare; not a unit test). */
#include <loom.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

/* The index of the largest of p[0..K) (ties: the lower index). */
static int argmax(const float *p, int K) {
    int best = 0;
    for (int k = 1; k < K; k++)
        if (p[k] > p[best])
            best = k;
    return best;
}

int main(int argc, char **argv) {
    if (argc != 6) {
        fprintf(stderr, "usage: onnx_compare MODEL_FILE IMAGES_IDX N OTHER.bin TOL\n");
        return 2;
    }
    int n = atoi(argv[3]), rc = 1;
    double tol = atof(argv[5]);
    loom_model *m = NULL;
    loom_dataset *ds = NULL;
    float *mine = NULL, *other = NULL;
    FILE *f = NULL;
    loom_error err = {0};
    if (loom_model_load(&m, NULL, argv[1], &err) ||
        loom_dataset_load_idx(&ds, argv[2], NULL, &err)) {
        fprintf(stderr, "onnx_compare: %s\n", err.msg);
        goto done;
    }
    n = n < ds->n ? n : ds->n;
    int K = loom_model_n_outputs(m);
    size_t count = (size_t)n * K;
    mine = malloc(sizeof(float) * count);
    other = malloc(sizeof(float) * count);
    if (!mine || !other || n < 1) {
        fprintf(stderr, "onnx_compare: out of memory or no images\n");
        goto done;
    }
    if (loom_predict_u8(m, ds->x, n, mine, &err)) {
        fprintf(stderr, "onnx_compare: %s\n", err.msg);
        goto done;
    }
    f = fopen(argv[4], "rb");
    if (!f || fread(other, sizeof(float), count, f) != count || fgetc(f) != EOF) {
        fprintf(stderr, "onnx_compare: %s: expected %zu float32 values\n", argv[4], count);
        goto done;
    }
    double max_diff = 0.0;
    int same = 0;
    for (int i = 0; i < n; i++) {
        for (int k = 0; k < K; k++) {
            double d = fabs((double)mine[(size_t)i * K + k] - other[(size_t)i * K + k]);
            max_diff = d > max_diff || isnan(d) ? d : max_diff;
        }
        same += argmax(mine + (size_t)i * K, K) == argmax(other + (size_t)i * K, K);
    }
    printf("max_abs_diff %.3g same_class %d/%d\n", max_diff, same, n);
    rc = max_diff <= tol && same == n ? 0 : 1;
done:
    if (f)
        fclose(f);
    free(mine);
    free(other);
    loom_dataset_destroy(ds);
    loom_model_destroy(m);
    return rc;
}
