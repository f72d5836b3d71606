"""Frames from tshark's fields: packets, DNS messages paired into transactions, TCP connections.

Shared by both capture engines: the tshark one (:mod:`kit.sources.capture`) and the native one
(:mod:`kit.sources.capture._native`) build their frames with the same code, so they agree row
for row (``tests/test_capture_native.py``). The frame schemas (:data:`PACKETS_SCHEMA`,
:data:`TCP_SCHEMA`, :data:`META_SCHEMA`, and :data:`DNS_SCHEMA` from :mod:`kit.schema`, which
every source of DNS transactions shares) are re-exported by :mod:`kit.sources.capture`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from kit.net import syn_expr, synack_expr
from kit.schema import DNS_SCHEMA
from kit.timeutil import UTC as _UTC

#: The ports DNS servers listen on by default (``dns_ports=`` of :func:`read_capture`).
DEFAULT_DNS_PORTS: tuple[int, ...] = (53,)


def _capture_name(path: Path) -> str:
    name = path.name
    if name.lower().endswith(".gz"):
        name = name[:-3]
    for suf in _CAPTURE_SUFFIXES:
        if name.lower().endswith(suf):
            return name[: -len(suf)]
    return Path(name).stem or name


def _dns_related(pk: pl.DataFrame, ports: Sequence[int]) -> pl.DataFrame:
    """Keep the packets the frames are about; drop what the base filter let through by accident.

    Kept: UDP/TCP packets carrying DNS or with a DNS port at either end, ICMP errors quoting DNS,
    IP fragments. Dropped: UDP/TCP packets on other ports without DNS (e.g. HTTP inside a GRE/ERSPAN
    tunnel whose *outer* packets were fragmented: the fragment filter kept them), together with the
    fragments tshark reassembled them from (``ip.fragment``/``ipv6.fragment``).
    """
    if pk.is_empty():
        return pk.drop("frag_frames")
    on_port = pl.col("src_port").is_in(list(ports)) | pl.col("dst_port").is_in(list(ports))
    other = pl.col("transport").is_in(["udp", "tcp"]) & ~on_port.fill_null(False)
    drop = other & (pl.col("dns_messages") == 0)
    gone = pk.filter(drop)
    if gone.is_empty():
        return pk.drop("frag_frames")
    frags = gone.select(pl.col("frag_frames").explode().drop_nulls().unique())["frag_frames"]
    pk = pk.filter(
        ~drop & ~((pl.col("transport") == "ipfrag") & pl.col("frame").is_in(frags.implode()))
    )
    return pk.drop("frag_frames")


def syn_retransmission_expr(flags: str | pl.Expr = "tcp_flags") -> pl.Expr:
    """The one rule for a retransmitted SYN in a capture: a SYN (without ACK, :func:`kit.net.syn_expr`)
    after the first SYN of its TCP connection (``tcp_stream``), in capture order.

    Both counts use it: the per-packet flag (:func:`_syn_retransmissions`, ``is_retransmission``)
    and the per-connection count (``syn_retransmits`` of :func:`_tcp`, its sum per connection,
    which is therefore 0 when no SYN was captured). Boolean, null where ``flags`` is null.
    """
    syn = syn_expr(flags)
    return syn & (syn.cum_sum().over("tcp_stream") > 1)


def _syn_retransmissions(pk: pl.DataFrame) -> pl.DataFrame:
    """Mark retransmitted SYNs (:func:`syn_retransmission_expr`) in ``is_retransmission``.

    tshark flags these itself; the rule is applied again so chunked loads (where the first SYN
    may sit in the previous chunk) and the native engine give the same answer. The rule runs on
    the SYNs alone (in capture order, so "after the first SYN of its connection" is the same),
    not as a window over every packet (0.4 GB at 10 M packets).
    """
    syn = (
        pk.select("tcp_flags", "tcp_stream")
        .with_row_index("_i")
        .filter(syn_expr(pl.col("tcp_flags").cast(pl.Int64)).fill_null(False))
    )
    again = syn.filter(syn_retransmission_expr())["_i"]
    if again.is_empty():
        return pk
    mask = pl.repeat(False, pk.height, dtype=pl.Boolean, eager=True).scatter(again, True)
    return pk.with_columns(is_retransmission=pl.col("is_retransmission") | mask)


def _damage_notes(notes: list[str], info: dict[str, Any]) -> list[str]:
    """Say after which packet a damaged file broke (capinfos counted the packets before it).

    tshark's own damage notes (which cannot say where) are replaced by one counted note.
    """
    n = info.get("broke_after")
    if n is None:
        return notes
    damage = str(info.get("damage") or "")
    what = _CUT_SHORT if damage.startswith("cut short") else _DAMAGED
    why = damage.removeprefix("cut short").strip("; ")
    if what == _CUT_SHORT and not why:
        why = "writer killed mid-write?"
    note = (
        f"{what} after packet {n}" + (f" ({why})" if why else "") + f"; the {n} packet(s) "
        "before it were read"
    )
    return [x for x in notes if not x.startswith((_DAMAGED, _CUT_SHORT))] + [note]


def _root(qname: pl.Expr) -> pl.Expr:
    """tshark shows the root name as ``<Root>``; the kit's schemas say ``"."``."""
    return pl.when(qname == "<Root>").then(pl.lit(".")).otherwise(qname)


def _build(
    pk: pl.DataFrame,
    path: Path,
    capture: str,
    version: str | None,
    opts: dict[str, Any],
    info: dict[str, Any],
    notes: list[str],
    truncated: bool,
    gzipped: bool,
    paired: list[tuple[pl.DataFrame, dict[str, int], dict[str, int]]] | None = None,
) -> _FileResult:
    """The four frames of one file from its packet rows ``pk``. The native engine pairs in C
    and hands over, in a one-item list that this empties (so they are freed once used), the
    transactions (what :func:`_transactions` returns), the messages counted by role (its
    counts) and the messages left out (what :func:`_messages` counts); else the messages are
    taken from ``pk`` and paired here."""
    if paired:
        t, counts, mcounts = paired.pop()
    else:
        m, mcounts = _messages(pk)
        t, counts = _pair(m)
        del m
    in_icmp, in_http, unparsed = mcounts["in_icmp"], mcounts["in_http"], mcounts["unparsed"]
    first_ns = pk["ts_ns"].min() if pk.height else None
    last_ns = pk["ts_ns"].max() if pk.height else None
    total = info.get("packets")
    if total is None:
        total = pk.height
        notes.append(
            f"capinfos could not read the file ({info['error']})"
            if info.get("error")
            else "capinfos not available"
        )
        notes[-1] += ": packet total is the number of DNS-related packets"
    if info.get("link_type") and pk.height == 0 and total:
        notes.append(
            f"no DNS-related packet among {total} (link type {info['link_type']}; "
            "tshark may have no dissector for it)"
        )
    if in_icmp:
        notes.append(f"{in_icmp} DNS message(s) quoted inside ICMP errors are not transactions")
    if unparsed:
        notes.append(f"{unparsed} DNS message(s) with incomplete headers were not paired")
    if in_http:
        notes.append(
            f"{in_http} DNS-over-HTTP(S) message(s) left out of dns (counted in dns_over_http): "
            "DoH queries carry ID 0, so pairing by ID would mix different names"
        )
    # censoring window
    lat = (
        ((t["r_ts_ns"] - t["ts_ns"]) / 1e9).drop_nulls()
        if t.height
        else pl.Series([], dtype=pl.Float64)
    )
    if opts.get("censor_s") is not None:
        window = float(opts["censor_s"])
    else:
        mx = float(lat.max()) if len(lat) else 0.0  # type: ignore[arg-type]
        window = min(max(mx + 0.2, 2.0), 10.0)
    end_ns = last_ns if last_ns is not None else 0
    dns = t.select(
        ts=_ns_to_ts(pl.col("ts_ns")),
        ts_response=_ns_to_ts(pl.col("r_ts_ns")),
        latency_s=(pl.col("r_ts_ns") - pl.col("ts_ns")) / 1e9,
        answered=pl.col("r_ts_ns").is_not_null(),
        censored=pl.col("r_ts_ns").is_null() & ((end_ns - pl.col("ts_ns")) < window * 1e9),
        client_ip=pl.col("src_ip"),
        client_port=pl.col("src_port"),
        server_ip=pl.col("dst_ip"),
        server_port=pl.col("dst_port"),
        transport=pl.col("transport"),
        dns_id=pl.col("dns_id"),
        qname=pl.col("qname"),
        qtype=_name_map(QTYPES, "TYPE", pl.col("qtype_n")),
        rcode=_name_map(RCODES, "RCODE", (pl.col("r_flags") & 0xF).cast(pl.Int64)),
        tc=(pl.col("r_flags") & 0x0200) > 0,
        answers=pl.col("r_answers"),
        retransmissions=pl.col("retransmissions"),
        tcp_stream=pl.col("tcp_stream"),
        capture=pl.lit(capture),
        frame_query=pl.col("frame"),
        frame_response=pl.col("r_frame"),
        opcode=_name_map(OPCODES, "OPCODE", ((pl.col("flags").cast(pl.Int64) & 0x7800) // 0x800)),
    )
    del t, lat
    # rows come in frame order, so by time already unless the capture's clock went back: the
    # sort (a copy of the whole frame) only then
    if not (dns["frame_query"].is_sorted() and dns["ts"].is_sorted()):
        dns = dns.sort("ts", "frame_query")
    dns = dns.cast(dict(DNS_SCHEMA))  # type: ignore[arg-type]
    packets = pk.select(
        ts=_ns_to_ts(pl.col("ts_ns")),
        capture=pl.lit(capture),
        frame=pl.col("frame"),
        src_ip=pl.col("src_ip"),
        dst_ip=pl.col("dst_ip"),
        src_port=pl.col("src_port"),
        dst_port=pl.col("dst_port"),
        transport=pl.col("transport"),
        length=pl.col("length"),
        tcp_flags=pl.col("tcp_flags"),
        tcp_stream=pl.col("tcp_stream"),
        is_retransmission=pl.col("is_retransmission"),
        dns_messages=pl.col("dns_messages"),
    ).cast(dict(PACKETS_SCHEMA))  # type: ignore[arg-type]
    tcp = _tcp(pk, capture, opts.get("dns_ports") or DEFAULT_DNS_PORTS)
    n_msgs = int(pk["dns_messages"].sum() or 0) if pk.height else 0
    meta = pl.DataFrame(
        [
            {
                "capture": capture,
                "path": os.fspath(path),
                "file_format": info.get("file_format"),
                "link_type": info.get("link_type"),
                "gzipped": gzipped,
                "packets": total,
                "packets_kept": pk.height,
                "packets_skipped": max(0, total - pk.height),
                "first_ts": first_ns,
                "last_ts": last_ns,
                "truncated": truncated,
                "dns_messages": n_msgs,
                "dns_queries": counts["queries"],
                "dns_query_retransmissions": counts["retx"],
                "dns_responses": counts["answers"],
                "dns_duplicate_responses": counts["dup"],
                "dns_orphan_responses": counts["orphan"],
                "dns_in_icmp": in_icmp,
                "dns_unparsed": unparsed,
                "censor_window_s": window,
                "notes": notes,
                "tshark_version": version,
                "from_cache": False,
                "dns_over_http": in_http,
                "engine": info.get("engine", "tshark"),
                "engine_reason": info.get("engine_reason"),
            }
        ],
        schema_overrides={"first_ts": pl.Int64, "last_ts": pl.Int64},
    ).with_columns(first_ts=_ns_to_ts(pl.col("first_ts")), last_ts=_ns_to_ts(pl.col("last_ts")))
    meta = meta.cast(dict(META_SCHEMA))  # type: ignore[arg-type]
    for n in notes:
        log.warning("%s: %s", path, n)
    return _FileResult(dns, tcp, packets, meta)


log = logging.getLogger(__name__)


_CAPTURE_SUFFIXES = (".pcap", ".pcapng", ".cap", ".dmp")


#: tshark's names for DNS message opcodes (RFC 1035, 1996, 2136, 8490); others are ``OPCODE<n>``.
OPCODES: dict[int, str] = {0: "QUERY", 1: "IQUERY", 2: "STATUS", 4: "NOTIFY", 5: "UPDATE", 6: "DSO"}


def _schema(cols: dict[str, Any]) -> pl.Schema:
    return pl.Schema(cols)


PACKETS_SCHEMA = _schema(
    {
        "ts": _UTC,
        "capture": pl.String,
        "frame": pl.UInt32,
        "src_ip": pl.String,
        "dst_ip": pl.String,
        "src_port": pl.UInt16,
        "dst_port": pl.UInt16,
        "transport": pl.String,
        "length": pl.UInt32,
        "tcp_flags": pl.UInt16,
        "tcp_stream": pl.UInt32,
        "is_retransmission": pl.Boolean,
        "dns_messages": pl.UInt16,
    }
)


META_SCHEMA = _schema(
    {
        "capture": pl.String,
        "path": pl.String,
        "file_format": pl.String,
        "link_type": pl.String,
        "gzipped": pl.Boolean,
        "packets": pl.UInt64,
        "packets_kept": pl.UInt64,
        "packets_skipped": pl.UInt64,
        "first_ts": _UTC,
        "last_ts": _UTC,
        "truncated": pl.Boolean,
        "dns_messages": pl.UInt64,
        "dns_queries": pl.UInt64,
        "dns_query_retransmissions": pl.UInt64,
        "dns_responses": pl.UInt64,
        "dns_duplicate_responses": pl.UInt64,
        "dns_orphan_responses": pl.UInt64,
        "dns_in_icmp": pl.UInt64,
        "dns_unparsed": pl.UInt64,
        "censor_window_s": pl.Float64,
        "notes": pl.List(pl.String),
        "tshark_version": pl.String,
        "from_cache": pl.Boolean,
        "dns_over_http": pl.UInt64,
        "engine": pl.String,
        "engine_reason": pl.String,
    }
)


QTYPES: dict[int, str] = {
    1: "A", 2: "NS", 5: "CNAME", 6: "SOA", 12: "PTR", 13: "HINFO", 15: "MX", 16: "TXT",
    17: "RP", 18: "AFSDB", 24: "SIG", 25: "KEY", 28: "AAAA", 29: "LOC", 33: "SRV", 35: "NAPTR",
    36: "KX", 37: "CERT", 39: "DNAME", 41: "OPT", 42: "APL", 43: "DS", 44: "SSHFP", 45: "IPSECKEY",
    46: "RRSIG", 47: "NSEC", 48: "DNSKEY", 49: "DHCID", 50: "NSEC3", 51: "NSEC3PARAM", 52: "TLSA",
    53: "SMIMEA", 55: "HIP", 59: "CDS", 60: "CDNSKEY", 61: "OPENPGPKEY", 62: "CSYNC",
    63: "ZONEMD", 64: "SVCB", 65: "HTTPS", 99: "SPF", 108: "EUI48", 109: "EUI64", 249: "TKEY",
    250: "TSIG", 251: "IXFR", 252: "AXFR", 255: "ANY", 256: "URI", 257: "CAA",
}  # fmt: skip


RCODES: dict[int, str] = {
    0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP", 5: "REFUSED",
    6: "YXDOMAIN", 7: "YXRRSET", 8: "NXRRSET", 9: "NOTAUTH", 10: "NOTZONE",
}  # fmt: skip


@dataclass(frozen=True)
class _FileResult:
    dns: pl.DataFrame
    tcp: pl.DataFrame
    packets: pl.DataFrame
    meta: pl.DataFrame


_DAMAGED = "file is damaged or corrupt"


_CUT_SHORT = "file ends in the middle of a packet"


def _ns_to_ts(expr: pl.Expr) -> pl.Expr:
    return (expr // 1000).cast(pl.Datetime("us")).dt.replace_time_zone("UTC")


def _messages(pk: pl.DataFrame) -> tuple[pl.DataFrame, dict[str, int]]:
    """One row per DNS message carried directly over UDP/TCP, whatever its opcode.

    Returns (messages, counts) where counts has ``in_icmp`` (quoted inside ICMP errors),
    ``in_http`` (DNS over HTTP, not paired: see :func:`read_capture`) and ``unparsed`` (headers
    tshark could not give completely, or a carrier that is neither UDP nor TCP): with the
    messages, they add up to every DNS message tshark saw.
    """
    has = pk.filter(pl.col("dns_messages") > 0)
    icmp = pl.col("transport") == "icmp"
    direct = pl.col("transport").is_in(["udp", "tcp"]) & ~pl.col("via_http")

    def n_of(cond: pl.Expr) -> pl.Expr:
        return pl.col("dns_messages").cast(pl.Int64).filter(cond).sum()

    counts = has.select(
        in_icmp=n_of(icmp),
        in_http=n_of(~icmp & pl.col("via_http")),
        elsewhere=n_of(~icmp & ~pl.col("via_http") & ~direct),
    ).row(0, named=True)
    counts = {k: int(v or 0) for k, v in counts.items()}
    has = has.filter(direct).with_columns(
        _split("dns_id"), _split("dns_flags"), _split("dns_qd"), _split("dns_an"),
        _split("dns_zd"), _split("dns_pr"), _split("dns_qname"), _split("dns_qtype"),
    )  # fmt: skip
    n = pl.col("dns_messages").cast(pl.UInt32)

    def ln(c: str) -> pl.Expr:
        return pl.col(c).list.len().fill_null(0)

    # an UPDATE (opcode 5) message has ZOCOUNT/PRCOUNT where a query has QDCOUNT/ANCOUNT
    lens_ok = (
        (ln("dns_flags") == n)
        & (ln("dns_qd") + ln("dns_zd") == n)
        & (ln("dns_an") + ln("dns_pr") == n)
    ).fill_null(False)
    bad = has.filter(~lens_ok)
    unparsed = int(bad["dns_messages"].cast(pl.Int64).sum() or 0) + counts.pop("elsewhere")
    if unparsed:
        log.warning("%d DNS messages with incomplete headers skipped", unparsed)
    counts["unparsed"] = unparsed
    has = has.filter(lens_ok)
    single = has.filter(pl.col("dns_messages") == 1)
    multi = has.filter(pl.col("dns_messages") > 1)
    cols = ["frame", "ts_ns", "src_ip", "dst_ip", "src_port", "dst_port", "transport", "tcp_stream"]
    # the common case: one message per packet, the first question (UPDATE: zone) is the question
    one = single.select(
        *cols,
        msg=pl.lit(0, dtype=pl.Int64),
        dns_id=_hex(pl.col("dns_id").list.first()).cast(pl.UInt16),
        flags=_hex(pl.col("dns_flags").list.first()).cast(pl.UInt16),
        answers=pl.coalesce(pl.col("dns_an").list.first(), pl.col("dns_pr").list.first()).cast(
            pl.UInt16, strict=False
        ),
        qname=pl.col("dns_qname").list.first(),
        qtype_n=pl.col("dns_qtype").list.first().cast(pl.Int64, strict=False),
    )
    # several messages in one packet (pipelined DNS over TCP): questions assigned by QDCOUNT
    upd = (_hex(pl.col("dns_flags")) & 0x7800) == 0x2800
    mm = (
        multi.select(
            *cols,
            "dns_id",
            "dns_flags",
            "dns_qd",
            "dns_an",
            "dns_zd",
            "dns_pr",
            "dns_qname",
            "dns_qtype",
            n_names=pl.col("dns_qname").list.len().fill_null(0),
            msg=pl.int_ranges(pl.col("dns_id").list.len()),
        )
        .explode("dns_id", "dns_flags", "msg")
        .with_columns(_upd=upd.fill_null(False))
        .with_columns(
            # position of this message among the frame's UPDATE / other messages
            _k=(pl.col("_upd").cast(pl.Int64).cum_sum() - pl.col("_upd").cast(pl.Int64)).over(
                "frame"
            ),
            _j=((~pl.col("_upd")).cast(pl.Int64).cum_sum() - (~pl.col("_upd")).cast(pl.Int64)).over(
                "frame"
            ),
        )
        .with_columns(
            qd=pl.when(pl.col("_upd"))
            .then(pl.col("dns_zd").list.get(pl.col("_k"), null_on_oob=True))
            .otherwise(pl.col("dns_qd").list.get(pl.col("_j"), null_on_oob=True))
            .cast(pl.Int64, strict=False)
            .fill_null(0),
            dns_an=pl.when(pl.col("_upd"))
            .then(pl.col("dns_pr").list.get(pl.col("_k"), null_on_oob=True))
            .otherwise(pl.col("dns_an").list.get(pl.col("_j"), null_on_oob=True)),
        )
        .with_columns(
            q_off=(pl.col("qd").cum_sum() - pl.col("qd")).over("frame"),
            qd_total=pl.col("qd").sum().over("frame"),
        )
    )
    aligned = pl.col("qd_total") == pl.col("n_names")
    idx = pl.when(aligned & (pl.col("qd") > 0)).then(pl.col("q_off"))
    mm = mm.select(
        *cols,
        "msg",
        dns_id=_hex(pl.col("dns_id")).cast(pl.UInt16),
        flags=_hex(pl.col("dns_flags")).cast(pl.UInt16),
        answers=pl.col("dns_an").cast(pl.UInt16, strict=False),
        qname=pl.col("dns_qname").list.get(idx, null_on_oob=True),
        qtype_n=pl.col("dns_qtype").list.get(idx, null_on_oob=True).cast(pl.Int64, strict=False),
    )
    m = pl.concat([one, mm], how="vertical").sort("frame", "msg") if mm.height else one
    m = m.with_columns(qr=(pl.col("flags") & 0x8000) > 0, qname=_root(pl.col("qname")))
    return m, counts


def _pair(m: pl.DataFrame) -> tuple[pl.DataFrame, dict[str, int]]:
    """Pair queries and responses like tshark; returns (transactions, counts).

    ``m`` is in capture order. A conversation is the TCP stream, or the unordered UDP address/port
    pair (hashed to 64 bits). When ``m`` has ``role`` and ``txn`` already (the native engine
    applies these rules in C while it reads), only the transactions are assembled.
    """
    if "role" in m.columns and "txn" in m.columns:
        return _transactions(m.with_row_index("ev"))
    ep_a = pl.struct(ip=pl.col("src_ip"), port=pl.col("src_port")).hash(seed=1)
    ep_b = pl.struct(ip=pl.col("dst_ip"), port=pl.col("dst_port")).hash(seed=1)
    conv = (
        pl.when(pl.col("transport") == "tcp")
        .then(pl.col("tcp_stream").cast(pl.UInt64))
        .otherwise(
            pl.struct(lo=pl.min_horizontal(ep_a, ep_b), hi=pl.max_horizontal(ep_a, ep_b)).hash(
                seed=2
            )
            | (1 << 63)
        )
    )
    key = ["conv", "dns_id"]
    ev = m.with_row_index("ev").with_columns(conv=conv.fill_null(0))
    ev = ev.with_columns(
        _n=pl.len().over(key),
        _pos=pl.int_range(pl.len()).over(key),
        _first_qr=pl.col("qr").first().over(key),
        _last_qr=pl.col("qr").last().over(key),
        _first_ev=pl.col("ev").first().over(key),
    )
    pair2 = (pl.col("_n") == 2) & ~pl.col("_first_qr") & pl.col("_last_qr")
    # role: 0 new query, 1 retransmitted query, 2 answer, 3 duplicate response, 4 orphan response
    ev = ev.with_columns(
        role=pl.when(pl.col("_n") == 1)
        .then(pl.when(pl.col("qr")).then(4).otherwise(0))
        .when(pair2)
        .then(pl.when(pl.col("_pos") == 0).then(0).otherwise(2))
        .cast(pl.Int8),
        txn=pl.when((pl.col("_n") == 1) & ~pl.col("qr"))
        .then(pl.col("ev").cast(pl.Int64))
        .when(pair2)
        .then(pl.col("_first_ev").cast(pl.Int64)),
    )
    cx = ev.filter(pl.col("role").is_null())
    if cx.height:
        role: dict[int, int] = {}
        txn: dict[int, int] = {}
        cur: dict[tuple[int, int], list[Any]] = {}
        for e, c, i, qr, t, fr in zip(
            cx["ev"], cx["conv"], cx["dns_id"], cx["qr"], cx["ts_ns"], cx["frame"], strict=True
        ):
            k = (c, i)
            st = cur.get(k)  # [txn ev, req ts, req frame, answered]
            if not qr:
                if (
                    st is not None
                    and not st[3]
                    and fr != st[2]
                    and (t - st[1]) < RETRANSMISSION_TIMER_S * 1e9
                ):
                    role[e], txn[e] = 1, st[0]
                else:
                    cur[k] = [e, t, fr, False]
                    role[e], txn[e] = 0, e
            elif st is None:
                role[e] = 4
            elif not st[3]:
                st[3] = True
                role[e], txn[e] = 2, st[0]
            else:
                role[e], txn[e] = 3, st[0]
        fix = pl.DataFrame(
            {
                "ev": list(role),
                "_role": list(role.values()),
                "_txn": [txn.get(e) for e in role],
            },
            schema={"ev": pl.UInt32, "_role": pl.Int8, "_txn": pl.Int64},
        )
        ev = (
            ev.join(fix, on="ev", how="left")
            .with_columns(role=pl.coalesce("role", "_role"), txn=pl.coalesce("txn", "_txn"))
            .drop("_role", "_txn")
        )
    return _transactions(ev)


def _name_map(mapping: dict[int, str], prefix: str, expr: pl.Expr) -> pl.Expr:
    return expr.replace_strict(
        mapping,
        default=pl.concat_str([pl.lit(prefix), expr.cast(pl.String)]),
        return_dtype=pl.String,
    )


def _tcp(pk: pl.DataFrame, capture: str, ports: Sequence[int] = DEFAULT_DNS_PORTS) -> pl.DataFrame:
    """One row per TCP connection with a DNS port at one end (:data:`TCP_SCHEMA`).

    The client is the sender of the first SYN, else the receiver of the first SYN/ACK, else (the
    handshake happened before the capture) the sender of the first DNS query or the receiver of
    the first DNS response, else the side not on a DNS port, else the sender of the first packet.
    """
    p = pk.filter((pl.col("transport") == "tcp") & pl.col("tcp_stream").is_not_null())
    on_port = pl.col("src_port").is_in(list(ports)) | pl.col("dst_port").is_in(list(ports))
    p = p.filter(on_port.fill_null(False).any().over("tcp_stream"))
    flags = pl.col("tcp_flags").cast(pl.Int64)
    dflags = _hex(_first("dns_flags"))
    p = p.with_columns(
        syn=syn_expr(flags),
        syn_again=syn_retransmission_expr(flags).fill_null(False),
        synack=synack_expr(flags),
        fin=(flags & 0x01) > 0,
        rst=(flags & 0x04) > 0,
        query=(pl.col("dns_messages") > 0) & ((dflags & 0x8000) == 0).fill_null(False),
        response=(pl.col("dns_messages") > 0) & ((dflags & 0x8000) > 0).fill_null(False),
        src_on_port=pl.col("src_port").is_in(list(ports)).fill_null(False),
        dst_on_port=pl.col("dst_port").is_in(list(ports)).fill_null(False),
    )

    def first(col: str, when: str) -> pl.Expr:
        return pl.col(col).filter(pl.col(when)).first()

    fwd = pl.struct(
        cip=pl.col("src_ip"),
        cport=pl.col("src_port"),
        sip=pl.col("dst_ip"),
        sport=pl.col("dst_port"),
    )
    rev = pl.struct(
        cip=pl.col("dst_ip"),
        cport=pl.col("dst_port"),
        sip=pl.col("src_ip"),
        sport=pl.col("src_port"),
    )
    p = p.with_columns(_fwd=fwd, _rev=rev)
    g = p.group_by("tcp_stream", maintain_order=True).agg(
        n=pl.len(),
        ts_first=pl.col("ts_ns").min(),
        ts_last=pl.col("ts_ns").max(),
        n_syn_again=pl.col("syn_again").cast(pl.Int64).sum(),
        ts_syn=pl.col("ts_ns").filter(pl.col("syn")).min(),
        ts_synack=pl.col("ts_ns").filter(pl.col("synack")).min(),
        ts_rst=pl.col("ts_ns").filter(pl.col("rst")).min(),
        ts_fin=pl.col("ts_ns").filter(pl.col("fin")).max(),
        dns_messages=pl.col("dns_messages").cast(pl.UInt32).sum(),
        _ends=pl.coalesce(
            first("_fwd", "syn"),
            first("_rev", "synack"),
            first("_fwd", "query"),
            first("_rev", "response"),
            pl.col("_fwd").filter(pl.col("dst_on_port") & ~pl.col("src_on_port")).first(),
            pl.col("_rev").filter(pl.col("src_on_port") & ~pl.col("dst_on_port")).first(),
            pl.col("_fwd").first(),
        ),
    )
    out = g.select(
        stream=pl.col("tcp_stream"),
        client_ip=pl.col("_ends").struct.field("cip"),
        client_port=pl.col("_ends").struct.field("cport"),
        server_ip=pl.col("_ends").struct.field("sip"),
        server_port=pl.col("_ends").struct.field("sport"),
        ts_syn=_ns_to_ts(pl.col("ts_syn")),
        # a connection open before the capture started has no SYN: 0 retransmitted
        syn_retransmits=pl.col("n_syn_again"),
        ts_synack=_ns_to_ts(pl.col("ts_synack")),
        handshake_s=(pl.col("ts_synack") - pl.col("ts_syn")) / 1e9,
        established=pl.when(pl.col("ts_synack").is_not_null())
        .then(True)
        .when(pl.col("ts_syn").is_not_null())
        .then(False),
        ts_end=_ns_to_ts(pl.coalesce("ts_rst", "ts_fin")),
        end_reason=pl.when(pl.col("ts_rst").is_not_null())
        .then(pl.lit("rst"))
        .when(pl.col("ts_fin").is_not_null())
        .then(pl.lit("fin"))
        .otherwise(pl.lit("open")),
        dns_messages=pl.col("dns_messages"),
        packets=pl.col("n"),
        ts_first=_ns_to_ts(pl.col("ts_first")),
        ts_last=_ns_to_ts(pl.col("ts_last")),
        capture=pl.lit(capture),
        syn_seen=pl.col("ts_syn").is_not_null(),
    ).sort("stream")
    return out.cast(dict(TCP_SCHEMA))  # type: ignore[arg-type]


#: tshark's ``dns.retransmission_timer`` default: a repeated query within this many seconds of the
#: first one (same conversation and ID, still unanswered) is a retransmission.
RETRANSMISSION_TIMER_S = 5.0


TCP_SCHEMA = _schema(
    {
        "stream": pl.UInt32,
        "client_ip": pl.String,
        "client_port": pl.UInt16,
        "server_ip": pl.String,
        "server_port": pl.UInt16,
        "ts_syn": _UTC,
        "syn_retransmits": pl.UInt32,
        "ts_synack": _UTC,
        "handshake_s": pl.Float64,
        "established": pl.Boolean,
        "ts_end": _UTC,
        "end_reason": pl.String,
        "dns_messages": pl.UInt32,
        "packets": pl.UInt32,
        "ts_first": _UTC,
        "ts_last": _UTC,
        "capture": pl.String,
        "syn_seen": pl.Boolean,
    }
)


def _split(col: str) -> pl.Expr:
    return pl.col(col).str.split(_AGG)


def _hex(expr: pl.Expr) -> pl.Expr:
    return expr.str.strip_prefix("0x").str.to_integer(base=16, strict=False)


def _first(col: str) -> pl.Expr:
    return pl.col(col).str.replace(r"\x1f.*$", "")


def _transactions(ev: pl.DataFrame) -> tuple[pl.DataFrame, dict[str, int]]:
    """Transactions and counts from messages with ``ev`` (row index), ``role`` and ``txn``.

    ``txn`` is the row of the transaction's query (``ev`` counts rows from 0), so a response's
    columns are scattered to its query's row and the queries taken in one filter: no join (each
    join of the ~3.6 M queries of a 10 M-packet capture copied them again).
    """
    role = ev["role"]
    counts = {
        "queries": int((role == 0).sum()),
        "retx": int((role == 1).sum()),
        "answers": int((role == 2).sum()),
        "dup": int((role == 3).sum()),
        "orphan": int((role == 4).sum()),
    }
    n = ev.height
    ans = ev.filter(pl.col("role") == 2).select("txn", "ts_ns", "frame", "flags", "answers")
    at = ans["txn"]

    def scattered(name: str, values: pl.Series) -> pl.Series:
        out = pl.repeat(None, n, dtype=values.dtype, eager=True).alias(name)
        return out.scatter(at, values) if len(at) else out

    retx = ev.filter(pl.col("role") == 1)["txn"].value_counts(name="k")
    nretx = pl.repeat(0, n, dtype=pl.UInt32, eager=True).alias("retransmissions")
    if retx.height:
        nretx = nretx.scatter(retx["txn"], retx["k"].cast(pl.UInt32))
    t = ev.with_columns(
        pl.col("ev").cast(pl.Int64),
        nretx,
        scattered("r_ts_ns", ans["ts_ns"]),
        scattered("r_frame", ans["frame"]),
        scattered("r_flags", ans["flags"]),
        scattered("r_answers", ans["answers"]),
    ).filter(role == 0)
    return t, counts


_AGG = "\x1f"


def latency_by(
    dns: pl.DataFrame,
    *,
    by: Sequence[str] = ("server_ip", "qtype", "transport"),
    quantiles: Sequence[float] = (0.5, 0.9, 0.99),
) -> pl.DataFrame:
    """Latency quantiles of answered transactions per group (wraps :func:`kit.stats.latency_quantiles`).

    Parameters
    ----------
    dns
        ``Capture.dns``.
    by
        Group columns.
    quantiles
        Quantiles to compute (0..1).

    Returns
    -------
    polars.DataFrame
        As :func:`kit.stats.latency_quantiles` over ``latency_s`` (seconds).
    """
    from kit.stats import latency_quantiles

    return latency_quantiles(
        dns.filter(pl.col("answered")), value="latency_s", by=list(by), quantiles=list(quantiles)
    )
