#!/bin/sh
# Scaling on this machine under OpenMPI: data-parallel training img/s and step time for a plain
# run and for 1, 2 and 4 processes (threads x processes = the cores, 4 oversubscribed), the bytes
# each step reduces, and the wall time of a cross-validation and a search on 1 and 2 processes.
# Rounds alternate the settings model by model; each cell is the median over the rounds.
# Prints a Markdown section (docs/BENCHMARKS.md keeps one). Usage: sh bench/scale.sh [MODEL...]
# (ROUNDS=3, SUBSET=12000 training images per run, SHARDS=4)
set -u
LOOM=${LOOM:-build/loom}
ROUNDS=${ROUNDS:-3}
SUBSET=${SUBSET:-12000}
SHARDS=${SHARDS:-4}
models=${*:-mlp cnn1 drop-norm-l2 lstm}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_btl_vader_single_copy_mechanism=none
MPI="mpirun --oversubscribe --bind-to none -q"
cores=$(nproc)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
median() { sort -n | awk '{a[NR]=$1} END{if(NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }
# seconds of training of a finished run (its epochs' seconds in history.csv, to the millisecond)
secs() { awk -F, 'NR > 1 {s += $7} END {printf "%.3f\n", s}' "$1/history.csv"; }
ARGS="--subset $SUBSET --epochs 1 --val-split 0 --no-test --quiet --no-plots --shards $SHARDS"
settings="plain np1 np2 np4"
for m in $models; do
    for r in $(seq "$ROUNDS"); do
        for s in $settings; do
            d="$tmp/$m.$s.$r"
            case $s in
            plain) $LOOM train "$m" $ARGS --out "$d" --threads "$cores" >/dev/null 2>&1 ;;
            np1) $MPI -np 1 $LOOM train "$m" $ARGS --out "$d" --threads "$cores" >/dev/null 2>&1 ;;
            np2) $MPI -np 2 $LOOM train "$m" $ARGS --out "$d" --threads $(((cores + 1) / 2)) >/dev/null 2>&1 ;;
            np4) $MPI -np 4 $LOOM train "$m" $ARGS --out "$d" --threads 1 >/dev/null 2>&1 ;;
            esac
            secs "$d" >>"$tmp/$m.$s"
        done
    done
done
# the units of work: 4 folds, 4 trials, on 1 and 2 processes
CV="mlp --folds 4 --subset $SUBSET --epochs 2 --quiet --no-plots"
TUNE="examples/mlp-space.txt --trials 4 --subset $SUBSET --epochs 2 --no-best --quiet --no-plots"
for r in $(seq "$ROUNDS"); do
    for np in 1 2; do
        t0=$(date +%s.%N)
        if [ $np -eq 1 ]; then $LOOM cv $CV --out "$tmp/cv.$r.$np" >/dev/null 2>&1
        else $MPI -np $np $LOOM cv $CV --out "$tmp/cv.$r.$np" --threads 1 >/dev/null 2>&1; fi
        echo "$(date +%s.%N) $t0" | awk '{printf "%.2f\n", $1 - $2}' >>"$tmp/cv.$np"
        t0=$(date +%s.%N)
        if [ $np -eq 1 ]; then $LOOM tune $TUNE --out "$tmp/tune.$r.$np" >/dev/null 2>&1
        else $MPI -np $np $LOOM tune $TUNE --out "$tmp/tune.$r.$np" --threads 1 >/dev/null 2>&1; fi
        echo "$(date +%s.%N) $t0" | awk '{printf "%.2f\n", $1 - $2}' >>"$tmp/tune.$np"
    done
done
n_train=$SUBSET
echo "## Scaling over processes (OpenMPI, one host)"
echo
echo "\`sh bench/scale.sh\` ($(date -u +%Y-%m-%d), $(git rev-parse --short HEAD 2>/dev/null || echo '?'),"
echo "$cores cores, $(mpirun --version 2>/dev/null | head -n 1)): one epoch of $n_train images, batch 64 in"
echo "$SHARDS shards, $ROUNDS alternating rounds, medians. np N: \`mpirun -np N\` with $cores/N threads each"
echo "(np 4: oversubscribed, 1 thread each). Every run of a model ends with the same weights."
echo "Bytes per step: the 64-bit sum of every parameter and state value (each process sends and"
echo "receives about twice that in a ring or halving-doubling allreduce)."
echo
echo "| model | bytes per step | plain img/s | np 1 | np 2 | np 4 | step ms plain | np 2 | np 4 |"
echo "|---|---|---|---|---|---|---|---|---|"
for m in $models; do
    n=$($LOOM summary "$m" | sed -n 's/^Total params: //p' | tr -d ,)
    row="| $m | $(awk -v n="$n" 'BEGIN{printf "%.2f MB", 8 * n / 1e6}')"
    for s in $settings; do
        t=$(median <"$tmp/$m.$s")
        row="$row | $(awk -v t="$t" -v n="$n_train" 'BEGIN{printf "%.0f", (t > 0 ? n / t : 0)}')"
    done
    for s in plain np2 np4; do
        t=$(median <"$tmp/$m.$s")
        row="$row | $(awk -v t="$t" -v n="$n_train" 'BEGIN{printf "%.2f", 1000 * t / (n / 64)}')"
    done
    echo "$row |"
done
echo
echo "| units of work | 1 process ($cores threads) s | 2 processes (1 thread each) s |"
echo "|---|---|---|"
echo "| cv: $CV | $(median <"$tmp/cv.1") | $(median <"$tmp/cv.2") |"
echo "| tune: $TUNE | $(median <"$tmp/tune.1") | $(median <"$tmp/tune.2") |"
