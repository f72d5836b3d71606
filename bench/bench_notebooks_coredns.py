"""Benchmark notebooks 02/03/06 on CoreDNS inputs: the kit calls they make, and the rendering.

Run: ``.venv/bin/python bench/bench_notebooks_coredns.py [--reps N] [--minutes M] [--no-render]
[--no-old]``

Every case runs in this one invocation, ``--reps`` times (median wall time shown), so the ratios
compare figures measured under the same machine load. Baselines:

- ``load``: ``kit.read_coredns_log`` of the same input (the cost every notebook pays first);
- ``target``: the issue's budget for a whole investigation (all notebooks + HTML), 60 s.

Inputs:

- ``excerpts``: the real CoreDNS logs of ``../shared/fixtures/logs`` (lines from 2018 to 2021, with
  and without timestamps) and the hand-made hostile one of ``tests/data/notebooks_coredns``;
- ``burst``: a NodeLocal DNSCache log in the reference incident's shape, written here: ``--minutes``
  minutes of 300 TCP i/o timeouts per minute towards the upstream, with slow answered queries.

Cases: notebook 03's analyses (summary, per-bin counts, peak rate, onset), notebook 06's burst
verdict and symptom chart (bins from ``kit.analyses.resolver_logs.span_every``; with ``--no-old`` left out, also the
fixed 5 s bins the notebook used before, on the excerpts: one rep, it is slow), and notebooks 02,
03 and 06 rendered through ``kit.report.render`` on the excerpts.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from _timing import timed  # noqa: E402 (bench/ is on sys.path when a script runs)

import kit  # noqa: E402
from kit import findings, report  # noqa: E402
from kit.analyses import resolver_logs as logs  # noqa: E402
from kit.sources import coredns  # noqa: E402
from kit.sources.timeline import timeline  # noqa: E402

SHARED_LOGS = REPO.parent / "shared" / "fixtures" / "logs"
TARGET_S = 60.0
CHANGE = dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.UTC)
BY = ["upstream", "transport", "op"]


def _stamp(t: dt.datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%S.%f") + "000Z"


def burst_log(minutes: int, per_minute: int = 300) -> str:
    """One healthy minute, then ``minutes`` minutes of TCP timeouts towards 169.254.169.253."""
    lines = []
    for i in range(60):
        t = CHANGE - dt.timedelta(seconds=60 - i)
        lines.append(
            f"{_stamp(t)} [INFO] 10.0.0.9:{40000 + i} - {i} "
            f'"A IN svc{i}.example.com. udp 40 false 1232" NOERROR qr,rd,ra 80 0.0012s'
        )
    n = 0
    for m in range(minutes):
        for k in range(per_minute):
            t = CHANGE + dt.timedelta(minutes=m, microseconds=k * 59_000_000 // per_minute)
            n += 1
            err = (
                "dial tcp 169.254.169.253:53: i/o timeout"
                if n % 2
                else f"read tcp 10.0.0.5:{30000 + n % 30000}->169.254.169.253:53: i/o timeout"
            )
            lines.append(f"{_stamp(t)} [ERROR] plugin/errors: 2 m{n}.example.com. A: {err}")
            if k % 3 == 0:
                lines.append(
                    f"{_stamp(t)} [INFO] 10.0.0.9:{50000 + n % 10000} - {n % 65536} "
                    f'"A IN m{n}.example.com. udp 40 false 1232" NOERROR qr,rd,ra 80 3.0041s'
                )
    return "\n".join(lines) + "\n"


def notebook_03(log: coredns.CoreDNSLog, every: str) -> None:
    """The calls of notebook 03's CoreDNS section, with its parameters."""
    logs.error_summary(log)
    logs.timing_note(log.errors, count="consolidated_count")
    width = logs.bin_every(log.errors["ts"], every)
    counts = coredns.error_counts(log.errors, every=width, by=BY)
    logs.peak_rate(counts, every=width, by=BY)
    logs.nonzero_bins(counts, by=BY)
    logs.onset(counts, by=BY, change_time=CHANGE)
    logs.message_summary(logs.log_messages(coredns=log))


def symptoms(log: coredns.CoreDNSLog, every: str | None) -> None:
    """Notebook 06's symptom series and chart, rendered to SVG like the report does."""
    import vl_convert as vlc

    width = every or logs.span_every(log.queries, log.errors, every="5s")
    s = findings.symptom_series(coredns=log, every=width)
    chart = findings.symptom_chart(s, timeline(change_time=CHANGE))
    vlc.vegalite_to_svg(chart.to_dict())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--minutes", type=int, default=60, help="minutes of burst (300 errors each)")
    ap.add_argument("--no-render", action="store_true", help="skip rendering the notebooks")
    ap.add_argument("--no-old", action="store_true", help="skip the old fixed 5 s symptom bins")
    args = ap.parse_args()
    if not SHARED_LOGS.is_dir():
        sys.exit(f"needs the shared fixtures next to the repository: {SHARED_LOGS} not found")

    rows: list[tuple[str, str, float, str]] = []
    with tempfile.TemporaryDirectory(prefix="bench-nb-coredns-") as tmp:
        excerpts = Path(tmp) / "excerpts"
        excerpts.mkdir()
        for p in sorted(SHARED_LOGS.glob("*.log")):
            (excerpts / p.name).write_bytes(p.read_bytes())
        hostile = REPO / "tests" / "data" / "notebooks_coredns" / "hostile_qname.log"
        (excerpts / "node-b.log").write_bytes(hostile.read_bytes())
        burst = Path(tmp) / "burst.log"
        burst.write_text(burst_log(args.minutes))

        for name, src in (("excerpts", excerpts), ("burst", burst)):
            load_s = timed(lambda src=src: kit.read_coredns_log(src), args.reps)
            log = kit.read_coredns_log(src)
            size = f"{log.queries.height} queries, {log.errors.height} errors"
            rows.append((name, f"load ({size})", load_s, "load"))
            rows.append(
                (
                    name,
                    "03 analyses",
                    timed(lambda log=log: notebook_03(log, "10s"), args.reps),
                    "load",
                )
            )
            rows.append(
                (
                    name,
                    "06 burst verdict",
                    timed(lambda log=log: logs.burst_status(coredns=log), args.reps),
                    "load",
                )
            )
            rows.append(
                (
                    name,
                    "06 symptom chart (span_every bins)",
                    timed(lambda log=log: symptoms(log, None), args.reps),
                    "load",
                )
            )
            if name == "excerpts" and not args.no_old:
                rows.append(
                    (
                        name,
                        "06 symptom chart (old: fixed 5s bins)",
                        timed(lambda log=log: symptoms(log, "5s"), 1),
                        "load",
                    )
                )

        if not args.no_render:
            out = Path(tmp) / "r.html"

            def render() -> None:
                res = report.render(
                    [
                        REPO / "notebooks" / f
                        for f in ("02-query-logs.py", "03-error-logs.py", "06-findings.py")
                    ],
                    artefacts=[excerpts],
                    output_html=out,
                )
                assert res.ok, [(r.name, r.reason) for r in res.runs]

            rows.append(("excerpts", "render 02+03+06 (one kernel)", timed(render, 1), "target"))

        base = {name: s for name, what, s, _ in rows if what.startswith("load")}
        print(f"{'input':<10} {'case':<44} {'seconds':>9} {'ratio':>10}  against")
        for name, what, s, against in rows:
            ref = TARGET_S if against == "target" else base[name]
            label = "target 60 s" if against == "target" else "load"
            print(f"{name:<10} {what:<44} {s:9.3f} {s / ref:10.2f}x  {label}")


if __name__ == "__main__":
    main()
