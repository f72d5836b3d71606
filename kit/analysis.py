"""Source-independent analyses: frames in, frames out; no I/O, no charts.

Source-specific helpers live next to their loader (``kit.coredns``, ``kit.capture``, ...); what
works on any frame with the shared column names (``ts``, ``qname``, ``qtype``, ``rcode``, a
``*_s`` duration) lives here.
"""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl

__all__ = ["latency_quantiles", "time_bins"]

DEFAULT_QUANTILES: tuple[float, ...] = (0.5, 0.9, 0.99)


def latency_quantiles(
    df: pl.DataFrame,
    *,
    value: str = "duration_s",
    by: Sequence[str] = (),
    quantiles: Sequence[float] = DEFAULT_QUANTILES,
) -> pl.DataFrame:
    """Latency quantiles per group, computed exactly from individual observations.

    Parameters
    ----------
    df
        Any frame with a float seconds column ``value`` (e.g. CoreDNS ``duration_s``, capture
        ``latency_s``). Nulls (unanswered) are left out of the quantiles but counted.
    value
        Name of the duration column, in seconds.
    by
        Grouping columns; empty for one overall row.
    quantiles
        Quantiles in (0, 1].

    Returns
    -------
    polars.DataFrame
        ``by`` columns, then ``n`` (UInt32, rows with a value), ``n_null`` (UInt32, rows without),
        ``mean_s``, ``max_s``, and ``p50_s``, ``p90_s``, ``p99_s``... (Float64 seconds, nearest-rank
        "higher" interpolation, so a quantile is always an observed value). Sorted by ``by``.
    """
    if value not in df.columns:
        raise KeyError(f"column {value!r} not in frame (columns: {df.columns})")
    for q in quantiles:
        if not 0 < q <= 1:
            raise ValueError(f"quantile {q} outside (0, 1]")
    col = pl.col(value)
    aggs = [
        col.is_not_null().sum().cast(pl.UInt32).alias("n"),
        col.is_null().sum().cast(pl.UInt32).alias("n_null"),
        col.mean().alias("mean_s"),
        col.max().alias("max_s"),
        *[col.quantile(q, interpolation="higher").alias(_qname(q)) for q in quantiles],
    ]
    if by:
        return df.group_by(list(by)).agg(aggs).sort(list(by), nulls_last=True)
    return df.select(aggs)


def _qname(q: float) -> str:
    text = f"{q * 100:g}".replace(".", "_")
    return f"p{text}_s"


def time_bins(
    df: pl.DataFrame, *, every: str = "1m", ts: str = "ts", by: Sequence[str] = ()
) -> pl.DataFrame:
    """Count rows per time bin (and group): the basis of every "per minute" series.

    Returns ``ts`` (bin start, UTC), ``by`` columns and ``count`` (UInt32). Bins with no rows
    inside the covered span are present with count 0, so a chart shows silence as zero rather than
    interpolating across it.
    """
    if df.is_empty():
        return pl.DataFrame(
            schema={
                ts: df.schema.get(ts, pl.Datetime("us", "UTC")),
                **{b: df.schema[b] for b in by},
                "count": pl.UInt32,
            }
        )
    binned = (
        df.filter(pl.col(ts).is_not_null())
        .with_columns(pl.col(ts).dt.truncate(every).alias(ts))
        .group_by([ts, *by])
        .agg(pl.len().cast(pl.UInt32).alias("count"))
    )
    lo, hi = binned[ts].min(), binned[ts].max()
    grid = pl.DataFrame({ts: pl.datetime_range(lo, hi, every, eager=True)})
    if by:
        grid = grid.join(binned.select(list(by)).unique(), how="cross")
    return (
        grid.join(binned, on=[ts, *by], how="left")
        .with_columns(pl.col("count").fill_null(0))
        .sort([ts, *by])
    )
