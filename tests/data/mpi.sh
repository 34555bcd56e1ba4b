#!/bin/sh
# loom under a real MPI (OpenMPI's mpirun, 1 to 4 processes on this host, oversubscribed):
# data-parallel training gives the same weights for any number of processes that divides the
# shards, and the same as a plain run; a process killed with SIGKILL ends the job within seconds
# and the run resumes, under another number of processes, to the same weights; bad combinations
# and mismatched processes are refused with one line; cv, tune and study share their units and
# write what one process writes.
. "$(dirname "$0")/lib.inc"
need_data
if ! command -v mpirun >/dev/null 2>&1; then
    echo "no mpirun (install openmpi-bin): the MPI tests cannot run"
    echo "0 passed, 1 failed"; exit 1
fi
# as root OpenMPI wants both; in containers its single-copy mechanism fails
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_btl_vader_single_copy_mechanism=none OMPI_MCA_mpi_yield_when_idle=1
MPI="mpirun --oversubscribe -q"
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
weights() { sed -n 's/^receipt: .*weights \([0-9a-f]*\)$/\1/p' "$1/train.log"; }

# ---- data parallel: 1 (plain), 2, 3, 4 processes, 12 shards: one set of weights ----
ARGS="mlp --subset 3000 --epochs 2 --shards 12 --quiet --no-plots --test-subset 500"
$LOOM train $ARGS --out "$T/p1" >/dev/null 2>&1
check "[ $? -eq 0 ]"
ref=$(weights "$T/p1")
for np in 1 2 3 4; do
    $MPI -np $np $LOOM train $ARGS --out "$T/n$np" >"$T/o" 2>"$T/e"
    check "[ $? -eq 0 ]"
    if [ -n "$ref" ] && [ "$(weights "$T/n$np")" = "$ref" ]; then
        ok
    else
        bad "mlp on $np processes: weights $(weights "$T/n$np"), plain run $ref"
    fi
done
check "grep -q '3 processes x 1 thread' '$T/n3/train.log'"
# the history too (the validation is shared out among the processes): all but the seconds
hist() { cut -d, -f1-6 "$1/history.csv"; }
check "[ -s '$T/p1/history.csv' ] && [ \"\$(hist '$T/p1')\" = \"\$(hist '$T/n3')\" ] && [ \"\$(hist '$T/p1')\" = \"\$(hist '$T/n4')\" ]"
check "grep -q 'each batch in 12 shards' '$T/n3/train.log'"
# rank 0 alone speaks: one closing line, one log
check "[ \$(grep -c 'test accuracy' '$T/o') -eq 1 ] && [ \$(grep -c '^loom .*: training' '$T/e') -eq 1 ]"
echo "mlp, 12 shards: weights $ref on 1 (plain), 1, 2, 3 and 4 processes"

# batch norm (statistics per shard, running averages merged) and dropout (a stream per shard)
ARGS_BN="drop-norm-l2 --subset 600 --epochs 1 --shards 6 --quiet --no-plots --test-subset 200"
$LOOM train $ARGS_BN --out "$T/b1" >/dev/null 2>&1
ref_bn=$(weights "$T/b1")
for np in 2 3; do
    $MPI -np $np $LOOM train $ARGS_BN --out "$T/b$np" >/dev/null 2>&1
    check "[ -n '$ref_bn' ] && [ '$(weights "$T/b$np")' = '$ref_bn' ]"
done
# the shards change the numbers, not their quality: a plain run differs
$LOOM train mlp --subset 3000 --epochs 2 --quiet --no-plots --test-subset 500 --out "$T/s1" \
    >/dev/null 2>&1
check "[ -n '$(weights "$T/s1")' ] && [ '$(weights "$T/s1")' != '$ref' ]"

# ---- SIGKILL of one process mid-epoch: the job ends, and resumes anywhere to the same bits ----
ARGS_K="cnn1 --subset 3000 --epochs 2 --shards 4 --quiet --no-plots --test-subset 200 --checkpoint-steps 5"
$LOOM train $ARGS_K --out "$T/kref" >/dev/null 2>&1
ref_k=$(weights "$T/kref")
# (without -q: mpirun's notice names the process that died)
mpirun --oversubscribe -np 2 $LOOM train $ARGS_K --out "$T/k" >"$T/o" 2>"$T/e" &
mp=$!
wait_for "[ -f '$T/k/checkpoint.loomck' ] || ! kill -0 $mp 2>/dev/null"
victim=$(pgrep -f "loom train $ARGS_K --out $T/k" | tail -n 1)
t0=$(date +%s)
if [ -n "$victim" ] && kill -KILL "$victim" 2>/dev/null; then
    wait "$mp"
    rc=$?
    took=$(($(date +%s) - t0))
    check "[ $rc -ne 0 ] && [ $took -le 10 ]"
    check "grep -q 'process rank [01] .* exited on signal 9' '$T/e'"
    check "! pgrep -f 'loom train $ARGS_K --out $T/k' >/dev/null"
    $MPI -np 4 $LOOM train --resume "$T/k" --quiet --no-plots >/dev/null 2>&1
    check "[ $? -eq 0 ]"
    if [ -n "$ref_k" ] && [ "$(weights "$T/k")" = "$ref_k" ]; then
        ok
        echo "SIGKILL of one of 2 processes: the job ended after ${took} s; resumed on 4: identical weights"
    else
        bad "killed on 2, resumed on 4: weights $(weights "$T/k"), uninterrupted $ref_k"
    fi
else
    wait "$mp"
    bad "SIGKILL: the job ended before a process could be killed (nothing tested)"
fi

# ---- refusals: one line each, nothing left behind ----
$MPI -np 4 $LOOM train $ARGS_BN --out "$T/r4" >"$T/o" 2>"$T/e"
check "[ $? -eq 2 ]"
check "[ \$(grep -c '^loom: error: shards: 4 processes share each batch' '$T/e') -eq 1 ]"
check "[ ! -e '$T/r4' ]"
$MPI -np 2 $LOOM train mlp --subset 3000 --epochs 1 --quiet --out "$T/r1" >"$T/o" 2>"$T/e"
check "[ \$(grep -c '^loom: error: shards: 2 processes' '$T/e') -eq 1 ]"
# processes started with other flags, or another loom: refused before any work
$MPI -np 1 $LOOM train $ARGS --out "$T/mm" --lr 0.001 : -np 1 $LOOM train $ARGS --out "$T/mm" \
    --lr 0.002 >"$T/o" 2>"$T/e"
check "[ $? -ne 0 ]"
check "[ \$(grep -c '^loom: error: process 1 runs other arguments than process 0' '$T/e') -eq 1 ]"
check "[ ! -e '$T/mm' ]"
# the same command over other data (one test label changed on process 1's copy)
mkdir "$T/d2"
for f in "$DATA"/*; do cp "$f" "$T/d2/"; done
lab=$(ls "$T/d2" | grep -E '^t10k-labels')
case $lab in
*.gz) gunzip "$T/d2/$lab"; lab=${lab%.gz} ;;
esac
printf '\003' | dd of="$T/d2/$lab" bs=1 seek=8 conv=notrunc 2>/dev/null
$MPI -np 1 -x LOOM_DATA="$DATA" $LOOM train $ARGS --out "$T/md" : -np 1 -x LOOM_DATA="$T/d2" \
    $LOOM train $ARGS --out "$T/md" >"$T/o" 2>"$T/e"
check "[ $? -ne 0 ]"
check "[ \$(grep -c \"^loom: error: process 1's data differ from process 0's\" '$T/e') -eq 1 ]"
check "[ ! -e '$T/md' ]"
$MPI -np 2 $LOOM eval "$T/p1" >"$T/o" 2>"$T/e"
check "[ \$(grep -c \"^loom: error: 'loom eval' runs in one process\" '$T/e') -eq 1 ]"

# ---- cv and tune: units shared, the same results as one process ----
CV="mlp --folds 3 --subset 1500 --epochs 2 --no-plots --standardize --test --quiet"
$LOOM cv $CV --out "$T/cv1" >/dev/null 2>&1
$MPI -np 2 $LOOM cv $CV --out "$T/cv2" >/dev/null 2>&1
check "[ $? -eq 0 ]"
no_secs() { cut -d, -f1-5,7- "$1"; }
check "[ -s '$T/cv1/cv.csv' ] && [ \"\$(no_secs '$T/cv1/cv.csv')\" = \"\$(no_secs '$T/cv2/cv.csv')\" ]"
check "cmp -s '$T/cv1/receipt.txt' '$T/cv2/receipt.txt'"
TUNE="examples/mlp-space.txt --trials 6 --subset 2000 --epochs 1 --no-best --quiet --no-plots"
$LOOM tune $TUNE --out "$T/t1" >/dev/null 2>&1
$MPI -np 3 $LOOM tune $TUNE --out "$T/t3" >/dev/null 2>"$T/e"
check "[ $? -eq 0 ]"
no_last() { sed 's/,[^,]*$//' "$1"; }
check "[ -s '$T/t1/trials.csv' ] && [ \"\$(no_last '$T/t1/trials.csv')\" = \"\$(no_last '$T/t3/trials.csv')\" ]"
check "[ \"\$(no_last '$T/t1/executions.csv' | sort)\" = \"\$(no_last '$T/t3/executions.csv' | sort)\" ]"
# stopped (SIGTERM to every process, as a scheduler does), then resumed on 2: the same trials
$MPI -np 2 $LOOM tune $TUNE --out "$T/ts" >/dev/null 2>&1 &
mp=$!
wait_for "[ \$(cat '$T/ts/executions.csv' 2>/dev/null | wc -l) -ge 2 ] || ! kill -0 $mp 2>/dev/null"
pkill -TERM -f "loom tune $TUNE --out $T/ts"
wait "$mp"
$MPI -np 2 $LOOM tune $TUNE --out "$T/ts" --resume >/dev/null 2>&1
check "[ $? -eq 0 ]"
check "[ -s '$T/ts/trials.csv' ] && [ \"\$(no_last '$T/t1/trials.csv')\" = \"\$(no_last '$T/ts/trials.csv')\" ]"

# one process killed with SIGKILL: what rank 0 had received is recorded; resumed, the same trials
TUNE_K="examples/mlp-space.txt --trials 8 --subset 4000 --epochs 2 --no-best --quiet --no-plots"
$LOOM tune $TUNE_K --out "$T/tkref" >/dev/null 2>&1
$MPI -np 2 $LOOM tune $TUNE_K --out "$T/tk" >/dev/null 2>&1 &
mp=$!
wait_for "[ \$(cat '$T/tk/executions.csv' 2>/dev/null | wc -l) -ge 3 ] || ! kill -0 $mp 2>/dev/null"
victim=$(pgrep -f "loom tune $TUNE_K --out $T/tk" | tail -n 1)
[ -n "$victim" ] && kill -KILL "$victim"
wait "$mp"
rc=$?
n_kept=$(($(wc -l <"$T/tk/executions.csv") - 1))
if [ $rc -eq 0 ]; then
    bad "tune: the search ended before a process could be killed (nothing tested)"
else
    $MPI -np 2 $LOOM tune $TUNE_K --out "$T/tk" --resume >/dev/null 2>&1
    check "[ $? -eq 0 ] && [ $n_kept -ge 2 ] && [ -f '$T/tk/tune.txt' ]"
    check "[ -s '$T/tk/trials.csv' ] && [ \"\$(no_last '$T/tkref/trials.csv')\" = \"\$(no_last '$T/tk/trials.csv')\" ]"
    echo "tune: one of 2 processes killed with $n_kept of 8 executions recorded; resumed: the same trials"
fi

# ---- study: steps shared; every step's receipt as in one process ----
printf 'train mlp --subset 1000 --epochs 1\ncv mlp --folds 2 --subset 1000 --epochs 1\n' >"$T/s.txt"
$LOOM study "$T/s.txt" --out "$T/st1" >/dev/null 2>&1
$MPI -np 2 $LOOM study "$T/s.txt" --out "$T/st2" >/dev/null 2>&1
check "[ $? -eq 0 ] && [ -s '$T/st2/REPORT.md' ]"
check "cmp -s '$T/st1/cv-mlp/receipt.txt' '$T/st2/cv-mlp/receipt.txt'"
check "[ -n '$(weights "$T/st1/mlp")' ] && [ '$(weights "$T/st1/mlp")' = '$(weights "$T/st2/mlp")' ]"

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
