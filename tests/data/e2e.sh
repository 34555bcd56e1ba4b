#!/bin/sh
# End to end on the real Fashion-MNIST files (the "real data" test group): train a zoo CNN on
# a stratified subset for one epoch through the CLI, require a clear test accuracy, check that
# `loom eval` of the saved file reproduces it, and that bad input fails with one line, exit != 0.
. "$(dirname "$0")/lib.inc"
need_data
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT

# 1. train conv-maxpool on 12000 images for two epochs
$LOOM train conv-maxpool --subset 12000 --epochs 2 --out "$T/run" --seed 1 >"$T/out" 2>"$T/err"
check '[ $? -eq 0 ]'
cat "$T/out"
for f in model.loom config.txt history.csv train.log metrics.json confusion.csv summary.txt \
    receipt.txt predictions.csv learning_curves.png confusion.png; do
    check "[ -s '$T/run/$f' ]"
done
acc=$(sed -n 's/.*test accuracy \([0-9.]*\)%.*/\1/p' "$T/out")
check "[ -n '$acc' ] && awk 'BEGIN{exit !($acc >= 78)}'"
check "grep -q '^Epoch 2/2 - .* loss: .* - acc: .* - val_loss: .* - val_acc: ' '$T/err'"
check "[ \$(wc -l < '$T/run/history.csv') -eq 3 ]"

# 2. eval of the saved file reproduces the accuracy to the digit
$LOOM eval "$T/run/model.loom" --out "$T" >"$T/eval" 2>&1
check '[ $? -eq 0 ]'
acc2=$(sed -n 's/.*accuracy \([0-9.]*\)%.*/\1/p' "$T/eval" | head -n 1)
check "[ -n '$acc2' ] && [ '$acc' = '$acc2' ]"
check "grep -q 'Ankle boot' '$T/eval'"
check "grep -q 'macro avg' '$T/eval'"
check "[ -s '$T/metrics.json' ] && [ -s '$T/confusion.csv' ]"
$LOOM eval "$T/run/model.loom" --split val >"$T/evalv" 2>&1
check '[ $? -eq 0 ]'
# the same predictions and probabilities whatever the evaluation batch and the threads
for b in 1 33 1000; do
    $LOOM eval "$T/run/model.loom" --batch $b --threads 1 --out "$T/b$b" >/dev/null 2>&1
    check "cmp -s '$T/predictions.csv' '$T/b$b/predictions.csv'"
done

# 2b. test-time augmentation by flips: a line of its own after the plain one, which keeps its
# digits; its files beside the plain ones; the same predictions for any batch and thread count
$LOOM eval "$T/run/model.loom" --tta flip --out "$T/tta" >"$T/evaltta" 2>&1
check '[ $? -eq 0 ]'
acc3=$(sed -n 's/.*: accuracy \([0-9.]*\)%.*/\1/p' "$T/evaltta" | head -n 1)
tta=$(sed -n 's/.*with tta flip (image and mirror averaged): accuracy \([0-9.]*\)%.*/\1/p' "$T/evaltta")
check "[ '$acc3' = '$acc' ] && [ -n '$tta' ]"
# (this model never saw a mirrored shoe: its mirror's vote costs it some points, not all)
check "awk 'BEGIN{exit !($tta >= 60 && $tta != $acc)}'"
check "cmp -s '$T/predictions.csv' '$T/tta/predictions.csv'"
check "[ -s '$T/tta/metrics_tta.json' ] && [ -s '$T/tta/confusion_tta.csv' ]"
check "! cmp -s '$T/tta/predictions.csv' '$T/tta/predictions_tta.csv'"
for b in 1 77; do
    for th in 1 2; do
        $LOOM eval "$T/run/model.loom" --tta flip --batch $b --threads $th --out "$T/tb$b$th" \
            >/dev/null 2>&1
        check "cmp -s '$T/tta/predictions_tta.csv' '$T/tb$b$th/predictions_tta.csv'"
    done
done

# 3. bad input: one line on stderr, non-zero exit, nothing overwritten
expect_fail() { # code, command...
    code=$1; shift
    "$@" >"$T/o" 2>"$T/e"; rc=$?
    if [ "$rc" -eq "$code" ] && [ "$(wc -l < "$T/e")" -eq 1 ] && grep -q '^loom: error: ' "$T/e"; then
        ok
    else
        bad "expected exit $code and one error line from: $* (got $rc: $(cat "$T/e"))"
    fi
}
expect_fail 2 $LOOM train no-such-model
expect_fail 2 $LOOM train mlp --epochs zero
expect_fail 2 $LOOM train mlp --lr -1
expect_fail 2 $LOOM train mlp --optimizer adamax
expect_fail 2 $LOOM train mlp --precision fp16
# bf16 where no layer takes it: trains, in fp32, and says so; config.txt keeps the setting
$LOOM train mlp --subset 1000 --epochs 1 --precision bf16 --no-test --no-plots --quiet \
    --out "$T/p" >/dev/null 2>"$T/e"
check "grep -q 'precision bf16: no layer takes it' '$T/e' && grep -q '^precision=bf16$' '$T/p/config.txt'"
expect_fail 2 $LOOM train mlp --bogus-flag
expect_fail 2 $LOOM train mlp --epochs
expect_fail 1 $LOOM train mlp --data "$T/nowhere" --out "$T/r2"
expect_fail 2 $LOOM train conv-maxpool --out "$T/run"      # exists: needs --force
expect_fail 1 $LOOM eval "$T/nothing.loom"
expect_fail 2 $LOOM eval "$T/run/model.loom" --tta rotate
printf 'garbage' > "$T/bad.loom"
expect_fail 1 $LOOM eval "$T/bad.loom"
cp "$T/run/model.loom" "$T/flip.loom"
printf '\377' | dd of="$T/flip.loom" bs=1 seek=2000 conv=notrunc 2>/dev/null
expect_fail 1 $LOOM eval "$T/flip.loom"
printf 'flatten\ndense ten\n' > "$T/spec.txt"
expect_fail 1 $LOOM summary "$T/spec.txt"
expect_fail 2 $LOOM nosuchcommand
check "[ -s '$T/run/model.loom' ]"
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
