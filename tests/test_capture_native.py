"""The native capture engine (kit/_fastcap.c) against the tshark engine, the reference.

Both engines read every capture the kit has (../shared/fixtures/pcaps, data/sample/captures,
tests/data/capture) and captures made here for what the native engine claims to support (pcapng in
both byte orders and several interfaces, nanosecond pcap, big-endian pcap, VLAN tags, Linux cooked
v1, loopback, raw IP, IPv6 extension headers, DNS over TCP split across segments and several per
segment with a retransmitted segment, port reuse, ICMP-quoted DNS, the benchmark's node
generator): the frames must be equal, column for column. Where the native engine refuses a file,
``meta.engine_reason`` must say why and tshark must have read it.
"""

from __future__ import annotations

import gzip
import importlib.util
import struct
import types
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

import kit
import kit.sources.capture as kc
from kit.errors import InputFormatError, ToolNotFoundError
from kit.sources import _tshark
from kit.sources.capture import _native as _capture_native

pytestmark = pytest.mark.skipif(
    not _capture_native.NATIVE, reason="the native capture engine (kit/_fastcap.c) is not built"
)

REPO = Path(__file__).resolve().parent.parent
CDATA = REPO / "tests" / "data" / "capture"
SHARED_PCAPS = REPO.parent / "shared" / "fixtures" / "pcaps"
ENGINE_COLS = ("engine", "engine_reason", "tshark_version")


def _load(name: str, path: Path) -> types.ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


MF = _load("make_fixtures", CDATA / "make_fixtures.py")


def both(path: Path, **kw: object) -> tuple[kc.Capture, kc.Capture]:
    """(tshark engine, auto engine) on path; their frames must be equal. The auto engine runs
    in one pass (workers=1) and in parallel within the file (2 and 3 threads, whatever the
    file's size): all three must give the same frames, meta included (the same engine, and the
    same reason when the file goes to tshark)."""
    ref = kit.read_capture(path, cache=False, engine="tshark", **kw)  # type: ignore[arg-type]
    got = kit.read_capture(path, cache=False, engine="auto", workers=1, **kw)  # type: ignore[arg-type]
    for name in ("dns", "tcp", "packets"):
        assert_frame_equal(getattr(ref, name), getattr(got, name))
    assert_frame_equal(ref.meta.drop(ENGINE_COLS), got.meta.drop(ENGINE_COLS))
    assert ref.meta["engine"].to_list() == ["tshark"] * ref.meta.height
    # the mapped file's pages given back behind the parser after every record: the same frames
    step = _capture_native.RELEASE_BYTES
    _capture_native.RELEASE_BYTES = 1
    try:
        rel = kit.read_capture(path, cache=False, engine="auto", workers=1, **kw)  # type: ignore[arg-type]
    finally:
        _capture_native.RELEASE_BYTES = step
    for name in ("dns", "tcp", "packets", "meta"):
        assert_frame_equal(getattr(got, name), getattr(rel, name))
    threshold = _capture_native.PARALLEL_MIN_BYTES
    _capture_native.PARALLEL_MIN_BYTES = 0
    try:
        for workers in (2, 3):
            par = kit.read_capture(path, cache=False, engine="auto", workers=workers, **kw)  # type: ignore[arg-type]
            for name in ("dns", "tcp", "packets", "meta"):
                assert_frame_equal(getattr(got, name), getattr(par, name))
    finally:
        _capture_native.PARALLEL_MIN_BYTES = threshold
    return ref, got


def engine_of(cap: kc.Capture) -> str:
    return str(cap.meta["engine"].item())


def _captures() -> list[Path]:
    files = sorted(SHARED_PCAPS.glob("*")) if SHARED_PCAPS.is_dir() else []
    files += sorted((REPO / "data" / "sample" / "captures").glob("*.pcap*"))
    files += sorted(
        p for p in CDATA.glob("*.pcap*") if p.name not in {"empty.pcap", "not_a_capture.pcap"}
    )
    return files


#: files the native engine must read itself (the others may go to tshark, with a reason)
NATIVE_FILES = {
    "chrissanders_dns_lab.pcapng",
    "chrissanders_dns_tcp.pcapng",
    "chrissanders_nowebaccess1.pcapng",
    "dnscap_dns.pcap",
    "dnscap_dnso1tcp.pcap",  # 41 connections on one 4-tuple
    "dnscap_dnsotcp-many1pkt.pcap",
    "dnscap_sll2.pcap",
    "dnsjit_tcp-response-with-trailing-junk.pcap",
    "ndpi_KakaoTalk_chat.pcap",  # Linux cooked v1, non-DNS TCP streams interleaved
    "ndpi_dns-google-nsid.pcapng",  # 3 interfaces, ns and µs
    "suricata_dns-tcp-multirequest-buffer.pcap",
    "node1.pcap",
    "node2.pcap",
    "header_only.pcap",
    "pipelined_qdcount.pcap",
    "syn_retransmit.pcap",
    "syn_retransmit.pcap.gz",
    "truncated_tail.pcap",
}
#: files with something the native engine refuses, and the reason it must give
TSHARK_FILES = {
    "ndpi_dns_fragmented.pcap": "IP fragments",
    "zeek_dns-edns-ecs.pcap": "IP fragments",
    "issue11_tcp.pcap": "IP fragments",
    "issue11_update_root.pcap": "DNS question runs past the end",
    "unknown_linktype.pcap": "link type not supported",
    "weird_qnames.pcap": "control or non-ASCII",
    "dnscap_dnso1tcp-midmiss.pcap": "gap in a DNS-over-TCP stream",
}


@pytest.mark.parametrize("path", _captures(), ids=lambda p: p.name)
@pytest.mark.slow
def test_engines_equal_on_every_capture(path: Path, tshark: str) -> None:
    _, got = both(path)
    why = got.meta["engine_reason"].item()
    if path.name in NATIVE_FILES:
        assert engine_of(got) == "native", why
        assert why == "auto: the native engine reads this file"
        assert got.meta["tshark_version"].item() is None
    elif path.name in TSHARK_FILES:
        assert engine_of(got) == "tshark"
        assert why.startswith("auto: ") and TSHARK_FILES[path.name] in why, why
        assert "(frame " in why
    else:  # a new fixture: equality was checked; say which engine it took
        assert engine_of(got) in {"native", "tshark"}


def test_known_files_present() -> None:
    """The lists above name real files (a rename must not turn the checks into no-ops)."""
    names = {p.name for p in _captures()}
    local = {
        n
        for n in NATIVE_FILES | set(TSHARK_FILES)
        if not n.startswith(("chris", "dns", "ndpi", "suricata", "zeek"))
    }
    assert local <= names
    if SHARED_PCAPS.is_dir():
        assert NATIVE_FILES | set(TSHARK_FILES) <= names


# ------------------------------------------------------------------------------------------
# captures made here


def _records() -> list[tuple[float, bytes]]:
    """Ethernet records of syn_retransmit.pcap (UDP and TCP with a retransmitted SYN)."""
    data = (CDATA / "syn_retransmit.pcap").read_bytes()
    out, off = [], 24
    while off + 16 <= len(data):
        sec, us, cap, _ = struct.unpack("<IIII", data[off : off + 16])
        out.append((sec - 1_700_000_000 + us / 1e6, data[off + 16 : off + 16 + cap]))
        off += 16 + cap
    return out


def _pcap(
    records: list[tuple[float, bytes]], linktype: int, *, big: bool = False, ns: bool = False
) -> bytes:
    e = ">" if big else "<"
    out = [
        struct.pack(e + "IHHiIII", 0xA1B23C4D if ns else 0xA1B2C3D4, 2, 4, 0, 0, 65535, linktype)
    ]
    for t, pkt in records:
        whole = 1_700_000_000 + int(t)
        frac = round((t - int(t)) * (1e9 if ns else 1e6))
        out.append(struct.pack(e + "IIII", whole, frac, len(pkt), len(pkt)) + pkt)
    return b"".join(out)


def _pcapng(
    records: list[tuple[float, int, bytes]], ifaces: list[tuple[int, int]], *, big: bool
) -> bytes:
    """records: (time, interface, packet); ifaces: (link type, decimal tsresol)."""
    e = ">" if big else "<"

    def block(btype: int, body: bytes) -> bytes:
        body += b"\0" * (-len(body) % 4)
        n = 12 + len(body)
        return struct.pack(e + "II", btype, n) + body + struct.pack(e + "I", n)

    out = [block(0x0A0D0D0A, struct.pack(e + "IHHq", 0x1A2B3C4D, 1, 0, -1))]
    for lt, res in ifaces:
        opts = struct.pack(e + "HH", 9, 1) + bytes([res]) + b"\0\0\0" + struct.pack(e + "HH", 0, 0)
        out.append(block(1, struct.pack(e + "HHI", lt, 0, 65535) + opts))
    for t, i, pkt in records:
        units = round((1_700_000_000 + t) * 10 ** ifaces[i][1])
        hdr = struct.pack(e + "IIIII", i, units >> 32, units & 0xFFFFFFFF, len(pkt), len(pkt))
        out.append(block(6, hdr + pkt))
    # a name-resolution block and a statistics block the reader must skip
    out.insert(len(ifaces) + 1, block(4, struct.pack(e + "HH", 0, 0)))
    out.append(block(5, struct.pack(e + "III", 0, 0, 0)))
    return b"".join(out)


def _relink(pkt: bytes, linktype: int) -> bytes:
    """An Ethernet/IPv4 frame re-encapsulated for another link type."""
    ip = pkt[14:]
    if linktype == 113:  # Linux cooked v1: packet type, ARPHRD, address length, address, protocol
        return struct.pack(">HHH8sH", 0, 1, 6, b"\2\0\0\0\0\1\0\0", 0x0800) + ip
    if linktype == 0:  # BSD loopback, host byte order (little-endian writer)
        return struct.pack("<I", 2) + ip
    if linktype == 108:  # OpenBSD loop, network byte order
        return struct.pack(">I", 2) + ip
    if linktype in (101, 228):
        return ip
    if linktype == 1001:  # Ethernet with an 802.1Q tag inside an 802.1ad tag (QinQ)
        return pkt[:12] + b"\x88\xa8\x00\x64\x81\x00\x00\x0a\x08\x00" + ip
    raise AssertionError(linktype)


@pytest.mark.parametrize(
    ("variant", "linktype"),
    [
        ("pcap-be", 1),
        ("nsecpcap", 1),
        ("qinq", 1001),
        ("sll", 113),
        ("null", 0),
        ("loop", 108),
        ("rawip", 101),
        ("rawip4", 228),
    ],
)
@pytest.mark.slow
def test_link_types_and_pcap_variants(
    variant: str, linktype: int, tmp_path: Path, tshark: str
) -> None:
    recs = [(t, _relink(p, linktype) if linktype != 1 else p) for t, p in _records()]
    dlt = 1 if linktype == 1001 else linktype
    data = _pcap(recs, dlt, big=variant == "pcap-be", ns=variant == "nsecpcap")
    path = tmp_path / f"{variant}.pcap"
    path.write_bytes(data)
    _, got = both(path)
    assert engine_of(got) == "native", got.meta["engine_reason"].item()
    # the content is syn_retransmit.pcap's: 5 client queries, 2 upstream ones, 2 SYN retransmits
    assert got.dns.height == 7 and int(got.tcp["syn_retransmits"].sum()) == 2
    assert got.meta["file_format"].item() == ("nsecpcap" if variant == "nsecpcap" else "pcap")


@pytest.mark.parametrize("big", [False, True], ids=["little-endian", "big-endian"])
@pytest.mark.slow
def test_pcapng_interfaces_and_resolutions(big: bool, tmp_path: Path, tshark: str) -> None:
    recs = _records()
    # alternate the packets over two Ethernet interfaces: µs (6) and ns (9) time resolution
    ng = [(t, i % 2, p) for i, (t, p) in enumerate(recs)]
    path = tmp_path / "two.pcapng"
    path.write_bytes(_pcapng(ng, [(1, 6), (1, 9)], big=big))
    _, got = both(path)
    assert engine_of(got) == "native", got.meta["engine_reason"].item()
    assert got.meta["file_format"].item() == "pcapng" and got.packets.height == len(recs)
    gz = tmp_path / "two.pcapng.gz"
    gz.write_bytes(gzip.compress(path.read_bytes()))
    _, got_gz = both(gz)
    assert engine_of(got_gz) == "native" and got_gz.meta["gzipped"].item()


def _ip6(src: bytes, dst: bytes, nh: int, payload: bytes, ext: bytes = b"") -> bytes:
    return (
        struct.pack(">IHBB", 0x60000000, len(ext) + len(payload), nh if not ext else 0, 64)
        + src
        + dst
        + ext
        + payload
    )


def _eth6(ip: bytes) -> bytes:
    return b"\x02\x00\x00\x00\x00\x02\x02\x00\x00\x00\x00\x01\x86\xdd" + ip


def test_ipv6_extension_headers_and_icmp_quotes(tmp_path: Path, tshark: str) -> None:
    c6, s6 = (
        bytes.fromhex("fd000000000000000000000000000001"),
        bytes.fromhex("fd000000000000000000000000000053"),
    )
    q = MF.dns(0x0606, 0x0100, [b"six", b"example"], 28)
    r = MF.dns(0x0606, 0x8180, [b"six", b"example"], 28, [bytes(15) + b"\x01"])
    # hop-by-hop (pad) then destination options (pad), then UDP
    hbh = bytes([60, 0]) + b"\x01\x04\0\0\0\0"
    dst = bytes([17, 0]) + b"\x01\x04\0\0\0\0"
    uq = struct.pack(">HHHH", 40000, 53, 8 + len(q), 0) + q
    ur = struct.pack(">HHHH", 53, 40000, 8 + len(r), 0) + r
    recs = [
        (0.0, _eth6(_ip6(c6, s6, 17, uq, hbh + dst))),
        (0.001, _eth6(_ip6(s6, c6, 17, ur))),
    ]
    # ICMPv6 port unreachable quoting a query, ICMP port unreachable quoting an IPv4 query
    lost = MF.dns(0x0707, 0x0100, [b"gone", b"example"], 1)
    uq2 = struct.pack(">HHHH", 40001, 53, 8 + len(lost), 0) + lost
    icmp6 = bytes([1, 4, 0, 0, 0, 0, 0, 0]) + _ip6(c6, s6, 17, uq2)
    recs.append((0.002, _eth6(_ip6(s6, c6, 58, icmp6))))
    q4 = MF.udp("10.0.0.1", 40002, "10.0.0.53", 53, lost, 7)
    icmp4 = bytes([3, 3, 0, 0, 0, 0, 0, 0]) + q4
    recs.append((0.003, MF.eth(MF.ipv4("10.0.0.53", "10.0.0.1", 1, icmp4, 8))))
    recs.append((0.004, MF.eth(q4)))
    path = tmp_path / "v6.pcap"
    path.write_bytes(_pcap(recs, 1))
    _, got = both(path)
    assert engine_of(got) == "native", got.meta["engine_reason"].item()
    m = got.meta.row(0, named=True)
    assert m["dns_in_icmp"] == 2 and got.dns.height == 2
    assert got.dns.filter(pl.col("answered"))["client_ip"].to_list() == ["fd00::1"]
    assert sorted(got.packets["transport"].to_list()) == ["icmp", "icmp", "udp", "udp", "udp"]


def _lp(msg: bytes) -> bytes:
    return struct.pack(">H", len(msg)) + msg


def test_dns_over_tcp_segments(tmp_path: Path, tshark: str) -> None:
    """Messages split across segments, several per segment, a length prefix cut in two, a
    retransmitted segment (its messages are not counted twice), and port reuse."""
    C, S = "10.0.0.1", "10.0.0.53"
    SYN, ACK, PSH, FIN = 0x02, 0x10, 0x08, 0x01
    recs: list[tuple[float, bytes]] = []
    cs, ss = 1000, 9000

    def c2s(t: float, flags: int, data: bytes = b"") -> None:
        nonlocal cs
        recs.append((t, MF.eth(MF.tcp(C, 41000, S, 53, cs, ss, flags, data, 1))))
        cs += len(data) + (1 if flags & (SYN | FIN) else 0)

    def s2c(t: float, flags: int, data: bytes = b"", seq: int | None = None) -> None:
        nonlocal ss
        seq = ss if seq is None else seq
        recs.append((t, MF.eth(MF.tcp(S, 53, C, 41000, seq, cs, flags, data, 2))))
        ss = max(ss, seq + len(data) + (1 if flags & (SYN | FIN) else 0))

    names = [[b"q%d" % i, b"example"] for i in range(5)]
    qs = [_lp(MF.dns(0x100 + i, 0x0100, n, 1)) for i, n in enumerate(names)]
    rs = [_lp(MF.dns(0x100 + i, 0x8180, n, 1, [bytes([10, 0, 0, i])])) for i, n in enumerate(names)]
    c2s(0.0, SYN)
    s2c(0.001, SYN | ACK)
    c2s(0.002, ACK)
    c2s(0.010, PSH | ACK, qs[0][:7])  # query 0 split: prefix + 5 bytes ...
    c2s(0.011, PSH | ACK, qs[0][7:] + qs[1] + qs[2][:1])  # ... rest, query 1 whole, 1 prefix byte
    c2s(0.012, PSH | ACK, qs[2][1:] + qs[3] + qs[4])
    seg = rs[0] + rs[1]
    first = ss
    s2c(0.020, PSH | ACK, seg)
    s2c(0.520, PSH | ACK, seg, seq=first)  # retransmitted: same bytes again
    s2c(0.530, PSH | ACK, rs[2] + rs[3][:9])
    s2c(0.531, PSH | ACK, rs[3][9:] + rs[4])
    c2s(0.600, FIN | ACK)
    s2c(0.601, FIN | ACK)
    c2s(0.602, ACK)
    # the same 4-tuple again after the FIN: a new connection (new ISN), a new tcp.stream
    cs, ss = 50000, 70000
    c2s(1.0, SYN)
    s2c(1.001, SYN | ACK)
    c2s(1.002, ACK)
    c2s(1.003, PSH | ACK, qs[0])
    s2c(1.004, PSH | ACK, rs[0])
    path = tmp_path / "tcp.pcap"
    path.write_bytes(_pcap(recs, 1))
    _, got = both(path)
    assert engine_of(got) == "native", got.meta["engine_reason"].item()
    assert got.dns.height == 6 and got.dns["answered"].all()
    m = got.meta.row(0, named=True)
    assert m["dns_duplicate_responses"] == 0  # the retransmitted segment was not dissected again
    assert got.tcp["stream"].to_list() == [0, 1]
    retx = got.packets.filter(pl.col("is_retransmission"))["frame"].to_list()
    assert retx == [8]
    assert got.packets.filter(pl.col("frame") == 5)["dns_messages"].item() == 2


@pytest.mark.slow
def test_generated_node_capture(tmp_path: Path, tshark: str) -> None:
    """The benchmark's node generator (UDP to the cache, TCP upstream, SYN retransmissions)."""
    gen = _load("bench_capture", REPO / "bench" / "bench_capture.py")
    path = tmp_path / "node.pcap"
    st = gen.generate(path, 30_000, seed=5)
    _, got = both(path)
    assert engine_of(got) == "native"
    assert int(got.tcp["syn_retransmits"].sum()) == st["syn_retx"] > 0


def _mapped_rss(path: Path) -> int:
    """Resident bytes of this process's mappings of ``path`` (/proc/self/smaps)."""
    total, inside = 0, False
    for line in Path("/proc/self/smaps").read_text().splitlines():
        head = line.split()
        if head and "-" in head[0] and len(head) >= 5 and ":" in head[3]:
            inside = line.endswith(" " + str(path))
        elif inside and line.startswith("Rss:"):
            total += int(head[1]) * 1024
    return total


@pytest.mark.slow
def test_mapped_file_pages_given_back(tmp_path: Path) -> None:
    """One pass gives the mapped file's pages back behind the parser (madvise): once the file is
    parsed, at most one step of it is resident in this process, not the whole file (which was
    1.4 GB of the peak at 10 M packets); the frames are the same as without."""
    import mmap

    gen = _load("bench_capture", REPO / "bench" / "bench_capture.py")
    path = tmp_path / "node.pcap"
    gen.generate(path, 120_000, seed=3)
    size = path.stat().st_size
    step = 1 << 20
    assert size > 10 * step
    out = {}
    for release in (0, step):
        with path.open("rb") as fh:
            mm = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
        try:
            got, _, reason = _capture_native._parse(mm, (53,), 1, release=release)
            assert reason is None
            out[release] = (_mapped_rss(path), got)
        finally:
            mm.close()
    assert out[0][0] > 0.9 * size  # what the measure sees without: the whole file
    assert out[step][0] <= step + (64 << 10)
    for a, b in zip(out[0][1], out[step][1], strict=True):
        assert_frame_equal(a, b)


# ------------------------------------------------------------------------------------------
# engine choice


def test_display_filter_goes_to_tshark() -> None:
    cap = kit.read_capture(CDATA / "syn_retransmit.pcap", cache=False, display_filter="udp")
    assert engine_of(cap) == "tshark"
    assert cap.meta["engine_reason"].item() == "auto: display_filter needs tshark"
    with pytest.raises(ValueError, match="display_filter needs tshark"):
        kit.read_capture(CDATA / "syn_retransmit.pcap", display_filter="udp", engine="native")


def test_engine_argument() -> None:
    with pytest.raises(ValueError, match="engine='pcap'"):
        kit.read_capture(CDATA / "syn_retransmit.pcap", engine="pcap")
    with pytest.raises(InputFormatError, match=r"native capture engine cannot read.*IP fragments"):
        kit.read_capture(CDATA / "issue11_tcp.pcap", cache=False, engine="native")
    forced = kit.read_capture(CDATA / "syn_retransmit.pcap", cache=False, engine="native")
    assert forced.meta["engine_reason"].item() == "engine='native'"
    ref = kit.read_capture(CDATA / "syn_retransmit.pcap", cache=False, engine="tshark")
    assert ref.meta["engine_reason"].item() == "engine='tshark'"


def test_cache_keeps_engines_apart(tmp_path: Path) -> None:
    a = kit.read_capture(CDATA / "syn_retransmit.pcap", cache=tmp_path, engine="native")
    b = kit.read_capture(CDATA / "syn_retransmit.pcap", cache=tmp_path, engine="tshark")
    c = kit.read_capture(CDATA / "syn_retransmit.pcap", cache=tmp_path, engine="native")
    assert not a.meta["from_cache"].item() and not b.meta["from_cache"].item()
    assert c.meta["from_cache"].item() and engine_of(c) == "native" and engine_of(b) == "tshark"


def test_without_tshark(monkeypatch: pytest.MonkeyPatch) -> None:
    """No tshark installed: what the native engine reads still loads; the rest says why not."""

    def missing(path: object = None) -> str:
        raise ToolNotFoundError("tshark", install_hint="apt-get install tshark")

    monkeypatch.setattr(_tshark, "find_tshark", missing)
    cap = kit.read_capture(CDATA / "syn_retransmit.pcap", cache=False)
    assert engine_of(cap) == "native" and cap.dns.height == 7
    with pytest.raises(ToolNotFoundError, match="IP fragments"):
        kit.read_capture(CDATA / "issue11_tcp.pcap", cache=False)
    with pytest.raises(ToolNotFoundError):
        kit.read_capture(CDATA / "syn_retransmit.pcap", cache=False, engine="tshark")


def test_several_files_native_in_parallel(tmp_path: Path, tshark: str) -> None:
    """A folder of node captures: each file read natively (threads, the GIL released in C)."""
    src = REPO / "data" / "sample" / "captures"
    for p in src.glob("*.pcap"):
        (tmp_path / p.name).write_bytes(p.read_bytes())
    (tmp_path / "frag.pcap").write_bytes((CDATA / "issue11_tcp.pcap").read_bytes())
    cap = kit.read_capture(tmp_path, cache=False, workers=2)
    engines = dict(zip(cap.meta["capture"], cap.meta["engine"], strict=True))
    assert engines == {"node1": "native", "node2": "native", "frag": "tshark"}
    one = kit.read_capture(tmp_path / "node1.pcap", cache=False)
    assert_frame_equal(cap.dns.filter(pl.col("capture") == "node1"), one.dns)


def test_hostile_bytes_never_crash(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Random damage to a real capture: the native engine reads it or refuses it, never crashes,
    and whatever it returns has the documented schemas (tshark decides the rest). Parallel
    within the file (2 threads) it returns the same, or refuses with the same reason."""
    import random

    monkeypatch.setattr(_capture_native, "PARALLEL_MIN_BYTES", 0)

    base = bytearray((CDATA / "syn_retransmit.pcap").read_bytes())
    rnd = random.Random(3)
    outcomes = set()
    for i in range(300):
        data = bytearray(base)
        for _ in range(rnd.randrange(1, 12)):
            data[rnd.randrange(24, len(data))] = rnd.randrange(256)
        if i % 7 == 0:
            data = data[: rnd.randrange(24, len(data))]
        got, info, reason = _capture_native._parse(bytes(data), [53])
        par, pinfo, preason = _capture_native._parse(bytes(data), [53], 2)
        assert (preason, pinfo) == (reason, info)
        if got is not None:
            assert_frame_equal(got[0], par[0])
            assert_frame_equal(got[1], par[1])
        outcomes.add(reason is None)
        if got is not None:
            rows, txs = got
            assert rows.height <= 26 and info["packets"] <= 26
            # every DNS message accounted for: paired by role (a transaction per query) or
            # quoted in an ICMP error
            direct = rows.filter(pl.col("transport") != "icmp")["dns_messages"]
            assert sum(info["pairing"].values()) == int(direct.cast(pl.Int64).sum() or 0)
            assert txs.height == info["pairing"]["queries"]
    assert outcomes == {True, False}


def test_tcp_retransmission_kinds(tmp_path: Path, tshark: str) -> None:
    """tcp.analysis.retransmission as tshark sets it, and which retransmitted DNS it dissects.

    A: a fast retransmission after three duplicate ACKs (flagged, and tshark dissects its DNS
    again: the native engine leaves such a file to tshark), a spurious one (data already
    acknowledged: flagged), a keep-alive and a segment out of order within the first RTT (not
    flagged), one after a timeout (flagged). B: the same without the fast retransmission and the
    reordering: the native engine reads it, same flags, the retransmitted DNS counted once."""
    C, S = "10.0.0.1", "10.0.0.53"
    SYN, ACK, PSH = 0x02, 0x10, 0x08
    qs = [_lp(MF.dns(0x200 + i, 0x0100, [b"r%d" % i, b"example"], 1)) for i in range(6)]
    c0, s0 = 100, 900
    seqs = [c0 + 1]
    for q in qs:
        seqs.append(seqs[-1] + len(q))

    def make(fast: bool) -> list[tuple[float, bytes]]:
        recs: list[tuple[float, bytes]] = []

        def pkt(t: float, out: bool, seq: int, ack: int, fl: int, data: bytes = b"") -> None:
            ip = (
                MF.tcp(C, 42000, S, 53, seq, ack, fl, data, 1)
                if out
                else MF.tcp(S, 53, C, 42000, seq, ack, fl, data, 2)
            )
            recs.append((t, MF.eth(ip)))

        pkt(0.000, True, c0, 0, SYN)
        pkt(0.010, False, s0, c0 + 1, SYN | ACK)
        pkt(0.020, True, c0 + 1, s0 + 1, ACK)  # first RTT: 20 ms
        for i in range(3):  # three segments back to back
            pkt(0.100 + i * 0.001, True, seqs[i], s0 + 1, PSH | ACK, qs[i])
        if fast:  # three duplicate ACKs for the first segment, then its fast retransmission
            for i in range(3):
                pkt(0.110 + i * 0.001, False, s0 + 1, seqs[0], ACK)
            pkt(0.114, True, seqs[0], s0 + 1, PSH | ACK, qs[0])
        pkt(0.120, False, s0 + 1, seqs[3], ACK)  # everything acknowledged
        pkt(0.300, True, seqs[1], s0 + 1, PSH | ACK, qs[1])  # spurious: already acknowledged
        pkt(0.400, True, seqs[3] - 1, s0 + 1, ACK, b"\0")  # keep-alive
        if fast:  # out of order: the later segment first, the earlier 1 ms after
            pkt(0.500, True, seqs[4], s0 + 1, PSH | ACK, qs[4])
            pkt(0.501, True, seqs[3], s0 + 1, PSH | ACK, qs[3])
        else:
            pkt(0.500, True, seqs[3], s0 + 1, PSH | ACK, qs[3])
        pkt(1.500, True, seqs[3], s0 + 1, PSH | ACK, qs[3])  # timeout retransmission
        return recs

    path = tmp_path / "retx.pcap"
    path.write_bytes(_pcap(make(True), 1))
    ref, got = both(path)
    # 10 fast, 12 spurious, 13 keep-alive, 14/15 out of order, 16 timeout
    assert ref.packets.filter(pl.col("is_retransmission"))["frame"].to_list() == [10, 12, 16]
    assert ref.meta["dns_query_retransmissions"].item() == 1  # the fast one, dissected again
    assert engine_of(got) == "tshark" and "fast retransmission" in got.meta["engine_reason"].item()
    path2 = tmp_path / "retx2.pcap"
    path2.write_bytes(_pcap(make(False), 1))
    ref2, got2 = both(path2)
    assert engine_of(got2) == "native", got2.meta["engine_reason"].item()
    # 8 spurious, 9 keep-alive, 11 timeout
    assert ref2.packets.filter(pl.col("is_retransmission"))["frame"].to_list() == [8, 11]
    assert got2.dns.height == 4 and got2.meta["dns_query_retransmissions"].item() == 0


def test_workers_run_the_parallel_parser(monkeypatch: pytest.MonkeyPatch) -> None:
    """read_capture(workers=2) on one file hands the C parser 2 threads (files of 16 MiB or more;
    the threshold is lowered here); by default, and below the threshold, it runs one pass."""
    real = _capture_native._fastcap
    calls: list[int] = []

    class Spy:
        def parse(self, data: object, ports: object, workers: int = 1, *rest: object) -> object:
            calls.append(workers)
            return real.parse(data, ports, workers, *rest)

    monkeypatch.setattr(_capture_native, "_fastcap", Spy())
    path = CDATA / "syn_retransmit.pcap"
    one = kit.read_capture(path, cache=False, engine="native")
    monkeypatch.setattr(_capture_native, "PARALLEL_MIN_BYTES", 0)
    par = kit.read_capture(path, cache=False, engine="native", workers=2)
    assert calls == [1, 2]
    for name in ("dns", "tcp", "packets", "meta"):
        assert_frame_equal(getattr(one, name), getattr(par, name))
