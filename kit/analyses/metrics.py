"""The latency overview from metric exports (notebook 01): which histogram, quantiles, rates, phases.

- :func:`read_exports` reads metric exports file by file and names the ``query_range`` answers of
  expressions, which carry no metric name (``p90_...json`` and ``p99_...json``, both
  ``{node="node1"}``), after their file's stem, so they can be told apart by ``metric``;
- :func:`latency_histogram_metric` picks the latency histogram an export contains (CoreDNS's
  ``coredns_dns_request_duration_seconds`` first, then unbound's ``unbound_response_time_seconds``,
  then any ``*_seconds_bucket``);
- :func:`latency_overview` computes p50/p90/p99 per node from its raw buckets with
  :func:`kit.promql.quantile_series`, with a rate window and step suited to the export's
  resolution (:func:`sample_interval_s`); :func:`request_rate` the request rate from the same
  histogram; :func:`exported_quantiles` reads quantile series that were exported ready-made
  (``p99_...``);
- :func:`phase_summary` compares any time series before, during and after the change.

A ``query_range`` export of raw buckets holds the counters resampled at the export's step, not the
samples Prometheus scraped, so ``rate()`` over it is an approximation of Prometheus's own answer
(close in level, not equal point by point).
"""

from __future__ import annotations

import logging
import os
import re
import warnings
from collections.abc import Sequence
from pathlib import Path

import polars as pl

from kit import promql
from kit.errors import KitWarning
from kit.sources._io import Source, expand_sources
from kit.sources.metrics.prometheus import read_metrics
from kit.sources.timeline import Timeline, with_phase

__all__ = [
    "KNOWN_HISTOGRAMS",
    "PHASE_SUMMARY_SCHEMA",
    "chart_ceiling",
    "exported_quantiles",
    "highest_finite_bucket",
    "label_columns",
    "last_quantiles",
    "latency_histogram_metric",
    "latency_overview",
    "phase_summary",
    "read_exports",
    "request_rate",
    "sample_interval_s",
]

log = logging.getLogger(__name__)

KNOWN_HISTOGRAMS: tuple[str, ...] = (
    "coredns_dns_request_duration_seconds",
    "unbound_response_time_seconds",
)
"""Latency histograms (names without ``_bucket``) in order of preference."""

PHASE_SUMMARY_SCHEMA = pl.Schema(
    {
        "phase": pl.String(),
        "points": pl.UInt32(),
        "mean": pl.Float64(),
        "median": pl.Float64(),
        "max": pl.Float64(),
    }
)
"""Columns of :func:`phase_summary` after the ``by`` columns (values in the series' unit)."""


def read_exports(source: Source, *, strict: bool = False) -> pl.DataFrame:
    """Read metric exports one file at a time and combine them.

    ``query_range`` answers of expressions (``histogram_quantile(...)``, ``rate(...)``) carry no
    metric name, so two of them (p90 and p99 by ``node``) differ only by their file. Here each
    file is read on its own (one file's problems never mix with another's) and a missing
    ``metric`` is replaced by the file's stem (e.g. ``p99_response_time_5s``), which
    :func:`exported_quantiles` and the notebooks use.

    Parameters
    ----------
    source
        A file, a list of files, a glob or a directory of exports.
    strict
        Passed to :func:`kit.read_metrics` (False: malformed units are skipped with a warning).

    Returns
    -------
    polars.DataFrame
        The :func:`kit.read_metrics` layout (``ts``, ``metric``, ``value``, ``source``, one String
        column per label); ``metric`` is never null. Empty when ``source`` names no file.
    """
    paths = expand_sources(source, what="metric export")
    frames = []
    for p in paths:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", KitWarning)
            df = read_metrics(p, strict=strict)
        for w in caught:
            log.info("%s: %s", os.fspath(p), w.message)
        stem = Path(p).name.split(".")[0]
        frames.append(df.with_columns(pl.col("metric").fill_null(stem)))
    if not frames:
        return pl.DataFrame(schema={"ts": pl.Datetime("us", "UTC"), "metric": pl.String, "value": pl.Float64, "source": pl.String})  # fmt: skip
    return pl.concat(frames, how="diagonal_relaxed")


_NOT_LABELS = frozenset(
    {"ts", "metric", "value", "source", "le", "quantile", "phase", *promql.QUANTILE_SCHEMA}
)


def label_columns(frame: pl.DataFrame) -> list[str]:
    """The label columns of a tidy metrics or quantile frame, in frame order.

    Everything except ``ts``, ``metric``, ``value``, ``source``, ``le``, ``quantile``, ``phase``
    and the bucket-bound columns of :data:`kit.promql.QUANTILE_SCHEMA`, and except columns that
    are entirely null.
    """
    return [
        c
        for c in frame.columns
        if c not in _NOT_LABELS and (frame.height == 0 or frame[c].null_count() < frame.height)
    ]


def latency_histogram_metric(metrics: pl.DataFrame) -> str | None:
    """The latency histogram the export contains (name without ``_bucket``), or None.

    Known histograms (:data:`KNOWN_HISTOGRAMS`) win in their order; otherwise the first
    ``*_seconds_bucket`` metric in name order.
    """
    if metrics.is_empty() or "metric" not in metrics.columns or "le" not in metrics.columns:
        return None
    names = set(metrics.filter(pl.col("le").is_not_null())["metric"].drop_nulls().unique())
    for name in KNOWN_HISTOGRAMS:
        if f"{name}_bucket" in names:
            return name
    other = sorted(n for n in names if n.endswith("_seconds_bucket"))
    return other[0].removesuffix("_bucket") if other else None


def sample_interval_s(metrics: pl.DataFrame, metric: str | None = None) -> float | None:
    """The export's resolution: the median spacing of samples within a series, in seconds.

    Parameters
    ----------
    metrics
        A metrics frame.
    metric
        Only this metric (exact name); None: all.

    Returns
    -------
    float | None
        Seconds, or None when no series has two samples.
    """
    df = metrics if metric is None else metrics.filter(pl.col("metric") == metric)
    labels = [c for c in df.columns if c not in ("ts", "value")]
    if df.height < 2:
        return None
    gaps = (
        df.sort([*labels, "ts"], nulls_last=True)
        .with_columns(pl.col("ts").diff().over(labels).dt.total_microseconds().alias("_gap"))
        .filter(pl.col("_gap") > 0)["_gap"]
    )
    if gaps.is_empty():
        return None
    return float(gaps.median()) / 1e6  # type: ignore[arg-type]


def _window_step(metrics: pl.DataFrame, metric: str) -> tuple[str, str]:
    interval = sample_interval_s(metrics, f"{metric}_bucket") or 15.0
    step_s = max(round(interval), 1)
    # Grafana's $__rate_interval: at least 4 samples in the window
    window_s = max(4 * step_s, step_s + step_s)
    return f"{window_s}s", f"{step_s}s"


def _group_by(metrics: pl.DataFrame, by: Sequence[str] | None) -> tuple[str, ...]:
    if by is not None:
        return tuple(by)
    for cand in ("node", "instance", "pod"):
        if cand in metrics.columns and metrics[cand].drop_nulls().n_unique() > 0:
            return (cand,)
    return ()


def latency_overview(
    metrics: pl.DataFrame,
    metric: str | None = None,
    *,
    by: Sequence[str] | None = None,
    quantiles: Sequence[float] = (0.5, 0.9, 0.99),
    matchers: str = "",
    window: str | None = None,
    step: str | None = None,
) -> pl.DataFrame:
    """p50/p90/p99 over time per node from a latency histogram's raw buckets.

    Parameters
    ----------
    metrics
        A metrics frame (:func:`read_exports` or :func:`kit.read_metrics`).
    metric
        Histogram name without ``_bucket``; default :func:`latency_histogram_metric`.
    by
        Label columns giving one line each; default the first of ``node``, ``instance``, ``pod``
        present in the data.
    quantiles
        Quantiles in [0, 1].
    matchers
        PromQL label matchers without braces selecting the series, e.g. ``'job="coredns"'`` for
        the main CoreDNS deployment rather than NodeLocal DNSCache; empty for all.
    window, step
        Rate window and evaluation step (duration strings); default 4 samples of the export's
        resolution and one sample (``5m``/``1m`` dashboards need a longer export than a lab run).

    Returns
    -------
    polars.DataFrame
        :func:`kit.promql.quantile_series` output: ``ts``, the ``by`` columns, ``quantile``,
        ``value`` (seconds), ``bucket_lower``, ``bucket_upper``, ``at_ceiling``. Empty (with
        those columns) when there is no histogram. When the export holds a single scrape (a
        ``/metrics`` page: no series has two samples, so there is no rate), the quantiles are
        those of the cumulative buckets, i.e. of every request since the process started, one
        row per series and quantile at the scrape time.
    """
    name = metric or latency_histogram_metric(metrics)
    keys = _group_by(metrics, by)
    if name is None:
        return pl.DataFrame(
            schema={
                "ts": pl.Datetime("us", "UTC"),
                **{k: pl.String for k in keys},
                **promql.QUANTILE_SCHEMA,
            }
        )
    if window is None and sample_interval_s(metrics, f"{name}_bucket") is None:
        grouping = ", ".join([*keys, "le"])
        buckets = promql.evaluate(
            metrics, f"sum by ({grouping}) ({name}_bucket{{{matchers}}})", step="1m"
        )
        for col in [*keys, "le"]:
            if col not in buckets.columns:
                buckets = buckets.with_columns(pl.lit(None, dtype=pl.String).alias(col))
        return promql.histogram_quantile(buckets.select("ts", *keys, "le", "value"), quantiles)
    w, s = _window_step(metrics, name)
    return promql.quantile_series(
        metrics,
        name,
        quantiles=quantiles,
        by=keys,
        matchers=matchers,
        window=window or w,
        step=step or s,
    )


def highest_finite_bucket(metrics: pl.DataFrame, metric: str) -> float | None:
    """The highest finite ``le`` of ``<metric>_bucket`` in seconds (the histogram's ceiling)."""
    les = metrics.filter(pl.col("metric") == f"{metric}_bucket")["le"].drop_nulls().unique()
    values = [float(x) for x in les.to_list() if x.strip().lower() not in ("+inf", "inf")]
    return max(values) if values else None


def chart_ceiling(
    quantiles: pl.DataFrame, ceiling: float | None, *, factor: float = 100.0
) -> float | None:
    """The ceiling worth drawing on a quantile chart: ``ceiling`` unless it is far above the data.

    CoreDNS's last finite bucket (8.192 s) sits where slow quantiles end up and must be shown;
    unbound's (524288 s) is never reached, and drawing it would squash the chart's log axis.

    Returns
    -------
    float | None
        ``ceiling`` when some quantile is pinned at it (``at_ceiling``) or the largest finite
        ``value`` is at least ``ceiling / factor``; None otherwise (or when ``ceiling`` is None).
    """
    if ceiling is None or quantiles.is_empty():
        return ceiling
    if "at_ceiling" in quantiles.columns and bool(quantiles["at_ceiling"].fill_null(False).any()):
        return ceiling
    top = quantiles.filter(pl.col("value").is_finite())["value"].max()
    return ceiling if top is not None and float(top) * factor >= ceiling else None  # type: ignore[arg-type]


def request_rate(
    metrics: pl.DataFrame,
    metric: str | None = None,
    *,
    by: Sequence[str] | None = None,
    matchers: str = "",
    window: str | None = None,
    step: str | None = None,
) -> pl.DataFrame:
    """Requests per second per node, from the latency histogram's ``+Inf`` bucket (its count).

    Parameters
    ----------
    metrics, metric, by, matchers, window, step
        As for :func:`latency_overview`.

    Returns
    -------
    polars.DataFrame
        ``ts`` (UTC), the ``by`` columns, ``value`` (Float64, requests per second). Empty when
        there is no histogram.
    """
    name = metric or latency_histogram_metric(metrics)
    keys = _group_by(metrics, by)
    empty = pl.DataFrame(
        schema={
            "ts": pl.Datetime("us", "UTC"),
            **{k: pl.String for k in keys},
            "value": pl.Float64,
        }
    )
    if name is None:
        return empty
    w, s = _window_step(metrics, name)
    grouping = ", ".join(keys)
    selector = ", ".join(m for m in ('le=~"\\\\+Inf|inf"', matchers) if m)
    expr = f"sum by ({grouping}) (rate({name}_bucket{{{selector}}}[{window or w}]))"
    out = promql.evaluate(metrics, expr, step=step or s)
    if out.is_empty():
        return empty
    for k in keys:
        if k not in out.columns:
            out = out.with_columns(pl.lit(None, dtype=pl.String).alias(k))
    return out.select("ts", *keys, "value")


_Q_NAME = re.compile(r"(?:^|[_\-.])p(\d{2,3}(?:\.\d+)?)(?:[_\-.]|$)")


def exported_quantiles(metrics: pl.DataFrame) -> pl.DataFrame:
    """Quantile series exported ready-made, recognised by a ``pNN`` in their metric name.

    ``p99_response_time_5s`` (the file stem given by :func:`read_exports`) is the 0.99 quantile;
    ``p50``/``p90``/``p999`` likewise (``p999`` = 0.999).

    Returns
    -------
    polars.DataFrame
        The matching rows with an added ``quantile`` (Float64) column; the label columns that are
        not entirely null are kept. Empty when no metric name carries a quantile.
    """
    names = metrics["metric"].drop_nulls().unique().to_list() if "metric" in metrics.columns else []
    mapping: dict[str, float] = {}
    for n in names:
        m = _Q_NAME.search(n)
        if m:
            digits = m.group(1).replace(".", "")
            mapping[n] = float(f"0.{digits}")
    if not mapping:
        return metrics.head(0).with_columns(pl.lit(None, dtype=pl.Float64).alias("quantile"))
    df = metrics.filter(pl.col("metric").is_in(list(mapping))).with_columns(
        pl.col("metric").replace_strict(mapping, return_dtype=pl.Float64).alias("quantile")
    )
    keep = [c for c in df.columns if df[c].null_count() < df.height]
    return df.select(keep)


def last_quantiles(quantiles: pl.DataFrame) -> pl.DataFrame:
    """The last value of each quantile per series, one row per series: the table of a scrape.

    Parameters
    ----------
    quantiles
        :func:`latency_overview` output (``ts``, label columns, ``quantile``, ``value``,
        optionally ``at_ceiling``).

    Returns
    -------
    polars.DataFrame
        The label columns (:func:`label_columns`), ``ts`` (Datetime UTC, the last evaluation
        time), one Float64 column per quantile named ``p50_s``, ``p90_s``, ``p99_s``... (seconds,
        the value at that time; NaN without traffic), and ``at_ceiling`` (Boolean: some quantile
        of the row is only the last finite bucket's bound). Sorted by the label columns.
    """
    keys = label_columns(quantiles)
    if quantiles.is_empty():
        return pl.DataFrame(schema={**{k: quantiles.schema[k] for k in keys}, "ts": pl.Datetime("us", "UTC"), "at_ceiling": pl.Boolean})  # fmt: skip
    pinned = (
        pl.col("at_ceiling").fill_null(False)
        if "at_ceiling" in quantiles.columns
        else pl.lit(False)
    )
    last = (
        quantiles.with_columns(pinned.alias("at_ceiling"))
        .sort("ts")
        .group_by([*keys, "quantile"], maintain_order=True)
        .last()
        .with_columns(
            pl.format(
                "p{}_s",
                (pl.col("quantile") * 100)
                .round(3)
                .cast(pl.String)
                .str.replace(r"\.0$", "")
                .str.replace(r"\.", "_"),
            ).alias("_q")
        )
    )
    wide = (
        last.pivot("_q", index=keys or None, values="value", aggregate_function="first")
        if keys
        else last.select("_q", "value").transpose(column_names="_q")
    )
    extra = (
        last.group_by(keys).agg(pl.col("ts").max(), pl.col("at_ceiling").any())
        if keys
        else last.select(pl.col("ts").max(), pl.col("at_ceiling").any())
    )
    out = (
        wide.join(extra, on=keys, how="left", nulls_equal=True)
        if keys
        else pl.concat([wide, extra], how="horizontal")
    )
    qcols = [c for c in out.columns if c.startswith("p") and c.endswith("_s")]
    return (
        out.select(*keys, "ts", *qcols, "at_ceiling").sort(keys)
        if keys
        else out.select("ts", *qcols, "at_ceiling")
    )


def phase_summary(
    frame: pl.DataFrame,
    tl: Timeline,
    *,
    by: Sequence[str] = (),
    value: str = "value",
) -> pl.DataFrame:
    """A series summarised per phase of the incident (before / during / after the change).

    Parameters
    ----------
    frame
        A tidy frame with ``ts`` (UTC), ``value`` and the ``by`` columns (e.g. the p99 rows of
        :func:`latency_overview`, or :func:`request_rate`). NaN and infinite values are left out.
    tl
        The incident's timeline (:func:`kit.sources.timeline.timeline`); its phases name the rows.
    by
        Label columns giving one summary each.
    value
        The value column.

    Returns
    -------
    polars.DataFrame
        The ``by`` columns, then :data:`PHASE_SUMMARY_SCHEMA`: ``phase`` (String; rows outside
        every phase are left out), ``points`` (UInt32), ``mean``, ``median``, ``max`` (Float64, in
        the series' unit). Sorted by ``by`` then phase start.
    """
    if tl.phases.is_empty():
        return pl.DataFrame(schema={**{k: frame.schema[k] for k in by}, **PHASE_SUMMARY_SCHEMA})
    order = tl.phases.with_row_index("_order").select("phase", "_order")
    v = pl.col(value).cast(pl.Float64)
    return (
        with_phase(frame.filter(v.is_finite()), tl)
        .filter(pl.col("phase").is_not_null())
        .group_by([*by, "phase"])
        .agg(
            pl.len().cast(pl.UInt32).alias("points"),
            v.mean().alias("mean"),
            v.median().alias("median"),
            v.max().alias("max"),
        )
        .join(order, on="phase", how="left")
        .sort([*by, "_order"])
        .drop("_order")
    )
