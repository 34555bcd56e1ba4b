/* fuzz_study.c - libFuzzer harness for the study-file parser (study_parse_text, the parser
 * `loom study` runs before any step). The input is the study text (at most 16 KiB). A study
 * that parses has 1 to 64 steps, and parsing it twice gives the same count; an error says why
 * on one line and names the source. */
#include "../cli/study.h"
#include "fuzz.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_TEXT 16384

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *text = fuzz_text(data, size, MAX_TEXT);
    if (!text)
        return 0;
    loom_error err = {0};
    int n = -1;
    loom_status st = study_parse_text(text, "fuzz.study", &n, &err);
    if (st != LOOM_OK) {
        if (err.status != st || strncmp(err.msg, "fuzz.study", 10) != 0 || strchr(err.msg, '\n'))
            abort(); /* one line, naming the file */
    } else {
        int again = -1;
        if (n < 1 || n > 64 || study_parse_text(text, "fuzz.study", &again, &err) != LOOM_OK ||
            again != n)
            abort();
    }
    free(text);
    return 0;
}
