"""Checks on a capture before any tool reads it: a regular file the kit can open, with a pcap or
pcapng header (optionally gzipped); named files, folders and glob matches alike."""

from __future__ import annotations

import errno
import glob
import os
import stat
from collections.abc import Sequence
from typing import Any

from kit.errors import InputFormatError
from kit.sources._io import Source, file_kind
from kit.sources.capture._frames import (
    _CAPTURE_SUFFIXES,
)
from kit.sources.detect import HEAD_BYTES, capture_head

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
