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

import dataclasses
import datetime as dt
import decimal
import itertools
import logging
import math
import re
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, TypeAlias, cast

import numpy as np
import polars as pl

from kit.errors import KitError, KitWarning

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

#: ``"2"`` (= 2.42), ``"2.42"`` ... ``"2.55"`` (patch releases allowed: ``"2.53.1"``) or ``"3"``.
Compat: TypeAlias = str
TimeLike: TypeAlias = dt.datetime | str | float | int
StepLike: TypeAlias = dt.timedelta | str | float | int

#: Columns of the metrics frame that are not labels (see ``kit.sources.metrics.prometheus.METRICS_BASE_SCHEMA``).
_BASE_COLUMNS = ("ts", "metric", "value", "source")
_NAME = "__name__"

#: Schema of :func:`histogram_quantile` / :func:`quantile_series` results, after the label columns.
QUANTILE_SCHEMA = pl.Schema(
    {
        "quantile": pl.Float64,
        "value": pl.Float64,
        "bucket_lower": pl.Float64,
        "bucket_upper": pl.Float64,
        "at_ceiling": pl.Boolean,
    }
)


@dataclass(frozen=True)
class _Semantics:
    """What differs between the Prometheus versions the kit models (see the module docstring)."""

    version: tuple[int, int]

    @property
    def left_closed(self) -> bool:  # [t-range, t] windows and lookback (2.x); 3.x: (t-range, t]
        return self.version < (3, 0)

    @property
    def zero_point_first(self) -> bool:  # extrapolatedRate before prometheus#13725 (2.51)
        return self.version < (2, 51)

    @property
    def small_deltas(self) -> bool:  # histogram_quantile ignores deltas <= 1e-12 (#13153, 2.49)
        return self.version >= (2, 49)

    @property
    def kahan_sum(self) -> bool:  # sum() with Kahan summation (#14074, #14362, 2.54)
        return self.version >= (2, 54)

    @property
    def numbers_as_durations(self) -> bool:  # x[600], offset 50, time() - t > 10m (#9138, 2.54)
        return self.version >= (2, 54)

    @property
    def v3(self) -> bool:  # Prometheus 3.x: see the module docstring
        return self.version >= (3, 0)


_LATEST = _Semantics((3, 0))
_COMPAT_RE = re.compile(r"(2|3)(?:\.(\d+)(?:\.\d+)?)?")


def _semantics(compat: Compat) -> _Semantics:
    """``compat`` ("2", "2.53", "2.53.1", "3") -> the semantics; ValueError for anything else."""
    m = _COMPAT_RE.fullmatch(str(compat).strip()) if isinstance(compat, str) else None
    if m is None:
        raise ValueError(
            f"compat must be '2' (Prometheus 2.42), a 2.x version from '2.42' to '2.55' (e.g. "
            f"'2.53'), or '3', got {compat!r}"
        )
    major, minor = int(m.group(1)), m.group(2)
    if major == 3:
        if minor is not None:
            raise ValueError(
                f"compat {compat!r}: use '3' (the kit models current Prometheus 3.x, not a 3.x minor)"
            )
        return _LATEST
    version = 42 if minor is None else int(minor)
    if not 42 <= version <= 55:
        raise ValueError(
            f"compat {compat!r}: the kit models Prometheus 2.42 to 2.55 (and 3); older 2.x differ "
            "in ways it does not reproduce"
        )
    return _Semantics((2, version))


class PromQLError(KitError, ValueError):
    """A PromQL expression that does not parse, is not supported by the kit, or cannot be evaluated.

    Attributes
    ----------
    expr : str
        The expression as given.
    position : int | None
        0-based character offset of the offending construct in ``expr``.
    construct : str | None
        The offending construct (token, function or operator name).
    """

    def __init__(
        self,
        message: str,
        *,
        expr: str = "",
        position: int | None = None,
        construct: str | None = None,
    ) -> None:
        self.expr = expr
        self.position = position
        self.construct = construct
        self.reason = message
        text = message
        if position is not None:
            text = f"{message} at position {position}"
            if expr:
                text += f": {expr[max(0, position - 30) : position]}\u25b6{expr[position : position + 30]}"
        super().__init__(text)


# --------------------------------------------------------------------------------------------------
# Durations and times


_DURATION_RE = re.compile(r"(\d+)(ms|y|w|d|h|m|s)")
_UNIT_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}
_UNIT_MS["y"] = 365 * _UNIT_MS["d"]
_UNIT_ORDER = ["y", "w", "d", "h", "m", "s", "ms"]


def parse_duration(text: str) -> int:
    """Parse a Prometheus duration (``5m``, ``1h30m``, ``500ms``, ``2d``) into milliseconds.

    Units are ``ms``, ``s``, ``m``, ``h``, ``d`` (24 h), ``w`` (7 d), ``y`` (365 d), each at most once,
    from the largest to the smallest, as in Prometheus's ``model.ParseDuration``.

    Raises
    ------
    PromQLError
        If ``text`` is not such a duration.
    """
    pos = 0
    total = 0
    last_unit = -1
    for m in _DURATION_RE.finditer(text):
        if m.start() != pos:
            break
        unit_index = _UNIT_ORDER.index(m.group(2))
        if unit_index <= last_unit:
            raise PromQLError(f"invalid duration {text!r}: units out of order or repeated")
        last_unit = unit_index
        total += int(m.group(1)) * _UNIT_MS[m.group(2)]
        pos = m.end()
    if pos != len(text) or not text:
        raise PromQLError(f"invalid duration {text!r} (examples: 30s, 5m, 1h30m, 500ms)")
    return total


def _to_ms(value: TimeLike, what: str) -> int:
    """A time as integer Unix milliseconds, as Prometheus's API parses ``start``/``end``."""
    if isinstance(value, bool):
        raise TypeError(f"{what} must be a datetime, an ISO string or Unix seconds, got {value!r}")
    if isinstance(value, int | float):
        return _seconds_to_ms(float(value), what)
    if isinstance(value, str):
        text = value.strip()
        try:
            return _seconds_to_ms(float(text), what)
        except ValueError:
            pass
        try:
            value = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError as exc:
            raise ValueError(
                f"{what}={value!r} is neither Unix seconds nor an ISO-8601 time"
            ) from exc
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        delta = value - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
        return delta // dt.timedelta(milliseconds=1)
    raise TypeError(f"{what} must be a datetime, an ISO string or Unix seconds, got {value!r}")


def _seconds_to_ms(t: float, what: str) -> int:
    """Unix seconds -> ms exactly as Prometheus's API ``parseTime``: whole seconds, plus the fraction
    rounded (half away from zero) to ms, converted to ns with truncation, then truncated to ms."""
    if not math.isfinite(t):
        raise ValueError(f"{what} must be finite, got {t!r}")
    whole = math.trunc(t)
    frac = t - whole
    ms_frac = math.copysign(math.floor(abs(frac) * 1000 + 0.5), frac) / 1000
    ns = int(ms_frac * 1e9)
    return whole * 1000 + int(ns / 1_000_000)


def _float_step_ms(seconds: float) -> int:
    # API parseDuration: time.Duration(seconds * 1e9) truncates to ns; the engine truncates to ms
    return int(seconds * 1e9) // 1_000_000


def _step_ms(value: StepLike) -> int:
    if isinstance(value, dt.timedelta):
        ms = value // dt.timedelta(milliseconds=1)
    elif isinstance(value, str):
        try:
            ms = _float_step_ms(float(value))
        except ValueError:
            ms = parse_duration(value)
    elif isinstance(value, int | float) and not isinstance(value, bool):
        ms = _float_step_ms(float(value))
    else:
        raise TypeError(f"step must be a timedelta, a duration string or seconds, got {value!r}")
    if ms <= 0:
        raise ValueError(f"step must be positive, got {value!r}")
    return ms


# --------------------------------------------------------------------------------------------------
# Lexer


@dataclass(frozen=True)
class _Tok:
    kind: str  # IDENT NUMBER DURATION STRING OP EOF
    text: str
    pos: int
    value: object = None


_OPS = ("=~", "!~", "!=", "==", "<=", ">=", "+", "-", "*", "/", "%", "^", "<", ">", "=", ",", "(", ")", "{", "}", "[", "]", ":", "@")  # fmt: skip
_IDENT_RE = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")
_NUMBER_RE = re.compile(r"0[xX][0-9a-fA-F]+|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_DURATION_TOKEN_RE = re.compile(r"(?:\d+(?:ms|[smhdwy]))+")
_ESCAPES = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v", "\\": "\\"}


def _lex(expr: str) -> list[_Tok]:
    toks: list[_Tok] = []
    i, n = 0, len(expr)
    depth = 0  # inside '[...]' a ':' is the subquery separator, not part of a name
    while i < n:
        c = expr[i]
        if c.isspace():
            i += 1
            continue
        if c == "#":
            while i < n and expr[i] != "\n":
                i += 1
            continue
        if c in "\"'`":
            text, j = _lex_string(expr, i)
            toks.append(_Tok("STRING", expr[i:j], i, text))
            i = j
            continue
        if c.isdigit() or (c == "." and i + 1 < n and expr[i + 1].isdigit()):
            m = _DURATION_TOKEN_RE.match(expr, i)
            if m and not (m.end() < n and (expr[m.end()].isalnum() or expr[m.end()] == "_")):
                toks.append(_Tok("DURATION", m.group(), i, parse_duration(m.group())))
                i = m.end()
                continue
            m = _NUMBER_RE.match(expr, i)
            assert m is not None
            text = m.group()
            value = float(int(text, 16)) if text[:2].lower() == "0x" else float(text)
            toks.append(_Tok("NUMBER", text, i, value))
            i = m.end()
            continue
        if c.isalpha() or c == "_" or (c == ":" and not depth):
            m = _IDENT_RE.match(expr, i)
            assert m is not None
            toks.append(_Tok("IDENT", m.group(), i))
            i = m.end()
            continue
        for op in _OPS:
            if expr.startswith(op, i):
                depth += {"[": 1, "]": -1}.get(op, 0)
                toks.append(_Tok("OP", op, i))
                i += len(op)
                break
        else:
            raise PromQLError(f"unexpected character {c!r}", expr=expr, position=i, construct=c)
    toks.append(_Tok("EOF", "", n))
    return toks


def _lex_string(expr: str, start: int) -> tuple[str, int]:
    quote = expr[start]
    i = start + 1
    out: list[str] = []
    while i < len(expr):
        c = expr[i]
        if c == quote:
            return "".join(out), i + 1
        if quote == "`":
            out.append(c)
            i += 1
            continue
        if c == "\n":
            break
        if c == "\\":
            if i + 1 >= len(expr):
                break
            e = expr[i + 1]
            if e in _ESCAPES:
                out.append(_ESCAPES[e])
                i += 2
            elif e == quote:
                out.append(e)
                i += 2
            elif e in "xuU01234567":
                width = {"x": 2, "u": 4, "U": 8}.get(e, 3)
                digits = expr[i + 2 : i + 2 + width] if e in "xuU" else expr[i + 1 : i + 4]
                try:
                    code = int(digits, 16 if e in "xuU" else 8)
                    if len(digits) != width:
                        raise ValueError
                    out.append(chr(code))
                except ValueError:
                    raise PromQLError(
                        "invalid escape sequence in string",
                        expr=expr,
                        position=i,
                        construct="\\" + e,
                    ) from None
                i += (2 + width) if e in "xuU" else 4
            else:
                raise PromQLError(
                    "unknown escape sequence in string", expr=expr, position=i, construct="\\" + e
                )
            continue
        out.append(c)
        i += 1
    raise PromQLError("unterminated string literal", expr=expr, position=start, construct=quote)


# --------------------------------------------------------------------------------------------------
# AST


@dataclass(frozen=True)
class _Matcher:
    name: str
    op: str  # = != =~ !~
    value: str
    regex: re.Pattern[str] | None = None  # Prometheus 3.x: '.' matches a newline too
    regex_v2: re.Pattern[str] | None = None  # Prometheus 2.x (Go RE2 default): it does not

    def matches(self, labels: Mapping[str, str], dotall: bool = True) -> bool:
        got = labels.get(self.name, "")
        if self.op == "=":
            return got == self.value
        if self.op == "!=":
            return got != self.value
        pattern = self.regex if dotall else self.regex_v2
        assert pattern is not None
        hit = pattern.fullmatch(got) is not None
        return hit if self.op == "=~" else not hit

    def matches_empty(self) -> bool:
        return self.matches({})


# Python-only regex syntax that RE2 (Prometheus) rejects: lookaround and backreferences
_NOT_RE2 = re.compile(r"\\(?:[1-9]|g<)|\(\?(?:[=!]|<[=!]|P=)")


_RE2_FLAGS_RE = re.compile(r"\(\?([imsU]*)(?:-([imsU]*))?\)")


def _re2_to_python(pattern: str) -> str:
    """RE2 syntax -> Python ``re``, where they differ in spelling but not meaning.

    RE2 (Go) lets flags be set anywhere: ``((?i)PRO).*`` makes the rest of the enclosing group
    case-insensitive, across ``|``. Python only accepts such flags at the very start, so each one
    becomes a scoped group ``(?i:...)`` up to the end of the enclosing group, closed and reopened
    around every ``|`` of that group. ``U`` (ungreedy) has no Python equivalent: re.error.
    """
    out: list[str] = []
    # per open group: the scoped-flag groups opened inside it (their flag texts)
    stack: list[list[str]] = [[]]
    i, n = 0, len(pattern)
    in_class = False
    while i < n:
        c = pattern[i]
        if c == "\\":
            out.append(pattern[i : i + 2])
            i += 2
            continue
        if in_class:
            if c == "]":
                in_class = False
            out.append(c)
            i += 1
            continue
        if c == "[":
            in_class = True
            out.append(c)
            i += 1
            if i < n and pattern[i] == "^":
                out.append("^")
                i += 1
            if i < n and pattern[i] == "]":  # a literal ']' first in the class
                out.append("]")
                i += 1
            continue
        if c == "(":
            m = _RE2_FLAGS_RE.match(pattern, i)
            if m and (m.group(1) or m.group(2)):
                on, off = m.group(1) or "", m.group(2) or ""
                if "U" in on + off:
                    raise re.error("the RE2 flag U (ungreedy) has no Python equivalent")
                flags = on + (f"-{off}" if off else "")
                out.append(f"(?{flags}:")
                stack[-1].append(flags)
                i = m.end()
                continue
            stack.append([])
            out.append(c)
            i += 1
            continue
        if c == "|" and stack[-1]:
            out.append(")" * len(stack[-1]) + "|" + "".join(f"(?{f}:" for f in stack[-1]))
            i += 1
            continue
        if c == ")":
            out.append(")" * len(stack[-1]))
            if len(stack) > 1:
                stack.pop()
            else:
                stack[-1] = []
            out.append(c)
            i += 1
            continue
        out.append(c)
        i += 1
    out.append(")" * len(stack[-1]))
    return "".join(out)


@dataclass(frozen=True)
class _Number:
    value: float
    pos: int


@dataclass(frozen=True)
class _String:
    """A string literal: only an argument of label_replace/label_join/count_values."""

    value: str
    pos: int


@dataclass(frozen=True)
class _Selector:
    matchers: tuple[_Matcher, ...]
    pos: int
    range_ms: int | None = None
    offset_ms: int = 0
    text: str = ""
    at: int | str | None = None  # '@': Unix ms, or "start"/"end" (the query's start()/end())


@dataclass(frozen=True)
class _Subquery:
    expr: object
    range_ms: int
    step_ms: int | None  # None: Prometheus's default evaluation interval (1m)
    pos: int
    offset_ms: int = 0
    at: int | str | None = None  # '@': Unix ms, or "start"/"end"


@dataclass(frozen=True)
class _Call:
    func: str
    args: tuple[object, ...]
    pos: int


@dataclass(frozen=True)
class _Agg:
    op: str
    expr: object
    grouping: tuple[str, ...]
    without: bool
    pos: int
    param: object = None  # quantile's q


@dataclass(frozen=True)
class _Binary:
    op: str
    lhs: object
    rhs: object
    pos: int
    on: tuple[str, ...] | None = None  # None: default matching (all labels but the name)
    ignoring: tuple[str, ...] = ()
    return_bool: bool = False
    card: str = "one-to-one"  # or "many-to-one" (group_left), "one-to-many" (group_right)
    include: tuple[str, ...] = ()  # labels copied from the "one" side


@dataclass(frozen=True)
class _Unary:
    op: str
    expr: object
    pos: int


_AGGREGATIONS = {"sum", "avg", "min", "max", "count", "group", "stddev", "stdvar", "quantile", "topk", "bottomk", "count_values"}  # fmt: skip
_PARAM_AGGREGATIONS = {"quantile", "topk", "bottomk", "count_values"}
# limitk/limit_ratio (2.54, experimental): which series they keep is an implementation detail
_UNSUPPORTED_AGGREGATIONS = {"limitk", "limit_ratio"}
_RANGE_FUNCTIONS = {"rate", "irate", "increase", "delta", "idelta", "changes", "resets", "sum_over_time", "avg_over_time", "min_over_time", "max_over_time", "count_over_time", "last_over_time", "quantile_over_time", "stddev_over_time", "stdvar_over_time", "present_over_time", "absent_over_time", "deriv", "predict_linear", "holt_winters"}  # fmt: skip
_ELEMENTWISE = {"abs": np.abs, "ceil": np.ceil, "floor": np.floor, "sqrt": np.sqrt, "exp": np.exp, "ln": np.log, "log2": np.log2, "log10": np.log10, "sgn": np.sign, "acos": np.arccos, "acosh": np.arccosh, "asin": np.arcsin, "asinh": np.arcsinh, "atan": np.arctan, "atanh": np.arctanh, "cos": np.cos, "cosh": np.cosh, "sin": np.sin, "sinh": np.sinh, "tan": np.tan, "tanh": np.tanh, "deg": np.degrees, "rad": np.radians}  # fmt: skip
#: Date functions: one optional argument (default vector(time())), values are Unix seconds (UTC).
_DATE_FUNCTIONS = {"year", "month", "day_of_month", "day_of_week", "day_of_year", "days_in_month", "hour", "minute"}  # fmt: skip
# name -> number of arguments
_ARITY = {**dict.fromkeys(_RANGE_FUNCTIONS, 1), **dict.fromkeys(_ELEMENTWISE, 1), "histogram_quantile": 2, "clamp_min": 2, "clamp_max": 2, "vector": 1, "scalar": 1, "time": 0, "label_replace": 5, "label_join": 3, "quantile_over_time": 2, "absent": 1, "sort": 1, "sort_desc": 1, "round": 1, "predict_linear": 2, "holt_winters": 3, "timestamp": 1, "clamp": 3, "pi": 0, **dict.fromkeys(_DATE_FUNCTIONS, 1)}  # fmt: skip
_FUNCTIONS = set(_ARITY)
_SCALAR_FUNCTIONS = {"time", "scalar", "pi"}
_KNOWN_FUNCTIONS = {"abs", "absent", "absent_over_time", "ceil", "changes", "clamp", "clamp_max", "clamp_min", "day_of_month", "day_of_week", "day_of_year", "days_in_month", "deriv", "exp", "floor", "histogram_count", "histogram_sum", "histogram_fraction", "histogram_stddev", "histogram_stdvar", "holt_winters", "hour", "idelta", "label_join", "label_replace", "ln", "log2", "log10", "minute", "month", "predict_linear", "resets", "round", "scalar", "sgn", "sort", "sort_desc", "sqrt", "time", "timestamp", "vector", "year", "avg_over_time", "min_over_time", "max_over_time", "sum_over_time", "count_over_time", "quantile_over_time", "stddev_over_time", "stdvar_over_time", "last_over_time", "present_over_time", "acos", "acosh", "asin", "asinh", "atan", "atanh", "cos", "cosh", "sin", "sinh", "tan", "tanh", "deg", "rad", "pi", "histogram_avg", "sort_by_label", "sort_by_label_desc", "mad_over_time", "double_exponential_smoothing", "info", "first_over_time", "ts_of_min_over_time", "ts_of_max_over_time", "ts_of_last_over_time", "ts_of_first_over_time"}  # fmt: skip
_ARITH_PREC = {"+": 4, "-": 4, "*": 5, "/": 5, "%": 5, "atan2": 5, "^": 6}
_CMP_SET_PREC = {"==": 3, "!=": 3, "<": 3, ">": 3, "<=": 3, ">=": 3, "and": 2, "unless": 2, "or": 1}  # fmt: skip
_COMPARISONS = {"==", "!=", "<", ">", "<=", ">="}
_SET_OPS = {"and", "or", "unless"}


class _Parser:
    def __init__(self, expr: str, sem: _Semantics = _LATEST) -> None:
        self.expr = expr
        self.sem = sem
        self.toks = _lex(expr)
        self.i = 0

    # helpers
    def peek(self, k: int = 0) -> _Tok:
        return self.toks[min(self.i + k, len(self.toks) - 1)]

    def next(self) -> _Tok:
        tok = self.toks[self.i]
        self.i = min(self.i + 1, len(self.toks) - 1)
        return tok

    def error(self, message: str, tok: _Tok) -> PromQLError:
        return PromQLError(message, expr=self.expr, position=tok.pos, construct=tok.text or None)

    def expect(self, kind: str, text: str | None = None) -> _Tok:
        tok = self.next()
        if tok.kind != kind or (text is not None and tok.text != text):
            want = text or kind.lower()
            got = tok.text or "end of expression"
            raise self.error(f"expected {want!r}, got {got!r}", tok)
        return tok

    def at(self, text: str) -> bool:
        """The next token is ``text``; keywords (by, on, bool, offset...) in any case, as PromQL."""
        tok = self.peek()
        if tok.kind == "IDENT":
            return tok.text.lower() == text
        return tok.kind == "OP" and tok.text == text

    # grammar
    def parse(self) -> object:
        if self.peek().kind == "EOF":
            raise self.error("empty expression", self.peek())
        node = self.parse_expr(0)
        tok = self.peek()
        if tok.kind != "EOF":
            raise self.error(f"unexpected {tok.text!r}", tok)
        return node

    def _binop_at(self) -> tuple[str, int] | None:
        tok = self.peek()
        if tok.kind == "OP" and tok.text in _ARITH_PREC:
            return tok.text, _ARITH_PREC[tok.text]
        if tok.kind == "OP" and tok.text in _CMP_SET_PREC:
            return tok.text, _CMP_SET_PREC[tok.text]
        if tok.kind == "IDENT" and tok.text.lower() in ("and", "or", "unless", "atan2"):
            low = tok.text.lower()
            return low, _ARITH_PREC.get(low) or _CMP_SET_PREC[low]
        return None

    def parse_expr(self, min_prec: int) -> object:
        lhs = self.parse_unary()
        while True:
            found = self._binop_at()
            if found is None or found[1] < min_prec:
                return lhs
            op, prec = found
            tok = self.next()
            on: tuple[str, ...] | None = None
            ignoring: tuple[str, ...] = ()
            return_bool = False
            if self.at("bool"):
                if op not in _COMPARISONS:
                    raise self.error(
                        "the 'bool' modifier is only valid with comparisons", self.peek()
                    )
                self.next()
                return_bool = True
            has_matching = self.at("on") or self.at("ignoring")
            if has_matching:
                kw = self.next().text.lower()
                labels = self.parse_label_list()
                if kw == "on":
                    on = labels
                else:
                    ignoring = labels
            card = "one-to-one"
            include: tuple[str, ...] = ()
            if self.at("group_left") or self.at("group_right"):
                gtok = self.next()
                if not has_matching:
                    raise self.error(f"{gtok.text} needs on(...) or ignoring(...) before it", gtok)
                if op in _SET_OPS:
                    raise self.error(f"no grouping allowed for {op!r} operation", gtok)
                card = "many-to-one" if gtok.text.lower() == "group_left" else "one-to-many"
                if self.at("("):
                    include = self.parse_label_list()
                both = set(include) & set(on or ())
                if both:
                    raise self.error(
                        f"label {sorted(both)[0]!r} must not occur in ON and GROUP clause at once",
                        gtok,
                    )
            # '^' is right-associative, the others left-associative
            rhs = self.parse_expr(prec if op == "^" else prec + 1)
            lhs = _Binary(
                op,
                lhs,
                rhs,
                tok.pos,
                on=on,
                ignoring=ignoring,
                return_bool=return_bool,
                card=card,
                include=include,
            )

    def parse_unary(self) -> object:
        tok = self.peek()
        if tok.kind == "OP" and tok.text in ("-", "+"):
            self.next()
            # unary minus binds like '*' (Prometheus grammar: unary_expr %prec MUL)
            operand = self.parse_expr(_ARITH_PREC["^"])
            if isinstance(operand, _Number):
                return _Number(-operand.value if tok.text == "-" else operand.value, tok.pos)
            return _Unary(tok.text, operand, tok.pos)
        return self.parse_postfix(self.parse_primary())

    def parse_postfix(self, node: object) -> object:
        while True:
            tok = self.peek()
            if tok.kind == "OP" and tok.text == "[":
                if isinstance(node, _Subquery) or (
                    isinstance(node, _Selector) and node.range_ms is not None
                ):
                    raise self.error("a range '[...]' cannot follow a range vector", tok)
                self.next()
                dur = self.expect_duration()
                if dur <= 0:
                    raise self.error("range must be positive", tok)
                if self.at(":"):
                    self.next()
                    step = None if self.at("]") else self.expect_duration()
                    self.expect("OP", "]")
                    if step is not None and step <= 0:
                        raise self.error("subquery step must be positive", tok)
                    node = _Subquery(node, dur, step, tok.pos)
                    continue
                self.expect("OP", "]")
                if not isinstance(node, _Selector):
                    raise self.error(
                        "a range '[5m]' may only follow a selector (for an expression use a subquery '[5m:1m]')",
                        tok,
                    )
                node = dataclasses.replace(node, range_ms=dur)
            elif tok.kind == "IDENT" and tok.text.lower() == "offset":
                if not isinstance(node, _Selector | _Subquery) or node.offset_ms:
                    raise self.error("'offset' may only follow a selector or a subquery, once", tok)
                self.next()
                sign = 1
                if self.at("-"):
                    self.next()
                    sign = -1
                off = sign * self.expect_duration()
                node = dataclasses.replace(node, offset_ms=off)
            elif tok.kind == "OP" and tok.text == "@":
                if not isinstance(node, _Selector | _Subquery):
                    raise self.error("'@' may only follow a selector or a subquery", tok)
                if node.at is not None:
                    raise self.error("'@ <timestamp>' may not be set multiple times", tok)
                self.next()
                node = dataclasses.replace(node, at=self.parse_at())
            else:
                return node

    def parse_at(self) -> int | str:
        """After '@': Unix seconds (to ms, rounded like Prometheus), or start() / end()."""
        tok = self.next()
        if tok.kind == "IDENT" and tok.text.lower() in ("start", "end") and self.at("("):
            self.next()
            self.expect("OP", ")")
            return tok.text.lower()
        sign = 1.0
        if tok.kind == "OP" and tok.text in "+-":
            sign = -1.0 if tok.text == "-" else 1.0
            tok = self.next()
        if tok.kind != "NUMBER":
            raise self.error("'@' needs a Unix time in seconds, start() or end()", tok)
        value = sign * float(tok.value)  # type: ignore[arg-type]
        if not math.isfinite(value):
            raise self.error(f"invalid '@' time {tok.text!r}", tok)
        return round(value * 1000)

    def expect_duration(self) -> int:
        tok = self.next()
        if tok.kind == "DURATION":
            return int(tok.value)  # type: ignore[call-overload]
        if tok.kind == "NUMBER" and self.sem.numbers_as_durations:
            # Prometheus >= 2.54 (#9138; stable in 3.0, #15111): a number is a duration in seconds
            value = float(tok.value)  # type: ignore[arg-type]
            if not math.isfinite(value) or value < 0:
                raise self.error(f"invalid duration {tok.text!r}", tok)
            return round(value * 1000)
        if tok.kind == "NUMBER" and tok.text.isdigit():
            # Prometheus before 2.54 requires a unit; a bare number is an error there too
            raise self.error("duration needs a unit (e.g. 5m, 30s)", tok)
        raise self.error(f"expected a duration, got {tok.text or 'end of expression'!r}", tok)

    def parse_primary(self) -> object:
        tok = self.next()
        if tok.kind == "NUMBER":
            return _Number(float(tok.value), tok.pos)  # type: ignore[arg-type]
        if tok.kind == "DURATION":
            if self.sem.numbers_as_durations:  # Prometheus >= 2.54: 10m is the number 600
                return _Number(int(tok.value) / 1000, tok.pos)  # type: ignore[call-overload]
            raise self.error("a duration is only valid inside '[...]' or after 'offset'", tok)
        if tok.kind == "STRING":
            return _String(str(tok.value), tok.pos)
        if tok.kind == "OP" and tok.text == "(":
            node = self.parse_expr(0)
            self.expect("OP", ")")
            return node
        if tok.kind == "OP" and tok.text == "{":
            self.i -= 1
            return self.parse_selector(None, tok)
        if tok.kind == "IDENT":
            low = tok.text.lower()
            if low in ("inf", "nan") and not (self.at("{") or self.at("(")):
                return _Number(math.inf if low == "inf" else math.nan, tok.pos)
            # aggregation operators and keywords are case-insensitive (SUM BY (job) ...), function
            # names are not (Prometheus: "unknown function with name RATE")
            is_agg = low in _AGGREGATIONS or low in _UNSUPPORTED_AGGREGATIONS
            if is_agg and (self.at("(") or self.at("by") or self.at("without")):
                return self.parse_aggregation(tok)
            if self.at("("):
                return self.parse_call(tok)
            if low in ("by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset", "and", "or", "unless", "atan2"):  # fmt: skip
                raise self.error(f"unexpected keyword {tok.text!r}", tok)
            return self.parse_selector(tok.text, tok)
        raise self.error(f"unexpected {tok.text or 'end of expression'!r}", tok)

    def parse_label_list(self) -> tuple[str, ...]:
        self.expect("OP", "(")
        names: list[str] = []
        while not self.at(")"):
            tok = self.next()
            if tok.kind != "IDENT" or ":" in tok.text:
                raise self.error(f"expected a label name, got {tok.text!r}", tok)
            names.append(tok.text)
            if not self.at(")"):
                self.expect("OP", ",")
        self.expect("OP", ")")
        return tuple(names)

    def parse_aggregation(self, tok: _Tok) -> _Agg:
        op = tok.text.lower()
        if op in _UNSUPPORTED_AGGREGATIONS:
            raise self.error(
                f"aggregation {op!r} is not supported (supported: {', '.join(sorted(_AGGREGATIONS))})",
                tok,
            )
        grouping: tuple[str, ...] = ()
        without = False
        seen_clause = False
        if self.at("by") or self.at("without"):
            without = self.next().text.lower() == "without"
            grouping = self.parse_label_list()
            seen_clause = True
        self.expect("OP", "(")
        if self.at(")"):
            raise self.error(f"{op}() needs an argument", self.peek())
        param = None
        if op in _PARAM_AGGREGATIONS:
            ptok = self.peek()
            param = self.parse_expr(0)
            if op == "count_values" and not isinstance(param, _String):
                raise self.error("count_values() expects a string (the label name) first", ptok)
            if op != "count_values" and isinstance(param, _String):
                raise self.error(f"{op}() expects a number first, got a string", ptok)
            self.expect("OP", ",")
        arg = self.parse_expr(0)
        if self.at(","):
            raise self.error(
                f"{op}() takes exactly {2 if param is not None else 1} argument(s)",
                self.peek(),
            )
        self.expect("OP", ")")
        if self.at("by") or self.at("without"):
            if seen_clause:
                raise self.error("grouping given twice", self.peek())
            without = self.next().text.lower() == "without"
            grouping = self.parse_label_list()
        return _Agg(op, arg, grouping, without, tok.pos, param)

    def parse_call(self, tok: _Tok) -> _Call:
        name = tok.text
        if name not in _FUNCTIONS:
            if name in _KNOWN_FUNCTIONS:
                raise self.error(
                    f"function {name}() is not supported (supported: {', '.join(sorted(_FUNCTIONS))})",
                    tok,
                )
            raise self.error(f"unknown function {name}()", tok)
        if name == "holt_winters" and self.sem.v3:
            raise self.error(
                "holt_winters() is called double_exponential_smoothing() in Prometheus 3 and needs "
                "--enable-feature=promql-experimental-functions (prometheus#14930); not supported",
                tok,
            )
        self.expect("OP", "(")
        args: list[object] = []
        while not self.at(")"):
            atok = self.peek()
            arg = self.parse_expr(0)
            # strings, also in parentheses: label_replace(x, ("dst"), ...), as Prometheus accepts
            wants_string = name in ("label_replace", "label_join") and args
            if wants_string and not isinstance(arg, _String):
                raise self.error(f"{name}() expects a string here, got {atok.text!r}", atok)
            if isinstance(arg, _String) and not wants_string:
                raise self.error(f"{name}() does not take a string here", atok)
            args.append(arg.value if isinstance(arg, _String) else arg)
            if not self.at(")"):
                self.expect("OP", ",")
        self.expect("OP", ")")
        if name == "label_join":
            if len(args) < 3:
                raise self.error(f"label_join() takes at least 3 arguments, got {len(args)}", tok)
            return _Call(name, tuple(args), tok.pos)
        want = _ARITY[name]
        if (name == "round" and len(args) == 2) or (name in _DATE_FUNCTIONS and not args):
            want = len(args)
        if len(args) != want:
            raise self.error(f"{name}() takes {want} argument(s), got {len(args)}", tok)
        if name in _RANGE_FUNCTIONS:
            arg = args[_range_arg(name)]
            is_range = isinstance(arg, _Subquery) or (
                isinstance(arg, _Selector) and arg.range_ms is not None
            )
            if not is_range:
                raise self.error(f"{name}() needs a range selector argument like x[5m]", tok)
        return _Call(name, tuple(args), tok.pos)

    def parse_selector(self, name: str | None, tok: _Tok) -> _Selector:
        matchers: list[_Matcher] = []
        if name is not None:
            matchers.append(_Matcher(_NAME, "=", name))
        if self.at("{"):
            self.next()
            while not self.at("}"):
                ltok = self.next()
                if ltok.kind == "STRING" or ltok.kind != "IDENT" or ":" in ltok.text:
                    raise self.error(f"expected a label name, got {ltok.text!r}", ltok)
                otok = self.next()
                if otok.kind != "OP" or otok.text not in ("=", "!=", "=~", "!~"):
                    raise self.error(
                        f"expected a label matcher operator (=, !=, =~, !~), got {otok.text!r}",
                        otok,
                    )
                vtok = self.next()
                if vtok.kind != "STRING":
                    raise self.error(f"expected a quoted label value, got {vtok.text!r}", vtok)
                value = str(vtok.value)
                regex = regex_v2 = None
                if otok.text in ("=~", "!~"):
                    bad = _NOT_RE2.search(value)
                    if bad:
                        raise self.error(
                            f"invalid regular expression: {bad.group()!r} (lookaround, backreference) "
                            "is not RE2 syntax",
                            vtok,
                        )
                    try:
                        py = _re2_to_python(value)
                        regex = re.compile(py, re.DOTALL)
                        regex_v2 = re.compile(py)
                    except re.error as exc:
                        raise self.error(f"invalid regular expression ({exc})", vtok) from None
                if ltok.text == _NAME and name is not None:
                    raise self.error("metric name given twice", ltok)
                matchers.append(_Matcher(ltok.text, otok.text, value, regex, regex_v2))
                if not self.at("}"):
                    self.expect("OP", ",")
            self.expect("OP", "}")
        if not matchers or all(m.matches_empty() for m in matchers):
            raise self.error(
                "vector selector must contain at least one matcher that does not match the empty string",
                tok,
            )
        end = self.peek().pos
        return _Selector(tuple(matchers), tok.pos, text=self.expr[tok.pos : end].strip())


# --------------------------------------------------------------------------------------------------
# Values during evaluation


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


# --------------------------------------------------------------------------------------------------
# Evaluation


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


def _range_arg(func: str) -> int:
    """Index of the range-vector argument of a range function."""
    return 0 if func in ("predict_linear", "holt_winters") else -1


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


def _parse_le(text: str) -> float | None:
    """``le`` as Go's ``strconv.ParseFloat`` reads it (None when it does not parse)."""
    t = text.strip()
    if t != text or not t or "_" in t:
        return None
    try:
        return float(t)
    except ValueError:
        low = t.lower()
        if low.startswith(("0x", "+0x", "-0x")):
            try:
                return float.fromhex(t)
            except ValueError:
                return None
        return None


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


def _quantile_matrix(
    q: np.ndarray, ubs: np.ndarray, v: np.ndarray, p: np.ndarray, small_deltas: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``bucketQuantile`` for one group of buckets at every step.

    ``ubs`` (R,) upper bounds of the group's bucket series, ``v``/``p`` (R, T) their values and
    presence, ``q`` (T,) the quantile per step. Returns value, bucket_lower, bucket_upper, at_ceiling
    and present, each (T,). Steps where every bucket is present and no count is NaN (the usual case)
    are computed column-wise with numpy, the others one by one with :func:`_bucket_quantile`; both
    follow Prometheus's code step by step.
    """
    t = v.shape[1]
    value = np.full(t, np.nan)
    lower = np.full(t, np.nan)
    upper = np.full(t, np.nan)
    pinned = np.zeros(t, dtype=bool)
    present: np.ndarray = np.asarray(p.any(axis=0))
    full = p.all(axis=0) & ~np.isnan(v).any(axis=0)
    for k in np.flatnonzero(present & ~full):
        buckets = [(float(ubs[r]), float(v[r, k])) for r in range(len(ubs)) if p[r, k]]
        value[k], lower[k], upper[k], pinned[k] = _bucket_quantile(
            float(q[k]), buckets, small_deltas
        )
    cols = np.flatnonzero(full)
    if not len(cols):
        return value, lower, upper, pinned, present
    order = np.argsort(ubs, kind="stable")
    sorted_ubs = ubs[order]
    counts = v[order][:, cols]
    # coalesce buckets with the same upper bound (le="1" and le="1.0"): sum them
    starts = np.flatnonzero(np.r_[True, sorted_ubs[1:] != sorted_ubs[:-1]])
    bounds = sorted_ubs[starts]
    c = np.add.reduceat(counts, starts, axis=0) if len(starts) < len(sorted_ubs) else counts.copy()
    qs = q[cols]
    res = np.full(len(cols), np.nan)
    lo = np.full(len(cols), np.nan)
    up = np.full(len(cols), np.nan)
    pin = np.zeros(len(cols), dtype=bool)
    nb = len(bounds)
    if np.isposinf(bounds[-1]) and nb >= 2:
        if not small_deltas:
            c = np.maximum.accumulate(c, axis=0)
        else:
            prev = c[0].copy()
            for i in range(1, nb):
                cur = c[i]
                with np.errstate(invalid="ignore", divide="ignore"):
                    abs_sum = np.abs(prev) + np.abs(cur)
                    diff = np.abs(prev - cur)
                    tiny = (prev == 0) | (cur == 0) | (abs_sum < _MIN_NORMAL)
                    close = np.where(
                        tiny,
                        diff < 1e-12 * _MIN_NORMAL,
                        diff / np.minimum(abs_sum, 1.7976931348623157e308) < 1e-12,
                    )
                fix = (cur != prev) & (close | (cur < prev))
                c[i] = np.where(fix, prev, cur)
                prev = np.where((cur != prev) & ~fix, cur, prev)
        obs = c[-1]
        rank = qs * obs
        ge = c[:-1] >= rank[None, :]
        b = np.where(ge.any(axis=0), ge.argmax(axis=0), nb - 1)
        at_top = b == nb - 1
        below_zero = (b == 0) & (bounds[0] <= 0)
        prev_b = np.clip(b - 1, 0, None)
        has_prev = b > 0
        start = np.where(has_prev, bounds[prev_b], 0.0)
        end = bounds[np.clip(b, 0, nb - 1)]
        col = np.arange(len(cols))
        base = np.where(has_prev, c[prev_b, col], 0.0)
        cnt = c[np.clip(b, 0, nb - 1), col] - base
        with np.errstate(invalid="ignore", divide="ignore"):
            interp = start + (end - start) * ((rank - base) / cnt)
        res = np.where(at_top, bounds[nb - 2], np.where(below_zero, bounds[0], interp))
        lo = np.where(at_top, bounds[nb - 2], np.where(below_zero, -np.inf, start))
        up = np.where(at_top, np.inf, np.where(below_zero, bounds[0], end))
        pin = at_top.copy()
        empty = obs == 0
        res, lo, up = (np.where(empty, np.nan, x) for x in (res, lo, up))
        pin &= ~empty
    # out-of-range quantiles, whatever the buckets: NaN, -Inf, +Inf (bounds NaN)
    special = np.isnan(qs) | (qs < 0) | (qs > 1)
    res = np.where(np.isnan(qs), np.nan, np.where(qs < 0, -np.inf, np.where(qs > 1, np.inf, res)))
    lo = np.where(special, np.nan, lo)
    up = np.where(special, np.nan, up)
    pin &= ~special
    value[cols], lower[cols], upper[cols], pinned[cols] = res, lo, up, pin
    return value, lower, upper, pinned, present


_MIN_NORMAL = 2.2250738585072014e-308


def _almost_equal(a: float, b: float, eps: float) -> bool:
    if a == b:
        return True
    abs_sum = abs(a) + abs(b)
    diff = abs(a - b)
    if a == 0 or b == 0 or abs_sum < _MIN_NORMAL:
        return diff < eps * _MIN_NORMAL
    return diff / min(abs_sum, 1.7976931348623157e308) < eps


def _bucket_quantile(
    q: float, buckets: Iterable[tuple[float, float]], small_deltas: bool
) -> tuple[float, float, float, bool]:
    """Prometheus ``bucketQuantile``, plus the bounds of the bucket the result fell in.

    Returns ``(value, bucket_lower, bucket_upper, at_ceiling)``; ``at_ceiling`` is True when the rank
    lies beyond the last finite bucket, so the value is that bucket's upper bound (a floor of the
    true quantile, not an estimate).
    """
    nan = math.nan
    if math.isnan(q):
        return nan, nan, nan, False
    if q < 0:
        return -math.inf, nan, nan, False
    if q > 1:
        return math.inf, nan, nan, False
    bks = sorted(buckets, key=lambda b: b[0])
    if not bks or not math.isinf(bks[-1][0]) or bks[-1][0] < 0:
        return nan, nan, nan, False
    # coalesce buckets with the same upper bound (le="1" and le="1.0")
    merged: list[list[float]] = []
    for ub, c in bks:
        if merged and merged[-1][0] == ub:
            merged[-1][1] += c
        else:
            merged.append([ub, c])
    if not small_deltas:
        top = -math.inf
        for bk in merged:
            if bk[1] > top:
                top = bk[1]
            elif bk[1] < top:
                bk[1] = top
    else:
        prev = merged[0][1]
        for bk in merged[1:]:
            cur = bk[1]
            if cur == prev:
                continue
            if _almost_equal(prev, cur, 1e-12) or cur < prev:
                bk[1] = prev
                continue
            prev = cur
    if len(merged) < 2:
        return nan, nan, nan, False
    observations = merged[-1][1]
    if observations == 0:
        return nan, nan, nan, False
    rank = q * observations
    # sort.Search over all but the +Inf bucket: first index whose count >= rank
    b = len(merged) - 1
    for i in range(len(merged) - 1):
        if merged[i][1] >= rank:
            b = i
            break
    if b == len(merged) - 1:
        ceiling = merged[-2][0]
        return ceiling, ceiling, math.inf, True
    if b == 0 and merged[0][0] <= 0:
        return merged[0][0], -math.inf, merged[0][0], False
    start = 0.0
    end = merged[b][0]
    count = merged[b][1]
    if b > 0:
        start = merged[b - 1][0]
        count -= merged[b - 1][1]
        rank -= merged[b - 1][1]
    with np.errstate(all="ignore"):
        value = start + (end - start) * float(np.float64(rank) / np.float64(count))
    return value, start, end, False


# --------------------------------------------------------------------------------------------------
# Frame <-> series


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
