"""Capture loader: DNS transactions, TCP connections and packet rates from pcap/pcapng files.

:func:`read_capture` reads each file with the native engine (``kit/_fastcap.c``, see
:mod:`kit.sources.capture._native`) when it supports what the file holds, else (and with
``engine="tshark"``) runs ``tshark -T fields`` (one process per file, files in parallel) with the C
locale, writes its tab-separated output to a temporary file, parses it with polars and pairs queries
with responses in polars; both engines share everything from the per-packet rows on. It returns a
:class:`Capture` of four frames (``dns``, ``tcp``, ``packets``, ``meta``) whose schemas are the
module constants :data:`DNS_SCHEMA`, :data:`TCP_SCHEMA`, :data:`PACKETS_SCHEMA` and
:data:`META_SCHEMA`. The notes below describe the tshark engine; the native one gives the same
frames.

How tshark's output is read
---------------------------
* Several DNS messages in one frame (DNS over TCP with pipelined queries) make tshark print every
  DNS field once per message. The kit asks for all occurrences (``-E occurrence=a``) joined by the
  ASCII unit separator ``0x1f``, which cannot collide with data: tshark prints a control byte inside
  a name as an escape (``\\037``). The header fields (``dns.id``, ``dns.flags``, ``dns.count.*``)
  occur exactly once per message, so they are split and zipped into one row per message; the
  question names are assigned per message from ``dns.count.queries`` (``dns.count.zones`` for an
  UPDATE, whose header counts zones and prerequisites instead of questions and answers).
* ``qname`` is what tshark shows: presentation form **without** the trailing dot, case preserved,
  the root as ``"."`` (tshark prints ``<Root>``; a one-label name whose label is literally
  ``<Root>`` looks the same in tshark's output and is shown as ``"."`` too). tshark escapes tab,
  newline and other control bytes (``\\t``, ``\\n``, ``\\037``), prints bytes that are not valid
  UTF-8 as U+FFFD, and prints a dot or backslash inside a label as-is, so those names are not
  byte-exact.
* Large files are cut into packet ranges (:data:`DEFAULT_CHUNK_PACKETS`, ``editcap -r``), each
  started :data:`CHUNK_OVERLAP_PACKETS` early so tshark's TCP state is warm, dissected by one tshark
  each, in parallel. tshark's memory grows with the packets it has seen (~160 MB + ~0.5 kB per
  packet), so this bounds it per range; TCP stream numbers are stitched across ranges so they equal
  one pass (tests compare both). A DNS-over-TCP connection already open where a range begins is
  joined mid-stream by that range's tshark; if that loses messages, ``meta.notes`` says so.
* Transactions are paired like tshark's DNS dissector: per conversation (UDP: the address/port pair,
  TCP: the ``tcp.stream``) and DNS ID, a query repeated within 5 s of the first one while still
  unanswered is a retransmission (counted in ``retransmissions``), the first response answers the
  transaction, a later one is a duplicate response (counted in ``meta``). DNS messages quoted
  inside ICMP errors are not transactions; they are counted in ``meta``.

Helpers on the frames
---------------------
:func:`latency_by` (quantiles by server/qtype/transport) and :func:`packet` / :func:`stream`
(pyshark objects for drill-down; they work inside a running Jupyter kernel). The analyses of
these frames live in :mod:`kit.analyses`: packet rates against a limit
(:mod:`kit.analyses.rates`), slow answers attributed to the upstream exchange and TCP connection
that served them (:mod:`kit.analyses.attribution`), roles and TCP towards the upstream
(:mod:`kit.analyses.upstream`).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import errno
import glob
import hashlib
import json
import logging
import os
import re
import shutil
import stat
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from kit.errors import InputFormatError, ToolError, ToolNotFoundError
from kit.net import flag_expr, is_syn, syn_expr
from kit.schema import check_schema
from kit.sources import _tshark
from kit.sources._io import GZIP_MAGIC, Source, expand_sources, file_kind
from kit.sources.capture._frames import (
    _AGG,
    _CAPTURE_SUFFIXES,
    _DAMAGED,
    DEFAULT_DNS_PORTS,
    DNS_SCHEMA,
    META_SCHEMA,
    PACKETS_SCHEMA,
    TCP_SCHEMA,
    _build,
    _capture_name,
    _damage_notes,
    _dns_related,
    _FileResult,
    _first,
    _hex,
    _syn_retransmissions,
)
from kit.sources.detect import HEAD_BYTES, capture_head

log = logging.getLogger(__name__)


__all__ = [
    "CHUNK_OVERLAP_PACKETS",
    "DEFAULT_CHUNK_PACKETS",
    "DNS_SCHEMA",
    "META_SCHEMA",
    "PACKETS_SCHEMA",
    "TCP_SCHEMA",
    "Capture",
    "cache_dir",
    "latency_by",
    "packet",
    "read_capture",
    "stream",
]

#: Bumped whenever the parsing or the schemas change, so old cache entries are not reused.
CACHE_FORMAT = 3
#: Files with more packets than 1.25 x this are dissected in packet ranges, in parallel.
DEFAULT_CHUNK_PACKETS = 250_000
#: Each range starts this many packets early (dropped again) to warm up TCP state in tshark.
CHUNK_OVERLAP_PACKETS = 5_000
_FRAGMENTS = "ip.flags.mf == 1 or ip.frag_offset > 0 or ipv6.fraghdr"


def _base_filter(ports: Sequence[int]) -> str:
    """The kit's tshark display filter: DNS, anything on a DNS port, and IP fragments."""
    # '==' chains, not 'in {...}': the set syntax changed between tshark 3.x and 4.x
    on = " or ".join(f"{t}.port == {p}" for t in ("udp", "tcp") for p in ports)
    return f"dns or {on} or {_FRAGMENTS}"


_BASE_FILTER = _base_filter(DEFAULT_DNS_PORTS)


# (tshark field, internal column name)
_FIELDS: tuple[tuple[str, str], ...] = (
    ("frame.number", "frame"),
    ("frame.time_epoch", "epoch"),
    ("frame.len", "length"),
    ("frame.protocols", "protocols"),
    ("ip.src", "ip_src"),
    ("ip.dst", "ip_dst"),
    ("ipv6.src", "ip6_src"),
    ("ipv6.dst", "ip6_dst"),
    ("udp.srcport", "udp_sport"),
    ("udp.dstport", "udp_dport"),
    ("tcp.srcport", "tcp_sport"),
    ("tcp.dstport", "tcp_dport"),
    ("tcp.stream", "tcp_stream"),
    ("tcp.flags", "tcp_flags"),
    ("tcp.analysis.retransmission", "tcp_retx"),
    ("tcp.seq_raw", "tcp_seq"),
    ("dns.id", "dns_id"),
    ("dns.flags", "dns_flags"),
    ("dns.count.queries", "dns_qd"),
    ("dns.count.answers", "dns_an"),
    ("dns.count.zones", "dns_zd"),
    ("dns.count.prerequisites", "dns_pr"),
    ("dns.qry.name", "dns_qname"),
    ("dns.qry.type", "dns_qtype"),
    ("ip.fragment", "ip_frags"),
    ("ipv6.fragment", "ip6_frags"),
)


#: The engines of :func:`read_capture` (``engine=``).
ENGINES = ("auto", "native", "tshark")


@dataclass(frozen=True)
class Capture:
    """What :func:`read_capture` returns: four frames (see the module's schema constants).

    Attributes
    ----------
    dns : polars.DataFrame
        One row per DNS query transaction, schema :data:`DNS_SCHEMA`.
    tcp : polars.DataFrame
        One row per TCP connection on port 53, schema :data:`TCP_SCHEMA`.
    packets : polars.DataFrame
        One row per DNS-related packet, schema :data:`PACKETS_SCHEMA`.
    meta : polars.DataFrame
        One row per input file, schema :data:`META_SCHEMA`.
    """

    dns: pl.DataFrame
    tcp: pl.DataFrame
    packets: pl.DataFrame
    meta: pl.DataFrame


# --------------------------------------------------------------------------------------------
# public entry point


def read_capture(
    source: Source,
    *,
    display_filter: str | None = None,
    cache: bool | str | os.PathLike[str] = True,
    progress: bool | None = None,
    censor_s: float | None = None,
    workers: int | None = None,
    tshark_path: str | os.PathLike[str] | None = None,
    chunk_packets: int | None = None,
    dns_ports: Sequence[int] = DEFAULT_DNS_PORTS,
    engine: str = "auto",
) -> Capture:
    """Load DNS transactions, port-53 TCP connections and DNS packets from packet captures.

    Parameters
    ----------
    source
        A ``.pcap``/``.pcapng`` file (also gzipped, ``.gz``), a list of them, a glob or a directory.
        Several files (e.g. one per node) are loaded in parallel, one tshark per file, and are told
        apart by the ``capture`` column (the file name without ``.gz`` and the capture suffix).
    display_filter
        An extra tshark display filter, ANDed with the kit's own
        (``dns or udp.port == 53 or tcp.port == 53`` plus IP fragments; the ports are
        ``dns_ports``). Packets it drops are
        counted in ``meta.packets_skipped``. tshark checks it first: a filter it rejects raises
        ``ValueError`` with tshark's message.
    cache
        ``True`` (default): keep results as Parquet under :func:`cache_dir` (``$DNSKIT_CACHE``, else
        ``$XDG_CACHE_HOME/dnskit`` or ``~/.cache/dnskit``), keyed by file content (size and SHA-256
        of the first and last MiB), kit version, tshark version and options. A path: use that
        folder. ``False``: neither read nor write the cache.
    progress
        Show a tqdm bar of packets processed (notebook-aware). ``None``: only when interactive
        (a terminal on stderr or a Jupyter kernel).
    censor_s
        An unanswered query sent less than this many seconds before the capture's last packet is
        ``censored`` (its answer may simply fall after the end). ``None``: the largest latency seen
        in that capture plus 0.2 s, at least 2 s and at most 10 s.
    workers
        tshark processes at a time; default: the number of CPUs, at most the number of files.
    chunk_packets
        Files with more than 1.25 x this many packets are dissected as packet ranges of this size,
        one tshark per range (in parallel for a single file), which bounds tshark's memory
        (~160 MB + ~0.5 kB per packet of the range) and uses every core. The ranges overlap by
        :data:`CHUNK_OVERLAP_PACKETS` so TCP state carries over, and TCP stream numbers are
        stitched to equal one pass over the whole file. ``None``: :data:`DEFAULT_CHUNK_PACKETS`;
        ``0``: never split. Not used with ``display_filter`` (one pass then). The tshark engine
        only: the native engine reads a file in one pass.
    dns_ports
        The ports DNS servers listen on (default ``(53,)``). ``tcp`` holds the TCP connections
        with one of these ports at either end; packets to or from them are kept even when they
        carry no DNS (SYNs, ACKs, FINs). DNS messages on other ports (mDNS on 5353, a lab server
        on 1053) are still transactions in ``dns``, but their connections are in ``tcp`` only
        when the port is listed here, e.g. ``dns_ports=(53, 5353)``.
    tshark_path
        tshark to use; default: found like pyshark does (``$DNSKIT_TSHARK``, ``PATH``, pyshark's
        ``config.ini``, standard locations).
    engine
        ``"auto"`` (default): each file is read by the native engine (``kit/_fastcap.c``, one
        pass in C, no tshark; :data:`kit.sources.capture._native.NATIVE` says whether it is built) when
        it supports what the file holds, else by tshark; ``meta.engine`` and
        ``meta.engine_reason`` say which one ran and why. IP fragments, tunnels, mDNS/LLMNR,
        malformed or hostile DNS names, gaps in a DNS TCP stream, unknown link types and
        ``display_filter`` go to tshark. ``"tshark"``: always tshark (the reference).
        ``"native"``: always the native engine; a file it cannot read raises
        ``InputFormatError`` naming the reason and frame. Both engines give the same frames
        (``tests/test_capture_native.py`` compares them on every capture the kit has).

    Returns
    -------
    Capture
        Frozen dataclass with four frames.

        ``dns`` (:data:`DNS_SCHEMA`), one row per query transaction, client and upstream side alike,
        sorted by ``capture``, ``ts``:

        - ``ts`` Datetime(us, UTC): time of the (first) query packet.
        - ``ts_response`` Datetime(us, UTC): time of the first response; null when unanswered.
        - ``latency_s`` Float64, seconds: response minus first query, computed from nanosecond
          timestamps (equals tshark's ``dns.time``); null when unanswered.
        - ``answered`` Boolean: a response was seen.
        - ``censored`` Boolean: unanswered, but sent within the censor window before the end of the
          capture, so "no answer" is unknown rather than a failure.
        - ``client_ip`` String, ``client_port`` UInt16: sender of the query (IPv4 dotted or IPv6
          text; the innermost IP header).
        - ``server_ip`` String, ``server_port`` UInt16: receiver of the query.
        - ``transport`` String: ``"udp"`` or ``"tcp"``.
        - ``dns_id`` UInt16: DNS message ID.
        - ``qname`` String: first question name as tshark shows it, without the trailing dot, case
          preserved, root is ``"."`` (see the module notes on escaping).
        - ``qtype`` String: mnemonic (``"A"``, ``"AAAA"``...), ``"TYPE<n>"`` when unknown.
        - ``rcode`` String: ``"NOERROR"``, ``"NXDOMAIN"``... (``"RCODE<n>"`` when unknown; header
          RCODE only, no EDNS extension); null when unanswered.
        - ``tc`` Boolean: the response had the TC (truncated) bit; null when unanswered.
        - ``answers`` UInt16: answer RR count of the response; null when unanswered.
        - ``retransmissions`` UInt32: times the same query (same conversation and ID, within 5 s,
          before an answer) was sent again.
        - ``tcp_stream`` UInt32: tshark's ``tcp.stream`` for DNS over TCP, null for UDP.
        - ``capture`` String: file the row comes from (stem).
        - ``frame_query`` UInt32, ``frame_response`` UInt32: tshark frame numbers (1-based) of the
          first query and of the response (null when unanswered).
        - ``opcode`` String: the query's opcode, ``"QUERY"``, ``"NOTIFY"``, ``"UPDATE"`` (then
          ``qname``/``qtype`` are the zone and ``SOA``, ``answers`` the prerequisite count),
          ``"IQUERY"``, ``"STATUS"``, ``"DSO"`` or ``"OPCODE<n>"``. Every opcode is paired the
          same way; filter on ``opcode == "QUERY"`` for resolution latency.

        What is left out of ``dns``, and counted in ``meta`` instead: DNS messages quoted in ICMP
        errors, DNS inside HTTP (DoH over HTTP/1.1 or HTTP/2, when tshark can see it, i.e. h2c or
        decrypted TLS): every DoH query has ID 0 and a connection carries many at once, so pairing
        by conversation and ID (as here) would pair answers with queries for other names; such
        messages are counted in ``meta.dns_over_http`` with a note. A malformed query (e.g. a
        question running past the end of the packet) still has an ID: it is paired with the
        response to it, usually FORMERR, with a null ``qname``; tshark does the same from the
        response's side (``dns.response_to``) but shows no ``dns.response_in`` on the malformed
        query, because its dissection stopped at the damage.

        ``tcp`` (:data:`TCP_SCHEMA`), one row per TCP connection with a ``dns_ports`` port (53)
        at either end (tshark ``tcp.stream``); connections on other ports are not listed even
        when they carry DNS (DoH on 443/80, DNS on 5353 unless ``dns_ports`` names it), nor TCP
        inside tunnels on other ports:

        - ``stream`` UInt32: tshark's ``tcp.stream``.
        - ``client_ip`` String, ``client_port`` UInt16: sender of the first SYN; when no SYN was
          captured, the receiver of the SYN/ACK, else the sender of the first DNS query (or the
          receiver of the first DNS response) on the connection, else the side not on a DNS port.
          Ports decide only last: a client may use source port 53 too.
        - ``server_ip`` String, ``server_port`` UInt16: the other side.
        - ``ts_syn`` Datetime(us, UTC): first SYN (without ACK); null when not captured.
        - ``syn_retransmits`` UInt32: SYNs sent after the first one (tshark flags them as
          ``tcp.analysis.retransmission``); 0 when no SYN was captured (``syn_seen`` false).
        - ``ts_synack`` Datetime(us, UTC): first SYN/ACK; null when none was captured.
        - ``handshake_s`` Float64, seconds: first SYN to first SYN/ACK.
        - ``established`` Boolean: a SYN/ACK was seen; null when neither SYN nor SYN/ACK was
          captured (connection already open when the capture started).
        - ``ts_end`` Datetime(us, UTC): first RST, else the last FIN; null while open.
        - ``end_reason`` String: ``"rst"``, ``"fin"`` or ``"open"``.
        - ``dns_messages`` UInt32: DNS messages carried (both directions).
        - ``packets`` UInt32: packets of the connection in the capture.
        - ``ts_first`` Datetime(us, UTC), ``ts_last`` Datetime(us, UTC): first and last packet.
        - ``capture`` String: file stem.
        - ``syn_seen`` Boolean: the connection's SYN is in the capture; false when it was already
          open before the capture started (or the SYN was not captured), so nothing is known about
          its SYN retransmissions.

        ``packets`` (:data:`PACKETS_SCHEMA`), one row per DNS-related packet (for rate series):
        UDP/TCP packets carrying DNS or with a ``dns_ports`` port at either end, ICMP errors
        quoting DNS, and IP fragments (except those of a datagram tshark reassembled into
        something else, e.g. HTTP inside a fragmented GRE/ERSPAN tunnel packet):

        - ``ts`` Datetime(us, UTC): capture time.
        - ``capture`` String: file stem.
        - ``frame`` UInt32: tshark frame number.
        - ``src_ip`` String, ``dst_ip`` String: innermost IP header (outer one for ICMP errors).
        - ``src_port`` UInt16, ``dst_port`` UInt16: UDP/TCP ports; null for bare IP fragments.
        - ``transport`` String: ``"udp"``, ``"tcp"``, ``"icmp"`` (an ICMP error quoting DNS) or
          ``"ipfrag"`` (an IP fragment that is not the last one).
        - ``length`` UInt32, bytes: frame length on the wire.
        - ``tcp_flags`` UInt16: TCP flag bits (0x02 SYN, 0x10 ACK, 0x01 FIN, 0x04 RST); null for UDP.
        - ``tcp_stream`` UInt32: tshark's ``tcp.stream``; null for UDP.
        - ``is_retransmission`` Boolean: tshark's ``tcp.analysis.retransmission``.
        - ``dns_messages`` UInt16: DNS messages in the packet.

        ``meta`` (:data:`META_SCHEMA`), one row per file:

        - ``capture`` String, ``path`` String: file stem and path as given.
        - ``file_format`` String, ``link_type`` String: as capinfos names them (``"pcapng"``,
          ``"ether"``, ``"linux-sll2"``...).
        - ``gzipped`` Boolean: the file was gzip-compressed (tshark reads it directly).
        - ``packets`` UInt64: packets in the file; ``packets_kept`` UInt64: rows in ``packets``;
          ``packets_skipped`` UInt64: the rest (not DNS-related, or dropped by ``display_filter``).
        - ``first_ts`` / ``last_ts`` Datetime(us, UTC): first and last packet of the file.
        - ``truncated`` Boolean: the file ends in the middle of a packet (tcpdump killed mid-write);
          what was before it is loaded.
        - ``dns_messages`` UInt64 = ``dns_queries`` + ``dns_query_retransmissions`` +
          ``dns_responses`` + ``dns_duplicate_responses`` + ``dns_orphan_responses`` +
          ``dns_in_icmp`` + ``dns_unparsed`` + ``dns_over_http`` (every DNS message accounted for,
          whatever its opcode; ``dns_queries`` is the number of ``dns`` rows, ``dns_responses`` the
          answered ones).
        - ``censor_window_s`` Float64, seconds: the window used for ``censored``.
        - ``notes`` List(String): damage and what was skipped, in words.
        - ``tshark_version`` String; ``from_cache`` Boolean.
        - ``dns_over_http`` UInt64: DNS messages inside HTTP (DoH), left out of ``dns`` (see above).
        - ``engine`` String: ``"native"`` or ``"tshark"``, the engine that read the file
          (``tshark_version`` is null when it was the native one).
        - ``engine_reason`` String: why that engine, e.g. ``"auto: the native engine reads this
          file"``, ``"auto: IP fragments (frame 12)"`` (the native engine refused the file
          there), ``"auto: display_filter needs tshark"``, ``"engine='tshark'"``.

    Every file is checked before any tool reads it (see :func:`_check_capture`): it must be a
    regular file (not a FIFO, device, socket or directory) that starts with a pcap or pcapng
    header, optionally gzipped. tshark, capinfos and editcap then run under a time limit and, when
    the kit runs as root, as the user ``nobody`` (see :mod:`kit.sources._tshark`). A file that is damaged
    part-way (cut mid-record, garbage after valid packets, a corrupt gzip stream) is not an
    error: the packets before the damage are loaded, ``meta.truncated`` is true and
    ``meta.notes`` says after which packet the file broke.

    Raises
    ------
    ValueError
        ``display_filter`` is not a valid tshark display filter.
    FileNotFoundError
        A source does not exist.
    InputFormatError
        A file is empty, is not a capture tshark can read (no pcap/pcapng magic number, a cut
        file header), is not a regular file (directory, FIFO, device, socket), is a dangling
        symlink or a symlink loop, or cannot be read (permission denied); the message names it.
    ToolNotFoundError
        tshark is not installed.
    ToolError
        tshark failed for another reason (its stderr is in the message), or a tool ran past its
        time limit (the message names the tool and the file).
    """
    if engine not in ENGINES:
        raise ValueError(f"engine={engine!r}: expected one of {', '.join(map(repr, ENGINES))}")
    if engine == "native" and display_filter:
        raise ValueError("display_filter needs tshark: use engine='auto' or engine='tshark'")
    checked = _check_named(source)
    files = expand_sources(source, suffixes=_CAPTURE_SUFFIXES, what="capture")
    for f in files:
        if os.path.abspath(f) not in checked:
            _check_capture(f)
    tshark: str | None
    try:
        tshark = _tshark.find_tshark(tshark_path)
    except ToolNotFoundError:
        from kit.sources.capture._native import NATIVE

        if engine == "tshark" or display_filter or not NATIVE or tshark_path is not None:
            raise
        tshark = None  # the native engine reads what it can; a file that needs tshark raises
    cdir: Path | None
    if cache is False:
        cdir = None
    elif cache is True:
        cdir = cache_dir()
    else:
        cdir = Path(cache)
    # tshark's version keys the cache and fills meta; the native engine needs it for neither
    # (`tshark -v` costs ~0.2 s), so without a cache it is asked only when tshark reads a file
    need_version = tshark is not None and (engine == "tshark" or cdir is not None)
    version = _cached_tshark_version(tshark, cdir) if need_version and tshark else None
    if display_filter:
        assert tshark is not None
        _check_display_filter(tshark, display_filter)
    ports = sorted({int(p) for p in dns_ports})
    if not ports or any(not 0 < p < 65536 for p in ports):
        raise ValueError(f"dns_ports={dns_ports!r}: expected one or more port numbers 1..65535")
    opts = {
        "display_filter": display_filter,
        "censor_s": censor_s,
        "chunk_packets": chunk_packets,
        "dns_ports": ports,
        "engine": engine,
    }
    bar = _Progress(files, enabled=_want_progress(progress))
    cpus = workers or os.cpu_count() or 1
    n_workers = max(1, min(len(files), cpus))
    # one file: its packet ranges use all workers; several files: one tshark per file at a time
    chunk_workers = cpus if len(files) == 1 else 1
    results: list[_FileResult | None] = [None] * len(files)
    try:
        if n_workers == 1:
            for i, f in enumerate(files):
                results[i] = _load_one(f, tshark, version, opts, cdir, bar, chunk_workers)
        else:
            with concurrent.futures.ThreadPoolExecutor(n_workers) as pool:
                futs = {
                    pool.submit(_load_one, f, tshark, version, opts, cdir, bar): i
                    for i, f in enumerate(files)
                }
                for fut in concurrent.futures.as_completed(futs):
                    results[futs[fut]] = fut.result()
    finally:
        bar.close()
    done = [r for r in results if r is not None]
    cap = Capture(
        dns=pl.concat([r.dns for r in done], how="vertical"),
        tcp=pl.concat([r.tcp for r in done], how="vertical"),
        packets=pl.concat([r.packets for r in done], how="vertical"),
        meta=pl.concat([r.meta for r in done], how="vertical"),
    )
    check_schema(cap.dns, DNS_SCHEMA, name="capture.dns")
    check_schema(cap.tcp, TCP_SCHEMA, name="capture.tcp")
    check_schema(cap.packets, PACKETS_SCHEMA, name="capture.packets")
    check_schema(cap.meta, META_SCHEMA, name="capture.meta")
    return cap


_NOT_CAPTURE_HINT = "Expected pcap or pcapng (optionally gzipped) as written by tcpdump -w"


def _os_error(exc: OSError, text: str) -> InputFormatError:
    """An OSError met while checking a capture, as an InputFormatError naming the file."""
    if isinstance(exc, PermissionError):
        why = "cannot read the capture: permission denied"
        hint = "Make it readable for this user (chmod/chown), or copy it somewhere readable"
    elif exc.errno == errno.ELOOP:
        why, hint = "the capture is a symlink loop", "Point the symlink at the capture file"
    else:
        why, hint = f"cannot read the capture: {exc.strerror or exc}", None
    return InputFormatError(why, path=text, hint=hint)


def _check_capture(path: str | os.PathLike[str]) -> str:
    """Check one capture before any tool reads it; return its format (see :func:`capture_head`).

    The file must be a regular file (symlinks followed) the kit can open, starting with a pcap
    or pcapng header, optionally gzipped. It is opened non-blocking, so a FIFO swapped in after
    the ``stat`` cannot block, and only its first :data:`kit.sources.detect.HEAD_BYTES` bytes are read.

    Raises
    ------
    FileNotFoundError
        Nothing at ``path``.
    InputFormatError
        Not a regular file (directory, FIFO, device, socket), a dangling symlink, a symlink loop,
        permission denied, empty, or no pcap/pcapng header; the message names the file.
    """
    text = os.fspath(path)
    try:
        st = os.stat(text)
    except FileNotFoundError:
        if os.path.islink(text):
            raise InputFormatError(
                f"the capture is a dangling symlink (to {os.readlink(text)!r}, which does not "
                "exist)",
                path=text,
            ) from None
        raise FileNotFoundError(f"capture file not found: {text}") from None
    except OSError as exc:
        raise _os_error(exc, text) from None
    if not stat.S_ISREG(st.st_mode):
        raise InputFormatError(
            f"the capture is {file_kind(st.st_mode)}, not a regular file",
            path=text,
            hint="Give the capture file itself (tcpdump -w FILE); copy a stream to a file first",
        )
    try:
        fd = os.open(text, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise _os_error(exc, text) from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise InputFormatError(
                f"the capture is {file_kind(st.st_mode)}, not a regular file", path=text
            )
        parts: list[bytes] = []
        size = 0
        while size <= HEAD_BYTES:
            chunk = os.read(fd, HEAD_BYTES + 1 - size)
            if not chunk:
                break
            parts.append(chunk)
            size += len(chunk)
    except OSError as exc:
        raise _os_error(exc, text) from None
    finally:
        os.close(fd)
    head = b"".join(parts)
    if not head:
        raise InputFormatError(
            "empty file, not a packet capture",
            path=text,
            offset=0,
            hint="Check that tcpdump wrote to this file (tcpdump -w FILE)",
        )
    fmt, reason = capture_head(head, truncated=len(head) > HEAD_BYTES)
    if fmt is None:
        raise InputFormatError(
            f"not a packet capture tshark can read: {reason}",
            path=text,
            offset=0,
            hint=_NOT_CAPTURE_HINT,
        )
    return fmt


def _check_named(source: Source) -> set[str]:
    """Check the paths named in ``source`` before they are expanded (see :func:`_check_capture`).

    A named file is checked itself (a FIFO, device or symlink loop is an error, not "not found");
    in a named folder, every entry named like a capture that is not a regular file (a FIFO, a
    sub-folder, a dangling symlink) is an error rather than silently left out; so is a match of
    a glob that is neither a regular file nor a folder (a FIFO, a device, a dangling symlink).
    Paths that do not exist are left to :func:`kit.sources._io.expand_sources`. Returns the absolute
    paths of the files checked.
    """
    if isinstance(source, str | os.PathLike):
        items: list[Any] = [source]
    elif isinstance(source, Sequence):
        items = list(source)
    else:
        return set()
    checked: set[str] = set()
    for item in items:
        if not isinstance(item, str | os.PathLike):
            continue  # expand_sources raises TypeError
        text = os.path.expanduser(os.fspath(item))
        try:
            os.lstat(text)
        except (FileNotFoundError, NotADirectoryError):
            if set("*?[") & set(text):
                for m in sorted(glob.glob(text, recursive=True)):
                    if not os.path.isdir(m) and not os.path.isfile(m):
                        _check_capture(m)  # raises, naming the match
            continue
        except OSError as exc:
            raise _os_error(exc, text) from None
        if not os.path.isdir(text):
            _check_capture(text)
            checked.add(os.path.abspath(text))
            continue
        try:
            with os.scandir(text) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as exc:
            raise InputFormatError(
                f"cannot list the capture folder: {exc.strerror or exc}", path=text
            ) from None
        for e in entries:
            low = e.name.lower().removesuffix(".gz")
            if e.name.startswith(".") or not low.endswith(_CAPTURE_SUFFIXES):
                continue
            try:
                regular = e.is_file()
            except OSError:
                regular = False
            if not regular:
                _check_capture(e.path)  # raises, naming the entry
    return checked


def _check_display_filter(tshark: str, display_filter: str) -> None:
    """Let tshark compile the filter (``-Y`` on an empty input) so a typo is an error, not 0 rows.

    Raises
    ------
    ValueError
        tshark rejects the filter; its own message is included.
    """
    with tempfile.TemporaryDirectory(prefix="dnskit-flt-") as tmpd:
        empty = Path(tmpd) / "empty.pcap"
        empty.write_bytes(bytes.fromhex("d4c3b2a1020004000000000000000000ffff000001000000"))
        proc = _tshark.run(
            [tshark, "-n", "-r", "-", "-Y", display_filter, "-T", "fields", "-e", "frame.number"],
            what="tshark (display filter check)",
            check=False,
            stdin_path=empty,
        )
    if proc.returncode != 0:
        msg = " ".join(
            ln.strip().removeprefix("tshark: ")
            for ln in proc.stderr.decode("utf-8", "replace").splitlines()
            if ln.strip() and "Running as user" not in ln
        )
        raise ValueError(f"display_filter={display_filter!r} is not a valid tshark filter: {msg}")


def _cached_tshark_version(tshark: str, cdir: Path | None) -> str:
    """tshark's version, remembered in the cache folder per binary (path, size, mtime).

    Running ``tshark -v`` costs ~0.2 s, which would dominate a load from the cache.
    """
    if cdir is None:
        return _tshark.tshark_version(tshark)
    try:
        st = Path(tshark).stat()
    except OSError:
        return _tshark.tshark_version(tshark)
    key = f"{os.path.realpath(tshark)}|{st.st_size}|{st.st_mtime_ns}"
    f = cdir / "tshark-versions.json"
    known: dict[str, str] = {}
    with contextlib.suppress(OSError, ValueError):
        known = json.loads(f.read_text())
    if isinstance(known, dict) and isinstance(known.get(key), str):
        return known[key]
    version = _tshark.tshark_version(tshark)
    known = known if isinstance(known, dict) else {}
    known[key] = version
    with contextlib.suppress(OSError):
        cdir.mkdir(parents=True, exist_ok=True)
        tmp = f.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(known))
        tmp.replace(f)
    return version


def cache_dir() -> Path:
    """The default cache folder: ``$DNSKIT_CACHE``, else ``$XDG_CACHE_HOME/dnskit``, else ``~/.cache/dnskit``."""
    env = os.environ.get("DNSKIT_CACHE")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "dnskit"


# --------------------------------------------------------------------------------------------
# one file


def _content_key(path: Path, version: str | None, opts: dict[str, Any]) -> str:
    size = path.stat().st_size
    h = hashlib.sha256()
    with path.open("rb") as fh:
        h.update(fh.read(1 << 20))
        if size > (1 << 20):
            fh.seek(max(size - (1 << 20), 1 << 20))
            h.update(fh.read())
    from kit import __version__

    h.update(
        json.dumps(
            [size, __version__, CACHE_FORMAT, version, opts, _capture_name(path)], sort_keys=True
        ).encode()
    )
    return h.hexdigest()[:32]


def _load_one(
    path: Path,
    tshark: str | None,
    version: str | None,
    opts: dict[str, Any],
    cdir: Path | None,
    bar: _Progress,
    workers: int = 1,
) -> _FileResult:
    with path.open("rb") as fh:
        head = fh.read(4)
    if not head:
        raise InputFormatError(
            "empty file, not a packet capture",
            path=path,
            offset=0,
            hint="Check that tcpdump wrote to this file (tcpdump -w FILE)",
        )
    key = _content_key(path, version, opts) if cdir is not None else ""
    if cdir is not None:
        hit = _cache_read(cdir, key, path)
        if hit is not None:
            bar.skip(path)
            return hit
    gzipped = head[:2] == GZIP_MAGIC
    engine = opts.get("engine", "tshark")
    res: _FileResult | None = None
    reason = f"engine={engine!r}"
    if engine != "tshark":  # engine dispatch: native where it reads the file, else tshark
        from kit.sources.capture import _native as _capture_native

        if opts.get("display_filter"):
            reason = "auto: display_filter needs tshark"
        else:
            res, why = _capture_native.read_file(path, opts, gzipped=gzipped)
            if res is None and engine == "native":
                raise InputFormatError(
                    f"the native capture engine cannot read this file: {why}",
                    path=path,
                    hint="read it with engine='auto' or engine='tshark'",
                )
            reason = f"{engine}: {why}" if engine == "auto" else reason
            if res is not None:
                res = dataclasses.replace(
                    res, meta=res.meta.with_columns(engine_reason=pl.lit(reason))
                )
                bar.finish(path, int(res.meta["packets"].item() or 0))
    if res is None:
        if tshark is not None and version is None:
            version = _cached_tshark_version(tshark, cdir)
        if tshark is None:
            raise ToolNotFoundError(
                "tshark", install_hint=f"apt-get install tshark ({path} needs it: {reason})"
            )
        res = _parse_file(path, tshark, version, opts, bar, gzipped=gzipped, workers=workers)
        res = dataclasses.replace(res, meta=res.meta.with_columns(engine_reason=pl.lit(reason)))
    if cdir is not None:
        _cache_write(cdir, key, res)
    return res


def _cache_read(cdir: Path, key: str, path: Path) -> _FileResult | None:
    d = cdir / "capture" / key
    parts = {n: d / f"{n}.parquet" for n in ("dns", "tcp", "packets", "meta")}
    if not all(p.is_file() for p in parts.values()):
        return None
    try:
        frames = {n: pl.read_parquet(p) for n, p in parts.items()}
    except Exception as exc:  # a damaged cache entry is removed, then rebuilt
        log.warning("removing unreadable cache entry %s: %s", d, exc)
        shutil.rmtree(d, ignore_errors=True)
        return None
    meta = frames["meta"].with_columns(path=pl.lit(os.fspath(path)), from_cache=pl.lit(True))
    log.info("%s: loaded from cache %s", path, d)
    return _FileResult(frames["dns"], frames["tcp"], frames["packets"], meta)


def _cache_write(cdir: Path, key: str, res: _FileResult) -> None:
    final = cdir / "capture" / key
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{key}.", dir=final.parent))
        for n in ("dns", "tcp", "packets", "meta"):
            getattr(res, n).write_parquet(tmp / f"{n}.parquet", compression="lz4", statistics=False)
        try:
            tmp.rename(final)
        except OSError:  # another process wrote it first
            for p in tmp.iterdir():
                p.unlink()
            tmp.rmdir()
    except OSError as exc:
        log.warning("could not write capture cache under %s: %s", cdir, exc)


_CAPINFOS_BROKE = re.compile(r"An error occurred after reading (\d+) packets")


def _capinfos(tshark: str, path: Path) -> dict[str, Any]:
    """File format, link type, packet count and first/last time via capinfos (reads frames only).

    On a damaged file capinfos stops at the damage and prints no table; then ``packets`` is the
    number it read before it (``broke_after``) and ``damage`` its reason.
    """
    exe = _tshark.capinfos_path(tshark)
    info: dict[str, Any] = {}
    if exe is None:
        return info
    proc = _tshark.run(
        [exe, "-M", "-T", "-r", "-t", "-E", "-c", "-"],
        what="capinfos",
        check=False,
        stdin_path=path,
    )
    err = proc.stderr.decode("utf-8", "replace")
    if "cut short in the middle of a packet" in err:
        info["truncated"] = True
    m = _CAPINFOS_BROKE.search(err)
    if m:
        info["packets"] = info["broke_after"] = int(m.group(1))
        info["truncated"] = True
        why = [
            ln.strip().strip("()")
            for ln in err.splitlines()
            if ln.strip().startswith("(") and "will continue anyway" not in ln
        ]
        cut = "cut short" in err and "damaged or corrupt" not in err
        info["damage"] = "; ".join((["cut short"] if cut else []) + why)
    if "file_format" not in info:  # no table: name the format from the magic number
        with contextlib.suppress(OSError), path.open("rb") as fh:
            fmt, _ = capture_head(fh.read(HEAD_BYTES), truncated=True)
            if fmt:
                info["file_format"] = fmt.removeprefix("gzip/")
    line = proc.stdout.decode("utf-8", "replace").strip().splitlines()
    if line:
        cols = line[-1].split("\t")
        if len(cols) >= 4:
            info["file_format"] = cols[1]
            info["link_type"] = cols[2]
            with contextlib.suppress(ValueError):
                info["packets"] = int(cols[3])
    if "packets" not in info and proc.returncode != 0:
        said = [ln.strip().removeprefix("capinfos: ") for ln in err.splitlines() if ln.strip()]
        info["error"] = " ".join(said).replace("The standard input", "the file")[:500]
    return info


def _tshark_argv(tshark: str, flt: str) -> list[str]:
    """tshark's command line; it reads the capture from stdin (see :func:`_run_tshark`)."""
    argv = [tshark, "-n", "-r", "-", "-Y", flt, "-T", "fields"]
    argv += ["-E", "header=n", "-E", "separator=/t", "-E", "occurrence=a"]
    argv += ["-E", f"aggregator={_AGG}"]
    for field, _ in _FIELDS:
        argv += ["-e", field]
    return argv


def _run_tshark(
    argv: list[str],
    path: Path,
    bar: _Progress,
    key: Any,
    offset: int = 0,
    *,
    src: Path | None = None,
) -> tuple[pl.DataFrame, list[str], bool]:
    """Run one tshark to a temporary file, then read its fields; returns (raw, notes, truncated).

    tshark reads ``src`` (default ``path``; a packet range cut from it) on stdin, opened here, so
    it needs no access to the file when it runs as another user; it runs under
    :func:`kit.sources._tshark.tool_timeout_s` for that file's size. Messages name ``path``.
    """
    src = path if src is None else src
    with tempfile.TemporaryDirectory(prefix="dnskit-tshark-") as tmpd:
        out = Path(tmpd) / "fields.tsv"
        err = Path(tmpd) / "stderr.txt"
        t0 = time.perf_counter()
        with out.open("wb") as fo, err.open("wb") as fe, src.open("rb", buffering=0) as fi:
            gz = os.pread(fi.fileno(), 2, 0) == GZIP_MAGIC
            limit = _tshark.tool_timeout_s(os.fstat(fi.fileno()).st_size, gzipped=gz)
            proc = _tshark.spawn(argv, what="tshark", stdin=fi, stdout=fo, stderr=fe)
            rc = _tshark.wait(
                proc, what="tshark", timeout=limit, source=path, poll=lambda: bar.poll(key, out)
            )
        stderr = err.read_text("utf-8", "replace")
        log.debug("%s: tshark took %.2f s", path, time.perf_counter() - t0)
        notes, truncated = _tshark_notes(path, stderr, rc)
        raw = _read_fields(out)
    last = (
        raw.select(pl.col("frame").cast(pl.UInt32).max().fill_null(0)).item() if raw.height else 0
    )
    bar.finish(key, int(last))
    if offset:
        raw = raw.with_columns(frame=(pl.col("frame").cast(pl.UInt32) + offset).cast(pl.String))
    # frame numbers of reassembled fragments, shifted like "frame" (same column order either way)
    raw = raw.with_columns(_frag_frames(raw).list.eval(pl.element() + offset))
    return raw, notes, truncated


def _parse_file(
    path: Path,
    tshark: str,
    version: str | None,
    opts: dict[str, Any],
    bar: _Progress,
    *,
    gzipped: bool,
    workers: int,
) -> _FileResult:
    capture = _capture_name(path)
    chunk = opts.get("chunk_packets")
    if chunk is None:
        chunk = DEFAULT_CHUNK_PACKETS
    info: dict[str, Any] = {}
    # a file too small to hold more than 1.25 x chunk packets (>= 50 bytes per record) is read in
    # one pass: capinfos then runs alongside tshark instead of before it
    small = not gzipped and path.stat().st_size < (chunk or 0) * 1.25 * 50
    info_thread: threading.Thread | None = None
    info_error: list[BaseException] = []
    if small or not chunk:

        def capinfos() -> None:
            try:
                info.update(_capinfos(tshark, path))
            except BaseException as exc:  # re-raised after the join below
                info_error.append(exc)

        info_thread = threading.Thread(target=capinfos, daemon=True)
        info_thread.start()
    else:
        info = _capinfos(tshark, path)
    total = info.get("packets") if info_thread is None else None
    editcap = _tshark.editcap_path(tshark)
    use_chunks = (
        bool(chunk)
        and total is not None
        and total > chunk * 1.25
        and not opts.get("display_filter")
        and editcap is not None
    )
    ports: list[int] = list(opts.get("dns_ports") or DEFAULT_DNS_PORTS)
    if not use_chunks:
        flt = _base_filter(ports)
        if opts.get("display_filter"):
            flt = f"({flt}) and ({opts['display_filter']})"
        raw, notes, truncated = _run_tshark(_tshark_argv(tshark, flt), path, bar, path)
        pk = _packets(raw)
        del raw
    else:
        assert total is not None and editcap is not None
        pk, notes, truncated = _chunked(
            path, tshark, editcap, int(chunk), total, bar, workers, ports
        )
        if info.get("truncated") and info.get("broke_after") is None:
            truncated = True
            notes.append(
                "file ends in the middle of a packet (writer killed mid-write?); "
                "packets before it were loaded"
            )
    if info_thread is not None:
        info_thread.join()
        if info_error:
            raise info_error[0]
    notes = _damage_notes(notes, info)
    pk = _dns_related(pk, ports)
    pk = _syn_retransmissions(pk)
    return _build(pk, path, capture, version, opts, info, notes, truncated, gzipped)


def _chunked(
    path: Path,
    tshark: str,
    editcap: str,
    chunk: int,
    total: int,
    bar: _Progress,
    workers: int,
    ports: Sequence[int] = DEFAULT_DNS_PORTS,
) -> tuple[pl.DataFrame, list[str], bool]:
    """Dissect a large file as packet ranges in parallel and stitch the results.

    Each range is cut with ``editcap -r`` and starts ``CHUNK_OVERLAP_PACKETS`` earlier (warm-up:
    TCP reassembly and retransmission state; those rows are dropped). Every TCP packet is kept
    while stitching, so tshark's ``tcp.stream`` numbers (which count every TCP connection) can be
    renumbered exactly as one pass over the whole file numbers them; TCP rows on other ports without
    DNS are dropped afterwards (as in one pass, see :func:`_dns_related`).
    """
    starts = list(range(1, total + 1, chunk))
    jobs = [(max(1, s - CHUNK_OVERLAP_PACKETS), s, min(total, s + chunk - 1)) for s in starts]
    flt = f"({_base_filter(ports)}) or tcp"

    def one(job: tuple[int, int, int]) -> tuple[pl.DataFrame, list[str], bool]:
        warm, _start, end = job
        with tempfile.TemporaryDirectory(prefix="dnskit-chunk-") as tmpd:
            part = Path(tmpd) / "part.pcapng"
            # editcap reads the file on stdin and writes the range (pcapng) to stdout
            with part.open("wb") as fo:
                _tshark.run(
                    [editcap, "-r", "-", "-", f"{warm}-{end}"],
                    what="editcap",
                    check=False,
                    stdin_path=path,
                    stdout=fo,
                )
            if part.stat().st_size == 0:
                raise ToolError(f"editcap could not cut packets {warm}-{end} of {path}")
            raw, n, tr = _run_tshark(
                _tshark_argv(tshark, flt), path, bar, (path, warm), warm - 1, src=part
            )
            return _packets(raw), n, tr

    with concurrent.futures.ThreadPoolExecutor(max(1, workers)) as pool:
        parts = list(pool.map(one, jobs))
    notes: list[str] = []
    truncated = False
    frames: list[pl.DataFrame] = []
    gid_of_frame: dict[int, int] = {}
    last_by_tuple: dict[tuple[Any, ...], tuple[int, int | None, bool]] = {}
    next_id = 0
    for (_warm, start, _end), (pk, n, tr) in zip(jobs, parts, strict=True):
        notes += [x for x in n if x not in notes]
        truncated = truncated or tr
        tcp = pk.filter(pl.col("tcp_stream").is_not_null())
        per = (
            tcp.group_by("tcp_stream", maintain_order=True)
            .agg(
                first_frame=pl.col("frame").first(),
                warm_frame=pl.col("frame").filter(pl.col("frame") < start).first(),
                a=pl.min_horizontal(
                    pl.concat_str("src_ip", pl.lit("#"), pl.col("src_port").cast(pl.String)),
                    pl.concat_str("dst_ip", pl.lit("#"), pl.col("dst_port").cast(pl.String)),
                ).first(),
                b=pl.max_horizontal(
                    pl.concat_str("src_ip", pl.lit("#"), pl.col("src_port").cast(pl.String)),
                    pl.concat_str("dst_ip", pl.lit("#"), pl.col("dst_port").cast(pl.String)),
                ).first(),
                first_flags=pl.col("tcp_flags").filter(pl.col("frame") >= start).first(),
                first_seq=pl.col("tcp_seq").filter(pl.col("frame") >= start).first(),
                syn_seq=pl.col("tcp_seq").filter(syn_expr()).first(),
                closed=flag_expr(0x05).any(),
                syn_in_chunk=syn_expr().any(),
                dns_after=pl.col("dns_messages").filter(pl.col("frame") >= start).sum(),
                port53=(
                    pl.col("src_port").is_in(list(ports)) | pl.col("dst_port").is_in(list(ports))
                ).any(),
            )
            .sort("first_frame")
        )
        mapping: dict[int, int] = {}
        resync = 0
        for row in per.iter_rows(named=True):
            tup = (row["a"], row["b"])
            gid: int | None = None
            if row["warm_frame"] is not None:
                gid = gid_of_frame.get(row["warm_frame"])
            if (
                row["port53"]
                and not row["syn_in_chunk"]
                and row["dns_after"]
                and (row["warm_frame"] is not None or row["first_frame"] >= start)
                and start > 1
            ):
                resync += 1
            if gid is None and row["first_frame"] is not None:
                prev = last_by_tuple.get(tup)
                flags = row["first_flags"]
                syn_first = is_syn(flags)
                if prev is not None and (
                    not syn_first or (not prev[2] and prev[1] == row["first_seq"])
                ):
                    gid = prev[0]
            if gid is None:
                gid = next_id
                next_id += 1
            mapping[row["tcp_stream"]] = gid
            old = last_by_tuple.get(tup)
            syn_seq = row["syn_seq"] if old is None or old[0] != gid else old[1]
            closed = row["closed"] or (old is not None and old[0] == gid and old[2])
            last_by_tuple[tup] = (gid, syn_seq, bool(closed))
        pk = pk.with_columns(
            tcp_stream=pl.col("tcp_stream").replace_strict(
                mapping, default=None, return_dtype=pl.UInt32
            )
        )
        if resync:
            notes.append(
                f"{resync} DNS-over-TCP connection(s) were already open where packet range "
                f"{start}- begins; tshark joined them mid-stream, so messages split across "
                "segments there may be missed (chunk_packets=0 reads the file in one pass)"
            )
        tail = pk.filter(pl.col("tcp_stream").is_not_null()).select("frame", "tcp_stream")
        gid_of_frame = dict(zip(tail["frame"].to_list(), tail["tcp_stream"].to_list(), strict=True))
        frames.append(pk.filter(pl.col("frame") >= start))
    # TCP rows that are neither on a DNS port nor carry DNS only served the stream numbering;
    # _dns_related drops them (with the fragments they were reassembled from)
    return pl.concat(frames, how="vertical"), notes, truncated


def _tshark_notes(path: Path, stderr: str, rc: int) -> tuple[list[str], bool]:
    notes: list[str] = []
    truncated = False
    lines = [
        ln.strip()
        for ln in stderr.splitlines()
        if ln.strip() and "Running as user" not in ln and "could be dangerous" not in ln
    ]
    for i, ln in enumerate(lines):
        low = ln.lower()
        # tshark's reason for an error follows on a line of its own, in parentheses
        why = lines[i + 1].strip("()") if i + 1 < len(lines) and lines[i + 1][0] == "(" else ""
        if "isn't a capture file in a format" in low or "unknown file format" in low:
            raise InputFormatError(
                "not a packet capture tshark can read" + (f" ({why})" if why else ""),
                path=path,
                offset=0,
                hint=_NOT_CAPTURE_HINT,
            )
        if "cut short in the middle of a packet" in low:
            truncated = True
            notes.append(
                "file ends in the middle of a packet (writer killed mid-write?); "
                "packets before it were loaded"
            )
        elif "damaged or corrupt" in low or "corrupt" in low:
            truncated = True
            notes.append(
                f"{_DAMAGED}" + (f" ({why})" if why else "") + "; the packets before it were read"
            )
        elif ln.startswith("tshark: "):
            notes.append(
                ln.replace("The standard input", "The file") + (f" ({why})" if why else "")
            )
    if rc not in (0, 2) and not notes:
        raise ToolError(f"tshark failed on {path} with exit code {rc}: {stderr[-2000:]}")
    return notes, truncated


def _read_fields(out: Path) -> pl.DataFrame:
    names = [c for _, c in _FIELDS]
    if out.stat().st_size == 0:
        return pl.DataFrame(schema=dict.fromkeys(names, pl.String))
    return pl.read_csv(
        out,
        separator="\t",
        has_header=False,
        new_columns=names,
        schema_overrides=dict.fromkeys(names, pl.String),
        quote_char=None,
        encoding="utf8-lossy",
        truncate_ragged_lines=False,
    )


# --------------------------------------------------------------------------------------------
# frames from tshark's fields


def _epoch_ns(raw: pl.DataFrame, col: str) -> pl.Expr:
    """Nanoseconds since the epoch from tshark's ``frame.time_epoch`` text (exact, no float).

    tshark 3.x/4.x print 9 decimals; when every row has them, one string edit and one integer
    parse do; otherwise the general split.
    """
    c = pl.col(col)
    nine = (c.str.len_bytes() - c.str.find(".", literal=True) == 10).all()
    if raw.height and raw.select(nine.fill_null(False)).item():
        return c.str.replace(".", "", literal=True).cast(pl.Int64, strict=False)
    return _epoch_ns_general(col)


def _epoch_ns_general(col: str) -> pl.Expr:
    parts = pl.col(col).str.split_exact(".", 1)
    sec = parts.struct.field("field_0").cast(pl.Int64, strict=False)
    frac = (
        parts.struct.field("field_1")
        .fill_null("0")
        .str.slice(0, 9)
        .str.pad_end(9, "0")
        .cast(pl.Int64, strict=False)
    )
    return sec * 1_000_000_000 + frac


def _last(col: str) -> pl.Expr:
    """Last occurrence of a multi-occurrence field (cheap when there is only one)."""
    return pl.col(col).str.replace(r"^.*\x1f", "")


def _frag_frames(raw: pl.DataFrame) -> pl.Expr:
    """``frag_frames`` List(UInt32): frames tshark reassembled this packet from (IPv4 and IPv6)."""
    if "frag_frames" in raw.columns:
        return pl.col("frag_frames")
    both = pl.concat_str(
        pl.col("ip_frags"), pl.col("ip6_frags"), separator=_AGG, ignore_nulls=True
    ).str.replace_all(",", _AGG, literal=True)
    return (
        pl.when(both != "")
        .then(both.str.split(_AGG).list.eval(pl.element().cast(pl.UInt32, strict=False)))
        .alias("frag_frames")
    )


def _packets(raw: pl.DataFrame) -> pl.DataFrame:
    """One row per packet with typed columns (internal: keeps ns time and the raw DNS fields)."""
    proto = pl.col("protocols")
    transport = (
        pl.when(proto.str.contains(":icmp", literal=True))
        .then(pl.lit("icmp"))
        .when(proto.str.contains(":tcp", literal=True))
        .then(pl.lit("tcp"))
        .when(proto.str.contains(":udp", literal=True))
        .then(pl.lit("udp"))
        .otherwise(pl.lit("ipfrag"))
    )
    # innermost IP header: the one that comes last in frame.protocols ("...:ip:..." vs "...:ipv6:...")
    both = pl.col("ip_src").is_not_null() & pl.col("ip6_src").is_not_null()
    pos4 = proto.str.find(r":ip:|:ip$").fill_null(-1)
    pos6 = proto.str.find(r":ipv6(\.fraghdr)?:|:ipv6$").fill_null(-1)
    inner6 = pl.when(both).then(pos6 > pos4).otherwise(pl.col("ip_src").is_null())

    def pick(c4: str, c6: str) -> pl.Expr:
        first = pl.col("transport") == "icmp"
        v4 = pl.when(first).then(_first(c4)).otherwise(_last(c4))
        v6 = pl.when(first).then(_first(c6)).otherwise(_last(c6))
        return pl.when(pl.col("_inner6")).then(v6).otherwise(v4)

    def port(cu: str, ct: str) -> pl.Expr:
        return (
            pl.when(pl.col("transport") == "tcp")
            .then(pl.coalesce(_last(ct), _last(cu)))
            .otherwise(pl.coalesce(_last(cu), _last(ct)))
            .cast(pl.UInt16, strict=False)
        )

    is_tcp = pl.col("transport") == "tcp"
    df = raw.with_columns(transport=transport, _inner6=inner6).with_columns(
        frame=pl.col("frame").cast(pl.UInt32),
        ts_ns=_epoch_ns(raw, "epoch"),
        length=pl.col("length").cast(pl.UInt32, strict=False),
        src_ip=pick("ip_src", "ip6_src"),
        dst_ip=pick("ip_dst", "ip6_dst"),
        src_port=port("udp_sport", "tcp_sport"),
        dst_port=port("udp_dport", "tcp_dport"),
        tcp_flags=pl.when(is_tcp).then(_hex(_last("tcp_flags")).cast(pl.UInt16)),
        tcp_stream=pl.when(is_tcp).then(_last("tcp_stream").cast(pl.UInt32, strict=False)),
        tcp_seq=pl.when(is_tcp).then(_last("tcp_seq").cast(pl.UInt32, strict=False)),
        is_retransmission=pl.col("tcp_retx").is_not_null(),
        dns_messages=(pl.col("dns_id").str.count_matches(_AGG, literal=True) + 1)
        .fill_null(0)
        .cast(pl.UInt16),
        # DNS inside HTTP (DoH over HTTP/1.1 or HTTP/2, when tshark can see it)
        via_http=pl.when(pl.col("dns_id").is_not_null())
        .then(proto.str.contains(":http", literal=True))
        .otherwise(False)
        .fill_null(False),
        frag_frames=_frag_frames(raw),
    )
    return df.drop(
        "epoch", "protocols", "ip_src", "ip_dst", "ip6_src", "ip6_dst", "udp_sport", "udp_dport",
        "tcp_sport", "tcp_dport", "tcp_retx", "_inner6", "ip_frags", "ip6_frags",
    )  # fmt: skip


# --------------------------------------------------------------------------------------------
# progress


def _want_progress(progress: bool | None) -> bool:
    if progress is not None:
        return progress
    if "ipykernel" in sys.modules:
        try:
            from IPython import get_ipython  # type: ignore[attr-defined]

            ip = get_ipython()
            if ip is not None and getattr(ip, "kernel", None) is not None:
                return True
        except Exception:
            pass
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


class _Progress:
    """A tqdm bar of packets processed across files (updated from tshark's output), or nothing."""

    def __init__(self, files: Sequence[Path], *, enabled: bool) -> None:
        self._lock = threading.Lock()
        self._done: dict[Path, int] = {}
        self._bar: Any = None
        if enabled:
            from tqdm.auto import tqdm

            self._bar = tqdm(total=None, unit="pkt", unit_scale=True, desc="read_capture")

    def _set(self, path: Path, n: int) -> None:
        if self._bar is None:
            return
        with self._lock:
            old = self._done.get(path, 0)
            if n > old:
                self._done[path] = n
                self._bar.update(n - old)

    def poll(self, path: Path, out: Path) -> None:
        """Read the frame number of the last complete line tshark wrote."""
        if self._bar is None:
            return
        try:
            with out.open("rb") as fh:
                fh.seek(0, os.SEEK_END)
                size = fh.tell()
                fh.seek(max(0, size - 8192))
                tail = fh.read()
        except OSError:
            return
        lines = tail.split(b"\n")
        if len(lines) >= 2:
            first = lines[-2].split(b"\t", 1)[0]
            if first.isdigit():
                self._set(path, int(first))

    def finish(self, path: Path, n: int) -> None:
        self._set(path, n)

    def skip(self, path: Path) -> None:
        if self._bar is not None:
            self._bar.set_postfix_str(f"{path.name} from cache", refresh=False)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


# --------------------------------------------------------------------------------------------
# helpers on the frames


def latency_by(
    dns: pl.DataFrame,
    *,
    by: Sequence[str] = ("server_ip", "qtype", "transport"),
    quantiles: Sequence[float] = (0.5, 0.9, 0.99),
) -> pl.DataFrame:
    """Latency quantiles of answered transactions per group (wraps :func:`kit.stats.latency_quantiles`).

    Parameters
    ----------
    dns
        ``Capture.dns``.
    by
        Group columns.
    quantiles
        Quantiles to compute (0..1).

    Returns
    -------
    polars.DataFrame
        As :func:`kit.stats.latency_quantiles` over ``latency_s`` (seconds).
    """
    from kit.stats import latency_quantiles

    return latency_quantiles(
        dns.filter(pl.col("answered")), value="latency_s", by=list(by), quantiles=list(quantiles)
    )


# --------------------------------------------------------------------------------------------
# pyshark drill-down (works inside a running Jupyter event loop)


def _in_thread(fn: Callable[[], Any]) -> Any:
    """Run ``fn`` in a worker thread with its own asyncio loop (pyshark #360/#542)."""
    import asyncio

    def runner() -> Any:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        try:
            return fn()
        finally:
            asyncio.set_event_loop(None)
            loop.close()

    # asyncio's threaded child watcher logs "Unknown child process pid N" when pyshark reaps its
    # own tshark first; that is noise, not an error.
    alog = logging.getLogger("asyncio")
    quiet = _DropMessage("Unknown child process pid")
    alog.addFilter(quiet)
    try:
        with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="dnskit-pyshark") as pool:
            return pool.submit(runner).result()
    finally:
        alog.removeFilter(quiet)


class _DropMessage(logging.Filter):
    def __init__(self, text: str) -> None:
        super().__init__()
        self._text = text

    def filter(self, record: logging.LogRecord) -> bool:
        return self._text not in str(record.msg)


def _pyshark_load(path: str | os.PathLike[str], display_filter: str, two_pass: bool) -> list[Any]:
    import asyncio

    import pyshark  # type: ignore[import-untyped]

    tshark = _tshark.find_tshark()
    p = Path(path)
    # the same checks as read_capture (pyshark starts tshark itself, with the caller's rights and
    # no time limit, so at least no FIFO, device or non-capture reaches it)
    _check_capture(p)

    def work() -> list[Any]:
        loop = asyncio.get_event_loop()
        cap = pyshark.FileCapture(
            os.fspath(p),
            display_filter=display_filter,
            tshark_path=tshark,
            eventloop=loop,
            custom_parameters=["-2"] if two_pass else None,
        )
        try:
            cap.load_packets()
            return list(cap._packets)
        finally:
            cap.close()
            # Capture.__del__ would call close() again on a closed loop at GC; make it a no-op.
            cap.close = lambda: None  # type: ignore[method-assign]

    return list(_in_thread(work))


def packet(path: str | os.PathLike[str], frame: int) -> Any:
    """One packet as a pyshark object, for drill-down in a notebook (e.g. a slow query's frame).

    Works in a Jupyter kernel: pyshark runs in a worker thread with its own event loop.

    Parameters
    ----------
    path
        The capture file.
    frame
        tshark frame number (``frame_query``/``frame_response``/``frame`` columns), 1-based.

    Returns
    -------
    pyshark.packet.packet.Packet
        The dissected packet (two-pass, so ``dns.response_in`` is filled).

    Raises
    ------
    LookupError
        The file has no such frame.
    """
    pkts = _pyshark_load(path, f"frame.number == {int(frame)}", True)
    if not pkts:
        raise LookupError(f"{path}: no frame {frame}")
    return pkts[0]


def stream(path: str | os.PathLike[str], tcp_stream: int) -> list[Any]:
    """All packets of one TCP connection as pyshark objects (``Capture.tcp.stream``).

    Parameters
    ----------
    path
        The capture file.
    tcp_stream
        tshark's ``tcp.stream`` number.

    Returns
    -------
    list[pyshark.packet.packet.Packet]
        In capture order; empty when the stream does not exist.
    """
    return _pyshark_load(path, f"tcp.stream == {int(tcp_stream)}", False)
