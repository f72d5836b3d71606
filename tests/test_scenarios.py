"""The scenario catalogue (lab/scenarios.py): each cause made real, and the kit's verdict on it.

Two parts:

- **The mechanism in the raw artefacts**, on each scenario's short-form lab run (marker ``lab``,
  root; five at once in their own namespaces, then ``packet-rate-limit`` alone, since it needs
  the CPU for its burst) and on its committed run in data/scenarios: asserted with tshark,
  nftables' counters, NSD's log, the node evidence and the glibc client's own record, never
  through the kit: SERVFAIL from the upstream after the bad zone push, queries to the upstream without
  answers, TC=1 answers followed by the same name over TCP, packets above the limit dropped by
  nftables, NXDOMAIN chains per client. ``forced-tcp-syn-drops`` is today's lab run: its short
  form is tests/test_lab.py's.
- **The confusion matrix** over the committed runs ``data/scenarios/*``: ``dnskit findings DIR
  --json`` on each; each scenario's cause must be found (critical or warning) and be the summary's
  headline cause, no critical finding may be outside the scenario's causal chain, nothing critical
  and no headline cause on ``healthy``. The matrix is
  printed (``pytest -s``, and test-artifacts/scenario-matrix.txt). Where the kit is wrong today,
  the case is ``xfail(strict=True)`` naming what it gets wrong, so fixing the kit flips it.
"""

from __future__ import annotations

import concurrent.futures
import datetime as dt
import json
import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pytest
from conftest import require_root, require_tool, tshark_fields

REPO = Path(__file__).resolve().parent.parent
SCENARIO_DIR = Path(os.environ.get("DNSKIT_SCENARIOS", REPO / "data" / "scenarios"))
if str(REPO) not in sys.path:  # lab/ is a package at the repo root, not installed with the kit
    sys.path.insert(0, str(REPO))

from lab.scenarios import SCENARIOS  # noqa: E402

UPSTREAM = "169.254.169.253"
CACHE = "169.254.20.10"
SYN = "tcp.flags.syn == 1 && tcp.flags.ack == 0"


# ----- helpers ------------------------------------------------------------------------------


def artefact(run: Path, rel: str) -> Path:
    """``run/rel``, or ``run/rel.gz`` when the lab gzipped it."""
    p = run / rel
    return p if p.exists() else p.with_name(p.name + ".gz")


def epoch(ts: str) -> float:
    return dt.datetime.fromisoformat(ts).timestamp()


def meta(run: Path) -> dict:
    return json.loads((run / "run.json").read_text())


def _netns_left(prefix: str) -> list[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    return sorted(n for line in out.splitlines() if (n := line.split()[0]).startswith(prefix + "-"))


# ----- short-form lab runs --------------------------------------------------------------------

PARALLEL = [
    "healthy",
    "servfail-storm",
    "upstream-unreachable",
    "truncation-tcp-fallback",
    "ndots-search-expansion",
]
ALONE = ["packet-rate-limit"]


def _run_batch(base: Path, names: list[str], tag: str) -> dict[str, Path]:
    procs = {}
    prefixes = {name: f"dks{k}{tag}" for k, name in enumerate(names)}
    for name in names:
        argv = [
            sys.executable, "-m", "lab", "run", "--scenario", name, "--short",
            "--out", str(base / name), "--prefix", prefixes[name], "--replace", "--no-prometheus",
        ]  # fmt: skip
        procs[name] = subprocess.Popen(
            argv, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
    out = {}
    left: list[str] = []
    try:
        for name, p in procs.items():
            _o, err = p.communicate(timeout=150)
            assert p.returncode == 0, f"{name} lab failed: {err[-3000:]}"
            out[name] = base / name
    finally:
        for p in procs.values():
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                p.wait(timeout=30)
        for prefix in prefixes.values():
            left += _netns_left(prefix)
            # the pods' resolv.conf of ndots-search-expansion lives in /etc/netns/<namespace>/
            left += [str(d) for d in Path("/etc/netns").glob(prefix + "-*")]
        for n in left:
            if n.startswith("/etc/netns/"):
                shutil.rmtree(n, ignore_errors=True)
            else:
                subprocess.run(["ip", "netns", "delete", n], check=False)
    assert not left, f"lab left namespaces (or their /etc/netns folders) behind: {left}"
    return out


@pytest.fixture(scope="module")
def short_runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Path]]:
    """Every scenario's short form but forced-tcp-syn-drops (tests/test_lab.py runs that one)."""
    require_root()
    for tool, pkg in [
        ("ip", "iproute2"),
        ("nsd", "nsd"),
        ("unbound", "unbound"),
        ("dnsperf", "dnsperf"),
        ("tcpdump", "tcpdump"),
        ("nft", "nftables"),
    ]:
        require_tool(tool, pkg)
    base = tmp_path_factory.mktemp("scenarios")
    tag = f"{os.getpid() % 10000}"
    runs = _run_batch(base, PARALLEL, tag)
    runs |= _run_batch(base, ALONE, "p" + tag)
    yield runs


SOURCES = pytest.mark.parametrize(
    "source", [pytest.param("short", marks=pytest.mark.lab), "committed"]
)
"""Each mechanism test runs on a short-form lab run (root, marker ``lab``) and on the committed
run in data/scenarios (no root needed)."""


def scenario_run(request: pytest.FixtureRequest, source: str, name: str) -> Path:
    if source == "short":
        return request.getfixturevalue("short_runs")[name]
    run = SCENARIO_DIR / name
    if not (run / "run.json").is_file():
        pytest.fail(f"{run} missing: regenerate it with `make scenarios`")
    return run


def test_every_scenario_has_a_short_lab_test() -> None:
    covered = set(PARALLEL) | set(ALONE) | {"forced-tcp-syn-drops"}  # that one: test_lab.py
    assert covered == set(SCENARIOS)


@SOURCES
def test_healthy(source: str, request: pytest.FixtureRequest, tshark: str) -> None:
    run = scenario_run(request, source, "healthy")
    m = meta(run)
    assert m["scenario"]["name"] == "healthy" and m["change_time"] is None
    pcap = artefact(run, "captures/node1.pcap")
    ans = tshark_fields(
        tshark,
        pcap,
        f"dns.flags.response == 1 && ip.src == {CACHE}",
        ["dns.flags.rcode", "dns.time"],
    )
    assert ans.height > 100
    assert set(ans["dns.flags.rcode"].to_list()) == {"0"}  # every answer NOERROR
    assert ans["dns.time"].cast(pl.Float64).quantile(0.99) < 0.05
    assert tshark_fields(
        tshark, pcap, "tcp || dns.flags.truncated == 1", ["frame.number"]
    ).is_empty()
    # nftables saw every query the nodes' captures sent upstream (over UDP)
    up = sum(
        tshark_fields(
            tshark,
            run / n["capture"],
            f"udp && ip.dst == {UPSTREAM} && dns.flags.response == 0",
            ["frame.number"],
        ).height
        for n in m["topology"]["nodes"]
    )
    assert up > 20 and m["counts"]["nftables"]["udp_queries"]["packets"] == up
    # the node evidence a user would attach was collected, and is the kernel's
    ev = run / "node" / "node1"
    assert "IpInReceives" in (ev / "nstat-after.txt").read_text()
    if (ev / "conntrack-S-after.txt").exists():
        assert "insert_failed=" in (ev / "conntrack-S-after.txt").read_text()


@SOURCES
def test_servfail_storm(source: str, request: pytest.FixtureRequest, tshark: str) -> None:
    run = scenario_run(request, source, "servfail-storm")
    m = meta(run)
    change = epoch(m["change_time"])
    pcap = artefact(run, "captures/node1.pcap")
    f = ["frame.time_epoch", "dns.flags.rcode", "ip.src"]
    ans = tshark_fields(tshark, pcap, "dns.flags.response == 1", f).with_columns(
        pl.col("frame.time_epoch").cast(pl.Float64)
    )
    before = ans.filter(pl.col("frame.time_epoch") < change)
    after = ans.filter(pl.col("frame.time_epoch") > change + 1)
    assert before.height > 20 and (before["dns.flags.rcode"] == "0").all()
    # the upstream itself answers SERVFAIL (rcode 2) after the bad zone push ...
    up = after.filter(pl.col("ip.src") == UPSTREAM)
    assert up.height > 20 and (up["dns.flags.rcode"] == "2").mean() > 0.9
    # ... and the cache passes it on to the clients
    cli = after.filter(pl.col("ip.src") == CACHE)
    assert (cli["dns.flags.rcode"] == "2").mean() > 0.25
    nsd = (run / "logs" / "nsd.log").read_text()
    assert "unrecognized RR type 'BOGUS'" in nsd and nsd.count("nsd started") == 2
    assert "BOGUS" not in (run / "configs" / "nsd.conf").read_text()
    assert "test.broken.zone" in (run / "configs" / "nsd.incident.conf").read_text()


@SOURCES
def test_upstream_unreachable(source: str, request: pytest.FixtureRequest, tshark: str) -> None:
    run = scenario_run(request, source, "upstream-unreachable")
    m = meta(run)
    applied = epoch(next(e["ts"] for e in m["events"] if e["event"] == "change_applied"))
    pcap = artefact(run, "captures/node1.pcap")
    f = ["frame.time_epoch", "dns.qry.name", "dns.flags.response", "ip.src", "ip.dst"]
    d = tshark_fields(tshark, pcap, "dns", [*f, "dns.flags.rcode"]).with_columns(
        pl.col("frame.time_epoch").cast(pl.Float64)
    )
    after = d.filter(pl.col("frame.time_epoch") > applied + 0.5)
    q_up = after.filter((pl.col("ip.dst") == UPSTREAM) & (pl.col("dns.flags.response") == "0"))
    assert q_up.height > 20
    # nothing comes back from the upstream once nftables drops the queries
    assert after.filter(pl.col("ip.src") == UPSTREAM).is_empty()
    assert m["counts"]["nftables"]["udp_dropped"]["packets"] >= q_up.height
    # the cache retries each name on its own timers: several tries per name
    tries = q_up.group_by("dns.qry.name").len()
    assert tries["len"].max() >= 3
    # and ends up answering SERVFAIL to the clients
    cli = after.filter((pl.col("ip.src") == CACHE) & (pl.col("dns.flags.response") == "1"))
    assert (cli["dns.flags.rcode"] == "2").sum() > 5
    assert any("udp dport 53" in c and "drop" in c for c in m["nft_changes"])


@SOURCES
def test_truncation_tcp_fallback(source: str, request: pytest.FixtureRequest, tshark: str) -> None:
    run = scenario_run(request, source, "truncation-tcp-fallback")
    m = meta(run)
    applied = epoch(next(e["ts"] for e in m["events"] if e["event"] == "change_applied"))
    pcap = artefact(run, "captures/node1.pcap")
    tc = tshark_fields(
        tshark,
        pcap,
        f"udp && ip.src == {UPSTREAM} && dns.flags.truncated == 1",
        ["frame.time_epoch", "dns.qry.name"],
    ).with_columns(pl.col("frame.time_epoch").cast(pl.Float64))
    assert tc.height > 20
    assert tc["frame.time_epoch"].min() >= applied - 0.5  # no truncation before the change
    # the cache advertises 512 bytes after the change (1232 before)
    sizes = tshark_fields(
        tshark,
        pcap,
        f"udp && ip.dst == {UPSTREAM} && dns.flags.response == 0",
        ["frame.time_epoch", "dns.rr.udp_payload_size"],
    ).with_columns(pl.col("frame.time_epoch").cast(pl.Float64))
    assert set(
        sizes.filter(pl.col("frame.time_epoch") < applied - 0.5)["dns.rr.udp_payload_size"]
    ) == {"1232"}
    assert set(
        sizes.filter(pl.col("frame.time_epoch") > applied + 0.5)["dns.rr.udp_payload_size"]
    ) == {"512"}
    # each truncated name is asked again over TCP within 5 s
    tcp = tshark_fields(
        tshark,
        pcap,
        f"tcp && ip.dst == {UPSTREAM} && dns.flags.response == 0",
        ["frame.time_epoch", "dns.qry.name"],
    ).with_columns(pl.col("frame.time_epoch").cast(pl.Float64).alias("tcp_ts"))
    j = tc.join(tcp.select("dns.qry.name", "tcp_ts"), on="dns.qry.name", how="left")
    j = j.with_columns(
        ok=(pl.col("tcp_ts") >= pl.col("frame.time_epoch"))
        & (pl.col("tcp_ts") - pl.col("frame.time_epoch") < 5)
    )
    per = j.group_by("dns.qry.name", "frame.time_epoch").agg(pl.col("ok").any())
    assert per["ok"].mean() > 0.8
    # TCP is slow: the upstream drops SYNs, the kernel sends them again
    retx = tshark_fields(
        tshark,
        pcap,
        f"ip.dst == {UPSTREAM} && {SYN} && tcp.analysis.retransmission",
        ["frame.number"],
    )
    assert retx.height > 0 and m["counts"]["syn_dropped"] > 0
    # the clients (EDNS 4096) get the whole answer: 40 A records, never TC=1
    cli = tshark_fields(
        tshark, pcap, f"ip.src == {CACHE} && dns.flags.response == 1 && dns.count.answers > 1",
        ["dns.count.answers", "dns.flags.truncated"],
    )  # fmt: skip
    assert cli.height > 10 and set(cli["dns.count.answers"]) == {"40"}
    assert set(cli["dns.flags.truncated"]) == {"0"}


@SOURCES
def test_packet_rate_limit(source: str, request: pytest.FixtureRequest, tshark: str) -> None:
    run = scenario_run(request, source, "packet-rate-limit")
    m = meta(run)
    pcap = artefact(run, "captures/node1.pcap")
    assert "ifpps" in (run / "configs" / "nftables.nft").read_text()
    # per interface: tcpdump -i any records each packet's interface index (SLL2 header); the
    # node's `ip -s link` names the index of its uplink
    links = (run / "node" / "node1" / "ip-s-link-after.txt").read_text()
    ifindex = re.search(r"^(\d+): up0@", links, re.M)
    assert ifindex, links
    up0 = f"ip.dst == {UPSTREAM} && sll.ifindex == {ifindex.group(1)}"
    t = tshark_fields(tshark, pcap, up0, ["frame.time_epoch"])["frame.time_epoch"].cast(pl.Float64)
    per_s = t.floor().value_counts()["count"]
    # the interface carried more than the limit in some second, and nftables dropped the excess
    assert per_s.max() > 1024, per_s.max()
    dropped = m["counts"]["nftables"]["pps_dropped"]["packets"]
    assert dropped > 0
    # answered packets from the upstream in any second: at most the limit (+ burst, bin edges)
    back = tshark_fields(tshark, pcap, f"ip.src == {UPSTREAM}", ["frame.time_epoch"])
    back_s = back["frame.time_epoch"].cast(pl.Float64).floor().value_counts()["count"]
    assert back_s.max() <= 1024 * 1.1 + 5, back_s.max()
    # the cache retried the dropped queries: names asked upstream more than once
    q = tshark_fields(
        tshark, pcap, f"ip.dst == {UPSTREAM} && dns.flags.response == 0", ["dns.qry.name"]
    )
    assert (q.group_by("dns.qry.name").len()["len"] > 1).sum() > 50


@SOURCES
def test_ndots_search_expansion(source: str, request: pytest.FixtureRequest, tshark: str) -> None:
    from lab.core import SEARCH

    run = scenario_run(request, source, "ndots-search-expansion")
    m = meta(run)
    change = epoch(m["change_time"])
    applied = epoch(next(e["ts"] for e in m["events"] if e["event"] == "change_applied"))
    assert "options ndots:5" in (run / "configs" / "resolv.incident.conf").read_text()
    for k, node in enumerate(m["topology"]["nodes"], start=1):  # one client (pod) per node
        pcap, pod = run / node["capture"], node["client_ip"]
        q = tshark_fields(
            tshark,
            pcap,
            f'ip.src == {pod} && dns.flags.response == 0 && !(dns.qry.name contains ".test")',
            ["frame.time_epoch", "dns.qry.name", "dns.qry.type", "udp.srcport"],
        ).with_columns(pl.col("frame.time_epoch").cast(pl.Float64))
        stub = pl.read_csv(artefact(run, f"clients/stub-node{k}.tsv"), separator="\t").with_columns(
            t=pl.col("ts").str.to_datetime(time_zone="UTC").dt.epoch("us") / 1e6
        )
        assert (stub["result"] == "ok").all()  # every lookup ends with the real name's address
        # this client's amplification, queries per lookup: 2 (A + AAAA) with ndots:1, then
        # 2 x (4 search suffixes + the name) = 10 with ndots:5 (counted away from the change:
        # glibc re-reads resolv.conf at its next lookup)
        for lo, hi, want in ((0, change - 0.2, 2), (applied + 1, 1e12, 2 * (len(SEARCH) + 1))):
            n_lookups = stub.filter((pl.col("t") > lo) & (pl.col("t") < hi - 0.5)).height
            n_q = q.filter(
                (pl.col("frame.time_epoch") > lo) & (pl.col("frame.time_epoch") < hi - 0.5)
            ).height
            assert n_lookups > 5
            assert abs(n_q / n_lookups - want) < 0.6, (pod, want, n_q, n_lookups)
        # the NXDOMAIN answers the client got are all for <name>.<search suffix>
        nx = tshark_fields(
            tshark, pcap, f"ip.src == {CACHE} && dns.flags.rcode == 3", ["dns.qry.name", "ip.dst"]
        )
        assert nx.height > 20 and set(nx["ip.dst"]) == {pod}
        assert all(any(n.endswith("." + s) for s in SEARCH) for n in nx["dns.qry.name"])
        # glibc sends A and AAAA of one try from one socket (same source port), at once
        pairs = q.group_by("udp.srcport", "dns.qry.name").agg(pl.col("dns.qry.type").n_unique())
        assert (pairs["dns.qry.type"] == 2).mean() > 0.9


@pytest.mark.parametrize("source", ["committed"])
def test_forced_tcp_syn_drops(source: str, request: pytest.FixtureRequest, tshark: str) -> None:
    """The committed run (its short form is tests/test_lab.py's): SYNs towards the upstream only
    from the changed node and only after the change, resent 1, 3, 7 (15) s after the first."""
    run = scenario_run(request, source, "forced-tcp-syn-drops")
    m = meta(run)
    change = epoch(m["change_time"])
    changed, control = m["topology"]["nodes"]
    assert changed["role"] == "changed" and control["role"].startswith("control")
    assert tshark_fields(tshark, run / control["capture"], SYN, ["frame.number"]).is_empty()
    syn = tshark_fields(
        tshark,
        run / changed["capture"],
        f"ip.dst == {UPSTREAM} && {SYN}",
        ["tcp.stream", "frame.time_epoch"],
    ).with_columns(pl.col("frame.time_epoch").cast(pl.Float64))
    assert syn.height == m["counts"]["syn_seen"] and syn["frame.time_epoch"].min() >= change
    d = syn.with_columns(
        d=pl.col("frame.time_epoch") - pl.col("frame.time_epoch").min().over("tcp.stream")
    ).filter(pl.col("d") > 0)["d"]
    assert d.len() > 50
    assert (
        d.map_elements(
            lambda x: min(abs(x - t) for t in (1, 3, 7, 15)), return_dtype=pl.Float64
        ).max()
        < 0.5
    )


# ----- the confusion matrix over the committed runs --------------------------------------------

KNOWN_WRONG: dict[str, str] = {}
"""Scenarios whose verdict the kit gets wrong today: the reason (what it says, what it should)."""


def _findings(run: Path, cache: Path) -> dict:
    p = subprocess.run(
        [sys.executable, "-m", "kit", "findings", str(run), "--json"],
        capture_output=True,
        text=True,
        env={**os.environ, "DNSKIT_CACHE": str(cache)},
        timeout=600,
        check=False,
    )
    assert p.returncode == 0, f"dnskit findings {run}: {p.stderr[-2000:]}"
    return json.loads(p.stdout)


@pytest.fixture(scope="module")
def verdicts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    runs = sorted(p.parent for p in SCENARIO_DIR.glob("*/run.json"))
    if not runs:
        pytest.fail(f"no run in {SCENARIO_DIR}: regenerate them with `make scenarios`")
    cache = tmp_path_factory.mktemp("dnskit-cache")
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        got = dict(zip(runs, pool.map(lambda r: _findings(r, cache), runs), strict=True))
    return {meta(r)["scenario"]["name"]: v for r, v in got.items()}


def judge(name: str, verdict: dict) -> list[str]:
    """What is wrong with the kit's verdict on scenario ``name`` (empty: right)."""
    sc = SCENARIOS[name]
    found = {f["id"]: f["severity"] for f in verdict["findings"]}
    wrong = []
    if sc.cause and not any(found.get(c) in {"critical", "warning"} for c in sc.cause):
        wrong.append(f"cause {'/'.join(sc.cause)} not found")
    for fid, sev in found.items():
        if sev == "critical" and fid not in sc.cause + sc.chain:
            wrong.append(f"critical {fid} outside the causal chain")
    # the summary's headline names the scenario's cause (none on healthy): a consequence such as
    # the SERVFAILs of dropped SYNs is never the headline
    head = verdict["summary"].get("cause_id")
    if sc.cause and head not in sc.cause:
        wrong.append(f"headline cause {head or 'none'}, not {'/'.join(sc.cause)}")
    if not sc.cause and head is not None:
        wrong.append(f"headline cause {head} on a scenario without one")
    return wrong


def matrix_text(verdicts: dict[str, dict]) -> str:
    """Scenarios (rows) x finding ids (columns): C critical, W warning, i info, . not fired;
    ``*`` marks the scenario's own cause; then the cause the kit's summary names (``cause_id``,
    judged: it must be the scenario's) and ok or what is wrong."""
    cols: list[str] = []
    for sc in SCENARIOS.values():
        cols += [c for c in sc.cause if c not in cols]
    for v in verdicts.values():
        cols += [f["id"] for f in v["findings"] if f["id"] not in cols]
    width = max(len(n) for n in SCENARIOS)
    lines = [" " * width + " | " + " | ".join(cols) + " | kit's headline cause | verdict"]
    for name, sc in SCENARIOS.items():
        if name not in verdicts:
            lines.append(name.ljust(width) + " | (no run)")
            continue
        sev = {f["id"]: f["severity"] for f in verdicts[name]["findings"]}
        cells = []
        for c in cols:
            mark = {"critical": "C", "warning": "W", "info": "i"}.get(sev.get(c, ""), ".")
            cells.append((mark + ("*" if c in sc.cause else "")).center(len(c)))
        wrong = judge(name, verdicts[name])
        head = verdicts[name]["summary"].get("cause_id") or "-"
        lines.append(
            name.ljust(width)
            + " | "
            + " | ".join(cells)
            + f" | {head.center(20)} | "
            + ("; ".join(wrong) or "ok")
        )
    return "\n".join(lines) + "\n"


def test_confusion_matrix_printed(verdicts: dict[str, dict]) -> None:
    """Every scenario has a committed run, and the matrix is printed and saved."""
    text = matrix_text(verdicts)
    print("\n" + text)
    out = REPO / "test-artifacts"
    out.mkdir(exist_ok=True)
    (out / "scenario-matrix.txt").write_text(text)
    assert set(verdicts) == set(SCENARIOS), sorted(set(SCENARIOS) - set(verdicts))


@pytest.mark.parametrize(
    "name",
    [
        pytest.param(n, marks=pytest.mark.xfail(strict=True, reason=KNOWN_WRONG[n]))
        if n in KNOWN_WRONG
        else n
        for n in SCENARIOS
    ],
)
def test_verdict(verdicts: dict[str, dict], name: str) -> None:
    assert name in verdicts, f"no committed run for {name}"
    assert judge(name, verdicts[name]) == []


def test_committed_runs_size_and_metadata() -> None:
    total = 0
    for run in sorted(p.parent for p in SCENARIO_DIR.glob("*/run.json")):
        size = sum(f.stat().st_size for f in run.rglob("*") if f.is_file())
        assert size <= 2 * 1024 * 1024, f"{run.name} is {size / 2**20:.2f} MiB"
        total += size
        m = meta(run)
        sc = SCENARIOS[run.name]
        assert m["scenario"]["name"] == run.name and m["scenario"]["cause"] == list(sc.cause)
        assert m["parameters"]["scenario"] == run.name
        # no absolute path of the machine in the text files
        for f in run.rglob("*"):
            if f.suffix in {".conf", ".nft", ".yml", ".json", ".log", ".txt", ".tsv"}:
                assert str(run) not in f.read_text(errors="replace"), f
    assert total <= 15 * 1024 * 1024


# ----- the registry and the command line (no run) ---------------------------------------------


def test_scenarios_listing_and_config_values(tmp_path: Path) -> None:
    from lab.cli import config_values
    from lab.core import LabConfig, Phase

    p = subprocess.run(
        [sys.executable, "-m", "lab", "scenarios"], cwd=REPO, capture_output=True, text=True
    )
    assert p.returncode == 0
    assert [ln.split("\t")[0] for ln in p.stdout.splitlines()] == list(SCENARIOS)
    # defaults, then the short form, then what was given
    vals = config_values("packet-rate-limit", short=True, qps=7.0)
    assert vals["phases"] == (Phase("healthy", 3.0), Phase("incident", 5.0))
    assert vals["qps"] == 7.0 and vals["burst_qps"] > 1024
    cfg = LabConfig(out=tmp_path, **vals)
    assert cfg.scenario == "packet-rate-limit"
    for name in SCENARIOS:
        for short in (False, True):
            LabConfig(out=tmp_path, **config_values(name, short=short))  # all valid


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--scenario", "nope"], "invalid choice: 'nope'"),
        (["--scenario", "servfail-storm", "--mode", "tcp"], "--mode tcp is the forced-tcp"),
        (["--scenario", "servfail-storm", "--phases", "healthy=5"], "needs an incident phase"),
        (["--scenario", "packet-rate-limit", "--burst-qps", "0"], "needs burst_qps > 0"),
    ],
)
def test_bad_scenario_options_are_refused(tmp_path: Path, argv: list[str], message: str) -> None:
    """Refused before anything is started (no root needed to see the message)."""
    p = subprocess.run(
        [sys.executable, "-m", "lab", "run", "--out", str(tmp_path / "o"), *argv],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert p.returncode != 0 and message in p.stderr, p.stderr
    assert not (tmp_path / "o").exists()


def test_scenario_nft_rules_are_valid(tmp_path: Path) -> None:
    """The upstream's rules of every scenario, and the rule upstream-unreachable adds, pass
    ``nft -c``."""
    require_root()
    nft = require_tool("nft", "nftables")
    from lab.cli import config_values
    from lab.core import Lab, LabConfig

    for name in SCENARIOS:
        lab = Lab(LabConfig(out=tmp_path / "x", **config_values(name)))
        rules = lab.nft_rules()
        lab.cleanup()  # removes its scratch folder; it created no namespace or process
        if name == "upstream-unreachable":
            rules += 'add rule inet dnskit impair udp dport 53 counter name "udp_dropped" drop\n'
        f = tmp_path / "r.nft"
        f.write_text(rules)
        chk = subprocess.run([nft, "-c", "-f", str(f)], capture_output=True, text=True)
        assert chk.returncode == 0, (name, chk.stderr)
        assert ("limit rate over 1024/second" in rules) == (name == "packet-rate-limit")
