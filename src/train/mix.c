/* mix.c - mixup and cutmix of a training batch: the images mixed with a shuffled copy of the
 * batch, and the weight lam of each example's own label for the soft-target loss
 * (loom_softmax_xent_mix). x (B, H, W, C) channels-last; all draws from the caller's rng. */
#include "mix.h"

#include <math.h>

/* Gamma(a, 1) by Marsaglia and Tsang (2000); a < 1 through Gamma(a + 1) U^(1/a). */
static double gamma_draw(loom_rng *rng, double a) {
    if (a < 1.0) {
        double u = ((double)(loom_rng_next(rng) >> 11) + 1.0) * 0x1.0p-53; /* (0, 1] */
        return gamma_draw(rng, a + 1.0) * pow(u, 1.0 / a);
    }
    double d = a - 1.0 / 3.0, c = 1.0 / sqrt(9.0 * d);
    for (;;) {
        double z = loom_rng_normal(rng), v = 1.0 + c * z;
        if (v <= 0.0)
            continue;
        v = v * v * v;
        double u = ((double)(loom_rng_next(rng) >> 11) + 1.0) * 0x1.0p-53;
        if (log(u) < 0.5 * z * z + d - d * v + d * log(v))
            return d * v;
    }
}

double mix_beta(loom_rng *rng, double a) {
    double g1 = gamma_draw(rng, a), g2 = gamma_draw(rng, a);
    return g1 + g2 > 0.0 ? g1 / (g1 + g2) : 0.5;
}

void mix_cut_box(int H, int W, double lam, int cy, int cx, int *y0, int *y1, int *x0, int *x1) {
    double r = sqrt(1.0 - lam);
    int ch = (int)(H * r), cw = (int)(W * r);
    *y0 = cy - ch / 2 < 0 ? 0 : cy - ch / 2;
    *y1 = cy + (ch - ch / 2) > H ? H : cy + (ch - ch / 2);
    *x0 = cx - cw / 2 < 0 ? 0 : cx - cw / 2;
    *x1 = cx + (cw - cw / 2) > W ? W : cx + (cw - cw / 2);
}

float mix_batch(float *x, const int *y, int B, int H, int W, int C, float mixup_alpha,
                float cutmix_alpha, loom_rng *rng, int *perm, float *tmp, int *y2) {
    bool is_cut = cutmix_alpha > 0.0f;
    if (is_cut && mixup_alpha > 0.0f)
        is_cut = loom_rng_next(rng) & 1;
    double lam = mix_beta(rng, is_cut ? cutmix_alpha : mixup_alpha);
    for (int i = 0; i < B; i++)
        perm[i] = i;
    loom_shuffle_int(perm, B, rng);
    for (int i = 0; i < B; i++)
        y2[i] = y[perm[i]];
    size_t D = (size_t)H * W * C;
    memcpy(tmp, x, sizeof(float) * D * (size_t)B);
    if (!is_cut) {
        float a = (float)lam, b = 1.0f - a;
        for (int i = 0; i < B; i++) {
            const float *p = tmp + (size_t)perm[i] * D;
            float *xi = x + (size_t)i * D;
            for (size_t j = 0; j < D; j++)
                xi[j] = a * xi[j] + b * p[j];
        }
        return a;
    }
    int cy = (int)loom_rng_below(rng, (uint32_t)H), cx = (int)loom_rng_below(rng, (uint32_t)W);
    int y0, y1, x0, x1;
    mix_cut_box(H, W, lam, cy, cx, &y0, &y1, &x0, &x1);
    for (int i = 0; i < B; i++) {
        const float *p = tmp + (size_t)perm[i] * D;
        float *xi = x + (size_t)i * D;
        for (int h = y0; h < y1; h++)
            memcpy(xi + ((size_t)h * W + x0) * C, p + ((size_t)h * W + x0) * C,
                   sizeof(float) * (size_t)(x1 - x0) * C);
    }
    return (float)(1.0 - (double)(y1 - y0) * (x1 - x0) / ((double)H * W));
}
