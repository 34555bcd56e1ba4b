#!/bin/sh
# Time to accuracy: `loom train MODEL` with its zoo defaults (the whole command: data loading,
# training, validation, test, plots), wall-clock seconds and test accuracy, one run per seed.
# A benchmark, not a test: run it on an idle machine. Prints a Markdown table.
# Usage: sh bench/time_to_acc.sh [MODEL] [SEED...]   (defaults: conv-maxpool, seeds 42 1 2)
set -u
LOOM=${LOOM:-build/loom}
THREADS=${THREADS:-2}
model=${1:-conv-maxpool}
[ $# -gt 0 ] && shift
seeds=${*:-42 1 2}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "| model | seed | epochs | wall s | test accuracy |"
echo "|---|---|---|---|---|"
for s in $seeds; do
    a=$(date +%s.%N)
    $LOOM train "$model" --seed "$s" --threads "$THREADS" --quiet --out "$tmp/run" --force \
        >"$tmp/out" 2>&1 || { echo "bench/time_to_acc.sh: loom train $model failed:" >&2; tail -n 1 "$tmp/out" >&2; exit 1; }
    b=$(date +%s.%N)
    acc=$(sed -n 's/.*test accuracy \([0-9.]*%\).*/\1/p' "$tmp/out" | tail -n 1)
    ep=$(sed -n 's/.*(\([0-9]*\) epochs,.*/\1/p' "$tmp/out" | tail -n 1)
    echo "| $model | $s | $ep | $(awk -v a="$a" -v b="$b" 'BEGIN{printf "%.1f", b-a}') | $acc |"
done
