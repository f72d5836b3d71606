"""dnskit report reads the captures into the cache in a child process before the kernels (issue 16):
the kernels then load the frames from the cache, and a cold parse's transient memory is never
under a kernel's peak."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

import kit
from kit.report.execute import warm_capture_cache

REPO = Path(__file__).resolve().parent.parent
SAMPLE_CAPTURES = sorted((REPO / "data" / "sample" / "captures").glob("node*.pcap*"))


def test_the_child_fills_the_cache_the_notebooks_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DNSKIT_CACHE", str(tmp_path / "cache"))
    files = [str(p) for p in SAMPLE_CAPTURES]
    # two notebooks naming the same files: each file read once
    got = warm_capture_cache([{"capture": files}, {"capture": files[:1]}, {"other": 1}], 300)
    assert got == files
    # read as the notebooks read them: every file from the cache the child wrote
    cap = kit.read_capture(files, progress=False)
    assert cap.meta["from_cache"].to_list() == [True] * len(files)
    assert len(list((tmp_path / "cache" / "capture").iterdir())) == len(files)


def test_a_capture_the_child_cannot_read_is_left_to_the_notebook(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("DNSKIT_CACHE", str(tmp_path / "cache"))
    bad = tmp_path / "broken.pcap"
    bad.write_bytes(b"this is not a capture\n")
    with caplog.at_level(logging.WARNING, logger="kit.report.execute"):
        assert warm_capture_cache([{"capture": [str(bad)]}], 300) == []
    assert "capture cache warm-up failed" in caplog.text
    assert "broken.pcap" in caplog.text  # the loader's own error names the file
    # nothing to warm: no child at all
    assert warm_capture_cache([{"capture": None}, {}], 300) == []
