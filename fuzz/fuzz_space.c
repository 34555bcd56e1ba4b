/* fuzz_space.c - libFuzzer harness for the search-space parser (loom_space_parse). The input is
 * the space text (at most 4 KiB). An error must leave no space and say why; a space that parses
 * must describe every hyperparameter, draw the same point twice from one seed, and every point
 * it draws must be usable: a model text the model language reads, and training settings the
 * trainer accepts (the parser checks each hyperparameter at its ends and choices). */
#include "../src/model/model.h"
#include "fuzz.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_TEXT 4096
#define N_SEEDS 3

/* The model text of a point parses (words and numbers; shapes are the trainer's business). */
static void check_model_text(const char *text) {
    loom_model *m = calloc(1, sizeof *m);
    if (!m)
        return;
    loom_error err = {0};
    if (model_parse(m, text, "point", &err) != LOOM_OK) {
        fprintf(stderr, "a drawn model does not parse: %s\n%s", err.msg, text);
        abort();
    }
    loom_model_destroy(m);
}

/* Every "key=value" line of a point's training settings is accepted. */
static void check_train_text(const char *text) {
    char *copy = strdup(text);
    if (!copy)
        return;
    loom_train_config c;
    loom_train_config_init(&c);
    char *save = NULL;
    for (char *l = strtok_r(copy, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
        char *eq = strchr(l, '=');
        if (!eq)
            abort(); /* the sampler writes key=value */
        *eq = '\0';
        loom_error err = {0};
        if (loom_settings_set(&(loom_settings){.train = &c}, l, eq + 1, &err) != LOOM_OK) {
            fprintf(stderr, "a drawn setting is refused: %s\n", err.msg);
            abort();
        }
    }
    free(copy);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *text = fuzz_text(data, size, MAX_TEXT);
    if (!text)
        return 0;
    loom_space *s = (loom_space *)1; /* the parser must set it, also on error */
    loom_error err = {0};
    loom_status st = loom_space_parse(&s, text, "fuzz", &err);
    if (st != LOOM_OK) {
        if (s || err.msg[0] == '\0' || err.status != st || strchr(err.msg, '\n'))
            abort(); /* an error leaves no space and says why, on one line */
        free(text);
        return 0;
    }
    int n_hp = loom_space_n_hp(s);
    if (n_hp < 0)
        abort();
    for (int i = 0; i < n_hp; i++) {
        char desc[256];
        const char *name = loom_space_hp_name(s, i);
        if (!name || !*name)
            abort();
        loom_space_hp_describe(s, i, desc, sizeof desc);
    }
    for (uint64_t seed = 1; seed <= N_SEEDS; seed++) {
        loom_space_point pt, again;
        if (loom_space_sample(s, seed, &pt, &err) != LOOM_OK)
            continue; /* out of memory only */
        if (pt.n_values != n_hp || !pt.model_text || !pt.train_text)
            abort();
        if (loom_space_sample(s, seed, &again, &err) == LOOM_OK) {
            if (strcmp(pt.model_text, again.model_text) != 0 ||
                strcmp(pt.train_text, again.train_text) != 0)
                abort(); /* one seed, one point */
            loom_space_point_reset(&again);
        }
        check_model_text(pt.model_text);
        check_train_text(pt.train_text);
        loom_space_point_reset(&pt);
    }
    loom_space_destroy(s);
    free(text);
    return 0;
}
