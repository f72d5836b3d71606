"""Pointing a notebook at an incident: ``kit.sources.artefacts`` finds each input by kind among the
artefacts, uses the sample only when none are given, resolves paths independently of the working
directory, and warns when the change time lies outside the data. The notebook-level test runs
04 on a folder holding one capture, from a working copy, with the kernel in another directory.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import warnings
from pathlib import Path

import polars as pl
import pytest

import kit.sources.artefacts as artefacts
from kit.errors import KitError, KitWarning

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "data" / "sample"


@pytest.fixture
def one_capture(tmp_path: Path) -> Path:
    """An incident folder holding one capture (a copy of the sample's node1, renamed)."""
    folder = tmp_path / "incident"
    (folder / "pcaps").mkdir(parents=True)
    shutil.copy(SAMPLE / "captures" / "node1.pcap", folder / "pcaps" / "node-a.pcap")
    return folder


def test_sample_only_when_no_artefacts_are_given(one_capture: Path) -> None:
    sample = artefacts.resolve_inputs(None, capture=None, run_json=None, unbound_conf=None)
    assert sample.sample
    assert sample["run_json"] == [str(SAMPLE / "run.json")]
    assert len(sample["unbound_conf"] or []) == 3
    assert set(sample.table["source"]) == {"sample"}

    given = artefacts.resolve_inputs(one_capture, capture=None, run_json=None, unbound_conf=None)
    assert not given.sample
    assert given["capture"] == [str(one_capture / "pcaps" / "node-a.pcap")]
    # nothing of the sample leaks into another incident
    assert given["run_json"] is None and given["unbound_conf"] is None
    assert given.table.select("parameter", "source", "files").rows() == [
        ("capture", "artefacts", 1),
        ("run_json", "none", 0),
        ("unbound_conf", "none", 0),
    ]
    assert given.table["paths"].to_list()[0] == ["pcaps/node-a.pcap"]  # shown from the root


def test_paths_do_not_depend_on_the_working_directory(
    one_capture: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "data" / "sample").mkdir(parents=True)  # a decoy where the kernel runs
    monkeypatch.chdir(elsewhere)
    got = artefacts.resolve_inputs("data/sample", run_json=None)
    assert got["run_json"] == [str(SAMPLE / "run.json")]  # the repository's, not the decoy
    # an explicit input is taken from the artefacts root first
    got = artefacts.resolve_inputs(str(one_capture), capture=["pcaps/node-a.pcap"])
    assert got["capture"] == [str(one_capture / "pcaps" / "node-a.pcap")]
    assert got.table["source"].to_list() == ["given"]
    # ... then from the repository root (how dnskit report passes them)
    got = artefacts.resolve_inputs(str(one_capture), run_json=["data/sample/run.json"])
    assert got["run_json"] == [str(SAMPLE / "run.json")]
    with pytest.raises(FileNotFoundError, match="never from the kernel's working directory"):
        artefacts.resolve_inputs(str(one_capture), capture=["node-b.pcap"])


def test_required_input_missing_is_a_clear_error(one_capture: Path) -> None:
    with pytest.raises(KitError, match=r"no metrics_exposition or .* among the artefacts"):
        artefacts.resolve_inputs(str(one_capture), required=["metrics"], metrics=[])
    with pytest.raises(TypeError, match="not an input parameter: captures"):
        artefacts.resolve_inputs(str(one_capture), captures=None)


def test_glob_and_files_as_artefacts(one_capture: Path) -> None:
    got = artefacts.resolve_inputs(
        [str(one_capture / "pcaps" / "*.pcap"), str(SAMPLE / "run.json")],
        capture=None,
        run_json=None,
    )
    assert got["capture"] == [str(one_capture / "pcaps" / "node-a.pcap")]
    assert got["run_json"] == [str(SAMPLE / "run.json")]
    assert got.root == Path(os.path.commonpath([one_capture / "pcaps", SAMPLE]))


def _utc(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC)


def test_change_time_outside_the_data_warns() -> None:
    import kit.sources.timeline

    frame = pl.DataFrame(
        {"ts": [_utc("2024-05-01T10:00:00"), _utc("2024-05-01T10:10:00")]},
        schema={"ts": pl.Datetime("us", "UTC")},
    )
    inside = kit.sources.timeline.timeline(change_time="2024-05-01T10:05:00Z")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert artefacts.check_span(inside, frame) == ""
        assert artefacts.check_span(kit.sources.timeline.timeline(), frame) == ""  # no change time
    outside = kit.sources.timeline.timeline(change_time="2024-05-02T10:05:00Z")
    with pytest.warns(KitWarning, match=r"change time 2024-05-02T10:05:00Z .*outside the data"):
        note = artefacts.check_span(outside, None, frame)
    assert "2024-05-01T10:00:00Z to 2024-05-01T10:10:00Z" in note


def test_sample_run_json_against_another_days_capture_warns() -> None:
    import kit
    import kit.sources.timeline

    cap = kit.read_capture(SAMPLE / "captures" / "node1.pcap", progress=False)
    tl = kit.sources.timeline.timeline(run_json=SAMPLE / "run.json")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert artefacts.check_span(tl, cap) == ""  # the sample's own run
    shifted = kit.sources.timeline.timeline(
        change_time=tl.change_time + dt.timedelta(days=1) if tl.change_time else None
    )
    with pytest.warns(KitWarning, match="outside the data"):
        artefacts.check_span(shifted, cap)


@pytest.mark.notebook
def test_notebook_04_on_one_capture_from_a_working_copy(
    one_capture: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Changing nothing but the artefacts points 04 at a new capture: no sample file is used,
    and a change time from another day is a warning in the notebook."""
    import nbformat
    import papermill

    import kit.report
    import kit.report.notebooks

    copies = tmp_path / "copies"
    (written,) = [
        c
        for c in kit.report.notebooks.write_working_copies(copies, [one_capture])
        if c.path.name.startswith("04-")
    ]
    assert written.status == "written"
    nb = kit.report.read_notebook(written.path)
    out = tmp_path / "04.ipynb"
    monkeypatch.chdir(tmp_path)
    papermill.execute_notebook(
        nb,
        str(out),
        parameters={"change_time": "2020-01-01T00:00:00Z"},
        kernel_name="python3",
        cwd=str(copies),  # the kernel runs where JupyterLab would start it
        progress_bar=False,
    )
    done = nbformat.read(out, as_version=4)
    texts = [
        o.get("text", "") + str(o.get("data", {}).get("text/html", ""))
        for c in done.cells
        if c.cell_type == "code"
        for o in c.get("outputs", [])
    ]
    joined = "\n".join(texts)
    assert "change time 2020-01-01T00:00:00Z outside the data" in joined
    assert "KitWarning" in joined
    assert "node-a.pcap" in joined
    assert "data/sample" not in joined  # neither the sample's run.json nor its configs
    assert not any(
        o.get("output_type") == "error" for c in done.cells for o in c.get("outputs", [])
    )
