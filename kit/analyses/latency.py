"""Source-independent analyses: frames in, frames out; no I/O, no charts.

Source-specific helpers live next to their loader (``kit.sources.coredns``,
``kit.sources.capture``, ...); what works on any frame with the shared column names (``ts``,
``qname``, ``qtype``, ``rcode``, a ``*_s`` duration) lives here. The quantiles themselves are
:func:`kit.stats.latency_quantiles` (a foundation module: the loaders' summaries use them too).
"""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl

__all__ = ["latency_modes", "latency_modes_by", "match_timers", "outcomes"]


def latency_modes(
    df: pl.DataFrame,
    *,
    value: str = "duration_s",
    min_s: float = 0.2,
    bins_per_decade: int = 40,
    min_count: int = 5,
    min_share: float = 0.02,
) -> pl.DataFrame:
    """Find the modes (peaks) of the slow part of a latency distribution.

    Latencies that pile up at fixed values betray a timer: TCP SYN retransmission after 1 s, 3 s,
    7 s; a resolver retry after 5 s; CoreDNS's 2 s upstream read timeout. This finds such piles
    without assuming which timers exist: observations ``>= min_s`` are binned on a log scale
    (``bins_per_decade`` bins per factor of 10, ~6 % wide at 40), and a bin is a mode when its
    count is a local maximum (strictly above the bin before, at least the bin after) and it holds
    at least ``min_count`` observations and ``min_share`` of the slow ones.

    Parameters
    ----------
    df
        A frame with a float seconds column ``value``; nulls are ignored.
    value
        The duration column, in seconds.
    min_s
        Only latencies at or above this (seconds) are considered.
    bins_per_decade, min_count, min_share
        Resolution and significance of a mode, as described above.

    Returns
    -------
    polars.DataFrame
        One row per mode, by ascending latency: ``mode_s`` (Float64, median of the observations
        in the peak bin and its two neighbours, seconds), ``lower_s``/``upper_s`` (Float64, the
        span of those three bins), ``count`` (UInt32, observations in those bins), ``share``
        (Float64, ``count`` over all slow observations).
    """
    schema = {
        "mode_s": pl.Float64,
        "lower_s": pl.Float64,
        "upper_s": pl.Float64,
        "count": pl.UInt32,
        "share": pl.Float64,
    }
    slow = df.select(pl.col(value).cast(pl.Float64)).to_series().drop_nulls()
    slow = slow.filter(slow >= min_s)
    if slow.is_empty():
        return pl.DataFrame(schema=schema)
    total = slow.len()
    binned = (
        pl.DataFrame({"v": slow})
        .with_columns((pl.col("v").log10() * bins_per_decade).floor().cast(pl.Int64).alias("bin"))
        .group_by("bin")
        .agg(pl.len().alias("n"))
    )
    lo_bin, hi_bin = int(binned["bin"].min()), int(binned["bin"].max())  # type: ignore[arg-type]
    grid = (
        pl.DataFrame({"bin": pl.int_range(lo_bin - 1, hi_bin + 2, eager=True)})
        .join(binned, on="bin", how="left")
        .with_columns(pl.col("n").fill_null(0))
        .sort("bin")
        .with_columns(
            prev=pl.col("n").shift(1).fill_null(0), nxt=pl.col("n").shift(-1).fill_null(0)
        )
    )
    peaks = grid.filter(
        (pl.col("n") > pl.col("prev"))
        & (pl.col("n") >= pl.col("nxt"))
        & (pl.col("n") >= min_count)
        & (pl.col("n") >= min_share * total)
    )["bin"].to_list()
    rows = []
    values = pl.DataFrame({"v": slow}).with_columns(
        (pl.col("v").log10() * bins_per_decade).floor().cast(pl.Int64).alias("bin")
    )
    for b in peaks:
        near = values.filter(pl.col("bin").is_between(b - 1, b + 1))["v"]
        rows.append(
            {
                "mode_s": float(near.median()),  # type: ignore[arg-type]
                "lower_s": 10 ** ((b - 1) / bins_per_decade),
                "upper_s": 10 ** ((b + 2) / bins_per_decade),
                "count": near.len(),
                "share": near.len() / total,
            }
        )
    return pl.DataFrame(rows, schema=schema).sort("mode_s")


def match_timers(
    modes: pl.DataFrame, timers: pl.DataFrame, *, tolerance: float = 0.15
) -> pl.DataFrame:
    """Pair each latency mode with the nearest known timer, and say whether it matches.

    Parameters
    ----------
    modes
        A frame with ``mode_s`` (Float64 seconds), e.g. from :func:`latency_modes`.
    timers
        A frame with ``timer_s`` (Float64 seconds) and any describing columns (a name, a retry
        number...), which are carried over from the nearest timer.
    tolerance
        A mode matches when ``|mode_s / timer_s - 1| <= tolerance``: a client also waits for the
        answer after the timer fired, so a pile sits a little above its timer.

    Returns
    -------
    polars.DataFrame
        ``modes`` in their order, plus the nearest timer's columns (nearest on a log scale), then
        ``ratio`` (Float64, ``mode_s / timer_s``) and ``matches`` (Boolean). With no modes or no
        timers, those columns are present and null.
    """
    if "timer_s" not in timers.columns:
        raise KeyError(f"timers need a 'timer_s' column (columns: {timers.columns})")
    if modes.is_empty() or timers.is_empty():
        return modes.with_columns(
            *[pl.lit(None, dtype).alias(c) for c, dtype in timers.schema.items()],
            ratio=pl.lit(None, pl.Float64),
            matches=pl.lit(None, pl.Boolean),
        )
    return (
        modes.with_row_index("_r")
        .join(timers, how="cross")
        .with_columns(_d=(pl.col("mode_s") / pl.col("timer_s")).log().abs())
        .sort("_r", "_d")
        .group_by("_r", maintain_order=True)
        .first()
        .with_columns(ratio=pl.col("mode_s") / pl.col("timer_s"))
        .with_columns(matches=(pl.col("ratio") - 1).abs() <= tolerance)
        .drop("_r", "_d")
    )


def outcomes(
    dns: pl.DataFrame,
    *,
    by: Sequence[str] = ("capture", "transport"),
    slow_s: float = 1.0,
) -> pl.DataFrame:
    """Per group: how many queries were answered, slow, unanswered or censored, and latency quantiles.

    Parameters
    ----------
    dns
        ``Capture.dns`` (usually the client side, :func:`client_queries`).
    by
        Group columns (``transport``: UDP vs TCP).
    slow_s
        An answer at least this slow (seconds) is slow.

    Returns
    -------
    polars.DataFrame
        The ``by`` columns; ``queries`` UInt32 (= ``answered`` + ``unanswered`` + ``censored``);
        ``answered`` UInt32; ``slow`` UInt32 (answered with ``latency_s >= slow_s``);
        ``unanswered`` UInt32 (no answer, not censored: a failure); ``censored`` UInt32 (no answer
        yet when the capture ended); ``retransmitted`` UInt32 (the client re-sent the query);
        ``truncated`` UInt32 (answers with the TC bit); ``slow_share`` Float64 (``slow`` over
        ``answered``); ``p50_s``, ``p90_s``, ``p99_s``, ``max_s`` Float64 seconds over answered
        queries (nearest-rank quantiles; null without answers). Sorted by the ``by`` columns.
    """
    by = list(by)
    lat = pl.col("latency_s")
    aggs = {
        "queries": pl.len().cast(pl.UInt32),
        "answered": pl.col("answered").sum().cast(pl.UInt32),
        "slow": (pl.col("answered") & (lat >= slow_s)).sum().cast(pl.UInt32),
        "unanswered": (~pl.col("answered") & ~pl.col("censored")).sum().cast(pl.UInt32),
        "censored": (~pl.col("answered") & pl.col("censored")).sum().cast(pl.UInt32),
        "retransmitted": (pl.col("retransmissions") > 0).sum().cast(pl.UInt32),
        "truncated": pl.col("tc").fill_null(False).sum().cast(pl.UInt32),
        "p50_s": lat.quantile(0.5, interpolation="nearest"),
        "p90_s": lat.quantile(0.9, interpolation="nearest"),
        "p99_s": lat.quantile(0.99, interpolation="nearest"),
        "max_s": lat.max(),
    }
    if not by or dns.is_empty():
        out = dns.group_by(by).agg(**aggs)
    else:
        # One group at a time: a group_by with quantiles over millions of rows gathers every
        # aggregated column per group at once (~0.3 GB on 4.4 M client rows); the keys alone
        # (``group_by(...).len()``) cost a few MiB, and each group then copies only the five
        # columns it reads (~15 bytes a row).
        keys = dns.group_by(by).len().drop("len").sort(by, nulls_last=False)
        cols = ["answered", "censored", "latency_s", "retransmissions", "tc"]
        rows = []
        for key in keys.iter_rows():
            mask = pl.all_horizontal(
                [
                    pl.col(c).eq_missing(pl.lit(k, dtype=dns.schema[c]))
                    for c, k in zip(by, key, strict=True)
                ]
            )
            rows.append(dns.select(pl.col(cols).filter(mask)).select(**aggs))
        out = pl.concat([keys, pl.concat(rows)], how="horizontal")
    return out.with_columns(
        slow_share=pl.when(pl.col("answered") > 0).then(pl.col("slow") / pl.col("answered"))
    ).sort(by)


def latency_modes_by(
    df: pl.DataFrame,
    *,
    value: str = "latency_s",
    by: Sequence[str] = ("capture",),
    min_s: float = 0.2,
    min_count: int = 5,
    min_share: float = 0.02,
) -> pl.DataFrame:
    """:func:`kit.analyses.latency.latency_modes` per group: the peaks of each group's slow tail.

    Returns
    -------
    polars.DataFrame
        The ``by`` columns, then ``mode_s``, ``lower_s``, ``upper_s`` (Float64 seconds), ``count``
        (UInt32), ``share`` (Float64) as in :func:`kit.analyses.latency.latency_modes`. Groups without a
        mode have no row. Sorted by the ``by`` columns and ``mode_s``.
    """
    by = list(by)
    df = df.select(*by, value)  # partitions of these columns only, not copies of whole rows
    if not by:
        return latency_modes(df, value=value, min_s=min_s, min_count=min_count, min_share=min_share)
    parts = []
    for key, part in df.group_by(by, maintain_order=True):
        modes = latency_modes(
            part, value=value, min_s=min_s, min_count=min_count, min_share=min_share
        )
        if modes.height:
            parts.append(
                modes.with_columns(
                    [pl.lit(k, dtype=df.schema[c]).alias(c) for c, k in zip(by, key, strict=True)]
                ).select(*by, *modes.columns)
            )
    if not parts:
        empty = latency_modes(df.clear(), value=value)
        return pl.DataFrame(schema={**{c: df.schema[c] for c in by}, **empty.schema})
    return pl.concat(parts).sort([*by, "mode_s"])
