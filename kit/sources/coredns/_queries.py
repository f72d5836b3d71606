"""Query-log line grammars: the default format's fast split on spaces (raw lines of a known
wrapper layout, or bodies after the general path), and one regex per shape for every era and
for custom formats."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import polars as pl

from kit.sources.coredns._patterns import _RFC3339
from kit.sources.coredns._wrappers import _rfc3339
from kit.sources.coredns.model import _STR, _WRAPPER_COLUMNS, QUERIES_SCHEMA, UTC
from kit.timeutil import duration_s

_QUERY_STR_COLS = (
    "remote",
    "port",
    "id",
    "type",
    "class",
    "name",
    "proto",
    "size",
    "do",
    "bufsize",
    "rcode",
    "rflags",
    "rsize",
    "duration",
    "opcode",
    "when",
)


_CASTS: dict[str, tuple[str, pl.DataType]] = {
    "client_port": ("port", pl.UInt16()),
    "query_id": ("id", pl.UInt16()),
    "req_size": ("size", pl.UInt32()),
    "bufsize": ("bufsize", pl.UInt32()),
    "resp_size": ("rsize", pl.UInt32()),
    "opcode": ("opcode", pl.UInt8()),
}


def _typed_query_exprs(*, with_when: bool, brackets: bool = True) -> list[pl.Expr]:
    """Typed ``_t_*`` query columns from the string columns named in ``_QUERY_STR_COLS``."""
    c = pl.col
    exprs = [
        c(src).cast(dt, strict=False).alias(f"_t_{name}") for name, (src, dt) in _CASTS.items()
    ]
    dur = c("duration").str.strip_suffix("s").cast(pl.Float64, strict=False)
    exprs += [
        (
            c("remote").str.strip_prefix("[").str.strip_suffix("]") if brackets else c("remote")
        ).alias("_t_client_ip"),
        pl.when(c("name") == ".")
        .then(c("name"))
        .otherwise(c("name").str.strip_suffix("."))
        .alias("_t_qname"),
        (c("do") == "true").alias("_t_do_bit"),
        pl.when(c("rcode") == "-").then(None).otherwise(c("rcode")).alias("_t_rcode"),
        pl.when(c("rflags") == "-").then(None).otherwise(c("rflags")).alias("_t_rflags"),
        pl.when(dur.is_finite() & (dur >= 0)).then(dur).otherwise(None).alias("_t_duration_s"),
        (
            c("when").str.to_datetime(
                "%d/%b/%Y:%H:%M:%S %z", time_unit="us", time_zone="UTC", strict=False
            )
            if with_when
            else pl.lit(None, UTC)
        ).alias("_t_when"),
    ]
    return exprs


def _valid_expr() -> pl.Expr:
    """True where every present string field converted (to be used after ``_typed_query_exprs``)."""
    c = pl.col
    return pl.all_horizontal(
        *[c(src).is_null() | c(f"_t_{name}").is_not_null() for name, (src, _) in _CASTS.items()],
        c("proto").is_null() | c("proto").is_in(["udp", "tcp"]),
        c("when").is_null() | c("_t_when").is_not_null(),
    ).fill_null(False)


def _final_query_exprs(source: str) -> list[pl.Expr]:
    c = pl.col
    return [
        pl.coalesce(c("_t_when"), c("ts")).alias("ts"),
        c("_t_client_ip").alias("client_ip"),
        c("_t_client_port").alias("client_port"),
        c("_t_query_id").alias("query_id"),
        c("type").alias("qtype"),
        c("class").alias("qclass"),
        c("_t_qname").alias("qname"),
        c("proto"),
        c("_t_req_size").alias("req_size"),
        c("_t_do_bit").alias("do_bit"),
        c("_t_bufsize").alias("bufsize"),
        c("_t_rcode").alias("rcode"),
        c("_t_rflags").alias("rflags"),
        c("_t_resp_size").alias("resp_size"),
        c("_t_duration_s").alias("duration_s"),
        c("_t_opcode").alias("opcode"),
        *[c(w) for w in _WRAPPER_COLUMNS],
        pl.lit(source, _STR).alias("source"),
        c("line_no").cast(pl.UInt32),
    ]


def _finish_queries(df: pl.DataFrame, source: str) -> pl.DataFrame:
    """Select the documented query columns from a frame holding ``_t_*`` typed columns."""
    return df.select(_final_query_exprs(source)).cast(dict(QUERIES_SCHEMA))  # type: ignore[arg-type]


def _fast_queries(
    df: pl.DataFrame, source: str, *, col: str = "body", layout: _Layout | None = None
) -> pl.DataFrame:
    """The default-format fast path: split on spaces and check the shape.

    With ``layout=None`` the query line is ``col`` after the level was taken off (general path:
    ``ts``, ``level`` and wrapper columns exist). With a ``layout`` ``col`` is the raw line: the
    layout's prefix tokens (RFC 3339 stamp, CRI ``<stamp> <stream> F``, kubectl
    ``[pod/<pod>/<container>]``...), then ``[INFO]``, then the query.

    Returns the query columns of :data:`QUERIES_SCHEMA` for every row of ``df`` plus ``_ok``,
    true where the row is a well-formed default-format query line.
    """
    c = pl.col
    skip = layout.tokens + 1 if layout is not None else 0
    f = [c(f"field_{i + skip}") for i in range(15)]
    pos = f[0].str.find(r":\d+$")
    bracket = f[0].str.starts_with("[").cast(pl.UInt32)
    str_cols = [
        # "[v6]:port" or "v4:port": the address without brackets (ASCII, so bytes == chars)
        f[0].str.slice(bracket, pos - 2 * bracket).alias("remote"),
        f[0].str.slice(pos + 1).alias("port"),
        f[2].alias("id"),
        f[3].str.slice(1).alias("type"),
        f[4].alias("class"),
        f[5].alias("name"),
        f[6].alias("proto"),
        f[7].alias("size"),
        f[8].alias("do"),
        f[9].str.strip_suffix('"').alias("bufsize"),
        f[10].alias("rcode"),
        f[11].alias("rflags"),
        f[12].alias("rsize"),
        f[13].alias("duration"),
        f[14].str.strip_prefix('"').str.strip_suffix('"').alias("opcode"),
        pl.lit(None, _STR).alias("when"),
    ]
    checks = [
        f[1] == "-",
        f[3].str.starts_with('"'),
        f[3].str.len_bytes() > 1,
        f[9].str.ends_with('"'),
        f[8].is_in(["true", "false"]),
        f[13].str.ends_with("s"),
        f[14].is_null() | (f[14].str.starts_with('"') & f[14].str.ends_with('"')),
        ~c(col).str.contains("\\", literal=True),
        c(f"field_{skip + 15}").is_null(),  # nothing after the (optional) opcode
        pos.is_not_null(),
        f[0].str.len_bytes() == f[0].str.len_chars(),
    ]
    if layout is not None:
        checks.append(c(f"field_{layout.tokens}") == "[INFO]")
        keep: list[Any] = [c("line_no")]
        # the wrapper tokens must have the shapes the general path strips (it is the reference)
        for i in range(layout.tokens):
            if i == layout.pod:
                checks.append(c(f"field_{i}").str.contains(f"^{_KPOD}$"))
            elif layout.stream is None or i not in (layout.stream, layout.stream + 1):
                checks.append(c(f"field_{i}").str.contains(f"^{_RFC3339}$"))
        if layout.ts is not None:
            tsf = f"field_{layout.ts}"
            keep.append(_rfc3339(tsf).alias("ts"))
        else:
            keep.append(pl.lit(None, UTC).alias("ts"))
        if layout.pod is not None:
            tok = c(f"field_{layout.pod}")
            inner = tok.str.slice(5, tok.str.len_chars() - 6).str.splitn("/", 2)
            keep += [
                inner.struct.field("field_0").alias("pod"),
                inner.struct.field("field_1").alias("container"),
            ]
        else:
            keep += [pl.lit(None, _STR).alias("pod"), pl.lit(None, _STR).alias("container")]
        keep.append(pl.lit(None, _STR).alias("node"))
        if layout.stream is not None:
            sf = c(f"field_{layout.stream}")
            tag = c(f"field_{layout.stream + 1}")
            checks += [
                sf.is_in(["stdout", "stderr"]),
                tag == "F",
                # an F record that ends a run of P records is the tail of a longer line
                ~(tag == "P").shift(1, fill_value=False),
            ]
            keep.append(sf.alias("stream"))
        else:
            keep.append(pl.lit(None, _STR).alias("stream"))
        n_split = skip + 15
        pre = [c("line_no"), c(col)]
    else:
        checks.append(c("level").is_null() | (c("level") == "INFO"))
        keep = [c("ts"), c("line_no"), *[c(w) for w in _WRAPPER_COLUMNS]]
        n_split = 15
        pre = [c("ts"), c("line_no"), *[c(w) for w in _WRAPPER_COLUMNS], c("level"), c(col)]
    shape = pl.all_horizontal(checks).fill_null(False)
    lf = (
        df.lazy()
        .select(*pre, c(col).str.split_exact(" ", n_split).alias("_f"))
        .unnest("_f")
        .select(*keep, *str_cols, shape.alias("_shape"))
        .with_columns(_typed_query_exprs(with_when=False, brackets=False))
        .select(
            *_final_query_exprs(source),
            (c("_shape") & _valid_expr() & c("_t_duration_s").is_not_null()).alias("_ok"),
        )
    )
    out = lf.collect()
    if layout is not None and layout.ts is not None:
        # a wrapper stamp that did not parse means the line is not what the fast path assumes
        out = out.with_columns((pl.col("_ok") & pl.col("ts").is_not_null()).alias("_ok"))
    return out


@dataclass(frozen=True)
class _Layout:
    """A raw-line shape the fast path splits directly: token positions before ``[INFO]``."""

    regex: str
    tokens: int
    ts: int | None = None
    stream: int | None = None
    pod: int | None = None


_KPOD = r"\[pod/[^/\] ]+/[^\] ]+\]"
_LAYOUTS = (
    _Layout(r"^\[INFO\] ", 0),
    _Layout(rf"^{_RFC3339} \[INFO\] ", 1, ts=0),
    _Layout(rf"^{_RFC3339} (?:stdout|stderr) F \[INFO\] ", 3, ts=0, stream=1),
    _Layout(rf"^{_KPOD} \[INFO\] ", 1, pod=0),
    _Layout(rf"^{_KPOD} {_RFC3339} \[INFO\] ", 2, pod=0, ts=1),
    # CoreDNS 1.2.6-1.6.2 stamp its own lines: its stamp (the inner one) is kept, as in _with_ts
    _Layout(rf"^{_RFC3339} {_RFC3339} \[INFO\] ", 2, ts=1),
    _Layout(rf"^{_RFC3339} (?:stdout|stderr) F {_RFC3339} \[INFO\] ", 4, ts=3, stream=1),
)


def _guess_layout(lines: pl.Series) -> _Layout | None:
    """The raw-line shape most of ~256 lines spread over the block have (see ``_fast_queries``)."""
    sample = lines.gather_every(max(1, lines.len() // 256))
    best, best_n = None, 0
    for layout in _LAYOUTS:
        n = int(sample.str.contains(layout.regex).sum())
        if n > best_n:
            best, best_n = layout, n
    return best


def _regex_queries(df: pl.DataFrame, regex: str) -> pl.DataFrame:
    """Query columns by one regex (slow path, custom formats); adds ``_ok`` and ``_t_*``."""
    groups = df["body"].str.extract_groups(regex).struct.unnest()
    missing = [pl.lit(None, _STR).alias(k) for k in _QUERY_STR_COLS if k not in groups.columns]
    base = pl.concat(
        [df, groups.select([k for k in _QUERY_STR_COLS if k in groups.columns])], how="horizontal"
    )
    base = base.with_columns(*missing)
    matched = pl.any_horizontal([pl.col(k).is_not_null() for k in _QUERY_STR_COLS])
    out = base.with_columns(*_typed_query_exprs(with_when=True), matched.alias("_matched"))
    out = out.with_columns(_valid_expr().alias("_valid"))
    # Go durations (CoreDNS < 1.1.4): few distinct values, converted in Python
    need = out.filter(pl.col("_t_duration_s").is_null() & pl.col("duration").is_not_null())
    if need.height:
        uniq = need["duration"].unique().to_list()
        mapping = {u: duration_s(u) for u in uniq}
        out = out.with_columns(
            pl.coalesce(
                pl.col("_t_duration_s"),
                pl.col("duration").replace_strict(mapping, default=None, return_dtype=pl.Float64),
            ).alias("_t_duration_s")
        )
    return out.with_columns(
        (
            pl.col("_matched")
            & pl.col("_valid")
            & (pl.col("duration").is_null() | pl.col("_t_duration_s").is_not_null())
        ).alias("_ok")
    )
