"""Statistics every layer uses: exact latency quantiles per group.

A foundation module (it imports only polars) so that the loaders' own summaries
(``Capture.latency``, ``CoreDNSLog.latency``) and the analyses compute quantiles the same way.
"""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl

__all__ = ["DEFAULT_QUANTILES", "latency_quantiles"]

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
