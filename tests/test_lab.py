"""The incident lab (lab/) and the committed sample it produced (data/sample).

Lab runs need root (network namespaces) and the Debian tools; they are marked ``lab``. Two short
runs (TCP mode and UDP mode, same SYN drops) are started in parallel once per module. Every
assertion is checked against tshark's own dissection of the captures, against nftables' own
counters, or against unbound's own statistics, never against numbers copied from a run.
Every test that starts a lab checks afterwards that no namespace with its prefix is left, and
deletes any leftover so that a failing test does not leave namespaces behind.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pytest
from conftest import require_root, require_tool, tshark_fields

import kit

UPSTREAM = "169.254.169.253"
CACHE = "169.254.20.10"
REPO = Path(__file__).resolve().parent.parent
# the committed sample; DNSKIT_LAB_SAMPLE checks another run folder with the same tests
SAMPLE = Path(os.environ.get("DNSKIT_LAB_SAMPLE", REPO / "data" / "sample"))
if str(REPO) not in sys.path:  # lab/ is a package at the repo root, not installed with the kit
    sys.path.insert(0, str(REPO))


# ----- helpers ------------------------------------------------------------------------------


def count(tshark: str, pcap: Path, dfilter: str) -> int:
    return tshark_fields(tshark, pcap, dfilter, ["frame.number"]).height


def client_latencies(tshark: str, pcap: Path) -> pl.Series:
    """tshark's dns.time of every answer the cache sent to a client (seconds)."""
    df = tshark_fields(tshark, pcap, f"dns.flags.response == 1 && ip.src == {CACHE}", ["dns.time"])
    return df["dns.time"].cast(pl.Float64)


def check_syn_counts(meta: dict, syns: int, synacks: int) -> None:
    """nftables counted every SYN reaching the upstream: the capture holds as many, and the
    dropped ones are those that got no SYN/ACK back. If tcpdump itself lost packets (it says so:
    "dropped by kernel", or received more than it captured), the capture may miss that many."""
    seen, dropped = meta["counts"]["syn_seen"], meta["counts"]["syn_dropped"]
    td = meta["counts"]["tcpdump"]["node1"]
    lost = td.get("dropped by kernel", 0) + td["received by filter"] - td["captured"]
    assert dropped > 0
    if lost == 0:
        assert seen == syns and dropped == syns - synacks
    else:
        assert syns <= seen <= syns + lost
        assert seen - dropped >= synacks


SYN = "tcp.flags.syn == 1 && tcp.flags.ack == 0"
SYNACK = "tcp.flags.syn == 1 && tcp.flags.ack == 1"


def check_log_against_stats(log: kit.ResolverLog, stats: dict[str, str]) -> None:
    """unbound's log agrees with its own counters (stats taken after the clients stopped):
    one query line per query received, one cached reply line per cache hit; replies to queries
    still waiting upstream when unbound stopped are missing, never extra."""
    assert log.rejected.height == 0
    assert log.received.height == int(stats["total.num.queries"])
    assert int(log.queries["cached"].sum()) == int(stats["total.num.cachehits"])
    assert log.queries.height <= log.received.height


def netns_names() -> set[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    return {line.split()[0] for line in out.splitlines() if line.strip()}


def _leftovers(prefix: str) -> list[str]:
    return sorted(n for n in netns_names() if n.startswith(prefix + "-"))


@pytest.fixture
def ns_guard() -> Iterator[list[str]]:
    """Prefixes used by the test; on teardown, fail if any namespace is left (and delete it)."""
    prefixes: list[str] = []
    yield prefixes
    left = [n for p in prefixes for n in _leftovers(p)]
    for n in left:
        subprocess.run(["ip", "netns", "delete", n], check=False)
    assert not left, f"lab left namespaces behind: {left}"


def lab_argv(out: Path, prefix: str, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "lab",
        "run",
        "--out",
        str(out),
        "--prefix",
        prefix,
        "--replace",
        *extra,
    ]


def _need_lab_tools() -> None:
    require_root()
    for tool, pkg in [
        ("ip", "iproute2"),
        ("nsd", "nsd"),
        ("unbound", "unbound"),
        ("dnsperf", "dnsperf"),
        ("tcpdump", "tcpdump"),
        ("nft", "nftables"),
        ("prometheus", "prometheus"),
    ]:
        require_tool(tool, pkg)


SHORT = [
    "--phases",
    "healthy=3,incident=15",
    "--nodes",
    "1",
    "--control-nodes",
    "0",
    "--qps",
    "20",
    "--client-timeout",
    "12",
    "--drop",
    "random:0.5",
    "--gzip-over",
    "0",
]


STUB = ["--stub-lps", "2", "--stub-timeout", "1", "--stub-attempts", "2"]
"""glibc stub clients giving up on a try after 1 s (the rate run; test_stub_clients_live)."""


@pytest.fixture(scope="module")
def short_runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Path]]:
    """One TCP-mode and one UDP-mode run, in parallel (separate namespaces), ~40 s in all."""
    _need_lab_tools()
    base = tmp_path_factory.mktemp("lab")
    tag = f"{os.getpid() % 100000}"
    runs = {
        "tcp": ("t" + tag, ["--mode", "tcp"]),
        "udp": ("u" + tag, ["--mode", "udp", "--no-prometheus"]),
        # the other impairment: SYNs over 4/s per source dropped (overrides SHORT's --drop);
        # with glibc stub clients that give up on a try after 1 s (test_stub_clients_live)
        "rate": ("r" + tag, ["--mode", "tcp", "--no-prometheus", "--drop", "rate:4", *STUB]),
    }
    procs = {
        mode: subprocess.Popen(
            lab_argv(base / mode, "dkt" + prefix, *SHORT, *extra),
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for mode, (prefix, extra) in runs.items()
    }
    results = {}
    try:
        for mode, p in procs.items():
            _out, err = p.communicate(timeout=150)
            assert p.returncode == 0, f"{mode} lab failed: {err[-3000:]}"
            results[mode] = base / mode
    finally:
        for p in procs.values():
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                p.wait(timeout=30)
        left = [n for prefix, _ in runs.values() for n in _leftovers("dkt" + prefix)]
        for n in left:
            subprocess.run(["ip", "netns", "delete", n], check=False)
    assert not left, f"lab left namespaces behind: {left}"
    yield results


# ----- short runs: the proof -----------------------------------------------------------------


@pytest.mark.lab
def test_tcp_mode_syn_retransmissions_and_p99(short_runs: dict[str, Path], tshark: str) -> None:
    run = short_runs["tcp"]
    pcap = run / "captures" / "node1.pcap"
    meta = json.loads((run / "run.json").read_text())
    to_up = f"ip.dst == {UPSTREAM} && {SYN}"
    retx = count(tshark, pcap, f"{to_up} && tcp.analysis.retransmission")
    assert retx > 0, "no SYN retransmission towards the upstream"
    # nftables counted every SYN reaching the upstream: the capture holds exactly as many, and the
    # dropped ones are those that got no SYN/ACK back
    syns = count(tshark, pcap, to_up)
    synacks = count(tshark, pcap, f"ip.src == {UPSTREAM} && {SYNACK}")
    check_syn_counts(meta, syns, synacks)
    # retransmitted SYNs come 1 s, 3 s, 7 s (and 15 s) after the connection's first SYN
    df = tshark_fields(tshark, pcap, to_up, ["tcp.stream", "frame.time_epoch"]).with_columns(
        pl.col("frame.time_epoch").cast(pl.Float64)
    )
    offsets = df.with_columns(
        (pl.col("frame.time_epoch") - pl.col("frame.time_epoch").min().over("tcp.stream")).alias(
            "d"
        )
    ).filter(pl.col("d") > 0)["d"]
    assert offsets.len() == retx
    near = offsets.map_elements(
        lambda d: min(abs(d - t) for t in (1, 3, 7, 15)), return_dtype=pl.Float64
    )
    assert (near < 0.5).all(), sorted(offsets.to_list())
    # the clients saw it: p99 of the cache's answers (tshark dns.time) is at least 1 s
    lat = client_latencies(tshark, pcap)
    assert lat.len() > 200
    assert lat.quantile(0.99, interpolation="higher") >= 1.0
    # the change was recorded between start and end, and no SYN left before it
    assert meta["start"] < meta["change_time"] < meta["end"]
    change = dt.datetime.fromisoformat(meta["change_time"]).timestamp()
    assert df["frame.time_epoch"].min() >= change


@pytest.mark.lab
def test_udp_mode_same_drops_no_syn_fast(short_runs: dict[str, Path], tshark: str) -> None:
    run = short_runs["udp"]
    pcap = run / "captures" / "node1.pcap"
    meta = json.loads((run / "run.json").read_text())
    assert meta["parameters"]["drop"] == "random:0.5"  # the same impairment is in place
    assert count(tshark, pcap, f"ip.dst == {UPSTREAM} && {SYN}") == 0
    assert count(tshark, pcap, "tcp.analysis.retransmission") == 0
    assert meta["counts"]["syn_seen"] == 0
    # the upstream got the misses over UDP (nftables counter = UDP queries in the capture)
    udp_up = count(tshark, pcap, f"udp && ip.dst == {UPSTREAM} && dns.flags.response == 0")
    assert udp_up > 50 and meta["counts"]["nftables"]["udp_queries"]["packets"] == udp_up
    lat = client_latencies(tshark, pcap)
    assert lat.len() > 200
    assert lat.quantile(0.99, interpolation="higher") < 0.050


@pytest.mark.lab
def test_rate_limit_drop(short_runs: dict[str, Path], tshark: str) -> None:
    """--drop rate:4: nftables lets about 4 SYNs/s (plus its burst of 5) through, drops the rest."""
    run = short_runs["rate"]
    pcap = run / "captures" / "node1.pcap"
    meta = json.loads((run / "run.json").read_text())
    assert meta["parameters"]["drop"] == "rate:4"
    syns = count(tshark, pcap, f"ip.dst == {UPSTREAM} && {SYN}")
    acks = tshark_fields(tshark, pcap, f"ip.src == {UPSTREAM} && {SYNACK}", ["frame.time_epoch"])
    check_syn_counts(meta, syns, acks.height)
    t = acks["frame.time_epoch"].cast(pl.Float64)
    # accepted SYNs in any 1 s bin: at most rate + burst (4 + 5), +1 for bin edges
    per_s = t.floor().value_counts()["count"]
    assert per_s.max() <= 4 + 5 + 1, per_s.max()
    retx = f"ip.dst == {UPSTREAM} && {SYN} && tcp.analysis.retransmission"
    assert count(tshark, pcap, retx) > 0


@pytest.mark.lab
def test_run_folder_contents(short_runs: dict[str, Path]) -> None:
    run = short_runs["tcp"]
    meta = json.loads((run / "run.json").read_text())
    for rel in (
        "captures/node1.pcap",
        "logs/unbound-node1.log",
        "logs/nsd.log",
        "configs/nsd.conf",
        "configs/nftables.nft",
        "configs/unbound-node1.conf",
        "configs/unbound-node1.incident.conf",
        "configs/prometheus.yml",
        "dnsperf/dnsperf-node1.txt",
    ):
        assert (run / rel).is_file(), rel
    assert "tcp-query-count: 1" in (run / "configs" / "nsd.conf").read_text()
    assert "tcp-upstream: yes" in (run / "configs" / "unbound-node1.incident.conf").read_text()
    assert meta["sysctl"]["node1"]["net.ipv4.tcp_syn_retries"] >= 3
    # no absolute path of the machine is written into the run folder's text files
    for f in run.rglob("*"):
        if f.suffix in {".conf", ".nft", ".yml", ".json", ".log", ".txt"}:
            assert str(run) not in f.read_text(errors="replace"), f
    # the Prometheus export is the HTTP API's own answer, readable by the kit
    for item in meta["prometheus_exports"]:
        body = json.loads((run / item["file"]).read_text())
        assert body["status"] == "success" and body["data"]["resultType"] == "matrix"
    p99 = kit.read_metrics(run / "prometheus" / "p99_response_time_5s.json")
    assert p99["value"].drop_nans().max() >= 1.0
    # unbound's log agrees with unbound's own counters
    log = kit.read_unbound_log(run / "logs" / "unbound-node1.log")
    stats = dict(
        line.split("=", 1)
        for line in (run / "logs" / "unbound-stats-node1.txt").read_text().splitlines()
    )
    check_log_against_stats(log, stats)
    conf = kit.read_unbound_conf(run / "configs" / "unbound-node1.incident.conf")
    assert conf.select("upstream", "force_tcp").rows() == [(f"{UPSTREAM}:53", True)]


@pytest.mark.lab
def test_stub_clients_live(short_runs: dict[str, Path], tshark: str) -> None:
    """--stub-lps/--stub-timeout/--stub-attempts on a live run: the stub clients' own pods
    (namespace, address, k8s/pods.json), their resolv.conf, and glibc asking the same name again
    one resolv.conf timeout after a try the SYN drops left unanswered."""
    from test_ledger_data import reasks, resolv_options, stub_packets

    run = short_runs["rate"]
    meta = json.loads((run / "run.json").read_text())
    (node,) = meta["topology"]["nodes"]
    assert node["stub_ip"] != node["client_ip"] and node["stub_namespace"].endswith("-stub1")
    timeout, attempts = resolv_options(run)
    assert (timeout, attempts) == (1, 2)
    lk = pl.read_csv(run / node["stub_output"], separator="\t")
    assert lk.height > 10 and lk["name"].n_unique() == lk.height
    q, a = stub_packets(tshark, run / node["capture"], node["stub_ip"])
    assert q.height >= 2 * lk.height and a.height > 0  # A and AAAA per lookup, at least
    r = reasks(q, a)
    assert (r.filter((pl.col("gap_s") - timeout).abs() < 0.1)).height >= 1
    assert (r["since_s"] >= timeout - 0.05).all()
    snap = kit.read_k8s_snapshot(run / "k8s" / "pods.json")
    got = kit.attribute_clients(
        pl.DataFrame(
            {"client_ip": [node["stub_ip"]], "ts": [dt.datetime.fromisoformat(meta["end"])]}
        ).with_columns(pl.col("ts").dt.cast_time_unit("us")),
        snap,
    )
    assert got.row(0, named=True)["pod_namespace"] == "stub"
    assert got.row(0, named=True)["attribution"] == "pod"


# ----- refusal and cleanup --------------------------------------------------------------------


@pytest.mark.lab
def test_refuses_when_namespace_exists(tmp_path: Path, ns_guard: list[str]) -> None:
    _need_lab_tools()
    prefix = f"dkr{os.getpid() % 100000}"
    ns_guard.append(prefix)
    subprocess.run(["ip", "netns", "add", f"{prefix}-up"], check=True)
    try:
        p = subprocess.run(
            lab_argv(tmp_path / "out", prefix, *SHORT),
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert p.returncode == 1
        assert f"network namespaces ['{prefix}-up'] already exist" in p.stderr
        assert _leftovers(prefix) == [f"{prefix}-up"]  # not ours: left alone
    finally:
        subprocess.run(["ip", "netns", "delete", f"{prefix}-up"], check=False)


@pytest.mark.lab
@pytest.mark.parametrize(("sig", "prometheus"), [(signal.SIGTERM, True), (signal.SIGINT, False)])
def test_cleanup_on_signal(
    tmp_path: Path, ns_guard: list[str], sig: signal.Signals, prometheus: bool
) -> None:
    _need_lab_tools()
    prefix = f"dkc{sig.value}{os.getpid() % 10000}"
    ns_guard.append(prefix)
    extra = [] if prometheus else ["--no-prometheus"]
    argv = lab_argv(tmp_path / "out", prefix, "--phases", "healthy=60,incident=60", "-v", *extra)
    p = subprocess.Popen(argv, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    err = ""
    try:
        deadline = time.monotonic() + 60
        assert p.stderr is not None
        # wait until the clients run: every kind of process and namespace exists
        while time.monotonic() < deadline:
            line = p.stderr.readline()
            err += line
            if "started dnsperf-node2" in line:
                break
            if not line and p.poll() is not None:
                pytest.fail(f"lab exited ({p.returncode}) before its clients started: {err}")
        else:
            pytest.fail(f"lab did not start: {err}")
        pids = [int(x) for x in re.findall(r"started \S+ \(pid (\d+)\)", err)]
        # nsd, 2 unbound, 2 tcpdump, 2 dnsperf (+ 2 exporters and prometheus)
        assert len(pids) == (10 if prometheus else 7)
        # up, node1, node2, pods1, pods2 (+ mon)
        assert len(_leftovers(prefix)) == (6 if prometheus else 5)
        p.send_signal(sig)
        rest = p.communicate(timeout=60)[1]
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert p.returncode in (1, 130), rest
    assert "cleaned up" in rest
    assert _leftovers(prefix) == []
    for pid in pids:
        assert (
            not Path(f"/proc/{pid}").exists()
            or "Z" in Path(f"/proc/{pid}/stat").read_text().split()[2]
        ), pid


@pytest.mark.lab
def test_cleanup_on_exception(
    tmp_path: Path, ns_guard: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A failure in the middle of the set-up (here: monitoring) still stops everything started."""
    _need_lab_tools()
    from lab.core import Lab, LabConfig, run_lab

    started: list[int] = []
    orig_start = Lab.start

    def start(self: Lab, name: str, *a: object, **k: object) -> None:
        orig_start(self, name, *a, **k)  # type: ignore[arg-type]
        started.append(self.procs[name].pid)

    def boom(self: Lab) -> None:
        raise RuntimeError("monitoring failed on purpose")

    monkeypatch.setattr(Lab, "start", start)
    monkeypatch.setattr(Lab, "start_monitoring", boom)
    prefix = f"dke{os.getpid() % 100000}"
    ns_guard.append(prefix)
    cfg = LabConfig(out=tmp_path / "out", prefix=prefix, nodes=1, control_nodes=0)
    with pytest.raises(RuntimeError, match="on purpose"):
        run_lab(cfg)
    assert len(started) == 3  # nsd, unbound, tcpdump
    assert _leftovers(prefix) == []
    for pid in started:
        assert (
            not Path(f"/proc/{pid}").exists()
            or "Z" in Path(f"/proc/{pid}/stat").read_text().split()[2]
        ), pid


# ----- the committed sample ------------------------------------------------------------------


@pytest.fixture(scope="module")
def sample() -> dict[str, object]:
    if not (SAMPLE / "run.json").is_file():
        pytest.fail("data/sample/run.json missing: regenerate it with `make sample`")
    return json.loads((SAMPLE / "run.json").read_text())


def test_sample_size_and_layout(sample: dict[str, object]) -> None:
    total = sum(f.stat().st_size for f in SAMPLE.rglob("*") if f.is_file())
    assert total <= 15 * 1024 * 1024, f"data/sample is {total / 2**20:.1f} MiB"
    nodes = sample["topology"]["nodes"]  # type: ignore[index]
    assert [n["role"] for n in nodes] == ["changed", "control (UDP all along)"]
    for n in nodes:
        for key in ("capture", "unbound_log", "dnsperf_output"):
            assert (SAMPLE / n[key]).is_file()


def _after_change(sample: dict[str, object], df: pl.DataFrame, col: str = "ts") -> pl.DataFrame:
    change = pl.lit(sample["change_time"]).str.to_datetime(time_zone="UTC")
    fix = sample.get("fix_time")
    out = df.filter(pl.col(col) >= change)
    if fix:
        out = out.filter(pl.col(col) < pl.lit(fix).str.to_datetime(time_zone="UTC"))
    return out


def test_sample_latency_modes_1_3_7(sample: dict[str, object]) -> None:
    log = kit.read_unbound_log(SAMPLE / "logs" / "unbound-node1.log")
    slow = _after_change(sample, log.queries).filter(pl.col("duration_s") > 0.5)["duration_s"]
    assert slow.len() > 100
    # the kernel retries a lost SYN 1 s, 3 s, 7 s after the first: answers wait that long
    # (+ one round trip, a few ms here)
    share = {t: ((slow - t).abs() < 0.2).mean() for t in (1.0, 3.0, 7.0)}
    assert all(s > 0.05 for s in share.values()), share
    assert sum(share.values()) > 0.7, (
        share
    )  # the rest: lost 4 times, unbound gave up at 10 s and retried
    # before the change and on the control node, no answer waited that long
    before = log.queries.filter(
        pl.col("ts") < pl.lit(sample["change_time"]).str.to_datetime(time_zone="UTC")
    )
    assert before["duration_s"].max() < 0.5
    ctl = kit.read_unbound_log(SAMPLE / "logs" / "unbound-node2.log")
    assert ctl.queries["duration_s"].quantile(0.99) < 0.05


def test_sample_unbound_log_matches_unbound_counters() -> None:
    for node in ("node1", "node2"):
        log = kit.read_unbound_log(SAMPLE / "logs" / f"unbound-{node}.log")
        stats = dict(
            line.split("=", 1)
            for line in (SAMPLE / "logs" / f"unbound-stats-{node}.txt").read_text().splitlines()
        )
        check_log_against_stats(log, stats)


def test_sample_packet_rate_far_below_1024_pps(sample: dict[str, object], tshark: str) -> None:
    pcap = SAMPLE / "captures" / "node1.pcap"
    t = tshark_fields(tshark, pcap, f"ip.dst == {UPSTREAM}", ["frame.time_epoch"])[
        "frame.time_epoch"
    ].cast(pl.Float64)
    per_s = t.floor().value_counts()["count"]
    assert per_s.len() > 60  # traffic all along the run
    assert per_s.max() < 1024 / 5, per_s.max()  # the resolver's limit is 1024 pps per interface


@pytest.mark.slow
def test_sample_slow_answers_have_retransmitted_syns(
    sample: dict[str, object], tshark: str
) -> None:
    """Attribute each slow answer to the upstream TCP connection that carried its query."""
    pcap = SAMPLE / "captures" / "node1.pcap"
    # client side: name and latency of each answer to a pod
    cli = tshark_fields(
        tshark, pcap, f"dns.flags.response == 1 && ip.src == {CACHE}", ["dns.qry.name", "dns.time"]
    )
    cli = cli.with_columns(pl.col("dns.time").cast(pl.Float64))
    # upstream side: the stream each query to the upstream went over, and the SYNs of each stream
    q = tshark_fields(
        tshark,
        pcap,
        f"tcp && ip.dst == {UPSTREAM} && dns.flags.response == 0",
        ["tcp.stream", "dns.qry.name"],
    )
    syns = (
        tshark_fields(tshark, pcap, f"ip.dst == {UPSTREAM} && {SYN}", ["tcp.stream"])
        .group_by("tcp.stream")
        .len("syns")
    )
    up = (
        q.join(syns, on="tcp.stream", how="left").group_by("dns.qry.name").agg(pl.col("syns").max())
    )
    slow = cli.filter(pl.col("dns.time") > 0.9).join(up, on="dns.qry.name", how="left")
    assert slow.height > 100
    # answers that took ~1 s / ~3 s / ~7 s went over connections with 2 / 3 / 4 SYNs
    for t, n in ((1.0, 2), (3.0, 3), (7.0, 4)):
        band = slow.filter((pl.col("dns.time") - t).abs() < 0.2)
        assert band.height > 5
        assert (band["syns"] == n).mean() > 0.9, (t, band["syns"].value_counts())
    assert (slow["syns"] >= 2).mean() > 0.9


def test_sample_prometheus_export(sample: dict[str, object]) -> None:
    p99 = kit.read_metrics(SAMPLE / "prometheus" / "p99_response_time_5s.json").drop_nans("value")
    inc = _after_change(sample, p99)
    by = inc.group_by("node").agg(pl.col("value").max()).sort("node")
    assert by["value"].to_list()[0] >= 1.0  # node1 after the change: seconds
    assert by["value"].to_list()[1] < 0.1  # node2 (control)


def test_sample_attribution_through_the_kit(sample: dict[str, object]) -> None:
    """kit.sources.capture's own attribution join agrees: ~1/3/7 s answers waited for 1/2/3 lost SYNs."""
    from kit.analyses.attribution import attribute_slow_answers
    from kit.analyses.rates import packet_rates

    cap = kit.read_capture(SAMPLE / "captures" / "node1.pcap", cache=False, progress=False)
    att = attribute_slow_answers(cap, slow_s=0.9)
    assert att.height > 100
    for t, n in ((1.0, 1), (3.0, 2), (7.0, 3)):
        band = att.filter((pl.col("latency_s") - t).abs() < 0.2)
        assert band.height > 5
        assert (band["syn_retransmits"] == n).mean() > 0.9, (
            t,
            band["syn_retransmits"].value_counts(),
        )
    assert att["explained"].mean() > 0.8
    to_up = cap.packets.filter(pl.col("dst_ip") == UPSTREAM)
    rates = packet_rates(to_up)
    assert rates.height > 60 and rates["pps"].max() < 1024 / 5
    assert not rates["above_limit"].any()


# ----- pieces of the lab that need neither root nor a run --------------------------------------


def test_parse_phases_and_config_validation(tmp_path: Path) -> None:
    from lab.core import LabConfig, Phase, parse_phases

    assert parse_phases("healthy=3,incident=15") == (Phase("healthy", 3.0), Phase("incident", 15.0))
    for bad, msg in [
        ("healthy=3,fix=2", "'incident' before 'fix'"),
        ("incident=3,incident=2", "no phase twice"),
        ("incident=5,healthy=3", "order"),
        ("healthy=x,incident=1", "bad phase duration"),
        ("calm=3,incident=1", "bad phase"),
        ("healthy=0,incident=1", "must last > 0 s"),
    ]:
        with pytest.raises(ValueError, match=msg):
            parse_phases(bad)
    with pytest.raises(ValueError, match="drop must be"):
        LabConfig(out=tmp_path, drop="random:1.5")
    with pytest.raises(ValueError, match="prefix"):
        LabConfig(out=tmp_path, prefix="Bad-Prefix")
    with pytest.raises(ValueError, match="control_nodes"):
        LabConfig(out=tmp_path, nodes=1, control_nodes=1)


def test_stub_options_validation(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--stub-timeout/--stub-attempts: glibc's ranges (timeout 1..30 s, attempts 1..5), whole
    numbers, only with stub clients; checked before anything is started."""
    from lab.cli import config_values, main
    from lab.core import LabConfig

    ok = LabConfig(out=tmp_path, stub_lps=2, stub_timeout_s=2, stub_attempts=3)
    assert (ok.stub_timeout_s, ok.stub_attempts) == (2, 3)
    for kwargs, msg in [
        ({"stub_timeout_s": 2}, "needs stub_lps > 0"),
        ({"stub_attempts": 3}, "needs stub_lps > 0"),
        ({"stub_lps": 1, "stub_timeout_s": 0}, r"stub_timeout_s must be a whole number 1\.\.30"),
        ({"stub_lps": 1, "stub_timeout_s": 31}, r"1\.\.30"),
        ({"stub_lps": 1, "stub_timeout_s": 2.5}, r"1\.\.30"),
        ({"stub_lps": 1, "stub_timeout_s": True}, r"1\.\.30"),
        ({"stub_lps": 1, "stub_attempts": 6}, r"stub_attempts must be a whole number 1\.\.5"),
        ({"stub_lps": -1}, "stub_lps must be >= 0"),
    ]:
        with pytest.raises(ValueError, match=msg):
            LabConfig(out=tmp_path, **kwargs)
    vals = config_values("forced-tcp-syn-drops", stub_lps=3.0, stub_timeout_s=2, stub_attempts=3)
    assert (vals["stub_lps"], vals["stub_timeout_s"], vals["stub_attempts"]) == (3.0, 2, 3)
    # the command line refuses before it needs root or starts anything
    out = tmp_path / "never"
    with pytest.raises(SystemExit) as exc:
        main(["run", "--out", str(out), "--stub-timeout", "2"])
    assert exc.value.code == 1 and "needs stub_lps > 0" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["run", "--out", str(out), "--stub-lps", "1", "--stub-attempts", "1.5"])
    assert exc.value.code == 2 and "invalid int value" in capsys.readouterr().err
    assert not out.exists()


def test_stub_resolv_conf_and_pods(tmp_path: Path) -> None:
    """The stub clients' resolv.conf carries the options; outside ndots-search-expansion they get
    namespaces and pods of their own (k8s/pods.json maps 169.254.2.N to them, beside dnsperf's
    169.254.1.N); in ndots-search-expansion the stub is the pods' application."""
    from lab.core import CACHE_IP, Lab, LabConfig, Phase

    lab = Lab(LabConfig(out=tmp_path / "r", stub_lps=2, stub_timeout_s=2, stub_attempts=3))
    try:
        assert lab.stub_own_ns and lab.ns("stub", 1).endswith("-stub1")
        conf = lab.stub_resolv_conf()
        assert f"nameserver {CACHE_IP}" in conf and "options timeout:2 attempts:3" in conf
        assert "search" not in conf  # the stub's names are fully qualified
        (lab.out / "k8s").mkdir(parents=True)
        lab.write_k8s_snapshot(time.time() - 60)
        snap = kit.read_k8s_snapshot(
            lab.out / "k8s" / "pods.json", taken_at=dt.datetime.now(dt.UTC)
        )
        ips = [f"169.254.{k}.{i}" for i in (1, 2) for k in (1, 2)]
        got = kit.attribute_clients(
            pl.DataFrame({"client_ip": ips}).with_columns(
                ts=pl.lit(dt.datetime.now(dt.UTC)).dt.cast_time_unit("us")
            ),
            snap,
        )
        assert got["attribution"].to_list() == ["pod"] * 4
        assert got["pod_namespace"].to_list() == ["dnsperf", "stub"] * 2
        assert got["workload_name"].to_list()[1::2] == ["stub-client-node1", "stub-client-node2"]
        doc = json.loads((lab.out / "k8s" / "pods.json").read_text())
        stub = [i for i in doc["items"] if i["metadata"]["namespace"] == "stub"]
        assert [i["metadata"]["labels"]["app"] for i in stub] == ["stub-client"] * 2
        assert len({i["metadata"]["uid"] for i in doc["items"]}) == len(doc["items"])
    finally:
        lab.cleanup()
    ndots = Lab(
        LabConfig(
            out=tmp_path / "n",
            scenario="ndots-search-expansion",
            mode="udp",
            stub_lps=1,
            stub_timeout_s=3,
            phases=(Phase("healthy", 1), Phase("incident", 1)),
        )
    )
    try:
        assert not ndots.stub_own_ns
        assert "options ndots:5 timeout:3\n" in ndots.resolv_conf(ndots=5)
    finally:
        ndots.cleanup()
    plain = Lab(LabConfig(out=tmp_path / "p"))
    try:
        assert not plain.stub_own_ns
        (plain.out / "k8s").mkdir(parents=True)
        plain.write_k8s_snapshot(time.time())
        doc = json.loads((plain.out / "k8s" / "pods.json").read_text())
        assert {i["metadata"]["namespace"] for i in doc["items"]} == {"dnsperf", "kube-system"}
    finally:
        plain.cleanup()


def test_stubclient_names_file_in_order(tmp_path: Path) -> None:
    """lab.stubclient --names-file: each name once, in the file's order, then it stops (long
    before --seconds). Numeric names: getaddrinfo answers them without asking any server."""
    names = ["127.0.0.1", "127.0.0.2", "127.0.0.3"]
    f = tmp_path / "names.txt"
    f.write_text("".join(n + "\n" for n in names))
    argv = [sys.executable, "-m", "lab.stubclient", "--lps", "20", "--seconds", "30"]
    t = time.monotonic()
    p = subprocess.run(
        [*argv, "--threads", "1", "--names-file", str(f)],
        cwd=REPO, capture_output=True, text=True, check=False, timeout=60,
    )  # fmt: skip
    assert p.returncode == 0, p.stderr
    assert time.monotonic() - t < 20
    rows = [line.split("\t") for line in p.stdout.splitlines()]
    assert rows[0] == ["ts", "name", "duration_s", "result", "addresses"]
    assert [r[1] for r in rows[1:]] == names and [r[3] for r in rows[1:]] == ["ok"] * 3
    assert [r[4] for r in rows[1:]] == names
    bad = subprocess.run(
        [*argv, "--names-file", str(f), "127.0.0.1"],
        cwd=REPO, capture_output=True, text=True, check=False, timeout=60,
    )  # fmt: skip
    assert bad.returncode == 2 and "not both or neither" in bad.stderr


STATS = """\
total.num.queries=10
total.num.cachehits=4
total.num.cachemiss=6
total.recursion.time.avg=1.500000
num.query.tcpout=6
histogram.000000.000000.to.000000.000001=0
histogram.000000.262144.to.000000.524288=2
histogram.000001.000000.to.000002.000000=3
histogram.000004.000000.to.000008.000000=1
num.answer.rcode.NOERROR=10
"""


def test_exporter_output_is_valid_exposition(tmp_path: Path) -> None:
    from lab.exporter import parse_stats, to_prometheus

    text = to_prometheus(parse_stats(STATS))
    promtool = require_tool("promtool", "prometheus")
    chk = subprocess.run(
        [promtool, "check", "metrics"], input=text, capture_output=True, text=True, check=False
    )
    assert chk.returncode == 0, chk.stdout + chk.stderr
    f = tmp_path / "scrape.prom"
    f.write_text(text)
    df = kit.read_metrics(f, fmt="text", scrape_time="2026-01-01T00:00:00+00:00")
    b = df.filter(pl.col("metric") == "unbound_response_time_seconds_bucket")
    got = dict(zip(b["le"].to_list(), b["value"].to_list(), strict=True))
    # cumulative: 0 below 1 us, 2 up to 0.524288 s, +3 up to 2 s, +1 up to 8 s; +Inf = all 6
    assert got["1e-06"] == 0 and got["0.524288"] == 2 and got["2.0"] == 5 and got["8.0"] == 6
    assert got["+Inf"] == 6
    s = df.filter(pl.col("metric") == "unbound_response_time_seconds_sum")["value"][0]
    assert s == pytest.approx(1.5 * 6)  # avg recursion time x misses


def test_nft_rules_are_valid(tmp_path: Path) -> None:
    require_root()
    nft = require_tool("nft", "nftables")
    from lab.core import Lab, LabConfig

    for drop in ("random:0.3", "rate:5", "none"):
        lab = Lab(LabConfig(out=tmp_path / "x", drop=drop))
        rules = lab.nft_rules()
        lab.cleanup()  # removes its scratch folder; it created no namespace or process
        f = tmp_path / "r.nft"
        f.write_text(rules)
        chk = subprocess.run([nft, "-c", "-f", str(f)], capture_output=True, text=True, check=False)
        assert chk.returncode == 0, (drop, chk.stderr)
        assert bool(re.search(r" drop$", rules, re.M)) == (drop != "none")


@pytest.mark.slow
def test_sample_counts_match_capture(sample: dict[str, object], tshark: str) -> None:
    """run.json's nftables counters against the capture; no SYN before the change, none on node2."""
    pcap = SAMPLE / "captures" / "node1.pcap"
    syn = tshark_fields(tshark, pcap, f"ip.dst == {UPSTREAM} && {SYN}", ["frame.time_epoch"])
    synacks = count(tshark, pcap, f"ip.src == {UPSTREAM} && {SYNACK}")
    check_syn_counts(sample, syn.height, synacks)  # type: ignore[arg-type]
    change = dt.datetime.fromisoformat(str(sample["change_time"])).timestamp()
    assert syn["frame.time_epoch"].cast(pl.Float64).min() >= change
    assert count(tshark, SAMPLE / "captures" / "node2.pcap", f"ip.dst == {UPSTREAM} && {SYN}") == 0
