"""Check frames against the documented schema constants of the loaders."""

from __future__ import annotations

from typing import Any

import polars as pl

from kit.errors import SchemaError
from kit.timeutil import UTC as _UTC

__all__ = [
    "DNSTAP_MESSAGES_SCHEMA",
    "DNSTAP_META_SCHEMA",
    "DNSTAP_SCHEMA",
    "K8S_ENDPOINTS_SCHEMA",
    "K8S_IP_MAP_SCHEMA",
    "K8S_META_SCHEMA",
    "K8S_NODE_IPS_SCHEMA",
    "K8S_PODS_SCHEMA",
    "K8S_SERVICES_SCHEMA",
    "check_schema",
    "empty_frame",
]


def check_schema(
    df: pl.DataFrame, schema: pl.Schema | dict[str, pl.DataType], *, name: str = "frame"
) -> None:
    """Raise :class:`~kit.errors.SchemaError` unless ``df`` has exactly ``schema`` (names, order, dtypes).

    Extra columns are allowed only if they come after the schema's columns; they are listed in the
    message when the check fails for another reason.
    """
    want = pl.Schema(schema)
    got = df.schema
    missing = [c for c in want if c not in got]
    wrong = [f"{c}: {got[c]} (want {want[c]})" for c in want if c in got and got[c] != want[c]]
    order_ok = list(got)[: len(want)] == list(want)
    if missing or wrong or not order_ok:
        extra = [c for c in got if c not in want]
        parts = []
        if missing:
            parts.append(f"missing {missing}")
        if wrong:
            parts.append(f"wrong dtype {wrong}")
        if not missing and not order_ok:
            parts.append(f"column order {list(got)[: len(want)]} != {list(want)}")
        if extra:
            parts.append(f"extra {extra}")
        raise SchemaError(f"{name} does not match its schema: " + "; ".join(parts))


def empty_frame(schema: pl.Schema | dict[str, pl.DataType]) -> pl.DataFrame:
    """An empty frame with exactly ``schema``: the only way a loader says "the input had no rows"."""
    return pl.DataFrame(schema=pl.Schema(schema))


# --------------------------------------------------------------------------------------------
# dnstap (kit.sources.dnstap): the transactions frame shares the capture's DNS column names/dtypes


def _schema(cols: dict[str, Any]) -> pl.Schema:
    return pl.Schema(cols)


DNSTAP_SCHEMA = _schema(
    {
        "ts": _UTC,
        "ts_response": _UTC,
        "latency_s": pl.Float64,
        "answered": pl.Boolean,
        "censored": pl.Boolean,
        "client_ip": pl.String,
        "client_port": pl.UInt16,
        "server_ip": pl.String,
        "server_port": pl.UInt16,
        "transport": pl.String,
        "dns_id": pl.UInt16,
        "qname": pl.String,
        "qtype": pl.String,
        "rcode": pl.String,
        "tc": pl.Boolean,
        "answers": pl.UInt16,
        "retransmissions": pl.UInt32,
        "tcp_stream": pl.UInt32,
        "capture": pl.String,
        "frame_query": pl.UInt32,
        "frame_response": pl.UInt32,
        "opcode": pl.String,
        "message_type": pl.String,
        "identity": pl.String,
        "query_seen": pl.Boolean,
        "file": pl.String,
    }
)
"""One row per query transaction of one hop (see the module docstring). The first 22 columns are
the capture's DNS schema (``capture`` holds the file's name without suffix, like a capture's);
``message_type`` the hop (``CLIENT``, ``FORWARDER``, ...), ``identity`` the server's dnstap
identity (None when not sent), ``query_seen`` False for a row built from a response alone,
``file`` the path."""

DNSTAP_MESSAGES_SCHEMA = _schema(
    {
        "ts": _UTC,
        "file": pl.String,
        "frame": pl.UInt32,
        "offset": pl.UInt64,
        "identity": pl.String,
        "message_type": pl.String,
        "query_ts": _UTC,
        "response_ts": _UTC,
        "transport": pl.String,
        "query_ip": pl.String,
        "query_port": pl.UInt16,
        "response_ip": pl.String,
        "response_port": pl.UInt16,
        "dns_id": pl.UInt16,
        "qr": pl.Boolean,
        "opcode": pl.String,
        "qname": pl.String,
        "qtype": pl.String,
        "rcode": pl.String,
        "tc": pl.Boolean,
        "answers": pl.UInt16,
        "size": pl.UInt32,
    }
)
"""One row per dnstap message kept: ``ts`` its event time (the query time of a ``*_QUERY``, the
response time of a ``*_RESPONSE``), ``frame`` the 1-based data-frame index, ``offset`` the frame's
byte offset in the (decompressed) file, ``message_type`` the full type (``CLIENT_QUERY``...),
``size`` the DNS message's length in bytes; the rest from the DNS message's header and question."""

DNSTAP_META_SCHEMA = _schema(
    {
        "file": pl.String,
        "path": pl.String,
        "gzipped": pl.Boolean,
        "bytes": pl.UInt64,
        "content_type": pl.String,
        "stopped": pl.Boolean,
        "frames": pl.UInt64,
        "control_frames": pl.UInt64,
        "messages_kept": pl.UInt64,
        "messages_rejected": pl.UInt64,
        "rejects": pl.List(pl.String),
        "dns_queries": pl.UInt64,
        "dns_query_retransmissions": pl.UInt64,
        "dns_responses": pl.UInt64,
        "dns_duplicate_responses": pl.UInt64,
        "dns_orphan_responses": pl.UInt64,
        "first_ts": _UTC,
        "last_ts": _UTC,
        "identities": pl.List(pl.String),
        "message_types": pl.List(pl.String),
        "notes": pl.List(pl.String),
    }
)
"""One row per file: its frame accounting (see the module docstring), ``stopped`` whether it ended
with a STOP frame, ``message_types`` as ``"CLIENT_QUERY=120"``, ``notes`` damage and oddities."""


# --------------------------------------------------------------------------------------------
# Kubernetes snapshots (kit.sources.k8s)

K8S_PODS_SCHEMA = _schema(
    {
        "snapshot": pl.String,
        "snapshot_ts": _UTC,
        "namespace": pl.String,
        "pod": pl.String,
        "uid": pl.String,
        "node": pl.String,
        "pod_ip": pl.String,
        "pod_ips": pl.List(pl.String),
        "host_ip": pl.String,
        "host_network": pl.Boolean,
        "phase": pl.String,
        "created": _UTC,
        "started": _UTC,
        "finished": _UTC,
        "deleted": _UTC,
        "owner_kind": pl.String,
        "owner_name": pl.String,
        "workload_kind": pl.String,
        "workload_name": pl.String,
        "source_format": pl.String,
    }
)
"""One row per pod per snapshot file (``kit.sources.k8s``)."""

K8S_SERVICES_SCHEMA = _schema(
    {
        "snapshot": pl.String,
        "namespace": pl.String,
        "service": pl.String,
        "type": pl.String,
        "cluster_ip": pl.String,
        "cluster_ips": pl.List(pl.String),
        "ports": pl.List(pl.String),
        "selector": pl.String,
    }
)
"""One row per Service per snapshot file."""

K8S_ENDPOINTS_SCHEMA = _schema(
    {
        "snapshot": pl.String,
        "namespace": pl.String,
        "slice": pl.String,
        "service": pl.String,
        "address_type": pl.String,
        "address": pl.String,
        "ready": pl.Boolean,
        "node": pl.String,
        "target_kind": pl.String,
        "target_namespace": pl.String,
        "target_name": pl.String,
        "ports": pl.List(pl.String),
    }
)
"""One row per endpoint address of an EndpointSlice per snapshot file."""

K8S_IP_MAP_SCHEMA = _schema(
    {
        "ip": pl.String,
        "start": _UTC,
        "end": _UTC,
        "namespace": pl.String,
        "pod": pl.String,
        "node": pl.String,
        "owner_kind": pl.String,
        "owner_name": pl.String,
        "workload_kind": pl.String,
        "workload_name": pl.String,
        "host_network": pl.Boolean,
    }
)
"""Which pod held an IP when: one row per (pod, IP), ``start``/``end`` the interval (null: open)."""

K8S_META_SCHEMA = _schema(
    {
        "snapshot": pl.String,
        "format": pl.String,
        "kind": pl.String,
        "snapshot_ts": _UTC,
        "snapshot_ts_source": pl.String,
        "items": pl.UInt64,
        "pods": pl.UInt64,
        "services": pl.UInt64,
        "endpoint_slices": pl.UInt64,
        "nodes": pl.UInt64,
        "skipped": pl.UInt64,
        "skip_reasons": pl.List(pl.String),
    }
)
"""One row per snapshot file: ``items`` = ``pods`` + ``services`` + ``endpoint_slices`` +
``nodes`` + ``skipped`` (every item or table row accounted)."""

K8S_NODE_IPS_SCHEMA = _schema(
    {"snapshot": pl.String, "node": pl.String, "ip": pl.String, "source": pl.String}
)
"""Addresses that belong to nodes: ``source`` is ``hostIP`` (a pod's status.hostIP),
``hostNetwork pod`` (the pod IP of a hostNetwork pod) or ``Node <type>`` (a Node object's
status.addresses entry, e.g. ``Node InternalIP``)."""
