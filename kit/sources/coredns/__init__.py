"""CoreDNS query and error logs: ``read_coredns_log`` and the helpers the notebooks use.

One call reads everything an investigator collects from CoreDNS or NodeLocal DNSCache: the ``log``
plugin's query lines, the ``errors`` plugin's lines (including ``consolidate`` summaries), startup
banners and plugin messages, in every format CoreDNS has written since release 004 (see
``notes/formats.md`` §1-3), wrapped or not by the container runtime or a collection tool (CRI files,
``kubectl logs --timestamps --prefix``, docker json-file, journald/syslog, docker compose, stern).
Wrappers are recognised line by line, so mixed files are fine.

Speed: lines are read with polars and classified with vectorised string kernels; the common query
line is split on spaces (no regex captures), rarer shapes go through one regex per shape on the
rows that need it. Docker JSON lines are decoded by polars (line by line in Python only for a block
with a malformed or partial record), CRI partial (``P``) records are joined in Python.
Files are processed in blocks of 16 MiB of text (two at a time, one per core), so memory stays near
the size of the result.

Conventions shared with the other loaders: ``ts`` is UTC; ``qname`` is the name as logged (CoreDNS
escapes special bytes as ``\\DDD`` / ``\\.``), case preserved, **without the trailing dot** (the root
is ``"."``); durations are float seconds in ``*_s`` columns.
"""

from __future__ import annotations

import json
import logging
import os
import re
import warnings
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from kit.errors import InputFormatError, KitWarning
from kit.schema import check_schema, empty_frame
from kit.sources._io import ArrowArray, Source, expand_sources, open_input, read_raw

# CoreDNS plugin/log/log.go CommonLogFormat and CombinedLogFormat (formats.md §1.1)
from kit.sources.corefile import COMBINED_LOG_FORMAT, COMMON_LOG_FORMAT
from kit.stats import latency_quantiles
from kit.timeutil import duration_s, time_bins

__all__ = [
    "ERRORS_SCHEMA",
    "FILES_SCHEMA",
    "LOOP_PROBE",
    "OTHER_SCHEMA",
    "QUERIES_SCHEMA",
    "REJECTED_SCHEMA",
    "CoreDNSLog",
    "error_counts",
    "query_latency",
    "read_coredns_log",
    "slow_queries",
    "without_loop_probes",
]

log = logging.getLogger(__name__)

UTC = pl.Datetime("us", "UTC")

_WRAPPER_COLUMNS: dict[str, pl.DataType] = {
    "pod": pl.String(),
    "container": pl.String(),
    "node": pl.String(),
    "stream": pl.String(),
}

QUERIES_SCHEMA = pl.Schema(
    {
        "ts": UTC,
        "client_ip": pl.String(),
        "client_port": pl.UInt16(),
        "query_id": pl.UInt16(),
        "qtype": pl.String(),
        "qclass": pl.String(),
        "qname": pl.String(),
        "proto": pl.String(),
        "req_size": pl.UInt32(),
        "do_bit": pl.Boolean(),
        "bufsize": pl.UInt32(),
        "rcode": pl.String(),
        "rflags": pl.String(),
        "resp_size": pl.UInt32(),
        "duration_s": pl.Float64(),
        "opcode": pl.UInt8(),
        **_WRAPPER_COLUMNS,
        "source": pl.String(),
        "line_no": pl.UInt32(),
    }
)
"""Schema of :attr:`CoreDNSLog.queries` (documented in :func:`read_coredns_log`)."""

ERRORS_SCHEMA = pl.Schema(
    {
        "ts": UTC,
        "level": pl.String(),
        "rcode_num": pl.UInt16(),
        "qname": pl.String(),
        "qtype": pl.String(),
        "op": pl.String(),
        "transport": pl.String(),
        "local_addr": pl.String(),
        "upstream": pl.String(),
        "server_ip": pl.String(),
        "server_port": pl.UInt16(),
        "kind": pl.String(),
        "message": pl.String(),
        "consolidated_count": pl.UInt32(),
        "consolidated_period_s": pl.Float64(),
        **_WRAPPER_COLUMNS,
        "source": pl.String(),
        "line_no": pl.UInt32(),
    }
)
"""Schema of :attr:`CoreDNSLog.errors` (documented in :func:`read_coredns_log`)."""

OTHER_SCHEMA = pl.Schema(
    {
        "ts": UTC,
        "level": pl.String(),
        "kind": pl.String(),
        "plugin": pl.String(),
        "message": pl.String(),
        **_WRAPPER_COLUMNS,
        "source": pl.String(),
        "line_no": pl.UInt32(),
    }
)
"""Schema of :attr:`CoreDNSLog.other` (documented in :func:`read_coredns_log`)."""

REJECTED_SCHEMA = pl.Schema(
    {
        "source": pl.String(),
        "line_no": pl.UInt32(),
        "reason": pl.String(),
        "line": pl.String(),
    }
)
"""Schema of :attr:`CoreDNSLog.rejected` (documented in :func:`read_coredns_log`)."""

FILES_SCHEMA = pl.Schema(
    {
        "source": pl.String(),
        "bytes": pl.UInt64(),
        "gzipped": pl.Boolean(),
        "lines": pl.UInt32(),
        "joined_lines": pl.UInt32(),
        "invalid_utf8": pl.UInt32(),
        "skipped": pl.Boolean(),
        "notes": pl.String(),
    }
)
"""Schema of :attr:`CoreDNSLog.files` (documented in :func:`read_coredns_log`)."""

CHUNK_BYTES = 16 * 1024 * 1024
_WORKERS = 2

try:  # the native tokenizer (kit/_fastlog.c), built by `pip install` where a C compiler exists
    from kit import _fastlog
except ImportError:  # pragma: no cover - depends on the build
    _fastlog = None  # type: ignore[assignment]

# blocks larger than this stay on the polars path (the native one uses 32-bit string offsets)
_NATIVE_MAX_BYTES = 1 << 30

LEVELS = ("INFO", "ERROR", "WARNING", "DEBUG", "FATAL")
ERROR_KINDS = (
    "timeout",
    "refused",
    "reset",
    "eof",
    "overflow",
    "no_healthy",
    "max_concurrent",
    "other",
)

# --- regular expressions (Rust regex syntax, used by polars) -------------------------------------
_RFC3339 = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:[.,]\d{1,9})?(?:Z|[+-]\d\d:?\d\d)"
_RE_CRI = rf"^{_RFC3339} (?:stdout|stderr) [PF](?::\S*)? "
_RE_TS = rf"^{_RFC3339} "
_RE_GOLOG = r"^\d{4}/\d\d/\d\d \d\d:\d\d:\d\d(?:\.\d+)? "
_RE_KPREFIX = r"^\[pod/[^/\] ]+/[^\] ]+\] "
_RE_COMPOSE = r"^[A-Za-z0-9][A-Za-z0-9_.-]* *\| "
_RE_SYSLOG = r"^[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d [^\s:]+ [^\s:\[]+(?:\[\d+\])?: "
_LEVEL_ALT = "|".join(LEVELS)
_RE_STERN = rf"^[A-Za-z0-9][A-Za-z0-9_.-]*(?: [A-Za-z0-9][A-Za-z0-9_.-]*)? \[(?:{_LEVEL_ALT})\] "
_ADDR = r"(?:\[[0-9A-Za-z:.%_-]*\]|[^\s\[\]:]+):\d+"

# the general query-line regex: every era of the default format (formats.md §1.2, §1.5)
_RE_QUERY_ANY = (
    r'^(?<remote>\[[^\]\s]*\]|[^\s\[\]"]+?)(?::(?<port>\d+))? - (?:\[(?<when>[^\]]+)\] )?'
    r'(?:(?<id>\d+) )?"(?<type>\S+) (?<class>\S+) (?<name>(?:\\.|[^ \\"])+) (?<proto>\S+) '
    r'(?<size>\d+) (?<do>true|false) (?<bufsize>\d+)" (?<rcode>\S+) (?:(?<rflags>\S*) )?'
    r'(?<rsize>\d+) (?<duration>[0-9][0-9.a-zµμ]*)(?: "(?<opcode>\d+)")?$'
)
_RE_QUERY_LIKE = r'^\S+ - (?:\[|\d|")'
# a query-log line in a format the kit does not know: a query type and a fully qualified name
# (CoreDNS logs {name} with its trailing dot) as separate words, e.g. "10.0.0.1 A example.org. ..."
_RE_QTYPE_WORD = (
    r"(?:^|\s)(?:A|AAAA|ANY|CAA|CNAME|DNSKEY|DS|HINFO|HTTPS|MX|NAPTR|NS|PTR|SOA|SRV|SVCB|TXT"
    r"|TYPE\d+)(?:\s|$)"
)
_RE_FQDN_WORD = r"(?:^|\s)(?:[^\s\"]+\.|\.)(?:\s|$)"
#: A file whose records are more than this share of such lines gets a warning naming log_format.
UNKNOWN_FORMAT_SHARE = 0.5
_RE_ERR = r"^(?:plugin/errors: )?(?<rcode_num>\d+) (?<qname>\S+) (?<qtype>\S+): (?<message>.*)$"
_RE_ERR_V1 = (
    r"^(?<when>\d\d/[A-Z][a-z]{2}/\d{4}:\d\d:\d\d:\d\d [+-]\d{4}) "
    r"\[ERROR (?<rcode_num>\d+) (?<qname>\S+) (?<qtype>\S+)\] (?<message>.*)$"
)
_RE_CONSOLIDATE = (
    r"^(?:plugin/errors: )?(?<count>\d+) errors like '(?<pattern>.*)' occur+ed in last "
    r"(?<period>[0-9][0-9.hmsunµμ]*)$"
)
_RE_NETERR = rf"(?:^|: )(?<op>[a-z]+) (?<transport>udp|tcp)[46]? (?:(?<local>{_ADDR})->)?(?<upstream>{_ADDR}): "
_RE_KLOG = r"^(?<lvl>[IWEF])\d{4} \d\d:\d\d:\d\d\.\d{6} +\d+ [^\]\s]+\] "
_RE_BANNER = (
    r"^(?:(?:[a-z]+://)?\S*:\d+(?: on \S+)?|CoreDNS-\S+|[a-z0-9]+/[a-z0-9]+, go\S*,(?: \S*)?)$"
)
_RE_PLUGIN = r"^plugin/(?<plugin>[A-Za-z0-9_-]+): "


@dataclass(frozen=True)
class CoreDNSLog:
    """What :func:`read_coredns_log` read: four frames that partition the input records, plus files.

    Attributes
    ----------
    queries, errors, other, rejected : polars.DataFrame
        Query-log lines, errors-plugin lines, recognised other lines, and lines that did not
        parse (CoreDNS-looking lines that match no known format, and lines the kit does not
        recognise at all), each with a reason. Every input record is in exactly one of them.
    files : polars.DataFrame
        One row per input file: bytes, lines, joined continuation lines, damage found.
    """

    queries: pl.DataFrame
    errors: pl.DataFrame
    other: pl.DataFrame
    rejected: pl.DataFrame
    files: pl.DataFrame = field(default_factory=lambda: empty_frame(FILES_SCHEMA))

    @property
    def records(self) -> int:
        """Number of records: ``len(queries) + len(errors) + len(other) + len(rejected)``."""
        return self.queries.height + self.errors.height + self.other.height + self.rejected.height

    @property
    def lines_read(self) -> int:
        """Physical lines read from all files (``records`` plus CRI/docker continuation lines)."""
        return int(self.files["lines"].sum()) if self.files.height else 0

    def __repr__(self) -> str:
        return (
            f"CoreDNSLog(queries={self.queries.height}, errors={self.errors.height}, "
            f"other={self.other.height}, rejected={self.rejected.height}, "
            f"files={self.files.height}, lines_read={self.lines_read})"
        )


# ------------------------------------------------------------------------------------------------
# public loader
# ------------------------------------------------------------------------------------------------


def read_coredns_log(
    source: Source,
    *,
    strict: bool = False,
    log_format: str | None = None,
    chunk_bytes: int = CHUNK_BYTES,
) -> CoreDNSLog:
    r"""Read CoreDNS / NodeLocal DNSCache query and error logs into polars frames.

    Default-format query lines (most of a query log) are split by a native tokenizer,
    ``kit/_fastlog.c``, when ``pip install`` could build it (:data:`NATIVE`), else by polars
    string kernels; both give the same frames, and every other line goes through the general
    parser. Text is read in blocks of ``chunk_bytes`` on two threads.

    Parameters
    ----------
    source
        A path, a list of paths, a glob, or a directory (its non-hidden files). ``.gz`` files are
        decompressed transparently (detected from the content); a truncated gzip keeps what could
        be read and says so in ``files.notes`` and a :class:`~kit.errors.KitWarning`.
    strict
        If true, raise :class:`~kit.errors.InputFormatError` at the first rejected line (and for a
        binary file) instead of collecting it in ``rejected``.
    log_format
        The ``log`` plugin's format string from the Corefile (``{common}``, ``{combined}`` or custom,
        e.g. ``"{remote} {type} {name} {class} {size} {rcode} {duration}"``). ``None`` reads every
        default format of every CoreDNS version. Placeholders the schema has no column for match
        any non-space text. Lines that do not match a custom format are still tried against the
        default formats (a Corefile changed while the log was written). ``None`` on a file whose
        lines mostly look like query lines of another format (a query type and a name with its
        trailing dot, at level INFO) reads them into ``other`` and warns
        (:class:`~kit.errors.KitWarning`, also in ``files.notes``) with the file, the first such
        line and this parameter's name.
    chunk_bytes
        Text processed per step (memory bound); results do not depend on it.

    Returns
    -------
    CoreDNSLog
        Frozen dataclass of frames. Every *record* of the input lands in exactly one of
        ``queries``, ``errors``, ``other``, ``rejected``, with ``source`` (the file path as
        expanded from ``source``) and ``line_no`` (1-based physical line where the record starts).
        A record is one line, except that CRI partial (``P``) records and docker json-file partial
        records are joined with the line that completes them; ``files.joined_lines`` counts the
        lines absorbed that way, so ``records + files.joined_lines.sum() == lines read``.

        Columns shared by ``queries``, ``errors`` and ``other``:

        - ``ts`` (Datetime[us, UTC]): the line's time: CoreDNS' own timestamp (1.2.6-1.6.2
          ``...Z [INFO]``; ``[dd/Mon/yyyy:...]`` before 1.2.6), else the wrapper's (CRI,
          ``kubectl --timestamps``, docker ``time``), else Go's ``yyyy/mm/dd hh:mm:ss`` std-log
          prefix (local time of the node, taken as UTC); null when the line carries none
          (CoreDNS >= 1.6.3 without a wrapper, syslog and klog prefixes without a year).
        - ``pod`` (String): pod name from ``kubectl --prefix``, stern, docker/k8s JSON metadata,
          or the kubelet log path (``/var/log/pods/<ns>_<pod>_<uid>/<container>/0.log``,
          ``/var/log/containers/<pod>_<ns>_<container>-<id>.log``).
        - ``container`` (String): container name from the same, or a compose prefix.
        - ``node`` (String): host name from a syslog/journald prefix or JSON metadata.
        - ``stream`` (String): ``stdout``/``stderr`` from CRI or docker json-file.
        - ``source`` (String): the file the line came from.
        - ``line_no`` (UInt32): 1-based physical line number in the (decompressed) file.

        ``queries`` (one row per ``log`` plugin line):

        - ``client_ip`` (String): client address, IPv6 without brackets (redacted values such as
          ``x.x.x.x`` are kept as written).
        - ``client_port`` (UInt16): client port; null when the format has none (CoreDNS 004).
        - ``query_id`` (UInt16): DNS message ID; null when the format has none.
        - ``qtype`` (String): query type (``A``, ``AAAA``, ``TYPE65534``...).
        - ``qclass`` (String): query class (``IN``, ``CH``, ``CLASS<n>``).
        - ``qname`` (String): query name as logged, case preserved, without the trailing dot.
        - ``proto`` (String): ``udp`` or ``tcp``.
        - ``req_size`` (UInt32): request size, bytes.
        - ``do_bit`` (Boolean): DNSSEC OK bit.
        - ``bufsize`` (UInt32): advertised EDNS0 UDP buffer size, bytes (65535 over TCP).
        - ``rcode`` (String): response code; null for ``-`` (no response written, CoreDNS >= 1.8.5;
          before that a failed forward logged ``NOERROR - 0 <~5 s>``).
        - ``rflags`` (String): response flags, comma separated (``qr,rd,ra``); ``""`` when the
          response had no flags; null for ``-`` and in CoreDNS 004 lines.
        - ``resp_size`` (UInt32): response size, bytes (0 when nothing was written).
        - ``duration_s`` (Float64): time spent in the plugins after ``log``, seconds (both the
          float-seconds and the Go-duration ``981.518µs`` renderings are converted).
        - ``opcode`` (UInt8): opcode from the ``{combined}`` format; null otherwise.

        ``errors`` (one row per ``errors`` plugin line or ``consolidate`` summary):

        - ``level`` (String): ``ERROR``, ``WARNING``, ``INFO``, ``DEBUG`` (consolidate levels).
        - ``rcode_num`` (UInt16): the integer rcode the plugin chain returned (2 = SERVFAIL).
        - ``qname`` (String): query name, as in ``queries``.
        - ``qtype`` (String): query type.
        - ``op`` (String): network operation of a Go ``net.OpError`` (``read``, ``dial``,
          ``select``, ``write``...); null for other errors.
        - ``transport`` (String): ``udp`` or ``tcp`` of the failed upstream operation.
        - ``local_addr`` (String): CoreDNS' own socket ``host:port`` (``read`` errors only).
        - ``upstream`` (String): the upstream ``host:port`` (IPv6 bracketed).
        - ``server_ip`` (String): the upstream host (no brackets), for joins with captures.
        - ``server_port`` (UInt16): the upstream port.
        - ``kind`` (String): ``timeout``, ``refused``, ``reset``, ``eof``, ``overflow``,
          ``no_healthy``, ``max_concurrent`` or ``other``; for a consolidate summary, the kind its
          pattern describes.
        - ``message`` (String): the error text after ``<qtype>: `` (for summaries: the pattern).
        - ``consolidated_count`` (UInt32): number of errors a ``consolidate`` summary stands for
          (they were not logged one by one); null for ordinary error lines.
        - ``consolidated_period_s`` (Float64): the summary's period, seconds.

        ``other`` (recognised lines that are neither queries nor errors):

        - ``level`` (String): the line's level (``INFO``... ; klog ``I/W/E/F`` mapped); null for
          banners and blank lines.
        - ``kind`` (String): ``plugin`` (``[INFO] plugin/reload: ...``), ``message`` (a levelled
          line without plugin, e.g. node-cache set-up), ``banner`` (``.:53``, ``CoreDNS-1.7.0``,
          ``linux/amd64, go1.16, ...``), ``maxprocs``, ``klog`` (Kubernetes client lines),
          ``config`` (Corefile lines printed after node-cache's ``Using config file:``), ``blank``.
        - ``plugin`` (String): plugin name for ``kind == "plugin"``.
        - ``message`` (String): the text after the level (and plugin prefix).

        ``rejected``: ``source``, ``line_no``, ``reason`` (String, why it did not parse: "query
        line does not match any CoreDNS log format", "errors-plugin line does not parse", "not a
        CoreDNS log line the kit recognises", "invalid JSON line (...)", ...) and ``line``
        (String, the record as read, after JSON decoding and CRI joining).

        ``files``: ``source``, ``bytes`` (UInt64, decompressed size), ``gzipped`` (Boolean),
        ``lines`` (UInt32, physical lines), ``joined_lines`` (UInt32), ``invalid_utf8``
        (UInt32, invalid UTF-8 bytes, each replaced by U+FFFD), ``skipped`` (Boolean, a binary file
        skipped in lenient mode), ``notes`` (String, damage found, or null).

    Raises
    ------
    FileNotFoundError
        A named file does not exist, or a glob or directory matches nothing.
    InputFormatError
        ``strict=True`` and a line does not parse, or a file is binary; or ``log_format`` is not
        a usable format string.
    """
    custom = _compile_log_format(log_format) if log_format is not None else None
    paths = expand_sources(source, what="CoreDNS log")
    parts: dict[str, list[pl.DataFrame]] = {
        k: [] for k in ("queries", "errors", "other", "rejected")
    }
    file_rows: list[dict[str, Any]] = []
    for path in paths:
        stats = _read_one(path, strict=strict, custom=custom, parts=parts, chunk_bytes=chunk_bytes)
        file_rows.append(stats)
    result = CoreDNSLog(
        queries=_concat(parts["queries"], QUERIES_SCHEMA),
        errors=_concat(parts["errors"], ERRORS_SCHEMA),
        other=_concat(parts["other"], OTHER_SCHEMA),
        rejected=_concat(parts["rejected"], REJECTED_SCHEMA),
        files=pl.DataFrame(file_rows, schema=FILES_SCHEMA, orient="row")
        if file_rows
        else empty_frame(FILES_SCHEMA),
    )
    for name, schema in (
        ("queries", QUERIES_SCHEMA),
        ("errors", ERRORS_SCHEMA),
        ("other", OTHER_SCHEMA),
        ("rejected", REJECTED_SCHEMA),
    ):
        check_schema(getattr(result, name), schema, name=f"CoreDNSLog.{name}")
    if result.rejected.height:
        first = result.rejected.row(0, named=True)
        msg = (
            f"{result.rejected.height} CoreDNS log line(s) did not parse and are in .rejected "
            f"(first: {first['source']}:{first['line_no']}: {first['reason']})"
        )
        log.warning("%s", msg)
        warnings.warn(msg, KitWarning, stacklevel=2)
    log.info("%r", result)
    return result


def _concat(frames: list[pl.DataFrame], schema: pl.Schema) -> pl.DataFrame:
    frames = [f for f in frames if f.height]
    if not frames:
        return empty_frame(schema)
    return pl.concat(frames, how="vertical", rechunk=False)


# ------------------------------------------------------------------------------------------------
# files and chunks
# ------------------------------------------------------------------------------------------------

_BINARY_MAGIC = (
    b"\xd4\xc3\xb2\xa1",
    b"\xa1\xb2\xc3\xd4",
    b"\x4d\x3c\xb2\xa1",
    b"\xa1\xb2\x3c\x4d",
    b"\x0a\x0d\x0d\x0a",
    b"PK\x03\x04",
    b"\x7fELF",
)
_TEXT_CONTROL = set(range(0x20)) - {0x09, 0x0A, 0x0C, 0x0D, 0x1B}


def _binary_offset(head: bytes) -> int | None:
    """Byte offset of the first binary byte when ``head`` (a file's start) is not text, else None."""
    if not head:
        return None
    if head.startswith(_BINARY_MAGIC):
        return 0
    bad = sum(1 for b in head if b in _TEXT_CONTROL)
    if bad * 20 > len(head):  # more than 5 % control bytes: not a log file
        return next(i for i, b in enumerate(head) if b in _TEXT_CONTROL)
    return None


_CRI_PARTIAL = re.compile(rb"^\S+ (?:stdout|stderr) P")


def _is_partial(line: bytes) -> bool:
    """Whether a physical line is a CRI ``P`` record or a docker json-file partial record."""
    if _CRI_PARTIAL.match(line):
        return True
    s = line.rstrip(b"\r")
    return s.startswith(b'{"log":"') and b'\\n"' not in s


def _blocks(read_at: Any, size: int, chunk_bytes: int) -> Iterator[tuple[bytes, int]]:
    """Yield ``(block, keep)``: ``block[:keep]`` ends at a line end outside a partial-record run.

    ``read_at(offset, n)`` returns up to ``n`` bytes. The bytes after ``keep`` are read again with
    the next block; handing over the whole block (not a copy of its first ``keep`` bytes) saves a
    copy of every chunk.
    """
    off = 0
    want = chunk_bytes
    while off < size:
        block = read_at(off, want)
        if not block:
            return
        if off + len(block) >= size:
            yield block, len(block)
            return
        cut = block.rfind(b"\n")
        # move the cut before trailing partial records so that joins never span two blocks
        while cut >= 0:
            start = block.rfind(b"\n", 0, cut) + 1
            if not _is_partial(block[start:cut]):
                break
            cut = start - 1
        if cut < 0:  # a line (or partial run) longer than the block: read more at once
            want *= 2
            continue
        yield block, cut + 1
        off += cut + 1
        want = chunk_bytes


_SURROGATES = re.compile("[\udc80-\udcff]")


def _lines_frame(chunk: bytes) -> tuple[pl.DataFrame, int]:
    """Split a chunk into a one-column frame of lines; count invalid UTF-8 bytes replaced."""
    try:
        return _read_lines(chunk), 0
    except (pl.exceptions.ComputeError, UnicodeDecodeError):
        text = chunk.decode("utf-8", errors="surrogateescape")
        text, n = _SURROGATES.subn("\ufffd", text)
        return _read_lines(text.encode("utf-8")), n


def _read_lines(data: bytes) -> pl.DataFrame:
    if hasattr(pl, "read_lines"):
        df = pl.read_lines(data, name="line")
    else:  # polars < 2: same semantics in Python
        text = data.decode("utf-8")
        lines = text.split("\n")
        if lines and lines[-1] == "":
            lines.pop()
        df = pl.DataFrame(
            {"line": [s.removesuffix("\r") for s in lines]}, schema={"line": pl.String}
        )
    return df


_UNRECOGNISED = "not a CoreDNS log line the kit recognises"


def _raise_first(rejected: pl.DataFrame, source: str, custom: _CustomFormat | None) -> None:
    row = rejected.row(0, named=True)
    raise InputFormatError(
        row["reason"],
        path=source,
        line=row["line_no"],
        excerpt=row["line"],
        hint="Pass strict=False to collect such lines in CoreDNSLog.rejected"
        + ("" if custom else ", or log_format= if the Corefile sets a custom log format"),
    )


def _config_fixup(mine: dict[str, list[pl.DataFrame]]) -> None:
    """Move Corefile lines printed after node-cache's ``Using config file:`` to ``other``.

    Chunks are parsed independently, so a Corefile dump that starts in one chunk and continues in
    the next is only recognised here, over the whole file.
    """
    rej = _concat(mine["rejected"], REJECTED_SCHEMA)
    unrec = rej.filter(pl.col("reason") == _UNRECOGNISED)
    if unrec.is_empty():
        return
    other = _concat(mine["other"], OTHER_SCHEMA)
    if not other["message"].str.ends_with("Using config file:").any():
        return
    events = pl.concat(
        [
            _concat(mine["queries"], QUERIES_SCHEMA).select("line_no", pl.lit(False).alias("f")),
            _concat(mine["errors"], ERRORS_SCHEMA).select("line_no", pl.lit(False).alias("f")),
            other.filter(pl.col("kind") != "config").select(
                "line_no", pl.col("message").str.ends_with("Using config file:").alias("f")
            ),
            other.filter(pl.col("kind") == "config").select(
                "line_no", pl.lit(None, pl.Boolean).alias("f")
            ),
            rej.filter(pl.col("reason") != _UNRECOGNISED).select(
                "line_no", pl.lit(False).alias("f")
            ),
            unrec.select("line_no", pl.lit(None, pl.Boolean).alias("f")),
        ]
    ).sort("line_no")
    state = events.with_columns(pl.col("f").forward_fill().fill_null(False))
    move = unrec.join(state.filter(pl.col("f")).select("line_no"), on="line_no", how="semi")
    if move.is_empty():
        return
    moved = move.select(
        pl.lit(None, UTC).alias("ts"),
        pl.lit(None, _STR).alias("level"),
        pl.lit("config").alias("kind"),
        pl.lit(None, _STR).alias("plugin"),
        pl.col("line").str.strip_chars().alias("message"),
        *[pl.lit(None, _STR).alias(w) for w in _WRAPPER_COLUMNS],
        pl.col("source"),
        pl.col("line_no"),
    )
    mine["other"] = [pl.concat([other, moved]).sort("line_no")]
    mine["rejected"] = [rej.join(move.select("line_no"), on="line_no", how="anti")]


def _work(
    block: bytes, keep: int, source: str, custom: _CustomFormat | None
) -> tuple[int, int, pl.DataFrame | None, pl.DataFrame]:
    """Split ``block[:keep]`` into lines numbered from 1 and take the fast path.

    Returns the number of lines, invalid UTF-8 bytes, the fast-path queries (or None) and the
    rows (``line_no``, ``line``) left for the general path, which runs on the leftovers of several
    blocks at once (:func:`_read_one`): its cost is mostly per call, and most blocks leave only a
    few lines.
    """
    if _fastlog is not None and keep <= _NATIVE_MAX_BYTES and (custom is None or custom.is_default):
        layout = _guess_layout(_sample_lines(block, keep))
        if layout is not None:
            return _native_work(block, keep, layout, source)
    lines, bad = _lines_frame(block)
    if keep < len(block):
        tail = block.count(b"\n", keep) + (0 if block.endswith(b"\n") else 1)
        lines = lines.head(lines.height - tail)
        if bad:  # the tail is read again with the next block: count only this block's bytes
            lines, bad = _lines_frame(block[:keep])
    df = lines.with_row_index("line_no", offset=1)
    quick, rest = _fast_part(df, source=source, custom=custom)
    if rest.height and quick is not None:
        # ``filter`` keeps string views into the whole block's text: copy the few lines left so
        # the block is freed now, not when their batch runs (at 0.1 % leftovers a batch gathers
        # ~50 M lines, so the views would hold the file's whole text until the end)
        rest = rest.with_columns(pl.col("line") + "")
    return lines.height, bad, quick, rest


def _sample_lines(block: bytes, keep: int, n: int = 256) -> pl.Series:
    """About ``n`` lines spread over ``block[:keep]`` (for :func:`_guess_layout`)."""
    out: list[str] = []
    step = max(1, keep // n)
    off = 0
    while off < keep:
        end = block.find(b"\n", off, keep)
        end = keep if end < 0 else end
        out.append(block[off : min(end, off + 4096)].decode("utf-8", "replace").removesuffix("\r"))
        nxt = block.find(b"\n", max(end, off + step), keep)
        if nxt < 0:
            break
        off = nxt + 1
    return pl.Series("line", out, dtype=pl.String)


def _native_work(
    block: bytes, keep: int, layout: _Layout, source: str
) -> tuple[int, int, pl.DataFrame | None, pl.DataFrame]:
    """:func:`_work` with the native tokenizer: same results as the polars fast path.

    ``kit/_fastlog.c`` takes a line only when every check of :func:`_fast_queries` holds (it is
    stricter in places: plain digit runs, Zulu stamps, valid UTF-8); every other line comes back
    as text, for the general path.
    """
    assert _fastlog is not None

    def idx(i: int | None) -> int:
        return -1 if i is None else i

    n, schema, array, rest_text, rest_no = _fastlog.parse_block(
        block, keep, layout.tokens, idx(layout.ts), idx(layout.stream), idx(layout.pod)
    )
    frame = pl.DataFrame(ArrowArray(schema, array))
    quick = None
    if frame.height:  # the tokenizer has every query column but these two
        extra = {"node": pl.lit(None, _STR), "source": pl.lit(source, _STR)}
        quick = frame.select(
            extra[c].alias(c) if c in extra else pl.col(c) for c in QUERIES_SCHEMA
        ).cast(dict(QUERIES_SCHEMA))  # type: ignore[arg-type]
    bad = 0
    if rest_text:
        lines, bad = _lines_frame(rest_text)
        nos = np.frombuffer(rest_no, dtype=np.uint32)
        if lines.height != len(nos):  # pragma: no cover - a tokenizer bug, never silent
            raise RuntimeError(
                f"{source}: native tokenizer returned {len(nos)} line numbers for "
                f"{lines.height} lines; set kit.sources.coredns._fastlog = None and report this"
            )
        rest = lines.select(pl.Series("line_no", nos, dtype=pl.UInt32), pl.col("line"))
    else:
        rest = pl.DataFrame(schema={"line_no": pl.UInt32, "line": pl.String})
    return n, bad, quick, rest


def _native_usable() -> bool:
    """The extension imported, and this polars takes its output (Arrow string views)."""
    if _fastlog is None:
        return False
    line = b'[INFO] 10.0.0.1:53 - 1 "A IN a.example. udp 29 false 512" NOERROR qr,rd 45 0.5s\n'
    try:
        _, schema, array, _, _ = _fastlog.parse_block(line, len(line), 0, -1, -1, -1)
        row = pl.DataFrame(ArrowArray(schema, array)).row(0, named=True)
    except Exception as exc:  # an old polars, a broken build: say so, use the polars path
        log.warning("kit._fastlog is not usable (%s); CoreDNS logs use the polars-only path", exc)
        return False
    if row["qname"] == "a.example" and row["duration_s"] == 0.5:
        return True
    log.warning("kit._fastlog misread a known line (%r); CoreDNS logs use the polars path", row)
    return False


if not _native_usable():
    _fastlog = None  # type: ignore[assignment]


@contextmanager
def _tokenizer(module: Any) -> Iterator[None]:
    """Read with ``module`` as the native tokenizer (``None``: the polars-only path) inside the
    block, then restore it; for tests and benchmarks that compare the two paths."""
    global _fastlog
    saved, _fastlog = _fastlog, module
    try:
        yield
    finally:
        _fastlog = saved


NATIVE: bool = _fastlog is not None
"""True when default-format query lines are split by the native tokenizer (``kit/_fastlog.c``);
false when the extension was not built (or this polars cannot take its output), and the
polars-only path, with the same results, is used."""


# leftover rows (not fast-path queries) gathered before the general path runs on them
_GENERAL_BATCH_ROWS = 50_000


_POD_LOG_PATH = re.compile(
    r"/pods/[^/_]+_(?P<pod>[^/_]+)_[^/]+/(?P<container>[^/]+)/\d+\.log(?:\.[^/]*)?$"
)
_CONTAINER_LOG_PATH = re.compile(
    r"/containers/(?P<pod>[^/_]+)_[^/_]+_(?P<container>[^/]+)-[0-9a-f]{64}\.log(?:\.[^/]*)?$"
)


def _pod_from_path(path: Path) -> tuple[str | None, str | None]:
    """Pod and container from kubelet's log paths (``/var/log/pods/<ns>_<pod>_<uid>/<c>/0.log``
    and ``/var/log/containers/<pod>_<ns>_<c>-<id>.log``), else ``(None, None)``."""
    text = path.resolve().as_posix()
    m = _POD_LOG_PATH.search(text) or _CONTAINER_LOG_PATH.search(text)
    return (m["pod"], m["container"]) if m else (None, None)


def _in_line_order(frames: list[pl.DataFrame]) -> list[pl.DataFrame]:
    """``frames`` (each sorted by ``line_no``) as a list whose concatenation is sorted."""
    frames = [f for f in frames if f.height]
    last = -1
    for f in frames:
        first = f["line_no"][0]
        if first <= last:
            break
        last = f["line_no"][-1]
    else:
        return frames
    # general-path batches interleave with the fast-path blocks (line numbers are unique)
    return [pl.concat(frames, rechunk=False).sort("line_no")]


def _read_one(
    path: Path,
    *,
    strict: bool,
    custom: _CustomFormat | None,
    parts: dict[str, list[pl.DataFrame]],
    chunk_bytes: int,
) -> dict[str, Any]:
    source = os.fspath(path)
    notes: list[str] = []
    gz = False
    with open_input(path, what="CoreDNS log") as fh:  # a regular file, or a KitError
        head = fh.read(2)
    if head == b"\x1f\x8b":
        raw = read_raw(path)
        gz = True
        notes.extend(raw.notes)
        for n in raw.notes:
            warnings.warn(f"{source}: {n}", KitWarning, stacklevel=3)
        data_head = raw.data[:8192]

        data = raw.data
        size = len(data)

        def read_at(off: int, n: int) -> bytes:
            return data[off : off + n]
    else:
        with open(path, "rb") as fh:
            data_head = fh.read(8192)

        size = path.stat().st_size

        def read_at(off: int, n: int) -> bytes:
            return os.pread(fd, n, off)

    stats: dict[str, Any] = {
        "source": source,
        "bytes": size,
        "gzipped": gz,
        "lines": 0,
        "joined_lines": 0,
        "invalid_utf8": 0,
        "skipped": False,
        "notes": None,
    }
    off = _binary_offset(data_head)
    if off is not None:
        msg = "binary data, not a text log (a capture or archive?)"
        if strict:
            raise InputFormatError(
                msg,
                path=source,
                offset=off,
                excerpt=data_head[off : off + 16].decode("latin-1"),
                hint="Point read_coredns_log at CoreDNS log files; read captures with kit.read_capture",
            )
        notes.append(f"skipped: {msg} (byte offset {off})")
        warnings.warn(f"{source}: skipped: {msg}", KitWarning, stacklevel=3)
        stats["skipped"] = True
        stats["notes"] = "; ".join(notes)
        return stats
    mine: dict[str, list[pl.DataFrame]] = {k: [] for k in parts}
    seen_unrec: list[int] = []
    pod, container = _pod_from_path(path)
    fd = -1 if gz else os.open(path, os.O_RDONLY)
    try:
        with ThreadPoolExecutor(max_workers=_WORKERS) as pool:
            pending: deque[tuple[bool, Future[Any]]] = deque()

            leftovers: list[pl.DataFrame] = []
            n_left = 0

            def take(out: dict[str, pl.DataFrame]) -> None:
                if pod or container:
                    for k in ("queries", "errors", "other"):
                        out[k] = out[k].with_columns(
                            pl.col("pod").fill_null(pl.lit(pod, _STR)),
                            pl.col("container").fill_null(pl.lit(container, _STR)),
                        )
                rej = out["rejected"]
                if strict and rej.height:
                    # an unrecognised line may still turn out to be part of a Corefile dump
                    # (decided over the whole file): raise early only if none precedes
                    unrec = rej.filter(pl.col("reason") == _UNRECOGNISED)
                    if unrec.height:
                        seen_unrec.append(int(unrec["line_no"].min()))  # type: ignore[arg-type]
                    hard = rej.filter(pl.col("reason") != _UNRECOGNISED)
                    if hard.height and (not seen_unrec or min(seen_unrec) > hard["line_no"][0]):
                        _raise_first(hard, source, custom)
                for k, v in out.items():
                    mine[k].append(v)

            def flush() -> None:
                nonlocal n_left
                if leftovers:
                    rows = pl.concat(leftovers) if len(leftovers) > 1 else leftovers[0]
                    leftovers.clear()
                    n_left = 0
                    fut = pool.submit(_general_part, rows, source=source, custom=custom)
                    pending.append((True, fut))

            def collect(item: tuple[bool, Future[Any]]) -> None:
                nonlocal n_left
                general, fut = item
                if general:  # a batch of leftover lines: its line numbers are final
                    out, joined = fut.result()
                    stats["joined_lines"] += joined
                    take(out)
                    return
                n, bad, quick, rest = fut.result()
                base = stats["lines"]
                stats["invalid_utf8"] += bad
                stats["lines"] += n
                if quick is not None:
                    out = _empty_out()
                    out["queries"] = quick.with_columns(pl.col("line_no") + base)
                    take(out)
                if rest.height:
                    leftovers.append(rest.with_columns(pl.col("line_no") + base))
                    n_left += rest.height
                    if n_left >= _GENERAL_BATCH_ROWS or strict:
                        flush()

            for block, keep in _blocks(read_at, size, chunk_bytes):
                pending.append((False, pool.submit(_work, block, keep, source, custom)))
                while len(pending) >= _WORKERS:
                    collect(pending.popleft())
            while pending:
                collect(pending.popleft())
            flush()
            while pending:
                collect(pending.popleft())
    finally:
        if not gz:
            os.close(fd)
    for k in mine:
        mine[k] = _in_line_order(mine[k])
    _config_fixup(mine)
    if custom is None:
        note = _unknown_format_note(mine["other"], stats, source)
        if note:
            notes.append(note)
            log.warning("%s", note)
            warnings.warn(note, KitWarning, stacklevel=3)
    if strict:
        rej = _concat(mine["rejected"], REJECTED_SCHEMA)
        if rej.height:
            _raise_first(rej.sort("line_no"), source, custom)
    for k, v in mine.items():
        parts[k].extend(v)
    if stats["invalid_utf8"]:
        notes.append(f"{stats['invalid_utf8']} invalid UTF-8 byte(s) replaced by U+FFFD")
        log.warning("%s: %s", source, notes[-1])
    stats["notes"] = "; ".join(notes) if notes else None
    return stats


def _unknown_format_note(
    other: list[pl.DataFrame], stats: dict[str, Any], source: str
) -> str | None:
    """A warning when most records of a file look like query lines of a format the kit does not
    know (the Corefile's ``log`` sets a custom format and ``log_format=`` was not given): they
    would otherwise sit in ``other`` as INFO messages while ``queries`` stays empty."""
    frames = [f for f in other if f.height]
    if not frames:
        return None
    o = pl.concat(frames)
    m = pl.col("message")
    like = o.filter(
        (pl.col("kind") == "message")
        & (pl.col("level") == "INFO")
        & m.str.contains(_RE_QTYPE_WORD)
        & m.str.contains(_RE_FQDN_WORD)
    )
    blank = int((o["kind"] == "blank").sum())
    records = stats["lines"] - stats["joined_lines"] - blank
    if not like.height or like.height <= UNKNOWN_FORMAT_SHARE * records:
        return None
    first = like.sort("line_no").row(0, named=True)
    return (
        f"{source}: {like.height} of {records} lines look like query-log lines in a format the "
        f"kit does not know, and were read as INFO messages into .other (first, line "
        f"{first['line_no']}: {first['message'][:200]!r}); if the Corefile's log plugin sets a "
        "format, pass it as log_format= (e.g. read_coredns_log(path, "
        'log_format="{remote} {type} {name} {rcode} {duration}"), or '
        "kit.read_corefile(...).log_format(zone))"
    )


# ------------------------------------------------------------------------------------------------
# custom log formats
# ------------------------------------------------------------------------------------------------

# placeholder -> (capture group name, regex)
_PLACEHOLDERS: dict[str, tuple[str, str]] = {
    "{remote}": ("remote", r"\[[^\]\s]*\]|[^\s\[\]\"]+?"),
    "{port}": ("port", r"\d+"),
    "{>id}": ("id", r"\d+"),
    "{type}": ("type", r"\S+?"),
    "{class}": ("class", r"\S+?"),
    "{name}": ("name", r'(?:\\.|[^ \\"])+'),
    "{proto}": ("proto", r"udp|tcp"),
    "{size}": ("size", r"\d+"),
    "{>do}": ("do", r"true|false"),
    "{>bufsize}": ("bufsize", r"\d+"),
    "{rcode}": ("rcode", r"\S+?"),
    "{>rflags}": ("rflags", r"[a-z,]*|-"),
    "{rsize}": ("rsize", r"\d+"),
    "{duration}": ("duration", r"[0-9][0-9.a-zµμ]*"),
    "{>opcode}": ("opcode", r"\d+"),
    "{when}": ("when", r"[^\]]+"),
}
_REGEX_META = set("\\.+*?()|[]{}^$#&-~")


@dataclass(frozen=True)
class _CustomFormat:
    text: str
    regex: str
    is_default: bool


def _compile_log_format(fmt: str) -> _CustomFormat:
    """Turn a ``log`` plugin format string into an anchored regex with named groups."""
    if not isinstance(fmt, str) or not fmt.strip():
        raise InputFormatError(
            f"log_format must be a non-empty format string, not {fmt!r}",
            hint='Pass the last argument of the Corefile\'s log line, e.g. "{common}"',
        )
    text = fmt.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'`":
        text = text[1:-1]
    text = text.replace("{common}", COMMON_LOG_FORMAT).replace("{combined}", COMBINED_LOG_FORMAT)
    is_default = text in (COMMON_LOG_FORMAT, COMBINED_LOG_FORMAT)
    out: list[str] = ["^"]
    used: set[str] = set()
    for tok in re.split(r"(\{[^{}\s]*\})", text):
        if not tok:
            continue
        if tok in _PLACEHOLDERS:
            name, rx = _PLACEHOLDERS[tok]
            if name in used:
                out.append(f"(?:{rx})")
            else:
                used.add(name)
                out.append(f"(?<{name}>{rx})")
        elif tok.startswith("{") and tok.endswith("}"):
            out.append(r"\S*?")  # a placeholder without a column ({local}, {/meta}, ...)
        else:
            out.append("".join("\\" + c if c in _REGEX_META else c for c in tok))
    out.append("$")
    if not used:
        raise InputFormatError(
            f"log_format {fmt!r} has no placeholder the kit can read",
            hint="Use CoreDNS placeholders such as {remote} {name} {type} {rcode} {duration}",
        )
    return _CustomFormat(text=text, regex="".join(out), is_default=is_default)


# ------------------------------------------------------------------------------------------------
# chunk parsing
# ------------------------------------------------------------------------------------------------

_STR = pl.String()


def _parse_chunk(
    lines: pl.DataFrame, *, source: str, first_line: int, custom: _CustomFormat | None
) -> tuple[dict[str, pl.DataFrame], int]:
    """Classify the lines of one chunk; returns the four frames and the number of joined lines."""
    if lines.height == 0:
        return _empty_out(), 0
    df = lines.with_row_index("line_no", offset=first_line)
    quick, rest = _fast_part(df, source=source, custom=custom)
    out, joined = _general_part(rest, source=source, custom=custom)
    if quick is not None:
        out["queries"] = _merge_queries(quick, out["queries"])
    return out, joined


def _merge_queries(quick: pl.DataFrame, rest: pl.DataFrame) -> pl.DataFrame:
    """Merge two query frames, each sorted by ``line_no``, into one sorted frame."""
    if rest.is_empty():
        return quick
    if quick.is_empty():
        return rest
    return quick.merge_sorted(rest, key="line_no")


def _fast_part(
    df: pl.DataFrame, *, source: str, custom: _CustomFormat | None
) -> tuple[pl.DataFrame | None, pl.DataFrame]:
    """Split off the well-formed default-format query lines of ``df`` (``line_no``, ``line``).

    Returns their :data:`QUERIES_SCHEMA` rows (or None when none matched) and the rows left for
    :func:`_general_part`. Plain, kubectl-stamped or CRI query lines are split straight from the
    raw line (see :func:`_fast_queries`).
    """
    if df.height == 0 or not (custom is None or custom.is_default):
        return None, df
    layout = _guess_layout(df["line"])
    if layout is None:
        return None, df
    fast = _fast_queries(df, source, col="line", layout=layout)
    ok = fast["_ok"]
    if not ok.any():
        return None, df
    every = bool(ok.all())
    quick = (fast if every else fast.filter(ok)).drop("_ok")
    quick = quick.cast(dict(QUERIES_SCHEMA))  # type: ignore[arg-type]
    return quick, (df.clear() if every else df.filter(~ok))


def _general_part(
    df: pl.DataFrame, *, source: str, custom: _CustomFormat | None
) -> tuple[dict[str, pl.DataFrame], int]:
    """Classify any lines (``line_no``, ``line``): wrappers, levels, queries, errors, other."""
    if df.height == 0:
        return _empty_out(), 0
    df = df.with_columns(
        pl.col("line").alias("body"),
        pl.lit(None, _STR).alias("ts_wrap"),
        pl.lit(None, _STR).alias("ts_cd"),
        pl.lit(None, _STR).alias("golog"),
        *[pl.lit(None, _STR).alias(c) for c in _WRAPPER_COLUMNS],
        pl.lit(None, _STR).alias("pre_reason"),
    )
    joined = 0
    if df["body"].str.starts_with("{").any():
        df, j = _decode_json(df)
        joined += j
    if df["body"].str.contains(_RE_CRI).any():
        df, j = _strip_cri(df)
        joined += j
    df = _strip_prefixes(df)
    df = _split_level(df)
    return _classify(df, source=source, custom=custom), joined


def _empty_out() -> dict[str, pl.DataFrame]:
    return {
        "queries": empty_frame(QUERIES_SCHEMA),
        "errors": empty_frame(ERRORS_SCHEMA),
        "other": empty_frame(OTHER_SCHEMA),
        "rejected": empty_frame(REJECTED_SCHEMA),
    }


def _merge(rest: pl.DataFrame, changed: pl.DataFrame) -> pl.DataFrame:
    if rest.height == 0:
        return changed
    return pl.concat([rest, changed.select(rest.columns)], how="vertical").sort("line_no")


_JSON_DTYPE = pl.Struct(
    {
        "log": pl.String(),
        "message": pl.String(),
        "stream": pl.String(),
        "time": pl.String(),
        "kubernetes": pl.Struct(
            {
                "pod": pl.Struct({"name": pl.String()}),
                "node": pl.Struct({"name": pl.String()}),
                "container": pl.Struct({"name": pl.String()}),
                "pod_name": pl.String(),
                "container_name": pl.String(),
                "host": pl.String(),
            }
        ),
    }
)


def _decode_json(df: pl.DataFrame) -> tuple[pl.DataFrame, int]:
    """Decode docker json-file (``log``) and shipper (``message``) JSON lines, joining partials.

    The common case (every JSON line of the block well formed, no partial record) is decoded by
    polars; otherwise the block's JSON lines are decoded line by line in Python.
    """
    mask = df["body"].str.starts_with("{")
    sub = df.filter(mask)
    try:
        dec = sub["body"].str.json_decode(_JSON_DTYPE).struct.unnest()
    except pl.exceptions.PolarsError:
        return _decode_json_lines(df)
    k = dec["kubernetes"].struct
    text = dec["log"].fill_null(dec["message"])
    good = (
        text.is_not_null()
        & sub["body"].str.contains(r'"(?:log|message)"\s*:\s*"')
        & (dec["log"].is_null() | dec["log"].str.ends_with("\n"))
    )
    if not good.all():
        return _decode_json_lines(df)
    body = text.str.strip_chars_end("\r\n")
    sub = sub.with_columns(
        body.alias("body"),
        body.alias("line"),
        dec["time"].alias("ts_wrap"),
        dec["stream"].alias("stream"),
        k.field("pod").struct.field("name").fill_null(k.field("pod_name")).alias("pod"),
        k.field("container")
        .struct.field("name")
        .fill_null(k.field("container_name"))
        .alias("container"),
        k.field("node").struct.field("name").fill_null(k.field("host")).alias("node"),
    )
    if bool(mask.all()):
        return sub, 0
    return _merge(df.filter(~mask), sub), 0


def _decode_json_lines(df: pl.DataFrame) -> tuple[pl.DataFrame, int]:
    """Python fallback of :func:`_decode_json`: one ``json.loads`` per line, partials joined."""
    mask = df["body"].str.starts_with("{")
    rest = df.filter(~mask)
    sub = df.filter(mask)
    rows: list[dict[str, Any]] = []
    pending: dict[str, Any] | None = None
    joined = 0
    prev_no = -2
    for rec in sub.iter_rows(named=True):
        line_no = rec["line_no"]
        try:
            obj = json.loads(rec["line"])
            if not isinstance(obj, dict):
                raise ValueError("not a JSON object")
        except (ValueError, RecursionError) as exc:  # RecursionError: nested too deeply
            if pending is not None:
                rows.append(pending)
                pending = None
            rec["pre_reason"] = f"invalid JSON line ({exc})"
            rows.append(rec)
            prev_no = line_no
            continue
        text = obj.get("log", obj.get("message"))
        if not isinstance(text, str):
            if pending is not None:
                rows.append(pending)
                pending = None
            rec["pre_reason"] = "JSON line without a string 'log' or 'message' field"
            rows.append(rec)
            prev_no = line_no
            continue
        kube = obj.get("kubernetes") if isinstance(obj.get("kubernetes"), dict) else {}
        is_docker = "log" in obj
        complete = not is_docker or text.endswith("\n")
        if (
            pending is not None
            and line_no == prev_no + 1
            and pending["stream"] == obj.get("stream")
        ):
            pending["body"] += text
            joined += 1
            if complete:
                pending["body"] = pending["body"].rstrip("\r\n")
                pending["line"] = pending["body"]
                rows.append(pending)
                pending = None
            prev_no = line_no
            continue
        if pending is not None:
            rows.append(pending)
            pending = None
        rec.update(
            body=text,
            ts_wrap=obj.get("time") if isinstance(obj.get("time"), str) else None,
            stream=obj.get("stream") if isinstance(obj.get("stream"), str) else None,
            pod=_dig(kube, "pod", "name") or _dig(kube, "pod_name"),
            container=_dig(kube, "container", "name") or _dig(kube, "container_name"),
            node=_dig(kube, "node", "name") or _dig(kube, "host"),
        )
        if complete:
            rec["body"] = text.rstrip("\r\n")
            rec["line"] = rec["body"]
            rows.append(rec)
        else:
            pending = rec
        prev_no = line_no
    if pending is not None:
        pending["line"] = pending["body"]
        rows.append(pending)
    changed = pl.DataFrame(rows, schema=df.schema, orient="row")
    return _merge(rest, changed), joined


def _dig(obj: Any, *keys: str) -> str | None:
    for k in keys:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(k)
    return obj if isinstance(obj, str) else None


def _strip_cri(df: pl.DataFrame) -> tuple[pl.DataFrame, int]:
    """Split CRI records ``<RFC3339Nano> <stream> <P|F>[:tags] <content>`` and join ``P`` runs."""
    mask = df["body"].str.contains(_RE_CRI)
    every = bool(mask.all())
    sub = df if every else df.filter(mask)
    rest = None if every else df.filter(~mask)
    parts = sub["body"].str.splitn(" ", 4).struct.unnest()
    sub = sub.with_columns(
        parts["field_0"].alias("ts_wrap"),
        parts["field_1"].alias("stream"),
        parts["field_3"].fill_null("").alias("body"),
        parts["field_2"].str.starts_with("P").alias("_partial"),
    )
    joined = 0
    if sub["_partial"].any():
        sub, joined = _join_partials(sub)
    sub = sub.drop("_partial")
    return (sub if rest is None else _merge(rest, sub)), joined


def _join_partials(sub: pl.DataFrame) -> tuple[pl.DataFrame, int]:
    """Join each run of CRI ``P`` records with the record that ends it (same stream, next line)."""
    partial = sub["_partial"]
    involved = partial | partial.shift(1, fill_value=False)
    idx = involved.arg_true().to_list()
    line_nos = sub["line_no"].to_list()
    streams = sub["stream"].to_list()
    bodies = sub["body"].to_list()
    lines = sub["line"].to_list()
    plist = partial.to_list()
    drop: list[int] = []
    new_body: dict[int, str] = {}
    head: int | None = None
    for i in idx:
        cont = (
            head is not None
            and line_nos[i] == line_nos[i - 1] + 1
            and streams[i] == streams[head]
            and plist[i - 1]
        )
        if cont and head is not None:
            new_body[head] = new_body.get(head, bodies[head]) + bodies[i]
            drop.append(i)
            if not plist[i]:
                head = None
        else:
            head = i if plist[i] else None
    if not new_body:
        return sub, 0
    body_list = list(bodies)
    line_list = list(lines)
    for h, b in new_body.items():
        body_list[h] = b
        line_list[h] = b
    keep = [True] * sub.height
    for j in drop:
        keep[j] = False
    sub = sub.with_columns(
        pl.Series("body", body_list, _STR), pl.Series("line", line_list, _STR)
    ).filter(pl.Series(values=keep, dtype=pl.Boolean))
    return sub, len(drop)


def _update_rows(df: pl.DataFrame, mask: pl.Series, fn: Any) -> pl.DataFrame:
    """Apply ``fn`` (row-preserving) to the rows selected by ``mask`` and write them back in place."""
    if not mask.any():
        return df
    if mask.all():
        return fn(df)
    idx = mask.arg_true()
    sub = fn(df.filter(mask))
    cols = [
        df[name].clone().scatter(idx, sub[name].cast(df[name].dtype))
        for name in sub.columns
        if name in df.columns
    ]
    return df.with_columns(cols)


def _extract_strip(
    df: pl.DataFrame, detect: str, extract: str, assign: dict[str, pl.Expr]
) -> pl.DataFrame:
    """On rows whose body matches ``detect``, apply ``extract`` (groups + ``rest``) and assign."""

    def fn(sub: pl.DataFrame) -> pl.DataFrame:
        groups = sub["body"].str.extract_groups(extract).struct.unnest()
        sub = pl.concat([sub, groups.rename(lambda c: f"_g_{c}")], how="horizontal")
        return sub.with_columns(**assign, body=pl.col("_g_rest")).drop(
            [c for c in sub.columns if c.startswith("_g_")]
        )

    return _update_rows(df, df["body"].str.contains(detect), fn)


def _strip_ts(df: pl.DataFrame) -> pl.DataFrame:
    """Strip one leading RFC 3339 timestamp; the first goes to ``ts_wrap``, a second to ``ts_cd``."""

    def fn(sub: pl.DataFrame) -> pl.DataFrame:
        # the timestamp is ASCII (checked by the regex), so its byte length is its char length
        cut = pl.col("body").str.find(" ", literal=True)
        first = pl.col("ts_wrap").is_null()
        return (
            sub.with_columns(
                pl.col("body").str.slice(0, cut).alias("_t"),
                pl.col("body").str.slice(cut + 1).alias("body"),
            )
            .with_columns(
                pl.when(first).then(pl.col("_t")).otherwise(pl.col("ts_wrap")).alias("ts_wrap"),
                pl.when(first).then(pl.col("ts_cd")).otherwise(pl.col("_t")).alias("ts_cd"),
            )
            .drop("_t")
        )

    return _update_rows(df, df["body"].str.contains(_RE_TS), fn)


def _needs_prefix_work(df: pl.DataFrame) -> pl.Series:
    """Rows whose body does not (yet) start with a CoreDNS level tag: they may carry a prefix."""
    b = df["body"]
    return ~b.str.starts_with("[") | b.str.starts_with("[pod/")


def _strip_prefixes(df: pl.DataFrame) -> pl.DataFrame:
    """Remove collection-tool prefixes, timestamps and surrounding blanks from ``body``.

    Prefixes nest (kubectl ``--prefix``, then the kubelet stamp, then CoreDNS' own stamp...), so
    this runs in rounds, each on the rows that still do not start with a level tag and changed in
    the previous round.
    """
    b = df["body"]
    if b.str.starts_with(" ").any() or b.str.starts_with("\t").any():
        df = df.with_columns(pl.col("body").str.strip_chars_start(" \t"))
    if b.str.ends_with(" ").any() or b.str.ends_with("\t").any() or b.str.ends_with("\r").any():
        df = df.with_columns(pl.col("body").str.strip_chars_end(" \t\r"))
    active = _needs_prefix_work(df)
    for _ in range(8):
        if not active.any():
            break
        before = df["body"].str.len_bytes()
        df = _update_rows(df, active, _strip_one_round)
        active = active & (df["body"].str.len_bytes() != before) & _needs_prefix_work(df)
    return df


def _strip_one_round(df: pl.DataFrame) -> pl.DataFrame:
    """Strip at most one prefix of each kind from every row of ``df``."""
    if df["body"].str.starts_with("[pod/").any():
        df = _extract_strip(
            df,
            _RE_KPREFIX,
            r"^\[pod/(?<pod>[^/\] ]+)/(?<container>[^\] ]+)\] (?<rest>.*)$",
            {"pod": pl.col("_g_pod"), "container": pl.col("_g_container")},
        )
    df = _strip_ts(df)
    df = _update_rows(df, _needs_prefix_work(df), _strip_rare)
    if df["body"].str.starts_with(" ").any():
        df = df.with_columns(pl.col("body").str.strip_chars_start(" \t"))
    return df


def _strip_rare(df: pl.DataFrame) -> pl.DataFrame:
    df = _extract_strip(
        df,
        _RE_COMPOSE,
        r"^(?<c>[A-Za-z0-9][A-Za-z0-9_.-]*) *\| (?<rest>.*)$",
        {"container": pl.col("_g_c")},
    )
    df = _extract_strip(
        df,
        _RE_SYSLOG,
        r"^[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d (?<node>[^\s:]+) [^\s:\[]+(?:\[\d+\])?: (?<rest>.*)$",
        {"node": pl.col("_g_node")},
    )
    df = _extract_strip(
        df,
        _RE_STERN,
        rf"^(?<a>[A-Za-z0-9][A-Za-z0-9_.-]*)(?: (?<b>[A-Za-z0-9][A-Za-z0-9_.-]*))? (?<rest>\[(?:{_LEVEL_ALT})\] .*)$",
        {
            "pod": pl.when(pl.col("_g_b").is_not_null())
            .then(pl.col("_g_a"))
            .otherwise(pl.col("pod")),
            "container": pl.coalesce(pl.col("_g_b"), pl.col("_g_a")),
        },
    )
    return _extract_strip(
        df,
        _RE_GOLOG,
        r"^(?<g>\d{4}/\d\d/\d\d \d\d:\d\d:\d\d(?:\.\d+)?) (?<rest>.*)$",
        {"golog": pl.col("_g_g")},
    )


def _split_level(df: pl.DataFrame) -> pl.DataFrame:
    """Take ``[INFO] `` etc. off ``body`` into ``level`` (null when there is none)."""
    b = pl.col("body")
    if df["body"].str.starts_with("[INFO] ").all():
        return df.with_columns(pl.lit("INFO", _STR).alias("level"), b.str.slice(7).alias("body"))
    cut: Any = pl.lit(0, pl.UInt32)
    for name in reversed(LEVELS):
        tag = f"[{name}] "
        cut = pl.when(b.str.starts_with(tag)).then(pl.lit(len(tag), pl.UInt32)).otherwise(cut)
    return (
        df.with_columns(cut.alias("_cut"))
        .with_columns(
            pl.when(pl.col("_cut") > 0)
            .then(b.str.slice(1, pl.col("_cut") - 3))
            .otherwise(None)
            .alias("level"),
            b.str.slice(pl.col("_cut")).alias("body"),
        )
        .drop("_cut")
    )


def _rfc3339(col: str) -> pl.Expr:
    """Parse RFC 3339 stamps to UTC; ``...Z`` stamps take a cheaper path (seconds are cached).

    The cheap path covers ``YYYY-MM-DDTHH:MM:SS[.f{1,9}]Z`` (what Go's RFC3339Nano writes in UTC:
    kubelet, kubectl ``--timestamps``, CoreDNS 1.2.6-1.6.2): the seconds go through a cached
    ``to_datetime``, the first six fraction digits are read as microseconds. Anything else
    (offsets, comma decimals) goes through the general parser, computed only for those rows.
    """
    s = pl.col(col)
    n = s.str.len_bytes()
    zulu = s.str.ends_with("Z") & (n <= 30) & ((n == 20) | (s.str.slice(19, 1) == "."))
    frac = s.str.slice(20, 6).str.strip_suffix("Z").str.pad_end(6, "0").cast(pl.Int64, strict=False)
    secs = s.str.slice(0, 19).str.to_datetime(
        "%Y-%m-%dT%H:%M:%S", time_unit="us", time_zone="UTC", strict=False, cache=True
    )
    fast = pl.when(zulu).then(secs + pl.duration(microseconds=frac))
    generic = (
        pl.when(~zulu)
        .then(s)
        .str.replace(",", ".", literal=True)
        .str.to_datetime(
            "%Y-%m-%dT%H:%M:%S%.f%#z", time_unit="us", time_zone="UTC", strict=False, cache=False
        )
    )
    return pl.coalesce(fast, generic)


def _with_ts(df: pl.DataFrame) -> pl.DataFrame:
    """Add ``ts``: CoreDNS' own RFC 3339 stamp, else the wrapper's, else Go's std-log stamp."""
    cands: list[pl.Expr] = []
    for col in ("ts_cd", "ts_wrap"):
        if df[col].null_count() < df.height:
            cands.append(_rfc3339(col))
    if df["golog"].null_count() < df.height:
        cands.append(
            pl.col("golog").str.to_datetime(
                "%Y/%m/%d %H:%M:%S%.f", time_unit="us", time_zone="UTC", strict=False
            )
        )
    if not cands:
        return df.with_columns(pl.lit(None, UTC).alias("ts"))
    expr = cands[0] if len(cands) == 1 else pl.coalesce(cands)
    return df.with_columns(expr.cast(UTC).alias("ts"))


_QUERY_STR_COLS = (
    "remote",
    "port",
    "id",
    "type",
    "class",
    "name",
    "proto",
    "size",
    "do",
    "bufsize",
    "rcode",
    "rflags",
    "rsize",
    "duration",
    "opcode",
    "when",
)


_CASTS: dict[str, tuple[str, pl.DataType]] = {
    "client_port": ("port", pl.UInt16()),
    "query_id": ("id", pl.UInt16()),
    "req_size": ("size", pl.UInt32()),
    "bufsize": ("bufsize", pl.UInt32()),
    "resp_size": ("rsize", pl.UInt32()),
    "opcode": ("opcode", pl.UInt8()),
}


def _typed_query_exprs(*, with_when: bool, brackets: bool = True) -> list[pl.Expr]:
    """Typed ``_t_*`` query columns from the string columns named in ``_QUERY_STR_COLS``."""
    c = pl.col
    exprs = [
        c(src).cast(dt, strict=False).alias(f"_t_{name}") for name, (src, dt) in _CASTS.items()
    ]
    dur = c("duration").str.strip_suffix("s").cast(pl.Float64, strict=False)
    exprs += [
        (
            c("remote").str.strip_prefix("[").str.strip_suffix("]") if brackets else c("remote")
        ).alias("_t_client_ip"),
        pl.when(c("name") == ".")
        .then(c("name"))
        .otherwise(c("name").str.strip_suffix("."))
        .alias("_t_qname"),
        (c("do") == "true").alias("_t_do_bit"),
        pl.when(c("rcode") == "-").then(None).otherwise(c("rcode")).alias("_t_rcode"),
        pl.when(c("rflags") == "-").then(None).otherwise(c("rflags")).alias("_t_rflags"),
        pl.when(dur.is_finite() & (dur >= 0)).then(dur).otherwise(None).alias("_t_duration_s"),
        (
            c("when").str.to_datetime(
                "%d/%b/%Y:%H:%M:%S %z", time_unit="us", time_zone="UTC", strict=False
            )
            if with_when
            else pl.lit(None, UTC)
        ).alias("_t_when"),
    ]
    return exprs


def _valid_expr() -> pl.Expr:
    """True where every present string field converted (to be used after ``_typed_query_exprs``)."""
    c = pl.col
    return pl.all_horizontal(
        *[c(src).is_null() | c(f"_t_{name}").is_not_null() for name, (src, _) in _CASTS.items()],
        c("proto").is_null() | c("proto").is_in(["udp", "tcp"]),
        c("when").is_null() | c("_t_when").is_not_null(),
    ).fill_null(False)


def _final_query_exprs(source: str) -> list[pl.Expr]:
    c = pl.col
    return [
        pl.coalesce(c("_t_when"), c("ts")).alias("ts"),
        c("_t_client_ip").alias("client_ip"),
        c("_t_client_port").alias("client_port"),
        c("_t_query_id").alias("query_id"),
        c("type").alias("qtype"),
        c("class").alias("qclass"),
        c("_t_qname").alias("qname"),
        c("proto"),
        c("_t_req_size").alias("req_size"),
        c("_t_do_bit").alias("do_bit"),
        c("_t_bufsize").alias("bufsize"),
        c("_t_rcode").alias("rcode"),
        c("_t_rflags").alias("rflags"),
        c("_t_resp_size").alias("resp_size"),
        c("_t_duration_s").alias("duration_s"),
        c("_t_opcode").alias("opcode"),
        *[c(w) for w in _WRAPPER_COLUMNS],
        pl.lit(source, _STR).alias("source"),
        c("line_no").cast(pl.UInt32),
    ]


def _finish_queries(df: pl.DataFrame, source: str) -> pl.DataFrame:
    """Select the documented query columns from a frame holding ``_t_*`` typed columns."""
    return df.select(_final_query_exprs(source)).cast(dict(QUERIES_SCHEMA))  # type: ignore[arg-type]


def _fast_queries(
    df: pl.DataFrame, source: str, *, col: str = "body", layout: _Layout | None = None
) -> pl.DataFrame:
    """The default-format fast path: split on spaces and check the shape.

    With ``layout=None`` the query line is ``col`` after the level was taken off (general path:
    ``ts``, ``level`` and wrapper columns exist). With a ``layout`` ``col`` is the raw line: the
    layout's prefix tokens (RFC 3339 stamp, CRI ``<stamp> <stream> F``, kubectl
    ``[pod/<pod>/<container>]``...), then ``[INFO]``, then the query.

    Returns the query columns of :data:`QUERIES_SCHEMA` for every row of ``df`` plus ``_ok``,
    true where the row is a well-formed default-format query line.
    """
    c = pl.col
    skip = layout.tokens + 1 if layout is not None else 0
    f = [c(f"field_{i + skip}") for i in range(15)]
    pos = f[0].str.find(r":\d+$")
    bracket = f[0].str.starts_with("[").cast(pl.UInt32)
    str_cols = [
        # "[v6]:port" or "v4:port": the address without brackets (ASCII, so bytes == chars)
        f[0].str.slice(bracket, pos - 2 * bracket).alias("remote"),
        f[0].str.slice(pos + 1).alias("port"),
        f[2].alias("id"),
        f[3].str.slice(1).alias("type"),
        f[4].alias("class"),
        f[5].alias("name"),
        f[6].alias("proto"),
        f[7].alias("size"),
        f[8].alias("do"),
        f[9].str.strip_suffix('"').alias("bufsize"),
        f[10].alias("rcode"),
        f[11].alias("rflags"),
        f[12].alias("rsize"),
        f[13].alias("duration"),
        f[14].str.strip_prefix('"').str.strip_suffix('"').alias("opcode"),
        pl.lit(None, _STR).alias("when"),
    ]
    checks = [
        f[1] == "-",
        f[3].str.starts_with('"'),
        f[3].str.len_bytes() > 1,
        f[9].str.ends_with('"'),
        f[8].is_in(["true", "false"]),
        f[13].str.ends_with("s"),
        f[14].is_null() | (f[14].str.starts_with('"') & f[14].str.ends_with('"')),
        ~c(col).str.contains("\\", literal=True),
        c(f"field_{skip + 15}").is_null(),  # nothing after the (optional) opcode
        pos.is_not_null(),
        f[0].str.len_bytes() == f[0].str.len_chars(),
    ]
    if layout is not None:
        checks.append(c(f"field_{layout.tokens}") == "[INFO]")
        keep: list[Any] = [c("line_no")]
        # the wrapper tokens must have the shapes the general path strips (it is the reference)
        for i in range(layout.tokens):
            if i == layout.pod:
                checks.append(c(f"field_{i}").str.contains(f"^{_KPOD}$"))
            elif layout.stream is None or i not in (layout.stream, layout.stream + 1):
                checks.append(c(f"field_{i}").str.contains(f"^{_RFC3339}$"))
        if layout.ts is not None:
            tsf = f"field_{layout.ts}"
            keep.append(_rfc3339(tsf).alias("ts"))
        else:
            keep.append(pl.lit(None, UTC).alias("ts"))
        if layout.pod is not None:
            tok = c(f"field_{layout.pod}")
            inner = tok.str.slice(5, tok.str.len_chars() - 6).str.splitn("/", 2)
            keep += [
                inner.struct.field("field_0").alias("pod"),
                inner.struct.field("field_1").alias("container"),
            ]
        else:
            keep += [pl.lit(None, _STR).alias("pod"), pl.lit(None, _STR).alias("container")]
        keep.append(pl.lit(None, _STR).alias("node"))
        if layout.stream is not None:
            sf = c(f"field_{layout.stream}")
            tag = c(f"field_{layout.stream + 1}")
            checks += [
                sf.is_in(["stdout", "stderr"]),
                tag == "F",
                # an F record that ends a run of P records is the tail of a longer line
                ~(tag == "P").shift(1, fill_value=False),
            ]
            keep.append(sf.alias("stream"))
        else:
            keep.append(pl.lit(None, _STR).alias("stream"))
        n_split = skip + 15
        pre = [c("line_no"), c(col)]
    else:
        checks.append(c("level").is_null() | (c("level") == "INFO"))
        keep = [c("ts"), c("line_no"), *[c(w) for w in _WRAPPER_COLUMNS]]
        n_split = 15
        pre = [c("ts"), c("line_no"), *[c(w) for w in _WRAPPER_COLUMNS], c("level"), c(col)]
    shape = pl.all_horizontal(checks).fill_null(False)
    lf = (
        df.lazy()
        .select(*pre, c(col).str.split_exact(" ", n_split).alias("_f"))
        .unnest("_f")
        .select(*keep, *str_cols, shape.alias("_shape"))
        .with_columns(_typed_query_exprs(with_when=False, brackets=False))
        .select(
            *_final_query_exprs(source),
            (c("_shape") & _valid_expr() & c("_t_duration_s").is_not_null()).alias("_ok"),
        )
    )
    out = lf.collect()
    if layout is not None and layout.ts is not None:
        # a wrapper stamp that did not parse means the line is not what the fast path assumes
        out = out.with_columns((pl.col("_ok") & pl.col("ts").is_not_null()).alias("_ok"))
    return out


@dataclass(frozen=True)
class _Layout:
    """A raw-line shape the fast path splits directly: token positions before ``[INFO]``."""

    regex: str
    tokens: int
    ts: int | None = None
    stream: int | None = None
    pod: int | None = None


_KPOD = r"\[pod/[^/\] ]+/[^\] ]+\]"
_LAYOUTS = (
    _Layout(r"^\[INFO\] ", 0),
    _Layout(rf"^{_RFC3339} \[INFO\] ", 1, ts=0),
    _Layout(rf"^{_RFC3339} (?:stdout|stderr) F \[INFO\] ", 3, ts=0, stream=1),
    _Layout(rf"^{_KPOD} \[INFO\] ", 1, pod=0),
    _Layout(rf"^{_KPOD} {_RFC3339} \[INFO\] ", 2, pod=0, ts=1),
    # CoreDNS 1.2.6-1.6.2 stamp its own lines: its stamp (the inner one) is kept, as in _with_ts
    _Layout(rf"^{_RFC3339} {_RFC3339} \[INFO\] ", 2, ts=1),
    _Layout(rf"^{_RFC3339} (?:stdout|stderr) F {_RFC3339} \[INFO\] ", 4, ts=3, stream=1),
)


def _guess_layout(lines: pl.Series) -> _Layout | None:
    """The raw-line shape most of ~256 lines spread over the block have (see ``_fast_queries``)."""
    sample = lines.gather_every(max(1, lines.len() // 256))
    best, best_n = None, 0
    for layout in _LAYOUTS:
        n = int(sample.str.contains(layout.regex).sum())
        if n > best_n:
            best, best_n = layout, n
    return best


def _regex_queries(df: pl.DataFrame, regex: str) -> pl.DataFrame:
    """Query columns by one regex (slow path, custom formats); adds ``_ok`` and ``_t_*``."""
    groups = df["body"].str.extract_groups(regex).struct.unnest()
    missing = [pl.lit(None, _STR).alias(k) for k in _QUERY_STR_COLS if k not in groups.columns]
    base = pl.concat(
        [df, groups.select([k for k in _QUERY_STR_COLS if k in groups.columns])], how="horizontal"
    )
    base = base.with_columns(*missing)
    matched = pl.any_horizontal([pl.col(k).is_not_null() for k in _QUERY_STR_COLS])
    out = base.with_columns(*_typed_query_exprs(with_when=True), matched.alias("_matched"))
    out = out.with_columns(_valid_expr().alias("_valid"))
    # Go durations (CoreDNS < 1.1.4): few distinct values, converted in Python
    need = out.filter(pl.col("_t_duration_s").is_null() & pl.col("duration").is_not_null())
    if need.height:
        uniq = need["duration"].unique().to_list()
        mapping = {u: duration_s(u) for u in uniq}
        out = out.with_columns(
            pl.coalesce(
                pl.col("_t_duration_s"),
                pl.col("duration").replace_strict(mapping, default=None, return_dtype=pl.Float64),
            ).alias("_t_duration_s")
        )
    return out.with_columns(
        (
            pl.col("_matched")
            & pl.col("_valid")
            & (pl.col("duration").is_null() | pl.col("_t_duration_s").is_not_null())
        ).alias("_ok")
    )


def _error_kind(col: pl.Expr) -> pl.Expr:
    low = col.str.to_lowercase()
    return (
        pl.when(low.str.contains("timeout|timed out"))
        .then(pl.lit("timeout"))
        .when(low.str.contains("connection refused"))
        .then(pl.lit("refused"))
        .when(low.str.contains("connection reset|reset by peer"))
        .then(pl.lit("reset"))
        .when(low.str.contains(r"(?:^|[ :])(?:unexpected )?eof\$?$"))
        .then(pl.lit("eof"))
        .when(low.str.contains("overflow|buffer size too small"))
        .then(pl.lit("overflow"))
        .when(low.str.contains("no healthy|no upstream host"))
        .then(pl.lit("no_healthy"))
        .when(low.str.contains("concurrent queries exceeded"))
        .then(pl.lit("max_concurrent"))
        .otherwise(pl.lit("other"))
    )


def _errors(df: pl.DataFrame, source: str) -> tuple[pl.DataFrame, pl.Series]:
    """Errors-plugin lines and consolidate summaries among ``df``; returns them and a match mask."""
    c = pl.col
    has_level = c("level").is_not_null()
    cons = (
        df["body"].str.extract_groups(_RE_CONSOLIDATE).struct.unnest().rename(lambda k: f"_c_{k}")
    )
    err = df["body"].str.extract_groups(_RE_ERR).struct.unnest().rename(lambda k: f"_e_{k}")
    v1 = df["body"].str.extract_groups(_RE_ERR_V1).struct.unnest().rename(lambda k: f"_v_{k}")
    x = pl.concat([df, cons, err, v1], how="horizontal").with_columns(
        (has_level & c("_c_count").is_not_null()).alias("_is_cons"),
        (has_level & c("_c_count").is_null() & c("_e_rcode_num").is_not_null()).alias("_is_err"),
        (c("level").is_null() & c("_v_rcode_num").is_not_null()).alias("_is_v1"),
    )
    mask = (x["_is_cons"] | x["_is_err"] | x["_is_v1"]).fill_null(False)
    x = x.filter(mask)
    if x.height == 0:
        return empty_frame(ERRORS_SCHEMA), mask
    periods = x["_c_period"].drop_nulls().unique().to_list()
    pmap = {p: duration_s(p) for p in periods}
    msg = (
        pl.when(c("_is_cons"))
        .then(c("_c_pattern"))
        .when(c("_is_err"))
        .then(c("_e_message"))
        .otherwise(c("_v_message"))
    )
    qname = pl.when(c("_is_err")).then(c("_e_qname")).otherwise(c("_v_qname"))
    x = x.with_columns(
        msg.alias("message"),
        pl.when(qname == ".").then(qname).otherwise(qname.str.strip_suffix(".")).alias("qname"),
        pl.when(c("_is_err")).then(c("_e_qtype")).otherwise(c("_v_qtype")).alias("qtype"),
        pl.when(c("_is_err"))
        .then(c("_e_rcode_num"))
        .otherwise(c("_v_rcode_num"))
        .cast(pl.UInt16, strict=False)
        .alias("rcode_num"),
        pl.when(c("_is_v1")).then(pl.lit("ERROR")).otherwise(c("level")).alias("level"),
        pl.coalesce(
            c("_v_when").str.to_datetime(
                "%d/%b/%Y:%H:%M:%S %z", time_unit="us", time_zone="UTC", strict=False
            ),
            c("ts"),
        ).alias("ts"),
    )
    net = x["message"].str.extract_groups(_RE_NETERR).struct.unnest()
    x = pl.concat([x, net.rename(lambda k: f"_n_{k}")], how="horizontal")
    cons_row = c("_is_cons")
    up = c("_n_upstream")
    out = x.select(
        c("ts"),
        c("level"),
        c("rcode_num"),
        c("qname"),
        c("qtype"),
        pl.when(cons_row).then(None).otherwise(c("_n_op")).alias("op"),
        pl.when(cons_row).then(None).otherwise(c("_n_transport")).alias("transport"),
        pl.when(cons_row).then(None).otherwise(c("_n_local")).alias("local_addr"),
        pl.when(cons_row).then(None).otherwise(up).alias("upstream"),
        pl.when(cons_row)
        .then(None)
        .otherwise(up.str.extract(r"^\[?(.*?)\]?:\d+$", 1))
        .alias("server_ip"),
        pl.when(cons_row)
        .then(None)
        .otherwise(up.str.extract(r":(\d+)$", 1).cast(pl.UInt16, strict=False))
        .alias("server_port"),
        _error_kind(c("message")).alias("kind"),
        c("message"),
        c("_c_count").cast(pl.UInt32, strict=False).alias("consolidated_count"),
        c("_c_period")
        .replace_strict(pmap, default=None, return_dtype=pl.Float64)
        .alias("consolidated_period_s"),
        *[c(w) for w in _WRAPPER_COLUMNS],
        pl.lit(source, _STR).alias("source"),
        c("line_no").cast(pl.UInt32),
    )
    return out.cast(dict(ERRORS_SCHEMA)), mask  # type: ignore[arg-type]


_KLOG_LEVELS = {"I": "INFO", "W": "WARNING", "E": "ERROR", "F": "FATAL"}


def _classify(
    df: pl.DataFrame, *, source: str, custom: _CustomFormat | None
) -> dict[str, pl.DataFrame]:
    """Split a chunk (prefixes and level already split off) into the four frames."""
    c = pl.col
    df = _with_ts(df)
    queries: list[pl.DataFrame] = []
    rejected: list[pl.DataFrame] = []
    has_pre = df["pre_reason"].null_count() < df.height
    if has_pre:
        pre_bad = df.filter(c("pre_reason").is_not_null())
        rejected.append(
            pre_bad.select(
                pl.lit(source, _STR).alias("source"),
                c("line_no").cast(pl.UInt32),
                c("pre_reason").alias("reason"),
                c("line"),
            )
        )
        df = df.filter(c("pre_reason").is_null())
    rem = df
    custom_failed: pl.Series | None = None
    if custom is not None and not custom.is_default and rem.height:
        # the Corefile's own format first; lines it does not match still get the default formats
        # (a Corefile change mid-file), then errors, banners...
        cand = _info_like(rem) & ~rem["body"].str.starts_with("plugin/") & (rem["body"] != "")
        if cand.any():
            parsed = _regex_queries(rem.filter(cand), custom.regex)
            good = parsed["_ok"]
            if good.any():
                queries.append(_finish_queries(parsed.filter(good), source))
            done = cand.clone().scatter(cand.arg_true(), good)
            rem = rem.filter(~done)
            custom_failed = (cand.filter(~done)).alias("custom_failed")
    if rem.height:
        fast = _fast_queries(rem, source)
        ok = fast["_ok"]
        if ok.all():
            queries.append(fast.drop("_ok").cast(dict(QUERIES_SCHEMA)))  # type: ignore[arg-type]
            rem = rem.clear()
        else:
            if ok.any():
                queries.append(fast.filter(ok).drop("_ok").cast(dict(QUERIES_SCHEMA)))  # type: ignore[arg-type]
            rem = rem.filter(~ok)
            if custom_failed is not None:
                custom_failed = custom_failed.filter(~ok)
    if rem.height:
        qlike = _info_like(rem) & rem["body"].str.contains(_RE_QUERY_LIKE)
        if qlike.any():
            parsed = _regex_queries(rem.filter(qlike), _RE_QUERY_ANY)
            good = parsed["_ok"]
            if good.any():
                queries.append(_finish_queries(parsed.filter(good), source))
            if not good.all():
                rejected.append(
                    _rejected(
                        parsed.filter(~good),
                        "query line does not match any CoreDNS log format",
                        source,
                    )
                )
            rem = rem.filter(~qlike)
            if custom_failed is not None:
                custom_failed = custom_failed.filter(~qlike)
    if custom_failed is not None:
        rem = rem.with_columns(custom_failed.alias("_custom_failed"))
    else:
        rem = rem.with_columns(pl.lit(False).alias("_custom_failed"))
    errors, emask = _errors(rem, source) if rem.height else (empty_frame(ERRORS_SCHEMA), None)
    if emask is not None:
        rem = rem.filter(~emask)
    other, unrec = _other(rem, source)
    if unrec.height:
        reason = (
            pl.when(c("body").str.starts_with("plugin/errors:"))
            .then(pl.lit("errors-plugin line does not parse"))
            .when(c("_custom_failed"))
            .then(pl.lit(f"line does not match log_format {custom.text if custom else ''!r}"))
            .otherwise(pl.lit(_UNRECOGNISED))
        )
        rejected.append(
            unrec.select(
                pl.lit(source, _STR).alias("source"),
                c("line_no").cast(pl.UInt32),
                reason.alias("reason"),
                c("line"),
            )
        )
    rej = _concat(rejected, REJECTED_SCHEMA)
    if len(rejected) > 1:
        rej = rej.sort("line_no")
    q = _concat(queries, QUERIES_SCHEMA)
    if len(queries) > 1:
        q = q.sort("line_no")
    return {"queries": q, "errors": errors, "other": other, "rejected": rej}


def _info_like(df: pl.DataFrame) -> pl.Series:
    """Rows that may be query-log lines: level ``INFO`` or none (CoreDNS < 1.2.6)."""
    lvl = df["level"]
    return (lvl.is_null() | (lvl == "INFO")).fill_null(False)


def _rejected(df: pl.DataFrame, reason: str, source: str) -> pl.DataFrame:
    return df.select(
        pl.lit(source, _STR).alias("source"),
        pl.col("line_no").cast(pl.UInt32),
        pl.lit(reason, _STR).alias("reason"),
        pl.col("line"),
    )


def _other(df: pl.DataFrame, source: str) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Recognised non-query, non-error lines; returns them and the unrecognised rest."""
    if df.height == 0:
        return empty_frame(OTHER_SCHEMA), df
    c = pl.col
    b = c("body")
    lvl = c("level")
    klog = b.str.extract(_RE_KLOG, 1)
    plugin = b.str.extract(_RE_PLUGIN, 1)
    kind = (
        pl.when(lvl.is_null() & (b == ""))
        .then(pl.lit("blank"))
        .when(plugin.is_not_null() & ~b.str.starts_with("plugin/errors:"))
        .then(pl.lit("plugin"))
        .when(b.str.contains(_RE_BANNER))
        .then(pl.lit("banner"))
        .when(lvl.is_not_null() & ~b.str.starts_with("plugin/errors:"))
        .then(pl.lit("message"))
        .when(b.str.starts_with("maxprocs: "))
        .then(pl.lit("maxprocs"))
        .when(klog.is_not_null())
        .then(pl.lit("klog"))
        .otherwise(None)
    )
    x = df.with_columns(kind.alias("kind"), plugin.alias("plugin"), klog.alias("_klog"))
    # node-cache prints its Corefile after "Using config file:" (formats.md §2.4)
    start = c("body").str.ends_with("Using config file:")
    x = x.with_columns(
        pl.when(c("kind").is_not_null()).then(start).otherwise(None).forward_fill().alias("_cfg")
    ).with_columns(
        pl.when(c("kind").is_null() & c("_cfg").fill_null(False))
        .then(pl.lit("config"))
        .otherwise(c("kind"))
        .alias("kind")
    )
    rec = x.filter(c("kind").is_not_null())
    unrec = x.filter(c("kind").is_null())
    message = (
        pl.when(c("kind") == "plugin")
        .then(b.str.replace(_RE_PLUGIN, ""))
        .when(c("kind") == "klog")
        .then(b.str.replace(_RE_KLOG, ""))
        .otherwise(b)
    )
    level = (
        pl.when(c("kind") == "klog")
        .then(c("_klog").replace_strict(_KLOG_LEVELS, default=None, return_dtype=_STR))
        .otherwise(lvl)
    )
    out = rec.select(
        c("ts"),
        level.alias("level"),
        c("kind"),
        pl.when(c("kind") == "plugin").then(c("plugin")).otherwise(None).alias("plugin"),
        message.alias("message"),
        *[c(w) for w in _WRAPPER_COLUMNS],
        pl.lit(source, _STR).alias("source"),
        c("line_no").cast(pl.UInt32),
    )
    return out.cast(dict(OTHER_SCHEMA)), unrec  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------------------
# helpers for the notebooks
# ------------------------------------------------------------------------------------------------


def _frame(data: CoreDNSLog | pl.DataFrame, attr: str) -> pl.DataFrame:
    if isinstance(data, CoreDNSLog):
        return getattr(data, attr)
    if isinstance(data, pl.DataFrame):
        return data
    raise TypeError(f"expected a CoreDNSLog or a polars DataFrame, not {type(data).__name__}")


def error_counts(
    data: CoreDNSLog | pl.DataFrame,
    *,
    every: str = "1m",
    by: Sequence[str] = ("upstream", "transport"),
    include_consolidated: bool = False,
) -> pl.DataFrame:
    """Errors per time bin (default per minute) and upstream/transport.

    Parameters
    ----------
    data
        A :class:`CoreDNSLog` or its ``errors`` frame.
    every
        Bin width as a polars duration string (``"1m"``, ``"10s"``).
    by
        Grouping columns of the errors frame (``upstream`` and ``transport`` by default; add
        ``kind`` or ``op`` to separate dial timeouts from read timeouts).
    include_consolidated
        ``consolidate`` summaries stand for many errors that were not logged one by one and carry
        no upstream. By default they are left out; set true to add them, each counted as its
        ``consolidated_count`` at the summary's timestamp.

    Returns
    -------
    polars.DataFrame
        ``ts`` (Datetime[us, UTC], bin start), the ``by`` columns, ``count`` (UInt32, error lines
        in the bin). Bins inside the covered span with no errors are present with 0
        (:func:`kit.timeutil.time_bins`). Lines without a timestamp cannot be binned and are left
        out (logged at WARNING with their number).

    Raises
    ------
    TypeError
        ``data`` is neither a CoreDNSLog nor a DataFrame.
    KeyError
        A ``by`` column is not in the errors frame.
    """
    errors = _frame(data, "errors")
    for col in by:
        if col not in errors.columns:
            raise KeyError(f"column {col!r} not in the errors frame (columns: {errors.columns})")
    single = errors.filter(pl.col("consolidated_count").is_null())
    frames = [single]
    if include_consolidated:
        cons = errors.filter(pl.col("consolidated_count").is_not_null())
        if cons.height:
            # one row per error the summary stands for
            idx = cons.select(
                pl.int_range(pl.len(), dtype=pl.UInt32)
                .repeat_by(pl.col("consolidated_count"))
                .explode()
                .alias("i")
            )["i"]
            frames.append(
                cons[idx].with_columns(pl.lit(None, pl.UInt32).alias("consolidated_count"))
            )
    rows = pl.concat(frames) if len(frames) > 1 else single
    no_ts = rows["ts"].null_count()
    if no_ts:
        log.warning(
            "%d error line(s) without a timestamp left out of the per-%s counts", no_ts, every
        )
    return time_bins(rows, every=every, by=list(by))


def slow_queries(data: CoreDNSLog | pl.DataFrame, threshold_s: float = 1.0) -> pl.DataFrame:
    """Queries that took at least ``threshold_s`` seconds, slowest first.

    Parameters
    ----------
    data
        A :class:`CoreDNSLog` or its ``queries`` frame.
    threshold_s
        Duration threshold in seconds (inclusive).

    Returns
    -------
    polars.DataFrame
        The matching rows of ``queries`` (same schema), sorted by ``duration_s`` descending, then
        ``source`` and ``line_no``.

    Raises
    ------
    TypeError
        ``data`` is neither a CoreDNSLog nor a DataFrame.
    ValueError
        ``threshold_s`` is negative or not finite.
    """
    if not threshold_s >= 0 or threshold_s == float("inf"):
        raise ValueError(f"threshold_s must be a finite number >= 0, not {threshold_s!r}")
    q = _frame(data, "queries")
    return q.filter(pl.col("duration_s") >= threshold_s).sort(
        ["duration_s", "source", "line_no"], descending=[True, False, False]
    )


def query_latency(
    data: CoreDNSLog | pl.DataFrame,
    *,
    by: Sequence[str] = ("qtype", "rcode", "proto"),
    quantiles: Sequence[float] = (0.5, 0.9, 0.99),
) -> pl.DataFrame:
    """Latency quantiles of CoreDNS' ``duration_s`` per group (qtype, rcode, proto, client...).

    Parameters
    ----------
    data
        A :class:`CoreDNSLog` or its ``queries`` frame.
    by
        Grouping columns, e.g. ``("qtype",)``, ``("rcode",)``, ``("proto",)``, ``("client_ip",)``;
        empty for one overall row.
    quantiles
        Quantiles in (0, 1].

    Returns
    -------
    polars.DataFrame
        See :func:`kit.stats.latency_quantiles`: the ``by`` columns, ``n``, ``n_null``,
        ``mean_s``, ``max_s`` and ``p50_s``, ``p90_s``, ``p99_s``... (Float64 seconds).

    Raises
    ------
    TypeError
        ``data`` is neither a CoreDNSLog nor a DataFrame.
    """
    q = _frame(data, "queries")
    return latency_quantiles(q, value="duration_s", by=list(by), quantiles=quantiles)


LOOP_PROBE = (pl.col("qtype") == "HINFO") & pl.col("qname").str.contains(r"^[0-9]+\.[0-9]+$")
"""True for the ``loop`` plugin's self-test queries (``HINFO`` for ``<random>.<random>.``).

They are not client traffic, and when an upstream is down every probe logs an error; leave them
out of user-latency analyses (formats.md §2.3, coredns/coredns#4211).
"""


def without_loop_probes(data: CoreDNSLog | pl.DataFrame) -> pl.DataFrame:
    """A ``queries`` or ``errors`` frame without the ``loop`` plugin's HINFO probes.

    Parameters
    ----------
    data
        A frame with ``qtype`` and ``qname`` columns (``queries`` or ``errors``); a
        :class:`CoreDNSLog` means its ``queries``.

    Returns
    -------
    polars.DataFrame
        The same columns, without rows where :data:`LOOP_PROBE` is true (consolidate summaries,
        whose qtype is null, are kept).

    Raises
    ------
    TypeError
        ``data`` is neither a CoreDNSLog nor a DataFrame.
    """
    df = _frame(data, "queries")
    return df.filter(~LOOP_PROBE.fill_null(False))
