"""Benchmark kit.findings.run on the sample and on the sample scaled up.

Input: the committed sample (data/sample: two captures, two unbound logs, the unbound histogram
export, the unbound configs). "xN" repeats the loaded frames N times, each copy shifted by the
sample's length in time (and its TCP streams renumbered), so the findings see N incidents in a
row. Measured in one run, each case the median of 3, in this process (imports excluded):

- ``read_capture (cached)``: loading the two captures from the kit's cache (what a notebook pays
  on a second run), the baseline each run is compared with;
- ``run() xN``: every check on the loaded inputs.

The table shows seconds, DNS transactions per second, the ratio to the cached load of the same
size (load x N) and the share of the 60 s budget for the whole sample investigation (issue 6).
Usage: ``.venv/bin/python bench/bench_findings.py [N ...]`` (default: 1 10 50).
"""

from __future__ import annotations

import sys
import warnings
from datetime import timedelta
from pathlib import Path

import polars as pl

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from _timing import timed  # noqa: E402 (bench/ is on sys.path when a script runs)

import kit  # noqa: E402
import kit.findings as kf  # noqa: E402
from kit.sources.capture import Capture  # noqa: E402

SAMPLE = REPO / "data" / "sample"
BUDGET_S = 60.0


def scale(cap: Capture, n: int) -> Capture:
    span = cap.meta["last_ts"].max() - cap.meta["first_ts"].min() + timedelta(seconds=30)  # type: ignore[operator]
    step = int(cap.tcp["stream"].max() or 0) + 1

    def rep(df: pl.DataFrame, ts_cols: list[str], stream_cols: list[str]) -> pl.DataFrame:
        parts = []
        for k in range(n):
            parts.append(
                df.with_columns(
                    *[pl.col(c) + span * k for c in ts_cols],
                    *[(pl.col(c) + step * k).cast(pl.UInt32) for c in stream_cols],
                )
            )
        return pl.concat(parts)

    return Capture(
        dns=rep(cap.dns, ["ts", "ts_response"], ["tcp_stream"]),
        tcp=rep(cap.tcp, ["ts_syn", "ts_synack", "ts_end", "ts_first", "ts_last"], ["stream"]),
        packets=rep(cap.packets, ["ts"], ["tcp_stream"]),
        meta=cap.meta,
    )


def main(sizes: list[int]) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        kit.read_capture(SAMPLE / "captures", progress=False)  # fill the cache
        load_s = timed(lambda: kit.read_capture(SAMPLE / "captures", progress=False))
        cap = kit.read_capture(SAMPLE / "captures", progress=False)
        unb = kit.read_unbound_log(sorted((SAMPLE / "logs").glob("unbound-node*.log")))
        metrics = kit.read_metrics(
            SAMPLE / "prometheus" / "unbound_response_time_seconds_bucket.json"
        )
        fwd = pl.concat(
            [kit.read_unbound_conf(p) for p in sorted((SAMPLE / "configs").glob("unbound-*.conf"))]
        )
    rows = [("read_capture (cached) x1", cap.dns.height, load_s, 1.0, load_s / BUDGET_S, "")]
    for n in sizes:
        big = scale(cap, n)

        def once(big: Capture = big) -> list[kf.Finding]:
            return kf.run(capture=big, unbound=unb, metrics=metrics, forward=fwd)

        s = timed(once)
        ids = ",".join(f.id for f in once())
        rows.append((f"run() x{n}", big.dns.height, s, s / (load_s * n), s / BUDGET_S, ids))
    print(
        f"{'case':28} {'dns rows':>9} {'seconds':>8} {'rows/s':>10} {'vs load':>8} {'of 60 s':>8}"
    )
    for name, n_rows, s, ratio, share, ids in rows:
        print(f"{name:28} {n_rows:9d} {s:8.3f} {n_rows / s:10.0f} {ratio:8.2f} {share:8.1%}  {ids}")


if __name__ == "__main__":
    main([int(a) for a in sys.argv[1:]] or [1, 10, 50])
