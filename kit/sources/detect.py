"""Recognise what kind of artefact a file is, from its content (never from its name).

Reads at most the first :data:`HEAD_BYTES` bytes of a file (gzip is looked through with a
streaming decompression of that head), then checks, in order: capture magic numbers (pcap in
both byte orders and both time resolutions, pcapng), other compression or binary data, JSON
(Prometheus API, Grafana DataFrame JSON, lab ``run.json``, JSON-wrapped log lines, kubectl
``-o json`` lists), dnstap Frame Streams, and the text
formats (``kubectl get pods -o wide`` tables, Prometheus/OpenMetrics exposition, unbound and CoreDNS logs, unbound/NSD configs,
Corefiles, Grafana CSV exports). Every answer carries a one-line ``reason`` saying what was seen.
(Prometheus API, Grafana DataFrame JSON, lab ``run.json``, JSON-wrapped log lines), and the text
formats (node evidence and Zeek's TSV dns.log first, then Prometheus/OpenMetrics exposition,
unbound and CoreDNS logs, unbound/NSD configs, Corefiles, Grafana CSV exports); JSON is checked
for Zeek dns.log, Inspektor Gadget DNS traces and nstat -j first. Every answer carries a one-line ``reason`` saying what was seen.

Example
-------
>>> from kit.sources.detect import detect_kinds
>>> detect_kinds("incident/")  # doctest: +SKIP
"""

from __future__ import annotations

import csv as _csv
import json
import logging
import os
import re
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

import polars as pl

from kit.errors import InputFormatError
from kit.schema import check_schema
from kit.sources._io import Source, expand_sources

__all__ = [
    "DETECT_SCHEMA",
    "HEAD_BYTES",
    "ArtefactKind",
    "Detection",
    "capture_head",
    "detect",
    "detect_kind",
    "detect_kinds",
]

log = logging.getLogger(__name__)

#: How much of a file (after gzip decompression) detection looks at.
HEAD_BYTES = 64 * 1024
_MAX_LINE = 4096


class ArtefactKind(StrEnum):
    """Kinds of input the kit knows; compares equal to its string value (``kind == "capture"``)."""

    CAPTURE = "capture"
    COREDNS_LOG = "coredns_log"
    UNBOUND_LOG = "unbound_log"
    METRICS_EXPOSITION = "metrics_exposition"
    PROMETHEUS_API_JSON = "prometheus_api_json"
    GRAFANA_CSV = "grafana_csv"
    GRAFANA_JSON = "grafana_json"
    COREFILE = "corefile"
    UNBOUND_CONF = "unbound_conf"
    NSD_CONF = "nsd_conf"
    RUN_JSON = "run_json"
    # issue 18: dnstap and Kubernetes snapshots (kit.sources.dnstap, kit.sources.k8s)
    DNSTAP = "dnstap"
    K8S_SNAPSHOT = "k8s_snapshot"
    # node evidence (kit.sources.node) and other tools' DNS records (kit.sources.zeek/.gadget)
    NSTAT = "nstat"
    CONNTRACK_STATS = "conntrack_stats"
    ETHTOOL_STATS = "ethtool_stats"
    IP_LINK_STATS = "ip_link_stats"
    ZEEK_DNS = "zeek_dns_log"
    GADGET_DNS = "gadget_dns"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class Detection:
    """The kind of one file and why.

    Attributes
    ----------
    path : str
        The file as given.
    kind : ArtefactKind
        What it is; ``ArtefactKind.UNKNOWN`` when nothing matched.
    reason : str
        What was seen (magic bytes, matching line counts, JSON keys), or why nothing matched.
    """

    path: str
    kind: ArtefactKind
    reason: str


#: Columns of :func:`detect_kinds`.
DETECT_SCHEMA = pl.Schema({"path": pl.String, "kind": pl.String, "reason": pl.String})

# ---------------------------------------------------------------------------------------------
# magic numbers

_PCAP_MAGIC = {
    b"\xd4\xc3\xb2\xa1": "pcap, little-endian, microsecond timestamps",
    b"\xa1\xb2\xc3\xd4": "pcap, big-endian, microsecond timestamps",
    b"\x4d\x3c\xb2\xa1": "pcap, little-endian, nanosecond timestamps",
    b"\xa1\xb2\x3c\x4d": "pcap, big-endian, nanosecond timestamps",
    b"\x34\xcd\xb2\xa1": "modified (Kuznetzov) pcap, little-endian",
    b"\xa1\xb2\xcd\x34": "modified (Kuznetzov) pcap, big-endian",
}
_PCAPNG_SHB = b"\x0a\x0d\x0d\x0a"
_PCAPNG_BOM = {b"\x4d\x3c\x2b\x1a": "little-endian", b"\x1a\x2b\x3c\x4d": "big-endian"}
_OTHER_MAGIC = {
    b"\xfd7zXZ\x00": "xz-compressed",
    b"BZh": "bzip2-compressed",
    b"\x28\xb5\x2f\xfd": "zstd-compressed",
    b"PK\x03\x04": "a zip archive",
    b"\x04\x22\x4d\x18": "lz4-compressed",
    b"\x89PNG": "a PNG image",
    b"%PDF": "a PDF document",
    b"\x7fELF": "an ELF executable",
    b"SQLite format 3\x00": "an SQLite database",
}

# ---------------------------------------------------------------------------------------------
# text patterns

# CoreDNS query log (any version, formats.md §1.2), searched anywhere in the line so that any
# wrapper (CRI, kubectl --timestamps/--prefix, compose, journald, node-cache prefix) is allowed.
_CD_QUERY = re.compile(
    r"(?<=\S) - (?:\[[^\]]+\] )?(?:\d+ )?\"[A-Za-z0-9]+ [A-Za-z0-9]+ (?:\\.|[^\s\\\"])+ "
    r"(?:udp|tcp) \d+ (?:true|false) \d+\""
)
# errors plugin (>= 1.3 and pre-1.3) and plugin messages
_CD_PLUGIN = re.compile(
    r"\[(?:INFO|ERROR|WARNING|DEBUG|FATAL)\] (?:plugin/[\w-]+: |\d+ \S+\. \S+: |Reloading|CoreDNS-)"
)
_CD_WEAK = re.compile(
    r"\[(?:INFO|ERROR|WARNING|DEBUG|FATAL)\] |^\s*CoreDNS-\d+\.\d+\.\d+\s*$"
    r"|^\s*linux/\w+, go\d|^\s*\S*:\d+(?: on \S+)?\s*$"
)
_NODE_CACHE_CONFIG = re.compile(r"\[INFO\] Using config file:\s*$")
# unbound: "[1700000000] unbound[123:0] info: ..." or syslog/ascii-time prefixes
_UB_LINE = re.compile(r"\bunbound\[\d+:\d+\] (?:[a-z]+(?: [a-z]+)?): ")
_NSD_LINE = re.compile(r"\bnsd\[\d+\]: (?:[a-z]+): ")
# Prometheus text exposition / OpenMetrics
_PROM_META = re.compile(r"^# (?:HELP|TYPE|UNIT) [a-zA-Z_:][a-zA-Z0-9_:]*(?: |$)|^# EOF\s*$")
_PROM_SAMPLE = re.compile(
    r"^[a-zA-Z_:][a-zA-Z0-9_:]*(?:\{.*\})?[ \t]+"
    r"(?:[-+]?(?:\d+\.?\d*(?:[eE][-+]?\d+)?|\.\d+(?:[eE][-+]?\d+)?)|(?i:[-+]?(?:inf(?:inity)?|nan)))"
    r"(?:[ \t]+[-+]?\d+(?:\.\d+)?)?(?:[ \t]+#.*)?[ \t]*$"
)
# unbound.conf / nsd.conf: "clause:" and "key: value" lines
_CONF_LINE = re.compile(r"^\s*[a-zA-Z0-9][\w-]*:(?:\s+.*)?\s*$")
_CONF_CLAUSE = re.compile(r"^([a-z][\w-]*):\s*(?:#.*)?$")
_UNBOUND_KEYS = {
    "forward-zone",
    "stub-zone",
    "auth-zone",
    "forward-addr",
    "forward-host",
    "forward-tcp-upstream",
    "forward-tls-upstream",
    "stub-addr",
    "do-ip4",
    "do-ip6",
    "do-udp",
    "do-tcp",
    "tcp-upstream",
    "udp-upstream-without-downstream",
    "access-control",
    "num-threads",
    "module-config",
    "local-zone",
    "local-data",
    "msg-cache-size",
    "rrset-cache-size",
    "cache-max-ttl",
    "cache-min-ttl",
    "log-queries",
    "log-replies",
    "use-syslog",
    "do-daemonize",
    "interface",
    "outgoing-interface",
    "prefetch",
    "serve-expired",
    "harden-glue",
    "qname-minimisation",
    "auto-trust-anchor-file",
    "root-hints",
    "extended-statistics",
    "so-rcvbuf",
    "outgoing-num-tcp",
    "incoming-num-tcp",
    "num-queries-per-thread",
}
_NSD_KEYS = {
    "zonefile",
    "zonesdir",
    "ip-address",
    "xfrdfile",
    "xfrdir",
    "zonelistfile",
    "database",
    "request-xfr",
    "provide-xfr",
    "allow-notify",
    "notify",
    "ip4-only",
    "ip6-only",
    "tcp-query-count",
    "tcp-count",
    "hide-version",
    "server-count",
    "include-pattern",
    "pattern",
    "xfrd-reload-timeout",
    "zonefiles-check",
    "zonefiles-write",
    "nsid",
    "identity",
}
# Corefile: a "zone:port {" / ". {" server block line, and plugin lines
_TEMPLATE_ACTION = re.compile(r"\{\{.*?\}\}")
_CF_KEY_TOKEN = re.compile(r"(?:[a-z0-9]+://)?[^\s{}#\"]*")
_CF_PLUGINS = {
    "acl",
    "any",
    "auto",
    "autopath",
    "bind",
    "bufsize",
    "cache",
    "cancel",
    "chaos",
    "debug",
    "dns64",
    "dnssec",
    "dnstap",
    "erratic",
    "errors",
    "etcd",
    "file",
    "forward",
    "grpc",
    "header",
    "health",
    "hosts",
    "k8s_external",
    "kubernetes",
    "loadbalance",
    "local",
    "log",
    "loop",
    "metadata",
    "minimal",
    "nsid",
    "pprof",
    "prometheus",
    "proxy",
    "ready",
    "reload",
    "rewrite",
    "root",
    "route53",
    "secondary",
    "sign",
    "template",
    "timeouts",
    "tls",
    "trace",
    "transfer",
    "tsig",
    "view",
    "whoami",
}
_CF_BARE_KEY = re.compile(r"^\s*(?:[a-z0-9]+://)?[^\s{}#]*(?::\d+|\.)\s*$")
_CF_PLUGIN_LINE = re.compile(r"^\s*([a-z0-9_]+)(?:\s|$)")
_CSV_TIME = re.compile(r'^\s*"?(?:Time|time|Series|series|timestamp|Timestamp)"?\s*$')


# ---------------------------------------------------------------------------------------------
# public functions


def detect(path: str | os.PathLike[str]) -> Detection:
    """Detect the kind of one file from its first :data:`HEAD_BYTES` bytes.

    Parameters
    ----------
    path
        The file. Gzip is looked through (by magic bytes, not by name).

    Returns
    -------
    Detection
        ``kind`` and a one-line ``reason``. Empty, binary, unreadable, differently compressed
        or unrecognised files give ``ArtefactKind.UNKNOWN`` with the reason.

    Raises
    ------
    FileNotFoundError
        ``path`` does not exist.
    """
    p = Path(os.fspath(path))
    if not p.exists():
        raise FileNotFoundError(f"file not found: {p}")
    if p.is_dir():
        return Detection(str(path), ArtefactKind.UNKNOWN, "is a directory, not a file")
    try:
        with p.open("rb") as fh:
            head = fh.read(HEAD_BYTES + 1)
    except OSError as exc:
        return Detection(str(path), ArtefactKind.UNKNOWN, f"cannot read: {exc.strerror or exc}")
    truncated = len(head) > HEAD_BYTES
    kind, reason = _classify_bytes(head[:HEAD_BYTES], truncated=truncated, depth=0)
    log.debug("%s: %s (%s)", p, kind, reason)
    return Detection(str(path), kind, reason)


def detect_kind(path: str | os.PathLike[str]) -> ArtefactKind:
    """The kind of one file (see :func:`detect` for the reason too).

    Raises
    ------
    FileNotFoundError
        ``path`` does not exist.
    """
    return detect(path).kind


def detect_kinds(paths: Source | Sequence[str | os.PathLike[str]]) -> pl.DataFrame:
    """Detect the kind of every file in ``paths`` (a path, glob, directory, or list of them).

    Returns
    -------
    polars.DataFrame
        Schema :data:`DETECT_SCHEMA`, one row per file in :func:`kit.sources._io.expand_sources`
        order:

        - ``path`` (String): the file path.
        - ``kind`` (String): an :class:`ArtefactKind` value (``"capture"``, ``"coredns_log"``,
          ``"unbound_log"``, ``"metrics_exposition"``, ``"prometheus_api_json"``,
          ``"grafana_csv"``, ``"grafana_json"``, ``"corefile"``, ``"unbound_conf"``,
          ``"nsd_conf"``, ``"run_json"``, ``"nstat"``, ``"conntrack_stats"``,
          ``"ethtool_stats"``, ``"ip_link_stats"``, ``"zeek_dns_log"``, ``"gadget_dns"`` or
          ``"unknown"``).
        - ``reason`` (String): what was seen, or why nothing matched.

    Raises
    ------
    FileNotFoundError
        A named path does not exist, or a glob or directory holds no file.
    """
    files = expand_sources(paths, what="artefact")
    rows = [detect(f) for f in files]
    df = pl.DataFrame(
        {
            "path": [r.path for r in rows],
            "kind": [r.kind.value for r in rows],
            "reason": [r.reason for r in rows],
        },
        schema=DETECT_SCHEMA,
    )
    check_schema(df, DETECT_SCHEMA, name="detect_kinds")
    return df


# ---------------------------------------------------------------------------------------------
# bytes


def _classify_bytes(head: bytes, *, truncated: bool, depth: int) -> tuple[ArtefactKind, str]:
    unknown = ArtefactKind.UNKNOWN
    if not head:
        return unknown, "empty file (0 bytes)"
    if head[:4] in _PCAP_MAGIC:
        if len(head) < 24:
            return unknown, f"pcap magic but only {len(head)} bytes (a pcap header is 24)"
        return ArtefactKind.CAPTURE, f"{_PCAP_MAGIC[head[:4]]} (magic {head[:4].hex()})"
    if head[:4] == _PCAPNG_SHB:
        bom = _PCAPNG_BOM.get(head[8:12])
        if bom is None:
            return unknown, "pcapng section-header magic without a valid byte-order magic"
        return ArtefactKind.CAPTURE, f"pcapng, {bom} (section header block 0a0d0d0a)"
    if head[:2] == b"\x1f\x8b":
        if depth >= 2:
            return unknown, "gzip nested more than twice"
        inner, inner_trunc, problem = _gunzip_head(head, truncated=truncated)
        if problem and not inner:
            return unknown, f"gzip: {problem}"
        kind, reason = _classify_bytes(inner, truncated=inner_trunc, depth=depth + 1)
        return kind, f"gzip: {reason}" + (f" ({problem})" if problem else "")
    dnstap = _dnstap_head(head)
    if dnstap is not None:
        return dnstap
    for magic, what in _OTHER_MAGIC.items():
        if head.startswith(magic):
            return unknown, f"{what} (magic {magic.hex()}); decompress or convert it first"
    text, problem = _decode(head, truncated=truncated)
    if text is None:
        return unknown, problem
    return _classify_text(text, truncated=truncated)


def _dnstap_head(head: bytes) -> tuple[ArtefactKind, str] | None:
    """A Frame Streams file starts with a START control frame: escape 0, length, type 2, and
    (for dnstap) a CONTENT_TYPE field ``protobuf:dnstap.Dnstap``."""
    if len(head) < 12 or head[:4] != b"\0\0\0\0" or head[8:12] != b"\0\0\0\x02":
        return None
    clen = int.from_bytes(head[4:8], "big")
    if not 4 <= clen <= 512:
        return None
    ctype = head[20 : 20 + int.from_bytes(head[16:20], "big")] if len(head) >= 20 else b""
    if ctype == b"protobuf:dnstap.Dnstap":
        return ArtefactKind.DNSTAP, "Frame Streams START frame, content type protobuf:dnstap.Dnstap"
    return ArtefactKind.UNKNOWN, (
        f"Frame Streams file with content type {ctype[:64].decode('latin-1')!r} (not dnstap)"
    )


#: kubectl's list kinds and the item kinds :mod:`kit.sources.k8s` reads.
_K8S_KINDS = {"PodList", "ServiceList", "EndpointSliceList", "EndpointsList", "List"}
_K8S_ITEMS = {"Pod", "Service", "EndpointSlice", "Endpoints"}
# `kubectl get pods -A -o wide` header
_K8S_WIDE = re.compile(r"^(?:NAMESPACE\s+)?NAME\s+READY\s+STATUS\s+RESTARTS\s+AGE\s+IP\s+NODE\b")


def _k8s_json(obj: dict[str, Any]) -> tuple[ArtefactKind, str] | None:
    kind = obj.get("kind")
    if kind in _K8S_ITEMS and isinstance(obj.get("metadata"), dict):
        return ArtefactKind.K8S_SNAPSHOT, f"one Kubernetes {kind} object (kubectl -o json)"
    items = obj.get("items")
    if kind in _K8S_KINDS and isinstance(items, list):
        kinds = sorted({str(i["kind"]) for i in items if isinstance(i, dict) and "kind" in i})
        if kind != "List" or (kinds and set(kinds) <= _K8S_ITEMS):
            return ArtefactKind.K8S_SNAPSHOT, (
                f"Kubernetes {kind} of {len(items)} items"
                + (f" ({', '.join(kinds)})" if kinds else "")
                + " (kubectl get -o json)"
            )
    return None


#: capinfos' names of the capture formats the kit reads, by magic number.
_PCAP_FORMAT = {
    b"\xd4\xc3\xb2\xa1": "pcap",
    b"\xa1\xb2\xc3\xd4": "pcap",
    b"\x4d\x3c\xb2\xa1": "nsecpcap",
    b"\xa1\xb2\x3c\x4d": "nsecpcap",
    b"\x34\xcd\xb2\xa1": "modpcap",
    b"\xa1\xb2\xcd\x34": "modpcap",
}
_PCAP_HEADER = 24  # bytes of a pcap file header
_PCAPNG_MIN_SHB = 28  # bytes of the smallest pcapng section header block


def capture_head(head: bytes, *, truncated: bool) -> tuple[str | None, str]:
    """Check the first bytes of a file that should be a packet capture, before any tool reads it.

    Accepted: pcap (both byte orders, microsecond or nanosecond timestamps, also the modified
    Kuznetzov pcap) with its whole 24-byte file header, pcapng with a valid byte-order magic and at
    least a 28-byte section header block, and either of them gzipped once (what tshark reads).

    Parameters
    ----------
    head
        The file's first bytes (at most :data:`HEAD_BYTES` are looked at).
    truncated
        Whether the file goes on after ``head``.

    Returns
    -------
    tuple[str | None, str]
        The format (capinfos' name: ``"pcap"``, ``"nsecpcap"``, ``"modpcap"`` or ``"pcapng"``,
        with ``"gzip/"`` in front when gzipped) or ``None`` when the file is not a capture the kit
        can read; and a one-line reason (what was seen, or what is wrong).
    """
    return _capture_head(head[:HEAD_BYTES], truncated=truncated or len(head) > HEAD_BYTES, gz=False)


def _capture_head(head: bytes, *, truncated: bool, gz: bool) -> tuple[str | None, str]:
    if not head:
        return None, "empty" + (" gzip content" if gz else " file (0 bytes)")
    fmt = _PCAP_FORMAT.get(head[:4])
    if fmt is not None:
        if len(head) < _PCAP_HEADER and not truncated:
            return None, (
                f"pcap file header cut short: {len(head)} of {_PCAP_HEADER} bytes"
                + (" (after gzip decompression)" if gz else "")
            )
        return fmt, f"{_PCAP_MAGIC[head[:4]]} (magic {head[:4].hex()})"
    if head[:4] == _PCAPNG_SHB:
        if len(head) < 12 and not truncated:
            return None, f"pcapng section header cut short: {len(head)} of {_PCAPNG_MIN_SHB} bytes"
        bom = _PCAPNG_BOM.get(head[8:12])
        if bom is None:
            return None, (
                f"pcapng section-header magic without a valid byte-order magic "
                f"(bytes 8-11: {head[8:12].hex()})"
            )
        if len(head) < _PCAPNG_MIN_SHB and not truncated:
            return None, f"pcapng section header cut short: {len(head)} of {_PCAPNG_MIN_SHB} bytes"
        return "pcapng", f"pcapng, {bom} (section header block 0a0d0d0a)"
    if head[:2] == b"\x1f\x8b":
        if gz:
            return None, "gzip inside gzip; tshark looks through one layer: gunzip it once first"
        inner, inner_trunc, problem = _gunzip_start(head, truncated=truncated)
        fmt, reason = _capture_head(inner, truncated=inner_trunc, gz=True)
        if fmt is None and problem:
            return None, f"gzip: {problem}, after {len(inner)} byte(s) of content ({reason})"
        reason = f"gzip: {reason}" + (f" ({problem} after the capture header)" if problem else "")
        return (f"gzip/{fmt}" if fmt else None), reason
    for magic, what in _OTHER_MAGIC.items():
        if head.startswith(magic):
            return None, f"{what} (magic {magic.hex()}); decompress or convert it first"
    shown = head[:8].hex()
    text = head[:64]
    looks = ""
    if text and all(32 <= b < 127 or b in b"\t\r\n" for b in text):
        looks = ", it looks like text"
    return None, f"no pcap or pcapng magic number (first bytes {shown}{looks})"


def _gunzip_start(head: bytes, *, truncated: bool, want: int = 64) -> tuple[bytes, bool, str]:
    """The first ``want`` decompressed bytes of a gzip stream, fed in small steps so that what
    came out before damage is kept; returns (content, whether more follows, problem)."""
    d = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    out = b""
    for i in range(0, len(head), 256):
        try:
            out += d.decompress(head[i : i + 256], want - len(out))
        except zlib.error as exc:
            return out, False, f"corrupt gzip data ({exc})"
        if len(out) >= want or d.eof:
            break
    if len(out) >= want or d.unconsumed_tail:
        return out, True, ""
    if d.eof:
        # a member ended: the content goes on only if another member follows (tshark reads those)
        return out, bool(d.unused_data) or truncated, ""
    return out, truncated, "" if truncated else "gzip stream truncated"


def _gunzip_head(head: bytes, *, truncated: bool) -> tuple[bytes, bool, str]:
    """Decompress at most HEAD_BYTES from the start of a gzip stream (concatenated members too)."""
    out: list[bytes] = []
    rest, size = head, 0
    try:
        while rest and size < HEAD_BYTES:
            d = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
            chunk = d.decompress(rest, HEAD_BYTES - size)
            out.append(chunk)
            size += len(chunk)
            if d.unconsumed_tail or not d.eof:
                # more output available, or the member continues past what we read
                more = bool(d.unconsumed_tail) or truncated
                return (
                    b"".join(out),
                    more or size >= HEAD_BYTES,
                    ("" if more else "gzip stream truncated"),
                )
            rest = d.unused_data
            if rest and not rest.startswith(b"\x1f\x8b"):
                break
    except zlib.error as exc:
        return b"".join(out), True, f"corrupt gzip data ({exc})"
    return b"".join(out), size >= HEAD_BYTES, ""


def _decode(head: bytes, *, truncated: bool) -> tuple[str | None, str]:
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        enc = "utf-16-le" if head.startswith(b"\xff\xfe") else "utf-16-be"
        body = head[2:]
        body = body[: len(body) - len(body) % 2]
        return body.decode(enc, "replace"), ""
    if head.startswith(b"\xef\xbb\xbf"):
        head = head[3:]
    nul = head.count(b"\x00")
    if nul:
        first = head.find(b"\x00")
        return None, (
            f"binary data: {nul} NUL bytes in the first {len(head)} bytes "
            f"(first at byte {first}) and no known magic number"
        )
    text = head.decode("utf-8", "replace")
    if truncated:
        # a multi-byte character may be cut at the end of the head
        text = text.rstrip("\ufffd")
    bad = text.count("\ufffd")
    ctrl = sum(1 for c in text if ord(c) < 32 and c not in "\t\n\r\f\x1b")
    if bad + ctrl > max(8, len(text) // 20):
        return None, (
            f"binary data: {bad} invalid UTF-8 sequences and {ctrl} control characters "
            f"in the first {len(head)} bytes"
        )
    return text, ""


# ---------------------------------------------------------------------------------------------
# text


def _classify_text(text: str, *, truncated: bool) -> tuple[ArtefactKind, str]:
    unknown = ArtefactKind.UNKNOWN
    if not text.strip():
        return unknown, f"only white space ({len(text)} characters)"
    lines = text.splitlines()
    if truncated and len(lines) > 1:
        lines = lines[:-1]  # the last line is cut
    # every pattern below needs only a line's start; capping keeps hostile long lines linear
    lines = [ln[:_MAX_LINE] for ln in lines]
    stripped = text.lstrip()
    json_problem = ""
    if stripped[:1] in "{[":
        found = _classify_json(text, lines, truncated=truncated)
        if found is not None and found[0] != ArtefactKind.UNKNOWN:
            return found
        # "[INFO] ..." log lines and "{{ template }}" Corefiles also start with a bracket
        json_problem = f"; {found[1]}" if found is not None else ""
    nonblank = [ln for ln in lines if ln.strip()]
    n = len(nonblank)
    if nonblank and _K8S_WIDE.match(nonblank[0]):
        return ArtefactKind.K8S_SNAPSHOT, (
            f"kubectl get pods -o wide table ({n - 1} rows; header {nonblank[0].split()[:8]})"
        )

    # node evidence and Zeek TSV before Prometheus: "IpInReceives 936 0.0" is also a valid sample
    other_tool = _classify_other_tools_text(nonblank)
    if other_tool is not None:
        return other_tool

    # Prometheus text exposition / OpenMetrics: nearly every line is metadata or a sample
    meta = sum(1 for ln in nonblank if _PROM_META.match(ln))
    samples = sum(1 for ln in nonblank if _PROM_SAMPLE.match(ln))
    comments = sum(1 for ln in nonblank if ln.startswith("#")) - meta
    # (0.6, not 1.0: a scrape with a few broken lines is still a scrape, and its loader is the
    # one that can say which line is broken)
    if samples + meta >= 2 and samples + meta + comments >= 0.6 * n:
        om = " OpenMetrics (# EOF)" if any(ln.strip() == "# EOF" for ln in nonblank) else ""
        return ArtefactKind.METRICS_EXPOSITION, (
            f"{samples} sample lines and {meta} # HELP/# TYPE lines of {n} non-blank lines{om}"
        )

    # logs
    ub = sum(1 for ln in nonblank if _UB_LINE.search(ln))
    cd_strong = sum(1 for ln in nonblank if _CD_QUERY.search(ln) or _CD_PLUGIN.search(ln))
    cd_weak = sum(
        1
        for ln in nonblank
        if not (_CD_QUERY.search(ln) or _CD_PLUGIN.search(ln)) and _CD_WEAK.search(ln)
    )
    if ub and ub >= cd_strong and ub >= 0.3 * n:
        return (
            ArtefactKind.UNBOUND_LOG,
            f"{ub} of {n} non-blank lines are unbound[pid:thread] log lines",
        )
    using = next((i for i, ln in enumerate(lines) if _NODE_CACHE_CONFIG.search(ln)), None)
    if using is not None:
        # node-cache prints its whole Corefile in one multi-line message: a log, not a Corefile
        return ArtefactKind.COREDNS_LOG, (
            f"NodeLocal DNSCache log: 'Using config file:' at line {using + 1} "
            f"(the Corefile after it is part of the log), {cd_strong} CoreDNS log lines"
        )
    if cd_strong and (cd_strong + cd_weak >= 0.3 * n or cd_strong >= 20):
        queries = sum(1 for ln in nonblank if _CD_QUERY.search(ln))
        return ArtefactKind.COREDNS_LOG, (
            f"{cd_strong} of {n} non-blank lines are CoreDNS log lines ({queries} query-log lines)"
            + (f", {cd_weak} more with CoreDNS levels/banners" if cd_weak else "")
        )
    nsd_log = sum(1 for ln in nonblank if _NSD_LINE.search(ln))
    if nsd_log >= 0.3 * n:
        return unknown, f"{nsd_log} of {n} lines are NSD log lines (no loader for NSD logs)"

    # unbound.conf / nsd.conf
    conf = _classify_conf(nonblank)
    if conf is not None:
        return conf

    # Corefile
    cf = _classify_corefile(text, nonblank, truncated=truncated)
    if cf is not None:
        return cf

    if json_problem:
        return unknown, json_problem[2:]

    # Grafana CSV
    csv = _classify_csv(nonblank)
    if csv is not None:
        return csv
    first = nonblank[0].strip()
    return unknown, (
        f"text ({n} non-blank lines) of no known kind; first line {first[:60]!r}{json_problem}"
    )


def _classify_json(
    text: str, lines: list[str], *, truncated: bool
) -> tuple[ArtefactKind, str] | None:
    unknown = ArtefactKind.UNKNOWN
    records = _classify_other_tools_json(text, truncated=truncated)
    if records is not None:
        return records
    obj: Any = None
    parsed = False
    if not truncated:
        try:
            obj = json.loads(text)
            parsed = True
        except (ValueError, RecursionError):
            parsed = False
    if parsed:
        return _classify_json_value(obj)
    # JSON lines (docker json-file logs, shipper exports): each line one object
    objs: list[Any] = []
    for ln in lines[:200]:
        if not ln.strip():
            continue
        try:
            objs.append(json.loads(ln))
        except (ValueError, RecursionError):
            break
    if (
        len(objs) >= 1
        and all(isinstance(o, dict) for o in objs)
        and len(objs) >= min(2, len([ln for ln in lines if ln.strip()]))
    ):
        msgs = [_log_message(o) for o in objs]
        texts = [m for m in msgs if m is not None]
        if not texts:
            keys = sorted(set().union(*(o.keys() for o in objs)))[:8]
            return unknown, f"JSON lines ({len(objs)}) without a log/message field; keys {keys}"
        kind, reason = _classify_text("\n".join(texts) + "\n", truncated=False)
        if kind in (ArtefactKind.COREDNS_LOG, ArtefactKind.UNBOUND_LOG):
            return kind, f"JSON-wrapped log lines ({len(texts)} of {len(objs)} objects): {reason}"
        return unknown, f"JSON lines whose messages are not CoreDNS/unbound logs: {reason}"
    # a big JSON document cut at HEAD_BYTES: sniff its keys
    head = text[:4096]
    if re.search(r'"resultType"\s*:\s*"(?:matrix|vector|scalar|string)"', text) or re.match(
        r'\s*\[\s*\{\s*"metric"\s*:', head
    ):
        what = "list of series" if head.lstrip().startswith("[") else "API response"
        how = (
            f"JSON longer than {HEAD_BYTES} bytes, its head shows"
            if truncated
            else "JSON that does not parse (cut short?), but shows"
        )
        return ArtefactKind.PROMETHEUS_API_JSON, f"Prometheus {what} ({how} resultType/metric keys)"
    if re.search(r'"schema"\s*:\s*\{', head) and re.search(r'"fields"\s*:\s*\[', head):
        return ArtefactKind.GRAFANA_JSON, "Grafana DataFrame JSON (schema.fields seen in the head)"
    if re.search(r'"frames"\s*:\s*\[', head):
        return ArtefactKind.GRAFANA_JSON, "Grafana query response (frames seen in the head)"
    if re.search(r'"kind"\s*:\s*"(?:Pod|Service|EndpointSlice)List"', head) or (
        re.search(r'"kind"\s*:\s*"List"', text) and re.search(r'"kind"\s*:\s*"Pod"', head)
    ):
        return ArtefactKind.K8S_SNAPSHOT, "Kubernetes list (its kind seen in the head)"
    if re.search(r'"lab"\s*:\s*"dns-incident-kit', head):
        return ArtefactKind.RUN_JSON, 'lab run metadata (its "lab" key seen in the head)'
    if re.match(r'\s*\{\s*"phases"\s*:', head) or (
        re.search(r'"phases"\s*:\s*[\[{]', text) and re.search(r'"topology"\s*:', text)
    ):
        return ArtefactKind.RUN_JSON, "lab run metadata (phases key seen in the head)"
    if not truncated:
        try:
            json.loads(text)
        except RecursionError:
            return unknown, "starts like JSON but nests too deeply to read"
        except ValueError as exc:
            return unknown, f"starts like JSON but does not parse: {exc}"
    return unknown, f"JSON document larger than {HEAD_BYTES} bytes with no known keys in its head"


def _log_message(o: dict[str, Any]) -> str | None:
    for key in ("log", "message", "msg", "MESSAGE", "line"):
        v = o.get(key)
        if isinstance(v, str):
            return v.rstrip("\n")
    return None


def _is_series(o: Any) -> bool:
    return (
        isinstance(o, dict)
        and "metric" in o
        and ("values" in o or "value" in o or "histogram" in o or "histograms" in o)
    )


def _is_frame(o: Any) -> bool:
    if not isinstance(o, dict):
        return False
    schema = o.get("schema")
    if isinstance(schema, dict) and isinstance(schema.get("fields"), list):
        return True
    fields = o.get("fields")
    return isinstance(fields, list) and all(isinstance(f, dict) and "name" in f for f in fields)


def _classify_json_value(obj: Any) -> tuple[ArtefactKind, str]:
    unknown = ArtefactKind.UNKNOWN
    if isinstance(obj, dict):
        keys = list(obj)
        if "phases" in obj:
            return ArtefactKind.RUN_JSON, "JSON object with a phases key (lab run metadata)"
        k8s = _k8s_json(obj)
        if k8s is not None:
            return k8s
        data = obj.get("data")
        if obj.get("status") in ("success", "error") and ("data" in obj or "errorType" in obj):
            rt = data.get("resultType") if isinstance(data, dict) else None
            return ArtefactKind.PROMETHEUS_API_JSON, (
                f"Prometheus API envelope, status {obj.get('status')!r}"
                + (f", resultType {rt!r}" if rt else "")
            )
        if "resultType" in obj and "result" in obj:
            return ArtefactKind.PROMETHEUS_API_JSON, (
                f"Prometheus API data object, resultType {obj['resultType']!r} (no envelope)"
            )
        if _is_series(obj):
            return (
                ArtefactKind.PROMETHEUS_API_JSON,
                "one Prometheus series object (metric + values)",
            )
        if _is_frame(obj):
            return ArtefactKind.GRAFANA_JSON, "Grafana DataFrame JSON (schema.fields)"
        frames = obj.get("frames")
        if isinstance(frames, list) and all(_is_frame(f) for f in frames):
            return ArtefactKind.GRAFANA_JSON, f"Grafana query response with {len(frames)} frames"
        results = obj.get("results")
        if isinstance(results, dict) and any(
            isinstance(r, dict) and isinstance(r.get("frames"), list) for r in results.values()
        ):
            return (
                ArtefactKind.GRAFANA_JSON,
                f"Grafana /api/ds/query response ({len(results)} refIds)",
            )
        series = obj.get("series")
        if isinstance(series, list) and series and all(_is_frame(f) for f in series):
            return ArtefactKind.GRAFANA_JSON, f"Grafana panel data with {len(series)} series frames"
        msg = _log_message(obj)
        if msg is not None:
            kind, reason = _classify_text(msg + "\n", truncated=False)
            if kind in (ArtefactKind.COREDNS_LOG, ArtefactKind.UNBOUND_LOG):
                return kind, f"one JSON-wrapped log line: {reason}"
        return unknown, f"JSON object with keys {keys[:8]}: no known kind"
    if isinstance(obj, list):
        if not obj:
            return unknown, "empty JSON list"
        if all(_is_series(o) for o in obj):
            return ArtefactKind.PROMETHEUS_API_JSON, (
                f"Prometheus result list of {len(obj)} series without envelope"
            )
        if all(_is_frame(o) for o in obj):
            return ArtefactKind.GRAFANA_JSON, f"list of {len(obj)} Grafana DataFrame JSON frames"
        return unknown, f"JSON list of {len(obj)} items of no known kind"
    return unknown, f"JSON {type(obj).__name__} value of no known kind"


def _classify_conf(nonblank: list[str]) -> tuple[ArtefactKind, str] | None:
    body = [ln for ln in nonblank if not ln.lstrip().startswith("#")]
    if not body:
        return None
    conf_lines = sum(1 for ln in body if _CONF_LINE.match(ln))
    if conf_lines < 0.9 * len(body):
        return None
    keys = {ln.split(":", 1)[0].strip() for ln in body}
    clauses = {m.group(1) for ln in body if (m := _CONF_CLAUSE.match(ln))}
    ub = keys & _UNBOUND_KEYS
    nsd = keys & _NSD_KEYS
    if "zone" in clauses or "pattern" in clauses:
        nsd = nsd | ({"zone", "pattern"} & clauses)
    if not ub and not nsd:
        return None
    if len(ub) >= len(nsd):
        return ArtefactKind.UNBOUND_CONF, (
            f"{conf_lines} 'key: value' lines, clauses {sorted(clauses)}, unbound keys {sorted(ub)[:5]}"
        )
    return ArtefactKind.NSD_CONF, (
        f"{conf_lines} 'key: value' lines, clauses {sorted(clauses)}, NSD keys {sorted(nsd)[:5]}"
    )


def _classify_corefile(
    text: str, nonblank: list[str], *, truncated: bool
) -> tuple[ArtefactKind, str] | None:
    body = [ln for ln in nonblank if not ln.lstrip().startswith("#")]
    blocks = [ln for ln in body if _is_block_line(ln)]
    plugins = {m.group(1) for ln in body if (m := _CF_PLUGIN_LINE.match(ln))} & _CF_PLUGINS
    # a single server block may omit its braces: ".:53" then plugin lines to the end
    if (
        not blocks
        and len(body) > 1
        and _CF_BARE_KEY.match(body[0])
        and all((m := _CF_PLUGIN_LINE.match(ln)) and m.group(1) in _CF_PLUGINS for ln in body[1:])
    ):
        blocks = body[:1]
    if not blocks or not plugins:
        return None
    reason = (
        f"{len(blocks)} server block lines (first {blocks[0].strip()[:40]!r}), "
        f"plugins {sorted(plugins)[:6]}"
    )
    if not truncated:
        from kit.sources.corefile import read_corefile

        try:
            cf = read_corefile(text)
        except InputFormatError as exc:
            return ArtefactKind.COREFILE, f"{reason}; but it does not parse: {exc.reason}"
        return ArtefactKind.COREFILE, f"{reason}; parses into zones {list(cf.zones)[:5]}"
    return ArtefactKind.COREFILE, reason


def _is_block_line(line: str) -> bool:
    """A server block line: zone keys (``.:53``, ``dns://a.b:53,``, ``{{ X }}:53``) then ``{``."""
    s = line.strip()
    if not s.endswith("{"):
        return False
    toks = _TEMPLATE_ACTION.sub("T", s[:-1]).replace(",", " ").split()
    if not toks or toks[0] in _CF_PLUGINS:
        return False
    return all(_CF_KEY_TOKEN.fullmatch(t) for t in toks) and any(
        ":" in t or t.endswith(".") for t in toks
    )


def _split_header(line: str, sep: str) -> list[str]:
    try:
        row = next(_csv.reader([line], delimiter=sep))
    except (_csv.Error, StopIteration):
        row = line.split(sep)
    return [c.strip().strip('"') for c in row]


def _classify_csv(nonblank: list[str]) -> tuple[ArtefactKind, str] | None:
    lines = nonblank[:50]
    excel = ""
    if lines[0].strip().lower().startswith("sep=") and len(lines[0].strip()) == 5:
        sep = lines[0].strip()[4]
        excel = f" (Excel 'sep={sep}' line)"
        lines = lines[1:]
        if not lines:
            return None
    else:
        counts = {s: lines[0].count(s) for s in (",", ";", "\t")}
        sep = max(counts, key=lambda s: counts[s])
        if counts[sep] == 0:
            return None
    header = _split_header(lines[0], sep)
    data = lines[1:]
    # most data lines carry the delimiter (Excel exports repeat a ","-header under "sep=;")
    if len(header) < 2 or (data and sum(sep in ln for ln in data[:20]) < 0.8 * len(data[:20])):
        return None
    has_time = any(_CSV_TIME.match(h) for h in header)
    shown = {",": ",", ";": ";", "\t": "TAB"}[sep]
    if not has_time:
        return ArtefactKind.UNKNOWN, (
            f"delimited table ({shown}, {len(header)} columns) without a Time/Series column "
            f"(header {header[:4]})"
        )
    return ArtefactKind.GRAFANA_CSV, (
        f"CSV with '{shown}' delimiter, {len(header)} columns, header {header[:3]}{excel}"
    )


# ---------------------------------------------------------------------------------------------
# node evidence, Zeek dns.log, Inspektor Gadget trace dns (kit.sources.node/.zeek/.gadget)


def _classify_other_tools_text(nonblank: list[str]) -> tuple[ArtefactKind, str] | None:
    from kit.sources.node import sniff_node_format
    from kit.sources.zeek import sniff_zeek_tsv

    zeek = sniff_zeek_tsv(nonblank)
    if zeek is not None:
        return ArtefactKind.ZEEK_DNS, zeek
    node = sniff_node_format(nonblank)
    if node is not None:
        return ArtefactKind(node[0]), node[1]
    return None


def _classify_other_tools_json(text: str, *, truncated: bool) -> tuple[ArtefactKind, str] | None:
    from kit.sources.gadget import sniff_gadget_json
    from kit.sources.node import sniff_node_format
    from kit.sources.zeek import sniff_zeek_json

    node = sniff_node_format(text.splitlines()[:1])  # nstat -j: one line {"kernel":{...}}
    if node is not None:
        return ArtefactKind(node[0]), node[1]
    zeek = sniff_zeek_json(text)
    if zeek is not None:
        return ArtefactKind.ZEEK_DNS, zeek
    gadget = sniff_gadget_json(text)
    if gadget is not None:
        return ArtefactKind.GADGET_DNS, gadget
    return None
