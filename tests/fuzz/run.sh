#!/bin/sh
# Run each libFuzzer target for SECONDS from its seed corpus and dictionary:
#   sh tests/fuzz/run.sh BUILD_DIR SECONDS TARGET...
# (make fuzz / make fuzz-smoke; docs/testing.md, "Fuzzing"). New inputs go to
# BUILD_DIR/corpus/<target>/ (the seeds in tests/fuzz/corpus/<target>/ are only
# read), crashes to BUILD_DIR/artifacts/<target>/, the whole output to
# BUILD_DIR/<target>.log. One line per target: executions, exec/s, coverage,
# corpus. Exits 1 when any target found a crash, a leak, a timeout or a failed
# property (the report and the input are printed), after running them all.
# FUZZ_ARGS adds libFuzzer options (e.g. FUZZ_ARGS=-seed=1).
set -u
build=$1
secs=$2
shift 2
here=$(cd "$(dirname "$0")" && pwd)
failed=""
ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=1}
UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export ASAN_OPTIONS UBSAN_OPTIONS
for t in "$@"; do
    bin="$build/fuzz_$t"
    work="$build/corpus/$t"
    art="$build/artifacts/$t"
    seeds="$here/corpus/$t"
    log="$build/$t.log"
    mkdir -p "$work" "$art"
    dict=""
    [ -f "$here/$t.dict" ] && dict="-dict=$here/$t.dict"
    [ -d "$seeds" ] || seeds=""
    # shellcheck disable=SC2086
    "$bin" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
        -print_final_stats=1 -artifact_prefix="$art/" $dict ${FUZZ_ARGS:-} \
        "$work" $seeds >"$log" 2>&1
    rc=$?
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    eps=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
    rss=$(sed -n 's/^stat::peak_rss_mb: *//p' "$log" | tail -1)
    cov=$(grep -E '^#[0-9]+' "$log" | tail -1 | sed -n 's/.*cov: \([0-9]*\) ft: \([0-9]*\) corp: \([^ ]*\).*/cov \1, ft \2, corpus \3/p')
    if [ "$rc" -ne 0 ]; then
        failed="$failed $t"
        echo "fuzz $t: FAILED (exit $rc) after ${runs:-?} runs; report (from $log):"
        grep -E -A30 '^==[0-9]+==ERROR|runtime error|^fuzz: property failed|ALARM|out-of-memory|^SUMMARY' "$log" \
            | grep -v -E ' in fuzzer::| in __libc_start| in _start | in main |^NOTE: libFuzzer|Combine libFuzzer' \
            | head -60
        for a in "$art"/*; do
            [ -f "$a" ] || continue
            echo "fuzz $t: input $a:"
            od -c "$a" | head -20
        done
    else
        echo "fuzz $t: ${runs:-?} runs in ${secs} s, ${eps:-?} exec/s, ${cov:-?}, peak RSS ${rss:-?} MB"
    fi
done
if [ -n "$failed" ]; then
    echo "fuzz: FAILED:$failed (reproduce: $build/fuzz_<target> <input>)"
    exit 1
fi
echo "fuzz: $# targets, ${secs} s each, no crash"
