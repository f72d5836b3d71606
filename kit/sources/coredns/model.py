"""The frames :func:`~kit.sources.coredns.read_coredns_log` returns: their schemas (documented in
its docstring), the :class:`CoreDNSLog` that holds them, and the constants the grammars share."""

from __future__ import annotations

from dataclasses import dataclass, field

import polars as pl

from kit.schema import empty_frame

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

MAX_LINE_BYTES = 65_536
"""Longest physical line read as a CoreDNS log line, bytes (without its ``\\n`` or ``\\r\\n``). CoreDNS' longest lines are query lines
(a name of at most 253 characters, 1,012 when every byte is escaped as ``\\DDD``: ~1.3 KB) and
errors-plugin or plugin messages of a few KB; the container runtimes split longer output into
16 KiB records. A longer line is a counted reject (reason :data:`LONG_LINE_REASON`, ``line`` its
first 200 bytes and its length), cut from its block before any parsing, so that a 10 MB line costs
a small multiple of its size instead of every parsing step's copy of it."""

LONG_LINE_REASON = f"line longer than {MAX_LINE_BYTES:,} bytes: not a CoreDNS log line"


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


_UNRECOGNISED = "not a CoreDNS log line the kit recognises"


_STR = pl.String()


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


def _concat(frames: list[pl.DataFrame], schema: pl.Schema) -> pl.DataFrame:
    frames = [f for f in frames if f.height]
    if not frames:
        return empty_frame(schema)
    return pl.concat(frames, how="vertical", rechunk=False)


def _empty_out() -> dict[str, pl.DataFrame]:
    return {
        "queries": empty_frame(QUERIES_SCHEMA),
        "errors": empty_frame(ERRORS_SCHEMA),
        "other": empty_frame(OTHER_SCHEMA),
        "rejected": empty_frame(REJECTED_SCHEMA),
    }
