"""Why each slow client answer of a capture was slow: the upstream exchange it waited for and that
exchange's SYN retransmissions (:data:`ATTRIBUTION_SCHEMA`).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import polars as pl

from kit.sources.capture import Capture
from kit.timeutil import UTC as _UTC

_ATTRIBUTION_COLUMNS: dict[str, Any] = {
    "capture": pl.String,
    "ts": _UTC,
    "client_ip": pl.String,
    "client_port": pl.UInt16,
    "server_ip": pl.String,
    "dns_id": pl.UInt16,
    "qname": pl.String,
    "qtype": pl.String,
    "latency_s": pl.Float64,
    "answered": pl.Boolean,
    "frame_query": pl.UInt32,
    "up_ts": _UTC,
    "up_client_ip": pl.String,
    "up_server_ip": pl.String,
    "up_transport": pl.String,
    "up_dns_id": pl.UInt16,
    "up_latency_s": pl.Float64,
    "up_retransmissions": pl.UInt32,
    "up_frame_query": pl.UInt32,
    "up_match": pl.String,
    "up_start": _UTC,
    "up_wait_s": pl.Float64,
    "tcp_stream": pl.UInt32,
    "syn_retransmits": pl.UInt32,
    "handshake_s": pl.Float64,
    "explained": pl.Boolean,
}
ATTRIBUTION_SCHEMA = pl.Schema(_ATTRIBUTION_COLUMNS)
"""Schema of :func:`attribute_slow_answers` (the columns are described there)."""


def attribute_slow_answers(
    cap: Capture,
    *,
    slow_s: float = 1.0,
    lead_s: float = 0.0,
    forward_within_s: float = 0.5,
    unanswered_window_s: float = 10.0,
    share: float = 0.5,
) -> pl.DataFrame:
    """For each slow client answer, the upstream transaction and TCP connection that served it.

    A cache re-issues a missed query upstream with a new DNS ID (and often over another transport),
    so the upstream leg is found by name and time: a transaction sent to another server (address
    or port differs from the one the client asked) with the same ``qname`` (case-insensitive) and
    ``qtype``, in the same capture, started (the first SYN of the TCP connection that carried it,
    else the query) between ``lead_s`` seconds before and ``forward_within_s`` seconds after the
    client's query (a cache forwards a miss at once), and finished no later than the client's
    answer (for unanswered queries: ``unanswered_window_s`` after the query). The closest such
    upstream start in time wins. Its TCP connection (if any)
    brings ``syn_retransmits`` and ``handshake_s``. An upstream answer truncated (TC=1) is followed
    to the cache's TCP retry of the same name to the same server.

    Memory: the search is a join windowed in time (see :func:`_nearest_legs`), so it grows with
    the slow answers and the same-name traffic within ``lead_s + forward_within_s``, not with how
    often a name repeats over the capture (2 M packets: 0.6 s, ~0.4 GB over the frames).

    Parameters
    ----------
    cap
        A :class:`Capture`.
    slow_s
        Client answers at least this slow (seconds) are explained; unanswered, uncensored queries
        are included too.
    lead_s
        How long before the client's query the upstream query may start (a cache coalescing
        several clients onto one upstream query), seconds.
    forward_within_s
        How long after the client's query the upstream leg may start, seconds.
    unanswered_window_s
        Search window after an unanswered client query, seconds.
    share
        ``explained`` is true when the upstream leg took at least this share of the client's
        latency (or the upstream connection retransmitted its SYN).

    Returns
    -------
    polars.DataFrame
        :data:`ATTRIBUTION_SCHEMA`, one row per slow client transaction, sorted by ``latency_s``
        descending: the client transaction (``capture``, ``ts``, ``client_ip``, ``client_port``, ``server_ip``,
        ``dns_id``, ``qname``, ``qtype``, ``latency_s`` seconds, ``answered``, ``frame_query``),
        the upstream one (``up_*``, null when none was found; ``up_latency_s`` seconds is the
        DNS query-to-answer time upstream; ``up_start`` is the first SYN of the connection that
        carried it, else the upstream query; ``up_wait_s`` seconds from ``up_start`` to the upstream
        answer, which includes the SYN retransmissions), ``up_match`` how it was found
        (``"dns"``: an upstream query by name; ``"tc_retry"``: that query's UDP answer had TC=1
        and the ``up_*`` columns, ``tcp_stream`` and the SYN columns are the cache's retry of the
        name over TCP to the same server, while ``up_start`` stays at the UDP query so that
        ``up_wait_s`` covers the whole fallback (see :func:`_tc_retries`); ``"failed_connection"``:
        no such query, but the
        nearest port-53 TCP connection to another server opened in the window carried no DNS
        message at all, e.g. every SYN dropped; its ``up_*`` DNS columns are null and
        ``up_wait_s`` runs to its last packet), its ``tcp_stream``, ``syn_retransmits``,
        ``handshake_s`` (seconds), and ``explained``.
    """
    dns = _keyed(cap.dns, unanswered_window_s)
    slow = dns.filter((pl.col("latency_s") >= slow_s) | (~pl.col("answered") & ~pl.col("censored")))
    cand = _leg_candidates(dns, cap.tcp)
    up_cols = [c for c in cand.columns if c.startswith("up_")]
    # the nearest upstream leg of each slow row: a windowed join (memory ~ slow rows x same-name
    # transactions within the window, never x all transactions of that name in the capture)
    best = _nearest_legs(slow, cand, lead_s=lead_s, forward_within_s=forward_within_s)
    best = best.join(
        cand.select(pl.col("_i").alias("_i_up"), *up_cols, "_up_tc", "tcp_stream",
                    "syn_retransmits", "handshake_s"),
        on="_i_up",
        how="left",
    )  # fmt: skip
    best, retried = _tc_retries(best, slow, cand)
    best = best.with_columns(
        up_match=pl.when(pl.col("_r_i").is_not_null())
        .then(pl.lit("tc_retry"))
        .otherwise(pl.lit("dns"))
    ).drop("_up_tc")
    # a slow row that is itself the upstream leg of another slow row (or the TCP retry of one) is
    # not a client answer
    legs = pl.concat([best["_i_up"], retried])
    slow = slow.filter(~pl.col("_i").is_in(legs.implode()))
    out = slow.drop("tcp_stream").join(best.drop("_i_up", "_r_i"), on="_i", how="left")
    # no upstream query by that name in the window: the cache may have tried to open a connection
    # that never carried a query (all SYNs dropped, or given up); take the nearest such connection
    miss = out.filter(pl.col("up_match").is_null())
    got = _nearest_failed_connections(
        miss, cap.tcp, lead_s=lead_s, forward_within_s=forward_within_s
    )
    if got is not None:
        out = out.join(got, on="_i", how="left").with_columns(
            up_match=pl.coalesce(
                "up_match",
                pl.when(pl.col("_m_start").is_not_null()).then(pl.lit("failed_connection")),
            ),
            up_start=pl.coalesce("up_start", "_m_start"),
            up_end=pl.coalesce("up_end", "_m_end"),
            up_client_ip=pl.coalesce("up_client_ip", "_m_client"),
            up_server_ip=pl.coalesce("up_server_ip", "_m_server"),
            up_transport=pl.coalesce(
                "up_transport", pl.when(pl.col("_m_start").is_not_null()).then(pl.lit("tcp"))
            ),
            tcp_stream=pl.coalesce("tcp_stream", "_m_stream"),
            syn_retransmits=pl.coalesce("syn_retransmits", "_m_syn"),
            handshake_s=pl.coalesce("handshake_s", "_m_hs"),
        )
    out = out.with_columns(
        up_wait_s=(pl.col("up_end") - pl.col("up_start")).dt.total_microseconds() / 1e6
    )
    lat = pl.coalesce(pl.col("latency_s"), pl.lit(unanswered_window_s))
    out = out.with_columns(
        explained=pl.col("up_match").is_not_null()
        & ((pl.col("syn_retransmits").fill_null(0) > 0) | (pl.col("up_wait_s") >= share * lat))
    )
    out = out.select(list(ATTRIBUTION_SCHEMA)).sort(
        "latency_s", "ts", descending=[True, False], nulls_last=False
    )
    return out.cast(dict(ATTRIBUTION_SCHEMA))  # type: ignore[arg-type]


def _keyed(dns: pl.DataFrame, unanswered_window_s: float) -> pl.DataFrame:
    """``dns`` (DNS schema) with ``_i`` (row index), ``_key`` (``qname`` lowered: the join key of
    the hops, resolvers randomise 0x20 case) and ``_end`` (the answer, else ``ts`` plus
    ``unanswered_window_s`` seconds).

    Names are lowered once per distinct name and joined back: the key column then holds views of
    those few strings (16 bytes a row) instead of a lowered copy of every row's name (~150 bytes
    a row at 10 M packets).
    """
    names = dns.select("qname").unique().with_columns(_key=pl.col("qname").str.to_lowercase())
    key = dns.select("qname").join(names, on="qname", how="left", maintain_order="left")
    return dns.with_row_index("_i").with_columns(
        _key=key["_key"],
        _end=pl.coalesce(
            pl.col("ts_response"), pl.col("ts") + pl.duration(seconds=unanswered_window_s)
        ),
    )


def _leg_candidates(dns: pl.DataFrame, tcp: pl.DataFrame) -> pl.DataFrame:
    """Every row of ``dns`` (from :func:`_keyed`) as a possible upstream leg: ``_i``, ``capture``,
    ``_key``, ``qtype``, the ``up_*`` columns (``up_ts`` the query, ``up_end`` its ``_end``,
    ``up_start`` the first SYN of the connection that carried it when that came first, else the
    query), ``tcp_stream``, ``syn_retransmits``, ``handshake_s`` (seconds) and ``_up_tc``.
    ``tcp`` is ``Capture.tcp`` (may be empty: then the connection columns are null)."""
    tcp = tcp.select(
        "capture", tcp_stream=pl.col("stream"), syn_retransmits=pl.col("syn_retransmits"),
        handshake_s=pl.col("handshake_s"), _ts_syn=pl.col("ts_syn"),
    )  # fmt: skip
    # the connection's columns for every row, joined on the two key columns only and put beside
    # the others (a join of the whole row would copy every column: a frame's size at 10 M packets)
    conn: pl.DataFrame | None = dns.select("capture", "tcp_stream").join(
        tcp, on=["capture", "tcp_stream"], how="left", maintain_order="left"
    )
    if (
        conn is not None and conn.height != dns.height
    ):  # (capture, stream) not unique in tcp: rows as a join gives them
        conn = None
    cand = dns.select(
        "_i",
        "capture",
        "_key",
        "qtype",
        up_ts=pl.col("ts"),
        up_end=pl.col("_end"),
        up_client_ip=pl.col("client_ip"),
        up_client_port=pl.col("client_port"),
        up_server_ip=pl.col("server_ip"),
        up_server_port=pl.col("server_port"),
        up_transport=pl.col("transport"),
        up_dns_id=pl.col("dns_id"),
        up_latency_s=pl.col("latency_s"),
        up_retransmissions=pl.col("retransmissions"),
        up_frame_query=pl.col("frame_query"),
        up_rcode=pl.col("rcode"),
        tcp_stream=pl.col("tcp_stream"),
        up_answered=pl.col("answered"),
        _up_tc=pl.col("tc").fill_null(False),
    )
    if conn is not None:
        cand = cand.hstack(conn.select("syn_retransmits", "handshake_s", "_ts_syn").get_columns())
    else:
        cand = cand.join(tcp, on=["capture", "tcp_stream"], how="left")
    return cand.with_columns(
        # the upstream leg starts when the cache opened the connection that carried the query
        up_start=pl.when(pl.col("_ts_syn") <= pl.col("up_ts"))
        .then(pl.col("_ts_syn"))
        .otherwise(pl.col("up_ts"))
    ).drop("_ts_syn")


def _nearest_failed_connections(
    miss: pl.DataFrame, tcp: pl.DataFrame, *, lead_s: float, forward_within_s: float
) -> pl.DataFrame | None:
    """For rows of ``miss`` (``_i``, ``capture``, ``ts``, ``server_ip``, ``server_port``) that
    found no upstream query by name: the nearest port-53 TCP connection that carried no DNS
    message at all (e.g. every SYN dropped), to another server, whose first SYN came between
    ``lead_s`` seconds before and ``lead_s + forward_within_s`` after the query (an as-of join:
    one candidate per row, memory linear in the rows).

    Returns ``_i`` and ``_m_start`` (first SYN), ``_m_client``, ``_m_server``, ``_m_stream``,
    ``_m_syn`` (SYN retransmissions), ``_m_hs`` (handshake seconds), ``_m_end`` (last packet), or
    None when ``miss`` or the failed connections are empty.
    """
    failed = (
        tcp.filter((pl.col("dns_messages") == 0) & pl.col("ts_syn").is_not_null())
        .select(
            "capture",
            _f_ts=pl.col("ts_syn"),
            _f_stream=pl.col("stream"),
            _f_client=pl.col("client_ip"),
            _f_server=pl.col("server_ip"),
            _f_server_port=pl.col("server_port"),
            _f_syn=pl.col("syn_retransmits"),
            _f_hs=pl.col("handshake_s"),
            _f_end=pl.col("ts_last"),
        )
        .sort("_f_ts")
    )
    if not (miss.height and failed.height):
        return None
    lead = pl.duration(microseconds=int(lead_s * 1e6))
    return (
        miss.select("_i", "capture", "server_ip", "server_port", _from=pl.col("ts") - lead)
        .sort("_from")
        .join_asof(
            failed,
            left_on="_from",
            right_on="_f_ts",
            by="capture",
            strategy="forward",
            tolerance=timedelta(seconds=lead_s + forward_within_s),
            check_sortedness=False,  # sorted by _from above, hence within each capture
        )
        .filter(
            pl.col("_f_ts").is_not_null()
            & (
                (pl.col("_f_server") != pl.col("server_ip"))
                | (pl.col("_f_server_port") != pl.col("server_port"))
            )
        )
        .select(
            "_i",
            _m_start=pl.col("_f_ts"),
            _m_client=pl.col("_f_client"),
            _m_server=pl.col("_f_server"),
            _m_stream=pl.col("_f_stream"),
            _m_syn=pl.col("_f_syn"),
            _m_hs=pl.col("_f_hs"),
            _m_end=pl.col("_f_end"),
        )
    )


def _other_server() -> pl.Expr:
    """A leg (``up_server_ip``/``up_server_port``) sent to another server than the client's
    query (``server_ip``/``server_port``): the cache's upstream, not the same hop again."""
    return (pl.col("up_server_ip") != pl.col("server_ip")) | (
        pl.col("up_server_port") != pl.col("server_port")
    )


def _done_by_end() -> pl.Expr:
    """A leg unanswered, or answered (``up_end``) no later than the client query's end
    (``_end``): an upstream answer after the client's cannot have served it."""
    return ~pl.col("up_answered") | (pl.col("up_end") <= pl.col("_end"))


#: Slow rows joined per step of :func:`_nearest_legs`; with the window this bounds its memory.
_CHUNK_ROWS = 100_000


def _nearest_legs(
    slow: pl.DataFrame, cand: pl.DataFrame, *, lead_s: float, forward_within_s: float
) -> pl.DataFrame:
    """For each slow row (``_i``), the index ``_i_up`` of its nearest upstream leg in ``cand``.

    A leg is a transaction of the same capture, name (``_key``) and ``qtype``, another row, sent
    to another server (address or port), that started (``up_start``) between ``lead_s`` seconds
    before and ``forward_within_s`` after the slow query and no later than its end (``_end``), and
    ended (if answered) no later than its end. Nearest: smallest ``|up_start - ts|``, then lowest
    ``up_frame_query``, then lowest row.

    The join is by (capture, name, qtype, time bin of the window's width): a slow query meets only
    the legs of the one or two bins its window covers, and slow rows go in time-sorted chunks of
    :data:`_CHUNK_ROWS` against the legs of that chunk's span. Memory grows with the slow rows
    times the same-name transactions within a window, not with how often a name repeats in the
    whole capture. Returns ``_i``, ``_i_up`` (one row per slow row that has a leg).
    """
    lead_us, fwd_us = int(lead_s * 1e6), int(forward_within_s * 1e6)
    width = max(lead_us + fwd_us, 1)  # µs: a window [t - lead, t + fwd] covers at most 2 bins
    left_all = slow.select(
        "_i", "capture", "_key", "qtype", "ts", "_end", "server_ip", "server_port",
        _t=pl.col("ts").dt.epoch("us"),
    ).sort("_t")  # fmt: skip
    right_all = cand.select(
        pl.col("_i").alias("_i_up"), "capture", "_key", "qtype", "up_start", "up_end",
        "up_answered", "up_server_ip", "up_server_port", "up_frame_query",
        _u=pl.col("up_start").dt.epoch("us"),
    ).filter(pl.col("_u").is_not_null())  # fmt: skip
    right_all = right_all.join(
        left_all.select("capture", "_key", "qtype").unique(), on=["capture", "_key", "qtype"],
        how="semi",
    ).sort("_u")  # fmt: skip
    right_all = right_all.with_columns(_b=pl.col("_u") // width)
    found: list[pl.DataFrame] = []
    for off in range(0, left_all.height, _CHUNK_ROWS):
        left = left_all.slice(off, _CHUNK_ROWS)
        lo = right_all["_u"].search_sorted(left["_t"][0] - lead_us, side="left")
        hi = right_all["_u"].search_sorted(left["_t"][-1] + fwd_us, side="right")
        right = right_all.slice(lo, hi - lo)
        left = left.with_columns(
            _b=pl.int_ranges(
                (pl.col("_t") - lead_us) // width, (pl.col("_t") + fwd_us) // width + 1
            )
        ).explode("_b")
        j = left.join(right, on=["capture", "_key", "qtype", "_b"], how="inner").filter(
            (pl.col("_i") != pl.col("_i_up"))
            & _other_server()
            & (pl.col("_u") >= pl.col("_t") - lead_us)
            & (pl.col("_u") <= pl.col("_t") + fwd_us)
            & (pl.col("up_start") <= pl.col("_end"))
            & _done_by_end()
        )
        found.append(
            j.with_columns(_d=(pl.col("_u") - pl.col("_t")).abs())
            .sort("_i", "_d", "up_frame_query", "_i_up")
            .group_by("_i", maintain_order=True)
            .first()
            .select("_i", "_i_up")
        )
    if not found:
        return pl.DataFrame(schema={"_i": pl.UInt32, "_i_up": pl.UInt32})
    return pl.concat(found)


def _tc_retries(
    best: pl.DataFrame, slow: pl.DataFrame, cand: pl.DataFrame
) -> tuple[pl.DataFrame, pl.Series]:
    """Follow upstream legs answered with TC=1 to the cache's retry over TCP (issue 17).

    A cache whose UDP answer came back truncated asks again over TCP (often after further UDP
    tries and TCP connections that failed). For a leg with ``_up_tc``, the retry is the first TCP
    transaction from the same cache (``up_client_ip``) to the same server (``up_server_ip``) with
    the same name and qtype whose query was sent at or after the truncated answer and started no
    later than the slow row's end (``_end``), answered no later than that end if answered. Its
    columns replace the leg's (transport, ID, latency, ``tcp_stream``, SYN retransmissions,
    handshake, ``up_end``) except ``up_start``: the upstream leg still began with the UDP query,
    so ``up_wait_s`` covers the whole fallback. Returns ``best`` with ``_r_i`` (the retry's row,
    null when none) and the retry rows (to leave out of the client answers).
    """
    keys = ["capture", "_key", "qtype", "up_client_ip", "up_server_ip"]
    trunc = (
        best.filter(pl.col("_up_tc") & pl.col("up_answered"))
        .join(slow.select("_i", "capture", "_key", "qtype", "_end"), on="_i", how="inner")
        .select("_i", *keys, "_end", _from=pl.col("up_end"))
        .sort("_from")
    )
    none = best.with_columns(_r_i=pl.lit(None, pl.UInt32))
    if not trunc.height:
        return none, pl.Series("_r_i", [], pl.UInt32)
    retry_cols = [c for c in cand.columns if c.startswith("up_") and c != "up_start"]
    tcp = (
        cand.filter(pl.col("up_transport") == "tcp")
        .join(trunc.select(keys).unique(), on=keys, how="semi")
        .select(
            *keys, pl.col("_i").alias("_r_i"), _r_q=pl.col("up_ts"), _r_start=pl.col("up_start"),
            **{f"_r{c}": pl.col(c) for c in [*retry_cols, "tcp_stream", "syn_retransmits",
                                             "handshake_s"]},
        )
        .sort("_r_q")
    )  # fmt: skip
    got = (
        trunc.join_asof(
            tcp,
            left_on="_from",
            right_on="_r_q",
            by=keys,
            strategy="forward",
            check_sortedness=False,  # both sorted by their time column above
        )
        .filter(
            pl.col("_r_i").is_not_null()
            & (pl.col("_r_start") <= pl.col("_end"))
            & (~pl.col("_rup_answered") | (pl.col("_rup_end") <= pl.col("_end")))
        )
        .drop(*keys, "_end", "_from", "_r_q", "_r_start")
    )
    out = best.join(got, on="_i", how="left")
    swapped = [*retry_cols, "tcp_stream", "syn_retransmits", "handshake_s"]
    out = out.with_columns(
        pl.when(pl.col("_r_i").is_not_null()).then(pl.col(f"_r{c}")).otherwise(pl.col(c)).alias(c)
        for c in swapped
    ).drop(f"_r{c}" for c in swapped)
    return out, got["_r_i"]


def attribution_summary(
    attribution: pl.DataFrame,
    *,
    by: Sequence[str] = ("capture", "up_match", "syn_retransmits"),
) -> pl.DataFrame:
    """Group the slow answers of :func:`kit.analyses.attribution.attribute_slow_answers` by what served them.

    Parameters
    ----------
    attribution
        Output of :func:`kit.analyses.attribution.attribute_slow_answers` (``ATTRIBUTION_SCHEMA``).
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
