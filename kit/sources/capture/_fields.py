"""Typed per-packet rows from tshark's ``-T fields`` text (the tshark engine's half of the rows
both engines share; the native engine makes the same rows in C)."""

from __future__ import annotations

import polars as pl

from kit.sources.capture._frames import (
    _AGG,
    _first,
    _hex,
)


def _epoch_ns(raw: pl.DataFrame, col: str) -> pl.Expr:
    """Nanoseconds since the epoch from tshark's ``frame.time_epoch`` text (exact, no float).

    tshark 3.x/4.x print 9 decimals; when every row has them, one string edit and one integer
    parse do; otherwise the general split.
    """
    c = pl.col(col)
    nine = (c.str.len_bytes() - c.str.find(".", literal=True) == 10).all()
    if raw.height and raw.select(nine.fill_null(False)).item():
        return c.str.replace(".", "", literal=True).cast(pl.Int64, strict=False)
    return _epoch_ns_general(col)


def _epoch_ns_general(col: str) -> pl.Expr:
    parts = pl.col(col).str.split_exact(".", 1)
    sec = parts.struct.field("field_0").cast(pl.Int64, strict=False)
    frac = (
        parts.struct.field("field_1")
        .fill_null("0")
        .str.slice(0, 9)
        .str.pad_end(9, "0")
        .cast(pl.Int64, strict=False)
    )
    return sec * 1_000_000_000 + frac


def _last(col: str) -> pl.Expr:
    """Last occurrence of a multi-occurrence field (cheap when there is only one)."""
    return pl.col(col).str.replace(r"^.*\x1f", "")


def _frag_frames(raw: pl.DataFrame) -> pl.Expr:
    """``frag_frames`` List(UInt32): frames tshark reassembled this packet from (IPv4 and IPv6)."""
    if "frag_frames" in raw.columns:
        return pl.col("frag_frames")
    both = pl.concat_str(
        pl.col("ip_frags"), pl.col("ip6_frags"), separator=_AGG, ignore_nulls=True
    ).str.replace_all(",", _AGG, literal=True)
    return (
        pl.when(both != "")
        .then(both.str.split(_AGG).list.eval(pl.element().cast(pl.UInt32, strict=False)))
        .alias("frag_frames")
    )


def _packets(raw: pl.DataFrame) -> pl.DataFrame:
    """One row per packet with typed columns (internal: keeps ns time and the raw DNS fields)."""
    proto = pl.col("protocols")
    transport = (
        pl.when(proto.str.contains(":icmp", literal=True))
        .then(pl.lit("icmp"))
        .when(proto.str.contains(":tcp", literal=True))
        .then(pl.lit("tcp"))
        .when(proto.str.contains(":udp", literal=True))
        .then(pl.lit("udp"))
        .otherwise(pl.lit("ipfrag"))
    )
    # innermost IP header: the one that comes last in frame.protocols ("...:ip:..." vs "...:ipv6:...")
    both = pl.col("ip_src").is_not_null() & pl.col("ip6_src").is_not_null()
    pos4 = proto.str.find(r":ip:|:ip$").fill_null(-1)
    pos6 = proto.str.find(r":ipv6(\.fraghdr)?:|:ipv6$").fill_null(-1)
    inner6 = pl.when(both).then(pos6 > pos4).otherwise(pl.col("ip_src").is_null())

    def pick(c4: str, c6: str) -> pl.Expr:
        first = pl.col("transport") == "icmp"
        v4 = pl.when(first).then(_first(c4)).otherwise(_last(c4))
        v6 = pl.when(first).then(_first(c6)).otherwise(_last(c6))
        return pl.when(pl.col("_inner6")).then(v6).otherwise(v4)

    def port(cu: str, ct: str) -> pl.Expr:
        return (
            pl.when(pl.col("transport") == "tcp")
            .then(pl.coalesce(_last(ct), _last(cu)))
            .otherwise(pl.coalesce(_last(cu), _last(ct)))
            .cast(pl.UInt16, strict=False)
        )

    is_tcp = pl.col("transport") == "tcp"
    df = raw.with_columns(transport=transport, _inner6=inner6).with_columns(
        frame=pl.col("frame").cast(pl.UInt32),
        ts_ns=_epoch_ns(raw, "epoch"),
        length=pl.col("length").cast(pl.UInt32, strict=False),
        src_ip=pick("ip_src", "ip6_src"),
        dst_ip=pick("ip_dst", "ip6_dst"),
        src_port=port("udp_sport", "tcp_sport"),
        dst_port=port("udp_dport", "tcp_dport"),
        tcp_flags=pl.when(is_tcp).then(_hex(_last("tcp_flags")).cast(pl.UInt16)),
        tcp_stream=pl.when(is_tcp).then(_last("tcp_stream").cast(pl.UInt32, strict=False)),
        tcp_seq=pl.when(is_tcp).then(_last("tcp_seq").cast(pl.UInt32, strict=False)),
        is_retransmission=pl.col("tcp_retx").is_not_null(),
        dns_messages=(pl.col("dns_id").str.count_matches(_AGG, literal=True) + 1)
        .fill_null(0)
        .cast(pl.UInt16),
        # DNS inside HTTP (DoH over HTTP/1.1 or HTTP/2, when tshark can see it)
        via_http=pl.when(pl.col("dns_id").is_not_null())
        .then(proto.str.contains(":http", literal=True))
        .otherwise(False)
        .fill_null(False),
        frag_frames=_frag_frames(raw),
    )
    return df.drop(
        "epoch", "protocols", "ip_src", "ip_dst", "ip6_src", "ip6_dst", "udp_sport", "udp_dport",
        "tcp_sport", "tcp_dport", "tcp_retx", "_inner6", "ip_frags", "ip6_frags",
    )  # fmt: skip
