"""What the Prometheus and Grafana readers share: sample collection, number and line parsing, rejects.

:mod:`kit.sources.metrics.prometheus` (API JSON, text exposition, OpenMetrics) and
:mod:`kit.sources.metrics.grafana` (Grafana CSV / DataFrame JSON) both import from here, so neither
reaches into the other's private names (they used to import each other).
"""

from __future__ import annotations

import json
import os
import re
import warnings
from array import array
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kit.errors import InputFormatError, KitWarning

_METRIC_NAME_RE = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*\Z")


@dataclass
class _Collector:
    """Accumulates samples of all input files: series are interned, samples stay columnar.

    Samples are kept in typed arrays (4 or 8 bytes per value, no Python object per sample): a
    5-million-sample export needs about 160 MB here, not over a GB of ints and floats.
    """

    series_ids: dict[tuple[str | None, tuple[tuple[str, str], ...], int], int] = field(
        default_factory=dict
    )
    series: list[tuple[str | None, dict[str, str]]] = field(default_factory=list)
    sid: array[int] = field(default_factory=lambda: array("I"))
    ts_us: array[int] = field(default_factory=lambda: array("q"))
    value: array[float] = field(default_factory=lambda: array("d"))
    src: array[int] = field(default_factory=lambda: array("I"))
    where: array[int] = field(default_factory=lambda: array("q"))  # line, or JSON series index
    sources: list[str] = field(default_factory=list)
    source_paths: list[str] = field(default_factory=list)
    by_line: list[bool] = field(default_factory=list)  # per source: is ``where`` a line number?
    native_histograms: int = 0

    def new_source(self, path: Path, *, by_line: bool) -> int:
        self.sources.append(path.name)
        self.source_paths.append(os.fspath(path))
        self.by_line.append(by_line)
        return len(self.sources) - 1

    def series_id(self, name: str | None, labels: dict[str, str]) -> int:
        """Intern a series; empty label values are dropped (Prometheus: empty == absent).

        A series without a metric name (the result of an expression, e.g. a ``query_range``
        export of ``histogram_quantile(0.99, ...)``) belongs to its file: two exports of
        different expressions often have the same labels, and must not be merged as one series.
        """
        items = tuple(sorted((k, v) for k, v in labels.items() if v != ""))
        key = (name or None, items, -1 if name else len(self.sources) - 1)
        sid = self.series_ids.get(key)
        if sid is None:
            sid = len(self.series)
            self.series_ids[key] = sid
            self.series.append((name or None, dict(items)))
        return sid

    def add_many(
        self, sid: int, ts_us: list[int], value: list[float], src: int, where: list[int]
    ) -> None:
        self.sid.extend(array("I", [sid]) * len(ts_us))
        self.ts_us.extend(ts_us)
        self.value.extend(value)
        self.src.extend(array("I", [src]) * len(ts_us))
        self.where.extend(where)

    def add_block(
        self, sid: int, ts_us: array[int], value: array[float], src: int, where: int
    ) -> None:
        """Samples of one series from one place (``where`` is the same for all)."""
        n = len(ts_us)
        self.sid.extend(array("I", [sid]) * n)
        self.ts_us.extend(ts_us)
        self.value.extend(value)
        self.src.extend(array("I", [src]) * n)
        self.where.extend(array("q", [where]) * n)

    def add(self, sid: int, ts_us: int, value: float, src: int, where: int) -> None:
        self.sid.append(sid)
        self.ts_us.append(ts_us)
        self.value.append(value)
        self.src.append(src)
        self.where.append(where)


def _parse_float(text: str) -> float:
    """Parse a sample value as Go's ``strconv.ParseFloat`` would (``NaN``, ``+Inf``, hex)."""
    if not isinstance(text, str):
        raise ValueError(f"not a number: {text!r}")
    # Fast path: on ASCII text without underscores or surrounding blanks, Python's float()
    # accepts exactly Go's decimal syntax (digits, '.', exponent, inf/infinity/nan, signs).
    if "_" not in text and text.isascii() and len(text.strip()) == len(text):
        try:
            return float(text)
        except ValueError:
            pass
    if _FLOAT_RE.match(text):
        return float(text)
    if _HEXFLOAT_RE.match(text):
        return float.fromhex(text)
    raise ValueError(f"not a number: {text!r}")


def _check_us(us: int) -> int:
    if not -_TS_LIMIT_US < us < _TS_LIMIT_US:
        raise ValueError(f"timestamp out of range: {us} us since 1970")
    return us


class _Rejects:
    """Counts rejected units of one file; raises on the first one when strict."""

    def __init__(
        self, path: Path, *, strict: bool, unit: str, json_text: str | None = None
    ) -> None:
        self.path = path
        self.strict = strict
        self.unit = unit
        self.count = 0
        self.first: str | None = None
        self.json_text = json_text  # to turn a JSON path ("data.result[0]") into a line number

    def reject(
        self,
        message: str,
        *,
        line: int | None = None,
        excerpt: str | None = None,
        hint: str | None = None,
        where: str | None = None,
    ) -> None:
        if line is None and where and self.json_text and (self.strict or self.first is None):
            line = _json_line(self.json_text, where)
        if self.strict:
            raise InputFormatError(
                message,
                path=self.path,
                line=line,
                excerpt=excerpt,
                hint=hint or "Pass strict=False to skip such units and count them",
            )
        self.count += 1
        if self.first is None:
            self.first = f"line {line}" if line is not None else "?"
            if where:
                self.first = f"{where}, {self.first}" if line is not None else where
            self.first += f" ({message})"

    def report(self) -> None:
        if self.count:
            warnings.warn(
                f"{self.path}: {self.count} malformed {self.unit}(s) skipped (strict=False); "
                f"first at {self.first}",
                KitWarning,
                stacklevel=4,
            )


def _load_json(text: str, path: Path) -> Any:
    """``json.loads`` with the kit's errors: position of a syntax error, nesting too deep."""
    try:
        return _json_loads(text)
    except json.JSONDecodeError as exc:
        lines = text.splitlines()
        raise InputFormatError(
            f"invalid JSON ({exc.msg}, column {exc.colno})",
            path=path,
            line=exc.lineno,
            excerpt=lines[exc.lineno - 1][max(0, exc.colno - 40) : exc.colno + 40]
            if exc.lineno <= len(lines)
            else "",
            hint="A truncated download? Save the export again",
        ) from exc
    except RecursionError as exc:
        raise InputFormatError(
            "JSON nested too deeply to be a metrics export", path=path, offset=0
        ) from exc
    except ValueError as exc:  # an integer over sys.get_int_max_str_digits() (4300) digits
        m = _LONG_DIGITS.search(text)
        pos = m.start() if m else 0
        raise InputFormatError(
            f"JSON number too long to read ({exc})".split(";")[0] + ")",
            path=path,
            line=text.count("\n", 0, pos) + 1,
            excerpt=text[pos : pos + 40],
            hint="A metrics export holds no such numbers: is the file damaged?",
        ) from exc


class _LineError(ValueError):
    pass


def _parse_sample_line(line: str) -> tuple[str, dict[str, str], str]:
    """Split one sample line into (name, labels, rest after the closing brace or name)."""
    labels: dict[str, str] = {}
    name = ""
    if line[0] == "{":
        pos = 0
    else:
        m = _NAME_AT_RE.match(line)
        if not m:
            raise _LineError("expected a metric name")
        name = m.group(0)
        pos = m.end()
        if pos >= len(line) or line[pos] != "{":
            return name, labels, line[pos:]
    pos += 1  # past "{"
    first = True
    while True:
        while pos < len(line) and line[pos] in " \t":
            pos += 1
        if pos < len(line) and line[pos] == "}":
            return name, labels, line[pos + 1 :]
        m = _LABEL_AT_RE.match(line, pos)
        if m is None and first and not name:
            q = _QUOTED_NAME_AT_RE.match(line, pos)
            if q is not None:  # Prometheus 3 UTF-8 name: {"my.metric", label="v"}
                name = _unescape(q.group(1))
                pos = q.end()
                first = False
                if line[pos] == ",":
                    pos += 1
                continue
        if m is None:
            raise _LineError(f'bad label at character {pos + 1} (expected name="value")')
        key = m.group(1)
        if key[0] == '"':
            key = _unescape(key[1:-1])
        if key in labels:
            raise _LineError(f"label {key!r} appears twice")
        labels[key] = _unescape(m.group(2))
        pos = m.end()
        first = False
        if pos < len(line) and line[pos] == ",":
            pos += 1
        elif pos < len(line) and line[pos] == "}":
            continue
        else:
            raise _LineError(f"expected ',' or '}}' at character {pos + 1}")


# Go's strconv.ParseFloat syntax (decimal), which Prometheus uses for sample values.
_FLOAT_RE = re.compile(
    r"[+-]?(?:(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|inf(?:inity)?|nan)\Z", re.IGNORECASE
)


_HEXFLOAT_RE = re.compile(r"[+-]?0[xX][0-9a-fA-F]*\.?[0-9a-fA-F]*[pP][+-]?\d+\Z")


# Timestamps beyond +-2**62 us (about 146,000 years) cannot be real and would overflow Int64.
_TS_LIMIT_US = 2**62


def _json_line(text: str, where: str) -> int | None:
    """1-based line of the JSON value at ``where`` (``data.result[3].values[17]``); None if lost.

    Only called for error messages, so it re-scans the text rather than keeping positions.
    """
    keys: list[str | int] = []
    for m in _JSON_PATH_PART.finditer(where):
        keys.append(m.group(1) if m.group(1) is not None else int(m.group(2)))
    dec = json.JSONDecoder()
    try:
        pos = _JSON_WS.match(text, 0).end()  # type: ignore[union-attr]
        for key in keys:
            if text[pos] == "{" and isinstance(key, str):
                pos = _JSON_WS.match(text, pos + 1).end()  # type: ignore[union-attr]
                while True:
                    if text[pos] == "}":
                        return None
                    k, pos = dec.raw_decode(text, pos)
                    pos = _JSON_WS.match(text, pos).end() + 1  # type: ignore[union-attr]
                    pos = _JSON_WS.match(text, pos).end()  # type: ignore[union-attr]
                    if k == key:
                        break
                    _, pos = dec.raw_decode(text, pos)
                    pos = _JSON_WS.match(text, pos).end()  # type: ignore[union-attr]
                    if text[pos] == ",":
                        pos = _JSON_WS.match(text, pos + 1).end()  # type: ignore[union-attr]
            elif text[pos] == "[" and isinstance(key, int):
                pos = _JSON_WS.match(text, pos + 1).end()  # type: ignore[union-attr]
                for _ in range(key):
                    _, pos = dec.raw_decode(text, pos)
                    pos = _JSON_WS.match(text, pos).end()  # type: ignore[union-attr]
                    if text[pos] != ",":
                        return None
                    pos = _JSON_WS.match(text, pos + 1).end()  # type: ignore[union-attr]
            else:
                return None
    except (ValueError, IndexError):
        return None
    return text.count("\n", 0, pos) + 1


def _json_loads(text: str) -> Any:
    return json.loads(text, object_pairs_hook=_api_object)


_LONG_DIGITS = re.compile(r"[0-9]{4301,}")


_NAME_AT_RE = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")


_LABEL_AT_RE = re.compile(
    r'[ \t]*([a-zA-Z_][a-zA-Z0-9_]*|"(?:[^"\\\n]|\\.)*")[ \t]*=[ \t]*"((?:[^"\\\n]|\\.)*)"[ \t]*'
)


_QUOTED_NAME_AT_RE = re.compile(r'[ \t]*"((?:[^"\\\n]|\\.)*)"[ \t]*(?=[,}])')


def _unescape(v: str) -> str:
    if "\\" not in v:
        return v
    return _UNESCAPE_RE.sub(lambda m: "\n" if m.group(1) == "n" else m.group(1), v)


_JSON_WS = re.compile(r"[ \t\n\r]*")


_JSON_PATH_PART = re.compile(r"\.?([^.\[\]]+)|\[(\d+)\]")


def _api_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """``object_pairs_hook``: a series object (``metric`` and a ``values`` list) gets _Points."""
    obj = dict(pairs)
    values = obj.get("values")
    if "metric" in obj and isinstance(values, list):
        obj["values"] = _Points(values)
    return obj


_UNESCAPE_RE = re.compile(r"\\(.)")


class _Points:
    """The ``values`` of one API matrix series, converted while the JSON is parsed.

    Well-formed ``[time, "value"]`` pairs become two typed arrays (16 bytes per sample) at once,
    so the parsed document never holds millions of small lists, floats and strings (a 200 MB
    export took 3.8 GB that way). Other points are kept as parsed, with their index, for the
    checks and messages of :func:`_json_point`.
    """

    __slots__ = ("fast_j", "odd", "ts_us", "value")

    def __init__(self, points: list[Any]) -> None:
        ts_us: array[int] = array("q")
        value: array[float] = array("d")
        odd: list[tuple[int, Any]] = []
        for j, p in enumerate(points):
            try:  # the checks of the fast path in _read_api_json
                t, v = p
                if type(t) not in (int, float) or type(v) is not str:
                    raise TypeError
                if not -_MAX_SECONDS < t < _MAX_SECONDS:
                    raise ValueError
                us = round(t * 1000) * 1000
                x = _parse_float(v)
            except (ValueError, TypeError, OverflowError):
                odd.append((j, p))
                continue
            ts_us.append(us)
            value.append(x)
        self.ts_us, self.value, self.odd = ts_us, value, odd
        # with odd points, the position of each good one keeps the file order
        self.fast_j: array[int] | None = None
        if odd:
            bad = {j for j, _ in odd}
            self.fast_j = array("q", (j for j in range(len(points)) if j not in bad))

    def __len__(self) -> int:
        return len(self.ts_us) + len(self.odd)


# 1e11 s is the year 5138: a "seconds" timestamp that large is milliseconds written by mistake.
_MAX_SECONDS = 1e11
