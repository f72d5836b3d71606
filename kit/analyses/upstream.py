"""Client-side and upstream-side views of a capture, for notebooks 04 (capture DNS) and 05 (upstream TCP).

All functions take the frames of :func:`kit.read_capture` (``Capture.dns``, ``.tcp``, ``.packets``)
and return small, tidy, already-aggregated polars frames that :mod:`kit.charts` draws.

Roles of the addresses
----------------------
A node-local cache (NodeLocal DNSCache at ``169.254.20.10``, or unbound in the lab) receives the
pods' queries and forwards its misses to an upstream resolver (the AWS VPC resolver at
``169.254.169.253``). A capture on the node sees both legs. :func:`infer_upstream_ips` is the one
rule for "which servers are upstreams" (``kit.findings.infer_upstreams`` and the notebooks call
it): addresses given win, then the hosts of the forward settings, then the servers the capture
shows receiving **forwarded** queries (:func:`forwarding_evidence`: the same name and type asked
by another sender right after another server was asked and before it answered; a client asking
two resolvers is one sender and never counts). :func:`server_roles` labels the same upstreams,
plus the **cache**: the server asked by the most distinct clients among the others.

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
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import polars as pl

from kit.analyses.latency import latency_modes, match_timers
from kit.net import address, addresses, as_list, is_syn, syn_expr
from kit.timeutil import UTC as _UTC

if TYPE_CHECKING:
    from kit.sources.capture import Capture

log = logging.getLogger(__name__)

__all__ = [
    "DRILL_DOWN_SCHEMA",
    "FORWARDING_SCHEMA",
    "FORWARD_WINDOW_S",
    "HISTOGRAM_SCHEMA_TAIL",
    "LADDER_SCHEMA",
    "MIN_FORWARDED",
    "MIN_FORWARDED_SHARE",
    "ROLES_SCHEMA",
    "attribution_summary",
    "client_queries",
    "connection_summary",
    "forwarding_evidence",
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
    "syn_packets",
    "syn_retransmissions",
    "upstream_packets",
]


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


# --------------------------------------------------------------------------------------------
# who is the cache, who is the upstream

#: Seconds within which a forwarded query follows the query it forwards (see :func:`forwarding_evidence`).
FORWARD_WINDOW_S = 0.5
#: Forwarded queries plus forwarding attempts a server needs to be an upstream from a capture.
MIN_FORWARDED = 3
#: Share of a server's queries and failed connections that must be forwarded ones or attempts.
MIN_FORWARDED_SHARE = 0.1

#: :func:`forwarding_evidence` output.
FORWARDING_SCHEMA = pl.Schema(
    {
        "server_ip": pl.String,
        "queries": pl.UInt32,
        "forwarded": pl.UInt32,
        "forwarded_names": pl.UInt32,
        "failed": pl.UInt32,
        "attempts": pl.UInt32,
        "share": pl.Float64,
        "upstream": pl.Boolean,
    }
)

#: :func:`server_roles` output.
ROLES_SCHEMA = pl.Schema(
    {
        "server_ip": pl.String,
        "role": pl.String,
        "basis": pl.String,
        "clients": pl.UInt32,
        "queries": pl.UInt32,
        "forwarded": pl.UInt32,
        "forwarded_names": pl.UInt32,
        "attempts": pl.UInt32,
        "captures": pl.UInt32,
    }
)

#: Columns of ``Capture.dns`` the upstream rule uses when present (null when absent).
_OPTIONAL: dict[str, Any] = {
    "ts_response": _UTC,
    "tcp_stream": pl.UInt32,
    "frame_query": pl.UInt32,
}


def _ask_times(dns: pl.DataFrame, tcp: pl.DataFrame | None) -> pl.DataFrame:
    """``dns`` rows with a time, plus ``_ask``: when the sender decided to ask.

    That is the query's ``ts``, except for the first query of a TCP connection whose first SYN was
    captured before it: then the first SYN's time (``Capture.tcp.ts_syn``). A cache that opens a
    connection per miss (``force_tcp``) asks at its first SYN; lost SYNs delay the query itself by
    1, 3, 7... s, which must not hide the forwarding.
    """
    d = dns.filter(pl.col("ts").is_not_null() & pl.col("server_ip").is_not_null())
    d = d.with_columns(
        [pl.lit(None, dtype=dt).alias(c) for c, dt in _OPTIONAL.items() if c not in d.columns]
    )
    usable = (
        tcp is not None
        and not tcp.is_empty()
        and {"capture", "stream", "ts_syn"} <= set(tcp.columns)
        and d["tcp_stream"].null_count() < d.height
    )
    if not usable:
        return d.with_columns(_ask=pl.col("ts"))
    assert tcp is not None
    keys = ["capture", "tcp_stream"]
    first = (
        d.filter(pl.col("tcp_stream").is_not_null())
        .group_by(keys)
        .agg(_first=pl.col("frame_query").min())
    )
    syn = (
        tcp.select(
            pl.col("capture").cast(pl.String),
            tcp_stream=pl.col("stream").cast(d.schema["tcp_stream"]),
            _syn=pl.col("ts_syn").cast(_UTC),
        )
        .filter(pl.col("_syn").is_not_null())
        .group_by(keys)
        .agg(pl.col("_syn").min())
    )
    opened_for_it = (
        (pl.col("frame_query") == pl.col("_first"))
        & pl.col("_syn").is_not_null()
        & (pl.col("_syn") <= pl.col("ts"))
    )
    return (
        d.join(first, on=keys, how="left")
        .join(syn, on=keys, how="left")
        .with_columns(_ask=pl.when(opened_for_it).then(pl.col("_syn")).otherwise(pl.col("ts")))
        .drop("_first", "_syn")
    )


def _forwarded_rows(dns: pl.DataFrame, tcp: pl.DataFrame | None, window_s: float) -> pl.DataFrame:
    """The rows of ``dns`` that :func:`forwarding_evidence` counts as forwarded queries."""
    g = ["capture", "_key", "qtype"]
    d = (
        _ask_times(dns, tcp)
        .filter(pl.col("qname").is_not_null())
        .select(
            "capture",
            "client_ip",
            "server_ip",
            "qtype",
            "_ask",
            _resp=pl.col("ts_response"),
            _key=pl.col("qname").str.to_lowercase(),
        )
        # sorting on one hash of the group is much cheaper than on its strings; ``same`` below
        # compares the columns themselves, so a hash collision cannot merge two groups
        .with_columns(_h=pl.struct(g).hash())
        .sort(["_h", "_ask", "server_ip", "client_ip"])
    )
    # runs of consecutive queries (per name and type, in time) to one server; every query of a run
    # is compared with the last query before the run: the latest one sent to another server. The
    # frame is sorted by the group, so shifts over the whole frame plus a group-boundary mask do
    # what ``.over(group)`` would, without a window per name (hundreds of thousands of groups).
    same = pl.all_horizontal([pl.col(c) == pl.col(c).shift(1) for c in g]).fill_null(False)
    d = d.with_columns(_same=same).with_columns(
        _new=~pl.col("_same")
        | (pl.col("server_ip") != pl.col("server_ip").shift(1)).fill_null(True)
    )
    # the row that starts each row's run, and whether a query of the same group precedes it
    start = pl.when(pl.col("_new")).then(pl.int_range(pl.len(), dtype=pl.UInt32)).forward_fill()
    d = d.with_columns(_start=start)
    prev = {"_p_ask": "_ask", "_p_resp": "_resp", "_p_client": "client_ip"}
    d = d.with_columns(
        [
            pl.when(pl.col("_same").gather(pl.col("_start")))
            .then(pl.col(src).shift(1).gather(pl.col("_start")))
            .alias(name)
            for name, src in prev.items()
        ]
    )
    window = timedelta(seconds=window_s)
    return d.filter(
        pl.col("_p_client").is_not_null()
        & (pl.col("_p_client") != pl.col("client_ip"))
        & ((pl.col("_ask") - pl.col("_p_ask")) <= window)
        & (pl.col("_p_resp").is_null() | (pl.col("_p_resp") >= pl.col("_ask")))
        & (
            pl.col("_resp").is_null()
            | pl.col("_p_resp").is_null()
            | (pl.col("_resp") <= pl.col("_p_resp"))
        )
    )


def _failed_attempts(dns: pl.DataFrame, tcp: pl.DataFrame | None, window_s: float) -> pl.DataFrame:
    """Per server: failed connection attempts, and those :func:`forwarding_evidence` counts.

    Returns ``server_ip``, ``failed`` (connections never established that carried no DNS message)
    and ``attempts`` (those whose first SYN came at most ``window_s`` after a query by another
    sender to another server, in the same capture, still unanswered at that SYN).
    """
    empty = pl.DataFrame(
        schema={"server_ip": pl.String, "failed": pl.UInt32, "attempts": pl.UInt32}
    )
    need = {"capture", "client_ip", "server_ip", "ts_syn", "established", "dns_messages"}
    if tcp is None or tcp.is_empty() or not need <= set(tcp.columns):
        return empty
    att = (
        tcp.filter(
            (pl.col("established") == False)  # noqa: E712  (null: handshake not captured)
            & pl.col("ts_syn").is_not_null()
            & pl.col("server_ip").is_not_null()
            & (pl.col("dns_messages").fill_null(0) == 0)
        )
        .select(
            _a_capture=pl.col("capture").cast(pl.String),
            _a_client=pl.col("client_ip"),
            server_ip=pl.col("server_ip"),
            _a_ask=pl.col("ts_syn").cast(_UTC),
        )
        .with_row_index("_a_id")
        .with_columns(_a_lo=pl.col("_a_ask") - timedelta(seconds=window_s))
    )
    if att.is_empty():
        return empty
    q = dns.filter(pl.col("ts").is_not_null() & pl.col("server_ip").is_not_null()).select(
        _q_capture=pl.col("capture").cast(pl.String),
        _q_client=pl.col("client_ip"),
        _q_server=pl.col("server_ip"),
        _q_ts=pl.col("ts").cast(_UTC),
        _q_resp=(
            pl.col("ts_response").cast(_UTC)
            if "ts_response" in dns.columns
            else pl.lit(None, dtype=_UTC)
        ),
    )
    hit = (
        att.join_where(q, pl.col("_q_ts") <= pl.col("_a_ask"), pl.col("_q_ts") >= pl.col("_a_lo"))
        .filter(
            (pl.col("_q_capture") == pl.col("_a_capture"))
            & (pl.col("_q_client") != pl.col("_a_client"))
            & (pl.col("_q_server") != pl.col("server_ip"))
            & (pl.col("_q_resp").is_null() | (pl.col("_q_resp") >= pl.col("_a_ask")))
        )
        .select("_a_id")
        .unique()
    )
    return (
        att.with_columns(_hit=pl.col("_a_id").is_in(hit["_a_id"].implode()))
        .group_by("server_ip")
        .agg(failed=pl.len().cast(pl.UInt32), attempts=pl.col("_hit").sum().cast(pl.UInt32))
    )


def forwarding_evidence(
    dns: pl.DataFrame,
    tcp: pl.DataFrame | None = None,
    *,
    window_s: float = FORWARD_WINDOW_S,
    min_forwarded: int = MIN_FORWARDED,
    min_share: float = MIN_FORWARDED_SHARE,
) -> pl.DataFrame:
    """Per queried server: how many of its queries look forwarded, and whether that makes it an upstream.

    A query *Q2* (sender *c2*, server *s2*) is **forwarded** when the latest earlier query *Q1* of
    the same name and type (same capture, ``qname`` compared case-insensitively) sent to another
    server *s1* came from another sender (*c1* ≠ *c2*), at most ``window_s`` seconds before *Q2*
    was asked, while *Q1* was still unanswered, and *Q2* was answered no later than *Q1* (or one
    of them never was). That is a cache that got *Q1* from a client, missed, and asked its
    upstream *s2*: it can only answer after the upstream did. A client that asks two resolvers the
    same name is one sender, so its second query never counts. *Q2* is asked at its ``ts``, or at
    the first SYN of its TCP connection when the connection was opened for it (``tcp`` given):
    SYNs lost on the way to the upstream delay the query by 1, 3, 7 s but not the decision.

    A connection that never got a SYN/ACK carries no query, so no name: when every SYN towards
    the upstream is dropped, only the attempts show it. Such a **failed** connection (``tcp``)
    counts as a forwarding **attempt** when its first SYN came at most ``window_s`` after a query
    by another sender to another server that was still unanswered (timing only: weaker evidence,
    counted apart).

    Parameters
    ----------
    dns
        ``Capture.dns`` (all captures together). Needs ``capture``, ``ts``, ``client_ip``,
        ``server_ip``, ``qname``, ``qtype``; uses ``ts_response``, ``tcp_stream`` and
        ``frame_query`` when present.
    tcp
        ``Capture.tcp`` (first SYNs, failed connections), or ``None``.
    window_s
        Seconds between *Q1* and the moment *Q2* was asked (or the attempt's first SYN).
    min_forwarded, min_share
        A server is an upstream when ``forwarded + attempts`` is at least ``min_forwarded`` and
        at least ``min_share`` of ``queries + failed`` (a few coincidences make no upstream).

    Returns
    -------
    polars.DataFrame
        :data:`FORWARDING_SCHEMA`, one row per ``server_ip`` asked in ``dns`` or sent a failed
        connection in ``tcp``:

        - ``server_ip`` String.
        - ``queries`` UInt32: query transactions it received (rows of ``dns``).
        - ``forwarded`` UInt32: those counted as forwarded.
        - ``forwarded_names`` UInt32: distinct (capture, case-folded ``qname``, ``qtype``) among them.
        - ``failed`` UInt32: TCP connections to it never established that carried no DNS message.
        - ``attempts`` UInt32: those counted as forwarding attempts.
        - ``share`` Float64: ``(forwarded + attempts) / (queries + failed)``.
        - ``upstream`` Boolean: the rule above.

        Sorted by ``forwarded + attempts`` descending, then ``forwarded``, then ``queries``
        (descending), then ``server_ip``.
    """
    if dns.is_empty() and (tcp is None or tcp.is_empty()):
        return pl.DataFrame(schema=FORWARDING_SCHEMA)
    total = (
        dns.filter(pl.col("server_ip").is_not_null())
        .group_by("server_ip")
        .agg(queries=pl.len().cast(pl.UInt32))
    )
    fwd = (
        _forwarded_rows(dns, tcp, window_s)
        .group_by("server_ip")
        .agg(
            forwarded=pl.len().cast(pl.UInt32),
            forwarded_names=pl.struct("capture", "_key", "qtype").n_unique().cast(pl.UInt32),
        )
    )
    att = _failed_attempts(dns, tcp, window_s)
    counts = ["queries", "forwarded", "forwarded_names", "failed", "attempts"]
    votes = pl.col("forwarded") + pl.col("attempts")
    out = (
        total.join(fwd, on="server_ip", how="left")
        .join(att, on="server_ip", how="full", coalesce=True)
        .with_columns(pl.col(counts).fill_null(0))
        .with_columns(share=votes / (pl.col("queries") + pl.col("failed")))
        .with_columns(upstream=(votes >= min_forwarded) & (pl.col("share") >= min_share))
        .with_columns(_votes=votes)
        .sort(
            ["_votes", "forwarded", "queries", "server_ip"],
            descending=[True, True, True, False],
        )
        .select(list(FORWARDING_SCHEMA))
    )
    return out.cast(dict(FORWARDING_SCHEMA))  # type: ignore[arg-type]


@dataclass(frozen=True)
class _Inference:
    upstreams: list[str]
    basis: dict[str, str]
    evidence: pl.DataFrame


def _infer(
    dns: pl.DataFrame | None,
    upstream_ips: str | Sequence[str] | None,
    forward: pl.DataFrame | None,
    tcp: pl.DataFrame | None,
    cache_ips: str | Sequence[str] | None,
    window_s: float,
    min_forwarded: int,
    min_share: float,
) -> _Inference:
    evidence = (
        pl.DataFrame(schema=FORWARDING_SCHEMA)
        if dns is None
        else forwarding_evidence(
            dns, tcp, window_s=window_s, min_forwarded=min_forwarded, min_share=min_share
        )
    )
    given = addresses(upstream_ips)
    if given:
        log.info("upstream address(es) given: %s", given)
        return _Inference(given, dict.fromkeys(given, "given"), evidence)
    ups: list[str] = []
    basis: dict[str, str] = {}
    skipped: list[str] = []
    if forward is not None and "upstream" in forward.columns:
        for text in forward["upstream"].to_list():
            addr = address(text) if text is not None else None
            if addr is None:
                skipped.append(str(text))
            elif addr not in basis:
                ups.append(addr)
                basis[addr] = "forward settings"
    if skipped:
        log.info(
            "forward settings upstream(s) without an address, not used: %s", sorted(set(skipped))
        )
    seen = evidence.filter(pl.col("upstream"))
    not_upstream = set(addresses(cache_ips))
    from_capture: list[str] = []
    for ip, n, a in seen.select("server_ip", "forwarded", "attempts").iter_rows():
        if ip in not_upstream:
            continue
        if ip in basis:
            basis[ip] = "forward settings, capture"
        else:
            ups.append(ip)
            basis[ip] = "capture"
            from_capture.append(f"{ip} ({n} forwarded queries, {a} failed attempts)")
    log.info(
        "inferred upstream address(es): %s (from forward settings: %s; from the capture only: %s)",
        ups,
        [ip for ip in ups if basis[ip].startswith("forward settings")],
        from_capture,
    )
    return _Inference(ups, basis, evidence)


def infer_upstream_ips(
    dns: pl.DataFrame | None,
    upstream_ips: str | Sequence[str] | None = None,
    *,
    forward: pl.DataFrame | None = None,
    tcp: pl.DataFrame | None = None,
    cache_ips: str | Sequence[str] | None = None,
    window_s: float = FORWARD_WINDOW_S,
    min_forwarded: int = MIN_FORWARDED,
    min_share: float = MIN_FORWARDED_SHARE,
) -> list[str]:
    """The upstream resolver address(es): the one rule every notebook and finding uses.

    1. ``upstream_ips`` when given (one address or several; ``host:port``, ``[v6]:port`` and
       ``scheme://`` are reduced to the address): they are the answer, in the order given.
    2. Else the hosts of the forward settings (``forward``, :data:`kit.sources.corefile.FORWARD_SCHEMA`
       rows from a Corefile's ``forward_settings()`` or ``kit.read_unbound_conf``), in the order of
       the rows; an ``upstream`` that is not an IP address (``/etc/resolv.conf``,
       ``__PILLAR__CLUSTER__DNS__``) is left out and logged.
    3. Then the servers the capture shows receiving forwarded queries, or failed connection
       attempts right after a client's query (:func:`forwarding_evidence`: ``upstream`` is true),
       that are not listed yet, in its order: most forwarded queries and attempts first (ties:
       most forwarded queries, most queries, then the lower address). ``cache_ips`` are never
       taken from the capture as upstreams.

    So settings and capture are both listed when they disagree, settings first. A capture of the
    client side only, or of one client asking two resolvers, gives no upstream. What was inferred
    and from what is logged (``INFO``).

    Parameters
    ----------
    dns
        ``Capture.dns`` or ``None``.
    upstream_ips
        Explicit upstream addresses, or ``None``.
    forward
        Forward settings (``FORWARD_SCHEMA``; several files concatenated) or ``None``.
    tcp
        ``Capture.tcp`` (a query over a connection opened for it is asked at its first SYN), or
        ``None``.
    cache_ips
        Addresses never reported as upstreams from capture evidence (the node-local cache).
    window_s, min_forwarded, min_share
        See :func:`forwarding_evidence`.

    Returns
    -------
    list[str]
        Addresses without duplicates (IPv6 in compressed form), in the order above; empty when
        nothing names or shows an upstream.
    """
    return _infer(
        dns, upstream_ips, forward, tcp, cache_ips, window_s, min_forwarded, min_share
    ).upstreams


def server_roles(
    dns: pl.DataFrame,
    *,
    upstream_ips: str | Sequence[str] | None = None,
    forward: pl.DataFrame | None = None,
    tcp: pl.DataFrame | None = None,
    cache_ips: str | Sequence[str] | None = None,
    window_s: float = FORWARD_WINDOW_S,
    min_forwarded: int = MIN_FORWARDED,
    min_share: float = MIN_FORWARDED_SHARE,
) -> pl.DataFrame:
    """Classify every server (asked a query, or sent a failed TCP connection) as a role.

    Roles: ``"cache"``, ``"upstream"`` or ``"other"``. The upstreams are exactly :func:`infer_upstream_ips` with the same arguments, in its order
    (an upstream from the settings or given that the capture never saw gets a row of zeros). The
    cache is ``cache_ips`` when given, else the server asked by the most distinct clients among the
    servers that are not upstreams and were asked at least one query (ties: most queries, then the
    lower address): the address the pods ask, useful context the upstream rule does not need.

    Parameters
    ----------
    dns
        ``Capture.dns`` (all captures together).
    upstream_ips, forward, tcp, cache_ips, window_s, min_forwarded, min_share
        As in :func:`infer_upstream_ips`.

    Returns
    -------
    polars.DataFrame
        :data:`ROLES_SCHEMA`, caches first, then upstreams in :func:`infer_upstream_ips` order,
        then the others by ``queries`` descending (ties: lower address):

        - ``server_ip`` String: the address queries were sent to.
        - ``role`` String: ``"cache"``, ``"upstream"`` or ``"other"``.
        - ``basis`` String: why: ``"given"``, ``"forward settings"``, ``"capture"`` (forwarded
          queries), ``"forward settings, capture"`` (both), ``"most clients"`` (the inferred
          cache); null for ``"other"``.
        - ``clients`` UInt32: distinct ``client_ip`` that asked it.
        - ``queries`` UInt32: query transactions it received.
        - ``forwarded`` UInt32: its queries counted as forwarded (:func:`forwarding_evidence`).
        - ``forwarded_names`` UInt32: distinct (capture, case-folded ``qname``, ``qtype``) of them.
        - ``attempts`` UInt32: failed TCP connections to it counted as forwarding attempts.
        - ``captures`` UInt32: captures in which it was asked a query.
    """
    inf = _infer(dns, upstream_ips, forward, tcp, cache_ips, window_s, min_forwarded, min_share)
    ups = inf.upstreams
    per = (
        dns.filter(pl.col("server_ip").is_not_null())
        .group_by("server_ip")
        .agg(
            clients=pl.col("client_ip").n_unique().cast(pl.UInt32),
            queries=pl.len().cast(pl.UInt32),
            captures=pl.col("capture").n_unique().cast(pl.UInt32),
        )
        .join(
            inf.evidence.select("server_ip", "forwarded", "forwarded_names", "attempts"),
            on="server_ip",
            how="full",
            coalesce=True,
        )
    )
    missing = [ip for ip in ups if ip not in set(per["server_ip"].to_list())]
    if missing:
        per = pl.concat(
            [per, pl.DataFrame({"server_ip": missing}).cast({"server_ip": pl.String})],
            how="diagonal",
        )
    per = per.with_columns(
        pl.col(
            "clients", "queries", "captures", "forwarded", "forwarded_names", "attempts"
        ).fill_null(0)
    )
    caches = addresses(cache_ips)
    cache_basis = "given"
    if not caches:
        cand = per.filter(~pl.col("server_ip").is_in(ups) & (pl.col("clients") > 0)).sort(
            ["clients", "queries", "server_ip"], descending=[True, True, False]
        )
        caches = cand["server_ip"].head(1).to_list()
        cache_basis = "most clients"
    caches = [c for c in caches if c not in ups]
    order = {ip: i for i, ip in enumerate(ups)}
    out = (
        per.with_columns(
            role=pl.when(pl.col("server_ip").is_in(caches))
            .then(pl.lit("cache"))
            .when(pl.col("server_ip").is_in(ups))
            .then(pl.lit("upstream"))
            .otherwise(pl.lit("other")),
            basis=pl.when(pl.col("server_ip").is_in(caches))
            .then(pl.lit(cache_basis))
            .otherwise(pl.col("server_ip").replace_strict(inf.basis, default=None)),
            _rank=pl.when(pl.col("server_ip").is_in(caches))
            .then(0)
            .when(pl.col("server_ip").is_in(ups))
            .then(1)
            .otherwise(2),
            _order=pl.col("server_ip").replace_strict(order, default=None, return_dtype=pl.Int64),
        )
        .with_columns(_neg=-pl.col("queries").cast(pl.Int64))
        .sort(["_rank", "_order", "_neg", "server_ip"], nulls_last=True)
        .select(list(ROLES_SCHEMA))
    )
    return out.cast(dict(ROLES_SCHEMA))  # type: ignore[arg-type]


def infer_cache_ips(
    dns: pl.DataFrame,
    cache_ips: str | Sequence[str] | None = None,
    *,
    upstream_ips: str | Sequence[str] | None = None,
    forward: pl.DataFrame | None = None,
    tcp: pl.DataFrame | None = None,
) -> list[str]:
    """The node-local cache address(es): ``cache_ips`` when given, else inferred.

    Inferred: the ``"cache"`` row of :func:`server_roles` with the same arguments (the server asked
    by the most distinct clients among those that are not upstreams). Empty when the capture holds
    no DNS transaction.
    """
    given = addresses(cache_ips)
    if given:
        return given
    roles = server_roles(dns, upstream_ips=upstream_ips, forward=forward, tcp=tcp)
    got = roles.filter(pl.col("role") == "cache")["server_ip"].to_list()
    log.info("inferred cache address(es): %s (most distinct clients)", got)
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


def latency_modes_by(
    df: pl.DataFrame,
    *,
    value: str = "latency_s",
    by: Sequence[str] = ("capture",),
    min_s: float = 0.2,
    min_count: int = 5,
    min_share: float = 0.02,
) -> pl.DataFrame:
    """:func:`kit.analyses.latency.latency_modes` per group: the peaks of each group's slow tail.

    Returns
    -------
    polars.DataFrame
        The ``by`` columns, then ``mode_s``, ``lower_s``, ``upper_s`` (Float64 seconds), ``count``
        (UInt32), ``share`` (Float64) as in :func:`kit.analyses.latency.latency_modes`. Groups without a
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
        if not is_syn(flags):
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
