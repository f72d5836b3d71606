"""Helpers shared by the readers of other tools' DNS records (:mod:`kit.sources.zeek`,
:mod:`kit.sources.gadget`): names, types and codes the way captures write them, JSON objects
from a text, the result dataclass."""

from __future__ import annotations

import json
import re
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import polars as pl

from kit.errors import KitWarning
from kit.schema import NODE_REJECTED_SCHEMA, check_schema
from kit.sources.capture._frames import QTYPES, RCODES

_QTYPE_BY_NAME = {v: v for v in QTYPES.values()}
_TYPE_N = re.compile(r"^TYPE(\d+)$", re.IGNORECASE)

# rcode spellings of the tools (Zeek: NOERROR...; gopacket, Inspektor Gadget <= 0.2x: "No Error",
# "NoError", "Non-Existent Domain", "NXDomain"...; Gadget's image trace_dns: Success, NameError...)
_RCODE_ALIASES = {
    "noerror": "NOERROR",
    "success": "NOERROR",
    "nxdomain": "NXDOMAIN",
    "nonexistentdomain": "NXDOMAIN",
    "nameerror": "NXDOMAIN",
    "servfail": "SERVFAIL",
    "serverfailure": "SERVFAIL",
    "formerr": "FORMERR",
    "formaterror": "FORMERR",
    "notimp": "NOTIMP",
    "notimplemented": "NOTIMP",
    "refused": "REFUSED",
    "queryrefused": "REFUSED",
    "yxdomain": "YXDOMAIN",
    "yxrrset": "YXRRSET",
    "nxrrset": "NXRRSET",
    "notauth": "NOTAUTH",
    "notzone": "NOTZONE",
}


def qname(text: str | None) -> str | None:
    """A question name the way captures write it: no trailing dot, root ``"."``; ``None`` stays."""
    if text is None:
        return None
    if text in (".", ""):
        return "." if text == "." else None
    return text[:-1] if text.endswith(".") and not text.endswith("\\.") else text


def qtype(name: Any, number: Any = None) -> str | None:
    """A type mnemonic (``A``, ``AAAA``; ``TYPE<n>`` when unknown) from a name and/or a number."""
    if isinstance(number, int) and not isinstance(number, bool):
        return QTYPES.get(number, f"TYPE{number}")
    if isinstance(name, str) and name:
        up = name.upper()
        if up in _QTYPE_BY_NAME:
            return up
        m = _TYPE_N.match(up)
        if m:
            return QTYPES.get(int(m[1]), f"TYPE{int(m[1])}")
        return up
    return None


def rcode(name: Any, number: Any = None) -> str | None:
    """An rcode the way captures write it (``NOERROR``, ``NXDOMAIN``; ``RCODE<n>`` when unknown)."""
    if isinstance(number, int) and not isinstance(number, bool):
        return RCODES.get(number, f"RCODE{number}")
    if isinstance(name, str) and name:
        key = re.sub(r"[\s_-]", "", name).lower()
        return _RCODE_ALIASES.get(key, name.upper())
    return None


def epoch_ns(ns: int) -> datetime:
    """UTC datetime (microseconds) from nanoseconds since the epoch."""
    return datetime.fromtimestamp(ns // 1000 / 1_000_000, tz=UTC).replace(
        microsecond=(ns // 1000) % 1_000_000
    )


def iso_time(text: str) -> datetime:
    """UTC datetime from an RFC 3339 time with up to nanosecond digits (``...41.615944438Z``).

    Raises
    ------
    ValueError
        Not such a time.
    """
    m = re.fullmatch(
        r"(\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:?\d\d)?", text.strip()
    )
    if not m:
        raise ValueError(f"not an RFC 3339 time: {text!r}")
    frac = (m[2] or "")[:6].ljust(6, "0")
    tz = m[3] or "Z"
    t = datetime.fromisoformat(f"{m[1]}.{frac}{'+00:00' if tz == 'Z' else tz}")
    return t.astimezone(UTC)


def json_objects(text: str, limit: int | None = None) -> Iterator[tuple[int, Any]]:
    """The JSON values of a text holding one per line or several pretty-printed ones in a row,
    with the 1-based line each starts on.

    Raises
    ------
    ValueError
        Text that is not a JSON value where one should start (``args[1]`` is the line number).
    """
    dec = json.JSONDecoder()
    i, n, count = 0, len(text), 0
    line, counted = 1, 0  # newlines are counted once, from where the last count stopped
    while True:
        while i < n and text[i] in " \t\r\n":
            i += 1
        if i >= n or (limit is not None and count >= limit):
            return
        line += text.count("\n", counted, i)
        counted = i
        try:
            obj, end = dec.raw_decode(text, i)
        except RecursionError:
            raise ValueError("JSON nested too deeply to read", line) from None
        except ValueError as exc:
            raise ValueError(str(exc), line) from None
        yield line, obj
        count += 1
        i = end


@dataclass(frozen=True)
class DNSRecords:
    """What a reader of another tool's DNS records read.

    Attributes
    ----------
    dns : polars.DataFrame
        One row per DNS transaction (the reader's schema, which starts with
        :data:`kit.schema.DNS_RECORDS_SCHEMA`).
    rejected : polars.DataFrame
        :data:`kit.schema.NODE_REJECTED_SCHEMA`: records that could not be read, with the reason.
    records : int
        Records read (Zeek: log lines with data; Gadget: trace events, queries and answers).
    other : int
        Lines or records understood that are no DNS record (Zeek ``#`` header lines, Gadget
        ``debug``/``notice`` messages and blank lines).
    lines : int
        Lines read over all files.
    notes : tuple[str, ...]
        Damage found while reading (a truncated gzip), per file.
    """

    dns: pl.DataFrame
    rejected: pl.DataFrame
    records: int
    other: int
    lines: int
    notes: tuple[str, ...] = ()

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(dns={self.dns.height}, records={self.records}, "
            f"other={self.other}, rejected={self.rejected.height}, lines={self.lines})"
        )


def finish(
    dns: pl.DataFrame,
    schema: pl.Schema,
    rejected: list[tuple[Any, ...]],
    *,
    what: str,
    records: int,
    other: int,
    lines: int,
    notes: list[str],
) -> DNSRecords:
    """The :class:`DNSRecords` of a reader: ``dns`` checked against ``schema``, the rejected
    records (rows of :data:`kit.schema.NODE_REJECTED_SCHEMA`) as a frame with one
    :class:`kit.errors.KitWarning` naming the first (``what``: e.g. "Zeek dns.log record(s)"),
    and each note warned."""
    check_schema(dns, schema, name=what)
    rej = pl.DataFrame(rejected, schema=NODE_REJECTED_SCHEMA, orient="row")
    if rej.height:
        r0 = rej.row(0, named=True)
        warnings.warn(
            f"{rej.height} unreadable {what} kept in .rejected; first "
            f"{r0['source']}:{r0['line_no']}: {r0['reason']}",
            KitWarning,
            stacklevel=3,
        )
    for n in notes:
        warnings.warn(n, KitWarning, stacklevel=3)
    return DNSRecords(dns, rej, records, other, lines, tuple(notes))
