"""The artefacts of a report: what each file is (:func:`classify_artefact`), the inventory of a
folder (:func:`inventory`), how a path is passed to a notebook, and how findings name the files
the way the user gave them (display names)."""

from __future__ import annotations

import glob
import logging
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import polars as pl

from kit.sources._io import walk_artefacts
from kit.sources.artefacts import REPO_ROOT, SAMPLE, checkout_root, classify
from kit.sources.detect import ArtefactKind

log = logging.getLogger(__name__)

DEFAULT_ARTEFACTS = SAMPLE
"""Artefacts used when none are given (relative to the checkout's root; not in the wheel)."""

ARTEFACT_KINDS: tuple[str, ...] = tuple(k.value for k in ArtefactKind)
"""Kinds an artefact can be classified as (the values of ``kit.sources.detect.ArtefactKind``)."""

INVENTORY_SCHEMA = pl.Schema(
    {
        "path": pl.String,
        "kind": pl.String,
        "reason": pl.String,
        "size_bytes": pl.UInt64,
    }
)
"""Schema of :func:`inventory`."""


def classify_artefact(path: str | os.PathLike[str]) -> tuple[str, str]:
    """Say what kind of artefact a file is, from its content (:func:`kit.sources.detect.detect`).

    Parameters
    ----------
    path
        The file.

    Returns
    -------
    tuple[str, str]
        ``(kind, reason)``: ``kind`` is one of :data:`ARTEFACT_KINDS`, ``reason`` says why in one
        sentence (for ``unknown``: why the file was not recognised). A file that cannot be read is
        ``("unknown", "could not be read: ...")``; nothing raises.
    """
    return classify(path)


def _utf8(text: str) -> bool:
    """Whether a path (as decoded by the OS, undecodable bytes as surrogates) is valid UTF-8."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _display_path(text: str) -> str:
    r"""A path as text that any frame or file can hold: undecodable bytes shown as ``\xNN``."""
    return text if _utf8(text) else os.fsencode(text).decode("utf-8", "backslashreplace")


def _artefact_arg(item: str | os.PathLike[str]) -> str:
    """An artefact argument as a notebook running in the repo root must see it (globs included)."""
    text = os.fspath(item)
    p = Path(text).expanduser()
    if p.exists():
        return _param_path(p)
    if set("*?[") & set(text) and not p.is_absolute() and glob.glob(text, recursive=True):
        return _param_path(Path.cwd()) + os.sep + text if Path.cwd() != checkout_root() else text
    return text


def _param_path(p: Path) -> str:
    """How a path is passed to a notebook: relative to the checkout's root when inside it (the
    notebooks resolve it there), else absolute (always, when the kit runs from a wheel)."""
    absolute = p.resolve()
    root = checkout_root()
    if root is None:
        return os.fspath(absolute)
    try:
        return os.fspath(absolute.relative_to(root))
    except ValueError:
        return os.fspath(absolute)


def _run_dir() -> Path:
    """The kernels' working directory: the checkout's root, else the current directory. The
    notebooks do not depend on it: they resolve every input with :mod:`kit.sources.artefacts`."""
    return checkout_root() or Path.cwd()


def inventory(
    source: str | os.PathLike[str] | Sequence[str | os.PathLike[str]] = DEFAULT_ARTEFACTS,
    *,
    missing_ok: bool = False,
) -> pl.DataFrame:
    """List the artefacts in a folder, glob or list of files, with the kind the kit recognises.

    Relative paths are taken from the current directory, then from the repository root.

    Parameters
    ----------
    source
        A folder (walked recursively, hidden entries skipped), a glob, a file, or a list of them.
    missing_ok
        When true, a source that does not exist gives an empty frame (and a logged warning)
        instead of ``FileNotFoundError``; the start-here notebook uses this before sample data exist.

    Returns
    -------
    polars.DataFrame
        Schema :data:`INVENTORY_SCHEMA`, one row per file, in path order:

        - ``path`` (String): the file, relative to the repo root when inside it (bytes of a name
          that is not valid UTF-8 are shown as ``\\xNN``).
        - ``kind`` (String): one of :data:`ARTEFACT_KINDS`.
        - ``reason`` (String): why the file has this kind (or why it was not recognised).
        - ``size_bytes`` (UInt64): file size in bytes, as stored (compressed if gzipped).

    Raises
    ------
    FileNotFoundError
        A named path, glob or folder matches no file (unless ``missing_ok``).
    """
    items = [source] if isinstance(source, str | os.PathLike) else list(source)
    try:
        files = walk_artefacts(items, base=REPO_ROOT)
    except FileNotFoundError as exc:
        if not missing_ok:
            raise
        log.warning("no artefacts: %s", exc)
        return pl.DataFrame(schema=INVENTORY_SCHEMA)
    rows = [(_display_path(_param_path(f)), *classify_artefact(f), f.stat().st_size) for f in files]
    return pl.DataFrame(rows, schema=INVENTORY_SCHEMA, orient="row")


def _display_names(given: Sequence[str | os.PathLike[str]]) -> dict[str, str]:
    """Path as passed to the notebooks -> the same file named the way the user gave it (the folder
    or file as typed, plus the path inside the folder), for confirm commands the recipient of the
    report can run where the artefacts are. Only paths that differ are listed."""
    out: dict[str, str] = {}
    for item in given:
        typed = os.fspath(item)
        p = Path(typed).expanduser()
        if not p.is_absolute() and not p.exists() and (REPO_ROOT / p).exists():
            p = REPO_ROOT / p
        try:
            found = walk_artefacts([typed], base=REPO_ROOT)
        except (FileNotFoundError, OSError):
            continue
        for f in found:
            if p.is_dir():
                try:
                    shown = os.path.join(typed, os.fspath(f.relative_to(p)))
                except ValueError:
                    shown = os.fspath(f)
            elif p.is_file():
                shown = typed
            else:  # a glob: as it matched, relative to where the user ran the command
                shown = os.fspath(f)
            # the notebooks may name the file relative to the checkout or absolute
            for passed in {_param_path(f), os.fspath(f.resolve())}:
                if passed != shown and _utf8(passed):
                    out[passed] = shown
    return out


def _renamed(finding: Mapping[str, Any], names: Mapping[str, str]) -> dict[str, Any]:
    """A finding whose confirm command, explanation and evidence name the artefacts as
    :func:`_display_names` says (longest paths replaced first)."""
    if not names:
        return dict(finding)
    order = sorted(names, key=len, reverse=True)
    # one pass, longest first, and only whole paths: a relative name inside an absolute one (or a
    # replacement already made) is not replaced again
    pattern = re.compile(
        r"(?<![\w./-])(?:" + "|".join(re.escape(k) for k in order) + r")(?![\w./-])"
    )

    def sub(text: Any) -> Any:
        if not isinstance(text, str):
            return text
        return pattern.sub(lambda m: names[m.group(0)], text)

    out = dict(finding)
    for key in ("confirm", "explanation", "title"):
        out[key] = sub(out.get(key, ""))
    out["evidence"] = {k: sub(v) for k, v in dict(out.get("evidence") or {}).items()}
    out["tables"] = [
        {**t, "rows": [[sub(x) for x in r] for r in t.get("rows") or []]}
        for t in out.get("tables") or []
    ]
    return out
