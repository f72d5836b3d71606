"""Read what unbound writes: its log file (``log-queries``/``log-replies``) and its forward settings.

unbound is the node-local cache of the incident lab (``lab/``) and a common resolver in its own
right. :func:`read_unbound_log` gives the same shape as the CoreDNS loader (one row per answered
query with ``duration_s``), and :func:`read_unbound_conf` gives the forward settings with the same
schema as :meth:`kit.sources.corefile.Corefile.forward_settings`, so one finding ("the cache forces TCP to
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
from dataclasses import dataclass, field
from pathlib import Path
from zoneinfo import ZoneInfo

import polars as pl

from kit.errors import InputFileError, InputFormatError, InputNotFoundError, KitWarning
from kit.schema import check_schema
from kit.sources._io import Source, expand_sources, read_bytes, read_raw
from kit.sources.corefile import (  # shared with the Corefile reader: one finding covers both
    FORWARD_SCHEMA,
    MAX_LINE_CHARS,
    first_long_line,
)
from kit.timeutil import UTC as _UTC

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


#: One row per reply line (``log-replies``): an answered query with its duration.
QUERIES_SCHEMA = pl.Schema(
    {  # type: ignore[arg-type]  # mixes dtype classes and instances
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
    {  # type: ignore[arg-type]  # mixes dtype classes and instances
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
    {  # type: ignore[arg-type]  # mixes dtype classes and instances
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
        "line": pl.String,
    }
)

_MONTH_ITEMS = list(
    enumerate(
        ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"),
        start=1,
    )
)


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
    notes : tuple[str, ...]
        Damage found while reading, e.g. ``"<file>: truncated gzip: ..."``: the lines after it
        could not be read and are not counted in ``lines``. Empty when every file was whole.
    """

    queries: pl.DataFrame
    received: pl.DataFrame
    other: pl.DataFrame
    rejected: pl.DataFrame
    lines: int
    notes: tuple[str, ...] = ()

    @property
    def records(self) -> int:
        """``len(queries) + len(received) + len(other) + len(rejected)`` (equals ``lines``)."""
        return self.queries.height + self.received.height + self.other.height + self.rejected.height

    def __repr__(self) -> str:
        return (
            f"ResolverLog(queries={self.queries.height}, received={self.received.height}, "
            f"other={self.other.height}, rejected={self.rejected.height}, lines={self.lines})"
        )


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
        :data:`REJECTED_SCHEMA`): ``source``, ``line_no``, ``reason`` (String), ``line`` (String,
        the line, undecodable bytes replaced).

    Raises
    ------
    FileNotFoundError
        A source does not exist.
    InputFileError
        A source is not a regular file (a FIFO, device...), or cannot be read.
    InputFormatError
        With ``strict=True``, a line that is not an unbound log line, or a damaged gzip stream.
        A gzip stream expanding beyond the cap of :func:`kit.sources._io.read_raw` (a gzip bomb).

    Warns
    -----
    KitWarning
        Rejected lines (with the count and the first), and a damaged gzip stream (the lines
        decompressed before the damage are read; the note is in ``notes``).
    """
    files = expand_sources(source, suffixes=(".log",), what="unbound log")
    parts: list[tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame, pl.DataFrame]] = []
    total = 0
    notes: list[str] = []
    for path in files:
        frames_one, n, damage = _read_one(path, year=year, tz=tz, strict=strict)
        parts.append(frames_one)
        total += n
        for d in damage:
            notes.append(f"{path}: {d}")
            warnings.warn(
                f"{path}: {d}; {n} lines read before it (see .notes)", KitWarning, stacklevel=2
            )
    frames = [
        pl.concat([p[i] for p in parts]) if parts else pl.DataFrame(schema=s)
        for i, s in enumerate((QUERIES_SCHEMA, RECEIVED_SCHEMA, OTHER_SCHEMA, REJECTED_SCHEMA))
    ]
    for f, s, name in zip(
        frames,
        (QUERIES_SCHEMA, RECEIVED_SCHEMA, OTHER_SCHEMA, REJECTED_SCHEMA),
        ("queries", "received", "other", "rejected"),
        strict=True,
    ):
        check_schema(f, s, name=f"unbound {name}")
    n_rej = frames[3].height
    if n_rej:
        first = frames[3].row(0, named=True)
        warnings.warn(
            f"{n_rej} of {total} unbound log lines rejected (first: {first['source']}:"
            f"{first['line_no']}, {first['reason']}); see .rejected",
            KitWarning,
            stacklevel=2,
        )
    return ResolverLog(frames[0], frames[1], frames[2], frames[3], lines=total, notes=tuple(notes))


# [0-9], not \d: in polars (Rust regex) and Python, \d also matches non-ASCII digits ("\u0663")
_PREFIX_RE = (
    r"^(?:\[(?P<epoch>[0-9]{1,12})\]|(?P<mon>[A-Z][a-z]{2}) (?P<day>[ 0-9][0-9]) "
    r"(?P<hh>[0-9][0-9]):(?P<mi>[0-9][0-9]):(?P<ss>[0-9][0-9])) (?P<ident>\S+)"
    r"\[(?P<pid>[0-9]+):(?P<tid>[0-9a-fA-F]+)\] "
    r"(?P<level>[a-z][a-z ]*?): (?P<msg>.*)$"
)
_REPLY_RE = (
    r"^(?P<ip>\S+) (?P<qname>.+) (?P<qtype>[A-Za-z0-9-]+) (?P<qclass>[A-Za-z0-9-]+) "
    r"(?P<rcode>[A-Za-z0-9-]+) (?P<dur>[0-9]+\.[0-9]{6}) (?P<cached>[01]) (?P<size>[0-9]{1,10})$"
)
_QUERY_RE = r"^(?P<ip>\S+) (?P<qname>.+) (?P<qtype>[A-Za-z0-9-]+) (?P<qclass>[A-Za-z0-9-]+)$"
_PREFIX_CHECK = re.sub(r"\(\?P<\w+>", "(?:", _PREFIX_RE)
_REPLY_CHECK = re.sub(r"\(\?P<\w+>", "(?:", _REPLY_RE)
_QUERY_CHECK = re.sub(r"\(\?P<\w+>", "(?:", _QUERY_RE)
_DAYS_MAX = [31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]


def _read_one(
    path: Path, *, year: int | None, tz: str, strict: bool
) -> tuple[tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame, pl.DataFrame], int, list[str]]:
    """One file: the four frames, the number of lines and the damage notes (vectorised with
    polars)."""
    raw = read_raw(path, what="unbound log")
    if raw.notes and strict:
        raise InputFormatError(
            "damaged gzip stream: " + "; ".join(raw.notes),
            path=path,
            hint="pass strict=False to read the lines before the damage",
        )
    content = raw.data.decode("utf-8", errors="replace")
    lines = content.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    name = str(path)
    df = (
        pl.DataFrame({"text": lines}, schema={"text": pl.String})
        .with_row_index("line_no", offset=1)
        .with_columns(pl.col("line_no").cast(pl.UInt32), pl.col("text").str.strip_suffix("\r"))
    )
    text = pl.col("text")
    # intermediate columns are materialised once (eager with_columns does not share them)
    df = df.with_columns(
        _ok=text.str.contains(_PREFIX_CHECK),
        _ep=text.str.starts_with("["),
        _close=text.str.find("]", literal=True),
    )
    ok, is_epoch, close = pl.col("_ok"), pl.col("_ep"), pl.col("_close")
    asc = ok & ~is_epoch
    df = df.with_columns(
        epoch=pl.when(ok & is_epoch).then(text.str.slice(1, close - 1)),
        mon=pl.when(asc).then(text.str.slice(0, 3)),
        day=pl.when(asc).then(text.str.slice(4, 2)),
        hh=pl.when(asc).then(text.str.slice(7, 2)),
        mi=pl.when(asc).then(text.str.slice(10, 2)),
        ss=pl.when(asc).then(text.str.slice(13, 2)),
        _after=pl.when(ok).then(
            pl.when(is_epoch).then(text.str.slice(close + 2)).otherwise(text.str.slice(16))
        ),
    )
    # "<ident>[pid:tid] <level>: <msg>": ident has no space, so the first "] " ends the prefix
    after = pl.col("_after")
    df = df.with_columns(_lm=after.str.slice(after.str.find("] ", literal=True) + 2))
    df = df.with_columns(_c=pl.col("_lm").str.find(": ", literal=True))
    df = df.with_columns(
        level=pl.col("_lm").str.slice(0, pl.col("_c")),
        msg=pl.col("_lm").str.slice(pl.col("_c") + 2),
    )
    df = df.with_columns(_ts_epoch(), _ascii_ts(df, path, year=year, tz=tz)).with_columns(
        ts=pl.coalesce("_ts_epoch", "_ts_ascii")
    )
    lvl, msg = pl.col("level"), pl.col("msg")
    good = df.filter(pl.col("ts").is_not_null())
    bad = df.filter(pl.col("ts").is_null())
    # replies, then queries: fields by splitting on spaces when the name has none (unbound
    # prints a space in a name as '?'), regex captures only for the other candidate lines
    rp = _fields(
        good.filter(lvl.is_in(["info", "reply"]) & msg.str.contains(_REPLY_CHECK)),
        ["ip", "qname", "qtype", "qclass", "rcode", "dur", "cached", "size"],
        _REPLY_RE,
    )
    rp = rp.filter(
        pl.col("ip").is_in(_valid_ips(rp.get_column("ip")).implode())
        & (pl.col("size").cast(pl.UInt64) < 2**32)
    )
    rest = good.filter(~pl.col("line_no").is_in(rp.get_column("line_no").implode()))
    qp = _fields(
        rest.filter(lvl.is_in(["info", "query"]) & msg.str.contains(_QUERY_CHECK)),
        ["ip", "qname", "qtype", "qclass"],
        _QUERY_RE,
    )
    qp = qp.filter(pl.col("ip").is_in(_valid_ips(qp.get_column("ip")).implode()))
    rest = rest.filter(~pl.col("line_no").is_in(qp.get_column("line_no").implode()))
    src = pl.lit(name, dtype=pl.String).alias("source")
    queries = rp.select(
        "ts",
        pl.col("ip").alias("client_ip"),
        _strip_dot_expr(pl.col("qname")).alias("qname"),
        "qtype",
        "qclass",
        "rcode",
        pl.col("dur").cast(pl.Float64).alias("duration_s"),
        (pl.col("cached") == "1").alias("cached"),
        pl.col("size").cast(pl.UInt32).alias("resp_size"),
        src,
        "line_no",
    )
    received = qp.select(
        "ts",
        pl.col("ip").alias("client_ip"),
        _strip_dot_expr(pl.col("qname")).alias("qname"),
        "qtype",
        "qclass",
        src,
        "line_no",
    )
    other = rest.filter(~lvl.is_in(["query", "reply"])).select(
        "ts", "level", pl.col("msg").alias("message"), src, "line_no"
    )
    malformed = rest.filter(lvl.is_in(["query", "reply"])).with_columns(_kind=pl.lit("malformed"))
    df = pl.concat([bad.with_columns(_kind=pl.lit("rejected")), malformed], how="vertical").sort(
        "line_no"
    )
    reason = (
        pl.when(pl.col("_kind") == "malformed")
        .then(pl.format("malformed {} line", pl.col("level")))
        .when(pl.col("text").str.strip_chars() == "")
        .then(pl.lit("blank line"))
        .otherwise(pl.lit("not an unbound log line"))
    )
    rejected = df.select(src, "line_no", reason.alias("reason"), pl.col("text").alias("line"))
    n = len(lines)
    if strict and rejected.height:
        first = rejected.row(0, named=True)
        raise InputFormatError(
            f"{first['reason']}: expected '[epoch] unbound[pid:tid] level: message' or "
            "'Mon DD HH:MM:SS unbound[pid:tid] level: message'",
            path=path,
            line=first["line_no"],
            excerpt=first["line"],
            hint="pass strict=False to collect such lines in .rejected",
        )
    return (queries, received, other, rejected), n, list(raw.notes)


def _fields(cand: pl.DataFrame, names: list[str], pattern: str) -> pl.DataFrame:
    """``line_no``, ``ts`` and the named fields of ``msg`` (already checked against ``pattern``):
    split on spaces when there are exactly ``len(names) - 1`` of them, regex captures otherwise.
    Rows keep their file order."""
    n = len(names) - 1
    spaces = pl.col("msg").str.count_matches(" ", literal=True)
    fast = cand.filter(spaces == n)
    slow = cand.filter(spaces != n)
    fields = [f"field_{i}" for i in range(len(names))]
    a = (
        fast.select("line_no", "ts", pl.col("msg").str.split_exact(" ", n).alias("_f"))
        .unnest("_f")
        .rename(dict(zip(fields, names, strict=True)))
    )
    b = (
        slow.select("line_no", "ts", pl.col("msg").str.extract_groups(pattern).alias("_f"))
        .unnest("_f")
        .select("line_no", "ts", *names)
    )
    return pl.concat([a, b]).sort("line_no") if b.height else a


def _ts_epoch() -> pl.Expr:
    return (
        pl.from_epoch(pl.col("epoch").cast(pl.Int64, strict=False), time_unit="s")
        .cast(pl.Datetime("us"))
        .dt.replace_time_zone("UTC")
        .alias("_ts_epoch")
    )


def _ascii_ts(df: pl.DataFrame, path: Path, *, year: int | None, tz: str) -> pl.Expr:
    """``Mon DD HH:MM:SS`` lines: the year from ``year`` or the file's mtime, rolled over at
    December -> January; local wall time in ``tz`` converted to UTC. Invalid dates give null."""
    months = {m: i for i, m in _MONTH_ITEMS}
    a = df.select(
        "line_no",
        mon=pl.col("mon").replace_strict(months, default=None, return_dtype=pl.Int32),
        day=pl.col("day").str.strip_chars().cast(pl.Int32, strict=False),
        hh=pl.col("hh").cast(pl.Int32, strict=False),
        mi=pl.col("mi").cast(pl.Int32, strict=False),
        ss=pl.col("ss").cast(pl.Int32, strict=False),
    )
    days_max = pl.col("mon").replace_strict(
        dict(enumerate(_DAYS_MAX, start=1)), default=0, return_dtype=pl.Int32
    )
    a = a.filter(
        pl.col("mon").is_not_null()
        & (pl.col("day") >= 1)
        & (pl.col("day") <= days_max)
        & (pl.col("hh") <= 23)
        & (pl.col("mi") <= 59)
        & (pl.col("ss") <= 60)
    )
    if a.height == 0:
        return pl.lit(None, dtype=_UTC).alias("_ts_ascii")
    # +1 year each time the month goes back by more than 6 (December -> January)
    a = a.with_columns(
        _off=(pl.col("mon") < pl.col("mon").shift(1).fill_null(pl.col("mon").first()) - 6)
        .cast(pl.Int32)
        .cum_sum()
    )
    if year is None:
        mtime = dt.datetime.fromtimestamp(os.stat(path).st_mtime, ZoneInfo(tz))
        last = a.row(a.height - 1, named=True)
        # the last line is not later than the file's mtime (one day of slack for clock skew)
        ok = (last["mon"], last["day"]) <= (mtime.month, mtime.day + 1)
        base = (mtime.year if ok else mtime.year - 1) - last["_off"]
    else:
        base = year
    y = pl.col("_off") + base
    a = a.with_columns(_y=y).filter(
        pl.col("day") <= pl.date(pl.col("_y"), pl.col("mon"), 1).dt.month_end().dt.day()
    )
    a = a.select(
        "line_no",
        pl.datetime(
            pl.col("_y"),
            pl.col("mon"),
            pl.col("day"),
            pl.col("hh"),
            pl.col("mi"),
            pl.min_horizontal(pl.col("ss"), pl.lit(59)),
        )
        .dt.replace_time_zone(tz, ambiguous="earliest", non_existent="null")
        .dt.convert_time_zone("UTC")
        .cast(_UTC)
        .alias("_ts_ascii"),
    )
    mapping = df.select("line_no").join(a, on="line_no", how="left", maintain_order="left")
    return pl.lit(mapping.get_column("_ts_ascii")).alias("_ts_ascii")


def _strip_dot_expr(q: pl.Expr) -> pl.Expr:
    """Drop one trailing dot (not an escaped one, not the root's)."""
    return (
        pl.when(q.str.ends_with(".") & ~q.str.ends_with("\\.") & (q != "."))
        .then(q.str.strip_suffix("."))
        .otherwise(q)
    )


def _valid_ips(ips: pl.Series) -> pl.Series:
    """The distinct values of ``ips`` that are IP addresses (checked once each by ipaddress)."""
    return pl.Series(
        [ip for ip in ips.unique().drop_nulls().to_list() if _is_ip(ip)], dtype=pl.String
    )


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
        Schema :data:`FORWARD_SCHEMA` (shared with :meth:`kit.sources.corefile.Corefile.forward_settings`),
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
    InputNotFoundError
        The file or an included file does not exist (also a ``FileNotFoundError``).
    InputFileError
        The file is not a regular file (a FIFO, device...) or cannot be read.
    InputFormatError
        A line is not ``key: value`` / ``clause:`` (in an included file, the message names the
        including file and line too), a yes/no option has another value, ``port`` is not a port
        number, an included path is not a readable regular file, or the gzip stream is damaged.
    """
    entries = _conf_entries(path_or_text)
    server: dict[str, tuple[str, str, int, str]] = {}  # key -> (value, source, line, raw line)
    zones: list[_Zone] = []
    clause = None
    for src, line_no, key, value, raw in entries:
        if value == "" and key in _CLAUSES:
            clause = key
            if key == "forward-zone":
                zones.append(_Zone())
            continue
        if clause == "server":
            server[key] = (value, src, line_no, raw)
        elif clause == "forward-zone":
            z = zones[-1]
            if key in {"forward-addr", "forward-host"}:
                z.addrs.append((key, value, src, line_no))
            else:
                z.opts[key] = (value, src, line_no, raw)
    srv_tcp = _flag(server, "tcp-upstream")
    srv_tls = _flag(server, "tls-upstream", "ssl-upstream")
    port = _port(server)
    rows: list[dict[str, object]] = []
    for z in zones:
        opts = z.opts
        name = opts.get("name", (".", "", 0, ""))[0]
        tcp = srv_tcp or _flag(opts, "forward-tcp-upstream")
        tls = srv_tls or _flag(opts, "forward-tls-upstream", "forward-ssl-upstream")
        for _key, value, src, line_no in z.addrs:
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


def _flag(opts: dict[str, tuple[str, str, int, str]], *keys: str) -> bool:
    """The first of ``keys`` set in ``opts`` as a yes/no option (False when none is set)."""
    for k in keys:
        if k in opts:
            v, src, ln, raw = opts[k]
            try:
                return _yes(v, k)
            except ValueError as exc:
                raise InputFormatError(str(exc), path=src, line=ln, excerpt=raw) from None
    return False


def _port(server: dict[str, tuple[str, str, int, str]]) -> int:
    """``server: port`` (default 53), checked to be a port number."""
    if "port" not in server:
        return 53
    v, src, ln, raw = server["port"]
    text = v.strip('"')
    if not (len(text) <= 5 and text.isascii() and text.isdigit() and 1 <= int(text) <= 65535):
        raise InputFormatError(
            f"port: expected a port number 1-65535, got {v!r}", path=src, line=ln, excerpt=raw
        )
    return int(text)


@dataclass
class _Zone:
    """One ``forward-zone:`` clause: its addresses (key, value, source, line) and options."""

    addrs: list[tuple[str, str, str, int]] = field(default_factory=list)
    opts: dict[str, tuple[str, str, int, str]] = field(default_factory=dict)


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
        return _parse_conf_text(str(path_or_text), "<text>", None, depth=0, stack=())
    p = Path(path_or_text)
    raw = read_raw(p, what="unbound config")
    if raw.notes:
        # a config cut short would silently lose its forward-zones: refuse it
        raise InputFormatError(
            "damaged gzip stream: " + "; ".join(raw.notes),
            path=p,
            hint="Decompress what you can by hand and pass the text",
        )
    return _parse_conf_text(
        raw.data.decode("utf-8", errors="replace"),
        str(path_or_text),
        p.parent,
        depth=0,
        stack=(_file_id(p),),
    )


def _file_id(p: Path) -> tuple[int, int]:
    """(device, inode): the same file under any name or link."""
    st = p.stat()
    return st.st_dev, st.st_ino


def _parse_conf_text(
    text: str, src: str, base: Path | None, depth: int, stack: tuple[tuple[int, int], ...]
) -> list[tuple[str, int, str, str, str]]:
    """``(source, line, key, value, raw line)`` of every entry, includes expanded; ``stack``:
    the files being read (an include of one of them is a cycle)."""
    if depth > 10:
        raise InputFormatError("include: nested more than 10 levels", path=src)
    too_long = first_long_line(text)
    if too_long is not None:  # the tokenizer would make millions of tokens of it
        raise InputFormatError(
            f"a line of more than {MAX_LINE_CHARS:,} characters: not an unbound.conf",
            path=src,
            line=too_long[0],
            excerpt=too_long[1],
            hint="check the file against man unbound.conf",
        )
    out: list[tuple[str, int, str, str, str]] = []
    # unbound's lexer works on tokens, not lines: "server: port: 53" and "verbosity:1" are fine,
    # and a value may follow its key on the next line
    pending: _Entry | None = None  # a key still waiting for its value
    entries: list[_Entry] = []
    for i, raw in enumerate(text.splitlines(), start=1):
        tokens = _TOKENS.findall(_strip_comment(raw))
        current: _Entry | None = None
        for tok in tokens:
            key, value = _key_token(tok)
            if key is not None:
                current = _Entry(key, [value] if value else [], i, raw)
                entries.append(current)
            elif current is not None:
                current.values.append(tok)
            elif pending is not None:
                pending.values.append(tok)
                current = pending
            else:
                raise InputFormatError(
                    "expected 'key: value' or 'clause:'",
                    path=src,
                    line=i,
                    excerpt=raw,
                    hint="check the line against man unbound.conf",
                )
        if current is not None:
            pending = current if not current.values and current.key not in _CLAUSES else None
            if len(current.values) > 1:  # one string, not a token list (a long line has millions)
                current.values[:] = [" ".join(current.values)]
    for e in entries:
        key, value, i, raw = e.key, " ".join(e.values), e.line_no, e.raw
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
                try:
                    # unbound reads includes as they are (no gzip)
                    text_m = read_bytes(mp, what="included file").decode("utf-8", "replace")
                except InputNotFoundError:
                    raise InputNotFoundError(
                        f"{src}:{i}: included file not found: {m}", path=m
                    ) from None
                except InputFileError as exc:
                    raise InputFormatError(
                        f"include: {exc.reason}", path=src, line=i, excerpt=raw, hint=exc.hint
                    ) from None
                fid = _file_id(mp)
                if fid in stack:
                    raise InputFormatError(
                        f"include: {m} is already being read (an include cycle)",
                        path=src,
                        line=i,
                        excerpt=raw,
                        hint="unbound would include it again and again; remove the include",
                    )
                try:
                    out += _parse_conf_text(text_m, m, mp.parent, depth + 1, (*stack, fid))
                except InputFormatError as exc:
                    # name the including file too: the included one may not be an unbound.conf
                    raise InputFormatError(
                        f"{exc.reason} (included from {src}:{i})",
                        path=exc.path,
                        line=exc.line,
                        offset=exc.offset,
                        excerpt=exc.excerpt,
                        hint=exc.hint,
                    ) from None
            continue
        out.append((src, i, key, value, raw))
    return out


@dataclass
class _Entry:
    """One ``key: value`` of an unbound.conf (``values``: its tokens, quotes kept)."""

    key: str
    values: list[str]
    line_no: int
    raw: str


_TOKENS = re.compile(r'"[^"]*"?|\'[^\']*\'?|[^\s"\']+')
_KEY = re.compile(r"([a-z][a-z0-9-]*):(.*)")


def _key_token(tok: str) -> tuple[str | None, str]:
    """``"port:"`` -> ("port", ""); ``"verbosity:1"`` -> ("verbosity", "1"); a value -> (None, "").

    A token is a key when it starts with a keyword (letters, digits, '-') and a colon, and the
    keyword is not hexadecimal (so IPv6 addresses such as ``fe80::1`` stay values).
    """
    if tok.startswith(("'", '"')):
        return None, ""
    m = _KEY.fullmatch(tok)
    if m is None or re.fullmatch(r"[0-9a-f-]+", m.group(1)) or ":" in m.group(2):
        return None, ""
    return m.group(1), m.group(2)


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
