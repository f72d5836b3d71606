"""The foundation every loader stands on: errors, source expansion, gzip reading, schema checks."""

from __future__ import annotations

import gzip
from pathlib import Path

import polars as pl
import pytest

import kit
from kit.errors import InputFormatError, KitError, SchemaError, ToolNotFoundError
from kit.schema import check_schema, empty_frame
from kit.sources._io import expand_sources, read_raw


def test_input_format_error_names_file_line_and_fix() -> None:
    exc = InputFormatError(
        "expected a CoreDNS log line",
        path="logs/coredns.log",
        line=1843,
        excerpt="[WARNING] plugin/health: <x>",
        hint="Pass strict=False to collect such lines as rejects",
    )
    assert isinstance(exc, KitError) and isinstance(exc, ValueError)
    assert str(exc) == (
        "logs/coredns.log:1843: expected a CoreDNS log line: '[WARNING] plugin/health: <x>'. "
        "Pass strict=False to collect such lines as rejects"
    )
    assert (exc.path, exc.line, exc.offset) == ("logs/coredns.log", 1843, None)


def test_input_format_error_byte_offset_and_long_excerpt() -> None:
    exc = InputFormatError("not a capture", path=Path("a.pcap"), offset=24, excerpt="x" * 500)
    text = str(exc)
    assert text.startswith("a.pcap (byte offset 24): not a capture: 'xxx")
    assert len(text) < 220  # the excerpt is shortened, not dumped whole


def test_tool_not_found_says_where_and_how() -> None:
    exc = ToolNotFoundError(
        "tshark", searched=["/usr/bin", "/usr/local/bin"], install_hint="apt-get install tshark"
    )
    assert str(exc) == (
        "tshark was not found (searched: /usr/bin, /usr/local/bin). Install it with: apt-get install tshark"
    )


def test_expand_sources_path_dir_glob_list(tmp_path: Path) -> None:
    for name in ["b.log", "a.log", "c.log.gz", "notes.txt", ".hidden.log"]:
        (tmp_path / name).write_text("x\n")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "d.log").write_text("x\n")
    assert expand_sources(tmp_path / "a.log") == [tmp_path / "a.log"]
    # directory: sorted, hidden skipped, not recursive, suffix filter looks through .gz
    assert [p.name for p in expand_sources(tmp_path, suffixes=[".log"])] == [
        "a.log",
        "b.log",
        "c.log.gz",
    ]
    assert [p.name for p in expand_sources(tmp_path)] == ["a.log", "b.log", "c.log.gz", "notes.txt"]
    assert [p.name for p in expand_sources(str(tmp_path / "**" / "*.log"))] == [
        "a.log",
        "b.log",
        "d.log",
    ]
    # a list keeps its order and drops duplicates
    got = expand_sources([tmp_path / "b.log", str(tmp_path / "*.log"), tmp_path / "b.log"])
    assert [p.name for p in got] == ["b.log", "a.log"]


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("missing.log", "CoreDNS log file not found: missing.log"),
        ("nothing-*.log", "glob 'nothing-*.log' matches no CoreDNS log file"),
    ],
)
def test_expand_sources_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, source: str, message: str
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError, match=message.replace("*", r"\*")):
        expand_sources(source, what="CoreDNS log")


def test_expand_sources_empty_dir_and_bad_types(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="holds no capture files"):
        expand_sources(tmp_path, what="capture")
    with pytest.raises(FileNotFoundError, match="list of sources is empty"):
        expand_sources([])
    with pytest.raises(TypeError, match="not int"):
        expand_sources(3)  # type: ignore[arg-type]


def test_read_raw_plain_gzip_concatenated(tmp_path: Path) -> None:
    plain = tmp_path / "a.log"
    plain.write_bytes(b"line1\nline2")
    assert read_raw(plain).data == b"line1\nline2" and not read_raw(plain).gzipped
    # gzip detected by magic bytes, not by name; two concatenated members (as logrotate + cat make)
    gz = tmp_path / "b.log"
    gz.write_bytes(gzip.compress(b"one\n") + gzip.compress(b"two\n"))
    raw = read_raw(gz)
    assert raw.gzipped and raw.data == b"one\ntwo\n" and raw.notes == []


def test_read_raw_truncated_gzip_keeps_what_is_there(tmp_path: Path) -> None:
    body = b"".join(f"query line {i}\n".encode() for i in range(20000))
    blob = gzip.compress(body)
    cut = tmp_path / "cut.log.gz"
    cut.write_bytes(blob[: len(blob) // 2])
    raw = read_raw(cut)
    assert raw.gzipped
    assert len(raw.notes) == 1 and "truncated gzip" in raw.notes[0]
    # what came out is a prefix of the original, and a substantial one
    assert body.startswith(raw.data) and len(raw.data) > len(body) // 4


def test_check_schema_reports_each_problem() -> None:
    schema = pl.Schema(
        {"ts": pl.Datetime("us", "UTC"), "qname": pl.String, "duration_s": pl.Float64}
    )
    check_schema(empty_frame(schema), schema)
    bad = pl.DataFrame({"qname": ["a"], "duration_s": [1], "extra": [1]})
    with pytest.raises(SchemaError) as ei:
        check_schema(bad, schema, name="queries")
    msg = str(ei.value)
    assert msg.startswith("queries does not match its schema: missing ['ts']")
    assert "duration_s: Int64 (want Float64)" in msg and "extra ['extra']" in msg


def test_public_api_is_small_and_unknown_names_fail() -> None:
    assert kit.__version__
    assert len(kit.__all__) <= 25
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        kit.nope  # noqa: B018


def test_every_public_name_resolves_to_its_module() -> None:
    for name, module in kit._LAZY.items():
        obj = getattr(kit, name)
        assert obj.__module__ == module, name
        assert obj.__doc__, f"{name} has no docstring"


def test_every_cli_subcommand_is_documented_with_help(repo_root: Path) -> None:
    import argparse

    from kit.cli import _build_parser

    readme = (repo_root / "README.md").read_text()
    sub = next(a for a in _build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    assert set(sub.choices) >= {"report", "summarize"}
    for name, parser in sub.choices.items():
        assert f"dnskit {name}" in readme, f"README does not show `dnskit {name}`"
        assert parser.description, f"dnskit {name} has no description"
    # and the README's two set-up commands are real Makefile targets
    makefile = (repo_root / "Makefile").read_text()
    for target in ("report", "test", "jupyter"):
        assert f"make {target}" in readme and f"\n{target}:" in makefile
