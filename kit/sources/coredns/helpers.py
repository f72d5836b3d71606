"""Helpers for the notebooks on a :class:`~kit.sources.coredns.CoreDNSLog`: errors per bin,
slow queries, latency quantiles, the ``loop`` plugin's probes."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import polars as pl

from kit.sources.coredns.model import CoreDNSLog
from kit.stats import latency_quantiles
from kit.timeutil import time_bins

log = logging.getLogger(__name__)


def _frame(data: CoreDNSLog | pl.DataFrame, attr: str) -> pl.DataFrame:
    if isinstance(data, CoreDNSLog):
        return getattr(data, attr)
    if isinstance(data, pl.DataFrame):
        return data
    raise TypeError(f"expected a CoreDNSLog or a polars DataFrame, not {type(data).__name__}")


def error_counts(
    data: CoreDNSLog | pl.DataFrame,
    *,
    every: str = "1m",
    by: Sequence[str] = ("upstream", "transport"),
    include_consolidated: bool = False,
) -> pl.DataFrame:
    """Errors per time bin (default per minute) and upstream/transport.

    Parameters
    ----------
    data
        A :class:`CoreDNSLog` or its ``errors`` frame.
    every
        Bin width as a polars duration string (``"1m"``, ``"10s"``).
    by
        Grouping columns of the errors frame (``upstream`` and ``transport`` by default; add
        ``kind`` or ``op`` to separate dial timeouts from read timeouts).
    include_consolidated
        ``consolidate`` summaries stand for many errors that were not logged one by one and carry
        no upstream. By default they are left out; set true to add them, each counted as its
        ``consolidated_count`` at the summary's timestamp.

    Returns
    -------
    polars.DataFrame
        ``ts`` (Datetime[us, UTC], bin start), the ``by`` columns, ``count`` (UInt32, error lines
        in the bin). Bins inside the covered span with no errors are present with 0
        (:func:`kit.timeutil.time_bins`). Lines without a timestamp cannot be binned and are left
        out (logged at WARNING with their number).

    Raises
    ------
    TypeError
        ``data`` is neither a CoreDNSLog nor a DataFrame.
    KeyError
        A ``by`` column is not in the errors frame.
    """
    errors = _frame(data, "errors")
    for col in by:
        if col not in errors.columns:
            raise KeyError(f"column {col!r} not in the errors frame (columns: {errors.columns})")
    single = errors.filter(pl.col("consolidated_count").is_null())
    frames = [single]
    if include_consolidated:
        cons = errors.filter(pl.col("consolidated_count").is_not_null())
        if cons.height:
            # one row per error the summary stands for
            idx = cons.select(
                pl.int_range(pl.len(), dtype=pl.UInt32)
                .repeat_by(pl.col("consolidated_count"))
                .explode()
                .alias("i")
            )["i"]
            frames.append(
                cons[idx].with_columns(pl.lit(None, pl.UInt32).alias("consolidated_count"))
            )
    rows = pl.concat(frames) if len(frames) > 1 else single
    no_ts = rows["ts"].null_count()
    if no_ts:
        log.warning(
            "%d error line(s) without a timestamp left out of the per-%s counts", no_ts, every
        )
    return time_bins(rows, every=every, by=list(by))


def slow_queries(data: CoreDNSLog | pl.DataFrame, threshold_s: float = 1.0) -> pl.DataFrame:
    """Queries that took at least ``threshold_s`` seconds, slowest first.

    Parameters
    ----------
    data
        A :class:`CoreDNSLog` or its ``queries`` frame.
    threshold_s
        Duration threshold in seconds (inclusive).

    Returns
    -------
    polars.DataFrame
        The matching rows of ``queries`` (same schema), sorted by ``duration_s`` descending, then
        ``source`` and ``line_no``.

    Raises
    ------
    TypeError
        ``data`` is neither a CoreDNSLog nor a DataFrame.
    ValueError
        ``threshold_s`` is negative or not finite.
    """
    if not threshold_s >= 0 or threshold_s == float("inf"):
        raise ValueError(f"threshold_s must be a finite number >= 0, not {threshold_s!r}")
    q = _frame(data, "queries")
    return q.filter(pl.col("duration_s") >= threshold_s).sort(
        ["duration_s", "source", "line_no"], descending=[True, False, False]
    )


def query_latency(
    data: CoreDNSLog | pl.DataFrame,
    *,
    by: Sequence[str] = ("qtype", "rcode", "proto"),
    quantiles: Sequence[float] = (0.5, 0.9, 0.99),
) -> pl.DataFrame:
    """Latency quantiles of CoreDNS' ``duration_s`` per group (qtype, rcode, proto, client...).

    Parameters
    ----------
    data
        A :class:`CoreDNSLog` or its ``queries`` frame.
    by
        Grouping columns, e.g. ``("qtype",)``, ``("rcode",)``, ``("proto",)``, ``("client_ip",)``;
        empty for one overall row.
    quantiles
        Quantiles in (0, 1].

    Returns
    -------
    polars.DataFrame
        See :func:`kit.stats.latency_quantiles`: the ``by`` columns, ``n``, ``n_null``,
        ``mean_s``, ``max_s`` and ``p50_s``, ``p90_s``, ``p99_s``... (Float64 seconds).

    Raises
    ------
    TypeError
        ``data`` is neither a CoreDNSLog nor a DataFrame.
    """
    q = _frame(data, "queries")
    return latency_quantiles(q, value="duration_s", by=list(by), quantiles=quantiles)


LOOP_PROBE = (pl.col("qtype") == "HINFO") & pl.col("qname").str.contains(r"^[0-9]+\.[0-9]+$")
"""True for the ``loop`` plugin's self-test queries (``HINFO`` for ``<random>.<random>.``).

They are not client traffic, and when an upstream is down every probe logs an error; leave them
out of user-latency analyses (formats.md §2.3, coredns/coredns#4211).
"""


def without_loop_probes(data: CoreDNSLog | pl.DataFrame) -> pl.DataFrame:
    """A ``queries`` or ``errors`` frame without the ``loop`` plugin's HINFO probes.

    Parameters
    ----------
    data
        A frame with ``qtype`` and ``qname`` columns (``queries`` or ``errors``); a
        :class:`CoreDNSLog` means its ``queries``.

    Returns
    -------
    polars.DataFrame
        The same columns, without rows where :data:`LOOP_PROBE` is true (consolidate summaries,
        whose qtype is null, are kept).

    Raises
    ------
    TypeError
        ``data`` is neither a CoreDNSLog nor a DataFrame.
    """
    df = _frame(data, "queries")
    return df.filter(~LOOP_PROBE.fill_null(False))
