"""kit.read_dnstap on dnstap written by real servers.

Inputs: ``tests/data/dnstap/unbound-1.17.1-forwarder.fstrm`` (unbound 1.17.1 through
fstrm_capture 0.6.1, see that folder's README), the committed scenario run
``data/scenarios/healthy`` (the lab's unbound nodes recorded dnstap beside their captures), damaged
copies of the real file made in the tests, and (marker ``lab``, root) a live lab run.
The capture of the same run is the reference for the pairs: the client hop's transactions must be
the capture's, with the same names, types and rcodes, at times within milliseconds.
"""

from __future__ import annotations

import gzip
import os
import re
import struct
import subprocess
import sys
import warnings
from pathlib import Path

import polars as pl
import pytest
from conftest import require_root, require_tool

import kit
from kit.errors import InputFormatError, KitWarning
from kit.sources.capture import DNS_SCHEMA
from kit.sources.detect import detect
from kit.sources.dnstap import DNSTAP_SCHEMA, read_dnstap

REPO = Path(__file__).resolve().parent.parent
UNBOUND = REPO / "tests" / "data" / "dnstap" / "unbound-1.17.1-forwarder.fstrm"
HEALTHY = Path(os.environ.get("DNSKIT_SCENARIOS", REPO / "data" / "scenarios")) / "healthy"
CACHE = "169.254.20.10"
UPSTREAM = "169.254.169.253"

if str(REPO) not in sys.path:  # lab/ is a package at the repo root
    sys.path.insert(0, str(REPO))


def frame_offsets(data: bytes) -> list[tuple[int, int, bool]]:
    """(offset, total length, is control) of every frame, read independently of the kit."""
    out, pos = [], 0
    while pos < len(data):
        (n,) = struct.unpack_from("!I", data, pos)
        if n == 0:
            (c,) = struct.unpack_from("!I", data, pos + 4)
            out.append((pos, 8 + c, True))
            pos += 8 + c
        else:
            out.append((pos, 4 + n, False))
            pos += 4 + n
    return out


def check_accounting(meta: dict) -> None:
    assert (
        meta["frames"] == meta["control_frames"] + meta["messages_kept"] + meta["messages_rejected"]
    )
    assert meta["messages_kept"] == (
        meta["dns_queries"]
        + meta["dns_query_retransmissions"]
        + meta["dns_responses"]
        + meta["dns_duplicate_responses"]
        + meta["dns_orphan_responses"]
    )


# ----- the real unbound recording ---------------------------------------------------------------


def test_unbound_file_every_frame_accounted() -> None:
    data = UNBOUND.read_bytes()
    frames = frame_offsets(data)
    log = read_dnstap(UNBOUND)
    m = log.meta.row(0, named=True)
    assert m["frames"] == len(frames) == 20
    assert m["control_frames"] == sum(c for _, _, c in frames) == 2
    assert m["messages_kept"] == 18 and m["messages_rejected"] == 0 and m["rejects"] == []
    assert m["stopped"] and m["content_type"] == "protobuf:dnstap.Dnstap"
    assert m["identities"] == ["node1"]
    assert m["message_types"] == [
        "CLIENT_QUERY=5",
        "CLIENT_RESPONSE=5",
        "FORWARDER_QUERY=4",
        "FORWARDER_RESPONSE=4",
    ]
    check_accounting(m)
    # one messages row per kept data frame, at its own offset
    data_offsets = [o for o, _, c in frames if not c]
    assert log.messages["offset"].to_list() == data_offsets
    assert log.messages["frame"].to_list() == list(range(1, 19))


def test_unbound_file_pairs() -> None:
    log = read_dnstap(UNBOUND)
    assert log.dns.columns[: len(DNS_SCHEMA)] == list(DNS_SCHEMA)
    assert [log.dns.schema[c] for c in DNS_SCHEMA] == list(DNS_SCHEMA.values())
    assert log.dns.schema == DNSTAP_SCHEMA
    client = log.dns.filter(pl.col("message_type") == "CLIENT")
    fwd = log.dns.filter(pl.col("message_type") == "FORWARDER")
    assert client.select("qname", "qtype", "rcode", "transport").rows() == [
        ("a.test", "A", "NOERROR", "udp"),
        ("b.test", "A", "NOERROR", "udp"),
        ("a.test", "A", "NOERROR", "udp"),
        ("nx.test", "A", "NXDOMAIN", "udp"),
        ("b.test", "AAAA", "NOERROR", "tcp"),
    ]
    assert client["answers"].to_list() == [1, 1, 1, 0, 0]
    # the second a.test was a cache hit: no forwarder transaction for it
    assert fwd.select("qname", "qtype", "rcode").rows() == [
        ("a.test", "A", "NOERROR"),
        ("b.test", "A", "NOERROR"),
        ("nx.test", "A", "NXDOMAIN"),
        ("b.test", "AAAA", "NOERROR"),
    ]
    assert set(client["client_ip"]) == {"127.0.0.1"} and set(client["server_ip"]) == {"127.0.77.1"}
    # unbound 1.17 logs its outgoing socket as 0.0.0.0 (wildcard bind) with the real port
    assert set(fwd["client_ip"]) == {"0.0.0.0"} and set(fwd["server_ip"]) == {"127.0.77.2"}
    assert (fwd["client_port"] > 1023).all() and set(fwd["server_port"]) == {5353}
    all_ = log.dns
    assert all_["answered"].all() and not all_["censored"].any() and all_["query_seen"].all()
    lat = (all_["ts_response"] - all_["ts"]).dt.total_microseconds() / 1e6
    assert (all_["latency_s"] - lat).abs().max() < 1e-6 and (all_["latency_s"] > 0).all()
    # a cache miss's client latency covers its forwarder exchange
    miss = client.filter(pl.col("qname") == "nx.test").row(0, named=True)
    up = fwd.filter(pl.col("qname") == "nx.test").row(0, named=True)
    assert miss["ts"] < up["ts"] < up["ts_response"] < miss["ts_response"]


def test_detected_as_dnstap(tmp_path: Path) -> None:
    assert detect(UNBOUND).kind == "dnstap"
    gz = tmp_path / "node.fstrm.gz"
    gz.write_bytes(gzip.compress(UNBOUND.read_bytes()))
    assert detect(gz).kind == "dnstap"
    plain = read_dnstap(UNBOUND).dns.drop("file", "capture")
    assert read_dnstap(gz).dns.drop("file", "capture").equals(plain)
    assert read_dnstap(gz).meta["gzipped"].to_list() == [True]


# ----- damaged copies -----------------------------------------------------------------------------


def test_cut_inside_a_frame_names_file_and_offset(tmp_path: Path) -> None:
    data = UNBOUND.read_bytes()
    frames = frame_offsets(data)
    for off, length, _ in frames[1:-1:3]:
        for cut in (off + 2, off + length - 1):
            p = tmp_path / f"cut{cut}.fstrm"
            p.write_bytes(data[:cut])
            with pytest.raises(InputFormatError) as ei:
                read_dnstap(p)
            assert ei.value.offset == off and ei.value.path == str(p)
            assert str(p) in str(ei.value) and f"byte offset {off}" in str(ei.value)


def test_cut_between_frames_is_read_with_a_note(tmp_path: Path) -> None:
    data = UNBOUND.read_bytes()
    frames = frame_offsets(data)
    off = frames[11][0]  # 10 data frames read, no STOP
    p = tmp_path / "killed.fstrm"
    p.write_bytes(data[:off])
    with pytest.warns(KitWarning, match="no STOP frame"):
        log = read_dnstap(p)
    m = log.meta.row(0, named=True)
    assert not m["stopped"] and m["frames"] == 11 and m["messages_kept"] == 10
    assert any("no STOP" in n for n in m["notes"])
    check_accounting(m)


def test_not_frame_streams(tmp_path: Path) -> None:
    pcap = next((REPO / "data" / "scenarios" / "healthy" / "captures").glob("node1.pcap*"))
    for p in (pcap, REPO / "tests" / "data" / "dnstap" / "README.md"):
        with pytest.raises(InputFormatError, match="not a Frame Streams file") as ei:
            read_dnstap(p)
        assert ei.value.offset == 0


def test_other_content_type(tmp_path: Path) -> None:
    data = UNBOUND.read_bytes().replace(b"protobuf:dnstap.Dnstap", b"protobuf:dnstap.Dnstaq", 1)
    p = tmp_path / "other.fstrm"
    p.write_bytes(data)
    with pytest.raises(InputFormatError, match=re.escape("content type 'protobuf:dnstap.Dnstaq'")):
        read_dnstap(p)
    assert detect(p).kind == "unknown"


def test_garbage_frame_length(tmp_path: Path) -> None:
    data = bytearray(UNBOUND.read_bytes())
    off = frame_offsets(bytes(data))[3][0]
    data[off : off + 4] = b"\x41\x41\x41\x41"
    p = tmp_path / "garbage.fstrm"
    p.write_bytes(bytes(data))
    with pytest.raises(InputFormatError, match="data frame of 1094795585 bytes") as ei:
        read_dnstap(p)
    assert ei.value.offset == off


def test_bad_protobuf_is_a_counted_reject(tmp_path: Path) -> None:
    data = bytearray(UNBOUND.read_bytes())
    frames = frame_offsets(bytes(data))
    off, _, _ = frames[4]
    data[off + 4] = 0x0F  # field 1, wire type 7: not protobuf
    p = tmp_path / "bad.fstrm"
    p.write_bytes(bytes(data))
    with pytest.warns(KitWarning, match="1 of 18 dnstap data frame"):
        log = read_dnstap(p)
    m = log.meta.row(0, named=True)
    assert m["messages_rejected"] == 1 and m["messages_kept"] == 17
    assert m["rejects"] == [f"protobuf wire type 7 (groups or invalid) (1, first at byte {off})"]
    check_accounting(m)
    assert off not in log.messages["offset"].to_list()
    with pytest.raises(InputFormatError, match="wire type 7") as ei:
        read_dnstap(p, strict=True)
    assert ei.value.offset == off


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        out.append((n & 0x7F) | (0x80 if n > 0x7F else 0))
        n >>= 7
        if not n:
            return bytes(out)


def _pb_fields(b: bytes) -> list[tuple[int, bytes]]:
    """(key, raw value bytes incl. length prefix) of a protobuf message (varint/len/fixed32)."""
    out, i = [], 0
    while i < len(b):
        key, j = 0, 0
        while True:
            key |= (b[i] & 0x7F) << (7 * j)
            i, j = i + 1, j + 1
            if not b[i - 1] & 0x80:
                break
        start = i
        wt = key & 7
        if wt == 0:
            while b[i] & 0x80:
                i += 1
            i += 1
        elif wt == 5:
            i += 4
        else:
            n, j = 0, 0
            while True:
                n |= (b[i] & 0x7F) << (7 * j)
                i, j = i + 1, j + 1
                if not b[i - 1] & 0x80:
                    break
            i += n
        out.append((key, b[start:i]))
    return out


def _set_query_message(frame: bytes, wire: bytes) -> bytes:
    """The Dnstap ``frame`` with Message.query_message replaced by ``wire``."""
    out = b""
    for key, raw in _pb_fields(frame):
        if key == (14 << 3 | 2):
            # strip the length prefix of the Message
            n, j, k = 0, 0, 0
            while True:
                n |= (raw[k] & 0x7F) << (7 * j)
                k, j = k + 1, j + 1
                if not raw[k - 1] & 0x80:
                    break
            body = raw[k:]
            msg = b""
            for k2, r2 in _pb_fields(body):
                if k2 == (10 << 3 | 2):
                    r2 = _varint(len(wire)) + wire
                msg += _varint(k2) + r2
            raw = _varint(len(msg)) + msg
        out += _varint(key) + raw
    return out


def test_short_dns_message_is_a_counted_reject(tmp_path: Path) -> None:
    """A data frame whose Dnstap parses but whose DNS message is shorter than its header."""
    data = UNBOUND.read_bytes()
    frames = frame_offsets(data)
    off, length, _ = frames[1]  # the first CLIENT_QUERY
    frame = data[off + 4 : off + length]
    assert _set_query_message(frame, _query_message(frame)) == frame  # the re-encoding is exact
    new = _set_query_message(frame, b"\x12\x34\x01\x00\x00")
    p = tmp_path / "short.fstrm"
    p.write_bytes(data[:off] + struct.pack("!I", len(new)) + new + data[off + length :])
    with pytest.warns(KitWarning, match="1 of 18"):
        log = read_dnstap(p)
    m = log.meta.row(0, named=True)
    assert m["messages_rejected"] == 1
    assert m["rejects"] == [
        f"DNS message of 5 bytes (shorter than its header) (1, first at byte {off})"
    ]
    # its response has lost its query, and unbound 1.17's CLIENT_RESPONSE carries no
    # query_time, so it cannot make a row of its own: an orphan
    assert m["dns_orphan_responses"] == 1
    assert log.dns.filter(pl.col("message_type") == "CLIENT").height == 4
    check_accounting(m)


def _query_message(frame: bytes) -> bytes:
    for key, raw in _pb_fields(frame):
        if key == (14 << 3 | 2):
            k = 0
            while raw[k] & 0x80:
                k += 1
            for k2, r2 in _pb_fields(raw[k + 1 :]):
                if k2 == (10 << 3 | 2):
                    return r2[len(r2) - (len(r2) - (1 if r2[0] < 128 else 2)) :]
    raise AssertionError("no query_message")


# ----- the committed lab run: dnstap beside the capture ---------------------------------------------


def _healthy_nodes() -> list[Path]:
    files = sorted((HEALTHY / "dnstap").glob("node*.fstrm*"))
    if not files:
        pytest.fail(f"no dnstap in {HEALTHY}: regenerate it with `make scenarios`")
    return files


def _agree(
    dn: pl.DataFrame,
    cap: pl.DataFrame,
    *,
    on: list[str],
    max_ms: float = 50.0,
    p90_ms: float = 2.0,
) -> None:
    """The dnstap transactions are the capture's: same keys, names, types, rcodes, answered; each
    time within ``max_ms`` of the wire's, the median within 0.25 ms and 90 % within ``p90_ms``. (unbound
    stamps a CLIENT_QUERY when it processes it, not when the packet arrived: on the loaded 2-core
    VM of the committed run that lagged up to 19 ms, p50 0.06 ms, p95 0.8-1.3 ms.)"""
    cols = [*on, "qtype", "rcode", "answered"]
    a = dn.with_columns(qname=pl.col("qname").str.to_lowercase()).select(*cols, "ts", "ts_response")
    b = cap.with_columns(qname=pl.col("qname").str.to_lowercase()).select(
        *cols, "ts", "ts_response"
    )
    assert a.height == b.height > 0
    j = a.join(b, on=cols, how="inner", suffix="_cap")
    assert j.height == a.height, a.join(b, on=cols, how="anti")
    for x in ("ts", "ts_response"):
        d = (j[x] - j[f"{x}_cap"]).dt.total_microseconds().abs() / 1e3
        assert d.max() < max_ms, (x, d.max())
        assert d.median() < 0.25, (x, d.median())
        assert d.quantile(0.90) < p90_ms, (x, d.quantile(0.90))


def test_committed_run_dnstap_agrees_with_its_capture() -> None:
    for f in _healthy_nodes():
        node = f.name.split(".")[0]
        log = read_dnstap(f)
        m = log.meta.row(0, named=True)
        assert m["messages_rejected"] == 0 and m["stopped"] and m["identities"] == [node]
        check_accounting(m)
        assert m["dns_orphan_responses"] == 0 and m["dns_duplicate_responses"] == 0
        cap = kit.read_capture(next((HEALTHY / "captures").glob(f"{node}.pcap*")))
        # client hop: the pods' queries to the cache
        _agree(
            log.dns.filter(pl.col("message_type") == "CLIENT"),
            cap.dns.filter(pl.col("server_ip") == CACHE),
            on=["client_ip", "client_port", "server_ip", "dns_id", "qname"],
        )
        # forwarder hop: unbound logs its source as 0.0.0.0; the port, ID and name identify it
        _agree(
            log.dns.filter(pl.col("message_type") == "FORWARDER"),
            cap.dns.filter(pl.col("server_ip") == UPSTREAM),
            on=["client_port", "server_ip", "dns_id", "qname"],
        )


# ----- a live lab run ------------------------------------------------------------------------------


@pytest.mark.lab
def test_lab_records_dnstap_live(tmp_path: Path) -> None:
    require_root()
    for tool, pkg in (
        ("fstrm_capture", "fstrm-bin"),
        ("unbound", "unbound"),
        ("nsd", "nsd"),
        ("dnsperf", "dnsperf"),
        ("tcpdump", "tcpdump"),
    ):
        require_tool(tool, pkg)
    from lab.cli import config_values
    from lab.core import LabConfig, run_lab

    prefix = "dkdtap"
    vals = config_values("healthy", short=True)
    vals["phases"] = kit_phases("healthy=5")
    vals["dnstap"] = True
    cfg = LabConfig(out=tmp_path / "run", prefix=prefix, prometheus=False, **vals)
    try:
        run = run_lab(cfg)
    finally:
        left = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
        for name in [ln.split()[0] for ln in left.splitlines() if ln.startswith(prefix + "-")]:
            subprocess.run(["ip", "netns", "delete", name], check=False)
        assert not [ln for ln in left.splitlines() if ln.startswith(prefix + "-")]
    assert run["parameters"]["dnstap"] is True
    assert run["counts"]["fstrm_capture_exit"] == {"node1": 0}
    log = read_dnstap(tmp_path / "run" / "dnstap" / "node1.fstrm")
    m = log.meta.row(0, named=True)
    assert m["stopped"] and m["messages_rejected"] == 0
    check_accounting(m)
    cap = kit.read_capture(tmp_path / "run" / "captures" / "node1.pcap")
    _agree(
        log.dns.filter(pl.col("message_type") == "CLIENT"),
        cap.dns.filter(pl.col("server_ip") == CACHE),
        on=["client_ip", "client_port", "server_ip", "dns_id", "qname"],
        # a live run on a shared 2-core host: one query's processing can lag the wire by a
        # scheduling slice (70 ms seen in CI with the machine busy) and the p90 with it (2.9 and
        # 3.5 ms seen at load average ~11); the median bound still says the stamps are the wire's
        max_ms=500.0,
        p90_ms=10.0,
    )


def kit_phases(text: str) -> tuple:
    from lab.core import parse_phases

    return parse_phases(text)


def test_read_dnstap_is_public() -> None:
    import kit.sources.dnstap as mod

    assert kit.read_dnstap is read_dnstap and mod.read_dnstap is read_dnstap
    # the result type stays in its module: the top-level API is the loaders
    assert "DnstapLog" not in kit.__all__ and mod.DnstapLog.__doc__


def test_mutated_files_are_read_or_refused_with_an_offset(tmp_path: Path) -> None:
    """400 seeded byte mutations of the real file (flips, cuts, duplicated and deleted spans):
    each is either read with every frame accounted, or refused with an InputFormatError that
    names the file and a byte offset; nothing else escapes."""
    import random

    rng = random.Random(18)
    data = UNBOUND.read_bytes()
    outcomes = {"read": 0, "refused": 0, "rejects": 0}
    for k in range(400):
        b = bytearray(data)
        for _ in range(rng.randint(1, 4)):
            op = rng.randrange(4)
            i = rng.randrange(len(b))
            if op == 0:
                b[i] = rng.randrange(256)
            elif op == 1:
                del b[i : i + rng.randint(1, 40)]
            elif op == 2:
                b[i:i] = b[i : i + rng.randint(1, 40)]
            else:
                b = b[: max(i, 1)]
        p = tmp_path / f"m{k}.fstrm"
        p.write_bytes(bytes(b))
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", KitWarning)
                log = read_dnstap(p)
        except InputFormatError as exc:
            assert exc.path == str(p) and exc.offset is not None and 0 <= exc.offset <= len(b)
            outcomes["refused"] += 1
            continue
        m = log.meta.row(0, named=True)
        check_accounting(m)
        assert log.messages.height == m["messages_kept"]
        outcomes["read"] += 1
        outcomes["rejects"] += m["messages_rejected"] > 0
    assert outcomes["read"] > 20 and outcomes["refused"] > 20 and outcomes["rejects"] > 5, outcomes


def test_knot_resolver_file() -> None:
    """The same reader on another server's dnstap: Knot Resolver 5.6.0 (CLIENT messages only)."""
    f = UNBOUND.parent / "knot-resolver-5.6.0-client.fstrm"
    log = read_dnstap(f)
    m = log.meta.row(0, named=True)
    assert (m["frames"], m["control_frames"], m["messages_kept"], m["messages_rejected"]) == (
        len(frame_offsets(f.read_bytes())),
        2,
        12,
        0,
    )
    assert m["identities"] == ["kresd-test"] and m["stopped"]
    assert m["message_types"] == ["CLIENT_QUERY=6", "CLIENT_RESPONSE=6"]
    check_accounting(m)
    assert log.dns.select("qname", "qtype", "rcode", "transport", "message_type").rows() == [
        ("a.test", "A", "NOERROR", "udp", "CLIENT"),
        ("b.test", "A", "NOERROR", "udp", "CLIENT"),
        ("a.test", "A", "NOERROR", "udp", "CLIENT"),
        ("nx.test", "A", "NXDOMAIN", "udp", "CLIENT"),
        ("b.test", "AAAA", "NOERROR", "tcp", "CLIENT"),
        ("A.TeSt", "A", "NOERROR", "udp", "CLIENT"),  # case as the client sent it
    ]
    assert set(log.dns["server_ip"]) == {"127.0.77.3"} and log.dns["answered"].all()
    # the first query went upstream (ms); the repeat of a.test was a cache hit (µs)
    lat = log.dns["latency_s"].to_list()
    assert lat[0] > 10 * lat[2] and all(x > 0 for x in lat)
    assert detect(f).kind == "dnstap"
