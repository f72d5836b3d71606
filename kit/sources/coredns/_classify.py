"""Classifying lines into the four frames: the fast part (well-formed default-format queries) and
the general part (wrappers, levels, then queries, errors, other lines, rejects with a reason)."""

from __future__ import annotations

import polars as pl

from kit.schema import empty_frame
from kit.sources.coredns._errlines import _errors
from kit.sources.coredns._formats import _CustomFormat
from kit.sources.coredns._patterns import (
    _RE_BANNER,
    _RE_CRI,
    _RE_KLOG,
    _RE_PLUGIN,
    _RE_QUERY_ANY,
    _RE_QUERY_LIKE,
)
from kit.sources.coredns._queries import (
    _fast_queries,
    _finish_queries,
    _guess_layout,
    _regex_queries,
)
from kit.sources.coredns._wrappers import (
    _decode_json,
    _split_level,
    _strip_cri,
    _strip_prefixes,
    _with_ts,
)
from kit.sources.coredns.model import (
    _STR,
    _UNRECOGNISED,
    _WRAPPER_COLUMNS,
    ERRORS_SCHEMA,
    OTHER_SCHEMA,
    QUERIES_SCHEMA,
    REJECTED_SCHEMA,
    _concat,
    _empty_out,
)


def _fast_part(
    df: pl.DataFrame, *, source: str, custom: _CustomFormat | None
) -> tuple[pl.DataFrame | None, pl.DataFrame]:
    """Split off the well-formed default-format query lines of ``df`` (``line_no``, ``line``).

    Returns their :data:`QUERIES_SCHEMA` rows (or None when none matched) and the rows left for
    :func:`_general_part`. Plain, kubectl-stamped or CRI query lines are split straight from the
    raw line (see :func:`_fast_queries`).
    """
    if df.height == 0 or not (custom is None or custom.is_default):
        return None, df
    layout = _guess_layout(df["line"])
    if layout is None:
        return None, df
    fast = _fast_queries(df, source, col="line", layout=layout)
    ok = fast["_ok"]
    if not ok.any():
        return None, df
    every = bool(ok.all())
    quick = (fast if every else fast.filter(ok)).drop("_ok")
    quick = quick.cast(dict(QUERIES_SCHEMA))  # type: ignore[arg-type]
    return quick, (df.clear() if every else df.filter(~ok))


def _general_part(
    df: pl.DataFrame, *, source: str, custom: _CustomFormat | None
) -> tuple[dict[str, pl.DataFrame], int]:
    """Classify any lines (``line_no``, ``line``): wrappers, levels, queries, errors, other."""
    if df.height == 0:
        return _empty_out(), 0
    df = df.with_columns(
        pl.col("line").alias("body"),
        pl.lit(None, _STR).alias("ts_wrap"),
        pl.lit(None, _STR).alias("ts_cd"),
        pl.lit(None, _STR).alias("golog"),
        *[pl.lit(None, _STR).alias(c) for c in _WRAPPER_COLUMNS],
        pl.lit(None, _STR).alias("pre_reason"),
    )
    joined = 0
    if df["body"].str.starts_with("{").any():
        df, j = _decode_json(df)
        joined += j
    if df["body"].str.contains(_RE_CRI).any():
        df, j = _strip_cri(df)
        joined += j
    df = _strip_prefixes(df)
    df = _split_level(df)
    return _classify(df, source=source, custom=custom), joined


_KLOG_LEVELS = {"I": "INFO", "W": "WARNING", "E": "ERROR", "F": "FATAL"}


def _classify(
    df: pl.DataFrame, *, source: str, custom: _CustomFormat | None
) -> dict[str, pl.DataFrame]:
    """Split a chunk (prefixes and level already split off) into the four frames."""
    c = pl.col
    df = _with_ts(df)
    queries: list[pl.DataFrame] = []
    rejected: list[pl.DataFrame] = []
    has_pre = df["pre_reason"].null_count() < df.height
    if has_pre:
        pre_bad = df.filter(c("pre_reason").is_not_null())
        rejected.append(
            pre_bad.select(
                pl.lit(source, _STR).alias("source"),
                c("line_no").cast(pl.UInt32),
                c("pre_reason").alias("reason"),
                c("line"),
            )
        )
        df = df.filter(c("pre_reason").is_null())
    rem = df
    custom_failed: pl.Series | None = None
    if custom is not None and not custom.is_default and rem.height:
        # the Corefile's own format first; lines it does not match still get the default formats
        # (a Corefile change mid-file), then errors, banners...
        cand = _info_like(rem) & ~rem["body"].str.starts_with("plugin/") & (rem["body"] != "")
        if cand.any():
            parsed = _regex_queries(rem.filter(cand), custom.regex)
            good = parsed["_ok"]
            if good.any():
                queries.append(_finish_queries(parsed.filter(good), source))
            done = cand.clone().scatter(cand.arg_true(), good)
            rem = rem.filter(~done)
            custom_failed = (cand.filter(~done)).alias("custom_failed")
    if rem.height:
        fast = _fast_queries(rem, source)
        ok = fast["_ok"]
        if ok.all():
            queries.append(fast.drop("_ok").cast(dict(QUERIES_SCHEMA)))  # type: ignore[arg-type]
            rem = rem.clear()
        else:
            if ok.any():
                queries.append(fast.filter(ok).drop("_ok").cast(dict(QUERIES_SCHEMA)))  # type: ignore[arg-type]
            rem = rem.filter(~ok)
            if custom_failed is not None:
                custom_failed = custom_failed.filter(~ok)
    if rem.height:
        qlike = _info_like(rem) & rem["body"].str.contains(_RE_QUERY_LIKE)
        if qlike.any():
            parsed = _regex_queries(rem.filter(qlike), _RE_QUERY_ANY)
            good = parsed["_ok"]
            if good.any():
                queries.append(_finish_queries(parsed.filter(good), source))
            if not good.all():
                rejected.append(
                    _rejected(
                        parsed.filter(~good),
                        "query line does not match any CoreDNS log format",
                        source,
                    )
                )
            rem = rem.filter(~qlike)
            if custom_failed is not None:
                custom_failed = custom_failed.filter(~qlike)
    if custom_failed is not None:
        rem = rem.with_columns(custom_failed.alias("_custom_failed"))
    else:
        rem = rem.with_columns(pl.lit(False).alias("_custom_failed"))
    errors, emask = _errors(rem, source) if rem.height else (empty_frame(ERRORS_SCHEMA), None)
    if emask is not None:
        rem = rem.filter(~emask)
    other, unrec = _other(rem, source)
    if unrec.height:
        reason = (
            pl.when(c("body").str.starts_with("plugin/errors:"))
            .then(pl.lit("errors-plugin line does not parse"))
            .when(c("_custom_failed"))
            .then(pl.lit(f"line does not match log_format {custom.text if custom else ''!r}"))
            .otherwise(pl.lit(_UNRECOGNISED))
        )
        rejected.append(
            unrec.select(
                pl.lit(source, _STR).alias("source"),
                c("line_no").cast(pl.UInt32),
                reason.alias("reason"),
                c("line"),
            )
        )
    rej = _concat(rejected, REJECTED_SCHEMA)
    if len(rejected) > 1:
        rej = rej.sort("line_no")
    q = _concat(queries, QUERIES_SCHEMA)
    if len(queries) > 1:
        q = q.sort("line_no")
    return {"queries": q, "errors": errors, "other": other, "rejected": rej}


def _info_like(df: pl.DataFrame) -> pl.Series:
    """Rows that may be query-log lines: level ``INFO`` or none (CoreDNS < 1.2.6)."""
    lvl = df["level"]
    return (lvl.is_null() | (lvl == "INFO")).fill_null(False)


def _rejected(df: pl.DataFrame, reason: str, source: str) -> pl.DataFrame:
    return df.select(
        pl.lit(source, _STR).alias("source"),
        pl.col("line_no").cast(pl.UInt32),
        pl.lit(reason, _STR).alias("reason"),
        pl.col("line"),
    )


def _other(df: pl.DataFrame, source: str) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Recognised non-query, non-error lines; returns them and the unrecognised rest."""
    if df.height == 0:
        return empty_frame(OTHER_SCHEMA), df
    c = pl.col
    b = c("body")
    lvl = c("level")
    klog = b.str.extract(_RE_KLOG, 1)
    plugin = b.str.extract(_RE_PLUGIN, 1)
    kind = (
        pl.when(lvl.is_null() & (b == ""))
        .then(pl.lit("blank"))
        .when(plugin.is_not_null() & ~b.str.starts_with("plugin/errors:"))
        .then(pl.lit("plugin"))
        .when(b.str.contains(_RE_BANNER))
        .then(pl.lit("banner"))
        .when(lvl.is_not_null() & ~b.str.starts_with("plugin/errors:"))
        .then(pl.lit("message"))
        .when(b.str.starts_with("maxprocs: "))
        .then(pl.lit("maxprocs"))
        .when(klog.is_not_null())
        .then(pl.lit("klog"))
        .otherwise(None)
    )
    x = df.with_columns(kind.alias("kind"), plugin.alias("plugin"), klog.alias("_klog"))
    # node-cache prints its Corefile after "Using config file:" (formats.md §2.4)
    start = c("body").str.ends_with("Using config file:")
    x = x.with_columns(
        pl.when(c("kind").is_not_null()).then(start).otherwise(None).forward_fill().alias("_cfg")
    ).with_columns(
        pl.when(c("kind").is_null() & c("_cfg").fill_null(False))
        .then(pl.lit("config"))
        .otherwise(c("kind"))
        .alias("kind")
    )
    rec = x.filter(c("kind").is_not_null())
    unrec = x.filter(c("kind").is_null())
    message = (
        pl.when(c("kind") == "plugin")
        .then(b.str.replace(_RE_PLUGIN, ""))
        .when(c("kind") == "klog")
        .then(b.str.replace(_RE_KLOG, ""))
        .otherwise(b)
    )
    level = (
        pl.when(c("kind") == "klog")
        .then(c("_klog").replace_strict(_KLOG_LEVELS, default=None, return_dtype=_STR))
        .otherwise(lvl)
    )
    out = rec.select(
        c("ts"),
        level.alias("level"),
        c("kind"),
        pl.when(c("kind") == "plugin").then(c("plugin")).otherwise(None).alias("plugin"),
        message.alias("message"),
        *[c(w) for w in _WRAPPER_COLUMNS],
        pl.lit(source, _STR).alias("source"),
        c("line_no").cast(pl.UInt32),
    )
    return out.cast(dict(OTHER_SCHEMA)), unrec  # type: ignore[arg-type]
