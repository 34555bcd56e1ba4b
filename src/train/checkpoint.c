/* checkpoint.c - training checkpoints: everything the trainer needs to continue bit-for-bit
 * (weights, state, optimizer moments, RNG states, data order and position, schedule and early-
 * stopping state, best weights, history). Little-endian binary with a CRC-32, written through
 * a temporary file and renamed; the previous checkpoint is kept as PATH.prev and used, with a
 * warning, when the newest one is corrupt or truncated. Layout: docs/FORMATS.md. */
#include "checkpoint.h"

#include <stdio.h>

#define CKPT_MAGIC "LOOMCKPT"
#define CKPT_VERSION 2u

typedef struct {
    char *p;
    size_t len, cap;
    bool is_oom;
} wbuf;

static void put(wbuf *b, const void *src, size_t n) {
    if (b->is_oom)
        return;
    if (b->len + n > b->cap) {
        size_t cap = (b->cap + n) * 2;
        char *t = realloc(b->p, cap);
        if (!t) {
            b->is_oom = true;
            return;
        }
        b->p = t;
        b->cap = cap;
    }
    memcpy(b->p + b->len, src, n);
    b->len += n;
}

typedef struct {
    const char *p;
    size_t len, pos;
    bool is_bad;
} rbuf;

static void get(rbuf *b, void *dst, size_t n) {
    if (b->is_bad || n > b->len - b->pos) {
        b->is_bad = true;
        memset(dst, 0, n);
        return;
    }
    memcpy(dst, b->p + b->pos, n);
    b->pos += n;
}

loom_status ckpt_save(const char *path, const ckpt_state *s, loom_error *err) {
    wbuf b = {0};
    uint32_t ver = CKPT_VERSION;
    put(&b, CKPT_MAGIC, 8);
    put(&b, &ver, 4);
    put(&b, &s->sizes, sizeof s->sizes);
    put(&b, &s->pos, sizeof s->pos);
    put(&b, s->order, sizeof(int) * (size_t)s->sizes.n_train);
    put(&b, s->params, sizeof(float) * s->sizes.n_params);
    put(&b, s->state, sizeof(float) * s->sizes.n_state);
    put(&b, s->opt_m, sizeof(float) * s->sizes.n_params);
    put(&b, s->opt_v, sizeof(float) * s->sizes.n_params);
    put(&b, s->best, sizeof(float) * (s->sizes.n_params + s->sizes.n_state));
    put(&b, s->good, sizeof(float) * (s->sizes.n_params + s->sizes.n_state));
    if (s->sizes.ema_bits)
        put(&b, s->ema, sizeof(float) * s->sizes.n_params);
    put(&b, s->hist, sizeof(loom_epoch) * (size_t)s->pos.n_hist);
    uint32_t crc = loom_crc32(0, b.p, b.len);
    put(&b, &crc, 4);
    if (b.is_oom) {
        free(b.p);
        return loom_error_set(err, LOOM_ERR_NOMEM, "%s: out of memory", path);
    }
    /* keep the previous good checkpoint as PATH.prev */
    char prev[4096];
    snprintf(prev, sizeof prev, "%s.prev", path);
    rename(path, prev);
    loom_status st = loom_file_write_atomic(path, b.p, b.len, err);
    free(b.p);
    return st;
}

static loom_status load_one(const char *path, ckpt_state *s, loom_error *err) {
    char *data = NULL;
    size_t len = 0;
    loom_status st = loom_file_read_all(path, &data, &len, err);
    if (st)
        return st;
    rbuf b = {data, len, 0, false};
    char magic[8];
    uint32_t ver = 0, crc = 0;
    if (len < 16) {
        st = loom_error_set(err, LOOM_ERR_FORMAT, "%s: truncated checkpoint", path);
        goto done;
    }
    get(&b, magic, 8);
    get(&b, &ver, 4);
    if (memcmp(magic, CKPT_MAGIC, 8) != 0) {
        st = loom_error_set(err, LOOM_ERR_FORMAT, "%s: not a loom checkpoint", path);
        goto done;
    }
    if (ver != CKPT_VERSION) {
        st = loom_error_set(err, LOOM_ERR_FORMAT,
                            "%s: checkpoint format %u, this loom reads %u: start a new run", path,
                            ver, CKPT_VERSION);
        goto done;
    }
    memcpy(&crc, data + len - 4, 4);
    if (loom_crc32(0, data, len - 4) != crc) {
        st = loom_error_set(err, LOOM_ERR_FORMAT, "%s: checksum mismatch: the file is corrupt",
                            path);
        goto done;
    }
    b.len = len - 4;
    ckpt_sizes sz;
    get(&b, &sz, sizeof sz);
    if (sz.n_params != s->sizes.n_params || sz.n_state != s->sizes.n_state ||
        sz.n_train != s->sizes.n_train || sz.batch != s->sizes.batch ||
        sz.max_epochs != s->sizes.max_epochs) {
        st = loom_error_set(err, LOOM_ERR_FORMAT,
                            "%s: the checkpoint belongs to another model or data set", path);
        goto done;
    }
    if (sz.ema_bits != s->sizes.ema_bits) {
        float was, now;
        memcpy(&was, &sz.ema_bits, 4);
        memcpy(&now, &s->sizes.ema_bits, 4);
        st = loom_error_set(err, LOOM_ERR_ARG,
                            "%s: the run was trained with ema %g, not %g: resume it with the "
                            "same setting",
                            path, (double)was, (double)now);
        goto done;
    }
    get(&b, &s->pos, sizeof s->pos);
    if (s->pos.n_hist < 0 || s->pos.n_hist > s->sizes.max_epochs) {
        st = loom_error_set(err, LOOM_ERR_FORMAT, "%s: bad history length", path);
        goto done;
    }
    get(&b, s->order, sizeof(int) * (size_t)sz.n_train);
    get(&b, s->params, sizeof(float) * sz.n_params);
    get(&b, s->state, sizeof(float) * sz.n_state);
    get(&b, s->opt_m, sizeof(float) * sz.n_params);
    get(&b, s->opt_v, sizeof(float) * sz.n_params);
    get(&b, s->best, sizeof(float) * (sz.n_params + sz.n_state));
    get(&b, s->good, sizeof(float) * (sz.n_params + sz.n_state));
    if (sz.ema_bits)
        get(&b, s->ema, sizeof(float) * sz.n_params);
    get(&b, s->hist, sizeof(loom_epoch) * (size_t)s->pos.n_hist);
    if (b.is_bad || b.pos != b.len)
        st = loom_error_set(err, LOOM_ERR_FORMAT, "%s: truncated checkpoint", path);
done:
    free(data);
    return st;
}

loom_status ckpt_load(const char *path, ckpt_state *s, char *warning, size_t n_warning,
                      loom_error *err) {
    warning[0] = '\0';
    loom_error e1 = {0};
    loom_status st = load_one(path, s, &e1);
    if (st == LOOM_OK)
        return LOOM_OK;
    char prev[4096];
    snprintf(prev, sizeof prev, "%s.prev", path);
    loom_error e2 = {0};
    if (load_one(prev, s, &e2) == LOOM_OK) {
        snprintf(warning, n_warning, "warning: %s; resuming from the previous checkpoint %s",
                 e1.msg, prev);
        return LOOM_OK;
    }
    *err = e1;
    return st;
}

void ckpt_bcast(ckpt_state *s, int root) {
    size_t np = s->sizes.n_params, ns = s->sizes.n_state;
    dist_bcast(&s->pos, sizeof s->pos, root);
    dist_bcast(s->order, sizeof(int) * (size_t)s->sizes.n_train, root);
    dist_bcast(s->params, sizeof(float) * np, root);
    dist_bcast(s->state, sizeof(float) * ns, root);
    dist_bcast(s->opt_m, sizeof(float) * np, root);
    dist_bcast(s->opt_v, sizeof(float) * np, root);
    dist_bcast(s->best, sizeof(float) * (np + ns), root);
    dist_bcast(s->good, sizeof(float) * (np + ns), root);
    if (s->sizes.ema_bits)
        dist_bcast(s->ema, sizeof(float) * np, root);
    dist_bcast(s->hist, sizeof(loom_epoch) * (size_t)s->pos.n_hist, root);
}
