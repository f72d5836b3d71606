"""Benchmark the chart builders of kit.charts: what the readability work (span-aware UTC time axes,
histogram outlines with zero bins, rule-label layout) costs on top of plain Altair.

Run: ``.venv/bin/python bench/bench_charts.py [--reps N]``

Every case runs in this one invocation, ``--reps`` times (median wall time shown), so the ratios
compare figures measured under the same machine load. Baselines, measured on the same frames:

- ``plain spec``: ``alt.Chart(df).mark_line().encode(x="ts:T", y="value:Q", color="series:N")``
  turned into a Vega-Lite dict (what Altair alone costs for the data the kit chart plots);
- ``plain svg``: the same plain chart rendered to SVG by vl-convert (what the report pays per chart
  anyway).

Cases: a 100 s time series (the sample's shape, 1 s points, 2 series) and one day at 1 s (86,400
points x 2 series, binned down to 3,000 rows) through ``rate_chart`` + ``with_change_marker``;
``latency_quantiles_chart`` on 30 instances x 3 quantiles x 1 day at 30 s (259,200 rows); the
handshake histogram (log bins with a gap, the SYN ladder) and the duration histogram with five
modes; each as spec (``to_dict``) and as SVG.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import altair as alt  # noqa: E402
import polars as pl  # noqa: E402
import vl_convert as vlc  # noqa: E402
from _timing import timed  # noqa: E402 (bench/ is on sys.path when a script runs)

from kit import charts  # noqa: E402
from kit.analyses import resolver_logs as logs  # noqa: E402
from kit.analyses import upstream as up  # noqa: E402
from kit.charts import _base  # noqa: E402

T0 = dt.datetime(2026, 11, 26, 6, 8, 45, tzinfo=dt.UTC)


def series(n: int, step_s: float, names: int = 2) -> pl.DataFrame:
    end = T0 + dt.timedelta(seconds=step_s * (n - 1))
    ts = pl.datetime_range(T0, end, f"{int(step_s * 1e6)}us", eager=True, time_zone="UTC")
    values = [[float((j * 7 + i) % 50) for j in range(n)] for i in range(names)]
    return pl.concat(
        pl.DataFrame({"ts": ts, "rcode": f"R{i}", "value": values[i]}) for i in range(names)
    )


def plain(df: pl.DataFrame) -> alt.Chart:
    return (
        alt.Chart(df.rename({"rcode": "series"}))
        .mark_line()
        .encode(x="ts:T", y="value:Q", color="series:N")
        .properties(width=charts.WIDTH, height=charts.HEIGHT)
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=5)
    args = ap.parse_args()
    reps = args.reps

    short = series(101, 1.0)
    day = series(86_400, 1.0)
    change, fix = T0 + dt.timedelta(seconds=20), T0 + dt.timedelta(seconds=80)

    def rate(df: pl.DataFrame) -> alt.LayerChart:
        return charts.with_change_marker(charts.rate_chart(df), change, fix)  # type: ignore[return-value]

    # the plain baseline plots what the kit chart plots: the day binned to the same rows
    day_rows = charts.rate_chart(day).to_dict()
    binned = pl.DataFrame(day_rows["datasets"][day_rows["data"]["name"]]).select(
        pl.col("ts").str.to_datetime(time_zone="UTC"), pl.col("series").alias("rcode"), "value"
    )

    n, inst = 2880, 30
    ts = pl.datetime_range(T0, T0 + dt.timedelta(seconds=30 * (n - 1)), "30s", eager=True)
    quant = pl.concat(
        pl.DataFrame({"ts": ts, "instance": f"node-{i}", "quantile": q, "value": 0.001 * (i + 1)})
        for i in range(inst)
        for q in (0.5, 0.9, 0.99)
    )
    fast = [0.00002 * (1 + i % 9) for i in range(800)]
    lat = pl.DataFrame({"capture": "node1", "latency_s": fast + [1.1] * 200})
    hist = up.log_histogram(
        pl.concat([lat, pl.DataFrame({"capture": ["node1"] * 60, "latency_s": [3.1] * 60})]),
        by=["capture"],
    )
    ladder = up.syn_ladder()
    durations = pl.DataFrame(
        {"duration_s": [0.0002] * 500 + [1.02] * 200 + [3.03] * 100 + [7.17] * 50 + [10.0] * 50}
    )
    dhist = logs.duration_histogram(durations)
    modes = pl.DataFrame({"mode_s": [1.02, 3.03, 7.17, 10.0, 0.0002]})

    cases: list[tuple[str, Callable[[], object], str]] = [
        ("rate + marker, 100 s: spec", lambda: rate(short).to_dict(), "plain spec 100 s"),
        ("rate + marker, 100 s: svg", lambda: vlc.vegalite_to_svg(rate(short).to_json()), "plain svg 100 s"),
        ("rate + marker, 1 day at 1 s: spec", lambda: rate(day).to_dict(), "plain spec 1 day"),
        ("rate + marker, 1 day at 1 s: svg", lambda: vlc.vegalite_to_svg(rate(day).to_json()), "plain svg 1 day"),
        ("quantiles 259,200 rows: spec", lambda: charts.latency_quantiles_chart(quant).to_dict(), "plain spec 1 day"),
        ("handshake histogram + ladder: spec", lambda: charts.latency_histogram_chart(hist, ladder=ladder).to_dict(), "plain spec 100 s"),
        ("handshake histogram + ladder: svg", lambda: vlc.vegalite_to_svg(charts.latency_histogram_chart(hist, ladder=ladder).to_json()), "plain svg 100 s"),
        ("duration histogram + 5 modes: svg", lambda: vlc.vegalite_to_svg(charts.duration_histogram_chart(dhist, modes=modes, threshold_s=1.0).to_json()), "plain svg 100 s"),
        ("time ticks alone (x1000)", lambda: [_base._time_ticks(T0, T0 + dt.timedelta(hours=6)) for _ in range(1000)], "plain spec 100 s"),
    ]  # fmt: skip
    base = {
        "plain spec 100 s": timed(lambda: plain(short).to_dict(), reps),
        "plain svg 100 s": timed(lambda: vlc.vegalite_to_svg(plain(short).to_json()), reps),
        "plain spec 1 day": timed(lambda: plain(binned).to_dict(), reps),
        "plain svg 1 day": timed(lambda: vlc.vegalite_to_svg(plain(binned).to_json()), reps),
    }
    rows = [(name, timed(fn, reps), bname) for name, fn, bname in cases]

    print(f"bench_charts {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC, median of {reps}")
    print("baselines: " + ", ".join(f"{k} {v:.4f} s" for k, v in base.items()))
    print(f"{'case':<40} {'seconds':>8}  {'baseline':<17} {'ratio':>7}")
    for name, secs, bname in rows:
        print(f"{name:<40} {secs:8.4f}  {bname:<17} {secs / base[bname]:7.2f}")


if __name__ == "__main__":
    main()
