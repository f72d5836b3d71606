"""The native capture engine of :func:`kit.sources.capture.read_capture` (``engine="native"``/``"auto"``).

``kit/_fastcap.c`` (an optional C extension, built by ``pip install`` where a C compiler exists)
reads a pcap or pcapng file in one pass and returns the per-packet rows that the tshark engine
gets from ``tshark -T fields`` (the internal frame of :func:`kit.sources.capture._fields._packets`): the same
columns, the DNS header and question fields printed as tshark prints them; and the DNS
transactions, paired in C by the kit's rules (:func:`kit.sources.capture._frames._pair`): what
:func:`kit.sources.capture._frames._transactions` makes of the messages, which are not kept. From
there on both engines run the same code (:func:`kit.sources.capture._frames._dns_related`,
``_syn_retransmissions``, ``_build``: TCP connections, packets, meta), so their frames are equal
by construction wherever the rows are; ``tests/test_capture_native.py`` checks that on every
capture the kit has.

The rows reach polars through the Arrow C data interface (PyCapsules, as ``kit._fastlog`` does),
one column at a time; no Python object is made per packet. A gzipped file is decompressed in
memory first; a plain one is memory-mapped, and the pages already parsed are given back to the
kernel as the parser goes (so the file's size does not add to the peak memory).

The C code refuses what it does not model (see its header comment: IP fragments, tunnels,
mDNS/LLMNR, malformed or hostile DNS names, gaps in a DNS TCP stream, unknown link types...) and
says why; :func:`load` returns that reason and ``read_capture(engine="auto")`` then runs tshark on
the file and writes the reason in ``meta.engine_reason``.
"""

from __future__ import annotations

import gzip
import logging
import mmap
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import polars as pl

from kit.sources._io import ArrowArray

log = logging.getLogger(__name__)

try:  # the native engine (kit/_fastcap.c), built by `pip install` where a C compiler exists
    from kit import _fastcap
except ImportError:  # pragma: no cover - depends on the build
    _fastcap = None  # type: ignore[assignment]

__all__ = ["NATIVE", "load"]


#: dtypes of the packet rows (those of :func:`kit.sources.capture._fields._packets`, less the raw DNS fields but
#: ``dns_flags``, which :func:`kit.sources.capture._frames._tcp` reads)
_ROW_DTYPES: dict[str, Any] = {
    "frame": pl.UInt32,
    "ts_ns": pl.Int64,
    "length": pl.UInt32,
    "src_ip": pl.String,
    "dst_ip": pl.String,
    "src_port": pl.UInt16,
    "dst_port": pl.UInt16,
    "transport": pl.String,
    "tcp_flags": pl.UInt16,
    "tcp_stream": pl.UInt32,
    "tcp_seq": pl.UInt32,
    "is_retransmission": pl.Boolean,
    "dns_messages": pl.UInt16,
    "dns_flags": pl.String,
}
#: dtypes of the transaction rows: what :func:`kit.sources.capture._frames._transactions` makes
#: of the messages (the columns :func:`kit.sources.capture._frames._build` reads), paired in C by
#: :func:`kit.sources.capture._frames._pair`'s rules; the messages themselves are not kept
_TX_DTYPES: dict[str, Any] = {
    "frame": pl.UInt32,
    "ts_ns": pl.Int64,
    "src_ip": pl.String,
    "dst_ip": pl.String,
    "src_port": pl.UInt16,
    "dst_port": pl.UInt16,
    "transport": pl.String,
    "tcp_stream": pl.UInt32,
    "dns_id": pl.UInt16,
    "flags": pl.UInt16,
    "qname": pl.String,
    "qtype_n": pl.Int64,
    "retransmissions": pl.UInt32,
    "r_ts_ns": pl.Int64,
    "r_frame": pl.UInt32,
    "r_flags": pl.UInt16,
    "r_answers": pl.UInt16,
}


def _frame(cols: list[Any]) -> pl.DataFrame:
    """One table of :func:`kit._fastcap.parse` (a list of one-column Arrow capsule pairs) as a
    polars frame. The list is emptied as the columns are imported, so the C buffers of each
    column (strings are copied into polars' own layout) are freed before the next one is read."""
    parts: list[pl.DataFrame] = []
    while cols:
        parts.append(pl.DataFrame(ArrowArray(*cols.pop(0))))
    return pl.concat(parts, how="horizontal") if parts else pl.DataFrame()


def _usable() -> bool:
    """The extension imported, and this polars takes its output."""
    if _fastcap is None:
        return False
    # one DNS query over Ethernet/IPv4/UDP in a classic pcap
    eth = bytes(12) + b"\x08\x00"
    dns = bytes.fromhex("abcd01000001000000000000") + b"\x01a\x07example\x00" + b"\x00\x01\x00\x01"
    udp = (40000).to_bytes(2, "big") + (53).to_bytes(2, "big") + (8 + len(dns)).to_bytes(2, "big")
    ip = bytes.fromhex("4500") + (20 + 8 + len(dns)).to_bytes(2, "big") + bytes(4)
    ip += b"\x40\x11\x00\x00" + bytes([10, 0, 0, 1, 10, 0, 0, 2])
    frame = eth + ip + udp + b"\x00\x00" + dns
    rec = (1).to_bytes(4, "little") + (5).to_bytes(4, "little")
    rec += len(frame).to_bytes(4, "little") * 2 + frame
    pcap = bytes.fromhex("d4c3b2a1020004000000000000000000ffff000001000000") + rec
    try:
        reason, _info, _rows, msgs = _fastcap.parse(pcap, (53,))
        row = _frame(msgs).row(0, named=True)
    except Exception as exc:  # an old polars, a broken build: say so, use tshark
        log.warning("kit._fastcap is not usable (%s); captures are read with tshark", exc)
        return False
    if reason is None and row["qname"] == "a.example" and row["ts_ns"] == 1_000_005_000:
        return True
    log.warning("kit._fastcap misread a known packet (%r, %r); captures use tshark", reason, row)
    return False


if not _usable():
    _fastcap = None  # type: ignore[assignment]

NATIVE: bool = _fastcap is not None
"""True when the native capture engine (``kit/_fastcap.c``) is built and usable; false when
``read_capture`` reads every file with tshark."""


#: A file at least this large (bytes, after gzip) is parsed by several threads at once
#: (:func:`_parse_parallel`); a smaller one in one pass, where threads would cost more than they
#: save. Tests set it to 0 to run the parallel path on every capture.
PARALLEL_MIN_BYTES = 16 << 20

#: A memory-mapped file's pages are given back to the kernel in steps of this many bytes once
#: the C parser has passed them (one pass; see :func:`_parse`). Tests lower it to a page.
RELEASE_BYTES = 16 << 20


def load(
    path: Path, ports: Sequence[int], *, gzipped: bool, workers: int = 1
) -> tuple[Any, dict[str, Any], str | None]:
    """Read one capture natively.

    Returns
    -------
    ((rows, transactions), info, reason)
        ``rows``: the per-packet frame of :func:`kit.sources.capture._fields._packets` (``ts_ns`` Int64 ns,
        ``frame`` UInt32, addresses, ports, ``transport``, TCP columns, ``dns_messages``,
        ``dns_flags``); ``transactions``: one row per query that opens a transaction, with its
        response's ``r_ts_ns``, ``r_frame``, ``r_flags``, ``r_answers`` (null when unanswered) and
        ``retransmissions`` (:data:`_TX_DTYPES`); ``info``: ``file_format``, ``link_type``,
        ``packets``, ``truncated`` (as capinfos and tshark report them) and ``pairing`` (the
        messages by role: ``queries``, ``retx``, ``answers``, ``dup``, ``orphan``); or
        ``(None, {}, reason)`` when the file needs tshark, ``reason`` saying why.
        With ``workers`` > 1 a file of at least :data:`PARALLEL_MIN_BYTES` is parsed by that
        many threads (see :func:`_parse`); the result is the same.
    """
    if _fastcap is None:
        return None, {}, "the native engine (kit/_fastcap.c) is not built"
    if gzipped:
        try:
            data: Any = gzip.decompress(path.read_bytes())
        except (OSError, EOFError, zlib.error) as exc:
            return None, {}, f"gzip stream not readable natively ({exc})"
        return _parse(data, ports, workers)
    with path.open("rb") as fh:
        try:
            mm = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
        except ValueError:  # an empty file cannot be mapped
            return _parse(b"", ports)
    try:
        return _parse(mm, ports, workers, release=RELEASE_BYTES)
    finally:
        mm.close()


def _parse(
    data: Any, ports: Sequence[int], workers: int = 1, *, release: int = 0
) -> tuple[Any, dict[str, Any], str | None]:
    """The C parser on ``data``: with ``workers`` threads (no GIL) when ``data`` holds at least
    :data:`PARALLEL_MIN_BYTES`, else one pass; the same result either way. The threads share the
    file out by conversation, not by packet range, and their rows are merged in C: see "parallel
    within one file" in ``kit/_fastcap.c`` for why and how.

    ``release`` > 0: ``data`` is a read-only ``mmap`` of the file; one pass then gives the pages
    it has parsed back to the kernel every ``release`` bytes (``madvise(MADV_DONTNEED)``), so
    the mapped file does not add its size to the peak resident memory (it did: 1.4 GB at 10 M
    packets). Ignored unless ``data`` is an ``mmap`` (the pages of ``bytes`` would be zeroed)."""
    assert _fastcap is not None
    nw = max(1, min(int(workers), 256)) if len(data) >= PARALLEL_MIN_BYTES else 1
    reason, info, rows_c, txs_c = _fastcap.parse(
        data, tuple(int(p) for p in ports), nw, release if isinstance(data, mmap.mmap) else 0
    )
    if reason is not None:
        return None, {}, reason
    rows = _frame(rows_c).cast(pl.Schema(_ROW_DTYPES))
    rows = rows.with_columns(
        via_http=pl.lit(False),
        frag_frames=pl.lit(None, dtype=pl.List(pl.UInt32)),
    )
    txs = _frame(txs_c).cast(pl.Schema(_TX_DTYPES))
    return (rows, txs), dict(info), None


#: ``meta.engine_reason`` (after ``"auto: "``) when the native engine read the file.
READS = "the native engine reads this file"
#: The note the tshark engine writes for a file that ends inside a packet (same words).
_TRUNCATED_NOTE = (
    "file ends in the middle of a packet (writer killed mid-write?); packets before it were loaded"
)


def read_file(
    path: Path, opts: dict[str, Any], *, gzipped: bool, workers: int = 1
) -> tuple[Any, str]:
    """One file's frames through the native engine, or ``(None, reason)`` when it needs tshark.

    Returns ``(kit.sources.capture._FileResult, READS)``: built by the same code as the tshark engine's
    (``_dns_related``, ``_syn_retransmissions``, ``_build``), with ``meta.engine = "native"`` and
    a null ``meta.tshark_version``.
    """
    from kit.sources.capture import _frames as cap

    ports = list(opts.get("dns_ports") or cap.DEFAULT_DNS_PORTS)
    got, info, reason = load(path, ports, gzipped=gzipped, workers=workers)
    if got is None:
        log.info("%s: read with tshark: %s", path, reason)
        return None, reason or "the native engine refused the file"
    rows, txs = got
    del got  # the frames below replace these: no reference is kept to what they were built from
    truncated = bool(info.pop("truncated", False))
    pairing = {k: int(v) for k, v in info.pop("pairing").items()}
    notes: list[str] = []
    if truncated:  # the same counted note as the tshark engine (capinfos's "broke after N")
        info["broke_after"] = info.get("packets")
        info["damage"] = "cut short"
        notes = cap._damage_notes([_TRUNCATED_NOTE], info)
    pk = cap._syn_retransmissions(cap._dns_related(rows, ports))
    del rows
    # the messages not paired (no DNS over HTTP or incomplete header reaches here: the C code
    # refuses those files), as kit.sources.capture._frames._messages counts them; the C code
    # writes the root name as "." already (what _frames._root does to tshark's "<Root>")
    in_icmp = pk.filter(pl.col("transport") == "icmp")["dns_messages"].cast(pl.Int64).sum()
    counts = {"in_icmp": int(in_icmp or 0), "in_http": 0, "unparsed": 0}
    info["engine"] = "native"
    # handed over in a list that _build empties, so the transactions are freed once used
    handed = [(txs, pairing, counts)]
    del txs
    res = cap._build(
        pk,
        path,
        cap._capture_name(path),
        None,
        opts,
        info,
        notes,
        truncated,
        gzipped,
        paired=handed,
    )
    return res, READS
