""":func:`run_checks` (every check's :class:`CheckResult`: fired, not fired or not checked, graded by
the evidence around it), :func:`run` (the findings that fired, most severe first) and the frames
around them: :func:`findings_frame`, :func:`evidence_table`, :func:`symptom_series`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import polars as pl

from kit.findings._util import infer_upstreams
from kit.findings.checks_latency import (
    bucket_ceiling_result,
    latency_modes_result,
    metrics_blind_spot_result,
)
from kit.findings.checks_logs import (
    error_bursts_result,
    ndots_expansion_result,
    servfail_storm_result,
)
from kit.findings.checks_node import node_results
from kit.findings.checks_transport import (
    _syn_packets,
    conntrack_race_result,
    forced_tcp_result,
    packet_rate_result,
    syn_retransmissions_result,
    truncation_result,
    upstream_unreachable_result,
)
from kit.findings.model import (
    FINDINGS_SCHEMA,
    SEVERITIES,
    CheckResult,
    Finding,
)
from kit.net import addresses
from kit.sources.timeline import Timeline
from kit.timeutil import UTC as _UTC
from kit.timeutil import parse_duration

if TYPE_CHECKING:
    pass


CHECK_NEEDS: dict[str, tuple[str, ...]] = {
    "forced-tcp": ("forward",),
    "syn-retransmissions": ("capture",),
    "upstream-unreachable": ("capture",),
    "latency-timer-modes": ("capture", "coredns", "unbound"),
    "bucket-ceiling": ("metrics",),
    "packet-rate": ("capture",),
    "upstream-error-bursts": ("coredns", "unbound"),
    "metrics-blind-spot": ("capture", "metrics"),
    "ndots-search-expansion": ("capture", "coredns", "unbound"),
    "truncation-tcp-fallback": ("capture",),
    "servfail-storm": ("capture", "coredns", "unbound"),
    "conntrack-race": ("capture",),
    # node evidence (kit.findings.checks_node)
    "ena-allowance-exceeded": ("node",),
    "conntrack-insert-failed": ("node",),
    "udp-receive-buffer-errors": ("node",),
}
"""The input kinds (:data:`kit.findings.inputs.INPUT_KINDS`) each check reads, in :func:`run_checks`
order: a check that did not fire while a file of one of its kinds could not be read is "not
checked" (that file could have held what it looks for)."""


CAUSES: dict[str, tuple[str, ...]] = {
    # consequence: the findings it follows from, most specific first
    "servfail-storm": (
        "forced-tcp",
        "upstream-unreachable",
        "packet-rate-limit",
        "truncation-tcp-fallback",
        "syn-retransmissions",
    ),
    "upstream-error-bursts": (
        "forced-tcp",
        "upstream-unreachable",
        "packet-rate-limit",
        "servfail-storm",
        "syn-retransmissions",
    ),
    "latency-timer-modes": (
        "forced-tcp",
        "upstream-unreachable",
        "packet-rate-limit",
        "truncation-tcp-fallback",
        "conntrack-race",
        "syn-retransmissions",
    ),
    "syn-retransmissions": ("forced-tcp", "truncation-tcp-fallback"),
    "metrics-blind-spot": (
        "forced-tcp",
        "upstream-unreachable",
        "packet-rate-limit",
        "truncation-tcp-fallback",
        "conntrack-race",
    ),
}
"""A finding that fires together with one of these is its consequence (:attr:`Finding.caused_by`):
SERVFAIL because every SYN was dropped is a symptom of forced TCP, not a storm of its own (the
summary's cause is then forced TCP). A finding whose role is ``root-cause`` (a SERVFAIL storm the upstream answers itself) is
nobody's consequence."""


SUPPORT: dict[str, tuple[str, ...]] = {
    "forced-tcp": ("syn-retransmissions", "upstream-error-bursts", "latency-timer-modes"),
    "syn-retransmissions": ("forced-tcp", "truncation-tcp-fallback", "latency-timer-modes"),
    "upstream-unreachable": ("servfail-storm", "upstream-error-bursts", "latency-timer-modes"),
    "packet-rate-limit": (
        "upstream-error-bursts",
        "servfail-storm",
        "latency-timer-modes",
        "ena-allowance-exceeded",
    ),
    "truncation-tcp-fallback": ("syn-retransmissions", "latency-timer-modes"),
    "servfail-storm": ("upstream-error-bursts",),
    "conntrack-race": ("latency-timer-modes", "conntrack-insert-failed"),
    "latency-timer-modes": ("syn-retransmissions", "upstream-unreachable", "conntrack-race"),
    "upstream-error-bursts": ("servfail-storm", "syn-retransmissions", "upstream-unreachable"),
    "metrics-blind-spot": ("latency-timer-modes",),
}
"""The checks whose result bears on a finding (by finding id, check names as in
:data:`CHECK_NEEDS`): fired, they confirm it; not fired, they speak against it; not checked, they
are named as what would have tested it."""


NEEDED: dict[str, tuple[str, ...]] = {
    "forced-tcp": ("syn-retransmissions",),
    "truncation-tcp-fallback": ("syn-retransmissions", "latency-timer-modes"),
    "packet-rate-limit": ("upstream-error-bursts", "servfail-storm", "latency-timer-modes"),
}
"""Support checks whose silence speaks against a finding (by finding id): forced TCP that the
capture shows no SYN trouble for did not hurt; of several, all silent counts as one refutation.
The silence of the other :data:`SUPPORT` checks is not evidence (a cause need not show every
symptom)."""


CONTRADICTS: dict[str, tuple[str, ...]] = {
    "packet-rate-limit": ("packet-rate-below-limit",),
    "upstream-unreachable": ("syn-retransmissions",),
}
"""Findings whose firing speaks against another (by finding id)."""


def grade(results: Sequence[CheckResult]) -> list[CheckResult]:
    """Each fired finding with what confirms it, what refutes it, a confidence and its cause.

    For a fired finding: ``confirms`` lists the fired findings of its :data:`SUPPORT` checks;
    ``refutes`` the :data:`NEEDED` checks when all of them ran and none fired (with their
    reasons), the
    :data:`CONTRADICTS` findings that fired, and "not checked: ..." for the support checks that
    could not run (what would have tested it). ``confidence``: ``high`` with a confirmation and
    nothing against it, ``low`` with evidence against it and no confirmation, else ``medium``.
    ``caused_by``: the first :data:`CAUSES` finding (a root cause or mechanism) that fired; the
    severity stays the urgency. Render-neutral data: the report shows it as it likes.
    """
    by_check = {r.check: r for r in results}
    fired_ids: dict[str, Finding] = {r.finding.id: r.finding for r in results if r.finding}
    out = []
    for r in results:
        f = r.finding
        if f is None:
            out.append(r)
            continue
        confirms: list[str] = []
        refutes: list[str] = []
        silent: list[str] = []
        for c in SUPPORT.get(f.id, ()):
            other = by_check.get(c)
            if other is None or other.check == r.check:
                continue
            if other.finding is not None:
                confirms.append(f"{other.finding.id}: {other.finding.title}")
            elif other.status == "not fired":
                if c in NEEDED.get(f.id, ()):
                    silent.append(f"{c} did not fire: {other.reason}")
            else:
                refutes.append(f"not checked: {c} ({other.reason})")
        needed = [c for c in NEEDED.get(f.id, ()) if c in by_check and c != r.check]
        if needed and len(silent) == len(needed):
            refutes = silent + refutes
        for c in CONTRADICTS.get(f.id, ()):
            if c in fired_ids:
                refutes.append(f"{c}: {fired_ids[c].title}")
        against = [x for x in refutes if not x.startswith("not checked:")]
        if confirms and not against:
            confidence = "high"
        elif against and not confirms:
            confidence = "low"
        else:
            confidence = "medium"
        caused_by = ""
        if f.role != "root-cause":
            caused_by = next(
                (
                    c
                    for c in CAUSES.get(f.id, ())
                    if c in fired_ids and fired_ids[c].role in ("root-cause", "mechanism")
                ),
                "",
            )
        g = dataclasses.replace(
            f,
            confirms=tuple(confirms),
            refutes=tuple(refutes),
            confidence=confidence,
            caused_by=caused_by,
        )
        out.append(dataclasses.replace(r, finding=g, reason=g.title))
    return out


def _tcp_seen(capture: Any, forward: pl.DataFrame | None) -> bool | None:
    """Whether TCP to port 53 is in play: the capture's TCP connections or packets on port 53;
    without a capture, a forced-TCP setting (``None``: unknown)."""
    if capture is not None:
        if not capture.tcp.filter(pl.col("server_port") == 53).is_empty():
            return True
        pk = capture.packets
        return not pk.filter(
            (pl.col("transport") == "tcp")
            & ((pl.col("dst_port") == 53) | (pl.col("src_port") == 53))
        ).is_empty()
    if (
        forward is not None
        and not forward.is_empty()
        and forward["force_tcp"].fill_null(False).any()
    ):
        return True
    return None


def run_checks(
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
    edns_buffer: pl.DataFrame | None = None,
    unreadable: Mapping[str, Sequence[Any]] | None = None,
    node: Any = None,
) -> list[CheckResult]:
    """Every check's :class:`CheckResult`, in :data:`CHECK_NEEDS` order, graded (:func:`grade`).

    Parameters are those of :func:`run`, and:

    edns_buffer
        The configs' EDNS buffer sizes (:func:`kit.findings.inputs.edns_buffer_sizes`), for the
        truncation check.
    unreadable
        Input kind -> the files of that kind that could not be read (objects with a ``text``:
        :class:`kit.findings.inputs.Unreadable`, or plain strings). A check that needs the kind
        and did not fire is ``not checked`` with "<file> could not be read (<reason>)"; one that
        fired keeps its finding and names the files in ``numbers["unreadable"]``.
    node
        :class:`kit.sources.node.NodeCounters` (``kit.read_node_evidence``): nstat, conntrack -S,
        ethtool -S, ip -s link (:mod:`kit.findings.checks_node`).

    Returns
    -------
    list[CheckResult]
        One per check: ``fired`` (with the graded finding), ``not fired`` (with the numbers that
        decided it) or ``not checked`` (with why).
    """
    ups = addresses(upstreams) if upstreams else infer_upstreams(capture, forward)
    change = timeline.change_time if timeline is not None else None
    results: list[CheckResult] = []
    syn = syn_retransmissions_result(
        capture, upstreams=ups or None, slow_threshold_s=slow_threshold_s, change_time=change
    )
    results.append(forced_tcp_result(forward, corroborated=syn.fired, coredns=coredns))
    results.append(syn)
    results.append(upstream_unreachable_result(capture, upstreams=ups or None))
    results.append(
        latency_modes_result(
            capture=capture,
            coredns=coredns,
            unbound=unbound,
            tcp_seen=_tcp_seen(capture, forward),
        )
    )
    results.append(bucket_ceiling_result(metrics))
    results.append(
        packet_rate_result(
            capture,
            upstreams=ups or None,
            limit_pps=packet_limit_pps,
            slow_threshold_s=slow_threshold_s,
        )
    )
    results.append(error_bursts_result(coredns=coredns, unbound=unbound))
    results.append(metrics_blind_spot_result(capture, metrics, upstreams=ups or None))
    results.append(
        ndots_expansion_result(
            capture=capture, coredns=coredns, unbound=unbound, cluster_domain=cluster_domain
        )
    )
    results.append(truncation_result(capture, edns_buffer=edns_buffer))
    results.append(
        servfail_storm_result(
            capture=capture, coredns=coredns, unbound=unbound, upstreams=ups or None
        )
    )
    results.append(conntrack_race_result(capture))
    # node evidence (nstat, conntrack -S, ethtool -S): kit.findings.checks_node
    results.extend(node_results(node))
    if unreadable:
        results = [_degrade(r, unreadable) for r in results]
    if change is not None:
        results = [
            dataclasses.replace(
                r,
                finding=dataclasses.replace(
                    r.finding, evidence={**r.finding.evidence, "change_time": change.isoformat()}
                ),
            )
            if r.finding is not None
            else r
            for r in results
        ]
    return grade(results)


def _degrade(r: CheckResult, unreadable: Mapping[str, Sequence[Any]]) -> CheckResult:
    bad = [
        getattr(u, "text", str(u))
        for k in CHECK_NEEDS.get(r.check, ())
        for u in unreadable.get(k, ())
    ]
    if not bad:
        return r
    text = "; ".join(bad)
    numbers = {**r.numbers, "unreadable": text}
    if r.fired:
        return dataclasses.replace(r, numbers=numbers)
    return CheckResult(r.check, "not checked", text, numbers)


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
    edns_buffer: pl.DataFrame | None = None,
    unreadable: Mapping[str, Sequence[Any]] | None = None,
    node: Any = None,
) -> list[Finding]:
    """Run every check that has its data; the findings that fired, most severe first.

    The fired findings of :func:`run_checks` (which also says why the others did not fire).

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
    edns_buffer, unreadable, node
        As for :func:`run_checks`.

    Returns
    -------
    list[Finding]
        Sorted by severity (:data:`SEVERITIES`), then in the order of the checks above.
    """
    results = run_checks(
        capture=capture,
        coredns=coredns,
        unbound=unbound,
        metrics=metrics,
        forward=forward,
        timeline=timeline,
        slow_threshold_s=slow_threshold_s,
        upstreams=upstreams,
        packet_limit_pps=packet_limit_pps,
        cluster_domain=cluster_domain,
        edns_buffer=edns_buffer,
        unreadable=unreadable,
        node=node,
    )
    return fired_findings(results)


def fired_findings(results: Sequence[CheckResult]) -> list[Finding]:
    """The findings of the fired results, most severe first (stable: check order within one)."""
    rank = {s: i for i, s in enumerate(SEVERITIES)}
    fired = [r.finding for r in results if r.finding is not None]
    return sorted(fired, key=lambda f: rank[f.severity])


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
