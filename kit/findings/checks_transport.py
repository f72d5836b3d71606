"""Checks on the transport towards the upstream: forced TCP, SYN retransmissions, packet rate
against the VPC resolver limit, truncation and TCP fallback, the conntrack race.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import polars as pl

from kit.findings._util import _capture_paths, _ip_filter, _max_in_window, _quote
from kit.findings.model import (
    Finding,
)
from kit.net import address, addresses

if TYPE_CHECKING:
    pass


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
        :func:`kit.analyses.attribution.attribute_slow_answers`.
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
    from kit.analyses.attribution import attribute_slow_answers

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
        :func:`kit.analyses.rates.rate_summary`).
    """
    from kit.analyses.rates import packet_rates, rate_summary

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
