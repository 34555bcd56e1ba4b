/* cmd_bench.c - `loom bench MODEL...|all`: training and inference images/s (median of repeats)
 * and achieved GFLOP/s, one table row per model. */
#include "cli.h"

#include <getopt.h>
#include <sys/resource.h>
#include <stdlib.h>
#include <string.h>

/* The per-layer table of one model: ms per step forward and backward, and the share of the step. */
static void print_layers(const char *name, const loom_bench_result *r) {
    double total = r->update_ms + r->other_ms;
    for (int i = 0; i < r->n_layers; i++)
        total += r->layers[i].forward_ms + r->layers[i].backward_ms;
    printf("\n%s, one training step of %d images (%.2f ms):\n\n| layer | forward ms | backward "
           "ms | share |\n|---|---|---|---|\n",
           name, r->batch, total);
    for (int i = 0; i < r->n_layers; i++)
        printf("| %d %s | %.3f | %.3f | %.1f%% |\n", i + 1, r->layers[i].name,
               r->layers[i].forward_ms, r->layers[i].backward_ms,
               100 * (r->layers[i].forward_ms + r->layers[i].backward_ms) / total);
    printf("| optimizer update | | | %.1f%% (%.3f ms) |\n", 100 * r->update_ms / total,
           r->update_ms);
    printf("| the rest: batch fill, zeroing gradients, loss | | | %.1f%% (%.3f ms) |\n",
           100 * r->other_ms / total, r->other_ms);
}

int cmd_bench(int argc, char **argv) {
    static const struct option opts[] = {{"batch", 1, 0, 'b'},
                                         {"repeats", 1, 0, 'r'},
                                         {"seconds", 1, 0, 's'},
                                         {"threads", 1, 0, 't'},
                                         {"layers", 0, 0, 'l'},
                                         {"help", 0, 0, 'h'},
                                         {0, 0, 0, 0}};
    int batch = 64, repeats = 5, threads = 0, c;
    bool is_layers = false;
    double seconds = 1.0;
    optind = 1;
    while ((c = cli_getopt("bench", argc, argv, NULL, opts)) != -1) {
        switch (c) {
        case 'b':
            if (!cli_int("bench", "--batch", optarg, 1, 65536, &batch))
                return EXIT_USAGE;
            break;
        case 'r':
            if (!cli_int("bench", "--repeats", optarg, 1, 100, &repeats))
                return EXIT_USAGE;
            break;
        case 's':
            if (!cli_double("bench", "--seconds", optarg, 0.01, 600, &seconds))
                return EXIT_USAGE;
            break;
        case 't':
            if (!cli_int("bench", "--threads", optarg, 0, 1024, &threads))
                return EXIT_USAGE;
            break;
        case 'l': is_layers = true; break;
        case 'h':
            printf("usage: loom bench MODEL...|all [--batch 64] [--repeats 5] [--seconds 1]\n"
                   "       [--threads N] [--layers]\nTraining (forward+backward+Adam) and "
                   "inference throughput on random images; median of the repeats.\n"
                   "  --layers   then where a training step's time goes, layer by layer\n");
            return 0;
        default: return EXIT_USAGE;
        }
    }
    if (optind >= argc)
        return cli_usage_error("bench", "no model given (a zoo name, a file, or 'all')");
    cli_set_threads(threads);
    if (cli_is_passive_auto && loom_get_threads() > 1)
        fprintf(stderr, "loom: note: another job kept a core busy when bench started, so OpenMP "
                        "workers sleep between parallel regions: slower, not this machine's "
                        "figures (set OMP_WAIT_POLICY=active to measure anyway)\n");
    printf("| model | batch | threads | train img/s | (min-max) | train GFLOP/s | infer img/s | "
           "infer GFLOP/s | peak RSS MiB |\n|---|---|---|---|---|---|---|---|---|\n");
    bool is_all = strcmp(argv[optind], "all") == 0;
    int n = is_all ? loom_zoo_count() : argc - optind;
    /* with --layers, each model's layer table follows the main table */
    loom_bench_result *res = calloc((size_t)n, sizeof *res);
    if (!res)
        return cli_fail(&(loom_error){LOOM_ERR_NOMEM, "bench: out of memory"});
    for (int i = 0; i < n; i++) {
        const char *name = is_all ? loom_zoo_get(i)->name : argv[optind + i];
        loom_bench_result r;
        loom_error err = {0};
        if (loom_bench(name, batch, repeats, seconds, is_layers, &r, &err)) {
            free(res);
            return cli_fail(&err);
        }
        res[i] = r;
        struct rusage ru;
        getrusage(RUSAGE_SELF, &ru);
        printf("| %s | %d | %d | %.0f | %.0f-%.0f | %.1f | %.0f | %.1f | %.0f |\n", name, batch,
               loom_get_threads(), r.train_ips, r.train_min_ips, r.train_max_ips, r.train_gflops,
               r.infer_ips, r.infer_gflops, ru.ru_maxrss / 1024.0);
        fflush(stdout);
    }
    for (int i = 0; i < n && is_layers; i++)
        print_layers(is_all ? loom_zoo_get(i)->name : argv[optind + i], &res[i]);
    free(res);
    return 0;
}
