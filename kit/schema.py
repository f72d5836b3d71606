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


DNS_SCHEMA = _schema(
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
    }
)
"""One row per DNS query transaction (a query and its answer, or the query alone): the capture's
``dns`` frame (:mod:`kit.sources.capture`, whose docstrings say what each column holds), and the
column names and types every other source of DNS transactions shares (dnstap, Zeek, Inspektor
Gadget), so their frames join and concatenate with a capture's."""

DNSTAP_SCHEMA = _schema(
    {
        **DNS_SCHEMA,
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
# =============================================================================================
# Node evidence and other tools' DNS records (kit.sources.node, kit.sources.zeek,
# kit.sources.gadget). Appended block: the readers re-export these constants.
# =============================================================================================


NODE_COUNTERS_SCHEMA = pl.Schema(
    {
        "source": pl.String(),
        "snapshot": pl.UInt32(),
        "kind": pl.String(),
        "cpu": pl.Int32(),
        "interface": pl.String(),
        "counter": pl.String(),
        "value": pl.Int64(),
        "line_no": pl.UInt32(),
    }
)
"""One row per counter value read from a node evidence file (long format).

- ``source`` (String): the file.
- ``snapshot`` (UInt32): 0-based index of the snapshot within the file (a file holding the
  output of the same command several times, e.g. before and after, has several).
- ``kind`` (String): ``nstat`` (``nstat -asz``, ``/proc/net/snmp``, ``/proc/net/netstat``,
  ``/proc/net/snmp6``), ``conntrack_stats`` (``conntrack -S``), ``ethtool_stats``
  (``ethtool -S IFACE``) or ``ip_link_stats`` (``ip -s link``, ``ip -s -s link``).
- ``cpu`` (Int32): the CPU of a per-CPU counter (``conntrack -S``), else null.
- ``interface`` (String): the network interface (``ip -s link``; ``ethtool -S`` when the file
  names it), else null.
- ``counter`` (String): the counter's name as the tool prints it (nstat names such as
  ``UdpRcvbufErrors``; ``/proc/net/snmp`` rows are named the nstat way, section + field;
  ``ip -s link`` columns as ``rx_bytes``, ``tx_carrier``, ``rx_errors_crc``...).
- ``value`` (Int64): the value as printed (nstat ``-a`` and the others print totals since
  boot or since the driver's last reset).
- ``line_no`` (UInt32): 1-based line of the value in the file.
"""

NODE_OTHER_SCHEMA = pl.Schema(
    {"source": pl.String(), "line_no": pl.UInt32(), "what": pl.String(), "line": pl.String()}
)
"""Lines of node evidence files that carry no counter but are understood: ``what`` is
``blank``, ``header`` (``#kernel``, ``NIC statistics:``, ``ip -s link`` column headers, a shell
prompt with the command) or ``info`` (``link/ether ...``, ``altname ...`` lines of ``ip link``)."""

NODE_REJECTED_SCHEMA = pl.Schema(
    {"source": pl.String(), "line_no": pl.UInt32(), "reason": pl.String(), "line": pl.String()}
)
"""Lines of node evidence (and DNS record) files that could not be read, with the reason."""

NODE_DELTAS_SCHEMA = pl.Schema(
    {
        "kind": pl.String(),
        "host": pl.String(),
        "cpu": pl.Int32(),
        "interface": pl.String(),
        "counter": pl.String(),
        "first": pl.Int64(),
        "last": pl.Int64(),
        "delta": pl.Int64(),
        "snapshots": pl.UInt32(),
        "first_source": pl.String(),
        "last_source": pl.String(),
    }
)
"""Growth of each counter between its first and last snapshot (:func:`kit.sources.node.deltas`).

- ``kind``, ``cpu``, ``interface``, ``counter``: as :data:`NODE_COUNTERS_SCHEMA`.
- ``host`` (String): the folder holding the file(s): snapshots are compared within a folder
  (one node's evidence), never across folders.
- ``first``, ``last`` (Int64): the value in the first and in the last snapshot.
- ``delta`` (Int64): ``last - first``; null when there is one snapshot only (the value is then
  a total since boot or reset, not a growth).
- ``snapshots`` (UInt32): how many snapshots hold the counter.
- ``first_source``, ``last_source`` (String): the files of the first and last snapshot.
"""

DNS_RECORDS_SCHEMA = pl.Schema(
    {
        **{
            name: DNS_SCHEMA[name]
            for name in (
                "ts",
                "ts_response",
                "latency_s",
                "answered",
                "client_ip",
                "client_port",
                "server_ip",
                "server_port",
                "transport",
                "dns_id",
                "qname",
                "qtype",
                "rcode",
                "tc",
                "answers",
            )
        },
        "source": pl.String(),
        "line_no": pl.UInt32(),
    }
)
"""One row per DNS transaction read from another tool's records (Zeek ``dns.log``, Inspektor
Gadget ``trace dns``); the first 15 columns have the names and types of the capture's
``kit.sources.capture.DNS_SCHEMA`` columns of the same name.

- ``ts`` Datetime(us, UTC): time of the query (of the response when only that was seen).
- ``ts_response`` Datetime(us, UTC): time of the response; null when unknown.
- ``latency_s`` Float64, seconds: the tool's own measure (Zeek ``rtt``, Gadget latency), else
  response minus query time when both are known; null otherwise.
- ``answered`` Boolean: a response was seen.
- ``client_ip``, ``client_port``, ``server_ip``, ``server_port``: the query's sender and
  receiver (null when the tool does not say).
- ``transport`` String: ``udp`` or ``tcp``.
- ``dns_id`` UInt16: DNS message ID.
- ``qname`` String: the question name without the trailing dot, as the tool wrote it; root is
  ``"."``.
- ``qtype`` String: mnemonic (``A``, ``AAAA``...; ``TYPE<n>`` when unknown).
- ``rcode`` String: ``NOERROR``, ``NXDOMAIN``, ``SERVFAIL``... (``RCODE<n>`` when unknown);
  null when unanswered.
- ``tc`` Boolean: the response had the TC bit; null when unknown.
- ``answers`` UInt16: answer records in the response; null when unknown.
- ``source`` String: the file; ``line_no`` UInt32: 1-based line of the record (of the query's
  first event for Gadget).
"""

ZEEK_DNS_SCHEMA = pl.Schema({**DNS_RECORDS_SCHEMA, "uid": pl.String(), "rejected": pl.Boolean()})
""":data:`DNS_RECORDS_SCHEMA`, then Zeek's connection ``uid`` and its ``rejected`` flag (the
server refused the query)."""

GADGET_DNS_SCHEMA = pl.Schema(
    {
        **DNS_RECORDS_SCHEMA,
        "k8s_node": pl.String(),
        "k8s_namespace": pl.String(),
        "k8s_pod": pl.String(),
        "k8s_container": pl.String(),
        "comm": pl.String(),
        "pid": pl.UInt32(),
        "events": pl.UInt32(),
    }
)
""":data:`DNS_RECORDS_SCHEMA`, then where Inspektor Gadget saw the query: Kubernetes node,
namespace, pod and container (null when not in Kubernetes), the process name and PID of the
query's first event, and ``events`` (UInt32): how many trace events (the query and its answer,
each seen once per network namespace it crossed) make the row."""
