/* settings.c - the one table of a run's settings: each one's name (the config.txt key), its
 * value's kind and range, where it lives, and its help line. Everything that reads or writes a
 * setting goes through it: the CLI's flags and help, config.txt (written and read back on
 * resume), cross-validation, search spaces and the study. A setting is bound to a command's
 * variables through a loom_settings (NULL pointers: the command does not take it). */
#include "../core/core.h"

#include <errno.h>
#include <stdarg.h>
#include <stddef.h>

typedef enum {
    K_INT,    /* int, lo..hi */
    K_FLOAT,  /* float, lo..hi */
    K_DOUBLE, /* double, lo..hi */
    K_SWITCH, /* bool: 0 or 1 (a flag without a value sets it) */
    K_SEED,   /* uint64_t */
    K_OPTIMIZER /* loom_opt_kind */,
    K_SCHEDULE, /* lr_schedule text, parsed into train.sched */
    K_AUGMENT,  /* augment text, parsed into the train config's augmentation fields */
    K_SPLIT,    /* loom_split_mode */
    K_PRECISION /* loom_precision */
} kind;

/* Where the value lives: a member of the bound loom_train_config (off), or one of the run-level
 * pointers of loom_settings. */
typedef enum {
    IN_TRAIN,
    IN_VAL_SPLIT,
    IN_SPLIT_MODE,
    IN_STANDARDIZE,
    IN_SUBSET,
    IN_TEST_SUBSET,
    IN_SKIP_TEST
} home;

typedef struct {
    loom_setting_info info;
    kind k;
    home at;
    size_t off; /* IN_TRAIN: offset in loom_train_config */
    double lo, hi;
    bool is_zero_off; /* K_INT: 0 is also accepted, meaning off / all / the default */
} setting;

#define TR(member) IN_TRAIN, offsetof(loom_train_config, member)

/* In config.txt order (a run's config.txt lists them so). */
static const setting table[] = {
    {{"seed", "N", "random seed: weights, shuffling, splits (default 42)", LOOM_SETTING_TRAINING},
     K_SEED,
     TR(seed),
     0,
     0,
     false},
    {{"epochs", "N", "epochs", LOOM_SETTING_TRAINING | LOOM_SETTING_SEARCHABLE},
     K_INT,
     TR(epochs),
     1,
     100000,
     false},
    {{"batch", "N", "batch size", LOOM_SETTING_TRAINING | LOOM_SETTING_SEARCHABLE},
     K_INT,
     TR(batch),
     1,
     65536,
     false},
    {{"optimizer", "NAME", "sgd | adam | adamw | rmsprop",
      LOOM_SETTING_TRAINING | LOOM_SETTING_SEARCHABLE},
     K_OPTIMIZER,
     TR(opt.kind),
     0,
     0,
     false},
    {{"lr", "X", "learning rate", LOOM_SETTING_TRAINING | LOOM_SETTING_SEARCHABLE},
     K_FLOAT,
     TR(opt.lr),
     1e-12,
     100,
     false},
    {{"momentum", "X", "sgd/rmsprop momentum (default: sgd 0.9, rmsprop 0)",
      LOOM_SETTING_TRAINING | LOOM_SETTING_SEARCHABLE},
     K_FLOAT,
     TR(opt.momentum),
     0,
     0.9999,
     false},
    {{"nesterov", NULL, "Nesterov momentum (sgd)", LOOM_SETTING_TRAINING | LOOM_SETTING_SEARCHABLE},
     K_SWITCH,
     TR(opt.is_nesterov),
     0,
     1,
     false},
    {{"l2", "X", "Keras-style L2: X*sum(w^2) added to the loss, weights only",
      LOOM_SETTING_TRAINING | LOOM_SETTING_SEARCHABLE},
     K_FLOAT,
     TR(opt.l2),
     0,
     10,
     false},
    {{"weight_decay", "X", "decoupled weight decay",
      LOOM_SETTING_TRAINING | LOOM_SETTING_SEARCHABLE},
     K_FLOAT,
     TR(opt.weight_decay),
     0,
     10,
     false},
    {{"clip_norm", "X", "clip the global gradient norm to X",
      LOOM_SETTING_TRAINING | LOOM_SETTING_SEARCHABLE},
     K_FLOAT,
     TR(opt.clip_norm),
     0,
     1e9,
     false},
    {{"lr_schedule", "S",
      "constant | step[:EVERY[:G]] | exp[:G] | cosine[:WARMUP[:MIN]] | plateau[:P[:G]]",
      LOOM_SETTING_TRAINING | LOOM_SETTING_SEARCHABLE},
     K_SCHEDULE,
     TR(lr_schedule),
     0,
     0,
     false},
    {{"early_stopping", "P", "stop after P epochs without a better val_loss; keep the best",
      LOOM_SETTING_TRAINING | LOOM_SETTING_SEARCHABLE},
     K_INT,
     TR(early_stopping),
     0,
     100000,
     false},
    {{"label_smoothing", "E", "train against (1-E) one-hot + E/classes (default 0)",
      LOOM_SETTING_TRAINING | LOOM_SETTING_SEARCHABLE},
     K_FLOAT,
     TR(label_smoothing),
     0,
     0.99,
     false},
    {{"ema", "D", "validate and keep an average of the weights (decay D per step)",
      LOOM_SETTING_TRAINING | LOOM_SETTING_SEARCHABLE},
     K_FLOAT,
     TR(ema),
     0,
     0.9999,
     false},
    {{"precision", "P",
      "fp32 (default) | bf16: 3x3 stride-1 conv products in training (AVX-512 BF16)",
      LOOM_SETTING_TRAINING},
     K_PRECISION,
     TR(precision),
     0,
     0,
     false},
    {{"shards", "S",
      "split each batch into S parts summed exactly (default 1; mpirun -np N: N divides S)",
      LOOM_SETTING_TRAINING},
     K_INT,
     TR(shards),
     1,
     4096,
     false},
    {{"val_split", "X", "validation fraction (default 0.2)", LOOM_SETTING_DATA},
     K_DOUBLE,
     IN_VAL_SPLIT,
     0,
     0,
     0.99,
     false},
    {{"split_mode", "M", "stratified (default) | keras (the file's last X, unshuffled)",
      LOOM_SETTING_DATA},
     K_SPLIT,
     IN_SPLIT_MODE,
     0,
     0,
     0,
     false},
    {{"standardize", NULL, "per-pixel standardisation (statistics saved in the model)",
      LOOM_SETTING_DATA},
     K_SWITCH,
     IN_STANDARDIZE,
     0,
     0,
     1,
     false},
    {{"subset", "N", "use a stratified subset of N training examples (0: all)", LOOM_SETTING_DATA},
     K_INT,
     IN_SUBSET,
     0,
     10,
     100000000,
     true},
    {{"test_subset", "N", "evaluate on the first N test images (0: all)", LOOM_SETTING_DATA},
     K_INT,
     IN_TEST_SUBSET,
     0,
     1,
     100000000,
     true},
    {{"no_test", NULL, "skip the test-set evaluation at the end", LOOM_SETTING_DATA},
     K_SWITCH,
     IN_SKIP_TEST,
     0,
     0,
     1,
     false},
    {{"augment", "LIST",
      "none | flip,shift:N,erase[:P[:AMIN-AMAX[:R]]],mixup[:A],cutmix[:A] (flips, shifts, "
      "random erasing, mixup, cutmix)",
      LOOM_SETTING_TRAINING | LOOM_SETTING_SEARCHABLE},
     K_AUGMENT,
     TR(is_augment_flip),
     0,
     0,
     false},
    {{"checkpoint_every", "N", "write a checkpoint every N epochs (default 1)",
      LOOM_SETTING_CHECKPOINT},
     K_INT,
     TR(checkpoint_every),
     1,
     100000,
     true},
    {{"checkpoint_steps", "N", "also every N steps inside an epoch (0: off)",
      LOOM_SETTING_CHECKPOINT},
     K_INT,
     TR(checkpoint_steps),
     1,
     100000000,
     true},
};

#define N_TABLE ((int)(sizeof table / sizeof *table))

int loom_setting_count(void) { return N_TABLE; }

const loom_setting_info *loom_setting_info_at(int i) {
    return i >= 0 && i < N_TABLE ? &table[i].info : NULL;
}

int loom_setting_find(const char *name) {
    for (int i = 0; i < N_TABLE; i++)
        if (strcmp(table[i].info.name, name) == 0)
            return i;
    return -1;
}

/* The address of setting i's value in the variables s binds; NULL when s does not take it. */
static void *where(const loom_settings *s, int i) {
    const setting *t = &table[i];
    switch (t->at) {
    case IN_TRAIN: return s->train ? (char *)s->train + t->off : NULL;
    case IN_VAL_SPLIT: return s->val_split;
    case IN_SPLIT_MODE: return s->split_mode;
    case IN_STANDARDIZE: return s->is_standardize;
    case IN_SUBSET: return s->subset;
    case IN_TEST_SUBSET: return s->test_subset;
    case IN_SKIP_TEST: return s->is_skip_test;
    }
    return NULL;
}

bool loom_setting_is_bound(const loom_settings *s, int i) {
    return i >= 0 && i < N_TABLE && where(s, i) != NULL;
}

static loom_status bad(loom_error *err, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static loom_status bad(loom_error *err, const char *name, const char *fmt, ...) {
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return loom_error_set(err, LOOM_ERR_ARG, "%s: %s", name, msg);
}

loom_status loom_setting_set(const loom_settings *s, int i, const char *value, loom_error *err) {
    if (i < 0 || i >= N_TABLE)
        return loom_error_set(err, LOOM_ERR_ARG, "no setting number %d", i);
    const setting *t = &table[i];
    const char *name = t->info.name;
    void *p = where(s, i);
    if (!p)
        return bad(err, name, "not a setting of this command");
    if (!value)
        value = t->k == K_SWITCH ? "1" : "";
    char *end = NULL;
    errno = 0;
    switch (t->k) {
    case K_INT: {
        long v = strtol(value, &end, 10);
        bool is_off = t->is_zero_off && v == 0;
        if (!*value || *end || errno || ((v < t->lo || v > t->hi) && !is_off))
            return bad(err, name, "expected %sa whole number from %.0f to %.0f, got '%s'",
                       t->is_zero_off ? "0 (off) or " : "", t->lo, t->hi, value);
        *(int *)p = (int)v;
        return LOOM_OK;
    }
    case K_FLOAT:
    case K_DOUBLE: {
        double v = strtod(value, &end);
        if (!*value || *end || errno || !(v >= t->lo && v <= t->hi))
            return bad(err, name, "expected a number from %g to %g, got '%s'", t->lo, t->hi, value);
        if (t->k == K_FLOAT)
            *(float *)p = (float)v;
        else
            *(double *)p = v;
        return LOOM_OK;
    }
    case K_SWITCH:
        if (strcmp(value, "0") != 0 && strcmp(value, "1") != 0)
            return bad(err, name, "expected 0 or 1, got '%s'", value);
        *(bool *)p = value[0] == '1';
        return LOOM_OK;
    case K_SEED: {
        unsigned long long v = strtoull(value, &end, 10);
        if (!*value || *end || errno || value[0] == '-')
            return bad(err, name, "expected a non-negative whole number, got '%s'", value);
        *(uint64_t *)p = v;
        return LOOM_OK;
    }
    case K_OPTIMIZER: return loom_opt_kind_parse(value, (loom_opt_kind *)p, err);
    case K_SCHEDULE: {
        loom_status st = loom_sched_parse(value, &s->train->sched, err);
        if (st == LOOM_OK)
            *(const char **)p = value;
        return st;
    }
    case K_AUGMENT: return loom_augment_parse(value, s->train, err);
    case K_SPLIT:
        if (strcmp(value, "keras") == 0)
            *(loom_split_mode *)p = LOOM_SPLIT_KERAS;
        else if (strcmp(value, "stratified") == 0)
            *(loom_split_mode *)p = LOOM_SPLIT_STRATIFIED;
        else
            return bad(err, name, "expected stratified or keras, got '%s'", value);
        return LOOM_OK;
    case K_PRECISION: return loom_precision_parse(value, (loom_precision *)p, err);
    }
    return bad(err, name, "cannot be set");
}

loom_status loom_settings_set(const loom_settings *s, const char *name, const char *value,
                              loom_error *err) {
    int i = loom_setting_find(name);
    if (i >= 0 && where(s, i))
        return loom_setting_set(s, i, value, err);
    char known[640] = "";
    for (int k = 0; k < N_TABLE; k++) {
        if (!where(s, k))
            continue;
        size_t used = strlen(known);
        snprintf(known + used, sizeof known - used, "%s%s", used ? ", " : "", table[k].info.name);
    }
    return loom_error_set(err, LOOM_ERR_ARG, "unknown setting '%s' (%s)", name, known);
}

/* A float as short as %g writes it when that reads back to the same value, else with all the
 * digits it needs: a resumed run must get the very same numbers. */
static void float_value(float v, char *buf, size_t n) { float_text(v, buf, n); }

static void double_value(double v, char *buf, size_t n) {
    snprintf(buf, n, "%g", v);
    if (strtod(buf, NULL) != v)
        snprintf(buf, n, "%.17g", v);
}

void loom_setting_format(const loom_settings *s, int i, char *buf, size_t n) {
    buf[0] = '\0';
    const void *p = i >= 0 && i < N_TABLE ? where(s, i) : NULL;
    if (!p)
        return;
    const setting *t = &table[i];
    switch (t->k) {
    case K_INT: snprintf(buf, n, "%d", *(const int *)p); break;
    case K_FLOAT: {
        float v = *(const float *)p;
        if (p == &s->train->opt.momentum)
            v = loom_opt_config_resolved(&s->train->opt).momentum;
        float_value(v, buf, n);
        break;
    }
    case K_DOUBLE: double_value(*(const double *)p, buf, n); break;
    case K_SWITCH: snprintf(buf, n, "%d", *(const bool *)p ? 1 : 0); break;
    case K_SEED: snprintf(buf, n, "%llu", (unsigned long long)*(const uint64_t *)p); break;
    case K_OPTIMIZER: snprintf(buf, n, "%s", loom_opt_kind_str(*(const loom_opt_kind *)p)); break;
    case K_SCHEDULE: {
        const char *v = *(const char *const *)p;
        snprintf(buf, n, "%s", v ? v : "constant");
        break;
    }
    case K_AUGMENT: loom_augment_format(s->train, buf, n); break;
    case K_SPLIT:
        snprintf(buf, n, "%s",
                 *(const loom_split_mode *)p == LOOM_SPLIT_KERAS ? "keras" : "stratified");
        break;
    case K_PRECISION: snprintf(buf, n, "%s", loom_precision_str(*(const loom_precision *)p)); break;
    }
}

char *loom_settings_text(const loom_settings *s) {
    size_t cap = 64 * (size_t)N_TABLE + 1024, len = 0;
    char *text = malloc(cap);
    if (!text)
        return NULL;
    text[0] = '\0';
    for (int i = 0; i < N_TABLE; i++) {
        if (!where(s, i))
            continue;
        char v[512];
        loom_setting_format(s, i, v, sizeof v);
        size_t need = strlen(table[i].info.name) + strlen(v) + 3;
        if (len + need > cap) {
            char *t = realloc(text, cap = 2 * (len + need));
            if (!t) {
                free(text);
                return NULL;
            }
            text = t;
        }
        len += (size_t)snprintf(text + len, cap - len, "%s=%s\n", table[i].info.name, v);
    }
    return text;
}
