"""Who is the cache and who is the upstream in a capture (the one rule of the kit).

A node-local cache (NodeLocal DNSCache at ``169.254.20.10``, or unbound in the lab) receives the
pods' queries and forwards its misses to an upstream resolver (the AWS VPC resolver at
``169.254.169.253``). A capture on the node sees both legs. :func:`infer_upstream_ips` is the one
rule for "which servers are upstreams" (``kit.findings.infer_upstreams`` and the notebooks call
it): addresses given win, then the hosts of the forward settings, then the servers the capture
shows receiving **forwarded** queries (:func:`forwarding_evidence`: the same name and type asked
by another sender right after another server was asked and before it answered; a client asking
two resolvers is one sender and never counts). :func:`server_roles` labels the same upstreams,
plus the **cache**: the server asked by the most distinct clients among the others.
:func:`client_queries` and :func:`upstream_packets` select each leg.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import polars as pl

from kit.net import address, addresses
from kit.timeutil import UTC as _UTC

log = logging.getLogger(__name__)

__all__ = [
    "FORWARDING_SCHEMA",
    "FORWARD_WINDOW_S",
    "MIN_FORWARDED",
    "MIN_FORWARDED_SHARE",
    "ROLES_SCHEMA",
    "client_queries",
    "forwarding_evidence",
    "infer_cache_ips",
    "infer_upstream_ips",
    "server_roles",
    "upstream_packets",
]


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
    """``dns`` rows with a time, a server and a name, plus ``_ask``: when the sender decided to ask.

    That is the query's ``ts``, except for the first query of a TCP connection whose first SYN was
    captured before it: then the first SYN's time (``Capture.tcp.ts_syn``). A cache that opens a
    connection per miss (``force_tcp``) asks at its first SYN; lost SYNs delay the query itself by
    1, 3, 7... s, which must not hide the forwarding.

    Columns: ``capture``, ``ts``, ``client_ip``, ``server_ip``, ``qname``, ``qtype`` and
    :data:`_OPTIONAL` (null when ``dns`` lacks them), ``_ask``. Memory: only these columns are
    selected (no copy), ``_ask`` is computed on a narrow frame (capture, stream, frame, time) and
    put beside them, and the rows are filtered once at the end, only when some lack a time, a
    server or a name (at 10 M packets a filter or a join of the selected string columns costs
    hundreds of MiB each).
    """
    need = ["capture", "ts", "client_ip", "server_ip", "qname", "qtype", *_OPTIONAL]
    d = dns.select([c for c in need if c in dns.columns])
    d = d.with_columns(
        [pl.lit(None, dtype=dt).alias(c) for c, dt in _OPTIONAL.items() if c not in d.columns]
    )
    ok = pl.col("ts").is_not_null() & pl.col("server_ip").is_not_null()
    usable = (
        tcp is not None
        and not tcp.is_empty()
        and {"capture", "stream", "ts_syn"} <= set(tcp.columns)
        and d["tcp_stream"].null_count() < d.height
    )
    if not usable:
        d = d.with_columns(_ask=pl.col("ts"))
    else:
        assert tcp is not None
        keys = ["capture", "tcp_stream"]
        narrow = d.select(*keys, "frame_query", "ts", _ok=ok)
        first = (
            narrow.lazy()
            .filter(pl.col("_ok") & pl.col("tcp_stream").is_not_null())
            .group_by(keys)
            .agg(_first=pl.col("frame_query").min())
        )
        syn = (
            tcp.lazy()
            .select(
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
        ask = (
            narrow.lazy()
            .join(first, on=keys, how="left", maintain_order="left")
            .join(syn, on=keys, how="left", maintain_order="left")
            .select(_ask=pl.when(opened_for_it).then(pl.col("_syn")).otherwise(pl.col("ts")))
            .collect()
        )
        d = d.with_columns(ask["_ask"])
    keep = ok & pl.col("qname").is_not_null()
    if d.select(keep.all()).item():
        return d
    return d.filter(keep)


def _text_rank(s: pl.Series) -> pl.Series:
    """Rank of each value of ``s`` among its distinct values in text order (UInt32, 0-based)."""
    u = s.unique().sort()
    return s.replace_strict(u, pl.int_range(len(u), dtype=pl.UInt32, eager=True))


def _forwarded_rows(dns: pl.DataFrame, tcp: pl.DataFrame | None, window_s: float) -> pl.DataFrame:
    """The rows of ``dns`` that :func:`forwarding_evidence` counts as forwarded queries."""
    g = ["capture", "_key", "qtype"]
    base = _ask_times(dns, tcp)
    # The frame is sorted by group and time, so every column is copied once: the strings become
    # categoricals (4 bytes a row instead of a 16-byte view and the text), the names are lowered
    # once per distinct name (lowering every row costs ~150 bytes a row), and the sort runs on
    # integers only, not on a row encoding of strings. ``same`` below compares the values
    # themselves, so rows of two groups are never merged.
    cat = ["capture", "client_ip", "server_ip", "qtype"]
    names = (
        base.select("qname")
        .unique()
        .with_columns(_key=pl.col("qname").str.to_lowercase().cast(pl.Categorical))
    )
    d = base.select(
        *[pl.col(c).cast(pl.Categorical) for c in cat],
        "_ask",
        _resp=pl.col("ts_response"),
        _key=base.select("qname").join(names, on="qname", how="left", maintain_order="left")[
            "_key"
        ],
    )
    del names

    # one key per group (a hash of its codes), the time, then server and client in text order as
    # one exact integer: three integer keys sort several times faster than six
    servers, clients = _text_rank(base["server_ip"]), _text_rank(base["client_ip"])
    order = (
        pl.DataFrame(
            [
                d.select(_h=pl.struct([pl.col(c).to_physical() for c in g]).hash()).to_series(),
                d["_ask"],
                (servers.cast(pl.UInt64) * clients.n_unique() + clients.cast(pl.UInt64)).alias(
                    "_sc"
                ),
            ]
        )
        .with_row_index("_i")
        .sort(["_h", "_ask", "_sc"])
        .select("_i")
    )
    del servers, clients, base
    d = d[order.to_series()]
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
    hit = d.filter(
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
    return hit.with_columns(pl.col(*cat, "_key", "_p_client").cast(pl.String))


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
    q = (
        dns.lazy()
        .filter(pl.col("ts").is_not_null() & pl.col("server_ip").is_not_null())
        .select(
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
        .collect()
    )  # lazy: only these columns are filtered, not every column of dns
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
        dns.select("server_ip")
        .filter(pl.col("server_ip").is_not_null())
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
        dns.select("server_ip", "client_ip", "capture")
        .filter(pl.col("server_ip").is_not_null())
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
