"""The PromQL evaluator: instant and range vectors over the exported samples, functions,
aggregations, binary and set operators, exactly as Prometheus computes them.
"""

from __future__ import annotations

import decimal
import itertools
import math
import re
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TypeAlias, cast

import numpy as np
import polars as pl

from kit.errors import KitError, KitWarning
from kit.promql._ast import (
    _COMPARISONS,
    _DATE_FUNCTIONS,
    _ELEMENTWISE,
    _RANGE_FUNCTIONS,
    _SET_OPS,
    _Agg,
    _Binary,
    _Call,
    _Number,
    _range_arg,
    _re2_to_python,
    _Selector,
    _String,
    _Subquery,
    _Unary,
)
from kit.promql._base import _BASE_COLUMNS, _NAME, PromQLError, _Semantics
from kit.promql._histogram import _parse_le, _quantile_matrix

Labels: TypeAlias = tuple[tuple[str, str], ...]  # sorted (name, value); empty values never stored


@dataclass
class _Vec:
    labels: list[Labels]
    values: np.ndarray  # (S, T) float64
    present: np.ndarray  # (S, T) bool


@dataclass
class _Scalar:
    values: np.ndarray  # (T,) float64


@dataclass
class _Series:
    labels: dict[str, str]
    ts: np.ndarray  # int64 ms, ascending, unique
    values: np.ndarray  # float64


@dataclass
class _Ctx:
    expr: str
    steps: np.ndarray  # int64 ms
    series: list[_Series]
    lookback_ms: int
    sem: _Semantics
    notes: list[str] = field(default_factory=list)
    # the query's start and end (ms), for '@ start()' / '@ end()', also inside subqueries
    query_start: int = 0
    query_end: int = 0
    # evaluate(bounds=True): the top-level histogram_quantile() call, and what it found per row
    bounds_for: object = None
    bounds: dict[str, np.ndarray] | None = None


def _key(labels: Mapping[str, str]) -> Labels:
    return tuple(sorted((k, v) for k, v in labels.items() if v != ""))


def _without_name(labels: Labels) -> Labels:
    return tuple(kv for kv in labels if kv[0] != _NAME)


def _fmt_labels(labels: Labels) -> str:
    name = dict(labels).get(_NAME, "")
    inner = ", ".join(f'{k}="{v}"' for k, v in labels if k != _NAME)
    return f"{name}{{{inner}}}"


def _merge(
    ctx: _Ctx, labels: list[Labels], values: np.ndarray, present: np.ndarray, pos: int, what: str
) -> _Vec:
    """Combine rows with the same label set; the same label set twice at one step is an error."""
    index: dict[Labels, int] = {}
    keep: list[int] = []
    for i, lab in enumerate(labels):
        j = index.get(lab)
        if j is None:
            index[lab] = len(keep)
            keep.append(i)
            continue
        row = keep[j]
        clash = present[row] & present[i]
        if clash.any():
            raise PromQLError(
                f"{what}: vector cannot contain metrics with the same labelset {_fmt_labels(lab)}",
                expr=ctx.expr,
                position=pos,
            )
        values[row] = np.where(present[i], values[i], values[row])
        present[row] |= present[i]
    return _Vec([labels[i] for i in keep], values[keep], present[keep])


def _select(ctx: _Ctx, sel: _Selector) -> list[_Series]:
    return [s for s in ctx.series if all(m.matches(s.labels, ctx.sem.v3) for m in sel.matchers)]


def _eval(ctx: _Ctx, node: object) -> _Vec | _Scalar:
    if isinstance(node, _Number):
        return _Scalar(np.full(len(ctx.steps), node.value, dtype=np.float64))
    if isinstance(node, _String):
        raise PromQLError(
            "a string literal is only valid as an argument of label_replace(), label_join() or "
            "count_values()",
            expr=ctx.expr,
            position=node.pos,
        )
    if isinstance(node, _Selector):
        if node.range_ms is not None:
            raise PromQLError(
                "a range vector (x[5m]) cannot be the result of an expression; wrap it in rate(), increase()...",
                expr=ctx.expr,
                position=node.pos,
                construct=node.text,
            )
        return _eval_instant_selector(ctx, node)
    if isinstance(node, _Subquery):
        raise PromQLError(
            "a subquery (x[1h:1m]) is a range vector: wrap it in max_over_time(), rate()...",
            expr=ctx.expr,
            position=node.pos,
        )
    if isinstance(node, _Call):
        if node.func == "histogram_quantile":
            return _eval_histogram_quantile(ctx, node)
        if node.func in _RANGE_FUNCTIONS:
            return _eval_range_function(ctx, node)
        return _eval_instant_function(ctx, node)
    if isinstance(node, _Agg):
        return _eval_aggregation(ctx, node)
    if isinstance(node, _Unary):
        inner = _eval(ctx, node.expr)
        if node.op == "+":
            return inner
        if isinstance(inner, _Scalar):
            return _Scalar(-inner.values)
        labels = [_without_name(lab) for lab in inner.labels]
        return _merge(ctx, labels, -inner.values, inner.present.copy(), node.pos, "unary minus")
    if isinstance(node, _Binary):
        return _eval_binary(ctx, node)
    raise PromQLError(f"cannot evaluate {type(node).__name__}", expr=ctx.expr)  # pragma: no cover


def _date_part(func: str, seconds: np.ndarray) -> np.ndarray:
    """year(), month()... of Unix seconds (UTC), as Go's time.Unix(int64(v), 0).UTC(); NaN and
    infinities stay NaN."""
    out = np.full(seconds.shape, np.nan)
    finite = np.isfinite(seconds)
    secs = np.trunc(seconds[finite]).astype("int64")
    days = secs // 86_400
    d = days.astype("datetime64[D]")
    year = d.astype("datetime64[Y]").astype(int) + 1970
    month0 = d.astype("datetime64[M]").astype(int) % 12
    if func == "year":
        r = year
    elif func == "month":
        r = month0 + 1
    elif func == "day_of_month":
        r = (d - d.astype("datetime64[M]")).astype(int) + 1
    elif func == "day_of_year":
        r = (d - d.astype("datetime64[Y]")).astype(int) + 1
    elif func == "day_of_week":
        r = (days + 4) % 7  # 1970-01-01 was a Thursday; 0 = Sunday
    elif func == "days_in_month":
        first = d.astype("datetime64[M]")
        r = ((first + 1).astype("datetime64[D]") - first.astype("datetime64[D]")).astype(int)
    elif func == "hour":
        r = (secs % 86_400) // 3600
    else:  # minute
        r = (secs % 3600) // 60
    out[finite] = r
    return out


def _ref_times(ctx: _Ctx, at: int | str | None, offset_ms: int) -> np.ndarray:
    """The time (ms) a selector reads at each step: the step, or the '@' time, minus the offset."""
    if at is None:
        return ctx.steps - offset_ms
    t = ctx.query_start if at == "start" else ctx.query_end if at == "end" else int(at)
    return np.full(len(ctx.steps), t - offset_ms, dtype=np.int64)


def _eval_instant_selector(ctx: _Ctx, sel: _Selector, *, timestamps: bool = False) -> _Vec:
    ref = _ref_times(ctx, sel.at, sel.offset_ms)
    low = ref - ctx.lookback_ms
    rows_v, rows_p, labels = [], [], []
    for s in _select(ctx, sel):
        idx = np.searchsorted(s.ts, ref, side="right") - 1
        ok = idx >= 0
        safe = np.clip(idx, 0, None)
        t = s.ts[safe] if len(s.ts) else np.zeros_like(ref)
        ok &= (t >= low) if ctx.sem.left_closed else (t > low)
        vals = s.values[safe] if len(s.values) else np.zeros(len(ref))
        if timestamps:  # timestamp(x): the time of the selected sample, in seconds
            vals = t.astype(np.float64) / 1000
        rows_v.append(np.where(ok, vals, np.nan))
        rows_p.append(ok)
        labels.append(_key(s.labels))
    return _stack(ctx, labels, rows_v, rows_p)


def _stack(
    ctx: _Ctx, labels: list[Labels], rows_v: list[np.ndarray], rows_p: list[np.ndarray]
) -> _Vec:
    t = len(ctx.steps)
    if not labels:
        return _Vec([], np.zeros((0, t)), np.zeros((0, t), dtype=bool))
    return _Vec(labels, np.vstack(rows_v), np.vstack(rows_p))


def _window(
    ctx: _Ctx, s: _Series, range_ms: int, offset_ms: int, at: int | str | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Indices ``[lo, hi)`` of each step's range window, and the range end (ms) per step."""
    end = _ref_times(ctx, at, offset_ms)
    start = end - range_ms
    lo = np.searchsorted(s.ts, start, side="left" if ctx.sem.left_closed else "right")
    hi = np.searchsorted(s.ts, end, side="right")
    return lo, hi, end


#: Prometheus's default global evaluation_interval: the step of a subquery written ``[1h:]``
DEFAULT_SUBQUERY_STEP_MS = 60_000


def _subquery_series(ctx: _Ctx, sq: _Subquery) -> list[_Series]:
    """Evaluate a subquery's inner expression on its own step grid, aligned to multiples of the step
    (as Prometheus's engine does), and return the result as raw series for a range function."""
    step = sq.step_ms or DEFAULT_SUBQUERY_STEP_MS
    ends = _ref_times(ctx, sq.at, sq.offset_ms)
    lo = int(ends[0]) - sq.range_ms
    start = step * (lo // step) if lo >= 0 else -step * ((-lo) // step)
    if start < lo:
        start += step
    end = int(ends[-1])
    grid = np.arange(start, end + 1, step, dtype=np.int64)
    inner = _Ctx(
        ctx.expr,
        grid,
        ctx.series,
        ctx.lookback_ms,
        ctx.sem,
        ctx.notes,
        query_start=ctx.query_start,
        query_end=ctx.query_end,
    )
    if not len(grid):
        return []
    res = _eval(inner, sq.expr)
    if isinstance(res, _Scalar):
        raise PromQLError(
            "a subquery needs an instant vector expression, got a scalar",
            expr=ctx.expr,
            position=sq.pos,
        )
    return [
        _Series(dict(lab), grid[res.present[i]], res.values[i][res.present[i]])
        for i, lab in enumerate(res.labels)
        if res.present[i].any()
    ]


def _absent_labels(arg: object) -> Labels:
    """Labels of absent()'s output: the argument selector's equality matchers (Prometheus's
    createLabelsForAbsentFunction: a label also constrained otherwise is left out)."""
    if not isinstance(arg, _Selector):
        return ()
    out: dict[str, str] = {}
    drop: set[str] = set()
    for m in arg.matchers:
        if m.name == _NAME:
            continue
        if m.op == "=" and m.name not in out:
            out[m.name] = m.value
        else:
            drop.add(m.name)
    return tuple(sorted((k, v) for k, v in out.items() if k not in drop and v != ""))


def _eval_range_function(ctx: _Ctx, call: _Call) -> _Vec:
    ri = _range_arg(call.func) % len(call.args)
    arg = call.args[ri]
    scalars: list[np.ndarray] = []  # the other arguments, each a scalar per step
    for i, other in enumerate(call.args):
        if i == ri:
            continue
        sc = _eval(ctx, other)
        if not isinstance(sc, _Scalar):
            raise PromQLError(
                f"{call.func}() expects a scalar as argument {i + 1}",
                expr=ctx.expr,
                position=call.pos,
                construct=call.func,
            )
        scalars.append(sc.values)
    q_values = scalars[0] if call.func == "quantile_over_time" else None
    if isinstance(arg, _Subquery):
        sources = _subquery_series(ctx, arg)
    else:
        assert isinstance(arg, _Selector) and arg.range_ms is not None
        sources = _select(ctx, arg)
    range_ms, offset_ms, at = arg.range_ms, arg.offset_ms, arg.at
    rows_v, rows_p, labels = [], [], []
    assert range_ms is not None  # a range-vector argument (checked by the parser)
    for s in sources:
        lo, hi, end = _window(ctx, s, range_ms, offset_ms, at)
        if call.func in ("irate", "idelta"):
            vals, ok = _irate(s, lo, hi, is_rate=call.func == "irate")
        elif call.func in ("deriv", "predict_linear", "holt_winters"):
            vals, ok = _regression(ctx, call.func, s, lo, hi, scalars)
        elif call.func not in ("rate", "increase", "delta"):
            vals, ok = _over_time(call.func, s, lo, hi, q_values, kahan=ctx.sem.v3)
        else:
            vals, ok = _extrapolated_rate(
                s,
                lo,
                hi,
                end,
                range_ms,
                is_counter=call.func != "delta",
                is_rate=call.func == "rate",
                zero_point_first=ctx.sem.zero_point_first,
            )
        rows_v.append(vals)
        rows_p.append(ok)
        key = _key(s.labels)
        # every function drops the metric name except last_over_time (Prometheus engine.go)
        labels.append(key if call.func == "last_over_time" else _without_name(key))
    if call.func == "absent_over_time":
        some: np.ndarray = (
            np.asarray(np.vstack(rows_p).any(axis=0))
            if rows_p
            else np.zeros(len(ctx.steps), dtype=bool)
        )
        return _Vec([_absent_labels(arg)], np.ones((1, len(ctx.steps))), (~some)[None, :])
    stacked = _stack(ctx, labels, rows_v, rows_p)
    return _merge(ctx, stacked.labels, stacked.values, stacked.present, call.pos, f"{call.func}()")


def _kahan_inc(inc: float, total: float, c: float) -> tuple[float, float]:
    """Prometheus's ``kahanSumInc`` (Neumaier's variant; the compensation is reset at infinity)."""
    t = total + inc
    if math.isinf(t):
        c = 0.0
    elif abs(total) >= abs(inc):
        c += (total - t) + inc
    else:
        c += (inc - t) + total
    return t, c


def _avg_kahan(w: list[float]) -> float:
    # Prometheus 3 avg_over_time: a Kahan-compensated sum divided by the count, switching to an
    # incremental mean once the sum would overflow
    total, count, mean, c, incremental = w[0], 1.0, 0.0, 0.0, False
    for i, x in enumerate(w[1:]):
        count = float(i + 2)
        if not incremental:
            new_total, new_c = _kahan_inc(x, total, c)
            if not math.isinf(new_total):
                total, c = new_total, new_c
                continue
            incremental = True
            mean = total / (count - 1)
            c /= count - 1
        q = (count - 1) / count
        mean, c = _kahan_inc(x / count, q * mean, q * c)
    if incremental:
        return mean + c
    return total / count + c / count


def _linear_regression(ts: np.ndarray, vs: list[float], intercept_ms: int) -> tuple[float, float]:
    """Prometheus's ``linearRegression``: least squares with Kahan sums, x in seconds from
    ``intercept_ms``; a constant series has slope 0 (NaN if it is infinite)."""
    n = sum_x = c_x = sum_y = c_y = sum_xy = c_xy = sum_x2 = c_x2 = 0.0
    const_y = all(v == vs[0] for v in vs[1:])
    for t, v in zip(ts.tolist(), vs, strict=True):
        n += 1.0
        x = (t - intercept_ms) / 1e3
        sum_x, c_x = _kahan_inc(x, sum_x, c_x)
        sum_y, c_y = _kahan_inc(v, sum_y, c_y)
        sum_xy, c_xy = _kahan_inc(x * v, sum_xy, c_xy)
        sum_x2, c_x2 = _kahan_inc(x * x, sum_x2, c_x2)
    if const_y:
        if math.isinf(vs[0]):
            return math.nan, math.nan
        return 0.0, vs[0]
    sum_x, sum_y, sum_xy, sum_x2 = sum_x + c_x, sum_y + c_y, sum_xy + c_xy, sum_x2 + c_x2
    cov_xy = sum_xy - sum_x * sum_y / n
    var_x = sum_x2 - sum_x * sum_x / n
    with np.errstate(all="ignore"):
        slope = float(np.float64(cov_xy) / np.float64(var_x))
    intercept = sum_y / n - slope * sum_x / n
    return slope, intercept


def _regression(
    ctx: _Ctx, func: str, s: _Series, lo: np.ndarray, hi: np.ndarray, scalars: list[np.ndarray]
) -> tuple[np.ndarray, np.ndarray]:
    """deriv (slope, per second), predict_linear (value ``t`` seconds after the evaluation time)
    and holt_winters (double exponential smoothing) over each step's window (>= 2 samples)."""
    ok = (hi - lo) >= 2
    out = np.full(len(lo), np.nan)
    for k in np.flatnonzero(ok):
        ts = s.ts[lo[k] : hi[k]]
        w = s.values[lo[k] : hi[k]].tolist()
        if func == "deriv":
            out[k] = _linear_regression(ts, w, int(ts[0]))[0]
        elif func == "predict_linear":
            slope, intercept = _linear_regression(ts, w, int(ctx.steps[k]))
            out[k] = slope * float(scalars[0][k]) + intercept
        else:
            sf, tf = float(scalars[0][k]), float(scalars[1][k])
            for what, f in (("smoothing", sf), ("trend", tf)):
                if not 0 < f < 1:
                    raise PromQLError(
                        f"invalid {what} factor. Expected: 0 < {what[0]}f < 1, got: {f:f}",
                        expr=ctx.expr,
                        construct=func,
                    )
            s0, s1, b = 0.0, w[0], w[1] - w[0]
            for i in range(1, len(w)):
                if i > 1:
                    b = tf * (s1 - s0) + (1 - tf) * b
                s0, s1 = s1, sf * w[i] + (1 - sf) * (s1 + b)
            out[k] = s1
    return out, ok


def _over_time(
    func: str,
    s: _Series,
    lo: np.ndarray,
    hi: np.ndarray,
    q: np.ndarray | None = None,
    *,
    kahan: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """``*_over_time``, ``changes``, ``resets`` over each step's window, with Prometheus's arithmetic
    (sequential sums, NaN rules of min/max) — one Python loop per step, as windows are short.
    ``kahan``: Prometheus 3's compensated sum_over_time / avg_over_time."""
    ok = hi > lo
    out = np.full(len(lo), np.nan)
    v = s.values
    for k in np.flatnonzero(ok):
        w = v[lo[k] : hi[k]].tolist()
        if func == "count_over_time":
            r = float(len(w))
        elif func in ("present_over_time", "absent_over_time"):
            r = 1.0
        elif func == "quantile_over_time":
            assert q is not None
            r = _quantile_go(float(q[k]), w)
        elif func in ("stddev_over_time", "stdvar_over_time"):
            count = mean = aux = 0.0
            for x in w:
                count += 1
                delta = x - mean
                mean += delta / count
                aux += delta * (x - mean)
            r = aux / count if func == "stdvar_over_time" else math.sqrt(aux / count)
        elif func == "last_over_time":
            r = w[-1]
        elif func == "sum_over_time" and kahan:
            r, c = 0.0, 0.0
            for x in w:
                r, c = _kahan_inc(x, r, c)
            r = r if math.isinf(r) else r + c
        elif func == "sum_over_time":
            r = 0.0
            for x in w:
                r += x
        elif func == "avg_over_time":
            r = _avg_kahan(w) if kahan else _avg_go(w)
        elif func in ("min_over_time", "max_over_time"):
            r = w[0]
            for x in w[1:]:
                if (x < r if func == "min_over_time" else x > r) or math.isnan(r):
                    r = x
        elif func == "changes":
            r = float(
                sum(
                    1
                    for a, b in itertools.pairwise(w)
                    if b != a and not (math.isnan(a) and math.isnan(b))
                )
            )
        else:  # resets
            r = float(sum(1 for a, b in itertools.pairwise(w) if b < a))
        out[k] = r
    return out, ok


def _avg_go(w: list[float]) -> float:
    # Prometheus 2.42 avg_over_time: incremental mean, infinities kept
    mean = 0.0
    count = 0.0
    for x in w:
        count += 1
        if math.isinf(mean):
            if math.isinf(x) and (mean > 0) == (x > 0):
                continue
            if not math.isinf(x) and not math.isnan(x):
                continue
        mean += x / count - mean / count
    return mean


_LABEL_NAME_RE = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")


_TEMPLATE_RE = re.compile(r"\$(?:\$|\{([A-Za-z0-9_]+)\}|([A-Za-z0-9_]+))")


def _expand(template: str, m: re.Match[str]) -> str:
    """Go's ``Regexp.ExpandString``: ``$1``, ``${1}``, ``$name``; unknown or unmatched -> empty."""

    def group(name: str) -> str:
        try:
            got = m.group(int(name)) if name.isdigit() else m.group(name)
        except IndexError:  # no such group
            return ""
        return got or ""

    def sub(mm: re.Match[str]) -> str:
        if mm.group(0) == "$$":
            return "$"
        return group(mm.group(1) or mm.group(2))

    return _TEMPLATE_RE.sub(sub, template)


def _eval_label_function(ctx: _Ctx, call: _Call, vec: _Vec) -> _Vec:
    def fail(message: str) -> PromQLError:
        return PromQLError(message, expr=ctx.expr, position=call.pos, construct=call.func)

    dst = str(call.args[1])
    if not _LABEL_NAME_RE.fullmatch(dst):
        raise fail(f"invalid destination label name in {call.func}(): {dst!r}")
    labels: list[Labels] = []
    if call.func == "label_replace":
        repl, src, regex_text = (str(a) for a in call.args[2:5])
        try:
            regex = re.compile(_re2_to_python(regex_text), re.DOTALL if ctx.sem.v3 else 0)
        except re.error as exc:
            raise fail(
                f"invalid regular expression in label_replace(): {regex_text!r} ({exc})"
            ) from None
        for lab in vec.labels:
            d = dict(lab)
            m = regex.fullmatch(d.get(src, ""))
            if m is not None:
                d.pop(dst, None)
                res = _expand(repl, m)
                if res:
                    d[dst] = res
            labels.append(tuple(sorted(d.items())))
    else:
        sep = str(call.args[2])
        srcs = [str(a) for a in call.args[3:]]
        for lab in vec.labels:
            d = dict(lab)
            joined = sep.join(d.get(src, "") for src in srcs)
            if joined:
                d[dst] = joined
            else:
                d.pop(dst, None)
            labels.append(tuple(sorted(d.items())))
    return _merge(ctx, labels, vec.values.copy(), vec.present.copy(), call.pos, f"{call.func}()")


def _eval_instant_function(ctx: _Ctx, call: _Call) -> _Vec | _Scalar:
    t = len(ctx.steps)
    if call.func == "time":
        return _Scalar(ctx.steps.astype(np.float64) / 1000)
    if call.func == "pi":
        return _Scalar(np.full(t, math.pi))
    if call.func == "timestamp" and isinstance(call.args[0], _Selector):
        # the sample's own time (engine.go special-cases a selector argument); for any other
        # argument the evaluation time
        vec = _eval_instant_selector(ctx, call.args[0], timestamps=True)
        labels = [_without_name(lab) for lab in vec.labels]
        return _merge(ctx, labels, vec.values, vec.present, call.pos, "timestamp()")
    if call.func in _DATE_FUNCTIONS and not call.args:
        seconds = ctx.steps.astype(np.float64)[None, :] / 1000
        return _Vec([()], _date_part(call.func, seconds), np.ones((1, t), dtype=bool))
    args = [
        _eval(ctx, a) if i == 0 or call.func not in ("label_replace", "label_join") else a
        for i, a in enumerate(call.args)
    ]

    def want(i: int, kind: type) -> None:
        if not isinstance(args[i], kind):
            what = "an instant vector" if kind is _Vec else "a scalar"
            raise PromQLError(
                f"{call.func}() expects {what} as argument {i + 1}",
                expr=ctx.expr,
                position=call.pos,
                construct=call.func,
            )

    if call.func == "vector":
        want(0, _Scalar)
        sc = args[0]
        assert isinstance(sc, _Scalar)
        return _Vec([()], sc.values[None, :].copy(), np.ones((1, t), dtype=bool))
    want(0, _Vec)
    vec = cast(_Vec, args[0])
    assert isinstance(vec, _Vec)
    if call.func in ("label_replace", "label_join"):
        return _eval_label_function(ctx, call, vec)
    if call.func == "absent":
        some = np.asarray(vec.present.any(axis=0))
        return _Vec([_absent_labels(call.args[0])], np.ones((1, t)), (~some)[None, :])
    if call.func in ("sort", "sort_desc"):
        return vec  # order is meaningless in a range query's result
    if call.func == "round":
        to_nearest = np.ones(t)
        if len(args) == 2:
            want(1, _Scalar)
            arg1 = args[1]
            assert isinstance(arg1, _Scalar)
            to_nearest = arg1.values
        with np.errstate(all="ignore"):
            inverse = 1.0 / to_nearest
            vals = np.floor(vec.values * inverse[None, :] + 0.5) / inverse[None, :]
        labels = [_without_name(lab) for lab in vec.labels]
        return _merge(ctx, labels, vals, vec.present.copy(), call.pos, "round()")
    if call.func == "timestamp":
        vals = np.broadcast_to(ctx.steps.astype(np.float64) / 1000, vec.values.shape).copy()
        labels = [_without_name(lab) for lab in vec.labels]
        return _merge(ctx, labels, vals, vec.present.copy(), call.pos, "timestamp()")
    if call.func in _DATE_FUNCTIONS:
        labels = [_without_name(lab) for lab in vec.labels]
        vals = _date_part(call.func, vec.values)
        return _merge(ctx, labels, vals, vec.present.copy(), call.pos, f"{call.func}()")
    if call.func == "clamp":
        want(1, _Scalar)
        want(2, _Scalar)
        lo_b, hi_b = args[1], args[2]
        assert isinstance(lo_b, _Scalar) and isinstance(hi_b, _Scalar)
        with np.errstate(all="ignore"):
            vals = np.maximum(lo_b.values[None, :], np.minimum(hi_b.values[None, :], vec.values))
        # max < min: an empty vector at that step (Prometheus: "clamp ... returns an empty vector")
        present = vec.present & ~(hi_b.values < lo_b.values)[None, :]
        labels = [_without_name(lab) for lab in vec.labels]
        return _merge(ctx, labels, vals, present, call.pos, "clamp()")
    if call.func == "scalar":
        n = vec.present.sum(axis=0)
        one = np.where(vec.present, vec.values, 0.0).sum(axis=0)
        return _Scalar(np.where(n == 1, one, np.nan))
    with np.errstate(all="ignore"):
        if call.func in ("clamp_min", "clamp_max"):
            want(1, _Scalar)
            bound = args[1]
            assert isinstance(bound, _Scalar)
            fn = np.maximum if call.func == "clamp_min" else np.minimum
            vals = fn(vec.values, bound.values[None, :])
        else:
            vals = _ELEMENTWISE[call.func](vec.values)
    labels = [_without_name(lab) for lab in vec.labels]
    return _merge(ctx, labels, vals, vec.present.copy(), call.pos, f"{call.func}()")


def _extrapolated_rate(
    s: _Series,
    lo: np.ndarray,
    hi: np.ndarray,
    end_ms: np.ndarray,
    range_ms: int,
    *,
    is_counter: bool,
    is_rate: bool,
    zero_point_first: bool,
) -> tuple[np.ndarray, np.ndarray]:
    """Prometheus ``extrapolatedRate`` for every step at once (float samples)."""
    n = hi - lo
    ok = n >= 2
    out = np.full(len(lo), np.nan)
    if not ok.any():
        return out, ok
    first_i = lo[ok]
    last_i = hi[ok] - 1
    v, t = s.values, s.ts
    first, last = v[first_i], v[last_i]
    result = last - first
    if is_counter:
        # Counter resets inside each window: Prometheus adds the value before each drop, in order.
        drops = np.zeros(len(v), dtype=np.int64)
        if len(v) > 1:
            drops[1:] = np.cumsum(v[1:] < v[:-1])
        n_resets = drops[last_i] - drops[first_i]
        for k in np.flatnonzero(n_resets):
            acc = result[k]
            for j in range(first_i[k] + 1, last_i[k] + 1):
                if v[j] < v[j - 1]:
                    acc += v[j - 1]
            result[k] = acc
    range_start = end_ms[ok] - range_ms
    duration_to_start = (t[first_i] - range_start).astype(np.float64) / 1000
    duration_to_end = (end_ms[ok] - t[last_i]).astype(np.float64) / 1000
    sampled = (t[last_i] - t[first_i]).astype(np.float64) / 1000
    avg = sampled / (n[ok] - 1).astype(np.float64)
    threshold = avg * 1.1
    with np.errstate(divide="ignore", invalid="ignore"):
        zero_ok = (result > 0) & (first >= 0) if is_counter else np.zeros(len(result), dtype=bool)
        duration_to_zero = sampled * (first / result)
        if zero_point_first:
            # Prometheus <= 2.50: zero-point limit first, then the 110 % threshold test.
            duration_to_start = np.where(
                zero_ok & (duration_to_zero < duration_to_start),
                duration_to_zero,
                duration_to_start,
            )
            interval = (
                sampled
                + np.where(duration_to_start < threshold, duration_to_start, avg / 2)
                + np.where(duration_to_end < threshold, duration_to_end, avg / 2)
            )
        else:
            # Prometheus >= 2.51 (prometheus#13725) and 3.x: threshold first, then the zero point.
            duration_to_start = np.where(duration_to_start >= threshold, avg / 2, duration_to_start)
            duration_to_end = np.where(duration_to_end >= threshold, avg / 2, duration_to_end)
            duration_to_start = np.where(
                zero_ok & (duration_to_zero < duration_to_start),
                duration_to_zero,
                duration_to_start,
            )
            interval = sampled + duration_to_start + duration_to_end
        factor = interval / sampled
        if is_rate:
            factor = factor / (range_ms / 1000)
        out[ok] = result * factor
    return out, ok


def _irate(
    s: _Series, lo: np.ndarray, hi: np.ndarray, *, is_rate: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    ok = (hi - lo) >= 2
    out = np.full(len(lo), np.nan)
    last_i = hi[ok] - 1
    prev_i = last_i - 1
    last, prev = s.values[last_i], s.values[prev_i]
    if not is_rate:  # idelta: the plain difference, resets included
        out[ok] = last - prev
        return out, ok
    value = np.where(last < prev, last, last - prev)
    interval = (s.ts[last_i] - s.ts[prev_i]).astype(np.float64) / 1000
    out[ok] = value / interval
    return out, ok


def _group_key(labels: Labels, grouping: tuple[str, ...], without: bool) -> Labels:
    if without:
        drop = {*grouping, _NAME}
        return tuple(kv for kv in labels if kv[0] not in drop)
    keep = set(grouping)
    return tuple(kv for kv in labels if kv[0] in keep)


def _eval_aggregation(ctx: _Ctx, agg: _Agg) -> _Vec:
    inner = _eval(ctx, agg.expr)
    if isinstance(inner, _Scalar):
        raise PromQLError(
            f"{agg.op}() expects an instant vector, got a scalar",
            expr=ctx.expr,
            position=agg.pos,
            construct=agg.op,
        )
    if agg.op == "count_values":
        return _count_values(ctx, agg, inner)
    q_values = None
    if agg.param is not None:
        param = _eval(ctx, agg.param)
        if not isinstance(param, _Scalar):
            raise PromQLError(
                f"{agg.op}() expects a scalar parameter",
                expr=ctx.expr,
                position=agg.pos,
                construct=agg.op,
            )
        q_values = param.values
    groups: dict[Labels, list[int]] = {}
    for i, lab in enumerate(inner.labels):
        groups.setdefault(_group_key(lab, agg.grouping, agg.without), []).append(i)
    if agg.op in ("topk", "bottomk"):
        assert q_values is not None
        return _topk(ctx, agg, inner, groups, q_values)
    t = len(ctx.steps)
    labels = list(groups)
    values = np.full((len(labels), t), np.nan)
    present = np.zeros((len(labels), t), dtype=bool)
    for g, lab in enumerate(labels):
        rows = groups[lab]
        v = inner.values[rows]
        p = inner.present[rows]
        cnt = p.sum(axis=0)
        present[g] = cnt > 0
        if agg.op == "count":
            values[g] = cnt.astype(np.float64)
        elif agg.op == "sum":
            values[g] = _kahan_sum(v, p) if ctx.sem.kahan_sum else _ordered_sum(v, p)
        elif agg.op == "avg":
            values[g] = _running_mean(v, p)
        elif agg.op == "group":
            values[g] = 1.0
        elif agg.op in ("stddev", "stdvar"):
            values[g] = _std(v, p, agg.op == "stddev")
            if ctx.sem.v3:
                # Prometheus 3 (#14941): any NaN or infinity makes the group NaN, also alone
                values[g] = np.where((p & ~np.isfinite(v)).any(axis=0), np.nan, values[g])
        elif agg.op == "quantile":
            assert q_values is not None
            for k in np.flatnonzero(cnt > 0):
                values[g, k] = _quantile_go(float(q_values[k]), v[p[:, k], k].tolist())
        else:
            values[g] = _min_max(v, p, agg.op == "max")
    return _Vec(labels, values, present)


def _topk(
    ctx: _Ctx, agg: _Agg, inner: _Vec, groups: dict[Labels, list[int]], k_values: np.ndarray
) -> _Vec:
    """topk/bottomk per step and group: the input series (labels kept) with the k largest
    (smallest) values; NaN sorts last either way. Among equal values the earlier series (label
    order) wins, where Prometheus's heap may keep another one."""
    present = np.zeros_like(inner.present)
    for k_step in range(len(ctx.steps)):
        kf = float(k_values[k_step])
        if not math.isfinite(kf) or abs(kf) >= 2**63:
            raise PromQLError(
                f"Scalar value {kf} overflows int64",
                expr=ctx.expr,
                position=agg.pos,
                construct=agg.op,
            )
        k = int(kf)
        if k < 1:
            continue
        col = inner.values[:, k_step]
        for rows in groups.values():
            live = [r for r in rows if inner.present[r, k_step]]
            sign = -1.0 if agg.op == "topk" else 1.0
            live.sort(
                key=lambda r: (math.isnan(col[r]), sign * col[r] if not math.isnan(col[r]) else 0)
            )
            present[live[:k], k_step] = True
    return _Vec(list(inner.labels), inner.values.copy(), present)


def _go_format_float(v: float) -> str:
    """Go's strconv.FormatFloat(v, 'f', -1, 64): shortest round-trip digits, no exponent."""
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    text = format(decimal.Decimal(repr(v)), "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


def _count_values(ctx: _Ctx, agg: _Agg, inner: _Vec) -> _Vec:
    """count_values("label", v): per step, how many series have each value, grouped as by/without
    say, the value (Go's shortest decimal form) in the new label (which may overwrite one)."""
    assert isinstance(agg.param, _String)
    name = agg.param.value
    if not _LABEL_NAME_RE.fullmatch(name):
        raise PromQLError(
            f"invalid label name {name!r}", expr=ctx.expr, position=agg.pos, construct=agg.op
        )
    t = len(ctx.steps)
    index: dict[Labels, int] = {}
    counts: list[np.ndarray] = []
    keys = [_group_key(lab, agg.grouping, agg.without) for lab in inner.labels]
    for i, key in enumerate(keys):
        for k_step in np.flatnonzero(inner.present[i]):
            d = dict(key)
            d[name] = _go_format_float(float(inner.values[i, k_step]))
            out_key = tuple(sorted(d.items()))
            j = index.setdefault(out_key, len(counts))
            if j == len(counts):
                counts.append(np.zeros(t))
            counts[j][k_step] += 1
    if not counts:
        return _Vec([], np.zeros((0, t)), np.zeros((0, t), dtype=bool))
    values = np.vstack(counts)
    return _Vec(list(index), values, values > 0)


def _kahan_sum(v: np.ndarray, p: np.ndarray) -> np.ndarray:
    # Prometheus >= 2.54 sum(): Kahan-Neumaier compensated, in input order (1, 1e100, 1, -1e100 -> 2).
    # Prometheus resets the compensation when the sum becomes infinite; a sum that was infinite
    # stays infinite or NaN, so applying that rule once at the end gives the same result.
    x_all = np.where(p, v, 0.0)
    total = np.zeros(v.shape[1])
    c = np.zeros(v.shape[1])
    with np.errstate(invalid="ignore", over="ignore"):
        for x in x_all:
            t = total + x
            c += np.where(np.abs(total) >= np.abs(x), (total - t) + x, (x - t) + total)
            total = t
        return np.where(np.isinf(total), total, total + c)


def _std(v: np.ndarray, p: np.ndarray, root: bool) -> np.ndarray:
    # Prometheus 2.42 (Welford): n += 1; delta = x - mean; mean += delta/n; acc += delta*(x - mean)
    n = np.zeros(v.shape[1])
    mean = np.zeros(v.shape[1])
    acc = np.zeros(v.shape[1])
    with np.errstate(invalid="ignore"):
        for r in range(v.shape[0]):
            take = p[r]
            x = v[r]
            first = take & (n == 0)
            n1 = np.where(take, n + 1, n)
            delta = x - mean
            new_mean = mean + delta / np.where(n1 == 0, 1, n1)
            new_acc = acc + delta * (x - new_mean)
            mean = np.where(first, x, np.where(take, new_mean, mean))
            acc = np.where(first, 0.0, np.where(take, new_acc, acc))
            n = n1
        var = acc / np.where(n == 0, 1, n)
    return np.sqrt(var) if root else var


def _quantile_go(q: float, values: list[float]) -> float:
    """Prometheus's ``quantile`` aggregation: linear interpolation between closest ranks, NaN first."""
    if not values:
        return math.nan
    if math.isnan(q):
        return math.nan
    if q < 0:
        return -math.inf
    if q > 1:
        return math.inf
    vals = sorted(values, key=lambda x: (not math.isnan(x), x))
    n = float(len(vals))
    rank = q * (n - 1)
    lower = max(0.0, math.floor(rank))
    upper = min(n - 1, lower + 1)
    weight = rank - math.floor(rank)
    return vals[int(lower)] * (1 - weight) + vals[int(upper)] * weight


def _ordered_sum(v: np.ndarray, p: np.ndarray) -> np.ndarray:
    # Sequential (like the engine) rather than pairwise summation: same rounding as Prometheus.
    # np.cumsum adds strictly in order (np.sum would sum pairwise); absent samples add an exact 0.
    if not v.shape[0]:
        return np.zeros(v.shape[1])
    return np.cumsum(np.where(p, v, 0.0), axis=0)[-1]


def _running_mean(v: np.ndarray, p: np.ndarray) -> np.ndarray:
    # Prometheus 2.42: incremental mean ``mean += x/n - mean/n`` (no overflow of a plain sum); an
    # infinite mean stays when the new value is a finite number or the same infinity.
    mean = np.zeros(v.shape[1])
    n = np.zeros(v.shape[1])
    first = np.ones(v.shape[1], dtype=bool)
    with np.errstate(invalid="ignore", divide="ignore"):
        for r in range(v.shape[0]):
            x = v[r]
            take = p[r]
            n = np.where(take, n + 1, n)
            safe_n = np.where(n == 0, 1, n)
            upd = mean + (x / safe_n - mean / safe_n)
            same_inf = np.isinf(x) & (np.sign(x) == np.sign(mean))
            finite = ~np.isinf(x) & ~np.isnan(x)
            keep = np.isinf(mean) & (same_inf | finite)
            upd = np.where(first, x, np.where(keep, mean, upd))
            mean = np.where(take, upd, mean)
            first = first & ~take
    return mean


def _min_max(v: np.ndarray, p: np.ndarray, is_max: bool) -> np.ndarray:
    # Prometheus: the first sample seeds the group; a later one replaces it if it is larger
    # (smaller) or if the current value is NaN, so NaN only wins when every input is NaN.
    cur = np.full(v.shape[1], np.nan)
    seen = np.zeros(v.shape[1], dtype=bool)
    for r in range(v.shape[0]):
        x = v[r]
        better = (x > cur) if is_max else (x < cur)
        take = p[r] & (~seen | better | np.isnan(cur))
        cur = np.where(take, x, cur)
        seen |= p[r]
    return cur


def _apply_op(op: str, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    with np.errstate(all="ignore"):
        if op == "+":
            return a + b
        if op == "-":
            return a - b
        if op == "*":
            return a * b
        if op == "/":
            return a / b
        if op == "%":
            return np.fmod(a, b)  # Go math.Mod: sign of the dividend
        if op == "^":
            return np.power(a, b)
        if op == "atan2":
            return np.arctan2(a, b)
        if op == "==":
            return a == b
        if op == "!=":
            return a != b
        if op == "<":
            return a < b
        if op == ">":
            return a > b
        if op == "<=":
            return a <= b
        if op == ">=":
            return a >= b
    raise AssertionError(op)  # pragma: no cover


# Prometheus drops the metric name for these operators only (engine.go shouldDropMetricName):
# comparisons without bool, set operators and atan2 keep it.
_DROPS_NAME = {"+", "-", "*", "/", "%", "^"}


def _eval_binary(ctx: _Ctx, node: _Binary) -> _Vec | _Scalar:
    lhs = _eval(ctx, node.lhs)
    rhs = _eval(ctx, node.rhs)
    op = node.op
    cmp = op in _COMPARISONS
    # Prometheus 3 drops the metric name for atan2 too (2.x kept it)
    drops_name = op in _DROPS_NAME or (op == "atan2" and ctx.sem.v3)

    def fail(message: str) -> PromQLError:
        return PromQLError(message, expr=ctx.expr, position=node.pos, construct=op)

    if isinstance(lhs, _Scalar) or isinstance(rhs, _Scalar):
        if op in _SET_OPS:
            raise fail(f"set operator {op!r} not allowed in binary scalar expression")
        if node.on is not None or node.ignoring:
            raise fail("vector matching (on/ignoring) needs vectors on both sides")
    if isinstance(lhs, _Scalar) and isinstance(rhs, _Scalar):
        if cmp and not node.return_bool:
            raise fail("comparisons between scalars must use the bool modifier")
        return _Scalar(_apply_op(op, lhs.values, rhs.values).astype(np.float64))
    if isinstance(lhs, _Scalar) or isinstance(rhs, _Scalar):
        vec = rhs if isinstance(lhs, _Scalar) else lhs
        assert isinstance(vec, _Vec)
        if isinstance(lhs, _Scalar):
            res = _apply_op(op, lhs.values[None, :], vec.values)
        else:
            assert isinstance(rhs, _Scalar)
            res = _apply_op(op, vec.values, rhs.values[None, :])
        present = vec.present.copy()
        if cmp:
            # a comparison filters (or gives 0/1 with bool); the value is always the vector's
            vals = np.where(res, 1.0, 0.0) if node.return_bool else vec.values.copy()
            if not node.return_bool:
                present &= res
            labels = (
                [_without_name(lab) for lab in vec.labels] if node.return_bool else list(vec.labels)
            )
        else:
            vals = res
            labels = [_without_name(lab) if drops_name else lab for lab in vec.labels]
        return _merge(ctx, labels, vals, present, node.pos, f"operator {op!r}")
    assert isinstance(lhs, _Vec) and isinstance(rhs, _Vec)

    def signature(lab: Labels) -> Labels:
        if node.on is not None:
            keep = set(node.on)
            return tuple(kv for kv in lab if kv[0] in keep)
        drop = {*node.ignoring, _NAME}
        return tuple(kv for kv in lab if kv[0] not in drop)

    right: dict[Labels, list[int]] = {}
    for j, lab in enumerate(rhs.labels):
        right.setdefault(signature(lab), []).append(j)
    left: dict[Labels, list[int]] = {}
    for i, lab in enumerate(lhs.labels):
        left.setdefault(signature(lab), []).append(i)
    if op in _SET_OPS:
        return _eval_set_op(ctx, node, lhs, rhs, left, right)
    # group_right: the right side is the "many" side; values keep their left/right places
    swapped = node.card == "one-to-many"
    many, one = (rhs, lhs) if swapped else (lhs, rhs)
    many_sigs, one_sigs = (right, left) if swapped else (left, right)
    one_side = "left" if swapped else "right"
    # Prometheus short-circuits a step where either side is empty, before looking for duplicates
    many_any = many.present.any(axis=0)
    for sig, rows in one_sigs.items():
        if ((one.present[rows].sum(axis=0) > 1) & many_any).any():
            raise fail(
                f"found duplicate series for the match group {_fmt_labels(sig)} on the {one_side} "
                "hand-side of the operation; many-to-many matching not allowed: matching labels must "
                "be unique on one side"
            )
    on_set = set(node.on or ())
    ign_set = set(node.ignoring)

    def result_labels(m_lab: Labels, o_lab: Labels) -> Labels:
        d = dict(m_lab)
        if drops_name or node.return_bool:
            d.pop(_NAME, None)
        if node.card == "one-to-one":
            if node.on is not None:
                d = {k: v for k, v in d.items() if k in on_set}
            else:
                d = {k: v for k, v in d.items() if k not in ign_set}
        o = dict(o_lab)
        for name in node.include:
            if o.get(name):
                d[name] = o[name]
            else:
                d.pop(name, None)
        return tuple(sorted(d.items()))

    out_labels: list[Labels] = []
    rows_v: list[np.ndarray] = []
    rows_p: list[np.ndarray] = []
    rows_m: list[np.ndarray] = []  # matched, before a comparison filters
    for sig, mi in many_sigs.items():
        oj = one_sigs.get(sig)
        if oj is None:
            continue
        first = len(out_labels)
        for i in mi:
            for j in oj:
                both = many.present[i] & one.present[j]
                if not both.any():
                    continue
                vl, vr = (
                    (one.values[j], many.values[i]) if swapped else (many.values[i], one.values[j])
                )
                res = _apply_op(op, vl, vr)
                rows_m.append(both)
                if cmp:
                    val = np.where(res, 1.0, 0.0) if node.return_bool else vl
                    if not node.return_bool:
                        both = both & res
                else:
                    val = res
                out_labels.append(result_labels(many.labels[i], one.labels[j]))
                rows_v.append(val)
                rows_p.append(both)
        if len(out_labels) - first > 1:
            # Prometheus 3 (#17668) checks the matching before a comparison filters; 2.x after
            p = np.vstack((rows_m if ctx.sem.v3 else rows_p)[first:])
            if node.card == "one-to-one":
                if int(p.sum(axis=0).max(initial=0)) > 1:
                    raise fail(
                        f"multiple matches for labels {_fmt_labels(sig)}: many-to-one matching must be "
                        "explicit (group_left/group_right)"
                    )
            else:
                seen: dict[Labels, np.ndarray] = {}
                for lab, pr in zip(out_labels[first:], p, strict=True):
                    if lab in seen and (seen[lab] & pr).any():
                        raise fail(
                            f"multiple matches for labels {_fmt_labels(sig)}: grouping labels must "
                            "ensure unique matches"
                        )
                    seen[lab] = seen.get(lab, np.zeros_like(pr)) | pr
    stacked = _stack(ctx, out_labels, rows_v, rows_p)
    return _merge(
        ctx, stacked.labels, stacked.values, stacked.present, node.pos, f"operator {op!r}"
    )


def _eval_set_op(
    ctx: _Ctx,
    node: _Binary,
    lhs: _Vec,
    rhs: _Vec,
    left: dict[Labels, list[int]],
    right: dict[Labels, list[int]],
) -> _Vec:
    """``and``/``or``/``unless``: many-to-many, per step, labels (and names) of the kept samples."""
    t = len(ctx.steps)

    def any_present(vec: _Vec, rows: list[int] | None) -> np.ndarray:
        if not rows:
            return np.zeros(t, dtype=bool)
        return np.asarray(vec.present[rows].any(axis=0))

    labels: list[Labels] = []
    rows_v: list[np.ndarray] = []
    rows_p: list[np.ndarray] = []
    for sig, li in left.items():
        other = any_present(rhs, right.get(sig))
        for i in li:
            p = lhs.present[i]
            if node.op == "and":
                p = p & other
            elif node.op == "unless":
                p = p & ~other
            labels.append(lhs.labels[i])
            rows_v.append(lhs.values[i])
            rows_p.append(p)
    if node.op == "or":
        for sig, rj in right.items():
            mine = any_present(lhs, left.get(sig))
            for j in rj:
                labels.append(rhs.labels[j])
                rows_v.append(rhs.values[j])
                rows_p.append(rhs.present[j] & ~mine)
    stacked = _stack(ctx, labels, rows_v, rows_p)
    return _merge(
        ctx,
        stacked.labels,
        stacked.values.copy(),
        stacked.present,
        node.pos,
        f"operator {node.op!r}",
    )


def _eval_histogram_quantile(ctx: _Ctx, call: _Call) -> _Vec:
    phi = _eval(ctx, call.args[0])
    if not isinstance(phi, _Scalar):
        raise PromQLError(
            "histogram_quantile() expects a scalar quantile as first argument",
            expr=ctx.expr,
            position=call.pos,
            construct="histogram_quantile",
        )
    vec = _eval(ctx, call.args[1])
    if isinstance(vec, _Scalar):
        raise PromQLError(
            "histogram_quantile() expects an instant vector of buckets as second argument",
            expr=ctx.expr,
            position=call.pos,
            construct="histogram_quantile",
        )
    groups: dict[Labels, list[tuple[int, float]]] = {}
    bad = 0
    for i, lab in enumerate(vec.labels):
        le = dict(lab).get("le")
        ub = _parse_le(le) if le is not None else None
        if ub is None:
            bad += 1
            continue
        groups.setdefault(tuple(kv for kv in lab if kv[0] != "le"), []).append((i, ub))
    if bad:
        ctx.notes.append(f"histogram_quantile: {bad} series without a valid 'le' label skipped")
    t = len(ctx.steps)
    labels: list[Labels] = []
    values = np.full((len(groups), t), np.nan)
    present = np.zeros((len(groups), t), dtype=bool)
    extra = {
        k: np.full((len(groups), t), np.nan) for k in ("bucket_lower", "bucket_upper", "at_ceiling")
    }
    for g, (lab, members) in enumerate(groups.items()):
        labels.append(_without_name(lab))
        rows = [i for i, _ in members]
        ubs = np.array([ub for _, ub in members])
        q = _quantile_matrix(
            phi.values, ubs, vec.values[rows], vec.present[rows], ctx.sem.small_deltas
        )
        values[g] = q[0]
        present[g] = q[4]
        extra["bucket_lower"][g], extra["bucket_upper"][g], extra["at_ceiling"][g] = (
            q[1],
            q[2],
            q[3],
        )
    out = _merge(ctx, list(labels), values, present.copy(), call.pos, "histogram_quantile()")
    if call is ctx.bounds_for:
        # the same merge on the bounds keeps their rows aligned with the values
        ctx.bounds = {
            k: _merge(ctx, list(labels), m, present.copy(), call.pos, "histogram_quantile()").values
            for k, m in extra.items()
        }
        ctx.bounds["quantile"] = np.broadcast_to(phi.values, out.values.shape)
    return out


def _label_columns(frame: pl.DataFrame) -> list[str]:
    missing = [c for c in ("ts", "value") if c not in frame.columns]
    if missing:
        raise KitError(
            f"metrics frame lacks column(s) {missing}; expected the kit.read_metrics layout "
            "(ts, metric, value, source, one String column per label)"
        )
    labels = [c for c in frame.columns if c not in _BASE_COLUMNS]
    wrong = [c for c in labels if frame.schema[c] != pl.String]
    if wrong:
        raise KitError(
            f"label columns must be String, got {[(c, str(frame.schema[c])) for c in wrong]}"
        )
    return labels


def _series_from_frame(frame: pl.DataFrame) -> list[_Series]:
    labels = _label_columns(frame)
    has_metric = "metric" in frame.columns
    keys = (["metric"] if has_metric else []) + labels
    df = frame.select(
        # an empty label value is the same as no label (Prometheus): one series, not two
        *[pl.when(pl.col(k) != "").then(pl.col(k)).alias(k) for k in keys],
        pl.col("ts").dt.epoch("ms").alias("_ms"),
        pl.col("value").cast(pl.Float64),
    )
    n_null = df.select(pl.col("_ms").is_null() | pl.col("value").is_null()).to_series().sum()
    if n_null:
        warnings.warn(
            f"{n_null} metric rows with a null ts or value were ignored by PromQL evaluation",
            KitWarning,
            stacklevel=3,
        )
        df = df.filter(pl.col("_ms").is_not_null() & pl.col("value").is_not_null())
    if df.is_empty():
        return []
    # in-group order is the frame's row order (so "first" below is the frame's first duplicate)
    grouped = df.group_by(keys).agg(pl.col("_ms"), pl.col("value")).sort(keys, nulls_last=True)
    out: list[_Series] = []
    dups = 0
    for row in grouped.iter_rows(named=True):
        lab = {k: row[k] for k in labels if row[k] not in (None, "")}
        if has_metric and row["metric"] not in (None, ""):
            lab[_NAME] = row["metric"]
        ts = np.asarray(row["_ms"], dtype=np.int64)
        vals = np.asarray(row["value"], dtype=np.float64)
        if len(ts) > 1 and (ts[1:] < ts[:-1]).any():
            order = np.argsort(ts, kind="stable")
            ts, vals = ts[order], vals[order]
        if len(ts) > 1:
            # the same series twice at one timestamp (overlapping exports): keep the first, as
            # Prometheus's TSDB (and kit.read_metrics) do
            first = np.concatenate(([True], ts[1:] != ts[:-1]))
            if not first.all():
                dups += int((~first).sum())
                ts, vals = ts[first], vals[first]
        out.append(_Series(lab, ts, vals))
    if dups:
        warnings.warn(
            f"{dups} duplicate samples (same series, same timestamp) ignored; the first one was kept",
            KitWarning,
            stacklevel=3,
        )
    return out


def _selector_names(node: object) -> set[str] | None:
    """Metric names of every selector in ``node``, or None if some selector has no fixed name."""
    names: set[str] = set()
    stack = [node]
    while stack:
        n = stack.pop()
        if isinstance(n, _Selector):
            fixed = [m.value for m in n.matchers if m.name == _NAME and m.op == "="]
            if not fixed:
                return None
            names.add(fixed[0])
        elif isinstance(n, _Call):
            stack.extend(n.args)
        elif isinstance(n, _Agg):
            stack += [n.expr, n.param]
        elif isinstance(n, _Unary | _Subquery):
            stack.append(n.expr)
        elif isinstance(n, _Binary):
            stack += [n.lhs, n.rhs]
    return names


def _result_frame(ctx: _Ctx, result: _Vec | _Scalar, order: str | None = None) -> pl.DataFrame:
    ts_dtype = pl.Datetime("us", "UTC")
    if isinstance(result, _Scalar):
        return pl.DataFrame(
            {"ts": ctx.steps * 1000, "value": result.values},
            schema={"ts": pl.Int64, "value": pl.Float64},
        ).with_columns(pl.col("ts").cast(ts_dtype))
    names = sorted({k for lab in result.labels for k, _ in lab})
    with_metric = _NAME in names
    label_names = [n for n in names if n != _NAME]
    ts_parts, val_parts = [], []
    lab_parts: dict[str, list[str | None]] = {n: [] for n in names}
    for i, lab in enumerate(result.labels):
        p = result.present[i]
        k = int(p.sum())
        if not k:
            continue
        ts_parts.append(ctx.steps[p])
        val_parts.append(result.values[i][p])
        d = dict(lab)
        for n in names:
            lab_parts[n].extend([d.get(n)] * k)
    ts = np.concatenate(ts_parts) if ts_parts else np.zeros(0, dtype=np.int64)
    vals = np.concatenate(val_parts) if val_parts else np.zeros(0)
    data: dict[str, object] = {"ts": ts * 1000, "value": vals}
    schema: dict[str, pl.DataType] = {"ts": pl.Int64(), "value": pl.Float64()}
    if with_metric:
        data["metric"] = lab_parts[_NAME]
        schema["metric"] = pl.String()
    for n in label_names:
        data[n] = lab_parts[n]
        schema[n] = pl.String()
    if ctx.bounds is not None:
        for col in ("quantile", "bucket_lower", "bucket_upper", "at_ceiling"):
            m = ctx.bounds[col]
            parts = [m[i][result.present[i]] for i in range(len(result.labels))]
            flat = np.concatenate(parts) if parts else np.zeros(0)
            data[col] = flat.astype(bool) if col == "at_ceiling" else flat
            schema[col] = pl.Boolean() if col == "at_ceiling" else pl.Float64()
    df = pl.DataFrame(data, schema=schema).with_columns(pl.col("ts").cast(ts_dtype))
    df = df.sort(["ts", *(["metric"] if with_metric else []), *label_names], nulls_last=True)
    if order is not None and len(ctx.steps) == 1:
        # an instant query of sort()/sort_desc()/topk()/bottomk(): by value, NaN last (as Prometheus)
        nan_last = pl.col("value").is_nan()
        value = pl.col("value") if order == "asc" else -pl.col("value")
        df = df.sort([nan_last, value], maintain_order=True)
    return df
