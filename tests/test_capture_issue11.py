"""Issue 11 (captures): connections open before the capture, non-DNS TCP, UPDATE, DoH, the root.

Reference values come from a separate tshark run in each test (read with plain Python) or from the
hand-written timeline of the crafted captures (tests/data/capture/make_fixtures.py, files
``issue11_*.pcap``), never from the loader's own output.
"""

from __future__ import annotations

import collections
import json
import os
import subprocess
from pathlib import Path

import polars as pl
import pytest

import kit
from kit.analyses import attribution, upstream
from kit.analyses.summary import summarize_file
from kit.cli import main
from kit.sources import capture as kc

AGG = "\x1f"
U_MAX = {pl.UInt8: 2**8 - 1, pl.UInt16: 2**16 - 1, pl.UInt32: 2**32 - 1, pl.UInt64: 2**64 - 1}


def tshark_rows(
    tshark: str, path: Path, fields: list[str], *, flt: str = "dns", two_pass: bool = True
) -> list[dict[str, list[str]]]:
    """Run tshark on its own; one dict per frame, each field split into its occurrences."""
    argv = [tshark, "-n", "-r", str(path), "-Y", flt, "-T", "fields"]
    argv += ["-E", "occurrence=a", "-E", f"aggregator={AGG}"]
    if two_pass:
        argv.insert(1, "-2")
    for f in fields:
        argv += ["-e", f]
    out = subprocess.run(
        argv, capture_output=True, check=True, env={**os.environ, "LC_ALL": "C"}
    ).stdout
    return [
        {f: [v for v in c.split(AGG) if v] for f, c in zip(fields, line.split("\t"), strict=True)}
        for line in out.decode("utf-8").splitlines()
    ]


@pytest.fixture(autouse=True)
def _no_default_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DNSKIT_CACHE", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def cdata(data_dir: Path) -> Path:
    return data_dir / "capture"


# ------------------------------------------------------------------------------------------
# 1. a connection whose SYN is not in the capture


def test_connection_open_before_capture(shared_fixtures: Path, tshark: str) -> None:
    """zeek_dns-edns-ecs: 8 DNS-over-TCP connections seen only mid-stream (no handshake)."""
    path = shared_fixtures / "pcaps" / "zeek_dns-edns-ecs.pcap"
    streams = {
        int(r["tcp.stream"][0]) for r in tshark_rows(tshark, path, ["tcp.stream"], flt="tcp")
    }
    syns = tshark_rows(tshark, path, ["tcp.stream"], flt="tcp.flags.syn == 1")
    assert len(streams) == 8 and syns == []  # tshark: 8 connections, not one SYN
    cap = kit.read_capture(path, cache=False)
    tcp = cap.tcp
    assert set(tcp["stream"]) == streams
    assert tcp["syn_retransmits"].to_list() == [0] * 8
    assert not tcp["syn_seen"].any() and tcp["established"].is_null().all()
    # the query's sender is the client (tshark: dns.flags.response == 0)
    q = tshark_rows(
        tshark, path, ["tcp.stream", "ip.src", "ipv6.src"], flt="tcp and dns.flags.response == 0"
    )
    for r in q:
        row = tcp.filter(pl.col("stream") == int(r["tcp.stream"][0])).row(0, named=True)
        assert row["client_ip"] == (r["ip.src"] or r["ipv6.src"])[0]
    cs = upstream.connection_summary(tcp, by=["capture"]).row(0, named=True)
    assert cs["connections"] == cs["already_open"] == 8
    assert cs["with_syn_retransmits"] == cs["syn_retransmits"] == cs["max_syn_retransmits"] == 0
    assert cs["retransmit_share"] == 0.0


def test_summarize_mid_connection_capture(
    shared_fixtures: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = shared_fixtures / "pcaps" / "zeek_dns-edns-ecs.pcap"
    s = summarize_file(path)["summary"]
    assert s["tcp_connections"] == s["tcp_already_open"] == 8
    assert s["syn_retransmits"] == s["connections_with_syn_retransmits"] == 0
    assert main(["summarize", str(path)]) == 0
    out = capsys.readouterr().out
    assert "syn_retransmits: 0\n" in out and "tcp_already_open: 8\n" in out
    assert "4294967295" not in out
    assert main(["summarize", str(path), "--json"]) == 0
    got = json.loads(capsys.readouterr().out)["artefacts"][0]["summary"]
    assert got["syn_retransmits"] == 0


# ------------------------------------------------------------------------------------------
# 2. .tcp holds DNS-port connections only; the client is who opened the connection


def test_tcp_holds_dns_port_connections_only(cdata: Path, tshark: str) -> None:
    path = cdata / "issue11_tcp.pcap"
    conv = {
        int(r["tcp.stream"][0]): (int(r["tcp.srcport"][-1]), int(r["tcp.dstport"][-1]))
        for r in tshark_rows(tshark, path, ["tcp.stream", "tcp.srcport", "tcp.dstport"], flt="tcp")
    }
    on53 = sorted(s for s, ports in conv.items() if 53 in ports)
    assert len(conv) == 4 and len(on53) == 1  # DoH on 80, DNS on 5353, 53<->53, HTTP in GRE
    cap = kit.read_capture(path, cache=False)
    assert cap.tcp["stream"].to_list() == on53
    row = cap.tcp.row(0, named=True)
    # both ends use port 53: the query's sender (timeline: 10.0.0.3) is the client
    assert (row["client_ip"], row["client_port"], row["server_ip"]) == ("10.0.0.3", 53, "10.0.0.4")
    assert row["syn_seen"] is False and row["syn_retransmits"] == 0
    # the DNS over TCP on 5353 is still a transaction, its connection just is not in .tcp
    assert set(cap.dns["server_port"]) == {53, 5353}


def test_dns_ports_selects_connections_and_syn_decides_client(cdata: Path, tshark: str) -> None:
    path = cdata / "issue11_tcp.pcap"
    syn = tshark_rows(
        tshark, path, ["tcp.stream", "ip.src", "tcp.srcport", "tcp.dstport"],
        flt="tcp.flags.syn == 1 and tcp.flags.ack == 0 and tcp.port == 5353",
    )  # fmt: skip
    assert len(syn) == 1
    cap = kit.read_capture(path, cache=False, dns_ports=(53, 5353))
    row = cap.tcp.filter(pl.col("server_port") == 5353).row(0, named=True)
    assert row["stream"] == int(syn[0]["tcp.stream"][0])
    assert (row["client_ip"], row["client_port"]) == (
        syn[0]["ip.src"][0],
        int(syn[0]["tcp.srcport"][0]),
    )
    assert row["syn_seen"] and row["established"] and row["syn_retransmits"] == 0
    assert row["handshake_s"] == pytest.approx(0.001)  # timeline: SYN/ACK 1 ms after the SYN
    assert row["packets"] == 5 and row["dns_messages"] == 2  # handshake, query, answer
    assert cap.tcp.height == 2
    with pytest.raises(ValueError, match="dns_ports"):
        kit.read_capture(path, cache=False, dns_ports=(0,))


def test_fragmented_tunnel_without_dns_is_dropped(cdata: Path, tshark: str) -> None:
    """HTTP inside GRE/ERSPAN whose outer IPv4 packet is fragmented: the fragment filter lets it
    in; neither the reassembled packet nor its first fragment is DNS-related."""
    path = cdata / "issue11_tcp.pcap"
    gre = tshark_rows(tshark, path, ["frame.number", "ip.fragment"], flt="gre", two_pass=False)
    assert len(gre) == 1
    frames = {int(x) for x in gre[0]["ip.fragment"][0].split(",")} | {
        int(gre[0]["frame.number"][0])
    }
    assert len(frames) == 2
    cap = kit.read_capture(path, cache=False)
    assert not set(cap.packets["frame"]) & frames
    assert not cap.packets["transport"].is_in(["ipfrag"]).any()
    want = tshark_rows(tshark, path, ["frame.number"], flt="dns or tcp.port == 53", two_pass=False)
    assert cap.packets["frame"].to_list() == [int(r["frame.number"][0]) for r in want]


# ------------------------------------------------------------------------------------------
# 3./4. every DNS message lands somewhere: UPDATE paired, DoH counted


def _identity(m: dict[str, int]) -> int:
    return sum(
        m[c]
        for c in (
            "dns_queries", "dns_query_retransmissions", "dns_responses", "dns_duplicate_responses",
            "dns_orphan_responses", "dns_in_icmp", "dns_unparsed", "dns_over_http",
        )
    )  # fmt: skip


def test_update_messages_are_paired_and_counted(cdata: Path, tshark: str) -> None:
    path = cdata / "issue11_update_root.pcap"
    ref = tshark_rows(
        tshark, path, ["frame.number", "dns.flags", "dns.flags.opcode", "dns.response_to"]
    )
    n_msgs = sum(len(r["dns.flags"]) for r in ref)
    updates = sum(r["dns.flags.opcode"].count("5") for r in ref)
    pairs = sorted((int(q), int(r["frame.number"][0])) for r in ref for q in r["dns.response_to"])
    assert updates == 4 and n_msgs == 10
    cap = kit.read_capture(path, cache=False)
    m = cap.meta.row(0, named=True)
    assert m["dns_messages"] == n_msgs == _identity(m)
    assert m["dns_unparsed"] == 0
    d = cap.dns
    up = d.filter(pl.col("opcode") == "UPDATE").sort("dns_id")
    assert up["dns_id"].to_list() == [0x0003, 0x0010]
    assert up["qname"].to_list() == ["example.com", "example.org"]  # the zone
    assert up["qtype"].to_list() == ["SOA", "SOA"] and up["answered"].all()
    # the pipelined UPDATE + QUERY keep their own names
    q = d.filter(pl.col("dns_id") == 0x0011).row(0, named=True)
    assert (q["opcode"], q["qname"], q["answers"]) == ("QUERY", "www.example.org", 1)
    got = sorted(
        zip(*d.filter(pl.col("answered")).select("frame_query", "frame_response"), strict=True)
    )
    assert got == pairs


def test_doh_is_left_out_and_counted(cdata: Path, tshark: str) -> None:
    """h2c DoH: two queries with ID 0 in flight, answered in the other order. The kit does not
    pair them by ID (it would pair one.example's query with two.example's answer)."""
    path = cdata / "issue11_tcp.pcap"
    ref = tshark_rows(tshark, path, ["dns.id"], flt="dns and http2")
    assert sum(len(r["dns.id"]) for r in ref) == 4 and {i for r in ref for i in r["dns.id"]} == {
        "0x0000"
    }
    cap = kit.read_capture(path, cache=False)
    m = cap.meta.row(0, named=True)
    assert m["dns_over_http"] == 4 and m["dns_messages"] == _identity(m)
    assert any("DNS-over-HTTP" in n and "ID 0" in n for n in m["notes"])
    assert not cap.dns["qname"].is_in(["one.example", "two.example"]).any()
    assert cap.packets.filter(pl.col("dst_port") == 80).height == 2  # still DNS-related packets


# ------------------------------------------------------------------------------------------
# 5. the root name, 6. a malformed query answered FORMERR


def test_root_name_is_a_dot(shared_fixtures: Path, cdata: Path, tshark: str) -> None:
    real = shared_fixtures / "pcaps" / "ndpi_dns-google-nsid.pcapng"
    ref = tshark_rows(
        tshark, real, ["frame.number"], flt='dns.flags.response == 0 and dns.qry.name == "<Root>"'
    )
    assert [r["frame.number"] for r in ref] == [["1"]]  # tshark's label for the root
    d = kit.read_capture(real, cache=False).dns
    assert d.filter(pl.col("frame_query") == 1)["qname"].to_list() == ["."]
    assert "<Root>" not in d["qname"].to_list()
    crafted = kit.read_capture(cdata / "issue11_update_root.pcap", cache=False).dns
    row = crafted.filter(pl.col("dns_id") == 1).row(0, named=True)
    assert (row["qname"], row["qtype"], row["answered"]) == (".", "NS", True)


def test_malformed_query_is_paired_with_its_formerr(cdata: Path, tshark: str) -> None:
    """Documented choice: tshark shows no ``dns.response_in`` on the malformed query (dissection
    stopped) but pairs the FORMERR answer to it (``dns.response_to``); the kit pairs them."""
    path = cdata / "issue11_update_root.pcap"
    ref = tshark_rows(
        tshark, path, ["frame.number", "dns.id", "dns.response_in", "dns.response_to", "_ws.malformed"],
        flt="dns.id == 0x4242",
    )  # fmt: skip
    q, r = ref
    assert q["_ws.malformed"] and q["dns.response_in"] == []
    assert r["dns.response_to"] == q["frame.number"]
    row = (
        kit.read_capture(path, cache=False)
        .dns.filter(pl.col("dns_id") == 0x4242)
        .row(0, named=True)
    )
    assert (row["frame_query"], row["frame_response"]) == (
        int(q["frame.number"][0]),
        int(r["frame.number"][0]),
    )
    assert row["rcode"] == "FORMERR" and row["qname"] is None
    assert "FORMERR" in (kc.read_capture.__doc__ or "")


# ------------------------------------------------------------------------------------------
# no count anywhere is an unsigned value wrapped around


def _near_max(df: pl.DataFrame, where: str) -> list[str]:
    """UInt32/UInt64 columns within 2**16 of their maximum (a count that went below zero wraps
    there); UInt16 counts above 2**15. UInt16 identifiers (ports, DNS IDs) use their whole range."""
    bad = []
    for name, dtype in df.schema.items():
        top = U_MAX.get(dtype.base_type())  # type: ignore[call-overload]
        if top is None or df.is_empty():
            continue
        if top <= 2**16 - 1:
            if name not in ("answers", "dns_messages"):
                continue
            top = 2**15 + 2**16
        mx = df[name].max()
        if mx is not None and int(mx) > top - 2**16:  # type: ignore[arg-type]
            bad.append(f"{where}.{name} = {mx}")
    return bad


@pytest.mark.slow
def test_no_unsigned_column_near_its_max(shared_fixtures: Path, cdata: Path) -> None:
    files = sorted((shared_fixtures / "pcaps").iterdir()) + sorted(cdata.glob("issue11_*.pcap"))
    files.append(cdata / "syn_retransmit.pcap")
    bad: list[str] = []
    for f in files:
        cap = kit.read_capture(f, cache=False, dns_ports=(53, 5353))
        for n in ("dns", "tcp", "packets", "meta"):
            bad += _near_max(getattr(cap, n), f"{f.name}:{n}")
        bad += _near_max(upstream.connection_summary(cap.tcp), f"{f.name}:connection_summary")
        bad += _near_max(
            attribution.attribute_slow_answers(cap), f"{f.name}:attribute_slow_answers"
        )
        bad += _near_max(upstream.outcomes(cap.dns), f"{f.name}:outcomes")
        s = summarize_file(f)["summary"]
        bad += [
            f"{f.name}:summary.{k} = {v}" for k, v in s.items() if isinstance(v, int) and v > 2**31
        ]
    assert bad == []


# ------------------------------------------------------------------------------------------
# agreement with tshark on every capture at hand (README "Agreement with tshark")


def _agreement_files(shared_fixtures: Path, cdata: Path) -> list[Path]:
    return sorted((shared_fixtures / "pcaps").iterdir()) + [
        cdata / n
        for n in ("issue11_tcp.pcap", "issue11_update_root.pcap", "syn_retransmit.pcap",
                  "pipelined_qdcount.pcap", "weird_qnames.pcap")
    ]  # fmt: skip


@pytest.mark.slow
def test_agreement_with_tshark(shared_fixtures: Path, cdata: Path, tshark: str) -> None:
    """Per file, against ``tshark -2``: DNS messages, query messages (transactions plus
    retransmissions), retransmissions, (query, response) frame pairs, latencies to the
    nanosecond (``dns.time``), ICMP-quoted and DoH messages."""
    fields = [
        "frame.number", "frame.protocols", "dns.flags.response", "dns.time", "dns.response_to",
        "dns.retransmit_request_in",
    ]  # fmt: skip
    total = collections.Counter()
    for path in _agreement_files(shared_fixtures, cdata):
        ref = collections.Counter()
        times: list[int] = []
        pairs: list[tuple[int, int]] = []
        for r in tshark_rows(tshark, path, fields):
            flags = r["dns.flags.response"]
            protos = r["frame.protocols"][0]
            ref["messages"] += len(flags)
            if ":icmp" in protos:
                ref["icmp"] += len(flags)
                continue
            if ":http" in protos:
                ref["http"] += len(flags)
                continue
            ref["queries"] += flags.count("0")
            ref["retx"] += len(r["dns.retransmit_request_in"])
            times += [round(float(t) * 1e9) for t in r["dns.time"]]
            frame = int(r["frame.number"][0])
            pairs += [(int(q), frame) for q in r["dns.response_to"]]
        cap = kit.read_capture(path, cache=False)
        d, m = cap.dns, cap.meta.row(0, named=True)
        retx = int(d["retransmissions"].sum())
        assert m["dns_messages"] == ref["messages"] == _identity(m), path.name
        assert d.height + retx == ref["queries"], path.name
        assert retx == ref["retx"], path.name
        assert (m["dns_in_icmp"], m["dns_over_http"]) == (ref["icmp"], ref["http"]), path.name
        answered = d.filter(pl.col("answered"))
        assert sorted(
            zip(answered["frame_query"], answered["frame_response"], strict=True)
        ) == sorted(pairs), path.name
        assert sorted(round(x * 1e9) for x in answered["latency_s"]) == sorted(times), path.name
        total.update(ref)
        total["files"] += 1
        total["pairs"] += len(pairs)
    print(dict(total))  # the README quotes these numbers (pytest -s)
    assert total["files"] == len(_agreement_files(shared_fixtures, cdata)) >= 19
