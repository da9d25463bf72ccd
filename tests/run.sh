#!/bin/sh
# Run every test program under $BUILD/tests (test_*) and every shell test
# under tests/*/ (test_*.sh). Exit 77 counts as skipped. Each cmocka program
# prints its own summary; this prints the total at the end, and each test's
# wall time after it.
# SL_TEST_ONLY: run only the tests whose name (test_X for programs,
# tests/DIR/test_Y.sh for shell tests) matches one of these space-separated
# shell patterns, e.g. "test_* tests/faults/*" (make asan-ci uses it);
# SL_TEST_SKIP: skip those that match one of its patterns.
# SL_TEST_JOBS: run this many tests at once (default: nproc, the number of
# cores; most tests wait on processes, timeouts and sleeps; 1 runs them one
# after another, in name order, their output as it comes). With more than
# one, each test's output is kept and printed whole when it ends (in the
# order they end); the longest tests (SL_TEST_FIRST patterns) start
# first. The counts are the same either way.
set -u
BUILD=${BUILD:-build}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
export SL_ROOT="$ROOT" SL_BUILD="$ROOT/$BUILD"
export SL_SHARED="${SL_SHARED:-$ROOT/../shared}"
# OpenMP threads wait passively: spinning on shared cores slows small models 10-20x
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-passive}"
JOBS=${SL_TEST_JOBS:-$(nproc 2>/dev/null || echo 1)}
case $JOBS in '' | *[!0-9]* | 0) echo "run.sh: SL_TEST_JOBS must be a positive integer" >&2; exit 2 ;; esac
FIRST=${SL_TEST_FIRST:-test_learning tests/rl/test_default_run.sh tests/faults/* tests/rl/* test_supervisor tests/runtime/test_heartbeat_storm.sh}

# cpu_s FILE: CPU seconds (user + sys) of this shell's finished children,
# from `times > FILE` run in this shell (not in a subshell, which has its
# own count), its second line: "0m1.870000s 0m0.010000s"
cpu_s() {
    awk 'NR == 2 { split($1, u, /[ms]/); split($2, s, /[ms]/)
                   printf "%.1f", u[1] * 60 + u[2] + s[1] * 60 + s[2] }' "$1"
}

# run.sh --one DIR NAME: run test NAME (a program under $BUILD/tests or a
# shell test), output to DIR/ID.log, exit status to DIR/ID.rc; then print
# its block (under a lock: blocks never interleave)
if [ "${1:-}" = "--one" ]; then
    dir=$2 name=$3
    id=$(printf '%s' "$name" | tr '/' '_')
    t0=$(date +%s)
    case $name in
        tests/*) sh "$ROOT/$name" > "$dir/$id.log" 2>&1 ;;
        *) "$ROOT/$BUILD/tests/$name" > "$dir/$id.log" 2>&1 ;;
    esac
    rc=$?
    dt=$(($(date +%s) - t0))
    times > "$dir/$id.cpu"
    echo "$rc" > "$dir/$id.rc"
    {
        flock 9
        printf '=== %s\n' "$name"
        cat "$dir/$id.log"
        case $rc in
            0) ;;
            77) printf '    (skipped)\n' ;;
            *) printf '    FAILED (exit %d)\n' "$rc" ;;
        esac
        printf '    (%d s, %s s CPU)\n' "$dt" "$(cpu_s "$dir/$id.cpu")"
    } 9> "$dir/lock"
    exit 0
fi

pass=0 fail=0 skip=0 failed=""
matches() { # NAME PATTERNS
    set -f # the patterns are not file names here
    for pat in $2; do
        # shellcheck disable=SC2254
        case $1 in $pat) set +f; return 0 ;; esac
    done
    set +f
    return 1
}
selected() {
    [ -n "${SL_TEST_SKIP:-}" ] && matches "$1" "$SL_TEST_SKIP" && return 1
    [ -z "${SL_TEST_ONLY:-}" ] || matches "$1" "$SL_TEST_ONLY"
}
count() { # NAME RC
    case $2 in
        0) pass=$((pass + 1)) ;;
        77) skip=$((skip + 1)) ;;
        *) fail=$((fail + 1)); failed="$failed $1" ;;
    esac
}
run_one() {
    name=$1; shift
    printf '=== %s\n' "$name"
    times > "$cpu_file"
    t0=$(date +%s) c0=$(cpu_s "$cpu_file")
    "$@"
    rc=$?
    times > "$cpu_file"
    c1=$(cpu_s "$cpu_file")
    count "$name" $rc
    case $rc in
        0) ;;
        77) printf '    (skipped)\n' ;;
        *) printf '    FAILED (exit %d)\n' "$rc" ;;
    esac
    printf '    (%d s, %s s CPU)\n' $(($(date +%s) - t0)) "$(echo "$c0 $c1" | awk '{ printf "%.1f", $2 - $1 }')"
}
# the selected tests, one name a line
names=""
for t in "$ROOT/$BUILD"/tests/test_*; do
    [ -x "$t" ] || continue
    case $t in *.d) continue ;; esac
    n=$(basename "$t")
    selected "$n" && names="$names$n
"
done
for t in "$ROOT"/tests/*/test_*.sh; do
    [ -f "$t" ] || continue
    n=${t#$ROOT/}
    selected "$n" && names="$names$n
"
done

dir=$(mktemp -d /tmp/sl_tests.XXXXXX) || exit 1
trap 'rm -rf "$dir"' EXIT
cpu_file=$dir/cpu
t_start=$(date +%s)
if [ "$JOBS" -eq 1 ]; then
    for n in $names; do
        case $n in
            tests/*) run_one "$n" sh "$ROOT/$n" ;;
            *) run_one "$n" "$ROOT/$BUILD/tests/$n" ;;
        esac
    done
else
    # the long ones first
    first="" rest=""
    for n in $names; do
        if matches "$n" "$FIRST"; then first="$first $n"; else rest="$rest $n"; fi
    done
    echo "running $(echo $names | wc -w) tests, $JOBS at a time"
    # shellcheck disable=SC2086
    printf '%s\n' $first $rest | xargs -P "$JOBS" -n 1 sh "$0" --one "$dir"
    for n in $names; do
        id=$(printf '%s' "$n" | tr '/' '_')
        rc=$(cat "$dir/$id.rc" 2>/dev/null || echo 1)
        count "$n" "$rc"
    done
fi
times > "$cpu_file"
printf '\n%d test programs passed, %d skipped, %d failed (%d s, %s s CPU, %d at a time)\n' \
    "$pass" "$skip" "$fail" $(($(date +%s) - t_start)) "$(cpu_s "$cpu_file")" "$JOBS"
[ "$fail" -eq 0 ] || { printf 'failed:%s\n' "$failed"; exit 1; }
