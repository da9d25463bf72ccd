#!/usr/bin/env python3
"""tboard_check.py — load TensorBoard event files with the real tensorboard
package and check that every scalar we wrote is there (tags, steps, values).

    build/tests/helper_tb_write OUT
    python3 tests/tboard_check.py OUT/tb OUT/expected.json

EXPECTED.json: {"scalars": [{"tag": T, "step": S, "value": V}, ...]} (as
written by tests/unit/helper_tb_write.c). Passes when the set of scalar tags
is exactly the expected set and every tag has exactly the expected (step,
value) points, values within 1e-6 relative (they are float32 both sides).
Exit 0 pass, 1 mismatch, 2 usage, 77 tensorboard not installed.
"""
import json
import math
import sys


def main():
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    try:
        from tensorboard.backend.event_processing.event_accumulator import (
            EventAccumulator, SCALARS)
    except ImportError as e:
        print(f"tensorboard is not installed ({e}): skipped")
        return 77
    events_dir, expected_path = sys.argv[1], sys.argv[2]
    with open(expected_path) as f:
        expected = json.load(f)["scalars"]
    want = {}
    for s in expected:
        want.setdefault(s["tag"], []).append((int(s["step"]), float(s["value"])))

    # size_guidance 0 = keep every point (the default samples 10000 per tag)
    acc = EventAccumulator(events_dir, size_guidance={SCALARS: 0})
    acc.Reload()
    tags = set(acc.Tags()["scalars"])
    errors = []
    if tags != set(want):
        errors.append(f"tags differ: missing {sorted(set(want) - tags)}, "
                      f"unexpected {sorted(tags - set(want))}")
    n_points = 0
    for tag in sorted(set(want) & tags):
        got = [(e.step, e.value) for e in acc.Scalars(tag)]
        exp = sorted(want[tag])
        got.sort()
        n_points += len(got)
        if [s for s, _ in got] != [s for s, _ in exp]:
            errors.append(f"{tag}: steps {[s for s, _ in got]} != {[s for s, _ in exp]}")
            continue
        for (step, gv), (_, ev) in zip(got, exp):
            if not math.isclose(gv, ev, rel_tol=1e-6, abs_tol=1e-30):
                errors.append(f"{tag} step {step}: value {gv!r} != {ev!r}")
        wall = [e.wall_time for e in acc.Scalars(tag)]
        if any(not (1e9 < w < 1e11) for w in wall):
            errors.append(f"{tag}: implausible wall times {wall[:3]}")
    for e in errors[:30]:
        print("FAIL:", e)
    if errors:
        return 1
    print(f"tensorboard read {len(tags)} tags, {n_points} points: all as written")
    return 0


if __name__ == "__main__":
    sys.exit(main())
