"""Read what unbound writes: its log file (``log-queries``/``log-replies``) and its forward settings.

unbound is the node-local cache of the incident lab (``lab/``) and a common resolver in its own
right. :func:`read_unbound_log` gives the same shape as the CoreDNS loader (one row per answered
query with ``duration_s``), and :func:`read_unbound_conf` gives the forward settings with the same
schema as :meth:`kit.corefile.Corefile.forward_settings`, so one finding ("the cache forces TCP to
its upstream") covers both resolvers.

Log line format (unbound 1.17 ``util/log.c`` ``log_vmsg`` and ``util/data/msgreply.c``
``log_reply_info``)::

    [1795671300] unbound[10082:0] info: 169.254.1.1 svc22.hit.test. A IN
    [1795671300] unbound[10082:0] info: 169.254.1.1 svc22.hit.test. A IN NOERROR 0.000395 0 48
    Nov 26 05:36:02 unbound[11541:0] reply: 127.0.0.1 a.test. A IN NOERROR 0.000000 1 51

The timestamp is ``[seconds since epoch]`` or, with ``log-time-ascii: yes``, ``Mon DD HH:MM:SS``
(no year, the machine's local time). The level is ``info`` for both query and reply lines, or
``query``/``reply`` with ``log-tag-queryreply: yes``. unbound prints non-printable and special
characters of names (space, quote, ``<``...) as ``?``: such names cannot be recovered exactly.
"""

from __future__ import annotations

import datetime as dt
import glob
import ipaddress
import logging
import os
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo

import polars as pl

from kit._sources import Source, expand_sources, read_raw
from kit.errors import InputFormatError, KitWarning
from kit.schema import check_schema

try:  # the shared forward-settings schema lives with the Corefile reader
    from kit.corefile import FORWARD_SCHEMA
except ImportError:  # pragma: no cover - only while kit.corefile is not installed
    FORWARD_SCHEMA = pl.Schema(
        {
            "resolver": pl.String,
            "zone": pl.String,
            "port": pl.UInt16,
            "upstream": pl.String,
            "transport": pl.String,
            "force_tcp": pl.Boolean,
            "prefer_udp": pl.Boolean,
            "policy": pl.String,
            "max_concurrent": pl.Int64,
            "expire_s": pl.Float64,
            "health_check_s": pl.Float64,
            "source": pl.String,
            "line_no": pl.UInt32,
        }
    )

__all__ = [
    "FORWARD_SCHEMA",
    "OTHER_SCHEMA",
    "QUERIES_SCHEMA",
    "RECEIVED_SCHEMA",
    "REJECTED_SCHEMA",
    "ResolverLog",
    "read_unbound_conf",
    "read_unbound_log",
]

log = logging.getLogger(__name__)

_UTC = pl.Datetime("us", "UTC")

#: One row per reply line (``log-replies``): an answered query with its duration.
QUERIES_SCHEMA = pl.Schema(
    {
        "ts": _UTC,
        "client_ip": pl.String,
        "qname": pl.String,
        "qtype": pl.String,
        "qclass": pl.String,
        "rcode": pl.String,
        "duration_s": pl.Float64,
        "cached": pl.Boolean,
        "resp_size": pl.UInt32,
        "source": pl.String,
        "line_no": pl.UInt32,
    }
)
#: One row per query line (``log-queries``): a query as it arrived, before any answer.
RECEIVED_SCHEMA = pl.Schema(
    {
        "ts": _UTC,
        "client_ip": pl.String,
        "qname": pl.String,
        "qtype": pl.String,
        "qclass": pl.String,
        "source": pl.String,
        "line_no": pl.UInt32,
    }
)
#: Every other well-formed log line (start-up, errors, statistics at exit...).
OTHER_SCHEMA = pl.Schema(
    {
        "ts": _UTC,
        "level": pl.String,
        "message": pl.String,
        "source": pl.String,
        "line_no": pl.UInt32,
    }
)
#: Lines that could not be read, with the reason.
REJECTED_SCHEMA = pl.Schema(
    {
        "source": pl.String,
        "line_no": pl.UInt32,
        "reason": pl.String,
        "text": pl.String,
    }
)

_MONTHS = {
    m: i
    for i, m in enumerate(
        ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"),
        start=1,
    )
}
_PREFIX = re.compile(
    r"^(?:\[(?P<epoch>\d{1,12})\]|(?P<mon>[A-Z][a-z]{2}) (?P<day>[ \d]\d) "
    r"(?P<hms>\d\d:\d\d:\d\d)) (?P<ident>\S+)\[(?P<pid>\d+):(?P<tid>[0-9a-fA-F]+)\] "
    r"(?P<level>[a-z][a-z ]*?): (?P<msg>.*)$"
)
_DURATION = re.compile(r"^\d+\.\d{6}$")
_TOKEN = re.compile(r"^[A-Za-z0-9-]+$")


@dataclass(frozen=True)
class ResolverLog:
    """What :func:`read_unbound_log` read: every input line is in exactly one frame.

    Attributes
    ----------
    queries : polars.DataFrame
        Answered queries (reply lines), schema :data:`QUERIES_SCHEMA`.
    received : polars.DataFrame
        Queries as they arrived (query lines), schema :data:`RECEIVED_SCHEMA`.
    other : polars.DataFrame
        Other log lines, schema :data:`OTHER_SCHEMA`.
    rejected : polars.DataFrame
        Unreadable lines, schema :data:`REJECTED_SCHEMA`.
    lines : int
        Number of input lines read (sum of the four frames' heights).
    """

    queries: pl.DataFrame
    received: pl.DataFrame
    other: pl.DataFrame
    rejected: pl.DataFrame
    lines: int


def read_unbound_log(
    source: Source,
    *,
    year: int | None = None,
    tz: str = "UTC",
    strict: bool = False,
) -> ResolverLog:
    """Read unbound log files written with ``log-queries``/``log-replies`` (``logfile:`` output).

    Parameters
    ----------
    source
        A file, a list of files, a glob or a directory (files ending in ``.log``, gzip read
        transparently).
    year
        For ``log-time-ascii`` timestamps, which carry no year: the year of the file's first
        line. ``None`` takes it from the file's modification time (the last line is assumed not
        to be later than the file's mtime). A new year is detected when the month goes back
        (December to January). Ignored for ``[epoch]`` timestamps.
    tz
        Time zone of ``log-time-ascii`` timestamps (unbound writes the machine's local time).
        ``[epoch]`` timestamps are UTC by definition.
    strict
        ``True``: raise :class:`~kit.errors.InputFormatError` at the first unreadable line.
        ``False`` (default): put it in ``rejected`` and warn once (:class:`~kit.errors.KitWarning`)
        with the count and the first line number.

    Returns
    -------
    ResolverLog
        ``queries`` (schema :data:`QUERIES_SCHEMA`), one row per reply line:

        - ``ts`` (Datetime[us, UTC]): when unbound logged the reply (1 s resolution).
        - ``client_ip`` (String): the client's address (unbound does not log its port).
        - ``qname`` (String): the query name as sent by the client, presentation form WITHOUT the
          trailing dot, case preserved (root is ``"."``); unbound shows special bytes as ``?``.
        - ``qtype`` (String): ``A``, ``AAAA``, ``HTTPS``, ``TYPE65534``...
        - ``qclass`` (String): ``IN``, ``CH``...
        - ``rcode`` (String): ``NOERROR``, ``NXDOMAIN``, ``SERVFAIL``...
        - ``duration_s`` (Float64, seconds): time from the query to the reply, µs resolution.
        - ``cached`` (Boolean): answered from cache.
        - ``resp_size`` (UInt32, bytes): size of the DNS response message.
        - ``source`` (String): the file, as given.
        - ``line_no`` (UInt32): 1-based line number in that file.

        ``received`` (schema :data:`RECEIVED_SCHEMA`): one row per query line (``log-queries``),
        columns ``ts``, ``client_ip``, ``qname``, ``qtype``, ``qclass``, ``source``,
        ``line_no`` as above (``ts`` = arrival). ``other`` (schema :data:`OTHER_SCHEMA`): ``ts``,
        ``level`` (String: ``info``, ``notice``, ``error``, ``warning``, ``debug``...),
        ``message`` (String), ``source``, ``line_no``. ``rejected`` (schema
        :data:`REJECTED_SCHEMA`): ``source``, ``line_no``, ``reason`` (String), ``text`` (String,
        the line, undecodable bytes replaced).

    Raises
    ------
    FileNotFoundError
        A source does not exist.
    InputFormatError
        With ``strict=True``, a line that is not an unbound log line.
    """
    files = expand_sources(source, suffixes=(".log",), what="unbound log")
    q: dict[str, list[object]] = {k: [] for k in QUERIES_SCHEMA}
    r: dict[str, list[object]] = {k: [] for k in RECEIVED_SCHEMA}
    o: dict[str, list[object]] = {k: [] for k in OTHER_SCHEMA}
    rej: dict[str, list[object]] = {k: [] for k in REJECTED_SCHEMA}
    total = 0
    for path in files:
        raw = read_raw(path)
        text = raw.data.decode("utf-8", errors="replace")
        lines = text.split("\n")
        if lines and lines[-1] == "":
            lines.pop()
        total += len(lines)
        name = str(path)
        times = _line_times(lines, path, year=year, tz=tz)
        for idx, line in enumerate(lines):
            line_no = idx + 1
            line = line.removesuffix("\r")
            m = _PREFIX.match(line)
            ts = times[idx]
            if m is None or ts is None:
                reason = "blank line" if not line.strip() else "not an unbound log line"
                _reject(rej, name, line_no, reason, line, strict, path)
                continue
            level, msg = m.group("level"), m.group("msg")
            if level in {"info", "reply"}:
                rep = _parse_reply(msg)
                if rep is not None:
                    q["ts"].append(ts)
                    for k, v in zip(
                        (
                            "client_ip",
                            "qname",
                            "qtype",
                            "qclass",
                            "rcode",
                            "duration_s",
                            "cached",
                            "resp_size",
                        ),
                        rep,
                        strict=True,
                    ):
                        q[k].append(v)
                    q["source"].append(name)
                    q["line_no"].append(line_no)
                    continue
            if level in {"info", "query"}:
                qu = _parse_query(msg)
                if qu is not None:
                    r["ts"].append(ts)
                    for k, v in zip(("client_ip", "qname", "qtype", "qclass"), qu, strict=True):
                        r[k].append(v)
                    r["source"].append(name)
                    r["line_no"].append(line_no)
                    continue
            if level in {"query", "reply"}:
                _reject(rej, name, line_no, f"malformed {level} line", line, strict, path)
                continue
            o["ts"].append(ts)
            o["level"].append(level)
            o["message"].append(msg)
            o["source"].append(name)
            o["line_no"].append(line_no)
        if raw.notes:
            _reject(
                rej, name, len(lines) + 1, "damaged gzip: " + "; ".join(raw.notes), "", strict, path
            )
            total += 1
    frames = [
        _frame(q, QUERIES_SCHEMA, "queries"),
        _frame(r, RECEIVED_SCHEMA, "received"),
        _frame(o, OTHER_SCHEMA, "other"),
        _frame(rej, REJECTED_SCHEMA, "rejected"),
    ]
    n_rej = frames[3].height
    if n_rej:
        first = frames[3].row(0, named=True)
        warnings.warn(
            f"{n_rej} of {total} unbound log lines rejected (first: {first['source']}:"
            f"{first['line_no']}, {first['reason']}); see .rejected",
            KitWarning,
            stacklevel=2,
        )
    return ResolverLog(*frames, lines=total)


def _reject(
    rej: dict[str, list[object]],
    name: str,
    line_no: int,
    reason: str,
    line: str,
    strict: bool,
    path: Path,
) -> None:
    if strict:
        raise InputFormatError(
            f"{reason}: expected '[epoch] unbound[pid:tid] level: message' or "
            "'Mon DD HH:MM:SS unbound[pid:tid] level: message'",
            path=path,
            line=line_no,
            excerpt=line,
            hint="pass strict=False to collect such lines in .rejected",
        )
    rej["source"].append(name)
    rej["line_no"].append(line_no)
    rej["reason"].append(reason)
    rej["text"].append(line)


def _frame(cols: dict[str, list[object]], schema: pl.Schema, name: str) -> pl.DataFrame:
    df = pl.DataFrame(cols, schema=schema)
    check_schema(df, schema, name=f"unbound {name}")
    return df


def _line_times(
    lines: list[str], path: Path, *, year: int | None, tz: str
) -> list[dt.datetime | None]:
    """Per line: its timestamp as an aware UTC datetime, or None when the prefix does not parse."""
    zone = ZoneInfo(tz)
    out: list[dt.datetime | None] = [None] * len(lines)
    ascii_idx: list[tuple[int, int, int, int, int, int]] = []
    for i, line in enumerate(lines):
        m = _PREFIX.match(line.removesuffix("\r"))
        if m is None:
            continue
        if m.group("epoch") is not None:
            out[i] = dt.datetime.fromtimestamp(int(m.group("epoch")), dt.UTC)
            continue
        mon = _MONTHS.get(m.group("mon"))
        day = int(m.group("day"))
        hh, mm, ss = (int(x) for x in m.group("hms").split(":"))
        if mon is None or hh > 23 or mm > 59 or ss > 60 or not _valid_day(mon, day):
            continue
        ascii_idx.append((i, mon, day, hh, mm, ss))
    if not ascii_idx:
        return out
    # year offsets: +1 each time the month goes back by more than 6 (December -> January)
    offsets: list[int] = []
    off, prev = 0, ascii_idx[0][1]
    for _, mon, *_rest in ascii_idx:
        if mon < prev - 6:
            off += 1
        prev = mon
        offsets.append(off)
    if year is None:
        mtime = dt.datetime.fromtimestamp(os.stat(path).st_mtime, zone)
        _, lmon, lday, *_r = ascii_idx[-1]
        # the last line is not later than the file's mtime (one day of slack for clock skew)
        last_year = mtime.year if (lmon, lday) <= (mtime.month, mtime.day + 1) else mtime.year - 1
        base = last_year - offsets[-1]
    else:
        base = year
    for (i, mon, day, hh, mm, ss), off in zip(ascii_idx, offsets, strict=True):
        try:
            local = dt.datetime(base + off, mon, day, hh, mm, min(ss, 59), tzinfo=zone)
        except ValueError:  # Feb 29 in a non-leap year, Apr 31...
            continue
        out[i] = local.astimezone(dt.UTC)
    return out


def _valid_day(mon: int, day: int) -> bool:
    """Whether the day exists in that month in some year (Feb 29 allowed; 2000 is a leap year)."""
    try:
        dt.date(2000, mon, day)
    except ValueError:
        return False
    return True


def _parse_reply(msg: str) -> tuple[object, ...] | None:
    """``ip qname type class rcode sec.usec cached size`` -> values, or None."""
    f = msg.split(" ")
    if len(f) < 8:
        return None
    ip, qtype, qclass, rcode, dur, cached, size = f[0], f[-6], f[-5], f[-4], f[-3], f[-2], f[-1]
    qname = " ".join(f[1:-6])
    if not (_DURATION.match(dur) and cached in {"0", "1"} and size.isdigit()):
        return None
    if not (_TOKEN.match(qtype) and _TOKEN.match(qclass) and _TOKEN.match(rcode)) or not qname:
        return None
    if not _is_ip(ip) or int(size) >= 2**32:
        return None
    return ip, _strip_dot(qname), qtype, qclass, rcode, float(dur), cached == "1", int(size)


def _parse_query(msg: str) -> tuple[str, str, str, str] | None:
    """``ip qname type class`` -> values, or None."""
    f = msg.split(" ")
    if len(f) < 4:
        return None
    ip, qtype, qclass = f[0], f[-2], f[-1]
    qname = " ".join(f[1:-2])
    if not (_TOKEN.match(qtype) and _TOKEN.match(qclass)) or not qname or not _is_ip(ip):
        return None
    return ip, _strip_dot(qname), qtype, qclass


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _strip_dot(name: str) -> str:
    if name == ".":
        return name
    return name[:-1] if name.endswith(".") and not name.endswith("\\.") else name


# ----------------------------------------------------------------------------------------------
# unbound.conf


def read_unbound_conf(path_or_text: str | os.PathLike[str]) -> pl.DataFrame:
    """Forward settings of an unbound.conf, with the Corefile reader's schema.

    Parameters
    ----------
    path_or_text
        A path to an unbound.conf, or its text (a string containing a newline or ``:``
        that is not an existing file is taken as text). ``include:`` files are read relative to
        the including file's directory (globs allowed) when a path was given.

    Returns
    -------
    polars.DataFrame
        Schema :data:`FORWARD_SCHEMA` (shared with :meth:`kit.corefile.Corefile.forward_settings`),
        one row per ``forward-addr``/``forward-host`` of each ``forward-zone``, in file order:

        - ``resolver`` (String): ``"unbound"``.
        - ``zone`` (String): the forward-zone ``name``, without trailing dot, case preserved,
          root ``"."``.
        - ``port`` (UInt16): the port unbound listens on (``server: port``, default 53).
        - ``upstream`` (String): ``host:port`` (``addr@port`` rewritten; IPv6 as ``[::1]:53``;
          ``#tls-name`` dropped); default port 53, or 853 with TLS.
        - ``transport`` (String): ``"tcp"`` when ``tcp-upstream: yes`` (server) or
          ``forward-tcp-upstream: yes`` (zone) forces TCP; ``"tls"`` with ``tls-upstream`` /
          ``forward-tls-upstream`` (or their ``ssl-`` names); null for the default (UDP, TCP
          after truncation). unbound has no "prefer UDP" setting.
        - ``force_tcp`` (Boolean): TCP is forced (as above).
        - ``prefer_udp`` (Boolean): always False.
        - ``policy`` (String): null (unbound picks among the fastest upstreams by RTT).
        - ``max_concurrent`` (Int64), ``expire_s`` (Float64, s), ``health_check_s`` (Float64, s):
          null (no unbound equivalent).
        - ``source`` (String): the file, as given, or ``"<text>"``.
        - ``line_no`` (UInt32): line of the ``forward-addr``/``forward-host``.

    Raises
    ------
    FileNotFoundError
        The file or an included file does not exist.
    InputFormatError
        A line is not ``key: value`` / ``clause:``, or a yes/no option has another value.
    """
    entries = _conf_entries(path_or_text)
    server: dict[str, str] = {}
    zones: list[dict[str, object]] = []
    clause = None
    for src, line_no, key, value, raw in entries:
        if value == "" and key in _CLAUSES:
            clause = key
            if key == "forward-zone":
                zones.append({"addrs": [], "opts": {}, "source": src, "line_no": line_no})
            continue
        if clause == "server":
            server[key] = value
        elif clause == "forward-zone":
            z = zones[-1]
            if key in {"forward-addr", "forward-host"}:
                z["addrs"].append((key, value, src, line_no))  # type: ignore[union-attr]
            else:
                z["opts"][key] = (value, src, line_no, raw)  # type: ignore[index]
    srv_tcp = _yes(server.get("tcp-upstream", "no"), "tcp-upstream")
    srv_tls = _yes(server.get("tls-upstream", server.get("ssl-upstream", "no")), "tls-upstream")
    port = int(server.get("port", "53"))
    rows: list[dict[str, object]] = []
    for z in zones:
        opts: dict[str, tuple[str, str, int, str]] = z["opts"]  # type: ignore[assignment]
        name = opts.get("name", (".", "", 0, ""))[0]

        def flag(*keys: str, _opts: dict[str, tuple[str, str, int, str]] = opts) -> bool:
            for k in keys:
                if k in _opts:
                    v, s, ln, raw = _opts[k]
                    try:
                        return _yes(v, k)
                    except ValueError as exc:
                        raise InputFormatError(str(exc), path=s, line=ln, excerpt=raw) from None
            return False

        tcp = srv_tcp or flag("forward-tcp-upstream")
        tls = srv_tls or flag("forward-tls-upstream", "forward-ssl-upstream")
        for _key, value, src, line_no in z["addrs"]:  # type: ignore[attr-defined]
            rows.append(
                {
                    "resolver": "unbound",
                    "zone": _strip_dot(name.strip('"')) or ".",
                    "port": port,
                    "upstream": _upstream(value, tls),
                    "transport": "tls" if tls else ("tcp" if tcp else None),
                    "force_tcp": tcp,
                    "prefer_udp": False,
                    "policy": None,
                    "max_concurrent": None,
                    "expire_s": None,
                    "health_check_s": None,
                    "source": src,
                    "line_no": line_no,
                }
            )
    df = (
        pl.DataFrame(rows, schema=FORWARD_SCHEMA, orient="row")
        if rows
        else pl.DataFrame(schema=FORWARD_SCHEMA)
    )
    check_schema(df, FORWARD_SCHEMA, name="unbound forward settings")
    return df


_CLAUSES = {
    "server",
    "forward-zone",
    "stub-zone",
    "remote-control",
    "auth-zone",
    "view",
    "python",
    "dynlib",
    "dnstap",
    "rpz",
    "cachedb",
    "redis",
    "ipset",
    "dnscrypt",
    "module",
}


def _yes(value: str, key: str) -> bool:
    v = value.strip('"').lower()
    if v in {"yes", "on", "1"}:
        return True
    if v in {"no", "off", "0"}:
        return False
    raise ValueError(f"{key}: expected yes or no, got {value!r}")


def _upstream(value: str, tls: bool) -> str:
    v = value.strip('"').split("#", 1)[0]
    host, _, port = v.partition("@")
    port = port or ("853" if tls else "53")
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"{host}:{port}"


def _conf_entries(path_or_text: str | os.PathLike[str]) -> list[tuple[str, int, str, str, str]]:
    is_text = isinstance(path_or_text, str) and (
        "\n" in path_or_text or (":" in path_or_text and not Path(path_or_text).exists())
    )
    if is_text:
        return _parse_conf_text(str(path_or_text), "<text>", None, depth=0)
    p = Path(path_or_text)
    if not p.is_file():
        raise FileNotFoundError(f"unbound config not found: {p}")
    return _parse_conf_text(
        read_raw(p).data.decode("utf-8", errors="replace"), str(path_or_text), p.parent, depth=0
    )


def _parse_conf_text(
    text: str, src: str, base: Path | None, depth: int
) -> list[tuple[str, int, str, str, str]]:
    if depth > 10:
        raise InputFormatError("include: nested more than 10 levels", path=src)
    out: list[tuple[str, int, str, str, str]] = []
    for i, raw in enumerate(text.splitlines(), start=1):
        line = _strip_comment(raw).strip()
        if not line:
            continue
        key, sep, value = line.partition(":")
        if not sep or not re.fullmatch(r"[a-z0-9-]+", key.strip()):
            raise InputFormatError(
                "expected 'key: value' or 'clause:'",
                path=src,
                line=i,
                excerpt=raw,
                hint="check the line against man unbound.conf",
            )
        key, value = key.strip(), value.strip()
        if key in {"include", "include-toplevel"}:
            pattern = value.strip('"')
            if base is None and not os.path.isabs(pattern):
                raise InputFormatError(
                    "include: with a relative path in config text",
                    path=src,
                    line=i,
                    excerpt=raw,
                    hint="pass the config's path instead of its text",
                )
            full = pattern if os.path.isabs(pattern) else str((base or Path()) / pattern)
            matches = sorted(glob.glob(full)) if set("*?[") & set(full) else [full]
            for m in matches:
                mp = Path(m)
                if not mp.is_file():
                    raise FileNotFoundError(f"{src}:{i}: included file not found: {m}")
                out += _parse_conf_text(mp.read_text(errors="replace"), m, mp.parent, depth + 1)
            continue
        out.append((src, i, key, value, raw))
    return out


def _strip_comment(line: str) -> str:
    """Drop a ``#`` comment: a ``#`` outside quotes at the start of a token (unbound's lexer
    keeps ``#`` inside a token, as in ``forward-addr: 1.1.1.1@853#cloudflare-dns.com``)."""
    inq = False
    for j, ch in enumerate(line):
        if ch == '"':
            inq = not inq
        elif ch == "#" and not inq and (j == 0 or line[j - 1] in " \t"):
            return line[:j]
    return line
