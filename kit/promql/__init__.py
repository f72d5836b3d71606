"""PromQL over exported metrics: the dashboard's query, evaluated exactly as Prometheus does.

Users bring metric *exports* (``kit.read_metrics``), not a live Prometheus, but they already trust
the PromQL in their Grafana panels. :func:`evaluate` runs a useful subset of PromQL over the long
metrics frame with Prometheus's range-query semantics, and :func:`histogram_quantile` /
:func:`quantile_series` add what a chart needs to be honest about classic histograms: the bounds of
the bucket each quantile fell into, and a flag when it is pinned at the highest finite bound
(CoreDNS: 8.192 s).

Semantics (checked against the real Prometheus 2.42 server by ``tests/test_promql_prometheus.py``
and against Prometheus's own conformance files, promqltest v2.42.0, by ``tests/test_promqltest.py``):

- Evaluation at ``start, start+step, ..., end`` (milliseconds, like the engine).
- Instant selectors take the newest sample within the lookback (default 5 m); a series with no
  sample in the lookback is absent at that step ("stale"), exactly like a gap in Grafana.
- ``rate``/``increase``/``delta``: Prometheus's ``extrapolatedRate`` (counter resets, extrapolation
  to the window edges by at most half a sample interval, never below zero).
- ``histogram_quantile``: Prometheus's ``bucketQuantile`` (sorting by ``le``, same-``le`` buckets
  summed, monotonicity fix, ``+Inf`` required, lowest bucket interpolated from 0, rank beyond the last
  finite bucket returns that bucket's upper bound).
- Regex matchers are anchored (``^(?:re)$``). Python's ``re`` stands in for RE2: RE2 flags set
  inside a group (``((?i)PRO).*``) are rewritten to scoped groups; lookarounds and backreferences
  are rejected as Prometheus rejects them; RE2-only syntax (Unicode classes such as ``\\pL``, the
  ungreedy flag ``U``) raises :class:`PromQLError`.
- Keywords and aggregation operators are case-insensitive (``SUM(x) BY (job)``, ``AND ON``,
  ``IGNORING``, ``BOOL``, ``OFFSET``); function names are not (``RATE(...)`` is an unknown
  function, as in Prometheus).
- ``start``/``end`` in Unix seconds and a numeric ``step`` are converted to milliseconds exactly as
  the HTTP API does (fractions rounded to ms; steps truncated).
- Grouping samples into series: ``metric`` + every label column (``source`` is not a label, an empty
  label value is no label); the same series twice at one timestamp keeps the first sample (with a
  :class:`~kit.errors.KitWarning`), as Prometheus's TSDB does.
- An instant query (``start == end``) of ``sort``/``sort_desc``/``topk``/``bottomk`` returns its rows
  in Prometheus's order (by value, NaN last); otherwise rows are sorted by time and labels.

Versions (``compat``): ``"2"`` is 2.42 (Debian's package, the version the conformance files come
from); ``"2.42"`` to ``"2.55"`` (a patch number is allowed: ``"2.53.1"``, the 2.53 LTS) and ``"3"``
(current 3.x) differ where Prometheus's CHANGELOG says PromQL changed:

- 2.49.0, #13153 "Fix inaccuracies of histogram_quantile with classic histograms": from 2.49,
  ``histogram_quantile`` also ignores relative deltas <= 1e-12 between neighbouring buckets (2.42:
  only ``ensureMonotonic``).
- 2.51.0, #13725 "Constrain extrapolation in rate() to half of sample interval": from 2.51 the
  110 % threshold test comes before the zero-point limit (2.42 to 2.50: after it). Example:
  ``increase(http_requests[100m])`` over 10, 20, ... 110 every 5 m at 50 m is 110 in 2.42 and 105
  in 2.51-2.55 and 3.
- 2.54.0, #14074 / #14362 "use Kahan summation for sum()": ``sum`` (1, 1e100, 1, -1e100) is 2 from
  2.54, 0 before; #9138 "float literal numbers and durations are now interchangeable
  (experimental)" (stable in 3.0, #15111): ``x[600]``, ``offset 50``, ``time() - t > 10m``.
- 3.0: range selectors and lookback select ``(t-range, t]`` (2.x: ``[t-range, t]``; Prometheus's
  migration guide); #14505 "regexp . now matches all characters"; #14941 ``stddev``/``stdvar`` of a
  group holding a NaN or an infinity is NaN (2.x: 0 for such a value alone); ``atan2`` drops the
  metric name like the other arithmetic operators (operators.test at HEAD; 2.42 kept it);
  ``sum_over_time``/``avg_over_time`` use Kahan summation (functions.go at HEAD); #14930
  ``holt_winters`` is renamed ``double_exponential_smoothing`` behind a feature flag (not
  supported with ``compat="3"``).
- 3.x, #17668 "Fix insufficient cardinality checking for filter ops" (merged 2025-12): a comparison
  that matches many-to-one without ``group_left`` is an error even when the filter would leave one
  match (2.x only checked the samples that passed the filter).

Exports and exactness: the answers equal Prometheus's when the frame holds the *raw* samples, e.g.
an instant query of a range selector (``/api/v1/query?query=x_bucket[2h]``: a matrix with the
original scrape timestamps) or an OpenMetrics/text dump with timestamps. A ``query_range`` export of
a plain selector is already resampled at its step (each point is the last sample before it), so
``rate()`` over it extrapolates from the step times instead of the scrape times: close, not equal.

Known differences: stale markers cannot be represented in an export, so a series disappears only when
its last sample leaves the lookback; negative ``offset`` is accepted without Prometheus 2's feature
flag; Prometheus 3's normalisation of ``le``/``quantile`` values at scrape time (``le="1"`` ->
``"1.0"``) is not applied to the labels of results (``histogram_quantile`` compares bounds
numerically either way); among equal values ``topk``/``bottomk`` keep the first series in label
order, where Prometheus's heap may keep another; ``avg`` keeps 2.42's incremental mean in every
``compat``.

Supported syntax: number literals (incl. ``Inf``/``NaN``), string literals (also parenthesised) as
arguments, selectors with ``=``, ``!=``, ``=~``, ``!~`` matchers, range selectors, subqueries
``expr[1h:1m]`` (``[1h:]`` = 1m step, Prometheus's default evaluation interval), ``offset``, ``@``
(a Unix time, ``start()``, ``end()``), ``rate``, ``irate``, ``increase``, ``delta``, ``idelta``,
``changes``, ``resets``, ``deriv``, ``predict_linear``, ``holt_winters`` (2.x),
``sum|avg|min|max|count|last|quantile|stddev|stdvar|present|absent_over_time``,
``histogram_quantile``, ``abs``, ``ceil``, ``floor``, ``round``, ``sgn``, ``sqrt``, ``exp``, ``ln``,
``log2``, ``log10``, the trigonometric functions, ``deg``, ``rad``, ``pi``, ``clamp``,
``clamp_min``, ``clamp_max``, ``absent``, ``sort``, ``sort_desc``, ``vector``, ``scalar``,
``time``, ``timestamp``, ``year``/``month``/``day_of_month``/``day_of_week``/``day_of_year``/
``days_in_month``/``hour``/``minute``, ``label_replace``, ``label_join``,
``sum``/``avg``/``min``/``max``/``count``/``group``/``stddev``/``stdvar``/``quantile``/``topk``/
``bottomk``/``count_values`` with ``by``/``without`` (before or after the arguments), unary
``-``/``+``, arithmetic ``+ - * / % ^ atan2`` and comparisons ``== != < > <= >=`` (filtering, or
0/1 with ``bool``) between scalars and vectors and between vectors (``on``/``ignoring``, and
``group_left``/``group_right`` to copy labels such as ``node`` from a join table like
``kube_pod_info``), set operators ``and``/``or``/``unless``, parentheses and ``#`` comments. Not
supported, with a :class:`PromQLError` naming the construct and its position: native-histogram
functions (``histogram_count``, ``histogram_sum``, ``histogram_fraction``...: an export holds
classic buckets), ``limitk``/``limit_ratio`` and Prometheus's experimental functions
(``sort_by_label``, ``mad_over_time``, ``info``...), a string as the query's result.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import warnings
from collections.abc import Mapping, Sequence
from typing import Literal

import numpy as np
import polars as pl

from kit.errors import KitError, KitWarning
from kit.promql._ast import (
    _SCALAR_FUNCTIONS,
    _Agg,
    _Binary,
    _Call,
    _Number,
    _Selector,
    _Subquery,
    _Unary,
)
from kit.promql._base import QUANTILE_SCHEMA, Compat, PromQLError, StepLike, TimeLike, _semantics
from kit.promql._eval import _Ctx, _eval, _result_frame, _selector_names, _series_from_frame
from kit.promql._histogram import _parse_le, _quantile_matrix
from kit.promql._lexer import _UNIT_MS, _step_ms, _to_ms, parse_duration
from kit.promql._parser import _Parser

__all__ = [
    "QUANTILE_SCHEMA",
    "PromQLError",
    "evaluate",
    "histogram_quantile",
    "parse_duration",
    "quantile_series",
    "result_type",
]

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------------------------------
# Durations and times


_UNIT_MS["y"] = 365 * _UNIT_MS["d"]


# --------------------------------------------------------------------------------------------------
# Lexer


# --------------------------------------------------------------------------------------------------
# AST


# --------------------------------------------------------------------------------------------------
# Values during evaluation


# --------------------------------------------------------------------------------------------------
# Evaluation


# --------------------------------------------------------------------------------------------------
# Frame <-> series


_GRAFANA_VAR_RE = re.compile(r"\$\{?(\w+)(?::\w+)?\}?|\[\[(\w+)\]\]")


def _substitute(expr: str, variables: Mapping[str, str] | None) -> str:
    def repl(m: re.Match[str]) -> str:
        name = m.group(1) or m.group(2)
        if variables is not None and name in variables:
            return str(variables[name])
        if name[0].isdigit():
            return m.group(0)  # $1, ${2}: a label_replace() template, not a Grafana variable
        raise PromQLError(
            f"unresolved Grafana variable {m.group(0)!r}; pass variables={{{name!r}: ...}} "
            "(e.g. '5m' for $__rate_interval, '.*' or a regex for a multi-value variable)",
            expr=expr,
            position=m.start(),
            construct=m.group(0),
        )

    return _GRAFANA_VAR_RE.sub(repl, expr)


def result_type(expr: str, *, compat: Compat = "3") -> Literal["scalar", "vector", "matrix"]:
    """The PromQL type of ``expr``'s result, as Prometheus's parser infers it.

    ``"scalar"`` for ``1 + 2``, ``time()``, ``scalar(x)``; ``"vector"`` for selectors, functions
    and aggregations returning an instant vector; ``"matrix"`` for a range selector or subquery
    (``x[5m]``). :func:`evaluate` returns a scalar as a frame of ``ts``/``value`` only, like a
    vector without labels: this tells them apart.

    Raises
    ------
    PromQLError
        If ``expr`` does not parse (with ``compat``'s syntax, as :func:`evaluate`).
    """
    return _result_type(_Parser(expr, _semantics(compat)).parse())


def _result_type(node: object) -> Literal["scalar", "vector", "matrix"]:
    if isinstance(node, _Number):
        return "scalar"
    if isinstance(node, _Selector):
        return "matrix" if node.range_ms is not None else "vector"
    if isinstance(node, _Subquery):
        return "matrix"
    if isinstance(node, _Call):
        return "scalar" if node.func in _SCALAR_FUNCTIONS else "vector"
    if isinstance(node, _Unary):
        return _result_type(node.expr)
    if isinstance(node, _Binary):
        both = _result_type(node.lhs) == _result_type(node.rhs) == "scalar"
        return "scalar" if both else "vector"
    return "vector"


def evaluate(
    frame: pl.DataFrame,
    expr: str,
    *,
    start: TimeLike | None = None,
    end: TimeLike | None = None,
    step: StepLike = "1m",
    compat: Compat = "3",
    lookback: str | dt.timedelta = "5m",
    variables: Mapping[str, str] | None = None,
    bounds: bool = False,
) -> pl.DataFrame:
    """Evaluate a PromQL expression over a metrics frame, like Prometheus's ``/api/v1/query_range``.

    Parameters
    ----------
    frame
        The long metrics frame of ``kit.read_metrics``: ``ts`` (Datetime UTC), ``metric`` (the
        ``__name__``), ``value`` (Float64), optional ``source`` (ignored), and one String column per
        label (null or ``""`` = label absent). A series is ``metric`` + all label columns.
    expr
        PromQL, e.g. the coredns-mixin's
        ``histogram_quantile(0.99, sum(rate(coredns_dns_request_duration_seconds_bucket[5m])) by (server, zone, le))``.
        See the module docstring for the supported subset.
    start, end
        First and last evaluation time (inclusive): ``datetime`` (naive = UTC), ISO-8601 string, or
        Unix seconds. Default: the frame's first and last sample time.
    step
        Evaluation interval: ``timedelta``, duration string (``"30s"``) or seconds.
    compat
        The Prometheus version whose semantics to follow: ``"3"`` (default, current 3.x: range
        windows and lookback ``(t-range, t]``), ``"2"`` (2.42 exactly: ``[t-range, t]`` and 2.42's
        rate/quantile details), or a 2.x version from ``"2.42"`` to ``"2.55"`` (``"2.53"``, the LTS
        many clusters run). The differences are listed in the module docstring. ValueError for
        another value.
    lookback
        Lookback delta of instant selectors (Prometheus ``--query.lookback-delta``, default 5m).
    variables
        Values for Grafana template variables in ``expr`` (``$job``, ``${job}``, ``[[job]]``,
        ``$__rate_interval``); an unresolved one raises :class:`PromQLError`.
    bounds
        Only for an expression whose outermost call is ``histogram_quantile(...)`` (e.g. the
        dashboard's p99 query): add ``quantile``, ``bucket_lower``, ``bucket_upper`` and
        ``at_ceiling`` (see :data:`QUANTILE_SCHEMA`) after the label columns, so the result feeds
        :func:`kit.charts.latency_quantiles_chart` and says when a value is only the last finite
        bucket's bound.

    Returns
    -------
    polars.DataFrame
        One row per (output series, step where it has a value): ``ts`` (Datetime("us", "UTC"),
        evaluation time), ``value`` (Float64; NaN kept, e.g. a histogram_quantile over no traffic),
        ``metric`` (String, only when the result keeps metric names, e.g. a plain selector), then one
        String column per output label, sorted by name (null where a series lacks it). Steps where a
        series has no value are absent, as in Prometheus's JSON. Sorted by ``ts`` then labels.

    Raises
    ------
    PromQLError
        Syntax error, unsupported construct (named, with its position), unresolved Grafana variable,
        or an evaluation error Prometheus would also raise (duplicate label sets, many-to-many
        matching).
    KitError
        ``frame`` does not have the metrics-frame layout.
    """
    sem = _semantics(compat)
    text = _substitute(expr, variables)
    node = _Parser(text, sem).parse()
    names = _selector_names(node)
    used = frame
    if names is not None and "metric" in frame.columns:
        # only the metrics the expression names: grouping the rest into series would be wasted work
        used = frame.filter(pl.col("metric").is_in(sorted(names)))
    series = _series_from_frame(used)
    if start is None or end is None:
        if frame.is_empty():
            raise ValueError("start= and end= are required for an empty frame")
        lo, hi = frame["ts"].min(), frame["ts"].max()
        start = lo if start is None else start  # type: ignore[assignment]
        end = hi if end is None else end  # type: ignore[assignment]
    start_ms = _to_ms(start, "start")  # type: ignore[arg-type]
    end_ms = _to_ms(end, "end")  # type: ignore[arg-type]
    if end_ms < start_ms:
        raise ValueError(f"end ({end!r}) is before start ({start!r})")
    step = _step_ms(step)
    steps = np.arange(start_ms, end_ms + 1, step, dtype=np.int64)
    lb = (
        lookback // dt.timedelta(milliseconds=1)
        if isinstance(lookback, dt.timedelta)
        else parse_duration(lookback)
    )
    ctx = _Ctx(text, steps, series, lb, sem, query_start=start_ms, query_end=end_ms)
    if isinstance(node, _Selector) and node.range_ms is not None:
        raise PromQLError(
            "a range vector (x[5m]) cannot be evaluated over a time range; use rate(), increase()...",
            expr=text,
            position=node.pos,
            construct=node.text,
        )
    if bounds:
        if not (isinstance(node, _Call) and node.func == "histogram_quantile"):
            raise PromQLError(
                "bounds=True needs an expression whose outermost call is histogram_quantile()",
                expr=text,
                position=0,
            )
        ctx.bounds_for = node
    log.debug("evaluate %r: %d series in frame, %d steps", text, len(series), len(steps))
    result = _eval(ctx, node)
    for note in ctx.notes:
        warnings.warn(note, KitWarning, stacklevel=2)
    order = None
    if isinstance(node, _Call) and node.func in ("sort", "sort_desc"):
        order = "asc" if node.func == "sort" else "desc"
    elif isinstance(node, _Agg) and node.op in ("topk", "bottomk"):
        order = "desc" if node.op == "topk" else "asc"
    return _result_frame(ctx, result, order)


# --------------------------------------------------------------------------------------------------
# Quantiles with their bucket bounds


def histogram_quantile(
    buckets: pl.DataFrame, q: float | Sequence[float], *, compat: Compat = "3"
) -> pl.DataFrame:
    """``histogram_quantile`` over a frame of bucket values, keeping the bucket each result fell in.

    Parameters
    ----------
    buckets
        Bucket values per time and group, e.g. the result of
        ``evaluate(df, "sum by (instance, le) (rate(x_bucket[5m]))")``: columns ``ts``, ``le``
        (String, compared numerically: ``"1"`` == ``"1.0"``), ``value`` and any label columns
        (``metric``/``source`` are ignored for grouping, as Prometheus drops the name).
    q
        Quantile(s) in [0, 1] (outside: ±Inf, NaN: NaN, as Prometheus).
    compat
        ``"3"`` (default), ``"2"`` or a 2.x version as for :func:`evaluate`; only the
        monotonicity fix depends on it (2.49+ ignores float noise between buckets).

    Returns
    -------
    polars.DataFrame
        ``ts`` (Datetime UTC), the label columns except ``le``, then :data:`QUANTILE_SCHEMA`:
        ``quantile`` (Float64, the requested q), ``value`` (Float64 seconds for latency histograms;
        NaN when Prometheus gives NaN: no observations, no ``+Inf`` bucket...), ``bucket_lower`` and
        ``bucket_upper`` (Float64, bounds of the bucket the rank fell in; the lowest bucket starts at
        0; ``bucket_upper`` is +Inf and ``bucket_lower`` the highest finite bound when pinned; NaN
        when ``value`` is NaN), ``at_ceiling`` (Boolean: the rank is beyond the last finite bucket,
        so ``value`` is only a lower bound, e.g. "p99 = 8.192 s (ceiling of the last finite bucket)").
        Rows whose ``le`` does not parse are skipped with a :class:`~kit.errors.KitWarning`.
    """
    small_deltas = _semantics(compat).small_deltas
    qs = [float(q)] if isinstance(q, int | float) else [float(x) for x in q]
    if "le" not in buckets.columns:
        raise KitError("histogram_quantile needs an 'le' column (bucket upper bounds)")
    group_cols = [c for c in buckets.columns if c not in ("le", "value", "metric", "source")]
    if "ts" not in group_cols:
        raise KitError("histogram_quantile needs a 'ts' column")
    out_schema = {**{c: buckets.schema[c] for c in group_cols}, **QUANTILE_SCHEMA}
    if buckets.is_empty():
        return pl.DataFrame(schema=out_schema)
    les = buckets["le"].to_list()
    parsed = [_parse_le(x) if x is not None else None for x in les]
    n_bad = sum(p is None for p in parsed)
    if n_bad:
        warnings.warn(
            f"{n_bad} bucket rows with an unparsable 'le' skipped", KitWarning, stacklevel=2
        )
    df = buckets.with_columns(pl.Series("_ub", parsed, dtype=pl.Float64)).filter(
        pl.col("_ub").is_not_null()
    )
    label_cols = [c for c in group_cols if c != "ts"]
    ts_dtype = buckets.schema["ts"]
    df = df.with_columns(pl.col("ts").cast(pl.Datetime("us", "UTC")).dt.epoch("us").alias("_us"))
    parts = df.partition_by(label_cols, maintain_order=True) if label_cols else [df]
    out: list[pl.DataFrame] = []
    for part in parts:
        # one matrix per group: bucket series (distinct le strings) x time
        t_unique, t_idx = np.unique(part["_us"].to_numpy(), return_inverse=True)
        le_unique, r_idx = np.unique(part["le"].to_numpy().astype(str), return_inverse=True)
        ubs = np.array([_parse_le(x) for x in le_unique], dtype=np.float64)
        v = np.full((len(le_unique), len(t_unique)), np.nan)
        p = np.zeros((len(le_unique), len(t_unique)), dtype=bool)
        v[r_idx, t_idx] = part["value"].cast(pl.Float64).fill_null(np.nan).to_numpy()
        p[r_idx, t_idx] = True
        first = part.row(0, named=True)
        for qq in qs:
            val, lo, up, pin, pres = _quantile_matrix(
                np.full(len(t_unique), qq), ubs, v, p, small_deltas
            )
            n = int(pres.sum())
            out.append(
                pl.DataFrame(
                    {
                        "ts": pl.Series(t_unique[pres], dtype=pl.Int64)
                        .cast(pl.Datetime("us", "UTC"))
                        .cast(ts_dtype),
                        **{
                            c: pl.Series([first[c]] * n, dtype=buckets.schema[c])
                            for c in label_cols
                        },
                        "quantile": np.full(n, qq),
                        "value": val[pres],
                        "bucket_lower": lo[pres],
                        "bucket_upper": up[pres],
                        "at_ceiling": pin[pres],
                    },
                    schema=out_schema,
                )
            )
    if not out:
        return pl.DataFrame(schema=out_schema)
    return pl.concat(out).sort([*group_cols, "quantile"], nulls_last=True)


def quantile_series(
    frame: pl.DataFrame,
    metric: str = "coredns_dns_request_duration_seconds",
    *,
    quantiles: Sequence[float] = (0.5, 0.9, 0.99),
    by: Sequence[str] = ("instance",),
    matchers: str = "",
    window: str = "5m",
    start: TimeLike | None = None,
    end: TimeLike | None = None,
    step: StepLike = "1m",
    compat: Compat = "3",
) -> pl.DataFrame:
    """Latency quantiles over time from a classic histogram, as a dashboard computes them.

    Evaluates ``sum by (<by>, le) (rate(<metric>_bucket{<matchers>}[<window>]))`` and applies
    :func:`histogram_quantile` for each quantile, so the result carries the bucket bounds.

    Parameters
    ----------
    frame
        Metrics frame (``kit.read_metrics`` layout) holding ``<metric>_bucket`` series.
    metric
        Histogram name without ``_bucket``.
    quantiles
        Quantiles in [0, 1].
    by
        Labels to keep (one line per combination), e.g. ``("instance",)`` or ``("server", "zone")``.
    matchers
        Extra label matchers, PromQL syntax without braces, e.g. ``'job=~"coredns|node-local-dns"'``.
    window
        Rate window (the dashboards use 5m).
    start, end, step, compat
        As for :func:`evaluate`.

    Returns
    -------
    polars.DataFrame
        ``ts``, the ``by`` columns (String; a label missing from the data is a null column), then
        :data:`QUANTILE_SCHEMA` (``quantile``, ``value`` in the histogram's unit — seconds for
        CoreDNS —, ``bucket_lower``, ``bucket_upper``, ``at_ceiling``).
    """
    grouping = ", ".join([*by, "le"])
    expr = f"sum by ({grouping}) (rate({metric}_bucket{{{matchers}}}[{window}]))"
    buckets = evaluate(frame, expr, start=start, end=end, step=step, compat=compat)
    for col in by:
        if col not in buckets.columns:
            buckets = buckets.with_columns(pl.lit(None, dtype=pl.String).alias(col))
    if "le" not in buckets.columns:
        buckets = buckets.with_columns(pl.lit(None, dtype=pl.String).alias("le"))
    buckets = buckets.select("ts", *by, "le", "value")
    return histogram_quantile(buckets, quantiles, compat=compat)
