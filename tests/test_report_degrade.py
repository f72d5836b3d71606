"""A broken input degrades the report gracefully (issue 14): the report names the file that could
not be read and why, keeps what the other inputs show, and says where a failed notebook stopped.

The end-to-end case is the one of the issue: the sample capture of node 1 beside a Corefile that
does not parse. Both sides are checked on the real report: the report's (the file named with its
reason, failed notebooks saying where they stopped) and the findings' (the checks that need the
Corefile say "not checked: <file> could not be read (<reason>)", the capture's findings still fire).
"""

from __future__ import annotations

import contextlib
import html
import io
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest
from markupsafe import escape

import kit.findings as kf
from kit.cli import main
from kit.report import NotebookRun
from kit.report import assemble as report_assemble
from kit.report import handover as report_handover
from kit.report import html as report_html

REPO = Path(__file__).resolve().parent.parent
CAPTURE = REPO / "data" / "sample" / "captures" / "node1.pcap"
BROKEN_COREFILE = ".:53 {\n    forward . 10.0.0.53 {\n"
PARSE_ERROR = "unbalanced braces: the '{' of server block '.:53' is never closed"
HOSTILE = "<script>alert(1)</script>\"'&"


def page_text(markup: str) -> str:
    """The visible text of an HTML page, roughly: tags removed, entities decoded, spaces folded."""
    markup = re.sub(r"(?is)<(style|script)\b.*?</\1\s*>", " ", markup)
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", "", markup)))


@dataclass(frozen=True)
class Degraded:
    rc: int
    err: str
    html: str
    text: str


@pytest.fixture(scope="module")
def degraded(tmp_path_factory: pytest.TempPathFactory) -> Degraded:
    if not CAPTURE.is_file():
        pytest.skip("data/sample not present (make sample)")
    folder = tmp_path_factory.mktemp("incident")
    shutil.copy(CAPTURE, folder / "node1.pcap")
    (folder / "Corefile").write_text(BROKEN_COREFILE, encoding="utf-8")
    # binary data named like an unbound.conf: not recognised, so not passed to any notebook
    (folder / "unbound-node1.conf").write_bytes(bytes(range(256)))
    out = folder.parent / "degraded.html"
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        rc = main(
            [
                "report",
                str(folder),
                *("--notebook", str(REPO / "notebooks" / "04-capture-dns.py")),
                *("--notebook", str(REPO / "notebooks" / "05-upstream-tcp.py")),
                *("--notebook", str(REPO / "notebooks" / "06-findings.py")),
                "-o",
                str(out),
            ]
        )
    markup = out.read_text(encoding="utf-8")
    return Degraded(rc, err.getvalue(), markup, page_text(markup))


@pytest.mark.notebook
def test_broken_corefile_is_named_with_its_reason(degraded: Degraded) -> None:
    # the documented exit status: 1 when a notebook failed, else 0
    failed = re.findall(r"dnskit report: (\S+) failed", degraded.err)
    assert degraded.rc == (1 if failed else 0), degraded.err
    # at the top of the report, in the artefacts of the appendix and on the terminal
    assert f"Corefile could not be read ({PARSE_ERROR})" in degraded.text
    assert "unbound-node1.conf could not be read (named like an unbound.conf, but binary data" in (
        degraded.text
    )
    assert "Artefacts: 1 used, 2 could not be read, 0 ignored" in degraded.text
    rows = re.search(r"<h3>Could not be read \(2\)</h3>(.*?)</table>", degraded.html, re.DOTALL)
    assert rows is not None
    assert "Corefile</td><td>corefile</td>" in rows.group(1)
    assert PARSE_ERROR in html.unescape(rows.group(1))
    assert "unbound-node1.conf</td><td>unknown</td>" in rows.group(1)
    # not "ignored" any more
    ignored = re.search(r"<h3>Ignored \((\d+)\)</h3>", degraded.html)
    assert ignored is not None and ignored.group(1) == "0"
    assert f"Corefile could not be read ({PARSE_ERROR})" in degraded.err
    assert "1 artefact(s) used, 2 could not be read, 0 ignored" in degraded.err


@pytest.mark.notebook
def test_the_capture_still_shows_and_a_failure_says_where(degraded: Degraded) -> None:
    # the capture's own notebook ran on the capture, and its section is in the report
    assert "dnskit report: 04-capture-dns ok" in degraded.err
    section = re.search(r'<section class="dnskit-nb" id="nb-04-capture-dns">', degraded.html)
    assert section is not None
    for name in re.findall(r"dnskit report: (\S+) failed", degraded.err):
        # a failed notebook's section says under which heading it stopped, and why, briefly
        m = re.search(
            rf'id="nb-{re.escape(name)}".*?<p class="dnskit-failed">(.*?)</p>',
            degraded.html,
            re.DOTALL,
        )
        assert m is not None, name
        said = html.unescape(m.group(1))
        assert said.startswith("Failed in “") and "Corefile" in said and "\n" not in said
    if "06-findings failed" in degraded.err:
        # no findings: the findings section names the notebook that failed and why
        assert "No findings: the findings notebook 06-findings failed before emitting them" in (
            degraded.text
        )


@pytest.mark.notebook
def test_capture_findings_survive_a_broken_corefile(degraded: Degraded) -> None:
    assert "06-findings ok" in degraded.err
    # the capture's findings fired
    for fid in ("syn-retransmissions", "latency-timer-modes"):
        assert f'id="finding-{fid}"' in degraded.html
    # and the check that needs the Corefile says why it was not checked
    assert re.search(r"forced-tcp not checked: \S*Corefile could not be read \(", degraded.text)


# ---------------------------------------------------------------------------------------------
# the pieces, without a kernel
# ---------------------------------------------------------------------------------------------


def test_read_errors_come_from_parsing_checks_and_failed_notebooks() -> None:
    files = [
        ("inc/Corefile", "corefile"),
        ("inc/unbound.conf", "unbound_conf"),
        ("inc/node1.pcap", "capture"),
        ("inc/secret.log", "unknown"),
        ("inc/a/metrics.json", "prometheus_api_json"),
        ("inc/b/metrics.json", "prometheus_api_json"),
        ("inc/Corefile.bak", "unknown"),
        ("inc/notes.txt", "unknown"),
    ]
    reasons = {
        "inc/Corefile": f"1 server block lines; but it does not parse: {PARSE_ERROR}",
        "inc/unbound.conf": "unbound.conf: server: clause",
        "inc/node1.pcap": "pcap magic",
        "inc/secret.log": "could not be read: PermissionError: [Errno 13] Permission denied",
        "inc/a/metrics.json": "Prometheus API JSON",
        "inc/b/metrics.json": "Prometheus API JSON",
        "inc/Corefile.bak": "binary data: 4 NUL bytes",
        "inc/notes.txt": "binary data: 4 NUL bytes",
    }
    runs = [
        NotebookRun("05", Path("05.py"), "failed", "KitError: unbound.conf:3: port: not a number"),
        NotebookRun("01", Path("01.py"), "failed", "KitError: metrics.json: truncated"),
        NotebookRun("04", Path("04.py"), "ok"),
    ]
    used = {
        0: {"inc/unbound.conf", "inc/node1.pcap"},
        1: {"inc/a/metrics.json", "inc/b/metrics.json"},
        2: {"inc/node1.pcap"},
    }
    checks = [
        {
            "check": "forced-tcp",
            "status": "not checked",
            "reason": "inc/Corefile could not be read (braces)",
        },
        {"check": "syn-retransmissions", "status": "fired", "reason": "852 SYN retransmissions"},
    ]
    got = report_assemble._read_errors(files, reasons, used, runs, checks)
    assert got == {
        # the classification said so first
        "inc/Corefile": PARSE_ERROR,
        "inc/secret.log": "PermissionError: [Errno 13] Permission denied",
        # the failed notebook's error names the file it was given
        "inc/unbound.conf": "KitError: unbound.conf:3: port: not a number",
        # named like a Corefile, not recognised as one: not read, rather than ignored
        "inc/Corefile.bak": "named like a Corefile, but binary data: 4 NUL bytes",
    }
    # two files share the name metrics.json: the error cannot say which, so neither is blamed;
    # the capture, named nowhere, was read
    got = report_assemble._read_errors(files[:3], {k: "" for k, _ in files}, used, runs, checks)
    assert got == {
        "inc/Corefile": "braces",
        "inc/unbound.conf": "KitError: unbound.conf:3: port: not a number",
    }


def _summary(coverage: list[dict[str, object]]) -> dict[str, object]:
    return {"cause": "c", "impact": [], "coverage": coverage}


def test_every_checks_outcome_is_shown_escaped() -> None:
    coverage = [
        {"check": "forced-tcp", "ran": False, "fired": [], "missing": "a Corefile"},
        {"check": "syn-retransmissions", "ran": True, "fired": ["syn-retransmissions"]},
        {"check": "packet-rate", "ran": True, "fired": []},
    ]
    header = report_html._header_html("t", [], [], "06", _summary(coverage))
    text = page_text(header)
    assert "Coverage: 2 of 3 checks ran (1 fired): syn-retransmissions, packet-rate." in text
    assert "Could not run: forced-tcp (needs a Corefile; none given). Add those artefacts" in text
    assert "Every check's outcome (1 fired, 1 not fired, 1 not checked)" in text
    assert "syn-retransmissions fired: syn-retransmissions" in text
    assert "packet-rate not fired" in text
    # the outcomes from kit.findings.CheckResult, with hostile text in a reason and a file name
    checks = [
        {
            "check": "forced-tcp",
            "status": "not checked",
            "reason": f"{HOSTILE}/Corefile could not be read (x)",
        },
        {"check": "bucket-ceiling", "status": "not fired", "reason": f"le max {HOSTILE}"},
    ]
    header = report_html._header_html(
        "t",
        [],
        [],
        "06",
        _summary(coverage),
        checks=checks,
        unreadable=[(f"{HOSTILE}/Corefile", "x")],
    )
    assert "<script" not in header
    text = page_text(header)
    assert f"forced-tcp not checked: {HOSTILE}/Corefile could not be read (x)" in text
    assert f"bucket-ceiling not fired: le max {HOSTILE}" in text
    assert "Could not run: forced-tcp" in text and "Add those artefacts" not in text
    assert f"{HOSTILE}/Corefile could not be read (x)." in text
    assert str(escape(HOSTILE)) in header


def test_check_results_travel_from_a_verdict_to_the_report() -> None:
    finding = kf.Finding("syn-retransmissions", "852 <SYN>", "critical", "e")
    verdict = kf.Verdict([finding])
    verdict.checks = [  # type: ignore[attr-defined]
        kf.CheckResult("syn-retransmissions", "fired", "852 <SYN>", finding=finding),
        kf.CheckResult("forced-tcp", "not checked", "Corefile could not be read (braces)"),
    ]
    assert report_handover._checks_payload(verdict) == [
        {"check": "syn-retransmissions", "status": "fired", "reason": "852 <SYN>"},
        {
            "check": "forced-tcp",
            "status": "not checked",
            "reason": "Corefile could not be read (braces)",
        },
    ]
    assert report_handover._checks_payload([finding]) == []
    # or under the name results
    other = kf.Verdict([finding])
    other.results = verdict.checks[1:]  # type: ignore[attr-defined]
    assert [c["check"] for c in report_handover._checks_payload(other)] == ["forced-tcp"]


def test_one_rendering_of_a_finding_card() -> None:
    finding = {
        "id": "x<y",
        "title": HOSTILE,
        "severity": "critical",
        "role": "mechanism",
        "explanation": "line\x07bell",
        "evidence": {"peak_s": HOSTILE},
        "confirm": "tshark -r 'a b.pcap'",
    }
    card = report_html.finding_card(report_handover._finding_dict(finding))
    assert card == report_handover.finding_html(finding)
    assert "<script" not in card and str(escape(HOSTILE)) in card
    assert "line\\x07bell" in card  # a control character made visible
    assert 'id="finding-x_y"' in card
    # the report's findings section shows that same card
    header = report_html._header_html("t", [], [report_handover._finding_dict(finding)], "06")
    assert card in header


@pytest.mark.notebook
def test_check_outcomes_handed_over_by_a_notebook(tmp_path: Path) -> None:
    # a Corefile that parses, so only the check's "could not be read" can mark it
    folder = tmp_path / "incident"
    folder.mkdir()
    (folder / "Corefile").write_text(".:53 {\n    forward . 10.0.0.53\n}\n", encoding="utf-8")
    shutil.copy(REPO / "tests" / "data" / "capture" / "syn_retransmit.pcap", folder / "node1.pcap")
    out = tmp_path / "checks.html"
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        rc = main(
            [
                "report",
                str(folder),
                *("--notebook", str(REPO / "tests" / "data" / "report" / "check_outcomes.py")),
                "-o",
                str(out),
            ]
        )
    assert rc == 0, err.getvalue()
    markup = out.read_text(encoding="utf-8")
    assert re.search(r"<script", markup, re.IGNORECASE) is None
    text = page_text(markup)
    assert "Every check's outcome (1 fired, 1 not fired, 1 not checked)" in text
    assert "syn-retransmissions fired: 852 SYNs <b>resent</b>" in text
    assert "packet-rate not fired: 132 pps peak, below 1024" in text
    reason = "unbalanced <script>alert(5)</script> braces"
    assert re.search(
        rf"forced-tcp not checked: \S+/Corefile could not be read \({re.escape(reason)}\)", text
    )
    # the file the check could not read is marked so, with the reason, not "used"
    assert f"Corefile could not be read ({reason})" in text
    assert "Artefacts: 1 used, 1 could not be read, 0 ignored" in text
    assert "1 could not be read" in err.getvalue()
