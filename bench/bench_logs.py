"""Benchmark notebooks 01-03 and their kit helpers (kit.analyses.resolver_logs, kit.analyses.metrics, the charts) on the sample.

Run: ``.venv/bin/python bench/bench_logs.py [--reps N] [--scale K] [--no-notebooks]``

Every case runs in this one invocation, ``--reps`` times (median wall time shown), so the ratios
compare figures measured under the same machine load. Baselines:

- ``load logs``: ``kit.read_unbound_log`` of the sample's two unbound logs (the loader's cost, which
  every analysis of notebook 02 pays first);
- ``load metrics``: ``kit.analyses.metrics.read_exports`` of the sample's Prometheus exports;
- ``target``: the issue's budget for the whole sample investigation (all notebooks + HTML), 60 s.

Cases: the analyses each notebook runs (same calls, same parameters), the analyses of notebook 02
on the sample's queries repeated ``--scale`` times (a longer incident), the charts (spec and SVG
through vl-convert), and the three notebooks rendered through ``kit.report.render`` (one kernel
each, as the notebook tests run them).
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import polars as pl  # noqa: E402
import vl_convert as vlc  # noqa: E402
from _timing import timed  # noqa: E402 (bench/ is on sys.path when a script runs)

import kit  # noqa: E402
from kit import charts, report  # noqa: E402
from kit.analyses import latency as analysis  # noqa: E402
from kit.analyses import metrics as overview  # noqa: E402
from kit.analyses import resolver_logs as logs  # noqa: E402
from kit.sources.timeline import timeline  # noqa: E402

SAMPLE = REPO / "data" / "sample"
TARGET_S = 60.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--scale", type=int, default=100, help="copies of the sample queries")
    ap.add_argument("--no-notebooks", action="store_true", help="skip rendering the notebooks")
    args = ap.parse_args()

    log_paths = sorted((SAMPLE / "logs").glob("unbound-node*.log"))
    tl = timeline(run_json=SAMPLE / "run.json")
    rows: list[tuple[str, float, str, float]] = []

    t_logs = timed(lambda: kit.read_unbound_log(log_paths), args.reps)
    t_metrics = timed(lambda: overview.read_exports(SAMPLE / "prometheus"), args.reps)
    base = {"load logs": t_logs, "load metrics": t_metrics, "target": TARGET_S}

    exports = overview.read_exports(SAMPLE / "prometheus")
    u = kit.read_unbound_log(log_paths)
    q = logs.with_domain(logs.combined_queries(unbound=u))

    def nb01() -> None:
        quant = overview.latency_overview(exports)
        overview.phase_summary(quant.filter(pl.col("quantile") == 0.99), tl, by=["node"])
        overview.phase_summary(overview.request_rate(exports), tl, by=["node"])
        overview.exported_quantiles(exports)

    def nb02(frame: pl.DataFrame) -> None:
        logs.slow_over_time(frame, every="10s", by=["source"])
        for by in (
            "source",
            "qtype",
            "rcode",
            ["resolver", "proto", "cached"],
            "client_ip",
            "domain",
        ):
            logs.slow_by(frame, by)
        analysis.latency_modes(frame, min_s=0.2)
        logs.duration_histogram(frame, by=["resolver"])

    cap = kit.read_capture(SAMPLE / "captures", progress=False)

    def nb03() -> None:
        logs.error_coverage(unbound=u)
        logs.message_summary(logs.log_messages(unbound=u))
        att = logs.connect_failures(cap.tcp, every="10s", by=["capture", "server_ip"])
        logs.onset(
            att, value="syn_retransmits", by=["capture", "server_ip"], change_time=tl.change_time
        )

    rows.append(("01 analyses", timed(nb01, args.reps), "load metrics", t_metrics))
    rows.append(("02 analyses", timed(lambda: nb02(q), args.reps), "load logs", t_logs))
    big = pl.concat([q] * args.scale).with_columns(
        pl.col("ts") + pl.duration(seconds=pl.int_range(pl.len()) // q.height * 100)
    )
    rows.append(
        (
            f"02 analyses x{args.scale} ({big.height} queries)",
            timed(lambda: nb02(big), 1),
            "load logs",
            t_logs,
        )
    )
    rows.append(("03 analyses (capture cached)", timed(nb03, args.reps), "load logs", t_logs))

    quant = overview.latency_overview(exports)
    modes = analysis.latency_modes(q)

    def chart_svgs() -> None:
        cs = [
            charts.with_change_marker(
                charts.latency_quantiles_chart(quant, by=["node"], ceiling=None),
                tl.change_time,
                tl.fix_time,
            ),
            charts.count_chart(
                logs.slow_over_time(q, by=["source"]),
                value="slow",
                by=["source"],
                change_time=tl.change_time,
            ),
            charts.slow_by_chart(logs.slow_by(q, "domain"), "domain"),
            charts.duration_histogram_chart(
                logs.duration_histogram(q), modes=modes, threshold_s=1.0
            ),
        ]
        for c in cs:
            vlc.vegalite_to_svg(c.to_json())

    rows.append(("4 charts to SVG", timed(chart_svgs, args.reps), "target", TARGET_S))

    if not args.no_notebooks:
        nbs = [
            REPO / "notebooks" / f"{n}.py"
            for n in ("01-latency-overview", "02-query-logs", "03-error-logs")
        ]
        with tempfile.TemporaryDirectory() as tmp:
            t = time.perf_counter()
            res = report.render(
                nbs, output_html=Path(tmp) / "r.html", executed_dir=Path(tmp) / "ex"
            )
            t_nb = time.perf_counter() - t
        status = ",".join(r.status for r in res.runs)
        rows.append((f"render 01-03, shared kernel ({status})", t_nb, "target", TARGET_S))

    print(f"bench_logs {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC, median of {args.reps}")
    print(
        f"baselines: load logs {t_logs:.3f} s, load metrics {t_metrics:.3f} s, target {TARGET_S:.0f} s"
    )
    print(f"{'case':<50} {'seconds':>8}  {'baseline':<13} {'ratio':>7}")
    for name, secs, bname, bsecs in rows:
        print(f"{name:<50} {secs:8.3f}  {bname:<13} {secs / bsecs:7.2f}")
    assert set(base) >= {r[2] for r in rows}


if __name__ == "__main__":
    main()
