"""Grafana exports (CSV and DataFrame JSON) into the metrics frame of :func:`kit.read_metrics`.

Call :func:`kit.read_metrics` (``fmt="grafana-csv"`` or ``"grafana-json"``, or ``"auto"``); this
module holds the parsing. What is read (formats.md §7):

CSV
    - Grafana ≥ 7 "Download CSV": one frame, or "Series joined by time"; a ``Time`` column then one
      column per series; ``,`` (or the locale's) delimiter, ``\\r\\n``, quoted header; several
      frames separated by a blank line and a new header.
    - "Formatted data": times as text (``2020-01-01 01:00:00``, no offset: interpreted in
      ``csv_timezone``) and values with units (``1.50 ms``, ``4.4 V``, ``1.2 K``).
    - "Download for Excel": UTF-16 with BOM, tab-separated. Legacy (Grafana ≤ 6) Excel mode: UTF-8
      BOM, a ``sep=;`` line; a repeated header row is skipped.
    - Legacy "Export CSV": series as columns (``Time;a;b``) or series as rows
      (``Series;Time;Value``), ISO times.

    Times: epoch milliseconds (possibly fractional), ISO 8601 with ``Z``/offset, or naive
    ``YYYY-MM-DD[ T]HH:MM[:SS[.fff]]``. Empty cells, ``null``, ``undefined`` are "no sample" and
    are counted (logged), not rejected. Any other cell that is not a number (optionally with a
    unit) is a malformed unit (``InputFormatError`` with the line, or counted when
    ``strict=False``).

DataFrame JSON
    ``{"schema": {"fields": [...]}, "data": {"values": [[...], ...]}}`` (Inspect > JSON >
    DataFrame JSON), a list of them, ``{"frames": [...]}``, a query response
    ``{"results": {"A": {"frames": [...]}}}``, or frames with inline ``fields[].values``
    ("Panel data": ``{"series": [...]}``). ``entities`` (NaN, Inf, NegInf, Undef) and ``enums``
    are re-applied; ``nanos`` refine times.

Series naming, for both: a column/field whose display name is a Prometheus series selector
(``coredns_dns_requests_total{server="dns://:53"}``, ``{instance="10.0.0.1:9153"}``, or a bare
metric name) gives ``metric`` and label columns; any other display name (a legend such as
``p99 node-1``) gives ``metric`` null and a ``series`` label holding the display name. A value
unit becomes a ``unit`` label; time units are converted to seconds (``unit="s"``) and byte units
to bytes (``unit="B"``), so a column mixing ``900 ms`` and ``1.2 s`` stays one series.
"""

from __future__ import annotations

import csv
import io
import logging
import math
import re
import warnings
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import polars as pl

from kit.errors import InputFormatError, KitWarning
from kit.sources.metrics._common import (
    _METRIC_NAME_RE,
    _check_us,
    _Collector,
    _LineError,
    _load_json,
    _parse_float,
    _parse_sample_line,
    _Rejects,
)

__all__ = ["UNIT_FACTORS", "parse_display_name", "parse_formatted_value"]

log = logging.getLogger(__name__)

_MISSING = {"", "null", "undefined", "none", "-"}
_TIME_NAMES = {"time", "timestamp", "_time", "date", "datetime"}

UNIT_FACTORS: dict[str, tuple[float, str]] = {
    # time -> seconds
    "ns": (1e-9, "s"),
    "µs": (1e-6, "s"),
    "μs": (1e-6, "s"),
    "us": (1e-6, "s"),
    "ms": (1e-3, "s"),
    "s": (1.0, "s"),
    "sec": (1.0, "s"),
    "min": (60.0, "s"),
    "h": (3600.0, "s"),
    "hour": (3600.0, "s"),
    "hours": (3600.0, "s"),
    "day": (86400.0, "s"),
    "days": (86400.0, "s"),
    "week": (604800.0, "s"),
    "weeks": (604800.0, "s"),
    # bytes (Grafana's IEC "bytes" and SI "decbytes" units) -> bytes
    "B": (1.0, "B"),
    "KiB": (1024.0, "B"),
    "MiB": (1024.0**2, "B"),
    "GiB": (1024.0**3, "B"),
    "TiB": (1024.0**4, "B"),
    "kB": (1e3, "B"),
    "KB": (1e3, "B"),
    "MB": (1e6, "B"),
    "GB": (1e9, "B"),
    "TB": (1e12, "B"),
}
"""Grafana display units converted back to base units: suffix -> (factor, unit label)."""

# Grafana's "short" scale suffixes (valueFormats/symbolFormatters: scaledUnits 1000 ["", " K",
# " Mil", " Bil", " Tri", ...]); they may precede another unit ("1.50 K req/s").
_SCALE = {"K": 1e3, "Mil": 1e6, "Bil": 1e9, "Tri": 1e12, "Quadr": 1e15}
_FORMATTED_RE = re.compile(
    r"\s*([+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)\s*(?:(K|Mil|Bil|Tri|Quadr)\b\s*)?([^\d\s,;.+\x00-\x1f\x7f-][^,;\x00-\x1f\x7f]*?)?\s*\Z"
)


_MAX_FORMATTED = 200  # characters: longer cells are not "number unit"


def parse_formatted_value(cell: str) -> tuple[float, str | None]:
    """Parse a Grafana cell: a number, or a "formatted data" number with a unit.

    Parameters
    ----------
    cell
        ``"0.5"``, ``"NaN"``, ``"1.50 ms"``, ``"4.4 V"``, ``"1.20 K"``, ``"12 %"``.

    Returns
    -------
    tuple[float, str | None]
        The value in base units (seconds for time units, bytes for byte units) and the unit label
        (``"s"``, ``"B"``, the suffix as written for other units such as ``"V"`` or ``"%"``, or
        None for a bare number).

    Raises
    ------
    ValueError
        The cell is neither.
    """
    text = cell.strip()
    try:
        return _parse_float(text), None
    except ValueError:
        pass
    # formatted values are short ("1.50 K req/s"); the pattern backtracks on long blank runs
    m = _FORMATTED_RE.match(text) if len(text) <= _MAX_FORMATTED else None
    if m is None:
        shown = cell if len(cell) <= 60 else cell[:57] + "..."
        raise ValueError(f"not a number or a number with a unit: {shown!r}")
    value = float(m.group(1))
    if m.group(2):
        value *= _SCALE[m.group(2)]
    unit = m.group(3)
    if not unit:
        return value, None
    factor = UNIT_FACTORS.get(unit)
    if factor is not None:
        return value * factor[0], factor[1]
    return value, unit


def parse_display_name(name: str) -> tuple[str | None, dict[str, str]]:
    """Split a Grafana series display name into (metric, labels).

    ``up{job="a"}`` -> ``("up", {"job": "a"})``; ``{job="a"}`` -> ``(None, {"job": "a"})``;
    ``up`` -> ``("up", {})``; anything else (a legend, or Grafana's generic ``Value``) ->
    ``(None, {"series": name})``.
    """
    text = name.strip()
    if _METRIC_NAME_RE.match(text) and text.lower() != "value":  # Grafana's generic field name
        return text, {}
    if text.endswith("}") and "{" in text:
        try:
            metric, labels, rest = _parse_sample_line(text)
        except _LineError:
            return None, {"series": name}
        if not rest.strip():
            labels = dict(labels)
            named = labels.pop("__name__", None) or metric or None
            return named, labels
    return None, {"series": name}


# --------------------------------------------------------------------------------------------
# Times


class _TimeParser:
    """Parse Grafana time cells to epoch microseconds, memoised (times repeat across series)."""

    def __init__(self, timezone: str) -> None:
        try:
            self.tz = ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown csv_timezone {timezone!r}") from exc
        self.cache: dict[str, int] = {}
        self.naive = 0

    def __call__(self, cell: str) -> int:
        got = self.cache.get(cell)
        if got is not None:
            return got
        text = cell.strip()
        if re.fullmatch(r"-?[0-9]+(?:\.[0-9]+)?", text):
            ms = float(text)  # epoch ms, as Grafana writes raw times
            if not math.isfinite(ms):  # "999...9" (over 308 digits) is inf
                raise ValueError(f"time out of range: {cell[:40]!r}")
            us = _check_us(round(ms * 1000))
        else:
            iso = text.replace("Z", "+00:00") if text.endswith("Z") else text
            try:
                dt = datetime.fromisoformat(iso)
                if dt.tzinfo is None:
                    dt = dt.replace(tzinfo=self.tz)
                    naive = True
                else:
                    naive = False
                us = _check_us((dt - _EPOCH) // timedelta(microseconds=1))
            except OverflowError:  # year 1 or 9999 shifted by the time zone
                raise ValueError(f"time out of range: {cell!r}") from None
            except ValueError:
                raise ValueError(f"not a time (expected epoch ms or ISO 8601): {cell!r}") from None
            self.naive += naive
        self.cache[cell] = us
        return us


_EPOCH = datetime(1970, 1, 1, tzinfo=ZoneInfo("UTC"))


# --------------------------------------------------------------------------------------------
# CSV


def _sniff_delimiter(header: str) -> str:
    counts: dict[str, int] = {}
    in_quote = False
    for ch in header:
        if ch == '"':
            in_quote = not in_quote
        elif not in_quote and ch in ",;\t":
            counts[ch] = counts.get(ch, 0) + 1
    if not counts:
        return ","
    return max(counts, key=lambda c: counts[c])


class _CsvFrame:
    """Rows of one CSV frame, buffered per column and converted in bulk when the frame ends."""

    def __init__(
        self,
        kind: str,
        tcol: int,
        series: list[tuple[int, str | None, dict[str, str]]],
        header: list[str],
    ) -> None:
        self.kind = kind
        self.tcol = tcol
        self.series = series
        self.header = header
        self.ts: list[int] = []
        self.lines: list[int] = []
        self.rows: list[list[str]] = []

    def flush(
        self, col: _Collector, src: int, pending: list[tuple[int, str, str]], delimiter: str
    ) -> tuple[int, int]:
        """Add the buffered samples to ``col``; bad cells go to ``pending``. Returns (added, missing)."""
        if not self.rows:
            return 0, 0
        # All columns in one long frame (column k's cells, then column k+1's...): polars works on
        # it once instead of once per column, so a CSV with 20,000 columns stays fast.
        idxs = [2] if self.kind == "rows" else [idx for idx, _, _ in self.series]
        n = len(self.rows)
        if not idxs:
            self.rows, self.ts, self.lines = [], [], []
            return 0, 0
        frame = pl.DataFrame(
            {
                "k": pl.int_range(0, n * len(idxs), eager=True, dtype=pl.Int64) // n,
                "ts": pl.Series(self.ts * len(idxs), dtype=pl.Int64),
                "line": pl.Series(self.lines * len(idxs), dtype=pl.Int64),
                "cell": pl.Series([r[idx] for idx in idxs for r in self.rows], dtype=pl.String),
            }
        )
        if self.kind == "rows":
            frame = frame.with_columns(pl.Series("key", [r[0] for r in self.rows], pl.String))
        stripped = pl.col("cell").str.strip_chars()
        frame = frame.with_columns(
            value=stripped.cast(pl.Float64, strict=False),
            missing=stripped.str.to_lowercase().is_in(list(_MISSING)),
            unit=pl.lit(None, dtype=pl.String),
        )
        missing = int(frame["missing"].sum())
        # Cells that are neither missing nor plain numbers: formatted values ("1.5 ms") or junk.
        odd = frame.filter(pl.col("value").is_null() & ~pl.col("missing"))
        if not odd.is_empty():
            fixed_v: list[float | None] = []
            fixed_u: list[str | None] = []
            for k, cell, line in zip(odd["k"], odd["cell"], odd["line"], strict=True):
                try:
                    v, u = parse_formatted_value(cell)
                except ValueError as exc:
                    name = self.header[idxs[k]] if self.kind == "columns" else "Value"
                    pending.append((line, f"column {name!r}: {exc}", cell))
                    v, u = None, None
                fixed_v.append(v)
                fixed_u.append(u)
            odd = odd.with_columns(
                pl.Series("value", fixed_v, dtype=pl.Float64),
                pl.Series("unit", fixed_u, dtype=pl.String),
            )
            frame = pl.concat(
                [frame.filter(pl.col("value").is_not_null()), odd], how="vertical"
            ).sort("k", "line", maintain_order=True)
        frame = frame.filter(pl.col("value").is_not_null())
        group_cols = ["key", "unit"] if self.kind == "rows" else ["k", "unit"]
        groups = frame.group_by(group_cols, maintain_order=True).agg("ts", "value", "line")
        added = 0
        for g in groups.iter_rows(named=True):
            unit = g["unit"]
            if self.kind == "rows":
                metric, labels = parse_display_name(g["key"])
            else:
                _, metric, labels = self.series[g["k"]]
            sid = col.series_id(metric, {**labels, "unit": unit} if unit else labels)
            col.add_many(sid, g["ts"], g["value"], src, g["line"])
            added += len(g["ts"])
        self.rows, self.ts, self.lines = [], [], []
        return added, missing


def read_csv_into(text: str, path: Path, col: _Collector, *, strict: bool, timezone: str) -> int:
    """Parse a Grafana CSV export into ``col``; returns the number of samples added."""
    src = col.new_source(path, by_line=True)
    rej = _Rejects(path, strict=strict, unit="CSV cell")
    times = _TimeParser(timezone)
    lines = text.splitlines(keepends=True)
    start = 0
    delimiter: str | None = None
    while start < len(lines) and not lines[start].strip():
        start += 1
    if start < len(lines) and lines[start].strip().lower().startswith("sep="):
        sep = lines[start].strip()[4:]
        delimiter = sep[:1] or ","
        start += 1
    if start >= len(lines):
        log.info("%s: Grafana CSV without rows", path)
        return 0
    if delimiter is None:
        delimiter = _sniff_delimiter(lines[start])
    reader = csv.reader(io.StringIO("".join(lines[start:])), delimiter=delimiter)
    header: list[str] | None = None
    frame: _CsvFrame | None = None
    pending: list[tuple[int, str, str]] = []  # (line, message, excerpt): rejected, in line order
    added = missing = headers = repeated = blank = 0
    prev_blank = True

    def flush() -> None:
        nonlocal added, missing
        if frame is not None:
            a, m = frame.flush(col, src, pending, delimiter)
            added += a
            missing += m
        pending.sort(key=lambda x: x[0])
        for line, message, excerpt in pending:
            rej.reject(message, line=line, excerpt=excerpt)
        pending.clear()

    rows = iter(reader)
    while True:
        try:
            row = next(rows)
        except StopIteration:
            break
        except csv.Error as exc:  # e.g. a field over the csv module's size limit
            raise InputFormatError(
                f"CSV does not parse ({exc})",
                path=path,
                line=start + reader.line_num,
                hint="Is this really a Grafana CSV export?",
            ) from exc
        line_no = start + reader.line_num  # 1-based line of the row's last physical line
        if not any(c.strip() for c in row):
            blank += 1
            prev_blank = True
            continue
        if header is None or (prev_blank and _looks_like_header(row, times)):
            flush()
            header = [c.strip() for c in row]
            frame = _CsvFrame(*_layout(header, path, line_no), header)
            headers += 1
            prev_blank = False
            continue
        prev_blank = False
        assert frame is not None
        if [c.strip() for c in row] == header or (
            len(row) == 1 and [c.strip() for c in row[0].split(",")] == header
        ):
            repeated += 1  # a repeated header (legacy Excel export repeats it comma-separated)
            continue
        if len(row) != len(header):
            pending.append(
                (
                    line_no,
                    f"row has {len(row)} fields, the header has {len(header)} "
                    f"(delimiter {delimiter!r})",
                    delimiter.join(row),
                )
            )
            continue
        try:
            ts = times(row[frame.tcol])
        except ValueError as exc:
            pending.append((line_no, str(exc), delimiter.join(row)))
            continue
        frame.rows.append(row)
        frame.ts.append(ts)
        frame.lines.append(line_no)
    flush()
    if header is None:
        log.info("%s: Grafana CSV without rows", path)
        return 0
    rej.report()
    if times.naive:
        log.info("%s: times without UTC offset were read in csv_timezone=%s", path, times.tz.key)
    log.info(
        "%s: Grafana CSV: %d samples, %d empty/null cells, %d rejected, %d header row(s), "
        "%d repeated header row(s), %d blank line(s)",
        path,
        added,
        missing,
        rej.count,
        headers,
        repeated,
        blank,
    )
    return added


def _looks_like_header(row: list[str], times: _TimeParser) -> bool:
    first = row[0].strip()
    if first.lower() in _TIME_NAMES or first.lower() == "series":
        return True
    try:
        times(first)
    except ValueError:
        return True
    return False


def _layout(
    header: list[str], path: Path, line_no: int
) -> tuple[str, int, list[tuple[int, str | None, dict[str, str]]]]:
    low = [h.lower() for h in header]
    if len(low) == 3 and low[0] == "series" and low[1] in _TIME_NAMES and low[2] == "value":
        return "rows", 1, []
    tcol = next((i for i, h in enumerate(low) if h in _TIME_NAMES), None)
    if tcol is None:
        raise InputFormatError(
            "Grafana CSV without a time column",
            path=path,
            line=line_no,
            excerpt=",".join(header),
            hint="Expected a 'Time' column (series as columns) or a 'Series;Time;Value' header; "
            "export the panel data with its time field",
        )
    series = []
    seen: dict[str, int] = {}
    for i, h in enumerate(header):
        if i == tcol:
            continue
        metric, labels = parse_display_name(h)
        seen[h] = seen.get(h, 0) + 1
        series.append((i, metric, labels))
    dups = sorted(h for h, n in seen.items() if n > 1)
    if dups:
        # Two columns with one display name ("Value", "Value") would merge into one series.
        warnings.warn(
            f"{path}:{line_no}: columns with the same name {dups}: each gets a 'column' label "
            "(its 1-based position) to keep them apart",
            KitWarning,
            stacklevel=4,
        )
        series = [
            (i, m, {**lab, "column": str(i + 1)} if header[i] in dups else lab)
            for i, m, lab in series
        ]
    return "columns", tcol, series


# --------------------------------------------------------------------------------------------
# DataFrame JSON


def read_json_into(text: str, path: Path, col: _Collector, *, strict: bool, doc: Any = None) -> int:
    """Parse Grafana DataFrame JSON into ``col``; returns the number of samples added."""
    if doc is None:
        doc = _load_json(text, path)
    src = col.new_source(path, by_line=False)
    rej = _Rejects(path, strict=strict, unit="frame value", json_text=text)
    frames = _frames(doc)
    if frames is None:
        raise InputFormatError(
            "JSON is neither a Prometheus API answer nor Grafana DataFrame JSON",
            path=path,
            hint="Expected {'schema': ..., 'data': ...}, a list of frames, {'frames': [...]} or "
            "{'results': {...}}; in Grafana use Inspect > JSON > DataFrame JSON",
        )
    added = missing = 0
    for fi, (where, frame) in enumerate(frames):
        n_add, n_missing = _read_frame(frame, where, fi, col, src, rej)
        added += n_add
        missing += n_missing
    rej.report()
    log.info(
        "%s: Grafana DataFrame JSON: %d frame(s), %d samples, %d null/undefined values, "
        "%d rejected",
        path,
        len(frames),
        added,
        missing,
        rej.count,
    )
    return added


def _frames(doc: Any) -> list[tuple[str, dict[str, Any]]] | None:
    if isinstance(doc, list):
        out = []
        for i, f in enumerate(doc):
            if not isinstance(f, dict) or not ("schema" in f or "fields" in f):
                return None
            out.append((f"[{i}]", f))
        return out
    if not isinstance(doc, dict):
        return None
    if "schema" in doc or "fields" in doc:
        return [("", doc)]
    for key in ("frames", "series", "data"):
        if isinstance(doc.get(key), list):
            inner = _frames(doc[key])
            return None if inner is None else [(f"{key}{w}", f) for w, f in inner]
    if isinstance(doc.get("results"), dict):
        out = []
        for ref, res in doc["results"].items():
            inner = _frames(res.get("frames", [])) if isinstance(res, dict) else None
            if inner is None:
                return None
            out += [(f"results.{ref}.frames{w}", f) for w, f in inner]
        return out
    return None


def _read_frame(
    frame: dict[str, Any],
    where: str,
    index: int,
    col: _Collector,
    src: int,
    rej: _Rejects,
) -> tuple[int, int]:
    schema = frame.get("schema", frame)
    fields = schema.get("fields") if isinstance(schema, dict) else None
    if not isinstance(fields, list) or not all(isinstance(f, dict) for f in fields):
        rej.reject(f"{where}: frame without a list of fields", where=where)
        return 0, 0
    data = frame.get("data")
    if isinstance(data, list):  # streaming variant: data is a list of chunks
        data = data[0] if data else None
    columnar = isinstance(data, dict)
    if isinstance(data, dict):
        values = data.get("values")
        entities = _as_list(data.get("entities"))
        enums = _as_list(data.get("enums"))
        nanos = _as_list(data.get("nanos"))
        if data.get("bases") or data.get("factors"):
            warnings.warn(
                f"{where}: 'bases'/'factors' in DataFrame JSON are not applied (Grafana does not "
                "apply them either)",
                KitWarning,
                stacklevel=5,
            )
    else:
        values = [f.get("values") for f in fields]
        entities = [f.get("entities") for f in fields]
        enums, nanos = [], []
    if not isinstance(values, list) or len(values) != len(fields):
        rej.reject(f"{where}: data.values does not match the fields", where=where)
        return 0, 0
    cols: list[list[Any]] = []
    for i, v in enumerate(values):
        v = list(v) if isinstance(v, list) else []
        ent = entities[i] if i < len(entities) and isinstance(entities[i], dict) else {}
        for key, repl in (
            ("NaN", float("nan")),
            ("Inf", float("inf")),
            ("NegInf", float("-inf")),
            ("Undef", None),
        ):
            for idx in _as_list(ent.get(key)):
                if isinstance(idx, int) and 0 <= idx < len(v):
                    v[idx] = repl
        enum = enums[i] if i < len(enums) else None
        if isinstance(enum, list):
            v = [enum[x] if isinstance(x, int) and 0 <= x < len(enum) else x for x in v]
        cols.append(v)
    tcol = next(
        (
            i
            for i, f in enumerate(fields)
            if f.get("type") == "time" or str(f.get("name", "")).lower() in _TIME_NAMES
        ),
        None,
    )
    if tcol is None:
        rej.reject(f"{where}: frame without a time field", where=where)
        return 0, 0
    ts_us: list[int | None] = []
    tnanos = nanos[tcol] if tcol < len(nanos) and isinstance(nanos[tcol], list) else None
    for j, t in enumerate(cols[tcol]):
        if isinstance(t, int | float) and not isinstance(t, bool):
            try:
                us = round(t * 1000)
                if tnanos is not None and j < len(tnanos) and isinstance(tnanos[j], int):
                    us += tnanos[j] // 1000
                ts_us.append(_check_us(us))
            except (ValueError, OverflowError):
                ts_us.append(None)
        elif isinstance(t, str):
            try:
                ts_us.append(_TimeParser("UTC")(t))
            except ValueError:
                ts_us.append(None)
        else:
            ts_us.append(None)
    frame_name = schema.get("name") if isinstance(schema.get("name"), str) else None
    added = missing = 0
    for i, f in enumerate(fields):
        if i == tcol:
            continue
        ftype = f.get("type")
        if ftype not in (None, "number"):
            continue  # string/other fields (e.g. a table's label columns) carry no samples
        metric, labels = _field_series(f, frame_name)
        sid = col.series_id(metric, labels)
        for j, v in enumerate(cols[i]):
            here = (
                f"{where}.data.values[{i}][{j}]" if columnar else f"{where}.fields[{i}].values[{j}]"
            )
            if v is None:
                missing += 1
                continue
            t = ts_us[j] if j < len(ts_us) else None
            if t is None:
                rej.reject(f"{here}: no valid time for this value", where=here)
                continue
            if isinstance(v, bool) or not isinstance(v, int | float | str):
                rej.reject(f"{here}: not a number: {v!r}", where=here)
                continue
            try:
                value = float(v) if not isinstance(v, str) else _parse_float(v)
            except (ValueError, OverflowError) as exc:  # OverflowError: an int over 1e308
                rej.reject(f"{here}: {exc}", where=here)
                continue
            col.add(sid, t, value, src, index)
            added += 1
    return added, missing


def _as_list(x: Any) -> list[Any]:
    """A JSON value that should be a list (or null); anything else counts as empty."""
    return x if isinstance(x, list) else []


def _field_series(
    field: dict[str, Any], frame_name: str | None
) -> tuple[str | None, dict[str, str]]:
    raw_labels = field.get("labels")
    if not isinstance(raw_labels, dict):
        raw_labels = {}
    labels = {str(k): str(v) for k, v in raw_labels.items() if v is not None}
    metric = labels.pop("__name__", None)
    name = str(field.get("name") or "")
    if metric is None and name.lower() != "value" and _METRIC_NAME_RE.match(name):
        metric = name
    if metric is None and not labels:
        config = field.get("config")
        if not isinstance(config, dict):
            config = {}
        display = config.get("displayNameFromDS") or config.get("displayName") or frame_name
        display = display or name
        m, lab = parse_display_name(str(display))
        return m, lab
    return metric, labels
