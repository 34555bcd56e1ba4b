/* onnx_import.c - the door from ONNX, the inverse of onnx.c: an ONNX model (a chain of the nodes
 * loom's layers can express) read into a loom model. The graph's layouts (images NCHW, sequences
 * (N, T, F) or ONNX's (T, N, F), recurrent outputs (T, D, N, H)) are tracked node by node as a
 * "form" of the current value; loom's layers keep theirs (images (H, W, C), vectors in (h, w, c)
 * order). The file is unpacked with a size-limited allocator and every tensor's size is checked
 * against the bytes that hold it. Mapping per op: docs/FORMATS.md, "ONNX import". */
#include "../model/model.h"

#include "onnx.pb-c.h"

#include <cjson/cJSON.h>
#include <stdarg.h>
#include <stddef.h>

#define IMP_MAX_NODES 10000
#define IMP_MAX_RANK 8
#define IMP_MAX_DIM 65536

/* ---- protobuf-c's allocations, counted against a budget ---- */

typedef struct {
    size_t used, limit;
} budget;

static void *budget_alloc(void *data, size_t size) {
    budget *b = data;
    if (size > b->limit - b->used)
        return NULL;
    max_align_t *p = malloc(sizeof(max_align_t) + size);
    if (!p)
        return NULL;
    memcpy(p, &size, sizeof size);
    b->used += size;
    return p + 1;
}

static void budget_free(void *data, void *ptr) {
    if (!ptr)
        return;
    budget *b = data;
    max_align_t *p = (max_align_t *)ptr - 1;
    size_t size;
    memcpy(&size, p, sizeof size);
    b->used -= size;
    free(p);
}

/* ---- values: constants, zeros and shape arithmetic beside the chain ---- */

typedef enum { V_TENSOR = 0, V_ZEROS, V_SIDE } vkind;

typedef struct {
    const char *name;
    vkind kind;
    const Onnx__TensorProto *t; /* V_TENSOR: checked by check_tensor */
    size_t n;                   /* V_TENSOR: number of values */
} cval;

/* The forms of the current value: its ONNX layout against loom's shape sh. */
typedef enum {
    F_IMG,  /* (N, C, H, W), sh (H, W, C) */
    F_NHWC, /* (N, H, W, C): a flatten or rows must follow */
    F_NWHC, /* (N, W, H, C): columns must follow */
    F_GAP,  /* (N, C, 1, 1) after GlobalAveragePool, sh (C) */
    F_VEC,  /* (N, F), sh (F); features in (c, h, w) order of img when img.rank == 3 */
    F_SEQ,  /* (N, T, F), sh (T, F) */
    F_TNF,  /* (T, N, F) */
    F_NFT,  /* (N, F, T) */
    F_RNN,  /* a recurrent node's outputs: Y (T, D, N, H) is cur, Y_h (D, N, H) cur_h */
    F_Y,    /* (T, D, N, H) */
    F_YH,   /* (D, N, H) */
    F_YT,   /* (N, T, D, H) */
    F_TNDH, /* (T, N, D, H) */
    F_NDH,  /* (N, D, H) */
} form;

typedef struct {
    layer_lowering lw;
    bool has_momentum; /* batchnorm */
    float momentum;
    float *w, *s; /* params and state in loom's layout, owned */
    size_t n_w, n_s;
} imp_layer;

typedef struct {
    const char *src;
    loom_error *err;
    cval *vals;
    size_t n_vals, cap_vals;
    imp_layer layers[MODEL_MAX_LAYERS];
    int n_layers;
    const char *cur, *cur_h;
    form f;
    loom_shape sh, img;
    int T, D, H; /* recurrent forms */
    int fusable; /* the dense/conv layer whose direct output cur is, or -1 */
    int bias_of; /* a MatMul's dense layer waiting for its Add, or -1 */
    bool is_scaled, has_chain_op, is_done;
    const cval *mean; /* a Sub's constant waiting for its Div */
    const Onnx__NodeProto *node;
    int node_i;
} imp;

static int int_max(int a, int b) { return a > b ? a : b; }

static loom_status fail(imp *s, const char *fmt, ...) {
    char msg[320];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (!s->node)
        return loom_error_set(s->err, LOOM_ERR_FORMAT, "%s: %s", s->src, msg);
    const Onnx__NodeProto *n = s->node;
    if (n->name && n->name[0])
        return loom_error_set(s->err, LOOM_ERR_FORMAT, "%s: node '%.80s' (%.40s): %s", s->src,
                              n->name, n->op_type ? n->op_type : "", msg);
    return loom_error_set(s->err, LOOM_ERR_FORMAT, "%s: node %d (%.40s): %s", s->src, s->node_i,
                          n->op_type ? n->op_type : "", msg);
}

static loom_status nomem(imp *s) {
    return loom_error_set(s->err, LOOM_ERR_NOMEM, "%s: out of memory", s->src);
}

/* A tensor's values must be there, as many as its dims say: float32 or int64, raw
 * little-endian or typed fields, no external data. */
static loom_status check_tensor(imp *s, const Onnx__TensorProto *t, const char *what, size_t *n) {
    const char *nm = t->name ? t->name : "";
    if (t->has_data_location && t->data_location == ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL)
        return fail(s, "%s '%.80s' keeps its data in another file: loom reads one file", what, nm);
    bool is_f32 = t->data_type == ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT;
    if (!is_f32 && t->data_type != ONNX__TENSOR_PROTO__DATA_TYPE__INT64)
        return fail(s, "%s '%.80s' has data type %d: loom takes float32 (and int64 shapes)", what,
                    nm, (int)t->data_type);
    if (t->n_dims > IMP_MAX_RANK)
        return fail(s, "%s '%.80s' has rank %zu", what, nm, t->n_dims);
    size_t count = 1, have = is_f32 ? t->n_float_data : t->n_int64_data, es = is_f32 ? 4 : 8;
    if (t->has_raw_data)
        have = t->raw_data.len / es;
    for (size_t i = 0; i < t->n_dims; i++) {
        if (t->dims[i] < 0 || (uint64_t)t->dims[i] > (uint64_t)have + 1)
            return fail(s, "%s '%.80s': dimension %lld does not fit its %zu values", what, nm,
                        (long long)t->dims[i], have);
        count *= (size_t)t->dims[i];
        if (count > have + 1)
            break;
    }
    if (count != have || (t->has_raw_data && t->raw_data.len != count * es))
        return fail(s, "%s '%.80s': its dims call for %zu values, the data holds %zu", what, nm,
                    count, have);
    *n = count;
    return LOOM_OK;
}

static float tf32(const Onnx__TensorProto *t, size_t i) {
    if (!t->has_raw_data)
        return t->float_data[i];
    const uint8_t *p = t->raw_data.data + 4 * i;
    uint32_t u = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static int64_t ti64(const Onnx__TensorProto *t, size_t i) {
    if (!t->has_raw_data)
        return t->int64_data[i];
    uint64_t u = 0;
    for (int k = 0; k < 8; k++)
        u |= (uint64_t)t->raw_data.data[8 * i + (size_t)k] << (8 * k);
    return (int64_t)u;
}

static const cval *find(const imp *s, const char *name) {
    for (size_t i = s->n_vals; i-- > 0;)
        if (strcmp(s->vals[i].name, name) == 0)
            return &s->vals[i];
    return NULL;
}

static loom_status add_val(imp *s, const char *name, vkind kind, const Onnx__TensorProto *t) {
    if (s->n_vals == s->cap_vals) {
        size_t cap = s->cap_vals ? 2 * s->cap_vals : 64;
        cval *v = realloc(s->vals, cap * sizeof *v);
        if (!v)
            return nomem(s);
        s->vals = v;
        s->cap_vals = cap;
    }
    cval v = {.name = name, .kind = kind, .t = t};
    if (kind == V_TENSOR) {
        loom_status st = check_tensor(s, t, "constant", &v.n);
        if (st)
            return st;
    }
    s->vals[s->n_vals++] = v;
    return LOOM_OK;
}

/* A float constant with the given dims (rank, dims; rank -1: any). */
static const cval *fconst(imp *s, const char *name) {
    const cval *v = name && name[0] ? find(s, name) : NULL;
    if (!v || v->kind != V_TENSOR || v->t->data_type != ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT)
        return NULL;
    return v;
}

static bool dims_are(const cval *v, int rank, const int64_t *d) {
    if ((int)v->t->n_dims != rank)
        return false;
    for (int i = 0; i < rank; i++)
        if (v->t->dims[i] != d[i])
            return false;
    return true;
}

/* The float constant `name` of dims (rank, d), else an error naming `what`. */
static loom_status want(imp *s, const char *name, const char *what, int rank, const int64_t *d,
                        const cval **out) {
    *out = fconst(s, name);
    if (!*out)
        return fail(s,
                    "its %s is not a float constant: loom's layers take their weights as "
                    "initializers",
                    what);
    if (!dims_are(*out, rank, d)) {
        char got[96] = "", exp[96] = "";
        for (size_t i = 0, k = 0; i < (*out)->t->n_dims && k < sizeof got - 24; i++)
            k += (size_t)snprintf(got + k, sizeof got - k, "%s%lld", i ? ", " : "",
                                  (long long)(*out)->t->dims[i]);
        for (int i = 0, k = 0; i < rank; i++)
            k +=
                snprintf(exp + k, sizeof exp - (size_t)k, "%s%lld", i ? ", " : "", (long long)d[i]);
        return fail(s, "its %s has dims [%s], expected [%s]", what, got, exp);
    }
    return LOOM_OK;
}

/* ---- attributes ---- */

static const Onnx__AttributeProto *attr(const Onnx__NodeProto *n, const char *key) {
    for (size_t i = 0; i < n->n_attribute; i++)
        if (n->attribute[i]->name && strcmp(n->attribute[i]->name, key) == 0)
            return n->attribute[i];
    return NULL;
}

static int64_t attr_i(const Onnx__NodeProto *n, const char *key, int64_t def) {
    const Onnx__AttributeProto *a = attr(n, key);
    return a && a->has_i ? a->i : def;
}

static float attr_f(const Onnx__NodeProto *n, const char *key, float def) {
    const Onnx__AttributeProto *a = attr(n, key);
    return a && a->has_f ? a->f : def;
}

/* The ints attribute key as exactly count values in out; absent: def (may be NULL: false). */
static bool attr_ints(const Onnx__NodeProto *n, const char *key, int count, const int64_t *def,
                      int64_t *out) {
    const Onnx__AttributeProto *a = attr(n, key);
    if (!a) {
        if (!def)
            return false;
        memcpy(out, def, sizeof *out * (size_t)count);
        return true;
    }
    if (a->n_ints != (size_t)count)
        return false;
    memcpy(out, a->ints, sizeof *out * (size_t)count);
    return true;
}

/* The string attribute key equals one of the allowed words ("" stands for absent). */
static bool attr_s_is(const Onnx__NodeProto *n, const char *key, const char *a1, const char *a2) {
    const Onnx__AttributeProto *a = attr(n, key);
    size_t len = a && a->has_s ? a->s.len : 0;
    const char *p = a && a->has_s ? (const char *)a->s.data : "";
    return (strlen(a1) == len && memcmp(p, a1, len) == 0) ||
           (a2 && strlen(a2) == len && memcmp(p, a2, len) == 0);
}

/* ---- the layers the import emits ---- */

static loom_status emit(imp *s, layer_lowering lw, size_t n_w, size_t n_s, imp_layer **out) {
    if (s->n_layers == MODEL_MAX_LAYERS)
        return fail(s, "more than %d layers", MODEL_MAX_LAYERS);
    imp_layer *l = &s->layers[s->n_layers];
    memset(l, 0, sizeof *l);
    l->lw = lw;
    l->n_w = n_w;
    l->n_s = n_s;
    l->w = calloc(n_w ? n_w : 1, sizeof(float));
    l->s = calloc(n_s ? n_s : 1, sizeof(float));
    if (!l->w || !l->s) {
        free(l->w);
        free(l->s);
        return nomem(s);
    }
    s->n_layers++;
    s->fusable = -1;
    s->bias_of = -1;
    *out = l;
    return LOOM_OK;
}

static loom_status emit_plain(imp *s, lower_kind kind) {
    imp_layer *l;
    return emit(s, (layer_lowering){.kind = kind}, 0, 0, &l);
}

/* Where feature j of a vector flattened from an NCHW image (order (c, h, w)) sits in loom's
 * (h, w, c) flattening; the same j when img is not an image. */
static size_t feature(loom_shape img, size_t j) {
    if (img.rank != 3)
        return j;
    size_t H = (size_t)img.d[0], W = (size_t)img.d[1], C = (size_t)img.d[2];
    size_t c = j / (H * W), h = j / W % H, w = j % W;
    return (h * W + w) * C + c;
}

/* ---- layout changes: Transpose, Reshape, Flatten, Squeeze ---- */

/* The current value's ONNX dims, the batch as -1; returns the rank. */
static int cur_dims(const imp *s, int64_t *d) {
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
    int rank = cur_dims(s, d);
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
                st = emit_plain(s, LOWER_FLATTEN);
                s->img = s->f == F_IMG ? s->sh : (loom_shape){0};
            }
            break;
        case F_GAP: is_ok = A == x[0]; break;
        case F_SEQ:
            is_ok = A == (int64_t)x[0] * x[1];
            if (is_ok)
                st = emit_plain(s, LOWER_FLATTEN);
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
            loom_status st = s->f == F_YT ? LOOM_OK : emit_plain(s, k);
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
    return fail(s, "changes %s to %s: loom has no layer that moves values so", from, to);
}

static loom_status op_transpose(imp *s, const Onnx__NodeProto *n) {
    int64_t d[IMP_MAX_RANK], p[IMP_MAX_RANK];
    int rank = cur_dims(s, d);
    const Onnx__AttributeProto *a = attr(n, "perm");
    if (!a || a->n_ints != (size_t)rank)
        return fail(s, "loom needs its perm attribute for a rank-%d value", rank);
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
    return fail(s, "perm %s of %s: loom has no layer that moves values so", perm, from);
}

/* Reshape, Flatten, Squeeze: the new dims, then reshape_to. */
static loom_status op_shape(imp *s, const Onnx__NodeProto *n, const char *op) {
    int64_t d[IMP_MAX_RANK], r[IMP_MAX_RANK];
    int rank = cur_dims(s, d), rr = 0;
    int nax = 0;
    while (d[nax] >= 0)
        nax++;
    int64_t P = 1; /* the known part of the size */
    for (int i = 0; i < rank; i++)
        P *= i == nax ? 1 : d[i];
    if (strcmp(op, "Flatten") == 0) {
        int64_t axis = attr_i(n, "axis", 1);
        if (axis != 1 || nax != 0)
            return fail(s, "axis %lld: loom flattens the batch's examples (axis 1)",
                        (long long)axis);
        r[0] = -1, r[1] = P, rr = 2;
    } else if (strcmp(op, "Squeeze") == 0) {
        int64_t axes[IMP_MAX_RANK];
        int n_axes = 0;
        const cval *c = n->n_input > 1 && n->input[1][0] ? find(s, n->input[1]) : NULL;
        if (c && c->kind == V_TENSOR && c->t->data_type == ONNX__TENSOR_PROTO__DATA_TYPE__INT64 &&
            c->n <= IMP_MAX_RANK) {
            for (size_t i = 0; i < c->n; i++)
                axes[n_axes++] = ti64(c->t, i);
        } else if (n->n_input > 1 && n->input[1][0]) {
            return fail(s, "its axes are not a constant");
        } else {
            const Onnx__AttributeProto *a = attr(n, "axes");
            if (!a || a->n_ints > IMP_MAX_RANK)
                return fail(s, "loom needs the axes to squeeze");
            for (size_t i = 0; i < a->n_ints; i++)
                axes[n_axes++] = a->ints[i];
        }
        bool drop[IMP_MAX_RANK] = {false};
        for (int i = 0; i < n_axes; i++) {
            int64_t ax = axes[i] < 0 ? axes[i] + rank : axes[i];
            if (ax < 0 || ax >= rank || d[ax] != 1)
                return fail(s, "axis %lld is not of size 1", (long long)axes[i]);
            drop[ax] = true;
        }
        for (int i = 0; i < rank; i++)
            if (!drop[i])
                r[rr++] = d[i];
    } else { /* Reshape: 0 copies a dimension, -1 takes what is left */
        const cval *c = n->n_input > 1 ? find(s, n->input[1]) : NULL;
        if (!c || c->kind != V_TENSOR || c->t->data_type != ONNX__TENSOR_PROTO__DATA_TYPE__INT64 ||
            c->n < 1 || c->n > IMP_MAX_RANK)
            return fail(s, "its shape is not a constant: loom takes constant shapes");
        if (attr_i(n, "allowzero", 0) != 0)
            return fail(s, "allowzero is not loom's");
        int infer = -1;
        bool has_batch = false;
        int64_t known = 1;
        for (size_t i = 0; i < c->n; i++) {
            int64_t v = ti64(c->t, i);
            if (v == 0 && (int)i < rank) /* a copy of the batch, or of a known dimension */
                v = d[i], has_batch = has_batch || d[i] < 0;
            else if (v == -1 && infer < 0)
                infer = (int)i;
            else if (v < 1 || v > ((int64_t)1 << 31))
                return fail(s, "dimension %lld", (long long)v);
            if (v > 0 && (known *= v) > ((int64_t)1 << 40))
                return fail(s, "dimensions too large");
            r[rr++] = v;
        }
        if (has_batch && infer >= 0) {
            if (P % known != 0)
                return fail(s, "its shape does not divide the value's size");
            r[infer] = P / known;
        } else if (has_batch ? known != P : infer < 0) {
            return fail(s,
                        infer < 0 && !has_batch
                            ? "a fixed batch size: loom needs the batch kept (0) or inferred (-1)"
                            : "its shape does not hold the value's size");
        } else if (!has_batch && known != P) { /* -1 takes the batch */
            return fail(s, "mixes the batch with the examples' values");
        }
    }
    return reshape_to(s, r, rr);
}

/* ---- layers with numbers ---- */

static const char *in_at(const Onnx__NodeProto *n, size_t i) {
    return i < n->n_input && n->input[i] ? n->input[i] : "";
}

/* Conv: W [K, C, R, S] -> loom W (R*S*C, K) rows (r, s, c); pads none or TensorFlow's same. */
static loom_status op_conv(imp *s, const Onnx__NodeProto *n) {
    if (s->f != F_IMG)
        return fail(s, "loom convolves images (N, C, H, W) only");
    const cval *w = fconst(s, in_at(n, 1)), *b = NULL;
    if (!w || w->t->n_dims != 4)
        return fail(s, "its weight is not a float constant [K, C, R, S]");
    int64_t K = w->t->dims[0], C = s->sh.d[2], R = w->t->dims[2], S = w->t->dims[3];
    int H = s->sh.d[0], W = s->sh.d[1];
    if (w->t->dims[1] != C || K < 1 || R < 1 || S < 1 || R > 255 || S > 255 || K > IMP_MAX_DIM)
        return fail(s, "weight dims do not fit a %d-channel input (loom: kernels up to 255)",
                    (int)C);
    loom_status st;
    if (in_at(n, 2)[0] && (st = want(s, in_at(n, 2), "bias", 1, &K, &b)))
        return st;
    int64_t one[2] = {1, 1}, zero[4] = {0, 0, 0, 0}, st2[2], dil[2], pads[4];
    if (attr_i(n, "group", 1) != 1)
        return fail(s, "group %lld: loom's conv is not grouped", (long long)attr_i(n, "group", 1));
    if (!attr_ints(n, "dilations", 2, one, dil) || dil[0] != 1 || dil[1] != 1)
        return fail(s, "dilations: loom's conv is not dilated");
    if (!attr_ints(n, "strides", 2, one, st2) || st2[0] != st2[1] || st2[0] < 1 ||
        st2[0] > IMP_MAX_DIM)
        return fail(s, "strides: loom's conv takes one stride for both axes");
    int stride = (int)st2[0];
    int Ho = (H + stride - 1) / stride, Wo = (W + stride - 1) / stride;
    int same[4] = {0, 0, 0, 0};
    int tot_h = int_max((Ho - 1) * stride + (int)R - H, 0),
        tot_w = int_max((Wo - 1) * stride + (int)S - W, 0);
    same[0] = tot_h / 2, same[1] = tot_w / 2, same[2] = tot_h - same[0], same[3] = tot_w - same[1];
    bool is_same;
    if (attr_s_is(n, "auto_pad", "SAME_UPPER", NULL)) {
        is_same = true;
    } else if (!attr_s_is(n, "auto_pad", "", "NOTSET") &&
               !attr_s_is(n, "auto_pad", "VALID", NULL)) {
        return fail(s, "auto_pad: loom pads as SAME_UPPER or not at all");
    } else {
        if (!attr_ints(n, "pads", 4, zero, pads))
            return fail(s, "pads: loom needs four");
        bool is_zero = !pads[0] && !pads[1] && !pads[2] && !pads[3];
        is_same = !is_zero;
        for (int i = 0; i < 4 && is_same; i++)
            is_same = pads[i] == same[i];
        if (!is_zero && !is_same)
            return fail(s,
                        "pads [%lld, %lld, %lld, %lld]: loom's conv pads none or as "
                        "TensorFlow's 'same' ([%d, %d, %d, %d] here)",
                        (long long)pads[0], (long long)pads[1], (long long)pads[2],
                        (long long)pads[3], same[0], same[1], same[2], same[3]);
    }
    if (!is_same) {
        if (H < R || W < S)
            return fail(s, "the kernel is larger than the input");
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
    if ((st = emit(s, lw, RSC * (size_t)K + (size_t)K, 0, &l)))
        return st;
    for (int64_t k = 0; k < K; k++)
        for (int64_t c = 0; c < C; c++)
            for (int64_t r = 0; r < R; r++)
                for (int64_t q = 0; q < S; q++)
                    l->w[(size_t)(((r * S + q) * C + c) * K + k)] =
                        tf32(w->t, (size_t)(((k * C + c) * R + r) * S + q));
    for (int64_t k = 0; b && k < K; k++)
        l->w[RSC * (size_t)K + (size_t)k] = tf32(b->t, (size_t)k);
    s->sh = shape3(Ho, Wo, (int)K);
    s->fusable = s->n_layers - 1;
    return LOOM_OK;
}

static loom_status op_pool(imp *s, const Onnx__NodeProto *n, bool is_max) {
    if (s->f != F_IMG)
        return fail(s, "loom pools images (N, C, H, W) only");
    int64_t k[2], st2[2], one[2] = {1, 1}, zero[4] = {0, 0, 0, 0}, pads[4];
    if (!attr_ints(n, "kernel_shape", 2, NULL, k) || k[0] < 1 || k[1] < 1 || k[0] > s->sh.d[0] ||
        k[1] > s->sh.d[1])
        return fail(s, "kernel_shape: loom needs a 2-D window within the image");
    if (!attr_ints(n, "strides", 2, one, st2) || st2[0] < 1 || st2[1] < 1 || st2[0] > IMP_MAX_DIM ||
        st2[1] > IMP_MAX_DIM || (st2[0] != st2[1] && (st2[0] != k[0] || st2[1] != k[1])))
        return fail(s, "strides: loom's pools stride by the window or by one stride for both axes");
    if (!attr_ints(n, "pads", 4, zero, pads) || pads[0] || pads[1] || pads[2] || pads[3] ||
        (!attr_s_is(n, "auto_pad", "", "NOTSET") && !attr_s_is(n, "auto_pad", "VALID", NULL)))
        return fail(s, "padding: loom's pools do not pad");
    if (attr_i(n, "ceil_mode", 0) != 0)
        return fail(s, "ceil_mode: loom's pools round down");
    int64_t dil[2];
    if (!attr_ints(n, "dilations", 2, one, dil) || dil[0] != 1 || dil[1] != 1)
        return fail(s, "dilations: loom's pools are not dilated");
    if (attr_i(n, "storage_order", 0) != 0)
        return fail(s, "storage_order: loom has only the default");
    layer_lowering lw = {.kind = is_max ? LOWER_MAXPOOL : LOWER_AVGPOOL,
                         .kh = (int)k[0],
                         .kw = (int)k[1],
                         .sh = (int)st2[0],
                         .sw = (int)st2[1]};
    loom_status st = emit_plain(s, LOWER_MAXPOOL);
    if (st)
        return st;
    s->layers[s->n_layers - 1].lw = lw;
    s->sh = shape3((int)((s->sh.d[0] - k[0]) / st2[0] + 1), (int)((s->sh.d[1] - k[1]) / st2[1] + 1),
                   s->sh.d[2]);
    return LOOM_OK;
}

/* BatchNormalization over axis 1: an image's channels, a vector's features (in loom's order
 * after an NCHW flatten), or a sequence's features transposed to (N, F, T). */
static loom_status op_batchnorm(imp *s, const Onnx__NodeProto *n) {
    if (s->f != F_IMG && s->f != F_VEC && s->f != F_NFT)
        return fail(s, "loom normalises channels of images, features of vectors, or features of "
                       "sequences transposed to (N, F, T)");
    if (attr_i(n, "training_mode", 0) != 0 || n->n_output > 1)
        return fail(s, "training mode: loom imports the inference form");
    int64_t C = s->sh.d[s->sh.rank - 1];
    const cval *v[4];
    const char *what[4] = {"scale", "bias", "mean", "variance"};
    loom_status st;
    for (int i = 0; i < 4; i++)
        if ((st = want(s, in_at(n, (size_t)i + 1), what[i], 1, &C, &v[i])))
            return st;
    float eps = attr_f(n, "epsilon", 1e-5f);
    if (!(eps > 0.0f))
        return fail(s, "epsilon %g: loom's batchnorm needs eps > 0", (double)eps);
    const Onnx__AttributeProto *mo = attr(n, "momentum");
    if (mo && mo->has_f && !(mo->f >= 0.0f && mo->f < 1.0f))
        return fail(s, "momentum %g: loom's is in [0, 1)", (double)mo->f);
    imp_layer *l;
    if ((st = emit(s, (layer_lowering){.kind = LOWER_BATCHNORM, .eps = eps}, 2 * (size_t)C,
                   2 * (size_t)C, &l)))
        return st;
    l->has_momentum = mo && mo->has_f;
    l->momentum = l->has_momentum ? mo->f : 0.0f;
    loom_shape img = s->f == F_VEC ? s->img : (loom_shape){0};
    for (size_t j = 0; j < (size_t)C; j++) {
        size_t at = feature(img, j);
        l->w[at] = tf32(v[0]->t, j);
        l->w[(size_t)C + at] = tf32(v[1]->t, j);
        l->s[at] = tf32(v[2]->t, j);
        l->s[(size_t)C + at] = tf32(v[3]->t, j);
    }
    return LOOM_OK;
}

/* Gemm (A x B + C) or MatMul (x B, its bias from the Add after it) -> dense W (N, K), b (K). */
static loom_status op_dense(imp *s, const Onnx__NodeProto *n, bool is_gemm) {
    if (s->f != F_VEC)
        return fail(s, "loom's dense takes vectors (N, F): flatten first");
    int64_t N = s->sh.d[0];
    const cval *w = fconst(s, in_at(n, 1)), *b = NULL;
    bool is_t = is_gemm && attr_i(n, "transB", 0) != 0;
    if (is_gemm && (attr_i(n, "transA", 0) != 0 || attr_f(n, "alpha", 1.0f) != 1.0f ||
                    attr_f(n, "beta", 1.0f) != 1.0f))
        return fail(s, "transA, alpha or beta: loom's dense is x W + b");
    if (!w || w->t->n_dims != 2 || w->t->dims[is_t ? 1 : 0] != N)
        return fail(s, "its weight is not a float constant [%lld, K]%s", (long long)N,
                    is_t ? " (transposed)" : "");
    int64_t K = w->t->dims[is_t ? 0 : 1];
    if (K < 1 || K > LOOM_MAX_VALUES)
        return fail(s, "%lld outputs", (long long)K);
    if (is_gemm && in_at(n, 2)[0]) {
        b = fconst(s, in_at(n, 2));
        if (!b || b->n != (size_t)K || (b->t->n_dims == 2 && b->t->dims[0] != 1))
            return fail(s, "its bias C is not a float constant [%lld]", (long long)K);
    }
    imp_layer *l;
    loom_status st =
        emit(s, (layer_lowering){.kind = LOWER_DENSE, .units = (int)K}, (size_t)(N * K + K), 0, &l);
    if (st)
        return st;
    for (int64_t j = 0; j < N; j++) {
        size_t row = feature(s->img, (size_t)j);
        for (int64_t k = 0; k < K; k++)
            l->w[row * (size_t)K + (size_t)k] = tf32(w->t, (size_t)(is_t ? k * N + j : j * K + k));
    }
    for (int64_t k = 0; b && k < K; k++)
        l->w[(size_t)(N * K + k)] = tf32(b->t, (size_t)k);
    s->img = (loom_shape){0};
    s->sh = shape1((int)K);
    s->fusable = s->n_layers - 1;
    if (!is_gemm)
        s->bias_of = s->n_layers - 1;
    return LOOM_OK;
}

/* Add after a MatMul: its bias. */
static loom_status op_add(imp *s, const Onnx__NodeProto *n, int bias_of, const char *other) {
    if (bias_of < 0)
        return fail(s, "loom adds only a dense layer's bias, right after its MatMul");
    imp_layer *l = &s->layers[bias_of];
    int K = l->lw.units;
    const cval *b = fconst(s, other);
    if (!b || b->n != (size_t)K || b->t->n_dims < 1 || b->t->dims[b->t->n_dims - 1] != K)
        return fail(s, "its other input is not a float constant [%d]", K);
    for (int k = 0; k < K; k++)
        l->w[l->n_w - (size_t)K + (size_t)k] = tf32(b->t, (size_t)k);
    s->fusable = bias_of;
    (void)n;
    return LOOM_OK;
}

static loom_status op_act(imp *s, act_kind act, float alpha, int fusable) {
    if (s->f == F_RNN || s->f == F_Y || s->f == F_YH)
        return fail(s, "loom applies activations to a recurrent layer's outputs once they are "
                       "back in (N, T, F) or (N, F)");
    if (fusable >= 0 && s->layers[fusable].lw.act == ACT_NONE) {
        s->layers[fusable].lw.act = act;
        s->layers[fusable].lw.alpha = alpha;
        return LOOM_OK;
    }
    imp_layer *l;
    loom_status st =
        emit(s, (layer_lowering){.kind = LOWER_ACTIVATION, .act = act, .alpha = alpha}, 0, 0, &l);
    return st;
}

/* Sub mean then Div std on the input: loom's standardize, mean and std (D) in loom's order.
 * The constants broadcast: a scalar, per channel, or per value ((C, H, W) or (T, F)). */
static loom_status op_standardize(imp *s, const cval *std) {
    const cval *v[2] = {s->mean, std};
    int64_t d[IMP_MAX_RANK];
    int rank = cur_dims(s, d) - 1; /* per example */
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
            return fail(s, "loom's standardize takes a mean and std per value, per channel or "
                           "one of each");
    }
    imp_layer *l;
    loom_status st = emit(s, (layer_lowering){.kind = LOWER_STANDARDIZE}, 0, 2 * D, &l);
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
            l->s[(size_t)i * D + j] = tf32(v[i]->t, idx);
        }
    }
    s->mean = NULL;
    return LOOM_OK;
}

/* Gather of the last step of a forward recurrent layer's every-step output: that layer without
 * return-sequences. */
static loom_status op_gather(imp *s, const Onnx__NodeProto *n) {
    const cval *c = find(s, in_at(n, 1));
    int64_t axis = attr_i(n, "axis", 0);
    imp_layer *l = last_rnn(s);
    bool is_ok = c && c->kind == V_TENSOR &&
                 c->t->data_type == ONNX__TENSOR_PROTO__DATA_TYPE__INT64 && c->n == 1 &&
                 c->t->n_dims == 0 && l &&
                 ((s->f == F_SEQ && axis == 1) || (s->f == F_TNF && axis == 0));
    int64_t T = s->sh.d[0], i = is_ok ? ti64(c->t, 0) : 0;
    if (!is_ok || (i != -1 && i != T - 1))
        return fail(s, "loom picks one step only as the last step of a forward rnn, lstm or gru");
    l->lw.is_sequences = false;
    s->f = F_VEC;
    s->sh = shape1(s->sh.d[1]);
    return LOOM_OK;
}

static bool is_zeros(const imp *s, const char *name) {
    if (!name[0])
        return true;
    const cval *v = find(s, name);
    if (!v || v->kind == V_SIDE)
        return false;
    if (v->kind == V_ZEROS)
        return true;
    for (size_t i = 0; i < v->n; i++)
        if (v->t->data_type == ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT ? tf32(v->t, i) != 0.0f
                                                                    : ti64(v->t, i) != 0)
            return false;
    return true;
}

/* The activations attribute is absent or names the default per direction. */
static bool acts_are(const Onnx__NodeProto *n, int D, int per, const char *const *want) {
    const Onnx__AttributeProto *a = attr(n, "activations");
    if (!a)
        return true;
    if (a->n_strings != (size_t)(D * per))
        return false;
    for (size_t i = 0; i < a->n_strings; i++) {
        const char *w = want[i % (size_t)per];
        if (a->strings[i].len != strlen(w) || memcmp(a->strings[i].data, w, strlen(w)) != 0)
            return false;
    }
    return true;
}

/* RNN, LSTM, GRU over (T, N, F): W [D, G*H, F], R [D, G*H, H], B [D, 2*G*H] in ONNX's gate order
 * (lstm i o f c, gru z r h) -> loom's per direction W_ih (F, G*H), W_hh (H, G*H), b_ih, b_hh in
 * PyTorch's (lstm i f g o, gru r z n). */
static loom_status op_recurrent(imp *s, const Onnx__NodeProto *n, const char *op) {
    static const int rnn_gates[] = {0}, lstm_gates[] = {0, 3, 1, 2}, gru_gates[] = {1, 0, 2};
    bool is_lstm = strcmp(op, "LSTM") == 0, is_gru = strcmp(op, "GRU") == 0;
    const int *loom_gate = is_lstm ? lstm_gates : is_gru ? gru_gates : rnn_gates;
    int G = is_lstm ? 4 : is_gru ? 3 : 1;
    if (s->f != F_TNF)
        return fail(s,
                    "loom's recurrent layers read (T, N, F): a Transpose [1, 0, 2] of (N, T, F)");
    if (attr_i(n, "layout", 0) != 0)
        return fail(s, "layout 1: loom reads ONNX's default layout (T, N, F)");
    bool is_bi = attr_s_is(n, "direction", "bidirectional", NULL);
    if (!is_bi && !attr_s_is(n, "direction", "", "forward"))
        return fail(s, "direction reverse: loom runs forward or bidirectional");
    if (attr(n, "clip") || attr(n, "activation_alpha") || attr(n, "activation_beta") ||
        attr_i(n, "input_forget", 0) != 0)
        return fail(s, "clip, input_forget or activation parameters: loom's cells have none");
    if (is_gru && attr_i(n, "linear_before_reset", 0) != 1)
        return fail(s, "linear_before_reset = 0: loom's gru applies the reset gate after the "
                       "recurrent product (linear_before_reset = 1, as PyTorch)");
    int D = is_bi ? 2 : 1;
    static const char *const lstm_acts[] = {"Sigmoid", "Tanh", "Tanh"};
    static const char *const gru_acts[] = {"Sigmoid", "Tanh"};
    static const char *const tanh_act[] = {"Tanh"}, *const relu_act[] = {"Relu"};
    act_kind act = ACT_TANH;
    if (is_lstm  ? !acts_are(n, D, 3, lstm_acts)
        : is_gru ? !acts_are(n, D, 2, gru_acts)
                 : !acts_are(n, D, 1, tanh_act) && !(act = ACT_RELU, acts_are(n, D, 1, relu_act)))
        return fail(s, "activations: loom's cells use the defaults (an rnn Tanh or Relu)");
    int64_t Hh = attr_i(n, "hidden_size", 0), F = s->sh.d[1], T = s->sh.d[0];
    if (Hh < 1 || Hh > IMP_MAX_DIM)
        return fail(s, "hidden_size %lld", (long long)Hh);
    int H = (int)Hh;
    int64_t GH = (int64_t)G * H, dw[3] = {D, GH, F}, dr[3] = {D, GH, H}, db[2] = {D, 2 * GH};
    const cval *W, *R, *B = NULL;
    loom_status st;
    if ((st = want(s, in_at(n, 1), "W", 3, dw, &W)) || (st = want(s, in_at(n, 2), "R", 3, dr, &R)))
        return st;
    if (in_at(n, 3)[0] && (st = want(s, in_at(n, 3), "B", 2, db, &B)))
        return st;
    if (in_at(n, 4)[0] || (is_lstm && in_at(n, 7)[0]))
        return fail(s, "sequence_lens or peepholes: loom's cells have none");
    if (!is_zeros(s, in_at(n, 5)) || (is_lstm && !is_zeros(s, in_at(n, 6))))
        return fail(s, "its initial state is not zero: loom's cells start from zeros");
    size_t per = (size_t)(GH * (F + H) + 2 * GH);
    imp_layer *l;
    layer_lowering lw = {.kind = is_lstm  ? LOWER_LSTM
                                 : is_gru ? LOWER_GRU
                                          : LOWER_RNN,
                         .act = act,
                         .units = H,
                         .is_bidirectional = is_bi};
    if ((st = emit(s, lw, per * (size_t)D, 0, &l)))
        return st;
    for (int d = 0; d < D; d++) {
        float *wih = l->w + (size_t)d * per, *whh = wih + (size_t)(F * GH), *bih = whh + H * GH;
        float *bhh = bih + GH;
        for (int go = 0; go < G; go++)
            for (int j = 0; j < H; j++) {
                size_t row = (size_t)(d * GH + go * H + j), col = (size_t)(loom_gate[go] * H + j);
                for (int64_t f = 0; f < F; f++)
                    wih[(size_t)f * (size_t)GH + col] = tf32(W->t, row * (size_t)F + (size_t)f);
                for (int h = 0; h < H; h++)
                    whh[(size_t)h * (size_t)GH + col] = tf32(R->t, row * (size_t)H + (size_t)h);
                if (B) {
                    size_t bo = (size_t)(d * 2 * GH + go * H + j);
                    bih[col] = tf32(B->t, bo);
                    bhh[col] = tf32(B->t, bo + (size_t)GH);
                }
            }
    }
    s->f = F_RNN;
    s->T = (int)T, s->D = D, s->H = H;
    s->cur = n->n_output > 0 && n->output[0][0] ? n->output[0] : NULL;
    s->cur_h = n->n_output > 1 && n->output[1][0] ? n->output[1] : NULL;
    return LOOM_OK;
}

/* ---- the walk over the nodes ---- */

/* A node beside the chain: constants, zero states and the shape arithmetic that makes them. */
static loom_status side_node(imp *s, const Onnx__NodeProto *n, const char *op) {
    static const char *const shape_ops[] = {
        "Shape",           "Gather",   "Unsqueeze", "Concat", "Cast", "Squeeze", "Slice",
        "Range",           "Add",      "Sub",       "Mul",    "Div",  "Reshape", "Expand",
        "ConstantOfShape", "Identity", "Constant"};
    bool is_known = false;
    for (size_t i = 0; i < sizeof shape_ops / sizeof *shape_ops; i++)
        is_known = is_known || strcmp(op, shape_ops[i]) == 0;
    for (size_t i = 0; i < n->n_input; i++) {
        const char *in = n->input[i];
        if (!in[0] || find(s, in) || (strcmp(op, "Shape") == 0 && i == 0))
            continue;
        return fail(s,
                    "it reads '%.80s', which is not the output of the node before it in the "
                    "chain ('%.80s'): loom's layers form one chain, without branches",
                    in, s->cur ? s->cur : "");
    }
    if (!is_known)
        return fail(s, "loom has no layer for %.40s", op);
    const cval *in0 = n->n_input > 0 && n->input[0][0] ? find(s, n->input[0]) : NULL;
    for (size_t i = 0; i < n->n_output; i++) {
        if (!n->output[i][0])
            continue;
        vkind k = V_SIDE;
        const Onnx__TensorProto *t = NULL;
        if (strcmp(op, "Constant") == 0) {
            const Onnx__AttributeProto *a = attr(n, "value");
            if (a && a->t)
                k = V_TENSOR, t = a->t;
        } else if (strcmp(op, "Identity") == 0 && in0) {
            k = in0->kind, t = in0->t;
        } else if (strcmp(op, "ConstantOfShape") == 0) {
            const Onnx__AttributeProto *a = attr(n, "value");
            size_t cnt;
            bool is_zero = !a || !a->t;
            if (!is_zero && check_tensor(s, a->t, "value", &cnt) == LOOM_OK) {
                is_zero = true;
                for (size_t j = 0; j < cnt; j++)
                    is_zero = is_zero && (a->t->data_type == ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT
                                              ? tf32(a->t, j) == 0.0f
                                              : ti64(a->t, j) == 0);
            }
            k = is_zero ? V_ZEROS : V_SIDE;
        } else if (strcmp(op, "Expand") == 0 && in0 && is_zeros(s, n->input[0])) {
            k = V_ZEROS;
        }
        loom_status st = add_val(s, n->output[i], k, t);
        if (st)
            return st;
    }
    return LOOM_OK;
}

static bool op_is(const char *op, const char *a) { return strcmp(op, a) == 0; }

/* A node on the chain: it reads the current value. */
static loom_status chain_node(imp *s, const Onnx__NodeProto *n, const char *op, bool is_h) {
    if (s->is_done)
        return fail(s, "it comes after the final Softmax: loom's softmax closes the model");
    if (s->mean && !op_is(op, "Div"))
        return fail(s, "a Sub not followed by Div: loom's standardize is (x - mean) / std");
    if (s->f == F_RNN) {
        s->f = is_h ? F_YH : F_Y;
        s->layers[s->n_layers - 1].lw.is_sequences = !is_h;
    }
    int fusable = s->fusable, bias_of = s->bias_of;
    s->fusable = s->bias_of = -1;
    const char *out = n->n_output > 0 ? n->output[0] : "";
    const char *other = n->n_input > 1 ? n->input[1] : "";
    if (n->n_input > 1 && strcmp(other, s->cur ? s->cur : "") == 0 &&
        (op_is(op, "Add") || op_is(op, "Mul")))
        other = n->input[0]; /* Add(b, x) */
    loom_status st = LOOM_OK;
    bool is_first = !s->has_chain_op;
    s->has_chain_op = true;
    if (op_is(op, "Identity") || op_is(op, "Dropout")) {
        s->fusable = fusable, s->bias_of = bias_of;
    } else if (op_is(op, "Div")) {
        const cval *c = fconst(s, other);
        if (is_first && c && c->n == 1 && tf32(c->t, 0) == 255.0f && !s->is_scaled)
            s->is_scaled = true;
        else if (s->mean && c)
            st = op_standardize(s, c);
        else
            return fail(s, "loom divides only the input: pixels by 255, or (x - mean) by std");
    } else if (op_is(op, "Sub")) {
        bool is_start = s->n_layers == 0 ||
                        (s->n_layers == 1 && s->layers[0].lw.kind == LOWER_ROWS && s->f == F_SEQ);
        if (!is_start || !(s->mean = fconst(s, other)) || (s->f != F_IMG && s->f != F_SEQ))
            return fail(s, "loom subtracts only a constant mean from the input (standardize)");
        if (!op_is(in_at(n, 0), s->cur))
            return fail(s, "loom subtracts the mean from the input, not the input from it");
    } else if (op_is(op, "Relu")) {
        st = op_act(s, ACT_RELU, 0.0f, fusable);
    } else if (op_is(op, "Tanh")) {
        st = op_act(s, ACT_TANH, 0.0f, fusable);
    } else if (op_is(op, "Sigmoid")) {
        st = op_act(s, ACT_SIGMOID, 0.0f, fusable);
    } else if (op_is(op, "LeakyRelu") || op_is(op, "Elu")) {
        bool is_elu = op_is(op, "Elu");
        float alpha = attr_f(n, "alpha", is_elu ? 1.0f : 0.01f);
        if (!(alpha > 0.0f))
            return fail(s, "alpha %g: loom's is > 0", (double)alpha);
        st = op_act(s, is_elu ? ACT_ELU : ACT_LEAKY_RELU, alpha, fusable);
    } else if (op_is(op, "Conv")) {
        st = op_conv(s, n);
    } else if (op_is(op, "MaxPool") || op_is(op, "AveragePool")) {
        st = op_pool(s, n, op_is(op, "MaxPool"));
    } else if (op_is(op, "GlobalAveragePool")) {
        if (s->f != F_IMG)
            return fail(s, "loom pools images (N, C, H, W) only");
        st = emit_plain(s, LOWER_GLOBALAVGPOOL);
        s->f = F_GAP;
        s->sh = shape1(s->sh.d[2]);
    } else if (op_is(op, "BatchNormalization")) {
        st = op_batchnorm(s, n);
    } else if (op_is(op, "Gemm") || op_is(op, "MatMul")) {
        st = op_dense(s, n, op_is(op, "Gemm"));
    } else if (op_is(op, "Add")) {
        st = op_add(s, n, bias_of, other);
    } else if (op_is(op, "Flatten") || op_is(op, "Reshape") || op_is(op, "Squeeze")) {
        st = op_shape(s, n, op);
    } else if (op_is(op, "Transpose")) {
        st = op_transpose(s, n);
    } else if (op_is(op, "Gather")) {
        st = op_gather(s, n);
    } else if (op_is(op, "Softmax")) {
        int64_t axis = attr_i(n, "axis", -1);
        if (s->f != F_VEC || (axis != -1 && axis != 1))
            return fail(s, "loom's softmax is over a vector's classes, at the end");
        s->is_done = true;
    } else if (op_is(op, "RNN") || op_is(op, "LSTM") || op_is(op, "GRU")) {
        return op_recurrent(s, n, op);
    } else {
        return fail(s, "loom has no layer for %.40s", op);
    }
    if (st)
        return st;
    if (!out[0])
        return fail(s, "it has no output");
    s->cur = out;
    s->cur_h = NULL;
    return LOOM_OK;
}

static loom_status graph_input(imp *s, const Onnx__GraphProto *g, int *H, int *W, int *C);

static loom_status walk(imp *s, const Onnx__GraphProto *g, int *H, int *W, int *C) {
    loom_status st;
    for (size_t i = 0; i < g->n_initializer; i++)
        if ((st = add_val(s, g->initializer[i]->name ? g->initializer[i]->name : "", V_TENSOR,
                          g->initializer[i])))
            return st;
    if ((st = graph_input(s, g, H, W, C)))
        return st;
    for (size_t i = 0; i < g->n_node; i++) {
        const Onnx__NodeProto *n = g->node[i];
        s->node = n;
        s->node_i = (int)i;
        const char *op = n->op_type ? n->op_type : "";
        if (n->domain && n->domain[0] && strcmp(n->domain, "ai.onnx") != 0)
            return fail(s, "domain '%.40s': loom reads ONNX's default domain", n->domain);
        for (size_t k = 0; k < n->n_input; k++)
            if (!n->input[k])
                return fail(s, "an input without a name");
        for (size_t k = 0; k < n->n_output; k++)
            if (!n->output[k])
                return fail(s, "an output without a name");
        const char *in0 = n->n_input > 0 ? n->input[0] : "";
        const char *in1 = n->n_input > 1 ? n->input[1] : "";
        bool is_cur =
            s->cur && (strcmp(in0, s->cur) == 0 || (op_is(op, "Add") && strcmp(in1, s->cur) == 0));
        bool is_h = s->cur_h && strcmp(in0, s->cur_h) == 0;
        if ((is_cur || is_h) && !op_is(op, "Shape"))
            st = chain_node(s, n, op, is_h);
        else
            st = side_node(s, n, op);
        if (st)
            return st;
    }
    s->node = NULL;
    if (s->mean)
        return fail(s, "the graph ends after a Sub");
    const char *out = g->n_output == 1 && g->output[0]->name ? g->output[0]->name : "";
    if (!s->cur || strcmp(out, s->cur) != 0 || s->f != F_VEC)
        return fail(s,
                    "the graph's output '%.80s' is not the chain's last value, a vector "
                    "(N, classes)",
                    out);
    if (s->n_layers == 0)
        return fail(s, "no layers");
    return LOOM_OK;
}

/* The graph's one input that is not an initializer: images (N, C, H, W) or sequences (N, T, F),
 * float32, every dimension but the batch known. */
static loom_status graph_input(imp *s, const Onnx__GraphProto *g, int *H, int *W, int *C) {
    const Onnx__ValueInfoProto *in = NULL;
    for (size_t i = 0; i < g->n_input; i++) {
        const char *nm = g->input[i]->name ? g->input[i]->name : "";
        if (find(s, nm))
            continue;
        if (in)
            return fail(s, "the graph has two inputs ('%.80s', '%.80s'): loom models take one",
                        in->name, nm);
        in = g->input[i];
    }
    if (!in || !in->name || !in->name[0])
        return fail(s, "the graph has no input");
    const Onnx__TypeProto *t = in->type;
    const Onnx__TensorShapeProto *sp =
        t && t->value_case == ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE && t->tensor_type
            ? t->tensor_type->shape
            : NULL;
    if (!sp || t->tensor_type->elem_type != ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT ||
        (sp->n_dim != 3 && sp->n_dim != 4))
        return fail(s,
                    "input '%.80s': loom takes float32 images (N, C, H, W) or sequences "
                    "(N, T, F)",
                    in->name);
    int64_t d[4] = {0, 1, 1, 1};
    for (size_t i = 1; i < sp->n_dim; i++) {
        const Onnx__TensorShapeProto__Dimension *x = sp->dim[i];
        if (x->value_case != ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE ||
            x->dim_value < 1 || x->dim_value > IMP_MAX_DIM)
            return fail(s, "input '%.80s': dimension %zu is not a size from 1 to %d", in->name, i,
                        IMP_MAX_DIM);
        d[i] = x->dim_value;
    }
    if (d[1] * d[2] * d[3] > LOOM_MAX_VALUES)
        return fail(s, "input '%.80s': more than %d values per example", in->name, LOOM_MAX_VALUES);
    s->cur = in->name;
    if (sp->n_dim == 4) {
        *H = (int)d[2], *W = (int)d[3], *C = (int)d[1];
        s->f = F_IMG;
        s->sh = shape3(*H, *W, *C);
        return LOOM_OK;
    }
    *H = (int)d[1], *W = (int)d[2], *C = 1; /* loom's rows of a (T, F) image */
    s->f = F_SEQ;
    s->sh = shape2(*H, *W);
    return emit_plain(s, LOWER_ROWS);
}

/* ---- the loom model ---- */

static void float_word(char *buf, size_t n, float f) {
    for (int prec = 6; prec <= 9; prec++) {
        snprintf(buf, n, "%.*g", prec, (double)f);
        if (strtof(buf, NULL) == f)
            return;
    }
}

static void act_words(char *buf, size_t n, act_kind a, float alpha) {
    char al[32];
    float_word(al, sizeof al, alpha);
    if (a == ACT_NONE)
        buf[0] = '\0';
    else if (a == ACT_LEAKY_RELU || a == ACT_ELU)
        snprintf(buf, n, " %s %s", act_name(a), al);
    else
        snprintf(buf, n, " %s", act_name(a));
}

/* Layer l's line of the model language. */
static void line_of(const imp_layer *l, char *buf, size_t n) {
    const layer_lowering *w = &l->lw;
    char act[64], a[32];
    act_words(act, sizeof act, w->act, w->alpha);
    static const char *const cells[] = {"rnn", "lstm", "gru"};
    switch (w->kind) {
    case LOWER_DENSE:
        snprintf(buf, n, "dense %d%s", w->units, w->is_softmax ? " softmax" : act);
        break;
    case LOWER_CONV:
        snprintf(buf, n, "conv %d %dx%d s%d%s%s", w->units, w->kh, w->kw, w->sh,
                 w->pad[0] || w->pad[1] || w->pad[2] || w->pad[3] ? " same" : "", act);
        break;
    case LOWER_MAXPOOL:
    case LOWER_AVGPOOL:
        if (w->sh == w->kh && w->sw == w->kw)
            snprintf(buf, n, "%s %dx%d", w->kind == LOWER_MAXPOOL ? "maxpool" : "avgpool", w->kh,
                     w->kw);
        else
            snprintf(buf, n, "%s %dx%d stride %d", w->kind == LOWER_MAXPOOL ? "maxpool" : "avgpool",
                     w->kh, w->kw, w->sh);
        break;
    case LOWER_GLOBALAVGPOOL: snprintf(buf, n, "globalavgpool"); break;
    case LOWER_BATCHNORM: {
        char m[32] = "";
        float_word(a, sizeof a, w->eps);
        if (l->has_momentum)
            float_word(m, sizeof m, l->momentum);
        snprintf(buf, n, "batchnorm eps %s%s%s", a, l->has_momentum ? " momentum " : "", m);
        break;
    }
    case LOWER_DROPOUT: snprintf(buf, n, "dropout 0"); break;
    case LOWER_FLATTEN: snprintf(buf, n, "flatten"); break;
    case LOWER_ACTIVATION: snprintf(buf, n, "%s", act + 1); break;
    case LOWER_STANDARDIZE: snprintf(buf, n, "standardize"); break;
    case LOWER_RNN:
    case LOWER_LSTM:
    case LOWER_GRU:
        snprintf(buf, n, "%s %d%s%s%s", cells[w->kind - LOWER_RNN], w->units,
                 w->is_sequences ? " return-sequences" : "",
                 w->is_bidirectional ? " bidirectional" : "",
                 w->kind == LOWER_RNN && w->act == ACT_RELU ? " activation relu" : "");
        break;
    case LOWER_ROWS: snprintf(buf, n, "rows"); break;
    case LOWER_COLUMNS: snprintf(buf, n, "columns"); break;
    }
}

/* A model's inference steps as lowerings: dropouts left out, a fused activation its own step, so
 * that "dense 8" + "relu" and "dense 8 relu" compare equal. Returns the count (at most cap). */
static int steps_of(const loom_model *m, layer_lowering *out, int cap) {
    int n = 0;
    for (int i = 0; i < m->n_layers && n + 2 <= cap; i++) {
        layer_lowering lw;
        m->layers[i].ops->lower(&m->layers[i], &lw);
        if (lw.kind == LOWER_DROPOUT)
            continue;
        if ((lw.kind == LOWER_DENSE || lw.kind == LOWER_CONV) && lw.act != ACT_NONE &&
            !lw.is_softmax) {
            out[n] = lw;
            out[n++].act = ACT_NONE;
            lw = (layer_lowering){.kind = LOWER_ACTIVATION, .act = lw.act, .alpha = lw.alpha};
        }
        lw.is_softmax = false;
        out[n++] = lw;
    }
    return n;
}

static bool same_steps(const loom_model *a, const loom_model *b) {
    layer_lowering sa[2 * MODEL_MAX_LAYERS], sb[2 * MODEL_MAX_LAYERS];
    int na = steps_of(a, sa, 2 * MODEL_MAX_LAYERS), nb = steps_of(b, sb, 2 * MODEL_MAX_LAYERS);
    if (na != nb || a->n_params != b->n_params || a->n_state != b->n_state ||
        memcmp(&a->in, &b->in, sizeof a->in) != 0)
        return false;
    for (int i = 0; i < na; i++) {
        const layer_lowering *x = &sa[i], *y = &sb[i];
        if (x->kind != y->kind || x->act != y->act || x->alpha != y->alpha ||
            x->units != y->units || x->kh != y->kh || x->kw != y->kw || x->sh != y->sh ||
            x->sw != y->sw || memcmp(x->pad, y->pad, sizeof x->pad) != 0 ||
            x->is_sequences != y->is_sequences || x->is_bidirectional != y->is_bidirectional ||
            x->eps != y->eps)
            return false;
    }
    return true;
}

static const char *meta(const Onnx__ModelProto *mp, const char *key) {
    for (size_t i = 0; i < mp->n_metadata_props; i++) {
        const Onnx__StringStringEntryProto *p = mp->metadata_props[i];
        if (p->key && p->value && strcmp(p->key, key) == 0)
            return p->value;
    }
    return NULL;
}

/* The loom model of the walk: its text, then the numbers layer by layer. When the file's
 * metadata holds a loom model text (loom's own export) that describes the same inference steps,
 * that text is used instead: it keeps what the graph cannot (dropout rates, momentum). */
static loom_status build_model(imp *s, const Onnx__ModelProto *mp, int H, int W, int C,
                               loom_model **out) {
    imp_layer *last = &s->layers[s->n_layers - 1];
    if (last->lw.kind == LOWER_DENSE && last->lw.act == ACT_NONE)
        last->lw.is_softmax = true; /* loom's outputs are the softmax of the last layer */
    size_t cap = 128 * (size_t)s->n_layers + 1, len = 0;
    char *text = malloc(cap);
    if (!text)
        return nomem(s);
    for (int i = 0; i < s->n_layers; i++) {
        line_of(&s->layers[i], text + len, cap - len - 1);
        len += strlen(text + len);
        text[len++] = '\n';
        text[len] = '\0';
    }
    loom_model *m = NULL, *mm = NULL;
    loom_error e2 = {0};
    loom_status st = loom_model_create(&m, text, s->src, H, W, C, s->err);
    free(text);
    if (st)
        return st;
    size_t pw = 0, ps = 0;
    for (int i = 0; i < s->n_layers; i++)
        pw += s->layers[i].n_w, ps += s->layers[i].n_s;
    if (pw != m->n_params || ps != m->n_state) {
        loom_model_destroy(m);
        return fail(s, "the layers hold %zu parameters, the model text %zu", pw, m->n_params);
    }
    pw = ps = 0;
    for (int i = 0; i < s->n_layers; i++) {
        const imp_layer *l = &s->layers[i];
        if (l->n_w)
            memcpy(m->params + pw, l->w, sizeof(float) * l->n_w);
        if (l->n_s)
            memcpy(m->state + ps, l->s, sizeof(float) * l->n_s);
        pw += l->n_w, ps += l->n_s;
    }
    const char *mt = meta(mp, "loom_model");
    if (mt && loom_model_create(&mm, mt, s->src, H, W, C, &e2) == LOOM_OK && same_steps(m, mm)) {
        memcpy(mm->params, m->params, sizeof(float) * m->n_params);
        memcpy(mm->state, m->state, sizeof(float) * m->n_state);
        loom_model_destroy(m);
        m = mm;
        mm = NULL;
    }
    loom_model_destroy(mm);
    *out = m;
    return LOOM_OK;
}

/* "class_names=[...]" when the metadata holds loom's class names, one per output. */
static char *config_of(const Onnx__ModelProto *mp, const loom_model *m) {
    const char *names = meta(mp, "class_names");
    cJSON *a = names ? cJSON_Parse(names) : NULL;
    bool is_ok = cJSON_IsArray(a) && cJSON_GetArraySize(a) == loom_model_n_outputs(m);
    for (cJSON *e = is_ok ? a->child : NULL; e; e = e->next)
        is_ok = is_ok && cJSON_IsString(e) && !strchr(e->valuestring, '\n');
    char *flat = is_ok ? cJSON_PrintUnformatted(a) : NULL;
    cJSON_Delete(a);
    size_t n = (flat ? strlen(flat) : 0) + 64;
    char *config = malloc(n);
    if (config)
        snprintf(config, n, "imported=onnx\n%s%s%s", flat ? "class_names=" : "", flat ? flat : "",
                 flat ? "\n" : "");
    cJSON_free(flat);
    return config;
}

loom_status loom_import_onnx_buffer(loom_model **out, char **config_out, const void *data,
                                    size_t size, const char *source, loom_error *err) {
    if (!out || (!data && size) || !source)
        return loom_error_set(err, LOOM_ERR_ARG, "onnx import: NULL argument");
    *out = NULL;
    if (config_out)
        *config_out = NULL;
    budget b = {.used = 0, .limit = 16 * size + ((size_t)16 << 20)};
    ProtobufCAllocator alloc = {budget_alloc, budget_free, &b};
    Onnx__ModelProto *mp = onnx__model_proto__unpack(&alloc, size, data);
    if (!mp)
        return loom_error_set(err, LOOM_ERR_FORMAT,
                              "%s: not an ONNX model (the protobuf does not decode%s)", source,
                              b.used > b.limit / 2 ? ", or it needs too much memory" : "");
    imp s = {.src = source, .err = err, .fusable = -1, .bias_of = -1};
    loom_status st = LOOM_OK;
    int H = 0, W = 0, C = 0;
    bool has_opset = false;
    for (size_t i = 0; i < mp->n_opset_import; i++) {
        const Onnx__OperatorSetIdProto *o = mp->opset_import[i];
        if (!o->domain || !o->domain[0] || strcmp(o->domain, "ai.onnx") == 0)
            has_opset = o->has_version && o->version >= 7;
    }
    if (!mp->graph)
        st = fail(&s, "the model has no graph");
    else if (!has_opset)
        st = fail(&s, "no default-domain opset from 7 on: loom reads ONNX opsets 7 and later");
    else if (mp->graph->n_node > IMP_MAX_NODES)
        st = fail(&s, "%zu nodes: loom reads graphs of up to %d", mp->graph->n_node, IMP_MAX_NODES);
    if (!st && !(st = walk(&s, mp->graph, &H, &W, &C)))
        st = build_model(&s, mp, H, W, C, out);
    if (!st && config_out && !(*config_out = config_of(mp, *out))) {
        loom_model_destroy(*out);
        *out = NULL;
        st = nomem(&s);
    }
    for (int i = 0; i < s.n_layers; i++) {
        free(s.layers[i].w);
        free(s.layers[i].s);
    }
    free(s.vals);
    onnx__model_proto__free_unpacked(mp, &alloc);
    return st;
}

loom_status loom_import_onnx(loom_model **out, char **config_out, const char *path,
                             loom_error *err) {
    if (!out || !path)
        return loom_error_set(err, LOOM_ERR_ARG, "onnx import: NULL argument");
    *out = NULL;
    char *buf = NULL;
    size_t len = 0;
    loom_status st = loom_file_read_all(path, &buf, &len, err);
    if (st)
        return st;
    st = loom_import_onnx_buffer(out, config_out, buf, len, path, err);
    free(buf);
    return st;
}
