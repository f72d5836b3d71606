"""The lab run committed for the per-query ledger: data/ledger/forced-tcp-stub-clients.

glibc stub clients (``options timeout:T attempts:A``, read from the run's own config) beside
dnsperf, on a node whose cache forwards over TCP to an upstream dropping half of the SYNs (node1)
and on a control node (node2). Every property the ledger's states ``retried`` and
``after_give_up`` need is asserted here from the files themselves (tshark's dissection of the
captures, the stub's own lookup log, ``kit.read_dnstap``, ``kit.read_k8s_snapshot``), never
from numbers copied from the run. The helpers are shared with the live run of tests/test_lab.py.
"""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path

import polars as pl
import pytest
from conftest import tshark_fields

import kit
from kit.sources.k8s import attribute_clients, read_k8s_snapshot

REPO = Path(__file__).resolve().parent.parent
RUN = REPO / "data" / "ledger" / "forced-tcp-stub-clients"
CACHE = "169.254.20.10"
UPSTREAM = "169.254.169.253"
SYN = "tcp.flags.syn == 1 && tcp.flags.ack == 0"


# ----- helpers (also used by tests/test_lab.py on its live run) -----------------------------------


def resolv_options(run: Path) -> tuple[int, int]:
    """(timeout_s, attempts) of the stub clients, from the run's resolv.conf, checked against
    run.json's parameters."""
    meta = json.loads((run / "run.json").read_text())
    text = (run / "configs" / "resolv-stub.conf").read_text()
    (opts,) = re.findall(r"^options (.*)$", text, re.M)
    got = dict(o.split(":", 1) for o in opts.split())
    timeout, attempts = int(got["timeout"]), int(got["attempts"])
    assert (timeout, attempts) == (
        meta["parameters"]["stub_timeout_s"],
        meta["parameters"]["stub_attempts"],
    )
    return timeout, attempts


@functools.cache
def stub_packets(tshark: str, pcap: Path, stub_ip: str) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(Cached per capture.) The stub client's UDP queries to the cache and the cache's answers to it (not the copies
    quoted in ICMP errors): columns ``t`` (epoch s), ``port`` (the stub's), ``id``, ``name``
    (lower case, no trailing dot), ``key`` (name/type)."""

    def get(dfilter: str, port: str) -> pl.DataFrame:
        df = tshark_fields(
            tshark,
            pcap,
            dfilter,
            ["frame.time_epoch", port, "dns.id", "dns.qry.name", "dns.qry.type"],
        )
        return df.select(
            t=pl.col("frame.time_epoch").cast(pl.Float64),
            port=pl.col(port).cast(pl.Int64),
            id=pl.col("dns.id"),
            name=pl.col("dns.qry.name").str.to_lowercase(),
            key=pl.col("dns.qry.name").str.to_lowercase() + "/" + pl.col("dns.qry.type"),
        ).sort("t")

    q = get(
        f"ip.src == {stub_ip} && ip.dst == {CACHE} && !icmp && dns.flags.response == 0",
        "udp.srcport",
    )
    a = get(
        f"ip.src == {CACHE} && ip.dst == {stub_ip} && !icmp && dns.flags.response == 1",
        "udp.dstport",
    )
    return q, a


def reasks(q: pl.DataFrame, a: pl.DataFrame) -> pl.DataFrame:
    """Stub queries for a name/type asked before with no answer for it in between (glibc's next
    try): ``key``, ``t``, ``gap_s`` (since the previous query of that name/type), ``since_s``
    (since the first query of the name, any type: when the lookup reached the wire).

    glibc times a try from its first packet: in its single-request mode (which it switches to
    after a try where one of the A/AAAA pair was answered and the other not) it sends AAAA
    only once A is answered, and the next try comes a timeout after the A, so ``gap_s`` of such
    an AAAA is shorter than the timeout while ``since_s`` is not."""
    ev = pl.concat([q.with_columns(kind=pl.lit("q")), a.with_columns(kind=pl.lit("a"))]).sort(
        "key", "t"
    )
    ev = ev.with_columns(
        prev_kind=pl.col("kind").shift(1).over("key"),
        gap_s=pl.col("t") - pl.col("t").shift(1).over("key"),
        since_s=pl.col("t") - pl.col("t").filter(pl.col("kind") == "q").min().over("name"),
    )
    return ev.filter((pl.col("kind") == "q") & (pl.col("prev_kind") == "q")).select(
        "key", "t", "gap_s", "since_s"
    )


def first_answers(q: pl.DataFrame, a: pl.DataFrame) -> pl.DataFrame:
    """Per name/type the stub asked: ``name``, ``first_t`` (its first query), ``name_t`` (the
    first query of the name, any type: the lookup's first try on the wire), ``answer_t`` (the
    name/type's first answer; null when none), ``wait_s`` = answer_t - first_t and
    ``since_name_s`` = answer_t - name_t."""
    first = q.group_by("key").agg(pl.col("name").first(), first_t=pl.col("t").min())
    first = first.with_columns(name_t=pl.col("first_t").min().over("name"))
    ans = a.group_by("key").agg(answer_t=pl.col("t").min())
    return first.join(ans, on="key", how="left").with_columns(
        wait_s=pl.col("answer_t") - pl.col("first_t"),
        since_name_s=pl.col("answer_t") - pl.col("name_t"),
    )


def lookups(run: Path, node: dict) -> pl.DataFrame:
    """The stub's own log (``clients/stub-nodeN.tsv``) with ``name`` normalised and ``end_t``
    (epoch s when getaddrinfo returned)."""
    df = pl.read_csv(run / node["stub_output"], separator="\t")
    return df.with_columns(
        name=pl.col("name").str.strip_suffix(".").str.to_lowercase(),
        end_t=pl.col("ts").str.to_datetime(time_zone="UTC").dt.epoch("us") / 1e6
        + pl.col("duration_s"),
    )


def answers_after_lookup(a: pl.DataFrame, lk: pl.DataFrame) -> pl.DataFrame:
    """The cache's answers to the stub that arrived after the lookup of their name had returned
    (the stub had given up waiting): ``a``'s columns plus ``end_t``, ``result``."""
    return a.join(lk.select("name", "end_t", "result"), on="name").filter(
        pl.col("t") > pl.col("end_t")
    )


@functools.cache
def bounced(tshark: str, pcap: Path, stub_ip: str) -> pl.DataFrame:
    """(Cached per capture.) ICMP errors from the stub's address quoting a DNS answer of the cache: ``t``, ``name``."""
    df = tshark_fields(
        tshark,
        pcap,
        f"icmp.type == 3 && ip.src == {stub_ip} && dns.flags.response == 1",
        ["frame.time_epoch", "dns.qry.name"],
    )
    return df.select(
        t=pl.col("frame.time_epoch").cast(pl.Float64),
        name=pl.col("dns.qry.name").str.to_lowercase(),
    )


# ----- the committed run --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def meta() -> dict:
    return json.loads((RUN / "run.json").read_text())


@pytest.fixture(scope="module")
def nodes(meta: dict) -> tuple[dict, dict]:
    changed, control = meta["topology"]["nodes"]
    assert changed["role"] == "changed" and control["role"].startswith("control")
    return changed, control


def test_run_is_small_and_described(meta: dict) -> None:
    size = sum(f.stat().st_size for f in RUN.rglob("*") if f.is_file())
    assert size < 2_000_000
    p = meta["parameters"]
    assert p["scenario"] == "forced-tcp-syn-drops" and p["mode"] == "tcp" and p["dnstap"]
    assert p["stub_lps"] > 0 and p["nodes"] == 2 and p["control_nodes"] == 1
    timeout, attempts = resolv_options(RUN)
    assert attempts > 1
    readme = (RUN.parent / "README.md").read_text()
    assert f"--stub-timeout {timeout} --stub-attempts {attempts}" in readme


def test_stub_retries_after_the_resolv_conf_timeout(nodes: tuple[dict, dict], tshark: str) -> None:
    """On node1 the stub asks the same name and type again one resolv.conf timeout after a try
    that got no answer; some first tries were answered only after that timeout. node2 (UDP
    upstream) answers every first try within the timeout: no re-ask."""
    timeout, _ = resolv_options(RUN)
    changed, control = nodes
    q, a = stub_packets(tshark, RUN / changed["capture"], changed["stub_ip"])
    r = reasks(q, a)
    # glibc's next try comes one timeout after the previous (most), never before the timeout
    at_timeout = r.filter((pl.col("gap_s") - timeout).abs() < 0.1)
    assert at_timeout.height >= 1 and at_timeout.height >= 0.8 * r.height
    assert (r["since_s"] >= timeout - 0.05).all()
    waits = first_answers(q, a)
    late_retried = waits.filter(
        (pl.col("wait_s") > timeout) & pl.col("key").is_in(r["key"].implode())
    )
    assert late_retried.height >= 1
    # a first answer later than the timeout came after glibc had moved on: it had asked again,
    # or (one of the A/AAAA pair answered, the other's try timed out) returned what it had;
    # an answer within the timeout of the lookup's first query was never re-asked
    lk = lookups(RUN, changed)
    late = waits.filter(pl.col("wait_s") > timeout + 0.1)
    late = late.join(lk.select("name", "end_t"), on="name", how="left")
    assert late.height >= 1 and late["end_t"].null_count() == 0
    moved_on = pl.col("key").is_in(r["key"].implode()) | (pl.col("answer_t") > pl.col("end_t"))
    assert late.filter(~moved_on).is_empty()
    assert late.filter(pl.col("answer_t") > pl.col("end_t")).height >= 1
    early = waits.filter(pl.col("since_name_s") < timeout - 0.1)
    assert early.height >= 1 and not set(early["key"]) & set(r["key"])

    q2, a2 = stub_packets(tshark, RUN / control["capture"], control["stub_ip"])
    assert q2.height > 0 and reasks(q2, a2).is_empty()
    w2 = first_answers(q2, a2)
    assert w2["answer_t"].null_count() == 0 and w2["wait_s"].max() < timeout


def test_answers_after_the_stub_gave_up(nodes: tuple[dict, dict], tshark: str) -> None:
    """node1's cache answered some names after the stub's getaddrinfo had returned (the stub
    had given up: its lookup log says so), and the stub's namespace bounced those answers with
    ICMP port unreachable; some lookups ended EAI_AGAIN after timeout x attempts. None on
    node2."""
    timeout, attempts = resolv_options(RUN)
    changed, control = nodes
    pcap = RUN / changed["capture"]
    _q, a = stub_packets(tshark, pcap, changed["stub_ip"])
    lk = lookups(RUN, changed)
    after = answers_after_lookup(a, lk)
    assert after.height >= 1 and (after["result"] == "EAI_AGAIN").any()
    failed = lk.filter(pl.col("result") == "EAI_AGAIN")
    assert failed.height >= 1 and (failed["duration_s"] >= timeout * attempts - 0.1).all()
    icmp = bounced(tshark, pcap, changed["stub_ip"])
    assert icmp.height >= 1
    # every bounced answer is for a name whose lookup had already returned: getaddrinfo closes
    # its socket before it returns and the stub reads its clock after (5 ms allowed for that)
    j = icmp.join(lk.select("name", "end_t"), on="name", how="left")
    assert j["end_t"].null_count() == 0 and (j["t"] > j["end_t"] - 0.005).all()

    pcap2 = RUN / control["capture"]
    _q2, a2 = stub_packets(tshark, pcap2, control["stub_ip"])
    lk2 = lookups(RUN, control)
    assert (
        answers_after_lookup(a2, lk2).is_empty()
        and bounced(tshark, pcap2, control["stub_ip"]).is_empty()
    )
    assert (lk2["result"] == "ok").all() and lk2["duration_s"].max() < timeout


def test_syn_retransmissions_on_node1_only(
    meta: dict, nodes: tuple[dict, dict], tshark: str
) -> None:
    changed, control = nodes
    syn = tshark_fields(
        tshark, RUN / changed["capture"], f"ip.dst == {UPSTREAM} && {SYN}", ["tcp.stream"]
    )
    assert syn.height == meta["counts"]["syn_seen"]
    assert syn.height - syn["tcp.stream"].n_unique() >= 1  # SYNs resent on their connection
    assert tshark_fields(tshark, RUN / control["capture"], SYN, ["frame.number"]).is_empty()


def test_dnstap_of_both_nodes_holds_the_stub_clients(nodes: tuple[dict, dict], tshark: str) -> None:
    """Each node's dnstap file reads whole (STOP frame, nothing rejected), with client and
    forwarder messages; its stub-client transactions are the capture's (same names and types)."""
    for node in nodes:
        tap = kit.read_dnstap(RUN / node["dnstap"])
        m = tap.meta.row(0, named=True)
        assert m["stopped"] and m["messages_rejected"] == 0 and m["identities"] == [node["node"]]
        assert m["frames"] == m["control_frames"] + m["messages_kept"] > 2
        kinds = set(tap.messages["message_type"])
        assert {"CLIENT_QUERY", "CLIENT_RESPONSE", "FORWARDER_QUERY", "FORWARDER_RESPONSE"} <= kinds
        stub = tap.dns.filter(pl.col("client_ip") == node["stub_ip"])
        q, _a = stub_packets(tshark, RUN / node["capture"], node["stub_ip"])
        assert stub.height > 0
        # tshark prints the type's number, the kit its mnemonic
        mnemonic = {"1": "A", "28": "AAAA"}
        cap_keys = {
            k.rsplit("/", 1)[0] + "/" + mnemonic[k.rsplit("/", 1)[1]] for k in q["key"].to_list()
        }
        tap_keys = set((stub["qname"].str.to_lowercase() + "/" + stub["qtype"]).to_list())
        assert tap_keys == cap_keys


def test_pods_snapshot_maps_the_stub_clients(nodes: tuple[dict, dict]) -> None:
    """k8s/pods.json holds a pod per stub client (namespace stub, app=stub-client) at the stub's
    address, besides dnsperf's pod: the capture's stub queries are attributed to it."""
    snap = read_k8s_snapshot(RUN / "k8s" / "pods.json")
    for node in nodes:
        cap = kit.read_capture(RUN / node["capture"])
        dns = cap.dns.filter(pl.col("client_ip").is_in([node["stub_ip"], node["client_ip"]]))
        got = attribute_clients(dns, snap)
        by = dict(
            got.group_by("client_ip")
            .agg(
                pl.col("pod").unique(),
                pl.col("pod_namespace").unique(),
                pl.col("attribution").unique(),
            )
            .select("client_ip", pl.struct("pod", "pod_namespace", "attribution"))
            .rows()
        )
        stub, pods = by[node["stub_ip"]], by[node["client_ip"]]
        assert stub["attribution"] == ["pod"] and stub["pod_namespace"] == ["stub"]
        assert stub["pod"][0].startswith(f"stub-client-{node['node']}-")
        assert pods["pod_namespace"] == ["dnsperf"]
    doc = json.loads((RUN / "k8s" / "pods.json").read_text())
    labels = [i["metadata"]["labels"] for i in doc["items"] if i["metadata"]["namespace"] == "stub"]
    assert len(labels) == len(nodes) and all(lb["app"] == "stub-client" for lb in labels)


def test_stub_lookup_log_matches_the_capture(nodes: tuple[dict, dict], tshark: str) -> None:
    """Every lookup in the stub's log asked the cache (its name is in the capture), between its
    start and its end; the names are the run's never-asked names, each looked up once."""
    for node in nodes:
        lk = lookups(RUN, node)
        q, _a = stub_packets(tshark, RUN / node["capture"], node["stub_ip"])
        first = q.group_by("name").agg(t=pl.col("t").min())
        j = lk.with_columns(
            start=pl.col("ts").str.to_datetime(time_zone="UTC").dt.epoch("us") / 1e6
        ).join(first, on="name", how="left")
        assert j["t"].null_count() == 0
        assert (j["t"] >= j["start"] - 0.01).all() and (j["t"] <= j["end_t"]).all()
        names = (RUN / "clients" / f"stub-names-{node['node']}.txt").read_text().split()
        # each name once; the first ones of the file (threads may swap neighbours)
        assert lk.height == lk["name"].n_unique()
        assert set(lk["name"]) == {n.rstrip(".") for n in names[: lk.height]}


def test_readme_counts_are_the_data(meta: dict, nodes: tuple[dict, dict], tshark: str) -> None:
    """data/ledger/README.md's table: its counts for node1 are what the files hold (re-record
    the run, rewrite the table)."""
    timeout, _ = resolv_options(RUN)
    changed, _control = nodes
    pcap = RUN / changed["capture"]
    q, a = stub_packets(tshark, pcap, changed["stub_ip"])
    lk = lookups(RUN, changed)
    after = answers_after_lookup(a, lk)
    waits = first_answers(q, a)
    syn = tshark_fields(tshark, pcap, f"ip.dst == {UPSTREAM} && {SYN}", ["tcp.stream"])
    frames = [kit.read_dnstap(RUN / n["dnstap"]).meta["frames"][0] for n in nodes]
    row = {
        "stub lookups": f"| {lk.height}: ",
        "queries / answers": f"| {q.height} / {a.height} |",
        "re-asks": f"| {reasks(q, a).height}: ",
        "late pairs": f"| {waits.filter(pl.col('wait_s') > timeout).height} |",
        "after lookup": f"| {after.height} answers for {after['name'].n_unique()} names",
        "icmp": f"| {bounced(tshark, pcap, changed['stub_ip']).height} | 0 |",
        "syn": f"| {syn.height} / {syn.height - syn['tcp.stream'].n_unique()} ",
        "dnstap": f"| {frames[0]} (2 control)",
        "dnstap node2": f"| {frames[1]} (2 control)",
    }
    readme = (RUN.parent / "README.md").read_text()
    missing = {k: v for k, v in row.items() if v not in readme}
    assert not missing, missing
