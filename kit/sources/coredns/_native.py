"""The native tokenizer (``kit/_fastlog.c``) and the per-block work: default-format query lines
of a block split by the extension where it is built and usable, else by the polars fast path;
the rest is returned for the general path."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import polars as pl

from kit.sources._io import ArrowArray
from kit.sources.coredns._blocks import _cut_long_lines, _lines_frame
from kit.sources.coredns._classify import _fast_part
from kit.sources.coredns._formats import _CustomFormat
from kit.sources.coredns._queries import _guess_layout, _Layout
from kit.sources.coredns.model import _STR, QUERIES_SCHEMA

log = logging.getLogger(__name__)


try:  # the native tokenizer (kit/_fastlog.c), built by `pip install` where a C compiler exists
    from kit import _fastlog
except ImportError:  # pragma: no cover - depends on the build
    _fastlog = None  # type: ignore[assignment]

# blocks larger than this stay on the polars path (the native one uses 32-bit string offsets)
_NATIVE_MAX_BYTES = 1 << 30


def _work(
    block: bytes, keep: int, source: str, custom: _CustomFormat | None
) -> tuple[int, int, pl.DataFrame | None, pl.DataFrame, pl.DataFrame | None]:
    """Split ``block[:keep]`` into lines numbered from 1 and take the fast path.

    Returns the number of lines, invalid UTF-8 bytes, the fast-path queries (or None), the rows
    (``line_no``, ``line``) left for the general path, which runs on the leftovers of several
    blocks at once (:func:`~kit.sources.coredns.reader._read_one`): its cost is mostly per call,
    and most blocks leave only a few lines; and the rejected lines longer than
    :data:`~kit.sources.coredns.model.MAX_LINE_BYTES` (``line_no``, ``reason``, ``line``) or None.
    """
    cut, cut_keep, long = _cut_long_lines(block, keep)
    if long is None:
        return (*_split_block(block, keep, source, custom), None)
    n_in = block.count(b"\n", 0, keep) + (0 if block[keep - 1] == 10 else 1)
    n, bad, quick, rest = _split_block(cut, cut_keep, source, custom)
    if n != n_in:  # pragma: no cover - a bug in the cut, never silent
        raise RuntimeError(f"{source}: {n} lines after cutting long lines, {n_in} before")
    rest = rest.filter(~pl.col("line_no").is_in(long["line_no"].implode()))
    return n, bad, quick, rest, long


def _split_block(
    block: bytes, keep: int, source: str, custom: _CustomFormat | None
) -> tuple[int, int, pl.DataFrame | None, pl.DataFrame]:
    """:func:`_work` on a block without long lines: the native or the polars fast path."""
    if _fastlog is not None and keep <= _NATIVE_MAX_BYTES and (custom is None or custom.is_default):
        layout = _guess_layout(_sample_lines(block, keep))
        if layout is not None:
            return _native_work(block, keep, layout, source)
    lines, bad = _lines_frame(block)
    if keep < len(block):
        tail = block.count(b"\n", keep) + (0 if block.endswith(b"\n") else 1)
        lines = lines.head(lines.height - tail)
        if bad:  # the tail is read again with the next block: count only this block's bytes
            lines, bad = _lines_frame(block[:keep])
    df = lines.with_row_index("line_no", offset=1)
    quick, rest = _fast_part(df, source=source, custom=custom)
    if rest.height and quick is not None:
        # ``filter`` keeps string views into the whole block's text: copy the few lines left so
        # the block is freed now, not when their batch runs (at 0.1 % leftovers a batch gathers
        # ~50 M lines, so the views would hold the file's whole text until the end)
        rest = rest.with_columns(pl.col("line") + "")
    return lines.height, bad, quick, rest


def _sample_lines(block: bytes, keep: int, n: int = 256) -> pl.Series:
    """About ``n`` lines spread over ``block[:keep]`` (for :func:`_guess_layout`)."""
    out: list[str] = []
    step = max(1, keep // n)
    off = 0
    while off < keep:
        end = block.find(b"\n", off, keep)
        end = keep if end < 0 else end
        out.append(block[off : min(end, off + 4096)].decode("utf-8", "replace").removesuffix("\r"))
        nxt = block.find(b"\n", max(end, off + step), keep)
        if nxt < 0:
            break
        off = nxt + 1
    return pl.Series("line", out, dtype=pl.String)


def _native_work(
    block: bytes, keep: int, layout: _Layout, source: str
) -> tuple[int, int, pl.DataFrame | None, pl.DataFrame]:
    """:func:`_work` with the native tokenizer: same results as the polars fast path.

    ``kit/_fastlog.c`` takes a line only when every check of :func:`_fast_queries` holds (it is
    stricter in places: plain digit runs, Zulu stamps, valid UTF-8); every other line comes back
    as text, for the general path.
    """
    assert _fastlog is not None

    def idx(i: int | None) -> int:
        return -1 if i is None else i

    n, schema, array, rest_text, rest_no = _fastlog.parse_block(
        block, keep, layout.tokens, idx(layout.ts), idx(layout.stream), idx(layout.pod)
    )
    frame = pl.DataFrame(ArrowArray(schema, array))
    quick = None
    if frame.height:  # the tokenizer has every query column but these two
        extra = {"node": pl.lit(None, _STR), "source": pl.lit(source, _STR)}
        quick = frame.select(
            extra[c].alias(c) if c in extra else pl.col(c) for c in QUERIES_SCHEMA
        ).cast(dict(QUERIES_SCHEMA))  # type: ignore[arg-type]
    bad = 0
    if rest_text:
        lines, bad = _lines_frame(rest_text)
        nos = np.frombuffer(rest_no, dtype=np.uint32)
        if lines.height != len(nos):  # pragma: no cover - a tokenizer bug, never silent
            raise RuntimeError(
                f"{source}: native tokenizer returned {len(nos)} line numbers for "
                f"{lines.height} lines; read with kit.sources.coredns._tokenizer(None) and report this"
            )
        rest = lines.select(pl.Series("line_no", nos, dtype=pl.UInt32), pl.col("line"))
    else:
        rest = pl.DataFrame(schema={"line_no": pl.UInt32, "line": pl.String})
    return n, bad, quick, rest


def _native_usable() -> bool:
    """The extension imported, and this polars takes its output (Arrow string views)."""
    if _fastlog is None:
        return False
    line = b'[INFO] 10.0.0.1:53 - 1 "A IN a.example. udp 29 false 512" NOERROR qr,rd 45 0.5s\n'
    try:
        _, schema, array, _, _ = _fastlog.parse_block(line, len(line), 0, -1, -1, -1)
        row = pl.DataFrame(ArrowArray(schema, array)).row(0, named=True)
    except Exception as exc:  # an old polars, a broken build: say so, use the polars path
        log.warning("kit._fastlog is not usable (%s); CoreDNS logs use the polars-only path", exc)
        return False
    if row["qname"] == "a.example" and row["duration_s"] == 0.5:
        return True
    log.warning("kit._fastlog misread a known line (%r); CoreDNS logs use the polars path", row)
    return False


if not _native_usable():
    _fastlog = None  # type: ignore[assignment]


@contextmanager
def _tokenizer(module: Any) -> Iterator[None]:
    """Read with ``module`` as the native tokenizer (``None``: the polars-only path) inside the
    block, then restore it; for tests and benchmarks that compare the two paths."""
    global _fastlog
    saved, _fastlog = _fastlog, module
    try:
        yield
    finally:
        _fastlog = saved


NATIVE: bool = _fastlog is not None
"""True when default-format query lines are split by the native tokenizer (``kit/_fastlog.c``);
false when the extension was not built (or this polars cannot take its output), and the
polars-only path, with the same results, is used."""
