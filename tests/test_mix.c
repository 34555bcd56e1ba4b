/* test_mix.c - mixup and cutmix: the mixing of a batch checked by hand (mixup's weighted sums,
 * cutmix's box and its uncovered part), the Beta draws' moments, the soft-target loss against
 * hand values and finite differences, the augment text round trip, and a run stopped mid-epoch
 * and resumed ending with the same weights to the bit. */
#include "check.h"
#include "loom.h"
#include "../src/train/mix.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Mixup of two 1x3 one-channel images, labels 0 and 1: each result is lam times its own image
 * plus (1 - lam) times its partner's, the partner named by y2. */
static void test_mixup_by_hand(void) {
    float x[6] = {1, 2, 3, 10, 20, 30}, orig[6], tmp[6];
    int y[2] = {0, 1}, y2[2] = {-1, -1}, perm[2];
    memcpy(orig, x, sizeof x);
    loom_rng rng;
    loom_rng_seed(&rng, 7);
    int n_swapped = 0;
    for (int rep = 0; rep < 20; rep++) {
        memcpy(x, orig, sizeof x);
        float lam = mix_batch(x, y, 2, 1, 3, 1, 0.4f, 0.0f, &rng, perm, tmp, y2);
        CHECK(lam > 0.0f && lam < 1.0f);
        for (int i = 0; i < 2; i++) {
            CHECK(y2[i] == perm[i] && (perm[i] == 0 || perm[i] == 1));
            for (int j = 0; j < 3; j++)
                CHECK_NEAR(x[i * 3 + j], lam * orig[i * 3 + j] + (1 - lam) * orig[y2[i] * 3 + j],
                           1e-5);
        }
        n_swapped += perm[0] == 1;
    }
    CHECK_MSG(n_swapped > 0 && n_swapped < 20, "partners swapped in %d of 20 batches", n_swapped);
}

/* The cutmix box: lam 0.75 leaves sides of floor(28 * 0.5) = 14 around the centre, clipped at
 * the image's edges; a batch's box is copied from the partner and lam is what is left. */
static void test_cutmix_by_hand(void) {
    int y0, y1, x0, x1;
    mix_cut_box(28, 28, 0.75, 10, 10, &y0, &y1, &x0, &x1);
    CHECK(y0 == 3 && y1 == 17 && x0 == 3 && x1 == 17);
    mix_cut_box(28, 28, 0.75, 2, 27, &y0, &y1, &x0, &x1); /* clipped above and right */
    CHECK(y0 == 0 && y1 == 9 && x0 == 20 && x1 == 28);
    mix_cut_box(8, 8, 1.0, 4, 4, &y0, &y1, &x0, &x1); /* lam 1: no box */
    CHECK(y1 - y0 == 0 && x1 - x0 == 0);

    enum { H = 8, W = 6, C = 2, B = 3 };
    float x[B * H * W * C], orig[B * H * W * C], tmp[B * H * W * C];
    for (int i = 0; i < B * H * W * C; i++)
        orig[i] = (float)(i / (H * W * C) + 1); /* example b is all b + 1 */
    int y[B] = {0, 1, 2}, y2[B], perm[B];
    loom_rng rng;
    loom_rng_seed(&rng, 11);
    int n_partial = 0;
    for (int rep = 0; rep < 20; rep++) {
        memcpy(x, orig, sizeof x);
        float lam = mix_batch(x, y, B, H, W, C, 0.0f, 1.0f, &rng, perm, tmp, y2);
        for (int b = 0; b < B; b++) {
            int own = 0, other = 0;
            for (int j = 0; j < H * W * C; j++) {
                float v = x[b * H * W * C + j];
                own += v == (float)(b + 1);
                other += v == (float)(y2[b] + 1) && y2[b] != b;
            }
            if (y2[b] != b) /* the uncovered part is lam of the image, the rest the partner's */
                CHECK_NEAR((double)own / (H * W * C), lam, 1e-6);
            CHECK(own + other == H * W * C || y2[b] == b);
        }
        n_partial += lam > 0.0f && lam < 1.0f;
    }
    CHECK(n_partial > 0);
}

/* Beta(a, a): mean 1/2, variance 1 / (4 (2a + 1)), for a below and above 1. */
static void test_beta_moments(void) {
    const double as[2] = {0.4, 2.0};
    for (int t = 0; t < 2; t++) {
        loom_rng rng;
        loom_rng_seed(&rng, 3);
        double s = 0, s2 = 0;
        int n = 40000, bad = 0;
        for (int i = 0; i < n; i++) {
            double v = mix_beta(&rng, as[t]);
            bad += !(v >= 0.0 && v <= 1.0);
            s += v;
            s2 += v * v;
        }
        double mean = s / n, var = s2 / n - mean * mean;
        CHECK(bad == 0);
        CHECK_NEAR(mean, 0.5, 0.01);
        CHECK_NEAR(var, 1.0 / (4.0 * (2.0 * as[t] + 1.0)), 0.01);
    }
}

/* The soft-target loss: z = (0, 0) gives log 2 whatever the target, and dlogits (p - q) / B with
 * q = (lam, 1 - lam); lam 1 is the plain loss; random logits against finite differences. */
static void test_mix_loss(void) {
    float z[4] = {0, 0, 0, 0}, d[4];
    int y[2] = {0, 1}, y2[2] = {1, 1}, nc = -1;
    double L = loom_softmax_xent_mix(z, y, y2, 0.25f, 2, 2, 0.0f, d, &nc);
    CHECK_NEAR(L, 2 * log(2.0), 1e-9);
    CHECK_NEAR(d[0], (0.5 - 0.25) / 2, 1e-7);
    CHECK_NEAR(d[1], (0.5 - 0.75) / 2, 1e-7);
    CHECK_NEAR(d[2], 0.5 / 2, 1e-7);
    CHECK_NEAR(d[3], -0.5 / 2, 1e-7);
    CHECK(nc == 0); /* argmax 0 of ties; both examples weigh class 1 more */

    enum { B = 3, N = 5 };
    float zz[B * N], da[B * N], db[B * N];
    int ya[B] = {0, 3, 4}, yb[B] = {2, 3, 1};
    loom_rng rng;
    loom_rng_seed(&rng, 5);
    for (int i = 0; i < B * N; i++)
        zz[i] = 2 * loom_rng_normal(&rng);
    double La = loom_softmax_xent_mix(zz, ya, ya, 1.0f, B, N, 0.1f, da, NULL);
    double Lb = loom_softmax_xent_smooth(zz, ya, B, N, 0.1f, db, NULL);
    CHECK_NEAR(La, Lb, 1e-9);
    double worst = 0;
    for (int i = 0; i < B * N; i++)
        worst = fmax(worst, fabs(da[i] - db[i]));
    CHECK(worst < 1e-7);
    loom_softmax_xent_mix(zz, ya, yb, 0.3f, B, N, 0.1f, da, NULL);
    worst = 0;
    for (int i = 0; i < B * N; i++) { /* dL/dz of the mean loss */
        float keep = zz[i];
        zz[i] = keep + 1e-3f;
        double up = loom_softmax_xent_mix(zz, ya, yb, 0.3f, B, N, 0.1f, NULL, NULL);
        zz[i] = keep - 1e-3f;
        double down = loom_softmax_xent_mix(zz, ya, yb, 0.3f, B, N, 0.1f, NULL, NULL);
        zz[i] = keep;
        worst = fmax(worst, fabs((up - down) / (2e-3 * B) - da[i]));
    }
    CHECK_MSG(worst < 1e-4, "largest difference from finite differences %.3g", worst);
}

/* The augment text: defaults, values, a round trip through the formatted form, bad items. */
static void test_augment_text(void) {
    loom_train_config c;
    loom_train_config_init(&c);
    loom_error err = {0};
    char buf[256];
    CHECK(loom_augment_parse("flip,mixup,cutmix:0.5", &c, &err) == LOOM_OK);
    CHECK(c.mixup_alpha == 1.0f && c.cutmix_alpha == 0.5f && c.is_augment_flip);
    loom_augment_format(&c, buf, sizeof buf);
    CHECK_MSG(strcmp(buf, "flip,shift:0,mixup:1,cutmix:0.5") == 0, "%s", buf);
    loom_train_config d;
    loom_train_config_init(&d);
    CHECK(loom_augment_parse(buf, &d, &err) == LOOM_OK);
    CHECK(d.mixup_alpha == c.mixup_alpha && d.cutmix_alpha == c.cutmix_alpha);
    CHECK(loom_augment_parse("mixup:0.2", &c, &err) == LOOM_OK && c.cutmix_alpha == 0.0f);
    const char *bad[] = {"mixup:0", "mixup:", "mixup:x", "cutmix:-1", "mixupp", "cutmix:1:2"};
    for (int i = 0; i < 6; i++)
        CHECK_MSG(loom_augment_parse(bad[i], &c, &err) == LOOM_ERR_ARG, "%s", bad[i]);
    CHECK(strstr(err.msg, "mixup[:A]") != NULL);
}

static volatile int mix_stop; /* set on the first iteration line */
static void mix_log(void *user, loom_log_kind kind, const char *line) {
    (void)user;
    if (kind == LOOM_LOG_INFO && strncmp(line, "Iteration", 9) == 0)
        mix_stop = 1;
}

/* Trains a small conv net with shifts, mixup and cutmix on a synthetic 4-class task (class k
 * lights quadrant k): 3 epochs of 10 steps. ck and stop_at as test_model's ema_train: stop
 * after stop_at steps, resume from ck. Returns the weights (malloc'd) and the last val_acc. */
static float *mix_train(const char *augment, const char *ck, int stop_at, bool resume, size_t *n,
                        double *val_acc) {
    loom_dataset *ds = check_dataset(600, 8, 8, 4);
    loom_rng rng;
    loom_rng_seed(&rng, 3);
    for (int i = 0; i < 600; i++) {
        int k = (int)loom_rng_below(&rng, 4);
        ds->y[i] = (uint8_t)k;
        for (int r = 0; r < 8; r++)
            for (int c = 0; c < 8; c++) {
                int q = (r >= 4) * 2 + (c >= 4);
                ds->x[i * 64 + r * 8 + c] =
                    (uint8_t)((int)loom_rng_below(&rng, 120) + (q == k ? 100 : 0));
            }
    }
    int idx[600];
    for (int i = 0; i < 600; i++)
        idx[i] = i;
    loom_model *m = NULL;
    loom_error err = {0};
    float *w = NULL;
    *val_acc = NAN;
    if (loom_model_create(&m, "conv 4 3x3 same relu, flatten, dense 4", "mix", 8, 8, 1, &err) ==
        0) {
        loom_model_init(m, 4);
        loom_train_config c;
        loom_train_config_init(&c);
        c.epochs = 3;
        c.batch = 50;
        c.label_smoothing = 0.1f;
        c.opt.lr = 0.01f;
        CHECK(loom_augment_parse(augment, &c, &err) == LOOM_OK);
        c.checkpoint_path = ck;
        c.is_resume = resume;
        c.stop_flag = &mix_stop;
        c.log_every = stop_at;
        c.log = mix_log;
        mix_stop = 0;
        loom_history h = {0};
        loom_status st = loom_train(m, &c, ds, idx, 500, ds, idx + 500, 100, NULL, &h, &err);
        *n = loom_model_n_params(m);
        if (st == LOOM_OK || (stop_at && st == LOOM_ERR_INTERRUPTED)) {
            w = malloc(sizeof(float) * *n);
            memcpy(w, loom_model_params(m), sizeof(float) * *n);
        } else {
            fprintf(stderr, "    mix_train: %s\n", err.msg);
        }
        *val_acc = h.n_epochs ? h.epochs[h.n_epochs - 1].val_acc : NAN;
        loom_history_reset(&h);
    }
    loom_model_destroy(m);
    loom_dataset_destroy(ds);
    return w;
}

/* With mixup and cutmix on, the task is still learnt; the run differs from one without them;
 * stopped after step 7 (epoch 1) and resumed, it ends with the same weights to the bit. */
static void test_mix_resume(void) {
    size_t n = 0;
    double acc, acc_plain;
    float *full = mix_train("shift:1,mixup:0.4,cutmix", NULL, 0, false, &n, &acc);
    float *plain = mix_train("shift:1", NULL, 0, false, &n, &acc_plain);
    CHECK_MSG(full && acc > 0.9, "val_acc %.3f with mixup and cutmix (%.3f without)", acc,
              acc_plain);
    CHECK(full && plain && memcmp(full, plain, sizeof(float) * n) != 0);
    const char *ck = tmp_path("mix.loomck");
    remove(ck);
    float *part = mix_train("shift:1,mixup:0.4,cutmix", ck, 7, false, &n, &acc);
    CHECK(part != NULL);
    float *resumed = mix_train("shift:1,mixup:0.4,cutmix", ck, 0, true, &n, &acc);
    CHECK(full && resumed && memcmp(full, resumed, sizeof(float) * n) == 0);
    CHECK(part && full && memcmp(part, full, sizeof(float) * n) != 0);
    free(full), free(plain), free(part), free(resumed);
}

int main(void) {
    RUN(test_mixup_by_hand);
    RUN(test_cutmix_by_hand);
    RUN(test_beta_moments);
    RUN(test_mix_loss);
    RUN(test_augment_text);
    RUN(test_mix_resume);
    return check_report();
}
