"""What resolvers logged besides queries: error and warning lines, CoreDNS upstream errors, onsets.

- :func:`log_messages` / :func:`message_summary`: the error and warning lines a resolver did log
  (CoreDNS ``other`` and ``errors``, unbound ``other``), grouped by message pattern;
- :func:`error_summary`: CoreDNS upstream errors per upstream, transport, op and kind, with their
  first and last time (works on logs without timestamps too);
- :func:`onset`: when a counted signal started, against the change;
- :func:`error_coverage`: how much of a log the error counts can see.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence

import polars as pl

from kit.sources.coredns import LOOP_PROBE, CoreDNSLog
from kit.sources.unbound import ResolverLog
from kit.timeutil import UTC as _UTC

log = logging.getLogger(__name__)

__all__ = [
    "MESSAGES_SCHEMA",
    "error_coverage",
    "error_summary",
    "log_messages",
    "message_summary",
    "onset",
]


MESSAGES_SCHEMA = pl.Schema(
    {
        "ts": _UTC,
        "resolver": pl.String(),
        "level": pl.String(),
        "message": pl.String(),
        "source": pl.String(),
        "line_no": pl.UInt32(),
    }
)
"""Schema of :func:`log_messages`: time (null when the line has none), ``resolver``
(``coredns``/``unbound``), ``level`` (lower case: ``error``, ``warning``...), ``message`` (as
logged), ``source`` and ``line_no``."""

_DEFAULT_LEVELS = ("error", "warning", "warn", "fatal", "crit", "critical")


def _queries_of(data: CoreDNSLog | ResolverLog | pl.DataFrame | None) -> pl.DataFrame | None:
    if data is None:
        return None
    if isinstance(data, CoreDNSLog | ResolverLog):
        return data.queries
    if isinstance(data, pl.DataFrame):
        return data
    raise TypeError(f"expected a CoreDNSLog, ResolverLog or DataFrame, not {type(data).__name__}")


def log_messages(
    coredns: CoreDNSLog | None = None,
    unbound: ResolverLog | None = None,
    *,
    levels: Sequence[str] | None = _DEFAULT_LEVELS,
) -> pl.DataFrame:
    """The resolver's own messages (not query lines) at the given levels, from either log.

    CoreDNS: its ``other`` lines and its ``errors`` lines (the ``errors`` plugin's upstream
    failures, level ``error`` when the line has none); unbound: its ``other`` lines.

    Parameters
    ----------
    coredns, unbound
        The logs read by :func:`kit.read_coredns_log` / :func:`kit.read_unbound_log`, or None.
    levels
        Levels to keep, compared case-insensitively (default: error, warning and worse); None
        keeps every level, including lines without one.

    Returns
    -------
    polars.DataFrame
        :data:`MESSAGES_SCHEMA`, sorted by ``ts`` (nulls last), ``source``, ``line_no``.
    """
    frames = []
    if coredns is not None:
        err = coredns.errors.select(
            "ts",
            pl.lit("coredns").alias("resolver"),
            pl.col("level").fill_null("error").alias("level"),
            "message",
            "source",
            "line_no",
        )
        frames += [
            coredns.other.select(
                "ts",
                pl.lit("coredns").alias("resolver"),
                "level",
                "message",
                "source",
                "line_no",
            ),
            err,
        ]
    if unbound is not None:
        frames.append(
            unbound.other.select(
                "ts",
                pl.lit("unbound").alias("resolver"),
                "level",
                "message",
                "source",
                "line_no",
            )
        )
    if not frames:
        return pl.DataFrame(schema=MESSAGES_SCHEMA)
    df = pl.concat([f.cast(dict(MESSAGES_SCHEMA)) for f in frames]).with_columns(  # type: ignore[arg-type]
        pl.col("level").str.to_lowercase()
    )
    if levels is not None:
        df = df.filter(pl.col("level").is_in([lv.lower() for lv in levels]))
    return df.sort(["ts", "source", "line_no"], nulls_last=True)


_VARIABLE_PARTS = (
    (r"\[[0-9a-fA-F:.]+\]:\d+", "<addr>"),  # [v6]:port
    (r"\b\d{1,3}(?:\.\d{1,3}){3}(?::\d+)?\b", "<addr>"),  # v4[:port]
    (r"\b[0-9]+(?:\.[0-9]+)?(?:ms|s|µs|us|ns)?\b", "<n>"),
)


def message_summary(messages: pl.DataFrame, *, top: int | None = 20) -> pl.DataFrame:
    """Messages grouped by pattern: addresses and numbers replaced, so repeats collapse.

    Parameters
    ----------
    messages
        :func:`log_messages` output (``ts``, ``resolver``, ``level``, ``message``).
    top
        Keep the ``top`` most frequent patterns; None keeps all.

    Returns
    -------
    polars.DataFrame
        ``resolver``, ``level``, ``pattern`` (String: the message with IPv4/IPv6 addresses (and
        ports) as ``<addr>`` and numbers as ``<n>``), ``lines`` (UInt32), ``first_ts`` and
        ``last_ts`` (Datetime UTC, null when no line has a time), ``example`` (String, the first
        message as logged). Sorted by ``lines`` descending, then ``pattern``.
    """
    pattern = pl.col("message").fill_null("")
    for regex, repl in _VARIABLE_PARTS:
        pattern = pattern.str.replace_all(regex, repl)
    out = (
        messages.with_columns(pattern.alias("pattern"))
        .group_by(["resolver", "level", "pattern"])
        .agg(
            pl.len().cast(pl.UInt32).alias("lines"),
            pl.col("ts").min().alias("first_ts"),
            pl.col("ts").max().alias("last_ts"),
            pl.col("message").first().alias("example"),
        )
        .sort(["lines", "pattern"], descending=[True, False])
    )
    return out.head(top) if top is not None else out


def error_summary(
    data: CoreDNSLog | pl.DataFrame,
    *,
    by: Sequence[str] = ("upstream", "transport", "op", "kind"),
) -> pl.DataFrame:
    """CoreDNS upstream errors per upstream, transport, op and kind, with their time span.

    Unlike :func:`kit.sources.coredns.error_counts` this needs no timestamps (logs copied from
    ``kubectl logs`` without ``--timestamps`` have none) and counts ``consolidate`` summaries as
    the number of errors they stand for.

    Parameters
    ----------
    data
        A :class:`~kit.sources.coredns.CoreDNSLog` or its ``errors`` frame.
    by
        Grouping columns of the errors frame.

    Returns
    -------
    polars.DataFrame
        The ``by`` columns, ``lines`` (UInt32, error lines), ``errors`` (UInt32, errors they stand
        for: 1 per plain line, ``consolidated_count`` per summary), ``loop_probes`` (UInt32, lines
        about the ``loop`` plugin's ``HINFO`` self-test queries, :data:`kit.sources.coredns.LOOP_PROBE`:
        the upstream failed them too, but no client waited), ``first_ts`` / ``last_ts``
        (Datetime UTC, null when no line has a time), ``without_ts`` (UInt32, lines without time).
        Sorted by ``errors`` descending, then ``by``.
    """
    errors = data.errors if isinstance(data, CoreDNSLog) else data
    keys = list(by)
    for col in keys:
        if col not in errors.columns:
            raise KeyError(f"column {col!r} not in the errors frame (columns: {errors.columns})")
    return (
        errors.group_by(keys)
        .agg(
            pl.len().cast(pl.UInt32).alias("lines"),
            pl.col("consolidated_count").fill_null(1).sum().cast(pl.UInt32).alias("errors"),
            LOOP_PROBE.fill_null(False).sum().cast(pl.UInt32).alias("loop_probes"),
            pl.col("ts").min().alias("first_ts"),
            pl.col("ts").max().alias("last_ts"),
            pl.col("ts").is_null().sum().cast(pl.UInt32).alias("without_ts"),
        )
        .sort(["errors", *keys], descending=[True, *[False] * len(keys)], nulls_last=True)
    )


def onset(
    counts: pl.DataFrame,
    *,
    value: str = "count",
    by: Sequence[str] = (),
    change_time: dt.datetime | None = None,
) -> pl.DataFrame:
    """When a counted signal (errors, SYN retransmissions, slow queries) started, against the change.

    Parameters
    ----------
    counts
        Binned counts: ``ts`` (bin start, UTC), the ``value`` column and the ``by`` columns, e.g.
        :func:`kit.sources.coredns.error_counts` or :func:`connect_failures`.
    value
        The count column.
    by
        Grouping columns (one row each).
    change_time
        The suspected change (aware, or naive = UTC); None leaves ``since_change_s`` null.

    Returns
    -------
    polars.DataFrame
        The ``by`` columns, ``total`` (Float64, sum of ``value``), ``first_ts`` (Datetime UTC,
        start of the first bin with a count above 0; null if none), ``since_change_s`` (Float64,
        ``first_ts - change_time`` in seconds; a value between ``-bin_s`` and 0 means the first
        counted bin is the one that contains the change), ``bin_s`` (Float64, the bin width,
        inferred as the smallest step between bin starts; 0 with a single bin),
        ``before_change`` (Float64, counts in bins that end at or before the change) and
        ``after_change`` (Float64, the other counts: the bin containing the change is counted
        after it); both null without a change time. Sorted by ``total`` descending.
    """
    keys = list(by)
    ct = None
    if change_time is not None:
        ct = change_time if change_time.tzinfo else change_time.replace(tzinfo=dt.UTC)
    steps = counts.select(pl.col("ts").unique().sort().diff().dt.total_microseconds()).to_series()
    step_us = int(steps.drop_nulls().min() or 0)  # type: ignore[arg-type]
    bin_end = pl.col("ts") + pl.duration(microseconds=step_us)
    v = pl.col(value).cast(pl.Float64)
    aggs = [
        v.sum().alias("total"),
        pl.col("ts").filter(v > 0).min().alias("first_ts"),
    ]
    if ct is not None:
        aggs += [
            v.filter(bin_end <= ct).sum().alias("before_change"),
            v.filter(bin_end > ct).sum().alias("after_change"),
        ]
    else:
        aggs += [
            pl.lit(None, dtype=pl.Float64).alias("before_change"),
            pl.lit(None, dtype=pl.Float64).alias("after_change"),
        ]
    grouped = counts.group_by(keys).agg(aggs) if keys else counts.select(aggs)
    since = (
        ((pl.col("first_ts") - pl.lit(ct)).dt.total_microseconds() / 1e6)
        if ct is not None
        else pl.lit(None, dtype=pl.Float64)
    )
    return (
        grouped.with_columns(since.alias("since_change_s"), pl.lit(step_us / 1e6).alias("bin_s"))
        .select(
            *keys, "total", "first_ts", "since_change_s", "bin_s", "before_change", "after_change"
        )
        .sort(["total", *keys], descending=[True, *[False] * len(keys)])
    )


def error_coverage(
    coredns: CoreDNSLog | None = None, unbound: ResolverLog | None = None
) -> pl.DataFrame:
    """What each given log can say about upstream failures, stated plainly.

    Returns
    -------
    polars.DataFrame
        One row per given log: ``resolver`` (String), ``lines`` (UInt32, all lines read),
        ``error_lines`` (UInt32, lines at level error/warning or worse, CoreDNS ``errors`` lines
        included), ``upstream_errors`` (UInt32, CoreDNS ``errors`` lines; null for unbound, which
        has no such structured lines), ``note`` (String: what the log does and does not record).
    """
    rows = []
    if coredns is not None:
        lines = coredns.lines_read  # records plus the CRI/docker continuation lines joined
        msgs = log_messages(coredns=coredns)
        rows.append(
            {
                "resolver": "coredns",
                "lines": lines,
                "error_lines": msgs.height,
                "upstream_errors": coredns.errors.height,
                "note": (
                    "the errors plugin logs each failed upstream exchange (e.g. 'read tcp ...: "
                    "i/o timeout'); none logged means none failed, or the errors plugin is off"
                ),
            }
        )
    if unbound is not None:
        lines = unbound.queries.height + unbound.received.height + unbound.other.height
        lines += unbound.rejected.height
        msgs = log_messages(unbound=unbound)
        rows.append(
            {
                "resolver": "unbound",
                "lines": lines,
                "error_lines": msgs.height,
                "upstream_errors": None,
                "note": (
                    "unbound does not log upstream timeouts or unanswered TCP connections at the "
                    "default verbosity (1): their absence here proves nothing; use the capture"
                ),
            }
        )
    return pl.DataFrame(
        rows,
        schema={
            "resolver": pl.String,
            "lines": pl.UInt32,
            "error_lines": pl.UInt32,
            "upstream_errors": pl.UInt32,
            "note": pl.String,
        },
    )
