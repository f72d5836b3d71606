"""Issue 14, the capture side: broken and hostile files handed to ``read_capture``.

Every case is made from a real capture (../shared/fixtures/pcaps, data/sample/captures) damaged in
``tmp_path``. Expected counts (complete records, packets before the damage) are computed here by
walking the pcap/pcapng structure in Python, independently of tshark and capinfos.

- files that are not captures (1 byte, text, gzipped text, a cut file header) are an
  InputFormatError naming the file before any tool runs (tshark's file-type detection on 200 KB of
  newlines takes minutes);
- FIFO, directory, symlink loop, dangling symlink, /dev/zero, permission denied: a KitError naming
  the file;
- every tool run has a time limit; over it, a ToolError naming the tool and the file, and no
  process is left behind;
- as root, tshark and capinfos run as ``nobody`` and still read a root-only file (stdin);
- damaged captures (cut mid-record, garbage after valid packets, corrupt gzip) keep the packets
  before the damage, with ``truncated`` and a note saying after which packet the file broke;
- a seeded mini fuzz: mutated real captures give a result or a KitError, never a raw exception or a
  hang, and the packet accounting holds.
"""

from __future__ import annotations

import concurrent.futures
import gzip
import inspect
import os
import random
import shutil
import stat
import struct
import sys
import tempfile
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from conftest import require_root, require_tool

import kit
from kit.errors import InputFormatError, KitError, ToolError
from kit.sources import _tshark

pytestmark = pytest.mark.usefixtures("tshark")

_LE_MAGIC = (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1", b"\x34\xcd\xb2\xa1")
#: Tests of what tshark, capinfos and editcap do (time limits, user, damage notes) pin the tshark
#: engine where read_capture has a choice of engines.
TSHARK: dict[str, Any] = (
    {"engine": "tshark"} if "engine" in inspect.signature(kit.read_capture).parameters else {}
)


@pytest.fixture(autouse=True)
def _no_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DNSKIT_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("DNSKIT_TOOL_TIMEOUT_S", raising=False)
    monkeypatch.delenv("DNSKIT_TOOL_USER", raising=False)


@pytest.fixture(scope="module")
def pcaps(shared_fixtures: Path) -> Path:
    return shared_fixtures / "pcaps"


# ------------------------------------------------------------------------------------------
# independent structure walkers


def pcap_record_ends(data: bytes) -> list[int]:
    """Byte offsets where each complete record of a classic pcap ends."""
    endian = "<" if data[:4] in _LE_MAGIC else ">"
    off, ends = 24, []
    while off + 16 <= len(data):
        (incl,) = struct.unpack_from(endian + "I", data, off + 8)
        if incl > 262144 or off + 16 + incl > len(data):
            break
        off += 16 + incl
        ends.append(off)
    return ends


def pcapng_packet_ends(data: bytes) -> list[int]:
    """Byte offsets where each complete packet block (EPB, SPB, PB) of a pcapng file ends."""
    endian = "<" if data[8:12] == b"\x4d\x3c\x2b\x1a" else ">"
    off, ends = 0, []
    while off + 12 <= len(data):
        btype, blen = struct.unpack_from(endian + "II", data, off)
        if btype == 0x0A0D0D0A:
            endian = "<" if data[off + 8 : off + 12] == b"\x4d\x3c\x2b\x1a" else ">"
            btype, blen = struct.unpack_from(endian + "II", data, off)
        if blen < 12 or blen % 4 or off + blen > len(data):
            break
        off += blen
        if btype in (2, 3, 6):
            ends.append(off)
    return ends


def meta(cap: kit.Capture) -> dict[str, Any]:
    return cap.meta.row(0, named=True)


def assert_accounted(cap: kit.Capture) -> None:
    m = meta(cap)
    assert m["packets_kept"] + m["packets_skipped"] == m["packets"], m
    assert m["packets_kept"] == cap.packets.height
    if cap.packets.height:
        assert cap.packets["frame"].max() <= m["packets"], m


# ------------------------------------------------------------------------------------------
# not a capture: refused before any tool runs


@pytest.mark.parametrize("keep", [1, 3, 10, 23])
def test_cut_pcap_file_header_is_an_error(pcaps: Path, tmp_path: Path, keep: int) -> None:
    # issue 14: "a 1-byte file loads as a capture of link type mp4 with 1 packet and no error"
    f = tmp_path / f"cut{keep}.pcap"
    f.write_bytes((pcaps / "dnscap_dns.pcap").read_bytes()[:keep])
    with pytest.raises(InputFormatError, match=rf"cut{keep}\.pcap \(byte offset 0\): not a packet"):
        kit.read_capture(f, cache=False)


@pytest.mark.parametrize("keep", [4, 11, 20])
def test_cut_pcapng_section_header_is_an_error(pcaps: Path, tmp_path: Path, keep: int) -> None:
    f = tmp_path / f"cut{keep}.pcapng"
    f.write_bytes((pcaps / "chrissanders_dns_lab.pcapng").read_bytes()[:keep])
    with pytest.raises(InputFormatError, match=rf"cut{keep}\.pcapng .*section header"):
        kit.read_capture(f, cache=False)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gzip"])
def test_text_file_is_refused_at_once(tmp_path: Path, gz: bool) -> None:
    # tshark/capinfos need minutes to decide that 200 KB of newlines is no capture file
    data = b"\n" * 200_000
    f = tmp_path / ("newlines.pcap.gz" if gz else "newlines.pcap")
    f.write_bytes(gzip.compress(data) if gz else data)
    t0 = time.monotonic()
    with pytest.raises(InputFormatError, match=r"newlines\.pcap.*no pcap or pcapng magic.*text"):
        kit.read_capture(f, cache=False)
    assert time.monotonic() - t0 < 5


def test_other_compression_is_named(pcaps: Path, tmp_path: Path) -> None:
    import lzma

    f = tmp_path / "dns.pcap.xz"
    f.write_bytes(lzma.compress((pcaps / "dnscap_dns.pcap").read_bytes()))
    with pytest.raises(InputFormatError, match=r"dns\.pcap\.xz.*xz-compressed.*decompress"):
        kit.read_capture([f], cache=False)


def test_whole_captures_still_load(pcaps: Path, tmp_path: Path) -> None:
    """The magic check lets every real capture and its gzip through (pcap, pcapng, both endians)."""
    big_endian = tmp_path / "be.pcap"
    # a big-endian copy of a pcap: every header field byte-swapped
    data = (pcaps / "dnscap_dns.pcap").read_bytes()
    out = bytearray(
        b"\xa1\xb2\xc3\xd4" + struct.pack(">HHiIII", *struct.unpack("<HHiIII", data[4:24]))
    )
    off = 24
    for end in pcap_record_ends(data):
        out += struct.pack(">IIII", *struct.unpack_from("<IIII", data, off)) + data[off + 16 : end]
        off = end
    big_endian.write_bytes(bytes(out))
    le = kit.read_capture(pcaps / "dnscap_dns.pcap", cache=False)
    be = kit.read_capture(big_endian, cache=False)
    assert le.dns.drop("capture").equals(be.dns.drop("capture"))
    for p in sorted(pcaps.iterdir()):
        gz = tmp_path / (p.name + ".gz")
        gz.write_bytes(gzip.compress(p.read_bytes()))
    cap = kit.read_capture(tmp_path, cache=False)
    assert cap.meta.height == len(list(pcaps.iterdir())) + 1
    assert cap.meta["gzipped"].sum() == cap.meta.height - 1


# ------------------------------------------------------------------------------------------
# not a regular file


def test_fifo_is_an_error_not_a_hang(tmp_path: Path) -> None:
    f = tmp_path / "live.pcap"
    os.mkfifo(f)
    with pytest.raises(KitError, match=r"live\.pcap.*FIFO"):
        kit.read_capture(f, cache=False)


def test_pyshark_drill_down_checks_the_file_too(tmp_path: Path) -> None:
    import kit.sources.capture as kc

    f = tmp_path / "live.pcap"
    os.mkfifo(f)
    with pytest.raises(KitError, match=r"live\.pcap.*FIFO"):
        kc.packet(f, 1)
    t = tmp_path / "notes.pcap"
    t.write_text("not a capture\n")
    with pytest.raises(InputFormatError, match=r"notes\.pcap.*no pcap or pcapng magic"):
        kc.stream(t, 0)


def test_device_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(KitError, match=r"/dev/zero.*character device"):
        kit.read_capture("/dev/zero", cache=False)
    link = tmp_path / "zero.pcap"
    link.symlink_to("/dev/zero")
    with pytest.raises(KitError, match=r"zero\.pcap.*character device"):
        kit.read_capture(link, cache=False)


def test_symlink_loop_and_dangling_symlink(tmp_path: Path) -> None:
    a, b = tmp_path / "a.pcap", tmp_path / "b.pcap"
    a.symlink_to(b)
    b.symlink_to(a)
    with pytest.raises(KitError, match=r"a\.pcap.*symlink loop"):
        kit.read_capture(a, cache=False)
    d = tmp_path / "gone.pcap"
    d.symlink_to(tmp_path / "deleted.pcap")
    with pytest.raises(KitError, match=r"gone\.pcap.*dangling symlink"):
        kit.read_capture([d], cache=False)


def test_directory_entries_that_are_not_files_are_named(pcaps: Path, tmp_path: Path) -> None:
    folder = tmp_path / "captures"
    folder.mkdir()
    shutil.copy(pcaps / "dnscap_dns.pcap", folder / "node1.pcap")
    (folder / "node2.pcap").mkdir()  # a folder named like a capture: not silently left out
    with pytest.raises(KitError, match=r"node2\.pcap.*directory"):
        kit.read_capture(folder, cache=False)
    (folder / "node2.pcap").rmdir()
    os.mkfifo(folder / "node3.pcap.gz")
    with pytest.raises(KitError, match=r"node3\.pcap\.gz.*FIFO"):
        kit.read_capture(folder, cache=False)
    # a glob that matches the FIFO too
    with pytest.raises(KitError, match=r"node3\.pcap\.gz.*FIFO"):
        kit.read_capture(str(folder / "node*"), cache=False)


def _in_child_as_nobody(fn: Callable[[], Any]) -> str:
    """Run ``fn`` in a forked child with uid/gid 65534; return the error it raised as text.

    The child only stats and opens files (the kit is already imported), so the interpreter's own
    files under a root-only prefix are not needed.
    """
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        os.close(r)
        msg = "no error"
        try:
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
            fn()
        except BaseException as exc:
            msg = f"{'KitError' if isinstance(exc, KitError) else 'raw'}:{type(exc).__name__}:{exc}"
        os.write(w, msg.encode()[:4000])
        os._exit(0)
    os.close(w)
    out = b""
    while chunk := os.read(r, 4096):
        out += chunk
    os.close(r)
    os.waitpid(pid, 0)
    return out.decode()


def _load_as_unprivileged(f: Path) -> str:
    """read_capture(f) as a user without access (nobody when root); the error as text."""
    if os.geteuid() == 0:
        return _in_child_as_nobody(lambda: kit.read_capture(f, cache=False))
    try:
        kit.read_capture(f, cache=False)
    except BaseException as exc:
        return f"{'KitError' if isinstance(exc, KitError) else 'raw'}:{type(exc).__name__}:{exc}"
    return "no error"


def test_permission_denied_is_a_kit_error(pcaps: Path) -> None:
    # a folder everyone may enter (pytest's tmp_path is not), holding a file only root may read
    base = Path(tempfile.mkdtemp(prefix="dnskit-perm-"))
    try:
        base.chmod(0o755)
        f = base / "secret.pcap"
        shutil.copy(pcaps / "dnscap_dns.pcap", f)
        f.chmod(0o600 if os.geteuid() == 0 else 0)
        got = _load_as_unprivileged(f)
        assert got.startswith("KitError:"), got
        assert "secret.pcap" in got and "permission denied" in got, got
        # the same file behind a folder that cannot be entered
        inner = base / "locked"
        inner.mkdir(mode=0o700 if os.geteuid() == 0 else 0o000)
        got = _load_as_unprivileged(inner / "x.pcap")
        assert got.startswith("KitError:") and "x.pcap" in got and "permission" in got, got
    finally:
        for d in (base, base / "locked"):
            if d.exists():
                d.chmod(0o700)
        shutil.rmtree(base)


# ------------------------------------------------------------------------------------------
# time limits


def _children() -> set[int]:
    """pids of this process's live children (whole tree)."""
    kids: dict[int, list[int]] = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            fields = Path(f"/proc/{d}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z":
            kids.setdefault(int(fields[1]), []).append(int(d))
    out: set[int] = set()
    todo = [os.getpid()]
    while todo:
        for c in kids.get(todo.pop(), []):
            out.add(c)
            todo.append(c)
    return out


def test_time_limit_default_scales_and_env_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    base = _tshark.TOOL_TIMEOUT_BASE_S
    assert _tshark.tool_timeout_s(0) == base
    assert _tshark.tool_timeout_s(100_000_000) == base + 100 * _tshark.TOOL_TIMEOUT_S_PER_MB
    assert _tshark.tool_timeout_s(10_000_000, gzipped=True) == _tshark.tool_timeout_s(100_000_000)
    monkeypatch.setenv(_tshark.TIMEOUT_ENV, "7.5")
    assert _tshark.tool_timeout_s(10**12) == 7.5
    monkeypatch.setenv(_tshark.TIMEOUT_ENV, "0")
    assert _tshark.tool_timeout_s(1) is None
    monkeypatch.setenv(_tshark.TIMEOUT_ENV, "soon")
    with pytest.raises(ValueError, match="DNSKIT_TOOL_TIMEOUT_S"):
        _tshark.tool_timeout_s(1)


def test_tool_over_its_time_limit_is_a_tool_error(
    pcaps: Path, tshark: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _tshark.tshark_version(tshark)  # cached: the limit below hits the runs that read the file
    before = _children()
    monkeypatch.setenv("DNSKIT_TOOL_TIMEOUT_S", "0.001")
    path = pcaps / "dnscap_dns.pcap"
    with pytest.raises(ToolError, match=r"(tshark|capinfos) on .*dnscap_dns\.pcap did not finish"):
        kit.read_capture(path, cache=False, **TSHARK, chunk_packets=0)
    time.sleep(0.2)
    assert _children() - before == set()  # killed, not left running


@pytest.mark.timeout(60)
@pytest.mark.slow
def test_time_limit_stops_the_slow_file_type_detection(tshark: str) -> None:
    """What the magic check avoids: capinfos given 200 KB of newlines by name tries every file
    type for minutes (issue 14: > 150 s); the time limit stops it and kills it."""
    capinfos = _tshark.capinfos_path(tshark) or require_tool("capinfos", "wireshark-common")
    base = Path(tempfile.mkdtemp(prefix="dnskit-slow-"))  # readable by nobody, unlike tmp_path
    try:
        base.chmod(0o755)
        f = base / "newlines.txt"
        f.write_bytes(b"\n" * 200_000)
        f.chmod(0o644)
        before = _children()
        t0 = time.monotonic()
        with pytest.raises(
            ToolError, match=r"capinfos on .*newlines\.txt did not finish within .* 2 s"
        ):
            _tshark.run([capinfos, "-M", "-T", str(f)], what="capinfos", source=f, timeout=2)
        assert time.monotonic() - t0 < 10
        assert _children() - before == set()
    finally:
        shutil.rmtree(base)


# ------------------------------------------------------------------------------------------
# as root: the tools run as nobody


def _watch_tools(stop: threading.Event, seen: dict[int, dict[str, str]]) -> None:
    while not stop.is_set():
        for pid in _children():
            try:
                comm = Path(f"/proc/{pid}/comm").read_text().strip()
                if comm not in ("tshark", "capinfos", "editcap") or pid in seen:
                    continue
                status = Path(f"/proc/{pid}/status").read_text()
                env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
            except OSError:
                continue
            if not any(env):
                continue  # exiting: its memory (and environment) is already gone
            uids = next(ln for ln in status.splitlines() if ln.startswith("Uid:")).split()[1:]
            home = next((e[5:].decode() for e in env if e.startswith(b"HOME=")), "")
            seen[pid] = {"comm": comm, "uids": " ".join(uids), "home": home}
        time.sleep(0.005)


@pytest.mark.slow
def test_tools_run_as_nobody_when_root(repo_root: Path, tmp_path: Path) -> None:
    require_root()
    # a root-only file in a root-only folder: the tools get it on stdin, opened by the kit
    secret = tmp_path / "private"
    secret.mkdir(mode=0o700)
    f = secret / "node1.pcap"
    shutil.copy(repo_root / "data" / "sample" / "captures" / "node1.pcap", f)
    f.chmod(0o600)
    ref = kit.read_capture(
        repo_root / "data" / "sample" / "captures" / "node1.pcap", cache=False, **TSHARK
    )
    seen: dict[int, dict[str, str]] = {}
    stop = threading.Event()
    watcher = threading.Thread(target=_watch_tools, args=(stop, seen))
    watcher.start()
    try:
        # chunked: editcap cuts ranges, one tshark per range
        cap = kit.read_capture(f, cache=False, **TSHARK, chunk_packets=5000)
    finally:
        stop.set()
        watcher.join()
    for col in ("packets", "packets_kept", "dns_messages"):
        assert meta(cap)[col] == meta(ref)[col], col
    # capinfos and editcap run for milliseconds and are not always caught; tshark always is
    assert sum(v["comm"] == "tshark" for v in seen.values()) >= 2, seen  # one per range
    for v in seen.values():
        assert v["uids"] == "65534 65534 65534 65534", v
        assert v["home"] and Path(v["home"]).name.startswith("dnskit-tools-"), v


def test_spawned_tool_is_nobody_with_a_private_home(tshark: str) -> None:
    """Every tool starts through _tshark.spawn: a tshark waiting on its stdin is looked at."""
    require_root()
    r, w = os.pipe()
    try:
        proc = _tshark.spawn([tshark, "-r", "-"], what="tshark", stdin=r)
    finally:
        os.close(r)
    try:
        time.sleep(0.3)
        status = Path(f"/proc/{proc.pid}/status").read_text()
        env = Path(f"/proc/{proc.pid}/environ").read_bytes().split(b"\0")
        uid = next(ln for ln in status.splitlines() if ln.startswith("Uid:")).split()[1:]
        gid = next(ln for ln in status.splitlines() if ln.startswith("Gid:")).split()[1:]
        groups = next(ln for ln in status.splitlines() if ln.startswith("Groups:")).split()[1:]
        assert uid == ["65534"] * 4 and gid == ["65534"] * 4 and groups == [], status
        home = next(e[5:].decode() for e in env if e.startswith(b"HOME="))
        st = os.stat(home)
        assert st.st_uid == 65534 and stat.S_IMODE(st.st_mode) == 0o700
        assert os.getpgid(proc.pid) == proc.pid  # own process group, killed as a whole
    finally:
        os.close(w)
        proc.wait(timeout=30)


def test_tool_user_can_be_chosen(monkeypatch: pytest.MonkeyPatch) -> None:
    """DNSKIT_TOOL_USER picks the user (root: keep root, an explicit opt-out)."""
    import pwd

    require_root()

    def uid() -> int:
        return int(_tshark.run(["id", "-u"], what="id").stdout)

    assert uid() == 65534
    monkeypatch.setenv("DNSKIT_TOOL_USER", "daemon")
    assert uid() == pwd.getpwnam("daemon").pw_uid != 0
    monkeypatch.setenv("DNSKIT_TOOL_USER", "root")
    assert uid() == 0


def test_private_home_is_removed_and_stale_ones_too(repo_root: Path) -> None:
    """A process's tool folder goes at exit; a killed process's folder goes with the next one."""
    import subprocess
    import sys

    require_root()
    dead = subprocess.Popen(["true"])
    dead.wait()
    tmp = Path(tempfile.gettempdir())
    stale = tmp / f"dnskit-tools-{dead.pid}-stale"
    alive = tmp / "dnskit-tools-1-alive"  # pid 1 is running
    for d in (stale, alive):
        d.mkdir()
    try:
        code = "from kit.sources import _tshark; print(_tshark.run_env()['HOME'])"
        env = {**os.environ, "PYTHONPATH": str(repo_root)}
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
        )
        home = Path(out.stdout.strip())
        assert home.name.startswith("dnskit-tools-") and not home.exists()
        assert not stale.exists() and alive.exists()
    finally:
        for d in (stale, alive):
            if d.exists():
                d.rmdir()


# ------------------------------------------------------------------------------------------
# damaged captures: the packets before the damage, and where it broke


def _note(cap: kit.Capture) -> str:
    notes = meta(cap)["notes"]
    assert notes, "expected a note"
    return " | ".join(notes)


def test_pcap_cut_mid_record(pcaps: Path, tmp_path: Path) -> None:
    data = (pcaps / "dnscap_dns.pcap").read_bytes()
    ends = pcap_record_ends(data)
    k = len(ends) // 2
    f = tmp_path / "cut.pcap"
    f.write_bytes(data[: ends[k] + 16 + 5])  # record k+1: header and 5 bytes of its data
    cap = kit.read_capture(f, cache=False, **TSHARK)
    m = meta(cap)
    assert m["truncated"] and m["packets"] == k + 1
    assert f"middle of a packet after packet {k + 1}" in _note(cap)
    assert_accounted(cap)


@pytest.mark.parametrize("name", ["dnscap_dns.pcap", "chrissanders_dns_lab.pcapng"])
def test_garbage_after_valid_packets(pcaps: Path, tmp_path: Path, name: str) -> None:
    data = (pcaps / name).read_bytes()
    ends = pcapng_packet_ends(data) if name.endswith("ng") else pcap_record_ends(data)
    k = len(ends) // 2
    prefix = tmp_path / f"prefix_{name}"
    prefix.write_bytes(data[: ends[k - 1]])
    broken = tmp_path / f"broken_{name}"
    broken.write_bytes(data[: ends[k - 1]] + b"\xff" * 64 + random.Random(14).randbytes(3000))
    whole = kit.read_capture(prefix, cache=False, **TSHARK)
    cap = kit.read_capture(broken, cache=False, **TSHARK)
    m = meta(cap)
    assert m["truncated"] and m["packets"] == k and meta(whole)["packets"] == k
    assert f"damaged or corrupt after packet {k}" in _note(cap)
    assert "capinfos not available" not in _note(cap)
    assert m["file_format"] == meta(whole)["file_format"]
    assert cap.packets.drop("capture").equals(whole.packets.drop("capture"))
    assert cap.dns.drop("capture", "censored").equals(whole.dns.drop("capture", "censored"))
    assert_accounted(cap)


def test_garbage_right_after_the_file_header(pcaps: Path, tmp_path: Path) -> None:
    data = (pcaps / "dnscap_dns.pcap").read_bytes()
    f = tmp_path / "header_then_garbage.pcap"
    f.write_bytes(data[:24] + b"\xee" * 4000)
    cap = kit.read_capture(f, cache=False, **TSHARK)
    m = meta(cap)
    assert m["packets"] == 0 and m["truncated"] and cap.packets.height == 0
    assert "damaged or corrupt after packet 0" in _note(cap)
    assert m["file_format"] == "pcap"


def test_corrupt_gzip_keeps_what_came_before(pcaps: Path, tmp_path: Path) -> None:
    data = (pcaps / "dnscap_dns.pcap").read_bytes()
    z = bytearray(gzip.compress(data, mtime=0))
    mid = len(z) // 2
    z[mid : mid + 64] = bytes(b ^ 0x5A for b in z[mid : mid + 64])
    f = tmp_path / "damaged.pcap.gz"
    f.write_bytes(bytes(z))
    # how many complete records decompress before zlib notices the damage
    d = zlib.decompressobj(wbits=31)
    good = b""
    for i in range(0, len(z), 64):
        try:
            good += d.decompress(bytes(z[i : i + 64]))
        except zlib.error:
            break
    complete = len(pcap_record_ends(good))
    clean = kit.read_capture(pcaps / "dnscap_dns.pcap", cache=False, **TSHARK)
    cap = kit.read_capture(f, cache=False, **TSHARK)
    m = meta(cap)
    n = m["packets"]
    assert m["truncated"] and m["gzipped"] and 0 < n < meta(clean)["packets"]
    assert n == complete, (n, complete)
    assert f"after packet {n}" in _note(cap)
    assert_accounted(cap)
    # the packets before the damage are the clean file's
    before = clean.packets.filter(pl.col("frame") < n).drop("capture")
    assert cap.packets.filter(pl.col("frame") < n).drop("capture").equals(before)


def test_truncated_gzip(pcaps: Path, tmp_path: Path) -> None:
    data = (pcaps / "chrissanders_dns_lab.pcapng").read_bytes()
    z = gzip.compress(data, mtime=0)
    f = tmp_path / "cut.pcapng.gz"
    f.write_bytes(z[: len(z) * 2 // 3])
    cap = kit.read_capture(f, cache=False, **TSHARK)
    m = meta(cap)
    assert m["truncated"] and 0 < m["packets"] < len(pcapng_packet_ends(data))
    assert f"after packet {m['packets']}" in _note(cap)
    assert_accounted(cap)


# ------------------------------------------------------------------------------------------
# seeded mini fuzz


def _fuzz_tool() -> Any:
    """tools/fuzz.py, whose capture mutations (``make fuzz``'s long mode) this mini fuzz uses."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "dnskit_fuzz_tool", Path(__file__).resolve().parent.parent / "tools" / "fuzz.py"
    )
    assert spec is not None and spec.loader is not None
    mod = sys.modules.get(spec.name)
    if mod is None:
        mod = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = mod  # its dataclasses look their module up there
        spec.loader.exec_module(mod)
    return mod


def _mutations(rng: random.Random, data: bytes, others: list[bytes]) -> Iterator[tuple[str, bytes]]:
    """Endless damaged copies of ``data``: (kind of damage, bytes)."""
    mutate = _fuzz_tool().capture_mutation
    while True:
        yield mutate(rng, data, others)


def _classify(path: Path, limit_s: float, kw: dict[str, Any]) -> tuple[str, str]:
    """ok / kit_error / raw / hang / lost, and a detail; checks the packet accounting."""
    pool = concurrent.futures.ThreadPoolExecutor(1)
    fut = pool.submit(kit.read_capture, path, cache=False, **kw)
    pool.shutdown(wait=False)  # a hung load must not hang the test too
    try:
        cap = fut.result(timeout=limit_s)
    except concurrent.futures.TimeoutError:
        return "hang", f"no result after {limit_s} s"
    except ToolError as exc:
        return ("hang" if "did not finish" in str(exc) else "kit_error"), str(exc)[:300]
    except KitError as exc:
        if path.name not in str(exc):
            return "raw", f"KitError not naming the file: {exc}"
        return "kit_error", str(exc)[:300]
    except Exception as exc:
        return "raw", f"{type(exc).__name__}: {exc}"[:300]
    try:
        assert_accounted(cap)
    except AssertionError as exc:
        return "lost", str(exc)[:300]
    return "ok", ""


@pytest.mark.timeout(180)
@pytest.mark.slow
def test_mini_fuzz(
    pcaps: Path, repo_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Mutated real captures (seed 14): no raw exception, no hang, packets accounted for.

    At most ~45 s of loads (on a busy 2-core machine ~40 inputs; idle, more), at least 20.
    """
    monkeypatch.setenv("DNSKIT_TOOL_TIMEOUT_S", "20")
    seeds = [*sorted(pcaps.iterdir()), repo_root / "data" / "sample" / "captures" / "node2.pcap"]
    rng = random.Random(14)
    blobs = [p.read_bytes() for p in seeds]
    gens = {p: _mutations(random.Random(rng.random()), p.read_bytes(), blobs) for p in seeds}
    outcomes: dict[str, list[str]] = {}
    t0 = time.monotonic()
    i = 0
    while (time.monotonic() - t0 < 45 or i < 20) and i < 300:
        src = seeds[i % len(seeds)] if i < len(seeds) else rng.choice(seeds)
        kind, data = next(gens[src])
        f = tmp_path / f"m{i:03d}_{kind}{''.join(src.suffixes)}"
        f.write_bytes(data)
        # every other input through tshark where there is a choice of engines
        outcome, detail = _classify(f, 60, TSHARK if i % 2 else {})
        outcomes.setdefault(outcome, []).append(f"{f.name} (from {src.name}): {detail}")
        if outcome in ("ok", "kit_error"):
            f.unlink()
        i += 1
    bad = {k: v for k, v in outcomes.items() if k in ("raw", "hang", "lost")}
    counts = {k: len(v) for k, v in outcomes.items()}
    assert not bad, (counts, bad)
    assert sum(counts.values()) >= 20 and counts.get("ok", 0) > 0, counts


# ------------------------------------------------------------------------------------------
# issue 14 leftovers: the kit's own tshark arguments, the pyshark drill-down


def test_tshark_rejecting_the_kits_field_list_is_an_error_naming_the_file(
    pcaps: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A tshark that does not know a field the kit asks for (an older or newer tshark: simulated
    by one field this tshark lacks) must not give a silently empty load."""
    from kit.sources.capture import _engine_tshark

    fields = (*_engine_tshark._FIELDS, ("dns.no_such_field_for_the_test", "bogus"))
    monkeypatch.setattr(_engine_tshark, "_FIELDS", fields)
    with pytest.raises(
        ToolError, match=r"(?s)own display filter or field list.*dnscap_dns\.pcap.*no_such_field"
    ):
        kit.read_capture(pcaps / "dnscap_dns.pcap", cache=False, **TSHARK, chunk_packets=0)


def test_tshark_rejecting_the_kits_display_filter_is_an_error_naming_the_file(
    pcaps: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from kit.sources.capture import _engine_tshark

    monkeypatch.setattr(_engine_tshark, "_base_filter", lambda ports: "dns or nosuch.port == 53")
    with pytest.raises(
        ToolError, match=r"(?s)own display filter or field list.*dnscap_dns\.pcap.*nosuch\.port"
    ):
        kit.read_capture(pcaps / "dnscap_dns.pcap", cache=False, **TSHARK, chunk_packets=0)


def _tshark_shim(tshark: str, sleep_s: float = 0) -> tuple[Path, Path]:
    """A tshark wrapper that writes the uid it runs as to a log, (sleeps,) then runs tshark.
    In a folder of its own that nobody can read (unlike tmp_path); returns (shim, log)."""
    base = Path(tempfile.mkdtemp(prefix="dnskit-shim-"))
    base.chmod(0o777)
    shim, record = base / "tshark", base / "uids.log"
    shim.write_text(
        "#!/bin/sh\n"
        'case "$1" in -v|--version) exec "$REAL" "$@";; esac\n'
        f'id -u >> "{record}"\n' + (f"sleep {sleep_s}\n" if sleep_s else "") + 'exec "$REAL" "$@"\n'
    )
    shim.chmod(0o755)
    return shim, record


def test_drill_down_runs_tshark_as_nobody_when_root(
    data_dir: Path, tshark: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """pyshark used to start tshark itself, with the caller's rights (root) and no time limit."""
    require_root()
    import kit.sources.capture as kc

    # a root-only copy in a root-only folder: still readable for the drill-down
    secret = tmp_path / "private"
    secret.mkdir(mode=0o700)
    f = secret / "syn.pcap"
    shutil.copy(data_dir / "capture" / "syn_retransmit.pcap", f)
    f.chmod(0o600)
    shim, record = _tshark_shim(tshark)
    try:
        monkeypatch.setenv("REAL", tshark)
        monkeypatch.setenv("DNSKIT_TSHARK", str(shim))
        p = kc.packet(f, 20)
        s = kc.stream(f, 0)
        assert (p.dns.qry_name, p.dns.response_in) == ("API.example.com", "21")
        assert [int(x.number) for x in s] == [2, 16, 17, 18, 19, 20, 21, 22, 23, 24]
        uids = record.read_text().split()
        assert uids and set(uids) == {"65534"}, uids
    finally:
        shutil.rmtree(shim.parent)


@pytest.mark.timeout(60)
def test_drill_down_runs_under_the_time_limit(
    data_dir: Path, tshark: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import kit.sources.capture as kc

    shim, _ = _tshark_shim(tshark, sleep_s=30)
    try:
        monkeypatch.setenv("REAL", tshark)
        monkeypatch.setenv("DNSKIT_TSHARK", str(shim))
        monkeypatch.setenv("DNSKIT_TOOL_TIMEOUT_S", "1")
        before = _children()
        t0 = time.monotonic()
        for call in (
            lambda: kc.packet(data_dir / "capture" / "syn_retransmit.pcap", 20),
            lambda: kc.stream(data_dir / "capture" / "syn_retransmit.pcap", 0),
        ):
            with pytest.raises(ToolError, match=r"drill-down.*syn_retransmit\.pcap did not finish"):
                call()
        assert time.monotonic() - t0 < 15
        time.sleep(0.2)
        assert _children() - before == set()  # killed, not left running
    finally:
        shutil.rmtree(shim.parent)
