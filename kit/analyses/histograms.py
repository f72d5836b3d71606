"""The one log-binned histogram of a seconds column (latencies, durations, handshake times).

:func:`log_histogram` is the only implementation; :func:`duration_histogram` is the same call
with the resolver logs' defaults (``duration_s``, no groups). Until 2026-12 the kit had two that
disagreed: the capture one clamped values below ``min_s`` into ``min_s``'s bin and counted negative
values there; the log one put them in a first bin ``[0, min_s)`` (a bin a log axis cannot draw;
with its ``min_s`` of 1 ms every cache hit of a CoreDNS log fell into it), had no ``bin``/``share``
columns and, without a tolerance, put some values on a bin edge (10 ** 0.3 s) into the bin below.
The semantics kept: log edges for every bin (values below ``min_s``, default 10 µs, counted in
``min_s``'s bin), edges with a 1e-9 tolerance, ``bin`` and ``share`` columns, and values that are
not durations (null, NaN, infinite, negative) left out.
"""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl

__all__ = ["HISTOGRAM_SCHEMA_TAIL", "duration_histogram", "log_histogram"]

#: Columns of :func:`log_histogram` after the group columns.
HISTOGRAM_SCHEMA_TAIL = pl.Schema(
    {
        "bin": pl.Int64,
        "lower_s": pl.Float64,
        "upper_s": pl.Float64,
        "count": pl.UInt32,
        "share": pl.Float64,
    }
)


def log_histogram(
    df: pl.DataFrame,
    *,
    value: str = "latency_s",
    by: Sequence[str] = ("capture",),
    bins_per_decade: int = 10,
    min_s: float = 1e-5,
) -> pl.DataFrame:
    """Histogram of a seconds column on logarithmic bins, computed in polars (for a log x axis).

    Parameters
    ----------
    df
        Any frame with a seconds column ``value`` (e.g. ``Capture.dns`` with ``latency_s``,
        ``Capture.tcp`` with ``handshake_s``, a resolver log's ``queries`` with ``duration_s``).
        Nulls (unanswered queries, connections never established), NaN, infinite and negative
        values are not counted; :func:`kit.analyses.latency.outcomes` and
        :func:`kit.analyses.tcp.connection_summary` count the unanswered and failed ones.
    value
        The seconds column.
    by
        Group columns; null group values are kept as a group of their own.
    bins_per_decade
        Bins per factor of 10 (10: each bin ~26 % wide).
    min_s
        Values below this (seconds; including 0) are counted in the bin of ``min_s``, so that
        every bin has log edges (default 10 µs, below a capture's or a log's resolution).

    Returns
    -------
    polars.DataFrame
        The ``by`` columns, then ``bin`` Int64 (``floor(log10(v) * bins_per_decade)``, a value on
        an edge in the bin above it), ``lower_s`` and ``upper_s`` Float64 (bin edges in seconds,
        ``10 ** (bin / bins_per_decade)``), ``count`` UInt32 (values in the bin) and ``share``
        Float64 (``count`` over the group's counted values). Empty bins are absent; sorted by
        the ``by`` columns and ``bin``.
    """
    if not (min_s > 0 and bins_per_decade > 0):
        raise ValueError("min_s and bins_per_decade must be positive")
    by = list(by)
    v = pl.col(value).cast(pl.Float64)
    b = (
        (pl.max_horizontal(v, pl.lit(min_s)).log10() * bins_per_decade + 1e-9)
        .floor()
        .cast(pl.Int64)
    )
    return (
        df.select(*by, value)
        .filter(v.is_not_null() & v.is_finite() & (v >= 0))
        .with_columns(bin=b)
        .group_by([*by, "bin"])
        .agg(count=pl.len().cast(pl.UInt32))
        .with_columns(
            lower_s=pl.lit(10.0).pow(pl.col("bin") / bins_per_decade),
            upper_s=pl.lit(10.0).pow((pl.col("bin") + 1) / bins_per_decade),
            share=pl.col("count") / pl.col("count").sum().over(by)
            if by
            else pl.col("count") / pl.col("count").sum(),
        )
        .select(*by, *HISTOGRAM_SCHEMA_TAIL)
        .sort([*by, "bin"])
    )


def duration_histogram(
    queries: pl.DataFrame,
    *,
    value: str = "duration_s",
    min_s: float = 1e-5,
    bins_per_decade: int = 10,
    by: Sequence[str] = (),
) -> pl.DataFrame:
    """:func:`log_histogram` with the resolver logs' defaults: the input of
    :func:`kit.charts.duration_histogram_chart` (``duration_s``, one histogram unless ``by``)."""
    return log_histogram(queries, value=value, by=by, bins_per_decade=bins_per_decade, min_s=min_s)
