"""The guided notebooks as files: where they are, working copies for JupyterLab, and its set-up.

The notebooks' source of truth is ``notebooks/*.py`` (jupytext ``py:percent``) in the repository;
the wheel ships copies as package data (``kit/_notebooks/``, written by the build step in
``setup.py``), so ``dnskit report`` works from any directory after ``pip install``.
:func:`notebook_dir` finds them: the package data when present, else the checkout.

Nobody edits or runs the shipped notebooks in place: :func:`write_working_copies` writes copies
parameterised for an incident (``artefacts = [...]`` in their ``parameters`` cell) into a folder of
the user's (``dnskit notebooks DIR ARTEFACTS...``; ``dnskit open`` and ``make jupyter`` use
``dnskit-notebooks/``, ignored by git), so opening, running and saving never changes a tracked
file. :func:`setup_lab` makes JupyterLab open ``.py`` notebooks as notebooks on double-click
(jupytext's ``Jupytext Notebook`` viewer, set in JupyterLab's settings overrides of this
environment).
"""

from __future__ import annotations

import ast
import json
import logging
import os
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from kit.sources.artefacts import REPO_ROOT, checkout_root

__all__ = [
    "LAB_OVERRIDES",
    "PACKAGED_DIR",
    "WORK_DIR",
    "WorkingCopy",
    "default_notebooks",
    "lab_command",
    "lab_overrides_path",
    "notebook_dir",
    "setup_lab",
    "write_working_copies",
]

log = logging.getLogger(__name__)

PACKAGED_DIR = Path(__file__).resolve().parents[1] / "_notebooks"
"""Where the wheel holds its copies of ``notebooks/*.py``."""

WORK_DIR = "dnskit-notebooks"
"""Default folder of the working copies (``dnskit open``, ``make jupyter``), ignored by git."""

LAB_OVERRIDES: dict[str, dict[str, dict[str, str]]] = {
    "@jupyterlab/docmanager-extension:plugin": {"defaultViewers": {"python": "Jupytext Notebook"}}
}
"""JupyterLab setting the kit adds: open ``.py`` files with jupytext's notebook viewer."""

ARTEFACTS_PARAMETER = "artefacts"


def notebook_dir() -> Path:
    """The folder of the kit's notebooks: the package data of a wheel, else the checkout's.

    Raises
    ------
    FileNotFoundError
        Neither exists (a broken install).
    """
    if any(PACKAGED_DIR.glob("*.py")):
        return PACKAGED_DIR
    root = checkout_root()
    if root is not None:
        return root / "notebooks"
    raise FileNotFoundError(
        f"the kit's notebooks are missing: neither {PACKAGED_DIR} (package data) nor "
        f"{REPO_ROOT / 'notebooks'} (source checkout) holds any; reinstall dns-incident-kit"
    )


def default_notebooks() -> list[Path]:
    """The kit's notebooks (``NN-topic.py`` in :func:`notebook_dir`), in name order."""
    return sorted(p for p in notebook_dir().glob("*.py") if not p.name.startswith(("_", ".")))


@dataclass(frozen=True)
class WorkingCopy:
    """One notebook written (or kept) by :func:`write_working_copies`.

    Attributes
    ----------
    path : pathlib.Path
        The working copy.
    status : str
        ``"written"`` (new or replaced), ``"unchanged"`` (already identical) or ``"kept"`` (it
        was edited (it differs from the kit's notebook in more than the ``artefacts`` default) and
        ``force`` was not given).
    """

    path: Path
    status: str


def _absolute_artefacts(artefacts: Sequence[str | os.PathLike[str]]) -> list[str]:
    """Artefact arguments as absolute paths (globs kept as absolute globs), each checked.

    Raises
    ------
    FileNotFoundError
        An artefact does not exist, a glob matches nothing, or a folder holds no file.
    """
    from kit.sources._io import walk_artefacts

    out = []
    for item in artefacts:
        text = os.fspath(item)
        p = Path(text).expanduser()
        absolute = p if p.is_absolute() else Path.cwd() / p
        walk_artefacts([os.fspath(absolute)])  # raises the kit's one-line FileNotFoundError
        out.append(os.path.normpath(os.fspath(absolute)))
    return out


def _with_artefacts(source: str, value: list[str] | None, path: Path) -> str:
    """A parameters cell's source with the ``artefacts`` default replaced by ``value``."""
    if value is None:
        return source
    tree = ast.parse(source)
    for node in tree.body:
        if (
            isinstance(node, ast.AnnAssign)
            and isinstance(node.target, ast.Name)
            and node.target.id == ARTEFACTS_PARAMETER
            and node.value is not None
        ):
            lines = source.splitlines(keepends=True)
            v = node.value
            if v.lineno != v.end_lineno or v.end_col_offset is None:
                raise ValueError(f"{path}: the artefacts default must fit on one line")
            i = v.lineno - 1
            line = lines[i]
            # col offsets are in UTF-8 bytes
            raw = line.encode("utf-8")
            new = raw[: v.col_offset] + repr(value).encode("utf-8") + raw[v.end_col_offset :]
            lines[i] = new.decode("utf-8")
            return "".join(lines)
    raise ValueError(f"{path}: its parameters cell has no `artefacts: ... = ...` parameter")


def _kernelspec() -> dict[str, str]:
    """The kernelspec the working copies name: ``python3`` with its installed display name."""
    spec = {"name": "python3", "display_name": "Python 3", "language": "python"}
    try:
        from jupyter_client.kernelspec import KernelSpecManager

        spec["display_name"] = KernelSpecManager().get_kernel_spec("python3").display_name
    except Exception as exc:  # no jupyter_client or no kernel: JupyterLab will ask
        log.debug("kernelspec python3: %s", exc)
    return spec


def write_working_copies(
    dest: str | os.PathLike[str],
    artefacts: Sequence[str | os.PathLike[str]] | None = None,
    *,
    notebooks: Sequence[str | os.PathLike[str]] | None = None,
    force: bool = False,
) -> list[WorkingCopy]:
    """Write the notebooks, parameterised for an incident, into ``dest`` (created if needed).

    Parameters
    ----------
    dest
        The folder of the working copies. Open and run them there; the kit's notebooks are never
        touched.
    artefacts
        The incident's folders, globs or files, relative to the current directory or absolute;
        they become the ``artefacts`` parameter's default in every copy (as absolute paths).
        ``None`` or empty keeps the default: the sample data of the checkout.
    notebooks
        Notebook files to copy; ``None`` means :func:`default_notebooks`.
    force
        Replace copies that were edited (by default they are kept; a copy that differs only in its
        ``artefacts`` default is re-pointed at the new artefacts).

    Returns
    -------
    list[WorkingCopy]
        One per notebook, in name order.

    Raises
    ------
    FileNotFoundError
        An artefact does not exist (or a glob matches nothing).
    KitError
        No artefacts given and no sample data (an installed wheel).
    """
    import jupytext

    from kit.errors import KitError
    from kit.sources.artefacts import sample_dir

    given = _absolute_artefacts(artefacts or [])
    if not given and sample_dir() is None:
        raise KitError(
            "no artefacts given and no sample data here (it ships with the source checkout, not "
            "the package): name your incident's folder, e.g. dnskit notebooks DIR /path/to/incident"
        )
    out_dir = Path(dest)
    out_dir.mkdir(parents=True, exist_ok=True)
    spec = _kernelspec()
    paths = default_notebooks() if notebooks is None else [Path(n) for n in notebooks]
    written = []
    for src in paths:
        nb = jupytext.read(src, fmt="py:percent")
        for cell in nb.cells:
            if "parameters" in cell.metadata.get("tags", []):
                cell.source = _with_artefacts(cell.source, given or None, src)
        nb.metadata["kernelspec"] = spec
        nb.metadata.setdefault("jupytext", {}).pop("notebook_metadata_filter", None)
        text = jupytext.writes(nb, fmt="py:percent")
        target = out_dir / src.name
        if target.exists():
            old = target.read_text(encoding="utf-8")
            if old == text:
                written.append(WorkingCopy(target, "unchanged"))
                continue
            if not force and _unedited(old) != _unedited(text):
                log.info("%s exists with other content (your edits?): kept", target)
                written.append(WorkingCopy(target, "kept"))
                continue
        target.write_text(text, encoding="utf-8")
        written.append(WorkingCopy(target, "written"))
    return written


_POINTING = re.compile(r"(?m)^(artefacts:[^=]*=).*$|^#\s+jupytext_version:.*$")


def _unedited(text: str) -> str:
    """A working copy without what the kit writes differently for another incident (the
    ``artefacts`` default) or another jupytext: equal for two copies the user has not edited."""
    return _POINTING.sub(lambda m: m.group(1) or "", text)


def lab_overrides_path() -> Path:
    """The settings-overrides file the kit writes for JupyterLab in this environment:
    ``<JupyterLab app dir>/settings/overrides.d/dns-incident-kit.json``."""
    try:
        from jupyterlab.commands import get_app_dir

        app_dir = Path(get_app_dir())
    except ImportError:
        app_dir = Path(sys.prefix) / "share" / "jupyter" / "lab"
    return app_dir / "settings" / "overrides.d" / "dns-incident-kit.json"


def setup_lab() -> Path:
    """Make this environment's JupyterLab open ``.py`` notebooks as notebooks on double-click.

    Writes :data:`LAB_OVERRIDES` to :func:`lab_overrides_path` (a file of the kit's own, next to
    other packages' overrides; the user's own settings still win). Idempotent.

    Returns
    -------
    pathlib.Path
        The file written.

    Raises
    ------
    OSError
        The environment is not writable.
    """
    path = lab_overrides_path()
    text = json.dumps(LAB_OVERRIDES, indent=2) + "\n"
    if not path.is_file() or path.read_text(encoding="utf-8") != text:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        log.info("wrote %s", path)
    return path


def lab_command(root: str | os.PathLike[str], extra: Sequence[str] = ()) -> list[str]:
    """The command that starts JupyterLab on the working copies with this Python (and kernel).

    As root (a container, a lab VM), ``--allow-root`` is added: JupyterLab refuses to start
    otherwise.
    """
    as_root = hasattr(os, "geteuid") and os.geteuid() == 0 and "--allow-root" not in extra
    return [
        sys.executable,
        "-m",
        "jupyterlab",
        f"--ServerApp.root_dir={os.fspath(Path(root).resolve())}",
        *(["--allow-root"] if as_root else []),
        *extra,
    ]
