#!/bin/sh
# Exact resume (real data group): a run killed with SIGKILL or SIGINT at random moments and
# resumed each time ends with bit-identical weights to an uninterrupted run (with every
# augmentation on: flips, shifts, random erasing, mixup and cutmix draw from the checkpointed
# stream); a corrupt newest checkpoint falls back to the previous one with a warning.
. "$(dirname "$0")/lib.inc"
need_data
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
weights() { head -c -4 "$1" | tail -c 400000 | cksum | cut -d' ' -f1; } # params, not config/CRC
ARGS="mlp --subset 20000 --epochs 3 --quiet --no-test --checkpoint-steps 5"
ARGS="$ARGS --augment flip,shift:2,erase,mixup:0.4,cutmix"

$LOOM train $ARGS --out "$T/ref" >/dev/null 2>&1 || bad "reference run"
ref=$(weights "$T/ref/model.loom")

for sig in KILL INT KILL INT KILL; do
    rm -rf "$T/run"
    $LOOM train $ARGS --out "$T/run" >/dev/null 2>&1 &
    pid=$!
    n=0
    # the first signal comes once training is under way (its first checkpoint is written): a
    # fast machine would otherwise finish the whole run before it
    wait_for "[ -f '$T/run/checkpoint.loomck' ] || ! kill -0 $pid 2>/dev/null"
    # finished = a model file and no checkpoint left (SIGINT also saves the last good weights)
    while { [ ! -s "$T/run/model.loom" ] || [ -f "$T/run/checkpoint.loomck" ]; } && [ $n -lt 6 ]; do
        # wait a random 0..0.4 s after the first checkpoint, and 0.3..0.8 s after a resume
        # (loading the data takes about 0.3 s), kill, resume; up to 6 times, then the last
        # resumed run finishes undisturbed
        sleep "$(awk -v s="$$$n" -v n=$n 'BEGIN{srand(s); printf "%.2f", (n ? 0.3 : 0) + 0.4 * rand()}')"
        kill -"$sig" "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
        [ -s "$T/run/model.loom" ] && [ ! -f "$T/run/checkpoint.loomck" ] && break
        if [ -f "$T/run/checkpoint.loomck" ] || [ -f "$T/run/checkpoint.loomck.prev" ]; then
            $LOOM train --resume "$T/run" >/dev/null 2>&1 &
        else
            $LOOM train $ARGS --out "$T/run" --force >/dev/null 2>&1 &
        fi
        pid=$!
        n=$((n + 1))
    done
    wait "$pid" 2>/dev/null
    if [ $n -eq 0 ]; then
        bad "SIG$sig: the run finished before any interruption (nothing tested)"
    elif [ -s "$T/run/model.loom" ] && [ "$(weights "$T/run/model.loom")" = "$ref" ]; then
        ok
        echo "SIG$sig: $n interruptions, identical weights"
    else
        bad "SIG$sig after $n interruptions: weights differ from the uninterrupted run"
    fi
done

# corrupt newest checkpoint -> previous one used, with a warning, same result
rm -rf "$T/run"
$LOOM train $ARGS --out "$T/run" >/dev/null 2>&1 &
pid=$!
# past loading the data and two checkpoints (every 5 steps)
wait_for "[ -f '$T/run/checkpoint.loomck.prev' ] || ! kill -0 $pid 2>/dev/null"
kill -INT "$pid" 2>/dev/null; wait "$pid" 2>/dev/null
if [ -f "$T/run/checkpoint.loomck" ] && [ -f "$T/run/checkpoint.loomck.prev" ]; then
    printf 'XXXX' | dd of="$T/run/checkpoint.loomck" bs=1 seek=100 conv=notrunc 2>/dev/null
    $LOOM train --resume "$T/run" >"$T/o" 2>"$T/e"
    if grep -q 'warning: .*checksum.*previous checkpoint' "$T/e"; then ok; else bad "no warning: $(cat "$T/e")"; fi
    if [ "$(weights "$T/run/model.loom")" = "$ref" ]; then ok; else bad "fallback result differs"; fi
else
    bad "corrupt checkpoint: the run finished before the interruption (nothing tested)"
fi
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
