/* space.c - the search-space language (docs/SEARCH-SPACE.md): the model language with {ranges}
 * and {choices} in place of words, repeat blocks whose count is itself a hyperparameter, and
 * training-setting lines. Parses a space file, checks that every value it can draw makes a
 * model, and draws points from it. */
#include "search.h"
#include "../model/model.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <strings.h>

#define SPACE_MAX_REPEAT 64 /* repetitions of a repeat block */
#define SPACE_MAX_NAME 48   /* characters of a hyperparameter name */
#define SPACE_CHOICE_LEN 63 /* characters of a choice: values are checked in 64 bytes */
#define SPACE_N_CHOICES 64  /* choices of one hyperparameter: each is checked */

/* ---- the space ---- */

bool grow(void **p, int *cap, int need, size_t size) {
    if (need <= *cap)
        return true;
    int c = *cap ? 2 * *cap : 16;
    while (c < need)
        c *= 2;
    void *q = realloc(*p, (size_t)c * size);
    if (!q)
        return false;
    *p = q;
    *cap = c;
    return true;
}

static void hp_free(space_hp *h) {
    free(h->name);
    free(h->token);
    for (int i = 0; i < h->n_choices; i++)
        free(h->choices[i]);
    free(h->choices);
    memset(h, 0, sizeof *h);
}

void loom_space_destroy(loom_space *s) {
    if (!s)
        return;
    for (int i = 0; i < s->n_hp; i++)
        hp_free(&s->hps[i]);
    for (int i = 0; i < s->n_items; i++)
        for (int w = 0; w < s->items[i].n_words; w++)
            free(s->items[i].words[w]);
    free(s->hps);
    free(s->items);
    free(s->blocks);
    free(s->source);
    free(s);
}

int loom_space_n_hp(const loom_space *s) { return s->n_hp; }

const char *loom_space_hp_name(const loom_space *s, int i) {
    return i >= 0 && i < s->n_hp ? s->hps[i].name : NULL;
}

static void hp_format(const space_hp *h, double v, char *buf, size_t n) {
    if (h->kind == HP_INT)
        snprintf(buf, n, "%lld", (long long)llround(v));
    else if (h->step > 0)
        snprintf(buf, n, "%.10g", v); /* a grid value: lo + k step, shown as written */
    else
        snprintf(buf, n, "%.4g", v);
}

void loom_space_hp_describe(const loom_space *s, int i, char *buf, size_t n) {
    if (i < 0 || i >= s->n_hp) {
        snprintf(buf, n, "?");
        return;
    }
    const space_hp *h = &s->hps[i];
    if (h->kind == HP_CHOICE) {
        size_t used = (size_t)snprintf(buf, n, "choice ");
        for (int c = 0; c < h->n_choices && used < n; c++)
            used += (size_t)snprintf(buf + used, n - used, "%s%s", c ? "|" : "", h->choices[c]);
        return;
    }
    char lo[32], hi[32], st[32] = "";
    hp_format(h, h->lo, lo, sizeof lo);
    hp_format(h, h->hi, hi, sizeof hi);
    if (h->step > 0)
        snprintf(st, sizeof st, " step %.10g", h->step);
    snprintf(buf, n, "%s %s..%s%s%s", h->kind == HP_INT ? "int" : "float", lo, hi, st,
             h->is_log ? " log" : "");
}

/* ---- parsing ---- */

/* A training setting a space may fix or search (the settings table's searchable ones: not the
 * seed, which the search derives for every execution). */
static bool is_setting_key(const char *w) {
    int i = loom_setting_find(w);
    return i >= 0 && (loom_setting_info_at(i)->flags & LOOM_SETTING_SEARCHABLE);
}

typedef struct {
    loom_space *s;
    const char *source;
    int line;
    loom_error *err;
    char kinds[64][24]; /* layer kinds seen, for automatic names */
    int kind_count[64];
    int n_kinds;
    bool has_setting[TRAIN_SETTINGS_MAX];
    int n_layers;
} parser;

static loom_status perr(parser *p, const char *token, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static loom_status perr(parser *p, const char *token, const char *fmt, ...) {
    char msg[384];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (token)
        return loom_error_set(p->err, LOOM_ERR_FORMAT, "%s:%d: '%s': %s", p->source, p->line, token,
                              msg);
    return loom_error_set(p->err, LOOM_ERR_FORMAT, "%s:%d: %s", p->source, p->line, msg);
}

static bool is_int_literal(const char *s) {
    if (*s == '-' || *s == '+')
        s++;
    if (!*s)
        return false;
    for (; *s; s++)
        if (!isdigit((unsigned char)*s))
            return false;
    return true;
}

bool parse_number(const char *s, double *out) {
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (!*s || *end || errno || !isfinite(v))
        return false;
    *out = v;
    return true;
}

/* The words inside a brace: options (step S, log, name=N) and the domain, which may be written
 * with or without spaces ("512 | 256" is "512|256"). */
typedef struct {
    char domain[512];
    char *name; /* after "name=", or NULL */
    char *step; /* the word after "step", or NULL */
    bool has_step;
} brace_words;

/* Splits in (the brace's text without the braces, cut in place) into bw; sets h->is_log. */
static loom_status brace_split(parser *p, const char *token, char *in, brace_words *bw,
                               space_hp *h) {
    char *domain = bw->domain;
    char *save = NULL;
    loom_status st = LOOM_OK;
    for (char *w = strtok_r(in, " \t", &save); w && st == LOOM_OK;
         w = strtok_r(NULL, " \t", &save)) {
        if (strcmp(w, "step") == 0) {
            bw->step = strtok_r(NULL, " \t", &save);
            if (bw->has_step || !bw->step)
                st = perr(p, token, bw->has_step ? "'step' given twice" : "'step' needs a number");
            bw->has_step = true;
        } else if (strcmp(w, "log") == 0) {
            if (h->is_log)
                st = perr(p, token, "'log' given twice");
            h->is_log = true;
        } else if (strncmp(w, "name=", 5) == 0) {
            if (bw->name)
                st = perr(p, token, "'name=' given twice");
            bw->name = w + 5;
        } else if (*domain && !(strchr("|.", domain[strlen(domain) - 1]) || strchr("|.", *w))) {
            st = perr(p, token, "unknown option '%s' (step S, log, name=NAME)", w);
        } else if (strlen(domain) + strlen(w) + 1 < sizeof bw->domain) {
            strcat(domain, w);
        } else {
            st = perr(p, token, "too long");
        }
    }
    return st;
}

/* "name=N": checks N and copies it into h->name. */
static loom_status brace_name(parser *p, const char *token, const char *name, space_hp *h) {
    bool ok = *name && strlen(name) <= SPACE_MAX_NAME;
    for (const char *c = name; *c; c++)
        ok = ok && (isalnum((unsigned char)*c) || *c == '_');
    if (!ok)
        return perr(p, token, "a name is 1 to %d letters, digits or '_', got '%s'", SPACE_MAX_NAME,
                    name);
    if (!(h->name = strdup(name)))
        return loom_error_set(p->err, LOOM_ERR_NOMEM, "%s: out of memory", p->source);
    return LOOM_OK;
}

/* "LO..HI" (dots points at the "..") with an optional step or log: an int or float range. */
static loom_status brace_range(parser *p, const char *token, char *dots, const brace_words *bw,
                               space_hp *h) {
    *dots = '\0';
    const char *slo = bw->domain, *shi = dots + 2;
    if (!parse_number(slo, &h->lo) || !parse_number(shi, &h->hi))
        return perr(p, token, "expected numbers on both sides of '..'");
    if (h->lo > h->hi)
        return perr(p, token, "empty range: %g > %g", h->lo, h->hi);
    bool is_int = is_int_literal(slo) && is_int_literal(shi);
    if (bw->has_step) {
        if (h->is_log)
            return perr(p, token, "'step' and 'log' do not go together");
        if (!parse_number(bw->step, &h->step) || !(h->step > 0))
            return perr(p, token, "step must be a number > 0, got '%s'", bw->step);
        if ((h->hi - h->lo) / h->step > 1e6)
            return perr(p, token, "more than a million steps");
        is_int = is_int && is_int_literal(bw->step);
    }
    if (h->is_log && !(h->lo > 0))
        return perr(p, token, "a log range needs LO > 0");
    h->kind = is_int ? HP_INT : HP_FLOAT;
    return LOOM_OK;
}

/* "A|B|C" (domain, cut in place): the choices, each checked and copied into h->choices. */
static loom_status brace_choices(parser *p, const char *token, char *domain, const brace_words *bw,
                                 space_hp *h) {
    if (bw->has_step || h->is_log)
        return perr(p, token, "'step' and 'log' apply to ranges, not to choices");
    for (char *c = domain;;) {
        char *bar = strchr(c, '|');
        if (bar)
            *bar = '\0';
        if (!*c)
            return perr(p, token, "empty choice");
        if (strpbrk(c, ",\"{}"))
            return perr(p, token, "a choice cannot hold ',', '\"', '{' or '}': '%s'", c);
        if (strlen(c) > SPACE_CHOICE_LEN)
            return perr(p, token, "a choice is at most %d characters", SPACE_CHOICE_LEN);
        if (h->n_choices == SPACE_N_CHOICES)
            return perr(p, token, "more than %d choices", SPACE_N_CHOICES);
        char **more = realloc(h->choices, sizeof *more * (size_t)(h->n_choices + 1));
        if (more)
            h->choices = more;
        if (!more || !(h->choices[h->n_choices] = strdup(c)))
            return loom_error_set(p->err, LOOM_ERR_NOMEM, "%s: out of memory", p->source);
        h->n_choices++;
        if (!bar)
            break;
        c = bar + 1;
    }
    h->kind = HP_CHOICE;
    return LOOM_OK;
}

/* Parses "{...}" into h (kind, domain, optional name); h->name is left NULL when not given. */
static loom_status parse_brace(parser *p, const char *token, space_hp *h) {
    memset(h, 0, sizeof *h);
    h->line = p->line;
    h->block = -1;
    size_t len = strlen(token);
    if (len < 2 || token[len - 1] != '}') /* a line's final lone '{' outside 'repeat' */
        return perr(p, token, "'{' without '}': only 'repeat {COUNT} {' opens a block");
    char *in = malloc(len);
    if (!in)
        return loom_error_set(p->err, LOOM_ERR_NOMEM, "%s: out of memory", p->source);
    memcpy(in, token + 1, len - 2); /* without the braces */
    in[len - 2] = '\0';
    brace_words bw = {0};
    loom_status st = brace_split(p, token, in, &bw, h);
    if (st == LOOM_OK && bw.name)
        st = brace_name(p, token, bw.name, h);
    if (st == LOOM_OK && !*bw.domain)
        st = perr(p, token, "empty: expected {LO..HI}, {LO..HI step S}, {LO..HI log} or {A|B|C}");
    if (st == LOOM_OK) {
        char *dots = strstr(bw.domain, "..");
        if (dots && !strchr(bw.domain, '|'))
            st = brace_range(p, token, dots, &bw, h);
        else
            st = brace_choices(p, token, bw.domain, &bw, h);
    }
    if (st == LOOM_OK && !(h->token = strdup(token)))
        st = loom_error_set(p->err, LOOM_ERR_NOMEM, "%s: out of memory", p->source);
    free(in);
    if (st)
        hp_free(h);
    return st;
}

/* Adds h (its name given, or auto) to the space; checks the name is new. */
static loom_status add_hp(parser *p, space_hp *h, const char *auto_name, int block, int rep,
                          int *index) {
    loom_space *s = p->s;
    char name[128];
    if (h->name && block >= 0)
        snprintf(name, sizeof name, "%s_%d", h->name, rep);
    else
        snprintf(name, sizeof name, "%s", h->name ? h->name : auto_name);
    for (int i = 0; i < s->n_hp; i++)
        if (strcmp(s->hps[i].name, name) == 0) {
            loom_status st = perr(p, h->token, "hyperparameter name '%s' is already used (line %d)",
                                  name, s->hps[i].line);
            hp_free(h);
            return st;
        }
    free(h->name);
    h->name = strdup(name);
    if (!h->name || !grow((void **)&s->hps, &s->cap_hp, s->n_hp + 1, sizeof *s->hps)) {
        hp_free(h);
        return loom_error_set(p->err, LOOM_ERR_NOMEM, "%s: out of memory", p->source);
    }
    h->block = block;
    h->rep = rep;
    *index = s->n_hp;
    s->hps[s->n_hp++] = *h;
    memset(h, 0, sizeof *h);
    return LOOM_OK;
}

/* The name of word pos of a layer line in automatic hyperparameter names. */
static void param_word(const char *kind, int pos, char *buf, size_t n) {
    static const struct {
        const char *kind;
        const char *words[2];
    } table[] = {
        {"dense", {"units", "activation"}}, {"dropout", {"rate", NULL}},
        {"conv", {"filters", "kernel"}},    {"maxpool", {"size", NULL}},
        {"avgpool", {"size", NULL}},        {"rnn", {"units", NULL}},
        {"lstm", {"units", NULL}},          {"gru", {"units", NULL}},
    };
    for (size_t i = 0; i < sizeof table / sizeof *table; i++)
        if (strcmp(table[i].kind, kind) == 0 && pos <= 2 && table[i].words[pos - 1]) {
            snprintf(buf, n, "%s", table[i].words[pos - 1]);
            return;
        }
    snprintf(buf, n, "arg%d", pos);
}

/* One line's words (a raw item), before expansion. */
typedef struct {
    int line;
    int n_words;
    char *words[SPACE_MAX_WORDS];
} raw_item;

static void raw_free(raw_item *r) {
    for (int i = 0; i < r->n_words; i++)
        free(r->words[i]);
    r->n_words = 0;
}

/* A residual block's opening ("residual [proj] {") or closing ("} [activation]") line: passed on
 * to the model text word for word, neither a layer nor checked on its own. */
static bool is_struct_words(const char *w0) {
    return strcmp(w0, "residual") == 0 || strcmp(w0, "}") == 0;
}

/* Adds raw item r as repetition rep of block (or at top level) to the expanded space. */
static loom_status emit_item(parser *p, const raw_item *r, int block, int rep) {
    loom_space *s = p->s;
    p->line = r->line;
    const char *w0 = r->words[0];
    if (is_struct_words(w0)) {
        if (!grow((void **)&s->items, &s->cap_items, s->n_items + 1, sizeof *s->items))
            return loom_error_set(p->err, LOOM_ERR_NOMEM, "%s: out of memory", p->source);
        space_item *it = &s->items[s->n_items++];
        memset(it, 0, sizeof *it);
        it->line = r->line;
        it->block = block;
        it->rep = rep;
        for (int i = 0; i < r->n_words; i++) {
            it->hp[i] = -1;
            if (!(it->words[i] = strdup(r->words[i])))
                return loom_error_set(p->err, LOOM_ERR_NOMEM, "%s: out of memory", p->source);
            it->n_words = i + 1;
        }
        return LOOM_OK;
    }
    bool is_setting = is_setting_key(w0);
    if (w0[0] == '{')
        return perr(p, w0, "the layer kind (first word) cannot be searched");
    char prefix[64];
    if (is_setting) {
        if (block >= 0)
            return perr(p, w0, "a training setting cannot be inside a repeat block");
        if (r->n_words != 2)
            return perr(p, w0, "expected one value after the training setting");
        int k = loom_setting_find(w0);
        if (p->has_setting[k])
            return perr(p, w0, "the training setting is given twice");
        p->has_setting[k] = true;
        snprintf(prefix, sizeof prefix, "%s", w0);
    } else {
        const layer_kind_entry *lk = loom_layer_kinds;
        while (lk->word && strcasecmp(lk->word, w0) != 0)
            lk++;
        if (!lk->word)
            return perr(p, w0, "unknown layer kind (see 'loom help models')");
        int k = 0;
        while (k < p->n_kinds && strcmp(p->kinds[k], w0) != 0)
            k++;
        if (k == p->n_kinds) {
            if (k == 64 || strlen(w0) >= sizeof p->kinds[0])
                return perr(p, w0, "unknown layer kind");
            snprintf(p->kinds[k], sizeof p->kinds[0], "%s", w0);
            p->kind_count[k] = 0;
            p->n_kinds++;
        }
        snprintf(prefix, sizeof prefix, "%s_%d", w0, ++p->kind_count[k]);
        p->n_layers++;
    }
    if (!grow((void **)&s->items, &s->cap_items, s->n_items + 1, sizeof *s->items))
        return loom_error_set(p->err, LOOM_ERR_NOMEM, "%s: out of memory", p->source);
    space_item *it = &s->items[s->n_items++];
    memset(it, 0, sizeof *it);
    it->line = r->line;
    it->is_setting = is_setting;
    it->block = block;
    it->rep = rep;
    for (int i = 0; i < r->n_words; i++) {
        const char *w = r->words[i];
        it->hp[i] = -1;
        if (w[0] != '{') {
            if (!(it->words[i] = strdup(w)))
                return loom_error_set(p->err, LOOM_ERR_NOMEM, "%s: out of memory", p->source);
            it->n_words = i + 1;
            continue;
        }
        space_hp h;
        loom_status st = parse_brace(p, w, &h);
        char auto_name[128];
        if (is_setting) {
            snprintf(auto_name, sizeof auto_name, "%s", prefix);
        } else {
            char pw[32];
            param_word(w0, i, pw, sizeof pw);
            snprintf(auto_name, sizeof auto_name, "%s_%s", prefix, pw);
        }
        if (st || (st = add_hp(p, &h, auto_name, block, rep, &it->hp[i])))
            return st;
        it->n_words = i + 1;
    }
    return LOOM_OK;
}

/* Splits an item into words; a {...} group is one word, a final lone '{' opens a block. */
static loom_status split_item(parser *p, char *item, raw_item *r) {
    r->n_words = 0;
    r->line = p->line;
    char *q = item;
    for (;;) {
        while (*q && isspace((unsigned char)*q))
            q++;
        if (!*q)
            return LOOM_OK;
        char *start = q;
        if (*q == '{') {
            char *close = strchr(q, '}');
            char *rest = q + 1;
            while (*rest && isspace((unsigned char)*rest))
                rest++;
            if (!close && !*rest) {
                q++; /* the block opener */
            } else if (!close) {
                return perr(p, start, "missing '}'");
            } else {
                q = close + 1;
                if (*q && !isspace((unsigned char)*q))
                    return perr(p, start, "expected a space after '}'");
            }
        } else {
            size_t n = strcspn(start, " \t\r");
            bool is_close = n == 1 && *start == '}'; /* a lone '}' ends a block */
            if (!is_close && (memchr(start, '{', n) || memchr(start, '}', n))) {
                char tok[64];
                snprintf(tok, sizeof tok, "%.*s", (int)n, start);
                return perr(p, tok, "put spaces around {...}");
            }
            q += n;
        }
        if (r->n_words == SPACE_MAX_WORDS)
            return perr(p, NULL, "more than %d words in one line", SPACE_MAX_WORDS);
        char *w = strndup(start, (size_t)(q - start));
        if (!w)
            return loom_error_set(p->err, LOOM_ERR_NOMEM, "%s: out of memory", p->source);
        r->words[r->n_words++] = w;
    }
}

/* The text of one item with every hyperparameter at a given value: vals[i] for hp i, or the
 * first value of its domain when vals is NULL or vals[i] is NULL. */
static void item_text(const loom_space *s, const space_item *it, char *const *vals, const char *sep,
                      char *buf, size_t n) {
    size_t used = 0;
    buf[0] = '\0';
    for (int i = 0; i < it->n_words && used < n; i++) {
        char v[64];
        const char *w = it->words[i];
        if (it->hp[i] >= 0) {
            const space_hp *h = &s->hps[it->hp[i]];
            if (vals && vals[it->hp[i]])
                w = vals[it->hp[i]];
            else if (h->kind == HP_CHOICE)
                w = h->choices[0];
            else {
                hp_format(h, h->lo, v, sizeof v);
                w = v;
            }
        }
        used += (size_t)snprintf(buf + used, n - used, "%s%s", i == 0 ? "" : i == 1 ? sep : " ", w);
    }
}

/* The values worth trying when checking a word: every choice, or a range's two ends; for a
 * float range also a drawable value that is not a whole number (the second grid value, or one
 * strictly between two whole numbers), so that "dense {16..64.0}" fails here, not in a trial. */
static int check_values(const space_hp *h, char vals[][64], int max) {
    if (h->kind == HP_CHOICE) {
        int n = h->n_choices < max ? h->n_choices : max;
        for (int c = 0; c < n; c++)
            snprintf(vals[c], 64, "%s", h->choices[c]);
        return n;
    }
    double hi = h->hi;
    if (h->step > 0)
        hi = h->lo + h->step * floor((h->hi - h->lo) / h->step + 1e-9);
    hp_format(h, h->lo, vals[0], 64);
    hp_format(h, hi, vals[1], 64);
    if (h->kind != HP_FLOAT || !(hi > h->lo))
        return 2;
    if (h->step > 0)
        hp_format(h, h->lo + h->step, vals[2], 64);
    else
        hp_format(h, (h->lo + fmin(hi, floor(h->lo) + 1)) / 2, vals[2], 64);
    return 3;
}

/* Checks one item with hp k (or none, k < 0) at value v: the layer parser or the setting. */
static loom_status check_item(parser *p, const space_item *it, int k, const char *v) {
    loom_space *s = p->s;
    char **vals = calloc((size_t)s->n_hp + 1, sizeof *vals);
    if (!vals)
        return loom_error_set(p->err, LOOM_ERR_NOMEM, "%s: out of memory", p->source);
    if (k >= 0)
        vals[k] = (char *)v;
    char text[1024];
    loom_error e2 = {0};
    loom_status st = LOOM_OK;
    p->line = it->line;
    if (it->is_setting) {
        item_text(s, it, vals, "=", text, sizeof text);
        loom_train_config c;
        loom_train_config_init(&c);
        char *eq = strchr(text, '=');
        *eq = '\0';
        st = loom_settings_set(&(loom_settings){.train = &c}, text, eq + 1, &e2);
    } else {
        item_text(s, it, vals, " ", text, sizeof text);
        loom_model *m = calloc(1, sizeof *m);
        if (!m) {
            free(vals);
            return loom_error_set(p->err, LOOM_ERR_NOMEM, "%s: out of memory", p->source);
        }
        st = model_parse(m, text, "x", &e2);
        loom_model_destroy(m);
        if (st && strncmp(e2.msg, "x:1: ", 5) == 0)
            memmove(e2.msg, e2.msg + 5, strlen(e2.msg + 5) + 1);
    }
    free(vals);
    if (st == LOOM_OK)
        return LOOM_OK;
    if (k < 0)
        return perr(p, NULL, "%s", e2.msg);
    return perr(p, s->hps[k].token, "value %s: %s", v, e2.msg);
}

static loom_status check_space(parser *p) {
    loom_space *s = p->s;
    for (int i = 0; i < s->n_items; i++) {
        const space_item *it = &s->items[i];
        if (it->rep > 1 || is_struct_words(it->words[0]))
            continue; /* the same words as repetition 1; a block's braces */
        bool has_hp = false;
        for (int w = 0; w < it->n_words; w++)
            has_hp = has_hp || it->hp[w] >= 0;
        /* with hyperparameters, checking each of their values checks the fixed words too */
        loom_status st = has_hp ? LOOM_OK : check_item(p, it, -1, NULL);
        for (int w = 0; st == LOOM_OK && w < it->n_words; w++) {
            if (it->hp[w] < 0)
                continue;
            char vals[64][64];
            int n = check_values(&s->hps[it->hp[w]], vals, 64);
            for (int c = 0; c < n && st == LOOM_OK; c++)
                st = check_item(p, it, it->hp[w], vals[c]);
        }
        if (st)
            return st;
    }
    return LOOM_OK;
}

/* "repeat {COUNT} {": a new block; its count is a hyperparameter or a whole number. */
static loom_status open_block(parser *p, raw_item *r, int *block) {
    loom_space *s = p->s;
    if (r->n_words != 3 || strcmp(r->words[2], "{") != 0)
        return perr(p, r->words[0], "expected 'repeat {LO..HI} {' (or 'repeat N {')");
    if (!grow((void **)&s->blocks, &s->cap_blocks, s->n_blocks + 1, sizeof *s->blocks))
        return loom_error_set(p->err, LOOM_ERR_NOMEM, "%s: out of memory", p->source);
    space_block *b = &s->blocks[s->n_blocks];
    b->count_hp = -1;
    const char *w = r->words[1];
    if (w[0] != '{') {
        double v;
        if (!is_int_literal(w) || !parse_number(w, &v) || v < 0 || v > SPACE_MAX_REPEAT)
            return perr(p, w, "a repeat count is a whole number from 0 to %d", SPACE_MAX_REPEAT);
        b->count = (int)v;
    } else {
        space_hp h;
        loom_status st = parse_brace(p, w, &h);
        if (st)
            return st;
        if ((h.kind == HP_INT && (h.lo < 0 || h.hi > SPACE_MAX_REPEAT)) || (h.kind == HP_FLOAT)) {
            st = perr(p, w, "a repeat count is a whole number from 0 to %d", SPACE_MAX_REPEAT);
            hp_free(&h);
            return st;
        }
        for (int c = 0; h.kind == HP_CHOICE && c < h.n_choices; c++) {
            double v;
            if (!is_int_literal(h.choices[c]) || !parse_number(h.choices[c], &v) || v < 0 ||
                v > SPACE_MAX_REPEAT) {
                st = perr(p, w, "a repeat count is a whole number from 0 to %d", SPACE_MAX_REPEAT);
                hp_free(&h);
                return st;
            }
        }
        char auto_name[32];
        snprintf(auto_name, sizeof auto_name, "repeat_%d", s->n_blocks + 1);
        if ((st = add_hp(p, &h, auto_name, -1, 0, &b->count_hp)))
            return st;
    }
    *block = s->n_blocks++;
    return LOOM_OK;
}

/* The smallest or largest count of a block. */
static int block_count(const loom_space *s, const space_block *b, bool is_max) {
    if (b->count_hp < 0)
        return b->count;
    const space_hp *h = &s->hps[b->count_hp];
    if (h->kind != HP_CHOICE)
        return (int)(is_max ? h->hi : h->lo);
    int m = atoi(h->choices[0]);
    for (int c = 1; c < h->n_choices; c++) {
        int v = atoi(h->choices[c]);
        if (is_max ? v > m : v < m)
            m = v;
    }
    return m;
}

/* The layers item it makes with its hyperparameters at vals (NULL: their defaults), as the
 * model language counts them; -1 if the text does not parse, -2 when out of memory. */
static int item_layers(const loom_space *s, const space_item *it, char *const *vals) {
    char text[1024];
    item_text(s, it, vals, " ", text, sizeof text);
    loom_model *m = calloc(1, sizeof *m);
    if (!m)
        return -2;
    loom_error e2 = {0};
    int n = model_parse(m, text, "x", &e2) == LOOM_OK ? m->n_layers : -1;
    loom_model_destroy(m);
    return n;
}

/* Every point drawn must be a model: at least one layer with every repeat block at its
 * smallest count, and at most MODEL_MAX_LAYERS at its largest (as the model language counts
 * them: one item may hold "a + b", and a choice may be "relu|+tanh", a second layer). Each item
 * counts with the values of its hyperparameters that make the most and the fewest layers, one
 * hyperparameter at a time. Otherwise the first trial that draws such a count would stop the
 * search half-way. */
static loom_status check_size(parser *p) {
    loom_space *s = p->s;
    int n_max = 0, n_min = 0;
    char **vals = calloc((size_t)s->n_hp + 1, sizeof *vals);
    if (!vals)
        return loom_error_set(p->err, LOOM_ERR_NOMEM, "%s: out of memory", p->source);
    for (int i = 0; i < s->n_items; i++) {
        const space_item *it = &s->items[i];
        if (it->is_setting)
            continue;
        int n_def = item_layers(s, it, NULL), big = n_def, small = n_def;
        for (int w = 0; w < it->n_words && n_def >= 0; w++) {
            int k = it->hp[w];
            if (k < 0)
                continue;
            char tries[8][64];
            int nt = check_values(&s->hps[k], tries, 8);
            for (int t = 0; t < nt; t++) {
                vals[k] = tries[t];
                int n = item_layers(s, it, vals);
                if (n == -2)
                    break;
                if (n >= 0) {
                    big = n > big ? n : big;
                    small = n < small ? n : small;
                }
            }
            vals[k] = NULL;
        }
        if (n_def == -2) {
            free(vals);
            return loom_error_set(p->err, LOOM_ERR_NOMEM, "%s: out of memory", p->source);
        }
        if (n_def >= 0) {
            n_max += big;
            if (it->block < 0 || it->rep <= block_count(s, &s->blocks[it->block], false))
                n_min += small;
        }
        if (n_max > MODEL_MAX_LAYERS) {
            free(vals);
            p->line = it->line;
            return perr(p, NULL, "more than %d layers with every repeat block at its largest count",
                        MODEL_MAX_LAYERS);
        }
    }
    free(vals);
    if (n_min == 0)
        return loom_error_set(p->err, LOOM_ERR_FORMAT,
                              "%s: no layers with every repeat block at its smallest count",
                              p->source);
    return LOOM_OK;
}

/* Longer than the house's ~120 lines, on purpose: the item loop is one state machine over the
 * open blocks (a repeat body collecting its lines, the stack of residual blocks passing theirs
 * on), and its state is these locals; split into helpers they would share it all as a struct
 * and each case would read less plainly than it does here, next to the others. */
loom_status loom_space_parse(loom_space **out, const char *text, const char *source,
                             loom_error *err) {
    *out = NULL;
    parser p = {0};
    p.err = err;
    p.source = source ? source : "space";
    loom_space *s = p.s = calloc(1, sizeof *s);
    char *buf = strdup(text);
    raw_item *body = NULL; /* the open block's lines */
    int n_body = 0, cap_body = 0, block = -1, block_line = 0;
    /* the blocks open, innermost last: 'p' the repeat block, 'r' residual blocks (their lines
     * go on to the model text as they are) */
    char open[32];
    int n_open = 0, open_line[32];
    raw_item r = {0};
    loom_status st = LOOM_OK;
    if (!s || !buf || !(s->source = strdup(p.source))) {
        st = loom_error_set(err, LOOM_ERR_NOMEM, "%s: out of memory", p.source);
        goto done;
    }
    char *line = buf;
    for (int line_no = 1; line && st == LOOM_OK; line_no++) {
        char *eol = strchr(line, '\n');
        if (eol)
            *eol = '\0';
        /* '#' starts a comment; ',' separates items outside braces */
        int depth = 0;
        char *item = line;
        for (char *c = line;; c++) {
            bool is_end = *c == '\0' || *c == '#';
            if (*c == '{')
                depth++;
            else if (*c == '}' && depth > 0)
                depth--;
            if (!is_end && !(*c == ',' && depth == 0))
                continue;
            char saved = *c;
            *c = '\0';
            p.line = line_no; /* emitting a block's body moves it */
            if ((st = split_item(&p, item, &r)))
                break;
            bool is_residual_open = r.n_words > 0 && strcmp(r.words[0], "residual") == 0;
            bool is_residual_close = r.n_words > 0 && strcmp(r.words[0], "}") == 0 && n_open > 0 &&
                                     open[n_open - 1] == 'r';
            if (is_residual_open &&
                (strcmp(r.words[r.n_words - 1], "{") != 0 ||
                 (r.n_words == 3 && strcmp(r.words[1], "proj") != 0) || r.n_words > 3)) {
                st = perr(&p, r.words[0],
                          "in a space, 'residual {' or 'residual proj {' ends its line");
            } else if (is_residual_open && n_open == 32) {
                st = perr(&p, r.words[0], "blocks nested more than 32 deep");
            } else if (is_residual_open || is_residual_close) {
                if (is_residual_open) {
                    open_line[n_open] = p.line;
                    open[n_open++] = 'r';
                } else {
                    n_open--;
                }
                if (block < 0) {
                    st = emit_item(&p, &r, -1, 0);
                } else if (!grow((void **)&body, &cap_body, n_body + 1, sizeof *body)) {
                    st = loom_error_set(err, LOOM_ERR_NOMEM, "%s: out of memory", p.source);
                } else {
                    body[n_body++] = r; /* the block takes the words */
                    r.n_words = 0;
                }
            } else if (r.n_words == 0) {
                /* empty */
            } else if (strcmp(r.words[0], "}") == 0) {
                n_open -= n_open > 0;
                if (r.n_words != 1)
                    st = perr(&p, r.words[1], "expected nothing after '}'");
                else if (block < 0)
                    st = perr(&p, "}", "'}' without 'repeat'");
                else if (n_body == 0)
                    st = perr(&p, "}", "empty repeat block");
                int reps =
                    block >= 0 && st == LOOM_OK ? block_count(s, &s->blocks[block], true) : 0;
                for (int rep = 1; rep <= reps && st == LOOM_OK; rep++)
                    for (int i = 0; i < n_body && st == LOOM_OK; i++)
                        st = emit_item(&p, &body[i], block, rep);
                for (int i = 0; i < n_body; i++)
                    raw_free(&body[i]);
                n_body = 0;
                block = -1;
            } else if (strcmp(r.words[0], "repeat") == 0) {
                if (block >= 0)
                    st = perr(&p, "repeat", "repeat blocks cannot be nested");
                else if (n_open == 32)
                    st = perr(&p, "repeat", "blocks nested more than 32 deep");
                else if ((st = open_block(&p, &r, &block)) == LOOM_OK) {
                    block_line = p.line;
                    open_line[n_open] = p.line;
                    open[n_open++] = 'p';
                }
            } else if (block >= 0) {
                if (!grow((void **)&body, &cap_body, n_body + 1, sizeof *body)) {
                    st = loom_error_set(err, LOOM_ERR_NOMEM, "%s: out of memory", p.source);
                } else {
                    body[n_body++] = r; /* the block takes the words */
                    r.n_words = 0;
                }
            } else {
                st = emit_item(&p, &r, -1, 0);
            }
            raw_free(&r);
            if (st || saved != ',')
                break;
            item = c + 1;
        }
        line = eol ? eol + 1 : NULL;
    }
    if (st == LOOM_OK && block >= 0) {
        p.line = block_line;
        st = perr(&p, "repeat", "the block opened here is not closed with '}'");
    }
    if (st == LOOM_OK && n_open > 0) {
        p.line = open_line[n_open - 1];
        st = perr(&p, "residual", "the block opened here is not closed with '}'");
    }
    if (st == LOOM_OK && p.n_layers == 0)
        st = loom_error_set(err, LOOM_ERR_FORMAT, "%s: no layers", p.source);
    if (st == LOOM_OK)
        st = check_space(&p);
    if (st == LOOM_OK)
        st = check_size(&p);
done:
    raw_free(&r);
    for (int i = 0; i < n_body; i++)
        raw_free(&body[i]);
    free(body);
    free(buf);
    if (st) {
        loom_space_destroy(s);
        return st;
    }
    *out = s;
    return LOOM_OK;
}

/* ---- sampling ---- */

static double uniform01(loom_rng *rng) { return (double)(loom_rng_next(rng) >> 11) * 0x1.0p-53; }

static void hp_draw(const space_hp *h, loom_rng *rng, char *buf, size_t n) {
    if (h->kind == HP_CHOICE) {
        snprintf(buf, n, "%s", h->choices[loom_rng_below(rng, (uint32_t)h->n_choices)]);
        return;
    }
    double v;
    if (h->is_log) {
        v = exp(log(h->lo) + uniform01(rng) * (log(h->hi) - log(h->lo)));
        if (h->kind == HP_INT)
            v = fmin(fmax(round(v), h->lo), h->hi);
    } else if (h->step > 0) {
        long k = (long)floor((h->hi - h->lo) / h->step + 1e-9);
        v = h->lo + h->step * loom_rng_below(rng, (uint32_t)(k + 1));
    } else if (h->kind == HP_INT) {
        v = h->lo + loom_rng_below(rng, (uint32_t)(h->hi - h->lo + 1));
    } else {
        v = h->lo + uniform01(rng) * (h->hi - h->lo);
    }
    hp_format(h, v, buf, n);
}

void loom_space_point_reset(loom_space_point *pt) {
    for (int i = 0; pt->values && i < pt->n_values; i++)
        free(pt->values[i]);
    free(pt->values);
    free(pt->model_text);
    free(pt->train_text);
    memset(pt, 0, sizeof *pt);
}

loom_status loom_space_sample(const loom_space *s, uint64_t seed, loom_space_point *out,
                              loom_error *err) {
    memset(out, 0, sizeof *out);
    loom_rng rng;
    loom_rng_seed(&rng, seed);
    int *count = calloc((size_t)s->n_blocks + 1, sizeof *count);
    out->values = calloc((size_t)s->n_hp + 1, sizeof *out->values);
    text_out model = {0}, train = {0};
    bool ok = count && out->values && text_open(&model) && text_open(&train);
    out->n_values = out->values ? s->n_hp : 0;
    for (int i = 0; ok && i < s->n_hp; i++) {
        char v[128];
        hp_draw(&s->hps[i], &rng, v, sizeof v);
        ok = (out->values[i] = strdup(v)) != NULL;
    }
    for (int b = 0; ok && b < s->n_blocks; b++)
        count[b] = s->blocks[b].count_hp < 0 ? s->blocks[b].count
                                             : atoi(out->values[s->blocks[b].count_hp]);
    for (int i = 0; ok && i < s->n_hp; i++)
        if (s->hps[i].block >= 0 && s->hps[i].rep > count[s->hps[i].block]) {
            free(out->values[i]);
            out->values[i] = NULL; /* a repetition beyond the drawn count */
        }
    for (int i = 0; ok && i < s->n_items; i++) {
        const space_item *it = &s->items[i];
        if (it->block >= 0 && it->rep > count[it->block])
            continue;
        char line[1024];
        item_text(s, it, out->values, it->is_setting ? "=" : " ", line, sizeof line);
        fprintf(it->is_setting ? train.f : model.f, "%s\n", line);
    }
    free(count);
    if (ok) {
        ok = fclose(model.f) == 0 && fclose(train.f) == 0;
        model.f = train.f = NULL;
        out->model_text = model.buf;
        out->train_text = train.buf;
        model.buf = train.buf = NULL;
        ok = ok && out->model_text && out->train_text;
    }
    text_discard(&model);
    text_discard(&train);
    if (!ok) {
        loom_space_point_reset(out);
        return loom_error_set(err, LOOM_ERR_NOMEM, "%s: out of memory", s->source);
    }
    return LOOM_OK;
}
