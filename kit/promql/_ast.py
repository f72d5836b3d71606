"""The PromQL syntax tree (selectors, calls, aggregations, binary operators), RE2 matchers
translated to Python, and the tables of functions, aggregations and precedences.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np


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


# Python-only regex syntax that RE2 (Prometheus) rejects: lookaround and backreferences
_NOT_RE2 = re.compile(r"\\(?:[1-9]|g<)|\(\?(?:[=!]|<[=!]|P=)")


_RE2_FLAGS_RE = re.compile(r"\(\?([imsU]*)(?:-([imsU]*))?\)")


def _range_arg(func: str) -> int:
    """Index of the range-vector argument of a range function."""
    return 0 if func in ("predict_linear", "holt_winters") else -1
