"""Key numbers of any supported artefact: what ``dnskit summarize`` prints.

Each file's kind is recognised from its content (:mod:`kit.sources.detect`), then the matching loader
reads it and a few numbers are taken from the frames: counts, time span, latency quantiles,
upstream errors, SYN retransmissions, forward settings. Files of no supported kind are listed as
ignored with the reason; a file whose loader fails is listed as failed with the error.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import polars as pl

from kit.errors import KitError
from kit.sources._io import walk_artefacts
from kit.stats import latency_quantiles

log = logging.getLogger(__name__)

__all__ = ["format_summary", "summarize_file", "summarize_paths"]

Summary = dict[str, Any]


def summarize_paths(paths: Sequence[str | os.PathLike[str]]) -> Summary:
    """Summarize every artefact under ``paths`` (files, globs, folders walked recursively).

    Returns
    -------
    dict
        ``{"artefacts": [...], "ignored": [...], "failed": [...]}``: one entry per file, each
        with ``path`` and ``kind``; artefacts carry ``summary`` (a dict of numbers and short
        strings), ignored ones a ``reason``, failed ones an ``error``. Plain JSON types only.

    Raises
    ------
    FileNotFoundError
        A path, glob or folder matches no file.
    """
    from kit.sources.detect import detect

    out: Summary = {"artefacts": [], "ignored": [], "failed": []}
    for path in walk_artefacts(paths):
        found = detect(path)
        kind = str(found.kind.value)
        summarizer = _SUMMARIZERS.get(kind)
        if summarizer is None:
            out["ignored"].append({"path": os.fspath(path), "kind": kind, "reason": found.reason})
            continue
        try:
            summary = summarizer(path)
        except (KitError, ValueError, OSError) as exc:
            log.warning("%s: %s", path, exc)
            out["failed"].append({"path": os.fspath(path), "kind": kind, "error": str(exc)})
            continue
        out["artefacts"].append({"path": os.fspath(path), "kind": kind, "summary": summary})
    return out


def summarize_file(path: str | os.PathLike[str]) -> Summary:
    """Summarize one file (see :func:`summarize_paths`); its entry, whichever list it landed in."""
    result = summarize_paths([path])
    for key in ("artefacts", "ignored", "failed"):
        if result[key]:
            return dict(result[key][0])
    raise FileNotFoundError(os.fspath(path))  # pragma: no cover - walk_artefacts raised already


# ---------------------------------------------------------------------------------------------
# per kind


def _span(ts: pl.Series) -> dict[str, Any]:
    ts = ts.drop_nulls()
    if ts.is_empty():
        return {"first_ts": None, "last_ts": None, "span_s": None}
    lo, hi = ts.min(), ts.max()
    assert isinstance(lo, datetime) and isinstance(hi, datetime)
    return {
        "first_ts": lo.isoformat(),
        "last_ts": hi.isoformat(),
        "span_s": (hi - lo).total_seconds(),
    }


def _quantiles(df: pl.DataFrame, value: str) -> dict[str, Any]:
    q = latency_quantiles(df, value=value).row(0, named=True)
    return {k: _num(v) for k, v in q.items() if k != "n_null"}


def _num(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)
    return v


def _counts(series: pl.Series, top: int = 10) -> dict[str, int]:
    vc = series.fill_null("-").value_counts(sort=True).head(top)
    return {str(k): int(n) for k, n in vc.iter_rows()}


def _coredns(path: Path) -> Summary:
    from kit.sources.coredns import read_coredns_log

    logs = read_coredns_log(path)
    q, e = logs.queries, logs.errors
    out: Summary = {
        "lines_read": logs.lines_read,
        "queries": q.height,
        "errors": e.height,
        "other": logs.other.height,
        "rejected": logs.rejected.height,
        # e.g. "looks like a custom log format, pass log_format=": queries would be 0 silently
        "notes": [n for n in logs.files["notes"].to_list() if n],
        **_span(pl.concat([q["ts"], e["ts"]])),
    }
    if q.height:
        out["duration"] = _quantiles(q, "duration_s")
        out["rcodes"] = _counts(q["rcode"])
        out["slow_over_1s"] = int((q["duration_s"] > 1.0).sum())
    if e.height:
        out["error_kinds"] = _counts(e["kind"])
        out["error_upstreams"] = _counts(
            e.select(
                pl.concat_str(
                    [pl.col("transport").fill_null("?"), pl.col("upstream").fill_null("?")],
                    separator=" ",
                )
            ).to_series()
        )
    return out


def _unbound_log(path: Path) -> Summary:
    from kit.sources.unbound import read_unbound_log

    logs = read_unbound_log(path)
    q = logs.queries
    out: Summary = {
        "lines_read": logs.lines,
        "replies": q.height,
        "received": logs.received.height,
        "other": logs.other.height,
        "rejected": logs.rejected.height,
        **_span(q["ts"]),
    }
    if q.height:
        out["duration"] = _quantiles(q, "duration_s")
        out["rcodes"] = _counts(q["rcode"])
        out["cached_share"] = float(
            q.select(pl.col("cached").cast(pl.Float64).mean()).item() or 0.0
        )
        out["slow_over_1s"] = int((q["duration_s"] > 1.0).sum())
    return out


def _capture(path: Path) -> Summary:
    from kit.sources.capture import read_capture

    cap = read_capture(path, progress=False)
    meta = cap.meta.row(0, named=True) if cap.meta.height else {}
    dns, tcp = cap.dns, cap.tcp
    out: Summary = {
        "file_format": meta.get("file_format"),
        "link_type": meta.get("link_type"),
        "packets": meta.get("packets"),
        "truncated": meta.get("truncated"),
        "notes": list(meta.get("notes") or []),
        **_span(cap.packets["ts"]),
        "dns_transactions": dns.height,
        "answered": int(dns["answered"].sum()),
        "unanswered": int((~dns["answered"] & ~dns["censored"]).sum()),
        "censored": int(dns["censored"].sum()),
        "tcp_connections": tcp.height,
        # open before the capture started: their SYN is not in the file, so 0 retransmitted SYNs
        "tcp_already_open": int((~tcp["syn_seen"]).sum()),
        # summed as Int64: a UInt32 sum wraps past 4294967295
        "syn_retransmits": int(tcp["syn_retransmits"].cast(pl.Int64).sum() or 0),
        "connections_with_syn_retransmits": int((tcp["syn_retransmits"] > 0).sum()),
    }
    if meta.get("dns_over_http"):
        out["dns_over_http_not_paired"] = int(meta["dns_over_http"])
    if dns["latency_s"].drop_nulls().len():
        out["latency"] = _quantiles(dns, "latency_s")
        out["slow_over_1s"] = int((dns["latency_s"] > 1.0).sum())
        out["servers"] = _counts(dns["server_ip"])
        out["transports"] = _counts(dns["transport"])
    return out


def _metrics(path: Path) -> Summary:
    from kit.sources.metrics.prometheus import METRICS_BASE_SCHEMA, read_metrics

    df = read_metrics(path)
    labels = [c for c in df.columns if c not in METRICS_BASE_SCHEMA]
    series = df.select(["metric", *labels]).unique().height if df.height else 0
    return {
        "samples": df.height,
        "series": series,
        "metrics": _counts(df["metric"], top=15),
        "labels": labels,
        **_span(df["ts"]),
    }


def _forward(df: pl.DataFrame) -> Summary:
    rows = df.select("zone", "upstream", "transport", "force_tcp", "line_no").to_dicts()
    return {
        "forward_rules": len(rows),
        "force_tcp": any(bool(r["force_tcp"]) for r in rows),
        "forwards": rows,
    }


def _corefile(path: Path) -> Summary:
    from kit.sources.corefile import read_corefile

    cf = read_corefile(path)
    return {"zones": [str(z) for z in cf.zones], **_forward(cf.forward_settings())}


def _unbound_conf(path: Path) -> Summary:
    from kit.sources.unbound import read_unbound_conf

    return _forward(read_unbound_conf(path))


_SUMMARIZERS: dict[str, Callable[[Path], Summary]] = {
    "coredns_log": _coredns,
    "unbound_log": _unbound_log,
    "capture": _capture,
    "metrics_exposition": _metrics,
    "prometheus_api_json": _metrics,
    "grafana_csv": _metrics,
    "grafana_json": _metrics,
    "corefile": _corefile,
    "unbound_conf": _unbound_conf,
}


# ---------------------------------------------------------------------------------------------
# text rendering


def _safe(value: Any) -> str:
    """Show data from artefacts without letting control bytes act on the terminal."""
    text = str(value)
    if text.isprintable():
        return text
    return text.encode("unicode_escape").decode("ascii")


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, dict):
        return ", ".join(f"{_safe(k)}={_fmt(v)}" for k, v in value.items())
    if isinstance(value, list):
        return "; ".join(_fmt(v) for v in value) if value else "-"
    return _safe(value)


def format_summary(result: Summary) -> str:
    """Plain-text rendering of :func:`summarize_paths`'s result, one block per file."""
    lines: list[str] = []
    for item in result["artefacts"]:
        lines.append(f"{_safe(item['path'])}  [{item['kind']}]")
        lines.extend(f"  {k}: {_fmt(v)}" for k, v in item["summary"].items())
    for item in result["ignored"]:
        lines.append(f"{_safe(item['path'])}  [ignored: {item['kind']}] {_safe(item['reason'])}")
    for item in result["failed"]:
        lines.append(f"{_safe(item['path'])}  [FAILED: {item['kind']}] {_safe(item['error'])}")
    lines.append(
        f"{len(result['artefacts'])} summarized, {len(result['ignored'])} ignored, "
        f"{len(result['failed'])} failed"
    )
    return "\n".join(lines) + "\n"
