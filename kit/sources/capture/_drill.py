"""pyshark drill-down on one packet or one TCP connection (:func:`packet`, :func:`stream`).

tshark is run by the kit, not by pyshark: like every other tshark run of the kit (see
:mod:`kit.sources._tshark`) it gets the capture on standard input (opened by the kit), runs under
the time limit for the file's size and, when the kit runs as root, as ``nobody``. Its PDML output
(what ``pyshark.FileCapture`` asks tshark for) goes to a temporary file and each ``<packet>`` is
turned into a pyshark ``Packet`` by pyshark's own PDML parser, so the objects are the ones
``FileCapture`` gives. No asyncio loop is involved, so this works inside a running Jupyter kernel
as it does anywhere.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from kit.errors import ToolError
from kit.sources import _tshark
from kit.sources.capture._check import _check_capture


def _gzipped(p: Path) -> bool:
    with p.open("rb") as fh:
        return fh.read(2) == b"\x1f\x8b"


def _pdml_packets(data: bytes) -> Iterator[bytes]:
    """The ``<packet>...</packet>`` elements of tshark's PDML output, in order."""
    end = 0
    while True:
        start = data.find(b"<packet>", end)
        if start < 0:
            return
        end = data.find(b"</packet>", start)
        if end < 0:
            return  # cut short: tshark stopped (its error is reported by the caller)
        end += len(b"</packet>")
        yield data[start:end]


def _pyshark_load(path: str | os.PathLike[str], display_filter: str, two_pass: bool) -> list[Any]:
    """The packets of ``path`` that pass ``display_filter``, as pyshark ``Packet`` objects.

    Raises
    ------
    InputFormatError
        The file is not a capture the kit reads (checked as :func:`read_capture` checks it).
    ToolError
        tshark failed or ran past its time limit (the message names the file).
    """
    from pyshark.tshark.output_parser.tshark_xml import (  # type: ignore[import-untyped]
        packet_from_xml_packet,
    )

    tshark = _tshark.find_tshark()
    p = Path(path)
    _check_capture(p)
    argv = [tshark, "-l", "-n", "-T", "pdml", "-Y", display_filter]
    with contextlib.ExitStack() as stack:
        tmpd = stack.enter_context(tempfile.TemporaryDirectory(prefix="dnskit-pdml-"))
        out = Path(tmpd) / "packets.pdml"
        fo = stack.enter_context(out.open("wb"))
        if two_pass:  # -2 needs random access: the file by name (a private copy when root)
            name = stack.enter_context(_tshark.random_access_copy(p))
            proc = _tshark.run(
                [*argv, "-2", "-r", name],
                what="tshark (pyshark drill-down)",
                check=False,
                source=p,
                timeout=_tshark.tool_timeout_s(p.stat().st_size, gzipped=_gzipped(p)),
                stdout=fo,
            )
        else:
            proc = _tshark.run(
                [*argv, "-r", "-"],
                what="tshark (pyshark drill-down)",
                check=False,
                stdin_path=p,
                stdout=fo,
            )
        fo.close()
        data = out.read_bytes()
    if proc.returncode != 0 and b"<packet>" not in data:
        raise ToolError(
            f"tshark (pyshark drill-down) failed on {p} with exit code "
            f"{proc.returncode}: {_tshark.said(proc.stderr)[:2000]}"
        )
    return [packet_from_xml_packet(x) for x in _pdml_packets(data)]


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
