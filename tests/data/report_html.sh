#!/bin/sh
# REPORT.html in a real browser: `loom report` over two short runs writes a self-contained page
# (every picture embedded as a data: URI, no link outside the file); Debian's Chromium, headless,
# parses it (its DOM holds every picture) and renders it to a screenshot, kept in
# build/test-output/report_html.png. Chromium is installed by .ci/packages: without it, this fails.
. "$(dirname "$0")/lib.inc"
need_data
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
OUT=${TEST_OUTPUT:-build/test-output}
mkdir -p "$OUT"

$LOOM train small-conv --subset 1000 --epochs 2 --quiet --augment flip,mixup --out "$T/a" \
    >/dev/null 2>&1
check '[ $? -eq 0 ]'
$LOOM train mlp --subset 1000 --epochs 2 --quiet --out "$T/b" >/dev/null 2>&1
check '[ $? -eq 0 ]'
$LOOM report "$T/a" "$T/b" -o "$T/rep" >"$T/out" 2>&1
check '[ $? -eq 0 ]'
H="$T/rep/REPORT.html"
# the augmentation of a run that has one, as config.txt holds it; none for the plain run
check "[ \$(grep -c '^Augmentation: ' '$T/rep/REPORT.md') -eq 1 ]"
check "grep -q '^Augmentation: .flip,shift:0,mixup:1.\\.$' '$T/rep/REPORT.md'"
check "[ -s '$H' ]"
n_md=$(grep -c '!\[' "$T/rep/REPORT.md")
n_img=$(grep -o '<img src="data:image/png;base64,[A-Za-z0-9+/=]*"' "$H" | wc -l)
echo "REPORT.md names $n_md pictures; REPORT.html embeds $n_img"
check "[ '$n_md' -ge 5 ] && [ '$n_img' -eq '$n_md' ]"
# nothing outside the file: no relative picture, no http(s) link or stylesheet
check "! grep -q -e 'src=\"img/' -e 'href=\"http' -e 'src=\"http' -e '<link' '$H'"
# every embedded picture decodes to a PNG
bad_png=0
grep -o 'data:image/png;base64,[A-Za-z0-9+/=]*' "$H" | sed 's/^data:image\/png;base64,//' >"$T/b64"
while read -r b; do
    printf '%s' "$b" | base64 -d 2>/dev/null | head -c 8 | od -An -tx1 | tr -d ' \n' >"$T/sig"
    [ "$(cat "$T/sig")" = "89504e470d0a1a0a" ] || bad_png=$((bad_png + 1))
done <"$T/b64"
check "[ $bad_png -eq 0 ]"

CHROME=$(command -v chromium || command -v chromium-browser || command -v chromium-headless-shell)
if [ -z "$CHROME" ]; then
    bad "no chromium: install Debian's chromium (.ci/packages) to test REPORT.html in a browser"
else
    flags="--headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
--disable-background-networking --disable-component-update --disable-sync"
    timeout 120 "$CHROME" $flags --user-data-dir="$T/c1" --dump-dom "file://$H" >"$T/dom" 2>/dev/null
    n_dom=$(grep -o '<img src="data:image/png' "$T/dom" | wc -l)
    echo "Chromium's DOM holds $n_dom pictures"
    check "[ '$n_dom' -eq '$n_img' ] && grep -q '<h1>loom report: a and b</h1>' '$T/dom'"
    rm -f "$OUT/report_html.png"
    timeout 120 "$CHROME" $flags --user-data-dir="$T/c2" --window-size=1200,3000 \
        --screenshot="$OUT/report_html.png" "file://$H" >/dev/null 2>&1
    check "[ -s '$OUT/report_html.png' ]"
    [ -s "$OUT/report_html.png" ] && echo "screenshot: $OUT/report_html.png ($(wc -c <"$OUT/report_html.png") bytes)"
fi
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
