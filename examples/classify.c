/* classify.c - the smallest use of libloom's prediction API: load a model file, read an image
 * (PNG, JPEG, PGM/PPM), turn it into the dataset's 28x28 convention and print the top class.
 * Build: cc classify.c $(pkg-config --cflags --libs loom) -o classify
 * Run:   ./classify runs/conv-maxpool/model.loom shirt.jpg */
#include <loom.h>

#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s MODEL_FILE IMAGE\n", argv[0]);
        return 2;
    }
    loom_error err = {0};
    loom_model *model = NULL;
    loom_image *image = NULL;
    uint8_t *pixels = NULL; /* (H, W) the model's input */
    float *probs = NULL;    /* (n_classes) */
    int status = 1;
    if (loom_model_load(&model, NULL, argv[1], &err) != LOOM_OK)
        goto done;
    int H, W, C, n_classes = loom_model_n_outputs(model);
    loom_model_input_shape(model, &H, &W, &C);
    pixels = malloc((size_t)H * W * C);
    probs = malloc(sizeof(float) * n_classes);
    if (!pixels || !probs || C != 1) {
        loom_error_set(&err, LOOM_ERR_ARG, "%s: expected a model of 1-channel images", argv[1]);
        goto done;
    }
    loom_preprocess_config pre;
    loom_preprocess_config_init(&pre); /* gray, invert if the background is light, crop, fit */
    if (loom_image_load(&image, argv[2], &err) != LOOM_OK ||
        loom_image_preprocess(image, &pre, H, W, pixels, NULL, &err) != LOOM_OK ||
        loom_predict_u8(model, pixels, 1, probs, &err) != LOOM_OK)
        goto done;
    int best;
    char buf[16];
    loom_top_k(probs, n_classes, 1, &best);
    printf("%s: %s (class %d, p = %.3f)\n", argv[2], loom_model_class_name(model, best, buf), best,
           (double)probs[best]);
    status = 0;
done:
    if (status)
        fprintf(stderr, "classify: %s\n", err.msg);
    free(pixels);
    free(probs);
    loom_image_destroy(image);
    loom_model_destroy(model);
    return status;
}
