#!/bin/sh
# int8 post-training quantization on real data: five zoo models (dense; conv with and without
# padding, strides, pooling, dropout; a recurrent model whose dense head is quantized) trained briefly,
# quantized (loom quantize, 1,000 stratified calibration images), and evaluated on the test set:
# accuracy within 0.3 points of fp32, the file at most 30% of the fp32 file (rnn: its recurrent
# kernels stay fp32, so only its dense head shrinks: not checked for size). Then bad input: a
# quantized model again, --calibrate out of range, calibration images of the wrong shape: one line
# each, a failing exit status, no file left.
. "$(dirname "$0")/lib.inc"
need_data
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT

for m in mlp small-conv conv-maxpool cnn1 rnn; do
    "$LOOM" train "$m" --subset 5000 --epochs 2 --no-plots --quiet --out "$T/$m" >/dev/null 2>&1
    check "[ -f '$T/$m/model.loom' ]" || continue
    "$LOOM" quantize "$T/$m/model.loom" -o "$T/$m-int8.loom" >"$T/q.log" 2>&1
    check "[ -f '$T/$m-int8.loom' ]" || { cat "$T/q.log"; continue; }
    a=$("$LOOM" eval "$T/$m/model.loom" | sed -n '1s/.*accuracy \([0-9.]*\)%.*/\1/p')
    b=$("$LOOM" eval "$T/$m-int8.loom" | sed -n '1s/.*accuracy \([0-9.]*\)%.*/\1/p')
    sa=$(wc -c <"$T/$m/model.loom")
    sb=$(wc -c <"$T/$m-int8.loom")
    echo "$m: fp32 $a%, int8 $b%, file $sa -> $sb bytes"
    check "awk -v a='$a' -v b='$b' 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(a > 0 && d <= 0.3) }'"
    [ "$m" = rnn ] || check "[ $((sb * 100)) -le $((sa * 30)) ]"
done

# predict reads an int8 model like any other
"$LOOM" predict "$T/mlp-int8.loom" --idx "$DATA/t10k-images-idx3-ubyte.gz" --top 1 >"$T/p.txt" 2>&1
check "[ \$(wc -l <'$T/p.txt') -ge 10000 ]"

# bad input
"$LOOM" quantize "$T/mlp-int8.loom" -o "$T/again.loom" 2>"$T/e1"
check "[ $? -ne 0 ] && grep -q 'already quantized' '$T/e1' && [ \$(wc -l <'$T/e1') -eq 1 ] && [ ! -e '$T/again.loom' ]"
"$LOOM" quantize "$T/mlp/model.loom" -o "$T/n.loom" --calibrate 70000 2>"$T/e2"
check "[ $? -ne 0 ] && grep -q 'calibrate: 70000 images' '$T/e2' && [ ! -e '$T/n.loom' ]"
"$LOOM" quantize "$T/mlp/model.loom" -o "$T/n.loom" --calibrate 0 2>"$T/e3"
check "[ $? -eq 2 ] && [ \$(wc -l <'$T/e3') -eq 1 ] && [ ! -e '$T/n.loom' ]"
printf 'flatten\ndense 10 softmax\n' >"$T/small.txt"
"$LOOM" train "$T/small.txt" --subset 500 --epochs 1 --no-plots --quiet --out "$T/small" >/dev/null 2>&1
mkdir -p "$T/wrong"
python3 - "$T/wrong" <<'PY'
import gzip, struct, sys
d = sys.argv[1]
n = 20
with gzip.open(d + "/train-images-idx3-ubyte.gz", "wb") as f:
    f.write(struct.pack(">IIII", 2051, n, 14, 14) + bytes(n * 14 * 14))
with gzip.open(d + "/train-labels-idx1-ubyte.gz", "wb") as f:
    f.write(struct.pack(">II", 2049, n) + bytes(i % 10 for i in range(n)))
PY
"$LOOM" quantize "$T/small/model.loom" -o "$T/w.loom" --data "$T/wrong" --calibrate 10 2>"$T/e4"
check "[ $? -ne 0 ] && grep -q 'expects 28x28x1 images, the calibration data has 14x14x1' '$T/e4' && [ ! -e '$T/w.loom' ]"
ls "$T" | grep -q 'tmp' && bad "a temporary file was left in $T"
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
