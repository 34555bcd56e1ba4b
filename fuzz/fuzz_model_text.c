/* fuzz_model_text.c - libFuzzer harness for the model-language parser (model_count and
 * loom_model_create). The input is the model text; the input shape is chosen by the length
 * (28x28x1, 9x7x3 or 12x1x1) so that image, odd-sized and sequence-like inputs are all tried.
 * A text that builds must print its summary, rebuild from its canonical text to the same
 * counts, and run a training forward and backward pass of batch 2 when it is small enough. */
#include "../src/model/model.h"
#include "fuzz.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_TEXT 4096
#define MAX_PARAMS (1u << 22)     /* parameters (and state) of a model the harness builds */
#define MAX_RUN_FLOATS (1u << 22) /* activations + scratch for a batch of 2 (16 MiB) */
#define MAX_RUN_FLOPS 5e6         /* per example, forward */

static const int shapes[3][3] = {{28, 28, 1}, {9, 7, 3}, {12, 1, 1}};

/* Floats the arena needs for batch B (as loom_model_prepare sizes it), or SIZE_MAX when it
 * overflows; the harness runs only models that are cheap. */
static size_t arena_floats_for(const loom_model *m, size_t B) {
    size_t total = 0, max_act = shape_size(m->in);
    for (int i = 0; i < m->n_layers; i++) {
        const layer *l = &m->layers[i];
        size_t a = shape_size(l->out);
        if (a > max_act)
            max_act = a;
        if (a > MAX_RUN_FLOATS || l->scratch_per_example > MAX_RUN_FLOATS ||
            l->scratch_fixed > MAX_RUN_FLOATS)
            return SIZE_MAX;
        total += B * a + B * l->scratch_per_example + l->scratch_fixed;
    }
    return total + 2 * B * max_act;
}

static void run_once(loom_model *m) {
    const int B = 2;
    if (loom_model_flops(m) > MAX_RUN_FLOPS || arena_floats_for(m, B) > MAX_RUN_FLOATS ||
        loom_model_n_params(m) > MAX_RUN_FLOATS)
        return;
    loom_error err = {0};
    if (loom_model_prepare(m, B, &err) != LOOM_OK)
        return;
    loom_model_init(m, 1);
    size_t D = shape_size(m->in) * (size_t)B;
    int n_out = loom_model_n_outputs(m);
    float *x = malloc(sizeof(float) * D);                       /* (B, H, W, C) */
    float *dlogits = malloc(sizeof(float) * (size_t)n_out * B); /* (B, n_out) */
    if (x && dlogits) {
        loom_rng rng;
        loom_rng_seed(&rng, 7);
        for (size_t i = 0; i < D; i++)
            x[i] = loom_rng_uniform(&rng);
        int y[2] = {0, n_out > 1 ? 1 : 0};
        const float *logits = loom_model_forward(m, x, B, true, &rng);
        loom_softmax_xent(logits, y, B, n_out, dlogits, NULL);
        loom_model_zero_grad(m);
        loom_model_backward(m, dlogits, B);
        loom_model_forward(m, x, B, false, NULL);
    }
    free(x);
    free(dlogits);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *text = fuzz_text(data, size, MAX_TEXT);
    if (!text)
        return 0;
    const int *s = shapes[size % 3];
    loom_model *m = NULL;
    loom_error err = {0};
    /* A valid text may ask for billions of parameters; for it "cannot allocate" is the right
     * answer, but the fuzzer's malloc limit would call it a crash: count first, and build only
     * models of at most MAX_PARAMS floats. */
    size_t n_params = 0, n_state = 0, n_bytes = 0;
    loom_status st =
        model_count(text, "fuzz", s[0], s[1], s[2], &n_params, &n_state, &n_bytes, &err);
    if (st == LOOM_OK && (n_params > MAX_PARAMS || n_state > MAX_PARAMS || n_bytes > MAX_PARAMS)) {
        free(text);
        return 0;
    }
    loom_error err2 = {0};
    loom_status st2 = loom_model_create(&m, text, "fuzz", s[0], s[1], s[2], &err2);
    if (st2 != st || strcmp(err.msg, err2.msg) != 0)
        abort(); /* counting and building agree */
    if (st != LOOM_OK) {
        if (m || err.msg[0] == '\0' || err.status != st)
            abort(); /* an error leaves no model and says why */
        free(text);
        return 0;
    }
    FILE *null = fopen("/dev/null", "w");
    if (null) {
        loom_model_summary(m, null);
        fclose(null);
    }
    loom_model *again = NULL;
    if (loom_model_create(&again, loom_model_text(m), "again", s[0], s[1], s[2], &err) != LOOM_OK ||
        loom_model_n_params(again) != loom_model_n_params(m) ||
        loom_model_n_state(again) != loom_model_n_state(m))
        abort(); /* the canonical text rebuilds the same model */
    loom_model_destroy(again);
    run_once(m);
    loom_model_destroy(m);
    free(text);
    return 0;
}
