/* fuzz_idx.c - libFuzzer harness for the IDX reader (loom_dataset_load_idx), plain and gzip.
 * Input: byte 0 = flags (bit 0: gzip the image part, bit 1: gzip the label part, bit 2: cut the
 * last byte of each gzip stream, bit 3: images alone, no label file), bytes 1-2 = length of the
 * image part (little-endian, clipped), then the image part and the label part. The reader takes
 * paths only: each part goes to a memfd opened by path (/proc/self/fd/N). Raw gzip bytes in a
 * part are read as gzip too (the reader detects the magic), so corrupt streams are fuzzed too. */
#include "loom.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <zlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int fd_images = -1, fd_labels = -1;
static char path_images[64], path_labels[64];

/* Replaces the contents of fd with len bytes of p. */
static int put_file(int fd, const uint8_t *p, size_t len) {
    if (ftruncate(fd, 0) != 0)
        return -1;
    size_t done = 0;
    while (done < len) {
        ssize_t w = pwrite(fd, p + done, len - done, (off_t)done);
        if (w <= 0)
            return -1;
        done += (size_t)w;
    }
    return 0;
}

/* gzip-compresses p (len) into a new buffer; *out_len its length, less `cut` bytes. */
static uint8_t *gzip(const uint8_t *p, size_t len, size_t cut, size_t *out_len) {
    z_stream z;
    memset(&z, 0, sizeof z);
    if (deflateInit2(&z, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        return NULL;
    size_t cap = deflateBound(&z, (uLong)len) + 16;
    uint8_t *out = malloc(cap);
    if (!out) {
        deflateEnd(&z);
        return NULL;
    }
    z.next_in = (Bytef *)p;
    z.avail_in = (uInt)len;
    z.next_out = out;
    z.avail_out = (uInt)cap;
    int rc = deflate(&z, Z_FINISH);
    size_t n = cap - z.avail_out;
    deflateEnd(&z);
    if (rc != Z_STREAM_END) {
        free(out);
        return NULL;
    }
    *out_len = n > cut ? n - cut : 0;
    return out;
}

static int put_part(int fd, const uint8_t *p, size_t len, int is_gzip, size_t cut) {
    if (!is_gzip)
        return put_file(fd, p, len);
    size_t n = 0;
    uint8_t *z = gzip(p, len, cut, &n);
    if (!z)
        return -1;
    int rc = put_file(fd, z, n);
    free(z);
    return rc;
}

static int open_memfds(void) {
    fd_images = memfd_create("fuzz-images", 0);
    fd_labels = memfd_create("fuzz-labels", 0);
    if (fd_images < 0 || fd_labels < 0)
        return -1;
    snprintf(path_images, sizeof path_images, "/proc/self/fd/%d", fd_images);
    snprintf(path_labels, sizeof path_labels, "/proc/self/fd/%d", fd_labels);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (fd_images < 0 && open_memfds() != 0)
        abort(); /* the harness cannot run at all */
    if (size < 3)
        return 0;
    unsigned flags = data[0];
    size_t n_images = (size_t)data[1] | (size_t)data[2] << 8;
    data += 3;
    size -= 3;
    if (n_images > size)
        n_images = size;
    size_t cut = flags & 4 ? 1 : 0;
    if (put_part(fd_images, data, n_images, flags & 1, cut) != 0 ||
        put_part(fd_labels, data + n_images, size - n_images, flags & 2, cut) != 0)
        return 0;

    loom_dataset *ds = NULL;
    loom_error err = {0};
    loom_status st = loom_dataset_load_idx(&ds, path_images, flags & 8 ? NULL : path_labels, &err);
    if (st == LOOM_OK) {
        /* the dataset must be what the contract says */
        if (!ds || ds->n < 1 || ds->H < 1 || ds->W < 1 || ds->C != 1 || ds->n_classes < 2 ||
            ds->n_classes > LOOM_MAX_CLASSES)
            abort();
        int counts[LOOM_MAX_CLASSES];
        loom_dataset_class_counts(ds, NULL, 0, counts);
        long total = 0;
        for (int k = 0; k < ds->n_classes; k++)
            total += counts[k];
        if (total != ds->n)
            abort();
        volatile unsigned sum = 0; /* touch every pixel: ASan checks the buffer's size */
        size_t n_px = (size_t)ds->n * (size_t)ds->H * (size_t)ds->W;
        for (size_t i = 0; i < n_px; i++)
            sum += ds->x[i];
        (void)sum;
    } else {
        if (ds != NULL || err.msg[0] == '\0' || err.status != st || strchr(err.msg, '\n'))
            abort(); /* an error is one line and leaves no dataset */
    }
    loom_dataset_destroy(ds);
    return 0;
}
