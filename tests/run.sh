#!/bin/sh
# Runs every test binary in BUILD/tests (group "unit"), then, unless only unit tests were
# asked for, the real-data scripts tests/data/*.sh. Sums the counts into one closing line.
BUILD=${1:-build}
GROUP=${2:-all}
passed=0; failed=0
out=$(mktemp)
# one binary per tests/test_*.c: a source whose binary is missing is a failure, not a skip
for src in tests/test_*.c; do
    t="$BUILD/tests/$(basename "$src" .c)"
    if [ ! -x "$t" ]; then
        echo "$(basename "$t"): not built (no executable $t)"
        failed=$((failed + 1)); continue
    fi
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
        if [ ! -f "$s" ]; then # the pattern itself: no scripts to run
            echo "no real-data scripts in tests/data"
            failed=$((failed + 1)); continue
        fi
        echo "== real data: $(basename "$s")"
        LOOM="$BUILD/loom" sh "$s" >"$out" 2>&1; rc=$?
        cat "$out"
        line=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$out" | tail -n 1)
        if [ -z "$line" ]; then
            echo "$(basename "$s"): crashed or printed no summary (exit $rc)"
            failed=$((failed + 1)); continue
        fi
        p=${line%% passed*}; f=${line#*, }; f=${f%% failed*}
        passed=$((passed + p)); failed=$((failed + f))
        if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then failed=$((failed + 1)); fi
    done
fi
rm -f "$out"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
