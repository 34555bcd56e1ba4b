/* infer_cpu.c - inference cost of a model as CPU time per image: `infer_cpu MODEL BATCH [REPEATS]
 * [THREADS]`, MODEL a zoo name or model-text file (seed-1 weights), random pixels. Prints images
 * per CPU-second of the process, the best of REPEATS (default 7) runs of about 0.1 s each after a
 * warm-up. On one thread (the default) other jobs on the machine barely move it, where wall-clock
 * img/s moves by 2-3x between minutes: it measures a change of the kernels' own cost, not how the
 * machine shares its cores (bench/ort.sh and `loom bench` measure that). */
#include "../src/model/model.h"

#include <math.h>
#include <stdio.h>
#include <time.h>

static double cpu_seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: infer_cpu MODEL BATCH [REPEATS] [THREADS]\n");
        return 2;
    }
    int B = atoi(argv[2]), repeats = argc > 3 ? atoi(argv[3]) : 7;
    int threads = argc > 4 ? atoi(argv[4]) : 1;
    if (B < 1 || repeats < 1 || threads < 1) {
        fprintf(stderr, "infer_cpu: BATCH, REPEATS and THREADS must be >= 1\n");
        return 2;
    }
    loom_set_threads(threads);
    char *text = NULL;
    loom_error err = {0};
    loom_model *m = NULL;
    if (loom_model_resolve(argv[1], &text, NULL, &err) ||
        loom_model_create(&m, text, argv[1], 28, 28, 1, &err) || loom_model_prepare(m, B, &err)) {
        fprintf(stderr, "infer_cpu: %s\n", err.msg);
        free(text);
        loom_model_destroy(m);
        return 1;
    }
    loom_model_init(m, 1);
    float *x = loom_xalloc(sizeof(float) * 784 * (size_t)B);
    if (!x) {
        fprintf(stderr, "infer_cpu: out of memory\n");
        return 1;
    }
    loom_rng rng;
    loom_rng_seed(&rng, 3);
    for (size_t i = 0; i < 784 * (size_t)B; i++)
        x[i] = loom_rng_uniform(&rng);
    double t0 = cpu_seconds();
    model_infer(m, x, B); /* warm-up, and the batches per run */
    int steps = (int)(0.1 / fmax(cpu_seconds() - t0, 1e-7)) + 1;
    double best = 0;
    for (int r = 0; r < repeats; r++) {
        double a = cpu_seconds();
        for (int s = 0; s < steps; s++)
            model_infer(m, x, B);
        double ips = (double)steps * B / (cpu_seconds() - a);
        best = ips > best ? ips : best;
    }
    printf("%.0f\n", best);
    free(x);
    free(text);
    loom_model_destroy(m);
    return 0;
}
