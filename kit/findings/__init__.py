"""Findings: the verdict of an investigation, each with its evidence and how to confirm it.

:func:`run` takes inputs that are already loaded (a :class:`kit.sources.capture.Capture`, a
:class:`kit.sources.coredns.CoreDNSLog`, a :class:`kit.sources.unbound.ResolverLog`, a metrics frame of
``kit.read_metrics``, forward settings in ``kit.sources.corefile.FORWARD_SCHEMA``) and runs every check
that has the data it needs. Each check is a function ``check_<cause>(...) -> Finding | None`` so
it can be run and tested on its own; ``None`` means "this cause is not visible in this data".

The checks (``id``: what fires it):

- ``forced-tcp``: a forward upstream whose transport is forced to TCP (CoreDNS ``force_tcp``,
  unbound ``tcp-upstream``/``forward-tcp-upstream``); critical when the capture's SYN
  retransmissions or the CoreDNS log's TCP errors towards it show the damage.
- ``syn-retransmissions``: SYNs towards a port-53 upstream sent again (the kernel's SYN backoff:
  1 s, then 2 s, 4 s...), with the slow client answers they explain.
- ``latency-timer-modes``: slow latencies pile up at the value of a known timer (SYN backoff
  1/3/7/15 s, CoreDNS's 2 s upstream read timeout, a 5 s resolver retry).
- ``bucket-ceiling``: a latency quantile from a histogram is pinned at the last finite bucket
  (CoreDNS: 8.192 s): the metric only says "at least this slow".
- ``packet-rate-limit``: packets towards one resolver above the per-interface limit (AWS VPC
  resolver: 1024 pps); ``packet-rate-below-limit`` (info) when answers are slow but the rate
  stays far below it, which rules the limit out.
- ``upstream-error-bursts``: bins with many upstream errors (CoreDNS ``errors`` plugin,
  unbound error lines).
- ``metrics-blind-spot``: client-side p99 from the capture far above the server-side p99 from
  the metrics.
- classic causes: ``ndots-search-expansion`` (NXDOMAIN answers for search-path expansions),
  ``truncation-tcp-fallback`` (TC=1 answers retried over TCP), ``servfail-storm``,
  ``conntrack-race`` (A and AAAA from one socket, one of them answered ~5 s late or never).

Around the checks: :func:`findings_frame` (one row per finding), :func:`kit.report.finding_html` and
:func:`kit.report.show_evidence` (display in a notebook), :func:`symptom_series` / :func:`kit.charts.symptom_chart`
(the symptoms per second with the change marked), :func:`load_inputs` / :class:`Inputs` /
:func:`run_on` (load artefact paths for the notebook), :func:`restrict` (an input cut to a phase
or to some captures), :func:`infer_upstreams` and :func:`auto_window_step`.

Severity: ``critical`` explains the latency on its own, ``warning`` contributes or hides it,
``info`` rules a cause out. :func:`run` sorts by severity, then in the order of the list above.

Names in evidence frames are data (``qname`` as on the wire in presentation form, without the
trailing dot, case preserved); the report escapes them.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any

import polars as pl

from kit.analyses.latency import match_timers
from kit.net import address, addresses
from kit.sources.timeline import Timeline, restrict
from kit.timeutil import UTC as _UTC
from kit.timeutil import parse_duration

if TYPE_CHECKING:
    from kit.sources.coredns import CoreDNSLog
    from kit.sources.unbound import ResolverLog

log = logging.getLogger(__name__)

__all__ = [
    "CHECKS",
    "CHECK_STATUSES",
    "FINDINGS_SCHEMA",
    "FIXES",
    "KNOWN_TIMERS",
    "ROLES",
    "ROLE_OF",
    "SEVERITIES",
    "SYMPTOMS_SCHEMA",
    "CheckResult",
    "Finding",
    "Inputs",
    "Role",
    "Severity",
    "Verdict",
    "auto_window_step",
    "burst_status",
    "check_bucket_ceiling",
    "check_conntrack_race",
    "check_error_bursts",
    "check_forced_tcp",
    "check_latency_modes",
    "check_metrics_blind_spot",
    "check_ndots_expansion",
    "check_packet_rate",
    "check_servfail_storm",
    "check_syn_retransmissions",
    "check_truncation",
    "coverage",
    "error_bursts_result",
    "evidence_table",
    "finding_json",
    "findings_for_artefacts",
    "findings_frame",
    "headline_series",
    "infer_upstreams",
    "json_value",
    "load_inputs",
    "restrict",
    "run",
    "run_on",
    "summarize",
    "symptom_series",
    "verdict_json",
    "verdict_markdown",
    "verdict_text",
]


class Severity(StrEnum):
    """How urgent a finding is, most severe first (the order :func:`run` sorts by).

    A :class:`str` (``Severity.CRITICAL == "critical"``), so JSON, f-strings and comparisons with
    the plain names keep working; :class:`Finding` converts a name given as text and refuses any
    other (there is no ``high`` or ``medium``).
    """

    CRITICAL = "critical"
    WARNING = "warning"
    INFO = "info"

    @property
    def rank(self) -> int:
        """0 for the most severe."""
        return list(Severity).index(self)


class Role(StrEnum):
    """Where a finding sits in the causal chain, in reading order (see :data:`ROLES`)."""

    ROOT_CAUSE = "root-cause"
    MECHANISM = "mechanism"
    SYMPTOM = "symptom"
    RULED_OUT = "ruled-out"
    CONTEXT = "context"


SEVERITIES: tuple[str, ...] = tuple(s.value for s in Severity)
"""Severity names, most severe first (:class:`Severity`)."""

ROLES: tuple[str, ...] = tuple(r.value for r in Role)
"""What a finding is in the causal chain, in reading order (:class:`Role`). ``root-cause``: the change or
condition that started it (forced TCP, a packet limit exceeded, search-path expansion, the
conntrack race); ``mechanism``: how it turns into latency (SYN retransmissions, TCP fallback after
truncation); ``symptom``: what users and logs see (latency at timer values, error bursts,
SERVFAILs); ``ruled-out``: a cause the data excludes (packet rate far below the limit);
``context``: a fact about the evidence itself (a histogram ceiling, a metrics blind spot).
Severity stays the urgency; the role says where a finding sits."""

ROLE_OF: dict[str, str] = {
    "forced-tcp": "root-cause",
    "packet-rate-limit": "root-cause",
    "ndots-search-expansion": "root-cause",
    "conntrack-race": "root-cause",
    "syn-retransmissions": "mechanism",
    "truncation-tcp-fallback": "mechanism",
    "latency-timer-modes": "symptom",
    "upstream-error-bursts": "symptom",
    "servfail-storm": "symptom",
    "packet-rate-below-limit": "ruled-out",
    "bucket-ceiling": "context",
    "metrics-blind-spot": "context",
}
"""The role (:data:`ROLES`) of each check's finding, by finding id."""

KNOWN_TIMERS: tuple[tuple[str, float], ...] = (
    ("TCP SYN backoff: answer after the 1st SYN retransmission (1 s)", 1.0),
    ("CoreDNS forward: 2 s upstream read timeout", 2.0),
    ("TCP SYN backoff: answer after the 2nd SYN retransmission (1+2 s)", 3.0),
    ("resolver retry after 5 s (glibc/musl timeout; conntrack A/AAAA race)", 5.0),
    ("TCP SYN backoff: answer after the 3rd SYN retransmission (1+2+4 s)", 7.0),
    ("TCP SYN backoff: answer after the 4th SYN retransmission (1+2+4+8 s)", 15.0),
)
"""(name, seconds) of timers that make latencies pile up at one value."""

FINDINGS_SCHEMA = pl.Schema(
    {
        "severity": pl.String,
        "role": pl.String,
        "id": pl.String,
        "title": pl.String,
        "explanation": pl.String,
        "evidence": pl.String,
        "confirm": pl.String,
    }
)
"""Schema of :func:`findings_frame`: one row per finding, evidence summarised as text."""


@dataclass(frozen=True)
class Finding:
    """One finding: what fired, why it matters, the evidence and how to confirm it.

    Attributes
    ----------
    id : str
        Stable identifier (``"syn-retransmissions"``...).
    title : str
        One line.
    severity : Severity
        :class:`Severity` (a name given as text, ``"critical"``, is converted).
    explanation : str
        One paragraph: what was seen, what it means, what to check next.
    evidence : Mapping[str, Any]
        Names to numbers, strings or small polars frames (the rows behind the numbers).
    confirm : str
        The exact command or query that confirms it on the raw artefacts.
    role : Role
        Where it sits in the causal chain (:class:`Role`); empty: from :data:`ROLE_OF` by ``id``
        (``context`` for an id not listed there).
    """

    id: str
    title: str
    severity: str
    explanation: str
    evidence: Mapping[str, Any] = field(default_factory=dict)
    confirm: str = ""
    role: str = ""

    def __post_init__(self) -> None:
        if self.severity not in SEVERITIES:
            raise ValueError(f"severity {self.severity!r} not one of {SEVERITIES}")
        object.__setattr__(self, "severity", Severity(self.severity))
        if not self.role:
            object.__setattr__(self, "role", ROLE_OF.get(self.id, "context"))
        if self.role not in ROLES:
            raise ValueError(f"role {self.role!r} not one of {ROLES}")
        object.__setattr__(self, "role", Role(self.role))


@dataclass(frozen=True)
class CheckResult:
    """What one check concluded: fired (with its :class:`Finding`), not fired, or not checked.

    A check that does not fire can say why, with the numbers it looked at, so a notebook or a
    report shows "not fired: peak 4 errors per 1m, below 10" instead of nothing (and nothing has
    to compute the check a second time to say so).

    Attributes
    ----------
    check : str
        The finding id the check produces (``"upstream-error-bursts"``...).
    status : str
        ``"fired"``, ``"not fired"`` or ``"not checked"`` (:data:`CHECK_STATUSES`).
    reason : str
        One sentence: why not fired / not checked; for ``fired`` the finding's title.
    numbers : Mapping[str, Any]
        What the check measured and its thresholds (plain numbers, strings, datetimes).
    finding : Finding | None
        The finding when fired, else None.
    """

    check: str
    status: str
    reason: str
    numbers: Mapping[str, Any] = field(default_factory=dict)
    finding: Finding | None = None

    def __post_init__(self) -> None:
        if self.status not in CHECK_STATUSES:
            raise ValueError(f"status {self.status!r} not one of {CHECK_STATUSES}")
        if (self.status == "fired") != (self.finding is not None):
            raise ValueError("a fired check carries its finding, and only a fired one")

    @property
    def fired(self) -> bool:
        return self.status == "fired"

    @property
    def verdict(self) -> str:
        """``fired (<severity>): <title>``, ``not fired: <reason>`` or ``not checked: <reason>``."""
        if self.finding is not None:
            return f"fired ({self.finding.severity}): {self.finding.title}"
        return f"{self.status}: {self.reason}"


CHECK_STATUSES: tuple[str, ...] = ("fired", "not fired", "not checked")
"""The outcomes of a check (:class:`CheckResult`)."""


# --------------------------------------------------------------------------------------------
# helpers


def _quote(text: str) -> str:
    """Single-quote for a POSIX shell."""
    return "'" + text.replace("'", "'\"'\"'") + "'"


def _capture_paths(capture: Any) -> list[str]:
    if capture is None or capture.meta.is_empty():
        return ["capture.pcap"]
    return [str(p) for p in capture.meta["path"].to_list()]


def _ip_filter(ips: Sequence[str], field_v4: str = "ip.dst", field_v6: str = "ipv6.dst") -> str:
    parts = [f"{field_v6 if ':' in ip else field_v4}=={ip}" for ip in ips]
    if not parts:
        return ""
    return parts[0] if len(parts) == 1 else "(" + " || ".join(parts) + ")"


def infer_upstreams(capture: Any, forward: pl.DataFrame | None = None) -> list[str]:
    """Addresses of the upstream resolvers: :func:`kit.analyses.upstream.infer_upstream_ips` on a capture.

    The one rule of the kit (notebook 05 and :func:`kit.analyses.upstream.server_roles` use it too): the
    hosts of the forward settings first, in the order of their rows (an ``upstream`` that is not an
    IP address, such as ``/etc/resolv.conf`` or a ``__PILLAR__`` placeholder, is left out), then the
    servers the capture shows receiving forwarded queries, most forwarded first. A query is
    forwarded when the same name and type (case-insensitive) was asked of another server by
    another sender at most 0.5 s before (a query over a TCP connection opened for it counts from
    its first SYN), that one was still unanswered, and it was not answered after that one. A TCP
    connection that never got a SYN/ACK and carried no query counts as an attempt when it started
    the same way after another sender's unanswered query (all SYNs dropped: no query reaches the
    upstream). A server needs at least 3 forwarded queries and attempts, and 10 % of its queries
    and failed connections (:func:`kit.analyses.upstream.forwarding_evidence`). A client asking two
    resolvers the same name is one sender: that makes no upstream.

    Parameters
    ----------
    capture
        A :class:`kit.sources.capture.Capture` or ``None``.
    forward
        Forward settings (``FORWARD_SCHEMA``) or ``None``; their ``upstream`` hosts come first.

    Returns
    -------
    list[str]
        Addresses without duplicates, settings first, then capture evidence (most forwarded first);
        empty when neither names nor shows an upstream.
    """
    from kit.analyses.upstream import infer_upstream_ips

    if capture is None:
        return infer_upstream_ips(None, forward=forward)
    return infer_upstream_ips(capture.dns, forward=forward, tcp=capture.tcp)


# --------------------------------------------------------------------------------------------
# the core checks


def check_forced_tcp(
    forward: pl.DataFrame | None,
    *,
    corroborated: bool = False,
    coredns: Any = None,
    min_tcp_errors: int = 10,
) -> Finding | None:
    """Fires when a forward upstream is forced to TCP (``force_tcp`` / ``tcp-upstream``).

    Parameters
    ----------
    forward
        Forward settings, ``kit.sources.corefile.FORWARD_SCHEMA`` (``Corefile.forward_settings()`` or
        ``kit.read_unbound_conf``).
    corroborated
        The capture shows the damage (SYN retransmissions): severity ``critical`` instead of
        ``warning``.
    coredns
        A :class:`kit.sources.coredns.CoreDNSLog`: its ``errors`` lines over ``tcp`` towards a forced
        upstream's address (``server_ip``) show the damage without a capture; at least
        ``min_tcp_errors`` of them make the finding ``critical`` too.
    min_tcp_errors
        Logged TCP errors towards the forced upstreams that count as corroboration.

    Returns
    -------
    Finding | None
        Evidence: ``settings`` (the forced rows: resolver, zone, upstream, transport, source,
        line_no), ``upstreams`` (count); with ``coredns``, ``tcp_errors_logged`` (errors lines
        over tcp towards a forced upstream's address).
    """
    if forward is None or forward.is_empty():
        return None
    forced = forward.filter(pl.col("force_tcp").fill_null(False))
    if forced.is_empty():
        return None
    rows = forced.select("resolver", "zone", "upstream", "transport", "source", "line_no")
    where = sorted({f"{s}:{n}" for s, n in zip(rows["source"], rows["line_no"], strict=True)})
    ups = sorted(set(rows["upstream"].drop_nulls().to_list()))
    files = sorted(set(rows["source"].drop_nulls().to_list()))
    evidence: dict[str, Any] = {"upstreams": len(ups), "settings": rows}
    logged = ""
    tcp_errors = 0
    if coredns is not None:
        hosts = sorted({h for h in (address(u) for u in ups) if h})
        tcp_errors = coredns.errors.filter(
            (pl.col("transport") == "tcp") & pl.col("server_ip").is_in(hosts)
        ).height
        evidence["tcp_errors_logged"] = tcp_errors
        if tcp_errors:
            logged = (
                f" The CoreDNS log shows {tcp_errors} failed TCP exchange(s) with "
                f"{', '.join(hosts)} (errors plugin: dial/read tcp ... i/o timeout)."
            )
    return Finding(
        id="forced-tcp",
        title=f"Upstream forced to TCP in the resolver config ({', '.join(ups)})",
        severity="critical" if corroborated or tcp_errors >= min_tcp_errors else "warning",
        explanation=(
            f"The cache forwards cache misses to {', '.join(ups)} over TCP only ({', '.join(where)}). "
            "Every miss then needs a TCP connection; resolvers such as the AWS VPC resolver limit "
            "TCP, and a dropped SYN is only retried after 1 s, 2 s, 4 s..., so clients wait "
            "seconds. Forward over UDP instead (CoreDNS: remove force_tcp, or use prefer_udp; "
            "unbound: tcp-upstream: no)." + logged
        ),
        evidence=evidence,
        confirm="grep -nE 'force_tcp|tcp-upstream|forward-tcp-upstream' "
        + " ".join(_quote(f) for f in files),
    )


def _syn_packets(capture: Any, upstreams: Sequence[str] | None) -> pl.DataFrame:
    from kit.analyses.upstream import syn_packets

    return syn_packets(capture.packets, server_ips=upstreams)


def _max_in_window(ts: pl.Series, seconds: float) -> tuple[int, datetime | None]:
    """Largest number of timestamps in any window ``[t, t + seconds)`` starting at one of them."""
    if ts.is_empty():
        return 0, None
    s = ts.sort()
    ends = s.search_sorted(s + timedelta(seconds=seconds), side="left")
    counts = ends - pl.Series(range(s.len()), dtype=ends.dtype)
    i = int(counts.arg_max() or 0)
    return int(counts[i]), s[i]


def check_syn_retransmissions(
    capture: Any,
    *,
    upstreams: Sequence[str] | None = None,
    slow_threshold_s: float = 1.0,
    min_retransmits: int = 3,
    window_s: float = 8.0,
    change_time: datetime | None = None,
) -> Finding | None:
    """Fires when SYNs towards a port-53 server were retransmitted (at least ``min_retransmits``).

    Parameters
    ----------
    capture
        A :class:`kit.sources.capture.Capture`.
    upstreams
        Only connections to these addresses count (default: any port-53 server).
    slow_threshold_s
        Client answers at least this slow (seconds) are attributed to upstream connections with
        :func:`kit.sources.capture.attribute_slow_answers`.
    min_retransmits
        Fewest retransmitted SYNs to fire.
    window_s
        Window (seconds) for the densest burst of retransmitted SYNs.
    change_time
        When the suspected change was made (UTC): the evidence then says how long after it the
        first SYN was retransmitted, and how many retransmissions came before it.

    Returns
    -------
    Finding | None
        ``critical`` when slow client answers are attributed to connections with SYN
        retransmissions, else ``warning``. Evidence: ``connections``, ``syn_retransmits``
        (retransmitted SYN packets), ``failed_connections`` (no SYN/ACK seen),
        ``max_retransmits_in_window`` and ``window_start``, ``first_retransmit`` (ISO time),
        with ``change_time``: ``first_after_change_s`` (seconds, negative when before it) and
        ``retransmits_before_change``; ``slow_answers``,
        ``slow_answers_attributed``, ``per_server`` (frame), ``slow_examples`` (frame, slowest 10).
    """
    from kit.sources.capture import attribute_slow_answers

    if capture is None:
        return None
    tcp = capture.tcp.filter(pl.col("server_port") == 53)
    if upstreams:
        tcp = tcp.filter(pl.col("server_ip").is_in(addresses(upstreams)))
    syn = _syn_packets(capture, upstreams)
    retx = syn.filter(pl.col("is_retransmission"))
    if retx.height < min_retransmits:
        return None
    burst, burst_at = _max_in_window(retx["ts"], window_s)
    per_server = (
        tcp.group_by("capture", "server_ip")
        .agg(
            connections=pl.len().cast(pl.UInt32),
            syn_retransmits=pl.col("syn_retransmits").sum().cast(pl.UInt32),
            failed=(~pl.col("established").fill_null(True)).sum().cast(pl.UInt32),
            max_handshake_s=pl.col("handshake_s").max(),
        )
        .sort("capture", "server_ip")
    )
    att = attribute_slow_answers(capture, slow_s=slow_threshold_s)
    hit = att.filter(pl.col("syn_retransmits").fill_null(0) > 0)
    if upstreams:
        hit = hit.filter(pl.col("up_server_ip").is_in(addresses(upstreams)))
    servers = sorted(set(retx["dst_ip"].to_list()))
    paths = [
        p
        for p, c in zip(_capture_paths(capture), capture.meta["capture"].to_list(), strict=False)
        if c in set(retx["capture"].to_list())
    ] or _capture_paths(capture)
    flt = "tcp.flags.syn==1 && tcp.flags.ack==0 && tcp.analysis.retransmission"
    if servers:
        flt += " && " + _ip_filter(servers)
    failed = int(per_server["failed"].sum())
    first = retx["ts"].min()
    timing: dict[str, Any] = {"first_retransmit": first.isoformat()}  # type: ignore[union-attr]
    when = ""
    if change_time is not None:
        after = (first - change_time).total_seconds()  # type: ignore[operator,union-attr]
        before = retx.filter(pl.col("ts") < change_time).height
        timing |= {"first_after_change_s": after, "retransmits_before_change": before}
        when = (
            f"The first came {after:.1f} s after the change ({before} before it). "
            if after >= 0
            else f"The first came {-after:.1f} s BEFORE the change ({before} before it). "
        )
    return Finding(
        id="syn-retransmissions",
        title=(
            f"{retx.height} SYN retransmissions towards {', '.join(servers)}; "
            f"{hit.height} slow answers attributed to them"
        ),
        severity="critical" if hit.height else "warning",
        explanation=(
            f"The cache opened {tcp.height} TCP connections to its upstream on port 53 and had to "
            f"send {retx.height} SYNs again ({burst} within {window_s:g} s at the worst; "
            f"{failed} connections never got a SYN/ACK). {when}The kernel waits 1 s, then 2 s, 4 s... "
            f"before each retransmission, so a dropped SYN delays the answer by whole seconds. "
            f"{hit.height} of {att.height} client answers slower than {slow_threshold_s:g} s waited "
            "for such a connection. The upstream drops or limits TCP connections: check whether "
            "TCP is forced to it (forced-tcp) and forward over UDP."
        ),
        evidence={
            "connections": tcp.height,
            "syn_retransmits": retx.height,
            "failed_connections": failed,
            "max_retransmits_in_window": burst,
            "window_s": window_s,
            "window_start": burst_at.isoformat() if burst_at is not None else "",
            **timing,
            "slow_answers": att.height,
            "slow_answers_attributed": hit.height,
            "per_server": per_server,
            "slow_examples": hit.head(10).select(
                "capture", "ts", "qname", "qtype", "latency_s", "tcp_stream", "syn_retransmits"
            ),
        },
        confirm=" ; ".join(f"tshark -r {_quote(p)} -Y {_quote(flt)}" for p in paths),
    )


def _match_timers(modes: pl.DataFrame, tolerance: float) -> pl.DataFrame:
    """``modes`` plus the matching :data:`KNOWN_TIMERS` entry (``timer``, ``timer_s``; null if none)."""
    timers = pl.DataFrame(
        {"timer": [n for n, _ in KNOWN_TIMERS], "timer_s": [v for _, v in KNOWN_TIMERS]},
        schema={"timer": pl.String, "timer_s": pl.Float64},
    )
    matched = match_timers(modes, timers, tolerance=tolerance)
    hit = pl.col("matches").fill_null(False)
    return matched.with_columns(
        timer=pl.when(hit).then(pl.col("timer")),
        timer_s=pl.when(hit).then(pl.col("timer_s")),
    ).drop("ratio", "matches")


def check_latency_modes(
    *,
    capture: Any = None,
    coredns: Any = None,
    unbound: Any = None,
    min_s: float = 0.5,
    min_count: int = 5,
    tolerance: float = 0.12,
) -> Finding | None:
    """Fires when slow latencies pile up at a known timer (:data:`KNOWN_TIMERS`).

    Each source given is looked at on its own with :func:`kit.analyses.latency.latency_modes`: capture
    ``latency_s`` (every transaction), CoreDNS ``duration_s``, unbound ``duration_s``. A mode
    matches a timer when it lies within ``tolerance`` (relative) of the timer's value.

    Parameters
    ----------
    capture, coredns, unbound
        Loaded inputs (any may be ``None``).
    min_s
        Only latencies at or above this (seconds) are considered.
    min_count
        Fewest observations in a mode.
    tolerance
        Relative distance of a mode to a timer, e.g. 0.12 = 12 %.

    Returns
    -------
    Finding | None
        ``critical`` when at least two steps of the SYN ladder (1, 3, 7, 15 s) match, else
        ``warning``. Evidence: ``modes`` (frame: source, mode_s, lower_s, upper_s, count, share,
        timer, timer_s), ``matched`` (count), ``syn_ladder_steps``.
    """
    from kit.analyses.latency import latency_modes

    frames: list[pl.DataFrame] = []
    sources: list[tuple[str, pl.DataFrame, str]] = []
    if capture is not None:
        sources.append(("capture", capture.dns, "latency_s"))
    if coredns is not None:
        sources.append(("coredns log", coredns.queries, "duration_s"))
    if unbound is not None:
        sources.append(("unbound log", unbound.queries, "duration_s"))
    for name, df, col in sources:
        modes = latency_modes(df, value=col, min_s=min_s, min_count=min_count)
        if not modes.is_empty():
            frames.append(_match_timers(modes, tolerance).with_columns(source=pl.lit(name)))
    if not frames:
        return None
    allm = pl.concat(frames).select(
        "source", "mode_s", "lower_s", "upper_s", "count", "share", "timer", "timer_s"
    )
    matched = allm.filter(pl.col("timer").is_not_null())
    if matched.is_empty():
        return None
    ladder = sorted(
        set(matched.filter(pl.col("timer_s").is_in([1.0, 3.0, 7.0, 15.0]))["timer_s"].to_list())
    )
    shown = ", ".join(f"{t:g}" for t in sorted(set(matched["timer_s"].to_list()))) + " s"
    if len(ladder) >= 2:
        meaning = (
            "Peaks at 1 s, 3 s, 7 s are the TCP SYN retransmission ladder: the answer came only "
            "after one, two or three SYNs towards the upstream were lost."
        )
    else:
        meaning = "Each matched peak is the value of the timer named in the evidence."
    confirm_parts = []
    if capture is not None:
        confirm_parts += [
            f"tshark -r {_quote(p)} -Y 'dns.flags.response==1 && dns.time >= {min_s:g}' "
            "-T fields -e dns.time | cut -c1-3 | sort -n | uniq -c"
            for p in _capture_paths(capture)
        ]
    for obj, cmd in (
        # CoreDNS query lines end in the duration with its unit (e.g. 1.002s); unbound reply
        # lines carry it third from the end (rcode, seconds, cached flag, size)
        (
            coredns,
            "grep -oE ' [0-9.]+s$' {file} | tr -d ' s' | awk '$1 >= "
            + f"{min_s:g}"
            + ' {{printf "%.1f\\n", $1}}\' | sort -n | uniq -c',
        ),
        (
            unbound,
            "awk 'NF >= 11 && $(NF-2) >= "
            + f"{min_s:g}"
            + ' {{printf "%.1f\\n", $(NF-2)}}\' {file} | sort -n | uniq -c',
        ),
    ):
        if obj is not None and "source" in obj.queries.columns:
            for f in obj.queries["source"].drop_nulls().unique().sort().to_list():
                confirm_parts.append(cmd.format(file=_quote(f)))
    return Finding(
        id="latency-timer-modes",
        title=f"Slow latencies pile up at timer values ({shown})",
        severity="critical" if len(ladder) >= 2 else "warning",
        explanation=(
            f"Latencies of at least {min_s:g} s are not spread out: they form peaks at the values "
            f"of known timers ({shown}; see the modes in the evidence). {meaning} A latency that equals a timer points at the "
            "mechanism that waited; check the finding that names it (SYN retransmissions, "
            "upstream timeouts, resolver retries)."
        ),
        evidence={"matched": matched.height, "syn_ladder_steps": len(ladder), "modes": allm},
        confirm=" ; ".join(confirm_parts),
    )


def _histograms(metrics: pl.DataFrame) -> list[str]:
    names = metrics.filter(pl.col("metric").str.ends_with("_bucket"))["metric"].unique().sort()
    return [n[: -len("_bucket")] for n in names.to_list() if n]


def _label_cols(metrics: pl.DataFrame, metric: str) -> list[str]:
    sub = metrics.filter(pl.col("metric") == metric)
    skip = {"ts", "metric", "value", "source", "le"}
    return [
        c
        for c in sub.columns
        if c not in skip and sub.schema[c] == pl.String and sub[c].drop_nulls().n_unique() > 1
    ]


def auto_window_step(metrics: pl.DataFrame, *, max_points: int = 400) -> tuple[str, str]:
    """A rate window and an evaluation step that suit the metrics' scrape interval and span.

    Window: 4 scrape intervals (the median gap between a series' samples), at least 30 s; step:
    the scrape interval, widened so that at most ``max_points`` steps cover the span. Both as
    whole seconds (``"60s"``).
    """
    buckets = metrics.filter(pl.col("metric").str.ends_with("_bucket"))
    if buckets.height < 2:
        return "30s", "5s"
    labels = [c for c in buckets.columns if c not in ("ts", "value", "source")]
    gaps = (
        buckets.sort("ts")
        .select(pl.col("ts").diff().over(labels).dt.total_milliseconds())
        .to_series()
        .drop_nulls()
    )
    interval_s = max(1.0, float(gaps.median() or 5000) / 1000)  # type: ignore[arg-type]
    span_s = (buckets["ts"].max() - buckets["ts"].min()).total_seconds()  # type: ignore[operator,union-attr]
    window = max(30, round(4 * interval_s))
    step = max(round(interval_s), int(span_s // max_points) + 1)
    return f"{window}s", f"{step}s"


def _server_quantiles(
    metrics: pl.DataFrame, *, q: float = 0.99, window: str | None = None, step: str | None = None
) -> pl.DataFrame:
    """p<q> over time of every latency histogram in ``metrics`` (one series per varying label).

    ``window``/``step`` default to :func:`auto_window_step`.
    """
    from kit.promql import quantile_series

    auto_w, auto_s = auto_window_step(metrics)
    window, step = window or auto_w, step or auto_s
    out = []
    for name in _histograms(metrics):
        by = _label_cols(metrics, name + "_bucket")
        qs = quantile_series(metrics, name, quantiles=[q], by=by, window=window, step=step).filter(
            pl.col("value").is_not_nan() & pl.col("value").is_finite()
        )
        if qs.is_empty():
            continue
        series = (
            pl.concat_str([pl.lit(f"{c}=") + pl.col(c).fill_null("") for c in by], separator=",")
            if by
            else pl.lit("")
        )
        out.append(
            qs.select(
                "ts",
                pl.lit(name).alias("metric"),
                series.alias("series"),
                "value",
                "bucket_lower",
                "bucket_upper",
                "at_ceiling",
            )
        )
    if not out:
        return pl.DataFrame(
            schema={
                "ts": _UTC,
                "metric": pl.String,
                "series": pl.String,
                "value": pl.Float64,
                "bucket_lower": pl.Float64,
                "bucket_upper": pl.Float64,
                "at_ceiling": pl.Boolean,
            }
        )
    return pl.concat(out)


def check_bucket_ceiling(
    metrics: pl.DataFrame | None,
    *,
    quantile: float = 0.99,
    window: str | None = None,
    step: str | None = None,
    min_points: int = 1,
    histograms: Sequence[str] | None = None,
) -> Finding | None:
    """Fires when a histogram quantile is pinned at the last finite bucket bound.

    Parameters
    ----------
    metrics
        A ``kit.read_metrics`` frame with ``<name>_bucket`` series (CoreDNS
        ``coredns_dns_request_duration_seconds``, unbound exporter...).
    quantile
        The quantile to compute (0.99).
    window, step
        Rate window and evaluation step (PromQL durations); default: :func:`auto_window_step`.
    min_points
        Fewest pinned evaluation points to fire.
    histograms
        Only these histograms (names without ``_bucket``); default: every ``*_bucket`` metric.

    Returns
    -------
    Finding | None
        ``warning``. Evidence: ``ceiling_s`` (the bound), ``pinned_points``, ``points``,
        ``pinned`` (frame: metric, series, first, last, points, ceiling_s).
    """
    if metrics is None or metrics.is_empty() or "le" not in metrics.columns:
        return None
    if histograms is not None:
        names = [f"{h}_bucket" for h in histograms]
        metrics = metrics.filter(pl.col("metric").is_in(names))
    qs = _server_quantiles(metrics, q=quantile, window=window, step=step)
    pinned = qs.filter(pl.col("at_ceiling"))
    if pinned.height < min_points:
        return None
    summary = (
        pinned.group_by("metric", "series")
        .agg(
            first=pl.col("ts").min(),
            last=pl.col("ts").max(),
            points=pl.len().cast(pl.UInt32),
            ceiling_s=pl.col("bucket_lower").max(),
        )
        .sort("metric", "series")
    )
    top = summary.sort(["ceiling_s", "points"], descending=True).row(0, named=True)
    ceiling, metric = float(top["ceiling_s"]), str(top["metric"])
    pct = f"p{quantile * 100:g}"
    return Finding(
        id="bucket-ceiling",
        title=f"{pct} pinned at the {ceiling:g} s bucket ceiling of {metric}",
        severity="warning",
        explanation=(
            f"At {pinned.height} of {qs.height} evaluation points a {pct} fell beyond the last "
            f"finite bucket of its histogram ({summary.height} series; {metric}: {ceiling:g} s). The histogram cannot say how slow "
            f"those requests were: a flat line at {ceiling:g} s means 'at least {ceiling:g} s'. "
            "Take the real latency from a capture or the query log (dns.time, duration)."
        ),
        evidence={
            "ceiling_s": ceiling,
            "pinned_points": pinned.height,
            "points": qs.height,
            "pinned": summary,
        },
        confirm=(
            f"histogram_quantile({quantile:g}, sum by (le) (rate({metric}_bucket[5m]))) "
            f'== {ceiling:g}  # and compare {metric}_bucket{{le="+Inf"}} with '
            f'{metric}_bucket{{le="{ceiling:g}"}}'
        ),
    )


def check_packet_rate(
    capture: Any,
    *,
    upstreams: Sequence[str] | None = None,
    limit_pps: float = 1024.0,
    slow_threshold_s: float = 1.0,
    far_below: float = 0.5,
) -> Finding | None:
    """Compares the packet rate towards each resolver with its per-interface limit.

    Parameters
    ----------
    capture
        A :class:`kit.sources.capture.Capture`.
    upstreams
        Resolver addresses (default: every destination of port-53 packets).
    limit_pps
        The limit, packets per second (AWS VPC resolver: 1024 per network interface).
    slow_threshold_s
        Answers at least this slow (seconds) make the "below the limit" finding worth saying.
    far_below
        The peak rate counts as far below when under this share of the limit.

    Returns
    -------
    Finding | None
        ``packet-rate-limit`` (critical) when a 1 s bin exceeds the limit;
        ``packet-rate-below-limit`` (info) when there are slow answers but the peak stays under
        ``far_below`` x the limit; else ``None``. Evidence: ``limit_pps``, ``peak_pps``,
        ``bins_above_limit``, ``slow_answers``, ``rates`` (frame from
        :func:`kit.sources.capture.rate_summary`).
    """
    from kit.sources.capture import packet_rates, rate_summary

    if capture is None or capture.packets.is_empty():
        return None
    pk = capture.packets.filter(pl.col("dst_port") == 53)
    if upstreams:
        pk = pk.filter(pl.col("dst_ip").is_in(addresses(upstreams)))
    if pk.is_empty():
        return None
    rates = packet_rates(pk, every="1s", limit_pps=limit_pps)
    summary = rate_summary(rates, limit_pps=limit_pps)
    peak = float(summary["peak_pps"].max())  # type: ignore[arg-type]
    above = int(summary["bins_above_limit"].sum())
    top = summary.row(0, named=True)
    paths = _capture_paths(capture)
    confirm = " ; ".join(
        f"tshark -r {_quote(p)} -q -z io,stat,1,{_quote('ip.dst==' + str(top['dst_ip']))}"
        for p in paths
    )
    slow = capture.dns.filter(
        (pl.col("latency_s") >= slow_threshold_s) | (~pl.col("answered") & ~pl.col("censored"))
    ).height
    ev = {
        "limit_pps": limit_pps,
        "peak_pps": peak,
        "peak_dst_ip": top["dst_ip"],
        "bins_above_limit": above,
        "slow_answers": slow,
        "rates": summary,
    }
    if above:
        return Finding(
            id="packet-rate-limit",
            title=f"Packet rate to {top['dst_ip']} above the {limit_pps:g} pps limit ({peak:g} pps peak)",
            severity="critical",
            explanation=(
                f"In {above} one-second bins more than {limit_pps:g} packets went to one resolver "
                f"(peak {peak:g} pps at {top['dst_ip']}). The AWS VPC resolver drops what exceeds "
                "1024 packets per second per network interface, which shows as unanswered queries "
                "and client retries. Spread the load (NodeLocal DNSCache, more nodes' interfaces) "
                "or cache more."
            ),
            evidence=ev,
            confirm=confirm,
        )
    if slow and peak < far_below * limit_pps:
        return Finding(
            id="packet-rate-below-limit",
            title=f"Packet rate far below the {limit_pps:g} pps limit ({peak:g} pps peak): not the cause",
            severity="info",
            explanation=(
                f"{slow} answers were slow, but the busiest resolver address ({top['dst_ip']}) got "
                f"at most {peak:g} packets per second, {peak / limit_pps:.0%} of the "
                f"{limit_pps:g} pps limit. The per-interface packet limit does not explain the "
                "latency; look at what the packets carry (TCP handshakes, retransmissions)."
            ),
            evidence=ev,
            confirm=confirm,
        )
    return None


def check_error_bursts(
    *,
    coredns: Any = None,
    unbound: Any = None,
    every: str = "1m",
    min_errors: int = 10,
    critical_errors: int = 100,
) -> Finding | None:
    """Fires when upstream errors come in bursts: a bin with at least ``min_errors`` errors.

    The finding of :func:`error_bursts_result` (which also says why it did not fire).
    """
    return error_bursts_result(
        coredns=coredns,
        unbound=unbound,
        every=every,
        min_errors=min_errors,
        critical_errors=critical_errors,
    ).finding


def error_bursts_result(
    *,
    coredns: Any = None,
    unbound: Any = None,
    every: str = "1m",
    min_errors: int = 10,
    critical_errors: int = 100,
) -> CheckResult:
    """The error-burst check with its numbers: fired, not fired or not checked, and why.

    Parameters
    ----------
    coredns
        A :class:`kit.sources.coredns.CoreDNSLog` (``errors`` plugin lines; ``consolidate`` summaries
        counted as the errors they stand for).
    unbound
        A :class:`kit.sources.unbound.ResolverLog` (``other`` lines at level ``error``).
    every
        Bin width (polars duration, default one minute).
    min_errors, critical_errors
        Errors in one bin to fire, and to be ``critical``.

    Returns
    -------
    CheckResult
        ``numbers``: ``errors`` (timed upstream errors), ``errors_without_ts``, ``peak_per_bin``,
        ``peak_ts`` (start of the fullest bin, earliest of equals; None when none), ``every``,
        ``min_errors``, ``critical_errors``. The finding's evidence: ``errors`` (total with a timestamp), ``errors_without_ts`` (CoreDNS errors
        whose line has no time: not binned; when all lack one and there are at least
        ``min_errors``, a ``warning`` says bursts cannot be told), ``peak_per_bin``,
        ``bins_with_burst``, ``by_kind`` (frame), ``bursts`` (frame: ts, upstream, kind, count).
    """
    parts: list[pl.DataFrame] = []
    files: list[str] = []
    untimed = 0
    numbers: dict[str, Any] = {
        "errors": 0,
        "errors_without_ts": 0,
        "peak_per_bin": 0,
        "peak_ts": None,
        "every": every,
        "min_errors": min_errors,
        "critical_errors": critical_errors,
    }
    check = "upstream-error-bursts"
    if coredns is None and unbound is None:
        return CheckResult(check, "not checked", "no CoreDNS or unbound log given", numbers)
    if coredns is not None and not coredns.errors.is_empty():
        untimed = int(
            coredns.errors.filter(pl.col("ts").is_null())["consolidated_count"].fill_null(1).sum()
        )
        if untimed:
            log.info("%d CoreDNS errors have no timestamp and cannot be binned", untimed)
        e = coredns.errors.filter(pl.col("ts").is_not_null())
        parts.append(
            e.select(
                "ts",
                upstream=pl.col("upstream").fill_null(""),
                kind=pl.col("kind").fill_null("other"),
                n=pl.col("consolidated_count").fill_null(1).cast(pl.UInt32),
            )
        )
        files += e["source"].unique().sort().to_list()
    if unbound is not None and not unbound.other.is_empty():
        e = unbound.other.filter(pl.col("level").is_in(["error"]) & pl.col("ts").is_not_null())
        if not e.is_empty():
            parts.append(
                e.select(
                    "ts",
                    upstream=pl.lit(""),
                    kind=pl.col("message").str.slice(0, 40),
                    n=pl.lit(1, dtype=pl.UInt32),
                )
            )
            files += e["source"].unique().sort().to_list()
    numbers["errors_without_ts"] = untimed
    if not parts or all(p.is_empty() for p in parts):
        if untimed == 0:
            return CheckResult(check, "not fired", "the logs hold no upstream error", numbers)
        if untimed < min_errors:
            why = f"peak 0 timed errors per {every}, below {min_errors}; {untimed} without a timestamp"
            return CheckResult(check, "not fired", why, numbers)
        f = Finding(
            id="upstream-error-bursts",
            title=f"{untimed} upstream errors (no timestamps: bursts cannot be told)",
            severity="warning",
            explanation=(
                f"The log holds {untimed} upstream errors but its lines carry no timestamp, so "
                "whether they came in bursts cannot be told. Collect the logs with timestamps "
                "(kubectl logs --timestamps, or the CRI files on the node)."
            ),
            evidence={"errors": untimed, "errors_without_ts": untimed},
            confirm="kubectl logs --timestamps -n kube-system <pod> | grep -c 'plugin/errors'",
        )
        return CheckResult(check, "fired", f.title, numbers, f)
    errs = pl.concat(parts)
    bins = (
        errs.with_columns(ts=pl.col("ts").dt.truncate(every))
        .group_by("ts", "upstream", "kind")
        .agg(count=pl.col("n").sum().cast(pl.UInt32))
        .sort("ts", "upstream", "kind")
    )
    per_bin = bins.group_by("ts").agg(count=pl.col("count").sum()).sort("ts")
    bursts = per_bin.filter(pl.col("count") >= min_errors)
    peak = int(per_bin["count"].max() or 0)  # type: ignore[arg-type]
    total = int(errs["n"].sum())
    fullest = per_bin.sort(["count", "ts"], descending=[True, False])
    numbers.update(
        errors=total, peak_per_bin=peak, peak_ts=fullest["ts"][0] if fullest.height else None
    )
    if bursts.is_empty():
        why = f"peak {peak} timed errors per {every}, below {min_errors}"
        if untimed:
            why += f"; {untimed} without a timestamp"
        return CheckResult(check, "not fired", why, numbers)
    by_kind = (
        errs.group_by("upstream", "kind")
        .agg(count=pl.col("n").sum().cast(pl.UInt32))
        .sort(["count", "upstream", "kind"], descending=[True, False, False])
    )
    top = by_kind.row(0, named=True)
    ups = [u for u in by_kind["upstream"].unique().sort().to_list() if u]
    found = Finding(
        id="upstream-error-bursts",
        title=f"Upstream error bursts: up to {peak} errors per {every} ({top['kind']})",
        severity="critical" if peak >= critical_errors else "warning",
        explanation=(
            f"{total} upstream errors, {bursts.height} bins of {every} with at least {min_errors} "
            f"(peak {peak}). Most are '{top['kind']}'"
            + (f" towards {', '.join(ups)}" if ups else "")
            + ". Timeouts towards the upstream mean the cache waited for it (a dial timeout: the "
            "TCP connection was not accepted; a read timeout: no answer). Compare with the "
            "capture's SYN retransmissions and the forward transport."
        ),
        evidence={
            "errors": total,
            "errors_without_ts": untimed,
            "peak_per_bin": peak,
            "bins_with_burst": bursts.height,
            "by_kind": by_kind,
            "bursts": bins.join(bursts.select("ts"), on="ts", how="semi"),
        },
        confirm=" ; ".join(
            f"grep -E 'ERROR|error:' {_quote(f)} | grep -oE 'i/o timeout|timeout|refused|reset' "
            "| sort | uniq -c"
            for f in files
        ),
    )
    return CheckResult(check, "fired", found.title, numbers, found)


def check_metrics_blind_spot(
    capture: Any,
    metrics: pl.DataFrame | None,
    *,
    upstreams: Sequence[str] | None = None,
    quantile: float = 0.99,
    ratio: float = 2.0,
    min_gap_s: float = 0.5,
    window: str | None = None,
    step: str | None = None,
) -> Finding | None:
    """Fires when the client-side quantile (capture) is far above the server-side one (metrics).

    The client side is every capture transaction not sent to an upstream (``upstreams``, or
    :func:`infer_upstreams`); the server side is the largest ``quantile`` over time of the
    metrics' latency histograms. Fires when client > ``ratio`` x server and client - server >
    ``min_gap_s`` seconds.

    Returns
    -------
    Finding | None
        ``warning``. Evidence: ``client_quantile_s``, ``server_quantile_s``, ``ratio``,
        ``server_metric``, ``client`` (frame: quantiles per capture and server).
    """
    from kit.stats import latency_quantiles

    if capture is None or metrics is None or capture.dns.is_empty() or "le" not in metrics.columns:
        return None
    ups = addresses(upstreams) if upstreams else infer_upstreams(capture)
    client = capture.dns.filter(~pl.col("server_ip").is_in(ups))
    if client.is_empty():
        return None
    # unanswered, uncensored queries waited at least until the end: count them as very slow
    vals = client.with_columns(
        lat=pl.when(pl.col("answered"))
        .then(pl.col("latency_s"))
        .when(~pl.col("censored"))
        .then(pl.lit(float("inf")))
    )
    qname = f"p{quantile * 100:g}_s"
    cq = latency_quantiles(
        vals.filter(pl.col("lat").is_not_null()), value="lat", quantiles=[quantile]
    )
    client_q = float(cq[qname][0])
    srv = _server_quantiles(metrics, q=quantile, window=window, step=step)
    if srv.is_empty():
        return None
    top = srv.sort("value", descending=True).row(0, named=True)
    server_q = float(top["value"])
    if not (client_q > ratio * server_q and client_q - server_q > min_gap_s):
        return None
    per = latency_quantiles(
        vals.filter(pl.col("lat").is_not_null()),
        value="lat",
        by=["capture", "server_ip"],
        quantiles=[0.5, 0.9, quantile],
    )
    pct = f"p{quantile * 100:g}"
    return Finding(
        id="metrics-blind-spot",
        title=f"Metrics blind spot: client {pct} {client_q:.3g} s vs server {pct} {server_q:.3g} s",
        severity="warning",
        explanation=(
            f"Clients in the capture waited {client_q:.3g} s at the {pct}, but the server-side "
            f"{pct} from {top['metric']} never exceeded {server_q:.3g} s. The metrics do not see "
            "the wait: it happens before the server measures (dropped or retried packets, "
            "conntrack, a queue in front of it) or outside the histogram's buckets. Trust the "
            "capture for what clients experience, and find where the time goes between client "
            "and server."
        ),
        evidence={
            "client_quantile_s": client_q,
            "server_quantile_s": server_q,
            "ratio": client_q / server_q if server_q > 0 else float("inf"),
            "server_metric": f"{top['metric']} {top['series']}",
            "client": per,
        },
        confirm=(
            f"histogram_quantile({quantile:g}, sum by (le) (rate({top['metric']}_bucket[5m]))) ; "
            + " ; ".join(
                f"tshark -r {_quote(p)} -Y 'dns.flags.response==1' -T fields -e dns.time | sort -n "
                "| awk '{a[NR]=$1} END {print a[int(NR*0.99)]}'"
                for p in _capture_paths(capture)
            )
        ),
    )


# --------------------------------------------------------------------------------------------
# classic causes


def _query_frames(capture: Any, coredns: Any, unbound: Any) -> list[tuple[str, pl.DataFrame]]:
    """(source name, frame with ts, client_ip, qname, qtype, rcode) of every source given."""
    out = []
    cols = ["ts", "client_ip", "qname", "qtype", "rcode"]
    if capture is not None and not capture.dns.is_empty():
        out.append(("capture", capture.dns.select(cols)))
    if coredns is not None and not coredns.queries.is_empty():
        out.append(("coredns log", coredns.queries.select(cols)))
    if unbound is not None and not unbound.queries.is_empty():
        out.append(("unbound log", unbound.queries.select(cols)))
    return out


def _confirm_per_source(
    capture: Any, coredns: Any, unbound: Any, tshark_filter: str, grep: str
) -> str:
    """Commands over each artefact: ``tshark -Y`` for captures, ``grep`` pipelines for logs."""
    parts = []
    if capture is not None:
        parts += [
            f"tshark -r {_quote(p)} -Y {_quote(tshark_filter)}" for p in _capture_paths(capture)
        ]
    for obj in (coredns, unbound):
        if obj is not None and "source" in obj.queries.columns:
            files = obj.queries["source"].drop_nulls().unique().sort().to_list()
            parts += [grep.format(file=_quote(f)) for f in files]
    return " ; ".join(parts)


def check_ndots_expansion(
    *,
    capture: Any = None,
    coredns: Any = None,
    unbound: Any = None,
    cluster_domain: str = "cluster.local",
    min_share: float = 0.2,
    min_queries: int = 10,
) -> Finding | None:
    """Fires when many NXDOMAIN answers are for search-path expansions (``ndots:5``).

    A name with fewer dots than ``ndots`` is first tried with every search suffix
    (``<ns>.svc.cluster.local``, ``svc.cluster.local``, ``cluster.local``, the node's domains),
    each an NXDOMAIN, before the name itself. An NXDOMAIN answer counts as an expansion when its
    name ends in ``.<cluster_domain>`` (the real name is what is left before
    ``.<ns>.svc.<domain>``, ``.svc.<domain>`` or ``.<domain>``), or when a leading part of it
    (whole labels) was itself asked in the same source: ``example.com.ec2.internal`` after or
    before ``example.com``. Names are compared case-insensitively. The share is taken over all
    answers.

    Parameters
    ----------
    capture, coredns, unbound
        Loaded inputs (any may be ``None``).
    cluster_domain
        The Kubernetes cluster domain.
    min_share, min_queries
        Fewest expansions, as a share of answers and as a count, to fire.

    Returns
    -------
    Finding | None
        ``warning``. Evidence: ``expansions``, ``answers``, ``share``, ``real_names`` (names
        the expansions stand for), ``per_name`` (frame: source, base name, expansions, example).
    """
    dom = cluster_domain.strip(".").lower()
    dom_re = dom.replace(".", r"\.")
    rows = []
    for name, df in _query_frames(capture, coredns, unbound):
        d = df.filter(pl.col("rcode").is_not_null()).with_columns(
            low=pl.col("qname").str.to_lowercase().str.strip_chars_end(".")
        )
        asked = set(d["low"].unique().to_list())
        nx = d.filter(pl.col("rcode") == "NXDOMAIN")
        base_of: dict[str, str | None] = {}
        for n in nx["low"].unique().to_list():
            base = None
            if n.endswith("." + dom):
                # <name>.<ns>.svc.<dom> or <name>.svc.<dom> or <name>.<dom>: prefer a name that
                # was itself asked, else the shortest reading
                cands = []
                for pat in (rf"\.[^.]+\.svc\.{dom_re}$", rf"\.svc\.{dom_re}$", rf"\.{dom_re}$"):
                    m = re.search(pat, n)
                    if m and m.start() > 0:
                        cands.append(n[: m.start()])
                base = next((c for c in cands if c in asked), cands[0] if cands else None)
            else:
                labels = n.split(".")
                for k in range(len(labels) - 1, 0, -1):
                    prefix = ".".join(labels[:k])
                    if prefix in asked and "." in prefix:
                        base = prefix
                        break
            base_of[n] = base
        exp = nx.with_columns(
            base=pl.col("low").replace_strict(base_of, default=None, return_dtype=pl.String),
            source=pl.lit(name),
        ).filter(pl.col("base").is_not_null())
        rows.append((name, d.height, exp))
    if not rows:
        return None
    total = sum(n for _, n, _ in rows)
    exp = pl.concat([e.select("source", "ts", "qname", "qtype", "base") for _, _, e in rows])
    if exp.height < min_queries or total == 0 or exp.height / total < min_share:
        return None
    per = (
        exp.group_by("source", "base")
        .agg(expansions=pl.len().cast(pl.UInt32), example=pl.col("qname").first())
        .sort(["expansions", "source", "base"], descending=[True, False, False])
    )
    return Finding(
        id="ndots-search-expansion",
        title=f"Search-path expansion: {exp.height / total:.0%} of answers are NXDOMAIN for *.{dom}",
        severity="warning",
        explanation=(
            f"{exp.height} of {total} answers are NXDOMAIN for names built from a search suffix "
            f"(*.svc.{dom}, *.{dom}, or a name asked with a node search domain appended) for "
            f"{per.height} real names. With the Kubernetes default "
            "ndots:5, a name with fewer than 5 dots is tried with every search suffix first, "
            "multiplying queries and latency. Use fully qualified names (trailing dot) or lower "
            "ndots in the pod's dnsConfig."
        ),
        evidence={
            "expansions": exp.height,
            "answers": total,
            "share": exp.height / total,
            "real_names": per.height,
            "per_name": per.head(20),
        },
        confirm=_confirm_per_source(
            capture,
            coredns,
            unbound,
            f'dns.flags.rcode==3 && dns.qry.name contains "{dom}"',
            "grep NXDOMAIN {file} | grep -ci '" + dom.replace(".", r"\.") + "'",
        ),
    )


def check_truncation(capture: Any, *, within_s: float = 5.0) -> Finding | None:
    """Fires when UDP answers had TC=1 and the same name was asked again over TCP.

    Returns
    -------
    Finding | None
        ``warning``. Evidence: ``truncated`` (TC=1 UDP answers), ``retried_over_tcp``,
        ``examples`` (frame: ts, client_ip, qname, qtype, udp_latency_s, tcp_latency_s).
    """
    if capture is None or capture.dns.is_empty():
        return None
    d = capture.dns.with_columns(key=pl.col("qname").str.to_lowercase())
    tc = d.filter((pl.col("transport") == "udp") & pl.col("tc").fill_null(False))
    if tc.is_empty():
        return None
    tcp = d.filter(pl.col("transport") == "tcp").select(
        "capture", "client_ip", "server_ip", "key", "qtype",
        tcp_ts=pl.col("ts"), tcp_latency_s=pl.col("latency_s"),
    )  # fmt: skip
    j = (
        tc.select(
            "capture",
            "client_ip",
            "server_ip",
            "key",
            "qtype",
            "ts",
            "qname",
            udp_latency_s=pl.col("latency_s"),
        )
        .join(tcp, on=["capture", "client_ip", "server_ip", "key", "qtype"], how="inner")
        .filter(
            (pl.col("tcp_ts") >= pl.col("ts"))
            & (pl.col("tcp_ts") - pl.col("ts") <= timedelta(seconds=within_s))
        )
        .unique(["capture", "client_ip", "key", "qtype", "ts"], keep="first")
        .sort("ts")
    )
    paths = _capture_paths(capture)
    return Finding(
        id="truncation-tcp-fallback",
        title=f"{tc.height} truncated UDP answers (TC=1), {j.height} retried over TCP",
        severity="warning",
        explanation=(
            f"{tc.height} UDP answers were truncated (TC bit) and {j.height} of the queries were "
            "asked again over TCP. Each fallback costs a TCP handshake, and if TCP to the server "
            "is slow or limited, the answer waits for it. Large answers (many A records, DNSSEC) "
            "or a small EDNS buffer cause it: check the answer sizes and the bufsize."
        ),
        evidence={
            "truncated": tc.height,
            "retried_over_tcp": j.height,
            "examples": j.select(
                "ts", "client_ip", "qname", "qtype", "udp_latency_s", "tcp_latency_s"
            ).head(10),
        },
        confirm=" ; ".join(
            f"tshark -r {_quote(p)} -Y 'dns.flags.truncated==1 || (tcp.port==53 && dns)'"
            for p in paths
        ),
    )


def check_servfail_storm(
    *,
    capture: Any = None,
    coredns: Any = None,
    unbound: Any = None,
    min_share: float = 0.05,
    min_count: int = 10,
) -> Finding | None:
    """Fires when SERVFAIL answers are at least ``min_share`` of answers and ``min_count``.

    Returns
    -------
    Finding | None
        ``critical`` above 25 %, else ``warning``. Evidence: ``servfail``, ``answers``,
        ``share``, ``per_source`` (frame), ``top_names`` (frame).
    """
    frames = []
    for name, df in _query_frames(capture, coredns, unbound):
        frames.append(df.filter(pl.col("rcode").is_not_null()).with_columns(source=pl.lit(name)))
    if not frames:
        return None
    d = pl.concat(frames)
    sf = d.filter(pl.col("rcode") == "SERVFAIL")
    if d.is_empty() or sf.height < min_count or sf.height / d.height < min_share:
        return None
    share = sf.height / d.height
    per = (
        d.group_by("source")
        .agg(answers=pl.len().cast(pl.UInt32), servfail=(pl.col("rcode") == "SERVFAIL").sum())
        .sort("source")
    )
    top = (
        sf.group_by("qname", "qtype")
        .agg(count=pl.len().cast(pl.UInt32))
        .sort(["count", "qname", "qtype"], descending=[True, False, False])
        .head(10)
    )
    return Finding(
        id="servfail-storm",
        title=f"SERVFAIL storm: {share:.0%} of answers ({sf.height})",
        severity="critical" if share >= 0.25 else "warning",
        explanation=(
            f"{sf.height} of {d.height} answers were SERVFAIL. The resolver could not get an "
            "answer from upstream (timeouts, unreachable or failing upstream, DNSSEC failure); "
            "clients retry, which adds load and latency. Look at the upstream errors at the same "
            "time and at the names that fail most."
        ),
        evidence={
            "servfail": sf.height,
            "answers": d.height,
            "share": share,
            "per_source": per,
            "top_names": top,
        },
        confirm=_confirm_per_source(
            capture,
            coredns,
            unbound,
            "dns.flags.response==1 && dns.flags.rcode==2",
            "grep -c SERVFAIL {file}",
        ),
    )


def check_conntrack_race(
    capture: Any,
    *,
    pair_within_s: float = 0.01,
    late_s: float = 4.5,
    min_pairs: int = 3,
) -> Finding | None:
    """Fires when A and AAAA sent together from one socket get one answer ~5 s late or never.

    glibc sends the A and AAAA queries of one lookup from the same socket at once; when both race
    through conntrack on the node, one can be dropped, and the client only retries after its 5 s
    timeout. Counted: pairs (same capture, client ip and port, server, name; one A, one AAAA,
    within ``pair_within_s``) where one answer arrives at least ``late_s`` seconds after its query
    (or never, uncensored) while the other arrives in under 1 s.

    Returns
    -------
    Finding | None
        ``warning``. Evidence: ``pairs``, ``late_pairs``, ``examples`` (frame).
    """
    if capture is None or capture.dns.is_empty():
        return None
    d = capture.dns.filter(pl.col("transport") == "udp").with_columns(
        key=pl.col("qname").str.to_lowercase(),
        wait=pl.when(pl.col("answered"))
        .then(pl.col("latency_s"))
        .when(~pl.col("censored"))
        .then(pl.lit(float("inf"))),
    )
    on = ["capture", "client_ip", "client_port", "server_ip", "key"]
    a = d.filter(pl.col("qtype") == "A").select(
        *on, "qname", ts_a=pl.col("ts"), wait_a=pl.col("wait")
    )
    aaaa = d.filter(pl.col("qtype") == "AAAA").select(
        *on, ts_aaaa=pl.col("ts"), wait_aaaa=pl.col("wait")
    )
    pairs = a.join(aaaa, on=on, how="inner").filter(
        (pl.col("ts_a") - pl.col("ts_aaaa")).abs() <= timedelta(seconds=pair_within_s)
    )
    late = pairs.filter(
        ((pl.col("wait_a") >= late_s) & (pl.col("wait_aaaa") < 1.0))
        | ((pl.col("wait_aaaa") >= late_s) & (pl.col("wait_a") < 1.0))
    )
    if late.height < min_pairs:
        return None
    return Finding(
        id="conntrack-race",
        title=f"A/AAAA race: {late.height} of {pairs.height} query pairs had one answer ≥{late_s:g} s late",
        severity="warning",
        explanation=(
            f"{late.height} A/AAAA pairs sent together from one socket got one answer at once and "
            f"the other only after {late_s:g} s or more (or never): the signature of the "
            "conntrack insertion race on the node (two UDP packets of one socket at once, one "
            "dropped), fixed by the client's 5 s retry. Use single-request-reopen / "
            "use-vc options, NodeLocal DNSCache, or a kernel with the conntrack fix."
        ),
        evidence={
            "pairs": pairs.height,
            "late_pairs": late.height,
            "examples": late.sort("ts_a")
            .head(10)
            .select("capture", "ts_a", "client_ip", "client_port", "qname", "wait_a", "wait_aaaa"),
        },
        confirm=" ; ".join(
            f"tshark -r {_quote(p)} -Y 'dns.qry.type==1 || dns.qry.type==28' -T fields "
            "-e frame.time_relative -e udp.srcport -e dns.qry.type -e dns.time"
            for p in _capture_paths(capture)
        ),
    )


# --------------------------------------------------------------------------------------------
# running everything


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


# --------------------------------------------------------------------------------------------
# loading for the notebook


@dataclass(frozen=True)
class Inputs:
    """Loaded inputs for :func:`run_on` (each ``None`` when not given).

    Attributes
    ----------
    capture, coredns, unbound, metrics, forward, timeline
        As the parameters of :func:`run`.
    notes : Mapping[str, str]
        Input name (``capture``, ``coredns``...) -> the warnings its loader gave, joined.
    """

    capture: Any = None
    coredns: Any = None
    unbound: Any = None
    metrics: pl.DataFrame | None = None
    forward: pl.DataFrame | None = None
    timeline: Timeline | None = None
    notes: Mapping[str, str] = field(default_factory=dict)

    def given(self) -> pl.DataFrame:
        """Which inputs are loaded, how big they are and what their loaders warned about.

        Columns ``input`` (String), ``rows`` (Int64, null when not given), ``notes`` (String).
        """
        keys = ["capture", "coredns", "coredns", "unbound", "metrics", "forward"]
        rows = [
            (
                "capture (DNS transactions)",
                None if self.capture is None else self.capture.dns.height,
            ),
            (
                "CoreDNS log (queries)",
                None if self.coredns is None else self.coredns.queries.height,
            ),
            (
                "CoreDNS log (errors)",
                None if self.coredns is None else self.coredns.errors.height,
            ),
            (
                "unbound log (replies)",
                None if self.unbound is None else self.unbound.queries.height,
            ),
            ("metrics (samples)", None if self.metrics is None else self.metrics.height),
            ("forward settings", None if self.forward is None else self.forward.height),
        ]
        df = pl.DataFrame(rows, schema={"input": pl.String, "rows": pl.Int64}, orient="row")
        return df.with_columns(
            notes=pl.Series([self.notes.get(k, "") for k in keys], dtype=pl.String)
        )


def _paths(x: str | os.PathLike[str] | Sequence[str | os.PathLike[str]] | None) -> list[str]:
    if x is None:
        return []
    if isinstance(x, str | os.PathLike):
        return [os.fspath(x)]
    return [os.fspath(p) for p in x]


def load_inputs(
    *,
    capture: Sequence[str] | str | None = None,
    coredns_log: Sequence[str] | str | None = None,
    unbound_log: Sequence[str] | str | None = None,
    metrics: Sequence[str] | str | None = None,
    corefile: Sequence[str] | str | None = None,
    unbound_conf: Sequence[str] | str | None = None,
    run_json: Sequence[str] | str | None = None,
    change_time: str | None = None,
    fix_time: str | None = None,
) -> Inputs:
    """Load whichever artefacts are given (paths, lists, globs or folders; ``None``/empty: skip).

    Corefiles and unbound.conf files may be globs too (``"configs/unbound-*.conf"``). Each is
    read with its loader (``kit.read_capture``, ``kit.read_coredns_log``,
    ``kit.read_unbound_log``, ``kit.read_metrics``, ``kit.read_corefile(...).forward_settings()``,
    ``kit.read_unbound_conf``, :func:`kit.sources.timeline.timeline`). Loader errors propagate; loader
    warnings are kept in :attr:`Inputs.notes` (and shown by :meth:`Inputs.given`).
    """
    import kit
    from kit.sources.corefile import FORWARD_SCHEMA
    from kit.sources.timeline import timeline as make_timeline

    caps = _paths(capture)
    cd = _paths(coredns_log)
    ub = _paths(unbound_log)
    mt = _paths(metrics)
    from kit.sources._io import expand_sources

    cf = expand_sources(_paths(corefile), what="Corefile") if _paths(corefile) else []
    uc = (
        expand_sources(_paths(unbound_conf), suffixes=(".conf",), what="unbound.conf")
        if _paths(unbound_conf)
        else []
    )
    fwd_parts = [kit.read_corefile(p).forward_settings() for p in cf]
    fwd_parts += [kit.read_unbound_conf(p) for p in uc]
    runs = _paths(run_json)
    notes: dict[str, str] = {}

    def load(name: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        # loader warnings (rejected lines, dropped duplicates) are kept as notes for the table
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            value = fn(*args, **kwargs)
        if caught:
            notes[name] = " | ".join(str(w.message) for w in caught)
            for w in caught:
                log.info("%s: %s", name, w.message)
        return value

    return Inputs(
        capture=load("capture", kit.read_capture, caps, progress=False) if caps else None,
        coredns=load("coredns", kit.read_coredns_log, cd) if cd else None,
        unbound=load("unbound", kit.read_unbound_log, ub) if ub else None,
        metrics=load("metrics", kit.read_metrics, mt, strict=False) if mt else None,
        forward=pl.concat(fwd_parts) if fwd_parts else pl.DataFrame(schema=FORWARD_SCHEMA),
        timeline=make_timeline(change_time=change_time, fix_time=fix_time, run_json=runs or None),
        notes=notes,
    )


class Verdict(list[Finding]):
    """The findings of :func:`run_on` (a list, most severe first) and what they came from.

    Attributes
    ----------
    inputs : Inputs
        The loaded inputs the checks ran on.
    options : dict[str, Any]
        The options given to :func:`run` (``slow_threshold_s``, ``upstreams``...).
    """

    def __init__(
        self,
        findings: Sequence[Finding] = (),
        inputs: Inputs | None = None,
        options: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(findings)
        self.inputs = inputs if inputs is not None else Inputs()
        self.options: dict[str, Any] = dict(options or {})


def run_on(inputs: Inputs, **options: Any) -> Verdict:
    """:func:`run` on loaded :class:`Inputs`; ``options`` are :func:`run`'s keyword options.

    Returns a :class:`Verdict`: the list of findings, which also keeps the inputs and options
    (the report's summary card and ``dnskit findings`` read them).
    """
    found = run(
        capture=inputs.capture,
        coredns=inputs.coredns,
        unbound=inputs.unbound,
        metrics=inputs.metrics,
        forward=inputs.forward,
        timeline=inputs.timeline,
        **options,
    )
    return Verdict(found, inputs, options)


# --------------------------------------------------------------------------------------------
# the verdict: summary, coverage, JSON and Markdown


CHECKS: tuple[tuple[str, tuple[str, ...], tuple[str, ...], str], ...] = (
    ("forced-tcp", ("forced-tcp",), ("forward",), "a Corefile or unbound.conf"),
    ("syn-retransmissions", ("syn-retransmissions",), ("capture",), "a capture on the node"),
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
)
"""The checks of :func:`run`: (name, finding ids it can give, inputs it needs, what to collect).

Inputs: ``capture``, ``coredns``, ``unbound``, ``metrics``, ``forward``; ``a|b`` means either."""

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
    "truncation-tcp-fallback": "Raise the EDNS buffer size or make the answers smaller.",
}
"""What to change, by finding id (the root cause's text goes to the summary)."""

_HAS = {
    "capture": lambda i: i.capture is not None and not i.capture.dns.is_empty(),
    "coredns": lambda i: i.coredns is not None,
    "unbound": lambda i: i.unbound is not None,
    "metrics": lambda i: i.metrics is not None and not i.metrics.is_empty(),
    "forward": lambda i: i.forward is not None and not i.forward.is_empty(),
}
_INPUT_NAMES = {
    "capture": "a capture",
    "coredns": "a CoreDNS log",
    "unbound": "an unbound log",
    "metrics": "a metric export",
    "forward": "a Corefile or unbound.conf",
}


def coverage(inputs: Inputs, findings: Sequence[Finding] = ()) -> list[dict[str, Any]]:
    """Which checks could run on these inputs, which could not and what would enable them.

    Returns
    -------
    list[dict[str, Any]]
        One per entry of :data:`CHECKS`: ``check`` (name), ``ran`` (bool: its inputs are there),
        ``fired`` (ids of its findings in ``findings``), ``missing`` (what was not given, e.g.
        ``"a Corefile or unbound.conf"``; empty when it ran), ``needs`` (what to collect).
    """
    fired_ids = {f.id for f in findings}
    out = []
    for name, ids, needs, collect in CHECKS:
        missing = []
        for need in needs:
            options = need.split("|")
            if not any(_HAS[o](inputs) for o in options):
                missing.append(" or ".join(_INPUT_NAMES[o] for o in options))
        out.append(
            {
                "check": name,
                "ran": not missing,
                "fired": [i for i in ids if i in fired_ids],
                "missing": "; ".join(missing),
                "needs": collect,
            }
        )
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


def _client_dns(inputs: Inputs, upstreams: Sequence[str]) -> pl.DataFrame | None:
    """Capture transactions of the clients (not those the cache sent to its upstream)."""
    cap = inputs.capture
    if cap is None or cap.dns.is_empty():
        return None
    ups = addresses(upstreams)
    return cap.dns.filter(~pl.col("server_ip").is_in(ups)) if ups else cap.dns


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
    frames: list[tuple[pl.DataFrame, str, str, str]] = []
    if client is not None and not client.filter(pl.col("answered")).is_empty():
        frames = [(client.filter(pl.col("answered")), "capture", "latency_s", "capture")]
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
    cov = coverage(inputs, found)

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
        if cause.severity == "critical" and corroborated:
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
    ``evidence`` (numbers, strings, frames as lists of row objects), ``confirm``."""
    return {
        "id": f.id,
        "role": str(f.role),
        "severity": str(f.severity),
        "title": f.title,
        "explanation": f.explanation,
        "evidence": {str(k): json_value(v) for k, v in f.evidence.items()},
        "confirm": f.confirm,
    }


def verdict_json(found: Sequence[Finding], inputs: Inputs | None = None) -> dict[str, Any]:
    """The verdict for automation: ``summary`` (:func:`summarize`) and ``findings``
    (:func:`finding_json` each, in :data:`ROLES` order, most severe first within a role)."""
    order = {r: i for i, r in enumerate(ROLES)}
    rank = {s: i for i, s in enumerate(SEVERITIES)}
    ordered = sorted(found, key=lambda f: (order[f.role], rank[f.severity]))
    return {
        "summary": json_value(summarize(found, inputs)),
        "findings": [finding_json(f) for f in ordered],
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
    for c in s["coverage"]:
        if not c["ran"]:
            lines.append(f"not run: {c['check']} (needs {c['missing']}; none given)")
    return "\n".join(lines) + "\n"


def burst_status(
    *,
    coredns: CoreDNSLog | None = None,
    unbound: ResolverLog | None = None,
    every: str = "1m",
    min_errors: int = 10,
    critical_errors: int = 100,
) -> pl.DataFrame:
    """Why :func:`check_error_bursts` fired or not, with the numbers it looked at (a frame of
    :func:`error_bursts_result`).

    Notebook 06 shows this next to the findings, so that an absent ``upstream-error-bursts``
    finding says why (no log, no error, a peak below the threshold, or no timestamps).

    Parameters
    ----------
    coredns, unbound
        The logs given to the check (either may be None).
    every, min_errors, critical_errors
        The check's bin width (polars duration) and thresholds (errors in one bin to fire, and to
        be critical), passed on to it.

    Returns
    -------
    polars.DataFrame
        One row: ``errors`` (Int64, upstream errors with a timestamp: CoreDNS ``errors`` lines,
        ``consolidate`` summaries counted as the errors they stand for, and unbound lines at level
        ``error``), ``errors_without_ts`` (Int64, CoreDNS errors whose line has no time),
        ``peak_per_bin`` (Int64, most timed errors in one bin; 0 when none), ``peak_ts``
        (Datetime UTC, start of that bin), ``every`` (String), ``min_errors`` and
        ``critical_errors`` (Int64), ``verdict`` (String: ``fired (<severity>): ...``, ``not
        fired: ...`` or ``not checked: ...``).
    """
    result = error_bursts_result(
        coredns=coredns,
        unbound=unbound,
        every=every,
        min_errors=min_errors,
        critical_errors=critical_errors,
    )
    return pl.DataFrame(
        [{**result.numbers, "verdict": result.verdict}],
        schema={
            "errors": pl.Int64,
            "errors_without_ts": pl.Int64,
            "peak_per_bin": pl.Int64,
            "peak_ts": _UTC,
            "every": pl.String,
            "min_errors": pl.Int64,
            "critical_errors": pl.Int64,
            "verdict": pl.String,
        },
    )
