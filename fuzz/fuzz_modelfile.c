/* fuzz_modelfile.c - libFuzzer harness for the model-file loader (loom_model_load).
 * Each input is loaded as it is, and, when its trailing CRC-32 does not match, a second time
 * with the CRC fixed up, so that mutations reach the fields behind the checksum. The loader
 * only takes paths: the bytes go to a memfd opened by path (/proc/self/fd/N). A model that
 * loads must be usable: its text must build again and a forward pass must run. */
#include "loom.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <zlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_FORWARD_FLOPS 2e7 /* skip the forward pass of larger (valid) models: speed only */

static int fd = -1;
static char path[64];

static int put_file(const uint8_t *p, size_t len) {
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

static void load_once(void) {
    loom_model *m = NULL;
    char *config = NULL;
    loom_error err = {0};
    loom_status st = loom_model_load(&m, &config, path, &err);
    if (st != LOOM_OK) {
        if (m || config || err.msg[0] == '\0' || err.status != st)
            abort(); /* an error leaves nothing behind and says why */
        return;
    }
    if (!m || !config)
        abort();
    int H, W, C;
    loom_model_input_shape(m, &H, &W, &C);
    loom_model *again = NULL;
    if (loom_model_create(&again, loom_model_text(m), "again", H, W, C, &err) != LOOM_OK ||
        loom_model_n_params(again) != loom_model_n_params(m) ||
        loom_model_n_state(again) != loom_model_n_state(m))
        abort(); /* the canonical text rebuilds the same model */
    loom_model_destroy(again);
    size_t D = (size_t)H * W * C;
    if (loom_model_flops(m) <= MAX_FORWARD_FLOPS && D <= 4096) {
        float *x = calloc(D, sizeof *x); /* (1, H, W, C) */
        if (x && loom_model_prepare(m, 1, &err) == LOOM_OK) {
            loom_model_forward(m, x, 1, false, NULL);
        }
        free(x);
    }
    loom_model_destroy(m);
    free(config);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (fd < 0) {
        fd = memfd_create("fuzz-model", 0);
        if (fd < 0)
            abort(); /* the harness cannot run at all */
        snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    }
    if (put_file(data, size) != 0)
        return 0;
    load_once();
    if (size < 8)
        return 0;
    uint8_t *fixed = malloc(size);
    if (!fixed)
        return 0;
    memcpy(fixed, data, size);
    uint32_t crc = (uint32_t)crc32(0L, fixed, (uInt)(size - 4));
    uint32_t have = (uint32_t)fixed[size - 4] | (uint32_t)fixed[size - 3] << 8 |
                    (uint32_t)fixed[size - 2] << 16 | (uint32_t)fixed[size - 1] << 24;
    if (crc != have) {
        for (int i = 0; i < 4; i++)
            fixed[size - 4 + i] = (uint8_t)(crc >> (8 * i));
        if (put_file(fixed, size) == 0)
            load_once();
    }
    free(fixed);
    return 0;
}
