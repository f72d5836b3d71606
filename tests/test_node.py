"""Node evidence readers (kit.sources.node): nstat, conntrack -S, ethtool -S, ip -s link.

Real output: the lab's node evidence in data/scenarios/*/node/ and tests/data/node/real/
(made by tests/data/node/make_samples.sh in a network namespace); the tools themselves in a
namespace made here (root). ENA counters cannot be made outside EC2: tests/data/node/format/
holds text in the format of AWS's ENA documentation (values made up, see tests/data/PROVENANCE).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import uuid
import warnings
from pathlib import Path

import polars as pl
import pytest
from conftest import require_root, require_tool

import kit
from kit.errors import InputFormatError, KitWarning
from kit.sources import node
from kit.sources.detect import detect

REPO = Path(__file__).resolve().parent.parent
SCENARIOS = sorted((REPO / "data" / "scenarios").glob("*/node/*/*"))
DATA = REPO / "tests" / "data" / "node"

# what the lab names each kind of file (the names are the lab's, the kinds the content's)
_EXPECTED = (
    ("nstat-", "nstat"),
    ("conntrack-S-", "conntrack_stats"),
    ("ethtool-S-", "ethtool_stats"),
    ("ip-s-link-", "ip_link_stats"),
)


def _expected_kind(name: str) -> str:
    return next(kind for prefix, kind in _EXPECTED if name.startswith(prefix))


def test_scenario_node_evidence_is_recognised() -> None:
    """Every node evidence file of every lab scenario gets its own kind (nstat output was taken
    for a Prometheus exposition before, and the metrics loader then failed on it)."""
    assert len(SCENARIOS) >= 7 * 6
    wrong = {
        str(f.relative_to(REPO)): (d.kind.value, d.reason)
        for f in SCENARIOS
        if (d := detect(f)).kind != _expected_kind(f.name)
    }
    assert not wrong


def test_real_samples_are_recognised() -> None:
    kinds = {f.name: detect(f).kind.value for f in (DATA / "real").iterdir()}
    assert kinds == {
        "nstat-udp-rcvbuf-before.txt": "nstat",
        "nstat-udp-rcvbuf-after.txt": "nstat",
        "proc-net-snmp.txt": "nstat",
        "proc-net-netstat.txt": "nstat",
        "conntrack-S-before.txt": "conntrack_stats",
        "conntrack-S-after.txt": "conntrack_stats",
        "ip-s-s-link.txt": "ip_link_stats",
        "ethtool-S-veth0.txt": "ethtool_stats",
    }
    assert detect(DATA / "format" / "ena-ethtool-S-eth0.txt").kind == "ethtool_stats"
    assert detect(DATA / "format" / "conntrack-race-S.txt").kind == "conntrack_stats"


def test_prometheus_text_is_still_prometheus(tmp_path: Path) -> None:
    """Samples without HELP/TYPE lines whose names are not SNMP counters stay Prometheus; a
    Prometheus metric named like an nstat counter but with labels stays Prometheus too."""
    p = tmp_path / "scrape.txt"
    p.write_text("up 1\nprocess_open_fds 12 1700000000000\ncoredns_build_info 1\n")
    assert detect(p).kind == "metrics_exposition"
    p.write_text('IpInReceives{instance="a"} 3\nIpInDelivers{instance="a"} 3\nup 1\n')
    assert detect(p).kind == "metrics_exposition"
    for prom in sorted((REPO.parent / "shared" / "fixtures" / "metrics").glob("*.prom")):
        assert detect(prom).kind == "metrics_exposition", prom


def _nstat_text_values(path: Path) -> dict[str, int]:
    out = {}
    for line in path.read_text().splitlines():
        parts = line.split()
        if len(parts) >= 2 and not line.startswith("#"):
            out[parts[0]] = int(parts[1])
    return out


@pytest.mark.parametrize("scenario", sorted(p.name for p in (REPO / "data/scenarios").iterdir()))
def test_scenario_evidence_reads_with_every_line_accounted(scenario: str) -> None:
    folder = REPO / "data" / "scenarios" / scenario / "node"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no rejected line, no warning
        ev = node.read_node_evidence(sorted(p for p in folder.rglob("*") if p.is_file()))
    assert ev.rejected.is_empty()
    assert (
        ev.accounted
        == ev.lines
        == sum(len(p.read_text().splitlines()) for p in folder.rglob("*") if p.is_file())
    )
    assert set(ev.counters["kind"]) == set(node.NODE_KINDS)
    after = folder / "node1" / "nstat-after.txt"
    got = ev.counters.filter(pl.col("source") == str(after))
    assert dict(zip(got["counter"], got["value"], strict=True)) == _nstat_text_values(after)
    eth = ev.counters.filter(kind="ethtool_stats")
    assert set(eth["interface"]) == {"up0"}  # from the file name ethtool-S-up0-after.txt
    links = ev.counters.filter(kind="ip_link_stats", counter="tx_packets")
    assert set(links["interface"]) >= {"lo", "up0"}


def test_deltas_between_before_and_after_files() -> None:
    folder = REPO / "data" / "scenarios" / "packet-rate-limit" / "node" / "node1"
    ev = node.read_node_evidence(folder)
    d = node.deltas(ev.counters).filter(kind="nstat", counter="UdpOutDatagrams")
    before = _nstat_text_values(folder / "nstat-before.txt")["UdpOutDatagrams"]
    after = _nstat_text_values(folder / "nstat-after.txt")["UdpOutDatagrams"]
    assert d.select("first", "last", "delta", "snapshots").row(0) == (
        before,
        after,
        after - before,
        2,
    )
    assert d["first_source"][0].endswith("nstat-before.txt")
    # one snapshot only (ip -s link after): totals, no growth
    one = node.deltas(ev.counters).filter(kind="ip_link_stats")
    assert one["delta"].null_count() == one.height


def test_proc_net_snmp_and_netstat_name_counters_the_nstat_way() -> None:
    real = DATA / "real"
    proc = node.read_nstat([real / "proc-net-snmp.txt", real / "proc-net-netstat.txt"])
    ns = node.read_nstat(real / "nstat-udp-rcvbuf-after.txt")
    assert proc.rejected.is_empty() and proc.accounted == proc.lines
    both = proc.counters.join(ns.counters, on="counter", suffix="_nstat")
    # taken one after the other in one namespace with no traffic between: equal values
    assert both.height > 250
    assert (both["value"] == both["value_nstat"]).all()
    assert proc.value("UdpRcvbufErrors") == ns.value("UdpRcvbufErrors") > 0
    assert proc.value("TcpMaxConn") == -1  # the one signed SNMP field


def test_conntrack_stats_per_cpu_and_snapshots() -> None:
    real = node.read_conntrack_stats(DATA / "real" / "conntrack-S-after.txt")
    text = (DATA / "real" / "conntrack-S-after.txt").read_text().splitlines()
    assert real.counters["cpu"].unique().sort().to_list() == list(range(len(text)))
    first = dict(re.findall(r"(\w+)=(\d+)", text[0]))
    row0 = real.counters.filter(cpu=0)
    assert {k: str(v) for k, v in zip(row0["counter"], row0["value"], strict=True)} == {
        k: v for k, v in first.items() if k != "cpu"
    }
    race = node.read_conntrack_stats(DATA / "format" / "conntrack-race-S.txt")
    assert race.counters["snapshot"].unique().sort().to_list() == [0, 1]
    d = node.deltas(race.counters).filter(counter="insert_failed")
    assert d.select("cpu", "delta").sort("cpu").rows() == [(0, 57), (1, 44)]


def test_ena_ethtool_counters_in_the_aws_documented_format() -> None:
    path = DATA / "format" / "ena-ethtool-S-eth0.txt"
    ev = node.read_ethtool_stats(path)
    assert ev.rejected.is_empty() and ev.accounted == ev.lines
    assert set(ev.counters["interface"]) == {"eth0"}  # from the prompt line
    assert ev.counters["snapshot"].unique().sort().to_list() == [0, 1]
    snaps = [
        dict(re.findall(r"^\s+(\w+): (\d+)$", part, re.M))
        for part in path.read_text().split("NIC statistics:")[1:]
    ]
    d = node.deltas(ev.counters)
    for name in (
        "bw_in_allowance_exceeded",
        "bw_out_allowance_exceeded",
        "pps_allowance_exceeded",
        "conntrack_allowance_exceeded",
        "linklocal_allowance_exceeded",
    ):
        row = d.filter(counter=name).row(0, named=True)
        assert row["delta"] == int(snaps[1][name]) - int(snaps[0][name])
    assert ev.value("linklocal_allowance_exceeded") == int(snaps[1]["linklocal_allowance_exceeded"])


def test_ip_s_s_link_columns_and_error_columns() -> None:
    ev = node.read_ip_link_stats(DATA / "real" / "ip-s-s-link.txt")
    assert ev.rejected.is_empty() and ev.accounted == ev.lines
    names = set(ev.counters["counter"])
    assert {"rx_bytes", "rx_packets", "tx_carrier", "rx_errors_crc", "tx_errors_heartbt"} <= names
    assert set(ev.counters["interface"]) == {"lo", "veth0", "veth1"}


def test_garbage_is_a_kit_error_with_file_and_line(tmp_path: Path) -> None:
    p = tmp_path / "nstat.txt"
    p.write_text("#kernel\nthis is not a counter line\nnor this\n")
    with pytest.raises(InputFormatError) as exc:
        node.read_nstat(p)
    assert exc.value.path == str(p) and exc.value.line == 2
    p.write_bytes(b"\x00\x01garbage\n")
    with pytest.raises(InputFormatError, match="not node evidence"):
        node.read_node_evidence(p)
    q = tmp_path / "eth.txt"
    q.write_text("NIC statistics:\n     rx_packets: 12\n     tx_packets: twelve\n")
    with pytest.warns(KitWarning, match="1 unreadable line"):
        ev = node.read_ethtool_stats(q)
    assert ev.rejected.select("line_no", "line").row(0) == (3, "     tx_packets: twelve")
    assert ev.counters.height == 1 and ev.accounted == ev.lines == 3
    with pytest.raises(InputFormatError) as exc2:
        node.read_ethtool_stats(q, strict=True)
    assert exc2.value.line == 3
    r = tmp_path / "ip.txt"
    r.write_text(
        "1: lo: <LOOPBACK,UP> mtu 65536 qdisc noqueue\n"
        "    RX:  bytes packets errors dropped  missed   mcast\n"
        "         1 2 3\n"
    )
    with pytest.raises(InputFormatError, match="3 values for the 6 columns of line 2"):
        node.read_ip_link_stats(r)


def test_lazy_export() -> None:
    # one top-level reader for all node evidence; the per-tool readers stay in kit.sources.node
    assert kit.read_node_evidence is node.read_node_evidence
    assert "read_nstat" not in kit.__all__ and callable(node.read_nstat)


def _netns(ns: str, *cmd: str) -> str:
    return subprocess.run(
        ["ip", "netns", "exec", ns, *cmd], check=True, capture_output=True, text=True, timeout=30
    ).stdout


@pytest.mark.lab
def test_against_the_tools_json_output() -> None:
    """`nstat -asz` and `ip -s -s link` text read as the tools' own JSON (`-j`) says, in a fresh
    namespace with traffic made there (no traffic between the two commands)."""
    require_root()
    require_tool("nstat", "iproute2")
    ns = f"dkn{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "netns", "add", ns], check=True, timeout=30)
    try:
        _netns(ns, "ip", "link", "set", "lo", "up")
        send = (
            "import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
            "for i in range(6): s.sendto(b'x', ('127.0.0.1', 9))"
        )
        _netns(ns, sys.executable, "-c", send)  # 6 datagrams to a closed port: UdpNoPorts
        text = _netns(ns, "nstat", "-asz")
        js = json.loads(_netns(ns, "nstat", "-asz", "-j"))["kernel"]
        link_text = _netns(ns, "ip", "-s", "-s", "link")
        link_js = json.loads(_netns(ns, "ip", "-j", "-s", "-s", "link"))
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=False, timeout=30)
    tmp = Path(f"/tmp/{ns}")
    tmp.mkdir()
    try:
        (tmp / "nstat.txt").write_text(text)
        (tmp / "nstat.json").write_text(json.dumps({"kernel": js}))
        (tmp / "link.txt").write_text(link_text)
        assert detect(tmp / "nstat.json").kind == "nstat"
        assert detect(tmp / "link.txt").kind == "ip_link_stats"
        got = node.read_nstat(tmp / "nstat.txt").counters
        got_j = node.read_nstat(tmp / "nstat.json").counters
        links = node.read_ip_link_stats(tmp / "link.txt").counters
    finally:
        for f in tmp.iterdir():
            f.unlink()
        tmp.rmdir()
    assert dict(zip(got["counter"], got["value"], strict=True)) == js
    assert js["UdpNoPorts"] == 6
    assert dict(zip(got_j["counter"], got_j["value"], strict=True)) == js
    lo = next(i for i in link_js if i["ifname"] == "lo")
    lo_rows = links.filter(interface="lo")
    got_lo = dict(zip(lo_rows["counter"], lo_rows["value"], strict=True))
    assert got_lo["rx_packets"] == lo["stats64"]["rx"]["packets"] >= 6
    assert got_lo["tx_bytes"] == lo["stats64"]["tx"]["bytes"]
    assert got_lo["rx_errors_crc"] == lo["stats64"]["rx"]["crc_errors"]


def test_out_of_range_values_are_counted_rejects(tmp_path: Path) -> None:
    """Mutation-fuzz findings: a CPU beyond Int32 broke the frame (polars ComputeError), a
    5,000-digit value Python's int(); both are now rejected lines."""
    p = tmp_path / "ct.txt"
    p.write_text(
        "cpu=0 found=1 insert_failed=0\ncpu=4294967296 found=1 insert_failed=0\n"
        f"cpu=1 found={'9' * 5000} insert_failed=0\n"
    )
    with pytest.warns(KitWarning, match="2 unreadable line"):
        ev = node.read_conntrack_stats(p)
    assert ev.rejected["line_no"].to_list() == [2, 3] and ev.accounted == ev.lines == 3
    q = tmp_path / "nstat.txt"
    q.write_text(f"#kernel\nUdpInErrors {'1' * 5000} 0.0\nUdpInDatagrams 5 0.0\n")
    with pytest.warns(KitWarning):
        ev2 = node.read_nstat(q)
    assert ev2.value("UdpInDatagrams") == 5 and ev2.rejected["line_no"].to_list() == [2]


def test_notebook_inputs_take_node_evidence_not_as_metrics() -> None:
    """The notebooks' metrics input took the scenario's nstat files as metric exports before
    (dnskit report then read nstat counters as Prometheus samples); now they are node evidence."""
    from kit.sources.artefacts import resolve_inputs

    folder = REPO / "data" / "scenarios" / "healthy"
    got = resolve_inputs(str(folder), metrics=None, node_evidence=None)
    metrics = got["metrics"] or []
    assert not [m for m in metrics if "/node/" in m]
    evidence = got["node_evidence"] or []
    assert sorted(Path(p).name for p in evidence) == sorted(p.name for p in folder.glob("node/*/*"))
