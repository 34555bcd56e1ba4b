/* test_alloc.c - the rule that training and inference do not allocate per step. malloc, calloc,
 * realloc, aligned_alloc and posix_memalign are counted here (this executable's definitions
 * take the calls of the library and the BLAS too, and hand them to glibc's __libc_*); a
 * training run of many steps must make as many calls as one of few steps, and so must many
 * inference batches against few. memalign is counted too, and also apart (n_team): libgomp
 * calls it for the team of every parallel region that runs on one thread (a region at
 * --threads 1, or nested in an inference chunk), which is why every parallel loop goes through
 * par_for, a plain loop in those cases. glibc only; skipped under a sanitizer with its own
 * allocator. */
#include "check.h"

#include "../src/model/model.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

/* glibc only (its __libc_* entry points), and not under a sanitizer with its own allocator */
#if defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer) ||                         \
    __has_feature(memory_sanitizer)
#define LOOM_OWN_ALLOCATOR 1
#endif
#endif
#if !defined(__GLIBC__) || defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__) ||        \
    defined(LOOM_OWN_ALLOCATOR)
#define COUNTING 0
#else
#define COUNTING 1
#include <omp.h>
static atomic_long n_alloc, n_team; /* n_team: memalign, which only libgomp calls here */

void *__libc_malloc(size_t);
void *__libc_calloc(size_t, size_t);
void *__libc_realloc(void *, size_t);
void *__libc_memalign(size_t, size_t);

void *malloc(size_t n) {
    atomic_fetch_add(&n_alloc, 1);
    return __libc_malloc(n);
}
void *calloc(size_t n, size_t s) {
    atomic_fetch_add(&n_alloc, 1);
    return __libc_calloc(n, s);
}
void *realloc(void *p, size_t n) {
    atomic_fetch_add(&n_alloc, 1);
    return __libc_realloc(p, n);
}
void *aligned_alloc(size_t a, size_t n) {
    atomic_fetch_add(&n_alloc, 1);
    return __libc_memalign(a, n);
}
void *memalign(size_t a, size_t n);
void *memalign(size_t a, size_t n) { /* libgomp's teams */
    atomic_fetch_add(&n_alloc, 1);
    atomic_fetch_add(&n_team, 1);
    return __libc_memalign(a, n);
}
int posix_memalign(void **out, size_t a, size_t n) {
    atomic_fetch_add(&n_alloc, 1);
    void *p = __libc_memalign(a, n);
    if (!p)
        return ENOMEM;
    *out = p;
    return 0;
}

static const char *models[] = {
    "flatten, dropout 0.2, dense 48 relu, dropout 0.3, dense 24 relu, dense 10 softmax",
    "conv 8 3x3 same relu, batchnorm, maxpool 2, dropout 0.25, conv 16 3x3 s2, batchnorm, relu, "
    "flatten, dense 10 softmax",
    "rows, lstm 16 recurrent-dropout 0.25, dense 10 softmax",
    "rows, gru 12 return-sequences, rnn 8, dense 10 softmax",
    "conv 8 3x3 same, batchnorm, relu, repeat 2 { residual { conv 8 3x3 same, batchnorm, relu, "
    "dropout 0.1, conv 8 3x3 same, batchnorm } relu }, residual { conv 12 3x3 s2 same, "
    "residual { conv 12 3x3 same tanh } } relu, globalavgpool, dense 10 softmax",
};

/* The model of text for 12x12 inputs, initialised; NULL after a failed CHECK. */
static loom_model *new_model(const char *text) {
    loom_model *m = NULL;
    loom_error err = {0};
    CHECK_MSG(loom_model_create(&m, text, "test", 12, 12, 1, &err) == LOOM_OK, "%s", err.msg);
    if (m)
        loom_model_init(m, 3);
    return m;
}

static loom_precision precision; /* train_allocs's (bf16: the residual model again) */
static int g_shards = 1;         /* the shards of train_allocs' runs */

/* Allocations of one training run of n_train examples (1 epoch, batch 32: n_train / 32 steps),
 * with an evaluation of 64 examples at its end. */
static long train_allocs(const char *text, const loom_dataset *ds, const int *idx, int n_train) {
    loom_model *m = new_model(text);
    if (!m)
        return -1;
    loom_error err = {0};
    loom_train_config c;
    loom_train_config_init(&c);
    c.epochs = 1;
    c.batch = 32;
    c.precision = precision;
    c.shards = g_shards;
    loom_history h = {0};
    long before = atomic_load(&n_alloc);
    loom_status st = loom_train(m, &c, ds, idx, n_train, ds, idx + 640, 64, NULL, &h, &err);
    long n = atomic_load(&n_alloc) - before;
    CHECK_MSG(st == LOOM_OK, "%s: %s", text, err.msg);
    loom_history_reset(&h);
    loom_model_destroy(m);
    return n;
}

/* Allocations of n_batches inference batches of 64 (chunks of 32 through model_infer). */
static long infer_allocs(const char *text, const float *x, int n_batches) {
    loom_model *m = new_model(text);
    if (!m)
        return -1;
    loom_error err = {0};
    CHECK(loom_model_prepare(m, 64, &err) == LOOM_OK);
    model_infer(m, x, 64); /* the first pass starts the thread team */
    long before = atomic_load(&n_alloc);
    for (int i = 0; i < n_batches; i++)
        model_infer(m, x, i % 2 ? 64 : 40);
    long n = atomic_load(&n_alloc) - before;
    loom_model_destroy(m);
    return n;
}

static void test_no_allocation_per_step(void) {
    loom_dataset *ds = check_dataset(704, 12, 12, 10);
    int *idx = malloc(sizeof(int) * 704);
    float *x = malloc(sizeof(float) * 64 * 144);
    CHECK(ds && idx && x);
    if (!ds || !idx || !x) {
        loom_dataset_destroy(ds);
        free(idx);
        free(x);
        return;
    }
    loom_rng rng;
    loom_rng_seed(&rng, 8);
    for (int i = 0; i < 704; i++) {
        idx[i] = i;
        ds->y[i] = (uint8_t)loom_rng_below(&rng, 10);
        for (int j = 0; j < 144; j++)
            ds->x[i * 144 + j] = (uint8_t)loom_rng_below(&rng, 256);
    }
    for (int i = 0; i < 64 * 144; i++)
        x[i] = loom_rng_uniform(&rng);
    for (int threads = 1; threads <= 2; threads++) {
        loom_set_threads(threads);
        for (size_t k = 0; k < sizeof models / sizeof models[0]; k++) {
            train_allocs(models[k], ds, idx, 64); /* warm: the thread team, first-use buffers */
            long few = train_allocs(models[k], ds, idx, 64),
                 many = train_allocs(models[k], ds, idx, 640);
            CHECK_MSG(few > 0 && many == few,
                      "%s, %d threads: %ld allocations for 2 steps, %ld for 20", models[k], threads,
                      few, many);
            long a = infer_allocs(models[k], x, 2), b = infer_allocs(models[k], x, 20);
            CHECK_MSG(a == 0 && b == 0, "%s, %d threads: inference allocated %ld, %ld times",
                      models[k], threads, a, b);
        }
        loom_cpu cpu;
        loom_cpu_features(&cpu);
        if (!cpu.has_bf16)
            continue;
        precision = LOOM_PRECISION_BF16; /* the residual model's inner convs in bf16 */
        const char *res = models[sizeof models / sizeof models[0] - 1];
        train_allocs(res, ds, idx, 64);
        long few = train_allocs(res, ds, idx, 64), many = train_allocs(res, ds, idx, 640);
        CHECK_MSG(few > 0 && many == few,
                  "bf16, %d threads: %ld allocations for 2 steps, %ld for 20", threads, few, many);
        precision = LOOM_PRECISION_FP32;
    }
    loom_set_threads(0);
    loom_dataset_destroy(ds);
    free(idx);
    free(x);
}

/* Training in shards (the data-parallel path, here in one process) allocates nothing per step
 * either: its buffers are made once with the trainer's. */
static void test_no_allocation_per_sharded_step(void) {
    loom_dataset *ds = check_dataset(704, 12, 12, 10);
    int *idx = malloc(sizeof(int) * 704);
    CHECK(ds && idx);
    for (int i = 0; ds && idx && i < 704; i++) {
        idx[i] = i;
        ds->y[i] = (uint8_t)(i % 10);
        for (int j = 0; j < 144; j++)
            ds->x[i * 144 + j] = (uint8_t)((i * 7 + j * 13) % 256);
    }
    g_shards = 4;
    for (size_t k = 0; ds && idx && k < sizeof models / sizeof models[0]; k++) {
        train_allocs(models[k], ds, idx, 64);
        long few = train_allocs(models[k], ds, idx, 64),
             many = train_allocs(models[k], ds, idx, 640);
        CHECK_MSG(few > 0 && many == few, "%s, 4 shards: %ld allocations for 2 steps, %ld for 20",
                  models[k], few, many);
    }
    g_shards = 1;
    loom_dataset_destroy(ds);
    free(idx);
}

/* The counting sees OpenMP's own allocations: a nested parallel region makes a team, counted
 * in n_alloc as well as n_team. */
static void test_counting_sees_openmp(void) {
    long before = atomic_load(&n_team), all = atomic_load(&n_alloc);
#pragma omp parallel num_threads(2)
    {
#pragma omp parallel num_threads(1)
        {
            volatile int x = omp_get_thread_num();
            (void)x;
        }
    }
    CHECK(atomic_load(&n_team) > before);
    CHECK(atomic_load(&n_alloc) - all >= atomic_load(&n_team) - before);
    before = atomic_load(&n_alloc);
    void *volatile p = malloc(16); /* volatile: not elided */
    free(p);
    CHECK(atomic_load(&n_alloc) == before + 1);
}

static void count_chunk(void *ctx, long lo, long hi, int c) {
    (void)c;
    atomic_fetch_add((atomic_long *)ctx, hi - lo);
}

/* par_for called from inside a caller's parallel region (two threads) runs its chunks in a plain
 * loop, with no team of its own: no allocation, and every item done once per caller thread. */
static void test_par_for_nested_is_plain(void) {
    loom_set_threads(2);
    atomic_long items = 0;
#pragma omp parallel num_threads(2) /* warm: the caller's own team */
    par_for(1000, 8, count_chunk, &items);
    atomic_store(&items, 0);
    long before = atomic_load(&n_alloc);
    int team = 0;
#pragma omp parallel num_threads(2)
    {
#pragma omp single
        team = omp_get_num_threads();
        for (int r = 0; r < 10; r++)
            par_for(1000, 8, count_chunk, &items);
    }
    CHECK_MSG(atomic_load(&n_alloc) == before, "nested par_for allocated %ld times",
              atomic_load(&n_alloc) - before);
    CHECK(atomic_load(&items) == 10L * 1000 * team);
    CHECK(team == 2); /* a real region, so omp_in_parallel() is what par_for sees */
    loom_set_threads(0);
}
#endif

int main(void) {
#if COUNTING
    RUN(test_counting_sees_openmp);
    RUN(test_no_allocation_per_step);
    RUN(test_no_allocation_per_sharded_step);
    RUN(test_par_for_nested_is_plain);
#else
    printf("test_alloc: skipped (needs glibc's allocator: not under a sanitizer's own)\n");
#endif
    return check_report();
}
