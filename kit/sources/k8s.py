"""Kubernetes snapshots: which pod (namespace, node, workload) held a client address, and when.

:func:`read_k8s_snapshot` reads what ``kubectl`` prints:

* ``kubectl get pods -A -o json`` (kubectl's ``"kind": "List"`` wrapper, or the API's
  ``PodList``), ``kubectl get services -A -o json`` (``ServiceList``), ``kubectl get
  endpointslices -A -o json`` (``EndpointSliceList``), ``kubectl get nodes -o json`` (``NodeList``),
  a single object of those kinds, or a ``List`` mixing them (``kubectl get pods,svc -o json``);
* ``kubectl get pods [-A] -o wide`` tables (columns found from the header, so ``RESTARTS`` values
  such as ``1 (5h2m ago)`` are read whole).

It returns a :class:`K8sSnapshot` of frames (schemas in :mod:`kit.schema`): ``pods``
(:data:`~kit.schema.K8S_PODS_SCHEMA`), ``services``, ``endpoints`` (one row per EndpointSlice
address), ``node_ips``, ``ip_map`` (:data:`~kit.schema.K8S_IP_MAP_SCHEMA`: which pod held which IP
from when to when) and ``meta`` (one row per file; every item or table row is counted as read or
skipped with its reason).

Time
----
Pod IPs are reused, so an address maps to a pod only within the pod's lifetime:
``start`` = ``metadata.creationTimestamp`` (for ``-o wide``: the snapshot time minus ``AGE``,
to the table's rounding), ``end`` = ``metadata.deletionTimestamp`` if set, else the last
``finishedAt`` of a pod whose containers all terminated (Succeeded/Failed), else, when several
snapshots are given, the time of the first later pod snapshot that no longer lists the pod, else
open. The time a snapshot was taken is ``taken_at=`` (one value, or one per file), else the
file's modification time (``meta.snapshot_ts_source`` says which).

Workloads
---------
``owner_kind``/``owner_name`` are the pod's controller ``ownerReference``; ``workload_kind``/
``workload_name`` follow a ReplicaSet to its Deployment (when the ReplicaSet's name is the
Deployment's plus the pod's ``pod-template-hash`` label) and a Job to its CronJob (a numeric
suffix of 8 or more digits); otherwise they equal the owner. A ``-o wide`` table has no owners:
a name ``<base>-<hash 6-10>-<5>`` gives ``Deployment <base>``, ``<base>-<5>`` gives
``workload_name`` ``<base>`` with no kind (a DaemonSet, Job or bare ReplicaSet look alike), and an
IP listed for several pods is taken as a node's (hostNetwork pods).

Node addresses
--------------
Pods with ``hostNetwork: true`` have the node's address as their pod IP, and traffic a node
SNATs leaves with the node's address too: a DNS client seen at a node address cannot be
attributed to a pod from that vantage point. :func:`attribute_clients` says so
(``attribution == "node_ip"``) and warns.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import os
import re
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import polars as pl

from kit.errors import InputFormatError, KitWarning
from kit.schema import (
    K8S_ENDPOINTS_SCHEMA,
    K8S_IP_MAP_SCHEMA,
    K8S_META_SCHEMA,
    K8S_NODE_IPS_SCHEMA,
    K8S_PODS_SCHEMA,
    K8S_SERVICES_SCHEMA,
    check_schema,
)
from kit.sources._io import Source, expand_sources, read_raw

__all__ = [
    "ATTRIBUTION_COLUMNS",
    "K8sSnapshot",
    "attribute_clients",
    "read_k8s_snapshot",
]

#: Columns :func:`attribute_clients` adds, in order.
ATTRIBUTION_COLUMNS = (
    "pod",
    "pod_namespace",
    "pod_node",
    "owner_kind",
    "owner_name",
    "workload_kind",
    "workload_name",
    "attribution",
)

_KUBE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # k8s.io/apimachinery/pkg/util/rand
_DEPLOY_POD = re.compile(rf"^(.+)-[{_KUBE_ALPHABET}]{{6,10}}-[{_KUBE_ALPHABET}]{{5}}$")
_GENERATED_POD = re.compile(rf"^(.+)-[{_KUBE_ALPHABET}]{{5}}$")
_CRONJOB_JOB = re.compile(r"^(.+)-\d{8,}$")
_AGE = re.compile(r"^(?:(\d+)y)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")
_WIDE_HEADER = re.compile(r"^(?:NAMESPACE\s+)?NAME\s+READY\s+STATUS\s+RESTARTS\s+AGE\s+IP\s+NODE\b")


@dataclass(frozen=True)
class K8sSnapshot:
    """What :func:`read_k8s_snapshot` returns (schemas in :mod:`kit.schema`).

    Attributes
    ----------
    pods : polars.DataFrame
        One row per pod per file, ``K8S_PODS_SCHEMA``.
    services : polars.DataFrame
        One row per Service, ``K8S_SERVICES_SCHEMA``.
    endpoints : polars.DataFrame
        One row per EndpointSlice address, ``K8S_ENDPOINTS_SCHEMA``.
    node_ips : polars.DataFrame
        Node addresses, ``K8S_NODE_IPS_SCHEMA``.
    ip_map : polars.DataFrame
        Which pod held which IP when, ``K8S_IP_MAP_SCHEMA`` (hostNetwork pods excluded: their IP
        is the node's).
    meta : polars.DataFrame
        One row per file, ``K8S_META_SCHEMA``.
    """

    pods: pl.DataFrame
    services: pl.DataFrame
    endpoints: pl.DataFrame
    node_ips: pl.DataFrame
    ip_map: pl.DataFrame
    meta: pl.DataFrame


# --------------------------------------------------------------------------------------------
# helpers


def _ts(value: Any, what: str) -> dt.datetime | None:
    """RFC 3339 time of the API (``2022-12-23T09:36:45Z``, fractions allowed) as UTC, or None."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError(f"{what} is {type(value).__name__}, not a time string")
    try:
        t = dt.datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{what} {value!r} is not an RFC 3339 time") from None
    if t.tzinfo is None:
        raise ValueError(f"{what} {value!r} has no time zone")
    return t.astimezone(dt.UTC)


def _taken_at(value: Any) -> dt.datetime:
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            raise ValueError("taken_at must be time-zone aware (UTC)")
        return value.astimezone(dt.UTC)
    t = _ts(str(value), "taken_at")
    assert t is not None
    return t


def _workload(
    owner_kind: str | None, owner_name: str | None, labels: Mapping[str, Any]
) -> tuple[str | None, str | None]:
    if owner_kind == "ReplicaSet" and owner_name:
        h = labels.get("pod-template-hash")
        if isinstance(h, str) and h and owner_name.endswith("-" + h):
            return "Deployment", owner_name[: -len(h) - 1]
    if owner_kind == "Job" and owner_name and (m := _CRONJOB_JOB.match(owner_name)):
        return "CronJob", m.group(1)
    return owner_kind, owner_name


def _dict(o: Any) -> dict[str, Any]:
    return o if isinstance(o, dict) else {}


def _list(o: Any) -> list[Any]:
    return o if isinstance(o, list) else []


def _s(o: Any) -> str | None:
    """A string field as str (numbers and booleans as their text), None when absent or a
    container."""
    if o is None or isinstance(o, dict | list):
        return None
    return str(o)


# --------------------------------------------------------------------------------------------
# JSON


class _Skip(Exception):
    """An item the reader does not take: counted in meta.skip_reasons."""


def _pod(item: dict[str, Any], snap: str, taken: dt.datetime) -> dict[str, Any]:
    md, spec, st = _dict(item.get("metadata")), _dict(item.get("spec")), _dict(item.get("status"))
    name = md.get("name")
    if not isinstance(name, str) or not name:
        raise _Skip("Pod without metadata.name")
    try:
        created = _ts(md.get("creationTimestamp"), "creationTimestamp")
        deleted = _ts(md.get("deletionTimestamp"), "deletionTimestamp")
        started = _ts(st.get("startTime"), "status.startTime")
        finished = None
        statuses = [_dict(c) for c in _list(st.get("containerStatuses"))]
        ends = [_dict(_dict(c.get("state")).get("terminated")).get("finishedAt") for c in statuses]
        if statuses and all(isinstance(e, str) for e in ends):
            finished = max(t for e in ends if (t := _ts(e, "finishedAt")) is not None)
    except ValueError as exc:
        raise _Skip(f"Pod with a bad time: {exc}") from None
    owners = [_dict(o) for o in _list(md.get("ownerReferences"))]
    owner = next((o for o in owners if o.get("controller")), owners[0] if owners else {})
    ok, on = _s(owner.get("kind")), _s(owner.get("name"))
    wk, wn = _workload(ok, on, _dict(md.get("labels")))
    ips = [str(_dict(p).get("ip")) for p in _list(st.get("podIPs")) if _dict(p).get("ip")]
    pod_ip = _s(st.get("podIP")) or (ips[0] if ips else None)
    if pod_ip and pod_ip not in ips:
        ips.insert(0, pod_ip)
    return {
        "snapshot": snap,
        "snapshot_ts": taken,
        "namespace": _s(md.get("namespace")),
        "pod": name,
        "uid": _s(md.get("uid")) or None,
        "node": _s(spec.get("nodeName")),
        "pod_ip": _s(pod_ip),
        "pod_ips": ips,
        "host_ip": _s(st.get("hostIP")),
        "host_network": bool(spec.get("hostNetwork", False)),
        "phase": _s(st.get("phase")),
        "created": created,
        "started": started,
        "finished": finished,
        "deleted": deleted,
        "owner_kind": ok,
        "owner_name": on,
        "workload_kind": wk,
        "workload_name": wn,
        "source_format": "json",
    }


def _service(item: dict[str, Any], snap: str) -> dict[str, Any]:
    md, spec = _dict(item.get("metadata")), _dict(item.get("spec"))
    ports = [
        f"{_dict(p).get('name') or ''}/{_dict(p).get('protocol') or 'TCP'} {_dict(p).get('port')}"
        for p in _list(spec.get("ports"))
    ]
    sel = _dict(spec.get("selector"))
    cip = spec.get("clusterIP")
    return {
        "snapshot": snap,
        "namespace": _s(md.get("namespace")),
        "service": _s(md.get("name")),
        "type": _s(spec.get("type")),
        "cluster_ip": _s(cip) if cip and cip != "None" else None,
        "cluster_ips": [str(x) for x in _list(spec.get("clusterIPs")) or ([cip] if cip else [])],
        "ports": ports,
        "selector": ",".join(f"{k}={v}" for k, v in sorted(sel.items())) or None,
    }


def _slice(item: dict[str, Any], snap: str) -> list[dict[str, Any]]:
    md = _dict(item.get("metadata"))
    ports = [
        f"{_dict(p).get('name') or ''}/{_dict(p).get('protocol') or 'TCP'} {_dict(p).get('port')}"
        for p in _list(item.get("ports"))
    ]
    rows = []
    for ep in _list(item.get("endpoints")):
        ep = _dict(ep)
        ref = _dict(ep.get("targetRef"))
        cond = _dict(ep.get("conditions"))
        node = ep.get("nodeName") or _dict(ep.get("topology")).get("kubernetes.io/hostname")
        for addr in _list(ep.get("addresses")):
            rows.append(
                {
                    "snapshot": snap,
                    "namespace": _s(md.get("namespace")),
                    "slice": _s(md.get("name")),
                    "service": _s(_dict(md.get("labels")).get("kubernetes.io/service-name")),
                    "address_type": _s(item.get("addressType")),
                    "address": str(addr),
                    "ready": cond.get("ready") if isinstance(cond.get("ready"), bool) else None,
                    "node": _s(node),
                    "target_kind": _s(ref.get("kind")),
                    "target_namespace": _s(ref.get("namespace")),
                    "target_name": _s(ref.get("name")),
                    "ports": ports,
                }
            )
    return rows


def _items(doc: Any) -> list[Any]:
    if isinstance(doc, dict) and isinstance(doc.get("items"), list):
        kind = str(doc.get("kind") or "")
        inner = kind[: -len("List")] if kind.endswith("List") and kind != "List" else None
        # items of a typed list (PodList) carry no kind of their own in API output
        return [
            {**i, "kind": i.get("kind") or inner} if isinstance(i, dict) else i
            for i in doc["items"]
        ]
    return [doc]


@dataclass
class _Out:
    pods: list[dict[str, Any]]
    services: list[dict[str, Any]]
    endpoints: list[dict[str, Any]]
    nodes: list[dict[str, Any]]


def _read_json(
    text: str, path: str, taken: dt.datetime, out: _Out, skips: dict[str, int]
) -> tuple[str, int, dict[str, int]]:
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputFormatError(
            f"not JSON ({exc.msg})",
            path=path,
            line=exc.lineno,
            hint="Expected kubectl get pods/services/endpointslices/nodes -o json output, or a "
            "kubectl get pods -o wide table",
        ) from None
    except RecursionError:
        raise InputFormatError("JSON nested too deeply", path=path) from None
    except ValueError as exc:  # an integer over sys.get_int_max_str_digits() (4300) digits
        raise InputFormatError(f"JSON value not readable ({exc})"[:200], path=path) from None
    kind = str(doc.get("kind")) if isinstance(doc, dict) else type(doc).__name__
    items = _items(doc)
    counts = {"pods": 0, "services": 0, "endpoint_slices": 0, "nodes": 0}
    for item in items:
        try:
            if not isinstance(item, dict):
                raise _Skip(f"item is {type(item).__name__}, not an object")
            k = item.get("kind")
            if k == "Pod":
                out.pods.append(_pod(item, path, taken))
                counts["pods"] += 1
            elif k == "Service":
                out.services.append(_service(item, path))
                counts["services"] += 1
            elif k == "EndpointSlice":
                out.endpoints.extend(_slice(item, path))
                counts["endpoint_slices"] += 1
            elif k == "Node":
                md = _dict(item.get("metadata"))
                for a in _list(_dict(item.get("status")).get("addresses")):
                    a = _dict(a)
                    if a.get("type") in {"InternalIP", "ExternalIP"} and a.get("address"):
                        out.nodes.append(
                            {
                                "snapshot": path,
                                "node": _s(md.get("name")),
                                "ip": str(a["address"]),
                                "source": f"Node {a['type']}",
                            }
                        )
                counts["nodes"] += 1
            else:
                raise _Skip(f"kind {k!r} not read")
        except _Skip as exc:
            skips[str(exc)] = skips.get(str(exc), 0) + 1
    return kind, len(items), counts


# --------------------------------------------------------------------------------------------
# kubectl get pods -o wide


def _age_s(text: str) -> float | None:
    m = _AGE.match(text)
    if not m or not text:
        return None
    y, d, h, mi, s = (int(g) if g else 0 for g in m.groups())
    return float((((y * 365 + d) * 24 + h) * 60 + mi) * 60 + s)


def _read_wide(
    text: str, path: str, taken: dt.datetime, out: _Out, skips: dict[str, int]
) -> tuple[str, int, dict[str, int]]:
    lines = [ln.rstrip("\r\n") for ln in text.splitlines()]
    hdr_no = next(i for i, ln in enumerate(lines) if ln.strip())
    header = lines[hdr_no]
    cols = [(m.group(0), m.start()) for m in re.finditer(r"\S+(?: \S+)*", header)]
    names = [c for c, _ in cols]
    starts = [s for _, s in cols] + [10**9]
    rows = 0
    pods = 0
    for no, ln in enumerate(lines[hdr_no + 1 :], start=hdr_no + 2):
        if not ln.strip():
            continue
        rows += 1
        f = {n: ln[starts[i] : starts[i + 1]].strip() for i, n in enumerate(names)}
        # every column's value must start where its header starts (kubectl's alignment)
        misaligned = [
            n
            for i, n in enumerate(names)
            if f[n] and starts[i] > 0 and ln[starts[i] - 1 : starts[i]] not in (" ", "")
        ]
        if misaligned or not f.get("NAME") or not f.get("IP"):
            reason = (
                f"row not aligned with the header at {misaligned[0]}"
                if misaligned
                else "row without NAME or IP"
            )
            skips[reason] = skips.get(reason, 0) + 1
            if len(skips) == 1 and skips[reason] == 1:
                warnings.warn(f"{path}:{no}: {reason}: {ln[:120]!r}", KitWarning, stacklevel=3)
            continue
        age = _age_s(f.get("AGE", ""))
        created = taken - dt.timedelta(seconds=age) if age is not None else None
        name = f["NAME"]
        ip = None if f["IP"] in {"<none>", ""} else f["IP"]
        wk: str | None
        wn: str | None
        if m := _DEPLOY_POD.match(name):
            wk, wn = "Deployment", m.group(1)
        elif m := _GENERATED_POD.match(name):
            wk, wn = None, m.group(1)
        else:
            wk, wn = None, None
        node = f.get("NODE")
        out.pods.append(
            {
                "snapshot": path,
                "snapshot_ts": taken,
                "namespace": f.get("NAMESPACE"),
                "pod": name,
                "uid": None,
                "node": None if node in (None, "<none>") else node,
                "pod_ip": ip,
                "pod_ips": [ip] if ip else [],
                "host_ip": None,
                "host_network": None,
                "phase": f.get("STATUS"),
                "created": created,
                "started": None,
                "finished": None,
                "deleted": None,
                "owner_kind": None,
                "owner_name": None,
                "workload_kind": wk,
                "workload_name": wn,
                "source_format": "wide",
            }
        )
        pods += 1
    return "pods -o wide", rows, {"pods": pods, "services": 0, "endpoint_slices": 0, "nodes": 0}


# --------------------------------------------------------------------------------------------
# public


def read_k8s_snapshot(
    source: Source,
    *,
    taken_at: dt.datetime | str | Sequence[dt.datetime | str] | None = None,
) -> K8sSnapshot:
    """Read kubectl outputs (pods, services, EndpointSlices, nodes; JSON or ``pods -o wide``).

    Parameters
    ----------
    source
        A file, a list of files, a glob or a folder (``.json``, ``.txt``; gzip allowed). Each
        file is one snapshot.
    taken_at
        When the snapshot was taken (UTC datetime or RFC 3339 text): one value for all files or
        one per file in the order read. Default: each file's modification time.

    Returns
    -------
    K8sSnapshot
        See the module docstring.

    Raises
    ------
    InputNotFoundError, InputFileError
        A file is missing or unreadable.
    InputFormatError
        A file is neither JSON nor a ``kubectl get pods -o wide`` table (file and line).

    Warns
    -----
    KitWarning
        Items or rows were skipped (first reason; all in ``meta.skip_reasons``).
    """
    files = expand_sources(source, suffixes=(".json", ".txt", ".wide"), what="Kubernetes snapshot")
    if taken_at is None or isinstance(taken_at, str | dt.datetime):
        times: list[Any] = [taken_at] * len(files)
    else:
        times = list(taken_at)
        if len(times) != len(files):
            raise ValueError(f"taken_at has {len(times)} values for {len(files)} files")
    out = _Out([], [], [], [])
    meta = []
    for p, t in zip(files, times, strict=True):
        path = os.fspath(p)
        raw = read_raw(p, what="Kubernetes snapshot")
        if t is None:
            taken = dt.datetime.fromtimestamp(p.stat().st_mtime, dt.UTC)
            source_of_time = "file modification time"
        else:
            taken = _taken_at(t)
            source_of_time = "taken_at"
        text = raw.data.decode("utf-8", "replace")
        skips: dict[str, int] = {}
        first = next((ln for ln in text.splitlines() if ln.strip()), "")
        if _WIDE_HEADER.match(first):
            kind, n, counts = _read_wide(text, path, taken, out, skips)
            fmt = "wide"
        else:
            kind, n, counts = _read_json(text, path, taken, out, skips)
            fmt = "json"
        skipped = sum(skips.values())
        if skipped:
            warnings.warn(
                f"{path}: {skipped} of {n} item(s) skipped (first: {next(iter(skips))})",
                KitWarning,
                stacklevel=2,
            )
        meta.append(
            {
                "snapshot": path,
                "format": fmt,
                "kind": kind,
                "snapshot_ts": taken,
                "snapshot_ts_source": source_of_time,
                "items": n,
                **counts,
                "skipped": skipped,
                "skip_reasons": [f"{r} ({c})" for r, c in skips.items()],
            }
        )
    pods = _wide_host_network(pl.DataFrame(out.pods, schema=K8S_PODS_SCHEMA, orient="row"))
    services = pl.DataFrame(out.services, schema=K8S_SERVICES_SCHEMA, orient="row")
    endpoints = pl.DataFrame(out.endpoints, schema=K8S_ENDPOINTS_SCHEMA, orient="row")
    node_ips = _node_ips(pods, pl.DataFrame(out.nodes, schema=K8S_NODE_IPS_SCHEMA, orient="row"))
    ip_map = _ip_map(pods)
    meta_df = pl.DataFrame(meta, schema=K8S_META_SCHEMA, orient="row")
    for df, sch, name in (
        (pods, K8S_PODS_SCHEMA, "pods"),
        (ip_map, K8S_IP_MAP_SCHEMA, "ip_map"),
        (node_ips, K8S_NODE_IPS_SCHEMA, "node_ips"),
    ):
        check_schema(df, sch, name=f"k8s {name}")
    return K8sSnapshot(pods, services, endpoints, node_ips, ip_map, meta_df)


def _wide_host_network(pods: pl.DataFrame) -> pl.DataFrame:
    """A ``-o wide`` table has no hostNetwork flag: an IP listed for two or more pods of one
    snapshot is a node's (pods never share an address otherwise), so those pods are marked
    hostNetwork. A node with a single hostNetwork pod cannot be told apart this way."""
    shared = pl.len().over("snapshot", "pod_ip") > 1
    return pods.with_columns(
        host_network=pl.when(pl.col("source_format") == "wide")
        .then(pl.when(pl.col("pod_ip").is_not_null()).then(shared))
        .otherwise(pl.col("host_network"))
    )


def _node_ips(pods: pl.DataFrame, nodes: pl.DataFrame) -> pl.DataFrame:
    host = pods.filter(pl.col("host_ip").is_not_null()).select(
        "snapshot", "node", ip=pl.col("host_ip"), source=pl.lit("hostIP")
    )
    hn = (
        pods.filter(pl.col("host_network").fill_null(False))
        .explode("pod_ips")
        .filter(pl.col("pod_ips").is_not_null())
        .select("snapshot", "node", ip=pl.col("pod_ips"), source=pl.lit("hostNetwork pod"))
    )
    return pl.concat([nodes, host, hn]).unique(maintain_order=True)


def _ip_map(pods: pl.DataFrame) -> pl.DataFrame:
    """One row per (pod, IP) with the interval it held it (see the module docstring)."""
    if pods.is_empty():
        return pl.DataFrame(schema=K8S_IP_MAP_SCHEMA)
    key = pl.coalesce(
        "uid", pl.concat_str([pl.col("namespace").fill_null(""), pl.col("pod")], separator="/")
    )
    p = pods.with_columns(_key=key)
    # pod snapshots in time order; a pod last seen in snapshot i ends by the next one without it
    snaps = p.select("snapshot_ts").unique().sort("snapshot_ts")["snapshot_ts"].to_list()
    last = p.group_by("_key").agg(
        _last_seen=pl.col("snapshot_ts").max(),
        created=pl.col("created").min(),
        deleted=pl.col("deleted").min(),
        finished=pl.col("finished").max(),
        **{
            c: pl.col(c).sort_by("snapshot_ts").last()
            for c in (
                "namespace",
                "pod",
                "node",
                "owner_kind",
                "owner_name",
                "workload_kind",
                "workload_name",
                "host_network",
            )
        },
        pod_ips=pl.col("pod_ips")
        .list.explode(keep_nulls=False, empty_as_null=False)
        .unique(maintain_order=True),
    )
    nxt = dict(itertools.pairwise(snaps))
    last = last.with_columns(
        _gone=pl.col("_last_seen").replace_strict(
            nxt, default=None, return_dtype=pods.schema["snapshot_ts"]
        )
    )
    return (
        last.filter(~pl.col("host_network").fill_null(False))
        .explode("pod_ips")
        .filter(pl.col("pod_ips").is_not_null())
        .select(
            ip=pl.col("pod_ips"),
            start=pl.col("created"),
            end=pl.coalesce("deleted", "finished", "_gone"),
            namespace="namespace",
            pod="pod",
            node="node",
            owner_kind="owner_kind",
            owner_name="owner_name",
            workload_kind="workload_kind",
            workload_name="workload_name",
            host_network=pl.col("host_network"),
        )
        .sort("ip", "start", nulls_last=False)
    )


def attribute_clients(
    dns: pl.DataFrame,
    snapshot: K8sSnapshot,
    *,
    ip_column: str = "client_ip",
    ts_column: str = "ts",
) -> pl.DataFrame:
    """``dns`` with :data:`ATTRIBUTION_COLUMNS` added: the pod that held each row's client
    address at the row's time.

    Parameters
    ----------
    dns
        Any frame with an address and a UTC time column (a capture's or dnstap's ``dns``, a
        CoreDNS log's queries).
    snapshot
        From :func:`read_k8s_snapshot`.
    ip_column, ts_column
        The address and time columns of ``dns``.

    Returns
    -------
    polars.DataFrame
        ``dns`` (rows and order unchanged) plus ``pod``, ``pod_namespace``, ``pod_node``,
        ``owner_kind``, ``owner_name`` (the pod's controller ownerReference), ``workload_kind``,
        ``workload_name`` (the owner followed to its Deployment/CronJob) and ``attribution``: ``"pod"`` (exactly one pod
        held the address then), ``"node_ip"`` (the address is a node's: a hostNetwork pod or
        SNAT, no pod can be named), ``"ambiguous"`` (several pods held it then, by the
        snapshots' times), ``"no_pod_at_that_time"`` (pods held it, but not then: a reused IP
        outside their lifetimes), ``"unknown"`` (not in the snapshot).

    Warns
    -----
    KitWarning
        Some rows' clients are node addresses (how many rows and addresses).
    """
    idx = "__row"
    left = dns.with_row_index(idx).select(
        idx, pl.col(ip_column).alias("_ip"), pl.col(ts_column).alias("_t")
    )
    m = snapshot.ip_map
    cand = left.join(m, left_on="_ip", right_on="ip", how="inner")
    inside = (pl.col("start").is_null() | (pl.col("start") <= pl.col("_t"))) & (
        pl.col("end").is_null() | (pl.col("_t") < pl.col("end"))
    )
    hits = (
        cand.filter(inside)
        .group_by(idx)
        .agg(
            _n=pl.len(),
            pod=pl.col("pod").first(),
            pod_namespace=pl.col("namespace").first(),
            pod_node=pl.col("node").first(),
            owner_kind=pl.col("owner_kind").first(),
            owner_name=pl.col("owner_name").first(),
            workload_kind=pl.col("workload_kind").first(),
            workload_name=pl.col("workload_name").first(),
        )
    )
    known = set(m["ip"].to_list())
    nodes = set(snapshot.node_ips["ip"].to_list())
    res = left.join(hits, on=idx, how="left").sort(idx)
    one = pl.col("_n") == 1
    attribution = (
        pl.when(one)
        .then(pl.lit("pod"))
        .when(pl.col("_n") > 1)
        .then(pl.lit("ambiguous"))
        .when(pl.col("_ip").is_in(list(nodes)))
        .then(pl.lit("node_ip"))
        .when(pl.col("_ip").is_in(list(known)))
        .then(pl.lit("no_pod_at_that_time"))
        .otherwise(pl.lit("unknown"))
    )
    res = res.select(
        *[pl.when(one).then(pl.col(c)).alias(c) for c in ATTRIBUTION_COLUMNS[:-1]],
        attribution.alias("attribution"),
    )
    out = pl.concat([dns, res], how="horizontal")
    on_node = out.filter(pl.col("attribution") == "node_ip")
    if on_node.height:
        addrs = sorted(set(on_node[ip_column].to_list()))
        warnings.warn(
            f"{on_node.height} of {out.height} rows come from node addresses "
            f"({', '.join(addrs[:5])}{', ...' if len(addrs) > 5 else ''}): hostNetwork pods or "
            "SNAT; no pod can be named from this vantage point (capture on the pod's side, or "
            "use the CoreDNS/node-cache log of the hop before the SNAT)",
            KitWarning,
            stacklevel=2,
        )
    return out
