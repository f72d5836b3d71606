"""The report pipeline: notebooks executed and rendered through ``dnskit report``, then opened in
headless Chromium with the network disabled.

The browser is driven over the DevTools protocol (``--remote-debugging-pipe``), so the tests see
every console message, exception, dialog and network request of the page, not only its DOM. A
control test first shows that the harness does catch each of those on a page built to have them.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import io
import json
import os
import re
import select
import shutil
import struct
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import polars as pl
import pytest
from conftest import require_tool

import kit.findings
import kit.report as report
from kit.cli import main
from kit.report import artefacts as report_artefacts
from kit.report import execute as report_execute
from kit.report import handover as report_handover
from kit.report import html as report_html
from kit.report import parameters as report_parameters

REPO = Path(__file__).resolve().parent.parent

# The -p value given to the hostile notebook: it must come out as text wherever it appears.
HOSTILE = '</td></table><script>alert("p")</script>\'<b>x</b>'

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-extensions",
    "--disable-dev-shm-usage",
    # no network: every request, loopback included, goes to a closed port on 127.0.0.1
    "--proxy-server=127.0.0.1:9",
    "--proxy-bypass-list=<-loopback>",
    "--remote-debugging-pipe",
]


# ---------------------------------------------------------------------------------------------
# a minimal DevTools-protocol client over chromium's pipe (fd 3: commands in, fd 4: messages out)
# ---------------------------------------------------------------------------------------------


class _Browser:
    def __init__(self, chromium: str, profile: Path) -> None:
        a_r, self._w = os.pipe()
        self._r, b_w = os.pipe()
        # the child's ends must not be 3 or 4 themselves, or the shell's redirections clobber them
        child_r = fcntl.fcntl(a_r, fcntl.F_DUPFD_CLOEXEC, 10)
        child_w = fcntl.fcntl(b_w, fcntl.F_DUPFD_CLOEXEC, 10)
        os.close(a_r)
        os.close(b_w)
        # as root, also in a network namespace of its own with no link up: no route anywhere
        netns = ["unshare", "--net"] if os.geteuid() == 0 and shutil.which("unshare") else []
        self.proc = subprocess.Popen(
            [
                *netns,
                "/bin/bash",
                "-c",
                f'exec "$0" "$@" 3<&{child_r} 4>&{child_w} {child_r}<&- {child_w}>&-',
                chromium,
                *CHROMIUM_FLAGS,
                f"--user-data-dir={profile}",
                "about:blank",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            pass_fds=(child_r, child_w),
        )
        os.close(child_r)
        os.close(child_w)
        self._buf = b""
        self._id = 0
        self.events: list[dict[str, Any]] = []

    def _next(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("chromium sent nothing in time")
            ready, _, _ = select.select([self._r], [], [], left)
            if ready:
                chunk = os.read(self._r, 1 << 20)
                if not chunk:
                    raise EOFError(f"chromium exited (status {self.proc.poll()})")
                self._buf += chunk
        raw, self._buf = self._buf.split(b"\0", 1)
        return json.loads(raw)

    def send(
        self, method: str, params: dict[str, Any] | None = None, session: str | None = None
    ) -> dict[str, Any]:
        self._id += 1
        msg: dict[str, Any] = {"id": self._id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self._w, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + 60
        while True:
            m = self._next(deadline)
            if m.get("id") == self._id:
                if "error" in m:
                    raise RuntimeError(f"{method}: {m['error']}")
                return m.get("result", {})
            self.events.append(m)

    def wait_event(self, method: str, session: str, since: int) -> None:
        """Wait for an event received after ``self.events[since]``, dismissing JavaScript dialogs
        (they would block the page)."""
        deadline = time.monotonic() + 60
        handled = 0
        while not any(e.get("method") == method for e in self.events[since:]):
            dialogs = [e for e in self.events if e.get("method") == "Page.javascriptDialogOpening"]
            if len(dialogs) > handled:
                handled += 1
                self.send("Page.handleJavaScriptDialog", {"accept": True}, session=session)
                continue
            self.events.append(self._next(deadline))

    def close(self) -> None:
        with contextlib.suppress(OSError, EOFError, TimeoutError, RuntimeError):
            self.send("Browser.close")
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self._w)
        os.close(self._r)


@dataclasses.dataclass
class Page:
    """What the browser saw: the page's answer to PROBE, and the problems it reported."""

    probe: dict[str, Any]
    errors: list[str]  # console errors, uncaught exceptions, browser log errors
    dialogs: list[str]  # alert()/confirm() opened by the page
    requests: list[str]  # every URL the page requested


PROBE = """JSON.stringify({
  title: document.title,
  heading: (document.querySelector('h1.dnskit-title') || {}).textContent,
  scripts: document.querySelectorAll('script').length,
  images: document.querySelectorAll('img').length,
  charts: [...document.querySelectorAll('[data-mime-type="image/svg+xml"]')].map(d => {
    const svgs = d.querySelectorAll('svg');
    const box = svgs.length ? svgs[0].getBoundingClientRect() : {width: 0, height: 0};
    const right = Math.max(...[...d.querySelectorAll('svg text')].map(
      t => t.getBoundingClientRect().right));
    return {svgs: svgs.length, width: box.width, height: box.height, room: d.clientWidth,
            overflow: svgs.length ? right - box.right : 0,
            texts: [...d.querySelectorAll('svg text')].map(t => t.textContent)};
  }),
  text: document.body.innerText,
  cells: [...document.querySelectorAll('td')].map(td => td.textContent),
  pres: [...document.querySelectorAll('pre')].map(p => p.textContent),
  findings: [...document.querySelectorAll('#findings article h4')].map(h => h.textContent),
  all: document.body.textContent,
  findingTags: document.querySelectorAll('#findings b, #findings img').length,
  used: [...document.querySelectorAll('table.dnskit-used tbody tr')].map(
    tr => [...tr.children].map(td => td.textContent)),
  ignored: [...document.querySelectorAll('table.dnskit-ignored tbody tr')].map(
    tr => [...tr.children].map(td => td.textContent)),
})"""


@contextlib.contextmanager
def _loaded(html: Path, size: tuple[int, int] | None = None) -> Iterator[tuple[_Browser, str]]:
    """Headless Chromium with no network, ``html`` loaded (at ``size`` px when given): the browser
    (its ``events`` stay readable after the block) and the page's session."""
    chromium = require_tool("chromium", "chromium")
    with tempfile.TemporaryDirectory(prefix="dnskit-chromium-") as profile:
        b = _Browser(chromium, Path(profile))
        try:
            target = b.send("Target.createTarget", {"url": "about:blank"})["targetId"]
            session = b.send("Target.attachToTarget", {"targetId": target, "flatten": True})[
                "sessionId"
            ]
            for domain in ("Page", "Runtime", "Log", "Network"):
                b.send(f"{domain}.enable", session=session)
            if size is not None:
                _set_size(b, session, *size)
            # about:blank may still fire its own load event: only one after navigating counts
            since = len(b.events)
            b.send("Page.navigate", {"url": html.resolve().as_uri()}, session=session)
            b.wait_event("Page.loadEventFired", session, since)
            yield b, session
        finally:
            b.close()


def _set_size(b: _Browser, session: str, width: int, height: int) -> None:
    b.send(
        "Emulation.setDeviceMetricsOverride",
        {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
        session=session,
    )


def open_in_chromium(html: Path) -> Page:
    """Load a file in headless Chromium with no network and report what happened."""
    with _loaded(html) as (b, session):
        result = b.send(
            "Runtime.evaluate", {"expression": PROBE, "returnByValue": True}, session=session
        )
    errors: list[str] = []
    dialogs: list[str] = []
    requests: list[str] = []
    for e in b.events:
        method, params = e.get("method"), e.get("params", {})
        if method == "Runtime.consoleAPICalled" and params["type"] in ("error", "assert"):
            errors.append(json.dumps(params["args"]))
        elif method == "Runtime.exceptionThrown":
            errors.append(json.dumps(params["exceptionDetails"]))
        elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
            errors.append(params["entry"]["text"])
        elif method == "Page.javascriptDialogOpening":
            dialogs.append(params["message"])
        elif method == "Network.requestWillBeSent":
            requests.append(params["request"]["url"])
    return Page(json.loads(result["result"]["value"]), errors, dialogs, requests)


def _network_references(html_text: str) -> list[str]:
    """Loads of scripts, styles, images, fonts or frames from anywhere but the file itself."""
    refs = re.findall(
        r"""<(?:script|link|img|iframe|embed|object|source|audio|video)\b[^>]*?\b(?:src|href|data)\s*=\s*["']?\s*(?:https?:)?//[^"'\s>]*""",
        html_text,
        flags=re.IGNORECASE,
    )
    refs += re.findall(
        r"""(?:@import|url\()\s*["']?\s*(?:https?:)?//[^"')\s]*""", html_text, flags=re.I
    )
    return refs


# ---------------------------------------------------------------------------------------------
# the harness catches what it must catch
# ---------------------------------------------------------------------------------------------


@pytest.mark.notebook
def test_harness_catches_scripts_errors_dialogs_and_requests(tmp_path: Path) -> None:
    page_file = tmp_path / "bad.html"
    page_file.write_text(
        "<!DOCTYPE html><html><head><link rel='stylesheet' href='http://127.0.0.1:9/x.css'></head>"
        "<body><p>hello</p><script>console.error('bad thing'); alert('hi');</script>"
        "<img src='http://127.0.0.1:9/x.png'></body></html>",
        encoding="utf-8",
    )
    page = open_in_chromium(page_file)
    assert page.probe["scripts"] == 1
    assert any("bad thing" in e for e in page.errors)
    assert page.dialogs == ["hi"]
    assert "http://127.0.0.1:9/x.png" in page.requests
    assert "http://127.0.0.1:9/x.css" in page.requests
    assert len(_network_references(page_file.read_text())) == 2


# ---------------------------------------------------------------------------------------------
# a notebook with a chart, a table and hostile strings, rendered by `dnskit report`
# ---------------------------------------------------------------------------------------------


@dataclasses.dataclass
class Rendered:
    rc: int
    html: Path
    text: str
    executed: Path
    hostile_pcap: str
    err: str


@pytest.fixture(scope="module")
def hostile_report(
    tmp_path_factory: pytest.TempPathFactory, shared_fixtures: Path, data_dir: Path
) -> Rendered:
    root = tmp_path_factory.mktemp("hostile")
    artefacts = root / "artefacts"
    (artefacts / "node-a").mkdir(parents=True)
    hostile_name = "<img src=x onerror=alert(3)> \"q'&amp;.pcap"  # no "/" in a file name
    shutil.copy(shared_fixtures / "pcaps" / "dnscap_dns.pcap", artefacts / hostile_name)
    shutil.copy(
        shared_fixtures / "pcaps" / "chrissanders_dns_lab.pcapng",
        artefacts / "node-a" / "lab.pcapng",
    )
    shutil.copy(data_dir / "report" / "Corefile", artefacts / "Corefile")
    (artefacts / "notes.txt").write_text("what the on-call engineer wrote down\n", encoding="utf-8")
    (artefacts / ".hidden.pcap").write_bytes(b"not an artefact")
    # a file name that is not UTF-8 (any byte is allowed in a name, and tar/cp keep them)
    shutil.copy(
        shared_fixtures / "pcaps" / "dnscap_dns.pcap",
        os.path.join(os.fsencode(artefacts), b"node\xff\x1b[31m.pcap"),
    )
    out = root / "report.html"
    executed = root / "executed"
    err_file = root / "stderr.txt"
    buf = io.StringIO()
    with contextlib.redirect_stderr(buf):
        rc = main(
            [
                "report",
                str(artefacts),
                "--notebook",
                str(data_dir / "report" / "hostile_strings.py"),
                "--notebook",
                str(data_dir / "report" / "needs_coredns_log.py"),
                "-p",
                "label",
                HOSTILE,
                "--title",
                f"incident {HOSTILE}",
                "-o",
                str(out),
                "--keep-executed",
                str(executed),
            ]
        )
    err_file.write_text(buf.getvalue())
    return Rendered(
        rc,
        out,
        out.read_text(encoding="utf-8"),
        executed,
        str(artefacts / hostile_name),
        buf.getvalue(),
    )


@pytest.fixture(scope="module")
def hostile_page(hostile_report: Rendered) -> Page:
    return open_in_chromium(hostile_report.html)


@pytest.mark.notebook
def test_report_exit_status_and_summary(hostile_report: Rendered) -> None:
    assert hostile_report.rc == 0, hostile_report.err
    assert "hostile_strings ok" in hostile_report.err
    # needs_coredns_log has a required coredns_log input and the artefacts hold no CoreDNS log
    assert "needs_coredns_log skipped" in hostile_report.err
    assert "coredns_log (coredns_log)" in hostile_report.err


@pytest.mark.notebook
def test_no_script_and_no_network_reference_in_the_file(hostile_report: Rendered) -> None:
    assert re.search(r"<script", hostile_report.text, re.IGNORECASE) is None
    assert _network_references(hostile_report.text) == []
    # nbconvert's stock templates point at these CDNs; none may remain
    for cdn in ("require.js", "MathJax", "mermaid", "cdnjs", "unpkg", "jsdelivr"):
        assert cdn.lower() not in hostile_report.text.lower()
    assert "Content-Security-Policy" in hostile_report.text


@pytest.mark.notebook
def test_page_loads_with_no_error_no_dialog_no_request(
    hostile_report: Rendered, hostile_page: Page
) -> None:
    assert hostile_page.errors == []
    assert hostile_page.dialogs == []
    # the only request is the report itself
    assert hostile_page.requests == [hostile_report.html.resolve().as_uri()]
    assert hostile_page.probe["scripts"] == 0
    assert hostile_page.probe["images"] == 0


@pytest.mark.notebook
def test_every_chart_renders_as_svg(hostile_page: Page) -> None:
    charts = hostile_page.probe["charts"]
    # hostile_strings.py draws two charts
    assert len(charts) == 2
    for chart in charts:
        assert chart["svgs"] >= 1
        # (the 2400 px wide one is shrunk to the page, its height with it)
        assert chart["width"] > 100 and chart["height"] > 50
        # the whole chart (legend included) fits its output area: nothing to scroll to
        assert chart["width"] <= chart["room"] + 1, chart
        # and no text runs past the SVG's edge, where the browser would cut it off
        assert chart["overflow"] <= 0.5, chart["overflow"]
    # the bar chart's title and its axis labels are the data: vega drew the real chart
    assert "latency per name (s)" in charts[0]["texts"]
    assert "plain.example" in charts[0]["texts"]
    # vega shortens long axis labels with "…"; the hostile label is there, as text
    assert any(t.startswith('</td></table><script>alert("p")') for t in charts[0]["texts"])
    # the point chart's title is the hostile label, whole
    assert HOSTILE in charts[1]["texts"]


@pytest.mark.notebook
def test_hostile_strings_show_as_text(hostile_page: Page) -> None:
    probe = hostile_page.probe
    # the report's tables (kit.tables) show strings as they are: unquoted, escaped
    assert HOSTILE in probe["cells"]
    assert "say \"hi\" & 'bye'" in probe["cells"]
    assert f"stdout: {HOSTILE}" in "\n".join(probe["pres"])
    # the finding emitted by the notebook, lifted to the top, with its hostile id and title
    assert len(probe["findings"]) == 1
    assert HOSTILE in probe["findings"][0]
    assert "<img src=x onerror=alert(2)>" in probe["findings"][0]
    assert probe["findingTags"] == 0
    assert 'an explanation with "quotes" & <b>tags</b>' in probe["text"]
    assert probe["title"] == probe["heading"] == f"incident {HOSTILE}"
    # evidence: a frame is a small table of its rows (folded), a number has its unit
    assert "frame of" not in probe["all"]
    assert "The rows behind it: rows (3 rows)" in probe["text"]
    assert "p99 3.00 s" in probe["text"]


@pytest.mark.notebook
def test_findings_come_first(hostile_page: Page) -> None:
    text = hostile_page.probe["text"]
    # findings, then the notebooks (folded, their titles shown), then the appendix
    findings = text.index("Findings\n")
    notebook = text.rindex("Hostile strings, two charts and a table")
    assert findings < text.index("Investigation notebooks") < notebook
    assert notebook < text.index("Artefacts: 2 used, 3 ignored")


@pytest.mark.notebook
def test_artefacts_used_and_ignored(hostile_report: Rendered, hostile_page: Page) -> None:
    used = {row[0]: row for row in hostile_page.probe["used"]}
    ignored = {row[0]: row for row in hostile_page.probe["ignored"]}
    # 5 visible files (the hidden one is skipped): 2 captures used; a Corefile, a note and a
    # capture whose name is not UTF-8 ignored
    assert len(used) + len(ignored) == 5
    not_utf8 = next(p for p in ignored if p.endswith("node\\xff\\x1b[31m.pcap"))
    assert ignored[not_utf8][1:] == [
        "capture",
        "its file name is not valid UTF-8, so it cannot be passed to a notebook: rename it",
    ]
    hostile_path = hostile_report.hostile_pcap
    assert used[hostile_path][1:3] == ["capture", "hostile_strings"]
    assert any(p.endswith("node-a/lab.pcapng") for p in used)
    corefile = next(p for p in ignored if p.endswith("Corefile"))
    assert ignored[corefile][1] == "corefile"
    assert ignored[corefile][2] == "no notebook in this run reads corefile artefacts"
    notes = next(p for p in ignored if p.endswith("notes.txt"))
    assert ignored[notes][1] == "unknown"
    assert ignored[notes][2].startswith("not recognised: ")
    assert not any(".hidden" in p for p in [*used, *ignored])


@pytest.mark.notebook
def test_notebook_received_the_captures(hostile_report: Rendered) -> None:
    nb = nbformat.read(hostile_report.executed / "hostile_strings.ipynb", as_version=4)
    passed = nb.metadata["papermill"]["parameters"]
    assert passed["label"] == HOSTILE
    assert sorted(Path(p).name for p in passed["capture"]) == sorted(
        [Path(hostile_report.hostile_pcap).name, "lab.pcapng"]
    )
    # and the hidden set-up cell switched Altair to static SVG before the charts were drawn
    svg_outputs = [
        o for c in nb.cells for o in c.get("outputs", []) if "image/svg+xml" in o.get("data", {})
    ]
    assert len(svg_outputs) == 2


# ---------------------------------------------------------------------------------------------
# DNS names from a crafted capture, through kit.read_capture, shown as text
# ---------------------------------------------------------------------------------------------

CRAFTED_LABELS = [
    [b"<script>alert(1)</script>", b"example", b"com"],
    [b"say\"hi'&bye", b"<b>bold</b>", b"test"],
]


def _write_crafted_pcap(path: Path) -> None:
    """A classic pcap (Ethernet/IPv4/UDP) with one query and its NXDOMAIN answer per name."""

    def name(labels: list[bytes]) -> bytes:
        return b"".join(bytes([len(x)]) + x for x in labels) + b"\0"

    def ipv4(src: bytes, dst: bytes, payload: bytes) -> bytes:
        hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), 1, 0, 64, 17, 0, src, dst)
        total = sum(struct.unpack("!10H", hdr))
        total = (total & 0xFFFF) + (total >> 16)
        total = (total & 0xFFFF) + (total >> 16)
        return hdr[:10] + struct.pack("!H", ~total & 0xFFFF) + hdr[12:] + payload

    def udp(sport: int, dport: int, payload: bytes) -> bytes:
        return struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload  # no checksum

    eth = b"\x02\0\0\0\0\x02\x02\0\0\0\0\x01\x08\x00"
    client, server = bytes([10, 0, 0, 1]), bytes([127, 0, 0, 53])
    records = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)]
    for i, labels in enumerate(CRAFTED_LABELS):
        question = name(labels) + struct.pack("!HH", 1, 1)
        query = struct.pack("!HHHHHH", 0x1000 + i, 0x0100, 1, 0, 0, 0) + question
        answer = struct.pack("!HHHHHH", 0x1000 + i, 0x8183, 1, 0, 0, 0) + question
        sport = 40000 + i
        for usec, frame in (
            (0, eth + ipv4(client, server, udp(sport, 53, query))),
            (250_000 * (i + 1), eth + ipv4(server, client, udp(53, sport, answer))),
        ):
            records.append(struct.pack("<IIII", 1_700_000_000 + i, usec, len(frame), len(frame)))
            records.append(frame)
    path.write_bytes(b"".join(records))


@pytest.fixture(scope="module")
def crafted_report(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> Rendered:
    root = tmp_path_factory.mktemp("crafted")
    pcap = root / "crafted.pcap"
    _write_crafted_pcap(pcap)
    out = root / "crafted.html"
    buf = io.StringIO()
    with contextlib.redirect_stderr(buf):
        rc = main(
            [
                "report",
                str(pcap),
                "--notebook",
                str(data_dir / "report" / "capture_names.py"),
                # the same file through -p: it replaces the artefacts for that parameter
                "-p",
                "capture",
                json.dumps([str(pcap)]),
                "-o",
                str(out),
            ]
        )
    return Rendered(rc, out, out.read_text(encoding="utf-8"), root, str(pcap), buf.getvalue())


@pytest.mark.notebook
def test_crafted_capture_names_show_as_text(crafted_report: Rendered, tshark: str) -> None:
    assert crafted_report.rc == 0, crafted_report.err
    # what tshark itself calls these names (query frames), independently of the kit
    shown = subprocess.run(
        [
            tshark,
            "-r",
            crafted_report.hostile_pcap,
            "-Y",
            "dns.flags.response == 0",
            "-T",
            "fields",
            "-e",
            "dns.qry.name",
        ],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "LC_ALL": "C.UTF-8"},
    ).stdout.splitlines()
    assert shown == ["<script>alert(1)</script>.example.com", "say\"hi'&bye.<b>bold</b>.test"]
    assert re.search(r"<script", crafted_report.text, re.IGNORECASE) is None
    page = open_in_chromium(crafted_report.html)
    assert page.errors == [] and page.dialogs == []
    assert page.requests == [crafted_report.html.resolve().as_uri()]
    assert page.probe["scripts"] == 0
    # the polars table shows each name, quoted, as text
    for qname in shown:
        assert qname in page.probe["cells"]
    # the chart is drawn, with the names as axis labels (vega may shorten them with "…")
    (chart,) = page.probe["charts"]
    assert chart["svgs"] == 1 and chart["width"] > 100
    for qname in shown:
        assert any(t.rstrip("…") and qname.startswith(t.rstrip("…")) for t in chart["texts"])
    assert "latency by name (s)" in chart["texts"]
    # the artefact itself was not passed: -p capture took its place, and the report says so
    assert page.probe["ignored"] == [
        [
            crafted_report.hostile_pcap,
            "capture",
            "the notebooks that read capture artefacts did not use it: "
            "-p capture replaced the artefacts in capture_names",
        ]
    ]


# ---------------------------------------------------------------------------------------------
# a failing notebook: report written with the failure shown, exit status 1
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def failing_report(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> Rendered:
    root = tmp_path_factory.mktemp("failing")
    out = root / "sub" / "failing.html"
    buf = io.StringIO()
    with contextlib.redirect_stderr(buf):
        rc = main(
            [
                "report",
                str(data_dir / "report" / "Corefile"),
                "--notebook",
                str(data_dir / "report" / "failing.py"),
                "--notebook",
                str(data_dir / "report" / "needs_coredns_log.py"),
                "--notebook",
                str(REPO / "notebooks" / "00-start-here.py"),
                "-j",
                "2",
                "--isolated",
                "-o",
                str(out),
            ]
        )
    return Rendered(rc, out, out.read_text(encoding="utf-8"), root, "", buf.getvalue())


@pytest.mark.notebook
def test_failing_notebook_exit_status(failing_report: Rendered) -> None:
    assert failing_report.rc == 1
    # two notebooks ran in parallel (-j 2), one was skipped; the summary keeps the given order
    progress, summary = failing_report.err.split("dnskit report: summary:\n")
    assert progress.startswith(
        "dnskit report: running 2 notebook(s), 2 at a time: failing, 00-start-here\n"
    )
    lines = summary.splitlines()
    assert [x.split()[2:4] for x in lines[:3]] == [
        ["failing", "failed"],
        ["needs_coredns_log", "skipped"],
        ["00-start-here", "ok"],
    ]
    assert "notebook(s) failed: failing" in failing_report.err
    assert "Traceback" not in failing_report.err


@pytest.mark.notebook
def test_failing_notebook_report_shows_the_failure(failing_report: Rendered) -> None:
    assert re.search(r"<script", failing_report.text, re.IGNORECASE) is None
    page = open_in_chromium(failing_report.html)
    assert page.errors == [] and page.dialogs == []
    text = page.probe["text"]
    assert "Incomplete report: failed notebook(s): failing" in text
    # papermill's banner and the traceback of the cell that raised
    assert "An Exception was encountered at 'In [" in text
    message = "boom <script>alert(4)</script>"
    assert f"ValueError: {message}" in "\n".join(page.probe["pres"])
    # cells before the failure ran and show their output; the cells after it did not run
    assert "output before the failure" in text
    assert "output after the failure" not in text
    # no findings notebook ran: the top says so instead of showing an empty section
    assert "No findings yet" in text
    # the notebook after the failing one ran and is in the report (the tutorial: folded in the
    # appendix), after it
    everything = page.probe["all"]
    assert everything.index("output before the failure") < everything.index(
        "The kit and the artefacts"
    )
    assert "The kit and the artefacts" not in text
    # the Corefile was given but the only notebook that ran reads no Corefile
    assert page.probe["ignored"][0][1:] == [
        "corefile",
        "no notebook in this run reads corefile artefacts",
    ]


# ---------------------------------------------------------------------------------------------
# the pieces, without a kernel
# ---------------------------------------------------------------------------------------------


def test_notebook_parameters(data_dir: Path) -> None:
    params = report.notebook_parameters(data_dir / "report" / "hostile_strings.py")
    assert [(p.name, p.annotation, p.default, p.optional) for p in params] == [
        ("capture", "list[str] | None", "None", True),
        ("label", "str", "'<script>alert(1)</script>'", False),
    ]
    assert params[0].help == "capture files the report found among the artefacts"
    req = report.notebook_parameters(data_dir / "report" / "needs_coredns_log.py")
    assert [(p.name, p.optional) for p in req] == [("coredns_log", False)]


def test_unknown_parameter_is_refused_before_running(data_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"parameter\(s\) lable not declared by any notebook run"):
        report.render(
            data_dir / "report" / "failing.py",
            parameters={"lable": 1},
            output_html=tmp_path / "x.html",
            artefacts=[data_dir / "report" / "Corefile"],
        )
    assert not (tmp_path / "x.html").exists()


def test_inventory_walks_folders_and_skips_hidden(tmp_path: Path, shared_fixtures: Path) -> None:
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / ".git").mkdir()
    shutil.copy(shared_fixtures / "pcaps" / "dnscap_dns.pcap", tmp_path / "a" / "b" / "x.bin")
    (tmp_path / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (tmp_path / "empty.log").write_bytes(b"")
    inv = report.inventory(tmp_path)
    assert inv.schema == report.INVENTORY_SCHEMA
    assert [Path(p).name for p in inv["path"]] == ["x.bin", "empty.log"]
    assert inv["kind"].to_list() == ["capture", "unknown"]
    assert inv["size_bytes"].to_list() == [
        (shared_fixtures / "pcaps" / "dnscap_dns.pcap").stat().st_size,
        0,
    ]


def test_inventory_missing(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="not found"):
        report.inventory(tmp_path / "nope")
    empty = report.inventory(tmp_path / "nope", missing_ok=True)
    assert empty.height == 0 and empty.schema == report.INVENTORY_SCHEMA


def test_classify_never_raises_on_unreadable(tmp_path: Path) -> None:
    folder = tmp_path / "dir"
    folder.mkdir()
    kind, reason = report.classify_artefact(folder)  # a folder cannot be opened as a file
    assert kind == "unknown"
    assert reason


@dataclasses.dataclass
class _Finding:
    id: str
    title: str
    severity: str
    explanation: str
    evidence: dict[str, Any]
    confirm: str


def test_finding_hand_over_format() -> None:
    frame = pl.DataFrame({"a": [1, 2, 3], "b": ["x", "y", "z"]})
    got = report_handover._finding_dict(
        _Finding("syn-retx", "SYN retransmissions", "high", "why", {"rows": frame, "p": 0.5}, "cmd")
    )
    assert got == {
        "id": "syn-retx",
        "title": "SYN retransmissions",
        "severity": "high",
        "role": "",
        "explanation": "why",
        "evidence": {"p": "0.500"},
        "tables": [
            {
                "name": "rows",
                "columns": ["a", "b"],
                "aligns": ["r", "l"],
                "rows": [["1", "x"], ["2", "y"], ["3", "z"]],
                "more": 0,
            }
        ],
        "confirm": "cmd",
        # not graded: no grading to show
        "confidence": "",
        "confirms": [],
        "refutes": [],
        "would_refute": [],
        "caused_by": "",
    }
    # a kit finding: its role comes from the check that made it
    assert report_handover._finding_dict({"id": "forced-tcp", "evidence": {"p99_s": 0.0123}}) == {
        "id": "forced-tcp",
        "title": "",
        "severity": "",
        "role": "root-cause",
        "explanation": "",
        "evidence": {"p99_s": "12.3 ms"},
        "tables": [],
        "confirm": "",
        "confidence": "",
        "confirms": [],
        "refutes": [],
        "would_refute": [],
        "caused_by": "",
    }


def test_text_makes_control_bytes_visible() -> None:
    # a file name from the wire may hold any byte; the report shows it, escaped, never raw
    raw = os.fsdecode(b"a\x1b[31m\xff\n.pcap")
    shown = report_html._e(raw)
    assert "\x1b" not in shown and "\n" not in shown
    assert "\\x1b[31m" in shown and "\\udcff" in shown and "\\n" in shown


def test_user_paths_are_rewritten_for_the_repo_root(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "node1.pcap").write_bytes(b"")
    monkeypatch.chdir(tmp_path)
    # the notebook runs in the repo root: a path relative to the caller's directory must move
    assert report_parameters._resolve_user_path("capture", "node1.pcap") == str(
        tmp_path / "node1.pcap"
    )
    assert report_parameters._resolve_user_path("artefacts", ["node1.pcap", "gone.pcap"]) == [
        str(tmp_path / "node1.pcap"),
        "gone.pcap",
    ]
    # not an artefact input: left alone even when such a file exists
    assert report_parameters._resolve_user_path("label", "node1.pcap") == "node1.pcap"
    assert report_parameters._resolve_user_path("capture", 3) == 3


@pytest.mark.notebook
def test_unreadable_notebook_fails_alone(
    tmp_path: Path, data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # stored as .txt so that ruff does not lint a file that is broken on purpose
    bad = tmp_path / "bad_parameters.py"
    shutil.copy(data_dir / "report" / "bad_parameters.py.txt", bad)
    skipped = data_dir / "report" / "needs_coredns_log.py"
    out = tmp_path / "r.html"
    args = ["report", str(data_dir / "report" / "Corefile"), "--notebook", str(bad)]
    rc = main([*args, "--notebook", str(skipped), "-o", str(out)])
    err = capsys.readouterr().err
    assert rc == 1
    assert "bad_parameters failed (0.0 s): its parameters cell is not valid Python: " in err
    assert "needs_coredns_log skipped" in err
    text = out.read_text(encoding="utf-8")
    assert "its parameters cell is not valid Python" in text
    assert "never runs" not in text


def test_scripts_in_html_outputs_are_removed() -> None:
    nb = nbformat.v4.new_notebook()
    html_out = (
        "<div id='vis'></div><script src='https://cdn.example/vega.js'></script>"
        "<SCRIPT type='text/javascript'>vegaEmbed('#vis', {})</SCRIPT><p>kept</p>"
    )
    nb.cells.append(
        nbformat.v4.new_code_cell(
            "",
            outputs=[nbformat.v4.new_output("display_data", data={"text/html": html_out})],
        )
    )
    run = report.NotebookRun("x", Path("x.py"), "ok")
    combined = report_html._combine([(run, nb)], "t")
    shown = combined.cells[-1].outputs[0]["data"]["text/html"]
    assert shown == (
        "<div id='vis'></div><p>kept</p>"
        '<p class="dnskit-omitted">(2 script(s) removed: the report is static)</p>'
    )
    # the section heading cell comes first, then the notebook's cells
    assert combined.cells[0].metadata["tags"] == ["dnskit-section"]


def test_error_summary_is_one_line() -> None:
    from papermill.exceptions import PapermillExecutionError

    exc = PapermillExecutionError(
        cell_index=3,
        exec_count=7,
        source="x",
        ename="MaxRowsError",
        evalue="too many\nrows\n",
        traceback=[],
    )
    assert report_execute._error_summary(exc) == "MaxRowsError: too many … (cell In [7])"
    assert (
        report_execute._error_summary(RuntimeError("x" * 400)) == "RuntimeError: " + "x" * 299 + "…"
    )
    assert report_execute._error_summary(TimeoutError()) == "TimeoutError: "


@pytest.mark.notebook
def test_shared_kernel_starts_each_notebook_empty(
    tmp_path: Path, data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "shared.html"
    first, second = (data_dir / "report" / f"{n}_leftover.py" for n in ("defines", "uses"))
    rc = main(["report", "--notebook", str(first), "--notebook", str(second), "-o", str(out)])
    assert rc == 0, capsys.readouterr().err
    text = out.read_text(encoding="utf-8")
    pids = re.findall(r"kernel pid (\d+)", text)
    # one kernel ran both notebooks (the default) ...
    assert len(pids) == 2 and pids[0] == pids[1]
    # ... and the second one did not see the first one's names
    assert "leftover is 42" in text
    assert "leftover defined: False" in text
    # no input history: with cells renumbered for each notebook, IPython's history database
    # printed "Session/line number was not unique in database" into a later notebook's output
    assert "history enabled: False" in text


def test_artefact_arguments_are_rewritten_for_the_repo_root(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "a.pcap").write_bytes(b"")
    monkeypatch.chdir(tmp_path)
    assert report_artefacts._artefact_arg("a.pcap") == str(tmp_path / "a.pcap")
    assert report_artefacts._artefact_arg("*.pcap") == f"{tmp_path}/*.pcap"
    # not found from here: left as given (relative to the repo root, where notebooks run)
    assert report_artefacts._artefact_arg("data/sample") == "data/sample"
    assert report_artefacts._artefact_arg("*.log") == "*.log"


# ---------------------------------------------------------------------------------------------
# the sample incident's report, measured in Chromium (issue 13: a report that reads like one)
# ---------------------------------------------------------------------------------------------

SCREEN = (1366, 768)
A4_CONTENT_PX = 710  # (210 mm - 2 x 11 mm margins) at 96 px per inch: the printed page's width

MEASURE = """(() => {
  // hidden: inside a closed <details>, except in that details' own <summary>
  const hidden = node => {
    for (let e = node.nodeType === 1 ? node : node.parentElement; e; e = e.parentElement) {
      const p = e.parentElement;
      if (p && p.tagName === 'DETAILS' && !p.open
          && !(e.tagName === 'SUMMARY' && p.querySelector(':scope > summary') === e)) return true;
    }
    return false;
  };
  let words = 0;
  const walk = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let n = walk.nextNode(); n; n = walk.nextNode()) {
    if (['STYLE', 'SCRIPT'].includes(n.parentElement.tagName) || hidden(n)) continue;
    words += n.textContent.split(/\\s+/).filter(w => w).length;
  }
  const bottom = sel => { const e = document.querySelector(sel);
                          return e ? e.getBoundingClientRect().bottom + window.scrollY : null; };
  const fix = [...document.querySelectorAll('.dnskit-facts dt')].find(d => d.textContent === 'Fix');
  const pageRules = [...document.styleSheets].flatMap(s => [...s.cssRules])
    .filter(r => r.constructor.name === 'CSSPageRule').map(r => r.cssText);
  return JSON.stringify({
    height: document.documentElement.scrollHeight,
    words: words,
    tables: [...document.querySelectorAll('table')].filter(t => !hidden(t)).length,
    allTables: document.querySelectorAll('table').length,
    details: document.querySelectorAll('details').length,
    cause: bottom('.dnskit-cause'), impact: bottom('.dnskit-impact'),
    fix: fix ? fix.nextElementSibling.getBoundingClientRect().bottom + window.scrollY : null,
    chart: bottom('.dnskit-headline svg'),
    coverage: (document.querySelector('.dnskit-coverage') || {}).textContent,
    toc: [...document.querySelectorAll('#toc a')].map(a => a.getAttribute('href')),
    anchors: [...document.querySelectorAll('#toc a')].every(
      a => document.getElementById(a.getAttribute('href').slice(1))),
    roles: [...document.querySelectorAll('#findings .dnskit-role')].map(s => [
      s.querySelector('h3').textContent,
      [...s.querySelectorAll('article')].map(a => a.id)]),
    confirm: [...document.querySelectorAll('.dnskit-confirm code')].map(c => c.textContent),
    pageRules: pageRules,
  });
})()"""

OVERFLOW = """(() => {
  document.querySelectorAll('details').forEach(d => { d.open = true; });
  const width = document.documentElement.clientWidth;
  const bad = [];
  for (const t of document.querySelectorAll('table')) {
    const box = t.getBoundingClientRect(), c = t.parentElement;
    if (c.scrollWidth > c.clientWidth + 1 || box.right > width + 1 || box.left < -1)
      bad.push({head: t.rows[0] ? t.rows[0].textContent.slice(0, 80) : '', width: box.width,
                room: c.clientWidth, scroll: c.scrollWidth});
  }
  return JSON.stringify({tables: document.querySelectorAll('table').length, bad: bad,
                         width: width});
})()"""


@dataclasses.dataclass
class Measured:
    screen: dict[str, Any]
    overflow_screen: dict[str, Any]
    overflow_print: dict[str, Any]
    pdf: bytes
    requests: list[str]
    errors: list[str]


def measure(html_file: Path) -> Measured:
    """Open a report at 1366x768 with no network; measure it folded, then with every <details>
    open on screen and as printed on A4 (print media at the page's width), and print it to PDF."""
    with _loaded(html_file, SCREEN) as (b, session):

        def evaluate(expr: str) -> dict[str, Any]:
            got = b.send(
                "Runtime.evaluate", {"expression": expr, "returnByValue": True}, session=session
            )
            return json.loads(got["result"]["value"])

        screen = evaluate(MEASURE)
        pdf = b.send(
            "Page.printToPDF",
            {"preferCSSPageSize": True, "printBackground": True},
            session=session,
        )["data"]
        overflow_screen = evaluate(OVERFLOW)
        b.send("Emulation.setEmulatedMedia", {"media": "print"}, session=session)
        _set_size(b, session, A4_CONTENT_PX, 1000)
        overflow_print = evaluate(OVERFLOW)
    requests = [
        e["params"]["request"]["url"]
        for e in b.events
        if e.get("method") == "Network.requestWillBeSent"
    ]
    errors = [
        json.dumps(e["params"])
        for e in b.events
        if e.get("method") in ("Runtime.exceptionThrown", "Log.entryAdded")
        and e["params"].get("entry", {}).get("level", "error") == "error"
    ]
    import base64

    return Measured(
        screen, overflow_screen, overflow_print, base64.b64decode(pdf), requests, errors
    )


@pytest.fixture(scope="module")
def sample_report(tmp_path_factory: pytest.TempPathFactory) -> Rendered:
    if not (REPO / "data" / "sample" / "run.json").exists():
        pytest.skip("data/sample not present (make sample)")
    root = tmp_path_factory.mktemp("sample")
    out = root / "sample.html"
    buf = io.StringIO()
    with contextlib.redirect_stderr(buf):
        rc = main(["report", str(REPO / "data" / "sample"), "-o", str(out)])
    return Rendered(rc, out, out.read_text(encoding="utf-8"), root, "", buf.getvalue())


@pytest.fixture(scope="module")
def sample_measured(sample_report: Rendered) -> Measured:
    return measure(sample_report.html)


@pytest.mark.notebook
def test_sample_report_reads_like_a_report(
    sample_report: Rendered, sample_measured: Measured
) -> None:
    assert sample_report.rc == 0, sample_report.err
    m = sample_measured.screen
    # before issue 13: 34,361 px (45 screens), 10,375 words, 59 tables, polars' "shape: (" lines
    assert "shape: (" not in sample_report.text
    assert m["height"] <= 12 * SCREEN[1], m["height"]
    assert m["words"] <= 2500, m["words"]
    assert m["tables"] <= 12, m["tables"]
    # the notebooks are still all there, folded
    assert m["allTables"] >= 30 and m["details"] >= 8
    # cause, impact and fix on the first screen, the headline chart right after
    for key in ("cause", "impact", "fix"):
        assert m[key] is not None and m[key] <= SCREEN[1], (key, m[key])
    assert m["chart"] is not None
    # contents with anchors that exist
    assert "#summary" in m["toc"] and "#findings" in m["toc"] and "#appendix" in m["toc"]
    assert m["anchors"]
    # every check of the catalogue ran on the sample, except those on node evidence (nstat,
    # conntrack -S, ethtool -S), which the sample does not have: the coverage line says so
    total = len(kit.findings.CHECKS)
    ran = len([c for c in kit.findings.CHECKS if "node" not in c[2]])
    assert ran < total
    assert f"{ran} of {total} checks ran" in m["coverage"]
    assert "no nstat output among the node evidence" in m["coverage"]


@pytest.mark.notebook
def test_finding_anchors_are_unique(sample_report: Rendered) -> None:
    # each finding card is shown in the header and again in notebook 06's own outputs; only the
    # header's card carries id="finding-<id>" (what every "#finding-..." link points to), the
    # notebook's copies get ids of their own
    markup = sample_report.html.read_text(encoding="utf-8")
    ids = re.findall(r'\bid="([^"]+)"', markup)
    cards = [i for i in ids if i.startswith("finding-")]
    assert cards and len(cards) == len(set(cards)), cards
    copies = [i for i in ids if "-finding-" in i and not i.startswith("finding-")]
    assert copies and len(copies) == len(set(copies)), copies
    for link in set(re.findall(r'href="#(finding-[^"]+)"', markup)):
        assert link in cards, link


@pytest.mark.notebook
def test_every_anchor_is_unique_and_every_link_lands(sample_report: Rendered) -> None:
    # the notebooks share headings ("The inputs", "What to check next"); nbconvert makes each
    # heading's id from its text, so before the fix "The-inputs" was on the page 6 times and a
    # heading's pilcrow link in notebook 04 jumped to notebook 01's heading
    markup = sample_report.html.read_text(encoding="utf-8")
    ids = re.findall(r'\bid="([^"]+)"', markup)
    repeated = sorted({i for i in ids if ids.count(i) > 1})
    assert not repeated, repeated
    assert "The-inputs" in ids and "The-inputs-2" in ids
    for link in set(re.findall(r'href="#([^"]+)"', markup)):
        assert link in ids, link
    # a renamed heading's own anchor-link points at the heading itself
    heading = re.search(r'<h2 id="The-inputs-2">.*?</h2>', markup, re.DOTALL)
    assert heading and 'href="#The-inputs-2"' in heading.group(0)


@pytest.mark.notebook
def test_sample_findings_graded_by_role(sample_measured: Measured) -> None:
    roles = dict(sample_measured.screen["roles"])
    assert roles == {
        "Root cause": ["finding-forced-tcp"],
        "Mechanism": ["finding-syn-retransmissions"],
        "Symptom": ["finding-latency-timer-modes"],
        "Ruled out": ["finding-packet-rate-below-limit"],
    }
    # confirm commands name the artefacts as given to dnskit report (here: an absolute folder)
    sample = str(REPO / "data" / "sample")
    assert any(
        f"'{sample}/configs/unbound-node1.incident.conf'" in c
        for c in sample_measured.screen["confirm"]
    )


@pytest.mark.notebook
def test_sample_tables_fit_on_screen_and_in_print(sample_measured: Measured) -> None:
    for where in (sample_measured.overflow_screen, sample_measured.overflow_print):
        assert where["tables"] >= 30
        assert where["bad"] == [], where
    # (less a scrollbar's width: the emulated print viewport still has one)
    assert A4_CONTENT_PX - 20 <= sample_measured.overflow_print["width"] <= A4_CONTENT_PX
    pdf = sample_measured.pdf
    assert pdf.startswith(b"%PDF-")
    assert len(re.findall(rb"/Type\s*/Page[^s]", pdf)) >= 2


@pytest.mark.notebook
def test_sample_print_header_has_title_and_window(
    sample_measured: Measured, tmp_path: Path
) -> None:
    rules = "\n".join(sample_measured.screen["pageRules"])
    assert "@top-left" in rules and '"DNS incident report"' in rules
    assert "2026-11-26 06:08:44" in rules and "UTC" in rules
    # and the printed PDF has them on every page (poppler's pdftotext reads the pages back)
    pdftotext = require_tool("pdftotext", "poppler-utils")
    (tmp_path / "report.pdf").write_bytes(sample_measured.pdf)
    text = subprocess.run(
        [pdftotext, "-layout", str(tmp_path / "report.pdf"), "-"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    pages = [p for p in text.split("\f") if p.strip()]
    assert len(pages) >= 2
    for n, page in enumerate(pages, 1):
        head = "\n".join(page.strip().splitlines()[:3])
        assert "DNS incident report" in head, (n, head)
        assert "2026-11-26 06:08:44" in head, (n, head)


@pytest.mark.notebook
def test_sample_report_loads_nothing_from_the_network(
    sample_report: Rendered, sample_measured: Measured
) -> None:
    assert sample_measured.requests == [sample_report.html.resolve().as_uri()]
    assert sample_measured.errors == []
    assert re.search(r"<script", sample_report.text, re.IGNORECASE) is None
    assert _network_references(sample_report.text) == []


@pytest.mark.notebook
def test_confirm_paths_as_the_user_gave_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "incident" / "caps").mkdir(parents=True)
    (tmp_path / "incident" / "caps" / "node1.pcap").write_bytes(b"")
    (tmp_path / "single.pcap").write_bytes(b"")
    monkeypatch.chdir(tmp_path)
    names = report_artefacts._display_names(["incident", "single.pcap"])
    # passed to the notebooks as absolute paths (they run in the repo root) ...
    passed = str(tmp_path / "incident" / "caps" / "node1.pcap")
    assert names == {
        passed: "incident/caps/node1.pcap",
        str(tmp_path / "single.pcap"): "single.pcap",
    }
    finding = {"confirm": f"tshark -r '{passed}' -Y dns", "explanation": f"in {passed}"}
    got = report_artefacts._renamed(finding, names)
    assert got["confirm"] == "tshark -r 'incident/caps/node1.pcap' -Y dns"
    assert got["explanation"] == "in incident/caps/node1.pcap"


@pytest.mark.notebook
def test_one_capture_hides_what_has_no_input(tmp_path: Path) -> None:
    if not (REPO / "data" / "sample" / "run.json").exists():
        pytest.skip("data/sample not present (make sample)")
    out = tmp_path / "one.html"
    buf = io.StringIO()
    with contextlib.redirect_stderr(buf):
        rc = main(
            [
                "report",
                str(REPO / "data" / "sample" / "captures" / "node1.pcap"),
                "--notebook",
                str(REPO / "notebooks" / "02-query-logs.py"),
                "--notebook",
                str(REPO / "notebooks" / "06-findings.py"),
                "-o",
                str(out),
            ]
        )
    assert rc == 0, buf.getvalue()
    # 02 reads query logs only: not run (it rendered 9 empty tables), one line says why
    assert "02-query-logs skipped" in buf.getvalue()
    page = open_in_chromium(out)
    text = page.probe["text"]
    assert (
        "02-query-logs not shown: no input: none of its inputs (coredns_log, unbound_log) "
        "among the artefacts" in text
    )
    # next to the findings: which checks could not run, and what input would enable them
    assert "Could not run: forced-tcp (no Corefile or unbound.conf given)" in text
    assert "Cause not established" in text
