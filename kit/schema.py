"""Check frames against the documented schema constants of the loaders."""

from __future__ import annotations

from typing import Any

import polars as pl

from kit.errors import SchemaError
from kit.timeutil import UTC as _UTC

__all__ = [
    "DNSTAP_MESSAGES_SCHEMA",
    "DNSTAP_META_SCHEMA",
    "DNSTAP_SCHEMA",
    "check_schema",
    "empty_frame",
]


def check_schema(
    df: pl.DataFrame, schema: pl.Schema | dict[str, pl.DataType], *, name: str = "frame"
) -> None:
    """Raise :class:`~kit.errors.SchemaError` unless ``df`` has exactly ``schema`` (names, order, dtypes).

    Extra columns are allowed only if they come after the schema's columns; they are listed in the
    message when the check fails for another reason.
    """
    want = pl.Schema(schema)
    got = df.schema
    missing = [c for c in want if c not in got]
    wrong = [f"{c}: {got[c]} (want {want[c]})" for c in want if c in got and got[c] != want[c]]
    order_ok = list(got)[: len(want)] == list(want)
    if missing or wrong or not order_ok:
        extra = [c for c in got if c not in want]
        parts = []
        if missing:
            parts.append(f"missing {missing}")
        if wrong:
            parts.append(f"wrong dtype {wrong}")
        if not missing and not order_ok:
            parts.append(f"column order {list(got)[: len(want)]} != {list(want)}")
        if extra:
            parts.append(f"extra {extra}")
        raise SchemaError(f"{name} does not match its schema: " + "; ".join(parts))


def empty_frame(schema: pl.Schema | dict[str, pl.DataType]) -> pl.DataFrame:
    """An empty frame with exactly ``schema``: the only way a loader says "the input had no rows"."""
    return pl.DataFrame(schema=pl.Schema(schema))


# --------------------------------------------------------------------------------------------
# dnstap (kit.sources.dnstap): the transactions frame shares the capture's DNS column names/dtypes


def _schema(cols: dict[str, Any]) -> pl.Schema:
    return pl.Schema(cols)


DNSTAP_SCHEMA = _schema(
    {
        "ts": _UTC,
        "ts_response": _UTC,
        "latency_s": pl.Float64,
        "answered": pl.Boolean,
        "censored": pl.Boolean,
        "client_ip": pl.String,
        "client_port": pl.UInt16,
        "server_ip": pl.String,
        "server_port": pl.UInt16,
        "transport": pl.String,
        "dns_id": pl.UInt16,
        "qname": pl.String,
        "qtype": pl.String,
        "rcode": pl.String,
        "tc": pl.Boolean,
        "answers": pl.UInt16,
        "retransmissions": pl.UInt32,
        "tcp_stream": pl.UInt32,
        "capture": pl.String,
        "frame_query": pl.UInt32,
        "frame_response": pl.UInt32,
        "opcode": pl.String,
        "message_type": pl.String,
        "identity": pl.String,
        "query_seen": pl.Boolean,
        "file": pl.String,
    }
)
"""One row per query transaction of one hop (see the module docstring). The first 22 columns are
the capture's DNS schema (``capture`` holds the file's name without suffix, like a capture's);
``message_type`` the hop (``CLIENT``, ``FORWARDER``, ...), ``identity`` the server's dnstap
identity (None when not sent), ``query_seen`` False for a row built from a response alone,
``file`` the path."""

DNSTAP_MESSAGES_SCHEMA = _schema(
    {
        "ts": _UTC,
        "file": pl.String,
        "frame": pl.UInt32,
        "offset": pl.UInt64,
        "identity": pl.String,
        "message_type": pl.String,
        "query_ts": _UTC,
        "response_ts": _UTC,
        "transport": pl.String,
        "query_ip": pl.String,
        "query_port": pl.UInt16,
        "response_ip": pl.String,
        "response_port": pl.UInt16,
        "dns_id": pl.UInt16,
        "qr": pl.Boolean,
        "opcode": pl.String,
        "qname": pl.String,
        "qtype": pl.String,
        "rcode": pl.String,
        "tc": pl.Boolean,
        "answers": pl.UInt16,
        "size": pl.UInt32,
    }
)
"""One row per dnstap message kept: ``ts`` its event time (the query time of a ``*_QUERY``, the
response time of a ``*_RESPONSE``), ``frame`` the 1-based data-frame index, ``offset`` the frame's
byte offset in the (decompressed) file, ``message_type`` the full type (``CLIENT_QUERY``...),
``size`` the DNS message's length in bytes; the rest from the DNS message's header and question."""

DNSTAP_META_SCHEMA = _schema(
    {
        "file": pl.String,
        "path": pl.String,
        "gzipped": pl.Boolean,
        "bytes": pl.UInt64,
        "content_type": pl.String,
        "stopped": pl.Boolean,
        "frames": pl.UInt64,
        "control_frames": pl.UInt64,
        "messages_kept": pl.UInt64,
        "messages_rejected": pl.UInt64,
        "rejects": pl.List(pl.String),
        "dns_queries": pl.UInt64,
        "dns_query_retransmissions": pl.UInt64,
        "dns_responses": pl.UInt64,
        "dns_duplicate_responses": pl.UInt64,
        "dns_orphan_responses": pl.UInt64,
        "first_ts": _UTC,
        "last_ts": _UTC,
        "identities": pl.List(pl.String),
        "message_types": pl.List(pl.String),
        "notes": pl.List(pl.String),
    }
)
"""One row per file: its frame accounting (see the module docstring), ``stopped`` whether it ended
with a STOP frame, ``message_types`` as ``"CLIENT_QUERY=120"``, ``notes`` damage and oddities."""
