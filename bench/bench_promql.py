"""Benchmark kit.promql.evaluate against the real Prometheus answering the same query_range.

Run: ``.venv/bin/python bench/bench_promql.py [--instances N] [--minutes M]``. Everything is
measured in this one run (the machine is shared, so only ratios mean something). Baseline:

- ``prometheus query_range``: Prometheus 2.42 (``/usr/bin/prometheus``) serving the same history,
  backfilled with ``promtool tsdb create-blocks-from openmetrics``, queried over HTTP on 127.0.0.1
  (round trip and JSON encoding included, which favours the kit slightly; the kit's time includes
  turning the frame into series, which Prometheus did at backfill time).

Data: the test history of tests/prom_server.py (CoreDNS buckets, resets, gaps) with extra CoreDNS
pods; at the defaults 24 pods x 2 h at 15 s = about 330 k samples. Each query runs over the whole
history at a 60 s step; times are the median of 3 runs. The kit's answers are checked against
Prometheus's before timing (same series and steps, relative difference <= 1e-9).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from _timing import timed  # noqa: E402 (bench/ is on sys.path when a script runs)
from prom_server import T0, PromServer, history, utc  # noqa: E402

from kit.promql import evaluate  # noqa: E402

QUERIES = [
    (
        "mixin p99",
        'histogram_quantile(0.99, sum(rate(coredns_dns_request_duration_seconds_bucket{job=~"coredns|node-local-dns"}[5m])) by (server, zone, le))',
    ),
    (
        "p99 by instance",
        "histogram_quantile(0.99, sum by (instance, le) (rate(coredns_dns_request_duration_seconds_bucket[5m])))",
    ),
    ("rate by rcode", "sum by (rcode) (rate(coredns_dns_responses_total[5m]))"),
    ("raw rate", "rate(coredns_dns_requests_total[5m])"),
    ("gauge arith", "coredns_cache_entries * 2 / 3"),
]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--instances", type=int, default=20, help="extra CoreDNS pods (default 20)")
    ap.add_argument(
        "--minutes", type=int, default=120, help="history length in minutes (default 120)"
    )
    args = ap.parse_args()
    prometheus, promtool = shutil.which("prometheus"), shutil.which("promtool")
    if not prometheus or not promtool:
        sys.stderr.write("prometheus/promtool not installed (Debian package prometheus)\n")
        return 2
    sys.path.insert(0, str(ROOT / "tests"))
    from test_promql_prometheus import _compare  # the tests' own comparison

    t = time.perf_counter()
    om, frame = history(extra_instances=args.instances, minutes=args.minutes)
    gen_s = time.perf_counter() - t
    start, end, step = T0 + 600, T0 + args.minutes * 60, 60.0
    print(
        f"history: {frame.height:,} samples, {frame.select(frame.columns[1:2] + frame.columns[4:]).n_unique():,} series, generated in {gen_s:.1f} s"
    )
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        server = PromServer(prometheus, promtool, Path(tmp), om)
        print(f"backfill + start: {time.perf_counter() - t:.1f} s")
        try:
            rows = []
            for name, expr in QUERIES:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")

                    def kit(expr: str = expr) -> object:
                        return evaluate(
                            frame, expr, start=utc(start), end=utc(end), step=step, compat="2"
                        )

                    def prom(expr: str = expr) -> dict:
                        return server.query_range(expr, start, end, step)

                    points, _ = _compare(expr, kit(), prom())  # type: ignore[arg-type]
                    k = timed(kit)
                    p = timed(prom)
                rows.append((name, points, k, p))
        finally:
            server.stop()
    print()
    print(f"{'query':<18} {'points':>8} {'kit s':>8} {'prometheus s':>13} {'kit / prometheus':>17}")
    for name, points, k, p in rows:
        print(f"{name:<18} {points:>8,} {k:>8.3f} {p:>13.3f} {k / p:>16.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
