"""The verdict on the lab's committed scenario runs (data/scenarios), check by check.

Issues 15, 14 and 17 (kit side): every check says fired / not fired (with the numbers that
decided it) / not checked (with why); a broken config beside a good capture stops only the checks
that need it; the upstream-unreachable check; timer labels by the transport seen; headline causes
for the SERVFAIL storm and truncation; the packet rate per interface with TCP overhead; findings
graded by the evidence around them; bucket layouts; CoreDNS metric renames; full error kinds.
Each test asserts on the real lab artefacts (and tshark where it counts packets) and fails on the
code before the change (no CheckResult for these checks, load_inputs raising, SYN labels on a
UDP-only capture, no headline cause, the kind cut at 40 characters...).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
from conftest import tshark_fields

import kit
import kit.errors
import kit.findings as kf

REPO = Path(__file__).resolve().parent.parent
SCENARIOS = Path(os.environ.get("DNSKIT_SCENARIOS", REPO / "data" / "scenarios"))
UPSTREAM = "169.254.169.253"


def scenario(name: str) -> Path:
    run = SCENARIOS / name
    if not (run / "run.json").is_file():
        pytest.fail(f"{run} missing: regenerate it with `make scenarios`")
    return run


_VERDICTS: dict[str, kf.Verdict] = {}


def verdict(name: str) -> kf.Verdict:
    if name not in _VERDICTS:
        _VERDICTS[name] = kf.findings_for_artefacts([scenario(name)])
    return _VERDICTS[name]


def result(v: kf.Verdict, check: str) -> kf.CheckResult:
    return next(r for r in v.results if r.check == check)


def finding(v: kf.Verdict, fid: str) -> kf.Finding:
    return next(f for f in v if f.id == fid)


def dnskit_json(*argv: str) -> dict:
    p = subprocess.run(
        [sys.executable, "-m", "kit", "findings", *argv, "--json"],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert p.returncode == 0, p.stderr[-2000:]
    return json.loads(p.stdout)


# ----- issue 15: a CheckResult for every check -------------------------------------------------


def test_every_check_has_a_result_with_its_numbers() -> None:
    v = verdict("healthy")
    names = [r.check for r in v.results]
    assert names == list(kf.CHECK_NEEDS)  # one per check, in order
    assert {r.check for r in v.results} >= {c for c, *_ in kf.CHECKS}
    by = {r.check: r for r in v.results}
    # healthy: nothing fires, and each check says why with the numbers that decided it
    assert not any(r.fired for r in v.results)
    syn = by["syn-retransmissions"]
    assert syn.status == "not fired" and syn.numbers["syn_retransmits"] == 0
    assert (
        by["upstream-unreachable"].numbers["answered"]
        == by["upstream-unreachable"].numbers["udp_queries"]
        > 100
    )
    pr = by["packet-rate"]
    assert pr.status == "not fired" and 0 < pr.numbers["peak_pps"] < 1024
    assert "of the 1024 pps limit" in pr.reason
    assert by["forced-tcp"].status == "not fired" and by["forced-tcp"].numbers["forced_rows"] == 0
    # a check whose input is absent is "not checked" with why (no CoreDNS log in the lab)
    assert kf.forced_tcp_result(None).verdict == "not checked: no Corefile or unbound.conf given"
    assert kf.upstream_unreachable_result(None).status == "not checked"


def test_dnskit_findings_json_carries_every_check() -> None:
    out = dnskit_json(str(scenario("servfail-storm")))
    checks = {c["check"]: c for c in out["checks"]}
    assert list(checks) == list(kf.CHECK_NEEDS)
    assert checks["servfail-storm"]["status"] == "fired"
    assert checks["servfail-storm"]["finding"] == "servfail-storm"
    assert checks["conntrack-race"]["status"] == "not fired"
    assert checks["conntrack-race"]["numbers"]["late_pairs"] == 0
    cov = {c["check"]: c for c in out["summary"]["coverage"]}
    assert cov["servfail-storm"]["status"] == "fired"
    assert out["unreadable"] == []


# ----- issue 14: a broken input degrades per finding -------------------------------------------


@pytest.fixture(scope="module")
def broken_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The forced-tcp-syn-drops capture and log beside a broken unbound.conf and Corefile."""
    src = scenario("forced-tcp-syn-drops")
    d = tmp_path_factory.mktemp("broken")
    (d / "captures").mkdir()
    shutil.copy(src / "captures" / "node1.pcap.gz", d / "captures" / "node1.pcap.gz")
    (d / "logs").mkdir()
    shutil.copy(src / "logs" / "unbound-node1.log", d / "logs" / "unbound-node1.log")
    # the incident's unbound.conf including a file that is not there
    text = (src / "configs" / "unbound-node1.incident.conf").read_text()
    missing = 'server:\n    include: "/nonexistent/dnskit-missing.conf"'
    (d / "unbound-node1.conf").write_text(text.replace("server:", missing, 1))
    # a Corefile (forcing TCP) with a line the loader refuses (over 64 Ki characters)
    (d / "Corefile").write_text(
        ".:53 {\n    forward . 169.254.169.253 {\n        force_tcp\n    }\n    # "
        + "x" * 70_000
        + "\n}\n"
    )
    return d


def test_broken_configs_do_not_stop_the_capture_checks(broken_folder: Path) -> None:
    inputs = kf.load_inputs(
        capture=str(broken_folder / "captures"),
        unbound_log=str(broken_folder / "logs"),
        unbound_conf=str(broken_folder / "unbound-node1.conf"),
        corefile=str(broken_folder / "Corefile"),
    )
    files = sorted(Path(u.file).name for u in inputs.unreadable)
    assert files == ["Corefile", "unbound-node1.conf"]
    assert {u.kind for u in inputs.unreadable} == {"forward"}
    assert inputs.capture is not None and inputs.forward is None
    v = kf.run_on(inputs)
    by = {r.check: r for r in v.results}
    # the capture-based findings still fire
    assert by["syn-retransmissions"].fired
    assert by["latency-timer-modes"].fired
    # the config-based one says which file could not be read
    ft = by["forced-tcp"]
    assert ft.status == "not checked"
    assert "unbound-node1.conf could not be read (" in ft.reason
    assert "included file not found: /nonexistent/dnskit-missing.conf" in ft.reason
    assert "Corefile could not be read (" in ft.reason and "65,536 characters" in ft.reason
    # the given() table names it too
    notes = " ".join(inputs.given()["notes"].to_list())
    assert "unbound-node1.conf could not be read" in notes


def test_dnskit_findings_on_a_folder_with_broken_configs(broken_folder: Path) -> None:
    out = dnskit_json(str(broken_folder))
    ids = {f["id"] for f in out["findings"]}
    assert "syn-retransmissions" in ids
    checks = {c["check"]: c for c in out["checks"]}
    assert checks["forced-tcp"]["status"] == "not checked"
    assert "could not be read" in checks["forced-tcp"]["reason"]
    assert any(Path(u["file"]).name == "unbound-node1.conf" for u in out["unreadable"])


# ----- issue 17: the catalogue ----------------------------------------------------------------


def test_upstream_unreachable_is_the_cause(tshark: str) -> None:
    v = verdict("upstream-unreachable")
    f = finding(v, "upstream-unreachable")
    assert f.severity == "critical" and f.role == "root-cause"
    ev = f.evidence
    # against tshark: UDP queries to the upstream and its answers
    pcap = scenario("upstream-unreachable") / "captures" / "node1.pcap"
    q = tshark_fields(tshark, pcap, f"udp.dstport == 53 && ip.dst == {UPSTREAM}", ["dns.id"])
    a = tshark_fields(tshark, pcap, f"udp.srcport == 53 && ip.src == {UPSTREAM}", ["dns.id"])
    assert a.height < q.height and ev["answered"] == a.height
    assert ev["tcp_connections"] == 0 and ev["retries"] > 0
    assert ev["dark_s"] >= 10
    s = kf.summarize(v)
    assert s["cause_id"] == "upstream-unreachable"
    # the SERVFAILs are its consequence, not a storm of their own
    sf = finding(v, "servfail-storm")
    assert sf.role == "symptom" and sf.caused_by == "upstream-unreachable"


def test_timer_modes_are_labelled_by_the_transport_seen() -> None:
    v = verdict("upstream-unreachable")
    f = finding(v, "latency-timer-modes")
    timers = [t for t in f.evidence["modes"]["timer"].drop_nulls().to_list()]
    assert timers and not any("SYN" in t for t in timers), timers
    assert f.evidence["transport"] == "udp" and "unbound UDP retry" in " ".join(timers)
    # with TCP in the capture, the SYN ladder keeps its name
    g = finding(verdict("forced-tcp-syn-drops"), "latency-timer-modes")
    assert any("SYN" in t for t in g.evidence["modes"]["timer"].drop_nulls().to_list())


def test_servfail_storm_names_the_upstream_and_the_zone() -> None:
    v = verdict("servfail-storm")
    f = finding(v, "servfail-storm")
    assert f.role == "root-cause"
    # the failing names all lie under node1.test., inside the zone test. that NSD failed to load
    assert f.evidence["upstream"] == UPSTREAM and f.evidence["names_under"] == "node1.test."
    assert UPSTREAM in f.title and "node1.test." in f.title
    nsd = (scenario("servfail-storm") / "logs" / "nsd.log").read_text()
    assert "error: zone test. file test.broken.zone read with" in nsd
    s = kf.summarize(v)
    assert s["cause_id"] == "servfail-storm" and UPSTREAM in s["cause"]


def test_truncation_names_the_small_edns_buffer() -> None:
    v = verdict("truncation-tcp-fallback")
    f = finding(v, "truncation-tcp-fallback")
    assert f.role == "root-cause"
    assert "edns-buffer-size: 512" in f.title
    eb = f.evidence["edns_buffer"]
    assert eb["size"].to_list() == [512]
    assert Path(eb["source"][0]).name == "unbound-node1.incident.conf"
    assert kf.summarize(v)["cause_id"] == "truncation-tcp-fallback"
    # the SYN retransmissions of the TCP retries are its consequence
    assert finding(v, "syn-retransmissions").caused_by == "truncation-tcp-fallback"


def test_packet_rate_per_interface_counts_tcp_overhead(tshark: str) -> None:
    run = scenario("forced-tcp-syn-drops")
    cap = kit.read_capture(sorted((run / "captures").glob("*")), progress=False)
    res = kf.packet_rate_result(cap, upstreams=[UPSTREAM])
    per_if = res.finding.evidence["per_interface"] if res.finding else None
    assert per_if is not None and set(per_if["capture"].to_list()) == {"node1", "node2"}
    for pcap in sorted((run / "captures").glob("*")):
        name = pcap.name.split(".")[0]
        row = per_if.filter(pl.col("capture") == name).row(0, named=True)
        to_up = tshark_fields(
            tshark,
            pcap,
            f"(udp.dstport == 53 || tcp.dstport == 53) && ip.dst == {UPSTREAM}",
            ["frame.number"],
        )
        bare = tshark_fields(
            tshark,
            pcap,
            f"tcp.dstport == 53 && ip.dst == {UPSTREAM} && tcp.len == 0",
            ["frame.number"],
        )
        assert row["packets"] == to_up.height
        assert row["tcp_overhead_packets"] == bare.height
    # node1 forwards over TCP: its handshakes and ACKs count against the limit
    assert per_if.filter(pl.col("capture") == "node1")["tcp_overhead_packets"][0] > 1000
    assert res.numbers["peak_interface"] in {"node1", "node2"}
    # the burst scenario: the limit is exceeded on node1's interface
    pr = result(verdict("packet-rate-limit"), "packet-rate")
    assert pr.fired and pr.numbers["peak_interface"] == "node1"
    assert pr.numbers["peak_pps"] > 1024


def test_findings_are_graded_by_evidence() -> None:
    v = verdict("forced-tcp-syn-drops")
    f = finding(v, "forced-tcp")
    assert any(c.startswith("syn-retransmissions:") for c in f.confirms)
    assert f.confidence == "high"
    # no SERVFAIL headline on the forced-TCP incident
    assert kf.summarize(v)["cause_id"] == "forced-tcp"
    assert "servfail-storm" not in {x.id for x in v if x.role == "root-cause"}
    out = kf.verdict_json(v)
    j = next(x for x in out["findings"] if x["id"] == "forced-tcp")
    assert j["confidence"] == "high" and j["confirms"] and isinstance(j["refutes"], list)
    # forced TCP without any SYN trouble in the capture: the silence of the capture refutes it
    healthy = kit.read_capture(sorted((scenario("healthy") / "captures").glob("*")), progress=False)
    forward = kit.read_unbound_conf(
        scenario("forced-tcp-syn-drops") / "configs" / "unbound-node1.incident.conf"
    )
    g = next(
        r.finding
        for r in kf.run_checks(capture=healthy, forward=forward)
        if r.check == "forced-tcp"
    )
    assert g is not None and g.confidence == "low"
    assert any(x.startswith("syn-retransmissions did not fire") for x in g.refutes)


def test_bucket_layout_is_read_before_the_ceiling() -> None:
    metrics = verdict("forced-tcp-syn-drops").inputs.metrics
    r = kf.bucket_ceiling_result(metrics)
    assert r.status in {"fired", "not fired"}
    assert "unbound_response_time_seconds: custom" in r.numbers["layouts"]
    bounds, kind = kf.bucket_layout(metrics, "unbound_response_time_seconds")
    assert kind == "custom" and bounds == sorted(bounds) and bounds[-1] != 8.192
    # an export without classic buckets has no ceiling: not checked, with why
    no_le = metrics.filter(pl.col("metric") != "unbound_response_time_seconds_bucket").drop("le")
    assert kf.bucket_ceiling_result(no_le).status == "not checked"


def test_metrics_blind_spot_knows_coredns_renames(shared_fixtures: Path) -> None:
    d = shared_fixtures / "metrics"

    def renames(name: str) -> str:
        path = d / name
        if not path.is_file():
            pytest.skip(f"{path} not in ../shared/fixtures")
        return kf.metric_renames(kit.read_metrics(path, strict=False))

    # CoreDNS 1.6.9: the names before 1.7.0's rename; 1.7.0: the names after it
    old = renames("netdata_coredns_v1.6.9_some_load.prom")
    assert "coredns_dns_request_count_total (CoreDNS < 1.7.0)" in old
    assert "a query or alert on coredns_dns_requests_total sees nothing here" in old
    new = renames("netdata_coredns_v1.7.0_some_load.prom")
    assert "coredns_dns_requests_total (CoreDNS ≥ 1.7.0)" in new
    assert "coredns_dns_request_count_total sees nothing here" in new
    # CoreDNS 1.1.0's coredns_proxy_* are the old proxy plugin (proxy_proto, no proxy_name),
    # not the 1.11 forward metrics of the same name
    v110 = renames("datadog_coredns_v1.1.0_metrics.prom")
    assert "old proxy plugin of CoreDNS ≤ 1.4.0" in v110
    assert "1.11" not in v110


def test_error_kinds_are_not_cut_at_40_characters() -> None:
    v = verdict("upstream-unreachable")
    f = finding(v, "upstream-error-bursts")
    kinds = f.evidence["by_kind"]["kind"].to_list()
    full = (
        "SERVFAIL <query>: all the configured stub or forward servers failed, at zone . "
        "upstream server timeout"
    )
    assert full in kinds, kinds
    assert full in f.title
