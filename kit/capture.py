"""Capture loader: DNS transactions, TCP connections and packet rates from pcap/pcapng files.

:func:`read_capture` runs ``tshark -T fields`` (one process per file, files in parallel) with the C
locale, writes its tab-separated output to a temporary file, parses it with polars and pairs queries
with responses in polars. It returns a :class:`Capture` of four frames (``dns``, ``tcp``,
``packets``, ``meta``) whose schemas are the module constants :data:`DNS_SCHEMA`,
:data:`TCP_SCHEMA`, :data:`PACKETS_SCHEMA` and :data:`META_SCHEMA`.

How tshark's output is read
---------------------------
* Several DNS messages in one frame (DNS over TCP with pipelined queries) make tshark print every
  DNS field once per message. The kit asks for all occurrences (``-E occurrence=a``) joined by the
  ASCII unit separator ``0x1f``, which cannot collide with data: tshark prints a control byte inside
  a name as an escape (``\\037``). The header fields (``dns.id``, ``dns.flags``, ``dns.count.*``)
  occur exactly once per message, so they are split and zipped into one row per message; the
  question names are assigned per message from ``dns.count.queries``.
* ``qname`` is what tshark shows: presentation form **without** the trailing dot, case preserved,
  the root as ``"."``. tshark escapes tab, newline and other control bytes (``\\t``, ``\\n``,
  ``\\037``), prints bytes that are not valid UTF-8 as U+FFFD, and prints a dot or backslash inside a
  label as-is, so those names are not byte-exact.
* Transactions are paired like tshark's DNS dissector: per conversation (UDP: the address/port pair,
  TCP: the ``tcp.stream``) and DNS ID, a query repeated within 5 s of the first one while still
  unanswered is a retransmission (counted in ``retransmissions``), the first response answers the
  transaction, a later one is a duplicate response (counted in ``meta``). DNS messages quoted
  inside ICMP errors are not transactions; they are counted in ``meta``.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import hashlib
import json
import logging
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from kit import _tshark
from kit._sources import GZIP_MAGIC, Source, expand_sources
from kit.errors import InputFormatError, ToolError
from kit.schema import check_schema

log = logging.getLogger(__name__)

__all__ = [
    "DNS_SCHEMA",
    "META_SCHEMA",
    "PACKETS_SCHEMA",
    "TCP_SCHEMA",
    "Capture",
    "attribute_slow_answers",
    "cache_dir",
    "latency_by",
    "packet",
    "packet_rates",
    "rate_summary",
    "read_capture",
    "stream",
]

#: Bumped whenever the parsing or the schemas change, so old cache entries are not reused.
CACHE_FORMAT = 1
#: tshark's ``dns.retransmission_timer`` default: a repeated query within this many seconds of the
#: first one (same conversation and ID, still unanswered) is a retransmission.
RETRANSMISSION_TIMER_S = 5.0
_AGG = "\x1f"
_UTC = pl.Datetime("us", "UTC")
_CAPTURE_SUFFIXES = (".pcap", ".pcapng", ".cap", ".dmp")
_BASE_FILTER = (
    "dns or udp.port == 53 or tcp.port == 53 or ip.flags.mf == 1 or ip.frag_offset > 0 "
    "or ipv6.fraghdr"
)

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
    ("dns.id", "dns_id"),
    ("dns.flags", "dns_flags"),
    ("dns.count.queries", "dns_qd"),
    ("dns.count.answers", "dns_an"),
    ("dns.qry.name", "dns_qname"),
    ("dns.qry.type", "dns_qtype"),
)

DNS_SCHEMA = pl.Schema(
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
    }
)

TCP_SCHEMA = pl.Schema(
    {
        "stream": pl.UInt32,
        "client_ip": pl.String,
        "client_port": pl.UInt16,
        "server_ip": pl.String,
        "server_port": pl.UInt16,
        "ts_syn": _UTC,
        "syn_retransmits": pl.UInt32,
        "ts_synack": _UTC,
        "handshake_s": pl.Float64,
        "established": pl.Boolean,
        "ts_end": _UTC,
        "end_reason": pl.String,
        "dns_messages": pl.UInt32,
        "packets": pl.UInt32,
        "ts_first": _UTC,
        "ts_last": _UTC,
        "capture": pl.String,
    }
)

PACKETS_SCHEMA = pl.Schema(
    {
        "ts": _UTC,
        "capture": pl.String,
        "frame": pl.UInt32,
        "src_ip": pl.String,
        "dst_ip": pl.String,
        "src_port": pl.UInt16,
        "dst_port": pl.UInt16,
        "transport": pl.String,
        "length": pl.UInt32,
        "tcp_flags": pl.UInt16,
        "tcp_stream": pl.UInt32,
        "is_retransmission": pl.Boolean,
        "dns_messages": pl.UInt16,
    }
)

META_SCHEMA = pl.Schema(
    {
        "capture": pl.String,
        "path": pl.String,
        "file_format": pl.String,
        "link_type": pl.String,
        "gzipped": pl.Boolean,
        "packets": pl.UInt64,
        "packets_kept": pl.UInt64,
        "packets_skipped": pl.UInt64,
        "first_ts": _UTC,
        "last_ts": _UTC,
        "truncated": pl.Boolean,
        "dns_messages": pl.UInt64,
        "dns_queries": pl.UInt64,
        "dns_query_retransmissions": pl.UInt64,
        "dns_responses": pl.UInt64,
        "dns_duplicate_responses": pl.UInt64,
        "dns_orphan_responses": pl.UInt64,
        "dns_in_icmp": pl.UInt64,
        "dns_unparsed": pl.UInt64,
        "censor_window_s": pl.Float64,
        "notes": pl.List(pl.String),
        "tshark_version": pl.String,
        "from_cache": pl.Boolean,
    }
)

QTYPES: dict[int, str] = {
    1: "A", 2: "NS", 5: "CNAME", 6: "SOA", 12: "PTR", 13: "HINFO", 15: "MX", 16: "TXT",
    17: "RP", 18: "AFSDB", 24: "SIG", 25: "KEY", 28: "AAAA", 29: "LOC", 33: "SRV", 35: "NAPTR",
    36: "KX", 37: "CERT", 39: "DNAME", 41: "OPT", 42: "APL", 43: "DS", 44: "SSHFP", 45: "IPSECKEY",
    46: "RRSIG", 47: "NSEC", 48: "DNSKEY", 49: "DHCID", 50: "NSEC3", 51: "NSEC3PARAM", 52: "TLSA",
    53: "SMIMEA", 55: "HIP", 59: "CDS", 60: "CDNSKEY", 61: "OPENPGPKEY", 62: "CSYNC",
    63: "ZONEMD", 64: "SVCB", 65: "HTTPS", 99: "SPF", 108: "EUI48", 109: "EUI64", 249: "TKEY",
    250: "TSIG", 251: "IXFR", 252: "AXFR", 255: "ANY", 256: "URI", 257: "CAA",
}  # fmt: skip
RCODES: dict[int, str] = {
    0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP", 5: "REFUSED",
    6: "YXDOMAIN", 7: "YXRRSET", 8: "NXRRSET", 9: "NOTAUTH", 10: "NOTZONE",
}  # fmt: skip


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
        (``dns or udp.port == 53 or tcp.port == 53`` plus IP fragments). Packets it drops are
        counted in ``meta.packets_skipped``.
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
    tshark_path
        tshark to use; default: found like pyshark does (``$DNSKIT_TSHARK``, ``PATH``, pyshark's
        ``config.ini``, standard locations).

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

        ``tcp`` (:data:`TCP_SCHEMA`), one row per TCP connection on port 53 (tshark ``tcp.stream``):

        - ``stream`` UInt32: tshark's ``tcp.stream``.
        - ``client_ip`` String, ``client_port`` UInt16: sender of the first SYN (when no SYN was
          captured: the side whose port is not 53).
        - ``server_ip`` String, ``server_port`` UInt16: the other side.
        - ``ts_syn`` Datetime(us, UTC): first SYN (without ACK); null when not captured.
        - ``syn_retransmits`` UInt32: SYNs sent after the first one (tshark flags them as
          ``tcp.analysis.retransmission``).
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

        ``packets`` (:data:`PACKETS_SCHEMA`), one row per DNS-related packet (for rate series):

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
          ``dns_in_icmp`` + ``dns_unparsed`` (every DNS message accounted for; ``dns_queries`` is the
          number of ``dns`` rows, ``dns_responses`` the answered ones).
        - ``censor_window_s`` Float64, seconds: the window used for ``censored``.
        - ``notes`` List(String): damage and what was skipped, in words.
        - ``tshark_version`` String; ``from_cache`` Boolean.

    Raises
    ------
    FileNotFoundError
        A source does not exist.
    InputFormatError
        A file is empty or is not a capture tshark can read.
    ToolNotFoundError
        tshark is not installed.
    ToolError
        tshark failed for another reason (its stderr is in the message).
    """
    files = expand_sources(source, suffixes=_CAPTURE_SUFFIXES, what="capture")
    tshark = _tshark.find_tshark(tshark_path)
    version = _tshark.tshark_version(tshark)
    cdir: Path | None
    if cache is False:
        cdir = None
    elif cache is True:
        cdir = cache_dir()
    else:
        cdir = Path(cache)
    opts = {"display_filter": display_filter, "censor_s": censor_s}
    bar = _Progress(files, enabled=_want_progress(progress))
    n_workers = max(1, min(len(files), workers or os.cpu_count() or 1))
    results: list[_FileResult | None] = [None] * len(files)
    try:
        if n_workers == 1:
            for i, f in enumerate(files):
                results[i] = _load_one(f, tshark, version, opts, cdir, bar)
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


@dataclass(frozen=True)
class _FileResult:
    dns: pl.DataFrame
    tcp: pl.DataFrame
    packets: pl.DataFrame
    meta: pl.DataFrame


def _capture_name(path: Path) -> str:
    name = path.name
    if name.lower().endswith(".gz"):
        name = name[:-3]
    for suf in _CAPTURE_SUFFIXES:
        if name.lower().endswith(suf):
            return name[: -len(suf)]
    return Path(name).stem or name


def _content_key(path: Path, version: str, opts: dict[str, Any]) -> str:
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
    tshark: str,
    version: str,
    opts: dict[str, Any],
    cdir: Path | None,
    bar: _Progress,
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
    res = _parse_file(path, tshark, version, opts, bar, gzipped=head[:2] == GZIP_MAGIC)
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
    except Exception as exc:  # a damaged cache entry is ignored and rewritten
        log.warning("ignoring unreadable cache entry %s: %s", d, exc)
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


def _capinfos(tshark: str, path: Path) -> dict[str, Any]:
    """File format, link type, packet count and first/last time via capinfos (reads frames only)."""
    exe = _tshark.capinfos_path(tshark)
    info: dict[str, Any] = {}
    if exe is None:
        return info
    proc = _tshark.run(
        [exe, "-M", "-T", "-r", "-t", "-E", "-c", os.fspath(path)], what="capinfos", check=False
    )
    line = proc.stdout.decode("utf-8", "replace").strip().splitlines()
    if line:
        cols = line[-1].split("\t")
        if len(cols) >= 4:
            info["file_format"] = cols[1]
            info["link_type"] = cols[2]
            with contextlib.suppress(ValueError):
                info["packets"] = int(cols[3])
    return info


def _parse_file(
    path: Path,
    tshark: str,
    version: str,
    opts: dict[str, Any],
    bar: _Progress,
    *,
    gzipped: bool,
) -> _FileResult:
    capture = _capture_name(path)
    flt = _BASE_FILTER
    if opts.get("display_filter"):
        flt = f"({_BASE_FILTER}) and ({opts['display_filter']})"
    argv = [tshark, "-n", "-r", os.fspath(path), "-Y", flt, "-T", "fields"]
    argv += [
        "-E",
        "header=n",
        "-E",
        "separator=/t",
        "-E",
        "occurrence=a",
        "-E",
        f"aggregator={_AGG}",
    ]
    for field, _ in _FIELDS:
        argv += ["-e", field]
    info: dict[str, Any] = {}
    info_thread = threading.Thread(target=lambda: info.update(_capinfos(tshark, path)), daemon=True)
    info_thread.start()
    with tempfile.TemporaryDirectory(prefix="dnskit-tshark-") as tmpd:
        out = Path(tmpd) / "fields.tsv"
        err = Path(tmpd) / "stderr.txt"
        t0 = time.perf_counter()
        with out.open("wb") as fo, err.open("wb") as fe:
            try:
                proc = subprocess.Popen(
                    argv, stdout=fo, stderr=fe, stdin=subprocess.DEVNULL, env=_tshark.run_env()
                )
            except OSError as exc:
                raise ToolError(f"could not run {tshark}: {exc}") from exc
            while True:
                try:
                    rc = proc.wait(timeout=0.2)
                    break
                except subprocess.TimeoutExpired:
                    bar.poll(path, out)
                except BaseException:
                    proc.kill()
                    proc.wait()
                    raise
        stderr = err.read_text("utf-8", "replace")
        log.debug("%s: tshark took %.2f s", path, time.perf_counter() - t0)
        notes, truncated = _tshark_notes(path, stderr, rc)
        raw = _read_fields(out)
    bar.finish(path, int(raw["frame"].cast(pl.UInt32).max() or 0) if raw.height else 0)
    info_thread.join()
    return _build(raw, path, capture, version, opts, info, notes, truncated, gzipped)


def _tshark_notes(path: Path, stderr: str, rc: int) -> tuple[list[str], bool]:
    notes: list[str] = []
    truncated = False
    lines = [
        ln.strip()
        for ln in stderr.splitlines()
        if ln.strip() and "Running as user" not in ln and "could be dangerous" not in ln
    ]
    for ln in lines:
        low = ln.lower()
        if "isn't a capture file in a format" in low or "unknown file format" in low:
            raise InputFormatError(
                "not a packet capture tshark can read",
                path=path,
                offset=0,
                hint="Expected pcap or pcapng (optionally gzipped) as written by tcpdump -w",
            )
        if "cut short in the middle of a packet" in low:
            truncated = True
            notes.append(
                "file ends in the middle of a packet (writer killed mid-write?); "
                "packets before it were loaded"
            )
        elif "appears to be damaged or corrupt" in low or "corrupt" in low:
            truncated = True
            notes.append(f"tshark: {ln}")
        elif ln.startswith("tshark: "):
            notes.append(ln)
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


def _split(col: str) -> pl.Expr:
    return pl.col(col).str.split(_AGG)


def _hex(expr: pl.Expr) -> pl.Expr:
    return expr.str.strip_prefix("0x").str.to_integer(base=16, strict=False)


def _epoch_ns(col: str) -> pl.Expr:
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


def _ns_to_ts(expr: pl.Expr) -> pl.Expr:
    return (expr // 1000).cast(pl.Datetime("us")).dt.replace_time_zone("UTC")


def _packets(raw: pl.DataFrame) -> pl.DataFrame:
    """One row per packet with typed columns (internal: keeps ns time and DNS lists)."""
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
    pos4 = proto.str.find(r":ip:|:ip$").fill_null(-1)
    pos6 = proto.str.find(r":ipv6(\.fraghdr)?:|:ipv6$").fill_null(-1)
    inner6 = (
        pl.when(pl.col("ip_src").is_null())
        .then(True)
        .when(pl.col("ip6_src").is_null())
        .then(False)
        .otherwise(pos6 > pos4)
    )

    def pick(c4: str, c6: str) -> pl.Expr:
        first = pl.col("transport") == "icmp"
        v4 = pl.when(first).then(_split(c4).list.first()).otherwise(_split(c4).list.last())
        v6 = pl.when(first).then(_split(c6).list.first()).otherwise(_split(c6).list.last())
        return pl.when(pl.col("_inner6")).then(v6).otherwise(v4)

    def port(cu: str, ct: str) -> pl.Expr:
        return pl.coalesce(
            pl.when(pl.col("transport") == "tcp").then(_split(ct).list.last()),
            _split(cu).list.last(),
            _split(ct).list.last(),
        ).cast(pl.UInt16, strict=False)

    df = raw.with_columns(transport=transport, _inner6=inner6).with_columns(
        frame=pl.col("frame").cast(pl.UInt32),
        ts_ns=_epoch_ns("epoch"),
        length=pl.col("length").cast(pl.UInt32, strict=False),
        src_ip=pick("ip_src", "ip6_src"),
        dst_ip=pick("ip_dst", "ip6_dst"),
        src_port=port("udp_sport", "tcp_sport"),
        dst_port=port("udp_dport", "tcp_dport"),
        tcp_flags=_hex(_split("tcp_flags").list.last()).cast(pl.UInt16),
        tcp_stream=_split("tcp_stream").list.last().cast(pl.UInt32, strict=False),
        is_retransmission=pl.col("tcp_retx").is_not_null(),
        dns_id=_split("dns_id"),
        dns_flags=_split("dns_flags"),
        dns_qd=_split("dns_qd"),
        dns_an=_split("dns_an"),
        dns_qname=_split("dns_qname"),
        dns_qtype=_split("dns_qtype"),
    )
    df = df.with_columns(
        tcp_flags=pl.when(pl.col("transport") == "tcp").then(pl.col("tcp_flags")),
        tcp_stream=pl.when(pl.col("transport") == "tcp").then(pl.col("tcp_stream")),
        dns_messages=pl.col("dns_id").list.len().fill_null(0).cast(pl.UInt16),
    )
    return df.drop(
        "epoch", "protocols", "ip_src", "ip_dst", "ip6_src", "ip6_dst", "udp_sport", "udp_dport",
        "tcp_sport", "tcp_dport", "tcp_retx", "_inner6",
    )  # fmt: skip


def _messages(pk: pl.DataFrame) -> tuple[pl.DataFrame, int, int]:
    """One row per DNS message carried over UDP/TCP; returns (messages, in_icmp, unparsed)."""
    has = pk.filter(pl.col("dns_messages") > 0)
    in_icmp = int(has.filter(pl.col("transport") == "icmp")["dns_messages"].sum() or 0)
    has = has.filter(pl.col("transport").is_in(["udp", "tcp"]))
    lens_ok = (
        (pl.col("dns_flags").list.len() == pl.col("dns_messages"))
        & (pl.col("dns_qd").list.len() == pl.col("dns_messages"))
        & (pl.col("dns_an").list.len() == pl.col("dns_messages"))
    )
    bad = has.filter(~lens_ok)
    unparsed = int(bad["dns_messages"].sum() or 0)
    if unparsed:
        log.warning("%d DNS messages with incomplete headers skipped", unparsed)
    m = (
        has.filter(lens_ok)
        .select(
            "frame",
            "ts_ns",
            "src_ip",
            "dst_ip",
            "src_port",
            "dst_port",
            "transport",
            "tcp_stream",
            "dns_id",
            "dns_flags",
            "dns_qd",
            "dns_an",
            "dns_qname",
            "dns_qtype",
            n_names=pl.col("dns_qname").list.len().fill_null(0),
        )
        .with_columns(msg=pl.int_ranges(pl.col("dns_id").list.len()))
        .explode("dns_id", "dns_flags", "dns_qd", "dns_an", "msg")
        .with_columns(
            dns_id=_hex(pl.col("dns_id")).cast(pl.UInt16),
            flags=_hex(pl.col("dns_flags")).cast(pl.UInt16),
            qd=pl.col("dns_qd").cast(pl.Int64, strict=False).fill_null(0),
            answers=pl.col("dns_an").cast(pl.UInt16, strict=False),
        )
        .with_columns(
            q_off=(pl.col("qd").cum_sum() - pl.col("qd")).over("frame"),
            qd_total=pl.col("qd").sum().over("frame"),
            n_msgs=pl.len().over("frame"),
        )
    )
    aligned = pl.col("qd_total") == pl.col("n_names")
    idx = (
        pl.when(aligned & (pl.col("qd") > 0))
        .then(pl.col("q_off"))
        .when(~aligned & (pl.col("n_msgs") == 1))
        .then(0)
    )
    m = m.with_columns(
        qname=pl.col("dns_qname").list.get(idx, null_on_oob=True),
        qtype_n=pl.col("dns_qtype").list.get(idx, null_on_oob=True).cast(pl.Int64, strict=False),
        qr=(pl.col("flags") & 0x8000) > 0,
    ).drop("dns_flags", "dns_qd", "dns_an", "dns_qname", "dns_qtype", "q_off", "qd_total", "n_msgs")
    return m, in_icmp, unparsed


def _pair(m: pl.DataFrame) -> tuple[pl.DataFrame, dict[str, int]]:
    """Pair queries and responses like tshark; returns (transactions, counts)."""
    ep_src = pl.concat_str([pl.col("src_ip"), pl.col("src_port").cast(pl.String)], separator="#")
    ep_dst = pl.concat_str([pl.col("dst_ip"), pl.col("dst_port").cast(pl.String)], separator="#")
    conv = (
        pl.when(pl.col("transport") == "tcp")
        .then(pl.concat_str([pl.lit("t"), pl.col("tcp_stream").cast(pl.String)]))
        .otherwise(
            pl.concat_str(
                [pl.lit("u"), pl.min_horizontal(ep_src, ep_dst), pl.max_horizontal(ep_src, ep_dst)],
                separator="|",
            )
        )
    )
    ev = (
        m.with_columns(conv=conv.fill_null("?"))
        .sort("conv", "dns_id", "frame", "msg", maintain_order=True)
        .with_row_index("ev")
    )
    grp = ev.group_by("conv", "dns_id", maintain_order=True).agg(
        n=pl.len(), first_qr=pl.col("qr").first(), last_qr=pl.col("qr").last(),
        first_ev=pl.col("ev").first(),
    )  # fmt: skip
    simple = grp.filter(
        (pl.col("n") == 1) | ((pl.col("n") == 2) & ~pl.col("first_qr") & pl.col("last_qr"))
    )
    # role per event: 0 new query, 1 retransmitted query, 2 answer, 3 duplicate response, 4 orphan
    # txn per event: ev index of the transaction's first query
    role = [0] * ev.height
    txn = [-1] * ev.height
    complex_first = set(range(ev.height))
    s_first = simple["first_ev"].to_list()
    s_n = simple["n"].to_list()
    s_qr = simple["first_qr"].to_list()
    for f, n, qr in zip(s_first, s_n, s_qr, strict=True):
        complex_first.discard(f)
        if n == 1:
            role[f], txn[f] = (4, -1) if qr else (0, f)
        else:
            complex_first.discard(f + 1)
            role[f], txn[f] = 0, f
            role[f + 1], txn[f + 1] = 2, f
    if complex_first:
        sub = ev.filter(pl.col("ev").is_in(sorted(complex_first)))
        cur: dict[tuple[str, int], list[Any]] = {}
        for e, c, i, qr, t, fr in zip(
            sub["ev"], sub["conv"], sub["dns_id"], sub["qr"], sub["ts_ns"], sub["frame"],
            strict=True,
        ):  # fmt: skip
            k = (c, i)
            st = cur.get(k)  # [txn ev, req ts, req frame, answered]
            if not qr:
                if (
                    st is not None
                    and not st[3]
                    and fr != st[2]
                    and (t - st[1]) < RETRANSMISSION_TIMER_S * 1e9
                ):
                    role[e], txn[e] = 1, st[0]
                else:
                    cur[k] = [e, t, fr, False]
                    role[e], txn[e] = 0, e
            elif st is None:
                role[e], txn[e] = 4, -1
            elif not st[3]:
                st[3] = True
                role[e], txn[e] = 2, st[0]
            else:
                role[e], txn[e] = 3, st[0]
    ev = ev.with_columns(role=pl.Series(role, dtype=pl.Int8), txn=pl.Series(txn, dtype=pl.Int64))
    counts = {
        "queries": int((ev["role"] == 0).sum()),
        "retx": int((ev["role"] == 1).sum()),
        "answers": int((ev["role"] == 2).sum()),
        "dup": int((ev["role"] == 3).sum()),
        "orphan": int((ev["role"] == 4).sum()),
    }
    q = ev.filter(pl.col("role") == 0)
    retx = ev.filter(pl.col("role") == 1).group_by("txn").agg(retransmissions=pl.len())
    ans = ev.filter(pl.col("role") == 2).select(
        txn=pl.col("txn"),
        r_ts_ns=pl.col("ts_ns"),
        r_frame=pl.col("frame"),
        r_flags=pl.col("flags"),
        r_answers=pl.col("answers"),
    )
    t = (
        q.join(retx, left_on="ev", right_on="txn", how="left")
        .join(ans, left_on="ev", right_on="txn", how="left")
        .with_columns(pl.col("retransmissions").fill_null(0).cast(pl.UInt32))
    )
    return t, counts


def _name_map(mapping: dict[int, str], prefix: str, expr: pl.Expr) -> pl.Expr:
    return expr.replace_strict(
        mapping,
        default=pl.concat_str([pl.lit(prefix), expr.cast(pl.String)]),
        return_dtype=pl.String,
    )


def _build(
    raw: pl.DataFrame,
    path: Path,
    capture: str,
    version: str,
    opts: dict[str, Any],
    info: dict[str, Any],
    notes: list[str],
    truncated: bool,
    gzipped: bool,
) -> _FileResult:
    pk = _packets(raw)
    m, in_icmp, unparsed = _messages(pk)
    t, counts = _pair(m)
    first_ns = pk["ts_ns"].min() if pk.height else None
    last_ns = pk["ts_ns"].max() if pk.height else None
    total = info.get("packets")
    if total is None:
        total = pk.height
        notes.append("capinfos not available: packet total is the number of DNS-related packets")
    if info.get("link_type") and pk.height == 0 and total:
        notes.append(
            f"no DNS-related packet among {total} (link type {info['link_type']}; "
            "tshark may have no dissector for it)"
        )
    if in_icmp:
        notes.append(f"{in_icmp} DNS message(s) quoted inside ICMP errors are not transactions")
    if unparsed:
        notes.append(f"{unparsed} DNS message(s) with incomplete headers were not paired")
    # censoring window
    lat = (
        ((t["r_ts_ns"] - t["ts_ns"]) / 1e9).drop_nulls()
        if t.height
        else pl.Series([], dtype=pl.Float64)
    )
    if opts.get("censor_s") is not None:
        window = float(opts["censor_s"])
    else:
        mx = float(lat.max()) if len(lat) else 0.0  # type: ignore[arg-type]
        window = min(max(mx + 0.2, 2.0), 10.0)
    end_ns = last_ns if last_ns is not None else 0
    dns = t.select(
        ts=_ns_to_ts(pl.col("ts_ns")),
        ts_response=_ns_to_ts(pl.col("r_ts_ns")),
        latency_s=(pl.col("r_ts_ns") - pl.col("ts_ns")) / 1e9,
        answered=pl.col("r_ts_ns").is_not_null(),
        censored=pl.col("r_ts_ns").is_null() & ((end_ns - pl.col("ts_ns")) < window * 1e9),
        client_ip=pl.col("src_ip"),
        client_port=pl.col("src_port"),
        server_ip=pl.col("dst_ip"),
        server_port=pl.col("dst_port"),
        transport=pl.col("transport"),
        dns_id=pl.col("dns_id"),
        qname=pl.col("qname"),
        qtype=_name_map(QTYPES, "TYPE", pl.col("qtype_n")),
        rcode=_name_map(RCODES, "RCODE", (pl.col("r_flags") & 0xF).cast(pl.Int64)),
        tc=(pl.col("r_flags") & 0x0200) > 0,
        answers=pl.col("r_answers"),
        retransmissions=pl.col("retransmissions"),
        tcp_stream=pl.col("tcp_stream"),
        capture=pl.lit(capture),
        frame_query=pl.col("frame"),
        frame_response=pl.col("r_frame"),
    ).sort("ts", "frame_query")
    dns = dns.cast(dict(DNS_SCHEMA))  # type: ignore[arg-type]
    packets = pk.select(
        ts=_ns_to_ts(pl.col("ts_ns")),
        capture=pl.lit(capture),
        frame=pl.col("frame"),
        src_ip=pl.col("src_ip"),
        dst_ip=pl.col("dst_ip"),
        src_port=pl.col("src_port"),
        dst_port=pl.col("dst_port"),
        transport=pl.col("transport"),
        length=pl.col("length"),
        tcp_flags=pl.col("tcp_flags"),
        tcp_stream=pl.col("tcp_stream"),
        is_retransmission=pl.col("is_retransmission"),
        dns_messages=pl.col("dns_messages"),
    ).cast(dict(PACKETS_SCHEMA))  # type: ignore[arg-type]
    tcp = _tcp(pk, capture)
    n_msgs = int(pk["dns_messages"].sum() or 0) if pk.height else 0
    meta = pl.DataFrame(
        [
            {
                "capture": capture,
                "path": os.fspath(path),
                "file_format": info.get("file_format"),
                "link_type": info.get("link_type"),
                "gzipped": gzipped,
                "packets": total,
                "packets_kept": pk.height,
                "packets_skipped": max(0, total - pk.height),
                "first_ts": first_ns,
                "last_ts": last_ns,
                "truncated": truncated,
                "dns_messages": n_msgs,
                "dns_queries": counts["queries"],
                "dns_query_retransmissions": counts["retx"],
                "dns_responses": counts["answers"],
                "dns_duplicate_responses": counts["dup"],
                "dns_orphan_responses": counts["orphan"],
                "dns_in_icmp": in_icmp,
                "dns_unparsed": unparsed,
                "censor_window_s": window,
                "notes": notes,
                "tshark_version": version,
                "from_cache": False,
            }
        ],
        schema_overrides={"first_ts": pl.Int64, "last_ts": pl.Int64},
    ).with_columns(first_ts=_ns_to_ts(pl.col("first_ts")), last_ts=_ns_to_ts(pl.col("last_ts")))
    meta = meta.cast(dict(META_SCHEMA))  # type: ignore[arg-type]
    for n in notes:
        log.warning("%s: %s", path, n)
    return _FileResult(dns, tcp, packets, meta)


def _tcp(pk: pl.DataFrame, capture: str) -> pl.DataFrame:
    p = pk.filter((pl.col("transport") == "tcp") & pl.col("tcp_stream").is_not_null())
    flags = pl.col("tcp_flags").cast(pl.Int64)
    p = p.with_columns(
        syn=(flags & 0x12) == 0x02,
        synack=(flags & 0x12) == 0x12,
        fin=(flags & 0x01) > 0,
        rst=(flags & 0x04) > 0,
    )
    g = (
        p.sort("frame")
        .group_by("tcp_stream", maintain_order=True)
        .agg(
            n=pl.len(),
            ts_first=pl.col("ts_ns").min(),
            ts_last=pl.col("ts_ns").max(),
            n_syn=pl.col("syn").sum(),
            ts_syn=pl.col("ts_ns").filter(pl.col("syn")).min(),
            syn_src=pl.col("src_ip").filter(pl.col("syn")).first(),
            syn_sport=pl.col("src_port").filter(pl.col("syn")).first(),
            syn_dst=pl.col("dst_ip").filter(pl.col("syn")).first(),
            syn_dport=pl.col("dst_port").filter(pl.col("syn")).first(),
            ts_synack=pl.col("ts_ns").filter(pl.col("synack")).min(),
            sa_src=pl.col("src_ip").filter(pl.col("synack")).first(),
            sa_sport=pl.col("src_port").filter(pl.col("synack")).first(),
            sa_dst=pl.col("dst_ip").filter(pl.col("synack")).first(),
            sa_dport=pl.col("dst_port").filter(pl.col("synack")).first(),
            any_src=pl.col("src_ip").first(),
            any_sport=pl.col("src_port").first(),
            any_dst=pl.col("dst_ip").first(),
            any_dport=pl.col("dst_port").first(),
            ts_rst=pl.col("ts_ns").filter(pl.col("rst")).min(),
            ts_fin=pl.col("ts_ns").filter(pl.col("fin")).max(),
            dns_messages=pl.col("dns_messages").cast(pl.UInt32).sum(),
        )
    )
    # client side: first SYN's sender, else SYN/ACK's receiver, else the side whose port isn't 53
    first_is_server = pl.col("any_sport") == 53
    cli_ip = pl.coalesce(
        "syn_src", "sa_dst", pl.when(first_is_server).then("any_dst").otherwise("any_src")
    )
    cli_port = pl.coalesce(
        "syn_sport", "sa_dport", pl.when(first_is_server).then("any_dport").otherwise("any_sport")
    )
    srv_ip = pl.coalesce(
        "syn_dst", "sa_src", pl.when(first_is_server).then("any_src").otherwise("any_dst")
    )
    srv_port = pl.coalesce(
        "syn_dport", "sa_sport", pl.when(first_is_server).then("any_sport").otherwise("any_dport")
    )
    out = g.select(
        stream=pl.col("tcp_stream"),
        client_ip=cli_ip,
        client_port=cli_port,
        server_ip=srv_ip,
        server_port=srv_port,
        ts_syn=_ns_to_ts(pl.col("ts_syn")),
        syn_retransmits=(pl.col("n_syn") - 1).clip(lower_bound=0),
        ts_synack=_ns_to_ts(pl.col("ts_synack")),
        handshake_s=(pl.col("ts_synack") - pl.col("ts_syn")) / 1e9,
        established=pl.when(pl.col("ts_synack").is_not_null())
        .then(True)
        .when(pl.col("ts_syn").is_not_null())
        .then(False),
        ts_end=_ns_to_ts(pl.coalesce("ts_rst", "ts_fin")),
        end_reason=pl.when(pl.col("ts_rst").is_not_null())
        .then(pl.lit("rst"))
        .when(pl.col("ts_fin").is_not_null())
        .then(pl.lit("fin"))
        .otherwise(pl.lit("open")),
        dns_messages=pl.col("dns_messages"),
        packets=pl.col("n"),
        ts_first=_ns_to_ts(pl.col("ts_first")),
        ts_last=_ns_to_ts(pl.col("ts_last")),
        capture=pl.lit(capture),
    ).sort("stream")
    return out.cast(dict(TCP_SCHEMA))  # type: ignore[arg-type]


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


def packet_rates(
    packets: pl.DataFrame,
    *,
    every: str = "1s",
    by: Sequence[str] = ("capture", "dst_ip"),
    limit_pps: float = 1024.0,
) -> pl.DataFrame:
    """Packet-rate series (the I/O graph): packets per bin and per group, in packets per second.

    Parameters
    ----------
    packets
        ``Capture.packets`` (or a filter of it).
    every
        Bin width as a polars duration (``"1s"``, ``"100ms"``, ``"1m"``).
    by
        Group columns, default one series per capture and destination address.
    limit_pps
        The packet-rate limit to compare with (default 1024 pps: the AWS VPC resolver's limit per
        network interface).

    Returns
    -------
    polars.DataFrame
        ``bin`` Datetime(us, UTC) start of the bin; the ``by`` columns; ``packets`` UInt32 packets in
        the bin; ``pps`` Float64 packets per second; ``above_limit`` Boolean ``pps > limit_pps``.
        Bins without packets are absent. Sorted by the ``by`` columns and ``bin``.
    """
    width_s = pl.duration(**_duration_kwargs(every)).dt.total_microseconds() / 1e6
    by = list(by)
    out = (
        packets.with_columns(bin=pl.col("ts").dt.truncate(every))
        .group_by([*by, "bin"])
        .agg(packets=pl.len().cast(pl.UInt32))
        .with_columns(pps=pl.col("packets") / width_s)
        .with_columns(above_limit=pl.col("pps") > limit_pps)
        .select("bin", *by, "packets", "pps", "above_limit")
        .sort([*by, "bin"])
    )
    return out


def _duration_kwargs(every: str) -> dict[str, int]:
    import re

    units = {"ns": "nanoseconds", "us": "microseconds", "ms": "milliseconds", "s": "seconds",
             "m": "minutes", "h": "hours", "d": "days"}  # fmt: skip
    parts = re.findall(r"(\d+)(ns|us|ms|s|m|h|d)", every)
    if not parts or "".join(n + u for n, u in parts) != every:
        raise ValueError(f"every={every!r}: expected a duration like '1s', '100ms', '1m'")
    kw: dict[str, int] = {}
    for n, u in parts:
        kw[units[u]] = kw.get(units[u], 0) + int(n)
    return kw


def rate_summary(
    rates: pl.DataFrame, *, by: Sequence[str] = ("capture", "dst_ip"), limit_pps: float = 1024.0
) -> pl.DataFrame:
    """Per group: bins, peak and median pps, and the share of bins above ``limit_pps``.

    Parameters
    ----------
    rates
        Output of :func:`packet_rates`.
    by
        The same group columns as given to :func:`packet_rates`.
    limit_pps
        The limit, packets per second.

    Returns
    -------
    polars.DataFrame
        The ``by`` columns; ``bins`` UInt32 bins with packets; ``peak_pps`` Float64;
        ``median_pps`` Float64; ``bins_above_limit`` UInt32; ``share_above_limit`` Float64 (0..1,
        of the bins with packets). Sorted by ``peak_pps`` descending.
    """
    by = list(by)
    return (
        rates.group_by(by)
        .agg(
            bins=pl.len().cast(pl.UInt32),
            peak_pps=pl.col("pps").max(),
            median_pps=pl.col("pps").median(),
            bins_above_limit=(pl.col("pps") > limit_pps).sum().cast(pl.UInt32),
        )
        .with_columns(share_above_limit=pl.col("bins_above_limit") / pl.col("bins"))
        .sort(["peak_pps", *by], descending=[True] + [False] * len(by))
    )


def latency_by(
    dns: pl.DataFrame,
    *,
    by: Sequence[str] = ("server_ip", "qtype", "transport"),
    quantiles: Sequence[float] = (0.5, 0.9, 0.99),
) -> pl.DataFrame:
    """Latency quantiles of answered transactions per group (wraps :func:`kit.analysis.latency_quantiles`).

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
        As :func:`kit.analysis.latency_quantiles` over ``latency_s`` (seconds).
    """
    from kit.analysis import latency_quantiles

    return latency_quantiles(
        dns.filter(pl.col("answered")), value="latency_s", by=list(by), quantiles=list(quantiles)
    )


ATTRIBUTION_SCHEMA = pl.Schema(
    {
        "capture": pl.String,
        "ts": _UTC,
        "client_ip": pl.String,
        "client_port": pl.UInt16,
        "server_ip": pl.String,
        "dns_id": pl.UInt16,
        "qname": pl.String,
        "qtype": pl.String,
        "latency_s": pl.Float64,
        "answered": pl.Boolean,
        "frame_query": pl.UInt32,
        "up_ts": _UTC,
        "up_client_ip": pl.String,
        "up_server_ip": pl.String,
        "up_transport": pl.String,
        "up_dns_id": pl.UInt16,
        "up_latency_s": pl.Float64,
        "up_retransmissions": pl.UInt32,
        "up_frame_query": pl.UInt32,
        "up_start": _UTC,
        "up_wait_s": pl.Float64,
        "tcp_stream": pl.UInt32,
        "syn_retransmits": pl.UInt32,
        "handshake_s": pl.Float64,
        "explained": pl.Boolean,
    }
)


def attribute_slow_answers(
    cap: Capture,
    *,
    slow_s: float = 1.0,
    lead_s: float = 0.0,
    unanswered_window_s: float = 10.0,
    share: float = 0.5,
) -> pl.DataFrame:
    """For each slow client answer, the upstream transaction and TCP connection that served it.

    A cache re-issues a missed query upstream with a new DNS ID (and often over another transport),
    so the upstream leg is found by name and time: a transaction on another leg (different client
    or server address/port) with the same ``qname`` (case-insensitive) and ``qtype``, in the same
    capture, started (the first SYN of the TCP connection that carried it, else the query) between
    ``lead_s`` seconds before the client's query and the client's answer
    (for unanswered queries: ``unanswered_window_s`` after it), and finished no later than the
    client's answer. The closest such upstream query in time wins. Its TCP connection (if any)
    brings ``syn_retransmits`` and ``handshake_s``.

    Parameters
    ----------
    cap
        A :class:`Capture`.
    slow_s
        Client answers at least this slow (seconds) are explained; unanswered, uncensored queries
        are included too.
    lead_s
        How long before the client's query the upstream query may start (a cache coalescing
        several clients onto one upstream query), seconds.
    unanswered_window_s
        Search window after an unanswered client query, seconds.
    share
        ``explained`` is true when the upstream leg took at least this share of the client's
        latency (or the upstream connection retransmitted its SYN).

    Returns
    -------
    polars.DataFrame
        :data:`ATTRIBUTION_SCHEMA`, one row per slow client transaction, sorted by ``latency_s``
        descending: the client transaction (``capture``, ``ts``, ``client_ip``, ``client_port``, ``server_ip``,
        ``dns_id``, ``qname``, ``qtype``, ``latency_s`` seconds, ``answered``, ``frame_query``),
        the upstream one (``up_*``, null when none was found; ``up_latency_s`` seconds is the
        DNS query-to-answer time upstream; ``up_start`` is the first SYN of the connection that
        carried it, else the upstream query; ``up_wait_s`` seconds from ``up_start`` to the upstream
        answer, which includes the SYN retransmissions), its ``tcp_stream``, ``syn_retransmits``,
        ``handshake_s`` (seconds), and ``explained``.
    """
    dns = cap.dns.with_row_index("_i").with_columns(
        _key=pl.col("qname").str.to_lowercase(),
        _end=pl.coalesce(
            pl.col("ts_response"), pl.col("ts") + pl.duration(seconds=unanswered_window_s)
        ),
    )
    slow = dns.filter((pl.col("latency_s") >= slow_s) | (~pl.col("answered") & ~pl.col("censored")))
    tcp = cap.tcp.select(
        "capture", tcp_stream=pl.col("stream"), syn_retransmits=pl.col("syn_retransmits"),
        handshake_s=pl.col("handshake_s"), _ts_syn=pl.col("ts_syn"),
    )  # fmt: skip
    cand = (
        dns.select(
            "_i",
            "capture",
            "_key",
            "qtype",
            up_ts=pl.col("ts"),
            up_end=pl.col("_end"),
            up_client_ip=pl.col("client_ip"),
            up_client_port=pl.col("client_port"),
            up_server_ip=pl.col("server_ip"),
            up_server_port=pl.col("server_port"),
            up_transport=pl.col("transport"),
            up_dns_id=pl.col("dns_id"),
            up_latency_s=pl.col("latency_s"),
            up_retransmissions=pl.col("retransmissions"),
            up_frame_query=pl.col("frame_query"),
            tcp_stream=pl.col("tcp_stream"),
            up_answered=pl.col("answered"),
        )
        .join(tcp, on=["capture", "tcp_stream"], how="left")
        .with_columns(
            # the upstream leg starts when the cache opened the connection that carried the query
            up_start=pl.when(pl.col("_ts_syn") <= pl.col("up_ts"))
            .then(pl.col("_ts_syn"))
            .otherwise(pl.col("up_ts"))
        )
        .drop("_ts_syn")
    )
    j = slow.drop("tcp_stream").join(
        cand, on=["capture", "_key", "qtype"], how="inner", suffix="_up"
    )
    lead = pl.duration(microseconds=int(lead_s * 1e6))
    j = j.filter(
        (pl.col("_i") != pl.col("_i_up"))
        & (
            (pl.col("up_client_ip") != pl.col("client_ip"))
            | (pl.col("up_client_port") != pl.col("client_port"))
            | (pl.col("up_server_ip") != pl.col("server_ip"))
            | (pl.col("up_server_port") != pl.col("server_port"))
        )
        & (pl.col("up_start") >= pl.col("ts") - lead)
        & (pl.col("up_start") <= pl.col("_end"))
        & (~pl.col("up_answered") | (pl.col("up_end") <= pl.col("_end")))
    )
    up_cols = [c for c in cand.columns if c.startswith("up_")]
    best = (
        j.with_columns(_d=(pl.col("up_start") - pl.col("ts")).abs())
        .sort("_i", "_d", "up_frame_query")
        .group_by("_i", maintain_order=True)
        .first()
        .select("_i", "_i_up", *up_cols, "tcp_stream", "syn_retransmits", "handshake_s")
    )
    # a slow row that is itself the upstream leg of another slow row is not a client answer
    slow = slow.filter(~pl.col("_i").is_in(best["_i_up"].implode()))
    out = slow.drop("tcp_stream").join(best, on="_i", how="left")
    out = out.with_columns(
        up_wait_s=(pl.col("up_end") - pl.col("up_start")).dt.total_microseconds() / 1e6
    )
    lat = pl.coalesce(pl.col("latency_s"), pl.lit(unanswered_window_s))
    out = out.with_columns(
        explained=pl.col("up_ts").is_not_null()
        & ((pl.col("syn_retransmits").fill_null(0) > 0) | (pl.col("up_wait_s") >= share * lat))
    )
    out = out.select(list(ATTRIBUTION_SCHEMA)).sort(
        "latency_s", "ts", descending=[True, False], nulls_last=False
    )
    return out.cast(dict(ATTRIBUTION_SCHEMA))  # type: ignore[arg-type]


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
    if not p.is_file():
        raise FileNotFoundError(f"capture file not found: {path}")

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
