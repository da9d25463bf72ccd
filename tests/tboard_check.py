#!/usr/bin/env python3
"""tboard_check.py — load TensorBoard event files with the real tensorboard
package and check that every scalar we wrote is there (tags, steps, values).

    build/tests/helper_tb_write OUT
    python3 tests/tboard_check.py OUT/tb OUT/expected.json
    python3 tests/tboard_check.py --slime-build build      (runs helper_tb_write itself)
    python3 tests/tboard_check.py --run-dir RUN_DIR        (a real run: RUN_DIR/tb
                                                            against RUN_DIR/metrics.jsonl)

With --run-dir the expected scalars are derived from metrics.jsonl the way
actors/tboard.h maps a line: every numeric (not boolean) field but "step"
and "time" becomes the scalar "PHASE/FIELD" at the line's step.

EXPECTED.json: {"scalars": [{"tag": T, "step": S, "value": V}, ...]} (as
written by tests/unit/helper_tb_write.c). Passes when the set of scalar tags
is exactly the expected set and every tag has exactly the expected (step,
value) points, values within 1e-6 relative (they are float32 both sides).
Exit 0 pass, 1 mismatch, 2 usage, 77 tensorboard not installed.
"""
import json
import math
import os
import subprocess
import sys
import tempfile


def expected_from_metrics(path):
    """The scalars actors/tboard.c writes for the lines of metrics.jsonl."""
    out = []
    with open(path) as f:
        for line in f:
            try:
                o = json.loads(line)
            except ValueError:
                continue
            if not isinstance(o, dict) or "step" not in o:
                continue
            phase = o.get("phase")
            for k, v in o.items():
                if k in ("step", "phase", "time") or isinstance(v, bool):
                    continue
                if isinstance(v, (int, float)):
                    tag = f"{phase}/{k}" if isinstance(phase, str) else k
                    out.append({"tag": tag, "step": int(o["step"]), "value": float(v)})
    return out


def main():
    args = sys.argv[1:]
    try:
        from tensorboard.backend.event_processing.event_accumulator import (
            EventAccumulator, SCALARS)
    except ImportError as e:
        print(f"tensorboard is not installed ({e}): skipped")
        return 77
    tmp = None
    if len(args) == 2 and args[0] == "--slime-build":
        helper = os.path.join(args[1], "tests", "helper_tb_write")
        if not os.access(helper, os.X_OK):
            print(f"{helper} is not built (make {helper})", file=sys.stderr)
            return 2
        tmp = tempfile.TemporaryDirectory(prefix="sltb")
        r = subprocess.run([helper, tmp.name])
        if r.returncode != 0:
            print(f"FAIL: {helper} exit {r.returncode}")
            return 1
        args = [os.path.join(tmp.name, "tb"), os.path.join(tmp.name, "expected.json")]
    if len(args) == 2 and args[0] == "--run-dir":
        events_dir = os.path.join(args[1], "tb")
        expected = expected_from_metrics(os.path.join(args[1], "metrics.jsonl"))
        if not expected:
            print(f"FAIL: no metrics in {args[1]}/metrics.jsonl")
            return 1
    elif len(args) == 2 and not args[0].startswith("--"):
        events_dir, expected_path = args
        with open(expected_path) as f:
            expected = json.load(f)["scalars"]
    else:
        print(__doc__, file=sys.stderr)
        return 2
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
