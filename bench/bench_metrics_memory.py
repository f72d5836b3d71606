"""Peak memory of kit.read_metrics on a large Prometheus API JSON export (issue 14).

Run: ``.venv/bin/python bench/bench_metrics_memory.py [--scale N]``. At ``--scale 98`` (default)
the export is the API matrix of bench_metrics.py at 98x: 3,920 series x 1,440 points = 5.64 M
samples, 134 MiB. Each measurement runs in a fresh process and reports its peak RSS
(``VmHWM``), the process's RSS before reading (interpreter, polars, kit) and the frame's size
(``DataFrame.estimated_size``). Named baseline: ``json.loads`` of the same text, the floor of any
reader built on the standard library's JSON parser. Target: peak <= 3x the frame.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

_MEASURE = r"""
import json, re, sys, time
sys.path.insert(0, {root!r})
import polars as pl
import kit
from kit.sources.metrics.prometheus import read_metrics
def hwm():  # peak RSS of this process image (ru_maxrss would include the parent's, kept at exec)
    return int(re.search(r"VmHWM:\s+(\d+)", open("/proc/self/status").read()).group(1)) * 1024
base = hwm()
t0 = time.perf_counter()
if {what!r} == "json.loads":
    with open({path!r}, "rb") as fh:
        doc = json.loads(fh.read())
    frame = 0
else:
    df = read_metrics({path!r})
    frame = df.estimated_size()
seconds = time.perf_counter() - t0
peak = hwm()
print(json.dumps({{"base": base, "peak": peak, "frame": frame, "seconds": seconds}}))
"""


def measure(what: str, path: Path) -> dict[str, float]:
    code = _MEASURE.format(root=str(HERE.parent), what=what, path=str(path))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scale", type=int, default=98)
    args = ap.parse_args(argv)
    from bench_metrics import gen_api_json

    mib = 1 << 20
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "api.json"
        gen_api_json(path, args.scale)
        size = path.stat().st_size
        print(f"API JSON export: {size / mib:.0f} MiB, scale {args.scale}")
        print(
            f"{'reader':<14}{'peak MiB':>10}{'before':>8}{'frame':>8}{'peak/frame':>11}{'peak/file':>10}{'s':>7}"
        )
        frame = 0.0
        for what in ("read_metrics", "json.loads"):
            r = measure(what, path)
            frame = r["frame"] or frame
            ratio = f"{r['peak'] / frame:>11.2f}" if frame else f"{'':>11}"
            print(
                f"{what:<14}{r['peak'] / mib:>10.0f}{r['base'] / mib:>8.0f}{frame / mib:>8.0f}"
                f"{ratio}{r['peak'] / size:>10.2f}{r['seconds']:>7.1f}"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
