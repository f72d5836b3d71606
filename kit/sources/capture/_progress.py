"""The tqdm bar of :func:`kit.sources.capture.read_capture` (packets processed across files)."""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def _want_progress(progress: bool | None) -> bool:
    if progress is not None:
        return progress
    if "ipykernel" in sys.modules:
        try:
            from IPython import get_ipython  # type: ignore[attr-defined]

            ip = get_ipython()
            if ip is not None and getattr(ip, "kernel", None) is not None:
                return True
        except Exception:
            pass
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


class _Progress:
    """A tqdm bar of packets processed across files (updated from tshark's output), or nothing."""

    def __init__(self, files: Sequence[Path], *, enabled: bool) -> None:
        self._lock = threading.Lock()
        self._done: dict[Path, int] = {}
        self._bar: Any = None
        if enabled:
            from tqdm.auto import tqdm

            self._bar = tqdm(total=None, unit="pkt", unit_scale=True, desc="read_capture")

    def _set(self, path: Path, n: int) -> None:
        if self._bar is None:
            return
        with self._lock:
            old = self._done.get(path, 0)
            if n > old:
                self._done[path] = n
                self._bar.update(n - old)

    def poll(self, path: Path, out: Path) -> None:
        """Read the frame number of the last complete line tshark wrote."""
        if self._bar is None:
            return
        try:
            with out.open("rb") as fh:
                fh.seek(0, os.SEEK_END)
                size = fh.tell()
                fh.seek(max(0, size - 8192))
                tail = fh.read()
        except OSError:
            return
        lines = tail.split(b"\n")
        if len(lines) >= 2:
            first = lines[-2].split(b"\t", 1)[0]
            if first.isdigit():
                self._set(path, int(first))

    def finish(self, path: Path, n: int) -> None:
        self._set(path, n)

    def skip(self, path: Path) -> None:
        if self._bar is not None:
            self._bar.set_postfix_str(f"{path.name} from cache", refresh=False)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
