/* registry.c - the table of layer kinds of the model language: first word -> parser.
 * Adding a kind: one file in src/layers/, one line here, one gradient-check case. */
#include "layer.h"

loom_status dense_parse(layer *l, int argc, char **argv, loom_error *err);
loom_status flatten_parse(layer *l, int argc, char **argv, loom_error *err);
loom_status dropout_parse(layer *l, int argc, char **argv, loom_error *err);
loom_status activation_parse(layer *l, int argc, char **argv, loom_error *err);
loom_status standardize_parse(layer *l, int argc, char **argv, loom_error *err);
loom_status conv_parse(layer *l, int argc, char **argv, loom_error *err);
loom_status pool_parse(layer *l, int argc, char **argv, loom_error *err);
loom_status batchnorm_parse(layer *l, int argc, char **argv, loom_error *err);
loom_status recurrent_parse(layer *l, int argc, char **argv, loom_error *err);
loom_status sequence_parse(layer *l, int argc, char **argv, loom_error *err);
loom_status int8_parse(layer *l, int argc, char **argv, loom_error *err);

const layer_kind_entry loom_layer_kinds[] = {
    {"dense", dense_parse},
    {"flatten", flatten_parse},
    {"dropout", dropout_parse},
    {"relu", activation_parse},
    {"leaky_relu", activation_parse},
    {"elu", activation_parse},
    {"tanh", activation_parse},
    {"sigmoid", activation_parse},
    {"standardize", standardize_parse},
    {"conv", conv_parse},
    {"maxpool", pool_parse},
    {"avgpool", pool_parse},
    {"globalavgpool", pool_parse},
    {"batchnorm", batchnorm_parse},
    {"rnn", recurrent_parse},
    {"lstm", recurrent_parse},
    {"gru", recurrent_parse},
    {"rows", sequence_parse},
    {"columns", sequence_parse},
    {"int8", int8_parse},
    {NULL, NULL},
};
