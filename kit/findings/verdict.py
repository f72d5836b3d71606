"""The verdict: :func:`run_on` (:class:`Verdict`), the checks' coverage, the summary (cause, impact,
where, when, fix), JSON, Markdown and text renderings, :func:`findings_for_artefacts`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import polars as pl

from kit.findings._util import infer_upstreams
from kit.findings.checks_latency import (
    _server_quantiles,
)
from kit.findings.inputs import Inputs, load_inputs
from kit.findings.model import (
    ROLES,
    SEVERITIES,
    CheckResult,
    Finding,
)
from kit.findings.runner import fired_findings, run_checks
from kit.net import address, addresses
from kit.sources.timeline import Timeline
from kit.timeutil import UTC as _UTC
from kit.timeutil import parse_duration

if TYPE_CHECKING:
    pass


class Verdict(list[Finding]):
    """The findings of :func:`run_on` (a list, most severe first) and what they came from.

    Attributes
    ----------
    inputs : Inputs
        The loaded inputs the checks ran on.
    options : dict[str, Any]
        The options given to :func:`run` (``slow_threshold_s``, ``upstreams``...).
    results : list[CheckResult]
        Every check's result (:func:`kit.findings.run_checks`): fired, not fired with the numbers
        that decided it, or not checked with why: the checks' coverage.
    """

    def __init__(
        self,
        findings: Sequence[Finding] = (),
        inputs: Inputs | None = None,
        options: Mapping[str, Any] | None = None,
        results: Sequence[CheckResult] = (),
    ) -> None:
        super().__init__(findings)
        self.inputs = inputs if inputs is not None else Inputs()
        self.options: dict[str, Any] = dict(options or {})
        self.results: list[CheckResult] = list(results)


def run_on(inputs: Inputs, **options: Any) -> Verdict:
    """:func:`run` on loaded :class:`Inputs`; ``options`` are :func:`run`'s keyword options.

    Returns a :class:`Verdict`: the list of findings, which also keeps the inputs, options and
    every check's :class:`CheckResult` (the report's summary card and ``dnskit findings`` read
    them). Files of the inputs that could not be read (:attr:`Inputs.unreadable`) make the checks
    that need them "not checked".
    """
    results = run_checks(
        capture=inputs.capture,
        coredns=inputs.coredns,
        unbound=inputs.unbound,
        metrics=inputs.metrics,
        forward=inputs.forward,
        timeline=inputs.timeline,
        edns_buffer=inputs.edns_buffer,
        unreadable=inputs.unreadable_by_kind(),
        node=inputs.node,
        **options,
    )
    return Verdict(fired_findings(results), inputs, options, results)


CHECKS: tuple[tuple[str, tuple[str, ...], tuple[str, ...], str], ...] = (
    ("forced-tcp", ("forced-tcp",), ("forward",), "a Corefile or unbound.conf"),
    ("syn-retransmissions", ("syn-retransmissions",), ("capture",), "a capture on the node"),
    (
        "upstream-unreachable",
        ("upstream-unreachable",),
        ("capture",),
        "a capture on the node (the cache's queries to its upstream)",
    ),
    (
        "latency-timer-modes",
        ("latency-timer-modes",),
        ("capture|coredns|unbound",),
        "a capture or a query log",
    ),
    ("bucket-ceiling", ("bucket-ceiling",), ("metrics",), "a metric export with a histogram"),
    (
        "packet-rate",
        ("packet-rate-limit", "packet-rate-below-limit"),
        ("capture",),
        "a capture on the node",
    ),
    (
        "upstream-error-bursts",
        ("upstream-error-bursts",),
        ("coredns|unbound",),
        "a CoreDNS log (errors plugin) or an unbound log",
    ),
    (
        "metrics-blind-spot",
        ("metrics-blind-spot",),
        ("capture", "metrics"),
        "a capture and a metric export",
    ),
    (
        "ndots-search-expansion",
        ("ndots-search-expansion",),
        ("capture|coredns|unbound",),
        "a capture or a query log",
    ),
    ("truncation-tcp-fallback", ("truncation-tcp-fallback",), ("capture",), "a capture"),
    ("servfail-storm", ("servfail-storm",), ("capture|coredns|unbound",), "a capture or a log"),
    ("conntrack-race", ("conntrack-race",), ("capture",), "a capture of the client side"),
    (
        "ena-allowance-exceeded",
        ("ena-allowance-exceeded",),
        ("node",),
        "ethtool -S of the node's interface, before and after",
    ),
    (
        "conntrack-insert-failed",
        ("conntrack-insert-failed",),
        ("node",),
        "conntrack -S on the node, before and after",
    ),
    (
        "udp-receive-buffer-errors",
        ("udp-receive-buffer-errors",),
        ("node",),
        "nstat -asz on the node, before and after",
    ),
)
"""The checks of :func:`run`: (name, finding ids it can give, inputs it needs, what to collect).

Inputs: ``capture``, ``coredns``, ``unbound``, ``metrics``, ``forward``, ``node``; ``a|b`` means
either."""


FIXES: dict[str, str] = {
    "forced-tcp": (
        "Forward over UDP: remove force_tcp from the forward block of the Corefile (or use "
        "prefer_udp), in unbound set tcp-upstream: no (and forward-tcp-upstream: no); then check "
        "that the SYN retransmissions stop and client p99 drops back."
    ),
    "packet-rate-limit": (
        "Spread the queries over more network interfaces (NodeLocal DNSCache on every node) or "
        "cache more, so that no interface sends more than the resolver's packet limit."
    ),
    "ndots-search-expansion": (
        "Query fully qualified names (a trailing dot) or lower ndots in the pods' dnsConfig."
    ),
    "conntrack-race": (
        "Avoid the A/AAAA race: options single-request-reopen, or NodeLocal DNSCache over TCP to "
        "the cluster DNS."
    ),
    "syn-retransmissions": (
        "Find why the upstream drops TCP connections (forced TCP, a connection limit) and forward "
        "over UDP."
    ),
    "truncation-tcp-fallback": (
        "Raise the resolver's EDNS buffer size to 1232 (unbound edns-buffer-size, CoreDNS "
        "bufsize) or make the answers smaller; let TCP to the upstream through."
    ),
    "upstream-unreachable": (
        "Restore UDP port 53 from the node to the upstream (firewall, security group, the "
        "upstream itself), or forward to an upstream that answers."
    ),
    "servfail-storm": (
        "Fix or roll back the zone the upstream fails (its log names the load error), or forward "
        "that zone elsewhere."
    ),
    "ena-allowance-exceeded": (
        "Stay under the instance's ENA allowances: spread DNS over more nodes/interfaces "
        "(NodeLocal DNSCache on every node, more caching) so that no interface exceeds the "
        "link-local (1024 pps to the VPC resolver) or packets-per-second allowance, or move to a "
        "larger instance type."
    ),
    "conntrack-insert-failed": (
        "Avoid the conntrack insert race: options single-request-reopen (or use-vc) in the pods' "
        "dnsConfig, or NodeLocal DNSCache so pods' DNS does not go through a DNAT-ed service."
    ),
    "udp-receive-buffer-errors": (
        "Raise the DNS server's socket receive buffer (net.core.rmem_max / rmem_default) or add "
        "capacity, so that bursts are not dropped before the server reads them."
    ),
}
"""What to change, by finding id (the root cause's text goes to the summary)."""


_HAS = {
    "capture": lambda i: i.capture is not None and not i.capture.dns.is_empty(),
    "coredns": lambda i: i.coredns is not None,
    "unbound": lambda i: i.unbound is not None,
    "metrics": lambda i: i.metrics is not None and not i.metrics.is_empty(),
    "forward": lambda i: i.forward is not None and not i.forward.is_empty(),
    "node": lambda i: i.node is not None and not i.node.counters.is_empty(),
}


_INPUT_NAMES = {
    "capture": "a capture",
    "coredns": "a CoreDNS log",
    "unbound": "an unbound log",
    "metrics": "a metric export",
    "forward": "a Corefile or unbound.conf",
    "node": "node evidence (nstat, conntrack -S, ethtool -S)",
}


def coverage(
    inputs: Inputs, findings: Sequence[Finding] = (), results: Sequence[CheckResult] = ()
) -> list[dict[str, Any]]:
    """Which checks could run on these inputs, which could not and what would enable them.

    Parameters
    ----------
    inputs, findings
        The inputs and the findings that fired.
    results
        The checks' results (:attr:`Verdict.results`); when given, each entry gets the check's
        ``status`` and ``reason``, and a check that was not checked because a file could not be
        read has ``ran`` False and that file in ``missing``.

    Returns
    -------
    list[dict[str, Any]]
        One per entry of :data:`CHECKS`: ``check`` (name), ``ran`` (bool: its inputs are there),
        ``fired`` (ids of its findings in ``findings``), ``missing`` (what was not given, e.g.
        ``"a Corefile or unbound.conf"``; empty when it ran), ``needs`` (what to collect);
        with ``results``, ``status`` (``fired``/``not fired``/``not checked``) and ``reason``.
    """
    fired_ids = {f.id for f in findings}
    by_check = {r.check: r for r in results}
    out = []
    for name, ids, needs, collect in CHECKS:
        missing = []
        for need in needs:
            options = need.split("|")
            if not any(_HAS[o](inputs) for o in options):
                missing.append(" or ".join(_INPUT_NAMES[o] for o in options))
        entry: dict[str, Any] = {
            "check": name,
            "ran": not missing,
            "fired": [i for i in ids if i in fired_ids],
            "missing": "; ".join(missing),
            "needs": collect,
        }
        r = by_check.get(name)
        if r is not None:
            entry["status"] = r.status
            entry["reason"] = r.reason
            if r.status == "not checked" and "unreadable" in r.numbers:
                entry["ran"] = False
                entry["missing"] = "; ".join(x for x in (entry["missing"], r.reason) if x)
        out.append(entry)
    return out


def _span(inputs: Inputs) -> tuple[datetime | None, datetime | None]:
    """First and last timestamp over the inputs (capture, logs, metrics)."""
    los: list[datetime] = []
    his: list[datetime] = []
    frames: list[tuple[pl.DataFrame, str, str]] = []
    if inputs.capture is not None and not inputs.capture.meta.is_empty():
        frames.append((inputs.capture.meta, "first_ts", "last_ts"))
    for obj in (inputs.coredns, inputs.unbound):
        if obj is not None and not obj.queries.is_empty():
            frames.append((obj.queries, "ts", "ts"))
    if inputs.metrics is not None and not inputs.metrics.is_empty():
        frames.append((inputs.metrics, "ts", "ts"))
    for df, lo, hi in frames:
        a, b = df[lo].min(), df[hi].max()
        if isinstance(a, datetime) and isinstance(b, datetime):
            los.append(a)
            his.append(b)
    return (min(los) if los else None, max(his) if his else None)


#: the columns of the clients' transactions the summary reads (:func:`_client_dns`)
_CLIENT_COLS = ("ts", "capture", "latency_s", "answered", "censored")


def _client_dns(inputs: Inputs, upstreams: Sequence[str]) -> pl.DataFrame | None:
    """Capture transactions of the clients (not those the cache sent to its upstream), only the
    columns the summary reads (:data:`_CLIENT_COLS`): a copy of every column of the client rows
    was ~0.5 GB at 10 M packets, made three times for the summary card and its chart."""
    cap = inputs.capture
    if cap is None or cap.dns.is_empty():
        return None
    ups = addresses(upstreams)
    keep = ~pl.col("server_ip").is_in(ups) if ups else pl.lit(True)
    return cap.dns.lazy().filter(keep).select(_CLIENT_COLS).collect()


def _phase_expr(timeline: Timeline | None) -> pl.Expr:
    change = timeline.change_time if timeline is not None else None
    fix = timeline.fix_time if timeline is not None else None
    if change is None:
        return pl.lit("all")
    expr: Any = pl.when(pl.col("ts") < change).then(pl.lit("before"))
    if fix is not None:
        expr = expr.when(pl.col("ts") >= fix).then(pl.lit("after fix"))
    return expr.otherwise(pl.lit("during"))


def _p99_by_phase(inputs: Inputs, upstreams: Sequence[str]) -> pl.DataFrame:
    """Client-side p99 latency (seconds) per node and phase: ``node``, ``phase``, ``p99_s``,
    ``queries``, ``slow`` (never-answered queries count as slow; NaN p99 when none answered)."""
    client = _client_dns(inputs, upstreams)
    schema = {
        "node": pl.String,
        "phase": pl.String,
        "p99_s": pl.Float64,
        "queries": pl.UInt32,
    }
    if client is None or client.is_empty():
        return pl.DataFrame(schema=schema)
    return (
        client.with_columns(phase=_phase_expr(inputs.timeline))
        .group_by(pl.col("capture").alias("node"), "phase")
        .agg(
            p99_s=pl.col("latency_s").filter(pl.col("answered")).quantile(0.99, "higher"),
            queries=pl.len().cast(pl.UInt32),
        )
        .sort("node", "phase")
    )


def headline_series(inputs: Inputs, upstreams: Sequence[str] = (), every: str = "5s") -> Any:
    """The symptom over time for the summary chart: p99 latency per node and time bin.

    From the capture (client side) when given, else from the query logs (``duration_s`` per log
    file), else from the metrics' latency histograms. Returns a tidy frame ``ts`` (bin start,
    UTC), ``series`` (node or source), ``value`` (p99 in seconds), and a title, as
    ``(frame, title)``; the frame is empty when no input holds latencies.
    """
    from kit.analyses.resolver_logs import bin_label, span_every

    client = _client_dns(inputs, upstreams)
    answered = client.filter(pl.col("answered")) if client is not None else None
    del client
    frames: list[tuple[pl.DataFrame, str, str, str]] = []
    if answered is not None and not answered.is_empty():
        frames = [(answered, "capture", "latency_s", "capture")]
        title = "Client-side p99 latency per node (capture)"
    else:
        for obj, name in ((inputs.coredns, "CoreDNS log"), (inputs.unbound, "unbound log")):
            if obj is not None and not obj.queries.filter(pl.col("ts").is_not_null()).is_empty():
                q = obj.queries.filter(pl.col("ts").is_not_null())
                frames.append((q, "source", "duration_s", name))
        title = "p99 query duration per log file"
    empty = pl.DataFrame(schema={"ts": _UTC, "series": pl.String, "value": pl.Float64})
    if frames:
        width = span_every(*(f for f, *_ in frames), every=every)
        anchor = inputs.timeline.change_time if inputs.timeline is not None else None
        if anchor is not None:
            # bins start at the change: no bin mixes the time before it with the time after
            w_us = round(parse_duration(width, what="every") * 1_000_000)
            offset = (pl.col("ts").cast(_UTC) - pl.lit(anchor).cast(_UTC)).dt.total_microseconds()
            binned = pl.lit(anchor).cast(_UTC) + pl.duration(
                microseconds=offset.floordiv(w_us) * w_us
            )
        else:
            binned = pl.col("ts").cast(_UTC).dt.truncate(width)
        parts = [
            df.with_columns(binned.alias("ts"))
            .group_by("ts", pl.col(key).cast(pl.String).alias("series"))
            .agg(value=pl.col(col).quantile(0.99, "higher"))
            for df, key, col, _ in frames
        ]
        return pl.concat(parts).sort("series", "ts"), f"{title}, per {bin_label(width)}"
    if inputs.metrics is not None and "le" in inputs.metrics.columns:
        qs = _server_quantiles(inputs.metrics, q=0.99)
        if not qs.is_empty():
            out = qs.select(
                pl.col("ts").cast(_UTC),
                series=pl.when(pl.col("series") == "")
                .then(pl.col("metric"))
                .otherwise(pl.col("series")),
                value="value",
            )
            return out, "Server-side p99 latency (metrics)"
    return empty, title


def _fmt_s(x: float | None) -> str:
    from kit.tables import format_duration

    return format_duration(x) if x is not None else "?"


def _ts_text(t: Any) -> str:
    from kit.tables import format_timestamp

    if isinstance(t, str):
        try:
            t = datetime.fromisoformat(t)
        except ValueError:
            return t
    return format_timestamp(t) + " UTC" if isinstance(t, datetime) else ""


def summarize(found: Sequence[Finding], inputs: Inputs | None = None) -> dict[str, Any]:
    """The verdict in a few lines, for the top of the report, a ticket or a chat.

    Parameters
    ----------
    found
        Findings, e.g. a :class:`Verdict` from :func:`run_on` (then its inputs and options are
        used when ``inputs`` is not given).
    inputs
        The inputs the checks ran on.

    Returns
    -------
    dict[str, Any]
        Plain JSON values: ``cause`` (one sentence), ``impact`` (3-4 items ``label``, ``value``,
        ``detail``), ``where`` (``nodes``, ``upstreams``, ``text``), ``when`` (``change``,
        ``first_symptom``, ``fix``: ISO-8601 or null; ``text``), ``fix`` (what to change),
        ``confidence`` (``level`` high/medium/low, ``why``), ``coverage`` (:func:`coverage`),
        ``window`` (``start``, ``end`` of the inputs, ISO-8601 or null).
    """
    if inputs is None:
        inputs = getattr(found, "inputs", None) or Inputs()
    options = getattr(found, "options", {}) or {}
    threshold = float(options.get("slow_threshold_s", 1.0))
    ups = addresses(options.get("upstreams")) or infer_upstreams(inputs.capture, inputs.forward)
    by_role: dict[str, list[Finding]] = {r: [] for r in ROLES}
    for f in found:
        by_role[f.role].append(f)
    rank = {s: i for i, s in enumerate(SEVERITIES)}
    for fs in by_role.values():
        fs.sort(key=lambda f: rank[f.severity])
    cause = by_role["root-cause"][0] if by_role["root-cause"] else None
    mech = by_role["mechanism"][0] if by_role["mechanism"] else None
    syn = next((f for f in found if f.id == "syn-retransmissions"), None)
    tl = inputs.timeline
    change = tl.change_time if tl is not None else None
    fix_t = tl.fix_time if tl is not None else None
    results = getattr(found, "results", None) or []
    cov = coverage(inputs, found, results)

    # impact: client p99 per node and phase
    phases = _p99_by_phase(inputs, ups)
    impact: list[dict[str, str]] = []
    nodes_hit: list[str] = []
    bad_phase = "during" if change is not None else "all"
    if not phases.is_empty():
        during = phases.filter(pl.col("phase") == bad_phase).sort("p99_s", descending=True)
        ref = {(r["node"], r["phase"]): r["p99_s"] for r in phases.iter_rows(named=True)}
        for i, r in enumerate(during.iter_rows(named=True)):
            before = ref.get((r["node"], "before"))
            after = ref.get((r["node"], "after fix"))
            hit = r["p99_s"] is not None and (
                r["p99_s"] >= threshold or (before is not None and r["p99_s"] >= 10 * before)
            )
            if hit:
                nodes_hit.append(r["node"])
            if i >= 2:
                continue
            detail = []
            if before is not None:
                detail.append(f"{_fmt_s(before)} before the change")
            if after is not None:
                detail.append(f"{_fmt_s(after)} after the fix")
            impact.append(
                {
                    "label": f"{r['node']} client p99"
                    + (" during the incident" if change is not None else ""),
                    "value": _fmt_s(r["p99_s"]),
                    "detail": ", ".join(detail) or f"{r['queries']} queries",
                }
            )
        client = _client_dns(inputs, ups)
        if client is not None:
            scope = client.filter(_phase_expr(tl) == bad_phase) if change is not None else client
            slow = scope.filter(
                (pl.col("latency_s") >= threshold) | (~pl.col("answered") & ~pl.col("censored"))
            ).height
            if scope.height:
                impact.insert(
                    1,
                    {
                        "label": "slow or unanswered client queries",
                        "value": f"{slow:,}",
                        "detail": f"of {scope.height:,} ({slow / scope.height:.1%}) took "
                        f"{threshold:g} s or more"
                        + (" during the incident" if change is not None else ""),
                    },
                )
    if syn is not None:
        ev = syn.evidence
        impact.append(
            {
                "label": "SYN retransmissions",
                "value": f"{ev.get('syn_retransmits', 0):,}",
                "detail": f"on {ev.get('connections', 0):,} TCP connections to the upstream; "
                f"{ev.get('failed_connections', 0):,} never answered",
            }
        )
    for f in found:
        if f.id == "upstream-error-bursts" and len(impact) < 4:
            impact.append(
                {
                    "label": "upstream errors",
                    "value": f"{f.evidence.get('errors', 0):,}",
                    "detail": f"up to {f.evidence.get('peak_per_bin', '?')} per minute",
                }
            )
    impact = impact[:4]

    # where
    up_list = sorted({str(u) for f in found for u in _evidence_upstreams(f)} or set(addresses(ups)))
    where_parts = []
    if nodes_hit:
        where_parts.append(f"node(s) {', '.join(nodes_hit)}")
        others = sorted(set(phases["node"].to_list()) - set(nodes_hit))
        if others:
            where_parts.append(f"not {', '.join(others)}")
    if up_list:
        where_parts.append(f"upstream {', '.join(up_list)}")

    # when
    first_symptom = None
    if syn is not None:
        first_symptom = syn.evidence.get("first_retransmit")
    client = _client_dns(inputs, ups)
    if first_symptom is None and client is not None:
        slow_ts = client.filter(pl.col("latency_s") >= threshold)["ts"]
        if change is not None:
            slow_ts = slow_ts.filter(slow_ts >= change)
        if not slow_ts.is_empty():
            first_symptom = slow_ts.min().isoformat()  # type: ignore[union-attr]
    when_parts = []
    if change is not None:
        when_parts.append(f"change {_ts_text(change)}")
    if first_symptom:
        when_parts.append(f"first symptom {_ts_text(first_symptom)}")
    if fix_t is not None:
        when_parts.append(f"fix {_ts_text(fix_t)}")

    # cause, fix, confidence
    not_run = [c for c in cov if not c["ran"]]
    if cause is not None:
        sentence = _cause_sentence(cause, syn, by_role)
        fix_text = FIXES.get(cause.id, "")
        corroborated = [f.id for f in (*by_role["mechanism"], *by_role["symptom"])]
        if cause.confidence:
            # graded by the evidence around it (kit.findings.grade)
            level = cause.confidence
            why = f"{cause.id}: " + (
                f"confirmed by {', '.join(c.split(':')[0] for c in cause.confirms)}"
                if cause.confirms
                else "no other check confirms it"
            )
            against = [x for x in cause.refutes if not x.startswith("not checked:")]
            if against:
                why += f"; against it: {'; '.join(against)}"
        elif cause.severity == "critical" and corroborated:
            level = "high"
            why = f"{cause.id} is corroborated by {', '.join(corroborated)}"
        else:
            level = "medium"
            why = f"{cause.id} fired" + (
                f" with {', '.join(corroborated)}" if corroborated else " on its own"
            )
    elif mech is not None:
        blind = [c["check"] for c in not_run if c["check"] in ("forced-tcp", "packet-rate")]
        sentence = f"Cause not established: {mech.title}." + (
            f" The check(s) that could name it did not run ({', '.join(blind)}: "
            + "; ".join(f"needs {c['missing']}" for c in not_run if c["check"] in blind)
            + ")."
            if blind
            else ""
        )
        fix_text = FIXES.get(mech.id, "")
        level, why = "medium", f"mechanism {mech.id} seen, no root cause among the checks that ran"
    elif by_role["symptom"]:
        sym = by_role["symptom"][0]
        sentence = f"Symptom without an established cause: {sym.title}."
        fix_text = ""
        level, why = "low", "only symptoms fired"
    else:
        sentence = "No cause found by the checks that could run on these artefacts."
        fix_text = ""
        level, why = "low", "no root cause, mechanism or symptom fired"
    ruled = [f.id for f in by_role["ruled-out"]]
    if ruled:
        why += f"; ruled out: {', '.join(ruled)}"
    if not_run:
        why += f"; {len(not_run)} of {len(cov)} checks could not run"
    start, end = _span(inputs)
    return {
        "cause": sentence,
        "cause_id": cause.id if cause is not None else None,
        "impact": impact,
        "where": {"nodes": nodes_hit, "upstreams": up_list, "text": "; ".join(where_parts)},
        "when": {
            "change": change.isoformat() if change is not None else None,
            "first_symptom": first_symptom,
            "fix": fix_t.isoformat() if fix_t is not None else None,
            "text": "; ".join(when_parts),
        },
        "fix": fix_text,
        "confidence": {"level": level, "why": why},
        "coverage": cov,
        "window": {
            "start": start.isoformat() if start is not None else None,
            "end": end.isoformat() if end is not None else None,
        },
    }


def _evidence_upstreams(f: Finding) -> list[str]:
    if f.role == "ruled-out":
        return []
    settings = f.evidence.get("settings")
    if isinstance(settings, pl.DataFrame) and "upstream" in settings.columns:
        return [h for h in (address(u) for u in settings["upstream"].drop_nulls()) if h]
    per = f.evidence.get("per_server")
    if isinstance(per, pl.DataFrame) and "server_ip" in per.columns:
        return per["server_ip"].drop_nulls().to_list()
    return []


def _cause_sentence(cause: Finding, syn: Finding | None, by_role: Mapping[str, Any]) -> str:
    if cause.id == "forced-tcp":
        settings = cause.evidence.get("settings")
        ups, where = "its upstream", ""
        if isinstance(settings, pl.DataFrame) and not settings.is_empty():
            ups = ", ".join(sorted(set(settings["upstream"].drop_nulls().to_list())))
            where = ", ".join(
                sorted(
                    {
                        f"{os.path.basename(str(s))}:{n}"
                        for s, n in zip(settings["source"], settings["line_no"], strict=True)
                    }
                )
            )
        text = f"The DNS cache forwards cache misses to {ups} over TCP only"
        text += f" (forced in {where})" if where else ""
        if syn is not None:
            text += (
                f"; {syn.evidence.get('syn_retransmits', 0):,} SYNs to it were lost and resent "
                "after 1 s, 2 s, 4 s…, so clients waited seconds."
            )
        else:
            text += ", so every cache miss waits for a TCP handshake."
        return text
    mech = by_role["mechanism"][0] if by_role["mechanism"] else None
    return (
        f"{cause.title}"
        + (f", through {mech.title[:1].lower()}{mech.title[1:]}" if mech else "")
        + "."
    )


def json_value(v: Any) -> Any:
    """An evidence value as plain JSON: frames as lists of row objects, times as ISO-8601 text,
    non-finite floats as null."""
    import math

    if isinstance(v, pl.DataFrame):
        return [{k: json_value(x) for k, x in row.items()} for row in v.iter_rows(named=True)]
    if isinstance(v, datetime):
        return v.isoformat()
    if isinstance(v, timedelta):
        return v.total_seconds()
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    if isinstance(v, list | tuple):
        return [json_value(x) for x in v]
    if isinstance(v, Mapping):
        return {str(k): json_value(x) for k, x in v.items()}
    if v is None or isinstance(v, bool | int | str):
        return v
    return str(v)


def finding_json(f: Finding) -> dict[str, Any]:
    """One finding as plain JSON: ``id``, ``role``, ``severity``, ``title``, ``explanation``,
    ``evidence`` (numbers, strings, frames as lists of row objects), ``confirm``, and its grading:
    ``confirms``, ``refutes`` (lists of sentences), ``confidence`` (``high``/``medium``/``low``,
    empty when not graded), ``caused_by`` (finding id or empty)."""
    return {
        "id": f.id,
        "role": str(f.role),
        "severity": str(f.severity),
        "title": f.title,
        "explanation": f.explanation,
        "evidence": {str(k): json_value(v) for k, v in f.evidence.items()},
        "confirm": f.confirm,
        "confirms": list(f.confirms),
        "refutes": list(f.refutes),
        "confidence": f.confidence,
        "caused_by": f.caused_by,
    }


def results_frame(results: Sequence[CheckResult]) -> pl.DataFrame:
    """Every check's result, one row each: ``check``, ``status`` (``fired``/``not fired``/``not
    checked``), ``verdict`` (:attr:`CheckResult.verdict`: the finding's severity and title, or
    why it did not fire or was not checked); all String."""
    return pl.DataFrame(
        [(r.check, r.status, r.verdict) for r in results],
        schema={"check": pl.String, "status": pl.String, "verdict": pl.String},
        orient="row",
    )


def check_json(r: CheckResult) -> dict[str, Any]:
    """One check's result as plain JSON: ``check``, ``status``, ``reason``, ``numbers``, and
    ``finding`` (the finding's id, or null)."""
    return {
        "check": r.check,
        "status": r.status,
        "reason": r.reason,
        "numbers": {str(k): json_value(v) for k, v in r.numbers.items()},
        "finding": r.finding.id if r.finding is not None else None,
    }


def verdict_json(found: Sequence[Finding], inputs: Inputs | None = None) -> dict[str, Any]:
    """The verdict for automation: ``summary`` (:func:`summarize`), ``findings``
    (:func:`finding_json` each, in :data:`ROLES` order, most severe first within a role),
    ``checks`` (:func:`check_json` of every check's result, when ``found`` is a :class:`Verdict`)
    and ``unreadable`` (files that could not be read: ``kind``, ``file``, ``reason``)."""
    order = {r: i for i, r in enumerate(ROLES)}
    rank = {s: i for i, s in enumerate(SEVERITIES)}
    ordered = sorted(found, key=lambda f: (order[f.role], rank[f.severity]))
    if inputs is None:
        inputs = getattr(found, "inputs", None) or Inputs()
    return {
        "summary": json_value(summarize(found, inputs)),
        "findings": [finding_json(f) for f in ordered],
        "checks": [check_json(r) for r in getattr(found, "results", None) or []],
        "unreadable": [
            {"kind": u.kind, "file": u.file, "reason": u.reason} for u in inputs.unreadable
        ],
    }


_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>|])")


def _md(text: Any) -> str:
    """Text for Markdown: special characters backslash-escaped, control characters visible."""
    from kit.tables import visible

    return _MD_SPECIAL.sub(r"\\\1", visible(text))


def _md_code(text: str) -> str:
    from kit.tables import visible

    t = visible(text)
    ticks = "`" * (max((len(m) for m in re.findall(r"`+", t)), default=0) + 1)
    pad = " " if t.startswith("`") or t.endswith("`") else ""
    return f"{ticks}{pad}{t}{pad}{ticks}"


ROLE_TITLES: dict[str, str] = {
    "root-cause": "Root cause",
    "mechanism": "Mechanism",
    "symptom": "Symptom",
    "ruled-out": "Ruled out",
    "context": "Context",
}
"""Headings of the roles."""


def verdict_markdown(found: Sequence[Finding], inputs: Inputs | None = None) -> str:
    """A Markdown summary to paste into a ticket or a chat: cause, impact, where, when, fix,
    confidence, the findings by role with their confirm commands, and the checks that could not
    run. Every data string is escaped for Markdown."""
    s = summarize(found, inputs)
    lines = [f"**DNS incident verdict:** {_md(s['cause'])}", ""]
    if s["impact"]:
        lines.append("**Impact:**")
        lines += [
            f"- {_md(i['label'])}: **{_md(i['value'])}**"
            + (f" ({_md(i['detail'])})" if i["detail"] else "")
            for i in s["impact"]
        ]
        lines.append("")
    if s["where"]["text"]:
        lines.append(f"**Where:** {_md(s['where']['text'])}")
    if s["when"]["text"]:
        lines.append(f"**When:** {_md(s['when']['text'])}")
    if s["fix"]:
        lines.append(f"**Fix:** {_md(s['fix'])}")
    lines.append(f"**Confidence:** {_md(s['confidence']['level'])} ({_md(s['confidence']['why'])})")
    lines.append("")
    order = {r: i for i, r in enumerate(ROLES)}
    rank = {sv: i for i, sv in enumerate(SEVERITIES)}
    if found:
        lines.append("**Findings:**")
        for f in sorted(found, key=lambda f: (order[f.role], rank[f.severity])):
            lines.append(
                f"- {ROLE_TITLES[f.role]} ({_md(f.severity)}) {_md_code(f.id)}: {_md(f.title)}"
            )
            if f.confirm:
                lines.append(f"  - confirm: {_md_code(f.confirm)}")
        lines.append("")
    not_run = [c for c in s["coverage"] if not c["ran"]]
    ran = [c["check"] for c in s["coverage"] if c["ran"]]
    lines.append(f"**Checks run:** {_md(', '.join(ran) or 'none')}")
    if not_run:
        lines.append(
            "**Could not run:** "
            + "; ".join(f"{_md(c['check'])} (needs {_md(c['missing'])})" for c in not_run)
        )
    return "\n".join(lines) + "\n"


def findings_for_artefacts(
    artefacts: Sequence[str | os.PathLike[str]] | str | os.PathLike[str],
    *,
    change_time: str | None = None,
    fix_time: str | None = None,
    **options: Any,
) -> Verdict:
    """Recognise each artefact by content, load what the checks read, run them.

    Parameters
    ----------
    artefacts
        Files, globs or folders (walked recursively), as for ``dnskit report``; each file keeps
        the path as given (so confirm commands name it that way).
    change_time, fix_time
        ISO-8601 times overriding a ``run.json`` among the artefacts.
    options
        :func:`run`'s options (``slow_threshold_s``, ``upstreams``, ``packet_limit_pps``...).

    Raises
    ------
    FileNotFoundError
        An artefact does not exist.
    """
    from kit.sources._io import walk_artefacts
    from kit.sources.artefacts import INPUT_KINDS as INPUT_PARAMETERS
    from kit.sources.artefacts import classify as classify_artefact

    files = walk_artefacts(artefacts)
    by_param: dict[str, list[str]] = {}
    for f in files:
        kind, _ = classify_artefact(f)
        for param, kinds in INPUT_PARAMETERS.items():
            if kind in kinds:
                by_param.setdefault(param, []).append(os.fspath(f))
    known = ("capture", "coredns_log", "unbound_log", "metrics", "corefile", "unbound_conf")
    inputs = load_inputs(
        **{k: by_param.get(k) for k in known},
        run_json=by_param.get("run_json"),
        change_time=change_time,
        fix_time=fix_time,
        node_evidence=by_param.get("node_evidence"),
    )
    return run_on(inputs, **options)


def verdict_text(found: Sequence[Finding], inputs: Inputs | None = None) -> str:
    """The verdict for a terminal: the summary lines, then one line per finding by role."""
    from kit.tables import visible

    s = summarize(found, inputs)
    lines = [f"cause: {visible(s['cause'])}"]
    lines += [
        f"impact: {visible(i['label'])}: {visible(i['value'])}"
        + (f" ({visible(i['detail'])})" if i["detail"] else "")
        for i in s["impact"]
    ]
    for key in ("where", "when"):
        if s[key]["text"]:
            lines.append(f"{key}: {visible(s[key]['text'])}")
    if s["fix"]:
        lines.append(f"fix: {visible(s['fix'])}")
    lines.append(f"confidence: {s['confidence']['level']} ({visible(s['confidence']['why'])})")
    order = {r: i for i, r in enumerate(ROLES)}
    rank = {sv: i for i, sv in enumerate(SEVERITIES)}
    for f in sorted(found, key=lambda f: (order[f.role], rank[f.severity])):
        lines.append(f"[{f.role}] [{f.severity}] {visible(f.id)}: {visible(f.title)}")
        if f.confirm:
            lines.append(f"    confirm: {visible(f.confirm)}")
        if f.caused_by:
            lines.append(f"    caused by: {visible(f.caused_by)}")
        if f.confidence:
            lines.append(f"    confidence: {f.confidence}")
    for c in s["coverage"]:
        if not c["ran"]:
            if c.get("status") == "not checked" and c.get("reason"):
                lines.append(f"not checked: {c['check']} ({visible(c['reason'])})")
            else:
                lines.append(f"not run: {c['check']} (needs {c['missing']}; none given)")
    return "\n".join(lines) + "\n"
