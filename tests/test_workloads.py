"""Which workloads make the slow / NXDOMAIN / unanswered queries (issue 18, part 3):
kit.analyses.workloads.workload_outcomes, its chart, notebooks 02/04 and the report's header.

Inputs: the committed lab runs ``data/scenarios/healthy`` (captures, unbound logs and the
``k8s/pods.json`` the lab wrote for its client addresses) and ``forced-tcp-syn-drops`` (slow
answers on node1 only, same client addresses, no snapshot of its own: the healthy run's snapshot,
its pods' creation times moved before that run, stands in for it), the lab run ``data/ledger``
(glibc stub clients as pods, SYN drops on node1, its own ``k8s/pods.json``), and real CoreDNS
query-log lines quoted in GitHub issues (``../shared/fixtures/logs``).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import warnings
from pathlib import Path

import polars as pl
import pytest

import kit
import kit.analyses.latency
import kit.analyses.upstream
from kit.analyses.resolver_logs import combined_queries
from kit.analyses.workloads import (
    NO_SNAPSHOT_HINT,
    WORKLOAD_OUTCOMES_SCHEMA,
    hurt_workloads,
    top_workloads,
    workload_outcomes,
)
from kit.errors import KitWarning

REPO = Path(__file__).resolve().parent.parent
SCENARIOS = Path(os.environ.get("DNSKIT_SCENARIOS", REPO / "data" / "scenarios"))
HEALTHY = SCENARIOS / "healthy"
SYN = SCENARIOS / "forced-tcp-syn-drops"
LEDGER = REPO / "data" / "ledger" / "forced-tcp-stub-clients"
SHARED = REPO.parent / "shared"
HOSTILE = '<b>web"&'


def client_side(captures: Path) -> pl.DataFrame:
    cap = kit.read_capture(captures, progress=False)
    caches = kit.analyses.upstream.infer_cache_ips(cap.dns, None, tcp=cap.tcp)
    return kit.analyses.upstream.client_queries(cap.dns, caches)


def renamed_snapshot(src: Path, dst: Path, workload: str, new: str) -> Path:
    """A copy of a lab's pods.json with one Deployment renamed (its ReplicaSet becomes
    ``<new>-<pod-template-hash>``)."""
    doc = json.loads(src.read_text())
    for item in doc["items"]:
        md = item["metadata"]
        h = (md.get("labels") or {}).get("pod-template-hash")
        owner = md["ownerReferences"][0]
        if h and owner["name"] == f"{workload}-{h}":
            owner["name"] = f"{new}-{h}"
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_text(json.dumps(doc))
    return dst


def moved_snapshot(tmp_path: Path, created: str, rename: str | None = None) -> Path:
    """The healthy run's pods.json with every pod created at ``created`` (so it covers an earlier
    run of the same lab, whose clients had the same addresses), node1's Deployment optionally
    renamed (its ReplicaSet becomes ``<rename>-<pod-template-hash>``)."""
    doc = json.loads((HEALTHY / "k8s" / "pods.json").read_text())
    for item in doc["items"]:
        item["metadata"]["creationTimestamp"] = created
        if (
            rename
            and item["spec"]["nodeName"] == "node1"
            and "pod-template-hash" in (item["metadata"].get("labels") or {})
        ):
            h = item["metadata"]["labels"]["pod-template-hash"]
            item["metadata"]["ownerReferences"][0]["name"] = f"{rename}-{h}"
    out = tmp_path / "k8s" / "pods.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc))
    return out


def test_healthy_capture_every_client_is_a_pod() -> None:
    client = client_side(HEALTHY / "captures")
    snap = kit.read_k8s_snapshot(HEALTHY / "k8s" / "pods.json")
    with warnings.catch_warnings():
        warnings.simplefilter("error", KitWarning)  # no client is a node address
        w = workload_outcomes(client, snap)
    assert w.schema == WORKLOAD_OUTCOMES_SCHEMA
    assert w["attribution"].to_list() == ["pod", "pod"]
    assert int(w["queries"].sum()) == client.height
    per_ip = dict(client.group_by("client_ip").len().iter_rows())
    got = {r["workload_name"]: r for r in w.iter_rows(named=True)}
    assert set(got) == {"dnsperf-node1", "dnsperf-node2"}
    for name, ip in (("dnsperf-node1", "169.254.1.1"), ("dnsperf-node2", "169.254.1.2")):
        r = got[name]
        assert (r["pod_namespace"], r["workload_kind"], r["pods"], r["client_ips"]) == (
            "dnsperf",
            "Deployment",
            1,
            ip,
        )
        assert r["queries"] == per_ip[ip]
        assert r["slow"] == r["unanswered"] == 0
        assert r["p50_s"] < 0.01
    assert hurt_workloads(w) == []


def test_reused_address_split_at_the_pods_lifetimes(tmp_path: Path) -> None:
    """node1's client address held by one pod until T, then by another (deleted and replaced):
    the queries before T count for the first workload, those from T on for the second, exactly
    as the row-by-row attribution of kit.sources.k8s.attribute_clients says."""
    client = client_side(HEALTHY / "captures")
    node1 = client.filter(pl.col("client_ip") == "169.254.1.1")
    cut = node1["ts"].sort()[node1.height // 2]
    doc = json.loads((HEALTHY / "k8s" / "pods.json").read_text())
    old = next(i for i in doc["items"] if i["metadata"]["name"].startswith("dnsperf-node1"))
    new = json.loads(json.dumps(old))
    stamp = cut.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    old["metadata"]["creationTimestamp"] = "2026-12-07T00:00:00Z"
    old["metadata"]["deletionTimestamp"] = stamp
    new["metadata"].update(name="next-5d8f7c9b4-a1b2c", uid="u-next", creationTimestamp=stamp)
    new["metadata"]["ownerReferences"][0]["name"] = "next-5d8f7c9b4"
    doc["items"].append(new)
    path = tmp_path / "pods.json"
    path.write_text(json.dumps(doc))
    snap = kit.read_k8s_snapshot(path)
    w = workload_outcomes(client, snap)
    rows = {r["workload_name"]: r["queries"] for r in w.iter_rows(named=True)}
    before = node1.filter(pl.col("ts") < cut).height
    assert rows == {
        "dnsperf-node1": before,
        "next": node1.height - before,
        "dnsperf-node2": client.height - node1.height,
    }
    # the same as attributing every row
    each = kit.attribute_clients(client, snap).group_by("workload_name").len()
    assert dict(each.iter_rows()) == rows


def test_node_addresses_counted_under_node_ip() -> None:
    """The whole capture holds the caches' own upstream queries, sent from the node addresses:
    they are counted as node_ip (with a warning), never dropped."""
    cap = kit.read_capture(HEALTHY / "captures", progress=False)
    snap = kit.read_k8s_snapshot(HEALTHY / "k8s" / "pods.json")
    nodes = set(snap.node_ips["ip"].to_list())
    from_nodes = cap.dns.filter(pl.col("client_ip").is_in(list(nodes))).height
    assert from_nodes > 0
    with pytest.warns(KitWarning, match="node addresses"):
        w = workload_outcomes(cap.dns, snap)
    assert int(w["queries"].sum()) == cap.dns.height
    node = w.filter(pl.col("attribution") == "node_ip").row(0, named=True)
    assert node["queries"] == from_nodes
    assert node["workload_name"] is None and node["pods"] == 0
    assert set(node["client_ips"].split(", ")) == nodes
    assert w.filter(pl.col("attribution") == "pod")["queries"].sum() == cap.dns.height - from_nodes


def test_snapshot_of_a_later_run_names_no_pod() -> None:
    """Pod IPs are reused: the healthy run's pods were created after the SYN-drop run, so none
    of that run's clients is attributed to them; the slow queries are still all counted."""
    client = client_side(SYN / "captures")
    snap = kit.read_k8s_snapshot(HEALTHY / "k8s" / "pods.json")
    w = workload_outcomes(client, snap)
    assert w["attribution"].to_list() == ["no_pod_at_that_time"]
    expected = kit.analyses.latency.outcomes(client, by=[], slow_s=1.0).row(0, named=True)
    r = w.row(0, named=True)
    assert (r["queries"], r["slow"], r["unanswered"]) == (
        client.height,
        expected["slow"],
        expected["unanswered"],
    )
    assert r["slow"] > 100 and r["harm_share"] == 1.0


def test_slow_node_workload_carries_the_slow_queries(tmp_path: Path) -> None:
    client = client_side(SYN / "captures")
    snap = kit.read_k8s_snapshot(moved_snapshot(tmp_path, "2026-12-06T22:00:00Z"))
    w = workload_outcomes(client, snap, slow_s=1.0)
    per_capture = {
        r["capture"]: r
        for r in kit.analyses.latency.outcomes(client, by=["capture"], slow_s=1.0).iter_rows(
            named=True
        )
    }
    first, second = w.row(0, named=True), w.row(1, named=True)
    assert (first["workload_name"], second["workload_name"]) == ("dnsperf-node1", "dnsperf-node2")
    assert first["slow"] == per_capture["node1"]["slow"] > 100
    assert first["unanswered"] == per_capture["node1"]["unanswered"]
    assert second["slow"] == second["unanswered"] == 0
    assert first["slow_share"] == 1.0 and first["p99_s"] >= 1.0 > second["p99_s"]
    top = hurt_workloads(w)
    assert [t["workload"] for t in top] == ["dnsperf/Deployment/dnsperf-node1"]
    # by pod and node instead of workload
    by_pod = workload_outcomes(client, snap, by=["pod_node", "pod"])
    assert by_pod.row(0, named=True)["pod_node"] == "node1"
    assert by_pod["slow"].to_list() == w["slow"].to_list()


def test_ledger_run_node1_stub_clients_carry_the_slow_queries() -> None:
    """The ledger lab run: glibc stub clients and dnsperf as pods on both nodes, SYN drops on
    node1's path to the upstream. node1's workloads have every slow and unanswered query, node2's
    (the control) none; each workload's counts are its pod address's."""
    client = client_side(LEDGER / "captures")
    snap = kit.read_k8s_snapshot(LEDGER / "k8s" / "pods.json")
    w = workload_outcomes(client, snap)
    assert set(w["attribution"]) == {"pod"} and int(w["queries"].sum()) == client.height
    per_ip = {
        r["client_ip"]: r
        for r in kit.analyses.latency.outcomes(client, by=["client_ip"], slow_s=1.0).iter_rows(
            named=True
        )
    }
    rows = {r["workload_name"]: r for r in w.iter_rows(named=True)}
    for name, ip in (
        ("stub-client-node1", "169.254.2.1"),
        ("dnsperf-node1", "169.254.1.1"),
        ("stub-client-node2", "169.254.2.2"),
        ("dnsperf-node2", "169.254.1.2"),
    ):
        r, want = rows[name], per_ip[ip]
        assert (r["client_ips"], r["queries"], r["slow"], r["unanswered"]) == (
            ip,
            want["queries"],
            want["slow"],
            want["unanswered"],
        )
    stub1, stub2 = rows["stub-client-node1"], rows["stub-client-node2"]
    assert stub1["pod_namespace"] == "stub" and stub1["workload_kind"] == "Deployment"
    assert stub1["slow"] > 50 and stub1["unanswered"] >= 1 and stub1["p99_s"] > 5.0
    assert stub2["slow"] == stub2["unanswered"] == 0 and stub2["p99_s"] < 0.5
    assert set(w["workload_name"].head(2)) == {"dnsperf-node1", "stub-client-node1"}
    assert w["harm_share"].head(2).sum() == pytest.approx(1.0)
    assert w["harm_share"].tail(2).to_list() == [0.0, 0.0]
    # by node: node1 has them all
    by_node = workload_outcomes(client, snap, by=["pod_node"])
    assert by_node["pod_node"].to_list() == ["node1", "node2"]
    assert by_node["slow"].to_list() == [stub1["slow"] + rows["dnsperf-node1"]["slow"], 0]


def test_without_a_snapshot_rows_are_client_addresses() -> None:
    client = client_side(SYN / "captures")
    w = workload_outcomes(client, None)
    assert w.columns[:2] == ["attribution", "client_ip"]
    assert set(w["attribution"]) == {"no_snapshot"}
    assert w["client_ip"].to_list() == ["169.254.1.1", "169.254.1.2"]  # the slow one first
    assert int(w["queries"].sum()) == client.height
    assert top_workloads(w, 1)["client_ip"].to_list() == ["169.254.1.1"]


def test_unbound_log_per_workload(tmp_path: Path) -> None:
    """A resolver log's queries (duration_s, no censoring) count the same way."""
    log = kit.read_unbound_log(SYN / "logs" / "unbound-node1.log")
    q = combined_queries(unbound=log)
    snap = kit.read_k8s_snapshot(moved_snapshot(tmp_path, "2026-12-06T22:00:00Z"))
    w = workload_outcomes(q, snap)
    assert w.height == 1 and int(w["queries"].sum()) == q.height
    r = w.row(0, named=True)
    assert r["workload_name"] == "dnsperf-node1"
    assert r["slow"] == q.filter(pl.col("duration_s") >= 1.0).height > 100
    assert r["censored"] == 0


def test_coredns_log_lines_from_issues() -> None:
    """Real CoreDNS query lines (GitHub issues): rcodes counted, a line logged without a response
    (``NOERROR - 0 5.0s``) counted as unanswered, untimed lines and unknown clients kept."""
    path = SHARED / "fixtures" / "logs" / "github_issue_excerpts_querylog.log"
    if not path.is_file():
        pytest.skip(f"{path} not available")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", KitWarning)
        queries = kit.read_coredns_log(path).queries
    snap = kit.read_k8s_snapshot(HEALTHY / "k8s" / "pods.json")
    for frame in (queries, combined_queries(coredns=queries)):
        by_ip = workload_outcomes(frame, None)
        assert int(by_ip["queries"].sum()) == frame.height
        assert int(by_ip["nxdomain"].sum()) == frame.filter(pl.col("rcode") == "NXDOMAIN").height
        assert int(by_ip["servfail"].sum()) == frame.filter(pl.col("rcode") == "SERVFAIL").height
        no_response = queries.filter(pl.col("resp_size") == 0)
        assert no_response.height >= 1
        assert int(by_ip["unanswered"].sum()) == no_response.height
        hit = by_ip.filter(pl.col("client_ip") == no_response["client_ip"][0]).row(0, named=True)
        assert hit["unanswered"] >= 1
        w = workload_outcomes(frame, snap)
        assert w["attribution"].to_list() == ["unknown"]  # none of the lab's addresses
        assert w["queries"].to_list() == [frame.height]


def test_bad_arguments() -> None:
    df = pl.DataFrame({"ts": [None], "client_ip": ["10.0.0.1"]})
    with pytest.raises(ValueError, match="latency_s"):
        workload_outcomes(df, None)
    snap = kit.read_k8s_snapshot(HEALTHY / "k8s" / "pods.json")
    with pytest.raises(ValueError, match="attribution columns"):
        workload_outcomes(df.with_columns(latency_s=pl.lit(0.1)), snap, by=["qname"])


def test_chart_draws_names_as_data() -> None:
    w = pl.DataFrame(
        {
            "attribution": ["pod", "node_ip", "pod"],
            "pod_namespace": ["ns", None, "ns"],
            "workload_kind": ["Deployment", None, "Deployment"],
            "workload_name": [HOSTILE, None, "calm"],
            "queries": [10, 5, 3],
            "slow": [3, 1, 0],
            "unanswered": [1, 0, 0],
            "nxdomain": [0, 2, 0],
        }
    )
    chart = kit.charts.workload_harm_chart(w)
    spec = chart.to_dict()
    values = spec["datasets"][next(iter(spec["datasets"]))]
    assert {v["workload"] for v in values} == {f"ns/Deployment/{HOSTILE}", "(node_ip)"}
    assert {(v["workload"], v["outcome"], v["n"]) for v in values} >= {
        (f"ns/Deployment/{HOSTILE}", "slow", 3),
        ("(node_ip)", "nxdomain", 2),
    }


def test_header_escapes_workload_names() -> None:
    from kit.report.html import _header_html

    top = [
        {"workload": f"ns/Deployment/{HOSTILE}", "attribution": "pod", "queries": 900}
        | {"slow": 143, "unanswered": 1, "nxdomain": 0, "servfail": 0}
    ]
    payload = {"vantage": "client side", "snapshot": True, "queries": 1800, "top": top}
    html = _header_html("t", [], [], None, workloads=[{**payload, "notebook": "04-capture-dns"}])
    assert "Workloads most hurt" in html
    assert "ns/Deployment/&lt;b&gt;web&#34;&amp;" in html and HOSTILE not in html
    assert "143 slow, 1 unanswered, 0 NXDOMAIN of 900 queries" in html
    # without a snapshot the rows are addresses: the header does not repeat them
    none = _header_html("t", [], [], None, workloads=[{**payload, "snapshot": False}])
    assert "Workloads most hurt" not in none


# --------------------------------------------------------------------------------------------
# notebooks 02 and 04 through the report


@pytest.mark.notebook
def test_report_names_the_hurt_workload(tmp_path: Path) -> None:
    """02 and 04 on a copy of the ledger run with its pods snapshot: the section, the pods, and
    the header's "Workloads most hurt" naming node1's workloads (the stub client's Deployment
    renamed with HTML in it: escaped everywhere)."""
    from kit import report

    art = tmp_path / "artefacts"
    (art / "logs").mkdir(parents=True)
    shutil.copytree(LEDGER / "captures", art / "captures")
    shutil.copy(LEDGER / "logs" / "unbound-node1.log", art / "logs" / "unbound-node1.log")
    shutil.copy(LEDGER / "run.json", art / "run.json")
    renamed_snapshot(
        LEDGER / "k8s" / "pods.json", art / "k8s" / "pods.json", "stub-client-node1", HOSTILE
    )
    books = [REPO / "notebooks" / "02-query-logs.py", REPO / "notebooks" / "04-capture-dns.py"]
    out = tmp_path / "report.html"
    result = report.render(books, output_html=out, artefacts=[art])
    assert [(r.name, r.status, r.reason) for r in result.runs] == [
        ("02-query-logs", "ok", ""),
        ("04-capture-dns", "ok", ""),
    ]
    assert all(r.parameters["k8s_snapshot"] for r in result.runs)
    html = out.read_text(encoding="utf-8")
    assert html.count("Which workloads make the slow / NXDOMAIN / unanswered queries?") == 2
    assert "stub-client-node2" in html  # the control node's workload, in 04's table
    header = html[html.index('id="workloads"') : html.index('id="toc"')]
    # the counts 04's header line must show: the client side of the capture, per workload
    client = client_side(LEDGER / "captures")
    snap = kit.read_k8s_snapshot(art / "k8s" / "pods.json")
    want = hurt_workloads(workload_outcomes(client, snap))
    assert len(want) == 2  # node1's two workloads; node2's had nothing to count
    line = next(li for li in header.split("<li>") if "client side of the capture" in li)
    for t in want:
        name = re.escape(t["workload"]).replace(re.escape('"'), '(?:"|&#34;|&quot;)')
        name = name.replace("<", "&lt;").replace(">", "&gt;").replace(re.escape("&"), "&amp;")
        shown = f"{name}</b>: {t['slow']} slow, {t['unanswered']} unanswered"
        assert re.search(shown, line), (shown, line)
    assert "stub/Deployment/&lt;b&gt;web" in line
    assert HOSTILE not in html and NO_SNAPSHOT_HINT.split(":")[0] not in html


@pytest.mark.notebook
def test_report_without_snapshot_gives_the_hint(tmp_path: Path) -> None:
    from kit import report

    art = tmp_path / "artefacts"
    shutil.copytree(HEALTHY / "captures", art / "captures")
    out = tmp_path / "report.html"
    result = report.render(
        [REPO / "notebooks" / "04-capture-dns.py"], output_html=out, artefacts=[art]
    )
    assert [(r.name, r.status) for r in result.runs] == [("04-capture-dns", "ok")]
    html = out.read_text(encoding="utf-8")
    assert "kubectl get pods -A -o json &gt; pods.json" in html
    assert "the clients are shown by IP" in html
    assert 'id="workloads"' not in html  # no header line without a snapshot
    assert "169.254.1.1" in html  # the top client addresses instead
