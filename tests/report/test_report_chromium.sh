#!/bin/sh
# The run report in a real browser: helper_report_write --demo makes a
# synthetic run directory and its report.html; headless Chromium renders it
# to a PNG; a small Python script (zlib only) decodes the PNG and checks it
# is not blank and that each chart's series colour and both phase-shading
# colours are on it. Skips (77) where Chromium, python3 or the helper is
# missing. SL_REPORT_SHOT=PATH keeps the screenshot.
set -u
ROOT=${SL_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
BUILD=${SL_BUILD:-$ROOT/build}
HELPER=$BUILD/tests/helper_report_write
PY=/usr/bin/python3
CHROME=
for c in chromium chromium-browser google-chrome; do
    command -v "$c" >/dev/null 2>&1 && { CHROME=$c; break; }
done
[ -n "$CHROME" ] || { echo "no chromium: skipped"; exit 77; }
[ -x "$PY" ] || { echo "no $PY: skipped"; exit 77; }
[ -x "$HELPER" ] || { echo "$HELPER not built: skipped"; exit 77; }

T=$(mktemp -d /tmp/slreport.XXXXXX)
trap 'rm -rf "$T"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

"$HELPER" --demo "$T/run" > "$T/info.json" || fail "helper_report_write failed"
cat "$T/info.json"
[ -s "$T/run/report.html" ] || fail "no report.html"
SHOT=$T/shot.png
# Off the network: file:// only, no background services; a fresh profile.
timeout 120 "$CHROME" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
    --disable-background-networking --disable-component-update --disable-sync \
    --user-data-dir="$T/profile" --screenshot="$SHOT" --window-size=1200,1600 \
    "file://$T/run/report.html" > "$T/chrome.log" 2>&1
[ -s "$SHOT" ] || { cat "$T/chrome.log"; fail "chromium wrote no screenshot"; }
[ -n "${SL_REPORT_SHOT:-}" ] && cp "$SHOT" "$SL_REPORT_SHOT"

"$PY" - "$SHOT" <<'PYEOF' || fail "screenshot check"
import struct, sys, zlib

def decode(path):
    d = open(path, "rb").read()
    assert d[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat = 8, b""
    while pos < len(d):
        n, = struct.unpack(">I", d[pos:pos + 4])
        t, c = d[pos + 4:pos + 8], d[pos + 8:pos + 8 + n]
        pos += 12 + n
        if t == b"IHDR":
            w, h, bd, ct, _, _, il = struct.unpack(">IIBBBBB", c)
            assert bd == 8 and ct in (2, 6) and il == 0, f"unsupported PNG {bd} {ct} {il}"
        elif t == b"IDAT":
            idat += c
    bpp = 4 if ct == 6 else 3
    raw, stride = zlib.decompress(idat), w * bpp
    prev, i, px = bytearray(stride), 0, {}
    for _ in range(h):
        f, line = raw[i], bytearray(raw[i + 1:i + 1 + stride])
        i += 1 + stride
        for x in range(stride):
            a = line[x - bpp] if x >= bpp else 0
            b = prev[x]
            c = prev[x - bpp] if x >= bpp else 0
            if f == 1: line[x] = (line[x] + a) & 255
            elif f == 2: line[x] = (line[x] + b) & 255
            elif f == 3: line[x] = (line[x] + (a + b) // 2) & 255
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[x] = (line[x] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        for x in range(0, stride, bpp):
            k = bytes(line[x:x + 3])
            px[k] = px.get(k, 0) + 1
        prev = line
    return w, h, px

w, h, px = decode(sys.argv[1])
print(f"screenshot {w}x{h}, {len(px)} distinct colours")
assert (w, h) == (1200, 1600), "unexpected size"
total = w * h
white = px.get(b"\xff\xff\xff", 0)
assert len(px) > 50, "almost no colours: blank page?"
assert white < 0.97 * total, f"{white} of {total} pixels white: blank page?"

def near(rgb, tol=8):
    r, g, b = rgb
    return sum(n for k, n in px.items()
               if abs(k[0] - r) <= tol and abs(k[1] - g) <= tol and abs(k[2] - b) <= tol)

want = {"reward_mean": (0x1f, 0x77, 0xb4), "eval_accuracy": (0x2c, 0xa0, 0x2c),
        "response_len_mean": (0xff, 0x7f, 0x0e), "kl": (0xd6, 0x27, 0x28),
        "entropy": (0x94, 0x67, 0xbd), "tokens_per_s": (0x8c, 0x56, 0x4b),
        "phase sft": (0xfb, 0xec, 0xc8), "phase rl": (0xe4, 0xee, 0xf8)}
bad = []
for name, rgb in want.items():
    n = near(rgb)
    print(f"  {name:18s} #{rgb[0]:02x}{rgb[1]:02x}{rgb[2]:02x}: {n} pixels")
    # A 2px curve across a ~380px chart is well over 300 pixels; the
    # shading fills thousands.
    if n < (2000 if name.startswith("phase") else 300):
        bad.append(name)
assert not bad, f"colours missing from the screenshot: {bad}"
print("report renders: all six curves and both phases visible")
PYEOF
echo "ok"
