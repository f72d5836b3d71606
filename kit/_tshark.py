"""Find and run tshark (and its sibling capinfos) for the capture loader.

Private helpers for :mod:`kit.capture`. tshark is found the way pyshark finds it, so a notebook
kernel whose ``PATH`` differs from the shell's still works:

1. an explicit path (``tshark_path=`` or the ``DNSKIT_TSHARK`` environment variable),
2. ``tshark`` on ``PATH``,
3. the ``tshark_path`` in pyshark's ``config.ini`` (when pyshark is installed),
4. the usual install locations (``/usr/bin``, ``/usr/local/bin``, ``/usr/sbin``, the macOS app
   bundle, ``Program Files`` on Windows).

Every run uses ``LC_ALL=C`` so numbers never carry a locale's decimal comma.
"""

from __future__ import annotations

import functools
import logging
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from kit.errors import ToolError, ToolNotFoundError

log = logging.getLogger(__name__)

__all__ = [
    "INSTALL_HINT",
    "capinfos_path",
    "editcap_path",
    "find_tshark",
    "run_env",
    "tshark_version",
]

INSTALL_HINT = "sudo apt-get install tshark  (conda: conda install -c conda-forge wireshark)"

_STANDARD_DIRS: tuple[str, ...] = (
    "/usr/bin",
    "/usr/local/bin",
    "/usr/sbin",
    "/usr/lib/tshark",
    "/opt/homebrew/bin",
    "/Applications/Wireshark.app/Contents/MacOS",
)


def run_env() -> dict[str, str]:
    """The environment for tshark runs: the caller's, with ``LC_ALL=C`` and no GUI/display needs."""
    env = dict(os.environ)
    env["LC_ALL"] = "C"
    env["LANG"] = "C"
    return env


def _pyshark_config_path() -> str | None:
    try:
        from pyshark.config import get_config  # type: ignore[import-untyped]
    except Exception:  # pyshark is optional here
        return None
    try:
        cfg = get_config()
        value = cfg.get("tshark", "tshark_path", fallback=None)
    except Exception:
        return None
    return str(value) if value else None


def _is_exe(p: str | os.PathLike[str]) -> bool:
    path = Path(p)
    return path.is_file() and os.access(path, os.X_OK)


def find_tshark(tshark_path: str | os.PathLike[str] | None = None) -> str:
    """Return the path of a usable tshark.

    Parameters
    ----------
    tshark_path
        An explicit path, tried first (then ``$DNSKIT_TSHARK``).

    Raises
    ------
    ToolNotFoundError
        No tshark was found; the message lists every place searched and the install command.
    """
    searched: list[str] = []
    explicit = tshark_path if tshark_path is not None else os.environ.get("DNSKIT_TSHARK")
    if explicit:
        searched.append(os.fspath(explicit))
        if _is_exe(explicit):
            return os.fspath(explicit)
    on_path = shutil.which("tshark")
    searched.append("PATH=" + os.environ.get("PATH", ""))
    if on_path:
        return on_path
    cfg = _pyshark_config_path()
    if cfg:
        searched.append(f"pyshark config.ini tshark_path={cfg}")
        if _is_exe(cfg):
            return cfg
    names = ["tshark.exe"] if sys.platform.startswith("win") else ["tshark"]
    dirs = list(_STANDARD_DIRS)
    if sys.platform.startswith("win"):
        for var in ("ProgramFiles", "ProgramFiles(x86)"):
            base = os.environ.get(var)
            if base:
                dirs.append(os.path.join(base, "Wireshark"))
    for d in dirs:
        for n in names:
            cand = os.path.join(d, n)
            searched.append(cand)
            if _is_exe(cand):
                return cand
    raise ToolNotFoundError("tshark", searched=searched, install_hint=INSTALL_HINT)


def capinfos_path(tshark: str) -> str | None:
    """capinfos from the same install as ``tshark`` (Debian: package wireshark-common), or None."""
    sib = Path(tshark).with_name("capinfos.exe" if tshark.endswith(".exe") else "capinfos")
    if _is_exe(sib):
        return str(sib)
    return shutil.which("capinfos")


def editcap_path(tshark: str) -> str | None:
    """editcap from the same install as ``tshark`` (Debian: package wireshark-common), or None."""
    sib = Path(tshark).with_name("editcap.exe" if tshark.endswith(".exe") else "editcap")
    if _is_exe(sib):
        return str(sib)
    return shutil.which("editcap")


@functools.lru_cache(maxsize=8)
def tshark_version(tshark: str) -> str:
    """The version string of ``tshark`` (e.g. ``"4.0.17"``).

    Raises
    ------
    ToolError
        tshark did not run.
    """
    proc = run([tshark, "-v"], what="tshark -v")
    m = re.search(r"TShark \(Wireshark\) (\S+)", proc.stdout.decode("utf-8", "replace"))
    if not m:
        m = re.search(r"(\d+\.\d+\.\d+)", proc.stdout.decode("utf-8", "replace"))
    return m.group(1).rstrip(".") if m else "unknown"


def run(
    argv: Sequence[str], *, what: str, check: bool = True
) -> subprocess.CompletedProcess[bytes]:
    """Run a tool to completion with the C locale and return its output.

    Raises
    ------
    ToolError
        The program could not start, or (with ``check``) exited non-zero.
    """
    try:
        proc = subprocess.run(
            list(argv), capture_output=True, env=run_env(), stdin=subprocess.DEVNULL, check=False
        )
    except OSError as exc:
        raise ToolError(f"{what}: could not run {argv[0]}: {exc}") from exc
    if check and proc.returncode != 0:
        raise ToolError(
            f"{what} failed with exit code {proc.returncode}: {' '.join(argv)}\n"
            + proc.stderr.decode("utf-8", "replace")[-2000:]
        )
    return proc
