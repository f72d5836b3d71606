"""Run the guided notebooks on a set of artefacts and render one self-contained HTML report.

The pipeline (one code path for ``dnskit report``, the notebook tests and library callers):

1. every artefact (files, globs, folders; folders are walked recursively) is classified by content
   with :func:`classify_artefact` (``kit.sources.detect.detect``);
2. each notebook (jupytext ``py:percent`` source, read in memory) declares its inputs in its
   papermill ``parameters`` cell: a parameter named after an entry of :data:`INPUT_PARAMETERS`
   receives the list of artefacts of the matching kinds. A notebook whose required inputs have no
   artefact is skipped (and the report says so); an input whose annotation allows ``None`` is
   optional and receives ``None`` when no artefact matches;
3. papermill executes each notebook with kernel ``python3`` (``cwd`` = the checkout's root, or the
   current directory for a wheel install; the notebooks resolve every input with
   :mod:`kit.sources.artefacts` and do not depend on it), after a hidden set-up cell that switches Altair to static SVG (``kit.charts.use_report_renderer()``).
   By default the notebooks run one after the other in one shared kernel, each from an empty
   namespace (imports and the SVG renderer are paid once); ``jobs`` spreads them over worker
   processes, ``share_kernel=False`` gives each its own kernel;
4. nbconvert renders all executed notebooks with the kit's ``dnskit`` template (code hidden, no
   ``<script>`` loaded from anywhere, a Content-Security-Policy that forbids scripts and network
   loads), and the report puts a summary on top: findings first, then the notebooks' status, the
   artefacts used and ignored (and why), and the parameters.

Findings reach the top of the report through :func:`emit_findings`, which a notebook calls with the
findings it computed: it displays them with the :data:`FINDINGS_MIMETYPE` media type, which the
report collects from the executed notebooks.

When a notebook fails, its executed copy (with papermill's error banner and the traceback) is still
rendered, and :attr:`ReportResult.ok` is false; ``dnskit report`` then exits with status 1.
"""

from __future__ import annotations

import ast
import copy
import dataclasses
import datetime as dt
import glob
import html
import io
import json
import logging
import os
import re
import tempfile
import time
import tokenize
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from kit.sources._io import walk_artefacts
from kit.sources.artefacts import (
    INPUT_KINDS,
    REPO_ROOT,
    SAMPLE,
    checkout_root,
    classify,
    sample_dir,
)
from kit.sources.detect import ArtefactKind
from kit.tables import TABLE_MIMETYPE

log = logging.getLogger(__name__)

NOTEBOOK_DIR = REPO_ROOT / "notebooks"
"""The checkout's notebooks (the source of truth); :func:`default_notebooks` also finds the
copies a wheel ships (``kit.report.notebooks.notebook_dir``)."""

DEFAULT_ARTEFACTS = SAMPLE
"""Artefacts used when none are given (relative to the checkout's root; not in the wheel)."""

TEMPLATE_DIR = Path(__file__).resolve().parents[1] / "templates"
TEMPLATE_NAME = "dnskit"

FINDINGS_MIMETYPE = "application/vnd.dnskit.findings+json"
"""Media type of the display output that carries findings to the top of the report."""

SETUP_TAG = "dnskit-setup"
KERNEL_NAME = "python3"

ARTEFACT_KINDS: tuple[str, ...] = tuple(k.value for k in ArtefactKind)
"""Kinds an artefact can be classified as (the values of ``kit.sources.detect.ArtefactKind``)."""

INPUT_PARAMETERS: dict[str, tuple[str, ...]] = INPUT_KINDS
"""Notebook parameter name -> artefact kinds it receives (as a list of paths) from the report
(:data:`kit.sources.artefacts.INPUT_KINDS`: a notebook run by hand finds them the same way)."""

ARTEFACTS_PARAMETER = "artefacts"
"""A notebook parameter with this name receives every artefact path given to the report."""

ARTEFACT_SCHEMA = pl.Schema(
    {
        "path": pl.String(),
        "kind": pl.String(),
        "reason": pl.String(),
        "used": pl.Boolean(),
        "used_by": pl.List(pl.String()),
        "why": pl.String(),
    }
)
"""Schema of :attr:`ReportResult.artefacts` (see :func:`render`)."""

INVENTORY_SCHEMA = pl.Schema(
    {
        "path": pl.String,
        "kind": pl.String,
        "reason": pl.String,
        "size_bytes": pl.UInt64,
    }
)
"""Schema of :func:`inventory`."""

_SKIPPED_CELL_TYPES = frozenset({"raw"})
_SCRIPT = re.compile(r"<script\b.*?(</script\s*>|\Z)", re.IGNORECASE | re.DOTALL)
_SVG_PROLOG = re.compile(r"\A\s*(<\?xml[^>]*\?>\s*)?(<!DOCTYPE[^>]*>\s*)?", re.IGNORECASE)


# ---------------------------------------------------------------------------------------------
# artefacts
# ---------------------------------------------------------------------------------------------


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


# ---------------------------------------------------------------------------------------------
# notebooks and their parameters
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NotebookParameter:
    """One assignment of a notebook's ``parameters`` cell.

    Attributes
    ----------
    name : str
        The variable.
    annotation : str | None
        The type annotation as written (``None`` when the assignment is not annotated).
    default : str
        The default value's source text.
    help : str
        The trailing comment, without ``#``.
    line : int
        1-based line inside the parameters cell.
    """

    name: str
    annotation: str | None
    default: str
    help: str
    line: int

    @property
    def optional(self) -> bool:
        """Whether the annotation allows ``None`` (an optional input)."""
        if self.annotation is None:
            return False
        return bool(re.search(r"\bNone\b|\bOptional\[", self.annotation))


def read_notebook(path: str | os.PathLike[str]) -> Any:
    """Read a jupytext ``py:percent`` notebook (or an ``.ipynb``) into a ``NotebookNode``.

    A kernelspec (``python3``) is added when the file has none, so papermill can inject parameters.

    Raises
    ------
    FileNotFoundError
        The file does not exist.
    """
    import jupytext

    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"notebook not found: {os.fsdecode(p)}")
    nb = jupytext.read(p) if p.suffix != ".py" else jupytext.read(p, fmt="py:percent")
    nb.metadata.setdefault(
        "kernelspec", {"name": KERNEL_NAME, "display_name": "Python 3", "language": "python"}
    )
    nb.metadata.setdefault("language_info", {"name": "python"})
    return nb


def notebook_parameters(nb_or_path: Any) -> list[NotebookParameter]:
    """The parameters declared in a notebook's cell tagged ``parameters``.

    Parameters
    ----------
    nb_or_path
        A ``NotebookNode`` or the path of a notebook (see :func:`read_notebook`).

    Returns
    -------
    list[NotebookParameter]
        In the order written; empty when no cell is tagged ``parameters``.

    Raises
    ------
    SyntaxError
        The parameters cell is not valid Python.
    """
    nb = read_notebook(nb_or_path) if isinstance(nb_or_path, str | os.PathLike) else nb_or_path
    cell = next((c for c in nb.cells if "parameters" in c.metadata.get("tags", [])), None)
    if cell is None:
        return []
    source = cell.source
    comments: dict[int, str] = {}
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.COMMENT:
            comments[tok.start[0]] = tok.string.lstrip("#").strip()
    out: list[NotebookParameter] = []
    for node in ast.parse(source).body:
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            out.append(
                NotebookParameter(
                    node.target.id,
                    ast.unparse(node.annotation),
                    ast.unparse(node.value) if node.value is not None else "",
                    comments.get(node.lineno, ""),
                    node.lineno,
                )
            )
        elif isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    out.append(
                        NotebookParameter(
                            target.id,
                            None,
                            ast.unparse(node.value),
                            comments.get(node.lineno, ""),
                            node.lineno,
                        )
                    )
    return out


PARAMETERS_SCHEMA = pl.Schema(
    {
        "notebook": pl.String(),
        "parameter": pl.String(),
        "type": pl.String(),
        "default": pl.String(),
        "help": pl.String(),
        "input_kinds": pl.List(pl.String()),
    }
)
"""Schema of :func:`parameters_table`."""


def parameters_table(
    notebooks: Sequence[str | os.PathLike[str]] | None = None,
) -> pl.DataFrame:
    """Every parameter of the kit's notebooks: what ``-p NAME VALUE`` can set in ``dnskit report``.

    Parameters
    ----------
    notebooks
        Notebook files; ``None`` means :func:`default_notebooks`.

    Returns
    -------
    polars.DataFrame
        Schema :data:`PARAMETERS_SCHEMA`, one row per parameter, in notebook then cell order:

        - ``notebook`` (String): the notebook's file stem.
        - ``parameter`` (String): the parameter's name.
        - ``type`` (String): its annotation as written (empty when not annotated).
        - ``default`` (String): the default's source text (paths are relative to the repo root).
        - ``help`` (String): the trailing comment.
        - ``input_kinds`` (List of String): artefact kinds the report passes to it, empty when it
          is not an artefact input (``artefacts`` receives every artefact: ``["*"]``).

    Raises
    ------
    FileNotFoundError
        A notebook does not exist.
    """
    paths = default_notebooks() if notebooks is None else [Path(n) for n in notebooks]
    rows = []
    for path in paths:
        for prm in notebook_parameters(path):
            kinds = (
                ["*"]
                if prm.name == ARTEFACTS_PARAMETER
                else list(INPUT_PARAMETERS.get(prm.name, ()))
            )
            rows.append((path.stem, prm.name, prm.annotation or "", prm.default, prm.help, kinds))
    return pl.DataFrame(rows, schema=PARAMETERS_SCHEMA, orient="row")


def default_notebooks() -> list[Path]:
    """The kit's notebooks (``notebooks/*.py``, or the copies a wheel ships) in name order."""
    from kit.report.notebooks import default_notebooks as found

    return found()


# ---------------------------------------------------------------------------------------------
# findings hand-over (called from notebooks)
# ---------------------------------------------------------------------------------------------


def _finding_dict(f: Any) -> dict[str, Any]:
    """Turn a finding (dataclass, mapping or object) into the JSON the report reads.

    Scalar evidence becomes display text (``evidence``: name -> text, durations with units and
    times to the millisecond, see :func:`kit.tables.format_cell`); each evidence frame becomes a
    small table of display texts (``tables``: ``name``, ``columns``, ``aligns``, ``rows``,
    ``more``), never "frame of N rows".
    """
    from kit.findings import ROLE_OF
    from kit.tables import format_cell, frame_cells

    if isinstance(f, Mapping):
        raw: dict[str, Any] = dict(f)
    elif dataclasses.is_dataclass(f) and not isinstance(f, type):
        raw = {fld.name: getattr(f, fld.name) for fld in dataclasses.fields(f)}
    else:
        raw = {k: getattr(f, k) for k in dir(f) if not k.startswith("_")}
    evidence = raw.get("evidence")
    if isinstance(evidence, Mapping):
        items = [(str(k), v) for k, v in evidence.items()]
    elif evidence is None:
        items = []
    else:
        items = [("evidence", evidence)]
    shown: dict[str, str] = {}
    tables: list[dict[str, Any]] = []
    for name, v in items:
        if isinstance(v, pl.DataFrame):
            columns, aligns, rows, more = frame_cells(v, max_rows=EVIDENCE_ROWS)
            tables.append(
                {"name": name, "columns": columns, "aligns": aligns, "rows": rows, "more": more}
            )
        else:
            shown[name] = format_cell(v, name)
    fid = str(raw.get("id", ""))
    return {
        "id": fid,
        "title": str(raw.get("title", "")),
        "severity": str(raw.get("severity", "")),
        "role": str(raw.get("role") or ROLE_OF.get(fid, "")),
        "explanation": str(raw.get("explanation", raw.get("summary", ""))),
        "evidence": shown,
        "tables": tables,
        "confirm": str(raw.get("confirm", raw.get("command", ""))),
    }


EVIDENCE_ROWS = 5
"""Rows of an evidence frame shown with its finding at the top of the report."""


def _summary_payload(findings: Any) -> tuple[dict[str, Any] | None, str]:
    """The summary card's data and headline chart (SVG) for a :class:`kit.findings.Verdict`;
    ``(None, "")`` for a plain list of findings (no inputs to summarise)."""
    inputs = getattr(findings, "inputs", None)
    if inputs is None:
        return None, ""
    import kit.findings as kf

    summary = kf.summarize(findings)
    svg = ""
    try:
        from kit.charts import headline_chart
        from kit.findings import headline_series, infer_upstreams

        options = getattr(findings, "options", {}) or {}
        ups = options.get("upstreams") or infer_upstreams(inputs.capture, inputs.forward)
        series, title = headline_series(inputs, ups)
        if series.height:
            tl = inputs.timeline
            chart = headline_chart(
                series,
                tl.change_time if tl is not None else None,
                tl.fix_time if tl is not None else None,
                title=title,
                threshold_s=float(options.get("slow_threshold_s", 1.0)),
            )
            buf = io.StringIO()
            chart.save(buf, format="svg")
            svg = _SVG_PROLOG.sub("", buf.getvalue())
    except Exception as exc:  # the card without its chart is still the card
        log.warning("headline chart not drawn: %s: %s", type(exc).__name__, exc)
    return kf.json_value(summary), svg


def emit_findings(findings: Iterable[Any]) -> None:
    """Display findings in a notebook so the report shows them first.

    Call it once in the findings notebook with the findings computed there (for example
    ``kit.report.emit_findings(kit.findings.run_on(inputs))``). In the notebook the findings show
    as a table; the report also lifts them, escaped, to its top, grouped by role. When
    ``findings`` is a :class:`kit.findings.Verdict` (what ``run_on`` returns), the summary card
    (cause, impact, where, when, fix, confidence, coverage and the headline chart) goes with them.

    Parameters
    ----------
    findings
        Findings as dataclasses, mappings or objects with the attributes ``id``, ``title``,
        ``severity``, ``role`` (optional), ``explanation`` (or ``summary``), ``evidence`` (a
        mapping of names to values; frames become small tables) and ``confirm`` (or
        ``command``): the command or query that confirms it.
    """
    from IPython.display import display

    summary, svg = _summary_payload(findings)
    items = [_finding_dict(f) for f in findings]
    table = _cards_html(items)
    text = "\n".join(f"[{f['severity']}] {f['id']}: {f['title']}" for f in items) or "no findings"
    payload: dict[str, Any] = {"findings": items}
    if summary is not None:
        payload["summary"] = summary
        payload["chart_svg"] = svg
    display({FINDINGS_MIMETYPE: payload, "text/html": table, "text/plain": text}, raw=True)


def setup_kernel() -> None:
    """Prepare a kernel for a static report (called by the hidden first cell :func:`render` adds).

    Switches Altair to static SVG rendered by vl-convert, with no network, through
    ``kit.charts.use_report_renderer()`` when it exists, else Altair's ``svg`` renderer; and has
    IPython show polars frames as tables formatted for reading (:func:`kit.tables.register`: no
    dtype row, durations with units, timestamps to the millisecond, at most 20 rows), shown by
    the report in place of polars' own HTML.
    """
    import altair as alt

    from kit.tables import register

    # long names (qnames, paths) are the evidence: plain-text displays show more of them
    pl.Config.set_fmt_str_lengths(120)
    pl.Config.set_tbl_rows(30)
    register()
    try:
        from kit.charts import use_report_renderer  # type: ignore[attr-defined,unused-ignore]
    except ImportError:
        alt.renderers.enable("svg")
        log.info("kit.charts.use_report_renderer not available: using altair's svg renderer")
    else:
        use_report_renderer()


# ---------------------------------------------------------------------------------------------
# running and rendering
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NotebookRun:
    """What happened to one notebook in a report run.

    Attributes
    ----------
    name : str
        The notebook's file stem (``01-latency-overview``).
    source : pathlib.Path
        The notebook file.
    status : str
        ``"ok"``, ``"failed"`` or ``"skipped"``.
    reason : str
        Why it failed (exception name and message) or was skipped; empty when ok.
    parameters : dict[str, Any]
        The parameters passed to papermill (artefact inputs and ``-p`` values).
    seconds : float
        Wall time of the execution, in seconds (0 when skipped).
    executed_ipynb : pathlib.Path | None
        The executed notebook, when ``executed_dir`` was given to :func:`render`.
    """

    name: str
    source: Path
    status: str
    reason: str = ""
    parameters: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    executed_ipynb: Path | None = None


@dataclass(frozen=True)
class ReportResult:
    """The outcome of :func:`render`.

    Attributes
    ----------
    output_html : pathlib.Path
        The report written.
    runs : tuple[NotebookRun, ...]
        One per notebook, in report order.
    artefacts : polars.DataFrame
        Schema :data:`ARTEFACT_SCHEMA`, one row per artefact file: ``path`` (String, as passed to
        notebooks), ``kind`` (String, one of :data:`ARTEFACT_KINDS`), ``reason`` (String, why that
        kind), ``used`` (Boolean, passed to a notebook that ran successfully), ``used_by`` (List of
        String, notebook names), ``why`` (String, why it was ignored; empty when used).
    findings : tuple[dict[str, Any], ...]
        Findings emitted by the notebooks (see :func:`emit_findings`), in emission order.
    """

    output_html: Path
    runs: tuple[NotebookRun, ...]
    artefacts: pl.DataFrame
    findings: tuple[dict[str, Any], ...]

    @property
    def ok(self) -> bool:
        """True when no notebook failed."""
        return not any(r.status == "failed" for r in self.runs)

    @property
    def failed(self) -> list[NotebookRun]:
        """The notebooks that failed."""
        return [r for r in self.runs if r.status == "failed"]


def _empty_notebook() -> Any:
    import nbformat

    return nbformat.v4.new_notebook()


def _setup_cell(reset: bool = False) -> Any:
    """The hidden first cell; in a shared kernel it first empties the previous notebook's names."""
    import nbformat

    source = "import kit.report\nkit.report.setup_kernel()"
    if reset:
        source = (
            "get_ipython().run_line_magic('reset', '-f')\n"
            # the next cell gets this number: cells are numbered as in a fresh kernel
            "get_ipython().execution_count = 2\n" + source
        )
    return nbformat.v4.new_code_cell(source, metadata={"tags": [SETUP_TAG]})


KERNEL_ARGUMENTS = ["--IPKernelApp.log_level=ERROR", "--HistoryManager.enabled=False"]
"""The kernel's own log (e.g. "running over TCP without encryption" on loopback) is noise on the
user's terminal; errors still show, and cell errors come in the notebook's outputs. IPython's
input history is off: a report run has no use for it, it would write to the user's
``~/.ipython`` database, and a shared kernel renumbering its cells for each notebook makes the
history database print "Session/line number was not unique" into the next cell's output."""


class _SharedKernel:
    """One kernel reused by several notebooks (started on first use, replaced when it dies).

    Each notebook still starts from an empty namespace (see :func:`_setup_cell`), but the kit, polars,
    Altair and vl-convert are imported and initialised once: about 4 s of CPU per notebook.
    """

    def __init__(self) -> None:
        self.km: Any = None
        self.clients: list[Any] = []

    def get(self) -> Any:
        from jupyter_client.manager import AsyncKernelManager
        from jupyter_core.utils import run_sync

        if self.km is not None and not run_sync(self.km.is_alive)():
            self.discard()
        if self.km is None:
            clients = self.clients

            class TrackingKernelManager(AsyncKernelManager):  # type: ignore[misc]
                """Remembers the clients nbclient opens, which it leaves open on a kernel it does
                not own: :meth:`release_clients` closes them after each notebook."""

                def client(self, **kwargs: Any) -> Any:
                    kc = super().client(**kwargs)
                    clients.append(kc)
                    return kc

            km = TrackingKernelManager(kernel_name=KERNEL_NAME)
            run_sync(km.start_kernel)(cwd=os.fspath(_run_dir()), extra_arguments=KERNEL_ARGUMENTS)
            self.km = km
        return self.km

    def release_clients(self) -> None:
        """Close the channels of the clients a finished notebook used."""
        while self.clients:
            kc = self.clients.pop()
            try:
                kc.stop_channels()
            except Exception as exc:  # closing is best effort
                log.debug("stopping kernel client channels: %s", exc)

    def discard(self) -> None:
        """Shut the kernel down (after a timeout or a crash it may still be busy or dead)."""
        from jupyter_core.utils import run_sync

        self.release_clients()
        if self.km is not None:
            km, self.km = self.km, None
            try:
                run_sync(km.shutdown_kernel)(now=True)
            except Exception as exc:  # already dead: nothing left to stop
                log.debug("kernel shutdown: %s", exc)


def _plan(
    nb: Any,
    params: list[NotebookParameter],
    files: list[tuple[str, str]] | None,
    artefact_args: list[str] | None,
    user_params: Mapping[str, Any],
) -> tuple[dict[str, Any], str, set[str]]:
    """Parameters for one notebook, the reason to skip it ('' to run), and the paths it gets."""
    names = {p.name for p in params}
    chosen: dict[str, Any] = {}
    used: set[str] = set()
    missing: list[str] = []
    if files is not None:
        for p in params:
            kinds = INPUT_PARAMETERS.get(p.name)
            if kinds is None or p.name in user_params:
                continue
            # a name that is not UTF-8 cannot travel in a notebook (JSON): reported, not passed
            paths = [path for path, kind in files if kind in kinds and _utf8(path)]
            if paths:
                chosen[p.name] = paths
                used.update(paths)
            elif p.optional:
                chosen[p.name] = None
            else:
                missing.append(f"{p.name} ({' or '.join(kinds)})")
        if ARTEFACTS_PARAMETER in names and ARTEFACTS_PARAMETER not in user_params:
            chosen[ARTEFACTS_PARAMETER] = artefact_args
    for key, value in user_params.items():
        if key in names:
            chosen[key] = value
    reason = f"no artefact for its input {', '.join(missing)}" if missing else ""
    return chosen, reason, used


def _resolve_user_path(name: str, value: Any) -> Any:
    """A ``-p`` value for an artefact input, given relative to the caller's directory, rewritten
    for a notebook that runs in the repository root; any other value is returned unchanged."""
    if name not in INPUT_PARAMETERS and name != ARTEFACTS_PARAMETER:
        return value
    if isinstance(value, list):
        return [_resolve_user_path(name, v) for v in value]
    if isinstance(value, str) and not Path(value).is_absolute() and Path(value).exists():
        return _param_path(Path(value))
    return value


def _error_summary(exc: BaseException) -> str:
    """One line: exception name, the first line of its message (at most 300 characters), cell."""
    ename = getattr(exc, "ename", None)
    if ename:
        message = str(getattr(exc, "evalue", "") or "")
        where = f" (cell In [{getattr(exc, 'exec_count', None)}])"
    else:
        ename, message, where = type(exc).__name__, str(exc), ""
    lines = [x.strip() for x in message.splitlines() if x.strip()]
    first = lines[0] if lines else ""
    if len(first) > 300:
        first = first[:299] + "…"
    more = " …" if len(lines) > 1 and not first.endswith("…") else ""
    return f"{ename}: {first}{more}{where}"


class _KnownParameterFilter(logging.Filter):
    """Drop papermill's "Passed unknown parameter" warning: its regex cannot read annotations such
    as ``str | None``; :func:`render` has already checked every name against the notebook."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Passed unknown parameter")


_PAPERMILL_FILTER = _KnownParameterFilter()


def _execute(
    nb: Any,
    params: dict[str, Any],
    out_ipynb: Path,
    timeout: float,
    kernel: _SharedKernel | None = None,
) -> tuple[Any, str, float]:
    """Run one notebook with papermill, in ``kernel`` or else in a kernel of its own.

    Returns (executed notebook, error summary or '', seconds).
    """
    import papermill
    from papermill.exceptions import PapermillExecutionError

    logging.getLogger("papermill").addFilter(_PAPERMILL_FILTER)
    out_ipynb.unlink(missing_ok=True)  # a copy left by an earlier run must not pass for this one
    work = copy.deepcopy(nb)
    work.cells.insert(0, _setup_cell(reset=kernel is not None))
    start = time.perf_counter()
    error = ""
    executed = None
    try:
        executed = papermill.execute_notebook(
            work,
            os.fspath(out_ipynb),
            parameters=params,
            kernel_name=KERNEL_NAME,
            language="python",
            cwd=os.fspath(_run_dir()),
            progress_bar=False,
            request_save_on_cell_execute=False,
            execution_timeout=timeout,
            extra_arguments=KERNEL_ARGUMENTS,
            **({"km": kernel.get()} if kernel is not None else {}),
        )
    except PapermillExecutionError as exc:
        error = _error_summary(exc)
    except Exception as exc:  # kernel death, timeout: the report must still be written
        error = _error_summary(exc)
        log.error("notebook execution aborted: %s", error)
        if kernel is not None:  # it may still be busy with the cell that timed out
            kernel.discard()
    finally:
        if kernel is not None:
            kernel.release_clients()
    seconds = time.perf_counter() - start
    if executed is None:
        executed = _read_executed(out_ipynb, work)
    return executed, error, seconds


def _read_executed(path: Path, fallback: Any) -> Any:
    """The executed notebook papermill wrote, or ``fallback`` when it wrote none (or a broken one)."""
    import nbformat

    if path.is_file():
        try:
            return nbformat.read(os.fspath(path), as_version=4)
        except Exception as exc:  # a write interrupted half-way: show the notebook as it was given
            log.error("%s: executed notebook unreadable (%s)", path, exc)
    return fallback


def _execute_chunk(
    work: Sequence[tuple[Any, dict[str, Any], Path]],
    timeout: float,
    share_kernel: bool,
    progress: Callable[[str], None] | None = None,
) -> list[tuple[Any, str, float]]:
    """Run notebooks one after the other, in one shared kernel unless ``share_kernel`` is false."""
    kernel = _SharedKernel() if share_kernel else None
    out = []
    try:
        for nb, params, out_ipynb in work:
            log.info("running %s with %s", out_ipynb.stem, params)
            out.append(_execute(nb, params, out_ipynb, timeout, kernel))
            if progress is not None:
                _, error, seconds = out[-1]
                progress(f"{out_ipynb.stem} {'failed' if error else 'ok'} ({seconds:.1f} s)")
    finally:
        if kernel is not None:
            kernel.discard()
    return out


def _execute_chunk_in_worker(
    work: list[tuple[str, dict[str, Any], str]], timeout: float, share_kernel: bool
) -> list[tuple[str, float]]:
    """:func:`_execute_chunk` in a worker process; the executed notebooks are read back from their
    files by the parent."""
    import nbformat

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    done = _execute_chunk(
        [
            (nbformat.reads(nb_json, as_version=4), params, Path(out))
            for nb_json, params, out in work
        ],
        timeout,
        share_kernel,
    )
    return [(error, seconds) for _, error, seconds in done]


def _run_all(
    work: Sequence[tuple[Any, dict[str, Any], Path]],
    timeout: float,
    jobs: int,
    progress: Callable[[str], None] | None = None,
    share_kernel: bool = True,
) -> list[tuple[Any, str, float]]:
    """Execute notebooks in ``jobs`` worker processes (each runs its share one after the other);
    returns (executed notebook, error, seconds) for each, in the order given."""
    if jobs <= 1 or len(work) <= 1:
        return _execute_chunk(work, timeout, share_kernel, progress)
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    import nbformat

    n = min(jobs, len(work))
    chunks = [list(range(i, len(work), n)) for i in range(n)]  # round robin: 0,2,4 / 1,3,5
    outcome: dict[int, tuple[str, float]] = {}
    # spawn, not fork: the parent holds polars' thread pool, which fork would break
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=n, mp_context=ctx) as pool:
        futures = [
            pool.submit(
                _execute_chunk_in_worker,
                [(nbformat.writes(work[k][0]), work[k][1], os.fspath(work[k][2])) for k in chunk],
                timeout,
                share_kernel,
            )
            for chunk in chunks
        ]
        for chunk, fut in zip(chunks, futures, strict=True):
            try:
                results = fut.result()
            except Exception as exc:  # a worker that died: its notebooks failed, the report goes on
                results = [(_error_summary(exc), 0.0)] * len(chunk)
            for k, (error, seconds) in zip(chunk, results, strict=True):
                outcome[k] = (error, seconds)
                if progress is not None:
                    name = work[k][2].stem
                    progress(f"{name} {'failed' if error else 'ok'} ({seconds:.1f} s)")
    out = []
    for k, (nb, _, out_ipynb) in enumerate(work):
        error, seconds = outcome[k]
        out.append((_read_executed(out_ipynb, nb), error, seconds))
    return out


def _collect_findings(nb: Any) -> list[dict[str, Any]] | None:
    """Findings emitted by a notebook; ``None`` when it emitted no findings output at all."""
    out: list[dict[str, Any]] | None = None
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if FINDINGS_MIMETYPE in data:
                payload = data[FINDINGS_MIMETYPE]
                if isinstance(payload, str):  # nbformat may store JSON media types as text
                    payload = json.loads(payload)
                out = (out or []) + list(payload.get("findings", []))
    return out


def _collect_summary(nb: Any) -> tuple[dict[str, Any] | None, str]:
    """The summary card (and headline chart SVG) a notebook emitted with its findings, if any."""
    found: tuple[dict[str, Any] | None, str] = (None, "")
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            payload = output.get("data", {}).get(FINDINGS_MIMETYPE)
            if payload is None:
                continue
            if isinstance(payload, str):
                payload = json.loads(payload)
            if isinstance(payload.get("summary"), Mapping):
                found = (dict(payload["summary"]), str(payload.get("chart_svg") or ""))
    return found


def _text(value: Any) -> str:
    """Any value as display text that survives any byte: control characters made visible."""
    s = value if isinstance(value, str) else str(value)
    s = s.encode("utf-8", "backslashreplace").decode("utf-8")
    return "".join(
        c if c.isprintable() or c in " \t" else c.encode("unicode_escape").decode() for c in s
    )


def _e(value: Any) -> str:
    return html.escape(_text(value), quote=True)


def _anchor(name: str) -> str:
    return "nb-" + re.sub(r"[^A-Za-z0-9_-]", "_", name)


def _css_string(text: str) -> str:
    """A CSS string literal holding ``text``: anything but letters, digits and a few safe
    characters as a hex escape (no quote, backslash or ``</style>`` can end it)."""
    out = []
    for c in _text(text):
        if (c.isascii() and c.isalnum()) or c in " .,:-_/()":
            out.append(c)
        else:
            out.append(f"\\{ord(c):06x}")
    return '"' + "".join(out) + '"'


def _window_text(window: Mapping[str, Any] | None) -> str:
    """``2026-11-26 06:08:44 – 06:10:24 UTC`` (the date once when both ends share it)."""
    if not window or not window.get("start") or not window.get("end"):
        return ""
    try:
        a = dt.datetime.fromisoformat(str(window["start"])).astimezone(dt.UTC)
        b = dt.datetime.fromisoformat(str(window["end"])).astimezone(dt.UTC)
    except ValueError:
        return ""
    right = f"{b:%H:%M:%S}" if a.date() == b.date() else f"{b:%Y-%m-%d %H:%M:%S}"
    return f"{a:%Y-%m-%d %H:%M:%S} – {right} UTC"


_ROLE_HEADINGS = {
    "root-cause": "Root cause",
    "mechanism": "Mechanism",
    "symptom": "Symptom",
    "ruled-out": "Ruled out",
    "context": "Context",
}


def _label(name: str) -> str:
    """An evidence key as words: ``first_after_change_s`` -> ``first after change``."""
    base = name[:-2] if name.endswith("_s") else name
    return base.replace("_", " ")


def _finding_card(f: Mapping[str, Any], hide: frozenset[str] = frozenset()) -> str:
    from kit.tables import cells_html

    sev = _text(f.get("severity", ""))
    sev_class = re.sub(r"[^a-z]", "", sev.lower()) or "none"
    ev = {k: v for k, v in dict(f.get("evidence") or {}).items() if k not in hide}
    facts = "".join(
        f"<li><span class='dnskit-ev-k'>{_e(_label(k))}</span> "
        f"<span class='dnskit-ev-v'>{_e(v)}</span></li>"
        for k, v in ev.items()
    )
    tables = [t for t in f.get("tables") or [] if isinstance(t, Mapping)]
    rows_html = ""
    if tables:
        what = ", ".join(
            f"{_label(str(t.get('name', '')))} ({len(t.get('rows') or []) + int(t.get('more') or 0)}"
            " rows)"
            for t in tables
        )
        rows_html = (
            f"<details class='dnskit-evrows'><summary>The rows behind it: {_e(what)}</summary>"
            + "".join(
                cells_html(
                    [str(c) for c in t.get("columns") or []],
                    [str(a) for a in t.get("aligns") or []],
                    [[str(x) for x in r] for r in t.get("rows") or []],
                    int(t.get("more") or 0),
                    caption=_label(str(t.get("name", ""))),
                )
                for t in tables
            )
            + "</details>"
        )
    fid = _text(f.get("id", ""))
    return (
        f"<article class='dnskit-finding dnskit-sev-{sev_class}' "
        f"id='finding-{_e(re.sub(r'[^A-Za-z0-9_-]', '_', fid))}'>"
        f"<h4><span class='dnskit-sev'>{_e(sev)}</span> {_e(f.get('title', ''))} "
        f"<code>{_e(fid)}</code></h4>"
        f"<p>{_e(f.get('explanation', ''))}</p>"
        + (f"<ul class='dnskit-ev'>{facts}</ul>" if facts else "")
        + rows_html
        + (
            f"<p class='dnskit-confirm'>Confirm with: <code>{_e(f['confirm'])}</code></p>"
            if f.get("confirm")
            else ""
        )
        + "</article>"
    )


def finding_html(finding: Any) -> str:
    """One finding as the report shows it (severity, title, explanation, evidence, the rows
    behind it, confirm command), every text escaped: the one HTML rendering of a finding, used by
    the report, :func:`emit_findings` and :func:`show_evidence`."""
    return _finding_card(_finding_dict(finding))


def _cards_html(items: Sequence[Mapping[str, Any]]) -> str:
    if not items:
        return "<p class='dnskit-nofindings'>No finding fired.</p>"
    return "".join(_finding_card(f) for f in items)


def show_evidence(findings: Sequence[Any]) -> None:
    """Display the findings in a notebook as the report will show them (:func:`finding_html`)."""
    from IPython.display import HTML, display

    display(HTML(_cards_html([_finding_dict(f) for f in findings])))


def _findings_html(
    findings: Sequence[Mapping[str, Any]], findings_source: str | None, has_summary: bool
) -> str:
    parts = ["<section id='findings' class='dnskit-section'><h2>Findings</h2>"]
    if findings:
        hide = frozenset({"change_time"}) if has_summary else frozenset()
        groups: dict[str, list[Mapping[str, Any]]] = {}
        for f in findings:
            role = _text(f.get("role") or "")
            groups.setdefault(role if role in _ROLE_HEADINGS else "other", []).append(f)
        for role in (*_ROLE_HEADINGS, "other"):
            if role not in groups:
                continue
            heading = _ROLE_HEADINGS.get(role, "Other findings")
            parts.append(
                f"<section class='dnskit-role dnskit-role-{role}' id='role-{role}'>"
                f"<h3>{_e(heading)}</h3>"
                + "".join(_finding_card(f, hide) for f in groups[role])
                + "</section>"
            )
    elif findings_source is not None:
        parts.append(
            f"<p class='dnskit-nofindings'>No finding fired: notebook {_e(findings_source)} ran "
            "its checks on these artefacts and none matched.</p>"
        )
    else:
        parts.append(
            "<p class='dnskit-nofindings'>No findings yet: none of the notebooks that ran emitted "
            "findings (the findings notebook did not run, failed before emitting, or does not "
            "exist yet). Read the notebooks below.</p>"
        )
    parts.append("</section>")
    return "".join(parts)


def _coverage_html(coverage: Sequence[Mapping[str, Any]]) -> str:
    if not coverage:
        return ""
    ran = [c for c in coverage if c.get("ran")]
    fired = sum(1 for c in coverage if c.get("fired"))
    missing = [c for c in coverage if not c.get("ran")]
    text = f"<b>Coverage:</b> {len(ran)} of {len(coverage)} checks ran ({fired} fired)" + (
        f": {_e(', '.join(str(c['check']) for c in ran))}." if ran else "."
    )
    if missing:
        text += " <b>Could not run:</b> " + "; ".join(
            f"<span class='dnskit-notrun'>{_e(c['check'])}</span> (needs {_e(c.get('missing', ''))};"
            " none given)"
            for c in missing
        )
        text += ". Add those artefacts to run them."
    return f"<p class='dnskit-coverage' id='coverage'>{text}</p>"


def _summary_html(summary: Mapping[str, Any] | None, chart_svg: str) -> str:
    if not summary:
        return ""
    impact = "".join(
        "<div class='dnskit-stat'>"
        f"<div class='dnskit-stat-value'>{_e(i.get('value', ''))}</div>"
        f"<div class='dnskit-stat-label'>{_e(i.get('label', ''))}</div>"
        + (
            f"<div class='dnskit-stat-detail'>{_e(i.get('detail'))}</div>"
            if i.get("detail")
            else ""
        )
        + "</div>"
        for i in summary.get("impact") or []
        if isinstance(i, Mapping)
    )
    facts = []
    where = (summary.get("where") or {}).get("text")
    when = (summary.get("when") or {}).get("text")
    conf = summary.get("confidence") or {}
    if where:
        facts.append(("Where", _e(where)))
    if when:
        facts.append(("When", _e(when)))
    if summary.get("fix"):
        facts.append(("Fix", _e(summary["fix"])))
    if conf:
        facts.append(
            (
                "Confidence",
                f"<b>{_e(conf.get('level', ''))}</b>"
                + (f": {_e(conf.get('why'))}" if conf.get("why") else ""),
            )
        )
    dl = "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in facts)
    chart = ""
    if chart_svg:
        clean = _SCRIPT.sub("", _SVG_PROLOG.sub("", chart_svg))
        chart = f"<figure class='dnskit-headline' data-mime-type='image/svg+xml'>{clean}</figure>"
    return (
        "<section id='summary' class='dnskit-card'>"
        f"<p class='dnskit-cause'><span class='dnskit-k'>Cause</span> {_e(summary.get('cause', ''))}</p>"
        + (f"<div class='dnskit-impact'>{impact}</div>" if impact else "")
        + (f"<dl class='dnskit-facts'>{dl}</dl>" if dl else "")
        + chart
        + _coverage_html(summary.get("coverage") or [])
        + "</section>"
    )


def _is_appendix(run: NotebookRun, nb: Any) -> bool:
    """The tutorial (``00-...``, or notebook metadata ``dnskit: {appendix: true}``) goes last."""
    meta = nb.metadata.get("dnskit", {}) if nb is not None else {}
    return bool(meta.get("appendix")) if "appendix" in meta else run.name.startswith("00-")


def _toc_html(
    summary: bool,
    findings: Sequence[Mapping[str, Any]],
    notebooks: Sequence[tuple[str, str]],
    appendix: Sequence[tuple[str, str]],
) -> str:
    items = []
    if summary:
        items.append("<li><a href='#summary'>Summary</a></li>")
    roles = []
    for role, heading in _ROLE_HEADINGS.items():
        n = sum(1 for f in findings if f.get("role") == role)
        if n:
            roles.append(f"<li><a href='#role-{role}'>{_e(heading)}</a> ({n})</li>")
    items.append(
        "<li><a href='#findings'>Findings</a>"
        + (f"<ol>{''.join(roles)}</ol>" if roles else "")
        + "</li>"
    )
    if notebooks:
        items.append(
            "<li><a href='#notebooks'>Investigation notebooks</a><ol>"
            + "".join(f"<li><a href='#{_anchor(n)}'>{_e(t)}</a></li>" for n, t in notebooks)
            + "</ol></li>"
        )
    items.append(
        "<li><a href='#appendix'>Appendix</a>: runs, artefacts, parameters"
        + "".join(f", <a href='#{_anchor(n)}'>{_e(t)}</a>" for n, t in appendix)
        + "</li>"
    )
    return f"<nav id='toc' class='dnskit-toc'><h2>Contents</h2><ol>{''.join(items)}</ol></nav>"


def _header_html(
    title: str,
    runs: Sequence[NotebookRun],
    artefacts: pl.DataFrame,
    findings: Sequence[dict[str, Any]],
    artefact_note: str,
    findings_source: str | None,
    summary: Mapping[str, Any] | None = None,
    chart_svg: str = "",
    notebooks: Sequence[tuple[str, str]] = (),
    appendix: Sequence[tuple[str, str]] = (),
) -> str:
    """The top of the report: title, summary card, contents, findings by role.

    ``notebooks`` and ``appendix`` are ``(name, title)`` of the notebooks shown below, for the
    table of contents. The runs, artefacts and parameters go to :func:`_appendix_html`.
    """
    from kit import __version__

    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    failed = [r for r in runs if r.status == "failed"]
    window = _window_text((summary or {}).get("window"))
    page_css = (
        "<style type='text/css'>@page { "
        f"@top-left {{ content: {_css_string(title)}; }} "
        f"@top-right {{ content: {_css_string(window)}; }} "
        "@bottom-right { content: counter(page) ' / ' counter(pages); } }</style>"
    )
    parts = [
        page_css,
        "<header class='dnskit-header'>",
        f"<h1 class='dnskit-title'>{_e(title)}</h1>",
        "<p class='dnskit-meta'>"
        + (f"Incident window {_e(window)}. " if window else "")
        + f"Generated {_e(now)} by DNS Incident Kit {_e(__version__)}. "
        f"{sum(r.status == 'ok' for r in runs)} notebook(s) ran, {len(failed)} failed, "
        f"{sum(r.status == 'skipped' for r in runs)} skipped.</p>",
    ]
    if failed:
        names = ", ".join(
            f"<a href='#{_anchor(r.name)}'>{_e(r.name)}</a> ({_e(r.reason)})" for r in failed
        )
        parts.append(
            f"<p class='dnskit-failed' role='alert'>Incomplete report: failed notebook(s): {names}. "
            "Their output up to the failure is shown below, with the error.</p>"
        )
    parts.append(_summary_html(summary, chart_svg))
    parts.append(_toc_html(bool(summary), findings, notebooks, appendix))
    parts.append(_findings_html(findings, findings_source, bool(summary)))
    parts.append("</header>")
    return "\n".join(parts)


def _appendix_html(runs: Sequence[NotebookRun], artefacts: pl.DataFrame, artefact_note: str) -> str:
    """Runs, artefacts (used and ignored, and why) and parameters, each folded."""
    parts = ["<section id='appendix' class='dnskit-section'><h2>Appendix</h2>"]
    parts.append(
        "<details id='notebooks-run' class='dnskit-fold'><summary>Notebook runs: "
        f"{sum(r.status == 'ok' for r in runs)} ok, {sum(r.status == 'failed' for r in runs)} "
        f"failed, {sum(r.status == 'skipped' for r in runs)} skipped</summary>"
        "<table class='dnskit-table'><thead><tr><th>notebook</th><th>status</th>"
        "<th>seconds</th><th>detail</th></tr></thead><tbody>"
    )
    for r in runs:
        link = (
            f"<a href='#{_anchor(r.name)}'>{_e(r.name)}</a>"
            if r.status != "skipped"
            else _e(r.name)
        )
        parts.append(
            f"<tr class='dnskit-status-{_e(r.status)}'><td>{link}</td><td>{_e(r.status)}</td>"
            f"<td>{r.seconds:.1f}</td><td>{_e(r.reason)}</td></tr>"
        )
    parts.append("</tbody></table></details>")

    used = artefacts.filter(pl.col("used")) if artefacts.height else artefacts
    ignored = artefacts.filter(~pl.col("used")) if artefacts.height else artefacts
    parts.append(
        f"<details id='artefacts' class='dnskit-fold'><summary>Artefacts: {used.height} used, "
        f"{ignored.height} ignored</summary>"
    )
    if artefact_note:
        parts.append(f"<p>{_e(artefact_note)}</p>")
    if artefacts.height:
        parts.append(f"<h3>Used ({used.height})</h3>")
        parts.append(
            "<table class='dnskit-table dnskit-used'><thead><tr><th>file</th><th>kind</th>"
            "<th>used by</th><th>recognised by</th></tr></thead><tbody>"
        )
        for row in used.iter_rows(named=True):
            parts.append(
                f"<tr><td>{_e(row['path'])}</td><td>{_e(row['kind'])}</td>"
                f"<td>{_e(', '.join(row['used_by']))}</td><td>{_e(row['reason'])}</td></tr>"
            )
        parts.append("</tbody></table>")
        parts.append(f"<h3>Ignored ({ignored.height})</h3>")
        parts.append(
            "<table class='dnskit-table dnskit-ignored'><thead><tr><th>file</th><th>kind</th>"
            "<th>why ignored</th></tr></thead><tbody>"
        )
        for row in ignored.iter_rows(named=True):
            parts.append(
                f"<tr><td>{_e(row['path'])}</td><td>{_e(row['kind'])}</td>"
                f"<td>{_e(row['why'])}</td></tr>"
            )
        parts.append("</tbody></table>")
    parts.append("</details>")

    parts.append(
        "<details id='parameters' class='dnskit-fold'><summary>Parameters passed to the "
        "notebooks</summary><table class='dnskit-table'><thead><tr><th>notebook</th>"
        "<th>parameters passed</th></tr></thead><tbody>"
    )
    for r in runs:
        shown = json.dumps(r.parameters, ensure_ascii=False, default=str) if r.parameters else ""
        parts.append(
            f"<tr><td>{_e(r.name)}</td><td><code>{_e(shown or '(notebook defaults)')}</code>"
            "</td></tr>"
        )
    parts.append("</tbody></table></details></section>")
    return "\n".join(parts)


def _html_cell(markup: str, tag: str = "dnskit-section") -> Any:
    import nbformat

    return nbformat.v4.new_code_cell(
        "",
        metadata={"tags": [tag]},
        outputs=[nbformat.v4.new_output("display_data", data={"text/html": markup})],
    )


def _section_cell(run: NotebookRun, title: str) -> Any:
    """The folded section that holds one notebook: opened here, closed after its last cell
    (``metadata.dnskit.before``/``after``, written out by the template around the cells)."""
    status = "" if run.status == "ok" else f" <span class='dnskit-badge'>{_e(run.status)}</span>"
    reason = f"<p class='dnskit-failed'>{_e(run.reason)}</p>" if run.reason else ""
    is_open = " open" if run.status == "failed" else ""
    cell = _html_cell(reason)
    cell.metadata["dnskit"] = {
        "before": (
            f"<section class='dnskit-nb' id='{_anchor(run.name)}'>"
            f"<details class='dnskit-fold dnskit-nb-fold'{is_open}><summary>"
            f"<span class='dnskit-nb-title'>{_e(title)}</span> "
            f"<span class='dnskit-nb-file'>{_e(run.name)}</span>{status}</summary>"
        ),
        "after": "",
    }
    return cell


def _nb_title(nb: Any, fallback: str) -> str:
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            m = re.search(r"(?m)^#\s+(.+)$", cell.source)
            if m:
                return m.group(1).strip()
    return fallback


def _notebook_cells(run: NotebookRun, nb: Any) -> list[Any]:
    """A notebook's cells for the report, behind its folded section heading."""
    out = [_section_cell(run, _nb_title(nb, run.name))]
    for i, cell in enumerate(nb.cells):
        if cell.cell_type in _SKIPPED_CELL_TYPES:
            continue
        tags = cell.get("metadata", {}).get("tags", [])
        if SETUP_TAG in tags and not any(
            o.get("output_type") == "error" for o in cell.get("outputs", [])
        ):
            continue
        c = copy.deepcopy(cell)
        c["id"] = f"{_anchor(run.name)}-{i}"
        c.metadata.pop("dnskit", None)  # only the report places folds
        for output in c.get("outputs", []):
            data = output.get("data", {})
            table = data.pop(TABLE_MIMETYPE, None)
            if isinstance(table, str):  # the frame formatted for reading replaces polars' HTML
                data["text/html"] = table
            svg = data.get("image/svg+xml")
            if isinstance(svg, str):
                # inlined in HTML: an XML prolog or DOCTYPE is not allowed there
                data["image/svg+xml"] = _SVG_PROLOG.sub("", svg)
            markup = data.get("text/html")
            if isinstance(markup, str) and _SCRIPT.search(markup):
                # an HTML output that brings its own JavaScript (an interactive chart, a
                # widget): the report is static, its CSP would block it anyway
                n = len(_SCRIPT.findall(markup))
                data["text/html"] = _SCRIPT.sub("", markup) + (
                    f"<p class='dnskit-omitted'>({n} script(s) removed: the report is static)</p>"
                )
                log.warning("%s: removed %d <script> element(s) from an output", run.name, n)
        out.append(c)
    out[-1].metadata.setdefault("dnskit", {})
    out[-1].metadata["dnskit"]["after"] = "</details></section>"
    return out


def _combine(
    executed: Sequence[tuple[NotebookRun, Any]],
    title: str,
    *,
    skipped: Sequence[NotebookRun] = (),
    appendix_html: str = "",
) -> Any:
    """One notebook holding every executed notebook's cells, each notebook folded in its own
    section; investigation notebooks first (after a heading that lists, one line each, the
    notebooks not run and why), then the appendix (``appendix_html`` and the tutorial)."""
    import nbformat

    combined = nbformat.v4.new_notebook()
    combined.metadata["title"] = title
    combined.metadata["kernelspec"] = {
        "name": KERNEL_NAME,
        "display_name": "Python 3",
        "language": "python",
    }
    combined.metadata["language_info"] = {"name": "python"}
    main = [(r, nb) for r, nb in executed if not _is_appendix(r, nb)]
    tail = [(r, nb) for r, nb in executed if _is_appendix(r, nb)]
    if appendix_html or skipped:
        lines = "".join(
            f"<li><span class='dnskit-nb-file'>{_e(r.name)}</span> not shown: {_e(r.reason)}</li>"
            for r in skipped
        )
        combined.cells.append(
            _html_cell(
                "<section id='notebooks' class='dnskit-section'><h2>Investigation notebooks</h2>"
                "<p class='dnskit-meta'>Each notebook is folded: open it for its method, tables "
                "and charts.</p>"
                + (f"<ul class='dnskit-skipped'>{lines}</ul>" if lines else "")
                + "</section>"
            )
        )
    for run, nb in main:
        combined.cells.extend(_notebook_cells(run, nb))
    if appendix_html:
        combined.cells.append(_html_cell(appendix_html))
    for run, nb in tail:
        combined.cells.extend(_notebook_cells(run, nb))
    return combined


def _export_html(nb: Any, header_html: str) -> str:
    from nbconvert import HTMLExporter

    exporter = HTMLExporter(
        template_name=TEMPLATE_NAME,
        extra_template_basedirs=[os.fspath(TEMPLATE_DIR)],
        exclude_input=True,
        exclude_input_prompt=True,
        exclude_output_prompt=True,
        exclude_raw=True,
        embed_images=True,
    )
    body, _ = exporter.from_notebook_node(nb, resources={"dnskit_header": header_html})
    return str(body)


CONTEXT_INPUTS = frozenset({"run_json"})
"""Input parameters that give context (the timeline) but no data: a notebook that receives only
these, and no data input, has nothing to show and is not run."""


def _no_input_reason(
    params: Sequence[NotebookParameter], chosen: Mapping[str, Any], user_params: Mapping[str, Any]
) -> str:
    """Why a notebook is not run although its inputs are optional: none of its data inputs got an
    artefact (and none was set with ``-p``); '' when it has something to show."""
    data = [p.name for p in params if p.name in INPUT_PARAMETERS and p.name not in CONTEXT_INPUTS]
    if not data or any(n in user_params for n in data):
        return ""
    if any(chosen.get(n) not in (None, []) for n in data):
        return ""
    return f"no input: none of its inputs ({', '.join(data)}) among the artefacts"


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


def render(
    notebooks: str | os.PathLike[str] | Sequence[str | os.PathLike[str]] | None = None,
    *,
    parameters: Mapping[str, Any] | None = None,
    output_html: str | os.PathLike[str],
    artefacts: Sequence[str | os.PathLike[str]] | None = None,
    executed_dir: str | os.PathLike[str] | None = None,
    title: str = "DNS incident report",
    timeout: float = 600.0,
    jobs: int = 1,
    progress: Callable[[str], None] | None = None,
    share_kernel: bool = True,
) -> ReportResult:
    """Execute notebooks on artefacts and write one self-contained HTML report.

    Parameters
    ----------
    notebooks
        Notebook files (jupytext ``py:percent`` ``.py`` or ``.ipynb``); ``None`` means
        :func:`default_notebooks` (``notebooks/*.py``, or the copies a wheel ships).
    parameters
        Values for notebook parameters (papermill ``-p``), applied to every notebook that declares
        the parameter; they override the artefact inputs. For artefact inputs (and
        ``artefacts``), a relative path that exists from the current directory is rewritten to be
        valid for the notebooks (relative to the checkout's root, else absolute).
    output_html
        Where to write the report (parent folders are created).
    artefacts
        Files, globs or folders. ``None`` means :data:`DEFAULT_ARTEFACTS` when it exists (else
        every notebook runs on its own defaults, and the report says so). Relative paths are taken
        from the current directory, then from the repository root.
    executed_dir
        Keep each executed notebook there as ``<name>.ipynb``; ``None`` keeps them in a temporary
        folder removed afterwards.
    title
        The report's title.
    timeout
        Maximum seconds per cell.
    jobs
        How many notebooks to execute at a time (each in its own worker process and kernel).
    progress
        Called with a one-line message as the run advances (the CLI prints them to stderr).
    share_kernel
        Run the notebooks one after the other in one kernel (per worker), each starting from an
        empty namespace: the imports and the chart renderer are paid once. False gives every
        notebook a kernel of its own.

    Returns
    -------
    ReportResult
        Runs, artefacts (used and ignored), findings; ``ok`` is false when a notebook failed. The
        HTML is written in every case where this function returns.

    Raises
    ------
    FileNotFoundError
        A notebook or an explicitly given artefact does not exist.
    ValueError
        A parameter in ``parameters`` is declared by none of the notebooks, no notebook given, or
        no artefacts given where there is no sample data (a wheel install) and the notebooks take
        ``artefacts``.
    """
    nb_paths = (
        default_notebooks()
        if notebooks is None
        else [Path(notebooks)]
        if isinstance(notebooks, str | os.PathLike)
        else [Path(n) for n in notebooks]
    )
    if not nb_paths:
        raise ValueError("no notebook to run")
    user_params = {k: _resolve_user_path(k, v) for k, v in (parameters or {}).items()}
    loaded: list[tuple[Path, Any]] = []
    declared: dict[Path, list[NotebookParameter]] = {}
    broken: dict[Path, str] = {}
    for p in nb_paths:
        if not p.is_file():
            raise FileNotFoundError(f"notebook not found: {os.fsdecode(p)}")
        nb = None
        try:
            nb = read_notebook(p)
            declared[p] = notebook_parameters(nb)
        except SyntaxError as exc:
            broken[p] = f"its parameters cell is not valid Python: {exc}"
            declared[p] = []
        except (
            Exception
        ) as exc:  # an .ipynb that is not JSON, a jupytext error: that notebook fails
            broken[p] = f"it could not be read: {type(exc).__name__}: {exc}"
            declared[p] = []
        loaded.append((p, nb))
    all_names = {prm.name for prms in declared.values() for prm in prms}
    unknown = sorted(set(user_params) - all_names)
    if unknown:
        raise ValueError(
            f"parameter(s) {', '.join(unknown)} not declared by any notebook run "
            f"(declared: {', '.join(sorted(all_names)) or 'none'})"
        )

    artefact_note = ""
    files: list[tuple[str, str]] | None
    reasons: dict[str, str] = {}
    artefact_args: list[str] | None
    if artefacts is None and sample_dir() is None:
        if any(ARTEFACTS_PARAMETER in {p.name for p in prms} for prms in declared.values()):
            raise ValueError(
                "no artefacts given and no sample data here (it ships with the source checkout, "
                "not the package): name the incident's files or folder"
            )
        files = None
        artefact_args = None
        artefact_note = (
            f"No artefacts given and {DEFAULT_ARTEFACTS} does not exist: every notebook ran on "
            "its own default parameters."
        )
    else:
        given = [DEFAULT_ARTEFACTS] if artefacts is None else list(artefacts)
        found = walk_artefacts(given, base=REPO_ROOT)
        files = []
        for f in found:
            kind, why = classify_artefact(f)
            files.append((_param_path(f), kind))
            reasons[_param_path(f)] = why
        artefact_args = [_artefact_arg(g) for g in given]
        if artefacts is None:
            artefact_args = [DEFAULT_ARTEFACTS]
        artefact_note = f"Artefacts given: {', '.join(artefact_args)} ({len(files)} file(s))."

    # absolute: notebooks run in the repo root, and papermill changes directory to get there
    out_html = Path(output_html).resolve()
    tmp = None
    if executed_dir is None:
        tmp = tempfile.TemporaryDirectory(prefix="dnskit-report-")
        keep = Path(tmp.name)
    else:
        keep = Path(executed_dir).resolve()
        keep.mkdir(parents=True, exist_ok=True)
    try:
        # plan every notebook first, then run them (in parallel when jobs > 1), then assemble
        # the results in the notebooks' order
        planned: list[tuple[int, str, Path, Any, dict[str, Any], set[str]]] = []
        slots: list[NotebookRun | None] = []
        names_seen: set[str] = set()
        for path, nb in loaded:
            name = path.stem
            while name in names_seen:  # two notebooks with one file name, from two folders
                name += "_"
            names_seen.add(name)
            if path in broken:
                log.error("notebook %s not run: %s", name, broken[path])
                slots.append(NotebookRun(name, path, "failed", broken[path]))
                continue
            chosen, skip, used = _plan(nb, declared[path], files, artefact_args, user_params)
            if not skip and files is not None:
                skip = _no_input_reason(declared[path], chosen, user_params)
            if skip:
                log.info("skipping %s: %s", name, skip)
                slots.append(NotebookRun(name, path, "skipped", skip, chosen))
                continue
            planned.append((len(slots), name, path, nb, chosen, used))
            slots.append(None)

        if progress is not None:
            progress(
                f"running {len(planned)} notebook(s)"
                + (f", {jobs} at a time" if jobs > 1 and len(planned) > 1 else "")
                + f": {', '.join(name for _, name, *_ in planned) or 'none'}"
            )
        outcomes = _run_all(
            [(nb, chosen, keep / f"{name}.ipynb") for _, name, _, nb, chosen, _ in planned],
            timeout,
            jobs,
            progress,
            share_kernel,
        )
        done_by_slot: dict[int, Any] = {}
        used_by_slot: dict[int, set[str]] = {}
        for (slot, name, path, _, chosen, used), (done, error, seconds) in zip(
            planned, outcomes, strict=True
        ):
            out_ipynb = keep / f"{name}.ipynb"
            slots[slot] = NotebookRun(
                name,
                path,
                "failed" if error else "ok",
                error,
                chosen,
                seconds,
                out_ipynb if executed_dir is not None and out_ipynb.is_file() else None,
            )
            done_by_slot[slot] = done
            used_by_slot[slot] = used

        runs: list[NotebookRun] = [r for r in slots if r is not None]
        executed: list[tuple[NotebookRun, Any]] = []
        used_by: dict[str, list[str]] = {}
        findings: list[dict[str, Any]] = []
        findings_source: str | None = None
        summary: dict[str, Any] | None = None
        chart_svg = ""
        for slot, run in enumerate(runs):
            if run.status == "skipped":
                continue
            done = done_by_slot.get(slot, _empty_notebook())
            executed.append((run, done))
            if run.status == "ok":
                for u in used_by_slot.get(slot, ()):
                    used_by.setdefault(u, []).append(run.name)
            card, svg = _collect_summary(done)
            if card is not None:
                summary, chart_svg = card, svg
            emitted = _collect_findings(done)
            if emitted is not None:
                findings_source = run.name
                findings.extend(emitted)

        # kind -> (notebook, parameter) pairs that read it, to say why an artefact was not used
        readers: dict[str, list[tuple[str, str]]] = {}
        for run, (path, _) in zip(runs, loaded, strict=True):
            for prm in declared[path]:
                for kind in INPUT_PARAMETERS.get(prm.name, ()):
                    readers.setdefault(kind, []).append((run.name, prm.name))
        status = {r.name: r.status for r in runs}
        rows = []
        for path_s, kind in files or []:
            users = used_by.get(path_s, [])
            if users:
                why = ""
            elif not _utf8(path_s):
                why = (
                    "its file name is not valid UTF-8, so it cannot be passed to a notebook: "
                    "rename it"
                )
            elif kind == "unknown":
                why = f"not recognised: {reasons[path_s]}"
            elif kind not in readers:
                why = f"no notebook in this run reads {kind} artefacts"
            else:
                why = "; ".join(
                    f"-p {param} replaced the artefacts in {nb}"
                    if param in user_params
                    else f"{nb} {status[nb]}"
                    for nb, param in readers[kind]
                )
                why = f"the notebooks that read {kind} artefacts did not use it: {why}"
            rows.append((_display_path(path_s), kind, reasons[path_s], bool(users), users, why))
        table = pl.DataFrame(rows, schema=ARTEFACT_SCHEMA, orient="row")

        if files is not None and artefacts is not None:
            shown_as = _display_names(list(artefacts))
            findings = [_renamed(f, shown_as) for f in findings]
        listed = [(r.name, _nb_title(nb, r.name)) for r, nb in executed if not _is_appendix(r, nb)]
        tail = [(r.name, _nb_title(nb, r.name)) for r, nb in executed if _is_appendix(r, nb)]
        header = _header_html(
            title,
            runs,
            table,
            findings,
            artefact_note,
            findings_source,
            summary,
            chart_svg,
            listed,
            tail,
        )
        combined = _combine(
            executed,
            title,
            skipped=[r for r in runs if r.status == "skipped"],
            appendix_html=_appendix_html(runs, table, artefact_note),
        )
        page = _export_html(combined, header)
        out_html.parent.mkdir(parents=True, exist_ok=True)
        out_html.write_text(page, encoding="utf-8")
        log.info("report written to %s (%d bytes)", out_html, len(page))
    finally:
        if tmp is not None:
            tmp.cleanup()
    return ReportResult(out_html, tuple(runs), table, tuple(findings))
