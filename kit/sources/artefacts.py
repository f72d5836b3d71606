"""Point a notebook at an incident: one ``artefacts`` parameter, every input found by its kind.

Every analysis notebook has an ``artefacts`` parameter (a folder, a glob, a file, or a list of
them) and one parameter per input (``capture``, ``run_json``, ``unbound_conf``...). Its first
code cells call :func:`resolve_inputs`, which:

1. uses the sample data (``data/sample`` of the source checkout) **only when no artefacts are
   given**; artefacts that are given replace the sample entirely (no sample ``run.json`` or
   configuration is ever mixed into another incident's files);
2. recognises each artefact file by its content (:func:`classify`, the same recognition as
   ``dnskit report``) and gives each input the files of its kinds (:data:`INPUT_KINDS`);
3. keeps an input the caller set explicitly, with relative paths taken from the artefacts root
   (the folder given), then from the repository root; never from the kernel's working directory,
   which is wherever JupyterLab or papermill started the kernel;
4. returns absolute paths, so the loaders work from any working directory.

:func:`check_span` then warns when the change or fix time lies outside the data's time span
(which would leave every row with ``phase = null``).
"""

from __future__ import annotations

import dataclasses
import glob
import logging
import os
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl

from kit.errors import KitError, KitWarning

__all__ = [
    "INPUTS_SCHEMA",
    "INPUT_KINDS",
    "REPO_ROOT",
    "SAMPLE",
    "Inputs",
    "check_span",
    "checkout_root",
    "classify",
    "resolve_inputs",
    "sample_dir",
]

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[2]
"""The folder holding the ``kit`` package: the repository root in a source checkout (an editable
install), ``site-packages`` in a wheel install (see :func:`checkout_root`)."""

SAMPLE = "data/sample"
"""The sample incident, relative to the repository root (not shipped in the wheel)."""

INPUT_KINDS: dict[str, tuple[str, ...]] = {
    "capture": ("capture",),
    "coredns_log": ("coredns_log",),
    "unbound_log": ("unbound_log",),
    "metrics": ("metrics_exposition", "prometheus_api_json", "grafana_csv", "grafana_json"),
    "corefile": ("corefile",),
    "unbound_conf": ("unbound_conf",),
    "nsd_conf": ("nsd_conf",),
    "run_json": ("run_json",),
    # issue 18
    "dnstap": ("dnstap",),
    "k8s_snapshot": ("k8s_snapshot",),
    # node evidence (kit.sources.node.read_node_evidence)
    "node_evidence": ("nstat", "conntrack_stats", "ethtool_stats", "ip_link_stats"),
    # other tools' DNS records (kit.sources.zeek.read_zeek_dns, kit.sources.gadget.read_gadget_dns)
    "zeek_dns": ("zeek_dns_log",),
    "gadget_dns": ("gadget_dns",),
}
"""Notebook input parameter -> the artefact kinds (``kit.sources.detect.ArtefactKind`` values) it takes."""

INPUTS_SCHEMA = pl.Schema(
    {
        "parameter": pl.String(),
        "kinds": pl.String(),
        "source": pl.String(),
        "files": pl.UInt32(),
        "paths": pl.List(pl.String()),
    }
)
"""Schema of :attr:`Inputs.table`: one row per input parameter.

- ``parameter`` (String): the notebook parameter.
- ``kinds`` (String): the artefact kinds it takes, comma-separated.
- ``source`` (String): where its value came from: ``given`` (set explicitly), ``artefacts``
  (found among the artefacts), ``sample`` (found in the sample data, no artefacts given) or
  ``none`` (no file of its kinds).
- ``files`` (UInt32): how many files or globs it holds.
- ``paths`` (List of String): those paths, relative to the artefacts root (``Inputs.root``;
  the repository root for the sample) when inside it, else absolute. The notebook receives them
  absolute (``Inputs.values``).
"""

_GLOB_CHARS = frozenset("*?[")


def checkout_root() -> Path | None:
    """The source checkout the kit runs from, or ``None`` when it runs from an installed wheel.

    A checkout is recognised by ``pyproject.toml`` and ``notebooks/`` next to the ``kit`` package.
    """
    if (REPO_ROOT / "pyproject.toml").is_file() and (REPO_ROOT / "notebooks").is_dir():
        return REPO_ROOT
    return None


def sample_dir() -> Path | None:
    """The sample incident (``data/sample`` of the checkout), or ``None`` when there is none."""
    root = checkout_root()
    if root is None or not (root / SAMPLE).is_dir():
        return None
    return root / SAMPLE


def classify(path: str | os.PathLike[str]) -> tuple[str, str]:
    """Say what kind of artefact a file is, from its content (:func:`kit.sources.detect.detect`).

    Returns
    -------
    tuple[str, str]
        ``(kind, reason)``: ``kind`` is a ``kit.sources.detect.ArtefactKind`` value, ``reason`` says why in
        one sentence. A file that cannot be read is ``("unknown", "could not be read: ...")``;
        nothing raises.
    """
    from kit.sources.detect import detect

    try:
        found = detect(path)
    except Exception as exc:  # a broken or unreadable file is reported, never fatal
        log.warning("could not classify %s: %s", path, exc)
        return "unknown", f"could not be read: {type(exc).__name__}: {exc}"
    return str(found.kind.value), str(found.reason)


def _as_list(value: Any) -> list[str]:
    """A parameter value (None, a path, a list of paths) as a list of path strings."""
    if value is None:
        return []
    if isinstance(value, str | os.PathLike):
        text = os.fspath(value)
        return [text] if text != "" else []
    return [os.fspath(v) for v in value]


def _matches(p: Path) -> bool:
    """Whether a path exists, or, when it is a glob, matches at least one file."""
    text = os.fspath(p)
    if _GLOB_CHARS & set(text):
        return any(Path(m).is_file() for m in glob.glob(text, recursive=True))
    return p.exists()


def _anchor(text: str, bases: Sequence[Path], what: str) -> str:
    """An absolute path (or glob) for ``text``: as is when absolute, else under the first base
    where it exists (or matches a file).

    Raises
    ------
    FileNotFoundError
        The path exists under none of the bases (the message names them).
    """
    p = Path(text).expanduser()
    if p.is_absolute():
        if not _matches(p):
            raise FileNotFoundError(f"{what} not found: {text}")
        return os.fspath(p)
    for base in bases:
        if _matches(base / p):
            return os.fspath(base / p)
    if not bases:
        raise FileNotFoundError(
            f"{what} {text!r} is a relative path and the kit runs from an installed package "
            "(no repository root to take it from): give an absolute path"
        )
    shown = " or ".join(os.fspath(b) for b in bases)
    raise FileNotFoundError(
        f"{what} not found: {text} (relative paths are taken from {shown}, never from the "
        "kernel's working directory)"
    )


def _root_of(items: Sequence[str]) -> Path | None:
    """The artefacts root: the folder given, or the deepest folder holding every item given."""
    dirs = []
    for text in items:
        p = Path(text)
        if _GLOB_CHARS & set(text):
            parts = []
            for part in p.parts:
                if _GLOB_CHARS & set(part):
                    break
                parts.append(part)
            p = Path(*parts) if parts else Path("/")
            dirs.append(p)
        else:
            dirs.append(p if p.is_dir() else p.parent)
    if not dirs:
        return None
    return Path(os.path.commonpath([os.fspath(d) for d in dirs]))


@dataclass(frozen=True)
class Inputs:
    """The inputs of one notebook, resolved (see :func:`resolve_inputs`).

    Attributes
    ----------
    artefacts : tuple[str, ...]
        The artefacts looked at (absolute folders, files or globs); the sample folder when none
        were given.
    sample : bool
        True when no artefacts were given and the sample data is used.
    root : pathlib.Path | None
        The artefacts root relative input paths were taken from.
    paths : Mapping[str, tuple[str, ...] | None]
        Input parameter -> absolute paths (``None`` when no file of its kinds was found).
    table : polars.DataFrame
        :data:`INPUTS_SCHEMA`, one row per input: where each came from.
    """

    artefacts: tuple[str, ...]
    sample: bool
    root: Path | None
    paths: Mapping[str, tuple[str, ...] | None]
    table: pl.DataFrame

    def __getitem__(self, name: str) -> list[str] | None:
        """The paths of input ``name`` as a list (what the loaders take), or ``None``."""
        found = self.paths[name]
        return None if found is None else list(found)

    def values(self, *names: str) -> tuple[list[str] | None, ...]:
        """The paths of several inputs, in the order named (``capture, run_json = ...``)."""
        return tuple(self[n] for n in names)

    def _repr_html_(self) -> str:
        import html

        from kit.tables import frame_html

        origin = "the sample data" if self.sample else "the artefacts"
        where = html.escape(", ".join(self.artefacts))
        root = html.escape(os.fspath(self.root)) if self.root is not None else "(none)"
        return (
            f"<p>Inputs from {origin}: <code>{where}</code>; paths relative to "
            f"<code>{root}</code></p>" + frame_html(self.table)
        )

    def __repr__(self) -> str:
        origin = "sample data" if self.sample else "artefacts"
        return f"Inputs from the {origin} {list(self.artefacts)} (root {self.root}):\n{self.table}"


def resolve_inputs(
    artefacts: str | os.PathLike[str] | Sequence[str | os.PathLike[str]] | None = None,
    *,
    required: Iterable[str] = (),
    **inputs: str | os.PathLike[str] | Sequence[str | os.PathLike[str]] | None,
) -> Inputs:
    """Find a notebook's inputs among the artefacts (or in the sample data when none are given).

    Parameters
    ----------
    artefacts
        The incident's folder (walked recursively), glob, file, or a list of them. ``None`` or
        empty: the sample data (``data/sample`` of the checkout). Relative paths are taken from
        the repository root (that is how ``dnskit report`` passes them); a wheel install needs
        absolute paths.
    required
        Input names that must get at least one file (else :class:`KitError`).
    **inputs
        Each input parameter of the notebook (a name of :data:`INPUT_KINDS`) with its value: a
        value that is set (a path, a glob or a non-empty list) is kept, with relative paths taken
        from the artefacts root, then the repository root; ``None`` or ``[]`` means "the files of
        this input's kinds among the artefacts".

    Returns
    -------
    Inputs
        Absolute paths for every input, and a table saying where each came from.

    Raises
    ------
    KitError
        No artefacts given and no sample data (an installed wheel), or a required input has no
        file of its kinds among the artefacts.
    FileNotFoundError
        An artefact or an explicitly given input does not exist.
    TypeError
        An input name is not one of :data:`INPUT_KINDS`.
    """
    unknown = sorted(set(inputs) - set(INPUT_KINDS))
    if unknown:
        raise TypeError(
            f"not an input parameter: {', '.join(unknown)} (inputs: {', '.join(INPUT_KINDS)})"
        )
    repo = checkout_root()
    given = _as_list(artefacts)
    sample = not given
    if sample:
        sd = sample_dir()
        if sd is None:
            raise KitError(
                "no artefacts given and no sample data here (the sample ships with the source "
                "checkout, not the package): set the artefacts parameter to your incident's "
                "folder, e.g. artefacts = '/path/to/incident'"
            )
        items = [os.fspath(sd)]
        root: Path | None = repo
    else:
        bases = [repo] if repo is not None else []
        items = [_anchor(t, bases, "artefact") for t in given]
        root = _root_of(items)

    input_bases = [b for b in (root, repo) if b is not None]
    input_bases = list(dict.fromkeys(input_bases))  # the sample's root is the repo root
    files: list[tuple[str, str]] | None = None
    req = set(required)
    paths: dict[str, tuple[str, ...] | None] = {}
    rows = []
    for name, value in inputs.items():
        kinds = INPUT_KINDS[name]
        explicit = _as_list(value)
        if explicit:
            found = tuple(_anchor(t, input_bases, f"{name} input") for t in explicit)
            source = "given"
        else:
            if files is None:
                files = _classified(items)
            found = tuple(path for path, kind in files if kind in kinds)
            source = ("sample" if sample else "artefacts") if found else "none"
        if not found and name in req:
            where = "the sample data" if sample else ", ".join(items)
            raise KitError(
                f"no {' or '.join(kinds)} file among the artefacts ({where}): this notebook needs "
                f"one; add it to the artefacts or set {name} = ['/path/to/file']"
            )
        paths[name] = found or None
        rows.append((name, ", ".join(kinds), source, len(found), [_shown(f, root) for f in found]))
    table = pl.DataFrame(rows, schema=INPUTS_SCHEMA, orient="row")
    for row in table.iter_rows(named=True):
        log.info("input %s (%s): %s", row["parameter"], row["source"], row["paths"])
    return Inputs(tuple(items), sample, root, paths, table)


def _shown(path: str, root: Path | None) -> str:
    """A path as the inputs table shows it: relative to the artefacts root when inside it."""
    if root is not None:
        try:
            return os.fspath(Path(path).relative_to(root))
        except ValueError:
            pass
    return path


def _classified(items: Sequence[str]) -> list[tuple[str, str]]:
    """Every artefact file under ``items`` (folders walked recursively) with its kind."""
    from kit.sources._io import walk_artefacts

    return [(os.fspath(f.resolve()), classify(f)[0]) for f in walk_artefacts(list(items))]


# ---------------------------------------------------------------------------------------------
# the change time against the data
# ---------------------------------------------------------------------------------------------

_TIME_COLUMNS = ("ts", "ts_first", "first_ts", "last_ts", "ts_syn")


def _spans(obj: Any, seen: set[int]) -> Iterable[tuple[datetime, datetime]]:
    """(first, last) UTC times of every time column in a frame or in the frames of a dataclass."""
    if obj is None or id(obj) in seen:
        return
    seen.add(id(obj))
    if isinstance(obj, pl.DataFrame):
        for col in _TIME_COLUMNS:
            if col in obj.columns and isinstance(obj.schema[col], pl.Datetime):
                s = obj[col].drop_nulls()
                if s.len():
                    lo, hi = s.min(), s.max()
                    if isinstance(lo, datetime) and isinstance(hi, datetime):
                        yield _utc(lo), _utc(hi)
        return
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        for f in dataclasses.fields(obj):
            yield from _spans(getattr(obj, f.name), seen)


def _utc(t: datetime) -> datetime:
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)


def _iso(t: datetime) -> str:
    return _utc(t).isoformat().replace("+00:00", "Z")


def check_span(timeline: Any, *data: Any) -> str:
    """Warn when the timeline's change or fix time lies outside the data's time span.

    A change time from another day (a ``run.json`` of another run, a mistyped date) puts every
    row of the data in no phase (``phase = null``) and every before/after comparison on one side;
    this says so instead of letting the charts and tables come out empty.

    Parameters
    ----------
    timeline
        A :class:`kit.sources.timeline.Timeline` (``change_time``, ``fix_time``, ``source``).
    *data
        What the notebook loaded: frames with a ``ts`` (or ``ts_first``, ``first_ts``,
        ``last_ts``) column, or dataclasses holding them (a capture, a log, the findings inputs);
        ``None`` is skipped.

    Returns
    -------
    str
        One line saying what is wrong (also issued as a :class:`kit.KitWarning`, which a notebook
        shows under the cell), or ``""`` when the times fall inside the data or are not known.
    """
    times: dict[str, datetime] = {}
    for label, attr in (("change time", "change_time"), ("fix time", "fix_time")):
        t = getattr(timeline, attr, None)
        if isinstance(t, datetime):
            times[label] = t
    if not times:
        return ""
    seen: set[int] = set()
    spans = [s for obj in data for s in _spans(obj, seen)]
    if not spans:
        return ""
    lo = min(s[0] for s in spans)
    hi = max(s[1] for s in spans)
    outside = [f"{k} {_iso(t)}" for k, t in times.items() if not lo <= _utc(t) <= hi]
    if not outside:
        return ""
    source = getattr(timeline, "source", None)
    origin = f" (from {source})" if source else ""
    message = (
        f"{' and '.join(outside)}{origin} outside the data, which runs from {_iso(lo)} to "
        f"{_iso(hi)}: no row falls on both sides of it, and rows outside the timeline's phases "
        "have phase = null. Set change_time (and fix_time) to times inside the data, or leave "
        "them unset when the change is not known."
    )
    warnings.warn(message, KitWarning, stacklevel=2)
    return message


def forward_settings(
    corefile: str | os.PathLike[str] | Sequence[str | os.PathLike[str]] | None = None,
    unbound_conf: str | os.PathLike[str] | Sequence[str | os.PathLike[str]] | None = None,
) -> pl.DataFrame:
    """The forward settings of every Corefile and unbound.conf given, one frame.

    Parameters
    ----------
    corefile, unbound_conf
        A file, a folder or a glob, or a list of them (``None``: none of that kind). Folders give
        their Corefiles, and their ``*.conf`` files for unbound.

    Returns
    -------
    polars.DataFrame
        :data:`kit.sources.corefile.FORWARD_SCHEMA`: the rows of
        ``read_corefile(...).forward_settings()`` for each Corefile, then those of
        ``read_unbound_conf`` for each unbound.conf, in the order given (empty when none).
    """
    from kit.sources._io import expand_sources
    from kit.sources.corefile import FORWARD_SCHEMA, read_corefile
    from kit.sources.unbound import read_unbound_conf

    def paths(x: Any) -> list[str]:
        if x is None:
            return []
        return [os.fspath(x)] if isinstance(x, str | os.PathLike) else [os.fspath(i) for i in x]

    parts = [
        read_corefile(f).forward_settings()
        for f in (expand_sources(paths(corefile), what="Corefile") if paths(corefile) else [])
    ]
    confs = paths(unbound_conf)
    if confs:
        parts += [
            read_unbound_conf(f)
            for f in expand_sources(confs, suffixes=(".conf",), what="unbound.conf")
        ]
    return pl.concat(parts) if parts else pl.DataFrame(schema=FORWARD_SCHEMA)
