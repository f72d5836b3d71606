"""The fuzz harness (tools/fuzz.py) in its CI budget: a fixed seed, so the same inputs each run.

``make fuzz`` runs the long mode (10,000 inputs per loader) by hand; this runs 400 per loader plus
the file-system cases, each in a worker under a time limit and an address-space cap, and asserts
that no input gave a raw exception, a hang, a crash or a lost line.
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
