/* dataset.c - the dataset object's own end: freeing it and what it owns (pixels, labels, an
 * image folder's class names). Below the readers (IDX in fashion_mnist.c, image folders in
 * folder.c) that make datasets. */
#include "../core/core.h"

void loom_dataset_destroy(loom_dataset *ds) {
    if (!ds)
        return;
    free(ds->x);
    free(ds->y);
    for (int k = 0; ds->class_names && k < ds->n_classes; k++)
        free(ds->class_names[k]);
    free(ds->class_names);
    free(ds);
}

loom_status loom_dataset_check_test(const loom_dataset *train, const loom_dataset *test,
                                    loom_error *err) {
    if (!train || !test)
        return LOOM_OK;
    if (test->H != train->H || test->W != train->W || test->C != train->C)
        return loom_error_set(err, LOOM_ERR_SHAPE,
                              "the test images are %dx%dx%d, the training images %dx%dx%d: give a "
                              "test set of the training set's size",
                              test->H, test->W, test->C, train->H, train->W, train->C);
    if (test->n_classes > train->n_classes)
        return loom_error_set(err, LOOM_ERR_SHAPE,
                              "the test labels go up to %d, the training set has %d classes (0 to "
                              "%d): give a test set of the training set's classes",
                              test->n_classes - 1, train->n_classes, train->n_classes - 1);
    return LOOM_OK;
}
