"""The guided notebooks: thin (checked on their source with ``ast``), parameterised the same way,
and every one executed through the same path as ``dnskit report`` on its default artefacts.

A notebook that fails here leaves its executed copy in ``test-artifacts/`` for inspection.
"""

from __future__ import annotations

import ast
import logging
import re
import shutil
from pathlib import Path

import pytest

import kit.report as report

REPO = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((REPO / "notebooks").glob("*.py"))
ALLOWED_IMPORTS = {("polars", "pl"), ("altair", "alt")}


def thinness_violations(source: str, filename: str = "<notebook>") -> list[str]:
    """Every construct a notebook must not contain, as ``file:line: what: the line``.

    Not allowed: ``def``, ``lambda``, ``class``, loops (``for``, ``while``, comprehensions), and
    imports other than ``kit`` (and its modules), ``polars as pl`` and ``altair as alt``.
    """
    lines = source.splitlines()
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source, filename=filename)):
        what = None
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            what = "function definition"
        elif isinstance(node, ast.Lambda):
            what = "lambda (a function definition)"
        elif isinstance(node, ast.ClassDef):
            what = "class definition"
        elif isinstance(node, ast.For | ast.AsyncFor | ast.While):
            what = "loop"
        elif isinstance(node, ast.ListComp | ast.SetComp | ast.DictComp | ast.GeneratorExp):
            what = "comprehension (a loop)"
        elif isinstance(node, ast.ImportFrom):
            what = "from-import (use `import kit` and kit.<module>.<name>)"
        elif isinstance(node, ast.Import):
            for alias in node.names:
                ok = (alias.name == "kit" or alias.name.startswith("kit.")) and alias.asname is None
                ok = ok or (alias.name, alias.asname) in ALLOWED_IMPORTS
                if not ok:
                    shown = alias.name + (f" as {alias.asname}" if alias.asname else "")
                    what = f"import of {shown} (only kit, polars as pl, altair as alt)"
        if what is not None:
            lineno = getattr(node, "lineno", 0)
            found.append((lineno, what))
    return [
        f"{filename}:{n}: {what}: {lines[n - 1].strip() if 0 < n <= len(lines) else ''}"
        for n, what in sorted(found)
    ]


def test_thinness_checker_names_each_offending_line(data_dir: Path) -> None:
    path = data_dir / "report" / "not_thin.py.txt"
    got = thinness_violations(path.read_text(encoding="utf-8"), "not_thin.py")
    # line numbers counted by hand in tests/data/report/not_thin.py.txt
    assert got == [
        "not_thin.py:5: import of os (only kit, polars as pl, altair as alt): import os",
        "not_thin.py:6: import of polars (only kit, polars as pl, altair as alt): import polars",
        "not_thin.py:11: from-import (use `import kit` and kit.<module>.<name>): from kit import report",
        "not_thin.py:14: function definition: def helper():",
        "not_thin.py:18: class definition: class Thing:",
        "not_thin.py:22: loop: for i in range(n):",
        "not_thin.py:24: loop: while False:",
        "not_thin.py:26: comprehension (a loop): squares = [i * i for i in range(n)]",
        "not_thin.py:27: lambda (a function definition): f = lambda x: x  # noqa: E731",
    ]


def test_there_are_notebooks() -> None:
    names = [p.stem for p in NOTEBOOKS]
    assert "00-start-here" in names


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_thin(path: Path) -> None:
    assert thinness_violations(path.read_text(encoding="utf-8"), str(path.relative_to(REPO))) == []


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_parameters_cell(path: Path) -> None:
    nb = report.read_notebook(path)
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1, "exactly one cell tagged parameters"
    assert nb.metadata["kernelspec"]["name"] == "python3"
    params = report.notebook_parameters(nb)
    assert params, "the parameters cell declares parameters"
    names = [p.name for p in params]
    assert report.ARTEFACTS_PARAMETER in names, (
        "every notebook is pointed at an incident by artefacts"
    )
    for p in params:
        assert p.annotation, f"{path.name}: parameter {p.name} has no type annotation"
        assert p.help, f"{path.name}: parameter {p.name} has no trailing help comment"
        # inputs name no file: the sample applies only when no artefacts are given, and then
        # kit.sources.artefacts finds every input in it by kind (never a sample file beside an incident's)
        if p.name in report.INPUT_PARAMETERS or p.name == report.ARTEFACTS_PARAMETER:
            assert p.default in ("None", "[]"), f"{path.name}: {p.name} = {p.default}"
            assert p.optional or p.default == "[]", f"{path.name}: {p.name}"


def _papermill_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name.startswith("papermill.translators") and r.levelno >= logging.WARNING
    ]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_papermill_parses_the_parameters_cell(path: Path, caplog: pytest.LogCaptureFixture) -> None:
    # papermill reads `name: type = value  # help` lines with a regex; a second `=` on a line
    # (in a help comment) made it log "Unable to parse line N" on every run
    from papermill.translators import PythonTranslator

    nb = report.read_notebook(path)
    cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    with caplog.at_level(logging.WARNING, logger="papermill"):
        PythonTranslator.inspect(cell)
    assert _papermill_warnings(caplog) == []


@pytest.mark.notebook
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_through_the_report(
    path: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    out = tmp_path / f"{path.stem}.html"
    with caplog.at_level(logging.WARNING, logger="papermill"):
        result = report.render([path], output_html=out, executed_dir=tmp_path / "executed")
    if not result.ok:
        keep = REPO / "test-artifacts"
        keep.mkdir(exist_ok=True)
        for run in result.runs:
            if run.executed_ipynb is not None:
                shutil.copy(run.executed_ipynb, keep / f"{run.name}-err.ipynb")
    assert [(r.name, r.status, r.reason) for r in result.runs] == [(path.stem, "ok", "")]
    assert _papermill_warnings(caplog) == []
    html = out.read_text(encoding="utf-8")
    assert "Traceback" not in html
    assert re.search(r"<script", html, re.IGNORECASE) is None


@pytest.mark.notebook
def test_notebooks_05_06_on_a_folder_with_broken_configs(tmp_path: Path) -> None:
    """A broken Corefile and unbound.conf beside a good capture (issue 14): 05 and 06 still run,
    06 lists the unreadable files and the checks they stop, and the capture's findings fire."""
    src = REPO / "data" / "scenarios" / "forced-tcp-syn-drops"
    if not (src / "run.json").is_file():
        pytest.fail(f"{src} missing: regenerate it with `make scenarios`")
    art = tmp_path / "artefacts"
    art.mkdir()
    shutil.copy(src / "captures" / "node1.pcap.gz", art / "node1.pcap.gz")
    text = (src / "configs" / "unbound-node1.incident.conf").read_text()
    missing = 'server:\n    include: "/nonexistent/dnskit-missing.conf"'
    (art / "unbound-node1.conf").write_text(text.replace("server:", missing, 1))
    (art / "Corefile").write_text(
        ".:53 {\n    forward . 169.254.169.253 {\n        force_tcp\n    }\n    # "
        + "x" * 70_000
        + "\n}\n"
    )
    books = [p for p in NOTEBOOKS if p.stem.startswith(("05-", "06-"))]
    out = tmp_path / "report.html"
    result = report.render(
        books, output_html=out, executed_dir=tmp_path / "executed", artefacts=[art]
    )
    if not result.ok:
        keep = REPO / "test-artifacts"
        keep.mkdir(exist_ok=True)
        for run in result.runs:
            if run.executed_ipynb is not None:
                shutil.copy(run.executed_ipynb, keep / f"{run.name}-broken-err.ipynb")
    assert [(r.name, r.status) for r in result.runs] == [(p.stem, "ok") for p in books]
    html = out.read_text(encoding="utf-8")
    assert "Traceback" not in html
    assert "unbound-node1.conf could not be read" in html
    assert "syn-retransmissions" in html
