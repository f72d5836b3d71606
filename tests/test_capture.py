"""kit.read_capture: checked against tshark's own DNS/TCP analysis fields on real and crafted captures.

The reference values come from a separate tshark run in each test (two-pass ``-2`` for
``dns.response_in``), read with plain Python, or from the hand-written timeline of the crafted
captures (tests/data/capture/make_fixtures.py), never from the loader's own output.
"""

from __future__ import annotations

import collections
import gzip
import importlib.util
import json
import os
import shutil
import subprocess
import types
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

import kit
from kit.analyses import attribution
from kit.analyses import rates as krates
from kit.errors import InputFormatError, ToolNotFoundError
from kit.sources import _tshark
from kit.sources import capture as kc
from kit.sources.capture import _engine_tshark

AGG = "\x1f"
REAL = [
    "chrissanders_dns_lab.pcapng",
    "chrissanders_dns_tcp.pcapng",
    "chrissanders_nowebaccess1.pcapng",
    "dnscap_dns.pcap",
    "dnscap_dnso1tcp-midmiss.pcap",
    "dnscap_dnso1tcp.pcap",
    "dnscap_dnsotcp-many1pkt.pcap",
    "dnscap_sll2.pcap",
    "dnsjit_tcp-response-with-trailing-junk.pcap",
    "ndpi_KakaoTalk_chat.pcap",
    "ndpi_dns-google-nsid.pcapng",
    "ndpi_dns_fragmented.pcap",
    "suricata_dns-tcp-multirequest-buffer.pcap",
    "zeek_dns-edns-ecs.pcap",
]


def tshark_rows(
    tshark: str, path: Path, fields: list[str], *, two_pass: bool = False, flt: str = "dns"
) -> list[dict[str, list[str]]]:
    """Run tshark independently of the kit; one dict per frame, each field split into its occurrences."""
    argv = [
        tshark,
        "-n",
        "-r",
        str(path),
        "-Y",
        flt,
        "-T",
        "fields",
        "-E",
        "occurrence=a",
        "-E",
        f"aggregator={AGG}",
    ]
    if two_pass:
        argv.insert(1, "-2")
    for f in fields:
        argv += ["-e", f]
    out = subprocess.run(
        argv, capture_output=True, check=True, env={**os.environ, "LC_ALL": "C"}
    ).stdout
    rows = []
    for line in out.decode("utf-8").splitlines():
        cols = line.split("\t")
        rows.append(
            {f: [v for v in c.split(AGG) if v != ""] for f, c in zip(fields, cols, strict=True)}
        )
    return rows


@pytest.fixture(scope="module")
def cdata(data_dir: Path) -> Path:
    return data_dir / "capture"


@pytest.fixture(autouse=True)
def _no_default_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Never write into the developer's ~/.cache from tests."""
    monkeypatch.setenv("DNSKIT_CACHE", str(tmp_path / "cache"))


# ------------------------------------------------------------------------------------------
# (1) DNS transactions against tshark on the real fixtures


@pytest.mark.parametrize("name", REAL)
@pytest.mark.slow
def test_dns_matches_tshark_two_pass(name: str, shared_fixtures: Path, tshark: str) -> None:
    path = shared_fixtures / "pcaps" / name
    fields = [
        "frame.number", "frame.protocols", "dns.flags.response", "dns.time", "dns.response_to",
        "dns.response_in", "dns.retransmit_request_in", "dns.retransmit_response_in",
    ]  # fmt: skip
    ref = collections.Counter()
    times: list[int] = []
    pairs: list[tuple[int, int]] = []
    for r in tshark_rows(tshark, path, fields, two_pass=True):
        if any(":icmp" in p for p in r["frame.protocols"]):
            ref["icmp"] += len(r["dns.flags.response"])
            continue  # tshark does no transaction tracking inside ICMP errors either
        ref["queries"] += r["dns.flags.response"].count("0")
        ref["responses"] += r["dns.flags.response"].count("1")
        ref["retx_queries"] += len(r["dns.retransmit_request_in"])
        ref["retx_responses"] += len(r["dns.retransmit_response_in"])
        if r["dns.retransmit_request_in"] == []:
            ref["queries_with_response_in"] += (
                len(r["dns.response_in"]) if "0" in r["dns.flags.response"] else 0
            )
        times += [round(float(t) * 1e9) for t in r["dns.time"]]
        frame = int(r["frame.number"][0])
        pairs += [(int(q), frame) for q in r["dns.response_to"]]

    cap = kit.read_capture(path, cache=False)
    dns, meta = cap.dns, cap.meta.row(0, named=True)
    # every query message is a transaction or a retransmission of one
    assert dns.height + int(dns["retransmissions"].sum()) == ref["queries"]
    assert int(dns["retransmissions"].sum()) == ref["retx_queries"]
    # answered transactions and latencies equal tshark's dns.time, to the nanosecond
    mine = sorted(round(x * 1e9) for x in dns["latency_s"].drop_nulls())
    assert mine == sorted(times)
    assert int(dns["answered"].sum()) == ref["queries_with_response_in"] == len(times)
    # the same (query frame, response frame) pairs as tshark's "Request In"
    got = sorted(
        zip(*dns.filter(pl.col("answered")).select("frame_query", "frame_response"), strict=True)
    )
    assert got == sorted(pairs)
    # every DNS message is accounted for in meta
    assert meta["dns_in_icmp"] == ref["icmp"]
    assert (
        meta["dns_responses"] + meta["dns_duplicate_responses"] + meta["dns_orphan_responses"]
        == ref["responses"]
    )
    assert meta["dns_duplicate_responses"] == ref["retx_responses"]
    assert (
        meta["dns_messages"]
        == ref["queries"] + ref["responses"] + ref["icmp"] + meta["dns_unparsed"]
    )
    assert meta["dns_unparsed"] == 0


def test_known_fixture_facts(shared_fixtures: Path) -> None:
    """Facts from the fixture README/PROVENANCE (written from capinfos/tshark by the collector)."""
    p = shared_fixtures / "pcaps"
    cap = kit.read_capture(
        [p / "suricata_dns-tcp-multirequest-buffer.pcap", p / "chrissanders_nowebaccess1.pcapng",
         p / "chrissanders_dns_tcp.pcapng", p / "dnscap_sll2.pcap", p / "ndpi_KakaoTalk_chat.pcap"],
        cache=False,
    )  # fmt: skip
    by = {c: cap.dns.filter(pl.col("capture") == c) for c in cap.meta["capture"]}
    # 20 queries pipelined in ONE segment (same frame), 20 NXDOMAIN answers one per segment
    s = by["suricata_dns-tcp-multirequest-buffer"]
    assert s.height == 20 and s["frame_query"].n_unique() == 1
    assert s["qname"].to_list() == [f"{i}.google.com" for i in range(20)]
    assert set(s["rcode"]) == {"NXDOMAIN"} and set(s["transport"]) == {"tcp"}
    # one A query sent 7 times alternating two resolvers, never answered: per resolver, the
    # resends within 5 s of the first are retransmissions (tshark's dns.retransmission_timer)
    n = by["chrissanders_nowebaccess1"]
    assert n.height + int(n["retransmissions"].sum()) == 7
    assert not n["answered"].any() and set(n["dns_id"]) == {0x80D1}
    # UDP ANY answered with TC=1, retried over TCP with a new ID (0xb4c3)
    t = by["chrissanders_dns_tcp"].sort("ts")
    assert t["transport"].to_list() == ["udp", "tcp"]
    assert t["tc"].to_list() == [True, False] and t["dns_id"][1] == 0xB4C3
    # Linux cooked v2 link type, the odd name ',.' shown as tshark shows it
    assert cap.meta.filter(pl.col("capture") == "dnscap_sll2")["link_type"].item() == "linux-sll2"
    assert by["dnscap_sll2"]["rcode"].to_list() == ["NXDOMAIN"]
    # 0xb93a sent to two resolvers: two transactions; the late answer bounced in an ICMP error
    k = by["ndpi_KakaoTalk_chat"]
    assert k.filter(pl.col("dns_id") == 0xB93A)["server_ip"].n_unique() == 2
    km = cap.meta.filter(pl.col("capture") == "ndpi_KakaoTalk_chat").row(0, named=True)
    assert km["dns_in_icmp"] == 1 and km["link_type"] == "linux-sll" and km["packets"] == 347
    assert any("ICMP" in x for x in km["notes"])
    # packets: every packet of the file is kept or counted as skipped
    for m in cap.meta.iter_rows(named=True):
        assert m["packets_kept"] + m["packets_skipped"] == m["packets"]


def test_ipv6_fragments_and_transport(shared_fixtures: Path, tshark: str) -> None:
    path = shared_fixtures / "pcaps" / "ndpi_dns_fragmented.pcap"
    cap = kit.read_capture(path, cache=False)
    ref = tshark_rows(
        tshark,
        path,
        ["frame.number", "ipv6.src", "ip.src", "tcp.stream"],
        flt="dns.flags.response == 0",
    )
    want = {int(r["frame.number"][0]): (r["ipv6.src"] or r["ip.src"])[-1] for r in ref}
    got = dict(zip(cap.dns["frame_query"], cap.dns["client_ip"], strict=True))
    # the retransmitted 0xc2a0 (5 s later, so a new transaction) keeps both frames
    assert {f: got.get(f, want[f]) for f in want} == want
    assert set(got) <= set(want)
    assert {":" in ip for ip in cap.dns["client_ip"]} == {True, False}
    assert set(cap.dns["transport"]) == {"udp", "tcp"}
    # non-last IPv4/IPv6 fragments are counted as packets ("ipfrag"), not lost
    nfrag = len(
        tshark_rows(
            tshark, path, ["frame.number"], flt="(ip.flags.mf == 1 or ipv6.fraghdr) and not dns"
        )
    )
    assert cap.packets.filter(pl.col("transport") == "ipfrag").height == nfrag > 0


# ------------------------------------------------------------------------------------------
# (2) TCP connections, packets, rates, meta on the crafted NodeLocal capture


def test_tcp_connections_vs_tshark(cdata: Path, tshark: str) -> None:
    path = cdata / "syn_retransmit.pcap"
    cap = kit.read_capture(path, cache=False)
    ref = tshark_rows(
        tshark,
        path,
        ["tcp.stream", "tcp.analysis.retransmission"],
        flt="tcp.flags.syn == 1 && tcp.flags.ack == 0",
    )
    retx = collections.Counter(
        int(r["tcp.stream"][0]) for r in ref if r["tcp.analysis.retransmission"]
    )
    tcp = cap.tcp.sort("stream")
    assert {s: n for s, n in zip(tcp["stream"], tcp["syn_retransmits"], strict=True) if n} == dict(
        retx
    )
    # by hand (make_fixtures.py): stream 0 SYNs at 0.0005, 1.0005, 3.0005; SYN/ACK 3.001
    s0 = tcp.row(0, named=True)
    assert (s0["client_ip"], s0["client_port"], s0["server_ip"], s0["server_port"]) == (
        "10.0.0.5",
        50001,
        "169.254.169.253",
        53,
    )
    assert s0["syn_retransmits"] == 2 and s0["handshake_s"] == pytest.approx(3.0005, abs=1e-9)
    assert (
        s0["established"]
        and s0["end_reason"] == "fin"
        and s0["dns_messages"] == 2
        and s0["packets"] == 10
    )
    s1 = tcp.row(1, named=True)
    assert s1["syn_retransmits"] == 0 and s1["handshake_s"] == pytest.approx(0.0003, abs=1e-9)


def test_crafted_dns_by_hand(cdata: Path) -> None:
    cap = kit.read_capture(cdata / "syn_retransmit.pcap", cache=False)
    d = cap.dns
    assert d.schema == kc.DNS_SCHEMA
    row = {r["qname"]: r for r in d.iter_rows(named=True)}
    assert row["api.example.com"]["latency_s"] == pytest.approx(3.0035, abs=1e-9)
    assert row["API.example.com"]["latency_s"] == pytest.approx(
        0.0018, abs=1e-9
    )  # 3.0012 -> 3.003, case kept
    assert row["fast.example.com"]["qtype"] == "AAAA" and row["fast.example.com"][
        "latency_s"
    ] == pytest.approx(150e-6, abs=1e-9)
    # censor window = max latency 3.0035 + 0.2 s; capture ends at 3.5 s:
    # lost.example.org sent at 0.1 s (3.4 s before the end) is a failure, late.example.com a censored one
    assert (row["lost.example.org"]["answered"], row["lost.example.org"]["censored"]) == (
        False,
        False,
    )
    assert (row["late.example.com"]["answered"], row["late.example.com"]["censored"]) == (
        False,
        True,
    )
    assert cap.meta["censor_window_s"].item() == pytest.approx(3.2035)
    other = d.filter(pl.col("qname") == "other.example.net").sort("ts")
    assert (
        other["transport"].to_list() == ["udp", "tcp"]
        and other["rcode"].to_list() == ["NOERROR"] * 2
    )
    assert other["dns_id"].to_list() == [0x5555, 0x6666]
    assert d.filter(pl.col("transport") == "tcp")["tcp_stream"].sort().to_list() == [0, 1]
    # packets: 26 frames, 12 DNS messages (7 queries + 5 answers)
    assert cap.packets.height == 26 and int(cap.packets["dns_messages"].sum()) == 12
    assert cap.packets.filter(pl.col("is_retransmission"))["frame"].to_list() == [16, 17]


def test_attribution_explains_slow_answer(cdata: Path) -> None:
    cap = kit.read_capture(cdata / "syn_retransmit.pcap", cache=False)
    att = attribution.attribute_slow_answers(cap, slow_s=1.0)
    assert att.schema == attribution.ATTRIBUTION_SCHEMA
    # slow client answers: api.example.com (3.0035 s) and the unanswered, uncensored lost.example.org.
    # The upstream TCP query (API.example.com, 1.8 ms itself) is its upstream leg, not a client row.
    assert sorted(att["qname"]) == ["api.example.com", "lost.example.org"]
    a = att.filter(pl.col("qname") == "api.example.com").row(0, named=True)
    assert (a["up_dns_id"], a["up_transport"], a["tcp_stream"], a["syn_retransmits"]) == (
        0x2222,
        "tcp",
        0,
        2,
    )
    assert a["up_wait_s"] == pytest.approx(3.003 - 0.0005, abs=1e-9)  # first SYN -> upstream answer
    assert a["handshake_s"] == pytest.approx(3.0005, abs=1e-9) and a["explained"]
    lost = att.filter(pl.col("qname") == "lost.example.org").row(0, named=True)
    assert lost["up_ts"] is None and lost["explained"] is False


def test_rates_and_quantiles(cdata: Path) -> None:
    cap = kit.read_capture(cdata / "syn_retransmit.pcap", cache=False)
    rates = krates.packet_rates(cap.packets, every="1s", by=["dst_ip"], limit_pps=5)
    up = rates.filter(pl.col("dst_ip") == "169.254.169.253")
    # by hand: to the upstream, second 0: SYN(0.0005) + 5 packets of stream 1 = 6; second 1: the
    # retransmitted SYN; second 3: SYN, ACK, query, FIN/ACK, ACK = 5
    assert up["packets"].to_list() == [6, 1, 5]
    assert up["above_limit"].to_list() == [True, False, False]
    summ = krates.rate_summary(rates, by=["dst_ip"], limit_pps=5).filter(
        pl.col("dst_ip") == "169.254.169.253"
    )
    assert summ["share_above_limit"].item() == pytest.approx(1 / 3) and summ["peak_pps"].item() == 6
    assert int(rates["packets"].sum()) == cap.packets.height
    q = kc.latency_by(cap.dns, by=["transport"])
    assert q.filter(pl.col("transport") == "tcp")["max_s"].item() == pytest.approx(0.002, abs=1e-9)


# ------------------------------------------------------------------------------------------
# hostile names and bad input


def test_weird_qnames_as_tshark_prints_them(cdata: Path, tshark: str) -> None:
    path = cdata / "weird_qnames.pcap"
    cap = kit.read_capture(path, cache=False)
    ref = tshark_rows(tshark, path, ["dns.qry.name"])
    assert cap.dns.height == 1 and cap.dns["qname"][0] == ref[0]["dns.qry.name"][0]
    # labels a|b, t<TAB>ab, n<LF>l, x<0x1f>y, ff fe, q"<s> , d.ot, \\bs, UpPer, com: tshark escapes
    # TAB/LF/0x1f, replaces invalid UTF-8 with U+FFFD and keeps '.', '|', quotes, '<', spaces as-is
    assert cap.dns["qname"][0] == 'a|b.t\\tab.n\\nl.x\\037y.\ufffd\ufffd.q"<s> .d.ot.\\bs.UpPer.com'
    assert cap.dns["qtype"][0] == "TXT" and cap.dns["rcode"][0] == "NXDOMAIN"


def test_empty_file(cdata: Path) -> None:
    with pytest.raises(
        InputFormatError, match=r"empty\.pcap \(byte offset 0\): empty file, not a packet capture"
    ):
        kit.read_capture(cdata / "empty.pcap", cache=False)


def test_not_a_capture(cdata: Path) -> None:
    with pytest.raises(
        InputFormatError,
        match=r"not_a_capture\.pcap \(byte offset 0\): not a packet capture tshark can read",
    ):
        kit.read_capture(cdata / "not_a_capture.pcap", cache=False)


def test_header_only_is_empty_not_error(cdata: Path) -> None:
    cap = kit.read_capture(cdata / "header_only.pcap", cache=False)
    assert cap.dns.height == cap.tcp.height == cap.packets.height == 0
    assert cap.dns.schema == kc.DNS_SCHEMA and cap.tcp.schema == kc.TCP_SCHEMA
    assert cap.meta["packets"].item() == 0 and not cap.meta["truncated"].item()


def test_truncated_final_record(cdata: Path) -> None:
    cap = kit.read_capture(cdata / "truncated_tail.pcap", cache=False)
    m = cap.meta.row(0, named=True)
    assert m["truncated"] and any("middle of a packet" in n for n in m["notes"])
    # the cut record is the last one (late.example.com query): 25 packets, 6 transactions
    assert cap.packets.height == 25 and cap.dns.height == 6
    assert "late.example.com" not in cap.dns["qname"].to_list()


def test_gzip_capture_equals_plain(cdata: Path) -> None:
    plain = kit.read_capture(cdata / "syn_retransmit.pcap", cache=False)
    gz = kit.read_capture(cdata / "syn_retransmit.pcap.gz", cache=False)
    assert (
        gzip.decompress((cdata / "syn_retransmit.pcap.gz").read_bytes())
        == (cdata / "syn_retransmit.pcap").read_bytes()
    )
    assert gz.meta["gzipped"].item() and not plain.meta["gzipped"].item()
    assert_frame_equal(gz.dns, plain.dns)
    assert_frame_equal(gz.tcp, plain.tcp)


def test_unknown_link_type(cdata: Path) -> None:
    cap = kit.read_capture(cdata / "unknown_linktype.pcap", cache=False)
    m = cap.meta.row(0, named=True)
    assert m["packets"] == 2 and m["packets_kept"] == 0 and m["packets_skipped"] == 2
    assert m["link_type"] == "user0" and any("no DNS-related packet" in n for n in m["notes"])


def test_missing_file(cdata: Path) -> None:
    with pytest.raises(FileNotFoundError):
        kit.read_capture(cdata / "nope.pcap")


# ------------------------------------------------------------------------------------------
# (3) cache, several files, progress, display filter


def test_cache_roundtrip_and_key(cdata: Path, tmp_path: Path) -> None:
    src = tmp_path / "node-a.pcap"
    shutil.copy(cdata / "syn_retransmit.pcap", src)
    cdir = tmp_path / "c"
    first = kit.read_capture(src, cache=cdir)
    second = kit.read_capture(src, cache=cdir)
    assert not first.meta["from_cache"].item() and second.meta["from_cache"].item()
    for n in ("dns", "tcp", "packets"):
        assert_frame_equal(getattr(first, n), getattr(second, n))
    assert len(list((cdir / "capture").iterdir())) == 1
    # different content (one byte of a timestamp) -> different key, no stale hit
    data = bytearray(src.read_bytes())
    data[24 + 4] ^= 1
    src.write_bytes(bytes(data))
    third = kit.read_capture(src, cache=cdir)
    assert not third.meta["from_cache"].item() and len(list((cdir / "capture").iterdir())) == 2
    # options are part of the key
    fourth = kit.read_capture(src, cache=cdir, display_filter="udp")
    assert not fourth.meta["from_cache"].item() and fourth.tcp.height == 0


def test_default_cache_dir_outside_repo(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, repo_root: Path
) -> None:
    monkeypatch.setenv("DNSKIT_CACHE", str(tmp_path / "x"))
    assert kc.cache_dir() == tmp_path / "x"
    monkeypatch.delenv("DNSKIT_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert kc.cache_dir() == tmp_path / "xdg" / "dnskit"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert kc.cache_dir() == Path.home() / ".cache" / "dnskit"
    assert repo_root not in kc.cache_dir().parents


def test_several_files_in_parallel(cdata: Path, shared_fixtures: Path) -> None:
    files = [cdata / "syn_retransmit.pcap", shared_fixtures / "pcaps" / "dnscap_dns.pcap"]
    both = kit.read_capture(files, cache=False, workers=2)
    one = [kit.read_capture(f, cache=False) for f in files]
    assert both.meta["capture"].to_list() == ["syn_retransmit", "dnscap_dns"]
    assert_frame_equal(both.dns.filter(pl.col("capture") == "dnscap_dns"), one[1].dns)
    assert both.dns.height == sum(c.dns.height for c in one)


def test_display_filter_counts_skipped(cdata: Path) -> None:
    cap = kit.read_capture(cdata / "syn_retransmit.pcap", cache=False, display_filter="udp")
    m = cap.meta.row(0, named=True)
    # by hand (make_fixtures.py timeline): the UDP packets are frames 1, 3, 4, 5, 6, 15, 25, 26
    assert cap.packets["frame"].to_list() == [1, 3, 4, 5, 6, 15, 25, 26]
    assert m["packets_kept"] == 8 and m["packets_skipped"] == 26 - 8
    assert set(cap.packets["transport"]) == {"udp"}


def test_progress_bar(cdata: Path, capsys: pytest.CaptureFixture[str]) -> None:
    kit.read_capture(cdata / "syn_retransmit.pcap", cache=False, progress=True)
    err = capsys.readouterr().err
    assert "read_capture" in err and "26" in err and "pkt" in err
    kit.read_capture(cdata / "syn_retransmit.pcap", cache=False, progress=False)
    assert capsys.readouterr().err == ""


# ------------------------------------------------------------------------------------------
# tshark discovery, schema documentation


def test_tshark_not_found(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("DNSKIT_TSHARK", raising=False)
    monkeypatch.setattr(_tshark, "_STANDARD_DIRS", ())
    monkeypatch.setattr(_tshark, "_pyshark_config_path", lambda: None)
    with pytest.raises(ToolNotFoundError, match="apt-get install tshark") as ei:
        _tshark.find_tshark()
    assert ei.value.tool == "tshark" and any(str(tmp_path) in s for s in ei.value.searched)


def test_tshark_explicit_path(tshark: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setenv("DNSKIT_TSHARK", tshark)
    assert _tshark.find_tshark() == tshark
    assert _tshark.tshark_version(tshark)[0].isdigit()


@pytest.mark.parametrize("schema", ["DNS_SCHEMA", "TCP_SCHEMA", "PACKETS_SCHEMA", "META_SCHEMA"])
def test_every_column_documented(schema: str) -> None:
    doc = kc.read_capture.__doc__ or ""
    for col in getattr(kc, schema):
        assert f"``{col}``" in doc, f"{schema}.{col} missing from read_capture's docstring"
    for col in attribution.ATTRIBUTION_SCHEMA:
        assert col.startswith("up_") or f"``{col}``" in (
            attribution.attribute_slow_answers.__doc__ or ""
        )


def _bench_generator() -> types.ModuleType:
    spec = importlib.util.spec_from_file_location(
        "bench_capture", Path(__file__).resolve().parent.parent / "bench" / "bench_capture.py"
    )
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_generated_node_capture_ground_truth(tmp_path: Path, tshark: str) -> None:
    """The benchmark's NodeLocal generator, small: its counts are known by construction."""
    path = tmp_path / "node.pcap"
    st = _bench_generator().generate(path, 6000, seed=7)
    cap = kit.read_capture(path, cache=False)
    m = cap.meta.row(0, named=True)
    assert m["packets"] == st["packets"] == cap.packets.height
    # one row per client query plus one per upstream (TCP) query
    assert cap.dns.height == st["queries"] + st["tcp_conns"]
    assert cap.tcp.height == st["tcp_conns"]
    assert int(cap.tcp["syn_retransmits"].sum()) == st["syn_retx"]
    assert cap.tcp.filter(pl.col("syn_retransmits") > 0).height == st["conns_with_retx"]
    ref = tshark_rows(
        tshark,
        path,
        ["tcp.analysis.retransmission"],
        flt="tcp.flags.syn == 1 && tcp.flags.ack == 0",
    )
    assert sum(1 for r in ref if r["tcp.analysis.retransmission"]) == st["syn_retx"]
    assert int((~cap.dns["answered"]).sum()) == st["unanswered"]
    # every answered client answer slower than 1 s waited on an upstream connection whose SYN was
    # retransmitted (hits take ~150 µs, misses without retransmission < 4 ms): one per such connection
    att = attribution.attribute_slow_answers(cap, slow_s=1.0)
    answered = att.filter(pl.col("answered"))
    assert answered.height == st["conns_with_retx"] > 0
    assert answered["explained"].all() and (answered["syn_retransmits"] >= 1).all()
    assert answered["tcp_stream"].n_unique() == answered.height
    # unanswered client queries never went upstream: listed, not explained
    assert not att.filter(~pl.col("answered"))["explained"].any()


@pytest.mark.parametrize(
    ("source", "chunk", "overlap"),
    [
        ("generated", 700, 0),  # boundaries cut through connections with retransmitted SYNs
        ("generated", 700, 40),
        ("zeek_dns-edns-ecs.pcap", 20, 2),  # IPv4/IPv6, fragments, TCP without handshakes
        ("ndpi_KakaoTalk_chat.pcap", 50, 10),  # non-DNS TCP streams interleaved: numbering
        ("ndpi_dns_fragmented.pcap", 10, 3),
        ("ndpi_dns-google-nsid.pcapng", 4, 1),  # pcapng, 3 interfaces, ns and µs resolution
        ("syn_retransmit.pcap.gz", 8, 2),  # gzip; ranges cut between a SYN and its retransmissions
        ("issue11_tcp.pcap", 5, 2),  # DoH, DNS on 5353, port 53<->53, HTTP in fragmented GRE
        ("issue11_update_root.pcap", 3, 1),  # UPDATE, pipelined UPDATE + QUERY, root, FORMERR
    ],
)
@pytest.mark.slow
def test_chunked_equals_one_pass(
    source: str,
    chunk: int,
    overlap: int,
    shared_fixtures: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Packet ranges dissected in parallel and stitched give exactly the one-pass frames,
    including tshark's tcp.stream numbers (which count non-DNS connections too)."""
    if source == "generated":
        path = tmp_path / "node.pcap"
        _bench_generator().generate(path, 4000, seed=3)
    elif source.startswith(("syn_retransmit", "issue11_")):
        path = Path(__file__).resolve().parent / "data" / "capture" / source
    else:
        path = shared_fixtures / "pcaps" / source
    monkeypatch.setattr(_engine_tshark, "CHUNK_OVERLAP_PACKETS", overlap)
    one = kit.read_capture(path, cache=False, chunk_packets=0, engine="tshark")
    calls: list[int] = []
    real = _engine_tshark._chunked

    def spy(*args: object, **kwargs: object) -> object:
        calls.append(1)
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(_engine_tshark, "_chunked", spy)
    many = kit.read_capture(path, cache=False, chunk_packets=chunk, workers=2, engine="tshark")
    assert calls == [1]  # the ranges path really ran
    for name in ("dns", "tcp", "packets"):
        assert_frame_equal(getattr(one, name), getattr(many, name))
    assert_frame_equal(one.meta.drop("notes"), many.meta.drop("notes"))


@pytest.mark.slow
def test_chunked_mid_stream_resync_is_reported(
    shared_fixtures: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """dnscap_dnso1tcp reuses one 4-tuple for 41 connections (tshark: one stream) with 2-byte
    length prefixes in their own segments: a range starting mid-stream cannot find message
    boundaries. The loss must be reported in meta, not silent."""
    monkeypatch.setattr(_engine_tshark, "CHUNK_OVERLAP_PACKETS", 5)
    path = shared_fixtures / "pcaps" / "dnscap_dnso1tcp.pcap"
    one = kit.read_capture(path, cache=False, chunk_packets=0, engine="tshark")
    many = kit.read_capture(path, cache=False, chunk_packets=30, engine="tshark")
    assert one.dns.height == 41 and many.dns.height < 41
    notes = many.meta["notes"].item().to_list()
    assert any("already open where packet range 31-" in n and "chunk_packets=0" in n for n in notes)


def test_lab_sample_capture(repo_root: Path, tshark: str) -> None:
    """The lab's committed incident run (data/sample): node1 forwarded misses over TCP while the
    lab's nftables dropped SYNs at random; node2 (control) forwarded over UDP all along."""
    src = repo_root / "data" / "sample" / "captures"
    if not (src / "node1.pcap").exists():
        pytest.skip("data/sample/captures not present")
    cap = kit.read_capture(src, cache=False)
    assert cap.meta["capture"].to_list() == ["node1", "node2"]
    # syn_retransmits per connection = tshark's tcp.analysis.retransmission on SYNs, per stream
    ref = tshark_rows(
        tshark,
        src / "node1.pcap",
        ["tcp.stream", "tcp.analysis.retransmission"],
        flt="tcp.flags.syn == 1 && tcp.flags.ack == 0",
    )
    want = collections.Counter(
        int(r["tcp.stream"][0]) for r in ref if r["tcp.analysis.retransmission"]
    )
    n1 = cap.tcp.filter(pl.col("capture") == "node1")
    assert {s: n for s, n in zip(n1["stream"], n1["syn_retransmits"], strict=True) if n} == dict(
        want
    )
    assert sum(want.values()) > 100
    assert cap.tcp.filter(pl.col("capture") == "node2").height == 0  # control node: no TCP upstream
    # unbound's own counters (run.json): 3000 client queries per node, node1 935 tcpout + 650 udpout
    stats = json.loads((repo_root / "data" / "sample" / "run.json").read_text())["counts"][
        "unbound_stats"
    ]
    for node in ("node1", "node2"):
        d = cap.dns.filter((pl.col("capture") == node) & (pl.col("server_ip") == "169.254.20.10"))
        assert d.height == stats[node]["total.num.queries"]
    up1 = cap.dns.filter((pl.col("capture") == "node1") & (pl.col("server_ip") != "169.254.20.10"))
    assert up1.filter(pl.col("transport") == "udp").height == stats["node1"]["num.query.udpout"]
    # every TCP connection that carried a query: one upstream TCP query each; the rest never connected
    assert (
        up1.filter(pl.col("transport") == "tcp").height
        == n1.filter(pl.col("dns_messages") > 0).height
    )
    # the attribution explains every slow client answer by an upstream connection with SYN retransmissions
    att = attribution.attribute_slow_answers(cap, slow_s=1.0)
    slow = cap.dns.filter((pl.col("server_ip") == "169.254.20.10") & (pl.col("latency_s") >= 1.0))
    assert att.filter(pl.col("answered")).height == slow.height > 100
    assert set(att["capture"]) == {"node1"}
    assert att["explained"].all() and (att["syn_retransmits"] >= 1).all()
    assert set(att["up_match"]) == {"dns", "failed_connection"}
    failed = att.filter(pl.col("up_match") == "failed_connection")
    assert (failed["tcp_stream"].is_in(n1.filter(~pl.col("established"))["stream"].implode())).all()


def test_invalid_display_filter(cdata: Path) -> None:
    with pytest.raises(
        ValueError,
        match=r"display_filter='dns and \(' is not a valid tshark filter: Unexpected end of filter expression",
    ):
        kit.read_capture(cdata / "syn_retransmit.pcap", cache=False, display_filter="dns and (")


def test_damaged_cache_entry_is_rebuilt(cdata: Path, tmp_path: Path) -> None:
    cdir = tmp_path / "c"
    first = kit.read_capture(cdata / "syn_retransmit.pcap", cache=cdir)
    (entry,) = (cdir / "capture").iterdir()
    (entry / "dns.parquet").write_bytes(b"not parquet")
    again = kit.read_capture(cdata / "syn_retransmit.pcap", cache=cdir)
    assert not again.meta["from_cache"].item()
    assert_frame_equal(first.dns, again.dns)
    third = kit.read_capture(cdata / "syn_retransmit.pcap", cache=cdir)
    assert third.meta["from_cache"].item()
    assert_frame_equal(first.dns, third.dns)


def test_packet_lookup_error(cdata: Path) -> None:
    with pytest.raises(LookupError, match="no frame 999"):
        kc.packet(cdata / "syn_retransmit.pcap", 999)


def test_pipelined_questions_follow_qdcount(cdata: Path, tshark: str) -> None:
    """One segment, three messages with QDCOUNT 2, 0, 1: tshark prints the names as one list
    (a.example, b.example, c.example); each message gets its own first question."""
    path = cdata / "pipelined_qdcount.pcap"
    ref = tshark_rows(tshark, path, ["dns.id", "dns.count.queries", "dns.qry.name"])
    assert ref[0]["dns.count.queries"] == ["2", "0", "1"]
    assert ref[0]["dns.qry.name"] == ["a.example", "b.example", "c.example"]
    d = kit.read_capture(path, cache=False).dns.sort("dns_id")
    assert d["dns_id"].to_list() == [1, 2, 3]
    assert d["qname"].to_list() == ["a.example", None, "c.example"]
    assert d["qtype"].to_list() == ["A", None, "A"]
    assert d["frame_query"].to_list() == [1, 1, 1] and set(d["transport"]) == {"tcp"}
