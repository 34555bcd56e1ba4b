/* mix.h - mixup and cutmix of a training batch (mix.c), internal to src/train/ (and its tests).
 * x (B, H, W, C) channels-last. */
#ifndef LOOM_MIX_H
#define LOOM_MIX_H

#include "../core/core.h"

/* A draw of Beta(a, a), a > 0, from rng (two gamma variates, Marsaglia and Tsang). */
double mix_beta(loom_rng *rng, double a);

/* Mixes the batch x (B, H, W, C) with a shuffled copy of itself, in place: mixup (Zhang et al.
 * 2018: x_i = lam x_i + (1 - lam) x_perm(i), lam ~ Beta(mixup_alpha, mixup_alpha)) or cutmix
 * (Yun et al. 2019: a box of about (1 - lam) of the image, centred at a uniform pixel and
 * clipped to the image, copied from x_perm(i); lam becomes the part left uncovered). With both
 * on, one draw picks either per batch. The draws, from rng in a fixed order: the choice (both
 * on), lam, the permutation, the box's centre (cutmix). y2 (B) receives y[perm[i]]; perm (B) and
 * tmp (B, H, W, C) are workspace. Returns lam, the weight of each example's own label. */
float mix_batch(float *x, const int *y, int B, int H, int W, int C, float mixup_alpha,
                float cutmix_alpha, loom_rng *rng, int *perm, float *tmp, int *y2);

/* The cutmix box for lam on an H x W image centred at (cy, cx): rows [*y0, *y1), columns
 * [*x0, *x1), sides floor(H sqrt(1 - lam)) and floor(W sqrt(1 - lam)) clipped to the image. */
void mix_cut_box(int H, int W, double lam, int cy, int cx, int *y0, int *y1, int *x0, int *x1);

#endif
