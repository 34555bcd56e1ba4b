/* c_export.h - what the C export (c_export.c) shares with the text it writes
 * (c_export_text.c): the layer kinds as the export sees them and the generated helpers. Internal
 * to the library. */
#ifndef LOOM_C_EXPORT_H
#define LOOM_C_EXPORT_H

typedef enum {
    X_DENSE = 0,
    X_CONV,
    X_MAXPOOL,
    X_AVGPOOL,
    X_GAP,
    X_BN,
    X_PASS, /* flatten, dropout, rows: the values stay as they are */
    X_ACT,
    X_STD,
    X_REC,
    X_COLUMNS,
    X_RES_BEGIN, /* a residual block's input kept in its stash buffer (one per nesting depth) */
    X_RES_END,   /* the block's output: + the stash (or the projection), then act */
} xkind;

/* The generated helpers, one per kind up to X_COLUMNS ("" for X_PASS), in that order. */
extern const char *const c_helper_text[X_COLUMNS + 1];
/* Residual blocks: copy and add. */
extern const char c_residual_text[];
/* The softmax closing every model. */
extern const char c_softmax_text[];
/* int8 layers: the quantizer and the epilogue; the int8 dense; the int8 conv. */
extern const char c_int8_text[];
extern const char c_int8_dense_text[];
extern const char c_int8_conv_text[];

#endif
