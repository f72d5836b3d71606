"""Source-independent analyses of resolver logs (CoreDNS and unbound), for notebooks 02 and 03.

:func:`combined_queries` puts the answered queries of a :class:`kit.sources.coredns.CoreDNSLog` and of a
:class:`kit.sources.unbound.ResolverLog` into one frame (:data:`COMBINED_SCHEMA`); the other helpers work on
that frame (or on either ``queries`` frame, since they share the column names ``ts``,
``client_ip``, ``qname``, ``qtype``, ``rcode``, ``duration_s``):

- :func:`slow_by`: where the slow queries are, per qtype, rcode, proto, client or name, and whether
  they concentrate there (a *pattern*) or are spread like all queries (no pattern);
- :func:`slow_over_time`: queries and slow queries per time bin;
- :func:`duration_histogram`: log-binned durations, the tidy input of a latency-modes chart;
- :func:`log_messages` / :func:`message_summary`: the error and warning lines a resolver did log
  (CoreDNS ``other`` and ``errors``, unbound ``other``), grouped by message pattern;
- :func:`error_summary`: CoreDNS upstream errors per upstream, transport, op and kind, with their
  first and last time (works on logs without timestamps too);
- :func:`connect_failures`: the capture-derived counterpart of upstream errors: TCP connection
  attempts per upstream and minute, with SYN retransmissions and attempts never established.

``qname`` follows the kit's convention: the name in presentation form without the trailing dot,
case preserved (the root is ``"."``).
"""

from __future__ import annotations

import datetime as dt
import logging
import math
from collections.abc import Sequence

import polars as pl

from kit.sources.coredns import LOOP_PROBE, CoreDNSLog
from kit.sources.unbound import ResolverLog
from kit.timeutil import UTC as _UTC
from kit.timeutil import parse_duration, time_bins

__all__ = [
    "COMBINED_SCHEMA",
    "MESSAGES_SCHEMA",
    "bin_every",
    "bin_label",
    "change_note",
    "combined_queries",
    "connect_failures",
    "duration_histogram",
    "error_coverage",
    "error_summary",
    "failure_signal",
    "log_messages",
    "message_summary",
    "n_events",
    "nonzero_bins",
    "onset",
    "peak_rate",
    "slow_by",
    "slow_over_time",
    "span_every",
    "timing_note",
    "with_domain",
]

log = logging.getLogger(__name__)


COMBINED_SCHEMA = pl.Schema(
    {
        "ts": _UTC,
        "resolver": pl.String(),
        "client_ip": pl.String(),
        "qname": pl.String(),
        "qtype": pl.String(),
        "rcode": pl.String(),
        "proto": pl.String(),
        "cached": pl.Boolean(),
        "answered": pl.Boolean(),
        "duration_s": pl.Float64(),
        "source": pl.String(),
        "line_no": pl.UInt32(),
    }
)
"""Schema of :func:`combined_queries`.

- ``ts`` (Datetime[us, UTC]): when the query was logged (CoreDNS: answer time; unbound: reply line).
- ``resolver`` (String): ``"coredns"`` or ``"unbound"``.
- ``client_ip`` (String): the querying client.
- ``qname`` (String): queried name, presentation form without the trailing dot, case preserved.
- ``qtype`` (String): query type mnemonic (``A``, ``AAAA``...).
- ``rcode`` (String): response code (``NOERROR``, ``NXDOMAIN``...).
- ``proto`` (String): ``udp``/``tcp`` between client and resolver (CoreDNS only; null for unbound,
  whose reply lines do not say).
- ``cached`` (Boolean): answered from the cache (unbound only; null for CoreDNS, whose log does not
  say).
- ``answered`` (Boolean): a response was written to the client. CoreDNS: false for lines logged
  without one (``NOERROR - 0 6.010923182s`` before 1.8.5, ``- - 0 ...`` since: the forward gave up
  and the client got nothing), from ``resp_size > 0``; null when the line has no size. unbound:
  true (it logs replies only).
- ``duration_s`` (Float64, seconds): time the resolver took to answer.
- ``source`` (String) and ``line_no`` (UInt32): file and 1-based line of the log line.
"""

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


_NICE_S = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400)  # fmt: skip


def bin_every(ts: pl.Series, every: str = "1m", *, max_bins: int = 1000) -> str:
    """A bin width for counts over ``ts``: ``every``, or a coarser nice width if ``every`` would
    give more than ``max_bins`` bins over the span of ``ts`` (a log spanning months).

    Parameters
    ----------
    ts
        Timestamps (nulls ignored).
    every
        The wanted width, a polars duration of seconds, minutes, hours or days (``"10s"``,
        ``"1m"``, ``"1h"``, ``"1d"``).
    max_bins
        Most bins acceptable.

    Returns
    -------
    str
        ``every`` itself, or the smallest of 1 s, 2 s, 5 s, 10 s, 15 s, 30 s, 1 min... 1 day (then
        whole days) that keeps the span within ``max_bins`` bins, as ``"<n>s"``.

    Raises
    ------
    ValueError
        ``every`` is not a duration of the forms above.
    """
    want = _whole_s(every)
    t = ts.drop_nulls()
    if t.len() < 2 or want <= 0:
        return every
    lo, hi = t.min(), t.max()
    assert isinstance(lo, dt.datetime) and isinstance(hi, dt.datetime)
    span = (hi - lo).total_seconds()
    if span / want <= max_bins:
        return every
    need = span / max_bins
    for w in _NICE_S:
        if w >= need:
            return f"{w}s"
    return f"{math.ceil(need / 86400) * 86400}s"


def combined_queries(
    coredns: CoreDNSLog | pl.DataFrame | None = None,
    unbound: ResolverLog | pl.DataFrame | None = None,
) -> pl.DataFrame:
    """The answered queries of a CoreDNS log and/or an unbound log, in one frame.

    Parameters
    ----------
    coredns
        A :class:`~kit.sources.coredns.CoreDNSLog` (or its ``queries`` frame), or None.
    unbound
        A :class:`~kit.sources.unbound.ResolverLog` (or its ``queries`` frame), or None.

    Returns
    -------
    polars.DataFrame
        :data:`COMBINED_SCHEMA`, one row per answered query of either log, sorted by ``ts``
        (nulls last), then ``source`` and ``line_no``. Empty (with the schema) when both are None.
    """
    frames = []
    for name, data in (("coredns", coredns), ("unbound", unbound)):
        q = _queries_of(data)
        if q is None:
            continue
        cols = []
        for col, dtype in COMBINED_SCHEMA.items():
            if col == "resolver":
                cols.append(pl.lit(name, dtype=pl.String).alias(col))
            elif col == "answered" and col not in q.columns:
                answered = (
                    (pl.col("resp_size") > 0)
                    if "resp_size" in q.columns
                    else pl.lit(name == "unbound")
                )
                cols.append(answered.cast(dtype).alias(col))
            elif col in q.columns:
                cols.append(pl.col(col).cast(dtype).alias(col))
            else:
                cols.append(pl.lit(None, dtype=dtype).alias(col))
        frames.append(q.select(cols))
    if not frames:
        return pl.DataFrame(schema=COMBINED_SCHEMA)
    return pl.concat(frames).sort(["ts", "source", "line_no"], nulls_last=True)


def with_domain(queries: pl.DataFrame, *, labels: int = 2) -> pl.DataFrame:
    """Add a ``domain`` column: the last ``labels`` labels of ``qname`` (``a.b.example.com`` ->
    ``example.com``), so names that are all different (one query each) can still show a pattern.

    Parameters
    ----------
    queries
        A frame with a ``qname`` column (presentation form without the trailing dot).
    labels
        How many labels to keep from the right (at least 1).

    Returns
    -------
    polars.DataFrame
        The frame with ``domain`` (String; the whole name when it has fewer labels; ``"."`` for
        the root; null for a null qname). Escaped dots (``\\.``) inside a label are not split.
    """
    if labels < 1:
        raise ValueError(f"labels must be >= 1, not {labels}")
    # split on dots not preceded by a backslash: protect escaped dots first
    protected = pl.col("qname").str.replace_all(r"\\\.", "\x00")
    parts = protected.str.split(".")
    domain = (
        pl.when(pl.col("qname") == ".")
        .then(pl.lit("."))
        .otherwise(parts.list.slice(-labels, labels).list.join(".").str.replace_all("\x00", r"\."))
    )
    return queries.with_columns(domain.alias("domain"))


def slow_by(
    queries: pl.DataFrame,
    by: str | Sequence[str],
    *,
    threshold_s: float = 1.0,
    top: int | None = 15,
) -> pl.DataFrame:
    """Where the slow queries are, per group, and whether they concentrate there.

    A group is a *pattern* when its share of the slow queries is clearly above its share of all
    queries (``lift`` well above 1, e.g. all slow queries are ``AAAA``); when every group's lift is
    near 1, slowness does not depend on this dimension (it hits all qtypes alike: look upstream).

    Parameters
    ----------
    queries
        A frame with ``duration_s`` (Float64 seconds) and the ``by`` columns, e.g.
        :func:`combined_queries` or ``CoreDNSLog.queries``. Rows with a null duration count as
        queries but never as slow.
    by
        Grouping column(s): ``"qtype"``, ``"rcode"``, ``"proto"``, ``"client_ip"``, ``"qname"``...
    threshold_s
        A query taking at least this many seconds is slow.
    top
        Keep the ``top`` groups with the most slow queries (then most queries); None keeps all.

    Returns
    -------
    polars.DataFrame
        The ``by`` columns, then ``queries`` (UInt32), ``slow`` (UInt32, ``duration_s >=
        threshold_s``), ``slow_pct`` (Float64, percent of the group's queries that are slow),
        ``share_of_slow`` and ``share_of_all`` (Float64, percent of all slow / all queries that
        fall in the group), ``lift`` (Float64, ``share_of_slow / share_of_all``; null when there
        is no slow query at all), ``p50_s`` and ``max_s`` (Float64 seconds). Sorted by ``slow``
        then ``queries`` descending, then the ``by`` values.

    Raises
    ------
    ValueError
        ``threshold_s`` is negative or not finite.
    KeyError
        A ``by`` column or ``duration_s`` is missing.
    """
    keys = [by] if isinstance(by, str) else list(by)
    if not (threshold_s >= 0 and math.isfinite(threshold_s)):
        raise ValueError(f"threshold_s must be a finite number >= 0, not {threshold_s!r}")
    for col in [*keys, "duration_s"]:
        if col not in queries.columns:
            raise KeyError(f"column {col!r} not in frame (columns: {queries.columns})")
    total = queries.height
    total_slow = int((queries["duration_s"] >= threshold_s).sum())
    is_slow = (pl.col("duration_s") >= threshold_s).fill_null(False)
    out = (
        queries.group_by(keys)
        .agg(
            pl.len().cast(pl.UInt32).alias("queries"),
            is_slow.sum().cast(pl.UInt32).alias("slow"),
            pl.col("duration_s").quantile(0.5, interpolation="higher").alias("p50_s"),
            pl.col("duration_s").max().alias("max_s"),
        )
        .with_columns(
            (100.0 * pl.col("slow") / pl.col("queries")).alias("slow_pct"),
            (100.0 * pl.col("slow") / max(total_slow, 1)).alias("share_of_slow"),
            (100.0 * pl.col("queries") / max(total, 1)).alias("share_of_all"),
        )
        .with_columns(
            pl.when(pl.lit(total_slow > 0))
            .then(pl.col("share_of_slow") / pl.col("share_of_all"))
            .otherwise(None)
            .alias("lift")
        )
        .select(
            *keys,
            "queries",
            "slow",
            "slow_pct",
            "share_of_slow",
            "share_of_all",
            "lift",
            "p50_s",
            "max_s",
        )
        .sort(["slow", "queries", *keys], descending=[True, True, *[False] * len(keys)])
    )
    return out.head(top) if top is not None else out


def slow_over_time(
    queries: pl.DataFrame,
    *,
    threshold_s: float = 1.0,
    every: str = "10s",
    by: Sequence[str] = (),
) -> pl.DataFrame:
    """Queries and slow queries per time bin (and group).

    Parameters
    ----------
    queries
        A frame with ``ts`` (Datetime UTC), ``duration_s`` (Float64 seconds) and the ``by`` columns.
    threshold_s
        A query taking at least this many seconds is slow.
    every
        Bin width (polars duration string, e.g. ``"10s"``, ``"1m"``).
    by
        Grouping columns (e.g. ``("resolver", "source")``).

    Returns
    -------
    polars.DataFrame
        ``ts`` (bin start, UTC), the ``by`` columns, ``queries`` (UInt32), ``slow`` (UInt32),
        ``slow_pct`` (Float64 percent; null in an empty bin). Empty bins inside the covered span
        are present with zero counts; rows without ``ts`` are left out (logged at WARNING).
    """
    no_ts = queries["ts"].null_count() if "ts" in queries.columns else 0
    if no_ts:
        log.warning("%d queries without a timestamp left out of the per-%s counts", no_ts, every)
    timed = queries.filter(pl.col("ts").is_not_null())
    allq = time_bins(timed, every=every, by=by).rename({"count": "queries"})
    slow = time_bins(timed.filter(pl.col("duration_s") >= threshold_s), every=every, by=by).rename(
        {"count": "slow"}
    )
    keys = ["ts", *by]
    out = (
        allq.join(slow, on=keys, how="left", nulls_equal=True)
        .with_columns(pl.col("slow").fill_null(0).cast(pl.UInt32))
        .with_columns(
            pl.when(pl.col("queries") > 0)
            .then(100.0 * pl.col("slow") / pl.col("queries"))
            .otherwise(None)
            .alias("slow_pct")
        )
        .sort(keys)
    )
    return out


def duration_histogram(
    queries: pl.DataFrame,
    *,
    value: str = "duration_s",
    min_s: float = 0.001,
    bins_per_decade: int = 10,
    by: Sequence[str] = (),
) -> pl.DataFrame:
    """Durations binned on a log scale: the tidy input of :func:`kit.charts.duration_histogram_chart`.

    Parameters
    ----------
    queries
        A frame with a Float64 seconds column ``value``; nulls are left out.
    value
        The duration column.
    min_s
        Durations below this (seconds) are counted in one first bin ``[0, min_s)``.
    bins_per_decade
        Bins per factor of 10 above ``min_s`` (bin ``k`` covers ``[10^(k/n), 10^((k+1)/n))``).
    by
        Grouping columns (one histogram per group).

    Returns
    -------
    polars.DataFrame
        The ``by`` columns, ``lower_s`` and ``upper_s`` (Float64 seconds, the bin's bounds),
        ``count`` (UInt32, observations in the bin). Only non-empty bins, sorted by ``by`` then
        ``lower_s``.
    """
    if not (min_s > 0 and bins_per_decade > 0):
        raise ValueError("min_s and bins_per_decade must be positive")
    v = pl.col(value).cast(pl.Float64)
    k = (v.log10() * bins_per_decade).floor()
    lower = pl.when(v < min_s).then(0.0).otherwise(pl.lit(10.0).pow(k / bins_per_decade))
    upper = pl.when(v < min_s).then(min_s).otherwise(pl.lit(10.0).pow((k + 1) / bins_per_decade))
    return (
        queries.filter(v.is_not_null() & v.is_finite() & (v >= 0))
        .select(*by, lower.alias("lower_s"), upper.alias("upper_s"))
        .group_by([*by, "lower_s", "upper_s"])
        .agg(pl.len().cast(pl.UInt32).alias("count"))
        .sort([*by, "lower_s"])
    )


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


def connect_failures(
    tcp: pl.DataFrame,
    *,
    every: str = "1m",
    server_port: int | None = 53,
    by: Sequence[str] = ("server_ip",),
) -> pl.DataFrame:
    """Capture-derived upstream failures: TCP connection attempts per upstream and time bin.

    The signal CoreDNS logs as ``dial tcp ...: i/o timeout``, seen on the wire: each connection
    attempt (``Capture.tcp`` row) towards a DNS server, its SYN retransmissions, and whether it was
    ever established. Attempts are binned by their first SYN (``ts_syn``); connections whose SYN
    was not captured are left out.

    Parameters
    ----------
    tcp
        :attr:`kit.sources.capture.Capture.tcp` (``TCP_SCHEMA``).
    every
        Bin width (polars duration string).
    server_port
        Only connections to this server port (53 by default); None keeps all.
    by
        Grouping columns of ``tcp`` (default one series per upstream; add ``"capture"`` for one
        per capture file).

    Returns
    -------
    polars.DataFrame
        ``ts`` (bin start, UTC), the ``by`` columns, ``attempts`` (UInt32, connections whose
        first SYN is in the bin), ``syn_retransmits`` (UInt32, their SYN retransmissions),
        ``not_established`` (UInt32, attempts that never got a SYN-ACK). Empty bins inside the
        covered span are present with zeros. Sorted by ``ts``, then ``by``.
    """
    keys = list(by)
    df = tcp.filter(pl.col("ts_syn").is_not_null())
    if server_port is not None:
        df = df.filter(pl.col("server_port") == server_port)
    grid = time_bins(df.rename({"ts_syn": "ts"}), every=every, by=keys)
    if grid.is_empty():
        return pl.DataFrame(
            schema={
                "ts": _UTC,
                **{k: tcp.schema[k] for k in keys},
                "attempts": pl.UInt32,
                "syn_retransmits": pl.UInt32,
                "not_established": pl.UInt32,
            }
        )
    sums = (
        df.with_columns(pl.col("ts_syn").dt.truncate(every).alias("ts"))
        .group_by(["ts", *keys])
        .agg(
            pl.col("syn_retransmits").fill_null(0).sum().cast(pl.UInt32),
            (~pl.col("established").fill_null(False))
            .sum()
            .cast(pl.UInt32)
            .alias("not_established"),
        )
    )
    return (
        grid.rename({"count": "attempts"})
        .join(sums, on=["ts", *keys], how="left", nulls_equal=True)
        .with_columns(pl.col("syn_retransmits", "not_established").fill_null(0))
        .sort(["ts", *keys])
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


# ---------------------------------------------------------------------------------------------
# what the notebooks say in words: timing, the change time, where the failures are counted from


def n_events(frame: pl.DataFrame, count: str | None) -> int:
    """Events in ``frame``: its rows, or the sum of ``count`` (null counts as 1) when given."""
    if frame.is_empty():
        return 0
    if count is None:
        return frame.height
    return int(frame.select(pl.col(count).fill_null(1).sum()).item() or 0)


def timing_note(
    frame: pl.DataFrame, what: str = "upstream errors", *, count: str | None = None
) -> str:
    """Say whether the rows of a log frame can be placed in time, in one or two sentences.

    CoreDNS >= 1.6.3 writes no timestamp of its own: a log copied with ``kubectl logs`` (without
    ``--timestamps``) has none, and then counts per time bin and onsets are impossible. The
    notebooks print this note instead of an empty chart.

    Parameters
    ----------
    frame
        A frame with a ``ts`` column (Datetime UTC, null for a line without time), e.g.
        ``CoreDNSLog.errors`` or :func:`combined_queries`.
    what
        What the rows are, plural (``"upstream errors"``, ``"queries"``).
    count
        A column giving how many events a row stands for (``consolidated_count``: a
        ``consolidate`` summary stands for many errors; null counts 1); None counts rows.

    Returns
    -------
    str
        ``"No <what> ..."``, ``"All <n> <what> have a timestamp..."``, ``"<k> of the <n> <what>
        have no timestamp..."`` or ``"None of the <n> <what> has a timestamp..."`` with what to do.
    """
    if "ts" not in frame.columns:
        raise KeyError(f"column 'ts' not in frame (columns: {frame.columns})")
    total = n_events(frame, count)
    untimed = n_events(frame.filter(pl.col("ts").is_null()), count)
    if total == 0:
        return f"No {what} in the logs given."
    if untimed == 0:
        return f"All {total} {what} have a timestamp: they are all in the counts over time."
    if untimed == total:
        return (
            f"None of the {total} {what} has a timestamp (CoreDNS >= 1.6.3 writes none itself, "
            "and `kubectl logs` adds none without `--timestamps`): counts per time bin and the "
            "onset against the change are impossible; the totals still hold. Collect the logs "
            "with `kubectl logs --timestamps`, or copy the CRI files under /var/log/pods on the "
            "node."
        )
    return (
        f"{untimed} of the {total} {what} have no timestamp: they are in the totals but not in "
        f"the counts over time, which show the other {total - untimed}."
    )


def change_note(timeline: object | None, *, change_time: str | None = None) -> str:
    """Say which change time the onsets are measured against, and where it came from.

    Parameters
    ----------
    timeline
        A :class:`kit.sources.timeline.Timeline` (``change_time``, ``fix_time``, ``source``) or None.
    change_time
        The notebook's ``change_time`` parameter as given (None when not given): names the
        origin of the time when it overrides a run.json.

    Returns
    -------
    str
        ``"Change time: <ISO-8601 UTC> (from ...)"`` with the fix time when known, or ``"Change
        time: unknown ..."`` saying how to give it (``-p change_time <ISO-8601>``).
    """
    ct = getattr(timeline, "change_time", None)
    if ct is None:
        return (
            "Change time: unknown (no run.json and no change_time parameter): onsets are shown "
            "without it (since_change_s, before_change and after_change stay empty). Give it as "
            "`dnskit report ... -p change_time 2024-05-01T12:00:00Z`."
        )
    source = getattr(timeline, "source", None)
    origin = (
        "the change_time parameter"
        if change_time
        else f"run.json {source}"
        if source
        else "the timeline given"
    )
    text = f"Change time: {_iso(ct)} (from {origin})."
    fix = getattr(timeline, "fix_time", None)
    text += f" Fix time: {_iso(fix)}." if fix is not None else " Fix time: not known."
    return text


def _iso(t: dt.datetime) -> str:
    aware = t if t.tzinfo else t.replace(tzinfo=dt.UTC)
    return aware.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def failure_signal(coredns: CoreDNSLog | None = None, capture: object | None = None) -> str:
    """Say where notebook 03 counts upstream failures from: the CoreDNS ``errors`` plugin when
    its lines exist, else (labelled so) the capture's failed TCP connection attempts.

    Parameters
    ----------
    coredns
        The CoreDNS log, or None when none was given.
    capture
        A :class:`kit.sources.capture.Capture` (its ``tcp`` frame), or None when none was given.

    Returns
    -------
    str
        One or two sentences: the source used, how many lines it has, and what the other input
        (if any) is used for.
    """
    has_cap = capture is not None
    if coredns is not None and coredns.errors.height:
        e = coredns.errors
        with_up = int(e["upstream"].is_not_null().sum())
        files = e["source"].n_unique()
        text = (
            f"Upstream failures are counted from the CoreDNS errors plugin: {e.height} error "
            f"line(s) in {files} file(s), {with_up} of them naming the upstream."
        )
        if has_cap:
            text += " The capture-derived counts further down are a cross-check, not the source."
        return text
    if coredns is not None:
        text = (
            "The CoreDNS log holds no errors-plugin line: no upstream exchange failed, or the "
            "errors plugin is not in the Corefile."
        )
    else:
        text = "No CoreDNS log given: no resolver-logged upstream errors to count."
    if has_cap:
        return text + (
            " Upstream failures are shown from the capture instead (capture-derived, not logged "
            "by the resolver: TCP connection attempts, SYN retransmissions)."
        )
    return text + " Give a capture on the cache node to see failed TCP connection attempts."


def nonzero_bins(
    counts: pl.DataFrame, *, value: str = "count", by: Sequence[str] = ()
) -> pl.DataFrame:
    """The bins of a binned count that hold something: the table behind a count chart.

    Parameters
    ----------
    counts
        ``ts`` (bin start, UTC), the ``value`` column and the ``by`` columns, e.g.
        :func:`kit.sources.coredns.error_counts` (zero bins included).
    value
        The count column.
    by
        Grouping columns.

    Returns
    -------
    polars.DataFrame
        ``ts``, the ``by`` columns and ``value``, only rows with ``value > 0``, sorted by ``ts``
        then ``by``.
    """
    keys = list(by)
    return (
        counts.filter(pl.col(value) > 0)
        .select("ts", *keys, value)
        .sort(["ts", *keys], nulls_last=True)
    )


def peak_rate(
    counts: pl.DataFrame, *, every: str, value: str = "count", by: Sequence[str] = ()
) -> pl.DataFrame:
    """The busiest bin of each group, and its count as a rate per minute.

    "Hundreds of TCP i/o timeouts per minute" is the reference incident's error rate: this is the
    number to compare with it.

    Parameters
    ----------
    counts
        ``ts`` (bin start, UTC), the ``value`` column and the ``by`` columns.
    every
        The bin width the counts were made with (``"10s"``, ``"1m"``, ``"21600s"``).
    value
        The count column.
    by
        Grouping columns (one row each).

    Returns
    -------
    polars.DataFrame
        The ``by`` columns, ``total`` (Int64, sum of ``value``), ``bins`` (UInt32, bins with a
        count above 0), ``peak`` (Int64, the largest count in one bin), ``peak_ts`` (Datetime UTC,
        start of the first bin with that count; null when all are 0), ``bin_s`` (Int64, the bin
        width in seconds), ``peak_per_min`` (Float64, ``peak * 60 / bin_s``: errors per minute
        in the busiest bin, averaged over the bin when it is longer than a minute). Sorted by
        ``peak`` descending, then ``by``.

    Raises
    ------
    ValueError
        ``every`` is not a duration like ``10s``, ``1m``, ``1h``, ``1d``.
    """
    keys = list(by)
    width = _whole_s(every)
    v = pl.col(value).cast(pl.Int64)
    aggs = [
        v.sum().alias("total"),
        (v > 0).sum().cast(pl.UInt32).alias("bins"),
        v.max().alias("peak"),
        pl.col("ts").filter((v == v.max()) & (v > 0)).min().alias("peak_ts"),
    ]
    grouped = counts.group_by(keys).agg(aggs) if keys else counts.select(aggs)
    return (
        grouped.with_columns(
            pl.lit(width, dtype=pl.Int64).alias("bin_s"),
            (pl.col("peak").cast(pl.Float64) * 60.0 / width).alias("peak_per_min"),
        )
        .select(*keys, "total", "bins", "peak", "peak_ts", "bin_s", "peak_per_min")
        .sort(["peak", *keys], descending=[True, *[False] * len(keys)], nulls_last=True)
    )


def span_every(
    *frames: pl.DataFrame | None,
    every: str = "5s",
    columns: Sequence[str] = ("ts",),
    max_bins: int = 1000,
) -> str:
    """A bin width for one chart over several inputs: ``every``, or coarser when the inputs
    together span more than ``max_bins`` bins (log excerpts from several years, a capture of days).

    Parameters
    ----------
    frames
        Frames (None skipped) holding time columns; e.g. ``CoreDNSLog.errors``,
        ``CoreDNSLog.queries``, ``Capture.meta``.
    every
        The wanted width (``"5s"``, ``"1m"``).
    columns
        Time columns to look at, in every frame that has them (e.g. ``("ts", "first_ts",
        "last_ts")``).
    max_bins
        Most bins acceptable.

    Returns
    -------
    str
        As :func:`bin_every` over all those timestamps together.
    """
    series = [
        f[c].cast(_UTC).rename("ts")
        for f in frames
        if f is not None
        for c in columns
        if c in f.columns
    ]
    ts = pl.concat(series) if series else pl.Series("ts", [], dtype=_UTC)
    return bin_every(ts, every, max_bins=max_bins)


def bin_label(every: str) -> str:
    """A bin width as a person reads it: ``"10s"`` -> ``"10 s"``, ``"21600s"`` -> ``"6 h"``.

    Parameters
    ----------
    every
        A width as :func:`bin_every` gives it (``"<n>s"``) or as a parameter (``"1m"``, ``"1h"``).

    Returns
    -------
    str
        The width in the largest unit that divides it: ``"<n> d"``, ``"<n> h"``, ``"<n> min"`` or
        ``"<n> s"``.
    """
    seconds = _whole_s(every)
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds // size} {unit}"
    return f"{seconds} s"


def _whole_s(every: str) -> int:
    """Seconds in a bin width (:func:`kit.timeutil.parse_duration`), a whole number of them."""
    seconds = parse_duration(every, what="every")
    if seconds < 1 or not float(seconds).is_integer():
        raise ValueError(f"every={every!r}: must be a whole number of seconds (10s, 1m, 1h, 1d)")
    return int(seconds)
