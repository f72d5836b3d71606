"""kit.ledger: every client query joined across its hops, on the lab's real runs (issue 18).

- per-hop latencies are the capture's own pairings (healthy, forced-tcp-syn-drops);
- the breakdown sums to the client latency; dnstap and the capture see the same client latency;
- each state from real traffic: cache_hit/forwarded (healthy), unanswered (upstream-unreachable),
  syn_wait (forced-tcp-syn-drops, SYN counts from kit.analyses.tcp), tc_fallback
  (truncation-tcp-fallback), retried/after_give_up (data/ledger: glibc stubs with timeout:2,
  checked against the stub's own record of each lookup);
- 0x20: a real capture with its upstream names' case changed joins the same;
- hostile names pass through; bad arguments are KitErrors that say what to pass;
- CoreDNS log lines join the captured client transaction.
"""

from __future__ import annotations

import datetime as dt
import struct
from functools import cache
from pathlib import Path

import polars as pl
import pytest

import kit
from kit.analyses.ledger import HOPS_SCHEMA, LEDGER_SCHEMA, Ledger, LedgerArgumentError
from kit.analyses.tcp import syn_packets

ROOT = Path(__file__).resolve().parent.parent
SCN = ROOT / "data" / "scenarios"
STUBS = ROOT / "data" / "ledger" / "forced-tcp-stub-clients"


@cache
def _cap(path: Path) -> kit.Capture:
    return kit.read_capture(path, progress=False)


@cache
def _ledger(path: Path, **kw: float) -> Ledger:
    led = kit.ledger(_cap(path), **kw)
    assert led.queries.schema == LEDGER_SCHEMA and led.hops.schema == HOPS_SCHEMA
    return led


def _hop_transactions(led: Ledger, cap: kit.Capture) -> pl.DataFrame:
    """Each client/upstream hop row that is a DNS transaction, joined to the capture's row of it."""
    keys = ["capture", "client_ip", "server_ip", "dns_id", "ts"]
    hops = led.hops.filter(pl.col("dns_id").is_not_null()).rename({"vantage": "capture"})
    got = hops.join(cap.dns, on=keys, how="left", suffix="_cap")
    assert got.height == hops.height  # one capture transaction per hop, never two
    return got


@pytest.mark.parametrize("scenario", ["healthy", "forced-tcp-syn-drops"])
def test_hop_latencies_are_the_capture_pairings(scenario: str) -> None:
    path = SCN / scenario / "captures"
    cap, led = _cap(path), _ledger(path)
    got = _hop_transactions(led, cap)
    assert got["frame_query"].null_count() == 0  # every hop is a transaction of the capture
    for col in ("latency_s", "ts_response", "transport", "tcp_stream"):
        a, b = got[col], got[f"{col}_cap"]
        assert ((a == b) | (a.is_null() & b.is_null())).all(), col
    # both hops are there, and every client row of the capture is a ledger query
    assert set(got["hop"]) == {"client", "upstream"}
    n_client = cap.dns.filter(pl.col("server_ip") == "169.254.20.10").height
    assert led.queries.height == n_client == led.hops.filter(pl.col("hop") == "client").height
    if scenario == "forced-tcp-syn-drops":
        assert (
            got.filter((pl.col("hop") == "upstream") & (pl.col("transport") == "tcp")).height > 200
        )


SUM_RUNS = [
    SCN / "healthy" / "captures",
    SCN / "forced-tcp-syn-drops" / "captures",
    SCN / "truncation-tcp-fallback" / "captures",
    SCN / "upstream-unreachable" / "captures",
    STUBS / "captures",
]


@pytest.mark.parametrize("path", SUM_RUNS, ids=lambda p: p.parent.name)
def test_breakdown_sums_to_the_client_latency(path: Path) -> None:
    q = _ledger(path).queries
    fwd = q.filter(
        pl.col("answered") & pl.col("forwarded") & pl.col("up_ts_response").is_not_null()
    )
    parts = pl.sum_horizontal("before_up_s", "connect_s", "up_s", "after_up_s")
    err = fwd.select((parts - pl.col("latency_s")).abs().max()).item()
    assert fwd.height > 100 and err <= 0.001
    hits = q.filter(pl.col("cache_hit"))
    assert hits.height > 50 and (hits["cache_s"] == hits["latency_s"]).all()
    parts4 = ["before_up_s", "connect_s", "up_s", "after_up_s"]
    assert all(hits[c].null_count() == hits.height for c in parts4)


def _client_latency_agreement(base: Path) -> pl.DataFrame:
    """Capture ledger and dnstap ledger of one run, the same client queries side by side."""
    a = kit.ledger(_cap(base / "captures")).queries
    b = kit.ledger(dnstap=kit.read_dnstap(base / "dnstap")).queries
    keys = ["vantage", "client_ip", "client_port", "dns_id", "qname", "qtype"]
    # glibc re-asks with the same port and ID: the nearest in time is the same query
    return (
        a.sort("ts")
        .join_asof(
            b.sort("ts").select(*keys, "ts", "latency_s", "answered", "state"),
            on="ts",
            by=keys,
            strategy="nearest",
            tolerance=dt.timedelta(seconds=1),
            suffix="_tap",
            check_sortedness=False,
        )
        .filter(pl.col("answered") & pl.col("answered_tap"))
        .with_columns(_d=(pl.col("latency_s") - pl.col("latency_s_tap")).abs())
    )


def test_dnstap_and_capture_see_the_same_client_latency() -> None:
    """healthy: 94.6 % of the 1,200 answered client queries within 1 ms, the worst 19.1 ms.

    unbound stamps CLIENT_QUERY when it processes the query (kit.sources.dnstap: up to 19 ms
    after the packet on a loaded host), so a bound of 25 ms on the worst and 90 % within 1 ms."""
    j = _client_latency_agreement(SCN / "healthy")
    assert j.height == 1200
    assert j.select((pl.col("_d") <= 0.001).mean()).item() >= 0.90
    assert j["_d"].max() <= 0.025


def test_dnstap_and_capture_agree_on_the_slow_run() -> None:
    """data/ledger (SYN drops, slow stub lookups): measured, all 215 queries of >= 1 s agree
    within 0.91 ms (97 % of all 1,857 within 1 ms, the worst 41 ms on a fast one); asserted:
    >= 95 % of the slow within 1 ms, none beyond 2 ms; the dnstap ledger's breakdown sums too."""
    j = _client_latency_agreement(STUBS)
    slow = j.filter(pl.col("latency_s") >= 1.0)
    assert slow.height > 200
    assert slow.select((pl.col("_d") <= 0.001).mean()).item() >= 0.95
    assert slow["_d"].max() <= 0.002
    tap = kit.ledger(dnstap=kit.read_dnstap(STUBS / "dnstap")).queries
    fwd = tap.filter(
        pl.col("answered") & pl.col("forwarded") & pl.col("up_ts_response").is_not_null()
    )
    parts = pl.sum_horizontal("before_up_s", "connect_s", "up_s", "after_up_s")
    assert fwd.height > 500
    assert fwd.select((parts - pl.col("latency_s")).abs().max()).item() <= 0.001


def test_cache_hit_and_forwarded_on_healthy() -> None:
    path = SCN / "healthy" / "captures"
    cap, led = _cap(path), _ledger(path)
    q = led.queries
    assert set(q["state"]) == {"cache_hit", "forwarded"}
    # a forwarded query has an upstream transaction of its name (any case) inside its lifetime;
    # a cache hit has none
    up = cap.dns.filter(pl.col("server_ip") == "169.254.169.253").select(
        "capture", "qtype", _k=pl.col("qname").str.to_lowercase(), _ts=pl.col("ts")
    )
    inside = (
        q.select(
            "query_id",
            "forwarded",
            "ts",
            "ts_response",
            capture="vantage",
            qtype="qtype",
            _k=pl.col("qname").str.to_lowercase(),
        )
        .join(up, on=["capture", "_k", "qtype"], how="left")
        .group_by("query_id", "forwarded")
        .agg(n=((pl.col("_ts") >= pl.col("ts")) & (pl.col("_ts") <= pl.col("ts_response"))).sum())
    )
    assert (inside["forwarded"] == (inside["n"] > 0)).all()
    assert q.filter("forwarded").height == 666 and q.filter("cache_hit").height == 534


def test_unanswered_on_upstream_unreachable() -> None:
    path = SCN / "upstream-unreachable" / "captures"
    cap, q = _cap(path), _ledger(path).queries
    un = q.filter("unanswered")
    assert un.height >= 1 and (un["state"] == "unanswered").all()
    # the capture has exactly these client queries without an answer
    want = cap.dns.filter((pl.col("server_ip") == "169.254.20.10") & ~pl.col("answered"))
    assert sorted(un["dns_id"]) == sorted(want["dns_id"])
    # the cache retried upstream: the slow answers (SERVFAIL after the tries) count several
    slow = q.filter(pl.col("latency_s") > 5)
    assert slow["up_attempts"].max() >= 3 and slow["up_ts_response"].null_count() == slow.height
    assert (un["up_attempts"] >= 1).all()


def test_syn_wait_and_counts_per_connection() -> None:
    path = SCN / "forced-tcp-syn-drops" / "captures"
    cap, led = _cap(path), _ledger(path)
    syn = (
        syn_packets(cap.packets)
        .group_by("capture", "tcp_stream")
        .agg(_n=pl.col("is_retransmission").fill_null(False).sum().cast(pl.UInt32))
    )
    up = led.hops.filter((pl.col("hop") == "upstream") & pl.col("tcp_stream").is_not_null())
    got = up.join(syn, left_on=["vantage", "tcp_stream"], right_on=["capture", "tcp_stream"])
    assert got.height == up.height > 200
    assert (got["syn_retransmits"] == got["_n"]).all()
    q = led.queries
    sw = q.filter("syn_wait")
    assert sw.height > 100 and (sw["syn_retransmits"] > 0).all()
    # a query's syn_retransmits is its connections' sum; the wait is in connect_s
    per = got.unique(["query_id", "tcp_stream"]).group_by("query_id").agg(_s=pl.col("_n").sum())
    both = sw.join(per, on="query_id")
    assert (both["syn_retransmits"] == both["_s"]).all()
    answered = sw.filter(pl.col("up_ts").is_not_null() & pl.col("answered"))
    assert (answered["connect_s"] >= 0.9).all()  # the first SYN retransmission is at 1 s


def test_tc_fallback() -> None:
    path = SCN / "truncation-tcp-fallback" / "captures"
    led = _ledger(path)
    tc = led.queries.filter("tc_fallback")
    assert tc.height > 100 and (tc["up_transport"] == "tcp").all()
    h = led.hops.filter(
        (pl.col("hop") == "upstream") & pl.col("query_id").is_in(tc["query_id"].implode())
    )
    first_tc = (
        h.filter(pl.col("tc") & (pl.col("transport") == "udp"))
        .group_by("query_id")
        .agg(_t=pl.col("ts").min())
    )
    tcp_after = h.join(first_tc, on="query_id").filter(
        (pl.col("transport") == "tcp") & (pl.col("ts") > pl.col("_t"))
    )
    assert tcp_after["query_id"].n_unique() == tc.height
    assert (
        led.queries.filter(~pl.col("tc_fallback") & (pl.col("up_transport") == "udp")).height > 50
    )


def _stub_lookups() -> pl.DataFrame:
    return (
        pl.read_csv(STUBS / "clients" / "stub-node1.tsv", separator="\t")
        .with_columns(
            name=pl.col("name").str.strip_suffix(".").str.to_lowercase(),
            start=pl.col("ts").str.to_datetime(time_zone="UTC").dt.cast_time_unit("us"),
        )
        .with_columns(
            end=pl.col("start")
            + pl.duration(microseconds=(pl.col("duration_s") * 1e6).cast(pl.Int64))
        )
    )


def test_retried_and_after_give_up_match_the_stub_clients_record() -> None:
    """glibc (timeout:2 attempts:3) re-asks after 2 s: every lookup that took longer (or failed)
    has a retried query in the ledger, the quicker ones none; every lookup that got an answer
    after it had returned (the stub gave up) has an after_give_up query."""
    led = _ledger(STUBS / "captures", client_timeout_s=2.0)
    stub = led.queries.filter(pl.col("client_ip") == "169.254.2.1").with_columns(
        name=pl.col("qname").str.to_lowercase()
    )
    per = stub.group_by("name").agg(
        retried=pl.col("retried").any(),
        gave_up=pl.col("after_give_up").any(),
        last=pl.col("ts_response").max(),
    )
    j = _stub_lookups().join(per, on="name", how="left")
    asked_again = j.filter((pl.col("duration_s") >= 2.05) | (pl.col("result") != "ok"))
    quick = j.filter(pl.col("duration_s") < 1.95)
    assert asked_again.height >= 30 and asked_again["retried"].all()
    assert quick.height >= 60 and not quick["retried"].any()
    late = j.filter(pl.col("last") > pl.col("end"))
    assert late.height >= 15 and late["gave_up"].all()
    # the re-asks themselves (a query of the name while the stub's previous one was unanswered)
    prev_open = (
        (
            (pl.col("ts_response").shift(1).fill_null(pl.col("ts").shift(1) + dt.timedelta(days=1)))
            > pl.col("ts")
        )
        & (pl.col("name") == pl.col("name").shift(1))
        & (pl.col("qtype") == pl.col("qtype").shift(1))
    )
    reasks = stub.sort("name", "qtype", "ts").filter(prev_open)
    assert reasks.height >= 10 and reasks["retried"].all()
    assert stub.filter("after_give_up")["state"].eq("after_give_up").all()
    # the control node's stub never re-asked
    ctl = led.queries.filter(pl.col("client_ip") == "169.254.2.2")
    assert ctl.height > 100 and not ctl["retried"].any() and not ctl["after_give_up"].any()


# -- 0x20: the upstream name in another case ---------------------------------------------------


def _swap_upstream_case(src: Path, dst: Path, upstream: bytes) -> int:
    """Copy a classic pcap (Ethernet or Linux SLL2), upper-casing the question name's letters of every UDP DNS
    message to or from ``upstream`` (the cache's 0x20 randomisation), UDP checksum set to 0 (none).
    Returns how many packets were changed."""
    data = bytearray(src.read_bytes())
    link = struct.unpack_from("<I", data, 20)[0]
    assert data[:4] == b"\xd4\xc3\xb2\xa1" and link in (1, 276)
    hdr, etype = (14, 12) if link == 1 else (20, 0)  # SLL2: protocol type first, 20 bytes
    off, changed = 24, 0
    while off + 16 <= len(data):
        incl = struct.unpack_from("<I", data, off + 8)[0]
        pkt = off + 16
        ip = pkt + hdr
        if data[pkt + etype : pkt + etype + 2] == b"\x08\x00" and data[ip + 9] == 17:
            ihl = (data[ip] & 0x0F) * 4
            if upstream in (bytes(data[ip + 12 : ip + 16]), bytes(data[ip + 16 : ip + 20])):
                udp = ip + ihl
                data[udp + 6 : udp + 8] = b"\x00\x00"
                i = udp + 8 + 12
                while data[i]:
                    n = data[i]
                    data[i + 1 : i + 1 + n] = bytes(data[i + 1 : i + 1 + n]).upper()
                    i += 1 + n
                changed += 1
        off = pkt + incl
    dst.write_bytes(bytes(data))
    return changed


def test_upstream_name_in_another_case_joins_the_same(tmp_path: Path) -> None:
    src = SCN / "healthy" / "captures" / "node1.pcap"
    dst = tmp_path / "node1.pcap"
    assert _swap_upstream_case(src, dst, bytes([169, 254, 169, 253])) > 600
    cap = kit.read_capture(dst, progress=False)
    up = cap.dns.filter(pl.col("server_ip") == "169.254.169.253")
    assert up.height == 336 and (up["qname"] == up["qname"].str.to_uppercase()).all()
    assert (up["qname"] != up["qname"].str.to_lowercase()).all()  # the case differs from the pods'
    got = kit.ledger(cap)
    want = kit.ledger(kit.read_capture(src, progress=False))
    cols = ["ts", "state", "up_ts", "up_ts_response", "up_attempts", "up_s"]
    assert got.queries.height == 600 and got.queries["forwarded"].sum() == 336
    assert got.queries.select(cols).equals(want.queries.select(cols))


def test_hostile_names_pass_through_untouched(data_dir: Path) -> None:
    cap = kit.read_capture(data_dir / "capture" / "weird_qnames.pcap", progress=False)
    led = kit.ledger(cap)
    name = cap.dns["qname"][0]
    assert any(c in name for c in '<"') and " " in name
    assert led.queries["qname"].to_list() == [name]
    # a capture of the client side only: cache hit or not is unknown, and said so
    assert led.queries["cache_hit"].is_null().all() and led.queries["state"].is_null().all()
    assert any("no upstream hop seen" in n for n in led.notes)


def test_bad_arguments_say_what_to_pass(tmp_path: Path) -> None:
    with pytest.raises(LedgerArgumentError, match=r"captures=kit\.read_capture") as e:
        kit.ledger()
    assert isinstance(e.value, kit.KitError)
    with pytest.raises(kit.KitError, match=r"got str; pass kit\.read_capture\(path\)"):
        kit.ledger(str(SCN / "healthy" / "captures"))  # type: ignore[arg-type]
    cap = _cap(SCN / "healthy" / "captures")
    with pytest.raises(
        kit.KitError, match=r"ledger\(dnstap=\.\.\.\) got Capture; pass kit\.read_dnstap"
    ):
        kit.ledger(dnstap=cap)  # type: ignore[arg-type]
    with pytest.raises(LedgerArgumentError, match=r"slow_s='1s'\): pass a number of seconds"):
        kit.ledger(cap, slow_s="1s")  # type: ignore[arg-type]
    with pytest.raises(LedgerArgumentError, match=r"client_timeout_s=-1"):
        kit.ledger(cap, client_timeout_s=-1)


# -- CoreDNS ------------------------------------------------------------------------------------


def _coredns_lines(cap: kit.Capture, n: int) -> tuple[str, pl.DataFrame]:
    """Log lines in CoreDNS's documented default format (``{remote}:{port} - {>id} "{type}
    {class} {name} {proto} {size} {>do} {>bufsize}" {rcode} {>rflags} {rsize} {duration}``,
    kubectl --timestamps prefix written at the answer) for the first ``n`` answered client
    transactions of a real capture: what a CoreDNS in the cache's place would have logged."""
    rows = (
        cap.dns.filter((pl.col("server_ip") == "169.254.20.10") & pl.col("answered"))
        .sort("ts")
        .head(n)
    )
    out = []
    for r in rows.iter_rows(named=True):
        when = r["ts_response"].strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        out.append(
            f'{when} [INFO] {r["client_ip"]}:{r["client_port"]} - {r["dns_id"]} "{r["qtype"]} IN '
            f'{r["qname"].upper()}. {r["transport"]} 40 false 1232" {r["rcode"]} qr,rd,ra 80 '
            f"{r['latency_s']:.6f}s"
        )
    return "\n".join(out) + "\n", rows


def test_coredns_lines_join_the_captured_client_query(tmp_path: Path) -> None:
    cap = _cap(SCN / "healthy" / "captures")
    text, _ = _coredns_lines(cap, 50)
    log = tmp_path / "coredns.log"
    log.write_text(
        text
        + '2026-12-07T09:00:00.000000Z [INFO] 10.9.9.9:5353 - 7 "A IN q"<x>. udp 40 false 1232" NXDOMAIN qr,rd,ra 80 0.25s\n'
    )
    parsed = kit.read_coredns_log(log)
    assert parsed.queries.height == 51
    led = kit.ledger(cap, coredns=parsed)
    hop = led.hops.filter(pl.col("hop") == "coredns")
    assert hop.height == 50
    mine = hop.join(
        led.queries.select("query_id", "dns_id", "client_port", _ts="ts", _lat="latency_s"),
        on="query_id",
    )
    assert (mine["latency_s"] - mine["_lat"]).abs().max() <= 1e-6
    # the line is written at the answer: ts = line time - duration, the capture's query time
    assert (mine["ts"] - mine["_ts"]).dt.total_microseconds().abs().max() <= 2
    assert any("50 of 51 log lines joined" in n for n in led.notes)
    own = led.queries.filter(pl.col("source") == "coredns")
    assert own.height == 1 and own["qname"][0] == 'q"<x>' and own["latency_s"][0] == 0.25
    assert own["cache_hit"].is_null().all()
    # without captures: one query per line, the client hop only
    alone = kit.ledger(coredns=parsed)
    assert alone.queries.height == 51 and set(alone.hops["hop"]) == {"client"}


def test_coalesced_clients_share_the_upstream_query() -> None:
    """data/ledger: unbound answers a re-asked query and its first copy from one upstream query
    (the re-ask joins the waiting query): both client rows get the same upstream transaction, the
    later one with a negative before_up_s (the leg began before it asked), and both still sum."""
    led = _ledger(STUBS / "captures")
    co = led.queries.filter(pl.col("before_up_s") < 0)
    assert co.height >= 5
    up = led.hops.filter((pl.col("hop") == "upstream") & (pl.col("attempt") == 0)).select(
        "query_id", "vantage", "client_ip", "dns_id", "ts"
    )
    key = ["vantage", "client_ip", "dns_id", "ts"]
    mine = co.select("query_id").join(up, on="query_id")
    shared = mine.join(up.rename({"query_id": "_other"}), on=key).filter(
        pl.col("_other") != pl.col("query_id")
    )
    assert shared["query_id"].n_unique() == co.height  # each shares its leg with another query
    done = co.filter(pl.col("answered") & pl.col("up_ts_response").is_not_null())
    parts = pl.sum_horizontal("before_up_s", "connect_s", "up_s", "after_up_s")
    assert done.height and done.select((parts - pl.col("latency_s")).abs().max()).item() <= 0.001


def test_chunked_joins_give_the_same_ledger(monkeypatch: pytest.MonkeyPatch) -> None:
    """The leg search and the attempt expansion go in chunks of client rows (bounded memory):
    chunks of 7 rows give the same ledger as one chunk, on the run with retries and SYN waits."""
    from kit.analyses import attribution
    from kit.analyses import ledger as ledger_mod

    cap = _cap(SCN / "upstream-unreachable" / "captures")
    want = kit.ledger(cap)
    monkeypatch.setattr(attribution, "_CHUNK_ROWS", 7)
    monkeypatch.setattr(ledger_mod, "_CHUNK_ROWS", 7)
    got = kit.ledger(cap)
    assert got.queries.equals(want.queries) and got.hops.equals(want.hops)
    assert want.queries["up_attempts"].max() >= 3


def test_failed_connection_is_the_first_attempt_on_the_sample() -> None:
    """data/sample (every SYN of some connections dropped): unbound gives up on the connection
    and opens another 10 s later. The failed connection (no DNS in it, its 3 retransmitted SYNs)
    is attempt 0, the new connection's query attempt 1, and the wait is in connect_s."""
    path = ROOT / "data" / "sample" / "captures"
    cap, led = _cap(path), _ledger(path, slow_s=1.0)
    two = led.queries.filter(pl.col("up_attempts") == 2)
    assert two.height >= 40
    h = led.hops.filter(
        pl.col("query_id").is_in(two["query_id"].implode()) & (pl.col("hop") == "upstream")
    )
    a0, a1 = h.filter(pl.col("attempt") == 0), h.filter(pl.col("attempt") == 1)
    failed = cap.tcp.filter(pl.col("dns_messages") == 0).select(
        vantage="capture", tcp_stream="stream", _syn="syn_retransmits"
    )
    f = a0.join(failed, on=["vantage", "tcp_stream"])
    assert f.height == a0.height == two.height and a0["dns_id"].is_null().all()
    assert (f["syn_retransmits"] == f["_syn"]).all() and (f["_syn"] >= 1).all()
    assert a1.height == two.height and a1["dns_id"].is_not_null().all()
    assert (two["connect_s"] >= 9.0).all() and (two["state"] == "after_give_up").all()
    parts = pl.sum_horizontal("before_up_s", "connect_s", "up_s", "after_up_s")
    assert two.select((parts - pl.col("latency_s")).abs().max()).item() <= 0.001


def test_dnstap_hops_are_the_dnstap_pairings() -> None:
    """The dnstap path is the same function: CLIENT rows are the client hops, FORWARDER rows the
    upstream hops, each the dnstap transaction itself (latency and answer time)."""
    tap = kit.read_dnstap(SCN / "healthy" / "dnstap")
    led = kit.ledger(dnstap=tap)
    keys = ["capture", "client_ip", "server_ip", "dns_id", "ts"]
    hops = led.hops.rename({"vantage": "capture"})
    got = hops.join(tap.dns, on=keys, how="left", suffix="_tap")
    assert got.height == hops.height and got["message_type"].null_count() == 0
    assert (got.filter(pl.col("hop") == "client")["message_type"] == "CLIENT").all()
    assert (got.filter(pl.col("hop") == "upstream")["message_type"] == "FORWARDER").all()
    assert (got["latency_s"] == got["latency_s_tap"]).all()
    assert (got["ts_response"] == got["ts_response_tap"]).all()
    assert led.queries.height == 1200 and led.queries["forwarded"].sum() == 666


@pytest.mark.parametrize(
    "name",
    [
        "elastic_beats_coredns.log",
        "elastic_integrations_test-coredns.log",
        "github_issue_excerpts_querylog.log",
        "coredns_repo_readme_examples.log",
    ],
)
def test_real_coredns_query_logs_alone(shared_fixtures: Path, name: str) -> None:
    # real CoreDNS log lines (elastic's test data, GitHub issues, CoreDNS's README; provenance in
    # ../shared/fixtures/PROVENANCE.tsv): every query line is one ledger row with the line's own
    # duration as the client latency; a log records only the client side, so forwarded and
    # cache_hit stay unknown (null), and an answer slower than the client's timeout is
    # after_give_up
    log = kit.read_coredns_log(shared_fixtures / "logs" / name)
    led = kit.ledger(coredns=log, client_timeout_s=5.0)
    q = led.queries
    assert q.height == log.queries.height > 0
    assert q["source"].unique().to_list() == ["coredns"]
    assert sorted(q["latency_s"].to_list()) == sorted(log.queries["duration_s"].to_list())
    assert q["forwarded"].null_count() == q.height and q["cache_hit"].null_count() == q.height
    late = q.filter(pl.col("latency_s") > 5.0)
    assert late["after_give_up"].all() if late.height else True
    assert not q.filter(pl.col("latency_s") <= 5.0)["after_give_up"].any()
    assert led.hops.filter(pl.col("hop") == "client").height == q.height
    assert any("only the client side" in n for n in led.notes)
