#!/bin/sh
# RUN_DIR and fault-config refusals (DESIGN.md §8), no run needed: the
# supervisor must refuse, with exit 2 and a message naming the problem,
#   1. an existing RUN_DIR with group/other permissions (0755);
#   2. a RUN_DIR that is a symbolic link;
#   3. a RUN_DIR that is a file;
#   4. a RUN_DIR owned by another user (only as root: chown 65534);
#   5. a malformed [faults] schedule (FILE:LINE named), an unknown actor in
#      it, a malformed [faults] points and a malformed SL_FAULTS;
# and create a missing RUN_DIR with mode 0700 (checked by
# test_supervisor_kill.sh, with the modes of the logs).
# Skips (77) when not built.
set -u
. "$(dirname "$0")/../rl/lib.sh"
sl_setup slsec
CONF=$ROOT/conf/topology.conf
# refuse DIR PATTERN [ARGS]: the supervisor exits 2 and prints PATTERN
refuse() {
    d=$1 pat=$2; shift 2
    "$BUILD/slime-supervisor" "$CONF" --run-dir "$d" --set run.num_steps=1 "$@" > "$T/out" 2>&1
    rc=$?
    [ $rc -eq 2 ] || fail "$d $*: exit $rc, expected 2: $(cat "$T/out")"
    grep -q "$pat" "$T/out" || fail "$d $*: no '$pat' in: $(cat "$T/out")"
    [ -d "$d/logs" ] && fail "$d: the refused run directory was used"
    return 0
}
mkdir "$T/open" && chmod 755 "$T/open"
refuse "$T/open" "has mode 0755"
echo "ok 1 - a 0755 RUN_DIR is refused"
mkdir -m 700 "$T/real" && ln -s "$T/real" "$T/link"
refuse "$T/link" "symbolic link"
echo "ok 2 - a symlinked RUN_DIR is refused"
touch "$T/file"
refuse "$T/file" "not a directory"
echo "ok 3 - a file as RUN_DIR is refused"
if [ "$(id -u)" = 0 ]; then
    mkdir -m 700 "$T/other" && chown 65534 "$T/other"
    refuse "$T/other" "belongs to uid 65534"
    echo "ok 4 - a RUN_DIR of another user is refused"
else
    echo "ok 4 # skip not root (cannot give a folder to another user)"
fi
refuse "$T/r5" "topology.conf:.*\[faults\] schedule: 'explode:trainer@step1': ACTION must be" \
    --set faults.schedule=explode:trainer@step1
refuse "$T/r5" "\[faults\] schedule: 'kill:nobody@step1': no such actor" --set faults.schedule=kill:nobody@step1
refuse "$T/r5" "\[faults\] schedule: 'kill:trainer@soon': WHEN must be" --set faults.schedule=kill:trainer@soon
refuse "$T/r5" "\[faults\] points: entry 'trainer:nowhere=kill': unknown point" \
    --set faults.points=trainer:nowhere=kill
refuse "$T/r5" "drop and corrupt apply to point mb_send only" --set faults.points=ckpt_write=drop
SL_FAULTS="wal_ack=kill@0" refuse "$T/r5" "SL_FAULTS: entry 'wal_ack=kill@0': @ needs a pass number"
echo "ok 5 - malformed [faults] schedule, points and SL_FAULTS are refused with exit 2"
echo "PASS: RUN_DIR and fault configuration refusals"
