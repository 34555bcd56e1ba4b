#!/bin/sh
# Regenerates docs/RESULTS.md from a full `loom study` (every zoo model with its defaults on the
# full Fashion-MNIST training set, 80/20 stratified split, seed 42, evaluated once on the test
# set; the 5-fold cross-validations; the MLP random search; every model's int8 copy, through
# bench/int8_table.sh) and copies the study's report to
# docs/study/. Takes a few hours on a 2-core machine; an interrupted study continues where it
# stopped. Usage: sh docs/results.sh [--table-only]
#   --table-only  only rewrite docs/RESULTS.md from the study directory as it is
# OUT (default runs/study) is the study directory. The speed section is docs/BENCHMARKS.md
# (sh bench/run.sh), included when it exists.
set -u
LOOM=${LOOM:-build/loom}
OUT=${OUT:-runs/study}
if [ "${1:-}" != "--table-only" ]; then
    if [ -d "$OUT" ]; then
        $LOOM study --resume --out "$OUT" || exit 1
    else
        $LOOM study --out "$OUT" || exit 1
    fi
fi
[ -d "$OUT" ] || { echo "docs/results.sh: no study in $OUT (run without --table-only)" >&2; exit 1; }

# num FILE KEY: a top-level number of a metrics.json (cJSON writes '"key":<tab>value,')
num() { sed -n "s/^[[:space:]]*\"$2\":[[:space:]]*\([-0-9.eE+]*\).*/\1/p" "$1" | head -n 1; }
pct() { awk -v x="$1" 'BEGIN{printf "%.2f%%", 100 * x}'; }
models=$($LOOM models | awk '{print $1}')
# the test accuracy each model must reach (loom's accuracy targets: the published figure for the
# same architecture, beaten)
target() {
    case $1 in
    mlp) echo 89.0 ;; conv-maxpool | strided-conv) echo 91.0 ;; drop-norm-l2) echo 92.5 ;;
    cnn2 | keras-v1) echo 91.5 ;; rnn) echo 88.0 ;; rnn2) echo 88.5 ;; lstm | gru) echo 90.5 ;;
    lstm2) echo 91.0 ;; *) echo "" ;;
    esac
}

{
    echo "# Results"
    echo
    echo "Regenerate with \`sh docs/results.sh\` (a full \`loom study\` in \`runs/study\`; its report is"
    echo "[docs/study/REPORT.md](study/REPORT.md)). Machine: $(nproc) cores,"
    echo "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), loom $($LOOM --version | cut -d' ' -f2)."
    echo
    echo "## Every zoo model"
    echo
    echo "Zoo defaults (\`loom models -v\`), 48,000 training / 12,000 validation images (stratified,"
    echo "seed 42), evaluated once on the 10,000 test images. Seconds are the training time as it ran"
    echo "(2 threads); the runs of this table shared the machine with other jobs, so they are not speed"
    echo "figures: those are in the Speed section below."
    echo
    echo "| model | params | epochs | seconds | s/epoch | test acc | target | macro F1 | published |"
    echo "|---|---|---|---|---|---|---|---|---|"
    for m in $models; do
        d="$OUT/$m"
        [ -s "$d/metrics.json" ] || continue
        params=$(sed -n 's/^Total params: //p' "$d/summary.txt")
        epochs=$(($(wc -l <"$d/history.csv") - 1))
        secs=$(awk -F, 'NR>1{s+=$7} END{printf "%.0f", s}' "$d/history.csv")
        spe=$(awk -F, 'NR>1{s+=$7;n++} END{printf "%.1f", s/n}' "$d/history.csv")
        pub=$($LOOM models -v | awk -v m="$m" '$1==m{f=1;next} f&&/published:/{sub(/.*published: /,"");print;exit} f&&/^[a-z]/{exit}')
        acc=$(num "$d/metrics.json" accuracy)
        t=$(target "$m")
        if [ -z "$t" ]; then
            tc="—"
        else
            tc="$t% $(awk -v a="$acc" -v t="$t" 'BEGIN{print (100 * a >= t - 1e-9) ? "✓" : "✗"}')"
        fi
        echo "| $m | $params | $epochs | $secs | $spe | $(pct "$acc") | $tc | $(pct "$(num "$d/metrics.json" macro_f1)") | ${pub:-—} |"
    done
    echo
    echo "Published figures are those of the study that used the same architecture."

    for cv in "$OUT"/cv-*/cv.csv; do
        [ -s "$cv" ] || continue
        name=$(basename "$(dirname "$cv")" | sed 's/^cv-//')
        echo
        echo "## 5-fold cross-validation: $name"
        echo
        echo "\`loom cv $name --folds 5\`: stratified folds of the 60,000 training images, zoo defaults."
        echo
        echo "| fold | val acc | val macro F1 | val loss | epochs | seconds |"
        echo "|---|---|---|---|---|---|"
        awk -F, 'NR>1{printf "| %d | %.2f%% | %.2f%% | %.4f | %d | %.0f |\n", $1, 100*$2, 100*$3, $4, $5, $6}' "$cv"
        awk -F, 'NR>1{n++; s+=$2; q+=$2*$2; f+=$3} END{m=s/n; sd=(n>1)?sqrt((q-n*m*m)/(n-1)):0;
            printf "| mean | **%.2f%%** ± %.2f | %.2f%% | | | |\n", 100*m, 100*sd, 100*f/n}' "$cv"
    done

    for tr in "$OUT"/tune-*/trials.csv; do
        [ -s "$tr" ] || continue
        td=$(dirname "$tr")
        echo
        echo "## Random search: $(basename "$td" | sed 's/^tune-//')"
        echo
        echo "\`loom tune\` over the study's MLP space (\`loom study --print\`), 5 trials × 2 executions"
        echo "of $(grep -m1 '^epochs' "$OUT/mlp-space.txt" 2>/dev/null | cut -d' ' -f2) epochs$(grep -q '^standardize=1' "$td/tune.txt" 2>/dev/null && echo ' on standardised pixels');"
        echo "score = mean validation accuracy of a trial's executions."
        echo
        head -n 1 "$tr" | awk -F, '{printf "|"; for (i = 1; i <= NF; i++) printf " %s |", $i; printf "\n|"; for (i = 1; i <= NF; i++) printf "---|"; printf "\n"}'
        awk -F, 'NR>1{printf "|"; for (i = 1; i <= NF; i++) printf " %s |", (i == 2 ? sprintf("%.2f%%", 100*$i) : $i); printf "\n"}' "$tr"
        if [ -s "$td/best/metrics.json" ]; then
            echo
            if grep -q '^tune_refit=all' "$td/best/config.txt" 2>/dev/null; then
                echo "The best trial retrained on all 60,000 training images (\`--refit all\`): test accuracy"
            else
                echo "The best trial retrained on the training split: test accuracy"
            fi
            echo "**$(pct "$(num "$td/best/metrics.json" accuracy)")**, macro F1 $(pct "$(num "$td/best/metrics.json" macro_f1)")."
        fi
    done

    echo
    echo "## Speed"
    echo
    if [ -s docs/BENCHMARKS.md ]; then
        # the first table only (the throughput one; later tables have their own context)
        awk '/^\| model/ { on = 1 } on && /^$/ { exit } on' docs/BENCHMARKS.md
        echo
        echo "From [BENCHMARKS.md](BENCHMARKS.md) (\`sh bench/run.sh\`, side by side with PyTorch)."
    else
        echo "Not measured yet: \`sh bench/run.sh\` writes docs/BENCHMARKS.md."
    fi

    echo
    echo "## Prediction on transformed images"
    echo
    echo "\`loom predict\` on test images saved as 280x280 RGB PNGs, dark garment on a white"
    pm="$OUT/conv-maxpool/model.loom"
    [ -s "$pm" ] || pm=""
    if [ -n "$pm" ]; then which="the study's conv-maxpool"; else which="a cnn1 trained for one epoch on 3,000 images"; fi
    echo "background, against the prediction of the same model ($which) on the original 28x28 images"
    echo "(\`PREDICT_MODEL=$pm sh tests/data/install.sh\`, which also builds \`examples/classify.c\` against an installed loom):"
    echo
    out=$(LOOM=$LOOM PREDICT_MODEL=$pm sh tests/data/install.sh 2>/dev/null)
    agree=$(echo "$out" | sed -n 's/^agreement: //p')
    idx=$(echo "$out" | sed -n 's/^loom predict --idx on the test set: //p')
    echo "- ${agree:-not measured (tests/data/install.sh failed)}"
    [ -n "$idx" ] && echo "- \`loom predict --idx\` on the 10,000 test images: $idx"

    echo
    echo "## int8 post-training quantization"
    echo
    echo "Every zoo model of the study quantized by \`loom quantize\` with its defaults (activation"
    echo "scales: the largest |x| at each int8 layer's input over a stratified 1,000 training images)"
    echo "and evaluated on the 10,000 test images (\`sh bench/int8_table.sh $OUT\`):"
    echo
    LOOM=$LOOM sh bench/int8_table.sh "$OUT"
} >docs/RESULTS.md.tmp && mv docs/RESULTS.md.tmp docs/RESULTS.md

# the study's report and its pictures, for docs/study/ (once the study has finished)
[ -s "$OUT/REPORT.md" ] || { echo "wrote docs/RESULTS.md (the study is not finished: no report yet)"; exit 0; }
rm -rf docs/study.tmp && mkdir -p docs/study.tmp &&
    cp "$OUT/REPORT.md" docs/study.tmp/ &&
    { [ ! -d "$OUT/img" ] || cp -r "$OUT/img" docs/study.tmp/; } &&
    rm -rf docs/study && mv docs/study.tmp docs/study
echo "wrote docs/RESULTS.md and docs/study/"
