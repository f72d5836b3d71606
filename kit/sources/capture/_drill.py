"""pyshark drill-down on one packet or one TCP connection (:func:`packet`, :func:`stream`); works
inside a running Jupyter event loop."""

from __future__ import annotations

import concurrent.futures
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kit.sources import _tshark
from kit.sources.capture._check import _check_capture


def _in_thread(fn: Callable[[], Any]) -> Any:
    """Run ``fn`` in a worker thread with its own asyncio loop (pyshark #360/#542)."""
    import asyncio

    def runner() -> Any:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        try:
            return fn()
        finally:
            asyncio.set_event_loop(None)
            loop.close()

    # asyncio's threaded child watcher logs "Unknown child process pid N" when pyshark reaps its
    # own tshark first; that is noise, not an error.
    alog = logging.getLogger("asyncio")
    quiet = _DropMessage("Unknown child process pid")
    alog.addFilter(quiet)
    try:
        with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="dnskit-pyshark") as pool:
            return pool.submit(runner).result()
    finally:
        alog.removeFilter(quiet)


class _DropMessage(logging.Filter):
    def __init__(self, text: str) -> None:
        super().__init__()
        self._text = text

    def filter(self, record: logging.LogRecord) -> bool:
        return self._text not in str(record.msg)


def _pyshark_load(path: str | os.PathLike[str], display_filter: str, two_pass: bool) -> list[Any]:
    import asyncio

    import pyshark  # type: ignore[import-untyped]

    tshark = _tshark.find_tshark()
    p = Path(path)
    # the same checks as read_capture (pyshark starts tshark itself, with the caller's rights and
    # no time limit, so at least no FIFO, device or non-capture reaches it)
    _check_capture(p)

    def work() -> list[Any]:
        loop = asyncio.get_event_loop()
        cap = pyshark.FileCapture(
            os.fspath(p),
            display_filter=display_filter,
            tshark_path=tshark,
            eventloop=loop,
            custom_parameters=["-2"] if two_pass else None,
        )
        try:
            cap.load_packets()
            return list(cap._packets)
        finally:
            cap.close()
            # Capture.__del__ would call close() again on a closed loop at GC; make it a no-op.
            cap.close = lambda: None  # type: ignore[method-assign]

    return list(_in_thread(work))


def packet(path: str | os.PathLike[str], frame: int) -> Any:
    """One packet as a pyshark object, for drill-down in a notebook (e.g. a slow query's frame).

    Works in a Jupyter kernel: pyshark runs in a worker thread with its own event loop.

    Parameters
    ----------
    path
        The capture file.
    frame
        tshark frame number (``frame_query``/``frame_response``/``frame`` columns), 1-based.

    Returns
    -------
    pyshark.packet.packet.Packet
        The dissected packet (two-pass, so ``dns.response_in`` is filled).

    Raises
    ------
    LookupError
        The file has no such frame.
    """
    pkts = _pyshark_load(path, f"frame.number == {int(frame)}", True)
    if not pkts:
        raise LookupError(f"{path}: no frame {frame}")
    return pkts[0]


def stream(path: str | os.PathLike[str], tcp_stream: int) -> list[Any]:
    """All packets of one TCP connection as pyshark objects (``Capture.tcp.stream``).

    Parameters
    ----------
    path
        The capture file.
    tcp_stream
        tshark's ``tcp.stream`` number.

    Returns
    -------
    list[pyshark.packet.packet.Packet]
        In capture order; empty when the stream does not exist.
    """
    return _pyshark_load(path, f"tcp.stream == {int(tcp_stream)}", False)
