/* search.c - hyperparameter search. The search-space language (docs/SEARCH-SPACE.md): the model
 * language with {ranges} and {choices} in place of words, repeat blocks whose count is itself
 * a hyperparameter, and training-setting lines. Random search and successive halving; each
 * execution trains from scratch on one validation split or K folds, and is appended and synced
 * to executions.csv as soon as it ends, so that a killed search resumes with the same result. */
#include "tune.h"
#include "../train/receipt.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#define SPACE_MAX_WORDS 16  /* words in one layer or setting line, as the model language */
#define SPACE_MAX_REPEAT 64 /* repetitions of a repeat block */
#define SPACE_MAX_NAME 48   /* characters of a hyperparameter name */
#define SPACE_CHOICE_LEN 63 /* characters of a choice: values are checked in 64 bytes */
#define SPACE_N_CHOICES 64  /* choices of one hyperparameter: each is checked */

/* ---- the space ---- */

typedef enum { HP_INT = 0, HP_FLOAT, HP_CHOICE } hp_kind;

typedef struct {
    char *name;
    hp_kind kind;
    double lo, hi, step; /* ranges; step 0 = continuous */
    bool is_log;
    char **choices; /* (n_choices) HP_CHOICE */
    int n_choices;
    int line;
    char *token;    /* as written, for messages */
    int block, rep; /* repeat block (-1: none) and repetition (1-based) it belongs to */
} space_hp;

/* One layer or setting line of the fully expanded space (every block at its largest count). */
typedef struct {
    int line;
    bool is_setting;
    int block, rep; /* -1 and 0 outside repeat blocks */
    int n_words;
    char *words[SPACE_MAX_WORDS]; /* fixed words; NULL where hp[i] >= 0 */
    int hp[SPACE_MAX_WORDS];      /* hyperparameter index or -1 */
} space_item;

typedef struct {
    int count_hp; /* hyperparameter giving the count, or -1 */
    int count;    /* the fixed count when count_hp < 0 */
} space_block;

struct loom_space {
    char *source;
    space_hp *hps;
    int n_hp, cap_hp;
    space_item *items;
    int n_items, cap_items;
    space_block *blocks;
    int n_blocks, cap_blocks;
};

static bool grow(void **p, int *cap, int need, size_t size) {
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

/* A training setting a space may fix or search: any loom_train_config_set knows but the seed,
 * which the search derives for every execution. */
static bool is_setting_key(const char *w) {
    return train_setting_index(w) >= 0 && strcmp(w, "seed") != 0;
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

static bool parse_number(const char *s, double *out) {
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (!*s || *end || errno || !isfinite(v))
        return false;
    *out = v;
    return true;
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
    char domain[512] = "", *name = NULL, *step = NULL;
    bool has_step = false;
    loom_status st = LOOM_OK;
    /* words: options (step S, log, name=N) and the domain, written with or without spaces */
    char *save = NULL;
    for (char *w = strtok_r(in, " \t", &save); w && st == LOOM_OK;
         w = strtok_r(NULL, " \t", &save)) {
        if (strcmp(w, "step") == 0) {
            step = strtok_r(NULL, " \t", &save);
            if (has_step || !step)
                st = perr(p, token, has_step ? "'step' given twice" : "'step' needs a number");
            has_step = true;
        } else if (strcmp(w, "log") == 0) {
            if (h->is_log)
                st = perr(p, token, "'log' given twice");
            h->is_log = true;
        } else if (strncmp(w, "name=", 5) == 0) {
            if (name)
                st = perr(p, token, "'name=' given twice");
            name = w + 5;
        } else if (*domain && !(strchr("|.", domain[strlen(domain) - 1]) || strchr("|.", *w))) {
            st = perr(p, token, "unknown option '%s' (step S, log, name=NAME)", w);
        } else if (strlen(domain) + strlen(w) + 1 < sizeof domain) {
            strcat(domain, w); /* "512 | 256" is "512|256" */
        } else {
            st = perr(p, token, "too long");
        }
    }
    if (st)
        goto done;
    if (name) {
        bool ok = *name && strlen(name) <= SPACE_MAX_NAME;
        for (const char *c = name; *c; c++)
            ok = ok && (isalnum((unsigned char)*c) || *c == '_');
        if (!ok) {
            st = perr(p, token, "a name is 1 to %d letters, digits or '_', got '%s'",
                      SPACE_MAX_NAME, name);
            goto done;
        }
        if (!(h->name = strdup(name))) {
            st = loom_error_set(p->err, LOOM_ERR_NOMEM, "%s: out of memory", p->source);
            goto done;
        }
    }
    if (!*domain) {
        st = perr(p, token, "empty: expected {LO..HI}, {LO..HI step S}, {LO..HI log} or {A|B|C}");
        goto done;
    }
    char *dots = strstr(domain, "..");
    if (dots && !strchr(domain, '|')) {
        *dots = '\0';
        const char *slo = domain, *shi = dots + 2;
        if (!parse_number(slo, &h->lo) || !parse_number(shi, &h->hi)) {
            st = perr(p, token, "expected numbers on both sides of '..'");
            goto done;
        }
        if (h->lo > h->hi) {
            st = perr(p, token, "empty range: %g > %g", h->lo, h->hi);
            goto done;
        }
        bool is_int = is_int_literal(slo) && is_int_literal(shi);
        if (has_step) {
            if (h->is_log) {
                st = perr(p, token, "'step' and 'log' do not go together");
                goto done;
            }
            if (!parse_number(step, &h->step) || !(h->step > 0)) {
                st = perr(p, token, "step must be a number > 0, got '%s'", step);
                goto done;
            }
            if ((h->hi - h->lo) / h->step > 1e6) {
                st = perr(p, token, "more than a million steps");
                goto done;
            }
            is_int = is_int && is_int_literal(step);
        }
        if (h->is_log && !(h->lo > 0)) {
            st = perr(p, token, "a log range needs LO > 0");
            goto done;
        }
        h->kind = is_int ? HP_INT : HP_FLOAT;
    } else {
        if (has_step || h->is_log) {
            st = perr(p, token, "'step' and 'log' apply to ranges, not to choices");
            goto done;
        }
        for (char *c = domain;;) {
            char *bar = strchr(c, '|');
            if (bar)
                *bar = '\0';
            if (!*c) {
                st = perr(p, token, "empty choice");
                goto done;
            }
            if (strpbrk(c, ",\"{}")) {
                st = perr(p, token, "a choice cannot hold ',', '\"', '{' or '}': '%s'", c);
                goto done;
            }
            if (strlen(c) > SPACE_CHOICE_LEN) {
                st = perr(p, token, "a choice is at most %d characters", SPACE_CHOICE_LEN);
                goto done;
            }
            if (h->n_choices == SPACE_N_CHOICES) {
                st = perr(p, token, "more than %d choices", SPACE_N_CHOICES);
                goto done;
            }
            char **more = realloc(h->choices, sizeof *more * (size_t)(h->n_choices + 1));
            if (more)
                h->choices = more;
            if (!more || !(h->choices[h->n_choices] = strdup(c))) {
                st = loom_error_set(p->err, LOOM_ERR_NOMEM, "%s: out of memory", p->source);
                goto done;
            }
            h->n_choices++;
            if (!bar)
                break;
            c = bar + 1;
        }
        h->kind = HP_CHOICE;
    }
    if (!(h->token = strdup(token)))
        st = loom_error_set(p->err, LOOM_ERR_NOMEM, "%s: out of memory", p->source);
done:
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

/* Adds raw item r as repetition rep of block (or at top level) to the expanded space. */
static loom_status emit_item(parser *p, const raw_item *r, int block, int rep) {
    loom_space *s = p->s;
    p->line = r->line;
    const char *w0 = r->words[0];
    bool is_setting = is_setting_key(w0);
    if (w0[0] == '{')
        return perr(p, w0, "the layer kind (first word) cannot be searched");
    char prefix[64];
    if (is_setting) {
        if (block >= 0)
            return perr(p, w0, "a training setting cannot be inside a repeat block");
        if (r->n_words != 2)
            return perr(p, w0, "expected one value after the training setting");
        int k = train_setting_index(w0);
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
        st = loom_train_config_set(&c, NULL, text, eq + 1, &e2);
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
        if (it->rep > 1)
            continue; /* the same words as repetition 1 */
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
            if (r.n_words == 0) {
                /* empty */
            } else if (strcmp(r.words[0], "}") == 0) {
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
                else if ((st = open_block(&p, &r, &block)) == LOOM_OK)
                    block_line = p.line;
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

/* ---- objectives ---- */

static const char *const objective_names[] = {"val_acc", "val_loss", "val_f1"};

loom_status loom_objective_parse(const char *s, loom_objective *out, loom_error *err) {
    for (int i = 0; i < 3; i++)
        if (strcmp(s, objective_names[i]) == 0) {
            *out = (loom_objective)i;
            return LOOM_OK;
        }
    return loom_error_set(err, LOOM_ERR_ARG,
                          "unknown objective '%s': expected val_acc, val_loss or val_f1", s);
}

const char *loom_objective_str(loom_objective o) {
    return o >= 0 && (int)o < 3 ? objective_names[o] : "?";
}

/* ---- the search ---- */

/* Streams derived from the search seed. */
enum { STREAM_POINT = 1, STREAM_EXEC = 2, STREAM_SPLIT = 3 };
#define POINT_ATTEMPTS 50 /* redraws of a point that repeats an earlier one */

#define EXEC_HEADER "trial,rung,execution,epochs,seed,val_acc,val_loss,val_f1,score,seconds"

typedef struct {
    int trial, rung, exec, epochs; /* 0-based */
    uint64_t seed;
    double val_acc, val_loss, val_f1, score, seconds;
} exec_rec;

typedef struct {
    const loom_tune_config *tc;
    const char *source;
    loom_space *space;
    const loom_dataset *ds;   /* the training data (a subset when asked) */
    const loom_dataset *test; /* may be NULL */
    loom_split split;         /* one validation split: executions without cv, the best's retrain */
    loom_split *folds;        /* (n_folds) with cv */
    int n_folds;
    loom_space_point *points; /* (n_points) the trials' points */
    int n_points;
    exec_rec *done; /* executions recorded in executions.csv */
    int n_done, cap_done;
    int n_new; /* executions trained in this session */
    int exec_fd;
    FILE *log_file;
    double t_start;
    int base_epochs;
    loom_tune_result *res;
    char dir[1024];
    char prefix[96]; /* "trial t/N exec e/E: " in front of training lines */
} search;

static void slog(search *s, loom_log_kind kind, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void slog(search *s, loom_log_kind kind, const char *fmt, ...) {
    char line[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (s->log_file && kind != LOOM_LOG_PROGRESS) {
        fprintf(s->log_file, "%s\n", line);
        fflush(s->log_file);
    }
    if (s->tc->train.log)
        s->tc->train.log(s->tc->train.log_user, kind, line);
}

/* The trainer's lines during an execution: live progress (epochs too, unless verbose). */
static void exec_line(void *user, loom_log_kind kind, const char *line) {
    search *s = user;
    if (kind == LOOM_LOG_EPOCH && !s->tc->is_verbose)
        kind = LOOM_LOG_PROGRESS;
    else if (kind == LOOM_LOG_INFO && !s->tc->is_verbose)
        return;
    slog(s, kind, "%s%s", s->prefix, line);
}

/* The trainer's progress events during an execution, with its prefix in front. */
static void exec_progress(void *user, const loom_progress *p) {
    search *s = user;
    char label[256];
    snprintf(label, sizeof label, "%s%s", s->prefix, p->label);
    loom_progress q = *p;
    q.label = label;
    s->tc->train.progress(s->tc->train.progress_user, &q);
}

static void fmt_time(double sec, char *buf, size_t n) {
    if (sec >= 3600)
        snprintf(buf, n, "%dh%02dm", (int)(sec / 3600), (int)fmod(sec / 60, 60));
    else if (sec >= 60)
        snprintf(buf, n, "%dm%02ds", (int)(sec / 60), (int)fmod(sec, 60));
    else
        snprintf(buf, n, "%.1fs", sec);
}

/* A number as executions.csv holds it, so that a resumed search computes with the same bits. */
static double as_recorded(double v) {
    char b[40];
    snprintf(b, sizeof b, "%.10g", v);
    return strtod(b, NULL);
}

static bool is_better(loom_objective o, double a, double b) {
    if (isnan(a))
        return false;
    if (isnan(b))
        return true;
    return o == LOOM_OBJECTIVE_VAL_LOSS ? a < b : a > b;
}

static bool same_point(const loom_space_point *a, const loom_space_point *b) {
    for (int i = 0; i < a->n_values; i++) {
        const char *x = a->values[i], *y = b->values[i];
        if ((x == NULL) != (y == NULL) || (x && strcmp(x, y) != 0))
            return false;
    }
    return true;
}

/* Point t: drawn from its own stream; redrawn (deterministically) when it repeats a point. */
static loom_status make_point(search *s, int t, loom_error *err) {
    uint64_t base =
        loom_seed_derive(loom_seed_derive(s->tc->train.seed, STREAM_POINT), (uint64_t)t);
    loom_space_point *pt = &s->points[t];
    for (int a = 0; a < POINT_ATTEMPTS; a++) {
        loom_space_point_reset(pt);
        loom_status st = loom_space_sample(s->space, loom_seed_derive(base, (uint64_t)a), pt, err);
        if (st)
            return st;
        bool is_new = true;
        for (int u = 0; u < t && is_new; u++)
            is_new = !same_point(pt, &s->points[u]);
        if (is_new)
            break;
    }
    s->n_points = t + 1;
    return LOOM_OK;
}

/* Applies "key=value" lines to c; the schedule's text is copied into sched (n bytes). */
static loom_status apply_lines(loom_train_config *c, const char *lines, char *sched, size_t n,
                               const char *what, loom_error *err) {
    if (!lines)
        return LOOM_OK;
    char *copy = strdup(lines);
    if (!copy)
        return loom_error_set(err, LOOM_ERR_NOMEM, "out of memory");
    loom_status st = LOOM_OK;
    char *save = NULL;
    for (char *l = strtok_r(copy, "\n", &save); l && st == LOOM_OK;
         l = strtok_r(NULL, "\n", &save)) {
        char *eq = strchr(l, '=');
        if (!eq) {
            st = loom_error_set(err, LOOM_ERR_ARG, "%s: expected key=value, got '%s'", what, l);
            break;
        }
        *eq = '\0';
        const char *sp = NULL;
        loom_error e2 = {0};
        st = loom_train_config_set(c, &sp, l, eq + 1, &e2);
        if (st)
            loom_error_set(err, st, "%s: %s", what, e2.msg);
        else if (sp)
            snprintf(sched, n, "%s", sp);
    }
    free(copy);
    return st;
}

/* The training settings of a point: the search's defaults, the space's lines, the overrides. */
static loom_status trial_config(search *s, const loom_space_point *pt, int epochs,
                                loom_train_config *c, char *sched, size_t n, loom_error *err) {
    *c = s->tc->train;
    snprintf(sched, n, "constant");
    loom_status st = apply_lines(c, pt->train_text, sched, n, s->source, err);
    if (st == LOOM_OK)
        st = apply_lines(c, s->tc->train_overrides, sched, n, "command line", err);
    if (epochs > 0)
        c->epochs = epochs;
    c->log = exec_line;
    c->log_user = s;
    if (c->progress) {
        c->progress = exec_progress;
        c->progress_user = s;
    }
    return st;
}

static uint64_t exec_seed(const search *s, int t, int e) {
    return loom_seed_derive(
        loom_seed_derive(loom_seed_derive(s->tc->train.seed, STREAM_EXEC), (uint64_t)t),
        (uint64_t)e);
}

static const exec_rec *find_exec(const search *s, int t, int rung, int e) {
    for (int i = 0; i < s->n_done; i++)
        if (s->done[i].trial == t && s->done[i].rung == rung && s->done[i].exec == e)
            return &s->done[i];
    return NULL;
}

static loom_status record_exec(search *s, const exec_rec *x, loom_error *err) {
    char line[512];
    int n = snprintf(line, sizeof line, "%d,%d,%d,%d,%llu,%.10g,%.10g,%.10g,%.10g,%.3f\n",
                     x->trial + 1, x->rung + 1, x->exec + 1, x->epochs, (unsigned long long)x->seed,
                     x->val_acc, x->val_loss, x->val_f1, x->score, x->seconds);
    if (write(s->exec_fd, line, (size_t)n) != n || fsync(s->exec_fd) != 0)
        return loom_error_set(err, LOOM_ERR_IO, "%s/executions.csv: write failed: %s", s->dir,
                              strerror(errno));
    if (!grow((void **)&s->done, &s->cap_done, s->n_done + 1, sizeof *s->done))
        return loom_error_set(err, LOOM_ERR_NOMEM, "out of memory");
    s->done[s->n_done++] = *x;
    return LOOM_OK;
}

/* One execution: trains point t from scratch (on the split, or on each fold) and scores it. */
static loom_status run_exec(search *s, int t, int rung, int e, int epochs, exec_rec *x,
                            loom_error *err) {
    const loom_tune_config *tc = s->tc;
    char sched[64];
    loom_train_config c;
    loom_status st = trial_config(s, &s->points[t], epochs, &c, sched, sizeof sched, err);
    if (st)
        return st;
    memset(x, 0, sizeof *x);
    x->trial = t;
    x->rung = rung;
    x->exec = e;
    x->epochs = c.epochs;
    x->seed = exec_seed(s, t, e);
    int n_fits = s->n_folds > 0 ? s->n_folds : 1;
    for (int k = 0; k < n_fits && st == LOOM_OK; k++) {
        c.seed = s->n_folds > 0 ? loom_seed_derive(x->seed, (uint64_t)k) : x->seed;
        loom_history h = {0};
        loom_metrics val = {0};
        st = tune_fit(s->points[t].model_text, s->source, s->ds,
                      s->n_folds > 0 ? &s->folds[k] : &s->split, tc->is_standardize, &c, &h, &val,
                      NULL, err);
        double acc = NAN, loss = NAN;
        for (int i = 0; i < h.n_epochs; i++) {
            if (isnan(acc) || h.epochs[i].val_acc > acc)
                acc = h.epochs[i].val_acc;
            if (isnan(loss) || h.epochs[i].val_loss < loss)
                loss = h.epochs[i].val_loss;
        }
        double f1 = st == LOOM_OK ? val.macro_f1 : NAN;
        x->seconds += h.seconds;
        loom_history_reset(&h);
        loom_metrics_reset(&val);
        if (st == LOOM_ERR_NUMERIC) {
            /* a diverging point scores NaN and ranks last; the search goes on */
            slog(s, LOOM_LOG_WARN, "%s%s: scored NaN", s->prefix, err->msg);
            acc = loss = f1 = NAN;
            st = LOOM_OK;
        }
        x->val_acc += acc / n_fits;
        x->val_loss += loss / n_fits;
        x->val_f1 += f1 / n_fits;
    }
    if (st)
        return st;
    x->val_acc = as_recorded(x->val_acc);
    x->val_loss = as_recorded(x->val_loss);
    x->val_f1 = as_recorded(x->val_f1);
    x->score = tc->objective == LOOM_OBJECTIVE_VAL_LOSS ? x->val_loss
               : tc->objective == LOOM_OBJECTIVE_VAL_F1 ? x->val_f1
                                                        : x->val_acc;
    x->seconds = as_recorded(round(x->seconds * 1000) / 1000);
    return record_exec(s, x, err);
}

/* A signal arrived, or (tests) the allowed number of new executions has run. */
static bool should_stop(const search *s) {
    const loom_tune_config *tc = s->tc;
    return (tc->stop_after > 0 && s->n_new >= tc->stop_after) ||
           (tc->train.stop_flag && *tc->train.stop_flag);
}

static loom_status stopped(search *s, loom_error *err) {
    return loom_error_set(err, LOOM_ERR_INTERRUPTED,
                          "search stopped: %d executions are recorded in %s/executions.csv; "
                          "continue with --resume",
                          s->n_done, s->dir);
}

/* Evaluates point t at round rung with epochs (0 = its own): every execution, recorded or run;
 * appends the trial to res. *is_replayed: all its executions were already recorded. */
static loom_status run_trial(search *s, int t, int rung, int epochs, bool *is_replayed,
                             loom_error *err) {
    const loom_tune_config *tc = s->tc;
    loom_tune_result *res = s->res;
    double sum = 0, seconds = 0;
    int ep = epochs;
    *is_replayed = true;
    for (int e = 0; e < tc->executions; e++) {
        const exec_rec *rec = find_exec(s, t, rung, e);
        exec_rec x;
        if (rec) {
            x = *rec;
        } else {
            *is_replayed = false;
            snprintf(s->prefix, sizeof s->prefix, "trial %d exec %d/%d: ", t + 1, e + 1,
                     tc->executions);
            loom_status st = run_exec(s, t, rung, e, epochs, &x, err);
            if (st == LOOM_ERR_INTERRUPTED)
                return stopped(s, err);
            if (st) {
                char msg[sizeof err->msg];
                snprintf(msg, sizeof msg, "%s", err->msg);
                return loom_error_set(err, st, "trial %d: %s", t + 1, msg);
            }
            s->n_new++;
        }
        sum += x.score;
        seconds += x.seconds;
        ep = x.epochs;
        /* after the last execution the trial is finished: the caller records it first */
        if (e < tc->executions - 1 && should_stop(s))
            return stopped(s, err);
    }
    loom_tune_trial *more = realloc(res->trials, sizeof *more * (size_t)(res->n_trials + 1));
    if (!more)
        return loom_error_set(err, LOOM_ERR_NOMEM, "out of memory");
    res->trials = more;
    loom_tune_trial *tr = &res->trials[res->n_trials];
    memset(tr, 0, sizeof *tr);
    tr->trial = t;
    tr->rung = rung;
    tr->epochs = ep;
    tr->score = sum / tc->executions;
    tr->seconds = seconds;
    tr->values = calloc((size_t)res->n_hp + 1, sizeof *tr->values);
    if (!tr->values)
        return loom_error_set(err, LOOM_ERR_NOMEM, "out of memory");
    res->n_trials++;
    for (int i = 0; i < res->n_hp; i++)
        if (s->points[t].values[i] && !(tr->values[i] = strdup(s->points[t].values[i])))
            return loom_error_set(err, LOOM_ERR_NOMEM, "out of memory");
    return LOOM_OK;
}

/* Ranking: a later round first, then the better score, then the earlier trial. */
static int rank_cmp(const void *pa, const void *pb, void *user) {
    const loom_tune_config *tc = user;
    const loom_tune_trial *a = *(const loom_tune_trial *const *)pa;
    const loom_tune_trial *b = *(const loom_tune_trial *const *)pb;
    if (a->rung != b->rung)
        return b->rung - a->rung;
    if (is_better(tc->objective, a->score, b->score))
        return -1;
    if (is_better(tc->objective, b->score, a->score))
        return 1;
    return a->trial - b->trial;
}

/* res->trials ranked (pointers, malloc'd). */
static const loom_tune_trial **ranked(const loom_tune_config *tc, const loom_tune_result *res) {
    const loom_tune_trial **r = malloc(sizeof *r * (size_t)(res->n_trials + 1));
    if (!r)
        return NULL;
    for (int i = 0; i < res->n_trials; i++)
        r[i] = &res->trials[i];
    qsort_r(r, (size_t)res->n_trials, sizeof *r, rank_cmp, (void *)tc);
    return r;
}

static void update_best(search *s) {
    loom_tune_result *res = s->res;
    res->best = -1;
    const loom_tune_trial **r = ranked(s->tc, res);
    if (r && res->n_trials > 0)
        res->best = (int)(r[0] - res->trials);
    free(r);
}

/* "trial 3/5: score 0.8712, best 0.8801 (trial 1), 34.2 s, elapsed 1m41s | name=v [best] ..." */
static void trial_line(search *s, const loom_tune_trial *tr, int n_total, bool is_replayed) {
    const loom_tune_result *res = s->res;
    const loom_tune_trial *b = &res->trials[res->best];
    char line[4096], el[32], round_s[64] = "";
    fmt_time(loom_now() - s->t_start, el, sizeof el);
    if (s->tc->algorithm == LOOM_TUNE_HYPERBAND)
        snprintf(round_s, sizeof round_s, " round %d (%d epochs)", tr->rung + 1, tr->epochs);
    size_t used = (size_t)snprintf(line, sizeof line,
                                   "trial %d/%d%s: %s %.4f, best %.4f (trial %d), %.1f s%s, "
                                   "elapsed %s |",
                                   tr->trial + 1, n_total, round_s,
                                   loom_objective_str(s->tc->objective), tr->score, b->score,
                                   b->trial + 1, tr->seconds, is_replayed ? " (recorded)" : "", el);
    for (int i = 0; i < res->n_hp && used < sizeof line; i++) {
        const char *v = tr->values[i], *bv = b->values[i];
        if (!v && !bv)
            continue;
        bool is_same = v && bv && strcmp(v, bv) == 0;
        if (is_same || b == tr)
            used += (size_t)snprintf(line + used, sizeof line - used, " %s=%s", res->hp_names[i],
                                     v ? v : "-");
        else
            used += (size_t)snprintf(line + used, sizeof line - used, " %s=%s [%s]",
                                     res->hp_names[i], v ? v : "-", bv ? bv : "-");
    }
    slog(s, LOOM_LOG_INFO, "%s", line);
}

/* ---- the files ---- */

static loom_status write_trials(search *s, loom_error *err) {
    const loom_tune_result *res = s->res;
    bool is_hb = s->tc->algorithm == LOOM_TUNE_HYPERBAND;
    char path[2048];
    text_out t;
    if (!text_open(&t))
        return loom_error_set(err, LOOM_ERR_NOMEM, "out of memory");
    fprintf(t.f, "trial,score");
    for (int i = 0; i < res->n_hp; i++)
        fprintf(t.f, ",%s", res->hp_names[i]);
    fprintf(t.f, "%s,seconds\n", is_hb ? ",epochs" : "");
    for (int r = 0; r < res->n_trials; r++) {
        const loom_tune_trial *tr = &res->trials[r];
        fprintf(t.f, "%d,%.6f", tr->trial + 1, tr->score);
        for (int i = 0; i < res->n_hp; i++)
            fprintf(t.f, ",%s", tr->values[i] ? tr->values[i] : "");
        if (is_hb)
            fprintf(t.f, ",%d", tr->epochs);
        fprintf(t.f, ",%.3f\n", tr->seconds);
    }
    loom_status st = text_save(&t, path_join(path, sizeof path, s->dir, "trials.csv"), err);
    if (st)
        return st;

    cJSON *root = cJSON_CreateArray();
    bool ok = root != NULL;
    for (int r = 0; ok && r < res->n_trials; r++) {
        const loom_tune_trial *tr = &res->trials[r];
        cJSON *o = cJSON_CreateObject(), *hp = NULL;
        ok = o && cJSON_AddItemToArray(root, o);
        if (!ok) {
            cJSON_Delete(o);
            break;
        }
        ok = cJSON_AddNumberToObject(o, "trial", tr->trial + 1) &&
             cJSON_AddNumberToObject(o, "round", tr->rung + 1) &&
             cJSON_AddNumberToObject(o, "epochs", tr->epochs) &&
             cJSON_AddNumberToObject(o, "score", tr->score) &&
             cJSON_AddNumberToObject(o, "seconds", tr->seconds) &&
             (hp = cJSON_AddObjectToObject(o, "hyperparameters")) &&
             cJSON_AddStringToObject(o, "model", s->points[tr->trial].model_text) &&
             cJSON_AddStringToObject(o, "training", s->points[tr->trial].train_text);
        for (int i = 0; ok && i < res->n_hp; i++) {
            const char *v = tr->values[i];
            double d;
            if (v)
                ok = parse_number(v, &d) ? cJSON_AddNumberToObject(hp, res->hp_names[i], d) != NULL
                                         : cJSON_AddStringToObject(hp, res->hp_names[i], v) != NULL;
        }
    }
    return json_save(root, ok, path_join(path, sizeof path, s->dir, "trials.json"), err);
}

/* The results table, best first (Markdown), into res->summary and summary.md. */
static loom_status write_summary(search *s, loom_error *err) {
    loom_tune_result *res = s->res;
    bool is_hb = s->tc->algorithm == LOOM_TUNE_HYPERBAND;
    const loom_tune_trial **r = ranked(s->tc, res);
    text_out t;
    if (!r || !text_open(&t)) {
        free(r);
        return loom_error_set(err, LOOM_ERR_NOMEM, "out of memory");
    }
    fprintf(t.f, "| rank | trial |%s %s |", is_hb ? " round | epochs |" : "",
            loom_objective_str(s->tc->objective));
    for (int i = 0; i < res->n_hp; i++)
        fprintf(t.f, " %s |", res->hp_names[i]);
    fprintf(t.f, " seconds |\n|---|---|%s---|", is_hb ? "---|---|" : "");
    for (int i = 0; i < res->n_hp; i++)
        fprintf(t.f, "---|");
    fprintf(t.f, "---|\n");
    for (int k = 0; k < res->n_trials; k++) {
        const loom_tune_trial *tr = r[k];
        fprintf(t.f, "| %d | %d |", k + 1, tr->trial + 1);
        if (is_hb)
            fprintf(t.f, " %d | %d |", tr->rung + 1, tr->epochs);
        fprintf(t.f, " %.4f |", tr->score);
        for (int i = 0; i < res->n_hp; i++)
            fprintf(t.f, " %s |", tr->values[i] ? tr->values[i] : "-");
        fprintf(t.f, " %.1f |\n", tr->seconds);
    }
    free(r);
    fflush(t.f);
    free(res->summary);
    res->summary = t.buf ? strndup(t.buf, t.len) : NULL;
    char path[2048];
    loom_status st = text_save(&t, path_join(path, sizeof path, s->dir, "summary.md"), err);
    if (st == LOOM_OK && !res->summary)
        st = loom_error_set(err, LOOM_ERR_NOMEM, "out of memory");
    return st;
}

/* Settings that must match for --resume: a search is a function of these. */
static char *settings_text(search *s, const char *text) {
    const loom_tune_config *tc = s->tc;
    const loom_train_config *b = &tc->train;
    text_out t;
    if (!text_open(&t))
        return NULL;
    fprintf(t.f, "space_crc32=%08x\nalgorithm=%s\nobjective=%s\nseed=%llu\n",
            (unsigned)loom_crc32(0, text, strlen(text)),
            tc->algorithm == LOOM_TUNE_HYPERBAND ? "hyperband" : "random",
            loom_objective_str(tc->objective), (unsigned long long)b->seed);
    fprintf(t.f, "executions=%d\ncv_folds=%d\nval_split=%g\nsubset=%d\nstandardize=%d\n",
            tc->executions, tc->cv_folds, tc->val_split, tc->subset, tc->is_standardize);
    fprintf(t.f, "defaults=epochs %d, batch %d, %s lr %g, momentum %g, l2 %g, early stopping %d\n",
            b->epochs, b->batch, loom_opt_kind_str(b->opt.kind), (double)b->opt.lr,
            (double)b->opt.momentum, (double)b->opt.l2, b->early_stopping);
    fprintf(t.f, "overrides=");
    for (const char *c = tc->train_overrides; c && *c; c++)
        fputc(*c == '\n' ? ';' : *c, t.f);
    fputc('\n', t.f);
    if (tc->algorithm == LOOM_TUNE_HYPERBAND)
        fprintf(t.f, "trials=%d\neta=%d\n", tc->trials, tc->eta);
    fflush(t.f);
    char *out = t.buf ? strndup(t.buf, t.len) : NULL;
    text_discard(&t);
    return out;
}

/* --resume: the recorded settings must match; reads executions.csv, drops a torn last line. */
static loom_status load_state(search *s, const char *settings, loom_error *err) {
    char path[2048], *old = NULL, *text = NULL;
    size_t len = 0;
    loom_status st =
        loom_file_read_all(path_join(path, sizeof path, s->dir, "tune.txt"), &old, NULL, err);
    if (st)
        return st;
    for (const char *l = settings; *l;) {
        size_t n = strcspn(l, "\n"), kl = strcspn(l, "=");
        const char *next = l + n + (l[n] == '\n');
        if (kl >= n) { /* not a key=value line */
            l = next;
            continue;
        }
        char key[64], now[1024], was[1024];
        snprintf(key, sizeof key, "%.*s", (int)kl, l);
        snprintf(now, sizeof now, "%.*s", (int)(n - kl - 1), l + kl + 1);
        l = next;
        if (!loom_config_get(old, key, was, sizeof was) || strcmp(was, now) != 0) {
            st = loom_error_set(err, LOOM_ERR_ARG,
                                "%s: cannot resume: %s was '%s', now '%s' (pass --force to "
                                "start over)",
                                s->dir, key, loom_config_get(old, key, was, sizeof was) ? was : "",
                                now);
            break;
        }
    }
    free(old);
    if (st)
        return st;
    path_join(path, sizeof path, s->dir, "executions.csv");
    if ((st = loom_file_read_all(path, &text, &len, err)))
        return st;
    size_t hl = strlen(EXEC_HEADER);
    if (strncmp(text, EXEC_HEADER "\n", hl + 1) != 0) {
        free(text);
        return loom_error_set(err, LOOM_ERR_FORMAT, "%s: expected the header '%s'", path,
                              EXEC_HEADER);
    }
    size_t good = hl + 1; /* bytes up to the last complete line */
    int line_no = 2;
    for (char *l = text + hl + 1; *l; line_no++) {
        char *eol = strchr(l, '\n');
        if (!eol)
            break; /* torn by a kill: that execution is run again */
        *eol = '\0';
        char *f[12];
        exec_rec x = {0};
        int n = csv_split(l, f, 12);
        bool ok = n == 10;
        if (ok) {
            x.trial = atoi(f[0]) - 1;
            x.rung = atoi(f[1]) - 1;
            x.exec = atoi(f[2]) - 1;
            x.epochs = atoi(f[3]);
            x.seed = strtoull(f[4], NULL, 10);
            x.val_acc = strtod(f[5], NULL);
            x.val_loss = strtod(f[6], NULL);
            x.val_f1 = strtod(f[7], NULL);
            x.score = strtod(f[8], NULL);
            x.seconds = strtod(f[9], NULL);
            ok = x.trial >= 0 && x.rung >= 0 && x.exec >= 0 && x.epochs > 0;
        }
        if (!ok) {
            free(text);
            return loom_error_set(err, LOOM_ERR_FORMAT, "%s:%d: malformed execution line", path,
                                  line_no);
        }
        if (!grow((void **)&s->done, &s->cap_done, s->n_done + 1, sizeof *s->done)) {
            free(text);
            return loom_error_set(err, LOOM_ERR_NOMEM, "out of memory");
        }
        s->done[s->n_done++] = x;
        l = eol + 1;
        good = (size_t)(l - text);
    }
    free(text);
    if (good < len && truncate(path, (off_t)good) != 0)
        return loom_error_set(err, LOOM_ERR_IO, "%s: cannot drop the torn last line: %s", path,
                              strerror(errno));
    return LOOM_OK;
}

/* Creates or reopens the search directory: tune.txt, executions.csv, tune.log. */
static loom_status open_state(search *s, const char *settings, loom_error *err) {
    const loom_tune_config *tc = s->tc;
    char path[2048];
    struct stat sb;
    bool has_search = stat(path_join(path, sizeof path, s->dir, "tune.txt"), &sb) == 0;
    bool is_resume = tc->is_resume && has_search;
    if (has_search && !tc->is_resume && !tc->is_force)
        return loom_error_set(err, LOOM_ERR_ARG,
                              "%s: a search is already there: pass --resume to continue it or "
                              "--force to start over",
                              s->dir);
    loom_status st = loom_run_create_dir(s->dir, true, err);
    if (st)
        return st;
    if (is_resume) {
        st = load_state(s, settings, err);
    } else {
        const char *stale[] = {"trials.csv", "trials.json", "summary.md"};
        for (int i = 0; i < 3; i++) {
            char sp[2048];
            unlink(path_join(sp, sizeof sp, s->dir, stale[i]));
        }
        text_out t;
        if (!text_open(&t))
            return loom_error_set(err, LOOM_ERR_NOMEM, "out of memory");
        fprintf(t.f, "%sspace_file=%s\nloom_version=%s\ncommand=%s\n", settings, s->source,
                LOOM_VERSION, tc->command_line ? tc->command_line : "");
        st = text_save(&t, path, err);
        if (st == LOOM_OK)
            st = loom_file_write_atomic(path_join(path, sizeof path, s->dir, "executions.csv"),
                                        EXEC_HEADER "\n", strlen(EXEC_HEADER) + 1, err);
    }
    if (st)
        return st;
    path_join(path, sizeof path, s->dir, "executions.csv");
    s->exec_fd = open(path, O_WRONLY | O_APPEND);
    if (s->exec_fd < 0)
        return loom_error_set(err, LOOM_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    s->log_file = fopen(path_join(path, sizeof path, s->dir, "tune.log"), is_resume ? "a" : "w");
    if (!s->log_file)
        return loom_error_set(err, LOOM_ERR_IO, "%s: cannot create: %s", path, strerror(errno));
    if (tc->is_resume && !has_search)
        slog(s, LOOM_LOG_INFO, "%s: no search to resume; starting one", s->dir);
    else if (is_resume)
        slog(s, LOOM_LOG_INFO, "resuming the search in %s: %d executions recorded", s->dir,
             s->n_done);
    return LOOM_OK;
}

/* ---- the algorithms ---- */

static bool budget_spent(search *s) {
    if (s->tc->budget_minutes <= 0 || loom_now() - s->t_start < 60 * s->tc->budget_minutes)
        return false;
    if (!s->res->is_budget_reached)
        slog(s, LOOM_LOG_INFO, "the budget of %g minutes is spent: no new trials",
             s->tc->budget_minutes);
    s->res->is_budget_reached = true;
    return true;
}

static loom_status after_trial(search *s, int n_total, bool is_replayed, loom_error *err) {
    update_best(s);
    trial_line(s, &s->res->trials[s->res->n_trials - 1], n_total, is_replayed);
    loom_status st = write_trials(s, err);
    if (st == LOOM_OK && should_stop(s))
        st = stopped(s, err); /* the finished trial is in trials.csv */
    return st;
}

static loom_status random_search(search *s, loom_error *err) {
    int N = s->tc->trials;
    for (int t = 0; t < N; t++) {
        loom_status st = make_point(s, t, err);
        if (st)
            return st;
        if (budget_spent(s))
            break;
        bool is_replayed;
        if ((st = run_trial(s, t, 0, 0, &is_replayed, err)) ||
            (st = after_trial(s, N, is_replayed, err)))
            return st;
    }
    return LOOM_OK;
}

/* Successive halving: every point gets few epochs; the best 1/eta go on with eta x the epochs,
 * retrained from scratch, until the last round trains for the full epochs. */
static loom_status hyperband(search *s, loom_error *err) {
    int N = s->tc->trials, eta = s->tc->eta, E = s->base_epochs;
    int R = 1; /* rounds: while both the points and the epochs can shrink by eta */
    for (long p = eta; N / p >= 1 && E / p >= 1; p *= eta)
        R++;
    int *alive = malloc(sizeof(int) * (size_t)N);
    if (!alive)
        return loom_error_set(err, LOOM_ERR_NOMEM, "out of memory");
    loom_status st = LOOM_OK;
    for (int t = 0; t < N && st == LOOM_OK; t++) {
        alive[t] = t;
        st = make_point(s, t, err);
    }
    slog(s, LOOM_LOG_INFO, "successive halving: %d rounds, eta %d, up to %d epochs", R, eta, E);
    int n_alive = N;
    for (int r = 0; r < R && st == LOOM_OK; r++) {
        double div = pow(eta, R - 1 - r);
        int epochs = (int)lround(E / div);
        if (epochs < 1)
            epochs = 1;
        int first = s->res->n_trials;
        for (int i = 0; i < n_alive && st == LOOM_OK; i++) {
            bool is_replayed;
            if (budget_spent(s))
                goto done;
            if ((st = run_trial(s, alive[i], r, epochs, &is_replayed, err)) == LOOM_OK)
                st = after_trial(s, N, is_replayed, err);
        }
        if (st || r == R - 1)
            break;
        /* keep the best n / eta of this round */
        int n_keep = (int)(N / pow(eta, r + 1));
        if (n_keep < 1)
            n_keep = 1;
        loom_tune_result this_round = *s->res;
        this_round.trials = s->res->trials + first;
        this_round.n_trials = s->res->n_trials - first;
        const loom_tune_trial **rk = ranked(s->tc, &this_round);
        if (!rk) {
            st = loom_error_set(err, LOOM_ERR_NOMEM, "out of memory");
            break;
        }
        for (int i = 0; i < n_keep; i++)
            alive[i] = rk[i]->trial;
        free(rk);
        n_alive = n_keep;
        slog(s, LOOM_LOG_INFO, "round %d done: %d points go on to %d epochs", r + 1, n_keep,
             (int)lround(E / pow(eta, R - 2 - r)));
    }
done:
    free(alive);
    return st;
}

/* ---- the best trial, retrained and tested ---- */

static loom_status retrain_best(search *s, loom_error *err) {
    const loom_tune_config *tc = s->tc;
    loom_tune_result *res = s->res;
    const loom_tune_trial *b = &res->trials[res->best];
    const loom_space_point *pt = &s->points[b->trial];
    char dir[1200], path[2048], model_txt[2048], sched[64];
    loom_train_config c;
    loom_model *m = NULL;
    loom_history h = {0};
    loom_metrics val = {0};
    char *base = NULL;
    text_out cfg = {0}, mt = {0};
    snprintf(dir, sizeof dir, "%s/best", s->dir);
    loom_status st = loom_run_create_dir(dir, true, err);
    if (st || (st = trial_config(s, pt, b->epochs, &c, sched, sizeof sched, err)))
        return st;
    c.seed = exec_seed(s, b->trial, 0); /* without cv: execution 1 of the trial, bit for bit */
    loom_split all = {0};               /* --refit all: every training example, none held out */
    const loom_split *fit_split = &s->split;
    if (tc->is_refit_all) {
        if ((st = loom_split_create(&all, s->ds, 0.0, LOOM_SPLIT_KERAS, 0, err)))
            goto done;
        fit_split = &all;
        if (c.early_stopping > 0) /* nothing to stop on: the full epochs */
            slog(s, LOOM_LOG_WARN,
                 "--refit all: early stopping needs validation data; training %d epochs", c.epochs);
        c.early_stopping = 0;
    }
    snprintf(s->prefix, sizeof s->prefix, "best (trial %d): ", b->trial + 1);
    if (!text_open(&mt)) {
        st = loom_error_set(err, LOOM_ERR_NOMEM, "out of memory");
        goto done;
    }
    fprintf(mt.f, "# trial %d of %s: %s %.4f\n", b->trial + 1, s->source,
            loom_objective_str(tc->objective), b->score);
    fprintf(mt.f, "# trained with: --epochs %d --batch %d --optimizer %s --lr %g --lr-schedule %s",
            c.epochs, c.batch, loom_opt_kind_str(c.opt.kind), (double)c.opt.lr, sched);
    if (c.opt.momentum > 0)
        fprintf(mt.f, " --momentum %g", (double)c.opt.momentum);
    if (c.opt.l2 > 0)
        fprintf(mt.f, " --l2 %g", (double)c.opt.l2);
    if (c.early_stopping > 0)
        fprintf(mt.f, " --early-stopping %d", c.early_stopping);
    fprintf(mt.f, "%s%s\n%s", tc->is_standardize ? " --standardize" : "",
            tc->is_refit_all ? " --val-split 0" : "", pt->model_text);
    if ((st = text_save(&mt, path_join(model_txt, sizeof model_txt, dir, "model.txt"), err)))
        goto done;
    slog(s, LOOM_LOG_INFO, "retraining the best, trial %d (%s %.4f), for %d epochs on %d examples",
         b->trial + 1, loom_objective_str(tc->objective), b->score, c.epochs, fit_split->n_train);
    if ((st = tune_fit(pt->model_text, s->source, s->ds, fit_split, tc->is_standardize, &c, &h,
                       &val, &m, err)))
        goto done;
    if ((st = loom_history_write_csv(&h, path_join(path, sizeof path, dir, "history.csv"), err)))
        goto done;
    loom_run_config rc;
    loom_run_config_init(&rc);
    rc.model = model_txt;
    rc.data_dir = tc->data_dir;
    rc.val_split = tc->is_refit_all ? 0.0 : tc->val_split;
    rc.is_standardize = tc->is_standardize;
    rc.subset = tc->subset;
    rc.test_subset = tc->test_subset;
    rc.is_skip_test = s->test == NULL;
    rc.lr_schedule = sched;
    rc.train = c;
    rc.command_line = tc->command_line;
    if (!(base = loom_run_config_text(&rc)) || !text_open(&cfg)) {
        st = loom_error_set(err, LOOM_ERR_NOMEM, "out of memory");
        goto done;
    }
    fprintf(cfg.f,
            "%stune_dir=%s\ntune_trial=%d\ntune_objective=%s\ntune_score=%.6f\ntune_refit=%s\n",
            base, s->dir, b->trial + 1, loom_objective_str(tc->objective), b->score,
            tc->is_refit_all ? "all" : "split");
    for (int i = 0; i < res->n_hp; i++)
        if (b->values[i])
            fprintf(cfg.f, "hp.%s=%s\n", res->hp_names[i], b->values[i]);
    fflush(cfg.f);
    if (!cfg.buf) {
        st = loom_error_set(err, LOOM_ERR_NOMEM, "out of memory");
        goto done;
    }
    if ((st = loom_model_save(m, cfg.buf, path_join(path, sizeof path, dir, "model.loom"), err)))
        goto done;
    res->weights_hash = receipt_weights(m);
    if ((st = receipt_write(dir, receipt_inputs(pt->model_text, cfg.buf, s->ds, s->test), NULL,
                            res->weights_hash, err)))
        goto done;
    if ((st = text_save(&cfg, path_join(path, sizeof path, dir, "config.txt"), err)))
        goto done;
    if (s->test) {
        if ((st = loom_run_write_test(m, s->test, tc->test_subset, c.batch, dir, &res->test, err)))
            goto done;
        res->has_test = true;
    }
    char fit[64]; /* what the best was fitted and judged on, for the log */
    if (tc->is_refit_all)
        snprintf(fit, sizeof fit, "trained on all %d examples", fit_split->n_train);
    else
        snprintf(fit, sizeof fit, "validation accuracy %.4f", val.accuracy);
    if (s->test)
        slog(s, LOOM_LOG_INFO, "best: trial %d, %s; test accuracy %.4f, macro F1 %.4f -> %s",
             b->trial + 1, fit, res->test.accuracy, res->test.macro_f1, dir);
    else
        slog(s, LOOM_LOG_INFO, "best: trial %d, %s -> %s", b->trial + 1, fit, dir);
done:
    loom_split_reset(&all);
    text_discard(&cfg);
    text_discard(&mt);
    free(base);
    loom_history_reset(&h);
    loom_metrics_reset(&val);
    loom_model_destroy(m);
    return st;
}

/* ---- entry points ---- */

void loom_tune_config_init(loom_tune_config *tc) {
    memset(tc, 0, sizeof *tc);
    tc->trials = 10;
    tc->executions = 1;
    tc->eta = 3;
    tc->val_split = 0.2;
    loom_train_config_init(&tc->train);
}

void loom_tune_result_reset(loom_tune_result *r) {
    for (int t = 0; r->trials && t < r->n_trials; t++) {
        for (int i = 0; r->trials[t].values && i < r->n_hp; i++)
            free(r->trials[t].values[i]);
        free(r->trials[t].values);
    }
    for (int i = 0; r->hp_names && i < r->n_hp; i++)
        free(r->hp_names[i]);
    free(r->hp_names);
    free(r->trials);
    free(r->summary);
    loom_metrics_reset(&r->test);
    memset(r, 0, sizeof *r);
}

static loom_status check_config(const loom_tune_config *tc, loom_error *err) {
    if (tc->trials < 1 || tc->trials > 100000)
        return loom_error_set(err, LOOM_ERR_ARG, "--trials must be from 1 to 100000, got %d",
                              tc->trials);
    if (tc->executions < 1 || tc->executions > 1000)
        return loom_error_set(err, LOOM_ERR_ARG,
                              "--executions-per-trial must be from 1 to 1000, got %d",
                              tc->executions);
    if (tc->algorithm == LOOM_TUNE_HYPERBAND && (tc->eta < 2 || tc->eta > 100))
        return loom_error_set(err, LOOM_ERR_ARG, "--eta must be from 2 to 100, got %d", tc->eta);
    if (tc->cv_folds == 1 || tc->cv_folds < 0 || tc->cv_folds > 100)
        return loom_error_set(err, LOOM_ERR_ARG, "--cv must be 0 (off) or from 2 to 100, got %d",
                              tc->cv_folds);
    if (!(tc->val_split > 0 && tc->val_split < 1))
        return loom_error_set(err, LOOM_ERR_ARG, "--val-split must be in (0, 1), got %g",
                              tc->val_split);
    if (!(tc->budget_minutes >= 0))
        return loom_error_set(err, LOOM_ERR_ARG, "--budget-minutes must be >= 0");
    return LOOM_OK;
}

/* A searched setting cannot also be fixed on the command line; hyperband owns the epochs. */
static loom_status check_overrides(search *s, loom_error *err) {
    const loom_space *sp = s->space;
    for (int i = 0; i < sp->n_items; i++) {
        const space_item *it = &sp->items[i];
        if (!it->is_setting || it->hp[1] < 0)
            continue;
        const char *key = it->words[0];
        if (s->tc->algorithm == LOOM_TUNE_HYPERBAND && strcmp(key, "epochs") == 0)
            return loom_error_set(err, LOOM_ERR_ARG,
                                  "%s:%d: successive halving sets the epochs: they cannot be "
                                  "searched",
                                  s->source, it->line);
        for (const char *l = s->tc->train_overrides; l && *l;) {
            size_t n = strcspn(l, "=\n");
            if (n == strlen(key) && strncmp(l, key, n) == 0)
                return loom_error_set(err, LOOM_ERR_ARG,
                                      "the command line sets %s, which %s:%d searches", key,
                                      s->source, it->line);
            l += strcspn(l, "\n");
            l += *l == '\n';
        }
    }
    return LOOM_OK;
}

static loom_status prepare_data(search *s, const loom_dataset *train, loom_dataset **sub,
                                loom_error *err) {
    const loom_tune_config *tc = s->tc;
    loom_status st;
    s->ds = train;
    if (tc->subset > 0 && tc->subset < train->n) {
        if ((st = loom_dataset_subset(sub, train, tc->subset, tc->train.seed, err)))
            return st;
        s->ds = *sub;
    }
    uint64_t split_seed = loom_seed_derive(tc->train.seed, STREAM_SPLIT);
    if ((st = loom_split_create(&s->split, s->ds, tc->val_split, LOOM_SPLIT_STRATIFIED, split_seed,
                                err)))
        return st;
    if (tc->cv_folds > 0) {
        if (!(s->folds = calloc((size_t)tc->cv_folds, sizeof *s->folds)))
            return loom_error_set(err, LOOM_ERR_NOMEM, "out of memory");
        for (int k = 0; k < tc->cv_folds; k++, s->n_folds++)
            if ((st = loom_split_kfold(&s->folds[k], s->ds, tc->cv_folds, k, split_seed, err)))
                return st;
    }
    return LOOM_OK;
}

loom_status loom_tune_run(const loom_tune_config *tc, const loom_dataset *train,
                          const loom_dataset *test, loom_tune_result *res, loom_error *err) {
    loom_error own; /* err may be NULL; the search reads the messages it gets back */
    if (!err)
        err = &own;
    memset(res, 0, sizeof *res);
    res->best = -1;
    search s = {0};
    s.tc = tc;
    s.res = res;
    s.test = tc->is_skip_best ? NULL : test;
    s.exec_fd = -1;
    s.t_start = loom_now();
    s.source = tc->space_file ? tc->space_file : "space";
    char *file_text = NULL, *settings = NULL;
    loom_dataset *sub = NULL;
    const char *text = tc->space_text;
    loom_status st = check_config(tc, err);
    if (st)
        return st;
    if (!text) {
        if (!tc->space_file)
            return loom_error_set(err, LOOM_ERR_ARG, "no search space given");
        if ((st = loom_file_read_all(tc->space_file, &file_text, NULL, err)))
            return st;
        text = file_text;
    }
    if ((st = loom_space_parse(&s.space, text, s.source, err)))
        goto done;
    if ((st = check_overrides(&s, err)))
        goto done;
    res->n_hp = s.space->n_hp;
    res->hp_names = calloc((size_t)res->n_hp + 1, sizeof *res->hp_names);
    s.points = calloc((size_t)tc->trials, sizeof *s.points);
    if (!res->hp_names || !s.points) {
        st = loom_error_set(err, LOOM_ERR_NOMEM, "out of memory");
        goto done;
    }
    for (int i = 0; i < res->n_hp; i++)
        if (!(res->hp_names[i] = strdup(s.space->hps[i].name))) {
            st = loom_error_set(err, LOOM_ERR_NOMEM, "out of memory");
            goto done;
        }
    /* the epochs every point trains for (successive halving's last round) */
    if ((st = make_point(&s, 0, err)))
        goto done;
    {
        char sched[64];
        loom_train_config c;
        if ((st = trial_config(&s, &s.points[0], 0, &c, sched, sizeof sched, err)))
            goto done;
        s.base_epochs = c.epochs;
    }
    if ((st = prepare_data(&s, train, &sub, err)))
        goto done;
    if (tc->out_dir) {
        snprintf(s.dir, sizeof s.dir, "%s", tc->out_dir);
    } else {
        char stem[256];
        const char *slash = strrchr(s.source, '/');
        snprintf(stem, sizeof stem, "%s", slash ? slash + 1 : s.source);
        stem[strcspn(stem, ".")] = '\0';
        default_run_dir(s.dir, sizeof s.dir, "tune-", stem);
    }
    snprintf(res->out_dir, sizeof res->out_dir, "%s", s.dir);
    if (!(settings = settings_text(&s, text))) {
        st = loom_error_set(err, LOOM_ERR_NOMEM, "out of memory");
        goto done;
    }
    if ((st = open_state(&s, settings, err)))
        goto done;
    if (s.n_folds > 0)
        slog(&s, LOOM_LOG_INFO,
             "loom %s: %s search over %d hyperparameters of %s on %d examples, %d-fold CV; "
             "objective %s, %d trials x %d executions, seed %llu",
             LOOM_VERSION, tc->algorithm == LOOM_TUNE_HYPERBAND ? "hyperband" : "random", res->n_hp,
             s.source, s.ds->n, s.n_folds, loom_objective_str(tc->objective), tc->trials,
             tc->executions, (unsigned long long)tc->train.seed);
    else
        slog(&s, LOOM_LOG_INFO,
             "loom %s: %s search over %d hyperparameters of %s on %d examples (%d validation); "
             "objective %s, %d trials x %d executions, seed %llu",
             LOOM_VERSION, tc->algorithm == LOOM_TUNE_HYPERBAND ? "hyperband" : "random", res->n_hp,
             s.source, s.split.n_train, s.split.n_val, loom_objective_str(tc->objective),
             tc->trials, tc->executions, (unsigned long long)tc->train.seed);
    slog(&s, LOOM_LOG_INFO, "each trial: its values, and [the best trial's] where they differ");
    st = tc->algorithm == LOOM_TUNE_HYPERBAND ? hyperband(&s, err) : random_search(&s, err);
    if (st)
        goto done;
    if (res->n_trials == 0) {
        st = loom_error_set(err, LOOM_ERR_ARG, "no trial finished within the budget");
        goto done;
    }
    if ((st = write_summary(&s, err)))
        goto done;
    if (!tc->is_skip_best)
        st = retrain_best(&s, err);
done:
    if (st == LOOM_ERR_INTERRUPTED && s.log_file)
        fprintf(s.log_file, "%s\n", err->msg);
    if (s.exec_fd >= 0)
        close(s.exec_fd);
    if (s.log_file)
        fclose(s.log_file);
    for (int t = 0; s.points && t < s.n_points; t++)
        loom_space_point_reset(&s.points[t]);
    free(s.points);
    for (int k = 0; k < s.n_folds; k++)
        loom_split_reset(&s.folds[k]);
    free(s.folds);
    loom_split_reset(&s.split);
    free(s.done);
    loom_space_destroy(s.space);
    loom_dataset_destroy(sub);
    free(file_text);
    free(settings);
    return st;
}

loom_status loom_tune(const loom_tune_config *tc, loom_tune_result *res, loom_error *err) {
    memset(res, 0, sizeof *res);
    loom_dataset *train = NULL, *test = NULL;
    loom_status st = load_data(tc->data_dir, !tc->is_skip_best, &train, &test, err);
    if (st == LOOM_OK)
        st = loom_tune_run(tc, train, test, res, err);
    loom_dataset_destroy(train);
    loom_dataset_destroy(test);
    return st;
}
