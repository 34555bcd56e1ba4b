#!/bin/sh
# The C export against loom itself on real data: every zoo model (and four models that use the
# layer kinds the zoo does not: residual blocks nested and with projections, standardize, batchnorm folded and applied, strides, padding,
# pooling windows, every activation, columns, bidirectional and stacked cells) is trained
# briefly, exported by loom_export_c (tests/data/cexport_tool.c on libloom.a), compiled alone as
# C99 with nothing but -lm, and run on the first 1,000 test images by tests/data/cexport_main.c:
# the same class for every image and probabilities within 1e-5 of loom's. One model's C also
# runs under AddressSanitizer and UBSan.
. "$(dirname "$0")/lib.inc"
need_data
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
BUILD=$(dirname "$LOOM")
N=1000
IMAGES="$DATA/t10k-images-idx3-ubyte.gz"
[ -f "$IMAGES" ] || IMAGES="$DATA/t10k-images-idx3-ubyte"
CC=${CC:-cc}
STRICT="-std=c99 -O2 -Wall -Wextra -Werror -pedantic"

LIBS="$(pkg-config --libs openblas zlib libcjson plplot libpng libjpeg ompi-c) -lm"
$CC -O2 -fopenmp -Iinclude -o "$T/tool" tests/data/cexport_tool.c "$BUILD/libloom.a" $LIBS \
    2>"$T/cc-tool.log"
check '[ $? -eq 0 ]' || cat "$T/cc-tool.log"

cat >"$T/kinds-conv.txt" <<'M'
conv 8 3x3 s2 same
batchnorm
leaky_relu 0.1
conv 12 2x3 same elu
avgpool 2 stride 1
maxpool 3x2
conv 16 1x1 tanh
globalavgpool
dense 16
batchnorm eps 0.01
sigmoid
dense 10 softmax
M
cat >"$T/kinds-gated.txt" <<'M'
columns
gru 24 return-sequences bidirectional
lstm 16 bidirectional
dense 10 softmax
M
cat >"$T/kinds-rnn.txt" <<'M'
rows
rnn 20 return-sequences bidirectional activation relu
batchnorm
flatten
dropout 0.1
dense 10 softmax
M
cp "$(dirname "$0")/models/kinds-residual.txt" "$T/kinds-residual.txt"

# Each model in two steps: train, export and loom's reference output (prepare), then compile, run
# and compare (finish: in the background, while the next model trains; one at a time, as the
# compiler takes about 2.6 GB for keras-v1's 2.3 million weights). NAMES collects the models.
NAMES=""
BG=""
prepare() {
    name=$1; model=$2; shift 2
    d="$T/$name"
    mkdir -p "$d/c"
    if ! $LOOM train "$model" --subset 500 --epochs 1 --no-plots --quiet --threads 2 --no-test \
        --out "$d/run" "$@" >"$d/train.log" 2>&1; then
        bad "$name: training failed"; cat "$d/train.log"; return 1
    fi
    "$T/tool" export "$d/run/model.loom" "$d/c" model 2>"$d/export.log"
    check "[ -s '$d/c/model.c' ] && [ -s '$d/c/model.h' ]" || { cat "$d/export.log"; return 1; }
    cp tests/data/cexport_main.c "$d/c/main.c"
    "$T/tool" ref "$d/run/model.loom" "$IMAGES" $N "$d/images.u8" "$d/ref.txt"
    check '[ $? -eq 0 ]'
}
finish() {
    d="$T/$1"
    t0=$(date +%s)
    $CC $STRICT -o "$d/prog" "$d/c/model.c" "$d/c/main.c" -lm 2>"$d/cc.log"
    echo $? >"$d/cc.rc"
    echo $(($(date +%s) - t0)) >"$d/cc.seconds"
    "$d/prog" "$d/images.u8" $N >"$d/c.txt" 2>"$d/run.log"
    echo $? >"$d/run.rc"
    "$T/tool" compare "$d/ref.txt" "$d/c.txt" $N >"$d/compare.txt"
    echo $? >"$d/compare.rc"
}
export_one() {
    prepare "$@" || return
    [ -n "$BG" ] && wait "$BG"
    finish "$1" &
    BG=$!
    NAMES="$NAMES $1"
}

for m in $($LOOM models | awk 'NF { print $1 }'); do
    export_one "$m" "$m"
done
export_one mlp-standardize mlp --standardize
export_one kinds-conv "$T/kinds-conv.txt"
export_one kinds-gated "$T/kinds-gated.txt"
export_one kinds-rnn "$T/kinds-rnn.txt"
export_one kinds-residual "$T/kinds-residual.txt"
wait

n_zoo=0
for name in $NAMES; do
    d="$T/$name"
    check "[ \"\$(cat '$d/cc.rc')\" = 0 ]" || head -n 20 "$d/cc.log"
    check "[ \"\$(cat '$d/run.rc')\" = 0 ]" || head -n 5 "$d/run.log"
    check "[ \"\$(cat '$d/compare.rc')\" = 0 ]"
    weights=$(sed -n 's/^#define MODEL_WEIGHT_BYTES \([0-9]*\)L$/\1/p' "$d/c/model.h")
    work=$(sed -n 's/^#define MODEL_WORK_BYTES \([0-9]*\)L$/\1/p' "$d/c/model.h")
    echo "$name: $(cat "$d/compare.txt"); weights $weights B, work $work B," \
        "compiled in $(cat "$d/cc.seconds") s"
    case $name in mlp-standardize|kinds-*) ;; *) n_zoo=$((n_zoo + 1)) ;; esac
done
check "[ $n_zoo -eq $($LOOM models | awk 'NF' | wc -l) ]"
check "grep -q 'model_standardize(' '$T/mlp-standardize/c/model.c'"
check "grep -q 'define MODEL_HAS_PREDICT' '$T/mlp-standardize/c/model.h'"
check "grep -q 'folded into the layer before' '$T/kinds-conv/c/model.c'"
check "grep -q 'model_affine(' '$T/kinds-rnn/c/model.c'"
check "grep -q 'model_add(' '$T/kinds-residual/c/model.c'"

# the sanitizers over every helper: the three kinds models on 50 images
for name in kinds-conv kinds-gated kinds-rnn kinds-residual; do
    d="$T/$name"
    $CC -std=c99 -O1 -g -fsanitize=address,undefined -fno-sanitize-recover=undefined \
        -o "$d/prog-san" "$d/c/model.c" "$d/c/main.c" -lm 2>"$d/cc-san.log"
    check '[ $? -eq 0 ]' || head -n 20 "$d/cc-san.log"
    "$d/prog-san" "$d/images.u8" 50 >"$d/c-san.txt" 2>"$d/san.log"
    check '[ $? -eq 0 ]' || head -n 20 "$d/san.log"
    check "'$T/tool' compare '$d/ref.txt' '$d/c-san.txt' 50 >/dev/null"
done

# a bad directory: one line, nothing written
"$T/tool" export "$T/cnn1/run/model.loom" "$T/missing/dir" model 2>"$T/err"
check '[ $? -ne 0 ] && [ $(wc -l <"$T/err") -eq 1 ] && grep -q "not a directory" "$T/err"'
check "[ ! -e '$T/missing' ]"

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
