"""Incident timelines from a lab run.json or from explicit times."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest

from kit.errors import InputFormatError
from kit.sources.timeline import parse_time, read_run, timeline, with_phase


def _run(tmp_path: Path) -> Path:
    doc = {
        "phases": [
            {"name": "healthy", "start": "2024-05-01T12:00:00Z", "end": "2024-05-01T12:01:00Z"},
            {"name": "incident", "start": "2024-05-01T12:01:00Z", "end": "2024-05-01T12:03:00Z"},
        ],
        "change_time": "2024-05-01T12:01:00Z",
        "fix_time": None,
    }
    p = tmp_path / "run.json"
    p.write_text(json.dumps(doc))
    return p


def test_read_run_and_phase_assignment(tmp_path: Path) -> None:
    tl = read_run(_run(tmp_path))
    assert tl.change_time == datetime(2024, 5, 1, 12, 1, tzinfo=UTC) and tl.fix_time is None
    assert tl.phases["phase"].to_list() == ["healthy", "incident"]
    df = pl.DataFrame(
        {
            "ts": [
                datetime(2024, 5, 1, 11, 59, 59),
                datetime(2024, 5, 1, 12, 0, 59),
                datetime(2024, 5, 1, 12, 1),
            ]
        }
    ).with_columns(pl.col("ts").dt.replace_time_zone("UTC").dt.cast_time_unit("us"))
    # phases are [start, end): the change instant belongs to the incident
    assert with_phase(df, tl)["phase"].to_list() == [None, "healthy", "incident"]


def test_explicit_times_win_and_make_phases(tmp_path: Path) -> None:
    tl = timeline(change_time="2024-05-01T12:02:00+02:00", run_json=[_run(tmp_path)])
    assert tl.change_time == datetime(2024, 5, 1, 10, 2, tzinfo=UTC)
    assert tl.phases.height == 2  # phases still from the run file
    tl2 = timeline(change_time="2024-05-01T12:00:00", fix_time="2024-05-01T13:00:00Z")
    assert tl2.phases["phase"].to_list() == ["before", "after", "fixed"]
    assert timeline().change_time is None and timeline().phases.is_empty()


def test_bad_times_and_files(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="change_time 'yesterday' is not an ISO-8601 time"):
        parse_time("yesterday", what="change_time")
    bad = tmp_path / "run.json"
    bad.write_text('{"lab": 1}')
    with pytest.raises(InputFormatError, match="no 'phases' list"):
        read_run(bad)
    bad.write_text("{not json")
    with pytest.raises(InputFormatError, match=r"run\.json: not a JSON run file"):
        read_run(bad)


def test_restrict_windows_every_kind_of_input(repo_root: Path, tshark: str) -> None:
    import subprocess

    import kit
    from kit.sources.timeline import restrict

    sample = repo_root / "data" / "sample"
    tl = read_run(sample / "run.json")
    change = tl.change_time.isoformat()  # type: ignore[union-attr]
    assert restrict(None, start=change) is None
    cap = kit.read_capture(sample / "captures" / "node1.pcap", progress=False)
    before = restrict(cap, end=change)  # an ISO string works as a bound
    # every kept row is before the change; connections are kept by their first packet
    assert before.dns["ts"].max() < tl.change_time
    assert before.tcp.is_empty() or before.tcp["ts_first"].max() < tl.change_time
    assert before.meta.height == cap.meta.height  # frames without a time column stay whole
    # the number of DNS queries sent before the change, counted by tshark on its own
    out = subprocess.run(
        [
            tshark,
            "-r",
            str(sample / "captures" / "node1.pcap"),
            "-Y",
            "dns.flags.response == 0",
            "-T",
            "fields",
            "-e",
            "frame.time_epoch",
        ],
        capture_output=True,
        text=True,
        check=True,
        env={"LC_ALL": "C", "PATH": "/usr/bin:/bin"},
    ).stdout.split()
    cut = tl.change_time.timestamp()  # type: ignore[union-attr]
    sent_before = sum(1 for t in out if float(t) < cut)
    assert before.dns.height + int(before.dns["retransmissions"].sum()) == sent_before
    # nested dataclasses (the findings notebook's inputs) are restricted field by field
    log = kit.read_unbound_log(sample / "logs" / "unbound-node1.log")
    both = restrict(_Pair(cap, log), start=change)
    assert both.cap.dns["ts"].min() >= tl.change_time
    assert both.log.queries["ts"].min() >= tl.change_time.replace(microsecond=0)
    with pytest.raises(ValueError, match="window start 'noon' is not an ISO-8601 time"):
        restrict(cap, start="noon")


@dataclass(frozen=True)
class _Pair:
    cap: object
    log: object
