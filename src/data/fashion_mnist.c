/* fashion_mnist.c - the IDX reader (plain or gzip, both through zlib) and dataset helpers.
 * Images are IDX3 unsigned bytes (n, H, W), stored as (n, H, W, C = 1); labels are IDX1
 * unsigned bytes (n). Every size is checked against the bytes actually present before it is
 * trusted, so a corrupt or lying header costs at most twice the real file's size in memory. */
#include "../core/core.h"

#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <sys/stat.h>
#include <zlib.h>

#define IDX_MAGIC_IMAGES 0x00000803u /* 2051: unsigned byte, 3 dimensions */
#define IDX_MAGIC_LABELS 0x00000801u /* 2049: unsigned byte, 1 dimension */
#define IDX_TYPE_UBYTE 0x08
#define IDX_MAX_SIDE 65535u   /* H and W; keeps H*W*C well inside an int */
#define READ_CHUNK (1u << 20) /* first buffer size and largest single gzread */

/* What one IDX file must look like. */
typedef struct {
    uint32_t magic;
    int n_dims;
    const char *what; /* "images" or "labels" */
} idx_kind;

static const idx_kind kind_images = {IDX_MAGIC_IMAGES, 3, "images"};
static const idx_kind kind_labels = {IDX_MAGIC_LABELS, 1, "labels"};

static const char *const fashion_names[10] = {
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot",
};

static uint32_t be32(const unsigned char *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

/* Turns zlib's error state after a failed gzread into a status and message. */
static loom_status gz_fail(gzFile gz, const char *path, int saved_errno, loom_error *err) {
    int code = Z_OK;
    const char *text = gzerror(gz, &code);
    if (code == Z_ERRNO)
        return loom_error_set(err, LOOM_ERR_IO, "%s: read failed: %s", path, strerror(saved_errno));
    if (code == Z_MEM_ERROR)
        return loom_error_set(err, LOOM_ERR_NOMEM, "%s: out of memory while decompressing", path);
    if (!text || !*text)
        text = "unknown zlib error";
    size_t n = strlen(path); /* zlib's text starts "path: " */
    if (strncmp(text, path, n) == 0 && strncmp(text + n, ": ", 2) == 0)
        text += n + 2;
    return loom_error_set(err, LOOM_ERR_FORMAT, "%s: corrupt gzip data: %s", path, text);
}

/* Reads up to len bytes, stopping early only at the end of the data; *got is the count.
 * A gzip stream that ends before its trailer is a format error, not a short read. */
static loom_status read_upto(gzFile gz, const char *path, void *buf, size_t len, size_t *got,
                             loom_error *err) {
    unsigned char *p = buf;
    *got = 0;
    while (*got < len) {
        size_t want = len - *got;
        unsigned chunk = want > READ_CHUNK ? READ_CHUNK : (unsigned)want;
        errno = 0;
        int r = gzread(gz, p + *got, chunk);
        if (r < 0)
            return gz_fail(gz, path, errno, err);
        if (r == 0)
            break;
        *got += (size_t)r;
    }
    if (*got < len) {
        int code = Z_OK;
        gzerror(gz, &code);
        if (code == Z_BUF_ERROR)
            return loom_error_set(err, LOOM_ERR_FORMAT,
                                  "%s: gzip stream is truncated (unexpected end of file)", path);
        if (code != Z_OK)
            return gz_fail(gz, path, errno, err);
    }
    return LOOM_OK;
}

/* Checks the 4-byte magic against the kind wanted, naming what is wrong with it. */
static loom_status check_magic(const unsigned char *h, const idx_kind *kind, const char *path,
                               loom_error *err) {
    uint32_t magic = be32(h);
    if (magic == kind->magic)
        return LOOM_OK;
    if (h[0] != 0 || h[1] != 0)
        return loom_error_set(err, LOOM_ERR_FORMAT,
                              "%s: not an IDX file: expected magic %u (%s), found 0x%08x", path,
                              (unsigned)kind->magic, kind->what, (unsigned)magic);
    if (magic == IDX_MAGIC_IMAGES || magic == IDX_MAGIC_LABELS)
        return loom_error_set(err, LOOM_ERR_FORMAT, "%s: expected magic %u (%s), found %u (%s)",
                              path, (unsigned)kind->magic, kind->what, (unsigned)magic,
                              magic == IDX_MAGIC_IMAGES ? "images" : "labels");
    if (h[2] != IDX_TYPE_UBYTE)
        return loom_error_set(err, LOOM_ERR_FORMAT,
                              "%s: expected magic %u (%s), found %u: element type 0x%02x is not "
                              "unsigned byte (0x08)",
                              path, (unsigned)kind->magic, kind->what, (unsigned)magic, h[2]);
    return loom_error_set(err, LOOM_ERR_FORMAT,
                          "%s: expected magic %u (%s), found %u: %d dimensions, expected %d", path,
                          (unsigned)kind->magic, kind->what, (unsigned)magic, h[3], kind->n_dims);
}

/* Reads the payload of exactly `expect` bytes. The buffer doubles as data arrives, capped at
 * expect + 1 so that one byte too many is seen; memory follows the file, not the header. */
static loom_status read_payload(gzFile gz, const char *path, const idx_kind *kind, uint32_t n,
                                uint64_t expect, uint8_t **out, loom_error *err) {
    loom_status st = LOOM_OK;
    size_t cap_max = (size_t)expect + 1;
    size_t cap = cap_max < READ_CHUNK ? cap_max : READ_CHUNK;
    size_t have = 0;
    uint8_t *buf = malloc(cap);
    if (!buf)
        return loom_error_set(err, LOOM_ERR_NOMEM, "%s: cannot allocate %zu bytes", path, cap);
    for (;;) {
        size_t got = 0;
        st = read_upto(gz, path, buf + have, cap - have, &got, err);
        if (st != LOOM_OK)
            goto cleanup;
        have += got;
        if (have < cap || cap == cap_max)
            break;
        size_t next = cap > cap_max / 2 ? cap_max : cap * 2;
        uint8_t *grown = realloc(buf, next);
        if (!grown) {
            st = loom_error_set(err, LOOM_ERR_NOMEM, "%s: cannot allocate %zu bytes", path, next);
            goto cleanup;
        }
        buf = grown;
        cap = next;
    }
    if (have > expect) { /* count the rest for the message, without keeping it */
        unsigned char scratch[16384];
        size_t got = 0;
        do {
            st = read_upto(gz, path, scratch, sizeof scratch, &got, err);
            if (st != LOOM_OK)
                goto cleanup;
            have += got;
        } while (got == sizeof scratch);
    }
    if (have != expect) {
        st = loom_error_set(err, LOOM_ERR_FORMAT,
                            "%s: %s: header says %u %s (%llu bytes), file holds %zu bytes", path,
                            have < expect ? "truncated" : "trailing data", (unsigned)n, kind->what,
                            (unsigned long long)expect, have);
        goto cleanup;
    }
    *out = buf;
    buf = NULL;
cleanup:
    free(buf);
    return st;
}

/* Reads one IDX file of the given kind: dims (n_dims) and a malloc'd payload of their product. */
static loom_status read_idx(const char *path, const idx_kind *kind, uint32_t *dims, uint8_t **data,
                            loom_error *err) {
    loom_status st = LOOM_OK;
    gzFile gz = NULL;
    unsigned char head[4 + 4 * 3];
    size_t head_len = 4 + 4 * (size_t)kind->n_dims;
    size_t got = 0;
    struct stat sb;

    *data = NULL;
    if (stat(path, &sb) == 0 && S_ISDIR(sb.st_mode))
        return loom_error_set(err, LOOM_ERR_IO, "%s: is a directory, expected an IDX %s file", path,
                              kind->what);
    errno = 0;
    gz = gzopen(path, "rb");
    if (!gz) {
        if (errno == 0)
            return loom_error_set(err, LOOM_ERR_NOMEM, "%s: cannot open: out of memory", path);
        return loom_error_set(err, LOOM_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    }
    gzbuffer(gz, 1u << 17);

    st = read_upto(gz, path, head, head_len, &got, err);
    if (st != LOOM_OK)
        goto cleanup;
    if (got == 0) {
        st = loom_error_set(err, LOOM_ERR_FORMAT, "%s: empty file, expected IDX %s", path,
                            kind->what);
        goto cleanup;
    }
    if (got >= 4) { /* a wrong magic explains a short header better than "truncated" */
        st = check_magic(head, kind, path, err);
        if (st != LOOM_OK)
            goto cleanup;
    }
    if (got < head_len) {
        st = loom_error_set(err, LOOM_ERR_FORMAT, "%s: truncated header: %zu of %zu bytes", path,
                            got, head_len);
        goto cleanup;
    }

    for (int i = 0; i < kind->n_dims; i++)
        dims[i] = be32(head + 4 + 4 * i);
    if (dims[0] == 0 || dims[0] > INT_MAX) {
        st = loom_error_set(err, LOOM_ERR_FORMAT, "%s: header says %u %s (allowed 1 to %d)", path,
                            (unsigned)dims[0], kind->what, INT_MAX);
        goto cleanup;
    }
    if (kind->n_dims == 3 &&
        (dims[1] == 0 || dims[1] > IDX_MAX_SIDE || dims[2] == 0 || dims[2] > IDX_MAX_SIDE)) {
        st = loom_error_set(err, LOOM_ERR_FORMAT,
                            "%s: header says images are %ux%u (each side 1 to %u)", path,
                            (unsigned)dims[1], (unsigned)dims[2], IDX_MAX_SIDE);
        goto cleanup;
    }
    uint64_t expect = 1; /* at most 2^31 * 65535^2 < 2^63 after the checks above */
    for (int i = 0; i < kind->n_dims; i++)
        expect *= dims[i];
    if (expect >= SIZE_MAX) {
        st = loom_error_set(err, LOOM_ERR_FORMAT, "%s: header size %llu bytes is too large", path,
                            (unsigned long long)expect);
        goto cleanup;
    }
    st = read_payload(gz, path, kind, dims[0], expect, data, err);

cleanup:
    if (gz) {
        int rc = gzclose(gz);
        if (st == LOOM_OK && rc != Z_OK) {
            st = rc == Z_BUF_ERROR
                     ? loom_error_set(err, LOOM_ERR_FORMAT, "%s: gzip stream is truncated", path)
                     : loom_error_set(err, LOOM_ERR_IO, "%s: close failed", path);
        }
    }
    if (st != LOOM_OK) {
        free(*data);
        *data = NULL;
    }
    return st;
}

static bool contains_fashion(const char *s) {
    static const char word[] = "fashion";
    for (; *s; s++) {
        size_t i = 0;
        while (word[i] && s[i] && tolower((unsigned char)s[i]) == word[i])
            i++;
        if (!word[i])
            return true;
    }
    return false;
}

loom_status loom_dataset_load_idx(loom_dataset **out, const char *images_path,
                                  const char *labels_path, loom_error *err) {
    loom_status st = LOOM_OK;
    loom_dataset *ds = NULL;
    uint32_t dims_x[3] = {0}, dims_y[1] = {0};
    uint8_t *x = NULL; /* (n, H, W) */
    uint8_t *y = NULL; /* (n) */

    if (!out || !images_path)
        return loom_error_set(err, LOOM_ERR_ARG, "load dataset: NULL argument");
    *out = NULL;
    st = read_idx(images_path, &kind_images, dims_x, &x, err);
    if (st != LOOM_OK)
        goto cleanup;
    if (!labels_path) { /* images only: every label 0 */
        dims_y[0] = dims_x[0];
        y = calloc(dims_x[0] ? dims_x[0] : 1, 1);
        if (!y) {
            st = loom_error_set(err, LOOM_ERR_NOMEM, "%s: cannot allocate labels", images_path);
            goto cleanup;
        }
    } else if ((st = read_idx(labels_path, &kind_labels, dims_y, &y, err)) != LOOM_OK) {
        goto cleanup;
    }
    if (dims_x[0] != dims_y[0]) {
        st = loom_error_set(err, LOOM_ERR_FORMAT, "%s has %u images but %s has %u labels",
                            images_path, (unsigned)dims_x[0], labels_path, (unsigned)dims_y[0]);
        goto cleanup;
    }
    ds = calloc(1, sizeof *ds);
    if (!ds) {
        st = loom_error_set(err, LOOM_ERR_NOMEM, "%s: cannot allocate the dataset", images_path);
        goto cleanup;
    }
    ds->n = (int)dims_x[0];
    ds->H = (int)dims_x[1];
    ds->W = (int)dims_x[2];
    ds->C = 1;
    int max_label = 0;
    for (int i = 0; i < ds->n; i++)
        if (y[i] > max_label)
            max_label = y[i];
    ds->n_classes = max_label + 1 < 2 ? 2 : max_label + 1; /* a byte: at most 256 */
    ds->is_fashion = ds->n_classes <= 10 && contains_fashion(images_path);
    ds->x = x;
    ds->y = y;
    x = y = NULL;
    *out = ds;
cleanup:
    free(x);
    free(y);
    return st;
}

/* Writes dir/name.gz into path if it exists, else dir/name; false when neither exists. */
static bool find_file(char *path, size_t size, const char *dir, const char *name) {
    static const char *const suffixes[2] = {".gz", ""};
    for (int i = 0; i < 2; i++) {
        struct stat sb;
        int len = snprintf(path, size, "%s/%s%s", dir, name, suffixes[i]);
        if (len > 0 && (size_t)len < size && stat(path, &sb) == 0)
            return true;
    }
    return false;
}

loom_status loom_dataset_load_dir(loom_dataset **out, const char *dir, const char *which,
                                  loom_error *err) {
    char images[4096], labels[4096];
    char name_x[32], name_y[32];
    const char *prefix;

    if (!out)
        return loom_error_set(err, LOOM_ERR_ARG, "load dataset: NULL argument");
    *out = NULL;
    if (!dir || !*dir)
        dir = loom_default_data_dir();
    if (which && strcmp(which, "train") == 0)
        prefix = "train";
    else if (which && strcmp(which, "test") == 0)
        prefix = "t10k";
    else
        return loom_error_set(err, LOOM_ERR_ARG, "dataset part '%s': expected train or test",
                              which ? which : "(null)");
    if (folder_has(dir, which))
        return folder_load(out, dir, which, err);
    if (strlen(dir) > sizeof images - 64)
        return loom_error_set(err, LOOM_ERR_ARG, "data directory path is too long (%zu bytes)",
                              strlen(dir));
    snprintf(name_x, sizeof name_x, "%s-images-idx3-ubyte", prefix);
    snprintf(name_y, sizeof name_y, "%s-labels-idx1-ubyte", prefix);
    const char *missing = NULL;
    if (!find_file(images, sizeof images, dir, name_x))
        missing = name_x;
    else if (!find_file(labels, sizeof labels, dir, name_y))
        missing = name_y;
    if (missing)
        return loom_error_set(err, LOOM_ERR_IO,
                              "%s/%s[.gz]: not found; install dataset-fashion-mnist or give "
                              "another data directory",
                              dir, missing);
    return loom_dataset_load_idx(out, images, labels, err);
}

const char *loom_default_data_dir(void) {
    const char *env = getenv("LOOM_DATA");
    return env && *env ? env : "/usr/share/datasets/fashion-mnist";
}

const char *loom_class_name(const loom_dataset *ds, int k, char *buf) {
    if (ds && ds->class_names && k >= 0 && k < ds->n_classes && ds->class_names[k])
        return ds->class_names[k];
    if (ds && ds->is_fashion && k >= 0 && k < 10)
        return fashion_names[k];
    if (!buf)
        return "?";
    snprintf(buf, 16, "%d", k);
    return buf;
}

void loom_dataset_class_counts(const loom_dataset *ds, const int *idx, int n, int *counts) {
    memset(counts, 0, sizeof *counts * (size_t)ds->n_classes);
    if (!idx)
        n = ds->n;
    for (int i = 0; i < n; i++) {
        int e = idx ? idx[i] : i;
        assert(e >= 0 && e < ds->n);
        counts[ds->y[e]]++;
    }
}
