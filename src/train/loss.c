/* loss.c - softmax fused with categorical cross-entropy over logits (B, N), with optional label
 * smoothing eps: the target is q = (1 - eps) onehot(y) + eps / N, so
 * loss_b = logsumexp(z_b) - sum_k q_k z_b[k] and dL/dz = (softmax(z) - q) / B for the mean loss
 * (eps = 0: the plain loss_b = logsumexp(z_b) - z_b[y_b]). */
#include "../core/core.h"

#include <math.h>

/* log sum_k exp(z_k) of one row of N logits, computed from its largest, whose index goes to
 * *arg (the first on ties). */
static double row_lse(const float *z, int N, int *arg) {
    int a = 0;
    float zmax = z[0];
    for (int k = 1; k < N; k++)
        if (z[k] > zmax) {
            zmax = z[k];
            a = k;
        }
    double s = 0;
    for (int k = 0; k < N; k++)
        s += exp((double)z[k] - zmax);
    *arg = a;
    return zmax + log(s);
}

/* The gradient of B examples of a batch of denom (>= B) examples: dL/dz divided by denom, so
 * that the shards of a batch give the gradient of the whole batch's mean loss. */
double softmax_xent_part(const float *logits, const int *y, int B, int N, float smoothing,
                         int denom, float *dlogits, int *n_correct);
double softmax_xent_part(const float *logits, const int *y, int B, int N, float smoothing,
                         int denom, float *dlogits, int *n_correct) {
    double on = 1.0 - smoothing, off = (double)smoothing / N;
    double total = 0;
    int correct = 0;
    for (int b = 0; b < B; b++) {
        const float *z = logits + (size_t)b * N;
        int arg;
        double lse = row_lse(z, N, &arg);
        if (smoothing > 0.0f) {
            double zsum = 0;
            for (int k = 0; k < N; k++)
                zsum += z[k];
            total += lse - on * z[y[b]] - off * zsum;
        } else {
            total += lse - z[y[b]];
        }
        correct += arg == y[b];
        if (dlogits) {
            float *d = dlogits + (size_t)b * N;
            for (int k = 0; k < N; k++)
                d[k] = (float)((exp((double)z[k] - lse) - off) / denom);
            d[y[b]] -= (float)(on / denom);
        }
    }
    if (n_correct)
        *n_correct = correct;
    return total;
}

double loom_softmax_xent_smooth(const float *logits, const int *y, int B, int N, float smoothing,
                                float *dlogits, int *n_correct) {
    return softmax_xent_part(logits, y, B, N, smoothing, B, dlogits, n_correct);
}

double loom_softmax_xent(const float *logits, const int *y, int B, int N, float *dlogits,
                         int *n_correct) {
    return loom_softmax_xent_smooth(logits, y, B, N, 0.0f, dlogits, n_correct);
}

/* target q = lam q(y) + (1 - lam) q(y2) with q(.) = on onehot(.) + off, so
 * loss_b = lse - on (lam z[y] + (1 - lam) z[y2]) - off sum_k z[k]; dL/dz divided by denom as
 * softmax_xent_part's. */
double softmax_xent_mix_part(const float *logits, const int *y, const int *y2, float lam, int B,
                             int N, float smoothing, int denom, float *dlogits, int *n_correct);
double softmax_xent_mix_part(const float *logits, const int *y, const int *y2, float lam, int B,
                             int N, float smoothing, int denom, float *dlogits, int *n_correct) {
    double on = 1.0 - smoothing, off = (double)smoothing / N, a = lam, b = 1.0 - a;
    double total = 0;
    int correct = 0;
    for (int i = 0; i < B; i++) {
        const float *z = logits + (size_t)i * N;
        int arg;
        double lse = row_lse(z, N, &arg), zsum = 0;
        for (int k = 0; k < N; k++)
            zsum += z[k];
        total += lse - on * (a * z[y[i]] + b * z[y2[i]]) - off * zsum;
        correct += arg == (a >= 0.5 ? y[i] : y2[i]);
        if (dlogits) {
            float *d = dlogits + (size_t)i * N;
            for (int k = 0; k < N; k++)
                d[k] = (float)((exp((double)z[k] - lse) - off) / denom);
            d[y[i]] -= (float)(on * a / denom);
            d[y2[i]] -= (float)(on * b / denom);
        }
    }
    if (n_correct)
        *n_correct = correct;
    return total;
}

double loom_softmax_xent_mix(const float *logits, const int *y, const int *y2, float lam, int B,
                             int N, float smoothing, float *dlogits, int *n_correct) {
    return softmax_xent_mix_part(logits, y, y2, lam, B, N, smoothing, B, dlogits, n_correct);
}
