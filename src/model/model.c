/* model.c - the model container: parse the model language into layers, chain their shapes,
 * lay out one parameter buffer (+ gradients, + state), size the activation arena once per
 * maximum batch, run forward and backward over the whole batch, print the summary.
 * Activations: acts[i] is layer i's output (max_batch, out_i). */
#include "model.h"

#include <assert.h>
#include <ctype.h>
#include <math.h>
#include <omp.h>

bool dense_is_softmax(const layer *l);

/* ---- parsing ---- */

/* Splits one layer description into words (in place); "key=value" is kept whole. */
static int split_words(char *s, char **argv, int max) {
    int argc = 0;
    for (char *p = s; *p;) {
        while (*p && isspace((unsigned char)*p))
            p++;
        if (!*p)
            break;
        if (argc == max)
            return -1;
        argv[argc++] = p;
        while (*p && !isspace((unsigned char)*p))
            p++;
        if (*p)
            *p++ = '\0';
    }
    return argc;
}

static void layer_release(layer *l) {
    if (l->ops && l->ops->destroy)
        l->ops->destroy(l);
    else
        free(l->cfg);
    l->cfg = NULL;
}

/* One item of the model language: a layer's words, or a brace. */
typedef struct {
    char *argv[16];
    int argc, line;
    char brace;         /* '{', '}' or 0 for words */
    bool follows_close; /* words right after a '}' on its line, before any ',' or '+' */
} item;

typedef struct {
    item *items;
    int n, pos;
    const char *source;
    loom_error *err;
} parser;

/* Splits buf (modified in place) into items: newlines, ',' and '+' separate them, '{' and '}'
 * are items of their own, '#' starts a comment. Returns -1 for a layer of too many words. */
static int tokenize(char *buf, item *items, int cap, int *bad_line) {
    int n = 0, line = 1;
    bool after_close = false;
    char *p = buf;
    while (*p) {
        size_t len = strcspn(p, "\n,+{}#");
        char c = p[len];
        p[len] = '\0';
        item it = {.line = line, .follows_close = after_close};
        it.argc = split_words(p, it.argv, 16);
        if (it.argc < 0) {
            *bad_line = line;
            return -1;
        }
        if (it.argc > 0) {
            if (n < cap)
                items[n] = it;
            n++;
            after_close = false;
        }
        p += len + (c != '\0');
        if (c == '{' || c == '}') {
            if (n < cap)
                items[n] = (item){.brace = c, .line = line};
            n++;
            after_close = c == '}';
        } else {
            after_close = false;
            if (c == '#')
                p += strcspn(p, "\n");
        }
        if (c == '\n' || (c == '#' && *p == '\n'))
            line++;
        if (c == '#' && *p == '\n')
            p++;
    }
    return n;
}

static loom_status perr(parser *ps, int line, const char *fmt, const char *token) {
    char msg[200];
    snprintf(msg, sizeof msg, fmt, token);
    return loom_error_set(ps->err, LOOM_ERR_FORMAT, "%s:%d: %s", ps->source, line, msg);
}

static void release_all(layer *ls, int n) {
    for (int i = 0; i < n; i++)
        layer_release(&ls[i]);
}

static loom_status parse_seq(parser *ps, layer *out, int cap, int *n, int depth);

/* One plain layer from its words into l. */
static loom_status parse_layer(parser *ps, const item *it, layer *l) {
    char **argv = (char **)it->argv;
    const layer_kind_entry *k = loom_layer_kinds;
    while (k->word && strcmp(k->word, argv[0]) != 0)
        k++;
    if (!k->word) {
        char kinds[400] = "";
        for (const layer_kind_entry *q = loom_layer_kinds; q->word; q++) {
            size_t used = strlen(kinds);
            snprintf(kinds + used, sizeof kinds - used, "%s%s", q == loom_layer_kinds ? "" : ", ",
                     q->word);
        }
        return loom_error_set(ps->err, LOOM_ERR_FORMAT,
                              "%s:%d: unknown layer kind '%s' (kinds: %s, and the blocks "
                              "residual { ... } and repeat N { ... })",
                              ps->source, it->line, argv[0], kinds);
    }
    memset(l, 0, sizeof *l);
    loom_error e2 = {0};
    loom_status st = k->parse(l, it->argc, argv, &e2);
    if (st)
        loom_error_set(ps->err, st, "%s:%d: %s", ps->source, it->line, e2.msg);
    return st;
}

/* "{" at ps->pos, then a sequence, then "}": the layers appended to out. */
static loom_status parse_body(parser *ps, const item *head, layer *out, int cap, int *n,
                              int depth) {
    if (ps->pos >= ps->n || ps->items[ps->pos].brace != '{')
        return perr(ps, head->line, "expected '{' after '%s'", head->argv[0]);
    if (depth >= 16)
        return perr(ps, head->line, "'%s': blocks nested more than 16 deep", head->argv[0]);
    ps->pos++;
    loom_status st = parse_seq(ps, out, cap, n, depth + 1);
    if (st)
        return st;
    if (ps->pos >= ps->n)
        return perr(ps, head->line, "'%s {' is not closed by '}'", head->argv[0]);
    ps->pos++; /* the '}' */
    return LOOM_OK;
}

/* residual [proj] { ... } [activation]: the block into l. */
static loom_status parse_residual(parser *ps, const item *head, layer *l, int depth) {
    bool is_proj = false;
    for (int i = 1; i < head->argc; i++) {
        if (strcmp(head->argv[i], "proj") != 0 || is_proj)
            return perr(ps, head->line, "residual: unexpected word '%s' (residual [proj] { ... })",
                        head->argv[i]);
        is_proj = true;
    }
    layer *inner = calloc(RESIDUAL_MAX_LAYERS, sizeof *inner);
    if (!inner)
        return loom_error_set(ps->err, LOOM_ERR_NOMEM, "%s: out of memory", ps->source);
    int n = 0;
    loom_status st = parse_body(ps, head, inner, RESIDUAL_MAX_LAYERS, &n, depth);
    act_kind act = ACT_NONE;
    float alpha = 0.0f;
    if (st == LOOM_OK && ps->pos < ps->n && ps->items[ps->pos].follows_close) {
        /* the activation after the addition: an activation layer's words */
        const item *a = &ps->items[ps->pos++];
        layer t = {0};
        st = parse_layer(ps, a, &t);
        if (st == LOOM_OK && (!t.ops->lower || strcmp(t.ops->kind, "activation") != 0))
            st = perr(ps, a->line,
                      "residual: '%s' after '}' is not an activation (write it on a line of its "
                      "own to follow the block as a layer)",
                      a->argv[0]);
        if (st == LOOM_OK) {
            layer_lowering lw;
            t.ops->lower(&t, &lw);
            act = lw.act;
            alpha = lw.alpha;
        }
        if (t.ops)
            layer_release(&t);
    }
    if (st == LOOM_OK && n == 0)
        st = perr(ps, head->line, "%s: an empty block", "residual");
    if (st) {
        release_all(inner, n);
        free(inner);
        return st;
    }
    memset(l, 0, sizeof *l);
    loom_error e2 = {0};
    st = residual_make(l, inner, n, is_proj, act, alpha, &e2);
    free(inner);
    if (st)
        loom_error_set(ps->err, st, "%s:%d: %s", ps->source, head->line, e2.msg);
    return st;
}

/* Items from ps->pos up to a '}' (not consumed) or the end into out (at most cap layers). A
 * block's depth: 0 at the top, where '}' is an error. */
static loom_status parse_seq(parser *ps, layer *out, int cap, int *n, int depth) {
    while (ps->pos < ps->n) {
        const item *it = &ps->items[ps->pos];
        if (it->brace == '}') {
            if (depth == 0)
                return perr(ps, it->line, "'%s' without a block to close", "}");
            return LOOM_OK;
        }
        if (it->brace == '{')
            return perr(ps, it->line, "'%s' without 'residual' or 'repeat N' before it", "{");
        ps->pos++;
        if (strcmp(it->argv[0], "repeat") == 0) {
            int count = 0;
            if (it->argc != 2 || !parse_int(it->argv[1], &count) || count < 1 || count > 1000)
                return perr(ps, it->line, "repeat: expected a count from 1 to 1000, found '%s'",
                            it->argc > 1 ? it->argv[1] : "");
            int start = ps->pos, n0 = *n;
            for (int r = 0; r < count; r++) {
                ps->pos = start;
                loom_status st = parse_body(ps, it, out, cap, n, depth);
                if (st)
                    return st;
                if (*n == n0) /* also bounds the work of nested repeats */
                    return perr(ps, it->line, "%s: an empty block", "repeat");
            }
            continue;
        }
        if (*n == cap)
            return loom_error_set(ps->err, LOOM_ERR_FORMAT, "%s:%d: more than %d layers%s",
                                  ps->source, it->line, cap, depth ? " in one block" : "");
        loom_status st = strcmp(it->argv[0], "residual") == 0
                             ? parse_residual(ps, it, &out[*n], depth)
                             : parse_layer(ps, it, &out[*n]);
        if (st)
            return st;
        (*n)++;
    }
    return LOOM_OK;
}

/* Parses text into m->layers (ops + cfg only). Items are separated by newlines, commas or
 * " + "; '#' starts a comment; "residual [proj] { ... } [activation]" makes a block of the items
 * inside, "repeat N { ... }" repeats its items. Errors: "source:line: message". */
loom_status model_parse(loom_model *m, const char *text, const char *source, loom_error *err) {
    size_t len = strlen(text);
    char *buf = malloc(len + 1);
    if (!buf)
        return loom_error_set(err, LOOM_ERR_NOMEM, "%s: out of memory", source);
    memcpy(buf, text, len + 1);
    for (char *c = buf; *c; c++)
        *c = (char)tolower((unsigned char)*c);
    int bad_line = 0, n = tokenize(buf, NULL, 0, &bad_line);
    loom_status st = LOOM_OK;
    parser ps = {.source = source, .err = err};
    if (n < 0) {
        st = loom_error_set(err, LOOM_ERR_FORMAT, "%s:%d: too many words in one layer", source,
                            bad_line);
        goto done;
    }
    /* the tokenizer wrote nothing into buf on the counting pass but its '\0's: run it again */
    memcpy(buf, text, len + 1);
    for (char *c = buf; *c; c++)
        *c = (char)tolower((unsigned char)*c);
    ps.items = malloc(sizeof(item) * (size_t)(n + 1));
    if (!ps.items) {
        st = loom_error_set(err, LOOM_ERR_NOMEM, "%s: out of memory", source);
        goto done;
    }
    ps.n = tokenize(buf, ps.items, n, &bad_line);
    st = parse_seq(&ps, m->layers, MODEL_MAX_LAYERS, &m->n_layers, 0);
    if (st == LOOM_OK && m->n_layers == 0)
        st = loom_error_set(err, LOOM_ERR_FORMAT, "%s: no layers", source);
done:
    free(ps.items);
    free(buf);
    return st;
}

/* ---- creation ---- */

static loom_status build_text(loom_model *m, loom_error *err) {
    size_t cap = 64 * (size_t)m->n_layers + 64, used = 0;
    m->text = malloc(cap);
    if (!m->text)
        return loom_error_set(err, LOOM_ERR_NOMEM, "model text: out of memory");
    m->text[0] = '\0';
    char *line = malloc(RESIDUAL_DESCRIBE_MAX);
    if (!line)
        return loom_error_set(err, LOOM_ERR_NOMEM, "model text: out of memory");
    for (int i = 0; i < m->n_layers; i++) {
        m->layers[i].ops->describe(&m->layers[i], line, RESIDUAL_DESCRIBE_MAX);
        size_t n = strlen(line);
        if (used + n + 2 > cap) {
            cap = 2 * (cap + n);
            char *t = realloc(m->text, cap);
            if (!t) {
                free(line);
                return loom_error_set(err, LOOM_ERR_NOMEM, "model text: out of memory");
            }
            m->text = t;
        }
        memcpy(m->text + used, line, n);
        used += n;
        m->text[used++] = '\n';
        m->text[used] = '\0';
    }
    free(line);
    return LOOM_OK;
}

/* loom_model_create; with n_counts (not NULL) only the parse and shape pass, which allocates no
 * parameters: n_counts receives the parameter and state counts and *out stays NULL. */
static loom_status create(loom_model **out, const char *text, const char *source, int H, int W,
                          int C, size_t *n_counts, loom_error *err) {
    *out = NULL;
    if (H < 1 || W < 1 || C < 1)
        return loom_error_set(err, LOOM_ERR_ARG, "%s: bad input shape %dx%dx%d", source, H, W, C);
    if ((size_t)H * W * C > LOOM_MAX_VALUES)
        return loom_error_set(err, LOOM_ERR_SHAPE,
                              "%s: input %dx%dx%d has more than %d values per example; downscale "
                              "the images",
                              source, H, W, C, LOOM_MAX_VALUES);
    loom_model *m = calloc(1, sizeof *m);
    if (!m)
        return loom_error_set(err, LOOM_ERR_NOMEM, "%s: out of memory", source);
    m->in = shape3(H, W, C);
    loom_status st = model_parse(m, text, source, err);
    if (st)
        goto fail;
    loom_shape s = m->in;
    int n_groups = 0;
    for (int i = 0; i < m->n_layers; i++) {
        layer *l = &m->layers[i];
        l->in = s;
        loom_error e2 = {0};
        st = l->ops->init(l, &e2);
        if (st) {
            loom_error_set(err, st, "%s: layer %d (%s): %s", source, i + 1, l->ops->kind, e2.msg);
            goto fail;
        }
        if (dense_is_softmax(l) && i != m->n_layers - 1) {
            st = loom_error_set(err, LOOM_ERR_FORMAT,
                                "%s: layer %d: softmax is only allowed on the last layer", source,
                                i + 1);
            goto fail;
        }
        if (shape_size(l->out) == 0) {
            st = loom_error_set(err, LOOM_ERR_SHAPE, "%s: layer %d (%s): output is empty", source,
                                i + 1, l->ops->kind);
            goto fail;
        }
        if (shape_size(l->out) > LOOM_MAX_VALUES) {
            st = loom_error_set(err, LOOM_ERR_SHAPE,
                                "%s: layer %d (%s): output has %zu values per example, more than "
                                "%d; use fewer units or filters, or pool earlier",
                                source, i + 1, l->ops->kind, shape_size(l->out), LOOM_MAX_VALUES);
            goto fail;
        }
        m->n_params += l->n_params;
        m->n_state += l->n_state;
        m->n_bytes += l->n_bytes;
        n_groups += l->n_groups;
        s = l->out;
    }
    if (s.rank != 1) {
        char sb[64];
        shape_format(s, sb, sizeof sb);
        st = loom_error_set(err, LOOM_ERR_SHAPE,
                            "%s: the last layer's output is %s; end with 'flatten' and 'dense'",
                            source, sb);
        goto fail;
    }
    if (n_counts) {
        n_counts[0] = m->n_params;
        n_counts[1] = m->n_state;
        n_counts[2] = m->n_bytes;
        loom_model_destroy(m);
        return LOOM_OK;
    }
    m->params = loom_xalloc(sizeof(float) * m->n_params);
    m->grads = loom_xalloc(sizeof(float) * m->n_params);
    m->state = loom_xalloc(sizeof(float) * m->n_state);
    m->bytes = loom_xalloc(m->n_bytes + 64);
    m->groups = calloc((size_t)n_groups + 1, sizeof *m->groups);
    if (!m->params || !m->grads || !m->state || !m->bytes || !m->groups) {
        st = loom_error_set(err, LOOM_ERR_NOMEM, "%s: cannot allocate %zu parameters", source,
                            m->n_params);
        goto fail;
    }
    size_t po = 0, so = 0, bo = 0;
    for (int i = 0; i < m->n_layers; i++) {
        layer *l = &m->layers[i];
        l->w = m->params + po;
        l->dw = m->grads + po;
        l->state = m->state + so;
        l->bytes = l->n_bytes ? m->bytes + bo : NULL;
        bo += l->n_bytes;
        for (int g = 0; g < l->n_groups; g++)
            m->groups[m->n_groups++] =
                (model_group){po + l->groups[g].off, l->groups[g].len, l->groups[g].kind, i};
        po += l->n_params;
        so += l->n_state;
    }
    st = build_text(m, err);
    if (st)
        goto fail;
    *out = m;
    return LOOM_OK;
fail:
    loom_model_destroy(m);
    return st;
}

loom_status loom_model_create(loom_model **out, const char *text, const char *source, int H, int W,
                              int C, loom_error *err) {
    return create(out, text, source, H, W, C, NULL, err);
}

loom_status model_count(const char *text, const char *source, int H, int W, int C, size_t *n_params,
                        size_t *n_state, size_t *n_bytes, loom_error *err) {
    loom_model *none = NULL;
    size_t n[3] = {0, 0, 0};
    loom_status st = create(&none, text, source, H, W, C, n, err);
    *n_params = n[0];
    *n_state = n[1];
    *n_bytes = n[2];
    return st;
}

void loom_model_destroy(loom_model *m) {
    if (!m)
        return;
    for (int i = 0; i < m->n_layers; i++)
        layer_release(&m->layers[i]);
    free(m->params);
    free(m->grads);
    free(m->state);
    free(m->bytes);
    free(m->groups);
    free(m->text);
    for (int k = 0; m->class_names && k < m->n_class_names; k++)
        free(m->class_names[k]);
    free(m->class_names);
    arena_free(&m->mem);
    free(m);
}

void loom_model_init(loom_model *m, uint64_t seed) {
    loom_rng rng;
    for (int i = 0; i < m->n_layers; i++) {
        layer *l = &m->layers[i];
        /* each layer its own stream: inserting a layer does not reshuffle the others */
        loom_rng_seed(&rng, loom_seed_derive(seed, (uint64_t)i));
        layer_init_params(l, &rng);
    }
}

loom_status loom_model_prepare(loom_model *m, int max_batch, loom_error *err) {
    if (max_batch < 1)
        return loom_error_set(err, LOOM_ERR_ARG, "batch size must be >= 1, got %d", max_batch);
    if (m->mem.base && m->max_batch >= max_batch)
        return LOOM_OK;
    arena_free(&m->mem);
    size_t bytes = 0, max_act = shape_size(m->in);
    for (int i = 0; i < m->n_layers; i++) {
        layer *l = &m->layers[i];
        size_t a = shape_size(l->out);
        if (a > max_act)
            max_act = a;
        if (!l->ops->is_view)
            bytes += arena_round(sizeof(float) * a * (size_t)max_batch);
        bytes += arena_round(sizeof(float) *
                             (l->scratch_per_example * (size_t)max_batch + l->scratch_fixed));
    }
    bytes += 2 * arena_round(sizeof(float) * max_act * (size_t)max_batch);
    /* Inference in chunks (model_infer) works in the same memory: its logits first, then its
     * workspace (a slot per thread) over the activations and scratch, which an inference pass
     * does not need (and which no backward pass may use after it). */
    m->iws = m->ilogits = NULL;
    m->n_iws = 0;
    size_t head = 0;
    if (max_batch > MODEL_CHUNK) {
        m->n_iws = model_infer_floats(m, max_batch, loom_get_threads());
        head = arena_round(sizeof(float) * (size_t)max_batch * loom_model_n_outputs(m));
        if (arena_round(sizeof(float) * m->n_iws) > bytes)
            bytes = arena_round(sizeof(float) * m->n_iws);
    }
    loom_status st = arena_init(&m->mem, head + bytes, err);
    if (st)
        return st;
    if (head) {
        m->ilogits = arena_floats(&m->mem, (size_t)max_batch * loom_model_n_outputs(m));
        m->iws = (float *)(m->mem.base + m->mem.used);
    }
    for (int i = 0; i < m->n_layers; i++) {
        layer *l = &m->layers[i];
        /* a view's output is its input's memory, set by each forward pass */
        m->own[i] =
            l->ops->is_view ? NULL : arena_floats(&m->mem, shape_size(l->out) * (size_t)max_batch);
        m->acts[i] = m->own[i];
        l->scratch =
            arena_floats(&m->mem, l->scratch_per_example * (size_t)max_batch + l->scratch_fixed);
        l->max_batch = max_batch;
    }
    m->dbuf[0] = arena_floats(&m->mem, max_act * (size_t)max_batch);
    m->dbuf[1] = arena_floats(&m->mem, max_act * (size_t)max_batch);
    m->max_batch = max_batch;
    return LOOM_OK;
}

/* Whether a forward pass hands layer l's input on as its output (views; identities of the pass). */
static bool layer_passes(const layer *l, bool is_training) {
    return l->ops->is_view || (l->ops->is_identity && l->ops->is_identity(l, is_training));
}

const float *loom_model_forward(loom_model *m, const float *x, int B, bool is_training,
                                loom_rng *rng) {
    fwd_ctx ctx = {is_training, rng};
    m->x_in = x;
    m->last_B = B;
    const float *cur = x;
    double t = m->prof ? loom_now() : 0;
    for (int i = 0; i < m->n_layers; i++) {
        layer *l = &m->layers[i];
        m->passed[i] = layer_passes(l, is_training);
        if (m->passed[i]) {
            m->acts[i] = (float *)cur; /* read only: nothing writes a layer's input or output */
        } else {
            m->acts[i] = m->own[i];
            l->ops->forward(l, &ctx, cur, m->acts[i], B);
        }
        cur = m->acts[i];
        if (m->prof) {
            double now = loom_now();
            m->prof[2 * i] += now - t;
            t = now;
        }
    }
    return cur;
}

void loom_model_backward(loom_model *m, const float *dlogits, int B) {
    int n = m->n_layers;
    /* Layers before the first one with parameters need no gradient: stop there, and do not
     * ask that layer for dL/dx. */
    int first = 0;
    while (first < n - 1 && m->layers[first].n_params == 0)
        first++;
    float *cur = m->dbuf[0], *nxt = m->dbuf[1];
    memcpy(cur, dlogits, sizeof(float) * shape_size(m->layers[n - 1].out) * (size_t)B);
    double t0 = m->prof ? loom_now() : 0;
    for (int i = n - 1; i >= first; i--) {
        layer *l = &m->layers[i];
        const float *x = i == 0 ? m->x_in : m->acts[i - 1];
        if (!m->passed[i]) { /* a passed layer's dx is its dy, already in cur */
            l->ops->backward(l, x, m->acts[i], cur, i > first ? nxt : NULL, B);
            float *t = cur;
            cur = nxt;
            nxt = t;
        }
        if (m->prof) {
            double now = loom_now();
            m->prof[2 * i + 1] += now - t0;
            t0 = now;
        }
    }
}

static bool all_finite(const float *v, size_t n) {
    float acc = 0.0f; /* NaN and Inf survive multiplication by zero: one test for the lot */
#pragma omp simd reduction(+ : acc)
    for (size_t i = 0; i < n; i++)
        acc += v[i] * 0.0f;
    return acc == 0.0f;
}

int model_first_nonfinite_output(const loom_model *m, int B) {
    for (int i = 0; i < m->n_layers; i++)
        if (!all_finite(m->acts[i], shape_size(m->layers[i].out) * (size_t)B))
            return i;
    return -1;
}

int model_first_nonfinite_grad(const loom_model *m) {
    if (all_finite(m->grads, m->n_params))
        return -1;
    for (int i = 0; i < m->n_layers; i++)
        if (!all_finite(m->layers[i].dw, m->layers[i].n_params))
            return i;
    return -1;
}

void model_layer_name(const loom_model *m, int i, char *buf, size_t n) {
    char desc[200];
    m->layers[i].ops->describe(&m->layers[i], desc, sizeof desc);
    snprintf(buf, n, "layer %d (%s)", i + 1, desc);
}

static void zero_body(void *ctx, long lo, long hi, int c) {
    (void)c;
    memset((float *)ctx + lo, 0, sizeof(float) * (size_t)(hi - lo));
}

void loom_model_zero_grad(loom_model *m) {
    /* a memset of up to tens of MB each step: in fixed chunks over the threads */
    long n = (long)m->n_params;
    par_for(n, par_n_chunks(n, 1L << 18), zero_body, m->grads);
}

size_t loom_model_n_params(const loom_model *m) { return m->n_params; }
size_t loom_model_n_state(const loom_model *m) { return m->n_state; }
float *loom_model_params(loom_model *m) { return m->params; }
float *loom_model_grads(loom_model *m) { return m->grads; }
float *loom_model_state(loom_model *m) { return m->state; }
int loom_model_n_layers(const loom_model *m) { return m->n_layers; }
const char *loom_model_text(const loom_model *m) { return m->text; }

int loom_model_n_outputs(const loom_model *m) {
    return (int)shape_size(m->layers[m->n_layers - 1].out);
}

void loom_model_input_shape(const loom_model *m, int *H, int *W, int *C) {
    *H = m->in.d[0];
    *W = m->in.d[1];
    *C = m->in.d[2];
}

double loom_model_flops(const loom_model *m) {
    double f = 0;
    for (int i = 0; i < m->n_layers; i++)
        f += m->layers[i].flops;
    return f;
}

double loom_model_l2_apply(loom_model *m, float l2, bool add_grad) {
    double sum = 0;
    for (int g = 0; g < m->n_groups; g++) {
        const model_group *mg = &m->groups[g];
        if (mg->kind != GROUP_WEIGHT && mg->kind != GROUP_RECURRENT)
            continue;
        const float *w = m->params + mg->off;
        float *dw = m->grads + mg->off;
        double s = 0;
        for (size_t i = 0; i < mg->len; i++)
            s += (double)w[i] * w[i];
        sum += s;
        if (add_grad)
            for (size_t i = 0; i < mg->len; i++)
                dw[i] += 2.0f * l2 * w[i];
    }
    return sum;
}

static void fmt_count(double v, char *buf, size_t n) {
    char raw[32], out[48];
    snprintf(raw, sizeof raw, "%.0f", v);
    int len = (int)strlen(raw), j = 0;
    for (int i = 0; i < len; i++) {
        if (i > 0 && (len - i) % 3 == 0)
            out[j++] = ',';
        out[j++] = raw[i];
    }
    out[j] = '\0';
    snprintf(buf, n, "%s", out);
}

/* One summary row per layer; a residual block as its head row (output shape, all its
 * parameters), its inner layers and shortcut indented below it, and its closing brace. */
static void summary_layer(const layer *l, int depth, FILE *f) {
    char shp[64], cnt[48], desc[256];
    int ind = 2 * depth;
    shape_format(l->out, shp, sizeof shp);
    fmt_count((double)(l->n_params + l->n_state), cnt, sizeof cnt);
    if (!layer_is_residual(l)) {
        l->ops->describe(l, desc, sizeof desc);
        fprintf(f, "%*s%-*.*s %-18s %12s\n", ind, "", 44 - ind, 44 - ind, desc, shp, cnt);
        return;
    }
    layer *parts = malloc(sizeof(layer) * RESIDUAL_MAX_LAYERS), proj;
    if (!parts)
        return;
    int n = residual_parts(l, parts, RESIDUAL_MAX_LAYERS, &proj);
    fprintf(f, "%*s%-*s %-18s %12s\n", ind, "", 44 - ind,
            proj.ops ? "residual proj {" : "residual {", shp, cnt);
    for (int j = 0; j < n; j++)
        summary_layer(&parts[j], depth + 1, f);
    if (proj.ops) {
        char pd[200];
        proj.ops->describe(&proj, pd, sizeof pd);
        snprintf(desc, sizeof desc, "shortcut: %s", pd);
        shape_format(proj.out, shp, sizeof shp);
        fmt_count((double)proj.n_params, cnt, sizeof cnt);
        fprintf(f, "%*s%-*.*s %-18s %12s\n", ind + 2, "", 42 - ind, 42 - ind, desc, shp, cnt);
    }
    layer_lowering lw;
    l->ops->lower(l, &lw);
    snprintf(desc, sizeof desc, "} + %s%s%s", proj.ops ? "shortcut" : "input",
             lw.act != ACT_NONE ? ", " : "", lw.act != ACT_NONE ? act_name(lw.act) : "");
    fprintf(f, "%*s%s\n", ind, "", desc);
    free(parts);
}

void loom_model_summary(const loom_model *m, FILE *f) {
    char shp[64], cnt[48];
    const char *rule = "-----------------------------------------------------------------------"
                       "---------";
    fprintf(f, "%-44s %-18s %12s\n", "Layer", "Output shape", "Params");
    fprintf(f, "%s\n", rule);
    shape_format(m->in, shp, sizeof shp);
    fprintf(f, "%-44s %-18s %12s\n", "input", shp, "0");
    for (int i = 0; i < m->n_layers; i++)
        summary_layer(&m->layers[i], 0, f);
    fprintf(f, "%s\n", rule);
    fmt_count((double)(m->n_params + m->n_state), cnt, sizeof cnt);
    fprintf(f, "Total params: %s\n", cnt);
    fmt_count((double)m->n_params, cnt, sizeof cnt);
    fprintf(f, "Trainable params: %s\n", cnt);
    fmt_count((double)m->n_state, cnt, sizeof cnt);
    fprintf(f, "Non-trainable params: %s\n", cnt);
    double fl = loom_model_flops(m);
    fprintf(f, "Forward FLOPs per image: %.2f M (training step about %.2f M)\n", fl / 1e6,
            3 * fl / 1e6);
}

/* Inference forward pass with caller-owned memory, so that several threads can run one model at
 * once: the model is only read. ws (n_ws floats, 64-byte aligned) holds two ping-pong activation
 * buffers (B, largest activation), then one scratch region that every layer uses in turn (an
 * inference pass keeps nothing from one layer to the next, and each layer's forward writes its
 * scratch before reading it), sized for the largest. Each layer runs on a copy of its struct
 * whose scratch points into ws. *n_need (may be NULL) receives the floats needed for B; returns
 * the logits (B, n_out) inside ws, or NULL when n_ws is short. */
const float *model_forward_ws(const loom_model *m, const float *x, int B, float *ws, size_t n_ws,
                              size_t *n_need) {
    const size_t align = 16; /* floats: keeps every region 64-byte aligned */
    size_t max_act = shape_size(m->in), max_scratch = 0;
    for (int i = 0; i < m->n_layers; i++) {
        const layer *l = &m->layers[i];
        if (shape_size(l->out) > max_act)
            max_act = shape_size(l->out);
        size_t s = l->scratch_per_example * (size_t)B + l->scratch_fixed;
        if (s > max_scratch)
            max_scratch = s;
    }
    size_t act = (max_act * (size_t)B + align - 1) / align * align;
    size_t need = 2 * act + (max_scratch + align - 1) / align * align;
    if (n_need)
        *n_need = need;
    if (!ws || n_ws < need || B < 1)
        return NULL;
    fwd_ctx ctx = {false, NULL};
    float *buf[2] = {ws, ws + act};
    const float *cur = x;
    int w = 0; /* the buffer written next: never cur's */
    for (int i = 0; i < m->n_layers; i++) {
        layer l = m->layers[i];
        if (layer_passes(&l, false))
            continue;
        l.scratch = ws + 2 * act;
        l.max_batch = B;
        l.ops->forward(&l, &ctx, cur, buf[w], B);
        cur = buf[w];
        w ^= 1;
    }
    return cur;
}

/* Chunks of B and the workspace slots (one per thread that runs at once) for them. */
static int infer_chunks(int B) { return (B + MODEL_CHUNK - 1) / MODEL_CHUNK; }

size_t model_infer_floats(const loom_model *m, int max_batch, int threads) {
    size_t need = 0;
    if (max_batch <= MODEL_CHUNK) {
        model_forward_ws(m, NULL, max_batch, NULL, 0, &need);
        return need;
    }
    int slots = threads < infer_chunks(max_batch) ? threads : infer_chunks(max_batch);
    model_forward_ws(m, NULL, MODEL_CHUNK, NULL, 0, &need);
    return need * (size_t)(slots > 1 ? slots : 1);
}

/* Chunk c of B examples through the model on workspace w (per floats), its logits into out. */
static void infer_chunk(const loom_model *m, const float *x, int B, int c, float *w, size_t per,
                        float *out) {
    int lo = c * MODEL_CHUNK, b = B - lo < MODEL_CHUNK ? B - lo : MODEL_CHUNK;
    size_t K = (size_t)loom_model_n_outputs(m);
    const float *z = model_forward_ws(m, x + (size_t)lo * shape_size(m->in), b, w, per, NULL);
    memcpy(out + (size_t)lo * K, z, sizeof(float) * (size_t)b * K);
}

const float *model_infer_ws(const loom_model *m, const float *x, int B, float *ws, size_t n_ws,
                            float *out) {
    if (B <= MODEL_CHUNK)
        return model_forward_ws(m, x, B, ws, n_ws, NULL);
    size_t per = 0;
    model_forward_ws(m, NULL, MODEL_CHUNK, NULL, 0, &per);
    int nc = infer_chunks(B), slots = (int)(n_ws / per);
    if (slots < 1)
        return NULL;
    int team = omp_in_parallel() ? 1 : omp_get_max_threads();
    if (team > slots)
        team = slots;
    if (team > nc)
        team = nc;
    if (team <= 1) {
        for (int c = 0; c < nc; c++)
            infer_chunk(m, x, B, c, ws, per, out);
        return out;
    }
    /* each chunk runs on one thread: inside this region the layers' par_for loops are plain
     * loops (par_is_serial). Chunks are handed out as threads come free (dynamic): on a shared
     * machine a thread that loses its core no longer holds half the batch; each chunk's numbers
     * are its own whichever thread and slot run it. */
#pragma omp parallel num_threads(team)
    {
        float *w = ws + per * (size_t)omp_get_thread_num();
#pragma omp for schedule(dynamic, 1)
        for (int c = 0; c < nc; c++)
            infer_chunk(m, x, B, c, w, per, out);
    }
    return out;
}

const float *model_infer(loom_model *m, const float *x, int B) {
    if (!m->iws || B > m->max_batch)
        return loom_model_forward(m, x, B, false, NULL);
    const float *z = model_infer_ws(m, x, B, m->iws, m->n_iws, m->ilogits);
    assert(z); /* prepare sized iws for at least one slot */
    return z;
}
