#!/bin/sh
# Image folders as data (--data DIR with DIR/train/CLASS/*.png and DIR/test/CLASS/*.png): 600
# training and 200 test Fashion-MNIST images written as PNG folders train exactly as the same
# images written as IDX files in the folder reader's order (same data CRC, same weights, same test
# accuracy); eval and predict name the folder classes; bad folders get one line each.
. "$(dirname "$0")/lib.inc"
need_data
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT

cc -O2 -o "$T/mkfolder" tests/data/mkfolder.c $(pkg-config --cflags --libs libpng zlib) 2>"$T/cc.log"
check "[ -x '$T/mkfolder' ]"
img() { ls "$DATA/$1"* | head -n 1; }
"$T/mkfolder" "$(img train-images-idx3-ubyte)" "$(img train-labels-idx1-ubyte)" 600 train "$T/f" "$T/idx"
check '[ $? -eq 0 ]'
"$T/mkfolder" "$(img t10k-images-idx3-ubyte)" "$(img t10k-labels-idx1-ubyte)" 200 test "$T/f" "$T/idx"
check '[ $? -eq 0 ]'
check "[ \$(ls '$T/f/train' | wc -l) -eq 10 ] && [ -s '$T/f/train/c9/00000.png' ] || [ -d '$T/f/train/c9' ]"

opts="--epochs 2 --seed 3 --threads 2 --no-plots --quiet"
$LOOM train small-conv --data "$T/f" $opts --out "$T/rf" >"$T/of" 2>"$T/ef"
check '[ $? -eq 0 ]'
$LOOM train small-conv --data "$T/idx" $opts --out "$T/ri" >"$T/oi" 2>"$T/ei"
check '[ $? -eq 0 ]'
for key in data_crc32 weights_crc32; do
    a=$(grep "^$key" "$T/rf/receipt.txt"); b=$(grep "^$key" "$T/ri/receipt.txt")
    echo "folder $a, idx $b"
    check "[ -n '$a' ] && [ '$a' = '$b' ]"
done
af=$(sed -n 's/.*test accuracy \([0-9.]*\)%.*/\1/p' "$T/of"); ai=$(sed -n 's/.*test accuracy \([0-9.]*\)%.*/\1/p' "$T/oi")
echo "test accuracy: folder $af%, IDX $ai%"
check "[ -n '$af' ] && [ '$af' = '$ai' ]"
# the class names are the folders' and stay with the model
check "grep -q '^classes=\[\"c0\",\"c1\",.*\"c9\"\]' '$T/rf/config.txt'"
$LOOM eval "$T/rf/model.loom" --data "$T/f" >"$T/ev" 2>&1
check "grep -q 'c7' '$T/ev'"
$LOOM predict "$T/rf/model.loom" "$T/f/test/c9/"*.png --top 1 >"$T/pr" 2>&1
check "grep -q 'c[0-9]' '$T/pr'"

# bad folders: one line each, exit 1, no run directory left
one_error() { [ "$(wc -l <"$1")" -eq 1 ] && grep -q "^loom: error: .*$2" "$1"; }
mkdir -p "$T/b1/train/a" "$T/b1/train/b" "$T/b1/test/a"
cp "$T/f/train/c0/"0*.png "$T/b1/train/a/" 2>/dev/null
$LOOM train mlp --data "$T/b1" --epochs 1 --out "$T/rb1" >/dev/null 2>"$T/e1"
check "[ \$? -eq 1 ] && one_error '$T/e1' 'b1/train/b: no images' && [ ! -d '$T/rb1' ]"
cp -r "$T/f" "$T/b2"; mkdir -p "$T/b2/test/zz"; cp "$T/f/test/c0/"*.png "$T/b2/test/zz/"
$LOOM train mlp --data "$T/b2" --epochs 1 --out "$T/rb2" >/dev/null 2>"$T/e2"
check "[ \$? -eq 1 ] && one_error '$T/e2' \"class 'zz' is not among the training classes\""
cp -r "$T/f" "$T/b3"; printf 'not a png' >"$T/b3/train/c3/99999.png"
$LOOM train mlp --data "$T/b3" --epochs 1 --no-test --out "$T/rb3" >/dev/null 2>"$T/e3"
check "[ \$? -eq 1 ] && one_error '$T/e3' 'b3/train/c3/99999.png'"
$LOOM train mlp --data "$T/b3" --epochs 1 --no-test --quiet --no-plots --skip-bad-images \
    --out "$T/rb3" >/dev/null 2>"$T/e4"
check "[ \$? -eq 0 ] && grep -q '1 unreadable training images left out (600 read)' '$T/rb3/train.log'"
mkdir -p "$T/b5/train"
$LOOM train mlp --data "$T/b5" --epochs 1 --out "$T/rb5" >/dev/null 2>"$T/e5"
check "[ \$? -eq 1 ] && one_error '$T/e5' 'class folders'"
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
