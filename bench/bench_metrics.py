"""Benchmark kit.read_metrics on generated exports of realistic size, against named baselines.

Run: ``.venv/bin/python bench/bench_metrics.py [--scale N]``. Everything is measured in this one
run (the machine is shared, so only ratios mean something). Baselines, per format:

- ``json.loads``: parsing the API JSON alone (a floor: read_metrics must parse it too).
- ``split-lines``: splitting exposition text into lines and fields in plain Python (a floor for
  any pure-Python text parser).
- ``promtool check metrics``: Prometheus's own Go parser + linter over the same text (a real tool).
- ``promtool create-blocks``: ``promtool tsdb create-blocks-from openmetrics`` (parses and writes
  TSDB blocks: a real tool doing more work).
- ``pl.read_csv+unpivot``: polars' native CSV reader on the Grafana CSV, turned into long form.

Data (seeded, CoreDNS-shaped): ``coredns_dns_request_duration_seconds_bucket`` with 17 ``le``
per (instance, zone), plus counters. Sizes at ``--scale 1``: API matrix 40 series x 1,440 points
(57.6k samples); OpenMetrics 120 scrapes x 510 series (61.2k samples); Grafana CSV 2,880 rows x 20
series (57.6k cells).
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from kit.sources.metrics.prometheus import read_metrics

LE = [f"{0.00025 * 2**k:g}" for k in range(16)] + ["+Inf"]
T0 = 1_709_251_200


def gen_api_json(path: Path, scale: int) -> int:
    rng = random.Random(1)
    result = []
    for inst in range(8 * scale):
        for q in ("0.5", "0.9", "0.99", "1", "NaN")[:5]:
            values = [
                [T0 + 15 * i, "NaN" if q == "NaN" else repr(round(rng.random() * 8.192, 6))]
                for i in range(1440)
            ]
            result.append(
                {
                    "metric": {"instance": f"10.0.{inst}.1:9153", "server": "dns://:53", "q": q},
                    "values": values,
                }
            )
    path.write_text(
        json.dumps({"status": "success", "data": {"resultType": "matrix", "result": result}})
    )
    return sum(len(s["values"]) for s in result)


def gen_openmetrics(path: Path, scale: int) -> int:
    rng = random.Random(2)
    lines = ["# TYPE coredns_dns_request_duration_seconds histogram"]
    n = 0
    counts: dict[tuple[int, str], float] = {}
    for k in range(120 * scale):
        t = T0 + 15 * k
        for inst in range(10):
            for zone in ("cluster.local.", ".", "in-addr.arpa."):
                c = 0.0
                for le in LE:
                    key = (inst, zone + le)
                    c += rng.randint(0, 5)
                    counts[key] = counts.get(key, 0.0) + c
                    lines.append(
                        f'coredns_dns_request_duration_seconds_bucket{{instance="10.0.0.{inst}:9153",'
                        f'server="dns://:53",zone="{zone}",le="{le}"}} {counts[key]:g} {t}'
                    )
                    n += 1
    lines.append("# EOF")
    path.write_text("\n".join(lines) + "\n")
    return n


def gen_grafana_csv(path: Path, scale: int) -> int:
    rng = random.Random(3)
    cols = [f'coredns_dns_requests_total{{instance=""10.0.0.{i}:9153""}}' for i in range(20)]
    rows = ['"Time",' + ",".join(f'"{c}"' for c in cols)]
    n = 0
    for k in range(2880 * scale):
        cells = []
        for _ in cols:
            if rng.random() < 0.02:
                cells.append("")
            else:
                cells.append(repr(rng.random() * 100))
                n += 1
        rows.append(f"{(T0 + 30 * k) * 1000}," + ",".join(cells))
    path.write_text("\r\n".join(rows) + "\r\n")
    return n


def best(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--scale", type=int, default=1, help="multiply the data sizes")
    ap.add_argument("--repeat", type=int, default=3, help="runs per measurement (best is kept)")
    args = ap.parse_args()
    promtool = shutil.which("promtool")
    rows: list[tuple[str, str, int, float, str, float]] = []
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        api, om, csv = d / "range.json", d / "history.om", d / "panel.csv"
        n_api = gen_api_json(api, args.scale)
        n_om = gen_openmetrics(om, args.scale)
        n_csv = gen_grafana_csv(csv, args.scale)

        def kit(p: Path) -> Callable[[], object]:
            def run() -> object:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    df = read_metrics(p, scrape_time="2024-03-01T00:00:00Z")
                return df

            return run

        t_api = best(kit(api), args.repeat)
        rows.append(
            (
                "api-json",
                "json.loads",
                n_api,
                t_api,
                "json.loads",
                best(lambda: json.loads(api.read_text()), args.repeat),
            )
        )
        t_om = best(kit(om), args.repeat)
        rows.append(
            (
                "openmetrics",
                "split-lines",
                n_om,
                t_om,
                "split-lines",
                best(lambda: [ln.split() for ln in om.read_text().split("\n")], args.repeat),
            )
        )
        if promtool:
            text = om.read_text().replace("# EOF\n", "")
            plain = d / "plain.prom"
            # promtool check metrics takes 0.0.4 text without timestamps: same lines, ts cut off
            plain.write_text(
                "\n".join(
                    ln.rsplit(" ", 1)[0] if ln and not ln.startswith("#") else ln
                    for ln in text.split("\n")[: 1 + 510]
                )
                + "\n"
            )

            def check() -> None:
                with plain.open("rb") as f:
                    subprocess.run(
                        [promtool, "check", "metrics"], stdin=f, capture_output=True, check=False
                    )

            # one scrape only: scale promtool's time to the whole file by sample count
            t_check = best(check, args.repeat) * (n_om / 510)
            rows.append(
                (
                    "openmetrics",
                    "promtool check metrics (scaled)",
                    n_om,
                    t_om,
                    "promtool check",
                    t_check,
                )
            )

            def blocks() -> None:
                out = d / "blocks"
                shutil.rmtree(out, ignore_errors=True)
                subprocess.run(
                    [promtool, "tsdb", "create-blocks-from", "openmetrics", str(om), str(out)],
                    capture_output=True,
                    check=True,
                )

            rows.append(
                (
                    "openmetrics",
                    "promtool create-blocks",
                    n_om,
                    t_om,
                    "promtool blocks",
                    best(blocks, args.repeat),
                )
            )
        t_csv = best(kit(csv), args.repeat)

        def polars_csv() -> pl.DataFrame:
            df = pl.read_csv(csv)
            return df.unpivot(index="Time").drop_nulls("value")

        rows.append(
            (
                "grafana-csv",
                "pl.read_csv+unpivot",
                n_csv,
                t_csv,
                "polars",
                best(polars_csv, args.repeat),
            )
        )

    print(
        f"read_metrics benchmark (scale {args.scale}, best of {args.repeat}); ratio = kit time / baseline time"
    )
    print(
        f"{'format':<12} {'samples':>8} {'kit s':>8} {'kit samples/s':>14}  {'baseline':<32} {'base s':>8} {'ratio':>7}"
    )
    for fmt, base, n, t_kit, _, t_base in rows:
        print(
            f"{fmt:<12} {n:>8} {t_kit:>8.3f} {n / t_kit:>14,.0f}  {base:<32} {t_base:>8.3f} {t_kit / t_base:>7.2f}"
        )
    print(
        f"median kit throughput: {statistics.median(n / t for _, _, n, t, _, _ in rows):,.0f} samples/s"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
