/* cexport_tool.c - loom's side of tests/data/cexport.sh, built against libloom.a:
 *   export MODEL.loom DIR PREFIX        loom_export_c of a model file
 *   ref MODEL.loom IMAGES.idx N RAW OUT the first N images as raw bytes into RAW, and loom's own
 *                                       class and probabilities per image into OUT (as
 *                                       cexport_main prints them)
 *   compare A B N                       the two outputs: prints the largest absolute difference
 *                                       of the probabilities and how many classes agree; exits
 *                                       1 unless all N agree within 1e-5 */
#include "loom.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static int fail(const loom_error *e) {
    fprintf(stderr, "cexport_tool: %s\n", e->msg);
    return 1;
}

static int cmd_export(char **argv) {
    loom_error e = {0};
    loom_model *m = NULL;
    if (loom_model_load(&m, NULL, argv[0], &e))
        return fail(&e);
    loom_status st = loom_export_c(m, argv[1], argv[2], &e);
    loom_model_destroy(m);
    return st ? fail(&e) : 0;
}

static int cmd_ref(char **argv) {
    loom_error e = {0};
    loom_model *m = NULL;
    loom_dataset *ds = NULL;
    int n = atoi(argv[2]), rc = 1;
    float *probs = NULL;
    FILE *raw = NULL, *out = NULL;
    if (loom_model_load(&m, NULL, argv[0], &e) || loom_dataset_load_idx(&ds, argv[1], NULL, &e)) {
        rc = fail(&e);
        goto done;
    }
    if (n < 1 || n > ds->n) {
        fprintf(stderr, "cexport_tool: N must be in 1..%d\n", ds->n);
        goto done;
    }
    int K = loom_model_n_outputs(m);
    size_t n_in = (size_t)ds->H * ds->W * ds->C;
    probs = malloc(sizeof(float) * (size_t)n * K);
    if (!probs || loom_predict_u8(m, ds->x, n, probs, &e)) {
        rc = probs ? fail(&e) : 1;
        goto done;
    }
    raw = fopen(argv[3], "wb");
    out = fopen(argv[4], "w");
    if (!raw || !out || fwrite(ds->x, 1, n_in * n, raw) != n_in * n)
        goto done;
    for (int i = 0; i < n; i++) {
        const float *p = probs + (size_t)i * K;
        int best = 0;
        for (int k = 1; k < K; k++)
            best = p[k] > p[best] ? k : best;
        fprintf(out, "%d", best);
        for (int k = 0; k < K; k++)
            fprintf(out, " %.9g", p[k]);
        fputc('\n', out);
    }
    rc = 0;
done:
    if (raw && fclose(raw) != 0)
        rc = 1;
    if (out && fclose(out) != 0)
        rc = 1;
    free(probs);
    loom_dataset_destroy(ds);
    loom_model_destroy(m);
    return rc;
}

/* Reads one output line: the class, then the probabilities (up to max). */
static int read_row(FILE *f, int *cls, double *p, int max) {
    char line[8192];
    if (!fgets(line, sizeof line, f))
        return -1;
    char *s = line, *end;
    *cls = (int)strtol(s, &end, 10);
    if (end == s)
        return -1;
    int n = 0;
    for (s = end; n < max; s = end) {
        double v = strtod(s, &end);
        if (end == s)
            break;
        p[n++] = v;
    }
    return n;
}

static int cmd_compare(char **argv) {
    FILE *a = fopen(argv[0], "r"), *b = fopen(argv[1], "r");
    int n = atoi(argv[2]), agree = 0, rows = 0;
    double max_diff = 0;
    if (!a || !b) {
        fprintf(stderr, "cexport_tool: cannot open %s\n", a ? argv[1] : argv[0]);
        return 1;
    }
    for (int i = 0; i < n; i++) {
        double pa[LOOM_MAX_CLASSES], pb[LOOM_MAX_CLASSES];
        int ca, cb, na = read_row(a, &ca, pa, LOOM_MAX_CLASSES),
                    nb = read_row(b, &cb, pb, LOOM_MAX_CLASSES);
        if (na < 1 || na != nb)
            break;
        rows++;
        agree += ca == cb;
        for (int k = 0; k < na; k++)
            max_diff = fmax(max_diff, fabs(pa[k] - pb[k]));
    }
    fclose(a);
    fclose(b);
    printf("images %d, classes agree %d/%d, max abs diff %.3g\n", rows, agree, n, max_diff);
    return rows == n && agree == n && max_diff <= 1e-5 ? 0 : 1;
}

int main(int argc, char **argv) {
    if (argc == 5 && strcmp(argv[1], "export") == 0)
        return cmd_export(argv + 2);
    if (argc == 7 && strcmp(argv[1], "ref") == 0)
        return cmd_ref(argv + 2);
    if (argc == 5 && strcmp(argv[1], "compare") == 0)
        return cmd_compare(argv + 2);
    fprintf(stderr, "usage: cexport_tool export MODEL DIR PREFIX | ref MODEL IMAGES N RAW OUT | "
                    "compare A B N\n");
    return 2;
}
