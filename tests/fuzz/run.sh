#!/usr/bin/env bash
# tests/fuzz/run.sh SECONDS [TARGET...] — run each libFuzzer harness built in $FUZZ_BUILD (default
# build/libfuzzer) for SECONDS, one after the other, and print one line per target and the totals as
# "N passed, N failed" (the test suite's format). Run from the repository root (`make fuzz` / `make fuzz-ci`).
#
# Per target T: seeds from tests/fuzz/corpus/T (read only), the growing corpus in $FUZZ_BUILD/corpus/T (kept
# between runs), dictionary tests/fuzz/dict/T.dict when present, crash inputs written to
# $FUZZ_BUILD/crashes/T-<kind>-<sha1> (the failing line names it; reproduce with `$FUZZ_BUILD/T <file>`).
# Input files go to a directory made under $FUZZ_TMPDIR (default /dev/shm, else $FUZZ_BUILD/tmp), removed at the end.
# Limits: -timeout=10 s per input, -rss_limit_mb=2048, -max_len=65536 (FUZZ_MAX_LEN). A target fails when
# libFuzzer reports a crash, leak, timeout, out-of-memory or a broken property (FUZZ_CHECK).
set -u
secs=${1:?usage: tests/fuzz/run.sh SECONDS [TARGET...]}
shift
B=${FUZZ_BUILD:-build/libfuzzer}
maxlen=${FUZZ_MAX_LEN:-65536}
if [ $# -eq 0 ]; then
    set --
    for f in tests/fuzz/fuzz_*.c; do t=$(basename "$f" .c); set -- "$@" "$t"; done
fi
pass=0; fail=0
# the harnesses write their input to a file per execution: in memory (/dev/shm) when possible, 3x faster
mkdir -p "$B/crashes"
base=${FUZZ_TMPDIR:-}
if [ -z "$base" ]; then
    if [ -d /dev/shm ] && [ -w /dev/shm ]; then base=/dev/shm
    else mkdir -p "$B/tmp"; case $B in /*) base=$B/tmp ;; *) base=$PWD/$B/tmp ;; esac; fi
fi
tmpd=$(mktemp -d "$base/dsv4-fuzz-run.XXXXXX") || exit 2
trap 'rm -rf "$tmpd"' EXIT  # also what a crashed harness left there
for t in "$@"; do
    bin=$B/$t
    if [ ! -x "$bin" ]; then echo "FAIL $t: $bin is not built"; fail=$((fail + 1)); continue; fi
    mkdir -p "$B/corpus/$t"
    seeds=tests/fuzz/corpus/$t
    [ -d "$seeds" ] || seeds=
    dict=
    [ -f "tests/fuzz/dict/$t.dict" ] && dict=-dict=tests/fuzz/dict/$t.dict
    log=$B/$t.log
    TMPDIR=$tmpd "$bin" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -max_len="$maxlen" \
        -print_final_stats=1 -artifact_prefix="$B/crashes/$t-" $dict "$B/corpus/$t" $seeds >"$log" 2>&1
    rc=$?
    execs=$(grep -E '^stat::number_of_executed_units:' "$log" | tail -n 1 | awk '{print $2}')
    cov=$(grep -E '^#[0-9]+.*(DONE|pulse|NEW|REDUCE)' "$log" | tail -n 1 | grep -oE 'cov: [0-9]+' | awk '{print $2}')
    ncorp=$(find "$B/corpus/$t" -type f | wc -l)
    if [ "$rc" -eq 0 ] && ! grep -qE '^==[0-9]+==ERROR|fuzz property failed|^SUMMARY: ' "$log"; then
        pass=$((pass + 1))
        echo "ok   $t: ${execs:-?} executions in ${secs} s, coverage ${cov:-?} edges, corpus $ncorp inputs"
    else
        fail=$((fail + 1))
        grep -E 'ERROR|fuzz property failed|SUMMARY|Test unit written|^    #[0-9]+ ' "$log" | head -n 30
        echo "FAIL $t: exit $rc after ${execs:-?} executions (log $log)"
    fi
done
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
