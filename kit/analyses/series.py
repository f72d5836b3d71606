"""The one slow-queries-per-time-bin series, for captures and resolver logs alike.

Until 2026-12 the kit had two :func:`slow_over_time` that disagreed: the capture one
(``latency_s``, ``slow_s``) left empty bins out (a chart drew a line across a silence) and counted
unanswered queries; the log one (``duration_s``, ``threshold_s``) filled empty bins with zeros,
left untimed rows out with a warning, and gave ``slow_pct``. The semantics kept: empty bins inside
the covered span as zeros, untimed rows left out with a warning, ``slow`` = a known duration at
least ``slow_s`` (answered or not: a CoreDNS line logged without a response after 6 s is slow),
``unanswered`` = no answer and no duration (a capture's failed query; censored ones, still
waiting when the capture ended, are not failures), ``slow_share`` = (slow + unanswered) / queries.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import polars as pl

from kit.timeutil import UTC as _UTC
from kit.timeutil import polars_every, time_bins

__all__ = ["slow_over_time"]

log = logging.getLogger(__name__)


def slow_over_time(
    frame: pl.DataFrame,
    *,
    slow_s: float = 1.0,
    every: str = "5s",
    by: Sequence[str] = (),
    value: str | None = None,
    threshold_s: float | None = None,
) -> pl.DataFrame:
    """Queries, slow and unanswered queries per time bin (by ``ts``: when the query was sent or logged).

    Parameters
    ----------
    frame
        ``Capture.dns`` (usually :func:`kit.analyses.roles.client_queries`), a resolver log's
        ``queries`` or :func:`kit.analyses.resolver_logs.combined_queries`: ``ts`` (Datetime UTC),
        the seconds column ``value``, the ``by`` columns, and optionally ``answered`` and
        ``censored`` (Boolean).
    slow_s
        A query whose duration is at least this many seconds is slow.
    every
        Bin width (any duration of :mod:`kit.timeutil`: ``"100ms"``, ``"5s"``, ``"1m"``).
    by
        Group columns (e.g. ``("capture",)``, ``("resolver", "source")``).
    value
        The seconds column; default ``latency_s`` when the frame has it, else ``duration_s``.
    threshold_s
        The resolver-log spelling of ``slow_s`` (wins when given).

    Returns
    -------
    polars.DataFrame
        ``ts`` Datetime(us, UTC) bin start; the ``by`` columns; ``queries`` UInt32 (in the bin);
        ``slow`` UInt32 (``value >= slow_s``); ``unanswered`` UInt32 (``answered`` false, no
        duration, ``censored`` not true); ``slow_share`` Float64 (``(slow + unanswered) /
        queries``, null in an empty bin). Empty bins inside the covered span are present with
        zero counts; rows without ``ts`` are left out (logged at WARNING). Sorted by the ``by``
        columns and ``ts``.
    """
    if threshold_s is not None:
        slow_s = threshold_s
    if value is None:
        value = "latency_s" if "latency_s" in frame.columns else "duration_s"
    by = list(by)
    no_ts = frame["ts"].null_count()
    if no_ts:
        log.warning("%d queries without a timestamp left out of the per-%s counts", no_ts, every)
    cols = frame.columns
    v = pl.col(value)
    answered = pl.col("answered") if "answered" in cols else pl.lit(True)
    censored = pl.col("censored").fill_null(False) if "censored" in cols else pl.lit(False)
    flags = frame.filter(pl.col("ts").is_not_null()).select(
        "ts",
        *by,
        _slow=(v >= slow_s).fill_null(False),
        _unanswered=((answered == False) & v.is_null() & ~censored).fill_null(False),  # noqa: E712
    )
    keys = ["ts", *by]
    counts = time_bins(flags, every=every, by=by).rename({"count": "queries"})
    if counts.is_empty():
        return pl.DataFrame(
            schema={
                "ts": frame.schema.get("ts", _UTC),
                **{b: frame.schema[b] for b in by},
                "queries": pl.UInt32,
                "slow": pl.UInt32,
                "unanswered": pl.UInt32,
                "slow_share": pl.Float64,
            }
        )
    events = (
        flags.filter(pl.col("_slow") | pl.col("_unanswered"))
        .with_columns(pl.col("ts").dt.truncate(polars_every(every)))
        .group_by(keys)
        .agg(
            slow=pl.col("_slow").sum().cast(pl.UInt32),
            unanswered=pl.col("_unanswered").sum().cast(pl.UInt32),
        )
    )
    return (
        counts.join(events, on=keys, how="left", nulls_equal=True)
        .with_columns(pl.col("slow", "unanswered").fill_null(0))
        .with_columns(
            slow_share=pl.when(pl.col("queries") > 0).then(
                (pl.col("slow") + pl.col("unanswered")) / pl.col("queries")
            )
        )
        .select("ts", *by, "queries", "slow", "unanswered", "slow_share")
        .sort([*by, "ts"], nulls_last=True)
    )
