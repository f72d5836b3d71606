"""The kit's exceptions and warnings.

Every error the kit raises on purpose derives from :class:`KitError`, so a caller can catch "any kit
error" in one place. Messages have three parts: what went wrong, where (file and line or byte
offset), and what to do next.
"""

from __future__ import annotations

import errno as errno_mod
import os
from collections.abc import Sequence

__all__ = [
    "InputFileError",
    "InputFormatError",
    "InputNotFoundError",
    "KitError",
    "KitWarning",
    "SchemaError",
    "ToolError",
    "ToolNotFoundError",
]


class KitError(Exception):
    """Base class of every error raised by the kit."""


class InputFormatError(KitError, ValueError):
    """An input file is not in a format the kit can read, or a unit of it does not parse.

    Attributes
    ----------
    path : str | None
        The file, as given by the caller.
    line : int | None
        1-based line number, for text inputs.
    offset : int | None
        Byte offset, for binary inputs.
    excerpt : str | None
        The offending text (shortened), shown with ``repr`` so control bytes are visible.
    hint : str | None
        What to do about it.
    """

    def __init__(
        self,
        message: str,
        *,
        path: str | os.PathLike[str] | None = None,
        line: int | None = None,
        offset: int | None = None,
        excerpt: str | None = None,
        hint: str | None = None,
    ) -> None:
        self.path = os.fspath(path) if path is not None else None
        self.line = line
        self.offset = offset
        self.excerpt = excerpt
        self.hint = hint
        self.reason = message
        where = self.path or "<input>"
        if line is not None:
            where = f"{where}:{line}"
        elif offset is not None:
            where = f"{where} (byte offset {offset})"
        text = f"{where}: {message}"
        if excerpt is not None:
            shown = excerpt if len(excerpt) <= 160 else excerpt[:157] + "..."
            text += f": {shown!r}"
        if hint:
            text += f". {hint}"
        super().__init__(text)


class InputFileError(KitError, OSError):
    """An input file cannot be read at all: permission denied, not a regular file (a directory,
    FIFO, device or socket), a dangling symlink or a symlink loop.

    The kit reads only regular files: a FIFO or ``/dev/zero`` would block or never end. Also an
    :class:`OSError`, so ``except OSError`` keeps working.

    Attributes
    ----------
    path : str
        The file, as given by the caller.
    reason : str
        What is wrong with it ("permission denied", "not a regular file (a FIFO)", ...).
    hint : str | None
        What to do about it.
    """

    def __init__(
        self,
        reason: str,
        *,
        path: str | os.PathLike[str] | None = None,
        errno: int | None = None,
        hint: str | None = None,
    ) -> None:
        self.path = os.fspath(path) if path is not None else None
        self.reason = reason
        self.hint = hint
        text = f"{self.path}: {reason}" if self.path is not None else reason
        if hint:
            text += f". {hint}"
        super().__init__(text)
        self.errno = errno  # type: ignore[misc]  # OSError's attribute; str() stays the message


class InputNotFoundError(InputFileError, FileNotFoundError):
    """A named input does not exist, or a glob or directory matches no input file.

    Also a :class:`FileNotFoundError`, so ``except FileNotFoundError`` keeps working.
    """

    def __init__(self, message: str, *, path: str | os.PathLike[str] | None = None) -> None:
        KitError.__init__(self, message)
        self.path = os.fspath(path) if path is not None else None
        self.reason = message
        self.hint = None
        self.errno = errno_mod.ENOENT  # type: ignore[misc]


class SchemaError(KitError):
    """A frame does not have the documented schema (missing, extra or wrongly typed columns)."""


class ToolNotFoundError(KitError):
    """An external program the kit needs (tshark, prometheus, ...) is not installed.

    Attributes
    ----------
    tool : str
        The program's name.
    searched : list[str]
        Where the kit looked.
    install_hint : str
        The command that installs it.
    """

    def __init__(self, tool: str, *, searched: Sequence[str] = (), install_hint: str = "") -> None:
        self.tool = tool
        self.searched = list(searched)
        self.install_hint = install_hint
        msg = f"{tool} was not found"
        if self.searched:
            msg += f" (searched: {', '.join(self.searched)})"
        if install_hint:
            msg += f". Install it with: {install_hint}"
        super().__init__(msg)


class ToolError(KitError):
    """An external program ran but failed; the message carries its command line and stderr."""


class KitWarning(UserWarning):
    """Something was skipped or looks suspicious, but the result is still usable."""
