"""What notebook 06 loads: :class:`Inputs` and :func:`load_inputs` (every artefact kind, warnings
kept per input, an unreadable file recorded as :class:`Unreadable` instead of failing the whole
load), :func:`load_forward` (forward settings, file by file) and :func:`edns_buffer_sizes`.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import polars as pl

from kit.errors import KitError
from kit.sources.artefacts import forward_settings
from kit.sources.timeline import Timeline

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    pass


@dataclass(frozen=True)
class Unreadable:
    """One input file that could not be read, and why.

    Attributes
    ----------
    kind : str
        The input it belongs to (:data:`INPUT_KINDS`: ``capture``, ``coredns``, ``unbound``,
        ``metrics``, ``forward``, ``timeline``).
    file : str
        The file as given (or the folder/glob when the loader did not name one).
    reason : str
        The loader's error message.
    """

    kind: str
    file: str
    reason: str

    @property
    def text(self) -> str:
        """``<file> could not be read (<reason>)``."""
        return f"{self.file} could not be read ({self.reason})"


INPUT_KINDS: tuple[str, ...] = (
    "capture",
    "coredns",
    "unbound",
    "metrics",
    "forward",
    "timeline",
    "node",
)
"""The inputs of :class:`Inputs`, as named in :attr:`Unreadable.kind` and by the checks' needs."""


EDNS_SCHEMA = pl.Schema({"source": pl.String, "line_no": pl.Int64, "size": pl.Int64})
"""Schema of :func:`edns_buffer_sizes`: file, 1-based line, configured EDNS buffer size (bytes)."""


@dataclass(frozen=True)
class Inputs:
    """Loaded inputs for :func:`run_on` (each ``None`` when not given).

    Attributes
    ----------
    capture, coredns, unbound, metrics, forward, timeline
        As the parameters of :func:`run`.
    notes : Mapping[str, str]
        Input name (``capture``, ``coredns``...) -> the warnings its loader gave, joined.
    unreadable : tuple[Unreadable, ...]
        Files that could not be read (the others of their kind were loaded): the checks that need
        that kind say "not checked: <file> could not be read (<reason>)".
    edns_buffer : polars.DataFrame | None
        The EDNS buffer sizes the configs set (:func:`edns_buffer_sizes`), ``None`` when no
        config was given.
    """

    capture: Any = None
    coredns: Any = None
    unbound: Any = None
    metrics: pl.DataFrame | None = None
    forward: pl.DataFrame | None = None
    timeline: Timeline | None = None
    notes: Mapping[str, str] = field(default_factory=dict)
    unreadable: tuple[Unreadable, ...] = ()
    edns_buffer: pl.DataFrame | None = None
    node: Any = None  # kit.sources.node.NodeCounters (nstat, conntrack -S, ethtool -S, ip -s link)

    def unreadable_by_kind(self) -> dict[str, list[Unreadable]]:
        """:attr:`unreadable` grouped by kind."""
        out: dict[str, list[Unreadable]] = {}
        for u in self.unreadable:
            out.setdefault(u.kind, []).append(u)
        return out

    def given(self) -> pl.DataFrame:
        """Which inputs are loaded, how big they are and what their loaders warned about.

        Columns ``input`` (String), ``rows`` (Int64, null when not given), ``notes`` (String).
        """
        keys = ["capture", "coredns", "coredns", "unbound", "metrics", "forward", "node"]
        rows = [
            (
                "capture (DNS transactions)",
                None if self.capture is None else self.capture.dns.height,
            ),
            (
                "CoreDNS log (queries)",
                None if self.coredns is None else self.coredns.queries.height,
            ),
            (
                "CoreDNS log (errors)",
                None if self.coredns is None else self.coredns.errors.height,
            ),
            (
                "unbound log (replies)",
                None if self.unbound is None else self.unbound.queries.height,
            ),
            ("metrics (samples)", None if self.metrics is None else self.metrics.height),
            ("forward settings", None if self.forward is None else self.forward.height),
            ("node evidence (counters)", None if self.node is None else self.node.counters.height),
        ]
        df = pl.DataFrame(rows, schema={"input": pl.String, "rows": pl.Int64}, orient="row")
        bad = self.unreadable_by_kind()
        notes = [
            " | ".join(
                [u.text for u in bad.get(k, [])] + ([self.notes[k]] if self.notes.get(k) else [])
            )
            for k in keys
        ]
        return df.with_columns(notes=pl.Series(notes, dtype=pl.String))


def _paths(x: str | os.PathLike[str] | Sequence[str | os.PathLike[str]] | None) -> list[str]:
    if x is None:
        return []
    if isinstance(x, str | os.PathLike):
        return [os.fspath(x)]
    return [os.fspath(p) for p in x]


def _error_file(err: BaseException, default: str) -> str:
    """The file to name: ``default`` when it is a file (an error in a file it includes is still
    its error), else the file the error names."""
    if os.path.isfile(default):
        return default
    path = getattr(err, "path", None) or getattr(err, "filename", None)
    return os.fspath(path) if path else default


def _reason(err: BaseException, file: str) -> str:
    text = str(err) or type(err).__name__
    # the loaders' messages start with the file; the reason is what follows
    for prefix in (f"{file}: ", f"{os.path.basename(file)}: "):
        if text.startswith(prefix):
            return text[len(prefix) :]
    return text


def _load_each(kind: str, files: list[str], fn: Any, unreadable: list[Unreadable]) -> Any:
    """``fn(files)``; when that fails, ``fn`` on each file alone to find the unreadable ones,
    then ``fn`` on the readable rest (``None`` when none is)."""
    try:
        return fn(files)
    except (KitError, OSError) as err:
        if len(files) == 1:
            f = _error_file(err, files[0])
            unreadable.append(Unreadable(kind, f, _reason(err, f)))
            log.warning("%s: %s could not be read: %s", kind, f, err)
            return None
    good = []
    for f in files:
        try:
            fn([f])
        except (KitError, OSError) as err:
            name = _error_file(err, f)
            unreadable.append(Unreadable(kind, name, _reason(err, name)))
            log.warning("%s: %s could not be read: %s", kind, name, err)
        else:
            good.append(f)
    return fn(good) if good else None


def load_forward(
    corefile: Sequence[str] | str | None = None,
    unbound_conf: Sequence[str] | str | None = None,
) -> tuple[pl.DataFrame | None, list[Unreadable]]:
    """Forward settings of every readable Corefile and unbound.conf, and the unreadable ones.

    :func:`kit.sources.artefacts.forward_settings` on all files; when one cannot be read, each
    file on its own, so one broken config does not hide the others.

    Returns
    -------
    tuple[polars.DataFrame | None, list[Unreadable]]
        ``FORWARD_SCHEMA`` frame (``None`` when no config was given or none could be read) and
        the files that could not be read (kind ``forward``).
    """
    bad: list[Unreadable] = []
    cf, uc = _paths(corefile), _paths(unbound_conf)
    if not cf and not uc:
        return None, bad
    parts = []
    if cf:
        parts.append(_load_each("forward", cf, lambda fs: forward_settings(fs, None), bad))
    if uc:
        parts.append(_load_each("forward", uc, lambda fs: forward_settings(None, fs), bad))
    frames = [p for p in parts if p is not None]
    return (pl.concat(frames) if frames else None), bad


_EDNS_RE = (
    ("edns-buffer-size", r"^\s*edns-buffer-size:\s*\"?(\d+)\"?\s*(?:#.*)?$"),
    ("bufsize", r"^\s*bufsize\s+(\d+)\s*(?:#.*)?$"),
)


def edns_buffer_sizes(files: Sequence[str]) -> pl.DataFrame:
    """The EDNS buffer sizes configs set: unbound ``edns-buffer-size: N``, CoreDNS ``bufsize N``.

    Only regular files are read (at most 16 MiB each, as text with undecodable bytes replaced);
    a file that cannot be read is skipped (:func:`load_forward` reports it).

    Returns
    -------
    polars.DataFrame
        :data:`EDNS_SCHEMA`, one row per setting, in file order.
    """
    import re

    pats = [re.compile(p) for _, p in _EDNS_RE]
    rows = []
    for f in files:
        try:
            if not os.path.isfile(f):
                continue
            with open(f, "rb") as fh:
                raw = fh.read(16 * 1024 * 1024)
        except OSError:
            continue
        if raw[:2] == b"\x1f\x8b":
            continue  # gzip: the loaders read those; a setting in one is not looked for here
        for n, line in enumerate(raw.decode("utf-8", "replace").splitlines(), 1):
            for pat in pats:
                m = pat.match(line)
                if m:
                    rows.append((f, n, int(m.group(1))))
    return pl.DataFrame(rows, schema=EDNS_SCHEMA, orient="row")


def load_inputs(
    *,
    capture: Sequence[str] | str | None = None,
    coredns_log: Sequence[str] | str | None = None,
    unbound_log: Sequence[str] | str | None = None,
    metrics: Sequence[str] | str | None = None,
    corefile: Sequence[str] | str | None = None,
    unbound_conf: Sequence[str] | str | None = None,
    run_json: Sequence[str] | str | None = None,
    change_time: str | None = None,
    fix_time: str | None = None,
    node_evidence: Sequence[str] | str | None = None,
) -> Inputs:
    """Load whichever artefacts are given (paths, lists, globs or folders; ``None``/empty: skip).

    Corefiles and unbound.conf files may be globs too (``"configs/unbound-*.conf"``). Each is
    read with its loader (``kit.read_capture``, ``kit.read_coredns_log``,
    ``kit.read_unbound_log``, ``kit.read_metrics``, ``kit.read_corefile(...).forward_settings()``,
    ``kit.read_unbound_conf``, :func:`kit.sources.timeline.timeline`). Loader warnings are kept
    in :attr:`Inputs.notes` (and shown by :meth:`Inputs.given`).

    A file that cannot be read (a :class:`kit.errors.KitError` or ``OSError`` from its loader)
    does not stop the others: it is recorded in :attr:`Inputs.unreadable` (kind, file, reason;
    logged as a warning), its kind is loaded from the other files (``None`` when none is
    readable), and the checks that need it say "not checked" (:func:`kit.findings.run_checks`).
    Errors in the options themselves (``change_time`` not a time) still raise.
    """
    import kit
    from kit.sources.timeline import timeline as make_timeline

    caps = _paths(capture)
    cd = _paths(coredns_log)
    ub = _paths(unbound_log)
    mt = _paths(metrics)
    runs = _paths(run_json)
    notes: dict[str, str] = {}
    bad: list[Unreadable] = []
    forward, bad_forward = load_forward(corefile, unbound_conf)
    bad += bad_forward
    configs = _paths(corefile) + _paths(unbound_conf)
    edns = None
    if configs:
        import glob

        files: list[str] = []
        for c in configs:
            if os.path.isdir(c):
                files += sorted(os.path.join(c, n) for n in os.listdir(c))
            elif os.path.exists(c):
                files.append(c)
            else:
                files += sorted(glob.glob(c, recursive=True))
        edns = edns_buffer_sizes(files)

    def load(name: str, files: list[str], fn: Any, **kwargs: Any) -> Any:
        # loader warnings (rejected lines, dropped duplicates) are kept as notes for the table
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            value = _load_each(name, files, lambda fs: fn(fs, **kwargs), bad)
        if caught:
            notes[name] = " | ".join(str(w.message) for w in caught)
            for w in caught:
                log.info("%s: %s", name, w.message)
        return value

    tl = None
    try:
        tl = make_timeline(change_time=change_time, fix_time=fix_time, run_json=runs or None)
    except (KitError, OSError) as err:
        if change_time is not None or fix_time is not None or not runs:
            raise
        f = _error_file(err, runs[0])
        bad.append(Unreadable("timeline", f, _reason(err, f)))
        tl = make_timeline(change_time=change_time, fix_time=fix_time)
    return Inputs(
        capture=load("capture", caps, kit.read_capture, progress=False) if caps else None,
        coredns=load("coredns", cd, kit.read_coredns_log) if cd else None,
        unbound=load("unbound", ub, kit.read_unbound_log) if ub else None,
        metrics=load("metrics", mt, kit.read_metrics, strict=False) if mt else None,
        forward=forward,
        timeline=tl,
        notes=notes,
        unreadable=tuple(bad),
        edns_buffer=edns,
        node=load("node", _paths(node_evidence), kit.read_node_evidence)
        if _paths(node_evidence)
        else None,
    )
