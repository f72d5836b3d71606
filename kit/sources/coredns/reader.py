"""``read_coredns_log``: files expanded, read in blocks on two threads, leftovers batched through
the general path, frames put in line order, the per-file accounting in ``files``."""

from __future__ import annotations

import logging
import os
import re
import warnings
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import polars as pl

from kit.errors import InputFormatError, KitWarning
from kit.schema import check_schema, empty_frame
from kit.sources._io import Source, expand_sources, open_input, read_raw
from kit.sources.coredns._blocks import _binary_offset, _blocks
from kit.sources.coredns._classify import _general_part
from kit.sources.coredns._formats import _compile_log_format, _CustomFormat
from kit.sources.coredns._native import _work
from kit.sources.coredns._patterns import _RE_FQDN_WORD, _RE_QTYPE_WORD, UNKNOWN_FORMAT_SHARE
from kit.sources.coredns.model import (
    _STR,
    _UNRECOGNISED,
    _WRAPPER_COLUMNS,
    CHUNK_BYTES,
    ERRORS_SCHEMA,
    FILES_SCHEMA,
    OTHER_SCHEMA,
    QUERIES_SCHEMA,
    REJECTED_SCHEMA,
    UTC,
    CoreDNSLog,
    _concat,
    _empty_out,
)

log = logging.getLogger(__name__)


_WORKERS = 2


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
        CoreDNS log line the kit recognises", "invalid JSON line (...)", "line longer than 65,536
        bytes: not a CoreDNS log line" (:data:`~kit.sources.coredns.model.MAX_LINE_BYTES`), ...)
        and ``line`` (String, the record as read, after JSON decoding and CRI joining; for a
        line too long, its first 200 bytes and its length).

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


# leftover rows (not fast-path queries) gathered before the general path runs on them
_GENERAL_BATCH_ROWS = 50_000
# ... or the lines a batch may span: its queries interleave with the fast path's of those lines,
# and putting them in line order copies them (:func:`_in_line_order`); without this bound, a file
# with 1 % leftovers had one batch per 5 M lines and peaked at 1.56x its frames
_GENERAL_BATCH_SPAN = 500_000


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
    """``frames`` (each sorted by ``line_no``) as a list whose concatenation is sorted.

    Empties ``frames``. General-path batches interleave with the fast-path blocks they cover (line
    numbers are unique): only each run of chunks whose line ranges overlap is merged, one run at a
    time, and every chunk is released as soon as it is merged, so the memory this needs is one
    run's copy (about one block, or the blocks one leftover batch spans), not a copy of the frame.
    """
    items = [f for f in frames if f.height]
    frames.clear()
    last = -1
    for f in items:
        first = f["line_no"][0]
        if first <= last:
            break
        last = f["line_no"][-1]
    else:
        return items
    items.sort(key=lambda f: f["line_no"][0], reverse=True)  # popped from the end, in order
    out: list[pl.DataFrame] = []
    while items:
        run = [items.pop()]
        hi = run[0]["line_no"][-1]
        while items and items[-1]["line_no"][0] <= hi:
            run.append(items.pop())
            hi = max(hi, run[-1]["line_no"][-1])
        if len(run) == 1:
            out.append(run[0])
        else:
            merged = pl.concat(run, rechunk=False).sort("line_no")
            run.clear()
            out.append(merged)
    return out


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
                n, bad, quick, rest, long = fut.result()
                base = stats["lines"]
                stats["invalid_utf8"] += bad
                stats["lines"] += n
                if long is not None:
                    out = _empty_out()
                    out["rejected"] = long.select(
                        pl.lit(source, _STR).alias("source"),
                        pl.col("line_no") + base,
                        "reason",
                        "line",
                    )
                    take(out)
                if quick is not None:
                    out = _empty_out()
                    out["queries"] = quick.with_columns(pl.col("line_no") + base)
                    take(out)
                if rest.height:
                    leftovers.append(rest.with_columns(pl.col("line_no") + base))
                    n_left += rest.height
                if leftovers and (
                    n_left >= _GENERAL_BATCH_ROWS
                    or strict
                    or stats["lines"] - leftovers[0]["line_no"][0] >= _GENERAL_BATCH_SPAN
                ):
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
    o = pl.concat(frames, rechunk=False)  # no copy; the filter copies its rows
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
