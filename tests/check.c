/* check.c - counters and helpers for check.h. */
#include "check.h"
#include "loom.h"

#include <stdlib.h>
#include <unistd.h>
#include <string.h>

int check_passed, check_failed;

int check_report(void) {
    printf("%d passed, %d failed\n", check_passed, check_failed);
    return check_failed ? 1 : 0;
}

const char *check_tmpdir(void) {
    static char dir[256];
    if (!dir[0]) {
        const char *t = getenv("TMPDIR");
        snprintf(dir, sizeof dir, "%s/loomtest.XXXXXX", t && *t ? t : "/tmp");
        if (!mkdtemp(dir)) {
            perror("mkdtemp");
            exit(2);
        }
    }
    return dir;
}

loom_dataset *check_dataset(int n, int H, int W, int n_classes) {
    loom_dataset *ds = calloc(1, sizeof *ds);
    if (!ds)
        return NULL;
    ds->n = n;
    ds->H = H;
    ds->W = W;
    ds->C = 1;
    ds->n_classes = n_classes;
    ds->x = malloc((size_t)n * H * W);
    ds->y = malloc((size_t)n);
    if (!ds->x || !ds->y) {
        loom_dataset_destroy(ds);
        return NULL;
    }
    return ds;
}
