"""pyshark drill-down (kit.sources.capture.packet/stream) inside a real, running Jupyter kernel.

pyshark alone fails there with "This event loop is already running" (pyshark #360/#542); the kit
runs it in a worker thread with its own loop. The notebook is built in memory and executed by
nbclient with the installed ``python3`` kernel.
"""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient


@pytest.mark.notebook
def test_drilldown_in_kernel(data_dir: Path, repo_root: Path, tshark: str) -> None:
    path = str(data_dir / "capture" / "syn_retransmit.pcap")
    cells = [
        # the kernel's own loop is running while cells execute: the case that breaks pyshark
        "import asyncio, json\nprint(json.dumps({'loop_running': asyncio.get_event_loop().is_running()}))",
        "import kit.sources.capture as kc\n"
        f"p = kc.packet({path!r}, 20)\n"
        f"s = kc.stream({path!r}, 0)\n"
        "print(json.dumps({'qname': p.dns.qry_name, 'id': p.dns.id, 'response_in': p.dns.response_in,\n"
        "                  'frames': [int(x.number) for x in s],\n"
        "                  'syn_retx': [int(x.number) for x in s if 'analysis_retransmission' in x.tcp.field_names]}))",
        "cap = kc.read_capture("
        f"{path!r}, cache=False, progress=False)\nprint(json.dumps({{'rows': cap.dns.height}}))",
    ]
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(c) for c in cells]
    NotebookClient(
        nb, kernel_name="python3", timeout=120, resources={"metadata": {"path": str(repo_root)}}
    ).execute()
    outs = [
        json.loads("".join(o.get("text", "") for o in c.outputs if o.get("name") == "stdout"))
        for c in nb.cells
    ]
    assert outs[0] == {"loop_running": True}
    # frame 20 is the upstream TCP query 0x2222 for API.example.com, answered in frame 21;
    # stream 0 = frames 2, 16, 17 (SYN + 2 retransmissions) and 18-24 (make_fixtures.py timeline)
    assert outs[1] == {
        "qname": "API.example.com",
        "id": "0x2222",
        "response_in": "21",
        "frames": [2, 16, 17, 18, 19, 20, 21, 22, 23, 24],
        "syn_retx": [16, 17],
    }
    assert outs[2] == {"rows": 7}
