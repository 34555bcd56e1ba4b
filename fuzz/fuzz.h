/* fuzz.h - what the text harnesses share: the fuzzer's bytes as a NUL-terminated string. */
#ifndef LOOM_FUZZ_H
#define LOOM_FUZZ_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A malloc'd copy of data[0..size) with a terminating NUL, or NULL when size exceeds max (longer
 * inputs only slow the fuzzer down) or memory runs out. The caller frees it. */
static inline char *fuzz_text(const uint8_t *data, size_t size, size_t max) {
    if (size > max)
        return NULL;
    char *text = malloc(size + 1);
    if (text) {
        memcpy(text, data, size);
        text[size] = '\0';
    }
    return text;
}

#endif
