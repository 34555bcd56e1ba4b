#!/bin/sh
# Regenerates docs/RESULTS.md: trains every zoo model with its defaults on the full
# Fashion-MNIST training set (80/20 stratified split, seed 42), evaluates on the test set, and
# benchmarks training/inference throughput. Takes a few hours on a 2-core machine.
# Usage: sh docs/results.sh [--table-only] [MODEL...]   (default: every zoo model)
# Finished models are skipped, so an interrupted run continues; --table-only only rewrites
# the table from the runs that exist. OUT (default runs/results) holds the run directories.
set -u
LOOM=${LOOM:-build/loom}
OUT=${OUT:-runs/results}
TABLE_ONLY=0
[ "${1:-}" = "--table-only" ] && { TABLE_ONLY=1; shift; }
models=${*:-$($LOOM models | awk '{print $1}')}
mkdir -p "$OUT"
for m in $models; do
    [ $TABLE_ONLY -eq 1 ] && break
    if [ -s "$OUT/$m/metrics.json" ]; then echo "skip $m (done)"; continue; fi
    $LOOM train "$m" --out "$OUT/$m" --force --quiet 2>"$OUT/$m.err" || { cat "$OUT/$m.err"; exit 1; }
done
{
    echo "# Results"
    echo
    echo "Regenerate with \`sh docs/results.sh\` (then \`make bench\` for the speed table)."
    echo "Machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), loom $($LOOM --version | cut -d' ' -f2)."
    echo "Each model: zoo defaults (\`loom models -v\`), 48,000 training / 12,000 validation images"
    echo "(stratified, seed 42), evaluated once on the 10,000 test images."
    echo
    echo "| model | params | epochs | seconds | s/epoch | test acc | macro F1 | published |"
    echo "|---|---|---|---|---|---|---|---|"
    for m in $models; do
        d="$OUT/$m"
        [ -s "$d/metrics.json" ] || continue
        params=$(sed -n 's/^Total params: //p' "$d/summary.txt")
        epochs=$(($(wc -l < "$d/history.csv") - 1))
        secs=$(awk -F, 'NR>1{s+=$7} END{printf "%.0f", s}' "$d/history.csv")
        spe=$(awk -F, 'NR>1{s+=$7;n++} END{printf "%.1f", s/n}' "$d/history.csv")
        acc=$(python3 -c "import json;d=json.load(open('$d/metrics.json'));print('%.2f%%'%(100*d['accuracy']))")
        f1=$(python3 -c "import json;d=json.load(open('$d/metrics.json'));print('%.2f%%'%(100*d['macro_f1']))")
        pub=$($LOOM models -v | awk -v m="$m" '$1==m{f=1;next} f&&/published:/{sub(/.*published: /,"");print;exit} f&&/^[a-z]/{exit}')
        echo "| $m | $params | $epochs | $secs | $spe | $acc | $f1 | ${pub:-—} |"
    done
    echo
    echo "Published figures are those of \`../shared/SEED-MODELS.md\` (the study that used the same"
    echo "architecture). Speed: \`docs/BENCHMARKS.md\` (\`sh bench/run.sh\`, side by side with PyTorch)."
    echo
    echo "## Prediction on transformed images"
    echo
    echo "\`loom predict\` on test images saved as 280x280 RGB PNGs, dark garment on a white"
    echo "background, against the model's prediction on the original 28x28 images"
    echo "(\`sh tests/data/install.sh\`, which also builds \`examples/classify.c\` against an installed loom):"
    echo
    agree=$(LOOM=$LOOM sh tests/data/install.sh 2>/dev/null | sed -n 's/^agreement: //p')
    echo "- ${agree:-not measured (tests/data/install.sh failed)}"
} > docs/RESULTS.md.tmp && mv docs/RESULTS.md.tmp docs/RESULTS.md
echo "wrote docs/RESULTS.md"
