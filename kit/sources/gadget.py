"""Read Inspektor Gadget's DNS traces (``trace dns`` / ``trace_dns`` with ``-o json`` or
``-o jsonpretty``) into the DNS schema of captures.

Two generations of the gadget write different JSON, both read here:

- the image-based ``trace_dns`` gadget (``ig run trace_dns``, ``kubectl gadget run trace_dns``,
  v0.30 and later): ``src``/``dst`` endpoints (``addr``, ``port``, ``proto``), ``id``, ``qr``
  (``Q``/``R``), ``qtype``/``qtype_raw``, ``rcode``/``rcode_raw``, ``name``,
  ``latency_ns_raw``, ``tc``, ``timestamp`` (RFC 3339) / ``timestamp_raw``, ``proc``
  (``comm``, ``pid``), ``k8s`` (``node``, ``namespace``, ``podName``, ``containerName``);
- the built-in ``trace dns`` gadget (``ig trace dns``, ``kubectl gadget trace dns``, up to
  v0.2x): ``srcIP``/``dstIP``/``srcPort``/``dstPort``/``protocol``, ``id``, ``qr``,
  ``nameserver``, ``pktType``, ``qtype``, ``name``, ``rcode`` (gopacket names such as
  ``NoError``, ``NXDomain``), ``latency`` (nanoseconds), ``numAnswers``, ``timestamp``
  (nanoseconds since the epoch), ``comm``, ``pid``, ``k8s`` or top-level ``node``,
  ``namespace``, ``pod``, ``container``; ``{"type":"debug","message":...}`` lines are kept as
  other lines.

The gadget writes one event per DNS packet per network namespace it crosses (a query leaving a
pod is seen in the pod and again on the host), so events are joined into transactions by
client address and port, server address and port, DNS ID, name (case-insensitive) and type, in
time order: a query after the transaction's answer starts a new transaction.

Example
-------
>>> import kit.sources.gadget as gadget
>>> gadget.read_gadget_dns("trace-dns.json").dns  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import polars as pl

from kit.errors import InputFormatError
from kit.schema import GADGET_DNS_SCHEMA
from kit.sources._dnsrecords import (
    DNSRecords,
    epoch_ns,
    finish,
    iso_time,
    json_objects,
    qname,
    qtype,
    rcode,
)
from kit.sources._io import Source, expand_sources, read_raw

__all__ = ["GADGET_DNS_SCHEMA", "DNSRecords", "read_gadget_dns", "sniff_gadget_json"]

log = logging.getLogger(__name__)


def _is_dns_event(o: Any) -> bool:
    return (
        isinstance(o, dict)
        and o.get("qr") in ("Q", "R")
        and "name" in o
        and any(k in o for k in ("qtype", "qtype_raw", "pktType", "pkt_type", "nameserver"))
    )


def _is_message(o: Any) -> bool:
    return isinstance(o, dict) and (
        ("type" in o and o.get("type") != "normal" and "message" in o) or "notice" in o
    )


def sniff_gadget_json(text: str) -> str | None:
    """A reason when the text's first JSON objects are Inspektor Gadget DNS trace events
    (``qr`` ``Q``/``R``, ``name`` and ``qtype`` or a packet type), else ``None``."""
    objs: list[Any] = []
    try:
        for _, obj in json_objects(text, limit=50):
            objs.append(obj)
    except ValueError:
        if not objs:
            return None
    if objs and isinstance(objs[0], list):  # a JSON array of events
        objs = objs[0][:50]
    if not objs:
        return None
    events = [o for o in objs if _is_dns_event(o)]
    messages = [o for o in objs if _is_message(o)]
    if events and len(events) + len(messages) >= 0.8 * len(objs):
        gen = "trace_dns image gadget" if any("src" in o for o in events) else "trace dns"
        return (
            f"Inspektor Gadget {gen} JSON ({len(events)} DNS events of the first "
            f"{len(objs)} objects)"
        )
    return None


@dataclass
class _Txn:
    key: tuple[Any, ...]
    ts: datetime | None = None
    ts_response: datetime | None = None
    latency_s: float | None = None
    rcode: str | None = None
    tc: bool | None = None
    answers: int | None = None
    transport: str | None = None
    line_no: int = 0
    source: str = ""
    first_event: dict[str, Any] = field(default_factory=dict)
    events: int = 0


def _endpoint(o: dict[str, Any], side: str) -> tuple[str | None, int | None, str | None]:
    ep = o.get(side)
    if isinstance(ep, dict):
        ip, port, proto = ep.get("addr"), ep.get("port"), ep.get("proto")
    else:
        ip, port, proto = o.get(f"{side}IP"), o.get(f"{side}Port"), o.get("protocol")
    if ip is not None and not isinstance(ip, str):
        raise ValueError(f"{side} address is {ip!r}")
    if port is not None and (
        not isinstance(port, int) or isinstance(port, bool) or not 0 <= port <= 65535
    ):
        raise ValueError(f"{side} port is {port!r}")
    return (
        ip or None,
        port,
        proto.lower() if isinstance(proto, str) and proto else None,
    )


def _time(o: dict[str, Any]) -> datetime:
    t = o.get("timestamp")
    if isinstance(t, str) and t:
        return iso_time(t)
    if isinstance(t, int) and not isinstance(t, bool) and t > 10**17:
        return epoch_ns(t)
    raw = o.get("timestamp_raw")
    if isinstance(raw, int) and not isinstance(raw, bool) and raw > 10**17:
        return epoch_ns(raw)
    raise ValueError(f"no wall-clock timestamp (timestamp {t!r}, timestamp_raw {raw!r})")


def _dns_id(value: Any) -> int | None:
    if value is None or value == "":
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        n = value
    elif isinstance(value, str):
        n = int(value, 16)  # the gadget prints the ID in hex ("2e69")
    else:
        raise ValueError(f"id is {value!r}")
    if not 0 <= n <= 0xFFFF:
        raise ValueError(f"id {value!r} out of range")
    return n


def _latency_s(o: dict[str, Any]) -> float | None:
    for k in ("latency_ns_raw", "latency"):
        v = o.get(k)
        if isinstance(v, int) and not isinstance(v, bool) and v > 0:
            return v / 1e9
    return None


def _k8s(o: dict[str, Any]) -> tuple[str | None, str | None, str | None, str | None]:
    found = o.get("k8s")
    k: dict[str, Any] = found if isinstance(found, dict) else {}

    def pick(*names: str) -> str | None:
        for n in names:
            v = k.get(n) if n in k else o.get(n)
            if isinstance(v, str) and v:
                return v
        return None

    return (
        pick("node"),
        pick("namespace"),
        pick("podName", "pod"),
        pick("containerName", "container"),
    )


def _proc(o: dict[str, Any]) -> tuple[str | None, int | None]:
    found = o.get("proc")
    p: dict[str, Any] = found if isinstance(found, dict) else o
    comm = p.get("comm")
    pid = p.get("pid")
    return (
        comm if isinstance(comm, str) and comm else None,
        pid if isinstance(pid, int) and not isinstance(pid, bool) and 0 <= pid < 2**32 else None,
    )


def _event(o: dict[str, Any]) -> dict[str, Any]:
    """The fields of one DNS event the transactions need.

    Raises
    ------
    ValueError
        A field that does not read (the message names it).
    """
    ts = _time(o)
    qr = o["qr"]
    s_ip, s_port, s_proto = _endpoint(o, "src")
    d_ip, d_port, d_proto = _endpoint(o, "dst")
    if qr == "Q":
        client, server = (s_ip, s_port), (d_ip, d_port)
    else:
        client, server = (d_ip, d_port), (s_ip, s_port)
    if server[0] is None and isinstance(o.get("nameserver"), str | dict):
        ns = o["nameserver"]
        addr = ns.get("addr") if isinstance(ns, dict) else ns
        server = (addr if isinstance(addr, str) else None, server[1])
    name = o.get("name")
    if not isinstance(name, str):
        raise ValueError(f"name is {name!r}")
    raw_type = o.get("qtype_raw")
    raw_rcode = o.get("rcode_raw")
    tc = o.get("tc")
    n_ans = o.get("num_answers", o.get("numAnswers"))
    return {
        "ts": ts,
        "qr": qr,
        "client": client,
        "server": server,
        "transport": s_proto or d_proto,
        "id": _dns_id(o.get("id")),
        "qname": qname(name),
        "qtype": qtype(o.get("qtype"), raw_type),
        "rcode": rcode(o.get("rcode"), raw_rcode) if qr == "R" else None,
        "tc": tc if isinstance(tc, bool) else None,
        "answers": n_ans
        if isinstance(n_ans, int) and not isinstance(n_ans, bool) and 0 <= n_ans <= 65535
        else None,
        "latency_s": _latency_s(o),
        "k8s": _k8s(o),
        "proc": _proc(o),
    }


def _key(ev: dict[str, Any]) -> tuple[Any, ...]:
    return (
        ev["client"],
        ev["server"],
        ev["id"],
        (ev["qname"] or "").lower(),
        ev["qtype"],
    )


def _transactions(events: list[tuple[str, int, dict[str, Any]]]) -> list[_Txn]:
    events = sorted(events, key=lambda e: (e[2]["ts"], e[0], e[1]))
    open_: dict[tuple[Any, ...], _Txn] = {}
    out: list[_Txn] = []
    for source, line_no, ev in events:
        key = _key(ev)
        t = open_.get(key)
        if ev["qr"] == "Q":
            if t is None or t.ts_response is not None:
                t = _Txn(key, source=source, line_no=line_no, first_event=ev)
                open_[key] = t
                out.append(t)
            if t.ts is None:
                t.ts = ev["ts"]
                t.first_event = ev
                t.line_no, t.source = line_no, source
            t.transport = t.transport or ev["transport"]
        else:
            if t is None:
                t = _Txn(key, source=source, line_no=line_no, first_event=ev)
                open_[key] = t
                out.append(t)
            if t.ts_response is None:
                t.ts_response = ev["ts"]
            t.rcode = t.rcode or ev["rcode"]
            t.tc = t.tc if t.tc is not None else ev["tc"]
            t.answers = t.answers if t.answers is not None else ev["answers"]
            t.latency_s = t.latency_s if t.latency_s is not None else ev["latency_s"]
            t.transport = t.transport or ev["transport"]
        t.events += 1
    return out


def _rows(txns: list[_Txn]) -> list[tuple[Any, ...]]:
    rows = []
    for t in txns:
        ev = t.first_event
        latency = t.latency_s
        if latency is None and t.ts is not None and t.ts_response is not None:
            latency = (t.ts_response - t.ts) / timedelta(seconds=1)
        ts = t.ts if t.ts is not None else t.ts_response
        (c_ip, c_port), (s_ip, s_port) = ev["client"], ev["server"]
        node, ns, pod, container = ev["k8s"]
        comm, pid = ev["proc"]
        rows.append(
            (
                ts,
                t.ts_response,
                latency,
                t.ts_response is not None,
                c_ip,
                c_port,
                s_ip,
                s_port,
                t.transport or "udp",
                ev["id"],
                ev["qname"],
                ev["qtype"],
                t.rcode,
                t.tc,
                t.answers,
                t.source,
                t.line_no,
                node,
                ns,
                pod,
                container,
                comm,
                pid,
                t.events,
            )
        )
    return rows


def _objects(text: str, lines: list[str]) -> tuple[list[tuple[int, Any]], list[tuple[int, str]]]:
    """The JSON values of a file with their lines, and the lines that could not be read: after
    a line that is not JSON, reading resumes at the next line."""
    starts = [0]
    for ln in lines:
        starts.append(starts[-1] + len(ln) + 1)
    objs: list[tuple[int, Any]] = []
    bad: list[tuple[int, str]] = []
    first = 1  # line of text[starts[first - 1]:]
    while first <= len(lines):
        try:
            for line_no, obj in json_objects(text[starts[first - 1] :]):
                objs.append((line_no + first - 1, obj))
            break
        except ValueError as exc:
            at = (exc.args[1] if len(exc.args) > 1 else 1) + first - 1
            bad.append((at, f"not JSON: {exc.args[0]}"))
            first = at + 1
    return objs, bad


def read_gadget_dns(source: Source, *, strict: bool = False) -> DNSRecords:
    """Read Inspektor Gadget DNS traces (JSON lines, pretty-printed JSON objects one after the
    other, or a JSON array of events) and join their events into transactions.

    Parameters
    ----------
    source
        A file, a list of files, a folder or a glob (gzip read transparently).
    strict
        ``True``: raise :class:`~kit.errors.InputFormatError` at the first unreadable event;
        ``False``: keep it in ``rejected`` and warn (:class:`~kit.errors.KitWarning`).

    Returns
    -------
    DNSRecords
        ``dns`` in :data:`GADGET_DNS_SCHEMA`, one row per transaction sorted by time: ``ts`` the
        first query event (the first answer event when no query was seen), ``ts_response`` the
        first answer event, ``latency_s`` the gadget's own latency (``latency_ns_raw`` /
        ``latency``) when an answer event carries one, else ``ts_response - ts``; ``rcode``
        from ``rcode_raw`` or the name (``Success``/``NoError`` -> ``NOERROR``,
        ``NameError``/``NXDomain`` -> ``NXDOMAIN``...); ``events`` how many trace events made the
        row. ``records`` counts the DNS events read, ``other`` the other messages and blank
        lines.

    Raises
    ------
    InputFormatError
        A file is not JSON, holds no DNS event but objects of another kind, or has events but
        none readable (file and line named); or ``strict`` and one event is unreadable.
    """
    files = expand_sources(source, what="Inspektor Gadget trace")
    events: list[tuple[str, int, dict[str, Any]]] = []
    rejected: list[tuple[Any, ...]] = []
    notes: list[str] = []
    records = other = lines_total = 0
    for f in files:
        raw = read_raw(f, what="Inspektor Gadget trace")
        notes += [f"{f}: {n}" for n in raw.notes]
        text = raw.data.decode("utf-8", errors="replace")
        lines = text.split("\n")
        if lines and lines[-1] == "":
            lines.pop()
        lines_total += len(lines)
        src = os.fspath(f)
        file_rejected_at = len(rejected)
        objs, unreadable = _objects(text, lines)
        for line_no, reason in unreadable:
            records += 1
            rejected.append((src, line_no, reason, lines[line_no - 1][:500]))
        if unreadable and (strict or not objs):
            line_no, reason = unreadable[0]
            raise InputFormatError(
                f"not Inspektor Gadget JSON output: {reason}",
                path=f,
                line=line_no,
                excerpt=lines[line_no - 1][:160],
            )
        if len(objs) == 1 and isinstance(objs[0][1], list):
            objs = [(objs[0][0], o) for o in objs[0][1]]
        file_events = 0
        for line_no, o in objs:
            if _is_dns_event(o):
                records += 1
                try:
                    events.append((src, line_no, _event(o)))
                    file_events += 1
                except (ValueError, KeyError, TypeError, OverflowError, OSError) as exc:
                    rejected.append((src, line_no, f"DNS event: {exc}", lines[line_no - 1][:500]))
            elif _is_message(o):
                other += 1
            else:
                records += 1
                keys = sorted(o)[:6] if isinstance(o, dict) else type(o).__name__
                rejected.append(
                    (src, line_no, f"not a DNS trace event (keys {keys})", lines[line_no - 1][:500])
                )
        other += sum(1 for ln in lines if not ln.strip())
        new_rej = rejected[file_rejected_at:]
        if new_rej and (strict or not file_events):
            _, line_no, reason, bad = new_rej[0]
            raise InputFormatError(
                reason + ("" if strict else " (no readable DNS event in the file)"),
                path=f,
                line=line_no,
                excerpt=bad[:160],
            )
    rows = _rows(_transactions(events))
    dns = pl.DataFrame(rows, schema=GADGET_DNS_SCHEMA, orient="row").sort("ts", maintain_order=True)
    return finish(
        dns,
        GADGET_DNS_SCHEMA,
        rejected,
        what="Inspektor Gadget event(s)",
        records=records,
        other=other,
        lines=lines_total,
        notes=notes,
    )
