#!/usr/bin/env bash
# run.sh — run every libFuzzer target in build/fuzz for FUZZ_SECONDS each.
#
#   tests/fuzz/run.sh [BUILD_DIR] [SECONDS]     (make fuzz calls it)
#   FUZZ_TARGETS="topology frame" tests/fuzz/run.sh   only these targets
#   FUZZ_JOBS=N: run N targets at once (default 1; make fuzz uses nproc),
#   each still for SECONDS
#
# Each target starts from a scratch copy of its committed seed corpus
# (tests/fuzz/corpus/NAME/; the committed files are never modified) and
# runs with ASan + UBSan; a crash, leak, UB report or a >10 s input stops it
# and leaves the input under BUILD_DIR/artifacts/NAME/. Prints one line per
# target — executions, exec/s, new units, final coverage, crashes — and
# exits 1 when any target crashed (2 when nothing was built).
set -u
root=$(cd "$(dirname "$0")/../.." && pwd)
bdir=${1:-$root/build/fuzz}
secs=${2:-${FUZZ_SECONDS:-60}}
case $bdir in /*) ;; *) bdir=$root/$bdir ;; esac
targets=${FUZZ_TARGETS:-$(cd "$root/tests/fuzz" && ls fuzz_*.c | sed 's/^fuzz_//; s/\.c$//')}
jobs=${FUZZ_JOBS:-1}
case $jobs in '' | *[!0-9]* | 0) echo "run.sh: FUZZ_JOBS must be a positive integer" >&2; exit 2 ;; esac
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:symbolize=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
scratch=$(mktemp -d /tmp/sl_fuzz.XXXXXX)
trap 'rm -rf "$scratch"' EXIT

printf '%-14s %12s %9s %8s %8s %8s\n' target executions exec/s new_units cov crashes
crashed=0 total=0 ran=0
# fuzz_one T: run target T; its table line on stdout, "EXECS CRASHED" in
# $scratch/T.res
fuzz_one() {
    local t=$1 bin=$bdir/fuzz_$1 work=$scratch/$1 art log rc execs eps newu cov n_crash
    art=$bdir/artifacts/$t
    mkdir -p "$work" "$art"
    [ -d "$root/tests/fuzz/corpus/$t" ] && cp "$root/tests/fuzz/corpus/$t"/* "$work"/ 2>/dev/null
    log=$bdir/fuzz_$t.log
    "$bin" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
           -print_final_stats=1 -artifact_prefix="$art/" "$work" >"$log" 2>&1
    rc=$?
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    eps=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
    newu=$(sed -n 's/^stat::new_units_added: *//p' "$log" | tail -1)
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | sed 's/cov: //')
    if [ -z "$execs" ]; then  # a crash ends the run before the final stats
        execs=$(grep -o '^#[0-9]*' "$log" | tail -1 | tr -d '#')
    fi
    n_crash=0
    [ $rc -eq 0 ] || n_crash=1
    echo "${execs:-0} $n_crash" > "$scratch/$t.res"
    printf '%-14s %12s %9s %8s %8s %8s\n' "$t" "${execs:-?}" "${eps:-?}" "${newu:-?}" "${cov:-?}" "$n_crash"
    if [ $rc -ne 0 ]; then
        echo "  $t: exit $rc; log $log; inputs in $art/"
        grep -m 5 -E 'ERROR: |runtime error|property failed|SUMMARY' "$log" | sed 's/^/  /'
    fi
}
for t in $targets; do
    if [ ! -x "$bdir/fuzz_$t" ]; then
        printf '%-14s not built (%s)\n' "$t" "$bdir/fuzz_$t"
        continue
    fi
    ran=$((ran + 1))
    if [ "$jobs" -eq 1 ]; then
        fuzz_one "$t"
    else
        while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do wait -n; done
        fuzz_one "$t" > "$scratch/$t.line" 2>&1 &
    fi
done
wait
for t in $targets; do
    [ -f "$scratch/$t.res" ] || continue
    [ "$jobs" -eq 1 ] || cat "$scratch/$t.line"
    read -r execs n_crash < "$scratch/$t.res"
    total=$((total + execs))
    crashed=$((crashed + n_crash))
done
echo "fuzz: $ran targets, $total executions, $crashed crashed (${secs}s each)"
[ $ran -gt 0 ] || exit 2
[ $crashed -eq 0 ]
