/* cmd_bench.c - `loom bench MODEL...|all`: training and inference images/s (median of repeats)
 * and achieved GFLOP/s, one table row per model, as a share of the fp32 peak measured in the same
 * run; each model's own peak RSS; a banner naming the CPU's features and loom's kernels. */
#include "cli.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Resets the process's peak resident set (Linux: clear_refs 5), so that the next reading of
 * VmHWM is one model's own; false where the kernel does not allow it. */
static bool reset_peak_rss(void) {
    FILE *f = fopen("/proc/self/clear_refs", "w");
    if (!f)
        return false;
    bool ok = fputs("5", f) >= 0;
    return fclose(f) == 0 && ok;
}

/* VmHWM in MiB, NaN when unknown. */
static double peak_rss_mib(void) {
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    double kib = -1;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "VmHWM: %lf kB", &kib) == 1)
            break;
    if (f)
        fclose(f);
    return kib >= 0 ? kib / 1024 : 0.0 / 0.0;
}

/* The banner: the CPU, loom's kernels, and the peaks measured now. */
static void print_banner(const loom_peak *pk) {
    char d[512];
    loom_cpu_describe(d, sizeof d);
    printf("%s\n", d);
    printf("measured peak, %d threads: fp32 %.0f GFLOP/s (%d-bit FMA)", pk->threads, pk->fp32,
           pk->fp32_width);
    if (pk->fp32_256 > 0)
        printf(", %.0f with 256-bit", pk->fp32_256);
    if (pk->bf16 > 0)
        printf("; bf16 %.0f GFLOP/s", pk->bf16);
    if (pk->int8 > 0)
        printf("; int8 %.0f GOP/s", pk->int8);
    printf("\n\n");
}

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

/* --infer-only: inference img/s of each model (a model file with its weights, or a zoo name or
 * text), no training and no peak measurement, one row each. */
static int bench_infer_only(int n, char **names, int batch, int repeats, double seconds) {
    bool is_all = strcmp(names[0], "all") == 0;
    if (is_all)
        n = loom_zoo_count();
    printf("| model | batch | threads | infer img/s | infer GFLOP/s | peak RSS MiB |\n"
           "|---|---|---|---|---|---|\n");
    for (int i = 0; i < n; i++) {
        const char *name = is_all ? loom_zoo_get(i)->name : names[i];
        loom_bench_result r;
        loom_error err = {0};
        bool has_rss = reset_peak_rss();
        if (loom_bench_infer(name, batch, repeats, seconds, &r, &err))
            return cli_fail(&err);
        printf("| %s | %d | %d | %.0f | %.1f | %.0f |\n", name, batch, loom_get_threads(),
               r.infer_ips, r.infer_gflops, has_rss ? peak_rss_mib() : 0.0 / 0.0);
        fflush(stdout);
    }
    return 0;
}

int cmd_bench(int argc, char **argv) {
    static const struct option opts[] = {{"batch", 1, 0, 'b'},
                                         {"repeats", 1, 0, 'r'},
                                         {"seconds", 1, 0, 's'},
                                         {"threads", 1, 0, 't'},
                                         {"layers", 0, 0, 'l'},
                                         {"peak", 0, 0, 'p'},
                                         {"int8", 0, 0, 'i'},
                                         {"precision", 1, 0, 'P'},
                                         {"infer-only", 0, 0, 'n'},
                                         {"help", 0, 0, 'h'},
                                         {0, 0, 0, 0}};
    int batch = 64, repeats = 5, threads = 0, c;
    bool is_layers = false, is_peak_only = false, is_int8 = false, is_infer_only = false;
    double seconds = 1.0;
    loom_precision precision = LOOM_PRECISION_FP32;
    loom_error perr = {0};
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
        case 'p': is_peak_only = true; break;
        case 'i': is_int8 = true; break;
        case 'P':
            if (loom_precision_parse(optarg, &precision, &perr))
                return cli_usage_error("bench", "%s", perr.msg);
            break;
        case 'n': is_infer_only = true; break;
        case 'h':
            printf(
                "usage: loom bench MODEL...|all [--batch 64] [--repeats 5] [--seconds 1]\n"
                "       [--threads N] [--layers] [--int8] [--precision fp32|bf16] [--infer-only]\n"
                "Training (forward+backward+Adam) and inference throughput on random images;\n"
                "median of the repeats. MODEL: a zoo name, a model-text file, or (with\n"
                "--infer-only) a model file, timed with its weights.\n"
                "  --layers   then where a training step's time goes, layer by layer\n"
                "  --peak     only the banner: the CPU, the kernels, the measured peaks\n"
                "  --int8     also inference of an int8 copy (quantized on the fly, calibrated\n"
                "             on the random images): its img/s and the speed-up over fp32\n"
                "  --precision bf16   training steps with bf16 products in the 3x3 stride-1\n"
                "             convolutions (as loom train --precision bf16)\n"
                "  --infer-only  inference alone, no banner and no peak: one row per model\n"
                "GFLOP/s are also shown as a share of the fp32 peak measured in the same run;\n"
                "peak RSS is each model's own (the process's high-water mark, reset per model).\n");
            return 0;
        default: return EXIT_USAGE;
        }
    }
    if (optind >= argc && !is_peak_only)
        return cli_usage_error("bench", "no model given (a zoo name, a file, or 'all')");
    cli_set_threads(threads);
    if (is_infer_only && !is_peak_only)
        return bench_infer_only(argc - optind, argv + optind, batch, repeats, seconds);
    loom_peak pk;
    loom_cpu_peak(&pk, 0.3);
    print_banner(&pk);
    if (is_peak_only)
        return 0;
    if (cli_is_passive_auto && loom_get_threads() > 1)
        fprintf(stderr, "loom: note: another job kept a core busy when bench started, so OpenMP "
                        "workers sleep between parallel regions: slower, not this machine's "
                        "figures (set OMP_WAIT_POLICY=active to measure anyway)\n");
    printf("| model | batch | threads | train img/s | (min-max) | train GFLOP/s | %% of peak | "
           "infer img/s | infer GFLOP/s | %% of peak | peak RSS MiB |%s\n"
           "|---|---|---|---|---|---|---|---|---|---|---|%s\n",
           is_int8 ? " int8 infer img/s | int8 speed-up |" : "", is_int8 ? "---|---|" : "");
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
        bool has_rss = reset_peak_rss();
        if (loom_bench(name, batch, repeats, seconds, is_layers, is_int8, precision, &r, &err)) {
            free(res);
            return cli_fail(&err);
        }
        res[i] = r;
        double rss = has_rss ? peak_rss_mib() : 0.0 / 0.0;
        printf("| %s | %d | %d | %.0f | %.0f-%.0f | %.1f | %.0f%% | %.0f | %.1f | %.0f%% | %.0f |",
               name, batch, loom_get_threads(), r.train_ips, r.train_min_ips, r.train_max_ips,
               r.train_gflops, 100 * r.train_gflops / pk.fp32, r.infer_ips, r.infer_gflops,
               100 * r.infer_gflops / pk.fp32, rss);
        if (is_int8)
            printf(" %.0f | %.2fx |", r.infer_int8_ips, r.infer_int8_ips / r.infer_ips);
        printf("\n");
        fflush(stdout);
    }
    for (int i = 0; i < n && is_layers; i++)
        print_layers(is_all ? loom_zoo_get(i)->name : argv[optind + i], &res[i]);
    free(res);
    return 0;
}
