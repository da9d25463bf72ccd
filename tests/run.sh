#!/bin/sh
# Run every test program under $BUILD/tests (test_*) and every shell test
# under tests/*/ (test_*.sh). Exit 77 counts as skipped. Each cmocka program
# prints its own summary; this prints the total at the end.
# SL_TEST_ONLY: run only the tests whose name (test_X for programs,
# tests/DIR/test_Y.sh for shell tests) matches one of these space-separated
# shell patterns, e.g. "test_* tests/faults/*" (make asan-ci uses it);
# SL_TEST_SKIP: skip those that match one of its patterns.
set -u
BUILD=${BUILD:-build}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
export SL_ROOT="$ROOT" SL_BUILD="$ROOT/$BUILD"
export SL_SHARED="${SL_SHARED:-$ROOT/../shared}"
# OpenMP threads wait passively: spinning on shared cores slows small models 10-20x
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-passive}"
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
run_one() {
    name=$1; shift
    selected "$name" || return 0
    printf '=== %s\n' "$name"
    "$@"
    rc=$?
    case $rc in
        0) pass=$((pass + 1)) ;;
        77) skip=$((skip + 1)); printf '    (skipped)\n' ;;
        *) fail=$((fail + 1)); failed="$failed $name"; printf '    FAILED (exit %d)\n' "$rc" ;;
    esac
}
for t in "$ROOT/$BUILD"/tests/test_*; do
    [ -x "$t" ] || continue
    case $t in *.d) continue ;; esac
    run_one "$(basename "$t")" "$t"
done
for t in "$ROOT"/tests/*/test_*.sh; do
    [ -f "$t" ] || continue
    run_one "${t#$ROOT/}" sh "$t"
done
printf '\n%d test programs passed, %d skipped, %d failed\n' "$pass" "$skip" "$fail"
[ "$fail" -eq 0 ] || { printf 'failed:%s\n' "$failed"; exit 1; }
