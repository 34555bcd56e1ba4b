/* test_tune.c - experiments: the search-space parser (names, domains, malformed files naming
 * file:line:token), sampling determinism, training settings by name, mean/std, McNemar's test
 * against hand-worked values, k-fold CV reproducibility (twice, and 1 vs 2 threads), a search
 * that is stopped mid-trial and resumed giving the uninterrupted trial table, successive halving,
 * and loom_compare on hand-made run directories. Synthetic 8x8 data: runs in seconds. */
#include "check.h"
#include "loom.h"
#include "../src/run/rundir.h"
#include "../src/workflow/tune.h"
#include "../cli/study.h"

#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* n examples of 8x8 one-channel images in 4 classes: class k brightens row band k. */
static loom_dataset *band_data(int n, uint64_t seed) {
    loom_dataset *ds = check_dataset(n, 8, 8, 4);
    loom_rng rng;
    loom_rng_seed(&rng, seed);
    for (int i = 0; i < n; i++) {
        int k = i % 4; /* balanced classes */
        ds->y[i] = (uint8_t)k;
        for (int p = 0; p < 64; p++) {
            int band = (p / 8) / 2; /* rows 0-1 band 0, 2-3 band 1, ... */
            ds->x[i * 64 + p] = (uint8_t)(loom_rng_below(&rng, 140) + (band == k ? 90 : 0));
        }
    }
    return ds;
}

static char *slurp(const char *path) {
    char *text = NULL;
    loom_error err = {0};
    if (loom_file_read_all(path, &text, NULL, &err))
        fprintf(stderr, "    %s\n", err.msg);
    return text;
}

/* A CSV's text without its last column (the wall-clock seconds). */
static char *without_last_column(const char *text) {
    char *out = calloc(strlen(text) + 1, 1);
    size_t o = 0;
    for (const char *l = text; *l;) {
        size_t n = strcspn(l, "\n");
        size_t cut = n;
        while (cut > 0 && l[cut - 1] != ',')
            cut--;
        memcpy(out + o, l, cut);
        o += cut;
        out[o++] = '\n';
        l += n + (l[n] == '\n');
    }
    return out;
}

static bool same_csv_but_seconds(const char *a_path, const char *b_path) {
    char *a = slurp(a_path), *b = slurp(b_path);
    bool same = false;
    if (a && b) {
        char *a2 = without_last_column(a), *b2 = without_last_column(b);
        same = strcmp(a2, b2) == 0;
        if (!same)
            fprintf(stderr, "    --- %s\n%s    --- %s\n%s", a_path, a2, b_path, b2);
        free(a2);
        free(b2);
    }
    free(a);
    free(b);
    return same;
}

static int count_lines(const char *path) {
    char *t = slurp(path);
    int n = 0;
    for (const char *c = t; c && *c; c++)
        n += *c == '\n';
    free(t);
    return n;
}

static void put_file(const char *dir, const char *name, const char *text) {
    char path[2200];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    loom_error err = {0};
    loom_file_write_atomic(path, text, strlen(text), &err);
}

/* ---- search spaces ---- */

#define MLP_SPACE                                                                                  \
    "# the study's MLP space\n"                                                                    \
    "flatten\n"                                                                                    \
    "dropout {0.0..0.3 step 0.1}                 # input dropout\n"                                \
    "repeat {1..4} {                             # 1 to 4 hidden blocks\n"                         \
    "  dense {512|256|128|64|32} relu\n"                                                           \
    "  dropout {0.0..0.4 step 0.1}\n"                                                              \
    "}\n"                                                                                          \
    "dense 10 softmax\n"                                                                           \
    "lr {1e-2|1e-3}\n"

static void test_space_parse(void) {
    loom_space *s = NULL;
    loom_error err = {0};
    CHECK_MSG(loom_space_parse(&s, MLP_SPACE, "mlp.txt", &err) == LOOM_OK, "%s", err.msg);
    if (!s)
        return;
    const char *names[] = {"dropout_1_rate",
                           "repeat_1",
                           "dense_1_units",
                           "dropout_2_rate",
                           "dense_2_units",
                           "dropout_3_rate",
                           "dense_3_units",
                           "dropout_4_rate",
                           "dense_4_units",
                           "dropout_5_rate",
                           "lr"};
    CHECK(loom_space_n_hp(s) == 11);
    for (int i = 0; i < 11 && i < loom_space_n_hp(s); i++)
        CHECK_MSG(strcmp(loom_space_hp_name(s, i), names[i]) == 0, "%d: %s", i,
                  loom_space_hp_name(s, i));
    char d[128];
    loom_space_hp_describe(s, 0, d, sizeof d);
    CHECK_MSG(strcmp(d, "float 0..0.3 step 0.1") == 0, "%s", d);
    loom_space_hp_describe(s, 1, d, sizeof d);
    CHECK_MSG(strcmp(d, "int 1..4") == 0, "%s", d);
    loom_space_hp_describe(s, 2, d, sizeof d);
    CHECK_MSG(strcmp(d, "choice 512|256|128|64|32") == 0, "%s", d);
    loom_space_destroy(s);

    /* names given, a log range, spaces inside braces, commas between items */
    const char *named = "flatten, dropout {0|0.25 name=drop_in}\n"
                        "repeat {1|3 name=blocks} {\n dense {8 | 16 name=units} {relu|tanh}\n}\n"
                        "dense 10 softmax\nlr {1e-4..1e-2 log}\nbatch {16..64 log name=bs}\n"
                        "optimizer {adam|sgd}\nepochs 3\n";
    CHECK_MSG(loom_space_parse(&s, named, "named.txt", &err) == LOOM_OK, "%s", err.msg);
    if (!s)
        return;
    const char *names2[] = {"drop_in",  "blocks",
                            "units_1",  "dense_1_activation",
                            "units_2",  "dense_2_activation",
                            "units_3",  "dense_3_activation",
                            "lr",       "bs",
                            "optimizer"};
    CHECK(loom_space_n_hp(s) == 11);
    for (int i = 0; i < 11 && i < loom_space_n_hp(s); i++)
        CHECK_MSG(strcmp(loom_space_hp_name(s, i), names2[i]) == 0, "%d: %s", i,
                  loom_space_hp_name(s, i));
    loom_space_hp_describe(s, 8, d, sizeof d);
    CHECK_MSG(strcmp(d, "float 0.0001..0.01 log") == 0, "%s", d);
    loom_space_hp_describe(s, 9, d, sizeof d);
    CHECK_MSG(strcmp(d, "int 16..64 log") == 0, "%s", d);
    loom_space_destroy(s);
}

/* Residual blocks in a space: their lines pass on to the model text, inside and around repeat
 * blocks, with searched words inside; an unclosed block names its line. */
static void test_space_residual(void) {
    const char *text = "conv {8|16} 3x3 same\n"
                       "repeat {1..2} {\n"
                       "  residual {\n"
                       "    conv {8|16} 3x3 same, batchnorm, relu\n"
                       "  } relu\n"
                       "}\n"
                       "residual proj {\n"
                       "  conv 24 3x3 s2 same\n"
                       "  residual {\n"
                       "    conv 24 3x3 same\n"
                       "  }\n"
                       "}\n"
                       "globalavgpool, dense 10 softmax\n"
                       "lr {1e-3..1e-2 log}\n";
    loom_space *s = NULL;
    loom_error err = {0};
    CHECK_MSG(loom_space_parse(&s, text, "res.txt", &err) == LOOM_OK, "%s", err.msg);
    if (!s)
        return;
    for (uint64_t seed = 1; seed <= 4; seed++) {
        loom_space_point pt;
        CHECK(loom_space_sample(s, seed, &pt, &err) == LOOM_OK);
        loom_model *m = NULL;
        CHECK_MSG(loom_model_create(&m, pt.model_text, "point", 28, 28, 1, &err) == LOOM_OK,
                  "%s\n%s", err.msg, pt.model_text);
        CHECK(strstr(pt.model_text, "} relu\n") != NULL);
        loom_model_destroy(m);
        loom_space_point_reset(&pt);
    }
    loom_space_destroy(s);
    CHECK(loom_space_parse(&s, "conv 8 3x3 same\nresidual {\nconv 8 3x3 same\nflatten, dense 10",
                           "open.txt", &err) != LOOM_OK);
    CHECK_MSG(strstr(err.msg, "open.txt:2") && strstr(err.msg, "not closed"), "%s", err.msg);
    loom_space_destroy(s);
}

static void test_space_errors(void) {
    static const struct {
        const char *text;
        int line;
        const char *token; /* in the message */
    } bad[] = {
        {"flatten\ndense {512|} relu\ndense 10 softmax", 2, "'{512|}'"},
        {"flatten\ndense {8..2} relu\ndense 10 softmax", 2, "'{8..2}'"},
        {"flatten\ndense {8..32 step 0}\ndense 10 softmax", 2, "'{8..32 step 0}'"},
        {"flatten\ndense {8..32 step 2 log}\ndense 10 softmax", 2, "'{8..32 step 2 log}'"},
        {"flatten\ndropout {0..0.5 log}\ndense 10 softmax", 2, "'{0..0.5 log}'"},
        {"flatten\ndense {8|x} relu\ndense 10 softmax", 2, "'{8|x}'"},
        {"flatten\ndense 8 {relu|bogus}\ndense 10 softmax", 2, "bogus"},
        {"flatten\ndense{8|16} relu\ndense 10 softmax", 2, "'dense{8|16}'"},
        {"flatten\ndense {8|16 relu\ndense 10 softmax", 2, "'{8|16 relu'"},
        {"flatten\n\nrepeat {1..3} {\ndense 8\ndense 10 softmax", 3, "'repeat'"},
        {"flatten\n}\ndense 10 softmax", 2, "'}'"},
        {"flatten\nrepeat {1..3} {\nrepeat 2 {\n}\n}\ndense 10 softmax", 3, "'repeat'"},
        {"flatten\nrepeat {1..3} {\nlr 0.1\n}\ndense 10 softmax", 3, "'lr'"},
        {"flatten\ndense 10 softmax\nlr {0|1e-3}", 3, "'{0|1e-3}'"},
        {"flatten\ndense 10 softmax\noptimizer {adam|adamax}", 3, "adamax"},
        {"flatten\ndense 10 softmax\nlr 1e-3\nlr 1e-2", 4, "'lr'"},
        {"flatten\ndense {8..16 foo} relu\ndense 10 softmax", 2, "'foo'"},
        {"flatten\ndense {8|16 name=a}\ndense {8|16 name=a}\ndense 10 softmax", 3, "'a'"},
        {"flatten\n{dense|conv} 8\ndense 10 softmax", 2, "'{dense|conv}'"},
        {"flatten\nrepeat {0.5..2} {\ndense 8\n}\ndense 10 softmax", 2, "'{0.5..2}'"},
        {"flatten\nbogus {1|2}\ndense 10 softmax", 2, "'bogus'"},
        {"flatten\ndense {}\ndense 10 softmax", 2, "'{}'"},
        {"flatten\ndense 8 relu extra\ndense 10 softmax", 2, "extra"},
        {"flatten\ndense {8|16} relu\ndense 10 softmax\nbatch {0..4}", 4, "'{0..4}'"},
        {"flatten\nrepeat {1..2} {\n}\ndense 10 softmax", 3, "'}'"},
        {"lr 1e-3\n", 0, "no layers"},
        /* a choice that adds a layer ("+tanh") counts at its largest: 54 x 2 > 64 layers (found
         * by fuzz_space, bug 12 of docs/RELIABILITY.md; the default choice alone makes 56) */
        {"flatten\nrepeat {54|1|4} {\n dense {42|6} {relu|+tanh}\n}\ndense 10 softmax", 3,
         "more than 64 layers"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        loom_space *s = NULL;
        loom_error err = {0};
        loom_status st = loom_space_parse(&s, bad[i].text, "space.txt", &err);
        char where[32];
        snprintf(where, sizeof where, "space.txt:%d: ", bad[i].line);
        if (bad[i].line == 0)
            snprintf(where, sizeof where, "space.txt: ");
        CHECK_MSG(st == LOOM_ERR_FORMAT && s == NULL, "case %zu accepted", i);
        CHECK_MSG(strncmp(err.msg, where, strlen(where)) == 0 && strstr(err.msg, bad[i].token),
                  "case %zu: %s", i, err.msg);
        loom_space_destroy(s);
    }
}

static bool same_values(const loom_space_point *a, const loom_space_point *b) {
    if (a->n_values != b->n_values || strcmp(a->model_text, b->model_text) != 0 ||
        strcmp(a->train_text, b->train_text) != 0)
        return false;
    for (int i = 0; i < a->n_values; i++)
        if ((a->values[i] == NULL) != (b->values[i] == NULL) ||
            (a->values[i] && strcmp(a->values[i], b->values[i]) != 0))
            return false;
    return true;
}

static void test_space_sampling(void) {
    loom_space *s = NULL;
    loom_error err = {0};
    if (loom_space_parse(&s, MLP_SPACE, "mlp.txt", &err) != LOOM_OK) {
        CHECK_MSG(0, "%s", err.msg);
        return;
    }
    int n_distinct = 0, seen_count[5] = {0};
    loom_space_point first = {0};
    for (uint64_t seed = 0; seed < 40; seed++) {
        loom_space_point a, b;
        CHECK(loom_space_sample(s, seed, &a, &err) == LOOM_OK);
        CHECK(loom_space_sample(s, seed, &b, &err) == LOOM_OK);
        CHECK(same_values(&a, &b)); /* same seed, same point */
        if (seed == 0)
            loom_space_sample(s, seed, &first, &err);
        else
            n_distinct += !same_values(&a, &first);
        /* values inside their domains; repetitions beyond the count inactive */
        double in_drop = atof(a.values[0]);
        CHECK(in_drop >= 0 && in_drop <= 0.3 + 1e-12 &&
              fabs(in_drop * 10 - round(in_drop * 10)) < 1e-9);
        int count = atoi(a.values[1]);
        CHECK(count >= 1 && count <= 4);
        seen_count[count]++;
        for (int r = 1; r <= 4; r++) {
            bool is_active = r <= count;
            CHECK((a.values[2 * r] != NULL) == is_active);
            CHECK((a.values[2 * r + 1] != NULL) == is_active);
        }
        CHECK(strcmp(a.values[10], "1e-2") == 0 || strcmp(a.values[10], "1e-3") == 0);
        /* the model text has count hidden blocks and builds */
        int n_dense = 0;
        for (const char *p = a.model_text; (p = strstr(p, "dense ")); p++)
            n_dense++;
        CHECK(n_dense == count + 1);
        loom_model *m = NULL;
        CHECK_MSG(loom_model_create(&m, a.model_text, "point", 28, 28, 1, &err) == LOOM_OK, "%s",
                  err.msg);
        loom_model_destroy(m);
        CHECK(strstr(a.train_text, "lr=") == a.train_text);
        loom_space_point_reset(&a);
        loom_space_point_reset(&b);
    }
    CHECK(n_distinct >= 35);
    for (int c = 1; c <= 4; c++)
        CHECK_MSG(seen_count[c] > 0, "count %d never drawn", c);
    /* seed 0's point is fixed: the sequence is part of reproducibility across versions */
    CHECK(first.values && first.values[0] && strcmp(first.values[0], "0.2") == 0);
    CHECK(first.values && first.values[1] && strcmp(first.values[1], "3") == 0);
    CHECK(first.values && first.values[2] && strcmp(first.values[2], "512") == 0);
    CHECK(first.values && first.values[10] && strcmp(first.values[10], "1e-2") == 0);
    loom_space_point_reset(&first);
    loom_space_destroy(s);
}

/* ---- small pieces ---- */

static void test_settings(void) {
    loom_train_config c;
    loom_train_config_init(&c);
    loom_settings s = {.train = &c};
    loom_error err = {0};
    CHECK(loom_settings_set(&s, "lr", "0.01", &err) == LOOM_OK && fabsf(c.opt.lr - 0.01f) < 1e-9f);
    CHECK(loom_settings_set(&s, "batch", "32", &err) == LOOM_OK && c.batch == 32);
    /* the optimizers' own defaults, filled where the settings leave them unset */
    CHECK(loom_settings_set(&s, "optimizer", "sgd", &err) == LOOM_OK && c.opt.kind == LOOM_OPT_SGD);
    CHECK(loom_opt_config_resolved(&c.opt).momentum == 0.9f);
    CHECK(loom_opt_config_resolved(&c.opt).beta2 == 0.999f);
    CHECK(loom_settings_set(&s, "optimizer", "rmsprop", &err) == LOOM_OK);
    CHECK(loom_opt_config_resolved(&c.opt).beta2 == 0.9f);
    CHECK(loom_opt_config_resolved(&c.opt).momentum == 0.0f);
    CHECK(loom_settings_set(&s, "momentum", "0", &err) == LOOM_OK);
    CHECK(loom_settings_set(&s, "optimizer", "sgd", &err) == LOOM_OK);
    CHECK(loom_opt_config_resolved(&c.opt).momentum == 0.0f); /* given: kept */
    CHECK(loom_settings_set(&s, "lr_schedule", "cosine", &err) == LOOM_OK &&
          c.sched.kind == LOOM_SCHED_COSINE && c.lr_schedule &&
          strcmp(c.lr_schedule, "cosine") == 0);
    CHECK(loom_settings_set(&s, "nesterov", NULL, &err) == LOOM_OK && c.opt.is_nesterov);
    CHECK(loom_settings_set(&s, "seed", "123", &err) == LOOM_OK && c.seed == 123);
    CHECK(loom_settings_set(&s, "augment", "flip", &err) == LOOM_OK && c.is_augment_flip);
    CHECK(loom_settings_set(&s, "lr", "fast", &err) == LOOM_ERR_ARG);
    CHECK_MSG(strncmp(err.msg, "lr: ", 4) == 0, "%s", err.msg); /* names the setting, no flag */
    CHECK(loom_settings_set(&s, "batch", "0", &err) == LOOM_ERR_ARG);
    CHECK(loom_settings_set(&s, "epochs", "2.5", &err) == LOOM_ERR_ARG);
    /* a data setting is not bound here: refused like an unknown one */
    CHECK(loom_settings_set(&s, "val_split", "0.1", &err) == LOOM_ERR_ARG);
    CHECK(loom_settings_set(&s, "colour", "red", &err) == LOOM_ERR_ARG);
    /* the message lists the bound settings from the table, first to last */
    CHECK_MSG(strstr(err.msg, "'colour' (seed, epochs,") && strstr(err.msg, "label_smoothing") &&
                  !strstr(err.msg, "val_split") && strstr(err.msg, ", checkpoint_steps)"),
              "%s", err.msg);
    CHECK(loom_settings_set(&s, "label_smoothing", "0.1", &err) == LOOM_OK);
    CHECK_NEAR(c.label_smoothing, 0.1, 1e-7);
    CHECK(loom_settings_set(&s, "ema", "0.999", &err) == LOOM_OK);
    CHECK_NEAR(c.ema, 0.999, 1e-7);
    CHECK(loom_settings_set(&s, "ema", "1", &err) == LOOM_ERR_ARG);
    CHECK(loom_settings_set(&s, "subset", "0", &err) == LOOM_ERR_ARG); /* not bound */

    /* every setting of a run: formatted, read back into a fresh config, formatted the same */
    loom_run_config a, b;
    loom_run_config_init(&a);
    loom_settings sa = loom_run_settings(&a);
    const char *values[][2] = {
        {"lr", "0.00123456789"},       {"ema", "0.99975"},       {"val_split", "0.1234567890123"},
        {"split_mode", "keras"},       {"subset", "0"},          {"augment", "flip,shift:3"},
        {"lr_schedule", "step:3:0.5"}, {"checkpoint_steps", "7"}};
    for (size_t i = 0; i < sizeof values / sizeof *values; i++)
        CHECK_MSG(loom_settings_set(&sa, values[i][0], values[i][1], &err) == LOOM_OK, "%s: %s",
                  values[i][0], err.msg);
    CHECK(loom_setting_count() > 20);
    int n_bound = 0;
    for (int i = 0; i < loom_setting_count(); i++) {
        char va[256], vb[256];
        loom_run_config_init(&b);
        loom_settings sb = loom_run_settings(&b);
        CHECK(loom_setting_is_bound(&sa, i));
        loom_setting_format(&sa, i, va, sizeof va);
        CHECK_MSG(loom_setting_set(&sb, i, va, &err) == LOOM_OK, "%s=%s: %s",
                  loom_setting_info_at(i)->name, va, err.msg);
        loom_setting_format(&sb, i, vb, sizeof vb);
        CHECK_MSG(strcmp(va, vb) == 0, "%s: %s then %s", loom_setting_info_at(i)->name, va, vb);
        n_bound++;
    }
    CHECK(n_bound == loom_setting_count());
    CHECK(a.train.opt.lr == 0.00123456789f && a.val_split == 0.1234567890123);
    char *text = loom_settings_text(&sa);
    CHECK(text && strstr(text, "\nlr=0.0012345") && strstr(text, "momentum=0\n") &&
          strstr(text, "split_mode=keras\n"));
    free(text);
}

/* The run directory's one history.csv reader: a file loom wrote, and malformed ones. */
static void test_history_read(void) {
    loom_history w = {0}, h;
    loom_epoch rows[2] = {{1, 0.5, 0.8, NAN, NAN, 1e-3, 1.5}, {2, 0.25, 0.9, 0.3, 0.875, 1e-3, 2}};
    w.epochs = rows;
    w.n_epochs = 2;
    loom_error err = {0};
    char path[1024];
    snprintf(path, sizeof path, "%s/history.csv", check_tmpdir());
    CHECK(loom_history_write_csv(&w, path, &err) == LOOM_OK);
    CHECK_MSG(loom_history_read_csv(path, &h, &err) == LOOM_OK, "%s", err.msg);
    CHECK(h.n_epochs == 2 && h.epochs[1].epoch == 2 && h.epochs[1].val_acc == 0.875);
    CHECK(isnan(h.epochs[0].val_loss) && h.epochs[0].acc == 0.8 && h.seconds == 3.5);
    loom_history_reset(&h);
    const char *bad[][2] = {
        {"", "empty"},
        {"epoch,loss,acc\n", "no epochs"},
        {"epoch,loss\n1,0.5\n", "epoch, loss and acc"},
        {"epoch,loss,acc\n1,0.5\n", "2 fields"},
        {"epoch,loss,acc\n1,x,0.5\n", "loss 'x'"},
        {"epoch,loss,acc,val_loss\n1,0.5,0.5,\n2,,0.5,1\n", ":3: loss ''"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        put_file(check_tmpdir(), "bad_history.csv", bad[i][0]);
        snprintf(path, sizeof path, "%s/bad_history.csv", check_tmpdir());
        CHECK_MSG(loom_history_read_csv(path, &h, &err) == LOOM_ERR_FORMAT &&
                      strstr(err.msg, bad[i][1]) != NULL,
                  "case %zu: %s", i, err.msg);
        CHECK(h.n_epochs == 0 && h.epochs == NULL);
    }
}

static void test_mean_std(void) {
    double x[] = {2, 4, 4, 4, 5, 5, 7, 9}, mean, sd;
    loom_mean_std(x, 8, &mean, &sd);
    CHECK_NEAR(mean, 5.0, 1e-12);
    CHECK_NEAR(sd, sqrt(32.0 / 7.0), 1e-12); /* sample std: n - 1 = 7 */
    loom_mean_std(x, 1, &mean, &sd);
    CHECK(mean == 2.0 && sd == 0.0);
    double y[] = {1, NAN, 3};
    loom_mean_std(y, 3, &mean, &sd);
    CHECK_NEAR(mean, 2.0, 1e-12);
    CHECK_NEAR(sd, sqrt(2.0), 1e-12);
    double z[] = {NAN};
    loom_mean_std(z, 1, &mean, &sd);
    CHECK(isnan(mean) && isnan(sd));
}

static void test_mcnemar(void) {
    /* b = 10, c = 2: chi2 = (|10 - 2| - 1)^2 / 12 = 49/12; p = erfc(sqrt(49/24)) = 0.04331;
     * exact: 2 (C(12,0) + C(12,1) + C(12,2)) / 2^12 = 2 * 79 / 4096 = 0.038574 */
    loom_mcnemar m = loom_mcnemar_test(10, 2);
    CHECK_NEAR(m.chi2, 49.0 / 12.0, 1e-12);
    CHECK_NEAR(m.p_chi2, 0.04330814281, 1e-9);
    CHECK_NEAR(m.p_exact, 158.0 / 4096.0, 1e-12);
    CHECK(m.is_exact && m.p == m.p_exact); /* b + c = 12 < 25 */
    /* b = 1, c = 7: exact 2 (1 + 8) / 256 = 0.0703125, not significant */
    m = loom_mcnemar_test(1, 7);
    CHECK_NEAR(m.p_exact, 18.0 / 256.0, 1e-12);
    CHECK_NEAR(m.chi2, 25.0 / 8.0, 1e-12);
    CHECK(m.p > 0.05);
    /* b = 30, c = 10: 40 >= 25, chi-square: (20 - 1)^2 / 40 = 9.025, p = 0.002663 */
    m = loom_mcnemar_test(30, 10);
    CHECK(!m.is_exact);
    CHECK_NEAR(m.chi2, 9.025, 1e-12);
    CHECK_NEAR(m.p, 0.002663119259, 1e-9);
    /* symmetric and empty */
    m = loom_mcnemar_test(5, 5);
    CHECK(m.p_exact == 1.0 && m.p == 1.0);
    m = loom_mcnemar_test(0, 0);
    CHECK(m.p == 1.0 && m.chi2 == 0.0);
    CHECK(loom_mcnemar_test(7, 3).p == loom_mcnemar_test(3, 7).p);
}

static void test_subset(void) {
    loom_dataset *ds = band_data(400, 5), *sub = NULL;
    loom_error err = {0};
    CHECK(loom_dataset_subset(&sub, ds, 100, 7, &err) == LOOM_OK);
    if (sub) {
        int counts[4] = {0};
        loom_dataset_class_counts(sub, NULL, sub->n, counts);
        CHECK(sub->n == 100);
        for (int k = 0; k < 4; k++)
            CHECK(counts[k] == 25); /* stratified */
        loom_dataset *again = NULL;
        loom_dataset_subset(&again, ds, 100, 7, &err);
        CHECK(again && memcmp(again->x, sub->x, 100 * 64) == 0);
        loom_dataset_destroy(again);
    }
    loom_dataset_destroy(sub);
    loom_dataset_destroy(ds);
}

/* ---- cross-validation ---- */

#define SMALL_MODEL "flatten\ndense 16 relu\ndropout 0.1\ndense 4 softmax\n"

static loom_status cv_once(const char *dir, int threads, const loom_dataset *train,
                           const loom_dataset *test, loom_cv_result *res) {
    loom_set_threads(threads);
    const char *model = tmp_path("small.txt");
    put_file(check_tmpdir(), "small.txt", SMALL_MODEL);
    loom_cv_config cc;
    loom_cv_config_init(&cc);
    cc.model = model;
    cc.folds = 3;
    cc.out_dir = dir;
    cc.is_force = true;
    cc.is_test = test != NULL;
    cc.train.epochs = 3;
    cc.train.batch = 32;
    cc.train.opt.lr = 3e-3f;
    cc.train.seed = 11;
    loom_error err = {0};
    loom_status st = loom_cv_run(&cc, train, test, res, &err);
    if (st)
        fprintf(stderr, "    cv: %s\n", err.msg);
    return st;
}

static void test_cv(void) {
    loom_dataset *train = band_data(600, 1), *test = band_data(200, 2);
    loom_cv_result a, b, c;
    const char *da = tmp_path("cv_a"), *db = tmp_path("cv_b"), *dc = tmp_path("cv_c");
    CHECK(cv_once(da, 1, train, test, &a) == LOOM_OK);
    CHECK(cv_once(db, 1, train, test, &b) == LOOM_OK);
    CHECK(cv_once(dc, 2, train, NULL, &c) == LOOM_OK);
    CHECK(a.n_folds == 3 && b.n_folds == 3 && c.n_folds == 3);
    for (int k = 0; k < 3 && a.folds && b.folds && c.folds; k++) {
        CHECK(a.folds[k].val_acc == b.folds[k].val_acc); /* same seed: the same numbers */
        CHECK(a.folds[k].val_loss == b.folds[k].val_loss);
        CHECK(a.folds[k].test_acc == b.folds[k].test_acc);
        CHECK(a.folds[k].val_loss == c.folds[k].val_loss); /* whatever the thread count */
        CHECK(isnan(c.folds[k].test_acc));
        CHECK(a.folds[k].hist.n_epochs == 3);
    }
    CHECK(a.val_acc_mean > 0.6); /* the bands are easy to learn */
    double v[3] = {a.folds[0].val_acc, a.folds[1].val_acc, a.folds[2].val_acc}, mean, sd;
    loom_mean_std(v, 3, &mean, &sd);
    CHECK(mean == a.val_acc_mean && sd == a.val_acc_sd);
    CHECK(a.best_fold >= 0 && a.folds[a.best_fold].val_acc >= mean);
    char pa[1200], pb[1200];
    snprintf(pa, sizeof pa, "%s/cv.csv", da);
    snprintf(pb, sizeof pb, "%s/cv.csv", db);
    /* columns: fold,val_acc,val_macro_f1,val_loss,epochs,seconds,test_acc,test_f1 */
    CHECK(count_lines(pa) == 4);
    const char *files[] = {"cv.json",         "history_mean.csv",   "config.txt",
                           "model.loom",      "fold_1/history.csv", "fold_3/history.csv",
                           "predictions.csv", "metrics.json",       "fold_2/metrics.json"};
    for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
        struct stat sb;
        snprintf(pa, sizeof pa, "%s/%s", da, files[i]);
        CHECK_MSG(stat(pa, &sb) == 0 && sb.st_size > 0, "missing %s", pa);
    }
    snprintf(pa, sizeof pa, "%s/history_mean.csv", da);
    snprintf(pb, sizeof pb, "%s/history_mean.csv", db);
    CHECK(same_csv_but_seconds(pa, pb));
    CHECK(count_lines(pa) == 4);
    snprintf(pa, sizeof pa, "%s/config.txt", da);
    char *cfg = slurp(pa), buf[64];
    CHECK(cfg && loom_config_get(cfg, "cv_folds", buf, sizeof buf) && strcmp(buf, "3") == 0);
    free(cfg);
    loom_cv_result_reset(&a);
    loom_cv_result_reset(&b);
    loom_cv_result_reset(&c);
    loom_dataset_destroy(train);
    loom_dataset_destroy(test);
    loom_set_threads(0);
}

/* ---- the search ---- */

#define TINY_SPACE                                                                                 \
    "flatten\n"                                                                                    \
    "dense {8|16|32} relu\n"                                                                       \
    "dropout {0.0..0.2 step 0.1}\n"                                                                \
    "dense 4 softmax\n"                                                                            \
    "lr {1e-2|3e-3}\n"                                                                             \
    "batch 32\n"

static void tiny_tune_config(loom_tune_config *tc, const char *dir) {
    loom_tune_config_init(tc);
    tc->space_text = TINY_SPACE;
    tc->space_file = "tiny.txt";
    tc->out_dir = dir;
    tc->trials = 3;
    tc->executions = 2;
    tc->train.epochs = 2;
    tc->train.seed = 5;
}

/* The tiny search in dir, stopped after stop_after new executions: it says so, and has recorded
 * trial 1, and only trial 1, in its result and in trials.csv. */
static void stopped_search(loom_tune_config *tc, const char *dir, int stop_after,
                           const loom_dataset *train, const loom_dataset *test) {
    loom_tune_result r;
    loom_error err = {0};
    tiny_tune_config(tc, dir);
    tc->stop_after = stop_after;
    loom_status st = loom_tune_run(tc, train, test, &r, &err);
    CHECK_MSG(st == LOOM_ERR_INTERRUPTED, "%d %s", st, err.msg);
    CHECK(r.n_trials == 1);
    loom_tune_result_reset(&r);
    char path[1200];
    snprintf(path, sizeof path, "%s/trials.csv", dir);
    CHECK(count_lines(path) == 2); /* header + trial 1 */
}

static void test_tune_resume(void) {
    loom_dataset *train = band_data(400, 3), *test = band_data(120, 4);
    const char *da = tmp_path("tune_a"), *db = tmp_path("tune_b");
    loom_tune_config tc;
    loom_tune_result ra, rb;
    loom_error err = {0};

    /* uninterrupted */
    tiny_tune_config(&tc, da);
    loom_status st = loom_tune_run(&tc, train, test, &ra, &err);
    CHECK_MSG(st == LOOM_OK, "%s", err.msg);
    CHECK(ra.n_trials == 3 && ra.best >= 0 && ra.has_test);

    /* stopped in the middle of trial 2 (after 3 of 6 executions), as a kill would */
    stopped_search(&tc, db, 3, train, test);
    char pa[1200], pb[1200];
    snprintf(pb, sizeof pb, "%s/executions.csv", db);
    CHECK(count_lines(pb) == 4); /* header + 3 executions */
    /* stopped just as trial 1 ends (after 2 of 6 executions): the finished trial is in
     * trials.csv before the search stops (it was missing when a signal came at that moment) */
    stopped_search(&tc, tmp_path("tune_c"), 2, train, test);
    /* a kill while writing leaves a torn line: it is dropped and that execution runs again */
    snprintf(pb, sizeof pb, "%s/executions.csv", db);
    FILE *f = fopen(pb, "a");
    if (f) {
        fputs("2,1,2,2,123", f);
        fclose(f);
    }

    /* running again without --resume refuses; with other settings, resume refuses */
    tiny_tune_config(&tc, db);
    CHECK(loom_tune_run(&tc, train, test, &rb, &err) == LOOM_ERR_EXISTS);
    loom_tune_result_reset(&rb);
    tc.is_resume = true;
    tc.train.seed = 6;
    CHECK(loom_tune_run(&tc, train, test, &rb, &err) == LOOM_ERR_ARG);
    CHECK_MSG(strstr(err.msg, "seed") != NULL, "%s", err.msg);
    loom_tune_result_reset(&rb);

    /* resumed: the same table as the uninterrupted search */
    tiny_tune_config(&tc, db);
    tc.is_resume = true;
    st = loom_tune_run(&tc, train, test, &rb, &err);
    CHECK_MSG(st == LOOM_OK, "%s", err.msg);
    CHECK(rb.n_trials == 3);
    CHECK(ra.n_hp > 0 && rb.n_hp == ra.n_hp);
    for (int t = 0; t < 3 && rb.n_trials == 3 && ra.n_trials == 3; t++) {
        CHECK(ra.trials[t].trial == rb.trials[t].trial);
        CHECK(ra.trials[t].score == rb.trials[t].score);
        for (int i = 0; i < ra.n_hp; i++)
            CHECK((ra.trials[t].values[i] == NULL) == (rb.trials[t].values[i] == NULL) &&
                  (!ra.trials[t].values[i] ||
                   strcmp(ra.trials[t].values[i], rb.trials[t].values[i]) == 0));
    }
    snprintf(pa, sizeof pa, "%s/trials.csv", da);
    snprintf(pb, sizeof pb, "%s/trials.csv", db);
    CHECK(same_csv_but_seconds(pa, pb));
    snprintf(pa, sizeof pa, "%s/executions.csv", da);
    snprintf(pb, sizeof pb, "%s/executions.csv", db);
    CHECK(count_lines(pb) == 7);
    CHECK(same_csv_but_seconds(pa, pb));
    CHECK(ra.best == rb.best && rb.has_test && ra.test.accuracy == rb.test.accuracy);
    snprintf(pa, sizeof pa, "%s/best/metrics.json", da);
    snprintf(pb, sizeof pb, "%s/best/metrics.json", db);
    char *ma = slurp(pa), *mb = slurp(pb);
    CHECK(ma && mb && strcmp(ma, mb) == 0);
    free(ma);
    free(mb);
    snprintf(pa, sizeof pa, "%s/best/model.txt", da);
    loom_model *m = NULL;
    char *text = slurp(pa);
    CHECK(text && loom_model_create(&m, text, "best", 8, 8, 1, &err) == LOOM_OK);
    free(text);
    loom_model_destroy(m);
    CHECK(rb.summary && strstr(rb.summary, "| rank |") == rb.summary);

    /* a search given more trials on resume continues from the recorded ones */
    tiny_tune_config(&tc, db);
    tc.is_resume = true;
    tc.trials = 4;
    tc.is_skip_best = true;
    loom_tune_result rc;
    CHECK(loom_tune_run(&tc, train, NULL, &rc, &err) == LOOM_OK && rc.n_trials == 4);
    for (int t = 0; t < 3 && rc.n_trials == 4; t++)
        CHECK(rc.trials[t].score == ra.trials[t].score);
    loom_tune_result_reset(&rc);

    /* --refit all: the same search, its best retrained on all 400 examples (no validation, no
     * early stopping): other weights than execution 1's, and recorded as such */
    tiny_tune_config(&tc, tmp_path("tune_refit"));
    tc.is_refit_all = true;
    tc.train.early_stopping = 1;
    loom_tune_result rr;
    st = loom_tune_run(&tc, train, test, &rr, &err);
    CHECK_MSG(st == LOOM_OK, "%s", err.msg);
    CHECK(rr.best == ra.best && rr.has_test && rr.weights_hash != ra.weights_hash);
    CHECK(rr.trials[rr.best].score == ra.trials[ra.best].score);
    snprintf(pa, sizeof pa, "%s/best/config.txt", tc.out_dir);
    char *cfg = slurp(pa), v[64];
    CHECK(cfg && loom_config_get(cfg, "tune_refit", v, sizeof v) && strcmp(v, "all") == 0);
    CHECK(cfg && loom_config_get(cfg, "val_split", v, sizeof v) && strcmp(v, "0") == 0);
    CHECK(cfg && loom_config_get(cfg, "early_stopping", v, sizeof v) && strcmp(v, "0") == 0);
    free(cfg);
    snprintf(pa, sizeof pa, "%s/best/model.txt", tc.out_dir);
    text = slurp(pa);
    CHECK(text && strstr(text, " val_split=0\n") != NULL);
    free(text);
    snprintf(pa, sizeof pa, "%s/best/history.csv", tc.out_dir);
    CHECK(count_lines(pa) == 3); /* the full 2 epochs */
    snprintf(pa, sizeof pa, "%s/best/config.txt", da);
    cfg = slurp(pa);
    CHECK(cfg && loom_config_get(cfg, "tune_refit", v, sizeof v) && strcmp(v, "split") == 0);
    free(cfg);
    loom_tune_result_reset(&rr);

    loom_tune_result_reset(&ra);
    loom_tune_result_reset(&rb);
    loom_dataset_destroy(train);
    loom_dataset_destroy(test);
}

static void test_tune_hyperband_cv(void) {
    loom_dataset *train = band_data(300, 8);
    loom_tune_config tc;
    loom_tune_result r1, r2;
    loom_error err = {0};
    tiny_tune_config(&tc, tmp_path("hb"));
    tc.algorithm = LOOM_TUNE_HYPERBAND;
    tc.trials = 4;
    tc.eta = 2;
    tc.executions = 1;
    tc.train.epochs = 4;
    tc.is_skip_best = true;
    /* rounds: 4 points x 1 epoch, the best 2 x 2 epochs, the best 1 x 4 epochs */
    CHECK_MSG(loom_tune_run(&tc, train, NULL, &r1, &err) == LOOM_OK, "%s", err.msg);
    CHECK(r1.n_trials == 7);
    if (r1.n_trials == 7) {
        CHECK(r1.trials[0].epochs == 1 && r1.trials[4].epochs == 2 && r1.trials[6].epochs == 4);
        CHECK(r1.best == 6 && r1.trials[6].rung == 2);
        /* the promoted points are the best of the round before */
        double third = -1;
        for (int i = 0; i < 4; i++)
            if (r1.trials[i].trial != r1.trials[4].trial &&
                r1.trials[i].trial != r1.trials[5].trial && r1.trials[i].score > third)
                third = r1.trials[i].score;
        int n_promoted = 0; /* trials 4 and 5 are two distinct points of the first round */
        for (int i = 0; i < 4; i++)
            if (r1.trials[i].trial == r1.trials[4].trial ||
                r1.trials[i].trial == r1.trials[5].trial) {
                n_promoted++;
                CHECK(r1.trials[i].score >= third);
            }
        CHECK(n_promoted == 2);
    }
    /* scored by 2-fold cross-validation, objective val_loss; the same seed twice */
    tiny_tune_config(&tc, tmp_path("cvsearch1"));
    tc.cv_folds = 2;
    tc.trials = 2;
    tc.executions = 1;
    tc.objective = LOOM_OBJECTIVE_VAL_LOSS;
    tc.is_skip_best = true;
    CHECK_MSG(loom_tune_run(&tc, train, NULL, &r2, &err) == LOOM_OK, "%s", err.msg);
    loom_tune_result r3;
    tc.out_dir = tmp_path("cvsearch2");
    CHECK(loom_tune_run(&tc, train, NULL, &r3, &err) == LOOM_OK);
    CHECK(r2.n_trials == 2 && r3.n_trials == 2);
    for (int t = 0; t < 2 && r2.n_trials == 2 && r3.n_trials == 2; t++)
        CHECK(r2.trials[t].score == r3.trials[t].score && r2.trials[t].score > 0);
    CHECK(r2.best >= 0 && r2.trials[r2.best].score <= r2.trials[1 - r2.best].score);
    loom_tune_result_reset(&r1);
    loom_tune_result_reset(&r2);
    loom_tune_result_reset(&r3);
    loom_dataset_destroy(train);
}

/* ---- comparing runs ---- */

static void make_run(const char *name, const char *model, const int *pred, int n) {
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/%s", check_tmpdir(), name);
    mkdir(dir, 0755);
    char cfg[256];
    snprintf(cfg, sizeof cfg, "model=%s\nepochs=2\nearly_stopping=0\n", model);
    put_file(dir, "config.txt", cfg);
    put_file(dir, "history.csv",
             "epoch,loss,acc,val_loss,val_acc,lr,seconds\n"
             "1,0.9,0.70,0.8,0.72,0.001,2.0\n2,0.5,0.85,0.6,0.80,0.001,4.0\n");
    put_file(dir, "metrics.json",
             "{\"accuracy\": 0.9, \"macro_precision\": 0.91, "
             "\"macro_recall\": 0.9, \"macro_f1\": 0.905}\n");
    char *pc = malloc(64 * (size_t)n + 64);
    size_t o = (size_t)sprintf(pc, "index,true,pred,prob\n");
    for (int i = 0; i < n; i++)
        o += (size_t)sprintf(pc + o, "%d,%d,%d,0.9\n", i, i % 3, pred[i]);
    put_file(dir, "predictions.csv", pc);
    free(pc);
}

/* Five runs: 10 pairs, more than the Markdown lists: each run against the best one (all runs
 * score 90%: the first is the best on ties), every pair in mcnemar.csv. */
static void test_compare_many(void) {
    int n = 40;
    const char *names[5] = {"many_0", "many_1", "many_2", "many_3", "many_4"}, *dirs[5];
    int *pred = malloc(sizeof(int) * (size_t)n);
    CHECK(pred != NULL);
    for (int r = 0; pred && r < 5; r++) {
        /* run r is wrong on its first 3 r + 1 images */
        for (int i = 0; i < n; i++)
            pred[i] = i < 3 * r + 1 ? (i % 3 + 1) % 3 : i % 3;
        make_run(names[r], "mlp", pred, n);
        dirs[r] = tmp_path(names[r]);
    }
    free(pred);
    loom_compare_config cc = {dirs, 5, tmp_path("cmp_many"), 0.05};
    loom_compare_result r;
    loom_error err = {0};
    CHECK_MSG(loom_compare(&cc, &r, &err) == LOOM_OK, "%s", err.msg);
    CHECK(r.n_pairs == 10 && r.best == 0 && r.labels && strcmp(r.labels[3], "many_3") == 0);
    CHECK_MSG(r.markdown && strstr(r.markdown, "each run against the best one, many_0 (all 10 "
                                               "pairs: mcnemar.csv)"),
              "%s", r.markdown ? r.markdown : "");
    CHECK(r.markdown && strstr(r.markdown, "| many_0 | many_4 |") &&
          !strstr(r.markdown, "| many_1 | many_2 |"));
    char p[1200];
    snprintf(p, sizeof p, "%s/mcnemar.csv", tmp_path("cmp_many"));
    CHECK(count_lines(p) == 11);
    loom_compare_result_reset(&r);
}

static void test_compare(void) {
    /* 40 images, labels i % 3. A right on all but 2; B wrong on 12 of A's right ones:
     * b = 12 (A right, B wrong), c = 2 (A wrong, B right) */
    int n = 40, pa[40], pb[40];
    for (int i = 0; i < n; i++) {
        pa[i] = pb[i] = i % 3;
        if (i < 2)
            pa[i] = (i % 3 + 1) % 3;
        else if (i < 14)
            pb[i] = (i % 3 + 1) % 3;
    }
    make_run("run_a", "mlp", pa, n);
    make_run("run_b", "cnn1", pb, n);
    const char *dirs[] = {tmp_path("run_a"), tmp_path("run_b")};
    loom_compare_config cc = {dirs, 2, tmp_path("cmp"), 0.05};
    loom_compare_result r;
    loom_error err = {0};
    CHECK_MSG(loom_compare(&cc, &r, &err) == LOOM_OK, "%s", err.msg);
    CHECK(r.n_pairs == 1);
    if (r.n_pairs == 1) {
        CHECK(r.tests[0].b == 12 && r.tests[0].c == 2);
        loom_mcnemar m = loom_mcnemar_test(12, 2);
        CHECK(r.tests[0].p == m.p && m.is_exact);
    }
    CHECK(r.markdown && strstr(r.markdown, "| run_a | mlp |") &&
          strstr(r.markdown, "88.33%")); /* the published figure of the zoo's mlp */
    CHECK(r.markdown && strstr(r.markdown, "| 85.00 | 80.00 | 90.00 | 91.00 | 90.00 | 90.50 |"));
    CHECK(r.markdown && strstr(r.markdown, "| 2 | 3.0 |")); /* epochs, seconds per epoch */
    char p[1200];
    snprintf(p, sizeof p, "%s/compare.csv", tmp_path("cmp"));
    CHECK(count_lines(p) == 3);
    snprintf(p, sizeof p, "%s/compare.json", tmp_path("cmp"));
    char *js = slurp(p);
    CHECK(js && strstr(js, "\"a_right_b_wrong\":\t12"));
    free(js);
    loom_compare_result_reset(&r);
    const char *bad[] = {tmp_path("nowhere")};
    loom_compare_config cb = {bad, 1, NULL, 0.05};
    CHECK(loom_compare(&cb, &r, &err) == LOOM_ERR_ARG);
}

/* cli_study_run: a step that finishes while a stop is requested is still recorded as done
 * (its checkpoint is gone, so --resume would train it again from scratch). The steps run a
 * stand-in executable that ignores SIGINT and exits 0. */
static volatile int study_stop;
static void on_usr1(int sig) {
    (void)sig;
    study_stop = 1;
}

static void test_study_stop_after_finished_step(void) {
    char exe[1200], study[1200], out[1200], done1[1300], done2[1300];
    snprintf(exe, sizeof exe, "%s/finish.sh", check_tmpdir());
    snprintf(study, sizeof study, "%s/two.study", check_tmpdir());
    snprintf(out, sizeof out, "%s/study-stop", check_tmpdir());
    /* the steps are checked first (--check: nothing to do); then the first step asks for the
     * stop (SIGUSR1 to the study, as if SIGINT arrived while it ran) and finishes all the same */
    const char *script = "#!/bin/sh\ntrap '' INT\n"
                         "case \" $* \" in *' --check '*) exit 0 ;; esac\n"
                         "for a; do [ \"$p\" = --out ] && mkdir -p \"$a\"; p=$a; done\n"
                         "kill -USR1 $PPID\nexit 0\n";
    const char *steps = "train mlp\ntrain cnn1\n";
    loom_error err = {0};
    CHECK(loom_file_write_atomic(exe, script, strlen(script), &err) == LOOM_OK);
    CHECK(chmod(exe, 0755) == 0);
    CHECK(loom_file_write_atomic(study, steps, strlen(steps), &err) == LOOM_OK);
    study_stop = 0;
    struct sigaction sa = {0}, old;
    sa.sa_handler = on_usr1;
    sigemptyset(&sa.sa_mask);
    CHECK(sigaction(SIGUSR1, &sa, &old) == 0);
    cli_study_config sc = {
        .study_file = study, .exe = exe, .out_dir = out, .threads = 1, .stop_flag = &study_stop};
    loom_status st = cli_study_run(&sc, &err);
    sigaction(SIGUSR1, &old, NULL);
    CHECK_MSG(st == LOOM_ERR_INTERRUPTED, "%d %s", st, err.msg);
    snprintf(done1, sizeof done1, "%s/mlp/.done", out);
    snprintf(done2, sizeof done2, "%s/cnn1/.done", out);
    struct stat sb;
    CHECK_MSG(stat(done1, &sb) == 0, "%s missing", done1);
    CHECK(stat(done2, &sb) != 0);
}

int main(void) {
    RUN(test_space_parse);
    RUN(test_space_residual);
    RUN(test_space_errors);
    RUN(test_space_sampling);
    RUN(test_settings);
    RUN(test_history_read);
    RUN(test_mean_std);
    RUN(test_mcnemar);
    RUN(test_subset);
    RUN(test_cv);
    RUN(test_tune_resume);
    RUN(test_tune_hyperband_cv);
    RUN(test_compare);
    RUN(test_compare_many);
    RUN(test_study_stop_after_finished_step);
    return check_report();
}
