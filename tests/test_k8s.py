"""kit.read_k8s_snapshot and kit.attribute_clients on real kubectl / API outputs.

Inputs: excerpts of real outputs in ``tests/data/k8s`` (provenance in its README: kubectl
``-o json`` of a minikube pod, API PodList/ServiceList/EndpointSliceList of minikube and kind
clusters, a ``kubectl get pods -A -o wide`` table of an ACK node with hostNetwork pods), copies of
them changed in the tests where a second snapshot is needed (IP reuse), and the committed lab run
``data/scenarios/healthy`` whose ``k8s/pods.json`` the lab wrote for its client addresses.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import warnings
from pathlib import Path

import polars as pl
import pytest

import kit
from kit.errors import InputFormatError, KitWarning
from kit.sources.detect import detect
from kit.sources.k8s import ATTRIBUTION_COLUMNS, attribute_clients, read_k8s_snapshot

REPO = Path(__file__).resolve().parent.parent
K8S = REPO / "tests" / "data" / "k8s"
HEALTHY = Path(os.environ.get("DNSKIT_SCENARIOS", REPO / "data" / "scenarios")) / "healthy"
UTC = dt.UTC


def t(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).astimezone(UTC)


def queries(rows: list[tuple[str, str]]) -> pl.DataFrame:
    """A DNS frame with the columns attribution needs (client address and time)."""
    return pl.DataFrame(
        {"ts": [t(x) for _, x in rows], "client_ip": [ip for ip, _ in rows]},
        schema={"ts": pl.Datetime("us", "UTC"), "client_ip": pl.String},
    )


def test_kubectl_json_pod_list() -> None:
    s = read_k8s_snapshot(K8S / "kuard-kubectl-get-pods.json", taken_at="2022-12-23T10:00:00Z")
    m = s.meta.row(0, named=True)
    assert (m["format"], m["kind"], m["items"], m["pods"], m["skipped"]) == (
        "json",
        "List",
        1,
        1,
        0,
    )
    assert m["snapshot_ts"] == t("2022-12-23T10:00:00Z") and m["snapshot_ts_source"] == "taken_at"
    p = s.pods.row(0, named=True)
    assert (p["namespace"], p["pod"], p["node"], p["pod_ip"], p["host_ip"]) == (
        "default",
        "queue-l4dv8",
        "minikube",
        "172.17.0.6",
        "192.168.49.2",
    )
    assert p["pod_ips"] == ["172.17.0.6"] and p["host_network"] is False
    assert p["created"] == t("2022-12-23T09:36:45Z") and p["started"] == t("2022-12-23T09:36:45Z")
    # a bare ReplicaSet (no pod-template-hash label): the workload is the ReplicaSet itself
    assert (p["owner_kind"], p["owner_name"]) == ("ReplicaSet", "queue")
    assert (p["workload_kind"], p["workload_name"]) == ("ReplicaSet", "queue")
    assert s.node_ips.select("node", "ip", "source").rows() == [
        ("minikube", "192.168.49.2", "hostIP")
    ]
    assert s.ip_map.select("ip", "pod", "start", "end").rows() == [
        ("172.17.0.6", "queue-l4dv8", t("2022-12-23T09:36:45Z"), None)
    ]


def test_host_network_pod_is_a_node_address() -> None:
    s = read_k8s_snapshot(K8S / "victoriametrics-podlist.json", taken_at="2020-03-21T00:00:00Z")
    p = s.pods.row(0, named=True)
    assert (p["pod"], p["host_network"], p["pod_ip"], p["host_ip"]) == (
        "etcd-m01",
        True,
        "172.17.0.2",
        "172.17.0.2",
    )
    assert (p["owner_kind"], p["owner_name"]) == ("Node", "m01")  # a static (mirror) pod
    assert s.ip_map.is_empty()
    assert sorted(s.node_ips.select("ip", "source").rows()) == [
        ("172.17.0.2", "hostIP"),
        ("172.17.0.2", "hostNetwork pod"),
    ]
    q = queries([("172.17.0.2", "2020-03-20T14:00:00Z"), ("10.0.0.9", "2020-03-20T14:00:00Z")])
    with pytest.warns(KitWarning, match=r"1 of 2 rows come from node addresses \(172\.17\.0\.2\)"):
        a = attribute_clients(q, s)
    assert a["attribution"].to_list() == ["node_ip", "unknown"]
    assert a["pod"].to_list() == [None, None]


def test_services_and_endpoint_slices() -> None:
    s = read_k8s_snapshot(
        [K8S / "victoriametrics-servicelist.json", K8S / "victoriametrics-endpointslicelist.json"],
        taken_at="2020-09-08T00:00:00Z",
    )
    assert s.meta["kind"].to_list() == ["ServiceList", "EndpointSliceList"]
    assert s.meta.select("items", "services", "endpoint_slices").rows() == [(1, 1, 0), (2, 0, 2)]
    svc = s.services.row(0, named=True)
    assert (svc["namespace"], svc["service"], svc["type"], svc["cluster_ip"]) == (
        "kube-system",
        "kube-dns",
        "ClusterIP",
        "10.96.0.10",
    )
    assert svc["ports"] == ["dns/UDP 53", "dns-tcp/TCP 53", "metrics/TCP 9153"]
    assert svc["selector"] == "k8s-app=kube-dns"
    eps = s.endpoints.select(
        "service", "address", "ready", "node", "target_kind", "target_name"
    ).rows()
    assert eps == [
        ("kubernetes", "172.18.0.2", True, None, None, None),
        ("kube-dns", "10.244.0.3", True, "kind-control-plane", "Pod", "coredns-66bff467f8-z8czk"),
    ]


def test_kubectl_wide_table() -> None:
    taken = "2022-01-28T12:00:00Z"
    s = read_k8s_snapshot(K8S / "ack-kubectl-get-pods-A-wide.txt", taken_at=taken)
    m = s.meta.row(0, named=True)
    assert (m["format"], m["items"], m["pods"], m["skipped"]) == ("wide", 6, 6, 0)
    pods = s.pods
    assert pods["namespace"].unique().to_list() == ["kube-system"]
    assert set(pods["phase"]) == {"Running"}  # "1 (5h2m ago)" in RESTARTS did not shift a column
    assert set(pods["node"]) == {"cn-guangzhou.192.168.0.87"}
    ages = dict(zip(pods["pod"], (t(taken) - pods["created"]).to_list(), strict=True))
    assert ages["kube-flannel-ds-92knn"] == dt.timedelta(hours=6, minutes=54)
    assert ages["metrics-server-b9cb4b88f-wmzdr"] == dt.timedelta(hours=6, minutes=56)
    work = dict(
        zip(
            pods["pod"], zip(pods["workload_kind"], pods["workload_name"], strict=True), strict=True
        )
    )
    assert work["metrics-server-b9cb4b88f-wmzdr"] == ("Deployment", "metrics-server")
    assert work["nginx-ingress-controller-5c45d8549b-ftlld"] == (
        "Deployment",
        "nginx-ingress-controller",
    )
    assert work["node-local-dns-sbvqm"] == (None, "node-local-dns")
    # three pods share 192.168.0.87: hostNetwork, the node's address
    hn = pods.filter(pl.col("host_network"))["pod"].to_list()
    assert hn == ["kube-flannel-ds-92knn", "kube-proxy-worker-f9dxq", "node-local-dns-sbvqm"]
    assert s.node_ips["ip"].to_list() == ["192.168.0.87"]
    q = queries([("10.210.0.22", "2022-01-28T11:00:00Z"), ("192.168.0.87", "2022-01-28T11:00:00Z")])
    with pytest.warns(KitWarning, match="node addresses"):
        a = attribute_clients(q, s)
    assert a.select(*ATTRIBUTION_COLUMNS).rows() == [
        (
            "metrics-server-b9cb4b88f-wmzdr",
            "kube-system",
            "cn-guangzhou.192.168.0.87",
            None,  # a -o wide table has no owner references
            None,
            "Deployment",
            "metrics-server",
            "pod",
        ),
        (None, None, None, None, None, None, None, "node_ip"),
    ]


def _second_snapshot(tmp_path: Path, *, delete_old_at: str | None = None) -> list[Path]:
    """The real kuard pod list, and a later one where a new pod reuses its IP."""
    doc = json.loads((K8S / "kuard-kubectl-get-pods.json").read_text())
    first = tmp_path / "pods-1000.json"
    if delete_old_at:
        doc["items"][0]["metadata"]["deletionTimestamp"] = delete_old_at
    first.write_text(json.dumps(doc))
    new = json.loads((K8S / "kuard-kubectl-get-pods.json").read_text())
    md = new["items"][0]["metadata"]
    md["name"], md["uid"], md["creationTimestamp"] = (
        "queue-x7kq9",
        "0d9b4f5e-0000-4000-8000-000000000001",
        "2022-12-23T11:00:00Z",
    )
    new["items"][0]["status"]["startTime"] = "2022-12-23T11:00:01Z"
    second = tmp_path / "pods-1200.json"
    second.write_text(json.dumps(new))
    return [first, second]


def test_reused_pod_ip_is_attributed_by_time(tmp_path: Path) -> None:
    files = _second_snapshot(tmp_path)
    s = read_k8s_snapshot(files, taken_at=["2022-12-23T10:00:00Z", "2022-12-23T12:00:00Z"])
    assert s.ip_map.select("pod", "start", "end").rows() == [
        ("queue-l4dv8", t("2022-12-23T09:36:45Z"), t("2022-12-23T12:00:00Z")),
        ("queue-x7kq9", t("2022-12-23T11:00:00Z"), None),
    ]
    q = queries(
        [
            ("172.17.0.6", "2022-12-23T09:00:00Z"),  # before either pod
            ("172.17.0.6", "2022-12-23T10:30:00Z"),  # the first pod
            ("172.17.0.6", "2022-12-23T11:30:00Z"),  # both possible: the first not seen gone yet
            ("172.17.0.6", "2022-12-23T12:30:00Z"),  # the second pod
        ]
    )
    a = attribute_clients(q, s)
    assert a["attribution"].to_list() == ["no_pod_at_that_time", "pod", "ambiguous", "pod"]
    assert a["pod"].to_list() == [None, "queue-l4dv8", None, "queue-x7kq9"]
    # the deletion time, when the snapshot has it, settles the overlap
    files = _second_snapshot(tmp_path, delete_old_at="2022-12-23T10:59:59Z")
    s = read_k8s_snapshot(files, taken_at=["2022-12-23T10:00:00Z", "2022-12-23T12:00:00Z"])
    a = attribute_clients(q, s)
    assert a["pod"].to_list() == [None, "queue-l4dv8", "queue-x7kq9", "queue-x7kq9"]


def test_bad_inputs(tmp_path: Path) -> None:
    bad = tmp_path / "pods.json"
    bad.write_text('{"kind": "List",\n "items": [\n  {"kind": "Pod",, }]}')
    with pytest.raises(InputFormatError) as ei:
        read_k8s_snapshot(bad)
    assert ei.value.line == 3 and str(bad) in str(ei.value)
    doc = json.loads((K8S / "kuard-kubectl-get-pods.json").read_text())
    odd = json.loads(json.dumps(doc["items"][0]))
    odd["metadata"]["creationTimestamp"] = "yesterday"
    doc["items"] += [{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}}, odd]
    mixed = tmp_path / "mixed.json"
    mixed.write_text(json.dumps(doc))
    with pytest.warns(KitWarning, match="2 of 3 item"):
        s = read_k8s_snapshot(mixed, taken_at="2022-12-24T00:00:00Z")
    m = s.meta.row(0, named=True)
    assert m["items"] == 3 and m["pods"] == 1 and m["skipped"] == 2
    assert m["skip_reasons"] == [
        "kind 'ConfigMap' not read (1)",
        "Pod with a bad time: creationTimestamp 'yesterday' is not an RFC 3339 time (1)",
    ]


def test_default_time_is_the_file_mtime(tmp_path: Path) -> None:
    p = tmp_path / "pods.json"
    p.write_bytes((K8S / "kuard-kubectl-get-pods.json").read_bytes())
    os.utime(p, (1671800000, 1671800000))
    m = read_k8s_snapshot(p).meta.row(0, named=True)
    assert m["snapshot_ts"] == dt.datetime.fromtimestamp(1671800000, UTC)
    assert m["snapshot_ts_source"] == "file modification time"


def test_detected_as_k8s_snapshot() -> None:
    for f in sorted(K8S.glob("*.json")) + sorted(K8S.glob("*.txt")):
        assert detect(f).kind == "k8s_snapshot", (f, detect(f).reason)
    assert detect(HEALTHY / "k8s" / "pods.json").kind == "k8s_snapshot"


# ----- the lab: its snapshot maps its capture's (and dnstap's) clients ---------------------------


def test_lab_snapshot_maps_the_lab_clients() -> None:
    s = read_k8s_snapshot(HEALTHY / "k8s" / "pods.json")
    run = json.loads((HEALTHY / "run.json").read_text())
    for node in run["topology"]["nodes"]:
        n = node["node"]
        cap = kit.read_capture(HEALTHY / node["capture"])
        with pytest.warns(KitWarning, match=rf"from node addresses \({node['uplink_ip']}\)"):
            a = attribute_clients(cap.dns, s)
        assert a.height == cap.dns.height and a.columns[: cap.dns.width] == cap.dns.columns
        by = a.group_by("client_ip", *ATTRIBUTION_COLUMNS).len().sort("client_ip").rows()
        pods = cap.dns.filter(pl.col("client_ip") == node["client_ip"]).height
        up = cap.dns.filter(pl.col("client_ip") == node["uplink_ip"]).height
        assert pods > 0 and up > 0 and pods + up == cap.dns.height
        assert sorted(by) == sorted(
            [
                (
                    node["client_ip"],
                    f"{n.replace('node', 'dnsperf-node')}-5d8f7c9b4-x{n[-1]}q2z",
                    "dnsperf",
                    n,
                    "ReplicaSet",
                    f"dnsperf-{n}-5d8f7c9b4",
                    "Deployment",
                    f"dnsperf-{n}",
                    "pod",
                    pods,
                ),
                (node["uplink_ip"], None, None, None, None, None, None, None, "node_ip", up),
            ]
        )
        # dnstap's client hop names the same pod
        tap = kit.read_dnstap(HEALTHY / node["dnstap"]).dns
        b = attribute_clients(tap.filter(pl.col("message_type") == "CLIENT"), s)
        assert set(b["attribution"]) == {"pod"} and set(b["workload_name"]) == {f"dnsperf-{n}"}


def test_public() -> None:
    assert kit.read_k8s_snapshot is read_k8s_snapshot
    assert kit.attribute_clients is attribute_clients


def _paths(o: object, at: tuple = ()) -> list[tuple]:
    out = [at]
    if isinstance(o, dict):
        for k, v in o.items():
            out += _paths(v, (*at, k))
    elif isinstance(o, list):
        for i, v in enumerate(o):
            out += _paths(v, (*at, i))
    return out


def test_mutated_documents_are_read_or_refused(tmp_path: Path) -> None:
    """300 seeded mutations of the real JSON fixtures (any value replaced by a value of another
    type, keys deleted, bytes cut): each file is read with every item accounted for, or refused
    with an InputFormatError naming it; no other exception escapes."""
    import random

    rng = random.Random(18)
    docs = [json.loads(f.read_text()) for f in sorted(K8S.glob("*.json"))]
    others = [None, 0, -1, 1.5, True, "", "x" * 3, [], [1, "a"], {}, {"kind": "Pod"}, "2020-13-99"]
    refused = read = 0
    for k in range(300):
        doc = json.loads(json.dumps(rng.choice(docs)))
        for _ in range(rng.randint(1, 6)):
            path = rng.choice(_paths(doc)[1:] or [()])
            if not path:
                continue
            parent = doc
            for key in path[:-1]:
                parent = parent[key]
            if rng.random() < 0.2 and isinstance(parent, dict):
                del parent[path[-1]]
            else:
                parent[path[-1]] = rng.choice(others)
        text = json.dumps(doc)
        if rng.random() < 0.15:
            text = text[: rng.randrange(len(text))]
        p = tmp_path / f"m{k}.json"
        p.write_text(text)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", KitWarning)
                s = read_k8s_snapshot(p, taken_at="2022-12-24T00:00:00Z")
        except InputFormatError as exc:
            assert exc.path == str(p)
            refused += 1
            continue
        m = s.meta.row(0, named=True)
        assert m["items"] == (
            m["pods"] + m["services"] + m["endpoint_slices"] + m["nodes"] + m["skipped"]
        )
        assert s.pods.height == m["pods"]
        read += 1
    assert read > 100 and refused > 10, (read, refused)
