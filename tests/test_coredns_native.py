"""The native tokenizer (kit/_fastlog.c) gives exactly what the polars-only path gives.

``read_coredns_log`` splits default-format query lines with ``kit._fastlog`` when it was built,
else with polars string kernels. Every test here reads the same input both ways and asserts the
four frames and the file table are equal: on the kit's own cases, the real CoreDNS logs of
../shared, those logs under every wrapper layout the fast path knows, small blocks (lines cut at
block edges) and a seeded corpus of hostile mutations (bytes, digits, stamps, brackets, quotes,
backslashes, invalid UTF-8, CR, CRI partial records).
"""

from __future__ import annotations

import os
import random
import shutil
from pathlib import Path

import pytest
from polars.testing import assert_frame_equal

import kit.sources.coredns as coredns
from kit.sources.coredns import _native, _queries, read_coredns_log

FRAMES = ("queries", "errors", "other", "rejected", "files")

needs_native = pytest.mark.skipif(not coredns.NATIVE, reason="kit._fastlog was not built")
pytestmark = pytest.mark.filterwarnings("ignore::kit.errors.KitWarning")


def both(path: Path | list[Path], **kw: object) -> tuple[coredns.CoreDNSLog, coredns.CoreDNSLog]:
    """(native, polars-only) results of the same read."""
    native = read_coredns_log(path, **kw)  # type: ignore[arg-type]
    with coredns._tokenizer(None):
        plain = read_coredns_log(path, **kw)  # type: ignore[arg-type]
    return native, plain


def assert_same(path: Path | list[Path], **kw: object) -> coredns.CoreDNSLog:
    native, plain = both(path, **kw)
    for name in FRAMES:
        assert_frame_equal(getattr(native, name), getattr(plain, name), check_exact=True)
    return native


def test_built_where_a_compiler_is() -> None:
    """CI has gcc (tools/system-deps.sh): the extension must have been built there."""
    if os.environ.get("CI") and shutil.which("cc"):
        assert coredns.NATIVE, "pip install -e . did not build kit._fastlog"


@needs_native
@pytest.mark.slow
def test_kit_cases(data_dir: Path) -> None:
    files = sorted((data_dir / "coredns").glob("*.log"))
    assert len(files) > 10
    for f in files:
        assert_same(f)
        assert_same(f, chunk_bytes=97)


@needs_native
@pytest.mark.slow
def test_real_logs(shared_fixtures: Path) -> None:
    files = sorted((shared_fixtures / "logs").glob("*.log"))
    res = assert_same(files)
    assert res.queries.height > 30
    assert_same(files, chunk_bytes=4096)


LAYOUTS = {
    "plain": lambda i, s: s,
    "stamped": lambda i, s: f"2024-02-29T23:59:{i % 60:02d}.{i % 10**9:09d}Z {s}",
    "cri": lambda i, s: f"2024-05-01T10:00:{i % 60:02d}.{i:06d}Z stdout F {s}",
    "kubectl_prefix": lambda i, s: f"[pod/coredns-1/coredns] {s}",
    "kubectl_prefix_ts": lambda i, s: f"[pod/coredns-{i % 3}/coredns] 2024-05-01T10:00:00Z {s}",
    "double_stamp": lambda i, s: f"2024-05-01T10:00:00Z 2019-01-01T00:00:{i % 60:02d}.5Z {s}",
    "cri_double": lambda i, s: f"2024-05-01T10:00:00Z stderr F 2019-01-01T00:00:00.{i}Z {s}",
}


def _query_lines(shared_fixtures: Path) -> list[str]:
    lines = []
    for f in sorted((shared_fixtures / "logs").glob("*.log")):
        if "json" in f.name:
            continue
        for line in f.read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("[INFO] ") and " - " in line:
                lines.append(line)
    return lines


@needs_native
@pytest.mark.parametrize("layout", sorted(LAYOUTS))
@pytest.mark.slow
def test_real_queries_in_every_layout(layout: str, shared_fixtures: Path, tmp_path: Path) -> None:
    lines = _query_lines(shared_fixtures)
    assert len(lines) > 10
    lines *= 100  # several blocks of 4 KiB below, and stamps that differ
    path = tmp_path / f"{layout}.log"
    path.write_text("\n".join(LAYOUTS[layout](i, s) for i, s in enumerate(lines, 1)) + "\n")
    res = assert_same(path)
    assert res.queries.height > 1000
    assert_same(path, chunk_bytes=4096)


# --- hostile mutations ----------------------------------------------------------------------

TEMPLATES = [
    '[INFO] 10.244.1.7:52113 - 4242 "A IN svc.ns.svc.cluster.local. udp 62 false 1232" NOERROR qr,aa,rd 130 0.000123s',
    '[INFO] [fd00::1]:53 - 65535 "AAAA IN example.com. tcp 40 true 65535" NXDOMAIN qr,rd,ra 120 5.002s',
    '[INFO] 127.0.0.1:1 - 0 "TXT CH version.bind. udp 40 false 4096" - - 0 6.000000001s',
    '[INFO] 10.0.0.1:53 - 7 "A IN . udp 17 false 512" NOERROR  29 0.5s "0"',
    '[INFO] 10.0.0.1:53 - 7 "SRV IN _x._tcp.a.b. udp 17 false 512" SERVFAIL qr 29 12s "15"',
    '[INFO] 10.0.0.2:40000 - 1 "A IN ünïcode.example. udp 30 false 512" NOERROR qr 50 0.25s',
]
PREFIXES = [
    "",
    "2024-05-01T10:00:00.123456789Z ",
    "2024-05-01T10:00:00Z stdout F ",
    "2024-05-01T10:00:00Z stdout P ",
    "[pod/a/b] ",
    "[pod/a/b] 2024-05-01T10:00:00.1Z ",
    "2024-05-01T10:00:00Z 2024-05-01T10:00:00.000001Z ",
]
PIECES = [
    "\\",
    "\\032",
    "\x80",
    "\xff",
    "é",
    "\U0001f600",
    " ",
    "  ",
    '"',
    ":",
    "[",
    "]",
    "-",
    ".",
    "s",
    "0",
    "9",
    "65536",
    "4294967295",
    "4294967296",
    "99999999999",
    "1e3",
    ".5",
    "5.",
    "inf",
    "nan",
    "+1",
    "-1",
    "\t",
    "\r",
    "\x00",
    "Z",
    "+02:00",
    "T",
    "/",
]
STAMPS = [
    "2024-02-29T00:00:00Z",
    "2023-02-29T00:00:00Z",
    "2024-13-01T00:00:00Z",
    "2024-04-31T00:00:00Z",
    "2024-05-01T24:00:00Z",
    "2024-05-01T23:60:00Z",
    "2024-05-01T23:59:60Z",
    "2024-05-01T23:59:59.Z",
    "2024-05-01T23:59:59.1234567891Z",
    "2024-05-01T23:59:59.12345678Z",
    "2024-05-01T23:59:59,5Z",
    "2024-05-01T23:59:59+02:00",
    "1970-01-01T00:00:00Z",
    "0000-01-01T00:00:00Z",
    "9999-12-31T23:59:59.999999999Z",
    "2024-5-01T00:00:00Z",
]


def _mutate(rnd: random.Random, line: str) -> str:
    for _ in range(rnd.choice([0, 1, 1, 2, 3])):
        op = rnd.random()
        if op < 0.15 and line:  # delete a run
            i = rnd.randrange(len(line))
            line = line[:i] + line[i + rnd.randint(1, 4) :]
        elif op < 0.55:  # insert a piece
            i = rnd.randrange(len(line) + 1)
            line = line[:i] + rnd.choice(PIECES) + line[i:]
        elif op < 0.8:  # replace one token
            toks = line.split(" ")
            k = rnd.randrange(len(toks))
            toks[k] = rnd.choice([*PIECES, *STAMPS, "[INFO]", "udp", "tcp", "true", "F", "P"])
            line = " ".join(toks)
        else:  # swap a stamp in
            line = line.replace("2024-05-01T10:00:00Z", rnd.choice(STAMPS), 1)
    return line


def general_only(path: Path, **kw: object) -> coredns.CoreDNSLog:
    """The reference: every line through the general path (no fast path of either kind)."""
    saved = _queries._LAYOUTS
    _queries._LAYOUTS = ()  # no layout: _guess_layout finds none, for the native or polars split
    try:
        return read_coredns_log(path, **kw)  # type: ignore[arg-type]
    finally:
        _queries._LAYOUTS = saved


@needs_native
@pytest.mark.parametrize("seed", range(4))
@pytest.mark.slow
def test_hostile_mutations(seed: int, tmp_path: Path) -> None:
    """Native == polars fast path == general path alone, line for line."""
    rnd = random.Random(seed)
    prefix = PREFIXES[seed % len(PREFIXES)] if seed < 3 else None
    out = []
    for _ in range(3000):
        pre = prefix if prefix is not None else rnd.choice(PREFIXES)
        out.append(_mutate(rnd, pre + rnd.choice(TEMPLATES)))
    data = "\n".join(out).encode("utf-8", errors="surrogateescape")
    # raw bytes the text cannot hold: invalid UTF-8 sequences and a lone CR line end
    data = data.replace(b"\xc2\x80", b"\x80", 50).replace(b"qr,aa", b"qr\xc3(", 20)
    path = tmp_path / f"hostile_{seed}.log"
    path.write_bytes(data + b"\r\n")
    res = assert_same(path)
    assert res.queries.height > 500  # most lines still parse: the mutations are not all fatal
    assert res.rejected.height + res.other.height > 100
    ref = general_only(path)
    for name in FRAMES:
        assert_frame_equal(getattr(res, name), getattr(ref, name), check_exact=True)
    assert_same(path, chunk_bytes=4000)


@needs_native
def test_parse_block_arguments() -> None:
    from kit import _fastlog

    line = (TEMPLATES[0] + "\n").encode()
    n, _schema, _array, rest, nos = _fastlog.parse_block(line * 3, len(line) * 2, 0, -1, -1, -1)
    assert n == 2 and rest == b"" and nos == b""
    n, *_ = _fastlog.parse_block(b"", 0, 0, -1, -1, -1)
    assert n == 0
    for bad in [
        (line, len(line) + 1, 0, -1, -1, -1),  # keep past the end
        (line, -1, 0, -1, -1, -1),
        (line, len(line), 0, 0, -1, -1),  # stamp token outside the wrapper tokens
        (line, len(line), 2, -1, 1, -1),  # stream tag would be [INFO]
        (line, len(line), 6, -1, -1, -1),
        (line, len(line), 1, -2, -1, -1),
    ]:
        with pytest.raises(ValueError, match="bad keep or layout"):
            _fastlog.parse_block(*bad)


def test_unusable_extension_falls_back_with_a_warning(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A build this polars cannot read (or that misreads) is not used: the polars path is."""

    class Broken:
        @staticmethod
        def parse_block(*args: object) -> object:
            raise TypeError("unsupported Arrow format 'vu'")

    monkeypatch.setattr(_native, "_fastlog", Broken)
    with caplog.at_level("WARNING", logger="kit.sources.coredns"):
        assert not coredns._native_usable()
    assert "polars-only path" in caplog.text and "'vu'" in caplog.text
    monkeypatch.setattr(_native, "_fastlog", None)
    assert not coredns._native_usable()
    if coredns.NATIVE:
        monkeypatch.undo()
        assert coredns._native_usable()
