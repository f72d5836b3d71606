"""The notebooks' parameters: reading a notebook (:func:`read_notebook`), the assignments of its
``parameters`` cell (:func:`notebook_parameters`), the table of every parameter
(:func:`parameters_table`) and which parameters receive artefacts (:data:`INPUT_PARAMETERS`)."""

from __future__ import annotations

import ast
import io
import os
import re
import tokenize
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from kit.report.artefacts import _param_path
from kit.sources.artefacts import INPUT_KINDS

KERNEL_NAME = "python3"
"""The kernel every notebook runs in (and the kernelspec :func:`read_notebook` adds)."""

INPUT_PARAMETERS: dict[str, tuple[str, ...]] = INPUT_KINDS
"""Notebook parameter name -> artefact kinds it receives (as a list of paths) from the report
(:data:`kit.sources.artefacts.INPUT_KINDS`: a notebook run by hand finds them the same way)."""

ARTEFACTS_PARAMETER = "artefacts"
"""A notebook parameter with this name receives every artefact path given to the report."""


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
