#!/bin/sh
# The int8 accuracy table of docs/RESULTS.md: for every zoo model, the fp32 model's test accuracy
# against its int8 copy's (`loom quantize` with its defaults: activation scales from a stratified
# 1,000 training images), the difference in points, and both files' sizes. Prints the Markdown
# table on stdout (docs/results.sh puts it in RESULTS.md).
#
#   sh bench/int8_table.sh [--train FLAGS] [RUNS_DIR]
#
# RUNS_DIR (default runs/study, where `loom study` trains every zoo model with its defaults)
# holds RUNS_DIR/MODEL/model.loom. A model without one is listed as not trained, unless --train
# is given: then it is trained first into RUNS_DIR/MODEL with `loom train MODEL FLAGS` ("defaults"
# for the zoo's own settings: the full-length table, several hours for all models on 2 cores; a
# short check: --train "--subset 2000 --epochs 1"). MODELS (env) narrows the list; LOOM is the
# binary (default build/loom). The int8 files are written next to each run (model-int8.loom).
set -u
LOOM=${LOOM:-build/loom}
TRAIN=""
if [ "${1:-}" = "--train" ]; then
    [ $# -ge 2 ] || { echo "int8_table.sh: --train needs FLAGS (or 'defaults')" >&2; exit 2; }
    TRAIN=$2
    shift 2
fi
RUNS=${1:-runs/study}
MODELS=${MODELS:-$($LOOM models | awk 'NF { print $1 }')}
[ -x "$LOOM" ] || { echo "int8_table.sh: no loom at $LOOM (make first)" >&2; exit 1; }

# acc MODEL_FILE: the test accuracy in percent, as `loom eval` prints it
acc() { $LOOM eval "$1" 2>/dev/null | sed -n '1s/.*accuracy \([0-9.]*\)%.*/\1/p'; }
# size FILE: bytes with thousands separators
size() { wc -c <"$1" | awk '{ s = sprintf("%d", $1); t = ""; while (length(s) > 3) { t = "," substr(s, length(s) - 2) t; s = substr(s, 1, length(s) - 3) } print s t }'; }

echo "| model | fp32 test accuracy | int8 test accuracy | difference (points) | fp32 file | int8 file |"
echo "|---|---|---|---|---|---|"
for m in $MODELS; do
    d="$RUNS/$m"
    if [ ! -s "$d/model.loom" ] && [ -n "$TRAIN" ]; then
        flags=$TRAIN
        [ "$flags" = defaults ] && flags=""
        # shellcheck disable=SC2086 # the flags are words
        $LOOM train "$m" $flags --no-plots --quiet --force --out "$d" >/dev/null 2>&1 ||
            echo "int8_table.sh: $m: training failed (see $d/train.log)" >&2
    fi
    if [ ! -s "$d/model.loom" ]; then
        echo "| $m | not trained | | | | |"
        continue
    fi
    if ! $LOOM quantize "$d/model.loom" -o "$d/model-int8.loom" >/dev/null 2>"$d/quantize.err"; then
        echo "| $m | $(acc "$d/model.loom")% | quantize failed: $(tail -n 1 "$d/quantize.err") | | | |"
        continue
    fi
    a=$(acc "$d/model.loom")
    b=$(acc "$d/model-int8.loom")
    sa=$(wc -c <"$d/model.loom")
    sb=$(wc -c <"$d/model-int8.loom")
    diff=$(awk -v a="$a" -v b="$b" 'BEGIN { printf "%+.2f", b - a }')
    share=$(awk -v a="$sa" -v b="$sb" 'BEGIN { printf "%.1f%%", 100 * b / a }')
    echo "| $m | $a% | $b% | $diff | $(size "$d/model.loom") B | $(size "$d/model-int8.loom") B ($share) |"
done
