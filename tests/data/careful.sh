#!/bin/sh
# A careful user's tool, second part (real data group). Inputs checked before any work: a test
# set that does not fit the training set is refused by train, cv, tune and eval before training
# (nothing made), and a study checks every step (model, flags, data) before its first one runs.
# A report on ad-hoc runs (train, cv, tune) reads as one: a title naming them, a provenance row
# for each (kind, seed, threads, training time, the command as typed). Numbers as people read
# them: accuracies in percent with two decimals, ± not +-, 1 epoch not 1 epochs. Ctrl-C during
# the final test stops it (exit 130), and --resume runs the test alone, to the same numbers; a
# write killed half-way leaves NAME.tmp.PID, removed by the next command in that directory;
# tune --force replaces the old search's best/.
. "$(dirname "$0")/lib.inc"
need_data
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
case $LOOM in /*) ;; *) LOOM="$PWD/$LOOM" ;; esac
case $DATA in /*) ;; *) DATA="$PWD/$DATA" ;; esac

# expect_error CODE PATTERN command...: exit CODE, exactly one "loom: error: " line on stderr
# matching PATTERN (grep -E), nothing else on stderr.
expect_error() {
    code=$1; pat=$2; shift 2
    "$@" >"$T/o" 2>"$T/e"; rc=$?
    if [ "$rc" -eq "$code" ] && [ "$(wc -l <"$T/e")" -eq 1 ] &&
        grep '^loom: error: ' "$T/e" | grep -Eq -- "$pat"; then
        ok
    else
        bad "expected exit $code and one error line matching '$pat' from: $* (got $rc: $(cat "$T/e"))"
    fi
}
# idx_images FILE N H W, idx_labels FILE N LAST: plain IDX files, zero pixels, labels 0 but the
# last one (LAST, in octal)
be32() { printf "\\$(printf %o $(($1 >> 24 & 255)))\\$(printf %o $(($1 >> 16 & 255)))\\$(printf %o $(($1 >> 8 & 255)))\\$(printf %o $(($1 & 255)))"; }
idx_images() { { printf '\0\0\10\3'; be32 "$2"; be32 "$3"; be32 "$4"; head -c $(($2 * $3 * $4)) /dev/zero; } >"$1"; }
idx_labels() { { printf '\0\0\10\1'; be32 "$2"; head -c $(($2 - 1)) /dev/zero; printf "\\$3"; } >"$1"; }

# ---- checks before work: a test set that does not fit ----
for d in small more; do
    mkdir "$T/$d"
    for f in train-images-idx3-ubyte train-labels-idx1-ubyte; do
        ln -s "$DATA/$f.gz" "$T/$d/$f.gz" 2>/dev/null || ln -s "$DATA/$f" "$T/$d/$f"
    done
done
idx_images "$T/small/t10k-images-idx3-ubyte" 100 14 14
idx_labels "$T/small/t10k-labels-idx1-ubyte" 100 11
idx_images "$T/more/t10k-images-idx3-ubyte" 100 28 28
idx_labels "$T/more/t10k-labels-idx1-ubyte" 100 13 # label 11 of a 10-class training set
Q="--subset 500 --epochs 1 --quiet --no-plots"
SZ='the test images are 14x14x1, the training images 28x28x1'
CL='the test labels go up to 11, the training set has 10 classes'
expect_error 1 "$SZ" $LOOM train mlp $Q --data "$T/small" --out "$T/r1"
expect_error 1 "$CL" $LOOM train mlp $Q --data "$T/more" --out "$T/r1"
expect_error 1 "$SZ" $LOOM cv mlp $Q --folds 2 --test --data "$T/small" --out "$T/r2"
expect_error 1 "$CL" $LOOM cv mlp $Q --folds 2 --test --data "$T/more" --out "$T/r2"
printf 'flatten\ndense {16|32}\ndense 10\nepochs 1\n' >"$T/space.txt"
expect_error 1 "$SZ" $LOOM tune "$T/space.txt" --trials 1 --subset 500 --quiet --no-plots --data "$T/small" --out "$T/r3"
expect_error 1 "$CL" $LOOM tune "$T/space.txt" --trials 1 --subset 500 --quiet --no-plots --data "$T/more" --out "$T/r3"
check "[ ! -e '$T/r1' ] && [ ! -e '$T/r2' ] && [ ! -e '$T/r3' ]" # nothing made, nothing trained
# without a test set the same data trains
$LOOM train mlp $Q --no-test --data "$T/small" --out "$T/ok" >/dev/null 2>&1
check "[ \$? -eq 0 ] && [ -s '$T/ok/model.loom' ]"
expect_error 1 'model.loom has 10 classes, the data.s labels go up to 11' $LOOM eval "$T/ok/model.loom" --data "$T/more" --out "$T/ev"
expect_error 1 'expects 28x28x1 images, the data has 14x14x1' $LOOM eval "$T/ok/model.loom" --data "$T/small" --out "$T/ev"
check "[ ! -e '$T/ev' ]"
# --check: the whole command checked, nothing written
$LOOM train mlp $Q --check --out "$T/c1" >"$T/o" 2>&1
check "[ \$? -eq 0 ] && grep -q 'checked' '$T/o' && [ ! -e '$T/c1' ]"
$LOOM cv mlp $Q --folds 2 --check --out "$T/c2" >"$T/o" 2>&1
check "[ \$? -eq 0 ] && grep -q 'checked' '$T/o' && [ ! -e '$T/c2' ]"
$LOOM tune "$T/space.txt" --trials 1 --subset 500 --check --out "$T/c3" >"$T/o" 2>&1
check "[ \$? -eq 0 ] && grep -q 'checked' '$T/o' && [ ! -e '$T/c3' ]"
expect_error 1 "$SZ" $LOOM train mlp $Q --check --data "$T/small" --out "$T/c1"
# a validation split that leaves nothing to train on is found before the first line of training
expect_error 2 'val_split 0.99 of 10 examples leaves none to train on' $LOOM train mlp --subset 10 --val-split 0.99 --out "$T/c1"
check "[ ! -e '$T/c1' ] && [ ! -s '$T/o' ]"

# ---- a study checks every step before the first one runs ----
S="--epochs 1 --subset 500"
printf 'train mlp %s\ncv mlp --folds 2 %s\ntrain nosuchmodel\n' "$S" "$S" >"$T/s1.txt"
printf 'train mlp %s\ntune builtin:mlp-space --trials 1 --bogus\n' "$S" >"$T/s2.txt"
printf 'train mlp %s\n# a comment\ncv mlp --folds 2 --lr -3\n' "$S" >"$T/s3.txt"
printf 'train mlp %s\ncv mlp --folds 2 --test %s\n' "$S" "$S" >"$T/s4.txt"
mkdir "$T/tmp"
expect_error 2 "s1.txt:3: 'train nosuchmodel' cannot run: unknown model 'nosuchmodel'" env TMPDIR="$T/tmp" $LOOM study "$T/s1.txt" --out "$T/st1"
expect_error 2 "s2.txt:2: 'tune builtin:mlp-space' cannot run: unknown option '--bogus'" $LOOM study "$T/s2.txt" --out "$T/st2"
expect_error 2 "s3.txt:3: 'cv mlp' cannot run: --lr: expected a number" $LOOM study "$T/s3.txt" --out "$T/st3"
expect_error 2 "s4.txt:1: 'train mlp' cannot run: $SZ" $LOOM study "$T/s4.txt" --data "$T/small" --out "$T/st4"
check "[ ! -e '$T/st1' ] && [ ! -e '$T/st2' ] && [ ! -e '$T/st3' ] && [ ! -e '$T/st4' ]"
check "[ -z \"\$(ls '$T/tmp')\" ]" # its temporary files gone
# a resumed study is the same study: another study file, or --quick changed, is refused
printf 'train mlp %s --no-test\n' "$S" >"$T/s5.txt"
$LOOM study "$T/s5.txt" --out "$T/st5" >/dev/null 2>&1
check "[ \$? -eq 0 ] && [ -s '$T/st5/REPORT.md' ]"
cp "$T/st5/study.txt" "$T/st5.txt"
printf 'train mlp %s --no-test\ntrain small-conv %s\n' "$S" "$S" >"$T/s5.txt"
expect_error 2 'study.txt: the study file changed since the study began' $LOOM study "$T/s5.txt" --resume --out "$T/st5"
cp "$T/st5.txt" "$T/s5.txt"
expect_error 2 'the study began without --quick: resume it the same way' $LOOM study "$T/s5.txt" --resume --quick --out "$T/st5"
check "cmp -s '$T/st5.txt' '$T/st5/study.txt' && [ ! -e '$T/st5/small-conv' ]"

# ---- a report on ad-hoc runs ----
R="--subset 1000 --epochs 1 --quiet --no-plots"
$LOOM train mlp $R --out "$T/a_mlp" >/dev/null 2>"$T/train.err"
check "[ \$? -eq 0 ]"
$LOOM cv mlp --folds 2 $R --out "$T/a_cv" >"$T/cv.out" 2>"$T/cv.err"
check "[ \$? -eq 0 ]"
$LOOM tune "$T/space.txt" --trials 2 $R --out "$T/a_tune" >"$T/tune.out" 2>"$T/tune.err"
check "[ \$? -eq 0 ]"
$LOOM report "$T/a_mlp" "$T/a_cv" "$T/a_tune" -o "$T/rep" >/dev/null 2>&1
check "[ \$? -eq 0 ]"
M="$T/rep/REPORT.md"
check "[ \"\$(head -n 1 '$M')\" = '# loom report: a_mlp, a_cv and a_tune' ]"
check "grep -q '<title>loom report: a_mlp, a_cv and a_tune</title>' '$T/rep/REPORT.html'"
check "grep -q '^| run | kind | seed | threads | training time | command |' '$M'"
# every run has its row: kind, seed, threads, a time, and the command as typed (not reordered)
check "grep -Eq '^\| a_mlp \| training \| 42 \| [0-9]+ \| [0-9.]+ (s|min|h) \| .*loom train mlp --subset' '$M'"
check "grep -Eq '^\| a_cv \| cross-validation \| 42 \| [0-9]+ \| [0-9.]+ (s|min|h) \| .*loom cv mlp --folds 2 ' '$M'"
check "grep -Eq '^\| a_tune \| search \| 42 \| [0-9]+ \| [0-9.]+ (s|min|h) \| .*loom tune [^ ]*space.txt --trials 2 ' '$M'"
check "! grep -q '| ? |' '$M'"
check "grep -Eq '^- Training and validation time .*: [0-9.]+ (s|min|h)\.\$' '$M'"
# the cv and tune tables in percent, like the rest of the report
check "grep -Eq '^\| 1 \| [0-9]+\.[0-9]{2}% \| [0-9]+\.[0-9]{2}% \| [0-9]\.[0-9]{4} \| 1 \| [0-9.]+ \|\$' '$M'"
check "grep -Eq '^\| [12] \| [0-9]+\.[0-9]{2}% \| (16|32) \| [0-9.]+ \|\$' '$M'"
check "grep -q '^### a_cv (cross-validation)' '$M'"
# a data directory given to the report that cannot be read: refused before anything is made
expect_error 1 'nosuchdata/t10k-images-idx3-ubyte.*not found' $LOOM report "$T/a_mlp" -o "$T/rep3" --data "$T/nosuchdata"
check "[ ! -e '$T/rep3' ]"
# two runs of one name (x/run, y/run): each its own pictures, named by its path
mkdir "$T/x" "$T/y" && cp -r "$T/a_mlp" "$T/x/run" && cp -r "$T/a_mlp" "$T/y/run"
(cd "$T" && $LOOM report x/run y/run -o rep2 >/dev/null 2>&1)
check "[ \$? -eq 0 ] && grep -q '^### x_run\$' '$T/rep2/REPORT.md' && grep -q '^### y_run\$' '$T/rep2/REPORT.md'"
check "[ -s '$T/rep2/img/x_run_architecture.png' ] && [ -s '$T/rep2/img/y_run_architecture.png' ]"

# ---- numbers as people read them: one accuracy style, ±, singular counts ----
L="$T/a_mlp/train.log"
frac='acc[a-z_]*:? 0\.[0-9]{4}|accuracy 0\.[0-9]'
for f in "$L" "$T/train.err" "$T/cv.out" "$T/cv.err" "$T/tune.out" "$T/tune.err" "$M"; do
    check "! grep -Eq '$frac' '$f' && ! grep -q -- '+-' '$f' && ! grep -Eq '(^|[^0-9])1 (epochs|trials|folds|steps|executions|images)' '$f'"
done
check "grep -Eq '^Epoch 1/1 - .* - acc: [0-9]+\.[0-9]{2}% - val_loss: [0-9.]+ - val_acc: [0-9]+\.[0-9]{2}% ' '$L'"
check "grep -Eq '^loom .*, 1 epoch, ' '$L' && grep -Eq '^test: accuracy [0-9]+\.[0-9]{2}%' '$L'"
check "grep -Eq '^mean ± std over 2 folds: val accuracy [0-9.]+ ± [0-9.]+%' '$T/cv.err'"
check "grep -Eq '^ +1 +[0-9]+\.[0-9]{2}% +[0-9]+\.[0-9]{2}% ' '$T/cv.out'"
check "grep -Eq '^best: trial [12], val_acc [0-9]+\.[0-9]{2}%' '$T/tune.out'"
$LOOM eval "$T/a_mlp/model.loom" >"$T/ev" 2>&1
check "grep -Eq '^ +accuracy +[0-9]+\.[0-9]{2}% +10000\$' '$T/ev' && grep -Eq '^ +macro avg +[0-9]+\.[0-9]{2}% ' '$T/ev'"
check "grep -Eq '^[^ ]+ on test: accuracy [0-9]+\.[0-9]{2}%, loss [0-9.]+, 10000 images\$' '$T/ev'"
# ---- Ctrl-C during the final test: stops, exit 130; --resume tests the saved model ----
K="keras-v1 --subset 300 --epochs 1 --quiet --no-plots"
$LOOM train $K --out "$T/tref" >/dev/null 2>&1
$LOOM train $K --threads 1 --out "$T/tint" >/dev/null 2>"$T/e" &
pid=$!
wait_for "[ -f '$T/tint/receipt.txt' ] || ! kill -0 $pid 2>/dev/null" # the test comes next
kill -INT $pid 2>/dev/null; wait $pid; rc=$?
check "[ $rc -eq 130 ] && grep -q '^loom: error: interrupted during the test evaluation' '$T/e'"
check "[ -s '$T/tint/model.loom' ] && [ ! -e '$T/tint/metrics.json' ] && [ ! -e '$T/tint/predictions.csv' ]"
check "grep -q 'the test can be resumed' '$T/tint/train.log'"
$LOOM train --resume "$T/tint" >"$T/o" 2>&1
check "[ \$? -eq 0 ] && cmp -s '$T/tref/predictions.csv' '$T/tint/predictions.csv' && cmp -s '$T/tref/metrics.json' '$T/tint/metrics.json'"
check "grep -q 'test accuracy' '$T/o' && grep -q '^test: accuracy' '$T/tint/train.log'"
expect_error 2 'the run is finished' $LOOM train --resume "$T/tint"

# ---- a write killed half-way: its NAME.tmp.PID goes with the next command there ----
sh -c 'exit 0' & dead=$!; wait $dead # a process that is gone
echo half >"$T/a_mlp/model.loom.tmp.$dead"
mkdir -p "$T/a_cv/fold_1" && echo half >"$T/a_cv/fold_1/history.csv.tmp.$dead"
echo half >"$T/rep/REPORT.md.tmp.$dead"
echo live >"$T/a_mlp/history.csv.tmp.$$" # a live process's: kept
echo mine >"$T/a_mlp/notes.tmp.txt"
$LOOM train mlp $R --force --out "$T/a_mlp" >/dev/null 2>&1
check "[ ! -e '$T/a_mlp/model.loom.tmp.$dead' ] && [ -e '$T/a_mlp/history.csv.tmp.$$' ] && [ -e '$T/a_mlp/notes.tmp.txt' ]"
$LOOM cv mlp --folds 2 $R --force --out "$T/a_cv" >/dev/null 2>&1
check "[ ! -e '$T/a_cv/fold_1/history.csv.tmp.$dead' ]"
$LOOM report "$T/a_mlp" -o "$T/rep" >/dev/null 2>&1
check "[ ! -e '$T/rep/REPORT.md.tmp.$dead' ]"

# ---- tune --force: a new search, the old one's best/ gone ----
check "[ -d '$T/a_tune/best' ]"
$LOOM tune "$T/space.txt" --trials 1 $R --no-best --force --out "$T/a_tune" >/dev/null 2>&1
check "[ \$? -eq 0 ] && [ ! -e '$T/a_tune/best' ] && [ \$(tail -n +2 '$T/a_tune/trials.csv' | wc -l) -eq 1 ]"

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
