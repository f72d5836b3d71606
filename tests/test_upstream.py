"""kit.analyses.upstream on the lab sample, cross-checked with tshark's own fields and the lab's nftables counters.

The sample (data/sample, see lab/README.md) has two captures: node1 switched its cache's upstream
to TCP at ``change_time`` and lost SYNs (nftables dropped them at random); node2 stayed on UDP.
``run.json`` records the topology (cache and upstream addresses) and nftables counters
(``syn_seen``: SYNs towards the resolver; ``syn_dropped``: SYNs it dropped), which are independent
of the capture and of tshark.
"""

from __future__ import annotations

import ast
import datetime as dt
import json
import subprocess
from collections import Counter
from pathlib import Path

import polars as pl
import pytest

import kit
import kit.analyses.attribution
import kit.findings as kf
from kit.analyses import upstream as up
from kit.sources.capture import DNS_SCHEMA, TCP_SCHEMA, Capture
from kit.sources.corefile import FORWARD_SCHEMA

UTC = dt.UTC


@pytest.fixture(scope="module")
def sample(repo_root: Path) -> Path:
    path = repo_root / "data" / "sample"
    if not (path / "captures" / "node1.pcap").exists():
        pytest.skip("data/sample not generated (make sample)")
    return path


@pytest.fixture(scope="module")
def run(sample: Path) -> dict:
    return json.loads((sample / "run.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def cap(sample: Path, tmp_path_factory: pytest.TempPathFactory) -> Capture:
    return kit.read_capture(sample / "captures", cache=tmp_path_factory.mktemp("cache"))


def tshark_rows(tshark: str, pcap: Path, fields: list[str], display_filter: str) -> list[list[str]]:
    """tshark's own view: one list of field values per packet matching ``display_filter``."""
    argv = [tshark, "-n", "-r", str(pcap), "-Y", display_filter, "-T", "fields"]
    for f in fields:
        argv += ["-e", f]
    out = subprocess.run(argv, capture_output=True, text=True, check=True, env={"LC_ALL": "C"})
    return [line.split("\t") for line in out.stdout.splitlines()]


# --------------------------------------------------------------------------------------------
# roles: one upstream rule (infer_upstream_ips), the same in server_roles and kit.findings


def test_roles_match_the_lab_topology(cap: Capture, run: dict) -> None:
    topo = run["topology"]
    upstream = topo["upstream"]["ip"]
    cache_ips = {n["cache_ip"] for n in topo["nodes"]}
    roles = up.server_roles(cap.dns, tcp=cap.tcp)
    assert set(roles.filter(pl.col("role") == "cache")["server_ip"]) == cache_ips
    assert up.infer_cache_ips(cap.dns) == sorted(cache_ips)
    assert up.infer_upstream_ips(cap.dns, tcp=cap.tcp) == [upstream]
    assert up.infer_upstream_ips(cap.dns) == [upstream]  # without the SYN times too
    # the notebook 06 / findings wrapper gives the same answer as the roles' upstream rows
    assert (
        kf.infer_upstreams(cap) == roles.filter(pl.col("role") == "upstream")["server_ip"].to_list()
    )
    row = roles.filter(pl.col("server_ip") == upstream).row(0, named=True)
    assert row["basis"] == "capture" and row["captures"] == 2
    # the upstream is asked only by the nodes' uplink addresses, the cache only by the pods
    assert row["clients"] == len({n["uplink_ip"] for n in topo["nodes"]})
    assert roles.filter(pl.col("role") == "cache")["forwarded"].to_list() == [0]


def test_forwarded_queries_on_the_udp_control_agree_with_tshark(
    cap: Capture, run: dict, tshark: str, sample: Path
) -> None:
    # node2 forwards its misses over UDP without loss: every query it sends to the upstream
    # follows a pod's query for that name by well under 0.5 s, so all of them are forwarded
    upstream = run["topology"]["upstream"]["ip"]
    node = run["topology"]["nodes"][1]
    assert node["node"] == "node2"
    sent = tshark_rows(
        tshark,
        sample / "captures" / "node2.pcap",
        ["dns.id", "dns.qry.name"],
        f"dns.flags.response == 0 && ip.src == {node['uplink_ip']} && ip.dst == {upstream}",
    )
    queries = len({tuple(r) for r in sent})  # one transaction per (id, name)
    # the pods ask the cache qps x the length of the run (30 x (20 + 60 + 20) s = 3000)
    prm = run["parameters"]
    per_node = round(prm["qps"] * sum(p["seconds"] for p in prm["phases"]))
    names = len({r[1].lower() for r in sent})
    dns = cap.dns.filter(pl.col("capture") == "node2")
    ev = up.forwarding_evidence(dns, cap.tcp.filter(pl.col("capture") == "node2"))
    assert ev.rows() == [
        (upstream, queries, queries, names, 0, 0, 1.0, True),
        (node["cache_ip"], per_node, 0, 0, 0, 0, 0.0, False),
    ]


def test_lost_syns_do_not_hide_forwarding(cap: Capture, run: dict) -> None:
    # node1 forwards over TCP, one connection per miss; a connection whose first SYN was lost
    # carries its query at least 1 s (the initial RTO) after the pod asked: outside the 0.5 s
    # window from the query's own time, inside it from the connection's first SYN
    upstream = run["topology"]["upstream"]["ip"]
    dns = cap.dns.filter(pl.col("capture") == "node1")
    tcp = cap.tcp.filter(pl.col("capture") == "node1")
    lossy = tcp.filter((pl.col("server_ip") == upstream) & (pl.col("syn_retransmits") > 0))
    on_lossy = dns.join(lossy.select("capture", tcp_stream="stream"), on=["capture", "tcp_stream"])
    assert on_lossy.height > 100
    with_syn = up.forwarding_evidence(dns, tcp).row(0, named=True)
    without = up.forwarding_evidence(dns).row(0, named=True)
    assert with_syn["server_ip"] == without["server_ip"] == upstream
    # without SYN times none of the lossy-connection queries can count, so at most the others do
    assert without["forwarded"] <= with_syn["queries"] - on_lossy.height
    # with them, most of the lossy ones count too (some were a second connection the cache
    # opened after giving up on a first one whose SYNs were all lost: no query of their own)
    assert with_syn["forwarded"] >= without["forwarded"] + 0.9 * on_lossy.height
    assert with_syn["share"] > 0.95


def test_explicit_addresses_win_then_settings_then_capture(cap: Capture, sample: Path) -> None:
    assert up.infer_cache_ips(cap.dns, "10.96.0.10") == ["10.96.0.10"]
    # given addresses are the answer (host:port, [v6]:port and schemes reduced to the address)
    assert up.infer_upstream_ips(cap.dns, ["192.0.2.1:53", "[2001:DB8::1]:53", "192.0.2.1"]) == [
        "192.0.2.1",
        "2001:db8::1",
    ]
    assert up.infer_upstream_ips(cap.dns, "dns://192.0.2.7") == ["192.0.2.7"]
    # the sample's unbound.conf forwards to 169.254.169.253@53: settings and capture agree
    fwd = kit.read_unbound_conf(sample / "configs" / "unbound-node1.conf")
    roles = up.server_roles(cap.dns, forward=fwd, tcp=cap.tcp)
    assert roles.filter(pl.col("role") == "upstream").select("server_ip", "basis").rows() == [
        ("169.254.169.253", "forward settings, capture")
    ]
    # a Corefile naming another resolver: both listed, the settings first; a file and a
    # placeholder name no address and are left out
    corefile = kit.read_corefile(
        ". {\n    forward . /etc/resolv.conf 10.96.0.10:53 __PILLAR__CLUSTER__DNS__\n}\n"
    ).forward_settings()
    assert corefile.height == 3
    got = up.infer_upstream_ips(cap.dns, forward=corefile, tcp=cap.tcp)
    assert got == ["10.96.0.10", "169.254.169.253"]
    roles = up.server_roles(cap.dns, forward=corefile, tcp=cap.tcp)
    ups = roles.filter(pl.col("role") == "upstream")
    assert ups["server_ip"].to_list() == got
    # the configured one was never asked in these captures: a row of zeros says so
    assert ups.row(0) == ("10.96.0.10", "upstream", "forward settings", 0, 0, 0, 0, 0, 0)
    assert kf.infer_upstreams(cap, corefile) == got
    # explicit addresses win over both
    assert up.infer_upstream_ips(cap.dns, "192.0.2.1", forward=corefile) == ["192.0.2.1"]


def test_no_dns_gives_no_guess(cap: Capture) -> None:
    empty = cap.dns.clear()
    assert up.server_roles(empty).is_empty()
    assert up.forwarding_evidence(empty).is_empty()
    assert up.infer_cache_ips(empty) == [] and up.infer_upstream_ips(empty) == []
    assert up.infer_upstream_ips(None) == [] and kf.infer_upstreams(None) == []
    # failed connections with no query at all to follow: no attempt, no upstream, and a server
    # nobody asked a query is no cache either
    roles = up.server_roles(empty, tcp=cap.tcp)
    assert set(roles["role"]) == {"other"} and roles["attempts"].sum() == 0
    assert (
        roles["server_ip"].to_list()
        == cap.tcp.filter(~pl.col("established"))["server_ip"].unique().to_list()
    )


T0 = dt.datetime(2026, 1, 1, tzinfo=UTC)


def dns_frame(rows: list[tuple[float, float | None, str, str, str]]) -> pl.DataFrame:
    """``Capture.dns`` rows (DNS_SCHEMA): (sent s, answered s or None, client, server, qname)."""
    full = [
        {
            "ts": T0 + dt.timedelta(seconds=t),
            "ts_response": None if r is None else T0 + dt.timedelta(seconds=r),
            "client_ip": c,
            "server_ip": s,
            "qname": q,
            "qtype": "A",
            "capture": "n",
            "frame_query": i + 1,
        }
        for i, (t, r, c, s, q) in enumerate(rows)
    ]
    return pl.DataFrame(
        [{c: row.get(c) for c in DNS_SCHEMA} for row in full], schema=DNS_SCHEMA, orient="row"
    )


def test_a_client_asking_two_resolvers_makes_no_upstream() -> None:
    # one pod asks 10.0.0.2 and 10.0.0.3 every name at once (two nameservers, parallel queries);
    # a second pod asks only 10.0.0.2 other names. Nothing is forwarded: the second query of each
    # name comes from the same sender as the first.
    rows = []
    for i in range(10):
        t = float(i)
        rows += [(t, t + 0.02, "pod1", "10.0.0.2", f"n{i}.example")]
        rows += [(t + 0.001, t + 0.01, "pod1", "10.0.0.3", f"N{i}.example")]
        rows += [(t + 0.5, t + 0.51, "pod2", "10.0.0.2", f"m{i}.example")]
    dns = dns_frame(rows)
    assert up.forwarding_evidence(dns)["forwarded"].to_list() == [0, 0]
    assert up.infer_upstream_ips(dns) == []
    roles = up.server_roles(dns)
    # the cache is the server asked by the most clients (2 against 1); no upstream row
    assert roles.select("server_ip", "role", "clients", "queries").rows() == [
        ("10.0.0.2", "cache", 2, 20),
        ("10.0.0.3", "other", 1, 10),
    ]


def test_two_pods_asking_two_resolvers_are_not_nested_so_not_forwarded() -> None:
    # pod1 asks 10.0.0.2, pod2 asks 10.0.0.3 the same names 0.1 s later, but 10.0.0.3 answers
    # after 10.0.0.2 did: a cache cannot answer before its upstream, so this is not forwarding
    rows = []
    for i in range(10):
        t = float(i)
        rows += [(t, t + 0.15, "pod1", "10.0.0.2", f"n{i}.example")]
        rows += [(t + 0.1, t + 0.3, "pod2", "10.0.0.3", f"n{i}.example")]
    assert up.infer_upstream_ips(dns_frame(rows)) == []
    # the same pairs nested (10.0.0.3 answers first, then 10.0.0.2): forwarded, 10 of 10
    nested = [(t, r + 0.2 if s == "10.0.0.2" else r, c, s, q) for t, r, c, s, q in rows]
    ev = up.forwarding_evidence(dns_frame(nested))
    assert ev.row(0) == ("10.0.0.3", 10, 10, 10, 0, 0, 1.0, True)
    assert up.infer_upstream_ips(dns_frame(nested)) == ["10.0.0.3"]


def test_a_cache_forwarding_to_two_upstreams_gives_both_most_forwarded_first() -> None:
    # three pods ask the cache 10.0.0.10; its uplink 10.0.1.1 forwards 6 misses to 10.0.0.3 and
    # 4 to 10.0.0.2 (case differs on the wire for one), 5 ms after the pod, answered before the
    # cache answers; 10 names are hits (answered at once, never forwarded)
    rows = []
    for i in range(20):
        t = float(i)
        pod = f"pod{i % 3}"
        if i < 10:
            upstream = "10.0.0.3" if i < 6 else "10.0.0.2"
            name = f"miss{i}.example"
            rows += [(t, t + 0.05, pod, "10.0.0.10", name)]
            rows += [(t + 0.005, t + 0.04, "10.0.1.1", upstream, name.upper() if i == 0 else name)]
        else:
            rows += [(t, t + 0.0005, pod, "10.0.0.10", f"hit{i}.example")]
    dns = dns_frame(rows)
    assert up.infer_upstream_ips(dns) == ["10.0.0.3", "10.0.0.2"]
    roles = up.server_roles(dns)
    assert roles.rows() == [
        ("10.0.0.10", "cache", "most clients", 3, 20, 0, 0, 0, 1),
        ("10.0.0.3", "upstream", "capture", 1, 6, 6, 6, 0, 1),
        ("10.0.0.2", "upstream", "capture", 1, 4, 4, 4, 0, 1),
    ]
    # forward settings naming a third resolver come first, then the capture's, most forwarded
    fwd = pl.DataFrame(
        [{"resolver": "coredns", "zone": ".", "upstream": "10.0.0.9:53", "source": "<text>"}],
        schema=FORWARD_SCHEMA,
    )
    assert up.infer_upstream_ips(dns, forward=fwd) == ["10.0.0.9", "10.0.0.3", "10.0.0.2"]
    # two forwarded queries are not enough (at least 3 are needed), 10 hits to 10.0.0.10 aside
    few = dns_frame(
        [r for r in rows if r[3] != "10.0.0.2" or r[4] in {"miss6.example", "miss7.example"}]
    )
    assert up.infer_upstream_ips(few) == ["10.0.0.3"]
    # an address given as the cache is never an upstream from capture evidence
    assert up.infer_upstream_ips(dns, cache_ips=["10.0.0.3"]) == ["10.0.0.2"]


def test_a_connection_opened_for_the_query_counts_from_its_first_syn() -> None:
    # the cache asks its upstream over TCP; the first SYN is lost, the handshake completes after
    # the 1 s RTO and the query leaves 1.01 s after the pod asked: forwarded only when the
    # connection's first SYN (5 ms after the pod) is known
    rows, conns = [], []
    for i in range(5):
        t = 10.0 * i
        rows += [(t, t + 1.1, f"pod{i}", "10.0.0.10", f"n{i}.example")]
        rows += [(t + 1.01, t + 1.05, "10.0.1.1", "10.0.0.2", f"n{i}.example")]
        conns.append({"stream": i, "ts_syn": T0 + dt.timedelta(seconds=t + 0.005), "capture": "n"})
    dns = dns_frame(rows).with_columns(
        tcp_stream=pl.when(pl.col("server_ip") == "10.0.0.2")
        .then((pl.col("frame_query").cast(pl.Int64) - 2) // 2)
        .cast(pl.UInt32),
        transport=pl.lit("tcp"),
    )
    tcp = pl.DataFrame(
        [{c: r.get(c) for c in TCP_SCHEMA} for r in conns], schema=TCP_SCHEMA, orient="row"
    )
    assert up.infer_upstream_ips(dns) == []
    assert up.infer_upstream_ips(dns, tcp=tcp) == ["10.0.0.2"]
    assert up.forwarding_evidence(dns, tcp).row(0) == ("10.0.0.2", 5, 5, 5, 0, 0, 1.0, True)


def test_failed_connections_alone_still_show_the_upstream(
    cap: Capture, run: dict, tshark: str, sample: Path
) -> None:
    # when every SYN towards the upstream is dropped there is no query to it in the capture, only
    # connection attempts. node1 without its upstream queries and established connections is
    # that capture: its failed connections must still name the upstream
    upstream = run["topology"]["upstream"]["ip"]
    dns = cap.dns.filter((pl.col("capture") == "node1") & (pl.col("server_ip") != upstream))
    tcp = cap.tcp.filter((pl.col("capture") == "node1") & ~pl.col("established").fill_null(True))
    # tshark's own count of connections to the upstream that never got a SYN/ACK
    syns = tshark_rows(
        tshark,
        sample / "captures" / "node1.pcap",
        ["tcp.stream", "ip.src"],
        f"tcp.flags.syn == 1 && (ip.dst == {upstream} && tcp.flags.ack == 0 || "
        f"ip.src == {upstream} && tcp.flags.ack == 1)",
    )
    opened = {s for s, src in syns if src != upstream}
    answered = {s for s, src in syns if src == upstream}
    never = len(opened - answered)
    assert never > 10
    ev = up.forwarding_evidence(dns, tcp)
    row = ev.filter(pl.col("server_ip") == upstream).row(0, named=True)
    # unbound opens its connection as soon as a pod's query misses, so every failed connection
    # starts milliseconds after a pod query that is still waiting: all are attempts
    assert (row["queries"], row["forwarded"], row["failed"], row["attempts"]) == (
        0,
        0,
        never,
        never,
    )
    assert up.infer_upstream_ips(dns, tcp=tcp) == [upstream]
    roles = up.server_roles(dns, tcp=tcp)
    assert roles.filter(pl.col("role") == "upstream").select("server_ip", "attempts").rows() == [
        (upstream, never)
    ]
    # without the connections there is nothing left to infer from
    assert up.infer_upstream_ips(dns) == []


def test_a_failed_connection_counts_only_after_another_senders_query() -> None:
    # pods ask the cache (never answered); 2 ms later the cache's uplink tries to connect to
    # 10.0.0.2 and gets no SYN/ACK: 4 attempts. A pod that tries TCP to 10.0.0.3 right after its
    # own query is one sender: not an attempt. 10.0.0.4's single attempt is below 3.
    rows, conns = [], []
    for i in range(4):
        t = 10.0 * i
        rows.append((t, None, f"pod{i}", "10.0.0.10", f"n{i}.example"))
        conns.append(("10.0.1.1", "10.0.0.2", t + 0.002))
        conns.append((f"pod{i}", "10.0.0.3", t + 0.001))
    conns.append(("10.0.1.1", "10.0.0.4", 0.003))
    dns = dns_frame(rows)
    tcp = pl.DataFrame(
        [
            {
                **dict.fromkeys(TCP_SCHEMA),
                "stream": k,
                "client_ip": c,
                "server_ip": s,
                "ts_syn": T0 + dt.timedelta(seconds=t),
                "syn_retransmits": 3,
                "established": False,
                "dns_messages": 0,
                "capture": "n",
            }
            for k, (c, s, t) in enumerate(conns)
        ],
        schema=TCP_SCHEMA,
        orient="row",
    )
    ev = up.forwarding_evidence(dns, tcp)
    assert ev.select("server_ip", "failed", "attempts", "upstream").rows() == [
        ("10.0.0.2", 4, 4, True),
        ("10.0.0.4", 1, 1, False),
        ("10.0.0.10", 0, 0, False),  # no vote either way: 4 queries before 0
        ("10.0.0.3", 4, 0, False),
    ]
    assert up.infer_upstream_ips(dns, tcp=tcp) == ["10.0.0.2"]
    # a connection that carried a query is judged by its query, not as an attempt
    carried = tcp.with_columns(dns_messages=pl.lit(2, dtype=pl.UInt32))
    assert up.forwarding_evidence(dns, carried)["attempts"].sum() == 0


def test_a_real_cache_forwarding_to_two_upstreams(data_dir: Path, tshark: str) -> None:
    # tests/data/upstream/make_two_upstreams.sh: real unbound (127.0.0.10) forwarding to two real
    # NSD servers (its forward-addr lines: 127.0.0.2, 127.0.0.3), 40 dig queries from two clients
    # (30 names, then 10 of them again: hits), one at a time
    folder = data_dir / "upstream"
    path = folder / "two-upstreams.pcap"
    conf = kit.read_unbound_conf(folder / "two-upstreams-unbound.conf")
    configured = up.infer_upstream_ips(None, forward=conf)
    assert configured == ["127.0.0.2", "127.0.0.3"]
    rows = tshark_rows(tshark, path, ["ip.src", "ip.dst"], "dns.flags.response == 0")
    sent = Counter(dst for src, dst in rows if src == "127.0.0.10")
    assert set(sent) == set(configured) and sum(sent.values()) == 30  # one per distinct name
    most_first = sorted(sent, key=lambda ip: (-sent[ip], ip))
    cap = kit.read_capture(path, cache=False, progress=False)
    assert up.infer_upstream_ips(cap.dns, tcp=cap.tcp) == most_first
    assert kf.infer_upstreams(cap) == most_first
    # each of them follows a client's query for that name by milliseconds: all forwarded
    ev = up.forwarding_evidence(cap.dns, cap.tcp).filter(pl.col("upstream"))
    assert dict(ev.select("server_ip", "forwarded").iter_rows()) == dict(sent)
    assert up.infer_cache_ips(cap.dns) == ["127.0.0.10"]
    # with the settings: their order, and both confirmed by the capture
    roles = up.server_roles(cap.dns, forward=conf, tcp=cap.tcp)
    assert roles.filter(pl.col("role") == "upstream").select("server_ip", "basis").rows() == [
        ("127.0.0.2", "forward settings, capture"),
        ("127.0.0.3", "forward settings, capture"),
    ]


# --------------------------------------------------------------------------------------------
# client side, against tshark


@pytest.fixture(scope="module")
def node1_responses(tshark: str, sample: Path, run: dict) -> list[float]:
    cache = run["topology"]["nodes"][0]["cache_ip"]
    rows = tshark_rows(
        tshark,
        sample / "captures" / "node1.pcap",
        ["dns.time"],
        f"dns.flags.response == 1 && ip.src == {cache} && !icmp",
    )
    return [float(r[0]) for r in rows]


def test_outcomes_agree_with_tshark(cap: Capture, node1_responses: list[float]) -> None:
    client = up.client_queries(cap.dns, up.infer_cache_ips(cap.dns))
    got = up.outcomes(client, by=["capture"], slow_s=1.0).filter(pl.col("capture") == "node1")
    row = got.row(0, named=True)
    # tshark pairs each response with its query and prints the wait as dns.time
    assert row["answered"] == len(node1_responses)
    assert row["slow"] == sum(1 for t in node1_responses if t >= 1.0)
    assert row["max_s"] == pytest.approx(max(node1_responses), abs=1e-6)
    assert row["queries"] == row["answered"] + row["unanswered"] + row["censored"]
    ordered = sorted(node1_responses)
    # nearest-rank median of tshark's values
    assert row["p50_s"] == pytest.approx(ordered[round(0.5 * (len(ordered) - 1))], abs=1e-6)


def test_log_histogram_bins_by_hand() -> None:
    df = pl.DataFrame(
        {
            "g": ["a", "a", "a", "a", "a", "b", "b"],
            "latency_s": [0.001, 0.00101, 0.0099, 0.01, 3.2, 0.0, None],
        }
    )
    h = up.log_histogram(df, by=["g"], bins_per_decade=1, min_s=1e-5)
    # log10: -3, -2.996, -2.004 -> bin -3 (three values); 0.01 -> -2; 3.2 -> 0.505 -> 0;
    # 0.0 is clamped to min_s 1e-5 -> -5; None is not counted
    assert h.select("g", "bin", "count").rows() == [
        ("a", -3, 3),
        ("a", -2, 1),
        ("a", 0, 1),
        ("b", -5, 1),
    ]
    a = h.filter(pl.col("g") == "a")
    assert a["share"].to_list() == pytest.approx([0.6, 0.2, 0.2])
    assert a["lower_s"].to_list() == pytest.approx([0.001, 0.01, 1.0])
    assert a["upper_s"].to_list() == pytest.approx([0.01, 0.1, 10.0])


def test_log_histogram_counts_every_answer(cap: Capture, node1_responses: list[float]) -> None:
    client = up.client_queries(cap.dns, up.infer_cache_ips(cap.dns))
    h = up.log_histogram(client, by=["capture"], bins_per_decade=10)
    node1 = h.filter(pl.col("capture") == "node1")
    assert node1["count"].sum() == len(node1_responses)
    # answers of at least 1 s are the bins from bin 0 (lower edge 1 s) up
    assert node1.filter(pl.col("bin") >= 0)["count"].sum() == sum(
        1 for t in node1_responses if t >= 1.0
    )


def test_slow_over_time_by_hand() -> None:
    t0 = dt.datetime(2026, 1, 1, 0, 0, 0, tzinfo=UTC)
    s = dt.timedelta(seconds=1)
    dns = pl.DataFrame(
        {
            "capture": ["n"] * 5,
            "ts": [t0, t0 + 2 * s, t0 + 4 * s, t0 + 6 * s, t0 + 9 * s],
            "latency_s": [0.001, 1.5, None, 1.0, None],
            "answered": [True, True, False, True, False],
            "censored": [False, False, False, False, True],
        }
    )
    got = up.slow_over_time(dns, slow_s=1.0, every="5s")
    # bin 00:00:00: 3 queries, one slow (1.5 s), one unanswered; bin 00:00:05: 2 queries, one slow
    # (1.0 s counts: at the threshold), the unanswered one is censored
    assert got.select("ts", "queries", "slow", "unanswered").rows() == [
        (t0, 3, 1, 1),
        (t0 + 5 * s, 2, 1, 0),
    ]
    assert got["slow_share"].to_list() == pytest.approx([2 / 3, 1 / 2])


# --------------------------------------------------------------------------------------------
# TCP towards the upstream, against nftables and tshark


def test_syn_counts_agree_with_nftables_and_tshark(
    cap: Capture, run: dict, tshark: str, sample: Path
) -> None:
    upstream = run["topology"]["upstream"]["ip"]
    syn = up.syn_retransmissions(cap.packets, every="1s", server_ips=[upstream])
    node1 = syn.filter(pl.col("capture") == "node1")
    # nftables counted every SYN towards the resolver in node1's namespace
    assert node1["syns"].sum() == run["counts"]["syn_seen"]
    assert syn.filter(pl.col("capture") == "node2").is_empty()  # UDP control: no TCP at all
    rows = tshark_rows(
        tshark,
        sample / "captures" / "node1.pcap",
        ["frame.time_epoch"],
        f"ip.dst == {upstream} && tcp.flags.syn == 1 && tcp.flags.ack == 0 "
        "&& tcp.analysis.retransmission",
    )
    per_second = Counter(int(float(r[0])) for r in rows)
    got = {
        int(ts.timestamp()): n
        for ts, n in node1.filter(pl.col("retransmitted_syns") > 0)
        .select("ts", "retransmitted_syns")
        .rows()
    }
    assert got == dict(per_second)
    assert node1["first_syns"].sum() + node1["retransmitted_syns"].sum() == node1["syns"].sum()


def test_connection_summary_agrees_with_nftables(cap: Capture, run: dict) -> None:
    upstream = run["topology"]["upstream"]["ip"]
    summary = up.connection_summary(cap.tcp, server_ips=[upstream])
    assert summary["capture"].to_list() == ["node1"]
    row = summary.row(0, named=True)
    counts = run["counts"]
    # SYNs seen = first SYNs (one per connection) + retransmitted SYNs
    assert row["connections"] + row["syn_retransmits"] == counts["syn_seen"]
    # nftables dropped the SYNs that got no SYN/ACK; each established connection got exactly one
    assert row["established"] == counts["syn_seen"] - counts["syn_dropped"]
    assert row["connections"] == row["established"] + row["not_established"] + row["already_open"]
    # net.ipv4.tcp_syn_retries (run.json sysctl) bounds the retransmitted SYNs per connection
    assert 1 <= row["max_syn_retransmits"] <= run["sysctl"]["node1"]["net.ipv4.tcp_syn_retries"]
    assert row["retransmit_share"] == pytest.approx(
        row["with_syn_retransmits"] / row["connections"]
    )


def test_handshake_times_sit_on_the_ladder(cap: Capture) -> None:
    tcp = cap.tcp.filter(pl.col("established"))
    # a connection whose first k SYNs were lost completes on rung k (k = 0: within milliseconds on
    # veth links); the kernel's timers fire a little late (jiffies, backoff slack): within 5 %
    ladder = dict(up.syn_ladder(retries=6).select("retry", "timer_s").rows())
    ladder[0] = 0.0
    rung = pl.col("syn_retransmits").replace_strict(ladder, return_dtype=pl.Float64)
    off = tcp.filter((pl.col("handshake_s") - rung).abs() > 0.01 + 0.05 * rung)
    assert off.is_empty(), off
    assert tcp["syn_retransmits"].max() >= 3  # the sample reaches at least the 7 s rung


def test_syn_ladder_by_hand() -> None:
    lad = up.syn_ladder()
    # RFC 6298: initial RTO 1 s, doubled after each retransmission: waits 1, 2, 4, 8 s
    assert lad["rto_s"].to_list() == [1.0, 2.0, 4.0, 8.0]
    assert lad["timer_s"].to_list() == [1.0, 3.0, 7.0, 15.0]
    assert lad["label"][1] == "SYN retry 2: 3 s"
    assert up.syn_ladder(initial_rto_s=0.2, retries=3)["timer_s"].to_list() == pytest.approx(
        [0.2, 0.6, 1.4]
    )


def test_match_ladder_by_hand() -> None:
    modes = pl.DataFrame({"mode_s": [1.05, 2.0, 7.5], "count": [10, 5, 3]})
    got = up.match_ladder(modes)
    # 1.05 -> 1 s (ratio 1.05); 2.0 is nearer 3 s than 1 s on a log scale (|ln 2/3| < |ln 2|),
    # ratio 0.667: no match; 7.5 -> 7 s (ratio 1.071)
    assert got.select("timer_s", "matches").rows() == [(1.0, True), (3.0, False), (7.0, True)]
    assert got["ratio"].to_list() == pytest.approx([1.05, 2 / 3, 7.5 / 7])
    assert up.match_ladder(modes.clear())["matches"].to_list() == []


def test_client_modes_match_the_syn_ladder_on_node1_only(
    cap: Capture, node1_responses: list[float]
) -> None:
    client = up.client_queries(cap.dns, up.infer_cache_ips(cap.dns))
    modes = up.match_ladder(up.latency_modes_by(client, by=["capture"]))
    # node2 (UDP control) never waits 0.2 s or more, so it has no slow-tail mode at all
    assert set(modes["capture"]) == {"node1"}
    matched = modes.filter(pl.col("matches"))
    # without groups it is kit.analyses.latency.latency_modes on the whole frame
    node1 = client.filter(pl.col("capture") == "node1")
    assert up.latency_modes_by(node1, by=[]).equals(
        modes.filter(pl.col("capture") == "node1").select(
            "mode_s", "lower_s", "upper_s", "count", "share"
        )
    )
    assert matched["timer_s"].to_list() == [1.0, 3.0, 7.0]
    # each mode's count is the answers tshark timed within the mode's span
    for lo, hi, n in matched.select("lower_s", "upper_s", "count").rows():
        assert n == sum(1 for t in node1_responses if lo <= t < hi)


def test_attribution_summary_puts_answers_on_the_ladder(
    cap: Capture, node1_responses: list[float]
) -> None:
    attribution = kit.analyses.attribution.attribute_slow_answers(cap, slow_s=1.0)
    summary = up.attribution_summary(attribution)
    # every slow answer tshark timed on node1 is in the summary (node2 has none; nothing unanswered)
    assert summary["answers"].sum() == sum(1 for t in node1_responses if t >= 1.0)
    assert summary["unanswered"].sum() == 0
    assert set(summary["capture"]) == {"node1"}
    # answers served by an upstream query over a connection with k retransmitted SYNs waited about
    # rung k of the ladder (1, 3, 7, 15 s), within 5 % (kernel timer slack and the upstream's RTT)
    rungs = dict(up.syn_ladder(retries=6).select("retry", "timer_s").rows())
    by_dns = summary.filter(pl.col("up_match") == "dns")
    assert by_dns.height >= 3
    for k, p50 in by_dns.select("syn_retransmits", "latency_p50_s").rows():
        assert p50 == pytest.approx(rungs[k], rel=0.05), (k, p50)


# --------------------------------------------------------------------------------------------
# real captures from ../shared/fixtures (not the lab): SYNs and roles against tshark


SHARED_PCAPS = [
    "chrissanders_dns_lab.pcapng",
    "chrissanders_dns_tcp.pcapng",
    "dnscap_dns.pcap",
    "dnscap_dnso1tcp.pcap",
    "dnscap_dnso1tcp-midmiss.pcap",
    "dnscap_dnsotcp-many1pkt.pcap",
    "ndpi_KakaoTalk_chat.pcap",
    "suricata_dns-tcp-multirequest-buffer.pcap",
    "zeek_dns-edns-ecs.pcap",
]


@pytest.mark.parametrize("name", SHARED_PCAPS)
@pytest.mark.slow
def test_shared_pcaps_syns_and_roles_agree_with_tshark(
    name: str, shared_fixtures: Path, tshark: str, tmp_path: Path
) -> None:
    path = shared_fixtures / "pcaps" / name
    cap = kit.read_capture(path, cache=False, progress=False)
    # SYNs without ACK on port 53, and those tshark flags as retransmissions
    syn_rows = tshark_rows(
        tshark,
        path,
        ["tcp.analysis.retransmission"],
        "tcp.port == 53 && tcp.flags.syn == 1 && tcp.flags.ack == 0",
    )
    syn = up.syn_retransmissions(cap.packets)
    assert syn["syns"].sum() == len(syn_rows)
    assert syn["retransmitted_syns"].sum() == sum(1 for r in syn_rows if r[0])
    # the cache guess is a server with the most distinct clients, counted from tshark's queries
    rows = tshark_rows(
        tshark,
        path,
        ["ip.src", "ipv6.src", "ip.dst", "ipv6.dst", "frame.time_epoch", "dns.qry.name"],
        "dns.flags.response == 0 && !icmp && !icmpv6",
    )
    clients: dict[str, set[str]] = {}
    queries: list[tuple[float, str, str, str]] = []
    for r in rows:
        # innermost header: the last address tshark lists (tunnels list the outer one first)
        src = (r[0] or r[1]).split(",")[-1]
        dst = (r[2] or r[3]).split(",")[-1]
        clients.setdefault(dst, set()).add(src)
        queries.append((float(r[4]), src, dst, r[5].lower()))
    # none of these captures holds a cache and its upstream (PROVENANCE.tsv: clients, stubs and
    # authoritative servers). Necessary for a forwarded query: the same name sent by another
    # source to another destination at most 0.5 s before. Counted here on tshark's own fields:
    pairs = sum(
        1
        for a in queries
        for b in queries
        if a[3] == b[3] and a[1] != b[1] and a[2] != b[2] and 0 <= b[0] - a[0] <= 0.5
    )
    assert pairs < up.MIN_FORWARDED
    assert up.infer_upstream_ips(cap.dns, tcp=cap.tcp) == []
    assert kf.infer_upstreams(cap) == []
    roles = up.server_roles(cap.dns, tcp=cap.tcp)
    assert "upstream" not in roles["role"].to_list()
    cache = up.infer_cache_ips(cap.dns)
    if not clients:
        assert cache == []
        return
    most = max(len(v) for v in clients.values())
    assert len(cache) == 1 and len(clients[cache[0]]) == most


@pytest.mark.parametrize("name", ["chrissanders_nowebaccess1.pcapng", "ndpi_KakaoTalk_chat.pcap"])
def test_one_client_asking_two_resolvers_in_real_captures_is_no_forwarding(
    name: str, shared_fixtures: Path, tshark: str
) -> None:
    # README edge-case matrix: one query sent to two resolvers (4.2.2.1/4.2.2.2 alternating;
    # 0xb93a to two resolvers). tshark shows one source asking two destinations the same name:
    path = shared_fixtures / "pcaps" / name
    rows = tshark_rows(
        tshark, path, ["ip.src", "ip.dst", "dns.qry.name"], "dns.flags.response == 0 && !icmp"
    )
    asked: dict[tuple[str, str], set[str]] = {}
    for src, dst, qname in rows:
        asked.setdefault((src, qname.lower()), set()).add(dst)
    assert any(len(dsts) == 2 for dsts in asked.values())
    cap = kit.read_capture(path, cache=False, progress=False)
    # every server was asked a name another server was asked too, by the same client: not a
    # cache and its upstream, so no upstream, and no query counted as forwarded
    ev = up.forwarding_evidence(cap.dns, cap.tcp)
    assert ev.height == 2 and ev["forwarded"].to_list() == [0, 0]
    assert up.infer_upstream_ips(cap.dns, tcp=cap.tcp) == []
    assert up.server_roles(cap.dns, tcp=cap.tcp)["role"].sort().to_list() == ["cache", "other"]


@pytest.mark.slow
def test_syn_drill_down_agrees_with_tshark(
    cap: Capture, run: dict, tshark: str, sample: Path
) -> None:
    upstream = run["topology"]["upstream"]["ip"]
    got = up.syn_drill_down(cap, [upstream])
    worst = cap.tcp.filter(pl.col("server_ip") == upstream)["syn_retransmits"].max()
    assert got.height == worst + 1  # the first SYN and its retransmissions
    stream = got["tcp_stream"][0]
    rows = tshark_rows(
        tshark,
        sample / "captures" / f"{got['capture'][0]}.pcap",
        ["frame.number", "frame.time_epoch", "tcp.analysis.rto", "tcp.analysis.rto_frame"],
        f"tcp.stream == {stream} && tcp.flags.syn == 1 && tcp.flags.ack == 0",
    )
    assert got["frame"].to_list() == [int(r[0]) for r in rows]
    assert [t.timestamp() for t in got["ts"]] == pytest.approx(
        [float(r[1]) for r in rows], abs=1e-6
    )
    assert got["rto_s"].to_list()[1:] == pytest.approx([float(r[2]) for r in rows[1:]])
    assert got["rto_frame"].to_list()[1:] == [int(r[3]) for r in rows[1:]]
    assert got["retransmission"].to_list() == [False] + [True] * worst
    # tshark's RTO (time since the first SYN) walks the ladder: 1, 3, 7, 15 s (within 5 %)
    ladder = up.syn_ladder(retries=worst)["timer_s"].to_list()
    assert got["rto_s"].to_list()[1:] == pytest.approx(ladder, rel=0.05)
    # no connection retransmitted towards an address that is not in the capture
    assert up.syn_drill_down(cap, ["192.0.2.1"]).is_empty()


# --------------------------------------------------------------------------------------------
# the report: notebooks 05 and 06 name the same upstreams


def _output_text(nb: dict, marker: str, *, exact: bool = False) -> str:
    """The text/plain output of the first code cell whose source contains (or is) ``marker``."""
    for cell in nb["cells"]:
        source = "".join(cell["source"])
        if cell["cell_type"] == "code" and (
            source.strip() == marker if exact else marker in source
        ):
            for out in cell.get("outputs", []):
                text = out.get("data", {}).get("text/plain")
                if text:
                    return "".join(text)
    raise AssertionError(f"no output for a cell with {marker!r}")


@pytest.mark.notebook
def test_notebooks_05_and_06_name_the_same_upstreams(
    repo_root: Path, data_dir: Path, sample: Path, tmp_path: Path
) -> None:
    # a Corefile naming 10.96.0.10 next to the sample's unbound.conf files (169.254.169.253):
    # settings and capture disagree; both notebooks must list both, Corefile rows first
    # (load_inputs reads Corefiles before unbound.conf files)
    from kit import report

    corefile = data_dir / "upstream" / "Corefile-forward-to-another-resolver"
    nbs = [repo_root / "notebooks" / f"{n}.py" for n in ("05-upstream-tcp", "06-findings")]
    result = report.render(
        nbs,
        parameters={"corefile": [str(corefile)]},
        output_html=tmp_path / "report.html",
        executed_dir=tmp_path / "executed",
    )
    assert [(r.name, r.status) for r in result.runs] == [
        ("05-upstream-tcp", "ok"),
        ("06-findings", "ok"),
    ]
    nb05 = json.loads((tmp_path / "executed" / "05-upstream-tcp.ipynb").read_text())
    nb06 = json.loads((tmp_path / "executed" / "06-findings.ipynb").read_text())
    in_06 = ast.literal_eval(_output_text(nb06, "infer_upstreams("))
    in_05 = ast.literal_eval(_output_text(nb05, "upstreams", exact=True))
    assert in_06 == in_05 == ["10.96.0.10", "169.254.169.253"]
