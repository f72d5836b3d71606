"""Client-side and upstream-side views of a capture, for notebooks 04 (capture DNS) and 05 (upstream TCP).

All functions take the frames of :func:`kit.read_capture` (``Capture.dns``, ``.tcp``, ``.packets``)
and return small, tidy, already-aggregated polars frames that :mod:`kit.charts` draws.

Roles of the addresses
----------------------
A node-local cache (NodeLocal DNSCache at ``169.254.20.10``, or unbound in the lab) receives the
pods' queries and forwards its misses to an upstream resolver (the AWS VPC resolver at
``169.254.169.253``). A capture on the node sees both legs. :func:`server_roles` tells them apart
without configuration: the **cache** is the server asked by the most distinct clients (ties: the
most queries); an **upstream** is another server that receives queries for names the cache was
asked (forwarded misses, matched case-insensitively on ``qname`` and ``qtype``).

Timers
------
Linux retransmits an unanswered SYN after the initial RTO (1 s, RFC 6298) and doubles the wait each
time, so a connection whose first *k* SYNs were lost completes after 1, 3, 7, 15... s
(:func:`syn_ladder`). Client latencies piling up at those values (:func:`latency_modes_by`,
:func:`match_ladder`) betray lost SYNs towards the upstream.

``qname`` is kept as the capture shows it: presentation form without the trailing dot, case
preserved, root ``"."``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import polars as pl

from kit.analysis import latency_modes, match_timers

if TYPE_CHECKING:
    from kit.capture import Capture

log = logging.getLogger(__name__)

__all__ = [
    "DRILL_DOWN_SCHEMA",
    "HISTOGRAM_SCHEMA_TAIL",
    "LADDER_SCHEMA",
    "ROLES_SCHEMA",
    "attribution_summary",
    "client_queries",
    "connection_summary",
    "infer_cache_ips",
    "infer_upstream_ips",
    "latency_modes_by",
    "log_histogram",
    "match_ladder",
    "outcomes",
    "server_roles",
    "slow_over_time",
    "syn_drill_down",
    "syn_ladder",
    "syn_retransmissions",
    "upstream_packets",
]

_UTC = pl.Datetime("us", "UTC")
_SYN = 0x02
_ACK = 0x10

#: :func:`server_roles` output.
ROLES_SCHEMA = pl.Schema(
    {
        "server_ip": pl.String,
        "role": pl.String,
        "clients": pl.UInt32,
        "queries": pl.UInt32,
        "forwarded_names": pl.UInt32,
        "captures": pl.UInt32,
    }
)

#: Columns of :func:`log_histogram` after the group columns.
HISTOGRAM_SCHEMA_TAIL = pl.Schema(
    {
        "bin": pl.Int64,
        "lower_s": pl.Float64,
        "upper_s": pl.Float64,
        "count": pl.UInt32,
        "share": pl.Float64,
    }
)

#: :func:`syn_ladder` output.
LADDER_SCHEMA = pl.Schema(
    {"retry": pl.UInt32, "rto_s": pl.Float64, "timer_s": pl.Float64, "label": pl.String}
)


def _ips(ips: str | Sequence[str] | None) -> list[str] | None:
    if ips is None:
        return None
    return [ips] if isinstance(ips, str) else list(ips)


# --------------------------------------------------------------------------------------------
# who is the cache, who is the upstream


def server_roles(dns: pl.DataFrame) -> pl.DataFrame:
    """Classify every queried server as ``"cache"``, ``"upstream"`` or ``"other"``.

    Parameters
    ----------
    dns
        ``Capture.dns`` (all captures together).

    Returns
    -------
    polars.DataFrame
        :data:`ROLES_SCHEMA`, one row per ``server_ip``, cache first, then upstreams by
        ``forwarded_names`` descending:

        - ``server_ip`` String: the address queries were sent to.
        - ``role`` String: ``"cache"`` for the server asked by the most distinct clients (ties: most
          queries, then the lowest address); ``"upstream"`` for another server that received at
          least one name the cache was asked (same capture, ``qname`` compared case-insensitively,
          same ``qtype``); ``"other"`` otherwise.
        - ``clients`` UInt32: distinct ``client_ip`` that asked it.
        - ``queries`` UInt32: query transactions it received.
        - ``forwarded_names`` UInt32: distinct (capture, qname, qtype) it received that the cache
          was also asked (0 for the cache itself).
        - ``captures`` UInt32: captures in which it was asked.
    """
    if dns.is_empty():
        return pl.DataFrame(schema=ROLES_SCHEMA)
    per = (
        dns.group_by("server_ip")
        .agg(
            clients=pl.col("client_ip").n_unique().cast(pl.UInt32),
            queries=pl.len().cast(pl.UInt32),
            captures=pl.col("capture").n_unique().cast(pl.UInt32),
        )
        .sort(["clients", "queries", "server_ip"], descending=[True, True, False])
    )
    cache = per["server_ip"][0]
    keys = dns.select(
        "capture", "server_ip", "qtype", _key=pl.col("qname").str.to_lowercase()
    ).unique()
    asked_cache = keys.filter(pl.col("server_ip") == cache).select("capture", "_key", "qtype")
    fwd = (
        keys.filter(pl.col("server_ip") != cache)
        .join(asked_cache, on=["capture", "_key", "qtype"], how="semi")
        .group_by("server_ip")
        .agg(forwarded_names=pl.len().cast(pl.UInt32))
    )
    out = (
        per.join(fwd, on="server_ip", how="left")
        .with_columns(pl.col("forwarded_names").fill_null(0))
        .with_columns(
            role=pl.when(pl.col("server_ip") == cache)
            .then(pl.lit("cache"))
            .when(pl.col("forwarded_names") > 0)
            .then(pl.lit("upstream"))
            .otherwise(pl.lit("other")),
            _rank=pl.when(pl.col("server_ip") == cache)
            .then(0)
            .when(pl.col("forwarded_names") > 0)
            .then(1)
            .otherwise(2),
        )
        .sort(["_rank", "forwarded_names", "server_ip"], descending=[False, True, False])
        .select(list(ROLES_SCHEMA))
    )
    return out.cast(dict(ROLES_SCHEMA))  # type: ignore[arg-type]


def infer_cache_ips(dns: pl.DataFrame, cache_ips: str | Sequence[str] | None = None) -> list[str]:
    """The node-local cache address(es): ``cache_ips`` when given, else inferred (see :func:`server_roles`).

    Returns an empty list when the capture holds no DNS transaction.
    """
    given = _ips(cache_ips)
    if given:
        return given
    roles = server_roles(dns)
    got = roles.filter(pl.col("role") == "cache")["server_ip"].to_list()
    log.info("inferred cache address(es): %s", got)
    return got


def infer_upstream_ips(
    dns: pl.DataFrame,
    upstream_ips: str | Sequence[str] | None = None,
    *,
    cache_ips: str | Sequence[str] | None = None,
) -> list[str]:
    """The upstream resolver address(es): ``upstream_ips`` when given, else inferred.

    Inferred: servers other than the cache (``cache_ips``, itself inferred when ``None``) that received
    names the cache was asked, most forwarded names first (see :func:`server_roles`). Empty when
    there are none (a capture of the client side only).
    """
    given = _ips(upstream_ips)
    if given:
        return given
    caches = infer_cache_ips(dns, cache_ips)
    if not caches:
        return []
    keys = dns.select(
        "capture", "server_ip", "qtype", _key=pl.col("qname").str.to_lowercase()
    ).unique()
    asked = keys.filter(pl.col("server_ip").is_in(caches)).select("capture", "_key", "qtype")
    got = (
        keys.filter(~pl.col("server_ip").is_in(caches))
        .join(asked, on=["capture", "_key", "qtype"], how="semi")
        .group_by("server_ip")
        .agg(n=pl.len())
        .sort(["n", "server_ip"], descending=[True, False])["server_ip"]
        .to_list()
    )
    log.info("inferred upstream address(es): %s", got)
    return got


def client_queries(dns: pl.DataFrame, cache_ips: Sequence[str]) -> pl.DataFrame:
    """The client-side transactions: rows of ``Capture.dns`` whose ``server_ip`` is a cache address."""
    return dns.filter(pl.col("server_ip").is_in(list(cache_ips)))


def upstream_packets(packets: pl.DataFrame, upstream_ips: Sequence[str]) -> pl.DataFrame:
    """Rows of ``Capture.packets`` sent to an upstream address (``dst_ip`` in ``upstream_ips``)."""
    return packets.filter(pl.col("dst_ip").is_in(list(upstream_ips)))


# --------------------------------------------------------------------------------------------
# distributions and outcomes


def log_histogram(
    df: pl.DataFrame,
    *,
    value: str = "latency_s",
    by: Sequence[str] = ("capture",),
    bins_per_decade: int = 10,
    min_s: float = 1e-5,
) -> pl.DataFrame:
    """Histogram of a seconds column on logarithmic bins, computed in polars (for a log x axis).

    Parameters
    ----------
    df
        Any frame with a Float64 seconds column ``value`` (e.g. ``Capture.dns`` with ``latency_s``,
        ``Capture.tcp`` with ``handshake_s``). Nulls (unanswered queries, connections never
        established) are not counted; :func:`outcomes` and :func:`connection_summary` count them.
    value
        The seconds column.
    by
        Group columns; null group values are kept as a group of their own.
    bins_per_decade
        Bins per factor of 10 (10: each bin ~26 % wide).
    min_s
        Values below this (seconds; including 0) are counted in the bin of ``min_s``.

    Returns
    -------
    polars.DataFrame
        The ``by`` columns, then ``bin`` Int64 (``floor(log10(v) * bins_per_decade)``), ``lower_s``
        and ``upper_s`` Float64 (bin edges in seconds, ``10 ** (bin / bins_per_decade)``),
        ``count`` UInt32 (values in the bin) and ``share`` Float64 (``count`` over the group's
        non-null values). Empty bins are absent; sorted by the ``by`` columns and ``bin``.
    """
    by = list(by)
    v = pl.col(value).cast(pl.Float64)
    b = (
        (pl.max_horizontal(v, pl.lit(min_s)).log10() * bins_per_decade + 1e-9)
        .floor()
        .cast(pl.Int64)
    )
    out = (
        df.filter(pl.col(value).is_not_null())
        .with_columns(bin=b)
        .group_by([*by, "bin"])
        .agg(count=pl.len().cast(pl.UInt32))
        .with_columns(
            lower_s=pl.lit(10.0).pow(pl.col("bin") / bins_per_decade),
            upper_s=pl.lit(10.0).pow((pl.col("bin") + 1) / bins_per_decade),
            share=pl.col("count") / pl.col("count").sum().over(by)
            if by
            else pl.col("count") / pl.col("count").sum(),
        )
        .select(*by, *HISTOGRAM_SCHEMA_TAIL)
        .sort([*by, "bin"])
    )
    return out


def outcomes(
    dns: pl.DataFrame,
    *,
    by: Sequence[str] = ("capture", "transport"),
    slow_s: float = 1.0,
) -> pl.DataFrame:
    """Per group: how many queries were answered, slow, unanswered or censored, and latency quantiles.

    Parameters
    ----------
    dns
        ``Capture.dns`` (usually the client side, :func:`client_queries`).
    by
        Group columns (``transport``: UDP vs TCP).
    slow_s
        An answer at least this slow (seconds) is slow.

    Returns
    -------
    polars.DataFrame
        The ``by`` columns; ``queries`` UInt32 (= ``answered`` + ``unanswered`` + ``censored``);
        ``answered`` UInt32; ``slow`` UInt32 (answered with ``latency_s >= slow_s``);
        ``unanswered`` UInt32 (no answer, not censored: a failure); ``censored`` UInt32 (no answer
        yet when the capture ended); ``retransmitted`` UInt32 (the client re-sent the query);
        ``truncated`` UInt32 (answers with the TC bit); ``slow_share`` Float64 (``slow`` over
        ``answered``); ``p50_s``, ``p90_s``, ``p99_s``, ``max_s`` Float64 seconds over answered
        queries (nearest-rank quantiles; null without answers). Sorted by the ``by`` columns.
    """
    by = list(by)
    lat = pl.col("latency_s")
    return (
        dns.group_by(by)
        .agg(
            queries=pl.len().cast(pl.UInt32),
            answered=pl.col("answered").sum().cast(pl.UInt32),
            slow=(pl.col("answered") & (lat >= slow_s)).sum().cast(pl.UInt32),
            unanswered=(~pl.col("answered") & ~pl.col("censored")).sum().cast(pl.UInt32),
            censored=(~pl.col("answered") & pl.col("censored")).sum().cast(pl.UInt32),
            retransmitted=(pl.col("retransmissions") > 0).sum().cast(pl.UInt32),
            truncated=pl.col("tc").fill_null(False).sum().cast(pl.UInt32),
            p50_s=lat.quantile(0.5, interpolation="nearest"),
            p90_s=lat.quantile(0.9, interpolation="nearest"),
            p99_s=lat.quantile(0.99, interpolation="nearest"),
            max_s=lat.max(),
        )
        .with_columns(
            slow_share=pl.when(pl.col("answered") > 0).then(pl.col("slow") / pl.col("answered"))
        )
        .sort(by)
    )


def slow_over_time(
    dns: pl.DataFrame,
    *,
    slow_s: float = 1.0,
    every: str = "5s",
    by: Sequence[str] = ("capture",),
) -> pl.DataFrame:
    """Slow and unanswered queries per time bin (by the time the query was sent).

    Parameters
    ----------
    dns
        ``Capture.dns`` (usually :func:`client_queries`).
    slow_s
        Slow threshold in seconds.
    every
        Bin width, a polars duration (``"1s"``, ``"5s"``, ``"1m"``).
    by
        Group columns.

    Returns
    -------
    polars.DataFrame
        ``ts`` Datetime(us, UTC) bin start; the ``by`` columns; ``queries`` UInt32 sent in the bin;
        ``slow`` UInt32 (answered, ``latency_s >= slow_s``); ``unanswered`` UInt32 (not censored);
        ``slow_share`` Float64 (``(slow + unanswered) / queries``). Bins without queries are
        absent. Sorted by the ``by`` columns and ``ts``.
    """
    by = list(by)
    return (
        dns.with_columns(ts=pl.col("ts").dt.truncate(every))
        .group_by([*by, "ts"])
        .agg(
            queries=pl.len().cast(pl.UInt32),
            slow=(pl.col("answered") & (pl.col("latency_s") >= slow_s)).sum().cast(pl.UInt32),
            unanswered=(~pl.col("answered") & ~pl.col("censored")).sum().cast(pl.UInt32),
        )
        .with_columns(slow_share=(pl.col("slow") + pl.col("unanswered")) / pl.col("queries"))
        .select("ts", *by, "queries", "slow", "unanswered", "slow_share")
        .sort([*by, "ts"])
    )


# --------------------------------------------------------------------------------------------
# TCP towards the upstream


def syn_retransmissions(
    packets: pl.DataFrame,
    *,
    every: str = "1s",
    by: Sequence[str] = ("capture", "dst_ip"),
    server_ips: Sequence[str] | None = None,
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

    Returns
    -------
    polars.DataFrame
        ``ts`` Datetime(us, UTC) bin start; the ``by`` columns; ``syns`` UInt32 (all SYN packets
        without ACK); ``first_syns`` UInt32 (not flagged as retransmission by tshark: connection
        attempts); ``retransmitted_syns`` UInt32 (tshark's ``tcp.analysis.retransmission``).
        Bins without SYNs are absent. Sorted by the ``by`` columns and ``ts``.
    """
    by = list(by)
    syn = packets.filter(
        (pl.col("transport") == "tcp")
        & ((pl.col("tcp_flags").cast(pl.Int32) & (_SYN | _ACK)) == _SYN)
    )
    ips = _ips(server_ips)
    if ips is not None:
        syn = syn.filter(pl.col("dst_ip").is_in(ips))
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
    ips = _ips(server_ips)
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
            syn_retransmits=pl.col("syn_retransmits").sum().cast(pl.UInt32),
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


def latency_modes_by(
    df: pl.DataFrame,
    *,
    value: str = "latency_s",
    by: Sequence[str] = ("capture",),
    min_s: float = 0.2,
    min_count: int = 5,
    min_share: float = 0.02,
) -> pl.DataFrame:
    """:func:`kit.analysis.latency_modes` per group: the peaks of each group's slow tail.

    Returns
    -------
    polars.DataFrame
        The ``by`` columns, then ``mode_s``, ``lower_s``, ``upper_s`` (Float64 seconds), ``count``
        (UInt32), ``share`` (Float64) as in :func:`kit.analysis.latency_modes`. Groups without a
        mode have no row. Sorted by the ``by`` columns and ``mode_s``.
    """
    by = list(by)
    if not by:
        return latency_modes(df, value=value, min_s=min_s, min_count=min_count, min_share=min_share)
    parts = []
    for key, part in df.group_by(by, maintain_order=True):
        modes = latency_modes(
            part, value=value, min_s=min_s, min_count=min_count, min_share=min_share
        )
        if modes.height:
            parts.append(
                modes.with_columns(
                    [pl.lit(k, dtype=df.schema[c]).alias(c) for c, k in zip(by, key, strict=True)]
                ).select(*by, *modes.columns)
            )
    if not parts:
        empty = latency_modes(df.clear(), value=value)
        return pl.DataFrame(schema={**{c: df.schema[c] for c in by}, **empty.schema})
    return pl.concat(parts).sort([*by, "mode_s"])


def match_ladder(
    modes: pl.DataFrame, ladder: pl.DataFrame | None = None, *, tolerance: float = 0.15
) -> pl.DataFrame:
    """Pair each latency mode with the nearest SYN-retransmission timer.

    Parameters
    ----------
    modes
        Output of :func:`latency_modes_by` (or :func:`kit.analysis.latency_modes`).
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


def attribution_summary(
    attribution: pl.DataFrame,
    *,
    by: Sequence[str] = ("capture", "up_match", "syn_retransmits"),
) -> pl.DataFrame:
    """Group the slow answers of :func:`kit.capture.attribute_slow_answers` by what served them.

    Parameters
    ----------
    attribution
        Output of :func:`kit.capture.attribute_slow_answers` (``ATTRIBUTION_SCHEMA``).
    by
        Group columns; the default tells answers served over connections with 0, 1, 2, 3...
        retransmitted SYNs apart (``up_match`` null: no upstream leg found).

    Returns
    -------
    polars.DataFrame
        The ``by`` columns; ``answers`` UInt32 (slow client transactions, unanswered included);
        ``unanswered`` UInt32; ``explained`` UInt32 (the upstream leg accounts for the wait);
        ``latency_p50_s``, ``latency_min_s``, ``latency_max_s`` Float64 (client latency, seconds,
        answered only, nearest rank); ``up_wait_p50_s`` Float64 (seconds from the upstream leg's
        first SYN or query to its answer). Sorted by the ``by`` columns (nulls first).
    """
    by = list(by)
    lat = pl.col("latency_s")
    return (
        attribution.group_by(by)
        .agg(
            answers=pl.len().cast(pl.UInt32),
            unanswered=(~pl.col("answered")).sum().cast(pl.UInt32),
            explained=pl.col("explained").sum().cast(pl.UInt32),
            latency_p50_s=lat.quantile(0.5, interpolation="nearest"),
            latency_min_s=lat.min(),
            latency_max_s=lat.max(),
            up_wait_p50_s=pl.col("up_wait_s").quantile(0.5, interpolation="nearest"),
        )
        .sort(by, nulls_last=False)
    )


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
    7... s on Linux). It reads only that connection (``kit.capture.stream``), so it is cheap, and
    it works inside a Jupyter kernel.

    Parameters
    ----------
    cap
        A :class:`kit.capture.Capture`; the connection's file is read again from ``meta.path``.
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
    from kit.capture import stream

    tcp = cap.tcp.filter(pl.col("syn_retransmits") > 0)
    ips = _ips(upstream_ips)
    if ips is not None:
        tcp = tcp.filter(pl.col("server_ip").is_in(ips))
    if tcp.is_empty():
        return pl.DataFrame(schema=DRILL_DOWN_SCHEMA)
    worst = tcp.sort(["syn_retransmits", "ts_syn"], descending=[True, False], nulls_last=True).row(
        0, named=True
    )
    name, number = worst["capture"], worst["stream"]
    path = cap.meta.filter(pl.col("capture") == name)["path"][0]
    try:
        pkts = stream(path, number)
    except Exception as exc:  # pyshark raises many types (TSharkCrashException, EOFError...)
        log.warning("pyshark drill-down of %s stream %s failed: %s", path, number, exc)
        return pl.DataFrame(
            [{"capture": name, "tcp_stream": number, "note": f"pyshark failed: {exc}"}],
            schema=DRILL_DOWN_SCHEMA,
        )
    rows = []
    for p in pkts:
        t = p.tcp
        flags = int(t.get_field_value("flags"), 16)
        if flags & (_SYN | _ACK) != _SYN:
            continue
        rto = t.get_field_value("analysis_rto")
        rto_frame = t.get_field_value("analysis_rto_frame")
        rows.append(
            {
                "capture": name,
                "tcp_stream": number,
                "frame": int(p.frame_info.number),
                "ts": int(Decimal(p.frame_info.time_epoch) * 1_000_000),
                "src_ip": p.ip.src if hasattr(p, "ip") else p.ipv6.src,
                "dst_ip": p.ip.dst if hasattr(p, "ip") else p.ipv6.dst,
                "flags": f"0x{flags:04x}",
                "retransmission": t.get_field_value("analysis_retransmission") is not None,
                "rto_s": float(rto) if rto is not None else None,
                "rto_frame": int(rto_frame) if rto_frame is not None else None,
                "note": None,
            }
        )
    out = pl.DataFrame(rows, schema={**DRILL_DOWN_SCHEMA, "ts": pl.Int64})
    # the epoch from tshark is exact (pyshark's sniff_time is a local, naive time)
    out = out.with_columns(ts=pl.from_epoch("ts", time_unit="us").dt.replace_time_zone("UTC"))
    return out.cast(dict(DRILL_DOWN_SCHEMA))  # type: ignore[arg-type]
