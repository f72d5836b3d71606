"""The graded verdict in the report (issue 17): each finding card shows its confidence as a badge,
what confirms it, what speaks against it and what would refute it, and for a consequence the
finding it follows from, linked to that finding's card; the summary's cause names its confidence;
a consequence is never presented as a separate root cause.

End to end on committed lab runs (``data/scenarios``): ``dnskit report`` with the capture,
upstream and findings notebooks, compared with what ``dnskit findings --json`` says of the same
folder (the grading is the findings package's; the report must show it, not recompute it). The
pieces without a kernel: real :class:`kit.findings.Finding` objects through the hand-over and the
card, with hostile text in every graded field.
"""

from __future__ import annotations

import contextlib
import html
import io
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import kit.findings as kf
from kit.cli import main
from kit.findings.runner import NEEDED
from kit.report import NotebookRun
from kit.report import handover as report_handover
from kit.report import html as report_html

REPO = Path(__file__).resolve().parent.parent
SCENARIOS = REPO / "data" / "scenarios"
NOTEBOOKS = ("04-capture-dns.py", "05-upstream-tcp.py", "06-findings.py")
HOSTILE = "<script>alert(1)</script>\"'&"


def page_text(markup: str) -> str:
    """The visible text of some HTML, roughly: tags removed, entities decoded, spaces folded."""
    markup = re.sub(r"(?is)<(style|script)\b.*?</\1\s*>", " ", markup)
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", "", markup)))


def _findings_section(markup: str) -> str:
    """The report's findings section (the header's; the notebooks' own outputs come later)."""
    m = re.search(r'<section [^>]*id="findings".*?</header>', markup, re.DOTALL)
    assert m is not None
    return m.group(0)


def _card(section: str, fid: str) -> str:
    m = re.search(rf'<article [^>]*id="finding-{re.escape(fid)}">.*?</article>', section, re.DOTALL)
    assert m is not None, fid
    return m.group(0)


def _role_of_card(section: str, fid: str) -> str:
    """The role section (``root-cause``, ``symptom``...) the card of ``fid`` is shown in."""
    for role, body in re.findall(
        r'<section class="dnskit-role dnskit-role-([a-z-]+)"[^>]*>(.*?)</section>',
        section,
        re.DOTALL,
    ):
        if f'id="finding-{fid}"' in body:
            return str(role)
    raise AssertionError(f"no card for {fid}")


@dataclass(frozen=True)
class Graded:
    scenario: str
    rc: int
    err: str
    html: str
    verdict: dict[str, Any]


@pytest.fixture(scope="module", params=["forced-tcp-syn-drops", "packet-rate-limit"])
def graded(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Graded:
    folder = SCENARIOS / request.param
    if not (folder / "run.json").is_file():
        pytest.skip(f"{folder} not present")
    out = tmp_path_factory.mktemp("grade") / f"{request.param}.html"
    err, js = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err):
        rc = main(
            [
                "report",
                str(folder),
                *[a for nb in NOTEBOOKS for a in ("--notebook", str(REPO / "notebooks" / nb))],
                "-o",
                str(out),
            ]
        )
    with contextlib.redirect_stdout(js), contextlib.redirect_stderr(io.StringIO()):
        main(["findings", "--json", str(folder)])
    return Graded(
        request.param, rc, err.getvalue(), out.read_text("utf-8"), json.loads(js.getvalue())
    )


@pytest.mark.notebook
def test_headline_cause_card_shows_its_grading(graded: Graded) -> None:
    assert graded.rc == 0, graded.err
    summary = graded.verdict["summary"]
    cause = next(f for f in graded.verdict["findings"] if f["id"] == summary["cause_id"])
    assert cause["confidence"] and cause["confirms"]  # the lab run is graded
    # the summary card's cause names its confidence and links to the cause's card
    m = re.search(r'<p class="dnskit-cause">(.*?)</p>', graded.html, re.DOTALL)
    assert m is not None
    assert f"{summary['confidence']['level']} confidence" in page_text(m.group(1))
    assert f'href="#finding-{cause["id"]}"' in m.group(1)
    # the cause's card, under "Root cause": the confidence badge and every confirmation, each
    # naming (and linking) the finding that confirms it
    section = _findings_section(graded.html)
    assert _role_of_card(section, cause["id"]) == "root-cause"
    card = _card(section, cause["id"])
    assert f'<span class="dnskit-conf dnskit-conf-{cause["confidence"]}"' in card
    text = page_text(card)
    assert f"{cause['confidence']} confidence" in text
    assert "Confirmed by:" in text
    for sentence in cause["confirms"]:
        assert sentence in text, sentence
        assert f'href="#finding-{sentence.split(": ")[0]}"' in card
    # what would refute it: the grading's own table, or the evidence against it
    if cause["id"] in NEEDED or cause["refutes"]:
        assert "Would be refuted by:" in text or "Against it:" in text


@pytest.mark.notebook
def test_consequences_link_to_their_cause(graded: Graded) -> None:
    section = _findings_section(graded.html)
    titles = {f["id"]: f["title"] for f in graded.verdict["findings"]}
    consequences = [f for f in graded.verdict["findings"] if f["caused_by"]]
    assert consequences  # both runs have one (syn-retransmissions; servfail-storm)
    for f in consequences:
        card = _card(section, f["id"])
        m = re.search(r'<p class="dnskit-consequence">(.*?)</p>', card, re.DOTALL)
        assert m is not None, f["id"]
        assert f'<a href="#finding-{f["caused_by"]}">' in m.group(1)
        assert page_text(m.group(1)) == f"Consequence of {titles[f['caused_by']]}"
        # and that anchor is the cause's card
        assert f'id="finding-{f["caused_by"]}"' in section
        # a consequence is not presented as a root cause of its own
        assert _role_of_card(section, f["id"]) != "root-cause"
    # the findings that stand on their own say nothing of the kind
    for f in graded.verdict["findings"]:
        if not f["caused_by"]:
            assert "dnskit-consequence" not in _card(section, f["id"])


# ---------------------------------------------------------------------------------------------
# the pieces, without a kernel
# ---------------------------------------------------------------------------------------------


def _cause() -> kf.Finding:
    return kf.Finding(
        "forced-tcp",
        f"Forced TCP {HOSTILE}",
        "critical",
        "why",
        confirms=(f"syn-retransmissions: 12 SYNs {HOSTILE}",),
        refutes=(f"not checked: latency-timer-modes (no log {HOSTILE})",),
        confidence="high",
    )


def _consequence() -> kf.Finding:
    return kf.Finding(
        "servfail-storm",
        "SERVFAIL storm",
        "warning",
        "why",
        confirms=(f"upstream-error-bursts: {HOSTILE}",),
        refutes=(f"packet-rate-below-limit: {HOSTILE}",),
        confidence="low",
        caused_by="forced-tcp",
    )


def test_hostile_grading_stays_escaped() -> None:
    one = report_handover.finding_html(_cause())
    both = report_html.cards_html(
        [report_handover._finding_dict(f) for f in (_cause(), _consequence())]
    )
    for markup in (one, both):
        assert "<script>" not in markup
        assert "&lt;script&gt;alert(1)&lt;/script&gt;&#34;&#39;&amp;" in markup
    text = page_text(one)
    assert "high confidence" in text
    assert f"Confirmed by: syn-retransmissions: 12 SYNs {HOSTILE}" in text
    # the support check that could not run is what would have refuted it
    assert "Would be refuted by:" in text
    assert f"not checked: latency-timer-modes (no log {HOSTILE})" in text
    assert "syn-retransmissions not firing" in text  # NEEDED: its silence refutes forced-tcp
    # the consequence names its cause by the cause's (hostile) title, escaped, linked to its card
    card = _card(both, "servfail-storm")
    assert page_text(card).count(f"Consequence of Forced TCP {HOSTILE}") == 1
    assert '<a href="#finding-forced-tcp">Forced TCP &lt;script&gt;' in card
    assert "low confidence" in page_text(card)
    assert f"Against it: packet-rate-below-limit: {HOSTILE}" in page_text(card)


def test_found_evidence_against_replaces_what_would_refute() -> None:
    # forced TCP while the capture shows no SYN trouble: the grading's refutation (NEEDED silent)
    silent = "syn-retransmissions did not fire: no SYN retransmission towards 10.0.0.53"
    against = kf.Finding("forced-tcp", "t", "critical", "why", refutes=(silent,), confidence="low")
    text = page_text(report_handover.finding_html(against))
    assert f"Against it: {silent}" in text
    assert "Would be refuted by" not in text  # it was looked for, and found
    assert "low confidence" in text


def test_long_grading_is_folded_short_inline() -> None:
    long = kf.Finding(
        "forced-tcp",
        "t",
        "critical",
        "why",
        confirms=tuple(f"check-{i}: {'x' * 60}" for i in range(report_html.GRADE_INLINE_ITEMS + 1)),
        confidence="high",
    )
    markup = report_handover.finding_html(long)
    m = re.search(r'<details class="dnskit-evrows dnskit-grade"><summary>(.*?)</summary>', markup)
    assert m is not None and page_text(m.group(1)) == f"Confirmed by: {len(long.confirms)}"
    short = report_handover.finding_html(_cause())
    assert "<details" not in short and '<p class="dnskit-grade">' in short
    # an ungraded finding (handed over by a notebook without grading) shows no grading at all
    plain = report_handover.finding_html(kf.Finding("forced-tcp", "t", "critical", "why"))
    assert "dnskit-conf" not in plain and "dnskit-grade" not in plain


def test_a_consequence_is_never_shown_as_a_root_cause() -> None:
    # a root-cause finding that names another shown finding as its cause (a notebook's own
    # finding, or a cause the grading demoted): shown and counted with the symptoms
    cause = report_handover._finding_dict(_cause())
    follows = dict(report_handover._finding_dict(_consequence()), role="root-cause")
    alone = dict(follows, id="other", caused_by="gone")
    header = report_html._header_html(
        "t",
        [NotebookRun("06-findings", Path("06-findings.py"), "ok")],
        [cause, follows, alone],
        "06-findings",
        summary={
            "cause": "c",
            "cause_id": "forced-tcp",
            "confidence": {"level": "high", "why": "w"},
        },
    )
    section = _findings_section(header)
    assert _role_of_card(section, "forced-tcp") == "root-cause"
    assert _role_of_card(section, "servfail-storm") == "symptom"
    # a cause that is not among the findings shown does not demote it, and is named unlinked
    assert _role_of_card(section, "other") == "root-cause"
    assert "Consequence of <code>gone</code>" in _card(section, "other")
    toc = re.search(r'<nav id="toc".*?</nav>', header, re.DOTALL)
    assert toc is not None
    assert "Root cause (2)" in page_text(toc.group(0))
    assert "Symptom (1)" in page_text(toc.group(0))
    cause_line = re.search(r'<p class="dnskit-cause">(.*?)</p>', header, re.DOTALL)
    assert cause_line is not None
    assert page_text(cause_line.group(1)).startswith("Cause c high confidence")
