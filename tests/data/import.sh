#!/bin/sh
# The doors back in (loom import) against PyTorch (the "real data" test group):
# tests/import/torch_models.py builds conv-maxpool, drop-norm-l2, an LSTM and a GRU in PyTorch,
# trains each a few steps on Fashion-MNIST, exports it with torch.onnx.export (opset 13) and
# writes PyTorch's own probabilities on the first 1,000 test images, and the CNNs' weights as
# safetensors; loom imports each and must agree: max |difference| <= 1e-5, the same class for
# every image. Then every zoo model, trained briefly, goes loom -> ONNX -> loom and loom ->
# safetensors -> loom through the CLI with the same model text and bit-identical parameters and
# state (compared as the bytes of a safetensors export, which holds all three). python3-torch
# missing is a failure: .ci/run installs it.
. "$(dirname "$0")/lib.inc"
need_data
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
CMP="$(dirname "$LOOM")/tests/onnx_compare"
PY=/usr/bin/python3 # Debian's, where python3-torch installs
N=1000
TOL=1e-5
IMAGES="$DATA/t10k-images-idx3-ubyte.gz"
[ -f "$IMAGES" ] || IMAGES="$DATA/t10k-images-idx3-ubyte"
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT

# 1. the other side is there
check "$PY -c 'import torch' 2>/dev/null"
check "[ -x '$CMP' ]"
if [ "$fail" -gt 0 ]; then
    echo "python3-torch or $CMP missing: .ci/run installs python3-torch (.ci/packages)"
    echo "$pass passed, $fail failed"; exit 1
fi

# 2. PyTorch's models
if $PY "$ROOT/tests/import/torch_models.py" "$T" "$DATA" >"$T/py.out" 2>"$T/py.err"; then
    ok; cat "$T/py.out"
else
    bad "torch_models.py: $(grep -v -i warn "$T/py.err" | tail -n 3)"
fi
compare() { # name, how, model file
    line=$("$CMP" "$3" "$IMAGES" $N "$T/$1.bin" $TOL 2>&1)
    rc=$?
    echo "$1 ($2): $line"
    if [ $rc -eq 0 ]; then ok; else bad "$1 ($2): $line (tolerance $TOL)"; fi
}
for name in conv-maxpool drop-norm-l2 lstm gru; do
    if $LOOM import "$T/$name.onnx" -o "$T/$name.loom" 2>"$T/err"; then
        ok; compare "$name" onnx "$T/$name.loom"
    else
        bad "$name: import: $(cat "$T/err")"
    fi
done
for name in conv-maxpool drop-norm-l2; do
    if $LOOM import "$name" --weights "$T/$name.safetensors" -o "$T/$name-st.loom" 2>"$T/err"
    then
        ok; compare "$name" safetensors "$T/$name-st.loom"
    else
        bad "$name: import --weights: $(cat "$T/err")"
    fi
done
# loom -> PyTorch: loom's safetensors export of each zoo CNN (the model its weights were imported
# into, dropouts and all, as PyTorch's nn.Sequential has them) loads into PyTorch's own module
# (load_state_dict, strict) and gives loom's probabilities
for name in conv-maxpool drop-norm-l2; do
    $LOOM export "$T/$name-st.loom" -o "$T/$name-loom.safetensors" 2>"$T/err" ||
        bad "$name: export: $(cat "$T/err")"
done
if PYTHONPATH="$ROOT/tests/import" $PY "$ROOT/tests/import/torch_load.py" "$T" "$DATA" \
    conv-maxpool drop-norm-l2 >"$T/py2.out" 2>"$T/py2.err"; then
    ok
    for name in conv-maxpool drop-norm-l2; do
        line=$("$CMP" "$T/$name-st.loom" "$IMAGES" $N "$T/$name-loom.bin" $TOL 2>&1)
        rc=$?
        echo "$name (loom's export in PyTorch): $line"
        if [ $rc -eq 0 ]; then ok; else bad "$name (loom's export in PyTorch): $line"; fi
    done
else
    bad "torch_load.py: $(grep -v -i warn "$T/py2.err" | tail -n 3)"
fi

# loom -> PyTorch with residual blocks: the doors' residual test model (identity and projection
# shortcuts, nesting, a fused activation inside, dropout) and the zoo's resnet, trained briefly
# (so the batch statistics are not the initial ones), exported as safetensors and loaded into
# PyTorch's modules (a Residual module: body.<j>, proj; TensorFlow's same padding), strict
cp "$(dirname "$0")/models/kinds-residual.txt" "$T/kinds-residual.txt"
for name in kinds-residual resnet; do
    model=$name; [ "$name" = kinds-residual ] && model="$T/kinds-residual.txt"
    if $LOOM train "$model" --subset 300 --epochs 1 --batch 50 --no-plots --quiet --threads 2 \
        --no-test --out "$T/res-$name" >"$T/out" 2>"$T/err" &&
        $LOOM export "$T/res-$name/model.loom" -o "$T/$name-loom.safetensors" 2>"$T/err"; then
        ok
    else
        bad "$name: train or export: $(tail -n 1 "$T/err")"
    fi
done
if PYTHONPATH="$ROOT/tests/import" $PY "$ROOT/tests/import/torch_load.py" "$T" "$DATA" \
    kinds-residual resnet >"$T/py3.out" 2>"$T/py3.err"; then
    ok
    for name in kinds-residual resnet; do
        line=$("$CMP" "$T/res-$name/model.loom" "$IMAGES" $N "$T/$name-loom.bin" $TOL 2>&1)
        rc=$?
        echo "$name (loom's export in PyTorch): $line"
        if [ $rc -eq 0 ]; then ok; else bad "$name (loom's export in PyTorch): $line"; fi
    done
else
    bad "torch_load.py (residual): $(grep -v -i warn "$T/py3.err" | tail -n 3)"
fi

# 3. refused: an op loom lacks, named in one line; a truncated file; lying safetensors
$LOOM import "$T/selu.onnx" -o "$T/selu.loom" 2>"$T/err"
check "[ \$? -eq 1 ] && [ \$(wc -l < '$T/err') -eq 1 ] && grep -q '(Selu): loom has no layer for Selu' '$T/err' && [ ! -e '$T/selu.loom' ]"
head -c 5000 "$T/conv-maxpool.onnx" >"$T/cut.onnx"
$LOOM import "$T/cut.onnx" -o "$T/cut.loom" 2>"$T/err"
check "[ \$? -eq 1 ] && [ \$(wc -l < '$T/err') -eq 1 ] && [ ! -e '$T/cut.loom' ]"
$LOOM import mlp --weights "$T/conv-maxpool.safetensors" -o "$T/lie.loom" 2>"$T/err"
check "[ \$? -eq 1 ] && [ \$(wc -l < '$T/err') -eq 1 ] && grep -q \"tensor '\" '$T/err'"
$LOOM import "$T/conv-maxpool.onnx" 2>"$T/err"
check "[ \$? -eq 2 ]"

# 4. every zoo model: loom -> ONNX -> loom and loom -> safetensors -> loom, bit for bit
n_same=0
for name in $($LOOM models | awk '{print $1}'); do
    $LOOM train "$name" --subset 200 --epochs 1 --no-plots --quiet --threads 2 --no-test \
        --out "$T/run-$name" >"$T/out" 2>"$T/err" || { bad "$name: train: $(tail -n 1 "$T/err")"; continue; }
    m="$T/run-$name/model.loom"
    if $LOOM summary "$name" 2>/dev/null | grep -q residual; then
        # blocks leave loom as ONNX (Add nodes) but do not come back from it (one line); they
        # do come back from safetensors, bit for bit
        $LOOM export "$m" -o "$T/a.onnx" && ! $LOOM import "$T/a.onnx" -o "$T/b.loom" 2>"$T/err"
        check "[ \$(wc -l < '$T/err') -eq 1 ] && grep -q '(Add)' '$T/err'"
        if $LOOM export "$m" -o "$T/a.safetensors" &&
            $LOOM import "$name" --weights "$T/a.safetensors" -o "$T/c.loom" &&
            $LOOM export "$T/c.loom" -o "$T/c.safetensors" 2>"$T/err" &&
            cmp -s "$T/a.safetensors" "$T/c.safetensors"
        then ok; else bad "$name: safetensors round trip differs or fails: $(cat "$T/err")"; fi
        continue
    fi
    if $LOOM export "$m" -o "$T/a.onnx" && $LOOM import "$T/a.onnx" -o "$T/b.loom" &&
        $LOOM export "$m" -o "$T/a.safetensors" && $LOOM export "$T/b.loom" -o "$T/b.safetensors" &&
        $LOOM import "$name" --weights "$T/a.safetensors" -o "$T/c.loom" &&
        $LOOM export "$T/c.loom" -o "$T/c.safetensors" 2>"$T/err" &&
        cmp -s "$T/a.safetensors" "$T/b.safetensors" && cmp -s "$T/a.safetensors" "$T/c.safetensors"
    then
        ok; n_same=$((n_same + 1))
    else
        bad "$name: round trip differs or fails: $(cat "$T/err")"
    fi
done
echo "zoo round trips bit-identical (onnx and safetensors): $n_same"
check "[ $n_same -ge 15 ]"

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
