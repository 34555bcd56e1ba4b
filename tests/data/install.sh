#!/bin/sh
# Install and prediction acceptance on the real data (the "real data" test group): `make install`
# into a temporary prefix, build examples/classify.c with pkg-config only (shared and static),
# train a small CNN, then classify test images saved as a user would have them (280x280 RGB PNG,
# dark garment on white) and compare with the model's prediction on the original 28x28 images:
# one through classify, 100 through `loom predict` (at least 95 must agree). Then uninstall.
# PREDICT_MODEL=FILE uses that model file instead of training one (docs/results.sh does).
# shellcheck disable=SC2046,SC2086 # flags and file lists are split on purpose
LOOM=${LOOM:-build/loom}
BUILD=$(dirname "$LOOM")
DATA=${LOOM_DATA:-/usr/share/datasets/fashion-mnist}
N_IMAGES=${N_IMAGES:-100} # transformed test images to predict (95% must agree)
pass=0; fail=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAILED: $*"; }
check() { if eval "$1"; then ok; else bad "$1"; return 1; fi; }

TEST_IMAGES=$DATA/t10k-images-idx3-ubyte.gz
[ -f "$TEST_IMAGES" ] || TEST_IMAGES=$DATA/t10k-images-idx3-ubyte
if [ ! -f "$TEST_IMAGES" ]; then
    echo "no Fashion-MNIST at $DATA (install dataset-fashion-mnist): real-data group not run"
    echo "0 passed, 1 failed"; exit 1
fi
# "W H DEPTH COLOUR_TYPE" from a PNG's IHDR (bytes 16..25), without file(1)
png_header() {
    od -An -tu1 -j16 -N10 "$1" | awk '{ print $3 * 256 + $4, $7 * 256 + $8, $9, $10 }'
}
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
P=$T/prefix

# 1. install: every file in place, pkg-config finds the library
if ! make -s install PREFIX="$P" BUILD="$BUILD" >"$T/make.log" 2>&1; then
    tail -n 20 "$T/make.log"
    echo "make install failed: nothing else to test"
    echo "0 passed, 1 failed"; exit 1
fi
for f in bin/loom lib/libloom.so.0 lib/libloom.so lib/libloom.a include/loom.h \
    lib/pkgconfig/loom.pc share/man/man1/loom.1 share/bash-completion/completions/loom; do
    check "[ -e '$P/$f' ]"
done
check "[ -L '$P/lib/libloom.so' ] && [ \"\$(readlink '$P/lib/libloom.so')\" = libloom.so.0 ]"
check "readelf -d '$P/lib/libloom.so.0' | grep -q 'SONAME.*libloom.so.0'"
export PKG_CONFIG_PATH="$P/lib/pkgconfig"
check "[ -n \"\$(pkg-config --modversion loom)\" ] && [ \"\$(pkg-config --modversion loom)\" = \"\$('$P/bin/loom' --version | cut -d' ' -f2)\" ]"
check "pkg-config --libs --static loom | grep -q -- -fopenmp"
check "grep -q '^.SS \"loom predict' '$P/share/man/man1/loom.1'"
if command -v man >/dev/null; then
    check "MANWIDTH=80 man -l '$P/share/man/man1/loom.1' 2>/dev/null | grep -q 'loom predict'"
else
    echo "skipped: no man(1) on this machine, the installed page is not rendered"
fi
check "bash -c '. \"$P/share/bash-completion/completions/loom\" && complete -p loom' >/dev/null"

# 2. the example, built against the installed files with pkg-config only
CFLAGS_W="-std=c17 -Wall -Wextra -Werror"
cc $CFLAGS_W -o "$T/classify" examples/classify.c $(pkg-config --cflags --libs loom) 2>"$T/cc.log"
check '[ $? -eq 0 ]' || cat "$T/cc.log"
# static: the archive in place of -lloom, the rest from Requires.private and Libs.private
LIBS_STATIC=$(pkg-config --libs --static loom | sed "s|-lloom|$P/lib/libloom.a|")
cc $CFLAGS_W -o "$T/classify-static" examples/classify.c $(pkg-config --cflags loom) \
    $LIBS_STATIC 2>"$T/cc2.log"
check '[ $? -eq 0 ]' || cat "$T/cc2.log"
check "[ -x '$T/classify-static' ] && ! readelf -d '$T/classify-static' | grep -q 'libloom'"
check "readelf -d '$T/classify' | grep -q 'NEEDED.*libloom.so.0'"

# 3. a model (PREDICT_MODEL, or a small one trained here) and its predictions on the original
# test images: the reference classes come from loom eval (for the model trained here, also the
# same as its run's own test evaluation)
if [ -n "$PREDICT_MODEL" ]; then
    mkdir -p "$T/run" && cp "$PREDICT_MODEL" "$T/run/model.loom"
    check "[ -s '$T/run/model.loom' ]"
else
    "$P/bin/loom" train cnn1 --subset 3000 --epochs 1 --seed 1 --out "$T/run" --quiet \
        --threads 2 >"$T/train.log" 2>&1
    check '[ $? -eq 0 ]' || tail -n 5 "$T/train.log"
    check "[ -s '$T/run/model.loom' ] && [ -s '$T/run/predictions.csv' ]"
fi
"$P/bin/loom" eval "$T/run/model.loom" --out "$T/eval" --threads 2 >"$T/eval.log" 2>&1
check '[ $? -eq 0 ]' || tail -n 3 "$T/eval.log"
[ -n "$PREDICT_MODEL" ] || check "cmp -s '$T/eval/predictions.csv' '$T/run/predictions.csv'"

# 4. the test images as a user would have them: 280x280 RGB PNG, a dark garment on white
cc -O2 -o "$T/mkpng" tests/data/mkpng.c $(pkg-config --cflags --libs libpng zlib) 2>"$T/cc3.log"
check '[ $? -eq 0 ]' || cat "$T/cc3.log"
mkdir -p "$T/png"
"$T/mkpng" "$TEST_IMAGES" 0 $N_IMAGES "$T/png"
check "[ -s '$T/png/test-0.png' ] && [ -s '$T/png/test-$((N_IMAGES - 1)).png' ]"
check "[ \"\$(png_header '$T/png/test-0.png')\" = '280 280 8 2' ]" # RGB, 8 bits

# class index -> name, and the model's prediction for the original test image i (csv row i + 2)
NAMES="T-shirt/top,Trouser,Pullover,Dress,Coat,Sandal,Shirt,Sneaker,Bag,Ankle boot"
want_class() { sed -n "$(($1 + 2))p" "$T/eval/predictions.csv" | cut -d, -f3; }

# 5. classify (shared library, then static) on test image 0: the class of the original
want=$(want_class 0)
LD_LIBRARY_PATH="$P/lib" "$T/classify" "$T/run/model.loom" "$T/png/test-0.png" >"$T/c.out" 2>&1
check '[ $? -eq 0 ]' || cat "$T/c.out"
got=$(sed -n 's/.*(class \([0-9]*\),.*/\1/p' "$T/c.out")
echo "classify: $(cat "$T/c.out")  (original 28x28 image: class $want)"
check "[ -n '$want' ] && [ '$got' = '$want' ]"
"$T/classify-static" "$T/run/model.loom" "$T/png/test-0.png" >"$T/c2.out" 2>&1
check "cmp -s '$T/c.out' '$T/c2.out'"
LD_LIBRARY_PATH="$P/lib" "$T/classify" "$T/run/model.loom" "$T/nothing.png" >"$T/c3.out" 2>&1
check "[ \$? -ne 0 ] && [ -x '$T/classify' ] && grep -q 'nothing.png' '$T/c3.out'"

# 6. loom predict on all of them: agreement with the originals' predictions
files=""
i=0
while [ $i -lt $N_IMAGES ]; do files="$files $T/png/test-$i.png"; i=$((i + 1)); done
"$P/bin/loom" predict "$T/run/model.loom" $files --top 1 --save-preprocessed "$T/pre" \
    >"$T/pred.txt" 2>"$T/pred.err"
check '[ $? -eq 0 ]' || cat "$T/pred.err"
check "[ \$(wc -l < '$T/pred.txt') -eq $N_IMAGES ]"
check "[ \"\$(png_header '$T/pre/test-0.png')\" = '28 28 8 0' ]" # gray, 8 bits
agree=$(awk -v names="$NAMES" -v n=$N_IMAGES '
    BEGIN { split(names, N, ",") }
    NR == FNR { if (FNR > 1 && FNR <= n + 1) want[FNR - 2] = N[$3 + 1]; next }
    {   i = $1; sub(/:$/, "", i); sub(/.*test-/, "", i); sub(/\.png$/, "", i)
        name = $0; sub(/^[^:]*: /, "", name); sub(/ [0-9.]+$/, "", name)
        if (name == want[i]) agree++ }
    END { print agree + 0 }' FS=, "$T/eval/predictions.csv" FS=' ' "$T/pred.txt")
echo "agreement: $agree of $N_IMAGES transformed test images (280x280 RGB PNG, dark on white)" \
    "get the class the model gives the original 28x28 image"
check "[ $((agree * 100)) -ge $((95 * N_IMAGES)) ]"
# the raw test images through --idx: exactly the classes of the run's evaluation
"$P/bin/loom" predict "$T/run/model.loom" --idx "$TEST_IMAGES" --top 1 >"$T/idx.txt" 2>&1
check '[ $? -eq 0 ]' || tail -n 3 "$T/idx.txt"
same=$(awk -v names="$NAMES" '
    BEGIN { split(names, N, ",") }
    NR == FNR { if (FNR > 1) want[FNR - 2] = N[$3 + 1]; next }
    {   i = $1; sub(/^.*\[/, "", i); sub(/\]:$/, "", i)
        name = $0; sub(/^[^ ]*: /, "", name); sub(/ [0-9.]+$/, "", name)
        n++; if (name == want[i]) same++ }
    END { print same + 0 "/" n + 0 }' FS=, "$T/eval/predictions.csv" FS=' ' "$T/idx.txt")
echo "loom predict --idx on the test set: $same agree with loom eval's predictions.csv"
check "[ '$same' = '10000/10000' ]"
# JSON for the same files parses and names 100 predictions
"$P/bin/loom" predict "$T/run/model.loom" $files --json >"$T/pred.json" 2>/dev/null
check "[ \$(grep -c '\"file\"' '$T/pred.json') -eq $N_IMAGES ]"

# 7. uninstall removes every file it installed
make -s uninstall PREFIX="$P" >/dev/null 2>&1
check '[ $? -eq 0 ]'
left=$(find "$P" ! -type d | wc -l)
check "[ '$left' -eq 0 ]"
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
