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
    CheckResult,
    Finding,
    fired,
    not_checked,
    not_fired,
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
    """The finding of :func:`forced_tcp_result` (``None`` when it did not fire)."""
    return forced_tcp_result(
        forward, corroborated=corroborated, coredns=coredns, min_tcp_errors=min_tcp_errors
    ).finding


def forced_tcp_result(
    forward: pl.DataFrame | None,
    *,
    corroborated: bool = False,
    coredns: Any = None,
    min_tcp_errors: int = 10,
) -> CheckResult:
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
    CheckResult
        ``numbers``: ``forward_rows``, ``forced_rows``. The finding's evidence: ``settings`` (the forced rows: resolver, zone, upstream, transport, source,
        line_no), ``upstreams`` (count); with ``coredns``, ``tcp_errors_logged`` (errors lines
        over tcp towards a forced upstream's address).
    """
    check = "forced-tcp"
    if forward is None:
        return not_checked(check, "no Corefile or unbound.conf given")
    if forward.is_empty():
        return not_checked(check, "the configs given forward nothing (no forward or stub zone)")
    forced = forward.filter(pl.col("force_tcp").fill_null(False))
    nums = {"forward_rows": forward.height, "forced_rows": forced.height}
    if forced.is_empty():
        transports = ", ".join(sorted(set(forward["transport"].drop_nulls().to_list())))
        return not_fired(
            check,
            f"none of {forward.height} forward setting(s) forces TCP"
            + (f" (transport: {transports})" if transports else ""),
            **nums,
        )
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
    f = Finding(
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
    return fired(f, **nums)


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
    """The finding of :func:`syn_retransmissions_result` (``None`` when it did not fire)."""
    return syn_retransmissions_result(
        capture,
        upstreams=upstreams,
        slow_threshold_s=slow_threshold_s,
        min_retransmits=min_retransmits,
        window_s=window_s,
        change_time=change_time,
    ).finding


def syn_retransmissions_result(
    capture: Any,
    *,
    upstreams: Sequence[str] | None = None,
    slow_threshold_s: float = 1.0,
    min_retransmits: int = 3,
    window_s: float = 8.0,
    change_time: datetime | None = None,
) -> CheckResult:
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
    CheckResult
        ``numbers``: ``syns``, ``syn_retransmits``, ``min_retransmits``. The finding:
        ``critical`` when slow client answers are attributed to connections with SYN
        retransmissions, else ``warning``. Evidence: ``connections``, ``syn_retransmits``
        (retransmitted SYN packets), ``failed_connections`` (no SYN/ACK seen),
        ``max_retransmits_in_window`` and ``window_start``, ``first_retransmit`` (ISO time),
        with ``change_time``: ``first_after_change_s`` (seconds, negative when before it) and
        ``retransmits_before_change``; ``slow_answers``,
        ``slow_answers_attributed``, ``per_server`` (frame), ``slow_examples`` (frame, slowest 10).
    """
    from kit.analyses.attribution import attribute_slow_answers

    check = "syn-retransmissions"
    if capture is None:
        return not_checked(check, "no capture given")
    tcp = capture.tcp.filter(pl.col("server_port") == 53)
    if upstreams:
        tcp = tcp.filter(pl.col("server_ip").is_in(addresses(upstreams)))
    syn = _syn_packets(capture, upstreams)
    retx = syn.filter(pl.col("is_retransmission"))
    nums = {"syns": syn.height, "syn_retransmits": retx.height, "min_retransmits": min_retransmits}
    if retx.height < min_retransmits:
        where = f"to {', '.join(addresses(upstreams))}" if upstreams else "to port 53"
        return not_fired(
            check,
            f"{retx.height} of {syn.height} SYNs {where} retransmitted, below {min_retransmits}",
            **nums,
        )
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
    f = Finding(
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
    return fired(f, **nums)


def check_packet_rate(
    capture: Any,
    *,
    upstreams: Sequence[str] | None = None,
    limit_pps: float = 1024.0,
    slow_threshold_s: float = 1.0,
    far_below: float = 0.5,
) -> Finding | None:
    """The finding of :func:`packet_rate_result` (``None`` when it did not fire)."""
    return packet_rate_result(
        capture,
        upstreams=upstreams,
        limit_pps=limit_pps,
        slow_threshold_s=slow_threshold_s,
        far_below=far_below,
    ).finding


def packet_rate_result(
    capture: Any,
    *,
    upstreams: Sequence[str] | None = None,
    limit_pps: float = 1024.0,
    slow_threshold_s: float = 1.0,
    far_below: float = 0.5,
) -> CheckResult:
    """Compares the packet rate of each network interface towards the resolvers with the limit.

    The AWS VPC resolver limits packets per second per network interface, whatever the
    destination: so the rate is counted per interface (one capture = one interface), over every
    packet to port 53 of the resolvers, TCP handshake and acknowledgement packets included (a
    forced-TCP cache sends 3-5 packets per query instead of 1). The rate per destination is
    given as detail (:func:`kit.analyses.rates.interface_rates`).

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
    CheckResult
        Check ``packet-rate``. Findings: ``packet-rate-limit`` (critical) when a 1 s bin of one
        interface exceeds the limit; ``packet-rate-below-limit`` (info) when there are slow
        answers but the peak stays under ``far_below`` x the limit. ``numbers`` and evidence:
        ``limit_pps``, ``peak_pps`` (busiest interface), ``peak_interface``, ``peak_ts``,
        ``peak_dst_ip`` (busiest destination), ``bins_above_limit``, ``tcp_overhead_packets``
        (TCP packets to port 53 without DNS payload: SYN, ACK, FIN), ``slow_answers``; evidence
        also ``per_interface`` and ``rates`` (per destination) frames.
    """
    from kit.analyses.rates import interface_rates

    check = "packet-rate"
    if capture is None:
        return not_checked(check, "no capture given")
    if capture.packets.is_empty():
        return not_checked(check, "the capture holds no packets")
    pk = capture.packets.filter(pl.col("dst_port") == 53)
    if upstreams:
        pk = pk.filter(pl.col("dst_ip").is_in(addresses(upstreams)))
    if pk.is_empty():
        return not_fired(check, "no packet to port 53 of the resolver(s) in the capture")
    per_if, per_dst = interface_rates(pk, every="1s", limit_pps=limit_pps)
    top = per_if.row(0, named=True)
    peak = float(top["peak_pps"])
    above = int(per_if["bins_above_limit"].sum())
    top_dst = per_dst.row(0, named=True)
    paths = _capture_paths(capture)
    confirm = " ; ".join(
        f"tshark -r {_quote(p)} -q -z io,stat,1,{_quote('udp.dstport==53 || tcp.dstport==53')}"
        for p in paths
    )
    slow = capture.dns.filter(
        (pl.col("latency_s") >= slow_threshold_s) | (~pl.col("answered") & ~pl.col("censored"))
    ).height
    overhead = int(per_if["tcp_overhead_packets"].sum())
    nums: dict[str, Any] = {
        "limit_pps": limit_pps,
        "peak_pps": peak,
        "peak_interface": top["capture"],
        "peak_ts": top["peak_ts"],
        "peak_dst_ip": top_dst["dst_ip"],
        "bins_above_limit": above,
        "tcp_overhead_packets": overhead,
        "slow_answers": slow,
    }
    ev = {**nums, "per_interface": per_if, "rates": per_dst}
    tcp_note = (
        f" {overhead} of the packets are TCP handshakes and acknowledgements (no DNS payload),"
        " which count against the limit like queries."
        if overhead
        else ""
    )
    if above:
        f = Finding(
            id="packet-rate-limit",
            title=(
                f"Packet rate of {top['capture']} to the resolver above the {limit_pps:g} pps "
                f"limit ({peak:g} pps peak)"
            ),
            severity="critical",
            explanation=(
                f"In {above} one-second bins one network interface sent more than "
                f"{limit_pps:g} packets to port 53 of the resolver(s) (peak {peak:g} pps from "
                f"{top['capture']}; busiest destination {top_dst['dst_ip']}, "
                f"{float(top_dst['peak_pps']):g} pps).{tcp_note} The AWS VPC resolver drops what "
                "exceeds 1024 packets per second per network interface, which shows as "
                "unanswered queries and client retries. Spread the load (NodeLocal DNSCache, "
                "more nodes' interfaces) or cache more; on the node, ethtool -S shows ENA's "
                "linklocal_allowance_exceeded."
            ),
            evidence=ev,
            confirm=confirm,
        )
        return fired(f, check, **nums)
    share = peak / limit_pps
    if slow and peak < far_below * limit_pps:
        f = Finding(
            id="packet-rate-below-limit",
            title=f"Packet rate far below the {limit_pps:g} pps limit ({peak:g} pps peak): not the cause",
            severity="info",
            explanation=(
                f"{slow} answers were slow, but the busiest interface ({top['capture']}) sent "
                f"at most {peak:g} packets per second to the resolver(s), {share:.0%} of the "
                f"{limit_pps:g} pps limit.{tcp_note} The per-interface packet limit does not "
                "explain the latency; look at what the packets carry (TCP handshakes, "
                "retransmissions)."
            ),
            evidence=ev,
            confirm=confirm,
        )
        return fired(f, check, **nums)
    return not_fired(
        check,
        f"peak {peak:g} pps on {top['capture']} ({share:.0%} of the {limit_pps:g} pps limit)"
        + (f" with {slow} slow answers" if slow else ", no slow answer"),
        **nums,
    )


def check_truncation(
    capture: Any, *, within_s: float = 5.0, edns_buffer: pl.DataFrame | None = None
) -> Finding | None:
    """The finding of :func:`truncation_result` (``None`` when it did not fire)."""
    return truncation_result(capture, within_s=within_s, edns_buffer=edns_buffer).finding


def truncation_result(
    capture: Any, *, within_s: float = 5.0, edns_buffer: pl.DataFrame | None = None
) -> CheckResult:
    """Fires when UDP answers had TC=1 and the same name was asked again over TCP.

    Parameters
    ----------
    capture
        A :class:`kit.sources.capture.Capture`.
    within_s
        The TCP query counts as the retry when it follows the truncated answer within this
        many seconds.
    edns_buffer
        The resolvers' configured EDNS buffer sizes (:func:`kit.findings.inputs.edns_buffer_sizes`:
        ``source``, ``line_no``, ``size``): a small one (under 1232 bytes) is named as the cause.

    Returns
    -------
    CheckResult
        ``numbers``: ``udp_answers``, ``truncated``, ``retried_over_tcp``; the finding
        (``warning``; role ``root-cause`` when the truncated answers come from the resolver's
        own small EDNS buffer, else ``mechanism``): evidence as ``numbers`` plus
        ``servers_truncating``, ``edns_buffer`` (frame, when given), ``examples`` (frame: ts,
        client_ip, qname, qtype, udp_latency_s, tcp_latency_s).
    """
    check = "truncation-tcp-fallback"
    if capture is None:
        return not_checked(check, "no capture given")
    if capture.dns.is_empty():
        return not_checked(check, "the capture holds no DNS transaction")
    # only the columns used, names lowered only on the truncated and the TCP rows (lowering
    # every row of a 10 M-packet capture costs more than the frame's own columns)
    dns = capture.dns.lazy()
    udp = pl.col("transport") == "udp"
    udp_answers = int(dns.filter(udp & pl.col("answered")).select(pl.len()).collect().item())
    key = pl.col("qname").str.to_lowercase()
    cols = ["capture", "client_ip", "server_ip", "qtype", "ts", "qname", "latency_s"]
    tc = dns.filter(udp & pl.col("tc").fill_null(False)).select(*cols, key=key).collect()
    if tc.is_empty():
        return not_fired(
            check, f"no UDP answer with TC=1 (of {udp_answers})", udp_answers=udp_answers
        )
    # a TCP query within ``within_s`` after the truncated answer: joined per name *and* time
    # bucket (``within_s`` wide; the TCP query in the answer's bucket or the next), so a name
    # truncated and retried many times does not pair every answer with every retry
    width_us = max(1, int(within_s * 1e6))
    bucket = pl.col("ts").dt.epoch("us").floordiv(width_us)
    on = ["capture", "client_ip", "server_ip", "key", "qtype", "_b"]
    tcp = dns.filter(pl.col("transport") == "tcp").select(
        "capture", "client_ip", "server_ip", "qtype", key=key, _b=bucket,
        tcp_ts=pl.col("ts"), tcp_latency_s=pl.col("latency_s"),
    )  # fmt: skip
    j = (
        tc.lazy()
        .select(
            "capture",
            "client_ip",
            "server_ip",
            "key",
            "qtype",
            "ts",
            "qname",
            udp_latency_s=pl.col("latency_s"),
            _b=pl.concat_list(bucket, bucket + 1),
        )
        .explode("_b")
        .join(tcp, on=on, how="inner")
        .filter(
            (pl.col("tcp_ts") >= pl.col("ts"))
            & (pl.col("tcp_ts") - pl.col("ts") <= timedelta(seconds=within_s))
        )
        .drop("_b")
        # the first TCP query after the answer is its retry
        .sort("ts", "tcp_ts", "capture", "client_ip", "key", "qtype", "server_ip")
        .unique(["capture", "client_ip", "key", "qtype", "ts"], keep="first", maintain_order=True)
        .collect()
    )
    paths = _capture_paths(capture)
    servers = sorted(set(tc["server_ip"].drop_nulls().to_list()))
    nums = {"udp_answers": udp_answers, "truncated": tc.height, "retried_over_tcp": j.height}
    small = (
        edns_buffer.filter(pl.col("size") < 1232)
        if edns_buffer is not None and not edns_buffer.is_empty()
        else None
    )
    cause = ""
    confirm = [
        f"tshark -r {_quote(p)} -Y 'dns.flags.truncated==1 || (tcp.port==53 && dns)'" for p in paths
    ]
    if small is not None and not small.is_empty():
        where = ", ".join(
            f"{s.rsplit('/', 1)[-1]}:{n} edns-buffer-size: {z}"
            for s, n, z in small.select("source", "line_no", "size").iter_rows()
        )
        cause = (
            f" The resolver's own EDNS buffer is small ({where}): it asks the upstream for at "
            "most that many bytes, so every larger answer comes back truncated. Raise it to "
            "1232 (the DNS flag day 2020 value)."
        )
        confirm.append(
            "grep -nE 'edns-buffer-size|bufsize' "
            + " ".join(_quote(x) for x in sorted(set(small["source"].to_list())))
        )
    f = Finding(
        id="truncation-tcp-fallback",
        title=f"{tc.height} truncated UDP answers (TC=1) from {', '.join(servers)}, "
        f"{j.height} retried over TCP"
        + (f" (edns-buffer-size: {small['size'].min()!s})" if cause and small is not None else ""),
        severity="warning",
        role="root-cause" if cause else "",
        explanation=(
            f"{tc.height} of {udp_answers} UDP answers were truncated (TC bit, from "
            f"{', '.join(servers)}) and {j.height} of the queries were asked again over TCP. "
            "Each fallback costs a TCP handshake, and if TCP to the server is slow or limited, "
            "the answer waits for it. Large answers (many A records, DNSSEC) or a small EDNS "
            "buffer cause it: check the answer sizes and the bufsize." + cause
        ),
        evidence={
            **nums,
            "servers_truncating": ", ".join(servers),
            **({"edns_buffer": small} if small is not None and not small.is_empty() else {}),
            "examples": j.select(
                "ts", "client_ip", "qname", "qtype", "udp_latency_s", "tcp_latency_s"
            ).head(10),
        },
        confirm=" ; ".join(confirm),
    )
    return fired(f, **nums)


def _race_pairs(dns: pl.DataFrame, pair_within_s: float) -> pl.DataFrame:
    """A/AAAA pairs of :func:`conntrack_race_result`, with memory bounded by the pairs found.

    One row per A query and AAAA query over UDP with the same capture, ``client_ip``,
    ``client_port``, ``server_ip`` and name (case-insensitive) whose times differ by at most
    ``pair_within_s`` seconds: ``capture``, ``client_ip``, ``client_port``, ``server_ip``,
    ``key`` (lower-case name), ``qname`` (of the A query), ``ts_a``, ``wait_a``, ``ts_aaaa``,
    ``wait_aaaa`` (seconds to the answer; ``inf`` when never answered and not censored, null
    when censored).

    Memory is bounded by the pairs found, not by how often a socket asks a name: the join is on
    one 64-bit hash of the socket and name *and* a time bucket ``pair_within_s`` wide (the AAAA
    side in its own and both neighbouring buckets), over narrow frames (row number, hash, bucket,
    time); only the pairs found are then gathered from ``dns`` and their columns compared, so a
    hash collision cannot pair two sockets or names. A client that asks one name from one port
    again and again (a fixed-port stub, a cache) no longer joins every A with every AAAA.
    """
    sock = ["capture", "client_ip", "client_port", "server_ip"]
    width_us = max(1, int(pair_within_s * 1e6))
    key = pl.col("qname").str.to_lowercase()
    d = (
        dns.lazy()
        .with_row_index("_i")
        .filter((pl.col("transport") == "udp") & pl.col("qtype").is_in(["A", "AAAA"]))
        .select(
            "_i",
            "ts",
            _a=pl.col("qtype") == "A",
            _h=pl.struct(*sock, key).hash(),
            _b=pl.col("ts").dt.epoch("us").floordiv(width_us),
        )
        .collect()
    )
    a = d.lazy().filter("_a").select(_ia="_i", _h="_h", _b="_b", _ta="ts")
    aaaa = (
        d.lazy()
        .filter(~pl.col("_a"))
        .select(
            _ib="_i",
            _h="_h",
            _b=pl.concat_list(pl.col("_b") - 1, pl.col("_b"), pl.col("_b") + 1),
            _tb="ts",
        )
        .explode("_b")
    )
    idx = (
        a.join(aaaa, on=["_h", "_b"], how="inner")
        .filter((pl.col("_ta") - pl.col("_tb")).abs() <= timedelta(seconds=pair_within_s))
        .select("_ia", "_ib")
        .collect()
    )
    del d
    wait = (
        pl.when(pl.col("answered"))
        .then(pl.col("latency_s"))
        .when(~pl.col("censored"))
        .then(pl.lit(float("inf")))
    )
    cols = [*sock, "qname", "ts", "answered", "latency_s", "censored"]
    side_a = dns.select(cols)[idx["_ia"]].select(
        *sock, key=key, qname="qname", ts_a="ts", wait_a=wait
    )
    side_b = dns.select(cols)[idx["_ib"]].select(
        *[pl.col(c).alias(f"_b_{c}") for c in sock],
        _b_key=key,
        ts_aaaa="ts",
        wait_aaaa=wait,
    )
    same = pl.all_horizontal([pl.col(c) == pl.col(f"_b_{c}") for c in [*sock, "key"]])
    pairs = pl.concat([side_a, side_b], how="horizontal").filter(same.fill_null(False))
    return pairs.select(*sock, "key", "qname", "ts_a", "wait_a", "ts_aaaa", "wait_aaaa")


def _drop_upstream_waits(
    capture: Any, late: pl.DataFrame, late_s: float
) -> tuple[pl.DataFrame, int]:
    """``late`` (pairs of :func:`_race_pairs`) without the pairs whose late query the cache
    forwarded and waited for (its attribution is ``explained``), and how many those were.

    Only the late queries are looked up: the attribution of the capture's answers at least
    ``late_s`` slow (and unanswered ones), joined on the query's socket, name and time."""
    from kit.analyses.attribution import attribute_slow_answers

    sock = ["capture", "client_ip", "client_port", "server_ip"]
    side = late.with_row_index("_p").select(
        "_p",
        *sock,
        "key",
        ts=pl.when(pl.col("wait_a") >= late_s).then(pl.col("ts_a")).otherwise(pl.col("ts_aaaa")),
    )
    att = (
        attribute_slow_answers(capture, slow_s=late_s)
        .filter(pl.col("explained"))
        .select(*sock, "ts", key=pl.col("qname").str.to_lowercase())
        .unique()
    )
    waited = side.join(att, on=[*sock, "key", "ts"], how="semi")["_p"]
    keep = late.with_row_index("_p").filter(~pl.col("_p").is_in(waited.implode())).drop("_p")
    return keep, waited.len()


def check_conntrack_race(
    capture: Any,
    *,
    pair_within_s: float = 0.01,
    late_s: float = 4.5,
    min_pairs: int = 3,
) -> Finding | None:
    """The finding of :func:`conntrack_race_result` (``None`` when it did not fire)."""
    return conntrack_race_result(
        capture, pair_within_s=pair_within_s, late_s=late_s, min_pairs=min_pairs
    ).finding


def conntrack_race_result(
    capture: Any,
    *,
    pair_within_s: float = 0.01,
    late_s: float = 4.5,
    min_pairs: int = 3,
) -> CheckResult:
    """Fires when A and AAAA sent together from one socket get one answer ~5 s late or never.

    glibc sends the A and AAAA queries of one lookup from the same socket at once; when both race
    through conntrack on the node, one can be dropped, and the client only retries after its 5 s
    timeout. Counted: pairs (same capture, client ip and port, server, name; one A, one AAAA,
    within ``pair_within_s``) where one answer arrives at least ``late_s`` seconds after its query
    (or never, uncensored) while the other arrives in under 1 s.

    A late answer the cache itself waited for is not a dropped packet: when the capture shows
    the cache's upstream leg for the late query (:func:`kit.analyses.attribution.attribute_slow_answers`:
    its upstream exchange or TCP connection started at once and took most of the wait, or
    retransmitted its SYN), the query reached the cache and the delay is upstream's (forced TCP
    with dropped SYNs makes exactly such pairs, the A answered from the cache, the AAAA after
    the SYN backoff). Those pairs are counted in ``late_pairs_upstream`` and not in
    ``late_pairs``.

    Returns
    -------
    CheckResult
        ``numbers``: ``pairs``, ``late_pairs``, ``late_pairs_upstream``, ``min_pairs``; the
        finding (``warning``): evidence ``pairs``, ``late_pairs``, ``late_pairs_upstream``,
        ``examples`` (frame).
    """
    check = "conntrack-race"
    if capture is None:
        return not_checked(check, "no capture given")
    if capture.dns.is_empty():
        return not_checked(check, "the capture holds no DNS transaction")
    pairs = _race_pairs(capture.dns, pair_within_s)
    late = pairs.filter(
        ((pl.col("wait_a") >= late_s) & (pl.col("wait_aaaa") < 1.0))
        | ((pl.col("wait_aaaa") >= late_s) & (pl.col("wait_a") < 1.0))
    )
    upstream = 0
    if late.height >= min_pairs:
        late, upstream = _drop_upstream_waits(capture, late, late_s)
    nums = {
        "pairs": pairs.height,
        "late_pairs": late.height,
        "late_pairs_upstream": upstream,
        "min_pairs": min_pairs,
    }
    if late.height < min_pairs:
        why = (
            f" ({upstream} more waited on the cache's upstream leg: the query reached the cache, "
            "no packet was dropped)"
            if upstream
            else ""
        )
        return not_fired(
            check,
            f"{late.height} of {pairs.height} A/AAAA pairs had one answer ≥{late_s:g} s late, "
            f"below {min_pairs}{why}",
            **nums,
        )
    f = Finding(
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
            "late_pairs_upstream": upstream,
            "examples": late.sort("ts_a", "capture", "client_ip", "client_port", "qname", "ts_aaaa")
            .head(10)
            .select("capture", "ts_a", "client_ip", "client_port", "qname", "wait_a", "wait_aaaa"),
        },
        confirm=" ; ".join(
            f"tshark -r {_quote(p)} -Y 'dns.qry.type==1 || dns.qry.type==28' -T fields "
            "-e frame.time_relative -e udp.srcport -e dns.qry.type -e dns.time"
            for p in _capture_paths(capture)
        ),
    )
    return fired(f, **nums)


def upstream_unreachable_result(
    capture: Any,
    *,
    upstreams: Sequence[str] | None = None,
    every: str = "5s",
    max_answered_share: float = 0.1,
    min_queries_per_bin: int = 3,
    min_unanswered: int = 20,
    critical_s: float = 10.0,
) -> CheckResult:
    """Fires when UDP queries from the cache to its upstream go unanswered for a stretch of time.

    The capture's UDP queries to port 53 of ``upstreams`` are binned per ``every``; a bin is
    *dark* when it holds at least ``min_queries_per_bin`` queries and at most
    ``max_answered_share`` of them were answered. Unanswered queries the capture cannot judge
    (``censored``: it ended before an answer could come) are left out. The cache's own retries
    (the same name and type asked of the upstream again while unanswered) and their intervals
    show its retry timers. TCP is not involved: a query over TCP whose SYNs were dropped is
    :func:`syn_retransmissions_result`'s.

    Parameters
    ----------
    capture
        A :class:`kit.sources.capture.Capture` taken on the cache's node.
    upstreams
        The upstream addresses (:func:`kit.findings.infer_upstreams`).
    every
        Bin width (polars duration).
    max_answered_share, min_queries_per_bin
        What makes a bin dark (see above).
    min_unanswered
        Fewest unanswered queries in dark bins to fire.
    critical_s
        ``critical`` when the dark bins cover at least this many seconds, else ``warning``.

    Returns
    -------
    CheckResult
        Check ``upstream-unreachable``. ``numbers``: ``udp_queries``, ``answered``,
        ``unanswered`` (uncensored), ``dark_bins``, ``dark_s``, ``unanswered_in_dark_bins``,
        ``retries`` (re-sent queries), ``retry_interval_p50_s``. The finding's evidence adds
        ``first_dark``, ``last_dark`` (ISO), ``tcp_connections`` (to the upstream), ``per_server``
        and ``bins`` (frames).
    """
    from kit.timeutil import parse_duration

    check = "upstream-unreachable"
    if capture is None:
        return not_checked(check, "no capture given")
    ups = addresses(upstreams or [])
    if not ups:
        return not_checked(check, "no upstream known (none in the configs, none seen forwarding)")
    q = capture.dns.filter(
        (pl.col("transport") == "udp") & pl.col("server_ip").is_in(ups) & pl.col("ts").is_not_null()
    )
    if q.is_empty():
        return not_fired(check, f"no UDP query to {', '.join(ups)} in the capture", udp_queries=0)
    q = q.filter(pl.col("answered") | ~pl.col("censored").fill_null(False))
    width_s = parse_duration(every, what="every")
    bins = (
        q.group_by("server_ip", pl.col("ts").dt.truncate(every).alias("bin"))
        .agg(
            queries=pl.len().cast(pl.UInt32),
            answered=pl.col("answered").sum().cast(pl.UInt32),
        )
        .with_columns(answered_share=pl.col("answered") / pl.col("queries"))
        .with_columns(
            dark=(pl.col("queries") >= min_queries_per_bin)
            & (pl.col("answered_share") <= max_answered_share)
        )
        .sort("server_ip", "bin")
    )
    dark = bins.filter(pl.col("dark"))
    unanswered = q.filter(~pl.col("answered"))
    in_dark = unanswered.with_columns(bin=pl.col("ts").dt.truncate(every)).join(
        dark.select("server_ip", "bin"), on=["server_ip", "bin"], how="semi"
    )
    # the cache's retries: the same name and type asked again while the earlier one was unanswered
    key = [pl.col("qname").str.to_lowercase(), pl.col("qtype")]
    ordered = q.sort("ts").with_columns(
        gap_s=(pl.col("ts") - pl.col("ts").shift(1).over(*key, "server_ip")).dt.total_microseconds()
        / 1e6,
        prev_answered=pl.col("answered").shift(1).over(*key, "server_ip"),
    )
    retries = ordered.filter(
        pl.col("gap_s").is_not_null() & (pl.col("gap_s") <= 30) & ~pl.col("prev_answered")
    )
    p50 = retries["gap_s"].median() if not retries.is_empty() else None
    dark_s = dark.height * width_s
    nums: dict[str, Any] = {
        "udp_queries": q.height,
        "answered": int(q["answered"].sum()),
        "unanswered": unanswered.height,
        "dark_bins": dark.height,
        "dark_s": dark_s,
        "unanswered_in_dark_bins": in_dark.height,
        "retries": retries.height,
        "retry_interval_p50_s": float(p50) if p50 is not None else None,  # type: ignore[arg-type]
    }
    if in_dark.height < min_unanswered:
        share = nums["answered"] / q.height
        return not_fired(
            check,
            f"{nums['answered']} of {q.height} UDP queries to {', '.join(ups)} answered "
            f"({share:.0%}); {in_dark.height} unanswered in {dark.height} bin(s) of {every} with "
            f"at most {max_answered_share:.0%} answered, below {min_unanswered}",
            **nums,
        )
    servers = sorted(set(dark["server_ip"].to_list()))
    tcp_conns = capture.tcp.filter(
        (pl.col("server_port") == 53) & pl.col("server_ip").is_in(servers)
    ).height
    first, last = dark["bin"].min(), dark["bin"].max()
    per_server = (
        q.group_by("server_ip")
        .agg(
            udp_queries=pl.len().cast(pl.UInt32),
            answered=pl.col("answered").sum().cast(pl.UInt32),
        )
        .sort("server_ip")
    )
    gaps = retries["gap_s"].round(1).value_counts(sort=True).head(5)
    timers = ", ".join(f"{g:g} s" for g in sorted(gaps["gap_s"].to_list()))
    paths = _capture_paths(capture)
    f = Finding(
        id="upstream-unreachable",
        title=(
            f"Upstream {', '.join(servers)} unreachable over UDP: {in_dark.height} queries "
            f"unanswered for {dark_s:g} s"
        ),
        severity="critical" if dark_s >= critical_s else "warning",
        explanation=(
            f"From {first:%H:%M:%S} UTC the cache's UDP queries to {', '.join(servers)} went "
            f"unanswered: {dark.height} bins of {every} with at most {max_answered_share:.0%} "
            f"answered, {in_dark.height} queries without an answer. The cache re-sent "
            f"{retries.height} of them on its own retry timers"
            + (f" (intervals {timers})" if timers else "")
            + ", then gave up and answered its clients SERVFAIL or nothing. "
            + (
                "No TCP was involved (no TCP connection to the upstream): the packets or the "
                "answers are lost on the way (a firewall, a security group, the upstream down). "
                if tcp_conns == 0
                else f"The capture also holds {tcp_conns} TCP connection(s) to it. "
            )
            + "Check reachability of the upstream on UDP port 53 from the node (dig @upstream), "
            "and its firewall and logs."
        ),
        evidence={
            **nums,
            "first_dark": first.isoformat(),  # type: ignore[union-attr]
            "last_dark": last.isoformat(),  # type: ignore[union-attr]
            "tcp_connections": tcp_conns,
            "per_server": per_server,
            "bins": dark.select("server_ip", "bin", "queries", "answered"),
        },
        confirm=" ; ".join(
            f"tshark -r {_quote(p)} -q -z io,stat,{width_s:g},"
            + _quote(f"udp.dstport==53 && {_ip_filter(servers)}")
            + ","
            + _quote(f"udp.srcport==53 && {_ip_filter(servers, 'ip.src', 'ipv6.src')}")
            for p in paths
        ),
    )
    return fired(f, **nums)


def check_upstream_unreachable(capture: Any, **options: Any) -> Finding | None:
    """The finding of :func:`upstream_unreachable_result` (``None`` when it did not fire)."""
    return upstream_unreachable_result(capture, **options).finding
