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

const char *tmp_path(const char *name) {
    static char buf[64][1024];
    static int next;
    char *p = buf[next++ % 64];
    snprintf(p, sizeof buf[0], "%s/%s", check_tmpdir(), name);
    return p;
}

const char *const check_kinds[] = {
    "standardize\nconv 4 3x3 s2 same leaky_relu 0.1\nbatchnorm momentum 0.9 eps 1e-05\n"
    "maxpool 2\nconv 4 3x3 elu\navgpool 2 stride 1\nsigmoid\ndropout 0.5\nflatten\ndense 8 tanh\n"
    "batchnorm\nrelu\ndense 3 softmax\n",
    "columns\ngru 4 return-sequences bidirectional\nbatchnorm\nlstm 3 return-sequences\n"
    "rnn 2 bidirectional activation relu\nelu\ndense 3 softmax\n",
    "rows\nrnn 3 return-sequences\nflatten\ndense 3\n",
    "conv 2 3x3\nglobalavgpool\ndense 3 softmax\n",
    "standardize\nrows\nlstm 5 return-sequences\ngru 4\ndense 10 softmax\n",
    "conv 3 5x3 s2 same\nbatchnorm\nrelu\nmaxpool 3x2\nflatten\ndense 10 softmax\n",
};
const int check_n_kinds = (int)(sizeof check_kinds / sizeof *check_kinds);
