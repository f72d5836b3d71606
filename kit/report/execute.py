"""Running the notebooks: the plan (which parameters each notebook gets, or why it is skipped),
papermill in one shared kernel (or one per notebook), chunks of notebooks in worker processes,
and :class:`NotebookRun`, what happened to each."""

from __future__ import annotations

import copy
import logging
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from kit.report.artefacts import _run_dir, _utf8
from kit.report.parameters import (
    ARTEFACTS_PARAMETER,
    INPUT_PARAMETERS,
    KERNEL_NAME,
    NotebookParameter,
)

log = logging.getLogger(__name__)

SETUP_TAG = "dnskit-setup"
"""Tag of the hidden first cell :func:`_execute` adds to every notebook (:func:`setup_kernel`)."""


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


#: The notebooks' input parameter that names capture files.
CAPTURE_PARAMETER = "capture"

_WARM_SCRIPT = (
    "import sys, warnings\n"
    "warnings.simplefilter('ignore')\n"
    "import kit\n"
    "kit.read_capture(sys.argv[1:], progress=False)\n"
)


def warm_capture_cache(params: Sequence[Mapping[str, Any]], timeout: float) -> list[str]:
    """Read the captures the notebooks will read once, in a child process, before any kernel.

    The cache is keyed by each file's content and the reading options (the notebooks read with
    the defaults, as this does), so the kernels then load the frames from it. A cold parse's
    transient memory (the engine's tables, the polars stages after it, what the allocator keeps
    of them) is then in a process that has exited, not under the kernel's own peak: a report on
    20 captures of 500 k packets peaked at 3.7-4.1 GB for its process tree cold and 3.4-3.5 GB
    warm. A capture that cannot be read is left to the notebook, which says why (a failure here
    is logged, not raised). Returns the files read (relative to the kernels' directory, as
    passed to the notebooks)."""
    import subprocess
    import sys

    files: list[str] = []
    for p in params:
        value = p.get(CAPTURE_PARAMETER)
        for f in [value] if isinstance(value, str) else (value or []):
            if isinstance(f, str) and f not in files:
                files.append(f)
    if not files or os.environ.get("DNSKIT_NO_WARM"):
        return []
    log.info("reading %d capture(s) into the cache before the notebooks", len(files))
    try:
        done = subprocess.run(
            [sys.executable, "-c", _WARM_SCRIPT, *files],
            cwd=os.fspath(_run_dir()),
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        log.warning("capture cache warm-up did not finish (%s); the notebooks read the files", exc)
        return []
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["(no output)"])[-1]
        log.warning("capture cache warm-up failed (%s); the notebooks read the files", last)
        return []
    return files


CONTEXT_INPUTS = frozenset({"run_json", "k8s_snapshot"})
"""Input parameters that give context (the timeline, who the clients are) but no data: a notebook
that receives only these, and no data input, has nothing to show and is not run."""


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
