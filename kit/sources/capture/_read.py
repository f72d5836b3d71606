"""The public entry point :func:`read_capture`: checks, engine dispatch per file (native where it
reads the file, else tshark), the cache, files in parallel, and the :class:`Capture` it returns."""

from __future__ import annotations

import concurrent.futures
import dataclasses
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from kit.errors import InputFormatError, ToolNotFoundError
from kit.schema import check_schema
from kit.sources import _tshark
from kit.sources._io import GZIP_MAGIC, Source, expand_sources
from kit.sources.capture._cache import (
    _cache_read,
    _cache_write,
    _cached_tshark_version,
    _content_key,
    cache_dir,
)
from kit.sources.capture._check import _check_capture, _check_named
from kit.sources.capture._engine_tshark import _check_display_filter, _parse_file
from kit.sources.capture._frames import (
    _CAPTURE_SUFFIXES,
    DEFAULT_DNS_PORTS,
    DNS_SCHEMA,
    META_SCHEMA,
    PACKETS_SCHEMA,
    TCP_SCHEMA,
    _FileResult,
)
from kit.sources.capture._progress import _Progress, _want_progress

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
        With one file and ``workers`` given (e.g. ``2``), the native engine parses a file of
        16 MiB or more with that many threads at once (sharing it out by conversation, merged to
        exactly the one-pass result; see :mod:`kit.sources.capture._native`). Not the default:
        on this shared 2-core machine under load it was slower than one pass and peaked ~35 %
        higher (README, "Parallel within one file").
    chunk_packets
        Files with more than 1.25 x this many packets are dissected as packet ranges of this size,
        one tshark per range (in parallel for a single file), which bounds tshark's memory
        (~160 MB + ~0.5 kB per packet of the range) and uses every core. The ranges overlap by
        :data:`CHUNK_OVERLAP_PACKETS` so TCP state carries over, and TCP stream numbers are
        stitched to equal one pass over the whole file. ``None``: :data:`DEFAULT_CHUNK_PACKETS`;
        ``0``: never split. Not used with ``display_filter`` (one pass then). The tshark engine
        only (the native engine's threads are set by ``workers``).
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
    # the native engine's threads within one file: only when asked for (measured slower and
    # ~35 % heavier than one pass on this shared 2-core machine under load; see the README)
    native_workers = max(1, int(workers)) if workers and len(files) == 1 else 1
    results: list[_FileResult | None] = [None] * len(files)
    try:
        if n_workers == 1:
            for i, f in enumerate(files):
                results[i] = _load_one(
                    f, tshark, version, opts, cdir, bar, chunk_workers, native_workers
                )
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


def _load_one(
    path: Path,
    tshark: str | None,
    version: str | None,
    opts: dict[str, Any],
    cdir: Path | None,
    bar: _Progress,
    workers: int = 1,
    native_workers: int = 1,
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
            res, why = _capture_native.read_file(
                path, opts, gzipped=gzipped, workers=native_workers
            )
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
