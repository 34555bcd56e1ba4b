/* onnx_import_util.c - what the ONNX import's walk (onnx_import.c) and its per-op handlers
 * (onnx_import_layers.c) share, below both: the one-line refusal, attribute and tensor readers,
 * the values known so far (constants, shapes), emitting a loom layer, and where a feature of an
 * NCHW-flattened image sits in loom's (h, w, c) order. */
#include "onnx_import.h"

#include <stdarg.h>

loom_status imp_fail(imp *s, const char *fmt, ...) {
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

loom_status imp_nomem(imp *s) {
    return loom_error_set(s->err, LOOM_ERR_NOMEM, "%s: out of memory", s->src);
}

/* A tensor's values must be there, as many as its dims say: float32 or int64, raw
 * little-endian or typed fields, no external data. */
loom_status imp_check_tensor(imp *s, const Onnx__TensorProto *t, const char *what, size_t *n) {
    const char *nm = t->name ? t->name : "";
    if (t->has_data_location && t->data_location == ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL)
        return imp_fail(s, "%s '%.80s' keeps its data in another file: loom reads one file", what,
                        nm);
    bool is_f32 = t->data_type == ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT;
    if (!is_f32 && t->data_type != ONNX__TENSOR_PROTO__DATA_TYPE__INT64)
        return imp_fail(s, "%s '%.80s' has data type %d: loom takes float32 (and int64 shapes)",
                        what, nm, (int)t->data_type);
    if (t->n_dims > IMP_MAX_RANK)
        return imp_fail(s, "%s '%.80s' has rank %zu", what, nm, t->n_dims);
    size_t count = 1, have = is_f32 ? t->n_float_data : t->n_int64_data, es = is_f32 ? 4 : 8;
    if (t->has_raw_data)
        have = t->raw_data.len / es;
    for (size_t i = 0; i < t->n_dims; i++) {
        if (t->dims[i] < 0 || (uint64_t)t->dims[i] > (uint64_t)have + 1)
            return imp_fail(s, "%s '%.80s': dimension %lld does not fit its %zu values", what, nm,
                            (long long)t->dims[i], have);
        count *= (size_t)t->dims[i];
        if (count > have + 1)
            break;
    }
    if (count != have || (t->has_raw_data && t->raw_data.len != count * es))
        return imp_fail(s, "%s '%.80s': its dims call for %zu values, the data holds %zu", what, nm,
                        count, have);
    *n = count;
    return LOOM_OK;
}

float imp_f32(const Onnx__TensorProto *t, size_t i) {
    if (!t->has_raw_data)
        return t->float_data[i];
    const uint8_t *p = t->raw_data.data + 4 * i;
    uint32_t u = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

int64_t imp_i64(const Onnx__TensorProto *t, size_t i) {
    if (!t->has_raw_data)
        return t->int64_data[i];
    uint64_t u = 0;
    for (int k = 0; k < 8; k++)
        u |= (uint64_t)t->raw_data.data[8 * i + (size_t)k] << (8 * k);
    return (int64_t)u;
}

const cval *imp_find(const imp *s, const char *name) {
    for (size_t i = s->n_vals; i-- > 0;)
        if (strcmp(s->vals[i].name, name) == 0)
            return &s->vals[i];
    return NULL;
}

loom_status imp_add_val(imp *s, const char *name, vkind kind, const Onnx__TensorProto *t) {
    if (s->n_vals == s->cap_vals) {
        size_t cap = s->cap_vals ? 2 * s->cap_vals : 64;
        cval *v = realloc(s->vals, cap * sizeof *v);
        if (!v)
            return imp_nomem(s);
        s->vals = v;
        s->cap_vals = cap;
    }
    cval v = {.name = name, .kind = kind, .t = t};
    if (kind == V_TENSOR) {
        loom_status st = imp_check_tensor(s, t, "constant", &v.n);
        if (st)
            return st;
    }
    s->vals[s->n_vals++] = v;
    return LOOM_OK;
}

/* A float constant with the given dims (rank, dims; rank -1: any). */
const cval *imp_fconst(imp *s, const char *name) {
    const cval *v = name && name[0] ? imp_find(s, name) : NULL;
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
loom_status imp_want(imp *s, const char *name, const char *what, int rank, const int64_t *d,
                     const cval **out) {
    *out = imp_fconst(s, name);
    if (!*out)
        return imp_fail(s,
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
        return imp_fail(s, "its %s has dims [%s], expected [%s]", what, got, exp);
    }
    return LOOM_OK;
}

/* ---- attributes ---- */

const Onnx__AttributeProto *imp_attr(const Onnx__NodeProto *n, const char *key) {
    for (size_t i = 0; i < n->n_attribute; i++)
        if (n->attribute[i]->name && strcmp(n->attribute[i]->name, key) == 0)
            return n->attribute[i];
    return NULL;
}

int64_t imp_attr_i(const Onnx__NodeProto *n, const char *key, int64_t def) {
    const Onnx__AttributeProto *a = imp_attr(n, key);
    return a && a->has_i ? a->i : def;
}

float imp_attr_f(const Onnx__NodeProto *n, const char *key, float def) {
    const Onnx__AttributeProto *a = imp_attr(n, key);
    return a && a->has_f ? a->f : def;
}

/* The ints attribute key as exactly count values in out; absent: def (may be NULL: false). */
bool imp_attr_ints(const Onnx__NodeProto *n, const char *key, int count, const int64_t *def,
                   int64_t *out) {
    const Onnx__AttributeProto *a = imp_attr(n, key);
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
bool imp_attr_s_is(const Onnx__NodeProto *n, const char *key, const char *a1, const char *a2) {
    const Onnx__AttributeProto *a = imp_attr(n, key);
    size_t len = a && a->has_s ? a->s.len : 0;
    const char *p = a && a->has_s ? (const char *)a->s.data : "";
    return (strlen(a1) == len && memcmp(p, a1, len) == 0) ||
           (a2 && strlen(a2) == len && memcmp(p, a2, len) == 0);
}

/* ---- the layers the import emits ---- */

loom_status imp_emit(imp *s, layer_lowering lw, size_t n_w, size_t n_s, imp_layer **out) {
    if (s->n_layers == MODEL_MAX_LAYERS)
        return imp_fail(s, "more than %d layers", MODEL_MAX_LAYERS);
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
        return imp_nomem(s);
    }
    s->n_layers++;
    s->fusable = -1;
    s->bias_of = -1;
    *out = l;
    return LOOM_OK;
}

loom_status imp_emit_plain(imp *s, lower_kind kind) {
    imp_layer *l;
    return imp_emit(s, (layer_lowering){.kind = kind}, 0, 0, &l);
}

/* Where feature j of a vector flattened from an NCHW image (order (c, h, w)) sits in loom's
 * (h, w, c) flattening; the same j when img is not an image. */
size_t imp_feature(loom_shape img, size_t j) {
    if (img.rank != 3)
        return j;
    size_t H = (size_t)img.d[0], W = (size_t)img.d[1], C = (size_t)img.d[2];
    size_t c = j / (H * W), h = j / W % H, w = j % W;
    return (h * W + w) * C + c;
}
