""":func:`run` (every check that has its data, most severe first) and the frames around it:
:func:`findings_frame`, :func:`evidence_table`, :func:`symptom_series`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import polars as pl

from kit.findings._util import infer_upstreams
from kit.findings.checks_latency import (
    check_bucket_ceiling,
    check_latency_modes,
    check_metrics_blind_spot,
)
from kit.findings.checks_logs import (
    check_error_bursts,
    check_ndots_expansion,
    check_servfail_storm,
)
from kit.findings.checks_node import node_results
from kit.findings.checks_transport import (
    _syn_packets,
    check_conntrack_race,
    check_forced_tcp,
    check_packet_rate,
    check_syn_retransmissions,
    check_truncation,
)
from kit.findings.model import (
    FINDINGS_SCHEMA,
    SEVERITIES,
    Finding,
)
from kit.net import addresses
from kit.sources.timeline import Timeline
from kit.timeutil import UTC as _UTC
from kit.timeutil import parse_duration

if TYPE_CHECKING:
    pass


def run(
    *,
    capture: Any = None,
    coredns: Any = None,
    unbound: Any = None,
    metrics: pl.DataFrame | None = None,
    forward: pl.DataFrame | None = None,
    timeline: Timeline | None = None,
    slow_threshold_s: float = 1.0,
    upstreams: Sequence[str] | None = None,
    packet_limit_pps: float = 1024.0,
    cluster_domain: str = "cluster.local",
    node: Any = None,
) -> list[Finding]:
    """Run every check that has its data; the findings that fired, most severe first.

    Parameters
    ----------
    capture
        :class:`kit.sources.capture.Capture` (``kit.read_capture``).
    coredns
        :class:`kit.sources.coredns.CoreDNSLog` (``kit.read_coredns_log``).
    unbound
        :class:`kit.sources.unbound.ResolverLog` (``kit.read_unbound_log``).
    metrics
        A ``kit.read_metrics`` frame.
    forward
        Forward settings, ``kit.sources.corefile.FORWARD_SCHEMA`` (Corefile ``forward_settings()``,
        ``kit.read_unbound_conf``; several concatenated).
    timeline
        When given with a change time, every finding's evidence gets ``change_time``.
    slow_threshold_s
        A client answer at least this slow (seconds) is slow.
    upstreams
        Upstream resolver addresses; default: :func:`infer_upstreams`.
    packet_limit_pps
        Per-interface packet limit of the resolver, packets per second.
    cluster_domain
        Kubernetes cluster domain for the ndots check.
    node
        :class:`kit.sources.node.NodeCounters` (``kit.read_node_evidence``): nstat, conntrack -S,
        ethtool -S, ip -s link (:mod:`kit.findings.checks_node`).

    Returns
    -------
    list[Finding]
        Sorted by severity (:data:`SEVERITIES`), then in the order of the checks above.
    """
    ups = addresses(upstreams) if upstreams else infer_upstreams(capture, forward)
    found: list[Finding | None] = []
    syn = check_syn_retransmissions(
        capture,
        upstreams=ups or None,
        slow_threshold_s=slow_threshold_s,
        change_time=timeline.change_time if timeline is not None else None,
    )
    found.append(check_forced_tcp(forward, corroborated=syn is not None, coredns=coredns))
    found.append(syn)
    found.append(check_latency_modes(capture=capture, coredns=coredns, unbound=unbound))
    found.append(check_bucket_ceiling(metrics))
    found.append(
        check_packet_rate(
            capture,
            upstreams=ups or None,
            limit_pps=packet_limit_pps,
            slow_threshold_s=slow_threshold_s,
        )
    )
    found.append(check_error_bursts(coredns=coredns, unbound=unbound))
    found.append(check_metrics_blind_spot(capture, metrics, upstreams=ups or None))
    found.append(
        check_ndots_expansion(
            capture=capture, coredns=coredns, unbound=unbound, cluster_domain=cluster_domain
        )
    )
    found.append(check_truncation(capture))
    found.append(check_servfail_storm(capture=capture, coredns=coredns, unbound=unbound))
    found.append(check_conntrack_race(capture))
    # node evidence (nstat, conntrack -S, ethtool -S): kit.findings.checks_node
    found.extend(r.finding for r in node_results(node))
    fired = [f for f in found if f is not None]
    if timeline is not None and timeline.change_time is not None:
        fired = [
            dataclasses.replace(
                f, evidence={**f.evidence, "change_time": timeline.change_time.isoformat()}
            )
            for f in fired
        ]
    rank = {s: i for i, s in enumerate(SEVERITIES)}
    return sorted(fired, key=lambda f: rank[f.severity])  # stable: check order within a severity


def _summary(value: Any) -> str:
    if isinstance(value, pl.DataFrame):
        return f"{value.height} rows"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def findings_frame(findings: Sequence[Finding]) -> pl.DataFrame:
    """One row per finding (:data:`FINDINGS_SCHEMA`), evidence numbers as ``name=value`` text."""
    rows = [
        {
            "severity": str(f.severity),
            "role": str(f.role),
            "id": f.id,
            "title": f.title,
            "explanation": f.explanation,
            "evidence": "; ".join(f"{k}={_summary(v)}" for k, v in f.evidence.items()),
            "confirm": f.confirm,
        }
        for f in findings
    ]
    return pl.DataFrame(rows, schema=FINDINGS_SCHEMA)


def evidence_table(finding: Finding) -> pl.DataFrame:
    """The scalar evidence of one finding as rows ``name``, ``value`` (text)."""
    rows = [
        (k, _summary(v)) for k, v in finding.evidence.items() if not isinstance(v, pl.DataFrame)
    ]
    return pl.DataFrame(rows, schema={"name": pl.String, "value": pl.String}, orient="row")


SYMPTOMS_SCHEMA = pl.Schema({"ts": _UTC, "series": pl.String(), "value": pl.Float64()})
"""Schema of :func:`symptom_series`: bin start (UTC), symptom name, events per second."""


def symptom_series(
    *,
    capture: Any = None,
    coredns: Any = None,
    upstreams: Sequence[str] | None = None,
    slow_threshold_s: float = 1.0,
    every: str = "5s",
) -> pl.DataFrame:
    """The incident's symptoms over time, per second, for one chart (tidy, already aggregated).

    Series (each only when its input is given and it has at least one event):
    ``"SYN retransmissions to upstream"`` (retransmitted SYN packets to port 53 of ``upstreams``,
    or of any server), ``"slow or unanswered client queries"`` (capture transactions not sent to
    an upstream, at least ``slow_threshold_s`` seconds or unanswered and uncensored, by query
    time), ``"upstream errors (CoreDNS)"`` (``errors`` lines with a time; summaries count as the
    errors they stand for).

    Parameters
    ----------
    capture, coredns
        Loaded inputs (either may be ``None``).
    upstreams
        Upstream resolver addresses (default: :func:`infer_upstreams` on the capture).
    slow_threshold_s
        Seconds.
    every
        Bin width (polars duration).

    Returns
    -------
    polars.DataFrame
        :data:`SYMPTOMS_SCHEMA`: ``ts`` bin start, ``series``, ``value`` (events per second in the
        bin). Every series covers the whole span of the inputs (capture first to last packet, log
        first to last line) with 0 where nothing happened, so a quiet phase shows as zero. Sorted
        by series and time.
    """
    width_s = parse_duration(every, what="every")
    events: list[pl.DataFrame] = []
    spans: list[pl.DataFrame] = []

    def add(name: str, ev: pl.DataFrame, weight: pl.Expr | None = None) -> None:
        if not ev.is_empty():
            w = pl.lit(1, dtype=pl.Int64) if weight is None else weight.cast(pl.Int64)
            events.append(ev.select(pl.col("ts").cast(_UTC), series=pl.lit(name), n=w))

    if capture is not None:
        ups = addresses(upstreams) if upstreams else infer_upstreams(capture)
        syn = _syn_packets(capture, ups or None).filter(pl.col("is_retransmission"))
        add("SYN retransmissions to upstream", syn)
        client = capture.dns.filter(~pl.col("server_ip").is_in(ups)) if ups else capture.dns
        slow = client.filter(
            (pl.col("latency_s") >= slow_threshold_s) | (~pl.col("answered") & ~pl.col("censored"))
        )
        add("slow or unanswered client queries", slow)
        spans.append(capture.meta.select(lo=pl.col("first_ts"), hi=pl.col("last_ts")))
    if coredns is not None:
        e = coredns.errors.filter(pl.col("ts").is_not_null())
        add("upstream errors (CoreDNS)", e, pl.col("consolidated_count").fill_null(1))
        for df in (coredns.queries, coredns.errors):
            spans.append(df.select(lo=pl.col("ts").min(), hi=pl.col("ts").max()))
    if not events:
        return pl.DataFrame(schema=SYMPTOMS_SCHEMA)
    ev = pl.concat(events).with_columns(pl.col("ts").dt.truncate(every))
    span = pl.concat([*spans, ev.select(lo=pl.col("ts").min(), hi=pl.col("ts").max())])
    lo = span.select(pl.col("lo").min().dt.truncate(every)).item()
    hi = span.select(pl.col("hi").max()).item()
    grid = pl.DataFrame(
        {"ts": pl.datetime_range(lo, hi, every, eager=True, time_unit="us", time_zone="UTC")}
    )
    grid = grid.unique().join(ev.select("series").unique(), how="cross")
    counts = ev.group_by("ts", "series").agg(n=pl.col("n").sum())
    return (
        grid.join(counts, on=["ts", "series"], how="left")
        .select("ts", "series", value=pl.col("n").fill_null(0).cast(pl.Float64) / width_s)
        .sort("series", "ts")
    )
