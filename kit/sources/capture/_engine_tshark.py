"""The tshark engine: ``tshark -T fields`` on a whole file or on packet ranges in parallel.

How tshark's output is read, and how large files are cut into packet ranges: see the notes
in :mod:`kit.sources.capture` (the package's docstring).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import logging
import os
import re
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import polars as pl

from kit.errors import InputFormatError, ToolError
from kit.net import flag_expr, is_syn, syn_expr
from kit.sources import _tshark
from kit.sources._io import GZIP_MAGIC
from kit.sources.capture._check import _NOT_CAPTURE_HINT
from kit.sources.capture._fields import _frag_frames, _packets
from kit.sources.capture._frames import (
    _AGG,
    _DAMAGED,
    DEFAULT_DNS_PORTS,
    _build,
    _capture_name,
    _damage_notes,
    _dns_related,
    _FileResult,
    _syn_retransmissions,
)
from kit.sources.capture._progress import _Progress
from kit.sources.detect import HEAD_BYTES, capture_head

log = logging.getLogger(__name__)

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


#: A pcap file header (little-endian, link type 0xffff) and no packet: what tshark compiles a
#: display filter and a field list against.
_EMPTY_PCAP = bytes.fromhex("d4c3b2a1020004000000000000000000ffff000001000000")


def _on_empty_capture(argv: Sequence[str], what: str) -> str | None:
    """Run a tshark command line (reading ``-r -``) on a capture without packets: tshark then
    checks only its arguments (display filter, fields). Returns tshark's complaint, or ``None``
    when it accepts them."""
    with tempfile.TemporaryDirectory(prefix="dnskit-flt-") as tmpd:
        empty = Path(tmpd) / "empty.pcap"
        empty.write_bytes(_EMPTY_PCAP)
        proc = _tshark.run(list(argv), what=what, check=False, stdin_path=empty)
    if proc.returncode == 0:
        return None
    return _tshark.said(proc.stderr) or f"exit code {proc.returncode}"


def _check_display_filter(tshark: str, display_filter: str) -> None:
    """Let tshark compile the filter (``-Y`` on an empty input) so a typo is an error, not 0 rows.

    Raises
    ------
    ValueError
        tshark rejects the filter; its own message is included.
    """
    argv = [tshark, "-n", "-r", "-", "-Y", display_filter, "-T", "fields", "-e", "frame.number"]
    msg = _on_empty_capture(argv, "tshark (display filter check)")
    if msg is not None:
        raise ValueError(f"display_filter={display_filter!r} is not a valid tshark filter: {msg}")


def _check_own_arguments(argv: Sequence[str], path: Path, rc: int) -> None:
    """After a tshark run that failed (``rc``) without output: was it the kit's own display filter
    or field list that this tshark rejects (e.g. an older tshark without a field the kit asks
    for), rather than the file? tshark says so before reading any packet, with the same exit code
    as for a damaged file, so its arguments are tried again on an empty capture to tell.

    Raises
    ------
    ToolError
        tshark rejects the kit's arguments; the message names the file and tshark's words.
    """
    msg = _on_empty_capture(argv, "tshark (argument check)")
    if msg is None:
        return  # the arguments are fine: the failure is the file's (notes or errors follow)
    raise ToolError(
        f"tshark rejects the kit's own display filter or field list while reading {path} (exit "
        f"code {rc}): {msg}. This tshark ({argv[0]}) is probably older or newer than the kit "
        "supports; use another tshark (tshark_path=, $DNSKIT_TSHARK) or engine='native'"
    )


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
        if rc != 0 and out.stat().st_size == 0:
            _check_own_arguments(argv, path, rc)
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
