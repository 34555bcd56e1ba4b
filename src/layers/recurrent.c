/* recurrent.c - rnn (Elman), lstm and gru layers with backpropagation through time.
 * Input x (B, T, N); output y (B, D*H) = the last step, or (B, T, D*H) with return-sequences;
 * D = 2 when bidirectional (forward direction's H values, then the backward direction's).
 * Per direction: W_ih (N, G*H), W_hh (H, G*H), b_ih (G*H), b_hh (G*H); G = 1, 4, 3 gates in
 * PyTorch's order (lstm i f g o, gru r z n) with PyTorch's two bias vectors. Caches are
 * time-major (T, B, .) in l->scratch. Equations: docs/derivations/recurrent.md. */
#include "layer.h"

#include <assert.h>
#include <math.h>

/* Parameter count convention: PyTorch's, two bias vectors per gate (b_ih and b_hh), so
 * rnn = H*(N+H) + 2H, lstm = 4H*(N+H) + 8H, gru = 3H*(N+H) + 6H per direction. Keras counts
 * one bias per gate for rnn/lstm (and two for gru with reset_after). Weights are stored
 * (in, G*H) as Keras does, i.e. transposed with respect to PyTorch's weight_ih / weight_hh. */

typedef enum { CELL_RNN = 0, CELL_LSTM, CELL_GRU } cell_kind;

static const char *const cell_words[] = {"rnn", "lstm", "gru"};
static const int cell_gates[] = {1, 4, 3};

typedef struct {
    cell_kind cell;
    int units;             /* H */
    bool is_sequences;     /* return-sequences: output every step */
    bool is_bidirectional; /* a second pass from t = T-1 down to 0 */
    act_kind act;          /* rnn only: ACT_TANH or ACT_RELU */
    float rdrop;           /* recurrent dropout: the rate of the mask on h_prev, 0 = off */
} rec_cfg;

/* Sizes of one call. */
typedef struct {
    int B, T, N, H, G, GH, D;
} dims;

/* One direction's parameters and gradients (views into l->w / l->dw). */
typedef struct {
    const float *Wih, *Whh; /* (N, GH), (H, GH) */
    const float *bih, *bhh; /* (GH), (GH) */
    float *dWih, *dWhh;     /* (N, GH), (H, GH) */
    float *dbih, *dbhh;     /* (GH), (GH) */
} dir_params;

/* One direction's caches in the scratch (time-major). Hidden and cell states keep one extra
 * zero slot for the initial state: the forward direction stores h_t in slot t+1 (slot 0 is
 * h_{-1} = 0), the backward direction stores h_t in slot t (slot T is h_T = 0). Either way
 * the T states h_{t-1 or t+1} read by the recurrence are contiguous: (T*B, H) from o_prev. */
typedef struct {
    float *G;   /* (T, B, GH) gate activations; backward: d(pre-activation), input side */
    float *Hs;  /* (T+1, B, H) hidden states */
    float *Cs;  /* (T+1, B, H) lstm cell states */
    float *TC;  /* (T, B, H) lstm tanh(c_t) */
    float *HN;  /* (T, B, H) gru W_hn h_prev + b_hn */
    float *dGh; /* (T, B, GH) gru d(pre-activation), hidden side; rnn/lstm: = G */
    float *HM;  /* (T+1, B, H) recurrent dropout: the masked states h_prev * mask, as Hs */
    float *M;   /* (B, H) recurrent dropout: the mask (0 or 1/(1-rate)), one per sequence */
    /* h_t is in slot t + o_out, the state it reads in slot t + o_prev */
    int o_out, o_prev;
} dir_cache;

/* The whole scratch of one call. */
typedef struct {
    float *xt;  /* (T, B, N) the input, time-major */
    float *dxt; /* (T, B, N) dL/dx, time-major (backward) */
    float *ws;  /* (B, GH) one step's recurrent product h_prev W_hh */
    float *dh;  /* (B, H) dL/dh_t carried backwards through time */
    float *dc;  /* (B, H) lstm dL/dc_t carried backwards */
    float *dt;  /* (B, H) recurrent dropout: dL/d(masked h_prev) before the mask */
    float *on;  /* recurrent dropout: on[0] = 1 when the last forward masked (training) */
    dir_cache dir[2];
} rec_scratch;

#define SCRATCH_ALIGN 16 /* floats: each buffer starts on a 64-byte boundary */
#define SCRATCH_PAD (32 * SCRATCH_ALIGN)

static size_t align_up(size_t n) { return (n + SCRATCH_ALIGN - 1) & ~(size_t)(SCRATCH_ALIGN - 1); }

static float *take(float **p, size_t n) {
    float *r = *p;
    *p += align_up(n);
    return r;
}

static dims dims_of(const layer *l, int B) {
    const rec_cfg *c = l->cfg;
    dims d = {
        B, l->in.d[0], l->in.d[1], c->units, cell_gates[c->cell], 0, c->is_bidirectional ? 2 : 1};
    d.GH = d.G * d.H;
    return d;
}

/* Floats per example of everything carve() lays out (without the alignment padding). */
static size_t scratch_per_example(const rec_cfg *c, dims d) {
    size_t T = (size_t)d.T, H = (size_t)d.H, GH = (size_t)d.GH;
    size_t per_dir = T * GH + (T + 1) * H;
    if (c->cell == CELL_LSTM)
        per_dir += (T + 1) * H + T * H;
    if (c->cell == CELL_GRU)
        per_dir += T * H + T * GH;
    if (c->rdrop > 0.0f)
        per_dir += (T + 1) * H + H;
    return 2 * T * (size_t)d.N + GH + (c->rdrop > 0.0f ? 3 : 2) * H + (size_t)d.D * per_dir;
}

static rec_scratch carve(const layer *l, dims d) {
    const rec_cfg *c = l->cfg;
    size_t B = (size_t)d.B, T = (size_t)d.T, H = (size_t)d.H, GH = (size_t)d.GH;
    float *p = l->scratch;
    rec_scratch s = {0};
    if (c->rdrop > 0.0f)
        s.on = take(&p, 1);
    s.xt = take(&p, T * B * (size_t)d.N);
    s.dxt = take(&p, T * B * (size_t)d.N);
    s.ws = take(&p, B * GH);
    s.dh = take(&p, B * H);
    s.dc = take(&p, B * H);
    if (c->rdrop > 0.0f)
        s.dt = take(&p, B * H);
    for (int k = 0; k < d.D; k++) {
        dir_cache *dk = &s.dir[k];
        dk->G = take(&p, T * B * GH);
        dk->Hs = take(&p, (T + 1) * B * H);
        if (c->cell == CELL_LSTM) {
            dk->Cs = take(&p, (T + 1) * B * H);
            dk->TC = take(&p, T * B * H);
        }
        if (c->cell == CELL_GRU) {
            dk->HN = take(&p, T * B * H);
            dk->dGh = take(&p, T * B * GH);
        } else {
            dk->dGh = dk->G;
        }
        if (c->rdrop > 0.0f) {
            dk->HM = take(&p, (T + 1) * B * H);
            dk->M = take(&p, B * H);
        }
        dk->o_out = k == 0 ? 1 : 0;
        dk->o_prev = k == 0 ? 0 : 1;
    }
    assert((size_t)(p - l->scratch) <=
           scratch_per_example(c, d) * (size_t)d.B + l->scratch_fixed); /* sized by rec_init */
    return s;
}

static dir_params params_of(const layer *l, dims d, int k) {
    size_t N = (size_t)d.N, H = (size_t)d.H, GH = (size_t)d.GH;
    size_t P = GH * (N + H) + 2 * GH, o = (size_t)k * P;
    dir_params p;
    p.Wih = l->w + o;
    p.Whh = p.Wih + N * GH;
    p.bih = p.Whh + H * GH;
    p.bhh = p.bih + GH;
    p.dWih = l->dw + o;
    p.dWhh = p.dWih + N * GH;
    p.dbih = p.dWhh + H * GH;
    p.dbhh = p.dbih + GH;
    return p;
}

/* ---- init ---- */

static loom_status rec_init(layer *l, loom_error *err) {
    rec_cfg *c = l->cfg;
    const char *word = cell_words[c->cell];
    if (l->in.rank != 2) {
        char s[64];
        shape_format(l->in, s, sizeof s);
        return loom_error_set(err, LOOM_ERR_SHAPE,
                              "%s %d: input is %s, expected a sequence (T, N); put 'rows' or "
                              "'columns' before it",
                              word, c->units, s);
    }
    dims d = dims_of(l, 1);
    size_t N = (size_t)d.N, H = (size_t)d.H, GH = (size_t)d.GH;
    size_t P = GH * (N + H) + 2 * GH; /* one direction */
    l->out = c->is_sequences ? shape2(d.T, d.D * d.H) : shape1(d.D * d.H);
    l->n_params = (size_t)d.D * P;
    l->n_groups = 0;
    for (int k = 0; k < d.D; k++) {
        size_t o = (size_t)k * P;
        l->groups[l->n_groups++] = (param_group){o, N * GH, GROUP_WEIGHT, d.N, d.GH};
        l->groups[l->n_groups++] = (param_group){o + N * GH, H * GH, GROUP_RECURRENT, d.H, d.GH};
        l->groups[l->n_groups++] = (param_group){o + (N + H) * GH, GH, GROUP_BIAS, d.N, d.GH};
        l->groups[l->n_groups++] = (param_group){o + (N + H + 1) * GH, GH, GROUP_BIAS, d.N, d.GH};
    }
    l->scratch_per_example = scratch_per_example(c, d);
    l->scratch_fixed = SCRATCH_PAD + (c->rdrop > 0.0f ? SCRATCH_ALIGN : 0); /* + the flag */
    /* products 2*T*GH*(N+H) plus about 6 elementwise operations per gate value */
    l->flops = (double)d.D * d.T * ((double)2 * GH * (N + H) + 6.0 * GH);
    return LOOM_OK;
}

/* Input weights Glorot-uniform over (N, G*H), recurrent weights orthogonal (H, G*H), biases 0,
 * lstm forget-gate bias 1 in b_ih only (so b_ih + b_hh starts at 1 as in Keras). */
static void rec_init_params(layer *l, loom_rng *rng) {
    const rec_cfg *c = l->cfg;
    dims d = dims_of(l, 1);
    size_t N = (size_t)d.N, H = (size_t)d.H, GH = (size_t)d.GH;
    for (int k = 0; k < d.D; k++) {
        float *Wih = l->w + (size_t)k * (GH * (N + H) + 2 * GH); /* (N, GH) */
        float *Whh = Wih + N * GH;                               /* (H, GH) */
        float *b = Whh + H * GH;                                 /* b_ih then b_hh (2*GH) */
        init_glorot_uniform(Wih, N * GH, d.N, d.GH, rng);
        init_orthogonal(Whh, d.H, d.GH, rng);
        memset(b, 0, sizeof(float) * 2 * GH);
        if (c->cell == CELL_LSTM)
            for (int j = 0; j < d.H; j++)
                b[d.H + j] = 1.0f;
    }
}

/* ---- elementwise cells over rows [lo, hi) of one step ---- */

/* The gate functions are written without library calls so that the gate loops vectorise.
 * exp_gate: e^x by Cephes' expf polynomial on x = n ln2 + r, |r| <= ln2/2, with 2^n built in
 * the exponent bits (relative error about 2e-7); the input is clamped to [-87, 88] (gates
 * saturate long before) and NaN propagates. */
static inline float exp_gate(float x) {
    x = x < -87.0f ? -87.0f : x;
    x = x > 88.0f ? 88.0f : x;
    const float shift = 12582912.0f + 127.0f;   /* 1.5 * 2^23 + the exponent bias */
    float t = x * 1.44269504088896341f + shift; /* rounds: mantissa low bits = n + 127 */
    float n = t - shift;
    float r = x - n * 0.693359375f + n * 2.12194440e-4f; /* x - n ln2 in two parts */
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    union {
        float f;
        uint32_t u;
    } v = {.f = t};
    v.u <<= 23; /* 2^n */
    return p * v.f;
}

static inline float sigm(float x) { return 1.0f / (1.0f + exp_gate(-x)); }

/* tanh: Cephes' odd polynomial for |x| < 0.625, else 1 - 2 / (e^{2|x|} + 1) with the sign of x;
 * relative error a few 1e-7. */
static inline float tanh_gate(float x) {
    float a = fabsf(x), z = x * x;
    float p = -5.70498872745e-3f;
    p = p * z + 2.06390887954e-2f;
    p = p * z - 5.37397155531e-2f;
    p = p * z + 1.33314422036e-1f;
    p = p * z - 3.33332819422e-1f;
    float small = p * z * x + x;
    float big = 1.0f - 2.0f / (exp_gate(2.0f * a) + 1.0f);
    big = x < 0.0f ? -big : big;
    return a < 0.625f ? small : big;
}

/* a = x W_ih + b_ih + h_prev W_hh + b_hh; h = f(a). G is not kept: f' follows from h. */
static void rnn_step_fwd(act_kind act, int H, const float *Gt, const float *ws, const float *bih,
                         const float *bhh, float *h, int lo, int hi) {
    for (int b = lo; b < hi; b++) {
        const float *g = Gt + (size_t)b * H, *w = ws + (size_t)b * H;
        float *hb = h + (size_t)b * H;
        if (act == ACT_RELU) {
#pragma omp simd
            for (int j = 0; j < H; j++) {
                float a = g[j] + w[j] + bih[j] + bhh[j];
                hb[j] = a > 0.0f ? a : 0.0f;
            }
        } else {
#pragma omp simd
            for (int j = 0; j < H; j++)
                hb[j] = tanh_gate(g[j] + w[j] + bih[j] + bhh[j]);
        }
    }
}

/* i f g o = sigm, sigm, tanh, sigm of (x W_ih + b_ih + h_prev W_hh + b_hh);
 * c = f c_prev + i g; h = o tanh(c). Gt keeps the four activations. */
static void lstm_step_fwd(int H, float *Gt, const float *ws, const float *bih, const float *bhh,
                          const float *cprev, float *c, float *tc, float *h, int lo, int hi) {
    size_t GH = 4 * (size_t)H;
    for (int b = lo; b < hi; b++) {
        float *g = Gt + (size_t)b * GH;
        const float *w = ws + (size_t)b * GH;
        size_t r = (size_t)b * H;
#pragma omp simd
        for (int j = 0; j < H; j++) {
            float gi = sigm(g[j] + w[j] + bih[j] + bhh[j]);
            float gf = sigm(g[H + j] + w[H + j] + bih[H + j] + bhh[H + j]);
            float gg = tanh_gate(g[2 * H + j] + w[2 * H + j] + bih[2 * H + j] + bhh[2 * H + j]);
            float go = sigm(g[3 * H + j] + w[3 * H + j] + bih[3 * H + j] + bhh[3 * H + j]);
            float cn = gf * cprev[r + j] + gi * gg, t = tanh_gate(cn);
            g[j] = gi;
            g[H + j] = gf;
            g[2 * H + j] = gg;
            g[3 * H + j] = go;
            c[r + j] = cn;
            tc[r + j] = t;
            h[r + j] = go * t;
        }
    }
}

/* r z = sigm(x W_i + b_i + h_prev W_h + b_h); hn = h_prev W_hn + b_hn;
 * n = tanh(x W_in + b_in + r hn); h = (1 - z) n + z h_prev. Gt keeps r z n, HN keeps hn. */
static void gru_step_fwd(int H, float *Gt, const float *ws, const float *bih, const float *bhh,
                         const float *hprev, float *hn, float *h, int lo, int hi) {
    size_t GH = 3 * (size_t)H;
    for (int b = lo; b < hi; b++) {
        float *g = Gt + (size_t)b * GH;
        const float *w = ws + (size_t)b * GH;
        size_t r = (size_t)b * H;
#pragma omp simd
        for (int j = 0; j < H; j++) {
            float gr = sigm(g[j] + w[j] + bih[j] + bhh[j]);
            float gz = sigm(g[H + j] + w[H + j] + bih[H + j] + bhh[H + j]);
            float hh = w[2 * H + j] + bhh[2 * H + j];
            float gn = tanh_gate(g[2 * H + j] + bih[2 * H + j] + gr * hh);
            g[j] = gr;
            g[H + j] = gz;
            g[2 * H + j] = gn;
            hn[r + j] = hh;
            h[r + j] = (1.0f - gz) * gn + gz * hprev[r + j];
        }
    }
}

/* Backward of one step over rows [lo, hi). On entry dh holds dL/dh_t (carried + output);
 * Gt is overwritten with d(pre-activation) (docs/derivations/recurrent.md, "RNN"). */
static void rnn_step_bwd(act_kind act, int H, float *Gt, const float *h, const float *dh, int lo,
                         int hi) {
    for (int b = lo; b < hi; b++) {
        float *g = Gt + (size_t)b * H;
        const float *hb = h + (size_t)b * H, *d = dh + (size_t)b * H;
        if (act == ACT_RELU) {
#pragma omp simd
            for (int j = 0; j < H; j++)
                g[j] = hb[j] > 0.0f ? d[j] : 0.0f;
        } else {
#pragma omp simd
            for (int j = 0; j < H; j++)
                g[j] = d[j] * (1.0f - hb[j] * hb[j]);
        }
    }
}

/* docs/derivations/recurrent.md, "LSTM": dc = dc_carry + dh o (1 - tanh^2 c);
 * da_i = dc g i(1-i); da_f = dc c_prev f(1-f); da_g = dc i (1-g^2); da_o = dh tanh(c) o(1-o);
 * the carried dc becomes dc f. */
static void lstm_step_bwd(int H, float *Gt, const float *cprev, const float *tc, const float *dh,
                          float *dc, int lo, int hi) {
    size_t GH = 4 * (size_t)H;
    for (int b = lo; b < hi; b++) {
        float *g = Gt + (size_t)b * GH;
        size_t r = (size_t)b * H;
#pragma omp simd
        for (int j = 0; j < H; j++) {
            float gi = g[j], gf = g[H + j], gg = g[2 * H + j], go = g[3 * H + j];
            float t = tc[r + j], d = dh[r + j];
            float dcn = dc[r + j] + d * go * (1.0f - t * t);
            g[j] = dcn * gg * gi * (1.0f - gi);
            g[H + j] = dcn * cprev[r + j] * gf * (1.0f - gf);
            g[2 * H + j] = dcn * gi * (1.0f - gg * gg);
            g[3 * H + j] = d * t * go * (1.0f - go);
            dc[r + j] = dcn * gf;
        }
    }
}

/* docs/derivations/recurrent.md, "GRU": da_n = dh (1-z)(1-n^2); da_z = dh (h_prev - n) z(1-z);
 * da_r = da_n hn r(1-r); input side (da_r, da_z, da_n), hidden side (da_r, da_z, da_n r);
 * dh keeps the direct term dh z (the product with W_hh^T is added afterwards). */
static void gru_step_bwd(int H, float *Gt, float *Ght, const float *hprev, const float *hn,
                         float *dh, int lo, int hi) {
    size_t GH = 3 * (size_t)H;
    for (int b = lo; b < hi; b++) {
        float *g = Gt + (size_t)b * GH, *gh = Ght + (size_t)b * GH;
        size_t r = (size_t)b * H;
#pragma omp simd
        for (int j = 0; j < H; j++) {
            float gr = g[j], gz = g[H + j], gn = g[2 * H + j], d = dh[r + j];
            float dan = d * (1.0f - gz) * (1.0f - gn * gn);
            float dar = dan * hn[r + j] * gr * (1.0f - gr);
            float daz = d * (hprev[r + j] - gn) * gz * (1.0f - gz);
            g[j] = gh[j] = dar;
            g[H + j] = gh[H + j] = daz;
            g[2 * H + j] = dan;
            gh[2 * H + j] = dan * gr;
            dh[r + j] = d * gz;
        }
    }
}

/* ---- the recurrence ---- */

/* Fixed chunks of batch rows for one step (a product then the gates); the chunking depends on
 * the sizes only, never on the thread count. */
static int step_chunks(dims d) {
    long work = 2L * d.H * d.GH + 30L * d.GH; /* per row */
    long min_rows = 1000000L / work;
    if (min_rows < 8)
        min_rows = 8;
    int nc = par_n_chunks(d.B, min_rows);
    return nc > 16 ? 16 : nc;
}

/* Recurrent dropout (Gal and Ghahramani's variational dropout, as Keras's recurrent_dropout):
 * in training, each sequence draws one mask over the H units per direction and the recurrence
 * reads h_prev * mask, so ws = (h_prev * mask) W_hh; the cell's other uses of h_prev (the
 * gru's blend) see it unmasked. Backward: dW_hh takes the masked states, and the gradient
 * through the product, dG_h W_hh^T, is multiplied by the mask before it joins dh_prev. */
static void rdrop_masks(const rec_cfg *c, dims d, rec_scratch *s, loom_rng *rng) {
    /* kept with probability thresh / 65536 (16-bit uniforms), scaled by its inverse so that the
     * mask's mean is exactly 1 even for rates near 1 */
    uint32_t thresh = (uint32_t)lroundf((1.0f - c->rdrop) * 65536.0f);
    float scale = thresh ? 65536.0f / (float)thresh : 0.0f;
    loom_rng r;
    loom_rng_seed(&r, loom_rng_next(rng)); /* one draw of the model's stream per call */
    size_t n = (size_t)d.B * d.H;
    for (int k = 0; k < d.D; k++)
        for (size_t i = 0; i < n; i += 4) {
            uint64_t bits = loom_rng_next(&r);
            for (size_t j = 0; j < 4 && i + j < n; j++)
                s->dir[k].M[i + j] =
                    (uint32_t)((bits >> (16 * j)) & 0xffff) < thresh ? scale : 0.0f;
        }
}

/* One direction's pass, for its row chunks (par_for). */
typedef struct {
    const rec_cfg *c;
    dims d;
    const dir_params *p;
    dir_cache *k;
    const rec_scratch *s; /* backward */
    const float *dy;      /* backward */
    float *ws;            /* forward: (B, GH) the recurrent products of the step */
    int k_dir;            /* backward: 0 forward direction, 1 reverse */
    bool is_reverse, is_masked;
    bool is_fixed; /* forward at inference: products by gemm_fixed (the same bits for any batch) */
} dir_job;

/* Rows [lo, hi) of the batch through every step of one direction's forward pass. */
static void dir_forward_rows(void *ctx, long lo_, long hi_, int ch) {
    (void)ch;
    const dir_job *jb = ctx;
    const rec_cfg *c = jb->c;
    const dir_params *p = jb->p;
    dir_cache *k = jb->k;
    float *ws = jb->ws;
    bool is_reverse = jb->is_reverse, is_masked = jb->is_masked;
    int lo = (int)lo_, hi = (int)hi_, T = jb->d.T, H = jb->d.H, GH = jb->d.GH;
    size_t BH = (size_t)jb->d.B * H, BGH = (size_t)jb->d.B * GH;
    for (int s = 0; s < T; s++) {
        int t = is_reverse ? T - 1 - s : s;
        const float *hprev = k->Hs + (t + k->o_prev) * BH;
        float *h = k->Hs + (t + k->o_out) * BH;
        float *Gt = k->G + t * BGH;
        /* ws (rows, GH) = h_prev (rows, H) W_hh (H, GH); zero at the first step */
        if (s == 0) {
            memset(ws + (size_t)lo * GH, 0, sizeof(float) * (size_t)(hi - lo) * GH);
        } else if (is_masked) {
            float *hm = k->HM + (t + k->o_prev) * BH;
            for (size_t i = (size_t)lo * H; i < (size_t)hi * H; i++)
                hm[i] = hprev[i] * k->M[i];
            gemm(false, false, hi - lo, GH, H, 1.0f, hm + (size_t)lo * H, H, p->Whh, GH, 0.0f,
                 ws + (size_t)lo * GH, GH);
        } else if (jb->is_fixed) {
            memset(ws + (size_t)lo * GH, 0, sizeof(float) * (size_t)(hi - lo) * GH);
            gemm_fixed(hi - lo, GH, H, hprev + (size_t)lo * H, H, p->Whh, GH, ws + (size_t)lo * GH,
                       GH);
        } else {
            gemm(false, false, hi - lo, GH, H, 1.0f, hprev + (size_t)lo * H, H, p->Whh, GH, 0.0f,
                 ws + (size_t)lo * GH, GH);
        }
        switch (c->cell) {
        case CELL_RNN: rnn_step_fwd(c->act, H, Gt, ws, p->bih, p->bhh, h, lo, hi); break;
        case CELL_LSTM:
            lstm_step_fwd(H, Gt, ws, p->bih, p->bhh, k->Cs + (t + k->o_prev) * BH,
                          k->Cs + (t + k->o_out) * BH, k->TC + t * BH, h, lo, hi);
            break;
        case CELL_GRU:
            gru_step_fwd(H, Gt, ws, p->bih, p->bhh, hprev, k->HN + t * BH, h, lo, hi);
            break;
        }
    }
}

static void dir_forward(const rec_cfg *c, dims d, const dir_params *p, dir_cache *k,
                        const float *xt, float *ws, bool is_reverse, bool is_masked,
                        bool is_fixed) {
    int B = d.B, T = d.T, H = d.H, GH = d.GH;
    size_t BH = (size_t)B * H;
    /* G (T*B, GH) = xt (T*B, N) W_ih (N, GH): every step's input projection at once */
    if (is_fixed) {
        memset(k->G, 0, sizeof(float) * (size_t)T * B * GH);
        gemm_fixed(T * B, GH, d.N, xt, d.N, p->Wih, GH, k->G, GH);
    } else {
        gemm_par(false, false, T * B, GH, d.N, 1.0f, xt, d.N, p->Wih, GH, 0.0f, k->G, GH);
    }
    int zero = is_reverse ? T : 0; /* the initial-state slot */
    memset(k->Hs + zero * BH, 0, sizeof(float) * BH);
    if (is_masked)
        memset(k->HM + zero * BH, 0, sizeof(float) * BH);
    if (c->cell == CELL_LSTM)
        memset(k->Cs + zero * BH, 0, sizeof(float) * BH);
    /* Rows of the batch never meet in the recurrence: each fixed chunk of rows runs through
     * every step on its own, one parallel region per direction rather than one per step. */
    dir_job j = {.c = c,
                 .d = d,
                 .p = p,
                 .k = k,
                 .ws = ws,
                 .is_reverse = is_reverse,
                 .is_masked = is_masked,
                 .is_fixed = is_fixed};
    par_for(B, step_chunks(d), dir_forward_rows, &j);
}

static void rec_forward(layer *l, const fwd_ctx *ctx, const float *x, float *y, int B) {
    const rec_cfg *c = l->cfg;
    dims d = dims_of(l, B);
    rec_scratch s = carve(l, d);
    bool is_masked = c->rdrop > 0.0f && ctx->is_training;
    if (is_masked)
        rdrop_masks(c, d, &s, ctx->rng);
    if (s.on) /* what backward must undo: the masked recurrence, or the plain one */
        s.on[0] = is_masked ? 1.0f : 0.0f;
    int T = d.T, N = d.N, H = d.H, DH = d.D * d.H;
    size_t BH = (size_t)B * H;
    /* xt (T, B, N) from x (B, T, N) */
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++)
            memcpy(s.xt + ((size_t)t * B + b) * N, x + ((size_t)b * T + t) * N, sizeof(float) * N);
    for (int k = 0; k < d.D; k++) {
        dir_params p = params_of(l, d, k);
        dir_cache *dk = &s.dir[k];
        dir_forward(c, d, &p, dk, s.xt, s.ws, k == 1, is_masked, !ctx->is_training);
        /* y (B, T, DH) or (B, DH): this direction's H columns */
        if (c->is_sequences) {
            for (int b = 0; b < B; b++)
                for (int t = 0; t < T; t++)
                    memcpy(y + ((size_t)b * T + t) * DH + (size_t)k * H,
                           dk->Hs + (t + dk->o_out) * BH + (size_t)b * H, sizeof(float) * H);
        } else {
            int t_last = k == 1 ? 0 : T - 1;
            for (int b = 0; b < B; b++)
                memcpy(y + (size_t)b * DH + (size_t)k * H,
                       dk->Hs + (t_last + dk->o_out) * BH + (size_t)b * H, sizeof(float) * H);
        }
    }
}

/* A gemm_tn_acc's product, for its column chunks. */
typedef struct {
    int M, K, lda, ldb, ldc;
    const float *A, *Bm;
    float *C;
} tn_acc;

/* Columns [lo, hi) of C += A^T B. */
static void tn_acc_cols(void *ctx, long lo, long hi, int ch) {
    (void)ch;
    const tn_acc *g = ctx;
    gemm(true, false, g->M, (int)(hi - lo), g->K, 1.0f, g->A, g->lda, g->Bm + lo, g->ldb, 1.0f,
         g->C + lo, g->ldc);
}

/* C (M, Nc) += A^T B with A (K, M), B (K, Nc): the reduction over K stays inside one product
 * per fixed chunk of C's columns, so the result does not depend on the thread count. */
static void gemm_tn_acc(int M, int Nc, int K, const float *A, int lda, const float *Bm, int ldb,
                        float *C, int ldc) {
    long work_per_col = 2L * M * K;
    long min_cols = 2000000L / (work_per_col > 0 ? work_per_col : 1);
    if (min_cols < 32)
        min_cols = 32;
    int nc = par_n_chunks(Nc, min_cols);
    tn_acc g = {.M = M, .K = K, .lda = lda, .ldb = ldb, .ldc = ldc, .A = A, .Bm = Bm, .C = C};
    par_for(Nc, nc > 16 ? 16 : nc, tn_acc_cols, &g);
}

/* Rows [lo, hi) of the batch back through every step of one direction, last step first. */
static void dir_backward_rows(void *ctx, long lo_, long hi_, int ch) {
    (void)ch;
    const dir_job *jb = ctx;
    const rec_cfg *c = jb->c;
    const dir_params *p = jb->p;
    dir_cache *k = jb->k;
    const rec_scratch *s = jb->s;
    const float *dy = jb->dy;
    bool is_reverse = jb->is_reverse, is_masked = jb->is_masked;
    int lo = (int)lo_, hi = (int)hi_, k_dir = jb->k_dir;
    int T = jb->d.T, H = jb->d.H, GH = jb->d.GH, DH = jb->d.D * jb->d.H;
    size_t BH = (size_t)jb->d.B * H, BGH = (size_t)jb->d.B * GH;
    float *dh = s->dh, *dc = s->dc; /* (B, H) each */
    int t_last = is_reverse ? 0 : T - 1;
    for (int s_i = T - 1; s_i >= 0; s_i--) {
        int t = is_reverse ? T - 1 - s_i : s_i;
        /* this step's share of dy: rows of (B, T, DH) or (B, DH), columns k_dir*H.. */
        const float *dyt = NULL;
        size_t dy_stride = 0;
        if (c->is_sequences) {
            dyt = dy + (size_t)t * DH + (size_t)k_dir * H;
            dy_stride = (size_t)T * DH;
        } else if (t == t_last) {
            dyt = dy + (size_t)k_dir * H;
            dy_stride = (size_t)DH;
        }
        float *Gt = k->G + t * BGH, *Ght = k->dGh + t * BGH;
        const float *hprev = k->Hs + (t + k->o_prev) * BH;
        if (dyt)
            for (int b = lo; b < hi; b++) {
                const float *e = dyt + b * dy_stride;
                float *dhb = dh + (size_t)b * H;
#pragma omp simd
                for (int j = 0; j < H; j++)
                    dhb[j] += e[j];
            }
        float beta = 0.0f;
        switch (c->cell) {
        case CELL_RNN: rnn_step_bwd(c->act, H, Gt, k->Hs + (t + k->o_out) * BH, dh, lo, hi); break;
        case CELL_LSTM:
            lstm_step_bwd(H, Gt, k->Cs + (t + k->o_prev) * BH, k->TC + t * BH, dh, dc, lo, hi);
            break;
        case CELL_GRU:
            gru_step_bwd(H, Gt, Ght, hprev, k->HN + t * BH, dh, lo, hi);
            beta = 1.0f;
            break;
        }
        /* dh_prev (rows, H) (+)= dG_h (rows, GH) W_hh^T (GH, H); the initial state is
         * constant, so the first step needs none. With recurrent dropout the product is
         * masked first (into dt), then set or added. */
        if (s_i > 0 && !is_masked)
            gemm(false, true, hi - lo, H, GH, 1.0f, Ght + (size_t)lo * GH, GH, p->Whh, GH, beta,
                 dh + (size_t)lo * H, H);
        else if (s_i > 0) {
            gemm(false, true, hi - lo, H, GH, 1.0f, Ght + (size_t)lo * GH, GH, p->Whh, GH, 0.0f,
                 s->dt + (size_t)lo * H, H);
            if (beta == 0.0f)
                for (size_t i = (size_t)lo * H; i < (size_t)hi * H; i++)
                    dh[i] = s->dt[i] * k->M[i];
            else
                for (size_t i = (size_t)lo * H; i < (size_t)hi * H; i++)
                    dh[i] += s->dt[i] * k->M[i];
        }
    }
}

/* Backward through time of one direction (docs/derivations/recurrent.md, "Backward through
 * time"): steps in reverse order of the forward pass, then the weight gradients as products
 * over all steps: dW_ih += xt^T dG, dW_hh += H_prev^T dG_h, db_ih += sum dG, db_hh += sum dG_h,
 * and dxt (+)= dG W_ih^T. */
static void dir_backward(const rec_cfg *c, dims d, const dir_params *p, dir_cache *k,
                         const rec_scratch *s, const float *dy, int k_dir, bool has_dx) {
    bool is_masked = s->on && s->on[0] != 0.0f; /* the last forward was a masked (training) one */
    bool is_reverse = k_dir == 1;
    int B = d.B, T = d.T, H = d.H, GH = d.GH;
    size_t BH = (size_t)B * H;
    memset(s->dh, 0, sizeof(float) * BH);
    if (c->cell == CELL_LSTM)
        memset(s->dc, 0, sizeof(float) * BH);
    dir_job job = {.c = c,
                   .d = d,
                   .p = p,
                   .k = k,
                   .s = s,
                   .dy = dy,
                   .k_dir = k_dir,
                   .is_reverse = is_reverse,
                   .is_masked = is_masked};
    par_for(B, step_chunks(d), dir_backward_rows, &job);
    int TB = T * B;
    /* (T*B, H): the states the recurrent product read (masked with recurrent dropout) */
    const float *Hprev = (is_masked ? k->HM : k->Hs) + (size_t)k->o_prev * BH;
    for (int r = 0; r < TB; r++) {
        const float *g = k->G + (size_t)r * GH, *gh = k->dGh + (size_t)r * GH;
#pragma omp simd
        for (int j = 0; j < GH; j++) {
            p->dbih[j] += g[j];
            p->dbhh[j] += gh[j];
        }
    }
    gemm_tn_acc(d.N, GH, TB, s->xt, d.N, k->G, GH, p->dWih, GH);
    gemm_tn_acc(H, GH, TB, Hprev, H, k->dGh, GH, p->dWhh, GH);
    if (has_dx)
        gemm_par(false, true, TB, d.N, GH, 1.0f, k->G, GH, p->Wih, GH, k_dir == 0 ? 0.0f : 1.0f,
                 s->dxt, d.N);
}

static void rec_backward(layer *l, const float *x, const float *y, float *dy, float *dx, int B) {
    (void)x, (void)y;
    const rec_cfg *c = l->cfg;
    dims d = dims_of(l, B);
    rec_scratch s = carve(l, d);
    for (int k = 0; k < d.D; k++) {
        dir_params p = params_of(l, d, k);
        dir_backward(c, d, &p, &s.dir[k], &s, dy, k, dx != NULL);
    }
    if (!dx)
        return;
    /* dx (B, T, N) from dxt (T, B, N) */
    int T = d.T, N = d.N;
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++)
            memcpy(dx + ((size_t)b * T + t) * N, s.dxt + ((size_t)t * B + b) * N,
                   sizeof(float) * N);
}

static void rec_describe(const layer *l, char *buf, size_t n) {
    const rec_cfg *c = l->cfg;
    int len = snprintf(buf, n, "%s %d%s%s%s", cell_words[c->cell], c->units,
                       c->is_sequences ? " return-sequences" : "",
                       c->is_bidirectional ? " bidirectional" : "",
                       c->cell == CELL_RNN && c->act == ACT_RELU ? " activation relu" : "");
    if (c->rdrop > 0.0f && len >= 0 && (size_t)len < n) { /* digits enough to read back */
        char r[32];
        float_text(c->rdrop, r, sizeof r);
        snprintf(buf + len, n - (size_t)len, " recurrent-dropout %s", r);
    }
}

static void rec_lower(const layer *l, layer_lowering *out) {
    const rec_cfg *c = l->cfg;
    static const lower_kind kinds[] = {LOWER_RNN, LOWER_LSTM, LOWER_GRU};
    *out = (layer_lowering){.kind = kinds[c->cell],
                            .act = c->act,
                            .units = c->units,
                            .is_sequences = c->is_sequences,
                            .is_bidirectional = c->is_bidirectional};
}

static const layer_ops rec_ops = {
    .kind = "recurrent",
    .init = rec_init,
    .init_params = rec_init_params,
    .forward = rec_forward,
    .backward = rec_backward,
    .describe = rec_describe,
    .lower = rec_lower,
};

/* rnn H [return-sequences] [bidirectional] [activation tanh|relu] [recurrent-dropout R]
 * lstm H [return-sequences] [bidirectional] [recurrent-dropout R]; gru likewise */
loom_status recurrent_parse(layer *l, int argc, char **argv, loom_error *err);
loom_status recurrent_parse(layer *l, int argc, char **argv, loom_error *err) {
    rec_cfg c = {.act = ACT_TANH};
    int kind = 0;
    while (kind < 3 && strcmp(argv[0], cell_words[kind]) != 0)
        kind++;
    if (kind == 3)
        return loom_error_set(err, LOOM_ERR_FORMAT, "unknown recurrent layer '%s'", argv[0]);
    c.cell = (cell_kind)kind;
    if (argc < 2 || !parse_int(argv[1], &c.units) || c.units < 1 || c.units > 65536)
        return loom_error_set(err, LOOM_ERR_FORMAT,
                              "%s: expected a number of units in [1, 65536], found '%s'", argv[0],
                              argc < 2 ? "" : argv[1]);
    for (int i = 2; i < argc; i++) {
        const char *w = argv[i];
        if (strcmp(w, "return-sequences") == 0 || strcmp(w, "return_sequences") == 0) {
            c.is_sequences = true;
        } else if (strcmp(w, "bidirectional") == 0) {
            c.is_bidirectional = true;
        } else if (strcmp(w, "recurrent-dropout") == 0 || strcmp(w, "recurrent_dropout") == 0) {
            /* checked as the float it is kept as: 0.99999999 would round to 1 */
            if (i + 1 >= argc || !parse_float(argv[i + 1], &c.rdrop) ||
                !(c.rdrop >= 0.0f && c.rdrop < 1.0f))
                return loom_error_set(err, LOOM_ERR_FORMAT,
                                      "%s: recurrent-dropout must be a rate in [0, 1), found '%s'",
                                      argv[0], i + 1 < argc ? argv[i + 1] : "");
            i++;
        } else if (strcmp(w, "activation") == 0 && c.cell == CELL_RNN) {
            if (i + 1 >= argc || !act_parse(argv[i + 1], &c.act) ||
                (c.act != ACT_TANH && c.act != ACT_RELU))
                return loom_error_set(err, LOOM_ERR_FORMAT,
                                      "rnn: activation must be tanh or relu, found '%s'",
                                      i + 1 < argc ? argv[i + 1] : "");
            i++;
        } else {
            return loom_error_set(err, LOOM_ERR_FORMAT, "%s: unexpected word '%s'", argv[0], w);
        }
    }
    rec_cfg *p = malloc(sizeof *p);
    if (!p)
        return loom_error_set(err, LOOM_ERR_NOMEM, "%s: out of memory", argv[0]);
    *p = c;
    l->ops = &rec_ops;
    l->cfg = p;
    return LOOM_OK;
}
