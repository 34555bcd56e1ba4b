#!/bin/sh
# Side-by-side benchmark: loom vs PyTorch (Debian's python3-torch, 2 threads) on every zoo
# model, batch 64, Adam, random 28x28 images. Runs alternate (loom, torch, loom, torch, ...);
# each run already reports the median of 5 timed repeats; the table takes the median of the
# runs. Writes docs/BENCHMARKS.md (or $OUT). Usage: sh bench/run.sh [MODEL...]  (ROUNDS=3 by
# default; RAW=DIR keeps each run's figures there)
set -u
LOOM=${LOOM:-build/loom}
PY=${PY:-/usr/bin/python3}
ROUNDS=${ROUNDS:-3}
THREADS=${THREADS:-2}
OUT=${OUT:-docs/BENCHMARKS.md}
models=${*:-$($LOOM models | awk '{print $1}')}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
median() { sort -n | awk '{a[NR]=$1} END{if(NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }
has_torch=1
$PY -c 'import torch' 2>/dev/null || has_torch=0
for m in $models; do
    for r in $(seq "$ROUNDS"); do
        $LOOM bench "$m" --threads "$THREADS" --batch 64 --repeats 5 2>>"$tmp/stderr" |
            awk -F'|' -v m="$m" '{x = $2; gsub(/ /, "", x)} x == m {gsub(/ /, ""); print $5, $9, $7, $10, $12}' >>"$tmp/loom.$m"
        [ $has_torch -eq 1 ] && $PY bench/torch_ref.py "$m" "$THREADS" >>"$tmp/torch.$m"
    done
done
# the fp32 peak of this machine, measured by loom in this run (never a fixed figure)
peak=$($LOOM bench --peak --threads "$THREADS" | sed -n 's/.*fp32 \([0-9]*\) GFLOP.*/\1/p')
kernels=$($LOOM bench --peak --threads "$THREADS" | head -n 1)
{
    echo "# Benchmarks"
    echo
    echo "Regenerate with \`sh bench/run.sh\` (or \`make bench\`). Batch 64, $THREADS threads, Adam,"
    echo "random 28x28 images; each figure is the median of $ROUNDS alternating runs, each run the"
    echo "median of 5 timed repeats of about a second after a warm-up."
    echo "Machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //');"
    echo "loom $($LOOM --version | cut -d' ' -f2) with $(dpkg-query -W -f='OpenBLAS ${Version}' libopenblas0-pthread 2>/dev/null);"
    [ $has_torch -eq 1 ] && echo "PyTorch $($PY -c 'import torch;print(torch.__version__)') (Debian python3-torch)."
    busy=$(grep -c "another job kept a core busy" "$tmp/stderr" 2>/dev/null)
    [ "${busy:-0}" -gt 0 ] && echo "**$busy loom runs found another job keeping a core busy and ran passive OpenMP workers: these figures are low; re-run on a quiet machine.**"
    echo "$kernels."
    echo "% of peak: achieved training GFLOP/s (3x forward FLOPs) over ${peak} GFLOP/s, the fp32 FMA peak \`loom bench --peak\` measured on $THREADS threads in this run."
    echo
    echo "| model | loom train img/s | PyTorch train img/s | ratio | loom GFLOP/s | % of peak | loom infer img/s | PyTorch infer img/s | infer ratio | loom peak RSS MiB | PyTorch peak RSS MiB |"
    echo "|---|---|---|---|---|---|---|---|---|---|---|"
    for m in $models; do
        lt=$(awk '{print $1}' "$tmp/loom.$m" | median)
        li=$(awk '{print $2}' "$tmp/loom.$m" | median)
        lg=$(awk '{print $3}' "$tmp/loom.$m" | median)
        lr=$(awk '{print $5}' "$tmp/loom.$m" | median)
        if [ -s "$tmp/torch.$m" ]; then
            pt=$(awk '{print $2}' "$tmp/torch.$m" | median)
            pi=$(awk '{print $3}' "$tmp/torch.$m" | median)
            pr=$(awk '{print $4}' "$tmp/torch.$m" | median)
            ratio=$(awk -v a="$lt" -v b="$pt" 'BEGIN{printf "%.2f", a/b}')
            iratio=$(awk -v a="$li" -v b="$pi" 'BEGIN{printf "%.2f", a/b}')
        else
            pt=—; pi=—; pr=—; ratio=—; iratio=—
        fi
        pct=$(awk -v g="$lg" -v p="$peak" 'BEGIN{printf "%.0f%%", 100*g/p}')
        echo "| $m | $lt | $pt | $ratio | $lg | $pct | $li | $pi | $iratio | $lr | $pr |"
    done
} >"$OUT.tmp" && mv "$OUT.tmp" "$OUT"
[ -n "${RAW:-}" ] && mkdir -p "$RAW" && cp "$tmp"/* "$RAW"/
cat "$OUT"
