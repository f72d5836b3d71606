"""Checks on node evidence (``nstat``, ``conntrack -S``, ``ethtool -S``, ``ip -s link``, read by
:func:`kit.sources.node.read_node_evidence`): counters that grew between a before and an after
snapshot name a cause the capture can only suggest.

- ``ena-allowance-exceeded``: ENA's ``linklocal_allowance_exceeded`` or
  ``pps_allowance_exceeded`` grew (critical: packets to the VPC resolver, or all packets above
  the instance's packet rate, were dropped; confirms ``packet-rate-limit``);
  ``conntrack_allowance_exceeded``, ``bw_in_allowance_exceeded``, ``bw_out_allowance_exceeded``
  grew (warning).
- ``conntrack-insert-failed``: ``conntrack -S`` ``insert_failed`` grew (warning: packets dropped
  because their conntrack entry could not be inserted, the A/AAAA race of glibc's parallel
  queries through DNAT; confirms ``conntrack-race``).
- ``udp-receive-buffer-errors``: nstat ``UdpRcvbufErrors`` (``Udp6RcvbufErrors``) grew (warning:
  datagrams dropped because a socket's receive buffer was full: the resolver does not read its
  queries or answers fast enough).

With one snapshot only (no ``before`` file) a counter is a total since boot or the driver's last
reset: a non-zero total is reported as ``info`` (it says the limit was hit, not when).

Each check returns a :class:`~kit.findings.model.CheckResult` (fired, not fired or not checked,
with the numbers); :func:`node_results` runs them all.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import polars as pl

from kit.findings._util import _quote
from kit.findings.model import CheckResult, Finding

__all__ = [
    "NODE_CHECKS",
    "check_conntrack_insert_failed",
    "check_ena_allowance",
    "check_udp_receive_errors",
    "node_results",
]

_ENA_CRITICAL = ("linklocal_allowance_exceeded", "pps_allowance_exceeded")
_ENA_WARNING = (
    "conntrack_allowance_exceeded",
    "bw_in_allowance_exceeded",
    "bw_out_allowance_exceeded",
)
_ENA_MEANING = {
    "linklocal_allowance_exceeded": "packets to link-local services (the VPC resolver, the "
    "instance metadata service, Time Sync) dropped above the per-interface packet limit",
    "pps_allowance_exceeded": "packets queued or dropped above the instance's packets-per-second "
    "limit",
    "conntrack_allowance_exceeded": "packets dropped because the instance's connection-tracking "
    "limit was reached",
    "bw_in_allowance_exceeded": "packets queued or dropped above the inbound bandwidth limit",
    "bw_out_allowance_exceeded": "packets queued or dropped above the outbound bandwidth limit",
}
_UDP_RCVBUF = ("UdpRcvbufErrors", "Udp6RcvbufErrors")


def _deltas(node: Any, kind: str, counters: Sequence[str]) -> pl.DataFrame:
    from kit.sources.node import deltas

    df = node.counters.filter((pl.col("kind") == kind) & pl.col("counter").is_in(list(counters)))
    return deltas(df)


def _files(d: pl.DataFrame) -> list[str]:
    return sorted(set(d["first_source"].to_list()) | set(d["last_source"].to_list()))


def _grown(d: pl.DataFrame) -> pl.DataFrame:
    return d.filter(pl.col("delta") > 0)


def _totals(d: pl.DataFrame) -> pl.DataFrame:
    return d.filter(pl.col("delta").is_null() & (pl.col("last") > 0))


def _fmt(n: int) -> str:
    return f"{n:,}"


def _table(d: pl.DataFrame) -> pl.DataFrame:
    return d.select(
        "host", "interface", "cpu", "counter", "first", "last", "delta", "snapshots"
    ).sort("host", "counter", "interface", "cpu", nulls_last=True)


def check_ena_allowance(node: Any) -> CheckResult:
    """ENA allowance counters of ``ethtool -S`` that grew (or, with one snapshot, are non-zero).

    Parameters
    ----------
    node
        :class:`kit.sources.node.NodeCounters` (``None``: not checked).
    """
    check = "ena-allowance-exceeded"
    if node is None or node.counters.filter(pl.col("kind") == "ethtool_stats").is_empty():
        return CheckResult(check, "not checked", "no ethtool -S output among the node evidence")
    d = _deltas(node, "ethtool_stats", _ENA_CRITICAL + _ENA_WARNING)
    if d.is_empty():
        return CheckResult(
            check,
            "not checked",
            "the ethtool -S output has no ENA allowance counters (not an ENA interface, or an "
            "ENA driver older than 2.2.10)",
        )
    grown, totals = _grown(d), _totals(d)
    numbers = {
        f"{r['counter']}@{r['interface'] or '?'}": r["delta"]
        if r["delta"] is not None
        else r["last"]
        for r in d.iter_rows(named=True)
    }
    if grown.is_empty() and totals.is_empty():
        return CheckResult(
            check,
            "not fired",
            f"every ENA allowance counter stayed at {'its value' if d['delta'].is_not_null().any() else '0'}"
            f" ({d.height} counters on {d['interface'].n_unique()} interface(s))",
            numbers,
        )
    hit = grown if not grown.is_empty() else totals
    critical = not grown.filter(pl.col("counter").is_in(list(_ENA_CRITICAL))).is_empty()
    severity = "critical" if critical else ("warning" if not grown.is_empty() else "info")
    worst = hit.sort(
        pl.col("counter").is_in(list(_ENA_CRITICAL)), pl.coalesce("delta", "last"), descending=True
    ).row(0, named=True)
    amount = worst["delta"] if worst["delta"] is not None else worst["last"]
    iface = worst["interface"] or "the interface"
    how = (
        f"grew by {_fmt(amount)}"
        if worst["delta"] is not None
        else f"is {_fmt(amount)} since the last reset"
    )
    title = f"ENA {worst['counter']} {how} on {iface}"
    parts = [
        f"{r['counter']} on {r['interface'] or '?'}: "
        + (
            f"+{_fmt(r['delta'])} between {r['first_source']} and {r['last_source']}"
            if r["delta"] is not None
            else f"{_fmt(r['last'])} in {r['last_source']} (one snapshot: a total since the "
            "driver's last reset)"
        )
        + f" ({_ENA_MEANING[r['counter']]})"
        for r in hit.iter_rows(named=True)
    ]
    explanation = (
        "The instance's network limits dropped or queued packets: "
        + "; ".join(parts)
        + ". "
        + (
            "linklocal_allowance_exceeded counts packets to the VPC resolver (169.254.169.253) "
            "above the 1024 packets per second each network interface may send to it: DNS "
            "queries lost there come back as client retries after 5 s. This confirms the "
            "packet-rate-limit cause; spread the queries over more interfaces (NodeLocal "
            "DNSCache on every node) or cache more."
            if "linklocal_allowance_exceeded" in set(hit["counter"])
            else "Compare with the instance type's limits; the counters only grow while a "
            "limit is exceeded."
        )
        + (
            ""
            if not grown.is_empty()
            else " With one snapshot only this says the limit was hit since the last reset, "
            "not when: collect ethtool -S before and after the incident."
        )
    )
    files = _files(hit)
    finding = Finding(
        id=check,
        title=title,
        severity=severity,
        explanation=explanation,
        evidence={
            "counters": _table(hit),
            **{
                f"{r['counter']}@{r['interface'] or '?'}": (
                    r["delta"] if r["delta"] is not None else r["last"]
                )
                for r in hit.iter_rows(named=True)
            },
        },
        confirm="grep -H allowance_exceeded " + " ".join(_quote(f) for f in files),
        role="root-cause",
    )
    return CheckResult(check, "fired", title, numbers, finding)


def check_conntrack_insert_failed(node: Any) -> CheckResult:
    """``conntrack -S`` ``insert_failed`` summed over CPUs grew (or, one snapshot, is non-zero).

    Parameters
    ----------
    node
        :class:`kit.sources.node.NodeCounters` (``None``: not checked).
    """
    check = "conntrack-insert-failed"
    if node is None or node.counters.filter(pl.col("kind") == "conntrack_stats").is_empty():
        return CheckResult(check, "not checked", "no conntrack -S output among the node evidence")
    d = _deltas(node, "conntrack_stats", ("insert_failed", "drop", "clash_resolve", "early_drop"))
    per = d.group_by("host", "counter").agg(
        delta=pl.col("delta").sum(),
        last=pl.col("last").sum(),
        grown=pl.col("delta").is_not_null().any(),
        cpus=pl.col("cpu").n_unique(),
    )
    failed = per.filter(pl.col("counter") == "insert_failed")
    if failed.is_empty():
        return CheckResult(check, "not checked", "the conntrack -S output has no insert_failed")
    numbers: dict[str, Any] = {
        f"{r['counter']}@{r['host']}": (r["delta"] if r["grown"] else r["last"])
        for r in per.iter_rows(named=True)
    }
    grew = failed.filter(pl.col("grown") & (pl.col("delta") > 0))
    totals = failed.filter(~pl.col("grown") & (pl.col("last") > 0))
    if grew.is_empty() and totals.is_empty():
        return CheckResult(
            check,
            "not fired",
            "insert_failed did not grow"
            if failed["grown"].any()
            else "insert_failed is 0 (one snapshot)",
            numbers,
        )
    hit = grew if not grew.is_empty() else totals
    severity = "warning" if not grew.is_empty() else "info"
    total = int(hit["delta"].sum() if not grew.is_empty() else hit["last"].sum())
    others = {
        r["counter"]: (r["delta"] if r["grown"] else r["last"])
        for r in per.filter(pl.col("counter") != "insert_failed").iter_rows(named=True)
    }
    how = f"grew by {_fmt(total)}" if not grew.is_empty() else f"is {_fmt(total)} since boot"
    title = (
        f"conntrack insert_failed {how}: packets dropped when their connection could not be tracked"
    )
    explanation = (
        f"conntrack -S shows insert_failed {how} over all CPUs"
        + (
            " ("
            + ", ".join(
                f"{k} {v:+,}" if not grew.is_empty() else f"{k} {v:,}"
                for k, v in others.items()
                if v
            )
            + ")"
            if any(others.values())
            else ""
        )
        + ". A failed insert drops the packet: with glibc sending the A and AAAA queries in "
        "parallel from one socket through a DNAT-ed service address, the second query's entry "
        "races the first's and loses, and that query is answered only after the resolver's 5 s "
        "retry. This confirms the conntrack-race cause; options single-request-reopen (or "
        "use-vc), or NodeLocal DNSCache, avoid it."
        + (
            ""
            if not grew.is_empty()
            else " With one snapshot only this is a total since boot: collect conntrack -S "
            "before and after the incident to see it grow."
        )
    )
    files = sorted(
        set(node.counters.filter(pl.col("kind") == "conntrack_stats")["source"].to_list())
    )
    finding = Finding(
        id=check,
        title=title,
        severity=severity,
        explanation=explanation,
        evidence={
            "insert_failed": total,
            **{k: v for k, v in others.items() if v is not None},
            "counters": _table(d.filter(pl.col("counter") == "insert_failed")),
        },
        confirm="grep -H -o 'insert_failed=[0-9]*' " + " ".join(_quote(f) for f in files),
        role="root-cause",
    )
    return CheckResult(check, "fired", title, numbers, finding)


def check_udp_receive_errors(node: Any) -> CheckResult:
    """nstat ``UdpRcvbufErrors`` (and ``Udp6RcvbufErrors``) that grew (or, one snapshot, are
    non-zero).

    Parameters
    ----------
    node
        :class:`kit.sources.node.NodeCounters` (``None``: not checked).
    """
    check = "udp-receive-buffer-errors"
    if node is None or node.counters.filter(pl.col("kind") == "nstat").is_empty():
        return CheckResult(check, "not checked", "no nstat output among the node evidence")
    d = _deltas(node, "nstat", (*_UDP_RCVBUF, "UdpInErrors", "Udp6InErrors", "UdpInDatagrams"))
    errs = d.filter(pl.col("counter").is_in(list(_UDP_RCVBUF)))
    if errs.is_empty():
        return CheckResult(check, "not checked", "the nstat output has no UdpRcvbufErrors")
    numbers = {
        f"{r['counter']}@{r['host']}": (r["delta"] if r["delta"] is not None else r["last"])
        for r in d.iter_rows(named=True)
    }
    grown, totals = _grown(errs), _totals(errs)
    if grown.is_empty() and totals.is_empty():
        return CheckResult(check, "not fired", "UdpRcvbufErrors did not grow", numbers)
    hit = grown if not grown.is_empty() else totals
    severity = "warning" if not grown.is_empty() else "info"
    total = int(hit["delta"].sum() if not grown.is_empty() else hit["last"].sum())
    received = d.filter(pl.col("counter") == "UdpInDatagrams")
    rec = (
        int(received["delta"].sum())
        if not received.is_empty() and received["delta"].is_not_null().all()
        else None
    )
    how = f"grew by {_fmt(total)}" if not grown.is_empty() else f"is {_fmt(total)} since boot"
    share = f" (and {_fmt(rec)} were received)" if rec is not None else ""
    title = f"Datagrams dropped at full UDP socket buffers: UdpRcvbufErrors {how}"
    explanation = (
        f"nstat's UdpRcvbufErrors {how}{share}: the kernel dropped UDP datagrams because the "
        "receiving socket's buffer was full. On a DNS node that is the resolver not reading "
        "its queries (or its upstream answers) fast enough: each dropped query costs the "
        "client a retry (5 s with glibc). Check the resolver's CPU and its so-rcvbuf / "
        "net.core.rmem_max."
        + (
            ""
            if not grown.is_empty()
            else " With one snapshot only this is a total since boot: collect nstat -asz "
            "before and after the incident."
        )
    )
    files = _files(hit)
    finding = Finding(
        id=check,
        title=title,
        severity=severity,
        explanation=explanation,
        evidence={
            "UdpRcvbufErrors": total,
            **({"UdpInDatagrams": rec} if rec is not None else {}),
            "counters": _table(hit),
        },
        confirm="grep -H -E '^Udp6?RcvbufErrors' " + " ".join(_quote(f) for f in files),
        role="mechanism",
    )
    return CheckResult(check, "fired", title, numbers, finding)


NODE_CHECKS = (check_ena_allowance, check_conntrack_insert_failed, check_udp_receive_errors)
"""The checks on node evidence, in the order :func:`node_results` runs them."""


def node_results(node: Any) -> list[CheckResult]:
    """Every node evidence check on ``node`` (:class:`kit.sources.node.NodeCounters` or
    ``None``), fired or not."""
    return [check(node) for check in NODE_CHECKS]
