/* loss.c - softmax fused with categorical cross-entropy over logits (B, N).
 * loss_b = logsumexp(z_b) - z_b[y_b]; dL/dz = (softmax(z) - onehot(y)) / B for the mean loss. */
#include "../core/core.h"

#include <math.h>

double loom_softmax_xent(const float *logits, const int *y, int B, int N, float *dlogits,
                         int *n_correct) {
    double total = 0;
    int correct = 0;
    for (int b = 0; b < B; b++) {
        const float *z = logits + (size_t)b * N;
        int arg = 0;
        float zmax = z[0];
        for (int k = 1; k < N; k++)
            if (z[k] > zmax) {
                zmax = z[k];
                arg = k;
            }
        double s = 0;
        for (int k = 0; k < N; k++)
            s += exp((double)z[k] - zmax);
        double lse = zmax + log(s);
        total += lse - z[y[b]];
        correct += arg == y[b];
        if (dlogits) {
            float *d = dlogits + (size_t)b * N;
            for (int k = 0; k < N; k++)
                d[k] = (float)(exp((double)z[k] - lse) / B);
            d[y[b]] -= 1.0f / (float)B;
        }
    }
    if (n_correct)
        *n_correct = correct;
    return total;
}
