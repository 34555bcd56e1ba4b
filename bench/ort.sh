#!/bin/sh
# Side by side: loom against onnxruntime-node (npm, in tests/onnx/node_modules: `make
# tests/onnx/node_modules/onnxruntime-node/package.json`) on the same models with the same
# weights: each model is trained one epoch on 1,000 images (weights that look like training's,
# not zeros) and exported with `loom export --format onnx`; loom times the model file
# (`loom bench FILE --infer-only`), onnxruntime the ONNX file (bench/ort_bench.js), both on 2
# threads, inference img/s on random pixels. Rounds alternate model by model and batch by batch
# (odd rounds loom then ORT, even rounds ORT then loom); each run is the median of REPEATS timed
# repeats after a warm-up; the table gives the medians over the rounds and the median of the
# rounds' own loom/ORT ratios. When OPENBLAS_CORETYPE or OPENBLAS_L2_SIZE is set, loom also runs
# with both unset (that command alone), a second column. BEFORE=LOOM_BINARY adds an older loom
# to every round (loom, ORT, older; then older, ORT, loom) and a column of new / older.
# Usage: sh bench/ort.sh [MODEL...]   (ROUNDS=4, BATCHES="1 64 1000", REPEATS=3, SECS=0.3;
# OUT=FILE writes the table there, else to stdout)
set -u
LOOM=${LOOM:-build/loom}
NODE=${NODE:-node}
ROUNDS=${ROUNDS:-4}
BATCHES=${BATCHES:-"1 64 1000"}
REPEATS=${REPEATS:-3}
SECS=${SECS:-0.3}
BEFORE=${BEFORE:-}
THREADS=2
here=$(cd "$(dirname "$0")" && pwd)
models=${*:-$($LOOM models | awk '{print $1}')}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
median() { sort -g | awk '{a[NR]=$1} END{if(NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }
has_env=0
[ -n "${OPENBLAS_CORETYPE+x}${OPENBLAS_L2_SIZE+x}" ] && has_env=1
for m in $models; do
    $LOOM train "$m" --epochs 1 --subset 1000 --test-subset 100 --val-split 0.1 --no-plots --quiet \
        --threads $THREADS --out "$tmp/run.$m" >/dev/null 2>"$tmp/train.$m.err" &&
        $LOOM export "$tmp/run.$m/model.loom" -o "$tmp/$m.onnx" >/dev/null ||
        { cat "$tmp/train.$m.err" >&2; echo "ort.sh: $m: no model file" >&2; exit 1; }
done
loom_run() { # model batch [env -u ...]: one loom figure
    m=$1; b=$2; shift 2
    "$@" ${BIN:-$LOOM} bench "$tmp/run.$m/model.loom" --infer-only --batch "$b" --threads $THREADS \
        --repeats "$REPEATS" --seconds "$SECS" | awk -F'|' 'NR == 3 {gsub(/ /, "", $5); print $5}'
}
ort_run() { $NODE "$here/ort_bench.js" "$tmp/$1.onnx" "$2" "$REPEATS" "$SECS"; }
for r in $(seq "$ROUNDS"); do
    for m in $models; do
        for b in $BATCHES; do
            f="$tmp/$m.$b"
            p=0
            if [ $((r % 2)) -eq 1 ]; then
                l=$(loom_run "$m" "$b"); o=$(ort_run "$m" "$b")
                [ -n "$BEFORE" ] && p=$(BIN=$BEFORE loom_run "$m" "$b")
            else
                [ -n "$BEFORE" ] && p=$(BIN=$BEFORE loom_run "$m" "$b")
                o=$(ort_run "$m" "$b"); l=$(loom_run "$m" "$b")
            fi
            u=$l
            [ $has_env -eq 1 ] && u=$(loom_run "$m" "$b" env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE)
            echo "$l $o $u $p" >>"$f"
            echo "round $r $m batch $b: loom $l ORT $o before $p" >&2
        done
    done
done
{
    echo "Date $(date -u +%Y-%m-%d), commit ${COMMIT:-$(git -C "$here" rev-parse --short HEAD 2>/dev/null)}, command \`ROUNDS=$ROUNDS${BEFORE:+ BEFORE=OLDER_LOOM} sh bench/ort.sh\`;"
    echo "host: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), cpu family $(grep -m1 'cpu family' /proc/cpuinfo | cut -d: -f2 | tr -d ' ');"
    echo "onnxruntime-node $($NODE -p "require('$here/../tests/onnx/node_modules/onnxruntime-node/package.json').version"), $THREADS intra-op threads; loom: $($LOOM bench --peak | head -n 1)."
    if [ $has_env -eq 1 ]; then
        echo "Environment: OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-(unset)}, OPENBLAS_L2_SIZE=${OPENBLAS_L2_SIZE:-(unset)}; the last two columns run loom with both unset."
    else
        echo "Environment: OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE are unset on this host already, so the environment as it is and with them unset are the same run (one column)."
    fi
    echo
    head="| model | batch | loom img/s | ORT img/s | loom / ORT |"
    rule="|---|---|---|---|---|"
    [ $has_env -eq 1 ] && head="$head loom img/s, OPENBLAS_* unset | loom / ORT, unset |" && rule="$rule---|---|"
    [ -n "$BEFORE" ] && head="$head older loom img/s | loom / older |" && rule="$rule---|---|"
    echo "$head"
    echo "$rule"
    for m in $models; do
        for b in $BATCHES; do
            f="$tmp/$m.$b"
            l=$(awk '{print $1}' "$f" | median); o=$(awk '{print $2}' "$f" | median)
            q=$(awk '$2 > 0 {print $1 / $2}' "$f" | median)
            row="| $m | $b | $(printf '%.0f' "$l") | $(printf '%.0f' "$o") | $(printf '%.2f' "$q") |"
            if [ $has_env -eq 1 ]; then
                u=$(awk '{print $3}' "$f" | median); qu=$(awk '$2 > 0 {print $3 / $2}' "$f" | median)
                row="$row $(printf '%.0f' "$u") | $(printf '%.2f' "$qu") |"
            fi
            if [ -n "$BEFORE" ]; then
                pb=$(awk '{print $4}' "$f" | median); qb=$(awk '$4 > 0 {print $1 / $4}' "$f" | median)
                row="$row $(printf '%.0f' "$pb") | $(printf '%.2f' "$qb") |"
            fi
            echo "$row"
        done
    done
} >"${OUT:-/dev/stdout}"
