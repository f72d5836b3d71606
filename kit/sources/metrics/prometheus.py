"""Read Prometheus metric exports into one long polars frame, and map CoreDNS metric names across versions.

Users bring metrics as exports, not as a live Prometheus: an HTTP API answer saved with ``curl``,
a ``/metrics`` scrape (or many, concatenated with timestamps), a Grafana CSV or DataFrame JSON.
:func:`read_metrics` turns every one of them into the same frame (schema below), so
``kit.promql`` and ``kit.charts`` work on any of them. Grafana parsing lives in ``kit.sources.metrics.grafana``.

The frame
---------
Columns, in this order: ``ts``, ``metric``, ``value``, ``source`` (:data:`METRICS_BASE_SCHEMA`),
then one String column per label name, sorted alphabetically. A series is identified by
``metric`` plus all label columns; rows are ordered by series (in order of first appearance in
the input) and then by ``ts``.

Decisions (shared with ``kit.promql``)
--------------------------------------
- An empty label value (``view=""``) is the same as an absent label in Prometheus: stored as null.
- ``le`` and ``quantile`` stay strings exactly as written (``"1"``, ``"1.0"``, ``"+Inf"``):
  compare them numerically.
- A label whose name collides with a base column (``ts``, ``metric``, ``value``, ``source``) is
  renamed ``label_<name>`` and a :class:`~kit.errors.KitWarning` says so.
- Duplicate samples (same series and same ``ts``, possibly from different files) are resolved as
  Prometheus's scrape loop does: the TSDB keeps the first sample and refuses later ones
  ("duplicate sample for timestamp"), which are counted and logged, not fatal. So the first is
  kept and one ``KitWarning`` gives the number dropped, how many had a different value, and
  where the first one was. This does not depend on ``strict`` (the input is well-formed).
- A classic histogram (``*_bucket`` series with ``le``) that has no ``le="+Inf"`` bucket is kept,
  and one ``KitWarning`` names the series (``histogram_quantile`` needs ``+Inf``).
- Bad input: ``strict=True`` (default) raises :class:`~kit.errors.InputFormatError` at the first
  malformed unit (text line, JSON point, CSV cell or row) naming the file and line (for JSON also
  the JSON path, e.g. ``data.result[3].values[17]``); ``strict=False`` skips such units and emits
  one ``KitWarning`` per file with their count and the first one's line. Native-histogram
  samples of the API (``"histogram"``/``"histograms"``) give ``<name>_count`` and ``<name>_sum``
  (as ``histogram_count()``/``histogram_sum()`` would); their buckets are not converted, and one
  warning counts them.
- An export with no samples (empty file, only ``# HELP``/``# TYPE``, ``[]``, a CSV header
  alone) gives an empty frame with :data:`METRICS_BASE_SCHEMA`; a file that is not a metrics
  export at all raises ``InputFormatError``.
- Grafana exports may add three label columns: ``series`` (a display name that is not a series
  selector, e.g. a legend), ``unit`` (the unit of "formatted data" cells, after converting time
  units to ``s`` and byte units to ``B``) and ``column`` (1-based column position, only when two
  columns have the same name).

CoreDNS metric names
--------------------
:func:`normalize_metric_names` (per name: :func:`canonical_metric`) maps every CoreDNS era to
today's names so one query works on any export (formats.md §4.2-4.4):

=========================================================  ==========================================================
exported name (version)                                    today's name
=========================================================  ==========================================================
``coredns_dns_request_count_total`` (≤ 1.6)                 ``coredns_dns_requests_total``
``coredns_dns_response_rcode_count_total`` (≤ 1.6)          ``coredns_dns_responses_total``
``coredns_dns_request_do_count_total`` (≤ 1.6)              ``coredns_dns_do_requests_total``
``coredns_panic_count_total`` (≤ 1.6)                       ``coredns_panics_total``
``coredns_cache_size`` (≤ 1.6)                              ``coredns_cache_entries``
``coredns_forward_request_count_total`` (1.0.6-1.6)         ``coredns_forward_requests_total`` (no 1.11 name, kept)
``coredns_forward_response_rcode_count_total`` (1.0.6-1.6)  ``coredns_forward_responses_total`` (no 1.11 name, kept)
``coredns_forward_request_duration_seconds_*`` (≤ 1.10)     ``coredns_proxy_request_duration_seconds_*`` + ``proxy_name="forward"``
``coredns_forward_healthcheck_failure(s)_(count_)total``    ``coredns_proxy_healthcheck_failures_total`` + ``proxy_name="forward"``
``coredns_forward_conn_cache_{hits,misses}_total`` (≤ 1.10)  ``coredns_proxy_conn_cache_{hits,misses}_total`` + ``proxy_name="forward"``
``coredns_proxy_request_*{proxy_proto=...}`` (proxy ≤ 1.4)  same name + ``proxy_name="proxy"``
other 1.7.0 renames (acl, autopath, grpc, reload, ...)     see :data:`COREDNS_RENAMES`
``coredns_dns_request_type_count_total`` (≤ 1.6)            unchanged: it is the ``type`` label of requests_total now
=========================================================  ==========================================================

:func:`coredns_versions` tells, per file, which CoreDNS versions the names and labels allow (and
``coredns_build_info{version}`` when scraped); call it before normalising.
"""

from __future__ import annotations

import json
import logging
import math
import re
import warnings
from array import array
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np
import polars as pl

from kit.errors import InputFormatError, KitWarning
from kit.schema import check_schema
from kit.sources._io import Source, expand_sources, read_raw
from kit.sources.metrics._common import (
    _MAX_SECONDS,
    _check_us,
    _Collector,
    _json_loads,
    _LineError,
    _load_json,
    _parse_float,
    _parse_sample_line,
    _Points,
    _Rejects,
)

__all__ = [
    "COREDNS_PROXY_RENAMES",
    "COREDNS_RENAMES",
    "FORMATS",
    "METRICS_BASE_SCHEMA",
    "canonical_metric",
    "coredns_versions",
    "normalize_metric_names",
    "read_metrics",
]

log = logging.getLogger(__name__)

METRICS_BASE_SCHEMA = pl.Schema(
    [
        ("ts", pl.Datetime("us", "UTC")),
        ("metric", pl.String()),
        ("value", pl.Float64()),
        ("source", pl.String()),
    ]
)
"""The first four columns of every :func:`read_metrics` frame; label columns follow."""

Format = Literal["auto", "api-json", "text", "openmetrics", "grafana-csv", "grafana-json"]

FORMATS: dict[str, str] = {
    "api-json": "Prometheus HTTP API answer of /api/v1/query or /api/v1/query_range (vector, "
    "matrix or scalar), with or without the status/data envelope, or the bare result list",
    "text": "Prometheus text exposition 0.0.4 (a /metrics scrape); optional timestamps are "
    "integer milliseconds",
    "openmetrics": "OpenMetrics 1.0 text; optional timestamps are float seconds; '# EOF' ends a "
    "scrape (several scrapes may be concatenated)",
    "grafana-csv": "Grafana 'Download CSV' (series joined by time, one frame, formatted data, "
    "Excel mode) and legacy 'Export CSV' (series as columns or Series;Time;Value rows)",
    "grafana-json": "Grafana DataFrame JSON (Inspect > JSON > DataFrame JSON), one frame or a list, "
    "also inside a query response ({'results': {'A': {'frames': [...]}}} or "
    "{'status': 200, 'frames': [...]}) or panel data ({'series': [...]} with inline values)",
}
"""Accepted values of ``read_metrics(fmt=...)`` (besides ``"auto"``) and what each one reads."""

_RESERVED = tuple(METRICS_BASE_SCHEMA)


# --------------------------------------------------------------------------------------------
# Building the frame


def _build_frame(col: _Collector) -> pl.DataFrame:
    """Turn collected samples into the documented frame: dedupe, attach labels, sort, check."""
    label_names = sorted({k for _, labels in col.series for k in labels})
    renamed: dict[str, str] = {}
    for k in label_names:
        if k in _RESERVED:
            new = f"label_{k}"
            while new in label_names or new in renamed.values():
                new = f"label_{new}"
            renamed[k] = new
    if renamed:
        warnings.warn(
            f"labels named like base columns were renamed: {renamed}", KitWarning, stacklevel=3
        )
    out_names = sorted(renamed.get(k, k) for k in label_names)
    back = {renamed.get(k, k): k for k in label_names}

    samples = pl.DataFrame(
        {
            "sid": _series(col.sid, np.uint32, pl.UInt32),
            "ts": _series(col.ts_us, np.int64, pl.Int64).cast(pl.Datetime("us", "UTC")),
            "value": _series(col.value, np.float64, pl.Float64),
            "src": _series(col.src, np.uint32, pl.UInt32),
            "where": _series(col.where, np.int64, pl.Int64),
        }
    ).with_row_index("_row")
    # the frame holds its own copy now: free the arrays
    col.sid, col.ts_us, col.value = array("I"), array("q"), array("d")
    col.src, col.where = array("I"), array("q")
    # most exports come series by series, in time order: then there is nothing to sort
    in_order = samples.select(
        (
            (pl.col("sid").diff() > 0)
            | ((pl.col("sid").diff() == 0) & (pl.col("ts").diff() >= pl.duration(microseconds=0)))
        )
        .fill_null(True)
        .all()
    ).item()
    if not in_order:
        samples = samples.sort(["sid", "ts", "_row"])
    samples = _dedupe(samples, col).select("sid", "ts", "value", "src")  # frees the rest
    # Labels are per series: gather them by series id (no join, so any label name is safe).
    sid = samples["sid"]
    columns: dict[str, pl.Series] = {
        "ts": samples["ts"],
        "metric": pl.Series([n for n, _ in col.series], dtype=pl.String).gather(sid),
        "value": samples["value"],
        "source": pl.Series(col.sources, dtype=pl.String).gather(samples["src"]),
    }
    for name in out_names:
        key = back[name]
        values = pl.Series([lab.get(key) for _, lab in col.series], dtype=pl.String)
        columns[name] = values.gather(sid)
    df = pl.DataFrame({k: v.alias(k) for k, v in columns.items()})
    check_schema(df, METRICS_BASE_SCHEMA, name="metrics frame")
    _warn_histograms_without_inf(df, out_names)
    return df


def _series(values: array[Any], np_type: type, dtype: pl.DataType | type[pl.DataType]) -> pl.Series:
    """A polars Series copied from a typed array (through a zero-copy numpy view)."""
    if not len(values):
        return pl.Series([], dtype=dtype)
    return pl.Series(np.frombuffer(values, dtype=np_type).copy(), dtype=dtype)


def _dedupe(samples: pl.DataFrame, col: _Collector) -> pl.DataFrame:
    """Keep the first sample of each (series, ts) and warn, as Prometheus's scrape loop does.

    Prometheus's TSDB refuses a second sample for a series and timestamp ("duplicate sample for
    timestamp"); the scrape loop counts it (``prometheus_target_scrapes_sample_duplicate_timestamp_total``),
    logs a warning and keeps ingesting the rest. So do we: never an error, always one warning.

    ``samples`` is sorted by ``sid``, ``ts``, ``_row`` (file order), so duplicates are neighbours
    and the first of each run is the one to keep (no hash table over all samples).
    """
    if samples.is_empty():
        return samples
    same = (
        (pl.col("sid") == pl.col("sid").shift(1)) & (pl.col("ts") == pl.col("ts").shift(1))
    ).fill_null(False)
    drop = samples.select(same).to_series()
    if not drop.any():
        return samples
    dropped = samples.filter(drop)
    keys = dropped.select("sid", "ts").unique()
    groups = (
        samples.join(keys, on=["sid", "ts"], how="semi")
        .group_by("sid", "ts")
        .agg(pl.col("value").n_unique().alias("n_values"))
    )
    conflicting = groups.filter(pl.col("n_values") > 1)
    first = dropped.sort("_row").row(0, named=True)  # the first dropped one in file order
    name, labels = col.series[first["sid"]]
    warnings.warn(
        f"{dropped.height} duplicate sample(s) (same series and timestamp) dropped, keeping the "
        f"first as Prometheus does; {conflicting.height} duplicated (series, ts) had different "
        f"values; first dropped one at {_where(col, first)}: {_series_repr(name, labels)} at "
        f"{first['ts'].isoformat()}. Concatenated scrapes need timestamps",
        KitWarning,
        stacklevel=4,
    )
    return samples.filter(~drop)


def _where(col: _Collector, row: dict[str, Any]) -> str:
    path = col.source_paths[row["src"]]
    if col.by_line[row["src"]]:
        return f"{path}:{row['where']}"
    return f"{path} series #{row['where']}"


def _warn_histograms_without_inf(df: pl.DataFrame, label_cols: list[str]) -> None:
    if "le" not in label_cols or df.is_empty():
        return
    others = [c for c in label_cols if c != "le"]
    buckets = df.filter(pl.col("le").is_not_null() & pl.col("metric").str.ends_with("_bucket"))
    if buckets.is_empty():
        return
    # numerically, as Prometheus does: "+Inf", "Inf", "+inf", "infinity" are all the +Inf bucket
    is_inf = pl.col("le").str.strip_chars().cast(pl.Float64, strict=False) == float("inf")
    bad = (
        buckets.group_by(["metric", *others], maintain_order=True)
        .agg(is_inf.any().alias("has_inf"))
        .filter(~pl.col("has_inf"))
    )
    if bad.is_empty():
        return
    names = []
    for row in bad.head(5).iter_rows(named=True):
        labels = {k: row[k] for k in others if row[k] is not None}
        names.append(_series_repr(row["metric"], labels))
    more = f" and {bad.height - 5} more" if bad.height > 5 else ""
    warnings.warn(
        f'{bad.height} histogram(s) have no le="+Inf" bucket, so histogram_quantile cannot use '
        f"them as Prometheus would: {', '.join(names)}{more}",
        KitWarning,
        stacklevel=3,
    )


def _series_repr(name: str | None, labels: dict[str, str]) -> str:
    inner = ", ".join(f'{k}="{_escape(v)}"' for k, v in sorted(labels.items()))
    return f"{name or ''}{{{inner}}}"


def _escape(v: str) -> str:
    return v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


# --------------------------------------------------------------------------------------------
# Numbers and times


def _seconds_to_us(t: float) -> int:
    """Float seconds (millisecond precision, as Prometheus stores them) to integer microseconds."""
    if not math.isfinite(t):
        raise ValueError(f"timestamp is not finite: {t!r}")
    if abs(t) >= _MAX_SECONDS:
        raise ValueError(
            f"timestamp {t!r} is not in seconds (it would be after the year 5000); "
            "milliseconds where seconds are expected?"
        )
    return _check_us(round(t * 1000) * 1000)


def _default_scrape_time(path: Path, scrape_time: datetime | str | None) -> int:
    if scrape_time is None:
        return round(path.stat().st_mtime * 1000) * 1000
    return _datetime_to_us(scrape_time)


def _datetime_to_us(t: datetime | str) -> int:
    if isinstance(t, str):
        t = datetime.fromisoformat(t.replace("Z", "+00:00"))
    if t.tzinfo is None:
        raise ValueError(f"scrape_time must be timezone-aware (e.g. ...+00:00), got {t!r}")
    delta = t.astimezone(UTC) - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


# --------------------------------------------------------------------------------------------
# Decoding and sniffing


def _decode(data: bytes, path: Path) -> str:
    """Bytes to text: UTF-8 (BOM stripped) or UTF-16 with BOM (Grafana's Excel mode)."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError as exc:
            raise InputFormatError(
                "UTF-16 text (it starts with a UTF-16 byte-order mark) does not decode",
                path=path,
                offset=exc.start,
            ) from exc
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise InputFormatError(
            f"not UTF-8 text (invalid byte at offset {exc.start})",
            path=path,
            line=line,
            excerpt=data[max(0, exc.start - 40) : exc.start + 40].decode("utf-8", "replace"),
            hint="Metric exports are UTF-8 text (or UTF-16 with a BOM); is this a binary file?",
        ) from exc
    return text.removeprefix("\ufeff")


_CSV_HEADER_RE = re.compile(r'\s*"?(time|series)"?\s*[,;\t]', re.IGNORECASE)
_EXPOSITION_LINE_RE = re.compile(r"(?:[a-zA-Z_:][a-zA-Z0-9_:]*(?:\{.*\})?|\{.*\})[ \t]+\S")
_JSON_START_RE = re.compile(r'(?:\{\s*(?:"|\})|\[\s*(?:\{|\[|\]))')


def _sniff(text: str, path: Path) -> tuple[str, Any]:
    """Guess the format from the content (never from the file name).

    Returns the format and, for JSON, the parsed document (so it is parsed once).
    """
    head = text.lstrip()
    if not head:
        return "empty", None
    if _JSON_START_RE.match(head):
        try:
            doc = _json_loads(text)
        except json.JSONDecodeError:
            return "api-json", None  # the JSON reader reports the position
        except (RecursionError, ValueError):
            doc = _load_json(text, path)  # raises the InputFormatError
        return _sniff_json(doc), doc
    first = head.split("\n", 1)[0].strip()
    if first.lower().startswith("sep=") or _CSV_HEADER_RE.match(first):
        return "grafana-csv", None
    if first.startswith("#") or _EXPOSITION_LINE_RE.match(first):
        if re.search(r"^# (?:EOF\s*$|UNIT )", text, re.MULTILINE):
            return "openmetrics", None
        return "text", None
    if _looks_like_csv(head):
        return "grafana-csv", None
    raise InputFormatError(
        "not a metrics export the kit recognises",
        path=path,
        line=1,
        excerpt=first,
        hint="Expected Prometheus API JSON, text exposition/OpenMetrics, Grafana CSV or "
        f"Grafana DataFrame JSON; pass fmt= one of {sorted(FORMATS)}",
    )


def _looks_like_csv(head: str) -> bool:
    """A delimiter used the same number of times (outside quotes) on the first lines; no log marker."""
    lines = [ln for ln in head.splitlines()[:5] if ln.strip()]
    if not lines or re.search(r"\[(?:INFO|ERROR|WARNING|DEBUG|FATAL)\]", lines[0]):
        return False
    for d in ",;\t":
        counts = {len(re.sub(r'"[^"]*"', "", ln).split(d)) - 1 for ln in lines}
        if len(counts) == 1 and counts.pop() > 0:
            return True
    return False


def _sniff_json(doc: Any) -> str:
    if isinstance(doc, dict):
        # Grafana's query response also has a "status" (an HTTP code, not "success"/"error")
        if any(k in doc for k in ("frames", "results", "schema", "fields", "series")):
            return "grafana-json"
        if isinstance(doc.get("status"), str) or "resultType" in doc or "data" in doc:
            return "api-json"
        return "grafana-json"
    if isinstance(doc, list):
        first = next((x for x in doc if isinstance(x, dict)), None)
        if first is None or "metric" in first or "values" in first or "value" in first:
            return "api-json"
        return "grafana-json"
    return "api-json"


# --------------------------------------------------------------------------------------------
# Prometheus HTTP API JSON


def _read_api_json(text: str, path: Path, col: _Collector, *, strict: bool, doc: Any = None) -> int:
    """Read a Prometheus HTTP API answer; returns the number of samples added."""
    if doc is None:
        doc = _load_json(text, path)
    rej = _Rejects(path, strict=strict, unit="sample", json_text=text)
    src = col.new_source(path, by_line=False)
    result_type: str | None = None
    where = "result"
    if isinstance(doc, dict) and ("status" in doc or "data" in doc):
        status = doc.get("status")
        if status == "error":
            raise InputFormatError(
                f"the Prometheus API answered with an error: {doc.get('errorType')}: "
                f"{doc.get('error')}",
                path=path,
                hint="Fix the query and export again",
            )
        if status not in (None, "success"):
            raise InputFormatError(f"unknown API status {status!r}", path=path, line=1)
        warns = doc.get("warnings")
        for w in warns if isinstance(warns, list) else []:
            log.warning("%s: the Prometheus API answer carries a warning: %s", path, w)
        doc = doc.get("data")
        where = "data.result"
    if isinstance(doc, dict):
        if "result" not in doc:
            raise InputFormatError(
                "JSON object without 'result': not a Prometheus API answer",
                path=path,
                hint=f"Pass fmt= one of {sorted(FORMATS)} if it is another export",
            )
        result_type = doc.get("resultType")
        result = doc["result"]
    else:
        result = doc
    if result_type in ("scalar", "string"):
        if result_type == "string":
            raise InputFormatError(
                "the API answer is a string result, not metric samples", path=path
            )
        added = _json_point(result, where, None, {}, path, col, src, rej, 0)
        rej.report()
        return added
    if result_type not in (None, "vector", "matrix"):
        raise InputFormatError(f"unknown resultType {result_type!r}", path=path)
    if not isinstance(result, list):
        raise InputFormatError(
            f"{where} is a {type(result).__name__}, expected a list of series", path=path
        )
    added = 0
    for i, item in enumerate(result):
        here = f"{where}[{i}]"
        if not isinstance(item, dict):
            rej.reject(f"{here} is not an object", where=here)
            continue
        metric = item.get("metric", {})
        if not isinstance(metric, dict) or not all(
            isinstance(k, str) and k and isinstance(v, str) for k, v in metric.items()
        ):
            rej.reject(
                f"{here}.metric is not an object of string labels with non-empty names",
                where=here,
            )
            continue
        labels = dict(metric)
        name = labels.pop("__name__", None)
        if "values" in item and isinstance(item["values"], _Points):
            pts: _Points = item["values"]
            item["values"] = None  # free each series once it is in the collector
            sid = col.series_id(name, labels)
            if pts.fast_j is None:
                col.add_block(sid, pts.ts_us, pts.value, src, i)
                added += len(pts.ts_us)
            else:
                k, n_fast = 0, len(pts.ts_us)
                for j, p in [*pts.odd, (len(pts), None)]:
                    while k < n_fast and pts.fast_j[k] < j:
                        col.add(sid, pts.ts_us[k], pts.value[k], src, i)
                        added += 1
                        k += 1
                    if p is not None or j < len(pts):
                        added += _json_point(
                            p, f"{here}.values[{j}]", name, labels, path, col, src, rej, i
                        )
        elif "values" in item:
            points = item["values"]
            if not isinstance(points, list):
                rej.reject(f"{here}.values is not a list", where=here)
                continue
            sid = col.series_id(name, labels)
            for j, p in enumerate(points):
                try:  # fast path for the well-formed [number, "string"] pair
                    t, v = p
                    if type(t) not in (int, float) or type(v) is not str:
                        raise TypeError
                    if not -_MAX_SECONDS < t < _MAX_SECONDS:
                        raise ValueError
                    ts_us = round(t * 1000) * 1000
                    value = _parse_float(v)
                except (ValueError, TypeError, OverflowError):
                    added += _json_point(
                        p, f"{here}.values[{j}]", name, labels, path, col, src, rej, i
                    )
                    continue
                col.add(sid, ts_us, value, src, i)
                added += 1
        if "value" in item:
            added += _json_point(
                item["value"], f"{here}.value", name, labels, path, col, src, rej, i
            )
        hists = item.get("histograms")
        hist_points = list(hists) if isinstance(hists, list) else []
        if "histogram" in item:
            hist_points.append(item["histogram"])
        n_hist = len(hist_points)
        for j, hp in enumerate(hist_points):
            added += _native_histogram_point(
                hp, f"{here}.histograms[{j}]", name, labels, col, src, rej, i
            )
        if "values" not in item and "value" not in item and not n_hist:
            rej.reject(f"{here} has neither 'value' nor 'values'", where=here)
    rej.report()
    log.info(
        "%s: Prometheus API JSON (%s): %d series, %d samples, %d rejected",
        path,
        result_type or "bare result list",
        len(result),
        added,
        rej.count,
    )
    return added


def _json_point(
    p: Any,
    here: str,
    name: str | None,
    labels: dict[str, str],
    path: Path,
    col: _Collector,
    src: int,
    rej: _Rejects,
    index: int,
) -> int:
    if not isinstance(p, list) or len(p) != 2:
        rej.reject(f'{here} is not a [time, "value"] pair', excerpt=_short(p), where=here)
        return 0
    t, v = p
    try:
        if isinstance(t, bool):
            raise ValueError("boolean time")
        ts = _seconds_to_us(float(t) if isinstance(t, int | float) else float(_parse_float(t)))
        if isinstance(v, bool):
            raise ValueError("boolean value")
        value = float(v) if isinstance(v, int | float) else _parse_float(v)
    except (ValueError, TypeError, OverflowError) as exc:
        rej.reject(f"{here}: {exc}", excerpt=_short(p), where=here)
        return 0
    col.add(col.series_id(name, labels), ts, value, src, index)
    return 1


def _native_histogram_point(
    p: Any,
    here: str,
    name: str | None,
    labels: dict[str, str],
    col: _Collector,
    src: int,
    rej: _Rejects,
    index: int,
) -> int:
    """A native-histogram sample ``[t, {"count", "sum", "buckets"}]``: its count and sum are read
    as ``<name>_count`` and ``<name>_sum`` (what ``histogram_count()``/``histogram_sum()`` give);
    the buckets are not converted and the sample is counted in ``col.native_histograms``."""
    col.native_histograms += 1
    if not isinstance(p, list) or len(p) != 2 or not isinstance(p[1], dict):
        rej.reject(f'{here} is not a [time, {{"count", "sum", ...}}] pair', where=here)
        return 0
    t, h = p
    try:
        if isinstance(t, bool) or not isinstance(t, int | float | str):
            raise ValueError(f"bad time {t!r}")
        ts = _seconds_to_us(float(t) if not isinstance(t, str) else _parse_float(t))
        count = _parse_float(str(h["count"]))
        total = _parse_float(str(h["sum"]))
    except (KeyError, ValueError, TypeError, OverflowError) as exc:
        rej.reject(f"{here}: {exc}", excerpt=_short(p), where=here)
        return 0
    if name is None:
        return 0  # no name to derive <name>_count from; counted as not read
    col.add(col.series_id(f"{name}_count", labels), ts, count, src, index)
    col.add(col.series_id(f"{name}_sum", labels), ts, total, src, index)
    return 2


def _short(x: Any) -> str:
    s = json.dumps(x) if not isinstance(x, str) else x
    return s[:120]


# --------------------------------------------------------------------------------------------
# Text exposition 0.0.4 and OpenMetrics

_TS_MS_RE = re.compile(r"-?[0-9]+\Z")
_TYPES = {
    "counter",
    "gauge",
    "histogram",
    "summary",
    "untyped",
    "unknown",
    "gaugehistogram",
    "stateset",
    "info",
}


def _read_text(
    text: str,
    path: Path,
    col: _Collector,
    *,
    openmetrics: bool,
    scrape_us: int | None,
    strict: bool,
) -> int:
    """Read text exposition 0.0.4 or OpenMetrics; returns the number of samples added."""
    src = col.new_source(path, by_line=True)
    rej = _Rejects(path, strict=strict, unit="line")
    added = comments = blanks = 0
    scrapes = 1
    fmt_name = "OpenMetrics" if openmetrics else "text exposition 0.0.4"
    series_cache: dict[str, int] = {}
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # the final newline ends the last line; it does not start a blank one
    for no, raw in enumerate(lines, start=1):
        line = raw.rstrip("\r")
        if not line.strip():
            blanks += 1
            continue
        if line[0] == "#":
            comments += 1
            parts = line.split(None, 3)
            if len(parts) >= 2 and parts[1] == "EOF" and len(parts) == 2:
                scrapes += 1
            elif (
                len(parts) >= 2
                and parts[1] == "TYPE"
                and (len(parts) != 4 or parts[3].strip().lower() not in _TYPES)
            ):
                rej.reject(
                    f"bad # TYPE line (expected '# TYPE name {{{'|'.join(sorted(_TYPES))}}}')",
                    line=no,
                    excerpt=line,
                )
            continue
        try:
            # Fast path: the series text (name and braces) repeats in every scrape; look it up.
            # The closing brace of the label set is the last '}' of the line (values and
            # timestamps hold none); a line with an exemplar misses and is parsed in full.
            brace = line.rfind("}")
            key = line[: brace + 1] if brace >= 0 else line.split(None, 1)[0]
            sid = series_cache.get(key)
            if sid is not None:
                rest = line[len(key) :]
            else:
                name, labels, rest = _parse_sample_line(line)
                if not name:
                    raise _LineError("the sample has no metric name")
                if "__name__" in labels:
                    raise _LineError("label __name__ inside braces next to a metric name")
                sid = col.series_id(name, labels)
                series_cache[line[: len(line) - len(rest)]] = sid
            if rest and rest[0] not in " \t":
                raise _LineError("expected a blank between the series and its value")
            body, _, _exemplar = rest.partition(" # ")
            tokens = body.split()
            if not tokens or len(tokens) > 2:
                raise _LineError(
                    "expected 'value [timestamp]' after the series"
                    if tokens
                    else "no value after the series"
                )
            value = _parse_float(tokens[0])
            if len(tokens) == 2:
                if openmetrics:
                    ts = _seconds_to_us(_parse_float(tokens[1]))
                elif _TS_MS_RE.match(tokens[1]):
                    ts = _check_us(int(tokens[1]) * 1000)
                else:
                    raise _LineError(
                        f"timestamp {tokens[1]!r} is not integer milliseconds (text 0.0.4); "
                        "OpenMetrics uses float seconds: pass fmt='openmetrics' if this is one"
                    )
            elif scrape_us is None:
                raise _LineError("sample without timestamp and no scrape time")
            else:
                ts = scrape_us
        except (_LineError, ValueError) as exc:
            rej.reject(f"malformed {fmt_name} sample: {exc}", line=no, excerpt=line)
            continue
        col.add(sid, ts, value, src, no)
        added += 1
    rej.report()
    log.info(
        "%s: %s: %d samples, %d comment/metadata lines, %d blank lines, %d rejected, %d scrape(s)",
        path,
        fmt_name,
        added,
        comments,
        blanks,
        rej.count,
        scrapes if openmetrics else 1,
    )
    return added


# --------------------------------------------------------------------------------------------
# Public loader


def read_metrics(
    source: Source,
    *,
    fmt: Format = "auto",
    scrape_time: datetime | str | None = None,
    strict: bool = True,
    csv_timezone: str = "UTC",
) -> pl.DataFrame:
    """Read metric exports (Prometheus API JSON, text exposition, OpenMetrics, Grafana CSV/JSON).

    Parameters
    ----------
    source
        A file, a list of files, a glob or a directory (gzip is read transparently). Several files
        are combined into one frame; each row's ``source`` names its file.
    fmt
        ``"auto"`` (default) sniffs each file's *content*: JSON with ``frames``/``results``/
        ``schema``/``fields``/``series`` is Grafana DataFrame JSON, other JSON (``status``,
        ``data``, ``resultType``, a list of ``metric`` objects) is the Prometheus API; a
        first line ``sep=...`` or a ``Time``/``Series`` header is Grafana CSV; text containing a
        ``# EOF`` or ``# UNIT`` line is OpenMetrics; other text is exposition 0.0.4. Or force one
        of :data:`FORMATS`: ``"api-json"``, ``"text"``, ``"openmetrics"``, ``"grafana-csv"``,
        ``"grafana-json"``.
    scrape_time
        Time of samples that carry no timestamp (a plain ``/metrics`` scrape): an aware
        ``datetime`` or an ISO-8601 string with offset. Default: the file's modification time
        (rounded to the millisecond).
    strict
        ``True`` (default): the first malformed unit (text line, JSON point, CSV cell or row)
        raises :class:`~kit.errors.InputFormatError` naming file and line. ``False``: such units
        are skipped and each file emits one :class:`~kit.errors.KitWarning` with the count and
        the first offending line. Duplicate samples never raise (see the module notes).
    csv_timezone
        Time zone of Grafana CSV timestamps written without offset (``2020-01-01 01:00:00``,
        rendered in the browser's zone); an IANA name such as ``"Europe/Berlin"``.

    Returns
    -------
    polars.DataFrame
        One row per sample, ordered by series (first appearance) then ``ts``:

        - ``ts`` (Datetime[us, UTC]): sample time. API JSON and OpenMetrics timestamps are
          seconds with millisecond precision, 0.0.4 timestamps milliseconds; ``scrape_time``
          for samples without one. Never null.
        - ``metric`` (String): the metric name (``__name__``) as written, e.g.
          ``coredns_dns_request_duration_seconds_bucket``; null for a series without a name
          (an expression's result, a Grafana column that is not a series selector). Use
          :func:`normalize_metric_names` to map old CoreDNS names to today's.
        - ``value`` (Float64): sample value, unitless as exported (seconds for ``*_seconds``);
          NaN, +Inf and -Inf preserved.
        - ``source`` (String): file name the sample came from.
        - one String column per label name, sorted alphabetically: the label value (escapes
          resolved), null where the series lacks the label or has it empty. ``le`` and
          ``quantile`` are kept as written (compare numerically). Grafana exports may add
          ``series`` (a display name that is not a series selector), ``unit`` (of formatted
          values; time converted to ``s``, bytes to ``B``) and ``column`` (only for repeated
          column names).

        The first four columns are :data:`METRICS_BASE_SCHEMA`. An export with no samples gives
        an empty frame with that schema.

    Raises
    ------
    FileNotFoundError
        ``source`` names no existing file.
    InputFormatError
        The file is not a metrics export, or a unit is malformed (``strict=True``), or the API
        answer is an error, or a Grafana CSV has no time column.
    ValueError
        ``fmt`` is unknown, or ``scrape_time`` is naive.

    Warns
    -----
    KitWarning
        Skipped malformed units (``strict=False``), dropped duplicate samples, histograms without
        a ``+Inf`` bucket, native-histogram samples (buckets not read), renamed labels.
    """
    if fmt != "auto" and fmt not in FORMATS:
        raise ValueError(f"fmt must be 'auto' or one of {sorted(FORMATS)}, not {fmt!r}")
    if isinstance(scrape_time, datetime | str):
        _datetime_to_us(scrape_time)  # validate early
    paths = expand_sources(source, what="metrics export")
    col = _Collector()
    for path in paths:
        raw = read_raw(path)
        if raw.notes:
            msg = f"{path}: damaged gzip: {'; '.join(raw.notes)}"
            if strict:
                raise InputFormatError("damaged gzip stream: " + "; ".join(raw.notes), path=path)
            warnings.warn(msg, KitWarning, stacklevel=2)
        text = _decode(raw.data, path)
        del raw  # the bytes are not needed once decoded (a large export is held once)
        kind, doc = _sniff(text, path) if fmt == "auto" else (fmt, None)
        log.debug("%s: reading as %s", path, kind)
        if kind == "empty":
            col.new_source(path, by_line=True)
            log.info("%s: empty export, no samples", path)
        elif kind == "api-json":
            _read_api_json(text, path, col, strict=strict, doc=doc)
        elif kind in ("text", "openmetrics"):
            scrape_us = _default_scrape_time(path, scrape_time)
            _read_text(
                text,
                path,
                col,
                openmetrics=kind == "openmetrics",
                scrape_us=scrape_us,
                strict=strict,
            )
        elif kind == "grafana-csv":
            from kit.sources.metrics import grafana

            grafana.read_csv_into(text, path, col, strict=strict, timezone=csv_timezone)
        else:
            from kit.sources.metrics import grafana

            grafana.read_json_into(text, path, col, strict=strict, doc=doc)
        del text, doc  # free this file's text and document before the next one
    if col.native_histograms:
        warnings.warn(
            f"{col.native_histograms} native-histogram sample(s): only their count and sum were "
            "read (as <name>_count and <name>_sum), their buckets were not; for quantiles export "
            "the classic _bucket series (always_scrape_classic_histograms)",
            KitWarning,
            stacklevel=2,
        )
    df = _build_frame(col)
    log.info("read %d samples of %d series from %d file(s)", df.height, len(col.series), len(paths))
    return df


# --------------------------------------------------------------------------------------------
# CoreDNS metric names across versions

COREDNS_RENAMES: dict[str, str] = {
    # CoreDNS 1.7.0 (2020-06-15, notes/coredns-1.7.0.md "Metric Changes", PR #3776):
    # "We mostly dropped `count` from `_total` metrics names".
    "coredns_request_block_count_total": "coredns_dns_blocked_requests_total",
    "coredns_request_allow_count_total": "coredns_dns_allowed_requests_total",
    "coredns_dns_acl_request_block_count_total": "coredns_acl_blocked_requests_total",
    "coredns_dns_acl_request_allow_count_total": "coredns_acl_allowed_requests_total",
    "coredns_autopath_success_count_total": "coredns_autopath_success_total",
    "coredns_forward_request_count_total": "coredns_forward_requests_total",
    "coredns_forward_response_rcode_count_total": "coredns_forward_responses_total",
    "coredns_forward_healthcheck_failure_count_total": "coredns_forward_healthcheck_failures_total",
    "coredns_forward_healthcheck_broken_count_total": "coredns_forward_healthcheck_broken_total",
    "coredns_forward_max_concurrent_reject_count_total": "coredns_forward_max_concurrent_rejects_total",
    "coredns_grpc_request_count_total": "coredns_grpc_requests_total",
    "coredns_grpc_response_rcode_count_total": "coredns_grpc_responses_total",
    "coredns_panic_count_total": "coredns_panics_total",
    "coredns_dns_request_count_total": "coredns_dns_requests_total",
    "coredns_dns_request_do_count_total": "coredns_dns_do_requests_total",
    "coredns_dns_response_rcode_count_total": "coredns_dns_responses_total",
    "coredns_reload_failed_count_total": "coredns_reload_failed_total",
    "coredns_cache_size": "coredns_cache_entries",
}
"""CoreDNS 1.7.0 renames, old name -> today's name (applied before :data:`COREDNS_PROXY_RENAMES`).

Deliberately absent: ``coredns_dns_request_type_count_total`` ("is now part of
``coredns_dns_requests_total``" as its ``type`` label). Mapping it onto ``coredns_dns_requests_total``
as well would count every request twice in ``sum(...)``, so it keeps its name.
"""

COREDNS_PROXY_RENAMES: dict[str, str] = {
    # CoreDNS 1.11.0 (commit ea293da1d, #6178) moved the per-upstream metrics of *forward* into
    # plugin/pkg/proxy, named coredns_proxy_* with a proxy_name label ("forward").
    "coredns_forward_request_duration_seconds": "coredns_proxy_request_duration_seconds",
    "coredns_forward_healthcheck_failures_total": "coredns_proxy_healthcheck_failures_total",
    "coredns_forward_conn_cache_hits_total": "coredns_proxy_conn_cache_hits_total",
    "coredns_forward_conn_cache_misses_total": "coredns_proxy_conn_cache_misses_total",
}
"""CoreDNS 1.11.0 forward -> proxy renames; the mapped series get ``proxy_name="forward"``.

``coredns_forward_requests_total`` and ``coredns_forward_responses_total`` have no 1.11
counterpart of their own: the forward README replaces them with
``coredns_proxy_request_duration_seconds_count{proxy_name="forward"}`` (summed over ``rcode``),
which the mapped duration histogram already provides. Renaming them onto it would count twice, so
they keep their 1.7 names. The old *proxy* plugin (CoreDNS ≤ 1.4.0) already used the names
``coredns_proxy_request_duration_seconds`` and ``coredns_proxy_request_count_total``, with labels
``proxy_proto``/``family``; its series keep their names and get ``proxy_name="proxy"``.
"""

_HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")
_OLD_PROXY_PLUGIN = {
    "coredns_proxy_request_duration_seconds_bucket",
    "coredns_proxy_request_duration_seconds_sum",
    "coredns_proxy_request_duration_seconds_count",
    "coredns_proxy_request_count_total",
}


def canonical_metric(name: str, labels: dict[str, str] | None = None) -> tuple[str, dict[str, str]]:
    """Today's name of a CoreDNS metric, and the labels to add to its series.

    Parameters
    ----------
    name
        A metric name as exported, e.g. ``coredns_dns_request_count_total`` or
        ``coredns_forward_request_duration_seconds_bucket`` (histogram suffixes are handled).
    labels
        The series' labels, needed only to recognise the old *proxy* plugin (label
        ``proxy_proto`` and no ``proxy_name``).

    Returns
    -------
    tuple[str, dict[str, str]]
        The name after :data:`COREDNS_RENAMES` (1.7.0) and :data:`COREDNS_PROXY_RENAMES` (1.11.0),
        and the labels to add: ``{"proxy_name": "forward"}`` for renamed forward metrics,
        ``{"proxy_name": "proxy"}`` for the old proxy plugin, else ``{}``. Names that are not
        old CoreDNS names come back unchanged.
    """
    labels = labels or {}
    if name in _OLD_PROXY_PLUGIN:
        if labels.get("proxy_proto") and not labels.get("proxy_name"):
            return name, {"proxy_name": "proxy"}
        return name, {}
    name = COREDNS_RENAMES.get(name, name)
    base, suffix = name, ""
    for s in _HISTOGRAM_SUFFIXES:
        if name.endswith(s) and name[: -len(s)] in COREDNS_PROXY_RENAMES:
            base, suffix = name[: -len(s)], s
            break
    if base in COREDNS_PROXY_RENAMES:
        return COREDNS_PROXY_RENAMES[base] + suffix, {"proxy_name": "forward"}
    return name, {}


def normalize_metric_names(frame: pl.DataFrame) -> pl.DataFrame:
    """Map CoreDNS metric names of every version to today's, so one query works on any export.

    Applies :func:`canonical_metric` to every row: the 1.7.0 renames (:data:`COREDNS_RENAMES`,
    e.g. ``coredns_dns_request_count_total`` -> ``coredns_dns_requests_total``,
    ``coredns_cache_size`` -> ``coredns_cache_entries``), the 1.11.0 forward -> proxy renames
    (:data:`COREDNS_PROXY_RENAMES`, e.g. ``coredns_forward_request_duration_seconds_bucket`` ->
    ``coredns_proxy_request_duration_seconds_bucket{proxy_name="forward"}``) and the old proxy
    plugin (``proxy_name="proxy"``).

    Parameters
    ----------
    frame
        A :func:`read_metrics` frame.

    Returns
    -------
    polars.DataFrame
        The same rows and schema contract (:data:`METRICS_BASE_SCHEMA`, then sorted String label
        columns); ``metric`` renamed; a ``proxy_name`` column is added when a mapping needs it.
        The original names are not kept: keep the input frame to see them (e.g. to tell the
        CoreDNS version, formats.md Appendix A). If an export holds both an old and a new name for
        the same series and time, the first row is kept and a ``KitWarning`` says so.

    Raises
    ------
    SchemaError
        ``frame`` does not start with :data:`METRICS_BASE_SCHEMA`.
    """
    check_schema(frame, METRICS_BASE_SCHEMA, name="metrics frame")
    has_proxy_name = "proxy_name" in frame.columns
    has_proxy_proto = "proxy_proto" in frame.columns
    names = frame["metric"].drop_nulls().unique().to_list()
    rename: dict[str, str] = {}
    forward: list[str] = []
    for n in names:
        new, extra = canonical_metric(n)
        if new != n:
            rename[n] = new
        if extra.get("proxy_name") == "forward":
            forward.append(n)
    old_proxy = [n for n in names if n in _OLD_PROXY_PLUGIN]
    if not rename and not forward and not (old_proxy and has_proxy_proto):
        return frame
    metric = pl.col("metric")
    current = pl.col("proxy_name") if has_proxy_name else pl.lit(None, dtype=pl.String)
    is_old_proxy = (
        metric.is_in(old_proxy) & pl.col("proxy_proto").is_not_null()
        if old_proxy and has_proxy_proto
        else pl.lit(False)
    )
    proxy_name = (
        pl.when(metric.is_in(forward) & current.is_null())
        .then(pl.lit("forward"))
        .when(is_old_proxy & current.is_null())
        .then(pl.lit("proxy"))
        .otherwise(current)
    )
    out = frame.with_columns(
        metric.replace(rename).alias("metric"),
        proxy_name.alias("proxy_name"),
    )
    if not has_proxy_name and out["proxy_name"].null_count() == out.height:
        out = out.drop("proxy_name")
    labels = sorted(c for c in out.columns[4:])
    out = out.select([*METRICS_BASE_SCHEMA, *labels])
    key = pl.struct(["ts", "metric", *labels])
    dup = out.select(key.is_duplicated()).to_series()
    if dup.any():
        keep = out.select(key.is_first_distinct()).to_series()
        warnings.warn(
            f"{int((~keep).sum())} sample(s) had both an old and a new CoreDNS metric name for "
            "the same series and time; the first was kept",
            KitWarning,
            stacklevel=2,
        )
        out = out.filter(keep)
    log.info("normalised %d CoreDNS metric name(s): %s", len(rename), rename)
    return out


# (metric, label that must be present or None, lowest version, highest version, why)
_VERSION_FINGERPRINTS: tuple[tuple[str, str | None, str | None, str | None, str], ...] = (
    ("coredns_dns_request_count_total", None, None, "1.6.9", "pre-1.7.0 name"),
    ("coredns_dns_requests_total", None, "1.7.0", None, "1.7.0+ name"),
    ("coredns_cache_size", None, None, "1.6.9", "pre-1.7.0 name"),
    ("coredns_cache_entries", None, "1.7.0", None, "1.7.0+ name"),
    ("coredns_panic_count_total", None, None, "1.6.9", "pre-1.7.0 name"),
    ("coredns_panics_total", None, "1.7.0", None, "1.7.0+ name"),
    ("coredns_forward_request_count_total", None, "1.0.6", "1.6.9", "pre-1.7.0 forward name"),
    ("coredns_forward_requests_total", None, "1.7.0", "1.10.1", "forward counter gone in 1.11.0"),
    ("coredns_proxy_request_duration_seconds_count", "proxy_proto", None, "1.4.0", "proxy plugin"),
    ("coredns_proxy_request_duration_seconds_count", "proxy_name", "1.11.0", None, "1.11.0+ proxy"),
    ("coredns_dns_responses_total", "plugin", "1.9.0", None, "'plugin' label since 1.9.0"),
)


def _version_key(v: str) -> tuple[int, ...]:
    return tuple(int(x) for x in re.findall(r"[0-9]{1,9}", v)[:3])


def coredns_versions(frame: pl.DataFrame) -> pl.DataFrame:
    """Which CoreDNS version(s) an export comes from, per source file (formats.md Appendix A).

    Parameters
    ----------
    frame
        A :func:`read_metrics` frame (before :func:`normalize_metric_names`, which erases the
        evidence).

    Returns
    -------
    polars.DataFrame
        One row per ``source`` that holds CoreDNS metrics (``coredns_*``), sorted by source:
        ``source`` (String); ``build_info`` (String: the ``version`` labels of
        ``coredns_build_info``, comma-separated; authoritative when present, else null);
        ``min_version`` / ``max_version`` (String: the range the metric names and labels allow,
        null for an open end); ``evidence`` (String: which names/labels gave the range).
        An export mixing versions (during an upgrade) can give ``min_version > max_version``.

    Raises
    ------
    SchemaError
        ``frame`` does not start with :data:`METRICS_BASE_SCHEMA`.
    """
    check_schema(frame, METRICS_BASE_SCHEMA, name="metrics frame")
    rows = []
    coredns = frame.filter(pl.col("metric").str.starts_with("coredns_"))
    for (source,), part in coredns.group_by(["source"], maintain_order=True):
        names = set(part["metric"].unique())
        build = None
        if "version" in part.columns:
            versions = (
                part.filter(pl.col("metric") == "coredns_build_info")["version"]
                .drop_nulls()
                .unique()
            )
            build = ", ".join(sorted(versions, key=_version_key)) or None
        lo: str | None = None
        hi: str | None = None
        evidence = []
        for metric, label, vmin, vmax, why in _VERSION_FINGERPRINTS:
            if metric not in names:
                continue
            if label is not None:
                if label not in part.columns:
                    continue
                sel = part.filter((pl.col("metric") == metric) & pl.col(label).is_not_null())
                if sel.is_empty():
                    continue
            if vmin and (lo is None or _version_key(vmin) > _version_key(lo)):
                lo = vmin
            if vmax and (hi is None or _version_key(vmax) < _version_key(hi)):
                hi = vmax
            evidence.append(f"{metric}{'{' + label + '}' if label else ''}: {why}")
        rows.append(
            {
                "source": source,
                "build_info": build,
                "min_version": lo,
                "max_version": hi,
                "evidence": "; ".join(evidence),
            }
        )
    schema = {
        k: pl.String for k in ("source", "build_info", "min_version", "max_version", "evidence")
    }
    return pl.DataFrame(rows, schema=schema).sort("source")
