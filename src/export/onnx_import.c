/* onnx_import.c - the door from ONNX, the inverse of onnx.c: an ONNX model (a chain of the nodes
 * loom's layers can express) read into a loom model. The graph's layouts (images NCHW, sequences
 * (N, T, F) or ONNX's (T, N, F), recurrent outputs (T, D, N, H)) are tracked node by node as a
 * "form" of the current value; loom's layers keep theirs (images (H, W, C), vectors in (h, w, c)
 * order). The file is unpacked with a size-limited allocator and every tensor's size is checked
 * against the bytes that hold it. Mapping per op: docs/FORMATS.md, "ONNX import". */
#include "onnx_import.h"

#include <cjson/cJSON.h>
#include <stdarg.h>
#include <stddef.h>

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
        if (!in[0] || imp_find(s, in) || (strcmp(op, "Shape") == 0 && i == 0))
            continue;
        return imp_fail(s,
                        "it reads '%.80s', which is not the output of the node before it in the "
                        "chain ('%.80s'): loom's layers form one chain, without branches",
                        in, s->cur ? s->cur : "");
    }
    if (!is_known)
        return imp_fail(s, "loom has no layer for %.40s", op);
    const cval *in0 = n->n_input > 0 && n->input[0][0] ? imp_find(s, n->input[0]) : NULL;
    for (size_t i = 0; i < n->n_output; i++) {
        if (!n->output[i][0])
            continue;
        vkind k = V_SIDE;
        const Onnx__TensorProto *t = NULL;
        if (strcmp(op, "Constant") == 0) {
            const Onnx__AttributeProto *a = imp_attr(n, "value");
            if (a && a->t)
                k = V_TENSOR, t = a->t;
        } else if (strcmp(op, "Identity") == 0 && in0) {
            k = in0->kind, t = in0->t;
        } else if (strcmp(op, "ConstantOfShape") == 0) {
            const Onnx__AttributeProto *a = imp_attr(n, "value");
            size_t cnt;
            bool is_zero = !a || !a->t;
            if (!is_zero && imp_check_tensor(s, a->t, "value", &cnt) == LOOM_OK) {
                is_zero = true;
                for (size_t j = 0; j < cnt; j++)
                    is_zero = is_zero && (a->t->data_type == ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT
                                              ? imp_f32(a->t, j) == 0.0f
                                              : imp_i64(a->t, j) == 0);
            }
            k = is_zero ? V_ZEROS : V_SIDE;
        } else if (strcmp(op, "Expand") == 0 && in0 && imp_is_zeros(s, n->input[0])) {
            k = V_ZEROS;
        }
        loom_status st = imp_add_val(s, n->output[i], k, t);
        if (st)
            return st;
    }
    return LOOM_OK;
}

static bool op_is(const char *op, const char *a) { return strcmp(op, a) == 0; }

/* A node on the chain: it reads the current value. */
static loom_status chain_node(imp *s, const Onnx__NodeProto *n, const char *op, bool is_h) {
    if (s->is_done)
        return imp_fail(s, "it comes after the final Softmax: loom's softmax closes the model");
    if (s->mean && !op_is(op, "Div"))
        return imp_fail(s, "a Sub not followed by Div: loom's standardize is (x - mean) / std");
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
        const cval *c = imp_fconst(s, other);
        if (is_first && c && c->n == 1 && imp_f32(c->t, 0) == 255.0f && !s->is_scaled)
            s->is_scaled = true;
        else if (s->mean && c)
            st = imp_op_standardize(s, c);
        else
            return imp_fail(s, "loom divides only the input: pixels by 255, or (x - mean) by std");
    } else if (op_is(op, "Sub")) {
        bool is_start = s->n_layers == 0 ||
                        (s->n_layers == 1 && s->layers[0].lw.kind == LOWER_ROWS && s->f == F_SEQ);
        if (!is_start || !(s->mean = imp_fconst(s, other)) || (s->f != F_IMG && s->f != F_SEQ))
            return imp_fail(s, "loom subtracts only a constant mean from the input (standardize)");
        if (!op_is(imp_in_at(n, 0), s->cur))
            return imp_fail(s, "loom subtracts the mean from the input, not the input from it");
    } else if (op_is(op, "Relu")) {
        st = imp_op_act(s, ACT_RELU, 0.0f, fusable);
    } else if (op_is(op, "Tanh")) {
        st = imp_op_act(s, ACT_TANH, 0.0f, fusable);
    } else if (op_is(op, "Sigmoid")) {
        st = imp_op_act(s, ACT_SIGMOID, 0.0f, fusable);
    } else if (op_is(op, "LeakyRelu") || op_is(op, "Elu")) {
        bool is_elu = op_is(op, "Elu");
        float alpha = imp_attr_f(n, "alpha", is_elu ? 1.0f : 0.01f);
        if (!(alpha > 0.0f))
            return imp_fail(s, "alpha %g: loom's is > 0", (double)alpha);
        st = imp_op_act(s, is_elu ? ACT_ELU : ACT_LEAKY_RELU, alpha, fusable);
    } else if (op_is(op, "Conv")) {
        st = imp_op_conv(s, n);
    } else if (op_is(op, "MaxPool") || op_is(op, "AveragePool")) {
        st = imp_op_pool(s, n, op_is(op, "MaxPool"));
    } else if (op_is(op, "GlobalAveragePool")) {
        if (s->f != F_IMG)
            return imp_fail(s, "loom pools images (N, C, H, W) only");
        st = imp_emit_plain(s, LOWER_GLOBALAVGPOOL);
        s->f = F_GAP;
        s->sh = shape1(s->sh.d[2]);
    } else if (op_is(op, "BatchNormalization")) {
        st = imp_op_batchnorm(s, n);
    } else if (op_is(op, "Gemm") || op_is(op, "MatMul")) {
        st = imp_op_dense(s, n, op_is(op, "Gemm"));
    } else if (op_is(op, "Add")) {
        st = imp_op_add(s, n, bias_of, other);
    } else if (op_is(op, "Flatten") || op_is(op, "Reshape") || op_is(op, "Squeeze")) {
        st = imp_op_shape(s, n, op);
    } else if (op_is(op, "Transpose")) {
        st = imp_op_transpose(s, n);
    } else if (op_is(op, "Gather")) {
        st = imp_op_gather(s, n);
    } else if (op_is(op, "Softmax")) {
        int64_t axis = imp_attr_i(n, "axis", -1);
        if (s->f != F_VEC || (axis != -1 && axis != 1))
            return imp_fail(s, "loom's softmax is over a vector's classes, at the end");
        s->is_done = true;
    } else if (op_is(op, "RNN") || op_is(op, "LSTM") || op_is(op, "GRU")) {
        return imp_op_recurrent(s, n, op);
    } else {
        return imp_fail(s, "loom has no layer for %.40s", op);
    }
    if (st)
        return st;
    if (!out[0])
        return imp_fail(s, "it has no output");
    s->cur = out;
    s->cur_h = NULL;
    return LOOM_OK;
}

static loom_status graph_input(imp *s, const Onnx__GraphProto *g, int *H, int *W, int *C);

static loom_status walk(imp *s, const Onnx__GraphProto *g, int *H, int *W, int *C) {
    loom_status st;
    for (size_t i = 0; i < g->n_initializer; i++)
        if ((st = imp_add_val(s, g->initializer[i]->name ? g->initializer[i]->name : "", V_TENSOR,
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
            return imp_fail(s, "domain '%.40s': loom reads ONNX's default domain", n->domain);
        for (size_t k = 0; k < n->n_input; k++)
            if (!n->input[k])
                return imp_fail(s, "an input without a name");
        for (size_t k = 0; k < n->n_output; k++)
            if (!n->output[k])
                return imp_fail(s, "an output without a name");
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
        return imp_fail(s, "the graph ends after a Sub");
    const char *out = g->n_output == 1 && g->output[0]->name ? g->output[0]->name : "";
    if (!s->cur || strcmp(out, s->cur) != 0 || s->f != F_VEC)
        return imp_fail(s,
                        "the graph's output '%.80s' is not the chain's last value, a vector "
                        "(N, classes)",
                        out);
    if (s->n_layers == 0)
        return imp_fail(s, "no layers");
    return LOOM_OK;
}

/* The graph's one input that is not an initializer: images (N, C, H, W) or sequences (N, T, F),
 * float32, every dimension but the batch known. */
static loom_status graph_input(imp *s, const Onnx__GraphProto *g, int *H, int *W, int *C) {
    const Onnx__ValueInfoProto *in = NULL;
    for (size_t i = 0; i < g->n_input; i++) {
        const char *nm = g->input[i]->name ? g->input[i]->name : "";
        if (imp_find(s, nm))
            continue;
        if (in)
            return imp_fail(s, "the graph has two inputs ('%.80s', '%.80s'): loom models take one",
                            in->name, nm);
        in = g->input[i];
    }
    if (!in || !in->name || !in->name[0])
        return imp_fail(s, "the graph has no input");
    const Onnx__TypeProto *t = in->type;
    const Onnx__TensorShapeProto *sp =
        t && t->value_case == ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE && t->tensor_type
            ? t->tensor_type->shape
            : NULL;
    if (!sp || t->tensor_type->elem_type != ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT ||
        (sp->n_dim != 3 && sp->n_dim != 4))
        return imp_fail(s,
                        "input '%.80s': loom takes float32 images (N, C, H, W) or sequences "
                        "(N, T, F)",
                        in->name);
    int64_t d[4] = {0, 1, 1, 1};
    for (size_t i = 1; i < sp->n_dim; i++) {
        const Onnx__TensorShapeProto__Dimension *x = sp->dim[i];
        if (x->value_case != ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE ||
            x->dim_value < 1 || x->dim_value > IMP_MAX_DIM)
            return imp_fail(s, "input '%.80s': dimension %zu is not a size from 1 to %d", in->name,
                            i, IMP_MAX_DIM);
        d[i] = x->dim_value;
    }
    if (d[1] * d[2] * d[3] > IMP_MAX_INPUT)
        return imp_fail(s, "input '%.80s': more than %d values per example", in->name,
                        IMP_MAX_INPUT);
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
    return imp_emit_plain(s, LOWER_ROWS);
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
    case LOWER_RESIDUAL: /* the walk builds no blocks: a graph that branches is refused */
        snprintf(buf, n, "residual");
        break;
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
        return imp_nomem(s);
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
        return imp_fail(s, "the layers hold %zu parameters, the model text %zu", pw, m->n_params);
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

/* "classes=[...]" (the model file's class names, as a model trained on image folders keeps them)
 * when the metadata holds loom's class_names, one per output. */
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
        snprintf(config, n, "imported=onnx\n%s%s%s", flat ? "classes=" : "", flat ? flat : "",
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
        st = imp_fail(&s, "the model has no graph");
    else if (!has_opset)
        st = imp_fail(&s, "no default-domain opset from 7 on: loom reads ONNX opsets 7 and later");
    else if (mp->graph->n_node > IMP_MAX_NODES)
        st = imp_fail(&s, "%zu nodes: loom reads graphs of up to %d", mp->graph->n_node,
                      IMP_MAX_NODES);
    if (!st && !(st = walk(&s, mp->graph, &H, &W, &C)))
        st = build_model(&s, mp, H, W, C, out);
    if (!st && config_out && !(*config_out = config_of(mp, *out))) {
        loom_model_destroy(*out);
        *out = NULL;
        st = imp_nomem(&s);
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
