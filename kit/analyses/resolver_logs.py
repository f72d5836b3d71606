"""Source-independent analyses of resolver logs (CoreDNS and unbound), for notebooks 02 and 03.

:func:`combined_queries` puts the answered queries of a :class:`kit.sources.coredns.CoreDNSLog` and of a
:class:`kit.sources.unbound.ResolverLog` into one frame (:data:`COMBINED_SCHEMA`); the other helpers work on
that frame (or on either ``queries`` frame, since they share the column names ``ts``,
``client_ip``, ``qname``, ``qtype``, ``rcode``, ``duration_s``):

- :func:`slow_by`: where the slow queries are, per qtype, rcode, proto, client or name, and whether
  they concentrate there (a *pattern*) or are spread like all queries (no pattern);
- :func:`with_domain`: the registrable-looking suffix of each name.

The other names the notebooks import from here live in one module per concept and are
re-exported: :func:`slow_over_time` (:mod:`kit.analyses.series`, the one slow-per-bin series),
:func:`duration_histogram` (:mod:`kit.analyses.histograms`, the one log histogram),
:func:`log_messages`, :func:`message_summary`, :func:`error_summary`, :func:`onset`,
:func:`error_coverage` (:mod:`kit.analyses.log_errors`), :func:`connect_failures`
(:mod:`kit.analyses.tcp`, the capture-derived counterpart of upstream errors), the bin widths
(:mod:`kit.analyses.bins`) and the notebooks' sentences (:mod:`kit.analyses.notes`).

``qname`` follows the kit's convention: the name in presentation form without the trailing dot,
case preserved (the root is ``"."``).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence

import polars as pl

from kit.analyses.bins import bin_every, bin_label, span_every
from kit.analyses.histograms import duration_histogram
from kit.analyses.log_errors import (
    MESSAGES_SCHEMA,
    _queries_of,
    error_coverage,
    error_summary,
    log_messages,
    message_summary,
    onset,
)
from kit.analyses.notes import (
    change_note,
    failure_signal,
    n_events,
    nonzero_bins,
    peak_rate,
    timing_note,
)
from kit.analyses.series import slow_over_time
from kit.analyses.tcp import connect_failures
from kit.sources.coredns import CoreDNSLog
from kit.sources.unbound import ResolverLog
from kit.timeutil import UTC as _UTC

log = logging.getLogger(__name__)

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
