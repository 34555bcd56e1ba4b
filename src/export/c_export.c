/* c_export.c - the door to plain C: a trained model as standalone C99 (PREFIX.h, PREFIX.c) that
 * needs only libm: static const float weights, one function per layer kind used, the forward pass
 * as straight-line calls over a work buffer. Layers are read through their model-language lines,
 * shapes and parameter layouts (docs/FORMATS.md, "Generated C"). */
#define _POSIX_C_SOURCE 200809L
#include "../layers/quantized.h"
#include "../model/model.h"
#include "c_export.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <sys/stat.h>
#include <unistd.h>

/* The work buffer PREFIX_predict may put on the stack; above it, only PREFIX_predict_ws. */
#define STACK_LIMIT_BYTES 16384

/* One layer as the export sees it. */
typedef struct {
    xkind kind;
    act_kind act; /* dense, conv, activation; rnn: ACT_TANH or ACT_RELU */
    float alpha;  /* leaky-relu slope / elu alpha */
    int R, S;     /* conv kernel, pooling window */
    int sh, sw;   /* conv stride (sh = sw), pooling strides */
    float eps;    /* batchnorm */
    int cell;     /* recurrent: 0 rnn, 1 lstm, 2 gru */
    bool is_seq, is_bidir;
    bool is_folded;   /* batchnorm folded into the layer before */
    bool has_bn_fold; /* dense/conv: the next layer's batchnorm is folded into the weights */
    bool is_shortcut; /* conv: a residual block's projection, from its stash into pt */
    bool is_int8;     /* dense, conv: an int8 layer (loom quantize) */
    bool has_proj;    /* X_RES_END: the projection's output pt is added, else the stash */
    int depth;        /* X_RES_BEGIN, X_RES_END, shortcut: the block's nesting depth */
} xlayer;

/* Reads an activation word (and its alpha) at words[*i]; false when words[*i] is none. */
static bool read_act(int argc, char **argv, int *i, xlayer *x) {
    if (*i >= argc || !act_parse(argv[*i], &x->act))
        return false;
    (*i)++;
    x->alpha = x->act == ACT_ELU ? 1.0f : x->act == ACT_LEAKY_RELU ? 0.01f : 0.0f;
    if ((x->act == ACT_ELU || x->act == ACT_LEAKY_RELU) && *i < argc &&
        parse_float(argv[*i], &x->alpha))
        (*i)++;
    return true;
}

/* x from layer l's model-language line, split into words. Errors name the layer and the word. */
static loom_status read_layer(int index, char *line, xlayer *x, loom_error *err) {
    char *wordv[32], **argv = wordv;
    int argc = 0;
    for (char *p = line; *p && argc < 32;) { /* words split in place (no strtok: re-entrant) */
        while (*p == ' ' || *p == '\t')
            *p++ = '\0';
        if (*p)
            argv[argc++] = p;
        while (*p && *p != ' ' && *p != '\t')
            p++;
    }
    memset(x, 0, sizeof *x);
    x->sh = x->sw = 1;
    if (argc > 1 && strcmp(argv[0], "int8") == 0) { /* the int8 layer's line: its float line */
        x->is_int8 = true;
        argv++;
        argc--;
    }
    if (argc == 0)
        return loom_error_set(err, LOOM_ERR_ARG, "C export: layer %d has no description", index);
    const char *w = argv[0];
    int i = 1;
    if (strcmp(w, "dense") == 0) {
        x->kind = X_DENSE;
        i = 2;
        if (i < argc && strcmp(argv[i], "softmax") == 0)
            i++;
        else
            read_act(argc, argv, &i, x);
    } else if (strcmp(w, "conv") == 0) {
        x->kind = X_CONV;
        if (argc < 3 || !parse_kernel(argv[2], &x->R, &x->S))
            return loom_error_set(err, LOOM_ERR_FORMAT, "C export: layer %d: bad conv line", index);
        for (i = 3; i < argc;) {
            if (strcmp(argv[i], "same") == 0 || strcmp(argv[i], "valid") == 0) {
                i++;
            } else if (argv[i][0] == 's' && isdigit((unsigned char)argv[i][1])) {
                if (!parse_int(argv[i] + 1, &x->sh))
                    break;
                x->sw = x->sh;
                i++;
            } else if (!read_act(argc, argv, &i, x)) {
                break;
            }
        }
    } else if (strcmp(w, "maxpool") == 0 || strcmp(w, "avgpool") == 0) {
        x->kind = w[0] == 'm' ? X_MAXPOOL : X_AVGPOOL;
        if (argc < 2 || !parse_kernel(argv[1], &x->R, &x->S))
            return loom_error_set(err, LOOM_ERR_FORMAT, "C export: layer %d: bad %s line", index,
                                  w);
        x->sh = x->R;
        x->sw = x->S;
        i = 2;
        if (i + 1 < argc && strcmp(argv[i], "stride") == 0 && parse_int(argv[i + 1], &x->sh)) {
            x->sw = x->sh;
            i += 2;
        }
    } else if (strcmp(w, "globalavgpool") == 0) {
        x->kind = X_GAP;
    } else if (strcmp(w, "batchnorm") == 0) {
        x->kind = X_BN;
        x->eps = 1e-3f; /* batchnorm's default; the line names any other */
        for (; i + 1 < argc; i += 2) {
            float v;
            if (!parse_float(argv[i + 1], &v))
                break;
            if (strcmp(argv[i], "eps") == 0)
                x->eps = v;
            else if (strcmp(argv[i], "momentum") != 0)
                break;
        }
    } else if (strcmp(w, "flatten") == 0 || strcmp(w, "rows") == 0) {
        x->kind = X_PASS;
    } else if (strcmp(w, "dropout") == 0) {
        x->kind = X_PASS; /* inference: the identity */
        i = argc;
    } else if (strcmp(w, "columns") == 0) {
        x->kind = X_COLUMNS;
    } else if (strcmp(w, "standardize") == 0) {
        x->kind = X_STD;
    } else if (strcmp(w, "rnn") == 0 || strcmp(w, "lstm") == 0 || strcmp(w, "gru") == 0) {
        x->kind = X_REC;
        x->cell = w[0] == 'r' ? 0 : w[0] == 'l' ? 1 : 2;
        x->act = ACT_TANH;
        for (i = 2; i < argc; i++) {
            const char *o = argv[i];
            if (strcmp(o, "return-sequences") == 0)
                x->is_seq = true;
            else if (strcmp(o, "bidirectional") == 0)
                x->is_bidir = true;
            else if (strcmp(o, "activation") == 0 && i + 1 < argc &&
                     act_parse(argv[i + 1], &x->act))
                i++;
            else if (strcmp(o, "recurrent-dropout") == 0 && i + 1 < argc)
                i++; /* training only */
            else
                break;
        }
    } else {
        i = 0;
        if (!read_act(argc, argv, &i, x) || x->act == ACT_NONE)
            return loom_error_set(err, LOOM_ERR_ARG,
                                  "C export: layer %d: the C export cannot write layer kind '%s'",
                                  index, w);
        x->kind = X_ACT;
    }
    if (i < argc)
        return loom_error_set(err, LOOM_ERR_ARG,
                              "C export: layer %d (%s): the C export does not know '%s'", index, w,
                              argv[i]);
    return LOOM_OK;
}

/* ---- writing ---- */

/* v as a C float literal that reads back to the same float ("%.9g" round-trips a float). */
static void float_lit(float v, char *buf, size_t n) {
    snprintf(buf, n, "%.9g", (double)v);
    if (!strpbrk(buf, ".e"))
        strncat(buf, ".0", n - strlen(buf) - 1);
    strncat(buf, "f", n - strlen(buf) - 1);
}

/* Text with every '@' replaced by the prefix: the generated helpers carry the prefix. */
static void put_text(FILE *f, const char *prefix, const char *text) {
    for (const char *p = text; *p; p++) {
        if (*p == '@')
            fputs(prefix, f);
        else
            fputc(*p, f);
    }
}

/* static const float PREFIX_NAME[n] = {...}; 8 values a line. A value that is not finite is an
 * error naming the layer. */
static loom_status put_array(FILE *f, const char *prefix, const char *name, const float *v,
                             size_t n, int index, loom_error *err) {
    fprintf(f, "static const float %s_%s[%zu] = {\n", prefix, name, n);
    char lit[48];
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(v[i]))
            return loom_error_set(err, LOOM_ERR_NUMERIC,
                                  "C export: layer %d: value %zu of its weights is not finite",
                                  index, i);
        float_lit(v[i], lit, sizeof lit);
        fputs(lit, f);
        fputs(i + 1 == n ? "\n" : (i % 8 == 7 ? ",\n" : ", "), f);
    }
    fputs("};\n", f);
    return LOOM_OK;
}

/* An int8 layer's arrays: PREFIX_qI, its weights q (K, N) int8 (each column of loom's (N, K)
 * as a row, for the inner loop), and PREFIX_lI, the scales sx sw[k] (K, as loom's epilogue
 * multiplies) then the biases (K). */
static loom_status put_int8(FILE *f, const char *prefix, int index, const layer *l,
                            loom_error *err) {
    int8_info q;
    int8_info_of(l, &q);
    fprintf(f, "static const signed char %s_q%d[%zu] = {\n", prefix, index, (size_t)q.N * q.K);
    for (int k = 0; k < q.K; k++)
        for (int n = 0; n < q.N; n++) {
            size_t j = (size_t)k * q.N + n;
            fprintf(f, "%d%s", int8_weight(l, n, k),
                    j + 1 == (size_t)q.N * q.K ? "\n" : (j % 16 == 15 ? ",\n" : ", "));
        }
    fputs("};\n", f);
    float *sb = malloc(sizeof(float) * 2 * (size_t)q.K);
    if (!sb)
        return loom_error_set(err, LOOM_ERR_NOMEM, "C export: out of memory");
    for (int k = 0; k < q.K; k++) {
        sb[k] = q.sx * q.sw[k];
        sb[q.K + k] = q.bias[k];
    }
    char name[32];
    snprintf(name, sizeof name, "l%d", index);
    loom_status st = put_array(f, prefix, name, sb, 2 * (size_t)q.K, index, err);
    free(sb);
    return st;
}

/* The batchnorm's inference affine map as loom applies it: y = a x + b per channel, a =
 * gamma / sqrt(var + eps), b = beta - mean a, worked out in double and rounded to float. ab
 * (2C): a then b. */
static void bn_affine(const layer *l, float eps, float *ab) {
    int C = l->in.d[l->in.rank - 1];
    const float *gamma = l->w, *beta = l->w + C, *mean = l->state, *var = l->state + C;
    for (int k = 0; k < C; k++) {
        double ak = gamma[k] / sqrt((double)var[k] + eps);
        ab[k] = (float)ak;
        ab[C + k] = (float)(beta[k] - mean[k] * ak);
    }
}

/* Everything the writers need to know about the model. */
/* The layers the export writes: the model's, with each residual block unrolled into X_RES_BEGIN,
 * its inner layers, its projection (a conv with is_shortcut) and X_RES_END. */
typedef struct {
    const loom_model *m;
    xlayer *x; /* (n) owned */
    layer *ls; /* (n) owned copies; inner layers' w and state point into their block's */
    int n, cap;
    int depth; /* residual blocks nested at most this deep: one stash buffer each */
    bool has_proj;
    const char *prefix;
    char upper[72];   /* the prefix in capitals, for macros */
    size_t max_act;   /* floats of the largest activation (input included) */
    size_t n_rec_ws;  /* floats of the recurrent workspace */
    size_t n_weights; /* floats in the weight arrays */
    size_t n_int8;    /* int8 weights (bytes) */
    size_t max_q;     /* bytes of the largest quantized input of an int8 layer */
    bool uses_int8, uses_int8_dense, uses_int8_conv;
    size_t n_work;            /* floats of the work buffer */
    double macs;              /* multiply-adds per image, roughly */
    int n_out;                /* logits */
    bool uses[X_RES_END + 1]; /* which helpers */
} plan;

/* Appends layer l (copied) as an entry with x's kind; false when out of memory. */
static bool plan_push(plan *p, const layer *l, const xlayer *x) {
    if (p->n == p->cap) {
        int cap = p->cap ? 2 * p->cap : 64;
        xlayer *nx = realloc(p->x, sizeof *nx * (size_t)cap);
        if (nx)
            p->x = nx;
        layer *nl = nx ? realloc(p->ls, sizeof *nl * (size_t)cap) : NULL;
        if (!nl)
            return false;
        p->ls = nl;
        p->cap = cap;
    }
    p->x[p->n] = *x;
    p->ls[p->n] = *l;
    p->n++;
    return true;
}

/* Layer l (index: its top-level position, for messages) into the plan, a residual block
 * unrolled. */
static loom_status plan_layer(plan *p, const layer *l, int index, int depth, loom_error *err) {
    xlayer x;
    if (!layer_is_residual(l)) {
        char line[512];
        l->ops->describe(l, line, sizeof line);
        loom_status st = read_layer(index, line, &x, err);
        if (st)
            return st;
        return plan_push(p, l, &x) ? LOOM_OK
                                   : loom_error_set(err, LOOM_ERR_NOMEM, "C export: out of memory");
    }
    layer_lowering lw;
    l->ops->lower(l, &lw);
    layer *parts = malloc(sizeof(layer) * RESIDUAL_MAX_LAYERS), proj;
    if (!parts)
        return loom_error_set(err, LOOM_ERR_NOMEM, "C export: out of memory");
    int n = residual_parts(l, parts, RESIDUAL_MAX_LAYERS, &proj);
    p->depth = depth + 1 > p->depth ? depth + 1 : p->depth;
    loom_status st = LOOM_OK;
    x = (xlayer){.kind = X_RES_BEGIN, .depth = depth};
    if (!plan_push(p, l, &x))
        st = loom_error_set(err, LOOM_ERR_NOMEM, "C export: out of memory");
    for (int j = 0; j < n && !st; j++)
        st = plan_layer(p, &parts[j], index, depth + 1, err);
    if (!st && proj.ops) {
        x = (xlayer){.kind = X_CONV, .R = 1, .S = 1, .is_shortcut = true, .depth = depth};
        x.sh = x.sw = (l->in.d[0] + l->out.d[0] - 1) / l->out.d[0];
        p->has_proj = true;
        if (!plan_push(p, &proj, &x))
            st = loom_error_set(err, LOOM_ERR_NOMEM, "C export: out of memory");
    }
    x = (xlayer){.kind = X_RES_END,
                 .act = lw.act,
                 .alpha = lw.alpha,
                 .has_proj = proj.ops != NULL,
                 .depth = depth};
    if (!st && !plan_push(p, l, &x))
        st = loom_error_set(err, LOOM_ERR_NOMEM, "C export: out of memory");
    free(parts);
    return st;
}

/* Reads the layers, decides folding and the buffers. */
static loom_status make_plan(plan *p, const loom_model *m, const char *prefix, loom_error *err) {
    memset(p, 0, sizeof *p);
    p->m = m;
    p->prefix = prefix;
    for (size_t i = 0; prefix[i]; i++)
        p->upper[i] = (char)toupper((unsigned char)prefix[i]);
    p->max_act = (size_t)m->in.d[0] * m->in.d[1] * m->in.d[2];
    for (int i = 0; i < m->n_layers; i++) {
        loom_status st = plan_layer(p, &m->layers[i], i, 0, err);
        if (st)
            return st;
        p->macs += m->layers[i].flops / 2;
    }
    for (int i = 0; i < p->n; i++) {
        size_t out = shape_size(p->ls[i].out);
        p->max_act = out > p->max_act ? out : p->max_act;
    }
    for (int i = 0; i < p->n; i++) {
        xlayer *x = &p->x[i];
        const layer *l = &p->ls[i];
        /* a batchnorm right after a dense or conv without activation: x W a + (b a + beta'),
         * the same map with the scale folded into the weights */
        if (x->kind == X_BN && i > 0 &&
            (p->x[i - 1].kind == X_DENSE || p->x[i - 1].kind == X_CONV) &&
            p->x[i - 1].act == ACT_NONE && !p->x[i - 1].is_int8) {
            x->is_folded = true;
            p->x[i - 1].has_bn_fold = true;
        }
        if (x->kind == X_REC) {
            int H = (x->is_seq ? l->out.d[1] : l->out.d[0]) / (x->is_bidir ? 2 : 1);
            size_t GH = (size_t)(x->cell == 0 ? 1 : x->cell == 1 ? 4 : 3) * H;
            size_t ws = 2 * GH + 2 * (size_t)H;
            p->n_rec_ws = ws > p->n_rec_ws ? ws : p->n_rec_ws;
        }
        if (x->kind == X_RES_BEGIN || x->kind == X_RES_END) {
            p->uses[x->kind] = true;
            if (x->act != ACT_NONE)
                p->uses[X_ACT] = true;
        } else if (x->is_int8) {
            int N, K;
            int8_shape(l, &N, &K);
            p->uses_int8 = true;
            p->uses_int8_dense |= x->kind == X_DENSE;
            p->uses_int8_conv |= x->kind == X_CONV;
            p->n_int8 += (size_t)N * K;
            p->n_weights += 2 * (size_t)K; /* the scales and the biases */
            p->max_q = shape_size(l->in) > p->max_q ? shape_size(l->in) : p->max_q;
            if (x->act != ACT_NONE)
                p->uses[X_ACT] = true;
        } else if (!x->is_folded) {
            p->uses[x->kind] = true;
            if ((x->kind == X_DENSE || x->kind == X_CONV) && x->act != ACT_NONE)
                p->uses[X_ACT] = true;
            p->n_weights += x->kind == X_STD ? l->n_state : l->n_params;
        }
    }
    const layer *last = &m->layers[m->n_layers - 1];
    p->n_out = (int)shape_size(last->out);
    /* then a stash per nesting depth of residual blocks and the projection's output */
    p->n_work = 2 * p->max_act + p->n_rec_ws + (size_t)(p->depth + p->has_proj) * p->max_act;
    /* then the int8 layers' quantized input, bytes in whole floats */
    p->n_work += (p->max_q + sizeof(float) - 1) / sizeof(float);
    return LOOM_OK;
}

/* ---- the header ---- */

static void write_header(FILE *f, const plan *p) {
    const loom_model *m = p->m;
    const char *P = p->prefix, *U = p->upper;
    size_t wb = p->n_weights * sizeof(float) + p->n_int8, kb = p->n_work * sizeof(float);
    fprintf(f,
            "/* %s.h - a loom model as standalone C99 (generated by loom %s; do not edit).\n"
            " * The model, one layer a line:\n",
            P, LOOM_VERSION);
    const char *t = m->text;
    while (*t) {
        size_t n = strcspn(t, "\n");
        fprintf(f, " *   %.*s\n", (int)n, t);
        t += n + (t[n] == '\n');
    }
    fprintf(f,
            " * Input: %d x %d x %d raw pixel values 0-255 as floats, row-major (H, W, C); the\n"
            " * preprocessing (/255%s) is inside. Output: %d class probabilities (softmax).\n"
            " * Footprint: weights %zu bytes (const: flash/ROM), work buffer %zu bytes (RAM),\n"
            " * about %.0f multiply-adds an image. Needs only libm; no malloc, no global\n"
            " * mutable state: any number of threads may predict at once, each with its own work\n"
            " * buffer. */\n",
            m->in.d[0], m->in.d[1], m->in.d[2], p->uses[X_STD] ? ", the standardize layer" : "",
            p->n_out, wb, kb, p->macs);
    fprintf(f, "#ifndef %s_MODEL_H_\n#define %s_MODEL_H_\n\n", U, U);
    fprintf(f, "#define %s_INPUT_H %d\n#define %s_INPUT_W %d\n#define %s_INPUT_C %d\n", U,
            m->in.d[0], U, m->in.d[1], U, m->in.d[2]);
    fprintf(f, "#define %s_N_CLASSES %d\n", U, p->n_out);
    fprintf(f, "/* an initializer: static const char *const names[] = %s_CLASS_NAMES; */\n", U);
    fprintf(f, "#define %s_CLASS_NAMES {", U);
    for (int k = 0; k < p->n_out; k++) {
        char buf[32];
        const char *name = loom_model_class_name(m, k, buf);
        fputc('"', f);
        for (const char *c = name; *c; c++) {
            if (*c == '"' || *c == '\\')
                fputc('\\', f);
            fputc(*c, f);
        }
        fputs(k + 1 < p->n_out ? "\", " : "\"", f);
    }
    fputs("}\n", f);
    fprintf(f,
            "/* floats of the work buffer PREFIX_predict_ws takes; WORK_BYTES of RAM */\n"
            "#define %s_WORK_FLOATS %zuL\n#define %s_WORK_BYTES %zuL\n"
            "/* bytes of the weights, all static const (flash/ROM) */\n"
            "#define %s_WEIGHT_BYTES %zuL\n\n",
            U, p->n_work, U, kb, U, wb);
    fprintf(f, "#ifdef __cplusplus\nextern \"C\" {\n#endif\n\n");
    fprintf(
        f,
        "/* Predicts the class of one image: image (%s_INPUT_H, %s_INPUT_W, %s_INPUT_C) raw\n"
        " * pixel values 0-255; writes the %s_N_CLASSES probabilities and returns the index of\n"
        " * the largest (the first of ties). work: %s_WORK_FLOATS floats of the caller's\n"
        " * (a static array, a RAM section of your choosing, or a task's stack), used only\n"
        " * during the call: re-entrant. */\n"
        "int %s_predict_ws(const float *image, float *probabilities, float *work);\n\n",
        U, U, U, U, U, P);
    fprintf(f,
            "/* The same with the work buffer on the stack (%s_WORK_BYTES of it). Declared only\n"
            " * when that is at most %d bytes, or when %s_PREDICT_ON_STACK is defined before this\n"
            " * header (in every file that includes it, and for %s.c); else use %s_predict_ws. */\n"
            "#if %s_WORK_BYTES <= %d || defined(%s_PREDICT_ON_STACK)\n"
            "#define %s_HAS_PREDICT 1\n"
            "int %s_predict(const float *image, float *probabilities);\n#endif\n\n",
            U, STACK_LIMIT_BYTES, U, P, P, U, STACK_LIMIT_BYTES, U, U, P);
    fprintf(f, "/* The name of class k, or \"\" outside 0..%s_N_CLASSES-1. */\n", U);
    fprintf(f, "const char *%s_class_name(int k);\n\n", P);
    fprintf(f, "#ifdef __cplusplus\n}\n#endif\n#endif\n");
}

/* ---- the source ---- */

/* The weight arrays: PREFIX_lI holds layer I's parameters (batchnorm: its affine map; a layer
 * with a batchnorm folded in: its scaled weights), PREFIX_sI the standardize layer's state. */
static loom_status write_weights(FILE *f, const plan *p, loom_error *err) {
    const loom_model *m = p->m;
    loom_status st = LOOM_OK;
    (void)m;
    for (int i = 0; i < p->n && !st; i++) {
        const xlayer *x = &p->x[i];
        const layer *l = &p->ls[i];
        char name[32];
        snprintf(name, sizeof name, "%s%d", x->kind == X_STD ? "s" : "l", i);
        if (x->is_folded || x->kind == X_PASS || x->kind == X_ACT || x->kind == X_COLUMNS ||
            x->kind == X_MAXPOOL || x->kind == X_AVGPOOL || x->kind == X_GAP ||
            x->kind == X_RES_BEGIN || x->kind == X_RES_END)
            continue;
        if (x->is_int8) {
            st = put_int8(f, p->prefix, i, l, err);
        } else if (x->kind == X_STD) {
            st = put_array(f, p->prefix, name, l->state, l->n_state, i, err);
        } else if (x->kind == X_BN) {
            float *ab = malloc(sizeof(float) * l->n_params);
            if (!ab)
                return loom_error_set(err, LOOM_ERR_NOMEM, "C export: out of memory");
            bn_affine(l, x->eps, ab);
            st = put_array(f, p->prefix, name, ab, l->n_params, i, err);
            free(ab);
        } else if (x->has_bn_fold) {
            /* W (rows, K) then b (K): W a per column, b a + b' */
            const layer *bn = &p->ls[i + 1];
            int K = l->out.d[l->out.rank - 1];
            size_t rows = (l->n_params - (size_t)K) / (size_t)K;
            float *w = malloc(sizeof(float) * l->n_params), *ab = malloc(sizeof(float) * 2 * K);
            if (!w || !ab) {
                free(w);
                free(ab);
                return loom_error_set(err, LOOM_ERR_NOMEM, "C export: out of memory");
            }
            bn_affine(bn, p->x[i + 1].eps, ab);
            for (size_t r = 0; r < rows; r++)
                for (int k = 0; k < K; k++)
                    w[r * K + k] = l->w[r * K + k] * ab[k];
            for (int k = 0; k < K; k++)
                w[rows * K + k] = l->w[rows * K + k] * ab[k] + ab[K + k];
            st = put_array(f, p->prefix, name, w, l->n_params, i, err);
            free(w);
            free(ab);
        } else {
            st = put_array(f, p->prefix, name, l->w, l->n_params, i, err);
        }
    }
    return st;
}

/* Code for an activation after dense or conv (nothing for none). */
static void put_act(FILE *f, const char *P, const char *buf, size_t n, act_kind a, float alpha) {
    if (a == ACT_NONE)
        return;
    char lit[48];
    float_lit(alpha, lit, sizeof lit);
    fprintf(f, "    %s_act(%s, %zuL, %d, %s);\n", P, buf, n, (int)a, lit);
}

/* An int8 dense or conv (plan entry i) from buffer in to out: the input quantized into qb, the
 * int8 product, then the activation. */
static void write_int8_call(FILE *f, const plan *p, int i, const char *in, const char *out) {
    const xlayer *x = &p->x[i];
    const layer *l = &p->ls[i];
    const char *P = p->prefix;
    int8_info q;
    int8_info_of(l, &q);
    char inv[48];
    float_lit(q.sx > 0 ? 1.0f / q.sx : 0.0f, inv, sizeof inv);
    fprintf(f, "    %s_quantize(%s, qb, %zuL, %s, %d);\n", P, in, shape_size(l->in), inv, q.zp);
    if (x->kind == X_DENSE) {
        fprintf(f, "    %s_qdense(qb, %s, %s_q%d, %s_l%d, %dL, %d, %d);\n", P, out, P, i, P, i, q.N,
                q.K, q.zp);
    } else {
        int H = l->in.d[0], W = l->in.d[1], Ho = l->out.d[0], Wo = l->out.d[1];
        fprintf(f,
                "    %s_qconv(qb, %s, %s_q%d, %s_l%d, %d, %d, %d, %d, %d, %d, %d, %d, %d, %d, %d, "
                "%d);\n",
                P, out, P, i, P, i, H, W, l->in.d[2], q.K, q.lw.kh, q.lw.kw, q.lw.sh, q.lw.pad[0],
                q.lw.pad[1], Ho, Wo, q.zp);
    }
    put_act(f, P, out, shape_size(l->out), x->act, x->alpha);
}

/* PREFIX_predict_ws: the layers in order over two activation buffers t0, t1 (max_act floats
 * each) and the recurrent workspace rw. One case per layer kind, in one switch as the generated
 * function reads (a little over 120 lines: split, the cases would lose their common frame). */
static void write_predict(FILE *f, const plan *p) {
    const loom_model *m = p->m;
    const char *P = p->prefix, *U = p->upper;
    fprintf(f, "int %s_predict_ws(const float *image, float *probabilities, float *work) {\n", P);
    fprintf(f, "    float *const t0 = work, *const t1 = work + %zuL;\n", p->max_act);
    if (p->n_rec_ws)
        fprintf(f, "    float *const rw = work + %zuL;\n", 2 * p->max_act);
    /* residual blocks: the stash of depth d, s<d>, and the projection's output pt */
    size_t off = 2 * p->max_act + p->n_rec_ws;
    for (int d = 0; d < p->depth; d++, off += p->max_act)
        fprintf(f, "    float *const s%d = work + %zuL;\n", d, off);
    if (p->has_proj)
        fprintf(f, "    float *const pt = work + %zuL;\n", off);
    off += p->has_proj ? p->max_act : 0;
    if (p->uses_int8)
        fprintf(f, "    unsigned char *const qb = (unsigned char *)(work + %zuL);\n", off);
    fprintf(f, "    long i;\n");
    fprintf(f, "    for (i = 0; i < %zuL; i++)\n        t0[i] = image[i] / 255.0f;\n",
            (size_t)m->in.d[0] * m->in.d[1] * m->in.d[2]);
    int cur = 0;
    static const char *const bufs[] = {"t0", "t1"};
    for (int i = 0; i < p->n; i++) {
        const xlayer *x = &p->x[i];
        const layer *l = &p->ls[i];
        char line[512], si[64], so[64];
        if (x->kind == X_RES_BEGIN || x->kind == X_RES_END)
            snprintf(line, sizeof line, "residual block %s (depth %d)",
                     x->kind == X_RES_BEGIN ? "begins" : "ends", x->depth);
        else if (x->is_shortcut)
            snprintf(line, sizeof line, "the block's shortcut conv %d 1x1 s%d", l->out.d[2], x->sh);
        else
            l->ops->describe(l, line, sizeof line);
        shape_format(l->in, si, sizeof si);
        shape_format(l->out, so, sizeof so);
        fprintf(f, "    /* layer %d: %s: %s -> %s%s */\n", i, line, si, so,
                x->is_folded ? ", folded into the layer before" : "");
        const char *in = bufs[cur], *out = bufs[1 - cur];
        size_t n_out = shape_size(l->out);
        char stash[16];
        snprintf(stash, sizeof stash, "s%d", x->depth);
        if (x->is_shortcut) {
            in = stash;
            out = "pt";
        }
        if (x->is_int8) {
            write_int8_call(f, p, i, in, out);
            cur = 1 - cur;
            continue;
        }
        switch (x->kind) {
        case X_RES_BEGIN:
            fprintf(f, "    %s_copy(%s, %s, %zuL);\n", P, in, stash, shape_size(l->in));
            break;
        case X_RES_END:
            fprintf(f, "    %s_add(%s, %s, %zuL);\n", P, in, x->has_proj ? "pt" : stash, n_out);
            put_act(f, P, in, n_out, x->act, x->alpha);
            break;
        case X_DENSE:
            fprintf(f, "    %s_dense(%s, %s, %s_l%d, %d, %d);\n", P, in, out, P, i, l->in.d[0],
                    l->out.d[0]);
            put_act(f, P, out, n_out, x->act, x->alpha);
            cur = 1 - cur;
            break;
        case X_CONV: {
            int H = l->in.d[0], W = l->in.d[1], Ho = l->out.d[0], Wo = l->out.d[1];
            int pt = (Ho - 1) * x->sh + x->R - H, pl = (Wo - 1) * x->sh + x->S - W;
            pt = pt > 0 ? pt / 2 : 0;
            pl = pl > 0 ? pl / 2 : 0;
            fprintf(f, "    %s_conv(%s, %s, %s_l%d, %d, %d, %d, %d, %d, %d, %d, %d, %d, %d, %d);\n",
                    P, in, out, P, i, H, W, l->in.d[2], l->out.d[2], x->R, x->S, x->sh, pt, pl, Ho,
                    Wo);
            put_act(f, P, out, n_out, x->act, x->alpha);
            cur = x->is_shortcut ? cur : 1 - cur;
            break;
        }
        case X_MAXPOOL:
        case X_AVGPOOL:
            fprintf(f, "    %s_%s(%s, %s, %d, %d, %d, %d, %d, %d, %d, %d);\n", P,
                    x->kind == X_MAXPOOL ? "maxpool" : "avgpool", in, out, l->in.d[1], l->in.d[2],
                    x->R, x->S, x->sh, x->sw, l->out.d[0], l->out.d[1]);
            cur = 1 - cur;
            break;
        case X_GAP:
            fprintf(f, "    %s_globalavgpool(%s, %s, %dL, %d);\n", P, in, out,
                    l->in.d[0] * l->in.d[1], l->in.d[2]);
            cur = 1 - cur;
            break;
        case X_BN:
            if (!x->is_folded) {
                int C = l->in.d[l->in.rank - 1];
                fprintf(f, "    %s_affine(%s, %s_l%d, %zuL, %d);\n", P, in, P, i,
                        shape_size(l->in) / (size_t)C, C);
            }
            break;
        case X_PASS: break;
        case X_ACT: put_act(f, P, in, n_out, x->act, x->alpha); break;
        case X_STD:
            fprintf(f, "    %s_standardize(%s, %s_s%d, %zuL);\n", P, in, P, i, n_out);
            break;
        case X_COLUMNS:
            fprintf(f, "    %s_columns(%s, %s, %d, %d, %d);\n", P, in, out, l->in.d[0], l->in.d[1],
                    l->in.d[2]);
            cur = 1 - cur;
            break;
        case X_REC: {
            int T = l->in.d[0], N = l->in.d[1], D = x->is_bidir ? 2 : 1;
            int DH = x->is_seq ? l->out.d[1] : l->out.d[0], H = DH / D;
            size_t per_dir = l->n_params / (size_t)D;
            for (int k = 0; k < D; k++)
                fprintf(f,
                        "    %s_recurrent(%s, %s, %s_l%d + %zuL, %d, %d, %d, %d, %d, %d, %d, %d, "
                        "%d, rw);\n",
                        P, in, out, P, i, (size_t)k * per_dir, T, N, H, x->cell,
                        x->act == ACT_RELU ? 1 : 0, k, x->is_seq ? 1 : 0, DH, k * H);
            cur = 1 - cur;
            break;
        }
        }
    }
    fprintf(f, "    return %s_softmax(%s, probabilities, %d);\n}\n\n", P, bufs[cur], p->n_out);
    fprintf(f,
            "#if defined(%s_HAS_PREDICT)\nint %s_predict(const float *image, float *probabilities) "
            "{\n    float work[%s_WORK_FLOATS];\n    return %s_predict_ws(image, probabilities, "
            "work);\n}\n#endif\n\n",
            U, P, U, P);
    fprintf(f,
            "const char *%s_class_name(int k) {\n"
            "    static const char *const names[%s_N_CLASSES] = %s_CLASS_NAMES;\n"
            "    return k >= 0 && k < %s_N_CLASSES ? names[k] : \"\";\n}\n",
            P, U, U, U);
}

static loom_status write_source(FILE *f, const plan *p, loom_error *err) {
    fprintf(f,
            "/* %s.c - a loom model as standalone C99 (generated by loom %s; do not edit).\n"
            " * What it is and how to call it: %s.h. Layouts as loom's: activations row-major,\n"
            " * images (H, W, C); each layer's weights in one array, PREFIX_lI for layer I. */\n"
            "#include \"%s.h\"\n\n#include <math.h>\n%s\n",
            p->prefix, LOOM_VERSION, p->prefix, p->prefix,
            p->uses_int8 ? "#include <stdint.h>\n" : "");
    loom_status st = write_weights(f, p, err);
    if (st)
        return st;
    fputc('\n', f);
    for (int k = 0; k <= X_COLUMNS; k++)
        if (p->uses[k])
            put_text(f, p->prefix, c_helper_text[k]);
    if (p->uses[X_RES_BEGIN])
        put_text(f, p->prefix, c_residual_text);
    if (p->uses_int8)
        put_text(f, p->prefix, c_int8_text);
    if (p->uses_int8_dense)
        put_text(f, p->prefix, c_int8_dense_text);
    if (p->uses_int8_conv)
        put_text(f, p->prefix, c_int8_conv_text);
    put_text(f, p->prefix, c_softmax_text);
    write_predict(f, p);
    return LOOM_OK;
}

/* ---- files: temporaries in out_dir, renamed into place once both are whole ---- */

/* Opens a new temporary file dir/.NAME.XXXXXX; its path into tmp. */
static FILE *open_temp(const char *dir, const char *name, char *tmp, size_t n, loom_error *err) {
    if ((size_t)snprintf(tmp, n, "%s/.%s.XXXXXX", dir, name) >= n) {
        loom_error_set(err, LOOM_ERR_ARG, "%s: path too long", dir);
        return NULL;
    }
    int fd = mkstemp(tmp);
    if (fd < 0) {
        loom_error_set(err, LOOM_ERR_IO, "%s: cannot create a file there: %s", dir,
                       strerror(errno));
        tmp[0] = '\0';
        return NULL;
    }
    fchmod(fd, 0644);
    FILE *f = fdopen(fd, "w");
    if (!f) {
        loom_error_set(err, LOOM_ERR_NOMEM, "%s: out of memory", dir);
        close(fd);
    }
    return f;
}

/* Flushes, syncs and closes f; false on any failure. */
static bool finish_file(FILE *f) {
    bool ok = fflush(f) == 0 && !ferror(f);
    ok = fsync(fileno(f)) == 0 && ok;
    return fclose(f) == 0 && ok;
}

static bool prefix_is_valid(const char *s) {
    if (!(isalpha((unsigned char)s[0]) || s[0] == '_') || strlen(s) > 64)
        return false;
    for (const char *c = s; *c; c++)
        if (!(isalnum((unsigned char)*c) || *c == '_'))
            return false;
    return true;
}

loom_status loom_export_c(const loom_model *m, const char *out_dir, const char *prefix,
                          loom_error *err) {
    if (!m || !out_dir)
        return loom_error_set(err, LOOM_ERR_ARG, "C export: NULL argument");
    if (!prefix || !*prefix)
        prefix = "model";
    if (!prefix_is_valid(prefix))
        return loom_error_set(err, LOOM_ERR_ARG,
                              "C export: prefix '%s' is not a C identifier (letters, digits and "
                              "'_', not starting with a digit, at most 64)",
                              prefix);
    struct stat sb;
    if (stat(out_dir, &sb) != 0 || !S_ISDIR(sb.st_mode))
        return loom_error_set(err, LOOM_ERR_IO, "%s: not a directory", out_dir);
    plan *p = malloc(sizeof *p);
    if (!p)
        return loom_error_set(err, LOOM_ERR_NOMEM, "C export: out of memory");
    loom_status st = make_plan(p, m, prefix, err);
    char tmp_h[4096] = "", tmp_c[4096] = "", path_h[4096], path_c[4096], name[80];
    FILE *fh = NULL, *fc = NULL;
    if (st)
        goto done;
    if ((size_t)snprintf(path_h, sizeof path_h, "%s/%s.h", out_dir, prefix) >= sizeof path_h ||
        (size_t)snprintf(path_c, sizeof path_c, "%s/%s.c", out_dir, prefix) >= sizeof path_c) {
        st = loom_error_set(err, LOOM_ERR_ARG, "%s: path too long", out_dir);
        goto done;
    }
    snprintf(name, sizeof name, "%s.h", prefix);
    if (!(fh = open_temp(out_dir, name, tmp_h, sizeof tmp_h, err))) {
        st = err ? err->status : LOOM_ERR_IO;
        goto done;
    }
    snprintf(name, sizeof name, "%s.c", prefix);
    if (!(fc = open_temp(out_dir, name, tmp_c, sizeof tmp_c, err))) {
        st = err ? err->status : LOOM_ERR_IO;
        goto done;
    }
    write_header(fh, p);
    if ((st = write_source(fc, p, err)))
        goto done;
    bool is_ok_h = finish_file(fh), is_ok_c = finish_file(fc);
    fh = fc = NULL;
    if (!is_ok_h || !is_ok_c) {
        st = loom_error_set(err, LOOM_ERR_IO, "%s: cannot write %s: %s", out_dir,
                            is_ok_h ? path_c : path_h, strerror(errno));
        goto done;
    }
    if (rename(tmp_h, path_h) != 0) {
        st = loom_error_set(err, LOOM_ERR_IO, "%s: cannot rename into place: %s", path_h,
                            strerror(errno));
        goto done;
    }
    tmp_h[0] = '\0';
    if (rename(tmp_c, path_c) != 0) {
        st = loom_error_set(err, LOOM_ERR_IO, "%s: cannot rename into place: %s", path_c,
                            strerror(errno));
        unlink(path_h); /* no header without its source */
        goto done;
    }
    tmp_c[0] = '\0';
done:
    if (fh)
        fclose(fh);
    if (fc)
        fclose(fc);
    if (tmp_h[0])
        unlink(tmp_h);
    if (tmp_c[0])
        unlink(tmp_c);
    if (p) {
        free(p->x);
        free(p->ls);
    }
    free(p);
    return st;
}
