/* zoo.c - the built-in models of ../shared/SEED-MODELS.md as model-language text, with the
 * training defaults loom uses for each (its study's optimizer and batch size unless better
 * ones were measured; see docs/RESULTS.md); and loom_model_resolve: a zoo name or a model-text
 * file to its text. */
#include "../core/core.h"

#include <sys/stat.h>

static const loom_zoo_entry zoo[] = {
    {"mlp", "MLP with dropouts (Keras, tuned)",
     "flatten\ndropout 0.2\ndense 256 relu\ndropout 0.3\ndense 128 relu\ndropout 0.3\n"
     "dense 64 relu\ndropout 0.3\ndense 32 relu\ndense 10 softmax\n",
     "adam", 1e-3, 64, 40, 0.0, "cosine", 0, "88.33% (MLP 256-128-100, benchmark table)", "", NULL},
    {"conv-maxpool", "Conv-MaxPool CNN",
     "conv 32 3x3 relu\nmaxpool 2\nconv 64 3x3 relu\nmaxpool 2\nflatten\ndense 128 relu\n"
     "dense 10 softmax\n",
     "adam", 3e-3, 64, 5, 0.0, "cosine", 0, "90.57% acc, 90.51% F1", "", NULL},
    {"strided-conv", "Strided-Conv CNN (pooling replaced by stride-2 convs)",
     "conv 32 3x3 relu\nconv 32 3x3 s2 relu\nconv 64 3x3 relu\nconv 64 3x3 s2 relu\nflatten\n"
     "dense 128 relu\ndense 10 softmax\n",
     "adam", 1e-3, 64, 15, 0.0, "cosine", 0, "90.67% acc, 90.61% F1", "flip", NULL},
    {"small-conv", "Small-Conv CNN",
     "conv 16 3x3 relu\nconv 16 3x3 s2 relu\nconv 32 3x3 relu\nconv 32 3x3 s2 relu\nflatten\n"
     "dense 64 relu\ndense 10 softmax\n",
     "adam", 1e-3, 64, 15, 0.0, "cosine", 0, NULL, "", NULL},
    {"drop-norm-l2", "Drop-Norm-L2 CNN, best of its study",
     "conv 32 3x3 same relu\nbatchnorm\nconv 32 3x3 same relu\nbatchnorm\nmaxpool 2\n"
     "dropout 0.25\nconv 64 3x3 same relu\nbatchnorm\nconv 64 3x3 same relu\nbatchnorm\n"
     "maxpool 2\ndropout 0.25\nflatten\ndense 256 relu\nbatchnorm\ndropout 0.5\n"
     "dense 10 softmax\n",
     "adam", 1e-3, 64, 25, 1e-4, "cosine", 0, "91.14% acc, 91.13% F1", "flip", NULL},
    {"keras-v1", "Keras CNN Version 1",
     "conv 8 3x3 relu\nconv 24 3x3 relu\nconv 48 3x3 relu\nflatten\ndense 100 relu\n"
     "dense 10 softmax\n",
     "adam", 1e-3, 100, 20, 0.0, "cosine", 0, "91.67% validation", "flip,shift:2", NULL},
    {"keras-v2", "Keras CNN Version 2",
     "conv 16 3x3 s2 relu\ndropout 0.5\nconv 48 3x3 s2 relu\ndropout 0.5\nconv 96 3x3 s2 relu\n"
     "flatten\ndense 100 relu\ndense 10 softmax\n",
     "adam", 1e-3, 100, 30, 0.0, "cosine", 0, "~86% validation", "", NULL},
    {"cnn1", "Keras 1_Layer CNN",
     "conv 32 3x3 relu\nmaxpool 2\ndropout 0.25\nflatten\ndense 32 relu\ndense 10 softmax\n",
     "adam", 1e-3, 64, 20, 0.0, "cosine", 0, NULL, "", NULL},
    {"cnn2", "Keras 2_Layer CNN",
     "conv 32 3x3 relu\nmaxpool 2\ndropout 0.25\nconv 64 3x3 relu\ndropout 0.25\nflatten\n"
     "dense 64 relu\ndense 10 softmax\n",
     "adam", 1e-3, 64, 20, 0.0, "cosine", 0, NULL, "flip", NULL},
    {"cnn3", "Keras 3_layer CNN",
     "conv 32 3x3 relu\nmaxpool 2\ndropout 0.25\nconv 64 3x3 relu\ndropout 0.25\n"
     "conv 128 3x3 relu\ndropout 0.25\nflatten\ndense 128 relu\ndropout 0.5\n"
     "dense 10 softmax\n",
     "adam", 1e-3, 64, 20, 0.0, "cosine", 0, NULL, "", NULL},
    {"rnn", "row-by-row Elman RNN, tanh, hidden 128", "rows\nrnn 128\ndense 10 softmax\n", "adam",
     1e-3, 64, 40, 0.0, "cosine", 0, "82.52% (5-fold CV mean validation); 67.52% after 6 epochs",
     "", NULL},
    {"rnn2", "2 stacked RNN layers", "rows\nrnn 128 return-sequences\nrnn 128\ndense 10 softmax\n",
     "adam", 1e-3, 64, 30, 0.0, "cosine", 0, NULL, "", NULL},
    /* the gated cells overfit these rows (train 94-97%, validation 90.5-91%): recurrent dropout
     * (Keras's recurrent_dropout, no parameters) instead of flips and shifts: lstm 90.15% test
     * with flip,shift:2 -> 90.92% with recurrent-dropout 0.25 (docs/RESULTS.md) */
    {"lstm", "row-by-row LSTM, hidden 128",
     "rows\nlstm 128 recurrent-dropout 0.25\ndense 10 softmax\n", "adam", 2e-3, 64, 50, 0.0,
     "cosine", 0, "89.93% (5-fold CV mean validation, best fold 90.55%)", "", NULL},
    {"lstm2", "2 stacked LSTM layers",
     "rows\nlstm 128 return-sequences recurrent-dropout 0.25\nlstm 128 recurrent-dropout 0.25\n"
     "dense 10 softmax\n",
     "adam", 2e-3, 64, 50, 0.0, "cosine", 0, NULL, "", NULL},
    {"gru", "row-by-row GRU, hidden 128",
     "rows\ngru 128 recurrent-dropout 0.25\ndense 10 softmax\n", "adam", 2e-3, 64, 50, 0.0,
     "cosine", 0, "89.7% (GRU+SVM with dropout, benchmark table)", "", NULL},
    /* a small ResNet (He et al. 2016, the CIFAR form): three stages of two blocks, the second and
     * third opening with a stride-2 block whose shortcut is a 1x1 projection; trained with bf16
     * products in its 3x3 stride-1 convolutions (about 1.5x the fp32 speed on one core, the
     * same accuracy on a short run: docs/BENCHMARKS.md), --precision fp32 for the plain path */
    {"resnet", "small residual network, 3 stages of 2 blocks (16/32/64 filters)",
     "conv 16 3x3 same\nbatchnorm\nrelu\n"
     "repeat 2 {\n"
     "    residual { conv 16 3x3 same, batchnorm, relu, conv 16 3x3 same, batchnorm } relu\n"
     "}\n"
     "residual { conv 32 3x3 s2 same, batchnorm, relu, conv 32 3x3 same, batchnorm } relu\n"
     "residual { conv 32 3x3 same, batchnorm, relu, conv 32 3x3 same, batchnorm } relu\n"
     "residual { conv 64 3x3 s2 same, batchnorm, relu, conv 64 3x3 same, batchnorm } relu\n"
     "residual { conv 64 3x3 same, batchnorm, relu, conv 64 3x3 same, batchnorm } relu\n"
     "globalavgpool\ndense 10 softmax\n",
     "sgd", 0.1, 128, 30, 0.0, "cosine:2", 0, "94.9% (ResNet18 with augmentation, benchmark table)",
     "flip,shift:2,erase",
     "nesterov=1 momentum=0.9 weight_decay=5e-4 label_smoothing=0.1 precision=bf16"},
};

int loom_zoo_count(void) { return (int)(sizeof zoo / sizeof *zoo); }

const loom_zoo_entry *loom_zoo_get(int i) {
    return i >= 0 && i < loom_zoo_count() ? &zoo[i] : NULL;
}

const loom_zoo_entry *loom_zoo_find(const char *name) {
    for (int i = 0; i < loom_zoo_count(); i++)
        if (strcmp(zoo[i].name, name) == 0)
            return &zoo[i];
    return NULL;
}

loom_status loom_model_resolve(const char *name, char **text_out, const loom_zoo_entry **zoo_out,
                               loom_error *err) {
    *text_out = NULL;
    if (zoo_out)
        *zoo_out = NULL;
    const loom_zoo_entry *z = loom_zoo_find(name);
    if (z) {
        *text_out = strdup(z->text);
        if (zoo_out)
            *zoo_out = z;
        return *text_out ? LOOM_OK : loom_error_set(err, LOOM_ERR_NOMEM, "out of memory");
    }
    struct stat st;
    if (stat(name, &st) != 0)
        return loom_error_set(err, LOOM_ERR_ARG,
                              "unknown model '%s': not a zoo name (see 'loom models') and no "
                              "such file",
                              name);
    return loom_file_read_all(name, text_out, NULL, err);
}
