"""Find and run tshark (and its sibling capinfos) for the capture loader.

Private helpers for :mod:`kit.sources.capture`. tshark is found the way pyshark finds it, so a notebook
kernel whose ``PATH`` differs from the shell's still works:

1. an explicit path (``tshark_path=`` or the ``DNSKIT_TSHARK`` environment variable),
2. ``tshark`` on ``PATH``,
3. the ``tshark_path`` in pyshark's ``config.ini`` (when pyshark is installed),
4. the usual install locations (``/usr/bin``, ``/usr/local/bin``, ``/usr/sbin``, the macOS app
   bundle, ``Program Files`` on Windows).

Every run uses ``LC_ALL=C`` so numbers never carry a locale's decimal comma.

Captures are untrusted input, and tshark's dissectors are a large attack surface, so every run is
fenced in:

* **Time limit.** Each run of tshark, capinfos or editcap is stopped (its whole process group
  killed) after :func:`tool_timeout_s` seconds: :data:`TOOL_TIMEOUT_BASE_S` plus
  :data:`TOOL_TIMEOUT_S_PER_MB` per MB of input (a gzipped input counts :data:`GZIP_SIZE_FACTOR`
  times its size), i.e. 120 s + 10 s/MB, about 100 times tshark's usual time. The environment
  variable ``DNSKIT_TOOL_TIMEOUT_S`` replaces it with a fixed limit in seconds (``0``: none).
  A run over its limit is a :class:`~kit.errors.ToolError` naming the tool and the file.
* **No root.** When the kit runs as root (euid 0), the tools run as the user ``nobody`` (its
  group, no supplementary groups; ``DNSKIT_TOOL_USER`` names another user, ``root`` keeps root),
  with ``HOME``, ``XDG_CONFIG_HOME``, ``XDG_CACHE_HOME`` and ``TMPDIR`` pointing at a private
  temporary folder of that user. The capture is opened by the kit and handed over as standard
  input (``-r -``), so the tool needs no permission on the file or its folders.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any

from kit.errors import ToolError, ToolNotFoundError

log = logging.getLogger(__name__)

__all__ = [
    "GZIP_SIZE_FACTOR",
    "INSTALL_HINT",
    "TIMEOUT_ENV",
    "TOOL_TIMEOUT_BASE_S",
    "TOOL_TIMEOUT_S_PER_MB",
    "USER_ENV",
    "capinfos_path",
    "editcap_path",
    "find_tshark",
    "random_access_copy",
    "run",
    "run_as",
    "run_env",
    "said",
    "spawn",
    "tool_timeout_s",
    "tshark_version",
    "wait",
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


#: Seconds every tool run may take, plus :data:`TOOL_TIMEOUT_S_PER_MB` per MB of input.
TOOL_TIMEOUT_BASE_S = 120.0
#: Seconds per MB (10^6 bytes) of input added to the time limit; tshark needs ~0.1 s/MB.
TOOL_TIMEOUT_S_PER_MB = 10.0
#: A gzipped input counts this many times its size (DNS captures compress 3-6:1).
GZIP_SIZE_FACTOR = 10
#: Environment variable: a fixed time limit in seconds for every tool run (``0``: none).
TIMEOUT_ENV = "DNSKIT_TOOL_TIMEOUT_S"
#: Environment variable: the user the tools run as when the kit runs as root (default nobody).
USER_ENV = "DNSKIT_TOOL_USER"


def tool_timeout_s(size_bytes: int = 0, *, gzipped: bool = False) -> float | None:
    """The time limit in seconds for one tool run over an input of ``size_bytes`` bytes.

    ``$DNSKIT_TOOL_TIMEOUT_S`` when set (``0`` or less: ``None``, no limit), else
    :data:`TOOL_TIMEOUT_BASE_S` + :data:`TOOL_TIMEOUT_S_PER_MB` x MB, a gzipped input counting
    :data:`GZIP_SIZE_FACTOR` times its size.

    Raises
    ------
    ValueError
        ``$DNSKIT_TOOL_TIMEOUT_S`` is not a number.
    """
    env = os.environ.get(TIMEOUT_ENV, "").strip()
    if env:
        try:
            fixed = float(env)
        except ValueError:
            raise ValueError(
                f"{TIMEOUT_ENV}={env!r}: expected a number of seconds (0: no limit)"
            ) from None
        return fixed if fixed > 0 else None
    mb = max(0, size_bytes) / 1e6 * (GZIP_SIZE_FACTOR if gzipped else 1)
    return TOOL_TIMEOUT_BASE_S + TOOL_TIMEOUT_S_PER_MB * mb


def run_as() -> tuple[int, int] | None:
    """``(uid, gid)`` the tools run as: ``nobody`` when the kit runs as root, else ``None``.

    ``$DNSKIT_TOOL_USER`` names another user (or ``root``: no change). Unknown names fall back to
    uid/gid 65534 (``nobody`` on Linux).
    """
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return None
    name = os.environ.get(USER_ENV, "").strip() or "nobody"
    try:
        import pwd

        pw = pwd.getpwnam(name)
        uid, gid = pw.pw_uid, pw.pw_gid
    except (ImportError, KeyError):
        uid = gid = 65534
    if uid == 0:
        return None
    return uid, gid


_home_lock = threading.Lock()
_homes: dict[tuple[int, int], str] = {}


def _private_home(ids: tuple[int, int]) -> str:
    """A temporary folder owned by ``ids`` for the tools' HOME/config/cache/TMPDIR.

    Named ``dnskit-tools-<pid>-*``; removed at exit, and the folders of kit processes that ended
    without removing theirs (a killed notebook kernel) are removed when a new one is made.
    """
    with _home_lock:
        home = _homes.get(ids)
        if home is None or not os.path.isdir(home):
            _remove_stale_homes()
            home = tempfile.mkdtemp(prefix=f"dnskit-tools-{os.getpid()}-")
            os.chown(home, *ids)
            _homes[ids] = home
            atexit.register(shutil.rmtree, home, True)
        return home


def _remove_stale_homes() -> None:
    """Remove ``dnskit-tools-<pid>-*`` folders in the temporary folder whose process is gone."""
    tmp = tempfile.gettempdir()
    try:
        names = os.listdir(tmp)
    except OSError:
        return
    for name in names:
        m = re.fullmatch(r"dnskit-tools-(\d+)-\w+", name)
        if not m or int(m.group(1)) == os.getpid():
            continue
        try:
            os.kill(int(m.group(1)), 0)
            continue  # still running
        except ProcessLookupError:
            pass
        except OSError:
            continue
        path = os.path.join(tmp, name)
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path, ignore_errors=True)


def said(stderr: bytes) -> str:
    """What a tool said on stderr, on one line: without tshark's "Running as user ... could be
    dangerous" banner and its ``tshark: `` prefixes."""
    return " ".join(
        ln.strip().removeprefix("tshark: ")
        for ln in stderr.decode("utf-8", "replace").splitlines()
        if ln.strip() and "Running as user" not in ln and "could be dangerous" not in ln
    )


@contextlib.contextmanager
def random_access_copy(path: str | os.PathLike[str]) -> Iterator[str]:
    """A path to ``path`` that the tools can open by name, for runs that cannot read standard input
    (``tshark -2`` needs random access to the file).

    When the tools run as the kit's user, that is ``path`` itself. When they run as another user
    (:func:`run_as`, the kit is root), it is a copy of the file, made by the kit in that user's
    private folder and readable only by that user, removed afterwards; so the tool still needs
    no permission on the original or its folders.
    """
    ids = run_as()
    if ids is None:
        yield os.fspath(path)
        return
    d = tempfile.mkdtemp(prefix="copy-", dir=_private_home(ids))
    try:
        dst = os.path.join(d, "capture")
        shutil.copyfile(path, dst)
        os.chmod(dst, 0o600)
        os.chown(dst, *ids)
        os.chown(d, *ids)
        yield dst
    finally:
        shutil.rmtree(d, ignore_errors=True)


def run_env() -> dict[str, str]:
    """The environment for tshark runs: the caller's, with ``LC_ALL=C`` and no GUI/display needs.

    When the tools run as another user (see :func:`run_as`), ``HOME``, ``XDG_CONFIG_HOME``,
    ``XDG_CACHE_HOME`` and ``TMPDIR`` point at a private folder of that user.
    """
    env = dict(os.environ)
    env["LC_ALL"] = "C"
    env["LANG"] = "C"
    ids = run_as()
    if ids is not None:
        home = _private_home(ids)
        env.update(HOME=home, XDG_CONFIG_HOME=home, XDG_CACHE_HOME=home, TMPDIR=home)
    return env


def spawn(
    argv: Sequence[str],
    *,
    what: str,
    stdin: IO[bytes] | int | None = subprocess.DEVNULL,
    stdout: IO[bytes] | int | None = subprocess.PIPE,
    stderr: IO[bytes] | int | None = subprocess.PIPE,
) -> subprocess.Popen[bytes]:
    """Start a tool in its own process group, as :func:`run_as`'s user, with :func:`run_env`.

    Raises
    ------
    ToolError
        The program could not start.
    """
    kwargs: dict[str, Any] = {}
    if os.name == "posix":
        kwargs["process_group"] = 0
        ids = run_as()
        if ids is not None:
            kwargs.update(user=ids[0], group=ids[1], extra_groups=[])
    try:
        return subprocess.Popen(
            list(argv), stdin=stdin, stdout=stdout, stderr=stderr, env=run_env(), **kwargs
        )
    except (OSError, subprocess.SubprocessError) as exc:
        hint = ""
        if "user" in kwargs:
            hint = (
                f" as uid {kwargs['user']}/gid {kwargs['group']} (the kit runs as root and drops "
                f"to nobody for untrusted captures; set {USER_ENV} to another user, or to root "
                "to keep root)"
            )
        raise ToolError(f"{what}: could not run {argv[0]}{hint}: {exc}") from exc


def _kill(proc: subprocess.Popen[bytes]) -> None:
    """Kill ``proc`` and everything in its process group, then reap it."""
    if os.name == "posix":
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            proc.kill()
    else:
        proc.kill()
    proc.wait()


def _timeout_error(what: str, timeout: float, source: str | os.PathLike[str] | None) -> ToolError:
    on = f" on {os.fspath(source)}" if source is not None else ""
    return ToolError(
        f"{what}{on} did not finish within its time limit of {timeout:g} s and was stopped "
        f"(set {TIMEOUT_ENV} to a larger number of seconds, or 0 for no limit, if the input is "
        "simply large)"
    )


def wait(
    proc: subprocess.Popen[bytes],
    *,
    what: str,
    timeout: float | None,
    source: str | os.PathLike[str] | None = None,
    poll: Callable[[], None] | None = None,
    every: float = 0.2,
) -> int:
    """Wait for a tool started by :func:`spawn` (whose output goes to files), calling ``poll``
    every ``every`` seconds; kill its process group when it runs past ``timeout`` seconds or the
    wait is interrupted. Returns the exit code.

    Raises
    ------
    ToolError
        The time limit passed (the message names the tool and ``source``).
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    try:
        while True:
            step = every if deadline is None else max(0.0, min(every, deadline - time.monotonic()))
            try:
                return proc.wait(timeout=step)
            except subprocess.TimeoutExpired:
                if deadline is not None and time.monotonic() >= deadline:
                    _kill(proc)
                    raise _timeout_error(what, timeout or 0.0, source) from None
                if poll is not None:
                    poll()
    except BaseException:
        if proc.returncode is None:
            _kill(proc)
        raise


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
    argv: Sequence[str],
    *,
    what: str,
    check: bool = True,
    stdin_path: str | os.PathLike[str] | None = None,
    source: str | os.PathLike[str] | None = None,
    timeout: float | bool | None = True,
    stdout: IO[bytes] | None = None,
) -> subprocess.CompletedProcess[bytes]:
    """Run a tool to completion (see :func:`spawn`) and return its output.

    Parameters
    ----------
    argv
        The command line; the input file, if any, is given as ``-`` and passed as ``stdin_path``.
    what
        The tool's name for messages (``"capinfos"``, ``"editcap"``...).
    check
        Raise when the exit code is not 0.
    stdin_path
        A file opened by the kit (with the kit's permissions) and handed to the tool as stdin.
    source
        The file named in messages (default ``stdin_path``).
    timeout
        Seconds; ``True``: :func:`tool_timeout_s` for the size of ``stdin_path``; ``None``: none.
    stdout
        A file to write the tool's output to (then ``stdout`` of the result is empty).

    Raises
    ------
    ToolError
        The program could not start, ran past its time limit, or (with ``check``) exited non-zero.
    """
    if source is None:
        source = stdin_path
    fh: IO[bytes] | None = None
    try:
        if stdin_path is not None:
            try:
                fh = open(stdin_path, "rb", buffering=0)  # noqa: SIM115 - closed below
            except OSError as exc:
                raise ToolError(
                    f"{what}: cannot open {os.fspath(stdin_path)}: {exc.strerror or exc}"
                ) from exc
        if timeout is True:
            size = os.fstat(fh.fileno()).st_size if fh is not None else 0
            limit = tool_timeout_s(size, gzipped=fh is not None and _is_gzip(fh))
        else:
            limit = timeout or None
        proc = spawn(
            argv,
            what=what,
            stdin=fh if fh is not None else subprocess.DEVNULL,
            stdout=stdout if stdout is not None else subprocess.PIPE,
        )
        try:
            out, err = proc.communicate(timeout=limit)
        except subprocess.TimeoutExpired:
            _kill(proc)
            proc.communicate()
            raise _timeout_error(what, limit or 0.0, source) from None
        except BaseException:
            _kill(proc)
            raise
    finally:
        if fh is not None:
            fh.close()
    result = subprocess.CompletedProcess(list(argv), proc.returncode, out or b"", err or b"")
    if check and result.returncode != 0:
        on = f" on {os.fspath(source)}" if source is not None else ""
        raise ToolError(
            f"{what}{on} failed with exit code {result.returncode}: {' '.join(argv)}\n"
            + result.stderr.decode("utf-8", "replace")[-2000:]
        )
    return result


def _is_gzip(fh: IO[bytes]) -> bool:
    """Whether an open file starts with the gzip magic (read without moving its position)."""
    try:
        return os.pread(fh.fileno(), 2, 0) == b"\x1f\x8b"
    except OSError:
        return False
