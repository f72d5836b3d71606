"""``dnskit`` in-process: argument handling, exit codes and one-line error messages.

The report itself (notebooks executed, HTML checked in Chromium) is tested in test_report.py
through the same ``main([...])`` entry point.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from kit.cli import main, parse_value


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("True", True),
        ("False", False),
        ("None", None),
        ("3", 3),
        ("-2", -2),
        ("0.5", 0.5),
        ("1e-3", 0.001),
        ("[1, 2]", [1, 2]),
        ('{"a": "b"}', {"a": "b"}),
        ("data/sample", "data/sample"),
        ("2024-05-01T10:00:00Z", "2024-05-01T10:00:00Z"),
        ("true", "true"),  # papermill converts only the Python spellings
        ("<script>", "<script>"),
        ("", ""),
    ],
)
def test_parse_value(text: str, expected: Any) -> None:
    got = parse_value(text)
    assert got == expected
    assert type(got) is type(expected)


def test_parse_value_bad_json() -> None:
    with pytest.raises(ValueError, match=r"looks like JSON but does not parse"):
        parse_value("[1, 2")


def test_help_lists_both_subcommands(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "summarize" in out
    assert "report" in out
    with pytest.raises(SystemExit):
        main(["report", "--help"])
    out = capsys.readouterr().out
    for option in ("-p NAME VALUE", "--output", "--notebook", "--keep-executed", "ARTEFACTS"):
        assert option.lower() in out.lower()


def test_report_needs_an_output(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["report", "data/sample"])
    assert exc.value.code == 2
    assert "-o/--output" in capsys.readouterr().err


def test_unknown_parameter_is_a_usage_error(
    data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rc = main(
        [
            "report",
            str(data_dir / "report" / "Corefile"),
            "--notebook",
            str(data_dir / "report" / "failing.py"),
            "-p",
            "mesage",
            "x",
            "-o",
            str(tmp_path / "r.html"),
        ]
    )
    err = capsys.readouterr().err
    assert rc == 2
    assert err == (
        "dnskit report: error: parameter(s) mesage not declared by any notebook run "
        "(declared: message)\n"
    )
    assert not (tmp_path / "r.html").exists()


def test_bad_json_parameter_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rc = main(["report", "-p", "x", "{oops", "-o", str(tmp_path / "r.html")])
    assert rc == 2
    assert capsys.readouterr().err.startswith("dnskit report: error: -p value '{oops' looks like")


def test_missing_artefact_is_one_line(
    data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "no-such-capture.pcap"
    rc = main(
        [
            "report",
            str(missing),
            "--notebook",
            str(data_dir / "report" / "failing.py"),
            "-o",
            str(tmp_path / "r.html"),
        ]
    )
    err = capsys.readouterr().err
    assert rc == 1
    assert err == f"dnskit: error: artefact file not found: {missing}\n"


def test_missing_notebook_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    nb = tmp_path / "nope.py"
    rc = main(["report", "--notebook", str(nb), "-o", str(tmp_path / "r.html")])
    assert rc == 1
    assert capsys.readouterr().err == f"dnskit: error: notebook not found: {nb}\n"


def test_python_dash_m_kit_exit_status(tmp_path: Path) -> None:
    # the real process: `python -m kit` goes through kit/__main__.py to the same main()
    nb = tmp_path / "nope.py"
    proc = subprocess.run(
        [sys.executable, "-m", "kit", "report", "--notebook", str(nb), "-o", str(tmp_path / "r")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 1
    assert proc.stderr == f"dnskit: error: notebook not found: {nb}\n"
    assert proc.stdout == ""


def test_parameter_that_is_not_utf8_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    value = os.fsdecode(b"x\xffy")  # as argv delivers bytes that are not UTF-8
    rc = main(["report", "-p", "label", value, "-o", str(tmp_path / "r.html")])
    assert rc == 2
    assert capsys.readouterr().err == (
        "dnskit report: error: -p label x\\xffy: not valid UTF-8 (parameters travel as JSON text)\n"
    )


# ---------------------------------------------------------------------------------------------
# dnskit findings: the verdict for automation (--json) and for a ticket (--format md)

SAMPLE = Path(__file__).resolve().parent.parent / "data" / "sample"


@pytest.fixture
def incident(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The sample's node1 capture and incident config, copied to a folder named as a user would,
    with the current directory set to its parent (artefacts given by relative path)."""
    if not (SAMPLE / "run.json").exists():
        pytest.skip("data/sample not present (make sample)")
    import shutil

    folder = tmp_path / "my incident"
    (folder / "caps").mkdir(parents=True)
    shutil.copy(SAMPLE / "captures" / "node1.pcap", folder / "caps" / "node1.pcap")
    shutil.copy(SAMPLE / "configs" / "unbound-node1.incident.conf", folder / "unbound.conf")
    shutil.copy(SAMPLE / "run.json", folder / "run.json")
    monkeypatch.chdir(tmp_path)
    return folder


def test_findings_json(incident: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import json

    assert main(["findings", "my incident", "--json"]) == 0
    got = json.loads(capsys.readouterr().out)
    by_role = {}
    for f in got["findings"]:
        by_role.setdefault(f["role"], []).append(f["id"])
        assert set(f) == {
            *("id", "role", "severity", "title", "explanation", "evidence", "confirm"),
            *("confirms", "refutes", "confidence", "caused_by"),  # the grading (issue 17)
        }
    assert by_role["root-cause"] == ["forced-tcp"]
    assert by_role["mechanism"] == ["syn-retransmissions"]
    assert by_role["ruled-out"] == ["packet-rate-below-limit"]
    syn = next(f for f in got["findings"] if f["id"] == "syn-retransmissions")
    assert syn["severity"] == "critical" and syn["evidence"]["syn_retransmits"] > 0
    # confirm commands name the artefacts as given here, runnable from this directory
    assert "tshark -r 'my incident/caps/node1.pcap'" in syn["confirm"]
    forced = next(f for f in got["findings"] if f["id"] == "forced-tcp")
    assert "'my incident/unbound.conf'" in forced["confirm"]
    out = subprocess.run(
        ["sh", "-c", forced["confirm"]], capture_output=True, text=True, check=True
    ).stdout
    assert "tcp-upstream: yes" in out
    assert got["summary"]["cause_id"] == "forced-tcp"
    assert got["summary"]["confidence"]["level"] == "high"
    # same with --format json
    assert main(["findings", "my incident", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["findings"] == got["findings"]


def test_findings_markdown(incident: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["findings", "my incident/caps", "--format", "md"]) == 0
    md = capsys.readouterr().out
    assert md.startswith("**DNS incident verdict:** Cause not established")
    assert "- Mechanism (critical) `syn-retransmissions`:" in md
    assert "`tshark -r 'my incident/caps/node1.pcap'" in md
    # one capture only: what could not run, and what would enable it
    assert "**Could not run:** forced-tcp (needs a Corefile or unbound.conf)" in md


def test_findings_missing_artefact(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["findings", str(tmp_path / "nope.pcap")]) == 1
    assert "nope.pcap" in capsys.readouterr().err


def test_help_lists_the_notebook_commands(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    assert "notebooks" in out
    assert "open" in out


def test_notebooks_writes_working_copies_pointed_at_the_artefacts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import kit.report.notebooks

    incident = tmp_path / "incident"
    incident.mkdir()
    (incident / "x.pcap").write_bytes(b"")
    monkeypatch.chdir(tmp_path)
    assert main(["notebooks", "copies", "incident"]) == 0
    sources = kit.report.notebooks.default_notebooks()
    copies = sorted((tmp_path / "copies").glob("*.py"))
    assert [p.name for p in copies] == [p.name for p in sources]
    for copy in copies:
        text = copy.read_text(encoding="utf-8")
        # the absolute folder, whatever directory the notebook is later run from
        assert f"artefacts: str | list[str] | None = [{str(incident)!r}]  #" in text
    err = capsys.readouterr().err
    assert err.count("dnskit notebooks: written ") == len(sources)

    # an edited copy is kept; an unedited one is re-pointed at other artefacts
    edited = copies[1]
    edited.write_text(edited.read_text(encoding="utf-8") + "\n# my note\n", encoding="utf-8")
    other = tmp_path / "other"
    other.mkdir()
    (other / "y.log").write_text("x\n", encoding="utf-8")
    assert main(["notebooks", "copies", "other"]) == 0
    err = capsys.readouterr().err
    assert f"dnskit notebooks: kept {Path('copies') / edited.name}" in err
    assert "# my note" in edited.read_text(encoding="utf-8")
    assert str(other) in copies[0].read_text(encoding="utf-8")
    assert main(["notebooks", "copies", "other", "--force"]) == 0
    assert "# my note" not in edited.read_text(encoding="utf-8")


def test_notebooks_missing_artefact_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["notebooks", "copies", "nope"]) == 1
    assert (
        capsys.readouterr().err == f"dnskit: error: artefact file not found: {tmp_path / 'nope'}\n"
    )
    assert not (tmp_path / "copies").exists()


def test_open_print_sets_the_default_viewer_and_prints_the_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import json
    import shlex

    monkeypatch.setenv("JUPYTERLAB_DIR", str(tmp_path / "lab-app"))  # JupyterLab's app dir
    monkeypatch.chdir(tmp_path)
    assert main(["open", "--print", "--", "--no-browser", "--port", "9"]) == 0
    out, err = capsys.readouterr()
    command = shlex.split(out.strip())
    assert command[:3] == [sys.executable, "-m", "jupyterlab"]
    assert f"--ServerApp.root_dir={tmp_path / 'dnskit-notebooks'}" in command
    assert command[-3:] == ["--no-browser", "--port", "9"]
    assert sorted((tmp_path / "dnskit-notebooks").glob("*.py"))
    settings = tmp_path / "lab-app" / "settings" / "overrides.d" / "dns-incident-kit.json"
    assert json.loads(settings.read_text(encoding="utf-8")) == {
        "@jupyterlab/docmanager-extension:plugin": {
            "defaultViewers": {"python": "Jupytext Notebook"}
        }
    }
    assert str(settings) in err
