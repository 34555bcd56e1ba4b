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
