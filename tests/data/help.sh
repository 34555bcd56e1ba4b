#!/bin/sh
# Help everywhere (needs no data): for every command that `loom help` lists, `loom help CMD`
# and `loom CMD --help` exit 0 and print the same text, which names the command; run several
# times, since a bad read of the argument vector crashed `loom help CMD` only some of the time.
# Then the man page has a section for every command, and an unknown command is one error line.
# Last, the OpenMP wait policy loom picks on a quiet and on a busy machine (bench notes it).
. "$(dirname "$0")/lib.inc"
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
MAN=$(dirname "$0")/../../docs/loom.1

cmds=$($LOOM help | awk '/^  [a-z]+  / {print $1}')
check '[ $(echo "$cmds" | wc -w) -ge 12 ]'
for c in $cmds; do
    i=0; same=1
    while [ $i -lt 8 ]; do
        $LOOM help "$c" >"$T/a" 2>&1 || same=0
        $LOOM "$c" --help >"$T/b" 2>&1 || same=0
        cmp -s "$T/a" "$T/b" || same=0
        i=$((i + 1))
    done
    if [ $same -eq 1 ] && grep -q "loom $c" "$T/a"; then ok; else bad "loom help $c / loom $c --help: $(head -c 300 "$T/a")"; fi
    if grep -q "^\.SS \"loom $c\b" "$MAN"; then ok; else bad "no section for loom $c in docs/loom.1"; fi
done
$LOOM help nosuchcommand >"$T/o" 2>"$T/e"
check '[ $? -eq 2 ] && [ $(grep -c "^loom: error: unknown command" "$T/e") -eq 1 ]'
$LOOM --version >"$T/o" 2>&1
check '[ $? -eq 0 ] && grep -Eq "^loom [0-9]+\.[0-9]+\.[0-9]+" "$T/o"'
# OpenMP workers: on an idle machine loom keeps spinning workers (its own threads, OpenBLAS's
# spinning one at start included, are not another job: counted as one, every start looked busy
# and ran passive, mlp 40% slower); with two busy loops beside it, it runs passive workers and
# bench says so. Up to five tries for the quiet side, three for the busy one: a stray task on
# the test machine may tip a sample.
BUSY_NOTE="another job kept a core busy"
tries=0; quiet=0
while [ $tries -lt 5 ] && [ $quiet -eq 0 ]; do
    [ $tries -gt 0 ] && sleep 1
    $LOOM bench rnn --threads 2 --repeats 1 --seconds 0.05 >"$T/o" 2>"$T/e" && ! grep -q "$BUSY_NOTE" "$T/e" && quiet=1
    tries=$((tries + 1))
done
if [ $quiet -eq 1 ]; then ok; else bad "idle machine judged busy: $(cat "$T/e")"; fi
sh -c 'while :; do :; done' & b1=$!
sh -c 'while :; do :; done' & b2=$!
tries=0; noted=0
while [ $tries -lt 3 ] && [ $noted -eq 0 ]; do
    $LOOM bench rnn --threads 2 --repeats 1 --seconds 0.05 >"$T/o" 2>"$T/e" && grep -q "$BUSY_NOTE" "$T/e" && noted=1
    tries=$((tries + 1))
done
kill $b1 $b2; wait $b1 $b2 2>/dev/null
if [ $noted -eq 1 ]; then ok; else bad "two busy loops not seen: $(cat "$T/e")"; fi
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
