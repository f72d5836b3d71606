"""dnstap loader: DNS messages logged by the servers themselves (Frame Streams of protobuf ``Dnstap``).

:func:`read_dnstap` reads the files written by ``fstrm_capture`` (Debian ``fstrm-bin``), by
unbound's and knot-resolver's ``dnstap`` (to a file or through ``fstrm_capture``) and by CoreDNS's
``dnstap`` plugin (``dnstap /path/file.fstrm full`` or a socket read by ``fstrm_capture``), and
returns a :class:`DnstapLog` of three frames:

* ``dns`` (:data:`DNSTAP_SCHEMA`): one row per query transaction of one hop, in the capture's DNS
  schema (same column names and dtypes as :data:`kit.sources.capture.DNS_SCHEMA` for ``ts``,
  ``ts_response``, ``latency_s``, ``answered``, ``client_ip`` ... ``opcode``) plus
  ``message_type``, ``identity``, ``query_seen`` and ``file``;
* ``messages`` (:data:`DNSTAP_MESSAGES_SCHEMA`): one row per dnstap message kept;
* ``meta`` (:data:`DNSTAP_META_SCHEMA`): one row per file, accounting for every frame.

Format
------
A Frame Streams file is a sequence of frames, each a 32-bit big-endian length and that many bytes.
A length of 0 escapes a *control frame* (a second 32-bit length, then a 32-bit control type,
START = 2 or STOP = 3, and fields, CONTENT_TYPE = 1 holding ``protobuf:dnstap.Dnstap``); every other
frame is a *data frame* holding one protobuf ``Dnstap`` message (schema: ``dnstap.proto`` of
github.com/dnstap/dnstap.pb). A ``Dnstap`` carries ``identity`` (1), ``version`` (2), ``type`` (15,
MESSAGE = 1) and a ``Message`` (14) with ``type`` (1: AUTH_QUERY = 1 ... UPDATE_RESPONSE = 14),
``socket_family`` (2), ``socket_protocol`` (3), ``query_address``/``response_address`` (4, 5),
``query_port``/``response_port`` (6, 7), ``query_time_sec``/``_nsec`` (8, 9),
``query_message`` (10), ``response_time_sec``/``_nsec`` (12, 13) and ``response_message`` (14), the
DNS messages in wire format.

Why an own reader, not a dependency
-----------------------------------
The kit needs 16 fields of two protobuf messages and two control-frame types. PyPI's ``dnstap-pb``
brings the ``protobuf`` runtime (generated code pinned to protobuf major versions) and ``fstrm``
is a socket-oriented asyncio package; neither parses the DNS wire messages inside, which the kit
has to do anyway (the capture engines do theirs in C and tshark). A ~150-line reader of varints and
length-delimited fields is smaller than the glue to either, has no version coupling, and lets
every byte of a damaged file be reported with its offset, which the kit's loaders promise.

Columns (``dns``)
-----------------
``client_ip``/``client_port`` are the message's ``query_address``/``query_port`` (the initiator:
the pod for CLIENT_*, the cache's own outgoing socket for FORWARDER_*/RESOLVER_*),
``server_ip``/``server_port`` its ``response_address``/``response_port`` (None when the server did
not fill them). ``message_type`` names the hop: ``"CLIENT"`` (CLIENT_QUERY/CLIENT_RESPONSE),
``"FORWARDER"``, ``"RESOLVER"``, ``"AUTH"``, ``"STUB"``, ``"TOOL"``, ``"UPDATE"``. ``ts`` is the
query's time (UTC, µs), ``ts_response`` the response's, ``latency_s`` their difference in seconds.
``qname`` is shown like the capture's: presentation form without the trailing dot, case
preserved, the root as ``"."``, tab/newline/CR as ``\\t``/``\\n``/``\\r``, other control bytes as
``\\ooo`` (octal), bytes that are not UTF-8 as U+FFFD. ``transport`` is ``udp``, ``tcp``, ``dot``,
``doh``, ``dnscrypt-udp``, ``dnscrypt-tcp`` or ``doq``. ``tcp_stream``, ``frame_query`` and
``frame_response`` are the capture's columns: ``tcp_stream`` is null, the frame columns are the
1-based indexes of the data frames in the file. ``censored`` is True for a query without answer
seen within ``censor_window_s`` of the file's last message (it may still have been answered).

Pairing
-------
Like the capture's: per hop (``message_type``), transport, addresses, ports and DNS ID (and
question, compared case-insensitively: resolvers randomise the case of the names they send), in
time order. A query repeated within 5 s while unanswered is a retransmission (counted in
``retransmissions``); the first response answers it; a later one is a duplicate (counted in
meta). A response without a query (the server logged only responses, or the query was before the
file began) becomes a row of its own when it carries ``query_time`` (``query_seen`` False), else is
counted as an orphan.

Accounting (``meta``)
---------------------
``frames`` = ``control_frames`` + ``messages_kept`` + ``messages_rejected``; a data frame whose
protobuf or DNS message does not parse is rejected and counted with its reason (``rejects``:
``"<reason> (<n>, first at byte <offset>)"``). ``messages_kept`` = ``dns_queries`` +
``dns_query_retransmissions`` + ``dns_responses`` + ``dns_duplicate_responses`` +
``dns_orphan_responses`` (``dns_responses`` includes the response-only rows). Framing that does
not hold (a file that is not Frame Streams, a wrong content type, a frame running past the end)
raises :class:`~kit.errors.InputFormatError` naming the file and byte offset. A file ending
without a STOP frame (the writer was killed) is read, with a note.

Speed: pure Python. On 187,200 messages (the healthy run's node1 file 100 times) on the shared
2-core VM: 31 k messages/s for the first version in a quiet moment; this version (one-byte varints
inline, address cache, printable-label check by ``bytes.translate``) 16.2-17.6 k vs 10.5-12.2 k
messages/s for the first, three interleaved runs each at load average 12 (1.5x). A node's dnstap
of an incident window (minutes at hundreds of queries/s) reads in seconds; hours of a busy cache
would want a native reader.

Tested on
---------
unbound 1.17.1 and Knot Resolver 5.6.0 through fstrm_capture 0.6.1 (``tests/data/dnstap``; the
lab records unbound). CoreDNS's plugin writes the same Frame Streams/protobuf format but was not
run here (Debian has no CoreDNS package). Known unbound 1.17 traits: FORWARDER_* ``query_address`` is ``0.0.0.0`` (its
outgoing socket's wildcard bind; the port is real); CLIENT_QUERY is stamped when unbound processes
the query, up to milliseconds after the packet arrived on a loaded host (the committed healthy
run: median 0.06 ms, p95 0.8-1.3 ms, max 19 ms later than the capture).
"""

from __future__ import annotations

import datetime
import ipaddress
import logging
import os
import struct
import warnings
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from kit.errors import InputFormatError, KitWarning
from kit.schema import (
    DNSTAP_MESSAGES_SCHEMA,
    DNSTAP_META_SCHEMA,
    DNSTAP_SCHEMA,
    check_schema,
    empty_frame,
)
from kit.sources._io import Source, expand_sources, read_raw
from kit.sources.capture._frames import QTYPES, RCODES, RETRANSMISSION_TIMER_S

log = logging.getLogger(__name__)

_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)

__all__ = [
    "CONTENT_TYPE",
    "DNSTAP_MESSAGES_SCHEMA",
    "DNSTAP_META_SCHEMA",
    "DNSTAP_SCHEMA",
    "MESSAGE_TYPES",
    "DnstapLog",
    "read_dnstap",
]

#: The Frame Streams content type of dnstap files.
CONTENT_TYPE = b"protobuf:dnstap.Dnstap"

#: ``Message.Type`` values of dnstap.proto.
MESSAGE_TYPES: dict[int, str] = {
    1: "AUTH_QUERY", 2: "AUTH_RESPONSE", 3: "RESOLVER_QUERY", 4: "RESOLVER_RESPONSE",
    5: "CLIENT_QUERY", 6: "CLIENT_RESPONSE", 7: "FORWARDER_QUERY", 8: "FORWARDER_RESPONSE",
    9: "STUB_QUERY", 10: "STUB_RESPONSE", 11: "TOOL_QUERY", 12: "TOOL_RESPONSE",
    13: "UPDATE_QUERY", 14: "UPDATE_RESPONSE",
}  # fmt: skip

_PROTOCOLS = {
    1: "udp", 2: "tcp", 3: "dot", 4: "doh", 5: "dnscrypt-udp", 6: "dnscrypt-tcp", 7: "doq",
}  # fmt: skip
_OPCODES = {0: "QUERY", 1: "IQUERY", 2: "STATUS", 4: "NOTIFY", 5: "UPDATE", 6: "DSO"}

#: Largest data frame accepted (bytes): two 64 KiB DNS messages and the protobuf around them.
MAX_FRAME = 1 << 18
#: fstrm's own limit for control frames (bytes).
MAX_CONTROL = 512
#: Queries without answer within this many seconds of the file's last message are ``censored``.
CENSOR_WINDOW_S = 10.0

_HINT = "Expected a dnstap file (Frame Streams, content type protobuf:dnstap.Dnstap) as written by fstrm_capture, unbound, knot-resolver or CoreDNS's dnstap plugin"


@dataclass(frozen=True)
class DnstapLog:
    """What :func:`read_dnstap` returns.

    Attributes
    ----------
    dns : polars.DataFrame
        One row per query transaction of one hop, :data:`DNSTAP_SCHEMA`.
    messages : polars.DataFrame
        One row per dnstap message kept, :data:`DNSTAP_MESSAGES_SCHEMA`.
    meta : polars.DataFrame
        One row per file, :data:`DNSTAP_META_SCHEMA`.
    """

    dns: pl.DataFrame
    messages: pl.DataFrame
    meta: pl.DataFrame


# --------------------------------------------------------------------------------------------
# protobuf (proto2 wire format: varints and length-delimited fields only)


class _Bad(Exception):
    """A data frame that does not parse: the reason becomes a counted reject."""


def _varint(b: bytes, i: int, end: int) -> tuple[int, int]:
    v = 0
    shift = 0
    while True:
        if i >= end:
            raise _Bad("protobuf varint runs past its message")
        c = b[i]
        i += 1
        v |= (c & 0x7F) << shift
        if not c & 0x80:
            return v, i
        shift += 7
        if shift > 63:
            raise _Bad("protobuf varint longer than 10 bytes")


def _fields(b: bytes, i: int, end: int) -> Iterator[tuple[int, int, Any]]:
    """(field number, wire type, value) of one protobuf message in ``b[i:end]``; length-delimited
    values are (start, stop) offsets. (One-byte varints, nearly all keys and lengths here, are
    read inline: the reader spends most of its time in this loop.)"""
    while i < end:
        key = b[i]
        if key < 0x80:
            i += 1
        else:
            key, i = _varint(b, i, end)
        num, wt = key >> 3, key & 7
        if num == 0:
            raise _Bad("protobuf field number 0")
        if wt == 0:
            v, i = _varint(b, i, end)
            yield num, wt, v
        elif wt == 2:
            if i < end and b[i] < 0x80:
                n = b[i]
                i += 1
            else:
                n, i = _varint(b, i, end)
            if i + n > end:
                raise _Bad("protobuf length-delimited field runs past its message")
            yield num, wt, (i, i + n)
            i += n
        elif wt == 5:
            if i + 4 > end:
                raise _Bad("protobuf fixed32 runs past its message")
            yield num, wt, struct.unpack_from("<I", b, i)[0]
            i += 4
        elif wt == 1:
            if i + 8 > end:
                raise _Bad("protobuf fixed64 runs past its message")
            yield num, wt, struct.unpack_from("<Q", b, i)[0]
            i += 8
        else:
            raise _Bad(f"protobuf wire type {wt} (groups or invalid)")


_INT_FIELDS = {1, 2, 3, 6, 7, 8, 9, 12, 13}
_BYTES_FIELDS = {4, 5, 10, 14}


def _dnstap(b: bytes, i: int, end: int) -> dict[str, Any]:
    """The fields of one ``Dnstap`` message the kit uses."""
    out: dict[str, Any] = {}
    for num, wt, v in _fields(b, i, end):
        if num == 15 and wt == 0:
            out["dtype"] = v
        elif num == 1 and wt == 2:
            out["identity"] = b[v[0] : v[1]].decode("utf-8", "replace")
        elif num == 14 and wt == 2:
            m: dict[int, Any] = {}
            for n2, w2, v2 in _fields(b, v[0], v[1]):
                if n2 in _INT_FIELDS and w2 in (0, 5):
                    m[n2] = v2
                elif n2 in _BYTES_FIELDS and w2 == 2:
                    m[n2] = b[v2[0] : v2[1]]
            out["message"] = m
    if out.get("dtype") != 1:
        raise _Bad(f"Dnstap.type is {out.get('dtype')} (not MESSAGE)")
    if "message" not in out:
        raise _Bad("Dnstap without a Message")
    return out


# --------------------------------------------------------------------------------------------
# DNS wire format: header and first question


_PRINTABLE = bytes(range(0x20, 0x7F))


def _label_text(lab: bytes) -> str:
    if not lab.translate(None, _PRINTABLE):  # only printable ASCII
        return lab.decode("ascii")
    out = []
    for chunk in lab.decode("utf-8", "replace"):
        c = ord(chunk)
        if chunk == "\t":
            out.append("\\t")
        elif chunk == "\n":
            out.append("\\n")
        elif chunk == "\r":
            out.append("\\r")
        elif c < 0x20 or c == 0x7F:
            out.append(f"\\{c:03o}")
        else:
            out.append(chunk)
    return "".join(out)


def _name(m: bytes, i: int) -> tuple[str, int]:
    """A name starting at ``m[i]`` (compression pointers followed); (text, offset after it)."""
    labels: list[str] = []
    after = -1
    jumps = 0
    total = 0
    while True:
        if i >= len(m):
            raise _Bad("DNS name runs past the message")
        n = m[i]
        if n == 0:
            i += 1
            break
        if n & 0xC0 == 0xC0:
            if i + 1 >= len(m):
                raise _Bad("DNS compression pointer runs past the message")
            if after < 0:
                after = i + 2
            i = ((n & 0x3F) << 8) | m[i + 1]
            jumps += 1
            if jumps > 64:
                raise _Bad("DNS compression pointer loop")
            continue
        if n & 0xC0:
            raise _Bad(f"DNS label type 0x{n & 0xC0:02x}")
        if i + 1 + n > len(m):
            raise _Bad("DNS label runs past the message")
        labels.append(_label_text(m[i + 1 : i + 1 + n]))
        total += n + 1
        if total > 255:
            raise _Bad("DNS name longer than 255 bytes")
        i += 1 + n
    return (".".join(labels) if labels else "."), (after if after >= 0 else i)


def _dns(m: bytes) -> tuple[int, bool, str, bool, str, int, str | None, str | None]:
    """(id, qr, opcode, tc, rcode, answers, qname, qtype) of a wire-format DNS message."""
    if len(m) < 12:
        raise _Bad(f"DNS message of {len(m)} bytes (shorter than its header)")
    did, flags, qd, an = struct.unpack_from("!HHHH", m, 0)
    op = (flags >> 11) & 0xF
    rc = flags & 0xF
    qname = qtype = None
    if qd:
        qname, i = _name(m, 12)
        if i + 4 > len(m):
            raise _Bad("DNS question runs past the message")
        t = struct.unpack_from("!H", m, i)[0]
        qtype = QTYPES.get(t, f"TYPE{t}")
    return (
        did,
        bool(flags & 0x8000),
        _OPCODES.get(op, f"OPCODE{op}"),
        bool(flags & 0x0200),
        RCODES.get(rc, f"RCODE{rc}"),
        an,
        qname,
        qtype,
    )


_ADDR_CACHE: dict[bytes, str] = {}


def _addr(raw: bytes | None) -> str | None:
    if raw is None or not raw:
        return None
    text = _ADDR_CACHE.get(raw)
    if text is not None:
        return text
    if len(raw) == 4:
        text = str(ipaddress.IPv4Address(raw))
    elif len(raw) == 16:
        text = str(ipaddress.IPv6Address(raw))
    else:
        raise _Bad(f"address of {len(raw)} bytes")
    if len(_ADDR_CACHE) < 65536:
        _ADDR_CACHE[raw] = text
    return text


def _ns(sec: int | None, nsec: int | None) -> int | None:
    if sec is None:
        return None
    if nsec is not None and nsec >= 1_000_000_000:
        raise _Bad(f"time nanoseconds {nsec} >= 10^9")
    if sec >= 1 << 32:  # past 2106: damage (and past Int64 nanoseconds from 2262 on)
        raise _Bad(f"time seconds {sec} >= 2^32")
    return sec * 1_000_000_000 + (nsec or 0)


def _message(b: bytes, start: int, end: int) -> dict[str, Any]:
    """One kept message's row (see :data:`DNSTAP_MESSAGES_SCHEMA`), or _Bad."""
    d = _dnstap(b, start, end)
    m = d["message"]
    t = m.get(1)
    if t not in MESSAGE_TYPES:
        raise _Bad(f"Message.type {t} unknown")
    mtype = MESSAGE_TYPES[t]
    is_q = mtype.endswith("_QUERY")
    wire = m.get(10 if is_q else 14)
    if wire is None:
        raise _Bad(f"{mtype} without its {'query' if is_q else 'response'}_message")
    did, qr, op, tc, rc, an, qname, qtype = _dns(wire)
    q_ns = _ns(m.get(8), m.get(9))
    r_ns = _ns(m.get(12), m.get(13))
    ev = q_ns if is_q else r_ns
    if ev is None:
        raise _Bad(f"{mtype} without its {'query' if is_q else 'response'}_time")
    proto = m.get(3)
    for f, what in ((6, "query_port"), (7, "response_port")):
        if m.get(f) is not None and m[f] > 0xFFFF:
            raise _Bad(f"{what} {m[f]} > 65535")
    if any(v is not None and v >= 1 << 40 for v in (m.get(8), m.get(12))):
        raise _Bad("time seconds out of range")
    return {
        "ts_ns": ev,
        "identity": d.get("identity"),
        "message_type": mtype,
        "q_ns": q_ns,
        "r_ns": r_ns,
        "transport": _PROTOCOLS.get(proto, f"proto{proto}") if proto is not None else None,
        "query_ip": _addr(m.get(4)),
        "query_port": m.get(6),
        "response_ip": _addr(m.get(5)),
        "response_port": m.get(7),
        "dns_id": did,
        "qr": qr,
        "opcode": op,
        "qname": qname,
        "qtype": qtype,
        "rcode": rc if qr else None,
        "tc": tc,
        "answers": an,
        "size": len(wire),
    }


# --------------------------------------------------------------------------------------------
# Frame Streams


@dataclass
class _Counts:
    frames: int = 0
    control: int = 0
    kept: int = 0
    rejected: int = 0
    rejects: dict[str, list[int]] = field(default_factory=dict)  # reason -> [n, first offset]
    content_type: str | None = None
    stopped: bool = False
    notes: list[str] = field(default_factory=list)


def _frames(data: bytes, path: str, c: _Counts) -> list[dict[str, Any]]:
    """Walk the frames of one file; the kept messages' rows (with ``frame``/``offset``)."""
    rows: list[dict[str, Any]] = []
    n = len(data)
    if n < 8 or data[:4] != b"\0\0\0\0":
        raise InputFormatError(
            "not a Frame Streams file (it does not begin with a control frame)",
            path=path,
            offset=0,
            excerpt=data[:16].decode("latin-1"),
            hint=_HINT,
        )
    pos = 0
    data_index = 0
    started = False
    while pos < n:
        if pos + 4 > n:
            raise InputFormatError(
                f"file ends inside a frame length ({n - pos} of 4 bytes)",
                path=path,
                offset=pos,
                hint="The file was cut short; a writer killed mid-write leaves this",
            )
        (length,) = struct.unpack_from("!I", data, pos)
        if length == 0:
            if pos + 8 > n:
                raise InputFormatError(
                    "file ends inside a control frame's length", path=path, offset=pos
                )
            (clen,) = struct.unpack_from("!I", data, pos + 4)
            if clen < 4 or clen > MAX_CONTROL:
                raise InputFormatError(
                    f"control frame of {clen} bytes (4..{MAX_CONTROL} expected)",
                    path=path,
                    offset=pos,
                    hint=_HINT,
                )
            if pos + 8 + clen > n:
                raise InputFormatError(
                    f"control frame of {clen} bytes runs past the end of the file",
                    path=path,
                    offset=pos,
                )
            _control(data, pos, pos + 8, pos + 8 + clen, path, c, started)
            c.frames += 1
            c.control += 1
            ctype = struct.unpack_from("!I", data, pos + 8)[0]
            if ctype == 2:
                started = True
                c.stopped = False
            elif ctype == 3:
                started = False
                c.stopped = True
            pos += 8 + clen
            continue
        if not started:
            raise InputFormatError(
                "data frame outside START ... STOP", path=path, offset=pos, hint=_HINT
            )
        if length > MAX_FRAME:
            raise InputFormatError(
                f"data frame of {length} bytes (more than {MAX_FRAME}): not dnstap, or damaged",
                path=path,
                offset=pos,
                hint=_HINT,
            )
        if pos + 4 + length > n:
            raise InputFormatError(
                f"data frame of {length} bytes runs past the end of the file "
                f"({n - pos - 4} bytes left)",
                path=path,
                offset=pos,
                hint="The file was cut short; a writer killed mid-write leaves this",
            )
        c.frames += 1
        data_index += 1
        try:
            row = _message(data, pos + 4, pos + 4 + length)
        except _Bad as exc:
            c.rejected += 1
            r = c.rejects.setdefault(str(exc), [0, pos])
            r[0] += 1
        else:
            row["frame"] = data_index
            row["offset"] = pos
            rows.append(row)
            c.kept += 1
        pos += 4 + length
    if not c.stopped:
        c.notes.append("no STOP frame at the end: the writer was stopped without closing the file")
    return rows


def _control(data: bytes, at: int, i: int, end: int, path: str, c: _Counts, started: bool) -> None:
    (ctype,) = struct.unpack_from("!I", data, i)
    i += 4
    if ctype not in (2, 3):
        raise InputFormatError(
            f"control frame of type {ctype} in a file (only START=2 and STOP=3 belong in files; "
            "1, 4, 5 are the socket handshake)",
            path=path,
            offset=at,
            hint=_HINT,
        )
    if ctype == 2 and started:
        raise InputFormatError("START frame after START without STOP", path=path, offset=at)
    while i < end:
        if i + 8 > end:
            raise InputFormatError("control field runs past its frame", path=path, offset=at)
        ftype, flen = struct.unpack_from("!II", data, i)
        i += 8
        if i + flen > end:
            raise InputFormatError("control field runs past its frame", path=path, offset=at)
        if ftype == 1 and ctype == 2:
            ct = data[i : i + flen]
            if ct != CONTENT_TYPE:
                raise InputFormatError(
                    f"Frame Streams content type {ct.decode('latin-1')!r}, not "
                    f"{CONTENT_TYPE.decode()!r}",
                    path=path,
                    offset=at,
                    hint=_HINT,
                )
            c.content_type = ct.decode()
        i += flen


# --------------------------------------------------------------------------------------------
# pairing


def _pair(rows: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """Transactions from messages in time order (see the module docstring's Pairing)."""
    counts = dict(queries=0, retx=0, answers=0, dup=0, orphan=0)
    out: list[dict[str, Any]] = []
    open_: dict[tuple[Any, ...], dict[str, Any]] = {}
    order = sorted(range(len(rows)), key=lambda k: (rows[k]["ts_ns"], k))
    for k in order:
        r = rows[k]
        hop = r["message_type"].rsplit("_", 1)[0]
        key = (
            r["identity"],
            hop,
            r["transport"],
            r["query_ip"],
            r["query_port"],
            r["response_ip"],
            r["response_port"],
            r["dns_id"],
            (r["qname"] or "").lower(),
            r["qtype"],
        )
        if r["message_type"].endswith("_QUERY"):
            st = open_.get(key)
            if (
                st is not None
                and st["ts_response_ns"] is None
                and r["ts_ns"] - st["ts_ns"] < RETRANSMISSION_TIMER_S * 1e9
            ):
                st["retransmissions"] += 1
                counts["retx"] += 1
                continue
            t = _txn(r, hop, query_seen=True)
            open_[key] = t
            out.append(t)
            counts["queries"] += 1
            continue
        st = open_.get(key)
        if st is not None and st["ts_response_ns"] is None:
            _answer(st, r)
            counts["answers"] += 1
        elif st is not None:
            counts["dup"] += 1
        elif r["q_ns"] is not None:
            t = _txn(r, hop, query_seen=False)
            t["ts_ns"] = r["q_ns"]
            _answer(t, r)
            open_[key] = t
            out.append(t)
            counts["answers"] += 1
        else:
            counts["orphan"] += 1
    return out, counts


def _txn(r: dict[str, Any], hop: str, *, query_seen: bool) -> dict[str, Any]:
    return {
        "ts_ns": r["ts_ns"],
        "ts_response_ns": None,
        "client_ip": r["query_ip"],
        "client_port": r["query_port"],
        "server_ip": r["response_ip"],
        "server_port": r["response_port"],
        "transport": r["transport"],
        "dns_id": r["dns_id"],
        "qname": r["qname"],
        "qtype": r["qtype"],
        "rcode": None,
        "tc": None,
        "answers": None,
        "retransmissions": 0,
        "frame_query": r["frame"] if query_seen else None,
        "frame_response": None,
        "opcode": r["opcode"],
        "message_type": hop,
        "identity": r["identity"],
        "query_seen": query_seen,
    }


def _answer(t: dict[str, Any], r: dict[str, Any]) -> None:
    t["ts_response_ns"] = r["ts_ns"]
    t["rcode"] = r["rcode"]
    t["tc"] = r["tc"]
    t["answers"] = r["answers"]
    t["frame_response"] = r["frame"]


# --------------------------------------------------------------------------------------------
# public entry point


def _ts(col: str) -> pl.Expr:
    return (pl.col(col) // 1000).cast(pl.Datetime("us")).dt.replace_time_zone("UTC")


def read_dnstap(
    source: Source, *, censor_window_s: float = CENSOR_WINDOW_S, strict: bool = False
) -> DnstapLog:
    """Read dnstap files (Frame Streams of protobuf ``Dnstap``, optionally gzipped).

    Parameters
    ----------
    source
        A file, a list of files, a glob or a folder (files ending ``.fstrm``, ``.dnstap``,
        ``.tap``, ``.fstrm.gz``...).
    censor_window_s
        Queries still unanswered this many seconds (or fewer) before a file's last message are
        marked ``censored`` (their answer may have come after the file ended).
    strict
        Raise :class:`~kit.errors.InputFormatError` on the first rejected data frame instead of
        counting it.

    Returns
    -------
    DnstapLog
        ``dns`` (:data:`DNSTAP_SCHEMA`), ``messages`` (:data:`DNSTAP_MESSAGES_SCHEMA`), ``meta``
        (:data:`DNSTAP_META_SCHEMA`); see the module docstring for pairing and accounting.

    Raises
    ------
    InputNotFoundError, InputFileError
        A file is missing or not a readable regular file.
    InputFormatError
        A file is not Frame Streams, has another content type, or its framing breaks (file and
        byte offset in the message).

    Warns
    -----
    KitWarning
        Data frames were rejected (how many, the first reason), or a file has no STOP frame.
    """
    files = expand_sources(
        source, suffixes=(".fstrm", ".dnstap", ".tap", ".dnstap.bin"), what="dnstap file"
    )
    dns_parts, msg_parts, meta_rows = [], [], []
    for p in files:
        raw = read_raw(p, what="dnstap file")
        text = os.fspath(p)
        c = _Counts()
        c.notes.extend(raw.notes)
        rows = _frames(raw.data, text, c)
        if strict and c.rejected:
            reason, (_, off) = next(iter(c.rejects.items()))
            raise InputFormatError(f"data frame does not parse: {reason}", path=text, offset=off)
        txns, counts = _pair(rows)
        name = _file_name(p)
        msg_parts.append(_messages_frame(rows, text))
        dns_parts.append(_dns_frame(txns, name, text, rows, censor_window_s))
        meta_rows.append(_meta_row(p, raw.gzipped, len(raw.data), c, counts, rows))
        if c.rejected:
            first = next(iter(c.rejects))
            warnings.warn(
                f"{text}: {c.rejected} of {c.frames - c.control} dnstap data frame(s) rejected "
                f"(first reason: {first}); see meta.rejects",
                KitWarning,
                stacklevel=2,
            )
        if not c.stopped:
            warnings.warn(f"{text}: {c.notes[-1]}", KitWarning, stacklevel=2)
    dns = pl.concat(dns_parts) if dns_parts else empty_frame(DNSTAP_SCHEMA)
    messages = pl.concat(msg_parts) if msg_parts else empty_frame(DNSTAP_MESSAGES_SCHEMA)
    meta = pl.DataFrame(meta_rows, schema=DNSTAP_META_SCHEMA, orient="row")
    check_schema(dns, DNSTAP_SCHEMA, name="dnstap dns")
    check_schema(messages, DNSTAP_MESSAGES_SCHEMA, name="dnstap messages")
    return DnstapLog(dns=dns.sort("ts", maintain_order=True), messages=messages, meta=meta)


def _file_name(p: Path) -> str:
    name = p.name
    if name.lower().endswith(".gz"):
        name = name[:-3]
    return Path(name).stem or name


def _messages_frame(rows: list[dict[str, Any]], text: str) -> pl.DataFrame:
    if not rows:
        return empty_frame(DNSTAP_MESSAGES_SCHEMA)
    cols = [c for c in DNSTAP_MESSAGES_SCHEMA if c not in {"ts", "file", "query_ts", "response_ts"}]
    df = pl.DataFrame(
        {
            "ts_ns": [r["ts_ns"] for r in rows],
            "q_ns": [r["q_ns"] for r in rows],
            "r_ns": [r["r_ns"] for r in rows],
            **{c: [r[c] for r in rows] for c in cols},
        },
        schema_overrides={
            "ts_ns": pl.Int64,
            "q_ns": pl.Int64,
            "r_ns": pl.Int64,
            **{c: DNSTAP_MESSAGES_SCHEMA[c] for c in cols},
        },
    )
    return df.select(
        ts=_ts("ts_ns"),
        file=pl.lit(text),
        frame=pl.col("frame"),
        offset=pl.col("offset"),
        identity=pl.col("identity"),
        message_type=pl.col("message_type"),
        query_ts=_ts("q_ns"),
        response_ts=_ts("r_ns"),
        **{c: pl.col(c) for c in cols if c not in {"frame", "offset", "identity", "message_type"}},
    ).select(list(DNSTAP_MESSAGES_SCHEMA))


def _dns_frame(
    txns: list[dict[str, Any]],
    name: str,
    text: str,
    rows: list[dict[str, Any]],
    censor_window_s: float,
) -> pl.DataFrame:
    if not txns:
        return empty_frame(DNSTAP_SCHEMA)
    last_ns = max(r["ts_ns"] for r in rows)
    plain = [
        c
        for c in DNSTAP_SCHEMA
        if c
        not in {"ts", "ts_response", "latency_s", "answered", "censored", "tcp_stream", "capture"}
        and c != "file"
    ]
    df = pl.DataFrame(
        {
            "ts_ns": [t["ts_ns"] for t in txns],
            "r_ns": [t["ts_response_ns"] for t in txns],
            **{c: [t[c] for t in txns] for c in plain},
        },
        schema_overrides={
            "ts_ns": pl.Int64,
            "r_ns": pl.Int64,
            **{c: DNSTAP_SCHEMA[c] for c in plain},
        },
    )
    answered = pl.col("r_ns").is_not_null()
    return df.with_columns(
        ts=_ts("ts_ns"),
        ts_response=_ts("r_ns"),
        latency_s=(pl.col("r_ns") - pl.col("ts_ns")) / 1e9,
        answered=answered,
        censored=~answered & (pl.col("ts_ns") > last_ns - int(censor_window_s * 1e9)),
        tcp_stream=pl.lit(None, dtype=pl.UInt32),
        capture=pl.lit(name),
        file=pl.lit(text),
    ).select(list(DNSTAP_SCHEMA))


def _meta_row(
    p: Path,
    gzipped: bool,
    size: int,
    c: _Counts,
    counts: dict[str, int],
    rows: list[dict[str, Any]],
) -> dict[str, Any]:
    types = Counter(r["message_type"] for r in rows)
    ts = [r["ts_ns"] for r in rows]

    def dt(ns: int) -> datetime.datetime:
        return _EPOCH + datetime.timedelta(microseconds=ns // 1000)

    return {
        "file": _file_name(p),
        "path": os.fspath(p),
        "gzipped": gzipped,
        "bytes": size,
        "content_type": c.content_type,
        "stopped": c.stopped,
        "frames": c.frames,
        "control_frames": c.control,
        "messages_kept": c.kept,
        "messages_rejected": c.rejected,
        "rejects": [f"{r} ({n}, first at byte {off})" for r, (n, off) in c.rejects.items()],
        "dns_queries": counts["queries"],
        "dns_query_retransmissions": counts["retx"],
        "dns_responses": counts["answers"],
        "dns_duplicate_responses": counts["dup"],
        "dns_orphan_responses": counts["orphan"],
        "first_ts": dt(min(ts)) if ts else None,
        "last_ts": dt(max(ts)) if ts else None,
        "identities": sorted({r["identity"] for r in rows if r["identity"] is not None}),
        "message_types": [f"{k}={v}" for k, v in sorted(types.items())],
        "notes": c.notes,
    }
