#!/bin/sh
# SIGINT in each long-running command (real data group): `loom train` stopped mid-training,
# `loom cv` stopped in its second fold,
# `loom tune` stopped in the middle of its search and resumed, `loom study` stopped in its second
# step and resumed. Each interrupted run exits non-zero with one "loom: error: ..." line and
# keeps what it finished; tune and study say how to continue, and their resumed runs end as an
# uninterrupted one does (tune: the same trials.csv but for the seconds column). Each exits 130
# (128 + SIGINT), as the shell reports a command Ctrl-C ended. The signal is
# sent once the run is under way: a file the step writes is polled for first. About 30 s.
. "$(dirname "$0")/lib.inc"
need_data
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT

# interrupt PID TEST: once TEST holds, sends SIGINT to PID (once) and waits for it; sets rc to
# its exit status and sent=1 when the signal reached a running process.
interrupt() {
    sent=0
    if wait_for "$2" && kill -INT "$1" 2>/dev/null; then sent=1; fi
    wait "$1"; rc=$?
}

# one_error FILE PATTERN: exactly one "loom: error: " line in FILE, matching PATTERN (grep -E).
one_error() {
    [ "$(grep -c '^loom: error: ' "$1")" -eq 1 ] && grep '^loom: error: ' "$1" | grep -Eq "$2"
}

# ---- train: SIGINT after the first epoch; train.log says so and how to go on ----
D="$T/train"
$LOOM train mlp --subset 20000 --epochs 30 --no-test --quiet --out "$D" >"$T/o" 2>"$T/e" &
interrupt $! "grep -q '^Epoch 1/' '$D/train.log' 2>/dev/null"
echo "train: exit $rc; $(grep '^loom: error: ' "$T/e")"
check "[ $sent -eq 1 ]"
check "[ $rc -eq 130 ]"
check "one_error '$T/e' 'interrupted at epoch .*continue with .loom train --resume'"
check "grep -q '^stopped: interrupted at epoch' '$D/train.log'"
check "[ \"\$(tail -n 1 '$D/train.log')\" = \"continue with 'loom train --resume $D'\" ]"
check "[ -s '$D/checkpoint.loomck' ]"

# ---- cv: SIGINT in fold 2 of 3 ----
D="$T/cv"
$LOOM cv mlp --folds 3 --subset 3000 --epochs 2 --quiet --out "$D" >"$T/o" 2>"$T/e" &
interrupt $! "[ -d '$D/fold_2' ]"
echo "cv: exit $rc; $(grep '^loom: error: ' "$T/e")"
check "[ $sent -eq 1 ]"
check "[ $rc -eq 130 ]"
check "one_error '$T/e' 'interrupted'"
# fold 1 is kept: its history and its row of cv.csv; nothing claims the CV finished
check "[ -s '$D/fold_1/history.csv' ]"
check "[ \$(grep -c '^1,' '$D/cv.csv') -eq 1 ] && [ \$(wc -l <'$D/cv.csv') -eq 2 ]"
check "[ ! -f '$D/cv.json' ] && [ ! -f '$D/model.loom' ]"
check "! ls '$D' | grep -q '\\.tmp\\.'"

# ---- tune: SIGINT after the first trial, then --resume; the reference runs undisturbed ----
# six trials: on a quiet machine one execution takes a fraction of a second, and three could all
# end before the signal lands
TUNE="examples/mlp-space.txt --trials 6 --subset 2000 --epochs 1 --no-best --quiet"
$LOOM tune $TUNE --out "$T/tref" >/dev/null 2>"$T/eref"
check "[ $? -eq 0 ]"
D="$T/tune"
$LOOM tune $TUNE --out "$D" >"$T/o" 2>"$T/e" &
interrupt $! "[ \$(cat '$D/executions.csv' 2>/dev/null | wc -l) -ge 2 ]"
echo "tune: exit $rc; $(grep '^loom: error: ' "$T/e")"
check "[ $sent -eq 1 ]"
check "[ $rc -eq 130 ]"
check "one_error '$T/e' 'stopped.*continue with --resume'"
n_before=$(($(wc -l <"$D/executions.csv") - 1))
check "[ $n_before -ge 1 ] && [ $n_before -lt 6 ]"
# trials.csv is rewritten after every trial: it holds the finished ones (one execution each)
check "[ \$(wc -l <'$D/trials.csv') -eq $((n_before + 1)) ]"
$LOOM tune $TUNE --out "$D" --resume >"$T/o" 2>"$T/e"
check "[ $? -eq 0 ]"
# the recorded executions are replayed, not trained again
check "[ \$(grep -c '(recorded)' '$T/e') -eq $n_before ]"
no_seconds() { sed 's/,[^,]*$//' "$1"; }
if [ -f "$D/trials.csv" ] && [ "$(no_seconds "$D/trials.csv")" = "$(no_seconds "$T/tref/trials.csv")" ]; then
    ok
    echo "tune: $n_before of 6 executions recorded before SIGINT; resumed trials.csv identical"
else
    bad "tune: resumed trials.csv differs from the uninterrupted run's"
    diff "$D/trials.csv" "$T/tref/trials.csv"
fi

# ---- study: SIGINT in step 2 of 3, then --resume ----
cat >"$T/study.txt" <<'STUDY'
train mlp --subset 600 --epochs 1
train cnn1 --subset 600 --epochs 1
train mlp --subset 600 --epochs 1 --seed 7
STUDY
D="$T/study"
$LOOM study "$T/study.txt" --out "$D" >"$T/o" 2>"$T/e" &
# step 2 has loaded its data and is training: the step's own train.log exists
interrupt $! "[ -f '$D/cnn1/train.log' ]"
echo "study: exit $rc; $(grep '^loom: error: ' "$T/e")"
check "[ $sent -eq 1 ]"
check "[ $rc -eq 130 ]"
check "one_error '$T/e' 'interrupted in step 2 .*loom study --resume --out'"
check "[ -f '$D/mlp/.done' ] && [ ! -f '$D/cnn1/.done' ] && [ ! -d '$D/mlp-2' ]"
check "[ ! -f '$D/REPORT.md' ]"
$LOOM study "$T/study.txt" --out "$D" --resume >"$T/o" 2>"$T/e"
check "[ $? -eq 0 ]"
check "[ \$(grep -c 'finished earlier, skipped' '$T/e') -eq 1 ]"
check "grep -q '\\[1/3\\] train mlp: finished earlier, skipped' '$T/e'"
check "[ -f '$D/cnn1/.done' ] && [ -f '$D/mlp-2/.done' ] && [ -s '$D/REPORT.md' ]"
# step 2 went on from its checkpoint (unless the signal came after its last step)
if grep -q 'resuming at epoch' "$D/cnn1.log"; then
    echo "study: step 2 resumed from its checkpoint: $(grep -m1 'resuming at epoch' "$D/cnn1.log")"
else
    echo "study: step 2 was run again from the start (no checkpoint left)"
fi
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
