"""Turn the ``source`` argument of every loader into a list of files, and read files that may be gzipped.

Every ``read_<thing>(source, ...)`` accepts a path, a list of paths, a glob, or a directory. This
module is the one place that expands them, so all loaders behave alike.
"""

from __future__ import annotations

import errno
import glob
import io
import logging
import os
import stat
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from kit.errors import InputFileError, InputFormatError, InputNotFoundError

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
    InputNotFoundError
        A named path does not exist, or a glob or directory matches no file (also a
        ``FileNotFoundError``).
    InputFileError
        A named path is not a regular file or folder (a FIFO, device, socket), a dangling
        symlink, a symlink loop, or a folder that cannot be listed.
    TypeError
        ``source`` is not a path, string or sequence of them.
    """
    if isinstance(source, str | os.PathLike):
        items: list[str | os.PathLike[str]] = [source]
    elif isinstance(source, Sequence):
        items = list(source)
        if not items:
            raise InputNotFoundError(f"no {what} files given: the list of sources is empty")
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
        if p.is_dir():
            try:
                children = sorted(p.iterdir())
            except OSError as exc:
                raise _os_error(exc, text, f"{what} folder") from None
            found = [
                c
                for c in children
                if c.is_file() and not c.name.startswith(".") and _suffix_ok(c.name, wanted)
            ]
            if not found:
                kinds = f" ({', '.join(wanted)})" if wanted else ""
                raise InputNotFoundError(
                    f"directory {text} holds no {what} files{kinds}", path=text
                )
            for c in found:
                add(c)
        elif _lexists(p, text, what):
            check_regular(p, what=what)
            add(p)
        elif _GLOB_CHARS & set(text):
            matches = [Path(m) for m in sorted(glob.glob(os.path.expanduser(text), recursive=True))]
            matches = [m for m in matches if m.is_file()]
            if not matches:
                raise InputNotFoundError(f"glob {text!r} matches no {what} file", path=text)
            for m in matches:
                add(m)
        else:
            raise InputNotFoundError(f"{what} file not found: {text}", path=text)
    return out


def _lexists(p: Path, text: str, what: str) -> bool:
    """Whether anything (a dangling symlink too) is at ``p``; a folder of the path that cannot be
    searched (permission denied, a loop) is an error, not "not found"."""
    try:
        os.lstat(p)
    except FileNotFoundError:
        return False
    except NotADirectoryError:
        return False
    except OSError as exc:
        raise _os_error(exc, text, what) from None
    return True


def _suffix_ok(name: str, wanted: tuple[str, ...] | None) -> bool:
    if wanted is None:
        return True
    low = name.lower()
    if low.endswith(".gz"):
        low = low[:-3]
    return low.endswith(wanted)


#: A gzip stream may expand to at most this many times its compressed size ...
GZIP_MAX_RATIO = 200
#: ... or to this many bytes, whichever is larger. deflate expands at most about 1032:1; real
#: logs and exports compress 2-50:1. A bigger expansion is a gzip bomb (or a file of one repeated
#: byte), and reading it would exhaust memory; :func:`read_raw` stops with an InputFormatError.
GZIP_MIN_LIMIT = 64 << 20

_GZIP_STEP = 4096  # compressed bytes fed per step; a corrupt member keeps what came before


def file_kind(mode: int) -> str:
    """What a non-regular file is, for messages."""
    for test, kind in (
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a FIFO (named pipe)"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    ):
        if test(mode):
            return kind
    return "not a regular file"


def check_regular(path: str | os.PathLike[str], *, what: str = "input") -> os.stat_result:
    """``os.stat`` of an input that must be a regular file (symlinks followed).

    Raises
    ------
    InputNotFoundError
        Nothing at ``path``.
    InputFileError
        A dangling symlink, a symlink loop, permission denied on a folder of the path, or not a
        regular file (a directory, FIFO, device or socket: the kit would block or never end
        reading those).
    """
    text = os.fspath(path)
    try:
        st = os.stat(text)
    except FileNotFoundError:
        if os.path.islink(text):
            raise InputFileError(
                f"{what} is a dangling symlink (to {os.readlink(text)!r}, which does not exist)",
                path=text,
                errno=errno.ENOENT,
            ) from None
        raise InputNotFoundError(f"{what} file not found: {text}", path=text) from None
    except OSError as exc:
        raise _os_error(exc, text, what) from None
    if not stat.S_ISREG(st.st_mode):
        raise InputFileError(
            f"{what} is {file_kind(st.st_mode)}, not a regular file; the kit reads only regular "
            "files",
            path=text,
            hint="Copy the data to a file first"
            if not stat.S_ISDIR(st.st_mode)
            else "Pass the files in it, or the folder where a folder is accepted",
        )
    return st


def _os_error(exc: OSError, text: str, what: str) -> InputFileError:
    """An ``OSError`` from stat/open/read as the kit's error."""
    if isinstance(exc, PermissionError):
        return InputFileError(
            f"cannot read {what}: permission denied",
            path=text,
            errno=exc.errno,
            hint="Make it readable for this user (chmod/chown), or copy it somewhere readable",
        )
    if exc.errno == errno.ELOOP:
        return InputFileError(f"{what} is a symlink loop", path=text, errno=exc.errno)
    if exc.errno == errno.ENXIO:
        return InputFileError(f"{what} is a socket or a device that cannot be read", path=text)
    return InputFileError(f"cannot read {what}: {exc.strerror or exc}", path=text, errno=exc.errno)


def open_input(path: str | os.PathLike[str], *, what: str = "input") -> BinaryIO:
    """Open a regular file for reading in binary mode, with the kit's errors.

    The file is checked before opening (so a FIFO is never opened, and a device never read) and
    again through the open descriptor (in case it was replaced in between).

    Raises
    ------
    InputNotFoundError, InputFileError
        As :func:`check_regular`; also permission denied on the file itself.
    """
    text = os.fspath(path)
    check_regular(text, what=what)
    try:
        fd = os.open(text, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise _os_error(exc, text, what) from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise InputFileError(
                f"{what} is {file_kind(st.st_mode)}, not a regular file", path=text
            )
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_bytes(path: str | os.PathLike[str], *, what: str = "input") -> bytes:
    """The bytes of a regular file, as stored (no decompression), with the kit's errors.

    Raises
    ------
    InputNotFoundError, InputFileError
        As :func:`open_input`; also a read error (EIO, EISDIR...).
    """
    text = os.fspath(path)
    with open_input(text, what=what) as fh:
        try:
            return fh.read()
        except OSError as exc:
            raise _os_error(exc, text, what) from None


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


def read_raw(
    path: str | os.PathLike[str],
    *,
    what: str = "input",
    max_ratio: float | None = None,
    min_limit: int | None = None,
) -> RawFile:
    """Read a whole regular file, transparently decompressing gzip (also concatenated members).

    A truncated or corrupt gzip stream does not raise: what could be decompressed is returned and
    ``notes`` says where the stream broke, so the caller can count it as damage. Decompression is
    capped (``max(min_limit, max_ratio * compressed size)`` bytes, defaults
    :data:`GZIP_MIN_LIMIT` and :data:`GZIP_MAX_RATIO`), so a gzip bomb fails fast instead of
    exhausting memory.

    Raises
    ------
    InputNotFoundError
        The file does not exist.
    InputFileError
        It is not a regular file, a dangling symlink, a symlink loop, or cannot be read
        (permission denied).
    InputFormatError
        The gzip data expands beyond the cap.
    """
    p = Path(path)
    blob = read_bytes(p, what=what)
    if not blob.startswith(GZIP_MAGIC):
        return RawFile(p, blob)
    ratio = GZIP_MAX_RATIO if max_ratio is None else max_ratio
    floor = GZIP_MIN_LIMIT if min_limit is None else min_limit
    limit = max(floor, int(ratio * len(blob)))
    data, notes = _gunzip(blob, p, limit)
    for n in notes:
        log.warning("%s: %s", p, n)
    return RawFile(p, data, gzipped=True, notes=notes)


def _gunzip(blob: bytes, path: Path, limit: int) -> tuple[bytes, list[str]]:
    """Decompress every gzip member of ``blob`` in small steps, at most ``limit`` bytes out.

    Output goes to a BytesIO (its buffer becomes the result without a copy), so the peak is about
    the decompressed size, not twice it.
    """
    notes: list[str] = []
    out = io.BytesIO()
    total = 0
    view = memoryview(blob)
    consumed = 0  # compressed bytes of the members fully read
    while consumed < len(blob):
        d = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
        i = consumed
        try:
            while not d.eof and i < len(blob):
                piece = view[i : i + _GZIP_STEP]
                i += len(piece)
                chunk = d.decompress(piece)
                total += len(chunk)
                if total > limit:
                    raise InputFormatError(
                        f"gzip data expands to more than {limit:,} bytes from {len(blob):,} "
                        f"compressed bytes (over {limit * 1.0 / max(1, len(blob)):.0f}:1): a gzip "
                        "bomb, or not a log or export",
                        path=path,
                        offset=i,
                        hint="If the file is genuine, decompress it yourself (zcat) and pass the "
                        "result, or raise kit.sources._io.GZIP_MAX_RATIO / GZIP_MIN_LIMIT",
                    )
                out.write(chunk)
        except zlib.error as exc:
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
        consumed = i - len(d.unused_data)
        rest = view[consumed:]
        if rest and bytes(rest[:2]) != GZIP_MAGIC:
            if bytes(rest).strip(b"\x00"):
                notes.append(
                    f"{len(rest)} bytes of non-gzip trailing data after byte {consumed} ignored"
                )
            break
    return out.getvalue(), notes


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
    InputNotFoundError
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
                raise InputNotFoundError(f"artefact folder {os.fspath(p)} holds no files", path=p)
        else:
            found = expand_sources(os.fspath(p), what="artefact")
        for f in found:
            key = f.resolve()
            if key not in seen:
                seen.add(key)
                out.append(f)
    return out


class ArrowArray:
    """An Arrow PyCapsule pair (schema, array) from a C extension, for ``pl.DataFrame(...)``.

    :func:`kit._fastlog.parse_block` and :func:`kit._fastcap.parse` hand their columns over this way.
    """

    __slots__ = ("_capsules",)

    def __init__(self, schema: object, array: object) -> None:
        self._capsules = (schema, array)

    def __arrow_c_array__(self, requested_schema: object = None) -> tuple[object, object]:
        return self._capsules
