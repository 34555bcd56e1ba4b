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
# bench says so (three tries: a busy loop may be between two time slices in a sample).
BUSY_NOTE="another job kept a core busy"
# quiet: no other runnable task in five samples of /proc/loadavg over 50 ms (the shell reading
# it is the one running task; `read` is a builtin, so no other process of ours is counted)
quiet() {
    _i=0
    while [ $_i -lt 5 ]; do
        read -r _a _b _c _run _rest </proc/loadavg
        [ "${_run%/*}" -gt 1 ] && return 1
        sleep 0.01
        _i=$((_i + 1))
    done
    return 0
}
# The quiet side counts only when the machine looked quiet before and after loom's run (up to
# five tries; a machine busy all along is reported as skipped, neither passed nor failed). The
# user's OMP_WAIT_POLICY and GOMP_SPINCOUNT are taken out of loom's environment for both sides.
tries=0; judged=0; wrong=0
while [ $tries -lt 5 ] && [ $judged -eq 0 ]; do
    [ $tries -gt 0 ] && sleep 1
    tries=$((tries + 1))
    quiet || continue
    env -u OMP_WAIT_POLICY -u GOMP_SPINCOUNT $LOOM bench rnn --threads 2 --repeats 1 \
        --seconds 0.05 >"$T/o" 2>"$T/e" || { wrong=1; judged=1; continue; }
    quiet || continue
    judged=1
    grep -q "$BUSY_NOTE" "$T/e" && wrong=1
done
if [ $judged -eq 0 ]; then
    echo "skipped: the machine was busy during all five tries, loom's quiet side not judged"
elif [ $wrong -eq 0 ]; then ok; else bad "quiet machine judged busy (or bench failed): $(cat "$T/e")"; fi
b1=; b2=
trap 'kill $b1 $b2 2>/dev/null; rm -rf "$T"' EXIT
sh -c 'while :; do :; done' & b1=$!
sh -c 'while :; do :; done' & b2=$!
tries=0; noted=0
while [ $tries -lt 3 ] && [ $noted -eq 0 ]; do
    env -u OMP_WAIT_POLICY -u GOMP_SPINCOUNT $LOOM bench rnn --threads 2 --repeats 1 \
        --seconds 0.05 >"$T/o" 2>"$T/e" && grep -q "$BUSY_NOTE" "$T/e" && noted=1
    tries=$((tries + 1))
done
kill $b1 $b2; wait $b1 $b2 2>/dev/null; b1=; b2=
if [ $noted -eq 1 ]; then ok; else bad "two busy loops not seen: $(cat "$T/e")"; fi
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
