"""Read Zeek's ``dns.log`` (TSV with its ``#fields`` header, or JSON lines) into the DNS schema
of captures.

Zeek pairs queries and answers itself: each ``dns.log`` record is one transaction, ``ts`` the
first message's time and ``rtt`` the time to the answer. Columns named by the header are
looked up by name, so added or reordered fields (Zeek versions, ``LogAscii::use_json``, policy
scripts) read the same.

Example
-------
>>> import kit.sources.zeek as zeek
>>> zeek.read_zeek_dns("zeek/dns.log").dns  # doctest: +SKIP
"""

from __future__ import annotations

import json
import logging
import math
import os
from datetime import UTC, datetime, timedelta
from typing import Any

import polars as pl

from kit.errors import InputFormatError
from kit.schema import ZEEK_DNS_SCHEMA
from kit.sources._dnsrecords import (
    DNSRecords,
    finish,
    iso_time,
    json_objects,
    qname,
    qtype,
    rcode,
)
from kit.sources._io import Source, expand_sources, read_raw

__all__ = ["ZEEK_DNS_SCHEMA", "DNSRecords", "read_zeek_dns", "sniff_zeek_json", "sniff_zeek_tsv"]

log = logging.getLogger(__name__)

_DNS_KEYS = ("query", "qtype_name", "trans_id", "rcode_name")


def sniff_zeek_tsv(nonblank: list[str]) -> str | None:
    """A reason when the lines are a Zeek TSV ``dns.log`` (``#path dns`` or a ``#fields`` line
    with ``query`` and ``trans_id``), else ``None``."""
    head = nonblank[:40]
    if not any(ln.startswith("#separator") or ln.startswith("#fields") for ln in head):
        return None
    path = next((ln.split(None, 1)[1].strip() for ln in head if ln.startswith("#path")), None)
    fields = next((ln.split("\t")[1:] for ln in head if ln.startswith("#fields\t")), [])
    if path == "dns" or ("query" in fields and "trans_id" in fields):
        data = sum(1 for ln in nonblank if not ln.startswith("#"))
        return f"Zeek dns.log (TSV, #path {path or '?'}, {len(fields)} fields, {data} records)"
    return None


def sniff_zeek_json(text: str) -> str | None:
    """A reason when the text's first JSON objects are Zeek ``dns.log`` records (``ts``,
    ``id.orig_h`` and ``query``/``trans_id`` keys), else ``None``."""
    objs = []
    try:
        for _, obj in json_objects(text, limit=20):
            objs.append(obj)
    except ValueError:
        if not objs:
            return None
    if not objs or not all(isinstance(o, dict) for o in objs):
        return None
    zeek = [o for o in objs if "id.orig_h" in o and any(k in o for k in _DNS_KEYS)]
    if len(zeek) >= max(1, int(0.8 * len(objs))):
        return f"Zeek dns.log (JSON lines, {len(zeek)} of the first {len(objs)} records)"
    return None


def _epoch(value: Any) -> datetime:
    if isinstance(value, bool):
        raise ValueError(f"ts is {value!r}")
    if isinstance(value, int | float):
        if not math.isfinite(value):
            raise ValueError(f"ts is {value!r}")
        sec = int(value)
        us = round((value - sec) * 1_000_000)
        return datetime.fromtimestamp(sec, tz=UTC) + timedelta(microseconds=us)
    if isinstance(value, str):
        try:
            return _epoch(float(value))
        except ValueError:
            return iso_time(value)
    raise ValueError(f"ts is {value!r}")


def _int(value: Any) -> int | None:
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    raise ValueError(f"not an integer: {value!r}")


def _float(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    return float(value)


def _bool(value: Any) -> bool | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return value
    if value in ("T", "true", "True"):
        return True
    if value in ("F", "false", "False"):
        return False
    raise ValueError(f"not a Zeek bool: {value!r}")


def _str(rec: dict[str, Any], key: str) -> str | None:
    v = rec.get(key)
    if v is None or isinstance(v, str):
        return v
    raise ValueError(f"{key} is {v!r}, not a string")


def _row(rec: dict[str, Any], source: str, line_no: int) -> tuple[Any, ...]:
    """One row of :data:`ZEEK_DNS_SCHEMA` from a record (unset fields absent or None).

    Raises
    ------
    ValueError
        A field that does not read (the message names it).
    """
    if rec.get("ts") is None:
        raise ValueError("no ts")
    try:
        ts = _epoch(rec["ts"])
    except (ValueError, OverflowError, OSError) as exc:
        raise ValueError(f"ts: {exc}") from None
    try:
        rtt = _float(rec.get("rtt"))
    except (TypeError, ValueError):
        raise ValueError(f"rtt is {rec.get('rtt')!r}") from None
    code = rcode(_str(rec, "rcode_name"), _int(rec.get("rcode")))
    answers = rec.get("answers")
    n_answers = min(len(answers), 65535) if isinstance(answers, list) else None
    answered = code is not None or rtt is not None
    if n_answers is None and answered:
        n_answers = 0
    orig_p, resp_p = _int(rec.get("id.orig_p")), _int(rec.get("id.resp_p"))
    trans = _int(rec.get("trans_id"))
    for name, v, top in (("id.orig_p", orig_p, 65535), ("id.resp_p", resp_p, 65535)):
        if v is not None and not 0 <= v <= top:
            raise ValueError(f"{name} {v} out of range")
    if trans is not None and not 0 <= trans <= 65535:
        raise ValueError(f"trans_id {trans} out of range")
    proto = _str(rec, "proto")
    return (
        ts,
        ts + timedelta(seconds=rtt) if rtt is not None else None,
        rtt,
        answered,
        _str(rec, "id.orig_h"),
        orig_p,
        _str(rec, "id.resp_h"),
        resp_p,
        proto.lower() if isinstance(proto, str) else None,
        trans,
        qname(_str(rec, "query")),
        qtype(_str(rec, "qtype_name"), _int(rec.get("qtype"))),
        code,
        _bool(rec.get("TC")),
        n_answers,
        source,
        line_no,
        _str(rec, "uid"),
        _bool(rec.get("rejected")),
    )


def _unescape(value: str) -> str:
    """Zeek's ASCII writer escapes the separator and non-printable bytes as ``\\xHH``."""
    if "\\x" not in value:
        return value
    out = bytearray()
    i = 0
    raw = value.encode("utf-8")
    while i < len(raw):
        if raw[i : i + 2] == b"\\x" and i + 4 <= len(raw):
            try:
                out.append(int(raw[i + 2 : i + 4], 16))
                i += 4
                continue
            except ValueError:
                pass
        out.append(raw[i])
        i += 1
    return out.decode("utf-8", errors="backslashreplace")


def _read_tsv(
    lines: list[str], source: str, rows: list[tuple[Any, ...]], rejected: list[tuple[Any, ...]]
) -> tuple[int, int]:
    sep, set_sep, empty, unset = "\t", ",", "(empty)", "-"
    fields: list[str] | None = None
    records = other = 0
    for i, line in enumerate(lines, start=1):
        line = line.rstrip("\r")
        if not line.strip():
            other += 1
            continue
        if line.startswith("#"):
            other += 1
            value = line.partition(sep)[2]
            if line.startswith("#separator"):
                spec = line[len("#separator") :].strip() or "\\x09"
                sep = _unescape(spec) or "\t"
            elif line.startswith("#set_separator"):
                set_sep = value or ","
            elif line.startswith("#empty_field"):
                empty = value
            elif line.startswith("#unset_field"):
                unset = value
            elif line.startswith("#path"):
                path = value.strip()
                if path and path != "dns":
                    raise InputFormatError(
                        f"a Zeek {path}.log, not a dns.log (#path {path})", path=source, line=i
                    )
            elif line.startswith("#fields"):
                fields = line.split(sep)[1:]
            continue
        records += 1
        if fields is None:
            rejected.append((source, i, "data line before the #fields header", line[:500]))
            continue
        values = line.split(sep)
        if len(values) != len(fields):
            rejected.append(
                (
                    source,
                    i,
                    f"{len(values)} fields, the #fields header names {len(fields)}",
                    line[:500],
                )
            )
            continue
        rec: dict[str, Any] = {}
        for name, v in zip(fields, values, strict=True):
            if v == unset:
                continue
            if name in ("answers", "TTLs"):
                rec[name] = [] if v == empty else [_unescape(x) for x in v.split(set_sep)]
            else:
                rec[name] = "" if v == empty else _unescape(v)
        try:
            rows.append(_row(rec, source, i))
        except (ValueError, OverflowError) as exc:
            rejected.append((source, i, str(exc), line[:500]))
    return records, other


def _read_json(
    text: str, source: str, rows: list[tuple[Any, ...]], rejected: list[tuple[Any, ...]]
) -> tuple[int, int]:
    records = other = 0
    lines = text.split("\n")
    for i, line in enumerate(lines, start=1):
        if not line.strip():
            other += 1
            continue
        records += 1
        try:
            rec = json.loads(line)
        except RecursionError:
            rejected.append((source, i, "JSON nested too deeply to read", line[:500]))
            continue
        except ValueError as exc:
            rejected.append((source, i, f"not a JSON object: {exc}", line[:500]))
            continue
        if not isinstance(rec, dict):
            rejected.append((source, i, f"JSON {type(rec).__name__}, not an object", line[:500]))
            continue
        try:
            rows.append(_row(rec, source, i))
        except (ValueError, OverflowError, TypeError) as exc:
            rejected.append((source, i, str(exc), line[:500]))
    return records, other


def read_zeek_dns(source: Source, *, strict: bool = False) -> DNSRecords:
    """Read Zeek ``dns.log`` files, TSV (``#fields`` header) or JSON lines, each recognised by
    its content.

    Parameters
    ----------
    source
        A file, a list of files, a folder or a glob (gzip read transparently, as Zeek's rotated
        logs are).
    strict
        ``True``: raise :class:`~kit.errors.InputFormatError` at the first unreadable record;
        ``False``: keep it in ``rejected`` and warn (:class:`~kit.errors.KitWarning`).

    Returns
    -------
    DNSRecords
        ``dns`` in :data:`ZEEK_DNS_SCHEMA`, one row per record in file order: ``ts`` Zeek's
        ``ts``; ``latency_s`` its ``rtt`` (null when Zeek logged none, e.g. an answer it could not
        time); ``ts_response`` = ``ts + rtt``; ``answered`` when an rcode or an rtt is logged;
        ``client_*``/``server_*`` from ``id.orig_*``/``id.resp_*``; ``qtype`` and ``rcode`` from
        the ``*_name`` fields (numbers when the names are unset); ``answers`` the length of the
        ``answers`` vector; ``uid`` and ``rejected`` as Zeek logs them. Unset fields are null.

    Raises
    ------
    InputFormatError
        A file is no ``dns.log`` (another ``#path``, not TSV or JSON), a file has records but
        none readable (file and first bad line named), or ``strict`` and one record is
        unreadable.
    """
    files = expand_sources(source, what="Zeek dns.log")
    rows: list[tuple[Any, ...]] = []
    rejected: list[tuple[Any, ...]] = []
    notes: list[str] = []
    records = other = lines_total = 0
    for f in files:
        raw = read_raw(f, what="Zeek dns.log")
        notes += [f"{f}: {n}" for n in raw.notes]
        text = raw.data.decode("utf-8", errors="replace")
        lines = text.split("\n")
        if lines and lines[-1] == "":
            lines.pop()
        lines_total += len(lines)
        src = os.fspath(f)
        before_rows, before_rej = len(rows), len(rejected)
        first = next((ln for ln in lines if ln.strip()), "")
        if first.startswith("#") or "\t" in first:
            r, o = _read_tsv(lines, src, rows, rejected)
        elif first.lstrip().startswith("{"):
            r, o = _read_json("\n".join(lines), src, rows, rejected)
        elif not first:
            r, o = 0, len(lines)
        else:
            raise InputFormatError(
                "not a Zeek dns.log (neither a #-header TSV log nor JSON lines)",
                path=f,
                line=lines.index(first) + 1,
                excerpt=first[:160],
            )
        records += r
        other += o
        new_rej = rejected[before_rej:]
        if new_rej and (strict or len(rows) == before_rows):
            _, line_no, reason, bad = new_rej[0]
            raise InputFormatError(
                reason + ("" if strict else " (no readable dns.log record in the file)"),
                path=f,
                line=line_no,
                excerpt=bad[:160],
            )
    dns = pl.DataFrame(rows, schema=ZEEK_DNS_SCHEMA, orient="row")
    return finish(
        dns,
        ZEEK_DNS_SCHEMA,
        rejected,
        what="Zeek dns.log record(s)",
        records=records,
        other=other,
        lines=lines_total,
        notes=notes,
    )
