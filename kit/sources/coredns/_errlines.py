"""Errors-plugin lines (every era) and ``consolidate`` summaries, with the Go ``net.OpError`` parts
(op, transport, local and upstream address) and an error kind."""

from __future__ import annotations

import polars as pl

from kit.schema import empty_frame
from kit.sources.coredns._patterns import _RE_CONSOLIDATE, _RE_ERR, _RE_ERR_V1, _RE_NETERR
from kit.sources.coredns.model import _STR, _WRAPPER_COLUMNS, ERRORS_SCHEMA
from kit.timeutil import duration_s


def _error_kind(col: pl.Expr) -> pl.Expr:
    low = col.str.to_lowercase()
    return (
        pl.when(low.str.contains("timeout|timed out"))
        .then(pl.lit("timeout"))
        .when(low.str.contains("connection refused"))
        .then(pl.lit("refused"))
        .when(low.str.contains("connection reset|reset by peer"))
        .then(pl.lit("reset"))
        .when(low.str.contains(r"(?:^|[ :])(?:unexpected )?eof\$?$"))
        .then(pl.lit("eof"))
        .when(low.str.contains("overflow|buffer size too small"))
        .then(pl.lit("overflow"))
        .when(low.str.contains("no healthy|no upstream host"))
        .then(pl.lit("no_healthy"))
        .when(low.str.contains("concurrent queries exceeded"))
        .then(pl.lit("max_concurrent"))
        .otherwise(pl.lit("other"))
    )


def _errors(df: pl.DataFrame, source: str) -> tuple[pl.DataFrame, pl.Series]:
    """Errors-plugin lines and consolidate summaries among ``df``; returns them and a match mask."""
    c = pl.col
    has_level = c("level").is_not_null()
    cons = (
        df["body"].str.extract_groups(_RE_CONSOLIDATE).struct.unnest().rename(lambda k: f"_c_{k}")
    )
    err = df["body"].str.extract_groups(_RE_ERR).struct.unnest().rename(lambda k: f"_e_{k}")
    v1 = df["body"].str.extract_groups(_RE_ERR_V1).struct.unnest().rename(lambda k: f"_v_{k}")
    x = pl.concat([df, cons, err, v1], how="horizontal").with_columns(
        (has_level & c("_c_count").is_not_null()).alias("_is_cons"),
        (has_level & c("_c_count").is_null() & c("_e_rcode_num").is_not_null()).alias("_is_err"),
        (c("level").is_null() & c("_v_rcode_num").is_not_null()).alias("_is_v1"),
    )
    mask = (x["_is_cons"] | x["_is_err"] | x["_is_v1"]).fill_null(False)
    x = x.filter(mask)
    if x.height == 0:
        return empty_frame(ERRORS_SCHEMA), mask
    periods = x["_c_period"].drop_nulls().unique().to_list()
    pmap = {p: duration_s(p) for p in periods}
    msg = (
        pl.when(c("_is_cons"))
        .then(c("_c_pattern"))
        .when(c("_is_err"))
        .then(c("_e_message"))
        .otherwise(c("_v_message"))
    )
    qname = pl.when(c("_is_err")).then(c("_e_qname")).otherwise(c("_v_qname"))
    x = x.with_columns(
        msg.alias("message"),
        pl.when(qname == ".").then(qname).otherwise(qname.str.strip_suffix(".")).alias("qname"),
        pl.when(c("_is_err")).then(c("_e_qtype")).otherwise(c("_v_qtype")).alias("qtype"),
        pl.when(c("_is_err"))
        .then(c("_e_rcode_num"))
        .otherwise(c("_v_rcode_num"))
        .cast(pl.UInt16, strict=False)
        .alias("rcode_num"),
        pl.when(c("_is_v1")).then(pl.lit("ERROR")).otherwise(c("level")).alias("level"),
        pl.coalesce(
            c("_v_when").str.to_datetime(
                "%d/%b/%Y:%H:%M:%S %z", time_unit="us", time_zone="UTC", strict=False
            ),
            c("ts"),
        ).alias("ts"),
    )
    net = x["message"].str.extract_groups(_RE_NETERR).struct.unnest()
    x = pl.concat([x, net.rename(lambda k: f"_n_{k}")], how="horizontal")
    cons_row = c("_is_cons")
    up = c("_n_upstream")
    out = x.select(
        c("ts"),
        c("level"),
        c("rcode_num"),
        c("qname"),
        c("qtype"),
        pl.when(cons_row).then(None).otherwise(c("_n_op")).alias("op"),
        pl.when(cons_row).then(None).otherwise(c("_n_transport")).alias("transport"),
        pl.when(cons_row).then(None).otherwise(c("_n_local")).alias("local_addr"),
        pl.when(cons_row).then(None).otherwise(up).alias("upstream"),
        pl.when(cons_row)
        .then(None)
        .otherwise(up.str.extract(r"^\[?(.*?)\]?:\d+$", 1))
        .alias("server_ip"),
        pl.when(cons_row)
        .then(None)
        .otherwise(up.str.extract(r":(\d+)$", 1).cast(pl.UInt16, strict=False))
        .alias("server_port"),
        _error_kind(c("message")).alias("kind"),
        c("message"),
        c("_c_count").cast(pl.UInt32, strict=False).alias("consolidated_count"),
        c("_c_period")
        .replace_strict(pmap, default=None, return_dtype=pl.Float64)
        .alias("consolidated_period_s"),
        *[c(w) for w in _WRAPPER_COLUMNS],
        pl.lit(source, _STR).alias("source"),
        c("line_no").cast(pl.UInt32),
    )
    return out.cast(dict(ERRORS_SCHEMA)), mask  # type: ignore[arg-type]
