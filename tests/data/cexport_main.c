/* cexport_main.c - a program around a model exported to C (model.h, model.c, prefix "model"),
 * for tests/data/cexport.sh: reads N images of raw bytes (N, H, W, C) from a file and prints, per
 * image, the predicted class and the probabilities ("%.9g"). Where model_predict exists (a small
 * work buffer) it must give the same numbers as model_predict_ws. C99, libm only. */
#include "model.h"

#include <stdio.h>
#include <stdlib.h>

#define N_IN (MODEL_INPUT_H * MODEL_INPUT_W * MODEL_INPUT_C)

static float work[MODEL_WORK_FLOATS]; /* the caller's buffer for model_predict_ws */

int main(int argc, char **argv) {
    static unsigned char px[N_IN];
    static float image[N_IN];
    float probs[MODEL_N_CLASSES];
    FILE *f;
    long n, i;
    int j;
    if (argc != 3) {
        fprintf(stderr, "usage: %s IMAGES.u8 N\n", argv[0]);
        return 2;
    }
    f = fopen(argv[1], "rb");
    n = atol(argv[2]);
    if (!f) {
        fprintf(stderr, "%s: cannot open\n", argv[1]);
        return 1;
    }
    for (i = 0; i < n; i++) {
        int k;
        if (fread(px, 1, N_IN, f) != N_IN) {
            fprintf(stderr, "%s: short read at image %ld\n", argv[1], i);
            fclose(f);
            return 1;
        }
        for (j = 0; j < N_IN; j++)
            image[j] = (float)px[j];
        k = model_predict_ws(image, probs, work);
#ifdef MODEL_HAS_PREDICT
        {
            float again[MODEL_N_CLASSES];
            if (model_predict(image, again) != k) {
                fprintf(stderr, "image %ld: model_predict differs from model_predict_ws\n", i);
                fclose(f);
                return 1;
            }
            for (j = 0; j < MODEL_N_CLASSES; j++)
                if (again[j] != probs[j]) {
                    fprintf(stderr, "image %ld: model_predict differs from model_predict_ws\n", i);
                    fclose(f);
                    return 1;
                }
        }
#endif
        printf("%d", k);
        for (j = 0; j < MODEL_N_CLASSES; j++)
            printf(" %.9g", probs[j]);
        printf("\n");
    }
    fclose(f);
    printf("# %s (%s ...)\n", model_class_name(0), MODEL_N_CLASSES > 1 ? model_class_name(1) : "");
    return 0;
}
