"""The fuzz harness (tools/fuzz.py) in its CI budget: a fixed seed, so the same inputs each run.

``make fuzz`` runs the long mode (10,000 inputs per loader) by hand; this runs 400 per text loader
and 40 per newer reader (dnstap, Kubernetes snapshot, node evidence, Zeek, Gadget) plus the
file-system cases, each in a worker under a time limit and an address-space cap, and asserts
that no input gave a raw exception, a hang, a crash or a lost unit (lines, frames, items, records: each reader's own accounting).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_fuzz_ci_budget(tmp_path: Path) -> None:
    out = tmp_path / "fuzz.json"
    proc = subprocess.run(
        [sys.executable, str(REPO / "tools" / "fuzz.py"), "--seed", "14", "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert out.exists(), proc.stdout + proc.stderr
    summary = json.loads(out.read_text())
    assert summary["findings"] == [], proc.stdout
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for name in ("coredns", "corefile", "unbound_log", "unbound_conf", "metrics"):
        counts = summary["loaders"][name]["counts"]
        # 400 mutated inputs and the file-system cases, every one with an outcome
        total = sum(v for k, v in counts.items() if k != "retried")
        assert total >= 400 + 8, (name, counts)
        # the inputs reach the parsers: not everything is refused, not everything passes
        assert counts.get("kit_error", 0) > 0, (name, counts)
        assert counts.get("ok", 0) + counts.get("warning", 0) > 0, (name, counts)
    for name in ("dnstap", "k8s", "node", "zeek", "gadget"):
        counts = summary["loaders"][name]["counts"]
        total = sum(v for k, v in counts.items() if k != "retried")
        assert total >= 40 + 8, (name, counts)
        assert counts.get("kit_error", 0) > 0, (name, counts)
        assert counts.get("ok", 0) + counts.get("warning", 0) > 0, (name, counts)


@pytest.mark.slow
@pytest.mark.parametrize("case", ["dnstap:419", "dnstap:3319", "k8s:1083", "k8s:2361"])
def test_fuzz_long_mode_findings_replayed(case: str, tmp_path: Path) -> None:
    """Inputs the long mode found, replayed one at a time: dnstap times of 2^63 ns and more (a
    raw polars TypeError), a Kubernetes JSON integer over 4,300 digits (a raw ValueError); now a
    counted reject or a clean KitError."""
    out = tmp_path / "one.json"
    cmd = [sys.executable, str(REPO / "tools" / "fuzz.py"), "--long", "--seed", "14"]
    proc = subprocess.run(
        [*cmd, "--only", case, "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    summary = json.loads(out.read_text())
    assert summary["findings"] == [], proc.stdout
    counts = summary["loaders"][case.split(":")[0]]["counts"]
    assert counts.get("warning", 0) + counts.get("kit_error", 0) == 1, counts
    assert proc.returncode == 0, proc.stdout + proc.stderr
