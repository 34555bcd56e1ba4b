/* test_shards.c - the exact sum of shard gradients (any split of the shards between processes
 * gives the same bits, and the sum is as accurate as a float's rounding), and training in shards
 * (the gradient is the whole batch's; thread count and shard split change nothing). */
#include "../src/model/model.h"
#include "../src/train/shards.h"
#include "check.h"

enum { N = 1000, S = 12 };

/* A value of widely varying magnitude (2^-40 .. 2^20), either sign, some zeros. */
static float wild(loom_rng *r) {
    uint64_t b = loom_rng_next(r);
    if (b % 17 == 0)
        return 0.0f;
    float m = (float)(loom_rng_uniform(r) + 0.5);
    return ldexpf(b & 1 ? -m : m, (int)(b >> 8) % 60 - 40);
}

/* The shards [lo, hi) of vals summed as one process of a job would: its own maxima (into ex)
 * and its integers (into acc). */
static void part(const float *vals, int lo, int hi, int32_t *ex, int64_t *acc, bool is_max_pass) {
    shard_sum s;
    loom_error err = {0};
    CHECK(shard_sum_init(&s, S, lo, hi, N, 0, &err) == LOOM_OK);
    for (int k = lo; k < hi; k++)
        memcpy(shard_sum_vec(&s, k), vals + (size_t)k * N, sizeof(float) * N);
    if (is_max_pass) {
        shard_sum_exponents(&s);
        for (size_t b = 0; b < s.nb; b++)
            ex[b] = s.ex[b] > ex[b] ? s.ex[b] : ex[b];
    } else {
        memcpy(s.ex, ex, sizeof(int32_t) * s.nb);
        shard_sum_quantize(&s);
        for (int i = 0; i < N; i++)
            acc[i] += s.acc[i];
    }
    shard_sum_free(&s);
}

/* The sum of vals over the shards split among P "processes" (P divides S). */
static void sum_split(const float *vals, int P, float *out) {
    int32_t ex[(N + SHARD_BLOCK - 1) / SHARD_BLOCK] = {0};
    int64_t acc[N] = {0};
    for (int pass = 0; pass < 2; pass++)
        for (int p = P - 1; p >= 0; p--) /* the processes in reverse: the order is free */
            part(vals, p * S / P, (p + 1) * S / P, ex, acc, pass == 0);
    shard_sum s;
    loom_error err = {0};
    CHECK(shard_sum_init(&s, S, 0, 0, N, 0, &err) == LOOM_OK);
    memcpy(s.ex, ex, sizeof ex);
    memcpy(s.acc, acc, sizeof acc);
    shard_sum_unquantize(&s, out);
    shard_sum_free(&s);
}

static void test_exact_sum(void) {
    static float vals[S * N], ref[N], got[N];
    loom_rng r;
    loom_rng_seed(&r, 7);
    for (int i = 0; i < S * N; i++)
        vals[i] = wild(&r);
    /* one block holds only zeros, one a single tiny value */
    for (int k = 0; k < S; k++)
        for (int i = 0; i < SHARD_BLOCK; i++) {
            vals[(size_t)k * N + i] = 0.0f;
            vals[(size_t)k * N + SHARD_BLOCK + i] = k == 3 && i == 5 ? 1e-30f : 0.0f;
        }
    sum_split(vals, 1, ref);
    int divisors[] = {2, 3, 4, 6, 12};
    for (int d = 0; d < 5; d++) {
        sum_split(vals, divisors[d], got);
        CHECK_MSG(memcmp(ref, got, sizeof ref) == 0, "%d processes: other bits", divisors[d]);
    }
    /* accuracy: within a float's rounding of the exact (long double) sum, or far below the
     * block's largest value */
    int bad = 0;
    for (int i = 0; i < N; i++) {
        long double exact = 0, big = 0;
        size_t b0 = (size_t)i / SHARD_BLOCK * SHARD_BLOCK;
        for (int k = 0; k < S; k++) {
            exact += vals[(size_t)k * N + i];
            for (size_t j = b0; j < b0 + SHARD_BLOCK && j < N; j++)
                big = fabsl(vals[(size_t)k * N + j]) > big ? fabsl(vals[(size_t)k * N + j]) : big;
        }
        long double e = fabsl((long double)ref[i] - exact);
        if (e > fabsl(exact) * 0x1p-24L + big * 0x1p-55L)
            bad++;
    }
    CHECK_MSG(bad == 0, "%d sums off", bad);
    CHECK(ref[0] == 0.0f && ref[SHARD_BLOCK + 5] == 1e-30f);
}

/* Fashion-like data: n images 8x8 whose class is their brightest quarter. */
static loom_dataset *make_data(int n) {
    loom_dataset *ds = check_dataset(n, 8, 8, 4);
    loom_rng r;
    loom_rng_seed(&r, 3);
    for (int i = 0; i < n; i++) {
        int c = (int)loom_rng_below(&r, 4);
        ds->y[i] = (uint8_t)c;
        for (int p = 0; p < 64; p++) {
            int q = (p / 8 >= 4) * 2 + (p % 8 >= 4);
            ds->x[(size_t)i * 64 + p] = (uint8_t)(loom_rng_below(&r, 100) + (q == c ? 120 : 0));
        }
    }
    return ds;
}

/* The weights after training text with shards, threads; NULL on failure. */
static float *train(const char *text, int shards, int threads, size_t *np) {
    loom_set_threads(threads);
    loom_dataset *ds = make_data(400);
    int idx[400];
    for (int i = 0; i < 400; i++)
        idx[i] = i;
    loom_model *m = NULL;
    loom_error err = {0};
    float *w = NULL;
    if (loom_model_create(&m, text, "t", 8, 8, 1, &err) == LOOM_OK) {
        loom_model_init(m, 5);
        loom_train_config c;
        loom_train_config_init(&c);
        c.epochs = 2;
        c.batch = 48;
        c.shards = shards;
        c.opt.kind = LOOM_OPT_SGD;
        c.opt.lr = 0.05f;
        c.opt.momentum = 0.0f;
        loom_history h = {0};
        loom_status st = loom_train(m, &c, ds, idx, 300, ds, idx + 300, 100, NULL, &h, &err);
        CHECK_MSG(st == LOOM_OK, "%s", err.msg);
        loom_history_reset(&h);
        *np = m->n_params + m->n_state;
        w = malloc(sizeof(float) * *np);
        memcpy(w, m->params, sizeof(float) * m->n_params);
        memcpy(w + m->n_params, m->state, sizeof(float) * m->n_state);
    } else {
        fprintf(stderr, "    %s\n", err.msg);
    }
    loom_model_destroy(m);
    loom_dataset_destroy(ds);
    loom_set_threads(0);
    return w;
}

static void test_sharded_training(void) {
    const char *plain = "flatten\ndense 16 tanh\ndense 4 softmax\n";
    size_t n1 = 0, n4 = 0;
    float *w1 = train(plain, 1, 2, &n1), *w4 = train(plain, 4, 2, &n4);
    CHECK(w1 && w4 && n1 == n4);
    /* no batch norm, no dropout: the shards' summed gradient is the batch's, to rounding */
    double worst = 0;
    for (size_t i = 0; w1 && w4 && i < n1; i++)
        worst = fmax(worst, fabs((double)w1[i] - w4[i]));
    CHECK_MSG(worst < 1e-4, "shards 4 vs whole batches: weights differ by %g", worst);
    CHECK_MSG(worst > 0, "shards 4 gave the whole batch's bits: the shard path did not run");
    free(w1);
    free(w4);
    /* with batch norm and dropout: the thread count changes no bit */
    const char *bn = "conv 4 3x3 same\nbatchnorm\nrelu\ndropout 0.3\nflatten\ndense 4 softmax\n";
    size_t na = 0, nb = 0;
    float *a = train(bn, 6, 1, &na), *b = train(bn, 6, 2, &nb);
    CHECK(a && b && na == nb && memcmp(a, b, sizeof(float) * na) == 0);
    free(a);
    free(b);
    /* shards above the batch size: refused */
    loom_model *m = NULL;
    loom_error err = {0};
    loom_dataset *ds = make_data(100);
    int idx[100];
    for (int i = 0; i < 100; i++)
        idx[i] = i;
    CHECK(loom_model_create(&m, plain, "t", 8, 8, 1, &err) == LOOM_OK);
    loom_train_config c;
    loom_train_config_init(&c);
    c.batch = 16;
    c.shards = 17;
    loom_history h = {0};
    CHECK(loom_train(m, &c, ds, idx, 100, NULL, NULL, 0, NULL, &h, &err) == LOOM_ERR_ARG);
    CHECK_MSG(strstr(err.msg, "shards must be from 1 to the batch size (16)"), "%s", err.msg);
    loom_history_reset(&h);
    loom_model_destroy(m);
    loom_dataset_destroy(ds);
}

int main(void) {
    RUN(test_exact_sum);
    RUN(test_sharded_training);
    return check_report();
}
