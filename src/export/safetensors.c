/* safetensors.c - the door to safetensors: a loom model's parameters and state as the
 * state_dict of the equivalent PyTorch nn.Sequential (one module per layer, a fused activation
 * one more module after it). File: u64 little-endian header length, a JSON header (name ->
 * dtype, shape, data_offsets), then the raw little-endian tensors. Names and layouts per layer
 * kind: docs/FORMATS.md, "safetensors". */
#include "../model/model.h"

#include <cjson/cJSON.h>

/* One tensor of the file: float32 values, or (is_i64) a single int64 zero. */
typedef struct {
    char name[128];
    int rank, dims[4];
    float *v; /* (product of dims) owned; NULL for the int64 */
    bool is_i64;
} st_tensor;

typedef struct {
    st_tensor *t; /* (n) owned */
    int n, cap;
    /* import: the file's header and data; each tensor is read from it and moved into the
     * model (the export's mapping run backwards); used marks the header entries taken */
    bool is_import;
    const cJSON *head;
    const uint8_t *data;
    size_t n_data;
    const cJSON **used; /* (n_used) */
    int n_used;
    const char *path;
    loom_error *err;
    loom_status st;
    char prefix[96]; /* the module path of a residual block's layers ("3.body."), else "" */
} st_list;

/* Moves one value between PyTorch's tensor and loom's buffer, the way the list goes. */
#define XFER(s, pt, lm)                                                                            \
    do {                                                                                           \
        if ((s)->is_import)                                                                        \
            (lm) = (pt);                                                                           \
        else                                                                                       \
            (pt) = (lm);                                                                           \
    } while (0)

static void list_free(st_list *s) {
    for (int i = 0; i < s->n; i++)
        free(s->t[i].v);
    free(s->t);
    free(s->used);
}

static float *lie(st_list *s, const char *name, const char *fmt, const char *detail) {
    char msg[160];
    snprintf(msg, sizeof msg, fmt, detail);
    s->st = loom_error_set(s->err, LOOM_ERR_FORMAT, "%s: tensor '%s': %s", s->path, name, msg);
    return NULL;
}

/* Import: tensor t's values from the file, after checking what its header entry says. */
static float *read_tensor(st_list *s, st_tensor *t) {
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(s->head, t->name);
    if (!e)
        return lie(s, t->name, "missing: the model needs it%s", "");
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(e, "dtype");
    const cJSON *shape = cJSON_GetObjectItemCaseSensitive(e, "shape");
    const cJSON *offs = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
    const char *want = t->is_i64 ? "I64" : "F32";
    if (!cJSON_IsString(dt) || strcmp(dt->valuestring, want) != 0)
        return lie(s, t->name, "dtype %s, loom reads it as this one only",
                   cJSON_IsString(dt) ? dt->valuestring : "(none)");
    char exp[96];
    size_t k = (size_t)snprintf(exp, sizeof exp, "[");
    for (int i = 0; i < t->rank && k < sizeof exp; i++)
        k += (size_t)snprintf(exp + k, sizeof exp - k, "%s%d", i ? ", " : "", t->dims[i]);
    if (k < sizeof exp)
        snprintf(exp + k, sizeof exp - k, "]");
    bool is_ok = cJSON_IsArray(shape) && cJSON_GetArraySize(shape) == t->rank;
    for (int i = 0; is_ok && i < t->rank; i++) {
        const cJSON *d = cJSON_GetArrayItem(shape, i);
        is_ok = cJSON_IsNumber(d) && d->valuedouble == t->dims[i];
    }
    if (!is_ok)
        return lie(s, t->name, "its shape does not fit the model, which needs %s", exp);
    size_t n = 1;
    for (int i = 0; i < t->rank; i++)
        n *= (size_t)t->dims[i];
    size_t bytes = (t->is_i64 ? 8 : 4) * n;
    const cJSON *a = cJSON_GetArrayItem(offs, 0), *b = cJSON_GetArrayItem(offs, 1);
    if (!cJSON_IsArray(offs) || cJSON_GetArraySize(offs) != 2 || !cJSON_IsNumber(a) ||
        !cJSON_IsNumber(b) || !(a->valuedouble >= 0) || !(b->valuedouble <= (double)s->n_data) ||
        a->valuedouble != (double)(size_t)a->valuedouble ||
        b->valuedouble - a->valuedouble != (double)bytes)
        return lie(s, t->name, "data_offsets out of range or not %s values' bytes", exp);
    const cJSON **u = realloc(s->used, sizeof *u * (size_t)(s->n_used + 1));
    if (!u)
        return NULL;
    s->used = u;
    s->used[s->n_used++] = e;
    if (t->is_i64)
        return t->v;
    const uint8_t *p = s->data + (size_t)a->valuedouble;
    for (size_t j = 0; j < n; j++, p += 4) {
        uint32_t x =
            (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
        memcpy(&t->v[j], &x, 4);
    }
    return t->v;
}

/* Appends a float tensor "<prefix><module>.<what>" ("<prefix><what>" for module -1) of the given
 * dims, values to fill; NULL when out of memory. */
static float *add(st_list *s, int module, const char *what, int rank, const int *dims) {
    if (s->n == s->cap) {
        int cap = s->cap ? 2 * s->cap : 32;
        st_tensor *t = realloc(s->t, sizeof *t * (size_t)cap);
        if (!t)
            return NULL;
        s->t = t;
        s->cap = cap;
    }
    st_tensor *t = &s->t[s->n];
    memset(t, 0, sizeof *t);
    if (module < 0)
        snprintf(t->name, sizeof t->name, "%s%s", s->prefix, what);
    else
        snprintf(t->name, sizeof t->name, "%s%d.%s", s->prefix, module, what);
    t->rank = rank;
    size_t n = 1;
    for (int i = 0; i < rank; i++)
        n *= (size_t)(t->dims[i] = dims[i]);
    t->v = malloc(sizeof(float) * (n ? n : 1));
    if (!t->v)
        return NULL;
    s->n++;
    return s->is_import && strcmp(what, "num_batches_tracked") != 0 ? read_tensor(s, t) : t->v;
}

/* Where PyTorch's feature j of a vector flattened from an image (H, W, C) (nn.Flatten of NCHW:
 * order (c, h, w)) sits in loom's flattening (order (h, w, c)); img.rank == 0: the same j. */
static size_t feature(loom_shape img, size_t j) {
    if (img.rank != 3)
        return j;
    size_t H = (size_t)img.d[0], W = (size_t)img.d[1], C = (size_t)img.d[2];
    size_t c = j / (H * W), h = j / W % H, w = j % W;
    return (h * W + w) * C + c;
}

/* Values of a per-example tensor of loom shape s in PyTorch's layout: images (C, H, W). */
static float *per_example(st_list *s, int module, const char *what, loom_shape sh, float *v) {
    int dims[3] = {sh.d[0], sh.d[1], sh.d[2]};
    if (sh.rank == 3)
        dims[0] = sh.d[2], dims[1] = sh.d[0], dims[2] = sh.d[1];
    float *t = add(s, module, what, sh.rank, dims);
    if (!t)
        return NULL;
    for (size_t j = 0; j < shape_size(sh); j++)
        XFER(s, t[j], v[sh.rank == 3 ? feature(sh, j) : j]);
    return t;
}

/* The tensors of layer l as module *module (advanced past it and its fused activation); img is
 * the image shape when l's input vector was flattened from one (else rank 0). */
static bool add_layer(st_list *s, const layer *l, const layer_lowering *lw, loom_shape img,
                      int *module) {
    int k = (*module)++;
    switch (lw->kind) {
    case LOWER_DENSE: {
        int N = l->in.d[0], K = lw->units;
        float *w = add(s, k, "weight", 2, (const int[]){K, N}); /* (out, in): loom's W^T */
        if (!w)
            return false;
        for (int o = 0; o < K; o++)
            for (int j = 0; j < N; j++)
                XFER(s, w[(size_t)o * N + j], l->w[feature(img, (size_t)j) * K + o]);
        float *b = add(s, k, "bias", 1, &K);
        if (!b)
            return false;
        for (int o = 0; o < K; o++)
            XFER(s, b[o], l->w[(size_t)N * K + o]);
        if (lw->act != ACT_NONE && !lw->is_softmax)
            (*module)++;
        return true;
    }
    case LOWER_CONV: {
        int C = l->in.d[2], K = lw->units, R = lw->kh, S = lw->kw;
        float *w = add(s, k, "weight", 4, (const int[]){K, C, R, S});
        if (!w)
            return false;
        for (int o = 0; o < K; o++)
            for (int c = 0; c < C; c++)
                for (int r = 0; r < R; r++)
                    for (int q = 0; q < S; q++)
                        XFER(s, w[(((size_t)o * C + c) * R + r) * S + q],
                             l->w[(((size_t)r * S + q) * C + c) * K + o]);
        float *b = add(s, k, "bias", 1, &K);
        if (!b)
            return false;
        for (int o = 0; o < K; o++)
            XFER(s, b[o], l->w[(size_t)R * S * C * K + o]);
        if (lw->act != ACT_NONE)
            (*module)++;
        return true;
    }
    case LOWER_BATCHNORM: {
        int C = l->in.d[l->in.rank - 1];
        const char *what[4] = {"weight", "bias", "running_mean", "running_var"};
        float *src[4] = {l->w, l->w + C, l->state, l->state + C};
        for (int i = 0; i < 4; i++) {
            float *t = add(s, k, what[i], 1, &C);
            if (!t)
                return false;
            for (int j = 0; j < C; j++)
                XFER(s, t[j], src[i][feature(img, (size_t)j)]);
        }
        if (s->is_import) /* optional, and its value (a count) means nothing to loom */
            return true;
        if (!add(s, k, "num_batches_tracked", 0, NULL))
            return false;
        s->t[s->n - 1].is_i64 = true;
        return true;
    }
    case LOWER_STANDARDIZE: {
        size_t D = shape_size(l->in);
        return per_example(s, k, "mean", l->in, l->state) &&
               per_example(s, k, "std", l->in, l->state + D);
    }
    case LOWER_RNN:
    case LOWER_LSTM:
    case LOWER_GRU: {
        /* loom keeps PyTorch's gate order, transposed: weight_ih (G*H, F) = W_ih^T */
        int G = lw->kind == LOWER_LSTM ? 4 : lw->kind == LOWER_GRU ? 3 : 1;
        int F = l->in.d[1], H = lw->units, GH = G * H, D = lw->is_bidirectional ? 2 : 1;
        for (int d = 0; d < D; d++) {
            const char *sfx = d ? "_reverse" : "";
            float *wih = l->w + (size_t)d * ((size_t)GH * (F + H) + 2 * (size_t)GH);
            float *whh = wih + (size_t)F * GH, *b = whh + (size_t)H * GH;
            char nm[4][40];
            snprintf(nm[0], sizeof nm[0], "weight_ih_l0%s", sfx);
            snprintf(nm[1], sizeof nm[1], "weight_hh_l0%s", sfx);
            snprintf(nm[2], sizeof nm[2], "bias_ih_l0%s", sfx);
            snprintf(nm[3], sizeof nm[3], "bias_hh_l0%s", sfx);
            float *ti = add(s, k, nm[0], 2, (const int[]){GH, F});
            float *th = ti ? add(s, k, nm[1], 2, (const int[]){GH, H}) : NULL;
            float *bi = th ? add(s, k, nm[2], 1, &GH) : NULL;
            float *bh = bi ? add(s, k, nm[3], 1, &GH) : NULL;
            if (!bh)
                return false;
            for (int g = 0; g < GH; g++) {
                for (int f = 0; f < F; f++)
                    XFER(s, ti[(size_t)g * F + f], wih[(size_t)f * GH + g]);
                for (int h = 0; h < H; h++)
                    XFER(s, th[(size_t)g * H + h], whh[(size_t)h * GH + g]);
                XFER(s, bi[g], b[g]);
                XFER(s, bh[g], b[GH + g]);
            }
        }
        return true;
    }
    case LOWER_GLOBALAVGPOOL: (*module)++; return true; /* AdaptiveAvgPool2d(1), Flatten() */
    case LOWER_MAXPOOL:
    case LOWER_AVGPOOL:
    case LOWER_DROPOUT:
    case LOWER_FLATTEN:
    case LOWER_ACTIVATION:
    case LOWER_ROWS:
    case LOWER_COLUMNS: return true;  /* no parameters */
    case LOWER_RESIDUAL: return true; /* walk_layers goes inside */
    }
    return true;
}

/* The whole file in one malloc'd buffer (*out, *len); false when out of memory. */
static bool assemble(const loom_model *m, const st_list *s, uint8_t **out, size_t *len) {
    cJSON *h = cJSON_CreateObject(), *md = cJSON_AddObjectToObject(h, "__metadata__");
    bool is_ok = h && md && cJSON_AddStringToObject(md, "format", "pt") &&
                 cJSON_AddStringToObject(md, "loom_version", LOOM_VERSION) &&
                 cJSON_AddStringToObject(md, "loom_model", m->text);
    size_t off = 0;
    for (int i = 0; is_ok && i < s->n; i++) {
        const st_tensor *t = &s->t[i];
        size_t n = 1;
        for (int k = 0; k < t->rank; k++)
            n *= (size_t)t->dims[k];
        size_t bytes = t->is_i64 ? 8 : 4 * n;
        cJSON *e = cJSON_AddObjectToObject(h, t->name);
        cJSON *shape = e ? cJSON_AddArrayToObject(e, "shape") : NULL;
        cJSON *offs = shape ? cJSON_AddArrayToObject(e, "data_offsets") : NULL;
        is_ok = offs && cJSON_AddStringToObject(e, "dtype", t->is_i64 ? "I64" : "F32");
        for (int k = 0; is_ok && k < t->rank; k++)
            is_ok = cJSON_AddItemToArray(shape, cJSON_CreateNumber(t->dims[k]));
        is_ok = is_ok && cJSON_AddItemToArray(offs, cJSON_CreateNumber((double)off)) &&
                cJSON_AddItemToArray(offs, cJSON_CreateNumber((double)(off + bytes)));
        off += bytes;
    }
    char *text = is_ok ? cJSON_PrintUnformatted(h) : NULL;
    cJSON_Delete(h);
    if (!text)
        return false;
    size_t hlen = strlen(text), padded = (hlen + 7) / 8 * 8; /* data starts 8-byte aligned */
    *len = 8 + padded + off;
    uint8_t *buf = malloc(*len), *p;
    if (!buf) {
        cJSON_free(text);
        return false;
    }
    for (int k = 0; k < 8; k++)
        buf[k] = (uint8_t)((uint64_t)padded >> (8 * k));
    memcpy(buf + 8, text, hlen);
    memset(buf + 8 + hlen, ' ', padded - hlen);
    cJSON_free(text);
    p = buf + 8 + padded;
    for (int i = 0; i < s->n; i++) {
        const st_tensor *t = &s->t[i];
        if (t->is_i64) {
            memset(p, 0, 8);
            p += 8;
            continue;
        }
        size_t n = 1;
        for (int k = 0; k < t->rank; k++)
            n *= (size_t)t->dims[k];
        for (size_t j = 0; j < n; j++, p += 4) {
            uint32_t u;
            memcpy(&u, &t->v[j], 4);
            for (int k = 0; k < 4; k++)
                p[k] = (uint8_t)(u >> (8 * k));
        }
    }
    *out = buf;
    return true;
}

static loom_status walk_list(const loom_model *m, const layer *ls, int n, bool is_top, st_list *s,
                             loom_error *err);

/* Block l as module k: its inner layers as "<prefix>k.body.<j>" (a Sequential of its own), its
 * projection, if any, as "<prefix>k.proj" (a Conv2d); the addition and the activation after it
 * have no tensors. */
static loom_status walk_block(const loom_model *m, const layer *l, int k, st_list *s,
                              loom_error *err) {
    layer *parts = malloc(sizeof *parts * RESIDUAL_MAX_LAYERS), proj;
    if (!parts)
        return loom_error_set(err, LOOM_ERR_NOMEM, "safetensors: out of memory");
    int n = residual_parts(l, parts, RESIDUAL_MAX_LAYERS, &proj);
    char keep[sizeof s->prefix];
    memcpy(keep, s->prefix, sizeof keep);
    loom_status st = LOOM_OK;
    if ((size_t)snprintf(s->prefix, sizeof s->prefix, "%s%d.body.", keep, k) >= sizeof s->prefix)
        st = loom_error_set(err, LOOM_ERR_ARG, "safetensors: residual blocks nested too deep");
    if (!st)
        st = walk_list(m, parts, n, false, s, err);
    if (!st && proj.ops) {
        layer_lowering plw;
        proj.ops->lower(&proj, &plw);
        int none = -1;
        if ((size_t)snprintf(s->prefix, sizeof s->prefix, "%s%d.proj.", keep, k) >=
            sizeof s->prefix)
            st = loom_error_set(err, LOOM_ERR_ARG, "safetensors: residual blocks nested too deep");
        else if (!add_layer(s, &proj, &plw, (loom_shape){0}, &none))
            st = s->st ? s->st : loom_error_set(err, LOOM_ERR_NOMEM, "safetensors: out of memory");
    }
    memcpy(s->prefix, keep, sizeof keep);
    free(parts);
    return st;
}

/* The tensors of layers ls (n) into s (export: from the model; import: from the file into the
 * model), numbered as one nn.Sequential; is_top: the model's own list (for error names). */
static loom_status walk_list(const loom_model *m, const layer *ls, int n, bool is_top, st_list *s,
                             loom_error *err) {
    loom_shape img = {0}; /* the image the current vector was flattened from */
    int module = 0;
    for (int i = 0; i < n; i++) {
        const layer *l = &ls[i];
        layer_lowering lw;
        if (l->ops->lower)
            l->ops->lower(l, &lw);
        if (!l->ops->lower) {
            char desc[128];
            if (is_top)
                model_layer_name(m, i, desc, sizeof desc);
            else
                l->ops->describe(l, desc, sizeof desc);
            return loom_error_set(err, LOOM_ERR_ARG, "safetensors: %s has no PyTorch form", desc);
        }
        if (lw.kind == LOWER_RESIDUAL) {
            loom_status st = walk_block(m, l, module++, s, err);
            if (st)
                return st;
            continue;
        }
        /* from a flatten of an image to the dense layer that reads it (per-feature layers in
         * between), vectors are in PyTorch's (c, h, w) order */
        if (lw.kind == LOWER_FLATTEN && l->in.rank == 3)
            img = l->in;
        if (!add_layer(s, l, &lw, l->in.rank == 1 ? img : (loom_shape){0}, &module))
            return s->st ? s->st
                         : loom_error_set(err, LOOM_ERR_NOMEM, "safetensors: out of memory");
        if (lw.kind == LOWER_DENSE)
            img = (loom_shape){0};
    }
    return LOOM_OK;
}

/* Every layer's tensors into s. */
static loom_status walk_layers(const loom_model *m, st_list *s, loom_error *err) {
    return walk_list(m, m->layers, m->n_layers, true, s, err);
}

loom_status loom_export_safetensors(const loom_model *m, const char *path, loom_error *err) {
    if (!m || !path)
        return loom_error_set(err, LOOM_ERR_ARG, "safetensors: NULL argument");
    st_list s = {0};
    loom_status st = walk_layers(m, &s, err);
    if (st) {
        list_free(&s);
        return st;
    }
    uint8_t *buf = NULL;
    size_t len = 0;
    bool is_ok = assemble(m, &s, &buf, &len);
    list_free(&s);
    if (!is_ok)
        return loom_error_set(err, LOOM_ERR_NOMEM, "safetensors: out of memory");
    st = loom_file_write_atomic(path, buf, len, err);
    free(buf);
    return st;
}

/* The header: u64 little-endian length, then that many bytes of JSON, within the file. */
static loom_status read_header(const char *path, const uint8_t *buf, size_t len, cJSON **head,
                               loom_error *err) {
    *head = NULL;
    if (len < 8)
        return loom_error_set(err, LOOM_ERR_FORMAT, "%s: not safetensors: %zu bytes", path, len);
    uint64_t n = 0;
    for (int k = 0; k < 8; k++)
        n |= (uint64_t)buf[k] << (8 * k);
    if (n > len - 8)
        return loom_error_set(err, LOOM_ERR_FORMAT,
                              "%s: header length %llu exceeds the %zu bytes that follow", path,
                              (unsigned long long)n, len - 8);
    *head = cJSON_ParseWithLength((const char *)buf + 8, (size_t)n);
    if (!cJSON_IsObject(*head)) {
        cJSON_Delete(*head);
        *head = NULL;
        return loom_error_set(err, LOOM_ERR_FORMAT, "%s: the header is not a JSON object", path);
    }
    return LOOM_OK;
}

loom_status loom_import_safetensors(loom_model *m, const char *path, loom_error *err) {
    if (!m || !path)
        return loom_error_set(err, LOOM_ERR_ARG, "safetensors: NULL argument");
    char *buf = NULL;
    size_t len = 0;
    cJSON *head = NULL;
    float *keep = NULL;
    loom_status st = loom_file_read_all(path, &buf, &len, err);
    if (st || (st = read_header(path, (const uint8_t *)buf, len, &head, err)))
        goto done;
    size_t n_head = 0;
    for (int k = 0; k < 8; k++)
        n_head |= (size_t)((const uint8_t *)buf)[k] << (8 * k);
    /* the model as it was, restored on any error */
    keep = malloc(sizeof(float) * (m->n_params + m->n_state + 1));
    if (!keep) {
        st = loom_error_set(err, LOOM_ERR_NOMEM, "%s: out of memory", path);
        goto done;
    }
    memcpy(keep, m->params, sizeof(float) * m->n_params);
    memcpy(keep + m->n_params, m->state, sizeof(float) * m->n_state);
    st_list s = {.is_import = true,
                 .head = head,
                 .data = (const uint8_t *)buf + 8 + n_head,
                 .n_data = len - 8 - n_head,
                 .path = path,
                 .err = err};
    st = walk_layers(m, &s, err);
    for (const cJSON *e = head->child; !st && e; e = e->next) {
        bool is_used = strcmp(e->string, "__metadata__") == 0;
        for (int i = 0; i < s.n_used && !is_used; i++)
            is_used = s.used[i] == e;
        const char *dot = strrchr(e->string, '.');
        if (!is_used && !(dot && strcmp(dot, ".num_batches_tracked") == 0))
            st = loom_error_set(err, LOOM_ERR_FORMAT,
                                "%s: tensor '%.80s' is not a parameter of the model", path,
                                e->string);
    }
    list_free(&s);
    if (st) {
        memcpy(m->params, keep, sizeof(float) * m->n_params);
        memcpy(m->state, keep + m->n_params, sizeof(float) * m->n_state);
    }
done:
    free(keep);
    cJSON_Delete(head);
    free(buf);
    return st;
}
