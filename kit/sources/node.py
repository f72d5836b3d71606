"""Readers for the node evidence a user attaches: ``nstat``, ``conntrack -S``, ``ethtool -S``,
``ip -s link``.

Each reader takes the text the command printed (a file, several files, a folder or a glob; gzip
read transparently) and returns a :class:`NodeCounters`: every counter as one row of a long
frame (:data:`NODE_COUNTERS_SCHEMA`), and every other line accounted for, as understood
(:attr:`NodeCounters.other`) or rejected (:attr:`NodeCounters.rejected`, with a
:class:`~kit.errors.KitWarning`). A file with no counter at all and lines that are not the
format raises :class:`~kit.errors.InputFormatError` naming the file and its first bad line.

Formats (as printed by the tools; one file may hold the command's output several times, e.g.
before and after an incident: each is a ``snapshot``):

- ``nstat``: ``nstat -asz`` (``#kernel`` then ``Name value rate`` lines), ``nstat -asz -j``
  (JSON), ``/proc/net/snmp`` and ``/proc/net/netstat`` (pairs of ``Section: names`` and
  ``Section: values`` lines; counters are named the nstat way, ``Udp`` + ``RcvbufErrors`` =
  ``UdpRcvbufErrors``), ``/proc/net/snmp6`` (``Name value`` lines).
- ``conntrack_stats``: ``conntrack -S`` (``cpu=N found=.. invalid=.. insert=..
  insert_failed=.. drop=.. ...`` per CPU); a CPU seen again starts a new snapshot.
- ``ethtool_stats``: ``ethtool -S IFACE`` (``NIC statistics:`` then ``name: value`` lines; ENA's
  ``bw_in_allowance_exceeded``, ``pps_allowance_exceeded``, ``conntrack_allowance_exceeded``,
  ``linklocal_allowance_exceeded``...). The interface comes from a shell prompt line with the
  command (``$ ethtool -S eth0``), else from the file name (``ethtool-S-eth0.txt``), else null.
- ``ip_link_stats``: ``ip -s link`` and ``ip -s -s link`` (``N: name: <FLAGS> ...`` blocks with
  ``RX:``/``TX:`` column headers and value lines; ``RX errors:``/``TX errors:`` with ``-s -s``).
  Counters are ``rx_<column>``/``tx_<column>`` and ``rx_errors_<column>``/``tx_errors_<column>``.

:func:`read_node_evidence` reads any mix of these (each file's format recognised from its
content) and :func:`deltas` gives each counter's growth from its first to its last snapshot
within one folder (files named ``*before*`` come first, ``*after*`` last, then by name).

Example
-------
>>> import kit.sources.node as node
>>> ev = node.read_node_evidence("incident/node1/")  # doctest: +SKIP
>>> node.deltas(ev.counters).filter(counter="insert_failed")  # doctest: +SKIP
"""

from __future__ import annotations

import json
import logging
import os
import re
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from kit.errors import InputFormatError, KitWarning
from kit.schema import (
    NODE_COUNTERS_SCHEMA,
    NODE_DELTAS_SCHEMA,
    NODE_OTHER_SCHEMA,
    NODE_REJECTED_SCHEMA,
    check_schema,
)
from kit.sources._io import Source, expand_sources, read_raw

__all__ = [
    "NODE_COUNTERS_SCHEMA",
    "NODE_DELTAS_SCHEMA",
    "NODE_KINDS",
    "NODE_OTHER_SCHEMA",
    "NODE_REJECTED_SCHEMA",
    "NodeCounters",
    "deltas",
    "read_conntrack_stats",
    "read_ethtool_stats",
    "read_ip_link_stats",
    "read_node_evidence",
    "read_nstat",
    "sniff_node_format",
]

log = logging.getLogger(__name__)

#: The kinds of node evidence (``kind`` column values, and ``kit.sources.detect.ArtefactKind``
#: values) this module reads.
NODE_KINDS: tuple[str, ...] = ("nstat", "conntrack_stats", "ethtool_stats", "ip_link_stats")

_INT64_MAX = (1 << 63) - 1

# ---------------------------------------------------------------------------------------------
# line patterns

# SNMP/netstat MIB sections as nstat names its counters (the name's prefix)
_NSTAT_PREFIX = re.compile(
    r"^(?:Ip|IpExt|Icmp|IcmpMsg|Tcp|TcpExt|Udp|UdpLite|MPTcpExt|Sctp|Ip6|Icmp6|Udp6|UdpLite6|"
    r"TcpExt6|Xfrm|Netlink)"
)
_NSTAT_LINE = re.compile(r"^([A-Za-z][A-Za-z0-9_]*)[ \t]+(\d+)(?:[ \t]+(\d+(?:\.\d+)?))?[ \t]*$")
_SNMP_LINE = re.compile(r"^([A-Za-z][A-Za-z0-9]*):((?:[ \t]+\S+)+)[ \t]*$")
_CT_LINE = re.compile(r"^cpu=(\d+)\s+((?:[a-z_]+=\d+\s*)+)$")
_CT_PAIR = re.compile(r"([a-z_]+)=(\d+)")
_ETH_HEADER = re.compile(r"^\s*NIC statistics:\s*$")
_ETH_LINE = re.compile(r"^\s+(\S(?:.*?\S)?):\s+(-?\d+)\s*$")
_PROMPT = re.compile(r"^\S*[$#%>]\s*(?:sudo\s+)?(\S+)(.*)$")
_ETH_CMD = re.compile(r"\bethtool\s+(?:-S|--statistics)\s+(\S+)")
_ETH_FILE = re.compile(
    r"ethtool[-_.](?:S|stats|statistics)[-_.]([A-Za-z0-9_.@-]+?)(?:[-_.](?:before|after|\d+))*(?:\.txt|\.log|\.out)?(?:\.gz)?$"
)
_IP_LINK = re.compile(r"^(\d+):\s+([^:@\s]+)(?:@([^:\s]+))?:\s+<([^>]*)>")
_IP_HEADER = re.compile(r"^\s+(RX|TX)(?:\s+errors)?:\s+([a-z_]+(?:\s+[a-z_]+)*)\s*$")
_IP_VALUES = re.compile(r"^\s+(\d+(?:\s+\d+)*)\s*$")
_IP_INFO = re.compile(
    r"^\s+(?:link/\S+|altname\s|alias\s|vf\s|prop\s|alt\s|bridge|vlan\s|vxlan\s|veth|"
    r"inet6?\s|valid_lft\s|openvswitch|tun\s|bond|macvlan|ipvlan|gre|geneve|team|"
    r"RX:\s*$|TX:\s*$)"
)


# ---------------------------------------------------------------------------------------------
# result


@dataclass(frozen=True)
class NodeCounters:
    """What a node evidence reader read: every line of every file is in exactly one place.

    Attributes
    ----------
    counters : polars.DataFrame
        :data:`NODE_COUNTERS_SCHEMA`, one row per counter value (a value line of ``ip -s link``
        gives one row per column; every other counter line one row).
    other : polars.DataFrame
        :data:`NODE_OTHER_SCHEMA`: lines understood that carry no counter (blank, headers,
        ``link/ether`` lines...).
    rejected : polars.DataFrame
        :data:`NODE_REJECTED_SCHEMA`: lines that could not be read, with the reason.
    lines : int
        Lines read over all files.
    notes : tuple[str, ...]
        Damage found while reading (a truncated gzip), per file.
    """

    counters: pl.DataFrame
    other: pl.DataFrame
    rejected: pl.DataFrame
    lines: int
    notes: tuple[str, ...] = ()

    @property
    def counter_lines(self) -> int:
        """Distinct (file, line) pairs that gave counters."""
        if self.counters.is_empty():
            return 0
        return self.counters.select(pl.struct("source", "line_no").n_unique()).item()

    @property
    def accounted(self) -> int:
        """``counter_lines + len(other) + len(rejected)``: equals :attr:`lines`."""
        return self.counter_lines + self.other.height + self.rejected.height

    def value(self, counter: str, *, kind: str | None = None) -> int | None:
        """The sum of ``counter`` over CPUs and interfaces in the last snapshot of each file,
        summed over files; ``None`` when no file has it."""
        df = self.counters.filter(pl.col("counter") == counter)
        if kind is not None:
            df = df.filter(pl.col("kind") == kind)
        if df.is_empty():
            return None
        last = df.group_by("source").agg(pl.col("snapshot").max().alias("last"))
        df = df.join(last, on="source").filter(pl.col("snapshot") == pl.col("last"))
        return int(df["value"].sum())

    def __repr__(self) -> str:
        kinds = sorted(set(self.counters["kind"].to_list())) if self.counters.height else []
        return (
            f"NodeCounters(counters={self.counters.height}, kinds={kinds}, "
            f"other={self.other.height}, rejected={self.rejected.height}, lines={self.lines})"
        )


class _Acc:
    """Rows of one file while it is parsed."""

    def __init__(self, source: str, kind: str) -> None:
        self.source = source
        self.kind = kind
        self.counters: list[tuple[Any, ...]] = []
        self.other: list[tuple[Any, ...]] = []
        self.rejected: list[tuple[Any, ...]] = []
        self.snapshot = 0

    def add(
        self,
        line_no: int,
        counter: str,
        value: int | str,
        *,
        cpu: int | None = None,
        interface: str | None = None,
    ) -> bool:
        """Add a counter; ``False`` when the value or CPU is out of range (the caller rejects
        the line)."""
        if isinstance(value, str):
            if len(value.lstrip("-")) > 19:
                return False
            value = int(value)
        if not -_INT64_MAX - 1 <= value <= _INT64_MAX or (cpu is not None and cpu > 2**31 - 1):
            return False
        self.counters.append(
            (self.source, self.snapshot, self.kind, cpu, interface, counter, value, line_no)
        )
        return True

    def note(self, line_no: int, what: str, line: str) -> None:
        self.other.append((self.source, line_no, what, line))

    def reject(self, line_no: int, reason: str, line: str) -> None:
        self.rejected.append((self.source, line_no, reason, line[:500]))


# ---------------------------------------------------------------------------------------------
# format recognition


def sniff_node_format(lines: Sequence[str]) -> tuple[str, str] | None:
    """Recognise node evidence from a file's first lines.

    Parameters
    ----------
    lines
        The file's lines (decoded text; a cut last line should be left out).

    Returns
    -------
    tuple[str, str] | None
        ``(kind, reason)`` with ``kind`` one of :data:`NODE_KINDS`, or ``None`` when the lines
        are none of these formats (Prometheus text with ``Name value`` samples is not nstat:
        nstat's names start with an SNMP section such as ``Ip``, ``Tcp``, ``TcpExt``, ``Udp``).
    """
    body = [ln for ln in lines if ln.strip()]
    if not body:
        return None
    prompts = [ln for ln in body if _PROMPT.match(ln) and _known_command(ln)]
    body = [ln for ln in body if ln not in prompts]
    if not body:
        return None
    n = len(body)
    first = body[0].strip()
    # nstat -asz
    nstat = sum(
        1 for ln in body if (m := _NSTAT_LINE.match(ln.strip())) and _NSTAT_PREFIX.match(m[1])
    )
    kernel = sum(1 for ln in body if ln.strip() == "#kernel")
    if nstat and nstat + kernel >= 0.9 * n and (kernel or nstat >= 3):
        return "nstat", f"{nstat} nstat counter lines (SNMP names) of {n}" + (
            ", #kernel header" if kernel else ""
        )
    # /proc/net/snmp, /proc/net/netstat
    snmp = [m for ln in body if (m := _SNMP_LINE.match(ln)) and _NSTAT_PREFIX.match(m[1])]
    if len(snmp) >= 2 and len(snmp) >= 0.9 * n:
        return "nstat", f"{len(snmp)} of {n} lines are /proc/net/snmp or netstat section lines"
    # nstat -j
    if first.startswith("{") and '"kernel"' in first[:200]:
        return "nstat", "nstat JSON output (kernel object)"
    ct = sum(1 for ln in body if _CT_LINE.match(ln.strip()))
    if ct and ct >= 0.9 * n:
        return "conntrack_stats", f"{ct} of {n} lines are conntrack -S per-CPU lines (cpu=N ...)"
    eth_header = sum(1 for ln in body if _ETH_HEADER.match(ln))
    eth = sum(1 for ln in body if _ETH_LINE.match(ln))
    if eth_header and eth + eth_header >= 0.9 * n:
        return "ethtool_stats", f"'NIC statistics:' and {eth} 'name: value' lines of {n}"
    links = sum(1 for ln in body if _IP_LINK.match(ln))
    heads = sum(1 for ln in body if _IP_HEADER.match(ln))
    if links and heads:
        return "ip_link_stats", f"{links} interface lines with {heads} RX/TX counter headers"
    return None


def _known_command(line: str) -> bool:
    return any(
        c in line for c in ("nstat", "conntrack", "ethtool", "ip -s", "ip link", "cat /proc")
    )


# ---------------------------------------------------------------------------------------------
# per-format parsers (one file's lines each)


def _parse_nstat(acc: _Acc, lines: list[str]) -> None:
    text = "\n".join(lines).strip()
    if text.startswith("{"):
        _parse_nstat_json(acc, lines, text)
        return
    seen: set[str] = set()
    header: dict[str, tuple[list[str], int]] = {}  # /proc/net/snmp section -> names
    for i, raw in enumerate(lines, start=1):
        line = raw.rstrip("\r")
        s = line.strip()
        if not s:
            acc.note(i, "blank", line)
            continue
        if s == "#kernel" or (s.startswith("#") and not _NSTAT_LINE.match(s)):
            if s == "#kernel" and seen:
                acc.snapshot += 1
                seen.clear()
            acc.note(i, "header", line)
            continue
        if _PROMPT.match(s) and _known_command(s):
            if seen:
                acc.snapshot += 1
                seen.clear()
            acc.note(i, "header", line)
            continue
        m = _NSTAT_LINE.match(s)
        if m:
            name = m[1]
            if name in seen:  # a second output without a #kernel line
                acc.snapshot += 1
                seen.clear()
            seen.add(name)
            if not acc.add(i, name, m[2]):
                acc.reject(i, f"{name}: value out of the Int64 range", line)
            continue
        m2 = _SNMP_LINE.match(s)
        if m2:
            section, fields = m2[1], m2[2].split()
            if all(f.lstrip("-").isdigit() for f in fields):
                names = header.pop(section, None)
                if names is None:
                    acc.reject(i, f"{section}: values without a names line before them", line)
                    continue
                if len(names[0]) != len(fields):
                    acc.reject(
                        i,
                        f"{section}: {len(fields)} values for {len(names[0])} names "
                        f"(names on line {names[1]})",
                        line,
                    )
                    continue
                if any(len(v.lstrip("-")) > 19 or abs(int(v)) > _INT64_MAX for v in fields):
                    acc.reject(i, f"{section}: a value out of the Int64 range", line)
                    continue
                for name, v in zip(names[0], fields, strict=True):
                    full = section + name
                    if full in seen:
                        acc.snapshot += 1
                        seen.clear()
                    seen.add(full)
                    acc.add(i, full, v)  # Tcp MaxConn is -1: signed
                continue
            header[section] = (fields, i)
            acc.note(i, "header", line)
            continue
        acc.reject(i, "not an nstat line ('Name value [rate]') or /proc/net/snmp line", line)
    for section, (_, at) in header.items():
        # a names line whose values line never came: move it from other to rejected
        acc.other = [o for o in acc.other if o[1] != at]
        acc.reject(at, f"{section}: names line without a values line after it", lines[at - 1])


def _parse_nstat_json(acc: _Acc, lines: list[str], text: str) -> None:
    try:
        obj = json.loads(text)
    except ValueError as exc:
        raise InputFormatError(
            f"nstat JSON does not parse: {exc}", path=acc.source, line=getattr(exc, "lineno", None)
        ) from None
    kernel = obj.get("kernel") if isinstance(obj, dict) else None
    if not isinstance(kernel, dict):
        raise InputFormatError("nstat JSON without a 'kernel' object", path=acc.source, line=1)
    for name, v in kernel.items():
        if isinstance(v, bool) or not isinstance(v, int):
            acc.reject(1, f"nstat JSON counter {name!r} is not an integer", f"{name}: {v!r}")
            continue
        if not acc.add(1, str(name), int(v)):
            acc.reject(1, f"nstat JSON counter {name!r} out of the Int64 range", f"{name}: {v}")
    # the JSON is one record: line 1 gave the counters, every other line is part of it
    for i in range(2, len(lines) + 1):
        acc.note(i, "header", lines[i - 1])
    if not kernel:
        acc.note(1, "header", lines[0] if lines else "")


def _parse_conntrack(acc: _Acc, lines: list[str]) -> None:
    seen: set[int] = set()
    for i, raw in enumerate(lines, start=1):
        line = raw.rstrip("\r")
        s = line.strip()
        if not s:
            acc.note(i, "blank", line)
            continue
        if _PROMPT.match(s) and _known_command(s):
            if seen:
                acc.snapshot += 1
                seen.clear()
            acc.note(i, "header", line)
            continue
        m = _CT_LINE.match(s)
        if not m:
            acc.reject(i, "not a conntrack -S line ('cpu=N name=value ...')", line)
            continue
        pairs = _CT_PAIR.findall(m[2])
        if len(m[1]) > 9 or any(len(v) > 19 or int(v) > _INT64_MAX for _, v in pairs):
            acc.reject(i, "cpu or a value out of range", line)
            continue
        cpu = int(m[1])
        if cpu in seen:
            acc.snapshot += 1
            seen.clear()
        seen.add(cpu)
        for name, v in pairs:
            acc.add(i, name, v, cpu=cpu)


def _parse_ethtool(acc: _Acc, lines: list[str], interface: str | None) -> None:
    iface = interface
    seen: set[str] = set()
    started = False
    for i, raw in enumerate(lines, start=1):
        line = raw.rstrip("\r")
        s = line.strip()
        if not s:
            acc.note(i, "blank", line)
            continue
        cmd = _ETH_CMD.search(s)
        if cmd and (s.startswith(("$", "#", "[")) or _PROMPT.match(s)):
            if interface is None:
                iface = cmd[1]
            if seen:
                acc.snapshot += 1
                seen.clear()
            acc.note(i, "header", line)
            continue
        if _ETH_HEADER.match(line):
            if seen:
                acc.snapshot += 1
                seen.clear()
            started = True
            acc.note(i, "header", line)
            continue
        m = _ETH_LINE.match(line) or (_ETH_LINE.match("  " + s) if started and ":" in s else None)
        if m:
            name = m[1]
            if name.startswith("*"):  # some guides mark the counters to watch with a star
                name = name.lstrip("*")
            if name in seen:
                acc.snapshot += 1
                seen.clear()
            seen.add(name)
            if not acc.add(i, name, m[2], interface=iface):
                acc.reject(i, f"{name}: value out of the Int64 range", line)
            continue
        acc.reject(i, "not an ethtool -S line ('NIC statistics:' or '  name: value')", line)


def _parse_ip_link(acc: _Acc, lines: list[str]) -> None:
    iface: str | None = None
    pending: tuple[str, list[str], int] | None = None  # prefix, column names, header line
    seen: set[str] = set()
    for i, raw in enumerate(lines, start=1):
        line = raw.rstrip("\r")
        s = line.strip()
        if not s:
            acc.note(i, "blank", line)
            continue
        m = _IP_LINK.match(line)
        if m:
            if pending is not None:
                acc.other = [o for o in acc.other if o[1] != pending[2]]
                acc.reject(
                    pending[2], "counter header without a values line", lines[pending[2] - 1]
                )
                pending = None
            iface = m[2]
            if iface in seen:
                acc.snapshot += 1
                seen.clear()
            seen.add(iface)
            acc.note(i, "header", line)
            continue
        if _PROMPT.match(s) and _known_command(s):
            if seen:
                acc.snapshot += 1
                seen.clear()
            iface = None
            acc.note(i, "header", line)
            continue
        h = _IP_HEADER.match(line)
        if h and iface is not None:
            direction = h[1].lower()
            prefix = f"{direction}_errors_" if "errors:" in line.split(h[2])[0] else f"{direction}_"
            pending = (prefix, h[2].split(), i)
            acc.note(i, "header", line)
            continue
        v = _IP_VALUES.match(line)
        if v and pending is not None and iface is not None:
            values = v[1].split()
            prefix, names, at = pending
            pending = None
            if len(values) != len(names):
                acc.reject(
                    i,
                    f"{len(values)} values for the {len(names)} columns of line {at}",
                    line,
                )
                continue
            if any(len(v) > 19 or int(v) > _INT64_MAX for v in values):
                acc.reject(i, "a value out of the Int64 range", line)
                continue
            for name, val in zip(names, values, strict=True):
                acc.add(i, prefix + name, val, interface=iface)
            continue
        if iface is not None and _IP_INFO.match(line):
            acc.note(i, "info", line)
            continue
        acc.reject(i, "not an ip -s link line", line)
    if pending is not None:
        acc.other = [o for o in acc.other if o[1] != pending[2]]
        acc.reject(pending[2], "counter header without a values line", lines[pending[2] - 1])


_PARSERS: dict[str, Callable[..., None]] = {
    "nstat": _parse_nstat,
    "conntrack_stats": _parse_conntrack,
    "ethtool_stats": _parse_ethtool,
    "ip_link_stats": _parse_ip_link,
}

_WHAT = {
    "nstat": "nstat output",
    "conntrack_stats": "conntrack -S output",
    "ethtool_stats": "ethtool -S output",
    "ip_link_stats": "ip -s link output",
}


# ---------------------------------------------------------------------------------------------
# readers


def _read(
    source: Source,
    kind: str | None,
    *,
    strict: bool,
    interface: str | None = None,
) -> NodeCounters:
    files = expand_sources(source, what=_WHAT.get(kind or "", "node evidence"))
    counters: list[tuple[Any, ...]] = []
    other: list[tuple[Any, ...]] = []
    rejected: list[tuple[Any, ...]] = []
    notes: list[str] = []
    total = 0
    for f in files:
        raw = read_raw(f, what=_WHAT.get(kind or "", "node evidence"))
        notes += [f"{f}: {n}" for n in raw.notes]
        text = raw.data.decode("utf-8", errors="replace")
        lines = text.split("\n")
        if lines and lines[-1] == "":
            lines.pop()  # the final newline ends the last line; it is not a line of its own
        total += len(lines)
        file_kind = kind
        if file_kind is None:
            found = sniff_node_format(lines[:2000])
            if found is None:
                first = next((ln for ln in lines if ln.strip()), "")
                raise InputFormatError(
                    "not node evidence (nstat, conntrack -S, ethtool -S or ip -s link output)",
                    path=f,
                    line=lines.index(first) + 1 if first else None,
                    excerpt=first[:160] if first else None,
                )
            file_kind = found[0]
        acc = _Acc(os.fspath(f), file_kind)
        if file_kind == "ethtool_stats":
            iface = interface
            if iface is None:
                m = _ETH_FILE.search(f.name)
                iface = m[1] if m else None
            _parse_ethtool(acc, lines, iface)
        else:
            _PARSERS[file_kind](acc, lines)
        if acc.rejected and (strict or not acc.counters):
            _, line_no, reason, bad = acc.rejected[0]
            raise InputFormatError(
                f"{reason}"
                + ("" if acc.counters else f" (no {_WHAT[file_kind]} counter in the file)"),
                path=f,
                line=line_no,
                excerpt=bad[:160],
                hint=None if strict else "Attach the command's output as it printed it",
            )
        if not acc.counters and not acc.rejected and any(ln.strip() for ln in lines):
            raise InputFormatError(f"no counter found in this {_WHAT[file_kind]}", path=f)
        counters += acc.counters
        other += acc.other
        rejected += acc.rejected
    cdf = pl.DataFrame(counters, schema=NODE_COUNTERS_SCHEMA, orient="row")
    odf = pl.DataFrame(other, schema=NODE_OTHER_SCHEMA, orient="row")
    rdf = pl.DataFrame(rejected, schema=NODE_REJECTED_SCHEMA, orient="row")
    check_schema(cdf, NODE_COUNTERS_SCHEMA, name="node counters")
    if rdf.height:
        r0 = rdf.row(0, named=True)
        warnings.warn(
            f"{rdf.height} unreadable line(s) in node evidence kept in .rejected; first "
            f"{r0['source']}:{r0['line_no']}: {r0['reason']}",
            KitWarning,
            stacklevel=3,
        )
    for n in notes:
        warnings.warn(n, KitWarning, stacklevel=3)
    return NodeCounters(cdf, odf, rdf, total, tuple(notes))


def read_nstat(source: Source, *, strict: bool = False) -> NodeCounters:
    """Read ``nstat -asz`` output (also ``-j`` JSON, ``/proc/net/snmp``, ``/proc/net/netstat``,
    ``/proc/net/snmp6`` dumps).

    Parameters
    ----------
    source
        A file, a list of files, a folder or a glob (gzip read transparently).
    strict
        ``True``: raise :class:`~kit.errors.InputFormatError` at the first unreadable line;
        ``False``: keep it in ``rejected`` and warn (:class:`~kit.errors.KitWarning`).

    Returns
    -------
    NodeCounters
        ``counters`` with ``kind = "nstat"``, ``cpu`` and ``interface`` null, ``counter`` the
        nstat name (``UdpRcvbufErrors``, ``TcpExtListenDrops``...), ``value`` the absolute value
        printed (nstat's third column, the rate, is not kept). A new ``#kernel`` line, or a
        counter seen again, starts a new snapshot.

    Raises
    ------
    InputFormatError
        A file holds no counter and lines that are not nstat output (file and first bad line
        named), or ``strict`` and one line is unreadable.
    """
    return _read(source, "nstat", strict=strict)


def read_conntrack_stats(source: Source, *, strict: bool = False) -> NodeCounters:
    """Read ``conntrack -S`` output: one row per CPU and counter (``found``, ``invalid``,
    ``insert``, ``insert_failed``, ``drop``, ``early_drop``, ``error``, ``search_restart``,
    ``clash_resolve``, ``chaintoolong``... as printed), ``cpu`` set; a CPU seen again starts a
    new snapshot. Parameters, return and errors as :func:`read_nstat`."""
    return _read(source, "conntrack_stats", strict=strict)


def read_ethtool_stats(
    source: Source, *, interface: str | None = None, strict: bool = False
) -> NodeCounters:
    """Read ``ethtool -S IFACE`` output: one row per ``name: value`` line under
    ``NIC statistics:``, ``interface`` from ``interface=``, else from a prompt line with the
    command, else from a file name like ``ethtool-S-eth0.txt``, else null. ENA drivers print the
    allowance counters (``bw_in_allowance_exceeded``, ``bw_out_allowance_exceeded``,
    ``pps_allowance_exceeded``, ``conntrack_allowance_exceeded``,
    ``linklocal_allowance_exceeded``, ``conntrack_allowance_available``): packets the instance's
    network limits queued or dropped. A ``NIC statistics:`` line after counters, or a counter
    seen again, starts a new snapshot. Parameters, return and errors as :func:`read_nstat`."""
    return _read(source, "ethtool_stats", strict=strict, interface=interface)


def read_ip_link_stats(source: Source, *, strict: bool = False) -> NodeCounters:
    """Read ``ip -s link`` / ``ip -s -s link`` output: one row per interface and column
    (``rx_bytes``, ``rx_packets``, ``rx_errors``, ``rx_dropped``, ``rx_missed``, ``rx_mcast``,
    ``tx_...``; with ``-s -s`` also ``rx_errors_length``, ``rx_errors_crc``,
    ``tx_errors_aborted``...; column names as the header line prints them), ``interface`` set
    (without the ``@peer`` part). An interface seen again starts a new snapshot. Parameters,
    return and errors as :func:`read_nstat`."""
    return _read(source, "ip_link_stats", strict=strict)


def read_node_evidence(
    source: Source | Iterable[str | os.PathLike[str]], *, strict: bool = False
) -> NodeCounters:
    """Read any mix of node evidence files, each file's format recognised from its content
    (:func:`sniff_node_format`).

    Raises
    ------
    InputFormatError
        A file is none of the formats (file and first non-blank line named), or as
        :func:`read_nstat`.
    """
    src: Source = source if isinstance(source, str | os.PathLike) else list(source)
    return _read(src, None, strict=strict)


# ---------------------------------------------------------------------------------------------
# deltas


def _phase(name: str) -> int:
    low = name.lower()
    if "before" in low or "start" in low or "pre" in low.split("-"):
        return 0
    if "after" in low or "end" in low or "post" in low.split("-"):
        return 2
    return 1


def deltas(counters: pl.DataFrame) -> pl.DataFrame:
    """Each counter's growth from its first to its last snapshot, per folder.

    Snapshots are ordered within one folder (one node's evidence): files whose name says
    ``before`` (or ``start``, ``pre``) first, ``after`` (``end``, ``post``) last, the others in
    between, then by file name; within a file by ``snapshot``. Counters are matched by
    ``kind``, ``cpu``, ``interface`` and ``counter``.

    Parameters
    ----------
    counters
        :data:`NODE_COUNTERS_SCHEMA` (:attr:`NodeCounters.counters`).

    Returns
    -------
    polars.DataFrame
        :data:`NODE_DELTAS_SCHEMA`, sorted by ``host``, ``kind``, ``counter``, ``interface``,
        ``cpu``. ``delta`` is null for a counter seen in one snapshot only.
    """
    check_schema(counters, NODE_COUNTERS_SCHEMA, name="node counters")
    if counters.is_empty():
        return pl.DataFrame(schema=NODE_DELTAS_SCHEMA)
    files = counters.select("source").unique()
    files = files.with_columns(
        host=pl.col("source").map_elements(lambda s: os.fspath(Path(s).parent), pl.String),
        phase=pl.col("source").map_elements(lambda s: _phase(Path(s).name), pl.Int32),
        name=pl.col("source").map_elements(lambda s: Path(s).name, pl.String),
    )
    df = counters.join(files, on="source").sort("host", "phase", "name", "snapshot", "line_no")
    keys = ["host", "kind", "cpu", "interface", "counter"]
    out = df.group_by(keys, maintain_order=True).agg(
        first=pl.col("value").first(),
        last=pl.col("value").last(),
        snapshots=pl.struct("source", "snapshot").n_unique().cast(pl.UInt32),
        first_source=pl.col("source").first(),
        last_source=pl.col("source").last(),
    )
    out = out.with_columns(
        delta=pl.when(pl.col("snapshots") > 1).then(pl.col("last") - pl.col("first"))
    ).select(list(NODE_DELTAS_SCHEMA))
    out = out.cast(dict(NODE_DELTAS_SCHEMA))  # type: ignore[arg-type]
    return out.sort("host", "kind", "counter", "interface", "cpu", nulls_last=True)
