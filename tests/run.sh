#!/bin/sh
# Runs every test binary in BUILD/tests (group "unit"), then, unless only unit tests were
# asked for, the real-data scripts tests/data/*.sh. Sums the counts into one closing line.
BUILD=${1:-build}
GROUP=${2:-all}
passed=0; failed=0
out=$(mktemp)
for t in "$BUILD"/tests/test_*; do
    case "$t" in *.o|*.d) continue ;; esac
    [ -x "$t" ] || continue
    echo "== $(basename "$t")"
    "$t" >"$out" 2>&1; rc=$?
    cat "$out"
    line=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$out" | tail -n 1)
    if [ -z "$line" ]; then
        echo "$(basename "$t"): crashed or printed no summary (exit $rc)"
        failed=$((failed + 1)); continue
    fi
    p=${line%% passed*}; f=${line#*, }; f=${f%% failed*}
    passed=$((passed + p)); failed=$((failed + f))
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then failed=$((failed + 1)); fi
done
if [ "$GROUP" = all ]; then
    for s in tests/data/*.sh; do
        [ -f "$s" ] || continue
        echo "== real data: $(basename "$s")"
        LOOM="$BUILD/loom" sh "$s" >"$out" 2>&1; rc=$?
        cat "$out"
        line=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$out" | tail -n 1)
        if [ -z "$line" ]; then failed=$((failed + 1)); continue; fi
        p=${line%% passed*}; f=${line#*, }; f=${f%% failed*}
        passed=$((passed + p)); failed=$((failed + f))
        if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then failed=$((failed + 1)); fi
    done
fi
rm -f "$out"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
