"""PromQL durations (``5m``, ``1h30m``, ``1y``: Prometheus's model.Duration, a different grammar from
:mod:`kit.timeutil`'s Go durations) and the tokenizer.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from dataclasses import dataclass

from kit.promql._base import PromQLError, StepLike, TimeLike

_DURATION_RE = re.compile(r"(\d+)(ms|y|w|d|h|m|s)")


_UNIT_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}


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
