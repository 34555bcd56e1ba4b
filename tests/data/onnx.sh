#!/bin/sh
# The ONNX door against onnxruntime (the "real data" test group): every zoo model, and three models
# that hold every other layer kind (residual blocks nested and with projections, standardize,
# avgpool, globalavgpool, batchnorm on vectors and sequences, the standalone activations, 'same'
# stride-2 padding, columns, bidirectional and stacked rnn/lstm/gru with return-sequences),
# trained briefly, exported with `loom export`,
# checked by ONNX's own checker (full_check), run in onnxruntime-node on the first 1,000 test
# images as raw pixels and compared with loom's probabilities: max |difference| <= 1e-5 and the
# same class for every image; five of them also quantized (loom quantize) and exported as ONNX
# integer operators (section 4). Also a safetensors export's header and a few tensors against the
# ONNX file. onnxruntime-node and python3-onnx missing is a failure: .ci/run installs them.
. "$(dirname "$0")/lib.inc"
need_data
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
CMP="$(dirname "$LOOM")/tests/onnx_compare"
ORT="$ROOT/tests/onnx/run_ort.js"
PY=/usr/bin/python3 # Debian's, where python3-onnx installs
N=1000
TOL=1e-5
IMAGES="$DATA/t10k-images-idx3-ubyte.gz"
[ -f "$IMAGES" ] || IMAGES="$DATA/t10k-images-idx3-ubyte"
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT

# 1. the other side is there
check "command -v node >/dev/null"
check "[ -f '$ROOT/tests/onnx/node_modules/onnxruntime-node/package.json' ]"
check "$PY -c 'import onnx' 2>/dev/null"
check "[ -x '$CMP' ]"
if [ "$fail" -gt 0 ]; then
    echo "onnxruntime-node (npm install --ignore-scripts --prefix tests/onnx), node or python3-onnx"
    echo "missing: .ci/run installs them"
    echo "$pass passed, $fail failed"; exit 1
fi

# 2. the extra models: every layer kind the zoo does not use
cat >"$T/kinds-image.txt" <<'SPEC'
conv 8 3x3 s2 same leaky_relu 0.1
batchnorm
avgpool 2
conv 8 3x3 same elu
sigmoid
globalavgpool
batchnorm
dense 16 tanh
elu 0.5
leaky_relu
dense 10 softmax
SPEC
cat >"$T/kinds-seq.txt" <<'SPEC'
columns
gru 16 return-sequences bidirectional
batchnorm
lstm 12 return-sequences bidirectional
rnn 8 return-sequences bidirectional activation relu
flatten
dropout 0.1
tanh
dense 10 softmax
SPEC
# residual blocks: identity and projection shortcuts (stride 2 with a channel change, and forced),
# a block nested in another, batchnorm and dropout inside, activations after the addition
cp "$(dirname "$0")/models/kinds-residual.txt" "$T/kinds-residual.txt"

# 3. each model: train, export, check, run, compare
export_check() { # name, model file
    name=$1; model=$2
    $LOOM export "$model" -o "$T/$name.onnx" 2>"$T/err"
    if [ $? -ne 0 ]; then bad "$name: export: $(cat "$T/err")"; return; fi
    if $PY -c "import onnx, sys; m = onnx.load(sys.argv[1]); onnx.checker.check_model(m, full_check=True)
meta = {p.key: p.value for p in m.metadata_props}
assert m.ir_version == 8 and m.opset_import[0].version == 13
assert '\"Ankle boot\"' in meta['class_names'] and meta['loom_version']" "$T/$name.onnx" 2>"$T/err"
    then ok; else bad "$name: onnx checker: $(tail -n 1 "$T/err")"; fi
    if ! node "$ORT" "$T/$name.onnx" "$IMAGES" $N "$T/$name.bin" >"$T/out" 2>"$T/err"; then
        bad "$name: onnxruntime: $(cat "$T/err")"; return
    fi
    line=$("$CMP" "$model" "$IMAGES" $N "$T/$name.bin" $TOL 2>&1)
    rc=$?
    echo "$name: $line"
    if [ $rc -eq 0 ]; then ok; else bad "$name: $line (tolerance $TOL)"; fi
}

train() { # name, model, extra flags
    name=$1; model=$2; shift 2
    $LOOM train "$model" --subset 500 --epochs 1 --no-plots --quiet --threads 2 --no-test \
        --out "$T/run-$name" "$@" >"$T/out" 2>"$T/err"
    if [ $? -ne 0 ]; then bad "$name: train: $(tail -n 1 "$T/err")"; return 1; fi
    return 0
}

for name in $($LOOM models | awk '{print $1}'); do
    train "$name" "$name" && export_check "$name" "$T/run-$name/model.loom"
done
train kinds-image "$T/kinds-image.txt" --standardize &&
    export_check kinds-image "$T/run-kinds-image/model.loom"
train kinds-seq "$T/kinds-seq.txt" && export_check kinds-seq "$T/run-kinds-seq/model.loom"
train kinds-residual "$T/kinds-residual.txt" &&
    export_check kinds-residual "$T/run-kinds-residual/model.loom"

# 4. int8 models (loom quantize) as ONNX integer operators: QuantizeLinear, ConvInteger /
# MatMulInteger, Cast, Mul, Add, the same int32 sums and float roundings as loom's int8 layers.
# Where only relu, pooling, flatten and dropout stand between the quantizers (mlp, cnn1,
# small-conv), every value is the same: probabilities within 1e-5, every class the same, as in
# fp32. drop-norm-l2 (batchnorm before its int8 convs: zero point 128) and the kinds model
# (standardize; leaky relu, elu, sigmoid, tanh, batchnorm before quantizers): onnxruntime's
# batchnorm and transcendental functions differ from loom's in the last bit of a float now and
# then, and a value that lands on a rounding boundary of the next quantizer then takes the
# neighbouring level, moving the probabilities by up to about 1e-3; every class must still agree.
for q in mlp cnn1 small-conv drop-norm-l2 kinds-image; do
    [ -f "$T/run-$q/model.loom" ] || { bad "$q: no trained model to quantize"; continue; }
    if ! $LOOM quantize "$T/run-$q/model.loom" -o "$T/$q-int8.loom" --calibrate 500 \
        >"$T/out" 2>"$T/err"; then
        bad "$q: quantize: $(tail -n 1 "$T/err")"; continue
    fi
    case $q in drop-norm-l2|kinds-*) TOL=2e-3 ;; *) TOL=1e-5 ;; esac
    export_check "$q-int8" "$T/$q-int8.loom"
    grep -q 'ConvInteger\|MatMulInteger' "$T/$q-int8.onnx" && ok ||
        bad "$q-int8: no integer operator in the ONNX file"
done
TOL=1e-5

# 5. safetensors: the header, and the first dense layer's weight against the ONNX initializer
$LOOM export "$T/run-mlp/model.loom" -o "$T/mlp.safetensors" 2>"$T/err"
check '[ $? -eq 0 ]'
if $PY - "$T/mlp.safetensors" "$T/mlp.onnx" <<'PY' 2>"$T/err"; then ok; else bad "safetensors: $(tail -n 1 "$T/err")"; fi
import json, struct, sys
import numpy as np
import onnx
from onnx import numpy_helper
raw = open(sys.argv[1], 'rb').read()
n = struct.unpack('<Q', raw[:8])[0]
head = json.loads(raw[8:8 + n])
assert head['__metadata__']['format'] == 'pt'
names = [k for k in head if k != '__metadata__']
end = 0
for k in sorted(names, key=lambda k: head[k]['data_offsets'][0]):
    a, b = head[k]['data_offsets']
    assert a == end and head[k]['dtype'] == 'F32', k
    end = b
assert 8 + n + end == len(raw)
def tensor(k):
    a, b = head[k]['data_offsets']
    return np.frombuffer(raw[8 + n + a:8 + n + b], '<f4').reshape(head[k]['shape'])
# mlp: flatten(0) dropout(1) Linear(2) ReLU(3) dropout(4) Linear(5) ...
assert head['2.weight']['shape'] == [256, 784] and head['5.weight']['shape'] == [128, 256]
inits = {t.name: numpy_helper.to_array(t) for t in onnx.load(sys.argv[2]).graph.initializer}
assert np.array_equal(tensor('2.weight'), inits['l3_weight'].T)
assert np.array_equal(tensor('5.bias'), inits['l5_bias'])
PY
$LOOM export "$T/run-mlp/model.loom" -o "$T/x.bin" 2>"$T/err"
check "[ \$? -eq 2 ] && [ \$(wc -l < '$T/err') -eq 1 ] && [ ! -e '$T/x.bin' ]"
$LOOM export "$T/run-mlp/model.loom" -o "$T/y.onnx" --format tflite 2>"$T/err"
check "[ \$? -eq 2 ] && grep -q 'onnx' '$T/err'"
$LOOM export "$T/run-mlp/model.loom" --int8 -o "$T/w.onnx" 2>"$T/err"
check "[ \$? -eq 2 ] && grep -q 'loom quantize' '$T/err' && [ \$(wc -l < '$T/err') -eq 1 ] && [ ! -e '$T/w.onnx' ]"
$LOOM export "$T/mlp-int8.loom" --int8 -o "$T/w.onnx" 2>"$T/err"
check "[ \$? -eq 0 ] && [ -s '$T/w.onnx' ]"
$LOOM export "$T/nothing.loom" -o "$T/z.onnx" 2>"$T/err"
check "[ \$? -eq 1 ] && [ \$(wc -l < '$T/err') -eq 1 ] && [ ! -e '$T/z.onnx' ]"

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
