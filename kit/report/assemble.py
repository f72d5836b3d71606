"""The report: :func:`render` plans, runs and assembles the notebooks into one HTML file and
returns a :class:`ReportResult`."""

from __future__ import annotations

import logging
import os
import re
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from kit.report.artefacts import (
    DEFAULT_ARTEFACTS,
    _artefact_arg,
    _display_names,
    _display_path,
    _param_path,
    _renamed,
    _utf8,
    classify_artefact,
)
from kit.report.execute import (
    NotebookRun,
    _empty_notebook,
    _no_input_reason,
    _plan,
    _run_all,
    warm_capture_cache,
)
from kit.report.handover import _collect, _emits_findings
from kit.report.html import (
    _appendix_html,
    _combine,
    _export_html,
    _header_html,
    _is_appendix,
    _nb_title,
)
from kit.report.parameters import (
    ARTEFACTS_PARAMETER,
    INPUT_PARAMETERS,
    NotebookParameter,
    _resolve_user_path,
    default_notebooks,
    notebook_parameters,
    read_notebook,
)
from kit.sources._io import walk_artefacts
from kit.sources.artefacts import REPO_ROOT, sample_dir

log = logging.getLogger(__name__)

ARTEFACT_SCHEMA = pl.Schema(
    {
        "path": pl.String(),
        "kind": pl.String(),
        "reason": pl.String(),
        "used": pl.Boolean(),
        "used_by": pl.List(pl.String()),
        "why": pl.String(),
        "read_error": pl.String(),
    }
)
"""Schema of :attr:`ReportResult.artefacts` (see :func:`render`)."""


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
        String, notebook names), ``why`` (String, why it was ignored; empty when used),
        ``read_error`` (String, why the file could not be read; empty when it was: see
        :func:`_read_errors`; such a file is not ``used``).
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
        if planned:
            warm_capture_cache([chosen for *_, chosen, _ in planned], timeout)
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
        checks: list[dict[str, Any]] = []
        lines: list[dict[str, str]] = []
        findings_failed: NotebookRun | None = None
        workloads: list[dict[str, Any]] = []
        for slot, run in enumerate(runs):
            if run.status == "skipped":
                continue
            done = done_by_slot.get(slot, _empty_notebook())
            executed.append((run, done))
            if run.status == "ok":
                for u in used_by_slot.get(slot, ()):
                    used_by.setdefault(u, []).append(run.name)
            handed = _collect(done)
            if handed.summary is not None:
                summary, chart_svg = handed.summary, handed.chart_svg
            checks = handed.checks or checks
            lines.extend({**line, "source": run.name} for line in handed.lines)
            workloads.extend({**w, "notebook": run.name} for w in handed.workloads)
            if run.status == "failed" and _emits_findings(done):
                findings_failed = run
            if handed.findings is not None:
                findings_source = run.name
                findings.extend(handed.findings)

        read_errors = _read_errors(files or [], reasons, used_by_slot, runs, checks)
        table = _artefact_table(
            files or [],
            reasons,
            used_by,
            read_errors,
            runs,
            [declared[path] for path, _ in loaded],
            user_params,
        )

        if files is not None and artefacts is not None:
            shown_as = _display_names(list(artefacts))
            findings = [_renamed(f, shown_as) for f in findings]
        listed = [(r.name, _nb_title(nb, r.name)) for r, nb in executed if not _is_appendix(r, nb)]
        tail = [(r.name, _nb_title(nb, r.name)) for r, nb in executed if _is_appendix(r, nb)]
        header = _header_html(
            title,
            runs,
            findings,
            findings_source,
            summary,
            chart_svg,
            listed,
            tail,
            checks=checks,
            unreadable=[
                (r["path"], r["read_error"]) for r in table.iter_rows(named=True) if r["read_error"]
            ],
            findings_failed=findings_failed if findings_source is None else None,
            lines=lines,
            workloads=workloads,
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


_UNREADABLE_REASON = re.compile(
    r"(?:^|; )(?:but it does not parse|could not be read): (.+)$", re.DOTALL
)
"""How a classification says its file could not be read (``kit.sources.detect``): a config that
does not parse, a file the OS refused."""

_NAMED_LIKE: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"(?i)^corefile\b"), "a Corefile"),
    (re.compile(r"(?i)^unbound.*\.conf(\.gz)?$"), "an unbound.conf"),
    (re.compile(r"(?i)\.(pcap|pcapng|cap)(\.gz)?$"), "a capture"),
)
"""File names that say what a file should be: such a file whose content is not recognised
(binary data, an empty file) could not be read as what it is named, rather than being ignored."""


def _read_errors(
    files: Sequence[tuple[str, str]],
    reasons: Mapping[str, str],
    used_by_slot: Mapping[int, set[str]],
    runs: Sequence[NotebookRun],
    checks: Sequence[Mapping[str, Any]],
) -> dict[str, str]:
    """Artefact path (as passed to the notebooks) -> why it could not be read, for each artefact
    that could not be: the classification could not read or parse it, or did not recognise a file
    named like a Corefile, unbound.conf or capture (:data:`_NAMED_LIKE`); or a check was "not
    checked" because ``<file> could not be read (<reason>)`` (``kit.findings.CheckResult``); or a
    notebook it was passed to failed with an error that names it (the loader's error names the
    file, e.g. ``Corefile:1: unbalanced braces``)."""
    out: dict[str, str] = {}
    names: dict[str, list[str]] = {}
    for path_s, _ in files:
        names.setdefault(os.path.basename(path_s), []).append(path_s)

    def named_in(path_s: str, text: str) -> bool:
        # the full path, or the file name when no other artefact has it
        shown = [path_s, _display_path(path_s)]
        base = os.path.basename(path_s)
        if len(names.get(base, ())) == 1:
            shown.append(base)
        return any(
            re.search(r"(?<![\w./-])" + re.escape(s) + r"(?![\w/-]|\.\w)", text) for s in shown
        )

    for path_s, kind in files:
        why = reasons.get(path_s, "")
        m = _UNREADABLE_REASON.search(why)
        if m:
            out[path_s] = m.group(1).strip()
            continue
        if kind == "unknown":
            base = os.path.basename(path_s)
            named = next((what for pat, what in _NAMED_LIKE if pat.search(base)), None)
            if named is not None:
                out[path_s] = f"named like {named}, but {why}" if why else f"named like {named}"
    for c in checks:
        reason = str(c.get("reason") or "")
        if c.get("status") != "not checked" or "could not be read" not in reason:
            continue
        for path_s, _ in files:
            if path_s in out:
                continue
            head, _, rest = reason.partition(" could not be read")
            if named_in(path_s, head):
                out[path_s] = rest.strip().removeprefix("(").removesuffix(")").strip() or reason
    for slot, run in enumerate(runs):
        if run.status != "failed":
            continue
        for path_s in sorted(used_by_slot.get(slot, ())):
            if path_s not in out and named_in(path_s, run.reason):
                out[path_s] = run.reason
    return out


def _artefact_table(
    files: Sequence[tuple[str, str]],
    reasons: Mapping[str, str],
    used_by: Mapping[str, list[str]],
    read_errors: Mapping[str, str],
    runs: Sequence[NotebookRun],
    declared: Sequence[Sequence[NotebookParameter]],
    user_params: Mapping[str, Any],
) -> pl.DataFrame:
    """The artefacts of a report run (:data:`ARTEFACT_SCHEMA`): each file as passed to the
    notebooks with its kind, who used it, and why it was not used or could not be read.

    ``declared`` holds the parameters of each run's notebook, in the order of ``runs``."""
    # kind -> (notebook, parameter) pairs that read it, to say why an artefact was not used
    readers: dict[str, list[tuple[str, str]]] = {}
    for run, params in zip(runs, declared, strict=True):
        for prm in params:
            for kind in INPUT_PARAMETERS.get(prm.name, ()):
                readers.setdefault(kind, []).append((run.name, prm.name))
    status = {r.name: r.status for r in runs}
    rows = []
    for path_s, kind in files:
        users = used_by.get(path_s, [])
        read_error = read_errors.get(path_s, "")
        if read_error:
            why = f"could not be read: {read_error}"
        elif users:
            why = ""
        elif not _utf8(path_s):
            why = (
                "its file name is not valid UTF-8, so it cannot be passed to a notebook: rename it"
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
        rows.append(
            (
                _display_path(path_s),
                kind,
                reasons[path_s],
                bool(users) and not read_error,
                users,
                why,
                read_error,
            )
        )
    return pl.DataFrame(rows, schema=ARTEFACT_SCHEMA, orient="row")
