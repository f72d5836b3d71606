"""Checks on node evidence (kit.findings.checks_node) and their place in `dnskit findings`.

Inputs: the lab's scenario evidence (real, nothing to find there), real nstat output with
UdpRcvbufErrors made in a netns (tests/data/node/real), and ENA / conntrack-race text in the
tools' documented formats (tests/data/node/format; see tests/data/PROVENANCE).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import kit.findings as kf
from kit.findings.checks_node import (
    check_conntrack_insert_failed,
    check_ena_allowance,
    check_udp_receive_errors,
    node_results,
)
from kit.sources.node import read_node_evidence

REPO = Path(__file__).resolve().parent.parent
DATA = REPO / "tests" / "data" / "node"
NODE_IDS = {"ena-allowance-exceeded", "conntrack-insert-failed", "udp-receive-buffer-errors"}


def _field(path: Path, name: str) -> list[int]:
    """Every value of ``name`` in a file, in order (``name: 12``, ``name=12``, ``Name  12``)."""
    pat = re.compile(rf"\b{re.escape(name)}(?::\s+|=|\s+)(\d+)")
    return [int(m[1]) for m in pat.finditer(path.read_text())]


def test_ena_linklocal_growth_is_critical_root_cause() -> None:
    path = DATA / "format" / "ena-ethtool-S-eth0.txt"
    r = check_ena_allowance(read_node_evidence(path))
    assert r.fired and r.finding is not None
    f = r.finding
    assert (f.severity, f.role) == ("critical", "root-cause")
    ll = _field(path, "linklocal_allowance_exceeded")
    pps = _field(path, "pps_allowance_exceeded")
    assert f.evidence["linklocal_allowance_exceeded@eth0"] == ll[-1] - ll[0]
    assert f.evidence["pps_allowance_exceeded@eth0"] == pps[-1] - pps[0]
    assert "linklocal_allowance_exceeded" in f.title and "eth0" in f.title
    assert str(path) in f.confirm


def test_ena_one_snapshot_is_info_and_other_nics_are_not_checked(tmp_path: Path) -> None:
    path = DATA / "format" / "ena-ethtool-S-eth0.txt"
    first = path.read_text().split("[ec2-user ~]$ ethtool -S eth0\n")[1]
    one = tmp_path / "ethtool-S-eth0.txt"
    one.write_text(first)  # the first snapshot only: totals since the driver's reset
    r = check_ena_allowance(read_node_evidence(one))
    assert r.fired and r.finding is not None and r.finding.severity == "info"
    veth = check_ena_allowance(read_node_evidence(DATA / "real" / "ethtool-S-veth0.txt"))
    assert veth.status == "not checked" and "ENA" in veth.reason
    assert check_ena_allowance(None).status == "not checked"


def test_conntrack_insert_failed_growth() -> None:
    path = DATA / "format" / "conntrack-race-S.txt"
    r = check_conntrack_insert_failed(read_node_evidence(path))
    assert r.fired and r.finding is not None
    values = _field(path, "insert_failed")  # cpu0, cpu1 before; cpu0, cpu1 after
    assert r.finding.evidence["insert_failed"] == sum(values[2:]) - sum(values[:2])
    assert r.finding.severity == "warning"
    real = read_node_evidence(sorted((DATA / "real").glob("conntrack-S-*.txt")))
    assert check_conntrack_insert_failed(real).status == "not fired"


def test_udp_receive_buffer_errors_on_real_nstat() -> None:
    files = sorted((DATA / "real").glob("nstat-udp-rcvbuf-*.txt"))
    r = check_udp_receive_errors(read_node_evidence(files))
    assert r.fired and r.finding is not None
    before, after = (_field(f, "UdpRcvbufErrors")[0] for f in files[::-1])  # after sorts first
    assert r.finding.evidence["UdpRcvbufErrors"] == after - before > 0
    assert (r.finding.severity, r.finding.role) == ("warning", "mechanism")


@pytest.mark.parametrize("scenario", sorted(p.name for p in (REPO / "data/scenarios").iterdir()))
def test_nothing_fires_on_the_lab_scenarios_evidence(scenario: str) -> None:
    """The lab's real node evidence has no ENA counters (veth), no conntrack insert failure and
    no receive buffer error: every node check runs and stays quiet."""
    ev = read_node_evidence(REPO / "data" / "scenarios" / scenario / "node" / "node1")
    results = {r.check: r.status for r in node_results(ev)}
    assert results == {
        "ena-allowance-exceeded": "not checked",  # veth: no ENA counters
        "conntrack-insert-failed": "not fired",
        "udp-receive-buffer-errors": "not fired",
    }


def _findings_json(*artefacts: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, kit.cli; sys.exit(kit.cli.main())",
            "findings",
            "--json",
            *map(str, artefacts),
        ],
        capture_output=True,
        text=True,
        check=True,
        env=env,
        timeout=300,
        cwd=REPO,
    )
    return json.loads(out.stdout)


def test_dnskit_findings_reads_node_evidence() -> None:
    """`dnskit findings --json` on a scenario folder plus ENA and conntrack evidence: the node
    findings come out by role, and the scenario's own cause stays first."""
    scenario = REPO / "data" / "scenarios" / "healthy"
    plain = _findings_json(scenario)
    assert not NODE_IDS & {f["id"] for f in plain["findings"]}
    got = _findings_json(
        scenario,
        DATA / "format" / "ena-ethtool-S-eth0.txt",
        DATA / "format" / "conntrack-race-S.txt",
        *sorted((DATA / "real").glob("nstat-udp-rcvbuf-*.txt")),
    )
    by_id = {f["id"]: f for f in got["findings"]}
    assert set(by_id) >= NODE_IDS
    assert (
        by_id["ena-allowance-exceeded"]["severity"],
        by_id["ena-allowance-exceeded"]["role"],
    ) == (
        "critical",
        "root-cause",
    )
    assert by_id["conntrack-insert-failed"]["severity"] == "warning"
    assert "ENA linklocal_allowance_exceeded" in got["summary"]["cause"]


def test_load_inputs_keeps_node_evidence() -> None:
    inputs = kf.load_inputs(node_evidence=str(DATA / "format" / "conntrack-race-S.txt"))
    given = dict(
        zip(*inputs.given().select("input", "rows").to_dict(as_series=False).values(), strict=True)
    )
    assert given["node evidence (counters)"] == inputs.node.counters.height > 0
    assert any(f.id == "conntrack-insert-failed" for f in kf.run_on(inputs))


@pytest.mark.notebook
def test_dnskit_report_shows_node_findings(tmp_path: Path) -> None:
    """`dnskit report` on a scenario plus ENA and conntrack evidence: notebook 06 takes the node
    evidence from the artefacts and the report carries the node findings."""
    out = tmp_path / "r.html"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, kit.cli; sys.exit(kit.cli.main())",
            "report",
            str(REPO / "data" / "scenarios" / "healthy"),
            str(DATA / "format" / "ena-ethtool-S-eth0.txt"),
            str(DATA / "format" / "conntrack-race-S.txt"),
            "-o",
            str(out),
        ],
        check=True,
        env=env,
        cwd=REPO,
        timeout=900,
        capture_output=True,
    )
    html = out.read_text()
    assert "ENA linklocal_allowance_exceeded grew by" in html
    assert "conntrack insert_failed grew by" in html
