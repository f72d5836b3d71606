"""dnskit summarize: each artefact recognised by content, read by its loader, its key numbers."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from kit.analyses.summary import format_summary, summarize_paths
from kit.cli import main


def test_summarize_mixed_folder(
    tmp_path: Path, shared_fixtures: Path, data_dir: Path, tshark: str
) -> None:
    # a folder of mixed artefacts with misleading names: kinds come from content, not names
    shutil.copy(shared_fixtures / "pcaps" / "dnscap_dns.pcap", tmp_path / "node-a.log")
    shutil.copy(
        shared_fixtures / "logs" / "elastic_integrations_test-coredns.log", tmp_path / "x.pcap"
    )
    (tmp_path / "sub").mkdir()
    shutil.copy(data_dir / "corefile" / "kops_before_9917.Corefile", tmp_path / "sub" / "Corefile")
    (tmp_path / "sub" / "notes.txt").write_text("what we did on Tuesday\n")
    result = summarize_paths([tmp_path])
    by_path = {Path(a["path"]).name: a for a in result["artefacts"]}
    assert set(by_path) == {"node-a.log", "x.pcap", "Corefile"}
    cap = by_path["node-a.log"]
    assert cap["kind"] == "capture"
    # PROVENANCE.tsv: 41 queries, 41 NOERROR responses, plain UDP
    assert cap["summary"]["dns_transactions"] == 41 and cap["summary"]["answered"] == 41
    assert cap["summary"]["transports"] == {"udp": 41}
    log = by_path["x.pcap"]
    assert log["kind"] == "coredns_log"
    # PROVENANCE.tsv: 9 query-log lines, NXDOMAIN among the rcodes
    assert log["summary"]["queries"] == 9 and log["summary"]["rejected"] == 0
    assert "NXDOMAIN" in log["summary"]["rcodes"]
    corefile = by_path["Corefile"]["summary"]
    assert corefile["force_tcp"] is True  # kops before PR #9917 forwarded with force_tcp
    assert [i["reason"] for i in result["ignored"] if Path(i["path"]).name == "notes.txt"]
    assert result["failed"] == []
    # plain JSON types all the way down
    assert json.loads(json.dumps(result)) == result


def test_cli_summarize_json_and_text(
    tmp_path: Path, shared_fixtures: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = shared_fixtures / "metrics" / "grafana_range_simple.result.json"
    assert main(["summarize", str(src), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    (item,) = out["artefacts"]
    raw = json.loads(src.read_text())
    expected = sum(len(s["values"]) for s in raw["data"]["result"])
    assert item["kind"] == "prometheus_api_json" and item["summary"]["samples"] == expected
    assert item["summary"]["series"] == len(raw["data"]["result"])
    assert main(["summarize", str(tmp_path / "missing.pcap")]) == 1
    assert "not found" in capsys.readouterr().err


def test_failed_artefact_is_listed_not_fatal(tmp_path: Path) -> None:
    # a Corefile-looking file with an unclosed block: recognised, then the loader rejects it
    bad = tmp_path / "Corefile"
    bad.write_text(".:53 {\n    forward . 10.0.0.2 {\n        force_tcp\n    }\n    errors\n")
    result = summarize_paths([bad])
    assert result["artefacts"] == []
    (failed,) = result["failed"]
    assert failed["kind"] == "corefile"
    assert failed["error"].startswith("Corefile:1: unbalanced braces")
    assert main(["summarize", str(bad)]) == 1


def test_text_output_escapes_control_bytes() -> None:
    result = {
        "artefacts": [
            {"path": "a\x1b[31mred.log", "kind": "coredns_log", "summary": {"rcodes": {"x\x07": 1}}}
        ],
        "ignored": [],
        "failed": [],
    }
    text = format_summary(result)
    assert "\x1b" not in text and "\x07" not in text
    assert "a\\x1b[31mred.log" in text and "x\\x07=1" in text
