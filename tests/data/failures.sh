#!/bin/sh
# Failure handling through the CLI (real data group): a full filesystem (a small tmpfs, when
# this machine lets us mount one), an output path whose parent is a regular file, paths that are
# directories where files are expected, and an address-space limit that makes the activation
# arena fail: each gives one "loom: error: ..." line naming the reason, exit 1, no temporary
# file left and earlier files intact. Then determinism across --threads 1, 2 and 3 (identical
# weights and history). The existing-run-without---force case is in e2e.sh.
. "$(dirname "$0")/lib.inc"
need_data
T=$(mktemp -d)
MNT="$T/small"
mounted=0
cleanup() {
    [ "$mounted" -eq 1 ] && umount "$MNT" 2>/dev/null
    rm -rf "$T"
}
trap cleanup EXIT
TRAIN="mlp --subset 2000 --epochs 1 --no-test --quiet --seed 3"

# expect_error CODE PATTERN command...: exit CODE, exactly one "loom: error: " line on stderr
# and it matches PATTERN (grep -E).
expect_error() {
    code=$1; pat=$2; shift 2
    "$@" >"$T/o" 2>"$T/e"; rc=$?
    n=$(grep -c '^loom: error: ' "$T/e")
    if [ "$rc" -eq "$code" ] && [ "$n" -eq 1 ] && grep '^loom: error: ' "$T/e" | grep -Eq "$pat"; then
        ok
        echo "ok (exit $rc): $(grep '^loom: error: ' "$T/e")"
    else
        bad "expected exit $code and one error line matching '$pat' from: $* (got $rc: $(cat "$T/e"))"
    fi
}
no_tmp() { # no *.tmp.* left under $1
    left=$(find "$1" -name '*.tmp.*' 2>/dev/null | head -n 3)
    if [ -z "$left" ]; then ok; else bad "temporary files left: $left"; fi
}

# 0. a finished run to protect, and the reference for the determinism checks
$LOOM train $TRAIN --threads 1 --out "$T/t1" >/dev/null 2>&1
check '[ $? -eq 0 ] && [ -s "$T/t1/model.loom" ]'

# 1. disk full: a small tmpfs holding an earlier run, then filled up
mkdir -p "$MNT"
if mount -t tmpfs -o size=2m tmpfs "$MNT" 2>/dev/null; then
    mounted=1
    mkdir "$MNT/old"
    cp "$T/t1/model.loom" "$T/t1/config.txt" "$T/t1/history.csv" "$MNT/old/"
    # (a) completely full: fails creating the run directory or its first file
    dd if=/dev/zero of="$MNT/fill" bs=4k 2>/dev/null
    expect_error 1 'No space left on device' $LOOM train $TRAIN --out "$MNT/run1"
    check 'cmp -s "$T/t1/model.loom" "$MNT/old/model.loom"'
    no_tmp "$MNT"
    # (b) 300 KB free: the directory and the small files fit, the checkpoint or model do not
    rm -f "$MNT/fill" "$MNT/run1/"* 2>/dev/null; rmdir "$MNT/run1" 2>/dev/null
    free_kb=$(df -k "$MNT" | awk 'NR == 2 {print $4}')
    dd if=/dev/zero of="$MNT/fill" bs=1k count=$((free_kb - 300)) 2>/dev/null
    expect_error 1 'No space left on device' $LOOM train $TRAIN --out "$MNT/run2"
    check 'cmp -s "$T/t1/model.loom" "$MNT/old/model.loom"'
    check '[ ! -e "$MNT/run2/model.loom" ]'
    no_tmp "$MNT"
    # (c) loom eval writing its metrics into the full filesystem
    dd if=/dev/zero of="$MNT/fill2" bs=4k 2>/dev/null
    expect_error 1 'No space left on device' $LOOM eval "$MNT/old/model.loom" --out "$MNT/old"
    check 'cmp -s "$T/t1/model.loom" "$MNT/old/model.loom"'
    no_tmp "$MNT"
    umount "$MNT" && mounted=0
else
    echo "note: cannot mount a tmpfs here (not root, or no permission): disk-full cases skipped"
fi

# 2. the parent of the output is a regular file (ENOTDIR)
printf 'x' >"$T/plain"
expect_error 1 'Not a directory' $LOOM train $TRAIN --out "$T/plain/run"
check '[ "$(cat "$T/plain")" = x ]'
expect_error 1 'Not a directory' $LOOM eval "$T/t1/model.loom" --out "$T/plain"
# ... or the output itself is a regular file: --force does not make it a run directory
expect_error 1 'plain: exists and is not a directory' $LOOM train $TRAIN --out "$T/plain" --force
check '[ "$(cat "$T/plain")" = x ]'

# 3. a directory where a file is expected
expect_error 1 'directory' $LOOM eval "$T/t1"                    # the model file
mkdir -p "$T/run3/config.txt"                                    # a file of the run
expect_error 1 'config.txt.*(Is a directory|directory)' $LOOM train $TRAIN --out "$T/run3"
check '[ -d "$T/run3/config.txt" ]'
no_tmp "$T/run3"
mkdir -p "$T/ev/metrics.json"
expect_error 1 'metrics.json.*directory' $LOOM eval "$T/t1/model.loom" --out "$T/ev"
no_tmp "$T/ev"
expect_error 1 'is a directory' $LOOM eval "$T/t1/model.loom" --images "$T/ev" \
    --labels "$DATA/t10k-labels-idx1-ubyte.gz"

# 4. out of memory: an address-space limit under which the activation arena cannot be had
printf 'conv 256 3x3 same relu\nflatten\ndense 10\n' >"$T/wide.txt"
(ulimit -v 1200000 && exec $LOOM train "$T/wide.txt" --subset 2000 --epochs 1 --no-test \
    --quiet --batch 2048 --threads 1 --out "$T/oom") >"$T/o" 2>"$T/e"
rc=$?
if [ "$rc" -eq 1 ] && grep -Eq '^loom: error: .*(out of memory|cannot allocate)' "$T/e"; then
    ok; echo "ok (exit 1): $(grep '^loom: error: ' "$T/e")"
else
    bad "out of memory: expected exit 1 and 'out of memory'/'cannot allocate' (got $rc: $(cat "$T/e"))"
fi
check '[ ! -e "$T/oom" ]' # a run that failed before its first checkpoint leaves nothing

# 5. determinism: the same seed gives identical weights, history and receipts for 1, 2 and 3
# threads
weights() { tail -c $((8 + 4 * 244522 + 8 + 4)) "$1" | head -c -4 | cksum; } # mlp: 244522, no state
for n in 2 3; do
    $LOOM train $TRAIN --threads $n --out "$T/t$n" >/dev/null 2>&1
    check '[ $? -eq 0 ]'
    check '[ "$(weights "$T/t1/model.loom")" = "$(weights "$T/t$n/model.loom")" ]'
    check '[ "$(cut -d, -f1-6 "$T/t1/history.csv")" = "$(cut -d, -f1-6 "$T/t$n/history.csv")" ]'
done
echo "threads 1, 2, 3: weights $(weights "$T/t1/model.loom" | cut -d' ' -f1)"
# the train receipts agree too, and a run with another seed has other weights and inputs
check '[ -s "$T/t1/receipt.txt" ] && [ "$(cat "$T/t1/receipt.txt")" = "$(cat "$T/t3/receipt.txt")" ]'
$LOOM train $TRAIN --seed 4 --threads 2 --out "$T/s4" >/dev/null 2>&1
check '[ $? -eq 0 ] && grep -q weights "$T/s4/receipt.txt" && grep -q inputs "$T/s4/receipt.txt"'
check '[ "$(grep weights "$T/s4/receipt.txt")" != "$(grep weights "$T/t1/receipt.txt")" ]'
check '[ "$(grep inputs "$T/s4/receipt.txt")" != "$(grep inputs "$T/t1/receipt.txt")" ]'
check 'grep -q data "$T/s4/receipt.txt" && [ "$(grep data "$T/s4/receipt.txt")" = "$(grep data "$T/t1/receipt.txt")" ]'
# cv and tune receipts (every fold's weights; the retrained best) on 1 and 3 threads, written
# to different directories: output paths and the command line are not inputs
CV="mlp --folds 2 --subset 1500 --epochs 1 --quiet"
TUNE="examples/mlp-space.txt --trials 2 --subset 1500 --epochs 1 --quiet"
for n in 1 3; do
    $LOOM cv $CV --threads $n --out "$T/cv$n" >/dev/null 2>&1
    check '[ $? -eq 0 ]'
    $LOOM tune $TUNE --threads $n --out "$T/tune$n" >/dev/null 2>&1
    check '[ $? -eq 0 ]'
    $LOOM tune $TUNE --refit all --threads $n --out "$T/refit$n" >/dev/null 2>&1
    check '[ $? -eq 0 ]'
done
# --refit all retrains on all 1500 examples: other weights than the split's, the same on 1 and 3
check 'grep -q "^tune_refit=all" "$T/refit1/best/config.txt" && grep -q "^val_split=0$" "$T/refit1/best/config.txt"'
check '[ -s "$T/refit1/best/receipt.txt" ] && [ "$(cat "$T/refit1/best/receipt.txt")" = "$(cat "$T/refit3/best/receipt.txt")" ]'
check 'grep -q weights "$T/tune1/best/receipt.txt" && [ "$(grep weights "$T/refit1/best/receipt.txt")" != "$(grep weights "$T/tune1/best/receipt.txt")" ]'
expect_error 2 "refit 'bogus': use split or all" $LOOM tune $TUNE --refit bogus --out "$T/refitx"
check '[ "$(grep -c weights_crc32 "$T/cv1/receipt.txt")" -eq 3 ]'
check '[ "$(cat "$T/cv1/receipt.txt")" = "$(cat "$T/cv3/receipt.txt")" ]'
check '[ -s "$T/tune1/best/receipt.txt" ] && [ "$(cat "$T/tune1/best/receipt.txt")" = "$(cat "$T/tune3/best/receipt.txt")" ]'

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
