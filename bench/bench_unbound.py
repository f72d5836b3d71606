"""Benchmark kit.read_unbound_log against the CoreDNS-log baselines of notes/perf-baselines.md.

Input: the committed sample's unbound log (real unbound 1.17 output, query + reply + other lines)
repeated to N lines (default 1,000,000) in a temporary file. Measured in one run, each case the
median of 3, in this process (import cost excluded):

- ``wc -l``: the I/O limit (baseline l1).
- ``python re loop``: a per-line Python regex loop into lists then polars (baseline l5's method).
- ``polars extract_groups``: one ``str.extract_groups`` pass over the lines (baseline l2/l3's method).
- ``kit.read_unbound_log``: the loader (every column typed, every line accounted for).

The table shows lines/s and the ratio to each method measured here, plus the ratio to the
published baseline figures (l5 0.27 M lines/s, l3 1.06 M lines/s, target >= 1 M lines/s).
Usage: ``.venv/bin/python bench/bench_unbound.py [N]``.
"""

from __future__ import annotations

import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import polars as pl

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from kit.sources.unbound import read_unbound_log  # noqa: E402

SAMPLE = REPO / "data" / "sample" / "logs" / "unbound-node1.log"
PUBLISHED = {
    "l5 Python re loop (baseline)": 0.271e6,
    "l3 polars scan+extract_groups (baseline)": 1.06e6,
}
LINE = re.compile(
    r"^\[(\d+)\] (\S+)\[(\d+):(\w+)\] ([a-z ]+?): (\S+) (\S+) (\S+) (\S+) (\S+) (\S+) (\S+) (\S+)$"
)


def make_input(n: int, folder: Path) -> Path:
    lines = SAMPLE.read_text().splitlines(keepends=True)
    reps = n // len(lines) + 1
    out = folder / "big.log"
    with out.open("w") as f:
        for _ in range(reps):
            f.writelines(lines)
    # trim to exactly n lines
    with out.open() as f:
        head = [next(f) for _ in range(n)]
    out.write_text("".join(head))
    return out


def python_loop(path: Path) -> int:
    rows = []
    with path.open() as f:
        for line in f:
            m = LINE.match(line.rstrip("\n"))
            if m:
                rows.append(m.groups())
    df = pl.DataFrame(rows, orient="row")
    return df.height


def polars_extract(path: Path) -> int:
    df = pl.DataFrame({"line": path.read_text().split("\n")})
    out = df.select(pl.col("line").str.extract_groups(LINE.pattern)).unnest("line")
    return out.height


def kit_loader(path: Path) -> int:
    return read_unbound_log(path).lines


def wc(path: Path) -> int:
    return int(
        subprocess.run(
            ["wc", "-l", str(path)], capture_output=True, text=True, check=True
        ).stdout.split()[0]
    )


def timeit(fn: Callable[[Path], int], path: Path) -> tuple[float, int]:
    times = []
    n = 0
    for _ in range(3):
        t0 = time.perf_counter()
        n = fn(path)
        times.append(time.perf_counter() - t0)
    return statistics.median(times), n


def main(argv: list[str]) -> int:
    n = int(argv[0]) if argv else 1_000_000
    with tempfile.TemporaryDirectory() as tmp:
        path = make_input(n, Path(tmp))
        size_mb = path.stat().st_size / 1e6
        cases = {
            "wc -l (I/O limit)": wc,
            "python re loop": python_loop,
            "polars extract_groups": polars_extract,
            "kit.read_unbound_log": kit_loader,
        }
        res = {name: timeit(fn, path) for name, fn in cases.items()}
    kit_rate = n / res["kit.read_unbound_log"][0]
    print(f"input: {n:,} lines of real unbound log ({size_mb:.0f} MB), median of 3")
    print(f"{'case':34} {'seconds':>8} {'lines/s':>12} {'kit / case':>11}")
    for name, (secs, _) in res.items():
        rate = n / secs
        print(f"{name:34} {secs:8.2f} {rate:12,.0f} {kit_rate / rate:11.2f}")
    for name, rate in PUBLISHED.items():
        print(f"{name:34} {'':8} {rate:12,.0f} {kit_rate / rate:11.2f}")
    print(
        f"target (perf-baselines.md: >= 1 M lines/s): {'met' if kit_rate >= 1e6 else 'NOT met'} ({kit_rate / 1e6:.2f} M lines/s)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
