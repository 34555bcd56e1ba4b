/* receipt.h - the reproducibility receipt (receipt.txt) of train, cv and tune outputs: CRC-32s
 * over what determines a result (loom version, model text, configuration without the command
 * line and thread count, the data's bytes) and over the weights it produced. Same inputs, same
 * hashes, on any thread count. Not installed. */
#ifndef LOOM_RECEIPT_H
#define LOOM_RECEIPT_H

#include "../model/model.h"

typedef struct {
    uint32_t inputs; /* version, model text, configuration, data */
    uint32_t data;   /* the training (and test) images and labels */
} receipt_in;

/* The input hashes; test may be NULL. */
receipt_in receipt_inputs(const char *model_text, const char *config, const loom_dataset *train,
                          const loom_dataset *test);
/* CRC-32 of a model's parameters and state. */
uint32_t receipt_weights(const loom_model *m);
/* Writes dir/receipt.txt: loom_version, inputs_crc32, data_crc32, then `extra` (lines of
 * "key=value\n", may be NULL) and weights_crc32. */
loom_status receipt_write(const char *dir, receipt_in in, const char *extra, uint32_t weights,
                          loom_error *err);

#endif
