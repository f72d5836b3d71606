"""Benchmark notebooks 04/05 and the kit.analyses.upstream helpers behind them, against named baselines.

Run: ``.venv/bin/python bench/bench_upstream.py [--scale N] [--reps R]``

Everything is measured in this one run (the machine is shared: only ratios mean something).

Baselines:

- ``target``: the issue's budget for the whole sample investigation (all notebooks + HTML), 60 s;
- ``00-start-here``: the report pipeline running the lightest notebook (kernel, imports, HTML):
  the floor of any notebook;
- ``read_capture (cache)``: loading the same frames from the kit's Parquet cache, per helper row
  count: a helper should cost a fraction of loading its input;
- ``group_by floor``: ``dns.group_by("capture").len()`` on the same frame, the cheapest polars pass.

Cases:

- ``report 04+05``: (after one warm-up render) both notebooks rendered on data/sample through ``kit.report.render`` (one shared
  kernel, as ``dnskit report`` runs them);
- each helper of notebooks 04-05 on the sample frames replicated ``--scale`` times (each copy its
  own ``capture``, shifted in time: the sample's distributions, ``--scale`` x the rows).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import polars as pl  # noqa: E402
from _timing import timed  # noqa: E402 (bench/ is on sys.path when a script runs)

import kit  # noqa: E402
from kit import report  # noqa: E402
from kit.analyses import rates  # noqa: E402
from kit.analyses import upstream as up  # noqa: E402
from kit.sources.capture import Capture  # noqa: E402

TARGET_S = 60.0
SAMPLE = REPO / "data" / "sample"


def replicate(cap: Capture, scale: int) -> Capture:
    """The sample's frames ``scale`` times, each copy a capture of its own, shifted by its span."""
    span = pl.duration(minutes=5)
    parts: dict[str, list[pl.DataFrame]] = {"dns": [], "tcp": [], "packets": []}
    for i in range(scale):
        shift = span * i
        name = pl.col("capture") + f"-{i}"
        parts["dns"].append(
            cap.dns.with_columns(
                capture=name, ts=pl.col("ts") + shift, ts_response=pl.col("ts_response") + shift
            )
        )
        parts["tcp"].append(
            cap.tcp.with_columns(
                capture=name,
                ts_syn=pl.col("ts_syn") + shift,
                ts_synack=pl.col("ts_synack") + shift,
                ts_end=pl.col("ts_end") + shift,
                ts_first=pl.col("ts_first") + shift,
                ts_last=pl.col("ts_last") + shift,
            )
        )
        parts["packets"].append(cap.packets.with_columns(capture=name, ts=pl.col("ts") + shift))
    return Capture(
        dns=pl.concat(parts["dns"]),
        tcp=pl.concat(parts["tcp"]),
        packets=pl.concat(parts["packets"]),
        meta=cap.meta,
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--scale", type=int, default=50, help="copies of the sample frames (default 50)"
    )
    ap.add_argument("--reps", type=int, default=3, help="repetitions per case (median shown)")
    args = ap.parse_args()
    if not (SAMPLE / "captures").is_dir():
        print("data/sample/captures missing: run `make sample` first", file=sys.stderr)
        return 2

    rows: list[tuple[str, float, str, float]] = []  # case, seconds, baseline name, baseline s

    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(tmp) / "cache"
        kit.read_capture(SAMPLE / "captures", cache=cache, progress=False)  # fill the cache
        t_cache = timed(
            lambda: kit.read_capture(SAMPLE / "captures", cache=cache, progress=False), args.reps
        )
        sample = kit.read_capture(SAMPLE / "captures", cache=cache, progress=False)

        def render(names: list[str]) -> Callable[[], object]:
            def run() -> object:
                out = Path(tmp) / "r.html"
                res = report.render(
                    [REPO / "notebooks" / f"{n}.py" for n in names],
                    output_html=out,
                    executed_dir=Path(tmp) / "ex",
                )
                assert res.ok, [(r.name, r.status, r.reason) for r in res.runs]
                return res

            return run

        render(["00-start-here"])()  # warm-up: first kernel, imports, first SVG paid once
        t_floor_nb = timed(render(["00-start-here"]), args.reps)
        t_nb = timed(render(["04-capture-dns", "05-upstream-tcp"]), args.reps)
        rows.append(("report 04+05 (sample)", t_nb, "target 60 s", TARGET_S))
        rows.append(("report 04+05 (sample)", t_nb, "00-start-here", t_floor_nb))

    cap = replicate(sample, args.scale)
    t_load = t_cache * args.scale  # the Parquet cache read, scaled to the same rows
    t_group = timed(lambda: cap.dns.group_by("capture").len(), args.reps)
    caches = up.infer_cache_ips(cap.dns, tcp=cap.tcp)
    ups = up.infer_upstream_ips(cap.dns, tcp=cap.tcp, cache_ips=caches)
    client = up.client_queries(cap.dns, caches)
    modes = up.latency_modes_by(client, by=["capture"])
    cases: list[tuple[str, Callable[[], object]]] = [
        # as the notebooks call them: with the TCP connections (first-SYN timing, failed ones)
        ("server_roles", lambda: up.server_roles(cap.dns, tcp=cap.tcp)),
        (
            "infer_upstream_ips",
            lambda: up.infer_upstream_ips(cap.dns, tcp=cap.tcp, cache_ips=caches),
        ),
        ("infer_upstream_ips (dns only)", lambda: up.infer_upstream_ips(cap.dns, cache_ips=caches)),
        ("outcomes", lambda: up.outcomes(client)),
        ("log_histogram", lambda: up.log_histogram(client, by=["capture"])),
        ("slow_over_time", lambda: up.slow_over_time(client)),
        ("latency_modes_by", lambda: up.latency_modes_by(client, by=["capture"])),
        ("match_ladder", lambda: up.match_ladder(modes)),
        ("syn_retransmissions", lambda: up.syn_retransmissions(cap.packets, server_ips=ups)),
        ("connection_summary", lambda: up.connection_summary(cap.tcp, server_ips=ups)),
        (
            "packet_rates+summary",
            lambda: rates.rate_summary(rates.packet_rates(up.upstream_packets(cap.packets, ups))),
        ),
    ]
    for name, fn in cases:
        t = timed(fn, args.reps)
        rows.append((name, t, "read_capture (cache)", t_load))
        rows.append((name, t, "group_by floor", t_group))

    print(
        f"frames: dns {cap.dns.height:,} rows, packets {cap.packets.height:,}, "
        f"tcp {cap.tcp.height:,} (sample x {args.scale}); median of {args.reps}\n"
    )
    print(f"{'case':<24} {'seconds':>9}  {'baseline':<22} {'baseline s':>10} {'ratio':>8}")
    for case, t, base, tb in rows:
        print(f"{case:<24} {t:>9.3f}  {base:<22} {tb:>10.3f} {t / tb:>8.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
