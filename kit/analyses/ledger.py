"""The per-query ledger: every client query joined across the hops it took (issue 18).

:func:`ledger` returns a :class:`Ledger`: one row per client query (a transaction sent to the
cache) with the upstream leg that served it, the breakdown of its latency over the hops and its
state, plus one row per hop attempt (long form). It is built from any of three vantage points:

* captures (:func:`kit.read_capture`): the client queries are the transactions sent to the cache,
  the upstream legs those sent to the upstreams (:func:`kit.analyses.roles.server_roles`, the
  kit's one rule; with no upstream inferred, those sent to any other server);
* dnstap (:func:`kit.read_dnstap`): ``CLIENT`` rows are the client hop, ``FORWARDER`` and
  ``RESOLVER`` rows the upstream hop;
* CoreDNS query logs (:func:`kit.read_coredns_log`): the client hop as the cache logged it. With
  captures given too, a log line joins the capture's client transaction exactly on (client
  address, port, DNS ID, lowered name, type) and adds a ``"coredns"`` hop row to it instead of a
  query row of its own.

Joining the hops
----------------
Captures and dnstap go through one function (:func:`_hop_ledger`) and the same windowed join as
:func:`kit.analyses.attribution.attribute_slow_answers` (``_nearest_legs``: by capture or dnstap
file, lowered name, type and time bin, in chunks). A cache re-issues a missed query upstream with
a new ID, so the first upstream leg of a client query is the upstream transaction of the same
lowered name and type that started (first SYN of its connection, else its query) nearest to the
client's query between ``lead_s`` before and ``forward_within_s`` after it, and ended no later
than the client's answer. Names are compared lowered: resolvers randomise the case of the names
they send (0x20).

* **Coalescing.** Several clients asking the same name while the cache's upstream query for it
  is outstanding share that query (unbound, CoreDNS and NodeLocal DNSCache all do). A client query
  with no leg starting in its window gets the latest upstream leg of the same name and type that
  started before it (within ``unanswered_window_s``), was still outstanding when the client asked
  and ended no later than the client's answer. Each such client row gets the leg (its hops are
  repeated per client row); its ``before_up_s`` is then negative (the leg began before the client
  asked) and the four parts still sum to ``latency_s``.
* **Attempts.** ``up_attempts`` counts the upstream queries of the same name and type sent from
  the first leg's start up to the client's answer (unanswered: ``unanswered_window_s`` after the
  query) and no later than the first usable upstream answer (answered, not truncated): the
  cache's tries, retries, and its TCP retry after a truncated (TC=1) answer. (A cache re-asks
  only while the name is unresolved; later queries of the name are other clients'.) The leg
  that *served* the query is the answered attempt, not truncated, answered last (else the last
  truncated one); its answer is ``up_ts_response``, its transport ``up_transport`` (after TC=1:
  the TCP retry's), its connection's handshake ``handshake_s``.
* **Failed connections.** With no upstream query by name in the window, the nearest TCP
  connection to another server that carried no DNS message at all (every SYN dropped), opened
  before the client's answer, is the first attempt (the rule of ``attribute_slow_answers``);
  upstream queries of the name sent later, up to the client's answer, are further attempts (the
  cache's next try after it gave up on the connection: 10 s later in data/sample). A failed
  connection that precedes a leg found by name cannot be tied to a name and is not counted.
* **Late legs.** An answered query with none of the above gets the first upstream query of the
  name that started after it and ended no later than its answer (dnstap stamps a TCP
  ``FORWARDER_QUERY`` when the message is written, after the connect and its SYN
  retransmissions, so seconds after the client's query). ``notes`` counts them.
* ``syn_retransmits`` is the sum over the distinct TCP connections of the attempts (0 when they
  were UDP); the hop rows carry each connection's own count (``kit.analyses.tcp``'s).

Breakdown and states
--------------------
See :data:`LEDGER_SCHEMA`. For an answered query whose upstream leg was answered,
``before_up_s + connect_s + up_s + after_up_s == latency_s`` (the parts telescope from ``ts`` to
``ts_response``). When the upstream never answered (the cache answered SERVFAIL itself),
``up_s`` and ``after_up_s`` are null. ``retried``: the same client address asked the same name and
type again before this query was answered (or within the window if never answered), or the
transaction has retransmissions, or this query is itself such a re-ask (the client's previous
query of the name and type was still unanswered when it sent this one; without that, the state
``retried`` could never show: an answered query asked again is ``after_give_up``); a pod is its address, so two processes of one pod asking the same
name at once count as a retry.

Memory: the leg search is the windowed join; coalescing, the attempt ranges and failed
connections are as-of joins (linear); the hops frame is the output. None grows with how often a
name repeats in the capture.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import polars as pl

from kit.analyses.attribution import (
    _CHUNK_ROWS,
    _done_by_end,
    _keyed,
    _leg_candidates,
    _nearest_failed_connections,
    _nearest_legs,
    _other_server,
)
from kit.analyses.roles import server_roles
from kit.errors import KitError
from kit.schema import DNS_SCHEMA
from kit.sources.capture import TCP_SCHEMA, Capture
from kit.sources.coredns import CoreDNSLog
from kit.sources.dnstap import DnstapLog
from kit.timeutil import UTC as _UTC

__all__ = ["HOPS_SCHEMA", "LEDGER_SCHEMA", "Ledger", "LedgerArgumentError", "ledger"]

_STATES = (
    "unanswered",
    "after_give_up",
    "syn_wait",
    "tc_fallback",
    "retried",
    "forwarded",
    "cache_hit",
)

_LEDGER_COLUMNS: dict[str, Any] = {
    "query_id": pl.UInt64,
    "source": pl.String,
    "vantage": pl.String,
    "ts": _UTC,
    "ts_response": _UTC,
    "latency_s": pl.Float64,
    "answered": pl.Boolean,
    "client_ip": pl.String,
    "client_port": pl.UInt16,
    "server_ip": pl.String,
    "transport": pl.String,
    "dns_id": pl.UInt16,
    "qname": pl.String,
    "qtype": pl.String,
    "rcode": pl.String,
    "up_start": _UTC,
    "up_ts": _UTC,
    "up_ts_response": _UTC,
    "up_server_ip": pl.String,
    "up_transport": pl.String,
    "up_attempts": pl.UInt32,
    "up_rcode": pl.String,
    "syn_retransmits": pl.UInt32,
    "handshake_s": pl.Float64,
    "before_up_s": pl.Float64,
    "connect_s": pl.Float64,
    "up_s": pl.Float64,
    "after_up_s": pl.Float64,
    "cache_s": pl.Float64,
    **{s: pl.Boolean for s in _STATES[::-1]},
    "state": pl.String,
}
LEDGER_SCHEMA = pl.Schema(_LEDGER_COLUMNS)
"""One row per client query (see the contract in the module docstring):

- ``query_id`` UInt64 (the key of :data:`HOPS_SCHEMA`), ``source`` (``"capture"``, ``"dnstap"``,
  ``"coredns"``), ``vantage`` (the capture's, dnstap file's or log file's name);
- the client transaction in the DNS schema's names (``ts`` ... ``rcode``; ``server_ip`` is the
  cache);
- the upstream leg that served it, null when none: ``up_start`` (first SYN of its first attempt's
  connection, else its first query), ``up_ts`` (first upstream query sent), ``up_ts_response``,
  ``up_server_ip``, ``up_transport``, ``up_attempts``, ``up_rcode``, ``syn_retransmits``,
  ``handshake_s`` (seconds);
- the breakdown in seconds: ``before_up_s`` = up_start - ts, ``connect_s`` = up_ts - up_start,
  ``up_s`` = up_ts_response - up_ts, ``after_up_s`` = ts_response - up_ts_response, ``cache_s`` =
  latency_s for a cache hit;
- the states (Boolean each) and ``state``, the first true one of: unanswered, after_give_up,
  syn_wait, tc_fallback, retried, forwarded, cache_hit. When the vantage shows no upstream side
  at all (a capture of the client side only, a CoreDNS log without capture) ``forwarded`` and
  ``cache_hit`` are null (unknown), and so is ``state`` for an answered query none of the other
  states fits.
"""

_HOPS_COLUMNS: dict[str, Any] = {
    "query_id": pl.UInt64,
    "hop": pl.String,
    "attempt": pl.UInt32,
    "source": pl.String,
    "vantage": pl.String,
    "ts": _UTC,
    "ts_response": _UTC,
    "latency_s": pl.Float64,
    "transport": pl.String,
    "client_ip": pl.String,
    "server_ip": pl.String,
    "dns_id": pl.UInt16,
    "rcode": pl.String,
    "tc": pl.Boolean,
    "tcp_stream": pl.UInt32,
    "syn_retransmits": pl.UInt32,
    "handshake_s": pl.Float64,
}
HOPS_SCHEMA = pl.Schema(_HOPS_COLUMNS)
"""One row per hop attempt of a ledger query: ``hop`` is ``"client"`` (the query as the cache
received it, attempt 0), ``"upstream"`` (each upstream attempt, 0 = first; a failed connection has
its first SYN as ``ts`` and null DNS columns) or ``"coredns"`` (the CoreDNS log line joined to a
captured client query); ``ts`` sent, ``ts_response`` answered, ``latency_s`` seconds, the
connection's ``tcp_stream``, ``syn_retransmits`` and ``handshake_s`` (seconds) when TCP."""


class LedgerArgumentError(KitError, TypeError):
    """:func:`ledger` was called without a source or with an argument of the wrong type."""


@dataclass(frozen=True)
class Ledger:
    """What :func:`ledger` returns.

    Attributes
    ----------
    queries : polars.DataFrame
        One row per client query, :data:`LEDGER_SCHEMA`.
    hops : polars.DataFrame
        One row per hop attempt of those queries, :data:`HOPS_SCHEMA` (``query_id`` joins).
    notes : tuple[str, ...]
        What could not be joined and why.
    """

    queries: pl.DataFrame
    hops: pl.DataFrame
    notes: tuple[str, ...]


def _state() -> pl.Expr:
    """``state``: the first true state column in :data:`_STATES` order (the precedence)."""
    state: Any = pl.when(pl.col(_STATES[0])).then(pl.lit(_STATES[0]))
    for s in _STATES[1:]:
        state = state.when(pl.col(s)).then(pl.lit(s))
    return state.otherwise(pl.lit(None, pl.String))  # type: ignore[no-any-return]


def _us(a: pl.Expr, b: pl.Expr) -> pl.Expr:
    """``a - b`` in float seconds (µs resolution)."""
    return (a - b).dt.total_microseconds() / 1e6


def _as_list(value: Any, kind: type, name: str, hint: str) -> list[Any]:
    if value is None:
        return []
    items = list(value) if isinstance(value, (list, tuple)) else [value]
    for it in items:
        if not isinstance(it, kind):
            raise LedgerArgumentError(
                f"ledger({name}=...) got {type(it).__name__}; pass {hint} (or a list of them)"
            )
    return items


def ledger(
    captures: Capture | Sequence[Capture] | None = None,
    *,
    dnstap: DnstapLog | Sequence[DnstapLog] | None = None,
    coredns: CoreDNSLog | Sequence[CoreDNSLog] | None = None,
    client_timeout_s: float = 5.0,
    slow_s: float | None = None,
    forward_within_s: float = 0.5,
    lead_s: float = 0.0,
    unanswered_window_s: float = 10.0,
) -> Ledger:
    """One row per client query, joined across its hops (see the module docstring).

    Parameters
    ----------
    captures
        A :class:`~kit.sources.capture.Capture` from :func:`kit.read_capture` (or a sequence;
        their frames are concatenated, the ``capture`` column keeps them apart).
    dnstap
        A :class:`~kit.sources.dnstap.DnstapLog` from :func:`kit.read_dnstap` (or a sequence).
    coredns
        A :class:`~kit.sources.coredns.CoreDNSLog` from :func:`kit.read_coredns_log` (or a
        sequence): the client hop as the cache logged it.
    client_timeout_s
        Seconds a client waits before it gives up on one try (glibc's ``timeout:5``); an answer
        later than that is ``after_give_up``.
    slow_s
        When given, only client queries at least this slow (seconds), or unanswered, get rows.
    forward_within_s, lead_s
        The upstream leg starts between ``lead_s`` seconds before and ``forward_within_s`` after
        the client's query.
    unanswered_window_s
        Seconds after an unanswered query within which its upstream attempts are searched.

    Returns
    -------
    Ledger
        ``queries`` (:data:`LEDGER_SCHEMA`), ``hops`` (:data:`HOPS_SCHEMA`), ``notes``.

    Raises
    ------
    LedgerArgumentError
        No source given, a source of another type, or a window that is not a number >= 0; the
        message says what to pass.
    """
    caps = _as_list(captures, Capture, "captures", "kit.read_capture(path)")
    taps = _as_list(dnstap, DnstapLog, "dnstap", "kit.read_dnstap(path)")
    logs = _as_list(coredns, CoreDNSLog, "coredns", "kit.read_coredns_log(path)")
    if not (caps or taps or logs):
        raise LedgerArgumentError(
            "ledger() needs a source: pass captures=kit.read_capture(path), "
            "dnstap=kit.read_dnstap(path) and/or coredns=kit.read_coredns_log(path)"
        )
    for name, val, allow_none in (
        ("client_timeout_s", client_timeout_s, False),
        ("slow_s", slow_s, True),
        ("forward_within_s", forward_within_s, False),
        ("lead_s", lead_s, False),
        ("unanswered_window_s", unanswered_window_s, False),
    ):
        if val is None and allow_none:
            continue
        if isinstance(val, bool) or not isinstance(val, (int, float)) or not val >= 0:
            raise LedgerArgumentError(
                f"ledger({name}={val!r}): pass a number of seconds >= 0"
                + (" or None" if allow_none else "")
            )
    opts = {
        "client_timeout_s": client_timeout_s,
        "slow_s": slow_s,
        "forward_within_s": forward_within_s,
        "lead_s": lead_s,
        "unanswered_window_s": unanswered_window_s,
    }
    parts: list[tuple[pl.DataFrame, pl.DataFrame]] = []
    notes: list[str] = []
    if caps:
        dns = pl.concat([c.dns for c in caps], how="vertical_relaxed")
        tcp = pl.concat([c.tcp for c in caps], how="vertical_relaxed")
        # the kit's one rule for who is the cache and who the upstream (kit.analyses.roles)
        roles = server_roles(dns, tcp=tcp)
        caches = roles.filter(pl.col("role") == "cache")["server_ip"].to_list()
        ups = roles.filter(pl.col("role") == "upstream")["server_ip"].to_list()
        if not caches:
            notes.append("captures: no DNS transaction, so no client query")
        else:
            is_client = pl.col("server_ip").is_in(caches)
            is_up = pl.col("server_ip").is_in(ups) if ups else ~is_client
            notes.append(
                f"captures: client queries are those sent to the cache {', '.join(caches)}; "
                + (
                    f"upstream legs those sent to {', '.join(ups)}"
                    if ups
                    else "no upstream inferred: upstream legs are those sent to any other server"
                )
            )
            parts.append(
                _hop_ledger(dns, tcp, is_client, is_up, "capture", notes, **opts)  # type: ignore[arg-type]
            )
    if taps:
        dns = pl.concat([t.dns.select(list(DNS_SCHEMA)) for t in taps], how="vertical_relaxed")
        mt = pl.concat([t.dns.select("message_type") for t in taps])["message_type"]
        dns = dns.with_columns(_mt=mt)
        tcp = pl.DataFrame(schema=TCP_SCHEMA)
        parts.append(
            _hop_ledger(
                dns.drop("_mt"),
                tcp,
                mt == "CLIENT",
                mt.is_in(["FORWARDER", "RESOLVER"]),
                "dnstap",
                notes,
                **opts,  # type: ignore[arg-type]
            )
        )
    if logs:
        parts = _coredns_part(
            logs,
            parts,
            bool(caps),
            notes,
            slow_s=slow_s,
            client_timeout_s=client_timeout_s,
            unanswered_window_s=unanswered_window_s,
        )
    return _assemble(parts, notes)


def _hop_ledger(
    dns: pl.DataFrame,
    tcp: pl.DataFrame,
    is_client: pl.Expr | pl.Series,
    is_upstream: pl.Expr | pl.Series,
    source: str,
    notes: list[str],
    *,
    client_timeout_s: float,
    slow_s: float | None,
    forward_within_s: float,
    lead_s: float,
    unanswered_window_s: float,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The ledger of one vantage (captures or dnstap): a DNS-schema frame whose rows are either
    client transactions (``is_client``) or the cache's upstream transactions (``is_upstream``).

    Returns (queries, hops) keyed by ``_qid`` (the client row's index in ``dns``)."""
    d = _keyed(dns, unanswered_window_s)
    d = d.with_columns(_cl=is_client, _upm=is_upstream)
    cand = _leg_candidates(d.filter(pl.col("_upm")), tcp).filter(pl.col("up_start").is_not_null())
    if not cand.height:
        notes.append(f"{source}: no upstream hop seen: the {source} holds only the client side")
    cl = d.filter(pl.col("_cl")).drop("_cl", "_upm")
    # retried: the same client address asks the same name and type again before the answer
    # (the next query of the group in time: a narrow frame sorted by a hash of the group and the
    # time, two integer keys, instead of a sort of every column by four string keys)
    g = ["capture", "client_ip", "_key", "qtype"]
    nxt = (
        cl.select(
            _h=pl.struct(g).hash(), _t=pl.col("ts"), _tr=pl.col("transport"), _e=pl.col("_end")
        )
        .with_row_index("_o")
        .sort("_h", "_t")
    )
    same = (pl.col("_h") == pl.col("_h").shift(-1)).fill_null(False)
    same_prev = (pl.col("_h") == pl.col("_h").shift(1)).fill_null(False)
    nxt = nxt.select(
        "_o",
        _next_ts=pl.when(same).then(pl.col("_t").shift(-1)),
        _next_tr=pl.when(same).then(pl.col("_tr").shift(-1)),
        # this query is itself a re-ask: the previous one was still unanswered when it was sent
        _reask=(same_prev & (pl.col("_e").shift(1) > pl.col("_t"))).fill_null(False),
    ).sort("_o")
    cl = cl.with_columns(nxt["_next_ts"], nxt["_next_tr"], nxt["_reask"])
    if slow_s is not None:
        cl = cl.filter((pl.col("latency_s") >= slow_s) | ~pl.col("answered"))
    # 1. the first leg by name in the window (the windowed join of attribute_slow_answers)
    first = _nearest_legs(cl, cand, lead_s=lead_s, forward_within_s=forward_within_s)
    # 2. coalesced: the latest leg of the name that started before and was still outstanding
    rest = cl.filter(~pl.col("_i").is_in(first["_i"].implode()))
    legs = cand.select(
        "capture", "_key", "qtype", "up_start", "up_end", "up_answered", "up_server_ip",
        "up_server_port", _i_up=pl.col("_i"),
    ).sort("up_start")  # fmt: skip
    co = (
        rest.select("_i", "capture", "_key", "qtype", "ts", "_end", "server_ip", "server_port")
        .sort("ts")
        .join_asof(
            legs,
            left_on="ts",
            right_on="up_start",
            by=["capture", "_key", "qtype"],
            strategy="backward",
            tolerance=timedelta(seconds=unanswered_window_s),
            check_sortedness=False,
        )
        .filter(
            pl.col("_i_up").is_not_null()
            & (pl.col("up_end") >= pl.col("ts"))
            & _done_by_end()
            & _other_server()
        )
        .select("_i", "_i_up")
    )
    if co.height:
        notes.append(
            f"{source}: {co.height} client queries joined an upstream query already outstanding "
            "for the same name (coalesced; each gets the leg, before_up_s < 0)"
        )
    # 3. no leg by name: the nearest failed connection (no DNS in it) in the window
    miss = cl.filter(~pl.col("_i").is_in(pl.concat([first["_i"], co["_i"]]).implode()))
    failed = _nearest_failed_connections(
        miss, tcp, lead_s=lead_s, forward_within_s=forward_within_s
    )
    if failed is not None:  # opened before the client's answer (a cache hit opens none)
        failed = (
            failed.join(miss.select("_i", "_end"), on="_i", how="left")
            .filter(pl.col("_m_start") <= pl.col("_end"))
            .drop("_end")
        )
    # 4. an answered query with neither, whose leg was sent later than forward_within_s (dnstap
    # stamps a TCP FORWARDER_QUERY when it is written, after the connect and its SYN
    # retransmissions): the first leg of the name that started after the query and ended no
    # later than its answer. (After a failed connection, the cache's next try is found as its
    # second attempt below, so failed connections come first.)
    took = [co["_i"]] + ([failed["_i"]] if failed is not None else [])
    rest = rest.filter(~pl.col("_i").is_in(pl.concat(took).implode()) & pl.col("answered"))
    late = (
        rest.select("_i", "capture", "_key", "qtype", "ts", "_end", "server_ip", "server_port")
        .sort("ts")
        .join_asof(
            legs,
            left_on="ts",
            right_on="up_start",
            by=["capture", "_key", "qtype"],
            strategy="forward",
            check_sortedness=False,
        )
        .filter(
            pl.col("_i_up").is_not_null()
            & (pl.col("up_start") <= pl.col("_end"))
            & _done_by_end()
            & _other_server()
        )
        .select("_i", "_i_up")
    )
    if late.height:
        notes.append(
            f"{source}: {late.height} answered client queries got an upstream leg that started "
            f"more than forward_within_s={forward_within_s} s after them (and before the answer)"
        )
    anchors = pl.concat([first, co, late])
    # attempts: upstream queries of the name from the first one up to the client's end, as a
    # range of positions in the legs sorted by (capture, name, type, start)
    gk = ["capture", "_key", "qtype"]
    srt = cand.sort(*gk, "up_start", "_i").with_row_index("_r")
    pos = srt.select("_i", "_r")
    fr = anchors.join(pos.rename({"_i": "_i_up"}), on="_i_up", how="left").select(
        "_i", _r0=pl.col("_r")
    )
    if failed is not None and failed.height:
        after = (
            failed.join(cl.select("_i", *gk), on="_i")
            .sort("_m_start")
            .join_asof(
                srt.select(*gk, "up_start", "_r"),
                left_on="_m_start",
                right_on="up_start",
                by=gk,
                strategy="forward",
                check_sortedness=False,
            )
            .select("_i", _r0=pl.col("_r"))
        )
        fr = pl.concat([fr, after])
    last = (
        cl.filter(pl.col("_i").is_in(fr["_i"].implode()))
        .select("_i", *gk, "_end")
        .sort("_end")
        .join_asof(
            srt.select(*gk, "up_start", "_r"),
            left_on="_end",
            right_on="up_start",
            by=gk,
            strategy="backward",
            check_sortedness=False,
        )
        .select("_i", _r1=pl.col("_r"))
    )
    rng = (
        fr.join(last, on="_i", how="left")
        .filter(pl.col("_r0").is_not_null() & pl.col("_r1").is_not_null())
        .filter(pl.col("_r1") >= pl.col("_r0"))
    )
    leg_cols = [
        "up_ts", "up_end", "up_answered", "up_client_ip", "up_server_ip", "up_transport",
        "up_dns_id", "up_latency_s", "up_rcode", "_up_tc", "up_start", "tcp_stream",
        "syn_retransmits", "handshake_s",
    ]  # fmt: skip
    # a cache re-asks only while the name is unresolved: attempts end with the first usable
    # answer (answered, not truncated, no later than the client's answer); later queries of the
    # name are other clients' (a cache that does not coalesce) or refreshes. The ranges are
    # expanded in chunks of client rows, each trimmed at once, so the expansion never holds more
    # than a chunk's same-name legs.
    usable = pl.col("up_answered") & ~pl.col("_up_tc")
    ends = cl.select("_i", "_end")
    pieces: list[pl.DataFrame] = []
    for off in range(0, rng.height, _CHUNK_ROWS):
        pieces.append(
            rng.slice(off, _CHUNK_ROWS)
            .select("_i", _r=pl.int_ranges("_r0", pl.col("_r1") + 1, dtype=pl.UInt32))
            .explode("_r")
            .join(srt.select("_r", *leg_cols), on="_r", how="left")
            .join(ends, on="_i", how="left")
            .with_columns(
                _done=pl.when(usable & (pl.col("up_end") <= pl.col("_end")))
                .then(pl.col("up_end"))
                .min()
                .over("_i")
            )
            .filter(pl.col("_done").is_null() | (pl.col("up_start") <= pl.col("_done")))
            .select("_i", *leg_cols, _fail=pl.lit(False))
        )
    att = (
        pl.concat(pieces)
        if pieces
        else pl.DataFrame(
            schema={"_i": pl.UInt32, **srt.select(leg_cols).schema, "_fail": pl.Boolean}
        )
    )
    if failed is not None and failed.height:
        fatt = failed.select(
            "_i",
            up_ts=pl.lit(None, _UTC),
            up_end=pl.col("_m_end"),
            up_answered=pl.lit(False),
            up_client_ip=pl.col("_m_client"),
            up_server_ip=pl.col("_m_server"),
            up_transport=pl.lit("tcp"),
            up_dns_id=pl.lit(None, pl.UInt16),
            up_latency_s=pl.lit(None, pl.Float64),
            up_rcode=pl.lit(None, pl.String),
            _up_tc=pl.lit(False),
            up_start=pl.col("_m_start"),
            tcp_stream=pl.col("_m_stream"),
            syn_retransmits=pl.col("_m_syn"),
            handshake_s=pl.col("_m_hs"),
            _fail=pl.lit(True),
        )
        att = pl.concat([att, fatt], how="vertical_relaxed")
    att = att.sort("_i", "up_start", maintain_order=True).with_columns(
        attempt=pl.int_range(pl.len(), dtype=pl.UInt32).over("_i")
    )
    q = _per_query(att)
    out = cl.join(q, on="_i", how="left")
    out = _breakdown(out, client_timeout_s, upstream_seen=cand.height > 0)
    vantage = pl.col("capture")
    queries = out.select(
        [c for c in LEDGER_SCHEMA if c not in ("query_id", "source", "vantage")],
        _qid=pl.col("_i"),
        source=pl.lit(source),
        vantage=vantage,
    )
    # hops: the client transaction, then the upstream attempts
    conn = tcp.select(
        "capture", tcp_stream=pl.col("stream"), syn_retransmits=pl.col("syn_retransmits"),
        handshake_s=pl.col("handshake_s"),
    ).unique(["capture", "tcp_stream"], keep="first")  # fmt: skip
    ch = (
        cl.select(
            "_i",
            "capture",
            "ts",
            "ts_response",
            "latency_s",
            "transport",
            "client_ip",
            "server_ip",
            "dns_id",
            "rcode",
            "tc",
            "tcp_stream",
        )
        .join(conn, on=["capture", "tcp_stream"], how="left")
        .select(
            [
                c
                for c in HOPS_SCHEMA
                if c not in ("query_id", "hop", "attempt", "source", "vantage")
            ],
            _qid=pl.col("_i"),
            hop=pl.lit("client"),
            attempt=pl.lit(0, pl.UInt32),
            source=pl.lit(source),
            vantage=vantage,
        )
    )
    uh = att.join(cl.select("_i", "capture"), on="_i", how="left", maintain_order="left").select(
        _qid=pl.col("_i"),
        hop=pl.lit("upstream"),
        attempt=pl.col("attempt"),
        source=pl.lit(source),
        vantage=vantage,
        ts=pl.when(pl.col("_fail")).then(pl.col("up_start")).otherwise(pl.col("up_ts")),
        ts_response=pl.when(pl.col("up_answered")).then(pl.col("up_end")),
        latency_s=pl.col("up_latency_s"),
        transport=pl.col("up_transport"),
        client_ip=pl.col("up_client_ip"),
        server_ip=pl.col("up_server_ip"),
        dns_id=pl.col("up_dns_id"),
        rcode=pl.col("up_rcode"),
        tc=pl.when(pl.col("_fail")).then(None).otherwise(pl.col("_up_tc")),
        tcp_stream=pl.col("tcp_stream"),
        syn_retransmits=pl.col("syn_retransmits"),
        handshake_s=pl.col("handshake_s"),
    )
    hops = pl.concat([ch, uh], how="diagonal_relaxed")
    return queries, hops


def _per_query(att: pl.DataFrame) -> pl.DataFrame:
    """Per client row (``_i``): the upstream columns of :data:`LEDGER_SCHEMA` from its attempts."""
    answered = pl.col("up_answered") & ~pl.col("_fail")
    # the serving attempt: answered, not truncated, answered last (else truncated, last)
    serve_rank = pl.when(answered & ~pl.col("_up_tc")).then(2).when(answered).then(1).otherwise(0)
    ranked = att.with_columns(_sr=serve_rank).sort("_i", "_sr", "up_end", "attempt")
    srv = ranked.group_by("_i", maintain_order=True).last()
    first_syn_stream = (
        att.filter(pl.col("tcp_stream").is_not_null())
        .unique(["_i", "tcp_stream"], keep="first")
        .group_by("_i")
        .agg(_syn=pl.col("syn_retransmits").fill_null(0).sum())
    )
    agg = att.group_by("_i").agg(
        up_start=pl.col("up_start").min(),
        up_ts=pl.col("up_ts").min(),
        up_attempts=pl.len().cast(pl.UInt32),
        _tc_then_tcp=(
            (pl.col("_up_tc") & pl.col("up_answered")).any()
            & (
                pl.col("up_transport").filter(
                    pl.col("up_start")
                    > pl.col("up_start").filter(pl.col("_up_tc") & pl.col("up_answered")).min()
                )
                == "tcp"
            ).any()
        ),
    )
    return (
        agg.join(
            srv.select(
                "_i",
                up_ts_response=pl.when(pl.col("_sr") > 0).then(pl.col("up_end")),
                up_server_ip=pl.col("up_server_ip"),
                up_transport=pl.col("up_transport"),
                up_rcode=pl.when(pl.col("_sr") > 0).then(pl.col("up_rcode")),
                handshake_s=pl.col("handshake_s"),
            ),
            on="_i",
            how="left",
        )
        .join(first_syn_stream, on="_i", how="left")
        .with_columns(syn_retransmits=pl.col("_syn").fill_null(0).cast(pl.UInt32))
        .drop("_syn")
    )


def _breakdown(out: pl.DataFrame, client_timeout_s: float, *, upstream_seen: bool) -> pl.DataFrame:
    """The breakdown and state columns of :data:`LEDGER_SCHEMA` on the joined client rows.

    Without any upstream transaction in the vantage (``upstream_seen`` false: a capture of the
    client side only) a query without leg is not known to be a cache hit: ``cache_hit`` and
    ``forwarded`` are null there."""
    fwd = pl.col("up_attempts").fill_null(0) > 0
    ans = pl.col("answered")
    out = out.with_columns(
        up_attempts=pl.col("up_attempts").fill_null(0).cast(pl.UInt32),
        syn_retransmits=pl.when(fwd).then(pl.col("syn_retransmits")),
        _tc_then_tcp=pl.col("_tc_then_tcp").fill_null(False),
        before_up_s=pl.when(fwd).then(_us(pl.col("up_start"), pl.col("ts"))),
        connect_s=pl.when(fwd).then(_us(pl.col("up_ts"), pl.col("up_start"))),
        up_s=pl.when(fwd).then(_us(pl.col("up_ts_response"), pl.col("up_ts"))),
        after_up_s=pl.when(fwd).then(_us(pl.col("ts_response"), pl.col("up_ts_response"))),
        cache_s=pl.when(ans & ~fwd).then(pl.col("latency_s")),
    )
    asked_again = pl.col("_next_ts").is_not_null() & (pl.col("_next_ts") < pl.col("_end"))
    out = out.with_columns(
        unanswered=~ans,
        after_give_up=ans
        & (
            (pl.col("latency_s") > client_timeout_s)
            | asked_again
            | (pl.col("retransmissions").fill_null(0) > 0)
        ),
        syn_wait=fwd & (pl.col("syn_retransmits").fill_null(0) > 0),
        tc_fallback=pl.col("_tc_then_tcp")
        | (pl.col("tc").fill_null(False) & asked_again & (pl.col("_next_tr") == "tcp")),
        retried=asked_again | (pl.col("retransmissions").fill_null(0) > 0) | pl.col("_reask"),
        forwarded=fwd if upstream_seen else pl.lit(None, pl.Boolean),
        cache_hit=(ans & ~fwd) if upstream_seen else pl.lit(None, pl.Boolean),
    )
    return out.with_columns(state=_state())


def _coredns_part(
    logs: list[CoreDNSLog],
    parts: list[tuple[pl.DataFrame, pl.DataFrame]],
    have_captures: bool,
    notes: list[str],
    *,
    slow_s: float | None,
    client_timeout_s: float,
    unanswered_window_s: float,
) -> list[tuple[pl.DataFrame, pl.DataFrame]]:
    """CoreDNS query-log lines as client hops.

    A line is written when the answer is (the log plugin's ``{duration}`` runs from the request
    to the written answer), so the query was sent at the line's time minus ``duration_s``; lines
    without a time (CoreDNS 1.6.3+ writes none unless a wrapper such as ``kubectl --timestamps``
    or the container runtime adds one) have a null ``ts``. A line with rcode ``-`` wrote no
    answer (``answered`` false). With captures (the first part), a line joins the captured
    client transaction with the same client address, port, DNS ID, lowered name and type (the
    nearest in time within 1 s when both have times, else the only one with those keys) and
    becomes a ``"coredns"`` hop of it; the other lines become query rows of their own.
    """
    q = pl.concat([lg.queries for lg in logs], how="vertical_relaxed")
    resp = pl.col("rcode").is_not_null() & (pl.col("rcode") != "-")
    dur = pl.duration(microseconds=(pl.col("duration_s") * 1e6).round().cast(pl.Int64))
    rows = q.with_row_index("_qid").select(
        "_qid",
        source=pl.lit("coredns"),
        vantage=pl.col("source").str.extract(r"([^/\\]+)$"),
        ts=pl.col("ts") - dur,
        ts_response=pl.when(resp).then(pl.col("ts")),
        latency_s=pl.when(resp).then(pl.col("duration_s")),
        answered=resp,
        client_ip=pl.col("client_ip"),
        client_port=pl.col("client_port"),
        server_ip=pl.lit(None, pl.String),
        transport=pl.col("proto"),
        dns_id=pl.col("query_id"),
        qname=pl.col("qname"),
        qtype=pl.col("qtype"),
        rcode=pl.when(resp).then(pl.col("rcode")),
        _key=pl.col("qname").str.to_lowercase(),
    )
    keys = ["client_ip", "client_port", "dns_id", "_key", "qtype"]
    joined = pl.DataFrame(schema={"_qid": pl.UInt32, "_cap_qid": pl.UInt32})
    cap_i = next((i for i, (qq, _) in enumerate(parts) if qq.height and
                  qq["source"][0] == "capture"), None)  # fmt: skip
    if have_captures and cap_i is not None:
        cq, ch = parts[cap_i]
        side = cq.select(
            *keys[:3], "qtype", _cap_qid=pl.col("_qid"), _key=pl.col("qname").str.to_lowercase(),
            _cts=pl.col("ts"),
        )  # fmt: skip
        timed = rows.filter(pl.col("ts").is_not_null()).select("_qid", *keys, "ts").sort("ts")
        by_time = (
            timed.join_asof(
                side.sort("_cts"),
                left_on="ts",
                right_on="_cts",
                by=keys,
                strategy="nearest",
                tolerance=timedelta(seconds=1),
                check_sortedness=False,
            )
            .filter(pl.col("_cap_qid").is_not_null())
            .select("_qid", "_cap_qid")
        )
        untimed = rows.filter(pl.col("ts").is_null()).select("_qid", *keys)
        once = side.filter(pl.len().over(keys) == 1)
        by_keys = untimed.join(once, on=keys, how="inner").select("_qid", "_cap_qid")
        joined = pl.concat([by_time, by_keys]).unique("_cap_qid", keep="first")
        hop = rows.join(joined, on="_qid", how="inner").select(
            _qid=pl.col("_cap_qid"),
            hop=pl.lit("coredns"),
            attempt=pl.lit(0, pl.UInt32),
            source=pl.lit("coredns"),
            vantage="vantage",
            ts="ts",
            ts_response="ts_response",
            latency_s="latency_s",
            transport="transport",
            client_ip="client_ip",
            dns_id="dns_id",
            rcode="rcode",
        )
        hop = hop.join(cq.select("_qid", "server_ip"), on="_qid", how="left")
        parts[cap_i] = (cq, pl.concat([ch, hop], how="diagonal_relaxed"))
        notes.append(
            f"coredns: {joined.height} of {rows.height} log lines joined a captured client "
            "query (client address, port, ID, name, type) and became its coredns hop"
        )
    own = rows.filter(~pl.col("_qid").is_in(joined["_qid"].implode()))
    if slow_s is not None:
        own = own.filter((pl.col("latency_s") >= slow_s) | ~pl.col("answered"))
    if own.height:
        notes.append(
            f"coredns: {own.height} log lines as queries of their own: no upstream hop (a "
            "CoreDNS query log records only the client side)"
        )
        asked_again = pl.lit(False)
        own = own.with_columns(
            up_attempts=pl.lit(0, pl.UInt32),
            cache_s=pl.when(pl.col("answered")).then(pl.col("latency_s")),
            unanswered=~pl.col("answered"),
            after_give_up=pl.col("answered") & (pl.col("latency_s") > client_timeout_s),
            syn_wait=pl.lit(False),
            tc_fallback=pl.lit(False),
            retried=asked_again,
            forwarded=pl.lit(None, pl.Boolean),
            cache_hit=pl.lit(None, pl.Boolean),
        )
        own = own.with_columns(state=_state())
        hops = own.select(
            "_qid", hop=pl.lit("client"), attempt=pl.lit(0, pl.UInt32), source="source",
            vantage="vantage", ts="ts", ts_response="ts_response", latency_s="latency_s",
            transport="transport", client_ip="client_ip", dns_id="dns_id", rcode="rcode",
        )  # fmt: skip
        parts.append((own.drop("_key"), hops))
    return parts


def _conform(df: pl.DataFrame | None, schema: pl.Schema) -> pl.DataFrame:
    """``df`` with exactly ``schema``'s columns (those it lacks as nulls), in order, cast."""
    if df is None:
        return pl.DataFrame(schema=schema)
    df = df.with_columns(pl.lit(None, t).alias(c) for c, t in schema.items() if c not in df.columns)
    return df.select(list(schema)).cast(dict(schema))  # type: ignore[arg-type]


def _assemble(parts: list[tuple[pl.DataFrame, pl.DataFrame]], notes: list[str]) -> Ledger:
    """Number the queries of every part (``query_id``), concatenate, cast to the schemas."""
    qs, hs = [], []
    base = 0
    for q, h in parts:
        q = q.sort("ts", "_qid", nulls_last=True)
        ids = q.select("_qid", query_id=pl.int_range(base, base + q.height, dtype=pl.UInt64))
        base += q.height
        qs.append(q.with_columns(ids["query_id"]).drop("_qid"))  # in ts order: no join needed
        hs.append(h.join(ids, on="_qid", how="inner", maintain_order="left").drop("_qid"))
    queries = _conform(pl.concat(qs, how="diagonal_relaxed") if qs else None, LEDGER_SCHEMA)
    hops = _conform(pl.concat(hs, how="diagonal_relaxed") if hs else None, HOPS_SCHEMA)
    hops = hops.sort("query_id", maintain_order=True)  # per query: client, upstream, coredns
    return Ledger(
        queries=queries,
        hops=hops,
        notes=tuple(notes),
    )
