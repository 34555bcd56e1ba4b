#!/bin/sh
# A tiny study end to end (real data group): a few hundred images and one epoch per step, every
# kind of step (train, cv, tune), then checks that every file of the report exists, that every
# picture the report names was drawn, and that every table has rows; then --resume skips all.
. "$(dirname "$0")/lib.inc"
need_data
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
cat > "$T/study.txt" <<'STUDY'
# tiny study for the tests
train mlp --subset 600 --epochs 1
train cnn1 --subset 600 --epochs 1
train lstm --subset 600 --epochs 1
cv rnn --folds 2 --subset 600 --epochs 1
tune builtin:mlp-space --trials 2 --subset 600 --epochs 1
STUDY
$LOOM study "$T/study.txt" --out "$T/s" >"$T/out" 2>"$T/err"
check '[ $? -eq 0 ]'
tail -n 3 "$T/err"
R="$T/s/REPORT.md"
check "[ -s '$R' ]"
for d in mlp cnn1 lstm cv-rnn tune-mlp-space; do
    check "[ -f '$T/s/$d/.done' ]"
    check "grep -q '$d' '$R'"
done
# every picture the report names exists and is a PNG
n_img=0
for img in $(sed -n 's/.*](\(img\/[^)]*\.png\)).*/\1/p' "$R"); do
    n_img=$((n_img + 1))
    if head -c 8 "$T/s/$img" 2>/dev/null | grep -q PNG; then ok; else bad "missing picture $img"; fi
done
check "[ $n_img -ge 15 ]"
check "! grep -q 'not drawn' '$R'"
check "! grep -q 'not made' '$R'"
for section in '## The data' '## Results' '## The runs' '## How these numbers were produced'; do
    check "grep -q '^$section' '$R'"
done
# tables are filled: the class counts, the results table (a row per step), per-class reports
check "grep -q '^| 9 | Ankle boot | 6000 | 1000 |' '$R'"
check "[ \$(grep -c '^| \\(mlp\\|cnn1\\|lstm\\|cv-rnn\\|tune-mlp-space\\) |' '$R') -ge 5 ]"
check "grep -q '^| Ankle boot | [0-9.]*% | [0-9.]*% | [0-9.]*% | 1000 |' '$R'"
check "grep -q 'Mean validation accuracy' '$R'"
check "grep -q '^| trial' '$R'"
# its time: one session, so the wall time; and the runs' own recorded time
check "grep -q '^- Wall time of the whole study: [0-9]* s' '$R'"
check "grep -Eq '^- Training and validation time recorded by the runs themselves.*: [0-9.]+ (s|min|h)\.$' '$R'"
# a finished study resumes to nothing: every step is skipped
$LOOM study "$T/study.txt" --out "$T/s" --resume >"$T/out2" 2>"$T/err2"
check '[ $? -eq 0 ]'
check "[ \$(grep -c 'finished earlier, skipped' '$T/err2') -eq 5 ]"
# ... and its report says so instead of giving that session's seconds as the study's
check "grep -q '^- The study ran in several sessions (.--resume.): 5 of its 5 steps' '$R'"
check "! grep -q '^- Wall time of the whole study' '$R'"
check "grep -q '^- Training and validation time recorded by the runs themselves' '$R'"
# without --resume or --force an existing study is refused
$LOOM study "$T/study.txt" --out "$T/s" >/dev/null 2>"$T/err3"
check '[ $? -eq 2 ]'
check "grep -q 'resume' '$T/err3'"
# a bad study file names its line
printf 'train mlp\nfly away\n' > "$T/bad.txt"
$LOOM study "$T/bad.txt" --out "$T/b" >/dev/null 2>"$T/err4"
check '[ $? -ne 0 ]'
check "grep -q 'bad.txt:2' '$T/err4'"
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
