/* test_data.c - the IDX reader on synthetic plain and gzip files (valid and each kind of
 * malformed), load_dir, class names and counts, stratified and Keras splits, stratified
 * k-fold, standardisation and batch filling; then the real Fashion-MNIST files if present. */
#include "loom.h"
#include "check.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <zlib.h>

#define REAL_DIR "/usr/share/datasets/fashion-mnist"

/* ---- writing synthetic files ---- */

static void put_be32(unsigned char *p, uint32_t v) {
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

/* Writes bytes to path, gzip-compressed when is_gz. */
static void write_file(const char *path, const void *data, size_t len, bool is_gz) {
    if (is_gz) {
        gzFile gz = gzopen(path, "wb");
        CHECK(gz != NULL);
        if (!gz)
            return;
        if (len > 0)
            CHECK(gzwrite(gz, data, (unsigned)len) == (int)len);
        CHECK(gzclose(gz) == Z_OK);
    } else {
        FILE *f = fopen(path, "wb");
        CHECK(f != NULL);
        if (!f)
            return;
        if (len > 0)
            CHECK(fwrite(data, 1, len, f) == len);
        CHECK(fclose(f) == 0);
    }
}

/* Pixel of image i at (r, c); every value 0..255 appears for enough images. */
static uint8_t pixel_of(int i, int r, int c) { return (uint8_t)(i * 37 + r * 11 + c * 3); }

/* An IDX image file in memory: header (magic, n, H, W) then n*H*W pixels, of which only
 * n_present images are actually written (to make truncated and lying files). */
static unsigned char *make_images(uint32_t magic, uint32_t n, int H, int W, int n_present,
                                  size_t *len) {
    size_t body = (size_t)n_present * (size_t)H * (size_t)W;
    unsigned char *b = malloc(16 + body);
    put_be32(b, magic);
    put_be32(b + 4, n);
    put_be32(b + 8, (uint32_t)H);
    put_be32(b + 12, (uint32_t)W);
    for (int i = 0; i < n_present; i++)
        for (int r = 0; r < H; r++)
            for (int c = 0; c < W; c++)
                b[16 + ((size_t)i * H + r) * W + c] = pixel_of(i, r, c);
    *len = 16 + body;
    return b;
}

static unsigned char *make_labels(uint32_t magic, uint32_t n, const uint8_t *y, int n_present,
                                  size_t *len) {
    unsigned char *b = malloc(8 + (size_t)n_present);
    put_be32(b, magic);
    put_be32(b + 4, n);
    memcpy(b + 8, y, (size_t)n_present);
    *len = 8 + (size_t)n_present;
    return b;
}

static void write_images(const char *path, uint32_t magic, uint32_t n, int H, int W, int n_present,
                         bool is_gz) {
    size_t len;
    unsigned char *b = make_images(magic, n, H, W, n_present, &len);
    write_file(path, b, len, is_gz);
    free(b);
}

static void write_labels(const char *path, uint32_t magic, uint32_t n, const uint8_t *y,
                         int n_present, bool is_gz) {
    size_t len;
    unsigned char *b = make_labels(magic, n, y, n_present, &len);
    write_file(path, b, len, is_gz);
    free(b);
}

static const uint8_t labels5[5] = {0, 2, 1, 2, 0};

/* The last path component, which every error message must name. */
static const char *base_name(const char *path) {
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

/* Loads and expects failure with status want and a message naming name and containing what. */
static void expect_fail(const char *images, const char *labels, loom_status want, const char *name,
                        const char *what) {
    static loom_dataset sentinel;
    loom_dataset *ds = &sentinel; /* must be reset to NULL */
    loom_error err = {0};
    loom_status st = loom_dataset_load_idx(&ds, images, labels, &err);
    CHECK_MSG(st == want, "%s: got %s, want %s (%s)", name, loom_status_str(st),
              loom_status_str(want), err.msg);
    CHECK(ds == NULL);
    CHECK(err.status == want);
    CHECK_MSG(strstr(err.msg, name) != NULL, "message '%s' lacks '%s'", err.msg, name);
    CHECK_MSG(strstr(err.msg, what) != NULL, "message '%s' lacks '%s'", err.msg, what);
    CHECK(strchr(err.msg, '\n') == NULL);
    if (ds != &sentinel)
        loom_dataset_destroy(ds);
}

/* ---- reader: valid files ---- */

static void check_valid(const char *img, const char *lab, bool img_gz, bool lab_gz) {
    write_images(img, 2051, 5, 3, 4, 5, img_gz);
    write_labels(lab, 2049, 5, labels5, 5, lab_gz);
    loom_dataset *ds = NULL;
    loom_error err = {0};
    loom_status st = loom_dataset_load_idx(&ds, img, lab, &err);
    CHECK_MSG(st == LOOM_OK, "%s", err.msg);
    if (st != LOOM_OK)
        return;
    CHECK(ds->n == 5 && ds->H == 3 && ds->W == 4 && ds->C == 1);
    CHECK(ds->n_classes == 3);
    CHECK(!ds->is_fashion);
    bool is_same = true;
    for (int i = 0; i < 5; i++)
        for (int r = 0; r < 3; r++)
            for (int c = 0; c < 4; c++)
                is_same = is_same && ds->x[(i * 3 + r) * 4 + c] == pixel_of(i, r, c);
    CHECK(is_same);
    CHECK(memcmp(ds->y, labels5, 5) == 0);
    loom_dataset_destroy(ds);
}

static void test_load_plain(void) {
    check_valid(tmp_path("plain-images"), tmp_path("plain-labels"), false, false);
}

static void test_load_gzip(void) {
    check_valid(tmp_path("gz-images.gz"), tmp_path("gz-labels.gz"), true, true);
    /* The suffix does not matter: zlib detects gzip by content. */
    check_valid(tmp_path("mixed-images"), tmp_path("mixed-labels.gz"), true, false);
}

static void test_n_classes(void) {
    const char *img = tmp_path("nc-images"), *lab = tmp_path("nc-labels");
    uint8_t y[4] = {0, 0, 0, 0};
    write_images(img, 2051, 4, 2, 2, 4, false);
    struct {
        uint8_t top;
        int want;
    } cases[] = {{0, 2}, {1, 2}, {7, 8}, {9, 10}, {255, 256}};
    for (size_t t = 0; t < sizeof cases / sizeof cases[0]; t++) {
        y[2] = cases[t].top;
        write_labels(lab, 2049, 4, y, 4, false);
        loom_dataset *ds = NULL;
        loom_error err = {0};
        CHECK_MSG(loom_dataset_load_idx(&ds, img, lab, &err) == LOOM_OK, "%s", err.msg);
        if (!ds)
            continue;
        CHECK_MSG(ds->n_classes == cases[t].want, "max label %d: n_classes %d", cases[t].top,
                  ds->n_classes);
        int counts[LOOM_MAX_CLASSES];
        loom_dataset_class_counts(ds, NULL, 0, counts);
        CHECK(counts[0] == (cases[t].top == 0 ? 4 : 3));
        CHECK(counts[ds->n_classes - 1] == (cases[t].top == 0 ? 0 : 1));
        loom_dataset_destroy(ds);
    }
}

/* ---- reader: malformed files ---- */

static void test_truncated(void) {
    const char *lab = tmp_path("t-labels");
    write_labels(lab, 2049, 5, labels5, 5, false);
    for (int is_gz = 0; is_gz <= 1; is_gz++) {
        const char *img = tmp_path(is_gz ? "trunc-images.gz" : "trunc-images");
        write_images(img, 2051, 5, 3, 4, 4, is_gz); /* one image short */
        expect_fail(img, lab, LOOM_ERR_FORMAT, base_name(img), "truncated");
        expect_fail(img, lab, LOOM_ERR_FORMAT, base_name(img), "48 bytes");
        /* A header cut short. */
        write_file(img, "\0\0\x08\x03\0\0", 6, is_gz);
        expect_fail(img, lab, LOOM_ERR_FORMAT, base_name(img), "truncated header");
        write_file(img, "\0\0", 2, is_gz);
        expect_fail(img, lab, LOOM_ERR_FORMAT, base_name(img), "truncated header");
    }
    const char *img = tmp_path("t-images");
    write_images(img, 2051, 5, 3, 4, 5, false);
    for (int is_gz = 0; is_gz <= 1; is_gz++) {
        const char *l = tmp_path(is_gz ? "trunc-labels.gz" : "trunc-labels");
        write_labels(l, 2049, 5, labels5, 3, is_gz);
        expect_fail(img, l, LOOM_ERR_FORMAT, base_name(l), "truncated");
        expect_fail(img, l, LOOM_ERR_FORMAT, base_name(l), "5 labels");
    }
}

static void test_trailing_data(void) {
    const char *img = tmp_path("trail-images"), *lab = tmp_path("trail-labels");
    write_labels(lab, 2049, 5, labels5, 5, false);
    size_t len;
    unsigned char *b = make_images(2051, 4, 3, 4, 5, &len); /* 5 images, header says 4 */
    for (int is_gz = 0; is_gz <= 1; is_gz++) {
        write_file(img, b, len, is_gz);
        expect_fail(img, lab, LOOM_ERR_FORMAT, base_name(img), "trailing");
        expect_fail(img, lab, LOOM_ERR_FORMAT, base_name(img), "holds 60 bytes");
    }
    free(b);
}

static void test_truncated_gzip_stream(void) {
    const char *img = tmp_path("cut-images.gz"), *lab = tmp_path("cut-labels");
    write_labels(lab, 2049, 40, (const uint8_t[40]){0}, 40, false);
    write_images(img, 2051, 40, 28, 28, 40, true);
    /* Keep the first half of the compressed bytes. */
    FILE *f = fopen(img, "rb");
    CHECK(f != NULL);
    if (!f)
        return;
    unsigned char buf[65536];
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    CHECK(n > 100 && n < sizeof buf);
    write_file(img, buf, n / 2, false);
    expect_fail(img, lab, LOOM_ERR_FORMAT, base_name(img), "gzip");
    /* Corrupt deflate data after a valid gzip header. */
    memset(buf + 20, 0xff, 40);
    write_file(img, buf, n, false);
    expect_fail(img, lab, LOOM_ERR_FORMAT, base_name(img), "gzip");
}

static void test_lying_header(void) {
    const char *lab = tmp_path("lie-labels");
    write_labels(lab, 2049, 3, labels5, 3, false);
    for (int is_gz = 0; is_gz <= 1; is_gz++) {
        const char *img = tmp_path(is_gz ? "lie-images.gz" : "lie-images");
        write_images(img, 2051, 1000000000u, 28, 28, 3, is_gz);
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        expect_fail(img, lab, LOOM_ERR_FORMAT, base_name(img),
                    "truncated: header says 1000000000 images (784000000000 bytes), "
                    "file holds 2352 bytes");
        clock_gettime(CLOCK_MONOTONIC, &t1);
        double secs = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
        CHECK_MSG(secs < 1.0, "lying header took %.2f s", secs);
        /* The largest header the format allows. */
        write_images(img, 2051, 0x7fffffffu, 65535, 65535, 0, is_gz);
        expect_fail(img, lab, LOOM_ERR_FORMAT, base_name(img), "truncated");
    }
    const char *img = tmp_path("lie2-images");
    write_images(img, 2051, 3, 28, 28, 3, false);
    const char *l = tmp_path("lie2-labels.gz");
    write_labels(l, 2049, 2000000000u, labels5, 3, true);
    expect_fail(img, l, LOOM_ERR_FORMAT, base_name(l), "header says 2000000000 labels");
    /* Sizes the format cannot hold. */
    write_images(img, 2051, 0x80000000u, 28, 28, 3, false);
    expect_fail(img, lab, LOOM_ERR_FORMAT, base_name(img), "2147483648 images");
    write_images(img, 2051, 3, 70000, 28, 0, false);
    expect_fail(img, lab, LOOM_ERR_FORMAT, base_name(img), "70000x28");
    write_images(img, 2051, 0, 28, 28, 0, false);
    expect_fail(img, lab, LOOM_ERR_FORMAT, base_name(img), "0 images");
}

static void test_wrong_magic(void) {
    const char *img = tmp_path("m-images"), *lab = tmp_path("m-labels");
    write_images(img, 2051, 5, 3, 4, 5, false);
    write_labels(lab, 2049, 5, labels5, 5, true);
    /* Swapped files. */
    expect_fail(lab, img, LOOM_ERR_FORMAT, "m-labels", "expected magic 2051 (images), found 2049");
    expect_fail(img, img, LOOM_ERR_FORMAT, "m-images", "expected magic 2049 (labels), found 2051");
    /* Dimension byte wrong (2 dims), type byte wrong (0x09 = signed byte, 0x0D = float). */
    const char *bad = tmp_path("dims-images");
    write_images(bad, 0x0802, 5, 3, 4, 5, false);
    expect_fail(bad, lab, LOOM_ERR_FORMAT, "dims-images", "2 dimensions, expected 3");
    bad = tmp_path("type-images.gz");
    write_images(bad, 0x0903, 5, 3, 4, 5, true);
    expect_fail(bad, lab, LOOM_ERR_FORMAT, "type-images.gz", "element type 0x09");
    write_images(bad, 0x0D03, 5, 3, 4, 5, true);
    expect_fail(bad, lab, LOOM_ERR_FORMAT, "type-images.gz", "element type 0x0d");
    bad = tmp_path("type-labels");
    write_labels(bad, 0x0B01, 5, labels5, 5, false);
    expect_fail(img, bad, LOOM_ERR_FORMAT, "type-labels", "expected magic 2049");
}

static void test_count_mismatch(void) {
    const char *img = tmp_path("cm-images"), *lab = tmp_path("cm-labels.gz");
    write_images(img, 2051, 5, 3, 4, 5, false);
    write_labels(lab, 2049, 4, labels5, 4, true);
    expect_fail(img, lab, LOOM_ERR_FORMAT, "cm-images", "5 images");
    expect_fail(img, lab, LOOM_ERR_FORMAT, "cm-labels.gz", "4 labels");
}

static void test_garbage_and_empty(void) {
    const char *lab = tmp_path("g-labels");
    write_labels(lab, 2049, 5, labels5, 5, false);
    const char *img = tmp_path("garbage.txt");
    const char text[] = "this is a text file, neither gzip nor IDX\n";
    write_file(img, text, sizeof text - 1, false);
    expect_fail(img, lab, LOOM_ERR_FORMAT, "garbage.txt", "not an IDX file");
    /* A PNG signature, gzip-compressed: decompresses fine, still not IDX. */
    write_file(img, "\x89PNG\r\n\x1a\n\0\0\0\rIHDR", 16, true);
    expect_fail(img, lab, LOOM_ERR_FORMAT, "garbage.txt", "not an IDX file");
    /* gzip magic followed by junk. */
    write_file(img, "\x1f\x8b\x08\0junkjunkjunkjunkjunk", 24, false);
    expect_fail(img, lab, LOOM_ERR_FORMAT, "garbage.txt", "gzip");
    const char *empty = tmp_path("empty-images");
    write_file(empty, "", 0, false);
    expect_fail(empty, lab, LOOM_ERR_FORMAT, "empty-images", "empty");
    write_file(empty, "", 0, true); /* an empty gzip stream */
    expect_fail(empty, lab, LOOM_ERR_FORMAT, "empty-images", "empty");
}

static void test_missing_and_dir(void) {
    const char *lab = tmp_path("md-labels");
    write_labels(lab, 2049, 5, labels5, 5, false);
    expect_fail(tmp_path("no-such-file"), lab, LOOM_ERR_IO, "no-such-file", "cannot open");
    const char *img = tmp_path("md-images");
    write_images(img, 2051, 5, 3, 4, 5, false);
    expect_fail(img, tmp_path("no-labels.gz"), LOOM_ERR_IO, "no-labels.gz", "No such file");
    const char *dir = tmp_path("a-directory");
    CHECK(mkdir(dir, 0755) == 0);
    expect_fail(dir, lab, LOOM_ERR_IO, "a-directory", "directory");
    expect_fail(img, dir, LOOM_ERR_IO, "a-directory", "directory");
    loom_error err = {0};
    CHECK(loom_dataset_load_idx(NULL, img, lab, &err) == LOOM_ERR_ARG);
    CHECK(loom_dataset_load_idx(NULL, img, lab, NULL) == LOOM_ERR_ARG);
}

/* ---- load_dir, names, default directory ---- */

static void test_load_dir(void) {
    const char *dir = tmp_path("My-Fashion-Set");
    CHECK(mkdir(dir, 0755) == 0);
    char img[600], lab[600];
    uint8_t y[20];
    for (int i = 0; i < 20; i++)
        y[i] = (uint8_t)(i % 10);
    snprintf(img, sizeof img, "%s/train-images-idx3-ubyte.gz", dir);
    snprintf(lab, sizeof lab, "%s/train-labels-idx1-ubyte", dir);
    write_images(img, 2051, 20, 4, 4, 20, true);
    write_labels(lab, 2049, 20, y, 20, false);

    loom_dataset *ds = NULL;
    loom_error err = {0};
    CHECK_MSG(loom_dataset_load_dir(&ds, dir, "train", &err) == LOOM_OK, "%s", err.msg);
    if (ds) {
        CHECK(ds->n == 20 && ds->H == 4 && ds->W == 4 && ds->n_classes == 10);
        CHECK(ds->is_fashion);
        char buf[16];
        CHECK(strcmp(loom_class_name(ds, 0, buf), "T-shirt/top") == 0);
        CHECK(strcmp(loom_class_name(ds, 9, buf), "Ankle boot") == 0);
        CHECK(strcmp(loom_class_name(ds, 6, buf), "Shirt") == 0);
        CHECK(strcmp(loom_class_name(ds, 12, buf), "12") == 0);
        int counts[10], idx[3] = {1, 11, 2};
        loom_dataset_class_counts(ds, idx, 3, counts);
        CHECK(counts[1] == 2 && counts[2] == 1 && counts[0] == 0);
        loom_dataset_destroy(ds);
        ds = NULL;
    }
    /* The test pair is absent: the message names the path and the fix. */
    CHECK(loom_dataset_load_dir(&ds, dir, "test", &err) == LOOM_ERR_IO);
    CHECK(ds == NULL);
    CHECK_MSG(strstr(err.msg, "t10k-images-idx3-ubyte") != NULL, "%s", err.msg);
    CHECK_MSG(strstr(err.msg, "install dataset-fashion-mnist or give another data directory") !=
                  NULL,
              "%s", err.msg);
    CHECK(loom_dataset_load_dir(&ds, dir, "validation", &err) == LOOM_ERR_ARG);
    CHECK(loom_dataset_load_dir(&ds, dir, NULL, &err) == LOOM_ERR_ARG);
    CHECK(loom_dataset_load_dir(&ds, tmp_path("nowhere"), "train", &err) == LOOM_ERR_IO);
    CHECK_MSG(strstr(err.msg, "nowhere/train-images-idx3-ubyte") != NULL, "%s", err.msg);

    /* Labels missing only. */
    const char *dir2 = tmp_path("half");
    CHECK(mkdir(dir2, 0755) == 0);
    snprintf(img, sizeof img, "%s/t10k-images-idx3-ubyte", dir2);
    write_images(img, 2051, 20, 4, 4, 20, false);
    CHECK(loom_dataset_load_dir(&ds, dir2, "test", &err) == LOOM_ERR_IO);
    CHECK_MSG(strstr(err.msg, "t10k-labels-idx1-ubyte") != NULL, "%s", err.msg);
    /* A directory without "fashion" in its path gets numeric class names. */
    snprintf(lab, sizeof lab, "%s/t10k-labels-idx1-ubyte.gz", dir2);
    write_labels(lab, 2049, 20, y, 20, true);
    CHECK_MSG(loom_dataset_load_dir(&ds, dir2, "test", &err) == LOOM_OK, "%s", err.msg);
    if (ds) {
        char buf[16];
        CHECK(!ds->is_fashion);
        CHECK(strcmp(loom_class_name(ds, 3, buf), "3") == 0);
        loom_dataset_destroy(ds);
    }
    loom_dataset_destroy(NULL);
}

static void test_default_dir(void) {
    const char *saved = getenv("LOOM_DATA");
    char keep[512] = "";
    if (saved)
        snprintf(keep, sizeof keep, "%s", saved);
    setenv("LOOM_DATA", "/some/where", 1);
    CHECK(strcmp(loom_default_data_dir(), "/some/where") == 0);
    setenv("LOOM_DATA", "", 1);
    CHECK(strcmp(loom_default_data_dir(), REAL_DIR) == 0);
    unsetenv("LOOM_DATA");
    CHECK(strcmp(loom_default_data_dir(), REAL_DIR) == 0);
    if (saved)
        setenv("LOOM_DATA", keep, 1);
}

/* ---- splits ---- */

/* A hand-built dataset: class c has count[c] examples, interleaved; pixel = example % 256. */
static loom_dataset *make_dataset(const int *count, int n_classes, int H, int W) {
    int n = 0;
    for (int c = 0; c < n_classes; c++)
        n += count[c];
    loom_dataset *ds = check_dataset(n, H, W, n_classes);
    int left[16], i = 0;
    memcpy(left, count, sizeof *left * (size_t)n_classes);
    while (i < n)
        for (int c = 0; c < n_classes; c++)
            if (left[c] > 0) {
                left[c]--;
                ds->y[i++] = (uint8_t)c;
            }
    for (size_t j = 0; j < (size_t)n * H * W; j++)
        ds->x[j] = (uint8_t)((j / (size_t)(H * W)) * 7 + j);
    return ds;
}

/* Each of 0..n-1 appears exactly once across a and b. */
static bool is_partition(const int *a, int na, const int *b, int nb, int n) {
    if (na + nb != n)
        return false;
    char *seen = calloc((size_t)n, 1);
    bool ok = true;
    for (int i = 0; i < na + nb; i++) {
        int e = i < na ? a[i] : b[i - na];
        if (e < 0 || e >= n || seen[e]) {
            ok = false;
            break;
        }
        seen[e] = 1;
    }
    free(seen);
    return ok;
}

static bool is_ascending(const int *a, int n) {
    for (int i = 1; i < n; i++)
        if (a[i] <= a[i - 1])
            return false;
    return true;
}

static void test_split_stratified(void) {
    const int count[4] = {50, 37, 13, 1};
    loom_dataset *ds = make_dataset(count, 4, 2, 2);
    loom_split a = {0}, b = {0}, c = {0};
    loom_error err = {0};
    CHECK_MSG(loom_split_create(&a, ds, 0.2, LOOM_SPLIT_STRATIFIED, 42, &err) == LOOM_OK, "%s",
              err.msg);
    CHECK(is_partition(a.train, a.n_train, a.val, a.n_val, ds->n));
    int cv[4], ct[4];
    loom_dataset_class_counts(ds, a.val, a.n_val, cv);
    loom_dataset_class_counts(ds, a.train, a.n_train, ct);
    for (int k = 0; k < 4; k++) {
        CHECK_MSG(fabs(cv[k] - 0.2 * count[k]) <= 1.0, "class %d: %d of %d in val", k, cv[k],
                  count[k]);
        CHECK(cv[k] + ct[k] == count[k]);
    }
    CHECK(cv[0] == 10 && cv[1] == 7 && cv[2] == 3 && cv[3] == 0);
    /* The lists are shuffled, not grouped by class or in file order. */
    CHECK(!is_ascending(a.train, a.n_train));
    CHECK(!is_ascending(a.val, a.n_val));

    CHECK(loom_split_create(&b, ds, 0.2, LOOM_SPLIT_STRATIFIED, 42, &err) == LOOM_OK);
    CHECK(a.n_val == b.n_val && a.n_train == b.n_train);
    CHECK(memcmp(a.val, b.val, sizeof(int) * (size_t)a.n_val) == 0);
    CHECK(memcmp(a.train, b.train, sizeof(int) * (size_t)a.n_train) == 0);
    CHECK(loom_split_create(&c, ds, 0.2, LOOM_SPLIT_STRATIFIED, 43, &err) == LOOM_OK);
    CHECK(c.n_val == a.n_val);
    CHECK(memcmp(a.val, c.val, sizeof(int) * (size_t)a.n_val) != 0);
    loom_split_reset(&a);
    loom_split_reset(&b);
    loom_split_reset(&c);
    CHECK(a.train == NULL && a.n_train == 0);
    loom_split_reset(&a); /* twice is fine */

    CHECK(loom_split_create(&a, ds, 0.0, LOOM_SPLIT_STRATIFIED, 1, &err) == LOOM_OK);
    CHECK(a.n_val == 0 && a.n_train == ds->n);
    CHECK(is_partition(a.train, a.n_train, a.val, a.n_val, ds->n));
    loom_split_reset(&a);

    CHECK(loom_split_create(&a, ds, 1.0, LOOM_SPLIT_STRATIFIED, 1, &err) == LOOM_ERR_ARG);
    CHECK(strstr(err.msg, "validation fraction") != NULL);
    CHECK(loom_split_create(&a, ds, -0.1, LOOM_SPLIT_STRATIFIED, 1, &err) == LOOM_ERR_ARG);
    CHECK(loom_split_create(&a, ds, NAN, LOOM_SPLIT_STRATIFIED, 1, &err) == LOOM_ERR_ARG);
    CHECK(loom_split_create(&a, ds, 0.2, (loom_split_mode)7, 1, &err) == LOOM_ERR_ARG);
    CHECK(loom_split_create(&a, NULL, 0.2, LOOM_SPLIT_STRATIFIED, 1, &err) == LOOM_ERR_ARG);
    CHECK(a.train == NULL && a.val == NULL);
    loom_dataset_destroy(ds);

    /* One example per class and f = 0.5: everything would go to validation. */
    const int ones[2] = {1, 1};
    ds = make_dataset(ones, 2, 1, 1);
    CHECK(loom_split_create(&a, ds, 0.5, LOOM_SPLIT_STRATIFIED, 1, &err) == LOOM_ERR_ARG);
    CHECK(strstr(err.msg, "no training examples") != NULL);
    loom_dataset_destroy(ds);
}

static void test_split_keras(void) {
    const int count[3] = {40, 40, 21};
    loom_dataset *ds = make_dataset(count, 3, 2, 2);
    loom_split s = {0};
    loom_error err = {0};
    CHECK(loom_split_create(&s, ds, 0.2, LOOM_SPLIT_KERAS, 99, &err) == LOOM_OK);
    CHECK(s.n_val == 20 && s.n_train == 81); /* floor(101 * 0.2) */
    bool is_ok = true;
    for (int i = 0; i < s.n_train; i++)
        is_ok = is_ok && s.train[i] == i;
    for (int i = 0; i < s.n_val; i++)
        is_ok = is_ok && s.val[i] == 81 + i;
    CHECK(is_ok);
    loom_split_reset(&s);
    CHECK(loom_split_create(&s, ds, 0.999999, LOOM_SPLIT_KERAS, 99, &err) == LOOM_OK);
    CHECK(s.n_train >= 1 && s.n_train + s.n_val == ds->n);
    loom_split_reset(&s);
    loom_dataset_destroy(ds);
}

static void test_kfold(void) {
    const int count[3] = {23, 17, 9};
    loom_dataset *ds = make_dataset(count, 3, 2, 2);
    const int K = 5;
    loom_split f[5] = {{0}};
    loom_error err = {0};
    int *fold_of = malloc(sizeof(int) * (size_t)ds->n);
    for (int i = 0; i < ds->n; i++)
        fold_of[i] = -1;
    bool is_disjoint = true;
    int cv[5][3];
    for (int k = 0; k < K; k++) {
        CHECK_MSG(loom_split_kfold(&f[k], ds, K, k, 7, &err) == LOOM_OK, "%s", err.msg);
        CHECK(is_partition(f[k].train, f[k].n_train, f[k].val, f[k].n_val, ds->n));
        CHECK(is_ascending(f[k].train, f[k].n_train) && is_ascending(f[k].val, f[k].n_val));
        CHECK(f[k].n_val == 9 || f[k].n_val == 10); /* 49 / 5 */
        for (int i = 0; i < f[k].n_val; i++) {
            int e = f[k].val[i];
            is_disjoint = is_disjoint && fold_of[e] == -1;
            fold_of[e] = k;
        }
        loom_dataset_class_counts(ds, f[k].val, f[k].n_val, cv[k]);
    }
    CHECK(is_disjoint);
    bool is_covered = true;
    for (int i = 0; i < ds->n; i++)
        is_covered = is_covered && fold_of[i] >= 0;
    CHECK(is_covered);
    for (int c = 0; c < 3; c++) {
        int lo = cv[0][c], hi = cv[0][c];
        for (int k = 1; k < K; k++) {
            lo = cv[k][c] < lo ? cv[k][c] : lo;
            hi = cv[k][c] > hi ? cv[k][c] : hi;
        }
        CHECK_MSG(hi - lo <= 1, "class %d: fold counts from %d to %d", c, lo, hi);
    }
    /* Same seed, same folds; another seed, other folds. */
    loom_split g = {0};
    CHECK(loom_split_kfold(&g, ds, K, 2, 7, &err) == LOOM_OK);
    CHECK(g.n_val == f[2].n_val && memcmp(g.val, f[2].val, sizeof(int) * (size_t)g.n_val) == 0);
    loom_split_reset(&g);
    CHECK(loom_split_kfold(&g, ds, K, 2, 8, &err) == LOOM_OK);
    CHECK(g.n_val != f[2].n_val || memcmp(g.val, f[2].val, sizeof(int) * (size_t)g.n_val) != 0);
    loom_split_reset(&g);

    CHECK(loom_split_kfold(&g, ds, 1, 0, 7, &err) == LOOM_ERR_ARG);
    CHECK(loom_split_kfold(&g, ds, 5, 5, 7, &err) == LOOM_ERR_ARG);
    CHECK(loom_split_kfold(&g, ds, 5, -1, 7, &err) == LOOM_ERR_ARG);
    CHECK(loom_split_kfold(&g, ds, 50, 0, 7, &err) == LOOM_ERR_ARG);
    CHECK(strstr(err.msg, "folds") != NULL);
    CHECK(g.train == NULL && g.val == NULL);
    for (int k = 0; k < K; k++)
        loom_split_reset(&f[k]);
    free(fold_of);
    loom_dataset_destroy(ds);
}

/* ---- standardisation and batches ---- */

static void test_batch_fill(void) {
    const int count[2] = {2, 2};
    loom_dataset *ds = make_dataset(count, 2, 1, 3);
    /* Pixel columns: 0 always 0; 1 always 255; 2 takes 0, 51, 102, 255. */
    const uint8_t px[4][3] = {{0, 255, 0}, {0, 255, 51}, {0, 255, 102}, {0, 255, 255}};
    memcpy(ds->x, px, sizeof px);
    float x[4 * 3];
    int y[4] = {-1, -1, -1, -1}, idx[2] = {3, 0};
    loom_batch_fill(ds, idx, 2, NULL, x, y);
    CHECK(x[0] == 0.0f && x[1] == 1.0f && x[2] == 1.0f);
    CHECK(x[3] == 0.0f && x[4] == 1.0f && x[5] == 0.0f);
    CHECK(y[0] == ds->y[3] && y[1] == ds->y[0] && y[2] == -1);
    loom_batch_fill(ds, NULL, 4, NULL, x, NULL);
    bool is_exact = true;
    for (int i = 0; i < 12; i++)
        is_exact = is_exact && x[i] == (float)px[i / 3][i % 3] / 255.0f;
    CHECK(is_exact);

    loom_norm nrm = {0};
    loom_error err = {0};
    CHECK_MSG(loom_norm_fit(&nrm, ds, NULL, 0, &err) == LOOM_OK, "%s", err.msg);
    CHECK(nrm.is_on);
    CHECK_NEAR(nrm.mean[0], 0.0, 1e-7);
    CHECK_NEAR(nrm.std[0], 1e-3, 1e-9); /* constant pixel: floored */
    CHECK_NEAR(nrm.mean[1], 1.0, 1e-7);
    CHECK_NEAR(nrm.std[1], 1e-3, 1e-9);
    /* Column 2: values {0, 0.2, 0.4, 1}: mean 0.4, population variance 0.14. */
    CHECK_NEAR(nrm.mean[2], 0.4, 1e-7);
    CHECK_NEAR(nrm.std[2], sqrt(0.14), 1e-6);
    loom_batch_fill(ds, NULL, 4, &nrm, x, y);
    CHECK_NEAR(x[0], 0.0, 1e-6);
    CHECK_NEAR(x[2], -0.4 / sqrt(0.14), 1e-5);
    CHECK_NEAR(x[11], 0.6 / sqrt(0.14), 1e-5);
    double mean = 0, var = 0;
    for (int i = 0; i < 4; i++)
        mean += x[i * 3 + 2] / 4.0;
    for (int i = 0; i < 4; i++)
        var += (x[i * 3 + 2] - mean) * (x[i * 3 + 2] - mean) / 4.0;
    CHECK_NEAR(mean, 0.0, 1e-6);
    CHECK_NEAR(var, 1.0, 1e-5);
    /* Switched off: plain scaling again. */
    nrm.is_on = false;
    loom_batch_fill(ds, NULL, 1, &nrm, x, NULL);
    CHECK(x[1] == 1.0f);
    loom_norm_reset(&nrm);
    CHECK(nrm.mean == NULL && !nrm.is_on);
    loom_norm_reset(&nrm);

    /* Fitting on a subset. */
    int sub[2] = {1, 2};
    CHECK(loom_norm_fit(&nrm, ds, sub, 2, &err) == LOOM_OK);
    CHECK_NEAR(nrm.mean[2], 0.3, 1e-7);
    CHECK_NEAR(nrm.std[2], 0.1, 1e-6);
    loom_norm_reset(&nrm);
    CHECK(loom_norm_fit(&nrm, ds, sub, 0, &err) == LOOM_ERR_ARG);
    int bad[1] = {4};
    CHECK(loom_norm_fit(&nrm, ds, bad, 1, &err) == LOOM_ERR_ARG);
    CHECK(nrm.mean == NULL);
    loom_dataset_destroy(ds);
}

/* A test set that does not fit its training set is refused before any work: another image
 * size or channel count, or labels beyond the training classes; fewer classes present is fine. */
static void test_check_test(void) {
    loom_dataset *tr = check_dataset(4, 28, 28, 10);
    loom_dataset *same = check_dataset(4, 28, 28, 10), *small = check_dataset(4, 14, 14, 10);
    loom_dataset *more = check_dataset(4, 28, 28, 12), *fewer = check_dataset(4, 28, 28, 3);
    loom_dataset *rgb = check_dataset(4, 28, 28, 10);
    loom_error err = {0};
    CHECK(loom_dataset_check_test(tr, same, &err) == LOOM_OK);
    CHECK(loom_dataset_check_test(tr, fewer, &err) == LOOM_OK);
    CHECK(loom_dataset_check_test(tr, NULL, &err) == LOOM_OK);
    CHECK(loom_dataset_check_test(tr, small, &err) == LOOM_ERR_SHAPE);
    CHECK_MSG(strstr(err.msg, "14x14x1") && strstr(err.msg, "28x28x1"), "%s", err.msg);
    CHECK(loom_dataset_check_test(tr, more, &err) == LOOM_ERR_SHAPE);
    CHECK_MSG(strstr(err.msg, "up to 11") && strstr(err.msg, "10 classes"), "%s", err.msg);
    rgb->C = 3; /* the shape alone is compared: the pixels are not read */
    CHECK(loom_dataset_check_test(tr, rgb, &err) == LOOM_ERR_SHAPE);
    rgb->C = 1;
    loom_dataset *list[] = {tr, same, small, more, fewer, rgb};
    for (int i = 0; i < 6; i++)
        loom_dataset_destroy(list[i]);
}

/* ---- the real dataset ---- */

static void test_real_dataset(void) {
    struct stat sb;
    if (stat(REAL_DIR "/train-images-idx3-ubyte.gz", &sb) != 0 &&
        stat(REAL_DIR "/train-images-idx3-ubyte", &sb) != 0) {
        fprintf(stderr, "  note: %s not found; skipping the real-data checks\n", REAL_DIR);
        return;
    }
    loom_dataset *tr = NULL, *te = NULL;
    loom_error err = {0};
    CHECK_MSG(loom_dataset_load_dir(&tr, REAL_DIR, "train", &err) == LOOM_OK, "%s", err.msg);
    CHECK_MSG(loom_dataset_load_dir(&te, REAL_DIR, "test", &err) == LOOM_OK, "%s", err.msg);
    if (tr) {
        CHECK(tr->n == 60000 && tr->H == 28 && tr->W == 28 && tr->C == 1);
        CHECK(tr->n_classes == 10 && tr->is_fashion);
        int counts[10];
        loom_dataset_class_counts(tr, NULL, 0, counts);
        bool is_balanced = true;
        for (int c = 0; c < 10; c++)
            is_balanced = is_balanced && counts[c] == 6000;
        CHECK(is_balanced);
        loom_split s = {0};
        CHECK(loom_split_create(&s, tr, 0.1, LOOM_SPLIT_STRATIFIED, 1, &err) == LOOM_OK);
        loom_dataset_class_counts(tr, s.val, s.n_val, counts);
        is_balanced = s.n_val == 6000;
        for (int c = 0; c < 10; c++)
            is_balanced = is_balanced && counts[c] == 600;
        CHECK(is_balanced);
        loom_split_reset(&s);
    }
    if (te) {
        CHECK(te->n == 10000 && te->H == 28 && te->W == 28 && te->n_classes == 10);
        int counts[10];
        loom_dataset_class_counts(te, NULL, 0, counts);
        bool is_balanced = true;
        for (int c = 0; c < 10; c++)
            is_balanced = is_balanced && counts[c] == 1000;
        CHECK(is_balanced);
    }
    loom_dataset_destroy(tr);
    loom_dataset_destroy(te);
}

int main(void) {
    RUN(test_load_plain);
    RUN(test_load_gzip);
    RUN(test_n_classes);
    RUN(test_truncated);
    RUN(test_trailing_data);
    RUN(test_truncated_gzip_stream);
    RUN(test_lying_header);
    RUN(test_wrong_magic);
    RUN(test_count_mismatch);
    RUN(test_garbage_and_empty);
    RUN(test_missing_and_dir);
    RUN(test_load_dir);
    RUN(test_default_dir);
    RUN(test_split_stratified);
    RUN(test_split_keras);
    RUN(test_kfold);
    RUN(test_batch_fill);
    RUN(test_check_test);
    RUN(test_real_dataset);
    return check_report();
}
