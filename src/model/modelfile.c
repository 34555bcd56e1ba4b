/* modelfile.c - saving and loading models: one versioned little-endian binary file holding
 * the input shape, the model text, the config text, the parameters and the state (float32), the
 * int8 layers' bytes (version 2), closed by a CRC-32 of everything before it. Version 1 files
 * (no bytes section) still load. The layout is in docs/FORMATS.md.
 * Loading trusts nothing: the version is checked before the CRC (a newer file is reported as
 * newer, not corrupt), and every length is bounded by the bytes that remain before allocating. */
#include "model.h"

#include <assert.h>
#include <cjson/cJSON.h>
#include <inttypes.h>

#define MODEL_MAGIC "LOOMMODL"
#define MODEL_MAGIC_LEN 8
#define MODEL_VERSION 2u
#define MODEL_VERSION_OLDEST 1u /* the oldest version still read */
/* magic, version, flags, H, W, C, text length, config length, n_params, n_state, CRC (version 1;
 * version 2 adds the 8-byte n_bytes) */
#define MODEL_MIN_SIZE (MODEL_MAGIC_LEN + 5 * 4 + 4 + 4 + 8 + 8 + 4) /* 56 */
#define MODEL_MAX_DIM 65536u /* largest accepted H, W or C */

/* ---- little-endian encoding ---- */

static unsigned char *put_u32(unsigned char *p, uint32_t v) {
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
    return p + 4;
}

static unsigned char *put_u64(unsigned char *p, uint64_t v) {
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(v >> (8 * i));
    return p + 8;
}

static unsigned char *put_floats(unsigned char *p, const float *x, size_t n) {
    for (size_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, &x[i], 4);
        p = put_u32(p, u);
    }
    return p;
}

static uint32_t get_u32(const unsigned char *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t get_u64(const unsigned char *p) {
    return (uint64_t)get_u32(p) | (uint64_t)get_u32(p + 4) << 32;
}

static void get_floats(float *x, const unsigned char *p, size_t n) {
    for (size_t i = 0; i < n; i++) {
        uint32_t u = get_u32(p + 4 * i);
        memcpy(&x[i], &u, 4);
    }
}

/* ---- save ---- */

loom_status loom_model_save(const loom_model *m, const char *config, const char *path,
                            loom_error *err) {
    const char *text = m->text ? m->text : "";
    if (!config)
        config = "";
    size_t n_text = strlen(text), n_config = strlen(config);
    if (n_text > UINT32_MAX || n_config > UINT32_MAX)
        return loom_error_set(err, LOOM_ERR_ARG, "%s: model or config text too long", path);
    size_t size =
        MODEL_MIN_SIZE + n_text + n_config + 4 * (m->n_params + m->n_state) + 8 + m->n_bytes;
    unsigned char *buf = malloc(size);
    if (!buf)
        return loom_error_set(err, LOOM_ERR_NOMEM, "%s: cannot allocate %zu bytes", path, size);
    unsigned char *p = buf;
    memcpy(p, MODEL_MAGIC, MODEL_MAGIC_LEN);
    p += MODEL_MAGIC_LEN;
    p = put_u32(p, MODEL_VERSION);
    p = put_u32(p, 0); /* flags */
    for (int i = 0; i < 3; i++)
        p = put_u32(p, (uint32_t)m->in.d[i]); /* H, W, C */
    p = put_u32(p, (uint32_t)n_text);
    memcpy(p, text, n_text);
    p += n_text;
    p = put_u32(p, (uint32_t)n_config);
    memcpy(p, config, n_config);
    p += n_config;
    p = put_u64(p, m->n_params);
    p = put_floats(p, m->params, m->n_params);
    p = put_u64(p, m->n_state);
    p = put_floats(p, m->state, m->n_state);
    p = put_u64(p, m->n_bytes);
    if (m->n_bytes)
        memcpy(p, m->bytes, m->n_bytes);
    p += m->n_bytes;
    p = put_u32(p, loom_crc32(0, buf, (size_t)(p - buf)));
    assert((size_t)(p - buf) == size);
    loom_status st = loom_file_write_atomic(path, buf, size, err);
    free(buf);
    return st;
}

/* ---- load ---- */

/* A read position in the file's bytes, before the CRC. */
typedef struct {
    const unsigned char *p, *end;
} reader;

static size_t remaining(const reader *r) { return (size_t)(r->end - r->p); }

/* Reads a u32 length and the text after it into a new NUL-terminated string. */
static loom_status read_text(reader *r, const char *what, const char *path, char **out,
                             loom_error *err) {
    *out = NULL;
    if (remaining(r) < 4)
        return loom_error_set(err, LOOM_ERR_FORMAT, "%s: file ends inside the %s length", path,
                              what);
    uint32_t n = get_u32(r->p);
    r->p += 4;
    if (n > remaining(r))
        return loom_error_set(err, LOOM_ERR_FORMAT,
                              "%s: %s length %" PRIu32 " exceeds the %zu bytes that remain", path,
                              what, n, remaining(r));
    if (memchr(r->p, '\0', n))
        return loom_error_set(err, LOOM_ERR_FORMAT, "%s: %s contains a NUL byte", path, what);
    *out = malloc((size_t)n + 1);
    if (!*out)
        return loom_error_set(err, LOOM_ERR_NOMEM, "%s: out of memory", path);
    memcpy(*out, r->p, n);
    (*out)[n] = '\0';
    r->p += n;
    return LOOM_OK;
}

/* Reads a u64 count of float32 values, bounded by the bytes that remain; *at points at them. */
static loom_status read_count(reader *r, const char *what, const char *path, size_t *n_out,
                              const unsigned char **at, loom_error *err) {
    if (remaining(r) < 8)
        return loom_error_set(err, LOOM_ERR_FORMAT, "%s: file ends inside the %s count", path,
                              what);
    uint64_t n = get_u64(r->p);
    r->p += 8;
    if (n > remaining(r) / 4)
        return loom_error_set(err, LOOM_ERR_FORMAT,
                              "%s: %s count %" PRIu64 " needs more than the %zu bytes that remain",
                              path, what, n, remaining(r));
    *n_out = (size_t)n;
    *at = r->p;
    r->p += 4 * (size_t)n;
    return LOOM_OK;
}

/* Checks, in this order: the magic (as soon as 8 bytes exist, so that any other file is named
 * as such), the minimum size, the version, the flags, then the CRC. The version comes before
 * the CRC: a future version may place or compute its checksum differently, and the message
 * should say "newer format", not "corrupt". */
static loom_status check_header(const unsigned char *buf, size_t len, const char *path,
                                loom_error *err) {
    if (len >= MODEL_MAGIC_LEN && memcmp(buf, MODEL_MAGIC, MODEL_MAGIC_LEN) != 0) {
        char shown[MODEL_MAGIC_LEN + 1];
        for (int i = 0; i < MODEL_MAGIC_LEN; i++)
            shown[i] = buf[i] >= 0x20 && buf[i] < 0x7f ? (char)buf[i] : '.';
        shown[MODEL_MAGIC_LEN] = '\0';
        return loom_error_set(err, LOOM_ERR_FORMAT,
                              "%s: not a loom model file (magic \"%s\", expected \"%s\")", path,
                              shown, MODEL_MAGIC);
    }
    if (len < MODEL_MIN_SIZE)
        return loom_error_set(err, LOOM_ERR_FORMAT,
                              "%s: file too short (%zu bytes, a model file has at least %d)", path,
                              len, MODEL_MIN_SIZE);
    uint32_t version = get_u32(buf + MODEL_MAGIC_LEN);
    if (version < MODEL_VERSION_OLDEST || version > MODEL_VERSION)
        return loom_error_set(err, LOOM_ERR_FORMAT,
                              "%s: format version %" PRIu32 ", this loom reads versions %u to %u: "
                              "retrain or use the loom that wrote it",
                              path, version, MODEL_VERSION_OLDEST, MODEL_VERSION);
    uint32_t flags = get_u32(buf + MODEL_MAGIC_LEN + 4);
    if (flags != 0)
        return loom_error_set(err, LOOM_ERR_FORMAT,
                              "%s: unknown flags 0x%" PRIx32 " (version %" PRIu32 " defines none)",
                              path, flags, version);
    uint32_t crc = get_u32(buf + len - 4);
    if (loom_crc32(0, buf, len - 4) != crc)
        return loom_error_set(err, LOOM_ERR_FORMAT, "%s: checksum mismatch: the file is corrupt",
                              path);
    return LOOM_OK;
}

/* The config text's "classes=" line (a JSON array of one name per output; written for models
 * trained on image folders) into m->class_names. No line: none. A line that is not such an
 * array, or names a count other than the outputs: LOOM_ERR_FORMAT. */
static loom_status read_class_names(loom_model *m, const char *config, const char *path,
                                    loom_error *err) {
    const char *line = NULL;
    for (const char *p = config; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
        if (strncmp(p, "classes=", 8) == 0)
            line = p + 8;
    if (!line)
        return LOOM_OK;
    size_t len = strcspn(line, "\n");
    cJSON *a = cJSON_ParseWithLength(line, len);
    int n = cJSON_IsArray(a) ? cJSON_GetArraySize(a) : -1;
    loom_status st = LOOM_OK;
    if (n != loom_model_n_outputs(m))
        st = loom_error_set(err, LOOM_ERR_FORMAT,
                            "%s: its classes= line is not a list of %d class names", path,
                            loom_model_n_outputs(m));
    else if (!(m->class_names = calloc((size_t)n, sizeof *m->class_names)))
        st = loom_error_set(err, LOOM_ERR_NOMEM, "%s: out of memory", path);
    for (int k = 0; st == LOOM_OK && k < n; k++) {
        const char *s = cJSON_GetStringValue(cJSON_GetArrayItem(a, k));
        if (!s)
            st = loom_error_set(err, LOOM_ERR_FORMAT, "%s: class name %d is not a string", path, k);
        else if (!(m->class_names[k] = strdup(s)))
            st = loom_error_set(err, LOOM_ERR_NOMEM, "%s: out of memory", path);
        else
            m->n_class_names = k + 1;
    }
    cJSON_Delete(a);
    return st;
}

loom_status loom_model_load(loom_model **out, char **config_out, const char *path,
                            loom_error *err) {
    *out = NULL;
    if (config_out)
        *config_out = NULL;
    char *file = NULL, *text = NULL, *config = NULL;
    size_t len = 0;
    loom_model *m = NULL;
    loom_status st = loom_file_read_all(path, &file, &len, err);
    if (st)
        return st;
    const unsigned char *buf = (const unsigned char *)file;
    st = check_header(buf, len, path, err);
    if (st)
        goto done;
    reader r = {buf + MODEL_MAGIC_LEN + 8, buf + len - 4};
    uint32_t dims[3]; /* H, W, C */
    for (int i = 0; i < 3; i++) {
        dims[i] = get_u32(r.p);
        r.p += 4;
        if (dims[i] < 1 || dims[i] > MODEL_MAX_DIM) {
            st = loom_error_set(err, LOOM_ERR_FORMAT,
                                "%s: input dimension %" PRIu32 " is outside 1..%u", path, dims[i],
                                MODEL_MAX_DIM);
            goto done;
        }
    }
    st = read_text(&r, "model text", path, &text, err);
    if (st)
        goto done;
    st = read_text(&r, "config text", path, &config, err);
    if (st)
        goto done;
    size_t n_params, n_state;
    const unsigned char *params_at, *state_at;
    st = read_count(&r, "parameter", path, &n_params, &params_at, err);
    if (st)
        goto done;
    st = read_count(&r, "state", path, &n_state, &state_at, err);
    if (st)
        goto done;
    size_t n_bytes = 0;
    const unsigned char *bytes_at = NULL;
    if (get_u32(buf + MODEL_MAGIC_LEN) >= 2) { /* version 2: the int8 layers' bytes */
        if (remaining(&r) < 8) {
            st = loom_error_set(err, LOOM_ERR_FORMAT, "%s: file ends inside the byte count", path);
            goto done;
        }
        uint64_t nb = get_u64(r.p);
        r.p += 8;
        if (nb > remaining(&r)) {
            st = loom_error_set(err, LOOM_ERR_FORMAT,
                                "%s: byte count %" PRIu64 " exceeds the %zu bytes that remain",
                                path, nb, remaining(&r));
            goto done;
        }
        n_bytes = (size_t)nb;
        bytes_at = r.p;
        r.p += n_bytes;
    }
    if (remaining(&r) != 0) {
        st = loom_error_set(err, LOOM_ERR_FORMAT, "%s: %zu unexpected bytes after the %s", path,
                            remaining(&r), bytes_at ? "int8 bytes" : "state");
        goto done;
    }
    /* The counts the text implies are checked against the file's (bounded by its size) before
     * anything is allocated: a lying text cannot ask for gigabytes. Errors from the parser
     * already start with the path, which is the source name. */
    size_t n_params_text = 0, n_state_text = 0, n_bytes_text = 0;
    st = model_count(text, path, (int)dims[0], (int)dims[1], (int)dims[2], &n_params_text,
                     &n_state_text, &n_bytes_text, err);
    if (st == LOOM_OK && n_params_text != n_params)
        st = loom_error_set(err, LOOM_ERR_FORMAT,
                            "%s: parameter count %zu does not match the model text (%zu)", path,
                            n_params, n_params_text);
    if (st == LOOM_OK && n_state_text != n_state)
        st = loom_error_set(err, LOOM_ERR_FORMAT,
                            "%s: state count %zu does not match the model text (%zu)", path,
                            n_state, n_state_text);
    if (st == LOOM_OK && n_bytes_text != n_bytes)
        st = loom_error_set(err, LOOM_ERR_FORMAT,
                            "%s: int8 byte count %zu does not match the model text (%zu)", path,
                            n_bytes, n_bytes_text);
    if (st == LOOM_OK)
        st = loom_model_create(&m, text, path, (int)dims[0], (int)dims[1], (int)dims[2], err);
    if (st) {
        if (st != LOOM_ERR_NOMEM) /* a text that does not build is bad content */
            st = LOOM_ERR_FORMAT;
        if (err)
            err->status = st;
        goto done;
    }
    get_floats(loom_model_params(m), params_at, n_params);
    get_floats(loom_model_state(m), state_at, n_state);
    if (n_bytes)
        memcpy(m->bytes, bytes_at, n_bytes);
    if ((st = read_class_names(m, config, path, err)))
        goto done;
done:
    free(file);
    free(text);
    if (st == LOOM_OK) {
        *out = m;
        if (config_out)
            *config_out = config;
        else
            free(config);
    } else {
        loom_model_destroy(m);
        free(config);
    }
    return st;
}

const char *loom_model_class_name(const loom_model *m, int k, char *buf) {
    if (m && m->class_names && k >= 0 && k < m->n_class_names)
        return m->class_names[k];
    static const loom_dataset fashion = {.n_classes = 10, .is_fashion = true};
    if (m && loom_model_n_outputs(m) == 10)
        return loom_class_name(&fashion, k, buf);
    snprintf(buf, 16, "%d", k);
    return buf;
}
