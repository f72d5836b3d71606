"""Turn the ``source`` argument of every loader into a list of files, and read files that may be gzipped.

Every ``read_<thing>(source, ...)`` accepts a path, a list of paths, a glob, or a directory. This
module is the one place that expands them, so all loaders behave alike.
"""

from __future__ import annotations

import glob
import logging
import os
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

Source = str | os.PathLike[str] | Sequence[str | os.PathLike[str]]

GZIP_MAGIC = b"\x1f\x8b"
_GLOB_CHARS = set("*?[")


def expand_sources(
    source: Source,
    *,
    suffixes: Iterable[str] | None = None,
    what: str = "input",
) -> list[Path]:
    """Expand a path, list of paths, glob or directory into a sorted list of existing files.

    Parameters
    ----------
    source
        A file path, a directory (its files, not recursive, hidden files skipped), a glob pattern
        (``"logs/*.log"``, ``"**"`` allowed), or a list/tuple of any of these.
    suffixes
        For directories only: keep files whose name ends with one of these (case-insensitive,
        ``.gz`` is looked through, so ``.log`` matches ``a.log.gz``). Files named explicitly or
        by a glob are always kept.
    what
        What kind of input this is, for error messages ("CoreDNS log", "capture", ...).

    Returns
    -------
    list[pathlib.Path]
        Files in the order given; within a directory or glob, sorted by name. Duplicates removed.

    Raises
    ------
    FileNotFoundError
        A named path does not exist, or a glob or directory matches no file.
    TypeError
        ``source`` is not a path, string or sequence of them.
    """
    if isinstance(source, str | os.PathLike):
        items: list[str | os.PathLike[str]] = [source]
    elif isinstance(source, Sequence):
        items = list(source)
        if not items:
            raise FileNotFoundError(f"no {what} files given: the list of sources is empty")
    else:
        raise TypeError(
            f"source must be a path, a glob, a directory or a list of them, not {type(source).__name__}"
        )
    wanted = tuple(s.lower() for s in suffixes) if suffixes else None
    out: list[Path] = []
    seen: set[Path] = set()

    def add(p: Path) -> None:
        key = p.resolve()
        if key not in seen:
            seen.add(key)
            out.append(p)

    for item in items:
        if not isinstance(item, str | os.PathLike):
            raise TypeError(
                f"source list items must be paths or strings, not {type(item).__name__}"
            )
        text = os.fspath(item)
        p = Path(text).expanduser()
        if p.is_file():
            add(p)
        elif p.is_dir():
            found = [
                c
                for c in sorted(p.iterdir())
                if c.is_file() and not c.name.startswith(".") and _suffix_ok(c.name, wanted)
            ]
            if not found:
                kinds = f" ({', '.join(wanted)})" if wanted else ""
                raise FileNotFoundError(f"directory {text} holds no {what} files{kinds}")
            for c in found:
                add(c)
        elif _GLOB_CHARS & set(text):
            matches = [Path(m) for m in sorted(glob.glob(os.path.expanduser(text), recursive=True))]
            matches = [m for m in matches if m.is_file()]
            if not matches:
                raise FileNotFoundError(f"glob {text!r} matches no {what} file")
            for m in matches:
                add(m)
        else:
            raise FileNotFoundError(f"{what} file not found: {text}")
    return out


def _suffix_ok(name: str, wanted: tuple[str, ...] | None) -> bool:
    if wanted is None:
        return True
    low = name.lower()
    if low.endswith(".gz"):
        low = low[:-3]
    return low.endswith(wanted)


@dataclass(frozen=True)
class RawFile:
    """The bytes of one input file, decompressed when it was gzipped.

    Attributes
    ----------
    path : pathlib.Path
        The file.
    data : bytes
        Its content (decompressed).
    gzipped : bool
        Whether the file was gzip-compressed (detected from its magic bytes, not its name).
    notes : list[str]
        Damage found while reading, e.g. a truncated gzip stream; empty when the file was whole.
    """

    path: Path
    data: bytes
    gzipped: bool = False
    notes: list[str] = field(default_factory=list)


def read_raw(path: str | os.PathLike[str]) -> RawFile:
    """Read a whole file, transparently decompressing gzip (also concatenated gzip members).

    A truncated or corrupt gzip stream does not raise: what could be decompressed is returned and
    ``notes`` says where the stream broke, so the caller can count it as damage.

    Raises
    ------
    FileNotFoundError
        The file does not exist.
    """
    p = Path(path)
    blob = p.read_bytes()
    if not blob.startswith(GZIP_MAGIC):
        return RawFile(p, blob)
    notes: list[str] = []
    chunks: list[bytes] = []
    rest = blob
    consumed = 0
    while rest:
        d = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
        try:
            chunks.append(d.decompress(rest))
        except zlib.error as exc:
            chunks.append(_salvage(rest))
            notes.append(
                f"corrupt gzip data in member starting at compressed byte {consumed} ({exc}); "
                "kept what decompressed before it"
            )
            break
        if not d.eof:
            notes.append(
                f"truncated gzip: the compressed stream ends at byte {len(blob)} before the end of "
                "its last member; kept what decompressed"
            )
            break
        used = len(rest) - len(d.unused_data)
        consumed += used
        rest = d.unused_data
        if rest and not rest.startswith(GZIP_MAGIC):
            if rest.strip(b"\x00"):
                notes.append(
                    f"{len(rest)} bytes of non-gzip trailing data after byte {consumed} ignored"
                )
            break
    data = b"".join(chunks)
    for n in notes:
        log.warning("%s: %s", p, n)
    return RawFile(p, data, gzipped=True, notes=notes)


def _salvage(blob: bytes) -> bytes:
    """Decompress a corrupt gzip member in small steps and keep what came out before the error."""
    d = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    out: list[bytes] = []
    for i in range(0, len(blob), 4096):
        try:
            out.append(d.decompress(blob[i : i + 4096]))
        except zlib.error:
            break
    return b"".join(out)


def walk_artefacts(
    items: Source,
    *,
    base: Path | None = None,
) -> list[Path]:
    """Expand artefact arguments for the CLI and the report: folders recursively, files and globs.

    Unlike :func:`expand_sources`, a folder is walked recursively (hidden files and folders
    skipped), since an artefact folder mixes captures, logs and exports in sub-folders.

    Parameters
    ----------
    items
        A path, glob or folder, or a list of them.
    base
        When a relative path does not exist from the current directory, try it relative to this
        folder (the report uses the repository root, so ``data/sample`` works from anywhere).

    Raises
    ------
    FileNotFoundError
        A path does not exist, a glob matches nothing, or a folder holds no files.
    """
    listed = [items] if isinstance(items, str | os.PathLike) else list(items)
    out: list[Path] = []
    seen: set[Path] = set()
    for item in listed:
        p = Path(item).expanduser()
        if base is not None and not p.is_absolute() and not p.exists() and (base / p).exists():
            p = base / p
        if p.is_dir():
            found = sorted(
                c
                for c in p.rglob("*")
                if c.is_file() and not any(part.startswith(".") for part in c.relative_to(p).parts)
            )
            if not found:
                raise FileNotFoundError(f"artefact folder {os.fspath(p)} holds no files")
        else:
            found = expand_sources(os.fspath(p), what="artefact")
        for f in found:
            key = f.resolve()
            if key not in seen:
                seen.add(key)
                out.append(f)
    return out
