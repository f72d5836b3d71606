"""Files to blocks of lines: binary detection, cutting at line ends outside partial-record runs, and
the one-column frame of a block's lines (invalid UTF-8 counted and replaced)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import polars as pl

from kit.sources.coredns.model import LONG_LINE_REASON, MAX_LINE_BYTES

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


#: bytes of a long line kept in ``rejected.line``
_EXCERPT_BYTES = 200


def _cut_long_lines(
    block: bytes, keep: int, max_bytes: int = MAX_LINE_BYTES
) -> tuple[bytes, int, pl.DataFrame | None]:
    """Empty the lines of ``block[:keep]`` longer than ``max_bytes`` (the line break stays).

    Returns the block (the same object when no line is that long), its new ``keep`` and the
    rejected rows (``line_no`` from 1 in the block, ``reason``, ``line``: an excerpt and the
    length), or None. Line numbers do not change: the emptied lines are still lines, and
    :func:`~kit.sources.coredns._native._work` takes them out of what it returns.

    Cheap when no line is long: a line longer than ``max_bytes`` covers a whole aligned window of
    ``max_bytes // 2`` bytes, so one ``find`` per window (~500 per 16 MiB block) finds every one.
    """
    half = max(1, max_bytes // 2)
    spans: list[tuple[int, int]] = []
    pos = 0
    while pos < keep:
        w_end = min(pos + half, keep)
        if w_end - pos < half or block.find(b"\n", pos, w_end) >= 0:
            pos = w_end
            continue
        start = block.rfind(b"\n", 0, pos) + 1
        end = block.find(b"\n", w_end, keep)
        end = keep if end < 0 else end
        if end - start - (end > start and block[end - 1] == 13) > max_bytes:  # CR of CRLF: no
            spans.append((start, end))
        pos = end + 1
    if not spans:
        return block, keep, None
    rows: list[tuple[int, str]] = []
    parts: list[bytes] = []
    prev = 0
    line_no = 1
    for start, end in spans:
        line_no += block.count(b"\n", prev, start)
        text = block[start : start + _EXCERPT_BYTES].decode("utf-8", "replace")
        rows.append((line_no, f"{text}... ({end - start:,} bytes)"))
        parts.append(block[prev:start])
        if end == keep:  # the last line, without a line break: an empty line in its place
            parts.append(b"\n")
        prev = end  # the line break stays: line numbers after it do not change
    parts.append(block[prev:keep])
    cut = b"".join(parts)
    rejected = pl.DataFrame(
        {
            "line_no": pl.Series([r[0] for r in rows], dtype=pl.UInt32),
            "reason": pl.Series([LONG_LINE_REASON] * len(rows), dtype=pl.String),
            "line": pl.Series([r[1] for r in rows], dtype=pl.String),
        }
    )
    return cut, len(cut), rejected
