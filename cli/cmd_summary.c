/* cmd_summary.c - `loom summary NAME|FILE|MODEL_FILE` and `loom models [-v]`. */
#include "cli.h"

#include <getopt.h>
#include <stdlib.h>
#include <string.h>

int cmd_summary(int argc, char **argv) {
    static const struct option opts[] = {{"input", 1, 0, 'i'}, {"help", 0, 0, 'h'}, {0, 0, 0, 0}};
    int H = 28, W = 28, C = 1, c;
    optind = 1;
    while ((c = cli_getopt("summary", argc, argv, NULL, opts)) != -1) {
        switch (c) {
        case 'i':
            if (sscanf(optarg, "%dx%dx%d", &H, &W, &C) != 3 || H < 1 || W < 1 || C < 1)
                return cli_usage_error("summary", "--input expects HxWxC, got '%s'", optarg);
            break;
        case 'h':
            printf("usage: loom summary NAME|MODEL_TEXT_FILE|MODEL_FILE [--input HxWxC]\n"
                   "Prints each layer's output shape and parameter count, the totals and the\n"
                   "forward FLOPs per image. Input shape default 28x28x1.\n");
            return 0;
        default: return EXIT_USAGE;
        }
    }
    if (optind >= argc)
        return cli_usage_error("summary", "no model given");
    if (optind + 1 < argc)
        return cli_usage_error("summary", "unexpected argument '%s'", argv[optind + 1]);
    loom_error err = {0};
    loom_model *m = NULL;
    char *config = NULL;
    const char *name = argv[optind];
    size_t len = strlen(name);
    if (len > 5 && strcmp(name + len - 5, ".loom") == 0) {
        if (loom_model_load(&m, &config, name, &err))
            return cli_fail(&err);
    } else {
        char *text = NULL;
        const loom_zoo_entry *z = NULL;
        if (loom_model_resolve(name, &text, &z, &err))
            return cli_fail(&err);
        loom_status st = loom_model_create(&m, text, name, H, W, C, &err);
        free(text);
        if (st)
            return cli_fail(&err);
        if (z)
            printf("%s: %s\n", z->name, z->description);
    }
    loom_model_summary(m, stdout);
    free(config);
    loom_model_destroy(m);
    return 0;
}

int cmd_models(int argc, char **argv) {
    static const struct option opts[] = {{"verbose", 0, 0, 'v'}, {"help", 0, 0, 'h'}, {0, 0, 0, 0}};
    bool is_verbose = false;
    int c;
    optind = 1;
    while ((c = cli_getopt("models", argc, argv, "v", opts)) != -1) {
        switch (c) {
        case 'v': is_verbose = true; break;
        case 'h':
            printf("usage: loom models [-v]\nLists the built-in models; -v adds training "
                   "defaults and the model text.\n");
            return 0;
        default: return EXIT_USAGE;
        }
    }
    if (optind < argc)
        return cli_usage_error("models", "unexpected argument '%s'", argv[optind]);
    for (int i = 0; i < loom_zoo_count(); i++) {
        const loom_zoo_entry *z = loom_zoo_get(i);
        loom_model *m = NULL;
        loom_error err = {0};
        size_t np = 0;
        if (loom_model_create(&m, z->text, z->name, 28, 28, 1, &err) == LOOM_OK)
            np = loom_model_n_params(m) + loom_model_n_state(m);
        loom_model_destroy(m);
        printf("%-14s %10zu params  %s\n", z->name, np, z->description);
        if (is_verbose) {
            printf("    defaults: --optimizer %s --lr %g --batch %d --epochs %d --lr-schedule %s",
                   z->optimizer, z->lr, z->batch, z->epochs, z->lr_schedule);
            if (z->l2 > 0)
                printf(" --l2 %g", z->l2);
            if (z->augment && z->augment[0])
                printf(" --augment %s", z->augment);
            if (z->early_stopping > 0)
                printf(" --early-stopping %d", z->early_stopping);
            /* the zoo's "name=value" settings as flags: --name-with-dashes value (a switch alone)
             */
            for (const char *w = z->settings; w && *w;) {
                size_t n = strcspn(w, " ");
                const char *eq = memchr(w, '=', n);
                if (eq) {
                    printf(" --");
                    for (const char *q = w; q < eq; q++)
                        putchar(*q == '_' ? '-' : *q);
                    if (!(eq + 2 == w + n && eq[1] == '1'))
                        printf(" %.*s", (int)(w + n - eq - 1), eq + 1);
                }
                w += n + (w[n] == ' ');
            }
            printf("\n");
            if (z->published)
                printf("    published: %s\n", z->published);
            /* a model with blocks keeps its lines, so that it reads as written */
            bool has_blocks = strchr(z->text, '{') != NULL;
            printf(has_blocks ? "    model:\n        " : "    model: ");
            for (const char *p = z->text; *p; p++)
                if (*p == '\n')
                    printf(!p[1] ? "\n" : has_blocks ? "\n        " : ", ");
                else
                    putchar(*p);
        }
    }
    return 0;
}
