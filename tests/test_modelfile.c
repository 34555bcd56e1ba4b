/* test_modelfile.c - model files: save -> load gives bitwise-identical outputs and the same
 * texts; the bytes follow docs/FORMATS.md (checked against an independent writer here); and
 * corrupt, truncated, foreign, future-version and missing files are errors naming the path.
 * The loader checks the version before the CRC, so a future version is reported as such even
 * when its checksum does not match; tests that must reach a later check fix the CRC up. */
#include "check.h"

#include "loom.h"
#include "../src/core/core.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#define SMALL_MODEL "flatten\ndense 16 relu\ndense 10 softmax"
#define CONFIG "optimizer=adam\nlr=0.001\nseed=42\n"

/* Field offsets of the fixed header (docs/FORMATS.md). */
enum { OFF_VERSION = 8, OFF_FLAGS = 12, OFF_H = 16, OFF_TEXT_LEN = 28, OFF_TEXT = 32 };

static void put32(unsigned char *p, uint32_t v) {
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static void put64(unsigned char *p, uint64_t v) {
    put32(p, (uint32_t)v);
    put32(p + 4, (uint32_t)(v >> 32));
}

/* Recomputes the trailing CRC-32 (zlib's, over everything before it). */
static void fix_crc(unsigned char *buf, size_t len) {
    put32(buf + len - 4, (uint32_t)crc32(0L, buf, (uInt)(len - 4)));
}

static bool write_bytes(const char *path, const void *data, size_t len) {
    FILE *f = fopen(path, "wb");
    if (!f)
        return false;
    bool ok = fwrite(data, 1, len, f) == len;
    return fclose(f) == 0 && ok;
}

/* An independent writer of the documented layout, with every field under the test's control:
 * version 1, or version 2 with an empty int8 byte section. */
static unsigned char *build_file(size_t *len_out, uint32_t version, uint32_t H, uint32_t W,
                                 uint32_t C, const char *text, const char *config,
                                 const float *params, size_t n_params, const float *state,
                                 size_t n_state) {
    size_t nt = strlen(text), nc = strlen(config);
    size_t len = 8 + 4 * 5 + 4 + nt + 4 + nc + 8 + 4 * n_params + 8 + 4 * n_state + 4 +
                 (version >= 2 ? 8 : 0);
    unsigned char *b = malloc(len), *p = b;
    if (!b)
        return NULL;
    memcpy(p, "LOOMMODL", 8);
    p += 8;
    uint32_t head[5] = {version, 0, H, W, C};
    for (int i = 0; i < 5; i++, p += 4)
        put32(p, head[i]);
    put32(p, (uint32_t)nt);
    memcpy(p + 4, text, nt);
    p += 4 + nt;
    put32(p, (uint32_t)nc);
    memcpy(p + 4, config, nc);
    p += 4 + nc;
    put64(p, n_params);
    if (n_params)
        memcpy(p + 8, params, 4 * n_params); /* the test host is little-endian */
    p += 8 + 4 * n_params;
    put64(p, n_state);
    if (n_state)
        memcpy(p + 8, state, 4 * n_state);
    p += 8 + 4 * n_state;
    if (version >= 2)
        put64(p, 0); /* no int8 bytes */
    fix_crc(b, len);
    *len_out = len;
    return b;
}

static loom_model *small_model(void) {
    loom_model *m = NULL;
    loom_error err = {0};
    loom_status st = loom_model_create(&m, SMALL_MODEL, "test", 4, 4, 1, &err);
    CHECK_MSG(st == LOOM_OK, "%s", err.msg);
    if (m)
        loom_model_init(m, 42);
    return m;
}

/* Saves the small model to name and returns the file's bytes (malloc'd). */
static unsigned char *saved_bytes(const char *name, size_t *len) {
    loom_error err = {0};
    loom_model *m = small_model();
    if (!m)
        return NULL;
    loom_status st = loom_model_save(m, CONFIG, tmp_path(name), &err);
    CHECK_MSG(st == LOOM_OK, "%s", err.msg);
    loom_model_destroy(m);
    char *buf = NULL;
    st = loom_file_read_all(tmp_path(name), &buf, len, &err);
    CHECK_MSG(st == LOOM_OK, "%s", err.msg);
    return (unsigned char *)buf;
}

/* Loading path must fail with status want_st and a one-line message that starts with the path
 * and holds the words want; no model and no config come back. */
static void expect_load_error(const char *path, loom_status want_st, const char *want) {
    loom_model *m = NULL;
    char *config = NULL;
    loom_error err = {0};
    loom_status st = loom_model_load(&m, &config, path, &err);
    CHECK_MSG(st == want_st, "%s: status %s, expected %s (%s)", path, loom_status_str(st),
              loom_status_str(want_st), err.msg);
    CHECK(err.status == st);
    CHECK(m == NULL);
    CHECK(config == NULL);
    CHECK_MSG(strncmp(err.msg, path, strlen(path)) == 0, "message does not name the file: %s",
              err.msg);
    CHECK_MSG(strstr(err.msg, want) != NULL, "expected \"%s\" in: %s", want, err.msg);
    CHECK(strchr(err.msg, '\n') == NULL);
    loom_model_destroy(m);
    free(config);
}

static void test_round_trip(void) {
    enum { B = 3, N_IN = 16, N_OUT = 10 };
    loom_error err = {0};
    loom_model *m = small_model(), *m2 = NULL;
    char *config = NULL;
    if (!m)
        return;
    float x[B * N_IN], y1[B * N_OUT];
    loom_rng rng;
    loom_rng_seed(&rng, 3);
    for (int i = 0; i < B * N_IN; i++)
        x[i] = loom_rng_normal(&rng);
    CHECK(loom_model_prepare(m, B, &err) == LOOM_OK);
    memcpy(y1, loom_model_forward(m, x, B, false, NULL), sizeof y1);

    const char *path = tmp_path("round.loom");
    loom_status st = loom_model_save(m, CONFIG, path, &err);
    CHECK_MSG(st == LOOM_OK, "%s", err.msg);
    st = loom_model_load(&m2, &config, path, &err);
    CHECK_MSG(st == LOOM_OK, "%s", err.msg);
    if (!m2)
        goto done;
    CHECK(config && strcmp(config, CONFIG) == 0);
    CHECK(strcmp(loom_model_text(m2), loom_model_text(m)) == 0);
    CHECK(loom_model_n_params(m2) == loom_model_n_params(m));
    CHECK(loom_model_n_outputs(m2) == N_OUT);
    CHECK(memcmp(loom_model_params(m2), loom_model_params(m),
                 sizeof(float) * loom_model_n_params(m)) == 0);
    CHECK(loom_model_prepare(m2, B, &err) == LOOM_OK);
    CHECK(memcmp(loom_model_forward(m2, x, B, false, NULL), y1, sizeof y1) == 0);

    /* saving the loaded model writes the same bytes */
    const char *path2 = tmp_path("round2.loom");
    CHECK(loom_model_save(m2, config, path2, &err) == LOOM_OK);
    char *a = NULL, *b = NULL;
    size_t na = 0, nb = 0;
    CHECK(loom_file_read_all(path, &a, &na, &err) == LOOM_OK);
    CHECK(loom_file_read_all(path2, &b, &nb, &err) == LOOM_OK);
    CHECK(a && b && na == nb && memcmp(a, b, na) == 0);
    free(a);
    free(b);
done:
    free(config);
    loom_model_destroy(m);
    loom_model_destroy(m2);
}

/* No config saves as an empty one; config_out may be NULL. */
static void test_no_config(void) {
    loom_error err = {0};
    loom_model *m = small_model(), *m2 = NULL;
    char *config = NULL;
    if (!m)
        return;
    const char *path = tmp_path("noconfig.loom");
    CHECK(loom_model_save(m, NULL, path, &err) == LOOM_OK);
    CHECK(loom_model_load(&m2, &config, path, &err) == LOOM_OK);
    CHECK(config && config[0] == '\0');
    loom_model_destroy(m2);
    m2 = NULL;
    CHECK(loom_model_load(&m2, NULL, path, &err) == LOOM_OK);
    CHECK(m2 != NULL);
    free(config);
    loom_model_destroy(m);
    loom_model_destroy(m2);
}

/* The saved bytes are exactly the documented layout. */
static void test_layout(void) {
    loom_error err = {0};
    loom_model *m = small_model();
    if (!m)
        return;
    const char *path = tmp_path("layout.loom");
    CHECK(loom_model_save(m, CONFIG, path, &err) == LOOM_OK);
    size_t n_want = 0, n_got = 0;
    unsigned char *want =
        build_file(&n_want, 2, 4, 4, 1, loom_model_text(m), CONFIG, loom_model_params(m),
                   loom_model_n_params(m), loom_model_state(m), loom_model_n_state(m));
    char *got = NULL;
    CHECK(loom_file_read_all(path, &got, &n_got, &err) == LOOM_OK);
    CHECK(want && got && n_want == n_got && memcmp(want, got, n_got) == 0);
    /* 16*16+16 + 16*10+10 parameters */
    CHECK(loom_model_n_params(m) == 442);
    CHECK(n_got == 64 + strlen(loom_model_text(m)) + strlen(CONFIG) + 4 * 442);
    free(want);
    free(got);
    loom_model_destroy(m);
}

/* Batch-norm statistics are state: saved and restored. */
static void test_state_round_trip(void) {
    loom_error err = {0};
    loom_model *m = NULL, *m2 = NULL;
    loom_status st = loom_model_create(&m, "flatten\nbatchnorm\ndense 3", "test", 2, 2, 1, &err);
    CHECK_MSG(st == LOOM_OK, "%s", err.msg);
    if (st != LOOM_OK)
        return;
    loom_model_init(m, 5);
    float *s = loom_model_state(m);
    for (size_t i = 0; i < loom_model_n_state(m); i++)
        s[i] = 0.25f * (float)i + 0.1f;
    const char *path = tmp_path("state.loom");
    CHECK(loom_model_n_state(m) > 0);
    CHECK(loom_model_save(m, NULL, path, &err) == LOOM_OK);
    CHECK(loom_model_load(&m2, NULL, path, &err) == LOOM_OK);
    CHECK(m2 && loom_model_n_state(m2) == loom_model_n_state(m));
    if (m2)
        CHECK(memcmp(loom_model_state(m2), s, sizeof(float) * loom_model_n_state(m)) == 0);
    loom_model_destroy(m);
    loom_model_destroy(m2);
}

static void test_missing_and_empty(void) {
    expect_load_error(tmp_path("does-not-exist.loom"), LOOM_ERR_IO, "cannot open");
    expect_load_error(check_tmpdir(), LOOM_ERR_IO, "directory");
    const char *empty = tmp_path("empty.loom");
    CHECK(write_bytes(empty, "", 0));
    expect_load_error(empty, LOOM_ERR_FORMAT, "too short");
    loom_error err = {0};
    loom_model *m = small_model();
    if (m) {
        CHECK(loom_model_save(m, NULL, tmp_path("no-such-dir/x.loom"), &err) == LOOM_ERR_IO);
        loom_model_destroy(m);
    }
}

static void test_corrupt_byte(void) {
    size_t len = 0;
    unsigned char *b = saved_bytes("flip.loom", &len);
    if (!b)
        return;
    size_t n_text = strlen(SMALL_MODEL) + 1; /* canonical text ends with a newline */
    size_t params_at = OFF_TEXT + n_text + 4 + strlen(CONFIG) + 8;
    CHECK(params_at + 4 * 442 + 8 + 8 + 4 == len); /* n_state 0, n_bytes 0 */
    b[params_at + 101] ^= 0x10;
    const char *path = tmp_path("flipped.loom");
    CHECK(write_bytes(path, b, len));
    expect_load_error(path, LOOM_ERR_FORMAT, "checksum mismatch");
    free(b);
}

static void test_truncated(void) {
    size_t len = 0;
    unsigned char *b = saved_bytes("trunc.loom", &len);
    if (!b)
        return;
    const char *path = tmp_path("truncated.loom");
    CHECK(write_bytes(path, b, len / 2)); /* long enough for a header: the CRC catches it */
    expect_load_error(path, LOOM_ERR_FORMAT, "checksum mismatch");
    CHECK(write_bytes(path, b, 20)); /* shorter than any model file */
    expect_load_error(path, LOOM_ERR_FORMAT, "too short");
    CHECK(write_bytes(path, b, 5)); /* not even a whole magic */
    expect_load_error(path, LOOM_ERR_FORMAT, "too short");
    free(b);
}

static void test_wrong_magic(void) {
    size_t len = 0;
    unsigned char *b = saved_bytes("magic.loom", &len);
    if (!b)
        return;
    const char *path = tmp_path("badmagic.loom");
    b[7] = 'X';
    CHECK(write_bytes(path, b, len));
    expect_load_error(path, LOOM_ERR_FORMAT, "not a loom model file (magic \"LOOMMODX\"");
    CHECK(write_bytes(path, "\x89PNG\r\n\x1a\n", 8));
    expect_load_error(path, LOOM_ERR_FORMAT, "not a loom model file");
    free(b);
}

static void test_future_version(void) {
    size_t len = 0;
    unsigned char *b = saved_bytes("version.loom", &len);
    if (!b)
        return;
    const char *path = tmp_path("v3.loom");
    put32(b + OFF_VERSION, 3);
    CHECK(write_bytes(path, b, len)); /* CRC now wrong: the version check comes first */
    expect_load_error(path, LOOM_ERR_FORMAT, "format version 3, this loom reads versions 1 to 2");
    fix_crc(b, len);
    CHECK(write_bytes(path, b, len));
    expect_load_error(path, LOOM_ERR_FORMAT, "format version 3, this loom reads versions 1 to 2");
    put32(b + OFF_VERSION, 0);
    fix_crc(b, len);
    CHECK(write_bytes(path, b, len));
    expect_load_error(path, LOOM_ERR_FORMAT, "format version 0, this loom reads versions 1 to 2");
    put32(b + OFF_VERSION, 2);
    put32(b + OFF_FLAGS, 4);
    fix_crc(b, len);
    CHECK(write_bytes(path, b, len));
    expect_load_error(path, LOOM_ERR_FORMAT, "unknown flags");
    free(b);
}

/* Length fields larger than the file: an error before any allocation of that size. */
static void test_huge_lengths(void) {
    size_t len = 0;
    unsigned char *b = saved_bytes("huge.loom", &len);
    if (!b)
        return;
    const char *path = tmp_path("hugelen.loom");
    uint32_t n_text = (uint32_t)strlen(SMALL_MODEL) + 1;
    put32(b + OFF_TEXT_LEN, 0xfffffff0u);
    fix_crc(b, len);
    CHECK(write_bytes(path, b, len));
    expect_load_error(path, LOOM_ERR_FORMAT, "model text length 4294967280 exceeds");

    put32(b + OFF_TEXT_LEN, n_text);
    size_t config_len_at = OFF_TEXT + n_text;
    put32(b + config_len_at, (uint32_t)len);
    fix_crc(b, len);
    CHECK(write_bytes(path, b, len));
    expect_load_error(path, LOOM_ERR_FORMAT, "config text length");

    put32(b + config_len_at, (uint32_t)strlen(CONFIG));
    size_t n_params_at = config_len_at + 4 + strlen(CONFIG);
    put64(b + n_params_at, UINT64_MAX / 2);
    fix_crc(b, len);
    CHECK(write_bytes(path, b, len));
    expect_load_error(path, LOOM_ERR_FORMAT, "parameter count 9223372036854775807 needs more");

    put64(b + n_params_at, 442);
    put64(b + n_params_at + 8 + 4 * 442, 1000000);
    fix_crc(b, len);
    CHECK(write_bytes(path, b, len));
    expect_load_error(path, LOOM_ERR_FORMAT, "state count 1000000 needs more");
    put64(b + n_params_at + 8 + 4 * 442, 0);

    put32(b + OFF_H, 0);
    fix_crc(b, len);
    CHECK(write_bytes(path, b, len));
    expect_load_error(path, LOOM_ERR_FORMAT, "input dimension 0");
    free(b);
}

/* Well-formed files whose contents disagree with themselves. */
static void test_inconsistent(void) {
    float p[64] = {0};
    size_t len = 0;
    const char *path = tmp_path("inconsistent.loom");
    /* "flatten, dense 3" on 2x2x1 has 4*3+3 = 15 parameters */
    unsigned char *b = build_file(&len, 1, 2, 2, 1, "flatten\ndense 3\n", "", p, 12, NULL, 0);
    CHECK(b && write_bytes(path, b, len));
    expect_load_error(path, LOOM_ERR_FORMAT,
                      "parameter count 12 does not match the model text (15)");
    free(b);

    b = build_file(&len, 1, 2, 2, 1, "flatten\ndense 3\n", "", p, 15, p, 2);
    CHECK(b && write_bytes(path, b, len));
    expect_load_error(path, LOOM_ERR_FORMAT, "state count 2 does not match the model text (0)");
    free(b);

    b = build_file(&len, 1, 2, 2, 1, "flatten\nwarp 3\n", "", p, 15, NULL, 0);
    CHECK(b && write_bytes(path, b, len));
    expect_load_error(path, LOOM_ERR_FORMAT, "warp");
    free(b);

    b = build_file(&len, 1, 2, 2, 1, "dense 3\n", "", p, 15, NULL, 0); /* shape error */
    CHECK(b && write_bytes(path, b, len));
    expect_load_error(path, LOOM_ERR_FORMAT, "flatten");
    free(b);

    /* bytes after the state */
    b = build_file(&len, 1, 2, 2, 1, "flatten\ndense 3\n", "", p, 15, NULL, 0);
    unsigned char *longer = b ? malloc(len + 4) : NULL;
    if (longer) {
        memcpy(longer, b, len - 4);
        memset(longer + len - 4, 0, 4);
        fix_crc(longer, len + 4);
        CHECK(write_bytes(path, longer, len + 4));
        expect_load_error(path, LOOM_ERR_FORMAT, "4 unexpected bytes");
    }
    free(longer);

    /* the independent writer's file itself loads */
    loom_model *m = NULL;
    loom_error err = {0};
    CHECK(b && write_bytes(path, b, len));
    CHECK_MSG(loom_model_load(&m, NULL, path, &err) == LOOM_OK, "%s", err.msg);
    loom_model_destroy(m);
    free(b);
}

/* A version-1 file (no int8 byte section) of a trained model still loads, with its values. */
static void test_version1_loads(void) {
    loom_model *m = small_model(), *m2 = NULL;
    if (!m)
        return;
    size_t len = 0;
    unsigned char *b =
        build_file(&len, 1, 4, 4, 1, loom_model_text(m), CONFIG, loom_model_params(m),
                   loom_model_n_params(m), loom_model_state(m), loom_model_n_state(m));
    const char *path = tmp_path("v1.loom");
    CHECK(b && write_bytes(path, b, len));
    loom_error err = {0};
    char *config = NULL;
    CHECK_MSG(loom_model_load(&m2, &config, path, &err) == LOOM_OK, "%s", err.msg);
    CHECK(m2 && config && strcmp(config, CONFIG) == 0);
    CHECK(m2 &&
          memcmp(loom_model_params(m), loom_model_params(m2), 4 * loom_model_n_params(m)) == 0);
    free(config);
    free(b);
    loom_model_destroy(m);
    loom_model_destroy(m2);
}

int main(void) {
    RUN(test_round_trip);
    RUN(test_version1_loads);
    RUN(test_no_config);
    RUN(test_layout);
    RUN(test_state_round_trip);
    RUN(test_missing_and_empty);
    RUN(test_corrupt_byte);
    RUN(test_truncated);
    RUN(test_wrong_magic);
    RUN(test_future_version);
    RUN(test_huge_lengths);
    RUN(test_inconsistent);
    return check_report();
}
