#!/bin/sh
# A careful user's edges (real data group): what each command does when the line is not quite
# right or the run does not go the common way. Option parsing: every value option of every
# command (read from its help) without its value, at the end of the line or followed by another
# option, is one usage error naming the option, never a run with the next word as the value;
# -h works after any command and anywhere on its line. Leftovers: a run that fails leaves no
# half-made directory, and --force replaces the whole old run. Resume: a finished run says so, a
# refused resume leaves config.txt as it was, a run stopped before its first checkpoint starts
# again and ends as an uninterrupted one. Silent clamps: more threads than cores, a subset larger
# than the data, early stopping without validation data: each done, with one warning line. The
# progress bar on a 60-column terminal: no line wider, and Keras's final line (time per step) kept.
. "$(dirname "$0")/lib.inc"
need_data
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
cd "$T" || exit 1 # a run that took a model name for a directory would show up here
case $LOOM in /*) ;; *) LOOM="$OLDPWD/$LOOM" ;; esac
case $DATA in /*) ;; *) DATA="$OLDPWD/$DATA" ;; esac

# expect_error CODE PATTERN command...: exit CODE, exactly one "loom: error: " line on stderr
# matching PATTERN (grep -E), nothing else on stderr.
expect_error() {
    code=$1; pat=$2; shift 2
    "$@" >"$T/o" 2>"$T/e"; rc=$?
    n=$(grep -c '^loom: error: ' "$T/e")
    if [ "$rc" -eq "$code" ] && [ "$n" -eq 1 ] && [ "$(wc -l <"$T/e")" -eq 1 ] &&
        grep '^loom: error: ' "$T/e" | grep -Eq -- "$pat"; then
        ok
    else
        bad "expected exit $code and one error line matching '$pat' from: $* (got $rc: $(cat "$T/e"))"
    fi
}

# ---- 1. option parsing ----
cmds=$($LOOM help | awk '/^  [a-z]+  / {print $1}')
n_opts=0
for c in $cmds; do
    # the value options in the help: "--name VALUE", "--name a|b", "-o DIR"
    opts=$($LOOM help "$c" | grep -oE -- '-(-[a-z][a-z0-9-]*|[a-z]) [A-Z0-9][A-Za-z0-9_|]*|--[a-z][a-z0-9-]* [a-z]+\|[a-z|]+' |
        awk '{print $1}' | sort -u)
    for o in $opts; do
        n_opts=$((n_opts + 1))
        expect_error 2 "^loom: error: $o needs a value" $LOOM "$c" mlp "$o"
        expect_error 2 "^loom: error: $o needs a value" $LOOM "$c" "$o" --quiet mlp
    done
    # -h after the command, and among other words, is the help (the same text as --help)
    $LOOM "$c" --help >"$T/h1" 2>&1
    $LOOM "$c" -h >"$T/h2" 2>&1
    check "[ \$? -eq 0 ] && cmp -s '$T/h1' '$T/h2' && grep -q 'loom $c' '$T/h2'"
    $LOOM "$c" mlp --bogus -h >"$T/h3" 2>&1
    check "[ \$? -eq 0 ] && cmp -s '$T/h1' '$T/h3'"
done
echo "option parsing: $n_opts value options over $(echo $cmds | wc -w) commands"
check "[ $n_opts -ge 80 ]"
# the examples from the field: a missing value never becomes a silent run
expect_error 2 '^loom: error: --epochs needs a value' $LOOM train --epochs --batch 32 mlp
expect_error 2 '^loom: error: --out needs a value' $LOOM train mlp --subset 500 --out
expect_error 2 '^loom: error: --split needs a value' $LOOM eval --split
expect_error 2 '^loom: error: --trials needs a value' $LOOM tune x --trials --cv 3
expect_error 2 "^loom: error: unknown option '--bogus'" $LOOM train mlp --bogus
expect_error 2 "^loom: error: unknown option '-x'" $LOOM eval -x m.loom
check "[ -z \"\$(find '$T' -mindepth 1 -type d)\" ]" # no run directory appeared
$LOOM help help >"$T/o" 2>&1
check "[ \$? -eq 0 ] && grep -q '^usage: loom COMMAND' '$T/o'"

# ---- 3. leftovers: a failed run leaves nothing; --force replaces the whole run ----
printf 'dense 10\nbogus 3\n' >"$T/bad.txt"
expect_error 1 "bad.txt:2: unknown layer kind 'bogus'" $LOOM train "$T/bad.txt" --subset 500 --out "$T/badrun"
check "[ ! -e '$T/badrun' ]"
expect_error 1 "bad.txt:2: unknown layer kind 'bogus'" $LOOM cv "$T/bad.txt" --subset 500 --out "$T/badcv"
check "[ ! -e '$T/badcv' ]"
mkdir "$T/notrun"
expect_error 1 'not a run directory' $LOOM report "$T/notrun" -o "$T/badrep"
check "[ ! -e '$T/badrep' ]"
# a directory that was there stays, with the user's own files; the run's files go
mkdir "$T/keep" && echo mine >"$T/keep/notes.txt"
expect_error 1 "unknown layer kind" $LOOM train "$T/bad.txt" --subset 500 --out "$T/keep"
check "[ \"\$(ls '$T/keep')\" = notes.txt ]"
TR="mlp --subset 1000 --epochs 1 --quiet"
$LOOM train $TR --out "$T/f" >/dev/null 2>&1
check "[ -s '$T/f/learning_curves.png' ] && [ -s '$T/f/metrics.json' ]"
echo mine >"$T/f/notes.txt"
$LOOM train $TR --no-plots --no-test --force --out "$T/f" >/dev/null 2>&1
check "[ \$? -eq 0 ] && [ -s '$T/f/model.loom' ] && [ -s '$T/f/notes.txt' ]"
check "[ -z \"\$(ls '$T/f' | grep -E '\\.png\$|metrics.json|predictions.csv|confusion.csv')\" ]"
$LOOM cv mlp --folds 3 --subset 600 --epochs 1 --quiet --no-plots --out "$T/cv" >/dev/null 2>&1
$LOOM cv mlp --folds 2 --subset 600 --epochs 1 --quiet --no-plots --force --out "$T/cv" >/dev/null 2>&1
check "[ \$? -eq 0 ] && [ -d '$T/cv/fold_2' ] && [ ! -e '$T/cv/fold_3' ]"

# ---- 4. resume ----
crc() { sed -n 's/^weights_crc32[ =:]*//p' "$1/receipt.txt"; }
RR="mlp --subset 2000 --epochs 2 --quiet --no-plots --no-test --checkpoint-steps 5"
$LOOM train $RR --out "$T/ref" >/dev/null 2>&1
check "[ -n \"\$(crc '$T/ref')\" ]"
cp "$T/ref/config.txt" "$T/ref.cfg"
expect_error 2 'the run is finished .*nothing to resume' $LOOM train --resume "$T/ref"
expect_error 2 '--epochs: a resumed run keeps its own settings \(epochs=2 in ' $LOOM train --resume "$T/ref" --epochs 5 --lr 0.5
check "cmp -s '$T/ref.cfg' '$T/ref/config.txt'"
# stopped before its first checkpoint (only config.txt made): starts again from step 0
mkdir "$T/early" && cp "$T/ref/config.txt" "$T/early/"
$LOOM train --resume "$T/early" >/dev/null 2>"$T/e"
check "[ \$? -eq 0 ] && grep -q 'starting again from step 0' '$T/e'"
check "[ \"\$(crc '$T/early')\" = \"\$(crc '$T/ref')\" ]"
expect_error 2 'no config.txt' $LOOM train --resume "$T/nosuchrun"
# a resume refused for a changed setting (another batch size, lr, data) leaves config.txt
$LOOM train $RR --epochs 30 --out "$T/int" >/dev/null 2>&1 &
pid=$!
wait_for "[ -f '$T/int/checkpoint.loomck.prev' ] || ! kill -0 $pid 2>/dev/null"
kill -INT $pid 2>/dev/null; wait $pid
check "[ -f '$T/int/checkpoint.loomck' ]"
cp "$T/int/config.txt" "$T/int.cfg"
expect_error 2 '^loom: error: --batch: a resumed run keeps its own settings \(batch=64 in ' $LOOM train --resume "$T/int" --batch 32
expect_error 2 '^loom: error: --lr: a resumed run keeps its own settings \(lr=0.001 in ' $LOOM train --resume "$T/int" --lr 0.5
mkdir "$T/otherdata" && ln -s "$DATA"/* "$T/otherdata/"
expect_error 2 '^loom: error: --data: a resumed run keeps its own data' $LOOM train --resume "$T/int" --data "$T/otherdata"
check "cmp -s '$T/int.cfg' '$T/int/config.txt'"
# the same values as the run's (and --threads) are no change: it resumes
$LOOM train --resume "$T/int" --lr 0.001 --batch 64 --threads 1 >/dev/null 2>&1
check "[ \$? -eq 0 ] && [ -s '$T/int/model.loom' ] && [ ! -e '$T/int/checkpoint.loomck' ]"

# ---- 5. no silent clamps: one warning line each ----
warns() { grep -c '^loom: warning: ' "$1"; }
S="mlp --epochs 1 --quiet --no-plots --no-test"
$LOOM train $S --subset 500 --threads $(($(nproc) + 1)) --out "$T/w1" >/dev/null 2>"$T/e"
check "[ \$? -eq 0 ] && [ \$(warns '$T/e') -eq 1 ] && grep -q '^loom: warning: --threads $(($(nproc) + 1)) is more than the $(nproc) cores' '$T/e'"
$LOOM train $S --subset 500 --threads "$(nproc)" --out "$T/w0" >/dev/null 2>"$T/e"
check "[ \$? -eq 0 ] && [ \$(warns '$T/e') -eq 0 ]"
$LOOM train $S --subset 100000 --out "$T/w2" >/dev/null 2>"$T/e"
check "[ \$? -eq 0 ] && [ \$(warns '$T/e') -eq 1 ] && grep -q '^loom: warning: subset 100000 is more than the 60000 training examples' '$T/e'"
$LOOM train $S --subset 500 --val-split 0 --early-stopping 3 --out "$T/w3" >/dev/null 2>"$T/e"
check "[ \$? -eq 0 ] && [ \$(warns '$T/e') -eq 1 ] && grep -q '^loom: warning: no validation examples: early_stopping watches the training loss' '$T/e'"
check "grep -q '^warning: no validation examples' '$T/w3/train.log'"
$LOOM cv mlp --folds 2 --epochs 1 --quiet --no-plots --subset 100000 --out "$T/w4" >/dev/null 2>"$T/e" &
pid=$!
wait_for "grep -q 'all of them are used' '$T/e' || ! kill -0 $pid 2>/dev/null" # the whole line
kill $pid 2>/dev/null; wait $pid 2>/dev/null
check "[ \$(warns '$T/e') -eq 1 ] && grep -q 'warning: subset 100000 is more than the 60000' '$T/e'"

# ---- 6. the progress bar fits the terminal ----
if command -v script >/dev/null 2>&1; then
    for cols in 60 100; do
        script -qc "COLUMNS=$cols $LOOM train small-conv --subset 1000 --epochs 2 --no-plots --no-test --out '$T/pb$cols'" /dev/null >"$T/tty" 2>&1
        # the bar's lines, split at carriage returns, escape sequences out
        tr '\r' '\n' <"$T/tty" | sed 's/\x1b\[K//g' | grep ' \[[=>.]*\] - ' >"$T/bars"
        widest=$(awk '{ if (length($0) > w) w = length($0) } END { print w + 0 }' "$T/bars")
        echo "progress bar at COLUMNS=$cols: $(wc -l <"$T/bars") redraws, widest $widest"
        check "[ \$(wc -l <'$T/bars') -ge 2 ] && [ $widest -le $((cols - 1)) ]"
        check "[ \$(grep -c '13/13 \[=*\] - [0-9]*s [0-9]*[mu]s/step' '$T/bars') -eq 2 ]"
    done
    check "grep -q '\[==============================\]' '$T/bars'" # 30 columns when they fit
else
    echo "note: no script(1) here: the progress bar is not tested"
fi

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
