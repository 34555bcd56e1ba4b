/* onnx_import_layers.c - the ONNX import's ops that change layouts (Transpose, Reshape, Flatten,
 * Squeeze, Gather) or carry numbers (Conv, pools, BatchNormalization, Gemm/MatMul, Sub/Div,
 * RNN/LSTM/GRU): each maps ONNX's layout of its weights to loom's, the inverse of onnx.c.
 * Mapping per op: docs/FORMATS.md, "ONNX import". */
#include "onnx_import.h"

/* ---- layout changes: Transpose, Reshape, Flatten, Squeeze ---- */

/* The current value's ONNX dims, the batch as -1; returns the rank. */
static int imp_cur_dims(const imp *s, int64_t *d) {
    for (int i = 0; i < IMP_MAX_RANK; i++)
        d[i] = 0;
    const int *x = s->sh.d;
    switch (s->f) {
    case F_IMG: d[0] = -1, d[1] = x[2], d[2] = x[0], d[3] = x[1]; return 4;
    case F_NHWC: d[0] = -1, d[1] = x[0], d[2] = x[1], d[3] = x[2]; return 4;
    case F_NWHC: d[0] = -1, d[1] = x[1], d[2] = x[0], d[3] = x[2]; return 4;
    case F_GAP: d[0] = -1, d[1] = x[0], d[2] = d[3] = 1; return 4;
    case F_VEC: d[0] = -1, d[1] = x[0]; return 2;
    case F_SEQ: d[0] = -1, d[1] = x[0], d[2] = x[1]; return 3;
    case F_TNF: d[0] = x[0], d[1] = -1, d[2] = x[1]; return 3;
    case F_NFT: d[0] = -1, d[1] = x[1], d[2] = x[0]; return 3;
    case F_RNN:
    case F_Y: d[0] = s->T, d[1] = s->D, d[2] = -1, d[3] = s->H; return 4;
    case F_YH: d[0] = s->D, d[1] = -1, d[2] = s->H; return 3;
    case F_YT: d[0] = -1, d[1] = s->T, d[2] = s->D, d[3] = s->H; return 4;
    case F_TNDH: d[0] = s->T, d[1] = -1, d[2] = s->D, d[3] = s->H; return 4;
    case F_NDH: d[0] = -1, d[1] = s->D, d[2] = s->H; return 3;
    }
    return 0;
}

static void dims_text(char *buf, size_t n, const int64_t *d, int rank) {
    size_t k = (size_t)snprintf(buf, n, "(");
    for (int i = 0; i < rank && k < n; i++) {
        if (d[i] < 0)
            k += (size_t)snprintf(buf + k, n - k, "%sN", i ? ", " : "");
        else
            k += (size_t)snprintf(buf + k, n - k, "%s%lld", i ? ", " : "", (long long)d[i]);
    }
    if (k < n)
        snprintf(buf + k, n - k, ")");
}

/* The last layer, when it is a forward recurrent layer giving every step: picking its last step
 * makes it loom's layer without return-sequences. */
static imp_layer *last_rnn(imp *s) {
    if (s->n_layers == 0)
        return NULL;
    imp_layer *l = &s->layers[s->n_layers - 1];
    bool is_rec = l->lw.kind == LOWER_RNN || l->lw.kind == LOWER_LSTM || l->lw.kind == LOWER_GRU;
    return is_rec && l->lw.is_sequences && !l->lw.is_bidirectional ? l : NULL;
}

/* The current value takes dims r (rank rr, the batch -1): the changes loom's layers make. */
static loom_status reshape_to(imp *s, const int64_t *r, int rr) {
    int64_t d[IMP_MAX_RANK];
    int rank = imp_cur_dims(s, d);
    if (rr == rank && memcmp(d, r, sizeof *r * (size_t)rr) == 0)
        return LOOM_OK;
    const int *x = s->sh.d;
    int64_t A = rr > 1 ? r[1] : 0, B = rr > 2 ? r[2] : 0;
    if (rr == 2 && r[0] == -1) { /* to a vector (N, A) */
        loom_status st = LOOM_OK;
        bool is_ok = true;
        switch (s->f) {
        case F_IMG:
        case F_NHWC:
            is_ok = A == (int64_t)x[0] * x[1] * x[2];
            if (is_ok) {
                st = imp_emit_plain(s, LOWER_FLATTEN);
                s->img = s->f == F_IMG ? s->sh : (loom_shape){0};
            }
            break;
        case F_GAP: is_ok = A == x[0]; break;
        case F_SEQ:
            is_ok = A == (int64_t)x[0] * x[1];
            if (is_ok)
                st = imp_emit_plain(s, LOWER_FLATTEN);
            break;
        case F_NDH: is_ok = A == (int64_t)s->D * s->H; break;
        case F_YH: is_ok = s->D == 1 && A == s->H; break;
        default: is_ok = false;
        }
        if (is_ok) {
            s->f = F_VEC;
            s->sh = shape1((int)A);
            return st;
        }
    }
    if (rr == 3 && r[0] == -1) { /* to a sequence (N, A, B) */
        lower_kind k = LOWER_ROWS;
        bool is_ok = false;
        if (s->f == F_NHWC)
            is_ok = A == x[0] && B == (int64_t)x[1] * x[2];
        else if (s->f == F_NWHC)
            is_ok = A == x[1] && B == (int64_t)x[0] * x[2], k = LOWER_COLUMNS;
        else if (s->f == F_YT)
            is_ok = A == s->T && B == (int64_t)s->D * s->H;
        if (is_ok) {
            loom_status st = s->f == F_YT ? LOOM_OK : imp_emit_plain(s, k);
            s->f = F_SEQ;
            s->sh = shape2((int)A, (int)B);
            return st;
        }
    }
    if (rr == 3 && r[1] == -1) { /* to ONNX's sequence (A, N, B) */
        bool is_ok = (s->f == F_Y && s->D == 1 && r[0] == s->T && r[2] == s->H) ||
                     (s->f == F_TNDH && r[0] == s->T && r[2] == (int64_t)s->D * s->H);
        if (is_ok) {
            s->f = F_TNF;
            s->sh = shape2(s->T, (int)r[2]);
            return LOOM_OK;
        }
    }
    char from[96], to[96];
    dims_text(from, sizeof from, d, rank);
    dims_text(to, sizeof to, r, rr);
    return imp_fail(s, "changes %s to %s: loom has no layer that moves values so", from, to);
}

loom_status imp_op_transpose(imp *s, const Onnx__NodeProto *n) {
    int64_t d[IMP_MAX_RANK], p[IMP_MAX_RANK];
    int rank = imp_cur_dims(s, d);
    const Onnx__AttributeProto *a = imp_attr(n, "perm");
    if (!a || a->n_ints != (size_t)rank)
        return imp_fail(s, "loom needs its perm attribute for a rank-%d value", rank);
    memcpy(p, a->ints, sizeof *p * (size_t)rank);
    bool is_identity = true;
    for (int i = 0; i < rank; i++)
        is_identity = is_identity && p[i] == i;
    if (is_identity)
        return LOOM_OK;
    static const struct {
        form from, to;
        int64_t perm[4];
    } moves[] = {
        {F_IMG, F_NHWC, {0, 2, 3, 1}}, {F_IMG, F_NWHC, {0, 3, 2, 1}}, {F_SEQ, F_TNF, {1, 0, 2}},
        {F_SEQ, F_NFT, {0, 2, 1}},     {F_TNF, F_SEQ, {1, 0, 2}},     {F_NFT, F_SEQ, {0, 2, 1}},
        {F_Y, F_YT, {2, 0, 1, 3}},     {F_Y, F_TNDH, {0, 2, 1, 3}},   {F_YH, F_NDH, {1, 0, 2}},
    };
    for (size_t i = 0; i < sizeof moves / sizeof *moves; i++)
        if (moves[i].from == s->f && memcmp(moves[i].perm, p, sizeof *p * (size_t)rank) == 0) {
            s->f = moves[i].to;
            if (s->f == F_TNF && s->sh.rank != 2)
                s->sh = shape2(s->T, s->D * s->H);
            return LOOM_OK;
        }
    char from[96], perm[96];
    dims_text(from, sizeof from, d, rank);
    size_t k = (size_t)snprintf(perm, sizeof perm, "[");
    for (int i = 0; i < rank && k < sizeof perm; i++)
        k += (size_t)snprintf(perm + k, sizeof perm - k, "%s%lld", i ? ", " : "", (long long)p[i]);
    if (k < sizeof perm)
        snprintf(perm + k, sizeof perm - k, "]");
    return imp_fail(s, "perm %s of %s: loom has no layer that moves values so", perm, from);
}

/* Reshape, Flatten, Squeeze: the new dims, then reshape_to. */
loom_status imp_op_shape(imp *s, const Onnx__NodeProto *n, const char *op) {
    int64_t d[IMP_MAX_RANK], r[IMP_MAX_RANK];
    int rank = imp_cur_dims(s, d), rr = 0;
    int nax = 0;
    while (d[nax] >= 0)
        nax++;
    int64_t P = 1; /* the known part of the size */
    for (int i = 0; i < rank; i++)
        P *= i == nax ? 1 : d[i];
    if (strcmp(op, "Flatten") == 0) {
        int64_t axis = imp_attr_i(n, "axis", 1);
        if (axis != 1 || nax != 0)
            return imp_fail(s, "axis %lld: loom flattens the batch's examples (axis 1)",
                            (long long)axis);
        r[0] = -1, r[1] = P, rr = 2;
    } else if (strcmp(op, "Squeeze") == 0) {
        int64_t axes[IMP_MAX_RANK];
        int n_axes = 0;
        const cval *c = n->n_input > 1 && n->input[1][0] ? imp_find(s, n->input[1]) : NULL;
        if (c && c->kind == V_TENSOR && c->t->data_type == ONNX__TENSOR_PROTO__DATA_TYPE__INT64 &&
            c->n <= IMP_MAX_RANK) {
            for (size_t i = 0; i < c->n; i++)
                axes[n_axes++] = imp_i64(c->t, i);
        } else if (n->n_input > 1 && n->input[1][0]) {
            return imp_fail(s, "its axes are not a constant");
        } else {
            const Onnx__AttributeProto *a = imp_attr(n, "axes");
            if (!a || a->n_ints > IMP_MAX_RANK)
                return imp_fail(s, "loom needs the axes to squeeze");
            for (size_t i = 0; i < a->n_ints; i++)
                axes[n_axes++] = a->ints[i];
        }
        bool drop[IMP_MAX_RANK] = {false};
        for (int i = 0; i < n_axes; i++) {
            int64_t ax = axes[i] < 0 ? axes[i] + rank : axes[i];
            if (ax < 0 || ax >= rank || d[ax] != 1)
                return imp_fail(s, "axis %lld is not of size 1", (long long)axes[i]);
            drop[ax] = true;
        }
        for (int i = 0; i < rank; i++)
            if (!drop[i])
                r[rr++] = d[i];
    } else { /* Reshape: 0 copies a dimension, -1 takes what is left */
        const cval *c = n->n_input > 1 ? imp_find(s, n->input[1]) : NULL;
        if (!c || c->kind != V_TENSOR || c->t->data_type != ONNX__TENSOR_PROTO__DATA_TYPE__INT64 ||
            c->n < 1 || c->n > IMP_MAX_RANK)
            return imp_fail(s, "its shape is not a constant: loom takes constant shapes");
        if (imp_attr_i(n, "allowzero", 0) != 0)
            return imp_fail(s, "allowzero is not loom's");
        int infer = -1;
        bool has_batch = false;
        int64_t known = 1;
        for (size_t i = 0; i < c->n; i++) {
            int64_t v = imp_i64(c->t, i);
            if (v == 0 && (int)i < rank) /* a copy of the batch, or of a known dimension */
                v = d[i], has_batch = has_batch || d[i] < 0;
            else if (v == -1 && infer < 0)
                infer = (int)i;
            else if (v < 1 || v > ((int64_t)1 << 31))
                return imp_fail(s, "dimension %lld", (long long)v);
            if (v > 0 && (known *= v) > ((int64_t)1 << 40))
                return imp_fail(s, "dimensions too large");
            r[rr++] = v;
        }
        if (has_batch && infer >= 0) {
            if (P % known != 0)
                return imp_fail(s, "its shape does not divide the value's size");
            r[infer] = P / known;
        } else if (has_batch ? known != P : infer < 0) {
            return imp_fail(
                s, infer < 0 && !has_batch
                       ? "a fixed batch size: loom needs the batch kept (0) or inferred (-1)"
                       : "its shape does not hold the value's size");
        } else if (!has_batch && known != P) { /* -1 takes the batch */
            return imp_fail(s, "mixes the batch with the examples' values");
        }
    }
    return reshape_to(s, r, rr);
}

/* ---- layers with numbers ---- */

/* Conv: W [K, C, R, S] -> loom W (R*S*C, K) rows (r, s, c); pads none or TensorFlow's same. */
loom_status imp_op_conv(imp *s, const Onnx__NodeProto *n) {
    if (s->f != F_IMG)
        return imp_fail(s, "loom convolves images (N, C, H, W) only");
    const cval *w = imp_fconst(s, imp_in_at(n, 1)), *b = NULL;
    if (!w || w->t->n_dims != 4)
        return imp_fail(s, "its weight is not a float constant [K, C, R, S]");
    int64_t K = w->t->dims[0], C = s->sh.d[2], R = w->t->dims[2], S = w->t->dims[3];
    int H = s->sh.d[0], W = s->sh.d[1];
    if (w->t->dims[1] != C || K < 1 || R < 1 || S < 1 || R > 255 || S > 255 || K > IMP_MAX_DIM)
        return imp_fail(s, "weight dims do not fit a %d-channel input (loom: kernels up to 255)",
                        (int)C);
    loom_status st;
    if (imp_in_at(n, 2)[0] && (st = imp_want(s, imp_in_at(n, 2), "bias", 1, &K, &b)))
        return st;
    int64_t one[2] = {1, 1}, zero[4] = {0, 0, 0, 0}, st2[2], dil[2], pads[4];
    if (imp_attr_i(n, "group", 1) != 1)
        return imp_fail(s, "group %lld: loom's conv is not grouped",
                        (long long)imp_attr_i(n, "group", 1));
    if (!imp_attr_ints(n, "dilations", 2, one, dil) || dil[0] != 1 || dil[1] != 1)
        return imp_fail(s, "dilations: loom's conv is not dilated");
    if (!imp_attr_ints(n, "strides", 2, one, st2) || st2[0] != st2[1] || st2[0] < 1 ||
        st2[0] > IMP_MAX_DIM)
        return imp_fail(s, "strides: loom's conv takes one stride for both axes");
    int stride = (int)st2[0];
    int Ho = (H + stride - 1) / stride, Wo = (W + stride - 1) / stride;
    int same[4] = {0, 0, 0, 0};
    int tot_h = imp_int_max((Ho - 1) * stride + (int)R - H, 0),
        tot_w = imp_int_max((Wo - 1) * stride + (int)S - W, 0);
    same[0] = tot_h / 2, same[1] = tot_w / 2, same[2] = tot_h - same[0], same[3] = tot_w - same[1];
    bool is_same;
    if (imp_attr_s_is(n, "auto_pad", "SAME_UPPER", NULL)) {
        is_same = true;
    } else if (!imp_attr_s_is(n, "auto_pad", "", "NOTSET") &&
               !imp_attr_s_is(n, "auto_pad", "VALID", NULL)) {
        return imp_fail(s, "auto_pad: loom pads as SAME_UPPER or not at all");
    } else {
        if (!imp_attr_ints(n, "pads", 4, zero, pads))
            return imp_fail(s, "pads: loom needs four");
        bool is_zero = !pads[0] && !pads[1] && !pads[2] && !pads[3];
        is_same = !is_zero;
        for (int i = 0; i < 4 && is_same; i++)
            is_same = pads[i] == same[i];
        if (!is_zero && !is_same)
            return imp_fail(s,
                            "pads [%lld, %lld, %lld, %lld]: loom's conv pads none or as "
                            "TensorFlow's 'same' ([%d, %d, %d, %d] here)",
                            (long long)pads[0], (long long)pads[1], (long long)pads[2],
                            (long long)pads[3], same[0], same[1], same[2], same[3]);
    }
    if (!is_same) {
        if (H < R || W < S)
            return imp_fail(s, "the kernel is larger than the input");
        Ho = (H - (int)R) / stride + 1, Wo = (W - (int)S) / stride + 1;
    }
    size_t RSC = (size_t)(R * S * C);
    imp_layer *l;
    layer_lowering lw = {.kind = LOWER_CONV,
                         .units = (int)K,
                         .kh = (int)R,
                         .kw = (int)S,
                         .sh = stride,
                         .sw = stride};
    if (is_same)
        memcpy(lw.pad, same, sizeof same);
    if ((st = imp_emit(s, lw, RSC * (size_t)K + (size_t)K, 0, &l)))
        return st;
    for (int64_t k = 0; k < K; k++)
        for (int64_t c = 0; c < C; c++)
            for (int64_t r = 0; r < R; r++)
                for (int64_t q = 0; q < S; q++)
                    l->w[(size_t)(((r * S + q) * C + c) * K + k)] =
                        imp_f32(w->t, (size_t)(((k * C + c) * R + r) * S + q));
    for (int64_t k = 0; b && k < K; k++)
        l->w[RSC * (size_t)K + (size_t)k] = imp_f32(b->t, (size_t)k);
    s->sh = shape3(Ho, Wo, (int)K);
    s->fusable = s->n_layers - 1;
    return LOOM_OK;
}

loom_status imp_op_pool(imp *s, const Onnx__NodeProto *n, bool is_max) {
    if (s->f != F_IMG)
        return imp_fail(s, "loom pools images (N, C, H, W) only");
    int64_t k[2], st2[2], one[2] = {1, 1}, zero[4] = {0, 0, 0, 0}, pads[4];
    if (!imp_attr_ints(n, "kernel_shape", 2, NULL, k) || k[0] < 1 || k[1] < 1 ||
        k[0] > s->sh.d[0] || k[1] > s->sh.d[1])
        return imp_fail(s, "kernel_shape: loom needs a 2-D window within the image");
    if (!imp_attr_ints(n, "strides", 2, one, st2) || st2[0] < 1 || st2[1] < 1 ||
        st2[0] > IMP_MAX_DIM || st2[1] > IMP_MAX_DIM ||
        (st2[0] != st2[1] && (st2[0] != k[0] || st2[1] != k[1])))
        return imp_fail(
            s, "strides: loom's pools stride by the window or by one stride for both axes");
    if (!imp_attr_ints(n, "pads", 4, zero, pads) || pads[0] || pads[1] || pads[2] || pads[3] ||
        (!imp_attr_s_is(n, "auto_pad", "", "NOTSET") &&
         !imp_attr_s_is(n, "auto_pad", "VALID", NULL)))
        return imp_fail(s, "padding: loom's pools do not pad");
    if (imp_attr_i(n, "ceil_mode", 0) != 0)
        return imp_fail(s, "ceil_mode: loom's pools round down");
    int64_t dil[2];
    if (!imp_attr_ints(n, "dilations", 2, one, dil) || dil[0] != 1 || dil[1] != 1)
        return imp_fail(s, "dilations: loom's pools are not dilated");
    if (imp_attr_i(n, "storage_order", 0) != 0)
        return imp_fail(s, "storage_order: loom has only the default");
    layer_lowering lw = {.kind = is_max ? LOWER_MAXPOOL : LOWER_AVGPOOL,
                         .kh = (int)k[0],
                         .kw = (int)k[1],
                         .sh = (int)st2[0],
                         .sw = (int)st2[1]};
    loom_status st = imp_emit_plain(s, LOWER_MAXPOOL);
    if (st)
        return st;
    s->layers[s->n_layers - 1].lw = lw;
    s->sh = shape3((int)((s->sh.d[0] - k[0]) / st2[0] + 1), (int)((s->sh.d[1] - k[1]) / st2[1] + 1),
                   s->sh.d[2]);
    return LOOM_OK;
}

/* BatchNormalization over axis 1: an image's channels, a vector's features (in loom's order
 * after an NCHW flatten), or a sequence's features transposed to (N, F, T). */
loom_status imp_op_batchnorm(imp *s, const Onnx__NodeProto *n) {
    if (s->f != F_IMG && s->f != F_VEC && s->f != F_NFT)
        return imp_fail(s,
                        "loom normalises channels of images, features of vectors, or features of "
                        "sequences transposed to (N, F, T)");
    if (imp_attr_i(n, "training_mode", 0) != 0 || n->n_output > 1)
        return imp_fail(s, "training mode: loom imports the inference form");
    int64_t C = s->sh.d[s->sh.rank - 1];
    const cval *v[4];
    const char *what[4] = {"scale", "bias", "mean", "variance"};
    loom_status st;
    for (int i = 0; i < 4; i++)
        if ((st = imp_want(s, imp_in_at(n, (size_t)i + 1), what[i], 1, &C, &v[i])))
            return st;
    float eps = imp_attr_f(n, "epsilon", 1e-5f);
    if (!(eps > 0.0f))
        return imp_fail(s, "epsilon %g: loom's batchnorm needs eps > 0", (double)eps);
    const Onnx__AttributeProto *mo = imp_attr(n, "momentum");
    if (mo && mo->has_f && !(mo->f >= 0.0f && mo->f < 1.0f))
        return imp_fail(s, "momentum %g: loom's is in [0, 1)", (double)mo->f);
    imp_layer *l;
    if ((st = imp_emit(s, (layer_lowering){.kind = LOWER_BATCHNORM, .eps = eps}, 2 * (size_t)C,
                       2 * (size_t)C, &l)))
        return st;
    l->has_momentum = mo && mo->has_f;
    l->momentum = l->has_momentum ? mo->f : 0.0f;
    loom_shape img = s->f == F_VEC ? s->img : (loom_shape){0};
    for (size_t j = 0; j < (size_t)C; j++) {
        size_t at = imp_feature(img, j);
        l->w[at] = imp_f32(v[0]->t, j);
        l->w[(size_t)C + at] = imp_f32(v[1]->t, j);
        l->s[at] = imp_f32(v[2]->t, j);
        l->s[(size_t)C + at] = imp_f32(v[3]->t, j);
    }
    return LOOM_OK;
}

/* Gemm (A x B + C) or MatMul (x B, its bias from the Add after it) -> dense W (N, K), b (K). */
loom_status imp_op_dense(imp *s, const Onnx__NodeProto *n, bool is_gemm) {
    if (s->f != F_VEC)
        return imp_fail(s, "loom's dense takes vectors (N, F): flatten first");
    int64_t N = s->sh.d[0];
    const cval *w = imp_fconst(s, imp_in_at(n, 1)), *b = NULL;
    bool is_t = is_gemm && imp_attr_i(n, "transB", 0) != 0;
    if (is_gemm && (imp_attr_i(n, "transA", 0) != 0 || imp_attr_f(n, "alpha", 1.0f) != 1.0f ||
                    imp_attr_f(n, "beta", 1.0f) != 1.0f))
        return imp_fail(s, "transA, alpha or beta: loom's dense is x W + b");
    if (!w || w->t->n_dims != 2 || w->t->dims[is_t ? 1 : 0] != N)
        return imp_fail(s, "its weight is not a float constant [%lld, K]%s", (long long)N,
                        is_t ? " (transposed)" : "");
    int64_t K = w->t->dims[is_t ? 0 : 1];
    if (K < 1 || K > LOOM_MAX_VALUES)
        return imp_fail(s, "%lld outputs", (long long)K);
    if (is_gemm && imp_in_at(n, 2)[0]) {
        b = imp_fconst(s, imp_in_at(n, 2));
        if (!b || b->n != (size_t)K || (b->t->n_dims == 2 && b->t->dims[0] != 1))
            return imp_fail(s, "its bias C is not a float constant [%lld]", (long long)K);
    }
    imp_layer *l;
    loom_status st = imp_emit(s, (layer_lowering){.kind = LOWER_DENSE, .units = (int)K},
                              (size_t)(N * K + K), 0, &l);
    if (st)
        return st;
    for (int64_t j = 0; j < N; j++) {
        size_t row = imp_feature(s->img, (size_t)j);
        for (int64_t k = 0; k < K; k++)
            l->w[row * (size_t)K + (size_t)k] =
                imp_f32(w->t, (size_t)(is_t ? k * N + j : j * K + k));
    }
    for (int64_t k = 0; b && k < K; k++)
        l->w[(size_t)(N * K + k)] = imp_f32(b->t, (size_t)k);
    s->img = (loom_shape){0};
    s->sh = shape1((int)K);
    s->fusable = s->n_layers - 1;
    if (!is_gemm)
        s->bias_of = s->n_layers - 1;
    return LOOM_OK;
}

/* Add after a MatMul: its bias. */
loom_status imp_op_add(imp *s, const Onnx__NodeProto *n, int bias_of, const char *other) {
    if (bias_of < 0)
        return imp_fail(s, "loom adds only a dense layer's bias, right after its MatMul");
    imp_layer *l = &s->layers[bias_of];
    int K = l->lw.units;
    const cval *b = imp_fconst(s, other);
    if (!b || b->n != (size_t)K || b->t->n_dims < 1 || b->t->dims[b->t->n_dims - 1] != K)
        return imp_fail(s, "its other input is not a float constant [%d]", K);
    for (int k = 0; k < K; k++)
        l->w[l->n_w - (size_t)K + (size_t)k] = imp_f32(b->t, (size_t)k);
    s->fusable = bias_of;
    (void)n;
    return LOOM_OK;
}

loom_status imp_op_act(imp *s, act_kind act, float alpha, int fusable) {
    if (s->f == F_RNN || s->f == F_Y || s->f == F_YH)
        return imp_fail(s, "loom applies activations to a recurrent layer's outputs once they are "
                           "back in (N, T, F) or (N, F)");
    if (fusable >= 0 && s->layers[fusable].lw.act == ACT_NONE) {
        s->layers[fusable].lw.act = act;
        s->layers[fusable].lw.alpha = alpha;
        return LOOM_OK;
    }
    imp_layer *l;
    loom_status st = imp_emit(
        s, (layer_lowering){.kind = LOWER_ACTIVATION, .act = act, .alpha = alpha}, 0, 0, &l);
    return st;
}

/* Sub mean then Div std on the input: loom's standardize, mean and std (D) in loom's order.
 * The constants broadcast: a scalar, per channel, or per value ((C, H, W) or (T, F)). */
loom_status imp_op_standardize(imp *s, const cval *std) {
    const cval *v[2] = {s->mean, std};
    int64_t d[IMP_MAX_RANK];
    int rank = imp_cur_dims(s, d) - 1; /* per example */
    size_t D = shape_size(s->sh);
    for (int i = 0; i < 2; i++) {
        int r = (int)v[i]->t->n_dims;
        const int64_t *cd = v[i]->t->dims;
        if (r == rank + 1 && cd[0] == 1)
            cd++, r--;
        bool is_ok = r <= rank;
        for (int k = 0; k < r && is_ok; k++)
            is_ok = cd[k] == 1 || cd[k] == d[1 + rank - r + k];
        if (!is_ok)
            return imp_fail(s, "loom's standardize takes a mean and std per value, per channel or "
                               "one of each");
    }
    imp_layer *l;
    loom_status st = imp_emit(s, (layer_lowering){.kind = LOWER_STANDARDIZE}, 0, 2 * D, &l);
    if (st)
        return st;
    for (size_t j = 0; j < D; j++) {
        int64_t at[3]; /* j's per-example ONNX index */
        if (s->f == F_IMG) {
            int H = s->sh.d[0], W = s->sh.d[1], C = s->sh.d[2];
            at[0] = (int64_t)(j % (size_t)C), at[1] = (int64_t)(j / ((size_t)W * C)),
            at[2] = (int64_t)(j / (size_t)C % (size_t)W);
            (void)H;
        } else {
            at[0] = (int64_t)(j / (size_t)s->sh.d[1]), at[1] = (int64_t)(j % (size_t)s->sh.d[1]);
        }
        for (int i = 0; i < 2; i++) {
            int r = (int)v[i]->t->n_dims;
            const int64_t *cd = v[i]->t->dims;
            if (r == rank + 1)
                cd++, r--;
            size_t idx = 0;
            for (int k = 0; k < r; k++)
                idx = idx * (size_t)cd[k] + (size_t)(cd[k] == 1 ? 0 : at[rank - r + k]);
            l->s[(size_t)i * D + j] = imp_f32(v[i]->t, idx);
        }
    }
    s->mean = NULL;
    return LOOM_OK;
}

/* Gather of the last step of a forward recurrent layer's every-step output: that layer without
 * return-sequences. */
loom_status imp_op_gather(imp *s, const Onnx__NodeProto *n) {
    const cval *c = imp_find(s, imp_in_at(n, 1));
    int64_t axis = imp_attr_i(n, "axis", 0);
    imp_layer *l = last_rnn(s);
    bool is_ok = c && c->kind == V_TENSOR &&
                 c->t->data_type == ONNX__TENSOR_PROTO__DATA_TYPE__INT64 && c->n == 1 &&
                 c->t->n_dims == 0 && l &&
                 ((s->f == F_SEQ && axis == 1) || (s->f == F_TNF && axis == 0));
    int64_t T = s->sh.d[0], i = is_ok ? imp_i64(c->t, 0) : 0;
    if (!is_ok || (i != -1 && i != T - 1))
        return imp_fail(s,
                        "loom picks one step only as the last step of a forward rnn, lstm or gru");
    l->lw.is_sequences = false;
    s->f = F_VEC;
    s->sh = shape1(s->sh.d[1]);
    return LOOM_OK;
}

bool imp_is_zeros(const imp *s, const char *name) {
    if (!name[0])
        return true;
    const cval *v = imp_find(s, name);
    if (!v || v->kind == V_SIDE)
        return false;
    if (v->kind == V_ZEROS)
        return true;
    for (size_t i = 0; i < v->n; i++)
        if (v->t->data_type == ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT ? imp_f32(v->t, i) != 0.0f
                                                                    : imp_i64(v->t, i) != 0)
            return false;
    return true;
}

/* The activations attribute is absent or names the default per direction. */
static bool acts_are(const Onnx__NodeProto *n, int D, int per, const char *const *names) {
    const Onnx__AttributeProto *a = imp_attr(n, "activations");
    if (!a)
        return true;
    if (a->n_strings != (size_t)(D * per))
        return false;
    for (size_t i = 0; i < a->n_strings; i++) {
        const char *w = names[i % (size_t)per];
        if (a->strings[i].len != strlen(w) || memcmp(a->strings[i].data, w, strlen(w)) != 0)
            return false;
    }
    return true;
}

/* RNN, LSTM, GRU over (T, N, F): W [D, G*H, F], R [D, G*H, H], B [D, 2*G*H] in ONNX's gate order
 * (lstm i o f c, gru z r h) -> loom's per direction W_ih (F, G*H), W_hh (H, G*H), b_ih, b_hh in
 * PyTorch's (lstm i f g o, gru r z n). */
loom_status imp_op_recurrent(imp *s, const Onnx__NodeProto *n, const char *op) {
    static const int rnn_gates[] = {0}, lstm_gates[] = {0, 3, 1, 2}, gru_gates[] = {1, 0, 2};
    bool is_lstm = strcmp(op, "LSTM") == 0, is_gru = strcmp(op, "GRU") == 0;
    const int *loom_gate = is_lstm ? lstm_gates : is_gru ? gru_gates : rnn_gates;
    int G = is_lstm ? 4 : is_gru ? 3 : 1;
    if (s->f != F_TNF)
        return imp_fail(
            s, "loom's recurrent layers read (T, N, F): a Transpose [1, 0, 2] of (N, T, F)");
    if (imp_attr_i(n, "layout", 0) != 0)
        return imp_fail(s, "layout 1: loom reads ONNX's default layout (T, N, F)");
    bool is_bi = imp_attr_s_is(n, "direction", "bidirectional", NULL);
    if (!is_bi && !imp_attr_s_is(n, "direction", "", "forward"))
        return imp_fail(s, "direction reverse: loom runs forward or bidirectional");
    if (imp_attr(n, "clip") || imp_attr(n, "activation_alpha") || imp_attr(n, "activation_beta") ||
        imp_attr_i(n, "input_forget", 0) != 0)
        return imp_fail(s, "clip, input_forget or activation parameters: loom's cells have none");
    if (is_gru && imp_attr_i(n, "linear_before_reset", 0) != 1)
        return imp_fail(s, "linear_before_reset = 0: loom's gru applies the reset gate after the "
                           "recurrent product (linear_before_reset = 1, as PyTorch)");
    int D = is_bi ? 2 : 1;
    static const char *const lstm_acts[] = {"Sigmoid", "Tanh", "Tanh"};
    static const char *const gru_acts[] = {"Sigmoid", "Tanh"};
    static const char *const tanh_act[] = {"Tanh"}, *const relu_act[] = {"Relu"};
    act_kind act = ACT_TANH;
    if (is_lstm  ? !acts_are(n, D, 3, lstm_acts)
        : is_gru ? !acts_are(n, D, 2, gru_acts)
                 : !acts_are(n, D, 1, tanh_act) && !(act = ACT_RELU, acts_are(n, D, 1, relu_act)))
        return imp_fail(s, "activations: loom's cells use the defaults (an rnn Tanh or Relu)");
    int64_t Hh = imp_attr_i(n, "hidden_size", 0), F = s->sh.d[1], T = s->sh.d[0];
    if (Hh < 1 || Hh > IMP_MAX_DIM)
        return imp_fail(s, "hidden_size %lld", (long long)Hh);
    int H = (int)Hh;
    int64_t GH = (int64_t)G * H, dw[3] = {D, GH, F}, dr[3] = {D, GH, H}, db[2] = {D, 2 * GH};
    const cval *W, *R, *B = NULL;
    loom_status st;
    if ((st = imp_want(s, imp_in_at(n, 1), "W", 3, dw, &W)) ||
        (st = imp_want(s, imp_in_at(n, 2), "R", 3, dr, &R)))
        return st;
    if (imp_in_at(n, 3)[0] && (st = imp_want(s, imp_in_at(n, 3), "B", 2, db, &B)))
        return st;
    if (imp_in_at(n, 4)[0] || (is_lstm && imp_in_at(n, 7)[0]))
        return imp_fail(s, "sequence_lens or peepholes: loom's cells have none");
    if (!imp_is_zeros(s, imp_in_at(n, 5)) || (is_lstm && !imp_is_zeros(s, imp_in_at(n, 6))))
        return imp_fail(s, "its initial state is not zero: loom's cells start from zeros");
    size_t per = (size_t)(GH * (F + H) + 2 * GH);
    imp_layer *l;
    layer_lowering lw = {.kind = is_lstm  ? LOWER_LSTM
                                 : is_gru ? LOWER_GRU
                                          : LOWER_RNN,
                         .act = act,
                         .units = H,
                         .is_bidirectional = is_bi};
    if ((st = imp_emit(s, lw, per * (size_t)D, 0, &l)))
        return st;
    for (int d = 0; d < D; d++) {
        float *wih = l->w + (size_t)d * per, *whh = wih + (size_t)(F * GH), *bih = whh + H * GH;
        float *bhh = bih + GH;
        for (int go = 0; go < G; go++)
            for (int j = 0; j < H; j++) {
                size_t row = (size_t)(d * GH + go * H + j), col = (size_t)(loom_gate[go] * H + j);
                for (int64_t f = 0; f < F; f++)
                    wih[(size_t)f * (size_t)GH + col] = imp_f32(W->t, row * (size_t)F + (size_t)f);
                for (int h = 0; h < H; h++)
                    whh[(size_t)h * (size_t)GH + col] = imp_f32(R->t, row * (size_t)H + (size_t)h);
                if (B) {
                    size_t bo = (size_t)(d * 2 * GH + go * H + j);
                    bih[col] = imp_f32(B->t, bo);
                    bhh[col] = imp_f32(B->t, bo + (size_t)GH);
                }
            }
    }
    s->f = F_RNN;
    s->T = (int)T, s->D = D, s->H = H;
    s->cur = n->n_output > 0 && n->output[0][0] ? n->output[0] : NULL;
    s->cur_h = n->n_output > 1 && n->output[1][0] ? n->output[1] : NULL;
    return LOOM_OK;
}
