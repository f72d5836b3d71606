"""The findings model: Severity and Role enums, CheckResult (fired / not fired / not checked).

Before: severity was a bare string (the report's template styled ``high`` / ``medium``, which no
check produces), and a check that did not fire returned None, so ``burst_status`` computed the
error-burst check a second time to say why.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import kit
import kit.findings as kf
from kit.findings import CheckResult, Finding, Role, Severity

pytestmark = pytest.mark.unit

TEMPLATES = Path(kit.__file__).parent / "templates"


def test_severity_and_role_are_enums_that_read_as_text() -> None:
    f = Finding(id="syn-retransmissions", title="t", severity="critical", explanation="e")
    assert f.severity is Severity.CRITICAL and f.severity == "critical"
    assert f.role is Role.MECHANISM and f"{f.role}" == "mechanism"
    assert json.loads(json.dumps(kf.finding_json(f)))["severity"] == "critical"
    assert kf.findings_frame([f])["severity"].dtype == kf.FINDINGS_SCHEMA["severity"]
    assert [s.rank for s in Severity] == [0, 1, 2]
    for bad in ("high", "medium", "CRITICAL"):
        with pytest.raises(ValueError, match="severity"):
            Finding(id="x", title="t", severity=bad, explanation="e")


def test_template_styles_only_real_severities() -> None:
    css = "".join(p.read_text() for p in TEMPLATES.rglob("*.j2"))
    styled = {w.split()[0] for w in css.split(".dnskit-sev-")[1:]}
    assert styled and styled <= set(kf.SEVERITIES)  # info keeps the default grey


def test_check_result_states() -> None:
    f = Finding(id="x", title="T", severity="info", explanation="e")
    assert CheckResult("x", "fired", "T", {}, f).verdict == "fired (info): T"
    assert CheckResult("x", "not fired", "below 10", {"peak": 4}).verdict == ("not fired: below 10")
    with pytest.raises(ValueError):
        CheckResult("x", "fired", "no finding")
    with pytest.raises(ValueError):
        CheckResult("x", "maybe", "?")


def test_burst_status_is_the_check_result_not_a_second_computation(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = kit.read_coredns_log(data_dir / "findings" / "errors_quiet.log")
    res = kf.error_bursts_result(coredns=log)
    assert res.status == "not fired" and res.finding is None
    assert res.numbers["errors"] == 3 and res.numbers["peak_per_bin"] == 1
    assert kf.check_error_bursts(coredns=log) is None
    fired = kf.error_bursts_result(coredns=log, min_errors=1)
    again = kf.check_error_bursts(coredns=log, min_errors=1)
    assert fired.fired and fired.finding is not None and again is not None
    assert (fired.finding.title, fired.finding.severity) == (again.title, again.severity)
    assert kf.error_bursts_result().status == "not checked"

    def boom(**_: object) -> None:
        raise AssertionError("burst_status ran the check a second time")

    monkeypatch.setattr(kf, "check_error_bursts", boom)
    row = kf.burst_status(coredns=log).row(0, named=True)
    assert row["verdict"] == res.verdict == "not fired: peak 1 timed errors per 1m, below 10"
    assert row["errors"] == res.numbers["errors"]


def test_graded_fields_are_validated_and_render_neutral() -> None:
    f = Finding(
        id="forced-tcp",
        title="T",
        severity="critical",
        explanation="e",
        confirms=["syn-retransmissions: 3 SYNs"],  # a list is kept as a tuple
        confidence="high",
    )
    assert f.confirms == ("syn-retransmissions: 3 SYNs",) and f.refutes == ()
    j = json.loads(json.dumps(kf.finding_json(f)))
    assert j["confirms"] == ["syn-retransmissions: 3 SYNs"] and j["confidence"] == "high"
    assert j["caused_by"] == ""
    with pytest.raises(ValueError, match="confidence"):
        Finding(id="x", title="t", severity="info", explanation="e", confidence="certain")
    assert kf.CONFIDENCES == ("high", "medium", "low")
    # a check that did not fire or could not run is a plain JSON row too
    r = kf.CheckResult("conntrack-race", "not fired", "0 of 4 pairs late", {"pairs": 4})
    assert kf.check_json(r) == {
        "check": "conntrack-race",
        "status": "not fired",
        "reason": "0 of 4 pairs late",
        "numbers": {"pairs": 4},
        "finding": None,
    }
    assert kf.results_frame([r]).row(0) == (
        "conntrack-race",
        "not fired",
        "not fired: 0 of 4 pairs late",
    )
