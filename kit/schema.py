"""Check frames against the documented schema constants of the loaders."""

from __future__ import annotations

import polars as pl

from kit.errors import SchemaError

__all__ = ["check_schema", "empty_frame"]


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


# =============================================================================================
# Node evidence and other tools' DNS records (kit.sources.node, kit.sources.zeek,
# kit.sources.gadget). Appended block: the readers re-export these constants.
# =============================================================================================

_UTC_US = pl.Datetime("us", "UTC")

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
        "ts": _UTC_US,
        "ts_response": _UTC_US,
        "latency_s": pl.Float64(),
        "answered": pl.Boolean(),
        "client_ip": pl.String(),
        "client_port": pl.UInt16(),
        "server_ip": pl.String(),
        "server_port": pl.UInt16(),
        "transport": pl.String(),
        "dns_id": pl.UInt16(),
        "qname": pl.String(),
        "qtype": pl.String(),
        "rcode": pl.String(),
        "tc": pl.Boolean(),
        "answers": pl.UInt16(),
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
