"""TCP towards DNS servers: the one home of SYN counting in the analyses.

:func:`syn_packets` is the one place the analyses pick SYNs (without ACK, on the shared
predicate :func:`kit.net.syn_expr`) out of ``Capture.packets``; :func:`syn_retransmissions` bins
them, :func:`connection_summary` and :func:`connect_failures` count per connection
(``Capture.tcp``), :func:`syn_drill_down` shows tshark's own analysis of the worst connection.

Timers
------
Linux retransmits an unanswered SYN after the initial RTO (1 s, RFC 6298) and doubles the wait each
time, so a connection whose first *k* SYNs were lost completes after 1, 3, 7, 15... s
(:func:`syn_ladder`). Client latencies piling up at those values
(:func:`kit.analyses.latency.latency_modes_by`, :func:`match_ladder`) betray lost SYNs towards the
upstream.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl

from kit.analyses.latency import match_timers
from kit.net import addresses, as_list, is_syn, syn_expr
from kit.timeutil import UTC as _UTC
from kit.timeutil import time_bins

if TYPE_CHECKING:
    from kit.sources.capture import Capture


log = logging.getLogger(__name__)

__all__ = [
    "DRILL_DOWN_SCHEMA",
    "LADDER_SCHEMA",
    "connect_failures",
    "connection_summary",
    "match_ladder",
    "syn_drill_down",
    "syn_ladder",
    "syn_packets",
    "syn_retransmissions",
]


#: :func:`syn_ladder` output.
LADDER_SCHEMA = pl.Schema(
    {"retry": pl.UInt32, "rto_s": pl.Float64, "timer_s": pl.Float64, "label": pl.String}
)


def syn_packets(
    packets: pl.DataFrame,
    *,
    server_ips: str | Sequence[str] | None = None,
    ports: Sequence[int] | None = (53,),
) -> pl.DataFrame:
    """The TCP SYN packets without ACK (connection attempts, first and retransmitted) of a capture.

    The one place the kit picks SYNs out of ``Capture.packets``: :func:`syn_retransmissions` and
    the ``syn-retransmissions`` finding count these rows.

    Parameters
    ----------
    packets
        ``Capture.packets``.
    server_ips
        Only SYNs sent to these addresses (``dst_ip``; normalised by :func:`kit.net.addresses`,
        so ``dns://1.2.3.4`` and ``1.2.3.4:53`` work); ``None`` or empty: all.
    ports
        Only SYNs sent to these destination ports (default: DNS, 53); ``None``, or a frame
        without ``dst_port`` (a hand-made selection of columns): any port.

    Returns
    -------
    polars.DataFrame
        The rows of ``packets`` that are SYNs without ACK, in capture order.
    """
    keep = (pl.col("transport") == "tcp") & syn_expr()
    if ports is not None and "dst_port" in packets.columns:
        keep = keep & pl.col("dst_port").is_in(list(ports))
    syn = packets.filter(keep.fill_null(False))
    ips = addresses(server_ips)
    if ips:
        syn = syn.filter(pl.col("dst_ip").is_in(ips))
    return syn


def syn_retransmissions(
    packets: pl.DataFrame,
    *,
    every: str = "1s",
    by: Sequence[str] = ("capture", "dst_ip"),
    server_ips: Sequence[str] | None = None,
    ports: Sequence[int] | None = (53,),
) -> pl.DataFrame:
    """SYNs (without ACK) per time bin: new connection attempts and retransmitted SYNs.

    Parameters
    ----------
    packets
        ``Capture.packets``.
    every
        Bin width, a polars duration.
    by
        Group columns (default: per capture and destination, i.e. per upstream).
    server_ips
        Only SYNs sent to these addresses (``dst_ip``); ``None``: all.
    ports
        Only SYNs sent to these destination ports (default 53); ``None``: any port
        (:func:`syn_packets`).

    Returns
    -------
    polars.DataFrame
        ``ts`` Datetime(us, UTC) bin start; the ``by`` columns; ``syns`` UInt32 (all SYN packets
        without ACK); ``first_syns`` UInt32 (not flagged as retransmission by tshark: connection
        attempts); ``retransmitted_syns`` UInt32 (tshark's ``tcp.analysis.retransmission``).
        Bins without SYNs are absent. Sorted by the ``by`` columns and ``ts``.
    """
    by = list(by)
    syn = syn_packets(packets, server_ips=server_ips, ports=ports)
    retx = pl.col("is_retransmission").fill_null(False)
    return (
        syn.with_columns(ts=pl.col("ts").dt.truncate(every))
        .group_by([*by, "ts"])
        .agg(
            syns=pl.len().cast(pl.UInt32),
            first_syns=(~retx).sum().cast(pl.UInt32),
            retransmitted_syns=retx.sum().cast(pl.UInt32),
        )
        .select("ts", *by, "syns", "first_syns", "retransmitted_syns")
        .sort([*by, "ts"])
    )


def connection_summary(
    tcp: pl.DataFrame,
    *,
    by: Sequence[str] = ("capture", "server_ip"),
    server_ips: Sequence[str] | None = None,
) -> pl.DataFrame:
    """Per group of port-53 TCP connections: how many opened, failed, retransmitted SYNs; handshake times.

    Parameters
    ----------
    tcp
        ``Capture.tcp``.
    by
        Group columns.
    server_ips
        Only connections to these servers; ``None``: all.

    Returns
    -------
    polars.DataFrame
        The ``by`` columns; ``connections`` UInt32; ``established`` UInt32 (a SYN/ACK was seen);
        ``not_established`` UInt32 (a SYN was seen but no SYN/ACK); ``already_open`` UInt32 (neither
        captured); ``with_syn_retransmits`` UInt32 (connections that re-sent their SYN);
        ``syn_retransmits`` UInt32 (retransmitted SYNs in total); ``max_syn_retransmits`` UInt32;
        ``retransmit_share`` Float64 (``with_syn_retransmits / connections``); ``handshake_p50_s``,
        ``handshake_p99_s``, ``handshake_max_s`` Float64 seconds (first SYN to SYN/ACK, nearest
        rank). Sorted by ``syn_retransmits`` descending, then the ``by`` columns.
    """
    by = list(by)
    ips = as_list(server_ips)
    if ips is not None:
        tcp = tcp.filter(pl.col("server_ip").is_in(ips))
    hs = pl.col("handshake_s")
    return (
        tcp.group_by(by)
        .agg(
            connections=pl.len().cast(pl.UInt32),
            established=(pl.col("established") == True).sum().cast(pl.UInt32),  # noqa: E712
            not_established=(pl.col("established") == False).sum().cast(pl.UInt32),  # noqa: E712
            already_open=pl.col("established").is_null().sum().cast(pl.UInt32),
            with_syn_retransmits=(pl.col("syn_retransmits") > 0).sum().cast(pl.UInt32),
            syn_retransmits=pl.col("syn_retransmits").cast(pl.Int64).sum().cast(pl.UInt32),
            max_syn_retransmits=pl.col("syn_retransmits").max().cast(pl.UInt32),
            handshake_p50_s=hs.quantile(0.5, interpolation="nearest"),
            handshake_p99_s=hs.quantile(0.99, interpolation="nearest"),
            handshake_max_s=hs.max(),
        )
        .with_columns(retransmit_share=pl.col("with_syn_retransmits") / pl.col("connections"))
        .sort(["syn_retransmits", *by], descending=[True] + [False] * len(by))
    )


def syn_ladder(*, initial_rto_s: float = 1.0, retries: int = 4) -> pl.DataFrame:
    """The SYN retransmission ladder: when a connection completes if its first SYNs were lost.

    Linux sends the first SYN, waits the initial RTO (1 s, RFC 6298 section 2), and doubles the
    wait after each retransmission (``net.ipv4.tcp_syn_retries`` bounds the count, 6 by default).
    A connection whose first *k* SYNs were lost completes ``initial_rto_s * (2**k - 1)`` seconds
    after the first one: 1, 3, 7, 15 s.

    Parameters
    ----------
    initial_rto_s
        Initial retransmission timeout, seconds.
    retries
        How many rungs to return.

    Returns
    -------
    polars.DataFrame
        :data:`LADDER_SCHEMA`: ``retry`` UInt32 (1..retries, the k-th retransmitted SYN);
        ``rto_s`` Float64 (the wait before it, seconds); ``timer_s`` Float64 (cumulative wait
        since the first SYN, seconds); ``label`` String (e.g. ``"SYN retry 2: 3 s"``).
    """
    rows = [
        {
            "retry": k,
            "rto_s": initial_rto_s * 2 ** (k - 1),
            "timer_s": initial_rto_s * (2**k - 1),
            "label": f"SYN retry {k}: {initial_rto_s * (2**k - 1):g} s",
        }
        for k in range(1, retries + 1)
    ]
    return pl.DataFrame(rows, schema=LADDER_SCHEMA)


def match_ladder(
    modes: pl.DataFrame, ladder: pl.DataFrame | None = None, *, tolerance: float = 0.15
) -> pl.DataFrame:
    """Pair each latency mode with the nearest SYN-retransmission timer.

    Parameters
    ----------
    modes
        Output of :func:`latency_modes_by` (or :func:`kit.analyses.latency.latency_modes`).
    ladder
        Output of :func:`syn_ladder`; default ``syn_ladder()`` (1, 3, 7, 15 s).
    tolerance
        A mode matches when it is within this relative distance of the timer
        (``|mode_s / timer_s - 1| <= tolerance``): the client also waits for the upstream's answer
        and the cache's own work, so the pile sits a little above the timer.

    Returns
    -------
    polars.DataFrame
        ``modes`` plus ``retry`` UInt32 and ``timer_s`` Float64 (the nearest rung on a log scale),
        ``ratio`` Float64 (``mode_s / timer_s``) and ``matches`` Boolean.
    """
    if ladder is None:
        ladder = syn_ladder()
    return match_timers(modes, ladder.select("retry", "timer_s"), tolerance=tolerance)


_DRILL_DOWN_COLUMNS: dict[str, Any] = {
    "capture": pl.String,
    "tcp_stream": pl.UInt32,
    "frame": pl.UInt32,
    "ts": _UTC,
    "src_ip": pl.String,
    "dst_ip": pl.String,
    "flags": pl.String,
    "retransmission": pl.Boolean,
    "rto_s": pl.Float64,
    "rto_frame": pl.UInt32,
    "note": pl.String,
}

#: :func:`syn_drill_down` output.
DRILL_DOWN_SCHEMA = pl.Schema(_DRILL_DOWN_COLUMNS)


def syn_drill_down(cap: Capture, upstream_ips: Sequence[str] | None = None) -> pl.DataFrame:
    """The SYNs of the connection with the most retransmitted SYNs, dissected again by pyshark.

    A drill-down that shows tshark's own analysis of one bad connection: each SYN, whether tshark
    flags it as a retransmission, and ``tcp.analysis.rto`` (seconds since the original SYN: 1, 3,
    7... s on Linux). It reads only that connection (``kit.sources.capture.stream``), so it is cheap, and
    it works inside a Jupyter kernel.

    Parameters
    ----------
    cap
        A :class:`kit.sources.capture.Capture`; the connection's file is read again from ``meta.path``.
    upstream_ips
        Only connections to these servers; ``None``: any port-53 connection.

    Returns
    -------
    polars.DataFrame
        :data:`DRILL_DOWN_SCHEMA`, one row per SYN (without ACK) of that connection: ``capture``,
        ``tcp_stream`` UInt32, ``frame`` UInt32 (tshark frame number), ``ts`` Datetime(us, UTC),
        ``src_ip``/``dst_ip``, ``flags`` (hex, e.g. ``"0x0002"``), ``retransmission`` Boolean,
        ``rto_s`` Float64 seconds (null for the first SYN), ``rto_frame`` UInt32 (the original
        SYN's frame), ``note`` null. Empty when no connection retransmitted its SYN. When pyshark
        fails (the file moved, tshark crashed), one row with only ``capture``, ``tcp_stream`` and
        ``note`` saying why.
    """
    from kit.sources.capture import stream

    tcp = cap.tcp.filter(pl.col("syn_retransmits") > 0)
    ips = as_list(upstream_ips)
    if ips is not None:
        tcp = tcp.filter(pl.col("server_ip").is_in(ips))
    if tcp.is_empty():
        return pl.DataFrame(schema=DRILL_DOWN_SCHEMA)
    worst = tcp.sort(["syn_retransmits", "ts_syn"], descending=[True, False], nulls_last=True).row(
        0, named=True
    )
    name, number = worst["capture"], worst["stream"]
    path = cap.meta.filter(pl.col("capture") == name)["path"][0]
    frames = (
        cap.packets.filter((pl.col("capture") == name) & (pl.col("tcp_stream") == number))
        .get_column("frame")
        .sort()
        .to_list()
    )
    try:
        with tempfile.TemporaryDirectory(prefix="dnskit-drill-") as tmp:
            cut = _connection_only(path, frames, Path(tmp))
            if cut is None:  # no editcap, or it failed: tshark dissects the whole file
                pkts, renumber = stream(path, number), None
            else:
                pkts, renumber = stream(cut, 0), frames
    except Exception as exc:  # pyshark raises many types (TSharkCrashException, EOFError...)
        log.warning("pyshark drill-down of %s stream %s failed: %s", path, number, exc)
        return pl.DataFrame(
            [{"capture": name, "tcp_stream": number, "note": f"pyshark failed: {exc}"}],
            schema=DRILL_DOWN_SCHEMA,
        )

    def frame_no(n: int) -> int:  # a frame of the cut file is the n-th packet of the connection
        return renumber[n - 1] if renumber is not None else n

    rows = []
    for p in pkts:
        t = p.tcp
        flags = int(t.get_field_value("flags"), 16)
        if not is_syn(flags):
            continue
        rto = t.get_field_value("analysis_rto")
        rto_frame = t.get_field_value("analysis_rto_frame")
        rows.append(
            {
                "capture": name,
                "tcp_stream": number,
                "frame": frame_no(int(p.frame_info.number)),
                "ts": int(Decimal(p.frame_info.time_epoch) * 1_000_000),
                "src_ip": p.ip.src if hasattr(p, "ip") else p.ipv6.src,
                "dst_ip": p.ip.dst if hasattr(p, "ip") else p.ipv6.dst,
                "flags": f"0x{flags:04x}",
                "retransmission": t.get_field_value("analysis_retransmission") is not None,
                "rto_s": float(rto) if rto is not None else None,
                "rto_frame": frame_no(int(rto_frame)) if rto_frame is not None else None,
                "note": None,
            }
        )
    out = pl.DataFrame(rows, schema={**DRILL_DOWN_SCHEMA, "ts": pl.Int64})
    # the epoch from tshark is exact (pyshark's sniff_time is a local, naive time)
    out = out.with_columns(ts=pl.from_epoch("ts", time_unit="us").dt.replace_time_zone("UTC"))
    return out.cast(dict(DRILL_DOWN_SCHEMA))  # type: ignore[arg-type]


def connect_failures(
    tcp: pl.DataFrame,
    *,
    every: str = "1m",
    server_port: int | None = 53,
    by: Sequence[str] = ("server_ip",),
) -> pl.DataFrame:
    """Capture-derived upstream failures: TCP connection attempts per upstream and time bin.

    The signal CoreDNS logs as ``dial tcp ...: i/o timeout``, seen on the wire: each connection
    attempt (``Capture.tcp`` row) towards a DNS server, its SYN retransmissions, and whether it was
    ever established. Attempts are binned by their first SYN (``ts_syn``); connections whose SYN
    was not captured are left out.

    Parameters
    ----------
    tcp
        :attr:`kit.sources.capture.Capture.tcp` (``TCP_SCHEMA``).
    every
        Bin width (polars duration string).
    server_port
        Only connections to this server port (53 by default); None keeps all.
    by
        Grouping columns of ``tcp`` (default one series per upstream; add ``"capture"`` for one
        per capture file).

    Returns
    -------
    polars.DataFrame
        ``ts`` (bin start, UTC), the ``by`` columns, ``attempts`` (UInt32, connections whose
        first SYN is in the bin), ``syn_retransmits`` (UInt32, their SYN retransmissions),
        ``not_established`` (UInt32, attempts that never got a SYN-ACK). Empty bins inside the
        covered span are present with zeros. Sorted by ``ts``, then ``by``.
    """
    keys = list(by)
    df = tcp.filter(pl.col("ts_syn").is_not_null())
    if server_port is not None:
        df = df.filter(pl.col("server_port") == server_port)
    grid = time_bins(df.rename({"ts_syn": "ts"}), every=every, by=keys)
    if grid.is_empty():
        return pl.DataFrame(
            schema={
                "ts": _UTC,
                **{k: tcp.schema[k] for k in keys},
                "attempts": pl.UInt32,
                "syn_retransmits": pl.UInt32,
                "not_established": pl.UInt32,
            }
        )
    sums = (
        df.with_columns(pl.col("ts_syn").dt.truncate(every).alias("ts"))
        .group_by(["ts", *keys])
        .agg(
            pl.col("syn_retransmits").fill_null(0).sum().cast(pl.UInt32),
            (~pl.col("established").fill_null(False))
            .sum()
            .cast(pl.UInt32)
            .alias("not_established"),
        )
    )
    return (
        grid.rename({"count": "attempts"})
        .join(sums, on=["ts", *keys], how="left", nulls_equal=True)
        .with_columns(pl.col("syn_retransmits", "not_established").fill_null(0))
        .sort(["ts", *keys])
    )


#: Above this many packets the drill-down lets tshark read the whole file instead of a cut.
_CUT_MAX_PACKETS = 2000


def _connection_only(path: str, frames: Sequence[int], tmp: Path) -> Path | None:
    """The packets ``frames`` (1-based numbers in ``path``, ascending) alone in a file under ``tmp``.

    ``editcap -r`` copies them without dissecting anything (one sequential read, ~1-2 s for a
    300 MB capture), so tshark then dissects a connection's dozen packets instead of the whole
    capture (~75 s for 2 M packets). tshark's SYN analysis (retransmission flag, RTO, RTO frame)
    needs only the connection's own packets, so it is the same; frame numbers are mapped back by
    the caller. None when editcap is missing, fails, or the connection is large.
    """
    editcap = shutil.which("editcap")
    if editcap is None or not frames or len(frames) > _CUT_MAX_PACKETS:
        return None
    out = tmp / "connection.pcapng"
    try:
        subprocess.run(
            [editcap, "-r", path, os.fspath(out), *map(str, frames)],
            check=True,
            capture_output=True,
            timeout=600,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        log.info("editcap could not cut %s (%s): tshark reads the whole file", path, exc)
        return None
    return out
